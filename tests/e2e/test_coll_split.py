"""Collectives too large for VMEM run in pieces (docs/passes.md, "coll_split"): an
all_reduce, reduce_scatter or all_gather whose receive slots would take more than half
of the target's VMEM is cut along a dim it does not gather or scatter, one collective
per piece, the results joined. On tiny (1 MiB of VMEM) over 2x2, the three collectives
of 1024 x 256 f32 (768 KiB of slots) run in pieces of equal columns and give numpy's
values; on v5e-like (128 MiB) they stay whole. The sequence-parallel
MLP of the layers bench on v4-like (16 MiB), whose reduce_scatter of 32 MiB of f32
sums over 16 chips needs 30 MiB of slots, compiles and runs."""
import re

import pytest

import tilemach
from test_coll_matmul import sp_mlp
from test_spmd_run import check_result, random_inputs, run_tilec

HEAD = "mesh @m = torus<2x2>(x, y)\n\n"

# name: (program, the collective it makes, the reference from the inputs)
PROGRAMS = {
    # partial sums over (x, y), scattered onto rows
    "reduce_scatter": ("""func @f(%h: tensor<1024x512xbf16> {shard = [-, (x, y)]},
         %w: tensor<512x256xbf16> {shard = [(x, y), -]}) -> tensor<1024x256xf32>
    attributes {mesh = @m} {
  %y = matmul %h, %w : tensor<1024x256xf32>
  %z = convert %y {shard = [(x, y), -]} : tensor<1024x256xf32>
  return %z
}
""", "reduce_scatter", lambda a: a["h"] @ a["w"]),
    # partial sums over (x, y), replicated
    "all_reduce": ("""func @f(%h: tensor<1024x512xbf16> {shard = [-, (x, y)]},
         %w: tensor<512x256xbf16> {shard = [(x, y), -]}) -> tensor<1024x256xf32>
    attributes {mesh = @m} {
  %y = matmul %h, %w : tensor<1024x256xf32>
  %z = convert %y {shard = [-, -]} : tensor<1024x256xf32>
  return %z
}
""", "all_reduce", lambda a: a["h"] @ a["w"]),
    # rows over (x, y), gathered whole
    "all_gather": ("""func @f(%h: tensor<1024x512xbf16> {shard = [(x, y), -]},
         %w: tensor<512x256xbf16>) -> tensor<1024x256xf32>
    attributes {mesh = @m} {
  %y = matmul %h, %w {shard = [(x, y), -]} : tensor<1024x256xf32>
  %z = convert %y {shard = [-, -]} : tensor<1024x256xf32>
  return %z
}
""", "all_gather", lambda a: a["h"] @ a["w"]),
}


def fused(tilec, src, target, torus):
    p = tilemach.run([tilec, str(src), "--target", target, "--torus", torus, "--emit=fused"],
                     timeout=300)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_cut_into_pieces_matches_numpy(tilec, tmp_path, name):
    text, coll, ref = PROGRAMS[name]
    src = tmp_path / "p.tile"
    src.write_text(HEAD + text)
    ir = fused(tilec, src, "tiny", "2x2")
    widths = [int(c) for _, c in re.findall(rf"= {coll} .*: tensor<(\d+)x(\d+)xf32>", ir)]
    assert len(widths) > 1 and len(set(widths)) == 1 and sum(widths) == 256, ir
    assert re.search(r"= concatenate .*\{dim = 1", ir), ir
    whole = fused(tilec, src, "v5e-like", "2x2")
    assert len(re.findall(rf"= {coll} ", whole)) == 1 and "concatenate" not in whole, whole
    arrays, args = random_inputs(tmp_path, {"h": (1024, 512), "w": (512, 256)}, seed=len(name))
    out = tmp_path / "z.npy"
    run = run_tilec(tilec, [src, "--target", "tiny", "--torus", "2x2", *args,
                            "--out", f"result={out}"])
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    check_result(out, ref(arrays), f"{name} in pieces on tiny 2x2")


def test_prefill_mlp_scatter_fits_v4(tilec, tmp_path):
    src = tmp_path / "mlp.tile"
    src.write_text(sp_mlp((4, 4), ("d", "t"), "(d, t)", 2048, 4096, 14336))
    ir = fused(tilec, src, "v4-like", "4x4")
    assert len(re.findall(r"= reduce_scatter ", ir)) > 1, ir
    run = tilemach.run([tilec, "run", str(src), "--target", "v4-like", "--torus", "4x4",
                        "--mode", "timing"], timeout=600)
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    assert re.search(r"run: \d+ cycles", run.stdout + run.stderr), run.stdout
