#!/usr/bin/env python3
"""ops_covered.py REFERENCE PROGRAM: checks that PROGRAM (printed .tile text) uses
every op named in REFERENCE (the output of `tilec --print-op-reference`), so the
round-trip corpus keeps up with the op table. Prints the ops it misses."""
import re
import sys


def main():
    ref, prog = (open(p, encoding="utf-8").read() for p in sys.argv[1:3])
    ops = re.findall(r"^\| `([a-z_]+)` \|", ref, re.M)
    # An op stands at the start of a line or after '=', and is followed by a space
    # or the end of the line.
    used = set(re.findall(r"(?:^\s*|=\s)([a-z_]+)(?=\s|$)", prog, re.M))
    missing = [op for op in ops if op not in used]
    if not ops:
        print("ops_covered: no ops found in %s" % sys.argv[1])
        return 1
    if missing:
        print("ops_covered: %d ops of the table are not used: %s" % (len(missing), ", ".join(missing)))
        return 1
    print("ops_covered: all %d ops of the table are used" % len(ops))
    return 0


if __name__ == "__main__":
    sys.exit(main())
