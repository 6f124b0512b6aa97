"""The compiler on one chip, end to end: `tilec run FILE.tile` compiles a tensor-level
func for a target and runs it on the emulator in strict mode; its results must equal
the numpy reference evaluator's (tests/e2e/tileref.py) exactly for data movement and
conversions.

The parametrized programs use only what the lowering core generates itself (layout
ops, converts, constants, results that are parameters); one more runs a fused matmul
epilogue through the matmul generator. The generators' own suites cover their groups
in depth."""
import subprocess

import numpy as np
import pytest

import tileref

PROGRAMS = {
    "layout": """
func @f(%x: tensor<8x4x16xf32>, %y: tensor<8x4x16xf32>) -> (tensor<16x8x4xf32>, tensor<8x2x16xf32>, tensor<8x8x16xf32>, tensor<512xf32>) {
  %t = transpose %x {perm = [2, 0, 1]} : tensor<16x8x4xf32>
  %s = slice %y {start = [0, 1, 0], limit = [8, 4, 16], stride = [1, 2, 1]} : tensor<8x2x16xf32>
  %c = concatenate %x, %y {dim = 1} : tensor<8x8x16xf32>
  %r = reshape %x : tensor<512xf32>
  return %t, %s, %c, %r
}
""",
    # slices of whole rows and joins along dim 0 copy nothing (their bytes lie in the
    # operand or the result, lower.c "lies_in"): a view of a view, a joined value read
    # elsewhere too, a parameter joined (copied), a column slice (copied), a view
    # returned (its bytes copied out at the end)
    "views": """
func @f(%x: tensor<16x8xf32>, %y: tensor<16x8xf32>) -> (tensor<32x8xf32>, tensor<4x8xf32>, tensor<16x8xf32>, tensor<24x8xf32>, tensor<16x3xf32>, tensor<16x8xf32>) {
  %a = add %x, %y : tensor<16x8xf32>
  %m = mul %x, %y : tensor<16x8xf32>
  %c = concatenate %a, %m {dim = 0} : tensor<32x8xf32>
  %s = slice %c {start = [10, 0], limit = [26, 8]} : tensor<16x8xf32>
  %ss = slice %s {start = [2, 0], limit = [6, 8]} : tensor<4x8xf32>
  %e = sub %a, %s : tensor<16x8xf32>
  %xs = slice %x {start = [4, 0], limit = [12, 8]} : tensor<8x8xf32>
  %j = concatenate %xs, %a {dim = 0} : tensor<24x8xf32>
  %col = slice %y {start = [0, 2], limit = [16, 5]} : tensor<16x3xf32>
  return %c, %ss, %e, %j, %col, %s
}
""",
    "rank5": """
func @f(%x: tensor<2x3x4x5x6xi32>) -> (tensor<6x5x4x3x2xi32>, tensor<2x2x2x2x3xi32>) {
  %t = transpose %x {perm = [4, 3, 2, 1, 0]} : tensor<6x5x4x3x2xi32>
  %s = slice %x {start = [0, 1, 0, 1, 0], limit = [2, 3, 4, 5, 6], stride = [1, 1, 2, 2, 2]} : tensor<2x2x2x2x3xi32>
  return %t, %s
}
""",
    "convert": """
func @f(%x: tensor<20x300xf32>, %b: tensor<3x700xbf16>) -> (tensor<20x300xbf16>, tensor<20x300xi32>, tensor<3x700xf32>) {
  %h = convert %x : tensor<20x300xbf16>
  %i = convert %x : tensor<20x300xi32>
  %w = convert %b : tensor<3x700xf32>
  return %h, %i, %w
}
""",
    "results": """
func @f(%x: tensor<4x8xi32>) -> (tensor<4x8xi32>, tensor<8x4xi32>, tensor<8x4xi32>, tensor<3x2xi32>, tensor<3x2xf32>) {
  %t = transpose %x {perm = [1, 0]} : tensor<8x4xi32>
  %i = iota {dim = 0} : tensor<3x2xi32>
  %d = constant {value = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]} : tensor<2x3xf32>
  %dt = transpose %d {perm = [1, 0]} : tensor<3x2xf32>
  return %x, %t, %t, %i, %dt
}
""",
}

NP_DTYPES = {"f32": np.float32, "i32": np.int32}


def random_input(t, rng):
    shape = tuple(t.shape)
    if t.elem == "i32":
        return rng.integers(-1000, 1000, size=shape).astype(np.int32)
    x = (rng.standard_normal(shape) * 100).astype(np.float32)
    return tileref.round_bf16(x).astype(np.float32) if t.elem == "bf16" else x


def to_file(x, elem, path):
    if elem == "bf16":  # raw bits, as ml_dtypes saves bfloat16
        bits = (np.asarray(x, np.float32).view(np.uint32) >> 16).astype(np.uint16)
        np.save(path, bits.view(np.dtype("V2")))
    else:
        np.save(path, np.asarray(x, NP_DTYPES[elem]))


def from_file(path, elem):
    a = np.load(path)
    if elem == "bf16":
        return (a.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    return a


@pytest.mark.parametrize("name", sorted(PROGRAMS))
@pytest.mark.parametrize("target", ["tiny", "v5e-like"])
def test_program_matches_reference(tilec, tmp_path, name, target):
    src = tmp_path / f"{name}.tile"
    src.write_text(PROGRAMS[name])
    module = tileref.parse(PROGRAMS[name])
    func = module.funcs["f"]
    rng = np.random.default_rng(7)
    args, cmd = [], [str(tilec), "run", str(src), "--target", target, "--torus", "1x1"]
    for pname, ptype, _ in func.params:
        x = random_input(ptype, rng)
        args.append(x)
        to_file(x, ptype.elem, tmp_path / f"{pname}.npy")
        cmd += ["--in", f"{pname}={tmp_path / (pname + '.npy')}"]
    for i in range(len(func.results)):
        sym = "result" if i == 0 else f"result{i}"
        cmd += ["--out", f"{sym}={tmp_path / (sym + '.npy')}"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "run: " in run.stdout and "dma" in run.stdout
    want = module.run("f", *args)
    for i, (t, w) in enumerate(zip(func.results, want)):
        sym = "result" if i == 0 else f"result{i}"
        got = from_file(tmp_path / f"{sym}.npy", t.elem)
        np.testing.assert_array_equal(got, np.asarray(w).astype(got.dtype), err_msg=sym)


MATMUL_EPILOGUE = """
func @mm(%x: tensor<16x128xf32>, %w: tensor<128x256xf32>, %b: tensor<256xf32>) -> tensor<16x256xf32> {
  %h = matmul %x, %w : tensor<16x256xf32>
  %bb = broadcast %b {dims = [1]} : tensor<16x256xf32>
  %y = add %h, %bb : tensor<16x256xf32>
  %z = gelu %y : tensor<16x256xf32>
  return %z
}
"""


def test_fused_matmul_epilogue(tilec, tmp_path):
    """fuse puts the bias broadcast, the add and gelu's chain in the matmul's group; the
    whole pipeline runs it within the bf16 matmul tolerance (NMSE 5e-4)."""
    src = tmp_path / "mm.tile"
    src.write_text(MATMUL_EPILOGUE)
    fused = subprocess.run([str(tilec), str(src), "--emit=fused"], capture_output=True, text=True)
    assert fused.returncode == 0, fused.stderr
    assert fused.stdout.count("group = 0") == fused.stdout.count("group =")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 128)).astype(np.float32)
    w = (rng.standard_normal((128, 256)) * 0.1).astype(np.float32)
    b = rng.standard_normal(256).astype(np.float32)
    cmd = [str(tilec), "run", str(src), "--torus", "1x1", "--out", f"result={tmp_path / 'r.npy'}"]
    for name, a in (("x", x), ("w", w), ("b", b)):
        np.save(tmp_path / f"{name}.npy", a)
        cmd += ["--in", f"{name}={tmp_path / (name + '.npy')}"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    want = tileref.parse(MATMUL_EPILOGUE).run("mm", x, w, b)[0].astype(np.float64)
    got = np.load(tmp_path / "r.npy").astype(np.float64)
    assert np.isfinite(got).all()
    nmse = ((want - got) ** 2).sum() / (want ** 2).sum()
    assert nmse <= 5e-4, nmse
