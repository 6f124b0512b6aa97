# vector_i32: the integer vector ALU, conversions, viota and vbcast.
#
# Inputs (VMEM): a, b (i32 [8, 128]) at 0 and 4096, c (f32 [8, 128]) at 8192.
# Results: out (VMEM, i32 [13, 8, 128] at 12288), tile by tile,
#   0: a + b   1: a - b   2: a * b (all wrapping, low 32 bits)   3: a & b   4: a | b
#   5: a ^ b   6: a < b (signed)   7: a == b   8: (i32) c, nearest even, saturating
#   9: lane index   10: sublane index   11: sublane * 128 + lane   12: -7 everywhere
# and outf (VMEM, f32 [8, 128] at 65536) = (f32) a, nearest even.
#
# Schedule (VL = lat.vload, VA = lat.valu, VS = lat.vstore; tiny: 2, 2, 1); bundle i
# issues at cycle i:
#   0  li s1, 0 ; li s2, 512
#   1  vld a ; li s3, 12288 ; li s4, -7            a lands at 3
#   2  vld b ; viota 0 ; viota 1                   b at 4, iotas at 4
#   3  vld c ; viota 2 ; vbcast s4                 c at 5; s4 landed at 2
#   4  vadd.i ; vsub.i ; vst iota0                 land at 6
#   5  vmul.i ; vand ; vst iota1                   land at 7
#   6  vor ; vxor ; vst add
#   7  vcmplt.i ; vcmpeq.i ; vst sub
#   8  vcvt.f2i c ; vcvt.i2f a ; vst mul           land at 10
#   9 .. 17  vst and, or, xor, lt, eq, f2i, iota2, bcast, i2f
#  18  halt
# Needs VL <= 2 and VA <= 2.   cycles = max(18 + 1, 17 + VS) = 19 on tiny
.target tiny
.symbol a in vmem i32 [8, 128] at 0
.symbol b in vmem i32 [8, 128] at 4096
.symbol c in vmem f32 [8, 128] at 8192
.symbol out out vmem i32 [13, 8, 128] at 12288
.symbol outf out vmem f32 [8, 128] at 65536
.code all
  li s1, 0 ; li s2, 512
  vld v0, s1, s2, 0 ; li s3, 12288 ; li s4, -7
  vld v1, s1, s2, 4096 ; viota v12, 0 ; viota v13, 1
  vld v2, s1, s2, 8192 ; viota v14, 2 ; vbcast v15, s4
  vadd.i v3, v0, v1 ; vsub.i v4, v0, v1 ; vst v12, s3, s2, 36864
  vmul.i v5, v0, v1 ; vand v6, v0, v1 ; vst v13, s3, s2, 40960
  vor v7, v0, v1 ; vxor v8, v0, v1 ; vst v3, s3, s2, 0
  vcmplt.i v9, v0, v1 ; vcmpeq.i v10, v0, v1 ; vst v4, s3, s2, 4096
  vcvt.f2i v11, v2 ; vcvt.i2f v16, v0 ; vst v5, s3, s2, 8192
  vst v6, s3, s2, 12288
  vst v7, s3, s2, 16384
  vst v8, s3, s2, 20480
  vst v9, s3, s2, 24576
  vst v10, s3, s2, 28672
  vst v11, s3, s2, 32768
  vst v14, s3, s2, 45056
  vst v15, s3, s2, 49152
  vst v16, s3, s2, 53248
  halt
