"""The decompose pass, numerically: each composite (and whole programs built from
them) evaluated by tileref as written, composites straight from their formulas,
and as `tilec --emit=decomposed` prints it, on random inputs from fixed seeds and
on edge values, compared with the tolerances of shared/REFERENCE.md:

    NMSE = sum((a - b)^2) / sum(a^2) <= 1e-6 for softmax and attention (f32),
                                        1e-7 for f32 elementwise ops and norms;
    any NaN fails; infinities must match in place and sign.

Narrow inputs (bf16, f16) round the same exact results to the narrow type on both
sides, so they are held to the same bounds. tileref itself is checked against
independent numpy formulas for every composite (test_tileref_matches_formulas)."""
import math
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

import tileref

ROOT = Path(__file__).resolve().parents[2]
COMPOSITES = {"softmax", "layernorm", "rmsnorm", "gelu", "silu", "rope", "attention"}
SOFTMAX_NMSE = 1e-6
ELEMENTWISE_NMSE = 1e-7


def check_close(ref, got, limit, what):
    """REFERENCE.md's comparison: NMSE of the finite values, NaN fails, infinities
    match in place and sign."""
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    assert ref.shape == got.shape, what
    assert not np.isnan(ref).any(), f"{what}: NaN in the reference"
    assert not np.isnan(got).any(), f"{what}: NaN in the decomposed result"
    inf = np.isinf(ref)
    assert np.array_equal(inf, np.isinf(got)), f"{what}: infinities in different places"
    assert np.array_equal(ref[inf], got[inf]), f"{what}: infinities of different signs"
    err = np.sum((ref[~inf] - got[~inf]) ** 2)
    energy = np.sum(ref[~inf] ** 2)
    if energy == 0:
        assert err == 0, f"{what}: reference is all zero, result is not"
        return 0.0
    nmse = err / energy
    assert nmse <= limit, f"{what}: NMSE {nmse:.3g} > {limit:g}"
    return nmse


def ops_in(block):
    for op in block.ops:
        yield op
        for region in op.regions:
            yield from ops_in(region)


def decompose(tilec, tmp_path, text):
    src = tmp_path / "prog.tile"
    src.write_text(text)
    run = subprocess.run([str(tilec), str(src), "--emit=decomposed"], capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr
    mod = tileref.parse(run.stdout, "decomposed")
    left = [op.name for f in mod.funcs.values() for op in ops_in(f.body) if op.name in COMPOSITES]
    assert not left, f"composites left after decompose: {left}"
    return mod


def compare(tilec, tmp_path, text, func, arg_sets, limit):
    """Runs func before and after decompose on every set of arguments."""
    before = tileref.parse(text, "original")
    after = decompose(tilec, tmp_path, text)
    worst = 0.0
    for label, args in arg_sets:
        want = before.run(func, *args)
        got = after.run(func, *args)
        for i, (a, b) in enumerate(zip(want, got)):
            worst = max(worst, check_close(a, b, limit, f"@{func} {label} result {i + 1}"))
    return worst


# ---- programs, one composite each ----

def tensor(shape, elem):
    return "tensor<%s>" % "x".join([str(d) for d in shape] + [elem])


def program(op, operands, attrs=""):
    """func @f over the given (shape, elem) operands, returning `op` of them; the
    result has the first operand's type. A shape of None is a scalar."""
    types = [elem if shape is None else tensor(shape, elem) for shape, elem in operands]
    params = ", ".join(f"%a{i}: {t}" for i, t in enumerate(types))
    args = ", ".join(f"%a{i}" for i in range(len(types)))
    attrs = f" {{{attrs}}}" if attrs else ""
    return (f"func @f({params}) -> {types[0]} {{\n"
            f"  %r = {op} {args}{attrs} : {types[0]}\n"
            f"  return %r\n"
            f"}}\n")


def arg_sets(text, seeds=(0, 1, 2), scales=(1.0,), edits=()):
    """Random arguments of @f from each seed at each scale; then each edit, a
    function (name, args -> args) applied to the first seed's arguments."""
    f = tileref.parse(text).func("f")
    sets = []
    for seed in seeds:
        for scale in scales:
            args = tileref.random_args(f, seed)
            args = [tileref.fit(a * scale, t) for a, (_, t, _) in zip(args, f.params)]
            sets.append((f"seed {seed} scale {scale:g}", args))
    base = tileref.random_args(f, seeds[0])
    for name, edit in edits:
        sets.append((name, [tileref.fit(a, t) for a, (_, t, _) in zip(edit(base), f.params)]))
    return sets


def zeros(args):
    return [np.zeros_like(a) for a in args]


def zero_first(args):
    return [np.zeros_like(args[0])] + list(args[1:])


def tails(args):
    """The first operand from the far tails of an activation and +inf: where gelu and
    silu go to 0 or to x through the saturated tanh (silu's h + h tanh(h) cancels to
    0 below about -17, where x logistic(x) is tiny), never NaN."""
    x = np.array(args[0], np.float64)
    pattern = np.array([-1e4, -100, -30, -20, -17, -10, -3, 3, 10, 17, 20, 30, 100, 1e4, np.inf])
    flat = np.resize(pattern, x.size).reshape(x.shape)
    return [flat] + list(args[1:])


def masked_rows(dim):
    """-inf at random places of the first operand, one finite entry kept in every
    slice along dim (a softmax input with a mask applied)."""
    def edit(args):
        x = np.array(args[0], np.float64)
        rng = np.random.default_rng(7)
        mask = rng.random(x.shape) < 0.4
        keep = np.expand_dims(np.argmax(rng.random(x.shape), axis=dim), dim)
        np.put_along_axis(mask, keep, False, axis=dim)
        x[mask] = -np.inf
        return [x] + list(args[1:])
    return edit


DTYPES = ["f32", "bf16", "f16"]

SOFTMAX = [((4, 33), 1), ((4, 33), 0), ((2, 3, 5), 1), ((7,), 0)]


@pytest.mark.parametrize("elem", DTYPES)
@pytest.mark.parametrize("shape,dim", SOFTMAX, ids=[f"{s}-dim{d}" for s, d in SOFTMAX])
def test_softmax(tilec, tmp_path, elem, shape, dim):
    text = program("softmax", [(shape, elem)], f"dim = {dim}")
    sets = arg_sets(text, scales=(1.0, 30.0, 1e4 if elem != "f16" else 1e3),
                    edits=[("zeros", zeros), ("masked -inf", masked_rows(dim))])
    compare(tilec, tmp_path, text, "f", sets, SOFTMAX_NMSE)


NORM_SHAPES = [(4, 64), (2, 3, 16), (32,)]


@pytest.mark.parametrize("elem", DTYPES)
@pytest.mark.parametrize("shape", NORM_SHAPES, ids=str)
@pytest.mark.parametrize("eps", [1e-5, 0.25])
def test_layernorm(tilec, tmp_path, elem, shape, eps):
    text = program("layernorm", [(shape, elem), (shape[-1:], elem), (shape[-1:], elem)],
                   f"eps = {eps!r}")
    big = 1e15 if elem != "f16" else 1e3
    sets = arg_sets(text, scales=(1.0, big), edits=[("zeros", zeros), ("zero input", zero_first)])
    compare(tilec, tmp_path, text, "f", sets, ELEMENTWISE_NMSE)


@pytest.mark.parametrize("elem", DTYPES)
@pytest.mark.parametrize("shape", NORM_SHAPES, ids=str)
@pytest.mark.parametrize("eps", [1e-6, 0.25])
def test_rmsnorm(tilec, tmp_path, elem, shape, eps):
    text = program("rmsnorm", [(shape, elem), (shape[-1:], elem)], f"eps = {eps!r}")
    big = 1e15 if elem != "f16" else 1e3
    sets = arg_sets(text, scales=(1.0, big), edits=[("zeros", zeros), ("zero input", zero_first)])
    compare(tilec, tmp_path, text, "f", sets, ELEMENTWISE_NMSE)


ELEMENTWISE_SHAPES = [(8, 32), (3, 4, 5), None]


@pytest.mark.parametrize("op", ["gelu", "silu"])
@pytest.mark.parametrize("elem", DTYPES)
@pytest.mark.parametrize("shape", ELEMENTWISE_SHAPES, ids=str)
def test_activation(tilec, tmp_path, op, elem, shape):
    text = program(op, [(shape, elem)])
    big = 1e15 if elem != "f16" else 8e3  # f16 tops out at 65504
    sets = arg_sets(text, scales=(1.0, 8.0, big), edits=[("zeros", zeros), ("tails", tails)])
    compare(tilec, tmp_path, text, "f", sets, ELEMENTWISE_NMSE)


ROPE = [(2, 3, 8, 16), (8, 4), (1, 5, 6)]


@pytest.mark.parametrize("elem", DTYPES)
@pytest.mark.parametrize("shape", ROPE, ids=str)
def test_rope(tilec, tmp_path, elem, shape):
    s, d = shape[-2], shape[-1]
    text = program("rope", [(shape, elem), ((s, d // 2), elem), ((s, d // 2), elem)])
    sets = arg_sets(text, scales=(1.0, 1e15 if elem != "f16" else 1e2),
                    edits=[("zeros", zeros), ("zero input", zero_first)])
    compare(tilec, tmp_path, text, "f", sets, ELEMENTWISE_NMSE)


# (q shape, k shape, causal): plain, grouped heads, Sq < Sk and Sq > Sk with a mask
ATTENTION = [((2, 4, 5, 8), (2, 4, 7, 8), 0),
             ((2, 4, 5, 8), (2, 4, 7, 8), 1),
             ((1, 8, 6, 16), (1, 2, 6, 16), 1),
             ((1, 4, 3, 8), (1, 1, 9, 8), 1),
             ((1, 2, 9, 8), (1, 2, 4, 8), 1),
             ((1, 6, 4, 4), (1, 3, 4, 4), 0)]


@pytest.mark.parametrize("elem", DTYPES)
@pytest.mark.parametrize("q,k,causal", ATTENTION,
                         ids=[f"{q}-{k}-causal{c}" for q, k, c in ATTENTION])
def test_attention(tilec, tmp_path, elem, q, k, causal):
    scale = 1 / math.sqrt(q[-1])
    text = program("attention", [(q, elem), (k, elem), (k, elem)],
                   f"scale = {scale!r}, causal = {causal}")
    sets = arg_sets(text, scales=(1.0, 10.0), edits=[("zeros", zeros)])
    compare(tilec, tmp_path, text, "f", sets, SOFTMAX_NMSE)


def test_fully_masked_softmax_rows_are_nan_on_both_sides(tilec, tmp_path):
    """A row that is -inf everywhere has no softmax (0/0); the decomposition gives
    NaN exactly where the formula does, and the other rows agree."""
    text = program("softmax", [((3, 6), "f32")], "dim = 1")
    x = np.random.default_rng(3).standard_normal((3, 6)).astype(np.float32)
    x[1, :] = -np.inf
    want, = tileref.parse(text).run("f", x)
    got, = decompose(tilec, tmp_path, text).run("f", x)
    assert np.array_equal(np.isnan(want), np.isnan(got))
    assert np.isnan(want[1]).all()
    check_close(want[[0, 2]], got[[0, 2]], SOFTMAX_NMSE, "finite rows")


# ---- whole programs ----

CONTROL = """
func @f(%x: tensor<4x16xf32>, %w: tensor<16xf32>, %b: tensor<16xf32>, %t: i1) -> tensor<4x16xf32> {
  %r = for %i = 0 to 3 step 1 iter(%acc = %x) : tensor<4x16xf32> {
    %n = layernorm %acc, %w, %b {eps = 1e-05} : tensor<4x16xf32>
    %y = if %t : tensor<4x16xf32> {
      %g = gelu %n : tensor<4x16xf32>
      yield %g
    } else {
      %s = silu %n : tensor<4x16xf32>
      yield %s
    }
    %p = softmax %y {dim = 1} : tensor<4x16xf32>
    %z = add %p, %y : tensor<4x16xf32>
    yield %z
  }
  %o = call @norm(%r, %w) : tensor<4x16xf32>
  return %o
}

func @norm(%v: tensor<4x16xf32>, %g: tensor<16xf32>) -> tensor<4x16xf32> {
  %m = rmsnorm %v, %g {eps = 1e-06} : tensor<4x16xf32>
  return %m
}
"""


def test_composites_in_regions_and_calls(tilec, tmp_path):
    f = tileref.parse(CONTROL).func("f")
    sets = []
    for seed in range(3):
        for branch in (True, False):
            args = tileref.random_args(f, seed)
            args[3] = np.array(branch)
            sets.append((f"seed {seed} branch {branch}", args))
    compare(tilec, tmp_path, CONTROL, "f", sets, SOFTMAX_NMSE)


# examples/mlp.tile on one chip: no mesh, no sharding, and so no all_reduce (the
# one partial sum is the whole); smaller sizes, the same ops and types.
MLP = """
func @f(%x: tensor<8x256xbf16>, %w1: tensor<256x1024xbf16>, %w2: tensor<1024x256xbf16>)
    -> tensor<8x256xbf16> {
  %h = matmul %x, %w1 : tensor<8x1024xbf16>
  %g = gelu %h : tensor<8x1024xbf16>
  %p = matmul %g, %w2 : tensor<8x256xf32>
  %r = convert %p : tensor<8x256xbf16>
  return %r
}
"""

# A gated feed-forward block with its norm, in bf16 as served.
SWIGLU = """
func @f(%x: tensor<4x128xbf16>, %g: tensor<128xbf16>, %wg: tensor<128x384xbf16>,
        %wu: tensor<128x384xbf16>, %wd: tensor<384x128xbf16>) -> tensor<4x128xbf16> {
  %n = rmsnorm %x, %g {eps = 1e-05} : tensor<4x128xbf16>
  %gate = matmul %n, %wg : tensor<4x384xf32>
  %up = matmul %n, %wu : tensor<4x384xf32>
  %act = silu %gate : tensor<4x384xf32>
  %mix = mul %act, %up : tensor<4x384xf32>
  %mixb = convert %mix : tensor<4x384xbf16>
  %down = matmul %mixb, %wd : tensor<4x128xf32>
  %xf = convert %x : tensor<4x128xf32>
  %sum = add %xf, %down : tensor<4x128xf32>
  %out = convert %sum : tensor<4x128xbf16>
  return %out
}
"""


def scaled_args(func, seed):
    """Random arguments with matrices scaled by 1/sqrt(rows), as trained weights are,
    so activations stay near unit size through the layers."""
    args = tileref.random_args(func, seed)
    out = []
    for a, (_, t, _) in zip(args, func.params):
        if t.is_float and len(t.shape) == 2 and t.shape[0] > 64:
            a = tileref.fit(np.asarray(a, np.float64) / math.sqrt(t.shape[0]), t)
        out.append(a)
    return out


@pytest.mark.parametrize("text", [MLP, SWIGLU], ids=["mlp", "swiglu"])
def test_feed_forward_programs(tilec, tmp_path, text):
    f = tileref.parse(text).func("f")
    sets = [(f"seed {s}", scaled_args(f, s)) for s in range(2)]
    compare(tilec, tmp_path, text, "f", sets, SOFTMAX_NMSE)


def rope_tables(seq, half, base=10000.0):
    inv = base ** (-np.arange(half) / half)
    angles = np.arange(seq)[:, None] * inv[None, :]
    return np.cos(angles), np.sin(angles)


def test_decoder_layer_example(tilec, tmp_path):
    text = (ROOT / "examples" / "decoder_layer.tile").read_text()
    mod = tileref.parse(text)
    f = mod.func("decoder_layer")
    sets = []
    for seed in range(2):
        args = scaled_args(f, seed)
        names = [p[0] for p in f.params]
        cos, sin = rope_tables(*f.params[names.index("cos")][1].shape)
        args[names.index("cos")] = cos
        args[names.index("sin")] = sin
        sets.append((f"seed {seed}", args))
    compare(tilec, tmp_path, text, "decoder_layer", sets, SOFTMAX_NMSE)

    g = mod.func("attention_unfused")
    sets = [(f"seed {s}", tileref.random_args(g, s)) for s in range(2)]
    compare(tilec, tmp_path, text, "attention_unfused", sets, SOFTMAX_NMSE)


def test_sampling_example(tilec, tmp_path):
    text = (ROOT / "examples" / "sampling.tile").read_text()
    f = tileref.parse(text).func("top_k")
    sets = [(f"seed {s}", tileref.random_args(f, s)) for s in range(2)]
    compare(tilec, tmp_path, text, "top_k", sets, SOFTMAX_NMSE)


# ---- tileref's composites against independent formulas ----

def independent_softmax(x, axis):
    m = np.max(x, axis=axis, keepdims=True)
    lse = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    return np.exp(x - lse)


def independent_attention(q, k, v, scale, causal):
    b, h, sq, d = q.shape
    group = h // k.shape[1]
    out = np.zeros_like(q)
    for i in range(b):
        for j in range(h):
            kv = j // group
            s = np.einsum("qd,kd->qk", q[i, j], k[i, kv]) * scale
            if causal:
                s = np.where(np.tril(np.ones(s.shape, bool)), s, -np.inf)
            out[i, j] = independent_softmax(s, -1) @ v[i, kv]
    return out


def independent_rope(x, cos, sin):
    h = x.shape[-1] // 2
    z = (x[..., :h] + 1j * x[..., h:]) * (cos + 1j * sin)  # rotate each pair as a complex number
    return np.concatenate([z.real, z.imag], axis=-1)


def sigmoid(x):
    return 0.5 * (1 + np.tanh(x / 2))


FORMULAS = {
    "softmax": (program("softmax", [((3, 7, 5), "f32")], "dim = 1"),
                lambda x: independent_softmax(x, 1)),
    "layernorm": (program("layernorm", [((6, 24), "f32"), ((24,), "f32"), ((24,), "f32")],
                          "eps = 0.001"),
                  lambda x, g, b: (x - x.mean(-1, keepdims=True))
                  * (1 / np.sqrt(x.var(-1, keepdims=True) + 0.001)) * g + b),
    "rmsnorm": (program("rmsnorm", [((6, 24), "f32"), ((24,), "f32")], "eps = 0.001"),
                lambda x, g: x * (1 / np.sqrt(np.square(x).mean(-1, keepdims=True) + 0.001)) * g),
    # 0.5 (1 + tanh(u)) = sigmoid(2u)
    "gelu": (program("gelu", [((5, 9), "f32")]),
             lambda x: x * sigmoid(2 * math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x))),
    "silu": (program("silu", [((5, 9), "f32")]), lambda x: x * sigmoid(x)),
    "rope": (program("rope", [((2, 6, 8), "f32"), ((6, 4), "f32"), ((6, 4), "f32")]),
             independent_rope),
    "attention": (program("attention", [((2, 6, 5, 4), "f32"), ((2, 3, 7, 4), "f32"),
                                        ((2, 3, 7, 4), "f32")], "scale = 0.5, causal = 1"),
                  lambda q, k, v: independent_attention(q, k, v, 0.5, True)),
}


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_tileref_matches_formulas(name):
    text, formula = FORMULAS[name]
    assert re.search(r"= %s " % name, text)
    mod = tileref.parse(text)
    for seed in range(3):
        args = tileref.random_args(mod.func("f"), seed)
        got, = mod.run("f", *args)
        want = formula(*[np.asarray(a, np.float64) for a in args])
        # Both are float64 formulas rounded once to f32: equal but for the last bit.
        check_close(want.astype(np.float32), got, 1e-13, f"{name} seed {seed}")


def test_formulas_cover_every_composite():
    assert set(FORMULAS) == COMPOSITES
