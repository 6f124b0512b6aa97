/* The kernels suite of bench/run: every kernel of examples/kernels/ (each at its serving
 * shape) compiled for one target (v5e-like by default) and run on the emulator, one run.
 *
 *   compile_ms   CPU time of one compile of the in-memory source (parse, verify, the
 *                tensor passes, lowering, scheduling, allocation, layout, emission):
 *                the median of --repeats compiles
 *   cycles       emulated cycles of the object in timing mode, strict (a hazard is a
 *                failure, not a number)
 *   bound        the analytical lower bound (bound.h): the cycles of the busiest of
 *                MXU, HBM, vector, XLU, vector load and store for the program's work
 *   ratio        cycles / bound, the table's last column
 *
 * Floors come from the floors file (`SUITE METRIC OP VALUE`, suite `kernels`):
 * `NAME_ratio` for each kernel (every kernel must have one) and `compile_ms`, which
 * holds for every kernel. Two of the compiles must give byte-identical objects. Exits 1
 * when a floor is missed or a kernel fails to compile or run, 2 on a setup error.
 *
 * Options: --floors FILE, --dir DIR (the kernels, default examples/kernels), --target
 * NAME, --torus SHAPE (default 1x1: one chip), --repeats N, --only NAME (one kernel; repeatable), --trace NAME=FILE.json (write
 * the emulator's trace of that kernel's run). */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <dirent.h>

#define BENCH_NAME "bench_kernels"
#include "../bench_util.h"
#include "bound.h"
#include "tile/emu.h"
#include "tile/object.h"
#include "tile/target.h"
#include "tile/text.h"
#include "tile/verify.h"
#include "tile/vliw.h"

enum { MAX_KERNELS = 64, MAX_REPEATS = 101, MAX_ONLY = 16 };
#define SLOW_COMPILE_MS 1000.0

static const char suite[] = "kernels";

typedef struct Kernel {
  char name[64];
  char path[512];
  char *src;
  size_t len;
  /* floors */
  bool has_floor;
  double floor;
  /* measured */
  bool ok;             /* compiled, ran without a fault */
  char failure[600];
  double compile_ms;
  bool measured_once; /* compiled once (too slow to repeat); objects not compared */
  int64_t cycles;
  KernelWork work;
  char shapes[160];
} Kernel;

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) die("cannot read %s", path);
  buf[n] = 0;
  fclose(f);
  *len = (size_t)n;
  return buf;
}

static int by_name(const void *a, const void *b) {
  return strcmp(((const Kernel *)a)->name, ((const Kernel *)b)->name);
}

static int find_kernels(const char *dir, Kernel *ks) {
  DIR *d = opendir(dir);
  if (!d) die("cannot open the kernels folder %s", dir);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t len = strlen(e->d_name);
    if (len < 6 || strcmp(e->d_name + len - 5, ".tile") != 0) continue;
    if (n == MAX_KERNELS) die("more than %d kernels in %s", MAX_KERNELS, dir);
    Kernel *k = &ks[n++];
    memset(k, 0, sizeof *k);
    snprintf(k->name, sizeof k->name, "%.*s", (int)(len - 5), e->d_name);
    snprintf(k->path, sizeof k->path, "%s/%s", dir, e->d_name);
  }
  closedir(d);
  qsort(ks, (size_t)n, sizeof *ks, by_name);
  return n;
}

/* ---- floors ---- */

typedef struct Floors {
  bool has_compile;
  double compile_ms;
} Floors;

static void read_floors(const char *path, Kernel *ks, int n, Floors *fl) {
  FILE *f = fopen(path, "r");
  if (!f) die("cannot read the floors file %s", path);
  char line[512];
  int lineno = 0;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    char s[64], metric[96], op[8], value[64];
    char *hash = strchr(line, '#');
    if (hash) *hash = 0;
    int got = sscanf(line, "%63s %95s %7s %63s", s, metric, op, value);
    if (got <= 0) continue;
    if (got != 4) die("%s:%d: a floor is 'SUITE METRIC OP VALUE'", path, lineno);
    if (strcmp(s, suite) != 0) continue;
    if (strcmp(op, "<=") != 0)
      die("%s:%d: kernel floors are upper limits ('<='), not '%s'", path, lineno, op);
    char *end;
    double v = strtod(value, &end);
    if (*end || !(v > 0)) die("%s:%d: '%s' is not a positive number", path, lineno, value);
    if (strcmp(metric, "compile_ms") == 0) {
      fl->has_compile = true;
      fl->compile_ms = v;
      continue;
    }
    size_t ml = strlen(metric);
    Kernel *hit = NULL;
    for (int i = 0; i < n; i++) {
      size_t nl = strlen(ks[i].name);
      if (ml == nl + 6 && strncmp(metric, ks[i].name, nl) == 0 &&
          strcmp(metric + nl, "_ratio") == 0)
        hit = &ks[i];
    }
    if (!hit) die("%s:%d: no kernel for metric '%s' (metrics: NAME_ratio, compile_ms)", path,
                  lineno, metric);
    hit->has_floor = true;
    hit->floor = v;
  }
  fclose(f);
}

/* ---- compile and run ---- */

/* One compile of the in-memory source; returns false with the reason in why. The
 * object is kept when obj is not NULL. */
static bool compile_once(const Kernel *k, const TileTarget *t, TileObject *obj, char *why,
                         size_t nwhy) {
  TileDiag d;
  tile_diag_init(&d, NULL, k->path, k->src, k->len);
  TileModule *m = tile_parse(k->src, k->len, k->path, &d);
  bool ok = m && !d.nerrors && tile_verify_module(m, &d) && !d.nerrors;
  if (ok) {
    TileVliwOptions o = {.target = t, .stop_after = TILE_VLIW_OBJECT};
    TileObject tmp;
    memset(&tmp, 0, sizeof tmp);
    ok = tile_vliw_compile(m, &o, &tmp, &d) == TILE_PASS_OK;
    if (ok && obj) *obj = tmp;
    else if (ok) tile_object_free(&tmp);
  }
  if (!ok) snprintf(why, nwhy, "does not compile: %s", d.last[0] ? d.last : "(no message)");
  tile_module_free(m);
  return ok;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static bool same_object(const TileObject *a, const TileObject *b) {
  uint8_t *x = NULL, *y = NULL;
  size_t nx = 0, ny = 0;
  bool same = tile_object_write(a, &x, &nx) && tile_object_write(b, &y, &ny) && nx == ny &&
              memcmp(x, y, nx) == 0;
  free(x);
  free(y);
  return same;
}

static void fail(Kernel *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(Kernel *k, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(k->failure, sizeof k->failure, fmt, ap);
  va_end(ap);
  k->ok = false;
}

/* The parameter and result shapes, "1024x1024xbf16, 1024x1024xbf16 -> 1024x1024xbf16". */
static void describe(Kernel *k, const TileFunc *f) {
  char *p = k->shapes;
  size_t left = sizeof k->shapes;
  for (int i = 0; i < f->body->nargs + f->nret; i++) {
    const TileType *ty = i < f->body->nargs ? &f->body->args[i]->type
                                            : &f->ret[i - f->body->nargs];
    char text[96];
    tile_type_format(ty, text, sizeof text);
    /* "tensor<...>" -> "..." */
    const char *in = strncmp(text, "tensor<", 7) == 0 ? text + 7 : text;
    size_t n = strlen(in);
    if (n && in[n - 1] == '>') n--;
    const char *sep = i == 0 ? "" : i == f->body->nargs ? " -> " : ", ";
    int w = snprintf(p, left, "%s%.*s", sep, (int)n, in);
    if (w < 0 || (size_t)w >= left) return;
    p += w;
    left -= (size_t)w;
  }
}

static void measure(Kernel *k, const TileTarget *t, int repeats, const char *trace_path) {
  k->ok = true;
  k->src = read_file(k->path, &k->len);
  if (!k->src) return fail(k, "cannot read %s", k->path);

  /* the bound, from the program as written */
  TileDiag d;
  tile_diag_init(&d, NULL, k->path, k->src, k->len);
  TileModule *m = tile_parse(k->src, k->len, k->path, &d);
  if (!m || d.nerrors || !tile_verify_module(m, &d) || d.nerrors) {
    tile_module_free(m);
    return fail(k, "does not parse and verify: %s", d.last);
  }
  TileFunc *f = tile_vliw_find_func(m, NULL, &d);
  if (!f || !kernel_work(f, t, &k->work, &d)) {
    tile_module_free(m);
    return fail(k, "no bound: %s", d.last);
  }
  describe(k, f);
  tile_module_free(m);

  /* compile time: the median of `repeats` compiles; the first two objects compared.
   * A compile slower than SLOW_COMPILE_MS misses its floor by far: it is measured once,
   * so one slow kernel does not hold up the suite (the e2e tests compare objects). */
  double ms[MAX_REPEATS];
  TileObject obj, again;
  char why[600];
  for (int i = 0; i < repeats; i++) {
    if (i == 1 && ms[0] > SLOW_COMPILE_MS) {
      repeats = 1;
      k->measured_once = true;
      break;
    }
    double t0 = now_s();
    bool ok = compile_once(k, t, i == 0 ? &obj : i == 1 ? &again : NULL, why, sizeof why);
    ms[i] = (now_s() - t0) * 1e3;
    if (!ok) {
      if (i >= 1) tile_object_free(&obj);
      if (i >= 2) tile_object_free(&again);
      return fail(k, "%s", why);
    }
  }
  qsort(ms, (size_t)repeats, sizeof ms[0], cmp_double);
  k->compile_ms = ms[repeats / 2];
  if (repeats > 1) {
    bool same = same_object(&obj, &again);
    tile_object_free(&again);
    if (!same) {
      tile_object_free(&obj);
      return fail(k, "two compiles gave different objects");
    }
  }

  /* one run in timing mode */
  TileEmuOptions o;
  tile_emu_options_default(&o);
  o.mode = TILE_EMU_TIMING;
  o.threads = 1;
  o.trace = trace_path != NULL;
  tile_diag_init(&d, NULL, k->path, NULL, 0);
  TileEmu *e = tile_emu_create(&obj, t, &o, &d);
  tile_object_free(&obj);
  if (!e) return fail(k, "the emulator refused the object: %s", d.last);
  TileEmuStatus st = tile_emu_run(e);
  if (trace_path) {
    FILE *tf = fopen(trace_path, "w");
    if (!tf || !tile_emu_write_trace(e, tf)) die("cannot write the trace %s", trace_path);
    fclose(tf);
  }
  if (st != TILE_EMU_OK) {
    fail(k, "the run failed: %s",
         st == TILE_EMU_FAULTED ? tile_emu_fault(e)->message : tile_emu_error(e));
  } else {
    TileEmuStats s;
    tile_emu_stats(e, &s);
    k->cycles = s.cycles;
  }
  tile_emu_free(e);
}

/* ---- the report ---- */

static void print_tables(const Kernel *ks, int n, const TileTarget *t, const Floors *fl,
                         int repeats) {
  printf("kernels on %s (torus %dx%d: one chip), one run each in timing mode; compile_ms: "
         "CPU time, the median of %d compiles; bound: bench/kernels/bound.h\n",
         t->name, t->torus[0], t->torus_rank > 1 ? t->torus[1] : 1, repeats);
  printf("%-18s %10s %12s %12s %-7s %-8s %s\n", "kernel", "compile_ms", "cycles", "bound",
         "binds", "floor", "ratio");
  for (int i = 0; i < n; i++) {
    const Kernel *k = &ks[i];
    char floor[16] = "-";
    if (k->has_floor) snprintf(floor, sizeof floor, "<= %.3g", k->floor);
    if (!k->ok) {
      printf("%-18s FAILED: %s\n", k->name, k->failure);
      continue;
    }
    double ratio = (double)k->cycles / k->work.bound;
    bool missed = (k->has_floor && ratio > k->floor) ||
                  (fl->has_compile && k->compile_ms > fl->compile_ms);
    printf("%-18s %9.2f%s %12lld %12.0f %-7s %-8s %.3f%s\n", k->name, k->compile_ms,
           k->measured_once ? "*" : " ",
           (long long)k->cycles, k->work.bound, bound_resource_name(k->work.binding), floor,
           ratio, missed ? "  MISSED" : "");
  }
  for (int i = 0; i < n; i++)
    if (ks[i].measured_once) {
      printf("* compiled once: slower than %.0f ms, so not repeated (and the two-compile "
             "object comparison is left to tests/e2e/test_kernels.py)\n", SLOW_COMPILE_MS);
      break;
    }
  printf("\nwork and bound terms (cycles on %s)\n", t->name);
  printf("%-18s", "kernel");
  for (int r = 0; r < BOUND_COUNT; r++) printf(" %10s", bound_resource_name((BoundResource)r));
  printf("  shapes\n");
  for (int i = 0; i < n; i++) {
    const Kernel *k = &ks[i];
    if (!k->shapes[0]) continue;
    printf("%-18s", k->name);
    for (int r = 0; r < BOUND_COUNT; r++) printf(" %10.0f", k->work.cycles[r]);
    printf("  %s\n", k->shapes);
  }
}

static int check_floors(const Kernel *ks, int n, const Floors *fl) {
  int status = 0;
  for (int i = 0; i < n; i++) {
    const Kernel *k = &ks[i];
    if (!k->ok) {
      printf("failed: %s %s\n", k->name, k->failure);
      status = 1;
      continue;
    }
    double ratio = (double)k->cycles / k->work.bound;
    if (k->has_floor && ratio > k->floor) {
      printf("floor missed: %s %s_ratio <= %g (measured %.4g: %lld cycles, bound %.0f %s)\n",
             suite, k->name, k->floor, ratio, (long long)k->cycles, k->work.bound,
             bound_resource_name(k->work.binding));
      status = 1;
    }
    if (fl->has_compile && k->compile_ms > fl->compile_ms) {
      printf("floor missed: %s compile_ms <= %g (%s: %.2f ms)\n", suite, fl->compile_ms,
             k->name, k->compile_ms);
      status = 1;
    }
  }
  return status;
}

int main(int argc, char **argv) {
  const char *floors = "bench/floors.txt", *dir = "examples/kernels", *target_name = "v5e-like";
  const char *torus = "1x1";
  const char *only[MAX_ONLY], *trace_kernel = NULL, *trace_path = NULL;
  int nonly = 0, repeats = 5;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    bool has_value = i + 1 < argc;
    if (strcmp(a, "--floors") == 0 && has_value) floors = argv[++i];
    else if (strcmp(a, "--dir") == 0 && has_value) dir = argv[++i];
    else if (strcmp(a, "--target") == 0 && has_value) target_name = argv[++i];
    else if (strcmp(a, "--torus") == 0 && has_value) torus = argv[++i];
    else if (strcmp(a, "--repeats") == 0 && has_value) {
      repeats = atoi(argv[++i]);
      if (repeats < 1 || repeats > MAX_REPEATS)
        die("--repeats takes 1 to %d, not '%s'", MAX_REPEATS, argv[i]);
    } else if (strcmp(a, "--only") == 0 && has_value) {
      if (nonly == MAX_ONLY) die("at most %d --only", MAX_ONLY);
      only[nonly++] = argv[++i];
    } else if (strcmp(a, "--trace") == 0 && has_value) {
      char *eq = strchr(argv[++i], '=');
      if (!eq || eq == argv[i] || !eq[1]) die("--trace takes NAME=FILE.json");
      *eq = 0;
      trace_kernel = argv[i];
      trace_path = eq + 1;
    } else {
      fprintf(stderr,
              "usage: bench_kernels [--floors FILE] [--dir DIR] [--target NAME] [--torus SHAPE]\n"
              "                     [--repeats N] [--only NAME]... [--trace NAME=FILE.json]\n");
      return 2;
    }
  }
  TileTarget t;
  TileDiag d;
  tile_diag_init(&d, stderr, "bench_kernels", NULL, 0);
  /* The kernels are single-chip programs: one chip, not the target's default slice
   * (every chip of a torus would run the same code). */
  if (!tile_target_load(target_name, &t, &d) || !tile_target_set_torus(&t, torus, &d)) return 2;

  static Kernel all[MAX_KERNELS];
  int n = find_kernels(dir, all);
  if (n == 0) die("no .tile kernels in %s", dir);
  Floors fl = {0};
  read_floors(floors, all, n, &fl); /* before the long part: a bad floors file fails fast */
  for (int i = 0; i < n; i++)
    if (!all[i].has_floor) die("kernel %s has no floor '%s %s_ratio <= X' in %s", all[i].name,
                               suite, all[i].name, floors);

  static Kernel ks[MAX_KERNELS];
  int nk = 0;
  for (int i = 0; i < n; i++) {
    bool chosen = nonly == 0;
    for (int j = 0; j < nonly; j++) chosen |= strcmp(only[j], all[i].name) == 0;
    if (chosen) ks[nk++] = all[i];
  }
  for (int j = 0; j <= nonly; j++) {
    const char *name = j < nonly ? only[j] : trace_kernel;
    bool found = name == NULL;
    for (int i = 0; i < nk && name; i++) found |= strcmp(name, ks[i].name) == 0;
    if (!found) die("no kernel '%s' among those chosen from %s", name, dir);
  }
  for (int i = 0; i < nk; i++) {
    bool traced = trace_kernel && strcmp(trace_kernel, ks[i].name) == 0;
    measure(&ks[i], &t, repeats, traced ? trace_path : NULL);
    fprintf(stderr, "  %s: %s\n", ks[i].name, ks[i].ok ? "done" : ks[i].failure);
  }
  print_tables(ks, nk, &t, &fl, repeats);
  int status = check_floors(ks, nk, &fl);
  for (int i = 0; i < nk; i++) free(ks[i].src);
  return status;
}
