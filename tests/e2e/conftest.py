"""pytest setup for the end-to-end tests: finds the build ($TILEC_BUILD, relative to the
source root, default build/default) and its tilec, and gives tests a `machine` fixture
that assembles and runs tests/machine programs (tilemach.run_program)."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tilemach  # noqa: E402


def pytest_report_header(config):
    return f"tilec: {tilemach.tilec_path()}"


@pytest.fixture(scope="session")
def tilec():
    path = tilemach.tilec_path()
    if not path.exists():
        pytest.fail(f"no tilec at {path}: build it (cmake --build {tilemach.build_dir()}) "
                    f"or set TILEC_BUILD to the build folder")
    return path


class Machine:
    """Runs programs in one test's temporary folder."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.n = 0

    def _dir(self):
        self.n += 1
        d = self.tmp / f"run{self.n}"
        d.mkdir()
        return d

    def run(self, src, **kw):
        """Assembles and runs a tests/machine program (tilemach.run_object's options)."""
        return tilemach.run_program(self._dir(), src, **kw)

    def assemble(self, src):
        src = tilemach.machine_source(src)
        return tilemach.assemble(src, self.tmp / (src.stem + ".tobj"))

    def run_object(self, obj, **kw):
        return tilemach.run_object(self._dir(), obj, **kw)

    def target(self, name="tiny", torus=None):
        return tilemach.load_target(name, torus)


@pytest.fixture
def machine(tilec, tmp_path):
    return Machine(tmp_path)
