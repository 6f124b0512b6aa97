# A register of the wrong file, a bad float, a label where only integers go.
# RUN: %expect-exit 1 %tilec asm %s -o %t.tobj 2>&1 | FileCheck %s
.code all
# CHECK: operand-kind.s:[[@LINE+1]]:14: error: operand 2 of 'vmul.f' must be a vector register (v0..v63), not 's2'
  vmul.f v1, s2, v3
# CHECK: operand-kind.s:[[@LINE+1]]:11: error: '1.5.2' is not a number
  vli v1, 1.5.2
# CHECK: operand-kind.s:[[@LINE+1]]:16: error: operand 3 of 'addi' must be an integer, not 'top'
  addi s1, s2, top
# CHECK: operand-kind.s:[[@LINE+1]]:13: error: operand 1 of 'sem.wait' must be a semaphore (sem0..sem63), not 's1'
  sem.wait  s1, 1
top:
  halt
