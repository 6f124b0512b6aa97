/* The transcendentals of emulator/vmath.c: accuracy against the C library's double
 * functions over sweeps of the whole f32 range and dense windows around the edges,
 * exact special values, and bit identity of every vectorized kernel with the scalar
 * lane code (so results cannot depend on the host's vector width). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "../../../emulator/emu_internal.h"

static float from_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static uint32_t to_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

/* f32 values in one integer order (-0 and +0 together), for ulp distances. */
static int64_t ordinal(float f) {
  uint32_t u = to_bits(f);
  return u & 0x80000000u ? -(int64_t)(u & 0x7fffffffu) : (int64_t)u;
}

static double reference(EmuMath f, double x) {
  switch (f) {
  case EMU_MATH_EXP: return exp(x);
  case EMU_MATH_LOG: return log(x);
  case EMU_MATH_TANH: return tanh(x);
  case EMU_MATH_RSQRT: return 1.0 / sqrt(x);
  default: return 1.0 / x;
  }
}

static const char *const NAMES[EMU_MATH_COUNT] = {"exp", "log", "tanh", "rsqrt", "rcp"};

typedef struct Worst {
  double ulps;     /* largest |got - exact| in ulps of the exact value */
  int64_t dist;    /* largest distance in f32 steps from the rounded reference */
  float at;
  int64_t checked, bad;
} Worst;

/* One lane against the double reference: within 2 f32 steps of the correctly rounded
 * result (the bound) and within 0.5 + 2^-8 ulp of the exact value (what the double
 * evaluation gives); NaN exactly where the reference is NaN. */
static void check_lane(EmuMath f, float x, float got, Worst *w) {
  double exact = reference(f, (double)x);
  float rounded = (float)exact;
  w->checked++;
  if (isnan(rounded) || isnan(got)) {
    if (isnan(rounded) != isnan(got) && w->bad++ < 5)
      printf("  %s(%a) = %a, want %a\n", NAMES[f], x, got, rounded);
    return;
  }
  int64_t dist = llabs(ordinal(got) - ordinal(rounded));
  double ulps = 0;
  if (isfinite(exact) && fabs(exact) <= FLT_MAX) {
    double ulp = fabs(exact) < 0x1p-126 ? 0x1p-149 : ldexp(1.0, ilogb(exact) - 23);
    ulps = fabs((double)got - exact) / ulp;
  }
  if (dist > w->dist) w->dist = dist, w->at = x;
  if (ulps > w->ulps) w->ulps = ulps;
  if ((dist > 2 || ulps > 0.5 + 0x1p-8) && w->bad++ < 5)
    printf("  %s(%a) = %a, want %a (%.4f ulp, %lld steps)\n", NAMES[f], x, got, rounded, ulps,
           (long long)dist);
}

enum { CHUNK = 4096 };

/* Runs the dispatched kernel on n inputs, checking each lane. */
static void check_block(EmuMath f, const float *x, int n, Worst *w) {
  float y[CHUNK];
  emu_vmath(f, x, y, n);
  for (int i = 0; i < n; i++) check_lane(f, x[i], y[i], w);
}

/* Every f32 bit pattern with stride `step` (an odd stride visits every exponent and
 * both signs), and CHUNK consecutive floats on both sides of each edge. */
static Worst sweep(EmuMath f, uint32_t step, const float *edges, int nedges) {
  Worst w = {0};
  float x[CHUNK];
  int n = 0;
  for (uint64_t u = 0; u <= 0xffffffffu; u += step) {
    x[n++] = from_bits((uint32_t)u);
    if (n == CHUNK) check_block(f, x, n, &w), n = 0;
  }
  if (n) check_block(f, x, n, &w);
  for (int e = 0; e < nedges; e++)
    for (int side = -1; side <= 1; side += 2) {
      float v = edges[e];
      int m = 0;
      while (m < CHUNK && isfinite(v)) {
        x[m++] = v;
        v = nextafterf(v, side * INFINITY);
      }
      check_block(f, x, m, &w);
    }
  printf("%s: %lld inputs, max %.4f ulp from the exact value, max %lld steps from the "
         "rounded one (at %a)\n",
         NAMES[f], (long long)w.checked, w.ulps, (long long)w.dist, w.at);
  return w;
}

enum { STEP = 1021 }; /* about 4.2 million inputs per function */

TEST(emu_vmath, exp_accuracy) {
  /* overflow (88.72), the last normal (-87.34) and the last subnormal (-103.28) results,
   * zero (identity region), the lane code's range ends */
  const float edges[] = {88.72283935546875f, -87.33654785f, -103.278929f, -103.972084f, 0.0f,
                         -0.0f, 100.0f, -150.0f, 0.34657359f, -0.34657359f};
  Worst w = sweep(EMU_MATH_EXP, STEP, edges, (int)(sizeof edges / sizeof edges[0]));
  CHECK_EQ(0, w.bad);
}

TEST(emu_vmath, log_accuracy) {
  const float edges[] = {1.0f, 0.70710678f, 1.41421356f, 0x1p-126f, 0x1p-149f, FLT_MAX, 2.0f,
                         0.5f};
  Worst w = sweep(EMU_MATH_LOG, STEP, edges, (int)(sizeof edges / sizeof edges[0]));
  CHECK_EQ(0, w.bad);
}

TEST(emu_vmath, tanh_accuracy) {
  /* the switch between the polynomial and the exponential, the last result below 1,
   * the exponential's range end, tiny arguments */
  const float edges[] = {0.5f, -0.5f, 9.0109f, 10.0f, -9.0109f, 0x1p-12f, 0x1p-126f, 0.0f};
  Worst w = sweep(EMU_MATH_TANH, STEP, edges, (int)(sizeof edges / sizeof edges[0]));
  CHECK_EQ(0, w.bad);
}

TEST(emu_vmath, rsqrt_accuracy) {
  const float edges[] = {1.0f, 2.0f, 4.0f, 0x1p-149f, 0x1p-126f, FLT_MAX, 0.25f};
  Worst w = sweep(EMU_MATH_RSQRT, STEP, edges, (int)(sizeof edges / sizeof edges[0]));
  CHECK_EQ(0, w.bad);
}

TEST(emu_vmath, rcp_is_ieee_division) {
  int bad = 0;
  for (uint64_t u = 0; u <= 0xffffffffu; u += STEP) {
    float x = from_bits((uint32_t)u);
    volatile float one = 1.0f; /* the division done here, not folded */
    float want = one / x;
    bad += to_bits(emu_vmath1(EMU_MATH_RCP, x)) != to_bits(want) && !(isnan(want));
  }
  CHECK_EQ(0, bad);
}

TEST(emu_vmath, special_values) {
  const float inf = INFINITY;
  const uint32_t qnan = 0x7fc00000u;
  struct {
    EmuMath f;
    float x;
    uint32_t want;
  } cases[] = {
      {EMU_MATH_EXP, inf, 0x7f800000u},       {EMU_MATH_EXP, -inf, 0},
      {EMU_MATH_EXP, 0.0f, 0x3f800000u},      {EMU_MATH_EXP, -0.0f, 0x3f800000u},
      {EMU_MATH_EXP, 88.8f, 0x7f800000u},     {EMU_MATH_EXP, -104.0f, 0},
      {EMU_MATH_EXP, 1.0f, 0x402df854u},      {EMU_MATH_EXP, 0x1p-149f, 0x3f800000u},
      {EMU_MATH_LOG, 0.0f, 0xff800000u},      {EMU_MATH_LOG, -0.0f, 0xff800000u},
      {EMU_MATH_LOG, -1.0f, qnan},            {EMU_MATH_LOG, -inf, qnan},
      {EMU_MATH_LOG, -0x1p-149f, qnan},       {EMU_MATH_LOG, inf, 0x7f800000u},
      {EMU_MATH_LOG, 1.0f, 0},                {EMU_MATH_LOG, 0x1p-149f, 0xc2ce8ed0u},
      {EMU_MATH_TANH, inf, 0x3f800000u},      {EMU_MATH_TANH, -inf, 0xbf800000u},
      {EMU_MATH_TANH, 0.0f, 0},               {EMU_MATH_TANH, -0.0f, 0x80000000u},
      {EMU_MATH_TANH, 0x1p-149f, 1},          {EMU_MATH_TANH, -FLT_MAX, 0xbf800000u},
      {EMU_MATH_RSQRT, 0.0f, 0x7f800000u},    {EMU_MATH_RSQRT, -0.0f, 0xff800000u},
      {EMU_MATH_RSQRT, -1.0f, qnan},          {EMU_MATH_RSQRT, -inf, qnan},
      {EMU_MATH_RSQRT, inf, 0},               {EMU_MATH_RSQRT, 4.0f, 0x3f000000u},
      {EMU_MATH_RSQRT, 0x1p-148f, 0x64800000u},
      {EMU_MATH_RCP, 0.0f, 0x7f800000u},      {EMU_MATH_RCP, -0.0f, 0xff800000u},
      {EMU_MATH_RCP, inf, 0},                 {EMU_MATH_RCP, -inf, 0x80000000u},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    float x = cases[i].x, y;
    emu_vmath(cases[i].f, &x, &y, 1);
    if (!CHECK_EQ(cases[i].want, to_bits(y)))
      printf("  %s(%a) = %a (0x%08x)\n", NAMES[cases[i].f], x, y, to_bits(y));
  }
  /* a NaN comes out as the same NaN, quieted, from every function */
  const uint32_t nans[] = {0x7fc00000u, 0xffc00001u, 0x7f800001u, 0xff812345u};
  for (int f = 0; f < EMU_MATH_COUNT; f++)
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) {
      float x = from_bits(nans[i]), y;
      emu_vmath((EmuMath)f, &x, &y, 1);
      CHECK_EQ(nans[i] | 0x00400000u, to_bits(y));
    }
}

/* Every instruction set the host has gives, lane for lane, the scalar code's bits: on
 * sweep inputs, on NaNs with payloads, and computing in place. */
TEST(emu_vmath, kernels_match_scalar_code) {
  enum { N = 1000 }; /* not a multiple of any vector width or of the kernels' block */
  static float x[N], y[N], z[N];
  int bad = 0, isas = 0;
  for (int f = 0; f < EMU_MATH_COUNT; f++)
    for (int isa = EMU_ISA_BASE; isa <= EMU_ISA_AVX512; isa++)
      for (uint32_t start = 0; start < 4000000000u; start += 400000000u) {
        for (int i = 0; i < N; i++) x[i] = from_bits(start + (uint32_t)i * 4099u);
        if (!emu_vmath_isa((EmuMath)f, (EmuMathIsa)isa, x, y, N)) break;
        if (f == 0 && start == 0) isas++;
        memcpy(z, x, sizeof z);
        emu_vmath_isa((EmuMath)f, (EmuMathIsa)isa, z, z, N); /* in place */
        for (int i = 0; i < N; i++) {
          uint32_t want = to_bits(emu_vmath1((EmuMath)f, x[i]));
          bad += to_bits(y[i]) != want;
          bad += to_bits(z[i]) != want;
        }
      }
  CHECK(isas >= 1);
  CHECK_EQ(0, bad);
  printf("%d instruction sets checked against the scalar code\n", isas);
}
