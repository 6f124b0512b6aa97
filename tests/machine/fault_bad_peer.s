# fault_bad_peer: chip 0 starts a remote DMA to chip 9 on a 2x2 torus (chips 0..3).
# Expected: exit 1, bad-peer at chip 0, pc 1, cycle 1, naming chip 9 and the range.
.target tiny
.data smem 0 i32 1, 1, 0, 0, 0, 0, 64, 1, 1, 0, 0, 0, 0, 9, -1, -1
.code chip 0
  li s1, 0
  dma s1
  halt
.code all
  halt
