/* The emulator suite of bench/run: how fast the emulator runs on one host core, next to
 * the host's OpenBLAS, measured in one run.
 *
 *   timing_bundles_per_s       simulated bundles per host second, timing-only mode, on a
 *                              mix (vector ALU, vector load/store, MXU push/pop, DMA with
 *                              semaphore waits, scalar and loop control); one host thread.
 *   functional_bundles_per_s   the same mix with numerics, next to the timing-mode rate.
 *   mxu_vs_openblas            functional GFLOP/s of the emulated MXU (8 x 128 x 128
 *                              bf16 tiles, f32 accumulation, every unit busy) over OpenBLAS
 *                              sgemm GFLOP/s on the same shapes, one thread each.
 *   mxu_vs_openblas_tile       the same emulated rate over sgemm called once per tile
 *                              (M = 8), where call overhead counts (no floor).
 *
 * Every measurement is sized to take about --seconds of host time (1 by default) and
 * is the best of --repeats runs, so a busy host understates rather than overstates.
 * Floors come from the floors file (`SUITE METRIC OP VALUE`, suite `emulator`): a floor
 * on a `_vs_` metric compares its ratio, any other floor the measured value; the table's
 * last column is the ratio (measured over its reference; for an absolute metric the
 * reference is its floor, so 1.0 is the line). Exits 1 when a floor is missed, 2 on a
 * setup error.
 *
 * `--profile timing|functional|mxu` runs just that measurement and prints its rate, to
 * run under perf or callgrind; `--print-program mix|mxu` prints the assembly (one
 * iteration of the loop). */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#define BENCH_NAME "bench_emulator"
#include "../bench_util.h"
#include "tile/asm.h"
#include "tile/emu.h"
#include "tile/target.h"
#include "programs.h"

/* OpenBLAS's own call (cblas.h may be the reference CBLAS header). */
void openblas_set_num_threads(int n);

enum { MXU_ROWS = 8 }; /* one push: an 8-row LHS tile */

static char *generate(BenchProgram gen, const TileTarget *t, int64_t iters) {
  char why[300] = "out of memory";
  char *src = gen(t, iters, why, sizeof why);
  if (!src) die("%s", why);
  return src;
}

typedef struct Sample {
  double seconds;
  int64_t bundles, cycles, pushes;
} Sample;

/* Assembles and runs one program on a fresh emulator; the host time covers
 * tile_emu_run only (building the machine and assembling are not the emulator's speed). */
static Sample run_once(BenchProgram gen, const TileTarget *t, int64_t iters, TileEmuMode mode) {
  char *src = generate(gen, t, iters);
  TileDiag d;
  tile_diag_init(&d, stderr, "bench", src, strlen(src));
  TileObject obj;
  if (!tile_asm(src, strlen(src), "bench.s", t, &obj, &d))
    die("the benchmark program does not assemble");
  TileEmuOptions o;
  tile_emu_options_default(&o);
  o.mode = mode;
  o.threads = 1;
  o.watchdog = INT64_C(1) << 60; /* the runs are long on purpose */
  TileEmu *e = tile_emu_create(&obj, t, &o, &d);
  if (!e) die("the emulator refused the benchmark program: %s", d.last);
  double t0 = now_s();
  TileEmuStatus st = tile_emu_run(e);
  double t1 = now_s();
  if (st != TILE_EMU_OK)
    die("the benchmark program did not finish cleanly: %s",
        st == TILE_EMU_FAULTED ? tile_emu_fault(e)->message : tile_emu_error(e));
  TileEmuStats s;
  tile_emu_stats(e, &s);
  Sample r = {t1 - t0, 0, s.cycles, 0};
  for (int i = 0; i < s.nchips; i++) {
    r.bundles += s.chips[i].bundles;
    r.pushes += s.chips[i].mxu_pushes;
  }
  tile_emu_free(e);
  tile_object_free(&obj);
  free(src);
  return r;
}

/* Grows the iteration count until one run takes about `seconds`, then keeps the best
 * of `repeats` runs at that size. */
static Sample measure(BenchProgram gen, const TileTarget *t, TileEmuMode mode, double seconds,
                      int repeats) {
  int64_t iters = 16;
  Sample s = run_once(gen, t, iters, mode);
  while (s.seconds < seconds * 0.5) {
    double scale = s.seconds > 1e-4 ? seconds / s.seconds : 16.0;
    if (scale > 16.0) scale = 16.0;
    int64_t next = (int64_t)((double)iters * scale) + 1;
    if (next > INT32_MAX / 2) {
      iters = INT32_MAX / 2;
      s = run_once(gen, t, iters, mode);
      break;
    }
    iters = next;
    s = run_once(gen, t, iters, mode);
  }
  for (int r = 1; r < repeats; r++) {
    Sample again = run_once(gen, t, iters, mode);
    if (again.seconds < s.seconds) s = again;
  }
  return s;
}

/* ---- OpenBLAS ---- */

/* GFLOP/s of sgemm C[m x n] = A[m x k] * B[k x n], one host thread, best of repeats,
 * each repeat about `seconds` long. Inputs are bf16-exact values, as the MXU gets. */
static double sgemm_gflops(int m, int n, int k, double seconds, int repeats) {
  float *a = malloc(sizeof(float) * (size_t)m * (size_t)k);
  float *b = malloc(sizeof(float) * (size_t)k * (size_t)n);
  float *c = malloc(sizeof(float) * (size_t)m * (size_t)n);
  if (!a || !b || !c) die("out of memory");
  for (size_t i = 0; i < (size_t)m * (size_t)k; i++) a[i] = (float)((int)(i % 13) - 6) / 8.0f;
  for (size_t i = 0; i < (size_t)k * (size_t)n; i++) b[i] = (float)((int)(i % 7) - 3) / 4.0f;
  double flop = 2.0 * m * n * k;
  int64_t reps = 1;
  for (;;) {
    double t0 = now_s();
    for (int64_t r = 0; r < reps; r++)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n,
                  0.0f, c, n);
    double dt = now_s() - t0;
    if (dt >= seconds * 0.5 || reps > (INT64_C(1) << 40)) break;
    reps *= dt > 1e-4 ? (int64_t)(seconds / dt) + 1 : 16;
  }
  double best = 0;
  for (int r = 0; r < repeats; r++) {
    double t0 = now_s();
    for (int64_t i = 0; i < reps; i++)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n,
                  0.0f, c, n);
    double g = flop * (double)reps / (now_s() - t0) * 1e-9;
    if (g > best) best = g;
  }
  volatile float sink = c[0];
  (void)sink;
  free(a);
  free(b);
  free(c);
  return best;
}

/* ---- floors ---- */

typedef struct Row {
  const char *metric;
  char measured[48], reference[64];
  double value;    /* what an absolute floor compares */
  double ref;      /* the reference (0: none) */
  bool is_ratio;   /* a _vs_ metric: floors compare value / ref */
  bool has_floor;
  char floor_op[8];
  double floor;
  double ratio;
  bool ok;
} Row;

/* Reads the floors of suite `emulator` into the rows; unknown metrics are errors. */
static void read_floors(const char *path, Row *rows, int nrows) {
  FILE *f = fopen(path, "r");
  if (!f) die("cannot read the floors file %s", path);
  char line[512];
  int lineno = 0;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    char *hash = strchr(line, '#');
    if (hash) *hash = 0;
    char suite[64], metric[64], op[8], value[64], extra[8];
    int n = sscanf(line, "%63s %63s %7s %63s %7s", suite, metric, op, value, extra);
    if (n <= 0) continue;
    if (n != 4) {
      fprintf(stderr, "%s:%d: a floor is 'SUITE METRIC OP VALUE'\n", path, lineno);
      exit(2);
    }
    if (strcmp(suite, "emulator") != 0) continue;
    char *end;
    double v = strtod(value, &end);
    if (*end || (strcmp(op, ">=") != 0 && strcmp(op, "<=") != 0)) {
      fprintf(stderr, "%s:%d: the operator is >= or <= and the value a number\n", path,
              lineno);
      exit(2);
    }
    Row *row = NULL;
    for (int i = 0; i < nrows; i++)
      if (strcmp(rows[i].metric, metric) == 0) row = &rows[i];
    if (!row) {
      fprintf(stderr, "%s:%d: the emulator suite has no metric '%s'\n", path, lineno, metric);
      exit(2);
    }
    row->has_floor = true;
    snprintf(row->floor_op, sizeof row->floor_op, "%s", op);
    row->floor = v;
  }
  fclose(f);
}

static void finish_row(Row *r) {
  if (r->is_ratio) {
    r->ratio = r->ref > 0 ? r->value / r->ref : 0;
  } else if (r->has_floor) {
    r->ref = r->floor;
    snprintf(r->reference, sizeof r->reference, "floor %.3g", r->floor);
    r->ratio = r->value / r->floor;
  } else {
    r->ratio = r->ref > 0 ? r->value / r->ref : 0;
  }
  double checked = r->is_ratio ? r->ratio : r->value;
  r->ok = !r->has_floor || (r->floor_op[0] == '>' ? checked >= r->floor : checked <= r->floor);
}

int main(int argc, char **argv) {
  const char *floors = "bench/floors.txt", *target_name = "tiny", *profile = NULL,
             *print = NULL;
  double seconds = 1.0;
  int repeats = 3;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--floors") == 0 && i + 1 < argc) floors = argv[++i];
    else if (strcmp(argv[i], "--target") == 0 && i + 1 < argc) target_name = argv[++i];
    else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) seconds = atof(argv[++i]);
    else if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) repeats = atoi(argv[++i]);
    else if (strcmp(argv[i], "--profile") == 0 && i + 1 < argc) profile = argv[++i];
    else if (strcmp(argv[i], "--print-program") == 0 && i + 1 < argc) print = argv[++i];
    else {
      fprintf(stderr,
              "usage: bench_emulator [--floors FILE] [--target NAME] [--seconds S] "
              "[--repeats N] [--profile timing|functional|mxu] [--print-program mix|mxu]\n");
      return 2;
    }
  }
  if (seconds <= 0 || repeats < 1) die("--seconds and --repeats must be positive");
  /* OpenBLAS starts its thread pool when it loads, before main, from this variable; idle
   * pool threads spin and would steal the core being measured. Run again with it set. */
  const char *nt = getenv("OPENBLAS_NUM_THREADS");
  if (!nt || strcmp(nt, "1") != 0) {
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    execv("/proc/self/exe", argv);
    /* no /proc: go on; openblas_set_num_threads below still limits sgemm to one thread */
  }
  openblas_set_num_threads(1);

  TileDiag d;
  tile_diag_init(&d, stderr, target_name, NULL, 0);
  TileTarget t;
  if (!tile_target_load(target_name, &t, &d) || !tile_target_set_torus(&t, "1", &d))
    die("cannot load target %s", target_name);

  if (print) {
    bool mxu = strcmp(print, "mxu") == 0;
    if (!mxu && strcmp(print, "mix") != 0)
      die("--print-program takes mix or mxu, not %s", print);
    char *src = generate(mxu ? bench_mxu_program : bench_mix_program, &t, 1);
    fputs(src, stdout);
    free(src);
    return 0;
  }
  if (profile) {
    bool mxu = strcmp(profile, "mxu") == 0, timing = strcmp(profile, "timing") == 0;
    if (!mxu && !timing && strcmp(profile, "functional") != 0)
      die("--profile takes timing, functional or mxu, not %s", profile);
    Sample s = measure(mxu ? bench_mxu_program : bench_mix_program, &t,
                       timing ? TILE_EMU_TIMING : TILE_EMU_FUNCTIONAL, seconds, 1);
    printf("%s: %lld bundles, %lld pushes in %.3f s: %.4g bundles/s\n", profile,
           (long long)s.bundles, (long long)s.pushes, s.seconds, (double)s.bundles / s.seconds);
    return 0;
  }

  /* The floors first: a floors file naming an unknown metric fails before a long run. */
  Row rows[] = {
      {.metric = "timing_bundles_per_s"},
      {.metric = "functional_bundles_per_s"},
      {.metric = "mxu_vs_openblas", .is_ratio = true},
      {.metric = "mxu_vs_openblas_tile", .is_ratio = true},
  };
  enum { NROWS = sizeof rows / sizeof rows[0] };
  read_floors(floors, rows, NROWS);

  Sample timing = measure(bench_mix_program, &t, TILE_EMU_TIMING, seconds, repeats);
  Sample func = measure(bench_mix_program, &t, TILE_EMU_FUNCTIONAL, seconds, repeats);
  Sample mxu = measure(bench_mxu_program, &t, TILE_EMU_FUNCTIONAL, seconds, repeats);
  double flop_per_push = 2.0 * MXU_ROWS * t.mxu_dim * t.mxu_dim;
  double emu_gflops = (double)mxu.pushes * flop_per_push / mxu.seconds * 1e-9;
  /* The reference does the work of 128 pushes against one weight block in one call
   * (M = 1024 rows), where sgemm is at its best; the _tile row calls it once per push. */
  int batch_m = MXU_ROWS * 128;
  double blas_batch = sgemm_gflops(batch_m, t.mxu_dim, t.mxu_dim, seconds, repeats);
  double blas_tile = sgemm_gflops(MXU_ROWS, t.mxu_dim, t.mxu_dim, seconds, repeats);

  rows[0].value = (double)timing.bundles / timing.seconds;
  rows[1].value = (double)func.bundles / func.seconds;
  rows[1].ref = rows[0].value;
  rows[2].value = rows[3].value = emu_gflops;
  rows[2].ref = blas_batch;
  rows[3].ref = blas_tile;
  snprintf(rows[0].measured, sizeof rows[0].measured, "%.3g bundles/s", rows[0].value);
  snprintf(rows[1].measured, sizeof rows[1].measured, "%.3g bundles/s", rows[1].value);
  snprintf(rows[1].reference, sizeof rows[1].reference, "timing mode %.3g", rows[0].value);
  snprintf(rows[2].measured, sizeof rows[2].measured, "%.2f GFLOP/s", emu_gflops);
  snprintf(rows[2].reference, sizeof rows[2].reference, "sgemm %dx%dx%d %.2f GFLOP/s",
           batch_m, t.mxu_dim, t.mxu_dim, blas_batch);
  snprintf(rows[3].measured, sizeof rows[3].measured, "%.2f GFLOP/s", emu_gflops);
  snprintf(rows[3].reference, sizeof rows[3].reference, "sgemm %dx%dx%d %.2f GFLOP/s",
           MXU_ROWS, t.mxu_dim, t.mxu_dim, blas_tile);
  bool all_ok = true;
  for (int i = 0; i < NROWS; i++) {
    finish_row(&rows[i]);
    all_ok &= rows[i].ok;
  }

  printf("emulator speed on one host core (target %s, 1 chip, 1 host thread, best of %d "
         "runs of ~%.1f s)\n",
         t.name, repeats, seconds);
  printf("  mix: timing %lld bundles in %.3f s (%lld cycles); functional %lld bundles in "
         "%.3f s; MXU %lld pushes in %.3f s\n",
         (long long)timing.bundles, timing.seconds, (long long)timing.cycles,
         (long long)func.bundles, func.seconds, (long long)mxu.pushes, mxu.seconds);
  printf("%-26s %-20s %-34s %-8s %s\n", "metric", "measured", "reference", "floor", "ratio");
  for (int i = 0; i < NROWS; i++) {
    char floor[24] = "-";
    if (rows[i].has_floor)
      snprintf(floor, sizeof floor, "%s %.3g", rows[i].floor_op,
               rows[i].is_ratio ? rows[i].floor : 1.0);
    printf("%-26s %-20s %-34s %-8s %.3f%s\n", rows[i].metric, rows[i].measured,
           rows[i].reference, floor, rows[i].ratio, rows[i].ok ? "" : "  MISSED");
  }
  for (int i = 0; i < NROWS; i++)
    if (!rows[i].ok)
      printf("floor missed: %s %s %s %g (measured %.4g)\n", "emulator", rows[i].metric,
             rows[i].floor_op, rows[i].floor,
             rows[i].is_ratio ? rows[i].ratio : rows[i].value);
  return all_ok ? 0 : 1;
}
