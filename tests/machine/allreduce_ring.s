# allreduce_ring: ring all-reduce (sum) of a 256 KiB f32 array held by every chip: p - 1
# reduce-scatter steps, then p - 1 all-gather steps, each moving one chunk of V / p
# bytes to the next chip of a ring. No `.target`: the ring is an input, so the same code
# runs on any torus where each ring step is one hop (tests: 1x4, 4x4, 2x2x2 on tiny, and
# 4x4x4 on v4-like in timing mode).
#
# Inputs: ring (SMEM, i32 [4] at 0, per chip) = [next chip, position q in the ring, p,
#         chunk bytes C = V / p], with V = 262144 and C a multiple of 4096 (one vector
#         tile); x (VMEM, f32 [64, 8, 128] at 0, per chip, inout): the chip's array.
# Result: x on every chip = the sum of all the chips' arrays (with integer-valued data
#         the sum is exact in any order).
# Memory: VMEM 262144 + s * C receives reduce-scatter step s; the descriptors are at
# SMEM 64 (reduce-scatter: VMEM -> peer's VMEM, completion on the peer's sem0) and SMEM
# 128 (all-gather: the same, on the peer's sem1). Chunk offsets wrap with
# `and` 262143 (V is a power of two).
#
# Reduce-scatter step s (s = 0 .. p-2), at position q: send chunk (q - s) mod p to the
# next chip's slot s; wait for the previous chip's chunk (q - s - 1) mod p in my slot s;
# add it into my chunk (q - s - 1) tile by tile (n = C / 4096 tiles). After step p-2 my
# chunk (q + 1) mod p holds the full sum. All-gather step s: send chunk (q + 1 - s) mod p
# into the same place on the next chip; receive chunk (q - s) mod p there; forward it
# next step.
#
# Timing. Every chip runs the same bundles at the same cycles (the data differs, the
# schedule does not), and each step's DMA crosses one link of its own, so a DMA issued
# at T is delivered at T + I + a + b (docs/emulator.md, network), with
#   I = dma.issue_cycles, a = hop = ceil(ici.hop_ns * clock_hz / 1e9) (alpha),
#   b = ser = ceil(C * clock_hz / ici.bw) (the chunk's bytes times beta),
#   B = lat.branch, n = C / 4096.
# Reduce-scatter step (T = its dma bundle):
#   T        dma ; s14 := slot ; s15 := my chunk
#   T+1..T+3 next step's offsets and descriptor words
#   T+4      sem.wait sem0, 1         issues at D = T + I + a + b (the data is there)
#   D+1 + j(7 + B) .. +7              tile j: vld, vld, 3 x -, vadd.f, -, vst + bnz
#   D+9 + (n-1)(7 + B)                bnz to the next step, whose dma issues B later:
#   P_rs = I + a + b + 9 + B + (n-1)(7 + B)
# All-gather step:
#   T  dma ; T+1, T+2 next offsets and descriptor ; T+3 sem.wait sem1, 1 with the bnz,
#   issuing at D = T + I + a + b:   P_ag = I + a + b + B
# Setup puts the first dma at T0 = 12; the last reduce-scatter bnz falls through to three
# bundles that write the all-gather descriptor and let it land, and the first all-gather
# dma follows them; the last all-gather wait falls through to the halt. Adding it up:
#   cycles = T0 + (p-1) (P_rs + P_ag) - 2B + 6
#          = T0 + 6 - 2B + 2(p-1) (a + b) + (p-1) (2I + 9 + 2B + (n-1)(7 + B))
# Needs lat.salu <= 1, lat.smem <= 3, lat.vload <= 4, lat.valu <= 2 and
# lat.vstore <= I + B + 1.
#   tiny (I = 1, a = 20, B = 1):  cycles = 16 + (p-1) (2(20 + b) + 5 + 8n)
#     1x4:   p = 4,  C = 65536, b = 6554, n = 16: 16 + 3 * 13281 = 39859
#     2x2x2: p = 8,  C = 32768, b = 3277, n = 8:  16 + 7 * 6663 = 46657
#     4x4:   p = 16, C = 16384, b = 1639, n = 4:  16 + 15 * 3355 = 50341
#   v4-like 4x4x4 (I = 1, a = 1050, B = 2): p = 64, C = 4096, b = 96, n = 1:
#     14 + 63 (2(1050 + 96) + 15) = 145355
.symbol ring in smem i32 [4] at 0 per_chip
.symbol x inout vmem f32 [64, 8, 128] at 0 per_chip
.data smem 64 i32 1, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, -1, 0
.data smem 128 i32 1, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, -1, 1
.code all
  li s1, 0 ; li s12, 64                   # 0   s12: reduce-scatter descriptor
  sld s3, s1, 0 ; sld s4, s1, 4           # 1   s3 = next, s4 = q
  sld s5, s1, 8 ; sld s6, s1, 12          # 2   s5 = p, s6 = C
  li s16, 128 ; li s2, 512                # 3   s16: all-gather descriptor; s2: row stride
  sst s3, s12, 52 ; sst s3, s16, 52       # 4   word 13: the peer
  mul s7, s4, s6 ; sst s6, s12, 24        # 5   s7 = send offset q C; word 6: C bytes
  sst s6, s16, 24 ; sub s8, s7, s6        # 6
  sst s7, s12, 8 ; li s9, 262143          # 7   word 2: source address
  and s8, s8, s9 ; li s10, 262144         # 8   s8 = accumulate offset (q - 1) C mod V
  sst s10, s12, 16 ; addi s11, s5, -1     # 9   word 4: destination (slot 0); s11 = p - 1
  shri s17, s6, 12                        # 10  s17 = n tiles per chunk
  nop                                     # 11  (the descriptor lands)
rs:
  dma s12 ; mov s14, s10 ; mov s15, s8    # T   send; s14 = my slot, s15 = my chunk
  mov s7, s8 ; sub s8, s8, s6             # T+1 next send = this accumulate chunk
  and s8, s8, s9 ; add s10, s10, s6       # T+2 next accumulate chunk, next slot
  sst s7, s12, 8 ; sst s10, s12, 16       # T+3 next step's descriptor
  mov s13, s17 ; addi s11, s11, -1 ; sem.wait sem0, 1   # D
add:
  vld v0, s14, s2, 0 ; addi s13, s13, -1
  vld v1, s15, s2, 0 ; addi s14, s14, 4096
  nop
  nop
  nop
  vadd.f v2, v0, v1
  nop
  vst v2, s15, s2, 0 ; addi s15, s15, 4096 ; bnz s13, add
  bnz s11, rs
  sst s7, s16, 8 ; sst s7, s16, 16        # all-gather: send my finished chunk first
  addi s11, s5, -1
  nop                                     # (the descriptor lands)
ag:
  dma s16 ; sub s7, s7, s6                # T
  and s7, s7, s9 ; addi s11, s11, -1      # T+1 the chunk arriving now goes next
  sst s7, s16, 8 ; sst s7, s16, 16        # T+2
  sem.wait sem1, 1 ; bnz s11, ag          # D
  halt
