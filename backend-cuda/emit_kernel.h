/* Tile-level kernels on the CUDA backend (backend-cuda/emit_kernel*.c).
 *
 * A `kernel` becomes one CUDA kernel run by one thread block (the machine's single
 * core). Its parts:
 *   emit_kernel.c       the driver: storage plan (shared memory or global scratch),
 *                       parameters, scalars, `for` and `if`, semaphores and waits
 *   emit_kernel_tile.c  tiles: elementwise ops, load/store/dma_start copies, and
 *                       tile_matmul on tensor cores (mma.sync m16n8k16)
 *
 * Every value of the kernel has a KVal: a C variable (scalars), a literal (splat
 * constants), a tile of its own storage, a view into a buffer (a load read where it
 * lies), or a buffer (parameters and allocs). Every block-wide step ends with a
 * __syncthreads(), so each op sees the whole effect of the ones before it. */
#ifndef TILE_CUDA_EMIT_KERNEL_H
#define TILE_CUDA_EMIT_KERNEL_H

#include "cuda_internal.h"

enum { KV_SCALAR = 1, KV_SPLAT, KV_TILE, KV_VIEW, KV_BUF };

typedef struct KVal {
  const TileValue *v;
  int kind;
  char name[64];   /* scalar: variable; tile, buf, view: the pointer variable */
  char off[32];    /* view: the variable holding the element offset of its origin */
  char lit[48];    /* splat: the literal in compute type */
  const TileType *buf; /* view: the viewed buffer's type */
  int storage;     /* tile, buf: storage id (shared by aliases); -1 none */
} KVal;

typedef struct KStore {
  int64_t bytes, off;
  bool shared; /* in dynamic shared memory, else in the global scratch buffer */
} KStore;

/* The state of one kernel's emission. */
typedef struct KEmit {
  TileModule *m;
  TileFunc *f;
  TileDiag *d;
  Buf body;   /* the kernel body */
  int indent;
  KVal *vals;
  int nvals, cap_vals;
  KStore *st;
  int nst, cap_st;
  int64_t smem, scratch;
  int nnames; /* counter for unique C names */
} KEmit;

enum { KERNEL_THREADS = 256 };
/* Dynamic shared memory a kernel may use: within the opt-in limit of sm_80 and later
 * parts (sm_86 and sm_89 have 99 KiB, sm_80 163 KiB, sm_90 227 KiB). */
enum { KERNEL_SMEM_BUDGET = 96 * 1024 };

/* emit_kernel.c */
KVal *kv_of(KEmit *k, const TileValue *v);
KVal *kv_new(KEmit *k, const TileValue *v, int kind);
int kv_new_storage(KEmit *k, int64_t bytes);
void kline(KEmit *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The C expression of index i of access u (a constant or a scalar's variable). */
const char *k_index(KEmit *k, const TileUse *u, int i, char *out, size_t len);
/* Number of uses of v in block b and its nested blocks. */
int k_count_uses(const TileBlock *b, const TileValue *v);
/* Gives a tensor result a storage of its own (or in place of operand `inplace`,
 * -1 for none, when that operand dies here). */
bool k_tile_result(KEmit *k, const TileOp *op, int inplace);

/* emit_kernel_tile.c */
/* The element of value kv at flat index expression i, in compute type (views and
 * tiles read their pointer, splats give their literal). */
void kt_elem(KEmit *k, const KVal *kv, const char *i, char *out, size_t len);
bool kt_elementwise(KEmit *k, const TileOp *op);
bool kt_load(KEmit *k, const TileOp *op);
bool kt_store(KEmit *k, const TileOp *op);
bool kt_dma(KEmit *k, const TileOp *op);
bool kt_matmul(KEmit *k, const TileOp *op);
/* Copies tensor src into the storage of tile dst (both of one shape and type). */
bool kt_copy(KEmit *k, const KVal *dst, const KVal *src);
/* Is op an elementwise op the kernel emitter computes (tensor or scalar)? */
bool kt_is_elementwise(int kind);
/* The C expression of op applied to operand expressions a (b, c), in compute type. */
bool kt_expr(KEmit *k, const TileOp *op, const char *const *x, char *out, size_t len);

/* The entry point, from tile_cuda_emit. */
bool ce_emit_kernel(TileModule *m, TileFunc *f, TileCudaProgram *out, TileDiag *d);

#endif
