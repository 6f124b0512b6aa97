"""all_reduce and reduce_scatter operands that stream through VMEM in pieces
(backend-vliw/gen_collective.c): where a piece's grains (a vreg tile per chip) do not
split evenly over the parts, the operand goes as pieces of a whole multiple of the parts
and one more piece for what is left, whose parts may be smaller or empty. The remainder
piece reuses the first pieces' receive slots; a level's first sends go from HBM straight
to the next chip; all_reduce's all-gather works in its HBM result.

On tiny's 2x2x2 torus over all three axes there are 3 parts (one per rotation of the
axis order) and a grain is 8 tiles of 4 KiB; a piece holds at most 17 grains beside its
receive buffers in 1 MiB of VMEM, so 32 grains go as 15 + 15 + 2 (the last piece's third
part empty) and 40 grains as 15 + 15 + 10, where the even split would be 16 + 16 and
10 + 10 + 10 + 10 with parts one grain larger."""
import re

import numpy as np
import pytest

import tilemach
from test_collectives import compile_and_run, groups, make_data

TORUS, AXES = (2, 2, 2), "[x, y, z]"


@pytest.mark.parametrize("rows", [256, 320])
def test_all_reduce_remainder_piece(tilec, tmp_path, rows):
    x = make_data(np.random.default_rng(rows), 8, (rows, 1024), "f32")
    y, _ = compile_and_run(tmp_path, TORUS, f"all_reduce %a {{kind = add, axes = {AXES}}}",
                           (rows, 1024), (rows, 1024), "f32", x)
    for chip in range(8):
        np.testing.assert_array_equal(y[chip], x.sum(0), err_msg=f"chip {chip}")


def test_all_reduce_pieces_same_bits(tilec, tmp_path):
    """Sums of floats that round: every chip holds the same bits, close to the exact sum."""
    x = np.random.default_rng(5).standard_normal((8, 256, 1024)).astype(np.float32)
    y, _ = compile_and_run(tmp_path, TORUS, f"all_reduce %a {{kind = add, axes = {AXES}}}",
                           (256, 1024), (256, 1024), "f32", x)
    for chip in range(1, 8):
        np.testing.assert_array_equal(y[chip].view(np.uint32), y[0].view(np.uint32),
                                      err_msg=f"chip {chip}")
    np.testing.assert_allclose(y[0], x.astype(np.float64).sum(0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("elem", ["f32", "i32"])
def test_reduce_scatter_remainder_piece(tilec, tmp_path, elem):
    """Slices of 32 tiles: pieces of 15 tiles (5 a part) and one of 2."""
    n = 8 * 32 * 1024
    x = make_data(np.random.default_rng(11), 8, (n,), elem)
    y, _ = compile_and_run(tmp_path, TORUS, f"reduce_scatter %a {{kind = add, dim = 0, "
                           f"axes = {AXES}}}", (n,), (n // 8,), elem, x)
    for chip, (rank, members) in enumerate(groups(TORUS, [0, 1, 2])):
        want = np.split(x[members].sum(0), 8)[rank]
        np.testing.assert_array_equal(y[chip], want, err_msg=f"chip {chip}")


def test_v4_all_reduce_256mib_cycles(tilec, tmp_path):
    """256 MiB per chip on v4-like's 4x4x4 torus (timing only): pieces of 30 grains in 6
    equal parts beat 32 pieces of 6, 6, 5, 5, 5, 5 grains (2,680k cycles); the bound of
    docs/perf.md is 2,055,209 cycles."""
    tile = tmp_path / "ar.tile"
    tile.write_text("mesh @m = torus<4x4x4>(x, y, z)\n\nfunc @f(%a: tensor<67108864xf32>) -> "
                    "tensor<67108864xf32> attributes {mesh = @m} {\n  %y = all_reduce %a "
                    "{kind = add, axes = [x, y, z]} : tensor<67108864xf32>\n  return %y\n}\n")
    p = tilemach.run([tilemach.tilec_path(), "run", tile, "--target", "v4-like", "--torus",
                      "4x4x4", "--mode", "timing"])
    assert p.returncode == 0, p.stdout + p.stderr
    cycles = int(re.search(r"run: (\d+) cycles", p.stdout).group(1))
    assert cycles < 2_550_000, cycles
