# With a loadable .target, registers, units, semaphores, rows and memories are checked.
# RUN: %expect-exit 1 %tilec asm %s -o %t.tobj 2>&1 | FileCheck %s
.target tiny
# CHECK: target-limits.s:[[@LINE+1]]:38: error: bytes 0..2097151 are outside vmem, which has 1048576 bytes on target tiny
.symbol w in vmem f32 [512, 1024] at 0
.code all
# CHECK: target-limits.s:[[@LINE+1]]:8: error: vector register v40 does not exist on target tiny (it has 32)
  vmov v40, v1
# CHECK: target-limits.s:[[@LINE+1]]:13: error: MXU unit m3 does not exist on target tiny (it has 2)
  mxu.push  m3, v1
# CHECK: target-limits.s:[[@LINE+1]]:12: error: semaphore sem20 does not exist on target tiny (it has 16)
  sem.wait sem20, 1
# CHECK: target-limits.s:[[@LINE+1]]:3: error: 'xlu.trpush' row group 16 is beyond the transpose buffer's rows on target tiny (groups 0..15 of 8 rows)
  xlu.trpush v1, 16
  halt
