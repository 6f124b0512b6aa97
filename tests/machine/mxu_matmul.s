# mxu_matmul: out = a @ w on the matrix units, K accumulated over four 128-row blocks.
#
# Inputs (VMEM, bf16): a [32, 512] at 0 (4 row tiles of 8 x 4 K-blocks of 128),
#                      w [512, 128] at 32768 (4 weight blocks of 128 x 128).
# Result: out (VMEM, f32 [32, 128] at 163840) = a @ w with both inputs bf16 and f32
# accumulation: each 8 x 128 output tile is the sum over blocks j = 0..3 of
# a[tile i, block j] @ w[block j], added in the order j = 0, 1, 2, 3 (mxu.pop, then
# mxu.popacc three times), each block's products summed in f32 in k order.
#
# Addresses: w row r is at 32768 + 256 r (128 bf16 per row: stride s2 = 256); a tile
# (i, j) is at 8192 i + 256 j with row stride s3 = 1024 (512 bf16 per row).
#
# Schedule: two rounds; round r loads blocks 2r into m0 and 2r+1 into m1 (32 row groups
# of 8 rows: vld.bf16 at R + g, mxu.ldw at R + g + VL), then the LHS tiles (vld.bf16 at
# R + 32 + 2k and R + 33 + 2k), then pushes and pops at a period of P = mxu.push_cycles:
#   Q = R + 32 + VL               first push (m0's weights ready at R + 17 + W <= Q,
#                                 m1's at R + 33 + W <= Q + 1; A tiles landed)
#   Q + P k      mxu.push m0, a(k, 2r)          k = 0..3 (unit busy P cycles)
#   Q + P k + 1  mxu.push m1, a(k, 2r + 1)
#   Q + P k + 10 pop (round 0) / popacc (round 1) acc_k from m0   result ready at
#   Q + P k + 11 popacc acc_k from m1                              Q + P k + RES
#   Q + P k + 12 vst acc_k (round 1)
# Round 1 starts at R1 = Q0 + 3P + 10 (after round 0's last pop, at Q0 + 3P + 11, the
# MXU slot is free for its mxu.ldw from R1 + VL on). With VL = lat.vload,
# W = lat.mxu_weights, RES = lat.mxu_result, PO = lat.mxu_pop, VS = lat.vstore; tiny:
# VL = 2, W = 2, RES = 8, PO = 1, VS = 1, P = 8. Needs VL = 2 (the ldw reads a group VL
# cycles after its load), W <= 2, RES <= 10, PO <= 1, P <= 8.
#   R0 = 1, Q0 = 35, R1 = 69, Q1 = 103
#   last vst at Q1 + 3P + 12 = 139, halt at 140
#   cycles = max(140 + 1, 139 + VS) = 141
.target tiny
.symbol a in vmem bf16 [32, 512] at 0
.symbol w in vmem bf16 [512, 128] at 32768
.symbol out out vmem f32 [32, 128] at 163840
.code all
  li s1, 0 ; li s2, 256                                     # 0  setup
  li s3, 1024 ; li s4, 163840 ; vld.bf16 v10, s1, s2, 32768 # 1  round 0: blocks 0 (m0) and 1 (m1)
  li s5, 512 ; vld.bf16 v11, s1, s2, 34816                  # 2
  mxu.ldw m0, v10, 0 ; vld.bf16 v12, s1, s2, 36864          # 3
  mxu.ldw m0, v11, 1 ; vld.bf16 v13, s1, s2, 38912          # 4
  mxu.ldw m0, v12, 2 ; vld.bf16 v10, s1, s2, 40960          # 5
  mxu.ldw m0, v13, 3 ; vld.bf16 v11, s1, s2, 43008          # 6
  mxu.ldw m0, v10, 4 ; vld.bf16 v12, s1, s2, 45056          # 7
  mxu.ldw m0, v11, 5 ; vld.bf16 v13, s1, s2, 47104          # 8
  mxu.ldw m0, v12, 6 ; vld.bf16 v10, s1, s2, 49152          # 9
  mxu.ldw m0, v13, 7 ; vld.bf16 v11, s1, s2, 51200          # 10
  mxu.ldw m0, v10, 8 ; vld.bf16 v12, s1, s2, 53248          # 11
  mxu.ldw m0, v11, 9 ; vld.bf16 v13, s1, s2, 55296          # 12
  mxu.ldw m0, v12, 10 ; vld.bf16 v10, s1, s2, 57344         # 13
  mxu.ldw m0, v13, 11 ; vld.bf16 v11, s1, s2, 59392         # 14
  mxu.ldw m0, v10, 12 ; vld.bf16 v12, s1, s2, 61440         # 15
  mxu.ldw m0, v11, 13 ; vld.bf16 v13, s1, s2, 63488         # 16
  mxu.ldw m0, v12, 14 ; vld.bf16 v10, s1, s2, 65536         # 17
  mxu.ldw m0, v13, 15 ; vld.bf16 v11, s1, s2, 67584         # 18
  mxu.ldw m1, v10, 0 ; vld.bf16 v12, s1, s2, 69632          # 19
  mxu.ldw m1, v11, 1 ; vld.bf16 v13, s1, s2, 71680          # 20
  mxu.ldw m1, v12, 2 ; vld.bf16 v10, s1, s2, 73728          # 21
  mxu.ldw m1, v13, 3 ; vld.bf16 v11, s1, s2, 75776          # 22
  mxu.ldw m1, v10, 4 ; vld.bf16 v12, s1, s2, 77824          # 23
  mxu.ldw m1, v11, 5 ; vld.bf16 v13, s1, s2, 79872          # 24
  mxu.ldw m1, v12, 6 ; vld.bf16 v10, s1, s2, 81920          # 25
  mxu.ldw m1, v13, 7 ; vld.bf16 v11, s1, s2, 83968          # 26
  mxu.ldw m1, v10, 8 ; vld.bf16 v12, s1, s2, 86016          # 27
  mxu.ldw m1, v11, 9 ; vld.bf16 v13, s1, s2, 88064          # 28
  mxu.ldw m1, v12, 10 ; vld.bf16 v10, s1, s2, 90112         # 29
  mxu.ldw m1, v13, 11 ; vld.bf16 v11, s1, s2, 92160         # 30
  mxu.ldw m1, v10, 12 ; vld.bf16 v12, s1, s2, 94208         # 31
  mxu.ldw m1, v11, 13 ; vld.bf16 v13, s1, s2, 96256         # 32
  mxu.ldw m1, v12, 14 ; vld.bf16 v20, s1, s3, 0             # 33  a tiles of round 0
  mxu.ldw m1, v13, 15 ; vld.bf16 v24, s1, s3, 256           # 34
  vld.bf16 v21, s1, s3, 8192 ; mxu.push m0, v20             # 35  Q0: pushes and pops
  vld.bf16 v25, s1, s3, 8448 ; mxu.push m1, v24             # 36
  vld.bf16 v22, s1, s3, 16384                               # 37
  vld.bf16 v26, s1, s3, 16640                               # 38
  vld.bf16 v23, s1, s3, 24576                               # 39
  vld.bf16 v27, s1, s3, 24832                               # 40
  nop                                                       # 41
  nop                                                       # 42
  mxu.push m0, v21                                          # 43
  mxu.push m1, v25                                          # 44
  mxu.pop v0, m0                                            # 45
  mxu.popacc v0, m1, v0                                     # 46
  nop                                                       # 47
  nop                                                       # 48
  nop                                                       # 49
  nop                                                       # 50
  mxu.push m0, v22                                          # 51
  mxu.push m1, v26                                          # 52
  mxu.pop v1, m0                                            # 53
  mxu.popacc v1, m1, v1                                     # 54
  nop                                                       # 55
  nop                                                       # 56
  nop                                                       # 57
  nop                                                       # 58
  mxu.push m0, v23                                          # 59
  mxu.push m1, v27                                          # 60
  mxu.pop v2, m0                                            # 61
  mxu.popacc v2, m1, v2                                     # 62
  nop                                                       # 63
  nop                                                       # 64
  nop                                                       # 65
  nop                                                       # 66
  nop                                                       # 67
  nop                                                       # 68
  mxu.pop v3, m0 ; vld.bf16 v10, s1, s2, 98304              # 69  round 1: blocks 2 (m0) and 3 (m1); round 0's last pop
  mxu.popacc v3, m1, v3 ; vld.bf16 v11, s1, s2, 100352      # 70
  mxu.ldw m0, v10, 0 ; vld.bf16 v12, s1, s2, 102400         # 71
  mxu.ldw m0, v11, 1 ; vld.bf16 v13, s1, s2, 104448         # 72
  mxu.ldw m0, v12, 2 ; vld.bf16 v10, s1, s2, 106496         # 73
  mxu.ldw m0, v13, 3 ; vld.bf16 v11, s1, s2, 108544         # 74
  mxu.ldw m0, v10, 4 ; vld.bf16 v12, s1, s2, 110592         # 75
  mxu.ldw m0, v11, 5 ; vld.bf16 v13, s1, s2, 112640         # 76
  mxu.ldw m0, v12, 6 ; vld.bf16 v10, s1, s2, 114688         # 77
  mxu.ldw m0, v13, 7 ; vld.bf16 v11, s1, s2, 116736         # 78
  mxu.ldw m0, v10, 8 ; vld.bf16 v12, s1, s2, 118784         # 79
  mxu.ldw m0, v11, 9 ; vld.bf16 v13, s1, s2, 120832         # 80
  mxu.ldw m0, v12, 10 ; vld.bf16 v10, s1, s2, 122880        # 81
  mxu.ldw m0, v13, 11 ; vld.bf16 v11, s1, s2, 124928        # 82
  mxu.ldw m0, v10, 12 ; vld.bf16 v12, s1, s2, 126976        # 83
  mxu.ldw m0, v11, 13 ; vld.bf16 v13, s1, s2, 129024        # 84
  mxu.ldw m0, v12, 14 ; vld.bf16 v10, s1, s2, 131072        # 85
  mxu.ldw m0, v13, 15 ; vld.bf16 v11, s1, s2, 133120        # 86
  mxu.ldw m1, v10, 0 ; vld.bf16 v12, s1, s2, 135168         # 87
  mxu.ldw m1, v11, 1 ; vld.bf16 v13, s1, s2, 137216         # 88
  mxu.ldw m1, v12, 2 ; vld.bf16 v10, s1, s2, 139264         # 89
  mxu.ldw m1, v13, 3 ; vld.bf16 v11, s1, s2, 141312         # 90
  mxu.ldw m1, v10, 4 ; vld.bf16 v12, s1, s2, 143360         # 91
  mxu.ldw m1, v11, 5 ; vld.bf16 v13, s1, s2, 145408         # 92
  mxu.ldw m1, v12, 6 ; vld.bf16 v10, s1, s2, 147456         # 93
  mxu.ldw m1, v13, 7 ; vld.bf16 v11, s1, s2, 149504         # 94
  mxu.ldw m1, v10, 8 ; vld.bf16 v12, s1, s2, 151552         # 95
  mxu.ldw m1, v11, 9 ; vld.bf16 v13, s1, s2, 153600         # 96
  mxu.ldw m1, v12, 10 ; vld.bf16 v10, s1, s2, 155648        # 97
  mxu.ldw m1, v13, 11 ; vld.bf16 v11, s1, s2, 157696        # 98
  mxu.ldw m1, v10, 12 ; vld.bf16 v12, s1, s2, 159744        # 99
  mxu.ldw m1, v11, 13 ; vld.bf16 v13, s1, s2, 161792        # 100
  mxu.ldw m1, v12, 14 ; vld.bf16 v20, s1, s3, 512           # 101  a tiles of round 1
  mxu.ldw m1, v13, 15 ; vld.bf16 v24, s1, s3, 768           # 102
  vld.bf16 v21, s1, s3, 8704 ; mxu.push m0, v20             # 103  Q1
  vld.bf16 v25, s1, s3, 8960 ; mxu.push m1, v24             # 104
  vld.bf16 v22, s1, s3, 16896                               # 105
  vld.bf16 v26, s1, s3, 17152                               # 106
  vld.bf16 v23, s1, s3, 25088                               # 107
  vld.bf16 v27, s1, s3, 25344                               # 108
  nop                                                       # 109
  nop                                                       # 110
  mxu.push m0, v21                                          # 111
  mxu.push m1, v25                                          # 112
  mxu.popacc v0, m0, v0                                     # 113
  mxu.popacc v0, m1, v0                                     # 114
  vst v0, s4, s5, 0                                         # 115  first finished tile stored
  nop                                                       # 116
  nop                                                       # 117
  nop                                                       # 118
  mxu.push m0, v22                                          # 119
  mxu.push m1, v26                                          # 120
  mxu.popacc v1, m0, v1                                     # 121
  mxu.popacc v1, m1, v1                                     # 122
  vst v1, s4, s5, 4096                                      # 123
  nop                                                       # 124
  nop                                                       # 125
  nop                                                       # 126
  mxu.push m0, v23                                          # 127
  mxu.push m1, v27                                          # 128
  mxu.popacc v2, m0, v2                                     # 129
  mxu.popacc v2, m1, v2                                     # 130
  vst v2, s4, s5, 8192                                      # 131
  nop                                                       # 132
  nop                                                       # 133
  nop                                                       # 134
  nop                                                       # 135
  nop                                                       # 136
  mxu.popacc v3, m0, v3                                     # 137
  mxu.popacc v3, m1, v3                                     # 138
  vst v3, s4, s5, 12288                                     # 139
  halt                                                      # 140  done at 141
