# A value list that ends with ',' must go on; a directive is not a value.
# RUN: %expect-exit 1 %tilec asm %s -o %t.tobj 2>&1 | FileCheck %s
# CHECK: data-continuation.s:[[@LINE+1]]:1: error: the values of this '.data' end with ',' but no more follow
.data hbm 0 f32 1.0, 2.0,
.code all
  halt
