# fault_oob: a vector load whose last sublane lies past the end of VMEM (1 MiB on tiny):
# sublane s reads 512 bytes at 1048576 - 2048 + 512 s, and sublanes 4..7 are outside.
# Expected: exit 1, out-of-bounds at chip 0, pc 1, cycle 1, naming VMEM.
.target tiny
.code all
  li s1, 1046528 ; li s2, 512
  vld v0, s1, s2, 0
  halt
