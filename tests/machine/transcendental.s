# transcendental: exp, log, rsqrt, tanh and reciprocal on the vector unit.
#
# Input x (VMEM, f32 [5, 8, 128] at 0): one tile per function, in its domain.
# Result out (VMEM, f32 [5, 8, 128] at 20480):
#   0: e^x0   1: ln x1   2: 1 / sqrt(x2)   3: tanh x3   4: 1 / x4
# each within 1e-6 relative of the exact value (f32 rounding is 6e-8).
#
# Schedule (VL = lat.vload, TR = lat.trans, VS = lat.vstore; tiny: 2, 3, 1); bundle i
# issues at cycle i:
#   0  li s1, 0 ; li s2, 512
#   1  vld x0 ; li s3, 20480       x0 lands at 1 + VL = 3
#   2  vld x1                      x1 at 4
#   3  vld x2 ; vexp x0            x2 at 5; e^x0 at 3 + TR = 6
#   4  vld x3 ; vlog x1            x3 at 6; ln x1 at 7
#   5  vld x4 ; vrsqrt x2          x4 at 7; rsqrt at 8
#   6  vtanh x3 ; vst exp          tanh at 9
#   7  vrcp x4 ; vst log           rcp at 10
#   8  vst rsqrt   9  vst tanh   10  vst rcp
#  11  halt
# Needs VL <= 2 and TR <= 3.   cycles = max(11 + 1, 10 + VS) = 12 on tiny
.target tiny
.symbol x in vmem f32 [5, 8, 128] at 0
.symbol out out vmem f32 [5, 8, 128] at 20480
.code all
  li s1, 0 ; li s2, 512
  vld v0, s1, s2, 0 ; li s3, 20480
  vld v1, s1, s2, 4096
  vld v2, s1, s2, 8192 ; vexp v5, v0
  vld v3, s1, s2, 12288 ; vlog v6, v1
  vld v4, s1, s2, 16384 ; vrsqrt v7, v2
  vtanh v8, v3 ; vst v5, s3, s2, 0
  vrcp v9, v4 ; vst v6, s3, s2, 4096
  vst v7, s3, s2, 8192
  vst v8, s3, s2, 12288
  vst v9, s3, s2, 16384
  halt
