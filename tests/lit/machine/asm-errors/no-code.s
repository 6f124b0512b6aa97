# A file with symbols but no code makes no object.
# RUN: %expect-exit 1 %tilec asm %s -o %t.tobj 2>&1 | FileCheck %s
# RUN: not ls %t.tobj
# CHECK: no-code.s: error: there is no code: start it with '.code all' (or '.code chip N')
.symbol x in hbm f32 [8] at 0
