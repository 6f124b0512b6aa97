/* Lowering tensor-level functions to MIR (include/tile/mir.h).
 *
 * After the tensor passes (decompose, fuse), every op of a `func` body belongs to a
 * fusion group: the ops the `fuse` pass tagged with the same `group = N` attribute
 * (an op without one is a group of its own). The lowering walks the groups in program
 * order and hands each to the generator for its kind, which appends MIR that reads the
 * group's inputs from memory and writes its outputs to memory.
 *
 * Tensors between groups live in HBM, row-major, in the element type of the value:
 * function parameters and results are bound buffers (symbols named after the parameter
 * or `result`, `result1`, ...); other values get HBM scratch buffers. A generator asks
 * for a value's placement with tile_lower_tensor. Splat constants (`constant` ops) are
 * not placed: a generator reads their value with tile_lower_splat and uses an
 * immediate.
 *
 * A generator chooses its own tiling (vreg tiles of sublanes x lanes, MXU tiles of
 * mxu_dim, blocks that fit the VMEM budget), its DMA buffering depth (from
 * tile_lower_dma_cycles and the work per block), and marks loops that the modulo
 * scheduler should pipeline. What it cannot lower (an op, a type, a shape) it reports
 * with tile_lower_error at the op's location and returns false. */
#ifndef TILE_LOWER_H
#define TILE_LOWER_H

#include <stdbool.h>
#include <stdint.h>

#include "tile/diag.h"
#include "tile/ir.h"
#include "tile/mir.h"
#include "tile/target.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Group kinds: X(ENUM, "name", generator function). The lowering picks the kind from
 * the group's ops (tile_group_classify). */
#define TILE_GROUP_KINDS(X)                                                    \
  X(MATMUL, "matmul", tile_gen_matmul)             /* matmul/dot_general + epilogue */ \
  X(ROWWISE, "rowwise", tile_gen_rowwise)          /* elementwise, last-axis reduce, broadcast */ \
  X(ATTENTION, "attention", tile_gen_attention)    /* attention, prefill or decode */ \
  X(GATHER, "gather", tile_gen_gather)             /* embedding lookup */ \
  X(SELECT_TOP, "select_top", tile_gen_select_top) /* argmax, topk */ \
  X(LAYOUT, "layout", tile_gen_layout)             /* reshape, transpose, slice, concat, convert, ring ops */ \
  X(COLLECTIVE, "collective", tile_gen_collective) /* all_reduce, all_gather, ... on the torus */

typedef enum TileGroupKind {
#define X(e, n, f) TILE_GROUP_##e,
  TILE_GROUP_KINDS(X)
#undef X
  TILE_GROUP_KIND_COUNT
} TileGroupKind;

typedef struct TileGroup {
  TileGroupKind kind;
  int32_t id;        /* the `group` attribute, or -1 for an untagged op */
  TileOp **ops;      /* in program order */
  int32_t nops;
  TileValue **in;    /* values read by the group and defined outside it (no splats) */
  int32_t nin;
  TileValue **out;   /* values defined in the group and used after it or returned */
  int32_t nout;
} TileGroup;

/* Where a tensor lives: a MIR buffer holding it row-major. */
typedef struct TileTensorRef {
  int32_t buf;       /* MIR buffer id (HBM) */
  uint8_t elem;      /* TileElem */
  int32_t rank;
  int64_t dims[TILE_MAX_RANK];
  int64_t bytes;     /* numel * element size */
} TileTensorRef;

typedef struct TileLowerCtx TileLowerCtx;

/* ---- what the lowering gives generators ---- */

TileMir *tile_lower_mir(TileLowerCtx *cx);
const TileTarget *tile_lower_target(TileLowerCtx *cx);
TileDiag *tile_lower_diag(TileLowerCtx *cx);
/* The HBM placement of a tensor value (made on first ask). */
TileTensorRef tile_lower_tensor(TileLowerCtx *cx, const TileValue *v);
/* Bytes a stored element of type e takes in memory: 4 for f32, i32 and i1 (an i1 is
 * an i32 word holding 0 or 1), 2 for bf16; 0 for a type the backend cannot store. */
int tile_lower_elem_bytes(TileElem e);
/* The 32 lane bits of x in element type e, as a vector register holds it: f32 bits
 * (rounded to bf16 precision, nearest even, for bf16: its stored half is the top 16
 * bits), 0 or 1 for i1, else an integer clamped to i32 (NaN is 0). */
uint32_t tile_lower_lane_bits(TileElem e, double x);
/* True when v is defined by a splat `constant`; *value gets it as a double. */
bool tile_lower_splat(const TileValue *v, double *value);
/* A scalar register holding 0, defined at the start of the program (for absolute
 * addressing: `vld v, zero, stride, imm` with imm_buf). */
int32_t tile_lower_zero(TileLowerCtx *cx);
/* Reports "cannot lower ..." at op's location (printf-style); returns false. */
bool tile_lower_error(TileLowerCtx *cx, const TileOp *op, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- DMA between HBM and VMEM (backend-vliw/lower_dma.c) ---- */

/* A DMA site: one descriptor in SMEM, filled at layout time, and one semaphore. Every
 * transfer from a site has the same shape (so transfers complete in the order they were
 * issued and one semaphore counts them); only the source and destination addresses
 * change between transfers.
 *
 * Shape: count2 x count1 runs of count0 bytes; strides in bytes per side. */
typedef struct TileDmaShape {
  int64_t count0, count1, count2;
  int64_t src_stride1, src_stride2, dst_stride1, dst_stride2;
} TileDmaShape;

typedef struct TileDmaSite {
  int32_t desc;      /* SMEM buffer holding the descriptor */
  int32_t desc_reg;  /* sreg holding the descriptor's address (defined at site creation) */
  int32_t sem;
  int32_t src_buf, dst_buf;
  int64_t bytes;
  int32_t est_cycles;
} TileDmaSite;

/* Makes a site copying from (src_buf + src_offset) to (dst_buf + dst_offset) with the
 * given shape; emits the `li` of the descriptor address at the current point (call it
 * before the loop that issues). */
TileDmaSite tile_dma_site(TileLowerCtx *cx, int32_t src_buf, int64_t src_offset,
                          int32_t dst_buf, int64_t dst_offset, TileDmaShape shape);
/* Issues one transfer. src_addr_reg / dst_addr_reg: an sreg holding the full byte
 * address for this transfer (stored into the descriptor first), or -1 to keep the
 * descriptor's. The slot offsets name the slots of multi-buffered buffers touched. */
void tile_dma_issue(TileLowerCtx *cx, const TileDmaSite *s, int32_t src_addr_reg,
                    int src_slot_ofs, int32_t dst_addr_reg, int dst_slot_ofs);
/* Waits for the oldest outstanding transfer of the site. */
void tile_dma_wait(TileLowerCtx *cx, const TileDmaSite *s, int src_slot_ofs,
                   int dst_slot_ofs);
/* Expected cycles for a lone HBM<->VMEM transfer of `bytes` on the target. */
int32_t tile_lower_dma_cycles(const TileTarget *t, int64_t bytes);
/* After layout: DMA issues store only the low 32 bits of an address, so every HBM
 * buffer must end below 4 GiB; otherwise a diagnostic naming the buffer, false. */
bool tile_dma_check_layout(const TileMir *m, TileDiag *d);

/* ---- elementwise ops on vreg tiles (backend-vliw/ew.c) ----
 *
 * Values in vector registers are f32 lanes (bf16 data is widened by vld.bf16 and rounded
 * by vst.bf16 or vrnd.bf16), i32 lanes for integers, and 0/1 i32 lanes for i1. */

/* Whether tile_ew_emit handles op (a core elementwise tensor op: add, sub, mul, div, max,
 * min, pow, neg, abs, exp, log, sqrt, rsqrt, recip, tanh, logistic, compare, select,
 * convert, and/or/xor/not on i1/ints, rem on ints). */
bool tile_ew_supported(const TileOp *op);
/* Emits the vector ops computing op on one vreg tile per operand: operand_vregs[i] is the
 * vreg holding operand i's tile, or -1 when operand i is a splat constant (materialized
 * with vli). Returns a fresh vreg with the result, exact to the f32 op (IEEE division,
 * the machine's own exp/log/tanh/rsqrt). */
int32_t tile_ew_emit(TileLowerCtx *cx, const TileOp *op, const int32_t *operand_vregs);

/* Constants (sign masks, 1.0, splat operands) held in vregs, so a generator can make
 * them once before a loop instead of a `vli` per tile inside it. */
enum { TILE_EW_MAX_CONSTS = 24 };
typedef struct TileEwConsts {
  int32_t n;
  uint32_t bits[TILE_EW_MAX_CONSTS];
  int32_t vreg[TILE_EW_MAX_CONSTS];
} TileEwConsts;
/* Emits, at the current point of m, a `vli` for every constant tile_ew_emit_mir(op)
 * would need (its splat operands included) that k does not hold yet, and adds them to
 * k. Constants beyond TILE_EW_MAX_CONSTS are left to be made where they are used. */
void tile_ew_consts(TileMir *m, const TileOp *op, TileEwConsts *k);
/* tile_ew_emit on a bare MIR: constants come from k (may be NULL) or a fresh `vli`. */
int32_t tile_ew_emit_mir(TileMir *m, const TileOp *op, const int32_t *operand_vregs,
                         const TileEwConsts *k);
/* IEEE division by one divisor tile shared by many dividend tiles (a row sum broadcast
 * along its row): tile_ew_divisor prepares it once (reciprocal, negation, range scale),
 * tile_ew_divide then costs five vector ops (six with a scale) per dividend tile and
 * gives the same bits as a `div` op. */
typedef struct TileEwDivisor {
  int32_t recip, neg, scale; /* vregs; scale -1 when none */
} TileEwDivisor;
TileEwDivisor tile_ew_divisor(TileMir *m, int32_t divisor_vreg, const TileEwConsts *k);
int32_t tile_ew_divide(TileMir *m, int32_t x_vreg, const TileEwDivisor *d);

/* ---- the generators (backend-vliw/gen_*.c) ---- */

typedef bool TileGenFn(TileLowerCtx *cx, const TileGroup *g);
#define X(e, n, f) TileGenFn f;
TILE_GROUP_KINDS(X)
#undef X

/* "matmul", "rowwise", ... */
const char *tile_group_kind_name(TileGroupKind k);
/* The kind of a group from its ops; false (with a diagnostic at the first op that
 * fits no kind) when no generator takes it. */
bool tile_group_classify(TileLowerCtx *cx, TileGroup *g);

/* Lowers function `f` of m (tensor level, after the tensor passes) into mir. */
bool tile_lower_func(TileModule *m, TileFunc *f, TileMir *mir, TileDiag *d);
/* Lowers kernel `f` of m (tile level: buffers, loads, stores, tile_matmul, DMAs,
 * semaphores, `for` and `if` decided at compile time) into mir; tile_lower_func calls
 * it for a kernel (backend-vliw/gen_kernel.c, docs/compiler.md "Tile-level kernels"). */
bool tile_lower_kernel(TileModule *m, TileFunc *f, TileMir *mir, TileDiag *d);

#ifdef __cplusplus
}
#endif
#endif
