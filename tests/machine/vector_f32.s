# vector_f32: the f32 vector ALU on one 8 x 128 register pair.
#
# Inputs (VMEM, f32 [8, 128]): x at 0, y at 4096.
# Results: out (VMEM, f32 [7, 8, 128] at 8192) holds, tile by tile,
#   0: x + y   1: x - y   2: x * y   3: max(x, y)   4: min(x, y)
#   5: x * y + x (vfma.f, one rounding)   6: x < y ? x : y (vsel on the compare)
# and mask (VMEM, i32 [8, 128] at 36864) = x < y ? 1 : 0 -- each rounded once, IEEE
# round-to-nearest-even; max/min order -0 below +0.
#
# Schedule (VL = lat.vload, VA = lat.valu, VS = lat.vstore; tiny: 2, 2, 1). Straight-line
# code issues bundle i at cycle i:
#   0  li s1, 0 ; li s2, 512                (512: the byte stride of a 128 x f32 row)
#   1  vld v0 <- x ; li s3, 8192            v0 lands at 1 + VL = 3
#   2  vld v1 <- y                          v1 lands at 2 + VL = 4
#   3  nop
#   4  vadd.f, vsub.f                       land at 4 + VA = 6
#   5  vmul.f, vmax.f                       land at 7
#   6  vmin.f, vfma.f ; vst add             land at 8
#   7  vcmplt.f ; vst sub                   mask lands at 9
#   8  vst mul
#   9  vsel ; vst max                       reads the mask at 9; lands at 11
#  10  vst min   11  vst fma   12  vst sel   13  vst mask
#  14  halt
# Needs VL <= 2, VA <= 2 (each read is exactly that many cycles after its write).
#   cycles = max(14 + 1, 13 + VS) = 15 on tiny
.target tiny
.symbol x in vmem f32 [8, 128] at 0
.symbol y in vmem f32 [8, 128] at 4096
.symbol out out vmem f32 [7, 8, 128] at 8192
.symbol mask out vmem i32 [8, 128] at 36864
.code all
  li s1, 0 ; li s2, 512
  vld v0, s1, s2, 0 ; li s3, 8192
  vld v1, s1, s2, 4096
  nop
  vadd.f v2, v0, v1 ; vsub.f v3, v0, v1
  vmul.f v4, v0, v1 ; vmax.f v5, v0, v1
  vmin.f v6, v0, v1 ; vfma.f v7, v0, v1, v0 ; vst v2, s3, s2, 0
  vcmplt.f v8, v0, v1 ; vst v3, s3, s2, 4096
  vst v4, s3, s2, 8192
  vsel v9, v8, v0, v1 ; vst v5, s3, s2, 12288
  vst v6, s3, s2, 16384
  vst v7, s3, s2, 20480
  vst v9, s3, s2, 24576
  vst v8, s3, s2, 28672
  halt
