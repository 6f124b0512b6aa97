# fault_runaway: a loop that never ends. Expected: exit 1, runaway at the watchdog's
# cycle limit, naming the chip and its pc (0 or 1, inside the loop).
.target tiny
.code all
top:
  li s1, 1
  bnz s1, top
  halt
