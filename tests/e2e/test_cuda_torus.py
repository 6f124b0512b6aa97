"""Torus programs on one GPU (docs/cuda.md, "Torus programs on one GPU"): a function on a
mesh runs every chip on one device, each chip its slice of every buffer and its own
stream, collectives as device-to-device copies in the VLIW ring schedule.

Without a GPU: the emitted CUDA C has the reduce kernels; `--compile-only` prints the
plan, one line per collective of the partitioned program (the same collectives the VLIW
compile partitions the program into); bad meshes get located errors; a run says "no
CUDA device". The GPU executor runs against a stand-in driver (FAKE_DRIVER below, loaded
through $TILE_CUDA_DRIVER): host memory, streams as queues run in a random order that
respects streams and events, reduce kernels done on the host; every collective alone
matches numpy exactly on integer data, whatever the order. With a GPU (skipped
otherwise): the global sharded programs of test_spmd_run.py assemble the same results as
the emulator, and every collective alone matches numpy exactly. The plans themselves run
on the host in tests/unit/cuda/test_cuda_torus.c."""
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

import test_spmd_run as spmd
import tilemach
from test_collectives import chips_of, groups

COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all",
               "collective_permute")


def tilec(*args, env=None):
    return subprocess.run([str(tilemach.tilec_path()), *map(str, args)], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=600)


@pytest.fixture(scope="session")
def gpu_target(tmp_path_factory):
    """The --target of the GPU here; skips the test without one."""
    src = tmp_path_factory.mktemp("gpu") / "probe.tile"
    src.write_text("func @f(%a: tensor<8xf32>) -> tensor<8xf32> {\n"
                   "  %b = add %a, %a : tensor<8xf32>\n  return %b\n}\n")
    r = tilec("run", src, "--target", "cuda-sm90")
    if "no CUDA device" in r.stderr:
        pytest.skip("skipped: no CUDA device")
    m = re.search(r"use --target (cuda-sm\w+)", r.stderr)
    if m:
        return m.group(1)
    assert r.returncode == 0, r.stderr
    return "cuda-sm90"


FAKE_DRIVER = r"""
/* A stand-in for libcuda.so.1 that runs on the host: device memory is host memory, each
 * stream a queue of copies, reduce kernels (tc_coll_*), event records and waits, run at
 * synchronization points in a random order that respects streams and events (a seeded
 * generator: $FAKE_CUDA_SEED). Other kernels are refused. Waiting on an event never
 * recorded, or a legacy-stream copy while streams hold work, is an error. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef unsigned long long CUdeviceptr;
enum { OK = 0, ERR_VALUE = 1, ERR_UNSUPPORTED = 801, ERR_ORDER = 999 };

typedef struct Fn { char name[64]; } Fn;
typedef struct Event { uint64_t recorded, done; } Event;
typedef struct Op {
  int kind; /* 0 copy, 1 reduce, 2 record, 3 wait */
  CUdeviceptr dst, src;
  size_t width, rows, dpitch, spitch;
  char rk[8], el[8];
  long long n;
  Event *ev;
  uint64_t seq;
} Op;
typedef struct Stream { Op *ops; size_t n, cap, head; } Stream;

static Stream *streams[8192];
static int nstreams;
static uint64_t rng = 1;
static int broken;

static uint64_t rnd(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }

static float bf2f(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }
static uint16_t f2bf(float f) {
  uint32_t u; memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
static float fop(const char *k, float a, float b) {
  if (!strcmp(k, "add")) return a + b;
  if (!strcmp(k, "mul")) return a * b;
  if (!strcmp(k, "max")) return a != a ? a : b != b ? b : a > b ? a : b;
  return a != a ? a : b != b ? b : a < b ? a : b;
}
static void run_op(Op *o) {
  if (o->kind == 0) {
    for (size_t r = 0; r < o->rows; r++)
      memmove((char *)(uintptr_t)o->dst + r * o->dpitch, (char *)(uintptr_t)o->src + r * o->spitch, o->width);
  } else if (o->kind == 1) {
    for (long long i = 0; i < o->n; i++) {
      if (!strcmp(o->el, "f32")) {
        float *d = (float *)(uintptr_t)o->dst, *s = (float *)(uintptr_t)o->src;
        d[i] = fop(o->rk, d[i], s[i]);
      } else if (!strcmp(o->el, "bf16")) {
        uint16_t *d = (uint16_t *)(uintptr_t)o->dst, *s = (uint16_t *)(uintptr_t)o->src;
        d[i] = f2bf(fop(o->rk, bf2f(d[i]), bf2f(s[i])));
      } else {
        int32_t *d = (int32_t *)(uintptr_t)o->dst, *s = (int32_t *)(uintptr_t)o->src;
        int32_t a = d[i], b = s[i];
        d[i] = !strcmp(o->rk, "add") ? (int32_t)((uint32_t)a + (uint32_t)b)
             : !strcmp(o->rk, "mul") ? (int32_t)((uint32_t)a * (uint32_t)b)
             : !strcmp(o->rk, "max") ? (a > b ? a : b) : (a < b ? a : b);
      }
    }
  } else if (o->kind == 2) {
    if (o->seq > o->ev->done) o->ev->done = o->seq;
  }
}
static int ready(const Op *o) { return o->kind != 3 || o->ev->done >= o->seq; }
/* Runs every queued op, a random ready stream at a time. */
static CUresult drain(void) {
  for (;;) {
    int cand[8192], n = 0, left = 0;
    for (int i = 0; i < nstreams; i++) {
      Stream *s = streams[i];
      if (!s || s->head == s->n) continue;
      left = 1;
      if (ready(&s->ops[s->head])) cand[n++] = i;
    }
    if (!left) return broken ? ERR_ORDER : OK;
    if (!n) { broken = 1; fprintf(stderr, "fake cuda: streams deadlock\n"); return ERR_ORDER; }
    Stream *s = streams[cand[rnd() % (uint64_t)n]];
    run_op(&s->ops[s->head++]);
    if (s->head == s->n) s->head = s->n = 0;
  }
}
static int busy(void) {
  for (int i = 0; i < nstreams; i++) if (streams[i] && streams[i]->head != streams[i]->n) return 1;
  return 0;
}
static CUresult push(void *st, Op o) {
  Stream *s = st;
  if (!s) return ERR_VALUE;
  if (s->n == s->cap) { s->cap = s->cap ? 2 * s->cap : 64; s->ops = realloc(s->ops, s->cap * sizeof *s->ops); }
  s->ops[s->n++] = o;
  return OK;
}

CUresult cuInit(unsigned f) { const char *e = getenv("FAKE_CUDA_SEED"); rng = e ? strtoull(e, 0, 10) | 1 : 1; return OK; }
CUresult cuDriverGetVersion(int *v) { *v = 13000; return OK; }
CUresult cuDeviceGetCount(int *c) { *c = 1; return OK; }
CUresult cuDeviceGet(int *d, int o) { *d = 0; return OK; }
CUresult cuDeviceGetName(char *n, int len, int d) { snprintf(n, (size_t)len, "fake torus host"); return OK; }
CUresult cuDeviceGetAttribute(int *v, int a, int d) { *v = a == 75 ? 9 : a == 76 ? 0 : 232448; return OK; }
CUresult cuDevicePrimaryCtxRetain(void **c, int d) { static int ctx; *c = &ctx; return OK; }
CUresult cuDevicePrimaryCtxRelease_v2(int d) { return OK; }
CUresult cuCtxSetCurrent(void *c) { return OK; }
CUresult cuCtxGetDevice(int *d) { *d = 0; return OK; }
CUresult cuCtxSynchronize(void) { return drain(); }
static Fn *fns[4096];
static int nfns;
CUresult cuModuleLoadData(void **m, const void *img) { static int mod; *m = &mod; return OK; }
CUresult cuModuleUnload(void *m) { while (nfns) free(fns[--nfns]); return OK; }
CUresult cuModuleGetFunction(Fn **f, void *m, const char *name) {
  if (nfns == 4096) return ERR_VALUE;
  *f = fns[nfns++] = calloc(1, sizeof **f);
  snprintf((*f)->name, sizeof (*f)->name, "%s", name);
  return OK;
}
CUresult cuFuncSetAttribute(Fn *f, int a, int v) { return OK; }
CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n) { *p = (CUdeviceptr)(uintptr_t)malloc(n); return *p ? OK : 2; }
CUresult cuMemFree_v2(CUdeviceptr p) { free((void *)(uintptr_t)p); return OK; }
CUresult cuMemcpyHtoD_v2(CUdeviceptr d, const void *s, size_t n) { if (busy()) broken = 1; memcpy((void *)(uintptr_t)d, s, n); return busy() ? ERR_ORDER : OK; }
CUresult cuMemcpyDtoH_v2(void *d, CUdeviceptr s, size_t n) { if (busy()) return ERR_ORDER; memcpy(d, (void *)(uintptr_t)s, n); return OK; }
CUresult cuMemsetD8_v2(CUdeviceptr p, unsigned char v, size_t n) { if (busy()) return ERR_ORDER; memset((void *)(uintptr_t)p, v, n); return OK; }
CUresult cuLaunchKernel(Fn *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                        unsigned bz, unsigned smem, void *st, void **params, void **extra) {
  Op o = {.kind = 1};
  if (sscanf(f->name, "tc_coll_%7[a-z]_%7s", o.rk, o.el) != 2) return ERR_UNSUPPORTED;
  o.dst = *(CUdeviceptr *)params[0];
  o.src = *(CUdeviceptr *)params[1];
  o.n = *(long long *)params[2];
  if ((unsigned long long)gx * bx < 1 || (o.n > 0 && (unsigned long long)gx * bx * 4096 < (unsigned long long)o.n && gx < 4096)) return ERR_VALUE;
  return push(st, o);
}
CUresult cuStreamCreate(void **s, unsigned f) { Stream *n = calloc(1, sizeof *n); streams[nstreams++] = n; *s = n; return OK; }
CUresult cuStreamSynchronize(void *s) { return drain(); }
CUresult cuStreamDestroy_v2(void *s) {
  for (int i = 0; i < nstreams; i++) if (streams[i] == s) { free(streams[i]->ops); free(streams[i]); streams[i] = NULL; }
  return OK;
}
CUresult cuEventCreate(Event **e, unsigned f) { *e = calloc(1, sizeof **e); return OK; }
CUresult cuEventRecord(Event *e, void *st) { Op o = {.kind = 2, .ev = e, .seq = ++e->recorded}; return push(st, o); }
CUresult cuEventSynchronize(Event *e) { return drain(); }
CUresult cuEventDestroy_v2(Event *e) { free(e); return OK; }
CUresult cuEventElapsedTime(float *ms, Event *a, Event *b) { *ms = 0.5f; return OK; }
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr d, CUdeviceptr s, size_t n, void *st) {
  Op o = {.kind = 0, .dst = d, .src = s, .width = n, .rows = 1, .dpitch = n, .spitch = n};
  return push(st, o);
}
typedef struct M2 {
  size_t srcXInBytes, srcY; int srcMemoryType; const void *srcHost; CUdeviceptr srcDevice;
  void *srcArray; size_t srcPitch; size_t dstXInBytes, dstY; int dstMemoryType; void *dstHost;
  CUdeviceptr dstDevice; void *dstArray; size_t dstPitch; size_t WidthInBytes, Height;
} M2;
CUresult cuMemcpy2DAsync_v2(const M2 *c, void *st) {
  if (c->srcMemoryType != 2 || c->dstMemoryType != 2 || c->srcPitch < c->WidthInBytes ||
      c->dstPitch < c->WidthInBytes || c->srcXInBytes || c->dstXInBytes || c->srcY || c->dstY)
    return ERR_VALUE;
  Op o = {.kind = 0, .dst = c->dstDevice, .src = c->srcDevice, .width = c->WidthInBytes,
          .rows = c->Height, .dpitch = c->dstPitch, .spitch = c->srcPitch};
  return push(st, o);
}
CUresult cuStreamWaitEvent(void *st, Event *e, unsigned f) {
  if (!e->recorded) { broken = 1; return ERR_ORDER; }
  Op o = {.kind = 3, .ev = e, .seq = e->recorded};
  return push(st, o);
}
CUresult cuGetErrorName(CUresult r, const char **s) { *s = r == ERR_ORDER ? "FAKE_ORDER" : r == ERR_UNSUPPORTED ? "CUDA_ERROR_NOT_SUPPORTED" : "FAKE_ERROR"; return OK; }
CUresult cuGetErrorString(CUresult r, const char **s) { *s = r == ERR_ORDER ? "out of order" : "fake driver"; return OK; }
"""


@pytest.fixture(scope="session")
def fake_driver(tmp_path_factory):
    """The stand-in driver, built with the C compiler here."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler to build the stand-in driver")
    d = tmp_path_factory.mktemp("fakecuda")
    (d / "fake_cuda.c").write_text(FAKE_DRIVER)
    lib = d / "libfakecuda.so"
    r = subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", str(lib), str(d / "fake_cuda.c")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return lib


# ---- per-chip programs of one collective ----

def mesh_decl(torus):
    names = ["x", "y", "z"][: len(torus)]
    return f"mesh @m = torus<{'x'.join(map(str, torus))}>({', '.join(names)})"


def ttype(shape, elem):
    return f"tensor<{'x'.join(map(str, shape))}x{elem}>"


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


# ---- without a GPU ----

def test_source_has_the_reduce_kernel(tmp_path):
    src = spmd.write_program(tmp_path, "megatron", "2x2")
    r = tilec(src, "--target=cuda-sm90", "-S")
    assert r.returncode == 0, r.stderr
    assert "void __launch_bounds__(256) tc_coll_add_f32(float *dst, const float *src" in r.stdout
    # Kernels are per chip: the first matmul is x [4, 256] x w1 [256, 256] on each chip.
    assert "g0_mma" in r.stdout


@pytest.mark.parametrize("mesh", sorted(spmd.MESHES))
@pytest.mark.parametrize("prog", sorted(spmd.PROGRAMS))
def test_plan_has_the_partitioned_programs_collectives(tmp_path, prog, mesh):
    src = spmd.write_program(tmp_path, prog, mesh)
    part = tilec(src, "--emit=partitioned")
    assert part.returncode == 0, part.stderr
    want = sorted(re.findall(r"= (%s) " % "|".join(COLLECTIVES), part.stdout))
    r = tilec("run", src, "--target", "cuda-sm90", "--compile-only",
              env={"TILE_CUDA_CACHE_DIR": str(tmp_path / "cache")})
    if "cannot load NVRTC" in r.stderr:
        pytest.skip("no NVRTC here")
    assert r.returncode == 0, r.stderr
    chips = int(np.prod(spmd.MESHES[mesh][0]))
    assert re.search(r"^torus %s: %d chips, " % (mesh, chips), r.stdout, re.M), r.stdout
    got = sorted(re.findall(r"^  (%s)\b" % "|".join(COLLECTIVES), r.stdout, re.M))
    assert got == want, r.stdout
    # Every collective moves data between chips unless its axes have one chip.
    for line in re.findall(r"^  .*$", r.stdout, re.M):
        assert re.search(r"\d+ copies, \d+ waits, \d+ reduces, \d+ bytes", line), line


def test_plan_line_counts_one_ring(tmp_path):
    """1x4, all_reduce over y of 16 KiB per chip: both directions (p = 4 > 2), 3 steps
    each of reduce-scatter and all-gather; a copy per chip, ring and step moves a quarter
    of a half."""
    src = write(tmp_path, "ar.tile", "mesh @m = torus<1x4>(x, y)\n"
                "func @f(%a: tensor<16x256xf32>) -> tensor<16x256xf32> attributes {mesh = @m} {\n"
                "  %y = all_reduce %a {kind = max, axes = [y]} : tensor<16x256xf32>\n"
                "  return %y\n}\n")
    r = tilec("run", src, "--target", "cuda-sm90", "--compile-only",
              env={"TILE_CUDA_CACHE_DIR": str(tmp_path / "cache")})
    if "cannot load NVRTC" in r.stderr:
        pytest.skip("no NVRTC here")
    assert r.returncode == 0, r.stderr
    per_copy = 16 * 256 * 4 // 2 // 4
    copies_between = 4 * 2 * 3 * 2  # chips x rings x steps x phases
    m = re.search(r"all_reduce max over torus dims \[1\]: (\d+) copies, (\d+) waits, "
                  r"(\d+) reduces, (\d+) bytes between chips, longest hop 1", r.stdout)
    assert m, r.stdout
    assert int(m.group(2)) == copies_between
    assert int(m.group(3)) == 4 * 2 * 3
    assert int(m.group(4)) == copies_between * per_copy


def test_axis_that_is_not_a_torus_dim_is_refused(tmp_path):
    src = write(tmp_path, "bad.tile",
                "mesh @m = torus<4x4>(dp = 2 on [0], tp = 2 on [0], y = 4 on [1])\n"
                "func @f(%a: tensor<8xf32>) -> tensor<8xf32> attributes {mesh = @m} {\n"
                "  %y = all_reduce %a {kind = add, axes = [tp]} : tensor<8xf32>\n"
                "  return %y\n}\n")
    r = tilec(src, "--target=cuda-sm90", "-S")
    assert r.returncode == 1
    assert re.search(r"bad.tile:3:\d+: error: axis 'tp' of mesh @m is not one whole torus "
                     r"dimension", r.stderr), r.stderr


def test_run_without_a_gpu_says_so(tmp_path):
    src = spmd.write_program(tmp_path, "megatron", "2x2")
    r = tilec("run", src, "--target", "cuda-sm90", env={"TILE_CUDA_DRIVER": "/nonexistent.so"})
    assert r.returncode == 1
    assert "error: no CUDA device" in r.stderr


# ---- the GPU executor on the stand-in driver ----

def collective_program(tmp_path, op, torus, axes, shape=(64, 256)):
    body, out_shape, ref = collective_case(op, torus, axes, shape)
    decl = mesh_decl(torus)
    src = write(tmp_path, "c.tile", f"{decl}\n\nfunc @f(%a: {ttype(shape, 'f32')}) -> "
                f"{ttype(out_shape, 'f32')} attributes {{mesh = @m}} {{\n"
                f"  %y = {body} : {ttype(out_shape, 'f32')}\n  return %y\n}}\n")
    nchips = int(np.prod(torus))
    x = np.random.default_rng(len(op) + nchips).integers(-6, 7, (nchips, *shape))
    x = x.astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    return src, x, out_shape, ref


@pytest.mark.parametrize("seed", [1, 7])
@pytest.mark.parametrize("op", COLLECTIVES)
@pytest.mark.parametrize("torus,axes", [((1, 4), [1]), ((2, 2), [0, 1]), ((4, 4), [1, 0]),
                                        ((2, 2, 2), [2, 0])])
def test_executor_runs_every_collective(fake_driver, tmp_path, op, torus, axes, seed):
    src, x, out_shape, ref = collective_program(tmp_path, op, torus, axes)
    out = tmp_path / "y.npy"
    r = tilec("run", src, "--target", "cuda-sm90", "--in", f"a={tmp_path / 'a.npy'}",
              "--out", f"result={out}", "--repeat", "2",
              env={"TILE_CUDA_DRIVER": str(fake_driver), "FAKE_CUDA_SEED": str(seed),
                   "TILE_CUDA_CACHE_DIR": str(tmp_path / "cache")})
    if "cannot load NVRTC" in r.stderr:
        pytest.skip("no NVRTC here")
    assert r.returncode == 0, r.stderr
    nchips = int(np.prod(torus))
    assert f"fake torus host (sm_90): {nchips} chips, 0 launches each, 1 collectives" in r.stdout
    got = np.load(out)
    assert got.shape == (nchips, *out_shape)
    np.testing.assert_array_equal(got, ref(x))


def test_executor_names_the_kernel_and_chip_that_fail(fake_driver, tmp_path):
    """The stand-in driver runs no compute kernels: the first launch fails, reported at
    its source line with the chip."""
    src = spmd.write_program(tmp_path, "megatron", "2x2")
    r = tilec("run", src, "--target", "cuda-sm90",
              env={"TILE_CUDA_DRIVER": str(fake_driver),
                   "TILE_CUDA_CACHE_DIR": str(tmp_path / "cache")})
    if "cannot load NVRTC" in r.stderr:
        pytest.skip("no NVRTC here")
    assert r.returncode == 1
    assert re.search(r"megatron.tile:\d+:\d+: error: CUDA: launch g0_mma_0 on chip 0 failed: "
                     r"CUDA_ERROR_NOT_SUPPORTED", r.stderr), r.stderr


def test_input_needs_a_block_per_chip(fake_driver, tmp_path):
    src, x, _, _ = collective_program(tmp_path, "all_reduce", (2, 2), [0, 1])
    np.save(tmp_path / "one.npy", x[0])
    r = tilec("run", src, "--target", "cuda-sm90", "--in", f"a={tmp_path / 'one.npy'}",
              env={"TILE_CUDA_DRIVER": str(fake_driver),
                   "TILE_CUDA_CACHE_DIR": str(tmp_path / "cache")})
    assert r.returncode == 1
    assert "'a' is f32 [4, 64, 256] (one block per chip of the mesh)" in r.stderr, r.stderr


# ---- on a GPU ----

def run_emulator(tmp_path, src, args):
    out = tmp_path / "emu.npy"
    r = tilec("run", src, "--target", "tiny", *args, "--out", f"result={out}")
    assert r.returncode == 0, r.stderr
    return spmd.load_result(out)


@pytest.mark.parametrize("mesh", sorted(spmd.MESHES))
@pytest.mark.parametrize("prog", sorted(spmd.PROGRAMS))
def test_global_program_on_gpu_matches_emulator(gpu_target, tmp_path, prog, mesh):
    src = spmd.write_program(tmp_path, prog, mesh)
    _, shapes, ref = spmd.PROGRAMS[prog]
    arrays, args = spmd.random_inputs(tmp_path, shapes, seed=len(prog) * 7 + len(mesh))
    emu = run_emulator(tmp_path, src, args)
    out = tmp_path / "gpu.npy"
    r = tilec("run", src, "--target", gpu_target, *args, "--out", f"result={out}", "--stats")
    assert r.returncode == 0, r.stderr
    chips = int(np.prod(spmd.MESHES[mesh][0]))
    assert f"{chips} chips" in r.stdout
    got = spmd.load_result(out)
    assert got.shape == emu.shape
    assert np.all(np.isfinite(got))
    want = ref(*arrays.values())
    assert tilemach.nmse(want, got) <= spmd.MATMUL_NMSE
    assert tilemach.nmse(emu, got) <= spmd.MATMUL_NMSE


def collective_case(op, torus, axes, shape):
    """(body, out shape, reference of per-chip data) for one collective."""
    names = ["xyz"[a] for a in axes]
    P = int(np.prod([torus[a] for a in axes]))
    grp = groups(torus, axes)
    if op == "all_reduce":
        return (f"all_reduce %a {{kind = add, axes = [{', '.join(names)}]}}", shape,
                lambda x: np.stack([x[m].sum(0) for _, m in grp]))
    if op == "all_gather":
        out = (shape[0] * P, *shape[1:])
        return (f"all_gather %a {{dim = 0, axes = [{', '.join(names)}]}}", out,
                lambda x: np.stack([np.concatenate(list(x[m]), 0) for _, m in grp]))
    if op == "reduce_scatter":
        out = (shape[0], shape[1] // P)
        return (f"reduce_scatter %a {{kind = max, dim = 1, axes = [{', '.join(names)}]}}", out,
                lambda x: np.stack([np.split(x[m].max(0), P, 1)[r] for r, m in grp]))
    if op == "all_to_all":
        out = (shape[0] // P, shape[1] * P)
        return (f"all_to_all %a {{split_dim = 0, concat_dim = 1, axes = [{', '.join(names)}]}}",
                out, lambda x: np.stack([np.concatenate([np.split(x[j], P, 0)[r] for j in m], 1)
                                         for r, m in grp]))
    shift = 1
    def permute(x):
        out = np.empty_like(x)
        for c, coords in enumerate(chips_of(torus)):
            src = list(coords)
            src[axes[0]] = (coords[axes[0]] - shift) % torus[axes[0]]
            out[c] = x[chips_of(torus).index(tuple(src))]
        return out
    return f"collective_permute %a {{axis = {names[0]}, shift = {shift}}}", shape, permute


@pytest.mark.parametrize("op", COLLECTIVES)
@pytest.mark.parametrize("torus,axes", [((1, 4), [1]), ((2, 2), [0, 1]), ((4, 4), [1, 0]),
                                        ((2, 2, 2), [2, 0])])
def test_collective_on_gpu_matches_numpy(gpu_target, tmp_path, op, torus, axes):
    src, x, out_shape, ref = collective_program(tmp_path, op, torus, axes)
    nchips = int(np.prod(torus))
    out = tmp_path / "y.npy"
    r = tilec("run", src, "--target", gpu_target, "--in", f"a={tmp_path / 'a.npy'}",
              "--out", f"result={out}")
    assert r.returncode == 0, r.stderr
    got = np.load(out)
    assert got.shape == (nchips, *out_shape)
    np.testing.assert_array_equal(got, ref(x))
