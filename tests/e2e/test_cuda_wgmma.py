"""The sm_90a matmul kernel (warpgroup MMA, backend-cuda/emit_wgmma.c) on a Hopper GPU:
`tilec run --target cuda-sm90a` against numpy at the matmul tolerance of
shared/REFERENCE.md (NMSE <= 5e-4), on aligned and ragged shapes, with an epilogue, a
decode-shaped product (one warpgroup), f16, K and N that are not multiples of 8 (the
element-wise loads) and a batch. Without a GPU every test skips with "skipped: no CUDA
device"; on a GPU other than compute capability 9.0 (sm_90a code runs only there) with
"skipped: no sm_90 device". Each program is compiled once, through NVRTC, by its run."""
import subprocess

import numpy as np
import pytest

import cuda_harness
import tilemach

TOL = cuda_harness.TOLERANCE["matmul"]


def gelu(z):
    return 0.5 * z * (1.0 + np.tanh(0.7978845608 * (z + 0.044715 * z ** 3)))


# (id, M, K, N, element type, result type, epilogue, batch)
CASES = [
    ("aligned_1024x4096x1024_gelu", 1024, 1024, 4096, "bf16", "bf16", "bias_gelu", 0),
    ("ragged_1000x1000x1000", 1000, 1000, 1000, "bf16", "f32", None, 0),
    ("decode_8x4096x14336", 8, 4096, 14336, "bf16", "bf16", None, 0),
    ("f16_odd_77x1001x333", 77, 1001, 333, "f16", "f32", None, 0),
    ("batched_3x200x72x96", 200, 72, 96, "bf16", "f32", None, 3),
]


def program(M, K, N, elem, out, epilogue, batch):
    b = "%dx" % batch if batch else ""
    ta, tb = "tensor<%s%dx%dx%s>" % (b, M, K, elem), "tensor<%s%dx%dx%s>" % (b, K, N, elem)
    acc = "f32" if epilogue else out
    tc, to = "tensor<%s%dx%dx%s>" % (b, M, N, acc), "tensor<%s%dx%dx%s>" % (b, M, N, out)
    params = "%%a: %s, %%b: %s" % (ta, tb)
    if batch:
        body = ("  %%c = dot_general %%a, %%b {lhs_batch = [0], rhs_batch = [0], "
                "lhs_contract = [2], rhs_contract = [1]} : %s\n" % tc)
    else:
        body = "  %%c = matmul %%a, %%b : %s\n" % tc
    ret = "%c"
    if epilogue:
        params += ", %%bias: tensor<%dxf32>" % N
        body += ("  %%bb = broadcast %%bias {dims = [1]} : %s\n"
                 "  %%z = add %%c, %%bb : %s\n"
                 "  %%g = gelu %%z : %s\n"
                 "  %%y = convert %%g : %s\n" % (tc, tc, tc, to))
        ret = "%y"
    return "func @f(%s) -> %s {\n%s  return %s\n}\n" % (params, to, body, ret)


def rounded(x, elem):
    """x as the element type stores it, back in f32 (what the GPU multiplies)."""
    if elem == "bf16":
        return tilemach.bf16_round(x.astype(np.float32))
    return x.astype(np.float16).astype(np.float32)


def run(tilec, tmp, src, inputs, out_elem):
    """Runs src on cuda-sm90a with inputs {name: (array, elem)}; returns its result."""
    p = tmp / "k.tile"
    p.write_text(src)
    cmd = [str(tilec), "run", str(p), "--target", "cuda-sm90a",
           "--out", "result=%s" % (tmp / "y.npy")]
    for name, (x, elem) in inputs.items():
        path = tmp / ("%s.npy" % name)
        if elem == "f16":
            np.save(path, x.astype(np.float16))
        else:
            cuda_harness.save_input(path, x, elem)
        cmd += ["--in", "%s=%s" % (name, path)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if cuda_harness.NO_DEVICE in r.stderr:
        pytest.skip(cuda_harness.SKIPPED)
    if "the program is compiled for sm_90a" in r.stderr:
        pytest.skip("skipped: no sm_90 device (sm_90a code runs only on compute capability 9.0)")
    assert r.returncode == 0, r.stderr
    return cuda_harness.load_output(tmp / "y.npy", out_elem).astype(np.float64)


@pytest.fixture(scope="session")
def hopper(tilec, tmp_path_factory):
    """Skips the test unless a compute capability 9.0 GPU runs sm_90a code here (a small
    product first, so a machine without one skips before making large inputs)."""
    tmp = tmp_path_factory.mktemp("hopper")
    a = np.ones((64, 16), np.float32)
    got = run(tilec, tmp, program(64, 16, 64, "bf16", "f32", None, 0),
              {"a": (a, "bf16"), "b": (a.T.copy(), "bf16")}, "f32")
    assert np.array_equal(got, np.full((64, 64), 16.0)), got
    return True


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_wgmma_matches_numpy(tilec, hopper, tmp_path, case):
    _, M, K, N, elem, out, epilogue, batch = case
    rng = np.random.default_rng(M * 7 + N)
    lead = (batch,) if batch else ()
    a = rounded(rng.standard_normal(lead + (M, K)), elem)
    b = rounded(rng.standard_normal(lead + (K, N)), elem)
    inputs = {"a": (a, elem), "b": (b, elem)}
    want = np.matmul(a.astype(np.float64), b.astype(np.float64))
    if epilogue:
        bias = rng.standard_normal(N).astype(np.float32)
        inputs["bias"] = (bias, "f32")
        want = gelu(want + bias)
    got = run(tilec, tmp_path, program(M, K, N, elem, out, epilogue, batch), inputs, out)
    assert got.shape == want.shape
    err = cuda_harness.nmse(want, got)
    assert cuda_harness.passes(err, TOL), "NMSE %g > %g" % (err, TOL)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_wgmma_programs_compile(tilec, tmp_path, case):
    """Without a GPU: each program above becomes a wgmma kernel that NVRTC accepts."""
    _, M, K, N, elem, out, epilogue, batch = case
    src = tmp_path / "k.tile"
    src.write_text(program(M, K, N, elem, out, epilogue, batch))
    r = subprocess.run([str(tilec), str(src), "--target=cuda-sm90a", "-S"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert "wgmma.mma_async.sync.aligned.m64n128k16.f32.%s.%s" % (elem, elem) in r.stdout
    r = subprocess.run([str(tilec), str(src), "--target=cuda-sm90a", "-o",
                        str(tmp_path / "k.cubin")], capture_output=True, text=True)
    if "NVRTC" in r.stderr and r.returncode != 0 and "cannot load" in r.stderr:
        pytest.skip("skipped: no NVRTC (libnvrtc.so)")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "k.cubin").read_bytes()[:4] == b"\x7fELF"
