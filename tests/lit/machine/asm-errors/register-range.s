# The encoding holds registers 0..63; immediates must fit 32 bits.
# RUN: %expect-exit 1 %tilec asm %s -o %t.tobj 2>&1 | FileCheck %s
.code all
# CHECK: register-range.s:[[@LINE+1]]:8: error: v64 is out of range: the encoding has v0..v63
  vmov v64, v1
# CHECK: register-range.s:[[@LINE+1]]:10: error: operand 2 of 'li' does not fit in 32 bits: -2147483649
  li s1, -2147483649
  halt
