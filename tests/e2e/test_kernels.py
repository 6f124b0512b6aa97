"""The kernel suite end to end: every kernel of examples/kernels/ (the table in
kernel_specs.py) compiled from its `.tile` text and run on the emulator with
`tilec run FILE.tile --target T --in NAME=FILE.npy ... --out result=OUT.npy`, at small
shapes on tiny and moderate ones on v5e-like, on random inputs from fixed seeds and on
edge values, and compared with numpy references by REFERENCE.md's tolerances.

The emulator runs in strict mode (tilec run's default): a hazard is a fault and the
run exits 1, which fails the test with the fault's message. Compiling the same source
twice must give byte-identical objects.

Cheaper checks come first and need no code generator: every example is its template
at the serving shape, parses and verifies, and the Tile IR reference evaluator
(tileref) agrees with the numpy reference on each template, so a failure further down
is the compiler's, not the test's."""
import json
import subprocess

import numpy as np
import pytest

import kernel_specs as ks
import tilemach as tm
import tileref

KERNELS = ks.KERNELS
CASES = ks.all_cases()


def run_tilec(args, timeout=300):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout)


# ---- the examples and the references, without a code generator ----

@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.name)
def test_example_is_its_template_at_the_serving_shape(kernel):
    assert kernel.example.exists(), f"{kernel.example} is missing: run kernel_specs.py --write"
    assert kernel.example.read_text() == ks.render(kernel, kernel.serving), (
        f"{kernel.example.name} differs from its template in kernel_specs.py at "
        f"{kernel.serving}: edit the template, then run `python3 tests/e2e/kernel_specs.py "
        f"--write`")


def test_every_example_has_a_kernel():
    names = {k.name for k in KERNELS}
    for path in sorted(ks.EXAMPLES.glob("*.tile")):
        assert path.stem in names, f"{path.name} has no row in kernel_specs.KERNELS"


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.name)
def test_example_parses_and_verifies(tilec, kernel):
    p = run_tilec([tilec, kernel.example])
    assert p.returncode == 0, f"tilec {kernel.example.name} (exit {p.returncode}):\n{p.stderr}"


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.name)
def test_tileref_agrees_with_the_reference(kernel):
    """The template means what the numpy reference computes: tileref evaluates the
    .tile text (float64, each op rounded to its type) on the first test shape."""
    _, shape = kernel.tests[0]
    mod = tileref.parse(ks.render(kernel, shape), kernel.name)
    for case in ["random"] + list(kernel.edges):
        x = kernel.make_inputs(case, shape)
        args = [x[p.name] for p in kernel.params]
        got = mod.run(kernel.func, *args)
        want = kernel.reference(x, shape)
        assert len(got) == len(want) == len(kernel.results)
        for res, w, g in zip(kernel.results, want, got):
            ks.check(expected(w, res), np.asarray(g), res.klass,
                     f"tileref {kernel.name} {case} {res.symbol}")


def expected(ref, res):
    """The reference as a result of res is compared: elementwise classes rounded to the
    result's element type (a bf16 result is held to its own rounding), exact results
    as integers or the type's values, the others as computed."""
    if res.klass in ("ew", "exact"):
        return ks.round_to(ref, res.elem)
    return ref


# ---- compiled and run ----

def run_case(tilec, tmp, case):
    k = case.kernel
    src = tmp / f"{k.name}.tile"
    src.write_text(ks.render(k, case.shape))
    x = k.make_inputs(case.inputs, case.shape, case.seed)
    # One chip: the kernels are single-chip programs, and every chip of the target's
    # default torus would run the same code (16 on v5e-like).
    cmd = [tilec, "run", src, "--target", case.target, "--torus", "1x1",
           "--stats-json", tmp / "stats.json"]
    for p in k.params:
        path = tmp / f"in_{p.name}.npy"
        np.save(path, ks.to_npy(x[p.name], p.elem))
        cmd += ["--in", f"{p.name}={path}"]
    outs = []
    for r in k.results:
        path = tmp / f"out_{r.symbol}.npy"
        outs.append(path)
        cmd += ["--out", f"{r.symbol}={path}"]
    p = run_tilec(cmd)
    assert p.returncode == 0, (f"{case.id}: tilec run exit {p.returncode}\n"
                               f"{' '.join(map(str, cmd))}\n{p.stdout}\n{p.stderr}")
    stats = json.loads((tmp / "stats.json").read_text())
    assert stats["fault"] is None, f"{case.id}: {stats['fault']}"
    got = [ks.from_npy(np.load(path), r.elem) for path, r in zip(outs, k.results)]
    return x, got


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_kernel(tilec, tmp_path, case):
    k = case.kernel
    x, got = run_case(tilec, tmp_path, case)
    want = k.reference(x, case.shape)
    for res, w, g in zip(k.results, want, got):
        ks.check(expected(w, res), g, res.klass, f"{case.id} {res.symbol}")


@pytest.mark.parametrize("target", ["tiny", "v5e-like"])
@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.name)
def test_compile_is_deterministic(tilec, tmp_path, kernel, target):
    shape = next(s for t, s in kernel.tests if t == target)
    src = tmp_path / f"{kernel.name}.tile"
    src.write_text(ks.render(kernel, shape))
    objs = []
    for i in range(2):
        obj = tmp_path / f"{kernel.name}.{i}.tobj"
        p = run_tilec([tilec, src, f"--target={target}", "-o", obj])
        assert p.returncode == 0, f"tilec {src.name} --target={target} -o: {p.stderr}"
        objs.append(obj.read_bytes())
    assert objs[0] == objs[1], (f"{kernel.name} on {target} at {shape}: two compiles gave "
                                f"different objects ({len(objs[0])} and {len(objs[1])} bytes)")


def test_every_kernel_runs_on_both_targets():
    for k in KERNELS:
        targets = {t for t, _ in k.tests}
        assert targets == {"tiny", "v5e-like"}, f"{k.name} is tested on {sorted(targets)}"


def test_shapes_fit_the_tiny_target():
    """Inputs and results of every tiny case fit tiny's HBM with room for scratch."""
    t = tm.load_target("tiny")
    for case in CASES:
        if case.target != "tiny":
            continue
        k = case.kernel
        nbytes = sum(int(np.prod(p.shape(case.shape))) * (2 if p.elem == "bf16" else 4)
                     for p in k.params)
        assert nbytes * 2 < t.hbm_bytes, f"{case.id}: {nbytes} bytes of inputs"


def test_trace_svg_draws_mxu_and_dma_rows(machine, tmp_path):
    """scripts/trace_svg.py (which draws docs/images/matmul_trace.svg) on a machine
    program's trace: a row per MXU and per DMA lane, busy spans where the trace has
    slices, and the same bytes from the same trace."""
    import xml.etree.ElementTree as ET
    script = tm.ROOT / "scripts" / "trace_svg.py"
    r = machine.run("dma_local.s", trace=True)
    r2 = machine.run("mxu_matmul.s", trace=True)
    for name, run in (("dma", r), ("mxu", r2)):
        trace = tmp_path / f"{name}.json"
        trace.write_text(run.trace_text)
        svgs = []
        for i in range(2):
            out = tmp_path / f"{name}{i}.svg"
            p = run_tilec(["python3", script, trace, "-o", out, "--title", name])
            assert p.returncode == 0, p.stderr
            svgs.append(out.read_text())
        assert svgs[0] == svgs[1]
        root = ET.fromstring(svgs[0])
        texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
        fills = [e.get("fill") for e in root.iter("{http://www.w3.org/2000/svg}rect")]
        t = machine.target()
        for u in range(t.mxu_count):
            assert any(s and s.startswith(f"mxu{u} ") for s in texts), texts
        color = "#e08a1e" if name == "dma" else "#3b6fb6"
        # one legend swatch, and at least one span
        assert fills.count(color) >= 2, f"{name}: no busy span drawn"
