"""Scatter rings of the collective-matmul decomposition (passes/coll_matmul.c) end to
end: a matmul of rows whose inner dim is split over an axis (the attention's output by
heads against wo split by rows) partitions into matmul -> reduce_scatter of the partial
sums. Where its left operand's rows are all on every chip but were not gathered by a
ring, the matmul runs one chunk of rows a step, four rings of pieces of the chunks side
by side, each step adding the sums that came from the chip before and sending them on.
Each program runs on the emulator against tileref's evaluation of the global program,
within REFERENCE.md's matmul tolerance."""
import re
from collections import OrderedDict

import numpy as np
import pytest

import tileref
from test_coll_matmul import assert_threads_agree, fused
from test_spmd_run import check_result, random_inputs, run_tilec


def projection(torus, names, axis, rows, k=256, n=128, out="f32"):
    """h = x + a w over `axis` (a [rows, k] split by columns, w by rows, x and h by
    rows), then h's rmsnorm in `out`: the ops after the reduce_scatter that act on each
    row alone."""
    t = "x".join(map(str, torus))
    return f"""mesh @m = torus<{t}>({', '.join(names)})

func @proj(%x: tensor<{rows}x{n}xf32> {{shard = [{axis}, -]}},
  %a: tensor<{rows}x{k}xbf16> {{shard = [-, {axis}]}},
  %w: tensor<{k}x{n}xbf16> {{shard = [{axis}, -]}}, %g: tensor<{n}xf32>)
    -> (tensor<{rows}x{n}xf32>, tensor<{rows}x{n}x{out}>) attributes {{mesh = @m}} {{
  %y = matmul %a, %w : tensor<{rows}x{n}xf32>
  %h = add %x, %y {{shard = [{axis}, -]}} : tensor<{rows}x{n}xf32>
  %m = rmsnorm %h, %g {{eps = 1e-05}} : tensor<{rows}x{n}xf32>
  %mb = convert %m : tensor<{rows}x{n}x{out}>
  return %h, %mb
}}
"""


def shapes(rows, k=256, n=128):
    return OrderedDict([("x", (rows, n)), ("a", (rows, k)), ("w", (k, n)), ("g", (n,))])


# name: (torus, axis names, the axis, chips on it); on v5e-like's lines (its dims
# below 16 do not wrap).
MESHES = {
    "1x4 line": ((1, 4), ("d", "t"), "t", 4),
    "2x2 lines": ((2, 2), ("x", "y"), "x", 2),
    "4x4 lines": ((4, 4), ("x", "y"), "y", 4),
    "1x8 line": ((1, 8), ("d", "t"), "t", 8),
}


def run_projection(tilec, tmp_path, src, rows, seed, target="v5e-like"):
    """The emulator's h and norm against tileref's, each within the matmul tolerance."""
    arrays, args = random_inputs(tmp_path, shapes(rows), seed=seed)
    want = tileref.load(src).run("proj", *arrays.values())
    outs = [tmp_path / "h.npy", tmp_path / "m.npy"]
    run = run_tilec(tilec, [src, "--target", target, *args, "--out", f"result={outs[0]}",
                            "--out", f"result1={outs[1]}"])
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    for o, w, what in zip(outs, want, ("h", "norm")):
        check_result(o, np.asarray(w, np.float64), f"{what} of {rows} rows on {src.name}")


@pytest.mark.parametrize("mesh", sorted(MESHES))
@pytest.mark.parametrize("out", ["f32", "bf16"])
def test_scatter_ring_matches_the_global_program(tilec, tmp_path, mesh, out):
    torus, names, axis, p = MESHES[mesh]
    rows = 256 * p
    src = tmp_path / "proj.tile"
    src.write_text(projection(torus, names, axis, rows, out=out))
    ir = fused(tilec, src, "v5e-like")
    # four pieces of 64 rows: p matmuls each, p - 1 hops of their sums, p - 2 adds
    # before a hop and one of the last hop's sums; each piece's residual add (on its
    # slice of x), norm and convert; h and the norm joined in row order
    assert "reduce_scatter" not in ir, ir
    assert len(re.findall(r"= matmul .*tensor<64x128x", ir)) == 4 * p, ir
    assert len(re.findall(r"= collective_permute ", ir)) == 4 * (p - 1), ir
    assert len(re.findall(r"= ring_slice ", ir)) == 4 * p, ir
    assert len(re.findall(r"= add %y.s", ir)) == 4 * (p - 1), ir
    assert len(re.findall(r"= add %x.p\d, ", ir)) == 4, ir
    assert len(re.findall(r"= convert %m.p\d ", ir)) == 4, ir
    assert len(re.findall(r"= concatenate ", ir)) == 2, ir
    run_projection(tilec, tmp_path, src, rows, seed=p * 7 + len(out))


def layer(torus, names, axis, rows, k=256, e=128, f=256):
    """A residual projection, its norm, and a sequence-parallel MLP on the norm with the
    residual added again: the MLP's whole ring reads the scatter ring's join."""
    t = "x".join(map(str, torus))
    return f"""mesh @m = torus<{t}>({', '.join(names)})

func @blk(%x: tensor<{rows}x{e}xf32> {{shard = [{axis}, -]}},
  %a: tensor<{rows}x{k}xbf16> {{shard = [-, {axis}]}},
  %w: tensor<{k}x{e}xbf16> {{shard = [{axis}, -]}}, %g: tensor<{e}xf32>,
  %wg: tensor<{e}x{f}xbf16> {{shard = [-, {axis}]}},
  %wu: tensor<{e}x{f}xbf16> {{shard = [-, {axis}]}},
  %wd: tensor<{f}x{e}xbf16> {{shard = [{axis}, -]}}) -> tensor<{rows}x{e}xf32>
    attributes {{mesh = @m}} {{
  %y = matmul %a, %w : tensor<{rows}x{e}xf32>
  %h = add %x, %y {{shard = [{axis}, -]}} : tensor<{rows}x{e}xf32>
  %m = rmsnorm %h, %g {{eps = 1e-05}} : tensor<{rows}x{e}xf32>
  %mb = convert %m : tensor<{rows}x{e}xbf16>
  %gg = matmul %mb, %wg {{shard = [-, {axis}]}} : tensor<{rows}x{f}xbf16>
  %u = matmul %mb, %wu {{shard = [-, {axis}]}} : tensor<{rows}x{f}xbf16>
  %s = silu %gg : tensor<{rows}x{f}xbf16>
  %hh = mul %s, %u : tensor<{rows}x{f}xbf16>
  %d = matmul %hh, %wd : tensor<{rows}x{e}xf32>
  %o = add %h, %d {{shard = [{axis}, -]}} : tensor<{rows}x{e}xf32>
  return %o
}}
"""


@pytest.mark.parametrize("mesh", ["1x4 line", "4x4 lines", "1x8 line"])
def test_mlp_after_the_scatter_ring(tilec, tmp_path, mesh):
    """The MLP's first hop goes as the four pieces of the norm, each sent as soon as it
    is made; its own partial takes the residual (the join of h, moved up to before
    w_down's last matmul)."""
    torus, names, axis, p = MESHES[mesh]
    rows = 256 * p
    src = tmp_path / "blk.tile"
    src.write_text(layer(torus, names, axis, rows))
    ir = fused(tilec, src, "v5e-like")
    assert "reduce_scatter" not in ir and "all_gather" not in ir, ir
    assert len(re.findall(r"= collective_permute %mb.p\d ", ir)) == 4, ir
    assert re.search(r"= concatenate %mb.j0.x1, ", ir), ir
    assert re.search(r"%d.rs.acc0 = add %d.s0, %h.j0 ", ir), ir
    arrays, args = random_inputs(tmp_path, OrderedDict(
        [("x", (rows, 128)), ("a", (rows, 256)), ("w", (256, 128)), ("g", (128,)),
         ("wg", (128, 256)), ("wu", (128, 256)), ("wd", (256, 128))]), seed=p * 3)
    want, = tileref.load(src).run("blk", *arrays.values())
    out = tmp_path / "o.npy"
    run = run_tilec(tilec, [src, "--target", "v5e-like", *args, "--out", f"result={out}"])
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    check_result(out, np.asarray(want, np.float64), f"layer on {mesh}")


def test_wrapped_dims_keep_the_reduce_scatter(tilec, tmp_path):
    """v4-like's dim of 4 wraps: the reduce_scatter runs half rings both ways round."""
    src = tmp_path / "proj.tile"
    src.write_text(projection((1, 4), ("d", "t"), "t", 1024))
    ir = fused(tilec, src, "v4-like")
    assert "reduce_scatter" in ir and "collective_permute" not in ir, ir


@pytest.mark.parametrize("rows", [512, 1032])
def test_small_or_uneven_chunks_keep_the_reduce_scatter(tilec, tmp_path, rows):
    """128 rows a chip are too few to cut; 258 do not cut into four pieces."""
    src = tmp_path / "proj.tile"
    src.write_text(projection((1, 4), ("d", "t"), "t", rows))
    ir = fused(tilec, src, "v5e-like")
    assert "reduce_scatter" in ir and "collective_permute" not in ir, ir
    run_projection(tilec, tmp_path, src, rows, seed=rows)


def test_same_bits_and_cycles_every_run(tilec, tmp_path):
    """Runs on one and on two host threads give the same bits and cycles."""
    src = tmp_path / "proj.tile"
    src.write_text(projection((1, 4), ("d", "t"), "t", 1024))
    _, args = random_inputs(tmp_path, shapes(1024), seed=5)
    assert_threads_agree(tilec, tmp_path, src, args, "v5e-like")
