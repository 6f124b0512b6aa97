# y = x widened: x is bf16 in VMEM, y f32 (the bf16 values exactly).
.target tiny
.symbol x in vmem bf16 [8, 128] at 0
.symbol y out vmem f32 [8, 128] at 4096
.code all
  li s1, 0 ; li s2, 256
  li s3, 512 ; li s4, 4096
  vld.bf16 v0, s1, s2, 0
  nop
  vst v0, s4, s3, 0
  halt
