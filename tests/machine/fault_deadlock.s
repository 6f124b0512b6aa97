# fault_deadlock: chip 1 signals chip 0's sem3 once and then waits on its own sem1,
# which nothing signals; chip 0 waits for sem3 to reach 2. Chips 2 and 3 halt.
# Expected: exit 1, a deadlock, with every chip's state: chip 0 waiting at pc 1 on sem3
# (value 1, wants 2), chip 1 waiting at pc 2 on sem1 (value 0), chips 2 and 3 halted.
.target tiny
.code chip 0
  nop
  sem.wait sem3, 2
  halt
.code chip 1
  li s1, 0
  sem.signal.r sem3, s1, 1
  sem.wait sem1, 1
  halt
.code all
  halt
