"""Every kernel of the suite (examples/kernels/*.tile) compiles to GPU code: through NVRTC
for sm_90, sm_90a (Hopper's warpgroup MMA, whose PTX ptxas checks) and sm_80, and through
nvcc for sm_90 and sm_90a (a cubin, and one fatbin). No GPU is needed. The suite is compiled once per test session, two compiles at a time (nvcc is
slow); the tests then look at the results."""
import concurrent.futures
import shutil
import subprocess
from pathlib import Path

import pytest

import tilemach

KERNELS = sorted((tilemach.ROOT / "examples" / "kernels").glob("*.tile"))
NVCC = Path(shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc")


def _nvrtc_available():
    for p in ("/usr/local/cuda/lib64/libnvrtc.so",):
        if Path(p).exists():
            return True
    try:
        import ctypes
        ctypes.CDLL("libnvrtc.so")
        return True
    except OSError:
        return False


def _compile(tilec, src, out, target, extra):
    cmd = [str(tilec), str(src), f"--target={target}", "-o", str(out)] + extra
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    return r.returncode, r.stderr, out


# (name, target, extra options, output suffix, needs)
JOBS = [
    ("nvrtc-sm90", "cuda-sm90", [], ".cubin", "nvrtc"),
    ("nvrtc-sm80", "cuda-sm80", [], ".cubin", "nvrtc"),
    ("nvcc-sm90", "cuda-sm90", ["--nvcc"], ".cubin", "nvcc"),
    ("nvrtc-sm90a", "cuda-sm90a", [], ".cubin", "nvrtc"),
    ("nvcc-sm90a", "cuda-sm90a", ["--nvcc"], ".cubin", "nvcc"),
]


@pytest.fixture(scope="session")
def compiled(tilec, tmp_path_factory):
    """{(job, kernel stem): (rc, stderr, output path)} for every job that can run here."""
    tmp = tmp_path_factory.mktemp("cuda")
    have = {"nvrtc": _nvrtc_available(), "nvcc": NVCC.exists()}
    work = []
    for name, target, extra, suffix, needs in JOBS:
        if not have[needs]:
            continue
        for k in KERNELS:
            work.append(((name, k.stem), (tilec, k, tmp / f"{k.stem}.{name}{suffix}", target, extra)))
    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futs = {pool.submit(_compile, *args): key for key, args in work}
        for f in concurrent.futures.as_completed(futs):
            results[futs[f]] = f.result()
    return results, have


def _check(compiled, job, stem, needs):
    results, have = compiled
    if not have[needs]:
        pytest.skip("skipped: no nvcc (set CUDA_HOME or install the CUDA toolkit)"
                    if needs == "nvcc" else "skipped: no NVRTC (libnvrtc.so)")
    rc, err, out = results[(job, stem)]
    assert rc == 0, f"{job} {stem}: exit {rc}\n{err}"
    data = out.read_bytes()
    assert data[:4] == b"\x7fELF", f"{job} {stem}: not a cubin"


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda p: p.stem)
@pytest.mark.parametrize("job", [j[0] for j in JOBS])
def test_suite_compiles(compiled, job, kernel):
    needs = next(j[4] for j in JOBS if j[0] == job)
    _check(compiled, job, kernel.stem, needs)


def test_fatbin_through_nvcc(tilec, tmp_path):
    if not NVCC.exists():
        pytest.skip("skipped: no nvcc (set CUDA_HOME or install the CUDA toolkit)")
    out = tmp_path / "k.fatbin"
    rc, err, _ = _compile(tilec, KERNELS[0], out, "cuda-sm90", [])
    assert rc == 0, err
    assert out.stat().st_size > 0


MATMUL_KERNELS = [k for k in KERNELS if "matmul %" in k.read_text()]


@pytest.mark.parametrize("kernel", MATMUL_KERNELS, ids=lambda p: p.stem)
def test_sm90a_matmuls_use_wgmma(tilec, kernel):
    def source(target):
        r = subprocess.run([str(tilec), str(kernel), f"--target={target}", "-S"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return r.stdout
    hopper, sm90 = source("cuda-sm90a"), source("cuda-sm90")
    assert "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16" in hopper
    assert "mma.sync.aligned" not in hopper
    assert "wgmma" not in sm90 and "mma.sync.aligned.m16n8k16" in sm90


def test_emit_cuda_prints_kernels(tilec):
    src = tilemach.ROOT / "examples" / "kernels" / "softmax.tile"
    r = subprocess.run([str(tilec), str(src), "--target=cuda-sm90", "-S"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert 'extern "C" __global__' in r.stdout
    assert "tc_block_reduce" in r.stdout


def test_cuda_stage_needs_cuda_target(tilec):
    src = tilemach.ROOT / "examples" / "kernels" / "softmax.tile"
    r = subprocess.run([str(tilec), str(src), "--emit=cuda"], capture_output=True, text=True)
    assert r.returncode == 1
    assert "needs a CUDA target" in r.stderr


def test_vliw_stage_refuses_cuda_target(tilec, tmp_path):
    src = tilemach.ROOT / "examples" / "kernels" / "softmax.tile"
    r = subprocess.run([str(tilec), str(src), "--target=cuda-sm90", "-o", str(tmp_path / "k.tobj")],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "for VLIW targets" in r.stderr


def test_bad_program_is_located(tilec, tmp_path):
    src = tmp_path / "bad.tile"
    src.write_text("func @f(%x: tensor<4xf32>) -> tensor<4xf32> {\n"
                   "  %y = all_reduce %x {kind = add, axes = [x]} : tensor<4xf32>\n"
                   "  return %y\n}\n")
    r = subprocess.run([str(tilec), str(src), "--target=cuda-sm90", "-S"], capture_output=True,
                       text=True)
    assert r.returncode == 1
    assert "bad.tile:" in r.stderr
