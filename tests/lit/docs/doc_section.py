#!/usr/bin/env python3
"""doc_section.py check|update NAME DOC GENERATED: the generated section NAME of DOC
(between its `<!-- BEGIN NAME` and `<!-- END NAME` marker lines) against GENERATED.
Sections: OP REFERENCE in docs/tile-ir.md (`tilec --print-op-reference`), ISA REFERENCE
in docs/isa.md (`tilec isa-reference`).

check   exits 1 with a diff when they differ.
update  writes GENERATED into DOC between the markers.
To refresh a document after changing its table:
  build/default/tools/tilec isa-reference > /tmp/isa.md
  python3 tests/lit/docs/doc_section.py update "ISA REFERENCE" docs/isa.md /tmp/isa.md"""
import difflib
import sys


def split(doc_text, doc_path, name):
    BEGIN, END = "<!-- BEGIN " + name, "<!-- END " + name
    lines = doc_text.splitlines(True)
    begin = [i for i, l in enumerate(lines) if l.startswith(BEGIN)]
    end = [i for i, l in enumerate(lines) if l.startswith(END)]
    if len(begin) != 1 or len(end) != 1 or end[0] < begin[0]:
        sys.exit("doc_section: %s must hold one '%s ...' line and, after it, one '%s ...' line"
                 % (doc_path, BEGIN, END))
    return lines[: begin[0] + 1], lines[begin[0] + 1 : end[0]], lines[end[0] :]


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("check", "update"):
        sys.exit(__doc__)
    mode, name, doc_path, gen_path = sys.argv[1:]
    with open(doc_path, encoding="utf-8") as f:
        doc = f.read()
    with open(gen_path, encoding="utf-8") as f:
        generated = f.read()
    head, section, tail = split(doc, doc_path, name)
    if mode == "update":
        with open(doc_path, "w", encoding="utf-8") as f:
            f.write("".join(head) + generated + "".join(tail))
        return 0
    if "".join(section) == generated:
        print("%s: %s is current (%d lines)" % (name.lower(), doc_path, len(section)))
        return 0
    sys.stdout.writelines(difflib.unified_diff(section, generated.splitlines(True), doc_path + " (" + name.lower() + ")",
                                               "generated"))
    print("%s: %s is stale; refresh it as this script's header says" % (name.lower(), doc_path))
    return 1


if __name__ == "__main__":
    sys.exit(main())
