"""tileref, the reference evaluator, against numpy written independently: rounding
to bf16 and f16, integer arithmetic, the structural ops, control flow, the example
programs, and its errors. (Its composites are checked in test_decompose.py.)"""
import struct
from pathlib import Path

import numpy as np
import pytest

import tileref

ROOT = Path(__file__).resolve().parents[2]


def run1(body, params, result, *args, func="f"):
    """Evaluates a one-function program: `func @f(PARAMS) -> RESULT { BODY }`."""
    text = f"func @{func}({params}) -> {result} {{\n{body}\n}}\n"
    return tileref.parse(text).run(func, *args)


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def from_bits(b):
    return struct.unpack("<f", struct.pack("<I", b))[0]


# ---- rounding ----

def test_bf16_rounds_to_nearest_even():
    one = 1.0
    ulp = 2.0 ** -7  # bf16 has 8 significant bits
    cases = [
        (one + ulp / 2, one),                  # halfway: to the even neighbour, 1.0
        (one + 3 * ulp / 2, one + 2 * ulp),    # halfway: to the even neighbour above
        (one + ulp / 2 + 2 ** -20, one + ulp),  # above halfway
        (-(one + ulp / 2), -one),
        (3.3962e38, np.inf),                   # past the largest bf16 and its half ulp
        (3.3961e38, 3.3895314e38),             # short of the half ulp: the largest bf16
        (-1e39, -np.inf),
        (1e-45, 0.0),                          # float32's smallest subnormal is too small
    ]
    x = np.array([c[0] for c in cases], np.float64)
    got = tileref.round_bf16(x)
    assert got.dtype == np.float32
    assert list(got) == [np.float32(c[1]) for c in cases]
    # float32 input takes the same path on its bits
    assert tileref.round_bf16(np.float32(one + ulp / 2)) == np.float32(one)
    # the low 16 bits are always clear
    r = tileref.round_bf16(np.random.default_rng(0).standard_normal(1000))
    assert not np.any(r.view(np.uint32) & 0xFFFF)


def test_bf16_from_float64_rounds_once():
    """1 + 2^-8 + 2^-30 is just above halfway between two bf16 values; rounding it
    to float32 first (nearest) would land exactly on halfway and then round down."""
    x = 1.0 + 2.0 ** -8 + 2.0 ** -30
    assert np.float32(x) == np.float32(1.0 + 2.0 ** -8)  # the double-rounding trap
    assert tileref.round_bf16(np.array([x]))[0] == np.float32(1.0 + 2.0 ** -7)
    assert tileref.round_bf16(np.array([-x]))[0] == np.float32(-(1.0 + 2.0 ** -7))


def test_bf16_keeps_nan_signed_zero_and_infinity():
    x = np.array([np.nan, -0.0, np.inf, -np.inf], np.float32)
    got = tileref.round_bf16(x)
    assert np.isnan(got[0])
    assert f32_bits(got[1]) == 0x80000000
    assert got[2] == np.inf and got[3] == -np.inf
    # a signalling-NaN pattern whose payload sits in the low bits stays a NaN
    snan = np.array([from_bits(0x7F800001)], np.float32)
    assert np.isnan(tileref.round_bf16(snan)[0])


def test_convert_rounds_and_truncates():
    x = np.array([1.0 + 2 ** -8, 65520.0, -2.75, 2.5], np.float32)
    bf, = run1("  %r = convert %x : tensor<4xbf16>\n  return %r",
               "%x: tensor<4xf32>", "tensor<4xbf16>", x)
    assert list(bf) == [1.0, 65536.0, -2.75, 2.5]
    half, = run1("  %r = convert %x : tensor<4xf16>\n  return %r",
                 "%x: tensor<4xf32>", "tensor<4xf16>", x)
    assert list(half) == [1.0 + 2 ** -8, np.inf, -2.75, 2.5]  # 65520 rounds past f16's largest
    ints, = run1("  %r = convert %x : tensor<4xi32>\n  return %r",
                 "%x: tensor<4xf32>", "tensor<4xi32>", np.array([2.9, -2.9, 0.5, -0.0]))
    assert ints.dtype == np.int32 and list(ints) == [2, -2, 0, 0]
    flags, = run1("  %r = convert %x : tensor<3xi1>\n  return %r",
                  "%x: tensor<3xi32>", "tensor<3xi1>", np.array([0, 7, -2]))
    assert list(flags) == [False, True, True]
    wrapped, = run1("  %r = convert %x : tensor<2xi8>\n  return %r",
                    "%x: tensor<2xi32>", "tensor<2xi8>", np.array([200, -129]))
    assert list(wrapped) == [-56, 127]


@pytest.mark.parametrize("value", [np.nan, 3e9, -3e9, np.inf])
def test_convert_out_of_range_is_an_error(value):
    with pytest.raises(tileref.TileRefError, match="convert: tensor<1xi32> has no value"):
        run1("  %r = convert %x : tensor<1xi32>\n  return %r",
             "%x: tensor<1xf32>", "tensor<1xi32>", np.array([value]))


# ---- arithmetic ----

def test_integer_division_truncates_and_wraps():
    a = np.array([7, -7, 7, -7, 2**31 - 1], np.int32)
    b = np.array([2, 2, -2, -2, 1], np.int32)
    q, r, s = run1("  %q = div %a, %b : tensor<5xi32>\n"
                   "  %r = rem %a, %b : tensor<5xi32>\n"
                   "  %s = add %a, %a : tensor<5xi32>\n"
                   "  return %q, %r, %s",
                   "%a: tensor<5xi32>, %b: tensor<5xi32>",
                   "(tensor<5xi32>, tensor<5xi32>, tensor<5xi32>)", a, b)
    assert list(q) == [3, -3, -3, 3, 2**31 - 1]
    assert list(r) == [1, -1, 1, -1, 0]
    assert s[4] == -2  # 2^32 - 2 wraps


def test_integer_division_by_zero_is_an_error():
    with pytest.raises(tileref.TileRefError, match="integer division by zero"):
        run1("  %q = div %a, %b : tensor<2xi32>\n  return %q",
             "%a: tensor<2xi32>, %b: tensor<2xi32>", "tensor<2xi32>",
             np.array([1, 2]), np.array([1, 0]))


def test_i1_arithmetic_is_modulo_two():
    t = np.array([False, True, True])
    u = np.array([False, False, True])
    s, x, n = run1("  %s = add %t, %u : tensor<3xi1>\n"
                   "  %x = xor %t, %u : tensor<3xi1>\n"
                   "  %n = not %t : tensor<3xi1>\n"
                   "  return %s, %x, %n",
                   "%t: tensor<3xi1>, %u: tensor<3xi1>",
                   "(tensor<3xi1>, tensor<3xi1>, tensor<3xi1>)", t, u)
    assert s.dtype == np.bool_
    assert list(s) == [False, True, False] and list(x) == list(s)
    assert list(n) == [True, False, False]


def test_f32_ops_round_each_result():
    # 1 + 2^-24 is not a float32: the sum rounds to 1, as on the machine.
    r, = run1("  %r = add %a, %b : f32\n  return %r", "%a: f32, %b: f32", "f32",
              np.float32(1.0), np.float32(2.0 ** -24))
    assert r == np.float32(1.0) and r.shape == ()


def test_bf16_ops_round_to_bf16():
    r, = run1("  %r = mul %a, %b : tensor<1xbf16>\n  return %r",
              "%a: tensor<1xbf16>, %b: tensor<1xbf16>", "tensor<1xbf16>",
              np.array([1.0 + 2 ** -7]), np.array([1.0 + 2 ** -7]))
    # (1 + 2^-7)^2 = 1 + 2^-6 + 2^-14: the last term is lost
    assert r[0] == np.float32(1.0 + 2 ** -6)


# ---- structure ----

def test_dot_general_matches_einsum():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    b = rng.standard_normal((5, 2, 6, 4)).astype(np.float32)
    r, = run1("  %r = dot_general %a, %b {lhs_batch = [0], rhs_batch = [1], "
              "lhs_contract = [3, 2], rhs_contract = [0, 3]} : tensor<2x3x6xf32>\n  return %r",
              "%a: tensor<2x3x4x5xf32>, %b: tensor<5x2x6x4xf32>", "tensor<2x3x6xf32>", a, b)
    want = np.einsum("zmkc,cznk->zmn", a.astype(np.float64),
                     b.astype(np.float64))
    assert np.allclose(r, want, rtol=1e-6, atol=1e-6)


def test_matmul_batched_and_widening():
    rng = np.random.default_rng(2)
    a = tileref.round_bf16(rng.standard_normal((2, 3, 4)))
    b = tileref.round_bf16(rng.standard_normal((4, 5)))
    r, = run1("  %r = matmul %a, %b : tensor<2x3x5xf32>\n  return %r",
              "%a: tensor<2x3x4xbf16>, %b: tensor<4x5xbf16>", "tensor<2x3x5xf32>", a, b)
    assert np.allclose(r, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-6)


def test_reduce_broadcast_transpose_slice_concatenate():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    outs = run1(
        "  %s = reduce %x {kind = add, dims = [0, 2]} : tensor<3xf32>\n"
        "  %m = reduce %x {kind = max, dims = [1]} : tensor<2x4xf32>\n"
        "  %b = broadcast %s {dims = [1]} : tensor<2x3x4xf32>\n"
        "  %t = transpose %x {perm = [2, 0, 1]} : tensor<4x2x3xf32>\n"
        "  %l = slice %x {start = [0, 1, 0], limit = [2, 3, 4], stride = [1, 1, 3]}"
        " : tensor<2x2x2xf32>\n"
        "  %c = concatenate %x, %x {dim = 1} : tensor<2x6x4xf32>\n"
        "  %r = reshape %x : tensor<6x4xf32>\n"
        "  return %s, %m, %b, %t, %l, %c, %r",
        "%x: tensor<2x3x4xf32>",
        "(tensor<3xf32>, tensor<2x4xf32>, tensor<2x3x4xf32>, tensor<4x2x3xf32>, "
        "tensor<2x2x2xf32>, tensor<2x6x4xf32>, tensor<6x4xf32>)", x)
    s, m, b, t, l, c, r = outs
    assert np.array_equal(s, x.sum(axis=(0, 2)))
    assert np.array_equal(m, x.max(axis=1))
    assert np.array_equal(b, np.broadcast_to(s[None, :, None], (2, 3, 4)))
    assert np.array_equal(t, x.transpose(2, 0, 1))
    assert np.array_equal(l, x[:, 1:3, 0:4:3])
    assert np.array_equal(c, np.concatenate([x, x], axis=1))
    assert np.array_equal(r, x.reshape(6, 4))


def test_gather_iota_argmax_topk():
    table = np.arange(12, dtype=np.float32).reshape(3, 4)
    idx = np.array([[2, 0], [1, 1]], np.int32)
    g, = run1("  %g = gather %t, %i {axis = 1} : tensor<2x2x3xf32>\n  return %g",
              "%t: tensor<3x4xf32>, %i: tensor<2x2xi32>", "tensor<2x2x3xf32>", table, idx)
    # indices' shape first, then the table's dims without the axis
    assert np.array_equal(g, np.moveaxis(table[:, idx], 0, -1))
    with pytest.raises(tileref.TileRefError, match="index out of range"):
        run1("  %g = gather %t, %i {axis = 0} : tensor<1x4xf32>\n  return %g",
             "%t: tensor<3x4xf32>, %i: tensor<1xi32>", "tensor<1x4xf32>", table, np.array([3]))

    io, = run1("  %r = iota {dim = 1} : tensor<2x3xi32>\n  return %r", "", "tensor<2x3xi32>")
    assert io.tolist() == [[0, 1, 2], [0, 1, 2]]

    x = np.array([[1, 5, 5, 2, 5], [0, -1, 3, 3, 9]], np.float32)
    am, = run1("  %r = argmax %x {dim = 1} : tensor<2xi32>\n  return %r",
               "%x: tensor<2x5xf32>", "tensor<2xi32>", x)
    assert am.tolist() == [1, 4]  # the first maximum
    v, i = run1("  %v, %i = topk %x {k = 3} : tensor<2x3xf32>, tensor<2x3xi32>\n  return %v, %i",
                "%x: tensor<2x5xf32>", "(tensor<2x3xf32>, tensor<2x3xi32>)", x)
    assert v.tolist() == [[5, 5, 5], [9, 3, 3]]
    assert i.tolist() == [[1, 2, 4], [4, 2, 3]]  # ties keep the lower index first


def test_constants_splat_and_arrays():
    a, b, c = run1("  %a = constant {value = 0.1} : tensor<2xbf16>\n"
                   "  %b = constant {value = [1, 2, 3, 4]} : tensor<2x2xi32>\n"
                   "  %c = constant {value = -inf} : f32\n"
                   "  return %a, %b, %c", "", "(tensor<2xbf16>, tensor<2x2xi32>, f32)")
    assert a[0] == tileref.round_bf16(np.array([0.1]))[0]
    assert b.tolist() == [[1, 2], [3, 4]]
    assert c == -np.inf


# ---- control flow and the examples ----

def test_control_flow_example():
    mod = tileref.load(ROOT / "examples" / "control_flow.tile")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((16, 128)).astype(np.float32)
    w = (rng.standard_normal((128, 128)) / 16).astype(np.float32)
    for training in (True, False):
        h, n = mod.run("main", x, w, np.array(training))
        s = x.astype(np.float64) * (1.25 if training else 1.0)
        for i in range(8):
            s = np.tanh(s @ w) if i % 2 == 0 else 1 / (1 + np.exp(-s))
            s = s.astype(np.float32).astype(np.float64)
        assert n == 8 and n.dtype == np.int32
        assert np.allclose(h, s, rtol=1e-5, atol=1e-6)

    lo = np.full((16, 128), -0.5, np.float32)
    hi = np.full((16, 128), 0.5, np.float32)
    r, = mod.run("clamp", x, lo, hi)
    assert np.array_equal(r, np.clip(x, -0.5, 0.5) / 8)


def test_sampling_example():
    mod = tileref.load(ROOT / "examples" / "sampling.tile")
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((4, 32000)).astype(np.float32)
    table = rng.integers(-100, 100, (32000, 512)).astype(np.float32)  # exact in bf16
    ids, emb = mod.run("next_token", logits, table)
    assert ids.tolist() == np.argmax(logits, axis=1).tolist()
    assert np.array_equal(emb, table[ids])
    p, top = mod.run("top_k", logits)
    best = np.argsort(-logits, axis=1)[:, :40]
    assert np.array_equal(np.sort(top, axis=1), np.sort(best, axis=1))
    assert np.allclose(p.sum(axis=1), 1, rtol=1e-6)
    lse, = mod.run("log_sum_exp", logits)
    want = np.log(np.exp(logits.astype(np.float64)).sum(axis=1))
    assert np.allclose(lse, want, rtol=1e-6)


# ---- what it does not evaluate, and bad text ----

def test_collectives_kernels_and_f8_are_not_evaluated():
    mod = tileref.parse("mesh @tp = torus<4>(x)\n"
                        "func @f(%p: tensor<8xf32>) -> tensor<8xf32> {\n"
                        "  %y = all_reduce %p {kind = add, axes = [x]} : tensor<8xf32>\n"
                        "  return %y\n"
                        "}\n")
    with pytest.raises(NotImplementedError, match="<text>:3:8: all_reduce: collectives"):
        mod.run("f", np.zeros(8))
    kernel = tileref.load(ROOT / "examples" / "dma_pipeline.tile")
    name = next(iter(kernel.funcs))
    with pytest.raises(NotImplementedError, match="is a kernel"):
        kernel.run(name, *[None] * len(kernel.funcs[name].params))
    with pytest.raises(NotImplementedError, match="f8 types are storage-only"):
        run1("  return %x", "%x: tensor<2xf8E4M3FN>", "tensor<2xf8E4M3FN>", np.zeros(2))


@pytest.mark.parametrize("text,message", [
    ("func @f(%x: tensor<2xf32>) -> tensor<2xf32> {\n  %y = exp %x : tensor<2xq7>\n}\n",
     r"<text>:2:17: unknown element type 'q7'"),
    ("func @f(%x: f32) -> f32 {\n  %y = exp %x\n  return %y\n}\n",
     r"<text>:2:8: 1 results named but 0 types given"),
    ("func @f() {\n  return\n", r"<text>:3:1: unterminated block"),
    ("garbage", r"<text>:1:1: expected 'func', 'kernel' or 'mesh'"),
    ("func @f() { $ }", r"<text>:1:13: unexpected character '\$'"),
])
def test_parse_errors_have_locations(text, message):
    with pytest.raises(tileref.TileRefError, match=message):
        tileref.parse(text)


def test_arguments_are_checked():
    mod = tileref.parse("func @f(%x: tensor<2xf32>) -> tensor<2xf32> {\n  return %x\n}\n")
    with pytest.raises(tileref.TileRefError, match="takes 1 arguments, got 2"):
        mod.run("f", np.zeros(2), np.zeros(2))
    with pytest.raises(tileref.TileRefError, match=r"shape \(3,\) but its type is tensor<2xf32>"):
        mod.run("f", np.zeros(3))
    with pytest.raises(tileref.TileRefError, match="no function @g"):
        mod.run("g")
