# Directive errors: unknown directive, a second .target, bad symbols and data.
# RUN: %expect-exit 1 %tilec asm %s -o %t.tobj 2>&1 | FileCheck %s
.target v4-like
# CHECK: directives.s:[[@LINE+1]]:1: error: '.target' is given twice (first on line 3)
.target tiny
# CHECK: directives.s:[[@LINE+1]]:1: error: unknown directive '.text' (there are .target, .code, .symbol, .data)
.text
# CHECK: directives.s:[[@LINE+1]]:11: error: expected 'in', 'out' or 'inout', found 'input'
.symbol x input hbm f32 [8] at 0
# CHECK: directives.s:[[@LINE+1]]:18: error: expected a memory space (hbm, vmem or smem), found 'cmem'
.symbol y inout  cmem f32 [8] at 0
# CHECK: directives.s:[[@LINE+1]]:33: error: unexpected 'per-chip'; the only flag is 'per_chip'
.symbol z out hbm f32 [8] at 64 per-chip
# CHECK: directives.s:[[@LINE+1]]:17: error: 300 does not fit in i8 (-128..255)
.data hbm 0 i8  300
# CHECK: directives.s:[[@LINE+1]]:17: error: expected a value type (f32, i32, bf16, i8 or bytes), found 'f64'
.data vmem 4096 f64 1.0
# CHECK: directives.s:[[@LINE+1]]:7: error: '.code' is followed by 'all' or 'chip N', not 'chips'
.code chips 3
.code all
  halt
