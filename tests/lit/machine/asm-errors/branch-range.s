# Numeric branch targets and loop bodies must stay inside the code.
# RUN: %expect-exit 1 %tilec asm %s -o %t.tobj 2>&1 | FileCheck %s
.code all
# CHECK: branch-range.s:[[@LINE+1]]:7: error: 'jmp' targets bundle 3, but the code has 3 bundles
  jmp 3
# CHECK: branch-range.s:[[@LINE+1]]:8: error: 'loop' at bundle 1 runs 5 bundles past the end of the code (3 bundles)
  loop 5, 2
  halt
