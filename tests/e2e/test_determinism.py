"""The emulator is deterministic: every program, on 1, 2 and 4 host threads and twice
each, gives byte-identical outputs, statistics (as printed and as JSON) and trace."""
import pytest

import machine_specs as ms
import tilemach as tm


@pytest.mark.parametrize("spec", ms.SPECS, ids=lambda s: s.id)
def test_same_bits_on_any_thread_count(machine, spec):
    t = spec.target_obj()
    inputs = spec.inputs(t)
    obj = machine.assemble(spec.src)
    seen = None
    for threads in (1, 2, 4):
        for attempt in range(2):
            r = machine.run_object(obj, target=spec.target, torus=spec.torus, inputs=inputs,
                                   outputs=spec.outputs, mode=spec.mode, threads=threads,
                                   trace=True)
            got = ({n: a.tobytes() for n, a in r.outputs.items()}, r.stats_text,
                   r.trace_text, r.stats_json)
            if seen is None:
                seen, first = got, (threads, attempt)
                continue
            for what, a, b in zip(("outputs", "statistics", "trace", "statistics JSON"), seen,
                                  got):
                assert a == b, (f"{spec.id}: the {what} of run {attempt + 1} on {threads} "
                                f"threads differ from run {first[1] + 1} on {first[0]}")
    assert tm.parse_stats(seen[1])["cycles"] == spec.cycles(t)


@pytest.mark.parametrize("prog", ["fault_hazard.s", "fault_deadlock.s", "fault_dma_limit.s"])
def test_faults_are_the_same_on_any_thread_count(machine, prog):
    """The fault reported (the earliest by cycle, then chip) and its message do not
    depend on how chips are spread over host threads."""
    obj = machine.assemble(prog)
    seen = None
    for threads in (1, 2, 4):
        for _ in range(2):
            r = machine.run_object(obj, threads=threads, trace=True, expect_fault=True)
            assert r.returncode == 1, r.stderr
            assert r.tmp_trace_path.exists(), "no trace was written for the faulted run"
            got = (r.stdout, r.stderr, r.tmp_trace_path.read_text())
            assert seen is None or got == seen, f"{prog} on {threads} threads differs"
            seen = got
