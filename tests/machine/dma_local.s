# dma_local: one strided DMA from HBM to VMEM, waited for on a semaphore.
#
# Input src (HBM, i8 [10, 4004] at 0). Result dst (VMEM, i8 [10, 4096] at 0): row r of
# src at dst row r (bytes 0..4003); bytes 4004..4095 of each row stay 0.
# The descriptor (SMEM 0, docs/emulator.md): HBM 0 -> VMEM 0, 10 runs of 4004 bytes,
# source stride 4004, destination stride 4096, this chip, completion counted on sem0.
# S = 10 * 4004 = 40040 bytes.
#
# Timing (docs/emulator.md, DMA): issued at T, the DMA leaves its engine at
# T + dma.issue_cycles and, alone on HBM, moves S bytes in ceil(S * clock_hz / hbm.bw)
# cycles; its completion adds 1 to sem0 in that cycle, and a sem.wait satisfied in that
# cycle issues in it.
#   0  li s1, 0
#   1  dma s1                        T = 1
#   2  sem.wait sem0, 1              issues at D = T + issue + ceil(S * clock / hbm.bw)
#   D + 1  halt
#   cycles = D + 2
#   tiny: D = 1 + 1 + ceil(40040 * 1e9 / 1e11) = 1 + 1 + 401 = 403, cycles = 405
.target tiny
.symbol src in hbm i8 [10, 4004] at 0
.symbol dst out vmem i8 [10, 4096] at 0
.data smem 0 i32 0, 1, 0, 0, 0, 0, 4004, 10, 1, 4004, 0, 4096, 0, -1, -1, 0
.code all
  li s1, 0
  dma s1
  sem.wait sem0, 1
  halt
