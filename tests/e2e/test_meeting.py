"""A large collective on rings first meets its neighbours (docs/compiler.md, "Meeting"),
so its receive buffers live from the meeting rather than from the last collective over
its chips, across the groups before it. On tiny (1 MiB of VMEM) a matmul whose f32
result (768 KiB) is then all_reduced over a 2x2 ring did not fit beside the matmul's
buffers: it must compile, meet, and give every chip the sum."""
import numpy as np

import tilemach
from test_collectives import f32_to_bf16_bits, bf16_bits_to_f32

ROWS = 384
SRC = f"""mesh @m = torus<2x2>(x, y)

func @f(%a: tensor<{ROWS}x512xbf16>, %w: tensor<512x512xbf16>) -> tensor<{ROWS}x512xf32>
    attributes {{mesh = @m}} {{
  %p = matmul %a, %w : tensor<{ROWS}x512xf32>
  %y = all_reduce %p {{kind = add, axes = [x, y]}} : tensor<{ROWS}x512xf32>
  return %y
}}
"""


def test_matmul_then_large_all_reduce(tilec, tmp_path):
    tile = tmp_path / "meet.tile"
    tile.write_text(SRC)
    listing = tilemach.run([tilec, str(tile), "--target", "tiny", "-S"], timeout=300)
    assert listing.returncode == 0, listing.stderr
    assert "meet." in listing.stdout, "the all_reduce is meant to meet its neighbours"
    rng = np.random.default_rng(7)
    # small integers: bf16 holds them exactly and the f32 sums are exact
    a = rng.integers(-3, 4, size=(4, ROWS, 512)).astype(np.float32)
    w = rng.integers(-3, 4, size=(4, 512, 512)).astype(np.float32)
    np.save(tmp_path / "a.npy", f32_to_bf16_bits(a))
    np.save(tmp_path / "w.npy", f32_to_bf16_bits(w))
    run = tilemach.run([tilec, "run", str(tile), "--target", "tiny", "--torus", "2x2",
                        "--in", f"a={tmp_path / 'a.npy'}", "--in", f"w={tmp_path / 'w.npy'}",
                        "--out", f"result={tmp_path / 'y.npy'}"], timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    y = np.load(tmp_path / "y.npy")
    want = np.einsum("crk,ckn->rn", a.astype(np.float64), w.astype(np.float64))
    for chip in range(4):
        np.testing.assert_array_equal(y[chip], want, err_msg=f"chip {chip}")
