/* Local DMA: descriptors, exact completion cycles (engines, issue cost, VMEM bandwidth,
 * HBM processor sharing), strided copies, semaphores, and the DMA faults. Programs are
 * written in assembly (docs/isa.md); descriptors are placed with .data. */
#include "check.h"
#include "emu_fixture.h"

#define F TILE_EMU_FUNCTIONAL
#define T TILE_EMU_TIMING

/* One DMA, then wait for it. Descriptor: HBM 0 -> VMEM 8192, 4096 bytes, sem0. */
static const char *one_dma =
    ".data smem 0 i32 0, 1, 0, 0, 8192, 0, 4096, 1, 1, 0, 0, 0, 0, -1, -1, 0\n"
    ".code all\n"
    "  li s1, 0\n"
    "  dma s1\n"
    "  sem.wait sem0, 1\n"
    "  halt\n";

TEST(emu_dma, single_hbm_dma_cycles_and_data) {
  TileTarget t = fx_target(1, 1, 1, false);
  for (int mode = F; mode <= T; mode++) {
    TileEmuOptions o = fx_opts((TileEmuMode)mode, 1);
    TileEmu *e = fx_asm(&t, one_dma, &o);
    REQUIRE(e != NULL);
    uint8_t src[4096];
    for (int i = 0; i < 4096; i++) src[i] = (uint8_t)(i * 7 + 3);
    if (mode == F) CHECK(tile_emu_write_memory(e, 0, TILE_SPACE_HBM, 0, src, sizeof src));
    REQUIRE(tile_emu_run(e) == TILE_EMU_OK);
    /* issue at 1, engine busy 4 cycles: starts at 5; ceil(4096 * 1e9 / 1e11) = 41 -> 46;
     * the wait (cycle 2) passes at 46, halt at 47 */
    CHECK_EQ(48, fx_cycles(e, 0));
    TileEmuStats s;
    tile_emu_stats(e, &s);
    CHECK_EQ(44, s.chips[0].stall);
    CHECK_EQ(45, s.chips[0].busy[TILE_SLOT_DMA]);
    CHECK_EQ(4096, s.chips[0].dma_bytes);
    if (mode == F) {
      uint8_t dst[4096];
      CHECK(tile_emu_read_memory(e, 0, TILE_SPACE_VMEM, 8192, dst, sizeof dst));
      CHECK(memcmp(src, dst, sizeof dst) == 0);
    }
    tile_emu_free(e);
  }
}

/* Processor sharing of hbm_bw, simulated cycle by cycle: the reference for the
 * event-driven pool. Work is bytes x clock; each cycle the n active DMAs (in start order)
 * get hbm/n each, the first hbm mod n one more, capped by cap. */
static void ps_reference(int n, const int64_t *start, const int64_t *bytes, int64_t clock,
                         int64_t hbm, int64_t cap, int64_t *done) {
  __int128 left[8];
  for (int i = 0; i < n; i++) left[i] = (__int128)bytes[i] * clock, done[i] = -1;
  for (int64_t c = 0; c < 100000; c++) {
    int act[8], na = 0;
    for (int i = 0; i < n; i++)
      if (start[i] <= c && done[i] < 0) act[na++] = i;
    if (na == 0 && c > start[n - 1]) break;
    /* start order: by start cycle, then index */
    for (int a = 1; a < na; a++)
      for (int b = a; b > 0 && start[act[b]] < start[act[b - 1]]; b--) {
        int x = act[b];
        act[b] = act[b - 1];
        act[b - 1] = x;
      }
    for (int a = 0; a < na; a++) {
      int64_t share = hbm / na + (a < hbm % na ? 1 : 0);
      if (share > cap) share = cap;
      left[act[a]] -= share;
    }
    for (int a = 0; a < na; a++)
      if (left[act[a]] <= 0) done[act[a]] = c + 1;
  }
}

static bool has_slice(const char *trace, int64_t cycle, int64_t cycles, int64_t bytes) {
  char key[128];
  snprintf(key, sizeof key, "\"cycle\":%lld,\"cycles\":%lld,\"bytes\":%lld", (long long)cycle,
           (long long)cycles, (long long)bytes);
  return strstr(trace, key) != NULL;
}

TEST(emu_dma, overlapping_hbm_dmas_share_bandwidth) {
  const char *src =
      ".data smem 0 i32 0, 1, 0, 0, 0, 0, 4096, 1, 1, 0, 0, 0, 0, -1, -1, 0\n"
      ".data smem 64 i32 0, 1, 8192, 0, 8192, 0, 4096, 1, 1, 0, 0, 0, 0, -1, -1, 1\n"
      ".code all\n"
      "  li s1, 0 ; li s2, 64\n"
      "  dma s1\n"
      "  dma s2\n"
      "  sem.wait sem0, 1\n"
      "  sem.wait sem1, 1\n"
      "  halt\n";
  TileTarget t = fx_target(1, 1, 1, false);
  int64_t start[2] = {5, 6}, bytes[2] = {4096, 4096}, done[2];
  ps_reference(2, start, bytes, t.clock_hz, t.hbm_bw, t.vmem_bw, done);
  /* by hand: A alone for a cycle (1e11 units), then 5e10 each: A needs 80 more cycles
   * (86), B has 96e9 left then and finishes alone in one cycle (87) */
  CHECK_EQ(86, done[0]);
  CHECK_EQ(87, done[1]);
  TileEmuOptions o = fx_opts(F, 1);
  o.trace = true;
  TileEmu *e = fx_asm(&t, src, &o);
  REQUIRE(e != NULL);
  REQUIRE(tile_emu_run(e) == TILE_EMU_OK);
  CHECK_EQ(89, fx_cycles(e, 0)); /* waits pass at 86 and 87, halt at 88 */
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  CHECK(tile_emu_write_trace(e, f));
  fclose(f);
  CHECK(has_slice(buf, 1, 85, 4096));
  CHECK(has_slice(buf, 2, 85, 4096));
  free(buf);
  tile_emu_free(e);
}

TEST(emu_dma, three_hbm_dmas_odd_bandwidth) {
  /* hbm_bw odd: the first DMA in start order gets the extra unit each cycle */
  const char *src =
      ".data smem 0 i32 0, 1, 0, 0, 0, 0, 1000, 1, 1, 0, 0, 0, 0, -1, -1, 0\n"
      ".data smem 64 i32 0, 1, 0, 0, 4096, 0, 5000, 1, 1, 0, 0, 0, 0, -1, -1, 0\n"
      ".data smem 128 i32 0, 2, 0, 0, 0, 0, 3000, 1, 1, 0, 0, 0, 0, -1, -1, 0\n"
      ".code all\n"
      "  li s1, 0 ; li s2, 64\n"
      "  dma s1 ; li s3, 128\n"
      "  dma s2\n"
      "  dma s3\n"
      "  sem.wait sem0, 3\n"
      "  halt\n";
  TileTarget t = fx_target(1, 1, 1, false);
  t.hbm_bw = 100000000003LL;
  /* engines: A at 1 -> engine 0 (start 5), B at 2 -> engine 1 (6), C at 3 waits for
   * engine 0 (start 9) */
  int64_t start[3] = {5, 6, 9}, bytes[3] = {1000, 5000, 3000}, done[3];
  ps_reference(3, start, bytes, t.clock_hz, t.hbm_bw, t.vmem_bw, done);
  TileEmuOptions o = fx_opts(T, 1);
  o.trace = true;
  TileEmu *e = fx_asm(&t, src, &o);
  REQUIRE(e != NULL);
  REQUIRE(tile_emu_run(e) == TILE_EMU_OK);
  int64_t last = done[0] > done[1] ? done[0] : done[1];
  if (done[2] > last) last = done[2];
  CHECK_EQ(last + 2, fx_cycles(e, 0));
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  CHECK(tile_emu_write_trace(e, f));
  fclose(f);
  CHECK(has_slice(buf, 1, done[0] - 1, 1000));
  CHECK(has_slice(buf, 2, done[1] - 2, 5000));
  CHECK(has_slice(buf, 3, done[2] - 3, 3000));
  free(buf);
  tile_emu_free(e);
}

TEST(emu_dma, vmem_copy_and_strided_gather) {
  /* 2 planes x 3 rows x 16 bytes from HBM 100 (rows 64 apart, planes 1024) to VMEM 0
   * packed, rows written downwards (dst stride -16 from 32) */
  const char *src =
      ".data smem 0 i32 0, 1, 100, 0, 32, 0, 16, 3, 2, 64, 1024, -16, 48, -1, -1, 0\n"
      ".data smem 64 i32 1, 1, 0, 0, 200000, 0, 8000, 1, 1, 0, 0, 0, 0, -1, 1, 2\n"
      ".code all\n"
      "  li s1, 0 ; li s2, 64\n"
      "  dma s1\n"
      "  sem.wait sem0, 1\n"
      "  dma s2\n"
      "  sem.wait sem2, 1\n"
      "  sem.wait sem1, 1\n"
      "  halt\n";
  TileTarget t = fx_target(1, 1, 1, false);
  TileEmuOptions o = fx_opts(F, 1);
  TileEmu *e = fx_asm(&t, src, &o);
  REQUIRE(e != NULL);
  uint8_t hbm[3000];
  for (int i = 0; i < 3000; i++) hbm[i] = (uint8_t)(i * 13 + 1);
  CHECK(tile_emu_write_memory(e, 0, TILE_SPACE_HBM, 0, hbm, sizeof hbm));
  REQUIRE(tile_emu_run(e) == TILE_EMU_OK);
  uint8_t got[96], want[96];
  for (int p = 0; p < 2; p++)
    for (int r = 0; r < 3; r++)
      memcpy(want + 32 + p * 48 - r * 16, hbm + 100 + p * 1024 + r * 64, 16);
  CHECK(tile_emu_read_memory(e, 0, TILE_SPACE_VMEM, 0, got, sizeof got));
  CHECK(memcmp(want, got, sizeof got) == 0);
  uint8_t copy[96];
  CHECK(tile_emu_read_memory(e, 0, TILE_SPACE_VMEM, 200000, copy, sizeof copy));
  CHECK(memcmp(want, copy, sizeof copy) == 0);
  /* first DMA: 96 bytes from HBM, issue 1, start 5, ceil(96e9 / 1e11) = 1 -> 6; the wait
   * passes at 6; the VMEM copy issues at 7 (engine 1, free), starts at 11, takes
   * ceil(8000e9 / 1e12) = 8 -> 19; waits at 19 and 20, halt at 21 */
  CHECK_EQ(22, fx_cycles(e, 0));
  tile_emu_free(e);
}

TEST(emu_dma, smem_copies_move_in_timing_mode) {
  const char *src =
      ".data smem 0 i32 2, 2, 256, 0, 512, 0, 8, 1, 1, 0, 0, 0, 0, -1, -1, 0\n"
      ".data smem 256 i32 41, 1\n"
      ".code all\n"
      "  li s1, 0\n"
      "  dma s1\n"
      "  sem.wait sem0, 1\n"
      "  sld s2, s0, 512 ; sld s3, s0, 516\n"
      "  nop\n"
      "  add s4, s2, s3\n"
      "  halt\n";
  TileTarget t = fx_target(1, 1, 1, false);
  TileEmuOptions o = fx_opts(T, 1);
  TileEmu *e = fx_asm(&t, src, &o);
  REQUIRE(e != NULL);
  REQUIRE(tile_emu_run(e) == TILE_EMU_OK);
  CHECK_EQ(42, tile_emu_sreg(e, 0, 4));
  tile_emu_free(e);
}

static const char *fault_of(const char *src, TileTarget t) {
  static char msg[512];
  TileEmuOptions o = fx_opts(T, 1);
  TileEmu *e = fx_asm(&t, src, &o);
  if (!e) return "(no emulator)";
  TileEmuStatus st = tile_emu_run(e);
  snprintf(msg, sizeof msg, "%s", st == TILE_EMU_FAULTED ? tile_emu_fault(e)->message : "(ran)");
  tile_emu_free(e);
  return msg;
}

TEST(emu_dma, faults) {
  TileTarget t = fx_target(1, 1, 1, false);
  CHECK_STREQ("chip 0, pc 1, cycle 1: dma source touches hbm bytes 67108000..67109023, outside "
              "the 67108864 bytes of hbm",
              fault_of(".data smem 0 i32 0, 1, 67108000, 0, 0, 0, 1024, 1, 1, 0, 0, 0, 0, -1, "
                       "-1, 0\n.code all\n li s1, 0\n dma s1\n halt\n",
                       t));
  CHECK_STREQ("chip 0, pc 1, cycle 1: dma descriptor at SMEM 0 names peer chip 5; the torus has "
              "chips 0..0 (-1 is this chip)",
              fault_of(".data smem 0 i32 0, 1, 0, 0, 0, 0, 1024, 1, 1, 0, 0, 0, 0, 5, -1, 0\n"
                       ".code all\n li s1, 0\n dma s1\n halt\n",
                       t));
  CHECK_STREQ("chip 0, pc 1, cycle 1: dma descriptor at SMEM 0 has counts 1 x 0 x 16; each must "
              "be at least 1",
              fault_of(".data smem 0 i32 0, 1, 0, 0, 0, 0, 16, 0, 1, 0, 0, 0, 0, -1, -1, 0\n"
                       ".code all\n li s1, 0\n dma s1\n halt\n",
                       t));
  CHECK_STREQ("chip 0, pc 5, cycle 5: dma would be DMA number 5 in flight; the target allows 4 "
              "(dma.outstanding)",
              fault_of(".data smem 0 i32 0, 1, 0, 0, 0, 0, 100000, 1, 1, 0, 0, 0, 0, -1, -1, 0\n"
                       ".code all\n li s1, 0\n dma s1\n dma s1\n dma s1\n dma s1\n dma s1\n halt\n",
                       t));
  TileTarget slow = t;
  slow.latency[TILE_LAT_VSTORE] = 10;
  CHECK_STREQ("chip 0, pc 2, cycle 2: dma reads vmem bytes from cycle 6 on, before the vst of "
              "cycle 1 (latency 10) lands them at cycle 11",
              fault_of(".data smem 0 i32 1, 0, 1024, 0, 0, 0, 64, 1, 1, 0, 0, 0, 0, -1, -1, 0\n"
                       ".code all\n li s1, 0 ; li s2, 512\n vst v0, s2, s2, 0\n dma s1\n halt\n",
                       slow));
}
