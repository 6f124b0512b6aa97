/* The lowering core: placement of parameters and results, DMA descriptors and sites,
 * the layout generator (transpose, slice, concatenate, reshape, convert) and
 * materialized constants, each run on the emulator in strict mode against values
 * computed here; and the diagnostics for what cannot be lowered. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "parse_fixture.h"
#include "test_sched_fixture.h"
#include "tile/lower.h"
#include "tile/pass.h"

typedef struct Lowered {
  TileModule *m;
  TileTarget t;
  TileMir mir;
  TileMirCode code;
  TileEmu *e;
  bool ok;
} Lowered;

/* Parses src, runs the tensor passes and lowers its first func for tiny (one chip). */
static bool lower_src(Lowered *l, const char *src, TileDiag *d) {
  memset(l, 0, sizeof *l);
  l->m = parse(src);
  if (!l->m || !sfx_target("tiny", &l->t)) return false;
  if (tile_run_pipeline(l->m, tile_pipeline, tile_pipeline_len, NULL, d) != TILE_PASS_OK)
    return false;
  tile_mir_init(&l->mir, &l->t);
  l->ok = tile_lower_func(l->m, l->m->funcs, &l->mir, d) && tile_mir_verify(&l->mir, d);
  return l->ok;
}

static void lowered_free(Lowered *l) {
  tile_emu_free(l->e);
  tile_mir_code_free(&l->code);
  tile_mir_free(&l->mir);
  tile_module_free(l->m);
}

static int32_t buffer_named(const TileMir *m, const char *name) {
  for (int32_t i = 0; i < m->nbufs; i++)
    if (strcmp(m->bufs[i].name, name) == 0) return i;
  return -1;
}

/* Lowers src, writes the named inputs, runs; false on any failure (printed). */
static bool run_src(Lowered *l, const char *src, int nin, const char *const *names,
                    const void *const *data) {
  TileDiag d;
  tile_diag_init(&d, stderr, "<test>", src, strlen(src));
  if (!lower_src(l, src, &d)) return false;
  if (!tile_mir_schedule(&l->mir, &l->code, &d)) return false;
  sfx_layout(&l->mir);
  l->e = sfx_emu(&l->mir, &l->code, TILE_EMU_FUNCTIONAL);
  if (!l->e) return false;
  for (int i = 0; i < nin; i++) {
    int32_t b = buffer_named(&l->mir, names[i]);
    if (b < 0) return false;
    const TileMirBuffer *buf = &l->mir.bufs[b];
    if (!tile_emu_write_memory(l->e, 0, TILE_SPACE_HBM, buf->addr, data[i], (size_t)buf->bytes))
      return false;
  }
  return sfx_run(l->e) >= 0;
}

/* The bytes of bound buffer `name` after the run, into out (its size). */
static bool read_buf(Lowered *l, const char *name, void *out) {
  int32_t b = buffer_named(&l->mir, name);
  if (b < 0) return false;
  const TileMirBuffer *buf = &l->mir.bufs[b];
  return tile_emu_read_memory(l->e, 0, TILE_SPACE_HBM, buf->addr, out, (size_t)buf->bytes);
}

static uint32_t word(const TileMirBuffer *b, int w) {
  uint32_t v;
  memcpy(&v, b->init + 4 * w, 4);
  return v;
}

TEST(Lower, BoundBuffersAndDescriptor) {
  Lowered l;
  TileDiag d;
  tile_diag_init(&d, stderr, "<test>", NULL, 0);
  REQUIRE(lower_src(&l,
                    "func @f(%x: tensor<8x4x16xf32>) -> tensor<16x8x4xf32> {\n"
                    "  %t = transpose %x {perm = [2, 0, 1]} : tensor<16x8x4xf32>\n"
                    "  return %t\n"
                    "}\n",
                    &d));
  int32_t x = buffer_named(&l.mir, "x"), r = buffer_named(&l.mir, "result");
  REQUIRE(x >= 0 && r >= 0);
  CHECK_EQ(TILE_BIND_IN, l.mir.bufs[x].bind);
  CHECK_EQ(TILE_BIND_OUT, l.mir.bufs[r].bind);
  CHECK_EQ(TILE_ELEM_F32, l.mir.bufs[r].elem);
  CHECK_EQ(3, l.mir.bufs[r].rank);
  CHECK_EQ(16, l.mir.bufs[r].dims[0]);
  CHECK_EQ(2048, l.mir.bufs[r].bytes);
  /* One descriptor: runs of 4 bytes; 32 runs 64 bytes apart (the merged [8, 4] of
   * x, contiguous in the result); 16 of those 4 bytes apart in x, 128 in the result. */
  int32_t desc = -1;
  for (int32_t i = 0; i < l.mir.nbufs; i++)
    if (l.mir.bufs[i].space == TILE_SPACE_SMEM) desc = desc < 0 ? i : -2;
  REQUIRE(desc >= 0);
  const TileMirBuffer *b = &l.mir.bufs[desc];
  REQUIRE(b->init_len == 64);
  CHECK_EQ(0, word(b, 0));  /* hbm */
  CHECK_EQ(0, word(b, 1));
  CHECK_EQ(4, word(b, 6));
  CHECK_EQ(32, word(b, 7));
  CHECK_EQ(16, word(b, 8));
  CHECK_EQ(64, word(b, 9));
  CHECK_EQ(4, word(b, 10));
  CHECK_EQ(4, word(b, 11));
  CHECK_EQ(128, word(b, 12));
  CHECK_EQ(UINT32_MAX, word(b, 13)); /* local */
  CHECK_EQ(0, word(b, 14));          /* the site's semaphore */
  CHECK_EQ(UINT32_MAX, word(b, 15));
  int relocs = 0;
  for (int32_t i = 0; i < l.mir.nrelocs; i++) relocs += l.mir.relocs[i].buf == desc;
  CHECK_EQ(4, relocs);
  /* The zero register is the program's first op. */
  CHECK_EQ(TILE_MOP_LI, l.mir.insts[0].op);
  CHECK_EQ(0, l.mir.insts[0].imm);
  lowered_free(&l);
}

TEST(Lower, DmaCycles) {
  TileTarget t;
  REQUIRE(sfx_target("tiny", &t));
  /* tiny: HBM 100 bytes per cycle, 1 issue cycle */
  CHECK_EQ(1 + 41, tile_lower_dma_cycles(&t, 4096));
  CHECK_EQ(1 + 1, tile_lower_dma_cycles(&t, 1));
}

TEST(Lower, LayoutOpsRun) {
  static float x[8 * 4 * 16], y[8 * 4 * 16];
  for (int i = 0; i < 512; i++) {
    x[i] = (float)i;
    y[i] = (float)(1000 + i);
  }
  Lowered l;
  const char *names[] = {"x", "y"};
  const void *data[] = {x, y};
  REQUIRE(run_src(&l,
                  "func @f(%x: tensor<8x4x16xf32>, %y: tensor<8x4x16xf32>) -> (tensor<16x8x4xf32>,"
                  " tensor<8x2x16xf32>, tensor<8x8x16xf32>, tensor<512xf32>, tensor<4x8x16xf32>) {\n"
                  "  %t = transpose %x {perm = [2, 0, 1]} : tensor<16x8x4xf32>\n"
                  "  %s = slice %y {start = [0, 1, 0], limit = [8, 4, 16], stride = [1, 2, 1]}"
                  " : tensor<8x2x16xf32>\n"
                  "  %c = concatenate %x, %y {dim = 1} : tensor<8x8x16xf32>\n"
                  "  %r = reshape %x : tensor<512xf32>\n"
                  "  %u = transpose %y {perm = [1, 0, 2]} : tensor<4x8x16xf32>\n"
                  "  return %t, %s, %c, %r, %u\n"
                  "}\n",
                  2, names, data));
  static float t[512], s[256], c[1024], r[512], u[512];
  REQUIRE(read_buf(&l, "result", t) && read_buf(&l, "result1", s) && read_buf(&l, "result2", c) &&
          read_buf(&l, "result3", r) && read_buf(&l, "result4", u));
  int bad = 0;
  for (int a = 0; a < 8; a++)
    for (int b = 0; b < 4; b++)
      for (int k = 0; k < 16; k++) {
        float xv = x[(a * 4 + b) * 16 + k], yv = y[(a * 4 + b) * 16 + k];
        bad += t[(k * 8 + a) * 4 + b] != xv;
        bad += u[(b * 8 + a) * 16 + k] != yv;
        bad += c[(a * 8 + b) * 16 + k] != xv;
        bad += c[(a * 8 + 4 + b) * 16 + k] != yv;
        bad += r[(a * 4 + b) * 16 + k] != xv;
        if (b == 1 || b == 3) bad += s[(a * 2 + b / 2) * 16 + k] != yv;
      }
  CHECK_EQ(0, bad);
  lowered_free(&l);
}

static uint16_t to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

/* A lone convert through the vector unit, with a tail that is not a whole tile (6000
 * elements: 5 whole tiles of 1024 and 880), into bf16 and into i32 (truncation). */
TEST(Lower, ConvertRuns) {
  enum { N = 20 * 300 };
  static float x[N];
  for (int i = 0; i < N; i++) x[i] = (float)(i - 3000) * 0.37f + 0.001f * (float)(i % 7);
  Lowered l;
  const char *names[] = {"x"};
  const void *data[] = {x};
  REQUIRE(run_src(&l,
                  "func @f(%x: tensor<20x300xf32>) -> (tensor<20x300xbf16>, tensor<20x300xi32>) {\n"
                  "  %b = convert %x : tensor<20x300xbf16>\n"
                  "  %i = convert %x : tensor<20x300xi32>\n"
                  "  return %b, %i\n"
                  "}\n",
                  1, names, data));
  static uint16_t b[N];
  static int32_t iv[N];
  REQUIRE(read_buf(&l, "result", b) && read_buf(&l, "result1", iv));
  int bad = 0;
  for (int i = 0; i < N; i++) {
    bad += b[i] != to_bf16(x[i]);
    bad += iv[i] != (int32_t)truncf(x[i]);
  }
  CHECK_EQ(0, bad);
  lowered_free(&l);
}

/* Big enough for several blocks of the convert (loop over blocks) and a tail. */
TEST(Lower, ConvertManyBlocks) {
  enum { N = 64 * 300 };
  static uint16_t x[N];
  for (int i = 0; i < N; i++) x[i] = to_bf16((float)i * 0.5f - 100.0f);
  Lowered l;
  const char *names[] = {"x"};
  const void *data[] = {x};
  REQUIRE(run_src(&l,
                  "func @f(%x: tensor<64x300xbf16>) -> tensor<64x300xf32> {\n"
                  "  %y = convert %x : tensor<64x300xf32>\n"
                  "  return %y\n"
                  "}\n",
                  1, names, data));
  static float y[N];
  REQUIRE(read_buf(&l, "result", y));
  int bad = 0;
  for (int i = 0; i < N; i++) {
    uint32_t u = (uint32_t)x[i] << 16;
    float want;
    memcpy(&want, &u, 4);
    bad += y[i] != want;
  }
  CHECK_EQ(0, bad);
  lowered_free(&l);
}

/* A parameter returned is copied; a value returned twice too; a constant and an iota
 * returned start as their values; a dense constant read by a layout op is placed. */
TEST(Lower, ResultsAndConstants) {
  static int32_t x[4 * 8];
  for (int i = 0; i < 32; i++) x[i] = i * 3 - 7;
  Lowered l;
  const char *names[] = {"x"};
  const void *data[] = {x};
  REQUIRE(run_src(&l,
                  "func @f(%x: tensor<4x8xi32>) -> (tensor<4x8xi32>, tensor<8x4xi32>,"
                  " tensor<8x4xi32>, tensor<2x3xf32>, tensor<3x2xi32>, tensor<3x2xf32>) {\n"
                  "  %t = transpose %x {perm = [1, 0]} : tensor<8x4xi32>\n"
                  "  %k = constant {value = 2.5} : tensor<2x3xf32>\n"
                  "  %i = iota {dim = 0} : tensor<3x2xi32>\n"
                  "  %d = constant {value = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]} : tensor<2x3xf32>\n"
                  "  %dt = transpose %d {perm = [1, 0]} : tensor<3x2xf32>\n"
                  "  return %x, %t, %t, %k, %i, %dt\n"
                  "}\n",
                  1, names, data));
  int32_t r0[32], r1[32], r2[32], r4[6];
  float r3[6], r5[6];
  REQUIRE(read_buf(&l, "result", r0) && read_buf(&l, "result1", r1) &&
          read_buf(&l, "result2", r2) && read_buf(&l, "result3", r3) &&
          read_buf(&l, "result4", r4) && read_buf(&l, "result5", r5));
  int bad = 0;
  for (int i = 0; i < 32; i++) {
    bad += r0[i] != x[i];
    bad += r1[i] != x[(i % 4) * 8 + i / 4];
    bad += r2[i] != r1[i];
  }
  const float dt[6] = {1, 4, 2, 5, 3, 6};
  for (int i = 0; i < 6; i++) {
    bad += r3[i] != 2.5f;
    bad += r4[i] != i / 2;
    bad += r5[i] != dt[i];
  }
  CHECK_EQ(0, bad);
  lowered_free(&l);
}

/* What cannot be lowered is reported at its location, once, and lowering fails. */
TEST(Lower, Diagnostics) {
  static const struct {
    const char *src, *want;
  } cases[] = {
      {"func @f(%a: tensor<8xf16>) -> tensor<8xf32> {\n"
       "  %r = convert %a : tensor<8xf32>\n"
       "  return %r\n"
       "}\n",
       "<test>:1:9: error: cannot lower parameter '%a' of element type f16"},
      {"func @f(%a: tensor<8xf32>) -> tensor<8xi64> {\n"
       "  %r = convert %a : tensor<8xi64>\n"
       "  return %r\n"
       "}\n",
       "<test>:2:3: error: cannot lower the result of 'convert' of element type i64"},
      {"func @f(%a: tensor<8x8xf32>) -> tensor<8x8xf32> {\n"
       "  %t = transpose %a {perm = [1, 0], group = 3} : tensor<8x8xf32>\n"
       "  %r = add %t, %t {group = 3} : tensor<8x8xf32>\n"
       "  return %r\n"
       "}\n",
       "<test>:2:8: error: cannot lower 'transpose': layout ops"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    TileDiag d;
    tile_diag_init(&d, mem, "<test>", cases[i].src, strlen(cases[i].src));
    TileModule *m = parse(cases[i].src);
    REQUIRE(m);
    TileTarget t;
    REQUIRE(sfx_target("tiny", &t));
    TileMir mir;
    tile_mir_init(&mir, &t);
    /* No passes: the third case carries hand-made groups the fuse pass would not make. */
    CHECK(!tile_lower_func(m, m->funcs, &mir, &d));
    fclose(mem);
    CHECK(strstr(text, cases[i].want) != NULL);
    if (!strstr(text, cases[i].want)) fprintf(stderr, "got: %s\nwant: %s\n", text, cases[i].want);
    CHECK_EQ(1, d.nerrors);
    free(text);
    tile_mir_free(&mir);
    tile_module_free(m);
  }
}
