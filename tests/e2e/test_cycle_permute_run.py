"""collective_permute with `cycle` and `halves` on the emulator (backend-vliw/
gen_collective_cycle.c, gen_permute): every chip finds the chips before and after it on
the cycle through two mesh axes from its own coordinates, and with halves sends the
second half of dim 0 the other way round. Per-chip programs on tiny's 2x2 (wraps) and
v5e-like's 2x4, 4x2 and 4x4 (lines), shifts of one place (one send each way: deferred
past a matmul where one follows, lower_async.c) and of more (hops through scratch),
checked element for element against the chip each half must come from. A run on one
and on two host threads gives the same bits and cycles."""
import re

import numpy as np
import pytest

import tilemach
from test_permute_cycle import cycle_pos

ROWS, COLS = 8, 128


def program(dims, shift, halves, matmul):
    xt = f"tensor<{ROWS}x{COLS}xf32>"
    attrs = f"axis = a, cycle = b, shift = {shift}" + (", halves = 1" if halves else "")
    params, rets, types = [f"%x: {xt}"], ["%z"], [xt]
    body = [f"  %y = collective_permute %x {{{attrs}}} : {xt}"]
    if matmul:  # independent work the permute's transfer runs beside
        params += ["%p: tensor<256x512xbf16>", "%q: tensor<512x512xbf16>"]
        body.append("  %m = matmul %p, %q : tensor<256x512xf32>")
        rets.append("%m")
        types.append("tensor<256x512xf32>")
    body.append(f"  %z = add %y, %x : {xt}")
    return (f"mesh @m = torus<{dims[0]}x{dims[1]}>(a, b)\n\n"
            f"func @f({', '.join(params)}) -> ({', '.join(types)}) attributes {{mesh = @m}} {{\n"
            + "\n".join(body) + f"\n  return {', '.join(rets)}\n}}\n")


def run(tilec, tmp_path, dims, target, shift, halves, matmul, extra=()):
    src = tmp_path / "p.tile"
    src.write_text(program(dims, shift, halves, matmul))
    n = dims[0] * dims[1]
    x = np.random.default_rng(n + shift).integers(-8, 8, (n, ROWS, COLS)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    args = ["--in", f"x={tmp_path / 'x.npy'}"]
    if matmul:
        for name, shape in (("p", (256, 512)), ("q", (512, 512))):
            np.save(tmp_path / f"{name}.npy", np.zeros((n,) + shape, np.float32))
            args += ["--in", f"{name}={tmp_path / (name + '.npy')}"]
    out = tmp_path / "z.npy"
    p = tilemach.run([tilec, "run", src, "--target", target, "--torus", f"{dims[0]}x{dims[1]}",
                      *args, "--out", f"result={out}", *extra], timeout=300)
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    return x, np.load(out), p.stdout


def expected(dims, x, shift, halves):
    """Each chip's x plus what it receives: rows from the chip `shift` places back on
    the cycle (chip ids row-major over (a, b)), the second half from `shift` places on."""
    n = dims[0] * dims[1]
    at = {cycle_pos(*dims, c // dims[1], c % dims[1]): c for c in range(n)}
    want = x.copy()
    for c in range(n):
        q = cycle_pos(*dims, c // dims[1], c % dims[1])
        back, on = at[(q - shift) % n], at[(q + shift) % n]
        if halves:
            want[c, :ROWS // 2] += x[back, :ROWS // 2]
            want[c, ROWS // 2:] += x[on, ROWS // 2:]
        else:
            want[c] += x[back]
    return want


CASES = [((2, 2), "tiny"), ((2, 4), "v5e-like"), ((4, 2), "v5e-like"), ((4, 4), "v5e-like")]


@pytest.mark.parametrize("dims,target", CASES)
@pytest.mark.parametrize("shift", [1, -1, 3])
@pytest.mark.parametrize("halves", [0, 1])
@pytest.mark.parametrize("matmul", [False, True])
def test_cycle_permute_matches_its_definition(tilec, tmp_path, dims, target, shift, halves,
                                              matmul):
    x, z, _ = run(tilec, tmp_path, dims, target, shift, halves, matmul)
    np.testing.assert_array_equal(z, expected(dims, x, shift, halves))


def test_same_bits_and_cycles_on_one_and_two_threads(tilec, tmp_path):
    got = []
    for threads in ("1", "2"):
        _, z, out = run(tilec, tmp_path, (4, 4), "v5e-like", 1, 1, True, ["--threads", threads])
        got.append((z.tobytes(), re.search(r"run: (\d+) cycles", out).group(1)))
    assert got[0] == got[1]
