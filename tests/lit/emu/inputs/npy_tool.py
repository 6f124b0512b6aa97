"""npy_tool.py: .npy files for the `tilec run` tests without NumPy.

  npy_tool.py make FILE CHIPS   f32 [CHIPS, 8, 128], element i = i / 8
  npy_tool.py check FILE CHIPS  exit 0 if FILE is f32 [CHIPS, 8, 128] with y = x * 2 + 1
"""
import ast
import struct
import sys


def make(path, chips):
    n = chips * 8 * 128
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, 8, 128), }" % chips
    pad = 64 - (10 + len(header) + 1) % 64
    header += " " * pad + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        f.write(struct.pack("<%df" % n, *[i / 8 for i in range(n)]))


def check(path, chips):
    data = open(path, "rb").read()
    assert data[:8] == b"\x93NUMPY\x01\x00", "magic"
    hlen = struct.unpack("<H", data[8:10])[0]
    assert (10 + hlen) % 64 == 0, "header padding"
    header = ast.literal_eval(data[10:10 + hlen].decode())
    assert header == {"descr": "<f4", "fortran_order": False, "shape": (chips, 8, 128)}, header
    n = chips * 8 * 128
    values = struct.unpack("<%df" % n, data[10 + hlen:])
    for i, y in enumerate(values):
        want = struct.unpack("<f", struct.pack("<f", (i / 8) * 2 + 1))[0]
        assert y == want, "element %d: %r, want %r" % (i, y, want)
    print("ok: %d values" % n)


if __name__ == "__main__":
    {"make": make, "check": check}[sys.argv[1]](sys.argv[2], int(sys.argv[3]))
