/* The CUDA runtime: runs a TileCudaProgram (include/tile/cuda.h) on a GPU through the
 * CUDA driver API, and keeps the JIT compile cache of its cubins.
 *
 * The driver library is opened with dlopen("libcuda.so.1") the first time a device is
 * opened ($TILE_CUDA_DRIVER names another file), so tilec links and compiles on a
 * machine without a GPU; there, opening a device fails with a message that starts
 * "no CUDA device" and says why (no driver library, the CUDA toolkit's stub libcuda,
 * no device).
 *
 *   runtime/cuda_driver.c   the driver API table filled with dlsym, error names
 *   runtime/cuda_device.c   devices, contexts, memory, module loading, launches, timing
 *   runtime/cuda_cache.c    cubins on disk keyed by SHA-256(source, arch, compiler)
 *
 * A run copies the bound inputs to device memory, zero-fills everything else (then
 * copies initial contents: constants, iota), loads the cubin, launches the program's
 * kernels in order on one stream and copies the outputs back. Launches are timed with
 * events; nothing else in the run is timed. */
#ifndef TILE_CUDA_RUNTIME_H
#define TILE_CUDA_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tile/cuda.h"
#include "tile/diag.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The prefix of every "there is no GPU to run on" message, which callers and tests
 * match on. */
#define TILE_CUDA_NO_DEVICE "no CUDA device"

typedef struct TileCudaDevice TileCudaDevice;

/* Opens device `ordinal` (0 = the first) and makes its primary context current on this
 * thread. On failure returns NULL and writes a sentence to err: starting with
 * TILE_CUDA_NO_DEVICE where the driver or the device is missing. */
TileCudaDevice *tile_cuda_device_open(int ordinal, char *err, size_t errlen);
void tile_cuda_device_close(TileCudaDevice *dev);
/* "NVIDIA H100 80GB HBM3" */
const char *tile_cuda_device_name(const TileCudaDevice *dev);
/* "sm_90": the architecture of the device, for the compiler. */
const char *tile_cuda_device_arch(const TileCudaDevice *dev);
/* Whether a cubin built for arch (a TileCudaProgram's "sm_90") runs on the device: the
 * same major version and a minor version no newer than the device's. */
bool tile_cuda_device_runs(const TileCudaDevice *dev, const char *arch);

/* A named host array: an input read by the run, or an output it fills. */
typedef struct TileCudaHostBuffer {
  const char *name;
  void *data;
  size_t bytes;
} TileCudaHostBuffer;

typedef struct TileCudaRunOptions {
  int warmup;  /* untimed runs of the launch sequence before the timed ones */
  int repeat;  /* timed runs (at least 1); outputs are those of the last run */
} TileCudaRunOptions;

/* Per launch, the fastest of the timed runs in milliseconds; total is the fastest whole
 * sequence. Outputs of tile_cuda_run; launch_ms has nlaunches entries (malloc'ed). */
typedef struct TileCudaTiming {
  int32_t nlaunches;
  float *launch_ms;
  float total_ms;
} TileCudaTiming;

void tile_cuda_timing_free(TileCudaTiming *t);

/* Runs p from cubin (len bytes) on dev. Every name in `in` must be an input of p and
 * every name in `out` an output, each with exactly its byte size; inputs not given
 * start as zeros (as on the emulator). Errors (a driver failure, a launch failure, an
 * unknown name) go to d with the launch's source location where there is one; returns
 * false then. timing may be NULL. */
bool tile_cuda_run(TileCudaDevice *dev, const TileCudaProgram *p, const uint8_t *cubin,
                   size_t len, const TileCudaHostBuffer *in, int nin, TileCudaHostBuffer *out,
                   int nout, const TileCudaRunOptions *o, TileCudaTiming *timing, TileDiag *d);

/* ---- the JIT compile cache (runtime/cuda_cache.c) ----
 *
 * An entry is a file DIR/KEY.cubin (a small header that repeats the key and the size,
 * then the cubin); KEY is the hex SHA-256 of the CUDA source, the arch and the compiler
 * (NVRTC's version and tilec's), each length-prefixed so no two triples collide. DIR is
 * $TILE_CUDA_CACHE_DIR, else $XDG_CACHE_HOME/tilec, else $HOME/.cache/tilec. Entries
 * are written to a unique temporary file in DIR and renamed into place, so readers
 * running at the same time see a whole entry or none; a damaged entry reads as a miss
 * and is replaced. */

enum { TILE_CUDA_KEY_LEN = 64 };

/* NVRTC's version as "13.0" (libnvrtc opened with dlopen), or "none" where there is
 * no NVRTC. */
const char *tile_cuda_nvrtc_version(void);
/* The key of (source, arch, compiler) as 64 hex digits and a NUL. */
void tile_cuda_cache_key(const char *source, const char *arch, const char *compiler,
                         char key[TILE_CUDA_KEY_LEN + 1]);
/* The cache folder (not created). False when neither variable nor HOME is set. */
bool tile_cuda_cache_dir(char *buf, size_t n);
/* The entry for key: its cubin (malloc'ed) and true, or false on a miss (no entry, or a
 * damaged one). */
bool tile_cuda_cache_get(const char *dir, const char *key, uint8_t **cubin, size_t *len);
/* Stores an entry atomically, creating dir (and its parents) if needed. */
bool tile_cuda_cache_put(const char *dir, const char *key, const uint8_t *cubin, size_t len,
                         TileDiag *d);

typedef bool (*TileCudaCompileFn)(const TileCudaProgram *p, uint8_t **cubin, size_t *len,
                                  TileDiag *d);

/* What a cached compile did. */
typedef struct TileCudaCacheResult {
  bool hit;                       /* the cubin came from the cache */
  bool stored;                    /* a miss whose cubin was written to the cache */
  char key[TILE_CUDA_KEY_LEN + 1];
  char path[4096];                /* the entry's file ("" when there is no cache folder) */
} TileCudaCacheResult;

/* The cubin of p: from the cache, else compiled with `compile` (tile_cuda_nvrtc) and
 * stored. A cache that cannot be written is not an error (the compile still succeeds);
 * res->stored says whether it was written. */
bool tile_cuda_cache_compile(const TileCudaProgram *p, TileCudaCompileFn compile,
                             uint8_t **cubin, size_t *len, TileCudaCacheResult *res,
                             TileDiag *d);

#ifdef __cplusplus
}
#endif
#endif
