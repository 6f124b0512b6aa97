/* The CUDA backend's internal interface, shared by its files:
 *   emit.c        the driver: passes, groups, buffers, one emitter per group
 *   elemental.c   values as C expressions at an index (every group's arithmetic)
 *   emit_rows.c   elementwise and row-wise groups (flat and block-per-row kernels)
 *   emit_matmul.c matmul groups: mma.sync tensor cores (bf16/f16) or f32 SIMT, epilogue
 *   emit_wgmma.c  matmul groups on sm_90a: warpgroup MMA (wgmma.mma_async)
 *   emit_attn.c   attention (flash-style prefill and decode, GQA, causal)
 *   emit_select.c argmax and top-k
 *   prelude.c     the device helpers every program starts with
 *   target.c, nvrtc.c, nvcc.c  targets and the two compile paths
 *
 * Every kernel is written into a growing string (Buf); a group's emitter appends one
 * or more kernels to the program's source and one launch per kernel. */
#ifndef TILE_CUDA_INTERNAL_H
#define TILE_CUDA_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "tile/cuda.h"
#include "tile/ops.h"

/* ---- growing strings ---- */
typedef struct Buf {
  char *p;
  size_t n, cap;
  bool oom;
} Buf;

void buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(Buf *b, const char *fmt, va_list ap);
void buf_puts(Buf *b, const char *s);
void buf_free(Buf *b);

/* ---- the program being emitted ---- */
typedef struct CudaEmit {
  TileModule *m;
  TileFunc *f;
  TileDiag *d;
  TileCudaProgram *p;
  Buf src;
  int cap_bufs, cap_launches;
  /* value -> buffer (index into p->bufs), -1 when the value has none */
  TileValue **bval;
  int32_t *bidx;
  int nbval, cap_bval;
  int nkernels; /* kernels written, for unique names */
} CudaEmit;

/* The buffer holding v, or -1. */
int ce_buffer_of(const CudaEmit *e, const TileValue *v);
/* Adds a buffer (name, bind, type); returns its index or -1 (out of memory). */
int ce_add_buffer(CudaEmit *e, const char *name, int bind, const TileType *t);
bool ce_map_value(CudaEmit *e, const TileValue *v, int buf);
/* Appends a launch; returns it (zeroed but for kernel name) or NULL. */
TileCudaLaunch *ce_add_launch(CudaEmit *e, const char *kernel, const TileOp *src);
/* Unique kernel name "g<group>_<what>[_n]" written to out. */
void ce_kernel_name(CudaEmit *e, int group, const char *what, char *out, size_t len);

/* ---- element types in C ---- */
/* The type a buffer stores (bf16 as raw 16 bits, i1 as int). */
const char *ce_storage_type(TileElem e);
/* The type values are computed in (float for every float type, int, long long). */
const char *ce_compute_type(TileElem e);
bool ce_elem_supported(TileElem e);
/* An expression turning the stored element `x` into the compute type, and back. */
void ce_load_expr(Buf *b, TileElem e, const char *x);
void ce_store_expr(Buf *b, TileElem e, const char *x);

/* ---- elemental code: a value at an index, as C statements and a variable ---- */
typedef struct Gen Gen;
typedef struct Scope Scope;

/* One index of a value: a C expression (int) and the loop variables it reads. */
typedef struct Idx {
  const char *e;
  uint64_t vars;
} Idx;

enum { GEN_MAX_VARS = 64, GEN_MAX_ARGS = TILE_CUDA_MAX_ARGS };

/* group: the fusion group computed here (values of other groups, parameters are read
 * from their buffers); -1 computes only constants and iota. */
Gen *gen_new(CudaEmit *e, int group);
void gen_free(Gen *g);
/* The outermost scope (the kernel body, or the body of a per-element loop). */
Scope *gen_root(Gen *g, bool uniform);
/* Binds a new loop variable named name to scope s; returns its bit. */
uint64_t gen_bind_var(Gen *g, Scope *s, const char *name);
/* A scope nested in parent (a loop's body); its text is written by gen_close. */
Scope *gen_open(Gen *g, Scope *parent, bool uniform);
/* Takes the scope's text (the caller wraps it in its loop) and frees the scope. */
char *gen_take(Gen *g, Scope *s);
Buf *gen_text(Scope *s);
/* An interned string. */
const char *gen_str(Gen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Row mode: the block walks the columns of rows of C elements with a block-wide loop,
 * so a last-axis reduce of C elements at a uniform place is a block reduction. */
void gen_set_rows(Gen *g, int64_t cols);
/* The value v already sits in variable expr at index idx within scope s. */
void gen_seed(Gen *g, Scope *s, const TileValue *v, const Idx *idx, const char *expr);
/* v at idx (v's rank entries): statements go to the scope the index belongs in;
 * returns the variable or literal (compute type), or NULL after a diagnostic. */
const char *gen_value(Gen *g, Scope *cur, const TileValue *v, const Idx *idx);
/* A pointer parameter for buffer buf (registered as the kernel's next argument). */
const char *gen_buffer_arg(Gen *g, int buf);
/* The kernel's parameter list ("unsigned short *b0, float *b3") and its launch args. */
void gen_params(Gen *g, Buf *out, TileCudaLaunch *l);
/* Linear offset of idx in a row-major tensor of type t ("0" for rank 0). */
const char *gen_linear(Gen *g, const TileType *t, const Idx *idx);
bool gen_failed(const Gen *g);

/* ---- group emitters ---- */
typedef struct Group {
  int id;
  TileOp **ops;
  int nops;
  TileValue **outs; /* values read outside the group (or returned) */
  int nouts;
} Group;

bool ce_emit_rows(CudaEmit *e, const Group *g);
bool ce_emit_matmul(CudaEmit *e, const Group *g, TileOp *mm);
bool ce_emit_attention(CudaEmit *e, const Group *g, TileOp *op);
bool ce_emit_argmax(CudaEmit *e, const Group *g, TileOp *op);
bool ce_emit_topk(CudaEmit *e, const Group *g, TileOp *op);
/* A flat kernel (one thread per element) writing the given values of one shape into
 * buffers dst (NULL: each value's own buffer); used for elementwise groups, outputs of
 * odd shape and copies of returned values. */
bool ce_emit_flat(CudaEmit *e, int group, const char *what, TileValue *const *vals,
                  const int *dst, int nvals, const TileOp *src);

/* ---- matmul kernels (emit_matmul.c: mma.sync and SIMT; emit_wgmma.c: sm_90a) ---- */
/* C [batch..., M, N] = A [batch..., M, K] x B [(batch...,) K, N]. */
typedef struct CeMatmul {
  const TileValue *a, *b, *c;
  int64_t M, N, K, batch;
  int nbatch; /* batch dims of C */
  bool b_batched;
} CeMatmul;

/* What every matmul kernel shares: the operands' pointer parameters `pa`, `pb`, the
 * epilogue (`pre`: per-block statements deriving the batch indices from `bz`; `epi`:
 * per-accumulator statements reading `row`, `col`, `accv` and storing every output of
 * the group) and the launch, one block per bm x bn tile of C (grid x: N tiles, y: M
 * tiles, z: batch). */
typedef struct CeMatmulKernel {
  Gen *g;
  const char *pa, *pb;
  Buf pre;
  char *epi;
  TileCudaLaunch *l;
  char name[64];
  int bm, bn;
} CeMatmulKernel;

bool ce_matmul_begin(CudaEmit *e, const Group *grp, TileOp *op, const CeMatmul *mm,
                     const char *what, int threads, int bm, int bn, CeMatmulKernel *mk);
/* Appends the kernel's comment line (what computes the tile: "SIMT"), its signature
 * (__launch_bounds__ with min_blocks per SM unless 0) and its opening brace to k. */
void ce_matmul_head(Buf *k, const Group *grp, const CeMatmul *mm, const CeMatmulKernel *mk,
                    const char *what, int min_blocks);
/* Appends the block's place: `bz` (the batch), `m0`, `n0` (its tile's first row and
 * column of C) and `abase`, `bbase` (the batch's first element of A and of B). */
void ce_matmul_origin(Buf *k, const CeMatmul *mm, const CeMatmulKernel *mk);
/* Appends `for (...) { row, col, accv = ...; bounds-checked epilogue }` to k: `loop` is
 * the loop header with its row/col/accv declarations (each ending in ";\n"). */
void ce_matmul_store(Buf *k, const CeMatmul *mm, const CeMatmulKernel *mk, const char *loop);
/* Appends kernel text k to the program unless generating it failed; frees both. */
bool ce_matmul_end(CudaEmit *e, CeMatmulKernel *mk, Buf *k);
/* Writes the cp.async helpers (tc_smem_addr, tc_cp16, tc_cp_commit, tc_cp_wait1) into
 * the program once. */
void ce_matmul_cp_helpers(CudaEmit *e);
/* The sm_90a kernel: warpgroup MMA (wgmma) from swizzled shared memory. */
bool ce_emit_wgmma(CudaEmit *e, const Group *grp, TileOp *op, const CeMatmul *mm, bool f16);
/* Whether arch ("sm_90a") has the warpgroup MMA instructions (target.c). */
bool ce_arch_has_wgmma(const char *arch);

/* The device helpers every program starts with. */
extern const char ce_prelude[];

/* Shape helpers. */
int64_t ce_numel(const TileType *t);

#endif
