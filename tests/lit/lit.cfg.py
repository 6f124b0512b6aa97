# lit configuration for tilec: FileCheck tests of the driver, the parser and printer,
# the verifier's diagnostics, and the documentation.
#
# Run from the source tree (ctest does this as the `lit` test):
#   python3 -m lit -sv tests/lit --param tile_bin=BUILD --param llvm_bin=/usr/lib/llvm-19/bin \
#       --param source_dir=$PWD
#
# Substitutions:
#   %tilec            BUILD/tools/tilec
#   %build_every_op   BUILD/tests/build_every_op (test programs from tests/tools/)
#   %python           the Python running lit
#   %expect-exit N    runs the rest of the line and fails unless it exits with exactly N
#   %source_dir       the source tree
# FileCheck, not and the other LLVM tools come from llvm_bin, put first on PATH.
import os
import sys

import lit.formats

config.name = "tilec"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".tile", ".test"]
# Only .tile and .test files are tests; inputs/ folders hold files that tests feed
# to tilec (bad inputs among them), which must not be run as tests themselves.
config.excludes = ["inputs"]
config.test_source_root = os.path.dirname(os.path.abspath(__file__))


def required_param(name, hint):
    value = lit_config.params.get(name)
    if not value:
        lit_config.fatal("missing --param %s=... (%s)" % (name, hint))
    return os.path.abspath(value)


tile_bin = required_param("tile_bin", "the build directory, e.g. build/default")
llvm_bin = required_param("llvm_bin", "LLVM 19's bin directory, e.g. /usr/lib/llvm-19/bin")
source_dir = required_param("source_dir", "the source tree")

config.test_exec_root = os.path.join(tile_bin, "tests", "lit")

tilec = os.path.join(tile_bin, "tools", "tilec")
if not os.path.exists(tilec):
    lit_config.fatal("no tilec at %s: build it first (cmake --build %s --target tilec)" % (tilec, tile_bin))
if not os.path.exists(os.path.join(llvm_bin, "FileCheck")):
    lit_config.fatal("no FileCheck in %s: install llvm-19-tools" % llvm_bin)

python = sys.executable
here = config.test_source_root
# Longer names first: lit applies substitutions in order.
config.substitutions.append(("%build_every_op", os.path.join(tile_bin, "tests", "build_every_op")))
config.substitutions.append(("%expect-exit", '"%s" "%s"' % (python, os.path.join(here, "expect_exit.py"))))
config.substitutions.append(("%source_dir", source_dir))
config.substitutions.append(("%python", '"%s"' % python))
config.substitutions.append(("%tilec", tilec))

config.environment["PATH"] = os.pathsep.join([llvm_bin, config.environment.get("PATH", os.environ.get("PATH", ""))])
# Diagnostics and tool output must not depend on the caller's locale or colors.
config.environment["LC_ALL"] = "C"
config.environment.pop("TILE_TARGET_PATH", None)
