/* Fuzzes the whole VLIW compile (include/tile/vliw.h) on programs the verifier accepts.
 *
 * Inputs that do not parse and verify are dropped (fuzz_parser and fuzz_passes cover
 * those), and so are programs whose tensors hold more than MAX_ELEMS elements in all,
 * so that one input compiles in well under a second. The rest compile for the targets
 * tiny and v5e-like (targets/, found as tilec finds them). For each:
 *   - no crash, leak or sanitizer report;
 *   - a program the compiler cannot take is rejected with an error (TILE_PASS_FAILED);
 *     an internal error (a generator or stage breaking its contract) is a failure, and
 *     so is success with errors reported or failure without one;
 *   - the object passes tile_object_check_target and serializes (tile_object_write);
 *   - compiling the same text again gives the same bytes;
 *   - the program runs on one chip of the emulator in strict mode for at most WATCHDOG
 *     cycles, float inputs from a fixed sequence and the rest zero: any fault but
 *     running out of cycles is a compiler bug (a hazard is a wrong schedule, a DMA
 *     over the target's limit a wrong plan, an address out of range a wrong layout);
 *   - both targets compute the same float results up to rounding (compare_outputs).
 * An input starting with a 0 byte is not text but the choices of a program generator
 * (gen_program), which reaches deeper than mutated text does.
 *
 * fuzz-parts: tile_emu tile_vliw tile_passes tile_frontend tile_ir */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/diag.h"
#include "tile/emu.h"
#include "tile/object.h"
#include "tile/pass.h"
#include "tile/target.h"
#include "tile/text.h"
#include "tile/verify.h"
#include "tile/vliw.h"

enum {
  MAX_ELEMS = 1 << 18,  /* all tensor values of the program together */
  WATCHDOG = 100000,    /* emulated cycles before a run is cut off (not a failure) */
};

static const char *const target_names[] = {"tiny", "v5e-like"};
enum { NTARGETS = sizeof target_names / sizeof target_names[0] };

static TileTarget targets[NTARGETS];
static TileTarget one_chip[NTARGETS]; /* the same machines as a 1-chip torus */

static const char *input_text; /* the input being fuzzed, printed with a failure */
/* FUZZ_COMPILE_VERBOSE=1 in the environment: one line per target saying what became of
 * the input (for checking what a seed reaches: `fuzz_compile FILE.tile`). */
static bool verbose;

static void fail(const char *target, const char *what, const char *detail) {
  fprintf(stderr, "fuzz_compile: %s: %s\n%s\n--- input:\n%s\n", target, what,
          detail ? detail : "", input_text ? input_text : "");
  abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  for (int i = 0; i < NTARGETS; i++) {
    TileDiag d;
    tile_diag_init(&d, stderr, "fuzz_compile", NULL, 0);
    if (!tile_target_load(target_names[i], &targets[i], &d)) {
      fprintf(stderr, "fuzz_compile: cannot load target %s (set TILE_TARGET_PATH)\n",
              target_names[i]);
      exit(1);
    }
    one_chip[i] = targets[i];
    if (!tile_target_set_torus(&one_chip[i], "1", &d)) exit(1);
  }
  const char *v = getenv("FUZZ_COMPILE_VERBOSE");
  verbose = v && *v && strcmp(v, "0") != 0;
  return 0;
}

/* Saturating sum of the elements of every tensor value: parameters, op results and
 * region arguments. */
static int64_t add_elems(int64_t total, const TileType *t) {
  if (t->kind != TILE_TY_TENSOR && t->kind != TILE_TY_BUFFER) return total;
  int64_t n = 1;
  for (int k = 0; k < t->rank; k++) {
    if (t->dims[k] <= 0) return total;
    if (n > MAX_ELEMS / t->dims[k] + 1) return INT64_MAX;
    n *= t->dims[k];
  }
  return total > INT64_MAX - n ? INT64_MAX : total + n;
}

static int64_t block_elems(const TileBlock *b, int64_t total) {
  for (int32_t i = 0; i < b->nargs; i++) total = add_elems(total, &b->args[i]->type);
  for (const TileOp *op = b->first; op && total <= MAX_ELEMS; op = op->next) {
    for (int32_t i = 0; i < op->nres; i++) total = add_elems(total, &op->res[i]->type);
    for (int32_t r = 0; r < op->nregion; r++) total = block_elems(op->region[r], total);
  }
  return total;
}

static int64_t module_elems(const TileModule *m) {
  int64_t total = 0;
  for (const TileFunc *f = m->funcs; f; f = f->next) {
    total = block_elems(f->body, total);
    for (int32_t i = 0; i < f->nret; i++) total = add_elems(total, &f->ret[i]);
  }
  return total;
}

/* Parses and verifies the text; NULL when it is not a valid program. */
static TileModule *parse(const char *src, size_t size) {
  TileDiag d;
  tile_diag_init(&d, NULL, "fuzz.tile", src, size);
  TileModule *m = tile_parse(src, size, "fuzz.tile", &d);
  if (m && tile_verify_module(m, &d) && d.nerrors == 0) return m;
  tile_module_free(m);
  return NULL;
}

/* Compiles the text for target t into bytes; false when the program is rejected with
 * an error (which is allowed). Any other outcome aborts. */
static bool compile(const char *src, size_t size, int ti, uint8_t **bytes, size_t *len,
                    TileObject *obj) {
  const char *tname = target_names[ti];
  TileModule *m = parse(src, size);
  if (!m) fail(tname, "the text verified once and not again", NULL);
  /* A module of several functions compiles its first (the others may be its callees). */
  TileVliwOptions o = {.target = &targets[ti], .stop_after = TILE_VLIW_OBJECT,
                       .func = m->funcs && m->funcs->next ? m->funcs->name : NULL};
  TileDiag d;
  tile_diag_init(&d, NULL, "fuzz.tile", src, size);
  TilePassStatus st = tile_vliw_compile(m, &o, obj, &d);
  tile_module_free(m);
  if (st == TILE_PASS_INTERNAL) fail(tname, "internal error", d.nerrors ? d.last : "(no message)");
  if (st == TILE_PASS_FAILED) {
    if (d.nerrors == 0) fail(tname, "the compile failed without an error", NULL);
    if (verbose) fprintf(stderr, "fuzz_compile: %s: rejected: %s\n", tname, d.last);
    return false;
  }
  if (st != TILE_PASS_OK) fail(tname, "the compile returned an unknown status", NULL);
  if (d.nerrors) fail(tname, "the compile succeeded but reported errors", d.last);
  TileDiag cd;
  tile_diag_init(&cd, NULL, "fuzz.tobj", NULL, 0);
  if (!tile_object_check_target(obj, &targets[ti], &cd))
    fail(tname, "the object does not fit its target", cd.last);
  if (!tile_object_write(obj, bytes, len)) fail(tname, "the object does not serialize", NULL);
  return true;
}

/* What a run left in the float results: per symbol, its values as f32 (NULL when the
 * run was cut off). */
enum { MAX_OUTS = 16 };
typedef struct Outputs {
  int n;
  char name[MAX_OUTS][64];
  int64_t count[MAX_OUTS];
  float *val[MAX_OUTS];
} Outputs;

static void outputs_free(Outputs *r) {
  for (int i = 0; i < r->n; i++) free(r->val[i]);
  r->n = 0;
}

static float bf16_value(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* Inputs: f32 and bf16 symbols get the same values on every target, in [-2, 2) (bf16
 * exact); others (indices among them) stay zero, which is always in range. */
static void set_inputs(TileEmu *e, const TileObject *obj) {
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (int32_t i = 0; i < obj->nsyms; i++) {
    const TileObjSymbol *s = &obj->syms[i];
    if (!(s->kind & TILE_BIND_IN) || (s->elem != TILE_ELEM_F32 && s->elem != TILE_ELEM_BF16))
      continue;
    int64_t n = tile_emu_symbol_bytes(e, s->name) / (s->elem == TILE_ELEM_F32 ? 4 : 2);
    uint8_t *bytes = malloc((size_t)(n > 0 ? n : 1) * 4);
    if (!bytes) continue;
    for (int64_t k = 0; k < n; k++) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      uint16_t h = (uint16_t)(0x3f80 + (x >> 57)); /* 1 + a 7-bit mantissa */
      float f = (bf16_value(h) - 1.0f) * 4.0f - 2.0f;
      if (s->elem == TILE_ELEM_F32) memcpy(bytes + 4 * k, &f, 4);
      else {
        uint32_t u;
        memcpy(&u, &f, 4);
        uint16_t b = (uint16_t)(u >> 16);
        memcpy(bytes + 2 * k, &b, 2);
      }
    }
    tile_emu_set_input(e, s->name, bytes, (size_t)n * (s->elem == TILE_ELEM_F32 ? 4 : 2));
    free(bytes);
  }
}

static void get_outputs(TileEmu *e, const TileObject *obj, Outputs *r) {
  for (int32_t i = 0; i < obj->nsyms && r->n < MAX_OUTS; i++) {
    const TileObjSymbol *s = &obj->syms[i];
    if (!(s->kind & TILE_BIND_OUT) || (s->elem != TILE_ELEM_F32 && s->elem != TILE_ELEM_BF16))
      continue;
    int esize = s->elem == TILE_ELEM_F32 ? 4 : 2;
    int64_t n = tile_emu_symbol_bytes(e, s->name) / esize;
    uint8_t *bytes = malloc((size_t)(n > 0 ? n : 1) * 4);
    float *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    if (bytes && v && tile_emu_get_output(e, s->name, bytes, (size_t)(n * esize))) {
      for (int64_t k = 0; k < n; k++) {
        uint16_t h;
        if (esize == 4) memcpy(&v[k], bytes + 4 * k, 4);
        else {
          memcpy(&h, bytes + 2 * k, 2);
          v[k] = bf16_value(h);
        }
      }
      snprintf(r->name[r->n], sizeof r->name[0], "%s", s->name);
      r->count[r->n] = n;
      r->val[r->n++] = v;
      v = NULL;
    }
    free(bytes);
    free(v);
  }
}

/* Runs the object on one chip; a fault other than the watchdog is a compiler bug. The
 * float results go to r when the run finished. */
static void run(const TileObject *obj, int ti, Outputs *r) {
  const char *tname = target_names[ti];
  TileEmuOptions o;
  tile_emu_options_default(&o);
  o.strict = true;
  o.threads = 1;
  o.watchdog = WATCHDOG;
  TileDiag d;
  tile_diag_init(&d, NULL, "fuzz.tobj", NULL, 0);
  TileEmu *e = tile_emu_create(obj, &one_chip[ti], &o, &d);
  if (!e) fail(tname, "the emulator does not accept the object", d.last);
  set_inputs(e, obj);
  TileEmuStatus st = tile_emu_run(e);
  if (st == TILE_EMU_ERROR) fail(tname, "the emulator could not run the object", tile_emu_error(e));
  if (st == TILE_EMU_FAULTED) {
    const TileEmuFault *f = tile_emu_fault(e);
    if (f->kind != TILE_EMU_FAULT_RUNAWAY) {
      char what[64];
      snprintf(what, sizeof what, "the program faults (%s)", tile_emu_fault_name(f->kind));
      fail(tname, what, f->message);
    }
  } else {
    get_outputs(e, obj, r);
  }
  if (verbose) {
    TileEmuStats s;
    tile_emu_stats(e, &s);
    fprintf(stderr, "fuzz_compile: %s: ran %lld cycles%s\n", tname, (long long)s.cycles,
            st == TILE_EMU_FAULTED ? " (cut off)" : "");
  }
  tile_emu_free(e);
}

/* The two targets must agree on the float results of the same inputs, up to rounding:
 * their blockings differ (matmul and reduction order, MXU counts), their arithmetic
 * does not. A value differs when one side is NaN and the other not, infinities differ,
 * or finite values are further apart than 2% of max(1, |a|, |b|); more than 1% of a
 * result's values (and at least 4) differing is a wrong result on one side. */
static void compare_outputs(const Outputs *a, const Outputs *b) {
  if (verbose && a->n && b->n) fprintf(stderr, "fuzz_compile: comparing %d float results\n", a->n);
  for (int i = 0; i < a->n; i++)
    for (int j = 0; j < b->n; j++) {
      if (strcmp(a->name[i], b->name[j]) != 0 || a->count[i] != b->count[j]) continue;
      int64_t bad = 0, first = -1;
      for (int64_t k = 0; k < a->count[i]; k++) {
        float x = a->val[i][k], y = b->val[j][k];
        bool differ;
        if (isnan(x) || isnan(y)) differ = isnan(x) != isnan(y);
        else if (isinf(x) || isinf(y)) differ = x != y;
        else differ = fabsf(x - y) > 0.02f * fmaxf(1.0f, fmaxf(fabsf(x), fabsf(y)));
        if (differ && first < 0) first = k;
        bad += differ;
      }
      if (bad >= 4 && bad * 100 > a->count[i]) {
        char detail[256];
        snprintf(detail, sizeof detail, "%s: %lld of %lld values differ; the first, [%lld]: %s %g, %s %g",
                 a->name[i], (long long)bad, (long long)a->count[i], (long long)first,
                 target_names[0], (double)a->val[i][first], target_names[1], (double)b->val[j][first]);
        fail("tiny/v5e-like", "the targets compute different results", detail);
      }
    }
}

/* ---- generated programs ----
 * Mutated text rarely stays a valid program for long, so an input whose first byte is
 * 0 (no .tile text starts with one) is not text: the bytes after it choose a program op
 * by op, from shapes and ops meant to verify, and that program's text is what compiles
 * (and what a failure prints). Running out of bytes reads zeros. */

enum { GEN_MAX_VALS = 40, GEN_MAX_OPS = 10, GEN_TEXT = 16384, GEN_VAL_ELEMS = 1 << 15 };

typedef enum GenElem { G_F32, G_BF16, G_I32, G_I1 } GenElem;
static const char *const gen_elem_names[] = {"f32", "bf16", "i32", "i1"};

typedef struct GenVal {
  GenElem elem;
  int rank;
  int64_t dims[4];
  int id; /* a parameter %p(-1 - id) when negative, else %v(id) */
} GenVal;

typedef struct GenText {
  char s[GEN_TEXT];
  size_t len;
} GenText;

typedef struct Gen {
  const uint8_t *p, *end;
  GenText params, body;
  GenVal vals[GEN_MAX_VALS];
  bool used[GEN_MAX_VALS]; /* read by an op */
  int nvals, nparams, nresults;
} Gen;

/* Sizes that take the generators down different paths: single elements, partial and
 * whole vector tiles (8 x 128) and MXU blocks (128), and just past them. */
static const int64_t gen_sizes[] = {1, 2, 3, 7, 8, 9, 16, 33, 64, 100, 127, 128, 129, 200, 256};
enum { GEN_NSIZES = sizeof gen_sizes / sizeof gen_sizes[0] };

static unsigned gen_byte(Gen *g) { return g->p < g->end ? *g->p++ : 0; }
static int gen_pick(Gen *g, int64_t n) { return n > 0 ? (int)(gen_byte(g) % (uint64_t)n) : 0; }

static void out(GenText *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(GenText *t, const char *fmt, ...) {
  if (t->len >= GEN_TEXT) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(t->s + t->len, GEN_TEXT - t->len, fmt, ap);
  va_end(ap);
  t->len = n < 0 || (size_t)n >= GEN_TEXT - t->len ? GEN_TEXT : t->len + (size_t)n;
}

static int64_t gen_numel(const GenVal *v) {
  int64_t n = 1;
  for (int k = 0; k < v->rank; k++) n *= v->dims[k];
  return n;
}

/* "tensor<8x128xf32>", in one of a few rotating buffers so that one line can hold
 * several. */
static const char *ty(const GenVal *v) {
  static char bufs[4][96];
  static int next;
  char *b = bufs[next++ % 4];
  size_t k = (size_t)snprintf(b, 96, "tensor<");
  for (int i = 0; i < v->rank; i++) k += (size_t)snprintf(b + k, 96 - k, "%lldx", (long long)v->dims[i]);
  snprintf(b + k, 96 - k, "%s>", gen_elem_names[v->elem]);
  return b;
}

/* "%p3" or "%v7", likewise. */
static const char *nm(const GenVal *v) {
  static char bufs[4][16];
  static int next;
  char *b = bufs[next++ % 4];
  snprintf(b, 16, v->id < 0 ? "%%p%d" : "%%v%d", v->id < 0 ? -1 - v->id : v->id);
  return b;
}

/* "[a, b, c]", likewise. */
static const char *ints(const int64_t *x, int n) {
  static char bufs[3][96];
  static int next;
  char *b = bufs[next++ % 3];
  size_t k = (size_t)snprintf(b, 96, "[");
  for (int i = 0; i < n; i++) k += (size_t)snprintf(b + k, 96 - k, "%s%lld", i ? ", " : "", (long long)x[i]);
  snprintf(b + k, 96 - k, "]");
  return b;
}

/* A random shape of the given rank, at most GEN_VAL_ELEMS elements. */
static GenVal gen_shape(Gen *g, GenElem e, int rank) {
  GenVal v = {.elem = e, .rank = rank};
  int64_t n = 1;
  for (int k = 0; k < rank; k++) {
    int64_t d = gen_sizes[gen_pick(g, GEN_NSIZES)];
    while (d > 1 && n * d > GEN_VAL_ELEMS) d /= 2;
    v.dims[k] = d;
    n *= d;
  }
  return v;
}

/* Records a new parameter (when id is -1) or op result of type v; NULL when there is
 * no room or it would be too large. */
static const GenVal *gen_new(Gen *g, GenVal v, bool param) {
  if (g->nvals == GEN_MAX_VALS || gen_numel(&v) > GEN_VAL_ELEMS) return NULL;
  v.id = param ? -1 - g->nparams++ : g->nresults++;
  g->vals[g->nvals] = v;
  const GenVal *p = &g->vals[g->nvals++];
  if (param) out(&g->params, "%s%s: %s", p->id < -1 ? ", " : "", nm(p), ty(p));
  return p;
}

static const GenVal *gen_param(Gen *g, GenVal v) { return gen_new(g, v, true); }

static bool gen_is_float(GenElem e) { return e == G_F32 || e == G_BF16; }

/* Marks v as read by an op (so it is not returned) and gives it back. */
static const GenVal *gen_use(Gen *g, const GenVal *v) {
  if (v) g->used[v - g->vals] = true;
  return v;
}

/* An existing value of rank >= min_rank (not i1; only floats when `floats`), chosen
 * by the input, or a new parameter of a random shape. */
static const GenVal *gen_operand(Gen *g, bool floats, int min_rank) {
  int cand[GEN_MAX_VALS], n = 0;
  for (int i = 0; i < g->nvals; i++) {
    const GenVal *v = &g->vals[i];
    if (v->elem != G_I1 && v->rank >= min_rank && (!floats || gen_is_float(v->elem))) cand[n++] = i;
  }
  /* Mostly one of the last few values, so that ops chain. */
  int k = n > 3 && gen_pick(g, 4) ? n - 1 - gen_pick(g, 3) : gen_pick(g, n + 1);
  if (k < n) return gen_use(g, &g->vals[cand[k]]);
  GenElem e = floats ? (GenElem)gen_pick(g, 2) : (GenElem)gen_pick(g, 3);
  return gen_param(g, gen_shape(g, e, min_rank + gen_pick(g, 4 - min_rank)));
}

/* A value of v's type: v itself, another value of that type, or a new parameter. */
static const GenVal *gen_same(Gen *g, const GenVal *v) {
  int cand[GEN_MAX_VALS], n = 0;
  for (int i = 0; i < g->nvals; i++) {
    const GenVal *w = &g->vals[i];
    bool same = w->elem == v->elem && w->rank == v->rank;
    for (int k = 0; same && k < v->rank; k++) same = w->dims[k] == v->dims[k];
    if (same) cand[n++] = i;
  }
  int k = gen_pick(g, n + 1);
  return k < n ? gen_use(g, &g->vals[cand[k]]) : gen_param(g, *v);
}

/* Starts the line of one op with result type v: "  %vN = "; NULL when there is no
 * room for the result. */
static const GenVal *gen_def(Gen *g, GenVal v) {
  const GenVal *r = gen_new(g, v, false);
  if (r) out(&g->body, "  %s = ", nm(r));
  return r;
}

static void gen_unary(Gen *g) {
  static const char *const ops[] = {"neg",  "abs",      "exp",  "log", "sqrt", "rsqrt",
                                     "recip", "tanh", "logistic", "gelu", "silu"};
  const GenVal *a = gen_operand(g, true, 1), *r;
  if (a && (r = gen_def(g, *a))) out(&g->body, "%s %s : %s\n", ops[gen_pick(g, 11)], nm(a), ty(r));
}

static void gen_binary(Gen *g) {
  static const char *const fops[] = {"add", "sub", "mul", "div", "max", "min", "pow"};
  static const char *const iops[] = {"add", "sub", "mul", "div", "rem",
                                     "max", "min", "and", "or",  "xor"};
  const GenVal *a = gen_operand(g, false, 1), *b = a ? gen_same(g, a) : NULL, *r;
  if (!b || !(r = gen_def(g, *a))) return;
  out(&g->body, "%s %s, %s : %s\n", gen_is_float(a->elem) ? fops[gen_pick(g, 7)] : iops[gen_pick(g, 10)],
      nm(a), nm(b), ty(r));
}

static void gen_compare_select(Gen *g) {
  static const char *const dirs[] = {"eq", "ne", "lt", "le", "gt", "ge"};
  const GenVal *a = gen_operand(g, false, 1), *b = a ? gen_same(g, a) : NULL, *c, *r;
  if (!b) return;
  GenVal t = *a;
  t.elem = G_I1;
  if (!(c = gen_def(g, t))) return;
  out(&g->body, "compare %s, %s {dir = %s} : %s\n", nm(a), nm(b), dirs[gen_pick(g, 6)], ty(c));
  gen_use(g, c);
  if ((r = gen_def(g, *a))) out(&g->body, "select %s, %s, %s : %s\n", nm(c), nm(b), nm(a), ty(r));
}

static void gen_convert(Gen *g) {
  const GenVal *a = gen_operand(g, false, 1), *r;
  if (!a) return;
  GenVal t = *a;
  t.elem = (GenElem)((a->elem + 1 + gen_pick(g, 2)) % 3);
  if ((r = gen_def(g, t))) out(&g->body, "convert %s : %s\n", nm(a), ty(r));
}

/* reduce over one dim (mostly the last), sometimes broadcast back over it. */
static void gen_reduce(Gen *g) {
  static const char *const kinds[] = {"add", "max", "min"};
  const GenVal *a = gen_operand(g, false, 1), *r;
  if (!a) return;
  int dim = gen_pick(g, 4) ? a->rank - 1 : gen_pick(g, a->rank);
  GenVal t = *a;
  t.rank--;
  for (int k = dim; k < t.rank; k++) t.dims[k] = a->dims[k + 1];
  if (!(r = gen_def(g, t))) return;
  out(&g->body, "reduce %s {kind = %s, dims = [%d]} : %s\n", nm(a), kinds[gen_pick(g, 3)], dim, ty(r));
  if (gen_pick(g, 2) || r->rank == 0) return;
  int64_t dims[4];
  for (int k = 0, j = 0; k < a->rank; k++)
    if (k != dim) dims[j++] = k;
  const GenVal *red = gen_use(g, r);
  if ((r = gen_def(g, *a))) out(&g->body, "broadcast %s {dims = %s} : %s\n", nm(red), ints(dims, red->rank), ty(r));
}

/* broadcast into one new dim. */
static void gen_broadcast(Gen *g) {
  const GenVal *a = gen_operand(g, false, 0), *r;
  if (!a || a->rank >= 4) return;
  int at = gen_pick(g, a->rank + 1);
  GenVal t = *a;
  t.rank++;
  for (int k = t.rank - 1; k > at; k--) t.dims[k] = a->dims[k - 1];
  t.dims[at] = gen_sizes[gen_pick(g, 12)];
  int64_t dims[4];
  for (int k = 0; k < a->rank; k++) dims[k] = k < at ? k : k + 1;
  if ((r = gen_def(g, t))) out(&g->body, "broadcast %s {dims = %s} : %s\n", nm(a), ints(dims, a->rank), ty(r));
}

static void gen_softmax_norm(Gen *g) {
  const GenVal *a = gen_operand(g, true, 1), *r;
  if (!a) return;
  int kind = gen_pick(g, 3);
  if (kind == 0) {
    int dim = gen_pick(g, 3) ? a->rank - 1 : gen_pick(g, a->rank);
    if ((r = gen_def(g, *a))) out(&g->body, "softmax %s {dim = %d} : %s\n", nm(a), dim, ty(r));
    return;
  }
  GenVal gv = {.elem = a->elem, .rank = 1, .dims = {a->dims[a->rank - 1]}};
  const GenVal *gamma = gen_param(g, gv), *beta = kind == 2 ? gen_param(g, gv) : NULL;
  if (!gamma || (kind == 2 && !beta) || !(r = gen_def(g, *a))) return;
  if (kind == 2)
    out(&g->body, "layernorm %s, %s, %s {eps = 1e-05} : %s\n", nm(a), nm(gamma), nm(beta), ty(r));
  else
    out(&g->body, "rmsnorm %s, %s {eps = 1e-05} : %s\n", nm(a), nm(gamma), ty(r));
}

static void gen_transpose(Gen *g) {
  const GenVal *a = gen_operand(g, false, 2), *r;
  if (!a) return;
  int64_t perm[4];
  for (int k = 0; k < a->rank; k++) perm[k] = k;
  for (int k = a->rank - 1; k > 0; k--) {
    int j = gen_pick(g, k + 1);
    int64_t x = perm[k];
    perm[k] = perm[j];
    perm[j] = x;
  }
  GenVal t = *a;
  for (int k = 0; k < a->rank; k++) t.dims[k] = a->dims[perm[k]];
  if ((r = gen_def(g, t))) out(&g->body, "transpose %s {perm = %s} : %s\n", nm(a), ints(perm, a->rank), ty(r));
}

/* reshape: merge two neighbouring dims, or split one. */
static void gen_reshape(Gen *g) {
  const GenVal *a = gen_operand(g, false, 1), *r;
  if (!a) return;
  GenVal t = *a;
  int k = gen_pick(g, a->rank);
  if (k + 1 < a->rank && (gen_pick(g, 2) || a->rank == 4)) {
    t.dims[k] *= a->dims[k + 1];
    for (int j = k + 1; j + 1 < a->rank; j++) t.dims[j] = a->dims[j + 1];
    t.rank--;
  } else if (a->rank < 4) {
    int64_t f = a->dims[k] % 8 == 0 ? 8 : a->dims[k] % 2 == 0 ? 2 : a->dims[k];
    for (int j = a->rank; j > k + 1; j--) t.dims[j] = a->dims[j - 1];
    t.dims[k] = a->dims[k] / f;
    t.dims[k + 1] = f;
    t.rank++;
  }
  if ((r = gen_def(g, t))) out(&g->body, "reshape %s : %s\n", nm(a), ty(r));
}

static void gen_slice(Gen *g) {
  const GenVal *a = gen_operand(g, false, 1), *r;
  if (!a) return;
  int64_t start[4], limit[4], stride[4];
  GenVal t = *a;
  for (int k = 0; k < a->rank; k++) {
    start[k] = gen_pick(g, a->dims[k] < 256 ? a->dims[k] : 256);
    limit[k] = a->dims[k] - gen_pick(g, a->dims[k] - start[k] < 256 ? a->dims[k] - start[k] : 256);
    stride[k] = 1 + gen_pick(g, 2) * gen_pick(g, 3);
    t.dims[k] = (limit[k] - start[k] + stride[k] - 1) / stride[k];
  }
  if ((r = gen_def(g, t)))
    out(&g->body, "slice %s {start = %s, limit = %s, stride = %s} : %s\n", nm(a), ints(start, a->rank),
        ints(limit, a->rank), ints(stride, a->rank), ty(r));
}

static void gen_concatenate(Gen *g) {
  const GenVal *a = gen_operand(g, false, 1), *b = a ? gen_same(g, a) : NULL, *r;
  if (!b) return;
  int dim = gen_pick(g, a->rank);
  GenVal t = *a;
  t.dims[dim] *= 2;
  if ((r = gen_def(g, t))) out(&g->body, "concatenate %s, %s {dim = %d} : %s\n", nm(a), nm(b), dim, ty(r));
}

/* matmul by a new weight [K, N]; the result in the operand's type or f32. */
static void gen_matmul(Gen *g) {
  const GenVal *a = gen_operand(g, true, 2), *w, *r;
  if (!a) return;
  GenVal wt = {.elem = a->elem, .rank = 2, .dims = {a->dims[a->rank - 1], gen_sizes[gen_pick(g, GEN_NSIZES)]}};
  if (!(w = gen_param(g, wt))) return;
  GenVal t = *a;
  t.dims[a->rank - 1] = w->dims[1];
  if (gen_pick(g, 2)) t.elem = G_F32;
  if ((r = gen_def(g, t))) out(&g->body, "matmul %s, %s : %s\n", nm(a), nm(w), ty(r));
}

/* argmax or topk along the last dim. */
static void gen_select_top(Gen *g) {
  const GenVal *a = gen_operand(g, false, 1), *r;
  if (!a) return;
  GenVal t = *a;
  if (gen_pick(g, 2)) {
    t.elem = G_I32;
    t.rank--;
    if ((r = gen_def(g, t))) out(&g->body, "argmax %s {dim = %d} : %s\n", nm(a), a->rank - 1, ty(r));
    return;
  }
  int64_t last = a->dims[a->rank - 1];
  t.dims[a->rank - 1] = 1 + gen_pick(g, last < 48 ? last : 48);
  GenVal ti = t;
  ti.elem = G_I32;
  const GenVal *vals = gen_new(g, t, false), *ids = vals ? gen_new(g, ti, false) : NULL;
  if (ids)
    out(&g->body, "  %s, %s = topk %s {k = %lld} : %s, %s\n", nm(vals), nm(ids), nm(a),
        (long long)t.dims[a->rank - 1], ty(vals), ty(ids));
}

/* gather rows of a value (or a new table) by new i32 ids. */
static void gen_gather(Gen *g) {
  const GenVal *table = gen_operand(g, false, 1), *ids, *r;
  if (!table) return;
  GenVal it = gen_shape(g, G_I32, 1);
  if (!(ids = gen_param(g, it)) || table->rank >= 4) return;
  GenVal t = *table;
  t.dims[0] = ids->dims[0];
  if ((r = gen_def(g, t))) out(&g->body, "gather %s, %s {axis = 0} : %s\n", nm(table), nm(ids), ty(r));
}

/* attention of new q, k, v, or rope of a new [B, H, S, D] by new tables. */
static void gen_attention_rope(Gen *g) {
  static const int64_t heads[] = {1, 2, 4};
  static const int64_t seqs[] = {1, 7, 8, 16, 33, 100, 128, 129};
  static const int64_t hdims[] = {16, 32, 64, 128};
  GenElem e = (GenElem)gen_pick(g, 2);
  int64_t b = 1 + gen_pick(g, 2), hkv = heads[gen_pick(g, 3)], h = hkv * heads[gen_pick(g, 3)];
  int64_t sq = seqs[gen_pick(g, 8)], sk = gen_pick(g, 2) ? sq : seqs[gen_pick(g, 8)];
  int64_t d = hdims[gen_pick(g, 4)];
  GenVal q = {.elem = e, .rank = 4, .dims = {b, h, sq, d}}, kv = q;
  kv.dims[1] = hkv;
  kv.dims[2] = sk;
  const GenVal *qv = gen_param(g, q), *r;
  if (!qv) return;
  if (gen_pick(g, 3) == 0) {
    GenVal tab = {.elem = e, .rank = 2, .dims = {sq, d / 2}};
    const GenVal *cs = gen_param(g, tab), *sn = cs ? gen_param(g, tab) : NULL;
    if (sn && (r = gen_def(g, q))) out(&g->body, "rope %s, %s, %s : %s\n", nm(qv), nm(cs), nm(sn), ty(r));
    return;
  }
  const GenVal *k = gen_param(g, kv), *v = k ? gen_param(g, kv) : NULL;
  if (!v || !(r = gen_def(g, q))) return;
  out(&g->body, "attention %s, %s, %s {scale = 0.125%s} : %s\n", nm(qv), nm(k), nm(v),
      sq == sk && gen_pick(g, 2) ? ", causal = 1" : "", ty(r));
}

static void gen_iota_constant(Gen *g) {
  GenVal t = gen_shape(g, (GenElem)gen_pick(g, 3), 1 + gen_pick(g, 3));
  const GenVal *r = gen_def(g, t);
  if (!r) return;
  if (gen_pick(g, 2))
    out(&g->body, "iota {dim = %d} : %s\n", gen_pick(g, t.rank), ty(r));
  else
    out(&g->body, "constant {value = %d} : %s\n", gen_pick(g, 7) - 3, ty(r));
}

static void (*const gen_ops[])(Gen *) = {
    gen_unary,     gen_binary,      gen_binary,      gen_compare_select, gen_convert,
    gen_reduce,    gen_broadcast,   gen_softmax_norm, gen_transpose,     gen_reshape,
    gen_slice,     gen_concatenate, gen_matmul,      gen_matmul,         gen_select_top,
    gen_gather,    gen_attention_rope, gen_iota_constant,
};
enum { GEN_NOPS = sizeof gen_ops / sizeof gen_ops[0] };

/* The program the bytes choose, as malloc'ed text (*len bytes). */
static char *gen_program(const uint8_t *data, size_t size, size_t *len) {
  Gen *g = calloc(1, sizeof *g);
  if (!g) return NULL;
  g->p = data;
  g->end = data + size;
  int nops = 1 + gen_pick(g, GEN_MAX_OPS);
  for (int i = 0; i < nops; i++) gen_ops[gen_pick(g, GEN_NOPS)](g);
  /* Results: every op result no op reads (up to MAX_RET), so that no op is dead, or
   * else the last value; i1 values (which a caller cannot bind) go out as i32. */
  enum { MAX_RET = 4 };
  int ret_of[MAX_RET], nret = 0, nvals = g->nvals;
  for (int i = nvals - 1; i >= 0 && nret < MAX_RET; i--)
    if (g->vals[i].id >= 0 && !g->used[i]) ret_of[nret++] = i;
  if (nret == 0 && nvals) ret_of[nret++] = nvals - 1;
  GenText ret = {.len = 0}, types = {.len = 0};
  for (int i = 0; i < nret; i++) {
    const GenVal *v = &g->vals[ret_of[i]];
    if (v->elem == G_I1) {
      GenVal t = *v;
      t.elem = G_I32;
      const GenVal *c = gen_def(g, t);
      if (!c) break;
      out(&g->body, "convert %s : %s\n", nm(v), ty(c));
      v = c;
    }
    out(&ret, "%s%s", i ? ", " : "", nm(v));
    out(&types, "%s%s", i ? ", " : "", ty(v));
  }
  if (g->nparams == 0) gen_param(g, gen_shape(g, G_F32, 1));
  GenText *t = malloc(sizeof *t);
  if (t) {
    t->len = 0;
    out(t, "func @f(%s) -> (%s) {\n%s  return %s\n}\n", g->params.s, types.s, g->body.s, ret.s);
    *len = t->len < GEN_TEXT ? t->len : 0;
  }
  free(g);
  char *text = t ? malloc(*len + 1) : NULL;
  if (text) {
    memcpy(text, t->s, *len);
    text[*len] = 0;
  }
  free(t);
  return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* The program as NUL-terminated text, so a failure can print it. */
  char *src;
  const bool generated = size > 0 && data[0] == 0;
  if (generated) {
    src = gen_program(data + 1, size - 1, &size);
  } else if ((src = malloc(size + 1))) {
    memcpy(src, data, size);
    src[size] = 0;
  }
  if (!src) return 0;
  if (verbose && generated) fprintf(stderr, "%s", src);
  TileModule *m = parse(src, size);
  int64_t elems = m ? module_elems(m) : 0;
  tile_module_free(m);
  if (!m || elems > MAX_ELEMS) {
    if (verbose)
      fprintf(stderr, "fuzz_compile: skipped: %s\n", m ? "too many elements" : "not a valid program");
    free(src);
    return 0;
  }
  input_text = src;
  Outputs results[NTARGETS];
  memset(results, 0, sizeof results);
  for (int ti = 0; ti < NTARGETS; ti++) {
    uint8_t *bytes = NULL, *again = NULL;
    size_t len = 0, again_len = 0;
    TileObject obj, obj2;
    if (!compile(src, size, ti, &bytes, &len, &obj)) continue;
    if (!compile(src, size, ti, &again, &again_len, &obj2))
      fail(target_names[ti], "the second compile of the same text failed", NULL);
    if (len != again_len || memcmp(bytes, again, len) != 0)
      fail(target_names[ti], "compiling twice gives different objects", NULL);
    if (verbose)
      fprintf(stderr, "fuzz_compile: %s: compiled, %zu bytes, %lld elements\n", target_names[ti],
              len, (long long)elems);
    run(&obj, ti, &results[ti]);
    tile_object_free(&obj);
    tile_object_free(&obj2);
    free(bytes);
    free(again);
  }
  compare_outputs(&results[0], &results[1]);
  for (int ti = 0; ti < NTARGETS; ti++) outputs_free(&results[ti]);
  input_text = NULL;
  free(src);
  return 0;
}
