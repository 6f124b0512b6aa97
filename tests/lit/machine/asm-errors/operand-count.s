# Too few and too many operands, each with the op's pattern.
# RUN: %expect-exit 1 %tilec asm %s -o %t.tobj 2>&1 | FileCheck %s
.code all
# CHECK: operand-count.s:[[@LINE+1]]:15: error: 'vadd.f' takes 3 operands (Vd va vb), found 2
  vadd.f v1, v2
# CHECK: operand-count.s:[[@LINE+1]]:13: error: 'halt' takes 0 operands (), found more
  halt ; halt s1
  halt
