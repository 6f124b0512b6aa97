# ring_shift: on a 4x4 torus, every chip sends an 8 x 128 tile holding its chip id to
# its neighbour one step along x (with wraparound) by remote DMA, and waits for the
# tile its other neighbour sends. Try it on `tiny` with the torus set to 4x4:
#
#   tilec asm examples/machine/ring_shift.s -o ring_shift.tobj
#   tilec run ring_shift.tobj --torus 4x4 --stats --out got=got.npy --trace ring.json
#
# then open ring.json in ui.perfetto.dev: a process per chip, a track per unit, the
# DMAs and the links they cross as slices. got.npy is [16, 8, 128]: chip c holds the
# id of the chip before it on x, (c - 4) mod 16.
#
# Chip ids are row-major over the coordinates, id = x * 4 + y (docs/emulator.md), so
# the peer is ((x + 1) mod 4) * 4 + y. The descriptor (SMEM 64): VMEM 0 -> the peer's
# VMEM 65536, one run of 4096 bytes, sem1 here when it is done, sem0 on the peer when
# it arrives; the program writes the peer into word 13. Each op below reads only
# results whose latency (targets/tiny.target) has passed.
.target tiny
.symbol got out vmem f32 [8, 128] at 65536 per_chip
.data smem 64 i32 1, 1, 0, 0, 65536, 0, 4096, 1, 1, 0, 0, 0, 0, 0, 1, 0
.code all
  chipid s1 ; coord s2, 0                               # s1 = id, s2 = x
  coord s4, 1 ; addi s3, s2, 1 ; vbcast v0, s1          # s4 = y; v0 lands at +2
  li s8, 3 ; li s5, 64
  and s3, s3, s8 ; li s6, 0                             # (x + 1) mod 4
  shli s3, s3, 2 ; li s7, 512 ; vcvt.i2f v1, v0
  add s3, s3, s4                                        # the peer
  sst s3, s5, 52 ; vst v1, s6, s7, 0                    # descriptor word 13; the tile
  nop
  dma s5                                                # both stores have landed
  sem.wait sem1, 1                                      # our tile has left
  sem.wait sem0, 1                                      # our neighbour's has arrived
  halt
