/* The chip core: issue timing, the scalar ALU, branches, loops, halting, and the
 * register hazards, with exact cycle counts. */
#include "check.h"
#include "emu_fixture.h"

#define F TILE_EMU_FUNCTIONAL
#define T TILE_EMU_TIMING

static TileEmu *run_prog(const FxProg *p, TileEmuMode mode, TileEmuStatus want) {
  TileTarget t = fx_target(1, 1, 1, false);
  TileEmuOptions o = fx_opts(mode, 1);
  TileEmu *e = fx_emu(&t, p, &o);
  if (!e) return NULL;
  TileEmuStatus st = tile_emu_run(e);
  if (st != want) {
    fprintf(stderr, "status %d: %s%s\n", st, tile_emu_fault(e)->message, tile_emu_error(e));
    tile_emu_free(e);
    return NULL;
  }
  return e;
}

TEST(emu_core, straight_line_cycles) {
  FxProg p = {0};
  fx_op(&p, 0, TILE_MOP_LI, 1, 0, 0, 0, 5);        /* s1 lands at 1 */
  fx_op(&p, 1, TILE_MOP_ADDI, 2, 1, 0, 0, 3);      /* reads s1 at 1: ready */
  fx_op(&p, 2, TILE_MOP_MULI, 3, 2, 0, 0, -7);
  fx_op(&p, 3, TILE_MOP_HALT, 0, 0, 0, 0, 0);      /* halt at 3: done at 4 */
  for (int mode = F; mode <= T; mode++) {
    TileEmu *e = run_prog(&p, (TileEmuMode)mode, TILE_EMU_OK);
    REQUIRE(e != NULL);
    CHECK_EQ(8, tile_emu_sreg(e, 0, 2));
    CHECK_EQ(-56, tile_emu_sreg(e, 0, 3));
    CHECK_EQ(4, fx_cycles(e, 0));
    TileEmuStats s;
    tile_emu_stats(e, &s);
    CHECK_EQ(4, s.chips[0].bundles);
    CHECK_EQ(3, s.chips[0].busy[TILE_SLOT_SCALAR]);
    CHECK_EQ(1, s.chips[0].busy[TILE_SLOT_BRANCH]);
    CHECK_EQ(8, s.chips[0].capacity[TILE_SLOT_SCALAR]);
    tile_emu_free(e);
  }
}

TEST(emu_core, halt_waits_for_pending_writes) {
  FxProg p = {0};
  fx_op(&p, 0, TILE_MOP_SLD, 1, 0, 0, 0, 0); /* lands at 2 */
  fx_op(&p, 0, TILE_MOP_HALT, 0, 0, 0, 0, 0); /* done at max(1, 2) */
  TileEmu *e = run_prog(&p, F, TILE_EMU_OK);
  REQUIRE(e != NULL);
  CHECK_EQ(2, fx_cycles(e, 0));
  tile_emu_free(e);
}

TEST(emu_core, scalar_alu_semantics) {
  FxProg p = {0};
  fx_op(&p, 0, TILE_MOP_LI, 1, 0, 0, 0, -8);
  fx_op(&p, 0, TILE_MOP_LI, 2, 0, 0, 0, 3);
  fx_op(&p, 1, TILE_MOP_SRAI, 3, 1, 0, 0, 1);   /* -4 */
  fx_op(&p, 1, TILE_MOP_SHRI, 4, 1, 0, 0, 28);  /* 0xfffffff8 >> 28 = 15 */
  fx_op(&p, 2, TILE_MOP_SLT, 5, 1, 2, 0, 0);    /* -8 < 3 */
  fx_op(&p, 2, TILE_MOP_MIN, 6, 1, 2, 0, 0);
  fx_op(&p, 3, TILE_MOP_MAX, 7, 1, 2, 0, 0);
  fx_op(&p, 3, TILE_MOP_SHLI, 8, 2, 0, 0, 33);  /* shift amounts are taken mod 32 */
  fx_op(&p, 4, TILE_MOP_LI, 9, 0, 0, 0, INT32_MAX);
  fx_op(&p, 5, TILE_MOP_ADDI, 10, 9, 0, 0, 1);  /* wraps */
  fx_op(&p, 5, TILE_MOP_SEQ, 11, 2, 2, 0, 0);
  fx_op(&p, 6, TILE_MOP_XOR, 12, 1, 2, 0, 0);
  fx_op(&p, 6, TILE_MOP_CHIPID, 13, 0, 0, 0, 0);
  fx_op(&p, 7, TILE_MOP_HALT, 0, 0, 0, 0, 0);
  TileEmu *e = run_prog(&p, T, TILE_EMU_OK);
  REQUIRE(e != NULL);
  CHECK_EQ(-4, tile_emu_sreg(e, 0, 3));
  CHECK_EQ(15, tile_emu_sreg(e, 0, 4));
  CHECK_EQ(1, tile_emu_sreg(e, 0, 5));
  CHECK_EQ(-8, tile_emu_sreg(e, 0, 6));
  CHECK_EQ(3, tile_emu_sreg(e, 0, 7));
  CHECK_EQ(6, tile_emu_sreg(e, 0, 8));
  CHECK_EQ(INT32_MIN, tile_emu_sreg(e, 0, 10));
  CHECK_EQ(1, tile_emu_sreg(e, 0, 11));
  CHECK_EQ(-8 ^ 3, tile_emu_sreg(e, 0, 12));
  CHECK_EQ(0, tile_emu_sreg(e, 0, 13));
  tile_emu_free(e);
}

TEST(emu_core, same_bundle_reads_see_old_values) {
  FxProg p = {0};
  fx_op(&p, 0, TILE_MOP_LI, 1, 0, 0, 0, 10);
  fx_op(&p, 2, TILE_MOP_LI, 1, 0, 0, 0, 20);       /* writes s1 ... */
  fx_op(&p, 2, TILE_MOP_ADDI, 2, 1, 0, 0, 1);      /* ... which this op reads: old 10 */
  fx_op(&p, 3, TILE_MOP_BNZ, 0, 1, 0, 0, 5);       /* reads s1 = 20: taken */
  fx_op(&p, 3, TILE_MOP_LI, 1, 0, 0, 0, 0);        /* the branch still sees 20 */
  fx_op(&p, 4, TILE_MOP_HALT, 0, 0, 0, 0, 0);
  fx_op(&p, 5, TILE_MOP_LI, 3, 0, 0, 0, 1);
  fx_op(&p, 6, TILE_MOP_HALT, 0, 0, 0, 0, 0);
  TileEmu *e = run_prog(&p, F, TILE_EMU_OK);
  REQUIRE(e != NULL);
  CHECK_EQ(11, tile_emu_sreg(e, 0, 2));
  CHECK_EQ(1, tile_emu_sreg(e, 0, 3));
  CHECK_EQ(0, tile_emu_sreg(e, 0, 1));
  /* bundles at 0, 1, 2, 3 (taken: next at 5), 5, 6 -> done at 7 */
  CHECK_EQ(7, fx_cycles(e, 0));
  tile_emu_free(e);
}

TEST(emu_core, branch_loop_cycles) {
  FxProg p = {0};
  fx_op(&p, 0, TILE_MOP_LI, 1, 0, 0, 0, 3);
  fx_op(&p, 1, TILE_MOP_ADDI, 1, 1, 0, 0, -1);
  fx_op(&p, 2, TILE_MOP_BNZ, 0, 1, 0, 0, 1);
  fx_op(&p, 3, TILE_MOP_HALT, 0, 0, 0, 0, 0);
  /* 0: li; 1,2 | 4,5 | 7,8 (taken twice, 2 cycles each); halt at 9 */
  for (int mode = F; mode <= T; mode++) {
    TileEmu *e = run_prog(&p, (TileEmuMode)mode, TILE_EMU_OK);
    REQUIRE(e != NULL);
    CHECK_EQ(10, fx_cycles(e, 0));
    TileEmuStats s;
    tile_emu_stats(e, &s);
    CHECK_EQ(2, s.chips[0].branch_bubbles);
    CHECK_EQ(8, s.chips[0].bundles);
    tile_emu_free(e);
  }
}

TEST(emu_core, hardware_loops_nest_without_cost) {
  FxProg p = {0};
  fx_op(&p, 0, TILE_MOP_LOOP, 0, 0, 0, 3, 4);      /* body 1..3, 4 times */
  fx_op(&p, 1, TILE_MOP_ADDI, 1, 1, 0, 0, 1);
  fx_op(&p, 2, TILE_MOP_LOOP, 0, 0, 0, 1, 5);      /* body 3, 5 times */
  fx_op(&p, 3, TILE_MOP_ADDI, 2, 2, 0, 0, 1);
  fx_op(&p, 4, TILE_MOP_HALT, 0, 0, 0, 0, 0);
  TileEmu *e = run_prog(&p, T, TILE_EMU_OK);
  REQUIRE(e != NULL);
  CHECK_EQ(4, tile_emu_sreg(e, 0, 1));
  CHECK_EQ(20, tile_emu_sreg(e, 0, 2));
  /* 1 + 4 * (1 + 1 + 5) bundles, then the halt */
  CHECK_EQ(1 + 4 * 7 + 1, fx_cycles(e, 0));
  tile_emu_free(e);
}

TEST(emu_core, raw_hazard_message) {
  FxProg p = {0};
  fx_op(&p, 0, TILE_MOP_SLD, 1, 0, 0, 0, 16);
  fx_op(&p, 1, TILE_MOP_ADDI, 2, 1, 0, 0, 1);
  fx_op(&p, 2, TILE_MOP_HALT, 0, 0, 0, 0, 0);
  TileEmu *e = run_prog(&p, F, TILE_EMU_FAULTED);
  REQUIRE(e != NULL);
  const TileEmuFault *f = tile_emu_fault(e);
  CHECK_EQ(TILE_EMU_FAULT_HAZARD, f->kind);
  CHECK_EQ(1, f->pc);
  CHECK_EQ(1, f->cycle);
  CHECK_STREQ("chip 0, pc 1, cycle 1: s1 read by addi before its producer (sld at cycle 0, "
              "latency 2) lands at cycle 2",
              f->message);
  tile_emu_free(e);
}

TEST(emu_core, vector_raw_hazard_message) {
  FxProg p = {0};
  fx_op(&p, 0, TILE_MOP_VLD, 4, 0, 0, 0, 0);       /* lands at 3 */
  fx_op(&p, 1, TILE_MOP_VADDF, 5, 4, 4, 0, 0);
  fx_op(&p, 2, TILE_MOP_HALT, 0, 0, 0, 0, 0);
  for (int mode = F; mode <= T; mode++) {
    TileEmu *e = run_prog(&p, (TileEmuMode)mode, TILE_EMU_FAULTED);
    REQUIRE(e != NULL);
    CHECK_STREQ("chip 0, pc 1, cycle 1: v4 read by vadd.f before its producer (vld at cycle 0, "
                "latency 3) lands at cycle 3",
                tile_emu_fault(e)->message);
    tile_emu_free(e);
  }
}

TEST(emu_core, write_after_write_out_of_order) {
  FxProg p = {0};
  fx_op(&p, 0, TILE_MOP_SLD, 1, 0, 0, 0, 0);       /* lands at 2 */
  fx_op(&p, 1, TILE_MOP_LI, 1, 0, 0, 0, 7);        /* would land at 2 too */
  fx_op(&p, 2, TILE_MOP_HALT, 0, 0, 0, 0, 0);
  TileEmu *e = run_prog(&p, F, TILE_EMU_FAULTED);
  REQUIRE(e != NULL);
  CHECK_EQ(TILE_EMU_FAULT_HAZARD, tile_emu_fault(e)->kind);
  CHECK(strstr(tile_emu_fault(e)->message, "land out of order") != NULL);
  tile_emu_free(e);
}

TEST(emu_core, no_strict_reads_old_values) {
  FxProg p = {0};
  fx_op(&p, 0, TILE_MOP_LI, 1, 0, 0, 0, 5);
  fx_op(&p, 1, TILE_MOP_SST, 1, 0, 0, 0, 64);      /* SMEM[64] = 5, lands at 3 */
  fx_op(&p, 3, TILE_MOP_SLD, 2, 0, 0, 0, 64);      /* s2 = 5 at cycle 5 */
  fx_op(&p, 4, TILE_MOP_ADDI, 3, 2, 0, 0, 1);      /* too early: old s2 = 0 */
  fx_op(&p, 6, TILE_MOP_ADDI, 4, 2, 0, 0, 1);      /* in time: 6 */
  fx_op(&p, 7, TILE_MOP_HALT, 0, 0, 0, 0, 0);
  TileTarget t = fx_target(1, 1, 1, false);
  TileEmuOptions o = fx_opts(F, 1);
  o.strict = false;
  TileEmu *e = fx_emu(&t, &p, &o);
  REQUIRE(e != NULL);
  CHECK_EQ(TILE_EMU_OK, tile_emu_run(e));
  CHECK_EQ(1, tile_emu_sreg(e, 0, 3));
  CHECK_EQ(6, tile_emu_sreg(e, 0, 4));
  TileEmuStats s;
  tile_emu_stats(e, &s);
  CHECK_EQ(1, s.chips[0].hazards_ignored);
  tile_emu_free(e);
}

TEST(emu_core, store_in_flight_is_a_hazard) {
  FxProg p = {0};
  fx_op(&p, 0, TILE_MOP_LI, 1, 0, 0, 0, 5);
  fx_op(&p, 1, TILE_MOP_SST, 1, 0, 0, 0, 64);      /* lands at 3 */
  fx_op(&p, 2, TILE_MOP_SLD, 2, 0, 0, 0, 64);
  fx_op(&p, 3, TILE_MOP_HALT, 0, 0, 0, 0, 0);
  TileEmu *e = run_prog(&p, T, TILE_EMU_FAULTED);
  REQUIRE(e != NULL);
  CHECK_STREQ("chip 0, pc 2, cycle 2: sld reads smem bytes 64..67 before the sst of cycle 1 "
              "(latency 2) lands them at cycle 3",
              tile_emu_fault(e)->message);
  tile_emu_free(e);
}

TEST(emu_core, control_faults) {
  FxProg p = {0};
  fx_op(&p, 0, TILE_MOP_LI, 1, 0, 0, 0, 1);
  fx_len(&p, 2); /* no halt: control runs off the end */
  TileEmu *e = run_prog(&p, F, TILE_EMU_FAULTED);
  REQUIRE(e != NULL);
  CHECK_EQ(TILE_EMU_FAULT_BAD_PC, tile_emu_fault(e)->kind);
  CHECK_STREQ("chip 0, pc 2, cycle 2: control ran past the program's last bundle (1) without a "
              "halt",
              tile_emu_fault(e)->message);
  tile_emu_free(e);

  FxProg q = {0};
  fx_op(&q, 0, TILE_MOP_LOOP, 0, 0, 0, 2, 3);
  fx_op(&q, 1, TILE_MOP_JMP, 0, 0, 0, 0, 4);  /* leaves the loop body 1..2 */
  fx_op(&q, 4, TILE_MOP_HALT, 0, 0, 0, 0, 0);
  e = run_prog(&q, T, TILE_EMU_FAULTED);
  REQUIRE(e != NULL);
  CHECK(strstr(tile_emu_fault(e)->message, "leaves the body (bundles 1..2)") != NULL);
  tile_emu_free(e);
}

TEST(emu_core, runaway_stops_at_the_watchdog) {
  FxProg p = {0};
  fx_op(&p, 0, TILE_MOP_ADDI, 1, 1, 0, 0, 1);
  fx_op(&p, 1, TILE_MOP_JMP, 0, 0, 0, 0, 0);
  TileTarget t = fx_target(1, 1, 1, false);
  TileEmuOptions o = fx_opts(T, 1);
  o.watchdog = 1000;
  TileEmu *e = fx_emu(&t, &p, &o);
  REQUIRE(e != NULL);
  CHECK_EQ(TILE_EMU_FAULTED, tile_emu_run(e));
  CHECK_EQ(TILE_EMU_FAULT_RUNAWAY, tile_emu_fault(e)->kind);
  CHECK_EQ(1000, tile_emu_fault(e)->cycle);
  /* 3 cycles per iteration: 0,1 | 3,4 | ... the 334th addi issues at 999 */
  CHECK_EQ(334, tile_emu_sreg(e, 0, 1));
  tile_emu_free(e);
}

TEST(emu_core, deadlock_reports_every_chip) {
  FxProg p = {0};
  fx_op(&p, 0, TILE_MOP_SIGNAL, 0, 0, 0, 2, 1);
  fx_op(&p, 3, TILE_MOP_WAIT, 0, 0, 0, 2, 1);      /* takes the signal */
  fx_op(&p, 4, TILE_MOP_WAIT, 0, 0, 0, 3, 2);      /* never signalled */
  fx_op(&p, 5, TILE_MOP_HALT, 0, 0, 0, 0, 0);
  TileEmu *e = run_prog(&p, F, TILE_EMU_FAULTED);
  REQUIRE(e != NULL);
  const TileEmuFault *f = tile_emu_fault(e);
  CHECK_EQ(TILE_EMU_FAULT_DEADLOCK, f->kind);
  CHECK_EQ(4, f->pc);
  CHECK_EQ(4, f->cycle);
  CHECK(strstr(f->message, "chip 0: pc 4, waiting since cycle 4 for sem3 >= 2 (it is 0)") != NULL);
  tile_emu_free(e);
}

TEST(emu_core, create_rejects_bad_code) {
  TileTarget t = fx_target(1, 1, 1, false);
  TileEmuOptions o = fx_opts(F, 1);
  FxProg p = {0};
  fx_op(&p, 0, TILE_MOP_JMP, 0, 0, 0, 0, 9);       /* past the end */
  TileObjCode code = {TILE_OBJ_ALL_CHIPS, 1, p.b};
  TileObject obj = {.ncode = 1, .code = &code};
  TileDiag d;
  tile_diag_init(&d, NULL, "test", NULL, 0);
  CHECK(tile_emu_create(&obj, &t, &o, &d) == NULL);
  CHECK(strstr(d.last, "targets bundle 9") != NULL);

  FxProg q = {0};
  fx_op(&q, 0, TILE_MOP_ADDI, 40, 1, 0, 0, 1);     /* s40 on a machine of 32 */
  code.bundles = q.b;
  tile_diag_init(&d, NULL, "test", NULL, 0);
  CHECK(tile_emu_create(&obj, &t, &o, &d) == NULL);
  CHECK(strstr(d.last, "s40") != NULL);
}
