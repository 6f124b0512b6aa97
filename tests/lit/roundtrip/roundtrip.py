#!/usr/bin/env python3
"""roundtrip.py TILEC SOURCE_DIR: the printer's fixed point on every valid program.

For every .tile file under examples/ and every .tile file under tests/lit/ that is
meant to be valid, prints it with `tilec --emit=ir`, prints that output again, and
requires the two texts to be byte-identical (and both runs to succeed). A test file
counts as invalid, and is skipped, when one of its RUN lines expects a failure
(`%expect-exit N` with N != 0, or `not`); everything else must round-trip, so new
valid tests join this check by themselves. A file whose RUN lines print it with
--no-verify (parser tests of text the verifier rejects) is checked the same way.

Prints one line per file checked, then `roundtrip: checked N files, M differences`;
exits 1 on any difference or failure."""
import difflib
import os
import re
import subprocess
import sys

RUN_LINE = re.compile(r"RUN:(.*)")
EXPECTS_FAILURE = re.compile(r"%expect-exit\s+(-?\d+)|(^|[|;&]\s*)not\s")


def run_lines(path):
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    return [m.group(1).strip() for m in map(RUN_LINE.search, text.splitlines()) if m]


def expected_valid(path):
    for line in run_lines(path):
        for hit in EXPECTS_FAILURE.finditer(line):
            if hit.group(1) is None or hit.group(1) != "0":
                return False
    return True


def extra_flags(path):
    return ["--no-verify"] if any("--no-verify" in line for line in run_lines(path)) else []


def tile_files(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(".tile"):
                yield os.path.join(dirpath, name)


def emit(tilec, args, stdin=None):
    return subprocess.run([tilec, "--emit=ir"] + args, input=stdin, capture_output=True)


def check(tilec, path):
    """Returns None when the file round-trips, else a description of the failure."""
    flags = extra_flags(path)
    first = emit(tilec, flags + [path])
    if first.returncode != 0:
        return "tilec exited %d on the file:\n%s" % (first.returncode, first.stderr.decode("utf-8", "replace"))
    second = emit(tilec, flags + ["-"], stdin=first.stdout)
    if second.returncode != 0:
        return "tilec exited %d on its own output:\n%s\n--- the output was:\n%s" % (
            second.returncode, second.stderr.decode("utf-8", "replace"), first.stdout.decode("utf-8", "replace"))
    if first.stdout != second.stdout:
        diff = difflib.unified_diff(
            first.stdout.decode("utf-8", "replace").splitlines(True),
            second.stdout.decode("utf-8", "replace").splitlines(True),
            "first print", "second print")
        return "printing the printed text changed it:\n" + "".join(diff)
    return None


def main():
    if len(sys.argv) != 3:
        sys.stderr.write("usage: roundtrip.py TILEC SOURCE_DIR\n")
        return 2
    tilec, source_dir = sys.argv[1], sys.argv[2]
    files = list(tile_files(os.path.join(source_dir, "examples")))
    files += [p for p in tile_files(os.path.join(source_dir, "tests", "lit")) if expected_valid(p)]
    failures = 0
    for path in files:
        rel = os.path.relpath(path, source_dir)
        problem = check(tilec, path)
        if problem is None:
            print("ok   %s" % rel)
        else:
            failures += 1
            print("FAIL %s" % rel)
            sys.stderr.write("roundtrip: %s: %s\n" % (rel, problem))
    print("roundtrip: checked %d files, %d differences" % (len(files), failures))
    return 1 if failures or not files else 0


if __name__ == "__main__":
    sys.exit(main())
