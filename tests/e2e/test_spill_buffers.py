"""Spilled vector registers each get a VMEM buffer of their own (docs/compiler.md,
"Register allocation"), live only where the register is, so layout puts one group's
spills beside other groups' buffers. The 4-chip sequence-parallel MLP of the layers
bench on v4-like (16 MiB of VMEM) spills megabytes of registers in its matmuls: with
one spill buffer for the whole program it did not fit beside the buffers live across
it. It must compile and run (timing mode), its spills in buffers of one register."""
import re

import tilemach
from test_coll_matmul import sp_mlp

TORUS = ["--target", "v4-like", "--torus", "1x4"]


def test_prefill_mlp_spills_fit_v4(tilec, tmp_path):
    src = tmp_path / "mlp.tile"
    src.write_text(sp_mlp((1, 4), ("d", "t"), "(d, t)", 2048, 4096, 14336))
    listing = tilemach.run([tilec, str(src), *TORUS, "-S"], timeout=600)
    assert listing.returncode == 0, listing.stderr
    # the spill ops name their register's buffer: vst v25, s0, s0, spill.vregs.N-512
    spills = set(re.findall(r"spill\.vregs\.(\d+)", listing.stdout))
    assert len(spills) > 1, "the program is meant to spill vector registers"
    run = tilemach.run([tilec, "run", str(src), *TORUS, "--mode", "timing"], timeout=600)
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    assert re.search(r"run: \d+ cycles", run.stdout + run.stderr), run.stdout
