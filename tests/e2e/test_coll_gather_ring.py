"""Gather rings of the collective-matmul decomposition (passes/coll_matmul.c) end to
end: a sequence-parallel attention block (rows split over an axis, q, k and v by
columns, the output projection by rows) partitions into all_gather -> projections ->
attention -> output projection -> reduce_scatter. Attention reads every row's keys, so
the whole ring does not apply; the projections after the gather, their transposes to
heads and the ropes (on each step's chunk of the tables, ring_slice) run one chunk a
step beside the hops of the next chunk (two pieces of rows, each hopping on its own),
their chunks joined in row order by ring_concat.
Each program runs on the emulator against tileref's evaluation of the global program,
within REFERENCE.md's matmul tolerance."""
import re
from collections import OrderedDict

import numpy as np
import pytest

import tileref
from test_coll_matmul import assert_threads_agree, fused
from test_spmd_run import check_result, random_inputs, run_tilec


def attention_block(torus, names, axis, rows, e=256, heads=8, kv=4, d=32):
    """The block over `axis`: `rows` rows in all, model width e, heads of d."""
    t = "x".join(map(str, torus))
    return f"""mesh @m = torus<{t}>({', '.join(names)})

func @blk(%x: tensor<{rows}x{e}xf32> {{shard = [{axis}, -]}},
  %cos: tensor<{rows}x{d // 2}xf32>, %sin: tensor<{rows}x{d // 2}xf32>,
  %wq: tensor<{e}x{heads * d}xbf16> {{shard = [-, {axis}]}},
  %wk: tensor<{e}x{kv * d}xbf16> {{shard = [-, {axis}]}},
  %wv: tensor<{e}x{kv * d}xbf16> {{shard = [-, {axis}]}},
  %wo: tensor<{heads * d}x{e}xbf16> {{shard = [{axis}, -]}})
    -> tensor<{rows}x{e}xf32> attributes {{mesh = @m}} {{
  %nb = convert %x : tensor<{rows}x{e}xbf16>
  %q = matmul %nb, %wq {{shard = [-, {axis}]}} : tensor<{rows}x{heads * d}xf32>
  %k = matmul %nb, %wk {{shard = [-, {axis}]}} : tensor<{rows}x{kv * d}xf32>
  %v = matmul %nb, %wv {{shard = [-, {axis}]}} : tensor<{rows}x{kv * d}xbf16>
  %q4 = reshape %q : tensor<1x{rows}x{heads}x{d}xf32>
  %qh = transpose %q4 {{perm = [0, 2, 1, 3]}} : tensor<1x{heads}x{rows}x{d}xf32>
  %k4 = reshape %k : tensor<1x{rows}x{kv}x{d}xf32>
  %kh = transpose %k4 {{perm = [0, 2, 1, 3]}} : tensor<1x{kv}x{rows}x{d}xf32>
  %v4 = reshape %v : tensor<1x{rows}x{kv}x{d}xbf16>
  %vh = transpose %v4 {{perm = [0, 2, 1, 3]}} : tensor<1x{kv}x{rows}x{d}xbf16>
  %qr = rope %qh, %cos, %sin : tensor<1x{heads}x{rows}x{d}xf32>
  %qb = convert %qr : tensor<1x{heads}x{rows}x{d}xbf16>
  %kr = rope %kh, %cos, %sin : tensor<1x{kv}x{rows}x{d}xf32>
  %kb = convert %kr : tensor<1x{kv}x{rows}x{d}xbf16>
  %o = attention %qb, %kb, %vh {{scale = {d ** -0.5!r}, causal = 1}} : tensor<1x{heads}x{rows}x{d}xbf16>
  %ot = transpose %o {{perm = [0, 2, 1, 3]}} : tensor<1x{rows}x{heads}x{d}xbf16>
  %o2 = reshape %ot : tensor<{rows}x{heads * d}xbf16>
  %proj = matmul %o2, %wo : tensor<{rows}x{e}xf32>
  %h = add %x, %proj {{shard = [{axis}, -]}} : tensor<{rows}x{e}xf32>
  return %h
}}
"""


def shapes(rows, e=256, heads=8, kv=4, d=32):
    return OrderedDict([("x", (rows, e)), ("cos", (rows, d // 2)), ("sin", (rows, d // 2)),
                        ("wq", (e, heads * d)), ("wk", (e, kv * d)), ("wv", (e, kv * d)),
                        ("wo", (heads * d, e))])


# name: (torus, axis names, the axis, chips on it, target); 256 rows a chip, on
# v5e-like's lines (its dims below 16 do not wrap).
MESHES = {
    "1x4 line": ((1, 4), ("d", "t"), "t", 4, "v5e-like"),
    "2x2 lines": ((2, 2), ("x", "y"), "x", 2, "v5e-like"),
    "4x4 lines": ((4, 4), ("x", "y"), "y", 4, "v5e-like"),
}


@pytest.mark.parametrize("mesh", sorted(MESHES))
def test_gather_ring_matches_the_global_program(tilec, tmp_path, mesh):
    torus, names, axis, p, target = MESHES[mesh]
    rows = 256 * p
    src = tmp_path / "attn.tile"
    src.write_text(attention_block(torus, names, axis, rows))
    ir = fused(tilec, src, target)
    assert "all_gather" not in ir and "reduce_scatter" not in ir, ir
    # two pieces of each chunk, each p - 1 hops; p steps of three projections and two
    # ropes a piece, each on its piece's chunk of cos and sin; the rope results and v
    # joined along the rows' dim. The output projection is a scatter ring
    # (test_coll_scatter_ring.py): four pieces of rows, each p steps and p - 1 hops of
    # its sums
    assert len(re.findall(r"= collective_permute ", ir)) == 2 * (p - 1) + 4 * (p - 1), ir
    assert len(re.findall(r"= matmul ", ir)) == 3 * 2 * p + 4 * p, ir
    assert len(re.findall(r"= rope ", ir)) == 2 * 2 * p, ir
    assert len(re.findall(r"= ring_slice ", ir)) == 2 * 2 * p + 4 * p, ir
    assert len(re.findall(r"= ring_concat .*dim = 2", ir)) == 3, ir
    arrays, args = random_inputs(tmp_path, shapes(rows), seed=p * 13 + len(mesh))
    want, = tileref.load(src).run("blk", *arrays.values())
    out = tmp_path / "h.npy"
    run = run_tilec(tilec, [src, "--target", target, *args, "--out", f"result={out}"])
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    check_result(out, np.asarray(want, np.float64), f"attention block on {mesh}")


def test_wrapped_dims_keep_the_all_gather(tilec, tmp_path):
    """v4-like's dim of 4 wraps: the all_gather's rings run both ways round, in half the
    time of the ring's one-way hops, so it stays."""
    src = tmp_path / "attn.tile"
    src.write_text(attention_block((1, 4), ("d", "t"), "t", 1024))
    ir = fused(tilec, src, "v4-like")
    assert "ring_concat" not in ir and "collective_permute" not in ir, ir
    assert "all_gather" in ir, ir


def test_small_chunks_keep_the_collectives(tilec, tmp_path):
    """128 rows a chip: the steps would read the weights again for too few rows."""
    src = tmp_path / "attn.tile"
    src.write_text(attention_block((1, 4), ("d", "t"), "t", 512))
    ir = fused(tilec, src, "v5e-like")
    assert "ring_concat" not in ir and "collective_permute" not in ir, ir
    assert "all_gather" in ir and "reduce_scatter" in ir, ir


def test_same_bits_and_cycles_every_run(tilec, tmp_path):
    """Runs on one and on two host threads give the same bits and cycles."""
    src = tmp_path / "attn.tile"
    src.write_text(attention_block((1, 4), ("d", "t"), "t", 1024))
    _, args = random_inputs(tmp_path, shapes(1024), seed=3)
    assert_threads_agree(tilec, tmp_path, src, args, "v5e-like")
