"""all_reduce over axes without wraparound (lines) by reduce-toward-the-middle and
broadcast (backend-vliw/gen_collective_line.c), on tiny with `torus.wrap = never` and on
v5e-like (whose slices below 16 chips do not wrap). Lines of 2 to 8 chips put the roots at
every kind of position (the middle chip of an odd line, the two middle chips of an even
one, next to an end or at both ends) and give the end chips, the roots and the chips
between different roles from one program.

Integer data check every element exactly; random reals check that every chip of a group
holds the same bits (only the root's sum is kept) and that a second run gives the same
bits again."""
import json
import re

import numpy as np
import pytest

import tilemach
from test_collectives import REDUCE, axes_attr, compile_and_run, groups, make_data, target_file

LINES = [((1, 3), [1]), ((1, 4), [1]), ((1, 5), [1]), ((1, 8), [1]), ((8, 1), [0]),
         ((4, 4), [0, 1]), ((4, 4), [1]), ((2, 4), [0, 1]), ((3, 2), [0, 1])]
SHAPES = [(1,), (3, 5), (64, 128), (160, 256)]
NP_REDUCE = dict(REDUCE, mul=np.prod)


@pytest.mark.parametrize("torus,axes", LINES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("elem", ["f32", "bf16", "i32"])
def test_line_all_reduce_exact(tilec, tmp_path, torus, axes, shape, elem):
    if np.prod(shape) > 64 * 128 and np.prod(torus) > 4:
        pytest.skip("the largest size runs on the smaller meshes")
    n = int(np.prod(torus))
    rng = np.random.default_rng(n * 131 + int(np.prod(shape)))
    x = make_data(rng, n, shape, elem)
    y, _ = compile_and_run(tmp_path, torus, f"all_reduce %a {{kind = add, axes = "
                           f"{axes_attr(axes)}}}", shape, shape, elem, x,
                           target=target_file(tmp_path, "never"))
    for chip, (_, members) in enumerate(groups(torus, axes)):
        np.testing.assert_array_equal(y[chip], x[members].sum(0), err_msg=f"chip {chip}")


@pytest.mark.parametrize("kind,elem", [("max", "f32"), ("min", "f32"), ("mul", "f32"),
                                       ("mul", "i32"), ("max", "bf16")])
@pytest.mark.parametrize("torus,axes", [((1, 5), [1]), ((4, 4), [0, 1]), ((1, 8), [1])])
def test_line_all_reduce_kinds(tilec, tmp_path, kind, elem, torus, axes):
    """Sides with nothing to combine read the operation's identity (1 for mul, -inf for
    max, +inf for min), not zero."""
    n = int(np.prod(torus))
    rng = np.random.default_rng(5)
    if kind == "mul":  # small factors, so products stay exact
        x = rng.choice([-2, -1, 1, 2], size=(n, 8, 128)).astype(np.int32 if elem == "i32"
                                                                  else np.float32)
    else:
        x = make_data(rng, n, (8, 128), elem) - 20  # all negative: max with 0 would show
    y, _ = compile_and_run(tmp_path, torus, f"all_reduce %a {{kind = {kind}, axes = "
                           f"{axes_attr(axes)}}}", (8, 128), (8, 128), elem, x,
                           target=target_file(tmp_path, "never"))
    for chip, (_, members) in enumerate(groups(torus, axes)):
        np.testing.assert_array_equal(y[chip], NP_REDUCE[kind](x[members], axis=0),
                                      err_msg=f"chip {chip}")


@pytest.mark.parametrize("torus,axes", [((1, 8), [1]), ((4, 4), [0, 1]), ((1, 5), [1])])
def test_line_all_reduce_same_bits(tilec, tmp_path, torus, axes):
    """f32 reals: the order of the sums decides the rounding; every chip of a group must
    hold the same bits, close to the exact sum, on every run."""
    n = int(np.prod(torus))
    x = np.random.default_rng(3).standard_normal((n, 16, 128)).astype(np.float32)
    target = target_file(tmp_path, "never")
    body = f"all_reduce %a {{kind = add, axes = {axes_attr(axes)}}}"
    y1, _ = compile_and_run(tmp_path, torus, body, (16, 128), (16, 128), "f32", x, target=target)
    y2, _ = compile_and_run(tmp_path, torus, body, (16, 128), (16, 128), "f32", x, target=target)
    np.testing.assert_array_equal(y1.view(np.uint32), y2.view(np.uint32))
    for chip, (_, members) in enumerate(groups(torus, axes)):
        np.testing.assert_array_equal(y1[chip].view(np.uint32), y1[members[0]].view(np.uint32))
        want = x[members].astype(np.float64).sum(0)
        assert np.abs(y1[chip] - want).max() < 1e-5 * len(members)


@pytest.mark.parametrize("torus,axes,elems", [((1, 8), [1], 1024), ((1, 8), [1], 32 * 1024),
                                              ((4, 4), [0, 1], 1024)])
def test_line_all_reduce_latency(tilec, tmp_path, torus, axes, elems):
    """On v5e-like lines a small all_reduce costs about p hop latencies per axis (reduce
    to the middle, broadcast back), within 1.5x of REFERENCE.md's 2 (n - 1) alpha per axis
    for a line; the ring exchange's closing steps cross the line and took 2.2x."""
    t = tilemach.load_target("v5e-like", "x".join(map(str, torus)))
    n = int(np.prod(torus))
    x = make_data(np.random.default_rng(9), n, (elems,), "f32")
    y, out = compile_and_run(tmp_path, torus, f"all_reduce %a {{kind = add, axes = "
                             f"{axes_attr(axes)}}}", (elems,), (elems,), "f32", x,
                             target="v5e-like")
    for chip, (_, members) in enumerate(groups(torus, axes)):
        np.testing.assert_array_equal(y[chip], x[members].sum(0))
    cycles = int(re.search(r"run: (\d+) cycles", out).group(1))
    latency = 2 * sum(torus[a] - 1 for a in axes) * t.hop_cycles()
    assert cycles <= 1.5 * latency, (cycles, latency)


def test_line_all_reduce_threads(tilec, tmp_path):
    """The same bits and cycle count on 1, 2 and 3 host threads: chips that race ahead
    deliver early and credits stand in for absent senders, in any host order."""
    n, shape = 8, (16, 128)
    x = np.random.default_rng(13).standard_normal((n, *shape)).astype(np.float32)
    src = ("mesh @m = torus<1x8>(x, y)\n\nfunc @f(%a: tensor<16x128xf32>) -> tensor<16x128xf32> "
           "attributes {mesh = @m} {\n  %y = all_reduce %a {kind = add, axes = [y]} : "
           "tensor<16x128xf32>\n  return %y\n}\n")
    tile, xin = tmp_path / "ar.tile", tmp_path / "a.npy"
    tile.write_text(src)
    np.save(xin, x)
    runs = []
    for threads in (1, 2, 3):
        yout = tmp_path / f"y{threads}.npy"
        p = tilemach.run([tilemach.tilec_path(), "run", tile, "--target", "v5e-like", "--torus",
                          "1x8", "--threads", str(threads), "--in", f"a={xin}",
                          "--out", f"result={yout}"])
        assert p.returncode == 0, p.stdout + p.stderr
        runs.append((re.search(r"run: (\d+) cycles", p.stdout).group(1),
                     np.load(yout).view(np.uint32).tobytes()))
    assert runs[0] == runs[1] == runs[2]


def ar_src(p, elems):
    return (f"mesh @m = torus<1x{p}>(x, y)\n\nfunc @f(%a: tensor<{elems}xf32>) -> "
            f"tensor<{elems}xf32> attributes {{mesh = @m}} {{\n  %y = all_reduce %a "
            f"{{kind = add, axes = [y]}} : tensor<{elems}xf32>\n  return %y\n}}\n")


@pytest.mark.parametrize("p", [8, 5])
def test_line_root_sends_while_it_sums(tilec, tmp_path, p):
    """The (left) root sends each sub-chunk of the result on as soon as it has summed it:
    its first send of the result to its left neighbour leaves before that neighbour's
    last partial lands."""
    from test_prefetch import dma_slices
    root, elems = (p - 1) // 2, 32 * 1024  # 128 KiB: eight sub-chunks
    tile, trace = tmp_path / "ar.tile", tmp_path / "t.json"
    tile.write_text(ar_src(p, elems))
    run = tilemach.run([tilec, "run", tile, "--target", "v5e-like", "--torus", f"1x{p}",
                        "--mode", "timing", "--trace", trace], timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    into_root = [d[0] + d[1] for d in dma_slices(trace, root - 1) if d[3] == root]
    from_root = [d for d in dma_slices(trace, root) if d[3] == root - 1]
    assert into_root and from_root
    assert min(d[0] for d in from_root) < max(into_root), (from_root, into_root)


def test_even_line_takes_one_hop_fewer(tilec, tmp_path):
    """The two middle chips of an even line each hold one half and exchange it, so the
    result reaches the ends p - 1 hops after they sent, as on the odd line one chip
    shorter: a single root would be p / 2 hops from the far end, there and back."""
    t = tilemach.load_target("v5e-like", "1x8")
    cycles = {}
    for p in (7, 8):
        tile = tmp_path / f"ar{p}.tile"
        tile.write_text(ar_src(p, 1024))
        run = tilemach.run([tilec, "run", tile, "--target", "v5e-like", "--torus", f"1x{p}",
                            "--mode", "timing"], timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr
        cycles[p] = int(re.search(r"run: (\d+) cycles", run.stdout).group(1))
    assert cycles[8] - cycles[7] < 1.5 * t.hop_cycles(), cycles


@pytest.mark.parametrize("torus,axes,elems", [((1, 8), [1], 16 * 1024), ((1, 8), [1], 64 * 1024),
                                              ((4, 4), [0, 1], 16 * 1024), ((1, 5), [1], 4096)])
def test_line_all_reduce_dmas_in_flight(tilec, tmp_path, torus, axes, elems):
    """A line all_reduce states to the prefetch that it keeps at most 10 DMAs in flight
    (coll_line_inflight on v5e-like, TileLowerCtx.dma_cap), and a prefetch fills the rest
    of dma.outstanding: every chip's trace, its sends, credits and copies together,
    stays within that bound at every cycle."""
    n = int(np.prod(torus))
    shape = "x".join(map(str, torus))
    tile, trace = tmp_path / "ar.tile", tmp_path / "t.json"
    tile.write_text(f"mesh @m = torus<{shape}>(x, y)\n\nfunc @f(%a: tensor<{elems}xf32>) -> "
                    f"tensor<{elems}xf32> attributes {{mesh = @m}} {{\n  %y = all_reduce %a "
                    f"{{kind = add, axes = {axes_attr(axes)}}} : tensor<{elems}xf32>\n"
                    f"  return %y\n}}\n")
    p = tilemach.run([tilemach.tilec_path(), "run", tile, "--target", "v5e-like", "--torus",
                      shape, "--mode", "timing", "--trace", trace])
    assert p.returncode == 0, p.stdout + p.stderr
    ev = json.loads(trace.read_text())["traceEvents"]
    lanes = {(e["pid"], e["tid"]) for e in ev if e.get("ph") == "M"
             and e.get("name") == "thread_name" and e["args"]["name"].startswith("dma lane")}
    most = []
    for chip in range(n):
        edges = sorted(edge for e in ev if e.get("ph") == "X" and (e["pid"], e["tid"]) in lanes
                       and e["pid"] == chip
                       for edge in ((e["args"]["cycle"], 1),
                                    (e["args"]["cycle"] + max(e["args"]["cycles"], 1), -1)))
        assert edges, f"chip {chip} issued no DMA"
        level = peak = 0
        for _, step in sorted(edges, key=lambda t: (t[0], t[1])):
            level += step
            peak = max(peak, level)
        most.append(peak)
    assert max(most) <= 10, most
    assert max(most) >= 3, most  # the sends pipeline: several in flight at once


@pytest.mark.parametrize("p", [8, 4])
def test_even_line_nan_bits(tilec, tmp_path, p):
    """The two roots of an even line combine the halves in one order (left half OP right
    half), so every chip holds the same bits even where both halves are NaNs of
    different payloads (which NaN an add keeps depends on the order of its operands)."""
    x = np.ones((p, 8, 128), np.float32)
    bits = x.view(np.uint32)
    for chip in range(p):
        bits[chip, 0, :] = 0x7FC00000 | (chip + 1)  # a quiet NaN, a payload per chip
    y, _ = compile_and_run(tmp_path, (1, p), "all_reduce %a {kind = add, axes = [y]}",
                           (8, 128), (8, 128), "f32", x, target="v5e-like")
    for chip in range(1, p):
        np.testing.assert_array_equal(y[chip].view(np.uint32), y[0].view(np.uint32),
                                      err_msg=f"chip {chip}")
    assert np.isnan(y[:, 0]).all() and (y[:, 1:] == p).all()
