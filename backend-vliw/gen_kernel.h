/* The tile-level kernel compiler's shared state (gen_kernel*.c). A `kernel` is lowered
 * by walking its body once, in program order, keeping for every IR value what it is in
 * the machine:
 *
 *   scalar (i32, i1)  KInt: a constant, an affine form c + sum coef[l] * iv(l) over the
 *                     induction registers of the enclosing machine loops, or an sreg;
 *                     ops that are neither stay *lazy* (their op is kept) until a use
 *                     needs a register, so a compare only an `if` reads costs nothing
 *   tensor            KTensor: a grid of sublanes x lanes tiles, each in a vreg (KT_REGS),
 *                     one splat constant (KT_SPLAT), or read from a VMEM buffer at its
 *                     use (KT_VIEW: a `load` all of whose uses are tile_matmul operands
 *                     before anything may write the buffer, so 128x128 MXU operands
 *                     stream from VMEM instead of taking 16 vregs each)
 *   buffer            KBuf: a MIR buffer (bound HBM for parameters, VMEM/SMEM for alloc)
 *   semaphore, token  a MIR semaphore id; a token remembers its DMA's buffers
 *
 * Control flow has no branches in MIR: a `for` becomes counted loops, one per piece of
 * its iteration range in which every `if` that depends on its index is decided the same
 * way (gen_kernel_ctl.c); an `if` is decided at compile time from the loop indices. */
#ifndef TILE_GEN_KERNEL_H
#define TILE_GEN_KERNEL_H

#include "lower_internal.h"

enum {
  KX_MAX_SYM = 4,      /* machine loops nest 4 deep: symbolic induction levels */
  KX_MAX_LOOPS = 32,   /* IR loops nested (one-trip pieces are not machine loops) */
  KX_MAX_PIECES = 64,  /* pieces one loop may be peeled into */
  KX_MAX_PITCH = 16,   /* distinct row pitches kept in registers */
};

typedef struct KInt {
  int32_t reg;            /* >= 0: the value is in this sreg; else the affine form */
  int64_t c, coef[KX_MAX_SYM];
  int64_t lo, hi;         /* the values it can take (division by constants needs it) */
} KInt;

typedef enum KTKind { KT_SPLAT, KT_REGS, KT_VIEW } KTKind;

typedef struct KTensor {
  uint8_t kind;           /* KTKind */
  uint8_t elem;           /* TileElem */
  int32_t rows, cols;     /* tile grid, row-major */
  uint32_t bits;          /* KT_SPLAT: the lane bits (f32 lanes for floats) */
  int32_t splat_reg;      /* KT_SPLAT: a vreg holding it once made, else -1 */
  int32_t *vreg;          /* KT_REGS: rows * cols */
  bool shared;            /* another value names the same registers (an `if` result) */
  /* KT_VIEW: tile (r, c) at buf + dyn + base + row_off[r] + c * lanes * esize, its
   * sublanes `pitch` bytes apart */
  int32_t buf, dyn;       /* dyn: sreg with a run-time byte offset, or -1 */
  int64_t base, pitch;
  int64_t *row_off;
} KTensor;

typedef struct KBuf {
  int32_t mir;            /* MIR buffer id */
  TileType type;
} KBuf;

typedef struct KToken {
  int32_t sem, src, dst;  /* the DMA's semaphore and MIR buffers */
} KToken;

typedef enum KEntKind { KE_NONE, KE_INT, KE_LAZY, KE_TENSOR, KE_BUF, KE_SEM, KE_TOKEN } KEntKind;

typedef struct KEnt {
  uint8_t kind;           /* KEntKind */
  union {
    KInt i;
    const TileOp *lazy;   /* KE_LAZY: the scalar op to emit when a register is needed */
    KTensor *t;           /* arena-owned, so it outlives rehashing of the map */
    KBuf b;
    int32_t sem;
    KToken tok;
  };
} KEnt;

typedef struct KSlot {
  const TileValue *v;
  KEnt e;
} KSlot;

/* An IR `for` around the current point: the piece being emitted. */
typedef struct KLoop {
  const TileValue *iv;
  int64_t start, step, trips;
  int sym;                /* symbolic level (a machine loop), or -1 for a one-trip piece */
} KLoop;

/* A semaphore and a buffer some dma_start on it touches (for waits without a token). */
typedef struct KSemUse {
  const TileValue *sem, *buf;
} KSemUse;

typedef struct Kx {
  TileLowerCtx *cx;
  TileMir *m;
  const TileTarget *t;
  TileModule *mod;
  KSlot *map;
  size_t cap, n;
  KLoop loops[KX_MAX_LOOPS];
  int nloops;
  int32_t symreg[KX_MAX_SYM];
  int64_t sym_lo[KX_MAX_SYM], sym_hi[KX_MAX_SYM];
  int nsym;
  int64_t pitch_bytes[KX_MAX_PITCH];
  int32_t pitch_reg[KX_MAX_PITCH];
  int npitch;
  KSemUse *semuse;
  int32_t nsemuse;
  int64_t vmem_used, smem_used;
} Kx;

/* ---- gen_kernel.c: values, diagnostics, the walk ---- */

KEnt *kx_get(Kx *k, const TileValue *v);          /* NULL when v has no entry */
void kx_set(Kx *k, const TileValue *v, KEnt e);
/* "cannot lower 'op': ..." at op; returns false. */
bool kx_error(Kx *k, const TileOp *op, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Lowers the ops of b up to (not including) its yield or return; *end gets that op. */
bool kx_block(Kx *k, const TileBlock *b, const TileOp **end);
void kx_source(Kx *k, const TileOp *op);
int32_t kx_emit(Kx *k, TileMirInst in);
int32_t kx_li(Kx *k, int64_t v);
int32_t kx_li_buf(Kx *k, int32_t buf, int64_t off);
/* An sreg holding a row pitch (made once, on first ask). */
int32_t kx_pitch(Kx *k, int64_t bytes);
int kx_esize(TileElem e);

/* ---- gen_kernel_int.c: scalars ---- */

KInt kx_const(int64_t c);
bool kx_is_const(const KInt *a);
/* The scalar v as a KInt (emitting a lazy op and what it needs); false with a
 * diagnostic at user when v is not an integer scalar. */
bool kx_int(Kx *k, const TileValue *v, const TileOp *user, KInt *out);
int32_t kx_reg(Kx *k, const KInt *a);             /* an sreg holding a */
KInt kx_add(Kx *k, KInt a, KInt b);
KInt kx_scale(Kx *k, KInt a, int64_t s);
/* Defines a scalar op's result: folded, affine, or lazy. */
bool kx_scalar_op(Kx *k, const TileOp *op);
/* v's value at compile time with the induction variables env[i].iv = val[i]; false
 * when v depends on anything else. */
bool kx_static(const TileValue *v, const TileValue *const *env_iv, const int64_t *env_val,
               int nenv, int64_t *out);
/* 1 when v is decided at compile time and depends on induction variable iv, 0 when
 * decided and independent of it, -1 when it depends on run-time data. */
int kx_static_deps(const TileValue *v, const TileValue *iv);
/* Whether op computes on scalars (its result is an integer scalar). */
bool kx_is_scalar_op(const TileOp *op);

/* ---- gen_kernel_ctl.c: for and if ---- */

bool kx_for(Kx *k, const TileOp *op);
bool kx_if(Kx *k, const TileOp *op);

/* ---- gen_kernel_ops.c: buffers, tensors, DMA and semaphores ---- */

bool kx_alloc(Kx *k, const TileOp *op);
bool kx_load(Kx *k, const TileOp *op);
bool kx_store(Kx *k, const TileOp *op);
bool kx_tensor_const(Kx *k, const TileOp *op);
bool kx_elementwise(Kx *k, const TileOp *op);
bool kx_dma_start(Kx *k, const TileOp *op);
bool kx_wait(Kx *k, const TileOp *op);
bool kx_semaphore(Kx *k, const TileOp *op);
bool kx_sem_signal(Kx *k, const TileOp *op);
/* The tile grid of a tensor type; false with a diagnostic at op when the shape is not
 * whole tiles or holds more tiles than the vector registers. */
bool kx_grid(Kx *k, const TileOp *op, const TileType *t, bool in_regs, int32_t *rows,
             int32_t *cols);
/* A vreg holding tile (r, c) of t (a load for a view, a vli for a splat). */
int32_t kx_tile(Kx *k, KTensor *t, int32_t r, int32_t c);
/* Writes tile (r, c) of t into vreg dst. */
void kx_tile_into(Kx *k, int32_t dst, KTensor *t, int32_t r, int32_t c);
/* The tensor entry of v (a diagnostic at user when v is not a tensor). */
KTensor *kx_tensor(Kx *k, const TileValue *v, const TileOp *user);

/* ---- gen_kernel_mxu.c ---- */

bool kx_tile_matmul(Kx *k, const TileOp *op);

#endif
