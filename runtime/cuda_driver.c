/* Loads the CUDA driver API with dlopen/dlsym (runtime/cuda_driver.h) and initializes it
 * once per process. Every way of having no usable GPU (no libcuda.so.1, the toolkit's
 * stub library, a driver that sees no device) ends in one message that starts with
 * TILE_CUDA_NO_DEVICE, so callers and tests need to know only that prefix.
 * $TILE_CUDA_DRIVER names another library file: a test on a GPU machine points it at a
 * missing file to see the no-device path. */
#include "cuda_driver.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/cuda_runtime.h"

static TileCudaDriver driver;
static bool driver_ok;
static char driver_err[512];
static pthread_once_t driver_once = PTHREAD_ONCE_INIT;

static void no_device(const char *fmt, const char *detail) {
  char why[400];
  snprintf(why, sizeof why, fmt, detail ? detail : "");
  snprintf(driver_err, sizeof driver_err, "%s (%s)", TILE_CUDA_NO_DEVICE, why);
}

static void load_driver(void) {
  const char *lib = getenv("TILE_CUDA_DRIVER");
  if (!lib || !*lib) lib = "libcuda.so.1";
  /* RTLD_LOCAL: the driver's symbols stay out of the global namespace. The handle is
   * kept for the life of the process, as the driver expects. */
  void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *e = dlerror();
    no_device("the CUDA driver library cannot be loaded: %s", e ? e : lib);
    return;
  }
#define X(ret, name, sym, params)                                                  \
  if (!(*(void **)&driver.name = dlsym(h, sym))) {                                 \
    no_device("%s lacks the driver entry point " sym "; the driver is too old", lib); \
    return;                                                                        \
  }
  TILE_CUDA_DRIVER_API(X)
#undef X
  void *elapsed = dlsym(h, "cuEventElapsedTime_v2");
  if (!elapsed) elapsed = dlsym(h, "cuEventElapsedTime");
  if (!elapsed) {
    no_device("%s lacks cuEventElapsedTime; the driver is too old", lib);
    return;
  }
  *(void **)&driver.cuEventElapsedTime = elapsed;
  CUresult r = driver.cuInit(0);
  if (r == CU_ERROR_STUB_LIBRARY) {
    no_device("%s is the CUDA toolkit's stub library, not a driver", lib);
    return;
  }
  if (r == CU_ERROR_NO_DEVICE) {
    no_device("the driver found no GPU%s", NULL);
    return;
  }
  if (r != CU_SUCCESS) {
    char buf[200];
    no_device("cuInit failed: %s", tile_cuda_result_text(&driver, r, buf, sizeof buf));
    return;
  }
  int count = 0;
  r = driver.cuDeviceGetCount(&count);
  if (r != CU_SUCCESS || count <= 0) {
    no_device("the driver reports no GPU%s", NULL);
    return;
  }
  driver_ok = true;
}

const TileCudaDriver *tile_cuda_driver(char *err, size_t errlen) {
  pthread_once(&driver_once, load_driver);
  if (driver_ok) return &driver;
  if (err && errlen) snprintf(err, errlen, "%s", driver_err);
  return NULL;
}

const char *tile_cuda_result_text(const TileCudaDriver *drv, CUresult r, char *buf, size_t n) {
  const char *name = NULL, *text = NULL;
  /* cuGetErrorName itself fails for codes it does not know: print the number then. */
  if (drv && drv->cuGetErrorName && drv->cuGetErrorName(r, &name) != CU_SUCCESS) name = NULL;
  if (drv && drv->cuGetErrorString && drv->cuGetErrorString(r, &text) != CU_SUCCESS) text = NULL;
  if (name && text) snprintf(buf, n, "%s (%s)", name, text);
  else if (name) snprintf(buf, n, "%s", name);
  else snprintf(buf, n, "CUDA error %d", r);
  return buf;
}
