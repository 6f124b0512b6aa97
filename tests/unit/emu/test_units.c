/* The vector unit, vector memory, the MXU and the XLU: numerics against reference
 * computations in the test, exact timing, and the unit hazards. */
#include <math.h>

#include "check.h"
#include "emu_fixture.h"
#include "../../../emulator/emu_internal.h" /* emu_vmath1: the transcendentals' lane code */

#define F TILE_EMU_FUNCTIONAL
#define T TILE_EMU_TIMING
enum { LANES = 128, ROWS = 8, VLEN = ROWS * LANES, ROWB = LANES * 4 };

static uint32_t rng_state = 12345;
static float rnd(void) {
  rng_state = rng_state * 1664525u + 1013904223u;
  return (float)((int32_t)(rng_state >> 8) % 40000) / 10000.0f; /* [-4, 4) */
}

static float bf(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  memcpy(&x, &u, 4);
  return x;
}

static TileEmu *make(const FxProg *p, TileEmuMode mode) {
  TileTarget t = fx_target(1, 1, 1, false);
  TileEmuOptions o = fx_opts(mode, 1);
  return fx_emu(&t, p, &o);
}

static void read_vmem(TileEmu *e, int64_t addr, float *out, size_t n) {
  tile_emu_read_memory(e, 0, TILE_SPACE_VMEM, addr, out, n * 4);
}

TEST(emu_units, vector_alu_numerics) {
  FxProg p = {0};
  /* v1 = a, v2 = b from VMEM 0 and 4096; results stored at 8192 + 4096 k */
  fx_op(&p, 0, TILE_MOP_LI, 1, 0, 0, 0, 0);
  fx_op(&p, 0, TILE_MOP_LI, 2, 0, 0, 0, ROWB);
  fx_op(&p, 1, TILE_MOP_VLD, 1, 1, 2, 0, 0);
  fx_op(&p, 2, TILE_MOP_VLD, 2, 1, 2, 0, 4096);
  fx_op(&p, 5, TILE_MOP_VADDF, 3, 1, 2, 0, 0);
  fx_op(&p, 5, TILE_MOP_VFMAF, 4, 1, 2, 1, 0);   /* a * b + a, one rounding */
  fx_op(&p, 6, TILE_MOP_VMAXF, 5, 1, 2, 0, 0);
  fx_op(&p, 6, TILE_MOP_VEXP, 6, 1, 0, 0, 0);    /* lands at 10 */
  fx_op(&p, 7, TILE_MOP_VCVTFI, 7, 2, 0, 0, 0);
  fx_op(&p, 7, TILE_MOP_VRNDBF, 8, 1, 0, 0, 0);
  fx_op(&p, 8, TILE_MOP_VIOTA, 9, 0, 0, 0, 2);
  fx_op(&p, 8, TILE_MOP_VCMPLTF, 10, 1, 2, 0, 0);
  fx_op(&p, 10, TILE_MOP_VSEL, 11, 1, 2, 10, 0); /* a < b ? a : b */
  for (int k = 0; k < 9; k++) fx_op(&p, 11 + k, TILE_MOP_VST, 3 + k, 1, 2, 0, 8192 + 4096 * k);
  fx_op(&p, 20, TILE_MOP_HALT, 0, 0, 0, 0, 0);
  TileEmu *e = make(&p, F);
  REQUIRE(e != NULL);
  float a[VLEN], b[VLEN];
  for (int i = 0; i < VLEN; i++) a[i] = rnd(), b[i] = rnd();
  a[3] = NAN;
  b[5] = -0.0f, a[5] = 0.0f;
  CHECK(tile_emu_write_memory(e, 0, TILE_SPACE_VMEM, 0, a, sizeof a));
  CHECK(tile_emu_write_memory(e, 0, TILE_SPACE_VMEM, 4096, b, sizeof b));
  REQUIRE(tile_emu_run(e) == TILE_EMU_OK);
  CHECK_EQ(21, fx_cycles(e, 0)); /* halt at 20, the last vst lands at 21 */
  float r[9][VLEN];
  for (int k = 0; k < 9; k++) read_vmem(e, 8192 + 4096 * k, r[k], VLEN);
  int bad = 0;
  for (int i = 0; i < VLEN; i++) {
    bad += fx_bits(r[0][i]) != fx_bits(a[i] + b[i]);
    bad += fx_bits(r[1][i]) != fx_bits(fmaf(a[i], b[i], a[i]));
    float mx = isnan(a[i]) ? a[i] : a[i] > b[i] ? a[i] : b[i];
    if (i == 5) mx = 0.0f; /* max(+0, -0) = +0 */
    bad += fx_bits(r[2][i]) != fx_bits(mx);
    bad += fx_bits(r[3][i]) != fx_bits(emu_vmath1(EMU_MATH_EXP, a[i]));
    bad += fx_bits(r[4][i]) != (int32_t)rintf(b[i]);
    bad += !isnan(a[i]) && fx_bits(r[5][i]) != fx_bits(bf(a[i]));
    bad += fx_bits(r[6][i]) != i;
    bad += fx_bits(r[7][i]) != (a[i] < b[i]);
    bad += fx_bits(r[8][i]) != fx_bits(a[i] < b[i] ? a[i] : b[i]);
  }
  CHECK_EQ(0, bad);
  CHECK(isnan(r[2][3]) && isnan(r[5][3]));
  tile_emu_free(e);
}

TEST(emu_units, strided_and_bf16_memory) {
  FxProg p = {0};
  fx_op(&p, 0, TILE_MOP_LI, 1, 0, 0, 0, 1024);
  fx_op(&p, 0, TILE_MOP_LI, 2, 0, 0, 0, -2 * ROWB);  /* rows go downwards */
  fx_op(&p, 1, TILE_MOP_VLD, 1, 1, 2, 0, 16 * ROWB);
  fx_op(&p, 4, TILE_MOP_VSTBF, 1, 0, 0, 0, 65536);  /* stride 0: every row to one place */
  fx_op(&p, 5, TILE_MOP_LI, 3, 0, 0, 0, 256);
  fx_op(&p, 5, TILE_MOP_VST, 1, 0, 3, 0, 0);        /* misaligned? no: 256 is fine */
  fx_op(&p, 6, TILE_MOP_HALT, 0, 0, 0, 0, 0);
  TileEmu *e = make(&p, F);
  REQUIRE(e != NULL);
  float src[40 * LANES];
  for (int i = 0; i < 40 * LANES; i++) src[i] = rnd();
  CHECK(tile_emu_write_memory(e, 0, TILE_SPACE_VMEM, 1024, src, sizeof src));
  REQUIRE(tile_emu_run(e) == TILE_EMU_OK);
  uint16_t h[LANES];
  tile_emu_read_memory(e, 0, TILE_SPACE_VMEM, 65536, h, sizeof h);
  int bad = 0;
  /* row s came from 1024 + 16*ROWB - 2*s*ROWB; the last row written wins */
  for (int l = 0; l < LANES; l++) {
    float want = bf(src[(16 - 2 * 7) * LANES + l]);
    uint32_t u = (uint32_t)h[l] << 16;
    bad += fx_bits(want) != (int32_t)u;
  }
  CHECK_EQ(0, bad);
  tile_emu_free(e);

  FxProg q = {0};
  fx_op(&q, 0, TILE_MOP_LI, 1, 0, 0, 0, 2);
  fx_op(&q, 1, TILE_MOP_VLD, 1, 1, 0, 0, 0);
  fx_op(&q, 2, TILE_MOP_HALT, 0, 0, 0, 0, 0);
  e = make(&q, T);
  REQUIRE(e != NULL);
  CHECK_EQ(TILE_EMU_FAULTED, tile_emu_run(e));
  CHECK_EQ(TILE_EMU_FAULT_MISALIGNED, tile_emu_fault(e)->kind);
  tile_emu_free(e);

  FxProg r = {0};
  fx_op(&r, 0, TILE_MOP_LI, 1, 0, 0, 0, (1 << 20) - 4096);
  fx_op(&r, 0, TILE_MOP_LI, 2, 0, 0, 0, ROWB);
  fx_op(&r, 1, TILE_MOP_VST, 1, 1, 2, 0, 512); /* one row past the end of VMEM */
  fx_op(&r, 2, TILE_MOP_HALT, 0, 0, 0, 0, 0);
  e = make(&r, T);
  REQUIRE(e != NULL);
  CHECK_EQ(TILE_EMU_FAULTED, tile_emu_run(e));
  CHECK_STREQ("chip 0, pc 1, cycle 1: vst touches vmem bytes 1044992..1049087, outside the "
              "1048576 bytes of vmem",
              tile_emu_fault(e)->message);
  tile_emu_free(e);
}

/* Loads W (128 x 128 at VMEM 0) into mxu0, pushes x (8 x 128 at VMEM 65536), pops. */
static void mxu_program(FxProg *p, int push_at, int pop_at) {
  fx_op(p, 0, TILE_MOP_LI, 1, 0, 0, 0, 0);
  fx_op(p, 0, TILE_MOP_LI, 2, 0, 0, 0, ROWB);
  for (int g = 0; g < 16; g++) {
    fx_op(p, 1 + g, TILE_MOP_VLD, g, 1, 2, 0, g * ROWS * ROWB);
    fx_op(p, 4 + g, TILE_MOP_MXU_LDW, 0, g, 0, 0, g); /* mxu.ldw mxu0, vg, g */
  }
  fx_op(p, 17, TILE_MOP_VLD, 16, 1, 2, 0, 65536);     /* x, lands at 20 */
  fx_op(p, 18, TILE_MOP_VLD, 18, 1, 2, 0, 65536);     /* x again, for popacc */
  fx_op(p, push_at, TILE_MOP_MXU_PUSH, 0, 16, 0, 0, 0);
  fx_op(p, push_at + 8, TILE_MOP_MXU_PUSH, 0, 16, 0, 0, 0);
  fx_op(p, pop_at, TILE_MOP_MXU_POP, 17, 0, 0, 0, 0);
  fx_op(p, pop_at + 8, TILE_MOP_MXU_POPACC, 19, 18, 0, 0, 0); /* x + x W */
  fx_op(p, pop_at + 9, TILE_MOP_VST, 17, 1, 2, 0, 131072);
  fx_op(p, pop_at + 10, TILE_MOP_VST, 19, 1, 2, 0, 131072 + 4096);
  fx_op(p, pop_at + 11, TILE_MOP_HALT, 0, 0, 0, 0, 0);
}

TEST(emu_units, mxu_matmul_bits_and_timing) {
  /* the last mxu.ldw issues at 19: weights usable from 25; a result is ready 20 cycles
   * after its push */
  FxProg p = {0};
  mxu_program(&p, 25, 45);
  float w[128 * 128], x[VLEN];
  for (int i = 0; i < 128 * 128; i++) w[i] = rnd();
  for (int i = 0; i < VLEN; i++) x[i] = rnd();
  x[7] = 1e-3f * x[7];
  for (int mode = F; mode <= T; mode++) {
    TileEmu *e = make(&p, (TileEmuMode)mode);
    REQUIRE(e != NULL);
    if (mode == F) {
      CHECK(tile_emu_write_memory(e, 0, TILE_SPACE_VMEM, 0, w, sizeof w));
      CHECK(tile_emu_write_memory(e, 0, TILE_SPACE_VMEM, 65536, x, sizeof x));
    }
    REQUIRE(tile_emu_run(e) == TILE_EMU_OK);
    CHECK_EQ(45 + 11 + 1, fx_cycles(e, 0));
    TileEmuStats s;
    tile_emu_stats(e, &s);
    CHECK_EQ(2, s.chips[0].mxu_pushes);
    CHECK_EQ(16, s.chips[0].busy[TILE_SLOT_MXU]);
    if (mode == F) {
      float out[2][VLEN];
      read_vmem(e, 131072, out[0], VLEN);
      read_vmem(e, 131072 + 4096, out[1], VLEN);
      int bad = 0;
      for (int i = 0; i < ROWS; i++)
        for (int j = 0; j < 128; j++) {
          float acc = 0.0f;
          for (int k = 0; k < 128; k++) acc += bf(x[i * 128 + k]) * bf(w[k * 128 + j]);
          bad += fx_bits(out[0][i * 128 + j]) != fx_bits(acc);
          bad += fx_bits(out[1][i * 128 + j]) != fx_bits(x[i * 128 + j] + acc);
        }
      CHECK_EQ(0, bad);
    }
    tile_emu_free(e);
  }
}

TEST(emu_units, mxu_hazards) {
  static const struct {
    int push, pop;
    const char *msg;
  } cases[] = {
      {24, 45,
       "chip 0, pc 24, cycle 24: mxu.push to mxu0 uses weights loaded at cycle 19 that are "
       "usable only from cycle 25 (lat.mxu_weights 6)"},
      {25, 44,
       "chip 0, pc 44, cycle 44: mxu.pop from mxu0 before the result of the push at cycle 25 is "
       "ready at cycle 45 (lat.mxu_result 20)"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    FxProg p = {0};
    mxu_program(&p, cases[i].push, cases[i].pop);
    TileEmu *e = make(&p, T);
    REQUIRE(e != NULL);
    CHECK_EQ(TILE_EMU_FAULTED, tile_emu_run(e));
    CHECK_STREQ(cases[i].msg, tile_emu_fault(e)->message);
    tile_emu_free(e);
  }
  FxProg p = {0};
  mxu_program(&p, 25, 45);
  fx_op(&p, 30, TILE_MOP_MXU_PUSH, 0, 16, 0, 0, 0); /* 5 cycles after the first push */
  TileEmu *e = make(&p, T);
  REQUIRE(e != NULL);
  CHECK_EQ(TILE_EMU_FAULTED, tile_emu_run(e));
  CHECK_STREQ("chip 0, pc 30, cycle 30: mxu.push to mxu0 while it is busy with the push of cycle "
              "25 until cycle 33 (mxu.push_cycles 8)",
              tile_emu_fault(e)->message);
  tile_emu_free(e);
  FxProg q = {0};
  fx_op(&q, 0, TILE_MOP_MXU_POP, 1, 0, 0, 1, 0);
  fx_op(&q, 1, TILE_MOP_HALT, 0, 0, 0, 0, 0);
  e = make(&q, F);
  REQUIRE(e != NULL);
  CHECK_EQ(TILE_EMU_FAULTED, tile_emu_run(e));
  CHECK_STREQ("chip 0, pc 0, cycle 0: mxu.pop from mxu1, whose result FIFO is empty",
              tile_emu_fault(e)->message);
  tile_emu_free(e);
}

TEST(emu_units, xlu_reductions_rotations_transpose) {
  FxProg p = {0};
  fx_op(&p, 0, TILE_MOP_LI, 1, 0, 0, 0, 0);
  fx_op(&p, 0, TILE_MOP_LI, 2, 0, 0, 0, ROWB);
  for (int g = 0; g < 16; g++) fx_op(&p, 1 + g, TILE_MOP_VLD, g, 1, 2, 0, g * 4096);
  fx_op(&p, 4, TILE_MOP_XLSUM, 20, 0, 0, 0, 0);
  fx_op(&p, 5, TILE_MOP_XSMAX, 21, 0, 0, 0, 0);
  fx_op(&p, 6, TILE_MOP_XLROT, 22, 0, 0, 0, -3);
  fx_op(&p, 17, TILE_MOP_VLD, 24, 1, 2, 0, 0);
  fx_op(&p, 27, TILE_MOP_XSROT, 24, 24, 0, 0, 2);   /* in place: rotated by 2 sublanes */
  for (int g = 0; g < 16; g++) fx_op(&p, 10 + g, TILE_MOP_XTRPUSH, 0, g, 0, 0, g);
  fx_op(&p, 28, TILE_MOP_XTRPOP, 23, 0, 0, 0, 5);   /* the last push lands at 28 */
  fx_op(&p, 31, TILE_MOP_VST, 20, 1, 2, 0, 100000 - 100000 % 4096);
  fx_op(&p, 32, TILE_MOP_VST, 21, 1, 2, 0, 100000 - 100000 % 4096 + 4096);
  fx_op(&p, 33, TILE_MOP_VST, 22, 1, 2, 0, 100000 - 100000 % 4096 + 8192);
  fx_op(&p, 34, TILE_MOP_VST, 24, 1, 2, 0, 100000 - 100000 % 4096 + 12288);
  fx_op(&p, 35, TILE_MOP_VST, 23, 1, 2, 0, 100000 - 100000 % 4096 + 16384);
  fx_op(&p, 36, TILE_MOP_HALT, 0, 0, 0, 0, 0);
  TileEmu *e = make(&p, F);
  REQUIRE(e != NULL);
  static float m[128 * 128];
  for (int i = 0; i < 128 * 128; i++) m[i] = rnd();
  CHECK(tile_emu_write_memory(e, 0, TILE_SPACE_VMEM, 0, m, sizeof m));
  REQUIRE(tile_emu_run(e) == TILE_EMU_OK);
  float r[5][VLEN];
  for (int k = 0; k < 5; k++) read_vmem(e, 100000 - 100000 % 4096 + 4096 * k, r[k], VLEN);
  int bad = 0;
  for (int s = 0; s < ROWS; s++)
    for (int l = 0; l < LANES; l++) {
      float sum = m[s * LANES];
      for (int k = 1; k < LANES; k++) sum += m[s * LANES + k];
      float mx = m[l];
      for (int k = 1; k < ROWS; k++) mx = m[k * LANES + l] > mx ? m[k * LANES + l] : mx;
      bad += fx_bits(r[0][s * LANES + l]) != fx_bits(sum);
      bad += fx_bits(r[1][s * LANES + l]) != fx_bits(mx);
      bad += fx_bits(r[2][s * LANES + (l + 125) % 128]) != fx_bits(m[s * LANES + l]);
      bad += fx_bits(r[3][((s + 2) % 8) * LANES + l]) != fx_bits(m[s * LANES + l]);
      bad += fx_bits(r[4][s * LANES + l]) != fx_bits(m[l * 128 + 40 + s]);
    }
  CHECK_EQ(0, bad);
  tile_emu_free(e);
}

TEST(emu_units, transpose_pop_too_early) {
  FxProg p = {0};
  fx_op(&p, 0, TILE_MOP_XTRPUSH, 0, 1, 0, 0, 0);
  fx_op(&p, 2, TILE_MOP_XTRPOP, 2, 0, 0, 0, 0);
  fx_op(&p, 3, TILE_MOP_HALT, 0, 0, 0, 0, 0);
  TileEmu *e = make(&p, T);
  REQUIRE(e != NULL);
  CHECK_EQ(TILE_EMU_FAULTED, tile_emu_run(e));
  CHECK_STREQ("chip 0, pc 2, cycle 2: xlu.trpop reads the transpose buffer before the xlu.trpush "
              "of cycle 0 lands at cycle 3",
              tile_emu_fault(e)->message);
  tile_emu_free(e);
}
