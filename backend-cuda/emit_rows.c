/* Elementwise and row-wise groups.
 *
 * The group's full shape is that of its largest output. When the group reduces
 * whole rows of that shape (softmax, norms, a chain with last-axis reductions), it
 * becomes one block per row: the block walks the row's columns in block-wide loops,
 * once per chained reduction, and a block reduction (warp shuffles, then shared
 * memory) gives every thread the row's number, in f32. The values each loop needs are
 * recomputed from the group's inputs (reads that hit L1/L2) rather than kept, which
 * keeps the kernel one simple shape for any chain. Outputs of the full shape are
 * written in a last loop, per-row outputs by thread 0.
 *
 * Anything else (an elementwise chain, a layout op, gather, rope, an output of
 * another shape) is a flat kernel: one thread per element of the output, the
 * reductions it needs as loops in the thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

enum { FLAT_THREADS = 256 };

static bool same_dims(const TileType *a, const TileType *b) {
  int ra = a->kind == TILE_TY_TENSOR ? a->rank : 0, rb = b->kind == TILE_TY_TENSOR ? b->rank : 0;
  if (ra != rb) return false;
  for (int i = 0; i < ra; i++)
    if (a->dims[i] != b->dims[i]) return false;
  return true;
}

static int rank_of(const TileType *t) { return t->kind == TILE_TY_TENSOR ? t->rank : 0; }

/* `bN[lin] = store(val);` into s. */
static void store(Gen *g, Scope *s, int buf, const TileValue *v, const Idx *idx, const char *val,
                  const char *indent) {
  const char *p = gen_buffer_arg(g, buf);
  Buf b = {0};
  ce_store_expr(&b, (TileElem)v->type.elem, val);
  buf_printf(gen_text(s), "%s%s[%s] = %s;\n", indent, p, gen_linear(g, &v->type, idx),
             b.p ? b.p : "0");
  buf_free(&b);
}

static bool finish(CudaEmit *e, Gen *g, Buf *k) {
  bool ok = !gen_failed(g) && !k->oom;
  if (ok) buf_puts(&e->src, k->p);
  buf_free(k);
  gen_free(g);
  if (!ok && !e->d->nerrors) tile_error(e->d, (TileLoc){0}, "out of memory writing a kernel");
  return ok;
}

bool ce_emit_flat(CudaEmit *e, int group, const char *what, TileValue *const *vals,
                  const int *dst, int nvals, const TileOp *src) {
  const TileType *t = &vals[0]->type;
  int R = rank_of(t);
  int64_t n = ce_numel(t);
  int64_t blocks = (n + FLAT_THREADS - 1) / FLAT_THREADS;
  if (blocks > 0x7fffffffLL)
    return tile_error(e->d, src ? src->loc : e->f->loc, "a tensor of %lld elements is too large "
                      "for one CUDA grid", (long long)n);
  Gen *g = gen_new(e, group);
  if (!g) return false;
  Scope *root = gen_root(g, false);
  Idx idx[TILE_MAX_RANK];
  for (int k = 0; k < R; k++) idx[k] = (Idx){gen_str(g, "i%d", k), gen_bind_var(g, root, "")};
  for (int i = 0; i < nvals; i++) {
    const char *v = gen_value(g, root, vals[i], idx);
    int b = dst ? dst[i] : ce_buffer_of(e, vals[i]);
    if (gen_failed(g)) break;
    store(g, root, b, vals[i], idx, v, "  ");
  }
  char name[64];
  ce_kernel_name(e, group, what, name, sizeof name);
  TileCudaLaunch *l = ce_add_launch(e, name, src);
  if (!l) {
    gen_free(g);
    return false;
  }
  l->grid[0] = (uint32_t)(blocks ? blocks : 1);
  l->block[0] = FLAT_THREADS;
  Buf k = {0};
  buf_printf(&k, "\n// %s: %lld elements, one thread each\n", src ? tile_op_name((TileOpKind)src->kind) : what,
             (long long)n);
  buf_printf(&k, "extern \"C\" __global__ void __launch_bounds__(%d) %s(", FLAT_THREADS, name);
  gen_params(g, &k, l);
  buf_printf(&k, ") {\n  long long flat = (long long)blockIdx.x * blockDim.x + threadIdx.x;\n");
  buf_printf(&k, "  if (flat >= %lldLL) return;\n", (long long)n);
  for (int d = R - 1; d >= 0; d--) {
    buf_printf(&k, "  const int i%d = (int)(flat %% %lldLL);\n", d, (long long)t->dims[d]);
    if (d) buf_printf(&k, "  flat /= %lldLL;\n", (long long)t->dims[d]);
  }
  char *body = gen_take(g, root);
  buf_printf(&k, "%s}\n", body);
  free(body);
  return finish(e, g, &k);
}

/* Does the group reduce whole rows of its full shape? */
static bool reduces_rows(const Group *grp, const TileType *full) {
  int R = rank_of(full);
  if (R < 1) return false;
  for (int i = 0; i < grp->nops; i++) {
    const TileOp *op = grp->ops[i];
    if (op->kind != TILE_OP_REDUCE) continue;
    const TileAttr *dims = tile_attr_get(&op->attrs, "dims");
    const TileType *x = &op->opnd[0].v->type;
    if (dims && dims->kind == TILE_ATTR_ARRAY && dims->n == 1 && x->kind == TILE_TY_TENSOR &&
        dims->elems[0].i == x->rank - 1 && x->dims[x->rank - 1] == full->dims[R - 1])
      return true;
  }
  return false;
}

static bool is_row_of(const TileType *t, const TileType *full) {
  int R = rank_of(full);
  if (rank_of(t) != R - 1) return false;
  for (int i = 0; i < R - 1; i++)
    if (t->dims[i] != full->dims[i]) return false;
  return true;
}

static bool emit_row_kernel(CudaEmit *e, const Group *grp, const TileType *full,
                            TileValue **fulls, int nf, TileValue **rows, int nr) {
  int R = rank_of(full);
  int64_t cols = full->dims[R - 1], nrows = ce_numel(full) / (cols ? cols : 1);
  if (nrows > 0x7fffffffLL || nrows == 0 || cols == 0)
    return tile_error(e->d, grp->ops[0]->loc, "the CUDA backend cannot run %lld rows as blocks",
                      (long long)nrows);
  int threads = cols >= 256 ? 256 : (int)((cols + 31) / 32 * 32);
  Gen *g = gen_new(e, grp->id);
  if (!g) return false;
  gen_set_rows(g, cols);
  Scope *root = gen_root(g, true);
  Idx idx[TILE_MAX_RANK];
  for (int k = 0; k < R - 1; k++)
    idx[k] = (Idx){gen_str(g, "r%d", k), gen_bind_var(g, root, "")};
  /* Per-row outputs: computed by every thread (they are uniform), written by one. */
  const char **rv = calloc((size_t)nr + 1, sizeof *rv);
  if (!rv) {
    gen_free(g);
    return false;
  }
  for (int i = 0; i < nr; i++) rv[i] = gen_value(g, root, rows[i], idx);
  if (nr) {
    buf_puts(gen_text(root), "  if (threadIdx.x == 0) {\n");
    for (int i = 0; i < nr; i++) store(g, root, ce_buffer_of(e, rows[i]), rows[i], idx, rv[i], "    ");
    buf_puts(gen_text(root), "  }\n");
  }
  free(rv);
  Scope *loop = gen_open(g, root, false);
  idx[R - 1] = (Idx){"jo", gen_bind_var(g, loop, "jo")};
  for (int i = 0; i < nf && !gen_failed(g); i++) {
    const char *v = gen_value(g, loop, fulls[i], idx);
    store(g, loop, ce_buffer_of(e, fulls[i]), fulls[i], idx, v, "  ");
  }
  char *body = gen_take(g, loop);
  buf_printf(gen_text(root), "  for (int jo = threadIdx.x; jo < %lld; jo += blockDim.x) {\n%s  }\n",
             (long long)cols, body);
  free(body);

  char name[64];
  ce_kernel_name(e, grp->id, "rows", name, sizeof name);
  TileCudaLaunch *l = ce_add_launch(e, name, grp->ops[0]);
  if (!l) {
    gen_free(g);
    return false;
  }
  l->grid[0] = (uint32_t)nrows;
  l->block[0] = (uint32_t)threads;
  Buf k = {0};
  buf_printf(&k, "\n// group %d: %lld rows of %lld, one block per row\n", grp->id,
             (long long)nrows, (long long)cols);
  buf_printf(&k, "extern \"C\" __global__ void __launch_bounds__(%d) %s(", threads, name);
  gen_params(g, &k, l);
  buf_puts(&k, ") {\n  int row = blockIdx.x;\n");
  for (int d = R - 2; d >= 0; d--) {
    buf_printf(&k, "  const int r%d = row %% %lld;\n", d, (long long)full->dims[d]);
    if (d) buf_printf(&k, "  row /= %lld;\n", (long long)full->dims[d]);
  }
  body = gen_take(g, root);
  buf_printf(&k, "%s}\n", body);
  free(body);
  return finish(e, g, &k);
}

bool ce_emit_rows(CudaEmit *e, const Group *grp) {
  if (!grp->nouts) return true; /* nothing of it is read */
  const TileType *full = &grp->outs[0]->type;
  for (int i = 1; i < grp->nouts; i++)
    if (ce_numel(&grp->outs[i]->type) > ce_numel(full)) full = &grp->outs[i]->type;
  TileValue **fulls = calloc((size_t)grp->nouts, sizeof *fulls);
  TileValue **rows = calloc((size_t)grp->nouts, sizeof *rows);
  TileValue **rest = calloc((size_t)grp->nouts, sizeof *rest);
  bool *done = calloc((size_t)grp->nouts, sizeof *done);
  bool ok = fulls && rows && rest && done;
  int nf = 0, nr = 0;
  if (ok && reduces_rows(grp, full)) {
    for (int i = 0; i < grp->nouts; i++) {
      if (same_dims(&grp->outs[i]->type, full)) fulls[nf++] = grp->outs[i], done[i] = true;
      else if (is_row_of(&grp->outs[i]->type, full)) rows[nr++] = grp->outs[i], done[i] = true;
    }
    ok = emit_row_kernel(e, grp, full, fulls, nf, rows, nr);
  }
  /* The rest: one flat kernel per shape. */
  for (int i = 0; ok && i < grp->nouts; i++) {
    if (done[i]) continue;
    int n = 0;
    for (int j = i; j < grp->nouts; j++)
      if (!done[j] && same_dims(&grp->outs[j]->type, &grp->outs[i]->type))
        rest[n++] = grp->outs[j], done[j] = true;
    ok = ce_emit_flat(e, grp->id, "flat", rest, NULL, n, grp->ops[0]);
  }
  free(fulls);
  free(rows);
  free(rest);
  free(done);
  return ok;
}
