"""ring_slice and ring_concat on the emulator (backend-vliw/gen_layout_ring.c): local
copies of chunks of dim 0 that each chip picks from its own position on a mesh axis,
read with `coord`. Per-chip programs on 1x4, on 2x2 (ops over each axis), on meshes
whose axes share a torus dim (1x6 as 2 x 3, 1x8 as 2 x 2 x 2: positions by division and
remainder) and on 1x16 (ring_concat's copies in batches of what may be in flight), for
f32, bf16 and i32 of ranks 1 to 3 and every step, checked bit for bit against numpy
from each chip's position; ring_slice of a ring_concat and ring_concat of every step's
ring_slice give back their operands. With `dim`, chunks of a later dim (strided copies:
outer runs, p runs apart in the whole tensor) on 1x4 and 1x6, ranks 2 to 4, the same
element types, every step. A ring of async permutes with ring ops between
keeps its sends in flight over them (they are layout groups, not collectives) and
gathers what tileref.run_spmd gathers. One and two host threads give the same bits and
cycles; the CUDA backend refuses the ops with a located error. (Verifier and lowering
errors: tests/lit/errors/ring-*.tile, tests/lit/compile/err-ring-*.tile.)"""
import re
import subprocess

import numpy as np
import pytest

import tileref
import tilemach

# name -> (target, torus, axes as (name, size, torus dim) in declaration order)
MESHES = {
    "1x4": ("tiny", (1, 4), [("x", 1, 0), ("y", 4, 1)]),
    "2x2": ("tiny", (2, 2), [("x", 2, 0), ("y", 2, 1)]),
    "1x6": ("v5e-like", (1, 6), [("x", 1, 0), ("a", 2, 1), ("b", 3, 1)]),
    "1x8": ("tiny", (1, 8), [("x", 1, 0), ("a", 2, 1), ("b", 2, 1), ("c", 2, 1)]),
    # more chips than tiny lets DMAs be in flight (8): ring_concat's copies in 2 batches
    "1x16": ("tiny", (1, 16), [("x", 1, 0), ("y", 16, 1)]),
}
ELEMS = {"f32": np.uint32, "bf16": np.uint16, "i32": np.int32}
# The dims besides the cut one (rows go in at `dim`): odd sizes, so bf16 chunks and
# their runs start off 4-byte boundaries.
INNER = {1: (), 2: (5,), 3: (3, 7), 4: (3, 5, 3)}
# (rank, dim) of the cuts along a later dim: each place of the cut dim, the last too
# (runs of chunk-rows elements, one per index of every dim before it).
DIM_CUTS = [(2, 1), (3, 1), (3, 2), (4, 1), (4, 2), (4, 3)]


def mesh_decl(torus, axes):
    parts = [f"{n} = {s} on [{d}]" for n, s, d in axes]
    return f"mesh @m = torus<{'x'.join(map(str, torus))}>({', '.join(parts)})"


def position(torus, axes, chip, name):
    """A chip's position on axis `name` (docs/tile-ir.md, "Modules"): (coord / inner)
    mod size, inner the sizes of the axes declared after it on its dim."""
    coord = np.unravel_index(chip, torus)
    k = [a[0] for a in axes].index(name)
    _, size, dim = axes[k]
    inner = int(np.prod([s for _, s, d in axes[k + 1:] if d == dim]))
    return (int(coord[dim]) // inner) % size


def ttype(shape, elem):
    return f"tensor<{'x'.join(map(str, shape))}x{elem}>"


class Ring:
    """The program: per axis t of p chips, every step's ring_slice of x and their
    ring_concat (x again); a ring_concat of p parameters and every step's ring_slice of
    it (the parameters again). Results in that order; `expected` gives them per chip.
    dim: the dim the ops cut and join (None: the attribute left out, dim 0)."""

    def __init__(self, mesh, elem, rank, dim=None):
        self.target, self.torus, self.axes = MESHES[mesh]
        self.elem, self.rank = elem, rank
        self.dim = dim or 0
        self.attr = "" if dim is None else f", dim = {dim}"
        self.chips = int(np.prod(self.torus))
        rows = 3 * int(np.lcm.reduce([s for _, s, _ in self.axes]))
        other = INNER[rank]
        self.x_shape = other[:self.dim] + (rows,) + other[self.dim:]
        self.params = {"x": self.x_shape}
        for t, p, _ in self.axes:
            for s in range(p):
                self.params[f"in_{t}{s}"] = self.chunk(p)
        self.results = []  # (name in the program, shape)
        self.text = self._text()

    def chunk(self, p):
        sh = list(self.x_shape)
        sh[self.dim] //= p
        return tuple(sh)

    def _text(self):
        e, a, body = self.elem, self.attr, []
        xt = ttype(self.x_shape, e)
        for t, p, _ in self.axes:
            ct = ttype(self.chunk(p), e)
            for s in range(p):
                body.append(f"  %s_{t}{s} = ring_slice %x {{axis = {t}, step = {s}{a}}} : {ct}")
                self.results.append((f"s_{t}{s}", self.chunk(p)))
            sl = ", ".join(f"%s_{t}{s}" for s in range(p))
            body.append(f"  %j_{t} = ring_concat {sl} {{axis = {t}{a}}} : {xt}")
            self.results.append((f"j_{t}", self.x_shape))
            ps = ", ".join(f"%in_{t}{s}" for s in range(p))
            body.append(f"  %c_{t} = ring_concat {ps} {{axis = {t}{a}}} : {xt}")
            self.results.append((f"c_{t}", self.x_shape))
            for s in range(p):
                body.append(f"  %r_{t}{s} = ring_slice %c_{t} {{axis = {t}, step = {s}{a}}} "
                            f": {ct}")
                self.results.append((f"r_{t}{s}", self.chunk(p)))
        params = ", ".join(f"%{n}: {ttype(sh, e)}" for n, sh in self.params.items())
        types = ", ".join(ttype(sh, e) for _, sh in self.results)
        rets = ", ".join("%" + n for n, _ in self.results)
        return (mesh_decl(self.torus, self.axes) + "\n\n"
                f"func @f({params}) -> ({types}) attributes {{mesh = @m}} {{\n"
                + "\n".join(body) + f"\n  return {rets}\n}}\n")

    def inputs(self, seed):
        """Per-chip arrays of random bits (NaN patterns too: a copy keeps every bit)."""
        rng = np.random.default_rng(seed)
        dt = ELEMS[self.elem]
        info = np.iinfo(dt)
        return {n: rng.integers(info.min, info.max, (self.chips,) + sh, dtype=dt, endpoint=True)
                for n, sh in self.params.items()}

    def expected(self, ins):
        """Per result, the per-chip arrays numpy gives from each chip's position."""
        want, d = [], self.dim
        for t, p, _ in self.axes:
            pos = [position(self.torus, self.axes, c, t) for c in range(self.chips)]
            x = ins["x"]
            want += [np.stack([np.split(x[c], p, axis=d)[(pos[c] - s) % p]
                               for c in range(self.chips)])
                     for s in range(p)]
            want.append(x)
            want.append(np.stack([np.concatenate([ins[f"in_{t}{(pos[c] - j) % p}"][c]
                                                  for j in range(p)], axis=d)
                                  for c in range(self.chips)]))
            want += [ins[f"in_{t}{s}"] for s in range(p)]
        return want


def npy_in(a, elem):
    return a.view("V2") if elem == "bf16" else a.view(np.float32) if elem == "f32" else a


def npy_out(a, elem):
    return a.view(ELEMS[elem])


def run_ring(tilec, tmp_path, ring, seed, extra=()):
    src = tmp_path / "ring.tile"
    src.write_text(ring.text)
    ins = ring.inputs(seed)
    args = []
    for n, a in ins.items():
        np.save(tmp_path / f"in_{n}.npy", npy_in(a, ring.elem))
        args += ["--in", f"{n}={tmp_path / f'in_{n}.npy'}"]
    outs = [tmp_path / f"out{i}.npy" for i in range(len(ring.results))]
    for i, o in enumerate(outs):
        args += ["--out", f"result{i or ''}={o}"]
    p = tilemach.run([tilec, "run", src, "--target", ring.target, "--torus",
                      "x".join(map(str, ring.torus)), *args, *extra], timeout=300)
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    cycles = re.search(r"^run: (\d+) cycles", p.stdout, re.M).group(1)
    return ins, [npy_out(np.load(o), ring.elem) for o in outs], cycles


def check_chunks(ring, ins, got):
    for (name, _), g, w in zip(ring.results, got, ring.expected(ins)):
        for c in range(ring.chips):
            np.testing.assert_array_equal(
                g[c], w[c], err_msg=f"{ring.torus} {ring.elem} dim {ring.dim} %{name} chip {c}")


@pytest.mark.parametrize("mesh", list(MESHES))
@pytest.mark.parametrize("elem", list(ELEMS))
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_chunks_follow_the_position(tilec, tmp_path, mesh, elem, rank):
    ring = Ring(mesh, elem, rank)
    ins, got, _ = run_ring(tilec, tmp_path, ring, seed=rank * 7 + len(elem))
    check_chunks(ring, ins, got)


@pytest.mark.parametrize("mesh", ["1x4", "1x6"])
@pytest.mark.parametrize("elem", list(ELEMS))
@pytest.mark.parametrize("rank,dim", DIM_CUTS)
def test_chunks_of_a_later_dim(tilec, tmp_path, mesh, elem, rank, dim):
    """Chunks of dim `dim`: one DMA each, `outer` runs of chunk-rows x inner elements."""
    ring = Ring(mesh, elem, rank, dim)
    ins, got, _ = run_ring(tilec, tmp_path, ring, seed=rank * 11 + dim + len(elem))
    check_chunks(ring, ins, got)


def test_explicit_dim_0_is_the_default(tilec, tmp_path):
    """`dim = 0` written out gives the bits and cycles of the attribute left out."""
    runs = [run_ring(tilec, tmp_path, Ring("1x6", "bf16", 3, d), seed=3) for d in (None, 0)]
    assert runs[0][2] == runs[1][2]
    assert all(a.tobytes() == b.tobytes() for a, b in zip(runs[0][1], runs[1][1]))


@pytest.mark.parametrize("dim", [None, 1, 2])
def test_numpy_reference_matches_tileref(dim):
    """The positions and chunks above are tileref.run_spmd's: per chip x and the
    parameters as blocks of dim 0 split over every axis (chip-id order)."""
    for mesh in MESHES:
        ring = Ring(mesh, "f32", 3, dim)
        mod = tileref.parse(ring.text)
        ins = {n: (a % 1000).astype(np.float32) for n, a in ring.inputs(seed=1).items()}
        names = tuple(a[0] for a in ring.axes)
        sh = lambda rank: [names] + [tileref.NONE] * (rank - 1)
        args = [a.reshape((-1,) + a.shape[2:]) for a in ins.values()]
        outs = mod.run_spmd("f", {n: s for n, s, _ in ring.axes}, [sh(a.ndim) for a in args],
                            [sh(len(s)) for _, s in ring.results], *args)
        for (name, shape), g, w in zip(ring.results, outs, ring.expected(ins)):
            np.testing.assert_array_equal(g.reshape((ring.chips,) + shape), w,
                                          err_msg=f"{mesh} %{name}")


def test_same_bits_and_cycles_on_one_and_two_threads(tilec, tmp_path):
    ring = Ring("1x8", "bf16", 3)
    runs = [run_ring(tilec, tmp_path, ring, seed=5, extra=["--threads", t]) for t in "12"]
    assert runs[0][2] == runs[1][2]
    assert all(a.tobytes() == b.tobytes() for a, b in zip(runs[0][1], runs[1][1]))


# A ring of one-hop permutes along y with ring ops between (the shape of coll_matmul's
# rings): each step sends what arrived and slices w for that step; the ring_concat of
# what every step held is x of every chip in chip order (an all-gather).
PERMUTE_RING = """mesh @m = torus<1x4>(x, y)

func @f(%x: tensor<8x128xf32>, %w: tensor<32x128xf32>) -> (tensor<32x128xf32>, tensor<8x128xf32>)
    attributes {mesh = @m} {
  %y1 = collective_permute %x {axis = y, shift = 1} : tensor<8x128xf32>
  %w0 = ring_slice %w {axis = y, step = 0} : tensor<8x128xf32>
  %y2 = collective_permute %y1 {axis = y, shift = 1} : tensor<8x128xf32>
  %w1 = ring_slice %w {axis = y, step = 1} : tensor<8x128xf32>
  %y3 = collective_permute %y2 {axis = y, shift = 1} : tensor<8x128xf32>
  %w2 = ring_slice %w {axis = y, step = 2} : tensor<8x128xf32>
  %g = ring_concat %x, %y1, %y2, %y3 {axis = y} : tensor<32x128xf32>
  %a = add %w0, %w1 : tensor<8x128xf32>
  %b = add %a, %w2 : tensor<8x128xf32>
  return %g, %b
}
"""


def test_permute_sends_stay_in_flight_over_ring_ops(tilec, tmp_path):
    """The ring_slice after each permute is a layout group: the permute's waits come
    after its copy (in the next permute's group), not before it as at a collective."""
    src = tmp_path / "permute_ring.tile"
    src.write_text(PERMUTE_RING)
    p = tilemach.run([tilec, src, "--target", "tiny", "--torus", "1x4", "--emit=mir"])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    sends = [i for i, l in enumerate(lines) if re.search(r"\bdma .*// collective_permute", l)]
    waits = [i for i, l in enumerate(lines) if "sem.wait" in l and "// collective_permute" in l]
    slices = [i for i, l in enumerate(lines) if re.search(r"\bdma .*// ring_slice", l)]
    assert len(sends) == 3 and len(slices) == 3, p.stdout[-3000:]
    for k in range(2):  # the third permute's waits go before the ring_concat that reads it
        assert sends[k] < slices[k] < min(w for w in waits if w > sends[k]), p.stdout[-3000:]

    rng = np.random.default_rng(11)
    x = rng.integers(-100, 100, (4, 8, 128)).astype(np.float32)
    w = rng.integers(-100, 100, (4, 32, 128)).astype(np.float32)
    args = []
    for n, a in (("x", x), ("w", w)):
        np.save(tmp_path / f"{n}.npy", a)
        args += ["--in", f"{n}={tmp_path / (n + '.npy')}"]
    outs = [tmp_path / "g.npy", tmp_path / "b.npy"]
    r = tilemach.run([tilec, "run", src, "--target", "tiny", "--torus", "1x4", *args,
                      "--out", f"result={outs[0]}", "--out", f"result1={outs[1]}"])
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}"
    g, b = (np.load(o) for o in outs)
    for c in range(4):
        np.testing.assert_array_equal(g[c], x.reshape(32, 128))
    sh = [("x", "y"), tileref.NONE]
    want = tileref.parse(PERMUTE_RING).run_spmd("f", {"x": 1, "y": 4}, [sh, sh], [sh, sh],
                                                x.reshape(32, 128), w.reshape(128, 128))
    np.testing.assert_array_equal(g, want[0].reshape(4, 32, 128))
    np.testing.assert_array_equal(b, want[1].reshape(4, 8, 128))


def test_cuda_backend_refuses_ring_ops(tilec, tmp_path):
    ring = Ring("2x2", "f32", 2)
    src = tmp_path / "ring.tile"
    src.write_text(ring.text)
    r = subprocess.run([str(tilec), str(src), "--target=cuda-sm90", "-S"], capture_output=True,
                       text=True)
    assert r.returncode == 1, r.stderr
    assert re.search(r"ring.tile:\d+:\d+: error: 'ring_slice' is not a collective the CUDA "
                     r"backend knows", r.stderr), r.stderr
