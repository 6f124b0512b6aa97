"""`tilec run --target cuda-smXX`, the JIT compile cache and the CUDA validation harness
(docs/gpu.md). Without a GPU: the no-device exit code and message, the cache's keying and
atomic writes (through --compile-only, which needs NVRTC but no GPU) and the harness's
emulator-vs-numpy half run; the GPU runs skip with "skipped: no CUDA device"."""
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import cuda_harness

SMALL = """\
func @small(%x: tensor<64x256xf32>, %b: tensor<256xf32>) -> tensor<64x256xf32> {
  %bb = broadcast %b {dims = [1]} : tensor<64x256xf32>
  %z = add %x, %bb : tensor<64x256xf32>
  %p = softmax %z {dim = 1} : tensor<64x256xf32>
  return %p
}
"""


@pytest.fixture
def small(tmp_path):
    p = tmp_path / "small.tile"
    p.write_text(SMALL)
    return p


def tilec_run(tilec, *args, env=None):
    return subprocess.run([str(tilec), "run", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="session")
def gpu(tilec, tmp_path_factory):
    """Skips the test unless a CUDA device runs programs here."""
    p = tmp_path_factory.mktemp("gpu") / "probe.tile"
    p.write_text(SMALL)
    r = tilec_run(tilec, p, "--target", "cuda-sm90")
    if "no CUDA device" in r.stderr:
        pytest.skip("skipped: no CUDA device")
    assert r.returncode == 0, r.stderr
    return True


def compile_only(tilec, src, cache, target="cuda-sm90", env=None):
    r = tilec_run(tilec, src, "--target", target, "--compile-only",
                  env={"TILE_CUDA_CACHE_DIR": str(cache), **(env or {})})
    if "without the CUDA backend" in r.stderr:
        pytest.skip("the CUDA backend (backend-cuda/) is not built into this tilec")
    assert r.returncode == 0, r.stderr
    fields = dict(line.split(": ", 1) for line in r.stdout.splitlines() if ": " in line)
    return fields, r


# ---- without a GPU ----

def test_no_device_message_and_exit_code(tilec, small):
    # A missing driver library is the no-GPU case on every machine, GPU or not.
    r = tilec_run(tilec, small, "--target", "cuda-sm90",
                  env={"TILE_CUDA_DRIVER": "/nonexistent/libcuda.so.1"})
    assert r.returncode == 1
    assert r.stderr.startswith("tilec: error: no CUDA device"), r.stderr
    assert r.stdout == ""


def test_stub_driver_is_no_device(tilec, small):
    stub = Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "lib64/stubs/libcuda.so"
    if not stub.exists():
        pytest.skip("no CUDA toolkit stub library at %s" % stub)
    r = tilec_run(tilec, small, "--target", "cuda-sm90", env={"TILE_CUDA_DRIVER": str(stub)})
    assert r.returncode == 1
    assert "tilec: error: no CUDA device" in r.stderr and "stub" in r.stderr


def test_gpu_run_options_are_checked(tilec, small):
    r = tilec_run(tilec, small, "--target", "cuda-sm90", "--torus", "2x2")
    assert r.returncode == 1 and "--torus is an emulator option" in r.stderr
    r = tilec_run(tilec, small, "--repeat", "3")
    assert r.returncode == 1 and "--repeat is for GPU runs" in r.stderr
    r = tilec_run(tilec, small, "--target", "cuda-sm90", "--repeat", "0")
    assert r.returncode == 1 and "--repeat takes a number" in r.stderr


def test_emulator_run_unchanged(tilec, small, tmp_path):
    x = np.random.default_rng(0).standard_normal((64, 256)).astype(np.float32)
    b = np.zeros(256, np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "b.npy", b)
    r = tilec_run(tilec, small, "--target", "tiny", "--in", "x=%s" % (tmp_path / "x.npy"),
                  "--in", "b=%s" % (tmp_path / "b.npy"), "--out",
                  "result=%s" % (tmp_path / "y.npy"))
    assert r.returncode == 0, r.stderr
    y = np.load(tmp_path / "y.npy")
    e = np.exp(x - x.max(axis=1, keepdims=True))
    assert cuda_harness.nmse(e / e.sum(axis=1, keepdims=True), y) <= 1e-6


def test_cache_miss_then_hit(tilec, small, tmp_path):
    cache = tmp_path / "cache"
    first, _ = compile_only(tilec, small, cache)
    assert "compiled, cached" in first["cubin"]
    path = Path(first["cubin"].split(" (")[0])
    assert path.parent == cache and path.name == first["key"] + ".cubin"
    blob = path.read_bytes()
    assert blob[:8] == b"TILECUBN" and blob[12:76] == first["key"].encode()
    second, _ = compile_only(tilec, small, cache)
    assert "cache hit" in second["cubin"] and second["key"] == first["key"]


def test_cache_key_follows_source_and_arch(tilec, small, tmp_path):
    cache = tmp_path / "cache"
    base, _ = compile_only(tilec, small, cache)
    sm80, _ = compile_only(tilec, small, cache, target="cuda-sm80")
    other = tmp_path / "other.tile"
    other.write_text(SMALL.replace("softmax %z", "exp %z").replace(" {dim = 1}", ""))
    changed, _ = compile_only(tilec, other, cache)
    assert len({base["key"], sm80["key"], changed["key"]}) == 3
    assert len(list(cache.glob("*.cubin"))) == 3


def test_cache_folder_from_xdg(tilec, small, tmp_path):
    r = tilec_run(tilec, small, "--target", "cuda-sm90", "--compile-only",
                  env={"TILE_CUDA_CACHE_DIR": "", "XDG_CACHE_HOME": str(tmp_path / "xdg")})
    if "without the CUDA backend" in r.stderr:
        pytest.skip("the CUDA backend (backend-cuda/) is not built into this tilec")
    assert r.returncode == 0, r.stderr
    assert str(tmp_path / "xdg" / "tilec") in r.stdout
    assert list((tmp_path / "xdg" / "tilec").glob("*.cubin"))


def test_cache_damaged_entry_is_replaced(tilec, small, tmp_path):
    cache = tmp_path / "cache"
    first, _ = compile_only(tilec, small, cache)
    path = cache / (first["key"] + ".cubin")
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])  # a truncated entry reads as a miss
    again, _ = compile_only(tilec, small, cache)
    assert "compiled, cached" in again["cubin"]
    assert path.read_bytes() == good


def test_cache_concurrent_writers(tilec, small, tmp_path):
    cache = tmp_path / "cache"
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: compile_only(tilec, small, cache)[0], range(4)))
    assert len({r["key"] for r in results}) == 1
    entries = sorted(p.name for p in cache.iterdir())
    assert entries == [results[0]["key"] + ".cubin"]  # no temporary file left behind
    blob = (cache / entries[0]).read_bytes()
    size = int.from_bytes(blob[76:84], "little")
    assert len(blob) == 84 + size


def test_harness_emulator_half(tilec, small):
    rows = cuda_harness.validate(tilec, small, per_op=True, emu_target="tiny")
    assert [r["value"] for r in rows][0] == "result"
    assert len(rows) == 4  # the output, then broadcast, add, softmax
    assert [r["class"] for r in rows] == ["softmax", "elementwise", "elementwise", "softmax"]
    for r in rows:
        assert not isinstance(r["emu_vs_numpy"], str), r
        assert r["emu_vs_numpy"] <= r["tolerance"], r
        assert r["ok"], r


def test_harness_nmse_rules():
    a = np.array([1.0, -np.inf, 2.0])
    assert cuda_harness.nmse(a, a) == 0
    assert cuda_harness.nmse(a, np.array([1.0, np.inf, 2.0])) == float("inf")
    assert cuda_harness.nmse(a, np.array([1.0, -np.inf, np.nan])) != \
        cuda_harness.nmse(a, np.array([1.0, -np.inf, np.nan]))  # NaN: never passes


# ---- on a GPU ----

def test_gpu_matches_numpy(tilec, gpu, small, tmp_path):
    rows = cuda_harness.validate(tilec, small, emu_target="tiny")
    for r in rows:
        assert r["ok"], r


@pytest.mark.parametrize("kernel", sorted(p.name for p in
                                          (Path(__file__).resolve().parents[2] /
                                           "examples" / "kernels").glob("*.tile")))
def test_gpu_suite_kernel(tilec, gpu, kernel):
    root = Path(__file__).resolve().parents[2]
    rows = cuda_harness.validate(tilec, root / "examples" / "kernels" / kernel)
    for r in rows:
        assert r["ok"], r
