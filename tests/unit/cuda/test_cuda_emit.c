/* The CUDA emitter: .tile text in, CUDA C and a launch plan out; the source is checked
 * for the kernels each group needs, and compiled with NVRTC where the toolkit is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cuda_fixture.h"

static int find_buffer(const TileCudaProgram *p, const char *name) {
  for (int i = 0; i < p->nbufs; i++)
    if (strcmp(p->bufs[i].name, name) == 0) return i;
  return -1;
}

TEST(cuda, targets) {
  char arch[16];
  CHECK(tile_cuda_target("cuda-sm90", arch, sizeof arch));
  CHECK_STREQ("sm_90", arch);
  CHECK(tile_cuda_target("cuda-sm80", arch, sizeof arch));
  CHECK_STREQ("sm_80", arch);
  CHECK(!tile_cuda_target("tiny", arch, sizeof arch));
  CHECK(!tile_cuda_target("cuda-sm70", arch, sizeof arch));
}

TEST(cuda, softmax_is_one_block_per_row) {
  Emitted e;
  emit("func @f(%x: tensor<64x1000xf32>) -> tensor<64x1000xf32> {\n"
       "  %p = softmax %x {dim = 1} : tensor<64x1000xf32>\n"
       "  return %p\n}\n", "sm_90", &e);
  REQUIRE(e.ok);
  CHECK_EQ(1, e.p.nlaunches);
  CHECK(strstr(e.p.source, "tc_block_reduce(") != NULL);
  CHECK(strstr(e.p.source, "TcMax()") != NULL);
  CHECK(strstr(e.p.source, "expf(") != NULL);
  CHECK_EQ(64, e.p.launches[0].grid[0]);
  CHECK_EQ(256, e.p.launches[0].block[0]);
  int x = find_buffer(&e.p, "x"), r = find_buffer(&e.p, "result");
  REQUIRE(x >= 0 && r >= 0);
  CHECK_EQ(TILE_BIND_IN, e.p.bufs[x].bind);
  CHECK_EQ(TILE_BIND_OUT, e.p.bufs[r].bind);
  CHECK_EQ(64 * 1000 * 4, e.p.bufs[r].bytes);
  CHECK_EQ(2, e.p.launches[0].nargs);
  done(&e);
}

TEST(cuda, matmul_uses_tensor_cores_with_epilogue) {
  Emitted e;
  emit("func @f(%a: tensor<100x72xbf16>, %b: tensor<72x40xbf16>, %bias: tensor<40xf32>)\n"
       "    -> tensor<100x40xbf16> {\n"
       "  %h = matmul %a, %b : tensor<100x40xf32>\n"
       "  %c = broadcast %bias {dims = [1]} : tensor<100x40xf32>\n"
       "  %z = add %h, %c : tensor<100x40xf32>\n"
       "  %g = gelu %z : tensor<100x40xf32>\n"
       "  %y = convert %g : tensor<100x40xbf16>\n"
       "  return %y\n}\n", "sm_90", &e);
  REQUIRE(e.ok);
  CHECK_EQ(1, e.p.nlaunches);
  CHECK(strstr(e.p.source, "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32") != NULL);
  CHECK(strstr(e.p.source, "cp.async.cg.shared.global") != NULL);
  CHECK(strstr(e.p.source, "tanhf(") != NULL);
  CHECK(strstr(e.p.source, "row < 100 && col < 40") != NULL);
  CHECK_EQ(1, e.p.launches[0].grid[0]);
  CHECK_EQ(2, e.p.launches[0].grid[1]);
  CHECK_EQ(4, e.p.launches[0].nargs);
  done(&e);
}

TEST(cuda, ragged_k_uses_checked_loads) {
  Emitted e;
  emit("func @f(%a: tensor<10x13xbf16>, %b: tensor<13x7xbf16>) -> tensor<10x7xf32> {\n"
       "  %c = matmul %a, %b : tensor<10x7xf32>\n  return %c\n}\n", "sm_80", &e);
  REQUIRE(e.ok);
  CHECK(strstr(e.p.source, "cp.async") == NULL || strstr(e.p.source, "tc_cp16(&") == NULL);
  CHECK(strstr(e.p.source, "k0 + kk < 13") != NULL);
  done(&e);
}

TEST(cuda, f32_matmul_is_simt) {
  Emitted e;
  emit("func @f(%a: tensor<3x5xf32>, %b: tensor<5x7xf32>) -> tensor<3x7xf32> {\n"
       "  %c = matmul %a, %b : tensor<3x7xf32>\n  return %c\n}\n", "sm_90", &e);
  REQUIRE(e.ok);
  CHECK(strstr(e.p.source, "mma.sync.aligned.m16n8k16.row") == NULL);
  CHECK(strstr(e.p.source, "SIMT") != NULL);
  done(&e);
}

TEST(cuda, attention_gqa_causal) {
  Emitted e;
  emit("func @f(%q: tensor<1x8x64x32xbf16>, %k: tensor<1x2x64x32xbf16>, "
       "%v: tensor<1x2x64x32xbf16>) -> tensor<1x8x64x32xbf16> {\n"
       "  %o = attention %q, %k, %v {scale = 0.125, causal = 1} : tensor<1x8x64x32xbf16>\n"
       "  return %o\n}\n", "sm_90", &e);
  REQUIRE(e.ok);
  CHECK_EQ(1, e.p.nlaunches);
  CHECK(strstr(e.p.source, "const bool causal = true") != NULL);
  CHECK(strstr(e.p.source, "G = 4") != NULL);
  CHECK_EQ(2, e.p.launches[0].grid[1]);
  CHECK(e.p.launches[0].smem_bytes > 0);
  done(&e);
}

TEST(cuda, topk_softmax_add_argmax_are_four_kernels) {
  Emitted e;
  emit("func @f(%l: tensor<4x300xf32>, %g: tensor<4x5xf32>)\n"
       "    -> (tensor<4x5xf32>, tensor<4x5xi32>, tensor<4xi32>) {\n"
       "  %v, %i = topk %l {k = 5} : tensor<4x5xf32>, tensor<4x5xi32>\n"
       "  %p = softmax %v {dim = 1} : tensor<4x5xf32>\n"
       "  %n = add %v, %g : tensor<4x5xf32>\n"
       "  %a = argmax %n {dim = 1} : tensor<4xi32>\n"
       "  return %p, %i, %a\n}\n", "sm_90", &e);
  REQUIRE(e.ok);
  /* topk, softmax (rows), the add (read by argmax and nothing else), argmax */
  CHECK_EQ(4, e.p.nlaunches);
  CHECK(strstr(e.p.source, "tc_block_argmax") != NULL);
  CHECK(find_buffer(&e.p, "result") >= 0);
  CHECK(find_buffer(&e.p, "result1") >= 0);
  CHECK(find_buffer(&e.p, "result2") >= 0);
  done(&e);
}

TEST(cuda, layout_and_gather_are_flat) {
  Emitted e;
  emit("func @f(%t: tensor<10x4xbf16>, %i: tensor<6xi32>, %x: tensor<3x4xf32>)\n"
       "    -> (tensor<6x4xbf16>, tensor<4x3xf32>, tensor<3x4xf32>) {\n"
       "  %r = gather %t, %i {axis = 0} : tensor<6x4xbf16>\n"
       "  %y = transpose %x {perm = [1, 0]} : tensor<4x3xf32>\n"
       "  return %r, %y, %x\n}\n", "sm_90", &e);
  REQUIRE(e.ok);
  /* gather, transpose, and the copy of the returned parameter */
  CHECK_EQ(3, e.p.nlaunches);
  CHECK(strstr(e.p.source, "tc_clampi(") != NULL);
  CHECK(strstr(e.p.source, "copy_") != NULL);
  done(&e);
}

TEST(cuda, bad_program_gets_a_located_error) {
  Emitted e;
  emit("func @f(%x: tensor<4xf8E4M3FN>) -> tensor<4xf8E4M3FN> {\n"
       "  %y = add %x, %x : tensor<4xf8E4M3FN>\n"
       "  return %y\n}\n", "sm_90", &e);
  CHECK(!e.ok);
  CHECK(strstr(e.msgs, "t.tile:1:") != NULL || strstr(e.msgs, "t.tile:2:") != NULL);
  CHECK(strstr(e.msgs, "f8E4M3FN") != NULL || strstr(e.msgs, "parameter") != NULL);
  done(&e);
}

TEST(cuda, nvrtc_compiles_the_source) {
  Emitted e;
  emit("func @f(%x: tensor<8x128xbf16>, %g: tensor<128xbf16>) -> tensor<8x128xbf16> {\n"
       "  %y = rmsnorm %x, %g {eps = 1e-05} : tensor<8x128xbf16>\n"
       "  return %y\n}\n", "sm_90", &e);
  REQUIRE(e.ok);
  bool have_nvrtc = nvrtc_compiles(&e);
  done(&e);
  if (!have_nvrtc) SKIP("skipped: no NVRTC (libnvrtc.so)");
}
