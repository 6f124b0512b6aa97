# dma_remote: chip 0 copies S = 4096 bytes of its VMEM into chip `peer`'s VMEM over
# the torus; both wait for the copy. No `.target`: the same program runs on any torus
# (the tests use tiny 4x4, which wraps, and v5e-like 4x4, which does not).
#
# Inputs: peer (SMEM, i32 scalar at 0, the same on every chip), src (VMEM, f32 [1024]
# at 0; chip 0's is sent). Result: dst (VMEM, f32 [1024] at 65536, per chip): src on
# chip `peer`, zeros elsewhere.
# The descriptor (SMEM 64): VMEM 0 -> peer's VMEM 65536, one run of 4096 bytes, word 13
# (the peer) written by the program, completion on sem1 at the source and sem0 at the
# destination.
#
# Timing (docs/emulator.md, network): a remote DMA issued at T leaves its engine at
# s0 = T + dma.issue_cycles; routed dimension by dimension (the shorter way round where
# an axis wraps) over k links that nothing else uses, it is delivered at
#   D = s0 + k * hop + ser,  hop = ceil(ici.hop_ns * clock_hz / 1e9),
#                            ser = ceil(S * clock_hz / ici.bw)
# when both semaphores are signalled. Chip 0:
#   0  li s1, 0 ; li s2, 64
#   1  sld s3, s1, 0               the peer, landing by 1 + lat.smem <= 4
#   2, 3  nop
#   4  sst s3, s2, 52              descriptor word 13, landing by 4 + lat.smem <= 7
#   5, 6  nop
#   7  dma s2                      T = 7
#   8  sem.wait sem1, 1            issues at D
#   D + 1  halt                    cycles = D + 2 (the peer's wait also issues at D)
# Needs lat.smem <= 3 and lat.salu <= 1.
#   tiny (hop 20, ser 410, issue 1):          D = 8 + 20k + 410
#   v5e-like (hop 1500, ser 137, issue 1):    D = 8 + 1500k + 137
.symbol peer in smem i32 [] at 0
.symbol src in vmem f32 [1024] at 0
.symbol dst out vmem f32 [1024] at 65536 per_chip
.data smem 64 i32 1, 1, 0, 0, 65536, 0, 4096, 1, 1, 0, 0, 0, 0, 0, 1, 0
.code chip 0
  li s1, 0 ; li s2, 64
  sld s3, s1, 0
  nop
  nop
  sst s3, s2, 52
  nop
  nop
  dma s2
  sem.wait sem1, 1
  halt
# Every other chip: the peer waits for the data, the rest halt.
.code all
  li s1, 0 ; chipid s4
  sld s3, s1, 0
  nop
  nop
  seq s5, s3, s4
  bz s5, done
  sem.wait sem0, 1
done:
  halt
