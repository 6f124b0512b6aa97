"""Prefill attention whose query heads per K/V head do not fit VMEM together runs in
parts (docs/compiler.md, "Attention"): the rows kernel keeps a running state per 8-row
query tile of the heads it takes at once, so where a K/V head's G heads do not fit it
takes G / s of them at a time, one run over every K/V head per part, reading K and V
again in each. On tiny (1 MiB of VMEM) these shapes take 2 and 4 parts; the results
must match the reference, and the copies must show the parts: Q and the result moved
once, K and V once per part."""
import json

import numpy as np
import pytest

import kernel_specs as ks
import tilemach

ATTN = next(k for k in ks.KERNELS if k.name == "attention")

# (shape, parts): the state of 4 heads of 128 rows is 1 MiB, of 2 heads 0.5 MiB
SHAPES = [
    (dict(B=1, H=4, Hkv=1, Sq=128, Sk=128, D=64), 2),
    (dict(B=1, H=4, Hkv=1, Sq=256, Sk=256, D=64), 4),
    (dict(B=2, H=8, Hkv=2, Sq=128, Sk=128, D=64), 2),
    (dict(B=1, H=4, Hkv=1, Sq=100, Sk=100, D=128), 2),
]


def run(tilec, tmp, shape, x):
    src = tmp / "attn.tile"
    src.write_text(ks.render(ATTN, shape))
    cmd = [tilec, "run", str(src), "--target", "tiny", "--torus", "1x1",
           "--stats-json", str(tmp / "stats.json"), "--out", f"result={tmp / 'o.npy'}"]
    for p in ATTN.params:
        np.save(tmp / f"{p.name}.npy", ks.to_npy(x[p.name], p.elem))
        cmd += ["--in", f"{p.name}={tmp / (p.name + '.npy')}"]
    p = tilemach.run(cmd, timeout=300)
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"
    stats = json.loads((tmp / "stats.json").read_text())
    assert stats["fault"] is None, stats["fault"]
    return ks.from_npy(np.load(tmp / "o.npy"), "bf16"), stats["chips"][0]


def shape_id(v):
    return "-".join(f"{k}{n}" for k, n in v.items()) if isinstance(v, dict) else f"parts{v}"


@pytest.mark.parametrize("shape,parts", SHAPES, ids=shape_id)
def test_parts_match_the_reference(tilec, tmp_path, shape, parts):
    x = ATTN.make_inputs("random", shape)
    got, chip = run(tilec, tmp_path, shape, x)
    want = ATTN.reference(x, shape)[0]
    ks.check(want, got, "matmul", f"attention {shape}")
    q = shape["B"] * shape["H"] * shape["Sq"] * shape["D"] * 2
    kv = shape["B"] * shape["Hkv"] * shape["Sk"] * shape["D"] * 2
    assert chip["dma_bytes"] == 2 * q + 2 * kv * parts, (chip["dma_bytes"], parts)


def test_serving_shape_compiles_on_v4(tilec, tmp_path):
    """The prefill layer's attention on a chip of 4 (8 query heads, 2 K/V heads, 2048
    positions): 23 MB of state with a K/V head's 4 heads together, against v4-like's 16
    MiB of VMEM."""
    src = tmp_path / "attn.tile"
    src.write_text(ks.render(ATTN, dict(B=1, H=8, Hkv=2, Sq=2048, Sk=2048, D=128)))
    p = tilemach.run([tilec, str(src), "--target", "v4-like", "-o", str(tmp_path / "a.tobj")],
                     timeout=300)
    assert p.returncode == 0, p.stderr


def test_one_head_that_does_not_fit_is_an_error(tilec, tmp_path):
    src = tmp_path / "attn.tile"
    src.write_text(ks.render(ATTN, dict(B=1, H=1, Hkv=1, Sq=1024, Sk=1024, D=64)))
    p = tilemach.run([tilec, str(src), "--target", "tiny", "-o", str(tmp_path / "a.tobj")])
    assert p.returncode == 1
    assert "attn.tile:15:8: error: cannot lower 'attention'" in p.stderr, p.stderr
    assert "with 1 of its query heads at a time" in p.stderr, p.stderr
