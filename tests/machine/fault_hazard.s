# fault_hazard: chip 2 reads v0 one cycle after a vector load that lands lat.vload
# (2 on tiny) cycles after it issues. Expected: exit 1, a hazard at chip 2, pc 2,
# cycle 2, naming v0, the reader (vadd.f) and the producer (vld at cycle 1).
.target tiny
.code chip 2
  li s1, 0 ; li s2, 512
  vld v0, s1, s2, 0
  vadd.f v1, v0, v0
  halt
.code all
  halt
