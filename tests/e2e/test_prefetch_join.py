"""Matmuls that join a collective's window (backend-vliw/lower_prefetch.c, "joinable";
docs/compiler.md "Prefetch"): where the matmul after a collective copies all its
weights during it and the collective is expected to leave HBM idle beyond them, the
matmuls after that one (here w3 right after it, and w4 past an attention, which
streams its own operands) copy all their weights during the collective too, on the
other prefetch semaphore, and wait for them right after it. And where such a matmul,
computing from VMEM, comes right before the next collective, the copies of the matmul
after that collective start at it (EXTEND). The programs compute the
right values (strict emulation, against numpy), the copies and waits sit where they
should in the MIR, timing-only runs take the cycles functional runs do, and the
cycles do not depend on the number of host threads."""
import json
import re

import numpy as np
import pytest

import tilemach
from kernel_specs import from_npy
from test_prefetch import torus_arg

MATMUL_NMSE = 5e-4  # REFERENCE.md: matmul and attention (bf16 in, f32 acc)

# A row-sharded projection (partial sums, one all_reduce over y), then three matmuls by
# replicated weights of 512 KiB, 256 KiB and 2 MiB (a decode layer's wq, wk and wo in
# small), an attention between the second and the third. w4's blocks are 8 column
# chunks of all its K steps, which one DMA copies (gen_matmul_dma.c, chunk_grid).
PROGRAM = """
func @f(%x: tensor<8x512xbf16> {shard = [-, y]}, %w1: tensor<512x256xbf16> {shard = [y, -]},
        %w2: tensor<256x1024xbf16>, %w3: tensor<256x512xbf16>, %w4: tensor<1024x1024xbf16>,
        %q: tensor<1x2x8x64xbf16>, %k: tensor<1x2x32x64xbf16>, %v: tensor<1x2x32x64xbf16>)
    -> (tensor<8x512xf32>, tensor<1x2x8x64xbf16>, tensor<8x1024xf32>) attributes {mesh = @m} {
  %h = matmul %x, %w1 : tensor<8x256xf32>
  %hb = convert %h : tensor<8x256xbf16>
  %y = matmul %hb, %w2 : tensor<8x1024xf32>
  %z = matmul %hb, %w3 : tensor<8x512xf32>
  %o = attention %q, %k, %v {scale = 0.125} : tensor<1x2x8x64xbf16>
  %yb = convert %y : tensor<8x1024xbf16>
  %u = matmul %yb, %w4 : tensor<8x1024xf32>
  return %z, %o, %u
}
"""
SHAPES = {"x": (8, 512), "w1": (512, 256), "w2": (256, 1024), "w3": (256, 512),
          "w4": (1024, 1024), "q": (1, 2, 8, 64), "k": (1, 2, 32, 64), "v": (1, 2, 32, 64)}
CASES = [("tiny", (1, 4)), ("tiny", (2, 2)), ("v5e-like", (1, 4))]
W2_LINE, W3_LINE, W4_LINE = 8, 9, 12  # the matmuls' lines in the file (the mesh line first)


# Two all_reduces: w2 copies during the first, w4 (row-sharded, so its product needs
# the second) joins it, and w5's copies start at w4's matmul, which computes from VMEM
# right before the second all_reduce, and are waited for after that.
EXTEND = """
func @f(%x: tensor<8x512xbf16> {shard = [-, y]}, %w1: tensor<512x256xbf16> {shard = [y, -]},
        %w2: tensor<256x1024xbf16> {shard = [-, y]}, %w4: tensor<1024x1024xbf16> {shard = [y, -]},
        %w5: tensor<1024x512xbf16>) -> tensor<8x512xf32> attributes {mesh = @m} {
  %h = matmul %x, %w1 : tensor<8x256xf32>
  %hb = convert %h : tensor<8x256xbf16>
  %y = matmul %hb, %w2 : tensor<8x1024xf32>
  %yb = convert %y : tensor<8x1024xbf16>
  %u = matmul %yb, %w4 : tensor<8x1024xf32>
  %ub = convert %u : tensor<8x1024xbf16>
  %v = matmul %ub, %w5 : tensor<8x512xf32>
  return %v
}
"""
EXTEND_SHAPES = {"x": (8, 512), "w1": (512, 256), "w2": (256, 1024), "w4": (1024, 1024),
                 "w5": (1024, 512)}
# the lines of the ops the two all_reduces feed, of w4's and of w5's matmul
AR1_LINE, AR2_LINE, EXT_W4_LINE, EXT_W5_LINE = 6, 10, 9, 11


def write(tmp_path, torus, body=PROGRAM):
    path = tmp_path / "join.tile"
    path.write_text(f"mesh @m = torus<{torus[0]}x{torus[1]}>(x, y)" + body)
    return path


def bf(a):
    return tilemach.bf16_round(np.asarray(a, np.float32)).astype(np.float64)


def reference(a):
    hb = bf(a["x"] @ a["w1"])
    y = hb @ a["w2"]
    s = np.einsum("bhqd,bhkd->bhqk", a["q"], a["k"]) * 0.125
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    o = np.einsum("bhqk,bhkd->bhqd", p / p.sum(axis=-1, keepdims=True), a["v"])
    return [hb @ a["w3"], o, bf(y) @ a["w4"]]


@pytest.mark.parametrize("target,torus", CASES)
def test_joined_prefetch_matches_numpy(tilec, tmp_path, target, torus):
    src = write(tmp_path, torus)
    arrays, args = tilemach.bf16_inputs(tmp_path, SHAPES, seed=torus[0] * 10 + torus[1])
    outs = [tmp_path / f"r{i}.npy" for i in range(3)]
    p = tilemach.run([tilec, "run", src, "--target", target, "--torus", torus_arg(torus), *args,
                      *[a for i, o in enumerate(outs) for a in ("--out", f"result{i or ''}={o}")]],
                     timeout=300)
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    for i, (want, out, elem) in enumerate(zip(reference(arrays), outs, ("f32", "bf16", "f32"))):
        got = from_npy(np.load(out), elem).astype(np.float64)
        assert np.all(np.isfinite(got))
        err = tilemach.nmse(want, got)
        assert err <= MATMUL_NMSE, f"{target} {torus} result {i}: NMSE {err:.3g}"


def test_joined_copies_go_in_the_collective(tilec, tmp_path):
    """In the MIR on v5e-like 1x4: the copies of w2, w3 and w4 are all issued inside
    the all_reduce's code; w3's and w4's each come in one DMA, and their waits come
    right after the all_reduce (before w2's first op), on a semaphore w2's waits do
    not use."""
    src = write(tmp_path, (1, 4))
    p = tilemach.run([tilec, src, "--target", "v5e-like", "--torus", "1x4", "--emit=mir"])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    at = lambda pat: [i for i, l in enumerate(lines) if re.search(pat, l)]
    coll = at(r"// all_reduce")
    pf = {w: at(rf"\bdma .*\{{r matmul\.pf\d+, r {w},") for w in ("w2", "w3", "w4")}
    assert coll and all(pf.values()), {w: len(v) for w, v in pf.items()}
    assert len(pf["w3"]) == 1 and len(pf["w4"]) == 1
    for w, dmas in pf.items():
        assert all(coll[0] < i < coll[-1] for i in dmas), w
    w2_ops = at(rf"// matmul @\S+:{W2_LINE}$")
    first_w2_op = min(i for i in w2_ops if i > coll[-1])

    def waits(line):
        return at(rf"sem\.wait sem\d+, 1  \{{w matmul\.b\}}  // matmul @\S+:{line}$")

    # each joined matmul's first wait for its ring is the lowering's, right after the
    # all_reduce; w2's first is for its own prefetch, on the other semaphore
    joined = [min(waits(W3_LINE)), min(waits(W4_LINE))]
    assert all(coll[-1] < i < first_w2_op for i in joined), joined
    sem = lambda i: re.search(r"sem\.wait (sem\d+),", lines[i]).group(1)
    w2_first = min(i for i in waits(W2_LINE) if i > coll[-1])
    assert sem(joined[0]) == sem(joined[1]) != sem(w2_first)


@pytest.mark.parametrize("target,torus", CASES)
def test_timing_only_cycles_equal_functional(tilec, tmp_path, target, torus):
    _, args = tilemach.bf16_inputs(tmp_path, SHAPES, seed=5)
    cycles = tilemach.run_cycles(tilec, write(tmp_path, torus), target, torus, args)
    assert cycles[0] == cycles[1] == cycles[2]


def test_joined_copy_takes_all_of_w4_in_one_dma(tilec, tmp_path):
    """On v5e-like 1x4, chip 0 copies w4's 2 MiB in one local DMA (its chunks of all K
    steps, a constant stride apart), while the all_reduce's sends are in flight."""
    src = write(tmp_path, (1, 4))
    trace = tmp_path / "trace.json"
    p = tilemach.run([tilec, "run", src, "--target", "v5e-like", "--torus", "1x4",
                      "--mode", "timing", "--trace", trace], timeout=300)
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    events = json.loads(trace.read_text())
    events = events["traceEvents"] if isinstance(events, dict) else events
    dmas = [e for e in events if e.get("ph") == "X" and e.get("pid") == 0
            and str(e.get("name", "")).startswith("dma ")]
    whole = [e for e in dmas if e["args"]["bytes"] == 2 * 1024 * 1024 and e["args"]["peer"] == -1]
    sends = [e for e in dmas if e["args"]["peer"] != -1]
    assert len(whole) == 1 and sends, [e["name"] for e in dmas][:20]
    start, end = whole[0]["ts"], whole[0]["ts"] + whole[0]["dur"]
    assert any(s["ts"] < end and s["ts"] + s["dur"] > start for s in sends)


def extend_reference(a):
    hb = bf(a["x"] @ a["w1"])
    yb = bf(hb @ a["w2"])
    return bf(yb @ a["w4"]) @ a["w5"]


@pytest.mark.parametrize("target,torus", CASES)
def test_extended_window_matches_numpy(tilec, tmp_path, target, torus):
    src = write(tmp_path, torus, EXTEND)
    arrays, args = tilemach.bf16_inputs(tmp_path, EXTEND_SHAPES, seed=torus[0] + 7 * torus[1])
    out = tmp_path / "v.npy"
    p = tilemach.run([tilec, "run", src, "--target", target, "--torus", torus_arg(torus), *args,
                      "--out", f"result={out}"], timeout=300)
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    got = np.load(out)
    err = tilemach.nmse(extend_reference(arrays), got)
    assert np.all(np.isfinite(got)) and err <= MATMUL_NMSE, f"{target} {torus}: NMSE {err:.3g}"
    cycles = tilemach.run_cycles(tilec, src, target, torus, args,
                                 runs=(("functional", "1"), ("timing", "2")))
    assert cycles[0] == cycles[1]


def test_extended_window_starts_at_the_matmul(tilec, tmp_path):
    """In the MIR on v5e-like 1x4: w4's copy is in the first all_reduce; w5's is in
    w4's matmul code, before the second all_reduce, and w5's matmul first waits for its
    ring after that all_reduce."""
    src = write(tmp_path, (1, 4), EXTEND)
    p = tilemach.run([tilec, src, "--target", "v5e-like", "--torus", "1x4", "--emit=mir"])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    at = lambda pat: [i for i, l in enumerate(lines) if re.search(pat, l)]
    ar1, ar2 = at(rf"// all_reduce @\S+:{AR1_LINE}$"), at(rf"// all_reduce @\S+:{AR2_LINE}$")
    pf4, pf5 = at(r"\bdma .*\{r matmul\.pf\d+, r w4,"), at(r"\bdma .*\{r matmul\.pf\d+, r w5,")
    assert ar1 and ar2 and pf4 and pf5
    assert all(ar1[0] < i < ar1[-1] for i in pf4)
    w4_ops = [i for i in at(rf"// matmul @\S+:{EXT_W4_LINE}$") if i > ar1[-1]]
    assert all(w4_ops[0] < i < ar2[0] for i in pf5), (w4_ops[0], pf5, ar2[0])
    w5_waits = at(rf"sem\.wait sem\d+, 1  \{{w matmul\.b\}}  // matmul @\S+:{EXT_W5_LINE}$")
    assert w5_waits and w5_waits[0] > ar2[-1]
