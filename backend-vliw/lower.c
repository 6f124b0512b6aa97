/* lower: a tensor-level `func` (after decompose and fuse) to MIR (include/tile/lower.h).
 *
 * Needs: a verified module whose function body holds only tensor ops and a `return`;
 * ops of a fusion group carry the same `group = N` attribute (an untagged op is a
 * group of its own), and groups form no cycle.
 * Guarantees: MIR that reads the parameters from bound HBM buffers (symbols named after
 * them, kind in), writes the results to bound buffers `result`, `result1`, ... (kind
 * out), and keeps every other value that crosses groups in an HBM scratch buffer, or
 * one diagnostic at the source location of what cannot be lowered.
 *
 * Storage: tensors are row-major in HBM in their element type: f32 and i32 in 4 bytes,
 * bf16 in 2; i1 in a 4-byte i32 word (0 or 1), since vector loads move 16 or 32-bit
 * lanes. An i1 parameter or result would need the one byte per element .npy and the
 * emulator's symbols give it, so those are refused. Splat constants are immediates in
 * the generators; dense constants and `iota` become HBM buffers with initial contents,
 * computed here, so no generator has to make them. A `reshape` does not move data: its
 * result names its operand's buffer (unless it is a function result, which has its own).
 *
 * Order: groups run in program order of their first op, moved later only where a
 * group needs a value another group makes (fusion may interleave groups' ops).
 *
 * Semaphores: every group starts numbering its semaphores at 0 again, so a program
 * needs as many as its hungriest group, not the sum over groups (tiny has 16). This is
 * safe because a group drains its transfers before it ends (each dma has its wait, each
 * credit it signals is consumed), so it hands every semaphore on at zero with nothing in
 * flight that could signal it; and the scheduler keeps the DMA-slot ops (dma,
 * sem.signal, sem.wait) in program order, so no op of the next group is moved above the
 * last wait of the one before. A mesh function first sets aside a band of semaphores
 * that only other chips signal (tile_coll_sem_band, backend-vliw/gen_collective.h): a
 * peer may run ahead into a collective while this chip is still in an earlier group,
 * so those ids must be no group's own. A function with a prefetch (lower_prefetch.c)
 * sets aside one more, which copies moved across groups signal, and one with
 * asynchronous permutes (lower_async.c) one more, which their sends signal: those waits
 * run in a later group. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "gen_collective.h"
#include "lower_internal.h"
#include "tile/ops.h"

/* ---- what generators ask for ---- */

TileMir *tile_lower_mir(TileLowerCtx *cx) { return cx->mir; }
const TileTarget *tile_lower_target(TileLowerCtx *cx) { return cx->target; }
TileDiag *tile_lower_diag(TileLowerCtx *cx) { return cx->d; }
int32_t tile_lower_zero(TileLowerCtx *cx) { return cx->zero; }

int tile_lower_elem_bytes(TileElem e) {
  switch (e) {
  case TILE_ELEM_F32:
  case TILE_ELEM_I32:
  case TILE_ELEM_I1: return 4;
  case TILE_ELEM_BF16: return 2;
  default: return 0;
  }
}

uint32_t tile_lower_lane_bits(TileElem e, double x) {
  switch (e) {
  case TILE_ELEM_F32:
  case TILE_ELEM_BF16: {
    float f = (float)x;
    uint32_t u;
    memcpy(&u, &f, 4);
    if (e == TILE_ELEM_F32) return u;
    if ((u & 0x7fffffffu) > 0x7f800000u) return u | 0x00400000u; /* NaN stays NaN */
    return (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;       /* nearest even */
  }
  case TILE_ELEM_I1: return x != 0;
  default: /* integers are whole numbers of the type; clamp what could not be */
    if (isnan(x)) return 0;
    if (x >= 2147483647.0) return 0x7fffffffu;
    if (x <= -2147483648.0) return 0x80000000u;
    return (uint32_t)(int32_t)x;
  }
}

bool tile_lower_error(TileLowerCtx *cx, const TileOp *op, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  TileLoc loc = op ? op->loc : cx->f->loc;
  if (op)
    tile_error(cx->d, loc, "cannot lower '%s': %s", tile_op_name((TileOpKind)op->kind), msg);
  else
    tile_error(cx->d, loc, "cannot lower function '@%s': %s", cx->f->name, msg);
  return false;
}

bool tile_lower_splat(const TileValue *v, double *value) {
  if (!v || !v->def || v->def->kind != TILE_OP_CONSTANT) return false;
  const TileAttr *a = tile_attr_get(&v->def->attrs, "value");
  if (!a) return false;
  double x;
  if (a->kind == TILE_ATTR_INT) x = (double)a->i;
  else if (a->kind == TILE_ATTR_FLOAT) x = a->f;
  else return false;
  if (value) *value = x;
  return true;
}

/* ---- placements: value -> HBM buffer ---- */

static const TileValue *vmap_key(const char *slots, size_t size, size_t i) {
  const TileValue *k;
  memcpy(&k, slots + i * size, sizeof k);
  return k;
}

/* The slot holding v, or the free slot where it goes. */
static size_t vmap_probe(const char *slots, size_t cap, size_t size, const TileValue *v) {
  size_t i = tile_hash_ptr(v) & (cap - 1);
  for (const TileValue *k; (k = vmap_key(slots, size, i)) && k != v;) i = (i + 1) & (cap - 1);
  return i;
}

void *tile_vmap_find(void *slots, size_t cap, size_t size, const TileValue *v) {
  if (!cap) return NULL;
  size_t i = vmap_probe(slots, cap, size, v);
  return vmap_key(slots, size, i) ? (char *)slots + i * size : NULL;
}

void *tile_vmap_slot(void **slots, size_t *cap, size_t *n, size_t size, size_t first_cap,
                     const TileValue *v) {
  if (2 * (*n + 1) > *cap) {
    size_t old_cap = *cap, new_cap = old_cap ? 2 * old_cap : first_cap;
    char *old = *slots, *grown = calloc(new_cap, size);
    if (!grown) {
      fprintf(stderr, "tilec: out of memory lowering\n");
      abort();
    }
    for (size_t i = 0; i < old_cap; i++) {
      const TileValue *k = vmap_key(old, size, i);
      if (k) memcpy(grown + vmap_probe(grown, new_cap, size, k) * size, old + i * size, size);
    }
    free(old);
    *slots = grown;
    *cap = new_cap;
  }
  char *s = (char *)*slots + vmap_probe(*slots, *cap, size, v) * size;
  if (!vmap_key(s, size, 0)) {
    memcpy(s, &v, sizeof v);
    (*n)++;
  }
  return s;
}

static TilePlacement *place_find(TileLowerCtx *cx, const TileValue *v) {
  return tile_vmap_find(cx->place, cx->place_cap, sizeof *cx->place, v);
}

static void place_put(TileLowerCtx *cx, const TileValue *v, TileTensorRef ref) {
  TilePlacement *p = tile_vmap_slot((void **)&cx->place, &cx->place_cap, &cx->place_n,
                                    sizeof *cx->place, 64, v);
  p->ref = ref;
}

static TileTensorRef ref_of_type(const TileType *t, int32_t buf) {
  TileTensorRef r;
  memset(&r, 0, sizeof r);
  r.buf = buf;
  r.elem = t->elem;
  r.rank = t->rank;
  for (int i = 0; i < t->rank; i++) r.dims[i] = t->dims[i];
  r.bytes = tile_type_numel(t) * tile_lower_elem_bytes((TileElem)t->elem);
  return r;
}

/* A name for a buffer holding v: its source name, else its defining op's name. */
static void value_name(TileLowerCtx *cx, const TileValue *v, char *buf, size_t n) {
  if (v->name)
    snprintf(buf, n, "%s", v->name);
  else
    snprintf(buf, n, "%s.%d", v->def ? tile_op_name((TileOpKind)v->def->kind) : "arg",
             (int)cx->nscratch);
}

/* ---- initial contents of constants and iota ---- */

static void put_elem(uint8_t *p, TileElem e, double x) {
  uint32_t u = tile_lower_lane_bits(e, x);
  if (e == TILE_ELEM_BF16) {
    uint16_t h = (uint16_t)(u >> 16);
    memcpy(p, &h, 2);
  } else {
    memcpy(p, &u, 4);
  }
}

static double attr_number(const TileAttr *a) {
  return a->kind == TILE_ATTR_INT ? (double)a->i : a->kind == TILE_ATTR_FLOAT ? a->f : 0;
}

/* The bytes of a constant or iota value; NULL for other values. */
static uint8_t *initial_bytes(const TileValue *v, int64_t *len) {
  const TileOp *op = v->def;
  if (!op || (op->kind != TILE_OP_CONSTANT && op->kind != TILE_OP_IOTA)) return NULL;
  const TileType *t = &v->type;
  TileElem e = (TileElem)t->elem;
  int eb = tile_lower_elem_bytes(e);
  int64_t n = tile_type_numel(t);
  uint8_t *bytes = malloc((size_t)(n * eb) + 1);
  if (!bytes) {
    fprintf(stderr, "tilec: out of memory lowering constants\n");
    abort();
  }
  const TileAttr *val = tile_attr_get(&op->attrs, "value");
  int64_t dim = 0;
  if (op->kind == TILE_OP_IOTA) tile_attr_get_int(&op->attrs, "dim", &dim);
  int64_t inner = 1; /* iota: elements per step of dim */
  for (int k = (int)dim + 1; k < t->rank; k++) inner *= t->dims[k];
  for (int64_t i = 0; i < n; i++) {
    double x;
    if (op->kind == TILE_OP_IOTA) x = (double)((i / inner) % t->dims[dim]);
    else if (val->kind == TILE_ATTR_ARRAY) x = attr_number(&val->elems[i < val->n ? i : 0]);
    else x = attr_number(val);
    put_elem(bytes + i * eb, e, x);
  }
  *len = n * eb;
  return bytes;
}

/* Bytes of one step of dim 0 of t (row-major). */
static int64_t row_bytes(const TileType *t) {
  int64_t n = tile_lower_elem_bytes((TileElem)t->elem);
  for (int i = 1; i < t->rank; i++) n *= t->dims[i];
  return n;
}

/* Whether slice op takes whole rows (a range of dim 0, every other dim whole, step 1):
 * bytes that lie together in its operand. */
static bool slices_rows(const TileOp *op) {
  const TileAttr *start = tile_attr_get(&op->attrs, "start"), *limit = tile_attr_get(&op->attrs, "limit");
  const TileType *t = &op->opnd[0].v->type;
  if (tile_attr_get(&op->attrs, "stride") || !start || !limit || start->n != t->rank ||
      limit->n != t->rank || t->rank < 1)
    return false;
  for (int i = 1; i < t->rank; i++)
    if (start->elems[i].i != 0 || limit->elems[i].i != t->dims[i]) return false;
  return true;
}

/* Where v's bytes can lie inside another value's, so the copy between them is none:
 * a slice of whole rows lies in its operand; a value that one concatenate along dim 0
 * reads (other ops may read it too), made by an op (not a constant or a parameter; of
 * the collectives, a permute, which the chip before writes there as it would anywhere:
 * HBM buffers are never shared), lies in the concatenate's result. Sets the buffer and
 * byte offset. */
static bool lies_in(TileLowerCtx *cx, const TileValue *v, int32_t *buf, int64_t *off) {
  const TileOp *def = v->def;
  if (!def || v->type.kind != TILE_TY_TENSOR) return false;
  if (def->kind == TILE_OP_SLICE && slices_rows(def)) {
    *buf = tile_lower_tensor(cx, def->opnd[0].v).buf;
    *off = tile_attr_get(&def->attrs, "start")->elems[0].i * row_bytes(&def->opnd[0].v->type);
    return true;
  }
  if (def->kind == TILE_OP_CONSTANT || def->kind == TILE_OP_RESHAPE ||
      (tile_op_info[def->kind].family == TILE_FAMILY_COLLECTIVE &&
       def->kind != TILE_OP_COLLECTIVE_PERMUTE))
    return false;
  const TileOp *cat = NULL;
  for (const TileOp *op = cx->f->body->first; op; op = op->next)
    for (int k = 0; k < op->nopnd && op->kind == TILE_OP_CONCATENATE; k++) {
      if (op->opnd[k].v != v) continue;
      if (cat) return false; /* two places */
      cat = op;
    }
  int64_t dim = -1;
  if (!cat || !tile_attr_get_int(&cat->attrs, "dim", &dim) || dim != 0) return false;
  int64_t at = 0;
  for (int k = 0; k < cat->nopnd && cat->opnd[k].v != v; k++)
    at += tile_type_numel(&cat->opnd[k].v->type) * tile_lower_elem_bytes((TileElem)v->type.elem);
  *buf = tile_lower_tensor(cx, cat->res[0]).buf;
  *off = at;
  return true;
}

TileTensorRef tile_lower_tensor(TileLowerCtx *cx, const TileValue *v) {
  TilePlacement *p = place_find(cx, v);
  if (p) return p->ref;
  TileTensorRef ref;
  int32_t in_buf;
  int64_t in_off;
  if (v->def && v->def->kind == TILE_OP_RESHAPE) {
    /* Row-major order is the same before and after: share the operand's buffer. */
    TileTensorRef src = tile_lower_tensor(cx, v->def->opnd[0].v);
    ref = ref_of_type(&v->type, src.buf);
  } else if (lies_in(cx, v, &in_buf, &in_off)) {
    char name[64];
    value_name(cx, v, name, sizeof name);
    int64_t bytes = tile_type_numel(&v->type) * tile_lower_elem_bytes((TileElem)v->type.elem);
    ref = ref_of_type(&v->type, tile_mir_view(cx->mir, name, in_buf, in_off, bytes));
  } else {
    char name[64];
    value_name(cx, v, name, sizeof name);
    cx->nscratch++;
    int64_t bytes = tile_type_numel(&v->type) * tile_lower_elem_bytes((TileElem)v->type.elem);
    int32_t buf = tile_mir_buffer(cx->mir, name, TILE_SPACE_HBM, bytes, 1, HBM_ALIGN);
    int64_t len = 0;
    uint8_t *init = initial_bytes(v, &len);
    if (init) {
      tile_mir_data(cx->mir, buf, init, len);
      free(init);
    }
    ref = ref_of_type(&v->type, buf);
  }
  place_put(cx, v, ref);
  return ref;
}

/* ---- groups ---- */

/* Ops a row-wise generator takes: elementwise, last-axis reductions (the generator
 * checks the axis), broadcasts, and the composites it implements whole. */
static bool is_rowwise(TileOpKind k) {
  return tile_op_is_elementwise(k) || k == TILE_OP_REDUCE || k == TILE_OP_BROADCAST ||
         k == TILE_OP_ROPE || k == TILE_OP_SOFTMAX || k == TILE_OP_LAYERNORM ||
         k == TILE_OP_RMSNORM || k == TILE_OP_GELU || k == TILE_OP_SILU;
}

/* ring_slice and ring_concat read the chip's position but move nothing between chips:
 * local copies, not collective groups (gen_layout_ring.c says why). */
static bool is_layout(TileOpKind k) {
  return k == TILE_OP_RESHAPE || k == TILE_OP_TRANSPOSE || k == TILE_OP_SLICE ||
         k == TILE_OP_CONCATENATE || k == TILE_OP_RING_SLICE || k == TILE_OP_RING_CONCAT;
}

/* The kind an op alone asks for; -1 for an op no generator takes. */
static int solo_kind(TileOpKind k) {
  switch (k) {
  case TILE_OP_MATMUL:
  case TILE_OP_DOT_GENERAL: return TILE_GROUP_MATMUL;
  case TILE_OP_ATTENTION: return TILE_GROUP_ATTENTION;
  case TILE_OP_GATHER: return TILE_GROUP_GATHER;
  case TILE_OP_ARGMAX:
  case TILE_OP_TOPK: return TILE_GROUP_SELECT_TOP;
  case TILE_OP_ALL_REDUCE:
  case TILE_OP_ALL_GATHER:
  case TILE_OP_REDUCE_SCATTER:
  case TILE_OP_ALL_TO_ALL:
  case TILE_OP_COLLECTIVE_PERMUTE: return TILE_GROUP_COLLECTIVE;
  default: break;
  }
  if (is_layout(k)) return TILE_GROUP_LAYOUT;
  if (is_rowwise(k)) return TILE_GROUP_ROWWISE;
  return -1;
}

static bool fits_op(TileLowerCtx *cx, const TileOp *op) {
  TileOpKind k = (TileOpKind)op->kind;
  if (tile_op_info[k].family == TILE_FAMILY_COLLECTIVE && !tile_coll_func_mesh(cx->m, cx->f))
    return tile_lower_error(cx, op, "collectives need a mesh of chips: give the function "
                                    "{mesh = @name}");
  if (solo_kind(k) >= 0) return true;
  switch (tile_op_info[k].family) {
  case TILE_FAMILY_TILE:
  case TILE_FAMILY_DMA:
    return tile_lower_error(cx, op, "tile-level ops belong in a `kernel`, not a `func`");
  default: return tile_lower_error(cx, op, "no machine code generator takes this op");
  }
}

bool tile_group_classify(TileLowerCtx *cx, TileGroup *g) {
  for (int32_t i = 0; i < g->nops; i++)
    if (!fits_op(cx, g->ops[i])) return false;
  /* A group with a matmul, attention, gather or selection is that kind; the other ops
   * must be ones that generator takes alongside (a matmul's epilogue). */
  int lead = -1;
  const TileOp *lead_op = NULL;
  for (int32_t i = 0; i < g->nops; i++) {
    int k = solo_kind((TileOpKind)g->ops[i]->kind);
    if (k == TILE_GROUP_ROWWISE || k == TILE_GROUP_LAYOUT) continue;
    if (lead >= 0)
      return tile_lower_error(cx, g->ops[i], "a fusion group holds at most one %s, %s or %s "
                              "op; this one shares group %d with '%s'",
                              "matmul", "attention", "selection", (int)g->id,
                              tile_op_name((TileOpKind)lead_op->kind));
    lead = k;
    lead_op = g->ops[i];
  }
  bool all_layout = true, all_rowwise = true;
  for (int32_t i = 0; i < g->nops; i++) {
    TileOpKind k = (TileOpKind)g->ops[i]->kind;
    all_layout &= is_layout(k);
    all_rowwise &= is_rowwise(k);
  }
  if (lead >= 0) {
    if (lead != TILE_GROUP_MATMUL && g->nops > 1) {
      const TileOp *other = g->ops[0] == lead_op ? g->ops[1] : g->ops[0];
      return tile_lower_error(cx, other, "'%s' is a fusion group of its own; this op shares "
                              "group %d with it", tile_op_name((TileOpKind)lead_op->kind),
                              (int)g->id);
    }
    for (int32_t i = 0; i < g->nops; i++)
      if (g->ops[i] != lead_op && !is_rowwise((TileOpKind)g->ops[i]->kind))
        return tile_lower_error(cx, g->ops[i], "a matmul's fusion group takes elementwise ops, "
                                "broadcasts and reductions after it, not this op");
    g->kind = (TileGroupKind)lead;
    return true;
  }
  /* A lone convert is a copy that changes the element type. */
  if (all_layout || (g->nops == 1 && g->ops[0]->kind == TILE_OP_CONVERT)) {
    g->kind = TILE_GROUP_LAYOUT;
    return true;
  }
  if (all_rowwise) {
    g->kind = TILE_GROUP_ROWWISE;
    return true;
  }
  for (int32_t i = 0; i < g->nops; i++)
    if (is_layout((TileOpKind)g->ops[i]->kind))
      return tile_lower_error(cx, g->ops[i], "layout ops (reshape, transpose, slice, "
                              "concatenate, ring_slice, ring_concat) are fusion groups of "
                              "their own; this one shares group %d with elementwise ops",
                              (int)g->id);
  return tile_lower_error(cx, g->ops[0], "no generator takes this fusion group");
}

static TileGenFn *const generators[TILE_GROUP_KIND_COUNT] = {
#define X(e, n, f) f,
    TILE_GROUP_KINDS(X)
#undef X
};

/* ---- the function ---- */

/* The body's ops grouped: ops[i] belongs to groups[group_of[i]]. */
typedef struct Plan {
  TileOp **ops;
  int32_t nops;
  int32_t *group_of;
  TileGroup *groups;
  int32_t ngroups;
  TileOp *ret;
} Plan;

/* Ops whose values need no generator: constants (splats are immediates, dense ones
 * initial data) and iota (initial data). */
static bool is_materialized(const TileOp *op) {
  return op->kind == TILE_OP_CONSTANT || op->kind == TILE_OP_IOTA;
}

static int32_t op_index(const Plan *p, const TileOp *op) {
  for (int32_t i = 0; i < p->nops; i++)
    if (p->ops[i] == op) return i;
  return -1;
}

static void add_unique(TileValue **list, int32_t *n, TileValue *v) {
  for (int32_t i = 0; i < *n; i++)
    if (list[i] == v) return;
  list[(*n)++] = v;
}

/* Collects the ops, groups them by their `group` attribute, and computes each group's
 * inputs and outputs. */
static bool make_plan(TileLowerCtx *cx, Plan *p) {
  TileModule *m = cx->m;
  memset(p, 0, sizeof *p);
  int32_t n = 0;
  for (TileOp *op = cx->f->body->first; op; op = op->next) n++;
  p->ops = tile_alloc(m, sizeof *p->ops * (size_t)(n + 1));
  p->group_of = tile_alloc(m, sizeof *p->group_of * (size_t)(n + 1));
  p->groups = tile_alloc(m, sizeof *p->groups * (size_t)(n + 1));
  int64_t *ids = tile_alloc(m, sizeof *ids * (size_t)(n + 1));
  bool ok = true;
  for (TileOp *op = cx->f->body->first; op; op = op->next) {
    if (op->kind == TILE_OP_RETURN) {
      p->ret = op;
      continue;
    }
    if (op->kind == TILE_OP_FOR || op->kind == TILE_OP_IF || op->kind == TILE_OP_CALL) {
      ok = tile_lower_error(cx, op, "control flow in a `func` is not supported by the one-chip "
                                    "compiler; shapes are static, so write straight-line code");
      continue;
    }
    if (is_materialized(op)) continue;
    if (!fits_op(cx, op)) {
      ok = false;
      continue;
    }
    int64_t id = -1;
    const TileAttr *ga = tile_attr_get(&op->attrs, "group");
    if (ga && ga->kind == TILE_ATTR_INT) id = ga->i;
    int32_t g = -1;
    if (id >= 0)
      for (int32_t k = 0; k < p->ngroups && g < 0; k++)
        if (ids[k] == id) g = k;
    if (g < 0) {
      g = p->ngroups++;
      ids[g] = id;
      p->groups[g].id = (int32_t)id;
      p->groups[g].ops = tile_alloc(m, sizeof(TileOp *) * (size_t)n);
    }
    p->groups[g].ops[p->groups[g].nops++] = op;
    p->group_of[p->nops] = g;
    p->ops[p->nops++] = op;
  }
  if (!ok) return false;
  if (!p->ret)
    return tile_error(cx->d, cx->f->loc, "cannot lower function '@%s': it has no return",
                      cx->f->name);

  /* Inputs: values a group reads that it does not define (splats are immediates).
   * Outputs: values it defines that another group or the return reads. */
  for (int32_t g = 0; g < p->ngroups; g++) {
    TileGroup *gr = &p->groups[g];
    int32_t nin = 0, nout = 0;
    for (int32_t i = 0; i < gr->nops; i++) {
      nin += gr->ops[i]->nopnd;
      nout += gr->ops[i]->nres;
    }
    gr->in = tile_alloc(m, sizeof(TileValue *) * (size_t)(nin + 1));
    gr->out = tile_alloc(m, sizeof(TileValue *) * (size_t)(nout + 1));
  }
  for (TileOp *op = cx->f->body->first; op; op = op->next) {
    int32_t user = op == p->ret ? -1 : op_index(p, op);
    if (op != p->ret && user < 0) continue;
    int32_t ug = user >= 0 ? p->group_of[user] : -1;
    for (int32_t i = 0; i < op->nopnd; i++) {
      TileValue *v = op->opnd[i].v;
      int32_t def = v->def ? op_index(p, v->def) : -1;
      int32_t dg = def >= 0 ? p->group_of[def] : -1;
      if (dg >= 0 && dg != ug) add_unique(p->groups[dg].out, &p->groups[dg].nout, v);
      if (ug >= 0 && (dg != ug) && !tile_lower_splat(v, NULL))
        add_unique(p->groups[ug].in, &p->groups[ug].nin, v);
    }
  }
  return true;
}

/* The group that defines v, or -1 (a parameter or a materialized constant). */
static int32_t group_defining(const Plan *p, const TileValue *v) {
  int32_t i = v->def ? op_index(p, v->def) : -1;
  return i >= 0 ? p->group_of[i] : -1;
}

/* Orders groups so each follows the groups whose values it reads: the first ready
 * group in program order each time. A cycle means the fuse pass grouped ops that
 * cannot run as units; order[] gets the groups, and false is returned on a cycle. */
static bool order_groups(TileLowerCtx *cx, const Plan *p, int32_t *order) {
  bool *done = tile_alloc(cx->m, (size_t)p->ngroups + 1);
  for (int32_t k = 0; k < p->ngroups; k++) {
    int32_t pick = -1;
    for (int32_t g = 0; g < p->ngroups && pick < 0; g++) {
      if (done[g]) continue;
      bool ready = true;
      for (int32_t i = 0; i < p->groups[g].nin && ready; i++) {
        int32_t dg = group_defining(p, p->groups[g].in[i]);
        ready = dg < 0 || done[dg];
      }
      if (ready) pick = g;
    }
    if (pick < 0) {
      for (int32_t g = 0; g < p->ngroups; g++)
        if (!done[g])
          return tile_error(cx->d, p->groups[g].ops[0]->loc,
                            "internal error: fusion group %d needs a value of a group that "
                            "needs its own; the fuse pass made a cycle", (int)p->groups[g].id);
    }
    done[pick] = true;
    order[k] = pick;
  }
  return true;
}

static bool supported_elem(TileElem e) { return tile_lower_elem_bytes(e) > 0; }

static bool check_value(TileLowerCtx *cx, const TileValue *v, TileLoc fallback, const char *what) {
  if (v->type.kind != TILE_TY_TENSOR)
    return tile_error(cx->d, v->loc.line ? v->loc : fallback,
                      "cannot lower %s: the one-chip compiler takes tensors only", what);
  if (supported_elem((TileElem)v->type.elem)) return true;
  TileElem e = (TileElem)v->type.elem;
  return tile_error(cx->d, v->loc.line ? v->loc : fallback,
                    "cannot lower %s of element type %s: the VLIW backend supports f32, bf16, "
                    "i32 and i1; convert it to %s", what, tile_elem_name(e),
                    tile_elem_is_float(e) ? "f32 or bf16" : "i32");
}

/* Every value's element type, before any generator runs (so none meets one it
 * cannot store). */
static bool check_types(TileLowerCtx *cx) {
  bool ok = true;
  TileBlock *body = cx->f->body;
  for (int32_t i = 0; i < body->nargs; i++) {
    const TileValue *a = body->args[i];
    char what[96];
    snprintf(what, sizeof what, "parameter '%%%s'", a->name ? a->name : "?");
    if (!check_value(cx, a, cx->f->loc, what)) {
      ok = false;
      continue;
    }
    if (a->type.elem == TILE_ELEM_I1)
      ok = tile_error(cx->d, a->loc.line ? a->loc : cx->f->loc,
                      "cannot lower parameter '%%%s' of element type i1: bound i1 arrays hold one "
                      "byte per element, which vector loads cannot read; pass it as i32",
                      a->name ? a->name : "?");
  }
  for (TileOp *op = body->first; op; op = op->next) {
    if (op->kind == TILE_OP_RETURN) {
      for (int32_t i = 0; i < op->nopnd; i++)
        if (op->opnd[i].v->type.elem == TILE_ELEM_I1)
          ok = tile_error(cx->d, op->opnd[i].loc.line ? op->opnd[i].loc : op->loc,
                          "cannot lower result %d of element type i1: bound i1 arrays hold one "
                          "byte per element, which vector stores cannot write; convert it to "
                          "i32", (int)i + 1);
      continue;
    }
    for (int32_t i = 0; i < op->nres; i++) {
      char what[96];
      snprintf(what, sizeof what, "the result of '%s'", tile_op_name((TileOpKind)op->kind));
      if (!check_value(cx, op->res[i], op->loc, what)) ok = false;
    }
  }
  return ok;
}

/* The symbol name of result i: result, result1, result2, ... */
static void result_name(int32_t i, char *buf, size_t n) {
  if (i == 0) snprintf(buf, n, "result");
  else snprintf(buf, n, "result%d", (int)i);
}

static int32_t bound_buffer(TileLowerCtx *cx, const char *name, const TileValue *v,
                            TileBindKind kind) {
  int64_t bytes = tile_type_numel(&v->type) * tile_lower_elem_bytes((TileElem)v->type.elem);
  int32_t b = tile_mir_buffer(cx->mir, name, TILE_SPACE_HBM, bytes, 1, HBM_ALIGN);
  TileMirBuffer *buf = &cx->mir->bufs[b];
  buf->bind = (uint8_t)kind;
  /* A mesh function runs on every chip with its own data: one slice per chip. */
  buf->per_chip = tile_coll_func_mesh(cx->m, cx->f) != NULL;
  buf->elem = v->type.elem;
  buf->rank = v->type.rank;
  for (int i = 0; i < v->type.rank; i++) buf->dims[i] = v->type.dims[i];
  return b;
}

/* A result that must be copied into its bound buffer after the groups run: one that
 * is a parameter or is returned twice. */
typedef struct Copy {
  const TileValue *v;
  int32_t dst;
} Copy;

/* Parameters and results get bound buffers before any generator asks for them.
 * copies[] gets the results that need a copy at the end. */
static bool place_bound(TileLowerCtx *cx, const Plan *p, Copy *copies, int32_t *ncopies) {
  TileBlock *body = cx->f->body;
  bool ok = true;
  for (int32_t i = 0; i < body->nargs; i++) {
    TileValue *a = body->args[i];
    const char *name = a->name ? a->name : "arg";
    TileLoc loc = a->loc.line ? a->loc : cx->f->loc;
    if (strlen(name) >= sizeof cx->mir->bufs[0].name) {
      ok = tile_error(cx->d, loc, "parameter name '%%%s' is longer than %d characters, the "
                      "most a symbol holds", name, (int)sizeof cx->mir->bufs[0].name - 1);
      continue;
    }
    for (int32_t r = 0; r < p->ret->nopnd; r++) {
      char rn[32];
      result_name(r, rn, sizeof rn);
      if (strcmp(rn, name) == 0)
        ok = tile_error(cx->d, loc, "parameter '%%%s' takes the name of the symbol of result %d "
                        "('%s'); rename the parameter", name, (int)r + 1, rn);
    }
    place_put(cx, a, ref_of_type(&a->type, bound_buffer(cx, name, a, TILE_BIND_IN)));
  }
  if (!ok) return false;
  *ncopies = 0;
  for (int32_t r = 0; r < p->ret->nopnd; r++) {
    TileValue *v = p->ret->opnd[r].v;
    char rn[32];
    result_name(r, rn, sizeof rn);
    int32_t b = bound_buffer(cx, rn, v, TILE_BIND_OUT);
    int64_t len = 0;
    uint8_t *init = initial_bytes(v, &len);
    if (init) { /* a constant result: the bound buffer starts with its value */
      tile_mir_data(cx->mir, b, init, len);
      free(init);
    } else if (place_find(cx, v)) {
      copies[(*ncopies)++] = (Copy){v, b};
    } else {
      place_put(cx, v, ref_of_type(&v->type, b));
    }
  }
  return true;
}

/* It takes the first id of the collectives' band, which moves up by one: below it the
 * function's own, which no group renumbers (sems_base moves past it too). */
int32_t tile_lower_function_sem(TileLowerCtx *cx) {
  int32_t sem = cx->coll_band++;
  cx->mir->nsems++;
  cx->sems_base = cx->sems_used = cx->mir->nsems;
  return sem;
}

/* Ends one group's use of semaphores: the next group numbers its own from the first
 * id again (see "Semaphores" at the top), and cx->sems_used keeps the most any group
 * took. tile_mir_sem hands out mir->nsems, so the count is the cursor while a group is
 * generated; tile_lower_func sets it back to the most at the end. */
static void sems_recycle(TileLowerCtx *cx) {
  if (cx->mir->nsems > cx->sems_used) cx->sems_used = cx->mir->nsems;
  cx->mir->nsems = cx->sems_base;
}

bool tile_lower_func(TileModule *m, TileFunc *f, TileMir *mir, TileDiag *d) {
  TileLowerCtx cx = {.m = m, .f = f, .mir = mir, .d = d, .target = mir->target,
                     .sems_base = mir->nsems, .sems_used = mir->nsems, .pf_sem = -1,
                     .coll_anchor = -1, .async_sem = -1,
                     .target_full = mir->target};
  int before = d->nerrors;
  bool ok = false;
  if (f->is_kernel) return tile_lower_kernel(m, f, mir, d); /* backend-vliw/gen_kernel.c */
  if (tile_coll_func_mesh(m, f)) { /* remote arrivals count on a band of their own */
    cx.coll_band = mir->nsems;
    mir->nsems += tile_coll_sem_band(mir->target);
    cx.sems_base = cx.sems_used = mir->nsems;
  }
  tile_mir_set_source(mir, NULL, f->loc);
  Plan plan;
  if (!check_types(&cx) || !make_plan(&cx, &plan)) goto out;
  Copy *copies = tile_alloc(m, sizeof *copies * (size_t)(plan.ret->nopnd + 1));
  int32_t ncopies = 0;
  cx.zero = tile_mir_sreg(mir);
  tile_mir_add(mir, tile_mir_inst(TILE_MOP_LI, cx.zero, 0, 0, 0, 0));
  if (!place_bound(&cx, &plan, copies, &ncopies)) goto out;

  int32_t *order = tile_alloc(m, sizeof *order * (size_t)(plan.ngroups + 1));
  TileStageGroup *starts = tile_alloc(m, sizeof *starts * (size_t)(plan.ngroups + 1));
  int32_t nstarts = 0;
  if (!order_groups(&cx, &plan, order)) goto out;
  /* The groups that run (nothing reads what a group with no outputs makes), in order. */
  TileGroup **live = tile_alloc(m, sizeof *live * (size_t)(plan.ngroups + 1));
  int32_t nlive = 0;
  for (int32_t k = 0; k < plan.ngroups; k++)
    if (plan.groups[order[k]].nout > 0) live[nlive++] = &plan.groups[order[k]];
  /* Weights kept in VMEM (lower_resident.c), asynchronous permutes (lower_async.c) and
   * cross-group prefetch (lower_prefetch.c): the groups are classified first, so the
   * plans see every group's kind before any is generated; the prefetch knows which
   * permutes only send and which weights stay in VMEM. */
  for (int32_t k = 0; k < nlive; k++)
    if (!tile_group_classify(&cx, live[k])) goto out;
  tile_lower_resident_plan(&cx, live, nlive);
  if (tile_coll_func_mesh(m, f)) {
    tile_lower_async_plan(&cx, live, nlive);
    tile_lower_prefetch_plan(&cx, live, nlive);
  }
  for (int32_t k = 0; k < nlive; k++) {
    TileGroup *g = live[k];
    if (!tile_group_classify(&cx, g)) goto out;
    starts[nstarts++] = (TileStageGroup){mir->ninsts, mir->nbufs, 0};
    tile_mir_set_source(mir, tile_op_name((TileOpKind)g->ops[0]->kind), g->ops[0]->loc);
    int errs = d->nerrors;
    sems_recycle(&cx);
    cx.dma_reserve = 0;
    tile_lower_async_enter(&cx, k);
    tile_lower_prefetch_enter(&cx, k, starts);
    if (cx.dma_reserve > 0) { /* other groups' DMAs in flight while this one runs */
      cx.target_less = *cx.target_full;
      cx.target_less.dma_outstanding -= cx.dma_reserve;
      cx.target = &cx.target_less;
    }
    cx.dma_cap = 0;
    bool gen_ok = generators[g->kind](&cx, g);
    starts[nstarts - 1].dma_cap = cx.dma_cap;
    tile_lower_prefetch_leave(&cx, k);
    tile_lower_async_leave(&cx, k);
    /* its loops record the reserve (LOOP_BEGIN b), for the modulo scheduler */
    for (int32_t i = starts[nstarts - 1].first_inst; i < mir->ninsts && cx.dma_reserve > 0; i++)
      if (mir->insts[i].op == TILE_MIR_LOOP_BEGIN) mir->insts[i].b = cx.dma_reserve;
    cx.target = cx.target_full;
    if (!gen_ok || d->nerrors > errs) {
      if (d->nerrors == errs)
        tile_error(d, g->ops[0]->loc, "internal error: the %s generator failed without a "
                   "message", tile_group_kind_name(g->kind));
      goto out;
    }
    if (mir->loop_depth != 0) {
      tile_error(d, g->ops[0]->loc, "internal error: the %s generator left %d loops open",
                 tile_group_kind_name(g->kind), (int)mir->loop_depth);
      goto out;
    }
  }
  if (!tile_lower_prefetch_place(&cx, starts, nstarts)) {
    tile_error(d, f->loc, "internal error: out of memory moving prefetches");
    goto out;
  }
  if (!tile_lower_async_place(&cx, starts, nstarts)) goto out; /* reported */
  tile_mir_set_source(mir, "return", plan.ret->loc);
  for (int32_t i = 0; i < ncopies; i++) {
    sems_recycle(&cx); /* each copy waits for its transfer */
    TileTensorRef src = tile_lower_tensor(&cx, copies[i].v);
    tile_lower_copy(&cx, src.buf, 0, copies[i].dst, 0, src.bytes);
  }
  tile_mir_canon_views(mir); /* every inst's, the results' copies too; the placements
                              * above read views' ranges */
  if (!tile_lower_stage_tables(&cx, starts, nstarts)) {
    tile_error(d, f->loc, "internal error: out of memory staging SMEM tables");
    goto out;
  }
  ok = !cx.failed && d->nerrors == before;
out:
  sems_recycle(&cx);
  mir->nsems = cx.sems_used;
  free(cx.place);
  return ok && d->nerrors == before;
}

const char *tile_group_kind_name(TileGroupKind k) {
  static const char *const names[] = {
#define X(e, n, f) n,
      TILE_GROUP_KINDS(X)
#undef X
  };
  return k < TILE_GROUP_KIND_COUNT ? names[k] : "?";
}
