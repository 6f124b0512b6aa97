/* Scalars of a kernel (i32 and i1): loop indices, addresses, conditions.
 *
 * A scalar is kept as precisely as it is known (gen_kernel.h, KInt): a constant, an
 * affine form in the induction registers of the enclosing machine loops (so an address
 * `%k0 * 256 + %col` costs a multiply-add per loop level where it is used, and nothing
 * where it is a constant), or a register. An op that is neither constant nor affine
 * waits (lazy) until a use needs its value in a register; an `if` decides its
 * condition at compile time (kx_static) and never needs one.
 *
 * The scalar unit has add, sub, mul, compares and shifts but no divide: a division or
 * remainder by a positive constant becomes a shift and mask (powers of two) or a
 * multiply by a rounded reciprocal and a shift, exact over the range the dividend can
 * take (KInt.lo .. hi, from the loop bounds); a divisor known only at run time, or a
 * dividend that may be negative, is refused at the op. Arithmetic wraps at 32 bits as
 * the machine's does. */
#include <string.h>

#include "gen_kernel.h"
#include "tile/ops.h"

static int64_t wrap(uint8_t elem, int64_t x) {
  if (elem == TILE_ELEM_I1) return x & 1;
  return (int64_t)(int32_t)(uint32_t)(uint64_t)x;
}

KInt kx_const(int64_t c) {
  KInt a;
  memset(&a, 0, sizeof a);
  a.reg = -1;
  a.c = a.lo = a.hi = c;
  return a;
}

bool kx_is_const(const KInt *a) {
  if (a->reg >= 0) return false;
  for (int l = 0; l < KX_MAX_SYM; l++)
    if (a->coef[l]) return false;
  return true;
}

static KInt full_range(int32_t reg) {
  KInt a = kx_const(0);
  a.reg = reg;
  a.lo = INT32_MIN;
  a.hi = INT32_MAX;
  return a;
}

static KInt reg_range(int32_t reg, int64_t lo, int64_t hi) {
  if (lo < INT32_MIN || hi > INT32_MAX || lo > hi) return full_range(reg);
  KInt a = full_range(reg);
  a.lo = lo;
  a.hi = hi;
  return a;
}

/* The range of an affine form over the enclosing loops' index ranges. */
static void affine_range(const Kx *k, KInt *a) {
  int64_t lo = a->c, hi = a->c;
  for (int l = 0; l < k->nsym; l++) {
    int64_t x = a->coef[l] * k->sym_lo[l], y = a->coef[l] * k->sym_hi[l];
    lo += x < y ? x : y;
    hi += x < y ? y : x;
  }
  a->lo = lo;
  a->hi = hi;
}

static int32_t op2(Kx *k, int mop, int32_t a, int32_t b) {
  int32_t d = tile_mir_sreg(k->m);
  kx_emit(k, tile_mir_inst(mop, d, a, b, 0, 0));
  return d;
}

static int32_t opi(Kx *k, int mop, int32_t a, int64_t imm) {
  int32_t d = tile_mir_sreg(k->m);
  kx_emit(k, tile_mir_inst(mop, d, a, 0, 0, (int32_t)imm));
  return d;
}

int32_t kx_reg(Kx *k, const KInt *a) {
  if (a->reg >= 0) return a->reg;
  int32_t r = -1;
  for (int l = 0; l < k->nsym; l++) {
    if (!a->coef[l]) continue;
    int32_t t = a->coef[l] == 1 ? k->symreg[l] : opi(k, TILE_MOP_MULI, k->symreg[l], a->coef[l]);
    r = r < 0 ? t : op2(k, TILE_MOP_ADD, r, t);
  }
  if (r < 0) return kx_li(k, a->c);
  if (a->c) r = opi(k, TILE_MOP_ADDI, r, a->c);
  return r;
}

KInt kx_add(Kx *k, KInt a, KInt b) {
  if (a.reg < 0 && b.reg < 0) {
    KInt s = kx_const(a.c + b.c);
    for (int l = 0; l < KX_MAX_SYM; l++) s.coef[l] = a.coef[l] + b.coef[l];
    affine_range(k, &s);
    return s;
  }
  if (kx_is_const(&a)) {
    KInt t = a;
    a = b;
    b = t;
  }
  int32_t d = kx_is_const(&b) ? (b.c ? opi(k, TILE_MOP_ADDI, a.reg, b.c) : a.reg)
                              : op2(k, TILE_MOP_ADD, kx_reg(k, &a), kx_reg(k, &b));
  return reg_range(d, a.lo + b.lo, a.hi + b.hi);
}

KInt kx_scale(Kx *k, KInt a, int64_t s) {
  if (s == 0) return kx_const(0);
  if (s == 1) return a;
  if (a.reg < 0) {
    KInt r = kx_const(a.c * s);
    for (int l = 0; l < KX_MAX_SYM; l++) r.coef[l] = a.coef[l] * s;
    affine_range(k, &r);
    return r;
  }
  int64_t x = a.lo * s, y = a.hi * s;
  return reg_range(opi(k, TILE_MOP_MULI, a.reg, s), x < y ? x : y, x < y ? y : x);
}

/* ---- folding: one definition of every scalar op, for constants and kx_static ---- */

bool kx_is_scalar_op(const TileOp *op) {
  if (op->nres != 1) return false;
  const TileType *t = &op->res[0]->type;
  if (t->kind != TILE_TY_SCALAR || (t->elem != TILE_ELEM_I32 && t->elem != TILE_ELEM_I1))
    return false;
  TileOpKind kd = (TileOpKind)op->kind;
  return (kd >= TILE_OP_ADD && kd <= TILE_OP_SELECT && kd != TILE_OP_POW && kd != TILE_OP_EXP &&
          kd != TILE_OP_LOG && kd != TILE_OP_SQRT && kd != TILE_OP_RSQRT && kd != TILE_OP_RECIP &&
          kd != TILE_OP_TANH && kd != TILE_OP_LOGISTIC) ||
         kd == TILE_OP_CONVERT || kd == TILE_OP_CONSTANT;
}

typedef enum Dir { DIR_EQ, DIR_NE, DIR_LT, DIR_LE, DIR_GT, DIR_GE, DIR_BAD } Dir;

static Dir compare_dir(const TileOp *op) {
  static const char *const names[] = {"eq", "ne", "lt", "le", "gt", "ge"};
  const TileAttr *a = tile_attr_get(&op->attrs, "dir");
  if (a && a->kind == TILE_ATTR_IDENT)
    for (int i = 0; i < DIR_BAD; i++)
      if (strcmp(a->s, names[i]) == 0) return (Dir)i;
  return DIR_BAD;
}

static bool constant_value(const TileOp *op, int64_t *out) {
  const TileAttr *a = tile_attr_get(&op->attrs, "value");
  if (!a) return false;
  if (a->kind == TILE_ATTR_INT) *out = a->i;
  else if (a->kind == TILE_ATTR_FLOAT && a->f == (double)(int64_t)a->f) *out = (int64_t)a->f;
  else return false;
  *out = wrap(op->res[0]->type.elem, *out);
  return true;
}

/* op on constant operands x[]; false where it has no value (division by zero). */
static bool fold(const TileOp *op, const int64_t *x, int64_t *out) {
  uint8_t elem = op->res[0]->type.elem;
  bool b1 = elem == TILE_ELEM_I1;
  int64_t r;
  switch ((TileOpKind)op->kind) {
  case TILE_OP_ADD: r = x[0] + x[1]; break;
  case TILE_OP_SUB: r = x[0] - x[1]; break;
  case TILE_OP_MUL: r = x[0] * x[1]; break;
  case TILE_OP_DIV:
  case TILE_OP_REM:
    if (x[1] == 0) return false;
    r = op->kind == TILE_OP_DIV ? x[0] / x[1] : x[0] % x[1];
    break;
  case TILE_OP_MAX: r = x[0] > x[1] ? x[0] : x[1]; break;
  case TILE_OP_MIN: r = x[0] < x[1] ? x[0] : x[1]; break;
  case TILE_OP_AND: r = x[0] & x[1]; break;
  case TILE_OP_OR: r = x[0] | x[1]; break;
  case TILE_OP_XOR: r = x[0] ^ x[1]; break;
  case TILE_OP_NEG: r = -x[0]; break;
  case TILE_OP_ABS: r = x[0] < 0 ? -x[0] : x[0]; break;
  case TILE_OP_NOT: r = b1 ? !x[0] : ~x[0]; break;
  case TILE_OP_SELECT: r = x[0] ? x[1] : x[2]; break;
  case TILE_OP_CONVERT: r = b1 ? x[0] != 0 : x[0]; break;
  case TILE_OP_CONSTANT: return constant_value(op, out);
  case TILE_OP_COMPARE:
    switch (compare_dir(op)) {
    case DIR_EQ: r = x[0] == x[1]; break;
    case DIR_NE: r = x[0] != x[1]; break;
    case DIR_LT: r = x[0] < x[1]; break;
    case DIR_LE: r = x[0] <= x[1]; break;
    case DIR_GT: r = x[0] > x[1]; break;
    case DIR_GE: r = x[0] >= x[1]; break;
    default: return false;
    }
    break;
  default: return false;
  }
  *out = wrap(elem, r);
  return true;
}

static bool is_induction(const TileValue *v) {
  return !v->def && v->block && v->block->parent && v->block->parent->kind == TILE_OP_FOR &&
         v->index == 0;
}

static bool static_eval(const TileValue *v, const TileValue *const *iv, const int64_t *val,
                        int n, int depth, int64_t *out) {
  if (depth > 256) return false;
  if (!v->def) {
    for (int i = 0; i < n; i++)
      if (iv[i] == v) {
        *out = val[i];
        return true;
      }
    return false;
  }
  const TileOp *op = v->def;
  if (!kx_is_scalar_op(op) || op->nopnd > 3) return false;
  int64_t x[3] = {0, 0, 0};
  for (int32_t i = 0; i < op->nopnd; i++)
    if (!static_eval(op->opnd[i].v, iv, val, n, depth + 1, &x[i])) return false;
  return fold(op, x, out);
}

bool kx_static(const TileValue *v, const TileValue *const *env_iv, const int64_t *env_val,
               int nenv, int64_t *out) {
  return static_eval(v, env_iv, env_val, nenv, 0, out);
}

static int deps(const TileValue *v, const TileValue *iv, int depth) {
  if (depth > 256) return -1;
  if (!v->def) return v == iv ? 1 : is_induction(v) ? 0 : -1;
  const TileOp *op = v->def;
  if (!kx_is_scalar_op(op)) return -1;
  int r = 0;
  for (int32_t i = 0; i < op->nopnd; i++) {
    int d = deps(op->opnd[i].v, iv, depth + 1);
    if (d < 0) return -1;
    if (d > 0) r = 1;
  }
  return r;
}

int kx_static_deps(const TileValue *v, const TileValue *iv) { return deps(v, iv, 0); }

/* ---- defining scalar ops ---- */

static bool affine_op(TileOpKind kd) {
  return kd == TILE_OP_ADD || kd == TILE_OP_SUB || kd == TILE_OP_NEG || kd == TILE_OP_MUL;
}

bool kx_scalar_op(Kx *k, const TileOp *op) {
  const TileValue *res = op->res[0];
  TileOpKind kd = (TileOpKind)op->kind;
  if (kd == TILE_OP_CONSTANT) {
    int64_t c;
    if (!constant_value(op, &c))
      return kx_error(k, op, "an integer constant needs an integer value");
    kx_set(k, res, (KEnt){.kind = KE_INT, .i = kx_const(c)});
    return true;
  }
  /* Fold or form the affine result when every operand is known without a register. */
  bool known = true, all_const = true;
  KInt a[3];
  int64_t x[3] = {0, 0, 0};
  for (int32_t i = 0; i < op->nopnd && i < 3; i++) {
    KEnt *e = kx_get(k, op->opnd[i].v);
    if (!e || (e->kind != KE_INT && e->kind != KE_LAZY))
      return kx_error(k, op, "operand %d is not an integer scalar", (int)i + 1);
    if (e->kind != KE_INT || e->i.reg >= 0) {
      known = false;
      continue;
    }
    a[i] = e->i;
    x[i] = a[i].c;
    all_const &= kx_is_const(&a[i]);
  }
  if (known && all_const) {
    int64_t c;
    if (!fold(op, x, &c)) return kx_error(k, op, "divides by zero");
    kx_set(k, res, (KEnt){.kind = KE_INT, .i = kx_const(c)});
    return true;
  }
  bool i32 = res->type.elem == TILE_ELEM_I32;
  if (known && i32 && affine_op(kd) &&
      (kd != TILE_OP_MUL || kx_is_const(&a[0]) || kx_is_const(&a[1]))) {
    KInt r;
    switch (kd) {
    case TILE_OP_ADD: r = kx_add(k, a[0], a[1]); break;
    case TILE_OP_SUB: r = kx_add(k, a[0], kx_scale(k, a[1], -1)); break;
    case TILE_OP_NEG: r = kx_scale(k, a[0], -1); break;
    default: r = kx_is_const(&a[0]) ? kx_scale(k, a[1], a[0].c) : kx_scale(k, a[0], a[1].c); break;
    }
    kx_set(k, res, (KEnt){.kind = KE_INT, .i = r});
    return true;
  }
  kx_set(k, res, (KEnt){.kind = KE_LAZY, .lazy = op});
  return true;
}

/* 1 - a for a in {0, 1}. */
static int32_t one_minus(Kx *k, int32_t a) {
  return opi(k, TILE_MOP_ADDI, opi(k, TILE_MOP_MULI, a, -1), 1);
}

/* Finds M and s with floor(x * M / 2^s) = floor(x / d) for 0 <= x <= X and x * M below
 * 2^32 (muli keeps 32 bits; shri is logical). x = q d + r: x M / 2^s = x / d + x e /
 * (d 2^s) with e = M d - 2^s, which stays below q + 1 when x e < 2^s. */
static bool magic(int64_t d, int64_t X, int64_t *M, int *s) {
  for (int sh = 0; sh < 32; sh++) {
    int64_t two = (int64_t)1 << sh, m = (two + d - 1) / d, e = m * d - two;
    if (m > INT32_MAX) break;
    if (X * e < two && X * m < ((int64_t)1 << 32)) {
      *M = m;
      *s = sh;
      return true;
    }
  }
  return false;
}

static bool divide(Kx *k, const TileOp *op, const KInt *a, const KInt *b, KInt *out) {
  bool rem = op->kind == TILE_OP_REM;
  if (!kx_is_const(b) || b->c <= 0)
    return kx_error(k, op, "the scalar unit has no divide: the divisor must be a positive "
                           "constant, not a value known only at run time");
  if (a->lo < 0)
    return kx_error(k, op, "the dividend may be negative (it ranges over %lld .. %lld); a "
                           "division by a constant is lowered for values from 0 up",
                    (long long)a->lo, (long long)a->hi);
  int64_t d = b->c;
  int32_t x = kx_reg(k, a), q;
  if ((d & (d - 1)) == 0) {
    int sh = 0;
    while (((int64_t)1 << sh) < d) sh++;
    if (rem) {
      *out = reg_range(op2(k, TILE_MOP_AND, x, kx_li(k, d - 1)), 0, d - 1);
      return true;
    }
    q = sh ? opi(k, TILE_MOP_SHRI, x, sh) : x;
  } else {
    int64_t M;
    int sh;
    if (!magic(d, a->hi, &M, &sh))
      return kx_error(k, op, "dividing values up to %lld by %lld needs more than 32 bits; "
                             "keep the dividend smaller", (long long)a->hi, (long long)d);
    q = opi(k, TILE_MOP_SHRI, opi(k, TILE_MOP_MULI, x, M), sh);
  }
  if (!rem) {
    *out = reg_range(q, a->lo / d, a->hi / d);
    return true;
  }
  int32_t r = op2(k, TILE_MOP_SUB, x, opi(k, TILE_MOP_MULI, q, d));
  *out = reg_range(r, 0, d - 1);
  return true;
}

static bool compare(Kx *k, const TileOp *op, const KInt *a, const KInt *b, KInt *out) {
  int32_t x = kx_reg(k, a), y = kx_reg(k, b), r;
  switch (compare_dir(op)) {
  case DIR_LT: r = op2(k, TILE_MOP_SLT, x, y); break;
  case DIR_GT: r = op2(k, TILE_MOP_SLT, y, x); break;
  case DIR_LE: r = one_minus(k, op2(k, TILE_MOP_SLT, y, x)); break;
  case DIR_GE: r = one_minus(k, op2(k, TILE_MOP_SLT, x, y)); break;
  case DIR_EQ: r = op2(k, TILE_MOP_SEQ, x, y); break;
  case DIR_NE: r = one_minus(k, op2(k, TILE_MOP_SEQ, x, y)); break;
  default: return kx_error(k, op, "unknown compare direction");
  }
  *out = reg_range(r, 0, 1);
  return true;
}

/* Emits a lazy op (its operands first). */
static bool emit_lazy(Kx *k, const TileOp *op, KInt *out) {
  KInt a[3];
  for (int32_t i = 0; i < op->nopnd && i < 3; i++)
    if (!kx_int(k, op->opnd[i].v, op, &a[i])) return false;
  const TileOp *saved_src_op = op;
  kx_source(k, saved_src_op);
  bool b1 = op->res[0]->type.elem == TILE_ELEM_I1;
  int64_t lo = INT32_MIN, hi = INT32_MAX;
  int32_t r;
  switch ((TileOpKind)op->kind) {
  case TILE_OP_ADD:
  case TILE_OP_SUB:
    if (b1) { /* modulo 2 */
      r = op2(k, TILE_MOP_XOR, kx_reg(k, &a[0]), kx_reg(k, &a[1]));
      lo = 0, hi = 1;
      break;
    }
    *out = op->kind == TILE_OP_ADD ? kx_add(k, a[0], a[1])
                                   : kx_add(k, a[0], kx_scale(k, a[1], -1));
    return true;
  case TILE_OP_MUL:
    if (!b1 && kx_is_const(&a[0])) {
      *out = kx_scale(k, a[1], a[0].c);
      return true;
    }
    if (!b1 && kx_is_const(&a[1])) {
      *out = kx_scale(k, a[0], a[1].c);
      return true;
    }
    r = op2(k, b1 ? TILE_MOP_AND : TILE_MOP_MUL, kx_reg(k, &a[0]), kx_reg(k, &a[1]));
    if (b1) lo = 0, hi = 1;
    break;
  case TILE_OP_DIV:
  case TILE_OP_REM: return divide(k, op, &a[0], &a[1], out);
  case TILE_OP_MAX:
  case TILE_OP_MIN: {
    bool mx = op->kind == TILE_OP_MAX;
    r = op2(k, mx ? TILE_MOP_MAX : TILE_MOP_MIN, kx_reg(k, &a[0]), kx_reg(k, &a[1]));
    lo = mx ? (a[0].lo > a[1].lo ? a[0].lo : a[1].lo) : (a[0].lo < a[1].lo ? a[0].lo : a[1].lo);
    hi = mx ? (a[0].hi > a[1].hi ? a[0].hi : a[1].hi) : (a[0].hi < a[1].hi ? a[0].hi : a[1].hi);
    break;
  }
  case TILE_OP_AND:
  case TILE_OP_OR:
  case TILE_OP_XOR: {
    static const int mops[] = {TILE_MOP_AND, TILE_MOP_OR, TILE_MOP_XOR};
    r = op2(k, mops[op->kind - TILE_OP_AND], kx_reg(k, &a[0]), kx_reg(k, &a[1]));
    if (b1) lo = 0, hi = 1;
    break;
  }
  case TILE_OP_NEG:
    if (b1) { /* -a = a modulo 2 */
      *out = a[0];
      return true;
    }
    *out = kx_scale(k, a[0], -1);
    return true;
  case TILE_OP_ABS:
    if (b1) {
      *out = a[0];
      return true;
    }
    r = op2(k, TILE_MOP_MAX, kx_reg(k, &a[0]), opi(k, TILE_MOP_MULI, kx_reg(k, &a[0]), -1));
    lo = 0;
    break;
  case TILE_OP_NOT:
    if (b1) {
      r = one_minus(k, kx_reg(k, &a[0]));
      lo = 0, hi = 1;
    } else {
      r = op2(k, TILE_MOP_XOR, kx_reg(k, &a[0]), kx_li(k, -1));
    }
    break;
  case TILE_OP_COMPARE: return compare(k, op, &a[0], &a[1], out);
  case TILE_OP_SELECT: {
    int32_t c = kx_reg(k, &a[0]), x = kx_reg(k, &a[1]), y = kx_reg(k, &a[2]);
    int32_t t = op2(k, TILE_MOP_MUL, c, op2(k, TILE_MOP_SUB, x, y));
    r = op2(k, TILE_MOP_ADD, y, t);
    lo = a[1].lo < a[2].lo ? a[1].lo : a[2].lo;
    hi = a[1].hi > a[2].hi ? a[1].hi : a[2].hi;
    break;
  }
  case TILE_OP_CONVERT:
    if (!b1) {
      *out = a[0];
      return true;
    }
    r = one_minus(k, op2(k, TILE_MOP_SEQ, kx_reg(k, &a[0]), tile_lower_zero(k->cx)));
    lo = 0, hi = 1;
    break;
  default: return kx_error(k, op, "a kernel has no scalar code for this op");
  }
  *out = reg_range(r, lo, hi);
  return true;
}

bool kx_int(Kx *k, const TileValue *v, const TileOp *user, KInt *out) {
  KEnt *e = kx_get(k, v);
  if (e && e->kind == KE_INT) {
    *out = e->i;
    return true;
  }
  if (!e || e->kind != KE_LAZY)
    return kx_error(k, user, "an operand that should be an i32 or i1 scalar is not one");
  const TileOp *op = e->lazy;
  TileMir *m = k->m;
  int32_t src = m->cur_src;
  bool ok = emit_lazy(k, op, out);
  m->cur_src = src;
  if (!ok) return false;
  kx_set(k, v, (KEnt){.kind = KE_INT, .i = *out});
  return true;
}
