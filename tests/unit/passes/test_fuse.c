/* The fuse pass: matmul epilogues, row-wise chains, groups of their own, converts and
 * broadcasts of inputs joining their reader's group, each composite as one group, the
 * generators' limits, and the no-cycle guarantee (every group reads only from groups
 * numbered below it). */
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

/* How many groups f has (numbers 0 .. n-1, each used: checked). */
static int count_groups(const TileFunc *f) {
  bool used[256] = {false};
  int64_t most = -1;
  for (const TileOp *op = f->body->first; op; op = op->next) {
    int64_t g = group_of(op);
    if (g < 0 || g >= 256) continue;
    used[g] = true;
    if (g > most) most = g;
  }
  for (int64_t g = 0; g <= most; g++)
    if (!used[g]) return -1;
  return (int)(most + 1);
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

/* Each composite over rows, in f32 and in bf16 (its converts to and from f32, of gamma
 * and beta too, included), is one group. */
TEST(Fuse, CompositesAreOneGroup) {
  static const char *const bodies[] = {
      "%%y = softmax %%x {dim = 1} : tensor<16x384x%s>",
      "%%y = layernorm %%x, %%g, %%b {eps = 1e-05} : tensor<16x384x%s>",
      "%%y = rmsnorm %%x, %%g {eps = 1e-05} : tensor<16x384x%s>",
      "%%y = gelu %%x : tensor<16x384x%s>",
      "%%y = silu %%x : tensor<16x384x%s>",
  };
  static const char *const elems[] = {"f32", "bf16"};
  for (size_t b = 0; b < sizeof bodies / sizeof *bodies; b++)
    for (int e = 0; e < 2; e++) {
      char body[160], src[600];
      snprintf(body, sizeof body, bodies[b], elems[e]);
      snprintf(src, sizeof src,
               "func @f(%%x: tensor<16x384x%s>, %%g: tensor<384x%s>, %%b: tensor<384x%s>)"
               " -> tensor<16x384x%s> {\n  %s\n  return %%y\n}\n",
               elems[e], elems[e], elems[e], elems[e], body);
      TileModule *m = parse(src);
      REQUIRE(m);
      REQUIRE(run(m, 2));
      int n = count_groups(m->funcs);
      if (n != 1) fprintf(stderr, "%s: %d groups\n", body, n);
      CHECK_EQ(1, n);
      tile_module_free(m);
    }
}

/* The convert and broadcast of a gamma read only a parameter: they join the group of
 * the op that reads them, which is the norm's. */
TEST(Fuse, InputConvertsJoinTheirReader) {
  TileModule *m = parse(
      "func @f(%x: tensor<8x256xbf16>, %g: tensor<256xbf16>) -> tensor<8x256xbf16> {\n"
      "  %y = rmsnorm %x, %g {eps = 1e-05} : tensor<8x256xbf16>\n"
      "  return %y\n"
      "}\n");
  REQUIRE(m);
  REQUIRE(run(m, 2));
  const TileFunc *f = m->funcs;
  CHECK_EQ(0, group_named(f, "y.gamma"));
  CHECK_EQ(0, group_named(f, "y.gamma_b"));
  CHECK_EQ(0, group_named(f, "y.normed"));
  CHECK_EQ(0, group_named(f, "y"));
  tile_module_free(m);
}

/* gelu reads %x four times, once from an op (half_x) whose operands are all leaves:
 * it still joins the chain. */
TEST(Fuse, SharedOperandStaysInTheGroup) {
  TileModule *m = parse(
      "func @f(%x: tensor<64x128xf32>) -> tensor<64x128xf32> {\n"
      "  %y = gelu %x : tensor<64x128xf32>\n"
      "  return %y\n"
      "}\n");
  REQUIRE(m);
  REQUIRE(run(m, 2));
  const TileFunc *f = m->funcs;
  CHECK_EQ(1, count_groups(f));
  CHECK_EQ(0, group_named(f, "y.half_x"));
  tile_module_free(m);
}

/* A matmul, its bias (converted from bf16 and broadcast), gelu and the rounding to
 * bf16: one group. */
TEST(Fuse, MatmulBiasGeluConvert) {
  TileModule *m = parse(
      "func @f(%x: tensor<16x128xbf16>, %w: tensor<128x256xbf16>, %b: tensor<256xbf16>)"
      " -> tensor<16x256xbf16> {\n"
      "  %h = matmul %x, %w : tensor<16x256xf32>\n"
      "  %bf = convert %b : tensor<256xf32>\n"
      "  %bb = broadcast %bf {dims = [1]} : tensor<16x256xf32>\n"
      "  %y = add %h, %bb : tensor<16x256xf32>\n"
      "  %z = gelu %y : tensor<16x256xf32>\n"
      "  %r = convert %z : tensor<16x256xbf16>\n"
      "  return %r\n"
      "}\n");
  REQUIRE(m);
  REQUIRE(run(m, 2));
  const TileFunc *f = m->funcs;
  CHECK_EQ(1, count_groups(f));
  CHECK_EQ(0, group_named(f, "bf"));
  CHECK_EQ(0, group_named(f, "r"));
  tile_module_free(m);
}

/* A value read outside its group is still written: the matmul's group writes one value,
 * so with %h read by a reduce too, the epilogue cannot join it and runs row-wise (with
 * the bias broadcast); a residual (a full-size input) is an epilogue operand. */
TEST(Fuse, MatmulWritesOneValue) {
  TileModule *m = parse(
      "func @f(%x: tensor<16x128xf32>, %w: tensor<128x256xf32>, %b: tensor<256xf32>,"
      " %res: tensor<16x256xf32>) -> (tensor<16x256xf32>, tensor<16xf32>, tensor<16x256xf32>) {\n"
      "  %h = matmul %x, %w : tensor<16x256xf32>\n"
      "  %bb = broadcast %b {dims = [1]} : tensor<16x256xf32>\n"
      "  %y = add %h, %bb : tensor<16x256xf32>\n"
      "  %s = reduce %h {kind = add, dims = [1]} : tensor<16xf32>\n"
      "  %h2 = matmul %x, %w : tensor<16x256xf32>\n"
      "  %r = add %h2, %res : tensor<16x256xf32>\n"
      "  return %y, %s, %r\n"
      "}\n");
  REQUIRE(m);
  REQUIRE(run(m, 2));
  const TileFunc *f = m->funcs;
  CHECK(group_named(f, "y") != group_named(f, "h"));
  CHECK_EQ(group_named(f, "y"), group_named(f, "bb"));
  CHECK(group_named(f, "s") != group_named(f, "h"));
  CHECK_EQ(group_named(f, "r"), group_named(f, "h2"));
  CHECK(acyclic(f));
  tile_module_free(m);
}

/* At most two values of the matmul's shape from outside join its epilogue; a third add
 * runs row-wise. */
TEST(Fuse, MatmulTakesTwoFullOperands) {
  TileModule *m = parse(
      "func @f(%x: tensor<16x128xf32>, %w: tensor<128x256xf32>, %a: tensor<16x256xf32>,"
      " %b: tensor<16x256xbf16>, %c: tensor<16x256xf32>) -> tensor<16x256xf32> {\n"
      "  %h = matmul %x, %w : tensor<16x256xf32>\n"
      "  %bf = convert %b : tensor<16x256xf32>\n"
      "  %s1 = add %h, %a : tensor<16x256xf32>\n"
      "  %s2 = mul %s1, %bf : tensor<16x256xf32>\n"
      "  %s3 = add %s2, %c : tensor<16x256xf32>\n"
      "  return %s3\n"
      "}\n");
  REQUIRE(m);
  REQUIRE(run(m, 2));
  const TileFunc *f = m->funcs;
  CHECK_EQ(group_named(f, "s1"), group_named(f, "h"));
  CHECK_EQ(group_named(f, "s2"), group_named(f, "h"));
  CHECK(group_named(f, "s3") != group_named(f, "h"));
  CHECK(acyclic(f));
  tile_module_free(m);
}

/* A table (the converted gamma) read outside its group would have to be written, which
 * the row-wise generator does not do: it stays a group of its own. */
TEST(Fuse, TablesAreNotWritten) {
  TileModule *m = parse(
      "func @f(%x: tensor<8x128xf32>, %g: tensor<128xbf16>) -> (tensor<8x128xf32>,"
      " tensor<128xf32>) {\n"
      "  %gc = convert %g : tensor<128xf32>\n"
      "  %gb = broadcast %gc {dims = [1]} : tensor<8x128xf32>\n"
      "  %y = mul %x, %gb : tensor<8x128xf32>\n"
      "  return %y, %gc\n"
      "}\n");
  REQUIRE(m);
  REQUIRE(run(m, 2));
  const TileFunc *f = m->funcs;
  CHECK(group_named(f, "gc") != group_named(f, "y"));
  CHECK_EQ(group_named(f, "gb"), group_named(f, "y"));
  CHECK(acyclic(f));
  tile_module_free(m);
}

/* %c reads %a directly and through a transpose (a group of its own): joining %a's group
 * would make a cycle. */
TEST(Fuse, NoCycleThroughAnotherGroup) {
  TileModule *m = parse(
      "func @f(%x: tensor<128x128xf32>) -> tensor<128x128xf32> {\n"
      "  %a = exp %x : tensor<128x128xf32>\n"
      "  %t = transpose %a {perm = [1, 0]} : tensor<128x128xf32>\n"
      "  %c = add %a, %t : tensor<128x128xf32>\n"
      "  return %c\n"
      "}\n");
  REQUIRE(m);
  REQUIRE(run(m, 2));
  const TileFunc *f = m->funcs;
  CHECK_EQ(3, count_groups(f));
  CHECK(group_named(f, "a") < group_named(f, "t"));
  CHECK(group_named(f, "t") < group_named(f, "c"));
  CHECK(acyclic(f));
  tile_module_free(m);
}

/* Nine chained reductions need nine passes over a row; the row-wise generator makes at
 * most eight, so the chain is cut. */
TEST(Fuse, PassLimit) {
  char src[4096];
  size_t len = (size_t)snprintf(src, sizeof src,
                                "func @f(%%x: tensor<8x128xf32>) -> tensor<8x128xf32> {\n");
  const char *cur = "x";
  char names[10][8];
  for (int i = 0; i < 9; i++) {
    len += (size_t)snprintf(src + len, sizeof src - len,
                            "  %%m%d = reduce %%%s {kind = max, dims = [1]} : tensor<8xf32>\n"
                            "  %%b%d = broadcast %%m%d {dims = [0]} : tensor<8x128xf32>\n"
                            "  %%s%d = sub %%%s, %%b%d : tensor<8x128xf32>\n",
                            i, cur, i, i, i, cur, i);
    snprintf(names[i], sizeof names[i], "s%d", i);
    cur = names[i];
  }
  snprintf(src + len, sizeof src - len, "  return %%%s\n}\n", cur);
  TileModule *m = parse(src);
  REQUIRE(m);
  REQUIRE(run(m, 2));
  const TileFunc *f = m->funcs;
  CHECK_EQ(2, count_groups(f));
  CHECK(acyclic(f));
  tile_module_free(m);
}

/* Converts and broadcasts of splats join their reader's group too, a matmul's as a
 * row-wise one. */
TEST(Fuse, SplatBroadcastsJoinTheirReader) {
  TileModule *m = parse(
      "func @f(%x: tensor<16x128xf32>, %w: tensor<128x128xf32>) -> (tensor<16x128xf32>,"
      " tensor<16x128xf32>) {\n"
      "  %c = constant {value = 2.0} : tensor<128xbf16>\n"
      "  %cf = convert %c : tensor<128xf32>\n"
      "  %cb = broadcast %cf {dims = [1]} : tensor<16x128xf32>\n"
      "  %h = matmul %x, %w : tensor<16x128xf32>\n"
      "  %y = mul %h, %cb : tensor<16x128xf32>\n"
      "  %k = constant {value = 3.0} : tensor<16xf32>\n"
      "  %kb = broadcast %k {dims = [0]} : tensor<16x128xf32>\n"
      "  %e = exp %x : tensor<16x128xf32>\n"
      "  %z = add %e, %kb : tensor<16x128xf32>\n"
      "  return %y, %z\n"
      "}\n");
  REQUIRE(m);
  REQUIRE(run(m, 2));
  const TileFunc *f = m->funcs;
  CHECK_EQ(2, count_groups(f));
  CHECK_EQ(group_named(f, "h"), group_named(f, "cf"));
  CHECK_EQ(group_named(f, "h"), group_named(f, "cb"));
  CHECK_EQ(group_named(f, "z"), group_named(f, "kb"));
  CHECK_EQ(group_named(f, "z"), group_named(f, "e"));
  CHECK(acyclic(f));
  tile_module_free(m);
}
