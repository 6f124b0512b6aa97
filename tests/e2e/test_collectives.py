"""Collectives of a mesh `func` compiled for the torus (backend-vliw/gen_collective*.c) and
run on the emulator in strict mode, one slice of data per chip, against numpy.

Meshes: 1x4 (a ring and, on a target without wraparound, a line), 2x2, 2x2x2, 4x4 and a
2x4 torus where only the long axis wraps. Sizes from one element (4 bytes of f32, 2 of
bf16) to a few hundred KiB on tiny; every collective from 4 bytes to 16 MiB on an axis of
4 of v4-like (wraps) and v5e-like (a line), which takes every schedule (one-shot, halfway,
parts, pieces); f32, bf16 and i32. Data are small integers, so sums are exact in any
order and bf16 results can be compared bit for bit. Some tests check cycles against the
alpha-beta cost and the latency term of REFERENCE.md "Collectives"."""
import itertools
import re
import zlib

import numpy as np
import pytest

import tilemach

TINY = tilemach.ROOT / "targets" / "tiny.target"
NP_ELEM = {"f32": np.float32, "i32": np.int32}


def bf16_bits_to_f32(a):
    """A .npy of bf16 (2-byte void, V2) as f32."""
    return (a.view(np.uint16).astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16_bits(a):
    """f32 values exact in bf16 (small integers) as the V2 array tilec reads for bf16."""
    return (np.asarray(a, np.float32).view(np.uint32) >> 16).astype(np.uint16).view("V2")


def target_file(tmp_path, wrap):
    """tiny with another wraparound rule (`never`, `multiple-of 4`)."""
    src = TINY.read_text()
    assert "torus.wrap = always" in src
    path = tmp_path / "tiny-wrap.target"
    path.write_text(src.replace("torus.wrap = always", f"torus.wrap = {wrap}"))
    return path


def mesh_decl(torus):
    names = ["x", "y", "z"][: len(torus)]
    return f"mesh @m = torus<{'x'.join(map(str, torus))}>({', '.join(names)})", names


def ttype(shape, elem):
    return f"tensor<{'x'.join(map(str, shape))}x{elem}>"


def mesh_func(mesh, body, in_shape, out_shape, elem):
    """The source of `%y = BODY %a : OUT` as a mesh function after the mesh line MESH."""
    return (f"{mesh}\n\nfunc @f(%a: {ttype(in_shape, elem)}) -> {ttype(out_shape, elem)} "
            f"attributes {{mesh = @m}} {{\n  %y = {body} : {ttype(out_shape, elem)}\n"
            f"  return %y\n}}\n")


def run_source(tmp_path, src, torus, elem, data, target, stats=False):
    """Runs the mesh function SRC on every chip; data has a leading chip dimension.
    Returns (per-chip result as float/int array, stdout)."""
    tile = tmp_path / "coll.tile"
    tile.write_text(src)
    xin, yout = tmp_path / "a.npy", tmp_path / "y.npy"
    np.save(xin, f32_to_bf16_bits(data) if elem == "bf16" else data.astype(NP_ELEM[elem]))
    cmd = [tilemach.tilec_path(), "run", tile, "--target", target, "--torus",
           "x".join(map(str, torus)), "--in", f"a={xin}", "--out", f"result={yout}"]
    if stats:
        cmd.append("--stats")
    p = tilemach.run(cmd)
    assert p.returncode == 0, f"{src}\n{p.stdout}\n{p.stderr}"
    y = np.load(yout)
    if elem == "bf16":
        y = bf16_bits_to_f32(y)
    return y, p.stdout


def compile_and_run(tmp_path, torus, body, in_shape, out_shape, elem, data, target="tiny",
                    stats=False):
    """`%y = BODY %a : OUT` on the torus's mesh (mesh_decl) on every chip."""
    decl, _ = mesh_decl(torus)
    return run_source(tmp_path, mesh_func(decl, body, in_shape, out_shape, elem), torus, elem,
                      data, target, stats)


def chips_of(torus):
    """Coordinates of every chip, in chip-id order (row-major)."""
    return list(itertools.product(*[range(n) for n in torus]))


def groups(torus, axes):
    """For each chip: its rank over `axes` (first axis major) and the chips of its group
    in rank order."""
    coords = chips_of(torus)
    ids = {c: i for i, c in enumerate(coords)}
    out = []
    for c in coords:
        members = []
        for combo in itertools.product(*[range(torus[a]) for a in axes]):
            cc = list(c)
            for a, v in zip(axes, combo):
                cc[a] = v
            members.append(ids[tuple(cc)])
        rank = 0
        for a in axes:
            rank = rank * torus[a] + c[a]
        out.append((rank, members))
    return out


REDUCE = {"add": np.sum, "max": np.max, "min": np.min}


def make_data(rng, nchips, shape, elem):
    x = rng.integers(-6, 7, size=(nchips, *shape))
    return x.astype(np.int32 if elem == "i32" else np.float32)


TORI = [((1, 4), [1]), ((2, 2), [0, 1]), ((2, 2), [1]), ((2, 2, 2), [0, 1, 2]),
        ((2, 2, 2), [2, 0]), ((4, 4), [0, 1]), ((4, 4), [0])]
SHAPES = [(1,), (3, 5), (64, 128), (160, 256)]


def axes_attr(axes):
    return "[" + ", ".join("xyz"[a] for a in axes) + "]"


@pytest.mark.parametrize("torus,axes", TORI)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("elem", ["f32", "bf16"])
def test_all_reduce(tilec, tmp_path, torus, axes, shape, elem):
    if np.prod(torus) == 16 and np.prod(shape) > 64 * 128:
        pytest.skip("the largest size runs on the smaller tori")
    rng = np.random.default_rng(hash((torus, tuple(axes), shape)) & 0xFFFF)
    x = make_data(rng, int(np.prod(torus)), shape, elem)
    y, _ = compile_and_run(tmp_path, torus, f"all_reduce %a {{kind = add, axes = "
                           f"{axes_attr(axes)}}}", shape, shape, elem, x)
    for chip, (_, members) in enumerate(groups(torus, axes)):
        np.testing.assert_array_equal(y[chip], x[members].sum(0), err_msg=f"chip {chip}")


@pytest.mark.parametrize("kind", ["max", "min"])
def test_all_reduce_max_min(tilec, tmp_path, kind):
    rng = np.random.default_rng(7)
    x = make_data(rng, 4, (16, 128), "f32")
    y, _ = compile_and_run(tmp_path, (2, 2), f"all_reduce %a {{kind = {kind}, axes = [x, y]}}",
                           (16, 128), (16, 128), "f32", x)
    for chip in range(4):
        np.testing.assert_array_equal(y[chip], REDUCE[kind](x, axis=0))


def test_all_reduce_i32(tilec, tmp_path):
    rng = np.random.default_rng(8)
    x = make_data(rng, 8, (5, 300), "i32")
    y, _ = compile_and_run(tmp_path, (2, 2, 2), "all_reduce %a {kind = add, axes = [x, y, z]}",
                           (5, 300), (5, 300), "i32", x)
    for chip in range(8):
        np.testing.assert_array_equal(y[chip], x.sum(0))


@pytest.mark.parametrize("wrap,torus,axes", [("never", (1, 4), [1]),
                                             ("multiple-of 4", (2, 4), [0, 1]),
                                             ("never", (2, 2, 2), [0, 1, 2])])
@pytest.mark.parametrize("op", ["all_reduce", "all_gather", "reduce_scatter"])
def test_without_wraparound(tilec, tmp_path, wrap, torus, axes, op):
    target = target_file(tmp_path, wrap)
    n = int(np.prod(torus))
    rng = np.random.default_rng(11)
    shape = (8, 256)
    x = make_data(rng, n, shape, "f32")
    p = int(np.prod([torus[a] for a in axes]))
    check_op(tmp_path, torus, axes, op, shape, 0, "f32", x, p, target=str(target))


def check_op(tmp_path, torus, axes, op, shape, dim, elem, x, p, target="tiny"):
    gs = groups(torus, axes)
    if op == "all_reduce":
        y, out = compile_and_run(tmp_path, torus, f"all_reduce %a {{kind = add, axes = "
                                 f"{axes_attr(axes)}}}", shape, shape, elem, x, target=target)
        for chip, (_, members) in enumerate(gs):
            np.testing.assert_array_equal(y[chip], x[members].sum(0))
    elif op == "all_gather":
        oshape = list(shape)
        oshape[dim] *= p
        y, out = compile_and_run(tmp_path, torus, f"all_gather %a {{dim = {dim}, axes = "
                                 f"{axes_attr(axes)}}}", shape, oshape, elem, x, target=target)
        for chip, (_, members) in enumerate(gs):
            np.testing.assert_array_equal(y[chip], np.concatenate(x[members], axis=dim),
                                          err_msg=f"chip {chip}")
    else:
        oshape = list(shape)
        oshape[dim] //= p
        y, out = compile_and_run(tmp_path, torus, f"reduce_scatter %a {{kind = add, dim = {dim},"
                                 f" axes = {axes_attr(axes)}}}", shape, oshape, elem, x,
                                 target=target)
        for chip, (rank, members) in enumerate(gs):
            full = x[members].sum(0)
            want = np.split(full, p, axis=dim)[rank]
            np.testing.assert_array_equal(y[chip], want, err_msg=f"chip {chip}")
    return out


@pytest.mark.parametrize("torus,axes", TORI)
@pytest.mark.parametrize("shape,dim", [((1,), 0), ((3, 5), 1), ((64, 128), 0),
                                       ((4, 96, 128), 1)])
@pytest.mark.parametrize("elem", ["f32", "bf16"])
def test_all_gather(tilec, tmp_path, torus, axes, shape, dim, elem):
    p = int(np.prod([torus[a] for a in axes]))
    rng = np.random.default_rng(3)
    x = make_data(rng, int(np.prod(torus)), shape, elem)
    check_op(tmp_path, torus, axes, "all_gather", shape, dim, elem, x, p)


@pytest.mark.parametrize("torus,axes", TORI)
@pytest.mark.parametrize("slice_shape,dim", [((1,), 0), ((3, 16), 1), ((64, 128), 0),
                                             ((2, 48, 128), 1)])
@pytest.mark.parametrize("elem", ["f32", "bf16"])
def test_reduce_scatter(tilec, tmp_path, torus, axes, slice_shape, dim, elem):
    """slice_shape is what each chip keeps; the input is p of them along dim."""
    p = int(np.prod([torus[a] for a in axes]))
    shape = list(slice_shape)
    shape[dim] *= p
    if np.prod(shape) * 4 > 512 * 1024:
        pytest.skip("the input and its receive buffers would not fit tiny's 1 MiB of VMEM")
    rng = np.random.default_rng(5)
    x = make_data(rng, int(np.prod(torus)), tuple(shape), elem)
    check_op(tmp_path, torus, axes, "reduce_scatter", tuple(shape), dim, elem, x, p)


@pytest.mark.parametrize("torus,axis,shift", [((1, 4), 1, 1), ((1, 4), 1, -1), ((2, 2), 0, 1),
                                              ((4, 4), 1, 3), ((4, 4), 0, 2), ((2, 2, 2), 2, 1),
                                              ((2, 2), 1, 0)])
@pytest.mark.parametrize("elem", ["f32", "bf16"])
def test_collective_permute(tilec, tmp_path, torus, axis, shift, elem):
    rng = np.random.default_rng(9)
    shape = (33, 70)
    x = make_data(rng, int(np.prod(torus)), shape, elem)
    y, _ = compile_and_run(tmp_path, torus, f"collective_permute %a {{axis = {'xyz'[axis]}, "
                           f"shift = {shift}}}", shape, shape, elem, x)
    coords = chips_of(torus)
    ids = {c: i for i, c in enumerate(coords)}
    for chip, c in enumerate(coords):
        src = list(c)
        src[axis] = (c[axis] - shift) % torus[axis]
        np.testing.assert_array_equal(y[chip], x[ids[tuple(src)]], err_msg=f"chip {chip}")


def test_errors(tilec, tmp_path):
    """A mesh that is not the target's torus, and a tensor too large for VMEM that cannot
    stream through it in pieces, are refused with a message at the op."""
    tile = tmp_path / "bad.tile"
    tile.write_text("mesh @m = torus<2x2>(x, y)\n\nfunc @f(%a: tensor<8x128xf32>) -> "
                    "tensor<8x128xf32> attributes {mesh = @m} {\n  %y = all_reduce %a "
                    "{kind = add, axes = [x]} : tensor<8x128xf32>\n  return %y\n}\n")
    p = tilemach.run([tilec, tile, "--target=tiny", "--torus", "1x4", "-o", tmp_path / "o.tobj"])
    assert p.returncode == 1
    assert re.search(r"bad.tile:4:\d+: error: .*mesh @m is a 2x2 torus .* --torus 2x2", p.stderr)
    # 2 MiB and 4 bytes: not whole pieces of a tile per chip, so it cannot stream
    tile.write_text("mesh @m = torus<2x2>(x, y)\n\nfunc @f(%a: tensor<524289xf32>) -> "
                    "tensor<524289xf32> attributes {mesh = @m} {\n  %y = all_reduce %a "
                    "{kind = add, axes = [x]} : tensor<524289xf32>\n  return %y\n}\n")
    p = tilemach.run([tilec, tile, "--target=tiny", "-o", tmp_path / "o.tobj"])
    assert p.returncode == 1
    assert re.search(r"bad.tile:4:\d+: error: .*bytes of VMEM.*multiple of 8192 bytes",
                     p.stderr)


def test_ring_all_reduce_cycles(tilec, tmp_path):
    """One all-reduce of V = 256 KiB over a wrapping axis of 4 chips against the alpha-beta
    cost of a ring (REFERENCE.md "Collectives", Thakur et al.): half the data goes each way
    round, so each link carries 2 (p - 1) chunks of V / (2p), which takes
    2 ((p - 1) / p) V beta with W = 2b, and the first chunk needs one hop alpha more. The
    run takes at least that; pipelined steps (each chunk sent on in parts as they arrive)
    and the copies from and to HBM under the transfers keep it within a tenth."""
    t = tilemach.load_target("tiny", "1x4")
    shape = (64, 1024)
    V = int(np.prod(shape)) * 4
    p = 4
    x = make_data(np.random.default_rng(1), p, shape, "f32")
    out = check_op(tmp_path, (1, 4), [1], "all_reduce", shape, 0, "f32", x, p)
    rc = re.search(r"run: (\d+) cycles", out)
    assert rc, out
    cycles = int(rc.group(1))
    links = 2 * (p - 1) * t.xfer_cycles(V // (2 * p), t.ici_bw) + t.hop_cycles()
    assert links <= cycles <= 1.1 * links, (cycles, links)


@pytest.mark.parametrize("torus,axes", TORI)
@pytest.mark.parametrize("shape,split,concat", [((1, 6), 0, 1), ((8, 1, 5), 1, 1),
                                                ((2, 16, 32), 2, 0), ((16, 64), 0, 0)])
@pytest.mark.parametrize("elem", ["f32", "bf16"])
def test_all_to_all(tilec, tmp_path, torus, axes, shape, split, concat, elem):
    p = int(np.prod([torus[a] for a in axes]))
    shape = list(shape)
    shape[split] *= p  # shape gives one block; every chip sends p of them
    oshape = list(shape)
    oshape[split] //= p
    oshape[concat] *= p
    rng = np.random.default_rng(13)
    x = make_data(rng, int(np.prod(torus)), tuple(shape), elem)
    y, _ = compile_and_run(tmp_path, torus, f"all_to_all %a {{split_dim = {split}, concat_dim = "
                           f"{concat}, axes = {axes_attr(axes)}}}", tuple(shape), tuple(oshape),
                           elem, x)
    for chip, (rank, members) in enumerate(groups(torus, axes)):
        want = np.concatenate([np.split(x[m], p, axis=split)[rank] for m in members], axis=concat)
        np.testing.assert_array_equal(y[chip], want, err_msg=f"chip {chip}")


def test_matmul_all_reduce_add(tilec, tmp_path):
    """A row-parallel matmul: each chip multiplies its slice of the contraction, the
    all_reduce sums the partial products, an elementwise group follows: three fusion
    groups of three generators in one program, on 1x4."""
    src = ("mesh @m = torus<1x4>(r, x)\n\n"
           "func @f(%a: tensor<8x128xf32>, %w: tensor<128x256xf32>) -> tensor<8x256xf32> "
           "attributes {mesh = @m} {\n"
           "  %p = matmul %a, %w : tensor<8x256xf32>\n"
           "  %y = all_reduce %p {kind = add, axes = [x]} : tensor<8x256xf32>\n"
           "  %z = add %y, %y : tensor<8x256xf32>\n"
           "  return %z\n}\n")
    tile = tmp_path / "mm.tile"
    tile.write_text(src)
    rng = np.random.default_rng(21)
    a = rng.integers(-3, 4, (4, 8, 128)).astype(np.float32)
    w = rng.integers(-3, 4, (4, 128, 256)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "w.npy", w)
    p = tilemach.run([tilec, "run", tile, "--target", "tiny", "--torus", "1x4",
                      "--in", f"a={tmp_path / 'a.npy'}", "--in", f"w={tmp_path / 'w.npy'}",
                      "--out", f"result={tmp_path / 'z.npy'}"])
    assert p.returncode == 0, p.stderr
    z = np.load(tmp_path / "z.npy")
    want = 2 * np.einsum("cik,ckj->ij", a, w)
    for chip in range(4):
        np.testing.assert_array_equal(z[chip], want)


def test_torus_all_reduce_cycles(tilec, tmp_path):
    """All-reduce of V = 256 KiB over both axes of a 4x4 torus against REFERENCE.md
    "Collectives": with V split across the d = 2 axes in rotated orders and each part
    going both ways round, the bandwidth term is 2(1 - 1/N) V / (d W), W = 2b; the latency
    term is one hop per level (each level's steps are pipelined: a chunk goes on in parts
    as they arrive, so later steps' hops overlap the transfers). The copies from and to
    HBM run under the transfers. Within a fifth: the inner level's chunks are one vreg
    tile each, too small to split, so its steps pay their hops."""
    t = tilemach.load_target("tiny", "4x4")
    shape = (64, 1024)
    V = int(np.prod(shape)) * 4
    N, d, p = 16, 2, 4
    x = make_data(np.random.default_rng(2), N, shape, "f32")
    out = check_op(tmp_path, (4, 4), [0, 1], "all_reduce", shape, 0, "f32", x, N)
    cycles = int(re.search(r"run: (\d+) cycles", out).group(1))
    W = 2 * t.ici_bw / t.clock_hz  # bytes per cycle, both ways
    model = 2 * (1 - 1 / N) * V / (d * W) + 2 * d * t.hop_cycles()
    assert model <= cycles <= 1.2 * model, (cycles, model)


# Sizes from one f32 element to 16 MiB on an axis of 4 that wraps (v4-like: multiple of
# 4) and one that does not (v5e-like: only 16 wraps), so both the one-shot exchange of
# small operands and the rings of large ones run on rings and on lines.
SIZES = [1, 1024, 16 * 1024, 256 * 1024, 4 * 1024 * 1024]  # f32 elements: 4 B .. 16 MiB


@pytest.mark.parametrize("target", ["v4-like", "v5e-like"])
@pytest.mark.parametrize("elems", SIZES)
@pytest.mark.parametrize("op", ["all_reduce", "all_gather", "reduce_scatter", "all_to_all"])
def test_sizes(tilec, tmp_path, target, elems, op):
    """elems is the whole array per chip: all_reduce's and reduce_scatter's operand,
    all_gather's result, all_to_all's operand (at least one element per chip)."""
    n = max(elems, 4) if op != "all_reduce" else elems
    rng = np.random.default_rng(elems)
    if op == "all_gather":
        x = rng.integers(-6, 7, size=(4, n // 4)).astype(np.float32)
        check_op(tmp_path, (1, 4), [1], op, (n // 4,), 0, "f32", x, 4, target=target)
    elif op == "all_to_all":
        x = rng.integers(-6, 7, size=(4, n)).astype(np.float32)
        y, _ = compile_and_run(tmp_path, (1, 4), "all_to_all %a {split_dim = 0, concat_dim = 0, "
                               "axes = [y]}", (n,), (n,), "f32", x, target=target)
        for chip in range(4):
            want = np.concatenate([np.split(x[m], 4)[chip] for m in range(4)])
            np.testing.assert_array_equal(y[chip], want, err_msg=f"chip {chip}")
    else:
        x = rng.integers(-6, 7, size=(4, n)).astype(np.float32)
        check_op(tmp_path, (1, 4), [1], op, (n,), 0, "f32", x, 4, target=target)


@pytest.mark.parametrize("torus,axes", [((1, 4), [1]), ((2, 2), [0, 1])])
def test_all_reduce_streams_through_vmem(tilec, tmp_path, torus, axes):
    """512 KiB of f32 with its receive buffers does not fit tiny's 1 MiB of VMEM: it goes
    through in pieces, the same ring code run once per piece."""
    x = make_data(np.random.default_rng(17), 4, (128, 1024), "f32")
    check_op(tmp_path, torus, axes, "all_reduce", (128, 1024), 0, "f32", x, 4)


@pytest.mark.parametrize("target", ["v4-like", "v5e-like"])
def test_small_all_reduce_latency(tilec, tmp_path, target):
    """A 4 KiB all-reduce over an axis of 4 is latency-bound: against REFERENCE.md's
    alpha * n / 2 per all-gather, twice for an all-reduce (with n - 1 hops for a line,
    which has no wraparound), it takes at most 1.5 times that: the one-shot exchange,
    not a ring of 2 (n - 1) hop-latencies."""
    t = tilemach.load_target(target, "1x4")
    x = make_data(np.random.default_rng(4), 4, (1024,), "f32")
    out = check_op(tmp_path, (1, 4), [1], "all_reduce", (1024,), 0, "f32", x, 4, target=target)
    cycles = int(re.search(r"run: (\d+) cycles", out).group(1))
    hops = 2 if t.wrap[1] else 3
    latency = 2 * hops * t.hop_cycles()
    assert cycles <= 1.5 * latency, (cycles, latency)


@pytest.mark.parametrize("torus,axes,slice_elems", [((2, 2), [0, 1], 48 * 1024),
                                                    ((4, 4), [0, 1], 8 * 1024),
                                                    ((2, 2, 2), [2, 0], 8 * 1024),
                                                    ((1, 4), [1], 4 * 1024)])
@pytest.mark.parametrize("op", ["reduce_scatter", "all_gather"])
def test_split_across_axes(tilec, tmp_path, torus, axes, slice_elems, op):
    """Slices of whole vreg tiles, large enough that the operand goes in parts over the
    axes in rotated orders and both directions; the first (192 KiB slices, four chips)
    does not fit tiny's VMEM with its receive buffers and goes in pieces."""
    p = int(np.prod([torus[a] for a in axes]))
    n = slice_elems * p if op == "reduce_scatter" else slice_elems
    x = make_data(np.random.default_rng(23), int(np.prod(torus)), (n,), "f32")
    check_op(tmp_path, torus, axes, op, (n,), 0, "f32", x, p)


# ---- meshes in the full form: several axes on one torus dim, one axis over several ----
#
# A chip's position on an axis (docs/tile-ir.md, "Modules"): on a dim shared by several
# axes, (coordinate / inner) mod size, inner the product of the sizes of the axes
# declared after it on that dim (the first declared is major); over several dims,
# row-major over them in the order the axis lists them.

def parse_axes(decl):
    """'dp = 2 on [0], y = 4 on [1]' as [(name, size, dims)]."""
    out = []
    for name, size, dims in re.findall(r"(\w+) = (\d+) on \[([\d, ]+)\]", decl):
        out.append((name, int(size), [int(d) for d in dims.split(",")]))
    return out


def positions(torus, decl):
    """{axis name: [position of each chip, in chip-id order]}."""
    axes = parse_axes(decl)
    pos = {}
    for k, (name, size, dims) in enumerate(axes):
        inner = 1
        if len(dims) == 1:
            for other, osize, odims in axes[k + 1:]:
                if odims == dims:
                    inner *= osize
        col = []
        for c in chips_of(torus):
            if len(dims) == 1:
                col.append(c[dims[0]] // inner % size)
            else:
                q = 0
                for d in dims:
                    q = q * torus[d] + c[d]
                col.append(q)
        pos[name] = col
    return pos


def mesh_groups(torus, decl, names):
    """For each chip: its rank over the axes `names` (first major) and the chips of its
    group (the same position on every other axis) in rank order."""
    pos = positions(torus, decl)
    sizes = {n: s for n, s, _ in parse_axes(decl)}
    others = [n for n in pos if n not in names]
    n = int(np.prod(torus))
    out = []
    for c in range(n):
        members = {}
        for m in range(n):
            if all(pos[o][m] == pos[o][c] for o in others):
                r = 0
                for a in names:
                    r = r * sizes[a] + pos[a][m]
                members[r] = m
        rank = 0
        for a in names:
            rank = rank * sizes[a] + pos[a][c]
        out.append((rank, [members[r] for r in range(len(members))]))
    return out


def run_on_mesh(tmp_path, torus, decl, body, in_shape, out_shape, elem, data, target="tiny"):
    """`%y = BODY %a : OUT` on the mesh of axes DECL over the torus, on every chip."""
    mesh = f"mesh @m = torus<{'x'.join(map(str, torus))}>({decl})"
    return run_source(tmp_path, mesh_func(mesh, body, in_shape, out_shape, elem), torus, elem,
                      data, target)


SPLIT = "dp = 2 on [0], tp = 2 on [0], y = 4 on [1]"
MESH_AXES = [((4, 4), SPLIT, ["dp"]), ((4, 4), SPLIT, ["tp"]), ((4, 4), SPLIT, ["tp", "dp"]),
             ((4, 4), SPLIT, ["dp", "y"]), ((4, 4), SPLIT, ["dp", "tp", "y"]),
             ((2, 2, 2), "x = 4 on [0, 1], z = 2 on [2]", ["x"]),
             ((2, 2, 2), "x = 4 on [0, 1], z = 2 on [2]", ["z", "x"]),
             ((2, 2, 2), "a = 4 on [2, 0], b = 2 on [1]", ["a"]),
             ((4, 4), "x = 16 on [0, 1]", ["x"]),
             ((1, 6), "u = 1 on [0], a = 2 on [1], b = 3 on [1]", ["b"]),
             ((1, 6), "u = 1 on [0], a = 2 on [1], b = 3 on [1]", ["b", "a"])]
MESH_IDS = [f"{'x'.join(map(str, t))}-{'+'.join(a)}-{i}" for i, (t, _, a) in enumerate(MESH_AXES)]


def check_mesh_op(tmp_path, torus, decl, names, op, shape, dim, elem, x, target="tiny"):
    gs = mesh_groups(torus, decl, names)
    p = len(gs[0][1])
    ax = "[" + ", ".join(names) + "]"
    if op == "all_reduce":
        y, out = run_on_mesh(tmp_path, torus, decl, f"all_reduce %a {{kind = add, axes = {ax}}}",
                             shape, shape, elem, x, target)
        for chip, (_, members) in enumerate(gs):
            np.testing.assert_array_equal(y[chip], x[members].sum(0), err_msg=f"chip {chip}")
    elif op == "all_gather":
        oshape = list(shape)
        oshape[dim] *= p
        y, out = run_on_mesh(tmp_path, torus, decl, f"all_gather %a {{dim = {dim}, axes = {ax}}}",
                             shape, oshape, elem, x, target)
        for chip, (_, members) in enumerate(gs):
            np.testing.assert_array_equal(y[chip], np.concatenate(x[members], axis=dim),
                                          err_msg=f"chip {chip}")
    elif op == "reduce_scatter":
        oshape = list(shape)
        oshape[dim] //= p
        y, out = run_on_mesh(tmp_path, torus, decl, f"reduce_scatter %a {{kind = add, dim = "
                             f"{dim}, axes = {ax}}}", shape, oshape, elem, x, target)
        for chip, (rank, members) in enumerate(gs):
            want = np.split(x[members].sum(0), p, axis=dim)[rank]
            np.testing.assert_array_equal(y[chip], want, err_msg=f"chip {chip}")
    else:  # all_to_all, split and concat along dim
        y, out = run_on_mesh(tmp_path, torus, decl, f"all_to_all %a {{split_dim = {dim}, "
                             f"concat_dim = {dim}, axes = {ax}}}", shape, shape, elem, x, target)
        for chip, (rank, members) in enumerate(gs):
            want = np.concatenate([np.split(x[m], p, axis=dim)[rank] for m in members], axis=dim)
            np.testing.assert_array_equal(y[chip], want, err_msg=f"chip {chip}")
    return out


@pytest.mark.parametrize("torus,decl,names", MESH_AXES, ids=MESH_IDS)
@pytest.mark.parametrize("op", ["all_reduce", "all_gather", "reduce_scatter", "all_to_all"])
@pytest.mark.parametrize("shape,dim,elem", [((3, 5), 1, "f32"), ((48, 128), 0, "f32"),
                                            ((2, 24, 128), 1, "bf16")])
def test_mesh_axes(tilec, tmp_path, torus, decl, names, op, shape, dim, elem):
    """Every collective over split and spanning axes, on small operands (the one-shot
    and halfway schedules) and larger ones (rings in parts, both directions)."""
    p = len(mesh_groups(torus, decl, names)[0][1])
    shape = list(shape)
    if op in ("reduce_scatter", "all_to_all"):
        shape[dim] *= p
    rng = np.random.default_rng(zlib.crc32(repr((torus, decl, names, op)).encode()))
    x = make_data(rng, int(np.prod(torus)), tuple(shape), elem)
    check_mesh_op(tmp_path, torus, decl, names, op, tuple(shape), dim, elem, x)


@pytest.mark.parametrize("torus,decl,names", [((4, 4), SPLIT, ["tp"]),
                                              ((4, 4), SPLIT, ["dp", "tp"]),
                                              ((2, 4), "a = 2 on [1], b = 2 on [1], c = 2 on [0]",
                                               ["a", "c"]),
                                              ((2, 2, 2), "x = 4 on [0, 1], z = 2 on [2]",
                                               ["x"])])
@pytest.mark.parametrize("op", ["all_reduce", "all_gather", "reduce_scatter"])
def test_mesh_axes_large(tilec, tmp_path, torus, decl, names, op):
    """Operands of 128 KiB and more per chip: the rings' pipelined sub-chunks, on a torus
    without wraparound too (every ring a line, its closing step routed across)."""
    p = len(mesh_groups(torus, decl, names)[0][1])
    n = 32 * 1024 * (p if op == "reduce_scatter" else 1)
    x = make_data(np.random.default_rng(29), int(np.prod(torus)), (n,), "f32")
    for target in ["tiny", str(target_file(tmp_path, "never"))]:
        check_mesh_op(tmp_path, torus, decl, names, op, (n,), 0, "f32", x, target)


@pytest.mark.parametrize("torus,decl,axis,shift", [((4, 4), SPLIT, "dp", 1),
                                                   ((4, 4), SPLIT, "tp", 1),
                                                   ((4, 4), "x = 16 on [0, 1]", "x", 5),
                                                   ((4, 4), "x = 16 on [0, 1]", "x", -3),
                                                   ((1, 6), "u = 1 on [0], a = 2 on [1], "
                                                    "b = 3 on [1]", "b", 2),
                                                   ((2, 2, 2), "a = 4 on [2, 0], b = 2 on [1]",
                                                    "a", 1)])
def test_mesh_axes_permute(tilec, tmp_path, torus, decl, axis, shift):
    x = make_data(np.random.default_rng(31), int(np.prod(torus)), (9, 70), "f32")
    y, _ = run_on_mesh(tmp_path, torus, decl, f"collective_permute %a {{axis = {axis}, "
                       f"shift = {shift}}}", (9, 70), (9, 70), "f32", x)
    for chip, (rank, members) in enumerate(mesh_groups(torus, decl, [axis])):
        src = members[(rank - shift) % len(members)]
        np.testing.assert_array_equal(y[chip], x[src], err_msg=f"chip {chip}")


def test_mesh_axes_errors(tilec, tmp_path):
    """Refused at the op: a collective over another mesh than the function's where one
    of them has split axes (the two meshes' rings could share a semaphore), and axes
    that cover more than three dims and shares of dims in all."""
    tile = tmp_path / "two.tile"
    tile.write_text(f"mesh @m = torus<4x4>({SPLIT})\nmesh @n = torus<4x4>(x, y)\n\n"
                    "func @f(%a: tensor<8x128xf32>) -> tensor<8x128xf32> attributes "
                    "{mesh = @m} {\n  %y = all_reduce %a {kind = add, axes = [x], mesh = @n} "
                    ": tensor<8x128xf32>\n  return %y\n}\n")
    p = tilemach.run([tilec, tile, "--target=tiny", "--torus", "4x4", "-o", tmp_path / "o.tobj"])
    assert p.returncode == 1
    assert re.search(r"two.tile:5:\d+: error: .*mesh @n in a function on @m", p.stderr), p.stderr
    tile.write_text("mesh @m = torus<2x2x4>(dp = 2 on [2], tp = 2 on [2], x = 4 on [0, 1])\n\n"
                    "func @f(%a: tensor<8x128xf32>) -> tensor<8x128xf32> attributes "
                    "{mesh = @m} {\n  %y = all_reduce %a {kind = add, axes = [dp, tp, x]} "
                    ": tensor<8x128xf32>\n  return %y\n}\n")
    p = tilemach.run([tilec, tile, "--target=tiny", "--torus", "2x2x4", "-o", tmp_path / "o.tobj"])
    assert p.returncode == 1
    assert re.search(r"two.tile:4:\d+: error: .*the axes cover 4 torus dims and shares of dims in "
                     r"all; a collective runs over at most 3", p.stderr), p.stderr
