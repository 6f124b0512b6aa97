# scalar_loop: the sum 1 + 2 + ... + N with a zero-overhead `loop`, N = 100.
#
# Result (SMEM, i32): result = [N(N+1)/2, N] = [5050, 100].
#
# Schedule: one bundle per cycle; `loop` repeats its body with no per-iteration cost.
#   cycle 0           li s1, 0 ; li s2, 0
#   cycle 1           loop end, N               (body: bundles 2..3)
#   cycle 2 + 2i      addi s1, s1, 1            (iteration i = 0 .. N-1)
#   cycle 3 + 2i      add s2, s2, s1            s1 landed at 2 + 2i + lat.salu
#   cycle 2N + 2      li s3, 0
#   cycle 2N + 3      sst s2, s3, 0 ; sst s1, s3, 4
#   cycle 2N + 4      halt
# Needs lat.salu <= 1 (the add reads s1 one cycle after the addi writes it).
# The chip is done one cycle after its halt issues, and not before its stores land:
#   cycles = max(2N + 4 + 1, 2N + 3 + lat.smem)
#   tiny (lat.smem = 2): max(205, 205) = 205
.target tiny
.symbol result out smem i32 [2] at 0
.code all
  li s1, 0 ; li s2, 0
  loop end, 100
  addi s1, s1, 1
  add s2, s2, s1
end:
  li s3, 0
  sst s2, s3, 0 ; sst s1, s3, 4
  halt
