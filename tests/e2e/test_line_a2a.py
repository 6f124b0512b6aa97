"""all_to_all over axes without wraparound (backend-vliw/gen_collective_line_a2a.c): blocks
go straight along each line, store and forward one hop an iteration, chips at the ends
doing less than the others from one program (ghost sends, credits).

Run on tiny with `torus.wrap = never` (every axis a line) and on v5e-like (a 4x4 slice:
lines), in strict mode, against numpy, bit for bit: lines of 3, 4, 5 and 8 chips, 4x4
over both axes and over one, 2x4, split and concat along different dims, f32, bf16 and
i32, from one element per chip to a few hundred KiB. The links' byte counts must be
those of shortest paths (one byte more per empty tail), small operands must stay within
1.5x the hop-latency term, and large ones near the busiest link's bytes over its
bandwidth."""
import itertools
import re

import numpy as np
import pytest

import tilemach
from test_collectives import (MESH_AXES, MESH_IDS, check_mesh_op, compile_and_run, groups,
                              make_data, mesh_groups, run_on_mesh, target_file)

LINES = [((1, 3), [1]), ((1, 4), [1]), ((1, 5), [1]), ((1, 8), [1]), ((4, 4), [0, 1]),
         ((4, 4), [0]), ((4, 4), [1]), ((2, 4), [0, 1]), ((2, 4), [1]), ((2, 4), [0])]
# One block's shape (every chip sends p of them along split) and the dims.
BLOCKS = [((1,), 0, 0), ((3, 5), 1, 0), ((8, 1, 5), 1, 2), ((2, 16, 32), 2, 0)]


def check(tmp_path, torus, axes, block, split, concat, elem, target, seed=13):
    """Runs all_to_all on every chip and compares with numpy; returns tilec's stdout."""
    p = int(np.prod([torus[a] for a in axes]))
    shape = list(block)
    shape[split] *= p
    oshape = list(shape)
    oshape[split] //= p
    oshape[concat] *= p
    x = make_data(np.random.default_rng(seed), int(np.prod(torus)), tuple(shape), elem)
    y, out = compile_and_run(tmp_path, torus, f"all_to_all %a {{split_dim = {split}, concat_dim "
                             f"= {concat}, axes = [{', '.join('xyz'[a] for a in axes)}]}}",
                             tuple(shape), tuple(oshape), elem, x, target=str(target),
                             stats=True)
    for chip, (rank, members) in enumerate(groups(torus, axes)):
        want = np.concatenate([np.split(x[m], p, axis=split)[rank] for m in members],
                              axis=concat)
        np.testing.assert_array_equal(y[chip], want, err_msg=f"chip {chip}")
    return out


def cycles(out):
    m = re.search(r"run: (\d+) cycles", out)
    assert m, out
    return int(m.group(1))


def link_bytes(out):
    """{(from chip, to chip): bytes} from the --stats table."""
    links = {}
    for a, b, n in re.findall(r"chip (\d+) -> chip (\d+) \(axis \d [+-]\)\s+(\d+)", out):
        links[(int(a), int(b))] = int(n)
    assert links, out
    return links


def shortest_path_bytes(torus, axis, blk):
    """Bytes on each link when every chip of each line of `axis` sends blk bytes straight
    to every other chip of its line."""
    ids = {c: i for i, c in enumerate(itertools.product(*[range(n) for n in torus]))}
    load = {}
    for c in ids:
        for t in range(torus[axis]):
            at = list(c)
            step = 1 if t > c[axis] else -1
            while at[axis] != t:
                nxt = list(at)
                nxt[axis] += step
                key = (ids[tuple(at)], ids[tuple(nxt)])
                load[key] = load.get(key, 0) + blk
                at = nxt
    return load


@pytest.mark.parametrize("torus,axes", LINES)
@pytest.mark.parametrize("block,split,concat", BLOCKS)
@pytest.mark.parametrize("elem", ["f32", "bf16", "i32"])
def test_line_all_to_all(tilec, tmp_path, torus, axes, block, split, concat, elem):
    check(tmp_path, torus, axes, block, split, concat, elem, target_file(tmp_path, "never"))


@pytest.mark.parametrize("torus,axes", [((1, 5), [1]), ((1, 8), [1]), ((2, 8), [1]),
                                        ((8, 2), [0, 1])])
@pytest.mark.parametrize("block,split,concat,elem", [((5, 1001), 1, 0, "i32"),
                                                     ((7, 1500), 0, 1, "bf16")])
def test_line_sub_chunks(tilec, tmp_path, torus, axes, block, split, concat, elem):
    """Large parts go in sub-chunks, each forwarded as soon as it has landed: here two
    (as many as tiny's 8 DMAs in flight leave room for) of 10,010 bytes, not whole i32
    elements, or of 10,500 bytes."""
    check(tmp_path, torus, axes, block, split, concat, elem, target_file(tmp_path, "never"))


@pytest.mark.parametrize("n,elem", [(5, "f32"), (8, "i32")])
def test_line_four_sub_chunks(tilec, tmp_path, n, elem):
    """Blocks of 132,000 bytes on v5e-like: four sub-chunks of 33,000 bytes, so the first
    chip, which sends only in the first iteration, sends a tail and a head for each."""
    out = check(tmp_path, (1, n), [1], (3, 11000), 1, 0, elem, "v5e-like")
    m = re.search(r"chip 0 -> chip 1 \(axis 1 \+\)\s+(\d+)\s+\d+\s+(\d+)", out)
    assert m and int(m.group(1)) == (n - 1) * 132000 and int(m.group(2)) == 8, out


# Elements per chip on v5e-like: one per chip up to 256 KiB of f32.
@pytest.mark.parametrize("torus,axes", [((1, 4), [1]), ((4, 4), [0, 1]), ((4, 4), [1])])
@pytest.mark.parametrize("elems", [1, 64, 1024, 3 * 1024, 64 * 1024])
def test_line_sizes(tilec, tmp_path, torus, axes, elems):
    p = int(np.prod([torus[a] for a in axes]))
    check(tmp_path, torus, axes, (elems,), 0, 0, "f32", "v5e-like")
    if elems >= 1024:  # and through the dims: rows of the block along split, columns concat
        check(tmp_path, torus, axes, (p, elems // p), 0, 1, "f32", "v5e-like")


@pytest.mark.parametrize("n", [3, 4, 5, 8])
def test_line_links_carry_shortest_paths(tilec, tmp_path, n):
    """Every link of a line carries the bytes of the straight routes, plus one byte per
    empty tail (a chip whose next chip ends the line: at most n - 1 of them)."""
    blk = 4 * 96
    out = check(tmp_path, (1, n), [1], (96,), 0, 0, "f32", target_file(tmp_path, "never"))
    want = shortest_path_bytes((1, n), 1, blk)
    got = link_bytes(out)
    assert set(got) == set(want), (got, want)
    for link, b in want.items():
        assert b <= got[link] <= b + n - 1, (link, got[link], b)


def test_line_links_4x4(tilec, tmp_path):
    """Over both axes of a 4x4 slice every byte crosses as many links as its shortest
    path (|dx| + |dy|), whatever the order of the axes its part takes."""
    blk = 4 * 64
    out = check(tmp_path, (4, 4), [0, 1], (64,), 0, 0, "f32", "v5e-like")
    coords = list(itertools.product(range(4), range(4)))
    hops = sum(abs(a[0] - b[0]) + abs(a[1] - b[1]) for a in coords for b in coords)
    total = sum(link_bytes(out).values())
    assert hops * blk <= total <= hops * blk + 2 * 16 * 2 * 3, (total, hops * blk)


@pytest.mark.parametrize("torus,axes,elems", [((4, 4), [0, 1], 1024), ((4, 4), [0, 1], 16384),
                                              ((1, 4), [1], 1024), ((1, 4), [1], 16384)])
def test_line_latency(tilec, tmp_path, torus, axes, elems):
    """4 KiB and 64 KiB per chip are latency-bound: at most 1.5x the hop latency of the
    longest straight route (p - 1 hops per axis), as bench/collectives floors it. The
    same inputs give the same bits (checked) and the same cycles."""
    t = tilemach.load_target("v5e-like", "x".join(map(str, torus)))
    latency = sum(torus[a] - 1 for a in axes) * t.hop_cycles()
    block = (elems // int(np.prod([torus[a] for a in axes])),)
    first = cycles(check(tmp_path, torus, axes, block, 0, 0, "f32", "v5e-like"))
    assert first <= 1.5 * latency, (first, latency)
    again = cycles(check(tmp_path, torus, axes, block, 0, 0, "f32", "v5e-like"))
    assert again == first


@pytest.mark.parametrize("n", [4, 5, 8])
def test_line_bandwidth(tilec, tmp_path, n):
    """A large all_to_all on a line is bound by its middle link, which carries
    floor(n/2) * ceil(n/2) blocks: within 15% of that over the link's bandwidth plus the
    n - 1 hops of the longest route."""
    t = tilemach.load_target("v5e-like", f"1x{n}")
    block = 16 * 1024  # f32 elements: 64 KiB blocks
    out = check(tmp_path, (1, n), [1], (block,), 0, 0, "f32", "v5e-like")
    bound = t.xfer_cycles((n // 2) * ((n + 1) // 2) * 4 * block, t.ici_bw)
    bound += (n - 1) * t.hop_cycles()
    assert cycles(out) <= 1.15 * bound, (cycles(out), bound)


# A level where one part's axis wraps (x, a whole dim of tiny) and the other's does not
# (a, a share of a dim): the ring exchange and the line's in one level.
MIXED = "x = 2 on [0], a = 2 on [1], b = 2 on [1]"


@pytest.mark.parametrize("names", [["x", "a"], ["b", "x"], ["a", "b"]])
@pytest.mark.parametrize("shape,dim", [((6,), 0), ((4, 48, 128), 1)])
def test_line_and_ring_in_one_level(tilec, tmp_path, names, shape, dim):
    torus = (2, 4)
    gs = mesh_groups(torus, MIXED, names)
    p = len(gs[0][1])
    shape = list(shape)
    shape[dim] *= p
    x = make_data(np.random.default_rng(41), 8, tuple(shape), "f32")
    y, _ = run_on_mesh(tmp_path, torus, MIXED, f"all_to_all %a {{split_dim = {dim}, concat_dim "
                       f"= {dim}, axes = [{', '.join(names)}]}}", tuple(shape), tuple(shape),
                       "f32", x)
    for chip, (rank, members) in enumerate(gs):
        want = np.concatenate([np.split(x[m], p, axis=dim)[rank] for m in members], axis=dim)
        np.testing.assert_array_equal(y[chip], want, err_msg=f"chip {chip}")


@pytest.mark.parametrize("torus,decl,names", MESH_AXES, ids=MESH_IDS)
@pytest.mark.parametrize("shape,dim,elem", [((48, 128), 0, "f32"), ((2, 24, 128), 1, "bf16")])
def test_line_mesh_axes(tilec, tmp_path, torus, decl, names, shape, dim, elem):
    """Axes that share a torus dim or span several, every dim a line: positions and
    neighbours from coord as the rings take them, on lines."""
    p = len(mesh_groups(torus, decl, names)[0][1])
    shape = list(shape)
    shape[dim] *= p
    x = make_data(np.random.default_rng(43), int(np.prod(torus)), tuple(shape), elem)
    check_mesh_op(tmp_path, torus, decl, names, "all_to_all", tuple(shape), dim, elem, x,
                  target=str(target_file(tmp_path, "never")))
