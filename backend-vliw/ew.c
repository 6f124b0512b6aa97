/* Elementwise tensor ops on vreg tiles: the vector-unit code for one tile of one op.
 *
 * Needs operands already in vregs (f32 lanes for f32 and bf16 values, i32 lanes for
 * i32, 0/1 i32 lanes for i1) or splat constants. Guarantees a fresh vreg holding the
 * op's result in the same lane convention, matching the tensor semantics of
 * docs/tile-ir.md and the numpy reference (tests/e2e/tileref.py):
 *
 *   - f32 arithmetic is the machine's IEEE op; a bf16 result is rounded once
 *     (vrnd.bf16), as computing in f32 and storing bf16 would.
 *   - Division is IEEE division, built from vrcp (an IEEE 1/y) and one fused correction
 *     (Markstein): q0 = x * rcp(y), r = x - q0 y (exact in one fma), q = q0 + r rcp(y).
 *     With rcp(y) correctly rounded and q0 within an ulp, q is the correctly rounded
 *     quotient whenever r does not underflow; where q is NaN (y = 0, y or x infinite)
 *     q0 already is the IEEE answer and is taken instead. Divisors outside
 *     [2^-64, 2^64] are scaled toward 1 together with the dividend (by a power of two),
 *     so 1/y never overflows or goes subnormal. Quotients below about 2^-100, where r
 *     underflows, may be one ulp off: far inside the 1e-7 NMSE bound.
 *   - sqrt(x) = x rsqrt(x) with one Newton correction in fma (within an ulp of the
 *     correctly rounded root, tiny x scaled first); 0, -0 and +inf pass through,
 *     negatives give NaN.
 *   - exp, log, tanh, rsqrt are the machine's; recip is vrcp; logistic 1 / (1 + e^-|x|),
 *     times e^-|x| for x < 0.
 *   - pow(x, y) = e^(y ln|x|) with the rounding of the product carried by fma (within
 *     about 1 + |y ln|x|| ulp of powf: the log's rounding times |y|), and C's special cases: x^0 =
 *     1, 1^y = 1, (-1)^inf = 1, finite negative bases only for integer exponents (odd
 *     ones keep the sign, -0 too), (-inf)^y as inf^y. Splat exponents 0, 1, 2, -1 take
 *     their exact short forms.
 *   - float -> int conversion truncates toward zero (as the reference evaluates it);
 *     int -> float rounds to nearest even.
 *   - neg and abs on floats are bit operations (sign of NaN and -0 as IEEE says).
 *   - compare gives 0/1; NaN compares false except under `ne`.
 *   - i1 arithmetic is modulo 2 (add, sub = xor; mul, min = and; max = or).
 *   - i32 division truncates and rem has the sign of the dividend; the quotient comes
 *     from an f32 estimate refined twice in exact integer arithmetic (see div_int).
 *
 * Every constant a sequence needs (masks, 1.0, a splat operand) comes from a pool a
 * generator fills before its loop (tile_ew_consts) or else from a `vli` at the point of
 * use. */
#include <math.h>
#include <string.h>

#include "tile/lower.h"
#include "tile/ops.h"

/* Lane conventions of the element types a vreg can hold. */
typedef enum Lane { LANE_NONE, LANE_F, LANE_I, LANE_B } Lane;

static Lane lane_of(uint8_t elem) {
  switch (elem) {
  case TILE_ELEM_F32:
  case TILE_ELEM_BF16: return LANE_F;
  case TILE_ELEM_I32: return LANE_I;
  case TILE_ELEM_I1: return LANE_B;
  default: return LANE_NONE;
  }
}

enum {
  SIGN = 0x80000000u,
  ABS = 0x7fffffffu,
  F_ONE = 0x3f800000u,
  F_HALF = 0x3f000000u,
  F_INF = 0x7f800000u,
  F_NAN = 0x7fc00000u,
  F_2P24 = 0x4b800000u, /* 2^24: every f32 from here on is an even integer */
  I_ONE = 1u,
  I_ZERO = 0u,
  I_M1 = 0xffffffffu,
};

/* Emission state: where ops go and where constants come from. */
typedef struct Ew {
  TileMir *m;
  const TileEwConsts *pool; /* may be NULL */
  TileEwConsts *want;       /* collecting the constants used (tile_ew_consts); else NULL */
} Ew;

static uint32_t f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static float bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static int32_t k_bits(Ew *e, uint32_t bits) {
  if (e->want) {
    TileEwConsts *w = e->want;
    bool have = false;
    for (int i = 0; i < w->n; i++) have |= w->bits[i] == bits;
    if (!have && w->n < TILE_EW_MAX_CONSTS) w->bits[w->n++] = bits;
  }
  if (e->pool)
    for (int i = 0; i < e->pool->n; i++)
      if (e->pool->bits[i] == bits) return e->pool->vreg[i];
  int32_t d = tile_mir_vreg(e->m);
  tile_mir_add(e->m, tile_mir_inst(TILE_MOP_VLI, d, 0, 0, 0, (int32_t)bits));
  return d;
}

static int32_t k_f32(Ew *e, float f) { return k_bits(e, f32_bits(f)); }

static int32_t op1(Ew *e, int mop, int32_t a) {
  int32_t d = tile_mir_vreg(e->m);
  tile_mir_add(e->m, tile_mir_inst(mop, d, a, 0, 0, 0));
  return d;
}

static int32_t op2(Ew *e, int mop, int32_t a, int32_t b) {
  int32_t d = tile_mir_vreg(e->m);
  tile_mir_add(e->m, tile_mir_inst(mop, d, a, b, 0, 0));
  return d;
}

/* a * b + c, one rounding */
static int32_t fma3(Ew *e, int32_t a, int32_t b, int32_t c) {
  int32_t d = tile_mir_vreg(e->m);
  tile_mir_add(e->m, tile_mir_inst(TILE_MOP_VFMAF, d, a, b, c, 0));
  return d;
}

/* c != 0 ? a : b */
static int32_t sel(Ew *e, int32_t c, int32_t a, int32_t b) {
  int32_t d = tile_mir_vreg(e->m);
  tile_mir_add(e->m, tile_mir_inst(TILE_MOP_VSEL, d, a, b, c, 0));
  return d;
}

static int32_t knot(Ew *e, int32_t b01) { return op2(e, TILE_MOP_VXOR, b01, k_bits(e, I_ONE)); }

/* ---- splat operands ---- */

/* The vreg of operand i: the caller's, or the splat constant's. */
static int32_t operand(Ew *e, const TileOp *op, const int32_t *v, int i) {
  if (v[i] >= 0) return v[i];
  double x = 0;
  tile_lower_splat(op->opnd[i].v, &x);
  return k_bits(e, tile_lower_lane_bits((TileElem)op->opnd[i].v->type.elem, x));
}

/* The splat value of operand i when the caller passed none (-1). */
static bool splat_value(const TileOp *op, const int32_t *v, int i, double *x) {
  return v[i] < 0 && tile_lower_splat(op->opnd[i].v, x);
}

/* ---- the longer sequences ---- */

/* A divisor made ready for IEEE division: its reciprocal and negation after scaling
 * by a power of two that keeps both normal (|y| outside [2^-64, 2^64] is scaled toward
 * 1, and the dividend with it, so the quotient is unchanged). scale < 0: none. */
typedef TileEwDivisor Divisor;

enum {
  F_2P64 = 0x5f800000u,  /* 2^64 */
  F_2M64 = 0x1f800000u,  /* 2^-64 */
  F_2P32 = 0x4f800000u,  /* 2^32 */
  F_2M32 = 0x2f800000u,  /* 2^-32 */
  F_2M96 = 0x0f800000u,  /* 2^-96 */
};

static Divisor divisor_of(Ew *e, int32_t b) {
  int32_t ab = op2(e, TILE_MOP_VAND, b, k_bits(e, ABS));
  int32_t lo = op2(e, TILE_MOP_VCMPLTF, ab, k_bits(e, F_2M64));
  int32_t hi = op2(e, TILE_MOP_VCMPLTF, k_bits(e, F_2P64), ab);
  int32_t s = sel(e, lo, k_bits(e, F_2P64), sel(e, hi, k_bits(e, F_2M64), k_bits(e, F_ONE)));
  int32_t bs = op2(e, TILE_MOP_VMULF, b, s);
  return (Divisor){op1(e, TILE_MOP_VRCP, bs), op2(e, TILE_MOP_VXOR, bs, k_bits(e, SIGN)), s};
}

/* A constant divisor: everything above is known now. */
static Divisor divisor_const(Ew *e, float c) {
  float s = fabsf(c) < 0x1p-64f ? 0x1p64f : fabsf(c) > 0x1p64f ? 0x1p-64f : 1.0f;
  float cs = c * s;
  return (Divisor){k_f32(e, 1.0f / cs), k_f32(e, -cs), s == 1.0f ? -1 : k_f32(e, s)};
}

/* x / divisor: q0 = x rcp(y), r = x - q0 y (exact), q = q0 + r rcp(y); where q is NaN
 * from an infinite or zero operand, q0 is the IEEE answer. */
static int32_t divide(Ew *e, int32_t x, const Divisor *d) {
  if (d->scale >= 0) x = op2(e, TILE_MOP_VMULF, x, d->scale);
  int32_t q0 = op2(e, TILE_MOP_VMULF, x, d->recip);
  int32_t r = fma3(e, q0, d->neg, x);
  int32_t q1 = fma3(e, r, d->recip, q0);
  int32_t ok = op2(e, TILE_MOP_VCMPEQF, q1, q1);
  return sel(e, ok, q1, q0);
}

/* IEEE x / y (see the file comment). */
static int32_t div_f(Ew *e, const TileOp *op, const int32_t *v) {
  int32_t x = operand(e, op, v, 0);
  double c;
  if (splat_value(op, v, 1, &c)) {
    /* A power of two with a normal reciprocal divides exactly by one multiplication. */
    float cf = (float)c;
    if (op->opnd[1].v->type.elem == TILE_ELEM_BF16)
      cf = bits_f32(tile_lower_lane_bits(TILE_ELEM_BF16, cf));
    float rc = 1.0f / cf;
    int ex;
    if (isfinite(cf) && cf != 0 && frexpf(fabsf(cf), &ex) == 0.5f && isnormal(rc))
      return op2(e, TILE_MOP_VMULF, x, k_f32(e, rc));
    Divisor d = divisor_const(e, cf);
    return divide(e, x, &d);
  }
  Divisor d = divisor_of(e, operand(e, op, v, 1));
  return divide(e, x, &d);
}

/* sqrt(x): s = x rsqrt(x), one Newton step s + (x - s^2) rsqrt(x) / 2 in fma. Below
 * 2^-96 the residual x - s^2 would underflow, so x is scaled by 2^64 first and the root
 * by 2^-32 after (both exact). */
static int32_t sqrt_f(Ew *e, int32_t x) {
  int32_t tiny = op2(e, TILE_MOP_VCMPLTF, x, k_bits(e, F_2M96));
  int32_t xs = op2(e, TILE_MOP_VMULF, x, sel(e, tiny, k_bits(e, F_2P64), k_bits(e, F_ONE)));
  int32_t r = op1(e, TILE_MOP_VRSQRT, xs);
  int32_t s = op2(e, TILE_MOP_VMULF, xs, r);
  int32_t h = op2(e, TILE_MOP_VMULF, r, k_bits(e, F_HALF));
  int32_t ns = op2(e, TILE_MOP_VXOR, s, k_bits(e, SIGN));
  int32_t res = fma3(e, ns, s, xs);
  int32_t s2 = fma3(e, res, h, s);
  s2 = op2(e, TILE_MOP_VMULF, s2, sel(e, tiny, k_bits(e, F_2M32), k_bits(e, F_ONE)));
  /* 0 * rsqrt(0) and inf * rsqrt(inf) are NaN; both are their own roots. */
  int32_t z = op2(e, TILE_MOP_VCMPEQF, x, k_bits(e, 0));
  int32_t inf = op2(e, TILE_MOP_VCMPEQF, x, k_bits(e, F_INF));
  return sel(e, op2(e, TILE_MOP_VOR, z, inf), x, s2);
}

/* |x|^y = e^(y ln|x|) with the rounding of the product carried: p = y l and
 * err = y l - p (exact by fma), e^(p + err) = e^(p/2) (1 + err) e^(p/2); the halves
 * keep results near the overflow and underflow thresholds from rounding early. What
 * remains is the log's own rounding, magnified by |y|: about (1 + |y ln|x||) ulp.
 * Where the result is NaN with the halves' product not (p infinite; x 0 or inf), the
 * product is the answer. */
static int32_t pow_mag(Ew *e, int32_t ax, int32_t y) {
  int32_t l = op1(e, TILE_MOP_VLOG, ax);
  int32_t p = op2(e, TILE_MOP_VMULF, y, l);
  int32_t err = fma3(e, y, l, op2(e, TILE_MOP_VXOR, p, k_bits(e, SIGN)));
  int32_t h = op1(e, TILE_MOP_VEXP, op2(e, TILE_MOP_VMULF, p, k_bits(e, F_HALF)));
  int32_t hh = op2(e, TILE_MOP_VMULF, h, h);
  int32_t r = op2(e, TILE_MOP_VMULF, fma3(e, h, err, h), h);
  return sel(e, op2(e, TILE_MOP_VCMPEQF, r, r), r, hh);
}

static int32_t pow_f(Ew *e, const TileOp *op, const int32_t *v) {
  int32_t x = operand(e, op, v, 0);
  double c;
  if (splat_value(op, v, 1, &c)) {
    if (c == 0) return k_bits(e, F_ONE);
    if (c == 1) return op1(e, TILE_MOP_VMOV, x);
    if (c == 2) return op2(e, TILE_MOP_VMULF, x, x);
    if (c == -1) return op1(e, TILE_MOP_VRCP, x);
    int32_t ax = op2(e, TILE_MOP_VAND, x, k_bits(e, ABS));
    int32_t r = pow_mag(e, ax, operand(e, op, v, 1));
    float cf = (float)c;
    bool whole = fabsf(cf) >= 16777216.0f || truncf(cf) == cf;
    if (!whole) { /* a negative base (but -inf) has no real non-integer power */
      int32_t neg = op2(e, TILE_MOP_VCMPLTF, x, k_bits(e, 0));
      int32_t finite = op2(e, TILE_MOP_VCMPLTF, ax, k_bits(e, F_INF));
      return sel(e, op2(e, TILE_MOP_VAND, neg, finite), k_bits(e, F_NAN), r);
    }
    bool odd = fabsf(cf) < 16777216.0f && fmodf(cf, 2.0f) != 0;
    if (!odd) return r;
    int32_t signbit = op2(e, TILE_MOP_VCMPLTI, x, k_bits(e, I_ZERO));
    return sel(e, signbit, op2(e, TILE_MOP_VXOR, r, k_bits(e, SIGN)), r);
  }
  int32_t y = operand(e, op, v, 1);
  int32_t ax = op2(e, TILE_MOP_VAND, x, k_bits(e, ABS));
  int32_t ay = op2(e, TILE_MOP_VAND, y, k_bits(e, ABS));
  int32_t r = pow_mag(e, ax, y);
  /* Is y an integer, and an odd one? From 2^24 on (and at inf) it is an even one. */
  int32_t yi = op1(e, TILE_MOP_VCVTFI, y);
  int32_t exact = op2(e, TILE_MOP_VCMPEQF, op1(e, TILE_MOP_VCVTIF, yi), y);
  int32_t small = op2(e, TILE_MOP_VCMPLTF, ay, k_bits(e, F_2P24));
  int32_t whole = op2(e, TILE_MOP_VOR, exact, knot(e, small));
  /* NaN y: `small` is false, so `whole` is 1; harmless, r is NaN already. */
  int32_t odd = op2(e, TILE_MOP_VAND, op2(e, TILE_MOP_VAND, yi, k_bits(e, I_ONE)), small);
  odd = op2(e, TILE_MOP_VAND, odd, exact);
  int32_t signbit = op2(e, TILE_MOP_VCMPLTI, x, k_bits(e, I_ZERO));
  int32_t flip = op2(e, TILE_MOP_VAND, signbit, odd);
  r = sel(e, flip, op2(e, TILE_MOP_VXOR, r, k_bits(e, SIGN)), r);
  /* A finite negative base with a non-integer exponent has no real power. */
  int32_t neg = op2(e, TILE_MOP_VCMPLTF, x, k_bits(e, 0));
  neg = op2(e, TILE_MOP_VAND, neg, op2(e, TILE_MOP_VCMPLTF, ax, k_bits(e, F_INF)));
  int32_t nan = op2(e, TILE_MOP_VAND, neg, knot(e, whole));
  r = sel(e, nan, k_bits(e, F_NAN), r);
  /* x^0 = 1 and 1^y = 1 even for NaN; (-1)^(+-inf) = 1. */
  int32_t one = op2(e, TILE_MOP_VCMPEQF, y, k_bits(e, 0));
  one = op2(e, TILE_MOP_VOR, one, op2(e, TILE_MOP_VCMPEQF, x, k_bits(e, F_ONE)));
  int32_t m1inf = op2(e, TILE_MOP_VAND, op2(e, TILE_MOP_VCMPEQF, ax, k_bits(e, F_ONE)),
                      op2(e, TILE_MOP_VCMPEQF, ay, k_bits(e, F_INF)));
  one = op2(e, TILE_MOP_VOR, one, m1inf);
  r = sel(e, one, k_bits(e, F_ONE), r);
  /* x^1 = x exactly (the log's rounding could push FLT_MAX over to inf). */
  return sel(e, op2(e, TILE_MOP_VCMPEQF, y, k_bits(e, F_ONE)), x, r);
}

/* f32 -> i32 toward zero: vcvt.f2i rounds to nearest even; where that went away from
 * zero (|round(x)| > |x|), step one back toward zero. */
static int32_t trunc_fi(Ew *e, int32_t x) {
  int32_t r = op1(e, TILE_MOP_VCVTFI, x);
  int32_t ax = op2(e, TILE_MOP_VAND, x, k_bits(e, ABS));
  int32_t arf = op2(e, TILE_MOP_VAND, op1(e, TILE_MOP_VCVTIF, r), k_bits(e, ABS));
  int32_t away = op2(e, TILE_MOP_VCMPLTF, ax, arf);
  int32_t neg = op2(e, TILE_MOP_VCMPLTF, x, k_bits(e, 0));
  int32_t step = sel(e, neg, k_bits(e, I_M1), k_bits(e, I_ONE));
  step = sel(e, away, step, k_bits(e, I_ZERO));
  return op2(e, TILE_MOP_VSUBI, r, step);
}

/* i32 a / b truncating, and the remainder a - q b (sign of a). The f32 estimate
 * q = round(a / b) is within 2^-21 |q| + 1 of the quotient; r = a - q b is then small
 * enough that a second estimate from r leaves q within one of the truncated quotient,
 * and a last compare-and-step puts 0 <= |r| < |b| with r of a's sign. Every product
 * and difference is exact modulo 2^32 and the final r is the true one, which bounds
 * the wrapped intermediates. Division by zero gives q = r = 0 (the reference refuses
 * it). */
static void divrem_i(Ew *e, int32_t a, int32_t b, int32_t *q_out, int32_t *r_out) {
  int32_t bf = op1(e, TILE_MOP_VCVTIF, b);
  int32_t rb = op1(e, TILE_MOP_VRCP, bf);
  int32_t q = op1(e, TILE_MOP_VCVTFI, op2(e, TILE_MOP_VMULF, op1(e, TILE_MOP_VCVTIF, a), rb));
  for (int round = 0; round < 2; round++) {
    int32_t r = op2(e, TILE_MOP_VSUBI, a, op2(e, TILE_MOP_VMULI, q, b));
    int32_t dq = op1(e, TILE_MOP_VCVTFI, op2(e, TILE_MOP_VMULF, op1(e, TILE_MOP_VCVTIF, r), rb));
    q = op2(e, TILE_MOP_VADDI, q, dq);
  }
  int32_t r = op2(e, TILE_MOP_VSUBI, a, op2(e, TILE_MOP_VMULI, q, b));
  /* s = sign(a) * sign(b) as +-1; t = r * sign(a) must land in [0, |b|). */
  int32_t zero = k_bits(e, I_ZERO), one = k_bits(e, I_ONE), m1 = k_bits(e, I_M1);
  int32_t sa = sel(e, op2(e, TILE_MOP_VCMPLTI, a, zero), m1, one);
  int32_t sb = sel(e, op2(e, TILE_MOP_VCMPLTI, b, zero), m1, one);
  int32_t s = op2(e, TILE_MOP_VMULI, sa, sb);
  int32_t absb = op2(e, TILE_MOP_VMULI, b, sb);
  for (int fix = 0; fix < 2; fix++) {
    int32_t t = op2(e, TILE_MOP_VMULI, r, sa);
    int32_t low = op2(e, TILE_MOP_VCMPLTI, t, zero);                 /* q one too far */
    int32_t high = knot(e, op2(e, TILE_MOP_VCMPLTI, t, absb));        /* q one short */
    int32_t dq = op2(e, TILE_MOP_VSUBI, high, low);                   /* -1, 0, 1 */
    q = op2(e, TILE_MOP_VADDI, q, op2(e, TILE_MOP_VMULI, dq, s));
    r = op2(e, TILE_MOP_VSUBI, a, op2(e, TILE_MOP_VMULI, q, b));
  }
  /* b = INT_MIN: |b| does not fit, and the quotient is 1 for a = INT_MIN, else 0. */
  int32_t imin = k_bits(e, SIGN);
  int32_t bmin = op2(e, TILE_MOP_VCMPEQI, b, imin);
  int32_t amin = op2(e, TILE_MOP_VCMPEQI, a, imin);
  q = sel(e, bmin, amin, q);
  r = sel(e, bmin, sel(e, amin, zero, a), r);
  int32_t bz = op2(e, TILE_MOP_VCMPEQI, b, zero);
  *q_out = sel(e, bz, zero, q);
  *r_out = sel(e, bz, zero, r);
}

static int32_t compare(Ew *e, const TileOp *op, const int32_t *v) {
  const TileAttr *dir = tile_attr_get(&op->attrs, "dir");
  int32_t a = operand(e, op, v, 0), b = operand(e, op, v, 1);
  bool fl = lane_of(op->opnd[0].v->type.elem) == LANE_F;
  int lt = fl ? TILE_MOP_VCMPLTF : TILE_MOP_VCMPLTI;
  int eq = fl ? TILE_MOP_VCMPEQF : TILE_MOP_VCMPEQI;
  const char *d = dir->s;
  if (!strcmp(d, "eq")) return op2(e, eq, a, b);
  if (!strcmp(d, "ne")) return knot(e, op2(e, eq, a, b));
  if (!strcmp(d, "lt")) return op2(e, lt, a, b);
  if (!strcmp(d, "gt")) return op2(e, lt, b, a);
  /* le and ge: floats have their own <= (false on NaN); integers negate the strict
   * compare of the swapped operands. */
  bool le = !strcmp(d, "le");
  if (fl) return le ? op2(e, TILE_MOP_VCMPLEF, a, b) : op2(e, TILE_MOP_VCMPLEF, b, a);
  return le ? knot(e, op2(e, lt, b, a)) : knot(e, op2(e, lt, a, b));
}

static int32_t convert(Ew *e, const TileOp *op, const int32_t *v) {
  int32_t a = operand(e, op, v, 0);
  uint8_t to = op->res[0]->type.elem;
  Lane from = lane_of(op->opnd[0].v->type.elem), dst = lane_of(to);
  if (dst == LANE_B) {
    int eq = from == LANE_F ? TILE_MOP_VCMPEQF : TILE_MOP_VCMPEQI;
    return knot(e, op2(e, eq, a, k_bits(e, 0)));
  }
  if (dst == LANE_F) {
    int32_t f = from == LANE_F ? a : op1(e, TILE_MOP_VCVTIF, a);
    if (to == TILE_ELEM_BF16 && op->opnd[0].v->type.elem != TILE_ELEM_BF16)
      return op1(e, TILE_MOP_VRNDBF, f);
    return f == a ? op1(e, TILE_MOP_VMOV, a) : f;
  }
  if (from == LANE_F) return trunc_fi(e, a);
  return op1(e, TILE_MOP_VMOV, a); /* i1 -> i32: 0/1 already */
}

/* One machine op per lane convention for the ops that are one op: F, I, B. */
typedef struct Direct {
  uint16_t f, i, b;
} Direct;

static const Direct direct[TILE_OP_COUNT] = {
    [TILE_OP_ADD] = {TILE_MOP_VADDF, TILE_MOP_VADDI, TILE_MOP_VXOR},
    [TILE_OP_SUB] = {TILE_MOP_VSUBF, TILE_MOP_VSUBI, TILE_MOP_VXOR},
    [TILE_OP_MUL] = {TILE_MOP_VMULF, TILE_MOP_VMULI, TILE_MOP_VAND},
    [TILE_OP_MAX] = {TILE_MOP_VMAXF, 0, TILE_MOP_VOR},
    [TILE_OP_MIN] = {TILE_MOP_VMINF, 0, TILE_MOP_VAND},
    [TILE_OP_AND] = {0, TILE_MOP_VAND, TILE_MOP_VAND},
    [TILE_OP_OR] = {0, TILE_MOP_VOR, TILE_MOP_VOR},
    [TILE_OP_XOR] = {0, TILE_MOP_VXOR, TILE_MOP_VXOR},
    [TILE_OP_EXP] = {TILE_MOP_VEXP, 0, 0},
    [TILE_OP_LOG] = {TILE_MOP_VLOG, 0, 0},
    [TILE_OP_TANH] = {TILE_MOP_VTANH, 0, 0},
    [TILE_OP_RSQRT] = {TILE_MOP_VRSQRT, 0, 0},
    [TILE_OP_RECIP] = {TILE_MOP_VRCP, 0, 0},
};

/* Ops whose result needs no rounding to a bf16 result: they only pick or reorder
 * operand values (already of bf16 precision), or make 0/1 or integers. */
static bool picks_only(int kind) {
  switch (kind) {
  case TILE_OP_MAX: case TILE_OP_MIN: case TILE_OP_NEG: case TILE_OP_ABS:
  case TILE_OP_SELECT: case TILE_OP_COMPARE: case TILE_OP_CONVERT:
    return true;
  default: return false;
  }
}

/* The op in lane convention l (that of its first value operand). */
static int32_t emit_op(Ew *e, const TileOp *op, const int32_t *v) {
  int kind = op->kind;
  Lane l = lane_of(op->opnd[kind == TILE_OP_SELECT ? 1 : 0].v->type.elem);
  const Direct *dr = &direct[kind];
  int mop = l == LANE_F ? dr->f : l == LANE_I ? dr->i : dr->b;
  if (mop) {
    int32_t a = operand(e, op, v, 0);
    if (op->nopnd == 1) return op1(e, mop, a);
    return op2(e, mop, a, operand(e, op, v, 1));
  }
  switch (kind) {
  case TILE_OP_MAX:
  case TILE_OP_MIN: { /* i32 */
    int32_t a = operand(e, op, v, 0), b = operand(e, op, v, 1);
    int32_t lt = op2(e, TILE_MOP_VCMPLTI, a, b);
    return kind == TILE_OP_MAX ? sel(e, lt, b, a) : sel(e, lt, a, b);
  }
  case TILE_OP_DIV:
    if (l == LANE_F) return div_f(e, op, v);
    /* fallthrough */
  case TILE_OP_REM: {
    int32_t q, r;
    divrem_i(e, operand(e, op, v, 0), operand(e, op, v, 1), &q, &r);
    return kind == TILE_OP_DIV ? q : r;
  }
  case TILE_OP_POW: return pow_f(e, op, v);
  case TILE_OP_NEG: {
    int32_t a = operand(e, op, v, 0);
    if (l == LANE_F) return op2(e, TILE_MOP_VXOR, a, k_bits(e, SIGN));
    if (l == LANE_I) return op2(e, TILE_MOP_VSUBI, k_bits(e, I_ZERO), a);
    return op1(e, TILE_MOP_VMOV, a); /* -x = x modulo 2 */
  }
  case TILE_OP_ABS: {
    int32_t a = operand(e, op, v, 0);
    if (l == LANE_F) return op2(e, TILE_MOP_VAND, a, k_bits(e, ABS));
    if (l == LANE_B) return op1(e, TILE_MOP_VMOV, a);
    int32_t neg = op2(e, TILE_MOP_VCMPLTI, a, k_bits(e, I_ZERO));
    return sel(e, neg, op2(e, TILE_MOP_VSUBI, k_bits(e, I_ZERO), a), a);
  }
  case TILE_OP_NOT:
    return op2(e, TILE_MOP_VXOR, operand(e, op, v, 0), k_bits(e, l == LANE_B ? I_ONE : I_M1));
  case TILE_OP_SQRT: return sqrt_f(e, operand(e, op, v, 0));
  case TILE_OP_LOGISTIC: {
    /* t = e^-|x| never overflows: 1 / (1 + t) for x >= 0, and t / (1 + t) for x < 0,
     * so a very negative x gives its tiny (subnormal) result instead of 1 / inf. */
    int32_t x = operand(e, op, v, 0);
    int32_t nax = op2(e, TILE_MOP_VOR, x, k_bits(e, SIGN));
    int32_t t = op1(e, TILE_MOP_VEXP, nax);
    int32_t r = op1(e, TILE_MOP_VRCP, op2(e, TILE_MOP_VADDF, t, k_bits(e, F_ONE)));
    int32_t neg = op2(e, TILE_MOP_VCMPLTF, x, k_bits(e, I_ZERO));
    return sel(e, neg, op2(e, TILE_MOP_VMULF, t, r), r);
  }
  case TILE_OP_COMPARE: return compare(e, op, v);
  case TILE_OP_SELECT:
    return sel(e, operand(e, op, v, 0), operand(e, op, v, 1), operand(e, op, v, 2));
  case TILE_OP_CONVERT: return convert(e, op, v);
  default: return -1; /* not reached: tile_ew_supported holds */
  }
}

static int32_t emit(Ew *e, const TileOp *op, const int32_t *v) {
  int32_t old = e->m->cur_src;
  tile_mir_set_source(e->m, tile_op_name((TileOpKind)op->kind), op->loc);
  int32_t r = emit_op(e, op, v);
  if (op->res[0]->type.elem == TILE_ELEM_BF16 && !picks_only(op->kind))
    r = op1(e, TILE_MOP_VRNDBF, r);
  e->m->cur_src = old;
  return r;
}

/* ---- the interface ---- */

bool tile_ew_supported(const TileOp *op) {
  if (op->kind >= TILE_OP_COUNT || op->nres != 1) return false;
  int kind = op->kind;
  Lane l = LANE_NONE;
  for (int i = 0; i < op->nopnd; i++) {
    Lane li = lane_of(op->opnd[i].v->type.elem);
    if (li == LANE_NONE || op->opnd[i].has_idx) return false;
    if (i == (kind == TILE_OP_SELECT ? 1 : 0)) l = li;
  }
  if (lane_of(op->res[0]->type.elem) == LANE_NONE) return false;
  switch (kind) {
  case TILE_OP_ADD: case TILE_OP_SUB: case TILE_OP_MUL: case TILE_OP_MAX: case TILE_OP_MIN:
  case TILE_OP_NEG: case TILE_OP_ABS:
    return op->nopnd == (kind == TILE_OP_NEG || kind == TILE_OP_ABS ? 1 : 2);
  case TILE_OP_DIV: return l == LANE_F || l == LANE_I;
  case TILE_OP_REM: return l == LANE_I;
  case TILE_OP_AND: case TILE_OP_OR: case TILE_OP_XOR: case TILE_OP_NOT:
    return l == LANE_I || l == LANE_B;
  case TILE_OP_POW: case TILE_OP_EXP: case TILE_OP_LOG: case TILE_OP_SQRT:
  case TILE_OP_RSQRT: case TILE_OP_RECIP: case TILE_OP_TANH: case TILE_OP_LOGISTIC:
    return l == LANE_F;
  case TILE_OP_COMPARE: {
    const TileAttr *d = tile_attr_get(&op->attrs, "dir");
    if (!d || d->kind != TILE_ATTR_IDENT) return false;
    static const char *const dirs[] = {"eq", "ne", "lt", "le", "gt", "ge"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++)
      if (!strcmp(d->s, dirs[i])) return true;
    return false;
  }
  case TILE_OP_SELECT: return lane_of(op->opnd[0].v->type.elem) == LANE_B;
  case TILE_OP_CONVERT: return true;
  default: return false;
  }
}

int32_t tile_ew_emit_mir(TileMir *m, const TileOp *op, const int32_t *operand_vregs,
                         const TileEwConsts *k) {
  Ew e = {.m = m, .pool = k};
  return emit(&e, op, operand_vregs);
}

int32_t tile_ew_emit(TileLowerCtx *cx, const TileOp *op, const int32_t *operand_vregs) {
  return tile_ew_emit_mir(tile_lower_mir(cx), op, operand_vregs, NULL);
}

void tile_ew_consts(TileMir *m, const TileOp *op, TileEwConsts *k) {
  /* Run the emission into a scratch MIR to learn which constants it asks for. */
  TileMir scratch;
  tile_mir_init(&scratch, m->target);
  TileEwConsts want = {0};
  int32_t v[8];
  for (int i = 0; i < op->nopnd && i < 8; i++) {
    double x;
    v[i] = tile_lower_splat(op->opnd[i].v, &x) ? -1 : tile_mir_vreg(&scratch);
  }
  Ew e = {.m = &scratch, .pool = NULL, .want = &want};
  emit(&e, op, v);
  tile_mir_free(&scratch);
  for (int i = 0; i < want.n && k->n < TILE_EW_MAX_CONSTS; i++) {
    bool have = false;
    for (int j = 0; j < k->n; j++) have |= k->bits[j] == want.bits[i];
    if (have) continue;
    int32_t d = tile_mir_vreg(m);
    tile_mir_add(m, tile_mir_inst(TILE_MOP_VLI, d, 0, 0, 0, (int32_t)want.bits[i]));
    k->bits[k->n] = want.bits[i];
    k->vreg[k->n++] = d;
  }
}

TileEwDivisor tile_ew_divisor(TileMir *m, int32_t divisor_vreg, const TileEwConsts *k) {
  Ew e = {.m = m, .pool = k};
  return divisor_of(&e, divisor_vreg);
}

int32_t tile_ew_divide(TileMir *m, int32_t x_vreg, const TileEwDivisor *d) {
  Ew e = {.m = m};
  return divide(&e, x_vreg, d);
}
