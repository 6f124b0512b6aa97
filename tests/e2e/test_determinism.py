"""The emulator is deterministic: every program, on 1, 2 and 4 host threads and twice
each, gives byte-identical outputs, statistics and trace."""
import json

import numpy as np
import pytest

import machine_specs as ms


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
                   r.trace_text)
            if seen is None:
                seen, first = got, (threads, attempt)
                continue
            for what, a, b in zip(("outputs", "statistics", "trace"), seen, got):
                assert a == b, (f"{spec.id}: the {what} of run {attempt + 1} on {threads} "
                                f"threads differ from run {first[1] + 1} on {first[0]}")
    assert seen is not None and all(isinstance(a, bytes) for a in seen[0].values())
    assert np.isfinite(json.loads(seen[1])["cycles"])
