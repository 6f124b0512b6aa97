"""reduce_scatter over axes without wraparound (lines), each slice's reduction flowing from
both ends of the line toward the chip that keeps it (backend-vliw/gen_collective_line_scatter.c),
on v5e-like (whose slices below 16 chips do not wrap), on tiny with `torus.wrap = never`
(where tiny's short hops leave the line schedule few sizes: the one-shot and ring
schedules win most, and must agree) and on tiny without wraparound and with hops of 1000
cycles (where the line schedule wins for small and medium operands, within tiny's 1 MiB
of VMEM and 8 DMAs in flight). Lines of 3 to 8 chips give the ends, the middle chips and
the chips beside them different roles from one program; 4x4 and 2x4 run a level per
axis (an axis of 2 as a ring).

Integer data check every element exactly against numpy; random reals check that a second
run gives the same bits; two latency checks hold the 4 KiB and 64 KiB rows of the
collectives bench under 1.5 times the latency term."""
import re

import numpy as np
import pytest

import tilemach
from test_collectives import (REDUCE, SPLIT, axes_attr, check_mesh_op, compile_and_run, groups,
                              make_data, target_file)

NP_REDUCE = dict(REDUCE, mul=np.prod)
LINES = [((1, 3), [1]), ((1, 4), [1]), ((1, 5), [1]), ((1, 8), [1]), ((4, 4), [0, 1]),
         ((4, 4), [0]), ((4, 4), [1]), ((2, 4), [0, 1]), ((2, 4), [1])]
LINE_IDS = [f"{'x'.join(map(str, t))}-{''.join('xyz'[a] for a in ax)}" for t, ax in LINES]


def slow_target(tmp_path):
    """tiny without wraparound, its hops 1000 cycles instead of 20: a hop then costs what
    10 KB take on a link (45 KB on v5e-like), where tiny's cost 200 bytes."""
    src = target_file(tmp_path, "never").read_text()
    assert "ici.hop_ns = 20" in src
    path = tmp_path / "tiny-line.target"
    path.write_text(src.replace("ici.hop_ns = 20", "ici.hop_ns = 1000"))
    return path


def tiny_target(tmp_path, which):
    return str(slow_target(tmp_path) if which == "slow" else target_file(tmp_path, "never"))


def body(kind, dim, axes):
    return f"reduce_scatter %a {{kind = {kind}, dim = {dim}, axes = {axes_attr(axes)}}}"


def out_shape(shape, dim, p):
    o = list(shape)
    o[dim] //= p
    return tuple(o)


def check_rs(tmp_path, torus, axes, shape, dim, elem, x, target, kind="add"):
    """Runs the reduce_scatter and compares every chip's slice with numpy's."""
    p = int(np.prod([torus[a] for a in axes]))
    y, out = compile_and_run(tmp_path, torus, body(kind, dim, axes), shape,
                             out_shape(shape, dim, p), elem, x, target=target)
    for chip, (rank, members) in enumerate(groups(torus, axes)):
        want = np.split(NP_REDUCE[kind](x[members], axis=0), p, axis=dim)[rank]
        np.testing.assert_array_equal(y[chip], want, err_msg=f"chip {chip}")
    return y, out


def source(torus, axes, shape, dim, elem):
    p = int(np.prod([torus[a] for a in axes]))
    names = ", ".join("xyz"[: len(torus)])
    out = f"tensor<{'x'.join(map(str, out_shape(shape, dim, p)))}x{elem}>"
    return (f"mesh @m = torus<{'x'.join(map(str, torus))}>({names})\n\n"
            f"func @f(%a: tensor<{'x'.join(map(str, shape))}x{elem}>) -> {out} attributes "
            f"{{mesh = @m}} {{\n  %y = {body('add', dim, axes)} : {out}\n  return %y\n}}\n")


def mir_names(tmp_path, torus, axes, shape, dim, elem, target, prefix):
    """Whether the lowering made a buffer whose name starts with prefix (which schedule
    it picked)."""
    tile = tmp_path / "which.tile"
    tile.write_text(source(torus, axes, shape, dim, elem))
    r = tilemach.run([tilemach.tilec_path(), tile, "--target", str(target), "--torus",
                      "x".join(map(str, torus)), "--emit=mir", "-o", tmp_path / "which.mir"])
    assert r.returncode == 0, r.stderr
    return re.search(r"\b" + re.escape(prefix), (tmp_path / "which.mir").read_text()) is not None


def runs_line(tmp_path, torus, axes, shape, dim, elem, target):
    """Whether the lowering picked the line schedule (its buffers are in the MIR)."""
    return mir_names(tmp_path, torus, axes, shape, dim, elem, target, "lrs.work.")


def full_shape(slice_shape, dim, p):
    s = list(slice_shape)
    s[dim] *= p
    return tuple(s)


@pytest.mark.parametrize("torus,axes", LINES, ids=LINE_IDS)
@pytest.mark.parametrize("slice_shape,dim", [((1,), 0), ((3, 16), 1), ((64, 128), 0),
                                             ((2, 48, 128), 1)])
@pytest.mark.parametrize("elem", ["f32", "bf16", "i32"])
def test_line_scatter_exact(tilec, tmp_path, torus, axes, slice_shape, dim, elem):
    """One element per chip to 32 KiB slices (256 KiB operands over 8 chips), the
    scattered dim outermost or not, on v5e-like."""
    p = int(np.prod([torus[a] for a in axes]))
    shape = full_shape(slice_shape, dim, p)
    n = int(np.prod(torus))
    x = make_data(np.random.default_rng(n * 7 + int(np.prod(shape))), n, shape, elem)
    check_rs(tmp_path, torus, axes, shape, dim, elem, x, "v5e-like")


@pytest.mark.parametrize("torus,axes", LINES, ids=LINE_IDS)
@pytest.mark.parametrize("slice_elems", [4, 1024, 4096])
def test_line_scatter_chosen(tilec, tmp_path, torus, axes, slice_elems):
    """On v5e-like the line schedule wins from the smallest operands to hundreds of KiB
    (a hop costs 1500 cycles there), so the tests above run it."""
    p = int(np.prod([torus[a] for a in axes]))
    assert runs_line(tmp_path, torus, axes, (slice_elems * p,), 0, "f32", "v5e-like")


@pytest.mark.parametrize("which", ["never", "slow"])
@pytest.mark.parametrize("torus,axes", LINES, ids=LINE_IDS)
@pytest.mark.parametrize("slice_elems", [1, 300, 1024, 4096, 16384])
@pytest.mark.parametrize("elem", ["f32", "bf16"])
def test_line_scatter_tiny(tilec, tmp_path, which, torus, axes, slice_elems, elem):
    """Slices of one element to 64 KiB (operands to 512 KiB) on tiny's lines: with short
    hops the other schedules win most sizes and must agree; with long ones the line
    schedule runs within 1 MiB of VMEM (the largest operands fall back to the rings)."""
    p = int(np.prod([torus[a] for a in axes]))
    if slice_elems * p * 4 > 512 * 1024:
        pytest.skip("the operand and its receive buffers would not fit tiny's VMEM")
    target = tiny_target(tmp_path, which)
    n = int(np.prod(torus))
    x = make_data(np.random.default_rng(slice_elems + n), n, (slice_elems * p,), elem)
    check_rs(tmp_path, torus, axes, (slice_elems * p,), 0, elem, x, target)


@pytest.mark.parametrize("torus,axes,slice_elems", [((1, 4), [1], 4096), ((1, 8), [1], 4096),
                                                    ((1, 5), [1], 4096), ((1, 3), [1], 1024),
                                                    ((2, 4), [0, 1], 4096), ((4, 4), [1], 256)])
def test_line_scatter_tiny_chosen(tilec, tmp_path, torus, axes, slice_elems):
    """With long hops tiny runs the line schedule for these (the test above checks them)."""
    p = int(np.prod([torus[a] for a in axes]))
    assert runs_line(tmp_path, torus, axes, (slice_elems * p,), 0, "f32",
                     slow_target(tmp_path))


@pytest.mark.parametrize("kind,elem", [("max", "f32"), ("min", "f32"), ("mul", "f32"),
                                       ("mul", "i32"), ("max", "bf16"), ("min", "bf16")])
@pytest.mark.parametrize("torus,axes,target", [((1, 5), [1], "v5e-like"),
                                               ((4, 4), [0, 1], "v5e-like"),
                                               ((1, 8), [1], "v5e-like"),
                                               ((1, 4), [1], "slow")])
def test_line_scatter_kinds(tilec, tmp_path, kind, elem, torus, axes, target):
    """max, min and mul: a chip with nothing arriving combines nothing into its slices
    (zero would show in max of negatives, min of positives and in products)."""
    p = int(np.prod([torus[a] for a in axes]))
    n = int(np.prod(torus))
    rng = np.random.default_rng(5)
    shape = (8 * p, 128)
    if kind == "mul":  # small factors, so products stay exact
        x = rng.choice([-2, -1, 1, 2], size=(n, *shape)).astype(np.int32 if elem == "i32"
                                                                 else np.float32)
    elif kind == "max":
        x = make_data(rng, n, shape, elem) - 20  # all negative
    else:
        x = make_data(rng, n, shape, elem) + 20  # all positive
    t = str(slow_target(tmp_path)) if target == "slow" else target
    check_rs(tmp_path, torus, axes, shape, 0, elem, x, t, kind=kind)


@pytest.mark.parametrize("torus,axes", [((4, 4), [0, 1]), ((1, 5), [1]), ((2, 4), [0, 1]),
                                        ((1, 8), [1])])
@pytest.mark.parametrize("elem", ["f32", "bf16"])
def test_line_scatter_same_bits(tilec, tmp_path, torus, axes, elem):
    """Random reals, whose sums depend on their order: two runs give the same bits, and
    they are the sums to rounding."""
    check_same_bits(tmp_path, torus, axes, 256, elem, "v5e-like", 41)


def check_same_bits(tmp_path, torus, axes, m, elem, target, seed, check=None):
    """Random reals (slices of m elements), whose sums depend on their order: two runs
    give the same bits, and they are the sums to rounding. check(target), where given,
    says the expected schedule runs."""
    p = int(np.prod([torus[a] for a in axes]))
    n = int(np.prod(torus))
    x = np.random.default_rng(seed).standard_normal((n, m * p)).astype(np.float32)
    if elem == "bf16":  # values bf16 holds exactly, so the input is what numpy sees
        x = (x.view(np.uint32) & 0xFFFF0000).view(np.float32)
    if check:
        assert check()
    runs = []
    for i in range(2):
        d = tmp_path / f"run{i}"
        d.mkdir()
        y, _ = compile_and_run(d, torus, body("add", 0, axes), (m * p,), (m,), elem, x,
                               target=target)
        runs.append(y)
    assert runs[0].tobytes() == runs[1].tobytes()
    tol = 1e-5 if elem == "f32" else 2e-2
    for chip, (rank, members) in enumerate(groups(torus, axes)):
        want = np.split(x[members].astype(np.float64).sum(0), p)[rank]
        np.testing.assert_allclose(runs[0][chip], want, rtol=tol, atol=tol * p,
                                   err_msg=f"chip {chip}")


@pytest.mark.parametrize("operand", [4 * 1024, 64 * 1024])
def test_line_scatter_latency(tilec, tmp_path, operand):
    """4 KiB and 64 KiB over both lines of v5e-like's 4x4 are latency-bound: REFERENCE.md's
    term for a line is alpha (n - 1) per axis, 2 * 3 hops in all; the schedule takes at
    most 1.5 times that (the one-shot all_reduce took 1.68 times at 4 KiB, the rings 3.16
    at 64 KiB)."""
    t = tilemach.load_target("v5e-like", "4x4")
    elems = operand // 4
    x = make_data(np.random.default_rng(3), 16, (elems,), "f32")
    _, out = check_rs(tmp_path, (4, 4), [0, 1], (elems,), 0, "f32", x, "v5e-like")
    cycles = int(re.search(r"run: (\d+) cycles", out).group(1))
    latency = 2 * 3 * t.hop_cycles()
    assert cycles <= 1.5 * latency, (cycles, latency)


@pytest.mark.parametrize("torus,axes", [((1, 4), [1]), ((1, 8), [1]), ((4, 4), [0, 1])],
                         ids=["1x4", "1x8", "4x4"])
@pytest.mark.parametrize("elem", ["i32", "f32"])
def test_line_scatter_fetch(tilec, tmp_path, torus, axes, elem):
    """Where the first level is a line and each slice is one run of the operand, the
    working copy fills a sub-chunk at a time in the order the chip's slots read them
    (one copy per sub-chunk, at least one per chunk, not one of the whole operand);
    every element is still the sum's."""
    p = int(np.prod([torus[a] for a in axes]))
    shape, dim = full_shape((64, 128), 0, p), 0
    assert runs_line(tmp_path, torus, axes, shape, dim, elem, "v5e-like")
    copies = re.findall(r"^\s*dma [^\n]*\{r coll\d+\.lrs\.work\.\d+, r a, w lrs\.work",
                        (tmp_path / "which.mir").read_text(), re.M)
    assert len(copies) >= torus[axes[0]], copies
    n = int(np.prod(torus))
    x = make_data(np.random.default_rng(p + 11), n, shape, elem)
    check_rs(tmp_path, torus, axes, shape, dim, elem, x, "v5e-like")


@pytest.mark.parametrize("p", [4, 8])
def test_line_scatter_bandwidth(tilec, tmp_path, p):
    """32 MiB over a line of v5e-like is bound by the links at its ends, which carry
    (p - 1) / p of the operand one way: the line schedule takes at most 1.05 times that
    (in timing mode; its first sends wait for one sub-chunk's copy, not the operand's,
    and each chip forwards both flows in the order their sub-chunks arrive; the slice's
    copy out comes after). The rings in parts took 1.15 times on 8 chips."""
    t = tilemach.load_target("v5e-like", f"1x{p}")
    rows = 2048
    src = source((1, p), [1], (rows, 4096), 0, "f32")
    tile = tmp_path / "big.tile"
    tile.write_text(src)
    r = tilemach.run([tilemach.tilec_path(), "run", tile, "--target", "v5e-like", "--torus",
                      f"1x{p}", "--mode", "timing"])
    assert r.returncode == 0, r.stderr
    cycles = int(re.search(r"run: (\d+) cycles", r.stdout).group(1))
    link = t.xfer_cycles((p - 1) * rows * 4096 * 4 // p, t.ici_bw)
    assert cycles <= 1.05 * link, (cycles, link)


PARTS = [((4, 4), [0, 1]), ((4, 4), [1, 0]), ((3, 3), [0, 1]), ((8, 8), [0, 1])]
PARTS_IDS = [f"{'x'.join(map(str, t))}-{''.join('xyz'[a] for a in ax)}" for t, ax in PARTS]


def runs_parts(tmp_path, torus, axes, shape, elem):
    """Whether the lowering split the data in parts over the two lines."""
    return mir_names(tmp_path, torus, axes, shape, 0, elem, "v5e-like", "lrs.parts.")


@pytest.mark.parametrize("torus,axes", PARTS, ids=PARTS_IDS)
@pytest.mark.parametrize("elem", ["i32", "f32", "bf16"])
def test_line_scatter_parts(tilec, tmp_path, torus, axes, elem):
    """Over two lines of as many chips each slice goes in two halves, each taking the
    axes in its own order, both phases' slots in one order per chip (a table by both
    coordinates); the first phase copies its sub-chunks in as strided runs of the
    operand. Every element is the sum's, with the op's axes in either order."""
    p = int(np.prod([torus[a] for a in axes]))
    shape = (64 * 128 * p,)
    assert runs_parts(tmp_path, torus, axes, shape, elem)
    n = int(np.prod(torus))
    x = make_data(np.random.default_rng(p + 5), n, shape, elem)
    check_rs(tmp_path, torus, axes, shape, 0, elem, x, "v5e-like")


@pytest.mark.parametrize("torus,axes", [((4, 4), [0, 1]), ((3, 3), [1, 0])])
def test_line_scatter_parts_same_bits(tilec, tmp_path, torus, axes):
    """Random reals through the parts: two runs give the same bits, the sums to
    rounding."""
    p = int(np.prod([torus[a] for a in axes]))
    m = 64 * 128
    check_same_bits(tmp_path, torus, axes, m, "f32", "v5e-like", 53,
                    lambda: runs_parts(tmp_path, torus, axes, (m * p,), "f32"))


def test_line_scatter_parts_bandwidth(tilec, tmp_path):
    """32 MiB f32 over two lines of 8 (v5e-like 8x8): with both axes' links busy at once
    the busiest link carries (p - 1) / p of half the operand in the first phase and of
    1/p of that in the second; the parts take at most 1.08 times that (in timing mode,
    the same cycles on 1 and 2 host threads). The levels one axis after the other took
    2.05 times, the rings in parts 1.24."""
    t = tilemach.load_target("v5e-like", "8x8")
    p, rows = 8, 8192
    tile = tmp_path / "big.tile"
    tile.write_text(source((p, p), [0, 1], (rows, 1024), 0, "f32"))
    cycles = []
    for threads in (1, 2):
        r = tilemach.run([tilemach.tilec_path(), "run", tile, "--target", "v5e-like",
                          "--torus", f"{p}x{p}", "--mode", "timing", "--threads", str(threads)])
        assert r.returncode == 0, r.stderr
        cycles.append(int(re.search(r"run: (\d+) cycles", r.stdout).group(1)))
    assert cycles[0] == cycles[1]
    half = rows * 1024 * 4 // 2
    link = t.xfer_cycles((p - 1) * half // p + (p - 1) * half // (p * p), t.ici_bw)
    assert cycles[0] <= 1.08 * link, (cycles[0], link)


def check_in_sequence(tmp_path, torus, axes, target, seed, m=256):
    """Collectives one after another on the same axes, so a chip that finishes one early
    sends into the next while its neighbours still wait in the one before (their
    semaphores must count only what each wait is for): reduce_scatter, all_gather (the
    all_reduce, now on every chip), all_reduce, reduce_scatter again. target: a name or
    a target file; m: elements of a slice."""
    p = int(np.prod([torus[a] for a in axes]))
    n = int(np.prod(torus))
    names = ", ".join("xyz"[: len(torus)])
    ax = axes_attr(axes)
    full, part = f"tensor<{m * p}xf32>", f"tensor<{m}xf32>"
    src = (f"mesh @m = torus<{'x'.join(map(str, torus))}>({names})\n\n"
           f"func @f(%a: {full}) -> {part} attributes {{mesh = @m}} {{\n"
           f"  %s = reduce_scatter %a {{kind = add, dim = 0, axes = {ax}}} : {part}\n"
           f"  %g = all_gather %s {{dim = 0, axes = {ax}}} : {full}\n"
           f"  %r = all_reduce %g {{kind = add, axes = {ax}}} : {full}\n"
           f"  %t = reduce_scatter %r {{kind = add, dim = 0, axes = {ax}}} : {part}\n"
           f"  return %t\n}}\n")
    tile = tmp_path / "seq.tile"
    tile.write_text(src)
    x = make_data(np.random.default_rng(seed), n, (m * p,), "f32")
    np.save(tmp_path / "a.npy", x)
    r = tilemach.run([tilemach.tilec_path(), "run", tile, "--target", str(target), "--torus",
                      "x".join(map(str, torus)), "--in", f"a={tmp_path / 'a.npy'}",
                      "--out", f"result={tmp_path / 'y.npy'}"])
    assert r.returncode == 0, f"{src}\n{r.stdout}\n{r.stderr}"
    y = np.load(tmp_path / "y.npy")
    for chip, (rank, members) in enumerate(groups(torus, axes)):
        want = np.split(p * p * x[members].sum(0), p)[rank]
        np.testing.assert_array_equal(y[chip], want, err_msg=f"chip {chip}")


@pytest.mark.parametrize("torus,axes,target,m", [((1, 8), [1], "v5e-like", 256),
                                                 ((4, 4), [0, 1], "v5e-like", 256),
                                                 ((4, 4), [0, 1], "v5e-like", 16384),
                                                 ((1, 5), [1], "slow", 256)])
def test_line_scatter_in_sequence(tilec, tmp_path, torus, axes, target, m):
    """m = 16384 on 4x4: the reduce_scatters run in parts (test_line_scatter_parts), whose
    phases share each axis's semaphores with the other part's."""
    if m > 256:
        assert runs_parts(tmp_path, torus, axes, (m * 16,), "f32")
    check_in_sequence(tmp_path, torus, axes,
                      slow_target(tmp_path) if target == "slow" else target, 43, m)


@pytest.mark.parametrize("torus,decl,names", [((1, 6), "u = 1 on [0], a = 2 on [1], b = 3 on [1]",
                                               ["b"]),
                                              ((1, 6), "u = 1 on [0], a = 2 on [1], b = 3 on [1]",
                                               ["b", "a"]),
                                              ((1, 8), "u = 1 on [0], a = 4 on [1], b = 2 on [1]",
                                               ["a"]),
                                              ((4, 4), SPLIT, ["dp", "y"]),
                                              ((4, 4), "x = 16 on [0, 1]", ["x"])])
@pytest.mark.parametrize("slice_elems", [5, 2048, 16384])
def test_line_scatter_mesh_axes(tilec, tmp_path, torus, decl, names, slice_elems):
    """Axes that share a torus dim (neighbours `inner` chips apart, each a line of its
    own) or span several dims, on v5e-like, where none wraps (the span of 4x4 with
    64 KiB slices in parts, one per dim)."""
    sizes = dict((n, int(s)) for n, s in re.findall(r"(\w+) = (\d+) on", decl))
    p = int(np.prod([sizes[n] for n in names]))
    x = make_data(np.random.default_rng(47), int(np.prod(torus)), (slice_elems * p,), "f32")
    check_mesh_op(tmp_path, torus, decl, names, "reduce_scatter", (slice_elems * p,), 0, "f32",
                  x, "v5e-like")
