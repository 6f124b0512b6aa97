/* Matmul groups on sm_90a: Hopper warpgroup MMA (wgmma.mma_async) with f32 accumulators.
 *
 * A block computes a BM x 128 tile of C: BM = 128 as two warpgroups (256 threads) each
 * owning 64 rows, or BM = 64 as one warpgroup when M <= 64 (a decode-shaped product
 * does not stage rows it never uses). Every 64-deep step of K stages a BM x 64 tile of
 * A and a 64 x 128 tile of B in dynamic shared memory with the 128-byte swizzle
 * (wgmma_layout.h), in a ring of STAGES buffers:
 *
 *   prologue: stages 0 .. STAGES-3 in flight (cp.async, one commit group each)
 *   step kt:  wait for stage kt, fence.proxy.async (cp.async writes are generic-proxy
 *             writes; wgmma reads through the async proxy), __syncthreads;
 *             start loading step kt + STAGES-2 into the buffer step kt-2 used;
 *             wgmma.fence; 4 x wgmma m64n128k16 (A and B by descriptor); commit;
 *             wgmma.wait_group 1 (step kt-1's MMAs are done, kt's keep running)
 *
 * The buffer refilled at step kt was last read by step kt-2's MMAs, which every
 * warpgroup waited for (wait_group 1 at step kt-1) before the barrier of step kt, so the
 * ring needs no other synchronization; STAGES-2 loads overlap each step's MMAs.
 *
 * Loads are 16-byte cp.async copies when rows are whole 16-byte chunks (K, N multiples
 * of 8); a chunk past an edge is zero-filled (source size 0). Otherwise elements are
 * stored one by one with bounds checks. So any M, N, K is exact, and the epilogue (the
 * group's elemental code at each accumulator, emit_matmul.c) stores with bounds checks.
 * A [M, K] is read K-major; B [K, N] N-major through the instruction's transpose bit,
 * so neither operand is transposed on the way in. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"
#include "wgmma_layout.h"

enum { WG_THREADS = 128, WG_BN = 128, WG_MAX_STAGES = 5, WG_SMEM_BUDGET = 200 * 1024 };

/* The layout functions of wgmma_layout.h as device code. */
#define X(ret, name, params, expr) \
  "__device__ __forceinline__ " #ret " " #name #params " { return " #expr "; }\n"
static const char wg_layout_src[] = TC_WG_LAYOUT(X);
#undef X

static const char wg_helpers[] =
    "\n// Warpgroup MMA (sm_90a): shared-address cp.async, proxy fence, wgmma sync.\n"
    "__device__ __forceinline__ void tc_cp16s(unsigned s, const void *g, bool in) {\n"
    "  asm volatile(\"cp.async.cg.shared.global [%0], [%1], 16, %2;\\n\"\n"
    "               :: \"r\"(s), \"l\"(g), \"r\"(in ? 16 : 0) : \"memory\");\n"
    "}\n"
    "template <int N> __device__ __forceinline__ void tc_cp_wait() {\n"
    "  asm volatile(\"cp.async.wait_group %0;\\n\" :: \"n\"(N) : \"memory\");\n"
    "}\n"
    "// Orders this thread's generic-proxy shared memory writes before async-proxy reads.\n"
    "__device__ __forceinline__ void tc_wg_proxy_fence() {\n"
    "  asm volatile(\"fence.proxy.async.shared::cta;\\n\" ::: \"memory\");\n"
    "}\n"
    "__device__ __forceinline__ void tc_wg_arrive() { asm volatile(\"wgmma.fence.sync.aligned;\\n\" ::: \"memory\"); }\n"
    "__device__ __forceinline__ void tc_wg_commit() { asm volatile(\"wgmma.commit_group.sync.aligned;\\n\" ::: \"memory\"); }\n"
    "template <int N> __device__ __forceinline__ void tc_wg_wait() {\n"
    "  asm volatile(\"wgmma.wait_group.sync.aligned %0;\\n\" :: \"n\"(N) : \"memory\");\n"
    "}\n"
    "// Keeps the compiler from moving accumulator reads or writes across a wgmma step.\n"
    "__device__ __forceinline__ void tc_wg_hold(float &r) { asm volatile(\"\" : \"+f\"(r) :: \"memory\"); }\n";

static void helpers(CudaEmit *e) {
  ce_matmul_cp_helpers(e);
  if (!strstr(e->src.p ? e->src.p : "", "tc_wg_arrive()")) {
    buf_puts(&e->src, wg_helpers);
    buf_puts(&e->src, wg_layout_src);
  }
}

/* tc_wg_mma_<type>_<bn>(d, da, db): d[0 .. bn/2) += A (64 x 16, descriptor da) x B
 * (16 x bn, N-major, descriptor db); written once per type and width. */
static void mma_fn(CudaEmit *e, const char *ty, int bn) {
  char name[48];
  snprintf(name, sizeof name, "void tc_wg_mma_%s_%d(", ty, bn);
  if (strstr(e->src.p ? e->src.p : "", name)) return;
  int nd = bn / 2;
  Buf *s = &e->src;
  buf_printf(s, "// D += A x B, m64n%dk16; scale-d 1, A and B unscaled, A K-major, B N-major.\n"
                "__device__ __forceinline__ %sfloat *d, unsigned long long da, "
                "unsigned long long db) {\n"
                "  asm volatile(\"{\\n.reg .pred p;\\nsetp.ne.b32 p, %%%d, 0;\\n\"\n"
                "               \"wgmma.mma_async.sync.aligned.m64n%dk16.f32.%s.%s {\"\n               \"",
             bn, name, nd + 2, bn, ty, ty);
  for (int i = 0; i < nd; i++)
    buf_printf(s, "%%%d%s%s", i, i + 1 < nd ? "," : "", i % 16 == 15 && i + 1 < nd ? "\"\n               \"" : "");
  buf_printf(s, "}, %%%d, %%%d, p, 1, 1, 0, 1;\\n}\\n\"\n               : ", nd, nd + 1);
  for (int i = 0; i < nd; i++)
    buf_printf(s, "\"+f\"(d[%d])%s", i,
               i + 1 == nd ? "" : i % 8 == 7 ? ",\n                 " : ", ");
  buf_puts(s, "\n               : \"l\"(da), \"l\"(db), \"r\"(1) : \"memory\");\n}\n");
}

/* The stage loads: `load(kt, st)` fills buffer st with A's and B's tiles of step kt. */
static void loads(Buf *k, const CeMatmul *mm, const CeMatmulKernel *mk, int bm, int threads) {
  long long M = mm->M, N = mm->N, K = mm->K;
  buf_puts(k, "  auto load = [&](int kt, int st) {\n"
              "    const int k0 = kt * 64;\n");
  if (K % 8 == 0) buf_puts(k, "    const unsigned sa = sbase + st * STAGE;\n");
  if (N % 8 == 0) buf_puts(k, "    const unsigned sb = sbase + st * STAGE + A_BYTES;\n");
  if (K % 8 == 0)
    buf_printf(k, "    for (int c = threadIdx.x; c < %d; c += %d) {\n"
                  "      const int r = c >> 3, ch = c & 7;\n"
                  "      const bool in = m0 + r < %lld && k0 + ch * 8 < %lld;\n"
                  "      tc_cp16s(sa + tc_wg_sw128(r, ch), in ? %s + abase + (long long)(m0 + r) * %lld + k0 + ch * 8 : %s, in);\n"
                  "    }\n", bm * 8, threads, M, K, mk->pa, K, mk->pa);
  else
    buf_printf(k, "    for (int c = threadIdx.x; c < %d; c += %d) {\n"
                  "      const int r = c >> 6, kk = c & 63;\n"
                  "      const bool in = m0 + r < %lld && k0 + kk < %lld;\n"
                  "      *(unsigned short *)(sgen + st * STAGE + tc_wg_sw128(r, kk >> 3) + (kk & 7) * 2) =\n"
                  "          in ? %s[abase + (long long)(m0 + r) * %lld + k0 + kk] : (unsigned short)0;\n"
                  "    }\n", bm * 64, threads, M, K, mk->pa, K);
  if (N % 8 == 0)
    buf_printf(k, "    for (int c = threadIdx.x; c < %d; c += %d) {\n"
                  "      const int r = c / %d, nc = c %% %d;\n"
                  "      const bool in = k0 + r < %lld && n0 + nc * 8 < %lld;\n"
                  "      tc_cp16s(sb + tc_wg_b_off(r, nc), in ? %s + bbase + (long long)(k0 + r) * %lld + n0 + nc * 8 : %s, in);\n"
                  "    }\n", 64 * WG_BN / 8, threads, WG_BN / 8, WG_BN / 8, K, N, mk->pb, N, mk->pb);
  else
    buf_printf(k, "    for (int c = threadIdx.x; c < %d; c += %d) {\n"
                  "      const int r = c / %d, nn = c %% %d;\n"
                  "      const bool in = k0 + r < %lld && n0 + nn < %lld;\n"
                  "      *(unsigned short *)(sgen + st * STAGE + A_BYTES + tc_wg_b_off(r, nn >> 3) + (nn & 7) * 2) =\n"
                  "          in ? %s[bbase + (long long)(k0 + r) * %lld + n0 + nn] : (unsigned short)0;\n"
                  "    }\n", 64 * WG_BN, threads, WG_BN, WG_BN, K, N, mk->pb, N);
  buf_puts(k, "  };\n");
}

bool ce_emit_wgmma(CudaEmit *e, const Group *grp, TileOp *op, const CeMatmul *mm, bool f16) {
  const char *ty = f16 ? "f16" : "bf16";
  const int wgs = mm->M <= 64 ? 1 : 2, bm = 64 * wgs, threads = WG_THREADS * wgs;
  const int stage = bm * TC_WG_ROW_BYTES + WG_BN * TC_WG_ROW_BYTES;
  int stages = WG_SMEM_BUDGET / stage;
  if (stages > WG_MAX_STAGES) stages = WG_MAX_STAGES;
  helpers(e);
  mma_fn(e, ty, WG_BN);
  CeMatmulKernel mk;
  if (!ce_matmul_begin(e, grp, op, mm, "wgmma", threads, bm, WG_BN, &mk)) return false;
  /* 1024 bytes of slack: the ring starts on the next 1024-byte boundary. */
  mk.l->smem_bytes = (uint32_t)(stages * stage + 1024);
  Buf k = {0};
  ce_matmul_head(&k, grp, mm, &mk,
                 gen_str(mk.g, "%s wgmma, %dx%dx64 tiles, %d stages", ty, bm, WG_BN, stages), 1);
  buf_printf(&k, "  enum { STAGES = %d, A_BYTES = %d, STAGE = %d };\n"
                 "  extern __shared__ __align__(16) unsigned char tc_wg_raw[];\n"
                 "  const unsigned sraw = tc_smem_addr(tc_wg_raw), sbase = (sraw + 1023u) & ~1023u;\n"
                 "%s",
             stages, bm * TC_WG_ROW_BYTES, stage,
             mm->K % 8 || mm->N % 8 ? "  unsigned char *const sgen = tc_wg_raw + (sbase - sraw);\n" : "");
  ce_matmul_origin(&k, mm, &mk);
  buf_printf(&k, "  const int wg = threadIdx.x >> 7, t = threadIdx.x & 127;\n"
                 "  float acc[%d];\n"
                 "#pragma unroll\n  for (int i = 0; i < %d; i++) acc[i] = 0.0f;\n",
             WG_BN / 2, WG_BN / 2);
  loads(&k, mm, &mk, bm, threads);
  buf_printf(&k,
             "  const int KT = %lld;\n"
             "  for (int s = 0; s < STAGES - 2; s++) {\n"
             "    if (s < KT) load(s, s);\n"
             "    tc_cp_commit();\n"
             "  }\n"
             "  for (int kt = 0; kt < KT; kt++) {\n"
             "    tc_cp_wait<STAGES - 3>();\n"
             "    tc_wg_proxy_fence();\n"
             "    __syncthreads();\n"
             "    if (kt + STAGES - 2 < KT) load(kt + STAGES - 2, (kt + STAGES - 2) %% STAGES);\n"
             "    tc_cp_commit();\n"
             "    const unsigned sa = sbase + (kt %% STAGES) * STAGE, sb = sa + A_BYTES;\n"
             "#pragma unroll\n"
             "    for (int i = 0; i < %d; i++) tc_wg_hold(acc[i]);\n"
             "    tc_wg_arrive();\n"
             "#pragma unroll\n"
             "    for (int ks = 0; ks < 4; ks++)\n"
             "      tc_wg_mma_%s_%d(acc, tc_wg_a_desc(sa, wg, ks), tc_wg_b_desc(sb, ks));\n"
             "    tc_wg_commit();\n"
             "    tc_wg_wait<1>();\n"
             "#pragma unroll\n"
             "    for (int i = 0; i < %d; i++) tc_wg_hold(acc[i]);\n"
             "  }\n"
             "  tc_wg_wait<0>();\n"
             "#pragma unroll\n"
             "  for (int i = 0; i < %d; i++) tc_wg_hold(acc[i]);\n",
             (long long)((mm->K + TC_WG_BK - 1) / TC_WG_BK), WG_BN / 2, ty, WG_BN, WG_BN / 2,
             WG_BN / 2);
  ce_matmul_store(&k, mm, &mk,
                  gen_str(mk.g,
                          "#pragma unroll\n"
                          "  for (int f = 0; f < %d; f++) {\n"
                          "    const int row = m0 + wg * 64 + tc_wg_acc_row(t, f), col = n0 + tc_wg_acc_col(t, f);\n"
                          "    const float accv = acc[f];\n",
                          WG_BN / 2));
  buf_puts(&k, "}\n");
  return ce_matmul_end(e, &mk, &k);
}
