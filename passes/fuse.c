/* fuse: tag the ops of each `func` with fusion groups (`group = N`), the units the
 * VLIW lowering hands to one generator each (include/tile/lower.h).
 *
 * Needs a verified module, after decompose. Guarantees: every tensor op of a func
 * body but `constant` and `iota` carries `group = N` (N >= 0); ops with the same N form
 * a group that one generator can run as a unit, and groups are numbered so that each
 * reads only values of groups numbered below it, function inputs and constants (no
 * cycles; among the groups ready at a point, the one whose first op comes first takes
 * the next number). Kernels are left alone.
 *
 * Every op starts as a group of its own; then, in program order, each elementwise op,
 * broadcast and last-axis reduce is merged with the groups of its operands' producers
 * when the merged group is one a generator takes and the merge makes no cycle. It first
 * tries all its producers' groups at once (so a matmul, the broadcast of its bias and the
 * add of the two merge, though the matmul with the add alone would read a full-size
 * broadcast), then one at a time. So a value whose readers all end in its group never
 * goes to memory, and the convert and broadcast of a gamma or a bias (which read only
 * a function input) end in the group of the op that uses them. A value read outside its
 * group is still written to memory by the lowering; what a group writes is known only
 * when all ops are placed, so it is checked then, and merging starts over where a
 * group writes what its generator cannot (place_all).
 *
 * What a generator takes, mirrored here from backend-vliw/gen_rowwise.c and
 * gen_matmul_plan.c, so a group is never made that the lowering would refuse:
 *   - row-wise: the group's full shape is that of its largest value; every value is
 *     that shape, one number per row (the full shape without its last dim), a splat, or
 *     a smaller table that a broadcast spreads along rows; elementwise ops keep their
 *     operands' class; reduces go from full rows to one number per row (add, max or min,
 *     on floats); rope on the full shape, its cos and sin read from outside; values
 *     read outside are full or per-row; at most 8 passes over a row (one per chained
 *     reduction) and 256 values.
 *   - matmul: one matmul or dot_general whose operands come from outside the group,
 *     then elementwise ops and broadcasts on its result shape or on rows of its N
 *     elements (a bias, its convert), each reading the matmul's result, values of the
 *     group, splats, at most 8 outside rows of N elements or at most 2 outside values of
 *     the matmul's shape (f32 or bf16 each; not a late permute's result, late_permute()); at
 *     most 64 such ops; one value read outside, of the matmul's shape, in f32 or bf16.
 *   - attention, gather, argmax, topk, the layout ops (reshape, transpose,
 *     slice, concatenate), other reduces and ops of several results: a group each. */
#include <stdlib.h>
#include <string.h>

#include "tile/ops.h"
#include "tile/pass.h"
#include "tile/rewrite.h"

/* The generators' limits (RW_MAX_VALS, RW_MAX_PASSES in backend-vliw/gen_rowwise.h;
 * MM_MAX_EPI, MM_MAX_ROWS, MM_MAX_TILES in gen_matmul.h): a group past them would be
 * refused when lowered, too late to split. */
enum { ROW_MAX_VALUES = 256, ROW_MAX_PASSES = 8, EPI_MAX_OPS = 64, EPI_MAX_ROWS = 8,
       EPI_MAX_TILES = 2 };

/* The most groups one op merges at once: itself and its producers' (select reads 3). */
enum { MAX_ROOTS = 8 };

typedef enum Role {
  R_NONE,   /* constant, iota, control and collective ops: in no group */
  R_SOLO,   /* a group of its own */
  R_MATMUL, /* leads a matmul group */
  R_ROW,    /* elementwise, broadcast, last-axis reduce: merges */
} Role;

typedef struct Fuse {
  TileModule *m;
  TileOp **ops; /* the body in order, the return and untagged ops included */
  int32_t n;
  uint8_t *role;
  /* op -> index, open addressing on the pointer */
  const TileOp **hkey;
  int32_t *hval;
  size_t hcap;
  /* the ops reading each op's results (ops in nested regions count as their top-level
   * op), users[ustart[i] .. ustart[i+1]) */
  int32_t *ustart, *users;
  /* groups: union-find, each root holding its members as a list */
  int32_t *parent, *next, *tail;
  /* the union being tried: its members sorted, marked with inu[k] == ucur */
  int32_t *members, nmembers;
  int32_t *inu, ucur;
  /* ops whose groups are checked with what they write (see place_all) */
  uint8_t *strict;
  /* scratch: the cycle search, levels, tables fed to a broadcast */
  int32_t *seen, epoch, *stack, *level, *fed;
  bool oom;
} Fuse;

/* ---- the body ---- */

static int32_t index_of(const Fuse *f, const TileOp *op) {
  if (!op) return -1;
  for (size_t i = tile_hash_ptr(op) & (f->hcap - 1);; i = (i + 1) & (f->hcap - 1)) {
    if (!f->hkey[i]) return -1;
    if (f->hkey[i] == op) return f->hval[i];
  }
}

static int32_t def_of(const Fuse *f, const TileValue *v) { return index_of(f, v->def); }

/* A reduce over the last axis only. */
static bool is_row_reduce(const TileOp *op) {
  if (op->kind != TILE_OP_REDUCE) return false;
  const TileAttr *dims = tile_attr_get(&op->attrs, "dims");
  int rank = op->opnd[0].v->type.rank;
  return dims && dims->kind == TILE_ATTR_ARRAY && dims->n == 1 && dims->elems[0].i == rank - 1;
}

static Role role_of(const TileOp *op) {
  TileOpKind k = (TileOpKind)op->kind;
  if (k == TILE_OP_CONSTANT || k == TILE_OP_IOTA || tile_op_info[k].family != TILE_FAMILY_TENSOR)
    return R_NONE;
  if (op->nres != 1) return R_SOLO;
  if (k == TILE_OP_MATMUL || k == TILE_OP_DOT_GENERAL) return R_MATMUL;
  if (tile_op_is_elementwise(k) || k == TILE_OP_BROADCAST || is_row_reduce(op) ||
      k == TILE_OP_ROPE)
    return R_ROW;
  return R_SOLO;
}


static bool shape_is(const TileType *t, int rank, const int64_t *dims) {
  if (t->rank != rank) return false;
  for (int i = 0; i < rank; i++)
    if (t->dims[i] != dims[i]) return false;
  return true;
}

/* Records that top-level op `user` reads the values of v's defining op. With count set,
 * only counts. */
static void note_use(Fuse *f, const TileValue *v, int32_t user, bool count) {
  int32_t d = def_of(f, v);
  if (d < 0) return;
  if (count) f->ustart[d + 1]++;
  else f->users[f->ustart[d + 1]++] = user;
}

static void note_uses(Fuse *f, const TileOp *op, int32_t user, bool count) {
  for (int32_t i = 0; i < op->nopnd; i++) {
    note_use(f, op->opnd[i].v, user, count);
    for (int32_t k = 0; k < op->opnd[i].nidx; k++)
      if (op->opnd[i].idx[k].v) note_use(f, op->opnd[i].idx[k].v, user, count);
  }
  for (int32_t r = 0; r < op->nregion; r++)
    for (const TileOp *in = op->region[r]->first; in; in = in->next) note_uses(f, in, user, count);
}

/* The index, the roles and the users of the body's ops. */
static bool scan_body(Fuse *f, TileFunc *fn) {
  for (TileOp *op = fn->body->first; op; op = op->next) f->n++;
  size_t n = (size_t)f->n + 1;
  f->hcap = 16;
  while (f->hcap < 2 * n) f->hcap *= 2;
  f->ops = calloc(n, sizeof *f->ops);
  f->role = calloc(n, 1);
  f->hkey = calloc(f->hcap, sizeof *f->hkey);
  f->hval = calloc(f->hcap, sizeof *f->hval);
  f->ustart = calloc(n + 1, sizeof *f->ustart);
  int32_t *arrays[8];
  for (int a = 0; a < 8; a++) arrays[a] = calloc(n, sizeof(int32_t));
  f->parent = arrays[0];
  f->next = arrays[1];
  f->tail = arrays[2];
  f->members = arrays[3];
  f->inu = arrays[4];
  f->seen = arrays[5];
  f->stack = arrays[6];
  f->level = arrays[7];
  f->fed = calloc(n, sizeof *f->fed);
  f->strict = calloc(n, 1);
  for (int a = 0; a < 8; a++)
    if (!arrays[a]) f->oom = true;
  if (f->oom || !f->ops || !f->role || !f->hkey || !f->hval || !f->ustart || !f->fed ||
      !f->strict) {
    f->oom = true;
    return false;
  }
  int32_t i = 0;
  for (TileOp *op = fn->body->first; op; op = op->next, i++) {
    f->ops[i] = op;
    f->role[i] = (uint8_t)role_of(op);
    size_t h = tile_hash_ptr(op) & (f->hcap - 1);
    while (f->hkey[h]) h = (h + 1) & (f->hcap - 1);
    f->hkey[h] = op;
    f->hval[h] = i;
  }
  for (i = 0; i < f->n; i++) note_uses(f, f->ops[i], i, true);
  for (i = 0; i < f->n; i++) f->ustart[i + 1] += f->ustart[i];
  f->users = calloc((size_t)f->ustart[f->n] + 1, sizeof *f->users);
  if (!f->users) {
    f->oom = true;
    return false;
  }
  /* Fill with ustart[d + 1] as each op's cursor, then shift back. */
  for (i = f->n; i > 0; i--) f->ustart[i] = f->ustart[i - 1];
  for (i = 0; i < f->n; i++) note_uses(f, f->ops[i], i, false);
  f->ustart[0] = 0;
  return true;
}

/* ---- groups ---- */

static int32_t find(Fuse *f, int32_t i) {
  while (f->parent[i] != i) {
    f->parent[i] = f->parent[f->parent[i]];
    i = f->parent[i];
  }
  return i;
}

static bool in_union(const Fuse *f, int32_t k) { return f->inu[k] == f->ucur; }

static int cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

/* Makes the union of the groups rooted at roots[] the one under test: its members
 * sorted by position, each marked. */
static void gather(Fuse *f, const int32_t *roots, int nroots) {
  f->ucur++;
  f->nmembers = 0;
  for (int r = 0; r < nroots; r++)
    for (int32_t k = roots[r]; k >= 0; k = f->next[k]) {
      f->members[f->nmembers++] = k;
      f->inu[k] = f->ucur;
    }
  qsort(f->members, (size_t)f->nmembers, sizeof *f->members, cmp_i32);
}

/* Whether the result of member k is read by an op outside the union (the return
 * included): the lowering writes it to memory. */
static bool read_outside(const Fuse *f, int32_t k) {
  for (int32_t u = f->ustart[k]; u < f->ustart[k + 1]; u++)
    if (!in_union(f, f->users[u])) return true;
  return false;
}

static bool defined_inside(const Fuse *f, const TileValue *v) {
  int32_t d = def_of(f, v);
  return d >= 0 && in_union(f, d);
}

/* A path from the union through an op outside it back into it: merging would make a
 * group that needs its own value before it runs. Ops after the union's last member
 * cannot lead back (an op reads only earlier ops), so the search stops there. */
static bool makes_cycle(Fuse *f) {
  int32_t last = f->members[f->nmembers - 1], sp = 0;
  f->epoch++;
  for (int32_t j = 0; j < f->nmembers; j++) {
    int32_t k = f->members[j];
    for (int32_t u = f->ustart[k]; u < f->ustart[k + 1]; u++) {
      int32_t q = f->users[u];
      if (in_union(f, q) || q > last || f->seen[q] == f->epoch) continue;
      f->seen[q] = f->epoch;
      f->stack[sp++] = q;
    }
  }
  while (sp > 0) {
    int32_t k = f->stack[--sp];
    for (int32_t u = f->ustart[k]; u < f->ustart[k + 1]; u++) {
      int32_t q = f->users[u];
      if (in_union(f, q)) return true;
      if (q > last || f->seen[q] == f->epoch) continue;
      f->seen[q] = f->epoch;
      f->stack[sp++] = q;
    }
  }
  return false;
}

/* ---- what the row-wise generator takes ---- */

typedef enum Cls { C_SPLAT, C_FULL, C_ROW, C_TABLE } Cls;

typedef struct Shape {
  int rank;
  int64_t dims[TILE_MAX_RANK];
} Shape;

/* The group's full shape: that of its largest value (as gen_rowwise.c picks it). */
static Shape full_shape(const Fuse *f) {
  Shape s = {0, {0}};
  int64_t best = -1;
  for (int32_t j = 0; j < f->nmembers; j++) {
    const TileOp *op = f->ops[f->members[j]];
    for (int32_t k = 0; k < op->nres + op->nopnd; k++) {
      const TileValue *v = k < op->nres ? op->res[k] : op->opnd[k - op->nres].v;
      int64_t n = tile_type_numel(&v->type);
      if (n > best || (n == best && v->type.rank > s.rank)) {
        best = n;
        s.rank = v->type.rank;
        memcpy(s.dims, v->type.dims, sizeof s.dims);
      }
    }
  }
  if (s.rank == 0) { /* scalars: one row of one element */
    s.rank = 1;
    s.dims[0] = 1;
  }
  return s;
}

static Cls cls_of(const Shape *s, const TileValue *v) {
  if (tile_value_is_splat(v)) return C_SPLAT;
  if (shape_is(&v->type, s->rank, s->dims)) return C_FULL;
  if (shape_is(&v->type, s->rank - 1, s->dims)) return C_ROW;
  return C_TABLE;
}

/* A broadcast spreading a table along rows: the operand's last dim becomes the row and
 * its other dims the dims just before, sizes kept. */
static bool spreads_table(const Shape *s, const TileOp *op) {
  const TileAttr *dims = tile_attr_get(&op->attrs, "dims");
  const TileType *a = &op->opnd[0].v->type;
  if (!dims || dims->kind != TILE_ATTR_ARRAY || dims->n != a->rank || a->rank < 1) return false;
  for (int i = 0; i < a->rank; i++) {
    int64_t want = s->rank - a->rank + i;
    if (dims->elems[i].i != want || a->dims[i] != s->dims[want]) return false;
  }
  return true;
}

/* A broadcast of one number per row along the row. */
static bool spreads_rows(const Shape *s, const TileOp *op) {
  const TileAttr *dims = tile_attr_get(&op->attrs, "dims");
  if (!dims || dims->kind != TILE_ATTR_ARRAY || dims->n != s->rank - 1) return false;
  for (int i = 0; i < dims->n; i++)
    if (dims->elems[i].i != i) return false;
  return true;
}

static bool reduce_kind_ok(const TileOp *op) {
  const TileAttr *k = tile_attr_get(&op->attrs, "kind");
  return k && k->kind == TILE_ATTR_IDENT &&
         (!strcmp(k->s, "add") || !strcmp(k->s, "max") || !strcmp(k->s, "min")) &&
         tile_elem_is_float((TileElem)op->opnd[0].v->type.elem);
}

static bool row_op_ok(const Fuse *f, const Shape *s, const TileOp *op) {
  Cls r = cls_of(s, op->res[0]);
  /* rope rotates halves of the row by tables of its rows, which the generator copies
   * in: they come from outside the group */
  if (op->kind == TILE_OP_ROPE)
    return r == C_FULL && cls_of(s, op->opnd[0].v) == C_FULL &&
           !defined_inside(f, op->opnd[1].v) && !defined_inside(f, op->opnd[2].v);
  if (op->kind == TILE_OP_REDUCE)
    return cls_of(s, op->opnd[0].v) == C_FULL && r == C_ROW && reduce_kind_ok(op);
  if (op->kind == TILE_OP_BROADCAST) {
    if (r != C_FULL) return false;
    switch (cls_of(s, op->opnd[0].v)) {
    case C_ROW: return spreads_rows(s, op);
    case C_TABLE: return spreads_table(s, op);
    default: return true;
    }
  }
  for (int32_t i = 0; i < op->nopnd; i++) {
    Cls c = cls_of(s, op->opnd[i].v);
    if (c != C_SPLAT && c != r) return false;
  }
  return true;
}

/* Values the generator tracks: the members' results and what they read. */
static int32_t count_values(const Fuse *f) {
  int32_t bound = f->nmembers;
  for (int32_t j = 0; j < f->nmembers; j++) bound += f->ops[f->members[j]]->nopnd;
  if (bound <= ROW_MAX_VALUES) return bound;
  int32_t n = f->nmembers;
  for (int32_t j = 0; j < f->nmembers; j++) {
    const TileOp *op = f->ops[f->members[j]];
    for (int32_t i = 0; i < op->nopnd; i++) {
      const TileValue *v = op->opnd[i].v;
      if (defined_inside(f, v)) continue;
      bool again = false;
      for (int32_t p = 0; p <= j && !again; p++) {
        const TileOp *o = f->ops[f->members[p]];
        for (int32_t q = 0; q < (p == j ? i : o->nopnd) && !again; q++) again = o->opnd[q].v == v;
      }
      n += !again;
    }
  }
  return n;
}

/* With strict unset, what the group writes is not checked (its class, the passes it
 * takes): later merges may still take in the ops that read it. */
static bool rowwise_ok(Fuse *f, bool strict) {
  Shape s = full_shape(f);
  for (int32_t j = 0; j < f->nmembers; j++)
    if (f->role[f->members[j]] != R_ROW || !row_op_ok(f, &s, f->ops[f->members[j]])) return false;
  /* Tables made in the group must reach a broadcast (the generator learns their layout
   * from it); walking back, a fed table feeds its table operands. */
  f->epoch++;
  for (int32_t j = f->nmembers - 1; j >= 0; j--) {
    int32_t k = f->members[j];
    const TileOp *op = f->ops[k];
    bool table = cls_of(&s, op->res[0]) == C_TABLE;
    if (table && f->fed[k] != f->epoch) return false;
    if (!table && op->kind != TILE_OP_BROADCAST) continue;
    for (int32_t i = 0; i < op->nopnd; i++) {
      int32_t d = def_of(f, op->opnd[i].v);
      if (d >= 0 && in_union(f, d) && cls_of(&s, op->opnd[i].v) == C_TABLE) f->fed[d] = f->epoch;
    }
  }
  /* Values read outside are full rows or one number per row; one pass over a row per
   * chained reduction (gen_rowwise.c's place()). */
  int32_t last = 0;
  for (int32_t j = 0; j < f->nmembers; j++) {
    int32_t k = f->members[j];
    const TileOp *op = f->ops[k];
    int32_t lvl = 0;
    for (int32_t i = 0; i < op->nopnd; i++) {
      int32_t d = def_of(f, op->opnd[i].v);
      if (d >= 0 && in_union(f, d) && f->level[d] > lvl) lvl = f->level[d];
    }
    if (op->kind == TILE_OP_REDUCE) {
      lvl++;
      if (lvl - 1 > last) last = lvl - 1;
    }
    f->level[k] = lvl;
    if (!strict || !read_outside(f, k)) continue;
    Cls c = cls_of(&s, op->res[0]);
    if (c != C_FULL && c != C_ROW) return false;
    int32_t need = c == C_FULL ? lvl : lvl - 1;
    if (need > last) last = need;
  }
  return last + 1 <= ROW_MAX_PASSES && count_values(f) <= ROW_MAX_VALUES;
}

/* ---- what the matmul generator takes ---- */

/* A row vector: n elements along its last dim, every other dim 1. */
static bool is_row_vector(const TileValue *v, int64_t n) {
  const TileType *t = &v->type;
  return t->rank >= 1 && t->dims[t->rank - 1] == n && tile_type_numel(t) == n;
}

static bool mxu_elem(uint8_t e) { return e == TILE_ELEM_F32 || e == TILE_ELEM_BF16; }

static bool epilogue_bcast_ok(const TileOp *op, int64_t n) {
  const TileValue *a = op->opnd[0].v;
  if (tile_value_is_splat(a) || tile_type_numel(&a->type) == 1) return true;
  const TileAttr *dims = tile_attr_get(&op->attrs, "dims");
  int q = a->type.rank;
  return is_row_vector(a, n) && dims && dims->kind == TILE_ATTR_ARRAY && q >= 1 && dims->n == q &&
         dims->elems[q - 1].i == op->res[0]->type.rank - 1;
}

/* A collective_permute's result that its maker expects to land late (`late`, the last
 * hop of coll_matmul's sums). The VLIW lowering waits for a permute's arrival right
 * before the first copy of its result (lower_async.c): in a matmul epilogue that is the
 * last K step, so an early permute lands while the steps before run, but a late one
 * would hold most of the matmul, where an add of its own waits only for itself. */
static bool late_permute(const TileValue *v) {
  int64_t late = 0;
  return v->def && v->def->kind == TILE_OP_COLLECTIVE_PERMUTE &&
         tile_attr_get_int(&v->def->attrs, "late", &late) && late;
}

/* With strict unset, the one value written is not checked (as for rowwise_ok). */
static bool matmul_ok(Fuse *f, bool strict) {
  const TileOp *mm = NULL;
  for (int32_t j = 0; j < f->nmembers; j++) {
    int32_t k = f->members[j];
    if (f->role[k] == R_MATMUL) {
      if (mm) return false;
      mm = f->ops[k];
    } else if (f->role[k] != R_ROW || f->ops[k]->kind == TILE_OP_REDUCE ||
               f->ops[k]->kind == TILE_OP_ROPE) {
      return false;
    }
  }
  for (int32_t i = 0; i < mm->nopnd; i++)
    if (defined_inside(f, mm->opnd[i].v)) return false;
  const TileType *rt = &mm->res[0]->type;
  int64_t n = rt->dims[rt->rank - 1];
  const TileValue *inputs[EPI_MAX_ROWS + EPI_MAX_TILES]; /* outside rows and tiles */
  int nrows = 0, ntiles = 0, nepi = 0, nout = 0;
  for (int32_t j = 0; j < f->nmembers; j++) {
    int32_t k = f->members[j];
    const TileOp *op = f->ops[k];
    const TileValue *res = op->res[0];
    if (strict && read_outside(f, k)) {
      if (++nout > 1 || !shape_is(&res->type, rt->rank, rt->dims) || !mxu_elem(res->type.elem))
        return false;
    }
    if (op == mm) continue;
    if (++nepi > EPI_MAX_OPS) return false;
    if (!shape_is(&res->type, rt->rank, rt->dims) && !is_row_vector(res, n)) return false;
    if (tile_elem_bits((TileElem)res->type.elem) > 32) return false;
    if (op->kind == TILE_OP_BROADCAST && !epilogue_bcast_ok(op, n)) return false;
    for (int32_t i = 0; i < op->nopnd; i++) {
      const TileValue *v = op->opnd[i].v;
      if (tile_value_is_splat(v) || defined_inside(f, v)) continue;
      bool row = is_row_vector(v, n), tile = !row && shape_is(&v->type, rt->rank, rt->dims) &&
                                             !late_permute(v);
      if ((!row && !tile) || !mxu_elem(v->type.elem)) return false;
      bool known = false;
      for (int r = 0; r < nrows + ntiles && !known; r++) known = inputs[r] == v;
      if (known) continue;
      if (row ? nrows == EPI_MAX_ROWS : ntiles == EPI_MAX_TILES) return false;
      inputs[nrows + ntiles] = v;
      if (row) nrows++;
      else ntiles++;
    }
  }
  return true;
}

/* ---- merging ---- */

/* Whether a generator takes the union under test. */
static bool union_ok(Fuse *f, bool strict) {
  bool matmul = false;
  for (int32_t j = 0; j < f->nmembers; j++) {
    matmul |= f->role[f->members[j]] == R_MATMUL;
    strict |= f->strict[f->members[j]];
  }
  return matmul ? matmul_ok(f, strict) : rowwise_ok(f, strict);
}

/* Whether the groups rooted at roots[] may become one: a generator takes the union
 * (what it writes aside, unless one of its ops is strict) and it makes no cycle. */
static bool may_merge(Fuse *f, const int32_t *roots, int nroots) {
  gather(f, roots, nroots);
  return union_ok(f, false) && !makes_cycle(f);
}

static void merge(Fuse *f, const int32_t *roots, int nroots) {
  int32_t root = roots[0];
  for (int r = 1; r < nroots; r++) {
    int32_t other = roots[r];
    f->parent[other] = root;
    f->next[f->tail[root]] = other;
    f->tail[root] = f->tail[other];
  }
}

/* The position of the first op of the group rooted at r: groups run in about that
 * order (number_groups). */
static int32_t group_first(const Fuse *f, int32_t r) {
  int32_t first = r;
  for (int32_t k = r; k >= 0; k = f->next[k])
    if (k < first) first = k;
  return first;
}

/* Merges op i with its producers' groups: all at once when that is allowed, else one
 * at a time, the group that runs last first, until none more joins. The op runs after
 * its last producer anyway; joining a group that runs earlier would hold that whole
 * group back until the last producer is done (a gated product joins its second
 * matmul, so the first runs where it stands). */
static void place_op(Fuse *f, int32_t i) {
  const TileOp *op = f->ops[i];
  int32_t cand[MAX_ROOTS], at[MAX_ROOTS];
  int ncand = 0;
  for (int32_t o = 0; o < op->nopnd && ncand < MAX_ROOTS - 1; o++) {
    int32_t d = def_of(f, op->opnd[o].v);
    if (d < 0 || (f->role[d] != R_ROW && f->role[d] != R_MATMUL)) continue;
    int32_t r = find(f, d);
    bool known = r == find(f, i);
    for (int c = 0; c < ncand && !known; c++) known = cand[c] == r;
    if (known) continue;
    /* insertion by the group's first op, latest first (stable: operand order on ties) */
    int32_t pos = group_first(f, r);
    int c = ncand++;
    for (; c > 0 && at[c - 1] < pos; c--) {
      cand[c] = cand[c - 1];
      at[c] = at[c - 1];
    }
    cand[c] = r;
    at[c] = pos;
  }
  if (ncand == 0) return;
  int32_t roots[MAX_ROOTS];
  roots[0] = find(f, i);
  memcpy(roots + 1, cand, sizeof *cand * (size_t)ncand);
  if (ncand > 1 && may_merge(f, roots, ncand + 1)) {
    merge(f, roots, ncand + 1);
    return;
  }
  for (bool grew = true; grew;) {
    grew = false;
    for (int c = 0; c < ncand; c++) {
      int32_t pair[2] = {find(f, i), find(f, cand[c])};
      if (pair[0] == pair[1] || !may_merge(f, pair, 2)) continue;
      merge(f, pair, 2);
      grew = true;
    }
  }
}

/* Numbers the groups so each comes after the groups it reads: of the groups whose
 * inputs are ready, the one whose first op comes first. */
static bool number_groups(Fuse *f) {
  size_t n = (size_t)f->n + 1;
  int32_t *id = malloc(n * sizeof *id), *first = malloc(n * sizeof *first),
          *need = calloc(n, sizeof *need), *number = malloc(n * sizeof *number);
  bool ok = id && first && need && number;
  if (!ok) f->oom = true;
  int32_t ngroups = 0;
  for (int32_t i = 0; ok && i < f->n; i++) id[i] = -1;
  /* Dense ids in order of each group's first op (a root may be a later member). */
  for (int32_t i = 0; ok && i < f->n; i++) {
    if (f->role[i] == R_NONE) continue;
    int32_t r = find(f, i);
    if (id[r] < 0) {
      first[ngroups] = i;
      number[ngroups] = -1;
      id[r] = ngroups++;
    }
    id[i] = id[r];
  }
  /* Groups reading another group's values, counted once per reading op. */
  for (int32_t i = 0; ok && i < f->n; i++)
    for (int32_t u = f->ustart[i]; u < f->ustart[i + 1] && f->role[i] != R_NONE; u++) {
      int32_t q = f->users[u];
      if (f->role[q] != R_NONE && id[q] != id[i]) need[id[q]]++;
    }
  for (int32_t k = 0; ok && k < ngroups; k++) {
    int32_t pick = -1;
    for (int32_t g = 0; g < ngroups; g++)
      if (number[g] < 0 && need[g] == 0 && (pick < 0 || first[g] < first[pick])) pick = g;
    if (pick < 0) { /* cannot happen: every merge was checked for cycles */
      ok = false;
      break;
    }
    number[pick] = k;
    for (int32_t i = 0; i < f->n; i++) {
      if (f->role[i] == R_NONE || id[i] != pick) continue;
      for (int32_t u = f->ustart[i]; u < f->ustart[i + 1]; u++) {
        int32_t q = f->users[u];
        if (f->role[q] != R_NONE && id[q] != pick) need[id[q]]--;
      }
    }
  }
  for (int32_t i = 0; ok && i < f->n; i++)
    if (f->role[i] != R_NONE)
      tile_op_set_attr(f->m, f->ops[i], "group", tile_attr_int(number[id[i]]));
  free(id);
  free(first);
  free(need);
  free(number);
  return ok;
}

/* Merges in program order. What a group writes (the values read outside it) is known
 * only once the ops after it are placed: a matmul's epilogue writes every value of a
 * gelu chain until its last op joins. So a first round merges without checking what
 * groups write; a group that then writes what its generator cannot has its ops marked
 * strict, and the merging starts over, checking every group holding a strict op in
 * full at each step. Each round marks more ops, so it ends; when every op is strict,
 * every merge was checked in full, and a group's writes change only when it merges. */
static void place_all(Fuse *f) {
  for (bool again = true; again;) {
    again = false;
    for (int32_t i = 0; i < f->n; i++) {
      f->parent[i] = i;
      f->next[i] = -1;
      f->tail[i] = i;
    }
    for (int32_t i = 0; i < f->n; i++)
      if (f->role[i] == R_ROW) place_op(f, i);
    for (int32_t i = 0; i < f->n; i++) {
      if (f->role[i] == R_NONE || find(f, i) != i || f->next[i] < 0) continue;
      int32_t root = i;
      gather(f, &root, 1);
      if (union_ok(f, true)) continue;
      for (int32_t j = 0; j < f->nmembers; j++) {
        again |= !f->strict[f->members[j]];
        f->strict[f->members[j]] = 1;
      }
    }
  }
}

static void fuse_free(Fuse *f) {
  free(f->ops);
  free(f->role);
  free(f->hkey);
  free(f->hval);
  free(f->ustart);
  free(f->users);
  free(f->parent);
  free(f->next);
  free(f->tail);
  free(f->members);
  free(f->inu);
  free(f->seen);
  free(f->stack);
  free(f->level);
  free(f->fed);
  free(f->strict);
}

/* 0: done; 1: out of memory; 2: a cycle among the groups (a bug here). */
static int fuse_func(TileModule *m, TileFunc *fn) {
  Fuse f;
  memset(&f, 0, sizeof f);
  f.m = m;
  int st = 1;
  if (scan_body(&f, fn)) {
    place_all(&f);
    st = number_groups(&f) ? 0 : f.oom ? 1 : 2;
  }
  fuse_free(&f);
  return st;
}

TilePassStatus tile_pass_fuse(TileModule *m, TileDiag *d) {
  for (TileFunc *fn = m->funcs; fn; fn = fn->next) {
    if (fn->is_kernel) continue;
    int st = fuse_func(m, fn);
    if (st == 1) {
      tile_error(d, fn->loc, "internal error: fuse: out of memory in '@%s'", fn->name);
      return TILE_PASS_INTERNAL;
    }
    if (st == 2) {
      tile_error(d, fn->loc, "internal error: fuse: the fusion groups of '@%s' form a cycle",
                 fn->name);
      return TILE_PASS_INTERNAL;
    }
  }
  return TILE_PASS_OK;
}
