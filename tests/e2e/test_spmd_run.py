"""Global sharded programs end to end: a func on a mesh in global shapes with `shard`
annotations is partitioned (shard_prop, spmd), compiled for the torus and run on the
emulator in strict mode by `tilec run`, which splits each global input into the chips'
blocks and assembles the global result (docs/compiler.md, "Running a global program").

Programs: the Megatron MLP of examples/mlp.tile and the 2D weight-stationary,
weight-gathered and batch-sharded (multiquery attention) layouts of
tests/lit/passes/spmd/, scaled down to fit the tiny target, on 1x4, 2x2, 4x4 and 2x2x2
tori, and the same programs on v4-like's 4x4x4 torus in timing-only mode (hazard-free,
the same cycles every run).
Results are checked against numpy within the REFERENCE.md tolerances: NMSE <= 5e-4 for
matmul and attention (bf16 in, f32 accumulate)."""
import re

import numpy as np
import pytest

import tilemach

# name: (torus, axis names). On 1x4 the axis x has one chip, so what x splits stays
# whole and y carries the whole split; 2x2x2 adds an axis z nothing is split over.
MESHES = {"1x4": ((1, 4), ("x", "y")), "2x2": ((2, 2), ("x", "y")),
          "4x4": ((4, 4), ("x", "y")), "2x2x2": ((2, 2, 2), ("x", "y", "z"))}

MATMUL_NMSE = 5e-4  # REFERENCE.md: matmul, attention (bf16/f16 in, f32 acc)


def gelu(h):
    """The tanh form the decompose pass computes."""
    return 0.5 * h * (1.0 + np.tanh(0.7978845608028654 * (h + 0.044715 * h ** 3)))


def silu(h):
    return h / (1.0 + np.exp(-h))


def bf16(x):
    return tilemach.bf16_round(x).astype(np.float64)


def attention(q, k, v, scale, causal):
    """Multiquery attention: k and v have one head, shared by every query head."""
    s = np.einsum("bhqd,bkd->bhqk", q, k[:, 0]) * scale
    if causal:
        n = s.shape[-1]
        s = np.where(np.tril(np.ones((n, n), bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return np.einsum("bhqk,bkd->bhqd", p, v[:, 0])


def gqa_decode(q, k, v, scale):
    """Grouped-query attention of one new token per batch row: query head h reads
    key/value head h // (H / Hkv) over the whole cache."""
    g = q.shape[1] // k.shape[1]
    kk, vv = np.repeat(k, g, axis=1), np.repeat(v, g, axis=1)
    s = np.einsum("bhqd,bhkd->bhqk", q, kk) * scale
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return np.einsum("bhqk,bhkd->bhqd", p, vv)


def megatron_attention(x, wq, kc, vc, wo):
    q = bf16(x @ wq).reshape(2, 1, 8, 64).transpose(0, 2, 1, 3)
    o = bf16(gqa_decode(q, kc, vc, 0.125))
    return o.transpose(0, 2, 1, 3).reshape(2, 512) @ wo


# name: (source after the mesh line, input shapes, reference on bf16-rounded inputs).
PROGRAMS = {
    # examples/mlp.tile, 32x smaller: w1 by columns and w2 by rows over x, the batch
    # over y, one all_reduce of the partial sums over x.
    "megatron": ("""
func @mlp(%x: tensor<8x256xbf16> {shard = [y, -]},
          %w1: tensor<256x512xbf16> {shard = [-, x]},
          %w2: tensor<512x256xbf16> {shard = [x, -]}) -> tensor<8x256xbf16>
    attributes {mesh = @m} {
  %h = matmul %x, %w1 {shard = [y, x]} : tensor<8x512xbf16>
  %g = gelu %h {shard = [y, x]} : tensor<8x512xbf16>
  %p = matmul %g, %w2 : tensor<8x256xf32>
  %y = all_reduce %p {kind = add, axes = [x], shard = [y, -]} : tensor<8x256xf32>
  %r = convert %y {shard = [y, -]} : tensor<8x256xbf16>
  return %r
}""", {"x": (8, 256), "w1": (256, 512), "w2": (512, 256)},
        lambda x, w1, w2: bf16(bf16(gelu(bf16(x @ w1))) @ w2)),
    # tests/lit/passes/spmd/ws2d.tile, the hidden dim halved.
    "ws2d": ("""
func @f(%x: tensor<16x256xbf16> {shard = [-, x]}, %w1: tensor<256x512xbf16> {shard = [x, y]},
        %w2: tensor<512x256xbf16> {shard = [y, x]}) -> tensor<16x256xf32> {
  %h = matmul %x, %w1 {shard = [-, y]} : tensor<16x512xf32>
  %g = gelu %h : tensor<16x512xf32>
  %gb = convert %g : tensor<16x512xbf16>
  %y = matmul %gb, %w2 {shard = [-, x]} : tensor<16x256xf32>
  return %y
}""", {"x": (16, 256), "w1": (256, 512), "w2": (512, 256)},
        lambda x, w1, w2: bf16(gelu(x @ w1)) @ w2),
    # tests/lit/passes/spmd/weight_gathered.tile, the hidden dim halved: the batch
    # over every chip of x and y, the weights stored split and gathered whole.
    "weight_gathered": ("""
func @f(%x: tensor<64x256xbf16> {shard = [(x, y), -]},
        %w1: tensor<256x512xbf16> {shard = [-, (x, y)]},
        %w2: tensor<512x256xbf16> {shard = [(x, y), -]}) -> tensor<64x256xf32> {
  %h = matmul %x, %w1 {shard = [(x, y), -]} : tensor<64x512xf32>
  %g = silu %h : tensor<64x512xf32>
  %gb = convert %g : tensor<64x512xbf16>
  %y = matmul %gb, %w2 : tensor<64x256xf32>
  return %y
}""", {"x": (64, 256), "w1": (256, 512), "w2": (512, 256)},
        lambda x, w1, w2: bf16(silu(x @ w1)) @ w2),
    # tests/lit/passes/spmd/mqa.tile, fewer heads and batches: the batch over x,
    # query heads over y, the one K/V head replicated; no collective at all.
    "mqa_batch": ("""
func @f(%q: tensor<4x4x128x64xbf16> {shard = [x, y, -, -]}, %k: tensor<4x1x128x64xbf16>,
        %v: tensor<4x1x128x64xbf16>) -> tensor<4x4x128x64xbf16> {
  %o = attention %q, %k, %v {scale = 0.125, causal = 1} : tensor<4x4x128x64xbf16>
  return %o
}""", {"q": (4, 4, 128, 64), "k": (4, 1, 128, 64), "v": (4, 1, 128, 64)},
        lambda q, k, v: attention(q, k, v, 0.125, True)),
    # The decode MLP of bench/layers, gathered, 28x smaller: w_gate, w_up and w_down
    # all by columns over every chip of x and y, one all_gather of the activations
    # between the matmuls (along their inner dim), the output split by columns.
    "gathered_mlp": ("""
func @mlp(%x: tensor<8x256xbf16>, %wg: tensor<256x512xbf16> {shard = [-, (x, y)]},
          %wu: tensor<256x512xbf16> {shard = [-, (x, y)]},
          %wd: tensor<512x256xbf16> {shard = [-, (x, y)]}) -> tensor<8x256xf32>
    attributes {mesh = @m} {
  %g = matmul %x, %wg : tensor<8x512xbf16>
  %u = matmul %x, %wu : tensor<8x512xbf16>
  %a = silu %g : tensor<8x512xbf16>
  %h = mul %a, %u : tensor<8x512xbf16>
  %y = matmul %h, %wd : tensor<8x256xf32>
  return %y
}""", {"x": (8, 256), "wg": (256, 512), "wu": (256, 512), "wd": (512, 256)},
        lambda x, wg, wu, wd: bf16(bf16(silu(bf16(x @ wg))) * bf16(x @ wu)) @ wd),
    # Sequence parallelism inside data-parallel groups: the residual rows split over
    # (x, y), gathered over y for w1 (by columns) and scattered back over y from w2's
    # partial sums (by rows) onto rows x already splits.
    "seq_parallel": ("""
func @block(%x: tensor<64x256xf32> {shard = [(x, y), -]},
            %w1: tensor<256x512xbf16> {shard = [-, y]},
            %w2: tensor<512x256xbf16> {shard = [y, -]}) -> tensor<64x256xf32>
    attributes {mesh = @m} {
  %xb = convert %x : tensor<64x256xbf16>
  %h = matmul %xb, %w1 {shard = [x, y]} : tensor<64x512xbf16>
  %p = matmul %h, %w2 : tensor<64x256xf32>
  %y = add %x, %p {shard = [(x, y), -]} : tensor<64x256xf32>
  return %y
}""", {"x": (64, 256), "w1": (256, 512), "w2": (512, 256)},
        lambda x, w1, w2: x + bf16(bf16(x) @ w1) @ w2),
    # Megatron attention of a decode step: query heads (wq by columns) and the
    # key/value cache's heads split over y, the heads reshaped out of and back into
    # the model dim on each chip, wo by rows; one all_reduce of the partial sums.
    "megatron_attention": ("""
func @f(%x: tensor<2x256xbf16>, %wq: tensor<256x512xbf16> {shard = [-, y]},
        %kc: tensor<2x4x128x64xbf16> {shard = [-, y, -, -]},
        %vc: tensor<2x4x128x64xbf16> {shard = [-, y, -, -]},
        %wo: tensor<512x256xbf16> {shard = [y, -]}) -> tensor<2x256xf32> {
  %q = matmul %x, %wq : tensor<2x512xbf16>
  %q4 = reshape %q : tensor<2x1x8x64xbf16>
  %qh = transpose %q4 {perm = [0, 2, 1, 3]} : tensor<2x8x1x64xbf16>
  %o = attention %qh, %kc, %vc {scale = 0.125} : tensor<2x8x1x64xbf16>
  %ot = transpose %o {perm = [0, 2, 1, 3]} : tensor<2x1x8x64xbf16>
  %o2 = reshape %ot : tensor<2x512xbf16>
  %y = matmul %o2, %wo : tensor<2x256xf32>
  return %y
}""", {"x": (2, 256), "wq": (256, 512), "kc": (2, 4, 128, 64), "vc": (2, 4, 128, 64),
       "wo": (512, 256)},
        megatron_attention),
}


def mesh_line(torus, names):
    return f"mesh @m = torus<{'x'.join(map(str, torus))}>({', '.join(names)})\n"


def bf16_bits_to_f32(a):
    return (a.view(np.uint16).astype(np.uint32) << 16).view(np.float32)


def load_result(path):
    y = np.load(path)
    return bf16_bits_to_f32(y) if y.dtype.kind == "V" else y


def check_result(out, want, what):
    """The global result in `out` against numpy's `want`, within the matmul tolerance."""
    got = load_result(out)
    assert got.shape == want.shape
    assert np.all(np.isfinite(got))
    err = tilemach.nmse(want, got)
    assert err <= MATMUL_NMSE, f"{what}: NMSE {err:.3g}"


def run_whole_and_per_chip(tilec, tmp_path, src, args):
    """The result as a global array and, with --per-chip, as each chip's block."""
    whole, per_chip = tmp_path / "y.npy", tmp_path / "yb.npy"
    p = run_tilec(tilec, [src, *args, "--out", f"result={whole}"])
    assert p.returncode == 0, p.stderr
    p = run_tilec(tilec, [src, *args, "--per-chip", "--out", f"result={per_chip}"])
    assert p.returncode == 0, p.stderr
    return np.load(whole), np.load(per_chip)


def write_program(tmp_path, prog, mesh):
    torus, names = MESHES[mesh]
    path = tmp_path / f"{prog}.tile"
    path.write_text(mesh_line(torus, names) + PROGRAMS[prog][0])
    return path


def random_inputs(tmp_path, shapes, seed):
    """f32 arrays of bf16 values (tilec rounds f32 data for a bf16 input), saved as
    .npy; weights scaled so activations stay near 1."""
    rng = np.random.default_rng(seed)
    arrays, args = {}, []
    for name, shape in shapes.items():
        a = rng.standard_normal(shape) / (np.sqrt(shape[0]) if name.startswith("w") else 1)
        a = tilemach.bf16_round(a.astype(np.float32))
        path = tmp_path / f"{name}.npy"
        np.save(path, a)
        arrays[name] = a.astype(np.float64)
        args += ["--in", f"{name}={path}"]
    return arrays, args


def run_tilec(tilec, args):
    return tilemach.run([tilec, "run", *args], timeout=300)


@pytest.mark.parametrize("mesh", sorted(MESHES))
@pytest.mark.parametrize("prog", sorted(PROGRAMS))
def test_global_program_matches_numpy(tilec, tmp_path, prog, mesh):
    src = write_program(tmp_path, prog, mesh)
    _, shapes, ref = PROGRAMS[prog]
    arrays, args = random_inputs(tmp_path, shapes, seed=len(prog) * 7 + len(mesh))
    out = tmp_path / "y.npy"
    # No --torus: a global program runs on its mesh's torus.
    p = run_tilec(tilec, [src, "--target", "tiny", *args, "--out", f"result={out}"])
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    assert "not bound" not in p.stderr
    chips = int(np.prod(MESHES[mesh][0]))
    assert len(re.findall(r"^ +\d+ \([\d,]+\) ", p.stdout, re.M)) == chips, p.stdout
    check_result(out, ref(*arrays.values()), f"{prog} on {mesh}")


def test_gathered_mlp_on_lines(tilec, tmp_path):
    """The gathered MLP on v5e-like's 4x4, whose axes do not wrap: the activations'
    gather runs by the lines into scratch and one strided copy, while w_down's shard is
    copied in (the prefetch), and the values still match numpy."""
    src = write_program(tmp_path, "gathered_mlp", "4x4")
    _, shapes, ref = PROGRAMS["gathered_mlp"]
    arrays, args = random_inputs(tmp_path, shapes, seed=41)
    out = tmp_path / "y.npy"
    p = run_tilec(tilec, [src, "--target", "v5e-like", *args, "--out", f"result={out}"])
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    check_result(out, ref(*arrays.values()), "gathered_mlp on v5e-like 4x4")


def test_per_chip_blocks(tilec, tmp_path):
    """Per-chip inputs (a leading chip dimension) still bind as they are, mixed with
    global ones; --per-chip writes each chip's block of the result."""
    src = write_program(tmp_path, "ws2d", "2x2")
    arrays, args = random_inputs(tmp_path, PROGRAMS["ws2d"][1], seed=3)
    x = arrays["x"]  # [-, x]: chip (i, j) holds columns block i
    blocks = np.stack([x[:, i * 128:(i + 1) * 128] for i in (0, 0, 1, 1)]).astype(np.float32)
    np.save(tmp_path / "xb.npy", blocks)
    args[1] = f"x={tmp_path / 'xb.npy'}"
    y, yb = run_whole_and_per_chip(tilec, tmp_path, src, args)
    assert y.shape == (16, 256) and yb.shape == (4, 16, 128)
    # result [-, x]: chip (i, j) holds columns block i; the y replicas agree closely
    for chip, (i, _) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        np.testing.assert_allclose(yb[chip], y[:, i * 128:(i + 1) * 128], rtol=1e-5, atol=1e-5)
    want = PROGRAMS["ws2d"][2](*arrays.values())
    assert tilemach.nmse(want, y) <= MATMUL_NMSE


def test_wrong_input_shape_names_both_shapes(tilec, tmp_path):
    src = write_program(tmp_path, "megatron", "2x2")
    np.save(tmp_path / "x.npy", np.zeros((4, 256), np.float32))
    p = run_tilec(tilec, [src, "--in", f"x={tmp_path / 'x.npy'}"])
    assert p.returncode == 1
    assert "'x' is bf16 [8, 256] globally (or bf16 [4, 4, 256], one block per chip)" in p.stderr


def test_torus_other_than_the_mesh(tilec, tmp_path):
    src = write_program(tmp_path, "mqa_batch", "2x2")
    p = run_tilec(tilec, [src, "--torus", "1x4"])
    assert p.returncode == 1
    assert "a 2x2 torus, but the machine is 1x4; run it with --torus 2x2" in p.stderr


def test_per_chip_option_needs_a_global_program(tilec, tmp_path):
    src = tmp_path / "one.tile"
    src.write_text("func @f(%a: tensor<8x128xf32>) -> tensor<8x128xf32> {\n"
                   "  %y = exp %a : tensor<8x128xf32>\n  return %y\n}\n")
    p = run_tilec(tilec, [src, "--per-chip"])
    assert p.returncode == 1
    assert "--per-chip is for global programs" in p.stderr


def test_compile_partitions_a_global_program(tilec, tmp_path):
    """`tilec FILE -o OUT.tobj` compiles the per-chip program; the object runs with
    per-chip arrays (the global split needs the source's shardings)."""
    src = write_program(tmp_path, "megatron", "2x2")
    p = tilemach.run([tilec, src, "--torus", "2x2", "--emit=fused"])
    assert p.returncode == 0, p.stderr
    assert "tensor<4x256xbf16>" in p.stdout and "shard =" not in p.stdout
    assert "all_reduce" in p.stdout
    obj = tmp_path / "m.tobj"
    p = tilemach.run([tilec, src, "--torus", "2x2", "-o", obj])
    assert p.returncode == 0, p.stderr
    p = run_tilec(tilec, [obj, "--torus", "2x2"])
    assert p.returncode == 0, p.stderr


def test_sharding_conflict_is_reported_once(tilec):
    src = tilemach.ROOT / "tests" / "lit" / "passes" / "spmd" / "inputs" / "conflict.tile"
    p = run_tilec(tilec, [src])
    assert p.returncode == 1
    assert p.stderr.count("error: conflicting shardings meet at add") == 1, p.stderr


@pytest.mark.parametrize("prog", sorted(PROGRAMS))
def test_global_program_times_on_v4_like(tilec, tmp_path, prog):
    """64 chips of v4-like (a 4x4x4 torus with wraparound), timing only: the program
    partitions for the bigger mesh, runs strict without a hazard, and takes the same
    cycles twice."""
    path = tmp_path / f"{prog}.tile"
    path.write_text(mesh_line((4, 4, 4), ("x", "y", "z")) + PROGRAMS[prog][0])
    cycles = []
    for _ in range(2):
        p = run_tilec(tilec, [path, "--target", "v4-like", "--mode", "timing"])
        assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
        cycles.append(re.search(r"^run: (\d+) cycles", p.stdout, re.M).group(1))
        assert len(re.findall(r"^ +\d+ \([\d,]+\) ", p.stdout, re.M)) == 64, p.stdout
    assert cycles[0] == cycles[1]


# Meshes in the full form (docs/tile-ir.md, "Modules"): x and y share a torus dim (the
# first declared major), or one of them spans two dims (row-major in the order it lists
# them); an axis r the programs split nothing over holds replicas.
FULL_MESHES = {
    "4x4-x,y-on-1": ((4, 4), "x = 2 on [1], y = 2 on [1], r = 4 on [0]"),
    "2x4-y,x-on-1": ((2, 4), "y = 2 on [1], x = 2 on [1], r = 2 on [0]"),
    "2x2x2-x-spans-0,1": ((2, 2, 2), "x = 4 on [0, 1], y = 2 on [2]"),
    "2x2x2-y-spans-2,1": ((2, 2, 2), "y = 4 on [2, 1], x = 2 on [0]"),
}


@pytest.mark.parametrize("mesh", sorted(FULL_MESHES))
@pytest.mark.parametrize("prog", sorted(PROGRAMS))
def test_global_program_on_full_form_mesh(tilec, tmp_path, prog, mesh):
    """tilec run splits the global inputs by each chip's position on the axes (the
    collectives' rule) and assembles the result from the first replica of each block."""
    torus, decl = FULL_MESHES[mesh]
    src = tmp_path / f"{prog}.tile"
    src.write_text(f"mesh @m = torus<{'x'.join(map(str, torus))}>({decl})\n" + PROGRAMS[prog][0])
    _, shapes, ref = PROGRAMS[prog]
    arrays, args = random_inputs(tmp_path, shapes, seed=len(prog) * 5 + len(mesh))
    out = tmp_path / "y.npy"
    p = run_tilec(tilec, [src, "--target", "tiny", *args, "--out", f"result={out}"])
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    check_result(out, ref(*arrays.values()), f"{prog} on {mesh}")


def test_full_form_blocks_per_chip(tilec, tmp_path):
    """The block each chip holds under a split dim: `ws2d`'s x is [-, x]; on a mesh with
    x = 2 and y = 2 both on torus dim 1 (x major), chip (i, j) holds column block
    j // 2 of x, which --per-chip shows as the block of its result's [-, x] columns."""
    torus, decl = FULL_MESHES["4x4-x,y-on-1"]
    src = tmp_path / "ws2d.tile"
    src.write_text(f"mesh @m = torus<4x4>({decl})\n" + PROGRAMS["ws2d"][0])
    arrays, args = random_inputs(tmp_path, PROGRAMS["ws2d"][1], seed=9)
    y, yb = run_whole_and_per_chip(tilec, tmp_path, src, args)
    assert y.shape == (16, 256) and yb.shape == (16, 16, 128)
    for chip in range(16):
        blk = chip % 4 // 2
        np.testing.assert_allclose(yb[chip], y[:, blk * 128:(blk + 1) * 128], rtol=1e-5,
                                   atol=1e-5, err_msg=f"chip {chip}")
