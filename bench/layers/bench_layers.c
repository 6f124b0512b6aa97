/* The layers suite of bench/run: a tensor-parallel MLP block and a Llama-style decoder
 * layer (8B class: E 4096, F 14336, 32 query and 8 key/value heads of 128), at decode
 * and prefill shapes, over 4, 16 and 64 chips, and one decode step of a 32-layer model
 * on 64 chips (bench/layers/programs.c writes the programs).
 *
 * Each program is a global program with serving-layout annotations: it is compiled
 * for the target (partitioned into the per-chip program, scheduled, allocated) and
 * run on the whole torus in timing mode, strict.
 *
 *   cycles   emulated cycles of the step (the slowest chip)
 *   bound    the per-chip program's lower bound (bench/kernels/bound.h): the busiest
 *            of MXU, HBM, vector units and the collectives on the torus links (ici.h)
 *   ratio    cycles / bound, the table's last column
 *   run_s    wall-clock seconds of the emulation, with --threads host threads
 *
 * Floors (`layers METRIC OP VALUE` in the floors file): `NAME_ratio` for every row,
 * `model_decode_run_s`, the emulation time of the model's decode step, and
 * `model_decode_compile_s`, its compile's CPU time. Exits 1 when a floor is missed or a
 * program fails, 2 on a setup error.
 *
 * Options: --floors FILE, --target NAME (default v5e-like), --threads N (default 2),
 * --only NAME (repeatable), --print NAME (write that program's text and exit). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_NAME "bench_layers"
#include "../bench_util.h"
#include "../kernels/bound.h"
#include "programs.h"
#include "tile/emu.h"
#include "tile/object.h"
#include "tile/pass.h"
#include "tile/target.h"
#include "tile/text.h"
#include "tile/verify.h"
#include "tile/vliw.h"

static const char suite[] = "layers";
static const char *floors = "bench/floors.txt";
enum { MAX_ONLY = 32 };

/* The 8B-class model's dims; the rows below pick block, phase, MLP layout, mesh and batch. */
#define MODEL .E = 4096, .F = 14336, .H = 32, .Hkv = 8, .D = 128

typedef struct Row {
  const char *name;
  LayerShape s;
  bool compare; /* shown beside another layout's row; no floor of its own */
} Row;

static const Row rows[] = {
    /* decode: gathered (its gather hides w_down's stream; Megatron's all_reduce comes
     * after the last matmul, with nothing left to overlap it), the Megatron rows beside
     * them for comparison */
    {"mlp_decode_4", {BLOCK_MLP, PHASE_DECODE, 1, 4, 1, MODEL, .B = 8, .mlp = MLP_GATHERED}},
    {"mlp_decode_16", {BLOCK_MLP, PHASE_DECODE, 4, 4, 1, MODEL, .B = 8, .mlp = MLP_GATHERED}},
    {"mlp_decode_64", {BLOCK_MLP, PHASE_DECODE, 8, 8, 1, MODEL, .B = 8, .mlp = MLP_GATHERED}},
    {"mlp_decode_4_megatron", {BLOCK_MLP, PHASE_DECODE, 1, 4, 1, MODEL, .B = 8}, true},
    {"mlp_decode_16_megatron", {BLOCK_MLP, PHASE_DECODE, 4, 4, 1, MODEL, .B = 8}, true},
    {"mlp_decode_64_megatron", {BLOCK_MLP, PHASE_DECODE, 8, 8, 1, MODEL, .B = 8}, true},
    /* prefill: sequence-parallel Megatron (gathered would move 2048 x 14336
     * activations), the Megatron rows beside them */
    {"mlp_prefill_4", {BLOCK_MLP, PHASE_PREFILL, 1, 4, 1, MODEL, .B = 1, .L = 2048, .mlp = MLP_SEQUENCE}},
    {"mlp_prefill_16", {BLOCK_MLP, PHASE_PREFILL, 4, 4, 1, MODEL, .B = 1, .L = 2048, .mlp = MLP_SEQUENCE}},
    {"mlp_prefill_64", {BLOCK_MLP, PHASE_PREFILL, 8, 8, 1, MODEL, .B = 1, .L = 2048, .mlp = MLP_SEQUENCE}},
    {"mlp_prefill_4_megatron", {BLOCK_MLP, PHASE_PREFILL, 1, 4, 1, MODEL, .B = 1, .L = 2048}, true},
    {"mlp_prefill_16_megatron", {BLOCK_MLP, PHASE_PREFILL, 4, 4, 1, MODEL, .B = 1, .L = 2048}, true},
    {"mlp_prefill_64_megatron", {BLOCK_MLP, PHASE_PREFILL, 8, 8, 1, MODEL, .B = 1, .L = 2048}, true},
    /* decode: 8 sequences per d-group, 2048 cached positions */
    {"layer_decode_4", {BLOCK_LAYER, PHASE_DECODE, 1, 4, 1, MODEL, .B = 8, .S = 2048}},
    {"layer_decode_16", {BLOCK_LAYER, PHASE_DECODE, 4, 4, 1, MODEL, .B = 32, .S = 2048}},
    {"layer_decode_64", {BLOCK_LAYER, PHASE_DECODE, 8, 8, 1, MODEL, .B = 64, .S = 2048}},
    /* prefill: one sequence of 2048 tokens per d-group, sequence-parallel (the
     * residual stream split by rows over t too), the Megatron rows beside them */
    {"layer_prefill_4", {BLOCK_LAYER, PHASE_PREFILL, 1, 4, 1, MODEL, .B = 1, .L = 2048, .mlp = MLP_SEQUENCE}},
    {"layer_prefill_16", {BLOCK_LAYER, PHASE_PREFILL, 4, 4, 1, MODEL, .B = 4, .L = 2048, .mlp = MLP_SEQUENCE}},
    {"layer_prefill_64", {BLOCK_LAYER, PHASE_PREFILL, 8, 8, 1, MODEL, .B = 8, .L = 2048, .mlp = MLP_SEQUENCE}},
    {"layer_prefill_4_megatron", {BLOCK_LAYER, PHASE_PREFILL, 1, 4, 1, MODEL, .B = 1, .L = 2048}, true},
    {"layer_prefill_16_megatron", {BLOCK_LAYER, PHASE_PREFILL, 4, 4, 1, MODEL, .B = 4, .L = 2048}, true},
    {"layer_prefill_64_megatron", {BLOCK_LAYER, PHASE_PREFILL, 8, 8, 1, MODEL, .B = 8, .L = 2048}, true},
    {"model_decode", {BLOCK_LAYER, PHASE_DECODE, 8, 8, 32, MODEL, .B = 64, .S = 2048}},
};
enum { NROWS = sizeof rows / sizeof rows[0] };

typedef struct Result {
  bool ok;
  char failure[600];
  double compile_s, run_s;
  int64_t cycles;
  KernelWork work;
} Result;

static double wall_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static TileModule *parse(const char *name, const char *src, size_t len, TileDiag *d) {
  tile_diag_init(d, NULL, name, src, len);
  TileModule *m = tile_parse(src, len, name, d);
  if (!m || d->nerrors || !tile_verify_module(m, d) || d->nerrors) {
    tile_module_free(m);
    return NULL;
  }
  return m;
}

/* The bound of the program each chip runs. */
static bool bound(const char *name, const char *src, size_t len, const TileTarget *t,
                  KernelWork *w, char *why, size_t nwhy) {
  TileDiag d;
  TileModule *m = parse(name, src, len, &d);
  static const char *const passes[] = {"shard_prop", "spmd"};
  bool ok = m && tile_run_pipeline(m, passes, 2, NULL, &d) == TILE_PASS_OK;
  ok = ok && program_work(m->funcs, m->meshes, t, w, &d);
  if (!ok) snprintf(why, nwhy, "no bound: %s", d.last[0] ? d.last : "(no message)");
  tile_module_free(m);
  return ok;
}

static void measure(const Row *row, const TileTarget *base, int threads, Result *r) {
  memset(r, 0, sizeof *r);
  size_t len;
  char *src = layer_program(&row->s, &len);
  if (!src) die("out of memory");
  TileTarget t = *base;
  char torus[32];
  snprintf(torus, sizeof torus, "%dx%d", row->s.dsize, row->s.tsize);
  TileDiag d;
  tile_diag_init(&d, NULL, row->name, NULL, 0);
  if (!tile_target_set_torus(&t, torus, &d)) die("torus %s: %s", torus, d.last);
  if (!bound(row->name, src, len, &t, &r->work, r->failure, sizeof r->failure)) goto out;

  double c0 = now_s();
  TileModule *m = parse(row->name, src, len, &d);
  TileObject obj;
  memset(&obj, 0, sizeof obj);
  TileVliwOptions o = {.target = &t, .stop_after = TILE_VLIW_OBJECT};
  bool ok = m && tile_vliw_compile(m, &o, &obj, &d) == TILE_PASS_OK;
  r->compile_s = now_s() - c0;
  tile_module_free(m);
  if (!ok) {
    snprintf(r->failure, sizeof r->failure, "does not compile: %s", d.last);
    goto out;
  }

  TileEmuOptions eo;
  tile_emu_options_default(&eo);
  eo.mode = TILE_EMU_TIMING;
  eo.threads = threads;
  tile_diag_init(&d, NULL, row->name, NULL, 0);
  TileEmu *e = tile_emu_create(&obj, &t, &eo, &d);
  tile_object_free(&obj);
  if (!e) {
    snprintf(r->failure, sizeof r->failure, "the emulator refused the object: %s", d.last);
    goto out;
  }
  double w0 = wall_s();
  TileEmuStatus st = tile_emu_run(e);
  r->run_s = wall_s() - w0;
  if (st != TILE_EMU_OK) {
    snprintf(r->failure, sizeof r->failure, "the run failed: %s",
             st == TILE_EMU_FAULTED ? tile_emu_fault(e)->message : tile_emu_error(e));
  } else {
    TileEmuStats s;
    tile_emu_stats(e, &s);
    r->cycles = s.cycles;
    r->ok = true;
  }
  tile_emu_free(e);
out:
  free(src);
}

/* Checks one metric against its floor; prints and returns 1 when missed. */
static int check(const char *metric, double value, bool required) {
  char op[3];
  double floor;
  if (!bench_floor(floors, suite, metric, op, &floor)) {
    if (!required) return 0;
    printf("no floor: %s %s\n", suite, metric);
    return 1;
  }
  bool ok = op[0] == '<' ? value <= floor : value >= floor;
  if (ok) return 0;
  printf("floor missed: %s %s %s %g (measured %.4g)\n", suite, metric, op, floor, value);
  return 1;
}

int main(int argc, char **argv) {
  const char *target_name = "v5e-like", *print = NULL;
  const char *only[MAX_ONLY];
  int nonly = 0, threads = 2;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    bool has_value = i + 1 < argc;
    if (strcmp(a, "--floors") == 0 && has_value) floors = argv[++i];
    else if (strcmp(a, "--target") == 0 && has_value) target_name = argv[++i];
    else if (strcmp(a, "--print") == 0 && has_value) print = argv[++i];
    else if (strcmp(a, "--threads") == 0 && has_value) {
      threads = atoi(argv[++i]);
      if (threads < 1 || threads > 256) die("--threads takes 1 to 256, not '%s'", argv[i]);
    } else if (strcmp(a, "--only") == 0 && has_value) {
      if (nonly == MAX_ONLY) die("at most %d --only", MAX_ONLY);
      only[nonly++] = argv[++i];
    } else {
      fprintf(stderr, "usage: bench_layers [--floors FILE] [--target NAME] [--threads N]\n"
                      "                    [--only NAME]... [--print NAME]\n");
      return 2;
    }
  }
  for (int j = 0; j < nonly; j++) {
    bool known = false;
    for (int i = 0; i < NROWS; i++) known |= strcmp(only[j], rows[i].name) == 0;
    if (!known) die("no program '%s'", only[j]);
  }
  if (print) {
    for (int i = 0; i < NROWS; i++)
      if (strcmp(rows[i].name, print) == 0) {
        size_t len;
        char *src = layer_program(&rows[i].s, &len);
        if (!src) die("out of memory");
        fwrite(src, 1, len, stdout);
        free(src);
        return 0;
      }
    die("no program '%s'", print);
  }
  TileTarget t;
  TileDiag d;
  tile_diag_init(&d, stderr, BENCH_NAME, NULL, 0);
  if (!tile_target_load(target_name, &t, &d)) return 2;

  printf("layers on %s, one run each in timing mode (%d host threads); bound: the per-chip "
         "program's busiest resource (bench/kernels/bound.h, ici.h)\n", t.name, threads);
  printf("%-22s %6s %10s %8s %12s %12s %-7s %6s\n", "program", "chips", "compile_s", "run_s",
         "cycles", "bound", "binds", "ratio");
  int status = 0;
  static Result res[NROWS];
  for (int i = 0; i < NROWS; i++) {
    bool chosen = nonly == 0;
    for (int j = 0; j < nonly; j++) chosen |= strcmp(only[j], rows[i].name) == 0;
    if (!chosen) continue;
    const Row *row = &rows[i];
    Result *r = &res[i];
    measure(row, &t, threads, r);
    int chips = row->s.dsize * row->s.tsize;
    if (!r->ok) {
      printf("%-22s %6d FAILED: %s\n", row->name, chips, r->failure);
      status = 1;
      continue;
    }
    double ratio = (double)r->cycles / r->work.bound;
    printf("%-22s %6d %10.2f %8.2f %12lld %12.0f %-7s %6.3f\n", row->name, chips, r->compile_s,
           r->run_s, (long long)r->cycles, r->work.bound,
           bound_resource_name(r->work.binding), ratio);
    fflush(stdout);
    char metric[96];
    snprintf(metric, sizeof metric, "%s_ratio", row->name);
    status |= check(metric, ratio, !row->compare);
    if (strcmp(row->name, "model_decode") == 0) {
      status |= check("model_decode_run_s", r->run_s, true);
      status |= check("model_decode_compile_s", r->compile_s, true);
    }
  }
  printf("\nbound terms (cycles per chip on %s)\n%-22s", t.name, "program");
  for (int k = 0; k < BOUND_COUNT; k++) printf(" %10s", bound_resource_name((BoundResource)k));
  printf("\n");
  for (int i = 0; i < NROWS; i++) {
    if (!res[i].ok) continue;
    printf("%-22s", rows[i].name);
    for (int k = 0; k < BOUND_COUNT; k++) printf(" %10.0f", res[i].work.cycles[k]);
    printf("\n");
  }
  return status;
}
