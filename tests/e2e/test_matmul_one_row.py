"""Matmuls with one row tile per block (M <= 8: decode), whose blocks pop their results
two blocks later (backend-vliw/gen_matmul.c, "One row tile"; docs/compiler.md
"Prefetch"): on one chip, and after a collective whose group carries the matmul's
first weight copies (the prefetch, where the blocks push the block before's tile). Each
is checked against numpy under strict emulation for several K (one, two, three and
many K steps, so the loops over K steps and chunks start where the pops reach back) and
N (one column block, several, and not a multiple of the block or the MXU's width), with
bf16 and f32 operands and fused epilogues, and the cycles are the same from run to
run."""
import re

import numpy as np
import pytest

import kernel_specs as ks
import tilemach

MATMUL_NMSE = 5e-4  # REFERENCE.md: matmul (bf16 in, f32 acc)

# Epilogues after the matmul: (result type, text after %h, numpy of h and the bias row)
EPILOGUES = {
    "none": ("f32", "  return %h\n", lambda h, b: h),
    "bias": ("f32",
             "  %b = broadcast %bias {dims = [1]} : tensor<${M}x${N}xf32>\n"
             "  %z = add %h, %b : tensor<${M}x${N}xf32>\n"
             "  return %z\n",
             lambda h, b: h + b[None, :]),
    "bias_gelu_bf16": ("bf16",
                       "  %b = broadcast %bias {dims = [1]} : tensor<${M}x${N}xf32>\n"
                       "  %z = add %h, %b : tensor<${M}x${N}xf32>\n"
                       "  %g = gelu %z : tensor<${M}x${N}xf32>\n"
                       "  %y = convert %g : tensor<${M}x${N}xbf16>\n"
                       "  return %y\n",
                       lambda h, b: ks.gelu(h + b[None, :])),
}


def source(M, K, N, elem, epi, mesh=None):
    rtype, body, _ = EPILOGUES[epi]
    shard = (" {shard = [-, y]}", " {shard = [y, -]}", " {shard = [-, y]}") if mesh else ("", "", "")
    attrs = " attributes {mesh = @m}" if mesh else ""
    head = f"mesh @m = torus<{mesh[0]}x{mesh[1]}>(x, y)\n" if mesh else ""
    if mesh:
        # a row-sharded projection whose partial sums an all_reduce adds, then the
        # matmul by column-sharded weights the prefetch copies during the all_reduce
        text = (head +
                f"func @f(%x0: tensor<${{M}}x512x{elem}>{shard[0]}, "
                f"%w0: tensor<512x${{K}}x{elem}>{shard[1]},\n"
                f"        %w: tensor<${{K}}x${{N}}x{elem}>{shard[2]}, %bias: tensor<${{N}}xf32>)"
                f" -> tensor<${{M}}x${{N}}x{rtype}>{attrs} {{\n"
                f"  %p = matmul %x0, %w0 : tensor<${{M}}x${{K}}xf32>\n"
                f"  %x = convert %p : tensor<${{M}}x${{K}}x{elem}>\n"
                f"  %h = matmul %x, %w : tensor<${{M}}x${{N}}xf32>\n" + body + "}\n")
    else:
        text = (f"func @f(%x: tensor<${{M}}x${{K}}x{elem}>, %w: tensor<${{K}}x${{N}}x{elem}>,"
                f" %bias: tensor<${{N}}xf32>) -> tensor<${{M}}x${{N}}x{rtype}> {{\n"
                f"  %h = matmul %x, %w : tensor<${{M}}x${{N}}xf32>\n" + body + "}\n")
    if epi == "none":
        text = text.replace(", %bias: tensor<${N}xf32>", "")
    return text.replace("${M}", str(M)).replace("${K}", str(K)).replace("${N}", str(N))


def rounded(a, elem):
    a = a.astype(np.float32)
    return tilemach.bf16_round(a) if elem == "bf16" else a


def run(tilec, tmp_path, M, K, N, elem, epi, target, mesh=None, seed=0):
    src = tmp_path / "mm.tile"
    src.write_text(source(M, K, N, elem, epi, mesh))
    rng = np.random.default_rng(seed)
    shapes = {"w": (K, N), "bias": (N,)}
    if mesh:
        shapes = {"x0": (M, 512), "w0": (512, K), **shapes}
    else:
        shapes = {"x": (M, K), **shapes}
    if epi == "none":
        del shapes["bias"]
    arrays, args = {}, []
    for name, shape in shapes.items():
        a = rng.standard_normal(shape)
        if name.startswith("w"):
            a /= np.sqrt(shape[0])
        a = rounded(a, "f32" if name == "bias" else elem)
        np.save(tmp_path / f"{name}.npy", a)
        arrays[name] = a.astype(np.float64)
        args += ["--in", f"{name}={tmp_path / (name + '.npy')}"]
    out = tmp_path / "out.npy"
    cmd = [tilec, "run", src, "--target", target, *args, "--out", f"result={out}"]
    if mesh:
        cmd += ["--torus", f"{mesh[0]}x{mesh[1]}"]
    else:
        cmd += ["--torus", "1x1"]
    p = tilemach.run(cmd, timeout=300)
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    got = ks.from_npy(np.load(out), EPILOGUES[epi][0]).astype(np.float64)
    if mesh:
        x = rounded(arrays["x0"] @ arrays["w0"], elem).astype(np.float64)
    else:
        x = arrays["x"]
    h = x @ arrays["w"]
    want = EPILOGUES[epi][2](h, arrays.get("bias"))
    assert got.shape == want.shape
    assert np.all(np.isfinite(got))
    err = tilemach.nmse(want, got)
    assert err <= MATMUL_NMSE, f"{M}x{K}x{N} {elem} {epi} on {target}: NMSE {err:.3g}"
    return int(re.search(r"^run: (\d+) cycles", p.stdout, re.M).group(1)), src


# (M, K, N): K of one, two, three and many K steps; N of one block, several, ragged
SHAPES = [(8, 256, 256), (8, 512, 200), (8, 768, 600), (8, 2048, 130), (4, 1024, 520),
          (1, 384, 1000)]


@pytest.mark.parametrize("target", ["tiny", "v5e-like"])
@pytest.mark.parametrize("M,K,N", SHAPES)
def test_one_chip_matches_numpy(tilec, tmp_path, target, M, K, N):
    run(tilec, tmp_path, M, K, N, "bf16", "none", target)


@pytest.mark.parametrize("elem", ["bf16", "f32"])
@pytest.mark.parametrize("epi", ["bias", "bias_gelu_bf16"])
def test_one_chip_epilogues(tilec, tmp_path, elem, epi):
    run(tilec, tmp_path, 8, 768, 328, elem, epi, "v5e-like")


# After an all_reduce over 4 chips: each chip's shard of N (N / 4 columns) is one block
# or several; K is whole K steps (the prefetch needs unpadded K). On tiny the all_reduce
# leaves a prefetch only when it is small (K = 256).
PREFETCH = {
    "tiny": [(8, 256, 1024, "bf16", "none"), (8, 256, 2080, "bf16", "bias"),
             (8, 256, 2080, "f32", "bias_gelu_bf16"), (4, 256, 1000, "bf16", "none")],
    "v5e-like": [(8, 512, 1024, "bf16", "none"), (8, 1536, 1024, "bf16", "bias"),
                 (8, 768, 2080, "bf16", "bias_gelu_bf16"), (8, 1024, 800, "f32", "bias"),
                 (4, 2048, 520, "bf16", "none")],
}


@pytest.mark.parametrize("target,M,K,N,elem,epi",
                         [(t, *c) for t, cases in PREFETCH.items() for c in cases])
def test_prefetched_matches_numpy(tilec, tmp_path, target, M, K, N, elem, epi):
    _, src = run(tilec, tmp_path, M, K, N, elem, epi, target, mesh=(1, 4))
    p = tilemach.run([tilec, src, "--target", target, "--torus", "1x4", "--emit=mir"])
    assert p.returncode == 0, p.stderr
    assert "matmul.pf" in p.stdout, "the matmul after the all_reduce has no prefetch"


# Batched: a chunk per batch, so with one or two blocks a chunk the first chunks pop
# blocks of other kinds (or none) than the chunks after them.
@pytest.mark.parametrize("target", ["tiny", "v5e-like"])
@pytest.mark.parametrize("B,K,N", [(5, 256, 200), (4, 512, 130), (3, 768, 600), (6, 256, 300)])
def test_batched_matches_numpy(tilec, tmp_path, target, B, K, N):
    src = tmp_path / "bmm.tile"
    src.write_text(f"func @f(%x: tensor<{B}x8x{K}xbf16>, %w: tensor<{B}x{K}x{N}xbf16>)"
                   f" -> tensor<{B}x8x{N}xf32> {{\n"
                   f"  %h = matmul %x, %w : tensor<{B}x8x{N}xf32>\n  return %h\n}}\n")
    rng = np.random.default_rng(B * K + N)
    x = tilemach.bf16_round(rng.standard_normal((B, 8, K)).astype(np.float32))
    w = tilemach.bf16_round((rng.standard_normal((B, K, N)) / np.sqrt(K)).astype(np.float32))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "w.npy", w)
    out = tmp_path / "out.npy"
    p = tilemach.run([tilec, "run", src, "--target", target, "--torus", "1x1",
                      "--in", f"x={tmp_path / 'x.npy'}", "--in", f"w={tmp_path / 'w.npy'}",
                      "--out", f"result={out}"], timeout=300)
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    want = np.matmul(x.astype(np.float64), w.astype(np.float64))
    err = tilemach.nmse(want, np.load(out).astype(np.float64))
    assert err <= MATMUL_NMSE, f"{B}x8x{K}x{N} on {target}: NMSE {err:.3g}"


def test_cycles_repeat(tilec, tmp_path):
    a, _ = run(tilec, tmp_path, 8, 1536, 1024, "bf16", "bias", "v5e-like", mesh=(1, 4))
    b, _ = run(tilec, tmp_path, 8, 1536, 1024, "bf16", "bias", "v5e-like", mesh=(1, 4))
    assert a == b
