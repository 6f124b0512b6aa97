/* `tilec run`: runs a program on the torus emulator (docs/emulator.md), or a .tile
 * source on a GPU when --target names a CUDA target (run_cuda.c, docs/gpu.md).
 *
 *   tilec run PROGRAM [--target NAME] [--torus XxYxZ] [--threads N]
 *             [--mode functional|timing] [--in NAME=FILE.npy]... [--out NAME=FILE.npy]...
 *             [--trace FILE.json] [--stats] [--stats-json FILE|-] [--no-strict]
 *             [--watchdog N] [--per-chip] [--help]
 *   tilec run FILE.tile --target cuda-sm90 [--in ...] [--out ...] [--stats]
 *             [--repeat N] [--warmup N] [--compile-only]
 *
 * PROGRAM is an object (.tobj, from `tilec asm` or the VLIW backend), assembly (.s,
 * assembled first) or a .tile source (compiled first, exactly as `tilec FILE -o
 * OUT.tobj` would, for --target or tiny and --torus, its function chosen by --func).
 * The machine is the object's target unless --target names another (a name or a
 * .target path); --torus reshapes it. A compiled source also prints the unit table.
 *
 * Inputs and outputs are .npy arrays bound to the object's symbols: the array's dtype
 * must be the symbol's element type (f32 data is also accepted for a bf16 input and
 * rounded to nearest even), its shape the symbol's, with a leading chip dimension for a
 * per-chip symbol.
 *
 * A global program (a func on a mesh with `shard` annotations; the compile
 * partitions it) runs on the mesh's torus unless --torus says otherwise, and its
 * arrays are global (run_global.c): an input of the parameter's global shape is split
 * into the chips' blocks by the parameter's sharding (one with a leading chip
 * dimension and the per-chip shape is bound as it is), and each output is assembled
 * into the global array from the chips' blocks (--per-chip: written per chip).
 *
 * Prints every chip's cycles (with --stats, the unit table, stalls and bytes per link)
 * and the fault that stopped the run, if one did; --stats-json writes the statistics
 * as JSON to a file, or to stdout instead of the text for '-'.
 *
 * Exit codes: 0 the run finished, 1 bad input or a fault, 2 an internal error. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "tile/asm.h"
#include "tile/emu.h"
#include "tile/npy.h"
#include "tile/object.h"
#include "tile/target.h"
#include "run_cuda.h"
#include "run_global.h"
#include "tilec.h"

enum { MAX_BINDINGS = 64 };

typedef TilecBinding Binding;

typedef struct RunArgs {
  const char *program, *target, *torus, *trace, *stats_json, *func;
  int threads;
  int repeat, warmup; /* GPU runs: timed and untimed runs of the launch sequence */
  TileEmuMode mode;
  bool stats, strict, help, compile_only;
  bool per_chip; /* a global program's outputs per chip, not assembled */
  const char *emu_option; /* an option only the emulator understands, if one was given */
  int64_t watchdog;
  Binding in[MAX_BINDINGS], out[MAX_BINDINGS];
  int nin, nout;
} RunArgs;

static const char usage[] =
    "usage: tilec run PROGRAM [options]\n"
    "  PROGRAM                an object (.tobj), assembly (.s) or a .tile source (compiled\n"
    "                         first; prints the unit table too)\n"
    "  --func NAME            the func of a .tile source to compile (default: the only one)\n"
    "  --target NAME          run on this machine (a name or a .target path) instead of the\n"
    "                         object's\n"
    "  --torus XxYxZ          reshape the torus\n"
    "  --threads N            host threads (results do not depend on it; default 1)\n"
    "  --mode functional|timing   values and timing (default), or timing only\n"
    "  --in NAME=FILE.npy     bind an input symbol (repeatable)\n"
    "  --out NAME=FILE.npy    write an output symbol after the run (repeatable)\n"
    "  --trace FILE.json      write a Chrome/Perfetto trace (open in ui.perfetto.dev)\n"
    "  --stats                print per-unit busy cycles, stalls and bytes per link\n"
    "  --stats-json FILE      write the statistics as JSON ('-': to stdout, instead of\n"
    "                         the text)\n"
    "  --no-strict            read through hazards (old values) instead of stopping\n"
    "  --watchdog N           stop as runaway after N cycles (default: the target's)\n"
    "  --per-chip             a global program's outputs as each chip's block, with a\n"
    "                         leading chip dimension (default: the global arrays)\n"
    "on a GPU (--target cuda-sm80, cuda-sm90, ...; a .tile source; docs/gpu.md):\n"
    "  --repeat N             time N runs and report the fastest (default 1)\n"
    "  --warmup N             untimed runs before the timed ones (default 0)\n"
    "  --compile-only         compile through the JIT cache and print the entry; no GPU\n"
    "                         needed\n"
    "  without a GPU a CUDA run says 'no CUDA device' and exits 1\n"
    "exit codes: 0 finished, 1 bad input or a fault, 2 internal error\n";

static bool parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) return false;
  *out = v;
  return true;
}

static bool add_binding(Binding *list, int *n, const char *opt, const char *value) {
  const char *eq = strchr(value, '=');
  if (!eq || eq == value || !eq[1]) {
    tilec_fail("run: %s takes NAME=FILE.npy, not '%s'", opt, value);
    return false;
  }
  if (*n == MAX_BINDINGS) {
    tilec_fail("run: at most %d %s options", MAX_BINDINGS, opt);
    return false;
  }
  list[(*n)++] = (Binding){value, (size_t)(eq - value), eq + 1};
  return true;
}

static int parse_args(int argc, char **argv, RunArgs *a) {
  memset(a, 0, sizeof *a);
  a->threads = 1;
  a->strict = true;
  a->mode = TILE_EMU_FUNCTIONAL;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      a->help = true;
      return TILEC_OK;
    }
    if (strcmp(arg, "--stats") == 0) {
      a->stats = true;
      continue;
    }
    if (strcmp(arg, "--no-strict") == 0) {
      a->strict = false;
      a->emu_option = arg;
      continue;
    }
    if (strcmp(arg, "--compile-only") == 0) {
      a->compile_only = true;
      continue;
    }
    if (strcmp(arg, "--per-chip") == 0) {
      a->per_chip = true;
      a->emu_option = arg;
      continue;
    }
    if (arg[0] != '-' || !arg[1]) {
      if (a->program) {
        tilec_fail("run takes one program (got '%s' and '%s')", a->program, arg);
        return TILEC_BAD_INPUT;
      }
      a->program = arg;
      continue;
    }
    /* options with a value: --opt VALUE or --opt=VALUE */
    static const char *const with_value[] = {"--target", "--torus",    "--threads",
                                             "--mode",   "--in",       "--out",
                                             "--trace",  "--watchdog", "--stats-json",
                                             "--func",   "--repeat",   "--warmup"};
    const char *opt = NULL, *value = NULL;
    for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++) {
      size_t n = strlen(with_value[k]);
      if (strncmp(arg, with_value[k], n) == 0 && (arg[n] == '\0' || arg[n] == '=')) {
        opt = with_value[k];
        value = arg[n] == '=' ? arg + n + 1 : NULL;
      }
    }
    if (!opt) {
      tilec_fail("run: unknown option '%s'", arg);
      fprintf(stderr, "Run 'tilec run --help' for usage.\n");
      return TILEC_BAD_INPUT;
    }
    if (!value) {
      if (i + 1 >= argc) {
        tilec_fail("run: %s needs a value", opt);
        return TILEC_BAD_INPUT;
      }
      value = argv[++i];
    }
    int64_t v;
    static const char *const emulator_only[] = {"--torus",    "--threads",   "--mode", "--trace",
                                                "--watchdog", "--stats-json"};
    for (size_t k = 0; k < sizeof emulator_only / sizeof emulator_only[0]; k++)
      if (strcmp(opt, emulator_only[k]) == 0) a->emu_option = emulator_only[k];
    if (strcmp(opt, "--target") == 0) a->target = value;
    else if (strcmp(opt, "--torus") == 0) a->torus = value;
    else if (strcmp(opt, "--trace") == 0) a->trace = value;
    else if (strcmp(opt, "--stats-json") == 0) a->stats_json = value;
    else if (strcmp(opt, "--func") == 0) a->func = value;
    else if (strcmp(opt, "--threads") == 0) {
      if (!parse_int(value, 1, 4096, &v)) {
        tilec_fail("run: --threads takes a number from 1 to 4096, not '%s'", value);
        return TILEC_BAD_INPUT;
      }
      a->threads = (int)v;
    } else if (strcmp(opt, "--watchdog") == 0) {
      if (!parse_int(value, 1, INT64_MAX, &v)) {
        tilec_fail("run: --watchdog takes a positive number of cycles, not '%s'", value);
        return TILEC_BAD_INPUT;
      }
      a->watchdog = v;
    } else if (strcmp(opt, "--repeat") == 0 || strcmp(opt, "--warmup") == 0) {
      bool rep = opt[2] == 'r';
      if (!parse_int(value, rep ? 1 : 0, 1000000, &v)) {
        tilec_fail("run: %s takes a number from %d to 1000000, not '%s'", opt, rep ? 1 : 0, value);
        return TILEC_BAD_INPUT;
      }
      *(rep ? &a->repeat : &a->warmup) = (int)v;
    } else if (strcmp(opt, "--mode") == 0) {
      if (!tile_emu_mode_parse(value, &a->mode)) {
        tilec_fail("run: --mode is 'functional' or 'timing', not '%s'", value);
        return TILEC_BAD_INPUT;
      }
    } else if (strcmp(opt, "--in") == 0) {
      if (!add_binding(a->in, &a->nin, opt, value)) return TILEC_BAD_INPUT;
    } else if (!add_binding(a->out, &a->nout, opt, value)) {
      return TILEC_BAD_INPUT;
    }
  }
  if (!a->program) {
    tilec_fail("run needs a program (an object or assembly file)");
    fprintf(stderr, "Run 'tilec run --help' for usage.\n");
    return TILEC_BAD_INPUT;
  }
  return TILEC_OK;
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The program as an object: read, assembled from .s, or compiled from .tile (for the
 * given target, else the default one, with --torus applied). */
static int load_program(const RunArgs *a, const TileTarget *given, TileObject *obj) {
  if (a->func && !ends_with(a->program, ".tile")) {
    tilec_fail("run: --func chooses the function of a .tile source; %s is not one", a->program);
    return TILEC_BAD_INPUT;
  }
  char *bytes;
  size_t len;
  int rc = tilec_read_file(a->program, &bytes, &len);
  if (rc != TILEC_OK) return rc;
  if (ends_with(a->program, ".tile")) {
    TileTarget fallback;
    if (!given) {
      rc = tilec_load_target("tilec", TILEC_DEFAULT_TARGET, a->torus, &fallback);
      given = &fallback;
    }
    if (rc == TILEC_OK) rc = tilec_compile_object(a->program, bytes, len, given, a->func, obj);
    free(bytes);
    return rc;
  }
  TileDiag d;
  bool ok;
  if (ends_with(a->program, ".s")) {
    tile_diag_init(&d, stderr, a->program, bytes, len);
    ok = tile_asm(bytes, len, a->program, given, obj, &d);
  } else {
    tile_diag_init(&d, stderr, a->program, NULL, 0);
    ok = tile_object_read((const uint8_t *)bytes, len, obj, &d);
  }
  free(bytes);
  return ok ? TILEC_OK : TILEC_BAD_INPUT;
}

static const TileObjSymbol *find_symbol(const TileObject *obj, const Binding *b) {
  for (int32_t i = 0; i < obj->nsyms; i++)
    if (strlen(obj->syms[i].name) == b->name_len &&
        memcmp(obj->syms[i].name, b->name, b->name_len) == 0)
      return &obj->syms[i];
  tilec_fail("run: the program has no symbol '%.*s'", (int)b->name_len, b->name);
  return NULL;
}

/* The array shape of a symbol as .npy files give it: a leading chip dimension for a
 * per-chip symbol. */
static int symbol_shape(const TileObjSymbol *s, int32_t chips, int64_t *dims) {
  int r = 0;
  if (s->per_chip) dims[r++] = chips;
  for (int k = 0; k < s->rank && r < TILE_MAX_RANK; k++) dims[r++] = s->dims[k];
  return r;
}

/* True when a holds the global shape of v. */
static bool is_global_shape(const TileVliwGlobalValue *v, const TileNpy *a) {
  int rank = v->global.kind == TILE_TY_TENSOR ? v->global.rank : 0;
  bool same = a->rank == rank;
  for (int k = 0; same && k < rank; k++) same = a->dims[k] == v->global.dims[k];
  return same;
}

static int bind_input(TileEmu *e, const TileObject *obj, const Binding *b, const TilecGlobal *g,
                      const TileTarget *t) {
  const TileObjSymbol *s = find_symbol(obj, b);
  if (!s) return TILEC_BAD_INPUT;
  TileNpy a;
  TileDiag d;
  tile_diag_init(&d, stderr, b->file, NULL, 0);
  if (!tile_npy_read_file(b->file, &a, &d)) return TILEC_BAD_INPUT;
  int64_t dims[TILE_MAX_RANK + 1];
  int rank = symbol_shape(s, tile_emu_chips(e), dims);
  const TileVliwGlobalValue *gv = s->per_chip ? tilec_global_find(g, b->name, b->name_len) : NULL;
  if (gv && !tilec_global_blocks_match(g, gv, s->rank, s->dims)) return TILEC_INTERNAL;
  bool global = gv && is_global_shape(gv, &a);
  bool shape_ok = global || rank == a.rank;
  for (int k = 0; shape_ok && !global && k < rank; k++) shape_ok = dims[k] == a.dims[k];
  if (!shape_ok || !tilec_npy_elem_fits((TileElem)s->elem, a.elem)) {
    char want[160], got[160];
    tilec_shape_text((TileElem)s->elem, rank, dims, want, sizeof want);
    tilec_shape_text(a.elem, a.rank, a.dims, got, sizeof got);
    if (gv) {
      char whole[160];
      tilec_shape_text((TileElem)s->elem, gv->global.kind == TILE_TY_TENSOR ? gv->global.rank : 0,
                 gv->global.dims, whole, sizeof whole);
      tilec_fail("run: --in %.*s: '%.*s' is %s globally (or %s, one block per chip); %s "
                 "holds %s", (int)b->name_len, b->name, (int)b->name_len, b->name, whole, want,
                 b->file, got);
    } else {
      tilec_fail("run: --in %.*s: '%.*s' is %s%s; %s holds %s", (int)b->name_len, b->name,
                 (int)b->name_len, b->name, want, s->per_chip ? " (one slice per chip)" : "",
                 b->file, got);
    }
    tile_npy_free(&a);
    return TILEC_BAD_INPUT;
  }
  if (s->elem == TILE_ELEM_BF16 && a.elem == TILE_ELEM_F32) {
    /* f32 data for a bf16 input: rounded to nearest even, in place */
    tilec_f32_to_bf16(a.data, a.nbytes / 4);
    a.nbytes = a.nbytes / 4 * 2;
  }
  if (global) {
    /* The global array becomes the per-chip one the emulator binds. */
    int esize = tile_npy_elem_bytes((TileElem)s->elem);
    size_t nbytes = (size_t)tile_emu_symbol_bytes(e, s->name);
    void *blocks = malloc(nbytes ? nbytes : 1);
    if (!blocks) {
      tilec_fail("run: out of memory splitting input '%s'", s->name);
      tile_npy_free(&a);
      return TILEC_INTERNAL;
    }
    tilec_global_copy(g, gv, t, esize, a.data, blocks, true);
    free(a.data);
    a.data = blocks;
    a.nbytes = nbytes;
  }
  int rc = TILEC_OK;
  if (!tile_emu_set_input(e, s->name, a.data, a.nbytes)) {
    tilec_fail("run: --in %.*s: %s", (int)b->name_len, b->name, tile_emu_error(e));
    rc = TILEC_BAD_INPUT;
  }
  tile_npy_free(&a);
  return rc;
}

static int write_output(TileEmu *e, const TileObject *obj, const Binding *b, const TilecGlobal *g,
                        const TileTarget *t, bool per_chip) {
  const TileObjSymbol *s = find_symbol(obj, b);
  if (!s) return TILEC_BAD_INPUT;
  int64_t n = tile_emu_symbol_bytes(e, s->name);
  void *buf = malloc(n > 0 ? (size_t)n : 1);
  if (!buf) {
    tilec_fail("run: out of memory reading output '%s'", s->name);
    return TILEC_INTERNAL;
  }
  if (!tile_emu_get_output(e, s->name, buf, (size_t)n)) {
    tilec_fail("run: --out %s: %s", s->name, tile_emu_error(e));
    free(buf);
    return TILEC_BAD_INPUT;
  }
  int64_t dims[TILE_MAX_RANK + 1];
  int rank = symbol_shape(s, tile_emu_chips(e), dims);
  const TileVliwGlobalValue *gv = s->per_chip && !per_chip ? tilec_global_find(g, s->name,
                                                                               strlen(s->name))
                                                           : NULL;
  if (gv && !tilec_global_blocks_match(g, gv, s->rank, s->dims)) {
    free(buf);
    return TILEC_INTERNAL;
  }
  if (gv) {
    /* The chips' blocks assembled into the global array. */
    int esize = tile_npy_elem_bytes((TileElem)s->elem);
    rank = gv->global.kind == TILE_TY_TENSOR ? gv->global.rank : 0;
    int64_t numel = 1;
    for (int k = 0; k < rank; k++) numel *= dims[k] = gv->global.dims[k];
    void *whole = malloc(numel > 0 ? (size_t)(numel * esize) : 1);
    if (!whole) {
      tilec_fail("run: out of memory assembling output '%s'", s->name);
      free(buf);
      return TILEC_INTERNAL;
    }
    tilec_global_copy(g, gv, t, esize, whole, buf, false);
    free(buf);
    buf = whole;
  }
  TileDiag d;
  tile_diag_init(&d, stderr, b->file, NULL, 0);
  bool ok = tile_npy_write_file(b->file, (TileElem)s->elem, rank, dims, buf, &d);
  free(buf);
  return ok ? TILEC_OK : TILEC_INTERNAL;
}

/* A .tile source on a GPU (run_cuda.c). */
static int run_cuda(const RunArgs *a, const char *arch) {
  if (!ends_with(a->program, ".tile")) {
    tilec_fail("run: a GPU runs .tile sources; %s is not one", a->program);
    return TILEC_BAD_INPUT;
  }
  if (a->emu_option) {
    tilec_fail("run: %s is an emulator option; %s is a GPU target", a->emu_option, a->target);
    return TILEC_BAD_INPUT;
  }
  TilecCudaRun r = {.program = a->program, .func = a->func, .arch = arch, .in = a->in,
                    .out = a->out, .nin = a->nin, .nout = a->nout, .stats = a->stats,
                    .compile_only = a->compile_only, .warmup = a->warmup,
                    .repeat = a->repeat ? a->repeat : 1};
  return tilec_run_cuda(&r);
}

/* For a .tile source: how a global program's parameters and results lie on the
 * chips (g->io.mesh NULL for any other program). */
static int load_global(const RunArgs *a, TilecGlobal *g) {
  memset(g, 0, sizeof *g);
  if (!ends_with(a->program, ".tile")) return TILEC_OK;
  char *src;
  size_t len;
  int rc = tilec_read_file(a->program, &src, &len);
  if (rc == TILEC_OK) rc = tilec_global_load(a->program, src, len, a->func, g);
  free(src);
  return rc;
}

static int run_emulated(const RunArgs *a, const TilecGlobal *g);

static int run_program(const RunArgs *args) {
  char arch[16];
  if (args->target && tilec_cuda_target(args->target, arch, sizeof arch))
    return run_cuda(args, arch);
  if (args->compile_only || args->repeat || args->warmup) {
    tilec_fail("run: %s is for GPU runs (--target cuda-sm90, ...)",
               args->compile_only ? "--compile-only" : args->repeat ? "--repeat" : "--warmup");
    return TILEC_BAD_INPUT;
  }
  TilecGlobal g;
  int rc = load_global(args, &g);
  if (rc != TILEC_OK) {
    tilec_global_free(&g);
    return rc;
  }
  /* A global program runs on its mesh's torus unless --torus says otherwise. */
  RunArgs a = *args;
  char torus[64];
  if (g.io.mesh && !a.torus) {
    tilec_global_torus(&g, torus, sizeof torus);
    a.torus = torus;
  }
  if (!g.io.mesh && a.per_chip) {
    tilec_fail("run: --per-chip is for global programs (a .tile func on a mesh with `shard` "
               "annotations); %s is not one", a.program);
    rc = TILEC_BAD_INPUT;
  }
  if (rc == TILEC_OK) rc = run_emulated(&a, &g);
  tilec_global_free(&g);
  return rc;
}

static int run_emulated(const RunArgs *a, const TilecGlobal *g) {
  TileTarget target, *given = NULL;
  int rc;
  if (a->target) {
    if ((rc = tilec_load_target("tilec run", a->target, a->torus, &target)) != TILEC_OK) return rc;
    given = &target;
  }
  TileObject obj;
  if ((rc = load_program(a, given, &obj)) != TILEC_OK) return rc;
  if (!given) {
    if (!obj.target[0]) {
      tilec_fail("run: %s names no target; give one with --target", a->program);
      tile_object_free(&obj);
      return TILEC_BAD_INPUT;
    }
    if ((rc = tilec_load_target("tilec run", obj.target, a->torus, &target)) != TILEC_OK) {
      tile_object_free(&obj);
      return rc;
    }
  } else if (obj.target[0] && strcmp(obj.target, target.name) != 0) {
    fprintf(stderr, "tilec: note: %s was built for target %s; running it on %s\n", a->program,
            obj.target, target.name);
  }
  if (g->io.mesh && (rc = tilec_global_check(g, &target)) != TILEC_OK) {
    tile_object_free(&obj);
    return rc;
  }
  /* A compiled .tile function is one chip's program: run it on one chip, not on every
   * chip of the target's default torus (--torus still reshapes). */
  if (ends_with(a->program, ".tile") && !a->torus) {
    TileDiag td;
    tile_diag_init(&td, stderr, "tilec run", NULL, 0);
    if (!tile_target_set_torus(&target, "1", &td)) {
      tile_object_free(&obj);
      return TILEC_INTERNAL;
    }
  }
  TileEmuOptions o;
  tile_emu_options_default(&o);
  o.mode = a->mode;
  o.threads = a->threads;
  o.strict = a->strict;
  o.trace = a->trace != NULL;
  o.watchdog = a->watchdog;
  TileDiag d;
  tile_diag_init(&d, stderr, a->program, NULL, 0);
  TileEmu *e = tile_emu_create(&obj, &target, &o, &d);
  if (!e) {
    tile_object_free(&obj);
    return TILEC_BAD_INPUT;
  }
  rc = TILEC_OK;
  for (int i = 0; i < a->nin && rc == TILEC_OK; i++) rc = bind_input(e, &obj, &a->in[i], g, &target);
  for (int i = 0; i < a->nout && rc == TILEC_OK; i++)
    if (!find_symbol(&obj, &a->out[i])) rc = TILEC_BAD_INPUT;
  if (rc == TILEC_OK && a->mode == TILE_EMU_FUNCTIONAL)
    for (int32_t i = 0; i < obj.nsyms; i++) {
      if (!(obj.syms[i].kind & TILE_BIND_IN)) continue;
      bool given_in = false;
      for (int k = 0; k < a->nin; k++)
        given_in |= strlen(obj.syms[i].name) == a->in[k].name_len &&
                    memcmp(obj.syms[i].name, a->in[k].name, a->in[k].name_len) == 0;
      if (!given_in)
        fprintf(stderr, "tilec: note: input '%s' is not bound (--in); it starts as zeros\n",
                obj.syms[i].name);
    }
  if (rc == TILEC_OK) {
    TileEmuStatus st = tile_emu_run(e);
    if (st == TILE_EMU_ERROR) {
      tilec_fail("run: %s", tile_emu_error(e));
      rc = TILEC_INTERNAL;
    } else {
      const bool json_stdout = a->stats_json && strcmp(a->stats_json, "-") == 0;
      if (!json_stdout) tile_emu_print_stats(e, stdout, a->stats || ends_with(a->program, ".tile"));
      fflush(stdout);
      if (st == TILE_EMU_FAULTED) {
        const TileEmuFault *f = tile_emu_fault(e);
        fprintf(stderr, "tilec: fault (%s): %s\n", tile_emu_fault_name(f->kind), f->message);
        rc = TILEC_BAD_INPUT;
      }
      for (int i = 0; i < a->nout && rc == TILEC_OK; i++) rc = write_output(e, &obj, &a->out[i], g, &target, a->per_chip);
      if (a->stats_json) {
        FILE *f = json_stdout ? stdout : fopen(a->stats_json, "w");
        bool ok = f && tile_emu_write_stats_json(e, f);
        ok = f && (json_stdout ? fflush(f) == 0 : fclose(f) == 0) && ok;
        if (!ok) {
          tilec_fail("run: cannot write the statistics '%s'", a->stats_json);
          if (rc == TILEC_OK) rc = TILEC_INTERNAL;
        }
      }
      if (a->trace) {
        FILE *f = fopen(a->trace, "w");
        bool ok = f && tile_emu_write_trace(e, f);
        ok = f && fclose(f) == 0 && ok;
        if (!ok) {
          tilec_fail("run: cannot write the trace '%s'", a->trace);
          if (rc == TILEC_OK) rc = TILEC_INTERNAL;
        }
      }
    }
  }
  tile_emu_free(e);
  tile_object_free(&obj);
  return rc;
}

int tilec_cmd_run(int argc, char **argv) {
  RunArgs a;
  int rc = parse_args(argc, argv, &a);
  if (rc != TILEC_OK) return rc;
  if (a.help) {
    fputs(usage, stdout);
    return TILEC_OK;
  }
  return run_program(&a);
}
