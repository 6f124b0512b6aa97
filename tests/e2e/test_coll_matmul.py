"""The collective-matmul decomposition (passes/coll_matmul.c) end to end: a
sequence-parallel MLP (rows of the activations split over an axis, w_gate and w_up by
columns, w_down by rows, the output's rows split again) partitions into all_gather ->
matmuls -> reduce_scatter, which the pass runs as p steps with one-hop permutes of the
next chunk and of the running sums. Each program runs on the emulator and is checked
against numpy within REFERENCE.md's matmul tolerance, on rings and on v5e-like's lines;
that the pass took the block (or left it, where chunks are small) is read from
`--emit=fused`."""
import re

import numpy as np
import pytest

import tilemach
from test_spmd_run import bf16, check_result, random_inputs, run_tilec, silu


def sp_mlp(torus, names, axis, rows, e=128, f=256):
    """The block over `axis` with `rows` activation rows in all."""
    return f"""mesh @m = torus<{'x'.join(map(str, torus))}>({', '.join(names)})

func @mlp(%x: tensor<{rows}x{e}xbf16> {{shard = [{axis}, -]}},
          %wg: tensor<{e}x{f}xbf16> {{shard = [-, {axis}]}},
          %wu: tensor<{e}x{f}xbf16> {{shard = [-, {axis}]}},
          %wd: tensor<{f}x{e}xbf16> {{shard = [{axis}, -]}}) -> tensor<{rows}x{e}xf32>
    attributes {{mesh = @m}} {{
  %g = matmul %x, %wg {{shard = [-, {axis}]}} : tensor<{rows}x{f}xbf16>
  %u = matmul %x, %wu {{shard = [-, {axis}]}} : tensor<{rows}x{f}xbf16>
  %a = silu %g : tensor<{rows}x{f}xbf16>
  %h = mul %a, %u : tensor<{rows}x{f}xbf16>
  %y = matmul %h, %wd : tensor<{rows}x{e}xf32>
  %z = convert %y {{shard = [{axis}, -]}} : tensor<{rows}x{e}xf32>
  return %z
}}
"""


def reference(x, wg, wu, wd):
    return bf16(bf16(silu(bf16(x @ wg))) * bf16(x @ wu)) @ wd


def shapes(rows, e=128, f=256):
    return {"x": (rows, e), "wg": (e, f), "wu": (e, f), "wd": (f, e)}


# name: (torus, axis names, the axis the block is split over, chips on it, target)
MESHES = {
    "1x4 ring": ((1, 4), ("x", "y"), "y", 4, "tiny"),
    "2x2 ring": ((2, 2), ("x", "y"), "x", 2, "tiny"),
    "1x4 line": ((1, 4), ("x", "y"), "y", 4, "v5e-like"),
    "4x4 line": ((4, 4), ("x", "y"), "y", 4, "v5e-like"),
}


def fused(tilec, src, target):
    p = tilemach.run([tilec, str(src), "--target", target, "--emit=fused"], timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.mark.parametrize("mesh", sorted(MESHES))
def test_decomposed_block_matches_numpy(tilec, tmp_path, mesh):
    torus, names, axis, p, target = MESHES[mesh]
    rows = 256 * p
    src = tmp_path / "sp.tile"
    src.write_text(sp_mlp(torus, names, axis, rows))
    ir = fused(tilec, src, target)
    # p - 1 hops of the chunks and p - 1 of the running sums; no gather or scatter left
    assert len(re.findall(r"= collective_permute ", ir)) == 2 * (p - 1), ir
    assert "all_gather" not in ir and "reduce_scatter" not in ir, ir
    assert len(re.findall(r"= matmul ", ir)) == 3 * p, ir
    arrays, args = random_inputs(tmp_path, shapes(rows), seed=p * 11 + len(mesh))
    out = tmp_path / "y.npy"
    run = run_tilec(tilec, [src, "--target", target, *args, "--out", f"result={out}"])
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    check_result(out, reference(*arrays.values()), f"sequence-parallel MLP on {mesh}")


def test_small_chunks_keep_the_collectives(tilec, tmp_path):
    """128 rows a chip: each step would read the weights again for too few rows, so
    the block keeps its all_gather and reduce_scatter, and still computes the same."""
    src = tmp_path / "sp.tile"
    src.write_text(sp_mlp((1, 4), ("x", "y"), "y", 512))
    ir = fused(tilec, src, "tiny")
    assert "collective_permute" not in ir
    assert "all_gather" in ir and "reduce_scatter" in ir
    arrays, args = random_inputs(tmp_path, shapes(512), seed=5)
    out = tmp_path / "y.npy"
    run = run_tilec(tilec, [src, "--target", "tiny", *args, "--out", f"result={out}"])
    assert run.returncode == 0, run.stderr
    check_result(out, reference(*arrays.values()), "small chunks")


def test_same_bits_and_cycles_every_run(tilec, tmp_path):
    """Two runs, on one and on two host threads, give the same bits and cycles."""
    src = tmp_path / "sp.tile"
    src.write_text(sp_mlp((1, 4), ("x", "y"), "y", 1024))
    _, args = random_inputs(tmp_path, shapes(1024), seed=9)
    results = []
    for threads in ("1", "2"):
        out = tmp_path / f"y{threads}.npy"
        run = run_tilec(tilec, [src, "--target", "v5e-like", "--threads", threads, *args,
                                "--out", f"result={out}"])
        assert run.returncode == 0, run.stderr
        cycles = re.search(r"run: (\d+) cycles", run.stdout + run.stderr).group(1)
        results.append((np.load(out).tobytes(), cycles))
    assert results[0] == results[1]
