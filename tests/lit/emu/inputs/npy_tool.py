"""npy_tool.py: .npy files for the `tilec run` tests without NumPy.

  npy_tool.py make FILE CHIPS    f32 [CHIPS, 8, 128], element i = i / 8
  npy_tool.py check FILE CHIPS   exit 0 if FILE is f32 [CHIPS, 8, 128] with y = x * 2 + 1
  npy_tool.py make_fine FILE 0   f32 [8, 128] with more precision than bf16 holds
  npy_tool.py check_bf16 FILE 0  exit 0 if FILE is f32 [8, 128] holding make_fine's
                                 values rounded to bf16 (nearest even)
"""
import ast
import struct
import sys


def fine_values():
    # 1 + k/1024 for k = 0..1023 puts values between and exactly halfway between bf16
    # neighbours (bf16 keeps 7 fraction bits), so the rounding direction shows
    return [(1 + (i % 1024) / 1024) * (-1 if i % 3 == 0 else 1) for i in range(8 * 128)]


def bf16(x):
    u = struct.unpack("<I", struct.pack("<f", x))[0]
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return struct.unpack("<f", struct.pack("<I", u))[0]


def write(path, shape, values):
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }" % (shape,)
    pad = 64 - (10 + len(header) + 1) % 64
    header += " " * pad + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        f.write(struct.pack("<%df" % len(values), *values))


def make_fine(path, _):
    write(path, (8, 128), fine_values())


def check_bf16(path, _):
    data = open(path, "rb").read()
    hlen = struct.unpack("<H", data[8:10])[0]
    got = struct.unpack("<1024f", data[10 + hlen:])
    want = [bf16(v) for v in fine_values()]
    bad = [i for i in range(1024) if got[i] != want[i]]
    assert not bad, "element %d: %r, want %r" % (bad[0], got[bad[0]], want[bad[0]])
    print("ok: bf16 rounding of 1024 values")


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
    {"make": make, "check": check, "make_fine": make_fine, "check_bf16": check_bf16}[
        sys.argv[1]](sys.argv[2], int(sys.argv[3]))
