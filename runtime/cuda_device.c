/* Devices and runs (include/tile/cuda_runtime.h): a device is a GPU with its primary
 * context; a run loads a cubin, gives every buffer of the program device memory, puts
 * the inputs there, launches the kernels in order on one stream, times each launch
 * with events and copies the outputs back.
 *
 * Every run, timed or not, starts from the same memory: zeros, the buffers' initial
 * contents, the inputs. A program may update a buffer in place (an inout KV cache) or
 * accumulate into an output, so a repeated run without the reset would compute
 * something else. The first run synchronizes after each launch so that a fault names
 * the kernel that made it (a fault is sticky: nothing after it runs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_driver.h"
#include "tile/cuda_runtime.h"

struct TileCudaDevice {
  const TileCudaDriver *drv;
  CUdevice dev;
  CUcontext ctx;
  int cc_major, cc_minor, smem_optin;
  char name[256];
  char arch[16];
};

bool tile_cuda_fail(const TileCudaDriver *drv, TileDiag *d, TileLoc loc, CUresult r,
                    const char *what) {
  char buf[256];
  return tile_error(d, loc, "CUDA: %s failed: %s", what,
                    tile_cuda_result_text(drv, r, buf, sizeof buf));
}

TileCudaDevice *tile_cuda_device_open(int ordinal, char *err, size_t errlen) {
  const TileCudaDriver *drv = tile_cuda_driver(err, errlen);
  if (!drv) return NULL;
  int count = 0;
  CUresult r = drv->cuDeviceGetCount(&count);
  if (r != CU_SUCCESS || ordinal < 0 || ordinal >= count) {
    snprintf(err, errlen, "%s (device %d asked for; the driver sees %d)", TILE_CUDA_NO_DEVICE,
             ordinal, r == CU_SUCCESS ? count : 0);
    return NULL;
  }
  TileCudaDevice *dev = calloc(1, sizeof *dev);
  if (!dev) {
    snprintf(err, errlen, "out of memory opening CUDA device %d", ordinal);
    return NULL;
  }
  dev->drv = drv;
  char buf[200];
  const char *step = "cuDeviceGet";
  if ((r = drv->cuDeviceGet(&dev->dev, ordinal)) != CU_SUCCESS) goto fail;
  step = "cuDeviceGetName";
  if ((r = drv->cuDeviceGetName(dev->name, (int)sizeof dev->name, dev->dev)) != CU_SUCCESS)
    goto fail;
  step = "cuDeviceGetAttribute";
  if ((r = drv->cuDeviceGetAttribute(&dev->cc_major, CU_ATTR_CC_MAJOR, dev->dev)) ||
      (r = drv->cuDeviceGetAttribute(&dev->cc_minor, CU_ATTR_CC_MINOR, dev->dev)) ||
      (r = drv->cuDeviceGetAttribute(&dev->smem_optin, CU_ATTR_SMEM_OPTIN, dev->dev)))
    goto fail;
  step = "cuDevicePrimaryCtxRetain";
  if ((r = drv->cuDevicePrimaryCtxRetain(&dev->ctx, dev->dev)) != CU_SUCCESS) goto fail;
  step = "cuCtxSetCurrent";
  if ((r = drv->cuCtxSetCurrent(dev->ctx)) != CU_SUCCESS) {
    drv->cuDevicePrimaryCtxRelease(dev->dev);
    goto fail;
  }
  snprintf(dev->arch, sizeof dev->arch, "sm_%d%d", dev->cc_major, dev->cc_minor);
  return dev;
fail:
  snprintf(err, errlen, "CUDA device %d: %s failed: %s", ordinal, step,
           tile_cuda_result_text(drv, r, buf, sizeof buf));
  free(dev);
  return NULL;
}

void tile_cuda_device_close(TileCudaDevice *dev) {
  if (!dev) return;
  dev->drv->cuDevicePrimaryCtxRelease(dev->dev);
  free(dev);
}

const char *tile_cuda_device_name(const TileCudaDevice *dev) { return dev->name; }
const char *tile_cuda_device_arch(const TileCudaDevice *dev) { return dev->arch; }

bool tile_cuda_device_runs(const TileCudaDevice *dev, const char *arch) {
  int n = 0, used = 0;
  if (sscanf(arch, "sm_%d%n", &n, &used) != 1 || n < 10) return false;
  const char *suffix = arch + used;
  int major = n / 10, minor = n % 10;
  /* sm_90a code (wgmma) runs only on exactly that architecture; plain cubins run on
   * later minor versions of the same major one. */
  if (strcmp(suffix, "a") == 0) return major == dev->cc_major && minor == dev->cc_minor;
  return !*suffix && major == dev->cc_major && minor <= dev->cc_minor;
}

void tile_cuda_timing_free(TileCudaTiming *t) {
  if (!t) return;
  free(t->launch_ms);
  t->launch_ms = NULL;
  t->nlaunches = 0;
}

/* The resources of one run, released together. */
typedef struct Run {
  const TileCudaDriver *drv;
  const TileCudaProgram *p;
  CUdeviceptr *mem;
  CUmodule mod;
  CUfunction *fn;
  CUstream stream;
  CUevent *ev; /* nlaunches + 1: before each launch and after the last */
  const TileCudaHostBuffer *in;
  int nin;
  TileDiag *d;
} Run;

static void run_release(Run *r) {
  const TileCudaDriver *drv = r->drv;
  if (r->ev)
    for (int i = 0; i <= r->p->nlaunches; i++)
      if (r->ev[i]) drv->cuEventDestroy(r->ev[i]);
  if (r->stream) drv->cuStreamDestroy(r->stream);
  if (r->mem)
    for (int i = 0; i < r->p->nbufs; i++)
      if (r->mem[i]) drv->cuMemFree(r->mem[i]);
  if (r->mod) drv->cuModuleUnload(r->mod);
  free(r->ev);
  free(r->fn);
  free(r->mem);
}

int tile_cuda_find_buffer(const TileCudaProgram *p, const char *name) {
  for (int i = 0; i < p->nbufs; i++)
    if (strcmp(p->bufs[i].name, name) == 0) return i;
  return -1;
}

bool tile_cuda_check_bindings(const TileCudaProgram *p, const TileCudaHostBuffer *in, int nin,
                              const TileCudaHostBuffer *out, int nout, int chips, TileDiag *d) {
  const TileLoc none = {0};
  for (int k = 0; k < nin + nout; k++) {
    const bool is_in = k < nin;
    const TileCudaHostBuffer *h = is_in ? &in[k] : &out[k - nin];
    const char *what = is_in ? "input" : "output";
    int b = tile_cuda_find_buffer(p, h->name);
    unsigned want = is_in ? TILE_BIND_IN : TILE_BIND_OUT;
    if (b < 0 || !(p->bufs[b].bind & want))
      return tile_error(d, none, "the program has no %s named '%s'", what, h->name);
    const long long bytes = (long long)p->bufs[b].bytes;
    if (!chips && (int64_t)h->bytes != bytes)
      return tile_error(d, none, "%s '%s' is %lld bytes; %zu given", what, h->name, bytes,
                        h->bytes);
    if (chips && (int64_t)h->bytes != bytes * chips)
      return tile_error(d, none, "%s '%s' is %lld bytes per chip on %d chips; %zu given", what,
                        h->name, bytes, chips, h->bytes);
  }
  for (int l = 0; l < p->nlaunches; l++) {
    const TileCudaLaunch *L = &p->launches[l];
    if (L->nargs < 0 || L->nargs > TILE_CUDA_MAX_ARGS)
      return tile_error(d, L->src_loc, "launch of %s has %d arguments", L->kernel, L->nargs);
    for (int a = 0; a < L->nargs; a++)
      if (L->args[a] < 0 || L->args[a] >= p->nbufs)
        return tile_error(d, L->src_loc, "launch of %s names buffer %d of %d", L->kernel,
                          L->args[a], p->nbufs);
  }
  return true;
}

bool tile_cuda_load_kernels(const TileCudaDriver *drv, CUmodule mod, const TileCudaProgram *p,
                            CUfunction *fn, int smem_optin, const char *device, TileDiag *d) {
  CUresult e;
  for (int l = 0; l < p->nlaunches; l++) {
    const TileCudaLaunch *L = &p->launches[l];
    if ((e = drv->cuModuleGetFunction(&fn[l], mod, L->kernel)))
      return tile_cuda_fail(drv, d, L->src_loc, e, "finding the kernel in the cubin");
    if (L->smem_bytes > (uint32_t)smem_optin)
      return tile_error(d, L->src_loc,
                        "kernel %s needs %u bytes of shared memory; %s has %d per block",
                        L->kernel, L->smem_bytes, device, smem_optin);
    /* Above 48 KiB dynamic shared memory must be asked for per function. */
    if (L->smem_bytes > 48u * 1024u &&
        (e = drv->cuFuncSetAttribute(fn[l], CU_FUNC_ATTR_MAX_DYN_SMEM, (int)L->smem_bytes)))
      return tile_cuda_fail(drv, d, L->src_loc, e, "raising the kernel's shared memory limit");
  }
  return true;
}

static bool setup(Run *r, TileCudaDevice *dev, const uint8_t *cubin, size_t len) {
  const TileCudaDriver *drv = r->drv;
  const TileCudaProgram *p = r->p;
  const TileLoc none = {0};
  CUresult e;
  (void)len; /* a cubin carries its own size in its ELF header */
  if ((e = drv->cuCtxSetCurrent(dev->ctx)))
    return tile_cuda_fail(drv, r->d, none, e, "cuCtxSetCurrent");
  r->mem = calloc((size_t)p->nbufs + 1, sizeof *r->mem);
  r->fn = calloc((size_t)p->nlaunches + 1, sizeof *r->fn);
  r->ev = calloc((size_t)p->nlaunches + 1, sizeof *r->ev);
  if (!r->mem || !r->fn || !r->ev) return tile_error(r->d, none, "out of memory");
  if ((e = drv->cuModuleLoadData(&r->mod, cubin)))
    return tile_cuda_fail(drv, r->d, none, e, "loading the cubin (cuModuleLoadData)");
  if (!tile_cuda_load_kernels(drv, r->mod, p, r->fn, dev->smem_optin, dev->name, r->d))
    return false;
  for (int b = 0; b < p->nbufs; b++) {
    size_t n = p->bufs[b].bytes > 0 ? (size_t)p->bufs[b].bytes : 1;
    if ((e = drv->cuMemAlloc(&r->mem[b], n))) {
      char what[128];
      snprintf(what, sizeof what, "allocating %zu bytes for buffer '%s'", n, p->bufs[b].name);
      return tile_cuda_fail(drv, r->d, none, e, what);
    }
  }
  if ((e = drv->cuStreamCreate(&r->stream, CU_STREAM_NON_BLOCKING)))
    return tile_cuda_fail(drv, r->d, none, e, "cuStreamCreate");
  for (int i = 0; i <= p->nlaunches; i++)
    if ((e = drv->cuEventCreate(&r->ev[i], CU_EVENT_DEFAULT)))
      return tile_cuda_fail(drv, r->d, none, e, "cuEventCreate");
  return true;
}

/* Zeros, initial contents, inputs: the memory every run starts from. */
static bool reset_memory(Run *r) {
  const TileCudaDriver *drv = r->drv;
  const TileCudaProgram *p = r->p;
  const TileLoc none = {0};
  CUresult e;
  for (int b = 0; b < p->nbufs; b++) {
    const TileCudaBuffer *B = &p->bufs[b];
    if (B->bytes <= 0) continue;
    if ((e = drv->cuMemsetD8(r->mem[b], 0, (size_t)B->bytes)))
      return tile_cuda_fail(drv, r->d, none, e, "clearing device memory");
    if (B->init && (e = drv->cuMemcpyHtoD(r->mem[b], B->init, (size_t)B->bytes)))
      return tile_cuda_fail(drv, r->d, none, e, "copying initial contents to the device");
  }
  for (int k = 0; k < r->nin; k++) {
    int b = tile_cuda_find_buffer(p, r->in[k].name);
    if (r->in[k].bytes && (e = drv->cuMemcpyHtoD(r->mem[b], r->in[k].data, r->in[k].bytes)))
      return tile_cuda_fail(drv, r->d, none, e, "copying an input to the device");
  }
  return true;
}

/* One pass over the launch sequence; checked = synchronize after every launch. */
static bool launch_all(Run *r, bool checked) {
  const TileCudaDriver *drv = r->drv;
  const TileCudaProgram *p = r->p;
  CUresult e;
  for (int l = 0; l < p->nlaunches; l++) {
    const TileCudaLaunch *L = &p->launches[l];
    void *params[TILE_CUDA_MAX_ARGS];
    for (int a = 0; a < L->nargs; a++) params[a] = &r->mem[L->args[a]];
    if ((e = drv->cuEventRecord(r->ev[l], r->stream)))
      return tile_cuda_fail(drv, r->d, L->src_loc, e, "cuEventRecord");
    e = drv->cuLaunchKernel(r->fn[l], L->grid[0], L->grid[1], L->grid[2], L->block[0],
                            L->block[1], L->block[2], L->smem_bytes, r->stream, params, NULL);
    if (e) {
      char what[160];
      snprintf(what, sizeof what, "launching %s (grid %ux%ux%u, block %ux%ux%u)", L->kernel,
               L->grid[0], L->grid[1], L->grid[2], L->block[0], L->block[1], L->block[2]);
      return tile_cuda_fail(drv, r->d, L->src_loc, e, what);
    }
    if (checked && (e = drv->cuStreamSynchronize(r->stream))) {
      char what[160];
      snprintf(what, sizeof what, "running %s%s%s", L->kernel, L->src_name ? " for " : "",
               L->src_name ? L->src_name : "");
      return tile_cuda_fail(drv, r->d, L->src_loc, e, what);
    }
  }
  if ((e = drv->cuEventRecord(r->ev[p->nlaunches], r->stream)))
    return tile_cuda_fail(drv, r->d, (TileLoc){0}, e, "cuEventRecord");
  if ((e = drv->cuStreamSynchronize(r->stream)))
    return tile_cuda_fail(drv, r->d, (TileLoc){0}, e, "running the program");
  return true;
}

/* Keeps, per launch and for the whole sequence, the fastest time seen. */
static bool record_times(Run *r, TileCudaTiming *t, bool first) {
  const TileCudaDriver *drv = r->drv;
  const int n = r->p->nlaunches;
  CUresult e;
  for (int l = 0; l <= n; l++) {
    float ms = 0;
    int from = l < n ? l : 0, to = l < n ? l + 1 : n;
    if (n > 0 && (e = drv->cuEventElapsedTime(&ms, r->ev[from], r->ev[to])))
      return tile_cuda_fail(drv, r->d, (TileLoc){0}, e, "cuEventElapsedTime");
    float *slot = l < n ? &t->launch_ms[l] : &t->total_ms;
    if (first || ms < *slot) *slot = ms;
  }
  return true;
}

bool tile_cuda_run(TileCudaDevice *dev, const TileCudaProgram *p, const uint8_t *cubin,
                   size_t len, const TileCudaHostBuffer *in, int nin, TileCudaHostBuffer *out,
                   int nout, const TileCudaRunOptions *o, TileCudaTiming *timing, TileDiag *d) {
  if (!tile_cuda_check_bindings(p, in, nin, out, nout, 0, d)) return false;
  const int warmup = o && o->warmup > 0 ? o->warmup : 0;
  const int repeat = o && o->repeat > 1 ? o->repeat : 1;
  TileCudaTiming t = {p->nlaunches, calloc((size_t)p->nlaunches + 1, sizeof(float)), 0};
  Run r = {.drv = dev->drv, .p = p, .in = in, .nin = nin, .d = d};
  bool ok = t.launch_ms != NULL;
  if (!ok) tile_error(d, (TileLoc){0}, "out of memory");
  ok = ok && setup(&r, dev, cubin, len);
  for (int i = 0; ok && i < warmup + repeat; i++) {
    ok = reset_memory(&r) && launch_all(&r, i == 0);
    if (ok && i >= warmup) ok = record_times(&r, &t, i == warmup);
  }
  for (int k = 0; ok && k < nout; k++) {
    int b = tile_cuda_find_buffer(p, out[k].name);
    CUresult e = out[k].bytes ? dev->drv->cuMemcpyDtoH(out[k].data, r.mem[b], out[k].bytes) : 0;
    if (e) ok = tile_cuda_fail(dev->drv, d, (TileLoc){0}, e, "copying an output to the host");
  }
  run_release(&r);
  if (ok && timing) *timing = t;
  else tile_cuda_timing_free(&t);
  return ok;
}
