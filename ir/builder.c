/* The builder: IR from C calls (include/tile/builder.h).
 *
 * Every call checks its inputs and reports a malformed request to b->diag instead of
 * crashing: the JIT path feeds it whatever a serving engine computes. An op is made
 * whole (operands, attributes, results, regions, result types from the op's type
 * rule) before it is linked into the block, so a failed call leaves the IR as it was.
 * The arena may keep the pieces of a failed op; nothing points at them. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "tile/builder.h"
#include "tile/verify.h"

/* Deeper attribute nesting than this is taken for a cycle made by hand. */
enum { MAX_ATTR_DEPTH = 32 };

static bool fail(TileBuilder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(TileBuilder *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  tile_verror(&b->diag, (TileLoc){0}, fmt, ap);
  va_end(ap);
  return false;
}

void tile_builder_init(TileBuilder *b, TileModule *m) {
  if (!b) return;
  memset(b, 0, sizeof *b);
  b->m = m;
  tile_diag_init(&b->diag, NULL, "<builder>", NULL, 0);
}

void tile_builder_set_block(TileBuilder *b, TileBlock *blk) {
  if (b) b->block = blk;
}

static bool has_module(TileBuilder *b) {
  if (!b) return false;
  return b->m ? true : fail(b, "the builder has no module (call tile_builder_init with one)");
}

/* The insertion point is set and still open: a yield or return ends a block. */
static bool has_block(TileBuilder *b, const char *what) {
  if (!has_module(b)) return false;
  if (!b->block)
    return fail(b, "%s: no insertion point (set one with tile_builder_set_block)", what);
  const TileOp *last = b->block->last;
  if (last && (last->kind == TILE_OP_YIELD || last->kind == TILE_OP_RETURN))
    return fail(b, "%s: the block already ends with %s; nothing may follow it", what,
                tile_op_name(last->kind));
  return true;
}

/* ---- names, types and attributes ---- */

/* Identifiers of the text format, less those that read as something else. */
static bool valid_ident(const char *s) {
  if (!s || !(s[0] == '_' || (s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
    return false;
  for (const char *c = s; *c; c++)
    if (!(*c == '_' || *c == '.' || (*c >= '0' && *c <= '9') || (*c >= 'A' && *c <= 'Z') ||
          (*c >= 'a' && *c <= 'z')))
      return false;
  return strcmp(s, "inf") != 0 && strcmp(s, "nan") != 0;
}

/* Symbol names: what may follow '@'. */
static bool valid_symbol(const char *s) {
  if (!s || !*s) return false;
  for (const char *c = s; *c; c++)
    if (!(*c == '_' || *c == '.' || (*c >= '0' && *c <= '9') || (*c >= 'A' && *c <= 'Z') ||
          (*c >= 'a' && *c <= 'z')))
      return false;
  return true;
}

static const char *show(const char *s) { return s ? s : "(null)"; }

static bool valid_type(TileBuilder *b, const TileType *t, const char *what) {
  bool shaped = t->kind == TILE_TY_TENSOR || t->kind == TILE_TY_BUFFER;
  switch (t->kind) {
  case TILE_TY_SCALAR:
  case TILE_TY_TENSOR:
  case TILE_TY_BUFFER:
    if (t->elem == TILE_ELEM_NONE || t->elem >= TILE_ELEM_COUNT)
      return fail(b, "%s: element type %d is not one of the element types", what, t->elem);
    break;
  case TILE_TY_SEM:
  case TILE_TY_TOKEN: return true;
  default: return fail(b, "%s: the type is unset (kind %d)", what, t->kind);
  }
  if (!shaped) return true;
  if (t->kind == TILE_TY_BUFFER && t->space >= TILE_SPACE_COUNT)
    return fail(b, "%s: memory space %d is not hbm, vmem or smem", what, t->space);
  int min_rank = t->kind == TILE_TY_BUFFER ? 1 : 0;
  if (t->rank < min_rank || t->rank > TILE_MAX_RANK)
    return fail(b, "%s: rank %d is outside %d to %d", what, t->rank, min_rank, TILE_MAX_RANK);
  for (int i = 0; i < t->rank; i++)
    if (t->dims[i] <= 0)
      return fail(b, "%s: dimension %d is %lld; dimensions must be positive", what, i,
                  (long long)t->dims[i]);
  return true;
}

/* Copies an attribute value into the arena, checking that it prints as text that
 * reads back as the same value. */
static bool copy_attr(TileBuilder *b, const TileAttr *src, TileAttr *dst, const char *what,
                      int depth) {
  if (depth > MAX_ATTR_DEPTH)
    return fail(b, "%s: attribute nested deeper than %d levels", what, MAX_ATTR_DEPTH);
  *dst = *src;
  switch (src->kind) {
  case TILE_ATTR_INT:
  case TILE_ATTR_FLOAT:
  case TILE_ATTR_NONE: return true;
  case TILE_ATTR_STRING:
    if (!src->s) return fail(b, "%s: string attribute with no text", what);
    break;
  case TILE_ATTR_IDENT:
    if (!valid_ident(src->s))
      return fail(b, "%s: '%s' is not an identifier ([A-Za-z_][A-Za-z0-9_.]*)", what,
                  show(src->s));
    break;
  case TILE_ATTR_SYMBOL:
    if (!valid_symbol(src->s))
      return fail(b, "%s: '@%s' is not a symbol (@[A-Za-z0-9_.]+)", what, show(src->s));
    break;
  case TILE_ATTR_ARRAY:
  case TILE_ATTR_TUPLE:
    if (src->n < 0 || (src->n > 0 && !src->elems))
      return fail(b, "%s: %s of %d elements with no elements", what,
                  src->kind == TILE_ATTR_ARRAY ? "array" : "tuple", src->n);
    dst->elems = src->n ? tile_alloc(b->m, (size_t)src->n * sizeof *dst->elems) : NULL;
    for (int i = 0; i < src->n; i++)
      if (!copy_attr(b, &src->elems[i], &dst->elems[i], what, depth + 1)) return false;
    return true;
  default: return fail(b, "%s: attribute kind %d is unknown", what, src->kind);
  }
  dst->s = tile_strdup(b->m, src->s, strlen(src->s));
  return true;
}

static bool copy_dict(TileBuilder *b, int n, const TileNamedAttr *items, TileAttrDict *out,
                      const char *what) {
  out->n = 0;
  out->items = NULL;
  if (n < 0 || (n > 0 && !items)) return fail(b, "%s: %d attributes with no array", what, n);
  if (n == 0) return true;
  out->items = tile_alloc(b->m, (size_t)n * sizeof *out->items);
  for (int i = 0; i < n; i++) {
    const char *name = items[i].name;
    if (!valid_ident(name))
      return fail(b, "%s: attribute name '%s' is not an identifier", what, show(name));
    for (int j = 0; j < i; j++)
      if (strcmp(items[j].name, name) == 0)
        return fail(b, "%s: attribute '%s' given twice", what, name);
    char ctx[160];
    snprintf(ctx, sizeof ctx, "%s: attribute '%s'", what, name);
    if (!copy_attr(b, &items[i].val, &out->items[i].val, ctx, 0)) return false;
    out->items[i].name = tile_strdup(b->m, name, strlen(name));
  }
  out->n = n;
  return true;
}

/* Sets one attribute of a dictionary, replacing one of the same name. */
static void dict_set(TileBuilder *b, TileAttrDict *d, const char *name, TileAttr val,
                     const char *what) {
  if (!valid_ident(name)) {
    fail(b, "%s: attribute name '%s' is not an identifier", what, show(name));
    return;
  }
  char ctx[160];
  snprintf(ctx, sizeof ctx, "%s: attribute '%s'", what, name);
  TileAttr copy;
  if (!copy_attr(b, &val, &copy, ctx, 0)) return;
  for (int i = 0; i < d->n; i++)
    if (strcmp(d->items[i].name, name) == 0) {
      d->items[i].val = copy;
      return;
    }
  TileNamedAttr *items = tile_alloc(b->m, (size_t)(d->n + 1) * sizeof *items);
  if (d->n) memcpy(items, d->items, (size_t)d->n * sizeof *items);
  items[d->n] = (TileNamedAttr){tile_strdup(b->m, name, strlen(name)), copy};
  d->items = items;
  d->n++;
}

static bool func_in_module(const TileModule *m, const TileFunc *f) {
  for (const TileFunc *g = m->funcs; g; g = g->next)
    if (g == f) return true;
  return false;
}

/* ---- meshes and functions ---- */

TileMesh *tile_build_mesh(TileBuilder *b, const char *name, int rank, const int64_t *dims,
                          int naxes, const char *const *axis_names) {
  if (!has_module(b)) return NULL;
  if (!valid_symbol(name)) {
    fail(b, "mesh: '@%s' is not a symbol name", show(name));
    return NULL;
  }
  if (tile_module_find_mesh(b->m, name)) {
    fail(b, "mesh @%s: a mesh of that name already exists", name);
    return NULL;
  }
  if (rank < 1 || rank > TILE_MAX_RANK || !dims) {
    fail(b, "mesh @%s: a torus has 1 to %d dims, got %d", name, TILE_MAX_RANK, rank);
    return NULL;
  }
  if (naxes != rank || !axis_names) {
    fail(b, "mesh @%s: needs one axis name per torus dim (%d), got %d", name, rank, naxes);
    return NULL;
  }
  for (int i = 0; i < rank; i++) {
    if (dims[i] <= 0) {
      fail(b, "mesh @%s: torus dim %d is %lld; dims must be positive", name, i,
           (long long)dims[i]);
      return NULL;
    }
    if (!valid_ident(axis_names[i])) {
      fail(b, "mesh @%s: axis name '%s' is not an identifier", name, show(axis_names[i]));
      return NULL;
    }
    for (int j = 0; j < i; j++)
      if (strcmp(axis_names[j], axis_names[i]) == 0) {
        fail(b, "mesh @%s: axis '%s' named twice", name, axis_names[i]);
        return NULL;
      }
  }
  TileMesh *mesh = tile_alloc(b->m, sizeof *mesh);
  mesh->name = tile_strdup(b->m, name, strlen(name));
  mesh->rank = rank;
  mesh->naxes = naxes;
  for (int i = 0; i < rank; i++) {
    mesh->dims[i] = dims[i];
    TileMeshAxis *ax = &mesh->axes[i];
    ax->name = tile_strdup(b->m, axis_names[i], strlen(axis_names[i]));
    ax->size = dims[i];
    ax->ndims = 1;
    ax->dims[0] = i;
  }
  TileMesh **tail = &b->m->meshes;
  while (*tail) tail = &(*tail)->next;
  *tail = mesh;
  return mesh;
}

TileFunc *tile_build_func(TileBuilder *b, const char *name, bool is_kernel, int nargs,
                          const TileType *arg_types) {
  if (!has_module(b)) return NULL;
  const char *what = is_kernel ? "kernel" : "func";
  if (!valid_symbol(name)) {
    fail(b, "%s: '@%s' is not a symbol name", what, show(name));
    return NULL;
  }
  if (tile_module_find_func(b->m, name)) {
    fail(b, "%s @%s: a function of that name already exists", what, name);
    return NULL;
  }
  if (nargs < 0 || (nargs > 0 && !arg_types)) {
    fail(b, "%s @%s: %d parameters with no types", what, name, nargs);
    return NULL;
  }
  for (int i = 0; i < nargs; i++) {
    char ctx[160];
    snprintf(ctx, sizeof ctx, "%s @%s: parameter %d", what, name, i + 1);
    if (!valid_type(b, &arg_types[i], ctx)) return NULL;
  }
  TileFunc *f = tile_alloc(b->m, sizeof *f);
  f->name = tile_strdup(b->m, name, strlen(name));
  f->is_kernel = is_kernel;
  TileBlock *body = tile_alloc(b->m, sizeof *body);
  body->func = f;
  body->nargs = nargs;
  if (nargs > 0) {
    body->args = tile_alloc(b->m, (size_t)nargs * sizeof *body->args);
    f->arg_attrs = tile_alloc(b->m, (size_t)nargs * sizeof *f->arg_attrs);
  }
  for (int i = 0; i < nargs; i++) {
    TileValue *v = tile_alloc(b->m, sizeof *v);
    v->type = arg_types[i];
    v->block = body;
    v->index = i;
    body->args[i] = v;
  }
  f->body = body;
  TileFunc **tail = &b->m->funcs;
  while (*tail) tail = &(*tail)->next;
  *tail = f;
  b->block = body;
  return f;
}

void tile_build_arg_attr(TileBuilder *b, TileFunc *f, int arg, const char *name, TileAttr val) {
  if (!has_module(b)) return;
  if (!f || !func_in_module(b->m, f)) {
    fail(b, "arg attribute: the function is not in the builder's module");
    return;
  }
  if (arg < 0 || !f->body || arg >= f->body->nargs) {
    int n = f->body ? f->body->nargs : 0;
    fail(b, "@%s: parameter index %d is out of range (it has %d parameter%s)", f->name, arg, n,
         n == 1 ? "" : "s");
    return;
  }
  char what[160];
  snprintf(what, sizeof what, "@%s parameter %d", f->name, arg + 1);
  dict_set(b, &f->arg_attrs[arg], name, val, what);
}

void tile_build_func_attr(TileBuilder *b, TileFunc *f, const char *name, TileAttr val) {
  if (!has_module(b)) return;
  if (!f || !func_in_module(b->m, f)) {
    fail(b, "func attribute: the function is not in the builder's module");
    return;
  }
  char what[160];
  snprintf(what, sizeof what, "@%s", f->name);
  dict_set(b, &f->attrs, name, val, what);
}

/* ---- ops ---- */

/* Checks the operand count against the signature letters (a letter then '*' repeats
 * zero or more times, then '?' is optional; repeats only end a signature), and that
 * exactly the 'a' operands are buffer accesses. */
static bool check_operands(TileBuilder *b, TileOpKind kind, int nopnd, const TileUse *opnds) {
  const char *name = tile_op_name(kind), *sig = tile_op_info[kind].operands;
  int min = 0, max = 0;
  for (const char *c = sig; *c; c++) {
    if (c[1] == '*') max = 1 << 30, c++;
    else if (c[1] == '?') max++, c++;
    else min++, max++;
  }
  if (nopnd < min || nopnd > max) {
    if (min == max) return fail(b, "%s: takes %d operands, got %d", name, min, nopnd);
    if (max >= 1 << 30) return fail(b, "%s: takes at least %d operands, got %d", name, min, nopnd);
    return fail(b, "%s: takes %d to %d operands, got %d", name, min, max, nopnd);
  }
  const char *c = sig;
  for (int i = 0; i < nopnd; i++) {
    const TileUse *u = &opnds[i];
    char letter = *c;
    if (c[1] == '?') c += 2;
    else if (c[1] != '*') c++;
    if (!u->v) return fail(b, "%s: operand %d is NULL", name, i + 1);
    if (u->v->type.kind == TILE_TY_NONE)
      return fail(b, "%s: operand %d has no type (a value from a failed build?)", name, i + 1);
    if (letter == 'a' && !u->has_idx)
      return fail(b, "%s: operand %d must be a buffer access (has_idx with indices)", name,
                  i + 1);
    if (letter != 'a' && u->has_idx)
      return fail(b, "%s: operand %d is a whole value, not a buffer access", name, i + 1);
    if (u->has_idx && (u->nidx < 0 || (u->nidx > 0 && !u->idx)))
      return fail(b, "%s: operand %d has %d indices with no array", name, i + 1, u->nidx);
    for (int j = 0; u->has_idx && j < u->nidx; j++)
      if (u->idx[j].v && u->idx[j].v->type.kind != TILE_TY_SCALAR)
        return fail(b, "%s: index %d of operand %d is not a scalar", name, j + 1, i + 1);
  }
  return true;
}

/* The callee's result count, for a call whose count the caller left to the builder. */
static int callee_nret(TileBuilder *b, int nattr, const TileNamedAttr *attrs) {
  for (int i = 0; attrs && i < nattr; i++)
    if (attrs[i].name && strcmp(attrs[i].name, "callee") == 0) {
      const TileAttr *a = &attrs[i].val;
      if (a->kind != TILE_ATTR_SYMBOL || !a->s) break;
      const TileFunc *f = tile_module_find_func(b->m, a->s);
      if (!f) {
        fail(b, "call: no function @%s in the module", a->s);
        return -1;
      }
      return f->nret;
    }
  fail(b, "call: needs a callee attribute (a symbol)");
  return -1;
}

/* The op's result count: fixed by the table, one per init for `for`, else given.
 * nres < 0 asks for the count the op implies. */
static int result_count(TileBuilder *b, TileOpKind kind, int nopnd, int nattr,
                        const TileNamedAttr *attrs, int nres) {
  const char *name = tile_op_name(kind);
  int fixed = tile_op_info[kind].nres;
  if (kind == TILE_OP_FOR) fixed = nopnd;
  if (fixed >= 0) {
    if (nres >= 0 && nres != fixed) {
      fail(b, "%s: has %d results, asked for %d", name, fixed, nres);
      return -1;
    }
    return fixed;
  }
  if (nres >= 0) return nres;
  if (kind == TILE_OP_CALL) return callee_nret(b, nattr, attrs);
  return 0; /* an if with no results */
}

static TileBlock *new_region(TileBuilder *b, TileOp *op, int nargs, const TileType *types) {
  TileBlock *blk = tile_alloc(b->m, sizeof *blk);
  blk->parent = op;
  blk->nargs = nargs;
  if (nargs > 0) blk->args = tile_alloc(b->m, (size_t)nargs * sizeof *blk->args);
  for (int i = 0; i < nargs; i++) {
    TileValue *v = tile_alloc(b->m, sizeof *v);
    v->type = types[i];
    v->block = blk;
    v->index = i;
    blk->args[i] = v;
  }
  return blk;
}

/* Regions of the structured ops: for's body takes the i32 induction variable and one
 * argument per carried value; if has a then and an else block. */
static void make_regions(TileBuilder *b, TileOp *op) {
  if (op->kind == TILE_OP_FOR) {
    TileType *types = tile_alloc(b->m, (size_t)(op->nopnd + 1) * sizeof *types);
    types[0] = tile_type_scalar(TILE_ELEM_I32);
    for (int i = 0; i < op->nopnd; i++) types[i + 1] = op->opnd[i].v->type;
    op->nregion = 1;
    op->region = tile_alloc(b->m, sizeof *op->region);
    op->region[0] = new_region(b, op, op->nopnd + 1, types);
  } else if (op->kind == TILE_OP_IF) {
    op->nregion = 2;
    op->region = tile_alloc(b->m, 2 * sizeof *op->region);
    op->region[0] = new_region(b, op, 0, NULL);
    op->region[1] = new_region(b, op, 0, NULL);
  }
}

static void copy_operands(TileBuilder *b, TileOp *op, int nopnd, const TileUse *opnds) {
  op->nopnd = nopnd;
  if (nopnd == 0) return;
  op->opnd = tile_alloc(b->m, (size_t)nopnd * sizeof *op->opnd);
  for (int i = 0; i < nopnd; i++) {
    TileUse *u = &op->opnd[i];
    *u = opnds[i];
    u->idx = NULL;
    if (!u->has_idx) u->nidx = 0;
    if (u->nidx > 0) {
      u->idx = tile_alloc(b->m, (size_t)u->nidx * sizeof *u->idx);
      memcpy(u->idx, opnds[i].idx, (size_t)u->nidx * sizeof *u->idx);
    }
  }
}

/* Fills the result types the caller left open from the op's type rule. */
static bool infer_results(TileBuilder *b, TileOp *op, bool given) {
  int n = op->nres;
  TileType *out = calloc((size_t)n + 1, sizeof *out);
  bool *inferred = calloc((size_t)n + 1, sizeof *inferred);
  if (!out || !inferred) abort();
  bool ok = tile_infer_types(b->m, op, out, inferred, &b->diag);
  for (int i = 0; ok && !given && i < n; i++) {
    if (!inferred[i] || out[i].kind == TILE_TY_NONE)
      ok = fail(b, "%s: the type of result %d cannot be inferred; give the result types",
                tile_op_name(op->kind), i + 1);
    else
      op->res[i]->type = out[i];
  }
  free(out);
  free(inferred);
  return ok;
}

TileOp *tile_build_op(TileBuilder *b, TileOpKind kind, int nopnd, const TileUse *opnds,
                      int nattr, const TileNamedAttr *attrs, int nres, const TileType *res_types) {
  if ((unsigned)kind >= TILE_OP_COUNT) {
    if (has_module(b)) fail(b, "op kind %d is not in the op table", (int)kind);
    return NULL;
  }
  const char *name = tile_op_name(kind);
  if (!has_block(b, name)) return NULL;
  if (nopnd < 0 || (nopnd > 0 && !opnds)) {
    fail(b, "%s: %d operands with no array", name, nopnd);
    return NULL;
  }
  if (!check_operands(b, kind, nopnd, opnds)) return NULL;
  nres = result_count(b, kind, nopnd, nattr, attrs, nres);
  if (nres < 0) return NULL;
  for (int i = 0; res_types && i < nres; i++) {
    char ctx[160];
    snprintf(ctx, sizeof ctx, "%s: result %d", name, i + 1);
    if (!valid_type(b, &res_types[i], ctx)) return NULL;
    if (kind == TILE_OP_FOR && !tile_type_eq(&res_types[i], &opnds[i].v->type)) {
      fail(b, "for: result %d must have the type of its init value", i + 1);
      return NULL;
    }
  }

  TileOp *op = tile_alloc(b->m, sizeof *op);
  op->kind = (uint16_t)kind;
  op->block = b->block; /* for type rules that look at the enclosing op or function */
  copy_operands(b, op, nopnd, opnds);
  if (!copy_dict(b, nattr, attrs, &op->attrs, name)) return NULL;
  op->nres = nres;
  if (nres > 0) op->res = tile_alloc(b->m, (size_t)nres * sizeof *op->res);
  for (int i = 0; i < nres; i++) {
    TileValue *v = tile_alloc(b->m, sizeof *v);
    v->def = op;
    v->index = i;
    if (res_types) v->type = res_types[i];
    else if (kind == TILE_OP_FOR) v->type = opnds[i].v->type;
    op->res[i] = v;
  }
  make_regions(b, op);
  if (!infer_results(b, op, res_types != NULL || kind == TILE_OP_FOR)) return NULL;

  TileBlock *blk = b->block;
  op->prev = blk->last;
  if (blk->last) blk->last->next = op;
  else blk->first = op;
  blk->last = op;
  return op;
}

TileValue *tile_build1(TileBuilder *b, TileOpKind kind, int nopnd, TileValue *const *opnds,
                       const TileAttrDict *attrs, const TileType *res_type) {
  if (!has_module(b)) return NULL;
  if (nopnd < 0 || (nopnd > 0 && !opnds)) {
    fail(b, "%s: %d operands with no array", tile_op_name(kind), nopnd);
    return NULL;
  }
  TileUse *uses = calloc((size_t)nopnd + 1, sizeof *uses);
  if (!uses) abort();
  for (int i = 0; i < nopnd; i++) uses[i].v = opnds[i];
  TileOp *op = tile_build_op(b, kind, nopnd, uses, attrs ? attrs->n : 0,
                             attrs ? attrs->items : NULL, 1, res_type);
  free(uses);
  return op ? op->res[0] : NULL;
}

TileOp *tile_build_for(TileBuilder *b, int64_t lower, int64_t upper, int64_t step, int ninit,
                       TileValue *const *init) {
  if (!has_module(b)) return NULL;
  if (step < 1) {
    fail(b, "for: step is %lld; it must be positive", (long long)step);
    return NULL;
  }
  if (ninit < 0 || (ninit > 0 && !init)) {
    fail(b, "for: %d init values with no array", ninit);
    return NULL;
  }
  TileNamedAttr bounds[3] = {{"lower", tile_attr_int(lower)},
                             {"upper", tile_attr_int(upper)},
                             {"step", tile_attr_int(step)}};
  TileUse *uses = calloc((size_t)ninit + 1, sizeof *uses);
  if (!uses) abort();
  for (int i = 0; i < ninit; i++) uses[i].v = init[i];
  TileOp *op = tile_build_op(b, TILE_OP_FOR, ninit, uses, 3, bounds, ninit, NULL);
  free(uses);
  return op;
}

TileOp *tile_build_if(TileBuilder *b, TileValue *cond, int nres, const TileType *res_types) {
  if (!has_module(b)) return NULL;
  if (nres < 0 || (nres > 0 && !res_types)) {
    fail(b, "if: %d results with no types; an if's result types are given", nres);
    return NULL;
  }
  TileUse use = {.v = cond};
  return tile_build_op(b, TILE_OP_IF, 1, &use, 0, NULL, nres, res_types);
}

/* Builds a yield or return of n plain values. */
static TileOp *build_terminator(TileBuilder *b, TileOpKind kind, int n, TileValue *const *vals) {
  TileUse *uses = calloc((size_t)n + 1, sizeof *uses);
  if (!uses) abort();
  for (int i = 0; i < n; i++) uses[i].v = vals[i];
  TileOp *op = tile_build_op(b, kind, n, uses, 0, NULL, 0, NULL);
  free(uses);
  return op;
}

static bool check_values(TileBuilder *b, const char *what, int n, TileValue *const *vals) {
  if (n < 0 || (n > 0 && !vals)) return fail(b, "%s: %d values with no array", what, n);
  for (int i = 0; i < n; i++)
    if (!vals[i]) return fail(b, "%s: value %d is NULL", what, i + 1);
  return true;
}

bool tile_build_return(TileBuilder *b, int n, TileValue *const *vals) {
  if (!has_block(b, "return") || !check_values(b, "return", n, vals)) return false;
  TileFunc *f = b->block->func;
  if (!f) return fail(b, "return: the insertion point is not a function body");
  if (f->is_kernel && n > 0) return fail(b, "return: kernel @%s returns nothing", f->name);
  bool set_ret = f->nret == 0 && n > 0;
  if (set_ret) {
    f->ret = tile_alloc(b->m, (size_t)n * sizeof *f->ret);
    for (int i = 0; i < n; i++) f->ret[i] = vals[i]->type;
    f->nret = n;
  } else if (f->nret != n) {
    return fail(b, "return: @%s returns %d values, got %d", f->name, f->nret, n);
  } else {
    for (int i = 0; i < n; i++)
      if (!tile_type_eq(&f->ret[i], &vals[i]->type)) {
        char want[128], got[128];
        tile_type_format(&f->ret[i], want, sizeof want);
        tile_type_format(&vals[i]->type, got, sizeof got);
        return fail(b, "return: result %d of @%s is %s, got %s", i + 1, f->name, want, got);
      }
  }
  if (build_terminator(b, TILE_OP_RETURN, n, vals)) return true;
  if (set_ret) { /* leave the function as it was */
    f->ret = NULL;
    f->nret = 0;
  }
  return false;
}

bool tile_build_yield(TileBuilder *b, int n, TileValue *const *vals) {
  if (!has_block(b, "yield") || !check_values(b, "yield", n, vals)) return false;
  const TileOp *parent = b->block->parent;
  if (!parent) return fail(b, "yield: the insertion point is not the region of a for or if");
  const char *pname = tile_op_name(parent->kind);
  if (parent->nres != n)
    return fail(b, "yield: the %s has %d results, got %d values", pname, parent->nres, n);
  for (int i = 0; i < n; i++)
    if (!tile_type_eq(&parent->res[i]->type, &vals[i]->type)) {
      char want[128], got[128];
      tile_type_format(&parent->res[i]->type, want, sizeof want);
      tile_type_format(&vals[i]->type, got, sizeof got);
      return fail(b, "yield: result %d of the %s is %s, got %s", i + 1, pname, want, got);
    }
  return build_terminator(b, TILE_OP_YIELD, n, vals) != NULL;
}
