# An op the ISA does not have is named, at its column.
# RUN: %expect-exit 1 %tilec asm %s -o %t.tobj 2>&1 | FileCheck %s
.code all
# CHECK: unknown-op.s:[[@LINE+3]]:14: error: unknown op 'vadd'
# CHECK-NEXT: {{^}}  li s1, 0 ; vadd v1, v2, v3{{$}}
# CHECK-NEXT: {{^}}             ^{{$}}
  li s1, 0 ; vadd v1, v2, v3
  halt
