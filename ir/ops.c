/* The op table as data (from the X-macro in tile/ops.h). */
#include <string.h>

#include "tile/ir.h"
#include "tile/ops.h"

const TileOpInfo tile_op_info[TILE_OP_COUNT] = {
#define X(id, name, fam, opnds, nres, rule, attrs, doc) \
  [TILE_OP_##id] = {name, TILE_FAMILY_##fam, opnds, nres, attrs, doc},
    TILE_OPS(X)
#undef X
};

const char *tile_op_name(TileOpKind k) { return k < TILE_OP_COUNT ? tile_op_info[k].name : "?"; }

bool tile_op_is_elementwise(TileOpKind k) {
  return (k >= TILE_OP_ADD && k <= TILE_OP_SELECT) || k == TILE_OP_CONVERT;
}

int tile_op_lookup(const char *name, size_t len) {
  for (int k = 0; k < TILE_OP_COUNT; k++)
    if (strlen(tile_op_info[k].name) == len && memcmp(tile_op_info[k].name, name, len) == 0)
      return k;
  return -1;
}

bool tile_value_is_splat(const TileValue *v) {
  if (!v->def || v->def->kind != TILE_OP_CONSTANT) return false;
  const TileAttr *a = tile_attr_get(&v->def->attrs, "value");
  return a && (a->kind == TILE_ATTR_INT || a->kind == TILE_ATTR_FLOAT);
}
