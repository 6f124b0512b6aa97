"""The kernel suite as data: one row per kernel of examples/kernels/, each with the
template its `.tile` text is made from, how to make its inputs, a numpy reference, the
tolerance class of each result, and the shapes the tests run on each target.

    render(kernel, shape) -> the .tile text of the kernel at that shape
    kernel.example        -> examples/kernels/NAME.tile, the template at the serving shape

Templates are string.Template text (`${M}`; the .tile syntax itself never uses `$`).
Every file in examples/kernels/ is its template rendered at the kernel's serving shape,
byte for byte; `python3 tests/e2e/kernel_specs.py --write` rewrites them after a
template changes, and test_kernels.py fails while they disagree.

Numerics (shared/REFERENCE.md, "Numeric tolerances"): references are computed in
float64 from the inputs as the machine sees them (bf16 inputs already rounded), and a
result is compared by its class:
    matmul   NMSE <= 5e-4 (bf16 in, f32 accumulation: matmuls, attention)
    softmax  NMSE <= 1e-6
    ew       NMSE <= 1e-7 (f32 elementwise and norms), against the reference rounded
             to the result's element type, so a bf16 result is held to its own rounding
    exact    equal (gather rows, argmax and top-k indices and values)
Any NaN fails; infinities must match in place and sign; a reference that is all zeros
needs a result that is all zeros.

Run as a program: `--write` regenerates examples/kernels/, `--list` prints every
test case (kernel, target, shape, input case)."""
import math
import string
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tileref  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "kernels"

LIMITS = {"matmul": 5e-4, "softmax": 1e-6, "ew": 1e-7, "exact": 0.0}


# ---- element types and .npy files ----

def round_to(x, elem):
    """float64 (or any) values rounded once to elem, held as numpy arrays the way the
    tests hand them to tilec: f32 and bf16 as float32, i32 as int32."""
    if elem == "bf16":
        return tileref.round_bf16(np.asarray(x, np.float64))
    if elem == "f32":
        return np.asarray(x, np.float64).astype(np.float32)
    if elem == "i32":
        return np.asarray(x).astype(np.int32)
    raise ValueError(f"no rounding to {elem}")


def to_npy(a, elem):
    """The array tilec reads for a symbol of type elem: bf16 as raw 16-bit words (`|V2`,
    the top half of the f32 bits, as ml_dtypes writes them), others as they are."""
    if elem == "bf16":
        bits = np.ascontiguousarray(a, np.float32).view(np.uint32)
        assert not np.any(bits & 0xFFFF), "a bf16 input must already be rounded to bf16"
        return (bits >> 16).astype(np.uint16).view(np.dtype("V2"))
    return np.ascontiguousarray(a)


def from_npy(a, elem):
    """What tilec wrote for a result of type elem, as float32 / int32."""
    if elem == "bf16":
        assert a.dtype.itemsize == 2, f"a bf16 result must have 2-byte elements, got {a.dtype}"
        return (np.ascontiguousarray(a).view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    want = {"f32": np.float32, "i32": np.int32}[elem]
    assert a.dtype == want, f"result dtype {a.dtype}, want {np.dtype(want)}"
    return a


def check(ref, got, klass, what):
    """REFERENCE.md's comparison for class klass; returns the NMSE (0 for exact)."""
    ref = np.asarray(ref)
    got = np.asarray(got)
    assert ref.shape == got.shape, f"{what}: shape {got.shape}, want {ref.shape}"
    if klass == "exact":
        bad = np.flatnonzero(ref.ravel() != got.ravel())
        assert bad.size == 0, (f"{what}: {bad.size} of {ref.size} elements differ, first at "
                               f"index {np.unravel_index(bad[0], ref.shape)}: got "
                               f"{got.ravel()[bad[0]]!r}, want {ref.ravel()[bad[0]]!r}")
        return 0.0
    ref = ref.astype(np.float64)
    got = got.astype(np.float64)
    assert not np.isnan(ref).any(), f"{what}: NaN in the reference (a bad test case)"
    nan = np.isnan(got)
    assert not nan.any(), (f"{what}: {int(nan.sum())} NaN in the result, first at "
                           f"{np.unravel_index(np.flatnonzero(nan)[0], got.shape)}")
    inf = np.isinf(ref)
    assert np.array_equal(inf, np.isinf(got)), f"{what}: infinities in different places"
    assert np.array_equal(ref[inf], got[inf]), f"{what}: infinities of different signs"
    err = float(np.sum((ref[~inf] - got[~inf]) ** 2))
    energy = float(np.sum(ref[~inf] ** 2))
    if energy == 0:
        assert err == 0, f"{what}: the reference is all zeros, the result is not"
        return 0.0
    nmse = err / energy
    worst = np.unravel_index(np.argmax(np.abs(ref - got) * ~inf), ref.shape)
    assert nmse <= LIMITS[klass], (f"{what}: NMSE {nmse:.3g} > {LIMITS[klass]:g} ({klass}); "
                                   f"largest error at {worst}: got {got[worst]!r}, "
                                   f"want {ref[worst]!r}")
    return nmse


# ---- the table ----

@dataclass
class Param:
    name: str
    elem: str
    shape: Callable  # shape dict -> tuple of dims


@dataclass
class Result:
    symbol: str      # `result`, `result1`, ... (the driver's names for a func's results)
    elem: str
    klass: str       # a key of LIMITS


@dataclass
class Case:
    """One test: a kernel at a shape on a target with one input case."""
    kernel: "Kernel"
    target: str
    shape: dict
    inputs: str = "random"  # "random" or a key of kernel.edges
    seed: int = 0

    @property
    def id(self):
        dims = "-".join(f"{k}{v}" for k, v in self.shape.items())
        extra = "" if self.inputs == "random" else f"-{self.inputs}"
        seed = f"-seed{self.seed}" if self.seed else ""
        return f"{self.kernel.name}-{self.target}-{dims}{extra}{seed}"


@dataclass
class Kernel:
    name: str                      # examples/kernels/NAME.tile
    func: str                      # the func's name in the template
    template: str
    params: List[Param]
    results: List[Result]
    reference: Callable            # (inputs dict, shape) -> list of arrays, one per result
    serving: dict                  # the example's shape (bench/run kernels measures it)
    tests: List[Tuple[str, dict]]  # (target, shape) cases run on random inputs
    edges: Dict[str, Callable] = field(default_factory=dict)  # name -> (rng, shape) -> inputs
    edge_shape: Optional[Tuple[str, dict]] = None  # where edge cases run (default: first test)
    derive: Callable = lambda s: {}  # more template values from the shape
    random: Optional[Callable] = None  # (rng, shape) -> inputs; default: normal(0, 1) floats

    @property
    def example(self):
        return EXAMPLES / f"{self.name}.tile"

    def values(self, shape):
        v = dict(shape)
        v.update(self.derive(shape))
        return v

    def make_inputs(self, case_name, shape, seed=0):
        rng = np.random.default_rng(seed)
        if case_name == "random":
            raw = self.random(rng, shape) if self.random else {}
            for p in self.params:
                if p.name not in raw:
                    raw[p.name] = rng.standard_normal(p.shape(shape))
        else:
            raw = self.edges[case_name](rng, shape)
        out = {}
        for p in self.params:
            a = raw[p.name]
            assert tuple(np.shape(a)) == tuple(p.shape(shape)), (self.name, p.name)
            out[p.name] = round_to(a, p.elem)
        return out

    def cases(self):
        """Each test shape on seed 0, the first shape on two more seeds, and the edge
        cases on the edge shape."""
        out = [Case(self, t, s) for t, s in self.tests]
        out += [Case(self, *self.tests[0], seed=seed) for seed in (1, 2)]
        target, shape = self.edge_shape or self.tests[0]
        out += [Case(self, target, shape, name) for name in self.edges]
        return out


def render(kernel, shape):
    return string.Template(kernel.template).substitute(kernel.values(shape))


def tensor(shape, elem):
    return "tensor<%s>" % "x".join([str(d) for d in shape] + [elem])


# ---- references (float64) ----

def gelu(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / np.sum(e, axis=axis, keepdims=True)


def attention(q, k, v, scale, causal):
    """q [B, H, Sq, D], k and v [B, Hkv, Sk, D]; query head h reads K/V head h / (H/Hkv);
    the causal mask is top-left (query i sees keys j <= i)."""
    group = q.shape[1] // k.shape[1]
    k = np.repeat(k, group, axis=1)
    v = np.repeat(v, group, axis=1)
    s = np.einsum("bhqd,bhkd->bhqk", q, k) * scale
    if causal:
        sq, sk = s.shape[-2:]
        s = np.where(np.arange(sq)[:, None] >= np.arange(sk)[None, :], s, -np.inf)
    return np.einsum("bhqk,bhkd->bhqd", softmax(s), v)


def topk(x, k):
    """The k largest of the last dim, descending, ties to the lower index (the op table
    and tileref's rule)."""
    n = x.shape[-1]
    order = np.argsort(x[..., ::-1], axis=-1, kind="stable")[..., ::-1][..., :k]
    idx = n - 1 - order
    return np.take_along_axis(x, idx, axis=-1), idx


def f64(a):
    return np.asarray(a, np.float64)


# ---- input cases ----

def scaled(factors):
    """Normal(0, 1) inputs times a factor per parameter (edge: large magnitudes)."""
    def make(rng, s, params):
        return {p.name: rng.standard_normal(p.shape(s)) * factors.get(p.name, 1.0)
                for p in params}
    return make


def zeros_of(*names):
    """Normal(0, 1) inputs with the named ones all zeros."""
    def make(rng, s, params):
        return {p.name: (np.zeros(p.shape(s)) if p.name in names
                         else rng.standard_normal(p.shape(s))) for p in params}
    return make


def neg_inf_holes(name, frac=0.3):
    """-inf at random places of one input, every row keeping at least one finite value
    (a mask applied to logits); other inputs normal."""
    def make(rng, s, params):
        out = {p.name: rng.standard_normal(p.shape(s)) for p in params}
        x = out[name]
        mask = rng.random(x.shape) < frac
        keep = np.argmax(rng.random(x.shape), axis=-1)[..., None]
        np.put_along_axis(mask, keep, False, axis=-1)
        x[mask] = -np.inf
        return out
    return make


def ties(name, levels=4):
    """Values drawn from a few levels, so every row has many equal maxima, plus -inf."""
    def make(rng, s, params):
        out = {p.name: rng.standard_normal(p.shape(s)) for p in params}
        x = rng.integers(0, levels, size=out[name].shape).astype(np.float64)
        x[rng.random(x.shape) < 0.1] = -np.inf
        out[name] = x
        return out
    return make


def bind(kernel_params, make):
    return lambda rng, s: make(rng, s, kernel_params)


# ---- the kernels ----

def _header(file, ins, outs):
    """The command line of a header comment, for the given inputs and results."""
    return (f"//   tilec run examples/kernels/{file}.tile --target v5e-like \\\n"
            f"//       {' '.join(f'--in {n}={n}.npy' for n in ins)} \\\n"
            f"//       {' '.join(f'--out {r}={r}.npy' for r in outs)} --stats\n")


KERNELS: List[Kernel] = []


def kernel(**kw):
    k = Kernel(**kw)
    # Edge makers are written against the kernel's parameters; bind them now.
    k.edges = {n: bind(k.params, m) for n, m in k.edges.items()}
    KERNELS.append(k)
    return k


def mm_params(a="a", b="b"):
    return [Param(a, "bf16", lambda s: (s["M"], s["K"])),
            Param(b, "bf16", lambda s: (s["K"], s["N"]))]


def mm_ref(x, s):
    return [f64(x["a"]) @ f64(x["b"])]


MM_EDGES = {
    "zeros": zeros_of("a"),
    # |products| up to about 1e35: far from f32's 3.4e38, far outside bf16 test data
    "large": scaled({"a": 1e18, "b": 1e17}),
}

kernel(
    name="matmul", func="matmul",
    template=(
        "// bf16 matrix multiply, square: C [${M}x${N}] = A [${M}x${K}] x B [${K}x${N}].\n"
        "// Inputs in bf16, products accumulated in f32 on the matrix units, C rounded\n"
        "// to bf16 once at the end.\n//\n" + _header("matmul", ["a", "b"], ["result"]) +
        "\n"
        "func @matmul(%a: tensor<${M}x${K}xbf16>, %b: tensor<${K}x${N}xbf16>)\n"
        "    -> tensor<${M}x${N}xbf16> {\n"
        "  %c = matmul %a, %b : tensor<${M}x${N}xbf16>\n"
        "  return %c\n"
        "}\n"),
    params=mm_params(), results=[Result("result", "bf16", "matmul")], reference=mm_ref,
    serving=dict(M=1024, K=1024, N=1024),
    tests=[("tiny", dict(M=128, K=128, N=128)), ("tiny", dict(M=256, K=384, N=128)),
           ("v5e-like", dict(M=512, K=512, N=512)), ("v5e-like", dict(M=256, K=1024, N=768))],
    edges=MM_EDGES)

kernel(
    name="matmul_decode", func="decode_matmul",
    template=(
        "// bf16 matrix multiply, decode shape: a batch of ${M} token activations x [${M}x${K}]\n"
        "// times a weight matrix w [${K}x${N}] (a feed-forward up-projection). Tall and\n"
        "// skinny: every weight is used by only ${M} rows, so the kernel is bound by reading w\n"
        "// from HBM once. f32 accumulation, result rounded to bf16.\n//\n" +
        _header("matmul_decode", ["x", "w"], ["result"]) + "\n"
        "func @decode_matmul(%x: tensor<${M}x${K}xbf16>, %w: tensor<${K}x${N}xbf16>)\n"
        "    -> tensor<${M}x${N}xbf16> {\n"
        "  %y = matmul %x, %w : tensor<${M}x${N}xbf16>\n"
        "  return %y\n"
        "}\n"),
    params=mm_params("x", "w"), results=[Result("result", "bf16", "matmul")],
    reference=lambda x, s: [f64(x["x"]) @ f64(x["w"])],
    serving=dict(M=8, K=4096, N=14336),
    tests=[("tiny", dict(M=8, K=512, N=1024)), ("tiny", dict(M=1, K=256, N=384)),
           ("v5e-like", dict(M=8, K=2048, N=4096))],
    edges={"large": scaled({"x": 1e18, "w": 1e17})})

kernel(
    name="matmul_ragged", func="matmul_ragged",
    template=(
        "// bf16 matrix multiply whose sizes are not multiples of the machine's tiles\n"
        "// (8 rows x 128 lanes, 128 x 128 MXU): C [${M}x${N}] = A [${M}x${K}] x B [${K}x${N}],\n"
        "// f32 accumulation and an f32 result. The padding the kernel adds in VMEM must\n"
        "// add nothing to C.\n//\n" + _header("matmul_ragged", ["a", "b"], ["result"]) + "\n"
        "func @matmul_ragged(%a: tensor<${M}x${K}xbf16>, %b: tensor<${K}x${N}xbf16>)\n"
        "    -> tensor<${M}x${N}xf32> {\n"
        "  %c = matmul %a, %b : tensor<${M}x${N}xf32>\n"
        "  return %c\n"
        "}\n"),
    params=mm_params(), results=[Result("result", "f32", "matmul")], reference=mm_ref,
    serving=dict(M=1000, K=1000, N=1000),
    tests=[("tiny", dict(M=100, K=300, N=200)), ("tiny", dict(M=1, K=129, N=257)),
           ("tiny", dict(M=7, K=9, N=130)), ("v5e-like", dict(M=1000, K=777, N=555))],
    edges=MM_EDGES)


def bias_gelu_ref(x, s):
    h = f64(x["x"]) @ f64(x["w"]) + f64(x["bias"])[None, :]
    return [gelu(h)]


kernel(
    name="matmul_bias_gelu", func="matmul_bias_gelu",
    template=(
        "// A feed-forward layer's first half, fused: y = gelu(x w + bias), with x [${M}x${K}]\n"
        "// and w [${K}x${N}] in bf16, the product and the bias add in f32, gelu in its tanh\n"
        "// form, y rounded to bf16. The bias add, gelu and the rounding run on each\n"
        "// result tile as it leaves the matrix unit (one fusion group).\n//\n" +
        _header("matmul_bias_gelu", ["x", "w", "bias"], ["result"]) + "\n"
        "func @matmul_bias_gelu(%x: tensor<${M}x${K}xbf16>, %w: tensor<${K}x${N}xbf16>,\n"
        "                       %bias: tensor<${N}xf32>) -> tensor<${M}x${N}xbf16> {\n"
        "  %h = matmul %x, %w : tensor<${M}x${N}xf32>\n"
        "  %b = broadcast %bias {dims = [1]} : tensor<${M}x${N}xf32>\n"
        "  %z = add %h, %b : tensor<${M}x${N}xf32>\n"
        "  %g = gelu %z : tensor<${M}x${N}xf32>\n"
        "  %y = convert %g : tensor<${M}x${N}xbf16>\n"
        "  return %y\n"
        "}\n"),
    params=mm_params("x", "w") + [Param("bias", "f32", lambda s: (s["N"],))],
    results=[Result("result", "bf16", "matmul")], reference=bias_gelu_ref,
    serving=dict(M=1024, K=1024, N=4096),
    tests=[("tiny", dict(M=128, K=256, N=256)), ("tiny", dict(M=100, K=200, N=300)),
           ("v5e-like", dict(M=256, K=512, N=1024))],
    edges={"zeros": zeros_of("x", "bias"), "large": scaled({"x": 30.0, "bias": 100.0})})

kernel(
    name="softmax", func="softmax",
    template=(
        "// Softmax over the rows of x [${R}x${C}] (f32): exp(x - max) / sum(exp(x - max)),\n"
        "// each row on its own. -inf entries (masked positions) give probability 0.\n//\n" +
        _header("softmax", ["x"], ["result"]) + "\n"
        "func @softmax(%x: tensor<${R}x${C}xf32>) -> tensor<${R}x${C}xf32> {\n"
        "  %p = softmax %x {dim = 1} : tensor<${R}x${C}xf32>\n"
        "  return %p\n"
        "}\n"),
    params=[Param("x", "f32", lambda s: (s["R"], s["C"]))],
    results=[Result("result", "f32", "softmax")],
    reference=lambda x, s: [softmax(f64(x["x"]))],
    serving=dict(R=2048, C=2048),
    tests=[("tiny", dict(R=8, C=1000)), ("tiny", dict(R=37, C=300)), ("tiny", dict(R=1, C=128)),
           ("v5e-like", dict(R=16, C=32000)), ("v5e-like", dict(R=512, C=2048))],
    edges={"neg_inf": neg_inf_holes("x"), "large": scaled({"x": 1e4}), "zeros": zeros_of("x")})

NORM_EDGES = {"zeros": zeros_of("x"), "large": scaled({"x": 1e10})}


def layernorm_ref(x, s):
    a = f64(x["x"])
    mean = a.mean(axis=-1, keepdims=True)
    var = ((a - mean) ** 2).mean(axis=-1, keepdims=True)
    return [(a - mean) / np.sqrt(var + float(s["eps"])) * f64(x["gamma"]) + f64(x["beta"])]


def rows_constant(rng, s, params):
    """Rows that are one value each (variance 0): the result is beta."""
    out = {p.name: rng.standard_normal(p.shape(s)) for p in params}
    out["x"] = np.repeat(rng.standard_normal((s["R"], 1)) * 100, s["C"], axis=1)
    return out


def offset_rows(rng, s, params):
    """A large mean and a small spread: the centred variance must not cancel."""
    out = {p.name: rng.standard_normal(p.shape(s)) for p in params}
    out["x"] = 1000.0 + 8.0 * rng.standard_normal((s["R"], s["C"]))
    return out


kernel(
    name="layernorm", func="layernorm",
    template=(
        "// Layer normalization of the rows of x [${R}x${C}] (bf16): (x - mean) /\n"
        "// sqrt(var + ${eps}) * gamma + beta, mean and variance over each row, computed\n"
        "// in f32 (two passes over the row, so a large mean does not cancel the\n"
        "// variance), the result rounded to bf16.\n//\n" +
        _header("layernorm", ["x", "gamma", "beta"], ["result"]) + "\n"
        "func @layernorm(%x: tensor<${R}x${C}xbf16>, %gamma: tensor<${C}xbf16>,\n"
        "                %beta: tensor<${C}xbf16>) -> tensor<${R}x${C}xbf16> {\n"
        "  %y = layernorm %x, %gamma, %beta {eps = ${eps}} : tensor<${R}x${C}xbf16>\n"
        "  return %y\n"
        "}\n"),
    params=[Param("x", "bf16", lambda s: (s["R"], s["C"])),
            Param("gamma", "bf16", lambda s: (s["C"],)),
            Param("beta", "bf16", lambda s: (s["C"],))],
    results=[Result("result", "bf16", "ew")], reference=layernorm_ref,
    serving=dict(R=2048, C=4096, eps="1e-05"),
    tests=[("tiny", dict(R=16, C=512, eps="1e-05")), ("tiny", dict(R=13, C=200, eps="1e-05")),
           ("v5e-like", dict(R=256, C=4096, eps="1e-05"))],
    edges={**NORM_EDGES, "constant_rows": rows_constant, "offset": offset_rows})


def rmsnorm_ref(x, s):
    a = f64(x["x"])
    return [a / np.sqrt((a * a).mean(axis=-1, keepdims=True) + float(s["eps"])) * f64(x["gamma"])]


kernel(
    name="rmsnorm", func="rmsnorm",
    template=(
        "// RMS normalization of the rows of x [${R}x${C}] (bf16), as Llama-style models\n"
        "// use it: x / sqrt(mean(x^2) + ${eps}) * gamma, computed in f32, rounded to bf16.\n//\n" +
        _header("rmsnorm", ["x", "gamma"], ["result"]) + "\n"
        "func @rmsnorm(%x: tensor<${R}x${C}xbf16>, %gamma: tensor<${C}xbf16>)\n"
        "    -> tensor<${R}x${C}xbf16> {\n"
        "  %y = rmsnorm %x, %gamma {eps = ${eps}} : tensor<${R}x${C}xbf16>\n"
        "  return %y\n"
        "}\n"),
    params=[Param("x", "bf16", lambda s: (s["R"], s["C"])),
            Param("gamma", "bf16", lambda s: (s["C"],))],
    results=[Result("result", "bf16", "ew")], reference=rmsnorm_ref,
    serving=dict(R=2048, C=4096, eps="1e-05"),
    tests=[("tiny", dict(R=16, C=512, eps="1e-05")), ("tiny", dict(R=5, C=300, eps="1e-05")),
           ("v5e-like", dict(R=256, C=4096, eps="1e-05"))],
    edges=NORM_EDGES)


def rope_ref(x, s):
    a = f64(x["x"])
    c, sn = f64(x["cos"]), f64(x["sin"])
    h = a.shape[-1] // 2
    x1, x2 = a[..., :h], a[..., h:]
    return [np.concatenate([x1 * c - x2 * sn, x2 * c + x1 * sn], axis=-1)]


def rope_tables(rng, s):
    """cos and sin of real rotary angles: position p, frequency 10000^(-2i/D)."""
    half = s["D"] // 2
    ang = np.arange(s["S"])[:, None] * 10000.0 ** (-np.arange(half)[None, :] / half)
    return {"cos": np.cos(ang), "sin": np.sin(ang)}


def rope_random(rng, s):
    out = rope_tables(rng, s)
    out["x"] = rng.standard_normal((s["B"], s["H"], s["S"], s["D"]))
    return out


def rope_edge(factor):
    def make(rng, s, params):
        out = rope_tables(rng, s)
        out["x"] = rng.standard_normal((s["B"], s["H"], s["S"], s["D"])) * factor
        return out
    return make


kernel(
    name="rope", func="rope",
    template=(
        "// Rotary position embedding of queries x [${B}x${H}x${S}x${D}] (batch, heads,\n"
        "// positions, head dim) in bf16: each head vector's halves x1, x2 become\n"
        "// (x1 cos - x2 sin, x2 cos + x1 sin) with the position's cos, sin [${S}x${D2}],\n"
        "// computed in f32 and rounded to bf16.\n//\n" +
        _header("rope", ["x", "cos", "sin"], ["result"]) + "\n"
        "func @rope(%x: tensor<${B}x${H}x${S}x${D}xbf16>, %cos: tensor<${S}x${D2}xbf16>,\n"
        "           %sin: tensor<${S}x${D2}xbf16>) -> tensor<${B}x${H}x${S}x${D}xbf16> {\n"
        "  %y = rope %x, %cos, %sin : tensor<${B}x${H}x${S}x${D}xbf16>\n"
        "  return %y\n"
        "}\n"),
    params=[Param("x", "bf16", lambda s: (s["B"], s["H"], s["S"], s["D"])),
            Param("cos", "bf16", lambda s: (s["S"], s["D"] // 2)),
            Param("sin", "bf16", lambda s: (s["S"], s["D"] // 2))],
    results=[Result("result", "bf16", "ew")], reference=rope_ref,
    derive=lambda s: {"D2": s["D"] // 2}, random=rope_random,
    serving=dict(B=1, H=32, S=2048, D=128),
    tests=[("tiny", dict(B=1, H=2, S=64, D=128)), ("tiny", dict(B=2, H=3, S=17, D=64)),
           ("v5e-like", dict(B=1, H=8, S=512, D=128))],
    edges={"zeros": rope_edge(0.0), "large": rope_edge(1e30)})


def attn_params():
    return [Param("q", "bf16", lambda s: (s["B"], s["H"], s["Sq"], s["D"])),
            Param("k", "bf16", lambda s: (s["B"], s["Hkv"], s["Sk"], s["D"])),
            Param("v", "bf16", lambda s: (s["B"], s["Hkv"], s["Sk"], s["D"]))]


def attn_scale(s):
    """1/sqrt(D), as the shortest decimal that reads back as the same double."""
    return {"scale": repr(1.0 / math.sqrt(s["D"]))}


def attn_ref(causal):
    return lambda x, s: [attention(f64(x["q"]), f64(x["k"]), f64(x["v"]),
                                   1.0 / math.sqrt(s["D"]), causal)]


ATTN_EDGES = {
    "zeros": zeros_of("q"),                    # every key equally likely: the mean of v
    "large": scaled({"q": 8.0, "k": 8.0}),     # scores in the hundreds: one-hot rows
}

kernel(
    name="attention", func="prefill_attention",
    template=(
        "// Causal self-attention of a prompt (prefill), blocked flash-style: q\n"
        "// [${B}x${H}x${Sq}x${D}] (batch, query heads, positions, head dim), k and v\n"
        "// [${B}x${Hkv}x${Sk}x${D}] with ${Hkv} K/V heads shared by groups of query heads\n"
        "// (grouped-query attention: query head h reads K/V head h / ${G}). Position i sees\n"
        "// keys j <= i; scores scaled by 1/sqrt(${D}), softmax in f32, result in bf16.\n//\n" +
        _header("attention", ["q", "k", "v"], ["result"]) + "\n"
        "func @prefill_attention(%q: tensor<${B}x${H}x${Sq}x${D}xbf16>,\n"
        "                        %k: tensor<${B}x${Hkv}x${Sk}x${D}xbf16>,\n"
        "                        %v: tensor<${B}x${Hkv}x${Sk}x${D}xbf16>)\n"
        "    -> tensor<${B}x${H}x${Sq}x${D}xbf16> {\n"
        "  %o = attention %q, %k, %v {scale = ${scale}, causal = 1}\n"
        "      : tensor<${B}x${H}x${Sq}x${D}xbf16>\n"
        "  return %o\n"
        "}\n"),
    params=attn_params(), results=[Result("result", "bf16", "matmul")],
    reference=attn_ref(True),
    derive=lambda s: {**attn_scale(s), "G": s["H"] // s["Hkv"]},
    serving=dict(B=1, H=32, Hkv=8, Sq=2048, Sk=2048, D=128),
    tests=[("tiny", dict(B=1, H=4, Hkv=2, Sq=128, Sk=128, D=64)),
           ("tiny", dict(B=2, H=2, Hkv=1, Sq=100, Sk=100, D=128)),
           ("v5e-like", dict(B=1, H=8, Hkv=2, Sq=512, Sk=512, D=128))],
    edges=ATTN_EDGES)

kernel(
    name="decode_attention", func="decode_attention",
    template=(
        "// Attention of one new token per sequence over its KV cache (decode): q\n"
        "// [${B}x${H}x1x${D}] for a batch of ${B} sequences, the cache k, v\n"
        "// [${B}x${Hkv}x${Sk}x${D}] of ${Sk} positions, every position visible (no mask).\n"
        "// The ${G} query heads that share a K/V head read it together, so K and V are read\n"
        "// from HBM once: the kernel is bound by that read. Softmax in f32, result in bf16.\n//\n" +
        _header("decode_attention", ["q", "k", "v"], ["result"]) + "\n"
        "func @decode_attention(%q: tensor<${B}x${H}x1x${D}xbf16>,\n"
        "                       %k: tensor<${B}x${Hkv}x${Sk}x${D}xbf16>,\n"
        "                       %v: tensor<${B}x${Hkv}x${Sk}x${D}xbf16>)\n"
        "    -> tensor<${B}x${H}x1x${D}xbf16> {\n"
        "  %o = attention %q, %k, %v {scale = ${scale}} : tensor<${B}x${H}x1x${D}xbf16>\n"
        "  return %o\n"
        "}\n"),
    params=attn_params(), results=[Result("result", "bf16", "matmul")],
    reference=attn_ref(False),
    derive=lambda s: {**attn_scale(s), "G": s["H"] // s["Hkv"]},
    serving=dict(B=8, H=32, Hkv=8, Sq=1, Sk=4096, D=128),
    tests=[("tiny", dict(B=2, H=4, Hkv=1, Sq=1, Sk=256, D=64)),
           ("tiny", dict(B=1, H=8, Hkv=8, Sq=1, Sk=130, D=128)),
           ("v5e-like", dict(B=8, H=32, Hkv=8, Sq=1, Sk=1024, D=128))],
    edges=ATTN_EDGES)


def gather_random(rng, s):
    return {"ids": rng.integers(0, s["V"], size=(s["N"],))}


def gather_bounds(rng, s, params):
    """The first and last rows, and repeats of both."""
    ids = rng.integers(0, s["V"], size=(s["N"],))
    ids[0::4] = 0
    ids[1::4] = s["V"] - 1
    ids[2::4] = ids[2]
    return {"table": rng.standard_normal((s["V"], s["D"])), "ids": ids}


kernel(
    name="embedding", func="embed",
    template=(
        "// Embedding lookup: the rows of a token table [${V}x${D}] (bf16) for ${N} token\n"
        "// ids (numpy take along axis 0). Pure data movement: each row is copied from\n"
        "// HBM to HBM by DMA, many in flight.\n//\n" +
        _header("embedding", ["table", "ids"], ["result"]) + "\n"
        "func @embed(%table: tensor<${V}x${D}xbf16>, %ids: tensor<${N}xi32>)\n"
        "    -> tensor<${N}x${D}xbf16> {\n"
        "  %rows = gather %table, %ids {axis = 0} : tensor<${N}x${D}xbf16>\n"
        "  return %rows\n"
        "}\n"),
    params=[Param("table", "bf16", lambda s: (s["V"], s["D"])),
            Param("ids", "i32", lambda s: (s["N"],))],
    results=[Result("result", "bf16", "exact")],
    reference=lambda x, s: [np.take(x["table"], x["ids"], axis=0)],
    random=gather_random,
    serving=dict(V=128256, D=4096, N=2048),
    tests=[("tiny", dict(V=1000, D=128, N=16)), ("tiny", dict(V=300, D=200, N=7)),
           ("v5e-like", dict(V=32000, D=512, N=256))],
    edges={"bounds": gather_bounds})

kernel(
    name="argmax", func="greedy",
    template=(
        "// Greedy decoding: the index of the largest logit in each of ${B} rows of\n"
        "// logits [${B}x${V}] (f32); the first index wins a tie.\n//\n" +
        _header("argmax", ["logits"], ["result"]) + "\n"
        "func @greedy(%logits: tensor<${B}x${V}xf32>) -> tensor<${B}xi32> {\n"
        "  %ids = argmax %logits {dim = 1} : tensor<${B}xi32>\n"
        "  return %ids\n"
        "}\n"),
    params=[Param("logits", "f32", lambda s: (s["B"], s["V"]))],
    results=[Result("result", "i32", "exact")],
    reference=lambda x, s: [np.argmax(x["logits"], axis=-1)],
    serving=dict(B=32, V=128256),
    tests=[("tiny", dict(B=4, V=1000)), ("tiny", dict(B=1, V=128)), ("tiny", dict(B=3, V=32000)),
           ("v5e-like", dict(B=16, V=128256))],
    edges={"ties": ties("logits"), "neg_inf": neg_inf_holes("logits", 0.9),
           "large": scaled({"logits": 1e30})})


def sampling_ref(x, s):
    """Values and ids of the top k, the probabilities of the k at temperature 0.8
    (logits times 1.25, an f32 multiply), and the Gumbel-max draw argmax(s + g), the
    adds in f32 as the program does them."""
    vals, ids = topk(x["logits"], s["k"])
    scaled_ = (vals.astype(np.float32) * np.float32(1.25)).astype(np.float32)
    noisy = (scaled_ + x["gumbel"].astype(np.float32)).astype(np.float32)
    return [softmax(f64(scaled_)), ids, np.argmax(noisy, axis=-1)]


def gumbel_noise(rng, shape):
    u = rng.random(shape)
    return -np.log(-np.log(np.clip(u, 1e-12, 1 - 1e-12)))


def sampling_random(rng, s):
    return {"logits": rng.standard_normal((s["B"], s["V"])) * 3.0,
            "gumbel": gumbel_noise(rng, (s["B"], s["k"]))}


def sampling_edge(make_logits):
    def make(rng, s, params):
        out = make_logits(rng, s, params)
        out["gumbel"] = gumbel_noise(rng, (s["B"], s["k"]))
        return out
    return make


kernel(
    name="topk_sampling", func="sample_top_k",
    template=(
        "// Top-k sampling of the next token for ${B} rows of logits [${B}x${V}] (f32):\n"
        "// the ${k} largest logits and their ids (descending, ties to the lower id), their\n"
        "// probabilities at temperature 0.8 (softmax of logits / 0.8 over the ${k}), and a\n"
        "// draw among them by the Gumbel-max trick: with g = -log(-log(u)) for uniform u\n"
        "// (given, one per candidate), pick = argmax(logits / 0.8 + g) is distributed as\n"
        "// the probabilities. The token drawn for row b is ids[b, pick[b]].\n//\n" +
        _header("topk_sampling", ["logits", "gumbel"], ["result", "result1", "result2"]) + "\n"
        "func @sample_top_k(%logits: tensor<${B}x${V}xf32>, %gumbel: tensor<${B}x${k}xf32>)\n"
        "    -> (tensor<${B}x${k}xf32>, tensor<${B}x${k}xi32>, tensor<${B}xi32>) {\n"
        "  %vals, %ids = topk %logits {k = ${k}} : tensor<${B}x${k}xf32>, tensor<${B}x${k}xi32>\n"
        "  // 1 / 0.8 = 1.25 exactly\n"
        "  %inv_t = constant {value = 1.25} : tensor<${B}x${k}xf32>\n"
        "  %s = mul %vals, %inv_t : tensor<${B}x${k}xf32>\n"
        "  %p = softmax %s {dim = 1} : tensor<${B}x${k}xf32>\n"
        "  %noisy = add %s, %gumbel : tensor<${B}x${k}xf32>\n"
        "  %pick = argmax %noisy {dim = 1} : tensor<${B}xi32>\n"
        "  return %p, %ids, %pick\n"
        "}\n"),
    params=[Param("logits", "f32", lambda s: (s["B"], s["V"])),
            Param("gumbel", "f32", lambda s: (s["B"], s["k"]))],
    results=[Result("result", "f32", "softmax"), Result("result1", "i32", "exact"),
             Result("result2", "i32", "exact")],
    reference=sampling_ref, random=sampling_random,
    serving=dict(B=32, V=128256, k=40),
    tests=[("tiny", dict(B=4, V=1000, k=8)), ("tiny", dict(B=2, V=5000, k=40)),
           ("tiny", dict(B=1, V=128, k=1)), ("v5e-like", dict(B=8, V=32000, k=64))],
    edges={"ties": sampling_edge(ties("logits")),
           "neg_inf": sampling_edge(neg_inf_holes("logits", 0.5)),
           "large": sampling_edge(scaled({"logits": 1e30}))})


BY_NAME = {k.name: k for k in KERNELS}


def all_cases():
    return [c for k in KERNELS for c in k.cases()]


def write_examples():
    EXAMPLES.mkdir(parents=True, exist_ok=True)
    for k in KERNELS:
        k.example.write_text(render(k, k.serving))
        print(k.example.relative_to(ROOT))


def main(argv):
    if argv[1:] == ["--write"]:
        write_examples()
    elif argv[1:] == ["--list"]:
        for c in all_cases():
            print(c.id)
    else:
        print(__doc__.split("\n\n")[0])
        print("usage: kernel_specs.py --write | --list", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
