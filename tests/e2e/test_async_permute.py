"""Asynchronous permutes (backend-vliw/lower_async.c, docs/compiler.md "Async permutes"):
a one-hop collective_permute sends in its own group and waits in the first later group
that reads its result (before its first touch) or at another collective's start, so an
independent matmul between
runs while the data crosses the link. Mesh programs on 1x4 (a ring on tiny, a line on
v5e-like), run in strict emulation: every chip's values against numpy, for shift 1 and
-1 and a chain of three permutes, f32 and bf16; the matmul's MXU work happens while the
permute's send is in flight; timing-only runs take the functional cycles; 1 and 2 host
threads give the same cycles and bytes."""
import json
import re

import numpy as np
import pytest

import tilemach

MATMUL_NMSE = 5e-4  # REFERENCE.md: matmul (bf16 in, f32 acc)
CHIPS = 4
CASES = [("tiny", "ring"), ("v5e-like", "line")]
X_SHAPE, A_SHAPE, B_SHAPE = (64, 128), (256, 512), (512, 512)


def program(elem, shift, hops):
    """x -> `hops` permutes along y, each followed by an independent matmul a_i @ b;
    then z = y_last + x reads the last permute's result."""
    xt = f"tensor<{X_SHAPE[0]}x{X_SHAPE[1]}x{elem}>"
    mt = f"tensor<{A_SHAPE[0]}x{B_SHAPE[1]}xf32>"
    params = ", ".join([f"%x: {xt}"] + [f"%a{i}: tensor<256x512xbf16>" for i in range(hops)]
                       + ["%b: tensor<512x512xbf16>"])
    body, prev = [], "%x"
    for i in range(hops):
        body.append(f"  %y{i} = collective_permute {prev} {{axis = y, shift = {shift}}} : {xt}")
        body.append(f"  %m{i} = matmul %a{i}, %b : {mt}")
        prev = f"%y{i}"
    body.append(f"  %z = add {prev}, %x : {xt}")
    results = ", ".join([xt] + [mt] * hops)
    rets = ", ".join(["%z"] + [f"%m{i}" for i in range(hops)])
    return (f"mesh @m = torus<1x4>(x, y)\n\nfunc @f({params}) -> ({results}) "
            f"attributes {{mesh = @m}} {{\n" + "\n".join(body) + f"\n  return {rets}\n}}\n")


def write(tmp_path, elem="f32", shift=1, hops=1):
    path = tmp_path / "async.tile"
    path.write_text(program(elem, shift, hops))
    return path


def inputs(tmp_path, hops, seed):
    """Per-chip arrays (leading chip dimension). x holds small integers, exact in bf16 and
    in their sums, so the permuted values compare bit for bit."""
    rng = np.random.default_rng(seed)
    arrays = {"x": rng.integers(-8, 8, (CHIPS,) + X_SHAPE).astype(np.float32)}
    for i in range(hops):
        arrays[f"a{i}"] = tilemach.bf16_round(rng.standard_normal((CHIPS,) + A_SHAPE))
    arrays["b"] = tilemach.bf16_round(rng.standard_normal((CHIPS,) + B_SHAPE) / np.sqrt(512))
    args = []
    for name, a in arrays.items():
        np.save(tmp_path / f"{name}.npy", a.astype(np.float32))
        args += ["--in", f"{name}={tmp_path / (name + '.npy')}"]
    return arrays, args


def as_f32(a):
    if a.dtype.kind == "V":  # bf16 as 2-byte words
        return (a.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float32)


def run(tilec, src, target, extra, timeout=300):
    p = tilemach.run([tilec, "run", src, "--target", target, "--torus", "1x4", *extra],
                     timeout=timeout)
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    return p.stdout


def cycles_and_bytes(out):
    return (re.search(r"^run: (\d+) cycles", out, re.M).group(1),
            re.search(r"^dma: .*$", out, re.M).group(0))


@pytest.mark.parametrize("target,kind", CASES)
@pytest.mark.parametrize("elem", ["f32", "bf16"])
@pytest.mark.parametrize("shift,hops", [(1, 1), (-1, 1), (1, 3)])
def test_values_match_numpy(tilec, tmp_path, target, kind, elem, shift, hops):
    src = write(tmp_path, elem, shift, hops)
    arrays, args = inputs(tmp_path, hops, seed=hops * 10 + shift + len(elem))
    outs = [tmp_path / f"r{i}.npy" for i in range(hops + 1)]
    names = ["result"] + [f"result{i}" for i in range(1, hops + 1)]
    extra = [*args]
    for n, o in zip(names, outs):
        extra += ["--out", f"{n}={o}"]
    run(tilec, src, target, extra)
    x = arrays["x"]
    z = as_f32(np.load(outs[0]))
    for c in range(CHIPS):
        # after `hops` shifts chip c holds the x of the chip hops * shift positions before
        want = x[(c - hops * shift) % CHIPS] + x[c]
        np.testing.assert_array_equal(z[c], want, err_msg=f"{target} {elem} chip {c}")
    for i in range(hops):
        m = np.load(outs[i + 1])
        for c in range(CHIPS):
            ref = arrays[f"a{i}"][c].astype(np.float64) @ arrays["b"][c].astype(np.float64)
            err = tilemach.nmse(ref, m[c])
            assert err <= MATMUL_NMSE, f"{target} matmul {i} chip {c}: NMSE {err:.3g}"


def slices(trace, chip):
    """(name of track, start cycle, cycles, args) of every slice of `chip`."""
    ev = json.loads(trace.read_text())["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in ev
             if e.get("ph") == "M" and e.get("pid") == chip and e.get("name") == "thread_name"}
    return [(names.get(e["tid"], ""), e["args"]["cycle"], e["args"]["cycles"], e["args"])
            for e in ev if e.get("ph") == "X" and e.get("pid") == chip]


@pytest.mark.parametrize("target,kind", CASES)
@pytest.mark.parametrize("hops", [1, 3])
def test_matmul_runs_while_the_permute_is_in_flight(tilec, tmp_path, target, kind, hops):
    """On every chip, for each permute's send (a DMA to another chip), MXU pushes start
    between its issue and its completion: the matmul after it does not wait for the
    transfer. (Synchronously, the permute's group waits for its send and for the arrival
    before the matmul's group starts.)"""
    src = write(tmp_path, "f32", 1, hops)
    trace = tmp_path / "t.json"
    run(tilec, src, target, ["--mode", "timing", "--trace", trace])
    for chip in range(CHIPS):
        sl = slices(trace, chip)
        sends = sorted((s[1], s[1] + s[2]) for s in sl
                       if s[0].startswith("dma lane") and s[3].get("peer", -1) >= 0)
        assert len(sends) == hops, sends
        pushes = [s[1] for s in sl if re.match(r"mxu\d+ pushes", s[0])]
        for start, end in sends:
            during = [p for p in pushes if start < p < end]
            assert during, f"chip {chip}: no MXU push during the send {start}..{end}"


@pytest.mark.parametrize("target,kind", CASES)
def test_timing_only_and_threads_agree(tilec, tmp_path, target, kind):
    src = write(tmp_path, "bf16", 1, 3)
    _, args = inputs(tmp_path, 3, seed=7)
    functional = cycles_and_bytes(run(tilec, src, target, args))
    timing = cycles_and_bytes(run(tilec, src, target, ["--mode", "timing"]))
    assert functional[0] == timing[0]
    one = cycles_and_bytes(run(tilec, src, target, [*args, "--threads", "1"]))
    two = cycles_and_bytes(run(tilec, src, target, [*args, "--threads", "2"]))
    assert one == two == functional


def first_read(lines, buf):
    """The first MIR line of a DMA that reads buf."""
    return next(i for i, l in enumerate(lines) if re.search(r"\bdma .*\br %s\b" % buf, l))


def test_waits_move_past_the_matmul(tilec, tmp_path):
    """In the MIR the permute's two waits (its arrival, then its own send) come after the
    matmul's last op, right before the add's first copy of the received buffer; with the
    add right after the permute, they stay in the permute's group."""
    src = write(tmp_path)
    p = tilemach.run([tilec, src, "--target", "v5e-like", "--torus", "1x4", "--emit=mir"])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    waits = [i for i, l in enumerate(lines)
             if "sem.wait" in l and "// collective_permute" in l]
    mm = [i for i, l in enumerate(lines) if "// matmul" in l]
    add = [i for i, l in enumerate(lines) if "// add" in l]
    send = [i for i, l in enumerate(lines) if re.search(r"\bdma .*// collective_permute", l)]
    assert len(waits) == 2 and len(send) == 1 and mm and add, p.stdout[-3000:]
    # inside the add's group, right before its first copy of the received buffer
    read = first_read(lines, "y0")
    assert send[0] < mm[0] and add[0] < waits[0] < waits[1] < read
    assert all(i < waits[0] for i in mm if i < read)
    assert "{w y0}" in lines[waits[0]]  # the arrival names the received buffer
    assert "loop" in p.stdout and "dma-reserve 1" in p.stdout
    body = program("f32", 1, 1).replace(
        "  %m0 = matmul %a0, %b : tensor<256x512xf32>\n  %z = add %y0, %x",
        "  %z = add %y0, %x").replace(", tensor<256x512xf32>) attributes", ") attributes")
    body = body.replace("return %z, %m0", "return %z")
    src.write_text(body)
    p = tilemach.run([tilec, src, "--target", "v5e-like", "--torus", "1x4", "--emit=mir"])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    perm = [i for i, l in enumerate(lines) if "// collective_permute" in l]
    add = [i for i, l in enumerate(lines) if "// add" in l]
    assert perm and add and perm[-1] < add[0]
    assert "sem.wait" in lines[perm[-1]] and "dma-reserve" not in p.stdout


# A large permute, then a small one on the same ring (one band semaphore), both in flight
# over the first matmul; the first add takes only the large one's waits, the second
# matmul still overlaps the small one. Right only if the small transfer cannot overtake
# the large one (one sender, one route: arrivals in issue order).
SIZES = """mesh @m = torus<1x4>(x, y)

func @f(%big: tensor<256x256xf32>, %small: tensor<8x128xf32>, %a0: tensor<256x512xbf16>,
        %a1: tensor<256x512xbf16>, %b: tensor<512x512xbf16>)
    -> (tensor<256x256xf32>, tensor<8x128xf32>, tensor<256x512xf32>, tensor<256x512xf32>)
    attributes {mesh = @m} {
  %y1 = collective_permute %big {axis = y, shift = 1} : tensor<256x256xf32>
  %y2 = collective_permute %small {axis = y, shift = 1} : tensor<8x128xf32>
  %m0 = matmul %a0, %b : tensor<256x512xf32>
  %z1 = add %y1, %big : tensor<256x256xf32>
  %m1 = matmul %a1, %b : tensor<256x512xf32>
  %z2 = add %y2, %small : tensor<8x128xf32>
  return %z1, %z2, %m0, %m1
}
"""


@pytest.mark.parametrize("target,kind", CASES)
def test_sends_of_different_sizes_arrive_in_order(tilec, tmp_path, target, kind):
    src = tmp_path / "sizes.tile"
    src.write_text(SIZES)
    p = tilemach.run([tilec, src, "--target", target, "--torus", "1x4", "--emit=mir"])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    waits = [i for i, l in enumerate(lines) if "sem.wait" in l and "// collective_permute" in l]
    adds = [i for i, l in enumerate(lines) if "// add" in l]
    mm = [i for i, l in enumerate(lines) if "// matmul" in l]
    assert len(waits) == 4 and "{w y1}" in lines[waits[0]] and "{w y2}" in lines[waits[2]]
    # one band semaphore for both arrivals
    assert lines[waits[0]].split(",")[0] == lines[waits[2]].split(",")[0]
    assert waits[1] < first_read(lines, "y1") < mm[-1] < waits[2] < first_read(lines, "y2")
    rng = np.random.default_rng(3)
    arrays = {"big": rng.integers(-8, 8, (CHIPS, 256, 256)).astype(np.float32),
              "small": rng.integers(-8, 8, (CHIPS, 8, 128)).astype(np.float32)}
    for name in ("a0", "a1"):
        arrays[name] = tilemach.bf16_round(rng.standard_normal((CHIPS,) + A_SHAPE))
    arrays["b"] = tilemach.bf16_round(rng.standard_normal((CHIPS,) + B_SHAPE) / np.sqrt(512))
    extra = []
    for name, a in arrays.items():
        np.save(tmp_path / f"{name}.npy", a)
        extra += ["--in", f"{name}={tmp_path / (name + '.npy')}"]
    for n in ("result", "result1"):
        extra += ["--out", f"{n}={tmp_path / (n + '.npy')}"]
    run(tilec, src, target, extra)
    z1, z2 = np.load(tmp_path / "result.npy"), np.load(tmp_path / "result1.npy")
    for c in range(CHIPS):
        prev = (c - 1) % CHIPS
        np.testing.assert_array_equal(z1[c], arrays["big"][prev] + arrays["big"][c])
        np.testing.assert_array_equal(z2[c], arrays["small"][prev] + arrays["small"][c])
