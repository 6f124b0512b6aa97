"""tileref: a numpy reference evaluator of tensor-level Tile IR.

Reads the canonical text `tilec --emit=STAGE` prints (the grammar of docs/tile-ir.md)
and evaluates a `func` with numpy, so every pass can be checked numerically against
the program it started from:

    mod = tileref.parse(text)                  # or tileref.load("prog.tile")
    out, = mod.run("softmax_rows", x)          # one numpy array per result

Numerics. Every op is computed in float64 (integers in int64) and its result
rounded once to its element type: f32 and f16 round to nearest even; bf16 rounds
to nearest even on the f32 bits (`round_bf16`); integers wrap; i1 arithmetic is
modulo 2. Elementwise ops therefore give the correctly rounded result; reductions
and contractions accumulate in float64, more exactly than a machine would. Float
values of every element type are held as float32 arrays (each value exactly
representable in its type), integers in their own dtype, i1 as bool. Composite ops
(softmax, layernorm, rmsnorm, gelu, silu, rope, attention) are evaluated straight
from their formulas in ops.h, in float64, so a decomposition can be compared
against them. Attention's causal mask is aligned top-left (query i sees keys
j <= i); grouped K/V heads serve H/Hkv consecutive query heads each.

Collectives need a mesh: `Module.run` (one chip) raises NotImplementedError on
them; `Module.run_spmd` evaluates a per-chip program (the output of the spmd pass)
on every chip of a simulated mesh, one array per chip, and implements each
collective across the chips by its semantics in ops.h (see run_spmd).

What is not evaluated raises NotImplementedError with the reason: kernels and
tile-level ops (buffers, DMA), collectives in `run`,
and the f8 types (storage-only in the Tile IR). Undefined behaviour raises
TileRefError instead of producing a number: integer division by zero, gather
indices out of range, float-to-integer conversion of NaN or out-of-range values.

Run as a program, it evaluates a function on random inputs and prints its results:
    python3 tileref.py FILE.tile FUNC [--seed N]
"""
import math
import re
import sys

import numpy as np


class TileRefError(Exception):
    """Malformed text, or a program whose result is undefined."""


# ---------------------------------------------------------------------------
# Types

FLOAT_ELEMS = {"f32", "bf16", "f16", "f8E4M3FN", "f8E5M2"}
INT_DTYPES = {"i1": np.bool_, "i8": np.int8, "i32": np.int32, "i64": np.int64}


class Type:
    """kind: scalar, tensor, buffer, sem or token; shape () for scalars."""

    def __init__(self, kind, elem=None, shape=(), space=None):
        self.kind, self.elem, self.shape, self.space = kind, elem, tuple(shape), space

    @property
    def is_float(self):
        return self.elem in FLOAT_ELEMS

    def __eq__(self, other):
        return isinstance(other, Type) and (self.kind, self.elem, self.shape, self.space) == (
            other.kind, other.elem, other.shape, other.space)

    def __repr__(self):
        if self.kind == "scalar":
            return self.elem
        if self.kind in ("sem", "token"):
            return self.kind
        head = self.space if self.kind == "buffer" else "tensor"
        return "%s<%s>" % (head, "x".join([str(d) for d in self.shape] + [self.elem]))


def round_bf16(x):
    """Rounds to bfloat16, to nearest even on the float32 bits; returns float32.

    float64 input is first brought to float32 with round-to-odd, so the two
    roundings give the correctly rounded bf16 (rounding to nearest twice could not).
    NaN stays NaN (quiet); overflow gives infinity of the same sign."""
    x = np.asarray(x)
    if x.dtype == np.float64:
        with np.errstate(over="ignore", invalid="ignore"):
            f = x.astype(np.float32)
            inexact = (f.astype(np.float64) != x) & np.isfinite(x)
            toward0 = np.where(np.abs(f.astype(np.float64)) > np.abs(x),
                               np.nextafter(f, np.float32(0)), f)
        bits = np.where(inexact, toward0.view(np.uint32) | np.uint32(1), f.view(np.uint32))
    else:
        bits = x.astype(np.float32).view(np.uint32)
    bits = bits.astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    quiet_nan = (bits | 0x00400000) & 0xFFFF0000
    is_nan = (bits & 0x7FFFFFFF) > 0x7F800000
    out = np.where(is_nan, quiet_nan, rounded).astype(np.uint32)
    return out.view(np.float32).reshape(x.shape)


def _round_f32(x):
    with np.errstate(over="ignore"):
        return x.astype(np.float32)


def _round_f16(x):
    with np.errstate(over="ignore"):
        return x.astype(np.float16).astype(np.float32)


def _no_f8(x):
    raise NotImplementedError("the f8 types are storage-only in the Tile IR; tileref does "
                              "not evaluate them")


ROUND = {"f32": _round_f32, "bf16": round_bf16, "f16": _round_f16,
         "f8E4M3FN": _no_f8, "f8E5M2": _no_f8}


def fit(x, t, what="value"):
    """x (any numeric array) as a value of type t: float types rounded and held as
    float32, integers wrapped to their width, i1 modulo 2."""
    x = np.asarray(x)
    if t.kind not in ("scalar", "tensor"):
        raise NotImplementedError("%s has type %r; tileref evaluates tensors and scalars"
                                  % (what, t))
    if x.shape != t.shape:
        raise TileRefError("%s has shape %s but its type is %r" % (what, x.shape, t))
    if t.is_float:  # float32 rounds as it is (values held already); others from float64
        return ROUND[t.elem](x if x.dtype == np.float32 else x.astype(np.float64))
    if x.dtype.kind == "f":
        raise TileRefError("%s: a float result for the integer type %r" % (what, t))
    if t.elem == "i1":
        return x.copy() if x.dtype == np.bool_ else (x.astype(np.int64) & 1).astype(np.bool_)
    return x.astype(np.int64).astype(INT_DTYPES[t.elem])


def widen(x):
    """The form ops compute in: float64, or int64 for integers and i1."""
    x = np.asarray(x)
    return x.astype(np.float64) if x.dtype.kind == "f" else x.astype(np.int64)


# ---------------------------------------------------------------------------
# Text: tokens, then a recursive-descent parser of the canonical form

_TOKEN = re.compile(r"""
    (?P<skip>\s+|//[^\n]*)
  | (?P<type>(?:tensor|hbm|vmem|smem|torus)<[^>]*>)
  | (?P<value>%[A-Za-z0-9_.]+)
  | (?P<symbol>@[A-Za-z0-9_.]+)
  | (?P<number>-?(?:[0-9]+\.[0-9]*(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+|[0-9]+)|-inf\b)
  | (?P<string>"(?:\\.|[^"\\])*")
  | (?P<arrow>->)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<punct>[=,:()\[\]{}-])
""", re.VERBOSE)


class Token:
    def __init__(self, kind, text, line, col):
        self.kind, self.text, self.line, self.col = kind, text, line, col


def tokenize(text, filename):
    tokens, pos, line, line_start = [], 0, 1, 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise TileRefError("%s:%d:%d: unexpected character %r"
                               % (filename, line, pos - line_start + 1, text[pos]))
        if m.lastgroup != "skip":
            tokens.append(Token(m.lastgroup, m.group(), line, pos - line_start + 1))
        newlines = m.group().count("\n")
        if newlines:
            line += newlines
            line_start = m.start() + m.group().rindex("\n") + 1
        pos = m.end()
    tokens.append(Token("eof", "", line, pos - line_start + 1))
    return tokens


class Ident(str):
    """An identifier attribute (`add`, `x`)."""


class Symbol(str):
    """A symbol attribute (`@tp`), without the '@'."""


NONE = "-"  # the `-` attribute (a replicated dimension)


class Use:
    def __init__(self, name, indices=None):
        self.name, self.indices = name, indices


class Op:
    def __init__(self, name, results, operands, attrs, regions, where):
        self.name = name
        self.results = results    # [(name, Type)]
        self.operands = operands  # [Use]
        self.attrs = attrs        # {name: value}
        self.regions = regions    # [Block]
        self.where = where        # "file:line:col"


class Block:
    def __init__(self, args, ops):
        self.args, self.ops = args, ops  # args [(name, Type)]


class Func:
    def __init__(self, name, is_kernel, params, results, attrs, body):
        self.name, self.is_kernel = name, is_kernel
        self.params = params  # [(name, Type, attrs)]
        self.results, self.attrs, self.body = results, attrs, body


class Parser:
    def __init__(self, text, filename):
        self.filename = filename
        self.toks = tokenize(text, filename)
        self.i = 0

    # -- token helpers --
    def peek(self, k=0):
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def where(self, tok=None):
        tok = tok or self.peek()
        return "%s:%d:%d" % (self.filename, tok.line, tok.col)

    def error(self, msg, tok=None):
        raise TileRefError("%s: %s" % (self.where(tok), msg))

    def at(self, text):
        return self.peek().text == text and self.peek().kind in ("punct", "ident", "arrow")

    def accept(self, text):
        if self.at(text):
            self.i += 1
            return True
        return False

    def expect(self, text):
        if not self.accept(text):
            self.error("expected '%s', got '%s'" % (text, self.peek().text or "end of input"))

    def take(self, kind):
        tok = self.peek()
        if tok.kind != kind:
            self.error("expected a %s, got '%s'" % (kind, tok.text or "end of input"))
        self.i += 1
        return tok

    def comma_list(self, item, close=None):
        """item (',' item)*; empty when close comes first."""
        if close and self.at(close):
            return []
        out = [item()]
        while self.accept(","):
            out.append(item())
        return out

    # -- types and attributes --
    def type(self):
        tok = self.peek()
        if tok.kind == "type":
            self.i += 1
            head, inner = tok.text[:-1].split("<", 1)
            parts = inner.split("x")
            elem, dims = parts[-1], parts[:-1]
            if elem not in FLOAT_ELEMS and elem not in INT_DTYPES:
                self.error("unknown element type '%s'" % elem, tok)
            kind = "tensor" if head == "tensor" else "buffer"
            return Type(kind, elem, [int(d) for d in dims], None if kind == "tensor" else head)
        if tok.kind == "ident" and (tok.text in FLOAT_ELEMS or tok.text in INT_DTYPES):
            self.i += 1
            return Type("scalar", tok.text)
        if tok.kind == "ident" and tok.text in ("sem", "token"):
            self.i += 1
            return Type(tok.text)
        self.error("expected a type, got '%s'" % tok.text)

    def attr_value(self):
        tok = self.peek()
        if tok.kind == "number":
            self.i += 1
            t = tok.text
            if t == "-inf":
                return -math.inf
            return float(t) if any(c in t for c in ".eE") else int(t)
        if tok.kind == "string":
            self.i += 1
            return re.sub(r"\\(\\|\"|n|t|[0-9A-Fa-f]{2})", _unescape, tok.text[1:-1])
        if tok.kind == "symbol":
            self.i += 1
            return Symbol(tok.text[1:])
        if tok.kind == "ident":
            self.i += 1
            return {"inf": math.inf, "nan": math.nan}.get(tok.text, Ident(tok.text))
        if self.accept("-"):
            return NONE
        if self.accept("["):
            items = self.comma_list(self.attr_value, "]")
            self.expect("]")
            return items
        if self.accept("("):
            items = self.comma_list(self.attr_value, ")")
            self.expect(")")
            return tuple(items)
        self.error("expected an attribute value, got '%s'" % tok.text)

    def at_attr_dict(self):
        """A '{' that opens a dictionary: `{name =`, or `{}` before ':' or a body."""
        if not self.at("{"):
            return False
        if self.peek(1).kind == "ident" and self.peek(2).text == "=":
            return True
        return self.peek(1).text == "}" and self.peek(2).text in (":", "{")

    def attr_dict(self):
        attrs = {}
        if not self.at_attr_dict():
            return attrs
        self.expect("{")

        def item():
            name = self.take("ident").text
            self.expect("=")
            attrs[name] = self.attr_value()
        self.comma_list(item, "}")
        self.expect("}")
        return attrs

    # -- ops --
    def use(self):
        name = self.take("value").text[1:]
        if not self.accept("["):
            return Use(name)

        def index():
            tok = self.peek()
            if tok.kind == "value":
                self.i += 1
                return tok.text[1:]
            return int(self.take("number").text)
        idx = self.comma_list(index, "]")
        self.expect("]")
        return Use(name, idx)

    def block(self, args=()):
        self.expect("{")
        ops = []
        while not self.accept("}"):
            if self.peek().kind == "eof":
                self.error("unterminated block")
            ops.append(self.op())
        return Block(list(args), ops)

    def op(self):
        start = self.peek()
        names = []
        if start.kind == "value":
            names = self.comma_list(lambda: self.take("value").text[1:])
            self.expect("=")
        tok = self.take("ident")
        where = self.where(tok)
        form = {"for": self.for_op, "if": self.if_op, "call": self.call_op}.get(tok.text)
        if form:
            return form(names, where)
        operands = self.comma_list(self.use) if self.peek().kind == "value" else []
        attrs = self.attr_dict()
        types = self.comma_list(self.type) if self.accept(":") else []
        regions = []
        while self.at("{"):
            regions.append(self.block())
        return Op(tok.text, self.results(names, types, tok), operands, attrs, regions, where)

    def results(self, names, types, tok):
        if len(names) != len(types):
            self.error("%d results named but %d types given" % (len(names), len(types)), tok)
        return list(zip(names, types))

    def for_op(self, names, where):
        iv = self.take("value").text[1:]
        self.expect("=")
        bounds = {"lower": int(self.take("number").text)}
        self.expect("to")
        bounds["upper"] = int(self.take("number").text)
        self.expect("step")
        bounds["step"] = int(self.take("number").text)
        carried, inits = [], []
        if self.accept("iter"):
            self.expect("(")

            def pair():
                carried.append(self.take("value").text[1:])
                self.expect("=")
                inits.append(self.use())
            self.comma_list(pair, ")")
            self.expect(")")
        attrs = self.attr_dict()
        attrs.update(bounds)
        types = self.comma_list(self.type) if self.accept(":") else []
        args = [(iv, Type("scalar", "i32"))] + list(zip(carried, types))
        body = self.block(args)
        return Op("for", self.results(names, types, self.peek()), inits, attrs, [body], where)

    def if_op(self, names, where):
        cond = self.use()
        attrs = self.attr_dict()
        types = self.comma_list(self.type) if self.accept(":") else []
        then = self.block()
        other = self.block() if self.accept("else") else Block([], [])
        results = self.results(names, types, self.peek())
        return Op("if", results, [cond], attrs, [then, other], where)

    def call_op(self, names, where):
        callee = self.take("symbol").text[1:]
        self.expect("(")
        args = self.comma_list(self.use, ")")
        self.expect(")")
        attrs = self.attr_dict()
        attrs["callee"] = Symbol(callee)
        types = self.comma_list(self.type) if self.accept(":") else []
        return Op("call", self.results(names, types, self.peek()), args, attrs, [], where)

    # -- module --
    def func(self):
        is_kernel = self.take("ident").text == "kernel"
        name = self.take("symbol").text[1:]
        self.expect("(")

        def param():
            pname = self.take("value").text[1:]
            self.expect(":")
            ptype = self.type()
            return (pname, ptype, self.attr_dict())
        params = self.comma_list(param, ")")
        self.expect(")")
        results = []
        if self.accept("->"):
            if self.accept("("):
                results = self.comma_list(self.type, ")")
                self.expect(")")
            else:
                results = [self.type()]
        attrs = self.attr_dict() if self.accept("attributes") else {}
        body = self.block([(p[0], p[1]) for p in params])
        return Func(name, is_kernel, params, results, attrs, body)

    def module(self):
        funcs, meshes = {}, []
        while self.peek().kind != "eof":
            tok = self.peek()
            if tok.text == "mesh":
                self.i += 1
                meshes.append(self.take("symbol").text[1:])
                self.expect("=")
                self.take("type")
                self.expect("(")
                depth = 1
                while depth:  # the axes: names and sizes tileref has no use for
                    t = self.take(self.peek().kind)
                    depth += {"(": 1, ")": -1}.get(t.text, 0) if t.kind == "punct" else 0
                    if t.kind == "eof":
                        self.error("unterminated mesh")
            elif tok.text in ("func", "kernel"):
                f = self.func()
                funcs[f.name] = f
            else:
                self.error("expected 'func', 'kernel' or 'mesh', got '%s'" % tok.text)
        return Module(funcs, meshes)


def _unescape(m):
    s = m.group(1)
    return {"\\": "\\", '"': '"', "n": "\n", "t": "\t"}.get(s) or chr(int(s, 16))


# ---------------------------------------------------------------------------
# The ops: one numpy function per op name. Each takes the op and its operands
# (widened: float64 or int64) and returns its result, or a list of results; the
# evaluator rounds them to the result types.

def _rtype(op, i=0):
    return op.results[i][1]


def _err(op, msg):
    raise TileRefError("%s: %s: %s" % (op.where, op.name, msg))


def _trunc_div(op, a, b):
    if np.any(b == 0):
        _err(op, "integer division by zero")
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) != (b < 0), -q, q)


def _div(op, a, b):
    if a.dtype.kind == "f":
        return a / b
    return _trunc_div(op, a, b)


def _rem(op, a, b):
    if a.dtype.kind == "f":
        return np.fmod(a, b)
    return a - b * _trunc_div(op, a, b)


def _elementwise(fn):
    return lambda op, *args: fn(*args)


_COMPARE = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
            "gt": np.greater, "ge": np.greater_equal}
_REDUCE = {"add": np.sum, "mul": np.prod, "max": np.max, "min": np.min}


def _compare(op, a, b):
    return _COMPARE[op.attrs["dir"]](a, b)


def _select(op, c, a, b):
    return np.where(c != 0, a, b)


def _dot_general(op, lhs, rhs):
    """As StableHLO: result dims are batch, lhs free, rhs free."""
    lb, rb = op.attrs["lhs_batch"], op.attrs["rhs_batch"]
    lc, rc = op.attrs["lhs_contract"], op.attrs["rhs_contract"]
    lf = [d for d in range(lhs.ndim) if d not in lb and d not in lc]
    rf = [d for d in range(rhs.ndim) if d not in rb and d not in rc]
    size = lambda x, dims: int(np.prod([x.shape[d] for d in dims], dtype=np.int64))
    a = lhs.transpose(lb + lf + lc).reshape(size(lhs, lb), size(lhs, lf), size(lhs, lc))
    b = rhs.transpose(rb + rc + rf).reshape(size(rhs, rb), size(rhs, rc), size(rhs, rf))
    out = np.matmul(a, b)
    return out.reshape([lhs.shape[d] for d in lb + lf] + [rhs.shape[d] for d in rf])


def _reduce(op, a):
    return _REDUCE[op.attrs["kind"]](a, axis=tuple(op.attrs["dims"]))


def _broadcast(op, a):
    shape = _rtype(op).shape
    view = [1] * len(shape)
    for i, d in enumerate(op.attrs["dims"]):
        view[d] = a.shape[i]
    return np.broadcast_to(a.reshape(view), shape).copy()


def _slice(op, a):
    stride = op.attrs.get("stride") or [1] * a.ndim
    bounds = zip(op.attrs["start"], op.attrs["limit"], stride)
    return a[tuple(slice(s, l, st) for s, l, st in bounds)]


def _gather(op, a, idx):
    axis = op.attrs["axis"]
    if np.any((idx < 0) | (idx >= a.shape[axis])):
        _err(op, "index out of range [0, %d)" % a.shape[axis])
    return np.take(np.moveaxis(a, axis, 0), idx, axis=0)


def _topk(op, a):
    """The k largest along the last dim, descending; ties keep the lower index first."""
    k, n = op.attrs["k"], a.shape[-1]
    # A stable ascending sort of the reversed row, reversed, is descending with ties
    # in ascending index order; NaN sorts as the largest, as in argmax.
    order = np.argsort(a[..., ::-1], axis=-1, kind="stable")[..., ::-1][..., :k]
    idx = n - 1 - order
    return [np.take_along_axis(a, idx, axis=-1), idx]


def _convert(op, a):
    t = _rtype(op)
    if t.elem == "i1":
        return a != 0
    if t.is_float or a.dtype.kind != "f":
        return a  # rounding or wrapping is fit's
    info = np.iinfo(INT_DTYPES[t.elem])
    # The bounds are powers of two, exact as floats: -2^(n-1) <= trunc(a) < 2^(n-1).
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(a) | (np.trunc(a) < float(info.min)) | (np.trunc(a) >= -float(info.min))
    if bad.any():
        _err(op, "%r has no value for %s" % (t, a[bad].flat[0]))
    return np.trunc(a).astype(np.int64)


def _iota(op):
    t = _rtype(op)
    dim = op.attrs["dim"]
    line = np.arange(t.shape[dim]).reshape([-1 if i == dim else 1 for i in range(len(t.shape))])
    line = line.astype(np.float64) if t.is_float else line.astype(np.int64)
    return np.broadcast_to(line, t.shape).copy()


def _constant(op):
    t, v = _rtype(op), op.attrs["value"]
    dtype = np.float64 if t.is_float else np.int64
    if isinstance(v, list):
        return np.array(v, dtype=dtype).reshape(t.shape)
    return np.full(t.shape, v, dtype=dtype)


# -- composites, from their formulas in include/tile/ops.h --

def softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _softmax(op, x):
    return softmax(x, op.attrs["dim"])


def _layernorm(op, x, gamma, beta):
    mean = np.mean(x, axis=-1, keepdims=True)
    var = np.mean((x - mean) ** 2, axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + op.attrs["eps"]) * gamma + beta


def _rmsnorm(op, x, gamma):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + op.attrs["eps"]) * gamma


def _gelu(op, x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def _logistic(x):
    return 1 / (1 + np.exp(-x))


def _silu(op, x):
    return x * _logistic(x)


def _rope(op, x, cos, sin):
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def _attention(op, q, k, v):
    group = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * op.attrs["scale"]
    if op.attrs.get("causal", 0):
        sq, sk = s.shape[-2], s.shape[-1]
        s = np.where(np.arange(sq)[:, None] >= np.arange(sk)[None, :], s, -np.inf)
    return np.matmul(softmax(s, -1), v)


def _not_here(reason):
    def run(op, *args):
        raise NotImplementedError("%s: %s: %s" % (op.where, op.name, reason))
    return run


_COLLECTIVE = _not_here("collectives exchange data between the chips of a mesh; tileref "
                        "evaluates one chip's program and has no peers")
_TILE = _not_here("a tile-level op on buffers; tileref evaluates tensor-level funcs only")

OPS = {
    # elementwise
    "add": _elementwise(np.add), "sub": _elementwise(np.subtract),
    "mul": _elementwise(np.multiply), "div": _div, "rem": _rem,
    "max": _elementwise(np.maximum), "min": _elementwise(np.minimum),
    "pow": _elementwise(np.power), "and": _elementwise(np.bitwise_and),
    "or": _elementwise(np.bitwise_or), "xor": _elementwise(np.bitwise_xor),
    "neg": _elementwise(np.negative), "abs": _elementwise(np.abs),
    "not": _elementwise(np.invert), "exp": _elementwise(np.exp), "log": _elementwise(np.log),
    "sqrt": _elementwise(np.sqrt), "rsqrt": _elementwise(lambda a: 1 / np.sqrt(a)),
    "recip": _elementwise(lambda a: 1 / a), "tanh": _elementwise(np.tanh),
    "logistic": _elementwise(_logistic),
    "compare": _compare, "select": _select,
    # structure
    "matmul": _elementwise(np.matmul), "dot_general": _dot_general, "reduce": _reduce,
    "argmax": lambda op, a: np.argmax(a, axis=op.attrs["dim"]),
    "broadcast": _broadcast,
    "transpose": lambda op, a: np.transpose(a, op.attrs["perm"]),
    "reshape": lambda op, a: a.reshape(_rtype(op).shape),
    "slice": _slice,
    "concatenate": lambda op, *args: np.concatenate(args, axis=op.attrs["dim"]),
    "gather": _gather, "topk": _topk, "convert": _convert, "iota": _iota, "constant": _constant,
    # composites
    "softmax": _softmax, "layernorm": _layernorm, "rmsnorm": _rmsnorm, "gelu": _gelu,
    "silu": _silu, "rope": _rope, "attention": _attention,
    # not evaluated
    "all_reduce": _COLLECTIVE, "all_gather": _COLLECTIVE, "reduce_scatter": _COLLECTIVE,
    "all_to_all": _COLLECTIVE, "collective_permute": _COLLECTIVE,
    "ring_slice": _COLLECTIVE, "ring_concat": _COLLECTIVE,
    "alloc": _TILE, "load": _TILE, "store": _TILE, "tile_matmul": _TILE, "dma_start": _TILE,
    "dma_wait": _TILE, "semaphore": _TILE, "sem_signal": _TILE, "sem_wait": _TILE,
}


# ---------------------------------------------------------------------------
# Evaluation

class _Return(Exception):
    """Ends a region: the values of its yield or return."""

    def __init__(self, values):
        self.values = values


class Module:
    def __init__(self, funcs, meshes):
        self.funcs, self.meshes = funcs, meshes

    def func(self, name):
        if name not in self.funcs:
            raise TileRefError("no function @%s (functions: %s)" % (name, ", ".join(self.funcs)))
        return self.funcs[name]

    def run(self, name, *args):
        """Evaluates @name on args (array-likes, rounded to the parameter types);
        returns the list of its results."""
        f = self.func(name)
        if f.is_kernel:
            raise NotImplementedError("@%s is a kernel; tileref evaluates tensor-level funcs"
                                      % name)
        if len(args) != len(f.params):
            raise TileRefError("@%s takes %d arguments, got %d" % (name, len(f.params), len(args)))
        env = {}
        for (pname, ptype, _), a in zip(f.params, args):
            env[pname] = fit(np.asarray(a), ptype, "argument %%%s of @%s" % (pname, name))
        # Infinities and NaN are values like any other here, not warnings.
        with np.errstate(all="ignore"):
            return self._region(f.body, env)

    def _region(self, block, env):
        try:
            for op in block.ops:
                self._op(op, env)
        except _Return as r:
            return r.values
        return []  # a region whose empty yield the text leaves out

    def _op(self, op, env):
        args = [env[u.name] for u in op.operands]
        if op.name in ("return", "yield"):
            raise _Return(args)
        if op.name == "for":
            outs = self._for(op, args, env)
        elif op.name == "if":
            outs = self._region(op.regions[0 if args[0] else 1], env)
        elif op.name == "call":
            outs = self.run(op.attrs["callee"], *args)
        elif op.name in OPS:
            outs = OPS[op.name](op, *[widen(a) for a in args])
        else:
            raise TileRefError("%s: unknown op '%s'" % (op.where, op.name))
        if not isinstance(outs, list):
            outs = [outs]
        if len(outs) != len(op.results):
            raise TileRefError("%s: %s gave %d values for %d results"
                               % (op.where, op.name, len(outs), len(op.results)))
        for (rname, rtype), x in zip(op.results, outs):
            env[rname] = fit(x, rtype, "%s: %%%s" % (op.where, rname))

    def _for(self, op, carried, env):
        body = op.regions[0]
        iv, iters = body.args[0][0], [a[0] for a in body.args[1:]]
        for i in range(op.attrs["lower"], op.attrs["upper"], op.attrs["step"]):
            env[iv] = np.array(i, dtype=np.int32)
            env.update(zip(iters, carried))
            carried = self._region(body, env) or carried
        return carried


    def run_spmd(self, name, axes, in_shards, out_shards, *args):
        """Evaluates the per-chip func @name on every chip of a mesh whose axes are
        `axes` (an ordered dict name -> size) and returns the global results.

        Global argument i is cut into per-chip shards by in_shards[i] and the global
        results are put together from the chips' results by out_shards (shardings as
        the parser reads `shard` attributes: per dim NONE, an axis name or a tuple of
        names, major to minor). A chip's block of a dim split over axes (a, b) is
        number coord(a) * size(b) + coord(b). A collective over axes A combines the
        chips that agree on every other axis, in that order of their A coordinates."""
        f = self.func(name)
        names = list(axes)
        chips = [dict(zip(names, c)) for c in np.ndindex(*[axes[a] for a in names])]
        envs = []
        for chip in chips:
            env = {}
            for (pname, ptype, _), a, sh in zip(f.params, args, in_shards):
                env[pname] = fit(_block(np.asarray(a), sh, chip, axes), ptype,
                                 "argument %%%s of @%s" % (pname, name))
            envs.append(env)
        with np.errstate(all="ignore"):
            for op in f.body.ops:
                if op.name == "return":
                    outs = [[env[u.name] for u in op.operands] for env in envs]
                    break
                if op.name in _RING_OPS:
                    for me, env in zip(chips, envs):
                        x = _RING_OPS[op.name](op, [widen(env[u.name]) for u in op.operands],
                                               me[op.attrs["axis"]], axes[op.attrs["axis"]])
                        env[op.results[0][0]] = fit(x, op.results[0][1],
                                                    "%s: %%%s" % (op.where, op.results[0][0]))
                elif op.name in _MESH_OPS:
                    vals = [widen(env[op.operands[0].name]) for env in envs]
                    res = _MESH_OPS[op.name](op, vals, chips, axes)
                    for env, x in zip(envs, res):
                        env[op.results[0][0]] = fit(x, op.results[0][1],
                                                    "%s: %%%s" % (op.where, op.results[0][0]))
                else:
                    for env in envs:
                        self._op(op, env)
            else:
                raise TileRefError("@%s has no return" % name)
        results = []
        for i, sh in enumerate(out_shards):
            parts = [o[i] for o in outs]
            shape = [n * _parts(sh, d, axes) for d, n in enumerate(parts[0].shape)]
            full = np.zeros(shape, dtype=parts[0].dtype)
            for chip, x in zip(chips, parts):
                full[_where(sh, chip, axes, x.shape)] = x
            results.append(full)
        return results


def _dim_axes(sh, d):
    e = sh[d] if sh is not None else NONE
    return [] if e is NONE else list(e) if isinstance(e, tuple) else [e]


def _parts(sh, d, axes):
    return int(np.prod([axes[a] for a in _dim_axes(sh, d)]))


def _index(chip, axes, names):
    i = 0
    for a in names:
        i = i * axes[a] + chip[a]
    return i


def _where(sh, chip, axes, local_shape):
    return tuple(slice(_index(chip, axes, _dim_axes(sh, d)) * n,
                       (_index(chip, axes, _dim_axes(sh, d)) + 1) * n)
                 for d, n in enumerate(local_shape))


def _block(x, sh, chip, axes):
    local = [n // _parts(sh, d, axes) for d, n in enumerate(x.shape)]
    return x[_where(sh, chip, axes, local)]


def _group(chips, c, names):
    """The chips that agree with chip c off the axes `names`, in order along them."""
    me = chips[c]
    return [j for j in sorted(range(len(chips)), key=lambda j: [chips[j][a] for a in names])
            if all(chips[j][a] == me[a] for a in me if a not in names)]


_COMBINE = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _combine(kind, xs):
    out = xs[0]
    for x in xs[1:]:
        out = _COMBINE[kind](out, x)
    return out


def _mesh_all_reduce(op, vals, chips, axes):
    names = list(op.attrs["axes"])
    return [_combine(op.attrs["kind"], [vals[j] for j in _group(chips, c, names)])
            for c in range(len(chips))]


def _mesh_all_gather(op, vals, chips, axes):
    names = list(op.attrs["axes"])
    return [np.concatenate([vals[j] for j in _group(chips, c, names)], axis=op.attrs["dim"])
            for c in range(len(chips))]


def _mesh_reduce_scatter(op, vals, chips, axes):
    names, dim = list(op.attrs["axes"]), op.attrs["dim"]
    out = []
    for c in range(len(chips)):
        whole = _combine(op.attrs["kind"], [vals[j] for j in _group(chips, c, names)])
        out.append(np.split(whole, _parts([tuple(names)], 0, axes), axis=dim)[
            _index(chips[c], axes, names)])
    return out


def _mesh_all_to_all(op, vals, chips, axes):
    names = list(op.attrs["axes"])
    sd, cd = op.attrs["split_dim"], op.attrs["concat_dim"]
    p = _parts([tuple(names)], 0, axes)
    return [np.concatenate([np.split(vals[j], p, axis=sd)[_index(chips[c], axes, names)]
                            for j in _group(chips, c, names)], axis=cd)
            for c in range(len(chips))]


def cycle_pos(x, y, i, j):
    """The position of chip (i, j) of an x-by-y grid on the cycle a collective_permute
    with a `cycle` axis runs along (tile_mesh_cycle_pos, ir/module.c); -1 where x and y
    are both odd and above 1."""
    if y == 1:
        return i
    if x == 1:
        return j
    if x % 2:
        return -1 if y % 2 else cycle_pos(y, x, j, i)
    if i == 0:
        return j
    if j == 0:
        return x * y - i
    return y + (i - 1) * (y - 1) + (y - 1 - j if i % 2 else j - 1)


def _mesh_permute(op, vals, chips, axes):
    """Chip at position q gets the operand of position q - shift; with halves, the rows
    [n/2, n) of dim 0 from position q + shift. Positions are the coordinates on `axis`,
    or with `cycle` the places on the cycle through axis x cycle; other axes agree."""
    axis, shift, cyc = op.attrs["axis"], op.attrs["shift"], op.attrs.get("cycle")
    x, y = axes[axis], axes[cyc] if cyc else 1
    at = {cycle_pos(x, y, i, j): (i, j) for i in range(x) for j in range(y)}
    if -1 in at:
        raise TileRefError("%s: %s: no cycle through %d x %d chips moves one step at a time"
                           % (op.where, op.name, x, y))

    def operand_at(me, q):
        src = dict(me)
        src[axis], j = at[q % (x * y)]
        if cyc:
            src[cyc] = j
        return vals[chips.index(src)]
    out = []
    for me in chips:
        q = cycle_pos(x, y, me[axis], me[cyc] if cyc else 0)
        got = operand_at(me, q - shift)
        if op.attrs.get("halves", 0):
            n = got.shape[0] // 2
            got = np.concatenate([got[:n], operand_at(me, q + shift)[n:]])
        out.append(got)
    return out


_MESH_OPS = {"all_reduce": _mesh_all_reduce, "all_gather": _mesh_all_gather,
             "reduce_scatter": _mesh_reduce_scatter, "all_to_all": _mesh_all_to_all,
             "collective_permute": _mesh_permute}


def _ring_slice(op, args, r, p):
    """Chunk (r - step) mod p of dim `dim` (default 0), r this chip's position on the
    axis."""
    return np.split(args[0], p, axis=op.attrs.get("dim", 0))[(r - op.attrs["step"]) % p]


def _ring_concat(op, args, r, p):
    """Operand s at chunk (r - s) mod p of dim `dim` (default 0)."""
    return np.concatenate([args[(r - j) % p] for j in range(p)], axis=op.attrs.get("dim", 0))


# Per-chip ops that read the chip's position on an axis: (op, operands, position, chips).
_RING_OPS = {"ring_slice": _ring_slice, "ring_concat": _ring_concat}


def parse(text, filename="<text>"):
    return Parser(text, filename).module()


def load(path):
    with open(path, encoding="utf-8") as f:
        return parse(f.read(), str(path))


def random_args(func, seed=0):
    """Arguments for func: floats from a standard normal, integers in [0, 8), i1 at
    random, each rounded to its parameter's type."""
    rng = np.random.default_rng(seed)
    out = []
    for _, t, _ in func.params:
        if t.is_float:
            out.append(fit(rng.standard_normal(t.shape), t))
        elif t.elem == "i1":
            out.append(rng.random(t.shape) < 0.5)
        else:
            out.append(fit(rng.integers(0, 8, t.shape), t))
    return out


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="Evaluate a func of a .tile file on random inputs.")
    ap.add_argument("file")
    ap.add_argument("func")
    ap.add_argument("--seed", type=int, default=0)
    opts = ap.parse_args(argv)
    try:
        mod = load(opts.file)
        outs = mod.run(opts.func, *random_args(mod.func(opts.func), opts.seed))
    except (TileRefError, NotImplementedError, OSError) as e:
        print("tileref: error: %s" % e, file=sys.stderr)
        return 1
    np.set_printoptions(threshold=16, edgeitems=3)
    for i, x in enumerate(outs):
        print("result %d: %s %s\n%s" % (i + 1, x.dtype, x.shape, x))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
