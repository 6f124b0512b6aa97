# One run reports every bad line, in order, and then stops without an object.
# RUN: %expect-exit 1 %tilec asm %s -o %t.tobj 2>&1 | FileCheck %s
.code all
# CHECK: several-errors.s:[[@LINE+1]]:3: error: unknown op 'nope'
  nope
# CHECK: several-errors.s:[[@LINE+2]]:10: error: 'add' takes 3 operands (Sd sa sb), found 1
# CHECK: several-errors.s:[[@LINE+1]]:11: error: expected an op after ';'
  add s1 ;
# CHECK: several-errors.s:[[@LINE+1]]:11: error: 1e99 is out of the range of f32
  vli v1, 1e99
# CHECK: several-errors.s:[[@LINE+1]]:9: error: expected an op after ';'
  halt ;
# CHECK-NOT: error
  halt
