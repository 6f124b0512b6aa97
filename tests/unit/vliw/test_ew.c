/* Elementwise emission (backend-vliw/ew.c): each op's vector code runs on the emulator
 * over one 8 x 128 tile of hard inputs (zeros of both signs, infinities, NaN,
 * subnormals, huge and tiny magnitudes, random values) and must give the bits C's IEEE
 * f32 arithmetic gives where the ISA promises them (add ... div, sqrt, conversions,
 * compares), and stay within a few ulp of the double-precision function elsewhere.
 *
 * The MIR runs without the scheduler: each op in a bundle of its own followed by its
 * latency in empty bundles, virtual registers mapped to machine ones as they die. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../parse_fixture.h"
#include "check.h"
#include "tile/emu.h"
#include "tile/lower.h"
#include "tile/mir.h"
#include "tile/ops.h"

enum { ROWS = 8, LANES = 128, N = ROWS * LANES, TILE_BYTES = N * 4, MAX_IN = 3 };

/* ---- running straight-line MIR ---- */

typedef struct Seq {
  TileBundle *b;
  int n, cap;
} Seq;

static void seq_push(Seq *s, TileBundle b) {
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 256;
    s->b = realloc(s->b, sizeof *s->b * (size_t)s->cap);
  }
  s->b[s->n++] = b;
}

/* Maps virtual registers to machine ones: a register is free again once the op with
 * its last read has issued (every op runs alone, after its inputs have landed). */
static bool sequentialize(const TileMir *m, const TileTarget *t, Seq *out) {
  int32_t *last = calloc((size_t)m->nregs, sizeof *last), *phys = calloc((size_t)m->nregs, 4);
  bool busy[2][64] = {{false}};
  for (int32_t r = 0; r < m->nregs; r++) last[r] = -1, phys[r] = -1;
  for (int32_t i = 0; i < m->ninsts; i++) {
    TileOperand ops[TILE_MAX_OPERANDS];
    int n = tile_mop_operands(m->insts[i].op, ops);
    for (int k = 0; k < n; k++) {
      const TileMirInst *in = &m->insts[i];
      int32_t f = ops[k].field == 'd' ? in->d : ops[k].field == 'a' ? in->a
                : ops[k].field == 'b' ? in->b : in->c;
      if (ops[k].kind == 'v' || ops[k].kind == 's') last[f] = i;
    }
  }
  bool ok = true;
  for (int32_t i = 0; i < m->ninsts && ok; i++) {
    TileMirInst in = m->insts[i];
    TileOperand ops[TILE_MAX_OPERANDS];
    int n = tile_mop_operands(in.op, ops);
    int32_t *fields[4] = {&in.d, &in.a, &in.b, &in.c};
    int32_t mapped[4] = {in.d, in.a, in.b, in.c};
    for (int k = 0; k < n; k++) { /* reads first; their registers may die here */
      int fi = ops[k].field - 'a' + 1;
      if (ops[k].field == 'd') fi = 0;
      if (ops[k].kind != 'v' && ops[k].kind != 's') continue;
      int32_t v = *fields[fi];
      ok &= phys[v] >= 0;
      mapped[fi] = phys[v];
    }
    for (int k = 0; k < n; k++) {
      int fi = ops[k].field == 'd' ? 0 : ops[k].field - 'a' + 1;
      if ((ops[k].kind == 'v' || ops[k].kind == 's') && last[*fields[fi]] == i)
        busy[ops[k].kind == 'v'][phys[*fields[fi]]] = false;
    }
    for (int k = 0; k < n; k++) {
      if (ops[k].kind != 'V' && ops[k].kind != 'S') continue;
      int cls = ops[k].kind == 'V', limit = cls ? t->nvregs : t->nsregs;
      int32_t v = *fields[0];
      if (phys[v] < 0) {
        for (int p = 0; p < limit && phys[v] < 0; p++)
          if (!busy[cls][p]) phys[v] = p, busy[cls][p] = true;
        ok &= phys[v] >= 0;
      }
      mapped[0] = phys[v];
    }
    TileBundle b;
    memset(&b, 0, sizeof b);
    const TileMopInfo *info = &tile_mop_info[in.op];
    b.slot[tile_slot_first(info->slot)] =
        (TileMInst){(uint8_t)in.op, (uint8_t)mapped[0], (uint8_t)mapped[1], (uint8_t)mapped[2],
                    (uint8_t)mapped[3], in.imm};
    seq_push(out, b);
    TileBundle empty;
    memset(&empty, 0, sizeof empty);
    for (int w = 1; w < t->latency[info->latency]; w++) seq_push(out, empty);
  }
  TileBundle halt;
  memset(&halt, 0, sizeof halt);
  halt.slot[tile_slot_first(TILE_SLOT_BRANCH)].op = TILE_MOP_HALT;
  seq_push(out, halt);
  free(last);
  free(phys);
  return ok;
}

/* ---- one op on one tile ---- */

typedef struct EwRun {
  TileModule *mod;
  const TileOp *op;
  int nin;           /* parameters, each one tile in VMEM */
  uint8_t in_elem[MAX_IN];
  uint8_t out_elem;
  int64_t cycles;
  int ninsts;
} EwRun;

static TileTarget machine(void) {
  TileTarget t;
  TileDiag d;
  tile_diag_init(&d, stderr, "target", NULL, 0);
  bool ok = tile_target_load("tiny", &t, &d) && tile_target_set_torus(&t, "1", &d);
  CHECK(ok);
  return t;
}

/* Parses `src` (one func whose result is computed by the op under test from its
 * parameters and splat constants). */
static bool ew_setup(EwRun *r, const char *src) {
  memset(r, 0, sizeof *r);
  r->mod = parse(src);
  if (!r->mod) return false;
  TileFunc *f = r->mod->funcs;
  TileOp *ret = f->body->last;
  r->op = ret->opnd[0].v->def;
  r->nin = f->body->nargs;
  for (int i = 0; i < r->nin; i++) r->in_elem[i] = f->body->args[i]->type.elem;
  r->out_elem = r->op->res[0]->type.elem;
  return tile_ew_supported(r->op);
}

/* Runs the op on inputs in[i] (N lanes of 32-bit words each, as the vregs hold them)
 * and writes the result lanes to out. pooled: constants made before the op. */
static bool ew_run(EwRun *r, uint32_t in[][N], uint32_t *out, bool pooled) {
  TileTarget t = machine();
  TileMir m;
  tile_mir_init(&m, &t);
  int32_t zero = tile_mir_sreg(&m), stride = tile_mir_sreg(&m);
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_LI, zero, 0, 0, 0, 0));
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_LI, stride, 0, 0, 0, LANES * 4));
  TileEwConsts k = {0};
  if (pooled) tile_ew_consts(&m, r->op, &k);
  int32_t v[MAX_IN];
  for (int i = 0; i < r->op->nopnd; i++) {
    const TileValue *x = r->op->opnd[i].v;
    v[i] = -1;
    if (!x->def) { /* a parameter */
      v[i] = tile_mir_vreg(&m);
      tile_mir_add(&m, tile_mir_inst(TILE_MOP_VLD, v[i], zero, stride, 0, x->index * TILE_BYTES));
    }
  }
  int first = m.ninsts;
  int32_t res = tile_ew_emit_mir(&m, r->op, v, pooled ? &k : NULL);
  r->ninsts = m.ninsts - first;
  tile_mir_add(&m, tile_mir_inst(TILE_MOP_VST, res, zero, stride, 0, MAX_IN * TILE_BYTES));
  Seq s = {0};
  bool ok = sequentialize(&m, &t, &s);
  CHECK(ok);
  tile_mir_free(&m);
  if (!ok) return false;

  TileObject obj;
  memset(&obj, 0, sizeof obj);
  snprintf(obj.target, sizeof obj.target, "%s", t.name);
  TileObjCode code = {.chip = TILE_OBJ_ALL_CHIPS, .nbundles = s.n, .bundles = s.b};
  obj.ncode = 1;
  obj.code = &code;
  TileObjSymbol syms[MAX_IN + 1];
  memset(syms, 0, sizeof syms);
  for (int i = 0; i <= r->nin; i++) {
    TileObjSymbol *y = &syms[i];
    bool is_out = i == r->nin;
    snprintf(y->name, sizeof y->name, is_out ? "out" : "in%d", i);
    y->kind = is_out ? TILE_BIND_OUT : TILE_BIND_IN;
    y->space = TILE_SPACE_VMEM;
    uint8_t e = is_out ? r->out_elem : r->in_elem[i];
    y->elem = tile_elem_is_float((TileElem)e) ? TILE_ELEM_F32 : TILE_ELEM_I32;
    y->rank = 2;
    y->dims[0] = ROWS;
    y->dims[1] = LANES;
    y->addr = (is_out ? MAX_IN : i) * TILE_BYTES;
  }
  obj.nsyms = r->nin + 1;
  obj.syms = syms;
  TileEmuOptions o;
  tile_emu_options_default(&o);
  TileDiag d;
  tile_diag_init(&d, stderr, "ew", NULL, 0);
  TileEmu *e = tile_emu_create(&obj, &t, &o, &d);
  CHECK(e != NULL);
  if (!e) return false;
  for (int i = 0; i < r->nin; i++) {
    char name[16];
    snprintf(name, sizeof name, "in%d", i);
    CHECK(tile_emu_set_input(e, name, in[i], TILE_BYTES));
  }
  TileEmuStatus st = tile_emu_run(e);
  if (st != TILE_EMU_OK) fprintf(stderr, "%s\n", tile_emu_fault(e)->message);
  CHECK_EQ(TILE_EMU_OK, st);
  CHECK(tile_emu_get_output(e, "out", out, TILE_BYTES));
  TileEmuStats stats;
  tile_emu_stats(e, &stats);
  r->cycles = stats.cycles;
  tile_emu_free(e);
  free(s.b);
  return st == TILE_EMU_OK;
}

/* ---- inputs and comparisons ---- */

static uint32_t bits_of(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static float float_of(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t next32(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (uint32_t)(rng >> 11);
}

/* Hard values first, then random bit patterns (every exponent) and random values of
 * ordinary size. */
static const float specials[] = {0.0f, -0.0f, 1.0f, -1.0f, INFINITY, -INFINITY, NAN,
                                 1e-45f, -1e-45f, 1.17549435e-38f, 3.4028235e38f, -3.4028235e38f,
                                 2.0f, 0.5f, 3.0f, -3.0f, 1e30f, 1e-30f, 8388608.5f, 16777216.0f};
static void fill_f32(uint32_t *x, int salt) {
  int ns = (int)(sizeof specials / sizeof *specials);
  for (int i = 0; i < N; i++) {
    if (i < ns * ns) x[i] = bits_of(specials[salt ? i / ns : i % ns]);
    else if (i % 2) x[i] = next32();
    else x[i] = bits_of(ldexpf((float)next32() / 4294967296.0f - 0.5f, (int)(next32() % 40) - 20));
  }
}

static void fill_i32(uint32_t *x, int salt) {
  static const int32_t sp[] = {0, 1, -1, 2, -2, 7, -7, 2147483647, -2147483647 - 1, 1 << 30,
                               -(1 << 30), 1000000007, 46341, -46341, 3, 65536};
  int ns = (int)(sizeof sp / sizeof *sp);
  for (int i = 0; i < N; i++) {
    if (i < ns * ns) x[i] = (uint32_t)sp[salt ? i / ns : i % ns];
    else if (i % 3 == 0) x[i] = next32();
    else if (i % 3 == 1) x[i] = (uint32_t)((int32_t)(next32() % 2001) - 1000);
    else x[i] = next32() >> (next32() % 31);
  }
}

static bool same_f32(uint32_t want, uint32_t got) {
  if (isnan(float_of(want))) return isnan(float_of(got));
  return want == got;
}

/* Distance in ulp between two floats of the same sign (inf if signs differ or one is
 * NaN and the other not). */
static double ulps(float want, float got) {
  if (isnan(want) || isnan(got)) return isnan(want) && isnan(got) ? 0 : INFINITY;
  if (want == got) return 0;
  if (isinf(want) || isinf(got) || signbit(want) != signbit(got)) return INFINITY;
  int32_t a = (int32_t)(bits_of(want) & 0x7fffffff), b = (int32_t)(bits_of(got) & 0x7fffffff);
  return fabs((double)a - (double)b);
}

typedef float F2(float, float);
typedef float F1(float);

static float f_add(float a, float b) { return a + b; }
static float f_mul(float a, float b) { return a * b; }
static float f_sub(float a, float b) { return a - b; }

static const char *binary_src(const char *op, const char *ty) {
  static char buf[512];
  snprintf(buf, sizeof buf,
           "func @f(%%a: tensor<8x128x%s>, %%b: tensor<8x128x%s>) -> tensor<8x128x%s> {\n"
           "  %%r = %s %%a, %%b : tensor<8x128x%s>\n  return %%r\n}\n",
           ty, ty, ty, op, ty);
  return buf;
}

static const char *unary_src(const char *op, const char *ty, const char *rty) {
  static char buf[512];
  snprintf(buf, sizeof buf,
           "func @f(%%a: tensor<8x128x%s>) -> tensor<8x128x%s> {\n"
           "  %%r = %s %%a : tensor<8x128x%s>\n  return %%r\n}\n",
           ty, rty, op, rty);
  return buf;
}

/* An f32 binary op against C's, bit for bit. */
static void check_exact_binary(const char *name, F2 *ref) {
  EwRun r;
  REQUIRE(ew_setup(&r, binary_src(name, "f32")));
  static uint32_t in[MAX_IN][N], out[N];
  fill_f32(in[0], 0);
  fill_f32(in[1], 1);
  REQUIRE(ew_run(&r, in, out, false));
  int bad = 0;
  for (int i = 0; i < N; i++) {
    float want = ref(float_of(in[0][i]), float_of(in[1][i]));
    if (!same_f32(bits_of(want), out[i]) && bad++ < 5)
      fprintf(stderr, "%s(%a, %a): want %a got %a\n", name, float_of(in[0][i]),
              float_of(in[1][i]), want, float_of(out[i]));
  }
  CHECK_EQ(0, bad);
  tile_module_free(r.mod);
}

TEST(ew, add_sub_mul_exact) {
  check_exact_binary("add", f_add);
  check_exact_binary("sub", f_sub);
  check_exact_binary("mul", f_mul);
}

/* Division is IEEE: correctly rounded wherever the quotient and 1/b are normal. */
TEST(ew, div_is_ieee) {
  EwRun r;
  REQUIRE(ew_setup(&r, binary_src("div", "f32")));
  static uint32_t in[MAX_IN][N], out[N];
  fill_f32(in[0], 0);
  fill_f32(in[1], 1);
  REQUIRE(ew_run(&r, in, out, false));
  int bad = 0, off = 0;
  for (int i = 0; i < N; i++) {
    float a = float_of(in[0][i]), b = float_of(in[1][i]), want = a / b, got = float_of(out[i]);
    if (same_f32(bits_of(want), out[i])) continue;
    bool edge = fabsf(want) < 0x1p-100f; /* where r underflows: one ulp allowed */
    if (edge && ulps(want, got) <= 1) {
      off++;
      continue;
    }
    if (bad++ < 5) fprintf(stderr, "div(%a, %a): want %a got %a\n", a, b, want, got);
  }
  CHECK_EQ(0, bad);
  fprintf(stderr, "div: %d of %d quotients below 2^-100 one ulp off\n", off, N);
  tile_module_free(r.mod);
}

/* A splat divisor: exact through its constant reciprocal (a power of two multiplies). */
TEST(ew, div_by_splat) {
  static const char *divisors[] = {"4096.0", "3.0", "0.1", "-7.5"};
  static const float dv[] = {4096.0f, 3.0f, 0.1f, -7.5f};
  for (int k = 0; k < 4; k++) {
    char src[512];
    snprintf(src, sizeof src,
             "func @f(%%a: tensor<8x128xf32>) -> tensor<8x128xf32> {\n"
             "  %%c = constant {value = %s} : tensor<8x128xf32>\n"
             "  %%r = div %%a, %%c : tensor<8x128xf32>\n  return %%r\n}\n", divisors[k]);
    EwRun r;
    REQUIRE(ew_setup(&r, src));
    static uint32_t in[MAX_IN][N], out[N];
    fill_f32(in[0], 0);
    REQUIRE(ew_run(&r, in, out, k % 2 == 0));
    int bad = 0;
    for (int i = 0; i < N; i++) {
      float want = float_of(in[0][i]) / dv[k];
      bool edge = fabsf(want) < 0x1p-100f && ulps(want, float_of(out[i])) <= 1;
      if (!same_f32(bits_of(want), out[i]) && !edge && bad++ < 5)
        fprintf(stderr, "div(%a, %g): want %a got %a\n", float_of(in[0][i]), dv[k], want,
                float_of(out[i]));
    }
    CHECK_EQ(0, bad);
    if (k == 0) CHECK_EQ(1, r.ninsts); /* one vmul.f by 2^-12 */
    tile_module_free(r.mod);
  }
}

/* Unary float ops against the double function, within the stated ulp. */
typedef struct UnaryCase {
  const char *name;
  double (*ref)(double);
  double max_ulp;
  float lo; /* inputs below are not compared (outside the function's domain of interest) */
} UnaryCase;

static double d_rsqrt(double x) { return 1 / sqrt(x); }
static double d_recip(double x) { return 1 / x; }
static double d_logistic(double x) { return 1 / (1 + exp(-x)); }
static double d_neg(double x) { return -x; }

TEST(ew, unary_float) {
  static const UnaryCase cases[] = {
      {"sqrt", sqrt, 0.5, -INFINITY},  {"rsqrt", d_rsqrt, 1, -INFINITY},
      {"recip", d_recip, 0.5, -INFINITY}, {"exp", exp, 1, -INFINITY},
      {"log", log, 1, -INFINITY},      {"tanh", tanh, 1, -INFINITY},
      {"logistic", d_logistic, 4, -INFINITY}, {"abs", fabs, 0, -INFINITY},
      {"neg", d_neg, 0, -INFINITY},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    EwRun r;
    REQUIRE(ew_setup(&r, unary_src(cases[c].name, "f32", "f32")));
    static uint32_t in[MAX_IN][N], out[N];
    fill_f32(in[0], 0);
    REQUIRE(ew_run(&r, in, out, c % 2 == 0));
    int bad = 0;
    for (int i = 0; i < N; i++) {
      float x = float_of(in[0][i]), got = float_of(out[i]);
      double exact = cases[c].ref((double)x);
      float want = (float)exact;
      double err = ulps(want, got);
      /* Results in the subnormal range are compared in absolute terms. */
      bool ok = err <= cases[c].max_ulp ||
                (fabs(exact) < 1.2e-38 && fabs((double)got - exact) < 1e-44);
      if (!ok && bad++ < 5)
        fprintf(stderr, "%s(%a): want %a got %a (%g ulp)\n", cases[c].name, x, want, got, err);
    }
    CHECK_EQ(0, bad);
    tile_module_free(r.mod);
  }
}

/* pow against C's powf (correctly rounded in glibc) within a few ulp, special cases
 * exact: x^0 = 1, 1^y = 1, negative bases with integer exponents, -0 and infinities. */
TEST(ew, pow_general) {
  EwRun r;
  REQUIRE(ew_setup(&r, binary_src("pow", "f32")));
  static uint32_t in[MAX_IN][N], out[N];
  fill_f32(in[0], 0);
  fill_f32(in[1], 1);
  /* plus moderate bases and exponents where the result is an ordinary number */
  for (int i = N / 2; i < N; i++) {
    in[0][i] = bits_of(ldexpf((float)(next32() % 1000) / 100.0f, 0) * (i % 4 == 0 ? -1 : 1));
    in[1][i] = bits_of(i % 3 == 0 ? (float)((int)(next32() % 21) - 10)
                                  : (float)(next32() % 2000) / 100.0f - 10.0f);
  }
  REQUIRE(ew_run(&r, in, out, true));
  int bad = 0;
  double worst = 0;
  for (int i = 0; i < N; i++) {
    float a = float_of(in[0][i]), b = float_of(in[1][i]), want = powf(a, b), got = float_of(out[i]);
    if (isnan(a) && b == 0) want = 1; /* signalling NaN bases: the reference widens (quiets) */
    double err = ulps(want, got);
    /* The exponent's argument y ln|x| carries f32 rounding: about one ulp per unit. */
    double allowed = isnan(want) ? 0 : 2 + fabs(log(fabs((double)want)));
    if (err > worst && isfinite(err)) worst = err;
    bool ok = err <= allowed || (fabsf(want) < 1.2e-38f && fabsf(got - want) < 1e-42f);
    if (!ok && bad++ < 8) fprintf(stderr, "pow(%a, %a): want %a got %a\n", a, b, want, got);
  }
  CHECK_EQ(0, bad);
  tile_module_free(r.mod);
}

TEST(ew, pow_splat_exponents) {
  static const char *exps[] = {"2.0", "0.5", "3.0", "-1.0", "1.5", "-2.0", "0.0", "-0.5"};
  for (size_t k = 0; k < sizeof exps / sizeof *exps; k++) {
    char src[512];
    snprintf(src, sizeof src,
             "func @f(%%a: tensor<8x128xf32>) -> tensor<8x128xf32> {\n"
             "  %%c = constant {value = %s} : tensor<8x128xf32>\n"
             "  %%r = pow %%a, %%c : tensor<8x128xf32>\n  return %%r\n}\n", exps[k]);
    EwRun r;
    REQUIRE(ew_setup(&r, src));
    static uint32_t in[MAX_IN][N], out[N];
    fill_f32(in[0], 0);
    REQUIRE(ew_run(&r, in, out, true));
    float y = strtof(exps[k], NULL);
    int bad = 0;
    for (int i = 0; i < N; i++) {
      float a = float_of(in[0][i]), want = isnan(a) && y == 0 ? 1 : powf(a, y), got = float_of(out[i]);
      bool ok = ulps(want, got) <= (isnan(want) ? 0 : 2 + fabs(log(fabs((double)want)))) || (fabsf(want) < 1.2e-38f && fabsf(got - want) < 1e-42f);
      if (!ok && bad++ < 5) fprintf(stderr, "pow(%a, %g): want %a got %a\n", a, y, want, got);
    }
    CHECK_EQ(0, bad);
    tile_module_free(r.mod);
  }
}

/* Compares give 0/1 (NaN false except under ne), selects pick by them. */
TEST(ew, compare_and_select) {
  static const char *dirs[] = {"eq", "ne", "lt", "le", "gt", "ge"};
  for (int ty = 0; ty < 2; ty++) {
    const char *t = ty ? "i32" : "f32";
    for (int k = 0; k < 6; k++) {
      char src[512];
      snprintf(src, sizeof src,
               "func @f(%%a: tensor<8x128x%s>, %%b: tensor<8x128x%s>) -> tensor<8x128xi32> {\n"
               "  %%c = compare %%a, %%b {dir = %s} : tensor<8x128xi1>\n"
               "  %%r = convert %%c : tensor<8x128xi32>\n  return %%r\n}\n", t, t, dirs[k]);
      /* The harness runs the compare itself: the convert's operand. */
      EwRun r;
      TileModule *mod = parse(src);
      REQUIRE(mod != NULL);
      memset(&r, 0, sizeof r);
      r.mod = mod;
      r.op = mod->funcs->body->first;
      r.nin = 2;
      r.in_elem[0] = r.in_elem[1] = ty ? TILE_ELEM_I32 : TILE_ELEM_F32;
      r.out_elem = TILE_ELEM_I32;
      REQUIRE(tile_ew_supported(r.op));
      static uint32_t in[MAX_IN][N], out[N];
      if (ty) fill_i32(in[0], 0), fill_i32(in[1], 1);
      else fill_f32(in[0], 0), fill_f32(in[1], 1);
      REQUIRE(ew_run(&r, in, out, false));
      int bad = 0;
      for (int i = 0; i < N; i++) {
        bool want;
        if (ty) {
          int32_t a = (int32_t)in[0][i], b = (int32_t)in[1][i];
          bool res[6] = {a == b, a != b, a < b, a <= b, a > b, a >= b};
          want = res[k];
        } else {
          float a = float_of(in[0][i]), b = float_of(in[1][i]);
          bool res[6] = {a == b, a != b, a < b, a <= b, a > b, a >= b};
          want = res[k];
        }
        if (out[i] != (uint32_t)want && bad++ < 3)
          fprintf(stderr, "compare %s %s lane %d: want %d got %u\n", t, dirs[k], i, want, out[i]);
      }
      CHECK_EQ(0, bad);
      tile_module_free(mod);
    }
  }
}

/* f32 -> i32 truncates toward zero (as the reference does); i32 -> f32 and -> bf16
 * round to nearest even. */
TEST(ew, conversions) {
  EwRun r;
  REQUIRE(ew_setup(&r, unary_src("convert", "f32", "i32")));
  static uint32_t in[MAX_IN][N], out[N];
  for (int i = 0; i < N; i++) {
    float x = (float)((int32_t)next32()) / (float)(1u << (next32() % 31));
    if (i < 16) x = (float[]){0.5f, -0.5f, 1.5f, -1.5f, 2.5f, -2.5f, 0.49999997f, -0.0f,
                              2147483520.0f, -2147483648.0f, 8388607.5f, -8388607.5f,
                              0.99999994f, -0.99999994f, 3.0f, 1e-40f}[i];
    in[0][i] = bits_of(x);
  }
  REQUIRE(ew_run(&r, in, out, true));
  int bad = 0;
  for (int i = 0; i < N; i++) {
    int32_t want = (int32_t)truncf(float_of(in[0][i]));
    if ((int32_t)out[i] != want && bad++ < 5)
      fprintf(stderr, "convert(%a) to i32: want %d got %d\n", float_of(in[0][i]), want,
              (int32_t)out[i]);
  }
  CHECK_EQ(0, bad);
  tile_module_free(r.mod);

  REQUIRE(ew_setup(&r, unary_src("convert", "i32", "bf16")));
  fill_i32(in[0], 0);
  REQUIRE(ew_run(&r, in, out, false));
  bad = 0;
  for (int i = 0; i < N; i++) {
    float f = (float)(int32_t)in[0][i];
    uint32_t u = bits_of(f), want = (u + 0x7fffu + ((u >> 16) & 1)) & 0xffff0000u;
    if (out[i] != want && bad++ < 5)
      fprintf(stderr, "convert(%d) to bf16: want %08x got %08x\n", (int32_t)in[0][i], want, out[i]);
  }
  CHECK_EQ(0, bad);
  tile_module_free(r.mod);
}

/* i32 division truncates, rem takes the dividend's sign; every i32 pair but b = 0 and
 * INT_MIN / -1. */
TEST(ew, integer_div_rem) {
  for (int which = 0; which < 2; which++) {
    EwRun r;
    REQUIRE(ew_setup(&r, binary_src(which ? "rem" : "div", "i32")));
    static uint32_t in[MAX_IN][N], out[N];
    for (int round = 0; round < 4; round++) {
      fill_i32(in[0], 0);
      fill_i32(in[1], 1);
      REQUIRE(ew_run(&r, in, out, round % 2 == 0));
      int bad = 0;
      for (int i = 0; i < N; i++) {
        int32_t a = (int32_t)in[0][i], b = (int32_t)in[1][i];
        if (b == 0 || (a == INT32_MIN && b == -1)) continue;
        int32_t want = which ? a % b : a / b;
        if ((int32_t)out[i] != want && bad++ < 5)
          fprintf(stderr, "%s(%d, %d): want %d got %d\n", which ? "rem" : "div", a, b, want,
                  (int32_t)out[i]);
      }
      CHECK_EQ(0, bad);
    }
    tile_module_free(r.mod);
  }
}

/* i1 arithmetic is modulo 2; ints have min/max/abs/neg/not. */
TEST(ew, integer_and_bool_ops) {
  static const struct {
    const char *op;
    int nin;
  } ops[] = {{"max", 2}, {"min", 2}, {"abs", 1}, {"neg", 1}, {"not", 1},
             {"and", 2}, {"or", 2},  {"xor", 2}, {"add", 2}, {"mul", 2}};
  for (size_t k = 0; k < sizeof ops / sizeof *ops; k++) {
    EwRun r;
    REQUIRE(ew_setup(&r, ops[k].nin == 2 ? binary_src(ops[k].op, "i32")
                                         : unary_src(ops[k].op, "i32", "i32")));
    static uint32_t in[MAX_IN][N], out[N];
    fill_i32(in[0], 0);
    fill_i32(in[1], 1);
    REQUIRE(ew_run(&r, in, out, false));
    int bad = 0;
    for (int i = 0; i < N; i++) {
      int32_t a = (int32_t)in[0][i], b = (int32_t)in[1][i];
      uint32_t ua = in[0][i], ub = in[1][i];
      uint32_t want[] = {(uint32_t)(a > b ? a : b), (uint32_t)(a < b ? a : b),
                         a < 0 ? 0u - ua : ua, 0u - ua, ~ua, ua & ub, ua | ub, ua ^ ub,
                         ua + ub, ua * ub};
      if (out[i] != want[k] && bad++ < 3)
        fprintf(stderr, "%s(%d, %d): want %d got %d\n", ops[k].op, a, b, (int32_t)want[k],
                (int32_t)out[i]);
    }
    CHECK_EQ(0, bad);
    tile_module_free(r.mod);
  }
}

/* Ops on bf16 round their result once; picks (max, select, neg) do not need to. */
TEST(ew, bf16_results_round_once) {
  EwRun r;
  REQUIRE(ew_setup(&r, binary_src("mul", "bf16")));
  static uint32_t in[MAX_IN][N], out[N];
  for (int i = 0; i < N; i++) {
    in[0][i] = next32() & 0xffff0000u;
    in[1][i] = (next32() & 0x80ff0000u) | 0x3f000000u; /* bf16 values around 1 */
  }
  REQUIRE(ew_run(&r, in, out, false));
  int bad = 0;
  for (int i = 0; i < N; i++) {
    uint32_t u = bits_of(float_of(in[0][i]) * float_of(in[1][i]));
    uint32_t want = isnan(float_of(u)) ? u : (u + 0x7fffu + ((u >> 16) & 1)) & 0xffff0000u;
    if (!same_f32(want, out[i]) && bad++ < 3)
      fprintf(stderr, "bf16 mul: want %08x got %08x\n", want, out[i]);
  }
  CHECK_EQ(0, bad);
  tile_module_free(r.mod);
}

/* What ew does not take, it says so (the generators report it at the op). */
TEST(ew, unsupported_ops_are_refused) {
  TileModule *m = parse("func @f(%a: tensor<8x128xf32>, %b: tensor<8x128xf32>, %i: tensor<8xi32>)"
                        " -> tensor<8x128xf32> {\n"
                        "  %r = rem %a, %b : tensor<8x128xf32>\n"
                        "  %s = reduce %a {kind = add, dims = [1]} : tensor<8xf32>\n"
                        "  %h = convert %a : tensor<8x128xf16>\n"
                        "  return %r\n}\n");
  REQUIRE(m != NULL);
  const TileOp *op = m->funcs->body->first;
  CHECK(!tile_ew_supported(op));             /* float rem */
  CHECK(!tile_ew_supported(op->next));       /* not elementwise */
  CHECK(!tile_ew_supported(op->next->next)); /* f16 has no lane form */
  tile_module_free(m);
}

/* Constants made up front replace the per-tile vli's. */
TEST(ew, pooled_constants_leave_the_loop_body) {
  EwRun r;
  REQUIRE(ew_setup(&r, unary_src("logistic", "f32", "f32")));
  static uint32_t in[MAX_IN][N], out[N];
  fill_f32(in[0], 0);
  REQUIRE(ew_run(&r, in, out, false));
  int plain = r.ninsts;
  REQUIRE(ew_run(&r, in, out, true));
  CHECK_EQ(plain - 3, r.ninsts); /* the sign mask, 1.0 and 0.0 */
  tile_module_free(r.mod);
}
