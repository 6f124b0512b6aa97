/* The matmul generator's emission state, shared by the block walk (gen_matmul.c) and
 * the DMA queue (gen_matmul_dma.c).
 *
 * Code is emitted for a static sequence of blocks (chunk, K step, column block): the
 * machine's `loop` holds at most 63 bundles, and a block's weight load alone is longer,
 * so only the row-tile loops are loops. Every address outside those loops is a static
 * buffer offset. */
#ifndef TILE_GEN_MATMUL_EMIT_H
#define TILE_GEN_MATMUL_EMIT_H

#include "gen_matmul.h"

/* A copy with its own descriptor (addresses fixed at layout, so nothing is stored
 * before the `dma`) signalling sem on completion. */
typedef struct Copy {
  int32_t desc, src_buf, dst_buf, sem, est;
} Copy;

/* The four VMEM rings that input pieces land in. Edge rings hold the padded last K
 * step; their padding is zeroed once. */
enum { RING_A, RING_A_EDGE, RING_B, RING_B_EDGE, RING_COUNT };

typedef struct Ring {
  int32_t *bufs;        /* one buffer per slot, so a copy into one slot does not hold
                         * back reads of another (the scheduler tracks whole buffers) */
  int64_t slot_bytes, nslots;
  int64_t used;         /* pieces placed so far (the next slot is used % nslots) */
  int32_t *occupant;    /* piece in each slot, -1 when none */
  int32_t src_buf, sem; /* every copy into the ring signals sem */
  TileDmaShape shape;
  bool live;
} Ring;

/* A DMA piece: an A row piece of one slab, or one block of B weights. */
typedef struct Piece {
  int ring;
  int64_t src_off;      /* byte offset in the A or B tensor */
  int64_t slot;
  bool issued, waited, released;
  Copy copy;
} Piece;

/* One block: chunk (batch, row chunk, column chunk), K step, column block. */
typedef struct Block {
  int64_t b, mc, ng, kp, np;
  int64_t mstart, nstart, bcol; /* first row, first column of the chunk, block column */
  bool first, last, edge;
  int32_t bpiece, apiece0;      /* its B piece; the slab's first A piece */
  int32_t stage_slot;           /* staging slot (last K step) */
} Block;

typedef struct Gen {
  TileLowerCtx *cx;
  TileMir *m;
  const MmPlan *p;
  int32_t zero;
  int32_t c_apitch, c_bpitch, c_tpitch, c_spitch;
  Ring ring[RING_COUNT];
  int32_t acc[2], stage[2]; /* K step kp writes acc[kp & 1] and reads the other */
  int64_t tile_bytes, stage_slot;
  int32_t out_sem;
  TileDmaShape out_shape;
  /* blocks and pieces, in order of first use */
  Block *blocks;
  int64_t nblocks;
  Piece *pieces;
  int32_t npieces, next_issue;
  /* static accounting of DMAs in flight (issued, not yet waited for) */
  int32_t inflight_in, out_issued, out_waited;
  int32_t *out_slot_dma;        /* per staging slot: the out DMA that last read it, -1 */
  Copy *out_copy;               /* the copies out, in issue order */
  bool started;                 /* the first weight load is emitted */
} Gen;

Copy mm_copy(Gen *g, int32_t src_buf, int64_t src_off, int32_t dst_buf, int64_t dst_off,
             TileDmaShape shape, int32_t sem);
void mm_copy_issue(Gen *g, const Copy *c);
/* Waits for the oldest copy signalling c->sem, naming c's buffers. */
void mm_copy_wait(Gen *g, const Copy *c);

/* Builds the block and piece lists and the rings (gen_matmul_dma.c). */
void mm_dma_plan(Gen *g);
/* Issues queued pieces whose slots are free, keeping a few in flight. */
void mm_dma_pump(Gen *g);
/* Emits the wait for piece i (issuing it and the ones before it first if needed). */
void mm_dma_need(Gen *g, int32_t i);
/* The slot of piece i is free for the next piece once its reads are emitted. */
void mm_dma_release(Gen *g, int32_t i);
/* Before staging slot s is written: waits for the copy out that last read it. */
void mm_dma_stage_free(Gen *g, int32_t s);
/* Issues the copy out of block k's staged result. */
void mm_dma_out(Gen *g, const Block *k);
/* The VMEM address register of piece i plus off. */
int32_t mm_piece_addr(Gen *g, int32_t i, int64_t off);

#endif
