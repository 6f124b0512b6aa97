"""The tests/machine programs as test cases: how to make each program's inputs, what its
outputs must be (numpy references), and how many cycles it must take, computed from the
target file's parameters with the formula its header comment derives.

A spec is run by test_machine_programs.py (results and cycles) and test_determinism.py
(the same bits, statistics and trace on any number of host threads)."""
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable, Optional

import numpy as np

import tilemach as tm


@dataclass
class Spec:
    id: str
    src: str
    target: str = "tiny"
    torus: Optional[str] = None
    mode: Optional[str] = None                     # None: functional
    inputs: Callable = lambda t: {}                # target -> {symbol: array}
    outputs: tuple = ()
    check: Optional[Callable] = None               # (outputs, inputs, target) -> None
    cycles: Callable = None                        # target -> expected cycles
    stats: Optional[Callable] = None               # (stats, target) -> None: more checks
    tags: tuple = field(default_factory=tuple)

    def target_obj(self):
        return tm.load_target(self.target, self.torus)


def rng(seed):
    return np.random.default_rng(seed)


def bits(a):
    return np.ascontiguousarray(a).view(np.uint32)


def assert_same_bits(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, want {want.shape}"
    bad = np.flatnonzero(bits(got).ravel() != bits(want).ravel())
    assert bad.size == 0, (f"{what}: {bad.size} elements differ, first at flat index "
                           f"{bad[0]}: got {got.ravel()[bad[0]]!r}, want {want.ravel()[bad[0]]!r}")


# ---- exact references ----

def f32_round(q):
    """The f32 nearest to the exact rational q (ties to even), for normal results."""
    if q == 0:
        return np.float32(0.0)
    sign = -1 if q < 0 else 1
    a = abs(q)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1
    scaled = a * Fraction(2) ** (23 - e)
    m = scaled.numerator // scaled.denominator
    rem = scaled - m
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and m % 2 == 1):
        m += 1
    return np.float32(sign * m * 2.0 ** (e - 23))


def fma_f32(a, b, c):
    """a * b + c rounded once to f32 (vfma.f), elementwise. Where the float64 sum is
    exact (signed zeros and infinities included) one rounding of it is the answer;
    elsewhere the exact rational is rounded."""
    wide = a.astype(np.float64) * b.astype(np.float64) + c.astype(np.float64)
    out = wide.astype(np.float32)
    for i, (x, y, z, w) in enumerate(zip(a.ravel(), b.ravel(), c.ravel(), wide.ravel())):
        if not np.isfinite(w):
            continue
        exact = Fraction(float(x)) * Fraction(float(y)) + Fraction(float(z))
        if exact != Fraction(float(w)):
            out.ravel()[i] = f32_round(exact)
    return out


def vmax(x, y):
    """max with -0 below +0 (the VPU's rule; inputs hold no NaN)."""
    return np.where(x == y, np.where(np.signbit(x), y, x), np.maximum(x, y)).astype(np.float32)


def vmin(x, y):
    return np.where(x == y, np.where(np.signbit(x), x, y), np.minimum(x, y)).astype(np.float32)


def mxu_f32(a, w):
    """The MXU's numerics exactly: bf16 inputs (already rounded), products in f32 (exact),
    summed in f32 from +0.0 in k order, no fused multiply-add."""
    acc = np.zeros((a.shape[0], w.shape[1]), np.float32)
    for k in range(a.shape[1]):
        acc = acc + a[:, k:k + 1] * w[k:k + 1, :]
    return acc


# ---- scalar loops ----

def scalar_loop_cycles(t):
    n = 100
    return max(2 * n + 4 + 1, 2 * n + 3 + t.lat["smem"])


def scalar_bnz_cycles(t):
    n, b = 40, t.lat["branch"]
    T = 2 + (n - 1) * (1 + b) + 2  # the stores and the halt issue together at T
    return max(T + 1, T + t.lat["smem"])


def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


# ---- vector ALU ----

def vector_f32_inputs(t):
    r = rng(11)
    x = r.uniform(-4, 4, (8, 128)).astype(np.float32)
    y = r.uniform(-4, 4, (8, 128)).astype(np.float32)
    y[0, :16] = x[0, :16]                       # equal values: the compare and max/min ties
    x[1, :4], y[1, :4] = [0.0, -0.0, -0.0, 0.0], [-0.0, 0.0, -0.0, 0.0]
    x[2, :2], y[2, :2] = [np.inf, -np.inf], [1.0, 1.0]
    return {"x": x, "y": y}


def vector_f32_check(out, inp, t):
    x, y = inp["x"], inp["y"]
    o = out["out"]
    with np.errstate(invalid="ignore"):
        for k, (name, want) in enumerate([("x + y", x + y), ("x - y", x - y),
                                          ("x * y", x * y), ("max", vmax(x, y)),
                                          ("min", vmin(x, y))]):
            assert_same_bits(o[k], want, name)
    assert_same_bits(o[5], fma_f32(x, y, x), "vfma.f (one rounding)")
    assert np.any(bits(o[5]) != bits(x * y + x)), "no input separates fused from unfused"
    assert_same_bits(o[6], np.where(x < y, x, y), "vsel")
    np.testing.assert_array_equal(out["mask"], (x < y).astype(np.int32))


def vector_i32_inputs(t):
    r = rng(12)
    a = r.integers(-2**31, 2**31, (8, 128), dtype=np.int64).astype(np.int32)
    b = r.integers(-2**31, 2**31, (8, 128), dtype=np.int64).astype(np.int32)
    b[0, :32] = a[0, :32]
    a[1, :4] = [16777217, -16777219, 2**31 - 1, -2**31]      # i2f rounds to nearest even
    c = r.uniform(-1e3, 1e3, (8, 128)).astype(np.float32)
    c[0, :8] = [0.5, 1.5, 2.5, -2.5, 3.5, 1e10, -1e10, -0.5]   # ties to even; saturation
    return {"a": a, "b": b, "c": c}


def vector_i32_check(out, inp, t):
    a, b, c = inp["a"], inp["b"], inp["c"]
    o = out["out"]
    wide = lambda v: (v & 0xFFFFFFFF).astype(np.uint32).view(np.int32)  # noqa: E731
    a64, b64 = a.astype(np.int64), b.astype(np.int64)
    f2i = np.clip(np.rint(c.astype(np.float64)), -2**31, 2**31 - 1).astype(np.int32)
    lane = np.broadcast_to(np.arange(128, dtype=np.int32), (8, 128))
    sub = np.broadcast_to(np.arange(8, dtype=np.int32)[:, None], (8, 128))
    want = [wide(a64 + b64), wide(a64 - b64), wide(a64 * b64), a & b, a | b, a ^ b,
            (a < b).astype(np.int32), (a == b).astype(np.int32), f2i, lane, sub,
            sub * 128 + lane, np.full((8, 128), -7, np.int32)]
    names = ["vadd.i", "vsub.i", "vmul.i", "vand", "vor", "vxor", "vcmplt.i", "vcmpeq.i",
             "vcvt.f2i", "viota 0", "viota 1", "viota 2", "vbcast"]
    for k, (name, w) in enumerate(zip(names, want)):
        np.testing.assert_array_equal(o[k], w, err_msg=name)
    assert_same_bits(out["outf"], a.astype(np.float32), "vcvt.i2f")


# ---- transcendentals ----

def transcendental_inputs(t):
    r = rng(13)
    x = np.empty((5, 8, 128), np.float32)
    x[0] = r.uniform(-20, 20, (8, 128))                     # exp
    x[1] = np.exp(r.uniform(-20, 20, (8, 128)))             # log, away from 1
    x[1][np.abs(np.log(x[1])) < 0.05] = 3.0
    x[2] = np.exp(r.uniform(-30, 30, (8, 128)))             # rsqrt
    x[3] = r.uniform(-6, 6, (8, 128))                       # tanh
    x[4] = r.choice([-1, 1], (8, 128)) * np.exp(r.uniform(-30, 30, (8, 128)))  # recip
    return {"x": x}


def transcendental_check(out, inp, t):
    x = inp["x"].astype(np.float64)
    want = [np.exp(x[0]), np.log(x[1]), 1 / np.sqrt(x[2]), np.tanh(x[3]), 1 / x[4]]
    for k, name in enumerate(["vexp", "vlog", "vrsqrt", "vtanh", "vrcp"]):
        got = out["out"][k].astype(np.float64)
        rel = np.abs(got - want[k]) / np.abs(want[k])
        worst = int(np.argmax(rel))
        assert rel.max() <= 1e-6, (f"{name}: relative error {rel.max():.3g} at input "
                                   f"{x[k].ravel()[worst]!r}")


# ---- MXU ----

def mxu_inputs(t):
    r = rng(14)
    a = tm.bf16_round(r.standard_normal((32, 512)).astype(np.float32))
    w = tm.bf16_round(r.standard_normal((512, 128)).astype(np.float32))
    return {"a": a, "w": w}


def mxu_check(out, inp, t):
    a, w = inp["a"], inp["w"]
    got = out["out"]
    exact = a.astype(np.float64) @ w.astype(np.float64)
    err = tm.nmse(exact, got)
    assert err <= 5e-4, f"NMSE {err:.3g} against the float64 product"
    # the bf16-rounded inputs' product in f32 arithmetic: far inside the tolerance
    ref32 = a @ w
    assert tm.nmse(ref32, got) <= 1e-10, f"NMSE {tm.nmse(ref32, got):.3g} against f32 numpy"
    # and bit for bit the MXU's own order: blocks j = 0..3, each summed in k order
    blocks = [mxu_f32(a[:, 128 * j:128 * j + 128], w[128 * j:128 * j + 128]) for j in range(4)]
    acc = blocks[0]
    for blk in blocks[1:]:
        acc = acc + blk
    assert_same_bits(got, acc, "out (bf16 x bf16, f32 accumulation in k order)")


def mxu_cycles(t):
    """Round r starts at R_r; its first push at Q_r = R_r + 32 + VL; round 1 starts at
    R_1 = Q_0 + 3P + 10; the last vst is at Q_1 + 3P + 12 and the halt one bundle later."""
    VL, P, VS = t.lat["vload"], t.push_cycles, t.lat["vstore"]
    R0 = 1
    Q0 = R0 + 32 + VL
    R1 = Q0 + 3 * P + 10
    Q1 = R1 + 32 + VL
    last_vst = Q1 + 3 * P + 12
    return max(last_vst + 1 + 1, last_vst + VS)


# ---- DMA ----

def dma_local_cycles(t):
    S, T = 10 * 4004, 1
    D = T + t.dma_issue + t.xfer_cycles(S, t.hbm_bw)
    return D + 2


def dma_local_check(out, inp, t):
    d = out["dst"]
    np.testing.assert_array_equal(d[:, :4004], inp["src"])
    assert not d[:, 4004:].any(), "bytes between the strided rows were written"


def hbm_pool(t, dmas):
    """Completion cycles of local HBM DMAs sharing the chip's HBM bandwidth, cycle by
    cycle, as docs/emulator.md defines it: dmas are (start cycle, bytes, cap) in start
    order; each cycle the n active ones get floor(H / n) units of work (the first
    H mod n one more), at most cap; a byte is clock_hz units; a DMA completes at the end
    of the cycle in which its work runs out."""
    H = t.hbm_bw
    left = [b * t.clock_hz for _, b, _ in dmas]
    done = [None] * len(dmas)
    cyc = min(s for s, _, _ in dmas)
    while None in done:
        active = [i for i, (s, _, _) in enumerate(dmas) if s <= cyc and done[i] is None]
        n = len(active)
        for rank, i in enumerate(active):
            share = min(H // n + (1 if rank < H % n else 0), dmas[i][2])
            left[i] -= max(share, 1)
            if left[i] <= 0:
                done[i] = cyc + 1
        cyc += 1
    return done


def dma_shared_times(t):
    issue = t.dma_issue
    s_a = 1 + issue           # engine 0
    s_b = 2 + issue           # engine 1: engine 0 is busy until s_a
    d_a, d_b = hbm_pool(t, [(s_a, 20000, t.vmem_bw), (s_b, 6000, t.vmem_bw)])
    return d_a, d_b


def dma_shared_cycles(t):
    d_a, d_b = dma_shared_times(t)
    assert d_b < d_a, "the program waits for B first"
    return d_a + 2


def dma_shared_stats(stats, t):
    d_a, d_b = dma_shared_times(t)
    want = (d_b - 3) + (d_a - (d_b + 1))
    assert stats["chips"][0]["stall"] == want, f"stall {stats['chips'][0]['stall']}, want {want}"


def bytes_inputs(shapes, seed):
    def make(t):
        r = rng(seed)
        return {n: r.integers(-128, 128, s).astype(np.int8) for n, s in shapes.items()}
    return make


def copy_check(pairs):
    def check(out, inp, t):
        for o, i in pairs.items():
            np.testing.assert_array_equal(out[o], inp[i], err_msg=o)
    return check


# ---- remote DMA ----

REMOTE_BYTES = 4096
REMOTE_DMA_CYCLE = 7


def remote_inputs(peer):
    def make(t):
        return {"peer": np.array(peer, np.int32),
                "src": np.arange(1024, dtype=np.float32) + 0.5}
    return make


def remote_check(peer):
    def check(out, inp, t):
        d = out["dst"]
        assert d.shape == (t.chips, 1024)
        for c in range(t.chips):
            if c == peer:
                np.testing.assert_array_equal(d[c], inp["src"], err_msg=f"chip {c}")
            else:
                assert not d[c].any(), f"chip {c} received data meant for chip {peer}"
    return check


def remote_cycles(peer):
    def cycles(t):
        k = t.hops(0, peer)
        D = REMOTE_DMA_CYCLE + t.dma_issue + k * t.hop_cycles() + \
            t.xfer_cycles(REMOTE_BYTES, t.ici_bw)
        return D + 2
    return cycles


def remote_stats(peer):
    def check(stats, t):
        route = set(t.route(0, peer))
        busy = {(l["chip"], l["axis"], l["dir"]): l for l in stats["links"]}
        assert set(busy) == route, f"links with traffic {sorted(busy)}, route {sorted(route)}"
        ser = t.xfer_cycles(REMOTE_BYTES, t.ici_bw)
        for key, link in busy.items():
            assert (link["bytes"], link["busy"], link["transfers"]) == (REMOTE_BYTES, ser, 1), key
        assert stats["dma"]["bytes_sent"] == REMOTE_BYTES
        assert stats["dma"]["bytes_received"] == REMOTE_BYTES
        assert stats["chips"][peer]["stall"] > 0 and stats["chips"][0]["stall"] > 0
    return check


# ---- ring all-reduce ----

AR_BYTES = 262144


def ring_table(t):
    ring = tm.snake_ring(t)
    p = len(ring)
    for i in range(p):
        assert t.hops(ring[i], ring[(i + 1) % p]) == 1, "a ring step is more than one hop"
    tab = np.zeros((t.chips, 4), np.int32)
    for q, c in enumerate(ring):
        tab[c] = [ring[(q + 1) % p], q, p, AR_BYTES // p]
    return tab


def allreduce_inputs(t):
    x = rng(15).integers(-2000, 2000, (t.chips, AR_BYTES // 4096, 8, 128)).astype(np.float32)
    return {"ring": ring_table(t), "x": x}


def allreduce_timing_inputs(t):
    return {"ring": ring_table(t)}


def allreduce_check(out, inp, t):
    want = inp["x"].sum(axis=0)   # integers below 2^24: exact in any order
    for c in range(t.chips):
        np.testing.assert_array_equal(out["x"][c], want, err_msg=f"chip {c}")


def allreduce_cycles(t):
    """REFERENCE.md's ring all-reduce, 2(p-1) alpha + 2(p-1) C beta + fixed costs, with
    this machine's terms: alpha = a hop, C beta = the chunk's serialization, and per step
    the DMA issue, the loop's branches and (reduce-scatter) the local add of n tiles."""
    p = t.chips
    C = AR_BYTES // p
    n = C // 4096
    I, B = t.dma_issue, t.lat["branch"]
    a, b = t.hop_cycles(), t.xfer_cycles(C, t.ici_bw)
    T0 = 12
    P_rs = I + a + b + 9 + B + (n - 1) * (7 + B)
    P_ag = I + a + b + B
    total = T0 + (p - 1) * (P_rs + P_ag) - 2 * B + 6
    assert total == T0 + 6 - 2 * B + 2 * (p - 1) * (a + b) + \
        (p - 1) * (2 * I + 9 + 2 * B + (n - 1) * (7 + B))
    return total


# ---- the table ----

SPECS = [
    Spec("scalar_loop", "scalar_loop.s", outputs=("result",),
         check=lambda o, i, t: np.testing.assert_array_equal(o["result"], [5050, 100]),
         cycles=scalar_loop_cycles),
    Spec("scalar_loop_timing", "scalar_loop.s", mode="timing", outputs=("result",),
         check=lambda o, i, t: np.testing.assert_array_equal(o["result"], [5050, 100]),
         cycles=scalar_loop_cycles),
    Spec("scalar_bnz", "scalar_bnz.s", outputs=("result",),
         check=lambda o, i, t: np.testing.assert_array_equal(o["result"], [fib(40), fib(41)]),
         cycles=scalar_bnz_cycles),
    Spec("vector_f32", "vector_f32.s", inputs=vector_f32_inputs, outputs=("out", "mask"),
         check=vector_f32_check,
         cycles=lambda t: max(14 + 1, 13 + t.lat["vstore"])),
    Spec("vector_i32", "vector_i32.s", inputs=vector_i32_inputs, outputs=("out", "outf"),
         check=vector_i32_check,
         cycles=lambda t: max(18 + 1, 17 + t.lat["vstore"])),
    Spec("transcendental", "transcendental.s", inputs=transcendental_inputs,
         outputs=("out",), check=transcendental_check,
         cycles=lambda t: max(11 + 1, 10 + t.lat["vstore"])),
    Spec("mxu_matmul", "mxu_matmul.s", inputs=mxu_inputs, outputs=("out",),
         check=mxu_check, cycles=mxu_cycles),
    Spec("dma_local", "dma_local.s", inputs=bytes_inputs({"src": (10, 4004)}, 16),
         outputs=("dst",), check=dma_local_check, cycles=dma_local_cycles),
    Spec("dma_shared", "dma_shared.s",
         inputs=bytes_inputs({"a": (20000,), "b": (6000,)}, 17), outputs=("ca", "cb"),
         check=copy_check({"ca": "a", "cb": "b"}), cycles=dma_shared_cycles,
         stats=dma_shared_stats),
]

# Remote DMAs from chip 0 on a 4x4 torus: tiny's wraps (peer 12 = (3, 0) is one hop
# through the wraparound, 15 = (3, 3) two), v5e-like's 4x4 slice does not (peer 12 is
# three hops in a straight line).
REMOTE_CASES = [("tiny", 1, 1), ("tiny", 12, 1), ("tiny", 15, 2), ("tiny", 6, 3),
                ("v5e-like", 4, 1), ("v5e-like", 5, 2), ("v5e-like", 12, 3)]
for _target, _peer, _k in REMOTE_CASES:
    SPECS.append(Spec(f"dma_remote_{_target}_peer{_peer}_k{_k}", "dma_remote.s",
                      target=_target, torus="4x4", inputs=remote_inputs(_peer),
                      outputs=("dst",), check=remote_check(_peer),
                      cycles=remote_cycles(_peer), stats=remote_stats(_peer),
                      tags=(("hops", _k),)))

for _torus in ["1x4", "2x2x2", "4x4"]:
    SPECS.append(Spec(f"allreduce_ring_{_torus}", "allreduce_ring.s", torus=_torus,
                      inputs=allreduce_inputs, outputs=("x",), check=allreduce_check,
                      cycles=allreduce_cycles))
SPECS.append(Spec("allreduce_ring_v4-like_4x4x4_timing", "allreduce_ring.s",
                  target="v4-like", torus="4x4x4", mode="timing",
                  inputs=allreduce_timing_inputs, cycles=allreduce_cycles))
