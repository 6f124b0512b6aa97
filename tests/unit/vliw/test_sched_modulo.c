/* The modulo scheduler: loops flagged TILE_MIR_PIPELINE reach their MII, run hazard-free
 * in the emulator's strict mode, compute what the loop computes, and take about
 * trips * II + depth cycles. Also the scheduling time of large bodies. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../../backend-vliw/sched_internal.h"
#include "check.h"
#include "test_sched_fixture.h"

enum { TILE = 8 * 128 * 4, ROW = 128 * 4 };

static int32_t vmem(TileMir *m, const char *name, int tiles, int nslots, float (*f)(int, int)) {
  int32_t b = tile_mir_buffer(m, name, TILE_SPACE_VMEM, (int64_t)TILE * tiles, nslots, 64);
  if (f) {
    float *x = malloc((size_t)TILE * tiles);
    for (int t = 0; t < tiles; t++)
      for (int i = 0; i < 1024; i++) x[t * 1024 + i] = f(t, i);
    tile_mir_data(m, b, x, (int64_t)TILE * tiles);
    free(x);
  }
  return b;
}

static float ramp(int t, int i) { return (float)((t * 5 + i) % 17) - 8.0f; }

/* out[i] = in[i] * 2 + 1 over N tiles: vld -> vadd -> vadd -> vst, two address streams. */
TEST(sched_modulo, stream_loop) {
  TileTarget t;
  REQUIRE(sfx_target("tiny", &t));
  TileMir m;
  tile_mir_init(&m, &t);
  const int N = 32;
  int32_t in = vmem(&m, "in", N, 1, ramp), out = vmem(&m, "out", N, 1, NULL);
  int32_t a = tile_mir_sreg(&m), o = tile_mir_sreg(&m), st = tile_mir_sreg(&m);
  int32_t one = tile_mir_vreg(&m), x = tile_mir_vreg(&m), y = tile_mir_vreg(&m), z = tile_mir_vreg(&m);
  tile_mir_add(&m, sfx_addr(a, in, 0));
  tile_mir_add(&m, sfx_addr(o, out, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_LI, st, 0, 0, 0, ROW));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_VLI, one, 0, 0, 0, sfx_bits(1.0f)));
  tile_mir_loop_begin(&m, N, TILE_MIR_PIPELINE);
  tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_VLD, x, a, st, 0, 0), in, TILE_MIR_READ, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_VADDF, y, x, x, 0, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_VADDF, z, y, one, 0, 0));
  tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_VST, z, o, st, 0, 0), out, TILE_MIR_WRITE, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_ADDI, a, a, 0, 0, TILE));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_ADDI, o, o, 0, 0, TILE));
  tile_mir_loop_end(&m);
  TileMirCode code;
  TileEmu *e = NULL;
  int64_t cycles = sfx_schedule_run(&m, &code, TILE_EMU_FUNCTIONAL, &e);
  CHECK(cycles > 0);
  REQUIRE(code.nloops == 1);
  const struct TileMirLoopInfo *l = &code.loops[0];
  /* no renaming: each vreg lives from its def to its use, so II >= the longest of
   * those latencies (vld 2, vadd 2) */
  CHECK_EQ(2, l->rec_mii);
  CHECK_EQ(l->rec_mii > l->res_mii ? l->rec_mii : l->res_mii, l->ii);
  CHECK(l->stages >= 2);
  if (cycles > 0) {
    bool ok = true;
    float r[1024];
    for (int k = 0; k < N; k++) {
      tile_emu_read_memory(e, 0, TILE_SPACE_VMEM, m.bufs[out].addr + (int64_t)k * TILE, r, TILE);
      for (int i = 0; i < 1024; i++) ok &= r[i] == ramp(k, i) * 2 + 1;
    }
    CHECK(ok);
    /* N * II plus the depth of one iteration and the setup */
    CHECK(cycles <= (int64_t)N * l->ii + l->stages * l->ii + 8);
  }
  tile_emu_free(e);
  tile_mir_code_free(&code);
  tile_mir_free(&m);
}

/* A loop with fewer trips than stages is list scheduled instead and still right. */
TEST(sched_modulo, few_trips_fall_back) {
  TileTarget t;
  REQUIRE(sfx_target("tiny", &t));
  TileMir m;
  tile_mir_init(&m, &t);
  int32_t in = vmem(&m, "in", 2, 1, ramp), out = vmem(&m, "out", 2, 1, NULL);
  int32_t a = tile_mir_sreg(&m), o = tile_mir_sreg(&m), st = tile_mir_sreg(&m);
  int32_t x = tile_mir_vreg(&m), y1 = tile_mir_vreg(&m), y2 = tile_mir_vreg(&m), y3 = tile_mir_vreg(&m),
          y = tile_mir_vreg(&m);
  tile_mir_add(&m, sfx_addr(a, in, 0));
  tile_mir_add(&m, sfx_addr(o, out, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_LI, st, 0, 0, 0, ROW));
  /* a chain of short lifetimes: a small II and many stages, more than the 2 trips */
  tile_mir_loop_begin(&m, 2, TILE_MIR_PIPELINE);
  tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_VLD, x, a, st, 0, 0), in, TILE_MIR_READ, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_VEXP, y1, x, 0, 0, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_VEXP, y2, y1, 0, 0, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_VEXP, y3, y2, 0, 0, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_VMULF, y, y3, y3, 0, 0));
  tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_VST, y, o, st, 0, 0), out, TILE_MIR_WRITE, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_ADDI, a, a, 0, 0, TILE));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_ADDI, o, o, 0, 0, TILE));
  tile_mir_loop_end(&m);
  TileMirCode code;
  int64_t cycles = sfx_schedule_run(&m, &code, TILE_EMU_FUNCTIONAL, NULL);
  CHECK(cycles > 0);
  REQUIRE(code.nloops == 1);
  CHECK_EQ(1, code.loops[0].stages);
  tile_mir_code_free(&code);
  tile_mir_free(&m);
}

/* The matmul inner loop on v5e-like: per iteration 4 LHS tiles pushed to units 0..3
 * (weights loaded before), pop + 3 popacc, plus the accumulator tile from VMEM, a vadd
 * and a vst. It must reach II = mxu_push_cycles with the pops about
 * mxu_result / II iterations behind the pushes. */
static float lhs(int t, int i) { return (float)(((t * 7 + i * 3) % 9) - 4); }
static float acc0(int t, int i) { return (float)((t + i) % 5); }

TEST(sched_modulo, matmul_inner_loop_v5e) {
  TileTarget t;
  REQUIRE(sfx_target("v5e-like", &t));
  TileMir m;
  tile_mir_init(&m, &t);
  const int N = 48, U = 4;
  int32_t wbuf = tile_mir_buffer(&m, "w", TILE_SPACE_VMEM, (int64_t)U * 128 * 128 * 4, 1, 64);
  float *wv = calloc((size_t)U * 128 * 128, 4);
  for (int u = 0; u < U; u++)
    for (int i = 0; i < 128; i++) wv[(size_t)u * 128 * 128 + (size_t)i * 128 + (i + u) % 128] = (float)(u + 1);
  tile_mir_data(&m, wbuf, wv, (int64_t)U * 128 * 128 * 4);
  free(wv);
  int32_t x = vmem(&m, "lhs", N * U, 1, lhs), acc = vmem(&m, "acc", N, 1, acc0);
  int32_t wa = tile_mir_sreg(&m), st = tile_mir_sreg(&m), la = tile_mir_sreg(&m), aa = tile_mir_sreg(&m);
  int32_t wr = tile_mir_vreg(&m), xv[4], p = tile_mir_vreg(&m), av = tile_mir_vreg(&m), r = tile_mir_vreg(&m);
  for (int u = 0; u < U; u++) xv[u] = tile_mir_vreg(&m);
  tile_mir_add(&m, sfx_addr(wa, wbuf, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_LI, st, 0, 0, 0, ROW));
  for (int u = 0; u < U; u++)
    for (int g = 0; g < 16; g++) {
      tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_VLD, wr, wa, st, 0, (u * 16 + g) * TILE), wbuf, TILE_MIR_READ, 0));
      tile_mir_add(&m, tile_mir_inst(TILE_MOP_MXU_LDW, 0, wr, 0, u, g));
    }
  tile_mir_add(&m, sfx_addr(la, x, 0));
  tile_mir_add(&m, sfx_addr(aa, acc, 0));
  tile_mir_loop_begin(&m, N, TILE_MIR_PIPELINE);
  for (int u = 0; u < U; u++) {
    tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_VLD, xv[u], la, st, 0, u * N * TILE), x, TILE_MIR_READ, 0));
    tile_mir_add(&m, tile_mir_inst(TILE_MOP_MXU_PUSH, 0, xv[u], 0, u, 0));
  }
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_MXU_POP, p, 0, 0, 0, 0));
  for (int u = 1; u < U; u++) tile_mir_add(&m, tile_mir_inst(TILE_MOP_MXU_POPACC, p, p, 0, u, 0));
  tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_VLD, av, aa, st, 0, 0), acc, TILE_MIR_READ, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_VADDF, r, av, p, 0, 0));
  tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_VST, r, aa, st, 0, 0), acc, TILE_MIR_WRITE, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_ADDI, la, la, 0, 0, TILE));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_ADDI, aa, aa, 0, 0, TILE));
  tile_mir_loop_end(&m);

  TileMirCode code;
  TileEmu *e = NULL;
  int64_t cycles = sfx_schedule_run(&m, &code, TILE_EMU_FUNCTIONAL, &e);
  CHECK(cycles > 0);
  REQUIRE(code.nloops == 1);
  const struct TileMirLoopInfo *l = &code.loops[0];
  CHECK_EQ(t.mxu_push_cycles, l->ii);
  CHECK_EQ(t.mxu_push_cycles, l->res_mii);
  /* pops at least mxu_result / II iterations behind their pushes */
  CHECK(l->stages >= t.latency[TILE_LAT_MXU_RESULT] / l->ii + 1);
  fprintf(stderr, "matmul loop: II %d, stages %d, res_mii %d, rec_mii %d, %lld cycles for %d iterations\n",
          (int)l->ii, (int)l->stages, (int)l->res_mii, (int)l->rec_mii, (long long)cycles, N);
  if (cycles > 0) {
    bool ok = true;
    float rr[1024];
    for (int k = 0; k < N; k++) {
      tile_emu_read_memory(e, 0, TILE_SPACE_VMEM, m.bufs[acc].addr + (int64_t)k * TILE, rr, TILE);
      for (int s = 0; s < 8; s++)
        for (int j = 0; j < 128; j++) {
          float want = acc0(k, s * 128 + j);
          for (int u = 0; u < U; u++) /* W_u[i][j] = u+1 where j = i + u */
            want += (float)(u + 1) * lhs(u * N + k, s * 128 + (j - u + 128) % 128);
          ok &= rr[s * 128 + j] == want;
        }
    }
    CHECK(ok);
    /* the loop runs at N * II plus its depth; the weight loading before it is serial
     * (one vreg) */
    int64_t depth = (int64_t)l->stages * l->ii;
    CHECK(cycles <= (int64_t)N * l->ii + depth + 64 * 6 + 40);
  }
  tile_emu_free(e);
  tile_mir_code_free(&code);
  tile_mir_free(&m);
}

/* A double-buffered copy: each iteration stores the source and slot addresses into the
 * one descriptor, starts the DMA into slot (i mod 2), waits for it, and reads the slot.
 * The modulo scheduler moves the DMA iterations ahead of its wait (est_cycles), bounded
 * by the two slots. */
TEST(sched_modulo, double_buffered_dma_pipelines) {
  TileTarget t;
  REQUIRE(sfx_target("tiny", &t));
  TileMir m;
  tile_mir_init(&m, &t);
  const int N = 24;
  int32_t src = tile_mir_buffer(&m, "src", TILE_SPACE_HBM, (int64_t)TILE * N, 1, 64);
  float *sv = malloc((size_t)TILE * N);
  for (int k = 0; k < N; k++)
    for (int i = 0; i < 1024; i++) sv[k * 1024 + i] = ramp(k, i);
  tile_mir_data(&m, src, sv, (int64_t)TILE * N);
  free(sv);
  int32_t buf = vmem(&m, "stage", 1, 2, NULL), out = vmem(&m, "out", N, 1, NULL);
  int32_t desc = tile_mir_buffer(&m, "desc", TILE_SPACE_SMEM, 64, 1, 4);
  int32_t sem = tile_mir_sem(&m);
  int32_t w[16] = {0, 1, 0, 0, 0, 0, TILE, 1, 1, 0, 0, 0, 0, -1, sem, -1};
  tile_mir_data(&m, desc, w, sizeof w);
  tile_mir_reloc(&m, desc, 8, src, 0, false);
  tile_mir_reloc(&m, desc, 16, buf, 0, false);
  int32_t d = tile_mir_sreg(&m), sa = tile_mir_sreg(&m), da = tile_mir_sreg(&m), ua = tile_mir_sreg(&m);
  int32_t sum = tile_mir_sreg(&m), oa = tile_mir_sreg(&m), st = tile_mir_sreg(&m), sum2 = tile_mir_sreg(&m);
  int32_t x = tile_mir_vreg(&m), y = tile_mir_vreg(&m);
  tile_mir_add(&m, sfx_addr(d, desc, 0));
  tile_mir_add(&m, sfx_addr(sa, src, 0));
  tile_mir_add(&m, sfx_addr(da, buf, 0));
  tile_mir_add(&m, sfx_addr(ua, buf, 0));
  tile_mir_add(&m, sfx_addr(sum, buf, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_ADD, sum, sum, da, 0, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_ADDI, sum, sum, 0, 0, TILE)); /* slot0 + slot1 */
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_MOV, sum2, sum, 0, 0, 0));
  tile_mir_add(&m, sfx_addr(oa, out, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_LI, st, 0, 0, 0, ROW));
  tile_mir_loop_begin(&m, N, TILE_MIR_PIPELINE);
  /* the DMA's stream: source and slot addresses into the descriptor, then start */
  tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_SST, sa, d, 0, 0, 8), desc, TILE_MIR_WRITE, 0));
  tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_SST, da, d, 0, 0, 16), desc, TILE_MIR_WRITE, 0));
  TileMirInst dma = tile_mir_inst(TILE_MOP_DMA, 0, d, 0, 0, 0);
  dma.est_cycles = (int32_t)tile_target_xfer_cycles(&t, TILE, t.hbm_bw) + t.dma_issue_cycles;
  tile_mir_mem(&dma, desc, TILE_MIR_READ, 0);
  tile_mir_mem(&dma, src, TILE_MIR_READ, 0);
  tile_mir_mem(&dma, buf, TILE_MIR_WRITE, 0);
  tile_mir_add(&m, dma);
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_ADDI, sa, sa, 0, 0, TILE));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_SUB, da, sum, da, 0, 0)); /* toggles slots */
  /* the consumer's stream */
  TileMirInst wt = tile_mir_inst(TILE_MOP_WAIT, 0, 0, 0, sem, 1);
  tile_mir_mem(&wt, buf, TILE_MIR_WRITE, 0);
  tile_mir_mem(&wt, src, TILE_MIR_WRITE, 0);
  tile_mir_add(&m, wt);
  tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_VLD, x, ua, st, 0, 0), buf, TILE_MIR_READ, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_VADDF, y, x, x, 0, 0));
  tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_VST, y, oa, st, 0, 0), out, TILE_MIR_WRITE, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_SUB, ua, sum2, ua, 0, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_ADDI, oa, oa, 0, 0, TILE));
  tile_mir_loop_end(&m);

  TileMirCode code;
  TileEmu *e = NULL;
  int64_t cycles = sfx_schedule_run(&m, &code, TILE_EMU_FUNCTIONAL, &e);
  CHECK(cycles > 0);
  REQUIRE(code.nloops == 1);
  const struct TileMirLoopInfo *l = &code.loops[0];
  fprintf(stderr, "dma loop: II %d, stages %d, res_mii %d, rec_mii %d, %lld cycles for %d tiles\n",
          (int)l->ii, (int)l->stages, (int)l->res_mii, (int)l->rec_mii, (long long)cycles, N);
  CHECK(l->stages >= 2);
  if (cycles > 0) {
    bool ok = true;
    float r[1024];
    for (int k = 0; k < N; k++) {
      tile_emu_read_memory(e, 0, TILE_SPACE_VMEM, m.bufs[out].addr + (int64_t)k * TILE, r, TILE);
      for (int i = 0; i < 1024; i++) ok &= r[i] == 2 * ramp(k, i);
    }
    CHECK(ok);
    /* bandwidth bound: one tile per xfer time, plus the first tile's latency */
    int64_t xfer = tile_target_xfer_cycles(&t, TILE, t.hbm_bw);
    CHECK(cycles <= (int64_t)(N + 2) * xfer + 32);
  }
  tile_emu_free(e);
  tile_mir_code_free(&code);
  tile_mir_free(&m);
}

/* Two vexp (trans latency 8 on v5e-like) summed by one vadd.f, every vreg reused each
 * iteration: each vexp's consumer must issue exactly lat after it (flow lat; the next
 * iteration's redefinition is an anti edge back, latency 0, distance 1), so at II = 8
 * the vadd would share the row of both vexps, which fill the row's two vector slots.
 * II 8 cannot work although RecMII is 8 (the vexps must share a row, and so would the
 * vadd); the scheduler must give up on it within its budget and settle at II 9, not
 * climb further, with a hazard-free, correct loop. */
static float small(int t, int i) { return (float)((t * 3 + i) % 13) * 0.25f - 1.5f; }
static float other(int t, int i) { return (float)((t + i * 7) % 11) * 0.125f - 0.5f; }

TEST(sched_modulo, pinned_trans_pair_evicts) {
  TileTarget t;
  REQUIRE(sfx_target("v5e-like", &t));
  REQUIRE(t.slots[TILE_SLOT_VECTOR] == 2);
  TileMir m;
  tile_mir_init(&m, &t);
  const int N = 24;
  int32_t ia = vmem(&m, "a", N, 1, small), ib = vmem(&m, "b", N, 1, other), out = vmem(&m, "out", N, 1, NULL);
  int32_t a = tile_mir_sreg(&m), b = tile_mir_sreg(&m), o = tile_mir_sreg(&m), st = tile_mir_sreg(&m);
  int32_t xa = tile_mir_vreg(&m), xb = tile_mir_vreg(&m), ea = tile_mir_vreg(&m), eb = tile_mir_vreg(&m),
          y = tile_mir_vreg(&m);
  tile_mir_add(&m, sfx_addr(a, ia, 0));
  tile_mir_add(&m, sfx_addr(b, ib, 0));
  tile_mir_add(&m, sfx_addr(o, out, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_LI, st, 0, 0, 0, ROW));
  tile_mir_loop_begin(&m, N, TILE_MIR_PIPELINE);
  tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_VLD, xa, a, st, 0, 0), ia, TILE_MIR_READ, 0));
  tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_VLD, xb, b, st, 0, 0), ib, TILE_MIR_READ, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_VEXP, ea, xa, 0, 0, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_VEXP, eb, xb, 0, 0, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_VADDF, y, ea, eb, 0, 0));
  tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_VST, y, o, st, 0, 0), out, TILE_MIR_WRITE, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_ADDI, a, a, 0, 0, TILE));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_ADDI, b, b, 0, 0, TILE));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_ADDI, o, o, 0, 0, TILE));
  tile_mir_loop_end(&m);
  TileMirCode code;
  TileEmu *e = NULL;
  int64_t cycles = sfx_schedule_run(&m, &code, TILE_EMU_FUNCTIONAL, &e);
  CHECK(cycles > 0);
  REQUIRE(code.nloops == 1);
  const struct TileMirLoopInfo *l = &code.loops[0];
  fprintf(stderr, "pinned vexp pair: II %d, stages %d, res_mii %d, rec_mii %d, %lld cycles for %d iterations\n",
          (int)l->ii, (int)l->stages, (int)l->res_mii, (int)l->rec_mii, (long long)cycles, N);
  CHECK_EQ(t.latency[TILE_LAT_TRANS], l->rec_mii);
  CHECK_EQ(l->rec_mii + 1, l->ii);
  CHECK(l->stages >= 2);
  if (cycles > 0) {
    bool ok = true;
    float r[1024];
    for (int k = 0; k < N; k++) {
      tile_emu_read_memory(e, 0, TILE_SPACE_VMEM, m.bufs[out].addr + (int64_t)k * TILE, r, TILE);
      for (int i = 0; i < 1024; i++) {
        float want = expf(small(k, i)) + expf(other(k, i));
        ok &= fabsf(r[i] - want) <= 1e-5f * want;
      }
    }
    CHECK(ok);
    CHECK(cycles <= (int64_t)N * l->ii + l->stages * l->ii + 16);
  }
  tile_emu_free(e);
  tile_mir_code_free(&code);
  tile_mir_free(&m);
}

/* Scheduling time: a straight-line stretch of 4000 insts and a pipelined body of 600. */
TEST(sched_modulo, scheduling_time) {
  TileTarget t;
  REQUIRE(sfx_target("v5e-like", &t));
  for (int pipelined = 0; pipelined < 2; pipelined++) {
    TileMir m;
    tile_mir_init(&m, &t);
    int32_t buf[4];
    for (int i = 0; i < 4; i++) buf[i] = vmem(&m, "b", 4, 2, NULL);
    int32_t s[8], v[24];
    for (int i = 0; i < 8; i++) s[i] = tile_mir_sreg(&m);
    for (int i = 0; i < 24; i++) v[i] = tile_mir_vreg(&m);
    for (int i = 0; i < 8; i++) tile_mir_add(&m, tile_mir_inst(TILE_MOP_LI, s[i], 0, 0, 0, 64));
    for (int i = 0; i < 24; i++) tile_mir_add(&m, tile_mir_inst(TILE_MOP_VLI, v[i], 0, 0, 0, 0));
    int n = pipelined ? 600 : 4000;
    if (pipelined) tile_mir_loop_begin(&m, 100, TILE_MIR_PIPELINE);
    uint32_t seed = 99;
    for (int i = 0; i < n; i++) {
      seed = seed * 1103515245u + 12345u;
      int kind = (seed >> 16) % 5, r1 = (seed >> 8) % 24, r2 = (seed >> 3) % 24;
      int sa = (seed >> 12) % 8, bb = (seed >> 24) % 4, ofs = (seed >> 28) % 2;
      switch (kind) {
      case 0: tile_mir_add(&m, tile_mir_inst(TILE_MOP_VADDF, v[r1], v[r2], v[(r1 + r2) % 24], 0, 0)); break;
      case 1: tile_mir_add(&m, tile_mir_inst(TILE_MOP_VMULF, v[r1], v[r2], v[r2], 0, 0)); break;
      case 2: tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_VLD, v[r1], s[sa], s[0], 0, 0), buf[bb], TILE_MIR_READ, ofs)); break;
      case 3: tile_mir_add(&m, sfx_mem(tile_mir_inst(TILE_MOP_VST, v[r1], s[sa], s[0], 0, 0), buf[bb], TILE_MIR_WRITE, ofs)); break;
      default: tile_mir_add(&m, tile_mir_inst(TILE_MOP_ADDI, s[sa], s[sa], 0, 0, 0)); break;
      }
    }
    if (pipelined) tile_mir_loop_end(&m);
    TileDiag d;
    tile_diag_init(&d, stderr, "test", NULL, 0);
    TileMirCode code;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    bool ok = tile_mir_schedule(&m, &code, &d);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    CHECK(ok);
    fprintf(stderr, "%s of %d insts: %.2f ms, %d bundles", pipelined ? "pipelined body" : "stretch", n, ms,
            (int)code.nbundles);
    if (pipelined && code.nloops) fprintf(stderr, " (II %d, stages %d)", (int)code.loops[0].ii, (int)code.loops[0].stages);
    fprintf(stderr, "\n");
    CHECK(ms < 200); /* a debug build on a shared machine; release is far below 20 ms */
    tile_mir_code_free(&code);
    tile_mir_free(&m);
  }
}
