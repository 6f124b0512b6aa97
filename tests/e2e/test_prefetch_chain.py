"""Prefetch across a matmul (backend-vliw/lower_prefetch.c, docs/compiler.md "Prefetch"):
a matmul whose weights were all copied during a collective computes from VMEM with
HBM idle, so the next matmul's first weight pieces are copied while it runs. The
program computes the right values (strict emulation, against numpy), the second
matmul's copy sits at the start of the first matmul's code with its wait after it,
timing-only runs take the cycles functional runs do, and the cycles do not depend on
the number of host threads."""
import re

import numpy as np
import pytest

import tilemach
from test_prefetch import torus_arg

MATMUL_NMSE = 5e-4  # REFERENCE.md: matmul (bf16 in, f32 acc)

# A row-sharded projection (partial sums, one all_reduce over y), then two matmuls by
# replicated weights: w2 (512 KiB) is copied whole during the all_reduce, w3's first
# pieces while the w2 matmul computes from VMEM (w3, 8 MiB, is more than the
# all_reduce is expected to leave HBM after w2, so its copies do not join w2's there:
# test_prefetch_join.py).
PROGRAM = """
func @f(%x: tensor<8x512xbf16> {shard = [-, y]}, %w1: tensor<512x256xbf16> {shard = [y, -]},
        %w2: tensor<256x1024xbf16>, %w3: tensor<1024x4096xbf16>) -> tensor<8x4096xf32>
    attributes {mesh = @m} {
  %h = matmul %x, %w1 : tensor<8x256xf32>
  %hb = convert %h : tensor<8x256xbf16>
  %y = matmul %hb, %w2 : tensor<8x1024xf32>
  %yb = convert %y : tensor<8x1024xbf16>
  %z = matmul %yb, %w3 : tensor<8x4096xf32>
  return %z
}
"""
SHAPES = {"x": (8, 512), "w1": (512, 256), "w2": (256, 1024), "w3": (1024, 4096)}
CASES = [("tiny", (1, 4)), ("tiny", (2, 2)), ("v5e-like", (1, 4))]
W2_LINE, W3_LINE = 7, 9  # the matmuls' lines in the file (the mesh line first)


def write(tmp_path, torus):
    path = tmp_path / "chain.tile"
    path.write_text(f"mesh @m = torus<{torus[0]}x{torus[1]}>(x, y)" + PROGRAM)
    return path


def inputs(tmp_path, seed):
    return tilemach.bf16_inputs(tmp_path, SHAPES, seed)


def reference(x, w1, w2, w3):
    bf = lambda a: tilemach.bf16_round(a.astype(np.float32)).astype(np.float64)
    return bf(bf(x @ w1) @ w2) @ w3


@pytest.mark.parametrize("target,torus", CASES)
def test_chained_prefetch_matches_numpy(tilec, tmp_path, target, torus):
    src = write(tmp_path, torus)
    arrays, args = inputs(tmp_path, seed=torus[0] * 10 + torus[1])
    out = tmp_path / "z.npy"
    p = tilemach.run([tilec, "run", src, "--target", target, "--torus", torus_arg(torus), *args,
                      "--out", f"result={out}"], timeout=300)
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    got = np.load(out)
    assert np.all(np.isfinite(got))
    err = tilemach.nmse(reference(*arrays.values()), got)
    assert err <= MATMUL_NMSE, f"{target} {torus}: NMSE {err:.3g}"


def test_second_copy_crosses_the_first_matmul(tilec, tmp_path):
    """In the MIR on v5e-like 1x4: w2's prefetch dma comes in the all_reduce, before
    every dma of it but the first (its operand's load); w3's
    comes after the all_reduce, before the w2 matmul's own first copy; its wait comes
    after the last op of the w2 matmul."""
    src = write(tmp_path, (1, 4))
    p = tilemach.run([tilec, src, "--target", "v5e-like", "--torus", "1x4", "--emit=mir"])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    at = lambda pat: [i for i, l in enumerate(lines) if re.search(pat, l)]
    pf2, pf3 = at(r"\bdma .*\{r matmul\.pf0, r w2,"), at(r"\bdma .*\{r matmul\.pf0, r w3,")
    coll = at(r"// all_reduce")
    own2 = at(r"\bdma .*\{r matmul\.bdesc, r w2,")
    w2_ops = at(rf"// matmul @\S+:{W2_LINE}$")
    w3_waits = at(rf"sem\.wait .*\{{w matmul\.b\}}  // matmul @\S+:{W3_LINE}$")
    assert len(pf2) == 1 and len(pf3) == 1 and coll and own2 and w3_waits, p.stdout[-3000:]
    coll_dmas = [i for i in coll if re.search(r"\bdma ", lines[i])]
    assert len(coll_dmas) >= 2 and pf2[0] < coll_dmas[1]
    assert coll[-1] < pf3[0] < own2[0]
    assert w3_waits[0] > w2_ops[-1]


@pytest.mark.parametrize("target,torus", CASES)
def test_timing_only_cycles_equal_functional(tilec, tmp_path, target, torus):
    _, args = inputs(tmp_path, seed=5)
    cycles = tilemach.run_cycles(tilec, write(tmp_path, torus), target, torus, args)
    assert cycles[0] == cycles[1] == cycles[2]
