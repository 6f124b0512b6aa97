/* The index arithmetic of the sm_90a warpgroup MMA kernel (emit_wgmma.c), written once:
 * each entry is emitted into the CUDA source as a __device__ function (its expression
 * stringified) and compiled on the host as a static inline function, so a host test
 * (tests/unit/cuda/test_cuda_wgmma.c) checks the very formulas the GPU runs against the
 * PTX ISA's layouts ("Asynchronous Warpgroup Level Matrix Shared Memory Layout",
 * "Matrix Fragments for wgmma.mma_async.m64nNk16").
 *
 * Shared memory tiles use the 128-byte swizzle: a tile is rows of 128 bytes (64 bf16 or
 * f16 elements), 8 rows (1024 bytes) form one swizzle atom, and the 16-byte chunk c of
 * row r sits at chunk position c ^ (r mod 8). The hardware applies that XOR to address
 * bits 4-6 from bits 7-9, so every atom starts on a 1024-byte boundary (descriptor base
 * offset 0).
 *   A [M, K] row-major is K-major: a tile of BM rows x 64 k; a wgmma's 16 k are chunks
 *     2ks and 2ks+1 of each row, reached by moving the descriptor's start 32 bytes.
 *   B [K, N] row-major is N-major (the wgmma's transpose bit): a tile of 64 k rows x BN n
 *     is stored as BN/64 column blocks of 64 rows x 128 bytes (block stride 64 x 128
 *     bytes = the descriptor's leading byte offset); 8 k rows are one atom (1024 bytes =
 *     the stride byte offset); a wgmma's 16 k are two atoms, reached by moving the start
 *     16 x 128 bytes.
 *
 * X(return type, name, (parameters), expression) */
#ifndef TILE_CUDA_WGMMA_LAYOUT_H
#define TILE_CUDA_WGMMA_LAYOUT_H

/* Bytes of one row of a swizzled tile, and rows of k per stage (one row's elements). */
#define TC_WG_ROW_BYTES 128
#define TC_WG_BK 64

#define TC_WG_LAYOUT(X)                                                                   \
  /* Byte offset of 16-byte chunk `chunk` (0..7) of row `row` in a 128B-swizzled tile. */ \
  X(unsigned, tc_wg_sw128, (unsigned row, unsigned chunk),                               \
    (row * 128u + (((chunk ^ row) & 7u) << 4)))                                          \
  /* Byte offset of B's chunk `nc` (8 n each) of k row `row` in a stage's B tile. */      \
  X(unsigned, tc_wg_b_off, (unsigned row, unsigned nc),                                  \
    ((nc >> 3) * (64u * 128u) + tc_wg_sw128(row, nc & 7u)))                              \
  /* The 64-bit matrix descriptor: start address, leading and stride byte offsets (all \
   * >> 4, 14 bits each at bits 0, 16, 32), base offset 0, swizzle mode 1 (128 bytes)  \
   * at bits 62-63. */                                                                    \
  X(unsigned long long, tc_wg_desc, (unsigned addr, unsigned lbo, unsigned sbo),         \
    ((unsigned long long)((addr & 0x3FFFFu) >> 4) |                                      \
     ((unsigned long long)((lbo & 0x3FFFFu) >> 4) << 16) |                               \
     ((unsigned long long)((sbo & 0x3FFFFu) >> 4) << 32) | (1ull << 62)))                \
  /* Accumulator register f of thread t (0..127) of a warpgroup, m64nNk16 with f32 D:   \
   * warp t/32 owns rows 16(t/32) .. +15; register f = 4j + q holds n-block j (8       \
   * columns), rows lane/4 (+8 for q >= 2), columns 2(lane mod 4) + (q mod 2). */          \
  /* A's descriptor for warpgroup wg's 64 rows, k 16ks .. 16ks+15 of the stage's A tile \
   * at a_tile: K-major, leading byte offset unused (1 by convention, 16 bytes), 8-row  \
   * groups 1024 bytes apart. */                                                         \
  X(unsigned long long, tc_wg_a_desc, (unsigned a_tile, unsigned wg, unsigned ks),       \
    tc_wg_desc(a_tile + wg * (64u * 128u) + ks * 32u, 16u, 1024u))                       \
  /* B's descriptor for k 16ks .. 16ks+15 of the stage's B tile at b_tile: N-major,     \
   * 64-column blocks 64 x 128 bytes apart (leading), 8-k-row atoms 1024 apart (stride). */ \
  X(unsigned long long, tc_wg_b_desc, (unsigned b_tile, unsigned ks),                    \
    tc_wg_desc(b_tile + ks * (16u * 128u), 64u * 128u, 1024u))                           \
  X(int, tc_wg_acc_row, (int t, int f), ((t >> 5) * 16 + ((t & 31) >> 2) + ((f >> 1) & 1) * 8)) \
  X(int, tc_wg_acc_col, (int t, int f), ((f >> 2) * 8 + (t & 3) * 2 + (f & 1)))

#endif
