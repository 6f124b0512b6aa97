/* Compiling with NVRTC at run time: libnvrtc is opened with dlopen (from $CUDA_HOME,
 * /usr/local/cuda/lib64, then the loader's path), so tilec links and runs on machines
 * without the CUDA toolkit and says what is missing when asked to compile. The program
 * is compiled for the real architecture (--gpu-architecture=sm_XY), so NVRTC gives a
 * cubin; the source needs no headers. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

typedef int NvrtcResult;
typedef struct NvrtcProgram_ *NvrtcProgram;

typedef struct Nvrtc {
  void *lib;
  const char *(*error_string)(NvrtcResult);
  NvrtcResult (*create)(NvrtcProgram *, const char *, const char *, int, const char *const *,
                        const char *const *);
  NvrtcResult (*compile)(NvrtcProgram, int, const char *const *);
  NvrtcResult (*log_size)(NvrtcProgram, size_t *);
  NvrtcResult (*log)(NvrtcProgram, char *);
  NvrtcResult (*cubin_size)(NvrtcProgram, size_t *);
  NvrtcResult (*cubin)(NvrtcProgram, char *);
  NvrtcResult (*destroy)(NvrtcProgram *);
} Nvrtc;

/* NVRTC is loaded once per process and never unloaded: it carries its own C++ runtime,
 * whose allocations made at load time would be lost (a leak to the sanitizers) if the
 * library were closed. */
static Nvrtc nvrtc_lib;
static bool nvrtc_loaded;
static pthread_mutex_t nvrtc_lock = PTHREAD_MUTEX_INITIALIZER;

static bool load_nvrtc(Nvrtc *n, TileDiag *d) {
  memset(n, 0, sizeof *n);
  char paths[4][512];
  int np = 0;
  const char *home = getenv("CUDA_HOME");
  if (home && *home) snprintf(paths[np++], sizeof paths[0], "%s/lib64/libnvrtc.so", home);
  snprintf(paths[np++], sizeof paths[0], "/usr/local/cuda/lib64/libnvrtc.so");
  snprintf(paths[np++], sizeof paths[0], "libnvrtc.so");
  snprintf(paths[np++], sizeof paths[0], "libnvrtc.so.13");
  for (int i = 0; i < np && !n->lib; i++) n->lib = dlopen(paths[i], RTLD_NOW | RTLD_LOCAL);
  if (!n->lib)
    return tile_error(d, (TileLoc){0},
                      "cannot load NVRTC (libnvrtc.so; looked in $CUDA_HOME/lib64, "
                      "/usr/local/cuda/lib64 and the loader path): install the CUDA toolkit "
                      "or use --nvcc");
  struct { void **fn; const char *name; } syms[] = {
      {(void **)&n->error_string, "nvrtcGetErrorString"},
      {(void **)&n->create, "nvrtcCreateProgram"},
      {(void **)&n->compile, "nvrtcCompileProgram"},
      {(void **)&n->log_size, "nvrtcGetProgramLogSize"},
      {(void **)&n->log, "nvrtcGetProgramLog"},
      {(void **)&n->cubin_size, "nvrtcGetCUBINSize"},
      {(void **)&n->cubin, "nvrtcGetCUBIN"},
      {(void **)&n->destroy, "nvrtcDestroyProgram"},
  };
  for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
    *syms[i].fn = dlsym(n->lib, syms[i].name);
    if (!*syms[i].fn) {
      dlclose(n->lib); /* never used: nothing of it was called */
      n->lib = NULL;
      return tile_error(d, (TileLoc){0}, "NVRTC has no %s: the library is too old",
                        syms[i].name);
    }
  }
  return true;
}

static bool open_nvrtc(Nvrtc *n, TileDiag *d) {
  pthread_mutex_lock(&nvrtc_lock);
  bool ok = nvrtc_loaded || (nvrtc_loaded = load_nvrtc(&nvrtc_lib, d));
  *n = nvrtc_lib;
  pthread_mutex_unlock(&nvrtc_lock);
  return ok;
}

bool tile_cuda_nvrtc(const TileCudaProgram *p, uint8_t **cubin, size_t *len, TileDiag *d) {
  *cubin = NULL;
  *len = 0;
  Nvrtc n;
  if (!open_nvrtc(&n, d)) return false;
  char arch[64];
  snprintf(arch, sizeof arch, "--gpu-architecture=%s", p->arch);
  const char *opts[] = {arch, "-default-device", "--std=c++17"};
  NvrtcProgram prog = NULL;
  bool ok = false;
  NvrtcResult r = n.create(&prog, p->source, "tilec.cu", 0, NULL, NULL);
  if (r != 0) {
    tile_error(d, (TileLoc){0}, "NVRTC: cannot create the program: %s", n.error_string(r));
    goto out;
  }
  r = n.compile(prog, (int)(sizeof opts / sizeof opts[0]), opts);
  if (r != 0) {
    size_t ls = 0;
    char *log = NULL;
    if (n.log_size(prog, &ls) == 0 && (log = calloc(1, ls + 1))) n.log(prog, log);
    tile_error(d, (TileLoc){0}, "NVRTC could not compile the generated CUDA for %s: %s\n%s",
               p->arch, n.error_string(r), log ? log : "");
    free(log);
    goto out;
  }
  size_t size = 0;
  if (n.cubin_size(prog, &size) != 0 || !size || !(*cubin = malloc(size))) {
    tile_error(d, (TileLoc){0}, "NVRTC gave no cubin for %s", p->arch);
    goto out;
  }
  if (n.cubin(prog, (char *)*cubin) != 0) {
    free(*cubin);
    *cubin = NULL;
    tile_error(d, (TileLoc){0}, "NVRTC could not return the cubin");
    goto out;
  }
  *len = size;
  ok = true;
out:
  if (prog) n.destroy(&prog);
  return ok;
}
