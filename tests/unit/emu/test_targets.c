/* The shipped machine descriptions (the .target files in targets/) run: a ring of remote DMAs over
 * each one's default torus, in timing-only mode on several host threads, with the
 * network's byte counts and the one-hop cut-through time checked against the target's
 * numbers. */
#include "check.h"
#include "emu_fixture.h"

/* Every chip sends 64 KiB of HBM to chip id + 1 (mod chips) and waits for its send
 * (sem1) and for the bytes from chip id - 1 (sem0). */
static const char *ring_source(int chips) {
  static char src[1024];
  snprintf(src, sizeof src,
           ".data smem 0 i32 0, 1, 0, 0, 0, 0, 65536, 1, 1, 0, 0, 0, 0, 0, 1, 0\n"
           ".code all\n"
           "  chipid s5 ; li s7, %d\n"
           "  addi s6, s5, 1\n"
           "  slt s8, s6, s7\n"
           "  mul s6, s6, s8\n" /* (id + 1) if below chips, else 0 */
           "  sst s6, s0, 52\n"
           "  nop\n  nop\n  nop\n"
           "  li s1, 0\n"
           "  dma s1\n"
           "  sem.wait sem0, 1\n"
           "  sem.wait sem1, 1\n"
           "  halt\n",
           chips);
  return src;
}

/* Hops from a to b by dimension order, the short way round where an axis wraps. */
static int hops(const TileTarget *t, int a, int b) {
  int n = 0, ca[3], cb[3];
  for (int k = t->torus_rank - 1; k >= 0; k--) {
    ca[k] = a % t->torus[k], a /= t->torus[k];
    cb[k] = b % t->torus[k], b /= t->torus[k];
  }
  for (int k = 0; k < t->torus_rank; k++) {
    int d = cb[k] - ca[k], len = t->torus[k];
    if (d < 0) d = -d;
    n += t->wrap[k] && len - d < d ? len - d : d;
  }
  return n;
}

TEST(emu_targets, shipped_targets_run_a_ring) {
  static const char *names[] = {"tiny", "v4-like", "v5e-like", "v5p-like"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    TileTarget t;
    TileDiag d;
    tile_diag_init(&d, stderr, "test", NULL, 0);
    if (!tile_target_load(names[i], &t, &d)) {
      CHECK(!"a shipped target does not load");
      continue;
    }
    int chips = (int)tile_target_chips(&t);
    TileEmuOptions o = fx_opts(TILE_EMU_TIMING, 4);
    TileEmu *e = fx_asm(&t, ring_source(chips), &o);
    REQUIRE(e != NULL);
    REQUIRE(tile_emu_run(e) == TILE_EMU_OK);
    TileEmuStats s;
    tile_emu_stats(e, &s);
    int64_t link_bytes = 0, want_link_bytes = 0, received = 0;
    for (int l = 0; l < s.nlinks; l++) link_bytes += s.links[l].bytes;
    for (int c = 0; c < chips; c++) {
      want_link_bytes += 65536LL * hops(&t, c, (c + 1) % chips);
      received += s.chips[c].bytes_received;
    }
    CHECK_EQ(want_link_bytes, link_bytes);
    CHECK_EQ(65536LL * chips, received);
    /* chip 0's send goes one hop to chip 1 on a free link: it issues at cycle 9 and is
     * delivered dma.issue_cycles + hop + ser later; chip 0 waits for it (sem1) */
    int64_t ser = tile_target_xfer_cycles(&t, 65536, t.ici_bw);
    int64_t first = 9 + t.dma_issue_cycles + tile_target_hop_cycles(&t) + ser;
    CHECK(s.chips[0].cycles >= first + 2);
    CHECK(s.cycles >= first + 2);
    tile_emu_free(e);
  }
}
