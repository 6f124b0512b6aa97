"""Faults are reported, never hidden: one program per fault class, each stopping with
exit code 1 and a message that names the fault, the chip, the pc and the cycle."""
import re

import pytest

import tilemach as tm

# (program, fault name, chip, pc, cycle, more text the message must hold, run options)
FAULTS = [
    ("fault_hazard.s", "hazard", 2, 2, 2, ["v0", "vadd.f", "vld", "cycle 3"], {}),
    ("fault_oob.s", "out-of-bounds", 0, 1, 1, ["vmem", "1046528", "1048576"], {}),
    ("fault_dma_limit.s", "dma-limit", 0, 9, 9, ["8"], {}),
    ("fault_bad_peer.s", "bad-peer", 0, 1, 1, ["chip 9", "0..3"], {}),
]


def expect_fault(r, name, chip, pc, cycle, more):
    text = r.stdout + r.stderr
    assert r.returncode == 1, f"exit {r.returncode}, want 1:\n{text}"
    assert f"fault ({name})" in text, f"the message does not name the fault '{name}':\n{text}"
    where = f"chip {chip}, pc {pc}, cycle {cycle}"
    assert where in text, f"the message does not say '{where}':\n{text}"
    for m in more:
        assert m in text, f"the message does not mention '{m}':\n{text}"
    assert "Traceback" not in text and "Segmentation" not in text
    return text


@pytest.mark.parametrize("prog,name,chip,pc,cycle,more,opts", FAULTS,
                         ids=[f[1] for f in FAULTS])
def test_fault(machine, prog, name, chip, pc, cycle, more, opts):
    r = machine.run(prog, expect_fault=True, **opts)
    expect_fault(r, name, chip, pc, cycle, more)


def test_deadlock_names_every_chip(machine):
    """Chip 0 waits for sem3 >= 2 after chip 1 signalled it once; chip 1 waits for a sem1
    nobody signals. The run stops once nothing in flight can wake them: the signal leaves
    chip 1 at cycle 1 and arrives a hop (20 cycles on tiny) later."""
    t = tm.load_target("tiny")
    r = machine.run("fault_deadlock.s", expect_fault=True)
    text = r.stdout + r.stderr
    assert r.returncode == 1, text
    assert "fault (deadlock)" in text
    # the signal leaves chip 1 with its sem.signal.r at cycle 1 and holds no link: it is
    # delivered a hop later, and from then on nothing is in flight
    assert f"chip 0, pc 1, cycle {1 + t.hop_cycles()}: deadlock" in text, text
    lines = {int(m.group(1)): m.group(0) for m in re.finditer(r"chip (\d+): [^\n]*", text)}
    assert set(lines) == set(range(t.chips)), f"not every chip's state is given:\n{text}"
    assert "pc 1" in lines[0] and "sem3" in lines[0] and "2" in lines[0], lines[0]
    assert "sem3=1" in lines[0] or "sem3 = 1" in lines[0] or "it is 1" in lines[0], lines[0]
    assert "pc 2" in lines[1] and "sem1" in lines[1], lines[1]
    for c in (2, 3):
        assert "done" in lines[c] or "halt" in lines[c], lines[c]


def test_runaway_stops_at_the_watchdog(machine):
    r = machine.run("fault_runaway.s", expect_fault=True, extra=["--watchdog", "5000"])
    text = r.stdout + r.stderr
    assert r.returncode == 1, text
    assert "fault (runaway)" in text and "watchdog limit of 5000 cycles" in text, text
    assert re.search(r"chip \d+, pc [01], cycle 5000", text), text


def test_timing_mode_reports_the_same_faults(machine):
    """Timing-only mode keeps every hazard and bounds check."""
    for prog, name, chip, pc, cycle, more, opts in FAULTS:
        r = machine.run(prog, expect_fault=True, mode="timing", **opts)
        expect_fault(r, name, chip, pc, cycle, more)
