/* MXU result queues across scheduling boundaries: the scheduler keeps each queued
 * result's landing time, so a pop after a loop waits for its own result, not for the
 * newest push; pipelined loops that only push, or only pop results queued before them,
 * are modulo scheduled. Programs run in the emulator in strict mode. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "test_sched_fixture.h"

enum { TILE_BYTES = 8 * 128 * 4, ROW_BYTES = 128 * 4 };

static float ramp(int t, int i) { return (float)(t * 5 + i % 11); }

/* Weights 2 * I on unit 1, N pushes in one pipelined loop, N pops in the next. */
static int64_t push_then_pop(const char *target, int n, TileTarget *t, bool *right,
                             TileMirCode *code) {
  TileMir m;
  *right = false;
  if (!sfx_target(target, t)) return -1;
  tile_mir_init(&m, t);
  int32_t wbuf = tile_mir_buffer(&m, "w", TILE_SPACE_VMEM, 128 * ROW_BYTES, 1, 64);
  float *wv = calloc(128 * 128, 4);
  for (int i = 0; i < 128; i++) wv[i * 128 + i] = 2.0f;
  tile_mir_data(&m, wbuf, wv, 128 * ROW_BYTES);
  free(wv);
  int32_t in = tile_mir_buffer(&m, "x", TILE_SPACE_VMEM, (int64_t)TILE_BYTES * n, 1, 64);
  float *x = malloc((size_t)TILE_BYTES * n);
  for (int k = 0; k < n; k++)
    for (int i = 0; i < 1024; i++) x[k * 1024 + i] = ramp(k, i);
  tile_mir_data(&m, in, x, (int64_t)TILE_BYTES * n);
  free(x);
  int32_t out = tile_mir_buffer(&m, "y", TILE_SPACE_VMEM, (int64_t)TILE_BYTES * n, 1, 64);
  int32_t wa = tile_mir_sreg(&m), st = tile_mir_sreg(&m), a = tile_mir_sreg(&m), o = tile_mir_sreg(&m);
  int32_t wr = tile_mir_vreg(&m), xv = tile_mir_vreg(&m), y = tile_mir_vreg(&m);
  tile_mir_add(&m, sfx_addr(wa, wbuf, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_LI, st, 0, 0, 0, ROW_BYTES));
  for (int g = 0; g < 16; g++) {
    tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_VLD, wr, wa, st, 0, g * TILE_BYTES), wbuf,
                             TILE_MIR_READ, 0));
    tile_mir_add(&m, tile_mir_inst(TILE_MOP_MXU_LDW, 0, wr, 0, 1, g));
  }
  tile_mir_add(&m, sfx_addr(a, in, 0));
  tile_mir_add(&m, sfx_addr(o, out, 0));
  tile_mir_loop_begin(&m, n, TILE_MIR_PIPELINE);
  tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_VLD, xv, a, st, 0, 0), in, TILE_MIR_READ, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_MXU_PUSH, 0, xv, 0, 1, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_ADDI, a, a, 0, 0, TILE_BYTES));
  tile_mir_loop_end(&m);
  tile_mir_loop_begin(&m, n, TILE_MIR_PIPELINE);
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_MXU_POP, y, 1, 0, 1, 0));
  tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_VST, y, o, st, 0, 0), out, TILE_MIR_WRITE, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_ADDI, o, o, 0, 0, TILE_BYTES));
  tile_mir_loop_end(&m);
  TileEmu *e = NULL;
  int64_t cycles = sfx_schedule_run(&m, code, TILE_EMU_FUNCTIONAL, &e);
  if (cycles > 0) {
    bool ok = true;
    float r[1024];
    for (int k = 0; k < n; k++) {
      tile_emu_read_memory(e, 0, TILE_SPACE_VMEM, m.bufs[out].addr + (int64_t)k * TILE_BYTES, r,
                           TILE_BYTES);
      for (int i = 0; i < 1024; i++) ok &= r[i] == 2 * ramp(k, i);
    }
    *right = ok;
  }
  tile_emu_free(e);
  tile_mir_free(&m);
  return cycles;
}

TEST(sched_fifo, pops_after_a_loop_wait_for_their_own_results) {
  TileTarget t;
  TileMirCode code;
  bool right;
  const int n = 32;
  int64_t cycles = push_then_pop("v5e-like", n, &t, &right, &code);
  REQUIRE(cycles > 0);
  CHECK(right);
  /* Both loops are software-pipelined (one only pushes, one only pops what came
   * before it). */
  int pipelined = 0;
  for (int32_t i = 0; i < code.nloops; i++) pipelined += code.loops[i].res_mii > 0;
  CHECK_EQ(2, pipelined);
  /* The weights come through one vreg (a load, then its mxu.ldw, 16 times), then n
   * pushes; the last result lands lat.mxu_result after the last push, and the pops,
   * each waiting only for its own result, reach it a few cycles later. Had the first
   * pop waited for the newest result, the n pops (two MXU ops a cycle at most) would
   * all come after that landing. */
  int64_t weights = 16 * (t.latency[TILE_LAT_VLOAD] + 1);
  int64_t pushes = (int64_t)n * t.mxu_push_cycles;
  int64_t lat = t.latency[TILE_LAT_MXU_RESULT];
  CHECK(cycles < weights + pushes + lat + n / 2);
  tile_mir_code_free(&code);
}

TEST(sched_fifo, short_latency_target) {
  TileTarget t;
  TileMirCode code;
  bool right;
  int64_t cycles = push_then_pop("tiny", 5, &t, &right, &code);
  REQUIRE(cycles > 0);
  CHECK(right);
  tile_mir_code_free(&code);
}
