/* Torus programs on one GPU: a program of a mesh function (include/tile/cuda.h with
 * torus_rank > 0) runs every chip of the mesh on one device, so a multi-chip program
 * can be validated without a pod.
 *
 *   backend-cuda/emit_collective.c  the program: per-chip kernels, and per collective a
 *                                   TileCudaCollective (op, axes, type, dims, buffers)
 *                                   plus the reduce kernel it needs
 *   runtime/cuda_torus.c            the plan (below)
 *   runtime/cuda_torus_gpu.c        its GPU executor (the driver API by dlopen)
 *   runtime/cuda_torus_host.c       a host interpreter of the plan, and a checker that
 *                                   every pair of conflicting accesses is ordered
 *
 * The plan. Every chip gets its own copy of every buffer: one allocation per buffer,
 * chip c's slice at c * stride. Every chip gets a stream. Kernels launch once per chip
 * on the chip's stream, with the chip's slices as arguments. A collective expands into
 * the ring steps of the VLIW schedule (backend-vliw/gen_collective*.c; a permute along a
 * cycle or in halves: one copy per chip and part straight to its receiver): per ring step,
 * each chip's send is a device-to-device copy into the receiver's receive slot, issued
 * on the sender's stream with an event recorded after it; the receiver's stream waits
 * on that event, then combines the chunk into its partial (a reduce kernel) or copies
 * it into place. The steps are plain data, in an order where every wait comes after
 * the copy whose event it waits on, so the host interpreter (running them one after
 * another) and the GPU executor (issuing them to the chips' streams) run the same
 * list. Chips are numbered row-major over the torus, as on the emulator. */
#ifndef TILE_CUDA_TORUS_H
#define TILE_CUDA_TORUS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tile/cuda.h"
#include "tile/cuda_runtime.h"
#include "tile/diag.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(ENUM, "op name") */
#define TILE_CUDA_COLL_KINDS(X)              \
  X(ALL_REDUCE, "all_reduce")                \
  X(ALL_GATHER, "all_gather")                \
  X(REDUCE_SCATTER, "reduce_scatter")        \
  X(ALL_TO_ALL, "all_to_all")                \
  X(PERMUTE, "collective_permute")

typedef enum TileCudaCollKind {
#define X(e, n) TILE_CUDA_COLL_##e,
  TILE_CUDA_COLL_KINDS(X)
#undef X
  TILE_CUDA_COLL_COUNT
} TileCudaCollKind;

/* How two partials combine: X(ENUM, "kind attribute"). Floats combine in f32 (bf16 and
 * f16 widened, the result rounded to nearest even), integers in their type with
 * wraparound; max and min propagate NaN as numpy does. */
#define TILE_CUDA_REDUCE_KINDS(X) \
  X(ADD, "add")                   \
  X(MUL, "mul")                   \
  X(MAX, "max")                   \
  X(MIN, "min")

typedef enum TileCudaReduceKind {
  TILE_CUDA_REDUCE_NONE,
#define X(e, n) TILE_CUDA_REDUCE_##e,
  TILE_CUDA_REDUCE_KINDS(X)
#undef X
} TileCudaReduceKind;

/* Inline: the backend and the runtime both name them, and neither links the other. */
static inline const char *tile_cuda_coll_name(TileCudaCollKind k) {
  static const char *const names[] = {
#define X(e, n) n,
      TILE_CUDA_COLL_KINDS(X)
#undef X
  };
  return (unsigned)k < TILE_CUDA_COLL_COUNT ? names[k] : "?";
}

static inline const char *tile_cuda_reduce_name(TileCudaReduceKind k) {
  static const char *const names[] = {"none",
#define X(e, n) n,
                                      TILE_CUDA_REDUCE_KINDS(X)
#undef X
  };
  return (unsigned)k <= TILE_CUDA_REDUCE_MIN ? names[k] : "?";
}

/* Whether elements of type e combine with kind k: f32, bf16, f16, i32 and i64. */
static inline bool tile_cuda_reduce_supported(TileElem e, TileCudaReduceKind k) {
  bool typed = e == TILE_ELEM_F32 || e == TILE_ELEM_BF16 || e == TILE_ELEM_F16 ||
               e == TILE_ELEM_I32 || e == TILE_ELEM_I64;
  return typed && k >= TILE_CUDA_REDUCE_ADD && k <= TILE_CUDA_REDUCE_MIN;
}

/* One mesh axis of a collective: a whole torus dimension. */
typedef struct TileCudaCollAxis {
  int32_t dim;  /* torus dimension */
  int32_t size; /* chips along it */
} TileCudaCollAxis;

/* One collective of a program on a mesh: it runs after launches [0, at_launch) and
 * before the rest; collectives with the same at_launch run in list order. */
struct TileCudaCollective {
  uint8_t kind;   /* TileCudaCollKind */
  uint8_t reduce; /* TileCudaReduceKind (all_reduce, reduce_scatter), else NONE */
  uint8_t elem;   /* TileElem of operand and result */
  int32_t naxes;  /* in the op's order: a chip's rank over them is row-major, the
                   * first axis major (collective_permute: its axis, then its cycle
                   * axis if it has one) */
  TileCudaCollAxis axes[TILE_MAX_RANK];
  int32_t rank;   /* of operand and result */
  int64_t in_dims[TILE_MAX_RANK], out_dims[TILE_MAX_RANK];
  int32_t dim;        /* all_gather, reduce_scatter: dim; all_to_all: split_dim */
  int32_t concat_dim; /* all_to_all */
  int64_t shift;      /* collective_permute: chip at position q gets position q - shift */
  uint8_t cycle;      /* collective_permute, 1: positions are those on the cycle through
                       * axes[0] x axes[1] (tile_mesh_cycle_pos); 0: coordinates on axes[0] */
  uint8_t halves;     /* collective_permute, 1: the second half of dim 0 comes from
                       * position q + shift instead */
  int32_t src, dst;   /* buffer indices: the operand, the result */
  int32_t at_launch;
  char reduce_kernel[64]; /* the kernel combining two chunks; "" when none */
  const char *src_name;   /* the op, for reports */
  TileLoc src_loc;
};

/* ---- the plan (runtime/cuda_torus.c) ---- */

/* X(ENUM, "name", what it does) */
#define TILE_TORUS_STEPS(X)                                                            \
  X(LAUNCH, "launch", "launch p->launches[launch] on chip's stream, chip's slices")     \
  X(COPY, "copy", "rows x bytes from src to dst on chip's stream, then record event")   \
  X(WAIT, "wait", "chip's stream waits for event")                                      \
  X(REDUCE, "reduce", "dst[i] = dst[i] OP src[i], count elements, on chip's stream")

typedef enum TileTorusStepKind {
#define X(e, n, d) TILE_TORUS_##e,
  TILE_TORUS_STEPS(X)
#undef X
} TileTorusStepKind;

const char *tile_torus_step_name(TileTorusStepKind k);

/* A place in memory: buffer buf (a plan buffer) on chip `chip`, byte offset off. */
typedef struct TileTorusRef {
  int32_t chip, buf;
  int64_t off;
} TileTorusRef;

typedef struct TileTorusStep {
  uint8_t kind;   /* TileTorusStepKind */
  int32_t chip;   /* the stream it is issued on (a copy: the sender's) */
  int32_t coll;   /* the collective it belongs to; -1 for a launch */
  int32_t launch; /* LAUNCH: index into the program's launches */
  int32_t event;  /* COPY: the event recorded after it (-1: none, a copy within a chip);
                   * WAIT: the event waited for */
  TileTorusRef src, dst;
  int64_t bytes;  /* COPY: bytes per row; REDUCE: elements */
  int64_t rows, src_pitch, dst_pitch; /* COPY: rows of `bytes`, pitches in bytes */
  int32_t hops;   /* COPY between chips: links crossed (the closing step of a ring on
                   * an axis without wraparound crosses the whole line) */
} TileTorusStep;

/* A plan buffer: one of the program's (same index) or a collective's scratch (working
 * copies, receive slots), zero at the start of every run. */
typedef struct TileTorusBuffer {
  char name[64];
  int32_t prog;   /* index into the program's buffers, -1 for scratch */
  int64_t bytes;  /* per chip */
  int64_t stride; /* chip c's slice at c * stride: bytes rounded up to 256 */
} TileTorusBuffer;

typedef struct TileCudaTorusOptions {
  /* Per torus dimension: a wraparound link joins its ends (hop counts only: the ring
   * steps are the same either way, as on the machine). */
  bool wrap[TILE_MAX_RANK];
  /* Reductions pad the data to a multiple of granule elements per chunk, as the VLIW
   * schedule pads to whole vector tiles (sublanes x lanes): with the VLIW target's tile,
   * a reduction adds in the same order as the emulator. 0 or 1: no padding. */
  int64_t granule;
} TileCudaTorusOptions;

/* Every axis wraps; no padding. */
void tile_cuda_torus_options_default(TileCudaTorusOptions *o);

typedef struct TileCudaTorusPlan {
  int32_t nchips;
  int32_t rank;
  int32_t dims[TILE_MAX_RANK];
  bool wrap[TILE_MAX_RANK];
  int32_t nbufs; /* the program's buffers first (same indices), then scratch */
  TileTorusBuffer *bufs;
  int32_t nsteps;
  TileTorusStep *steps;
  int32_t nevents;
  /* Per collective, steps [coll_first[i], coll_first[i + 1]) and the bytes its copies
   * move between chips (coll_first has ncolls + 1 entries). */
  int32_t ncolls;
  int32_t *coll_first;
  int64_t *coll_bytes;
} TileCudaTorusPlan;

/* Expands program p (torus_rank > 0) into a plan; errors (a malformed collective, a
 * tensor too large) go to d at the collective's location. */
bool tile_cuda_torus_plan(const TileCudaProgram *p, const TileCudaTorusOptions *o,
                          TileCudaTorusPlan *plan, TileDiag *d);
void tile_cuda_torus_plan_free(TileCudaTorusPlan *plan);
/* One line per collective: its op, axes, steps, copies, bytes between chips. */
void tile_cuda_torus_plan_print(FILE *f, const TileCudaProgram *p, const TileCudaTorusPlan *plan);
/* Every step, one per line (for tests and debugging). */
void tile_cuda_torus_plan_dump(FILE *f, const TileCudaTorusPlan *plan);

/* Runs the plan on dev (runtime/cuda_torus_gpu.c): every chip's slices hold zeros,
 * initial contents and inputs, the steps go to the chips' streams in order, and the
 * outputs come back. in[k] and out[k] hold one block per chip in chip order (nchips x
 * the buffer's bytes). timing (may be NULL) gets the whole sequence (total_ms; no
 * per-launch times). Fails with a located message as tile_cuda_run does. */
bool tile_cuda_torus_run(TileCudaDevice *dev, const TileCudaProgram *p,
                         const TileCudaTorusPlan *plan, const uint8_t *cubin, size_t len,
                         const TileCudaHostBuffer *in, int nin, TileCudaHostBuffer *out,
                         int nout, const TileCudaRunOptions *o, TileCudaTiming *timing,
                         TileDiag *d);

/* ---- the host interpreter (runtime/cuda_torus_host.c) ---- */

/* Host memory of a plan: per plan buffer nchips * stride bytes, zeros and initial
 * contents as a run starts. NULL when out of memory. */
uint8_t **tile_cuda_torus_host_alloc(const TileCudaProgram *p, const TileCudaTorusPlan *plan);
void tile_cuda_torus_host_free(const TileCudaTorusPlan *plan, uint8_t **mem);
/* Runs the steps one after another on mem. A launch step runs through `launch` (NULL:
 * a launch is an error, as the host has no kernels). A wait on an event no earlier step
 * recorded is an error (the GPU would not wait for it). */
typedef bool (*TileTorusHostLaunch)(void *user, int chip, int launch, uint8_t **mem);
bool tile_cuda_torus_host_run(const TileCudaProgram *p, const TileCudaTorusPlan *plan,
                              uint8_t **mem, TileTorusHostLaunch launch, void *user,
                              TileDiag *d);
/* Checks that streams and events order every two steps whose memory overlaps where one
 * writes (a launch reads and writes all its arguments on its chip), so any order the GPU
 * may run them in gives the host interpreter's result. */
bool tile_cuda_torus_check(const TileCudaProgram *p, const TileCudaTorusPlan *plan,
                           TileDiag *d);
/* dst[i] = dst[i] OP src[i] for n elements of type e: the reduce kernels' rule. */
void tile_cuda_torus_combine(TileElem e, TileCudaReduceKind k, void *dst, const void *src,
                             int64_t n);

#ifdef __cplusplus
}
#endif
#endif
