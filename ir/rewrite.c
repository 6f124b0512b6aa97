/* Editing IR in place (include/tile/rewrite.h): moving and erasing ops, replacing
 * uses, setting attributes, building before an op, and fresh value names.
 *
 * The IR has no use-lists; the one walk over a function's uses is use_walk below,
 * shared by replacing and counting. Passes run on verified IR, whose nesting the
 * verifier bounds, so the walk may recurse over regions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/rewrite.h"

/* ---- moving and removing ops ---- */

void tile_op_erase(TileOp *op) {
  TileBlock *blk = op->block;
  if (!blk) return;
  if (op->prev) op->prev->next = op->next;
  else blk->first = op->next;
  if (op->next) op->next->prev = op->prev;
  else blk->last = op->prev;
  op->prev = op->next = NULL;
  op->block = NULL;
}

void tile_op_insert_before(TileOp *op, TileOp *anchor) {
  TileBlock *blk = anchor->block;
  op->block = blk;
  op->next = anchor;
  op->prev = anchor->prev;
  if (anchor->prev) anchor->prev->next = op;
  else blk->first = op;
  anchor->prev = op;
}

void tile_block_move_before(TileBlock *from, TileOp *anchor) {
  for (TileOp *op = from->first, *next; op; op = next) {
    next = op->next;
    op->prev = op->next = NULL;
    tile_op_insert_before(op, anchor);
  }
  from->first = from->last = NULL;
}

/* ---- uses ---- */

/* Calls visit on every use slot of a value in blk (operands and access indices),
 * nested regions included. visit may change the slot. Returns how many slots held
 * v. */
typedef struct UseWalk {
  const TileValue *v;
  TileValue *to; /* NULL: only count */
} UseWalk;

static int64_t use_walk(const TileBlock *blk, const UseWalk *w) {
  int64_t n = 0;
  for (TileOp *op = blk ? blk->first : NULL; op; op = op->next) {
    for (int i = 0; i < op->nopnd; i++) {
      TileUse *u = &op->opnd[i];
      if (u->v == w->v) {
        n++;
        if (w->to) u->v = w->to;
      }
      for (int j = 0; u->has_idx && j < u->nidx; j++)
        if (u->idx[j].v == w->v) {
          n++;
          if (w->to) u->idx[j].v = w->to;
        }
    }
    for (int r = 0; r < op->nregion; r++) n += use_walk(op->region[r], w);
  }
  return n;
}

int64_t tile_replace_all_uses(TileFunc *f, const TileValue *from, TileValue *to) {
  if (!f || !from || !to || from == to) return 0;
  UseWalk w = {from, to};
  return use_walk(f->body, &w);
}

int64_t tile_count_uses(const TileFunc *f, const TileValue *v) {
  if (!f || !v) return 0;
  UseWalk w = {v, NULL};
  return use_walk(f->body, &w);
}

bool tile_op_take_result(TileOp *op, int i, TileValue *v) {
  /* A block argument stays one: the block's argument list holds it. */
  if (!op || !v || v->block || i < 0 || i >= op->nres ||
      !tile_type_eq(&op->res[i]->type, &v->type))
    return false;
  op->res[i] = v;
  v->def = op;
  v->index = i;
  return true;
}

/* ---- attributes ---- */

void tile_op_set_attr(TileModule *m, TileOp *op, const char *name, TileAttr val) {
  TileAttrDict *d = &op->attrs;
  for (int i = 0; i < d->n; i++)
    if (strcmp(d->items[i].name, name) == 0) {
      d->items[i].val = val;
      return;
    }
  /* The dictionary's array may be shared with nothing else, but it is sized
   * exactly, so it is copied into a larger one. */
  TileNamedAttr *items = tile_alloc(m, (size_t)(d->n + 1) * sizeof *items);
  if (d->n) memcpy(items, d->items, (size_t)d->n * sizeof *items);
  items[d->n] = (TileNamedAttr){tile_strdup(m, name, strlen(name)), val};
  d->items = items;
  d->n++;
}

/* ---- building before an op ---- */

void tile_insert_begin(TileInsertPoint *ip, TileBuilder *b, TileOp *anchor) {
  memset(ip, 0, sizeof *ip);
  ip->anchor = anchor;
  ip->saved = b->block;
  /* The scratch block stands in anchor's place: its function and enclosing op are
   * anchor's, so rules that look for the function's mesh find it. */
  ip->scratch.parent = anchor->block->parent;
  ip->scratch.func = anchor->block->func;
  b->block = &ip->scratch;
}

void tile_insert_end(TileInsertPoint *ip, TileBuilder *b, bool keep) {
  if (keep) tile_block_move_before(&ip->scratch, ip->anchor);
  for (TileOp *op = ip->scratch.first; op; op = op->next) op->block = NULL;
  ip->scratch.first = ip->scratch.last = NULL;
  b->block = ip->saved;
}

/* ---- fresh value names ---- */

static size_t str_hash(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return (size_t)(h ^ (h >> 32));
}

static void names_grow(TileNameSet *s) {
  size_t old_cap = s->cap;
  const char **old = s->slots;
  s->cap = old_cap ? old_cap * 2 : 64;
  s->slots = calloc(s->cap, sizeof *s->slots);
  if (!s->slots) abort(); /* like the arena: out of memory is not recoverable here */
  for (size_t i = 0; i < old_cap; i++) {
    if (!old[i]) continue;
    size_t j = str_hash(old[i]) & (s->cap - 1);
    while (s->slots[j]) j = (j + 1) & (s->cap - 1);
    s->slots[j] = old[i];
  }
  free(old);
}

bool tile_names_has(const TileNameSet *s, const char *name) {
  if (!s->cap) return false;
  for (size_t j = str_hash(name) & (s->cap - 1); s->slots[j]; j = (j + 1) & (s->cap - 1))
    if (strcmp(s->slots[j], name) == 0) return true;
  return false;
}

void tile_names_add(TileNameSet *s, const char *name) {
  if (!name || tile_names_has(s, name)) return;
  if (2 * (s->n + 1) > s->cap) names_grow(s);
  size_t j = str_hash(name) & (s->cap - 1);
  while (s->slots[j]) j = (j + 1) & (s->cap - 1);
  s->slots[j] = name;
  s->n++;
}

static void names_add_value(TileNameSet *s, const TileValue *v) {
  if (v && v->name) tile_names_add(s, v->name);
}

static void names_add_block(TileNameSet *s, const TileBlock *blk) {
  if (!blk) return;
  for (int i = 0; i < blk->nargs; i++) names_add_value(s, blk->args[i]);
  for (const TileOp *op = blk->first; op; op = op->next) {
    for (int i = 0; i < op->nres; i++) names_add_value(s, op->res[i]);
    for (int r = 0; r < op->nregion; r++) names_add_block(s, op->region[r]);
  }
}

void tile_names_init(TileNameSet *s, TileModule *m, const TileFunc *f) {
  memset(s, 0, sizeof *s);
  s->m = m;
  if (f) names_add_block(s, f->body);
}

const char *tile_names_fresh(TileNameSet *s, const char *base, const char *suffix) {
  if (!base) return NULL;
  size_t len = strlen(base) + strlen(suffix) + 24;
  char *buf = malloc(len);
  if (!buf) abort();
  snprintf(buf, len, "%s.%s", base, suffix);
  for (long n = 2; tile_names_has(s, buf); n++) snprintf(buf, len, "%s.%s.%ld", base, suffix, n);
  const char *name = tile_strdup(s->m, buf, strlen(buf));
  free(buf);
  tile_names_add(s, name);
  return name;
}

void tile_names_free(TileNameSet *s) {
  free(s->slots);
  memset(s, 0, sizeof *s);
}
