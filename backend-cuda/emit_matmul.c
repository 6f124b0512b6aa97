/* Matmul groups: one matmul (or a dot_general of the same form) and its epilogue.
 *
 * bf16 or f16 operands run on the tensor cores: a block of 4 warps computes a 64x64
 * tile of C, each warp 32x32 as 2x4 mma.sync.m16n8k16 with f32 accumulators. A and B
 * tiles of 64x32 and 32x64 are staged through shared memory, double-buffered: 16-byte
 * cp.async copies when rows are whole 16-byte chunks (K, N multiples of 8; a chunk
 * past the edge is zero-filled by a source size of 0), plain loads with bounds checks
 * otherwise, so any M, N, K works and padding adds nothing to C. Other element types
 * run a SIMT kernel of the same tiling (4x4 outputs per thread), accumulating in f32
 * (integers in their own type).
 *
 * On an architecture with warpgroup MMA (sm_90a, target.c) bf16/f16 matmuls go to
 * emit_wgmma.c instead; both kernels share this file's launch setup and epilogue
 * (ce_matmul_begin, ce_matmul_store, ce_matmul_end).
 *
 * The epilogue (bias, activation, convert) is the elemental code of the group's other
 * ops at each accumulator's (batch, row, col), with the matmul's value seeded as the
 * accumulator; outputs are stored with bounds checks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

enum { BM = 64, BN = 64, BK = 32, PAD = 8, MMA_THREADS = 128, SIMT_BK = 16, SIMT_THREADS = 256 };

typedef CeMatmul MM;

static bool shape(CudaEmit *e, TileOp *op, MM *mm) {
  mm->a = op->opnd[0].v;
  mm->b = op->opnd[1].v;
  mm->c = op->res[0];
  const TileType *a = &mm->a->type, *b = &mm->b->type, *c = &mm->c->type;
  if (op->kind == TILE_OP_DOT_GENERAL) {
    /* Only the batched-matmul form: batch dims leading, contract A's last, B's
     * first after the batch. */
    const char *names[] = {"lhs_batch", "rhs_batch", "lhs_contract", "rhs_contract"};
    const TileAttr *at[4];
    for (int i = 0; i < 4; i++) at[i] = tile_attr_get(&op->attrs, names[i]);
    int nb = at[0] ? at[0]->n : -1;
    bool ok = nb >= 0 && at[1] && at[1]->n == nb && at[2] && at[2]->n == 1 && at[3] &&
              at[3]->n == 1 && a->rank == nb + 2 && b->rank == nb + 2;
    for (int i = 0; ok && i < nb; i++) ok = at[0]->elems[i].i == i && at[1]->elems[i].i == i;
    ok = ok && at[2]->elems[0].i == nb + 1 && at[3]->elems[0].i == nb;
    if (!ok)
      return tile_error(e->d, op->loc,
                        "the CUDA backend runs dot_general only in the batched-matmul form "
                        "(batch dims leading, contracting lhs's last dim with rhs's first "
                        "after the batch)");
  }
  if (a->rank < 2 || b->rank < 2)
    return tile_error(e->d, op->loc, "matmul: operands need rank 2 or more");
  mm->M = a->dims[a->rank - 2];
  mm->K = a->dims[a->rank - 1];
  mm->N = b->dims[b->rank - 1];
  mm->nbatch = c->rank - 2;
  mm->batch = 1;
  for (int i = 0; i < mm->nbatch; i++) mm->batch *= c->dims[i];
  mm->b_batched = b->rank > 2;
  if (mm->batch > 65535 || (mm->M + BM - 1) / BM > 65535)
    return tile_error(e->d, op->loc, "matmul: too large for one CUDA grid");
  return true;
}

/* The epilogue at one accumulator: `row`, `col`, `bz` and `accv` are in scope. */
static char *epilogue(CudaEmit *e, Gen *g, const Group *grp, const MM *mm, Buf *pre) {
  Scope *root = gen_root(g, false);
  const TileType *c = &mm->c->type;
  Idx idx[TILE_MAX_RANK];
  for (int k = 0; k < mm->nbatch; k++) idx[k] = (Idx){gen_str(g, "bi%d", k), gen_bind_var(g, root, "")};
  idx[mm->nbatch] = (Idx){"row", gen_bind_var(g, root, "row")};
  idx[mm->nbatch + 1] = (Idx){"col", gen_bind_var(g, root, "col")};
  if (mm->nbatch) buf_puts(pre, "  int bzr = bz;\n");
  for (int k = mm->nbatch - 1; k >= 0; k--)
    buf_printf(pre, "  const int bi%d = bzr %% %lld; bzr /= %lld;\n", k, (long long)c->dims[k],
               (long long)c->dims[k]);
  /* The accumulator is f32; a narrower result is the rounded accumulator. */
  TileElem ce = (TileElem)c->elem;
  gen_seed(g, root, mm->c, idx,
           ce == TILE_ELEM_BF16 ? "tc_rbf(accv)" : ce == TILE_ELEM_F16 ? "tc_rhf(accv)" : "accv");
  for (int i = 0; i < grp->nouts && !gen_failed(g); i++) {
    const TileValue *v = grp->outs[i];
    if (v->type.kind != TILE_TY_TENSOR || v->type.rank != c->rank ||
        memcmp(v->type.dims, c->dims, sizeof(int64_t) * (size_t)c->rank) != 0) {
      tile_error(e->d, v->def->loc, "the CUDA backend writes only values of the matmul's "
                 "shape from a matmul group");
      return NULL;
    }
    const char *val = gen_value(g, root, v, idx);
    const char *p = gen_buffer_arg(g, ce_buffer_of(e, v));
    Buf s = {0};
    ce_store_expr(&s, (TileElem)v->type.elem, val);
    buf_printf(gen_text(root), "      %s[%s] = %s;\n", p, gen_linear(g, &v->type, idx),
               s.p ? s.p : "0");
    buf_free(&s);
  }
  return gen_take(g, root);
}

static const char mma_helpers[] =
    "\n__device__ __forceinline__ unsigned tc_smem_addr(const void *p) {\n"
    "  unsigned a;\n"
    "  asm(\"{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }\" : \"=r\"(a) : \"l\"(p));\n"
    "  return a;\n"
    "}\n"
    "// 16 bytes global -> shared, asynchronously; n = 0 writes zeros.\n"
    "__device__ __forceinline__ void tc_cp16(void *s, const void *g, bool in) {\n"
    "  asm volatile(\"cp.async.cg.shared.global [%0], [%1], 16, %2;\\n\"\n"
    "               :: \"r\"(tc_smem_addr(s)), \"l\"(g), \"r\"(in ? 16 : 0));\n"
    "}\n"
    "__device__ __forceinline__ void tc_cp_commit() { asm volatile(\"cp.async.commit_group;\\n\" ::); }\n"
    "__device__ __forceinline__ void tc_cp_wait1() { asm volatile(\"cp.async.wait_group 1;\\n\" ::); }\n";

void ce_matmul_cp_helpers(CudaEmit *e) {
  if (!strstr(e->src.p ? e->src.p : "", "tc_cp16(void")) buf_puts(&e->src, mma_helpers);
}

/* The tile loads of one stage into buffer `st`, for A (rows of K) and B (rows of N). */
static void mma_loads(Buf *k, const MM *mm, const char *pa, const char *pb) {
  bool va = mm->K % 8 == 0, vb = mm->N % 8 == 0;
  buf_puts(k, "  auto load = [&](int kt, int st) {\n    int k0 = kt * 32;\n");
  if (va)
    buf_printf(k, "    for (int c = threadIdx.x; c < 256; c += 128) {\n"
                  "      int r = c >> 2, kk = (c & 3) * 8;\n"
                  "      bool in = m0 + r < %lld && k0 + kk < %lld;\n"
                  "      tc_cp16(&As[st][r][kk], in ? %s + abase + (long long)(m0 + r) * %lld + k0 + kk : %s, in);\n"
                  "    }\n", (long long)mm->M, (long long)mm->K, pa, (long long)mm->K, pa);
  else
    buf_printf(k, "    for (int c = threadIdx.x; c < 64 * 32; c += 128) {\n"
                  "      int r = c >> 5, kk = c & 31;\n"
                  "      bool in = m0 + r < %lld && k0 + kk < %lld;\n"
                  "      As[st][r][kk] = in ? %s[abase + (long long)(m0 + r) * %lld + k0 + kk] : (unsigned short)0;\n"
                  "    }\n", (long long)mm->M, (long long)mm->K, pa, (long long)mm->K);
  if (vb)
    buf_printf(k, "    for (int c = threadIdx.x; c < 256; c += 128) {\n"
                  "      int r = c >> 3, nn = (c & 7) * 8;\n"
                  "      bool in = k0 + r < %lld && n0 + nn < %lld;\n"
                  "      tc_cp16(&Bs[st][r][nn], in ? %s + bbase + (long long)(k0 + r) * %lld + n0 + nn : %s, in);\n"
                  "    }\n", (long long)mm->K, (long long)mm->N, pb, (long long)mm->N, pb);
  else
    buf_printf(k, "    for (int c = threadIdx.x; c < 32 * 64; c += 128) {\n"
                  "      int r = c >> 6, nn = c & 63;\n"
                  "      bool in = k0 + r < %lld && n0 + nn < %lld;\n"
                  "      Bs[st][r][nn] = in ? %s[bbase + (long long)(k0 + r) * %lld + n0 + nn] : (unsigned short)0;\n"
                  "    }\n", (long long)mm->K, (long long)mm->N, pb, (long long)mm->N);
  buf_puts(k, "  };\n");
}

bool ce_matmul_begin(CudaEmit *e, const Group *grp, TileOp *op, const MM *mm, const char *what,
                     int threads, int bm, int bn, CeMatmulKernel *mk) {
  *mk = (CeMatmulKernel){0};
  if (!(mk->g = gen_new(e, grp->id))) return false;
  mk->pa = gen_buffer_arg(mk->g, ce_buffer_of(e, mm->a));
  mk->pb = gen_buffer_arg(mk->g, ce_buffer_of(e, mm->b));
  mk->epi = epilogue(e, mk->g, grp, mm, &mk->pre);
  if (mk->epi) {
    ce_kernel_name(e, grp->id, what, mk->name, sizeof mk->name);
    mk->l = ce_add_launch(e, mk->name, op);
  }
  if (!mk->l) {
    free(mk->epi);
    buf_free(&mk->pre);
    gen_free(mk->g);
    return false;
  }
  mk->l->grid[0] = (uint32_t)((mm->N + bn - 1) / bn);
  mk->l->grid[1] = (uint32_t)((mm->M + bm - 1) / bm);
  mk->l->grid[2] = (uint32_t)mm->batch;
  mk->l->block[0] = (uint32_t)threads;
  mk->bm = bm;
  mk->bn = bn;
  return true;
}

void ce_matmul_head(Buf *k, const Group *grp, const MM *mm, const CeMatmulKernel *mk,
                    const char *what, int min_blocks) {
  buf_printf(k, "\n// group %d: C[%lld x %lld] = A x B over K = %lld (x%lld), %s\n", grp->id,
             (long long)mm->M, (long long)mm->N, (long long)mm->K, (long long)mm->batch, what);
  buf_printf(k, "extern \"C\" __global__ void __launch_bounds__(%u", mk->l->block[0]);
  if (min_blocks) buf_printf(k, ", %d", min_blocks);
  buf_printf(k, ") %s(", mk->name);
  gen_params(mk->g, k, mk->l);
  buf_puts(k, ") {\n");
}

void ce_matmul_origin(Buf *k, const MM *mm, const CeMatmulKernel *mk) {
  buf_printf(k, "  const int bz = blockIdx.z, m0 = blockIdx.y * %d, n0 = blockIdx.x * %d;\n"
                "  const long long abase = (long long)bz * %lldLL, bbase = (long long)bz * %lldLL;\n",
             mk->bm, mk->bn, (long long)(mm->M * mm->K),
             mm->b_batched ? (long long)(mm->K * mm->N) : 0LL);
}

void ce_matmul_store(Buf *k, const MM *mm, const CeMatmulKernel *mk, const char *loop) {
  buf_printf(k, "%s%s    if (row < %lld && col < %lld) {\n%s    }\n  }\n", mk->pre.p ? mk->pre.p : "",
             loop, (long long)mm->M, (long long)mm->N, mk->epi);
}

bool ce_matmul_end(CudaEmit *e, CeMatmulKernel *mk, Buf *k) {
  bool ok = !gen_failed(mk->g) && !k->oom;
  if (ok) buf_puts(&e->src, k->p);
  buf_free(k);
  free(mk->epi);
  buf_free(&mk->pre);
  gen_free(mk->g);
  return ok;
}

static bool emit_mma(CudaEmit *e, const Group *grp, TileOp *op, const MM *mm, bool f16) {
  ce_matmul_cp_helpers(e);
  CeMatmulKernel mk;
  if (!ce_matmul_begin(e, grp, op, mm, "mma", MMA_THREADS, BM, BN, &mk)) return false;
  Buf k = {0};
  ce_matmul_head(&k, grp, mm, &mk, f16 ? "f16 tensor cores" : "bf16 tensor cores", 0);
  buf_printf(&k, "  __shared__ __align__(16) unsigned short As[2][%d][%d];\n"
                 "  __shared__ __align__(16) unsigned short Bs[2][%d][%d];\n",
             BM, BK + PAD, BK, BN + PAD);
  ce_matmul_origin(&k, mm, &mk);
  buf_puts(&k, "  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;\n"
               "  const int wm = (warp >> 1) * 32, wn = (warp & 1) * 32, gid = lane >> 2, tig = lane & 3;\n"
               "  float acc[32];\n"
               "#pragma unroll\n  for (int i = 0; i < 32; i++) acc[i] = 0.0f;\n");
  mma_loads(&k, mm, mk.pa, mk.pb);
  buf_printf(&k,
             "  const int KT = %lld;\n"
             "  load(0, 0);\n  tc_cp_commit();\n"
             "  for (int kt = 0; kt < KT; kt++) {\n"
             "    int st = kt & 1;\n"
             "    if (kt + 1 < KT) load(kt + 1, st ^ 1);\n"
             "    tc_cp_commit();\n    tc_cp_wait1();\n    __syncthreads();\n"
             "#pragma unroll\n"
             "    for (int ks = 0; ks < 32; ks += 16) {\n"
             "      unsigned af[2][4], bfr[4][2];\n"
             "#pragma unroll\n"
             "      for (int mi = 0; mi < 2; mi++) {\n"
             "        int r = wm + mi * 16 + gid, c = ks + 2 * tig;\n"
             "        af[mi][0] = *(const unsigned *)&As[st][r][c];\n"
             "        af[mi][1] = *(const unsigned *)&As[st][r + 8][c];\n"
             "        af[mi][2] = *(const unsigned *)&As[st][r][c + 8];\n"
             "        af[mi][3] = *(const unsigned *)&As[st][r + 8][c + 8];\n"
             "      }\n"
             "#pragma unroll\n"
             "      for (int ni = 0; ni < 4; ni++) {\n"
             "        int c = wn + ni * 8 + gid, r = ks + 2 * tig;\n"
             "        bfr[ni][0] = (unsigned)Bs[st][r][c] | ((unsigned)Bs[st][r + 1][c] << 16);\n"
             "        bfr[ni][1] = (unsigned)Bs[st][r + 8][c] | ((unsigned)Bs[st][r + 9][c] << 16);\n"
             "      }\n"
             "#pragma unroll\n"
             "      for (int mi = 0; mi < 2; mi++)\n"
             "#pragma unroll\n"
             "        for (int ni = 0; ni < 4; ni++) {\n"
             "          float *c = &acc[(mi * 4 + ni) * 4];\n"
             "          asm volatile(\"mma.sync.aligned.m16n8k16.row.col.f32.%s.%s.f32 \"\n"
             "                       \"{%%0,%%1,%%2,%%3}, {%%4,%%5,%%6,%%7}, {%%8,%%9}, {%%0,%%1,%%2,%%3};\\n\"\n"
             "                       : \"+f\"(c[0]), \"+f\"(c[1]), \"+f\"(c[2]), \"+f\"(c[3])\n"
             "                       : \"r\"(af[mi][0]), \"r\"(af[mi][1]), \"r\"(af[mi][2]), \"r\"(af[mi][3]),\n"
             "                         \"r\"(bfr[ni][0]), \"r\"(bfr[ni][1]));\n"
             "        }\n"
             "    }\n"
             "    __syncthreads();\n"
             "  }\n",
             (long long)((mm->K + BK - 1) / BK), f16 ? "f16" : "bf16", f16 ? "f16" : "bf16");
  ce_matmul_store(&k, mm, &mk,
                  "#pragma unroll\n"
                  "  for (int f = 0; f < 32; f++) {\n"
                  "    int mi = f >> 4, ni = (f >> 2) & 3, q = f & 3;\n"
                  "    const int row = m0 + wm + mi * 16 + gid + (q >> 1) * 8;\n"
                  "    const int col = n0 + wn + ni * 8 + 2 * tig + (q & 1);\n"
                  "    const float accv = acc[f];\n");
  buf_puts(&k, "}\n");
  return ce_matmul_end(e, &mk, &k);
}

static bool emit_simt(CudaEmit *e, const Group *grp, TileOp *op, const MM *mm) {
  TileElem ea = (TileElem)mm->a->type.elem, eb = (TileElem)mm->b->type.elem;
  bool fl = tile_elem_is_float(ea) || tile_elem_is_float(eb);
  const char *ct = fl ? "float" : ce_compute_type((TileElem)mm->c->type.elem);
  CeMatmulKernel mk;
  if (!ce_matmul_begin(e, grp, op, mm, "matmul", SIMT_THREADS, BM, BN, &mk)) return false;
  Buf la = {0}, lb = {0};
  ce_load_expr(&la, ea, gen_str(mk.g, "%s[abase + (long long)(m0 + r) * %lld + k0 + kk]", mk.pa,
                                (long long)mm->K));
  ce_load_expr(&lb, eb, gen_str(mk.g, "%s[bbase + (long long)(k0 + r) * %lld + n0 + nn]", mk.pb,
                                (long long)mm->N));
  Buf k = {0};
  ce_matmul_head(&k, grp, mm, &mk, "SIMT", 0);
  buf_printf(&k, "  __shared__ %s As[%d][%d];\n  __shared__ %s Bs[%d][%d];\n", ct, BM, SIMT_BK, ct,
             SIMT_BK, BN);
  ce_matmul_origin(&k, mm, &mk);
  buf_printf(&k, "  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;\n"
                 "  %s acc[16];\n"
                 "#pragma unroll\n  for (int i = 0; i < 16; i++) acc[i] = 0;\n"
                 "  for (int k0 = 0; k0 < %lld; k0 += %d) {\n"
                 "    for (int c = threadIdx.x; c < %d * %d; c += %d) {\n"
                 "      int r = c / %d, kk = c %% %d;\n"
                 "      As[r][kk] = (m0 + r < %lld && k0 + kk < %lld) ? (%s)%s : (%s)0;\n"
                 "    }\n"
                 "    for (int c = threadIdx.x; c < %d * %d; c += %d) {\n"
                 "      int r = c / %d, nn = c %% %d;\n"
                 "      Bs[r][nn] = (k0 + r < %lld && n0 + nn < %lld) ? (%s)%s : (%s)0;\n"
                 "    }\n"
                 "    __syncthreads();\n"
                 "#pragma unroll\n"
                 "    for (int kk = 0; kk < %d; kk++)\n"
                 "#pragma unroll\n"
                 "      for (int i = 0; i < 4; i++)\n"
                 "#pragma unroll\n"
                 "        for (int j = 0; j < 4; j++) acc[i * 4 + j] += As[ty * 4 + i][kk] * Bs[kk][tx * 4 + j];\n"
                 "    __syncthreads();\n"
                 "  }\n",
             ct, (long long)mm->K, SIMT_BK,
             BM, SIMT_BK, SIMT_THREADS, SIMT_BK, SIMT_BK, (long long)mm->M, (long long)mm->K, ct,
             la.p, ct, SIMT_BK, BN, SIMT_THREADS, BN, BN, (long long)mm->K, (long long)mm->N, ct,
             lb.p, ct, SIMT_BK);
  ce_matmul_store(&k, mm, &mk,
                  gen_str(mk.g,
                          "#pragma unroll\n"
                          "  for (int f = 0; f < 16; f++) {\n"
                          "    const int row = m0 + ty * 4 + (f >> 2), col = n0 + tx * 4 + (f & 3);\n"
                          "    const %s accv = acc[f];\n", ct));
  buf_puts(&k, "}\n");
  buf_free(&la);
  buf_free(&lb);
  return ce_matmul_end(e, &mk, &k);
}

bool ce_emit_matmul(CudaEmit *e, const Group *grp, TileOp *op) {
  MM mm;
  if (!shape(e, op, &mm)) return false;
  for (int i = 0; i < 2; i++)
    if (ce_buffer_of(e, op->opnd[i].v) < 0)
      return tile_error(e->d, op->loc, "the CUDA backend reads matmul operands from memory; "
                        "operand %d is computed in the same fusion group", i + 1);
  TileElem ea = (TileElem)mm.a->type.elem, eb = (TileElem)mm.b->type.elem;
  if (ea == eb && (ea == TILE_ELEM_BF16 || ea == TILE_ELEM_F16) && mm.M && mm.N && mm.K)
    return ce_arch_has_wgmma(e->p->arch) ? ce_emit_wgmma(e, grp, op, &mm, ea == TILE_ELEM_F16)
                                         : emit_mma(e, grp, op, &mm, ea == TILE_ELEM_F16);
  return emit_simt(e, grp, op, &mm);
}
