/* `tilec run --target cuda-smXX`: the GPU half of cmd_run.c (run_cuda.c). */
#ifndef TILEC_RUN_CUDA_H
#define TILEC_RUN_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tile/ir.h"

/* --in/--out NAME=FILE.npy; name points into argv (the part before '='). */
typedef struct TilecBinding {
  const char *name;
  size_t name_len;
  const char *file;
} TilecBinding;

typedef struct TilecCudaRun {
  const char *program, *func;
  const char *arch; /* "sm_90" */
  const TilecBinding *in, *out;
  int nin, nout;
  bool stats;        /* per-launch table */
  bool compile_only; /* compile through the cache, print the entry, do not run */
  int warmup, repeat;
} TilecCudaRun;

/* Whether name is a CUDA target ("cuda-sm90"); sets arch ("sm_90"). */
bool tilec_cuda_target(const char *name, char *arch, size_t n);
/* Runs a .tile program on the GPU; returns a tilec exit code. */
int tilec_run_cuda(const TilecCudaRun *r);
/* "f32 [2, 3]": an element type and shape, for messages. */
void tilec_shape_text(TileElem e, int rank, const int64_t *dims, char *buf, size_t n);
/* Whether .npy data of element type have may feed a buffer of type want: the same type,
 * f32 for bf16 (rounded on the way in), f8e4m3fn for f8e5m2. */
bool tilec_npy_elem_fits(TileElem want, TileElem have);
/* f32 words rounded to bf16 (nearest even, NaN kept quiet) in place: n values, the
 * result packed into the first 2n bytes. */
void tilec_f32_to_bf16(void *data, size_t n);

#endif
