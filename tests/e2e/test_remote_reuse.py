"""Receive buffers of a chain of collectives share VMEM (backend-vliw/layout_live.c,
TileMirBuffer.remote_after): a peer writes a collective's receive buffer only after it
has finished the collective before it over the same chips, which needed this chip's
part, so the buffer's life starts where this chip first used that collective's receive
buffer instead of at the first bundle. Sixteen all_reduces of 128 KiB on tiny (1 MiB of
VMEM): with their receive buffers live from the first bundle, 60 of them would be live at
once (4 MiB) and the program would not fit."""
import numpy as np
import pytest

import tilemach
from test_collectives import target_file

STEPS = 16
T = "tensor<32x1024xf32>"


def chain_source():
    """y := all_reduce(y) - 3 y, sixteen times: each step gives back the sum over the 4
    chips (4 S - 3 S), exactly, so any byte an early arrival clobbered would show."""
    lines = [f"%three = constant {{value = 3.0}} : {T}",
             f"%y0 = all_reduce %a {{kind = add, axes = [y]}} : {T}"]
    for i in range(1, STEPS):
        lines += [f"%s{i} = all_reduce %y{i - 1} {{kind = add, axes = [y]}} : {T}",
                  f"%t{i} = mul %y{i - 1}, %three : {T}",
                  f"%y{i} = sub %s{i}, %t{i} : {T}"]
    body = "\n  ".join(lines)
    return (f"mesh @m = torus<1x4>(x, y)\n\nfunc @f(%a: {T}) -> {T} attributes {{mesh = @m}} "
            f"{{\n  {body}\n  return %y{STEPS - 1}\n}}\n")


@pytest.mark.parametrize("wrap", ["always", "never"])
def test_chain_of_all_reduces_fits(tilec, tmp_path, wrap):
    tile = tmp_path / "chain.tile"
    tile.write_text(chain_source())
    x = np.random.default_rng(2).integers(-6, 7, size=(4, 32, 1024)).astype(np.float32)
    xin, yout = tmp_path / "a.npy", tmp_path / "y.npy"
    np.save(xin, x)
    p = tilemach.run([tilemach.tilec_path(), "run", tile, "--target",
                      target_file(tmp_path, wrap), "--torus", "1x4", "--in", f"a={xin}",
                      "--out", f"result={yout}"])
    assert p.returncode == 0, p.stdout + p.stderr
    y = np.load(yout)
    for chip in range(4):
        np.testing.assert_array_equal(y[chip], x.sum(0), err_msg=f"chip {chip}")
