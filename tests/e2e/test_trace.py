"""The Chrome/Perfetto trace: it loads as JSON, has a process per chip with a track per
unit, DMA slices from issue to completion and link slices while a transfer
serializes, at the cycles the timing model gives."""
import pytest

import machine_specs as ms
import tilemach as tm

def events(trace, ph=None, pid=None):
    return [e for e in trace["traceEvents"]
            if (ph is None or e.get("ph") == ph) and (pid is None or e.get("pid") == pid)]


def tracks(trace, pid):
    return {e["args"]["name"]: e["tid"] for e in events(trace, "M", pid)
            if e["name"] == "thread_name"}


def processes(trace):
    return {e["pid"]: e["args"]["name"] for e in events(trace, "M")
            if e["name"] == "process_name"}


@pytest.fixture
def shared_trace(machine):
    spec = next(s for s in ms.SPECS if s.id == "dma_shared")
    t = spec.target_obj()
    r = machine.run(spec.src, inputs=spec.inputs(t), trace=True)
    return r, t


def test_trace_has_a_track_per_chip_unit(machine):
    spec = next(s for s in ms.SPECS if s.id == "allreduce_ring_2x2x2")
    t = spec.target_obj()
    r = machine.run(spec.src, torus=spec.torus, inputs=spec.inputs(t), trace=True)
    tr = r.trace
    assert tr["otherData"]["cycles"] == r.cycles
    procs = processes(tr)
    for c in range(t.chips):
        coord = ",".join(map(str, t.coord(c)))
        assert procs[c] == f"chip {c} ({coord})", procs
        names = tracks(tr, c)
        for u in tm.UNITS + ["sem wait"] + [f"mxu{m} pushes" for m in range(t.mxu_count)]:
            assert u in names, f"chip {c} has no '{u}' track: {sorted(names)}"
        assert any(n.startswith("dma lane") for n in names)
    assert "network" in procs.values()
    # every chip sent 2(p-1) chunks: one DMA slice each, to its ring neighbour
    ring = tm.snake_ring(t)
    for q, c in enumerate(ring):
        dmas = [e for e in events(tr, "X", c) if e["name"].startswith("dma ")
                and e["tid"] >= 1000]
        assert len(dmas) == 2 * (t.chips - 1)
        assert all(e["args"]["peer"] == ring[(q + 1) % t.chips] for e in dmas)


def test_dma_slices_run_from_issue_to_completion(shared_trace):
    r, t = shared_trace
    d_a, d_b = ms.dma_shared_times(t)
    slices = sorted((e["args"]["cycle"], e["args"]["cycles"], e["args"]["bytes"])
                    for e in events(r.trace, "X", 0) if e["tid"] >= 1000)
    assert slices == [(1, d_a - 1, 20000), (2, d_b - 2, 6000)]
    waits = [e for e in events(r.trace, "X", 0) if e["name"].startswith("sem.wait")]
    assert [(e["args"]["cycle"], e["args"]["cycles"]) for e in waits] == \
        [(3, d_b - 3), (d_b + 1, d_a - d_b - 1)]


def test_times_are_cycles_over_the_clock(shared_trace):
    r, t = shared_trace
    for e in events(r.trace, "X"):
        assert e["ts"] == pytest.approx(e["args"]["cycle"] * 1e6 / t.clock_hz, abs=1e-6)
        assert e["dur"] == pytest.approx(e["args"]["cycles"] * 1e6 / t.clock_hz, abs=1e-6)


def test_link_slices_follow_the_route(machine):
    """chip 0 -> chip 6 on tiny 4x4: three links in dimension order; the head reaches
    link i at s0 + i * hop, and each link serializes for ser cycles."""
    peer = 6
    t = tm.load_target("tiny", "4x4")
    r = machine.run("dma_remote.s", torus="4x4", inputs=ms.remote_inputs(peer)(t),
                    trace=True)
    net = next(pid for pid, name in processes(r.trace).items() if name == "network")
    names = {tid: name for name, tid in tracks(r.trace, net).items()}
    s0 = ms.REMOTE_DMA_CYCLE + t.dma_issue
    hop, ser = t.hop_cycles(), t.xfer_cycles(ms.REMOTE_BYTES, t.ici_bw)
    got = sorted((e["args"]["cycle"], e["args"]["cycles"], names[e["tid"]])
                 for e in events(r.trace, "X", net))
    want = []
    for i, (chip, axis, d) in enumerate(t.route(0, peer)):
        nxt = t.coord(chip)
        nxt[axis] = (nxt[axis] + d) % t.torus[axis]
        want.append((s0 + i * hop, ser,
                     f"chip {chip} -> chip {t.chip_id(nxt)} (axis {axis} {'+' if d > 0 else '-'})"))
    assert got == want
