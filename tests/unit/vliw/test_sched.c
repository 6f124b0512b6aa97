/* The list scheduler and plain loops: MIR built by hand, scheduled, run in the emulator
 * in strict mode (every read and write checked), results compared with what the
 * program computes. Also the graph's promises checked directly (every edge satisfied,
 * slot counts kept) and bad MIR refused with a sentence. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../../backend-vliw/sched_internal.h"
#include "check.h"
#include "test_sched_fixture.h"

enum { TILE = 8 * 128 * 4, ROW = 128 * 4 };

static int32_t vmem_tiles(TileMir *m, const char *name, int n, float (*f)(int tile, int i)) {
  int32_t b = tile_mir_buffer(m, name, TILE_SPACE_VMEM, (int64_t)TILE * n, 1, 64);
  if (f) {
    float *x = malloc((size_t)TILE * n);
    for (int t = 0; t < n; t++)
      for (int i = 0; i < 1024; i++) x[t * 1024 + i] = f(t, i);
    tile_mir_data(m, b, x, (int64_t)TILE * n);
    free(x);
  }
  return b;
}

static float ramp(int t, int i) { return (float)(t * 3 + i % 7); }

static void read_tile(TileEmu *e, const TileMir *m, int32_t buf, int t, float *out) {
  tile_emu_read_memory(e, 0, TILE_SPACE_VMEM, m->bufs[buf].addr + (int64_t)t * TILE, out, TILE);
}

/* vld -> vadd -> vst -> vld of the stored bytes -> vst: register and store latencies. */
TEST(sched, straight_line_latencies) {
  TileTarget t;
  REQUIRE(sfx_target("tiny", &t));
  TileMir m;
  tile_mir_init(&m, &t);
  int32_t in = vmem_tiles(&m, "in", 1, ramp), mid = vmem_tiles(&m, "mid", 1, NULL),
          out = vmem_tiles(&m, "out", 1, NULL);
  int32_t a = tile_mir_sreg(&m), b = tile_mir_sreg(&m), c = tile_mir_sreg(&m), st = tile_mir_sreg(&m);
  int32_t x = tile_mir_vreg(&m), y = tile_mir_vreg(&m), z = tile_mir_vreg(&m), w = tile_mir_vreg(&m);
  tile_mir_add(&m, sfx_addr(a, in, 0));
  tile_mir_add(&m, sfx_addr(b, mid, 0));
  tile_mir_add(&m, sfx_addr(c, out, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_LI, st, 0, 0, 0, ROW));
  tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_VLD, x, a, st, 0, 0), in, TILE_MIR_READ, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_VADDF, y, x, x, 0, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_VEXP, w, x, 0, 0, 0)); /* unused result landing late */
  tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_VST, y, b, st, 0, 0), mid, TILE_MIR_WRITE, 0));
  tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_VLD, z, b, st, 0, 0), mid, TILE_MIR_READ, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_VMULF, z, z, y, 0, 0));
  tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_VST, z, c, st, 0, 0), out, TILE_MIR_WRITE, 0));
  TileMirCode code;
  TileEmu *e = NULL;
  int64_t cycles = sfx_schedule_run(&m, &code, TILE_EMU_FUNCTIONAL, &e);
  CHECK(cycles > 0);
  if (cycles > 0) {
    float o[1024];
    read_tile(e, &m, out, 0, o);
    bool ok = true;
    for (int i = 0; i < 1024; i++) ok &= o[i] == (2 * ramp(0, i)) * (2 * ramp(0, i));
    CHECK(ok);
    /* the critical path: li 1, vld 2, vadd 2, vst 1, vld 2, vmul 2, vst (+1 landing) */
    CHECK(cycles <= 13);
  }
  tile_emu_free(e);
  tile_mir_code_free(&code);
  tile_mir_free(&m);
}

/* A register carried around a plain loop (accumulator and address step), read after. */
TEST(sched, loop_carried_accumulator) {
  TileTarget t;
  REQUIRE(sfx_target("tiny", &t));
  TileMir m;
  tile_mir_init(&m, &t);
  const int N = 6;
  int32_t in = vmem_tiles(&m, "in", N, ramp), out = vmem_tiles(&m, "out", 1, NULL);
  int32_t a = tile_mir_sreg(&m), st = tile_mir_sreg(&m), o = tile_mir_sreg(&m);
  int32_t acc = tile_mir_vreg(&m), x = tile_mir_vreg(&m);
  tile_mir_add(&m, sfx_addr(a, in, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_LI, st, 0, 0, 0, ROW));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_VLI, acc, 0, 0, 0, sfx_bits(0.5f)));
  tile_mir_loop_begin(&m, N, 0);
  tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_VLD, x, a, st, 0, 0), in, TILE_MIR_READ, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_VADDF, acc, acc, x, 0, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_ADDI, a, a, 0, 0, TILE));
  tile_mir_loop_end(&m);
  tile_mir_add(&m, sfx_addr(o, out, 0));
  tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_VST, acc, o, st, 0, 0), out, TILE_MIR_WRITE, 0));
  TileMirCode code;
  TileEmu *e = NULL;
  int64_t cycles = sfx_schedule_run(&m, &code, TILE_EMU_FUNCTIONAL, &e);
  CHECK(cycles > 0);
  if (cycles > 0) {
    float r[1024];
    read_tile(e, &m, out, 0, r);
    bool ok = true;
    for (int i = 0; i < 1024; i++) {
      float want = 0.5f;
      for (int k = 0; k < N; k++) want += ramp(k, i);
      ok &= r[i] == want;
    }
    CHECK(ok);
    CHECK_EQ(1, code.nloops);
  }
  tile_emu_free(e);
  tile_mir_code_free(&code);
  tile_mir_free(&m);
}

/* A value made at the end of a body (a transcendental, the longest latency) is read at
 * the start of the next iteration; the loop starts right after the code that sets it. */
TEST(sched, back_edge_latency) {
  TileTarget t;
  REQUIRE(sfx_target("tiny", &t));
  TileMir m;
  tile_mir_init(&m, &t);
  int32_t out = vmem_tiles(&m, "out", 1, NULL);
  int32_t o = tile_mir_sreg(&m), st = tile_mir_sreg(&m);
  int32_t w = tile_mir_vreg(&m), half = tile_mir_vreg(&m), a = tile_mir_vreg(&m);
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_VLI, half, 0, 0, 0, sfx_bits(0.5f)));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_VLI, w, 0, 0, 0, sfx_bits(0.0f)));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_VEXP, w, w, 0, 0, 0)); /* in flight at loop entry */
  tile_mir_loop_begin(&m, 5, 0);
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_VMULF, a, w, half, 0, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_VEXP, w, a, 0, 0, 0));
  tile_mir_loop_end(&m);
  tile_mir_add(&m, sfx_addr(o, out, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_LI, st, 0, 0, 0, ROW));
  tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_VST, w, o, st, 0, 0), out, TILE_MIR_WRITE, 0));
  TileMirCode code;
  TileEmu *e = NULL;
  int64_t cycles = sfx_schedule_run(&m, &code, TILE_EMU_FUNCTIONAL, &e);
  CHECK(cycles > 0);
  if (cycles > 0) {
    float r[1024];
    read_tile(e, &m, out, 0, r);
    double want = exp(0.0);
    for (int k = 0; k < 5; k++) want = exp(0.5 * (float)want);
    CHECK(fabs(r[0] - want) < 1e-5 * want);
    CHECK(r[1023] == r[0]);
  }
  tile_emu_free(e);
  tile_mir_code_free(&code);
  tile_mir_free(&m);
}

/* Three loops nested (the inner two ending at the same bundle), counting in a scalar
 * and storing the count to SMEM after each level. */
TEST(sched, nested_loops) {
  TileTarget t;
  REQUIRE(sfx_target("tiny", &t));
  TileMir m;
  tile_mir_init(&m, &t);
  int32_t out = tile_mir_buffer(&m, "counts", TILE_SPACE_SMEM, 16, 1, 4);
  int32_t n = tile_mir_sreg(&m), k = tile_mir_sreg(&m), p = tile_mir_sreg(&m);
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_LI, n, 0, 0, 0, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_LI, k, 0, 0, 0, 0));
  tile_mir_add(&m, sfx_addr(p, out, 0));
  tile_mir_loop_begin(&m, 2, 0);
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_ADDI, k, k, 0, 0, 100));
  tile_mir_loop_begin(&m, 3, 0);
  tile_mir_loop_begin(&m, 4, 0);
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_ADDI, n, n, 0, 0, 1));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_MULI, n, n, 0, 0, 1)); /* a second write of n */
  tile_mir_loop_end(&m);
  tile_mir_loop_end(&m);
  tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_SST, n, p, 0, 0, 0), out, TILE_MIR_WRITE, 0));
  tile_mir_loop_end(&m);
  tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_SST, k, p, 0, 0, 4), out, TILE_MIR_WRITE, 0));
  TileMirCode code;
  TileEmu *e = NULL;
  int64_t cycles = sfx_schedule_run(&m, &code, TILE_EMU_FUNCTIONAL, &e);
  CHECK(cycles > 0);
  if (cycles > 0) {
    int32_t r[2];
    tile_emu_read_memory(e, 0, TILE_SPACE_SMEM, m.bufs[out].addr, r, 8);
    CHECK_EQ(24, r[0]);
    CHECK_EQ(200, r[1]);
    CHECK_EQ(3, code.nloops);
  }
  tile_emu_free(e);
  tile_mir_code_free(&code);
  tile_mir_free(&m);
}

/* Weights loaded, pushes in one loop, pops in the next: results queued across loops. */
TEST(sched, mxu_results_across_loops) {
  TileTarget t;
  REQUIRE(sfx_target("tiny", &t));
  TileMir m;
  tile_mir_init(&m, &t);
  const int N = 4;
  int32_t wbuf = tile_mir_buffer(&m, "w", TILE_SPACE_VMEM, 128 * 128 * 4, 1, 64);
  float *wv = calloc(128 * 128, 4);
  for (int i = 0; i < 128; i++) wv[i * 128 + i] = 2.0f;
  tile_mir_data(&m, wbuf, wv, 128 * 128 * 4);
  free(wv);
  int32_t in = vmem_tiles(&m, "x", N, ramp), out = vmem_tiles(&m, "y", N, NULL);
  int32_t wa = tile_mir_sreg(&m), st = tile_mir_sreg(&m), a = tile_mir_sreg(&m), o = tile_mir_sreg(&m);
  int32_t wr = tile_mir_vreg(&m), x = tile_mir_vreg(&m), y = tile_mir_vreg(&m);
  tile_mir_add(&m, sfx_addr(wa, wbuf, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_LI, st, 0, 0, 0, ROW));
  for (int g = 0; g < 16; g++) {
    tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_VLD, wr, wa, st, 0, g * TILE), wbuf, TILE_MIR_READ, 0));
    tile_mir_add(&m, tile_mir_inst(TILE_MOP_MXU_LDW, 0, wr, 0, 1, g));
  }
  tile_mir_add(&m, sfx_addr(a, in, 0));
  tile_mir_loop_begin(&m, N, 0);
  tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_VLD, x, a, st, 0, 0), in, TILE_MIR_READ, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_MXU_PUSH, 0, x, 0, 1, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_ADDI, a, a, 0, 0, TILE));
  tile_mir_loop_end(&m);
  tile_mir_add(&m, sfx_addr(o, out, 0));
  tile_mir_loop_begin(&m, N, 0);
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_MXU_POP, y, 1, 0, 1, 0));
  tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_VST, y, o, st, 0, 0), out, TILE_MIR_WRITE, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_ADDI, o, o, 0, 0, TILE));
  tile_mir_loop_end(&m);
  TileMirCode code;
  TileEmu *e = NULL;
  int64_t cycles = sfx_schedule_run(&m, &code, TILE_EMU_FUNCTIONAL, &e);
  CHECK(cycles > 0);
  if (cycles > 0) {
    bool ok = true;
    for (int k = 0; k < N; k++) {
      float r[1024];
      read_tile(e, &m, out, k, r);
      for (int i = 0; i < 1024; i++) ok &= r[i] == 2 * ramp(k, i);
    }
    CHECK(ok);
  }
  tile_emu_free(e);
  tile_mir_code_free(&code);
  tile_mir_free(&m);
}

/* The list scheduler's own promise on a random stretch: every edge's latency holds and
 * no cycle has more ops of a kind than slots. */
TEST(sched, list_respects_edges_and_slots) {
  TileTarget t;
  REQUIRE(sfx_target("v5e-like", &t));
  TileMir m;
  tile_mir_init(&m, &t);
  int32_t buf[3];
  for (int i = 0; i < 3; i++) buf[i] = vmem_tiles(&m, "b", 4, NULL);
  int32_t s[6], v[10];
  for (int i = 0; i < 6; i++) s[i] = tile_mir_sreg(&m);
  for (int i = 0; i < 10; i++) v[i] = tile_mir_vreg(&m);
  uint32_t seed = 12345;
  for (int i = 0; i < 400; i++) {
    seed = seed * 1103515245u + 12345u;
    int kind = (seed >> 16) % 6, r1 = (seed >> 8) % 10, r2 = (seed >> 4) % 10, r3 = (seed >> 20) % 10;
    int sa = (seed >> 12) % 6, bb = (seed >> 24) % 3;
    switch (kind) {
    case 0: tile_mir_add(&m, tile_mir_inst(TILE_MOP_VADDF, v[r1], v[r2], v[r3], 0, 0)); break;
    case 1: tile_mir_add(&m, tile_mir_inst(TILE_MOP_VEXP, v[r1], v[r2], 0, 0, 0)); break;
    case 2: tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_VLD, v[r1], s[sa], s[0], 0, 0), buf[bb], TILE_MIR_READ, 0)); break;
    case 3: tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_VST, v[r1], s[sa], s[0], 0, 0), buf[bb], TILE_MIR_WRITE, 0)); break;
    case 4: tile_mir_add(&m, tile_mir_inst(TILE_MOP_ADDI, s[sa], s[(sa + 1) % 6], 0, 0, 4)); break;
    default: tile_mir_add(&m, tile_mir_inst(TILE_MOP_XLSUM, v[r1], v[r2], 0, 0, 0)); break;
    }
  }
  SchedCtx cx;
  sched_ctx_init(&cx, &m, NULL);
  SchedGraph g;
  sched_graph_build(&cx, 0, m.ninsts, false, NULL, &g);
  int32_t *lb = calloc((size_t)g.n, sizeof(int32_t)), *tt = calloc((size_t)g.n, sizeof(int32_t));
  int32_t len = sched_list(&cx, &g, lb, tt);
  bool edges_ok = true, slots_ok = true, forward = true;
  for (int32_t i = 0; i < g.nedges; i++) {
    edges_ok &= tt[g.e[i].to] >= tt[g.e[i].from] + g.e[i].lat;
    forward &= g.e[i].from < g.e[i].to && g.e[i].dist == 0;
  }
  int *use = calloc((size_t)len * TILE_SLOT_COUNT, sizeof(int));
  for (int32_t vtx = 0; vtx < g.n; vtx++) use[tt[vtx] * TILE_SLOT_COUNT + cx.info[g.ins[vtx].op].slot]++;
  for (int32_t c = 0; c < len; c++)
    for (int k = 0; k < TILE_SLOT_COUNT; k++) slots_ok &= use[c * TILE_SLOT_COUNT + k] <= t.slots[k];
  CHECK(edges_ok);
  CHECK(slots_ok);
  CHECK(forward);
  /* two vector slots: 400 ops cannot take fewer than 400 / (slots of all kinds) cycles */
  CHECK(len >= 400 / 9);
  free(use);
  free(lb);
  free(tt);
  sched_graph_free(&g);
  sched_ctx_free(&cx);
  tile_mir_free(&m);
}

/* Bad MIR gets a sentence, never a crash. */
static bool refuses(TileMir *m, const char *needle) {
  TileDiag d;
  tile_diag_init(&d, NULL, "test", NULL, 0);
  TileMirCode code;
  bool ok = tile_mir_schedule(m, &code, &d);
  tile_mir_code_free(&code);
  if (ok || !strstr(d.last, needle)) {
    fprintf(stderr, "wanted a refusal naming '%s', got %s: %s\n", needle, ok ? "success" : "error", d.last);
    return false;
  }
  return true;
}

TEST(sched, refuses_bad_mir) {
  TileTarget t;
  REQUIRE(sfx_target("tiny", &t));
  TileMir m;
  tile_mir_init(&m, &t);
  tile_mir_loop_begin(&m, 3, 0);
  CHECK(refuses(&m, "never closed"));
  tile_mir_free(&m);

  tile_mir_init(&m, &t);
  tile_mir_loop_end(&m);
  CHECK(refuses(&m, "without a loop"));
  tile_mir_free(&m);

  tile_mir_init(&m, &t);
  int32_t v = tile_mir_vreg(&m);
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_MXU_PUSH, 0, v, 0, 7, 0));
  CHECK(refuses(&m, "MXU unit 7"));
  tile_mir_free(&m);

  tile_mir_init(&m, &t);
  v = tile_mir_vreg(&m);
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_MXU_POP, v, 0, 0, 0, 0));
  CHECK(refuses(&m, "queue is empty"));
  tile_mir_free(&m);

  tile_mir_init(&m, &t);
  v = tile_mir_vreg(&m);
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_VADDF, v, v, 99, 0, 0));
  CHECK(refuses(&m, "virtual register 99"));
  tile_mir_free(&m);

  tile_mir_init(&m, &t);
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_JMP, 0, 0, 0, 0, 0));
  CHECK(refuses(&m, "control flow"));
  tile_mir_free(&m);

  tile_mir_init(&m, &t);
  for (int i = 0; i < 5; i++) tile_mir_loop_begin(&m, 2, 0);
  CHECK(refuses(&m, "deeper than 4"));
  tile_mir_free(&m);

  tile_mir_init(&m, &t);
  tile_mir_add(&m, tile_mir_inst(TILE_MIR_LOOP_BEGIN, 0, 0, 0, 0, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MIR_LOOP_END, 0, 0, 0, 0, 0));
  CHECK(refuses(&m, "trip count 0"));
  tile_mir_free(&m);

  /* a loop that pops more than anything pushed */
  tile_mir_init(&m, &t);
  v = tile_mir_vreg(&m);
  int32_t w = tile_mir_vreg(&m);
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_VLI, w, 0, 0, 0, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_MXU_PUSH, 0, w, 0, 0, 0));
  tile_mir_loop_begin(&m, 3, 0);
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_MXU_POP, v, 0, 0, 0, 0));
  tile_mir_loop_end(&m);
  CHECK(refuses(&m, "more results"));
  tile_mir_free(&m);
}

/* Empty program: just halt. Empty loops vanish. */
TEST(sched, empty_program_and_loop) {
  TileTarget t;
  REQUIRE(sfx_target("tiny", &t));
  TileMir m;
  tile_mir_init(&m, &t);
  tile_mir_loop_begin(&m, 5, TILE_MIR_PIPELINE);
  tile_mir_loop_end(&m);
  TileMirCode code;
  int64_t cycles = sfx_schedule_run(&m, &code, TILE_EMU_FUNCTIONAL, NULL);
  CHECK(cycles > 0);
  CHECK_EQ(1, code.nbundles);
  CHECK_EQ(TILE_MOP_HALT, code.b[0].slot[tile_slot_first(TILE_SLOT_BRANCH)].op);
  tile_mir_code_free(&code);
  tile_mir_free(&m);
}
