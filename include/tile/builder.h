/* The builder: make IR from C without text (the JIT path). Ops are appended at an
 * insertion point; result types are inferred from the op's type rule where it can,
 * and given by the caller where the rule needs them (reshape, convert, constant...).
 *
 *   TileModule *m = tile_module_new("jit");
 *   TileBuilder b; tile_builder_init(&b, m);
 *   TileFunc *f = tile_build_func(&b, "f", false, 2, (TileType[]){a, a});
 *   TileValue *s = tile_build1(&b, TILE_OP_ADD, 2, (TileValue*[]){f->body->args[0],
 *                              f->body->args[1]}, NULL, NULL);
 *   tile_build_return(&b, 1, &s);
 *
 * Every build call returns NULL (or false) and records an error in b.diag when the
 * op is malformed, so a JIT caller gets a message, not a crash. */
#ifndef TILE_BUILDER_H
#define TILE_BUILDER_H

#include "tile/diag.h"
#include "tile/ir.h"
#include "tile/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct TileBuilder {
  TileModule *m;
  TileBlock *block; /* insertion point: ops go at its end */
  TileDiag diag;
} TileBuilder;

void tile_builder_init(TileBuilder *b, TileModule *m);
void tile_builder_set_block(TileBuilder *b, TileBlock *blk);

TileMesh *tile_build_mesh(TileBuilder *b, const char *name, int rank, const int64_t *dims,
                          int naxes, const char *const *axis_names);
/* Makes a func (or kernel) with nargs parameters and sets the insertion point to its
 * body. Result types of a func are set by tile_build_return. */
TileFunc *tile_build_func(TileBuilder *b, const char *name, bool is_kernel, int nargs,
                          const TileType *arg_types);
void tile_build_arg_attr(TileBuilder *b, TileFunc *f, int arg, const char *name, TileAttr val);
/* Sets a function attribute, e.g. {mesh = @tp}; replaces one of the same name. */
void tile_build_func_attr(TileBuilder *b, TileFunc *f, const char *name, TileAttr val);

/* The general form: operands (uses with optional indices), attributes, result types
 * (NULL: infer all). nres < 0 takes the count the op implies (the table's, one per
 * init for `for`, the callee's for `call`, none for `if`). Regions of for/if are made
 * empty; fill them with tile_builder_set_block(b, op->region[i]) and end each with
 * tile_build_yield (an empty yield where there are no results). */
TileOp *tile_build_op(TileBuilder *b, TileOpKind kind, int nopnd, const TileUse *opnds,
                      int nattr, const TileNamedAttr *attrs, int nres, const TileType *res_types);
/* Shorthand for single-result ops on plain values; res_type NULL to infer. */
TileValue *tile_build1(TileBuilder *b, TileOpKind kind, int nopnd, TileValue *const *opnds,
                       const TileAttrDict *attrs, const TileType *res_type);
TileOp *tile_build_for(TileBuilder *b, int64_t lower, int64_t upper, int64_t step, int ninit,
                       TileValue *const *init);
TileOp *tile_build_if(TileBuilder *b, TileValue *cond, int nres, const TileType *res_types);
bool tile_build_return(TileBuilder *b, int n, TileValue *const *vals);
bool tile_build_yield(TileBuilder *b, int n, TileValue *const *vals);

/* Attribute makers (arrays are copied into the module's arena). */
TileAttr tile_attr_int(int64_t v);
TileAttr tile_attr_float(double v);
TileAttr tile_attr_ident(TileModule *m, const char *s);
TileAttr tile_attr_string(TileModule *m, const char *s);
TileAttr tile_attr_symbol(TileModule *m, const char *s);
TileAttr tile_attr_none(void);
TileAttr tile_attr_ints(TileModule *m, int n, const int64_t *v);
TileAttr tile_attr_array(TileModule *m, int n, const TileAttr *elems);
TileAttr tile_attr_tuple(TileModule *m, int n, const TileAttr *elems);

#ifdef __cplusplus
}
#endif
#endif
