"""The CUDA validation harness: runs one .tile program on the emulator and on the GPU
with the same inputs and reports, per output, the NMSE (shared/REFERENCE.md:
sum((a-b)^2) / sum(a^2)) of GPU vs emulator, GPU vs numpy (tileref) and emulator vs
numpy, each against the tolerance of the program's op class. With --per-op, every op of
a program with several ops is checked the same way on its prefix: the function cut
after that op and returning its value.

    python3 tests/e2e/cuda_harness.py FILE.tile [--func NAME] [--seed N] [--per-op]
                                     [--emu-target v5e-like] [--gpu-target cuda-sm90]
                                     [--json FILE]
    scripts/validate_cuda FILE.tile ...       (the same)

Without a GPU the GPU columns read "skipped: no CUDA device" and only emulator vs
numpy is judged. Exit code 0: every judged NMSE is within its tolerance; 1: one is not
(or a run failed); 2: bad usage.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tilemach  # noqa: E402
import tileref  # noqa: E402

NO_DEVICE = "no CUDA device"
SKIPPED = "skipped: " + NO_DEVICE

# Tolerances from shared/REFERENCE.md ("what peers use"), by op class: the loosest class
# among the ops that feed a value decides it. None: exact.
TOLERANCE = {"exact": 0.0, "elementwise": 1e-7, "softmax": 1e-6, "matmul": 5e-4}
OP_CLASS = {
    "matmul": "matmul", "dot_general": "matmul", "attention": "matmul",
    "decode_attention": "matmul", "softmax": "softmax",
    "argmax": "exact", "topk": "exact", "gather": "exact", "iota": "exact",
}
ORDER = ["exact", "elementwise", "softmax", "matmul"]
# bf16 values carry 8 bits of mantissa: one rounding step apart is a relative error of
# 2^-8, which the matmul class's NMSE bound covers.
BF16_CLASS = "matmul"


def op_class(op):
    return OP_CLASS.get(op.name, "elementwise")


def value_class(ops_upto, out_elem):
    """The loosest class of ops_upto (the ops computing a value) and its element type."""
    classes = {op_class(op) for op in ops_upto if op.name not in ("return", "yield")}
    if out_elem == "bf16":
        classes.add(BF16_CLASS)
    if out_elem in ("i1", "i8", "i32", "i64"):
        classes = {"exact"}
    return max(classes, key=ORDER.index) if classes else "exact"


def nmse(ref, got):
    ref = np.asarray(ref, np.float64)
    got = np.asarray(got, np.float64)
    if ref.shape != got.shape:
        return float("inf")
    if np.isnan(got).any() or np.isnan(ref).any():
        return float("nan")
    inf = np.isinf(ref) | np.isinf(got)
    if inf.any():  # infinities must match in sign and place
        if not np.array_equal(ref[inf], got[inf]):
            return float("inf")
        ref, got = ref[~inf], got[~inf]
    den = float(np.sum(ref ** 2))
    num = float(np.sum((ref - got) ** 2))
    return num / den if den else (0.0 if num == 0 else float("inf"))


def passes(value, tol):
    return value == value and value <= tol  # NaN never passes


def save_input(path, x, elem):
    if elem == "bf16":  # raw bits, as ml_dtypes saves bfloat16
        bits = (tilemach.bf16_round(x).view(np.uint32) >> 16).astype(np.uint16)
        np.save(path, bits.view(np.dtype("V2")))
    else:
        np.save(path, np.asarray(x))


def load_output(path, elem):
    a = np.load(path)
    if elem == "bf16":
        return (a.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    return a


def result_names(n):
    return ["result" if i == 0 else "result%d" % i for i in range(n)]


def run_tilec(tilec, src, func, target, inputs, outputs, tmp, tag):
    """Runs src on target; returns ({name: array}, None) or (None, reason)."""
    cmd = [str(tilec), "run", str(src), "--target", target]
    if func:
        cmd += ["--func", func]
    for name, (x, elem) in inputs.items():
        p = tmp / ("%s_in_%s.npy" % (tag, name))
        save_input(p, x, elem)
        cmd += ["--in", "%s=%s" % (name, p)]
    for name in outputs:
        cmd += ["--out", "%s=%s" % (name, tmp / ("%s_out_%s.npy" % (tag, name)))]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        if NO_DEVICE in r.stderr:
            return None, SKIPPED
        return None, "failed (exit %d): %s" % (r.returncode, r.stderr.strip()[-400:])
    return {n: tmp / ("%s_out_%s.npy" % (tag, n)) for n in outputs}, None


def type_text(t):
    dims = "x".join(str(d) for d in t.shape)
    return "tensor<%s%s%s>" % (dims, "x" if dims else "", t.elem)


def prefixes(text, func):
    """(label, source text, func name, ops) of each op's prefix of func: the function
    cut after the op, returning its first result. Ops are located by their source line."""
    lines = text.splitlines()
    start = next(i for i, l in enumerate(lines) if re.search(r"\bfunc\s+@%s\b" % func.name, l))
    head_end = next(i for i in range(start, len(lines)) if lines[i].rstrip().endswith("{"))
    head = "\n".join(lines[start:head_end + 1])
    out = []
    ops = [op for op in func.body.ops if op.name not in ("return", "yield")]
    for k, op in enumerate(ops):
        if not op.results or op.results[0][1].kind != "tensor" or not op.results[0][1].shape:
            continue
        line = int(op.where.rsplit(":", 2)[1]) - 1
        name, t = op.results[0]
        new_head = re.sub(r"->[^{]*\{\s*$", "-> %s {" % type_text(t), head, flags=re.S)
        body = "\n".join(lines[head_end + 1:line + 1])
        src = "%s\n%s\n  return %%%s\n}\n" % (new_head, body, name)
        out.append(("%s %%%s (%s)" % (op.name, name, op.where), src, ops[:k + 1], t))
    return out


def check(tilec, src, func_name, mod, seed, emu_target, gpu_target, tmp, tag, label=None):
    """Runs src (a path) both ways; returns report rows, one per output."""
    f = mod.func(func_name)
    args = tileref.random_args(f, seed)
    want = mod.run(func_name, *args)
    inputs = {p[0]: (a, p[1].elem) for p, a in zip(f.params, args)}
    names = result_names(len(f.results))
    emu, emu_err = run_tilec(tilec, src, func_name, emu_target, inputs, names, tmp, tag + "_emu")
    gpu, gpu_err = run_tilec(tilec, src, func_name, gpu_target, inputs, names, tmp, tag + "_gpu")
    rows = []
    ops = [op for op in f.body.ops]
    for i, name in enumerate(names):
        elem = f.results[i].elem
        cls = value_class(ops, elem)
        tol = TOLERANCE[cls]
        row = {"value": label or name, "class": cls, "tolerance": tol}
        e = load_output(emu[name], elem) if emu else None
        g = load_output(gpu[name], elem) if gpu else None
        row["emu_vs_numpy"] = nmse(want[i], e) if e is not None else emu_err
        row["gpu_vs_numpy"] = nmse(want[i], g) if g is not None else gpu_err
        row["gpu_vs_emu"] = nmse(e, g) if e is not None and g is not None else (gpu_err or emu_err)
        judged = [v for v in (row["emu_vs_numpy"], row["gpu_vs_numpy"], row["gpu_vs_emu"])
                  if not isinstance(v, str)]
        failed = [v for v in (row["emu_vs_numpy"], row["gpu_vs_numpy"], row["gpu_vs_emu"])
                  if isinstance(v, str) and v != SKIPPED]
        row["ok"] = not failed and all(passes(v, tol) for v in judged)
        rows.append(row)
    return rows


def validate(tilec, path, func=None, seed=0, per_op=False, emu_target="v5e-like",
             gpu_target="cuda-sm90", tmp=None):
    """The report rows for path (a .tile file): its outputs, then (per_op) each op."""
    text = Path(path).read_text()
    mod = tileref.parse(text, str(path))
    if func is None:
        funcs = [n for n, f in mod.funcs.items() if not f.is_kernel]
        if len(funcs) != 1:
            raise tileref.TileRefError("%s has %d funcs (%s); choose one with --func"
                                       % (path, len(funcs), ", ".join(funcs)))
        func = funcs[0]
    with tempfile.TemporaryDirectory(prefix="cuda_harness_") as d:
        tmp = Path(tmp or d)
        rows = check(tilec, path, func, mod, seed, emu_target, gpu_target, tmp, "prog")
        f = mod.func(func)
        if per_op and len([o for o in f.body.ops if o.name != "return"]) > 1:
            for k, (label, src, _, _) in enumerate(prefixes(text, f)):
                p = tmp / ("prefix%d.tile" % k)
                p.write_text(src)
                pmod = tileref.parse(src, str(p))
                rows += check(tilec, p, func, pmod, seed, emu_target, gpu_target, tmp,
                              "prefix%d" % k, label)
    return rows


def fmt(v, tol):
    if isinstance(v, str):
        return v if len(v) < 40 else v[:37] + "..."
    return "%.3e %s" % (v, "ok" if passes(v, tol) else "MISS")


def print_report(rows, out=sys.stdout):
    head = ("value", "class (tol)", "gpu vs emulator", "gpu vs numpy", "emulator vs numpy")
    table = [head] + [(r["value"], "%s (%g)" % (r["class"], r["tolerance"]),
                       fmt(r["gpu_vs_emu"], r["tolerance"]), fmt(r["gpu_vs_numpy"], r["tolerance"]),
                       fmt(r["emu_vs_numpy"], r["tolerance"])) for r in rows]
    widths = [max(len(row[c]) for row in table) for c in range(len(head))]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip(), file=out)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file")
    ap.add_argument("--func")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-op", action="store_true", help="check every op's prefix too")
    ap.add_argument("--emu-target", default="v5e-like")
    ap.add_argument("--gpu-target", default="cuda-sm90")
    ap.add_argument("--json", help="write the rows as JSON to this file")
    o = ap.parse_args(argv)
    tilec = tilemach.tilec_path()
    if not tilec.exists():
        print("cuda_harness: no tilec at %s (build it, or set TILEC_BUILD)" % tilec,
              file=sys.stderr)
        return 2
    try:
        rows = validate(tilec, o.file, o.func, o.seed, o.per_op, o.emu_target, o.gpu_target)
    except (tileref.TileRefError, NotImplementedError, OSError) as e:
        print("cuda_harness: error: %s" % e, file=sys.stderr)
        return 2
    print_report(rows)
    if o.json:
        Path(o.json).write_text(json.dumps(rows, indent=1, default=str))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
