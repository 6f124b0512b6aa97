# Labels: undefined, defined twice, after the last bundle, or in another code block.
# RUN: %expect-exit 1 %tilec asm %s -o %t.tobj 2>&1 | FileCheck %s
.code all
top:
# CHECK-DAG: labels.s:[[@LINE+1]]:7: error: label 'nowhere' is not defined in this code block
  jmp nowhere
# CHECK-DAG: labels.s:[[@LINE+1]]:1: error: label 'top' is already defined on line 4
top:
# CHECK-DAG: labels.s:[[@LINE+1]]:11: error: label 'end' is after the last bundle; a branch must target a bundle
  bnz s1, end
  halt
end:
.code chip 1
# CHECK-DAG: labels.s:[[@LINE+1]]:7: error: label 'top' is not defined in this code block
  jmp top
  halt
