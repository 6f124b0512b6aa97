# Every chip of a ring sends 1000 bytes of HBM to the next chip's VMEM and waits for
# its own send (sem1) and the bytes from the previous chip (sem0).
.target tiny
.data smem 0 i32 0, 1, 0, 0, 8192, 0, 1000, 1, 1, 0, 0, 0, 0, 0, 1, 0
.code all
  chipid s5 ; li s7, 3
  addi s6, s5, 1
  and s6, s6, s7
  sst s6, s0, 52
  nop
  li s1, 0
  dma s1
  sem.wait sem0, 1
  sem.wait sem1, 1
  halt
