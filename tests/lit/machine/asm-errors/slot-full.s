# A bundle has two scalar slots and one vector load slot; '@N' picks a word of a kind.
# RUN: %expect-exit 1 %tilec asm %s -o %t.tobj 2>&1 | FileCheck %s
.code all
# CHECK: slot-full.s:[[@LINE+1]]:25: error: no free scalar slot for 'mov' in this bundle (a bundle has 2)
  li s1, 0 ; li s2, 1 ; mov s3, s1
# CHECK: slot-full.s:[[@LINE+1]]:23: error: no free vload slot for 'vld' in this bundle (a bundle has 1)
  vld v0, s1, s2, 0 ; vld v1, s1, s2, 0
# CHECK: slot-full.s:[[@LINE+1]]:20: error: vector slot 1 is already taken in this bundle
  @1 vmov v1, v2 ; @1 vmov v3, v4
# CHECK: slot-full.s:[[@LINE+1]]:3: error: '@1': a bundle has 1 branch slot (@0..@0)
  @1 halt
  halt
