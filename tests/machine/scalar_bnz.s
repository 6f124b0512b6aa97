# scalar_bnz: Fibonacci numbers with a counted `bnz` loop, N = 40 iterations.
#
# Result (SMEM, i32): result = [F(N), F(N+1)] = [102334155, 165580141]
# (F(0) = 0, F(1) = 1; both fit in 31 bits).
#
# Schedule: one bundle per cycle, and a taken branch makes its target issue lat.branch
# cycles after the branch (B = lat.branch; tiny: 1, no bubble).
#   cycle 0               li s1, 0 ; li s2, 1            s1 = F(0), s2 = F(1)
#   cycle 1               li s3, N ; li s4, 0            s3 counts down
#   t_k = 2 + k(1 + B)    add s5, s1, s2 ; addi s3, s3, -1        (k = 0 .. N-1)
#   t_k + 1               mov s1, s2 ; mov s2, s5 ; bnz s3, top   reads s5, s3 from t_k
#   t_{N-1} + 2 = T       sst s1, s4, 0 ; sst s2, s4, 4 ; halt   (the last bnz falls
#                         through)
# where T = 2 + (N-1)(1 + B) + 2. Both movs read at issue, so s1 gets the old s2.
# Needs lat.salu <= 1.
# The chip is done one cycle after its halt, but not before the stores issued with it
# land (docs/emulator.md, "halt"):
#   cycles = max(T + 1, T + lat.smem)
#   tiny (B = 1, lat.smem = 2): T = 2 + 39 * 2 + 2 = 82, cycles = max(83, 84) = 84
.target tiny
.symbol result out smem i32 [2] at 0
.code all
  li s1, 0 ; li s2, 1
  li s3, 40 ; li s4, 0
top:
  add s5, s1, s2 ; addi s3, s3, -1
  mov s1, s2 ; mov s2, s5 ; bnz s3, top
  sst s1, s4, 0 ; sst s2, s4, 4 ; halt
