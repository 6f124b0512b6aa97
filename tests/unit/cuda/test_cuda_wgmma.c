/* The sm_90a matmul kernel (backend-cuda/emit_wgmma.c): which architectures get it, its
 * launch plan, its edge handling, NVRTC accepting its PTX, and, on the host, the index
 * arithmetic it runs (backend-cuda/wgmma_layout.h) against the PTX ISA's layouts: the
 * shared memory address the tensor core reads for each operand element, as the
 * documented canonical layout gives it from the descriptor, must be where the loader
 * put that element, and the accumulator fragments must cover the tile exactly once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cuda_fixture.h"

#include "../../../backend-cuda/wgmma_layout.h"

#define X(ret, name, params, expr) static inline ret name params { return expr; }
TC_WG_LAYOUT(X)
#undef X

static const char FFN[] =
    "func @f(%x: tensor<1000x1000xbf16>, %w: tensor<1000x4096xbf16>, %b: tensor<4096xf32>)\n"
    "    -> tensor<1000x4096xbf16> {\n"
    "  %h = matmul %x, %w : tensor<1000x4096xf32>\n"
    "  %bb = broadcast %b {dims = [1]} : tensor<1000x4096xf32>\n"
    "  %z = add %h, %bb : tensor<1000x4096xf32>\n"
    "  %g = gelu %z : tensor<1000x4096xf32>\n"
    "  %y = convert %g : tensor<1000x4096xbf16>\n"
    "  return %y\n}\n";

static int count(const char *s, const char *what) {
  int n = 0;
  for (const char *p = s; (p = strstr(p, what)); p++) n++;
  return n;
}

TEST(wgmma, sm90a_target) {
  char arch[16];
  CHECK(tile_cuda_target("cuda-sm90a", arch, sizeof arch));
  CHECK_STREQ("sm_90a", arch);
  CHECK(!tile_cuda_target("cuda-sm90b", arch, sizeof arch));
}

TEST(wgmma, bf16_matmul_uses_wgmma_on_sm90a) {
  Emitted e;
  emit(FFN, "sm_90a", &e);
  REQUIRE(e.ok);
  REQUIRE(e.p.nlaunches == 1);
  const char *s = e.p.source;
  CHECK(strstr(s, "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {") != NULL);
  CHECK(strstr(s, "p, 1, 1, 0, 1;") != NULL); /* B N-major: the transpose bit */
  CHECK(strstr(s, "wgmma.fence.sync.aligned;") != NULL);
  CHECK(strstr(s, "wgmma.commit_group.sync.aligned;") != NULL);
  CHECK(strstr(s, "wgmma.wait_group.sync.aligned") != NULL);
  CHECK(strstr(s, "fence.proxy.async.shared::cta;") != NULL);
  CHECK(strstr(s, "tc_wg_a_desc(sa, wg, ks), tc_wg_b_desc(sb, ks)") != NULL);
  CHECK(strstr(s, "mma.sync.aligned.m16n8k16") == NULL);
  /* K and N are multiples of 8: every tile load is a zero-filling 16-byte cp.async. */
  CHECK_EQ(2, count(s, "tc_cp16s(s"));
  CHECK(strstr(s, "*(unsigned short *)(sgen") == NULL);
  /* The epilogue: bias, gelu, rounding, bounds-checked store. */
  CHECK(strstr(s, "tanhf(") != NULL);
  CHECK(strstr(s, "if (row < 1000 && col < 4096)") != NULL);
  const TileCudaLaunch *l = &e.p.launches[0];
  CHECK(strstr(l->kernel, "wgmma") != NULL);
  CHECK_EQ(4096 / 128, l->grid[0]);
  CHECK_EQ((1000 + 127) / 128, l->grid[1]);
  CHECK_EQ(1, l->grid[2]);
  CHECK_EQ(256, l->block[0]);
  /* Five stages of a 128 x 64 A tile and a 64 x 128 B tile, plus alignment slack. */
  CHECK_EQ(5 * (128 * 128 + 128 * 128) + 1024, l->smem_bytes);
  done(&e);
}

TEST(wgmma, other_architectures_keep_mma_sync) {
  const char *archs[] = {"sm_90", "sm_80", "sm_89"};
  for (int i = 0; i < 3; i++) {
    Emitted e;
    emit(FFN, archs[i], &e);
    REQUIRE(e.ok);
    CHECK(strstr(e.p.source, "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32") != NULL);
    CHECK(strstr(e.p.source, "wgmma") == NULL);
    CHECK_EQ(128, e.p.launches[0].block[0]);
    CHECK_EQ(0, e.p.launches[0].smem_bytes);
    done(&e);
  }
}

TEST(wgmma, short_m_is_one_warpgroup) {
  Emitted e;
  emit("func @f(%x: tensor<8x4096xbf16>, %w: tensor<4096x14336xbf16>) -> tensor<8x14336xbf16> {\n"
       "  %y = matmul %x, %w : tensor<8x14336xbf16>\n"
       "  return %y\n}\n", "sm_90a", &e);
  REQUIRE(e.ok);
  const TileCudaLaunch *l = &e.p.launches[0];
  CHECK_EQ(128, l->block[0]);
  CHECK_EQ(14336 / 128, l->grid[0]);
  CHECK_EQ(1, l->grid[1]);
  CHECK_EQ(5 * (64 * 128 + 128 * 128) + 1024, l->smem_bytes);
  CHECK(strstr(e.p.source, "tc_rbf(accv)") != NULL); /* a bf16 result rounds the f32 sum */
  done(&e);
}

TEST(wgmma, ragged_k_and_n_use_checked_element_stores) {
  Emitted e;
  emit("func @f(%a: tensor<77x1001xf16>, %b: tensor<1001x333xf16>) -> tensor<77x333xf32> {\n"
       "  %c = matmul %a, %b : tensor<77x333xf32>\n"
       "  return %c\n}\n", "sm_90a", &e);
  REQUIRE(e.ok);
  const char *s = e.p.source;
  CHECK(strstr(s, "m64n128k16.f32.f16.f16") != NULL);
  CHECK_EQ(0, count(s, "tc_cp16s(s"));
  CHECK_EQ(2, count(s, "*(unsigned short *)(sgen"));
  CHECK(strstr(s, "m0 + r < 77 && k0 + kk < 1001") != NULL);
  CHECK(strstr(s, "k0 + r < 1001 && n0 + nn < 333") != NULL);
  CHECK(strstr(s, "if (row < 77 && col < 333)") != NULL);
  CHECK_EQ(3, e.p.launches[0].grid[0]);
  CHECK_EQ(1, e.p.launches[0].grid[1]);
  CHECK_EQ(256, e.p.launches[0].block[0]);
  done(&e);
}

TEST(wgmma, batched_and_f32_matmuls) {
  Emitted e;
  emit("func @f(%a: tensor<3x200x64xbf16>, %b: tensor<3x64x96xbf16>, %x: tensor<64x64xf32>,\n"
       "         %y: tensor<64x64xf32>) -> (tensor<3x200x96xf32>, tensor<64x64xf32>) {\n"
       "  %c = dot_general %a, %b {lhs_batch = [0], rhs_batch = [0], lhs_contract = [2],\n"
       "                           rhs_contract = [1]} : tensor<3x200x96xf32>\n"
       "  %z = matmul %x, %y : tensor<64x64xf32>\n"
       "  return %c, %z\n}\n", "sm_90a", &e);
  REQUIRE(e.ok);
  REQUIRE(e.p.nlaunches == 2);
  CHECK_EQ(1, count(e.p.source, "__launch_bounds__(256, 1)"));
  CHECK(strstr(e.p.source, "bbase = (long long)bz * 6144LL") != NULL);
  CHECK_EQ(3, e.p.launches[0].grid[2]);
  CHECK(strstr(e.p.launches[1].kernel, "matmul") != NULL); /* f32 stays SIMT */
  done(&e);
}

TEST(wgmma, nvrtc_compiles_sm90a) {
  /* Aligned with an epilogue, ragged f16, short M, batched: every load and store path. */
  static const char *progs[] = {
      FFN,
      "func @f(%a: tensor<77x1001xf16>, %b: tensor<1001x333xf16>) -> tensor<77x333xf16> {\n"
      "  %c = matmul %a, %b : tensor<77x333xf16>\n"
      "  return %c\n}\n",
      "func @f(%a: tensor<2x5x24xbf16>, %b: tensor<2x24x40xbf16>) -> tensor<2x5x40xf32> {\n"
      "  %c = dot_general %a, %b {lhs_batch = [0], rhs_batch = [0], lhs_contract = [2],\n"
      "                           rhs_contract = [1]} : tensor<2x5x40xf32>\n"
      "  return %c\n}\n",
  };
  for (int i = 0; i < 3; i++) {
    Emitted e;
    emit(progs[i], "sm_90a", &e);
    REQUIRE(e.ok);
    CHECK(strstr(e.p.source, "wgmma.mma_async") != NULL);
    bool have_nvrtc = nvrtc_compiles(&e);
    done(&e);
    if (!have_nvrtc) SKIP("skipped: no NVRTC (libnvrtc.so)");
  }
}

/* ---- the layouts, on the host ---- */

/* The fields of a matrix descriptor (PTX ISA "Matrix Descriptor Format"). */
typedef struct Desc {
  unsigned start, lbo, sbo, base_offset, swizzle;
} Desc;

static Desc decode(unsigned long long d) {
  return (Desc){(unsigned)(d & 0x3FFF) << 4, (unsigned)((d >> 16) & 0x3FFF) << 4,
                (unsigned)((d >> 32) & 0x3FFF) << 4, (unsigned)((d >> 49) & 7),
                (unsigned)(d >> 62)};
}

/* The 128-byte swizzle as the hardware applies it: Swizzle<3,4,3> on the byte address,
 * bits 4-6 xor bits 7-9. */
static unsigned swizzle128(unsigned addr) { return addr ^ (((addr >> 7) & 7u) << 4); }

/* The address of a 16-bit element of a wgmma operand in the canonical 128B-swizzled
 * layouts of the PTX ISA ("Canonical Layouts", T = 8 elements per 16 bytes):
 *   K-major:  ((8,m),(T,2k)) : ((8T,SBO),(1,T))      element (row i, k)
 *   MN-major: ((T,8,m),(8,k)) : ((1,T,LBO),(8T,SBO))  element (k, column j)
 * offsets in elements, turned into bytes, then swizzled. */
static unsigned hw_k_major(Desc d, unsigned i, unsigned k) {
  unsigned elems = (i % 8) * 64 + (k % 8) + (k / 8) * 8;
  return swizzle128(d.start + elems * 2 + (i / 8) * d.sbo);
}

static unsigned hw_mn_major(Desc d, unsigned k, unsigned j) {
  unsigned elems = (j % 8) + ((j / 8) % 8) * 8 + (k % 8) * 64;
  return swizzle128(d.start + elems * 2 + (j / 64) * d.lbo + (k / 8) * d.sbo);
}

enum { BM = 128, BN = 128, BK = 64, A_BYTES = BM * 128, STAGE = A_BYTES + BN * BK * 2 };

TEST(wgmma, descriptor_fields) {
  unsigned long long d = tc_wg_desc(0x2C400u, 16u, 1024u);
  Desc f = decode(d);
  CHECK_EQ(0x2C400u, f.start);
  CHECK_EQ(16u, f.lbo);
  CHECK_EQ(1024u, f.sbo);
  CHECK_EQ(0u, f.base_offset);
  CHECK_EQ(1u, f.swizzle); /* 128-byte swizzle */
  CHECK_EQ(0ull, d & (3ull << 14));
  CHECK_EQ(0ull, d & (0x7FFull << 51) & ~(3ull << 62));
  Desc b = decode(tc_wg_b_desc(0x8000u, 3));
  CHECK_EQ(0x8000u + 3 * 16 * 128, b.start);
  CHECK_EQ(64u * 128u, b.lbo);
  CHECK_EQ(1024u, b.sbo);
  /* The whole ring (5 stages from the largest aligned base) fits the 18-bit window. */
  CHECK(1024 + 5 * STAGE + 1024 < (1 << 18));
}

/* Where the loader puts A's element (r, kk) of a stage and B's element (kr, n). */
static unsigned a_placed(unsigned a_tile, unsigned r, unsigned kk) {
  return a_tile + tc_wg_sw128(r, kk >> 3) + (kk & 7) * 2;
}
static unsigned b_placed(unsigned b_tile, unsigned kr, unsigned n) {
  return b_tile + tc_wg_b_off(kr, n >> 3) + (n & 7) * 2;
}

TEST(wgmma, loader_fills_each_tile_exactly) {
  /* Every element of a stage lands on its own 2 bytes inside its tile. */
  static unsigned char seen[STAGE / 2];
  memset(seen, 0, sizeof seen);
  for (unsigned r = 0; r < BM; r++)
    for (unsigned kk = 0; kk < BK; kk++) {
      unsigned o = a_placed(0, r, kk);
      REQUIRE(o < A_BYTES && o % 2 == 0);
      seen[o / 2]++;
    }
  for (unsigned kr = 0; kr < BK; kr++)
    for (unsigned n = 0; n < BN; n++) {
      unsigned o = b_placed(A_BYTES, kr, n);
      REQUIRE(o >= A_BYTES && o < STAGE);
      seen[o / 2]++;
    }
  for (unsigned i = 0; i < STAGE / 2; i++) CHECK_EQ(1, seen[i]);
  /* A 16-byte chunk stays whole (one cp.async). */
  for (unsigned r = 0; r < BM; r++)
    for (unsigned c = 0; c < 8; c++) CHECK_EQ(a_placed(0, r, c * 8) + 14, a_placed(0, r, c * 8 + 7));
}

TEST(wgmma, tensor_core_reads_what_the_loader_wrote) {
  /* Any stage of a ring starting on a 1024-byte boundary. */
  for (unsigned base = 1024; base <= 3072; base += 2048)
    for (unsigned st = 0; st < 5; st++) {
      unsigned sa = base + st * STAGE, sb = sa + A_BYTES;
      for (unsigned ks = 0; ks < BK / 16; ks++) {
        for (unsigned wg = 0; wg < 2; wg++) {
          Desc a = decode(tc_wg_a_desc(sa, wg, ks));
          for (unsigned i = 0; i < 64; i++)
            for (unsigned k = 0; k < 16; k++)
              if (hw_k_major(a, i, k) != a_placed(sa, wg * 64 + i, ks * 16 + k)) {
                CHECK_EQ(a_placed(sa, wg * 64 + i, ks * 16 + k), hw_k_major(a, i, k));
                return;
              }
        }
        Desc b = decode(tc_wg_b_desc(sb, ks));
        for (unsigned k = 0; k < 16; k++)
          for (unsigned j = 0; j < BN; j++)
            if (hw_mn_major(b, k, j) != b_placed(sb, ks * 16 + k, j)) {
              CHECK_EQ(b_placed(sb, ks * 16 + k, j), hw_mn_major(b, k, j));
              return;
            }
      }
    }
}

TEST(wgmma, accumulator_fragments_cover_the_tile_once) {
  for (int n = 8; n <= 256; n += 8) {
    static unsigned char seen[64][256];
    memset(seen, 0, sizeof seen);
    for (int t = 0; t < 128; t++)
      for (int f = 0; f < n / 2; f++) {
        int r = tc_wg_acc_row(t, f), c = tc_wg_acc_col(t, f);
        REQUIRE(r >= 0 && r < 64 && c >= 0 && c < n);
        seen[r][c]++;
      }
    for (int r = 0; r < 64; r++)
      for (int c = 0; c < n; c++) CHECK_EQ(1, seen[r][c]);
  }
  /* The documented corner cases of m64nNk16's D fragment: thread 0 holds (0,0), (0,1),
   * (8,0), (8,1), then the next 8 columns; warp 1 starts at row 16. */
  CHECK_EQ(8, tc_wg_acc_row(0, 2));
  CHECK_EQ(8, tc_wg_acc_col(0, 4));
  CHECK_EQ(16, tc_wg_acc_row(32, 0));
  CHECK_EQ(6, tc_wg_acc_col(3, 0));
  CHECK_EQ(15 + 48, tc_wg_acc_row(127, 3));
}
