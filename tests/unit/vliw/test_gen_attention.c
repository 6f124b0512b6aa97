/* The attention generator (backend-vliw/gen_attention*.c): the MIR it makes verifies,
 * streams every query tile past every key block it sees exactly once (one push per
 * score unit and per value unit; where a head has few tiles, dummy visits add pushes
 * of their own), pipelines all of its pushes, balances every DMA with a wait;
 * compiled whole and run on the emulator (strict mode), it matches a float64 reference
 * within the matmul tolerance (NMSE <= 5e-4) in both kernels (prefill rows, decode
 * block), with and without the causal mask, grouped K/V heads, padded
 * keys and rows, a narrow head dim and f32 data; and what it cannot lower it refuses
 * with a sentence at the op. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../parse_fixture.h"
#include "check.h"
#include "tile/emu.h"
#include "tile/lower.h"
#include "tile/mir.h"
#include "tile/object.h"
#include "tile/ops.h"
#include "tile/vliw.h"

typedef struct Shape {
  int B, H, Hkv, Sq, Sk, D;
  bool causal;
  bool f32;
  double scale; /* 0: 1 / sqrt(D) */
} Shape;

static double shape_scale(const Shape *s) { return s->scale != 0 ? s->scale : 1.0 / sqrt(s->D); }

static char *attention_text(const Shape *s) {
  const char *e = s->f32 ? "f32" : "bf16";
  char *src = malloc(2048);
  snprintf(src, 2048,
           "func @f(%%q: tensor<%dx%dx%dx%dx%s>, %%k: tensor<%dx%dx%dx%dx%s>,\n"
           "        %%v: tensor<%dx%dx%dx%dx%s>) -> tensor<%dx%dx%dx%dx%s> {\n"
           "  %%o = attention %%q, %%k, %%v {scale = %.17g, causal = %d} : "
           "tensor<%dx%dx%dx%dx%s>\n"
           "  return %%o\n}\n",
           s->B, s->H, s->Sq, s->D, e, s->B, s->Hkv, s->Sk, s->D, e, s->B, s->Hkv, s->Sk, s->D,
           e, s->B, s->H, s->Sq, s->D, e, shape_scale(s), s->causal ? 1 : 0, s->B, s->H, s->Sq,
           s->D, e);
  return src;
}

/* ---- lowering only ---- */

typedef struct Lowered {
  TileTarget t;
  TileMir mir;
  TileModule *m;
  bool ok;
  char err[600];
} Lowered;

static void lower_shape(Lowered *L, const char *target, const Shape *s) {
  memset(L, 0, sizeof *L);
  TileDiag d;
  tile_diag_init(&d, NULL, "target", NULL, 0);
  if (!tile_target_load(target, &L->t, &d)) {
    snprintf(L->err, sizeof L->err, "target %s: %s", target, d.last);
    return;
  }
  char *src = attention_text(s);
  L->m = parse(src);
  tile_mir_init(&L->mir, &L->t);
  if (L->m) {
    tile_diag_init(&d, NULL, "<test>", src, strlen(src));
    L->ok = tile_lower_func(L->m, L->m->funcs, &L->mir, &d) && d.nerrors == 0;
    if (!L->ok) snprintf(L->err, sizeof L->err, "%s", d.nerrors ? d.last : "failed");
  } else {
    snprintf(L->err, sizeof L->err, "parse failed");
  }
  free(src);
}

static void lowered_free(Lowered *L) {
  tile_mir_free(&L->mir);
  if (L->m) tile_module_free(L->m);
}

/* Dynamic count of an op (each inst weighted by the trip counts of its loops), and
 * the same for insts in loops flagged for pipelining only. */
static int64_t dyn_count(const TileMir *m, int op, bool pipelined_only) {
  int64_t mult[8] = {1}, n = 0;
  bool piped[8] = {false};
  int depth = 0;
  for (int32_t i = 0; i < m->ninsts; i++) {
    const TileMirInst *in = &m->insts[i];
    if (in->op == TILE_MIR_LOOP_BEGIN) {
      mult[depth + 1] = mult[depth] * in->imm;
      piped[depth + 1] = (in->a & TILE_MIR_PIPELINE) != 0;
      depth++;
    } else if (in->op == TILE_MIR_LOOP_END) {
      depth--;
    } else if (in->op == op && (!pipelined_only || piped[depth])) {
      n += mult[depth];
    }
  }
  return n;
}

static bool verifies(const TileMir *m) {
  TileDiag d;
  tile_diag_init(&d, stderr, "<mir>", NULL, 0);
  return tile_mir_verify(m, &d);
}

/* Key blocks of 128 a query tile of 8 rows sees (rows kernel), summed over tiles. */
static int64_t visible_pairs(const Shape *s, int nk) {
  int64_t nkb = (s->Sk + 127) / 128, ntq = (s->Sq + 7) / 8, ngroups = (nkb + nk - 1) / nk, n = 0;
  for (int64_t g = 0; g < ngroups; g++) {
    int64_t k0 = g * nk * 128, blocks = nkb - g * nk < nk ? nkb - g * nk : nk;
    int64_t t0 = s->causal ? k0 / 8 : 0;
    if (t0 < ntq) n += (ntq - t0) * blocks;
  }
  return n * s->H * s->B;
}

/* Pushes of one lowering, checked against the (tile, key block) pairs: exactly two per
 * pair where every group reaches enough tiles; where a group reaches few, dummy visits
 * on scratch tiles keep a tile's visits apart and add pushes of their own. */
static void check_pushes(const char *target, const Shape *s, bool exact) {
  Lowered L;
  lower_shape(&L, target, s);
  if (!L.ok) fprintf(stderr, "%s\n", L.err);
  REQUIRE(L.ok);
  CHECK(verifies(&L.mir));
  int nk = L.t.mxu_count / 2;
  int64_t want = 2 * visible_pairs(s, nk), got = dyn_count(&L.mir, TILE_MOP_MXU_PUSH, false);
  /* a score push and a value push per (tile, key block) */
  if (exact) CHECK_EQ(want, got);
  else CHECK(got >= want);
  CHECK_EQ(got, dyn_count(&L.mir, TILE_MOP_MXU_POP, false) +
                    dyn_count(&L.mir, TILE_MOP_MXU_POPACC, false));
  /* every push is in a pipelined loop */
  CHECK_EQ(got, dyn_count(&L.mir, TILE_MOP_MXU_PUSH, true));
  /* every DMA is waited for */
  CHECK_EQ(dyn_count(&L.mir, TILE_MOP_DMA, false), dyn_count(&L.mir, TILE_MOP_WAIT, false));
  lowered_free(&L);
}

TEST(gen_attention, prefill_pushes_each_tile_once_per_block) {
  const Shape shapes[] = {
      {.B = 1, .H = 4, .Hkv = 2, .Sq = 64, .Sk = 384, .D = 128, .causal = true},
      {.B = 2, .H = 2, .Hkv = 1, .Sq = 100, .Sk = 100, .D = 64, .causal = false},
  };
  const char *targets[] = {"tiny", "v5e-like"};
  for (int ti = 0; ti < 2; ti++)
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
      check_pushes(targets[ti], &shapes[si], false);
  /* every group reaches at least 64 tiles: no dummy visits */
  const Shape big = {.B = 2, .H = 4, .Hkv = 2, .Sq = 512, .Sk = 512, .D = 128, .causal = true};
  check_pushes("v5e-like", &big, true);
}

TEST(gen_attention, decode_reads_each_block_once) {
  const Shape s = {.B = 2, .H = 8, .Hkv = 2, .Sq = 1, .Sk = 1000, .D = 128};
  Lowered L;
  lower_shape(&L, "v5e-like", &s);
  REQUIRE(L.ok);
  CHECK(verifies(&L.mir));
  int64_t blocks = (s.Sk + 127) / 128 * s.B * s.Hkv;
  CHECK_EQ(2 * blocks, dyn_count(&L.mir, TILE_MOP_MXU_PUSH, true));
  /* K^T rows and V rows of each block, once */
  CHECK_EQ(blocks * 32, dyn_count(&L.mir, TILE_MOP_MXU_LDW, true));
  CHECK_EQ(dyn_count(&L.mir, TILE_MOP_DMA, false), dyn_count(&L.mir, TILE_MOP_WAIT, false));
  /* K, V and Q of each (batch, K/V head) come in by one DMA each, the result goes out by one */
  CHECK_EQ(4 * s.B * s.Hkv, dyn_count(&L.mir, TILE_MOP_DMA, false));
  lowered_free(&L);
}

/* Lowering src fails with a message holding needle, from the attention generator when
 * by_generator (else from the lowering's own checks, before any generator runs). */
static void refuses(const char *target, const char *src, const char *needle, bool by_generator) {
  TileTarget t;
  TileDiag d;
  tile_diag_init(&d, NULL, "target", NULL, 0);
  REQUIRE(tile_target_load(target, &t, &d));
  TileModule *m = parse(src);
  REQUIRE(m);
  TileMir mir;
  tile_mir_init(&mir, &t);
  tile_diag_init(&d, NULL, "<test>", src, strlen(src));
  CHECK(!tile_lower_func(m, m->funcs, &mir, &d));
  CHECK(d.nerrors > 0);
  if (!strstr(d.last, needle)) fprintf(stderr, "message: %s\n", d.last);
  CHECK(strstr(d.last, needle) != NULL);
  if (by_generator) CHECK(strncmp(d.last, "cannot lower 'attention'", 24) == 0);
  tile_mir_free(&mir);
  tile_module_free(m);
}

TEST(gen_attention, refuses_what_it_cannot_lower) {
  refuses("tiny",
          "func @f(%q: tensor<1x1x8x256xbf16>, %k: tensor<1x1x8x256xbf16>, %v: tensor<1x1x8x256xbf16>) -> tensor<1x1x8x256xbf16> {\n"
          "  %o = attention %q, %k, %v {scale = 0.0625} : tensor<1x1x8x256xbf16>\n"
          "  return %o\n}\n",
          "head dim 256", true);
  refuses("tiny",
          "func @f(%q: tensor<1x2x512x128xbf16>, %k: tensor<1x1x128x128xbf16>, %v: tensor<1x1x128x128xbf16>) -> tensor<1x2x512x128xbf16> {\n"
          "  %o = attention %q, %k, %v {scale = 0.0625} : tensor<1x2x512x128xbf16>\n"
          "  return %o\n}\n",
          "bytes of VMEM", true);
  refuses("tiny",
          "func @f(%q: tensor<1x8x4096x128xbf16>, %k: tensor<1x1x4096x128xbf16>, %v: tensor<1x1x4096x128xbf16>) -> tensor<1x8x4096x128xbf16> {\n"
          "  %o = attention %q, %k, %v {scale = 0.0625, causal = 1} : tensor<1x8x4096x128xbf16>\n"
          "  return %o\n}\n",
          "bytes of VMEM with 1 of its query heads at a time", true);
  refuses("tiny",
          "func @f(%q: tensor<1x2x8x128xf16>, %k: tensor<1x1x8x128xf16>, %v: tensor<1x1x8x128xf16>) -> tensor<1x2x8x128xf16> {\n"
          "  %o = attention %q, %k, %v {scale = 0.0625} : tensor<1x2x8x128xf16>\n"
          "  return %o\n}\n",
          "f16", false);
}

/* ---- compiled and run ---- */

static uint32_t rng_state;
static double uniform(void) {
  rng_state = rng_state * 1664525u + 1013904223u;
  return ((rng_state >> 8) + 0.5) / 16777216.0;
}
static double normal(void) {
  return sqrt(-2 * log(uniform())) * cos(6.283185307179586 * uniform());
}
static float round_bf16(float x) {
  uint32_t b;
  memcpy(&b, &x, 4);
  b = (b + 0x7fff + ((b >> 16) & 1)) & 0xffff0000u;
  memcpy(&x, &b, 4);
  return x;
}

/* Values as the machine holds them (rounded to the element type) and their bytes. */
static float *random_tensor(size_t n, bool f32, void **bytes) {
  float *x = malloc(n * sizeof *x);
  *bytes = malloc(n * 4);
  for (size_t i = 0; i < n; i++) {
    float v = (float)normal();
    x[i] = f32 ? v : round_bf16(v);
    if (f32) {
      memcpy((char *)*bytes + 4 * i, &x[i], 4);
    } else {
      uint32_t b;
      memcpy(&b, &x[i], 4);
      uint16_t h = (uint16_t)(b >> 16);
      memcpy((char *)*bytes + 2 * i, &h, 2);
    }
  }
  return x;
}

static void reference(const Shape *s, const float *q, const float *k, const float *v, double *o) {
  int G = s->H / s->Hkv;
  double *p = malloc(sizeof *p * (size_t)s->Sk);
  for (int b = 0; b < s->B; b++)
    for (int h = 0; h < s->H; h++)
      for (int i = 0; i < s->Sq; i++) {
        const float *qr = q + (((size_t)b * s->H + h) * s->Sq + i) * s->D;
        size_t kv = ((size_t)b * s->Hkv + h / G) * s->Sk;
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < s->Sk; j++) {
          double d = 0;
          for (int c = 0; c < s->D; c++) d += (double)qr[c] * k[(kv + j) * s->D + c];
          p[j] = s->causal && j > i ? -INFINITY : d * shape_scale(s);
          if (p[j] > mx) mx = p[j];
        }
        for (int j = 0; j < s->Sk; j++) sum += p[j] = exp(p[j] - mx);
        double *or = o + (((size_t)b * s->H + h) * s->Sq + i) * s->D;
        for (int c = 0; c < s->D; c++) {
          double acc = 0;
          for (int j = 0; j < s->Sk; j++) acc += p[j] * v[(kv + j) * s->D + c];
          or[c] = acc / sum;
        }
      }
  free(p);
}

/* Compiles s for target (one chip), runs it in strict mode and returns the NMSE
 * against the float64 reference (or 1e30 after a failure, printed). */
static double run_shape(const char *target, const Shape *s, int64_t *cycles) {
  TileTarget t;
  TileDiag d;
  tile_diag_init(&d, stderr, "target", NULL, 0);
  if (!tile_target_load(target, &t, &d) || !tile_target_set_torus(&t, "1x1", &d)) return 1e30;
  char *src = attention_text(s);
  TileModule *m = parse(src);
  if (!m) return 1e30;
  tile_diag_init(&d, stderr, "<test>", src, strlen(src));
  TileVliwOptions o;
  memset(&o, 0, sizeof o);
  o.target = &t;
  o.stop_after = TILE_VLIW_OBJECT;
  TileObject obj;
  memset(&obj, 0, sizeof obj);
  double nmse = 1e30;
  if (tile_vliw_compile(m, &o, &obj, &d) != TILE_PASS_OK) goto out;
  TileEmuOptions eo;
  tile_emu_options_default(&eo);
  TileEmu *e = tile_emu_create(&obj, &t, &eo, &d);
  if (!e) goto out_obj;
  size_t nq = (size_t)s->B * s->H * s->Sq * s->D, nk = (size_t)s->B * s->Hkv * s->Sk * s->D;
  void *qb, *kb, *vb;
  float *q = random_tensor(nq, s->f32, &qb), *k = random_tensor(nk, s->f32, &kb);
  float *v = random_tensor(nk, s->f32, &vb);
  size_t es = s->f32 ? 4 : 2;
  tile_emu_set_input(e, "q", qb, nq * es);
  tile_emu_set_input(e, "k", kb, nk * es);
  tile_emu_set_input(e, "v", vb, nk * es);
  if (tile_emu_run(e) != TILE_EMU_OK) {
    const TileEmuFault *f = tile_emu_fault(e);
    fprintf(stderr, "run: %s\n", f ? f->message : tile_emu_error(e));
  } else {
    void *ob = malloc(nq * es);
    tile_emu_get_output(e, "result", ob, nq * es);
    double *ref = malloc(nq * sizeof *ref), num = 0, den = 0;
    reference(s, q, k, v, ref);
    for (size_t i = 0; i < nq; i++) {
      float x;
      if (s->f32) {
        memcpy(&x, (char *)ob + 4 * i, 4);
      } else {
        uint16_t h;
        memcpy(&h, (char *)ob + 2 * i, 2);
        uint32_t b = (uint32_t)h << 16;
        memcpy(&x, &b, 4);
      }
      num += (x - ref[i]) * (x - ref[i]);
      den += ref[i] * ref[i];
    }
    nmse = isnan(num) ? 1e30 : num / den;
    TileEmuStats st;
    tile_emu_stats(e, &st);
    if (cycles) *cycles = st.cycles;
    free(ref);
    free(ob);
  }
  free(q), free(k), free(v), free(qb), free(kb), free(vb);
  tile_emu_free(e);
out_obj:
  tile_object_free(&obj);
out:
  tile_module_free(m);
  free(src);
  return nmse;
}

static void check_run(const char *target, Shape s) {
  rng_state = 12345;
  double nmse = run_shape(target, &s, NULL);
  if (!(nmse <= 1e-4))
    fprintf(stderr, "%s %dx%dx%dx%dx%dx%d causal %d: NMSE %g\n", target, s.B, s.H, s.Hkv, s.Sq,
            s.Sk, s.D, s.causal, nmse);
  CHECK(nmse <= 1e-4); /* bf16 rounding of P alone gives about 1e-5 */
}

TEST(gen_attention, prefill_matches_reference) {
  check_run("tiny", (Shape){.B = 1, .H = 4, .Hkv = 2, .Sq = 64, .Sk = 64, .D = 128, .causal = true});
  check_run("tiny", (Shape){.B = 2, .H = 2, .Hkv = 1, .Sq = 100, .Sk = 100, .D = 64, .causal = true});
  check_run("tiny", (Shape){.B = 1, .H = 2, .Hkv = 1, .Sq = 24, .Sk = 300, .D = 128});
  check_run("tiny", (Shape){.B = 1, .H = 3, .Hkv = 1, .Sq = 16, .Sk = 200, .D = 128, .causal = true});
  check_run("tiny", (Shape){.B = 1, .H = 2, .Hkv = 2, .Sq = 16, .Sk = 128, .D = 32, .f32 = true,
                            .scale = -0.25});
  check_run("v5e-like", (Shape){.B = 1, .H = 4, .Hkv = 1, .Sq = 256, .Sk = 384, .D = 128,
                                .causal = true});
  /* several K/V heads: one pipelined sequence across them, the first head's loads and
   * the last head's stores in pieces, each head finished under the next one */
  check_run("v5e-like", (Shape){.B = 2, .H = 4, .Hkv = 2, .Sq = 300, .Sk = 300, .D = 128,
                                .causal = true});
  /* enough K/V heads for the heads' loop: two heads a pass, the addresses stepping per
   * head; an even and an odd number of middle heads (one left after the passes) */
  check_run("tiny", (Shape){.B = 2, .H = 4, .Hkv = 4, .Sq = 16, .Sk = 384, .D = 64});
  check_run("tiny", (Shape){.B = 1, .H = 7, .Hkv = 7, .Sq = 20, .Sk = 300, .D = 64});
  check_run("v5e-like", (Shape){.B = 1, .H = 12, .Hkv = 6, .Sq = 600, .Sk = 600, .D = 128,
                                .causal = true});
}

/* The K/V heads between the first and the last run in one loop, two per pass: the
 * code stays the same size as the heads double, and still verifies. */
TEST(gen_attention, prefill_code_does_not_grow_with_heads) {
  Shape s = {.B = 1, .H = 8, .Hkv = 8, .Sq = 16, .Sk = 384, .D = 64};
  Lowered few, many;
  lower_shape(&few, "tiny", &s);
  s.B = 2;
  lower_shape(&many, "tiny", &s);
  REQUIRE(few.ok);
  REQUIRE(many.ok);
  CHECK(verifies(&many.mir));
  CHECK_EQ(few.mir.ninsts, many.mir.ninsts);
  lowered_free(&few);
  lowered_free(&many);
}

/* The rows kernel's loops run at the MXU's rate on v5e-like: one visit (a query tile
 * against a group of key blocks) per mxu_push_cycles in the loops that do most of the
 * work. */
TEST(gen_attention, prefill_runs_at_the_mxu_rate) {
  const Shape s = {.B = 1, .H = 8, .Hkv = 2, .Sq = 1024, .Sk = 1024, .D = 128, .causal = true};
  Lowered L;
  lower_shape(&L, "v5e-like", &s);
  REQUIRE(L.ok);
  TileMirCode code;
  TileDiag d;
  tile_diag_init(&d, stderr, "<sched>", NULL, 0);
  REQUIRE(tile_mir_schedule(&L.mir, &code, &d));
  int at_rate = 0, pipelined = 0;
  for (int32_t i = 0; i < code.nloops; i++) {
    if (code.loops[i].stages < 2) continue;
    pipelined++;
    at_rate += code.loops[i].ii == L.t.mxu_push_cycles;
  }
  CHECK(pipelined > 10);
  CHECK(at_rate * 10 >= pipelined * 9);
  tile_mir_code_free(&code);
  lowered_free(&L);
}

TEST(gen_attention, decode_matches_reference) {
  check_run("tiny", (Shape){.B = 2, .H = 4, .Hkv = 1, .Sq = 1, .Sk = 300, .D = 128});
  /* one key block per head: the next head's loads are waited for right after a short
   * compute, so a read hoisted above its wait would see the buffer before the DMA */
  check_run("tiny", (Shape){.B = 2, .H = 1, .Hkv = 1, .Sq = 8, .Sk = 128, .D = 128});
  check_run("tiny", (Shape){.B = 1, .H = 4, .Hkv = 2, .Sq = 3, .Sk = 256, .D = 64, .causal = true});
  check_run("v5e-like", (Shape){.B = 2, .H = 8, .Hkv = 2, .Sq = 1, .Sk = 1000, .D = 128});
}
