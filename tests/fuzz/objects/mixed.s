# Source of mixed.tobj, a seed for fuzz_object: per-chip code, `@N` placement in both
# MXU words, a loop, data of every kind, symbols of every binding.
.target v5e-like
.symbol a in hbm bf16 [8, 128] at 0
.symbol w inout vmem f32 [128, 128] at 0 per_chip
.symbol r out vmem f32 [8, 128] at 65536
.data smem 0 i32 0, 512, 65536, 7
.data vmem 131072 f32 1.0, -0.0, nan, -inf
.data hbm 4096 bf16 1.0, 2.5, -3.0
.code all
  li s1, 0 ; li s2, 512 ; vld v0, s1, s2, 0
  mxu.ldw m0, v0, 0 ; @1 mxu.ldw m1, v0, 1
  loop done, 4
  vadd.f v1, v0, v0 ; vexp v2, v0
done:
  mxu.push m0, v1 ; @1 mxu.push m1, v2
  sem.wait sem0, 0
  halt
.code chip 3
  chipid s1 ; coord s2, 1
  sem.signal.r sem2, s1, 1
  halt
