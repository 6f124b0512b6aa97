/* Several chips: remote DMAs and signals over the torus with exact delivery cycles, link
 * arbitration, bytes per link, and results, statistics and traces that are identical for
 * any number of host threads. */
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "emu_fixture.h"

#define F TILE_EMU_FUNCTIONAL
#define T TILE_EMU_TIMING

/* Every chip sends 1000 bytes of its HBM to the next chip of a ring and waits for its
 * own copy to land (sem1) and for the one from the previous chip (sem0). */
static const char *ring =
    ".data smem 0 i32 0, 1, 0, 0, 8192, 0, 1000, 1, 1, 0, 0, 0, 0, 0, 1, 0\n"
    ".code all\n"
    "  chipid s5 ; li s7, 3\n"
    "  addi s6, s5, 1\n"
    "  and s6, s6, s7\n"
    "  sst s6, s0, 52\n" /* the descriptor's peer word */
    "  nop\n"
    "  li s1, 0\n"
    "  dma s1\n"
    "  sem.wait sem0, 1\n"
    "  sem.wait sem1, 1\n"
    "  halt\n";

TEST(emu_torus, ring_exact_cycles_and_data) {
  TileTarget t = fx_target(4, 1, 1, true);
  for (int mode = F; mode <= T; mode++) {
    TileEmuOptions o = fx_opts((TileEmuMode)mode, 2);
    TileEmu *e = fx_asm(&t, ring, &o);
    REQUIRE(e != NULL);
    uint8_t data[4][1000];
    for (int c = 0; c < 4; c++) {
      for (int i = 0; i < 1000; i++) data[c][i] = (uint8_t)(c * 31 + i);
      if (mode == F) CHECK(tile_emu_write_memory(e, c, TILE_SPACE_HBM, 0, data[c], 1000));
    }
    REQUIRE(tile_emu_run(e) == TILE_EMU_OK);
    TileEmuStats s;
    tile_emu_stats(e, &s);
    /* dma at 6 (the descriptor's store lands at 5), starts at 10; one hop: 10 + 50 + 100 */
    for (int c = 0; c < 4; c++) CHECK_EQ(163, s.chips[c].cycles);
    CHECK_EQ(163, s.cycles);
    CHECK_EQ(8, s.nlinks); /* 4 chips x 2 directions */
    for (int l = 0; l < s.nlinks; l++) {
      const TileEmuLinkStats *ls = &s.links[l];
      CHECK_EQ(ls->dir > 0 ? 1000 : 0, ls->bytes);
      CHECK_EQ(ls->dir > 0 ? 100 : 0, ls->busy);
      CHECK_EQ((ls->chip + 4 + ls->dir) % 4, ls->peer);
    }
    if (mode == F)
      for (int c = 0; c < 4; c++) {
        uint8_t got[1000];
        CHECK(tile_emu_read_memory(e, (c + 1) % 4, TILE_SPACE_VMEM, 8192, got, 1000));
        CHECK(memcmp(got, data[c], 1000) == 0);
      }
    tile_emu_free(e);
  }
}

TEST(emu_torus, shared_link_is_served_in_arrival_order) {
  const char *src =
      ".data smem 0 i32 0, 1, 0, 0, 8192, 0, 1000, 1, 1, 0, 0, 0, 0, 2, 1, 0\n"
      ".data smem 64 i32 0, 1, 0, 0, 16384, 0, 1000, 1, 1, 0, 0, 0, 0, 2, 1, 0\n"
      ".code chip 0\n  li s1, 0\n  dma s1\n  sem.wait sem1, 1\n  halt\n"
      ".code chip 1\n  li s1, 64\n  dma s1\n  sem.wait sem1, 1\n  halt\n"
      ".code chip 2\n  sem.wait sem0, 2\n  halt\n"
      ".code chip 3\n  halt\n";
  TileTarget t = fx_target(4, 1, 1, false);
  TileEmuOptions o = fx_opts(T, 1);
  TileEmu *e = fx_asm(&t, src, &o);
  REQUIRE(e != NULL);
  REQUIRE(tile_emu_run(e) == TILE_EMU_OK);
  TileEmuStats s;
  tile_emu_stats(e, &s);
  /* both start at 5. Chip 1's transfer takes link 1->2 at 5 and lands at 5 + 50 + 100;
   * chip 0's reaches that link at 55, waits for it until 105, lands at 105 + 50 + 100 */
  CHECK_EQ(257, s.chips[0].cycles);
  CHECK_EQ(157, s.chips[1].cycles);
  CHECK_EQ(257, s.chips[2].cycles);
  CHECK_EQ(1, s.chips[3].cycles);
  CHECK_EQ(6, s.nlinks); /* a line of 4: 3 links each way */
  for (int l = 0; l < s.nlinks; l++) {
    const TileEmuLinkStats *ls = &s.links[l];
    int64_t want = ls->dir < 0 ? 0 : ls->chip == 0 ? 1000 : ls->chip == 1 ? 2000 : 0;
    CHECK_EQ(want, ls->bytes);
    CHECK_EQ(want / 10, ls->busy);
  }
  tile_emu_free(e);
}

TEST(emu_torus, remote_signals_take_the_short_way) {
  const char *src = ".code chip 0\n"
                    "  li s1, 2 ; li s2, 3\n"
                    "  sem.signal.r sem4, s1, 1\n"
                    "  sem.signal.r sem4, s2, 1\n"
                    "  halt\n"
                    ".code chip 2\n  sem.wait sem4, 1\n  halt\n"
                    ".code chip 3\n  sem.wait sem4, 1\n  halt\n"
                    ".code all\n  halt\n";
  TileTarget t = fx_target(5, 1, 1, true);
  TileEmuOptions o = fx_opts(F, 3);
  TileEmu *e = fx_asm(&t, src, &o);
  REQUIRE(e != NULL);
  REQUIRE(tile_emu_run(e) == TILE_EMU_OK);
  /* 0 -> 2 goes + over 2 hops (sent at 1, lands at 101); 0 -> 3 goes - over 2 hops
   * (sent at 2, lands at 102) */
  CHECK_EQ(103, fx_cycles(e, 2));
  CHECK_EQ(104, fx_cycles(e, 3));
  TileEmuStats s;
  tile_emu_stats(e, &s);
  int plus01 = 0, minus04 = 0;
  for (int l = 0; l < s.nlinks; l++) {
    plus01 += s.links[l].chip == 0 && s.links[l].dir > 0 ? (int)s.links[l].transfers : 0;
    minus04 += s.links[l].chip == 0 && s.links[l].dir < 0 ? (int)s.links[l].transfers : 0;
  }
  CHECK_EQ(1, plus01);
  CHECK_EQ(1, minus04);
  CHECK_EQ(2, s.chips[0].signals_sent);
  tile_emu_free(e);
}

/* All-to-all on a 2x2x2 torus: every chip sends one DMA of its own size to every other
 * chip, at most three in flight, then waits for the seven that come to it. */
static char *all_to_all_source(void) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  for (int c = 0; c < 8; c++) {
    int k = 0;
    for (int p = 0; p < 8; p++) {
      if (p == c) continue;
      int bytes = 256 + 100 * ((c * 7 + p * 3) % 10);
      fprintf(f, ".data chip %d smem %d i32 0, 1, %d, 0, %d, 0, %d, 1, 1, 0, 0, 0, 0, %d, 1, 0\n",
              c, 64 * k, 2048 * k, 4096 * c, bytes, p);
      k++;
    }
    fprintf(f, ".code chip %d\n", c);
    for (k = 0; k < 7; k++) {
      fprintf(f, "  li s1, %d\n  dma s1\n", 64 * k);
      if (k % 3 == 2) fprintf(f, "  sem.wait sem1, 3\n");
    }
    fprintf(f, "  sem.wait sem1, 1\n  sem.wait sem0, 7\n  halt\n");
  }
  fclose(f);
  return buf;
}

typedef struct Outcome {
  TileEmuStatus status;
  TileEmuChipStats chips[8];
  TileEmuLinkStats links[48];
  uint8_t vmem[8][8 * 4096];
  char *trace;
  size_t trace_len;
} Outcome;

static void run_all_to_all(const char *src, TileEmuMode mode, int threads, Outcome *out) {
  TileTarget t = fx_target(2, 2, 2, true);
  TileEmuOptions o = fx_opts(mode, threads);
  o.trace = true;
  TileEmu *e = fx_asm(&t, src, &o);
  memset(out, 0, sizeof *out);
  if (!e) return;
  for (int c = 0; c < 8 && mode == F; c++) {
    uint8_t hbm[7 * 2048];
    for (int i = 0; i < (int)sizeof hbm; i++) hbm[i] = (uint8_t)(c * 17 + i * 3);
    tile_emu_write_memory(e, c, TILE_SPACE_HBM, 0, hbm, sizeof hbm);
  }
  out->status = tile_emu_run(e);
  TileEmuStats s;
  tile_emu_stats(e, &s);
  memcpy(out->chips, s.chips, sizeof out->chips);
  if (s.nlinks <= 48) memcpy(out->links, s.links, (size_t)s.nlinks * sizeof *s.links);
  for (int c = 0; c < 8 && mode == F; c++)
    tile_emu_read_memory(e, c, TILE_SPACE_VMEM, 0, out->vmem[c], sizeof out->vmem[c]);
  FILE *f = open_memstream(&out->trace, &out->trace_len);
  tile_emu_write_trace(e, f);
  fclose(f);
  tile_emu_free(e);
}

TEST(emu_torus, identical_for_any_thread_count) {
  char *src = all_to_all_source();
  static Outcome one, other;
  run_all_to_all(src, F, 1, &one);
  REQUIRE(one.status == TILE_EMU_OK);
  int64_t bytes = 0;
  for (int c = 0; c < 8; c++) bytes += one.chips[c].bytes_received;
  CHECK(bytes > 7 * 8 * 256);
  for (int threads = 2; threads <= 8; threads *= 2) {
    run_all_to_all(src, F, threads, &other);
    CHECK_EQ(TILE_EMU_OK, other.status);
    CHECK(memcmp(one.chips, other.chips, sizeof one.chips) == 0);
    CHECK(memcmp(one.links, other.links, sizeof one.links) == 0);
    CHECK(memcmp(one.vmem, other.vmem, sizeof one.vmem) == 0);
    CHECK_EQ(one.trace_len, other.trace_len);
    CHECK(one.trace_len == other.trace_len && memcmp(one.trace, other.trace, one.trace_len) == 0);
    free(other.trace);
  }
  /* timing-only mode keeps the same schedule */
  run_all_to_all(src, T, 3, &other);
  for (int c = 0; c < 8; c++) CHECK_EQ(one.chips[c].cycles, other.chips[c].cycles);
  CHECK(memcmp(one.links, other.links, sizeof one.links) == 0);
  free(other.trace);
  /* the data went where the descriptors said: chip p holds chip c's bytes at 4096 c */
  for (int c = 0; c < 8; c++)
    for (int p = 0, k = 0; p < 8; p++) {
      if (p == c) continue;
      int n = 256 + 100 * ((c * 7 + p * 3) % 10);
      int bad = 0;
      for (int i = 0; i < n; i++) bad += one.vmem[p][4096 * c + i] != (uint8_t)(c * 17 + (2048 * k + i) * 3);
      CHECK_EQ(0, bad);
      k++;
    }
  /* the trace is valid JSON (checked by Python's json module where Python is) */
  char path[] = "/tmp/tile-emu-trace-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  FILE *f = fdopen(fd, "w");
  fwrite(one.trace, 1, one.trace_len, f);
  fclose(f);
  char cmd[512];
  snprintf(cmd, sizeof cmd,
           "python3 -c \"import json,sys; d=json.load(open(sys.argv[1])); "
           "ev=d['traceEvents']; assert any(e.get('ph')=='X' for e in ev); "
           "assert all('pid' in e for e in ev)\" %s 2>&1",
           path);
  int rc = system(cmd);
  remove(path);
  CHECK(strncmp(one.trace, "{\"traceEvents\":[", 16) == 0);
  CHECK(strstr(one.trace, "\"name\":\"network\"") != NULL);
  CHECK(strstr(one.trace, "dma lane 0") != NULL);
  free(one.trace);
  free(src);
  if (rc != 0 && WEXITSTATUS(rc) == 127) SKIP("python3 not found: trace JSON not parsed");
  CHECK_EQ(0, rc);
}

TEST(emu_torus, deadlock_across_chips) {
  const char *src = ".code chip 0\n  sem.wait sem1, 1\n  halt\n"
                    ".code all\n  li s1, 0\n  sem.signal.r sem1, s1, 1\n  halt\n";
  TileTarget t = fx_target(2, 2, 1, true);
  /* chips 1..3 each signal chip 0 once, chip 0 waits for one: fine */
  TileEmuOptions o = fx_opts(T, 2);
  TileEmu *e = fx_asm(&t, src, &o);
  REQUIRE(e != NULL);
  CHECK_EQ(TILE_EMU_OK, tile_emu_run(e));
  CHECK_EQ(2, tile_emu_sem(e, 0, 1)); /* two signals left over */
  tile_emu_free(e);
  const char *stuck = ".code chip 0\n  sem.wait sem1, 5\n  halt\n"
                      ".code all\n  li s1, 0\n  sem.signal.r sem1, s1, 1\n  halt\n";
  e = fx_asm(&t, stuck, &o);
  REQUIRE(e != NULL);
  CHECK_EQ(TILE_EMU_FAULTED, tile_emu_run(e));
  const TileEmuFault *f = tile_emu_fault(e);
  CHECK_EQ(TILE_EMU_FAULT_DEADLOCK, f->kind);
  CHECK_EQ(0, f->chip);
  CHECK(strstr(f->message, "chip 0: pc 0, waiting since cycle 0 for sem1 >= 5 (it is 3)") != NULL);
  CHECK(strstr(f->message, "chip 3: pc 2, done at cycle") != NULL);
  tile_emu_free(e);
}
