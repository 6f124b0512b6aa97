.target tiny
.code all
top:
  addi s1, s1, 1
  jmp top
