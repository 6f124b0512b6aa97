"""Cross-group prefetch (backend-vliw/lower_prefetch.c, docs/compiler.md "Prefetch"):
in a mesh program whose matmul follows a collective, the matmul's first weight DMAs
are moved to the start of the collective's group, so HBM streams weights while the
links carry the collective. The program still computes the right values (strict
emulation, against numpy), the weight copy is in flight while the collective's sends
are, timing-only runs take the cycles functional runs do, and a program without a
collective before its matmul is compiled without one."""
import json
import re

import numpy as np
import pytest

import tilemach

MATMUL_NMSE = 5e-4  # REFERENCE.md: matmul (bf16 in, f32 acc)

# A row-sharded projection (partial sums, one all_reduce over y), then a matmul by
# column-sharded weights: the all_reduce's group is followed by a convert and the
# matmul whose weights (w2) are a parameter.
PROGRAM = """
func @f(%x: tensor<8x512xbf16> {shard = [-, y]}, %w1: tensor<512x256xbf16> {shard = [y, -]},
        %w2: tensor<256x1024xbf16> {shard = [-, y]}) -> tensor<8x1024xf32>
    attributes {mesh = @m} {
  %h = matmul %x, %w1 : tensor<8x256xf32>
  %hb = convert %h : tensor<8x256xbf16>
  %y = matmul %hb, %w2 : tensor<8x1024xf32>
  return %y
}
"""
SHAPES = {"x": (8, 512), "w1": (512, 256), "w2": (256, 1024)}
# (target, torus) pairs: the tiny target's 1x4 and 2x2, and v5e-like's 1x4
CASES = [("tiny", (1, 4)), ("tiny", (2, 2)), ("v5e-like", (1, 4))]


def write(tmp_path, torus, body=PROGRAM):
    path = tmp_path / "prefetch.tile"
    path.write_text(f"mesh @m = torus<{torus[0]}x{torus[1]}>(x, y)\n" + body)
    return path


def inputs(tmp_path, seed):
    return tilemach.bf16_inputs(tmp_path, SHAPES, seed)


def reference(x, w1, w2):
    return tilemach.bf16_round((x @ w1).astype(np.float32)).astype(np.float64) @ w2


def torus_arg(torus):
    return f"{torus[0]}x{torus[1]}"


@pytest.mark.parametrize("target,torus", CASES)
def test_prefetched_program_matches_numpy(tilec, tmp_path, target, torus):
    src = write(tmp_path, torus)
    arrays, args = inputs(tmp_path, seed=torus[0] * 10 + torus[1])
    out = tmp_path / "y.npy"
    p = tilemach.run([tilec, "run", src, "--target", target, *args, "--out", f"result={out}"],
                     timeout=300)
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    got = np.load(out)
    assert np.all(np.isfinite(got))
    err = tilemach.nmse(reference(*arrays.values()), got)
    assert err <= MATMUL_NMSE, f"{target} {torus}: NMSE {err:.3g}"


@pytest.mark.parametrize("target,torus", CASES)
def test_weight_dma_moves_before_the_collective(tilec, tmp_path, target, torus):
    """In the MIR, the prefetch's dma (its own descriptor, matmul.pf0, reading w2)
    comes before every dma of the all_reduce but the first, its operand's load, which
    the copies must not share HBM with; in the schedule, before the collective's last
    op."""
    src = write(tmp_path, torus)
    p = tilemach.run([tilec, src, "--target", target, "--torus", torus_arg(torus), "--emit=mir"])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    pf = [i for i, l in enumerate(lines) if re.search(r"\bdma .*\{r matmul\.pf0, r w2,", l)]
    coll = [i for i, l in enumerate(lines) if "// all_reduce" in l and re.search(r"\bdma ", l)]
    assert len(pf) == 1 and len(coll) >= 2, p.stdout[-2000:]
    assert pf[0] < coll[1]
    p = tilemach.run([tilec, src, "--target", target, "--torus", torus_arg(torus),
                      "--emit=sched"])
    assert p.returncode == 0, p.stderr
    bundle = lambda l: int(re.match(r"\s*(\d+):", l).group(1))
    sched = [l for l in p.stdout.splitlines() if re.match(r"\s*\d+:", l)]
    li = [bundle(l) for l in sched if re.search(r"li %s\d+, matmul\.pf0 ", l)]
    last_coll = max(bundle(l) for l in sched if "[all_reduce:" in l)
    assert li and li[0] < last_coll


def dma_slices(trace, chip):
    """(start cycle, cycles, bytes, peer) of every DMA of `chip` in a trace."""
    ev = json.loads(trace.read_text())["traceEvents"]
    lanes = {e["tid"] for e in ev if e.get("ph") == "M" and e.get("pid") == chip
             and e.get("name") == "thread_name" and e["args"]["name"].startswith("dma lane")}
    return [(e["args"]["cycle"], e["args"]["cycles"], e["args"].get("bytes", 0),
             e["args"].get("peer", -1))
            for e in ev if e.get("ph") == "X" and e.get("pid") == chip and e["tid"] in lanes]


@pytest.mark.parametrize("target,torus", CASES)
def test_weights_stream_while_the_links_work(tilec, tmp_path, target, torus):
    """Run in cycles: a local copy larger than the collective's data (8x256 f32) is in
    flight while the collective's sends to other chips are -- only the weights are that
    large, and without the prefetch none is copied before the collective's group ends."""
    src = write(tmp_path, torus)
    trace = tmp_path / "t.json"
    p = tilemach.run([tilec, "run", src, "--target", target, "--mode", "timing",
                      "--trace", trace], timeout=300)
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    dmas = dma_slices(trace, 0)
    remote = [d for d in dmas if d[3] >= 0]
    assert remote
    first, last = min(d[0] for d in remote), max(d[0] + d[1] for d in remote)
    weights = [d for d in dmas
               if d[3] < 0 and d[2] > 8 * 256 * 4 and d[0] < last and d[0] + d[1] > first]
    assert weights, dmas


@pytest.mark.parametrize("target,torus", CASES)
def test_timing_only_cycles_equal_functional(tilec, tmp_path, target, torus):
    src = write(tmp_path, torus)
    _, args = inputs(tmp_path, seed=5)
    cycles = []
    for mode in ("functional", "timing"):
        extra = args if mode == "functional" else ["--mode", "timing"]
        p = tilemach.run([tilec, "run", src, "--target", target, *extra], timeout=300)
        assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
        cycles.append(re.search(r"^run: (\d+) cycles", p.stdout, re.M).group(1))
    assert cycles[0] == cycles[1]


def test_no_prefetch_without_a_collective_before(tilec, tmp_path):
    """The same matmuls without the sharding that makes the all_reduce: no group to
    move the weights into, no prefetch descriptor."""
    body = PROGRAM.replace(" {shard = [-, y]}", "").replace(" {shard = [y, -]}", "")
    src = write(tmp_path, (1, 4), body)
    p = tilemach.run([tilec, src, "--target", "tiny", "--torus", "1x4", "--emit=mir"])
    assert p.returncode == 0, p.stderr
    assert "all_reduce" not in p.stdout and "matmul.pf" not in p.stdout
