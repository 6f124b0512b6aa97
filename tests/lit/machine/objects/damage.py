#!/usr/bin/env python3
"""damage.py HOW N IN OUT: writes a damaged copy of the object IN to OUT.

  flip N      flips the low bit of byte N (the checksum no longer matches)
  truncate N  keeps the first N bytes
  version N   sets the version field to N
  opcode N    sets the opcode of the first code word to N, then reseals the checksum
  count N     sets the code section's entry count to N, then reseals the checksum

Resealing recomputes the header's FNV-1a 64 checksum, so the reader's structural
checks behind it are reached (docs/isa.md, "Object layout")."""
import struct
import sys

HEADER = 32
CODE_SECTION = 112   # after the header (32) and the target section (16 + 64)
FIRST_WORD = 136     # the code section's header (16) and first entry's chip, nbundles (8)


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def reseal(b):
    b[24:32] = struct.pack("<Q", fnv1a64(bytes(b[HEADER:])))


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    how, n, src, dst = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    with open(src, "rb") as f:
        b = bytearray(f.read())
    if how == "flip":
        b[n] ^= 1
    elif how == "truncate":
        b = b[:n]
    elif how == "version":
        b[8:12] = struct.pack("<I", n)
    elif how == "opcode":
        b[FIRST_WORD + 7] = n
        reseal(b)
    elif how == "count":
        b[CODE_SECTION + 4:CODE_SECTION + 8] = struct.pack("<I", n)
        reseal(b)
    else:
        sys.exit(__doc__)
    with open(dst, "wb") as f:
        f.write(b)


if __name__ == "__main__":
    main()
