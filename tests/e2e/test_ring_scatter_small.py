"""Small and medium reduce_scatter over axes with wraparound, each slice's partial sums
flowing half a ring each way toward the chip that keeps it
(backend-vliw/gen_collective_line_scatter.c, "half rings"): floor(p / 2) hop latencies
per axis where the one-shot all_reduce it replaces pays an all_reduce's.

On tiny (wraparound on every axis) with its own short hops the estimates pick whichever
schedule is quicker, and all must agree; with hops of 1000 cycles the half rings win
from one element to hundreds of KiB, within tiny's 1 MiB of VMEM and 8 DMAs in flight.
Rings of 3 to 8 chips give both parities (with even p one side of a slice is a chip
longer than the other) and a level per axis on 4x4; 2x2x2 has no axis longer than 2.
v4-like's axes of 4 wrap: 1x4 and 2x4 check values there, 4x4x4 its cycles.

Integer data check every element exactly against numpy; random reals check that a second
run gives the same bits; the latency test holds v4-like's 4 KiB and 64 KiB rows of the
collectives bench under 1.5 times its latency term (hop cycles times the sum of p_i / 2)."""
import re

import numpy as np
import pytest

import tilemach
from test_collectives import SPLIT, check_mesh_op, make_data, target_file
from test_line_scatter import check_in_sequence, check_rs, check_same_bits, mir_names, source

RINGS = [((1, 3), [1]), ((1, 4), [1]), ((1, 5), [1]), ((1, 6), [1]), ((1, 8), [1]),
         ((2, 2, 2), [0, 1, 2]), ((4, 4), [0, 1]), ((4, 4), [1]), ((2, 4), [0, 1])]
RING_IDS = [f"{'x'.join(map(str, t))}-{''.join('xyz'[a] for a in ax)}" for t, ax in RINGS]


def slow_target(tmp_path):
    """tiny (wraparound everywhere) with hops of 1000 cycles instead of 20."""
    src = target_file(tmp_path, "always").read_text()
    assert "ici.hop_ns = 20" in src
    path = tmp_path / "tiny-slow.target"
    path.write_text(src.replace("ici.hop_ns = 20", "ici.hop_ns = 1000"))
    return str(path)


def mixed_target(tmp_path):
    """tiny with hops of 1000 cycles where only axes of a multiple of 4 chips wrap: on 4x3
    one level is a half ring and the other a line, in one collective."""
    src = target_file(tmp_path, "multiple-of 4").read_text()
    path = tmp_path / "tiny-mixed.target"
    path.write_text(src.replace("ici.hop_ns = 20", "ici.hop_ns = 1000"))
    return str(path)


def pick_target(tmp_path, which):
    if which == "mixed":
        return mixed_target(tmp_path)
    return {"tiny": "tiny", "slow": slow_target(tmp_path)}.get(which, which)


def full_shape(slice_shape, dim, p):
    s = list(slice_shape)
    s[dim] *= p
    return tuple(s)


def group_size(torus, axes):
    return int(np.prod([torus[a] for a in axes]))


def runs_half_rings(tmp_path, torus, axes, shape, dim, elem, target):
    """Whether the lowering picked the half rings (their receive buffers are in the MIR)."""
    return mir_names(tmp_path, torus, axes, shape, dim, elem, target, "lrs.ring.")


def timing_cycles(tmp_path, torus, axes, shape, target):
    """Cycles of a run in timing mode (strict: a hazard fails it; values unchecked)."""
    tile = tmp_path / "timing.tile"
    tile.write_text(source(torus, axes, shape, 0, "f32"))
    r = tilemach.run([tilemach.tilec_path(), "run", tile, "--target", target, "--torus",
                      "x".join(map(str, torus)), "--mode", "timing"])
    assert r.returncode == 0, r.stdout + r.stderr
    return int(re.search(r"run: (\d+) cycles", r.stdout).group(1))


@pytest.mark.parametrize("torus,axes", RINGS, ids=RING_IDS)
@pytest.mark.parametrize("slice_shape,dim", [((1,), 0), ((3, 16), 1), ((64, 128), 0),
                                             ((2, 48, 128), 1)])
@pytest.mark.parametrize("elem", ["f32", "bf16", "i32"])
@pytest.mark.parametrize("which", ["tiny", "slow"])
def test_ring_scatter_exact(tilec, tmp_path, torus, axes, slice_shape, dim, elem, which):
    """One element per chip to 48 KiB slices (384 KiB operands over 8 chips), the
    scattered dim outermost or not."""
    p = group_size(torus, axes)
    shape = full_shape(slice_shape, dim, p)
    if np.prod(shape) * 4 > 512 * 1024:
        pytest.skip("the operand and its receive buffers would not fit tiny's VMEM")
    if np.prod(shape) * 4 > 256 * 1024 and which == "tiny" and np.prod(torus) > 4:
        pytest.skip("the largest operands run on the slow target and the smaller tori")
    n = int(np.prod(torus))
    x = make_data(np.random.default_rng(n * 11 + int(np.prod(shape))), n, shape, elem)
    check_rs(tmp_path, torus, axes, shape, dim, elem, x, pick_target(tmp_path, which))


MIXED = [((4, 3), [0, 1]), ((4, 3), [1, 0]), ((3, 4), [0, 1]), ((4, 3, 2), [0, 1, 2]),
         ((4, 4, 3), [2, 1])]


@pytest.mark.parametrize("torus,axes", MIXED,
                         ids=[f"{'x'.join(map(str, t))}-{''.join('xyz'[a] for a in ax)}"
                              for t, ax in MIXED])
@pytest.mark.parametrize("slice_elems", [1, 300, 2048])
@pytest.mark.parametrize("elem", ["f32", "i32"])
def test_ring_scatter_mixed(tilec, tmp_path, torus, axes, slice_elems, elem):
    """Half rings and lines in one collective (their semaphores, credits and receive
    buffers side by side), in either order of the levels; the estimates choose them up
    to a few KiB per slice (the largest runs whichever wins)."""
    p = group_size(torus, axes)
    n = int(np.prod(torus))
    t = mixed_target(tmp_path)
    if slice_elems <= 300:
        assert runs_half_rings(tmp_path, torus, axes, (slice_elems * p,), 0, elem, t)
    x = make_data(np.random.default_rng(slice_elems + n), n, (slice_elems * p,), elem)
    check_rs(tmp_path, torus, axes, (slice_elems * p,), 0, elem, x, t)


@pytest.mark.parametrize("torus,decl,names", [((4, 4), "x = 16 on [0, 1]", ["x"]),
                                              ((4, 4), SPLIT, ["dp", "y"]),
                                              ((4, 4), SPLIT, ["y", "tp"]),
                                              ((1, 8), "u = 1 on [0], a = 2 on [1], b = 4 on [1]",
                                               ["b", "a"]),
                                              ((4, 4, 2), "x = 8 on [0, 2], y = 4 on [1]",
                                               ["x", "y"])])
@pytest.mark.parametrize("slice_elems", [5, 2048])
def test_ring_scatter_mesh_axes(tilec, tmp_path, torus, decl, names, slice_elems):
    """Axes that span several dims (one level per dim, a half ring where the dim wraps)
    or share one (lines of their own, or rings of 2), on tiny with long hops."""
    sizes = dict((n, int(s)) for n, s in re.findall(r"(\w+) = (\d+) on", decl))
    p = int(np.prod([sizes[n] for n in names]))
    x = make_data(np.random.default_rng(53), int(np.prod(torus)), (slice_elems * p,), "f32")
    check_mesh_op(tmp_path, torus, decl, names, "reduce_scatter", (slice_elems * p,), 0, "f32",
                  x, slow_target(tmp_path))


@pytest.mark.parametrize("torus,axes", [t for t in RINGS if t[0] != (2, 2, 2)],
                         ids=[i for i in RING_IDS if not i.startswith("2x2x2")])
@pytest.mark.parametrize("slice_elems", [1, 64, 512])
def test_ring_scatter_chosen(tilec, tmp_path, torus, axes, slice_elems):
    """With long hops tiny runs the half rings from one element per chip to 2 KiB slices,
    so the test above checks them there (from about 64 KiB operands on, tiny's links of
    10 bytes a cycle make the rings split over both directions and the axes quicker)."""
    p = group_size(torus, axes)
    assert runs_half_rings(tmp_path, torus, axes, (slice_elems * p,), 0, "f32",
                           slow_target(tmp_path))


@pytest.mark.parametrize("operand", [4 * 1024, 64 * 1024, 256 * 1024, 1024 * 1024])
def test_ring_scatter_chosen_v4(tilec, tmp_path, operand):
    """On v4-like's 4x4x4 the half rings win from 4 KiB to 1 MiB (a hop is 1050 cycles;
    at 1 MiB a slice is 4 vreg tiles, too few for the rings' 6 parts, and the half rings
    take 17.6k cycles where the rings of one direction took 29.9k)."""
    assert runs_half_rings(tmp_path, (4, 4, 4), [0, 1, 2], (operand // 4,), 0, "f32",
                           "v4-like")


@pytest.mark.parametrize("torus,axes", [((1, 4), [1]), ((2, 4), [0, 1]), ((2, 4), [1])])
@pytest.mark.parametrize("slice_shape,dim", [((1,), 0), ((64, 128), 0), ((3, 40, 128), 1)])
@pytest.mark.parametrize("elem", ["f32", "bf16", "i32"])
def test_ring_scatter_v4(tilec, tmp_path, torus, axes, slice_shape, dim, elem):
    """v4-like, whose axes of 4 wrap (of 2 do not), with values."""
    p = group_size(torus, axes)
    shape = full_shape(slice_shape, dim, p)
    n = int(np.prod(torus))
    x = make_data(np.random.default_rng(n + int(np.prod(shape))), n, shape, elem)
    check_rs(tmp_path, torus, axes, shape, dim, elem, x, "v4-like")


@pytest.mark.parametrize("kind,elem", [("max", "f32"), ("min", "f32"), ("max", "bf16"),
                                       ("min", "bf16")])
@pytest.mark.parametrize("torus,axes,target", [((1, 5), [1], "slow"), ((4, 4), [0, 1], "slow"),
                                               ((1, 8), [1], "slow"), ((1, 4), [1], "v4-like"),
                                               ((2, 4), [0, 1], "v4-like")])
def test_ring_scatter_kinds(tilec, tmp_path, kind, elem, torus, axes, target):
    """max and min: a stray zero or a partial combined twice would show in max of
    negatives and min of positives."""
    p = group_size(torus, axes)
    n = int(np.prod(torus))
    rng = np.random.default_rng(7)
    shape = (8 * p, 128)
    x = make_data(rng, n, shape, elem) + (-20 if kind == "max" else 20)
    check_rs(tmp_path, torus, axes, shape, 0, elem, x, pick_target(tmp_path, target),
             kind=kind)


@pytest.mark.parametrize("torus,axes,target", [((4, 4), [0, 1], "slow"), ((1, 5), [1], "slow"),
                                               ((1, 8), [1], "slow"), ((1, 4), [1], "v4-like"),
                                               ((2, 4), [0, 1], "v4-like"),
                                               ((4, 4, 4), [0, 1, 2], "slow"),
                                               ((4, 4, 4), [2, 0], "slow")])
@pytest.mark.parametrize("elem", ["f32", "bf16"])
def test_ring_scatter_same_bits(tilec, tmp_path, torus, axes, target, elem):
    """Random reals, whose sums depend on their order: two runs give the same bits, and
    they are the sums to rounding."""
    p = group_size(torus, axes)
    t = pick_target(tmp_path, target)
    check_same_bits(tmp_path, torus, axes, 512, elem, t, 43,
                    check=lambda: runs_half_rings(tmp_path, torus, axes, (512 * p,), 0, elem, t))


@pytest.mark.parametrize("operand", [4 * 1024, 64 * 1024])
def test_ring_scatter_latency(tilec, tmp_path, operand):
    """4 KiB and 64 KiB over v4-like's 4x4x4 are latency-bound: the bench's term is hop
    cycles times sum of p_i / 2, 6 hops in all; the schedule takes at most 1.5 times that
    (the one-shot all_reduce took 2.07 times at 64 KiB)."""
    t = tilemach.load_target("v4-like", "4x4x4")
    cycles = timing_cycles(tmp_path, (4, 4, 4), [0, 1, 2], (operand // 4,), "v4-like")
    latency = 3 * 2 * t.hop_cycles()
    assert cycles <= 1.5 * latency, (cycles, latency)


@pytest.mark.parametrize("operand", [16 * 1024, 256 * 1024])
def test_ring_scatter_v4_cube(tilec, tmp_path, operand):
    """The whole 4x4x4 cube runs without a hazard in timing mode (values: the tests above
    on v4-like's 1x4 and 2x4), 256 KiB too within 1.6 times the latency term (about a
    third of it crosses the links)."""
    t = tilemach.load_target("v4-like", "4x4x4")
    cycles = timing_cycles(tmp_path, (4, 4, 4), [0, 1, 2], (operand // 4,), "v4-like")
    assert cycles <= 1.6 * 3 * 2 * t.hop_cycles(), cycles


@pytest.mark.parametrize("torus,axes,target", [((1, 8), [1], "slow"), ((4, 4), [0, 1], "slow"),
                                               ((1, 5), [1], "slow"), ((2, 4), [0, 1], "v4-like"),
                                               ((4, 3), [0, 1], "mixed")])
def test_ring_scatter_in_sequence(tilec, tmp_path, torus, axes, target):
    """test_line_scatter.check_in_sequence on rings (and a mix of a ring and a line)."""
    check_in_sequence(tmp_path, torus, axes, pick_target(tmp_path, target), 47)