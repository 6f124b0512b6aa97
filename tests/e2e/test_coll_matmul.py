"""The collective-matmul decomposition (passes/coll_matmul.c) end to end: a
sequence-parallel MLP (rows of the activations split over an axis, w_gate and w_up by
columns, w_down by rows, the output's rows split again) partitions into all_gather ->
matmuls -> reduce_scatter, which the pass runs as p steps with one-hop permutes of the
next chunk and of the running sums. Each program runs on the emulator and is checked
against numpy within REFERENCE.md's matmul tolerance, on rings and on v5e-like's lines;
that the pass took the block (or left it, where chunks are small) is read from
`--emit=fused`. Over two axes the ring is the cycle through both (collective_permute's
`cycle`) with the rows of each chunk going both ways round (`halves`), taken where a
step's weights read from HBM take no longer than its hops."""
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


# The block over both axes, (x, y), on v5e-like's lines: the ring is the cycle through
# them. Chunks of 128 rows pay (weights of 3 x 128 x 256 / p bf16 against 128 rows of x
# and sums, half each way: HBM is 18x a link).
# Every step reads the same weight shards, which stay in VMEM (docs/compiler.md,
# "Resident weights"); "wide" has several pieces of each, so a piece read from the
# wrong place shows.
CYCLES = {
    "2x2 cycle": ((2, 2), ("x", "y"), 4, "v5e-like", 128, 256),
    "4x4 cycle": ((4, 4), ("x", "y"), 16, "v5e-like", 128, 256),
    "2x4 cycle": ((2, 4), ("x", "y"), 8, "v5e-like", 128, 256),
    "2x2 cycle wide": ((2, 2), ("x", "y"), 4, "v5e-like", 512, 2048),
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


@pytest.mark.parametrize("mesh", sorted(CYCLES))
def test_cycle_block_matches_numpy(tilec, tmp_path, mesh):
    torus, names, p, target, e, f = CYCLES[mesh]
    rows = 128 * p
    src = tmp_path / "sp.tile"
    src.write_text(sp_mlp(torus, names, f"({names[0]}, {names[1]})", rows, e, f))
    ir = fused(tilec, src, target)
    hops = re.findall(r"= collective_permute .*", ir)
    assert len(hops) == 2 * (p - 1), ir
    assert all(f"cycle = {names[1]}" in h and "halves = 1" in h for h in hops), hops
    assert "all_gather" not in ir and "reduce_scatter" not in ir, ir
    mir = tilemach.run([tilec, str(src), "--target", target, "--torus",
                        "x".join(map(str, torus)), "--emit=mir"], timeout=120)
    assert mir.returncode == 0, mir.stderr
    bufs = re.findall(r"^buffer (\S+):", mir.stdout, re.M)
    assert bufs.count("matmul.b.resident") == 3 and "matmul.b" not in bufs, bufs
    arrays, args = random_inputs(tmp_path, shapes(rows, e, f), seed=p * 7 + len(mesh))
    out = tmp_path / "y.npy"
    run = run_tilec(tilec, [src, "--target", target, *args, "--out", f"result={out}"])
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    check_result(out, reference(*arrays.values()), f"sequence-parallel MLP on {mesh}")


@pytest.mark.parametrize("torus,target,rows,f", [((4, 4), "v5e-like", 128 * 16, 65536),
                                                 ((4, 4), "v5e-like", 64 * 16, 256),
                                                 ((2, 2), "tiny", 128 * 4, 256)])
def test_cycle_that_does_not_pay_keeps_the_collectives(tilec, tmp_path, torus, target, rows,
                                                       f):
    """128 rows a chip against 65536 / 16 columns of each weight (a step would read
    more weights from HBM than its hops carry), 64 rows a chip (fewer than the MXUs
    take), or dims that wrap (the collectives' rings use every link, the cycle half):
    the collectives stay."""
    src = tmp_path / "sp.tile"
    src.write_text(sp_mlp(torus, ("x", "y"), "(x, y)", rows, f=f))
    ir = fused(tilec, src, target)
    assert "collective_permute" not in ir
    assert "all_gather" in ir and "reduce_scatter" in ir


@pytest.mark.parametrize("mesh", ["1x4 line", "4x4 line", "2x2 ring"])
def test_residual_joins_the_own_partial(tilec, tmp_path, mesh):
    """r + MLP(x), r made before the block: the chip's own partial takes r in w_down's
    epilogue, and the last hop's sums are added to that."""
    torus, names, axis, p, target = MESHES[mesh]
    rows = 256 * p
    src = tmp_path / "sp.tile"
    text = re.sub(r"  %z = convert .*\n  return %z\n",
                  f"  %o = add %r, %y {{shard = [{axis}, -]}} : tensor<{rows}x128xf32>\n"
                  "  return %o\n", sp_mlp(torus, names, axis, rows)).replace(
        "func @mlp(", f"func @mlp(%r: tensor<{rows}x128xf32> {{shard = [{axis}, -]}}, ")
    src.write_text(text)
    ir = fused(tilec, src, target)
    assert re.search(r"%y.rs.acc0 = add %y.s0, %r\b", ir), ir
    assert re.search(r"= add %y.rs.acc0, %y.rs.recv\d+ ", ir), ir
    arrays, args = random_inputs(tmp_path, {"r": (rows, 128), **shapes(rows)}, seed=p + 5)
    out = tmp_path / "y.npy"
    run = run_tilec(tilec, [src, "--target", target, *args, "--out", f"result={out}"])
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    r, *w = arrays.values()
    check_result(out, r + reference(*w), f"residual MLP on {mesh}")


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


@pytest.mark.parametrize("torus,axis,rows", [((1, 4), "y", 1024), ((4, 4), "(x, y)", 2048)])
def test_same_bits_and_cycles_every_run(tilec, tmp_path, torus, axis, rows):
    """Two runs, on one and on two host threads, give the same bits and cycles."""
    src = tmp_path / "sp.tile"
    src.write_text(sp_mlp(torus, ("x", "y"), axis, rows))
    _, args = random_inputs(tmp_path, shapes(rows), seed=9)
    assert_threads_agree(tilec, tmp_path, src, args, "v5e-like")


def assert_threads_agree(tilec, tmp_path, src, args, target):
    """Runs of src on one and on two host threads give the same bits and cycles."""
    results = []
    for threads in ("1", "2"):
        out = tmp_path / f"y{threads}.npy"
        run = run_tilec(tilec, [src, "--target", target, "--threads", threads, *args,
                                "--out", f"result={out}"])
        assert run.returncode == 0, run.stderr
        cycles = re.search(r"run: (\d+) cycles", run.stdout + run.stderr).group(1)
        results.append((np.load(out).tobytes(), cycles))
    assert results[0] == results[1]
