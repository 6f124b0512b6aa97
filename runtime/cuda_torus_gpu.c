/* The GPU executor of a torus plan (include/tile/cuda_torus.h, runtime/cuda_torus.c).
 *
 * Buffers: one allocation each, nchips slices. Streams: one per chip, non-blocking.
 * Events: one per copy between chips (recorded after it, waited on by the receiver's
 * stream), created without timing. A run records `start` on chip 0's stream and every
 * other stream waits for it; at the end chip 0's stream waits for every stream's `done`
 * and records `end`, so end - start times the whole plan. Steps are issued in the plan's
 * order, which puts every wait after the record it waits for. */
#include <stdio.h>
#include <stdlib.h>

#include "cuda_driver.h"
#include "tile/cuda_torus.h"

typedef struct TorusRun {
  const TileCudaDriver *drv;
  const TileCudaProgram *p;
  const TileCudaTorusPlan *plan;
  CUmodule mod;
  CUfunction *fn;  /* per launch */
  CUfunction *rfn; /* per collective: its reduce kernel, or NULL */
  CUdeviceptr *mem;
  CUstream *streams;
  CUevent *ev, *done, start, end;
  const TileCudaHostBuffer *in;
  int nin;
  TileDiag *d;
} TorusRun;

static bool cu_fail(const TorusRun *r, TileLoc loc, CUresult e, const char *what) {
  return tile_cuda_fail(r->drv, r->d, loc, e, what);
}

static void torus_release(TorusRun *r) {
  const TileCudaDriver *drv = r->drv;
  const TileCudaTorusPlan *pl = r->plan;
  for (int i = 0; r->ev && i < pl->nevents; i++)
    if (r->ev[i]) drv->cuEventDestroy(r->ev[i]);
  for (int c = 0; r->done && c < pl->nchips; c++)
    if (r->done[c]) drv->cuEventDestroy(r->done[c]);
  if (r->start) drv->cuEventDestroy(r->start);
  if (r->end) drv->cuEventDestroy(r->end);
  for (int c = 0; r->streams && c < pl->nchips; c++)
    if (r->streams[c]) drv->cuStreamDestroy(r->streams[c]);
  for (int b = 0; r->mem && b < pl->nbufs; b++)
    if (r->mem[b]) drv->cuMemFree(r->mem[b]);
  if (r->mod) drv->cuModuleUnload(r->mod);
  free(r->ev);
  free(r->done);
  free(r->streams);
  free(r->mem);
  free(r->fn);
  free(r->rfn);
}

static bool torus_setup(TorusRun *r, const uint8_t *cubin) {
  const TileCudaDriver *drv = r->drv;
  const TileCudaProgram *p = r->p;
  const TileCudaTorusPlan *pl = r->plan;
  const TileLoc none = {0};
  CUresult e;
  CUdevice dev;
  int smem_optin = 0;
  if ((e = drv->cuCtxGetDevice(&dev)) ||
      (e = drv->cuDeviceGetAttribute(&smem_optin, CU_ATTR_SMEM_OPTIN, dev)))
    return cu_fail(r, none, e, "reading the current device");
  r->fn = calloc((size_t)p->nlaunches + 1, sizeof *r->fn);
  r->rfn = calloc((size_t)p->ncolls + 1, sizeof *r->rfn);
  r->mem = calloc((size_t)pl->nbufs + 1, sizeof *r->mem);
  r->streams = calloc((size_t)pl->nchips, sizeof *r->streams);
  r->done = calloc((size_t)pl->nchips, sizeof *r->done);
  r->ev = calloc((size_t)pl->nevents + 1, sizeof *r->ev);
  if (!r->fn || !r->rfn || !r->mem || !r->streams || !r->done || !r->ev)
    return tile_error(r->d, none, "out of memory");
  if ((e = drv->cuModuleLoadData(&r->mod, cubin)))
    return cu_fail(r, none, e, "loading the cubin (cuModuleLoadData)");
  if (!tile_cuda_load_kernels(drv, r->mod, p, r->fn, smem_optin, "the device", r->d))
    return false;
  for (int i = 0; i < p->ncolls; i++)
    if (p->colls[i].reduce_kernel[0] &&
        (e = drv->cuModuleGetFunction(&r->rfn[i], r->mod, p->colls[i].reduce_kernel)))
      return cu_fail(r, p->colls[i].src_loc, e, "finding the reduce kernel in the cubin");
  for (int b = 0; b < pl->nbufs; b++) {
    size_t n = (size_t)pl->nchips * (size_t)pl->bufs[b].stride;
    if ((e = drv->cuMemAlloc(&r->mem[b], n))) {
      char what[160];
      snprintf(what, sizeof what, "allocating %zu bytes for buffer '%s' (%d chips)", n,
               pl->bufs[b].name, pl->nchips);
      return cu_fail(r, none, e, what);
    }
  }
  for (int c = 0; c < pl->nchips; c++)
    if ((e = drv->cuStreamCreate(&r->streams[c], CU_STREAM_NON_BLOCKING)) ||
        (e = drv->cuEventCreate(&r->done[c], CU_EVENT_DISABLE_TIMING)))
      return cu_fail(r, none, e, "creating a chip's stream");
  for (int i = 0; i < pl->nevents; i++)
    if ((e = drv->cuEventCreate(&r->ev[i], CU_EVENT_DISABLE_TIMING)))
      return cu_fail(r, none, e, "cuEventCreate");
  if ((e = drv->cuEventCreate(&r->start, CU_EVENT_DEFAULT)) ||
      (e = drv->cuEventCreate(&r->end, CU_EVENT_DEFAULT)))
    return cu_fail(r, none, e, "cuEventCreate");
  return true;
}

static CUdeviceptr chip_ptr(const TorusRun *r, TileTorusRef x) {
  return r->mem[x.buf] + (CUdeviceptr)x.chip * (CUdeviceptr)r->plan->bufs[x.buf].stride +
         (CUdeviceptr)x.off;
}

/* Zeros, initial contents, inputs (one block per chip), on every chip's slices. */
static bool torus_reset(TorusRun *r) {
  const TileCudaDriver *drv = r->drv;
  const TileCudaTorusPlan *pl = r->plan;
  const TileLoc none = {0};
  CUresult e;
  for (int b = 0; b < pl->nbufs; b++) {
    const TileTorusBuffer *t = &pl->bufs[b];
    if ((e = drv->cuMemsetD8(r->mem[b], 0, (size_t)pl->nchips * (size_t)t->stride)))
      return cu_fail(r, none, e, "clearing device memory");
    const TileCudaBuffer *pb = t->prog >= 0 ? &r->p->bufs[t->prog] : NULL;
    for (int c = 0; pb && pb->init && c < pl->nchips; c++)
      if ((e = drv->cuMemcpyHtoD(chip_ptr(r, (TileTorusRef){c, b, 0}), pb->init,
                                 (size_t)pb->bytes)))
        return cu_fail(r, none, e, "copying initial contents to the device");
  }
  for (int k = 0; k < r->nin; k++) {
    int b = tile_cuda_find_buffer(r->p, r->in[k].name);
    size_t per = (size_t)r->p->bufs[b].bytes;
    for (int c = 0; per && c < pl->nchips; c++)
      if ((e = drv->cuMemcpyHtoD(chip_ptr(r, (TileTorusRef){c, b, 0}),
                                 (const uint8_t *)r->in[k].data + (size_t)c * per, per)))
        return cu_fail(r, none, e, "copying an input to the device");
  }
  /* The chips' streams do not wait for the legacy stream these copies ran on. */
  if ((e = drv->cuCtxSynchronize())) return cu_fail(r, none, e, "preparing device memory");
  return true;
}

static TileLoc step_loc(const TorusRun *r, const TileTorusStep *s) {
  if (s->kind == TILE_TORUS_LAUNCH) return r->p->launches[s->launch].src_loc;
  return s->coll >= 0 ? r->p->colls[s->coll].src_loc : (TileLoc){0};
}

static bool torus_step(TorusRun *r, const TileTorusStep *s, bool checked) {
  const TileCudaDriver *drv = r->drv;
  CUstream st = r->streams[s->chip];
  CUresult e = CU_SUCCESS;
  const char *what = "?";
  switch (s->kind) {
  case TILE_TORUS_LAUNCH: {
    const TileCudaLaunch *L = &r->p->launches[s->launch];
    CUdeviceptr ptr[TILE_CUDA_MAX_ARGS];
    void *params[TILE_CUDA_MAX_ARGS];
    for (int a = 0; a < L->nargs; a++) {
      ptr[a] = chip_ptr(r, (TileTorusRef){s->chip, L->args[a], 0});
      params[a] = &ptr[a];
    }
    what = L->kernel;
    e = drv->cuLaunchKernel(r->fn[s->launch], L->grid[0], L->grid[1], L->grid[2], L->block[0],
                            L->block[1], L->block[2], L->smem_bytes, st, params, NULL);
    break;
  }
  case TILE_TORUS_COPY:
    what = "a copy between chips";
    if (s->rows == 1) {
      e = drv->cuMemcpyDtoDAsync(chip_ptr(r, s->dst), chip_ptr(r, s->src), (size_t)s->bytes, st);
    } else {
      TileCudaMemcpy2D c = {.srcMemoryType = CU_MEMORYTYPE_DEVICE,
                            .srcDevice = chip_ptr(r, s->src),
                            .srcPitch = (size_t)s->src_pitch,
                            .dstMemoryType = CU_MEMORYTYPE_DEVICE,
                            .dstDevice = chip_ptr(r, s->dst),
                            .dstPitch = (size_t)s->dst_pitch,
                            .WidthInBytes = (size_t)s->bytes,
                            .Height = (size_t)s->rows};
      e = drv->cuMemcpy2DAsync(&c, st);
    }
    if (!e && s->event >= 0) e = drv->cuEventRecord(r->ev[s->event], st);
    break;
  case TILE_TORUS_WAIT:
    what = "a wait for another chip";
    e = drv->cuStreamWaitEvent(st, r->ev[s->event], 0);
    break;
  case TILE_TORUS_REDUCE: {
    CUdeviceptr dst = chip_ptr(r, s->dst), src = chip_ptr(r, s->src);
    long long n = s->bytes;
    void *params[3] = {&dst, &src, &n};
    long long blocks = (n + 255) / 256;
    what = r->p->colls[s->coll].reduce_kernel;
    e = drv->cuLaunchKernel(r->rfn[s->coll], (unsigned)(blocks < 4096 ? blocks : 4096), 1, 1, 256,
                            1, 1, 0, st, params, NULL);
    break;
  }
  }
  char msg[200];
  if (e) {
    snprintf(msg, sizeof msg, "%s %s on chip %d", tile_torus_step_name((TileTorusStepKind)s->kind),
             what, s->chip);
    return cu_fail(r, step_loc(r, s), e, msg);
  }
  /* The first run waits for each kernel, so a fault names the kernel and chip. */
  if (checked && (s->kind == TILE_TORUS_LAUNCH || s->kind == TILE_TORUS_REDUCE) &&
      (e = drv->cuStreamSynchronize(st))) {
    snprintf(msg, sizeof msg, "running %s on chip %d", what, s->chip);
    return cu_fail(r, step_loc(r, s), e, msg);
  }
  return true;
}

static bool torus_pass(TorusRun *r, bool checked) {
  const TileCudaDriver *drv = r->drv;
  const TileCudaTorusPlan *pl = r->plan;
  const TileLoc none = {0};
  CUresult e;
  if ((e = drv->cuEventRecord(r->start, r->streams[0])))
    return cu_fail(r, none, e, "cuEventRecord");
  for (int c = 1; c < pl->nchips; c++)
    if ((e = drv->cuStreamWaitEvent(r->streams[c], r->start, 0)))
      return cu_fail(r, none, e, "cuStreamWaitEvent");
  for (int32_t i = 0; i < pl->nsteps; i++)
    if (!torus_step(r, &pl->steps[i], checked)) return false;
  for (int c = 0; c < pl->nchips; c++)
    if ((e = drv->cuEventRecord(r->done[c], r->streams[c])) ||
        (e = drv->cuStreamWaitEvent(r->streams[0], r->done[c], 0)))
      return cu_fail(r, none, e, "joining the chips' streams");
  if ((e = drv->cuEventRecord(r->end, r->streams[0]))) return cu_fail(r, none, e, "cuEventRecord");
  for (int c = 0; c < pl->nchips; c++)
    if ((e = drv->cuStreamSynchronize(r->streams[c])))
      return cu_fail(r, none, e, "running the torus program");
  return true;
}

/* Inputs and outputs hold one block per chip: nchips x the buffer's bytes. */
static bool torus_bindings(const TileCudaProgram *p, const TileCudaTorusPlan *pl,
                           const TileCudaHostBuffer *in, int nin, const TileCudaHostBuffer *out,
                           int nout, TileDiag *d) {
  if (!tile_cuda_check_bindings(p, in, nin, out, nout, pl->nchips, d)) return false;
  for (int i = 0; i < p->ncolls; i++)
    if (p->colls[i].reduce && !p->colls[i].reduce_kernel[0])
      return tile_error(d, p->colls[i].src_loc, "the collective has no reduce kernel");
  return true;
}

bool tile_cuda_torus_run(TileCudaDevice *dev, const TileCudaProgram *p,
                         const TileCudaTorusPlan *plan, const uint8_t *cubin, size_t len,
                         const TileCudaHostBuffer *in, int nin, TileCudaHostBuffer *out,
                         int nout, const TileCudaRunOptions *o, TileCudaTiming *timing,
                         TileDiag *d) {
  (void)len; /* a cubin carries its own size */
  (void)dev; /* tile_cuda_device_open made its context current on this thread */
  if (!torus_bindings(p, plan, in, nin, out, nout, d)) return false;
  char err[512];
  const TileCudaDriver *drv = tile_cuda_driver(err, sizeof err);
  if (!drv) return tile_error(d, (TileLoc){0}, "%s", err);
  const int warmup = o && o->warmup > 0 ? o->warmup : 0;
  const int repeat = o && o->repeat > 1 ? o->repeat : 1;
  TorusRun r = {.drv = drv, .p = p, .plan = plan, .in = in, .nin = nin, .d = d};
  TileCudaTiming t = {0, NULL, 0};
  bool ok = torus_setup(&r, cubin);
  for (int i = 0; ok && i < warmup + repeat; i++) {
    ok = torus_reset(&r) && torus_pass(&r, i == 0);
    float ms = 0;
    CUresult e;
    if (ok && i >= warmup && (e = drv->cuEventElapsedTime(&ms, r.start, r.end)))
      ok = cu_fail(&r, (TileLoc){0}, e, "cuEventElapsedTime");
    if (ok && i >= warmup && (i == warmup || ms < t.total_ms)) t.total_ms = ms;
  }
  for (int k = 0; ok && k < nout; k++) {
    int b = tile_cuda_find_buffer(p, out[k].name);
    size_t per = (size_t)p->bufs[b].bytes;
    for (int c = 0; ok && per && c < plan->nchips; c++) {
      CUresult e = drv->cuMemcpyDtoH((uint8_t *)out[k].data + (size_t)c * per,
                                     chip_ptr(&r, (TileTorusRef){c, b, 0}), per);
      if (e) ok = cu_fail(&r, (TileLoc){0}, e, "copying an output to the host");
    }
  }
  torus_release(&r);
  if (ok && timing) *timing = t;
  return ok;
}
