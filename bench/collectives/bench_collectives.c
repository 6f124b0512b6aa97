/* The collectives suite of bench/run: all_reduce, all_gather, reduce_scatter and
 * all_to_all over every axis of a torus (4x4 v5e-like, 4x4x4 v4-like), f32, sizes from
 * 4 KiB to 256 MiB, each compiled from text and run once on the whole torus in timing
 * mode (strict: a hazard is a failure, not a number).
 *
 *   size     V, bytes of the whole array: all_reduce's operand (every chip holds one),
 *            all_gather's result, reduce_scatter's operand, all_to_all's operand
 *   cycles   the emulated run (the last chip done or the last delivery)
 *   busbw    nccl-tests bus bandwidth: algbw = V / t, times 2(N-1)/N for all_reduce and
 *            (N-1)/N for the others (REFERENCE.md "Collectives")
 *   bound    the torus bound of REFERENCE.md "Collectives", in cycles (below)
 *   ratio    bound / cycles, which is busbw over the busbw the bound allows
 *
 * The bound, with N chips, b the one-way bandwidth of a link, alpha the hop latency:
 *   all_gather, reduce_scatter  max(alpha * sum_i h_i, (1 - 1/N) V / sum_i W_i)
 *   all_reduce                  twice that (reduce-scatter, then all-gather)
 *   all_to_all                  max(alpha * sum_i h_i, the most bytes shortest-path
 *                               routing puts on one link / b)
 * where per axis i of n_i chips, W_i = 2b (both directions) and h_i = n_i / 2 when it
 * wraps; an axis without wraparound is a line: W_i = b (the middle link carries half
 * of everything one way: "without wraparound about 2x"), h_i = n_i - 1. With every axis
 * wrapping this is scaling-book's T = max(alpha sum n_i / 2, V / (k W)). For all_to_all
 * on a ring the routed load gives scaling-book's AllGather / 4.
 *
 * Floors (bench/floors.txt, suite `collectives`):
 *   large_ratio >= X       every row with V >= 16 MiB
 *   small_vs_latency <= X  every row with V <= 64 KiB (about b * alpha, below which a
 *                          collective is latency-bound): cycles over the latency term
 * Exits 1 when a floor is missed or a row fails to compile or run, 2 on a setup error.
 *
 * all_to_all stops at 16 MiB (A2A_MAX_BYTES: host memory).
 *
 * Options: --floors FILE, --only OP (repeatable), --max-size BYTES, --threads N (host
 * threads of the emulator; cycles do not depend on it), --config NAME (v5e or v4). */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_NAME "bench_collectives"
#include "../bench_util.h"
#include "../kernels/ici.h"
#include "tile/emu.h"
#include "tile/object.h"
#include "tile/target.h"
#include "tile/text.h"
#include "tile/verify.h"
#include "tile/vliw.h"

static const char suite[] = "collectives";

enum { OP_ALL_REDUCE, OP_ALL_GATHER, OP_REDUCE_SCATTER, OP_ALL_TO_ALL, OP_COUNT };
static const char *const op_names[OP_COUNT] = {"all_reduce", "all_gather", "reduce_scatter",
                                               "all_to_all"};

typedef struct Config {
  const char *name, *target, *torus;
} Config;
static const Config configs[] = {
    {"v5e", "v5e-like", "4x4"},
    {"v4", "v4-like", "4x4x4"},
};
enum { NCONFIGS = sizeof configs / sizeof configs[0] };

static const int64_t sizes[] = {4 << 10, 64 << 10, 1 << 20, 16 << 20, 256 << 20};
enum { NSIZES = sizeof sizes / sizeof sizes[0] };
/* all_to_all keeps HBM scratch of several times its operand per chip, whose bytes the
 * toolchain holds in host memory: at 256 MiB more than a workstation has (docs/perf.md).
 * Its rows stop at 16 MiB. */
#define A2A_MAX_BYTES (16LL << 20)
#define LARGE_BYTES (16LL << 20)
#define SMALL_BYTES (64LL << 10)

typedef struct Row {
  const Config *cfg;
  int op;
  int64_t bytes;
  bool ok;
  char failure[400];
  int64_t cycles;
  double lat, bw, bound; /* cycles */
  double host_s;
} Row;

typedef struct Floors {
  bool has_large, has_small;
  double large, small;
} Floors;

/* ---- the bound ---- */

/* Bytes on the busiest one-way link when every chip sends `blk` bytes to every other
 * one by the emulator's routing (docs/emulator.md: x, then y, then z; the shorter way
 * round where an axis wraps, ties +; straight otherwise). */
static double a2a_link_load(const TileTarget *t, double blk) {
  int r = t->torus_rank, n = (int)tile_target_chips(t);
  double *load = calloc((size_t)n * r * 2, sizeof *load);
  if (!load) die("out of memory");
  for (int src = 0; src < n; src++)
    for (int dst = 0; dst < n; dst++) {
      int at[TILE_MAX_TORUS_RANK], to[TILE_MAX_TORUS_RANK];
      for (int k = r - 1, a = src, b = dst; k >= 0; k--) {
        at[k] = a % t->torus[k], a /= t->torus[k];
        to[k] = b % t->torus[k], b /= t->torus[k];
      }
      for (int k = 0; k < r; k++) {
        int p = t->torus[k], fwd = ((to[k] - at[k]) % p + p) % p;
        int dir = t->wrap[k] ? (fwd <= p - fwd ? 1 : -1) : (to[k] >= at[k] ? 1 : -1);
        while (at[k] != to[k]) {
          int id = 0;
          for (int j = 0; j < r; j++) id = id * t->torus[j] + at[j];
          load[((size_t)id * r + k) * 2 + (dir > 0)] += blk;
          at[k] = ((at[k] + dir) % p + p) % p;
        }
      }
    }
  double most = 0;
  for (size_t i = 0; i < (size_t)n * r * 2; i++) most = load[i] > most ? load[i] : most;
  free(load);
  return most;
}

static void bound(Row *w, const TileTarget *t) {
  double n = (double)tile_target_chips(t);
  double b = (double)t->ici_bw / (double)t->clock_hz; /* bytes per cycle, one way */
  IciAxis ax[TILE_MAX_TORUS_RANK];
  for (int k = 0; k < t->torus_rank; k++) ax[k] = (IciAxis){(double)t->torus[k], t->wrap[k]};
  double v = (double)w->bytes;
  ici_gather_terms(t, ax, t->torus_rank, v, &w->lat, &w->bw);
  if (w->op == OP_ALL_TO_ALL) w->bw = a2a_link_load(t, v / n) / b;
  if (w->op == OP_ALL_REDUCE) {
    w->lat *= 2;
    w->bw *= 2;
  }
  w->bound = w->lat > w->bw ? w->lat : w->bw;
}

/* ---- the program ---- */

static void tensor(char *s, size_t n, int64_t elems) {
  snprintf(s, n, "tensor<%lldxf32>", (long long)elems);
}

static char *source(const Row *w, const TileTarget *t, size_t *len) {
  int64_t n = tile_target_chips(t), e = w->bytes / 4, ein = e, eout = e;
  char axes[32] = "", dims[32] = "", body[256], in[64], out[64];
  for (int k = 0; k < t->torus_rank; k++) {
    snprintf(axes + strlen(axes), sizeof axes - strlen(axes), "%s%c", k ? ", " : "", "xyz"[k]);
    snprintf(dims + strlen(dims), sizeof dims - strlen(dims), "%s%d", k ? "x" : "",
             (int)t->torus[k]);
  }
  switch (w->op) {
  case OP_ALL_REDUCE:
    snprintf(body, sizeof body, "all_reduce %%a {kind = add, axes = [%s]}", axes);
    break;
  case OP_ALL_GATHER:
    ein = e / n;
    snprintf(body, sizeof body, "all_gather %%a {dim = 0, axes = [%s]}", axes);
    break;
  case OP_REDUCE_SCATTER:
    eout = e / n;
    snprintf(body, sizeof body, "reduce_scatter %%a {kind = add, dim = 0, axes = [%s]}", axes);
    break;
  default:
    snprintf(body, sizeof body, "all_to_all %%a {split_dim = 0, concat_dim = 0, axes = [%s]}",
             axes);
  }
  tensor(in, sizeof in, ein);
  tensor(out, sizeof out, eout);
  size_t cap = 1024;
  char *src = malloc(cap);
  if (!src) die("out of memory");
  int k = snprintf(src, cap,
                   "mesh @m = torus<%s>(%s)\n\nfunc @f(%%a: %s) -> %s attributes {mesh = @m} {\n"
                   "  %%y = %s : %s\n  return %%y\n}\n",
                   dims, axes, in, out, body, out);
  if (k < 0 || (size_t)k >= cap) die("program text too long");
  *len = (size_t)k;
  return src;
}

static void fail(Row *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(Row *w, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->failure, sizeof w->failure, fmt, ap);
  va_end(ap);
  w->ok = false;
}

static void measure(Row *w, const TileTarget *t, int threads) {
  w->ok = true;
  bound(w, t);
  size_t len;
  char *src = source(w, t, &len);
  char path[64];
  snprintf(path, sizeof path, "%s.tile", op_names[w->op]);
  double t0 = now_s();
  TileDiag d;
  tile_diag_init(&d, NULL, path, src, len);
  TileModule *m = tile_parse(src, len, path, &d);
  TileObject obj;
  memset(&obj, 0, sizeof obj);
  bool ok = m && !d.nerrors && tile_verify_module(m, &d) && !d.nerrors;
  if (ok) {
    TileVliwOptions o = {.target = t, .stop_after = TILE_VLIW_OBJECT};
    ok = tile_vliw_compile(m, &o, &obj, &d) == TILE_PASS_OK;
  }
  tile_module_free(m);
  free(src);
  if (!ok) return fail(w, "does not compile: %s", d.last[0] ? d.last : "(no message)");

  TileEmuOptions o;
  tile_emu_options_default(&o);
  o.mode = TILE_EMU_TIMING;
  o.threads = threads;
  tile_diag_init(&d, NULL, path, NULL, 0);
  TileEmu *e = tile_emu_create(&obj, t, &o, &d);
  tile_object_free(&obj);
  if (!e) return fail(w, "the emulator refused the object: %s", d.last);
  TileEmuStatus st = tile_emu_run(e);
  if (st != TILE_EMU_OK) {
    fail(w, "the run failed: %s",
         st == TILE_EMU_FAULTED ? tile_emu_fault(e)->message : tile_emu_error(e));
  } else {
    TileEmuStats s;
    tile_emu_stats(e, &s);
    w->cycles = s.cycles;
  }
  tile_emu_free(e);
  w->host_s = now_s() - t0;
}

/* ---- floors and the report ---- */

static void read_floors(const char *path, Floors *fl) {
  char op[3];
  fl->has_large = bench_floor(path, suite, "large_ratio", op, &fl->large);
  if (fl->has_large && strcmp(op, ">=") != 0)
    die("%s: the collectives floor is 'large_ratio >= X'", path);
  fl->has_small = bench_floor(path, suite, "small_vs_latency", op, &fl->small);
  if (fl->has_small && strcmp(op, "<=") != 0)
    die("%s: the collectives floor is 'small_vs_latency <= X'", path);
}

static void size_name(char *s, size_t n, int64_t bytes) {
  if (bytes >= 1 << 20) snprintf(s, n, "%lldMiB", (long long)(bytes >> 20));
  else snprintf(s, n, "%lldKiB", (long long)(bytes >> 10));
}

/* Which floor a row misses, if any: "" when none applies or it holds. */
static const char *missed(const Row *w, const Floors *fl) {
  if (!w->ok) return "failed";
  if (fl->has_large && w->bytes >= LARGE_BYTES && w->bound / (double)w->cycles < fl->large)
    return "large_ratio";
  if (fl->has_small && w->bytes <= SMALL_BYTES && (double)w->cycles / w->lat > fl->small)
    return "small_vs_latency";
  return "";
}

static double busbw_gbs(const Row *w, const TileTarget *t, double cycles) {
  double n = (double)tile_target_chips(t);
  double algbw = (double)w->bytes / (cycles / (double)t->clock_hz);
  double f = w->op == OP_ALL_REDUCE ? 2 * (n - 1) / n : (n - 1) / n;
  return algbw * f / 1e9;
}

static void print_rows(const Row *rows, int n, const TileTarget *t, const Floors *fl) {
  const Config *c = rows[0].cfg;
  printf("\n%s: %s, torus %s (%s), f32 over every axis; timing mode, one run each\n",
         c->name, t->name, c->torus, t->wrap[0] ? "wraparound on every axis"
                                                 : "no wraparound: lines");
  printf("%-15s %8s %12s %10s %10s %12s %10s %7s %8s\n", "op", "size", "cycles", "busbw_GB/s",
         "bound_GB/s", "bound_cyc", "lat_cyc", "ratio", "host_s");
  for (int i = 0; i < n; i++) {
    const Row *w = &rows[i];
    char sz[32];
    size_name(sz, sizeof sz, w->bytes);
    if (!w->ok) {
      printf("%-15s %8s FAILED: %s\n", op_names[w->op], sz, w->failure);
      continue;
    }
    const char *miss = missed(w, fl);
    printf("%-15s %8s %12lld %10.1f %10.1f %12.0f %10.0f %7.3f %8.2f%s%s\n", op_names[w->op],
           sz, (long long)w->cycles, busbw_gbs(w, t, (double)w->cycles),
           busbw_gbs(w, t, w->bound), w->bound, w->lat, w->bound / (double)w->cycles,
           w->host_s, *miss ? "  MISSED " : "", miss);
  }
}

int main(int argc, char **argv) {
  const char *floors = "bench/floors.txt", *only_cfg = NULL;
  bool only[OP_COUNT] = {0}, any_only = false;
  int threads = 1;
  int64_t max_size = sizes[NSIZES - 1];
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    bool has_value = i + 1 < argc;
    if (strcmp(a, "--floors") == 0 && has_value) floors = argv[++i];
    else if (strcmp(a, "--threads") == 0 && has_value) {
      threads = atoi(argv[++i]);
      if (threads < 1 || threads > 64) die("--threads takes 1 to 64, not '%s'", argv[i]);
    } else if (strcmp(a, "--max-size") == 0 && has_value) {
      max_size = strtoll(argv[++i], NULL, 0);
      if (max_size < sizes[0]) die("--max-size below the smallest size (%lld)",
                                   (long long)sizes[0]);
    } else if (strcmp(a, "--config") == 0 && has_value) {
      only_cfg = argv[++i];
      bool known = false;
      for (int c = 0; c < NCONFIGS; c++) known |= strcmp(configs[c].name, only_cfg) == 0;
      if (!known) die("no config '%s' (v5e, v4)", only_cfg);
    } else if (strcmp(a, "--only") == 0 && has_value) {
      const char *name = argv[++i];
      bool known = false;
      for (int o = 0; o < OP_COUNT; o++)
        if (strcmp(op_names[o], name) == 0) only[o] = known = true;
      if (!known) die("no collective '%s'", name);
      any_only = true;
    } else {
      fprintf(stderr, "usage: bench_collectives [--floors FILE] [--only OP]... [--config "
                      "v5e|v4] [--max-size BYTES] [--threads N]\n");
      return 2;
    }
  }
  Floors fl = {0};
  read_floors(floors, &fl);
  if (!fl.has_large || !fl.has_small)
    die("%s needs 'collectives large_ratio >= X' and 'collectives small_vs_latency <= X'",
        floors);
  printf("collectives: V = bytes of the whole array; bound: REFERENCE.md \"Collectives\" on "
         "the torus (bench/collectives/bench_collectives.c); ratio = bound / cycles = busbw / "
         "bound busbw; floors: ratio >= %.2f at >= 16 MiB, cycles <= %.2f x the latency term "
         "at <= 64 KiB\n", fl.large, fl.small);
  int status = 0;
  for (int c = 0; c < NCONFIGS; c++) {
    if (only_cfg && strcmp(only_cfg, configs[c].name) != 0) continue;
    TileTarget t;
    TileDiag d;
    tile_diag_init(&d, stderr, BENCH_NAME, NULL, 0);
    if (!tile_target_load(configs[c].target, &t, &d) ||
        !tile_target_set_torus(&t, configs[c].torus, &d))
      return 2;
    Row rows[OP_COUNT * NSIZES];
    int n = 0;
    for (int o = 0; o < OP_COUNT; o++) {
      if (any_only && !only[o]) continue;
      for (int s = 0; s < NSIZES && sizes[s] <= max_size; s++) {
        if (o == OP_ALL_TO_ALL && sizes[s] > A2A_MAX_BYTES) continue;
        Row *w = &rows[n++];
        memset(w, 0, sizeof *w);
        *w = (Row){.cfg = &configs[c], .op = o, .bytes = sizes[s]};
        measure(w, &t, threads);
        fprintf(stderr, "  %s %s %lld: %s\n", configs[c].name, op_names[o],
                (long long)sizes[s], w->ok ? "done" : w->failure);
      }
    }
    print_rows(rows, n, &t, &fl);
    for (int i = 0; i < n; i++) {
      const char *miss = missed(&rows[i], &fl);
      if (!*miss) continue;
      char sz[32];
      size_name(sz, sizeof sz, rows[i].bytes);
      printf("floor missed: %s %s %s %s: %s\n", suite, configs[c].name, op_names[rows[i].op], sz,
             rows[i].ok ? miss : rows[i].failure);
      status = 1;
    }
  }
  return status;
}
