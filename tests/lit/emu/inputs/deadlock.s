.target tiny
.code chip 0
  sem.wait sem3, 1
  halt
.code all
  halt
