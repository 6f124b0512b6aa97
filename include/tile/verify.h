/* The verifier: types and shapes (through each op's type rule), operand kinds and
 * attributes from the op table, dominance, memory-space rules, region structure,
 * and shardings against the mesh axes. Reports every error to d, each at the most
 * precise location the IR holds (a use's or a value's own, where the parser set
 * one; else its op's or function's). Messages count positions from 1 ("operand 1")
 * and dimensions from 0, as attributes do. */
#ifndef TILE_VERIFY_H
#define TILE_VERIFY_H

#include "tile/diag.h"
#include "tile/ir.h"

#ifdef __cplusplus
extern "C" {
#endif

bool tile_verify_module(const TileModule *m, TileDiag *d);

/* Checks one op's operands, attributes and type rule, and infers its result types
 * into out (op->nres entries) where the rule can; used by the builder. inferred
 * (op->nres entries, may be NULL) tells per result whether out holds an inferred
 * type; where it does not, the rule has checked the declared type and copied it.
 * Declared result types (non-NULL op->res[i] of a kind other than NONE) must match
 * the inferred ones. op->block may be the block the op will join (collectives then
 * use its function's mesh) or NULL (the module's only mesh). Returns false with an
 * error in d when the op is malformed. */
bool tile_infer_types(const TileModule *m, const TileOp *op, TileType *out, bool *inferred,
                      TileDiag *d);

#ifdef __cplusplus
}
#endif
#endif
