"""all_gather over axes without wraparound (lines), where blocks flow straight outward
from their owners both ways (backend-vliw/gen_collective_line_gather.c), on tiny with
`torus.wrap = never` and on v5e-like (whose slices below 16 chips do not wrap). Lines of
3 to 8 chips give the end chips (which send one way only and receive from one side
only) and the chips between different roles from one program.

Data are small integers, checked exactly against numpy (bf16 bit for bit). Where the
line schedule runs, the link statistics show it: every transfer crosses one link and
each chip sends each block it holds on at most once per direction, so the bytes on the
links are exactly what each level of lines must move (p - 1 blocks into every chip);
the halfway rings and the parts route the rings' closing steps across the line."""
import re

import numpy as np
import pytest

import tilemach
from test_collectives import (axes_attr, compile_and_run, groups, make_data, mesh_groups,
                              run_on_mesh, target_file)

LINES = [((1, 3), [1]), ((1, 4), [1]), ((1, 5), [1]), ((1, 8), [1]), ((8, 1), [0]),
         ((4, 4), [0, 1]), ((4, 4), [1]), ((4, 4), [0]), ((2, 4), [0, 1]), ((4, 2), [0, 1]),
         ((4, 2), [1, 0]), ((3, 2), [0, 1])]
# elements per chip, gathered along dim 0: one element to 64 KiB of f32 per chip
SHAPES = [(1,), (3,), (7, 5), (64, 128), (128, 128)]


def link_bytes(out):
    """Bytes per link of `tilec run --stats`, summed, and the DMA bytes sent."""
    links = sum(int(b) for b in re.findall(r"^chip \d+ -> chip \d+ \(axis \d [+-]\)\s+(\d+)",
                                            out, re.M))
    sent = int(re.search(r"(\d+) bytes sent", out).group(1))
    return links, sent


def line_bytes(torus, axes, shard_bytes):
    """Bytes a gather by lines sends over `axes` (innermost first): per level each line
    of p chips moves p - 1 blocks into every chip, one hop each."""
    n, blk, total = int(np.prod(torus)), shard_bytes, 0
    for a in reversed(axes):
        p = torus[a]
        if p > 1:
            total += n * (p - 1) * blk
        blk *= p
    return total


def gather(tmp_path, torus, axes, shape, elem, x, target, dim=0):
    p = int(np.prod([torus[a] for a in axes]))
    oshape = list(shape)
    oshape[dim] *= p
    y, out = compile_and_run(tmp_path, torus, f"all_gather %a {{dim = {dim}, axes = "
                             f"{axes_attr(axes)}}}", shape, oshape, elem, x, target=target,
                             stats=True)
    for chip, (_, members) in enumerate(groups(torus, axes)):
        np.testing.assert_array_equal(y[chip], np.concatenate(x[members], axis=dim),
                                      err_msg=f"chip {chip}")
    return out


@pytest.mark.parametrize("torus,axes", LINES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("elem", ["f32", "bf16", "i32"])
def test_line_all_gather_exact(tilec, tmp_path, torus, axes, shape, elem):
    n = int(np.prod(torus))
    if np.prod(shape) > 64 * 128 and n > 4:
        pytest.skip("the largest size runs on the smaller meshes")
    rng = np.random.default_rng(n * 71 + int(np.prod(shape)))
    x = make_data(rng, n, shape, elem)
    out = gather(tmp_path, torus, axes, shape, elem, x, target_file(tmp_path, "never"))
    links, sent = link_bytes(out)
    if np.prod(shape) <= 64 * 128:  # small and medium: the line schedule, by estimate
        eb = 2 if elem == "bf16" else 4
        want = line_bytes(torus, axes, int(np.prod(shape)) * eb)
        assert (links, sent) == (want, want), (links, sent, want)


@pytest.mark.parametrize("torus,axes", [((3, 3, 3), [0, 1, 2]), ((2, 3, 4), [0, 1, 2]),
                                        ((2, 3, 4), [2, 0]), ((4, 1, 3), [2, 0])])
@pytest.mark.parametrize("elems", [1, 5, 1024, 8 * 1024])
def test_line_all_gather_3d(tilec, tmp_path, torus, axes, elems):
    """Three lines at a level (one part per axis, rotated), lines of different lengths
    in the same iterations, and axes named out of order. On lines of 3 with tiny's
    short hops the parts' rings (routed closing steps of 2 hops) are estimated quicker
    beyond a few elements, and measured so; elsewhere the lines run."""
    n = int(np.prod(torus))
    x = make_data(np.random.default_rng(elems + n), n, (elems,), "f32")
    out = gather(tmp_path, torus, axes, (elems,), "f32", x, target_file(tmp_path, "never"))
    want = line_bytes(torus, axes, elems * 4)
    if torus != (3, 3, 3) or elems <= 5:
        assert link_bytes(out) == (want, want)


@pytest.mark.parametrize("torus,axes", [((1, 5), [1]), ((4, 4), [0, 1]), ((2, 4), [1, 0])])
@pytest.mark.parametrize("shape", [(3, 5), (4, 96, 128), (8, 3, 7)])
@pytest.mark.parametrize("elem", ["f32", "bf16"])
def test_line_all_gather_inner_dim(tilec, tmp_path, torus, axes, shape, elem):
    """Gathered along dim 1, a shard is several runs of the result: the shards go whole
    by the lines into scratch, and one local strided copy puts their rows in place, so
    the links carry exactly the lines' bytes (the rings that move strided blocks routed
    their closing steps across the line)."""
    n = int(np.prod(torus))
    x = make_data(np.random.default_rng(13), n, shape, elem)
    out = gather(tmp_path, torus, axes, shape, elem, x, target_file(tmp_path, "never"), dim=1)
    want = line_bytes(torus, axes, int(np.prod(shape)) * (2 if elem == "bf16" else 4))
    assert link_bytes(out) == (want, want)


def test_line_all_gather_inner_dim_latency(tilec, tmp_path):
    """The decode MLP's gather of its hidden activations (8 x 14336 bf16, split by
    columns over 4x4 v5e-like): within 1.25x of the alpha-beta time of lines, their
    hops plus their bytes (13.6k cycles against 12.6k); the strided rings took 30k."""
    torus, axes, shape = (4, 4), [0, 1], (8, 896)
    t = tilemach.load_target("v5e-like", "4x4")
    x = make_data(np.random.default_rng(31), 16, shape, "bf16")
    out = gather(tmp_path, torus, axes, shape, "bf16", x, "v5e-like", dim=1)
    cycles = int(re.search(r"run: (\d+) cycles", out).group(1))
    latency = 2 * 3 * t.hop_cycles()
    # the bandwidth term of lines (REFERENCE.md: about 2x a ring's (n - 1)/n V/W), with
    # the whole result V over both axes' links
    V = 16 * 8 * 896 * 2
    bandwidth = 2 * t.xfer_cycles(V * 15 // 16, 2 * 2 * t.ici_bw)
    assert cycles <= 1.25 * (latency + bandwidth), (cycles, latency, bandwidth)


@pytest.mark.parametrize("wrap,torus,axes", [("multiple-of 4", (2, 4), [0, 1]),
                                             ("multiple-of 4", (3, 4), [0, 1]),
                                             ("multiple-of 4", (4, 3), [0, 1]),
                                             ("multiple-of 4", (4, 3), [1])])
def test_line_all_gather_mixed(tilec, tmp_path, wrap, torus, axes):
    """An axis that wraps next to one that does not: the line's level and the halfway
    rings' level in one gather, each on its own semaphores."""
    n = int(np.prod(torus))
    x = make_data(np.random.default_rng(17), n, (8, 128), "f32")
    gather(tmp_path, torus, axes, (8, 128), "f32", x, target_file(tmp_path, wrap))


SPLIT = "dp = 2 on [0], tp = 2 on [0], y = 4 on [1]"


@pytest.mark.parametrize("torus,decl,names", [
    ((4, 4), SPLIT, ["y"]), ((4, 4), SPLIT, ["dp", "y"]), ((4, 4), SPLIT, ["dp", "tp", "y"]),
    ((4, 4), "x = 16 on [0, 1]", ["x"]),
    ((1, 6), "u = 1 on [0], a = 2 on [1], b = 3 on [1]", ["b"]),
    ((1, 6), "u = 1 on [0], a = 2 on [1], b = 3 on [1]", ["b", "a"]),
    ((1, 6), "u = 1 on [0], b = 3 on [1], a = 2 on [1]", ["b"]),
    ((2, 6), "x = 2 on [0], b = 3 on [1], a = 2 on [1]", ["x", "b"])])
@pytest.mark.parametrize("elems", [1, 1024])
def test_line_all_gather_mesh_axes(tilec, tmp_path, torus, decl, names, elems):
    """Shares of a dim and axes over several dims: a share's line steps `inner` chips
    along its dim (its neighbours' transfers route through the chips between), an axis
    over several dims is one line per dim."""
    gs = mesh_groups(torus, decl, names)
    p = len(gs[0][1])
    n = int(np.prod(torus))
    x = make_data(np.random.default_rng(19 + elems), n, (elems,), "f32")
    y, _ = run_on_mesh(tmp_path, torus, decl, f"all_gather %a {{dim = 0, axes = "
                       f"[{', '.join(names)}]}}", (elems,), (elems * p,), "f32", x,
                       target=str(target_file(tmp_path, "never")))
    for chip, (_, members) in enumerate(gs):
        np.testing.assert_array_equal(y[chip], np.concatenate(x[members]), err_msg=f"chip {chip}")


@pytest.mark.parametrize("shift", [5, -3])
def test_line_permute_spanning(tilec, tmp_path, shift):
    """collective_permute along an axis over two dims gathers the whole axis first (an
    all_gather over its dims, lines here) and keeps the block of position q - shift."""
    decl = "x = 16 on [0, 1]"
    x = make_data(np.random.default_rng(29), 16, (9, 70), "f32")
    y, _ = run_on_mesh(tmp_path, (4, 4), decl, f"collective_permute %a {{axis = x, shift = "
                       f"{shift}}}", (9, 70), (9, 70), "f32", x,
                       target=str(target_file(tmp_path, "never")))
    for chip, (rank, members) in enumerate(mesh_groups((4, 4), decl, ["x"])):
        np.testing.assert_array_equal(y[chip], x[members[(rank - shift) % 16]],
                                      err_msg=f"chip {chip}")


def test_line_all_gather_twice(tilec, tmp_path):
    """Two gathers in a row over the same lines: a fast chip may send into the second
    while its neighbour still waits (on credits) in the first; counts stay right."""
    torus = (1, 5)
    x = make_data(np.random.default_rng(23), 5, (7,), "f32")
    src = ("mesh @m = torus<1x5>(x, y)\n\nfunc @f(%a: tensor<7xf32>) -> tensor<175xf32> "
           "attributes {mesh = @m} {\n"
           "  %b = all_gather %a {dim = 0, axes = [y]} : tensor<35xf32>\n"
           "  %c = all_gather %b {dim = 0, axes = [y]} : tensor<175xf32>\n"
           "  return %c\n}\n")
    tile = tmp_path / "twice.tile"
    tile.write_text(src)
    xin, yout = tmp_path / "a.npy", tmp_path / "y.npy"
    np.save(xin, x)
    target = target_file(tmp_path, "never")
    p = tilemach.run([tilemach.tilec_path(), "run", tile, "--target", target, "--torus", "1x5",
                      "--in", f"a={xin}", "--out", f"result={yout}"])
    assert p.returncode == 0, p.stdout + p.stderr
    y = np.load(yout)
    once = x.reshape(-1)
    want = np.concatenate([once] * 5)
    for chip in range(5):
        np.testing.assert_array_equal(y[chip], want, err_msg=f"chip {chip}")


@pytest.mark.parametrize("total", [4 * 1024, 64 * 1024])
def test_line_all_gather_latency(tilec, tmp_path, total):
    """4 KiB and 64 KiB (the whole result) over 4x4 v5e-like, both axes lines: within 1.5x
    of REFERENCE.md's latency term for lines, (n - 1) alpha per axis; the halfway rings,
    whose closing steps cross the line, took 2.0x and 2.2x."""
    torus, axes = (4, 4), [0, 1]
    t = tilemach.load_target("v5e-like", "4x4")
    elems = total // 4 // 16
    x = make_data(np.random.default_rng(total), 16, (elems,), "f32")
    out = gather(tmp_path, torus, axes, (elems,), "f32", x, "v5e-like")
    cycles = int(re.search(r"run: (\d+) cycles", out).group(1))
    latency = 2 * 3 * t.hop_cycles()
    assert cycles <= 1.5 * latency, (cycles, latency)
    assert link_bytes(out) == (line_bytes(torus, axes, elems * 4),) * 2
