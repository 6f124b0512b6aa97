/* Attention: softmax(q k^T * scale [+ causal mask]) v, flash-style, for prefill and
 * decode alike.
 *
 * q [B, H, Sq, D], k, v [B, Hkv, Sk, D]; the G = H / Hkv query heads of one K/V head
 * are served by the same blocks, so K and V are read once for all of them (grouped-
 * query attention; decode reads the cache once). The rows of one K/V head are the
 * G * Sq (query position, head) pairs, position-major, so the rows of a block are
 * neighbours in position and see nearly the same keys under the causal mask. One warp
 * per row; a block of up to 8 warps walks the keys in tiles of 32 staged in shared
 * memory as f32: lane j scores key j of the tile, the warp keeps the running max and
 * sum (online softmax, f32) and each lane accumulates D/32 output dims. Causal: query
 * position i sees keys j <= i, and the block stops after the last key any of its rows
 * sees. The output is rounded to its element type once, at the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

enum { KEYS = 32, MAX_WARPS = 8, SMEM_LIMIT = 227 * 1024 };

bool ce_emit_attention(CudaEmit *e, const Group *grp, TileOp *op) {
  const TileType *q = &op->opnd[0].v->type, *k = &op->opnd[1].v->type;
  const TileValue *out = op->res[0];
  if (q->rank != 4 || k->rank != 4)
    return tile_error(e->d, op->loc, "attention: q, k, v must be [B, H, S, D]");
  int64_t B = q->dims[0], H = q->dims[1], Sq = q->dims[2], D = q->dims[3];
  int64_t Hkv = k->dims[1], Sk = k->dims[2];
  if (!Hkv || H % Hkv || k->dims[3] != D || !D)
    return tile_error(e->d, op->loc, "attention: H must be a multiple of Hkv and D must agree");
  double scale = 1.0;
  const TileAttr *sa = tile_attr_get(&op->attrs, "scale");
  if (sa) scale = sa->kind == TILE_ATTR_INT ? (double)sa->i : sa->f;
  int64_t causal = 0;
  tile_attr_get_int(&op->attrs, "causal", &causal);
  int64_t G = H / Hkv, rows = G * Sq;
  int warps = rows < MAX_WARPS ? (int)rows : MAX_WARPS;
  if (warps < 1) warps = 1;
  int64_t dpl = (D + 31) / 32;
  int64_t smem = (KEYS * (D + 1) + KEYS * D + warps * D) * 4;
  if (smem > SMEM_LIMIT || dpl > 16)
    return tile_error(e->d, op->loc, "attention: head dim %lld is too large for the CUDA kernel "
                      "(at most 512)", (long long)D);
  int bufs[4];
  for (int i = 0; i < 3; i++) bufs[i] = ce_buffer_of(e, op->opnd[i].v);
  bufs[3] = ce_buffer_of(e, out);
  if (bufs[3] < 0) return true; /* not read */
  for (int i = 0; i < 4; i++)
    if (bufs[i] < 0) return tile_error(e->d, op->loc, "internal error: attention operand has no buffer");

  char name[64];
  ce_kernel_name(e, grp->id, "attention", name, sizeof name);
  TileCudaLaunch *l = ce_add_launch(e, name, op);
  if (!l) return false;
  l->grid[0] = (uint32_t)((rows + warps - 1) / warps);
  l->grid[1] = (uint32_t)Hkv;
  l->grid[2] = (uint32_t)B;
  l->block[0] = (uint32_t)(warps * 32);
  l->smem_bytes = (uint32_t)smem;
  l->nargs = 4;
  for (int i = 0; i < 4; i++) l->args[i] = bufs[i];
  TileElem eq = (TileElem)q->elem, ek = (TileElem)k->elem,
           ev = (TileElem)op->opnd[2].v->type.elem, eo = (TileElem)out->type.elem;
  Buf lq = {0}, lk = {0}, lv = {0}, so = {0};
  ce_load_expr(&lq, eq, "q[qbase + d]");
  ce_load_expr(&lk, ek, "k[kbase + (long long)(k0 + j) * D + d]");
  ce_load_expr(&lv, ev, "v[kbase + (long long)(k0 + j) * D + d]");
  ce_store_expr(&so, eo, "acc[i] / lsum");
  Buf *s = &e->src;
  buf_printf(s, "\n// attention: q [%lld, %lld, %lld, %lld], k, v [%lld, %lld, %lld, %lld]%s; "
                "one warp per (position, head), %d per block\n",
             (long long)B, (long long)H, (long long)Sq, (long long)D, (long long)B,
             (long long)Hkv, (long long)Sk, (long long)D, causal ? ", causal" : "", warps);
  buf_printf(s, "extern \"C\" __global__ void __launch_bounds__(%d) %s(const %s *q, const %s *k, "
                "const %s *v, %s *o) {\n",
             warps * 32, name, ce_storage_type(eq), ce_storage_type(ek), ce_storage_type(ev),
             ce_storage_type(eo));
  buf_printf(s,
             "  const int D = %lld, G = %lld, SQ = %lld, SK = %lld, ROWS = %lld, W = %d;\n"
             "  const bool causal = %s;\n"
             "  const float scale = %.9gf;\n"
             "  extern __shared__ float smem[];\n"
             "  float *Ks = smem, *Vs = Ks + %d * (D + 1), *Qs = Vs + %d * D;\n"
             "  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;\n"
             "  const int b = blockIdx.z, hk = blockIdx.y;\n"
             "  const int r = blockIdx.x * W + warp;\n"
             "  const bool live = r < ROWS;\n"
             "  const int qp = live ? r / G : 0, h = hk * G + (live ? r %% G : 0);\n"
             "  const long long qbase = (((long long)b * %lld + h) * SQ + qp) * D;\n"
             "  const long long kbase = ((long long)b * %lld + hk) * SK * D;\n"
             "  for (int d = lane; d < D; d += 32) Qs[warp * D + d] = live ? %s : 0.0f;\n"
             "  const int rlast = min(blockIdx.x * W + W, ROWS) - 1;\n"
             "  const int kend = causal ? min(SK, rlast / G + 1) : SK;\n"
             "  float mrun = -tc_inf(), lsum = 0.0f, acc[%lld];\n"
             "#pragma unroll\n  for (int i = 0; i < %lld; i++) acc[i] = 0.0f;\n"
             "  for (int k0 = 0; k0 < kend; k0 += %d) {\n"
             "    __syncthreads();\n"
             "    for (int c = threadIdx.x; c < %d * D; c += blockDim.x) {\n"
             "      int j = c / D, d = c %% D;\n"
             "      bool in = k0 + j < SK;\n"
             "      Ks[j * (D + 1) + d] = in ? %s : 0.0f;\n"
             "      Vs[j * D + d] = in ? %s : 0.0f;\n"
             "    }\n"
             "    __syncthreads();\n"
             "    if (!live) continue;\n"
             "    const int j = k0 + lane;\n"
             "    float sc = 0.0f;\n"
             "    for (int d = 0; d < D; d++) sc += Qs[warp * D + d] * Ks[lane * (D + 1) + d];\n"
             "    sc *= scale;\n"
             "    const bool vis = j < SK && (!causal || j <= qp);\n"
             "    if (!vis) sc = -tc_inf();\n"
             "    float mt = sc;\n"
             "    for (int off = 16; off > 0; off >>= 1) mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, off));\n"
             "    const float mnew = fmaxf(mrun, mt);\n"
             "    if (mnew == -tc_inf()) continue;\n"
             "    const float p = vis ? expf(sc - mnew) : 0.0f;\n"
             "    const float alpha = mrun == -tc_inf() ? 0.0f : expf(mrun - mnew);\n"
             "    float ps = p;\n"
             "    for (int off = 16; off > 0; off >>= 1) ps += __shfl_xor_sync(0xffffffffu, ps, off);\n"
             "    lsum = lsum * alpha + ps;\n"
             "    mrun = mnew;\n"
             "#pragma unroll\n"
             "    for (int i = 0; i < %lld; i++) acc[i] *= alpha;\n"
             "    for (int jj = 0; jj < %d; jj++) {\n"
             "      const float pj = __shfl_sync(0xffffffffu, p, jj);\n"
             "#pragma unroll\n"
             "      for (int i = 0; i < %lld; i++) {\n"
             "        const int d = lane + 32 * i;\n"
             "        if (d < D) acc[i] += pj * Vs[jj * D + d];\n"
             "      }\n"
             "    }\n"
             "  }\n"
             "  if (!live) return;\n"
             "#pragma unroll\n"
             "  for (int i = 0; i < %lld; i++) {\n"
             "    const int d = lane + 32 * i;\n"
             "    if (d < D) o[qbase + d] = %s;\n"
             "  }\n"
             "}\n",
             (long long)D, (long long)G, (long long)Sq, (long long)Sk, (long long)rows, warps,
             causal ? "true" : "false", scale, KEYS, KEYS, (long long)H, (long long)Hkv, lq.p,
             (long long)dpl, (long long)dpl, KEYS, KEYS, lk.p, lv.p, (long long)dpl, KEYS,
             (long long)dpl, (long long)dpl, so.p);
  buf_free(&lq);
  buf_free(&lk);
  buf_free(&lv);
  buf_free(&so);
  return !s->oom;
}
