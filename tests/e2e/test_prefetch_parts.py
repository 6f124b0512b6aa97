"""Prefetch parts (backend-vliw/gen_matmul_dma.c, "Prefetch", "Parts"): where a
matmul's prefetch copies all its weights, they come in DMAs of doubling size, all moved
to the start of the collective before it. DMAs in flight together share HBM evenly, so
the parts land in order; the lowering waits for the first before the matmul, and the
matmul waits for each later one right before the K steps it holds. The programs still
compute the right values (strict emulation, against numpy), including when the next
matmul's copies cross a matmul waiting for its parts (they signal the other prefetch
semaphore), and timing-only runs take the cycles functional runs do."""
import re

import numpy as np
import pytest

import tilemach

MATMUL_NMSE = 5e-4  # REFERENCE.md: matmul (bf16 in, f32 acc)

# h is column-sharded, so the second matmul (weights sharded by columns too) needs all
# of h: an all_gather, then a matmul whose weights (w2) are a parameter.
PROGRAM = """mesh @m = torus<1x4>(x, y)
func @f(%x: tensor<8x512xbf16>, %w1: tensor<512xKxbf16> {shard = [-, y]},
        %w2: tensor<Kx512xbf16> {shard = [-, y]}) -> tensor<8x512xf32> attributes {mesh = @m} {
  %h = matmul %x, %w1 : tensor<8xKxbf16>
  %y = matmul %h, %w2 : tensor<8x512xf32>
  return %y
}
"""
# The same, and a third matmul reading h: its weights (w3) stream while w2's matmul
# computes from its parts.
CHAIN = """mesh @m = torus<1x4>(x, y)
func @f(%x: tensor<8x512xbf16>, %w1: tensor<512xKxbf16> {shard = [-, y]},
        %w2: tensor<Kx512xbf16> {shard = [-, y]}, %w3: tensor<Kx512xbf16> {shard = [-, y]})
    -> (tensor<8x512xf32>, tensor<8x512xf32>) attributes {mesh = @m} {
  %h = matmul %x, %w1 : tensor<8xKxbf16>
  %y = matmul %h, %w2 : tensor<8x512xf32>
  %z = matmul %h, %w3 : tensor<8x512xf32>
  return %y, %z
}
"""
# K: 2048 gives w2's matmul two parts on v5e-like, 8192 four
KS = [2048, 8192]


def write(tmp_path, body, k):
    path = tmp_path / "parts.tile"
    path.write_text(body.replace("K", str(k)))
    return path


def compile_mir(tilec, src):
    p = tilemach.run([tilec, src, "--target", "v5e-like", "--torus", "1x4", "--emit=mir"])
    assert p.returncode == 0, p.stderr
    return p.stdout.splitlines()


def run(tilec, src, args, outs, extra=()):
    p = tilemach.run([tilec, "run", src, "--target", "v5e-like", "--torus", "1x4", *args,
                      *[a for name, path in outs.items() for a in ("--out", f"{name}={path}")], *extra],
                     timeout=300)
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    return int(re.search(r"^run: (\d+) cycles", p.stdout, re.M).group(1))


def matmul_lines(lines, line_no):
    return [i for i, l in enumerate(lines) if f"// matmul @" in l and l.endswith(f":{line_no}")]


@pytest.mark.parametrize("k", KS)
def test_parts_match_numpy(tilec, tmp_path, k):
    src = write(tmp_path, PROGRAM, k)
    arrays, args = tilemach.bf16_inputs(tmp_path, {"x": (8, 512), "w1": (512, k),
                                                   "w2": (k, 512)}, seed=k)
    out = tmp_path / "y.npy"
    run(tilec, src, args, {"result": out})
    got = np.load(out)
    h = tilemach.bf16_round((arrays["x"] @ arrays["w1"]).astype(np.float32)).astype(np.float64)
    err = tilemach.nmse(h @ arrays["w2"], got)
    assert np.all(np.isfinite(got)) and err <= MATMUL_NMSE, f"K {k}: NMSE {err:.3g}"


@pytest.mark.parametrize("k,parts", [(2048, 2), (8192, 4)])
def test_matmul_waits_for_each_later_part(tilec, tmp_path, k, parts):
    """In the MIR: `parts` prefetch DMAs (matmul.pf0..) in the all_gather; on their
    semaphore, one wait before the matmul's first op and one inside it per later part,
    each after weight loads of the parts before."""
    lines = compile_mir(tilec, write(tmp_path, PROGRAM, k))
    pf = [i for i, l in enumerate(lines) if re.search(r"\bdma .*\{r matmul\.pf\d+, r w2,", l)]
    coll = [i for i, l in enumerate(lines) if "// all_gather" in l]
    assert len(pf) == parts and coll and max(pf) < coll[-1]
    mm = matmul_lines(lines, 5)
    first = min(i for i in mm if i > coll[-1])
    # the lowering's wait: the first wait naming the ring after the collective
    waits = [i for i in range(coll[-1], len(lines)) if re.search(r"sem\.wait sem\d+, 1  \{w matmul\.b\}", lines[i])]
    sem = re.search(r"sem\.wait (sem\d+),", lines[waits[0]]).group(1)
    mine = [i for i in waits if f"sem.wait {sem}, 1 " in lines[i]]
    assert len(mine) == parts, [lines[i] for i in mine]
    assert mine[0] <= first
    loads = [i for i in mm if "vld.bf16" in lines[i] and "{r matmul.b}" in lines[i]]
    for w in mine[1:]:
        assert any(mine[0] < i < w for i in loads)


def test_chain_across_parts_matches_numpy(tilec, tmp_path):
    """w3's copies move into w2's matmul, right after its wait for its last part (before
    it, they would share HBM with w2's parts still landing), and signal the other
    semaphore, so no wait of one counts the other's copies."""
    k = 8192
    src = write(tmp_path, CHAIN, k)
    lines = compile_mir(tilec, src)
    w3 = [i for i, l in enumerate(lines) if re.search(r"\bdma .*\{r matmul\.pf\d+, r w3,", l)]
    w2 = matmul_lines(lines, 6)  # %y's line
    assert w3 and min(w2) < w3[0] < max(w2)
    assert any(re.search(r"\bdma .*\{r matmul\.pf1, r w2,", l) for l in lines)
    # the first wait naming a ring after the all_gather is for w2's first part; no wait
    # of w3's matmul (line 7) is on that semaphore
    coll = max(i for i, l in enumerate(lines) if "// all_gather" in l)
    ring = [l for l in lines[coll:] if re.search(r"sem\.wait sem\d+, 1  \{w matmul\.b\}", l)]
    sem = re.search(r"sem\.wait (sem\d+),", ring[0]).group(1)
    assert ring[0].endswith(":6")
    assert not [l for l in lines if f"sem.wait {sem}, " in l and l.endswith(":7")]
    parts = [i for i in w2 if f"sem.wait {sem}, " in lines[i]]
    assert len(parts) == 4 and parts[-1] < w3[0], (parts, w3)  # four parts, one wait each
    shapes = {"x": (8, 512), "w1": (512, k), "w2": (k, 512), "w3": (k, 512)}
    arrays, args = tilemach.bf16_inputs(tmp_path, shapes, seed=3)
    outs = {"result": tmp_path / "y.npy", "result1": tmp_path / "z.npy"}
    run(tilec, src, args, outs)
    h = tilemach.bf16_round((arrays["x"] @ arrays["w1"]).astype(np.float32)).astype(np.float64)
    for name, w in (("result", "w2"), ("result1", "w3")):
        err = tilemach.nmse(h @ arrays[w], np.load(outs[name]))
        assert err <= MATMUL_NMSE, f"{name}: NMSE {err:.3g}"


@pytest.mark.parametrize("body", [PROGRAM, CHAIN])
def test_timing_only_cycles_equal_functional(tilec, tmp_path, body):
    src = write(tmp_path, body, 8192)
    shapes = {"x": (8, 512), "w1": (512, 8192), "w2": (8192, 512)}
    if body is CHAIN:
        shapes["w3"] = (8192, 512)
    _, args = tilemach.bf16_inputs(tmp_path, shapes, seed=5)
    functional = run(tilec, src, args, {})
    assert functional == run(tilec, src, [], {}, ["--mode", "timing"])
    assert functional == run(tilec, src, [], {}, ["--mode", "timing", "--threads", "2"])
