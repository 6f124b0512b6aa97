"""On-chip memory shared over time (docs/compiler.md, "Layout"): a program whose groups
together need more VMEM than the chip has compiles because each group's buffers take
the bytes of groups that are done, and a program whose DMA tables would crowd SMEM
copies each group's tables in from HBM when the group starts. Both must still compute
the right values (numpy, REFERENCE.md tolerance for bf16 matmul chains) and take the
same cycles in timing-only mode as with data."""
import json

import numpy as np

import tilemach

MATMUL_NMSE = 5e-4


def chain(rows, widths):
    """Matmuls x @ w1 @ w2 ..., bf16 between them and an f32 result."""
    params = ", ".join(f"%w{i + 1}: tensor<{a}x{b}xbf16>"
                       for i, (a, b) in enumerate(zip(widths, widths[1:])))
    lines = [f"func @f(%x: tensor<{rows}x{widths[0]}xbf16>, {params}) -> "
             f"tensor<{rows}x{widths[-1]}xf32> {{"]
    prev = "x"
    for i, n in enumerate(widths[1:]):
        last = i == len(widths) - 2
        name = "y" if last else f"h{i}"
        lines.append(f"  %{name} = matmul %{prev}, %w{i + 1} : "
                     f"tensor<{rows}x{n}x{'f32' if last else 'bf16'}>")
        prev = name
    lines += ["  return %y", "}"]
    return "\n".join(lines) + "\n"


def mir_buffers(tilec, src):
    p = tilemach.run([tilec, src, "--target", "tiny", "--emit=mir"])
    assert p.returncode == 0, p.stderr
    bufs = []
    for line in p.stdout.splitlines():
        if line.startswith("buffer "):
            name, rest = line[len("buffer "):].split(": ", 1)
            words = rest.replace(",", "").split()
            size = int(words[1]) * (int(words[4]) if words[3] == "x" else 1)
            bufs.append((name, words[0], size))
    return bufs


def run(tilec, tmp_path, src, widths, rows, mode):
    rng = np.random.default_rng(len(widths) * 31 + rows)
    arrays, args = [], []
    shapes = [(rows, widths[0])] + list(zip(widths, widths[1:]))
    for i, shape in enumerate(shapes):
        scale = 1 if i == 0 else np.sqrt(shape[0])
        a = tilemach.bf16_round((rng.standard_normal(shape) / scale).astype(np.float32))
        name = "x" if i == 0 else f"w{i}"
        np.save(tmp_path / f"{name}.npy", a)
        arrays.append(a.astype(np.float64))
        args += ["--in", f"{name}={tmp_path / (name + '.npy')}"]
    stats = tmp_path / f"stats_{mode}.json"
    out = tmp_path / "y.npy"
    cmd = [tilec, "run", src, "--target", "tiny", "--torus", "1x1", "--mode", mode,
           "--stats-json", stats, *args]
    if mode == "functional":
        cmd += ["--out", f"result={out}"]
    p = tilemach.run(cmd, timeout=300)
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    st = json.loads(stats.read_text())
    assert st["fault"] is None, st["fault"]
    want = arrays[0]
    for i, w in enumerate(arrays[1:]):
        want = want @ w
        if i < len(arrays) - 2:
            want = tilemach.bf16_round(want.astype(np.float32)).astype(np.float64)
    got = np.load(out) if mode == "functional" else None
    return st["cycles"], want, got


def check(tilec, tmp_path, rows, widths):
    src = tmp_path / "chain.tile"
    src.write_text(chain(rows, widths))
    cycles, want, got = run(tilec, tmp_path, src, widths, rows, "functional")
    err = tilemach.nmse(want, got)
    assert err <= MATMUL_NMSE, f"NMSE {err:.3g}"
    timing, _, _ = run(tilec, tmp_path, src, widths, rows, "timing")
    assert timing == cycles, "timing-only mode takes other cycles than a run with data"
    return src


def test_groups_share_vmem(tilec, tmp_path):
    rows, widths = 128, [1024] * 6
    src = check(tilec, tmp_path, rows, widths)
    vmem = sum(size for _, space, size in mir_buffers(tilec, src) if space == "vmem")
    assert vmem > 1 << 20, "the groups together fit tiny's 1 MiB: nothing is shared"


def test_large_smem_tables_are_staged_from_hbm(tilec, tmp_path):
    rows, widths = 8, [1024, 1536, 1024, 1536, 1024, 1024]
    src = check(tilec, tmp_path, rows, widths)
    bufs = mir_buffers(tilec, src)
    images = [name for name, space, _ in bufs if name.startswith("img.") and space == "hbm"]
    assert len(images) >= 5, "each matmul's tables should come from an HBM image"
    assert not [n for n, space, _ in bufs if space == "smem" and n.startswith("img.")]


def test_topk_on_padded_rows_after_other_groups(tilec, tmp_path):
    """Top-k over 2 rows (of an 8-row group) runs its rounds on the padded rows too,
    whose heads it never writes: they must read zero even where earlier groups (two
    matmuls, elementwise ops) used VMEM (found by fuzz_compile: an out-of-bounds vld)."""
    src = tmp_path / "after.tile"
    src.write_text("""
func @f(%p0: tensor<256x8x12xf32>, %p1: tensor<12x7xf32>, %p3: tensor<2x2xf32>,
        %p4: tensor<2x64xf32>) -> (tensor<2x37xi32>, tensor<2x37xf32>, tensor<2x2xf32>,
        tensor<56x4x2xf32>) {
  %v2 = matmul %p0, %p1 : tensor<256x8x7xf32>
  %v4 = slice %v2 {start = [93, 0, 5], limit = [149, 8, 7], stride = [1, 2, 1]} : tensor<56x4x2xf32>
  %v5 = compare %v4, %v4 {dir = eq} : tensor<56x4x2xi1>
  %v6 = select %v5, %v4, %v4 : tensor<56x4x2xf32>
  %v7 = matmul %v6, %p3 : tensor<56x4x2xf32>
  %v8 = sub %p3, %p3 : tensor<2x2xf32>
  %v9, %v10 = topk %p4 {k = 37} : tensor<2x37xf32>, tensor<2x37xi32>
  return %v10, %v9, %v8, %v7
}
""")
    rng = np.random.default_rng(1)
    args = []
    x = {}
    for name, shape in [("p0", (256, 8, 12)), ("p1", (12, 7)), ("p3", (2, 2)), ("p4", (2, 64))]:
        x[name] = rng.standard_normal(shape).astype(np.float32)
        np.save(tmp_path / f"{name}.npy", x[name])
        args += ["--in", f"{name}={tmp_path / (name + '.npy')}"]
    ids, vals = tmp_path / "ids.npy", tmp_path / "vals.npy"
    p = tilemach.run([tilec, "run", src, "--target", "tiny", "--torus", "1x1", *args,
                      "--out", f"result={ids}", "--out", f"result1={vals}"], timeout=300)
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    order = np.argsort(-x["p4"], axis=1, kind="stable")[:, :37]
    assert np.array_equal(np.load(ids), order)
    assert np.array_equal(np.load(vals), np.take_along_axis(x["p4"], order, axis=1))
