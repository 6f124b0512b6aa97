# asm -> disasm -> asm gives the same object byte for byte, and the canonical text is
# a fixed point of disasm(asm(text)).
# RUN: %tilec asm %s -o %t.tobj
# RUN: %tilec disasm %t.tobj -o %t.canon.s
# RUN: %tilec asm %t.canon.s -o %t.again.tobj
# RUN: cmp %t.tobj %t.again.tobj
# RUN: %tilec disasm %t.again.tobj | diff %t.canon.s -
# RUN: FileCheck %s < %t.canon.s
.target tiny
.symbol x in vmem f32 [8, 128] at 0
.symbol y out vmem f32 [8, 128] at 4096 per_chip
.data smem 0 i32 8, 512, 4096, -1
.data vmem 8192 f32 1.0, 0.5, -2.0, inf
.code all
  li s1, 0 ; li s2, 512 ; vld v0, s1, s2, 0
  vli v1, 0.5 ; sld s3, s1, 0
outer:
  loop done, 3
  vmul.f v2, v0, v1 ; @1 addi s3, s3, -1
  xlu.lsum v3, v2
done:
  bnz s3, outer
  li s4, 4096 ; vst v2, s4, s2, 0 ; sem.signal sem1, 1
  halt
.code chip 1
  chipid s1 ; coord s2, 0
  halt

# CHECK:      # tilec object for target tiny: 2 programs, 2 data blocks, 2 symbols
# CHECK-NEXT: .target tiny
# CHECK-NEXT: .symbol x in vmem f32 [8, 128] at 0
# CHECK-NEXT: .symbol y out vmem f32 [8, 128] at 4096 per_chip
# CHECK-NEXT: .data smem 0 i32 8, 512, 4096, -1
# CHECK-NEXT: .data vmem 8192 f32 1.0, 0.5, -2.0, inf
# CHECK-NEXT: .code all
# CHECK-NEXT:   li s1, 0 ; li s2, 512 ; vld v0, s1, s2, 0
# CHECK-NEXT:   sld s3, s1, 0 ; vli v1, 0.5
# CHECK-NEXT: L2:
# CHECK-NEXT:   loop L5, 3
# CHECK-NEXT:   @1 addi s3, s3, -1 ; vmul.f v2, v0, v1
# CHECK-NEXT:   xlu.lsum v3, v2
# CHECK-NEXT: L5:
# CHECK-NEXT:   bnz s3, L2
# CHECK-NEXT:   li s4, 4096 ; vst v2, s4, s2, 0 ; sem.signal sem1, 1
# CHECK-NEXT:   halt
# CHECK-NEXT: .code chip 1
# CHECK-NEXT:   chipid s1 ; coord s2, 0
# CHECK-NEXT:   halt
