# dma_shared: two DMAs from HBM to VMEM in flight at once share the chip's HBM bandwidth.
#
# Inputs: a (HBM, i8 [20000] at 0), b (HBM, i8 [6000] at 65536).
# Results: ca (VMEM, i8 [20000] at 0) = a, cb (VMEM, i8 [6000] at 65536) = b.
# Descriptors (SMEM 0 and 64): A moves S_A = 20000 bytes and signals sem0, B moves
# S_B = 6000 bytes and signals sem1.
#
# Timing (docs/emulator.md, DMA): each DMA takes the engine free earliest and starts
# dma.issue_cycles later; the DMAs active on the chip's HBM share hbm.bw per cycle:
# H = hbm.bw units of work per cycle (a byte is clock_hz units), each of n active DMAs
# gets floor(H / n) (the first H mod n in start order one more), capped by vmem.bw. A
# DMA completes at the end of the cycle its work runs out.
#   0  li s1, 0 ; li s2, 64
#   1  dma s1              A: engine 0, starts at s_A = 1 + issue
#   2  dma s2              B: engine 1 (engine 0 is busy until s_A), starts at
#                          s_B = 2 + issue = s_A + 1
#   3  sem.wait sem1, 1    issues when B completes, at D_B
#   D_B + 1  sem.wait sem0, 1    issues when A completes, at D_A
#   D_A + 1  halt          cycles = D_A + 2; stall = (D_B - 3) + (D_A - D_B - 1)
# tiny (H = 1e11, clock 1e9: 100 bytes a cycle alone, 50 each when shared; issue 1):
#   s_A = 2: A alone for 1 cycle (100 bytes); from s_B = 3 both at 50 bytes a cycle:
#   B needs 6000 / 50 = 120 cycles, D_B = 3 + 120 = 123, when A has moved
#   100 + 120 * 50 = 6100; A alone again: 13900 / 100 = 139 cycles, D_A = 262
#   (= s_A + (S_A + S_B) / 100: the shared bandwidth is never idle).
#   cycles = 264, stall = 120 + 138 = 258
.target tiny
.symbol a in hbm i8 [20000] at 0
.symbol b in hbm i8 [6000] at 65536
.symbol ca out vmem i8 [20000] at 0
.symbol cb out vmem i8 [6000] at 65536
.data smem 0 i32 0, 1, 0, 0, 0, 0, 20000, 1, 1, 0, 0, 0, 0, -1, -1, 0
.data smem 64 i32 0, 1, 65536, 0, 65536, 0, 6000, 1, 1, 0, 0, 0, 0, -1, -1, 1
.code all
  li s1, 0 ; li s2, 64
  dma s1
  dma s2
  sem.wait sem1, 1
  sem.wait sem0, 1
  halt
