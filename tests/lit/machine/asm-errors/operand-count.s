# Too few and too many operands, each with the op's pattern.
# RUN: %expect-exit 1 %tilec asm %s -o %t.tobj 2>&1 | FileCheck %s
.code all
# CHECK: operand-count.s:[[@LINE+1]]:16: error: 'vadd.f' takes 3 operands (Vd va vb), found 2
  vadd.f v1, v2
# CHECK: operand-count.s:[[@LINE+1]]:15: error: expected ';' or the end of the line after 'halt', found 's1'
  halt ; halt s1
  halt
