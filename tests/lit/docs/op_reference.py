#!/usr/bin/env python3
"""op_reference.py check|update DOC GENERATED: the op reference section of DOC
(between the BEGIN/END OP REFERENCE markers) against GENERATED (the output of
`tilec --print-op-reference`).

check   exits 1 with a diff when they differ.
update  writes GENERATED into DOC between the markers.
To refresh the document after changing include/tile/ops.h:
  build/default/tools/tilec --print-op-reference > /tmp/ref.md
  python3 tests/lit/docs/op_reference.py update docs/tile-ir.md /tmp/ref.md"""
import difflib
import sys

BEGIN = "<!-- BEGIN OP REFERENCE"
END = "<!-- END OP REFERENCE"


def split(doc_text, doc_path):
    lines = doc_text.splitlines(True)
    begin = [i for i, l in enumerate(lines) if l.startswith(BEGIN)]
    end = [i for i, l in enumerate(lines) if l.startswith(END)]
    if len(begin) != 1 or len(end) != 1 or end[0] < begin[0]:
        sys.exit("op_reference: %s must hold one '%s ...' line and, after it, one '%s ...' line"
                 % (doc_path, BEGIN, END))
    return lines[: begin[0] + 1], lines[begin[0] + 1 : end[0]], lines[end[0] :]


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("check", "update"):
        sys.exit(__doc__)
    mode, doc_path, gen_path = sys.argv[1:]
    with open(doc_path, encoding="utf-8") as f:
        doc = f.read()
    with open(gen_path, encoding="utf-8") as f:
        generated = f.read()
    head, section, tail = split(doc, doc_path)
    if mode == "update":
        with open(doc_path, "w", encoding="utf-8") as f:
            f.write("".join(head) + generated + "".join(tail))
        return 0
    if "".join(section) == generated:
        print("op reference: %s is current (%d lines)" % (doc_path, len(section)))
        return 0
    sys.stdout.writelines(difflib.unified_diff(section, generated.splitlines(True), doc_path + " (op reference)",
                                               "tilec --print-op-reference"))
    print("op reference: %s is stale; refresh it as this script's header says" % doc_path)
    return 1


if __name__ == "__main__":
    sys.exit(main())
