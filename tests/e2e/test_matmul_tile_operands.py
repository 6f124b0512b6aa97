"""Matmul epilogues that read values of the matmul's shape from outside the group (a
residual, the other half of a gated product): the fuse pass puts them in the matmul's
group (at most two), and each last-step block copies its piece of them into VMEM
(backend-vliw/gen_matmul.c, "Tile operands"). Checked against numpy under strict
emulation for shapes that walk the generator's cases: one K step (every block a last
step), several, many (staggered weight switches with an epilogue), several column and
row chunks, ragged M and N, one row tile (decode: pops two blocks behind) and a
batched dot_general; f32 and bf16 operands; and the fused group in the MIR, run to run
the same cycles."""
import re

import numpy as np
import pytest

import kernel_specs as ks
import tilemach
from test_spmd_run import silu

MATMUL_NMSE = 5e-4  # REFERENCE.md: matmul (bf16 in, f32 acc)

# name: (result type, body after %h (the matmul's f32 result), numpy of h and the
# operands r (f32, shape of h) and s (bf16, shape of h))
EPILOGUES = {
    "residual": ("f32", "  %z = add %h, %r : tensor<${S}xf32>\n  return %z\n",
                 lambda h, r, s: h + r),
    "gated_bf16": ("bf16",
                   "  %hb = convert %h : tensor<${S}xbf16>\n"
                   "  %a = silu %hb : tensor<${S}xbf16>\n"
                   "  %z = mul %a, %s : tensor<${S}xbf16>\n  return %z\n",
                   lambda h, r, s: silu(tilemach.bf16_round(h)) * s),
    "two": ("f32",
            "  %sf = convert %s : tensor<${S}xf32>\n"
            "  %m = mul %h, %sf : tensor<${S}xf32>\n"
            "  %z = add %m, %r : tensor<${S}xf32>\n  return %z\n",
            lambda h, r, s: h * s + r),
}


def source(batch, M, K, N, epi):
    rtype, body, _ = EPILOGUES[epi]
    b = f"{batch}x" if batch else ""
    S = f"{b}{M}x{N}"
    op = ("dot_general %x, %w {lhs_batch = [0], rhs_batch = [0], lhs_contract = [2], "
          "rhs_contract = [1]}" if batch else "matmul %x, %w")
    ins = {"r": "f32", "s": "bf16"}
    used = [n for n in ins if f"%{n}" in body]
    params = "".join(f", %{n}: tensor<{S}x{ins[n]}>" for n in used)
    text = (f"func @f(%x: tensor<{b}{M}x{K}xbf16>, %w: tensor<{b}{K}x{N}xbf16>{params})"
            f" -> tensor<{S}x{rtype}> {{\n"
            f"  %h = {op} : tensor<{S}xf32>\n" + body + "}\n")
    return text.replace("${S}", S), used


def run(tilec, tmp_path, batch, M, K, N, epi, target="v5e-like", seed=0):
    text, used = source(batch, M, K, N, epi)
    src = tmp_path / "mm.tile"
    src.write_text(text)
    rng = np.random.default_rng(seed)
    lead = (batch,) if batch else ()
    shapes = {"x": lead + (M, K), "w": lead + (K, N), **{n: lead + (M, N) for n in used}}
    arrays, args = {}, []
    for name, shape in shapes.items():
        a = rng.standard_normal(shape)
        if name == "w":
            a /= np.sqrt(K)
        a = a.astype(np.float32) if name == "r" else tilemach.bf16_round(a.astype(np.float32))
        if name == "r":
            np.save(tmp_path / f"{name}.npy", a)
        else:
            np.save(tmp_path / f"{name}.npy", ks.to_npy(a, "bf16"))
        arrays[name] = a.astype(np.float64)
        args += ["--in", f"{name}={tmp_path / (name + '.npy')}"]
    out = tmp_path / "out.npy"
    p = tilemach.run([tilec, "run", src, "--target", target, "--torus", "1x1", *args,
                      "--out", f"result={out}"], timeout=300)
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    got = ks.from_npy(np.load(out), EPILOGUES[epi][0]).astype(np.float64)
    h = arrays["x"] @ arrays["w"]
    want = EPILOGUES[epi][2](h, arrays.get("r"), arrays.get("s"))
    assert got.shape == want.shape
    assert np.all(np.isfinite(got))
    err = tilemach.nmse(want, got)
    assert err <= MATMUL_NMSE, f"{batch}x{M}x{K}x{N} {epi}: NMSE {err:.3g}"
    return int(re.search(r"^run: (\d+) cycles", p.stdout, re.M).group(1)), src


# (batch, M, K, N): one K step; several; many (staggered with an epilogue); column
# chunks; row chunks; ragged M and N; one row tile; batched
SHAPES = [(0, 64, 256, 512), (0, 128, 768, 384), (0, 512, 2048, 512), (0, 256, 512, 4096),
          (0, 1100, 512, 256), (0, 90, 640, 200), (0, 8, 1024, 1024), (0, 3, 384, 130),
          (2, 64, 512, 256)]


@pytest.mark.parametrize("batch,M,K,N", SHAPES)
@pytest.mark.parametrize("epi", list(EPILOGUES))
def test_matches_numpy(tilec, tmp_path, batch, M, K, N, epi):
    run(tilec, tmp_path, batch, M, K, N, epi)


def test_tiny_target(tilec, tmp_path):
    run(tilec, tmp_path, 0, 40, 256, 96, "two", target="tiny")


def test_operands_join_the_matmul_group(tilec, tmp_path):
    src = tmp_path / "mm.tile"
    src.write_text(source(0, 64, 256, 512, "two")[0])
    p = tilemach.run([tilec, src, "--target=v5e-like", "--emit=fused"], timeout=60)
    assert p.returncode == 0, p.stderr
    groups = {m.group(1): m.group(2) for m in
              re.finditer(r"^\s*%(\w+) = .*\{.*group = (\d+)", p.stdout, re.M)}
    assert groups["z"] == groups["h"] == groups["m"], p.stdout
    assert len(set(groups.values())) == 1, p.stdout


def test_same_cycles_run_to_run(tilec, tmp_path):
    a, _ = run(tilec, tmp_path, 0, 512, 2048, 512, "two")
    b, _ = run(tilec, tmp_path, 0, 512, 2048, 512, "two")
    assert a == b
