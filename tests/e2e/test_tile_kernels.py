"""Tile-level kernels end to end: `tilec run FILE.tile --func NAME` compiles a `kernel`
(docs/compiler.md, "Tile-level kernels") and runs it on the emulator in strict mode.
The results must equal numpy's exactly where the kernel adds, multiplies and moves f32
data, and be within the bf16 matmul tolerance (NMSE 5e-4, shared/REFERENCE.md) for
tile_matmul. The examples' kernels run on both test targets; smaller programs cover
loops peeled where their `if`s change, division by constants, bf16 tiles and the
diagnostics for what a kernel cannot do."""
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TARGETS = ["tiny", "v5e-like"]


def bf16(x):
    """f32 rounded to bf16 (nearest even), as f32."""
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
    return u.view(np.float32)


def save(path, x, elem="f32"):
    if elem == "bf16":  # raw bits, as ml_dtypes saves bfloat16
        bits = (bf16(x).view(np.uint32) >> 16).astype(np.uint16)
        np.save(path, bits.view(np.dtype("V2")))
    else:
        np.save(path, x)


def run(tilec, tmp, src, func, inputs, outputs, target="tiny", elems=None):
    """Runs kernel `func` of src (a path) with inputs {name: array}; returns the outputs
    {name: array} read back as saved, and the run's stdout."""
    cmd = [str(tilec), "run", str(src), "--func", func, "--target", target]
    for name, x in inputs.items():
        p = tmp / f"{name}.npy"
        save(p, x, (elems or {}).get(name, "f32"))
        cmd += ["--in", f"{name}={p}"]
    for name in outputs:
        cmd += ["--out", f"{name}={tmp / ('out_' + name + '.npy')}"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "run: " in r.stdout
    return {name: np.load(tmp / f"out_{name}.npy") for name in outputs}, r.stdout


def nmse(want, got):
    want, got = np.asarray(want, np.float64), np.asarray(got, np.float64)
    return ((want - got) ** 2).sum() / (want ** 2).sum()


@pytest.mark.parametrize("target", TARGETS)
def test_block_sum(tilec, tmp_path, target):
    x = np.random.default_rng(1).standard_normal((1024, 128)).astype(np.float32)
    out, _ = run(tilec, tmp_path, EXAMPLES / "dma_pipeline.tile", "block_sum", {"in": x},
                 ["out"], target)
    want = np.zeros((8, 128), np.float32)
    for i in range(128):  # in the kernel's order: block 0 first
        want = want + x[8 * i:8 * i + 8]
    np.testing.assert_array_equal(out["out"], want)


@pytest.mark.parametrize("target", TARGETS)
def test_scale(tilec, tmp_path, target):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1024, 128)).astype(np.float32)
    f = rng.standard_normal((8, 128)).astype(np.float32)
    out, _ = run(tilec, tmp_path, EXAMPLES / "dma_pipeline.tile", "scale",
                 {"in": x, "factor": f}, ["out"], target)
    np.testing.assert_array_equal(out["out"], x * np.tile(f, (128, 1)))


@pytest.mark.parametrize("target", TARGETS)
def test_tile_matmul(tilec, tmp_path, target):
    rng = np.random.default_rng(3)
    a = bf16(rng.standard_normal((128, 512)))
    b = bf16(rng.standard_normal((512, 256)))
    out, _ = run(tilec, tmp_path, EXAMPLES / "tile_matmul.tile", "matmul", {"a": a, "b": b},
                 ["c"], target, elems={"a": "bf16", "b": "bf16"})
    got = out["c"]
    assert np.isfinite(got).all()
    assert nmse(a.astype(np.float64) @ b.astype(np.float64), got) <= 5e-4


def test_object_and_listing(tilec, tmp_path):
    """`tilec FILE --func NAME -o X.tobj` writes an object that runs like `tilec run
    FILE`; -S lists the kernel's bundles tagged with their source ops."""
    src = EXAMPLES / "dma_pipeline.tile"
    obj = tmp_path / "scale.tobj"
    r = subprocess.run([str(tilec), str(src), "--func", "scale", "--target", "tiny", "-o",
                        str(obj)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert obj.stat().st_size > 0
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1024, 128)).astype(np.float32)
    f = rng.standard_normal((8, 128)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "f.npy", f)
    r = subprocess.run([str(tilec), "run", str(obj), "--torus", "1x1", "--in",
                        f"in={tmp_path / 'x.npy'}", "--in", f"factor={tmp_path / 'f.npy'}",
                        "--out", f"out={tmp_path / 'y.npy'}"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), x * np.tile(f, (128, 1)))
    listing = subprocess.run([str(tilec), str(src), "--func", "block_sum", "-S"],
                             capture_output=True, text=True)
    assert listing.returncode == 0, listing.stderr
    assert "dma_start" in listing.stdout and "vadd.f" in listing.stdout


# Nested loops whose ifs depend on both indices, scalars through div and rem, an else
# branch with results, and a scalar carried value (%b, a run-time value: it addresses
# the DMAs, while the conditions are computed from the indices alone).
PEELED = """
kernel @p(%in: hbm<48x128xf32>, %out: hbm<48x128xf32>) {
  %buf = alloc : vmem<8x128xf32>
  %sem = semaphore : sem
  %one = constant {value = 1} : i32
  %two = constant {value = 2} : i32
  %three = constant {value = 3} : i32
  %eight = constant {value = 8} : i32
  %c0 = constant {value = 0} : i32
  %half = constant {value = 0.5} : tensor<8x128xf32>
  %n = for %i = 0 to 2 step 1 iter(%blk = %c0) : i32 {
    %m = for %j = 0 to 3 step 1 iter(%b = %blk) : i32 {
      %row = mul %b, %eight : i32
      %t = dma_start %in[%row, 0], %buf[0, 0], %sem {shape = [8, 128]} : token
      dma_wait %sem, %t
      %x = load %buf[0, 0] : tensor<8x128xf32>
      %ij = add %i, %j : i32
      %odd = rem %ij, %two : i32
      %is_odd = compare %odd, %one {dir = eq} : i1
      %y = if %is_odd : tensor<8x128xf32> {
        %h = mul %x, %half : tensor<8x128xf32>
        yield %h
      } else {
        %d = add %x, %x : tensor<8x128xf32>
        yield %d
      }
      %i3 = mul %i, %three : i32
      %idx = add %i3, %j : i32
      %q = div %idx, %three : i32
      %last = compare %q, %one {dir = eq} : i1
      %z = if %last : tensor<8x128xf32> {
        %ng = neg %y : tensor<8x128xf32>
        yield %ng
      } else {
        yield %y
      }
      store %z, %buf[0, 0]
      %w = dma_start %buf[0, 0], %out[%row, 0], %sem {shape = [8, 128]} : token
      dma_wait %sem, %w
      %b2 = add %b, %one : i32
      yield %b2
    }
    yield %m
  }
  return
}
"""


@pytest.mark.parametrize("target", TARGETS)
def test_peeled_conditions(tilec, tmp_path, target):
    src = tmp_path / "peeled.tile"
    src.write_text(PEELED)
    x = np.random.default_rng(5).standard_normal((48, 128)).astype(np.float32)
    out, _ = run(tilec, tmp_path, src, "p", {"in": x}, ["out"], target)
    want = np.zeros_like(x)
    blk = 0
    for i in range(2):
        for j in range(3):
            t = x[8 * blk:8 * blk + 8]
            y = t * np.float32(0.5) if (i + j) % 2 == 1 else t + t
            want[8 * blk:8 * blk + 8] = -y if blk // 3 == 1 else y
            blk += 1
    np.testing.assert_array_equal(out["out"], want)


# bf16 tiles: widened on load, computed in f32, rounded on store; a 16x256 tile is
# four vregs; the block goes through VMEM in one strided DMA each way.
BF16 = """
kernel @b(%x: hbm<32x512xbf16>, %y: hbm<32x512xbf16>, %out: hbm<32x512xbf16>) {
  %xb = alloc : vmem<16x256xbf16>
  %yb = alloc : vmem<16x256xbf16>
  %sem = semaphore : sem
  for %r = 0 to 2 step 1 {
    for %c = 0 to 2 step 1 {
      %sixteen = constant {value = 16} : i32
      %w = constant {value = 256} : i32
      %row = mul %r, %sixteen : i32
      %col = mul %c, %w : i32
      %t0 = dma_start %x[%row, %col], %xb[0, 0], %sem {shape = [16, 256]} : token
      %t1 = dma_start %y[%row, %col], %yb[0, 0], %sem {shape = [16, 256]} : token
      dma_wait %sem, %t0
      dma_wait %sem, %t1
      %a = load %xb[0, 0] : tensor<16x256xbf16>
      %b = load %yb[0, 0] : tensor<16x256xbf16>
      %p = mul %a, %b : tensor<16x256xbf16>
      %s = max %p, %a : tensor<16x256xbf16>
      store %s, %xb[0, 0]
      %t2 = dma_start %xb[0, 0], %out[%row, %col], %sem {shape = [16, 256]} : token
      dma_wait %sem, %t2
    }
  }
  return
}
"""


def test_bf16_tiles(tilec, tmp_path):
    src = tmp_path / "bf16.tile"
    src.write_text(BF16)
    rng = np.random.default_rng(6)
    x = bf16(rng.standard_normal((32, 512)))
    y = bf16(rng.standard_normal((32, 512)))
    out, _ = run(tilec, tmp_path, src, "b", {"x": x, "y": y}, ["out"],
                 elems={"x": "bf16", "y": "bf16"})
    got = (out["out"].view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    np.testing.assert_array_equal(got, np.maximum(bf16(x * y), x))


REFUSED = [
    ("dynamic_if", """
kernel @k(%in: hbm<8x128xf32>) {
  %s = alloc : smem<4xi32>
  %n = load %s[0] : i32
  %c0 = constant {value = 0} : i32
  %p = compare %n, %c0 {dir = gt} : i1
  if %p {
  }
  return
}
""", ":7:3: error: cannot lower 'if'", "known only at run time"),
    ("too_large", """
kernel @k(%in: hbm<8x128xf32>) {
  %buf = alloc : vmem<4096x128xf32>
  return
}
""", ":3:10: error: cannot lower 'alloc'", "bytes of VMEM"),
    ("unsupported", """
kernel @k(%in: hbm<8x128xf32>) {
  %buf = alloc : vmem<8x128xf32>
  %x = load %buf[0, 0] : tensor<8x128xf32>
  %y = transpose %x {perm = [1, 0]} : tensor<128x8xf32>
  return
}
""", ":5:8: error: cannot lower 'transpose'", "belongs in a `func`"),
]


@pytest.mark.parametrize("name,src,where,says", REFUSED, ids=[r[0] for r in REFUSED])
def test_refusals(tilec, tmp_path, name, src, where, says):
    f = tmp_path / f"{name}.tile"
    f.write_text(src)
    obj = tmp_path / "x.tobj"
    r = subprocess.run([str(tilec), str(f), "--target", "tiny", "-o", str(obj)],
                       capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    assert f"{f}{where}" in r.stderr and says in r.stderr, r.stderr
    assert not obj.exists()
