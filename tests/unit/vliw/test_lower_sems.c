/* Semaphores recycled per fusion group (backend-vliw/lower.c): a program with more
 * groups than the target has semaphores compiles, runs in strict mode, computes the
 * right values and leaves every semaphore at zero; so does a program with a group of
 * each generator kind but attention, each handing its semaphores on drained. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "parse_fixture.h"
#include "tile/emu.h"
#include "tile/vliw.h"

enum { N = 32, STEPS = 20, ADD_EVERY = 4 };

/* STEPS transposes in a row of x [N, N] (a layout group each), every ADD_EVERY-th
 * followed by an add of x (a row-wise group): 25 groups. */
static char *chain_text(void) {
  size_t cap = 8192, len = 0;
  char *s = malloc(cap);
  len += (size_t)snprintf(s + len, cap - len,
                          "func @f(%%x: tensor<%dx%dxf32>) -> tensor<%dx%dxf32> {\n", N, N, N, N);
  char cur[16] = "x";
  for (int i = 0; i < STEPS; i++) {
    len += (size_t)snprintf(s + len, cap - len,
                            "  %%t%d = transpose %%%s {perm = [1, 0]} : tensor<%dx%dxf32>\n", i,
                            cur, N, N);
    snprintf(cur, sizeof cur, "t%d", i);
    if (i % ADD_EVERY == ADD_EVERY - 1) {
      len += (size_t)snprintf(s + len, cap - len, "  %%e%d = add %%%s, %%x : tensor<%dx%dxf32>\n",
                              i, cur, N, N);
      snprintf(cur, sizeof cur, "e%d", i);
    }
  }
  snprintf(s + len, cap - len, "  return %%%s\n}\n", cur);
  return s;
}

static void chain_reference(const float *x, float *out) {
  static float a[N * N], b[N * N];
  memcpy(a, x, sizeof a);
  for (int i = 0; i < STEPS; i++) {
    for (int r = 0; r < N; r++)
      for (int c = 0; c < N; c++) b[c * N + r] = a[r * N + c];
    if (i % ADD_EVERY == ADD_EVERY - 1)
      for (int k = 0; k < N * N; k++) b[k] += x[k];
    memcpy(a, b, sizeof a);
  }
  memcpy(out, a, sizeof a);
}

typedef struct Seen {
  int32_t nsems;
  int32_t groups;
} Seen;

static void on_stage(void *user, TileVliwStage stage, const TileVliwResult *r) {
  Seen *s = user;
  if (stage == TILE_VLIW_MIR) s->nsems = r->mir->nsems;
  if (stage != TILE_VLIW_FUSED) return;
  for (const TileFunc *f = r->module->funcs; f; f = f->next)
    for (const TileOp *op = f->body->first; op; op = op->next) {
      int64_t g;
      if (tile_attr_get_int(&op->attrs, "group", &g) && g + 1 > s->groups) s->groups = (int32_t)g + 1;
    }
}

/* Compiles src for tiny (one chip); NULL after a failure (printed). seen gets the
 * group count and the MIR's semaphore count. */
static TileEmu *compile_run_setup(const char *src, TileTarget *t, TileObject *obj, Seen *seen) {
  TileDiag d;
  tile_diag_init(&d, stderr, "target", NULL, 0);
  if (!tile_target_load("tiny", t, &d) || !tile_target_set_torus(t, "1x1", &d)) return NULL;
  TileModule *m = parse(src);
  if (!m) return NULL;
  tile_diag_init(&d, stderr, "<test>", src, strlen(src));
  TileVliwOptions o;
  memset(&o, 0, sizeof o);
  o.target = t;
  o.stop_after = TILE_VLIW_OBJECT;
  o.on_stage = on_stage;
  o.user = seen;
  TilePassStatus st = tile_vliw_compile(m, &o, obj, &d);
  tile_module_free(m);
  if (st != TILE_PASS_OK) return NULL;
  TileEmuOptions eo;
  tile_emu_options_default(&eo);
  eo.strict = true;
  TileEmu *e = tile_emu_create(obj, t, &eo, &d);
  if (!e) tile_object_free(obj);
  return e;
}

/* Runs e; false after a fault (printed). */
static bool run_ok(TileEmu *e) {
  if (tile_emu_run(e) == TILE_EMU_OK) return true;
  const TileEmuFault *f = tile_emu_fault(e);
  fprintf(stderr, "run: %s\n", f && f->message ? f->message : tile_emu_error(e));
  return false;
}

/* Semaphores holding a count after the run. */
static int sems_held(const TileEmu *e, const TileTarget *t) {
  int held = 0;
  for (int s = 0; s < t->nsems; s++) held += tile_emu_sem(e, 0, s) != 0;
  return held;
}

TEST(LowerSems, MoreGroupsThanSemaphores) {
  char *src = chain_text();
  TileTarget t;
  TileObject obj;
  Seen seen = {0, 0};
  TileEmu *e = compile_run_setup(src, &t, &obj, &seen);
  free(src);
  REQUIRE(e);
  CHECK_EQ(25, seen.groups);
  CHECK(seen.groups > t.nsems);
  CHECK(seen.nsems >= 1 && seen.nsems <= t.nsems);
  static float x[N * N], want[N * N], got[N * N];
  for (int i = 0; i < N * N; i++) x[i] = (float)(i % 97) * 0.25f - 7.0f;
  chain_reference(x, want);
  REQUIRE(tile_emu_set_input(e, "x", x, sizeof x));
  REQUIRE(run_ok(e));
  REQUIRE(tile_emu_get_output(e, "result", got, sizeof got));
  int bad = 0;
  for (int i = 0; i < N * N; i++) bad += got[i] != want[i];
  CHECK_EQ(0, bad);
  /* Every group handed its semaphores on drained: none holds a count at the end. */
  CHECK_EQ(0, sems_held(e, &t));
  tile_emu_free(e);
  tile_object_free(&obj);
}

/* gather, matmul with its epilogue, softmax (row-wise), transposes, argmax, topk: seven
 * groups on the same few semaphore ids (tests/e2e/test_fuse.py checks the values). */
TEST(LowerSems, EveryKindDrains) {
  static const char src[] =
      "func @f(%e: tensor<64x128xf32>, %i: tensor<8xi32>, %w: tensor<128x128xf32>,"
      " %b: tensor<128xf32>) -> (tensor<8x128xf32>, tensor<8xi32>, tensor<8x4xf32>,"
      " tensor<8x4xi32>) {\n"
      "  %g = gather %e, %i {axis = 0} : tensor<8x128xf32>\n"
      "  %h = matmul %g, %w : tensor<8x128xf32>\n"
      "  %bb = broadcast %b {dims = [1]} : tensor<8x128xf32>\n"
      "  %y = add %h, %bb : tensor<8x128xf32>\n"
      "  %s = softmax %y {dim = 1} : tensor<8x128xf32>\n"
      "  %t = transpose %s {perm = [1, 0]} : tensor<128x8xf32>\n"
      "  %t2 = transpose %t {perm = [1, 0]} : tensor<8x128xf32>\n"
      "  %a = argmax %t2 {dim = 1} : tensor<8xi32>\n"
      "  %kv, %ki = topk %y {k = 4} : tensor<8x4xf32>, tensor<8x4xi32>\n"
      "  return %s, %a, %kv, %ki\n"
      "}\n";
  TileTarget t;
  TileObject obj;
  Seen seen = {0, 0};
  TileEmu *e = compile_run_setup(src, &t, &obj, &seen);
  REQUIRE(e);
  CHECK_EQ(7, seen.groups);
  static float emb[64 * 128], w[128 * 128], b[128];
  static const int32_t ids[8] = {3, 60, 0, 17, 17, 42, 63, 9};
  for (int i = 0; i < 64 * 128; i++) emb[i] = (float)((i * 37) % 101) * 0.01f - 0.5f;
  for (int i = 0; i < 128 * 128; i++) w[i] = (float)((i * 53) % 89) * 0.002f - 0.09f;
  for (int i = 0; i < 128; i++) b[i] = (float)(i % 13) * 0.05f;
  REQUIRE(tile_emu_set_input(e, "e", emb, sizeof emb) && tile_emu_set_input(e, "i", ids, sizeof ids) &&
          tile_emu_set_input(e, "w", w, sizeof w) && tile_emu_set_input(e, "b", b, sizeof b));
  REQUIRE(run_ok(e));
  /* Each softmax row sums to 1. */
  static float s[8 * 128];
  REQUIRE(tile_emu_get_output(e, "result", s, sizeof s));
  int bad = 0;
  for (int r = 0; r < 8; r++) {
    double sum = 0;
    for (int c = 0; c < 128; c++) sum += s[r * 128 + c];
    bad += fabs(sum - 1.0) > 1e-5;
  }
  CHECK_EQ(0, bad);
  CHECK_EQ(0, sems_held(e, &t));
  tile_emu_free(e);
  tile_object_free(&obj);
}
