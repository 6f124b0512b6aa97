/* The verifier and the type rules: programs that must pass, and for each kind of
 * violation the message it must produce. Programs are written as text and parsed;
 * malformed IR the parser cannot express (missing values, wrong counts) is made
 * by hand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "tile/builder.h"
#include "tile/ops.h"
#include "tile/text.h"
#include "tile/verify.h"

/* ---- helpers ---- */

/* Parses src (which must parse) and verifies it; returns every diagnostic the
 * verifier printed (malloc'ed) and its error count in *nerrors. */
static char *verify_src(const char *src, int *nerrors, const char *file, int line) {
  char *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&out, &len);
  TileDiag d;
  tile_diag_init(&d, f, "t.tile", src, strlen(src));
  TileModule *m = tile_parse(src, strlen(src), "t.tile", &d);
  fflush(f);
  if (!m) {
    fclose(f);
    char msg[2048];
    snprintf(msg, sizeof msg, "the test program does not parse:\n%s", out);
    check_true(false, msg, file, line);
    free(out);
    *nerrors = -1;
    return NULL;
  }
  bool ok = tile_verify_module(m, &d);
  fclose(f);
  check_true(ok == (d.nerrors == 0), "tile_verify_module's result agrees with its error count",
             file, line);
  *nerrors = d.nerrors;
  tile_module_free(m);
  return out;
}

static void expect_ok(const char *src, const char *file, int line) {
  int n;
  char *out = verify_src(src, &n, file, line);
  if (out && n != 0) {
    char msg[4096];
    snprintf(msg, sizeof msg, "expected no errors, got:\n%s", out);
    check_true(false, msg, file, line);
  }
  free(out);
}

/* The verifier reports an error whose text contains want. */
static void expect_error(const char *src, const char *want, const char *file, int line) {
  int n;
  char *out = verify_src(src, &n, file, line);
  if (!out) return;
  if (n == 0 || !strstr(out, want)) {
    char msg[4096];
    snprintf(msg, sizeof msg, "expected an error containing \"%s\", got %d errors:\n%s", want, n,
             out);
    check_true(false, msg, file, line);
  }
  free(out);
}

#define OK(src) expect_ok((src), __FILE__, __LINE__)
#define ERR(src, want) expect_error((src), (want), __FILE__, __LINE__)

/* A func around one op's text: %a, %b are tensor<8x128xf32>, %s an i32. */
#define F1(body)                                                                                 \
  "func @f(%a: tensor<8x128xf32>, %b: tensor<8x128xf32>, %s: i32) -> tensor<8x128xf32> {\n" body \
  "\n  return %a\n}\n"

#define TP "mesh @tp = torus<4x2>(x, y)\n"

/* ---- programs that verify ---- */

TEST(verify, mlp_example) {
  OK(TP
     "func @mlp(%x: tensor<8x4096xbf16>,\n"
     "          %w1: tensor<4096x16384xbf16> {shard = [-, x]},\n"
     "          %w2: tensor<16384x4096xbf16> {shard = [x, -]}) -> tensor<8x4096xbf16>\n"
     "    attributes {mesh = @tp} {\n"
     "  %h = matmul %x, %w1 : tensor<8x16384xbf16>\n"
     "  %g = gelu %h : tensor<8x16384xbf16>\n"
     "  %p = matmul %g, %w2 : tensor<8x4096xf32>\n"
     "  %y = all_reduce %p {kind = add, axes = [x]} : tensor<8x4096xf32>\n"
     "  %r = convert %y : tensor<8x4096xbf16>\n"
     "  return %r\n"
     "}\n");
}

TEST(verify, tensor_ops) {
  OK("func @f(%a: tensor<2x8x16xf32>, %w: tensor<16x32xf32>, %i: tensor<5xi32>,\n"
     "        %q: tensor<1x8x4x16xbf16>, %k: tensor<1x2x6x16xbf16>) -> tensor<2x8x32xf32> {\n"
     "  %m = matmul %a, %w : tensor<2x8x32xf32>\n"
     "  %bw = broadcast %w {dims = [1, 2]} : tensor<2x16x32xf32>\n"
     "  %bm = matmul %a, %bw : tensor<2x8x32xf32>\n"
     "  %dg = dot_general %a, %bw {lhs_batch = [0], rhs_batch = [0], lhs_contract = [2],\n"
     "        rhs_contract = [1]} : tensor<2x8x32xf32>\n"
     "  %r = reduce %m {kind = max, dims = [0, 2]} : tensor<8xf32>\n"
     "  %am = argmax %m {dim = 2} : tensor<2x8xi32>\n"
     "  %t = transpose %m {perm = [2, 0, 1]} : tensor<32x2x8xf32>\n"
     "  %rs = reshape %t : tensor<64x8xf32>\n"
     "  %sl = slice %rs {start = [1, 0], limit = [64, 8], stride = [2, 3]} : tensor<32x3xf32>\n"
     "  %cc = concatenate %rs, %rs, %rs {dim = 0} : tensor<192x8xf32>\n"
     "  %g = gather %w, %i {axis = 0} : tensor<5x32xf32>\n"
     "  %tv, %ti = topk %m {k = 4} : tensor<2x8x4xf32>, tensor<2x8x4xi32>\n"
     "  %io = iota {dim = 1} : tensor<2x8xi32>\n"
     "  %c = constant {value = 1.5} : tensor<2x8xf32>\n"
     "  %ca = constant {value = [1, 2, 3, 4]} : tensor<2x2xi8>\n"
     "  %cmp = compare %r, %r {dir = lt} : tensor<8xi1>\n"
     "  %sel = select %cmp, %r, %r : tensor<8xf32>\n"
     "  %n = not %cmp : tensor<8xi1>\n"
     "  %sm = softmax %m {dim = 2} : tensor<2x8x32xf32>\n"
     "  %gam = slice %w {start = [0, 0], limit = [1, 32]} : tensor<1x32xf32>\n"
     "  %g1 = reshape %gam : tensor<32xf32>\n"
     "  %ln = layernorm %m, %g1, %g1 {eps = 1e-05} : tensor<2x8x32xf32>\n"
     "  %rn = rmsnorm %m, %g1 {eps = 1e-06} : tensor<2x8x32xf32>\n"
     "  %cs = constant {value = 0.5} : tensor<4x8xbf16>\n"
     "  %ro = rope %q, %cs, %cs : tensor<1x8x4x16xbf16>\n"
     "  %at = attention %q, %k, %k {scale = 0.25, causal = 1} : tensor<1x8x4x16xbf16>\n"
     "  %cv = convert %at : tensor<1x8x4x16xf32>\n"
     "  return %ln\n"
     "}\n");
}

TEST(verify, scalars_loops_and_branches) {
  OK("func @f(%x: tensor<8x128xf32>, %p: i1) -> tensor<8x128xf32> {\n"
     "  %c1 = constant {value = 1} : i32\n"
     "  %r, %n = for %i = 0 to 16 step 2 iter(%acc = %x, %cnt = %c1) : tensor<8x128xf32>, i32 {\n"
     "    %j = add %i, %cnt : i32\n"
     "    %e = exp %acc : tensor<8x128xf32>\n"
     "    yield %e, %j\n"
     "  }\n"
     "  %y = if %p : tensor<8x128xf32> {\n"
     "    yield %r\n"
     "  } else {\n"
     "    %z = neg %r : tensor<8x128xf32>\n"
     "    yield %z\n"
     "  }\n"
     "  if %p {\n"
     "    %w = abs %y : tensor<8x128xf32>\n"
     "  }\n"
     "  %k = call @g(%y) : tensor<8x128xf32>\n"
     "  return %k\n"
     "}\n"
     "func @g(%a: tensor<8x128xf32>) -> tensor<8x128xf32> {\n"
     "  return %a\n"
     "}\n");
}

#define KERNEL_HEAD                                                    \
  "mesh @m = torus<4>(x)\n"                                            \
  "kernel @scale(%in: hbm<1024x128xf32>, %out: hbm<1024x128xf32>) {\n" \
  "  %buf = alloc : vmem<2x8x128xf32>\n"                               \
  "  %sem = semaphore : sem\n"

TEST(verify, kernel) {
  OK(KERNEL_HEAD
     "  %w = alloc : vmem<128x128xbf16>\n"
     "  %acc = alloc : vmem<8x128xf32>\n"
     "  %s = alloc : smem<16xi32>\n"
     "  for %i = 0 to 128 step 1 {\n"
     "    %c8 = constant {value = 8} : i32\n"
     "    %row = mul %i, %c8 : i32\n"
     "    %k = dma_start %in[%row, 0], %buf[1, 0, 0], %sem {shape = [8, 128]} : token\n"
     "    dma_wait %sem, %k\n"
     "    %t = load %buf[1, 0, 0] : tensor<8x128xf32>\n"
     "    %half = load %buf[0, 4, 0] : tensor<4x128xf32>\n"
     "    %one = load %s[%i] : i32\n"
     "    %tb = convert %t : tensor<8x128xbf16>\n"
     "    %wt = load %w[0, 0] : tensor<128x128xbf16>\n"
     "    %a0 = load %acc[0, 0] : tensor<8x128xf32>\n"
     "    %mm = tile_matmul %tb, %wt, %a0 : tensor<8x128xf32>\n"
     "    store %mm, %buf[0, 0, 0]\n"
     "    %k2 = dma_start %buf[0, 0, 0], %out[%row, 0], %sem {shape = [8, 128], peer = (x, 1)} : "
     "token\n"
     "    dma_wait %sem\n"
     "    sem_signal %sem {count = 2, peer = (x, -1)}\n"
     "    sem_wait %sem {count = 2}\n"
     "  }\n"
     "  return\n"
     "}\n");
}

TEST(verify, meshes) {
  OK("mesh @a = torus<4x4>(dp = 2 on [0], tp = 2 on [0], y = 4 on [1])\n"
     "mesh @b = torus<4x4x4>(x = 16 on [0, 1], z = 4 on [2])\n"
     "func @f(%w: tensor<16x8xf32> {shard = [(dp, tp), y]}) -> tensor<16x8xf32>\n"
     "    attributes {mesh = @a} {\n"
     "  %g = all_gather %w {dim = 0, axes = [dp, tp]} : tensor<64x8xf32>\n"
     "  %s = reduce_scatter %g {kind = add, dim = 0, axes = [y]} : tensor<16x8xf32>\n"
     "  %t = all_to_all %s {split_dim = 0, concat_dim = 1, axes = [z], mesh = @b} : "
     "tensor<4x32xf32>\n"
     "  %p = collective_permute %s {axis = y, shift = 1} : tensor<16x8xf32>\n"
     "  %q = add %p, %s {shard = [dp, -]} : tensor<16x8xf32>\n"
     "  return %q\n"
     "}\n");
}

/* ---- operands ---- */

TEST(verify, operand_kinds) {
  ERR(F1("  %r = add %a, %b, %a : tensor<8x128xf32>"), "'add' takes 2 operands, got 3");
  ERR(F1("  %r = exp %a, %b : tensor<8x128xf32>"), "'exp' takes 1 operand, got 2");
  ERR(F1("  %r = concatenate {dim = 0} : tensor<8x128xf32>"),
      "'concatenate' takes 1 or more operands, got 0");
  ERR("kernel @k(%b: vmem<8x128xf32>) {\n  %s = semaphore : sem\n  dma_wait %s, %s, %s\n}\n",
      "'dma_wait' takes 1 to 2 operands, got 3");
  ERR("kernel @k(%b: vmem<8x128xf32>, %w: tensor<128x8xf32>) {\n"
      "  %r = matmul %w, %b : tensor<128x128xf32>\n}\n",
      "'matmul' operand 2 must be a tensor, got vmem<8x128xf32>");
  ERR(F1("  %r = add %s, %a : tensor<8x128xf32>"), "operands must have the same type");
  ERR("kernel @k(%b: vmem<8x128xf32>) {\n  %r = exp %b : vmem<8x128xf32>\n}\n",
      "'exp' operand 1 must be a tensor or scalar, got vmem<8x128xf32>");
  ERR("kernel @k(%b: vmem<8x128xf32>) {\n  dma_wait %b\n}\n",
      "'dma_wait' operand 1 must be a semaphore, got vmem<8x128xf32>");
  ERR("kernel @k(%b: vmem<8x128xf32>) {\n  %s = semaphore : sem\n  dma_wait %s, %s\n}\n",
      "'dma_wait' operand 2 must be a DMA token, got sem");
  ERR("func @f(%a: tensor<i1>) -> tensor<i1> {\n  if %a {\n  }\n  return %a\n}\n",
      "'if' operand 1 must be a scalar, got tensor<i1>");
}

TEST(verify, buffer_access) {
  ERR("kernel @k(%b: vmem<8x128xf32>) {\n  %t = load %b : tensor<8x128xf32>\n}\n",
      "'load' operand 1 must be a buffer access with one index per dim");
  ERR("kernel @k(%b: vmem<2x8x128xf32>) {\n  %t = load %b[0, 0] : tensor<8x128xf32>\n}\n",
      "'load' operand 1 has 2 indices for vmem<2x8x128xf32> of rank 3");
  ERR("kernel @k(%b: vmem<2x8x128xf32>, %x: f32) {\n  %t = load %b[%x, 0, 0] : "
      "tensor<8x128xf32>\n}\n",
      "'load' index 1 of operand 1 must be an integer scalar, got f32");
  ERR("kernel @k(%b: vmem<2x8x128xf32>) {\n  %t = load %b[2, 0, 0] : tensor<8x128xf32>\n}\n",
      "'load' index 1 of operand 1 is 2, outside [0, 2) of vmem<2x8x128xf32>");
  ERR("kernel @k(%b: vmem<8x128xf32>, %t: tensor<8x128xf32>) {\n"
      "  %e = exp %t[0, 0] : tensor<8x128xf32>\n}\n",
      "'exp' operand 1 takes no index list");
}

/* ---- attributes ---- */

TEST(verify, attributes) {
  ERR(F1("  %r = reduce %a {dims = [0]} : tensor<128xf32>"),
      "'reduce' needs attribute 'kind' (an identifier)");
  ERR(F1("  %r = reduce %a {kind = add, dims = [0], foo = 1} : tensor<128xf32>"),
      "unknown attribute 'foo' on 'reduce'");
  ERR(F1("  %r = reduce %a {kind = add, dims = 0} : tensor<128xf32>"),
      "attribute 'dims' of 'reduce' must be an array of integers, got an integer");
  ERR(F1("  %r = reduce %a {kind = \"add\", dims = [0]} : tensor<128xf32>"),
      "attribute 'kind' of 'reduce' must be an identifier, got a string");
  ERR(F1("  %r = reduce %a {kind = sum, dims = [0]} : tensor<128xf32>"),
      "'reduce' kind 'sum' is not one of add, mul, max, min");
  ERR(F1("  %r = layernorm %a, %a, %a {eps = 1} : tensor<8x128xf32>"),
      "attribute 'eps' of 'layernorm' must be a float, got an integer");
  ERR(F1("  %r = all_reduce %a {kind = add, axes = [1]} : tensor<8x128xf32>"),
      "attribute 'axes' of 'all_reduce' must be an array of mesh axis names, got an array of "
      "integers");
  ERR(F1("  %r = transpose %a {perm = [1, 0.5]} : tensor<8x128xf32>"),
      "attribute 'perm' of 'transpose' must be an array of integers, got an array mixing integers "
      "and floats");
  ERR(F1("  %r = add %a, %b {shard = 3} : tensor<8x128xf32>"),
      "attribute 'shard' of 'add' must be a sharding like [-, x]");
  ERR(F1("  %r = compare %a, %b {dir = bigger} : tensor<8x128xi1>"),
      "'compare' dir 'bigger' is not one of eq, ne, lt, le, gt, ge");
}

/* ---- type rules ---- */

TEST(verify, result_mismatch) {
  ERR(F1("  %r = add %a, %b : tensor<8x128xbf16>"),
      "'add' result type tensor<8x128xbf16> does not match the inferred tensor<8x128xf32>");
  ERR(F1("  %r = exp %s : i32"), "'exp' needs a float element type, got i32");
  ERR(F1("  %r = and %a, %b : tensor<8x128xf32>"), "'and' needs an integer (or i1) element type");
  ERR(F1("  %r = compare %a, %b {dir = eq} : tensor<8x128xf32>"),
      "result type tensor<8x128xf32> does not match the inferred tensor<8x128xi1>");
  ERR(F1("  %c = compare %a, %b {dir = eq} : tensor<8x128xi1>\n"
         "  %r = select %c, %a, %s : tensor<8x128xf32>"),
      "'select' operands 2 and 3 must have the same type");
  ERR(F1("  %r = select %a, %a, %b : tensor<8x128xf32>"),
      "'select' condition must be i1 shaped like the operands");
}

TEST(verify, matmul_and_dot_general) {
  const char *head =
      "func @f(%a: tensor<8x64xbf16>, %b: tensor<64x32xbf16>, %c: tensor<32x64xbf16>,\n"
      "        %d: tensor<2x8x64xbf16>, %e: tensor<3x64x32xbf16>) -> tensor<8x64xbf16> {\n";
  char src[1024];
#define MM(line, want)                                              \
  snprintf(src, sizeof src, "%s%s\n  return %%a\n}\n", head, line); \
  ERR(src, want)
  MM("  %r = matmul %a, %c : tensor<8x64xbf16>",
     "'matmul' contracting dims differ: tensor<8x64xbf16> has K = 64 but tensor<32x64xbf16> has K "
     "= 32");
  MM("  %r = matmul %a, %b : tensor<8x16xf32>",
     "'matmul' result type tensor<8x16xf32> does not match the inferred tensor<8x32xf32>");
  MM("  %r = matmul %a, %b : tensor<8x32xi32>", "must be a float type like its operands'");
  MM("  %r = matmul %d, %e : tensor<2x8x32xbf16>", "'matmul' batch dim 0 differs");
  MM("  %r = matmul %a, %e : tensor<8x32xbf16>", "a batched rhs must have the lhs's rank 2");
  MM("  %r = dot_general %a, %b {lhs_batch = [], rhs_batch = [], lhs_contract = [1],\n"
     "    rhs_contract = [1]} : tensor<8x64xbf16>",
     "contracting pair 1: lhs dim 1 (size 64) and rhs dim 1 (size 32) differ");
  MM("  %r = dot_general %a, %b {lhs_batch = [], rhs_batch = [], lhs_contract = [1, 1],\n"
     "    rhs_contract = [0, 1]} : tensor<8x64xbf16>",
     "dim 1 of tensor<8x64xbf16> is used twice (in lhs_contract)");
  MM("  %r = dot_general %a, %b {lhs_batch = [0], rhs_batch = [], lhs_contract = [1],\n"
     "    rhs_contract = [0]} : tensor<8x64xbf16>",
     "lhs_batch and rhs_batch have different lengths (1 and 0)");
  OK("func @f(%a: tensor<8x64xbf16>, %b: tensor<64x32xbf16>) -> tensor<32x8xf32> {\n"
     "  %r = dot_general %b, %a {lhs_batch = [], rhs_batch = [], lhs_contract = [0],\n"
     "    rhs_contract = [1]} : tensor<32x8xf32>\n"
     "  return %r\n}\n");
#undef MM
}

TEST(verify, structure_rules) {
  ERR(F1("  %r = reduce %a {kind = add, dims = [2]} : tensor<8xf32>"),
      "'reduce' dim 2 is out of range for tensor<8x128xf32> (rank 2)");
  ERR(F1("  %r = reduce %a {kind = add, dims = [1, 1]} : tensor<8xf32>"),
      "'reduce' dim 1 is listed twice in dims");
  ERR(F1("  %r = reduce %a {kind = add, dims = [1]} : tensor<128xf32>"),
      "does not match the inferred tensor<8xf32>");
  ERR(F1("  %r = transpose %a {perm = [0, 0]} : tensor<8x128xf32>"),
      "'transpose' perm is not a permutation: 0 appears twice");
  ERR(F1("  %r = transpose %a {perm = [1, 0]} : tensor<8x128xf32>"),
      "does not match the inferred tensor<128x8xf32>");
  ERR(F1("  %r = reshape %a : tensor<8x64xf32>"),
      "'reshape' result tensor<8x64xf32> must have as many elements as the operand");
  ERR(F1("  %r = broadcast %a {dims = [1, 0]} : tensor<128x8xf32>"),
      "'broadcast' dims must be strictly increasing");
  ERR(F1("  %r = broadcast %a {dims = [0, 2]} : tensor<8x4x4xf32>"),
      "'broadcast' operand dim 1 (size 128) cannot become result dim 2 (size 4)");
  ERR(F1("  %r = broadcast %a {dims = [0]} : tensor<8x128xf32>"),
      "'broadcast' dims has 1 entry but the operand tensor<8x128xf32> has rank 2");
  ERR(F1("  %r = slice %a {start = [0, 0], limit = [9, 128]} : tensor<8x128xf32>"),
      "'slice' dim 0: need 0 <= start <= limit <= 8, got start 0, limit 9");
  ERR(F1("  %r = slice %a {start = [0, 0], limit = [8, 128], stride = [1, 0]} : tensor<8x128xf32>"),
      "'slice' dim 1: stride must be 1 or more, got 0");
  OK(F1("  %r = slice %a {start = [0, 1], limit = [8, 128], stride = [1, 2]} : tensor<8x64xf32>"));
  OK(
      F1("  %r = slice %a {start = [0, 0], limit = [8, 128], stride = [1, 9223372036854775807]} "
         ": tensor<8x1xf32>"));
  ERR(F1("  %r = slice %a {start = [0, 1], limit = [8, 128], stride = [1, 2]} : tensor<8x63xf32>"),
      "does not match the inferred tensor<8x64xf32>"); /* ceil(127 / 2) */
  ERR(F1("  %r = concatenate %a, %s {dim = 0} : tensor<16x128xf32>"),
      "'concatenate' operand 2 must be a tensor, got i32");
  ERR(F1("  %t = transpose %a {perm = [1, 0]} : tensor<128x8xf32>\n"
         "  %r = concatenate %a, %t {dim = 0} : tensor<136x128xf32>"),
      "'concatenate' operand 2 tensor<128x8xf32> differs from tensor<8x128xf32> in dim 1");
  ERR(F1("  %r = gather %a, %b {axis = 0} : tensor<8x128x128xf32>"),
      "'gather' indices must have an integer element type");
  ERR(F1("  %v, %i = topk %a {k = 129} : tensor<8x129xf32>, tensor<8x129xi32>"),
      "'topk' k = 129 must lie in [1, 128], the last dim of tensor<8x128xf32>");
  ERR(F1("  %v, %i = topk %a {k = 4} : tensor<8x4xf32>, tensor<8x4xf32>"),
      "'topk' result 2 type tensor<8x4xf32> does not match the inferred tensor<8x4xi32>");
  ERR(F1("  %r = convert %a : tensor<8x64xbf16>"),
      "'convert' result tensor<8x64xbf16> must have the operand's shape (tensor<8x128xf32>)");
  ERR(F1("  %r = iota {dim = 2} : tensor<8x128xi32>"),
      "'iota' dim 2 is out of range for tensor<8x128xi32> (rank 2)");
  ERR(F1("  %r = constant {value = [1, 2, 3]} : tensor<2x2xf32>"),
      "'constant' value has 3 elements but tensor<2x2xf32> has 4");
  ERR(F1("  %r = constant {value = 1.5} : i32"),
      "'constant' value is the float 1.5, but i32 takes integers");
  ERR(F1("  %r = constant {value = 300} : i8"), "'constant' value 300 does not fit in i8");
  ERR(F1("  %r = constant {value = x} : i32"), "'constant' value must be a number");
  ERR(F1("  %r = rmsnorm %a, %b {eps = 1e-05} : tensor<8x128xf32>"),
      "'rmsnorm' gamma must be tensor<128xf32> (the last dim of tensor<8x128xf32>)");
  ERR(F1("  %r = softmax %a {dim = 3} : tensor<8x128xf32>"), "'softmax' dim 3 is out of range");
}

TEST(verify, composite_rules) {
  ERR("func @f(%q: tensor<1x6x4x16xf32>, %k: tensor<1x4x4x16xf32>) -> tensor<1x6x4x16xf32> {\n"
      "  %r = attention %q, %k, %k {scale = 0.25} : tensor<1x6x4x16xf32>\n"
      "  return %r\n}\n",
      "'attention' q's 6 heads must be a multiple of k's 4 heads");
  ERR("func @f(%q: tensor<1x4x4x16xf32>, %k: tensor<1x4x4x8xf32>) -> tensor<1x4x4x16xf32> {\n"
      "  %r = attention %q, %k, %k {scale = 0.25} : tensor<1x4x4x16xf32>\n"
      "  return %r\n}\n",
      "'attention' k and v must be [B, Hkv, Sk, D] with q's B, D and element type");
  ERR("func @f(%x: tensor<4x16xf32>, %c: tensor<4x16xf32>) -> tensor<4x16xf32> {\n"
      "  %r = rope %x, %c, %c : tensor<4x16xf32>\n"
      "  return %r\n}\n",
      "'rope' cos and sin must be tensor<4x8xf32>");
  ERR(F1("  %g = reshape %a : tensor<1024xf32>\n"
         "  %r = layernorm %a, %g, %g {eps = 0.0} : tensor<8x128xf32>"),
      "'layernorm' gamma must be tensor<128xf32>");
}

/* ---- dominance ---- */

TEST(verify, dominance) {
  ERR(F1("  %r = add %q, %a : tensor<8x128xf32>\n"
         "  %q = exp %a : tensor<8x128xf32>"),
      "value '%q' is used before it is defined");
  ERR("func @f(%x: tensor<8xf32>) -> tensor<8xf32> {\n"
      "  for %i = 0 to 4 step 1 {\n"
      "    %e = exp %x : tensor<8xf32>\n"
      "  }\n"
      "  return %e\n"
      "}\n",
      "value '%e' defined inside a region is used outside it");
  ERR("func @f(%x: tensor<8xf32>, %p: i1) -> tensor<8xf32> {\n"
      "  if %p {\n"
      "    %e = exp %x : tensor<8xf32>\n"
      "  } else {\n"
      "    %n = neg %e : tensor<8xf32>\n"
      "  }\n"
      "  return %x\n"
      "}\n",
      "value '%e' defined inside a region is used outside it");
  ERR("func @f(%x: tensor<8xf32>) -> tensor<8xf32> {\n"
      "  %y = for %i = 0 to 4 step 1 iter(%a = %z) : tensor<8xf32> {\n"
      "    yield %a\n"
      "  }\n"
      "  %z = exp %x : tensor<8xf32>\n"
      "  return %y\n"
      "}\n",
      "value '%z' is used before it is defined");
  ERR("kernel @k(%b: smem<16xi32>) {\n"
      "  %t = load %b[%i] : i32\n"
      "  %i = constant {value = 0} : i32\n"
      "}\n",
      "value '%i' is used before it is defined");
}

/* ---- memory spaces ---- */

TEST(verify, memory_spaces) {
  ERR("kernel @k(%h: hbm<8x128xf32>) {\n  %t = load %h[0, 0] : tensor<8x128xf32>\n}\n",
      "'load' works only on vmem or smem buffers, got hbm<8x128xf32>");
  ERR("kernel @k(%h: hbm<8x128xf32>, %t: tensor<8x128xf32>) {\n  store %t, %h[0, 0]\n}\n",
      "'store' works only on vmem or smem buffers, got hbm<8x128xf32>");
  ERR("kernel @k() {\n  %b = alloc : hbm<8x128xf32>\n}\n",
      "'alloc' makes only vmem or smem buffers, got hbm<8x128xf32>");
  ERR("kernel @k(%b: vmem<2x8x128xf32>) {\n  %t = load %b[0, 4, 0] : tensor<8x128xf32>\n}\n",
      "'load' tile tensor<8x128xf32> at index 4 overruns dim 1 (size 8) of operand 1 "
      "vmem<2x8x128xf32>");
  ERR("kernel @k(%b: vmem<2x8x128xf32>) {\n  %t = load %b[0, 0, 0] : tensor<2x8x128x1xf32>\n}\n",
      "'load' tile tensor<2x8x128x1xf32> has rank 4, more than the rank of operand 1");
  ERR("kernel @k(%b: vmem<8x128xf32>) {\n  %t = load %b[0, 0] : tensor<8x128xbf16>\n}\n",
      "'load' tile tensor<8x128xbf16> must have the element type of operand 1 vmem<8x128xf32>");
  ERR("kernel @k(%b: vmem<8x128xf32>, %i: i32) {\n  %t = load %b[%i, 0] : tensor<16x128xf32>\n}\n",
      "'load' tile tensor<16x128xf32> does not fit in dim 0 (size 8)");
  ERR("kernel @k(%h: hbm<64x128xf32>, %b: vmem<8x128xbf16>) {\n"
      "  %s = semaphore : sem\n"
      "  %t = dma_start %h[0, 0], %b[0, 0], %s {shape = [8, 128]} : token\n}\n",
      "'dma_start' source hbm<64x128xf32> and destination vmem<8x128xbf16> must have one element "
      "type");
  ERR("kernel @k(%h: hbm<64x128xf32>, %b: vmem<8x128xf32>) {\n"
      "  %s = semaphore : sem\n"
      "  %t = dma_start %h[60, 0], %b[0, 0], %s {shape = [8, 128]} : token\n}\n",
      "'dma_start' block 8x128 at index 60 overruns dim 0 (size 64) of operand 1");
  ERR("kernel @k(%h: hbm<64x128xf32>, %b: vmem<8x128xf32>) {\n"
      "  %s = semaphore : sem\n"
      "  %t = dma_start %h[0, 0], %b[0, 0], %s {shape = [1, 8, 128]} : token\n}\n",
      "'dma_start' block 1x8x128 has rank 3, more than the rank of operand 1");
  ERR("mesh @m = torus<4>(x)\n"
      "kernel @k(%h: hbm<64x128xf32>, %b: vmem<8x128xf32>) {\n"
      "  %s = semaphore : sem\n"
      "  %t = dma_start %h[0, 0], %b[0, 0], %s {shape = [8, 128], peer = (y, 1)} : token\n}\n",
      "'dma_start' peer axis 'y' is not an axis of mesh @m");
  ERR("mesh @m = torus<4>(x)\n"
      "kernel @k(%h: hbm<64x128xf32>, %b: vmem<8x128xf32>) {\n"
      "  %s = semaphore : sem\n"
      "  %t = dma_start %h[0, 0], %b[0, 0], %s {shape = [8, 128], peer = [x, 1]} : token\n}\n",
      "'dma_start' peer must be a tuple (axis, offset)");
  ERR("kernel @k() {\n  %s = semaphore : sem\n  sem_wait %s {count = 0}\n}\n",
      "'sem_wait' count must be 1 or more, got 0");
  ERR("func @f(%a: tensor<8x64xbf16>, %b: tensor<64x16xbf16>, %c: tensor<8x16xbf16>) -> "
      "tensor<8x16xbf16> {\n"
      "  %r = tile_matmul %a, %b, %c : tensor<8x16xf32>\n  return %c\n}\n",
      "'tile_matmul' accumulator must be tensor<8x16xf32>, got tensor<8x16xbf16>");
}

/* ---- shardings and meshes ---- */

TEST(verify, shardings) {
  ERR(TP "func @f(%w: tensor<8x16xf32> {shard = [-, z]}) -> tensor<8x16xf32> {\n  return %w\n}\n",
      "sharding of parameter '%w' of @f names axis 'z', which mesh @tp does not have");
  ERR(TP "func @f(%w: tensor<8x16xf32> {shard = [x, x]}) -> tensor<8x16xf32> {\n  return %w\n}\n",
      "sharding of parameter '%w' of @f uses axis 'x' twice");
  ERR(TP
      "func @f(%w: tensor<8x16xf32> {shard = [(x, y), x]}) -> tensor<8x16xf32> {\n"
      "  return %w\n}\n",
      "uses axis 'x' twice");
  ERR(TP "func @f(%w: tensor<6x16xf32> {shard = [x, -]}) -> tensor<6x16xf32> {\n  return %w\n}\n",
      "sharding of parameter '%w' of @f: dim 0 (size 6) is not divisible by 4");
  ERR(TP "func @f(%w: tensor<8x16xf32> {shard = [x]}) -> tensor<8x16xf32> {\n  return %w\n}\n",
      "sharding of parameter '%w' of @f has 1 entry but its type tensor<8x16xf32> has rank 2");
  ERR(TP "func @f(%w: tensor<8x16xf32> {shard = [-, 1]}) -> tensor<8x16xf32> {\n  return %w\n}\n",
      "the entry for dim 1 must be '-', an axis or a tuple of axes");
  ERR("func @f(%w: tensor<8x16xf32> {shard = [-, x]}) -> tensor<8x16xf32> {\n  return %w\n}\n",
      "needs a mesh: the module declares no mesh");
  ERR(TP
      "mesh @two = torus<2>(z)\n"
      "func @f(%w: tensor<8x16xf32> {shard = [-, x]}) -> tensor<8x16xf32> {\n  return %w\n}\n",
      "the module declares several meshes");
  ERR(TP
      "func @f(%w: tensor<8x16xf32>) -> tensor<8x16xf32> attributes {mesh = @nope} {\n"
      "  return %w\n}\n",
      "function @f names mesh @nope, which this module does not declare");
  ERR(TP "func @f(%w: tensor<8x16xf32> {donate = 1}) -> tensor<8x16xf32> {\n  return %w\n}\n",
      "t.tile:2:9: error: unknown attribute 'donate' on parameter '%w' of @f (a parameter takes "
      "only 'shard')");
  ERR(TP
      "func @f(%w: tensor<8x6xf32>) -> tensor<8x6xf32> {\n"
      "  %r = exp %w {shard = [-, x]} : tensor<8x6xf32>\n  return %r\n}\n",
      "sharding of the result of 'exp': dim 1 (size 6) is not divisible by 4");
}

TEST(verify, collectives) {
  ERR(TP
      "func @f(%w: tensor<8x16xf32>) -> tensor<8x16xf32> {\n"
      "  %r = all_reduce %w {kind = add, axes = [z]} : tensor<8x16xf32>\n  return %r\n}\n",
      "'all_reduce' axis 'z' is not an axis of mesh @tp");
  ERR(TP
      "func @f(%w: tensor<8x16xf32>) -> tensor<8x16xf32> {\n"
      "  %r = all_reduce %w {kind = avg, axes = [x]} : tensor<8x16xf32>\n  return %r\n}\n",
      "'all_reduce' kind 'avg' is not one of add, mul, max, min");
  ERR(TP
      "func @f(%w: tensor<8x16xf32>) -> tensor<8x16xf32> {\n"
      "  %r = all_reduce %w {kind = add, axes = [x, x]} : tensor<8x16xf32>\n  return %r\n}\n",
      "'all_reduce' axis 'x' is listed twice in axes");
  ERR(TP
      "func @f(%w: tensor<8x16xf32>) -> tensor<8x16xf32> {\n"
      "  %r = all_gather %w {dim = 0, axes = [x, y]} : tensor<16x16xf32>\n  return %w\n}\n",
      "'all_gather' result type tensor<16x16xf32> does not match the inferred tensor<64x16xf32>");
  ERR(TP
      "func @f(%w: tensor<6x16xf32>) -> tensor<6x16xf32> {\n"
      "  %r = reduce_scatter %w {kind = add, dim = 0, axes = [x]} : tensor<1x16xf32>\n"
      "  return %w\n}\n",
      "'reduce_scatter' dim 0 (size 6) is not divisible by 4, the size of its axes");
  ERR(TP
      "func @f(%w: tensor<8x16xf32>) -> tensor<8x16xf32> {\n"
      "  %r = all_to_all %w {split_dim = 0, concat_dim = 1, axes = [x]} : tensor<8x16xf32>\n"
      "  return %w\n}\n",
      "does not match the inferred tensor<2x64xf32>");
  ERR(TP
      "func @f(%w: tensor<8x16xf32>) -> tensor<8x16xf32> {\n"
      "  %r = collective_permute %w {axis = q, shift = 1} : tensor<8x16xf32>\n  return %r\n}\n",
      "'collective_permute' axis 'q' is not an axis of mesh @tp");
  ERR(TP
      "func @f(%w: tensor<8x16xf32>) -> tensor<8x16xf32> {\n"
      "  %r = all_reduce %w {kind = add, axes = [x], mesh = @zz} : tensor<8x16xf32>\n"
      "  return %r\n}\n",
      "'all_reduce' names mesh @zz, which this module does not declare");
  ERR("func @f(%w: tensor<8x16xf32>) -> tensor<8x16xf32> {\n"
      "  %r = all_reduce %w {kind = add, axes = [x]} : tensor<8x16xf32>\n  return %r\n}\n",
      "'all_reduce' needs a mesh: the module declares no mesh");
}

TEST(verify, mesh_declarations) {
  ERR("mesh @m = torus<4x4>(dp = 2 on [0], tp = 4 on [0], y = 4 on [1])\n",
      "mesh @m: the axes on torus dim 0 (dp, tp) multiply to 8, not its size 4");
  ERR("mesh @m = torus<4x4>(x = 8 on [0, 1])\n",
      "mesh @m: axis 'x' spans 2 torus dims of 16 chips in all, so its size must be 16, not 8");
  ERR("mesh @m = torus<4x4>(x = 4 on [0])\n", "mesh @m: torus dim 1 is not covered by any axis");
  ERR("mesh @m = torus<4x4>(x = 4 on [0], x = 4 on [1])\n", "mesh @m: axis 'x' is declared twice");
  ERR("mesh @m = torus<4x4>(x = 16 on [0, 1], y = 2 on [1])\n",
      "mesh @m: axis 'x' spans several torus dims and cannot share dim 1 with other axes "
      "(x, y)");
}

/* ---- regions and terminators ---- */

TEST(verify, regions) {
  ERR("func @f(%x: tensor<8xf32>) -> tensor<8xf32> {\n"
      "  %e = exp %x : tensor<8xf32>\n"
      "}\n",
      "function @f must end with 'return'");
  ERR("func @f(%x: tensor<8xf32>) -> tensor<8xf32> {\n  return %x, %x\n}\n",
      "'return' gives 2 values but @f returns 1");
  ERR("func @f(%x: tensor<8xf32>) -> tensor<8xf16> {\n  return %x\n}\n",
      "'return' value 1 has type tensor<8xf32> but @f returns tensor<8xf16>");
  ERR("kernel @k(%x: tensor<8xf32>) {\n  return %x\n}\n",
      "kernel @k returns nothing, but 'return' gives 1 values");
  ERR("func @f(%x: tensor<8xf32>) -> tensor<8xf32> {\n"
      "  return %x\n"
      "  %e = exp %x : tensor<8xf32>\n"
      "}\n",
      "'return' must be the last op of the function body");
  ERR("func @f(%x: tensor<8xf32>) -> tensor<8xf32> {\n  yield %x\n}\n",
      "'yield' may only end a 'for' or 'if' region");
  ERR("func @f(%x: tensor<8xf32>) -> tensor<8xf32> {\n"
      "  for %i = 0 to 4 step 1 {\n"
      "    return %x\n"
      "  }\n"
      "  return %x\n"
      "}\n",
      "'return' may only end a function body");
  ERR("func @f(%x: tensor<8xf32>) -> tensor<8xf32> {\n"
      "  %y = for %i = 0 to 4 step 1 iter(%a = %x) : tensor<8xf32> {\n"
      "    %e = exp %a : tensor<8xf32>\n"
      "  }\n"
      "  return %y\n"
      "}\n",
      "'for' body must end with 'yield' giving its 1 result");
  ERR("func @f(%x: tensor<8xf32>) -> tensor<8xf32> {\n"
      "  %y = for %i = 0 to 4 step 1 iter(%a = %x) : tensor<8xf32> {\n"
      "    yield %a\n"
      "    %e = exp %a : tensor<8xf32>\n"
      "  }\n"
      "  return %y\n"
      "}\n",
      "'yield' must be the last op of its region");
  ERR("func @f(%x: tensor<8xf32>, %c: i32) -> tensor<8xf32> {\n"
      "  %y = for %i = 0 to 4 step 1 iter(%a = %x) : tensor<8xf32> {\n"
      "    yield %c\n"
      "  }\n"
      "  return %y\n"
      "}\n",
      "'yield' value 1 has type i32 but the enclosing 'for' result 1 has type tensor<8xf32>");
  ERR("func @f(%x: tensor<8xf32>, %p: i1) -> tensor<8xf32> {\n"
      "  %y = if %p : tensor<8xf32> {\n"
      "    yield %x, %x\n"
      "  } else {\n"
      "    yield %x\n"
      "  }\n"
      "  return %y\n"
      "}\n",
      "'yield' gives 2 values but the enclosing 'if' has 1 results");
  ERR("func @f(%x: tensor<8xf32>, %p: i1) -> tensor<8xf32> {\n"
      "  %y = if %p : tensor<8xf32> {\n"
      "    yield %x\n"
      "  }\n"
      "  return %y\n"
      "}\n",
      "'if' else region must end with 'yield' giving its 1 result");
  ERR("func @f(%x: tensor<8xf32>, %p: i32) -> tensor<8xf32> {\n  if %p {\n  }\n  return %x\n}\n",
      "'if' condition must be i1, got i32");
  ERR("func @f(%x: tensor<8xf32>) -> tensor<8xf32> {\n  for %i = 0 to 4 step 0 {\n  }\n"
      "  return %x\n}\n",
      "'for' step must be 1 or more, got 0");
  ERR("func @f(%x: tensor<8xf32>) -> tensor<8xf32> {\n  for %i = 5 to 4 step 1 {\n  }\n"
      "  return %x\n}\n",
      "'for' lower bound 5 is above the upper bound 4");
}

TEST(verify, calls) {
  const char *g =
      "func @g(%a: tensor<8xf32>) -> tensor<8xf32> {\n  return %a\n}\n"
      "kernel @k() {\n  return\n}\n";
  char src[1024];
  snprintf(src, sizeof src,
           "%sfunc @f(%%x: tensor<8xf16>) -> tensor<8xf32> {\n"
           "  %%r = call @g(%%x) : tensor<8xf32>\n  return %%r\n}\n",
           g);
  ERR(src, "'call' argument 1 has type tensor<8xf16> but @g takes tensor<8xf32>");
  snprintf(src, sizeof src,
           "%sfunc @f(%%x: tensor<8xf32>) -> tensor<8xf32> {\n"
           "  %%r = call @nope(%%x) : tensor<8xf32>\n  return %%r\n}\n",
           g);
  ERR(src, "'call' callee @nope is not a function of this module");
  snprintf(src, sizeof src,
           "%sfunc @f(%%x: tensor<8xf32>) -> tensor<8xf32> {\n"
           "  call @k()\n  return %%x\n}\n",
           g);
  ERR(src, "'call' callee @k is a kernel; only a func can be called");
  snprintf(src, sizeof src,
           "%sfunc @f(%%x: tensor<8xf32>) -> tensor<8xf32> {\n"
           "  %%r = call @g(%%x) : tensor<8xbf16>\n  return %%x\n}\n",
           g);
  ERR(src, "'call' result type tensor<8xbf16> does not match the inferred tensor<8xf32>");
  snprintf(src, sizeof src,
           "%sfunc @f(%%x: tensor<8xf32>) -> tensor<8xf32> {\n"
           "  %%r = call @g(%%x, %%x) : tensor<8xf32>\n  return %%r\n}\n",
           g);
  ERR(src, "'call' passes 2 arguments but @g takes 1");
}

/* Every error of a program is reported, not only the first. */
TEST(verify, keeps_going) {
  int n;
  char *out = verify_src(F1("  %r = add %a, %s : tensor<8x128xf32>\n"
                            "  %t = exp %s : i32\n"
                            "  %u = reduce %a {kind = add} : tensor<8xf32>"),
                         &n, __FILE__, __LINE__);
  CHECK_EQ(3, n);
  CHECK(out && strstr(out, "t.tile:2:"));
  CHECK(out && strstr(out, "t.tile:4:"));
  free(out);
}

/* ---- IR made by hand: what the parser cannot write ---- */

static TileValue *new_value(TileModule *m, TileType t, const char *name) {
  TileValue *v = tile_alloc(m, sizeof *v);
  v->type = t;
  v->name = name;
  return v;
}

static TileOp *new_op(TileModule *m, TileOpKind kind, int nopnd, TileValue **opnds, int nres,
                      TileType *res) {
  TileOp *op = tile_alloc(m, sizeof *op);
  op->kind = (uint16_t)kind;
  op->nopnd = nopnd;
  op->opnd = nopnd ? tile_alloc(m, (size_t)nopnd * sizeof *op->opnd) : NULL;
  for (int i = 0; i < nopnd; i++) op->opnd[i].v = opnds[i];
  op->nres = nres;
  op->res = nres ? tile_alloc(m, (size_t)nres * sizeof *op->res) : NULL;
  for (int i = 0; i < nres; i++) {
    op->res[i] = new_value(m, res ? res[i] : (TileType){0}, NULL);
    op->res[i]->def = op;
    op->res[i]->index = i;
  }
  return op;
}

TEST(infer, single_ops) {
  TileModule *m = tile_module_new("t");
  TileDiag d;
  tile_diag_init(&d, NULL, "t", NULL, 0);
  TileType a = tile_type_tensor(TILE_ELEM_BF16, 3, (int64_t[]){4, 8, 64});
  TileType b = tile_type_tensor(TILE_ELEM_BF16, 2, (int64_t[]){64, 32});
  TileValue *va = new_value(m, a, "a"), *vb = new_value(m, b, "b");

  TileOp *mm = new_op(m, TILE_OP_MATMUL, 2, (TileValue *[]){va, vb}, 1, NULL);
  TileType out[2];
  bool inferred[2] = {false, false};
  CHECK(tile_infer_types(m, mm, out, inferred, &d));
  TileType want = tile_type_tensor(TILE_ELEM_BF16, 3, (int64_t[]){4, 8, 32});
  CHECK(inferred[0]);
  CHECK(tile_type_eq(&want, &out[0]));

  /* A declared wider element type wins. */
  mm->res[0]->type = tile_type_tensor(TILE_ELEM_F32, 3, (int64_t[]){4, 8, 32});
  CHECK(tile_infer_types(m, mm, out, inferred, &d));
  CHECK_EQ(TILE_ELEM_F32, out[0].elem);

  TileOp *tk = new_op(m, TILE_OP_TOPK, 1, (TileValue *[]){va}, 2, NULL);
  tk->attrs.n = 1;
  tk->attrs.items = tile_alloc(m, sizeof *tk->attrs.items);
  tk->attrs.items[0] = (TileNamedAttr){"k", tile_attr_int(5)};
  CHECK(tile_infer_types(m, tk, out, inferred, &d));
  CHECK(inferred[0] && inferred[1]);
  CHECK_EQ(5, out[0].dims[2]);
  CHECK_EQ(TILE_ELEM_BF16, out[0].elem);
  CHECK_EQ(TILE_ELEM_I32, out[1].elem);

  /* reshape cannot be inferred: with no declared type it says so. */
  TileOp *rs = new_op(m, TILE_OP_RESHAPE, 1, (TileValue *[]){va}, 1, NULL);
  CHECK(!tile_infer_types(m, rs, out, inferred, &d));
  CHECK(strstr(d.last, "'reshape' needs its result type given") != NULL);
  rs->res[0]->type = tile_type_tensor(TILE_ELEM_BF16, 2, (int64_t[]){32, 64});
  CHECK(tile_infer_types(m, rs, out, inferred, &d));
  CHECK(!inferred[0]);
  CHECK(tile_type_eq(&rs->res[0]->type, &out[0]));

  /* A collective outside any function uses the module's only mesh. */
  TileMesh *mesh = tile_alloc(m, sizeof *mesh);
  mesh->name = "tp";
  mesh->rank = 1;
  mesh->dims[0] = 4;
  mesh->naxes = 1;
  mesh->axes[0] = (TileMeshAxis){.name = "x", .size = 4, .ndims = 1, .dims = {0}};
  m->meshes = mesh;
  TileOp *ag = new_op(m, TILE_OP_ALL_GATHER, 1, (TileValue *[]){vb}, 1, NULL);
  TileAttr axes = tile_attr_array(m, 1, (TileAttr[]){tile_attr_ident(m, "x")});
  ag->attrs.n = 2;
  ag->attrs.items = tile_alloc(m, 2 * sizeof *ag->attrs.items);
  ag->attrs.items[0] = (TileNamedAttr){"dim", tile_attr_int(1)};
  ag->attrs.items[1] = (TileNamedAttr){"axes", axes};
  CHECK(tile_infer_types(m, ag, out, inferred, &d));
  CHECK_EQ(128, out[0].dims[1]);
  tile_module_free(m);
}

TEST(infer, malformed_ops_do_not_crash) {
  TileModule *m = tile_module_new("t");
  TileDiag d;
  tile_diag_init(&d, NULL, "t", NULL, 0);
  TileType t = tile_type_tensor(TILE_ELEM_F32, 1, (int64_t[]){8});
  TileValue *v = new_value(m, t, "v");
  TileType out[4];
  bool inferred[4];

  TileOp *add = new_op(m, TILE_OP_ADD, 2, (TileValue *[]){v, NULL}, 1, NULL);
  CHECK(!tile_infer_types(m, add, out, inferred, &d));
  CHECK_STREQ("'add' operand 2 is missing (no value)", d.last);

  TileOp *few = new_op(m, TILE_OP_SUB, 1, (TileValue *[]){v}, 1, NULL);
  CHECK(!tile_infer_types(m, few, out, inferred, &d));
  CHECK_STREQ("'sub' takes 2 operands, got 1", d.last);

  TileOp *many = new_op(m, TILE_OP_EXP, 1, (TileValue *[]){v}, 3, NULL);
  CHECK(!tile_infer_types(m, many, out, inferred, &d));
  CHECK_STREQ("'exp' has 1 result, got 3", d.last);

  TileOp *noarr = new_op(m, TILE_OP_MUL, 0, NULL, 1, NULL);
  noarr->nopnd = 2; /* a count with no array behind it */
  CHECK(!tile_infer_types(m, noarr, out, inferred, &d));
  CHECK_STREQ("'mul' has 2 operands but no operand array", d.last);

  TileType bad = tile_type_tensor(TILE_ELEM_F32, 1, (int64_t[]){0});
  TileValue *vb = new_value(m, bad, "z");
  TileOp *neg = new_op(m, TILE_OP_NEG, 1, (TileValue *[]){vb}, 1, NULL);
  CHECK(!tile_infer_types(m, neg, out, inferred, &d));
  CHECK(strstr(d.last, "malformed type") != NULL);

  /* Element counts past 64 bits (the parser stops at 2^48; hand-made types do not). */
  TileType huge = tile_type_tensor(TILE_ELEM_F32, 3, (int64_t[]){1LL << 32, 1LL << 32, 2});
  TileOp *rs = new_op(m, TILE_OP_RESHAPE, 1, (TileValue *[]){v}, 1, &huge);
  CHECK(!tile_infer_types(m, rs, out, inferred, &d));
  CHECK_STREQ("'reshape' has more elements than fit in 64 bits", d.last);

  TileOp *kind = new_op(m, TILE_OP_NEG, 1, (TileValue *[]){v}, 1, NULL);
  kind->kind = TILE_OP_COUNT + 3;
  CHECK(!tile_infer_types(m, kind, out, inferred, &d));

  TileOp *noname = new_op(m, TILE_OP_REDUCE, 1, (TileValue *[]){v}, 1, NULL);
  noname->attrs.n = 1;
  noname->attrs.items = tile_alloc(m, sizeof *noname->attrs.items);
  noname->attrs.items[0] = (TileNamedAttr){NULL, tile_attr_int(1)};
  CHECK(!tile_infer_types(m, noname, out, inferred, &d));

  /* The module verifier on a function holding a NULL operand and a region-less for. */
  TileFunc *f = tile_alloc(m, sizeof *f);
  f->name = "f";
  f->is_kernel = true;
  f->body = tile_alloc(m, sizeof *f->body);
  f->body->func = f;
  TileOp *fr = new_op(m, TILE_OP_FOR, 0, NULL, 0, NULL);
  TileOp *ex = new_op(m, TILE_OP_EXP, 1, (TileValue *[]){NULL}, 1, NULL);
  fr->block = ex->block = f->body;
  fr->next = ex;
  ex->prev = fr;
  f->body->first = fr;
  f->body->last = ex;
  m->funcs = f;
  tile_diag_init(&d, NULL, "t", NULL, 0);
  CHECK(!tile_verify_module(m, &d));
  CHECK(d.nerrors >= 3); /* for: no attributes, no region; exp: no operand */
  tile_module_free(m);
}

/* Structure only the builder or hand-made IR can have: a body with no yield at all,
 * an if with one region, a value from another function, a mesh dim out of range. */
TEST(verify, builder_structure) {
  TileModule *m = tile_module_new("t");
  TileBuilder b;
  tile_builder_init(&b, m);
  TileType t = tile_type_tensor(TILE_ELEM_F32, 1, (int64_t[]){8});
  TileFunc *g = tile_build_func(&b, "g", false, 1, &t);
  REQUIRE(g != NULL);
  REQUIRE(tile_build_return(&b, 1, &g->body->args[0]));
  TileFunc *f = tile_build_func(&b, "f", false, 2, (TileType[]){t, tile_type_scalar(TILE_ELEM_I1)});
  REQUIRE(f != NULL);
  TileValue *x = f->body->args[0];
  TileOp *loop = tile_build_for(&b, 0, 4, 1, 1, &x);
  REQUIRE(loop != NULL);
  TileOp *br = tile_build_if(&b, f->body->args[1], 1, &t);
  REQUIRE(br != NULL);
  tile_builder_set_block(&b, br->region[0]);
  REQUIRE(tile_build_yield(&b, 1, &x));
  br->nregion = 1; /* drop the else region */
  tile_builder_set_block(&b, f->body);
  TileValue *other = tile_build1(&b, TILE_OP_EXP, 1, &g->body->args[0], NULL, NULL);
  REQUIRE(other != NULL);
  REQUIRE(tile_build_return(&b, 1, &loop->res[0]));

  char *out = NULL;
  size_t len = 0;
  FILE *s = open_memstream(&out, &len);
  TileDiag d;
  tile_diag_init(&d, s, "t", NULL, 0);
  CHECK(!tile_verify_module(m, &d));
  fclose(s);
  CHECK(strstr(out, "'for' body must end with 'yield' giving its 1 result") != NULL);
  CHECK(strstr(out, "'if' with results needs an else region that gives them") != NULL);
  CHECK(strstr(out, "value (parameter 1) belongs to function @g and cannot be used in @f") !=
        NULL);
  CHECK_EQ(3, d.nerrors);
  free(out);

  tile_module_free(m);

  m = tile_module_new("t");
  TileMesh *mesh = tile_alloc(m, sizeof *mesh);
  *mesh = (TileMesh){.name = "m", .rank = 2, .dims = {4, 4}, .naxes = 2};
  mesh->axes[0] = (TileMeshAxis){.name = "x", .size = 4, .ndims = 1, .dims = {0}};
  mesh->axes[1] = (TileMeshAxis){.name = "y", .size = 4, .ndims = 1, .dims = {2}};
  m->meshes = mesh;
  tile_diag_init(&d, NULL, "t", NULL, 0);
  CHECK(!tile_verify_module(m, &d));
  CHECK_EQ(1, d.nerrors);
  CHECK_STREQ("mesh @m: axis 'y' names torus dim 2, but the torus has rank 2", d.last);
  tile_module_free(m);
}
