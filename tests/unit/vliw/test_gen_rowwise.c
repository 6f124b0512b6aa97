/* The row-wise generator (backend-vliw/gen_rowwise*.c): whole programs (softmax, the
 * norms, rope, reductions, broadcasts of per-row and per-column values) compile through
 * the passes, lowering, scheduling and emission, run on the emulator in strict mode,
 * and match a double-precision reference within the tolerances of REFERENCE.md, on
 * shapes with partial 128-lane columns and partial blocks of rows. The MIR keeps its
 * promises: pipelined column loops, balanced semaphores; and what the generator cannot
 * lower is refused with a sentence at the op. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "compile_fixture.h"
#include "tile/ops.h"

enum { MAX_ARGS = 4 };

typedef struct Arg {
  const char *name;
  float *data; /* values (bf16 arguments: already bf16-exact) */
  int64_t n;
  bool bf16;
} Arg;

static TileTarget load_target(const char *name) {
  TileTarget t;
  bool ok = target_for(name, "1", &t);
  CHECK(ok);
  return t;
}

static uint16_t bf16_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static float bf16_round(float f) {
  uint32_t u = (uint32_t)bf16_bits(f) << 16;
  float r;
  memcpy(&r, &u, 4);
  return r;
}

/* Compiles src for `target`, runs it with args, reads `result` (n values) into out.
 * Returns the cycle count, or -1 (with the reason on stderr). */
static int64_t compile_run(const char *target, const char *src, Arg *args, int nargs, float *out,
                           int64_t n, bool out_bf16) {
  TileTarget t = load_target(target);
  TileObject obj;
  int64_t cycles = -1;
  if (!compile_text(&t, src, NULL, NULL, 0, &obj)) goto out;
  TileEmu *e = emu_for(&obj, &t);
  if (!e) goto out;
  for (int i = 0; i < nargs; i++) {
    if (args[i].bf16) {
      uint16_t *h = malloc(sizeof *h * (size_t)args[i].n);
      for (int64_t j = 0; j < args[i].n; j++) h[j] = bf16_bits(args[i].data[j]);
      CHECK(tile_emu_set_input(e, args[i].name, h, sizeof *h * (size_t)args[i].n));
      free(h);
    } else {
      CHECK(tile_emu_set_input(e, args[i].name, args[i].data, sizeof(float) * (size_t)args[i].n));
    }
  }
  if (emu_run(e) == TILE_EMU_OK) {
    if (out_bf16) {
      uint16_t *h = malloc(sizeof *h * (size_t)n);
      CHECK(tile_emu_get_output(e, "result", h, sizeof *h * (size_t)n));
      for (int64_t j = 0; j < n; j++) {
        uint32_t u = (uint32_t)h[j] << 16;
        memcpy(&out[j], &u, 4);
      }
      free(h);
    } else {
      CHECK(tile_emu_get_output(e, "result", out, sizeof(float) * (size_t)n));
    }
    TileEmuStats s;
    tile_emu_stats(e, &s);
    cycles = s.cycles;
  }
  tile_emu_free(e);
out:
  tile_object_free(&obj);
  return cycles;
}

static double nmse(const float *got, const double *want, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    if (isnan(got[i])) return INFINITY;
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return den > 0 ? num / den : num;
}

static uint64_t rng = 88172645463325252ull;
static float gauss(void) {
  double s = 0;
  for (int i = 0; i < 4; i++) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    s += (double)(rng >> 11) / 9007199254740992.0;
  }
  return (float)((s - 2.0) * 1.7320508);
}

static float *randn(int64_t n, float scale, bool bf16) {
  float *x = malloc(sizeof *x * (size_t)n);
  for (int64_t i = 0; i < n; i++) x[i] = bf16 ? bf16_round(gauss() * scale) : gauss() * scale;
  return x;
}

/* ---- softmax ---- */

static void check_softmax(const char *target, int64_t rows, int64_t cols) {
  char src[512];
  snprintf(src, sizeof src,
           "func @f(%%x: tensor<%lldx%lldxf32>) -> tensor<%lldx%lldxf32> {\n"
           "  %%y = softmax %%x {dim = 1} : tensor<%lldx%lldxf32>\n  return %%y\n}\n",
           (long long)rows, (long long)cols, (long long)rows, (long long)cols, (long long)rows,
           (long long)cols);
  int64_t n = rows * cols;
  float *x = randn(n, 4, false), *y = calloc((size_t)n, sizeof *y);
  double *want = malloc(sizeof *want * (size_t)n);
  for (int64_t r = 0; r < rows; r++) {
    double mx = -INFINITY, s = 0;
    for (int64_t c = 0; c < cols; c++) mx = fmax(mx, x[r * cols + c]);
    for (int64_t c = 0; c < cols; c++) s += exp(x[r * cols + c] - mx);
    for (int64_t c = 0; c < cols; c++) want[r * cols + c] = exp(x[r * cols + c] - mx) / s;
  }
  Arg a = {"x", x, n, false};
  int64_t cycles = compile_run(target, src, &a, 1, y, n, false);
  CHECK(cycles > 0);
  double e = nmse(y, want, n);
  if (!(e <= 1e-6)) fprintf(stderr, "softmax %lldx%lld on %s: nmse %g\n", (long long)rows,
                           (long long)cols, target, e);
  CHECK(e <= 1e-6);
  free(x);
  free(y);
  free(want);
}

TEST(gen_rowwise, softmax_whole_tiles) { check_softmax("tiny", 16, 256); }

/* 13 rows: a partial block; 200 columns: a partial 128-lane column, masked to -inf
 * for the max and 0 for the sum. */
TEST(gen_rowwise, softmax_partial_rows_and_columns) {
  check_softmax("tiny", 13, 200);
  check_softmax("tiny", 3, 1000);
  check_softmax("tiny", 40, 7);
}

/* A long row on the TPU-like target: the block moves in several DMA pieces. */
TEST(gen_rowwise, softmax_long_rows_in_pieces) { check_softmax("v5e-like", 8, 32768); }

/* ---- the norms, with gamma and beta broadcast along rows ---- */

static void check_norm(bool layer, int64_t rows, int64_t cols, bool bf16) {
  const char *t = bf16 ? "bf16" : "f32";
  char src[768];
  if (layer)
    snprintf(src, sizeof src,
             "func @f(%%x: tensor<%lldx%lldx%s>, %%g: tensor<%lldx%s>, %%b: tensor<%lldx%s>) -> "
             "tensor<%lldx%lldx%s> {\n"
             "  %%y = layernorm %%x, %%g, %%b {eps = 1e-5} : tensor<%lldx%lldx%s>\n"
             "  return %%y\n}\n",
             (long long)rows, (long long)cols, t, (long long)cols, t, (long long)cols, t,
             (long long)rows, (long long)cols, t, (long long)rows, (long long)cols, t);
  else
    snprintf(src, sizeof src,
             "func @f(%%x: tensor<%lldx%lldx%s>, %%g: tensor<%lldx%s>) -> tensor<%lldx%lldx%s> {\n"
             "  %%y = rmsnorm %%x, %%g {eps = 1e-6} : tensor<%lldx%lldx%s>\n  return %%y\n}\n",
             (long long)rows, (long long)cols, t, (long long)cols, t, (long long)rows,
             (long long)cols, t, (long long)rows, (long long)cols, t);
  int64_t n = rows * cols;
  float *x = randn(n, 3, bf16), *g = randn(cols, 1, bf16), *b = randn(cols, 1, bf16);
  for (int64_t i = 0; i < n; i++) x[i] = bf16 ? bf16_round(x[i] + 1) : x[i] + 1;
  float *y = calloc((size_t)n, sizeof *y);
  double *want = malloc(sizeof *want * (size_t)n);
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * cols;
    double mean = 0, var = 0;
    for (int64_t c = 0; c < cols; c++) mean += xr[c];
    mean = layer ? mean / (double)cols : 0;
    for (int64_t c = 0; c < cols; c++) var += (xr[c] - mean) * (xr[c] - mean);
    double inv = 1 / sqrt(var / (double)cols + (layer ? 1e-5 : 1e-6));
    for (int64_t c = 0; c < cols; c++) {
      double v = (xr[c] - mean) * inv * g[c] + (layer ? b[c] : 0);
      want[r * cols + c] = bf16 ? bf16_round((float)v) : v;
    }
  }
  Arg args[3] = {{"x", x, n, bf16}, {"g", g, cols, bf16}, {"b", b, cols, bf16}};
  int64_t cycles = compile_run("tiny", src, args, layer ? 3 : 2, y, n, bf16);
  CHECK(cycles > 0);
  double e = nmse(y, want, n), tol = bf16 ? 1e-5 : 1e-7; /* bf16: the output's rounding */
  if (!(e <= tol)) fprintf(stderr, "%s %lldx%lld %s: nmse %g\n", layer ? "layernorm" : "rmsnorm",
                           (long long)rows, (long long)cols, t, e);
  CHECK(e <= tol);
  free(x);
  free(g);
  free(b);
  free(y);
  free(want);
}

TEST(gen_rowwise, layernorm_f32) {
  check_norm(true, 16, 256, false);
  check_norm(true, 9, 100, false);
}

TEST(gen_rowwise, rmsnorm_f32_and_bf16) {
  check_norm(false, 24, 512, false);
  check_norm(false, 10, 384, true);
}

/* ---- rope: rotate halves with cos/sin tables repeating every S rows ---- */

/* In a chain (chain): rope of 2x, rounded to bf16, one row-wise group with the add
 * before it and the convert after (passes/fuse.c). */
static void check_rope(int64_t b, int64_t s, int64_t d, bool chain) {
  char src[900];
  long long B = b, S = s, D = d, H = d / 2;
  if (chain)
    snprintf(src, sizeof src,
             "func @f(%%x: tensor<%lldx%lldx%lldxf32>, %%c: tensor<%lldx%lldxf32>, "
             "%%s: tensor<%lldx%lldxf32>) -> tensor<%lldx%lldx%lldxbf16> {\n"
             "  %%a = add %%x, %%x : tensor<%lldx%lldx%lldxf32>\n"
             "  %%r = rope %%a, %%c, %%s : tensor<%lldx%lldx%lldxf32>\n"
             "  %%y = convert %%r : tensor<%lldx%lldx%lldxbf16>\n  return %%y\n}\n",
             B, S, D, S, H, S, H, B, S, D, B, S, D, B, S, D, B, S, D);
  else
    snprintf(src, sizeof src,
             "func @f(%%x: tensor<%lldx%lldx%lldxf32>, %%c: tensor<%lldx%lldxf32>, "
             "%%s: tensor<%lldx%lldxf32>) -> tensor<%lldx%lldx%lldxf32> {\n"
             "  %%y = rope %%x, %%c, %%s : tensor<%lldx%lldx%lldxf32>\n  return %%y\n}\n",
             B, S, D, S, H, S, H, B, S, D, B, S, D);
  int64_t n = b * s * d, h = d / 2;
  float *x = randn(n, 1, false), *c = randn(s * h, 1, false), *sn = randn(s * h, 1, false);
  float *y = calloc((size_t)n, sizeof *y);
  double *want = malloc(sizeof *want * (size_t)n);
  double k = chain ? 2 : 1;
  for (int64_t r = 0; r < b * s; r++) {
    const float *xr = x + r * d, *cr = c + (r % s) * h, *sr = sn + (r % s) * h;
    for (int64_t i = 0; i < h; i++) {
      want[r * d + i] = k * ((double)xr[i] * cr[i] - (double)xr[i + h] * sr[i]);
      want[r * d + h + i] = k * ((double)xr[i + h] * cr[i] + (double)xr[i] * sr[i]);
    }
  }
  Arg args[3] = {{"x", x, n, false}, {"c", c, s * h, false}, {"s", sn, s * h, false}};
  CHECK(compile_run("tiny", src, args, 3, y, n, chain) > 0);
  /* bf16 keeps 8 bits of the significand: relative error up to 2^-9 an element */
  double e = nmse(y, want, n), tol = chain ? 1e-5 : 1e-7;
  if (!(e <= tol)) fprintf(stderr, "rope %lldx%lldx%lld: nmse %g\n", (long long)b, (long long)s,
                          (long long)d, e);
  CHECK(e <= tol);
  free(x);
  free(c);
  free(sn);
  free(y);
  free(want);
}

/* D = 128: one xlu.lrot by 64; D = 64: two rotations and a select; S = 4 rows of
 * table: repeated in VMEM to a whole vreg of rows. */
TEST(gen_rowwise, rope) {
  check_rope(16, 8, 128, false);
  check_rope(8, 16, 64, false);
  check_rope(8, 4, 128, false);
}

TEST(gen_rowwise, rope_in_a_chain) {
  check_rope(16, 8, 128, true);
  check_rope(8, 16, 64, true);
}

/* ---- reductions as results, per-row inputs ---- */

TEST(gen_rowwise, reduce_results_and_row_inputs) {
  static const char *kinds[] = {"add", "max", "min"};
  for (int k = 0; k < 3; k++) {
    char src[512];
    snprintf(src, sizeof src,
             "func @f(%%x: tensor<37x300xf32>) -> tensor<37xf32> {\n"
             "  %%y = reduce %%x {kind = %s, dims = [1]} : tensor<37xf32>\n  return %%y\n}\n",
             kinds[k]);
    float *x = randn(37 * 300, 1, false), y[37];
    double want[37];
    for (int r = 0; r < 37; r++) {
      double a = k == 0 ? 0 : k == 1 ? -INFINITY : INFINITY;
      for (int c = 0; c < 300; c++) {
        double v = x[r * 300 + c];
        a = k == 0 ? a + v : k == 1 ? fmax(a, v) : fmin(a, v);
      }
      want[r] = a;
    }
    Arg arg = {"x", x, 37 * 300, false};
    CHECK(compile_run("tiny", src, &arg, 1, y, 37, false) > 0);
    CHECK(nmse(y, want, 37) <= 1e-7);
    free(x);
  }
  const char *src = "func @f(%x: tensor<37x300xf32>, %r: tensor<37xf32>) -> tensor<37x300xf32> {\n"
                    "  %b = broadcast %r {dims = [0]} : tensor<37x300xf32>\n"
                    "  %y = mul %x, %b : tensor<37x300xf32>\n  return %y\n}\n";
  float *x = randn(37 * 300, 1, false), *r = randn(37, 1, false), *y = calloc(37 * 300, 4);
  double *want = malloc(sizeof *want * 37 * 300);
  for (int i = 0; i < 37 * 300; i++) want[i] = (double)(x[i] * r[i / 300]);
  Arg args[2] = {{"x", x, 37 * 300, false}, {"r", r, 37, false}};
  CHECK(compile_run("tiny", src, args, 2, y, 37 * 300, false) > 0);
  CHECK(nmse(y, want, 37 * 300) == 0);
  free(x);
  free(r);
  free(y);
  free(want);
}

/* ---- the MIR's promises ---- */

/* Compiles src through the passes to MIR (as `tilec --emit=mir` does) and hands the
 * MIR to `check`; false with the diagnostics in err when it does not compile. */
typedef struct MirCheck {
  void (*check)(const TileMir *m);
  bool seen;
} MirCheck;

static void on_stage(void *user, TileVliwStage stage, const TileVliwResult *r) {
  MirCheck *c = user;
  if (stage != TILE_VLIW_MIR || !c->check) return;
  c->check(r->mir);
  c->seen = true;
}

static bool compiles_to_mir(const char *target, const char *src,
                            void (*check)(const TileMir *m), char *err, size_t errlen) {
  TileTarget t = load_target(target);
  MirCheck c = {check, false};
  TileVliwOptions o = {.stop_after = TILE_VLIW_MIR, .on_stage = on_stage, .user = &c};
  TileObject obj;
  bool ok = compile_text(&t, src, &o, err, errlen, &obj);
  tile_object_free(&obj);
  CHECK(!ok || !check || c.seen);
  return ok;
}

static void check_softmax_mir(const TileMir *mir) {
  int pipelined = 0;
  for (int32_t i = 0; i < mir->ninsts; i++)
    pipelined += mir->insts[i].op == TILE_MIR_LOOP_BEGIN && (mir->insts[i].a & TILE_MIR_PIPELINE);
  CHECK(pipelined >= 3); /* max, sum and quotient passes */
  /* Every transfer is waited for: DMAs plus credits = units waited. */
  CHECK_EQ(dyn_count(mir, TILE_MOP_DMA) + dyn_weighted(mir, TILE_MOP_SIGNAL, true),
           dyn_weighted(mir, TILE_MOP_WAIT, true));
}

TEST(gen_rowwise, mir_pipelines_and_balances_semaphores) {
  const char *src = "func @f(%x: tensor<24x1500xf32>) -> tensor<24x1500xf32> {\n"
                    "  %y = softmax %x {dim = 1} : tensor<24x1500xf32>\n  return %y\n}\n";
  char err[600] = "";
  bool ok = compiles_to_mir("tiny", src, check_softmax_mir, err, sizeof err);
  if (!ok) fprintf(stderr, "%s\n", err);
  CHECK(ok);
}

/* One group reading x and writing four results on tiny (8 DMAs in flight): with two
 * blocks of credit per output it would have 1 + 4 x 2 = 9 in flight, which strict mode
 * faults on; the plan takes one block of credit instead (found by fuzz_compile). */
TEST(gen_rowwise, outputs_stay_within_dmas_in_flight) {
  const char *src =
      "func @f(%x: tensor<128x100xf32>) -> (tensor<128x100xf32>, tensor<128x100xf32>, "
      "tensor<128x100xf32>, tensor<128x100xf32>) {\n"
      "  %a = neg %x : tensor<128x100xf32>\n"
      "  %b = neg %a : tensor<128x100xf32>\n"
      "  %c = abs %a : tensor<128x100xf32>\n"
      "  %d = exp %a : tensor<128x100xf32>\n"
      "  %e = mul %a, %a : tensor<128x100xf32>\n"
      "  return %b, %c, %d, %e\n}\n";
  int64_t n = 128 * 100;
  float *x = randn(n, 1, false), *y = calloc((size_t)n, sizeof *y);
  Arg a = {"x", x, n, false};
  CHECK(compile_run("tiny", src, &a, 1, y, n, false) > 0);
  int bad = 0;
  for (int64_t i = 0; i < n; i++) bad += y[i] != x[i];
  CHECK_EQ(0, bad);
  free(x);
  free(y);
}

TEST(gen_rowwise, refuses_with_a_sentence) {
  static const struct {
    const char *src, *want;
  } cases[] = {
      {"func @f(%x: tensor<16x256xf32>) -> tensor<256xf32> {\n"
       "  %y = reduce %x {kind = add, dims = [0]} : tensor<256xf32>\n  return %y\n}\n",
       "reduce only the last dim"},
      {"func @f(%x: tensor<16x256xf32>) -> tensor<16xf32> {\n"
       "  %y = reduce %x {kind = mul, dims = [1]} : tensor<16xf32>\n  return %y\n}\n",
       "reduce kind 'mul'"},
      {"func @f(%x: tensor<4x8x256xf32>, %c: tensor<8x128xf32>, %s: tensor<8x128xf32>) -> "
       "tensor<4x8x256xf32> {\n  %y = rope %x, %c, %s : tensor<4x8x256xf32>\n  return %y\n}\n",
       "rope on rows of 256"},
      /* 1 input and 9 outputs streamed at once: tiny has 8 DMAs in flight */
      {"func @f(%x: tensor<16x256xf32>) -> (tensor<16x256xf32>, tensor<16x256xf32>, "
       "tensor<16x256xf32>, tensor<16x256xf32>, tensor<16x256xf32>, tensor<16x256xf32>, "
       "tensor<16x256xf32>, tensor<16x256xf32>, tensor<16x256xf32>) {\n"
       "  %a = neg %x : tensor<16x256xf32>\n  %o0 = neg %a : tensor<16x256xf32>\n"
       "  %o1 = abs %a : tensor<16x256xf32>\n  %o2 = exp %a : tensor<16x256xf32>\n"
       "  %o3 = log %a : tensor<16x256xf32>\n  %o4 = tanh %a : tensor<16x256xf32>\n"
       "  %o5 = sqrt %a : tensor<16x256xf32>\n  %o6 = recip %a : tensor<16x256xf32>\n"
       "  %o7 = rsqrt %a : tensor<16x256xf32>\n  %o8 = logistic %a : tensor<16x256xf32>\n"
       "  return %o0, %o1, %o2, %o3, %o4, %o5, %o6, %o7, %o8\n}\n",
       "needs 10 DMAs in flight; tiny allows 8"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char err[600] = "";
    CHECK(!compiles_to_mir("tiny", cases[i].src, NULL, err, sizeof err));
    if (!strstr(err, cases[i].want)) fprintf(stderr, "want '%s' in: %s\n", cases[i].want, err);
    CHECK(strstr(err, "cannot lower") != NULL);
    CHECK(strstr(err, cases[i].want) != NULL);
  }
}
