"""Fusion groups end to end: each composite (softmax, layernorm, rmsnorm, gelu, silu, in f32
and bf16) and a matmul with bias, gelu and a convert become one fusion group, and the one
group computes what the numpy reference evaluator (tests/e2e/tileref.py) does, through
`tilec run` on the emulator in strict mode. A program with more groups than the target
has semaphores runs too: groups reuse the ids of the ones before."""
import re
import subprocess

import numpy as np
import pytest

import tileref
from test_compile import from_file, to_file

# NMSE bounds (docs REFERENCE: norms and elementwise 1e-7 in f32, softmax 1e-6; bf16
# results are compared after both sides round to bf16, which leaves one rounding step).
F32_TOL = {"softmax": 1e-6}
BF16_TOL = 1e-4

COMPOSITES = {
    "softmax": "%y = softmax %x {dim = 1} : tensor<{S}x{E}>",
    "layernorm": "%y = layernorm %x, %g, %b {eps = 1e-05} : tensor<{S}x{E}>",
    "rmsnorm": "%y = rmsnorm %x, %g {eps = 1e-05} : tensor<{S}x{E}>",
    "gelu": "%y = gelu %x : tensor<{S}x{E}>",
    "silu": "%y = silu %x : tensor<{S}x{E}>",
}

ROWS, COLS = 40, 384  # a partial last block of rows on both targets


def composite_program(name, elem, rows=ROWS, cols=COLS):
    params = [f"%x: tensor<{rows}x{cols}x{elem}>"]
    if name in ("layernorm", "rmsnorm"):
        params.append(f"%g: tensor<{cols}x{elem}>")
    if name == "layernorm":
        params.append(f"%b: tensor<{cols}x{elem}>")
    body = COMPOSITES[name].replace("{S}", str(rows)).replace("{E}", f"{cols}x{elem}")
    return (f"func @f({', '.join(params)}) -> tensor<{rows}x{cols}x{elem}> {{\n"
            f"  {body}\n  return %y\n}}\n")


MATMUL_BIAS_GELU = """
func @f(%x: tensor<24x256xbf16>, %w: tensor<256x384xbf16>, %b: tensor<384xbf16>) -> tensor<24x384xbf16> {
  %h = matmul %x, %w : tensor<24x384xf32>
  %bb = broadcast %b {dims = [1]} : tensor<24x384xbf16>
  %bf = convert %bb : tensor<24x384xf32>
  %y = add %h, %bf : tensor<24x384xf32>
  %z = gelu %y : tensor<24x384xf32>
  %r = convert %z : tensor<24x384xbf16>
  return %r
}
"""


def groups(tilec, src_path):
    fused = subprocess.run([str(tilec), str(src_path), "--emit=fused"], capture_output=True,
                           text=True)
    assert fused.returncode == 0, fused.stderr
    return {int(g) for g in re.findall(r"group = (\d+)", fused.stdout)}


def run_program(tilec, tmp_path, text, target, rng, scale=None):
    """Runs func @f of `text` with random inputs; returns (inputs, outputs, stdout)."""
    src = tmp_path / "p.tile"
    src.write_text(text)
    func = tileref.parse(text).funcs["f"]
    args = []
    cmd = [str(tilec), "run", str(src), "--target", target, "--torus", "1x1"]
    for pname, ptype, _ in func.params:
        x = rng.standard_normal(tuple(ptype.shape)).astype(np.float32)
        if scale and pname in scale:
            x *= scale[pname]
        if ptype.elem == "bf16":
            x = tileref.round_bf16(x).astype(np.float32)
        args.append(x)
        to_file(x, ptype.elem, tmp_path / f"{pname}.npy")
        cmd += ["--in", f"{pname}={tmp_path / (pname + '.npy')}"]
    cmd += ["--out", f"result={tmp_path / 'result.npy'}"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    got = from_file(tmp_path / "result.npy", func.results[0].elem).astype(np.float64)
    return func, args, got, run.stdout


def nmse(want, got):
    want = np.asarray(want, np.float64)
    assert np.isfinite(got).all()
    return ((want - got) ** 2).sum() / max((want ** 2).sum(), 1e-30)


@pytest.mark.parametrize("elem", ["f32", "bf16"])
@pytest.mark.parametrize("name", sorted(COMPOSITES))
@pytest.mark.parametrize("target", ["tiny", "v5e-like"])
def test_composite_is_one_group(tilec, tmp_path, name, elem, target):
    text = composite_program(name, elem)
    (tmp_path / "g.tile").write_text(text)
    assert groups(tilec, tmp_path / "g.tile") == {0}
    func, args, got, _ = run_program(tilec, tmp_path, text, target, np.random.default_rng(3))
    want = tileref.parse(text).run("f", *args)[0]
    tol = F32_TOL.get(name, 1e-7) if elem == "f32" else BF16_TOL
    assert nmse(want, got) <= tol


@pytest.mark.parametrize("name", ["layernorm", "rmsnorm"])
@pytest.mark.parametrize("target", ["tiny", "v5e-like"])
def test_norm_of_square_rows(tilec, tmp_path, name, target):
    """As many rows as each has elements: the scale (and shift) have the rows' shape
    too, and are still broadcast along each row."""
    text = composite_program(name, "f32", rows=128, cols=128)
    func, args, got, _ = run_program(tilec, tmp_path, text, target, np.random.default_rng(5))
    want = tileref.parse(text).run("f", *args)[0]
    assert nmse(want, got) <= 1e-7


@pytest.mark.parametrize("target", ["tiny", "v5e-like"])
def test_matmul_bias_gelu_convert_is_one_group(tilec, tmp_path, target):
    (tmp_path / "g.tile").write_text(MATMUL_BIAS_GELU)
    assert groups(tilec, tmp_path / "g.tile") == {0}
    func, args, got, _ = run_program(tilec, tmp_path, MATMUL_BIAS_GELU, target,
                                     np.random.default_rng(5), scale={"w": 0.1})
    want = tileref.parse(MATMUL_BIAS_GELU).run("f", *args)[0]
    assert nmse(want, got) <= 5e-4


SHARED_VALUES = """
func @f(%x: tensor<16x128xf32>, %w: tensor<128x256xf32>, %b: tensor<256xf32>) -> (tensor<16x256xf32>, tensor<16xf32>, tensor<256x16xf32>) {
  %h = matmul %x, %w : tensor<16x256xf32>
  %bb = broadcast %b {dims = [1]} : tensor<16x256xf32>
  %y = add %h, %bb : tensor<16x256xf32>
  %s = reduce %h {kind = add, dims = [1]} : tensor<16xf32>
  %e = exp %y : tensor<16x256xf32>
  %t = transpose %e {perm = [1, 0]} : tensor<256x16xf32>
  %z = mul %e, %y : tensor<16x256xf32>
  return %z, %s, %t
}
"""


@pytest.mark.parametrize("target", ["tiny", "v5e-like"])
def test_values_read_outside_are_written(tilec, tmp_path, target):
    """%h feeds the epilogue and a reduce (so the matmul writes it and the epilogue runs
    row-wise); %e is read inside its group and by a transpose (so it is written too)."""
    (tmp_path / "g.tile").write_text(SHARED_VALUES)
    assert len(groups(tilec, tmp_path / "g.tile")) == 4
    src = tmp_path / "p.tile"
    src.write_text(SHARED_VALUES)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((16, 128)).astype(np.float32)
    w = (rng.standard_normal((128, 256)) * 0.05).astype(np.float32)
    b = (rng.standard_normal(256) * 0.1).astype(np.float32)
    cmd = [str(tilec), "run", str(src), "--target", target, "--torus", "1x1"]
    for name, a in (("x", x), ("w", w), ("b", b)):
        np.save(tmp_path / f"{name}.npy", a)
        cmd += ["--in", f"{name}={tmp_path / (name + '.npy')}"]
    for sym in ("result", "result1", "result2"):
        cmd += ["--out", f"{sym}={tmp_path / (sym + '.npy')}"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    want = tileref.parse(SHARED_VALUES).run("f", x, w, b)
    for sym, wv in zip(("result", "result1", "result2"), want):
        got = np.load(tmp_path / f"{sym}.npy").astype(np.float64)
        assert nmse(wv, got) <= 5e-4, sym


EVERY_KIND = """
func @f(%e: tensor<64x128xf32>, %i: tensor<8xi32>, %w: tensor<128x128xf32>, %b: tensor<128xf32>) -> (tensor<8x128xf32>, tensor<8xi32>, tensor<8x4xf32>) {
  %g = gather %e, %i {axis = 0} : tensor<8x128xf32>
  %h = matmul %g, %w : tensor<8x128xf32>
  %bb = broadcast %b {dims = [1]} : tensor<8x128xf32>
  %y = add %h, %bb : tensor<8x128xf32>
  %s = softmax %y {dim = 1} : tensor<8x128xf32>
  %t = transpose %s {perm = [1, 0]} : tensor<128x8xf32>
  %t2 = transpose %t {perm = [1, 0]} : tensor<8x128xf32>
  %a = argmax %t2 {dim = 1} : tensor<8xi32>
  %kv, %ki = topk %y {k = 4} : tensor<8x4xf32>, tensor<8x4xi32>
  return %s, %a, %kv
}
"""


def test_every_kind_on_shared_semaphores(tilec, tmp_path):
    """A group of each generator kind but attention, one after another on the same
    semaphore ids: the values are the reference's."""
    src = tmp_path / "p.tile"
    src.write_text(EVERY_KIND)
    rng = np.random.default_rng(13)
    e = rng.standard_normal((64, 128)).astype(np.float32)
    i = rng.integers(0, 64, size=8).astype(np.int32)
    w = (rng.standard_normal((128, 128)) * 0.1).astype(np.float32)
    b = rng.standard_normal(128).astype(np.float32)
    cmd = [str(tilec), "run", str(src), "--target", "tiny", "--torus", "1x1"]
    for name, a in (("e", e), ("i", i), ("w", w), ("b", b)):
        np.save(tmp_path / f"{name}.npy", a)
        cmd += ["--in", f"{name}={tmp_path / (name + '.npy')}"]
    for sym in ("result", "result1", "result2"):
        cmd += ["--out", f"{sym}={tmp_path / (sym + '.npy')}"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    s, a, kv = tileref.parse(EVERY_KIND).run("f", e, i, w, b)
    got_s = np.load(tmp_path / "result.npy").astype(np.float64)
    assert nmse(s, got_s) <= 5e-4
    # The matmul rounds its inputs, so near-ties may pick another index: the one picked
    # must be a maximum of the reference's row to within that rounding.
    got_a = np.load(tmp_path / "result1.npy")
    s = np.asarray(s, np.float64)
    assert (s.max(axis=1) - s[np.arange(8), got_a] <= 1e-3 * s.max(axis=1)).all()
    assert nmse(kv, np.load(tmp_path / "result2.npy").astype(np.float64)) <= 5e-4


def chain_program(n):
    """n transposes in a row (each a group of its own, copying with one DMA site), every
    fourth followed by an add of the input (a row-wise group with several sites)."""
    lines, cur = [], "%x"
    for i in range(n):
        lines.append(f"  %t{i} = transpose {cur} {{perm = [1, 0]}} : tensor<32x32xf32>")
        cur = f"%t{i}"
        if i % 4 == 3:
            lines.append(f"  %e{i} = add {cur}, %x : tensor<32x32xf32>")
            cur = f"%e{i}"
    return ("func @f(%x: tensor<32x32xf32>) -> tensor<32x32xf32> {\n" + "\n".join(lines) +
            f"\n  return {cur}\n}}\n")


def test_more_groups_than_semaphores(tilec, tmp_path):
    """tiny has 16 semaphores; 25 groups each take one or more and run in order, the
    later ones on the ids the earlier ones drained."""
    text = chain_program(20)
    (tmp_path / "g.tile").write_text(text)
    assert len(groups(tilec, tmp_path / "g.tile")) == 25
    func, args, got, _ = run_program(tilec, tmp_path, text, "tiny", np.random.default_rng(9))
    want = tileref.parse(text).run("f", *args)[0]
    np.testing.assert_array_equal(got, np.asarray(want, np.float64))
