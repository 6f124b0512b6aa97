/* Editing IR in place: the small operations passes share.
 *
 * The IR keeps no use-lists, so what needs the uses of a value (replacing or
 * counting them) walks the function; that walk lives in ir/rewrite.c and nowhere
 * else. Nothing is freed: an erased op stays in the module's arena, unreachable.
 *
 * The builder appends ops at the end of a block. To build ops before an existing
 * op, a TileInsertPoint lends the builder a scratch block that stands where the
 * anchor op stands (same function, same enclosing op, so type rules that look there
 * see the right mesh), then moves what was built in front of the anchor:
 *
 *   TileInsertPoint ip;
 *   tile_insert_begin(&ip, &b, op);
 *   TileValue *e = tile_build1(&b, TILE_OP_EXP, 1, &x, NULL, NULL);
 *   tile_insert_end(&ip, &b, e != NULL);   // keep the new ops, or drop them */
#ifndef TILE_REWRITE_H
#define TILE_REWRITE_H

#include <stddef.h>
#include <stdint.h>

#include "tile/builder.h"
#include "tile/ir.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- moving and removing ops ---- */

/* Unlinks op from its block (op->block becomes NULL). The caller makes sure its
 * results have no uses left. */
void tile_op_erase(TileOp *op);
/* Links op, which is in no block, right before anchor in anchor's block. */
void tile_op_insert_before(TileOp *op, TileOp *anchor);
/* Moves every op of from, in order, before anchor; from is left empty. */
void tile_block_move_before(TileBlock *from, TileOp *anchor);

/* ---- uses ---- */

/* Replaces every use of from in f by to: operands and buffer-access indices, in
 * nested regions too. Returns how many uses were replaced. */
int64_t tile_replace_all_uses(TileFunc *f, const TileValue *from, TileValue *to);
/* How many times f uses v (as an operand or an index). */
int64_t tile_count_uses(const TileFunc *f, const TileValue *v);
/* Makes v result i of op in place of the value op made, which must be unused:
 * v keeps its name and every use of it, and is now defined by op (its old
 * definer must be erased by the caller). Returns false, changing nothing, when
 * the types differ, i is out of range or v is a block argument. This replaces the
 * uses of a value without walking the function. */
bool tile_op_take_result(TileOp *op, int i, TileValue *v);

/* ---- attributes ---- */

/* Sets an attribute of op, replacing one of the same name. val is stored as
 * given (shallow), so arrays and strings in it must live in m's arena. */
void tile_op_set_attr(TileModule *m, TileOp *op, const char *name, TileAttr val);

/* ---- building before an op ---- */

typedef struct TileInsertPoint {
  TileBlock scratch; /* where the builder appends meanwhile */
  TileOp *anchor;
  TileBlock *saved;  /* the builder's insertion block before tile_insert_begin */
} TileInsertPoint;

void tile_insert_begin(TileInsertPoint *ip, TileBuilder *b, TileOp *anchor);
/* keep: move the ops built since tile_insert_begin before the anchor; otherwise
 * drop them. Restores the builder's insertion block. */
void tile_insert_end(TileInsertPoint *ip, TileBuilder *b, bool keep);

/* ---- fresh value names ----
 * Names are unique within a function (the verifier checks it). A pass naming the
 * values it makes after the value they serve ("%p" -> "%p.max") collects the
 * function's names once and asks this set for names not yet taken. */
typedef struct TileNameSet {
  TileModule *m;
  const char **slots; /* open addressing; cap a power of two */
  size_t cap, n;
} TileNameSet;

/* Collects the names of every value of f: parameters, results, region arguments. */
void tile_names_init(TileNameSet *s, TileModule *m, const TileFunc *f);
bool tile_names_has(const TileNameSet *s, const char *name);
/* Adds a name (kept by pointer: it must outlive the set). */
void tile_names_add(TileNameSet *s, const char *name);
/* "base.suffix", or "base.suffix.N" with the smallest N >= 2 that is free; the name
 * is added to the set and lives in the module's arena. NULL when base is NULL (the
 * value stays unnamed and the printer numbers it). */
const char *tile_names_fresh(TileNameSet *s, const char *base, const char *suffix);
void tile_names_free(TileNameSet *s);

#ifdef __cplusplus
}
#endif
#endif
