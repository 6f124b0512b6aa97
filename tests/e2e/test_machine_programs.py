"""Every tests/machine program: its results against numpy and its cycle count against
the formula its header derives, evaluated with the target file's parameters."""
import pytest

import machine_specs as ms
import tilemach as tm


@pytest.mark.parametrize("spec", ms.SPECS, ids=lambda s: s.id)
def test_program(machine, spec):
    t = spec.target_obj()
    inputs = spec.inputs(t)
    r = machine.run(spec.src, target=spec.target, torus=spec.torus, inputs=inputs,
                    outputs=spec.outputs, mode=spec.mode)
    if spec.check:
        spec.check(r.outputs, inputs, t)
    want = spec.cycles(t)
    assert r.cycles == want, (f"{spec.id} on {t.name} {t.torus_text}: {r.cycles} cycles, "
                              f"the formula in {spec.src} gives {want}")
    if spec.stats:
        spec.stats(r.stats, t)


def test_every_program_has_a_test():
    """A program in tests/machine is either run by a spec or is a fault program."""
    covered = {s.src for s in ms.SPECS}
    for path in sorted(tm.MACHINE.glob("*.s")):
        assert path.name in covered or path.name.startswith("fault_"), \
            f"{path.name} has no spec in tests/e2e/machine_specs.py"


def test_remote_cases_have_the_hops_they_claim():
    """The remote DMA cases cover 1, 2 and 3 hops with and without wraparound."""
    seen = set()
    for target, peer, k in ms.REMOTE_CASES:
        t = tm.load_target(target, "4x4")
        assert t.hops(0, peer) == k == len(t.route(0, peer))
        seen.add((any(t.wrap), k))
    assert seen == {(w, k) for w in (True, False) for k in (1, 2, 3)}
    # and on tiny one of them crosses a wraparound link
    t = tm.load_target("tiny", "4x4")
    assert any(t.coord(c)[a] == 0 and d == -1 for c, a, d in t.route(0, 12))


@pytest.mark.parametrize("torus", ["1x4", "2x2x2", "4x4", "4x4x4"])
def test_snake_ring_is_one_hop_per_step(torus):
    for target in ("tiny", "v5e-like"):  # with and without wraparound
        t = tm.load_target(target, torus)
        ring = tm.snake_ring(t)
        assert sorted(ring) == list(range(t.chips))
        if all(t.wrap) or torus != "1x4":
            assert all(t.hops(ring[i], ring[(i + 1) % len(ring)]) == 1
                       for i in range(len(ring)))


def test_cycle_formulas_follow_the_target(machine):
    """The same remote DMA on a target with other link numbers: the formula, evaluated
    from the changed file, still predicts the emulator exactly."""
    src = (tm.TARGETS / "tiny.target").read_text()
    src = src.replace("ici.bw = 1e10", "ici.bw = 3e9").replace("ici.hop_ns = 20",
                                                                "ici.hop_ns = 45")
    assert "ici.bw = 3e9" in src and "ici.hop_ns = 45" in src
    path = machine.tmp / "tiny.target"  # same name: `.target tiny` programs accept it
    path.write_text(src)
    t = tm.load_target(path, "4x4")
    peer = 6
    spec_cycles = ms.remote_cycles(peer)(t)
    r = machine.run("dma_remote.s", target=str(path), torus="4x4",
                    inputs=ms.remote_inputs(peer)(t), outputs=("dst",))
    ms.remote_check(peer)(r.outputs, ms.remote_inputs(peer)(t), t)
    assert r.cycles == spec_cycles
