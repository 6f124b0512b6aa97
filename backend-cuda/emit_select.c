/* Selection: argmax and top-k, one block per row being searched.
 *
 * Both order (value, index) pairs the same way (tc_before in the prelude): larger
 * first, NaN above every number, ties to the lower index, so argmax is the first
 * maximum and top-k is sorted descending with ties in index order.
 *
 * argmax: each thread scans a strided share of the row keeping its best pair, then a
 * block-wide reduction of pairs. top-k: each thread keeps its own k best of its share,
 * sorted (insertion; most elements fail the first comparison), then k rounds of a
 * block reduction over the threads' current heads; the winner's thread advances. One
 * pass over the row from memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

enum { SEL_THREADS = 256, TOPK_MAX = 1024 };

static int threads_for(int64_t n) {
  if (n >= SEL_THREADS) return SEL_THREADS;
  return n > 32 ? (int)((n + 31) / 32 * 32) : 32;
}

/* The sentinel pair every real element beats. */
static const char *sentinel(TileElem e) {
  if (tile_elem_is_float(e)) return "(-tc_inf())";
  return e == TILE_ELEM_I64 ? "(-9223372036854775807LL - 1)" : "(-2147483647 - 1)";
}

bool ce_emit_argmax(CudaEmit *e, const Group *grp, TileOp *op) {
  const TileValue *x = op->opnd[0].v, *r = op->res[0];
  int64_t dim;
  if (!tile_attr_get_int(&op->attrs, "dim", &dim) || dim < 0 || dim >= x->type.rank)
    return tile_error(e->d, op->loc, "argmax: bad dim");
  int64_t n = x->type.dims[dim], inner = 1, outs = ce_numel(&r->type);
  for (int i = (int)dim + 1; i < x->type.rank; i++) inner *= x->type.dims[i];
  int bx = ce_buffer_of(e, x), br = ce_buffer_of(e, r);
  if (br < 0) return true;
  if (outs > 0x7fffffffLL || n > 0x7fffffffLL)
    return tile_error(e->d, op->loc, "argmax: too large for one CUDA grid");
  TileElem ex = (TileElem)x->type.elem;
  int threads = threads_for(n);
  char name[64];
  ce_kernel_name(e, grp->id, "argmax", name, sizeof name);
  TileCudaLaunch *l = ce_add_launch(e, name, op);
  if (!l) return false;
  l->grid[0] = (uint32_t)(outs ? outs : 1);
  l->block[0] = (uint32_t)threads;
  l->nargs = 2;
  l->args[0] = bx;
  l->args[1] = br;
  Buf ld = {0};
  ce_load_expr(&ld, ex, "x[base + (long long)j * INNER]");
  const char *T = ce_compute_type(ex);
  buf_printf(&e->src,
             "\n// argmax over %lld elements, one block per result\n"
             "extern \"C\" __global__ void __launch_bounds__(%d) %s(const %s *x, %s *out) {\n"
             "  const long long INNER = %lldLL, N = %lldLL;\n"
             "  const long long o = blockIdx.x;\n"
             "  const long long base = (o / INNER) * N * INNER + o %% INNER;\n"
             "  %s best = %s;\n  int bi = 0x7fffffff;\n"
             "  for (int j = threadIdx.x; j < N; j += blockDim.x) {\n"
             "    %s a = %s;\n"
             "    if (tc_before(a, j, best, bi)) { best = a; bi = j; }\n"
             "  }\n"
             "  tc_block_argmax(best, bi);\n"
             "  if (threadIdx.x == 0) out[o] = bi;\n"
             "}\n",
             (long long)n, threads, name, ce_storage_type(ex), ce_storage_type((TileElem)r->type.elem),
             (long long)inner, (long long)n, T, sentinel(ex), T, ld.p);
  buf_free(&ld);
  return !e->src.oom;
}

bool ce_emit_topk(CudaEmit *e, const Group *grp, TileOp *op) {
  const TileValue *x = op->opnd[0].v, *vals = op->res[0], *ids = op->res[1];
  int64_t k;
  int R = x->type.rank;
  if (!tile_attr_get_int(&op->attrs, "k", &k) || R < 1 || k < 1 || k > x->type.dims[R - 1])
    return tile_error(e->d, op->loc, "topk: k must be between 1 and the last dim");
  if (k > TOPK_MAX)
    return tile_error(e->d, op->loc, "topk: the CUDA kernel takes k up to %d, not %lld", TOPK_MAX,
                      (long long)k);
  int64_t n = x->type.dims[R - 1], rows = ce_numel(&x->type) / n;
  int bx = ce_buffer_of(e, x), bv = ce_buffer_of(e, vals), bi = ce_buffer_of(e, ids);
  if (bv < 0 && bi < 0) return true;
  if (rows > 0x7fffffffLL || n > 0x7fffffffLL)
    return tile_error(e->d, op->loc, "topk: too large for one CUDA grid");
  TileElem ex = (TileElem)x->type.elem;
  int threads = threads_for(n);
  char name[64];
  ce_kernel_name(e, grp->id, "topk", name, sizeof name);
  TileCudaLaunch *l = ce_add_launch(e, name, op);
  if (!l) return false;
  l->grid[0] = (uint32_t)rows;
  l->block[0] = (uint32_t)threads;
  l->args[l->nargs++] = bx;
  if (bv >= 0) l->args[l->nargs++] = bv;
  if (bi >= 0) l->args[l->nargs++] = bi;
  Buf ld = {0}, sv = {0};
  ce_load_expr(&ld, ex, "x[base + j]");
  ce_store_expr(&sv, ex, "v");
  const char *T = ce_compute_type(ex);
  buf_printf(&e->src,
             "\n// top-%lld of rows of %lld, one block per row\n"
             "extern \"C\" __global__ void __launch_bounds__(%d) %s(const %s *x",
             (long long)k, (long long)n, threads, name, ce_storage_type(ex));
  if (bv >= 0) buf_printf(&e->src, ", %s *vals", ce_storage_type(ex));
  if (bi >= 0) buf_printf(&e->src, ", int *ids");
  buf_printf(&e->src,
             ") {\n"
             "  const int K = %lld, N = %lld;\n"
             "  const long long row = blockIdx.x, base = row * N;\n"
             "  %s lv[%lld];\n  int li[%lld];\n  int cnt = 0;\n"
             "  for (int j = threadIdx.x; j < N; j += blockDim.x) {\n"
             "    %s a = %s;\n"
             "    if (cnt < K || tc_before(a, j, lv[K - 1], li[K - 1])) {\n"
             "      int p = cnt < K ? cnt++ : K - 1;\n"
             "      while (p > 0 && tc_before(a, j, lv[p - 1], li[p - 1])) {\n"
             "        lv[p] = lv[p - 1]; li[p] = li[p - 1]; p--;\n"
             "      }\n"
             "      lv[p] = a; li[p] = j;\n"
             "    }\n"
             "  }\n"
             "  int head = 0;\n"
             "  for (int r = 0; r < K; r++) {\n"
             "    %s v = head < cnt ? lv[head] : %s;\n"
             "    int i = head < cnt ? li[head] : 0x7fffffff;\n"
             "    tc_block_argmax(v, i);\n"
             "    if (head < cnt && li[head] == i) head++;\n"
             "    if (threadIdx.x == 0) {\n",
             (long long)k, (long long)n, T, (long long)k, (long long)k, T, ld.p, T, sentinel(ex));
  if (bv >= 0) buf_printf(&e->src, "      vals[row * K + r] = %s;\n", sv.p);
  if (bi >= 0) buf_puts(&e->src, "      ids[row * K + r] = i;\n");
  buf_puts(&e->src, "    }\n  }\n}\n");
  buf_free(&ld);
  buf_free(&sv);
  return !e->src.oom;
}
