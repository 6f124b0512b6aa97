"""The spmd pass, numerically: each program below, in global shapes with `shard`
annotations, is partitioned (`tilec --emit=partitioned`) and evaluated on every chip
of a simulated mesh (tileref.Module.run_spmd); the result must match the unsharded
program's (`tileref.Module.run` with the annotations ignored) on meshes of 1x4,
2x2, 4x4 and 2x2x2 chips. The serving layouts are those of REFERENCE.md "Rooflines
and serving"."""
import subprocess

import numpy as np
import pytest

import tileref

# name: (mesh dims, axis names) -- the 3D torus names a third axis nothing splits over.
MESHES = {"1x4": ((1, 4), ("x", "y")), "2x2": ((2, 2), ("x", "y")),
          "4x4": ((4, 4), ("x", "y")), "2x2x2": ((2, 2, 2), ("x", "y", "z"))}

PROGRAMS = {
    # 1D weight-stationary (Megatron): w1 by columns, w2 by rows, one all_reduce.
    "megatron_mlp": """
func @f(%x: tensor<16x32xf32>, %w1: tensor<32x64xf32> {shard = [-, x]},
        %w2: tensor<64x32xf32> {shard = [x, -]}) -> tensor<16x32xf32> {
  %h = matmul %x, %w1 : tensor<16x64xf32>
  %g = gelu %h : tensor<16x64xf32>
  %y = matmul %g, %w2 {shard = [-, -]} : tensor<16x32xf32>
  return %y
}""",
    # 2D weight-stationary: weights split over both axes, activations over one.
    "ws2d_mlp": """
func @f(%x: tensor<16x32xf32> {shard = [-, x]}, %w1: tensor<32x64xf32> {shard = [x, y]},
        %w2: tensor<64x32xf32> {shard = [y, x]}) -> tensor<16x32xf32> {
  %h = matmul %x, %w1 {shard = [-, y]} : tensor<16x64xf32>
  %g = gelu %h : tensor<16x64xf32>
  %y = matmul %g, %w2 {shard = [-, x]} : tensor<16x32xf32>
  return %y
}""",
    # Weight-gathered: the batch is split over every chip, weights are gathered.
    "weight_gathered": """
func @f(%x: tensor<16x32xf32> {shard = [(x, y), -]}, %w1: tensor<32x64xf32> {shard = [-, (x, y)]},
        %w2: tensor<64x32xf32> {shard = [(x, y), -]}) -> tensor<16x32xf32> {
  %h = matmul %x, %w1 {shard = [(x, y), -]} : tensor<16x64xf32>
  %g = silu %h : tensor<16x64xf32>
  %y = matmul %g, %w2 {shard = [(x, y), -]} : tensor<16x32xf32>
  return %y
}""",
    # Batch-sharded multiquery attention: one K/V head, batch over x, heads over y.
    "mqa_batch": """
func @f(%q: tensor<4x4x8x16xf32> {shard = [x, y, -, -]}, %k: tensor<4x1x8x16xf32>,
        %v: tensor<4x1x8x16xf32>) -> tensor<4x4x8x16xf32> {
  %o = attention %q, %k, %v {scale = 0.25, causal = 1} : tensor<4x4x8x16xf32>
  return %o
}""",
    # Resharding: a reduce over a split dim, transpose, softmax along a split dim,
    # a broadcast add, a reshape and a layout change on return.
    "reshard_mix": """
func @f(%a: tensor<16x32xf32> {shard = [x, y]}, %b: tensor<32xf32>) -> tensor<32x16xf32> {
  %s = reduce %a {kind = max, dims = [0]} : tensor<32xf32>
  %t = transpose %a {perm = [1, 0]} : tensor<32x16xf32>
  %m = softmax %t {dim = 0} : tensor<32x16xf32>
  %c = add %s, %b : tensor<32xf32>
  %d = broadcast %c {dims = [0]} : tensor<32x16xf32>
  %e = mul %m, %d {shard = [y, x]} : tensor<32x16xf32>
  %r = reshape %e : tensor<32x16xf32>
  %o = exp %r {shard = [x, -]} : tensor<32x16xf32>
  return %o
}""",
}


def mesh_text(dims, names):
    return "mesh @m = torus<%s>(%s)\n" % ("x".join(map(str, dims)), ", ".join(names))


def emit(tilec, src, tmp_path, stage):
    path = tmp_path / "prog.tile"
    path.write_text(src)
    p = subprocess.run([str(tilec), str(path), "--emit=" + stage], capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr
    return tileref.parse(p.stdout, str(path))


def shardings(func):
    """Parameter and result shardings of a func as shard_prop printed it."""
    ins = [attrs.get("shard") for _, _, attrs in func.params]
    defs = {r[0]: op.attrs.get("shard") for op in func.body.ops for r in op.results}
    defs.update({name: sh for (name, _, _), sh in zip(func.params, ins)})
    ret = [op for op in func.body.ops if op.name == "return"][0]
    return ins, [defs[u.name] for u in ret.operands]


@pytest.mark.parametrize("mesh", sorted(MESHES))
@pytest.mark.parametrize("prog", sorted(PROGRAMS))
def test_partitioned_matches_global(tilec, tmp_path, prog, mesh):
    dims, names = MESHES[mesh]
    src = mesh_text(dims, names) + PROGRAMS[prog]
    sizes = dict(zip(names, dims))
    sharded = emit(tilec, src, tmp_path, "sharded")
    ins, outs = shardings(sharded.func("f"))
    args = tileref.random_args(sharded.func("f"), seed=1)
    want = sharded.run("f", *args)
    part = emit(tilec, src, tmp_path, "partitioned")
    got = part.run_spmd("f", sizes, ins, outs, *args)
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
