# y = x * 2 + 1 on every chip; x and y hold one 8 x 128 slice per chip.
.target tiny
.symbol x in vmem f32 [8, 128] at 0 per_chip
.symbol y out vmem f32 [8, 128] at 4096 per_chip
.code all
  li s1, 0 ; li s2, 512 ; vli v1, 2.0 ; vli v3, 1.0
  vld v0, s1, s2, 0
  nop
  vfma.f v2, v0, v1, v3
  li s3, 4096
  vst v2, s3, s2, 0
  halt
