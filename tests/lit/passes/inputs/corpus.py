#!/usr/bin/env python3
"""corpus.py TILEC SOURCE_DIR: the decompose pass on every valid program of the tree.

Takes the files the printer's round-trip check takes (every .tile under examples/
and tests/lit/ whose RUN lines expect no failure; tests/lit/roundtrip/roundtrip.py
says how), leaves out those printed with --no-verify (a pass needs verified input),
and requires of each: `tilec --emit=decomposed` succeeds, its output has no
composite op left, and it reads back through `tilec --emit=ir` as the same text.

Prints one line per file, then `corpus: checked N files, M failures`; exits 1 on a
failure."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "roundtrip"))
import roundtrip  # noqa: E402

COMPOSITE = re.compile(r"= (softmax|layernorm|rmsnorm|gelu|silu|rope|attention) ")


def check(tilec, path):
    first = subprocess.run([tilec, "--emit=decomposed", path], capture_output=True)
    if first.returncode != 0:
        return "--emit=decomposed exited %d:\n%s" % (first.returncode, first.stderr.decode())
    text = first.stdout.decode()
    left = COMPOSITE.search(text)
    if left:
        return "a composite is left: %s" % left.group(1)
    again = subprocess.run([tilec, "--emit=ir", "-"], input=first.stdout, capture_output=True)
    if again.returncode != 0:
        return "the output does not read back:\n%s" % again.stderr.decode()
    if again.stdout != first.stdout:
        return "the output is not a fixed point of the printer"
    return None


def main():
    tilec, source = sys.argv[1], sys.argv[2]
    checked = failures = 0
    for root in ("examples", os.path.join("tests", "lit")):
        for path in roundtrip.tile_files(os.path.join(source, root)):
            if not roundtrip.expected_valid(path) or roundtrip.extra_flags(path):
                continue
            rel = os.path.relpath(path, source)
            problem = check(tilec, path)
            checked += 1
            if problem:
                failures += 1
                print("FAIL %s: %s" % (rel, problem))
            else:
                print("ok   %s" % rel)
    print("corpus: checked %d files, %d failures" % (checked, failures))
    return 1 if failures or not checked else 0


if __name__ == "__main__":
    sys.exit(main())
