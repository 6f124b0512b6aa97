#!/usr/bin/env python3
"""expect_exit.py N CMD [ARGS...]: runs CMD with this process's standard streams and
exits 0 only if CMD exited with status exactly N.

`not` from LLVM accepts any non-zero status, so it cannot tell a clean error (1) from
an internal one (2) or a crash (a signal); the driver's exit codes are part of its
contract, so tests name the one they expect."""
import subprocess
import sys


def main():
    if len(sys.argv) < 3 or not sys.argv[1].lstrip("-").isdigit():
        sys.stderr.write("usage: expect_exit.py N CMD [ARGS...]\n")
        return 2
    want = int(sys.argv[1])
    cmd = sys.argv[2:]
    try:
        got = subprocess.call(cmd)
    except OSError as e:
        sys.stderr.write("expect_exit: cannot run %s: %s\n" % (cmd[0], e))
        return 2
    sys.stdout.flush()
    if got == want:
        return 0
    if got < 0:
        sys.stderr.write("expect_exit: %s was killed by signal %d (wanted exit %d)\n" % (cmd[0], -got, want))
    else:
        sys.stderr.write("expect_exit: %s exited with %d (wanted %d)\n" % (cmd[0], got, want))
    return 1


if __name__ == "__main__":
    sys.exit(main())
