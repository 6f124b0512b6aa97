/* The type-rule table and the helpers rules share. The table is generated from the
 * op table's RULE column, so an op whose rule function does not exist fails to
 * link and one added without a rule fails to compile. The rules themselves live in
 * rules_tensor.c (tensor ops) and rules_tile.c (collectives, tile, DMA, control). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rules.h"

static RuleFn *const rules[TILE_OP_COUNT] = {
#define X(id, name, fam, opnds, nres, rule, attrs, doc) [TILE_OP_##id] = rule_##rule,
    TILE_OPS(X)
#undef X
};

bool rule_run(RuleCtx *c) { return rules[c->op->kind](c); }

const char *const rule_reduce_kinds[] = {"add", "mul", "max", "min", NULL};

TypeStr rule_type_str(const TileType *t) {
  TypeStr s;
  if (!t)
    snprintf(s.s, sizeof s.s, "<no type>");
  else
    tile_type_format(t, s.s, sizeof s.s);
  return s;
}

bool rule_type_is_valid(const TileType *t, char *why, size_t size) {
  switch (t->kind) {
  case TILE_TY_SEM:
  case TILE_TY_TOKEN: return true;
  case TILE_TY_SCALAR:
  case TILE_TY_TENSOR:
  case TILE_TY_BUFFER: break;
  default: snprintf(why, size, "it has no type"); return false;
  }
  if (t->elem <= TILE_ELEM_NONE || t->elem >= TILE_ELEM_COUNT) {
    snprintf(why, size, "it has no element type");
    return false;
  }
  if (t->kind == TILE_TY_SCALAR) return true;
  if (t->rank > TILE_MAX_RANK) {
    snprintf(why, size, "its rank %d exceeds %d", t->rank, TILE_MAX_RANK);
    return false;
  }
  if (t->kind == TILE_TY_BUFFER) {
    if (t->space >= TILE_SPACE_COUNT) {
      snprintf(why, size, "it has no memory space");
      return false;
    }
    if (t->rank < 1) {
      snprintf(why, size, "a buffer has rank 1 or more");
      return false;
    }
  }
  for (int i = 0; i < t->rank; i++)
    if (t->dims[i] < 1) {
      snprintf(why, size, "dim %d is %lld; dims are positive", i, (long long)t->dims[i]);
      return false;
    }
  return true;
}

static bool rule_verror(RuleCtx *c, TileLoc loc, const char *fmt, va_list ap) {
  char msg[400];
  vsnprintf(msg, sizeof msg, fmt, ap);
  return tile_error(c->d, verify_loc(loc, c->op->loc), "'%s' %s", c->name, msg);
}

bool rule_error(RuleCtx *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  rule_verror(c, c->op->loc, fmt, ap);
  va_end(ap);
  return false;
}

bool rule_error_at(RuleCtx *c, TileLoc loc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  rule_verror(c, loc, fmt, ap);
  va_end(ap);
  return false;
}

const TileType *rule_need_declared(RuleCtx *c, int i) {
  const TileType *t = declared_type(c, i);
  if (!t) rule_error(c, "needs its result type given; it cannot be inferred");
  return t;
}

bool rule_check_dim(RuleCtx *c, const char *what, int64_t v, int rank, const TileType *t) {
  if (v >= 0 && v < rank) return true;
  return rule_error(c, "%s %lld is out of range for %s (rank %d)", what, (long long)v, TY(t), rank);
}

bool rule_check_word(RuleCtx *c, const char *aname, const char *const *words) {
  const TileAttr *a = attr(c, aname);
  for (int i = 0; words[i]; i++)
    if (strcmp(a->s, words[i]) == 0) return true;
  char list[160];
  size_t k = 0;
  list[0] = 0;
  for (int i = 0; words[i] && k < sizeof list; i++)
    k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", i ? ", " : "", words[i]);
  return rule_error(c, "%s '%s' is not one of %s", aname, a->s, list);
}
