/* The selection generator (backend-vliw/gen_select_top.c): argmax and topk compiled by
 * the whole VLIW pipeline and run on the emulator (strict mode, one chip) on both test
 * targets, against a C reference of the order (NaN first, larger values, then the
 * lower index; +0 and -0 equal): ties, -inf rows, signed zeros, NaN, rows shorter than
 * a vreg tile and rows with a partial last block. Values must match bit for bit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "compile_fixture.h"
#include "tile/ops.h"

/* Compiles src for target, runs it with x (xbytes) bound to `x`, reads result and
 * result1. */
static bool compile_run(const char *target, const char *src, const void *x, size_t xbytes,
                        void *out0, size_t n0, void *out1, size_t n1) {
  TileTarget t;
  TileObject obj;
  if (!target_for(target, "1", &t)) return false;
  bool ok = compile_text(&t, src, NULL, NULL, 0, &obj);
  TileEmu *e = ok ? emu_for(&obj, &t) : NULL;
  ok = e && tile_emu_set_input(e, "x", x, xbytes) && emu_run(e) == TILE_EMU_OK &&
       tile_emu_get_output(e, "result", out0, n0) &&
       (!out1 || tile_emu_get_output(e, "result1", out1, n1));
  if (e) tile_emu_free(e);
  tile_object_free(&obj);
  return ok;
}

/* Whether src lowers to the chunk tournament (its slices buffer) on target; with
 * overlapped, to its overlapped schedule (one copy of the stream's heads) or, without, to
 * the batched one (two copies). */
static bool lowers_to_tournament(const char *target, const char *src, int overlapped) {
  Lowered L;
  lower_text(&L, target, src);
  if (!L.ok) fprintf(stderr, "%s\n", L.err);
  bool found = false;
  int32_t copies = 0;
  for (int32_t b = 0; L.ok && b < L.mir.nbufs; b++) {
    found |= strcmp(L.mir.bufs[b].name, "topk.slices") == 0;
    if (strcmp(L.mir.bufs[b].name, "topk.heads0") == 0) copies = L.mir.bufs[b].nslots;
  }
  lowered_free(&L);
  return found && (overlapped < 0 || copies == (overlapped ? 1 : 2));
}

/* a precedes b in the selection order (a at index ia, b at ib). */
static bool precedes(float a, int ia, float b, int ib) {
  if (isnan(a) != isnan(b)) return isnan(a);
  if (!isnan(a) && a != b) return a > b;
  return ia < ib;
}

/* Reference top-k of one row by selection. */
static void ref_topk(const float *row, int n, int k, float *v, int32_t *idx) {
  char *used = calloc((size_t)n, 1);
  for (int r = 0; r < k; r++) {
    int best = -1;
    for (int i = 0; i < n; i++)
      if (!used[i] && (best < 0 || precedes(row[i], i, row[best], best))) best = i;
    used[best] = 1;
    v[r] = row[best];
    idx[r] = best;
  }
  free(used);
}

static uint32_t rng_state = 12345;
static float rnd(void) {
  rng_state = rng_state * 1664525u + 1013904223u;
  return (float)((rng_state >> 8) % 2001) / 100.0f - 10.0f; /* many ties */
}

/* Rows: 0 random with ties, 1 all -inf, 2 signed zeros, 3 NaN in the middle, 4 the
 * largest values packed into one run of 128 (one chunk of the tournament) near the end,
 * 5 every value equal, 6 NaNs (with payloads) every 37th element and -0/+0 ties,
 * 7 values rising along the row (the best at the end), 8 +inf and NaN (with payloads)
 * mixed, so NaN keys must win over +inf at an equal x', and -inf runs; others random. */
static void fill(float *x, int rows, int n) {
  for (int r = 0; r < rows; r++)
    for (int i = 0; i < n; i++) {
      float v = rnd();
      if (r == 1) v = -INFINITY;
      if (r == 2) v = (i % 2) ? -0.0f : 0.0f;
      if (r == 3 && i == n / 2) v = NAN;
      if (r == 4 && i >= n - 200 && i < n - 72) v = 100.0f + (float)(i % 7);
      if (r == 5) v = 3.5f;
      if (r == 6) {
        if (i % 37 == 5) {
          uint32_t b = 0x7fc00000u | (uint32_t)i;
          memcpy(&v, &b, 4);
        } else if (i % 5 == 0) {
          v = (i % 2) ? -0.0f : 0.0f;
        }
      }
      if (r == 7) v = (float)i * 0.5f - 100.0f;
      if (r == 8) {
        uint32_t b = 0x7f800000u | (i % 50 == 7 ? 0x400000u | (uint32_t)i : 0u);
        memcpy(&v, &b, 4);
        if (i % 3 == 0) v = -INFINITY;
      }
      x[(size_t)r * n + i] = v;
    }
}

/* bf16 bits of f (upper half; NaNs keep a quiet payload bit). */
static uint16_t to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if (isnan(f)) return (uint16_t)((u >> 16) | 0x40);
  return (uint16_t)(u >> 16);
}
static float from_bf16(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* argmax (k = 0) or topk of rows x n (bf16 input when bf16), on target, against
 * ref_topk; with want_fast, the program must lower to the chunk tournament, and with
 * sched >= 0 to its overlapped (1) or batched (0) schedule. */
static void check_sched(const char *target, int rows, int n, int k, bool bf16, bool want_fast,
                        int sched) {
  char src[640];
  const char *et = bf16 ? "bf16" : "f32";
  if (k == 0)
    snprintf(src, sizeof src,
             "func @f(%%x: tensor<%dx%dx%s>) -> tensor<%dxi32> {\n"
             "  %%r = argmax %%x {dim = 1} : tensor<%dxi32>\n  return %%r\n}\n",
             rows, n, et, rows, rows);
  else
    snprintf(src, sizeof src,
             "func @f(%%x: tensor<%dx%dx%s>) -> (tensor<%dx%dx%s>, tensor<%dx%dxi32>) {\n"
             "  %%v, %%i = topk %%x {k = %d} : tensor<%dx%dx%s>, tensor<%dx%dxi32>\n"
             "  return %%v, %%i\n}\n",
             rows, n, et, rows, k, et, rows, k, k, rows, k, et, rows, k);
  if (want_fast) CHECK(lowers_to_tournament(target, src, sched));
  int kk = k ? k : 1;
  size_t eb = bf16 ? 2 : 4, count = (size_t)rows * n;
  float *x = malloc(sizeof(float) * count);
  uint16_t *xh = malloc(2 * count);
  float *wv = calloc((size_t)rows * kk, 4);
  uint8_t *v = calloc((size_t)rows * kk, 4);
  int32_t *idx = calloc((size_t)rows * kk, 4), *wi = calloc((size_t)rows * kk, 4);
  fill(x, rows, n);
  if (bf16)
    for (size_t i = 0; i < count; i++) x[i] = from_bf16(xh[i] = to_bf16(x[i]));
  const void *in = bf16 ? (const void *)xh : (const void *)x;
  bool ran = k == 0 ? compile_run(target, src, in, eb * count, idx, 4u * rows, NULL, 0)
                    : compile_run(target, src, in, eb * count, v, eb * rows * k, idx,
                                  4u * rows * k);
  CHECK(ran);
  for (int r = 0; r < rows && ran; r++) {
    ref_topk(x + (size_t)r * n, n, kk, wv + r * kk, wi + r * kk);
    for (int j = 0; j < kk; j++) {
      CHECK_EQ(wi[r * kk + j], idx[r * kk + j]);
      if (k && bf16) {
        uint16_t b;
        memcpy(&b, v + 2 * ((size_t)r * kk + j), 2);
        CHECK_EQ(to_bf16(wv[r * kk + j]), b);
      } else if (k) {
        uint32_t a, b;
        memcpy(&a, &wv[r * kk + j], 4);
        memcpy(&b, v + 4 * ((size_t)r * kk + j), 4);
        CHECK_EQ(a, b);
      }
    }
  }
  free(x), free(xh), free(v), free(wv), free(idx), free(wi);
}

static void check_elem(const char *target, int rows, int n, int k, bool bf16, bool want_fast) {
  check_sched(target, rows, n, k, bf16, want_fast, -1);
}

static void check_case(const char *target, int rows, int n, int k) {
  check_elem(target, rows, n, k, false, false);
}

TEST(gen_select_top, argmax_tiny) {
  check_case("tiny", 5, 100, 0);   /* shorter than a tile: masked */
  check_case("tiny", 5, 3000, 0);  /* partial last block, overlapped */
  check_case("tiny", 4, 1024, 0);  /* exactly one tile */
}

TEST(gen_select_top, argmax_v5e_like) {
  check_case("v5e-like", 6, 13000, 0); /* several blocks per row */
  check_case("v5e-like", 4, 777, 0);
}

TEST(gen_select_top, topk_tiny) {
  check_case("tiny", 4, 100, 5);
  check_case("tiny", 5, 2500, 7);
}

TEST(gen_select_top, topk_v5e_like) {
  check_case("v5e-like", 4, 5000, 3);
}

/* The chunk tournament: rows in VMEM, k rounds over the chunk heads. Rows that end
 * inside a tile and inside a block, whole blocks, k past one chunk (128) and past the
 * NaN count, adversarial rows (fill) on both targets. */
TEST(gen_select_top, topk_tournament_tiny) {
  check_case("tiny", 8, 3000, 64);  /* partial tile, shifted last block */
  check_case("tiny", 8, 4096, 40);  /* whole blocks */
  check_case("tiny", 8, 1500, 150); /* more than one chunk's worth taken */
  check_case("tiny", 3, 300, 300);  /* k = V: the whole row sorted */
  check_case("tiny", 1, 2049, 1);
  check_case("tiny", 9, 3000, 100); /* row 8: NaNs among +inf */
}

TEST(gen_select_top, topk_tournament_v5e_like) {
  check_case("v5e-like", 8, 9000, 64);
  check_case("v5e-like", 9, 2048, 17);
  check_case("v5e-like", 9, 33000, 70); /* more rows of heads than a block's lanes */
}

/* The tournament for sure (the checks above may take the k-pass method where VMEM is
 * short): rows packed 8 to a vreg, batches of up to 4 groups, rows padded to whole
 * batches, slices narrower than a vreg's lanes, the last block shifted, bf16 rows. */
TEST(gen_select_top, topk_tournament_groups_tiny) {
  check_elem("tiny", 8, 1500, 150, false, true);  /* one group, more than a chunk taken */
  check_elem("tiny", 5, 2500, 7, false, true);    /* padded rows */
  check_elem("tiny", 3, 3000, 20, false, true);   /* the last block shifted */
  check_elem("tiny", 4, 100, 5, false, true);     /* shorter than a tile */
  check_elem("tiny", 6, 2300, 33, true, true);    /* bf16 */
}

TEST(gen_select_top, topk_tournament_groups_v5e_like) {
  check_elem("v5e-like", 20, 2000, 9, false, true);   /* three groups */
  check_elem("v5e-like", 40, 3000, 12, false, true);  /* two batches, padded groups */
  check_elem("v5e-like", 9, 8192, 40, false, true);   /* whole blocks of 8 tiles */
  check_elem("v5e-like", 10, 20000, 64, true, true);  /* bf16, several blocks */
  check_elem("v5e-like", 3, 131072, 5, false, true);  /* a row of 128 tiles */
}

/* The overlapped schedule (v5e-like: tiny's VMEM holds no two groups' slices): group g's
 * rounds inside group g+1's stream. Rows padded to a whole group (streamed as copies of
 * the last row), a last partial block, more blocks than the rounds take beside them (a
 * stream loop after the rounds), some rounds with one block more than the others, bf16,
 * and the batched schedule still chosen where the rounds outweigh the stream. */
TEST(gen_select_top, topk_overlapped_v5e_like) {
  check_sched("v5e-like", 16, 32768, 8, false, true, 1);  /* 3 blocks a round, 8 after */
  check_sched("v5e-like", 20, 60000, 5, false, true, 1);  /* padded, partial, many after */
  check_sched("v5e-like", 16, 65536, 24, false, true, 1); /* 16 rounds of 3 blocks, 8 of 2 */
  check_sched("v5e-like", 24, 40000, 11, true, true, 1);  /* bf16, three groups */
  check_sched("v5e-like", 40, 16384, 4, false, true, 1);  /* five: a loop over groups */
  check_sched("v5e-like", 64, 2048, 64, false, true, 0);  /* short rows: batched */
}

TEST(gen_select_top, refuses_inner_dim) {
  const char *src = "func @f(%x: tensor<4x8xf32>) -> tensor<8xi32> {\n"
                    "  %r = argmax %x {dim = 0} : tensor<8xi32>\n  return %r\n}\n";
  TileTarget t;
  TileDiag d;
  tile_diag_init(&d, NULL, "<test>", src, strlen(src));
  REQUIRE(tile_target_load("tiny", &t, &d));
  TileModule *m = parse(src);
  REQUIRE(m != NULL);
  TileMir mir;
  tile_mir_init(&mir, &t);
  CHECK(!tile_lower_func(m, m->funcs, &mir, &d));
  CHECK(strstr(d.last, "only the last dim") != NULL);
  tile_mir_free(&mir);
  tile_module_free(m);
}
