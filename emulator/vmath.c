/* The vector unit's transcendentals (vexp, vlog, vtanh, vrsqrt, vrcp), computed with our
 * own code instead of the C library, so results are the same bits on every host and the
 * per-lane loops vectorize.
 *
 * Every function takes an f32, widens it to double (exact), evaluates a range reduction
 * and a minimax polynomial in double (IEEE binary64, round to nearest even; no fused
 * operations: the emulator is compiled with -ffp-contract=off), and rounds the result
 * to f32 once. The double evaluation is accurate to about 2^-40 relative, so the f32
 * result is the correctly rounded one except when the exact value lies within that of a
 * rounding boundary, and then it is the neighbour: never more than 1 ulp away. Measured
 * over all 2^32 inputs: at most 0.5004 ulp from the exact value (rsqrt; exp, log, tanh
 * 0.50001). tests/unit/emu/test_vmath.c checks about 4 million inputs per function
 * against 2 ulp from the correctly rounded result and 0.5 + 2^-8 ulp from the exact
 * one. Subnormal f32 inputs are normal doubles, and subnormal or
 * overflowing results are rounded correctly by the final conversion, so neither needs a
 * special path.
 *
 *   exp    k = round(x / ln2), r = x - k ln2, e^x = 2^k p(r), for x in [-150, 100];
 *          beyond that the f32 result is 0 or +inf.
 *   log    x = 2^k m with m in [sqrt(1/2), sqrt(2)), f = m - 1, s = f / (2 + f),
 *          log x = k ln2 + 2s + s z R(z), z = s^2 (log(1+f) = 2 atanh(s)).
 *   tanh   odd; |x| < 1/2: x + x z Q(z), z = x^2; otherwise 1 - 2 / (e^{2|x|} + 1).
 *   rsqrt  the classic bit-trick estimate, then three Newton steps in double.
 *   rcp    1.0f / x, the IEEE division.
 *
 * Special values (select, never branch): exp(-inf) = +0, exp(+inf) = +inf; log(+-0) =
 * -inf, log(x < 0) = log(-inf) = NaN, log(+inf) = +inf; tanh(+-inf) = +-1, tanh(-0) =
 * -0; rsqrt(+-0) = +-inf, rsqrt(x < 0) = NaN, rsqrt(+inf) = +0. A NaN input gives that
 * NaN, quieted (its quiet bit set); the NaN a function makes from a number is
 * 0x7fc00000.
 *
 * Lane bodies are branch-free (comparisons become selects) and use only double and
 * 64-bit integer adds, ands and logical shifts (the int64 <-> double conversions go
 * through magic constants, which SSE2 and AVX2 can vectorize). The array kernels are
 * compiled for AVX-512 and AVX2 next to the baseline and picked at run time; all of them
 * perform the same IEEE operations as the scalar lane function, so every path gives the
 * same bits. The coefficients come from emulator/vmath_coeffs.py (a Remez exchange). */
#include <string.h>

#include "emu_internal.h"

/* ---- the polynomials (emulator/vmath_coeffs.py prints them) ---- */

/* e^r on [-ln2/2, ln2/2], relative error 7.7e-13 */
static const double EXP_C[] = {0x1.ffffffffff7a3p-1,  0x1.ffffffffd563bp-1,  0x1.0000000087f33p-1,
                               0x1.555555a081896p-3,  0x1.55555405127e9p-5,  0x1.111082af6f2a1p-7,
                               0x1.6c18b33839438p-10, 0x1.a1a81bab5a2a8p-13, 0x1.9eda956bb016bp-16};
/* (2 atanh(s)/s - 2) / s^2 in z = s^2 on [0, 0.0295], absolute error 7.2e-12 */
static const double LOG_C[] = {0x1.55555555651d8p-1, 0x1.999998c940b28p-2, 0x1.2493250b315bcp-2,
                               0x1.c67a5cf145bb0p-3, 0x1.8c945f05c57f0p-3};
/* (tanh(x)/x - 1) / x^2 in z = x^2 on [0, 1/4], absolute error 3.0e-12 */
static const double TANH_C[] = {-0x1.55555555483cbp-2, 0x1.111110e864016p-3,
                                -0x1.ba1b786fd1f28p-5, 0x1.6647668b1d25cp-6,
                                -0x1.21b58f9cb2160p-7, 0x1.c53cbd81bd15ap-9,
                                -0x1.0f730e127802dp-10};

#define LN2 0x1.62e42fefa39efp-1
#define INV_LN2 0x1.71547652b82fep0
/* Adding 1.5 * 2^52 rounds a double of magnitude < 2^51 to an integer k and leaves k in
 * the low bits of the sum's representation. */
#define ROUND_SHIFT 0x1.8p52
#define F32_QNAN 0x7fc00000u

/* Horner's rule written out (a loop here would keep the lane loops from vectorizing). */
#define HORNER5(x, c) ((((c[4] * (x) + c[3]) * (x) + c[2]) * (x) + c[1]) * (x) + c[0])
#define HORNER7(x, c) ((((HORNER5(x, (c + 2)) * (x)) + c[1]) * (x)) + c[0])
#define HORNER9(x, c) ((((HORNER7(x, (c + 2)) * (x)) + c[1]) * (x)) + c[0])

static inline uint64_t dbits(double d) {
  uint64_t u;
  memcpy(&u, &d, 8);
  return u;
}
static inline double dfrom(uint64_t u) {
  double d;
  memcpy(&d, &u, 8);
  return d;
}

/* Selects as bit masks: c ? a : b. Written with the conditional operator, the compiler
 * turns the selects into branches (and sinks the work of the untaken side into them),
 * and the lane loops no longer vectorize. */
static inline float fsel(int c, float a, float b) {
  return emu_f32_from_bits(emu_select_bits(c, emu_f32_bits(a), emu_f32_bits(b)));
}
static inline double dsel(int c, double a, double b) {
  const uint64_t m = -(uint64_t)c;
  return dfrom((dbits(a) & m) | (dbits(b) & ~m));
}

/* A NaN with its quiet bit set, as arithmetic on it would give. Bit operations, not
 * x + x: the compiler does not if-convert a floating-point add that could raise an
 * exception, and the select would stop the loop from vectorizing. */
static inline float quiet(float x) { return emu_f32_from_bits(emu_f32_bits(x) | 0x00400000u); }

/* e^x for x in [-150, 100], relative error about 2^-40 (the callers select the results
 * for other x away). */
static inline __attribute__((always_inline)) double exp_core(double x) {
  const double t = x * INV_LN2 + ROUND_SHIFT;
  const double k = t - ROUND_SHIFT; /* round(x / ln2), exact */
  /* |k| <= 217: k ln2 is off by at most 2^-46 absolute, a relative 2^-46 in e^x */
  const double r = x - k * LN2;
  const double p = HORNER9(r, EXP_C);
  /* 2^k: k sits in the low bits of t; shifted to the exponent field (the bits above
   * wrap away) and biased, it is a normal double for every k here */
  const double scale = dfrom((dbits(t) << 52) + (UINT64_C(1023) << 52));
  return p * scale;
}

static inline __attribute__((always_inline)) float lane_exp(float x) {
  float r = (float)exp_core((double)x);
  r = fsel(x > 100.0f, __builtin_inff(), r); /* e^100 > 2^144: +inf in f32 */
  r = fsel(x < -150.0f, 0.0f, r);            /* e^-150 < 2^-216: +0 in f32 */
  return fsel(x != x, quiet(x), r);          /* NaN in, the same NaN (quiet) out */
}

static inline __attribute__((always_inline)) float lane_log(float x) {
  const double d = (double)x;
  /* u's exponent field is k + 1023 and its mantissa that of m / sqrt(1/2) - 1 ... as
   * long as d is positive and finite; the selects below take care of the rest */
  const uint64_t u = dbits(d) + (UINT64_C(0x3ff0000000000000) - UINT64_C(0x3fe6a09e667f3bcd));
  const uint64_t ebits = u >> 52;
  /* k as a double without an int64 -> double conversion: 2^52 + e is exact */
  const double k = dfrom(ebits | UINT64_C(0x4330000000000000)) - (0x1p52 + 1023.0);
  const double m = dfrom((u & UINT64_C(0x000fffffffffffff)) + UINT64_C(0x3fe6a09e667f3bcd));
  const double f = m - 1.0; /* exact: m is in [0.70, 1.42) */
  const double s = f / (2.0 + f);
  const double z = s * s;
  const double q = HORNER5(z, LOG_C);
  const double lg = k * LN2 + (2.0 * s + s * z * q);
  float r = (float)lg;
  r = fsel(x == 0.0f, -__builtin_inff(), r);
  r = fsel(x < 0.0f, emu_f32_from_bits(F32_QNAN), r);
  r = fsel(x == __builtin_inff(), x, r);
  return fsel(x != x, quiet(x), r);
}

static inline __attribute__((always_inline)) float lane_tanh(float x) {
  const uint32_t sign = emu_f32_bits(x) & 0x80000000u;
  const double a = (double)emu_f32_from_bits(emu_f32_bits(x) & 0x7fffffffu);
  const double z = a * a;
  const double q = HORNER7(z, TANH_C);
  const double small = a + a * z * q;
  /* for |x| >= 1/2 the subtraction loses at most a factor 1.2 of the exponential's
   * accuracy; past |x| = 9.1 the result rounds to 1, and past 10 (where exp_core's
   * range ends) it is set to 1 */
  const double large = 1.0 - 2.0 / (exp_core(2.0 * a) + 1.0);
  const double t = dsel(a > 10.0, 1.0, dsel(a < 0.5, small, large));
  const float r = emu_f32_from_bits(emu_f32_bits((float)t) | sign);
  return fsel(x != x, quiet(x), r);
}

static inline __attribute__((always_inline)) float lane_rsqrt(float x) {
  const double d = (double)x;
  /* an estimate within 3.5% for every positive normal double, then Newton's
   * y <- y (3/2 - d y^2 / 2), which squares the relative error (times 3/2): 3.5% ->
   * 1.8e-3 -> 4.6e-6 -> 3.2e-11 */
  double y = dfrom(UINT64_C(0x5fe6eb50c7b537a9) - (dbits(d) >> 1));
  const double h = 0.5 * d;
  y = y * (1.5 - h * y * y);
  y = y * (1.5 - h * y * y);
  y = y * (1.5 - h * y * y);
  float r = (float)y;
  r = fsel(x == 0.0f, emu_f32_from_bits(emu_f32_bits(x) | 0x7f800000u), r); /* +-0 -> +-inf */
  r = fsel(x < 0.0f, emu_f32_from_bits(F32_QNAN), r);
  r = fsel(x == __builtin_inff(), 0.0f, r);
  return fsel(x != x, quiet(x), r);
}

static inline __attribute__((always_inline)) float lane_rcp(float x) { return 1.0f / x; }

/* ---- array kernels ---- */

/* Lanes go through a local block, so the source and destination may be the same
 * register (or overlap) and the loop still vectorizes without alias checks. */
enum { BLOCK = 128 };

#define VMATH_KERNEL(name, attr, lane)                                           \
  attr static void name(const float *x, float *y, int n) {                        \
    for (int i0 = 0; i0 < n; i0 += BLOCK) {                                       \
      const int m = n - i0 < BLOCK ? n - i0 : BLOCK;                              \
      float out[BLOCK];                                                           \
      for (int i = 0; i < m; i++) out[i] = lane(x[i0 + i]);                       \
      memcpy(y + i0, out, (size_t)m * sizeof(float));                             \
    }                                                                             \
  }

#define VMATH_KERNELS(sfx, attr)                                                  \
  VMATH_KERNEL(exp_##sfx, attr, lane_exp)                                         \
  VMATH_KERNEL(log_##sfx, attr, lane_log)                                         \
  VMATH_KERNEL(tanh_##sfx, attr, lane_tanh)                                       \
  VMATH_KERNEL(rsqrt_##sfx, attr, lane_rsqrt)                                     \
  VMATH_KERNEL(rcp_##sfx, attr, lane_rcp)                                         \
  static void (*const table_##sfx[EMU_MATH_COUNT])(const float *, float *, int) = { \
      exp_##sfx, log_##sfx, tanh_##sfx, rsqrt_##sfx, rcp_##sfx};

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define EMU_X86 1
VMATH_KERNELS(avx512, __attribute__((target("avx512f"))))
VMATH_KERNELS(avx2, __attribute__((target("avx2"))))
#endif
VMATH_KERNELS(base, )

bool emu_vmath_isa(EmuMath f, EmuMathIsa isa, const float *x, float *y, int n) {
  if ((unsigned)f >= EMU_MATH_COUNT) return false;
  switch (isa) {
  case EMU_ISA_BASE: table_base[f](x, y, n); return true;
#ifdef EMU_X86
  case EMU_ISA_AVX2:
    if (!__builtin_cpu_supports("avx2")) return false;
    table_avx2[f](x, y, n);
    return true;
  case EMU_ISA_AVX512:
    if (!__builtin_cpu_supports("avx512f")) return false;
    table_avx512[f](x, y, n);
    return true;
#endif
  default: return false;
  }
}

void emu_vmath(EmuMath f, const float *x, float *y, int n) {
#ifdef EMU_X86
  if (__builtin_cpu_supports("avx512f")) {
    table_avx512[f](x, y, n);
    return;
  }
  if (__builtin_cpu_supports("avx2")) {
    table_avx2[f](x, y, n);
    return;
  }
#endif
  table_base[f](x, y, n);
}

/* One lane, never vectorized (noinline keeps it out of any caller's loop): the
 * reference the kernels are checked against. */
__attribute__((noinline)) float emu_vmath1(EmuMath f, float x) {
  switch (f) {
  case EMU_MATH_EXP: return lane_exp(x);
  case EMU_MATH_LOG: return lane_log(x);
  case EMU_MATH_TANH: return lane_tanh(x);
  case EMU_MATH_RSQRT: return lane_rsqrt(x);
  case EMU_MATH_RCP: return lane_rcp(x);
  default: return emu_f32_from_bits(F32_QNAN);
  }
}
