/* The module verifier. It checks the meshes, then walks each function once, in
 * order, keeping the set of values visible at each point (a scope stack over the
 * nested blocks), and on every op runs the op-local checks and type rule
 * (verify_op.c) and the checks that need the op's place: dominance of its operands,
 * where terminators may stand, the shape of for/if regions and what their yields
 * give, and what a function's return gives. It reports every error it finds, up to
 * the diagnostic engine's limit, and never needs the IR to be well formed to run. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"
#include "tile/verify.h"

/* The walk recurses once per nested region; deeper programs are reported rather
 * than risking the stack. */
enum { MAX_DEPTH = 256 };

/* What the walk knows of a value: not seen yet, visible, or defined in a block
 * that has closed (so out of scope for the rest of the function). */
enum { SEEN_NONE, SEEN_LIVE, SEEN_DEAD };

typedef struct Slot {
  const TileValue *v;
  uint8_t state;
} Slot;

typedef struct Verifier {
  const TileModule *m;
  TileDiag *d;
  const TileFunc *f;
  Slot *slots; /* open addressing on the value's address; cap a power of two */
  size_t cap, used;
  const TileBlock **open; /* the blocks enclosing the current op, outermost first */
  int depth;
  size_t open_cap;
  TileType *out; /* result types of the op being checked */
  size_t out_cap;
  const TileValue **named; /* named values of the function, for the uniqueness check */
  size_t nnamed, named_cap;
} Verifier;

static void *grow(void *p, size_t *cap, size_t elem, size_t need) {
  if (need <= *cap) return p;
  size_t n = *cap ? *cap : 16;
  while (n < need) n *= 2;
  p = realloc(p, n * elem);
  if (!p) abort(); /* like the arena: out of memory is not recoverable here */
  *cap = n;
  return p;
}

/* ---- the set of values seen ---- */

/* The slot holding v, or the empty one where it would go. */
static Slot *probe(const Verifier *V, const TileValue *v) {
  size_t mask = V->cap - 1, i = tile_hash_ptr(v) & mask;
  while (V->slots[i].v && V->slots[i].v != v) i = (i + 1) & mask;
  return &V->slots[i];
}

static uint8_t state_of(const Verifier *V, const TileValue *v) {
  return V->cap ? probe(V, v)->state : SEEN_NONE;
}

static Slot *insert(Verifier *V, const TileValue *v) {
  if ((V->used + 1) * 2 > V->cap) {
    Slot *old = V->slots;
    size_t ocap = V->cap;
    V->cap = ocap ? ocap * 2 : 256;
    V->slots = calloc(V->cap, sizeof *V->slots);
    if (!V->slots) abort();
    for (size_t i = 0; i < ocap; i++)
      if (old[i].v) *probe(V, old[i].v) = old[i];
    free(old);
  }
  Slot *s = probe(V, v);
  if (!s->v) {
    s->v = v;
    V->used++;
  }
  return s;
}

/* ---- naming values in messages ---- */

typedef struct ValueStr {
  char s[96];
} ValueStr;

/* 'x' for a named value, else what defines it (the printer numbers such values,
 * so a number here would not match the text). Positions count from 1. */
static ValueStr value_ref(const TileValue *v) {
  ValueStr r;
  if (v->name)
    snprintf(r.s, sizeof r.s, "'%%%s'", v->name);
  else if (v->def)
    snprintf(r.s, sizeof r.s, "(result %d of '%s')", v->index + 1, tile_op_name(v->def->kind));
  else if (v->block && v->block->func)
    snprintf(r.s, sizeof r.s, "(parameter %d)", v->index + 1);
  else
    snprintf(r.s, sizeof r.s, "(block argument %d)", v->index + 1);
  return r;
}
#define VAL(v) (value_ref(v).s)

/* ---- scopes ---- */

static void define(Verifier *V, const TileValue *v, TileLoc loc) {
  Slot *s = insert(V, v);
  if (s->state != SEEN_NONE) {
    tile_error(V->d, verify_loc(v->loc, loc), "value %s is defined twice", VAL(v));
    return;
  }
  s->state = SEEN_LIVE;
  if (v->name) {
    V->named = grow(V->named, &V->named_cap, sizeof *V->named, V->nnamed + 1);
    V->named[V->nnamed++] = v;
  }
}

static void retire(Verifier *V, const TileValue *v) {
  if (v && V->cap) {
    Slot *s = probe(V, v);
    if (s->v) s->state = SEEN_DEAD;
  }
}

static bool is_open(const Verifier *V, const TileBlock *b) {
  for (int i = 0; i < V->depth; i++)
    if (V->open[i] == b) return true;
  return false;
}

/* Dominance: a use must see a value defined earlier in its block or an enclosing
 * one. When it does not, the message says which of the ways it went wrong, at the
 * use (use_loc) when its position is known, else at the op. */
static void check_use(Verifier *V, const TileOp *op, const TileValue *v, TileLoc use_loc) {
  uint8_t st = state_of(V, v);
  if (st == SEEN_LIVE) return;
  TileLoc loc = verify_loc(use_loc, op->loc);
  if (st == SEEN_DEAD) {
    tile_error(V->d, loc, "value %s defined inside a region is used outside it", VAL(v));
    return;
  }
  const TileBlock *home = v->def ? v->def->block : v->block;
  const TileFunc *g = home ? verify_block_func(home) : NULL;
  if (home && is_open(V, home))
    tile_error(V->d, loc, "value %s is used before it is defined", VAL(v));
  else if (g == V->f)
    tile_error(V->d, loc, "value %s defined inside a region is used outside it", VAL(v));
  else if (g && g->name)
    tile_error(V->d, loc, "value %s belongs to function @%s and cannot be used in @%s", VAL(v),
               g->name, V->f->name);
  else
    tile_error(V->d, loc, "value %s is not defined in any function", VAL(v));
}

static void define_arg(Verifier *V, const TileBlock *blk, int i, TileLoc loc, const char *what) {
  const TileValue *v = blk->args ? blk->args[i] : NULL;
  if (!v) {
    tile_error(V->d, loc, "%s %d is missing", what, i + 1);
    return;
  }
  char why[120];
  if (!rule_type_is_valid(&v->type, why, sizeof why))
    tile_error(V->d, verify_loc(v->loc, loc), "%s %d %s has a malformed type: %s", what, i + 1,
               VAL(v), why);
  define(V, v, loc);
}

static void verify_op(Verifier *V, const TileOp *op, const TileBlock *blk);

/* Walks a block: its arguments come into scope, then each op in order; when the
 * block closes, everything it defined leaves scope. */
static void walk_block(Verifier *V, const TileBlock *blk, TileLoc loc, const char *argname) {
  if (V->depth >= MAX_DEPTH) {
    tile_error(V->d, loc, "regions are nested more than %d deep", MAX_DEPTH);
    return;
  }
  V->open = grow(V->open, &V->open_cap, sizeof *V->open, (size_t)V->depth + 1);
  V->open[V->depth++] = blk;
  for (int i = 0; i < blk->nargs; i++) define_arg(V, blk, i, loc, argname);
  for (const TileOp *op = blk->first; op && !tile_diag_full(V->d); op = op->next)
    verify_op(V, op, blk);
  V->depth--;
  for (int i = 0; blk->args && i < blk->nargs; i++) retire(V, blk->args[i]);
  for (const TileOp *op = blk->first; op; op = op->next)
    for (int i = 0; op->res && i < op->nres; i++) retire(V, op->res[i]);
}

/* ---- regions and terminators ---- */

/* yield and return end their block and stand only where they belong. */
static void check_placement(Verifier *V, const TileOp *op, const TileBlock *blk) {
  if (op->kind == TILE_OP_YIELD) {
    if (!blk->parent)
      tile_error(V->d, op->loc,
                 "'yield' may only end a 'for' or 'if' region; a function ends with 'return'");
    else if (op->next)
      tile_error(V->d, op->loc, "'yield' must be the last op of its region");
  } else if (op->kind == TILE_OP_RETURN) {
    if (blk->parent)
      tile_error(V->d, op->loc, "'return' may only end a function body; a region ends with 'yield'");
    else if (op->next)
      tile_error(V->d, op->loc, "'return' must be the last op of the function body");
  }
}

static void check_yield(Verifier *V, const TileOp *op, const TileOp *y) {
  const char *name = tile_op_name(op->kind);
  if (y->nopnd != op->nres) {
    tile_error(V->d, y->loc, "'yield' gives %d values but the enclosing '%s' has %d results",
               y->nopnd, name, op->nres);
    return;
  }
  for (int i = 0; y->opnd && op->res && i < y->nopnd; i++) {
    const TileValue *a = y->opnd[i].v, *r = op->res[i];
    if (a && r && r->type.kind != TILE_TY_NONE && !tile_type_eq(&a->type, &r->type))
      tile_error(V->d, verify_loc(y->opnd[i].loc, y->loc),
                 "'yield' value %d has type %s but the enclosing '%s' result %d has type %s", i + 1,
                 TY(&a->type), name, i + 1, TY(&r->type));
  }
}

/* for: the body takes the i32 induction variable and one argument per iter value,
 * of that value's type. if: its blocks take nothing. */
static void check_region_args(Verifier *V, const TileOp *op, const TileBlock *blk) {
  if (op->kind == TILE_OP_IF) {
    if (blk->nargs != 0)
      tile_error(V->d, op->loc, "'if' regions take no arguments, got %d", blk->nargs);
    return;
  }
  if (blk->nargs != op->nopnd + 1) {
    tile_error(V->d, op->loc,
               "'for' region takes %d arguments (the i32 induction variable and one per iter "
               "value), got %d",
               op->nopnd + 1, blk->nargs);
    return;
  }
  if (!blk->args) return; /* reported as missing arguments by the walk */
  const TileValue *iv = blk->args[0];
  TileType i32 = tile_type_scalar(TILE_ELEM_I32);
  if (iv && !tile_type_eq(&iv->type, &i32))
    tile_error(V->d, verify_loc(iv->loc, op->loc), "'for' induction variable must be i32, got %s",
               TY(&iv->type));
  for (int i = 0; op->opnd && i < op->nopnd; i++) {
    const TileValue *a = blk->args[i + 1], *init = op->opnd[i].v;
    if (a && init && !tile_type_eq(&a->type, &init->type))
      tile_error(V->d, verify_loc(a->loc, op->loc),
                 "'for' carried value %s has type %s but its initial value %s has type %s",
                 VAL(a), TY(&a->type), VAL(init), TY(&init->type));
  }
}

static void check_regions(Verifier *V, const TileOp *op) {
  const char *name = tile_op_name(op->kind);
  int lo = 0, hi = 0;
  if (op->kind == TILE_OP_FOR)
    lo = hi = 1;
  else if (op->kind == TILE_OP_IF)
    lo = 1, hi = 2;
  if (op->nregion < lo || op->nregion > hi || (op->nregion > 0 && !op->region)) {
    if (hi == 0)
      tile_error(V->d, op->loc, "'%s' takes no regions, got %d", name, op->nregion);
    else if (lo == hi)
      tile_error(V->d, op->loc, "'%s' takes %d region, got %d", name, lo, op->nregion);
    else
      tile_error(V->d, op->loc, "'%s' takes %d to %d regions, got %d", name, lo, hi, op->nregion);
    return;
  }
  if (op->kind == TILE_OP_IF && op->nres > 0 && op->nregion < 2)
    tile_error(V->d, op->loc, "'if' with results needs an else region that gives them");
  for (int r = 0; r < op->nregion && !tile_diag_full(V->d); r++) {
    const TileBlock *blk = op->region[r];
    if (!blk || blk->parent != op) {
      tile_error(V->d, op->loc, "region %d of '%s' is %s", r + 1, name,
                 blk ? "not linked back to it" : "missing");
      continue;
    }
    check_region_args(V, op, blk);
    walk_block(V, blk, op->loc, op->kind == TILE_OP_FOR ? "'for' region argument" : "argument");
    /* A yield with no values is what the parser writes for a region that has none,
     * so both read as a region that does not give the op's results. */
    const TileOp *last = blk->last;
    bool yields = last && last->kind == TILE_OP_YIELD;
    const char *what = op->kind == TILE_OP_FOR ? "body" : r == 0 ? "then region" : "else region";
    if (op->nres > 0 && (!yields || last->nopnd == 0))
      tile_error(V->d, yields ? last->loc : op->loc, "'%s' %s must end with 'yield' giving its %d %s",
                 name, what, op->nres, op->nres == 1 ? "result" : "results");
    else if (yields)
      check_yield(V, op, last);
  }
}

/* ---- ops ---- */

static void verify_op(Verifier *V, const TileOp *op, const TileBlock *blk) {
  for (int i = 0; op->opnd && i < op->nopnd; i++) {
    const TileUse *u = &op->opnd[i];
    if (u->v) check_use(V, op, u->v, u->loc);
    for (int j = 0; u->has_idx && u->idx && j < u->nidx; j++)
      if (u->idx[j].v) check_use(V, op, u->idx[j].v, u->idx[j].loc);
  }
  V->out = grow(V->out, &V->out_cap, sizeof *V->out, op->nres > 0 ? (size_t)op->nres : 1);
  RuleCtx c = {.m = V->m, .op = op, .d = V->d, .out = V->out, .func = V->f};
  verify_op_local(&c);
  if (op->kind >= TILE_OP_COUNT) return;
  check_placement(V, op, blk);
  check_regions(V, op);
  for (int i = 0; i < op->nres; i++) {
    const TileValue *r = op->res ? op->res[i] : NULL;
    if (!r) {
      tile_error(V->d, op->loc, "'%s' result %d has no value", tile_op_name(op->kind), i + 1);
      continue;
    }
    if (r->type.kind == TILE_TY_NONE)
      tile_error(V->d, verify_loc(r->loc, op->loc), "'%s' result %d has no type",
                 tile_op_name(op->kind), i + 1);
    define(V, r, op->loc);
  }
}

/* ---- functions ---- */

static void check_return(Verifier *V, const TileFunc *f, const TileOp *ret) {
  if (f->is_kernel) {
    if (ret->nopnd)
      tile_error(V->d, ret->loc, "kernel @%s returns nothing, but 'return' gives %d values",
                 f->name, ret->nopnd);
    return;
  }
  if (ret->nopnd != f->nret) {
    tile_error(V->d, ret->loc, "'return' gives %d values but @%s returns %d", ret->nopnd, f->name,
               f->nret);
    return;
  }
  for (int i = 0; ret->opnd && f->ret && i < f->nret; i++) {
    const TileValue *v = ret->opnd[i].v;
    if (v && !tile_type_eq(&v->type, &f->ret[i]))
      tile_error(V->d, verify_loc(ret->opnd[i].loc, ret->loc),
                 "'return' value %d has type %s but @%s returns %s", i + 1, TY(&v->type), f->name,
                 TY(&f->ret[i]));
  }
}

static void check_func_attrs(Verifier *V, const TileFunc *f) {
  for (int i = 0; f->attrs.items && i < f->attrs.n; i++) {
    const TileNamedAttr *a = &f->attrs.items[i];
    if (!a->name || strcmp(a->name, "mesh") != 0) {
      tile_error(V->d, f->loc, "unknown attribute '%s' on function @%s", a->name ? a->name : "?",
                 f->name);
    } else if (a->val.kind != TILE_ATTR_SYMBOL || !a->val.s) {
      tile_error(V->d, f->loc, "the mesh attribute of @%s must be a symbol like @tp", f->name);
    } else if (!tile_module_find_mesh(V->m, a->val.s)) {
      tile_error(V->d, f->loc, "function @%s names mesh @%s, which this module does not declare",
                 f->name, a->val.s);
    }
  }
}

static void check_params(Verifier *V, const TileFunc *f) {
  MeshWhy why;
  const TileMesh *mesh = verify_func_mesh(V->m, f, &why);
  for (int i = 0; f->arg_attrs && f->body->args && i < f->body->nargs; i++) {
    const TileAttrDict *ad = &f->arg_attrs[i];
    const TileValue *p = f->body->args[i];
    if (!p) continue; /* reported as a missing parameter by the walk */
    /* A parameter's attributes are written right after it, so errors about them
     * stand at the parameter. */
    TileLoc loc = verify_loc(p->loc, f->loc);
    for (int k = 0; ad->items && k < ad->n; k++) {
      const TileNamedAttr *a = &ad->items[k];
      if (!a->name || strcmp(a->name, "shard") != 0) {
        tile_error(V->d, loc, "unknown attribute '%s' on parameter %s of @%s (a parameter takes "
                   "only 'shard')", a->name ? a->name : "?", VAL(p), f->name);
        continue;
      }
      char what[160];
      snprintf(what, sizeof what, "parameter %s of @%s", VAL(p), f->name);
      verify_sharding(mesh, why, &a->val, &p->type, V->d, loc, what);
    }
  }
}

static int cmp_named(const void *a, const void *b) {
  const TileValue *x = *(const TileValue *const *)a, *y = *(const TileValue *const *)b;
  return strcmp(x->name, y->name);
}

/* Value names are unique within a function, so text round-trips. */
static void check_names(Verifier *V, const TileFunc *f) {
  if (V->nnamed < 2) return;
  qsort(V->named, V->nnamed, sizeof *V->named, cmp_named);
  for (size_t i = 1; i < V->nnamed; i++)
    if (strcmp(V->named[i - 1]->name, V->named[i]->name) == 0) {
      const TileValue *v = V->named[i];
      tile_error(V->d, verify_loc(v->loc, v->def ? v->def->loc : f->loc),
                 "value name '%%%s' is used twice in @%s", v->name, f->name);
    }
}

static void verify_func(Verifier *V, const TileFunc *f) {
  V->f = f;
  V->nnamed = 0;
  V->used = 0;
  if (V->cap) memset(V->slots, 0, V->cap * sizeof *V->slots);
  const char *kind = f->is_kernel ? "kernel" : "function";
  if (!f->body) {
    tile_error(V->d, f->loc, "%s @%s has no body", kind, f->name);
    return;
  }
  if (f->is_kernel && f->nret)
    tile_error(V->d, f->loc, "kernel @%s has %d results; a kernel returns nothing", f->name,
               f->nret);
  for (int i = 0; f->ret && i < f->nret; i++) {
    char why[120];
    if (!rule_type_is_valid(&f->ret[i], why, sizeof why))
      tile_error(V->d, f->loc, "result %d of @%s has a malformed type: %s", i + 1, f->name, why);
  }
  check_func_attrs(V, f);
  check_params(V, f);
  walk_block(V, f->body, f->loc, "parameter");
  const TileOp *last = f->body->last;
  if (last && last->kind == TILE_OP_RETURN)
    check_return(V, f, last);
  else if (!f->is_kernel)
    tile_error(V->d, last ? last->loc : f->loc, "function @%s must end with 'return'", f->name);
  check_names(V, f);
}

/* Names every lookup relies on; without them nothing else can be checked safely. */
static bool check_symbols(const TileModule *m, TileDiag *d) {
  bool ok = true;
  for (const TileMesh *x = m->meshes; x; x = x->next)
    if (!x->name) ok = tile_error(d, x->loc, "a mesh has no name");
  for (const TileFunc *f = m->funcs; f; f = f->next) {
    if (!f->name) {
      ok = tile_error(d, f->loc, "a function has no name");
      continue;
    }
    for (const TileFunc *g = m->funcs; g != f; g = g->next)
      if (g->name && strcmp(g->name, f->name) == 0) {
        tile_error(d, f->loc, "function @%s is defined twice", f->name);
        break;
      }
  }
  return ok;
}

bool tile_verify_module(const TileModule *m, TileDiag *d) {
  if (!m) return tile_error(d, (TileLoc){0}, "no module to verify");
  int before = d->nerrors;
  if (!check_symbols(m, d)) return false;
  verify_meshes(m, d);
  Verifier V = {.m = m, .d = d};
  for (const TileFunc *f = m->funcs; f && !tile_diag_full(d); f = f->next) verify_func(&V, f);
  free(V.slots);
  free(V.open);
  free(V.out);
  free(V.named);
  return d->nerrors == before;
}
