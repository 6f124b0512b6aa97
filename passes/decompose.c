/* decompose: rewrite every composite tensor op into core ops of the op table.
 *
 * Needs a verified module. Guarantees that no composite op (softmax, layernorm,
 * rmsnorm, gelu, silu, rope, attention) remains, in any function, kernel or nested
 * region, except those the module's keep_composites flags (a backend with its own
 * code for them), and that each was replaced in place by core ops computing the semantics
 * of its row in include/tile/ops.h: softmax max-subtracted; the norms over the last
 * dim, layernorm with the two-pass (centered) variance, both through rsqrt; gelu in
 * its tanh form, silu as h + h tanh(h) with h = x / 2 (x logistic(x), with one
 * transcendental); rope by rotating halves with cos/sin broadcast over the leading
 * dims; attention as q k^T (dot_general), scale, an optional causal mask, the
 * softmax above and a contraction with v. The arithmetic is f32: operands of a
 * narrower float type (bf16, f16, f8) are converted to f32 first and the result is
 * converted back once, at the end, as a careful compiler does. The composite's
 * result value lives on as the result of the last new op, so its name, its uses
 * and its `shard` stay as they were; the new values are named after it ("%p" makes
 * "%p.max", "%p.exp", ...) and the new ops take the composite's source location, so
 * a later error points at the line the user wrote.
 *
 * Two choices the op table leaves open: the causal mask is aligned top-left (query
 * i sees keys j <= i, as jax.nn.dot_product_attention and PyTorch do, so no row is
 * ever fully masked); with grouped K/V heads (Hkv < H) query head h reads K/V head
 * h / (H / Hkv), and q's heads are split as [Hkv, H/Hkv] so K and V are contracted
 * in place rather than copied H/Hkv times. */
#include <math.h>
#include <string.h>

#include "tile/builder.h"
#include "tile/pass.h"
#include "tile/rewrite.h"

/* The element type composites compute in. */
#define WORK TILE_ELEM_F32

/* sqrt(2 / pi), gelu's tanh-form coefficient, and its cubic term's weight. */
static const double GELU_C = 0.7978845608028654;
static const double GELU_K = 0.044715;

/* The state of rewriting one function. */
typedef struct Rw {
  TileModule *m;
  TileDiag *d;
  TileBuilder b;
  TileNameSet names;
  TileOp *op;       /* the composite being rewritten */
  const char *base; /* its result's name; NULL when unnamed */
  bool failed;      /* a build failed (a bug here); reported once */
} Rw;

/* ---- building blocks ----
 * Each helper returns NULL once a build has failed, and does nothing then, so a
 * decomposition reads as straight-line code and the failure surfaces at the end.
 * A call may take one other helper's result as an argument, never two: the order
 * of the ops built must not depend on the order C evaluates arguments in. */

static TileType with_elem(TileType t, TileElem e) {
  t.elem = (uint8_t)e;
  return t;
}

/* Builds one op with one result named after the composite's (base.sfx). res is
 * the result type where the op's rule needs it given, else NULL. */
static TileValue *emit(Rw *r, const char *sfx, TileOpKind kind, int n, TileValue *const *opnds,
                       int nattr, const TileNamedAttr *attrs, const TileType *res) {
  if (r->failed) return NULL;
  TileUse uses[3] = {{0}}; /* select takes the most operands, three */
  for (int i = 0; i < n; i++) uses[i].v = opnds[i];
  TileOp *op = tile_build_op(&r->b, kind, n, uses, nattr, attrs, 1, res);
  if (!op) {
    tile_error(r->d, r->op->loc, "internal error: decompose: cannot build %s for %s: %s",
               tile_op_name(kind), tile_op_name(r->op->kind), r->b.diag.last);
    r->failed = true;
    return NULL;
  }
  op->loc = r->op->loc;
  TileValue *v = op->res[0];
  v->name = tile_names_fresh(&r->names, r->base, sfx);
  v->loc = r->op->loc;
  return v;
}

static TileValue *unary(Rw *r, const char *sfx, TileOpKind k, TileValue *a) {
  return emit(r, sfx, k, 1, &a, 0, NULL, NULL);
}

static TileValue *binary(Rw *r, const char *sfx, TileOpKind k, TileValue *a, TileValue *b) {
  return emit(r, sfx, k, 2, (TileValue *[]){a, b}, 0, NULL, NULL);
}

/* `constant {value = x} : t`; elementwise ops take operands of one type, so
 * scalars are splat to the shape they meet. */
static TileValue *splat(Rw *r, const char *sfx, TileType t, double x) {
  TileNamedAttr a = {"value", tile_attr_float(x)};
  return emit(r, sfx, TILE_OP_CONSTANT, 0, NULL, 1, &a, &t);
}

/* a in element type e; a itself when it already is. */
static TileValue *convert(Rw *r, const char *sfx, TileValue *a, TileElem e) {
  if (r->failed || a->type.elem == e) return a;
  TileType t = with_elem(a->type, e);
  return emit(r, sfx, TILE_OP_CONVERT, 1, &a, 0, NULL, &t);
}

static TileValue *reduce(Rw *r, const char *sfx, const char *kind, TileValue *a, int dim) {
  if (r->failed) return NULL;
  int64_t d = dim;
  TileNamedAttr at[2] = {{"kind", tile_attr_ident(r->m, kind)},
                         {"dims", tile_attr_ints(r->m, 1, &d)}};
  return emit(r, sfx, TILE_OP_REDUCE, 1, &a, 2, at, NULL);
}

/* a broadcast to the shape of `to` (operand dim i becomes dim dims[i]); a itself
 * when it has that type already. */
static TileValue *broadcast(Rw *r, const char *sfx, TileValue *a, int n, const int64_t *dims,
                            TileType to) {
  if (r->failed) return NULL;
  to.elem = a->type.elem;
  if (tile_type_eq(&a->type, &to)) return a;
  TileNamedAttr at = {"dims", tile_attr_ints(r->m, n, dims)};
  return emit(r, sfx, TILE_OP_BROADCAST, 1, &a, 1, &at, &to);
}

/* A reduction's result broadcast back over the dim it removed. */
static TileValue *expand(Rw *r, const char *sfx, TileValue *a, int dim, TileType to) {
  int64_t dims[TILE_MAX_RANK];
  int n = 0;
  for (int i = 0; i < to.rank; i++)
    if (i != dim) dims[n++] = i;
  return broadcast(r, sfx, a, n, dims, to);
}

/* a (rank k) broadcast onto the last k dims of `to`: gamma over rows, cos over
 * heads, a mask over batch and heads. */
static TileValue *trailing(Rw *r, const char *sfx, TileValue *a, TileType to) {
  if (r->failed) return NULL;
  int64_t dims[TILE_MAX_RANK];
  int k = a->type.rank;
  for (int i = 0; i < k; i++) dims[i] = to.rank - k + i;
  return broadcast(r, sfx, a, k, dims, to);
}

static TileValue *slice_last(Rw *r, const char *sfx, TileValue *a, int64_t from, int64_t to) {
  if (r->failed) return NULL;
  const TileType *t = &a->type;
  int64_t start[TILE_MAX_RANK] = {0}, limit[TILE_MAX_RANK];
  for (int i = 0; i < t->rank; i++) limit[i] = t->dims[i];
  start[t->rank - 1] = from;
  limit[t->rank - 1] = to;
  TileNamedAttr at[2] = {{"start", tile_attr_ints(r->m, t->rank, start)},
                         {"limit", tile_attr_ints(r->m, t->rank, limit)}};
  return emit(r, sfx, TILE_OP_SLICE, 1, &a, 2, at, NULL);
}

/* a contraction over the last dim of lhs and dim rhs_contract of rhs, batched over
 * the first two dims of both (batch and heads). */
static TileValue *contract(Rw *r, const char *sfx, TileValue *lhs, TileValue *rhs,
                           int64_t rhs_contract) {
  if (r->failed) return NULL;
  int64_t batch[2] = {0, 1}, lc = lhs->type.rank - 1;
  TileNamedAttr at[4] = {{"lhs_batch", tile_attr_ints(r->m, 2, batch)},
                         {"rhs_batch", tile_attr_ints(r->m, 2, batch)},
                         {"lhs_contract", tile_attr_ints(r->m, 1, &lc)},
                         {"rhs_contract", tile_attr_ints(r->m, 1, &rhs_contract)}};
  return emit(r, sfx, TILE_OP_DOT_GENERAL, 2, (TileValue *[]){lhs, rhs}, 4, at, NULL);
}

static TileValue *reshape(Rw *r, const char *sfx, TileValue *a, int rank, const int64_t *dims) {
  if (r->failed) return NULL;
  TileType t = tile_type_tensor(a->type.elem, rank, dims);
  return emit(r, sfx, TILE_OP_RESHAPE, 1, &a, 0, NULL, &t);
}

/* exp(x - max) / sum(exp(x - max)) along dim, for x already in f32. */
static TileValue *softmax_f32(Rw *r, TileValue *x, int dim) {
  if (r->failed) return NULL;
  TileType t = x->type;
  TileValue *mx = reduce(r, "max", "max", x, dim);
  TileValue *mxb = expand(r, "max_b", mx, dim, t);
  TileValue *sh = binary(r, "shifted", TILE_OP_SUB, x, mxb);
  TileValue *e = unary(r, "exp", TILE_OP_EXP, sh);
  TileValue *s = reduce(r, "sum", "add", e, dim);
  TileValue *sb = expand(r, "sum_b", s, dim, t);
  return binary(r, "probs", TILE_OP_DIV, e, sb);
}

/* ---- the composites ----
 * Each returns the value that takes the composite's place (in its result type). */

static TileValue *operand(Rw *r, int i) { return r->op->opnd[i].v; }
static TileElem result_elem(Rw *r) { return (TileElem)r->op->res[0]->type.elem; }

static TileValue *decompose_softmax(Rw *r) {
  int64_t dim = 0;
  tile_attr_get_int(&r->op->attrs, "dim", &dim);
  TileValue *x = convert(r, "in", operand(r, 0), WORK);
  return convert(r, "out", softmax_f32(r, x, (int)dim), result_elem(r));
}

/* layernorm: (x - mean) * rsqrt(var + eps) * gamma + beta, var = mean((x - mean)^2);
 * rmsnorm: x * rsqrt(mean(x^2) + eps) * gamma. Both over the last dim. */
static TileValue *decompose_norm(Rw *r) {
  bool layer = r->op->kind == TILE_OP_LAYERNORM;
  const TileAttr *eps_attr = tile_attr_get(&r->op->attrs, "eps");
  double eps = eps_attr ? eps_attr->f : 0;
  TileType t = with_elem(r->op->res[0]->type, WORK);
  int last = t.rank - 1;
  TileType row = t; /* one value per row: the last dim dropped */
  row.rank--;
  TileValue *x = convert(r, "in", operand(r, 0), WORK);
  TileValue *count = splat(r, "count", row, (double)t.dims[last]);
  TileValue *xc = x;
  if (layer) {
    TileValue *sum = reduce(r, "sum", "add", x, last);
    TileValue *mean = binary(r, "mean", TILE_OP_DIV, sum, count);
    xc = binary(r, "centered", TILE_OP_SUB, x, expand(r, "mean_b", mean, last, t));
  }
  TileValue *sq = binary(r, "sq", TILE_OP_MUL, xc, xc);
  TileValue *ss = reduce(r, "sq_sum", "add", sq, last);
  TileValue *ms = binary(r, layer ? "var" : "mean_sq", TILE_OP_DIV, ss, count);
  TileValue *me = binary(r, layer ? "var_eps" : "mean_sq_eps", TILE_OP_ADD, ms,
                         splat(r, "eps", row, eps));
  TileValue *inv = unary(r, "rsqrt", TILE_OP_RSQRT, me);
  TileValue *xn = binary(r, "normed", TILE_OP_MUL, xc, expand(r, "rsqrt_b", inv, last, t));
  TileValue *gamma = convert(r, "gamma", operand(r, 1), WORK);
  TileValue *y = binary(r, "scaled", TILE_OP_MUL, xn, trailing(r, "gamma_b", gamma, t));
  if (layer) {
    TileValue *beta = convert(r, "beta", operand(r, 2), WORK);
    y = binary(r, "shifted", TILE_OP_ADD, y, trailing(r, "beta_b", beta, t));
  }
  return convert(r, "out", y, result_elem(r));
}

/* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
static TileValue *decompose_gelu(Rw *r) {
  TileValue *x = convert(r, "in", operand(r, 0), WORK);
  TileType t = with_elem(r->op->res[0]->type, WORK);
  TileValue *x2 = binary(r, "sq", TILE_OP_MUL, x, x);
  TileValue *x3 = binary(r, "cube", TILE_OP_MUL, x2, x);
  TileValue *kx3 = binary(r, "cube_k", TILE_OP_MUL, x3, splat(r, "k", t, GELU_K));
  TileValue *inner = binary(r, "inner", TILE_OP_ADD, x, kx3);
  TileValue *u = binary(r, "arg", TILE_OP_MUL, inner, splat(r, "c", t, GELU_C));
  TileValue *th = unary(r, "tanh", TILE_OP_TANH, u);
  TileValue *th1 = binary(r, "tanh_1", TILE_OP_ADD, th, splat(r, "one", t, 1.0));
  TileValue *hx = binary(r, "half_x", TILE_OP_MUL, x, splat(r, "half", t, 0.5));
  TileValue *y = binary(r, "f32", TILE_OP_MUL, hx, th1);
  return convert(r, "out", y, result_elem(r));
}

/* x * logistic(x) = h + h tanh(h) with h = x / 2 */
static TileValue *decompose_silu(Rw *r) {
  TileValue *x = convert(r, "in", operand(r, 0), WORK);
  TileType t = with_elem(r->op->res[0]->type, WORK);
  TileValue *h = binary(r, "half_x", TILE_OP_MUL, x, splat(r, "half", t, 0.5));
  TileValue *th = unary(r, "tanh", TILE_OP_TANH, h);
  TileValue *hth = binary(r, "h_tanh", TILE_OP_MUL, h, th);
  TileValue *y = binary(r, "f32", TILE_OP_ADD, h, hth);
  return convert(r, "out", y, result_elem(r));
}

/* x = [x1, x2] split in halves of the last dim:
 * [x1 cos - x2 sin, x2 cos + x1 sin], cos and sin [S, D/2] broadcast over [..., S, D/2]. */
static TileValue *decompose_rope(Rw *r) {
  TileType t = with_elem(r->op->res[0]->type, WORK);
  int64_t d = t.dims[t.rank - 1], h = d / 2;
  TileType half = t;
  half.dims[t.rank - 1] = h;
  TileValue *x = convert(r, "in", operand(r, 0), WORK);
  TileValue *x1 = slice_last(r, "x1", x, 0, h);
  TileValue *x2 = slice_last(r, "x2", x, h, d);
  TileValue *cs = trailing(r, "cos_b", convert(r, "cos", operand(r, 1), WORK), half);
  TileValue *sn = trailing(r, "sin_b", convert(r, "sin", operand(r, 2), WORK), half);
  /* One op per statement: the order of the new ops must not depend on the order a
   * compiler evaluates call arguments in. */
  TileValue *x1c = binary(r, "x1_cos", TILE_OP_MUL, x1, cs);
  TileValue *x2s = binary(r, "x2_sin", TILE_OP_MUL, x2, sn);
  TileValue *lo = binary(r, "lo", TILE_OP_SUB, x1c, x2s);
  TileValue *x2c = binary(r, "x2_cos", TILE_OP_MUL, x2, cs);
  TileValue *x1s = binary(r, "x1_sin", TILE_OP_MUL, x1, sn);
  TileValue *hi = binary(r, "hi", TILE_OP_ADD, x2c, x1s);
  if (r->failed) return NULL;
  TileNamedAttr dim = {"dim", tile_attr_int(t.rank - 1)};
  TileValue *y = emit(r, "f32", TILE_OP_CONCATENATE, 2, (TileValue *[]){lo, hi}, 1, &dim, NULL);
  return convert(r, "out", y, result_elem(r));
}

/* softmax(q k^T * scale [masked]) v, q [B, H, Sq, D], k and v [B, Hkv, Sk, D]. With
 * G = H / Hkv > 1, q is viewed as [B, Hkv, G, Sq, D] so each K/V head meets its G
 * query heads in one batched contraction. */
static TileValue *decompose_attention(Rw *r) {
  const TileAttr *scale_attr = tile_attr_get(&r->op->attrs, "scale");
  double scale = scale_attr ? scale_attr->f : 1.0;
  int64_t causal = 0;
  tile_attr_get_int(&r->op->attrs, "causal", &causal);
  TileValue *q = convert(r, "q", operand(r, 0), WORK);
  TileValue *k = convert(r, "k", operand(r, 1), WORK);
  TileValue *v = convert(r, "v", operand(r, 2), WORK);
  if (r->failed) return NULL;
  const int64_t *qd = r->op->res[0]->type.dims, *kd = operand(r, 1)->type.dims;
  int64_t b = qd[0], heads = qd[1], sq = qd[2], d = qd[3], kv_heads = kd[1], sk = kd[2];
  int64_t group = heads / kv_heads;
  if (group > 1) q = reshape(r, "q_groups", q, 5, (int64_t[]){b, kv_heads, group, sq, d});

  TileValue *s = contract(r, "scores", q, k, 3); /* [B, Hkv, (G,) Sq, Sk] */
  if (r->failed) return NULL;
  TileType st = s->type;
  s = binary(r, "scaled", TILE_OP_MUL, s, splat(r, "scale", st, scale));
  if (causal) {
    /* The mask is made once as [Sq, Sk] and broadcast, not built per head. */
    TileType pos = tile_type_tensor(TILE_ELEM_I32, 2, (int64_t[]){sq, sk});
    TileNamedAttr dim0 = {"dim", tile_attr_int(0)}, dim1 = {"dim", tile_attr_int(1)};
    TileValue *qpos = emit(r, "qpos", TILE_OP_IOTA, 0, NULL, 1, &dim0, &pos);
    TileValue *kpos = emit(r, "kpos", TILE_OP_IOTA, 0, NULL, 1, &dim1, &pos);
    TileNamedAttr ge = {"dir", tile_attr_ident(r->m, "ge")};
    TileValue *vis = emit(r, "visible", TILE_OP_COMPARE, 2, (TileValue *[]){qpos, kpos}, 1, &ge,
                          NULL);
    TileValue *visb = trailing(r, "visible_b", vis, with_elem(st, TILE_ELEM_I1));
    TileValue *ninf = splat(r, "ninf", st, -INFINITY);
    s = emit(r, "masked", TILE_OP_SELECT, 3, (TileValue *[]){visb, s, ninf}, 0, NULL, NULL);
  }
  TileValue *p = softmax_f32(r, s, st.rank - 1);
  TileValue *o = contract(r, "weighted", p, v, 2); /* [B, Hkv, (G,) Sq, D] */
  if (group > 1) o = reshape(r, "heads", o, 4, (int64_t[]){b, heads, sq, d});
  return convert(r, "out", o, result_elem(r));
}

typedef TileValue *Decomposer(Rw *r);

/* The composites and how each is taken apart; NULL for core ops. */
static Decomposer *const decomposers[TILE_OP_COUNT] = {
    [TILE_OP_SOFTMAX] = decompose_softmax, [TILE_OP_LAYERNORM] = decompose_norm,
    [TILE_OP_RMSNORM] = decompose_norm,    [TILE_OP_GELU] = decompose_gelu,
    [TILE_OP_SILU] = decompose_silu,       [TILE_OP_ROPE] = decompose_rope,
    [TILE_OP_ATTENTION] = decompose_attention,
};

/* ---- the walk ---- */

/* Builds op's decomposition before it, hands op's result to the last new op and
 * erases op. On failure the new ops are dropped and op stays. */
static bool rewrite_op(Rw *r, TileOp *op) {
  r->op = op;
  r->base = op->res[0]->name;
  r->failed = false;
  TileInsertPoint ip;
  tile_insert_begin(&ip, &r->b, op);
  TileValue *y = decomposers[op->kind](r);
  TileOp *last = y && !r->failed ? y->def : NULL;
  bool ok = last && last->block == &ip.scratch && tile_type_eq(&y->type, &op->res[0]->type);
  tile_insert_end(&ip, &r->b, ok);
  if (!ok) {
    if (!r->failed)
      tile_error(r->d, op->loc,
                 "internal error: decompose: the decomposition of %s does not end in a new op "
                 "of its result type", tile_op_name(op->kind));
    return false;
  }
  tile_op_take_result(last, 0, op->res[0]);
  const TileAttr *shard = tile_attr_get(&op->attrs, "shard");
  if (shard) tile_op_set_attr(r->m, last, "shard", *shard);
  tile_op_erase(op);
  return true;
}

/* Whether the module asks for op kind k to stay whole (TileModule.keep_composites). */
static bool keeps(const TileModule *m, int k) {
  return m->keep_composites && m->keep_composites[k];
}

static bool rewrite_block(Rw *r, TileBlock *blk) {
  for (TileOp *op = blk->first, *next; op; op = next) {
    next = op->next; /* op may be erased; what is built goes before it */
    for (int i = 0; i < op->nregion; i++)
      if (!rewrite_block(r, op->region[i])) return false;
    if (op->kind < TILE_OP_COUNT && decomposers[op->kind] && !keeps(r->m, op->kind) &&
        !rewrite_op(r, op))
      return false;
  }
  return true;
}

TilePassStatus tile_pass_decompose(TileModule *m, TileDiag *d) {
  Rw r = {.m = m, .d = d};
  tile_builder_init(&r.b, m);
  for (TileFunc *f = m->funcs; f; f = f->next) {
    tile_names_init(&r.names, m, f);
    bool ok = rewrite_block(&r, f->body);
    tile_names_free(&r.names);
    if (!ok) return TILE_PASS_INTERNAL;
  }
  return TILE_PASS_OK;
}
