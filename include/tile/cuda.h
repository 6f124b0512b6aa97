/* The CUDA backend: a tensor-level `func` becomes CUDA C (one kernel per fusion group,
 * launched in order), compiled with NVRTC at run time or nvcc ahead of time, and run
 * through the CUDA driver API, which the runtime opens with dlopen so that a machine
 * without a GPU still compiles and says "no CUDA device" when asked to run.
 *
 *   tensor IR --(decompose, fuse: the same passes as the VLIW compile)--> groups
 *   --(backend-cuda/emit*.c)--> TileCudaProgram (CUDA C + launch plan + buffers)
 *   --(backend-cuda/nvrtc.c or nvcc.c)--> cubin --(runtime/cuda*.c)--> GPU
 *
 * Buffers follow the VLIW lowering's rules (docs/compiler.md): parameters are bound
 * buffers named after the parameter, results `result`, `result1`, ...; tensors are
 * row-major in their element type (bf16 as raw 16-bit words, i1 as i32). */
#ifndef TILE_CUDA_H
#define TILE_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tile/diag.h"
#include "tile/ir.h"
#include "tile/object.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One device buffer of the program. */
typedef struct TileCudaBuffer {
  char name[64];
  uint8_t bind;  /* 0 scratch, or TileBindKind (in, out, inout) */
  uint8_t elem;  /* TileElem */
  int32_t rank;
  int64_t dims[TILE_MAX_RANK];
  int64_t bytes;
  /* Initial contents (dense constants, iota), or NULL. */
  uint8_t *init;
} TileCudaBuffer;

enum { TILE_CUDA_MAX_ARGS = 16 };

/* One kernel launch: the kernel's name in the source, its grid and block, dynamic
 * shared memory, and the buffers passed as its pointer arguments in order. */
typedef struct TileCudaLaunch {
  char kernel[64];
  uint32_t grid[3], block[3];
  uint32_t smem_bytes;
  int32_t nargs;
  int32_t args[TILE_CUDA_MAX_ARGS]; /* buffer indices */
  const char *src_name;             /* the source op of the group, for reports */
  TileLoc src_loc;
} TileCudaLaunch;

/* A collective between launches of a program on a mesh (include/tile/cuda_torus.h). */
typedef struct TileCudaCollective TileCudaCollective;

typedef struct TileCudaProgram {
  char arch[16];         /* "sm_90", "sm_80", ... */
  char *source;          /* CUDA C, NUL-terminated, self-contained (no host headers) */
  int32_t nbufs;
  TileCudaBuffer *bufs;
  int32_t nlaunches;
  TileCudaLaunch *launches;
  /* A program of a mesh function: the mesh's torus (torus_rank 0: one chip), every
   * buffer per chip, and the collectives between launches (runtime/cuda_torus*.c run
   * it, every chip on one GPU). */
  int32_t torus_rank;
  int32_t torus[TILE_MAX_RANK];
  int32_t ncolls;
  TileCudaCollective *colls;
} TileCudaProgram;

void tile_cuda_program_free(TileCudaProgram *p);

/* Targets the CUDA backend answers to: "cuda-sm80", "cuda-sm90" (the driver's --target).
 * Sets arch ("sm_90") and returns true for such a name. */
bool tile_cuda_target(const char *name, char *arch, size_t arch_len);

/* Emits CUDA C for function f of m (the tensor passes run first, inside). Anything the
 * backend cannot express gets a diagnostic at the source location and false. */
bool tile_cuda_emit(TileModule *m, TileFunc *f, const char *arch, TileCudaProgram *out,
                    TileDiag *d);

/* Compiles the program's source to a cubin with NVRTC (libnvrtc, opened with dlopen;
 * a machine without it gets a diagnostic). *cubin is malloc'ed. */
bool tile_cuda_nvrtc(const TileCudaProgram *p, uint8_t **cubin, size_t *len, TileDiag *d);
/* The same through nvcc (/usr/local/cuda/bin/nvcc or $CUDA_HOME/bin/nvcc), ahead of
 * time; fatbin = true makes a fatbin. */
bool tile_cuda_nvcc(const TileCudaProgram *p, bool fatbin, uint8_t **out, size_t *len,
                    TileDiag *d);

/* The prelude's 16-bit float conversions (tc_bf2f, tc_f2bf, tc_h2f, tc_f2h) on the host,
 * bit for bit: narrowing rounds to nearest even, NaN stays NaN (quiet). For constants'
 * contents and for host code that must combine data as the kernels do. */
static inline float tile_cuda_bits_to_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static inline uint32_t tile_cuda_f32_to_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static inline float tile_cuda_bf16_to_f32(uint16_t h) {
  return tile_cuda_bits_to_f32((uint32_t)h << 16);
}

static inline uint16_t tile_cuda_f32_to_bf16(float f) {
  const uint32_t u = tile_cuda_f32_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static inline float tile_cuda_f16_to_f32(uint16_t h) {
  const uint32_t s = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0) { /* zero or subnormal: m x 2^-24 */
    float x = (float)m * 5.9604644775390625e-8f;
    return s ? -x : x;
  }
  return tile_cuda_bits_to_f32(e == 31 ? (s | 0x7f800000u | (m << 13))
                                       : (s | ((e + 112u) << 23) | (m << 13)));
}

static inline uint16_t tile_cuda_f32_to_f16(float f) {
  const uint32_t x = tile_cuda_f32_to_bits(f), s = (x >> 16) & 0x8000u, a = x & 0x7fffffffu;
  if (a > 0x7f800000u) return (uint16_t)(s | 0x7e00u);
  if (a >= 0x477ff000u) return (uint16_t)(s | 0x7c00u);
  if (a < 0x38800000u) { /* subnormal result: the units of 2^-24, rounded to nearest even */
    const float y = tile_cuda_bits_to_f32(a) * 16777216.0f; /* exact: a power of two */
    uint32_t r = (uint32_t)y;
    float frac = y - (float)r;
    if (frac > 0.5f || (frac == 0.5f && (r & 1))) r++;
    return (uint16_t)(s | r);
  }
  uint32_t r = a - 0x38000000u;
  return (uint16_t)(s | ((r + 0xfffu + ((r >> 13) & 1u)) >> 13));
}

#ifdef __cplusplus
}
#endif
#endif
