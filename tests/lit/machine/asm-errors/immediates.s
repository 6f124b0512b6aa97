# Immediates the ISA constrains: viota modes, loop counts, semaphore amounts, bodies.
# RUN: %expect-exit 1 %tilec asm %s -o %t.tobj 2>&1 | FileCheck %s
.code all
# CHECK: immediates.s:[[@LINE+1]]:13: error: operand 2 of 'viota' must be in 0..2, not 3
  viota v1, 3
# CHECK: immediates.s:[[@LINE+1]]:11: error: operand 2 of 'loop' must be at least 1, not 0
  loop 1, 0
# CHECK: immediates.s:[[@LINE+1]]:18: error: operand 2 of 'sem.wait' must be at least 0, not -1
  sem.wait sem0, -1
# CHECK: immediates.s:[[@LINE+1]]:8: error: operand 1 of 'loop' must be in 0..262143, not 262144
  loop 262144, 2
  halt
