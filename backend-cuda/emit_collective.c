/* Mesh functions on the CUDA backend: the program of one chip, run by every chip of the
 * mesh on one GPU (include/tile/cuda_torus.h).
 *
 * Needs: a verified tensor-level func on a mesh whose collective axes are each one whole
 * torus dimension (the simple form torus<AxB>(x, y), as the VLIW backend requires).
 * Guarantees: a global program is partitioned by the same passes as the VLIW compile
 * (shard_prop, spmd), so both backends run the same per-chip program; its compute
 * groups become the usual kernels (launched once per chip by the runtime); each
 * collective becomes a TileCudaCollective placed between the launches of the groups
 * it reads and the groups that read it, with operand and result buffers, and a
 * reduction gets a kernel that combines a received chunk into a partial (f32 for every
 * float type, the result rounded to the element type on the bits, as the VLIW path
 * reduces bf16 in f32 lanes; integers in their type with wraparound). */
#include "emit_collective.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/builder.h"
#include "tile/cuda_torus.h"
#include "tile/ops.h"
#include "tile/pass.h"
#include "tile/vliw.h"

static bool is_collective(const TileOp *op) {
  return op && tile_op_info[op->kind].family == TILE_FAMILY_COLLECTIVE;
}

int ce_count_collectives(const TileFunc *f) {
  int n = 0;
  for (TileOp *op = f->body->first; op; op = op->next) n += is_collective(op);
  return n;
}

/* Through the VLIW backend's own tests, so that both backends agree on which funcs are
 * global programs and on the mesh each runs on. */
const TileMesh *ce_func_mesh(const TileModule *m, const TileFunc *f) {
  const TileAttr *a = tile_attr_get(&f->attrs, "mesh");
  if ((a && a->kind == TILE_ATTR_SYMBOL) || tile_vliw_func_is_global(m, f))
    return tile_vliw_func_mesh(m, f);
  return !f->is_kernel && ce_count_collectives(f) ? tile_vliw_func_mesh(m, f) : NULL;
}

bool ce_partition(TileModule *m, TileFunc *f, const TileMesh *mesh, TileDiag *d) {
  /* Else one chip's program: its collectives run as written. */
  if (!tile_vliw_func_is_global(m, f)) return true;
  /* The func names its mesh, so the partitioned program still knows it when no
   * collective is left (a batch-sharded layout). */
  if (!tile_attr_get(&f->attrs, "mesh")) {
    TileBuilder b;
    tile_builder_init(&b, m);
    tile_build_func_attr(&b, f, "mesh", tile_attr_symbol(m, mesh->name));
  }
  static const char *const passes[] = {"shard_prop", "spmd"};
  return tile_run_pipeline(m, passes, 2, NULL, d) == TILE_PASS_OK;
}

bool ce_set_mesh(CudaEmit *e, const TileMesh *mesh) {
  if (mesh->rank < 1 || mesh->rank > TILE_MAX_RANK)
    return tile_error(e->d, mesh->loc, "mesh @%s has %d torus dimensions", mesh->name,
                      (int)mesh->rank);
  e->p->torus_rank = mesh->rank;
  for (int k = 0; k < mesh->rank; k++) {
    if (mesh->dims[k] < 1 || mesh->dims[k] > 4096)
      return tile_error(e->d, mesh->loc, "mesh @%s: a torus dimension of %lld chips is out of "
                        "range (1 to 4096)", mesh->name, (long long)mesh->dims[k]);
    e->p->torus[k] = (int32_t)mesh->dims[k];
  }
  return true;
}

/* ---- the order of groups and collectives ---- */

static int group_attr(const TileOp *op) {
  int64_t id;
  return tile_attr_get_int(&op->attrs, "group", &id) ? (int)id : -1;
}

/* The unit of op i (-1: none: a constant, iota or the return). Units 0 .. ngroups-1 are
 * the groups, then the collectives in program order. */
static int unit_of_op(const TileOp *op, const Group *groups, int ngroups, int *next_coll) {
  if (is_collective(op)) return (*next_coll)++;
  int g = group_attr(op);
  for (int k = 0; g >= 0 && k < ngroups; k++)
    if (groups[k].id == g) return k;
  return -1;
}

bool ce_order_units(CudaEmit *e, const Group *groups, int ngroups, CeUnit *units, int *n) {
  int nops = 0;
  for (TileOp *op = e->f->body->first; op; op = op->next) nops++;
  const int nunits = ngroups + ce_count_collectives(e->f);
  TileOp **ops = calloc((size_t)nops + 1, sizeof *ops);
  int *unit = calloc((size_t)nops + 1, sizeof *unit);
  int *first = calloc((size_t)nunits + 1, sizeof *first);
  int *need = calloc((size_t)nunits + 1, sizeof *need);
  CeUnit *all = calloc((size_t)nunits + 1, sizeof *all);
  bool *placed = calloc((size_t)nunits + 1, sizeof *placed);
  bool ok = ops && unit && first && need && all && placed;
  int i = 0, next_coll = ngroups;
  for (int u = 0; ok && u < nunits; u++) first[u] = -1;
  for (int k = 0; ok && k < ngroups; k++) all[k] = (CeUnit){k, NULL};
  for (TileOp *op = e->f->body->first; ok && op; op = op->next, i++) {
    ops[i] = op;
    unit[i] = unit_of_op(op, groups, ngroups, &next_coll);
    if (unit[i] >= ngroups) all[unit[i]] = (CeUnit){-1, op};
    if (unit[i] >= 0 && first[unit[i]] < 0) first[unit[i]] = i;
  }
  /* Per use of a value (op a, operand o): the unit defining it, when another unit of
   * the body does (one count per use, so placing a producer releases exactly its
   * uses). need[u]: such uses by u's ops not yet released. */
  int nuses = 0;
  for (int a = 0; ok && a < nops; a++) nuses += ops[a]->nopnd;
  int *use_unit = calloc((size_t)nuses + 1, sizeof *use_unit);
  int *use_def = calloc((size_t)nuses + 1, sizeof *use_def);
  ok = ok && use_unit && use_def;
  nuses = 0;
  for (int a = 0; ok && a < nops; a++)
    for (int o = 0; o < ops[a]->nopnd; o++) {
      int def = -1;
      for (int b = 0; b < nops && def < 0; b++)
        if (ops[b] == ops[a]->opnd[o].v->def) def = unit[b];
      if (unit[a] < 0 || def < 0 || def == unit[a]) continue;
      use_unit[nuses] = unit[a];
      use_def[nuses++] = def;
      need[unit[a]]++;
    }
  for (int count = 0; ok && count < nunits; count++) {
    int pick = -1;
    for (int u = 0; u < nunits; u++)
      if (!placed[u] && need[u] == 0 && (pick < 0 || first[u] < first[pick])) pick = u;
    if (pick < 0) {
      ok = tile_error(e->d, e->f->loc, "internal error: the fusion groups and collectives of "
                      "@%s read each other in a cycle", e->f->name);
      break;
    }
    placed[pick] = true;
    units[count] = all[pick];
    for (int k = 0; k < nuses; k++)
      if (use_def[k] == pick) need[use_unit[k]]--;
  }
  free(use_unit);
  free(use_def);
  if (ok) *n = nunits;
  free(ops);
  free(unit);
  free(first);
  free(need);
  free(all);
  free(placed);
  return ok;
}

bool ce_collective_buffers(CudaEmit *e) {
  int k = 0;
  for (TileOp *op = e->f->body->first; op; op = op->next) {
    if (!is_collective(op)) continue;
    TileValue *v = op->res[0];
    k++;
    if (ce_buffer_of(e, v) >= 0) continue;
    char name[64];
    snprintf(name, sizeof name, "c%d_%s", k - 1, v->name ? v->name : "v");
    int b = ce_add_buffer(e, name, 0, &v->type);
    if (b < 0 || !ce_map_value(e, v, b)) return false;
  }
  return true;
}

/* ---- one collective ---- */

static bool add_axis(CudaEmit *e, const TileOp *op, const TileMesh *mesh, const char *name,
                     TileCudaCollective *c) {
  const TileMeshAxis *ma = tile_mesh_find_axis(mesh, name);
  if (!ma) return tile_error(e->d, op->loc, "mesh @%s has no axis '%s'", mesh->name, name);
  if (ma->ndims != 1 || ma->size != mesh->dims[ma->dims[0]])
    return tile_error(e->d, op->loc, "axis '%s' of mesh @%s is not one whole torus dimension; "
                      "the CUDA backend runs collectives over axes of the simple form "
                      "torus<AxB>(x, y)", name, mesh->name);
  for (int k = 0; k < c->naxes; k++)
    if (c->axes[k].dim == ma->dims[0])
      return tile_error(e->d, op->loc, "axis '%s' is named twice", name);
  if (c->naxes == TILE_MAX_RANK) return tile_error(e->d, op->loc, "too many axes");
  c->axes[c->naxes++] = (TileCudaCollAxis){ma->dims[0], (int32_t)ma->size};
  return true;
}

static bool read_axes(CudaEmit *e, const TileOp *op, TileCudaCollective *c) {
  const TileMesh *mesh = ce_func_mesh(e->m, e->f);
  const TileAttr *ma = tile_attr_get(&op->attrs, "mesh");
  if (ma && ma->kind == TILE_ATTR_SYMBOL && mesh && strcmp(ma->s, mesh->name) != 0)
    return tile_error(e->d, op->loc, "the collective runs on mesh @%s but the function on "
                      "@%s; a program runs on one mesh", ma->s, mesh->name);
  if (!mesh) return tile_error(e->d, op->loc, "no mesh: give the function {mesh = @name}");
  const TileAttr *a = tile_attr_get(&op->attrs, "axes");
  if (!a) a = tile_attr_get(&op->attrs, "axis");
  if (!a) return tile_error(e->d, op->loc, "the collective names no axes");
  if (a->kind == TILE_ATTR_IDENT) return add_axis(e, op, mesh, a->s, c);
  if (a->kind != TILE_ATTR_ARRAY && a->kind != TILE_ATTR_TUPLE)
    return tile_error(e->d, op->loc, "axes must be mesh axis names");
  for (int32_t i = 0; i < a->n; i++) {
    if (a->elems[i].kind != TILE_ATTR_IDENT)
      return tile_error(e->d, op->loc, "axes must be mesh axis names");
    if (!add_axis(e, op, mesh, a->elems[i].s, c)) return false;
  }
  return true;
}

static TileCudaReduceKind reduce_kind(const char *s) {
#define X(en, n) \
  if (strcmp(s, n) == 0) return TILE_CUDA_REDUCE_##en;
  TILE_CUDA_REDUCE_KINDS(X)
#undef X
  return TILE_CUDA_REDUCE_NONE;
}

/* The C expression combining partial a with received b, in the compute type. */
static void combine_expr(Buf *b, TileElem el, TileCudaReduceKind k) {
  bool fl = tile_elem_is_float(el);
  const char *u = el == TILE_ELEM_I64 ? "unsigned long long" : "unsigned";
  switch (k) {
  case TILE_CUDA_REDUCE_ADD:
    if (fl) buf_puts(b, "a + b");
    else buf_printf(b, "(%s)((%s)a + (%s)b)", ce_compute_type(el), u, u);
    break;
  case TILE_CUDA_REDUCE_MUL:
    if (fl) buf_puts(b, "a * b");
    else buf_printf(b, "(%s)((%s)a * (%s)b)", ce_compute_type(el), u, u);
    break;
  /* The prelude's NaN-propagating max and min, as the IR's. */
  case TILE_CUDA_REDUCE_MAX: buf_puts(b, fl ? "tc_fmax(a, b)" : "a > b ? a : b"); break;
  case TILE_CUDA_REDUCE_MIN: buf_puts(b, fl ? "tc_fmin(a, b)" : "a < b ? a : b"); break;
  default: buf_puts(b, "a");
  }
}

enum { REDUCE_THREADS = 256 };

/* The reduce kernel of (type, kind), written once per program:
 * dst[i] = dst[i] OP src[i] for i < n, a grid-stride loop. */
static bool reduce_kernel(CudaEmit *e, TileElem el, TileCudaReduceKind k, char *name,
                          size_t len) {
  snprintf(name, len, "tc_coll_%s_%s", tile_cuda_reduce_name(k), tile_elem_name(el));
  for (int i = 0; i < e->p->ncolls; i++)
    if (strcmp(e->p->colls[i].reduce_kernel, name) == 0) return true;
  const char *st = ce_storage_type(el), *ct = ce_compute_type(el);
  Buf *s = &e->src;
  buf_printf(s, "\nextern \"C\" __global__ void __launch_bounds__(%d) %s(%s *dst, const %s *src, "
             "long long n) {\n", REDUCE_THREADS, name, st, st);
  buf_printf(s, "  for (long long i = (long long)blockIdx.x * %d + threadIdx.x; i < n; "
             "i += (long long)gridDim.x * %d) {\n", REDUCE_THREADS, REDUCE_THREADS);
  buf_printf(s, "    %s a = ", ct);
  ce_load_expr(s, el, "dst[i]");
  buf_printf(s, ";\n    %s b = ", ct);
  ce_load_expr(s, el, "src[i]");
  buf_printf(s, ";\n    %s r = ", ct);
  combine_expr(s, el, k);
  buf_puts(s, ";\n    dst[i] = ");
  ce_store_expr(s, el, "r");
  buf_puts(s, ";\n  }\n}\n");
  return true;
}

/* The buffer of the collective's operand: a constant or iota with none is written to a
 * scratch buffer of its own first. */
static int operand_buffer(CudaEmit *e, TileOp *op) {
  TileValue *v = op->opnd[0].v;
  int b = ce_buffer_of(e, v);
  if (b >= 0) return b;
  char name[64];
  snprintf(name, sizeof name, "c%d_in", e->p->ncolls);
  b = ce_add_buffer(e, name, 0, &v->type);
  if (b < 0 || !ce_map_value(e, v, b)) return -1;
  return ce_emit_flat(e, -1, "materialize", &v, &b, 1, op) ? b : -1;
}

static void dims_of(const TileValue *v, int32_t *rank, int64_t *dims) {
  *rank = v->type.kind == TILE_TY_TENSOR ? v->type.rank : 0;
  for (int i = 0; i < *rank; i++) dims[i] = v->type.dims[i];
}

bool ce_emit_collective(CudaEmit *e, TileOp *op) {
  TileCudaCollective c;
  memset(&c, 0, sizeof c);
  switch (op->kind) {
  case TILE_OP_ALL_REDUCE: c.kind = TILE_CUDA_COLL_ALL_REDUCE; break;
  case TILE_OP_ALL_GATHER: c.kind = TILE_CUDA_COLL_ALL_GATHER; break;
  case TILE_OP_REDUCE_SCATTER: c.kind = TILE_CUDA_COLL_REDUCE_SCATTER; break;
  case TILE_OP_ALL_TO_ALL: c.kind = TILE_CUDA_COLL_ALL_TO_ALL; break;
  case TILE_OP_COLLECTIVE_PERMUTE: c.kind = TILE_CUDA_COLL_PERMUTE; break;
  default:
    return tile_error(e->d, op->loc, "'%s' is not a collective the CUDA backend knows",
                      tile_op_name((TileOpKind)op->kind));
  }
  c.src_name = tile_op_name((TileOpKind)op->kind);
  c.src_loc = op->loc;
  if (!read_axes(e, op, &c)) return false;
  const TileValue *x = op->opnd[0].v, *y = op->res[0];
  c.elem = x->type.elem;
  dims_of(x, &c.rank, c.in_dims);
  int32_t out_rank;
  dims_of(y, &out_rank, c.out_dims);
  if (out_rank != c.rank || y->type.elem != x->type.elem)
    return tile_error(e->d, op->loc, "internal error: the collective's result is not its "
                      "operand's type and rank");
  int64_t v = 0;
  if (tile_attr_get_int(&op->attrs, "dim", &v) || tile_attr_get_int(&op->attrs, "split_dim", &v))
    c.dim = (int32_t)v;
  if (tile_attr_get_int(&op->attrs, "concat_dim", &v)) c.concat_dim = (int32_t)v;
  if (tile_attr_get_int(&op->attrs, "shift", &v)) c.shift = v;
  if (tile_attr_get_int(&op->attrs, "halves", &v)) c.halves = v != 0;
  const TileAttr *cyc = tile_attr_get(&op->attrs, "cycle");
  if (c.kind == TILE_CUDA_COLL_PERMUTE && cyc && cyc->kind == TILE_ATTR_IDENT) {
    /* Second in axes, so that it passes the checks of every axis. */
    if (!add_axis(e, op, ce_func_mesh(e->m, e->f), cyc->s, &c)) return false;
    c.cycle = 1;
  }
  if (c.kind == TILE_CUDA_COLL_ALL_REDUCE || c.kind == TILE_CUDA_COLL_REDUCE_SCATTER) {
    const TileAttr *k = tile_attr_get(&op->attrs, "kind");
    const char *kind = k && k->kind == TILE_ATTR_IDENT ? k->s : "?";
    c.reduce = (uint8_t)reduce_kind(kind);
    if (!tile_cuda_reduce_supported((TileElem)c.elem, (TileCudaReduceKind)c.reduce))
      return tile_error(e->d, op->loc, "the CUDA backend reduces f32, bf16, f16, i32 and i64 "
                        "with add, mul, max or min; not %s with '%s'",
                        tile_elem_name((TileElem)c.elem), kind);
    if (!reduce_kernel(e, (TileElem)c.elem, (TileCudaReduceKind)c.reduce, c.reduce_kernel,
                       sizeof c.reduce_kernel))
      return false;
  }
  c.src = operand_buffer(e, op);
  c.dst = ce_buffer_of(e, y);
  if (c.src < 0 || c.dst < 0)
    return tile_error(e->d, op->loc, "internal error: the collective's %s has no buffer",
                      c.src < 0 ? "operand" : "result");
  c.at_launch = e->p->nlaunches; /* after the operand's materialization, if any */
  TileCudaCollective *grown = realloc(e->p->colls, (size_t)(e->p->ncolls + 1) * sizeof *grown);
  if (!grown) return tile_error(e->d, op->loc, "out of memory");
  e->p->colls = grown;
  e->p->colls[e->p->ncolls++] = c;
  return true;
}
