"""collective_permute with `cycle` and `halves` (ops.h) in the reference evaluator
(tileref.Module.run_spmd), on hand-written per-chip programs: with `cycle = c` a chip's
position is its place on the cycle through the grid of axis x c (tile_mesh_cycle_pos,
walked again below), and the chip at position q receives the operand of position
q - shift; with `halves = 1` rows [n/2, n) of dim 0 come from position q + shift
instead. Every chip's operand is distinct, so each result names its sender. The cycle
itself: a bijection onto 0 .. P-1 whose consecutive places (the last and the first too)
are one grid step apart, on grids of many sizes, and tileref's copy of it agrees."""
import numpy as np
import pytest

import tileref


def cycle_walk(x, y):
    """The cycle's places in order, walked the way ops.h describes it (not from
    tile_mesh_cycle_pos's formula): row 0 left to right, the rows below snaking over
    columns 1 .. y-1, column 0 back up; an odd first axis walks the transposed grid; an
    axis of one leaves the other's ring. None where no such cycle exists."""
    if x == 1 or y == 1:
        return [(i, j) for i in range(x) for j in range(y)]
    if x % 2:
        return None if y % 2 else [(i, j) for j, i in cycle_walk(y, x)]
    walk = [(0, j) for j in range(y)]
    for i in range(1, x):
        walk += [(i, j) for j in (range(y - 1, 0, -1) if i % 2 else range(1, y))]
    return walk + [(i, 0) for i in range(x - 1, 0, -1)]


def cycle_pos(x, y, i, j):
    """The place of (i, j) on the walk; -1 where there is no cycle."""
    walk = cycle_walk(x, y)
    return -1 if walk is None else walk.index((i, j))


# Places on small grids, by hand: row 0 left to right, a snake over columns 1 .. y-1,
# column 0 back up; an odd first axis snakes the other way round.
BY_HAND = {(2, 2): [[0, 1], [3, 2]],
           (2, 4): [[0, 1, 2, 3], [7, 6, 5, 4]],
           (4, 2): [[0, 1], [7, 2], [6, 3], [5, 4]],
           (3, 4): [[0, 11, 10, 9], [1, 4, 5, 8], [2, 3, 6, 7]],
           (4, 4): [[0, 1, 2, 3], [15, 6, 5, 4], [14, 7, 8, 9], [13, 12, 11, 10]]}


@pytest.mark.parametrize("grid", sorted(BY_HAND))
def test_cycle_places_by_hand(grid):
    x, y = grid
    got = [[cycle_pos(x, y, i, j) for j in range(y)] for i in range(x)]
    assert got == BY_HAND[grid]


@pytest.mark.parametrize("x", range(1, 11))
@pytest.mark.parametrize("y", range(1, 11))
def test_consecutive_places_are_one_grid_step_apart(x, y):
    places = {(i, j): cycle_pos(x, y, i, j) for i in range(x) for j in range(y)}
    assert all(tileref.cycle_pos(x, y, i, j) == q for (i, j), q in places.items())
    if x % 2 and y % 2 and x > 1 and y > 1:
        assert set(places.values()) == {-1}  # no such cycle
        return
    p = x * y
    at = {q: c for c, q in places.items()}
    assert sorted(at) == list(range(p))
    for q in range(p):
        (i, j), (k, l) = at[q], at[(q + 1) % p]
        step = abs(i - k) + abs(j - l)
        if q < p - 1 or (x > 1 and y > 1):
            assert step == 1, (q, at[q], at[(q + 1) % p])
        else:  # along one axis: the ring closes over its wraparound link
            assert step == max(x, y) - 1


# ---- the op ----

ROWS = 4


def program(dims, axis, cycle, shift, halves):
    names = "xyz"[: len(dims)]
    attrs = f"axis = {axis}, shift = {shift}"
    attrs += f", cycle = {cycle}" if cycle else ""
    attrs += ", halves = 1" if halves else ""
    t = f"tensor<{ROWS}x3xf32>"
    return (f"mesh @m = torus<{'x'.join(map(str, dims))}>({', '.join(names)})\n"
            f"func @f(%a: {t}) -> {t} attributes {{mesh = @m}} {{\n"
            f"  %y = collective_permute %a {{{attrs}}} : {t}\n  return %y\n}}\n")


def run(dims, axis, cycle, shift, halves):
    """Every chip's operand and result, in row-major chip order."""
    names = list("xyz"[: len(dims)])
    mod = tileref.parse(program(dims, axis, cycle, shift, halves))
    nchips = int(np.prod(dims))
    x = np.arange(nchips * ROWS * 3, dtype=np.float32).reshape(nchips * ROWS, 3)
    sh = [tuple(names), tileref.NONE]  # chip c holds rows [c * ROWS, (c + 1) * ROWS)
    y, = mod.run_spmd("f", dict(zip(names, dims)), [sh], [sh], x)
    return x.reshape(nchips, ROWS, 3), y.reshape(nchips, ROWS, 3)


def senders(dims, axis, cycle, shift):
    """Per chip, the chips shift places back and shift places on."""
    a, c = "xyz".index(axis), "xyz".index(cycle) if cycle else None
    X, Y = dims[a], dims[c] if cycle else 1
    chips = list(np.ndindex(*dims))

    def place(ch):
        return cycle_pos(X, Y, ch[a], ch[c] if cycle else 0)

    def at(ch, q):
        return [k for k, o in enumerate(chips) if place(o) == q % (X * Y) and
                all(o[d] == ch[d] for d in range(len(dims)) if d not in (a, c))]
    out = []
    for ch in chips:
        (back,), (on,) = at(ch, place(ch) - shift), at(ch, place(ch) + shift)
        out.append((back, on))
    return chips, out


def check(dims, axis, cycle, shift, halves):
    x, y = run(dims, axis, cycle, shift, halves)
    _, src = senders(dims, axis, cycle, shift)
    for k, (back, on) in enumerate(src):
        want = x[back].copy()
        if halves:
            want[ROWS // 2:] = x[on][ROWS // 2:]
        np.testing.assert_array_equal(y[k], want, err_msg=f"chip {k}")


@pytest.mark.parametrize("halves", [0, 1])
@pytest.mark.parametrize("shift", [1, -1, 2])
@pytest.mark.parametrize("dims", [(2, 2), (2, 4), (4, 2), (3, 4), (4, 4)])
def test_cycle_permute_receives_from_the_chip_shift_places_back(dims, shift, halves):
    check(dims, "x", "y", shift, halves)


@pytest.mark.parametrize("dims", [(2, 2), (2, 4), (4, 2), (3, 4), (4, 4)])
def test_one_place_on_the_cycle_is_one_grid_step(dims):
    """By the values alone: with shift 1 every chip's data comes from a grid neighbour
    (no wraparound link), and no two chips get the same chip's data."""
    x, y = run(dims, "x", "y", 1, 0)
    chips = list(np.ndindex(*dims))
    from_ = [int(r[0, 0]) // (ROWS * 3) for r in y]
    assert sorted(from_) == list(range(len(chips)))
    for k, f in enumerate(from_):
        assert sum(abs(a - b) for a, b in zip(chips[k], chips[f])) == 1


@pytest.mark.parametrize("case", [
    ((2, 2, 2), "z", "x", 1, 0),   # a third axis the cycle leaves alone
    ((2, 2, 2), "z", "x", 3, 1),
    ((1, 4), "x", "y", 1, 1),      # an axis of one chip: the ring along the other
    ((2, 4), "x", "y", 8, 0),      # a whole turn
    ((1, 4), "y", None, 1, 1),     # halves without a cycle
    ((4, 4), "x", None, -1, 1),
    ((4, 4), "y", None, 2, 0),     # neither: as before
])
def test_other_meshes_and_halves_alone(case):
    check(*case)


def test_halves_of_one_place_swap_neighbours():
    """1x2, shift 1, halves: both neighbours are the other chip, so each chip's result is
    the other's operand whole."""
    x, y = run((1, 2), "y", None, 1, 1)
    np.testing.assert_array_equal(y, x[::-1])


def test_no_cycle_through_odd_by_odd():
    mod = tileref.parse(program((3, 3), "x", "y", 1, 0))
    x = np.zeros((9 * ROWS, 3), np.float32)
    sh = [("x", "y"), tileref.NONE]
    with pytest.raises(tileref.TileRefError, match="no cycle through 3 x 3 chips"):
        mod.run_spmd("f", {"x": 3, "y": 3}, [sh], [sh], x)
