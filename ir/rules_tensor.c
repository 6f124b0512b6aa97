/* Type rules of the tensor ops: elementwise, structure, composites. Each checks the
 * shapes and attribute values the op table cannot express and infers the result
 * type, or checks the declared one where the program gives it (broadcast, reshape,
 * convert, iota, constant). See rules.h for what a rule may assume. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rules.h"

/* ---- arithmetic that cannot overflow silently ---- */

/* a * b, or -1 when it does not fit in int64 (dims are positive). */
static int64_t mul_dims(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_mul_overflow(a, b, &r) ? -1 : r;
}

static int64_t numel(const TileType *t) {
  int64_t n = 1;
  for (int i = 0; i < t->rank && n >= 0; i++) n = mul_dims(n, t->dims[i]);
  return n;
}

static const char *shape_text(const int64_t *dims, int n, char *buf, size_t size) {
  size_t k = 0;
  buf[0] = 0;
  for (int i = 0; i < n && k < size; i++)
    k += (size_t)snprintf(buf + k, size - k, "%s%lld", i ? "x" : "", (long long)dims[i]);
  return buf;
}

/* ---- elementwise ---- */

static bool same_operands(RuleCtx *c) {
  const TileType *a = opnd_type(c, 0);
  for (int i = 1; i < c->op->nopnd; i++) {
    const TileType *b = opnd_type(c, i);
    if (!tile_type_eq(a, b))
      return rule_error(c, "operands must have the same type, got %s and %s", TY(a), TY(b));
  }
  c->out[0] = *a;
  return true;
}

bool rule_SAME(RuleCtx *c) { return same_operands(c); }

bool rule_SAME_FLOAT(RuleCtx *c) {
  if (!same_operands(c)) return false;
  const TileType *a = opnd_type(c, 0);
  if (!elem_is_float(a->elem)) return rule_error(c, "needs a float element type, got %s", TY(a));
  const TileAttr *dim = attr(c, "dim"); /* softmax names the dim it normalizes */
  return !dim || rule_check_dim(c, "dim", dim->i, a->rank, a);
}

bool rule_SAME_INT(RuleCtx *c) {
  if (!same_operands(c)) return false;
  const TileType *a = opnd_type(c, 0);
  if (!elem_is_int(a->elem))
    return rule_error(c, "needs an integer (or i1) element type, got %s", TY(a));
  return true;
}

bool rule_COMPARE(RuleCtx *c) {
  static const char *const dirs[] = {"eq", "ne", "lt", "le", "gt", "ge", NULL};
  if (!same_operands(c) || !rule_check_word(c, "dir", dirs)) return false;
  c->out[0].elem = TILE_ELEM_I1;
  return true;
}

bool rule_SELECT(RuleCtx *c) {
  const TileType *cond = opnd_type(c, 0), *a = opnd_type(c, 1), *b = opnd_type(c, 2);
  if (!tile_type_eq(a, b))
    return rule_error(c, "operands 2 and 3 must have the same type, got %s and %s", TY(a), TY(b));
  if (cond->elem != TILE_ELEM_I1 || !same_shape(cond, a))
    return rule_error(c, "condition must be i1 shaped like the operands (%s), got %s", TY(a),
                      TY(cond));
  c->out[0] = *a;
  return true;
}

/* ---- contractions ---- */

/* The result element type of a contraction: the declared one wins (bf16 x bf16 ->
 * f32 accumulates wider), as long as it stays float for float operands and integer
 * for integer ones; with nothing declared it is the operands'. */
static bool contraction_elem(RuleCtx *c, int opnd_elem, uint8_t *elem) {
  const TileType *a = opnd_type(c, 0), *b = opnd_type(c, 1);
  if (a->elem != b->elem)
    return rule_error(c, "operand element types differ: %s and %s", TY(a), TY(b));
  *elem = (uint8_t)opnd_elem;
  const TileType *decl = declared_type(c, 0);
  if (decl && decl->kind == TILE_TY_TENSOR && decl->elem != opnd_elem) {
    if (elem_is_float(decl->elem) != elem_is_float(opnd_elem))
      return rule_error(c, "result element type %s must be a %s type like its operands' (%s)",
                        tile_elem_name(decl->elem), elem_is_float(opnd_elem) ? "float" : "integer",
                        tile_elem_name(opnd_elem));
    *elem = decl->elem;
  }
  return true;
}

bool rule_MATMUL(RuleCtx *c) {
  const TileType *a = opnd_type(c, 0), *b = opnd_type(c, 1);
  if (a->rank < 2)
    return rule_error(c, "lhs must have rank 2 or more ([..., M, K]), got %s", TY(a));
  if (b->rank < 2)
    return rule_error(c, "rhs must have rank 2 or more ([..., K, N]), got %s", TY(b));
  int ra = a->rank, rb = b->rank;
  if (rb > 2) {
    if (rb != ra)
      return rule_error(c, "a batched rhs must have the lhs's rank %d, got %s", ra, TY(b));
    for (int i = 0; i < ra - 2; i++)
      if (a->dims[i] != b->dims[i])
        return rule_error(c, "batch dim %d differs: %s and %s", i, TY(a), TY(b));
  }
  if (a->dims[ra - 1] != b->dims[rb - 2])
    return rule_error(c, "contracting dims differ: %s has K = %lld but %s has K = %lld", TY(a),
                      (long long)a->dims[ra - 1], TY(b), (long long)b->dims[rb - 2]);
  uint8_t elem;
  if (!contraction_elem(c, a->elem, &elem)) return false;
  TileType r = *a;
  r.elem = elem;
  r.dims[ra - 1] = b->dims[rb - 1];
  c->out[0] = r;
  return true;
}

/* Marks the dims of one dot_general list, checking range and reuse on that side. */
static bool mark_dims(RuleCtx *c, const char *list, const TileAttr *a, const TileType *t,
                      bool *used) {
  for (int i = 0; i < a->n; i++) {
    int64_t d = a->elems[i].i;
    if (!rule_check_dim(c, list, d, t->rank, t)) return false;
    if (used[d])
      return rule_error(c, "dim %lld of %s is used twice (in %s)", (long long)d, TY(t), list);
    used[d] = true;
  }
  return true;
}

bool rule_DOT_GENERAL(RuleCtx *c) {
  const TileType *l = opnd_type(c, 0), *r = opnd_type(c, 1);
  const TileAttr *lb = attr(c, "lhs_batch"), *rb = attr(c, "rhs_batch");
  const TileAttr *lc = attr(c, "lhs_contract"), *rc = attr(c, "rhs_contract");
  if (lb->n != rb->n)
    return rule_error(c, "lhs_batch and rhs_batch have different lengths (%d and %d)", lb->n,
                      rb->n);
  if (lc->n != rc->n)
    return rule_error(c, "lhs_contract and rhs_contract have different lengths (%d and %d)", lc->n,
                      rc->n);
  bool lused[TILE_MAX_RANK] = {0}, rused[TILE_MAX_RANK] = {0};
  if (!mark_dims(c, "lhs_batch", lb, l, lused) || !mark_dims(c, "lhs_contract", lc, l, lused) ||
      !mark_dims(c, "rhs_batch", rb, r, rused) || !mark_dims(c, "rhs_contract", rc, r, rused))
    return false;
  for (int i = 0; i < lb->n; i++)
    if (l->dims[lb->elems[i].i] != r->dims[rb->elems[i].i])
      return rule_error(
          c, "batch pair %d: lhs dim %lld (size %lld) and rhs dim %lld (size %lld) differ", i + 1,
          (long long)lb->elems[i].i, (long long)l->dims[lb->elems[i].i], (long long)rb->elems[i].i,
          (long long)r->dims[rb->elems[i].i]);
  for (int i = 0; i < lc->n; i++)
    if (l->dims[lc->elems[i].i] != r->dims[rc->elems[i].i])
      return rule_error(
          c, "contracting pair %d: lhs dim %lld (size %lld) and rhs dim %lld (size %lld) differ",
          i + 1,
          (long long)lc->elems[i].i, (long long)l->dims[lc->elems[i].i], (long long)rc->elems[i].i,
          (long long)r->dims[rc->elems[i].i]);
  int rank = l->rank + r->rank - lb->n - 2 * lc->n;
  if (rank > TILE_MAX_RANK) return rule_error(c, "result rank %d exceeds %d", rank, TILE_MAX_RANK);
  uint8_t elem;
  if (!contraction_elem(c, l->elem, &elem)) return false;
  int64_t dims[TILE_MAX_RANK];
  int n = 0;
  for (int i = 0; i < lb->n; i++) dims[n++] = l->dims[lb->elems[i].i];
  for (int i = 0; i < l->rank; i++)
    if (!lused[i]) dims[n++] = l->dims[i];
  for (int i = 0; i < r->rank; i++)
    if (!rused[i]) dims[n++] = r->dims[i];
  c->out[0] = tile_type_tensor(elem, n, dims);
  return true;
}

/* ---- reductions ---- */

bool rule_REDUCE(RuleCtx *c) {
  const TileType *a = opnd_type(c, 0);
  const TileAttr *dims = attr(c, "dims");
  if (!rule_check_word(c, "kind", rule_reduce_kinds)) return false;
  bool gone[TILE_MAX_RANK] = {0};
  for (int i = 0; i < dims->n; i++) {
    int64_t d = dims->elems[i].i;
    if (!rule_check_dim(c, "dim", d, a->rank, a)) return false;
    if (gone[d]) return rule_error(c, "dim %lld is listed twice in dims", (long long)d);
    gone[d] = true;
  }
  TileType r = {.kind = TILE_TY_TENSOR, .elem = a->elem};
  for (int i = 0; i < a->rank; i++)
    if (!gone[i]) r.dims[r.rank++] = a->dims[i];
  c->out[0] = r;
  return true;
}

bool rule_ARG_REDUCE(RuleCtx *c) {
  const TileType *a = opnd_type(c, 0);
  int64_t dim = attr(c, "dim")->i;
  if (!rule_check_dim(c, "dim", dim, a->rank, a)) return false;
  TileType r = {.kind = TILE_TY_TENSOR, .elem = TILE_ELEM_I32};
  for (int i = 0; i < a->rank; i++)
    if (i != dim) r.dims[r.rank++] = a->dims[i];
  c->out[0] = r;
  return true;
}

/* ---- shape changes ---- */

bool rule_BROADCAST(RuleCtx *c) {
  const TileType *a = opnd_type(c, 0), *r = rule_need_declared(c, 0);
  if (!r) return false;
  const TileAttr *dims = attr(c, "dims");
  if (r->kind != TILE_TY_TENSOR) return rule_error(c, "result must be a tensor, got %s", TY(r));
  if (r->elem != a->elem)
    return rule_error(c, "result element type must be the operand's (%s), got %s",
                      tile_elem_name(a->elem), TY(r));
  if (dims->n != a->rank)
    return rule_error(c, "dims has %d %s but the operand %s has rank %d", dims->n,
                      entries(dims->n), TY(a), a->rank);
  for (int i = 0; i < dims->n; i++) {
    int64_t d = dims->elems[i].i;
    if (!rule_check_dim(c, "dims entry", d, r->rank, r)) return false;
    if (i > 0 && d <= dims->elems[i - 1].i)
      return rule_error(c, "dims must be strictly increasing, got %lld after %lld", (long long)d,
                        (long long)dims->elems[i - 1].i);
    if (a->dims[i] != 1 && a->dims[i] != r->dims[d])
      return rule_error(c,
                        "operand dim %d (size %lld) cannot become result dim %lld (size %lld); "
                        "sizes must be equal or the operand's 1",
                        i, (long long)a->dims[i], (long long)d, (long long)r->dims[d]);
  }
  c->out[0] = *r;
  c->inferred = false;
  return true;
}

bool rule_TRANSPOSE(RuleCtx *c) {
  const TileType *a = opnd_type(c, 0);
  const TileAttr *perm = attr(c, "perm");
  if (perm->n != a->rank)
    return rule_error(c, "perm has %d %s but the operand %s has rank %d", perm->n,
                      entries(perm->n), TY(a), a->rank);
  bool seen[TILE_MAX_RANK] = {0};
  TileType r = *a;
  for (int i = 0; i < perm->n; i++) {
    int64_t p = perm->elems[i].i;
    if (!rule_check_dim(c, "perm entry", p, a->rank, a)) return false;
    if (seen[p])
      return rule_error(c, "perm is not a permutation: %lld appears twice", (long long)p);
    seen[p] = true;
    r.dims[i] = a->dims[p];
  }
  c->out[0] = r;
  return true;
}

bool rule_RESHAPE(RuleCtx *c) {
  const TileType *a = opnd_type(c, 0), *r = rule_need_declared(c, 0);
  if (!r) return false;
  if (r->kind != TILE_TY_TENSOR) return rule_error(c, "result must be a tensor, got %s", TY(r));
  if (r->elem != a->elem)
    return rule_error(c, "result element type must be the operand's (%s), got %s",
                      tile_elem_name(a->elem), TY(r));
  int64_t na = numel(a), nr = numel(r);
  if (na < 0 || nr < 0) return rule_error(c, "has more elements than fit in 64 bits");
  if (na != nr)
    return rule_error(c, "result %s must have as many elements as the operand %s", TY(r), TY(a));
  c->out[0] = *r;
  c->inferred = false;
  return true;
}

bool rule_SLICE(RuleCtx *c) {
  const TileType *a = opnd_type(c, 0);
  const TileAttr *start = attr(c, "start"), *limit = attr(c, "limit"), *stride = attr(c, "stride");
  const char *names[3] = {"start", "limit", "stride"};
  const TileAttr *lists[3] = {start, limit, stride};
  for (int k = 0; k < 3; k++)
    if (lists[k] && lists[k]->n != a->rank)
      return rule_error(c, "%s has %d %s but the operand %s has rank %d", names[k], lists[k]->n,
                        entries(lists[k]->n), TY(a), a->rank);
  TileType r = *a;
  for (int i = 0; i < a->rank; i++) {
    int64_t s = start->elems[i].i, l = limit->elems[i].i, st = stride ? stride->elems[i].i : 1;
    if (s < 0 || l > a->dims[i] || s > l)
      return rule_error(c, "dim %d: need 0 <= start <= limit <= %lld, got start %lld, limit %lld",
                        i, (long long)a->dims[i], (long long)s, (long long)l);
    if (s == l)
      return rule_error(c, "dim %d is empty (start = limit = %lld); dims are positive", i,
                        (long long)s);
    if (st < 1)
      return rule_error(c, "dim %d: stride must be 1 or more, got %lld", i, (long long)st);
    r.dims[i] = (l - s - 1) / st + 1; /* ceil((l - s) / st) without overflow; l > s */
  }
  c->out[0] = r;
  return true;
}

bool rule_CONCATENATE(RuleCtx *c) {
  const TileType *a = opnd_type(c, 0);
  int64_t dim = attr(c, "dim")->i;
  if (!rule_check_dim(c, "dim", dim, a->rank, a)) return false;
  TileType r = *a;
  for (int k = 1; k < c->op->nopnd; k++) {
    const TileType *b = opnd_type(c, k);
    if (b->elem != a->elem || b->rank != a->rank)
      return rule_error_at(c, opnd_loc(c, k),
                           "operand %d %s must have the element type and rank of %s", k + 1, TY(b),
                           TY(a));
    for (int i = 0; i < a->rank; i++)
      if (i != dim && b->dims[i] != a->dims[i])
        return rule_error_at(c, opnd_loc(c, k),
                             "operand %d %s differs from %s in dim %d (only dim %lld may differ)",
                             k + 1, TY(b), TY(a), i, (long long)dim);
    if (__builtin_add_overflow(r.dims[dim], b->dims[dim], &r.dims[dim]))
      return rule_error(c, "the joined dim %lld is too large", (long long)dim);
  }
  c->out[0] = r;
  return true;
}

bool rule_GATHER(RuleCtx *c) {
  const TileType *a = opnd_type(c, 0), *idx = opnd_type(c, 1);
  int64_t axis = attr(c, "axis")->i;
  if (!rule_check_dim(c, "axis", axis, a->rank, a)) return false;
  if (!elem_is_int(idx->elem))
    return rule_error(c, "indices must have an integer element type, got %s", TY(idx));
  int rank = idx->rank + a->rank - 1;
  if (rank > TILE_MAX_RANK) return rule_error(c, "result rank %d exceeds %d", rank, TILE_MAX_RANK);
  TileType r = *idx;
  r.elem = a->elem;
  for (int i = 0; i < a->rank; i++)
    if (i != axis) r.dims[r.rank++] = a->dims[i];
  c->out[0] = r;
  return true;
}

bool rule_TOPK(RuleCtx *c) {
  const TileType *a = opnd_type(c, 0);
  int64_t k = attr(c, "k")->i;
  if (a->rank < 1) return rule_error(c, "operand must have rank 1 or more, got %s", TY(a));
  int64_t last = a->dims[a->rank - 1];
  if (k < 1 || k > last)
    return rule_error(c, "k = %lld must lie in [1, %lld], the last dim of %s", (long long)k,
                      (long long)last, TY(a));
  TileType v = *a;
  v.dims[a->rank - 1] = k;
  TileType i = v;
  i.elem = TILE_ELEM_I32;
  c->out[0] = v;
  c->out[1] = i;
  return true;
}

bool rule_CONVERT(RuleCtx *c) {
  const TileType *a = opnd_type(c, 0), *r = rule_need_declared(c, 0);
  if (!r) return false;
  if (!same_shape(a, r))
    return rule_error(c, "result %s must have the operand's shape (%s)", TY(r), TY(a));
  c->out[0] = *r;
  c->inferred = false;
  return true;
}

bool rule_IOTA(RuleCtx *c) {
  const TileType *r = rule_need_declared(c, 0);
  if (!r) return false;
  if (r->kind != TILE_TY_TENSOR || r->rank < 1)
    return rule_error(c, "result must be a tensor of rank 1 or more, got %s", TY(r));
  if (!rule_check_dim(c, "dim", attr(c, "dim")->i, r->rank, r)) return false;
  c->out[0] = *r;
  c->inferred = false;
  return true;
}

/* Whether a constant element fits the element type: integers in the signed or
 * unsigned range of their width (i1: 0 or 1), floats for float types only. */
static bool constant_fits(RuleCtx *c, const TileAttr *v, int elem, const char *where) {
  if (v->kind == TILE_ATTR_FLOAT) {
    if (elem_is_float(elem)) return true;
    return rule_error(c, "%s is the float %g, but %s takes integers", where, v->f,
                      tile_elem_name(elem));
  }
  if (v->kind != TILE_ATTR_INT) return rule_error(c, "%s must be a number", where);
  if (elem_is_float(elem)) return true;
  int bits = tile_elem_bits(elem);
  int64_t lo = bits == 1 ? 0 : bits >= 64 ? INT64_MIN : -((int64_t)1 << (bits - 1));
  int64_t hi = bits >= 64 ? INT64_MAX : ((int64_t)1 << bits) - 1;
  if (bits == 1) hi = 1;
  if (v->i < lo || v->i > hi)
    return rule_error(c, "%s %lld does not fit in %s", where, (long long)v->i,
                      tile_elem_name(elem));
  return true;
}

bool rule_CONSTANT(RuleCtx *c) {
  const TileType *r = rule_need_declared(c, 0);
  if (!r) return false;
  if (!type_is_value(r)) return rule_error(c, "result must be a tensor or scalar, got %s", TY(r));
  const TileAttr *v = attr(c, "value");
  if (v->kind == TILE_ATTR_ARRAY) {
    int64_t n = numel(r);
    if (n < 0) return rule_error(c, "result %s has more elements than fit in 64 bits", TY(r));
    if (n != v->n)
      return rule_error(c, "value has %d elements but %s has %lld", v->n, TY(r), (long long)n);
    for (int i = 0; i < v->n; i++) {
      char where[48];
      snprintf(where, sizeof where, "value element %d", i + 1);
      if (!constant_fits(c, &v->elems[i], r->elem, where)) return false;
    }
  } else if (!constant_fits(c, v, r->elem, "value")) {
    return false;
  }
  c->out[0] = *r;
  c->inferred = false;
  return true;
}

/* ---- composites ---- */

bool rule_NORM(RuleCtx *c) {
  const TileType *x = opnd_type(c, 0);
  if (!elem_is_float(x->elem) || x->rank < 1)
    return rule_error(c, "operand must be a float tensor of rank 1 or more, got %s", TY(x));
  int64_t last = x->dims[x->rank - 1];
  static const char *const roles[] = {"input", "gamma", "beta"};
  for (int i = 1; i < c->op->nopnd; i++) {
    const TileType *p = opnd_type(c, i);
    if (p->rank != 1 || p->dims[0] != last || p->elem != x->elem) {
      char want[32];
      return rule_error(c, "%s must be tensor<%sx%s> (the last dim of %s), got %s", roles[i],
                        shape_text(&last, 1, want, sizeof want), tile_elem_name(x->elem), TY(x),
                        TY(p));
    }
  }
  double eps = attr(c, "eps")->f;
  if (!(eps > 0) || isinf(eps))
    return rule_error(c, "eps must be positive and finite, got %g", eps);
  c->out[0] = *x;
  return true;
}

bool rule_ROPE(RuleCtx *c) {
  const TileType *x = opnd_type(c, 0), *cs = opnd_type(c, 1), *sn = opnd_type(c, 2);
  if (!elem_is_float(x->elem) || x->rank < 2)
    return rule_error(c, "operand must be a float tensor [..., S, D], got %s", TY(x));
  int64_t s = x->dims[x->rank - 2], dd = x->dims[x->rank - 1];
  if (dd % 2) return rule_error(c, "the last dim of %s must be even to rotate halves", TY(x));
  TileType want = tile_type_tensor(x->elem, 2, (int64_t[]){s, dd / 2});
  if (!tile_type_eq(cs, &want) || !tile_type_eq(sn, &want))
    return rule_error(c, "cos and sin must be %s ([S, D/2] of %s), got %s and %s", TY(&want), TY(x),
                      TY(cs), TY(sn));
  c->out[0] = *x;
  return true;
}

bool rule_ATTENTION(RuleCtx *c) {
  const TileType *q = opnd_type(c, 0), *k = opnd_type(c, 1), *v = opnd_type(c, 2);
  if (q->rank != 4 || !elem_is_float(q->elem))
    return rule_error(c, "q must be a float tensor [B, H, Sq, D], got %s", TY(q));
  if (!tile_type_eq(k, v))
    return rule_error(c, "k and v must have the same type, got %s and %s", TY(k), TY(v));
  if (k->rank != 4 || k->elem != q->elem || k->dims[0] != q->dims[0] || k->dims[3] != q->dims[3])
    return rule_error(c,
                      "k and v must be [B, Hkv, Sk, D] with q's B, D and element type (%s), got %s",
                      TY(q), TY(k));
  if (q->dims[1] % k->dims[1])
    return rule_error(c, "q's %lld heads must be a multiple of k's %lld heads",
                      (long long)q->dims[1], (long long)k->dims[1]);
  double scale = attr(c, "scale")->f;
  if (!isfinite(scale)) return rule_error(c, "scale must be finite, got %g", scale);
  int64_t causal = attr_int_or(c, "causal", 0);
  if (causal != 0 && causal != 1)
    return rule_error(c, "causal must be 0 or 1, got %lld", (long long)causal);
  c->out[0] = *q;
  return true;
}
