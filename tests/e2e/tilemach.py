"""Machine-level helpers for the end-to-end tests: target descriptions read the way
backend-vliw/target.c reads them, the cycle arithmetic of include/tile/target.h, torus
geometry, and running programs through `tilec asm` and `tilec run`.

Expected cycle counts in the tests are computed from these numbers, never written as
constants, so a change to a target file either keeps a test right or fails it with the
formula in the message.
"""
import json
import os
import re
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ROOT / "targets"
MACHINE = ROOT / "tests" / "machine"

_UNITS = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
          "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


def exact_int(text):
    """`1.5e9`, `16MiB`, `1.2e12` -> the exact integer they denote (as target.c does)."""
    m = re.fullmatch(r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)([A-Za-z]*)", text.strip())
    if not m:
        raise ValueError(f"not a number: {text!r}")
    num, unit = m.groups()
    if unit and unit not in _UNITS:
        raise ValueError(f"unknown unit in {text!r}")
    v = Fraction(num) * _UNITS.get(unit, 1)
    if v.denominator != 1:
        raise ValueError(f"{text!r} is not a whole number")
    return int(v)


def ceil_div(a, b):
    return -(-a // b)


class Target:
    """A parsed targets/NAME.target. Keys keep their file names in `raw`; the common
    ones are attributes (lat is a dict keyed by latency class)."""

    def __init__(self, path, torus=None):
        self.path = Path(path)
        self.raw = {}
        for line in self.path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            key, _, value = line.partition("=")
            self.raw[key.strip()] = value.strip().strip('"')
        r = self.raw
        self.name = r["name"]
        self.clock_hz = exact_int(r["clock_hz"])
        self.lat = {k[4:]: exact_int(v) for k, v in r.items() if k.startswith("lat.")}
        self.slots = {k[6:]: exact_int(v) for k, v in r.items() if k.startswith("slots.")}
        self.sublanes = exact_int(r["vreg.sublanes"])
        self.lanes = exact_int(r["vreg.lanes"])
        self.mxu_dim = exact_int(r["mxu.dim"])
        self.mxu_count = exact_int(r["mxu.count"])
        self.push_cycles = exact_int(r["mxu.push_cycles"])
        self.vmem_bytes = exact_int(r["vmem.bytes"])
        self.smem_bytes = exact_int(r["smem.bytes"])
        self.hbm_bytes = exact_int(r["hbm.bytes"])
        self.hbm_bw = exact_int(r["hbm.bw"])
        self.vmem_bw = exact_int(r["vmem.bw"])
        self.dma_engines = exact_int(r["dma.engines"])
        self.dma_issue = exact_int(r["dma.issue_cycles"])
        self.dma_outstanding = exact_int(r["dma.outstanding"])
        self.nsems = exact_int(r["sems"])
        self.ici_bw = exact_int(r["ici.bw"])
        self.ici_hop_ns = exact_int(r["ici.hop_ns"])
        self.watchdog = exact_int(r["watchdog_cycles"])
        words = r["torus.wrap"].split()
        self.wrap_rule = words[0]
        self.wrap_arg = exact_int(words[1]) if len(words) > 1 else 0
        self.set_torus(torus or r["torus"])

    def set_torus(self, shape):
        """Like tile_target_set_torus: new axis lengths, wraparound by the target's rule."""
        self.torus = [int(x) for x in str(shape).split("x")]
        self.wrap = [self._wraps(n) for n in self.torus]
        return self

    def _wraps(self, n):
        if n < 2:
            return False
        return {"never": False, "always": True,
                "multiple-of": self.wrap_arg > 0 and n % max(self.wrap_arg, 1) == 0,
                "equal": n == self.wrap_arg}[self.wrap_rule]

    @property
    def torus_text(self):
        return "x".join(str(n) for n in self.torus)

    @property
    def chips(self):
        n = 1
        for d in self.torus:
            n *= d
        return n

    def xfer_cycles(self, nbytes, bytes_per_s):
        """ceil(bytes * clock_hz / bytes_per_s), exact (tile_target_xfer_cycles)."""
        if nbytes <= 0:
            return 0
        return ceil_div(nbytes * self.clock_hz, bytes_per_s)

    def hop_cycles(self):
        """ceil(ici_hop_ns * clock_hz / 1e9) (tile_target_hop_cycles)."""
        return self.xfer_cycles(self.ici_hop_ns, 10**9)

    # ---- torus geometry: ids are row-major over the coordinates, the last axis
    # fastest: on X x Y x Z, chip (x, y, z) is (x * Y + y) * Z + z (emulator/network.c).
    def coord(self, chip):
        c = []
        for n in reversed(self.torus):
            c.append(chip % n)
            chip //= n
        return c[::-1]

    def chip_id(self, coord):
        cid = 0
        for x, n in zip(coord, self.torus):
            cid = cid * n + x
        return cid

    def axis_hops(self, axis, a, b):
        """Hops from coordinate a to b along one axis: the short way round where the axis
        wraps, else the straight line."""
        n = self.torus[axis]
        d = abs(a - b)
        return min(d, n - d) if self.wrap[axis] else d

    def route(self, src, dst):
        """The links a transfer from src to dst crosses, as (chip, axis, dir): dimension
        order, axis 0 first, the shorter way round where an axis wraps (ties go +)."""
        cur, goal = self.coord(src), self.coord(dst)
        links = []
        for k, n in enumerate(self.torus):
            while cur[k] != goal[k]:
                if self.wrap[k]:
                    fwd = (goal[k] - cur[k]) % n
                    d = 1 if fwd <= n - fwd else -1
                else:
                    d = 1 if goal[k] > cur[k] else -1
                links.append((self.chip_id(cur), k, d))
                cur[k] = (cur[k] + d) % n
        return links

    def hops(self, src, dst):
        ca, cb = self.coord(src), self.coord(dst)
        return sum(self.axis_hops(k, ca[k], cb[k]) for k in range(len(self.torus)))


def load_target(name, torus=None):
    p = Path(name)
    if p.suffix != ".target":
        p = TARGETS / f"{name}.target"
    return Target(p, torus)


def snake_ring(t):
    """A ring through every chip of a 1D, 2D or 3D torus in which each step, the last
    one back to the start included, is one hop (a Hamiltonian cycle of nearest
    neighbours), as a list of chip ids.

    1D: 0, 1, ..., n-1 (the return is one hop through the wraparound).
    2D (X x Y, Y even), without wraparound: row y walks x = 1..X-1, forwards on even rows
    and backwards on odd ones, then the ring returns down column x = 0.
    3D (X x Y x Z, Z even): the 2D cycle opened into a path whose ends are neighbours;
    plane z walks it without its last point, forwards on even planes and backwards on
    odd ones, and the ring returns along z at that last point. On 2x2x2 this is the
    Gray-code order of the cube."""
    dims = t.torus
    long_axes = [k for k, n in enumerate(dims) if n > 1]
    if len(long_axes) <= 1:  # a line of chips: 0, 1, ..., n-1 along its one axis
        return list(range(t.chips))
    if len(dims) == 2 or dims[2] == 1:
        X, Y = dims[0], dims[1]
        if Y % 2 != 0:
            raise ValueError("snake_ring needs an even number of rows")
        order = []
        for y in range(Y):  # x = 1..X-1 forwards on even rows, backwards on odd rows
            xs = range(1, X) if y % 2 == 0 else range(X - 1, 0, -1)
            order += [(x, y) for x in xs]
        order += [(0, y) for y in range(Y - 1, -1, -1)]  # back down column x = 0
        return [t.chip_id([x, y] + [0] * (len(dims) - 2)) for x, y in order]
    X, Y, Z = dims
    if X * Y % 2 != 0 or Z % 2 != 0:
        raise ValueError("snake_ring in 3D needs an even plane and an even depth")
    plane = snake_ring(load_target(t.path).set_torus(f"{X}x{Y}"))
    coords2 = [divmod(c, Y) for c in plane]  # ids of the X x Y plane -> (x, y)
    order = []
    path = coords2[1:] + coords2[:1]  # its ends, path[0] and path[-1], are neighbours
    for z in range(Z):
        seq = path[:-1] if z % 2 == 0 else list(reversed(path[:-1]))
        order += [(x, y, z) for x, y in seq]
    x0, y0 = path[-1]
    order += [(x0, y0, z) for z in range(Z - 1, -1, -1)]
    return [t.chip_id(list(c)) for c in order]


# ---- running programs ----

def build_dir():
    return ROOT / os.environ.get("TILEC_BUILD", "build/default")


def tilec_path():
    return build_dir() / "tools" / "tilec"


class RunResult:
    def __init__(self, proc, outputs, stats_text=None, trace_text=None, stats_json=None):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.outputs = outputs
        self.stats_text = stats_text  # as printed / written, for byte comparisons
        self.stats_json = stats_json  # the --stats-json file's text
        self.trace_text = trace_text
        self.stats = None
        if stats_json is not None:
            self.stats = stats_from_json(json.loads(stats_json))
            if stats_text is not None:  # the table and the JSON tell the same story
                assert parse_stats(stats_text) == self.stats, "--stats and --stats-json differ"
        elif stats_text is not None:
            self.stats = parse_stats(stats_text)
        self.trace = json.loads(trace_text) if trace_text is not None else None

    @property
    def cycles(self):
        return self.stats["cycles"]

    def chip(self, i):
        return self.stats["chips"][i]


def run(cmd, **kw):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          timeout=kw.pop("timeout", 120), **kw)


def assemble(src, obj, target=None):
    cmd = [tilec_path(), "asm", src, "-o", obj]
    if target:
        cmd += ["--target", target]
    p = run(cmd)
    if p.returncode != 0:
        raise AssertionError(f"tilec asm {src} failed ({p.returncode}):\n{p.stderr}")
    return obj


def machine_source(src):
    src = Path(src)
    return src if src.is_absolute() or src.exists() else MACHINE / src


UNITS = ["scalar", "vector", "vload", "vstore", "mxu", "xlu", "dma", "branch"]

_CHIP_ROW = re.compile(r"^\s*(\d+) \(([\d,]*)\)\s+(\d+)\s+(\d+)\s+(\d+)((?:\s+\d+\s+[\d.]+%)+)\s*$")
_LINK_ROW = re.compile(r"^chip (\d+) -> chip (\d+) \(axis (\d+) ([+-])\)\s+(\d+)\s+(\d+)\s+(\d+)\s*$")
_DMA_LINE = re.compile(r"^dma: (\d+) started, (\d+) local bytes, (\d+) bytes sent, (\d+) received; "
                       r"(\d+) remote signals; (\d+) branch bubble cycles$")
_RUN_LINE = re.compile(r"^run: (\d+) cycles")


def parse_stats(text):
    """The statistics `tilec run --stats` prints, as a dict: cycles (the run's), chips
    (cycles, bundles, stall, busy per unit), links that carried traffic (chip, peer, axis,
    dir, bytes, busy, transfers) and the DMA totals."""
    st = {"chips": [], "links": [], "dma": None, "cycles": None}
    for line in text.splitlines():
        m = _CHIP_ROW.match(line)
        if m:
            busy = [int(x) for x in re.findall(r"(\d+)\s+[\d.]+%", m.group(6))]
            assert len(busy) == len(UNITS), line
            st["chips"].append({"chip": int(m.group(1)), "cycles": int(m.group(3)),
                                "bundles": int(m.group(4)), "stall": int(m.group(5)),
                                "busy": dict(zip(UNITS, busy))})
            continue
        m = _LINK_ROW.match(line)
        if m:
            st["links"].append({"chip": int(m.group(1)), "peer": int(m.group(2)),
                                "axis": int(m.group(3)), "dir": 1 if m.group(4) == "+" else -1,
                                "bytes": int(m.group(5)), "busy": int(m.group(6)),
                                "transfers": int(m.group(7))})
            continue
        m = _DMA_LINE.match(line)
        if m:
            keys = ["started", "local_bytes", "bytes_sent", "bytes_received", "signals",
                    "branch_bubbles"]
            st["dma"] = dict(zip(keys, map(int, m.groups())))
            continue
        m = _RUN_LINE.match(line)
        if m:
            st["cycles"] = int(m.group(1))
    if st["cycles"] is None or not st["chips"]:
        raise AssertionError(f"no statistics in tilec run's output:\n{text}")
    assert [c["chip"] for c in st["chips"]] == list(range(len(st["chips"])))
    return st


def stats_from_json(st):
    """The statistics of a `tilec run --stats-json` file in parse_stats's form (the
    links that carried traffic, the DMA totals over all chips)."""
    chips = [{"chip": c["chip"], "cycles": c["cycles"], "bundles": c["bundles"],
              "stall": c["stall"], "busy": {u: c["units"][u]["busy"] for u in UNITS}}
             for c in st["chips"]]
    links = [{k: l[k] for k in ("chip", "peer", "axis", "dir", "bytes", "busy", "transfers")}
             for l in st["links"] if l["transfers"] > 0]
    total = lambda key: sum(c[key] for c in st["chips"])
    dma = {"started": total("dmas"), "local_bytes": total("dma_bytes"),
           "bytes_sent": total("bytes_sent"), "bytes_received": total("bytes_received"),
           "signals": total("signals_sent"), "branch_bubbles": total("branch_bubbles")}
    return {"chips": chips, "links": links, "dma": dma, "cycles": st["cycles"]}


def run_object(tmp, obj, target="tiny", torus=None, inputs=None, outputs=(), mode=None,
               threads=None, trace=False, extra=(), expect_fault=False):
    """Runs an object with `tilec run ... --stats --stats-json`. inputs: {symbol: numpy
    array}; outputs: symbol names to read back. Returns a RunResult with the outputs as
    numpy arrays, the statistics (from the JSON, checked against the printed table) and,
    when asked, the trace JSON (with expect_fault: the exit code and the messages)."""
    tmp = Path(tmp)
    stats_path = tmp / "stats.json"
    cmd = [tilec_path(), "run", obj, "--target", target, "--stats", "--stats-json", stats_path]
    if torus:
        cmd += ["--torus", torus]
    if mode:
        cmd += ["--mode", mode]
    if threads:
        cmd += ["--threads", str(threads)]
    for name, arr in (inputs or {}).items():
        path = tmp / f"in_{name}.npy"
        np.save(path, arr)
        cmd += ["--in", f"{name}={path}"]
    outs = {}
    for name in outputs:
        outs[name] = tmp / f"out_{name}.npy"
        cmd += ["--out", f"{name}={outs[name]}"]
    trace_path = tmp / "trace.json"
    if trace:
        cmd += ["--trace", trace_path]
    cmd += list(extra)
    for path in [trace_path, stats_path, *outs.values()]:
        if path.exists():
            path.unlink()
    p = run(cmd)
    if expect_fault:
        r = RunResult(p, {})
        r.tmp_trace_path = trace_path  # the trace is written even when the run faulted
        return r
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))}\nexit {p.returncode}\n"
                             f"{p.stdout}\n{p.stderr}")
    arrays = {n: np.load(path) for n, path in outs.items()}
    return RunResult(p, arrays, p.stdout, trace_path.read_text() if trace else None,
                     stats_path.read_text())


def run_program(tmp, src, **kw):
    """Assembles tests/machine/SRC (or a path) and runs it (run_object's options)."""
    src = machine_source(src)
    obj = Path(tmp) / (src.stem + ".tobj")
    assemble(src, obj)
    return run_object(tmp, obj, **kw)


def nmse(ref, got):
    ref = np.asarray(ref, np.float64)
    got = np.asarray(got, np.float64)
    return float(np.sum((ref - got) ** 2) / np.sum(ref ** 2))


def bf16_round(x):
    """f32 -> nearest-even bf16 precision, as f32 (the MXU's bf())."""
    b = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    r = (b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000
    return r.astype(np.uint32).view(np.float32)


def run_cycles(tilec, src, target, torus, args, runs=(("functional", "1"), ("timing", "1"),
                                                     ("timing", "2"))):
    """The cycles of `tilec run` of src for each (mode, host threads) in runs; args are
    the inputs a functional run binds (a timing run needs none)."""
    cycles = []
    for mode, threads in runs:
        extra = args if mode == "functional" else ["--mode", "timing"]
        p = run([tilec, "run", src, "--target", target, "--torus", "x".join(map(str, torus)),
                 "--threads", threads, *extra], timeout=300)
        assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
        cycles.append(re.search(r"^run: (\d+) cycles", p.stdout, re.M).group(1))
    return cycles


def bf16_inputs(tmp_path, shapes, seed):
    """Random bf16-valued inputs (weights, names starting with w, scaled by 1/sqrt of
    their rows), saved as .npy: the arrays in f64 and the `--in` arguments of a run."""
    rng = np.random.default_rng(seed)
    arrays, args = {}, []
    for name, shape in shapes.items():
        a = rng.standard_normal(shape) / (np.sqrt(shape[0]) if name.startswith("w") else 1)
        a = bf16_round(a.astype(np.float32))
        np.save(tmp_path / f"{name}.npy", a)
        arrays[name] = a.astype(np.float64)
        args += ["--in", f"{name}={tmp_path / (name + '.npy')}"]
    return arrays, args
