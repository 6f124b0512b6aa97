/* For the CUDA emitter unit tests: .tile text parsed, verified and emitted for one GPU
 * architecture, with the diagnostics kept as printed (so a test can look for a location
 * such as "t.tile:2:"), and the emitted source compiled with NVRTC where the toolkit is.
 * The file name the diagnostics carry is CUDA_FIXTURE_FILE, set before including. */
#ifndef TILE_TEST_CUDA_FIXTURE_H
#define TILE_TEST_CUDA_FIXTURE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "tile/cuda.h"
#include "tile/text.h"
#include "tile/verify.h"

#ifndef CUDA_FIXTURE_FILE
#define CUDA_FIXTURE_FILE "t.tile"
#endif

typedef struct Emitted {
  TileModule *m;
  TileCudaProgram p;
  bool ok;
  char msgs[2048]; /* the diagnostics, as printed */
} Emitted;

/* Emits the module's first function for arch ("sm_90"); e->ok says whether it did.
 * Free with done whatever the outcome. */
static inline void emit(const char *src, const char *arch, Emitted *e) {
  memset(e, 0, sizeof *e);
  char *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&out, &len);
  TileDiag d;
  tile_diag_init(&d, f ? f : stderr, CUDA_FIXTURE_FILE, src, strlen(src));
  e->m = tile_parse(src, strlen(src), CUDA_FIXTURE_FILE, &d);
  if (e->m && !d.nerrors && tile_verify_module(e->m, &d) && !d.nerrors)
    e->ok = tile_cuda_emit(e->m, e->m->funcs, arch, &e->p, &d);
  if (f) fclose(f);
  snprintf(e->msgs, sizeof e->msgs, "%s", out ? out : "");
  free(out);
}

static inline void done(Emitted *e) {
  tile_cuda_program_free(&e->p);
  tile_module_free(e->m);
}

/* Compiles the emitted source with NVRTC and checks that it gives an ELF cubin; false
 * when this machine has no NVRTC (libnvrtc.so), for the test to skip. */
static inline bool nvrtc_compiles(const Emitted *e) {
  uint8_t *cubin = NULL;
  size_t len = 0;
  TileDiag d;
  tile_diag_init(&d, NULL, CUDA_FIXTURE_FILE, NULL, 0);
  bool ok = tile_cuda_nvrtc(&e->p, &cubin, &len, &d);
  if (!ok && strstr(d.last, "cannot load NVRTC")) return false;
  if (!ok) fprintf(stderr, "nvrtc: %s\n", d.last);
  CHECK(ok);
  CHECK(len > 4 && cubin && memcmp(cubin, "\177ELF", 4) == 0);
  free(cubin);
  return true;
}

#endif
