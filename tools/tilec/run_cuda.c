/* `tilec run FILE.tile --target cuda-smXX`: the program is parsed and verified, the CUDA
 * backend emits it (include/tile/cuda.h), NVRTC compiles it through the JIT cache
 * (include/tile/cuda_runtime.h) and the runtime runs it on the first GPU; .npy inputs and
 * outputs bind to the program's buffers by name, as on the emulator.
 *
 * Without a GPU the run stops with "tilec: error: no CUDA device (why)" and exit code 1
 * before anything is compiled; --compile-only needs no GPU (it fills the cache, for a
 * later run or a machine image). A tilec built without backend-cuda says so.
 *
 * Buffers hold tensors as the backend lays them out: row-major, bf16 as 16-bit words,
 * i1 as i32 (the .npy file has one byte per i1 element; converted both ways).
 *
 * A function on a mesh runs every chip on the one GPU (include/tile/cuda_torus.h): each
 * chip its slice of every buffer and its own stream, the collectives as copies between
 * slices. Its arrays are those of the emulator run: a global program's inputs are global
 * arrays split by the parameters' shardings (or per-chip blocks with a leading chip
 * dimension) and its outputs are assembled into global arrays (run_global.c); a
 * per-chip program on a mesh takes and gives arrays with a leading chip dimension.
 * --compile-only also prints the plan: steps and bytes between chips per collective. */
#include "run_cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/cuda.h"
#include "tile/cuda_runtime.h"
#include "tile/cuda_torus.h"
#include "tile/npy.h"
#include "run_global.h"
#include "tile/text.h"
#include "tile/verify.h"
#include "tile/vliw.h"
#include "tilec.h"

bool tilec_cuda_target(const char *name, char *arch, size_t n) {
#ifdef TILEC_HAVE_CUDA_BACKEND
  return tile_cuda_target(name, arch, n);
#else
  /* The backend's names, so the driver still recognizes them and can say the backend
   * is missing. */
  if (strncmp(name, "cuda-sm", 7) != 0 || !name[7]) return false;
  for (const char *c = name + 7; *c; c++)
    if (!((*c >= '0' && *c <= '9') || (*c == 'a' && !c[1]))) return false;
  snprintf(arch, n, "sm_%s", name + 7);
  return true;
#endif
}

void tilec_f32_to_bf16(void *data, size_t n) {
  uint16_t *h = data;
  for (size_t i = 0; i < n; i++) { /* element i is read before anything lands on it */
    float f;
    memcpy(&f, (uint8_t *)data + 4 * i, 4);
    h[i] = tile_cuda_f32_to_bf16(f);
  }
}

void tilec_shape_text(TileElem e, int rank, const int64_t *dims, char *buf, size_t n) {
  size_t k = (size_t)snprintf(buf, n, "%s [", tile_elem_name(e));
  for (int i = 0; i < rank && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)dims[i]);
  if (k < n) snprintf(buf + k, n - k, "]");
}

bool tilec_npy_elem_fits(TileElem want, TileElem have) {
  return have == want || (want == TILE_ELEM_F8E5M2 && have == TILE_ELEM_F8E4M3FN) ||
         (want == TILE_ELEM_BF16 && have == TILE_ELEM_F32);
}

#ifdef TILEC_HAVE_CUDA_BACKEND
static const TileCudaBuffer *find_buffer(const TileCudaProgram *p, const TilecBinding *b,
                                         unsigned bind) {
  for (int i = 0; i < p->nbufs; i++)
    if (strlen(p->bufs[i].name) == b->name_len &&
        memcmp(p->bufs[i].name, b->name, b->name_len) == 0 && (p->bufs[i].bind & bind))
      return &p->bufs[i];
  tilec_fail("run: the program has no %s '%.*s'", bind == TILE_BIND_IN ? "input" : "output",
             (int)b->name_len, b->name);
  return NULL;
}

static int64_t numel(const TileCudaBuffer *b) {
  int64_t n = 1;
  for (int k = 0; k < b->rank; k++) n *= b->dims[k];
  return n;
}

/* Bytes of one element on the GPU (i1 as i32). */
static int device_esize(TileElem e) { return e == TILE_ELEM_I1 ? 4 : (tile_elem_bits(e) + 7) / 8; }

/* .npy data of type have, n elements, into the device layout of type want, in place or
 * into a new array (*data replaced). */
static bool to_device_layout(TileElem want, TileElem have, void **data, int64_t n) {
  if (want == TILE_ELEM_BF16 && have == TILE_ELEM_F32) tilec_f32_to_bf16(*data, (size_t)n);
  if (want != TILE_ELEM_I1) return true;
  int32_t *w = malloc((size_t)(n > 0 ? n : 1) * sizeof *w);
  if (!w) return false;
  for (int64_t i = 0; i < n; i++) w[i] = ((uint8_t *)*data)[i] != 0;
  free(*data);
  *data = w;
  return true;
}

/* Reads an input into the buffer's device layout: h->data is malloc'ed. */
static int read_input(const TileCudaProgram *p, const TilecBinding *b, TileCudaHostBuffer *h) {
  const TileCudaBuffer *buf = find_buffer(p, b, TILE_BIND_IN);
  if (!buf) return TILEC_BAD_INPUT;
  TileNpy a;
  TileDiag d;
  tile_diag_init(&d, stderr, b->file, NULL, 0);
  if (!tile_npy_read_file(b->file, &a, &d)) return TILEC_BAD_INPUT;
  bool shape_ok = a.rank == buf->rank;
  for (int k = 0; shape_ok && k < a.rank; k++) shape_ok = a.dims[k] == buf->dims[k];
  if (!shape_ok || !tilec_npy_elem_fits((TileElem)buf->elem, a.elem)) {
    char want[160], got[160];
    tilec_shape_text((TileElem)buf->elem, buf->rank, buf->dims, want, sizeof want);
    tilec_shape_text(a.elem, a.rank, a.dims, got, sizeof got);
    tilec_fail("run: --in %s: '%s' is %s; %s holds %s", buf->name, buf->name, want, b->file, got);
    tile_npy_free(&a);
    return TILEC_BAD_INPUT;
  }
  const int64_t n = numel(buf);
  if (!to_device_layout((TileElem)buf->elem, a.elem, &a.data, n)) {
    tile_npy_free(&a);
    tilec_fail("run: out of memory reading %s", b->file);
    return TILEC_INTERNAL;
  }
  if (buf->elem != a.elem || buf->elem == TILE_ELEM_I1) /* converted: bf16 from f32, i1 as i32 */
    a.nbytes = (size_t)n * (size_t)device_esize((TileElem)buf->elem);
  if ((int64_t)a.nbytes != buf->bytes) {
    tilec_fail("run: --in %s: the CUDA program holds %lld bytes for it; the array is %zu",
               buf->name, (long long)buf->bytes, a.nbytes);
    tile_npy_free(&a);
    return TILEC_INTERNAL;
  }
  *h = (TileCudaHostBuffer){buf->name, a.data, a.nbytes};
  return TILEC_OK;
}

static int write_output(const TileCudaBuffer *buf, const TileCudaHostBuffer *h,
                        const char *file) {
  void *data = h->data;
  const int64_t n = numel(buf);
  if (buf->elem == TILE_ELEM_I1) /* back to one byte per element, in place */
    for (int64_t i = 0; i < n; i++) ((uint8_t *)data)[i] = ((int32_t *)data)[i] != 0;
  TileDiag d;
  tile_diag_init(&d, stderr, file, NULL, 0);
  return tile_npy_write_file(file, (TileElem)buf->elem, buf->rank, buf->dims, data, &d)
             ? TILEC_OK
             : TILEC_INTERNAL;
}

static void print_launches(FILE *f, const TileCudaProgram *p, const TileCudaTiming *t,
                           int repeat) {
  fprintf(f, "%-4s %-28s %-16s %-12s %8s %10s  %s\n", "#", "kernel", "grid", "block", "smem",
          repeat > 1 ? "best ms" : "ms", "op");
  for (int l = 0; l < p->nlaunches; l++) {
    const TileCudaLaunch *L = &p->launches[l];
    char grid[48], block[48];
    snprintf(grid, sizeof grid, "%ux%ux%u", L->grid[0], L->grid[1], L->grid[2]);
    snprintf(block, sizeof block, "%ux%ux%u", L->block[0], L->block[1], L->block[2]);
    fprintf(f, "%-4d %-28s %-16s %-12s %8u %10.4f  %s", l, L->kernel, grid, block, L->smem_bytes,
            t->launch_ms[l], L->src_name ? L->src_name : "");
    if (L->src_loc.line) fprintf(f, " (line %d)", (int)L->src_loc.line);
    fputc('\n', f);
  }
}

/* Host buffers for the bound outputs, copies blocks of each buffer (one per chip of a
 * mesh program), and a note for every input the run leaves unbound. */
static int bind_outputs(const TilecCudaRun *r, const TileCudaProgram *p, size_t copies,
                        const TileCudaHostBuffer *in, const TileCudaBuffer **outbuf,
                        TileCudaHostBuffer *out) {
  for (int i = 0; i < r->nout; i++) {
    if (!(outbuf[i] = find_buffer(p, &r->out[i], TILE_BIND_OUT))) return TILEC_BAD_INPUT;
    const size_t total = copies * (size_t)outbuf[i]->bytes;
    if (!(out[i].data = malloc(total ? total : 1))) return TILEC_INTERNAL;
    out[i] = (TileCudaHostBuffer){outbuf[i]->name, out[i].data, total};
  }
  for (int b = 0; b < p->nbufs; b++) {
    if (!(p->bufs[b].bind & TILE_BIND_IN)) continue;
    bool given = false;
    for (int i = 0; i < r->nin; i++) given |= strcmp(in[i].name, p->bufs[b].name) == 0;
    if (!given)
      fprintf(stderr, "tilec: note: input '%s' is not bound (--in); it starts as zeros\n",
              p->bufs[b].name);
  }
  return TILEC_OK;
}

static void free_host_buffers(TileCudaHostBuffer *in, TileCudaHostBuffer *out) {
  for (int i = 0; i < 64; i++) {
    free(in[i].data);
    free(out[i].data);
  }
}

/* Runs the emitted program: inputs read, run, outputs written. */
static int run_on_device(const TilecCudaRun *r, TileCudaDevice *dev, const TileCudaProgram *p,
                         const uint8_t *cubin, size_t len) {
  TileCudaHostBuffer in[64] = {0}, out[64] = {0};
  const TileCudaBuffer *outbuf[64] = {0};
  int rc = TILEC_OK;
  for (int i = 0; i < r->nin && rc == TILEC_OK; i++) rc = read_input(p, &r->in[i], &in[i]);
  if (rc == TILEC_OK) rc = bind_outputs(r, p, 1, in, outbuf, out);
  TileCudaTiming t = {0};
  if (rc == TILEC_OK) {
    TileDiag d;
    tile_diag_init(&d, stderr, r->program, NULL, 0);
    TileCudaRunOptions o = {.warmup = r->warmup, .repeat = r->repeat};
    if (!tile_cuda_run(dev, p, cubin, len, in, r->nin, out, r->nout, &o, &t, &d))
      rc = TILEC_BAD_INPUT;
  }
  if (rc == TILEC_OK) {
    printf("cuda: %s (%s): %d launches, %.4f ms%s\n", tile_cuda_device_name(dev),
           tile_cuda_device_arch(dev), p->nlaunches, t.total_ms,
           r->repeat > 1 ? " (best of the timed runs)" : "");
    if (r->stats) print_launches(stdout, p, &t, r->repeat);
    fflush(stdout);
  }
  for (int i = 0; i < r->nout && rc == TILEC_OK; i++)
    rc = write_output(outbuf[i], &out[i], r->out[i].file);
  tile_cuda_timing_free(&t);
  free_host_buffers(in, out);
  return rc;
}

/* ---- programs on a mesh ---- */

/* The chips of a mesh program as the target run_global.c splits arrays for. */
static void torus_target(const TileCudaProgram *p, TileTarget *t) {
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "cuda");
  t->torus_rank = p->torus_rank;
  for (int k = 0; k < p->torus_rank; k++) t->torus[k] = p->torus[k];
}

/* Reads an input of a mesh program into per-chip blocks (nchips x the buffer's bytes):
 * a global array split by its sharding, or blocks with a leading chip dimension. */
static int read_torus_input(const TileCudaProgram *p, const TilecGlobal *g, const TilecBinding *b,
                            int nchips, TileCudaHostBuffer *h) {
  const TileCudaBuffer *buf = find_buffer(p, b, TILE_BIND_IN);
  if (!buf) return TILEC_BAD_INPUT;
  const TileVliwGlobalValue *gv = g->io.mesh ? tilec_global_find(g, b->name, b->name_len) : NULL;
  if (gv && !tilec_global_blocks_match(g, gv, buf->rank, buf->dims)) return TILEC_INTERNAL;
  TileNpy a;
  TileDiag d;
  tile_diag_init(&d, stderr, b->file, NULL, 0);
  if (!tile_npy_read_file(b->file, &a, &d)) return TILEC_BAD_INPUT;
  int grank = gv ? (gv->global.kind == TILE_TY_TENSOR ? gv->global.rank : 0) : -1;
  bool global = gv && a.rank == grank;
  for (int k = 0; global && k < grank; k++) global = a.dims[k] == gv->global.dims[k];
  bool blocks = !global && a.rank == buf->rank + 1 && a.dims[0] == nchips;
  for (int k = 0; blocks && k < buf->rank; k++) blocks = a.dims[k + 1] == buf->dims[k];
  if ((!global && !blocks) || !tilec_npy_elem_fits((TileElem)buf->elem, a.elem)) {
    char want[160], got[160], whole[160];
    int64_t bd[TILE_MAX_RANK + 1] = {nchips};
    memcpy(bd + 1, buf->dims, sizeof(int64_t) * (size_t)buf->rank);
    tilec_shape_text((TileElem)buf->elem, buf->rank + 1, bd, want, sizeof want);
    tilec_shape_text(a.elem, a.rank, a.dims, got, sizeof got);
    if (gv) {
      tilec_shape_text((TileElem)buf->elem, grank, gv->global.dims, whole, sizeof whole);
      tilec_fail("run: --in %s: '%s' is %s globally (or %s, one block per chip); %s holds %s",
                 buf->name, buf->name, whole, want, b->file, got);
    } else {
      tilec_fail("run: --in %s: '%s' is %s (one block per chip of the mesh); %s holds %s",
                 buf->name, buf->name, want, b->file, got);
    }
    tile_npy_free(&a);
    return TILEC_BAD_INPUT;
  }
  int64_t n = 1;
  for (int k = 0; k < a.rank; k++) n *= a.dims[k];
  if (!to_device_layout((TileElem)buf->elem, a.elem, &a.data, n)) {
    tile_npy_free(&a);
    tilec_fail("run: out of memory reading %s", b->file);
    return TILEC_INTERNAL;
  }
  size_t total = (size_t)nchips * (size_t)buf->bytes;
  void *data = a.data;
  if (global) { /* the global array becomes the chips' blocks */
    TileTarget t;
    torus_target(p, &t);
    if (!(data = malloc(total ? total : 1))) {
      tile_npy_free(&a);
      tilec_fail("run: out of memory splitting %s", b->file);
      return TILEC_INTERNAL;
    }
    tilec_global_copy(g, gv, &t, device_esize((TileElem)buf->elem), a.data, data, true);
    free(a.data);
  }
  *h = (TileCudaHostBuffer){buf->name, data, total};
  return TILEC_OK;
}

/* Writes an output of a mesh program: assembled into the global array for a global
 * program, else the blocks with a leading chip dimension. */
static int write_torus_output(const TileCudaProgram *p, const TilecGlobal *g,
                              const TileCudaBuffer *buf, const TileCudaHostBuffer *h,
                              int nchips, const char *file) {
  const TileVliwGlobalValue *gv =
      g->io.mesh ? tilec_global_find(g, buf->name, strlen(buf->name)) : NULL;
  if (gv && !tilec_global_blocks_match(g, gv, buf->rank, buf->dims)) return TILEC_INTERNAL;
  int rank = buf->rank + 1;
  int64_t dims[TILE_MAX_RANK + 1] = {nchips}, n = nchips;
  for (int k = 0; k < buf->rank; k++) n *= dims[k + 1] = buf->dims[k];
  void *data = h->data, *whole = NULL;
  if (gv) {
    rank = gv->global.kind == TILE_TY_TENSOR ? gv->global.rank : 0;
    n = 1;
    for (int k = 0; k < rank; k++) n *= dims[k] = gv->global.dims[k];
    const int es = device_esize((TileElem)buf->elem);
    if (!(whole = calloc((size_t)(n > 0 ? n : 1), (size_t)es))) {
      tilec_fail("run: out of memory assembling '%s'", buf->name);
      return TILEC_INTERNAL;
    }
    TileTarget t;
    torus_target(p, &t);
    tilec_global_copy(g, gv, &t, es, whole, h->data, false);
    data = whole;
  }
  if (buf->elem == TILE_ELEM_I1) /* back to one byte per element, in place */
    for (int64_t i = 0; i < n; i++) ((uint8_t *)data)[i] = ((int32_t *)data)[i] != 0;
  TileDiag d;
  tile_diag_init(&d, stderr, file, NULL, 0);
  bool ok = tile_npy_write_file(file, (TileElem)buf->elem, rank, dims, data, &d);
  free(whole);
  return ok ? TILEC_OK : TILEC_INTERNAL;
}

static int run_torus_on_device(const TilecCudaRun *r, TileCudaDevice *dev,
                               const TileCudaProgram *p, const TileCudaTorusPlan *plan,
                               const TilecGlobal *g, const uint8_t *cubin, size_t len) {
  TileCudaHostBuffer in[64] = {0}, out[64] = {0};
  const TileCudaBuffer *outbuf[64] = {0};
  const int chips = plan->nchips;
  int rc = TILEC_OK;
  for (int i = 0; i < r->nin && rc == TILEC_OK; i++)
    rc = read_torus_input(p, g, &r->in[i], chips, &in[i]);
  if (rc == TILEC_OK) rc = bind_outputs(r, p, (size_t)chips, in, outbuf, out);
  TileCudaTiming t = {0};
  if (rc == TILEC_OK) {
    TileDiag d;
    tile_diag_init(&d, stderr, r->program, NULL, 0);
    TileCudaRunOptions o = {.warmup = r->warmup, .repeat = r->repeat};
    if (!tile_cuda_torus_run(dev, p, plan, cubin, len, in, r->nin, out, r->nout, &o, &t, &d))
      rc = TILEC_BAD_INPUT;
  }
  if (rc == TILEC_OK) {
    printf("cuda: %s (%s): %d chips, %d launches each, %d collectives, %.4f ms%s\n",
           tile_cuda_device_name(dev), tile_cuda_device_arch(dev), chips, p->nlaunches,
           p->ncolls, t.total_ms, r->repeat > 1 ? " (best of the timed runs)" : "");
    if (r->stats) tile_cuda_torus_plan_print(stdout, p, plan);
    fflush(stdout);
  }
  for (int i = 0; i < r->nout && rc == TILEC_OK; i++)
    rc = write_torus_output(p, g, outbuf[i], &out[i], chips, r->out[i].file);
  tile_cuda_timing_free(&t);
  free_host_buffers(in, out);
  return rc;
}

static void print_cache(const TileCudaCacheResult *cache, size_t len) {
  printf("cubin: %s (%zu bytes, %s)\n", cache->path[0] ? cache->path : "(no cache folder)", len,
         cache->hit ? "cache hit" : cache->stored ? "compiled, cached" : "compiled, not cached");
  printf("key: %s\n", cache->key);
}

static int compile_and_run(const TilecCudaRun *r, TileModule *m, TileFunc *f,
                           TileCudaDevice *dev, const TilecGlobal *g) {
  TileDiag d;
  tile_diag_init(&d, stderr, r->program, NULL, 0);
  TileCudaProgram p = {0};
  if (!tile_cuda_emit(m, f, r->arch, &p, &d)) {
    tile_cuda_program_free(&p);
    return TILEC_BAD_INPUT;
  }
  if (dev && !tile_cuda_device_runs(dev, p.arch)) {
    const char *have = tile_cuda_device_arch(dev); /* "sm_90": the target is cuda-sm90 */
    tilec_fail("run: the program is compiled for %s; %s is %s (use --target cuda-sm%s)", p.arch,
               tile_cuda_device_name(dev), have, have + 3);
    tile_cuda_program_free(&p);
    return TILEC_BAD_INPUT;
  }
  uint8_t *cubin = NULL;
  size_t len = 0;
  TileCudaCacheResult cache;
  int rc = TILEC_OK;
  if (!tile_cuda_cache_compile(&p, tile_cuda_nvrtc, &cubin, &len, &cache, &d)) {
    rc = TILEC_BAD_INPUT;
  } else if (!p.torus_rank) {
    if (r->compile_only) print_cache(&cache, len);
    else rc = run_on_device(r, dev, &p, cubin, len);
  } else {
    TileCudaTorusPlan plan;
    if (!tile_cuda_torus_plan(&p, NULL, &plan, &d)) {
      rc = TILEC_BAD_INPUT;
    } else if (r->compile_only) {
      print_cache(&cache, len);
      tile_cuda_torus_plan_print(stdout, &p, &plan);
    } else {
      rc = run_torus_on_device(r, dev, &p, &plan, g, cubin, len);
    }
    tile_cuda_torus_plan_free(&plan);
  }
  free(cubin);
  tile_cuda_program_free(&p);
  return rc;
}
#endif

int tilec_run_cuda(const TilecCudaRun *r) {
  char *src;
  size_t len;
  int rc = tilec_read_file(r->program, &src, &len);
  if (rc != TILEC_OK) return rc;
  TileDiag d;
  tile_diag_init(&d, stderr, r->program, src, len);
  TileModule *m = tile_parse(src, len, r->program, &d);
  TileFunc *f = NULL;
  rc = TILEC_BAD_INPUT;
  if (m && !d.nerrors && tile_verify_module(m, &d) && !d.nerrors)
    f = tile_vliw_find_func(m, r->func, &d);
  TilecGlobal g = {0};
  if (f) { /* a global program's shardings, read from its own parse of the source */
    int grc = tilec_global_load(r->program, src, len, r->func, &g);
    if (grc != TILEC_OK) {
      rc = grc;
      f = NULL;
    }
  }
  TileCudaDevice *dev = NULL;
  if (f && !r->compile_only) {
    /* Before compiling: without a GPU there is nothing to compile for. */
    char err[512];
    if (!(dev = tile_cuda_device_open(0, err, sizeof err))) {
      tilec_fail("%s", err);
      f = NULL;
    }
  }
  if (f) {
#ifdef TILEC_HAVE_CUDA_BACKEND
    rc = compile_and_run(r, m, f, dev, &g);
#else
    tilec_fail("run: this tilec was built without the CUDA backend (backend-cuda/)");
#endif
  }
  tile_cuda_device_close(dev);
  tilec_global_free(&g);
  tile_module_free(m);
  free(src);
  return rc;
}
