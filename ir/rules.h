/* Internal to the verifier: the context a type rule runs in, the helpers rules share,
 * and one declaration per rule named in the op table (include/tile/ops.h).
 *
 * A rule runs after the generic checks have passed for its op: operand count and
 * kinds follow the op's signature, every required attribute is present with the
 * right kind, and the result count is right. So a rule may read operand types and
 * attributes without re-checking what the table already says; it checks the rest
 * (shapes, element types, attribute values) and fills c->out with one type per
 * result: inferred (c->inferred stays true), or, for ops whose result type is given
 * by the program (reshape, convert, load...), the declared type once it has checked
 * it (c->inferred = false). */
#ifndef TILE_RULES_H
#define TILE_RULES_H

#include "tile/diag.h"
#include "tile/ir.h"
#include "tile/ops.h"

typedef struct RuleCtx {
  const TileModule *m;
  const TileOp *op;
  TileDiag *d;
  const char *name; /* the op's name, for messages */
  TileType *out;    /* op->nres entries */
  bool inferred;    /* out holds inferred types (rules that check set false) */
  /* The enclosing function when it is known (NULL for an op the builder has not
   * linked yet); its mesh is the default for collectives, peers and shardings. */
  const TileFunc *func;
} RuleCtx;

typedef bool RuleFn(RuleCtx *c);

#define X(id, name, fam, opnds, nres, rule, attrs, doc) RuleFn rule_##rule;
TILE_OPS(X)
#undef X

/* Runs the rule of c->op's kind. */
bool rule_run(RuleCtx *c);

/* Runs the generic checks on one op (operands, attributes, result count), then its
 * rule, compares inferred with declared result types and checks the result's
 * sharding (verify_op.c). c->m, op, d, out and func must be set. */
bool verify_op_local(RuleCtx *c);

/* ---- text of types in messages ----
 * rule_type_str returns the text in a struct, so TY(t) can be passed straight to a
 * printf-style call: the temporary lives until the end of that full expression. */
typedef struct TypeStr {
  char s[200];
} TypeStr;
TypeStr rule_type_str(const TileType *t);
#define TY(t) (rule_type_str(t).s)

/* ---- element and type predicates ---- */
static inline bool elem_is_float(int e) {
  return e > TILE_ELEM_NONE && e < TILE_ELEM_COUNT && tile_elem_is_float(e);
}
/* Integers, i1 included. */
static inline bool elem_is_int(int e) {
  return e > TILE_ELEM_NONE && e < TILE_ELEM_COUNT && !tile_elem_is_float(e);
}
/* A tensor or scalar: what the operand letter `v` accepts. */
static inline bool type_is_value(const TileType *t) {
  return t->kind == TILE_TY_TENSOR || t->kind == TILE_TY_SCALAR;
}
/* Same kind (tensor or scalar) and dims, element types aside. */
static inline bool same_shape(const TileType *a, const TileType *b) {
  if (a->kind != b->kind || a->rank != b->rank) return false;
  for (int i = 0; i < a->rank; i++)
    if (a->dims[i] != b->dims[i]) return false;
  return true;
}
/* Checks that a type is well formed (ranks, positive dims, element, space);
 * writes why not into why. */
bool rule_type_is_valid(const TileType *t, char *why, size_t size);

/* ---- locations ----
 * Messages stand at the most precise place known: a use's or a value's own
 * location when the parser gave one, else the op's (or function's). */
static inline TileLoc verify_loc(TileLoc precise, TileLoc fallback) {
  return precise.line > 0 ? precise : fallback;
}

/* "entry" or "entries", to go after a count of n. */
static inline const char *entries(int n) { return n == 1 ? "entry" : "entries"; }

/* ---- rule helpers ----
 * Messages count operands, results, arguments and indices from 1 ("operand 1" is
 * the first); dimensions are numbered from 0, as the attributes that name them. */
bool rule_error(RuleCtx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Like rule_error, at loc (an operand's or an index's) when it is known. */
bool rule_error_at(RuleCtx *c, TileLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Where operand i stands (the op itself when the use has no location). */
static inline TileLoc opnd_loc(const RuleCtx *c, int i) {
  return verify_loc(c->op->opnd[i].loc, c->op->loc);
}
static inline const TileType *opnd_type(const RuleCtx *c, int i) { return &c->op->opnd[i].v->type; }
/* The type the program gives result i, or NULL when it gives none (an op the
 * builder is about to infer). */
static inline const TileType *declared_type(const RuleCtx *c, int i) {
  const TileOp *op = c->op;
  if (!op->res || !op->res[i] || op->res[i]->type.kind == TILE_TY_NONE) return NULL;
  return &op->res[i]->type;
}
/* The declared type of result i for rules that check rather than infer; reports
 * an error when there is none. */
const TileType *rule_need_declared(RuleCtx *c, int i);
static inline const TileAttr *attr(const RuleCtx *c, const char *name) {
  return tile_attr_get(&c->op->attrs, name);
}
static inline int64_t attr_int_or(const RuleCtx *c, const char *name, int64_t dflt) {
  int64_t v;
  return tile_attr_get_int(&c->op->attrs, name, &v) ? v : dflt;
}
/* Checks 0 <= v < rank for a dimension attribute. */
bool rule_check_dim(RuleCtx *c, const char *what, int64_t v, int rank, const TileType *t);
/* Checks that an identifier attribute is one of the NULL-terminated words. */
bool rule_check_word(RuleCtx *c, const char *aname, const char *const *words);
extern const char *const rule_reduce_kinds[]; /* add mul max min */

/* ---- meshes and shardings (sharding.c) ---- */
typedef enum MeshWhy {
  MESH_FOUND,
  MESH_NONE,      /* the module declares no mesh */
  MESH_AMBIGUOUS, /* several meshes and the function names none */
  MESH_UNKNOWN,   /* the function's {mesh = @m} names no mesh of the module */
} MeshWhy;

/* A function's mesh: its {mesh = @m} attribute, else the module's only mesh.
 * f may be NULL (an op not linked into a function yet). */
const TileMesh *verify_func_mesh(const TileModule *m, const TileFunc *f, MeshWhy *why);
/* The function an op belongs to, found through its enclosing blocks; NULL for an
 * op that is not linked yet. */
const TileFunc *verify_op_func(const TileOp *op);
const TileFunc *verify_block_func(const TileBlock *b);
/* The mesh an op works over (its own `mesh` attribute, else its function's);
 * reports an error and returns NULL when there is none. */
const TileMesh *rule_mesh(RuleCtx *c);
/* The axis of mesh with that name, or NULL; safe on a malformed mesh. */
const TileMeshAxis *verify_mesh_axis(const TileMesh *mesh, const char *name);
/* Checks every mesh of the module: ranks, dims, axes. */
bool verify_meshes(const TileModule *m, TileDiag *d);
/* Checks a sharding attribute against a value's type and a mesh (NULL when it
 * could not be found: the caller has reported why, so only the shape of the
 * attribute is checked). what names the value in messages. */
bool verify_sharding(const TileMesh *mesh, MeshWhy why, const TileAttr *s, const TileType *t,
                     TileDiag *d, TileLoc loc, const char *what);
/* Checks the `axes` attribute of a collective (names of distinct axes of mesh) and
 * gives the product of their sizes. */
bool rule_check_axes(RuleCtx *c, const TileMesh *mesh, int64_t *product);
/* Checks a `peer` attribute: (axis, offset) with the axis in the op's mesh. */
bool rule_check_peer(RuleCtx *c);
/* The sentence that says why no mesh was found. */
const char *verify_mesh_why(MeshWhy why);

#endif
