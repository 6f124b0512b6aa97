/* Elemental code: the value of an IR value at one index, as C statements.
 *
 * Every group's arithmetic goes through gen_value(v, idx). An index is a list of C
 * expressions, one per dim of v, each with the set of loop variables it reads. The
 * statements computing v at idx go into the innermost scope (loop body) that binds
 * one of those variables, or the outermost scope when it reads none: so a value that
 * does not vary along a loop is computed outside it, once (a row's mean is computed
 * once per row, a bias once per column). Each scope remembers what it computed, keyed
 * by (value, index text), so a value read twice at one place is computed once.
 *
 * A reduce opens a nested scope for its operand: in row mode (gen_set_rows) a reduce
 * of a whole row at a uniform place is a block-wide loop plus a block reduction;
 * anything else is a serial loop in the thread. Layout ops and gather only rewrite
 * the index, so they fuse with anything. Every result is rounded to its element type
 * (bf16 and f16 through their bits), as the IR's semantics ask. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

typedef struct Memo {
  const TileValue *v;
  const char *key;
  const char *var;
} Memo;

struct Scope {
  Scope *parent;
  int depth;
  bool uniform;
  Buf text;
  Memo *memo;
  int nmemo, cap;
  bool live;
};

struct Gen {
  CudaEmit *e;
  int group;
  Scope *root;
  Scope *var_scope[GEN_MAX_VARS];
  int nvars;
  char **strs;
  int nstrs, capstrs;
  Scope **scopes;
  int nscopes, capscopes;
  int ntmp;
  bool rows;
  int64_t cols;
  int args[GEN_MAX_ARGS];
  int nargs;
  bool failed;
};

/* ---- bookkeeping ---- */

Gen *gen_new(CudaEmit *e, int group) {
  Gen *g = calloc(1, sizeof *g);
  if (g) {
    g->e = e;
    g->group = group;
  }
  return g;
}

static void scope_free(Scope *s) {
  buf_free(&s->text);
  free(s->memo);
  free(s);
}

void gen_free(Gen *g) {
  if (!g) return;
  for (int i = 0; i < g->nstrs; i++) free(g->strs[i]);
  free(g->strs);
  for (int i = 0; i < g->nscopes; i++)
    if (g->scopes[i]) scope_free(g->scopes[i]);
  free(g->scopes);
  free(g);
}

bool gen_failed(const Gen *g) { return g->failed || g->e->src.oom; }

static bool fail(Gen *g, TileLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail(Gen *g, TileLoc loc, const char *fmt, ...) {
  if (!g->failed) {
    va_list ap;
    va_start(ap, fmt);
    tile_verror(g->e->d, loc, fmt, ap);
    va_end(ap);
  }
  g->failed = true;
  return false;
}

const char *gen_str(Gen *g, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n >= 0 && (s = malloc((size_t)n + 1))) {
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
  }
  if (s && g->nstrs == g->capstrs) {
    int cap = g->capstrs ? 2 * g->capstrs : 64;
    char **p = realloc(g->strs, (size_t)cap * sizeof *p);
    if (p) {
      g->strs = p;
      g->capstrs = cap;
    }
  }
  if (!s || g->nstrs == g->capstrs) {
    free(s);
    g->e->src.oom = true;
    g->failed = true;
    return "0";
  }
  g->strs[g->nstrs++] = s;
  return s;
}

static Scope *scope_new(Gen *g, Scope *parent, bool uniform) {
  Scope *s = calloc(1, sizeof *s);
  if (s && g->nscopes == g->capscopes) {
    int cap = g->capscopes ? 2 * g->capscopes : 16;
    Scope **p = realloc(g->scopes, (size_t)cap * sizeof *p);
    if (p) {
      g->scopes = p;
      g->capscopes = cap;
    }
  }
  if (!s || g->nscopes == g->capscopes) {
    free(s);
    g->e->src.oom = true;
    g->failed = true;
    return parent ? parent : g->root;
  }
  s->parent = parent;
  s->depth = parent ? parent->depth + 1 : 0;
  s->uniform = uniform;
  s->live = true;
  g->scopes[g->nscopes++] = s;
  return s;
}

Scope *gen_root(Gen *g, bool uniform) {
  g->root = scope_new(g, NULL, uniform);
  return g->root;
}

Scope *gen_open(Gen *g, Scope *parent, bool uniform) { return scope_new(g, parent, uniform); }

Buf *gen_text(Scope *s) { return &s->text; }

char *gen_take(Gen *g, Scope *s) {
  for (int i = 0; i < g->nscopes; i++)
    if (g->scopes[i] == s) g->scopes[i] = NULL;
  char *t = s->text.p;
  s->text.p = NULL;
  scope_free(s);
  if (!t) t = calloc(1, 1);
  return t;
}

uint64_t gen_bind_var(Gen *g, Scope *s, const char *name) {
  (void)name;
  if (g->nvars == GEN_MAX_VARS) {
    fail(g, (TileLoc){0}, "internal error: more than %d loop variables in one kernel",
         GEN_MAX_VARS);
    return 0;
  }
  g->var_scope[g->nvars] = s;
  return 1ull << g->nvars++;
}

void gen_set_rows(Gen *g, int64_t cols) {
  g->rows = true;
  g->cols = cols;
}

const char *gen_buffer_arg(Gen *g, int buf) {
  for (int i = 0; i < g->nargs; i++)
    if (g->args[i] == buf) return gen_str(g, "b%d", buf);
  if (g->nargs == GEN_MAX_ARGS) {
    fail(g, (TileLoc){0}, "a kernel of this program reads more than %d buffers", GEN_MAX_ARGS);
    return "b0";
  }
  g->args[g->nargs++] = buf;
  return gen_str(g, "b%d", buf);
}

void gen_params(Gen *g, Buf *out, TileCudaLaunch *l) {
  for (int i = 0; i < g->nargs; i++) {
    const TileCudaBuffer *b = &g->e->p->bufs[g->args[i]];
    buf_printf(out, "%s%s *b%d", i ? ", " : "", ce_storage_type((TileElem)b->elem), g->args[i]);
    l->args[i] = g->args[i];
  }
  l->nargs = g->nargs;
}

/* ---- indices ---- */

static uint64_t idx_vars(const Idx *idx, int n) {
  uint64_t m = 0;
  for (int i = 0; i < n; i++) m |= idx[i].vars;
  return m;
}

/* The scope a value at an index with these variables belongs in. */
static Scope *place(Gen *g, uint64_t vars) {
  Scope *best = g->root;
  for (int i = 0; i < g->nvars; i++)
    if ((vars >> i & 1) && g->var_scope[i] && g->var_scope[i]->depth > best->depth)
      best = g->var_scope[i];
  return best;
}

static const char *idx_key(Gen *g, const Idx *idx, int n) {
  Buf b = {0};
  for (int i = 0; i < n; i++) buf_printf(&b, "%s%s", i ? "," : "", idx[i].e);
  const char *k = gen_str(g, "%s", b.p ? b.p : "");
  buf_free(&b);
  return k;
}

const char *gen_linear(Gen *g, const TileType *t, const Idx *idx) {
  if (t->kind != TILE_TY_TENSOR || t->rank == 0) return "0";
  bool wide = ce_numel(t) > 0x7fffffffLL;
  const char *e = idx[0].e;
  for (int k = 1; k < t->rank; k++)
    e = wide ? gen_str(g, "((long long)(%s) * %lldLL + (%s))", e, (long long)t->dims[k], idx[k].e)
             : gen_str(g, "((%s) * %lld + (%s))", e, (long long)t->dims[k], idx[k].e);
  return e;
}

static Memo *memo_find(Scope *s, const TileValue *v, const char *key) {
  for (int i = 0; i < s->nmemo; i++)
    if (s->memo[i].v == v && strcmp(s->memo[i].key, key) == 0) return &s->memo[i];
  return NULL;
}

static void memo_add(Gen *g, Scope *s, const TileValue *v, const char *key, const char *var) {
  if (s->nmemo == s->cap) {
    int cap = s->cap ? 2 * s->cap : 16;
    Memo *p = realloc(s->memo, (size_t)cap * sizeof *p);
    if (!p) {
      g->e->src.oom = true;
      g->failed = true;
      return;
    }
    s->memo = p;
    s->cap = cap;
  }
  s->memo[s->nmemo++] = (Memo){v, key, var};
}

void gen_seed(Gen *g, Scope *s, const TileValue *v, const Idx *idx, const char *expr) {
  memo_add(g, s, v, idx_key(g, idx, v->type.rank), expr);
}

/* ---- element types ---- */

static TileElem elem_of(const TileValue *v) { return (TileElem)v->type.elem; }
static bool is_float(TileElem e) { return tile_elem_is_float(e); }

/* Rounds a computed value to its element type. */
static const char *fit(Gen *g, TileElem e, const char *x) {
  switch (e) {
  case TILE_ELEM_BF16: return gen_str(g, "tc_rbf(%s)", x);
  case TILE_ELEM_F16: return gen_str(g, "tc_rhf(%s)", x);
  case TILE_ELEM_I8: return gen_str(g, "((int)(signed char)(%s))", x);
  case TILE_ELEM_I1: return gen_str(g, "((%s) & 1)", x);
  default: return x;
  }
}

static const char *literal(Gen *g, TileElem e, double f, int64_t i, bool is_int_attr) {
  if (is_float(e)) {
    double x = is_int_attr ? (double)i : f;
    if (isnan(x)) return "tc_nan()";
    if (isinf(x)) return x > 0 ? "tc_inf()" : "(-tc_inf())";
    char t[48];
    snprintf(t, sizeof t, "%.9g", (double)(float)x);
    bool dot = strpbrk(t, ".en") != NULL;
    return fit(g, e, gen_str(g, "%s%sf", t, dot ? "" : ".0"));
  }
  int64_t v = is_int_attr ? i : (int64_t)f;
  if (e == TILE_ELEM_I64) return gen_str(g, "%lldLL", (long long)v);
  if (e == TILE_ELEM_I1) return v ? "1" : "0";
  if (e == TILE_ELEM_I8) v = (int8_t)v;
  if (v == INT32_MIN) return "(-2147483647 - 1)";
  return gen_str(g, "%d", (int)(int32_t)v);
}

/* A new variable of v's compute type holding expr, in scope s. */
static const char *define(Gen *g, Scope *s, TileElem e, const char *expr) {
  const char *name = gen_str(g, "v%d", g->ntmp++);
  buf_printf(&s->text, "  %s %s = %s;\n", ce_compute_type(e), name, expr);
  return name;
}

static const char *convert(Gen *g, TileElem from, TileElem to, const char *x) {
  if (is_float(to))
    return is_float(from) ? fit(g, to, x) : fit(g, to, gen_str(g, "(float)(%s)", x));
  if (to == TILE_ELEM_I1) return gen_str(g, is_float(from) ? "((%s) != 0.0f)" : "((%s) != 0)", x);
  if (is_float(from)) return fit(g, to, gen_str(g, "(%s)(%s)", ce_compute_type(to), x));
  return fit(g, to, gen_str(g, "(%s)(%s)", ce_compute_type(to), x));
}

/* ---- loads and constants ---- */

static const char *load(Gen *g, Scope *s, const TileValue *v, const Idx *idx, TileLoc loc) {
  int buf = ce_buffer_of(g->e, v);
  if (buf < 0) {
    fail(g, loc, "internal error: value '%s' has no buffer", v->name ? v->name : "?");
    return "0";
  }
  const char *p = gen_buffer_arg(g, buf);
  const char *at = gen_str(g, "%s[%s]", p, gen_linear(g, &v->type, idx));
  Buf b = {0};
  ce_load_expr(&b, elem_of(v), at);
  const char *r = define(g, s, elem_of(v), b.p ? b.p : "0");
  buf_free(&b);
  return r;
}

static const char *constant(Gen *g, Scope *s, const TileValue *v, const Idx *idx) {
  const TileAttr *a = tile_attr_get(&v->def->attrs, "value");
  TileElem e = elem_of(v);
  if (a && (a->kind == TILE_ATTR_INT || a->kind == TILE_ATTR_FLOAT))
    return literal(g, e, a->f, a->i, a->kind == TILE_ATTR_INT);
  /* A dense constant lives in a buffer with its contents. */
  if (ce_buffer_of(g->e, v) < 0) {
    char name[64];
    snprintf(name, sizeof name, "const%d", g->e->p->nbufs);
    int buf = ce_add_buffer(g->e, name, 0, &v->type);
    if (buf < 0 || !ce_map_value(g->e, v, buf)) {
      g->failed = true;
      return "0";
    }
    TileCudaBuffer *cb = &g->e->p->bufs[buf];
    cb->init = calloc(1, (size_t)(cb->bytes ? cb->bytes : 1));
    if (!cb->init || !a || a->kind != TILE_ATTR_ARRAY || a->n != ce_numel(&v->type)) {
      fail(g, v->def->loc, "constant: expected a number or %lld elements",
           (long long)ce_numel(&v->type));
      return "0";
    }
    for (int32_t i = 0; i < a->n; i++) {
      const TileAttr *x = &a->elems[i];
      double f = x->kind == TILE_ATTR_INT ? (double)x->i : x->f;
      int64_t n = x->kind == TILE_ATTR_INT ? x->i : (int64_t)x->f;
      uint8_t *at = cb->init + (size_t)i * (size_t)(cb->bytes / a->n);
      switch (e) {
      case TILE_ELEM_F32: { float y = (float)f; memcpy(at, &y, 4); break; }
      case TILE_ELEM_BF16: { uint16_t y = tile_cuda_f32_to_bf16((float)f); memcpy(at, &y, 2); break; }
      case TILE_ELEM_F16: { uint16_t y = tile_cuda_f32_to_f16((float)f); memcpy(at, &y, 2); break; }
      case TILE_ELEM_I8: { int8_t y = (int8_t)n; memcpy(at, &y, 1); break; }
      case TILE_ELEM_I64: memcpy(at, &n, 8); break;
      default: { int32_t y = e == TILE_ELEM_I1 ? n != 0 : (int32_t)n; memcpy(at, &y, 4); break; }
      }
    }
  }
  return load(g, s, v, idx, v->def->loc);
}

/* ---- ops ---- */

static bool in_group(const Gen *g, const TileOp *op) {
  int64_t id;
  return op && g->group >= 0 && tile_attr_get_int(&op->attrs, "group", &id) && id == g->group;
}

static const char *opnd(Gen *g, Scope *s, const TileOp *op, int i, const Idx *idx) {
  const TileValue *v = op->opnd[i].v;
  /* A scalar operand of a tensor op is read at no index. */
  if (v->type.kind != TILE_TY_TENSOR || v->type.rank == 0) return gen_value(g, s, v, NULL);
  return gen_value(g, s, v, idx);
}

static const char *fmax_or(Gen *g, TileElem e, const char *a, const char *b, bool max) {
  if (is_float(e)) return gen_str(g, "%s(%s, %s)", max ? "tc_fmax" : "tc_fmin", a, b);
  return gen_str(g, "((%s) %s (%s) ? (%s) : (%s))", a, max ? ">" : "<", b, a, b);
}

static const char *unary(Gen *g, int kind, TileElem e, const char *a) {
  bool f = is_float(e);
  switch (kind) {
  case TILE_OP_NEG: return gen_str(g, "(-(%s))", a);
  case TILE_OP_ABS: return f ? gen_str(g, "fabsf(%s)", a) : gen_str(g, "((%s) < 0 ? -(%s) : (%s))", a, a, a);
  case TILE_OP_NOT: return e == TILE_ELEM_I1 ? gen_str(g, "((%s) ^ 1)", a) : gen_str(g, "(~(%s))", a);
  case TILE_OP_EXP: return gen_str(g, "expf(%s)", a);
  case TILE_OP_LOG: return gen_str(g, "logf(%s)", a);
  case TILE_OP_SQRT: return gen_str(g, "sqrtf(%s)", a);
  case TILE_OP_RSQRT: return gen_str(g, "(1.0f / sqrtf(%s))", a);
  case TILE_OP_RECIP: return gen_str(g, "(1.0f / (%s))", a);
  case TILE_OP_TANH: return gen_str(g, "tanhf(%s)", a);
  case TILE_OP_LOGISTIC: return gen_str(g, "(1.0f / (1.0f + expf(-(%s))))", a);
  default: return NULL;
  }
}

static const char *binary(Gen *g, int kind, TileElem e, const char *a, const char *b) {
  bool f = is_float(e);
  switch (kind) {
  case TILE_OP_ADD: return gen_str(g, "(%s + %s)", a, b);
  case TILE_OP_SUB: return gen_str(g, "(%s - %s)", a, b);
  case TILE_OP_MUL: return gen_str(g, "(%s * %s)", a, b);
  case TILE_OP_DIV: return gen_str(g, "(%s / %s)", a, b);
  case TILE_OP_REM: return f ? gen_str(g, "fmodf(%s, %s)", a, b) : gen_str(g, "(%s %% %s)", a, b);
  case TILE_OP_MAX: return fmax_or(g, e, a, b, true);
  case TILE_OP_MIN: return fmax_or(g, e, a, b, false);
  case TILE_OP_POW: return gen_str(g, "powf(%s, %s)", a, b);
  case TILE_OP_AND: return gen_str(g, "(%s & %s)", a, b);
  case TILE_OP_OR: return gen_str(g, "(%s | %s)", a, b);
  case TILE_OP_XOR: return gen_str(g, "(%s ^ %s)", a, b);
  default: return NULL;
  }
}

static const char *compare(Gen *g, const TileOp *op, const char *a, const char *b) {
  static const struct { const char *dir, *c; } dirs[] = {
      {"eq", "=="}, {"ne", "!="}, {"lt", "<"}, {"le", "<="}, {"gt", ">"}, {"ge", ">="}};
  const TileAttr *d = tile_attr_get(&op->attrs, "dir");
  for (size_t i = 0; d && i < sizeof dirs / sizeof dirs[0]; i++)
    if (strcmp(d->s, dirs[i].dir) == 0) return gen_str(g, "((%s) %s (%s))", a, dirs[i].c, b);
  fail(g, op->loc, "compare: unknown direction");
  return "0";
}

static bool int_list(const TileOp *op, const char *name, int64_t *out, int max, int *n) {
  const TileAttr *a = tile_attr_get(&op->attrs, name);
  if (!a || a->kind != TILE_ATTR_ARRAY || a->n > max) return false;
  for (int i = 0; i < a->n; i++) {
    if (a->elems[i].kind != TILE_ATTR_INT) return false;
    out[i] = a->elems[i].i;
  }
  *n = a->n;
  return true;
}

static const char *reduce(Gen *g, Scope *s, const TileOp *op, const Idx *idx) {
  const TileValue *x = op->opnd[0].v, *r = op->res[0];
  const TileAttr *kind = tile_attr_get(&op->attrs, "kind");
  int64_t dims[TILE_MAX_RANK];
  int nd = 0;
  if (!kind || !int_list(op, "dims", dims, TILE_MAX_RANK, &nd)) {
    fail(g, op->loc, "reduce: bad attributes");
    return "0";
  }
  TileElem e = elem_of(r);
  bool f = is_float(e);
  const char *init, *functor;
  if (strcmp(kind->s, "add") == 0) init = f ? "0.0f" : "0", functor = "TcAdd";
  else if (strcmp(kind->s, "mul") == 0) init = f ? "1.0f" : "1", functor = "TcMul";
  else if (strcmp(kind->s, "max") == 0)
    init = f ? "(-tc_inf())" : e == TILE_ELEM_I64 ? "(-9223372036854775807LL - 1)" : "(-2147483647 - 1)",
    functor = "TcMax";
  else if (strcmp(kind->s, "min") == 0)
    init = f ? "tc_inf()" : e == TILE_ELEM_I64 ? "9223372036854775807LL" : "2147483647",
    functor = "TcMin";
  else {
    fail(g, op->loc, "reduce: kind '%s' is not one of add, mul, max, min", kind->s);
    return "0";
  }
  int R = x->type.rank;
  bool reduced[TILE_MAX_RANK] = {0};
  int64_t count = 1;
  for (int i = 0; i < nd; i++) {
    reduced[dims[i]] = true;
    count *= x->type.dims[dims[i]];
  }
  bool block = g->rows && s->uniform && nd == 1 && dims[0] == R - 1 &&
               x->type.dims[R - 1] == g->cols;
  const char *acc = gen_str(g, "acc%d", g->ntmp++);
  const char *ct = ce_compute_type(is_float(e) ? TILE_ELEM_F32 : e);
  buf_printf(&s->text, "  %s %s = %s;\n", ct, acc, init);
  Scope *in = gen_open(g, s, block ? false : s->uniform);
  const char *t = gen_str(g, "t%d", g->ntmp++);
  uint64_t bit = gen_bind_var(g, in, t);
  Idx xi[TILE_MAX_RANK];
  int64_t stride = 1;
  for (int k = R - 1, j = r->type.rank - 1; k >= 0; k--) {
    if (reduced[k]) {
      xi[k].e = gen_str(g, "((%s / %lld) %% %lld)", t, (long long)stride, (long long)x->type.dims[k]);
      if (stride == 1 && nd == 1) xi[k].e = t;
      xi[k].vars = bit;
      stride *= x->type.dims[k];
    } else {
      xi[k] = idx[j--];
    }
  }
  const char *val = gen_value(g, in, x, xi);
  static const struct { const char *functor, *fmt; } comb[] = {
      {"TcAdd", "%s + %s"}, {"TcMul", "%s * %s"}};
  const char *upd = NULL;
  for (size_t i = 0; i < 2; i++)
    if (strcmp(functor, comb[i].functor) == 0) upd = gen_str(g, comb[i].fmt, acc, val);
  if (!upd) upd = fmax_or(g, e, acc, val, strcmp(functor, "TcMax") == 0);
  buf_printf(&in->text, "  %s = %s;\n", acc, upd);
  char *body = gen_take(g, in);
  if (block) {
    buf_printf(&s->text, "  for (int %s = threadIdx.x; %s < %lld; %s += blockDim.x) {\n%s  }\n", t,
               t, (long long)g->cols, t, body);
    buf_printf(&s->text, "  %s = tc_block_reduce(%s, %s(), (%s)%s);\n", acc, acc, functor, ct, init);
  } else {
    buf_printf(&s->text, "  for (long long %s = 0; %s < %lldLL; %s++) {\n%s  }\n", t, t,
               (long long)count, t, body);
  }
  free(body);
  return fit(g, e, acc);
}

/* The operand index of a layout op or gather, or false when op is none of them. */
static const char *layout(Gen *g, Scope *s, const TileOp *op, const Idx *idx) {
  const TileValue *x = op->opnd[0].v, *r = op->res[0];
  Idx xi[TILE_MAX_RANK];
  int64_t a[TILE_MAX_RANK], b[TILE_MAX_RANK];
  int n = 0, nb = 0;
  switch (op->kind) {
  case TILE_OP_BROADCAST:
    if (!int_list(op, "dims", a, TILE_MAX_RANK, &n)) break;
    for (int k = 0; k < x->type.rank; k++) {
      bool one = x->type.dims[k] == 1 && r->type.dims[a[k]] != 1;
      xi[k] = one ? (Idx){"0", 0} : idx[a[k]];
    }
    return gen_value(g, s, x, xi);
  case TILE_OP_TRANSPOSE:
    if (!int_list(op, "perm", a, TILE_MAX_RANK, &n)) break;
    for (int k = 0; k < n; k++) xi[a[k]] = idx[k];
    return gen_value(g, s, x, xi);
  case TILE_OP_RESHAPE: {
    const char *lin = gen_linear(g, &r->type, idx);
    uint64_t vars = idx_vars(idx, r->type.rank);
    int64_t stride = 1;
    for (int k = x->type.rank - 1; k >= 0; k--) {
      xi[k] = (Idx){gen_str(g, "(int)((%s / %lldLL) %% %lldLL)", lin, (long long)stride,
                            (long long)x->type.dims[k]), vars};
      stride *= x->type.dims[k];
    }
    return gen_value(g, s, x, xi);
  }
  case TILE_OP_SLICE: {
    if (!int_list(op, "start", a, TILE_MAX_RANK, &n)) break;
    bool strided = int_list(op, "stride", b, TILE_MAX_RANK, &nb);
    for (int k = 0; k < x->type.rank; k++)
      xi[k] = (Idx){gen_str(g, "(%lld + (%s) * %lld)", (long long)a[k], idx[k].e,
                            (long long)(strided ? b[k] : 1)), idx[k].vars};
    return gen_value(g, s, x, xi);
  }
  case TILE_OP_CONCATENATE: {
    int64_t dim;
    if (!tile_attr_get_int(&op->attrs, "dim", &dim)) break;
    /* Every operand is read at a clamped index, so all reads are in bounds; the
     * index along dim picks one. */
    const char *val = NULL;
    int64_t off = 0;
    for (int i = op->nopnd - 1; i >= 0; i--) {
      off = 0;
      for (int j = 0; j < i; j++) off += op->opnd[j].v->type.dims[dim];
      int64_t size = op->opnd[i].v->type.dims[dim];
      Idx oi[TILE_MAX_RANK];
      memcpy(oi, idx, sizeof(Idx) * (size_t)r->type.rank);
      oi[dim].e = gen_str(g, "tc_clampi((%s) - %lld, %lld)", idx[dim].e, (long long)off, (long long)size);
      const char *v = gen_value(g, s, op->opnd[i].v, oi);
      val = val ? gen_str(g, "((%s) < %lld ? %s : %s)", idx[dim].e, (long long)(off + size), v, val) : v;
    }
    return val;
  }
  case TILE_OP_GATHER: {
    int64_t axis;
    if (!tile_attr_get_int(&op->attrs, "axis", &axis)) break;
    const TileValue *ids = op->opnd[1].v;
    int ri = ids->type.kind == TILE_TY_TENSOR ? ids->type.rank : 0;
    const char *id = gen_value(g, s, ids, idx);
    for (int k = 0; k < x->type.rank; k++) {
      if (k < axis) xi[k] = idx[ri + k];
      else if (k > axis) xi[k] = idx[ri + k - 1];
      else xi[k] = (Idx){gen_str(g, "tc_clampi((int)(%s), %lld)", id, (long long)x->type.dims[k]),
                         idx_vars(idx, ri)};
    }
    return gen_value(g, s, x, xi);
  }
  default: return NULL;
  }
  fail(g, op->loc, "%s: bad attributes", tile_op_name((TileOpKind)op->kind));
  return "0";
}

/* rope of x [..., S, D] with cos, sin [S, D/2]: rotate the halves of each vector. */
static const char *rope(Gen *g, Scope *s, const TileOp *op, const Idx *idx) {
  const TileValue *x = op->opnd[0].v;
  int R = x->type.rank;
  if (R < 2 || x->type.dims[R - 1] % 2) {
    fail(g, op->loc, "rope: needs [..., S, D] with D even");
    return "0";
  }
  int64_t h = x->type.dims[R - 1] / 2;
  const char *d = idx[R - 1].e;
  Idx pi[TILE_MAX_RANK], ci[2];
  memcpy(pi, idx, sizeof(Idx) * (size_t)R);
  pi[R - 1].e = gen_str(g, "((%s) < %lld ? (%s) + %lld : (%s) - %lld)", d, (long long)h, d,
                        (long long)h, d, (long long)h);
  ci[0] = idx[R - 2];
  ci[1] = (Idx){gen_str(g, "((%s) %% %lld)", d, (long long)h), idx[R - 1].vars};
  const char *xv = gen_value(g, s, x, idx);
  const char *xp = gen_value(g, s, x, pi);
  const char *c = gen_value(g, s, op->opnd[1].v, ci);
  const char *sn = gen_value(g, s, op->opnd[2].v, ci);
  return fit(g, elem_of(op->res[0]),
             gen_str(g, "((%s) < %lld ? %s * %s - %s * %s : %s * %s + %s * %s)", d, (long long)h,
                     xv, c, xp, sn, xv, c, xp, sn));
}

static const char *compute(Gen *g, Scope *s, const TileValue *v, const Idx *idx) {
  const TileOp *op = v->def;
  if (!op) return load(g, s, v, idx, v->loc);
  if (op->kind == TILE_OP_CONSTANT) return constant(g, s, v, idx);
  if (op->kind == TILE_OP_IOTA) {
    int64_t dim = 0;
    tile_attr_get_int(&op->attrs, "dim", &dim);
    return convert(g, TILE_ELEM_I32, elem_of(v), idx[dim].e);
  }
  if (!in_group(g, op)) return load(g, s, v, idx, op->loc);
  TileElem e = elem_of(v);
  const char *a, *b, *r;
  switch (op->kind) {
  case TILE_OP_COMPARE:
    a = opnd(g, s, op, 0, idx);
    b = opnd(g, s, op, 1, idx);
    return compare(g, op, a, b);
  case TILE_OP_SELECT:
    r = opnd(g, s, op, 0, idx);
    a = opnd(g, s, op, 1, idx);
    b = opnd(g, s, op, 2, idx);
    return gen_str(g, "((%s) ? (%s) : (%s))", r, a, b);
  case TILE_OP_CONVERT:
    return convert(g, elem_of(op->opnd[0].v), e, opnd(g, s, op, 0, idx));
  case TILE_OP_REDUCE: return reduce(g, s, op, idx);
  case TILE_OP_ROPE: return rope(g, s, op, idx);
  default: break;
  }
  if (op->nopnd == 1 && unary(g, op->kind, e, "x"))
    return fit(g, e, unary(g, op->kind, e, opnd(g, s, op, 0, idx)));
  if (op->nopnd == 2 && binary(g, op->kind, e, "a", "b")) {
    a = opnd(g, s, op, 0, idx);
    b = opnd(g, s, op, 1, idx);
    return fit(g, e, binary(g, op->kind, e, a, b));
  }
  if ((r = layout(g, s, op, idx))) return r;
  fail(g, op->loc, "the CUDA backend cannot compute '%s' inside a fused kernel",
       tile_op_name((TileOpKind)op->kind));
  return "0";
}

const char *gen_value(Gen *g, Scope *cur, const TileValue *v, const Idx *idx) {
  if (g->failed) return "0";
  static const Idx none[1] = {{"0", 0}};
  int rank = v->type.kind == TILE_TY_TENSOR ? v->type.rank : 0;
  if (!idx) idx = none;
  Scope *s = place(g, idx_vars(idx, rank));
  if (s->depth > cur->depth) s = cur; /* cannot happen for indices made here */
  const char *key = idx_key(g, idx, rank);
  for (Scope *t = s; t; t = t->parent) {
    Memo *m = memo_find(t, v, key);
    if (m) return m->var;
  }
  const char *r = compute(g, s, v, idx);
  if (g->failed) return "0";
  /* Literals stay literals; expressions become variables so they are computed once. */
  bool simple = strspn(r, "abcdefghijklmnopqrstuvwxyz0123456789_.-") == strlen(r) ||
                strncmp(r, "tc_inf()", 8) == 0 || strncmp(r, "tc_nan()", 8) == 0;
  const char *var = simple ? r : define(g, s, elem_of(v), r);
  memo_add(g, s, v, key, var);
  return var;
}
