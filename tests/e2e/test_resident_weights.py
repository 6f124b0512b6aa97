"""Weights kept in VMEM across matmul groups (docs/compiler.md, "Resident weights"): a
parameter several matmuls read is copied from HBM once, by the first of them, and the
others read it where that one left it. Each program must compute numpy's values
(REFERENCE.md tolerance for bf16 matmuls), read the weights from HBM once (the chip's
local DMA bytes), and take the same cycles in timing-only mode as with data; weights
over the VMEM kept for them, or read by one matmul, stream as before."""
import json

import numpy as np
import pytest

import tilemach

MATMUL_NMSE = 5e-4


def program(k, n, uses, residual, distinct=False):
    """Matmuls of inputs x0, x1, ... (rows[i] x k, bf16) by one w (k x n, bf16), or by
    weights of their own (distinct: w0, w1, ...); the first result adds a residual r (an
    epilogue tile operand), the second is bf16."""
    params = [f"%x{i}: tensor<{m}x{k}xbf16>" for i, m in enumerate(uses)]
    ws = [f"w{i}" for i in range(len(uses))] if distinct else ["w"] * len(uses)
    params += [f"%{w}: tensor<{k}x{n}xbf16>" for w in dict.fromkeys(ws)]
    if residual:
        params += [f"%r: tensor<{uses[0]}x{n}xf32>"]
    outs, body = [], []
    for i, m in enumerate(uses):
        ty = "bf16" if i == 1 else "f32"
        body.append(f"  %y{i} = matmul %x{i}, %{ws[i]} : tensor<{m}x{n}x{ty}>")
        name = f"y{i}"
        if i == 0 and residual:
            body.append(f"  %s0 = add %y0, %r : tensor<{m}x{n}xf32>")
            name = "s0"
        outs.append((name, f"tensor<{m}x{n}x{ty}>"))
    return (f"func @f({', '.join(params)}) -> ({', '.join(t for _, t in outs)}) {{\n" +
            "\n".join(body) + f"\n  return {', '.join('%' + o for o, _ in outs)}\n}}\n")


def mir_buffers(tilec, src, target):
    p = tilemach.run([tilec, src, "--target", target, "--emit=mir"])
    assert p.returncode == 0, p.stderr
    return [line.split(":")[0][len("buffer "):] for line in p.stdout.splitlines()
            if line.startswith("buffer ")]


def load(path):
    """A result as f64; bf16 comes as 2-byte records (|V2)."""
    a = np.load(path)
    if a.dtype.itemsize == 2 and a.dtype.kind == "V":
        a = (a.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float64)


def run(tilec, tmp_path, src, target, arrays, nout, mode):
    args = []
    for name, a in arrays.items():
        np.save(tmp_path / f"{name}.npy", a)
        args += ["--in", f"{name}={tmp_path / (name + '.npy')}"]
    stats = tmp_path / f"stats_{mode}.json"
    cmd = [tilec, "run", src, "--target", target, "--torus", "1x1", "--mode", mode,
           "--stats-json", stats, *args]
    outs = [tmp_path / f"out{i}.npy" for i in range(nout)]
    if mode == "functional":
        for i, o in enumerate(outs):
            cmd += ["--out", f"result{i if i else ''}={o}"]
    p = tilemach.run(cmd, timeout=600)
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    st = json.loads(stats.read_text())
    assert st["fault"] is None, st["fault"]
    got = [load(o) for o in outs] if mode == "functional" else None
    return st["cycles"], st["chips"][0]["dma_bytes"], got


def check(tilec, tmp_path, target, k, n, uses, residual=False):
    """Runs the program on random values; returns its buffers' names and the local DMA
    bytes it moves less those of the same program with weights of its own per matmul."""
    src = tmp_path / "resident.tile"
    src.write_text(program(k, n, uses, residual))
    rng = np.random.default_rng(k * 7 + n + len(uses))
    bf = lambda a: tilemach.bf16_round(a.astype(np.float32))
    arrays = {f"x{i}": bf(rng.standard_normal((m, k))) for i, m in enumerate(uses)}
    arrays["w"] = bf(rng.standard_normal((k, n)) / np.sqrt(k))
    if residual:
        arrays["r"] = rng.standard_normal((uses[0], n)).astype(np.float32)
    cycles, dma, got = run(tilec, tmp_path, src, target, arrays, len(uses), "functional")
    w = arrays["w"].astype(np.float64)
    for i, m in enumerate(uses):
        want = arrays[f"x{i}"].astype(np.float64) @ w
        if i == 0 and residual:
            want = want + arrays["r"]
        if i == 1:
            want = tilemach.bf16_round(want.astype(np.float32)).astype(np.float64)
        err = tilemach.nmse(want, got[i])
        assert err <= MATMUL_NMSE, f"result {i} ({m} rows): NMSE {err:.3g}"
    timing, _, _ = run(tilec, tmp_path, src, target, arrays, len(uses), "timing")
    assert timing == cycles, "timing-only mode takes other cycles than a run with data"
    own = tmp_path / "distinct.tile"
    own.write_text(program(k, n, uses, residual, distinct=True))
    for i in range(len(uses)):
        arrays[f"w{i}"] = arrays["w"]
    del arrays["w"]
    _, dma_own, _ = run(tilec, tmp_path, own, target, arrays, len(uses), "timing")
    return mir_buffers(tilec, src, target), dma - dma_own


# (rows of each matmul, k, n): the owner first; the later ones with one chunk of rows, several
# (their blocks read each piece once per chunk), one row tile, rows that end mid-tile
CASES = {
    "rows": ((128, 512, 8, 136), 512, 384),
    "padded k": ((64, 200, 72), 328, 640),
    "wide": ((256, 64), 1024, 640),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_weights_read_from_hbm_once(tilec, tmp_path, case):
    uses, k, n = CASES[case]
    bufs, saved = check(tilec, tmp_path, "v5e-like", k, n, uses, residual=True)
    assert bufs.count("matmul.b.resident") == 1, bufs
    assert "matmul.b" not in bufs, "a later matmul copies the weights into a ring of its own"
    assert bufs.count("matmul.bdesc") == 1, "only the owner has a table of B copies"
    # each later matmul reads w at least once when it has weights of its own
    assert -saved >= (len(uses) - 1) * k * n * 2, f"{-saved} DMA bytes saved"


def test_weights_over_the_room_stream(tilec, tmp_path):
    """v4-like keeps a quarter of its 16 MiB for resident weights: 8 MiB of weights
    read twice stream from HBM each time, as weights of their own would."""
    bufs, saved = check(tilec, tmp_path, "v4-like", 2048, 2048, (8, 16))
    assert "matmul.b.resident" not in bufs
    assert bufs.count("matmul.b") == 2
    assert saved == 0


def test_weights_read_once_stream(tilec, tmp_path):
    """One matmul of its weights keeps the ring of as many pieces as it streams."""
    bufs, saved = check(tilec, tmp_path, "v5e-like", 512, 384, (128,))
    assert "matmul.b.resident" not in bufs and bufs.count("matmul.b") == 1
    assert saved == 0
