.target tiny
.code all
  vld v4, s0, s0, 0
  vadd.f v5, v4, v4
  halt
