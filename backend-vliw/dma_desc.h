/* DMA descriptors in SMEM (backend-vliw/lower_dma.c), shared by the DMA sites of the
 * generators and the dma_start ops of tile-level kernels (gen_kernel_ops.c), so the
 * descriptor layout of docs/emulator.md ("DMA descriptors") and the transfer time
 * estimate are written once. */
#ifndef TILE_VLIW_DMA_DESC_H
#define TILE_VLIW_DMA_DESC_H

#include <stdint.h>

#include "tile/lower.h"
#include "tile/mir.h"

/* Descriptor word indices (docs/emulator.md). */
enum {
  DESC_SRC_SPACE = 0,
  DESC_DST_SPACE = 1,
  DESC_SRC_LO = 2,
  DESC_SRC_HI = 3,
  DESC_DST_LO = 4,
  DESC_DST_HI = 5,
  DESC_COUNT0 = 6,
  DESC_COUNT1 = 7,
  DESC_COUNT2 = 8,
  DESC_SRC_STRIDE1 = 9,
  DESC_SRC_STRIDE2 = 10,
  DESC_DST_STRIDE1 = 11,
  DESC_DST_STRIDE2 = 12,
  DESC_PEER = 13,
  DESC_SRC_SEM = 14,
  DESC_DST_SEM = 15,
  DESC_WORDS = 16,
};

/* Makes the SMEM buffer `name` holding a local copy's descriptor: count2 x count1 runs
 * of count0 bytes (counts below 1 read as 1) with shape's strides, from src_buf +
 * src_offset to dst_buf + dst_offset, signalling sem once on completion. The address
 * words are relocations that layout fills; the spaces are those of the buffers.
 * Returns the buffer. */
int32_t tile_dma_desc_buffer(TileMir *m, const char *name, int32_t src_buf, int64_t src_offset,
                             int32_t dst_buf, int64_t dst_offset, const TileDmaShape *shape,
                             int32_t sem);

/* The expected cycles of a transfer of `bytes` from space a to space b when alone: the
 * issue cost plus the bytes at the pair's bandwidth, clamped to int32. */
int32_t tile_dma_est_cycles(const TileTarget *t, TileSpace a, TileSpace b, int64_t bytes);

#endif
