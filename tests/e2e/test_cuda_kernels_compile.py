"""Tile-level kernels (examples/tile_matmul.tile, both kernels of
examples/dma_pipeline.tile) compile to GPU code: through NVRTC for sm_90 and sm_80 and
through nvcc for sm_90. No GPU is needed. Every compile runs once per test session,
two at a time; the tests then look at the results."""
import concurrent.futures
import shutil
import subprocess
from pathlib import Path

import pytest

import tilemach

EX = tilemach.ROOT / "examples"
NVCC = Path(shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc")

# (id, source, --func)
KERNELS = [
    ("matmul", EX / "tile_matmul.tile", None),
    ("block_sum", EX / "dma_pipeline.tile", "block_sum"),
    ("scale", EX / "dma_pipeline.tile", "scale"),
]
# (name, target, extra options, needs)
JOBS = [
    ("nvrtc-sm90", "cuda-sm90", [], "nvrtc"),
    ("nvrtc-sm80", "cuda-sm80", [], "nvrtc"),
    ("nvcc-sm90", "cuda-sm90", ["--nvcc"], "nvcc"),
]


def _nvrtc_available():
    if Path("/usr/local/cuda/lib64/libnvrtc.so").exists():
        return True
    try:
        import ctypes
        ctypes.CDLL("libnvrtc.so")
        return True
    except OSError:
        return False


def _run(cmd):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600)
    return r.returncode, r.stdout, r.stderr


def _cmd(tilec, src, func, *rest):
    return [tilec, src] + (["--func", func] if func else []) + list(rest)


@pytest.fixture(scope="session")
def compiled(tilec, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cuda_kernels")
    have = {"nvrtc": _nvrtc_available(), "nvcc": NVCC.exists()}
    work = {}
    for job, target, extra, needs in JOBS:
        if not have[needs]:
            continue
        for kid, src, func in KERNELS:
            out = tmp / f"{kid}.{job}.cubin"
            work[(job, kid)] = (_cmd(tilec, src, func, f"--target={target}", "-o", out) + extra,
                                out)
    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futs = {pool.submit(_run, cmd): (key, out) for key, (cmd, out) in work.items()}
        for f in concurrent.futures.as_completed(futs):
            key, out = futs[f]
            results[key] = f.result() + (out,)
    return results, have


@pytest.mark.parametrize("kernel", [k[0] for k in KERNELS])
@pytest.mark.parametrize("job", [j[0] for j in JOBS])
def test_kernel_compiles(compiled, job, kernel):
    results, have = compiled
    needs = next(j[3] for j in JOBS if j[0] == job)
    if not have[needs]:
        pytest.skip("skipped: no nvcc (set CUDA_HOME or install the CUDA toolkit)"
                    if needs == "nvcc" else "skipped: no NVRTC (libnvrtc.so)")
    rc, _, err, out = results[(job, kernel)]
    assert rc == 0, f"{job} {kernel}: exit {rc}\n{err}"
    assert out.read_bytes()[:4] == b"\x7fELF", f"{job} {kernel}: not a cubin"


@pytest.fixture(scope="session")
def sources(tilec):
    out = {}
    for kid, src, func in KERNELS:
        rc, text, err = _run(_cmd(tilec, src, func, "--target=cuda-sm90", "-S"))
        assert rc == 0, err
        out[kid] = text
    return out


def test_matmul_uses_tensor_cores_in_place(sources):
    s = sources["matmul"]
    assert "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32" in s
    assert "read in place" in s  # the bf16 operands are not copied out of their buffers
    assert "global scratch" in s  # what does not fit the shared-memory budget


def test_dma_kernels_are_one_block(sources):
    for kid in ("block_sum", "scale"):
        s = sources[kid]
        assert 'extern "C" __global__ void __launch_bounds__(256) k_' + kid in s
        assert "__syncthreads(); // dma_wait" in s
        assert "if (" in s  # the prefetch condition is a real branch


def test_unsupported_op_is_refused_with_location(tilec, tmp_path):
    src = tmp_path / "bad.tile"
    src.write_text("kernel @k(%a: hbm<8x128xf32>) {\n"
                   "  %b = alloc : vmem<8x128xf32>\n"
                   "  %x = load %b[0, 0] : tensor<8x128xf32>\n"
                   "  %t = transpose %x {perm = [1, 0]} : tensor<128x8xf32>\n"
                   "  return\n}\n")
    rc, _, err = _run([tilec, src, "--target=cuda-sm90", "-S"])
    assert rc == 1
    assert "bad.tile:4:" in err and "transpose" in err
