/* Tile-level kernels on the CUDA backend: one thread block per kernel, buffers in
 * shared memory or global scratch, loads read in place, tile_matmul on mma.sync, and
 * the source compiled with NVRTC where the toolkit is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#define CUDA_FIXTURE_FILE "k.tile"
#include "cuda_fixture.h"

static const char matmul_src[] =
    "kernel @mm(%a: hbm<32x64xbf16>, %b: hbm<64x16xbf16>, %c: hbm<32x16xf32>) {\n"
    "  %ab = alloc : vmem<32x64xbf16>\n"
    "  %bb = alloc : vmem<64x16xbf16>\n"
    "  %cb = alloc : vmem<32x16xf32>\n"
    "  %s = semaphore : sem\n"
    "  %z = constant {value = 0.0} : tensor<32x16xf32>\n"
    "  %t1 = dma_start %a[0, 0], %ab[0, 0], %s {shape = [32, 64]} : token\n"
    "  %t2 = dma_start %b[0, 0], %bb[0, 0], %s {shape = [64, 16]} : token\n"
    "  dma_wait %s, %t1\n"
    "  dma_wait %s, %t2\n"
    "  %x = load %ab[0, 0] : tensor<32x64xbf16>\n"
    "  %y = load %bb[0, 0] : tensor<64x16xbf16>\n"
    "  %r = tile_matmul %x, %y, %z : tensor<32x16xf32>\n"
    "  store %r, %cb[0, 0]\n"
    "  %t3 = dma_start %cb[0, 0], %c[0, 0], %s {shape = [32, 16]} : token\n"
    "  dma_wait %s, %t3\n"
    "  return\n}\n";

TEST(cuda_kernel, one_block_with_buffers_bound_by_use) {
  Emitted e;
  emit(matmul_src, "sm_90", &e);
  REQUIRE(e.ok);
  CHECK_EQ(1, e.p.nlaunches);
  const TileCudaLaunch *l = &e.p.launches[0];
  CHECK_EQ(1u, l->grid[0]);
  CHECK_EQ(256u, l->block[0]);
  /* 4 KiB + 2 KiB + 2 KiB of buffers and the 2 KiB result tile, all in shared memory. */
  CHECK_EQ(4096u + 2048u + 2048u + 2048u, l->smem_bytes);
  CHECK_EQ(3, e.p.nbufs);
  CHECK_STREQ("a", e.p.bufs[0].name);
  CHECK_EQ(TILE_BIND_IN, e.p.bufs[0].bind);
  CHECK_EQ(TILE_BIND_OUT, e.p.bufs[2].bind);
  CHECK_EQ(32 * 16 * 4, e.p.bufs[2].bytes);
  CHECK(strstr(e.p.source, "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32") != NULL);
  CHECK(strstr(e.p.source, "read in place") != NULL);
  done(&e);
}

TEST(cuda_kernel, large_buffers_go_to_global_scratch) {
  Emitted e;
  emit("kernel @k(%a: hbm<256x128xf32>, %o: hbm<256x128xf32>) {\n"
       "  %b = alloc : vmem<256x128xf32>\n"
       "  %c = alloc : vmem<256x128xf32>\n"
       "  %s = semaphore : sem\n"
       "  %t = dma_start %a[0, 0], %b[0, 0], %s {shape = [256, 128]} : token\n"
       "  dma_wait %s, %t\n"
       "  %x = load %b[0, 0] : tensor<256x128xf32>\n"
       "  %y = exp %x : tensor<256x128xf32>\n"
       "  store %y, %c[0, 0]\n"
       "  %u = dma_start %c[0, 0], %o[0, 0], %s {shape = [256, 128]} : token\n"
       "  dma_wait %s, %u\n"
       "  return\n}\n", "sm_80", &e);
  REQUIRE(e.ok);
  /* 128 KiB each, past the 96 KiB shared-memory budget: all in the scratch buffer. */
  CHECK_EQ(3, e.p.nbufs);
  CHECK_STREQ("scratch", e.p.bufs[2].name);
  CHECK(e.p.launches[0].smem_bytes <= 96u * 1024u);
  CHECK(strstr(e.p.source, "expf(") != NULL);
  CHECK_EQ(TILE_BIND_IN, e.p.bufs[0].bind);
  CHECK_EQ(0u, e.p.launches[0].smem_bytes);
  done(&e);
}

TEST(cuda_kernel, carried_tiles_update_in_place) {
  Emitted e;
  emit("kernel @k(%a: hbm<64x128xf32>, %o: hbm<8x128xf32>) {\n"
       "  %b = alloc : vmem<8x128xf32>\n"
       "  %s = semaphore : sem\n"
       "  %z = constant {value = 0.0} : tensor<8x128xf32>\n"
       "  %eight = constant {value = 8} : i32\n"
       "  %sum = for %i = 0 to 8 step 1 iter(%acc = %z) : tensor<8x128xf32> {\n"
       "    %row = mul %i, %eight : i32\n"
       "    %t = dma_start %a[%row, 0], %b[0, 0], %s {shape = [8, 128]} : token\n"
       "    dma_wait %s, %t\n"
       "    %x = load %b[0, 0] : tensor<8x128xf32>\n"
       "    %n = add %acc, %x : tensor<8x128xf32>\n"
       "    yield %n\n"
       "  }\n"
       "  store %sum, %b[0, 0]\n"
       "  %w = dma_start %b[0, 0], %o[0, 0], %s {shape = [8, 128]} : token\n"
       "  dma_wait %s, %w\n"
       "  return\n}\n", "sm_90", &e);
  REQUIRE(e.ok);
  /* One buffer and one carried tile; the add writes the carried tile itself. */
  CHECK_EQ(4096u + 4096u, e.p.launches[0].smem_bytes);
  CHECK(strstr(e.p.source, "for (int s") != NULL);
  CHECK(strstr(e.p.source, "* 128 + 0") != NULL); /* the DMA's row from the loop index */
  done(&e);
}

TEST(cuda_kernel, refusals_are_located) {
  Emitted e;
  emit("kernel @k(%a: hbm<8x128xf32>) {\n"
       "  %b = alloc : vmem<8x128xf32>\n"
       "  %x = load %b[0, 0] : tensor<8x128xf32>\n"
       "  %t = transpose %x {perm = [1, 0]} : tensor<128x8xf32>\n"
       "  return\n}\n", "sm_90", &e);
  CHECK(!e.ok);
  CHECK(strstr(e.msgs, "k.tile:4:") != NULL);
  CHECK(strstr(e.msgs, "transpose") != NULL);
  done(&e);
}

TEST(cuda_kernel, nvrtc_compiles_the_kernel) {
  Emitted e;
  emit(matmul_src, "sm_80", &e);
  REQUIRE(e.ok);
  bool have_nvrtc = nvrtc_compiles(&e);
  done(&e);
  if (!have_nvrtc) SKIP("skipped: no NVRTC (libnvrtc.so)");
}
