/* The collective schedules picked by size and VMEM (backend-vliw/gen_collective*.c),
 * through the whole VLIW pipeline and the emulator in strict mode on tiny: the one-shot
 * all_reduce of a small operand, an all_reduce and a reduce_scatter that stream through
 * VMEM in pieces, an all_gather split across both axes, and a small all_gather that goes
 * halfway round each axis. Each must give the right values on every chip, leave every
 * semaphore at zero (a chip that ran ahead leaves nothing behind), and take the same
 * cycles when run again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "compile_fixture.h"

enum { CHIPS = 4 };

typedef struct Case {
  const char *body;  /* the op, on %a */
  int64_t in, out;   /* f32 elements per chip */
} Case;

/* Compiles `%y = BODY : tensor<OUTxf32>` on a 2x2 mesh for tiny, runs it on inputs
 * a[c][i] (small integers: sums are exact in any order), and returns the cycles; the
 * outputs go to y. -1 after a failure (reported by the checks). */
static int64_t run_case(const Case *k, const float *a, float *y, int *held) {
  char src[512];
  snprintf(src, sizeof src,
           "mesh @m = torus<2x2>(x, y)\n"
           "func @f(%%a: tensor<%lldxf32>) -> tensor<%lldxf32> attributes {mesh = @m} {\n"
           "  %%y = %s : tensor<%lldxf32>\n  return %%y\n}\n",
           (long long)k->in, (long long)k->out, k->body, (long long)k->out);
  TileTarget t;
  TileObject obj;
  if (!target_for("tiny", "2x2", &t) || !compile_text(&t, src, NULL, NULL, 0, &obj)) return -1;
  TileEmu *e = emu_for(&obj, &t);
  tile_object_free(&obj);
  if (!e) return -1;
  int64_t cycles = -1;
  if (tile_emu_set_input(e, "a", a, (size_t)(CHIPS * k->in) * 4) && emu_run(e) == TILE_EMU_OK &&
      tile_emu_get_output(e, "result", y, (size_t)(CHIPS * k->out) * 4)) {
    TileEmuStats s;
    tile_emu_stats(e, &s);
    cycles = s.cycles;
  }
  *held = sems_held(e, &t, CHIPS);
  tile_emu_free(e);
  return cycles;
}

static float *inputs(int64_t n) {
  float *a = malloc((size_t)(CHIPS * n) * sizeof *a);
  for (int c = 0; c < CHIPS; c++)
    for (int64_t i = 0; i < n; i++) a[c * n + i] = (float)((c * 7 + i * 3) % 23 - 11);
  return a;
}

/* Runs k twice; the wrong elements of the first run against want(a, chip, i). */
static int64_t check_case(const Case *k, float (*want)(const float *a, int64_t n, int c,
                                                        int64_t i)) {
  float *a = inputs(k->in), *y = malloc((size_t)(CHIPS * k->out) * sizeof *y);
  int held = 0, held2 = 0;
  int64_t cycles = run_case(k, a, y, &held), bad = cycles < 0;
  for (int c = 0; c < CHIPS && cycles >= 0; c++)
    for (int64_t i = 0; i < k->out; i++) bad += y[c * k->out + i] != want(a, k->in, c, i);
  CHECK_EQ(0, held);
  CHECK_EQ(cycles, run_case(k, a, y, &held2));
  free(a);
  free(y);
  return bad;
}

static float sum_all(const float *a, int64_t n, int c, int64_t i) {
  (void)c;
  return a[i] + a[n + i] + a[2 * n + i] + a[3 * n + i];
}

/* reduce_scatter over [x, y]: chip c (rank c) keeps slice c of the sum. */
static float sum_slice(const float *a, int64_t n, int c, int64_t i) {
  return sum_all(a, n, c, c * (n / CHIPS) + i);
}

/* all_gather over [x, y]: element i comes from chip i / shard. */
static int64_t shard;
static float gathered(const float *a, int64_t n, int c, int64_t i) {
  (void)c;
  return a[(i / shard) * n + i % shard];
}

TEST(GenCollectiveSched, OneShotAllReduce) {
  Case k = {"all_reduce %a {kind = add, axes = [x, y]}", 1000, 1000};
  CHECK_EQ(0, check_case(&k, sum_all));
}

TEST(GenCollectiveSched, AllReduceInPieces) {
  /* 768 KiB with its receive buffers does not fit tiny's 1 MiB of VMEM. */
  Case k = {"all_reduce %a {kind = add, axes = [x, y]}", 192 * 1024, 192 * 1024};
  CHECK_EQ(0, check_case(&k, sum_all));
}

TEST(GenCollectiveSched, ReduceScatterInPiecesAcrossAxes) {
  Case k = {"reduce_scatter %a {kind = add, dim = 0, axes = [x, y]}", 4 * 48 * 1024, 48 * 1024};
  CHECK_EQ(0, check_case(&k, sum_slice));
}

TEST(GenCollectiveSched, AllGatherAcrossAxes) {
  shard = 32 * 1024;
  Case k = {"all_gather %a {dim = 0, axes = [x, y]}", 32 * 1024, 4 * 32 * 1024};
  CHECK_EQ(0, check_case(&k, gathered));
}

TEST(GenCollectiveSched, SmallAllGatherHalfway) {
  shard = 5;
  Case k = {"all_gather %a {dim = 0, axes = [x, y]}", 5, 20};
  CHECK_EQ(0, check_case(&k, gathered));
}
