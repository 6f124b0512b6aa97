/* Random programs on several chips (scalar and vector work, local and remote DMAs,
 * remote signals, waits that may never be met): whatever happens — a clean finish, a
 * fault, a deadlock — must happen identically for 1, 2, 3 and 4 host threads, down to
 * the fault message, the statistics, the memories and the trace. Timing-only mode must
 * give the same cycles. */
#include "check.h"
#include "emu_fixture.h"

typedef struct Rng {
  uint64_t s;
} Rng;

static uint32_t next(Rng *r) {
  r->s = r->s * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)(r->s >> 33);
}
static int pick(Rng *r, int n) { return (int)(next(r) % (uint32_t)n); }

/* Descriptor k of chip c: sizes, spaces and peers drawn from r; destinations of remote
 * copies land in a region reserved for the source chip. Waits are for completions of
 * this chip's own DMAs (always met) unless `risky`, which adds waits for remote signals
 * that may never come. With `loops`, some stretches of the program repeat (`loop`, or a
 * counter and `bnz`), so hazards meet loop back edges. */
enum { MAX_LINES = 256 };

static void gen_chip(FILE *f, Rng *r, int chip, int chips, bool risky, bool loops) {
  int src_sem[6], avail[4] = {0};
  for (int k = 0; k < 6; k++) {
    int remote = pick(r, 2), peer = remote ? pick(r, chips) : -1;
    int src_space = pick(r, 2), dst_space = remote ? 1 : 1 - src_space;
    int c0 = 64 * (1 + pick(r, 8)), c1 = 1 + pick(r, 3);
    int dst = remote ? 65536 + 8192 * chip + 1024 * k : 131072 + 4096 * k;
    src_sem[k] = pick(r, 3);
    fprintf(f, ".data chip %d smem %d i32 %d, %d, %d, 0, %d, 0, %d, %d, 1, %d, 0, %d, 0, %d, %d, %d\n",
            chip, 64 * k, src_space, dst_space, 2048 * k, dst, c0, c1, c0, c0, peer, src_sem[k],
            3);
  }
  /* one bundle per line */
  static char lines[MAX_LINES][64];
  int n = 0, ops = 20 + pick(r, 40);
  for (int i = 0; i < ops && n < MAX_LINES - 4; i++) {
    switch (pick(r, 9)) {
    case 0:
      snprintf(lines[n++], 64, "addi s%d, s%d, %d", 4 + pick(r, 4), 4 + pick(r, 4), pick(r, 100));
      break;
    case 1: snprintf(lines[n++], 64, "vld v%d, s3, s2, %d", pick(r, 8), 4096 * pick(r, 4)); break;
    case 2:
      snprintf(lines[n++], 64, "vadd.f v%d, v%d, v%d", pick(r, 8), pick(r, 8), pick(r, 8));
      break;
    case 3: snprintf(lines[n++], 64, "vst v%d, s3, s2, %d", pick(r, 8), 16384 + 4096 * pick(r, 4)); break;
    case 4: {
      int k = pick(r, 6);
      snprintf(lines[n++], 64, "li s1, %d", 64 * k);
      snprintf(lines[n++], 64, "nop");
      snprintf(lines[n++], 64, "dma s1");
      avail[src_sem[k]]++;
      break;
    }
    case 5:
      snprintf(lines[n++], 64, "li s1, %d", pick(r, chips));
      snprintf(lines[n++], 64, "nop");
      snprintf(lines[n++], 64, "sem.signal.r sem3, s1, 1");
      break;
    case 6: {
      int sem = pick(r, 3);
      if (avail[sem] > 0) {
        snprintf(lines[n++], 64, "sem.wait sem%d, 1", sem);
        avail[sem]--;
      } else if (risky) {
        snprintf(lines[n++], 64, "sem.wait sem3, %d", 1 + pick(r, 3));
      }
      break;
    }
    case 7: snprintf(lines[n++], 64, "vexp v%d, v%d", pick(r, 8), pick(r, 8)); break;
    default: snprintf(lines[n++], 64, "nop"); break;
    }
  }
  /* up to three repeated stretches, in order and apart: what goes before line i */
  int loop_at[3] = {-1, -1, -1}, loop_len[3] = {0}, loop_kind[3] = {0}, nloops = 0;
  for (int at = 1; loops && nloops < 3 && at < n - 1; at += 4 + pick(r, 8)) {
    int len = 1 + pick(r, 6);
    if (at + len > n) break;
    loop_at[nloops] = at, loop_len[nloops] = len, loop_kind[nloops] = pick(r, 2);
    nloops++;
    at += len;
  }
  fprintf(f, ".code chip %d\n  li s2, 512 ; li s3, 0\n  nop\n", chip);
  for (int i = 0, l = 0; i < n; i++) {
    if (l < nloops && loop_at[l] == i) {
      if (loop_kind[l] == 0) fprintf(f, "  loop %d, %d\n", loop_len[l], 1 + pick(r, 4));
      else fprintf(f, "  li s9, %d\nL%d:\n", 1 + pick(r, 4), l);
    }
    fprintf(f, "  %s\n", lines[i]);
    if (l < nloops && i == loop_at[l] + loop_len[l] - 1) {
      if (loop_kind[l] == 1) fprintf(f, "  addi s9, s9, -1\n  bnz s9, L%d\n", l);
      l++;
    }
  }
  fprintf(f, "  halt\n");
}

static char *gen_program(uint64_t seed, int chips) {
  Rng r = {seed};
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  for (int c = 0; c < chips; c++) gen_chip(f, &r, c, chips, seed % 4 == 1, seed % 3 != 0);
  fclose(f);
  return buf;
}

typedef struct Result {
  TileEmuStatus status;
  char fault[2048];
  TileEmuChipStats chips[8];
  int64_t cycles;
  uint8_t vmem[8][160 * 1024];
  char *trace;
  size_t trace_len;
} Result;

static bool run(const char *src, TileEmuMode mode, int threads, bool strict, bool check_all,
                Result *out) {
  TileTarget t = fx_target(2, 2, 2, true);
  t.dma_outstanding = 64;
  TileEmuOptions o = fx_opts(mode, threads);
  o.strict = strict;
  o.check_all = check_all;
  o.trace = true;
  o.watchdog = 200000;
  TileEmu *e = fx_asm(&t, src, &o);
  if (!e) return false;
  for (int c = 0; c < 8 && mode == TILE_EMU_FUNCTIONAL; c++) {
    uint8_t data[16384];
    for (int i = 0; i < (int)sizeof data; i++) data[i] = (uint8_t)(c * 7 + i * 13);
    tile_emu_write_memory(e, c, TILE_SPACE_HBM, 0, data, sizeof data);
    tile_emu_write_memory(e, c, TILE_SPACE_VMEM, 0, data, sizeof data);
  }
  out->status = tile_emu_run(e);
  snprintf(out->fault, sizeof out->fault, "%s", tile_emu_fault(e)->message);
  TileEmuStats s;
  tile_emu_stats(e, &s);
  memcpy(out->chips, s.chips, sizeof out->chips);
  out->cycles = s.cycles;
  for (int c = 0; c < 8 && mode == TILE_EMU_FUNCTIONAL; c++)
    tile_emu_read_memory(e, c, TILE_SPACE_VMEM, 0, out->vmem[c], sizeof out->vmem[c]);
  FILE *f = open_memstream(&out->trace, &out->trace_len);
  tile_emu_write_trace(e, f);
  fclose(f);
  tile_emu_free(e);
  return true;
}

TEST(emu_random, any_thread_count_same_outcome) {
  static Result base, other;
  int finished = 0, faulted = 0;
  for (uint64_t seed = 1; seed <= 60; seed++) {
    char *src = gen_program(seed, 8);
    bool strict = seed % 2 == 0;
    REQUIRE(run(src, TILE_EMU_FUNCTIONAL, 1, strict, false, &base));
    finished += base.status == TILE_EMU_OK;
    faulted += base.status == TILE_EMU_FAULTED;
    /* threads 2..4; then 1 thread checking every read and write at run time, which must
     * find exactly what the statically proven checks find */
    for (int threads = 2; threads <= 5; threads++) {
      REQUIRE(run(src, TILE_EMU_FUNCTIONAL, threads == 5 ? 1 : threads, strict, threads == 5,
                  &other));
      CHECK_EQ(base.status, other.status);
      CHECK_STREQ(base.fault, other.fault);
      CHECK_EQ(base.cycles, other.cycles);
      CHECK(memcmp(base.chips, other.chips, sizeof base.chips) == 0);
      CHECK(memcmp(base.vmem, other.vmem, sizeof base.vmem) == 0);
      CHECK(base.trace_len == other.trace_len &&
            memcmp(base.trace, other.trace, base.trace_len) == 0);
      free(other.trace);
    }
    REQUIRE(run(src, TILE_EMU_TIMING, 3, strict, false, &other));
    CHECK_EQ(base.status, other.status);
    CHECK_STREQ(base.fault, other.fault);
    for (int c = 0; c < 8; c++) CHECK_EQ(base.chips[c].cycles, other.chips[c].cycles);
    /* the same events; only the mode named at the end differs */
    const char *end1 = strstr(base.trace, "\n],"), *end2 = strstr(other.trace, "\n],");
    REQUIRE(end1 && end2);
    CHECK(end1 - base.trace == end2 - other.trace &&
          memcmp(base.trace, other.trace, (size_t)(end1 - base.trace)) == 0);
    free(other.trace);
    free(base.trace);
    free(src);
  }
  /* the generator reaches both outcomes */
  CHECK(finished > 0);
  CHECK(faulted > 0);
}
