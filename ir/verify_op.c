/* The checks on one op by itself, driven by its row of the op table: operand count
 * and kinds (with buffer accesses), attributes against the attribute spec, result
 * count, then the op's type rule and the comparison of inferred with declared result
 * types, and the sharding of its result. The builder runs these through
 * tile_infer_types before it links an op; the module verifier runs them on every op
 * and adds what needs the op's surroundings (verify.c). */
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"
#include "tile/verify.h"

/* ---- operand signatures ---- */

static const struct {
  char letter;
  const char *desc;
} operand_kinds[] = {
    {'v', "a tensor or scalar"}, {'t', "a tensor"},    {'s', "a scalar"},
    {'i', "an integer scalar"},  {'b', "a buffer"},    {'a', "a buffer access"},
    {'m', "a semaphore"},        {'k', "a DMA token"},
};

static const char *operand_desc(char letter) {
  for (size_t i = 0; i < sizeof operand_kinds / sizeof operand_kinds[0]; i++)
    if (operand_kinds[i].letter == letter) return operand_kinds[i].desc;
  return "an operand";
}

static bool operand_kind_ok(char letter, const TileType *t) {
  switch (letter) {
  case 'v': return type_is_value(t);
  case 't': return t->kind == TILE_TY_TENSOR;
  case 's': return t->kind == TILE_TY_SCALAR;
  case 'i': return t->kind == TILE_TY_SCALAR && elem_is_int(t->elem);
  case 'a':
  case 'b': return t->kind == TILE_TY_BUFFER;
  case 'm': return t->kind == TILE_TY_SEM;
  case 'k': return t->kind == TILE_TY_TOKEN;
  default: return false;
  }
}

/* A buffer access: one index per buffer dim, each an integer scalar or a constant
 * inside the dim. Errors stand at the operand, or at the index they are about. */
static bool check_access(RuleCtx *c, int i) {
  const TileUse *u = &c->op->opnd[i];
  const TileType *b = &u->v->type;
  TileLoc at = opnd_loc(c, i);
  if (!u->has_idx)
    return rule_error_at(c, at, "operand %d must be a buffer access with one index per dim, "
                         "like %%buf[0, 0]; got the whole %s", i + 1, TY(b));
  if (u->nidx != b->rank || (u->nidx > 0 && !u->idx))
    return rule_error_at(c, at, "operand %d has %d indices for %s of rank %d", i + 1, u->nidx,
                         TY(b), b->rank);
  bool ok = true;
  for (int j = 0; j < u->nidx; j++) {
    const TileIndex *ix = &u->idx[j];
    TileLoc ix_at = verify_loc(ix->loc, at);
    if (ix->v) {
      if (ix->v->type.kind != TILE_TY_SCALAR || !elem_is_int(ix->v->type.elem))
        ok = rule_error_at(c, ix_at, "index %d of operand %d must be an integer scalar, got %s",
                           j + 1, i + 1, TY(&ix->v->type));
    } else if (ix->c < 0 || ix->c >= b->dims[j]) {
      ok = rule_error_at(c, ix_at, "index %d of operand %d is %lld, outside [0, %lld) of %s", j + 1,
                         i + 1, (long long)ix->c, (long long)b->dims[j], TY(b));
    }
  }
  return ok;
}

static bool check_operand(RuleCtx *c, int i, char letter) {
  const TileUse *u = &c->op->opnd[i];
  TileLoc at = opnd_loc(c, i);
  if (!u->v) return rule_error_at(c, at, "operand %d is missing (no value)", i + 1);
  const TileType *t = &u->v->type;
  char why[120];
  if (!rule_type_is_valid(t, why, sizeof why))
    return rule_error_at(c, at, "operand %d has a malformed type: %s", i + 1, why);
  if (!operand_kind_ok(letter, t))
    return rule_error_at(c, at, "operand %d must be %s, got %s", i + 1, operand_desc(letter),
                         TY(t));
  if (letter == 'a') return check_access(c, i);
  if (u->has_idx)
    return rule_error_at(c, at, "operand %d takes no index list; only buffer operands of tile "
                         "ops are accessed at indices", i + 1);
  return true;
}

static const char *plural(int n, const char *one, const char *many) { return n == 1 ? one : many; }

/* Matches operands to the signature: a plain letter takes one operand, `x?` one if
 * enough remain for the plain letters after it, `x*` all but those. */
static bool check_operands(RuleCtx *c) {
  const TileOp *op = c->op;
  const char *sig = tile_op_info[op->kind].operands;
  int min = 0, max = 0;
  bool unbounded = false;
  for (const char *p = sig; *p; p++) {
    char q = p[1];
    if (q == '*') {
      unbounded = true;
    } else {
      max++;
      if (q != '?') min++;
    }
    if (q == '*' || q == '?') p++;
  }
  int n = op->nopnd;
  if (n > 0 && !op->opnd) return rule_error(c, "has %d operands but no operand array", n);
  if (n < min || (!unbounded && n > max)) {
    if (unbounded) return rule_error(c, "takes %d or more operands, got %d", min, n);
    if (min == max)
      return rule_error(c, "takes %d %s, got %d", min, plural(min, "operand", "operands"), n);
    return rule_error(c, "takes %d to %d operands, got %d", min, max, n);
  }
  bool ok = true;
  int i = 0, left_plain = min;
  for (const char *p = sig; *p; p++) {
    char q = p[1] == '*' || p[1] == '?' ? p[1] : 0;
    int take = 1;
    if (q == '?')
      take = n - i > left_plain ? 1 : 0;
    else if (q == '*')
      take = n - i - left_plain;
    else
      left_plain--;
    for (int k = 0; k < take; k++, i++)
      if (!check_operand(c, i, *p)) ok = false;
    if (q) p++;
  }
  return ok;
}

/* ---- attribute specs, parsed once from the op table ---- */

typedef enum AttrKind {
  AK_INT,
  AK_FLOAT,
  AK_NUM,
  AK_STR,
  AK_IDENT,
  AK_ARRAY,
  AK_INTS,
  AK_AXES,
  AK_SYM,
  AK_SHARD,
  AK_ANY,
  AK_COUNT
} AttrKind;

static const struct {
  const char *name, *desc;
} attr_kinds[AK_COUNT] = {
    [AK_INT] = {"int", "an integer"},
    [AK_FLOAT] = {"float", "a float"},
    [AK_NUM] = {"num", "a number"},
    [AK_STR] = {"str", "a string"},
    [AK_IDENT] = {"ident", "an identifier"},
    [AK_ARRAY] = {"array", "an array"},
    [AK_INTS] = {"ints", "an array of integers"},
    [AK_AXES] = {"axes", "an array of mesh axis names"},
    [AK_SYM] = {"sym", "a symbol like @name"},
    [AK_SHARD] = {"shard", "a sharding like [-, x]"},
    [AK_ANY] = {"any", "a value"},
};

static const char *const value_desc[] = {
    [TILE_ATTR_INT] = "an integer",  [TILE_ATTR_FLOAT] = "a float",
    [TILE_ATTR_STRING] = "a string", [TILE_ATTR_IDENT] = "an identifier",
    [TILE_ATTR_NONE] = "'-'",        [TILE_ATTR_ARRAY] = "an array",
    [TILE_ATTR_TUPLE] = "a tuple",   [TILE_ATTR_SYMBOL] = "a symbol",
};

enum { MAX_OP_ATTRS = 8, MAX_ATTR_NAME = 24 };

typedef struct AttrSpec {
  char name[MAX_ATTR_NAME];
  uint8_t kind; /* AttrKind */
  bool optional;
} AttrSpec;

typedef struct OpSpec {
  int n;
  AttrSpec a[MAX_OP_ATTRS];
} OpSpec;

static OpSpec specs[TILE_OP_COUNT];
static atomic_int specs_state; /* 0 not parsed, 1 being parsed, 2 ready */

/* The op table is part of the program, so a malformed spec is a bug in it, caught
 * by the first verification any test runs. */
static void bad_spec(int op, const char *why) {
  fprintf(stderr, "tilec: op table: attribute spec of '%s' (\"%s\"): %s\n", tile_op_name(op),
          tile_op_info[op].attrs, why);
  abort();
}

static void parse_spec(int op) {
  OpSpec *s = &specs[op];
  for (const char *p = tile_op_info[op].attrs; *p;) {
    if (*p == ' ') {
      p++;
      continue;
    }
    const char *end = p + strcspn(p, " ");
    const char *colon = memchr(p, ':', (size_t)(end - p));
    if (!colon) bad_spec(op, "an entry has no ':kind'");
    if (s->n == MAX_OP_ATTRS) bad_spec(op, "too many attributes");
    AttrSpec *a = &s->a[s->n++];
    size_t len = (size_t)(colon - p);
    a->optional = len > 0 && colon[-1] == '?';
    if (a->optional) len--;
    if (len == 0 || len >= MAX_ATTR_NAME) bad_spec(op, "an attribute name is empty or too long");
    memcpy(a->name, p, len);
    size_t klen = (size_t)(end - colon - 1);
    int k = 0;
    while (k < AK_COUNT && !(strlen(attr_kinds[k].name) == klen &&
                             memcmp(attr_kinds[k].name, colon + 1, klen) == 0))
      k++;
    if (k == AK_COUNT) bad_spec(op, "unknown attribute kind");
    a->kind = (uint8_t)k;
    p = end;
  }
}

static const OpSpec *op_spec(int op) {
  if (atomic_load_explicit(&specs_state, memory_order_acquire) != 2) {
    int expect = 0;
    if (atomic_compare_exchange_strong(&specs_state, &expect, 1)) {
      for (int k = 0; k < TILE_OP_COUNT; k++) parse_spec(k);
      atomic_store_explicit(&specs_state, 2, memory_order_release);
    } else {
      while (atomic_load_explicit(&specs_state, memory_order_acquire) != 2) sched_yield();
    }
  }
  return &specs[op];
}

/* Whether a value has the shape of a sharding: entries '-', an axis, or a tuple of
 * axes. Its fit to a type and a mesh is checked with the type (sharding.c). */
static bool is_sharding(const TileAttr *v) {
  if (v->kind != TILE_ATTR_ARRAY) return false;
  for (int i = 0; i < v->n; i++) {
    const TileAttr *e = &v->elems[i];
    if (e->kind == TILE_ATTR_TUPLE) {
      for (int j = 0; j < e->n; j++)
        if (e->elems[j].kind != TILE_ATTR_IDENT) return false;
    } else if (e->kind != TILE_ATTR_NONE && e->kind != TILE_ATTR_IDENT) {
      return false;
    }
  }
  return true;
}

static bool all_of_kind(const TileAttr *v, int kind) {
  if (v->kind != TILE_ATTR_ARRAY) return false;
  for (int i = 0; i < v->n; i++)
    if (v->elems[i].kind != kind) return false;
  return true;
}

static bool attr_kind_ok(const TileAttr *v, int kind) {
  switch (kind) {
  case AK_INT: return v->kind == TILE_ATTR_INT;
  case AK_FLOAT: return v->kind == TILE_ATTR_FLOAT;
  case AK_NUM: return v->kind == TILE_ATTR_INT || v->kind == TILE_ATTR_FLOAT;
  case AK_STR: return v->kind == TILE_ATTR_STRING;
  case AK_IDENT: return v->kind == TILE_ATTR_IDENT;
  case AK_ARRAY: return v->kind == TILE_ATTR_ARRAY;
  case AK_INTS: return all_of_kind(v, TILE_ATTR_INT);
  case AK_AXES: return all_of_kind(v, TILE_ATTR_IDENT);
  case AK_SYM: return v->kind == TILE_ATTR_SYMBOL;
  case AK_SHARD: return is_sharding(v);
  default: return true;
  }
}

/* Payloads the rules dereference: text of words and symbols, elements of lists.
 * The parser always fills them; a hand-made attribute may not. */
static bool attr_well_formed(const TileAttr *v, int depth) {
  switch (v->kind) {
  case TILE_ATTR_INT:
  case TILE_ATTR_FLOAT:
  case TILE_ATTR_NONE: return true;
  case TILE_ATTR_STRING:
  case TILE_ATTR_IDENT:
  case TILE_ATTR_SYMBOL: return v->s != NULL;
  case TILE_ATTR_ARRAY:
  case TILE_ATTR_TUPLE:
    if (v->n < 0 || (v->n > 0 && !v->elems) || depth > 32) return false;
    for (int i = 0; i < v->n; i++)
      if (!attr_well_formed(&v->elems[i], depth + 1)) return false;
    return true;
  default: return false;
  }
}

static const char *const value_plural[] = {
    [TILE_ATTR_INT] = "integers",    [TILE_ATTR_FLOAT] = "floats",
    [TILE_ATTR_STRING] = "strings",  [TILE_ATTR_IDENT] = "identifiers",
    [TILE_ATTR_NONE] = "'-' entries", [TILE_ATTR_ARRAY] = "arrays",
    [TILE_ATTR_TUPLE] = "tuples",    [TILE_ATTR_SYMBOL] = "symbols",
};

/* What a value is, for messages; for an array, what its elements are. The value
 * is well formed (attr_well_formed), so every kind is in the tables. */
static const char *describe(const TileAttr *v, char *buf, size_t size) {
  if (v->kind != TILE_ATTR_ARRAY || v->n == 0) return value_desc[v->kind];
  int first = v->elems[0].kind;
  for (int i = 1; i < v->n; i++)
    if (v->elems[i].kind != first) {
      snprintf(buf, size, "an array mixing %s and %s", value_plural[first],
               value_plural[v->elems[i].kind]);
      return buf;
    }
  snprintf(buf, size, "an array of %s", value_plural[first]);
  return buf;
}

static const AttrSpec shard_spec = {"shard", AK_SHARD, true};
/* The fuse pass's fusion group (include/tile/lower.h), on any tensor op. */
static const AttrSpec group_spec = {"group", AK_INT, true};

static bool check_attrs(RuleCtx *c) {
  const TileAttrDict *ad = &c->op->attrs;
  const OpSpec *sp = op_spec(c->op->kind);
  if (ad->n < 0 || (ad->n > 0 && !ad->items))
    return rule_error(c, "has a malformed attribute list");
  bool ok = true, present[MAX_OP_ATTRS] = {0};
  for (int i = 0; i < ad->n; i++) {
    const TileNamedAttr *na = &ad->items[i];
    if (!na->name) {
      ok = rule_error(c, "attribute %d has no name", i + 1);
      continue;
    }
    bool dup = false;
    for (int j = 0; j < i && !dup; j++)
      dup = ad->items[j].name && strcmp(ad->items[j].name, na->name) == 0;
    if (dup) {
      ok = rule_error(c, "has attribute '%s' twice", na->name);
      continue;
    }
    const AttrSpec *as = NULL;
    for (int k = 0; k < sp->n && !as; k++)
      if (strcmp(sp->a[k].name, na->name) == 0) {
        as = &sp->a[k];
        present[k] = true;
      }
    if (!as && strcmp(na->name, "shard") == 0) as = &shard_spec;
    if (!as && strcmp(na->name, "group") == 0 &&
        tile_op_info[c->op->kind].family == TILE_FAMILY_TENSOR)
      as = &group_spec;
    if (!as) {
      ok = tile_error(c->d, c->op->loc, "unknown attribute '%s' on '%s'", na->name, c->name);
      continue;
    }
    if (!attr_well_formed(&na->val, 0)) {
      ok = rule_error(c, "attribute '%s' is malformed (missing text or elements)", na->name);
    } else if (!attr_kind_ok(&na->val, as->kind)) {
      char got[64];
      ok = tile_error(c->d, c->op->loc, "attribute '%s' of '%s' must be %s, got %s", na->name,
                      c->name, attr_kinds[as->kind].desc, describe(&na->val, got, sizeof got));
    }
  }
  for (int k = 0; k < sp->n; k++) {
    const AttrSpec *a = &sp->a[k];
    if (!a->optional && !present[k])
      ok = rule_error(c, "needs attribute '%s' (%s)", a->name, attr_kinds[a->kind].desc);
  }
  return ok;
}

/* ---- results ---- */

static bool check_results(RuleCtx *c) {
  const TileOp *op = c->op;
  int want = tile_op_info[op->kind].nres;
  if (op->kind == TILE_OP_FOR) want = op->nopnd;
  if (op->nres < 0) return rule_error(c, "has a negative result count");
  if (want >= 0 && op->nres != want) {
    if (op->kind == TILE_OP_FOR)
      return rule_error(c, "has %d results but %d iter values; each iter value gives one result",
                        op->nres, want);
    return rule_error(c, "has %d %s, got %d", want, plural(want, "result", "results"), op->nres);
  }
  bool ok = true;
  for (int i = 0; i < op->nres; i++) {
    const TileType *t = declared_type(c, i);
    char why[120];
    if (t && !rule_type_is_valid(t, why, sizeof why))
      ok = rule_error(c, "result %d has a malformed type: %s", i + 1, why);
  }
  return ok;
}

/* The sharding of an op's result, checked like a parameter's. */
static bool check_result_sharding(RuleCtx *c) {
  const TileAttr *s = attr(c, "shard");
  if (!s) return true;
  if (c->op->nres != 1)
    return rule_error(c, "has %d results; a shard attribute gives the sharding of an op's one "
                      "result", c->op->nres);
  MeshWhy why = MESH_FOUND;
  const TileAttr *own = attr(c, "mesh");
  const TileMesh *mesh =
      own ? tile_module_find_mesh(c->m, own->s) : verify_func_mesh(c->m, c->func, &why);
  if (own && !mesh) return false; /* the rule has said the mesh is unknown */
  char what[64];
  snprintf(what, sizeof what, "the result of '%s'", c->name);
  return verify_sharding(mesh, why, s, &c->out[0], c->d, c->op->loc, what);
}

bool verify_op_local(RuleCtx *c) {
  const TileOp *op = c->op;
  if (op->kind >= TILE_OP_COUNT)
    return tile_error(c->d, op->loc, "op kind %d is not in the op table", op->kind);
  c->name = tile_op_name(op->kind);
  bool ok = check_operands(c);
  if (!check_attrs(c)) ok = false;
  if (!check_results(c)) ok = false;
  if (!ok) return false;
  for (int i = 0; i < op->nres; i++) c->out[i] = (TileType){0};
  c->inferred = true;
  if (!rule_run(c)) return false;
  for (int i = 0; c->inferred && i < op->nres; i++) {
    const TileType *t = declared_type(c, i);
    if (!t || tile_type_eq(t, &c->out[i])) continue;
    if (op->nres == 1)
      ok = rule_error(c, "result type %s does not match the inferred %s", TY(t), TY(&c->out[i]));
    else
      ok = rule_error(c, "result %d type %s does not match the inferred %s", i + 1, TY(t),
                      TY(&c->out[i]));
  }
  return check_result_sharding(c) && ok;
}

bool tile_infer_types(const TileModule *m, const TileOp *op, TileType *out, bool *inferred,
                      TileDiag *d) {
  if (!m || !op) return tile_error(d, (TileLoc){0}, "type inference needs a module and an op");
  RuleCtx c = {.m = m, .op = op, .d = d, .out = out, .func = verify_op_func(op)};
  bool ok = verify_op_local(&c);
  for (int i = 0; inferred && i < op->nres; i++) inferred[i] = ok && c.inferred;
  return ok;
}
