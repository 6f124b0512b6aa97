/* The fuse pass: matmul epilogues, row-wise chains, groups of their own, free
 * broadcasts, and the no-cycle guarantee (every group reads only from groups numbered
 * below it). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "parse_fixture.h"
#include "tile/ops.h"
#include "tile/pass.h"

static bool run(TileModule *m, int npasses) {
  TileDiag d;
  tile_diag_init(&d, stderr, "<test>", NULL, 0);
  return tile_run_pipeline(m, tile_pipeline, npasses, NULL, &d) == TILE_PASS_OK;
}

static int64_t group_of(const TileOp *op) {
  int64_t g = -1;
  tile_attr_get_int(&op->attrs, "group", &g);
  return g;
}

/* The group of the op defining the value named `name`; -2 when there is none. */
static int64_t group_named(const TileFunc *f, const char *name) {
  for (const TileOp *op = f->body->first; op; op = op->next)
    for (int i = 0; i < op->nres; i++)
      if (op->res[i]->name && strcmp(op->res[i]->name, name) == 0) return group_of(op);
  return -2;
}

/* No group reads a value of a group numbered above it or of its own made later. */
static bool acyclic(const TileFunc *f) {
  for (const TileOp *op = f->body->first; op; op = op->next) {
    int64_t g = group_of(op);
    for (int i = 0; i < op->nopnd; i++) {
      const TileOp *def = op->opnd[i].v->def;
      if (def && g >= 0 && group_of(def) > g) return false;
    }
  }
  return true;
}

TEST(Fuse, MatmulEpilogueAndRowChains) {
  TileModule *m = parse(
      "func @f(%x: tensor<16x128xf32>, %w: tensor<128x256xf32>, %b: tensor<256xf32>)"
      " -> tensor<16x256xf32> {\n"
      "  %h = matmul %x, %w : tensor<16x256xf32>\n"
      "  %bb = broadcast %b {dims = [1]} : tensor<16x256xf32>\n"
      "  %y = add %h, %bb : tensor<16x256xf32>\n"
      "  %z = gelu %y : tensor<16x256xf32>\n"
      "  %s = softmax %z {dim = 1} : tensor<16x256xf32>\n"
      "  return %s\n"
      "}\n");
  REQUIRE(m);
  REQUIRE(run(m, 2));
  const TileFunc *f = m->funcs;
  CHECK_EQ(0, group_named(f, "h"));
  CHECK_EQ(0, group_named(f, "bb")); /* the bias broadcast is read in place */
  CHECK_EQ(0, group_named(f, "y"));
  CHECK_EQ(0, group_named(f, "z"));  /* gelu's chain is the epilogue */
  CHECK_EQ(1, group_named(f, "s.max"));
  CHECK_EQ(1, group_named(f, "s"));
  CHECK_EQ(-1, group_named(f, "z.k")); /* constants are not tagged */
  CHECK(acyclic(f));
  tile_module_free(m);
}

TEST(Fuse, SoloOps) {
  TileModule *m = parse(
      "func @f(%e: tensor<64x128xf32>, %i: tensor<4xi32>, %x: tensor<4x128xf32>)"
      " -> (tensor<4x128xf32>, tensor<4xi32>, tensor<128x4xf32>) {\n"
      "  %g = gather %e, %i {axis = 0} : tensor<4x128xf32>\n"
      "  %a = add %g, %x : tensor<4x128xf32>\n"
      "  %m = argmax %a {dim = 1} : tensor<4xi32>\n"
      "  %t = transpose %a {perm = [1, 0]} : tensor<128x4xf32>\n"
      "  return %a, %m, %t\n"
      "}\n");
  REQUIRE(m);
  REQUIRE(run(m, 2));
  const TileFunc *f = m->funcs;
  int64_t g = group_named(f, "g"), a = group_named(f, "a"), am = group_named(f, "m"),
          t = group_named(f, "t");
  CHECK(g >= 0 && a >= 0 && am >= 0 && t >= 0);
  CHECK(g != a); /* nothing joins a gather */
  CHECK(am != a && t != a && am != t);
  CHECK(acyclic(f));
  tile_module_free(m);
}

/* A broadcast read first by a matmul gets a group of its own before the matmul's, so
 * the row-wise op that reads it too cannot make a cycle. */
TEST(Fuse, BroadcastReadByMatmulAndRowwise) {
  TileModule *m = parse(
      "func @f(%p: tensor<128xf32>, %w: tensor<128x128xf32>) -> tensor<8xf32> {\n"
      "  %b = broadcast %p {dims = [1]} : tensor<8x128xf32>\n"
      "  %h = matmul %b, %w : tensor<8x128xf32>\n"
      "  %s = reduce %h {kind = add, dims = [1]} : tensor<8xf32>\n"
      "  %q = reduce %b {kind = max, dims = [1]} : tensor<8xf32>\n"
      "  %r = add %s, %q : tensor<8xf32>\n"
      "  return %r\n"
      "}\n");
  REQUIRE(m);
  REQUIRE(run(m, 2));
  const TileFunc *f = m->funcs;
  CHECK(group_named(f, "b") < group_named(f, "h"));
  CHECK(acyclic(f));
  tile_module_free(m);
}

/* Ops over different rows do not share a group; the same rows do. */
TEST(Fuse, RowShapes) {
  TileModule *m = parse(
      "func @f(%x: tensor<8x128xf32>, %y: tensor<8x64xf32>) -> (tensor<8x128xf32>,"
      " tensor<8x64xf32>) {\n"
      "  %a = exp %x : tensor<8x128xf32>\n"
      "  %s = reduce %a {kind = add, dims = [1]} : tensor<8xf32>\n"
      "  %sb = broadcast %s {dims = [0]} : tensor<8x64xf32>\n"
      "  %c = mul %y, %sb : tensor<8x64xf32>\n"
      "  %d = mul %a, %a : tensor<8x128xf32>\n"
      "  return %d, %c\n"
      "}\n");
  REQUIRE(m);
  REQUIRE(run(m, 2));
  const TileFunc *f = m->funcs;
  CHECK_EQ(group_named(f, "a"), group_named(f, "s"));
  CHECK_EQ(group_named(f, "a"), group_named(f, "d"));
  CHECK(group_named(f, "sb") != group_named(f, "a")); /* rows of 64, not 128 */
  CHECK(acyclic(f));
  tile_module_free(m);
}

/* Kernels are not fused, and fusing twice changes nothing. */
TEST(Fuse, KernelsUntouchedAndIdempotent) {
  TileModule *m = parse(
      "func @f(%x: tensor<8x128xf32>) -> tensor<8x128xf32> {\n"
      "  %a = exp %x : tensor<8x128xf32>\n"
      "  %b = neg %a : tensor<8x128xf32>\n"
      "  return %b\n"
      "}\n"
      "kernel @k(%v: vmem<8x128xf32>) {\n"
      "  %t = load %v[0, 0] : tensor<8x128xf32>\n"
      "  store %t, %v[0, 0]\n"
      "  return\n"
      "}\n");
  REQUIRE(m);
  REQUIRE(run(m, 2));
  char *once = tile_print_module_str(m);
  const char *names[] = {"fuse"};
  TileDiag d;
  tile_diag_init(&d, stderr, "<test>", NULL, 0);
  REQUIRE(tile_run_pipeline(m, names, 1, NULL, &d) == TILE_PASS_OK);
  char *twice = tile_print_module_str(m);
  CHECK_STREQ(once, twice);
  CHECK(strstr(once, "load %v[0, 0] : tensor<8x128xf32>\n") != NULL);
  CHECK(strstr(once, "%b = neg %a {group = 0}") != NULL);
  free(once);
  free(twice);
  tile_module_free(m);
}
