/* tile_cuda_emit: a tensor-level func becomes a CUDA program, one kernel (or a few)
 * per fusion group, launched in group order.
 *
 * Runs the tensor passes first (decompose, keeping attention and rope whole, as the
 * CUDA kernels for them are better than their decomposition; then fuse), so groups
 * are those of the VLIW compile. Buffers follow its rules: parameters are input
 * buffers named after them, returned values `result`, `result1`, ...; a value read
 * outside its group gets a scratch buffer; a reshape alone in its group is an alias
 * of its operand's buffer. A returned value no group writes (a parameter, a constant,
 * a value returned twice) is copied into its result buffer by a kernel of its own.
 *
 * A function on a mesh (emit_collective.c) is first partitioned into the program of one
 * chip when it is a global program; its collectives become steps between the launches
 * of the groups, in an order where each unit comes after the values it reads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"
#include "emit_collective.h"
#include "emit_kernel.h"
#include "tile/pass.h"

/* ---- strings ---- */

void buf_vprintf(Buf *b, const char *fmt, va_list ap) {
  if (b->oom) return;
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0) return;
  if (b->n + (size_t)n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->n + (size_t)n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = true;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
  b->n += (size_t)n;
}

void buf_printf(Buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  buf_vprintf(b, fmt, ap);
  va_end(ap);
}

void buf_puts(Buf *b, const char *s) { buf_printf(b, "%s", s); }

void buf_free(Buf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

/* ---- element types ---- */

/* X(elem, storage, compute) */
#define CE_TYPES(X)                                   \
  X(I1, "int", "int")                                 \
  X(I8, "signed char", "int")                         \
  X(I32, "int", "int")                                \
  X(I64, "long long", "long long")                    \
  X(F32, "float", "float")                            \
  X(BF16, "unsigned short", "float")                  \
  X(F16, "unsigned short", "float")

bool ce_elem_supported(TileElem e) {
  switch (e) {
#define X(el, s, c) case TILE_ELEM_##el:
    CE_TYPES(X)
#undef X
    return true;
  default: return false;
  }
}

const char *ce_storage_type(TileElem e) {
  switch (e) {
#define X(el, s, c) case TILE_ELEM_##el: return s;
    CE_TYPES(X)
#undef X
  default: return "int";
  }
}

const char *ce_compute_type(TileElem e) {
  switch (e) {
#define X(el, s, c) case TILE_ELEM_##el: return c;
    CE_TYPES(X)
#undef X
  default: return "int";
  }
}

void ce_load_expr(Buf *b, TileElem e, const char *x) {
  switch (e) {
  case TILE_ELEM_BF16: buf_printf(b, "tc_bf2f(%s)", x); break;
  case TILE_ELEM_F16: buf_printf(b, "tc_h2f(%s)", x); break;
  case TILE_ELEM_I1: buf_printf(b, "(%s != 0)", x); break;
  case TILE_ELEM_I8: buf_printf(b, "(int)%s", x); break;
  default: buf_puts(b, x);
  }
}

void ce_store_expr(Buf *b, TileElem e, const char *x) {
  switch (e) {
  case TILE_ELEM_BF16: buf_printf(b, "tc_f2bf(%s)", x); break;
  case TILE_ELEM_F16: buf_printf(b, "tc_f2h(%s)", x); break;
  case TILE_ELEM_I8: buf_printf(b, "(signed char)(%s)", x); break;
  default: buf_printf(b, "(%s)(%s)", ce_storage_type(e), x);
  }
}

int64_t ce_numel(const TileType *t) {
  return t->kind == TILE_TY_TENSOR ? tile_type_numel(t) : 1;
}

/* ---- the program ---- */

int ce_buffer_of(const CudaEmit *e, const TileValue *v) {
  for (int i = 0; i < e->nbval; i++)
    if (e->bval[i] == v) return e->bidx[i];
  return -1;
}

bool ce_map_value(CudaEmit *e, const TileValue *v, int buf) {
  if (e->nbval == e->cap_bval) {
    int cap = e->cap_bval ? 2 * e->cap_bval : 32;
    TileValue **a = realloc(e->bval, (size_t)cap * sizeof *a);
    if (a) e->bval = a;
    int32_t *b = realloc(e->bidx, (size_t)cap * sizeof *b);
    if (b) e->bidx = b;
    if (!a || !b) return false;
    e->cap_bval = cap;
  }
  e->bval[e->nbval] = (TileValue *)v;
  e->bidx[e->nbval++] = buf;
  return true;
}

int ce_add_buffer(CudaEmit *e, const char *name, int bind, const TileType *t) {
  TileCudaProgram *p = e->p;
  if (p->nbufs == e->cap_bufs) {
    int cap = e->cap_bufs ? 2 * e->cap_bufs : 16;
    TileCudaBuffer *b = realloc(p->bufs, (size_t)cap * sizeof *b);
    if (!b) return -1;
    p->bufs = b;
    e->cap_bufs = cap;
  }
  TileCudaBuffer *b = &p->bufs[p->nbufs];
  memset(b, 0, sizeof *b);
  snprintf(b->name, sizeof b->name, "%s", name);
  b->bind = (uint8_t)bind;
  b->elem = t->elem;
  b->rank = t->kind == TILE_TY_TENSOR ? t->rank : 0;
  for (int i = 0; i < b->rank; i++) b->dims[i] = t->dims[i];
  int bytes = t->elem == TILE_ELEM_I1 ? 4 : (tile_elem_bits((TileElem)t->elem) + 7) / 8;
  b->bytes = ce_numel(t) * bytes;
  return p->nbufs++;
}

TileCudaLaunch *ce_add_launch(CudaEmit *e, const char *kernel, const TileOp *src) {
  TileCudaProgram *p = e->p;
  if (p->nlaunches == e->cap_launches) {
    int cap = e->cap_launches ? 2 * e->cap_launches : 16;
    TileCudaLaunch *l = realloc(p->launches, (size_t)cap * sizeof *l);
    if (!l) return NULL;
    p->launches = l;
    e->cap_launches = cap;
  }
  TileCudaLaunch *l = &p->launches[p->nlaunches++];
  memset(l, 0, sizeof *l);
  snprintf(l->kernel, sizeof l->kernel, "%s", kernel);
  l->grid[0] = l->grid[1] = l->grid[2] = 1;
  l->block[0] = l->block[1] = l->block[2] = 1;
  if (src) {
    l->src_name = tile_op_name((TileOpKind)src->kind);
    l->src_loc = src->loc;
  }
  return l;
}

void ce_kernel_name(CudaEmit *e, int group, const char *what, char *out, size_t len) {
  if (group >= 0)
    snprintf(out, len, "g%d_%s_%d", group, what, e->nkernels++);
  else
    snprintf(out, len, "%s_%d", what, e->nkernels++);
}

void tile_cuda_program_free(TileCudaProgram *p) {
  if (!p) return;
  free(p->source);
  for (int i = 0; i < p->nbufs; i++) free(p->bufs[i].init);
  free(p->bufs);
  free(p->launches);
  free(p->colls);
  memset(p, 0, sizeof *p);
}

/* ---- the driver ---- */

static int group_of(const TileOp *op) {
  int64_t id;
  return tile_attr_get_int(&op->attrs, "group", &id) ? (int)id : -1;
}

static bool check_ops(CudaEmit *e, TileOp **ret) {
  *ret = NULL;
  for (TileOp *op = e->f->body->first; op; op = op->next) {
    if (op->kind == TILE_OP_RETURN) {
      *ret = op;
      continue;
    }
    const TileOpInfo *info = &tile_op_info[op->kind];
    if (info->family == TILE_FAMILY_COLLECTIVE && !e->p->torus_rank)
      return tile_error(e->d, op->loc, "collectives need a mesh of chips: give the function "
                        "{mesh = @name}");
    if ((info->family != TILE_FAMILY_TENSOR && info->family != TILE_FAMILY_COLLECTIVE) ||
        op->nregion)
      return tile_error(e->d, op->loc,
                        "the CUDA backend compiles tensor ops only; '%s' has no CUDA lowering",
                        info->name);
    for (int i = 0; i < op->nres; i++)
      if (!ce_elem_supported((TileElem)op->res[i]->type.elem))
        return tile_error(e->d, op->loc, "the CUDA backend has no %s arithmetic ('%s' result)",
                          tile_elem_name((TileElem)op->res[i]->type.elem), info->name);
  }
  if (!*ret) return tile_error(e->d, e->f->loc, "function '%s' has no return", e->f->name);
  return true;
}

/* Is v read by an op outside group id (or returned)? */
static bool read_outside(const CudaEmit *e, const TileValue *v, int id) {
  for (TileOp *op = e->f->body->first; op; op = op->next) {
    if (op->kind != TILE_OP_RETURN && group_of(op) == id) continue;
    for (int i = 0; i < op->nopnd; i++)
      if (op->opnd[i].v == v) return true;
  }
  return false;
}

static bool collect(CudaEmit *e, int id, Group *g) {
  memset(g, 0, sizeof *g);
  g->id = id;
  int n = 0, nres = 0;
  for (TileOp *op = e->f->body->first; op; op = op->next)
    if (group_of(op) == id) n++, nres += op->nres;
  g->ops = calloc((size_t)n + 1, sizeof *g->ops);
  g->outs = calloc((size_t)nres + 1, sizeof *g->outs);
  if (!g->ops || !g->outs) return false;
  for (TileOp *op = e->f->body->first; op; op = op->next) {
    if (group_of(op) != id) continue;
    g->ops[g->nops++] = op;
    for (int i = 0; i < op->nres; i++)
      if (read_outside(e, op->res[i], id)) g->outs[g->nouts++] = op->res[i];
  }
  return true;
}

static bool emit_group(CudaEmit *e, const Group *g) {
  TileOp *special = NULL;
  for (int i = 0; i < g->nops; i++) {
    int k = g->ops[i]->kind;
    if (k == TILE_OP_MATMUL || k == TILE_OP_DOT_GENERAL || k == TILE_OP_ATTENTION ||
        k == TILE_OP_ARGMAX || k == TILE_OP_TOPK) {
      if (special)
        return tile_error(e->d, g->ops[i]->loc,
                          "the CUDA backend takes one '%s' per fusion group; this group also "
                          "has '%s'", tile_op_name((TileOpKind)k),
                          tile_op_name((TileOpKind)special->kind));
      special = g->ops[i];
    }
  }
  if (!special) {
    /* A reshape alone is an alias of its operand's buffer (unless returned). */
    if (g->nops == 1 && g->ops[0]->kind == TILE_OP_RESHAPE && g->nouts == 1) {
      TileValue *x = g->ops[0]->opnd[0].v;
      int b = ce_buffer_of(e, x);
      if (b >= 0 && ce_buffer_of(e, g->outs[0]) < 0) return ce_map_value(e, g->outs[0], b);
    }
    return ce_emit_rows(e, g);
  }
  if (special->kind == TILE_OP_MATMUL || special->kind == TILE_OP_DOT_GENERAL)
    return ce_emit_matmul(e, g, special);
  if (g->nops != 1)
    return tile_error(e->d, special->loc,
                      "the CUDA backend runs '%s' as a kernel of its own; it cannot be fused",
                      tile_op_name((TileOpKind)special->kind));
  if (special->kind == TILE_OP_ATTENTION) return ce_emit_attention(e, g, special);
  if (special->kind == TILE_OP_ARGMAX) return ce_emit_argmax(e, g, special);
  return ce_emit_topk(e, g, special);
}

static void result_name(int i, char *out, size_t len) {
  if (i == 0) snprintf(out, len, "result");
  else snprintf(out, len, "result%d", i);
}

/* Buffers for every value a group writes: results first, so a group writes its
 * returned values in place. */
static bool assign_buffers(CudaEmit *e, const TileOp *ret, Group *groups, int ngroups) {
  for (int i = 0; i < ret->nopnd; i++) {
    const TileValue *v = ret->opnd[i].v;
    bool coll = v->def && tile_op_info[v->def->kind].family == TILE_FAMILY_COLLECTIVE;
    if (!v->def || (group_of(v->def) < 0 && !coll) || ce_buffer_of(e, v) >= 0) continue;
    char name[64];
    result_name(i, name, sizeof name);
    int b = ce_add_buffer(e, name, TILE_BIND_OUT, &v->type);
    if (b < 0 || !ce_map_value(e, v, b)) return false;
  }
  for (int gi = 0; gi < ngroups; gi++)
    for (int i = 0; i < groups[gi].nouts; i++) {
      TileValue *v = groups[gi].outs[i];
      if (ce_buffer_of(e, v) >= 0) continue;
      /* An aliasing reshape gets its buffer when emitted. */
      const Group *g = &groups[gi];
      if (g->nops == 1 && g->ops[0]->kind == TILE_OP_RESHAPE &&
          ce_buffer_of(e, g->ops[0]->opnd[0].v) >= 0)
        continue;
      char name[64];
      snprintf(name, sizeof name, "t%d_%s", groups[gi].id, v->name ? v->name : "v");
      int b = ce_add_buffer(e, name, 0, &v->type);
      if (b < 0 || !ce_map_value(e, v, b)) return false;
    }
  return ce_collective_buffers(e);
}

/* A returned value with no result buffer of its own is copied into one. */
static bool copy_results(CudaEmit *e, const TileOp *ret) {
  for (int i = 0; i < ret->nopnd; i++) {
    TileValue *v = ret->opnd[i].v;
    char name[64];
    result_name(i, name, sizeof name);
    int have = ce_buffer_of(e, v);
    if (have >= 0 && strcmp(e->p->bufs[have].name, name) == 0) continue;
    int b = ce_add_buffer(e, name, TILE_BIND_OUT, &v->type);
    if (b < 0) return false;
    if (!ce_emit_flat(e, -1, "copy", &v, &b, 1, ret)) return false;
  }
  return true;
}

bool tile_cuda_emit(TileModule *m, TileFunc *f, const char *arch, TileCudaProgram *out,
                    TileDiag *d) {
  static bool keeps[TILE_OP_COUNT];
  keeps[TILE_OP_ATTENTION] = keeps[TILE_OP_ROPE] = true;
  memset(out, 0, sizeof *out);
  snprintf(out->arch, sizeof out->arch, "%s", arch);
  if (f->is_kernel) return ce_emit_kernel(m, f, out, d); /* backend-cuda/emit_kernel.c */
  const bool *saved = m->keep_composites;
  m->keep_composites = keeps;
  const TileMesh *mesh = ce_func_mesh(m, f);
  bool parted = !mesh || ce_partition(m, f, mesh, d);
  TilePassStatus st =
      parted ? tile_run_pipeline(m, tile_pipeline, tile_pipeline_len, NULL, d) : TILE_PASS_FAILED;
  m->keep_composites = saved;
  if (st != TILE_PASS_OK) return false;

  CudaEmit e = {.m = m, .f = f, .d = d, .p = out};
  buf_puts(&e.src, ce_prelude);
  bool ok = !mesh || ce_set_mesh(&e, mesh);
  TileOp *ret = NULL;
  Group *groups = NULL;
  int ngroups = 0;
  for (int i = 0; ok && i < f->body->nargs; i++) {
    TileValue *a = f->body->args[i];
    if (!ce_elem_supported((TileElem)a->type.elem) ||
        (a->type.kind != TILE_TY_TENSOR && a->type.kind != TILE_TY_SCALAR)) {
      ok = tile_error(d, a->loc.line ? a->loc : f->loc,
                      "the CUDA backend cannot take parameter '%s' of this type",
                      a->name ? a->name : "?");
      break;
    }
    char name[64];
    snprintf(name, sizeof name, "%s", a->name ? a->name : "arg");
    int b = ce_add_buffer(&e, name, TILE_BIND_IN, &a->type);
    ok = b >= 0 && ce_map_value(&e, a, b);
  }
  if (ok) ok = check_ops(&e, &ret);
  if (ok) {
    int maxg = -1;
    for (TileOp *op = f->body->first; op; op = op->next)
      if (group_of(op) > maxg) maxg = group_of(op);
    groups = calloc((size_t)maxg + 2, sizeof *groups);
    ok = groups != NULL;
    for (int id = 0; ok && id <= maxg; id++) {
      ok = collect(&e, id, &groups[ngroups]);
      if (groups[ngroups].nops) ngroups++;
    }
  }
  if (ok) ok = assign_buffers(&e, ret, groups, ngroups);
  if (ok && ce_count_collectives(f)) {
    /* Collectives are in no group: groups and collectives in dependence order. */
    CeUnit *units = calloc((size_t)(ngroups + ce_count_collectives(f)) + 1, sizeof *units);
    int nunits = 0;
    ok = units && ce_order_units(&e, groups, ngroups, units, &nunits);
    for (int u = 0; ok && u < nunits; u++)
      ok = units[u].coll ? ce_emit_collective(&e, units[u].coll)
                         : emit_group(&e, &groups[units[u].group]);
    free(units);
  } else {
    for (int gi = 0; ok && gi < ngroups; gi++) ok = emit_group(&e, &groups[gi]);
  }
  if (ok) ok = copy_results(&e, ret);
  for (int gi = 0; gi < ngroups; gi++) {
    free(groups[gi].ops);
    free(groups[gi].outs);
  }
  free(groups);
  free(e.bval);
  free(e.bidx);
  if (ok && e.src.oom) ok = tile_error(d, f->loc, "out of memory writing the CUDA source");
  if (!ok) {
    if (!d->nerrors) tile_error(d, f->loc, "internal error: the CUDA emitter failed");
    buf_free(&e.src);
    tile_cuda_program_free(out);
    return false;
  }
  out->source = e.src.p;
  return true;
}
