/* The CUDA driver API as the runtime uses it: a table of function pointers filled with
 * dlsym from libcuda.so.1, so nothing links against the driver and a machine without
 * one still runs everything but the GPU. The types are the driver's own ABI (cuda.h),
 * restated here so the build does not need the toolkit's headers. Also the checks and
 * loading that the two executors (plain programs and torus plans) share. Private to
 * runtime/. */
#ifndef TILE_RUNTIME_CUDA_DRIVER_H
#define TILE_RUNTIME_CUDA_DRIVER_H

#include <stdbool.h>
#include <stddef.h>

#include "tile/cuda_runtime.h"

typedef int CUresult; /* 0 is CUDA_SUCCESS */
typedef int CUdevice;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef struct CUevent_st *CUevent;
typedef unsigned long long CUdeviceptr;

enum {
  CU_SUCCESS = 0,
  CU_ERROR_STUB_LIBRARY = 34,
  CU_ERROR_NO_DEVICE = 100,
  CU_ATTR_CC_MAJOR = 75,            /* CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR */
  CU_ATTR_CC_MINOR = 76,            /* CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR */
  CU_ATTR_SMEM_OPTIN = 97,          /* CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN */
  CU_FUNC_ATTR_MAX_DYN_SMEM = 8,    /* CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES */
  CU_STREAM_NON_BLOCKING = 1,
  CU_EVENT_DEFAULT = 0,
  CU_EVENT_DISABLE_TIMING = 2,
  CU_MEMORYTYPE_DEVICE = 2,
};

/* A 2D copy (CUDA_MEMCPY2D_v2 of cuda.h): rows of WidthInBytes, pitches apart. */
typedef struct TileCudaMemcpy2D {
  size_t srcXInBytes, srcY;
  int srcMemoryType;
  const void *srcHost;
  CUdeviceptr srcDevice;
  void *srcArray;
  size_t srcPitch;
  size_t dstXInBytes, dstY;
  int dstMemoryType;
  void *dstHost;
  CUdeviceptr dstDevice;
  void *dstArray;
  size_t dstPitch;
  size_t WidthInBytes, Height;
} TileCudaMemcpy2D;

/* X(return, name, symbol, parameters): one row per entry point; the symbol is the
 * versioned name cuda.h maps the plain name to. */
#define TILE_CUDA_DRIVER_API(X)                                                          \
  X(CUresult, cuInit, "cuInit", (unsigned flags))                                        \
  X(CUresult, cuDriverGetVersion, "cuDriverGetVersion", (int *version))                  \
  X(CUresult, cuDeviceGetCount, "cuDeviceGetCount", (int *count))                        \
  X(CUresult, cuDeviceGet, "cuDeviceGet", (CUdevice *dev, int ordinal))                  \
  X(CUresult, cuDeviceGetName, "cuDeviceGetName", (char *name, int len, CUdevice dev))   \
  X(CUresult, cuDeviceGetAttribute, "cuDeviceGetAttribute",                              \
    (int *value, int attr, CUdevice dev))                                                \
  X(CUresult, cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain",                      \
    (CUcontext * ctx, CUdevice dev))                                                     \
  X(CUresult, cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2", (CUdevice dev)) \
  X(CUresult, cuCtxSetCurrent, "cuCtxSetCurrent", (CUcontext ctx))                       \
  X(CUresult, cuModuleLoadData, "cuModuleLoadData", (CUmodule * mod, const void *image)) \
  X(CUresult, cuModuleUnload, "cuModuleUnload", (CUmodule mod))                          \
  X(CUresult, cuModuleGetFunction, "cuModuleGetFunction",                                \
    (CUfunction * fn, CUmodule mod, const char *name))                                   \
  X(CUresult, cuFuncSetAttribute, "cuFuncSetAttribute", (CUfunction fn, int attr, int v)) \
  X(CUresult, cuMemAlloc, "cuMemAlloc_v2", (CUdeviceptr * p, size_t bytes))              \
  X(CUresult, cuMemFree, "cuMemFree_v2", (CUdeviceptr p))                                \
  X(CUresult, cuMemcpyHtoD, "cuMemcpyHtoD_v2", (CUdeviceptr dst, const void *src, size_t n)) \
  X(CUresult, cuMemcpyDtoH, "cuMemcpyDtoH_v2", (void *dst, CUdeviceptr src, size_t n))  \
  X(CUresult, cuMemsetD8, "cuMemsetD8_v2", (CUdeviceptr p, unsigned char v, size_t n))   \
  X(CUresult, cuLaunchKernel, "cuLaunchKernel",                                          \
    (CUfunction fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,     \
     unsigned bz, unsigned smem, CUstream s, void **params, void **extra))               \
  X(CUresult, cuStreamCreate, "cuStreamCreate", (CUstream * s, unsigned flags))          \
  X(CUresult, cuStreamSynchronize, "cuStreamSynchronize", (CUstream s))                  \
  X(CUresult, cuStreamDestroy, "cuStreamDestroy_v2", (CUstream s))                       \
  X(CUresult, cuEventCreate, "cuEventCreate", (CUevent * e, unsigned flags))             \
  X(CUresult, cuEventRecord, "cuEventRecord", (CUevent e, CUstream s))                   \
  X(CUresult, cuEventSynchronize, "cuEventSynchronize", (CUevent e))                     \
  X(CUresult, cuEventDestroy, "cuEventDestroy_v2", (CUevent e))                          \
  X(CUresult, cuCtxGetDevice, "cuCtxGetDevice", (CUdevice * dev))                       \
  X(CUresult, cuCtxSynchronize, "cuCtxSynchronize", (void))                              \
  X(CUresult, cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2",                                 \
    (CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s))                            \
  X(CUresult, cuMemcpy2DAsync, "cuMemcpy2DAsync_v2", (const TileCudaMemcpy2D *c, CUstream s)) \
  X(CUresult, cuStreamWaitEvent, "cuStreamWaitEvent", (CUstream s, CUevent e, unsigned flags)) \
  X(CUresult, cuGetErrorName, "cuGetErrorName", (CUresult r, const char **s))            \
  X(CUresult, cuGetErrorString, "cuGetErrorString", (CUresult r, const char **s))

typedef struct TileCudaDriver {
#define X(ret, name, sym, params) ret(*name) params;
  TILE_CUDA_DRIVER_API(X)
#undef X
  /* cuEventElapsedTime_v2 (CUDA 12.8+), else the original: the same signature. */
  CUresult (*cuEventElapsedTime)(float *ms, CUevent start, CUevent end);
} TileCudaDriver;

/* The driver, loaded and initialized once per process (thread-safe). NULL when there is
 * none; err then holds a sentence that starts with TILE_CUDA_NO_DEVICE. */
const TileCudaDriver *tile_cuda_driver(char *err, size_t errlen);
/* "CUDA_ERROR_OUT_OF_MEMORY (out of memory)" for r, in a static or the given buffer. */
const char *tile_cuda_result_text(const TileCudaDriver *drv, CUresult r, char *buf, size_t n);

/* ---- what the runs of plain programs (cuda_device.c, where these live) and of torus
 * plans (cuda_torus_gpu.c) share ---- */

/* Reports a failed driver call at loc ("CUDA: WHAT failed: ERROR"); returns false. */
bool tile_cuda_fail(const TileCudaDriver *drv, TileDiag *d, TileLoc loc, CUresult r,
                    const char *what);
/* The index of the program's buffer called name, or -1. */
int tile_cuda_find_buffer(const TileCudaProgram *p, const char *name);
/* Checks the host buffers and the launches' arguments against the program before anything
 * touches the device. chips 0: a plain program, each host buffer the buffer's bytes;
 * else one block per chip, chips x the buffer's bytes. */
bool tile_cuda_check_bindings(const TileCudaProgram *p, const TileCudaHostBuffer *in, int nin,
                              const TileCudaHostBuffer *out, int nout, int chips, TileDiag *d);
/* Finds every launch's kernel in mod (fn[l] for launch l) and checks its shared memory
 * against smem_optin, the most the device (named in errors) gives a block. */
bool tile_cuda_load_kernels(const TileCudaDriver *drv, CUmodule mod, const TileCudaProgram *p,
                            CUfunction *fn, int smem_optin, const char *device, TileDiag *d);

#endif
