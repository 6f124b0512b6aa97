/* The matmul generator's plan, shared by its analysis (gen_matmul_plan.c) and its
 * emission (gen_matmul.c, gen_matmul_dma.c).
 *
 * The computation C[b] = epilogue(A[b] x B[b]) is cut into blocks the MXUs hold:
 *
 *   - The target's units are arranged nk x nn: unit (ki, ni) holds the weight tile of
 *     K rows ki*dim.. and N columns ni*dim.. of the current block, so one LHS vreg
 *     (8 rows of M, dim of K) feeds nn units and one result tile (8 x dim) is the sum
 *     of nk pops. A block is Kb = nk*dim rows of K by Nb = nn*dim columns of N.
 *   - A chunk is Mb rows of M (one batch) by Ng columns of N. For a chunk, K is walked
 *     in kp steps of Kb, and each step in column blocks np of Nb: a block loads its
 *     weights (16 vld + mxu.ldw per unit) and runs the chunk's T = Mb / 8 row tiles,
 *     adding into an f32 accumulator in VMEM (a slot per row tile). The
 *     last kp step evaluates the fused epilogue on each result tile and writes it to a
 *     staging buffer that DMAs copy out as rows finish. Inputs arrive in pieces (A slabs
 *     of Mb x Kb in two slots, B blocks of Kb x Nb in a ring of `depth`), copied ahead.
 *   - Edges: rows of M and columns of N are independent, so a last chunk or block that
 *     would run past the end starts earlier and overlaps its neighbour (the overlap is
 *     computed twice and stored twice, with the same values). K is summed, so it is
 *     padded instead: the last kp step (Kr < Kb rows valid) reads slabs and panels
 *     from buffers whose padding was zeroed once.
 *
 * All sizes are in elements unless named *_bytes. */
#ifndef TILE_GEN_MATMUL_H
#define TILE_GEN_MATMUL_H

#include <stdbool.h>
#include <stdint.h>

#include "tile/lower.h"

enum { MM_MAX_EPI = 64, MM_MAX_ROWS = 8, MM_MAX_TILES = 2 };

/* Staggered weight switches (MmPlan.koff): a group's switch window (MM_XWIN steps),
 * the straight-line steps before it (MM_PRE: the group's weight loads start during its
 * last pushes, a few vregs each, within the register file) and after its first new push
 * (MM_POST: room for the vector loads the switch crowds out), and the loop steps at
 * least between two groups' straight-line stretches (MM_GAP: kept apart, so one group's
 * weight loads are not hoisted into the other's stretch and held in registers). Tuned
 * on v5e-like, where the pops trail the last group's pushes by 32 row tiles, which
 * lets 128-tile blocks copy out in four even pieces. */
enum { MM_PRE = 4, MM_XWIN = 1, MM_POST = 3, MM_GAP = 2 };

/* Blocks of at most this many row tiles are short: their row steps are emitted
 * straight-line (gen_matmul.c, short_rows). */
enum { MM_SHORT_ROWS = 8 };

/* How an epilogue value is held per result tile. */
typedef enum MmKind {
  MM_TILE,  /* a full [.., M, N] value: one vreg per result tile */
  MM_ROW,   /* a [N] or [1, N] value broadcast down M: a stride-0 load of the row */
  MM_SPLAT, /* a splat constant: an immediate */
} MmKind;

/* How an epilogue op takes the op before it that only it reads into one vfma. */
typedef enum MmFuse {
  MM_FUSE_NONE,
  MM_FUSE_MULADD,   /* add of mul(a, b) and c:            a * b + c */
  MM_FUSE_PLUS_ONE, /* mul of a and add(t, 1):            a * t + a */
  MM_FUSE_SCALED,   /* mul by splat s of a fused a*k + c: a * (k*s) + c*s */
} MmFuse;

/* A group input the epilogue reads: a row vector (shape [N] or [1, N]), copied to VMEM
 * once, or a tile operand, a value of the matmul's shape (a residual, the other half of
 * a gated product), of which each last-step block copies its Mb x Nb piece into a slot
 * of its own (gen_matmul.c, "Tile operands"). */
typedef struct MmInput {
  const TileValue *v;
  TileTensorRef ref;
  int32_t vmem;     /* the row; a tile operand's mm_tile_slots(p) slots of Mb x Nb */
  int esize;        /* bytes per element (2 for bf16, 4 for f32) */
} MmInput;

typedef struct MmPlan {
  const TileOp *mm;           /* the matmul or dot_general */
  TileTensorRef a, b, out;    /* HBM placements */
  const TileValue *out_value; /* the group's one result */
  int64_t batch, M, K, N;
  bool b_batched;             /* B has the batch dims too */
  int ae, be, oe;             /* element bytes of A, B and the result */
  bool out_bf16, mm_bf16;     /* result / matmul value stored as bf16 */

  /* machine */
  int32_t dim, sub, units;    /* mxu_dim, vreg sublanes, units used (nk * nn) */
  int32_t nk, nn;
  /* blocking */
  int64_t Kb, nkp, Kr;        /* K per step, steps, valid K rows of the last step */
  int64_t Nb;                 /* N per block */
  int64_t Mb, T, MC, Mv;      /* rows per chunk, row tiles, chunks along M, valid rows */
  int64_t Ng, NG, nnp, Nv;    /* columns per chunk, chunks along N, blocks, valid cols */
  int64_t chunks;             /* batch * MC * NG */
  int64_t lead;               /* column chunks the first chunk spans, its K steps walking
                               * their blocks together (see plan_blocks); 1: as the rest */
  bool ahold;                 /* A held: a slot per K step (the last one padded), so the
                               * column chunks after a row chunk's first read A from VMEM
                               * and only the first copies it in (see plan_blocks) */
  /* the pipeline (gen_matmul.c draws it) */
  int64_t skew;               /* row tiles between a push and the pop of its result (<= T) */
  int64_t lag;                /* blocks between a block and the one that pops its last
                               * results: 1, or 2 with one row tile (gen_matmul.c, "One
                               * row tile") */
  /* Staggered weight switches. A block's body runs T + xwin steps; K group ki (its
   * units share an LHS vreg) pushes the previous block's last tiles until step
   * koff[ki] - xwin, loads its weights while the other groups keep pushing (xwin steps),
   * and pushes the block's tile 0 at step koff[ki]. Pops skip group 0's window. The
   * steps from MM_PRE before a window to its end are emitted straight-line, so the
   * weight loads also overlap the group's last pushes. Not staggered: all 0. */
  int64_t koff[16];
  int64_t xwin, pre, post;     /* window steps; straight-line steps before a window and
                               * after a group's first new push */
  bool stagger;
  int64_t depth;              /* B pieces in flight past the one being read may use
                               * (gen_matmul.c copies min(depth, 2) ahead) */
  /* Cross-group prefetch (gen_matmul_dma.c, "Prefetch"): the first pf blocks' weights
   * are copied into the ring by DMAs the lowering moves into an earlier group; the ring
   * then has pf + max(depth, lead + 1) slots, since the blocks after read pieces pf
   * blocks behind their copies. Without one: pf 0, ring = depth slots per kind. */
  int64_t pf, ring;
  int64_t eslots;             /* slots of the padded last K step's pieces, after the ring's
                               * (the ring's size but where an owner of resident weights
                               * has one per piece of each kind, gen_matmul_dma.c) */
  int64_t apieces, arows;     /* pieces (and rows in each) an A slab is copied in */
  int64_t a0pieces, a0rows;   /* the same for the first slab, copied before the first block */
  int64_t q, nout;            /* row tiles per copy out, copies per last-step block */
  int64_t qf, qd;             /* the same in the final block (row tiles per copy while it
                               * pushes, and while the drain pops): nothing follows it, so
                               * its copies are small and little is left to copy at the end */

  /* epilogue: ops after the matmul, in program order */
  const TileOp *epi[MM_MAX_EPI];
  int32_t nepi;
  MmInput rows[MM_MAX_ROWS];
  int32_t nrows;
  MmInput tiles[MM_MAX_TILES];
  int32_t ntiles;
  TileEwConsts k;             /* the epilogue's constants, made once before the loops */
  /* Epilogue ops done elsewhere or fused (gen_matmul_epi.c), so the last K step, where
   * the epilogue's vector ops and their chain through a transcendental bound the row
   * loop, has fewer. `bias` (-1: none) is an f32 add of the matmul's result and row
   * `bias_row`: the pops that start a tile's sum start it from the row (mxu.popacc), so
   * the add is done when the epilogue runs. fuse[i] says how op i takes op fuse_of[i]
   * into one vfma; skip[i]: op i emits nothing (the bias add, a broadcast only it
   * reads, an op fused into a later one). */
  int32_t bias, bias_row;
  uint8_t fuse[MM_MAX_EPI];      /* MmFuse */
  int32_t fuse_of[MM_MAX_EPI];
  bool skip[MM_MAX_EPI];
} MmPlan;

/* Checks the group and fills the plan (shapes, units, blocks, epilogue); reports
 * what it cannot lower through tile_lower_error. */
bool mm_plan(TileLowerCtx *cx, const TileGroup *g, MmPlan *p);

/* The row of the plan that is value v, or -1. */
int32_t mm_row_index(const MmPlan *p, const TileValue *v);
/* The tile operand of the plan that is value v, or -1. */
int32_t mm_tile_index(const MmPlan *p, const TileValue *v);

/* Slots of a tile operand: the block whose pieces are copied in, the one popping, and
 * the blocks before it whose last rows are still popped (one; two with one row tile,
 * whose pops trail by two blocks). */
static inline int64_t mm_tile_slots(const MmPlan *p) { return p->Mb <= p->sub ? 4 : 3; }

/* B slots of Kb x Nb pieces: the ring's, then the padded last K step's (eslots) where K
 * is padded. */
static inline int64_t mm_b_slots(const MmPlan *p) {
  return p->ring + (p->Kr < p->Kb ? p->eslots : 0);
}

/* Finds the epilogue ops done elsewhere or fused (MmPlan.bias, fuse, skip). */
void mm_plan_folds(MmPlan *p);

/* VMEM bytes the plan's buffers take. */
int64_t mm_plan_vmem(const MmPlan *p);

/* Emits the epilogue's constants (splat operands, masks) at the current point, into
 * p->k: made once instead of a `vli` per result tile in the row loops. */
void mm_epilogue_consts(TileLowerCtx *cx, MmPlan *p);

/* Where the epilogue of one result tile finds its inputs: row_addr[i] is an sreg with
 * the VMEM address of row i's element for the block's first column; tile_addr[i] one
 * with tile operand i's piece, tile_off[i] bytes before the tile's first row, and
 * tile_pitch[i] an sreg with its sublane pitch; tcol is the tile's column within the
 * block. */
typedef struct MmEpiAt {
  const int32_t *row_addr;
  int32_t zero_stride;
  const int32_t *tile_addr, *tile_pitch;
  const int64_t *tile_off;
  int64_t tcol;
} MmEpiAt;

/* The epilogue on one result tile: acc holds the f32 matmul tile. Returns the vreg
 * with the value to store. */
int32_t mm_epilogue_emit(TileLowerCtx *cx, const MmPlan *p, int32_t acc, const MmEpiAt *at);

#endif
