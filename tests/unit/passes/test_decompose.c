/* The decompose pass on IR from the parser and from the builder: no composite op
 * remains anywhere (nested regions, kernels), the composite's result value, name,
 * uses, sharding and location survive, new names never collide, and unnamed IR
 * stays unnamed. The numerics are checked end to end (tests/e2e/test_decompose.py). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "parse_fixture.h"
#include "tile/builder.h"
#include "tile/pass.h"
#include "tile/text.h"
#include "tile/verify.h"

static const TileOpKind COMPOSITES[] = {TILE_OP_SOFTMAX, TILE_OP_LAYERNORM, TILE_OP_RMSNORM,
                                        TILE_OP_GELU,    TILE_OP_SILU,      TILE_OP_ROPE,
                                        TILE_OP_ATTENTION};
enum { NCOMPOSITES = sizeof COMPOSITES / sizeof COMPOSITES[0] };


static bool decompose(TileModule *m) {
  TileDiag d;
  tile_diag_init(&d, stderr, "<test>", NULL, 0);
  const char *names[] = {"decompose"};
  return tile_run_pipeline(m, names, 1, NULL, &d) == TILE_PASS_OK && d.nerrors == 0;
}

static int count_kind(const TileBlock *blk, int kind) {
  int n = 0;
  for (const TileOp *op = blk->first; op; op = op->next) {
    n += op->kind == kind;
    for (int r = 0; r < op->nregion; r++) n += count_kind(op->region[r], kind);
  }
  return n;
}

static int count_composites(const TileModule *m) {
  int n = 0;
  for (const TileFunc *f = m->funcs; f; f = f->next)
    for (int k = 0; k < NCOMPOSITES; k++) n += count_kind(f->body, COMPOSITES[k]);
  return n;
}

/* Every composite, in a func body, a loop body, both branches of an if, and a
 * kernel. */
static const char *EVERYWHERE =
    "func @g(%x: tensor<2x4x8xbf16>, %w: tensor<8xbf16>, %b: tensor<8xbf16>,\n"
    "        %c: tensor<4x4xbf16>, %s: tensor<4x4xbf16>, %q: tensor<2x4x4x8xf16>,\n"
    "        %k: tensor<2x2x6x8xf16>, %t: i1) -> tensor<2x4x8xbf16> {\n"
    "  %sm = softmax %x {dim = 0} : tensor<2x4x8xbf16>\n"
    "  %ln = layernorm %sm, %w, %b {eps = 1e-05} : tensor<2x4x8xbf16>\n"
    "  %r = for %i = 0 to 2 step 1 iter(%acc = %ln) : tensor<2x4x8xbf16> {\n"
    "    %rn = rmsnorm %acc, %w {eps = 1e-06} : tensor<2x4x8xbf16>\n"
    "    %y = if %t : tensor<2x4x8xbf16> {\n"
    "      %ge = gelu %rn : tensor<2x4x8xbf16>\n"
    "      yield %ge\n"
    "    } else {\n"
    "      %si = silu %rn : tensor<2x4x8xbf16>\n"
    "      yield %si\n"
    "    }\n"
    "    yield %y\n"
    "  }\n"
    "  %ro = rope %r, %c, %s : tensor<2x4x8xbf16>\n"
    "  %a = attention %q, %k, %k {scale = 0.35, causal = 1} : tensor<2x4x4x8xf16>\n"
    "  return %ro\n"
    "}\n"
    "\n"
    "kernel @kk(%in: hbm<8x128xf32>) {\n"
    "  %v = alloc : vmem<8x128xf32>\n"
    "  %t = load %v[0, 0] : tensor<8x128xf32>\n"
    "  %e = silu %t : tensor<8x128xf32>\n"
    "  store %e, %v[0, 0]\n"
    "  return\n"
    "}\n";

TEST(decompose, nothing_composite_remains) {
  TileModule *m = parse(EVERYWHERE);
  REQUIRE(m != NULL);
  CHECK_EQ(8, count_composites(m));
  REQUIRE(decompose(m));
  CHECK_EQ(0, count_composites(m));
  /* Narrow floats compute in f32: converts in and out. */
  CHECK(count_kind(m->funcs->body, TILE_OP_CONVERT) > 0);
  /* The printed module reads back as the same text. */
  char *text = tile_print_module_str(m);
  TileModule *back = parse(text);
  REQUIRE(back != NULL);
  char *again = tile_print_module_str(back);
  CHECK_STREQ(text, again);
  free(again);
  free(text);
  tile_module_free(back);
  tile_module_free(m);
}

TEST(decompose, result_value_name_and_sharding_survive) {
  TileModule *m = parse("mesh @tp = torus<4>(x)\n"
                        "func @f(%h: tensor<8x16xbf16> {shard = [-, x]}) -> tensor<8x16xbf16> {\n"
                        "  %g = gelu %h {shard = [-, x]} : tensor<8x16xbf16>\n"
                        "  %z = add %g, %g : tensor<8x16xbf16>\n"
                        "  return %z\n"
                        "}\n");
  REQUIRE(m != NULL);
  TileFunc *f = m->funcs;
  TileOp *gelu = f->body->first, *add = gelu->next;
  TileValue *g = gelu->res[0];
  TileLoc loc = gelu->loc;
  REQUIRE(decompose(m));
  /* The same value object, still named %g, still used twice by the add, now made
   * by the convert back to bf16, which carries the sharding. */
  CHECK(add->opnd[0].v == g && add->opnd[1].v == g);
  CHECK_STREQ("g", g->name);
  REQUIRE(g->def != NULL);
  CHECK_EQ(TILE_OP_CONVERT, g->def->kind);
  CHECK(g->def->next == add);
  const TileAttr *shard = tile_attr_get(&g->def->attrs, "shard");
  REQUIRE(shard != NULL);
  CHECK_EQ(TILE_ATTR_ARRAY, shard->kind);
  /* Every new op stands at the gelu's source line. */
  for (const TileOp *op = f->body->first; op != add; op = op->next) {
    CHECK_EQ(loc.line, op->loc.line);
    CHECK_EQ(loc.col, op->loc.col);
  }
  tile_module_free(m);
}

TEST(decompose, new_names_do_not_collide) {
  TileModule *m = parse("func @f(%x: tensor<4x8xf32>) -> (tensor<4x8xf32>, tensor<4x8xf32>) {\n"
                        "  %p.max = exp %x : tensor<4x8xf32>\n"
                        "  %p = softmax %p.max {dim = 1} : tensor<4x8xf32>\n"
                        "  %p.exp = softmax %p {dim = 0} : tensor<4x8xf32>\n"
                        "  return %p, %p.exp\n"
                        "}\n");
  REQUIRE(m != NULL);
  REQUIRE(decompose(m)); /* the verifier would refuse a name defined twice */
  char *text = tile_print_module_str(m);
  CHECK(strstr(text, "%p.max.2 = reduce %p.max {kind = max, dims = [1]}") != NULL);
  CHECK(strstr(text, "%p.exp.2 = exp %p.shifted") != NULL);
  CHECK(strstr(text, "%p.exp.max = reduce %p {kind = max, dims = [0]}") != NULL);
  CHECK(strstr(text, "  return %p, %p.exp\n") != NULL);
  free(text);
  tile_module_free(m);
}

TEST(decompose, unnamed_builder_ir_stays_unnamed) {
  TileModule *m = tile_module_new("jit");
  TileBuilder b;
  tile_builder_init(&b, m);
  TileType t = tile_type_tensor(TILE_ELEM_F32, 2, (int64_t[]){2, 3});
  TileFunc *f = tile_build_func(&b, "f", false, 1, &t);
  REQUIRE(f != NULL);
  TileNamedAttr dim = {"dim", tile_attr_int(1)};
  TileValue *x = f->body->args[0];
  TileValue *p = tile_build1(&b, TILE_OP_SOFTMAX, 1, &x, &(TileAttrDict){1, &dim}, NULL);
  REQUIRE(p != NULL);
  REQUIRE(tile_build_return(&b, 1, &p));
  REQUIRE(decompose(m));
  char *text = tile_print_module_str(m);
  CHECK_STREQ("func @f(%0: tensor<2x3xf32>) -> tensor<2x3xf32> {\n"
              "  %1 = reduce %0 {kind = max, dims = [1]} : tensor<2xf32>\n"
              "  %2 = broadcast %1 {dims = [0]} : tensor<2x3xf32>\n"
              "  %3 = sub %0, %2 : tensor<2x3xf32>\n"
              "  %4 = exp %3 : tensor<2x3xf32>\n"
              "  %5 = reduce %4 {kind = add, dims = [1]} : tensor<2xf32>\n"
              "  %6 = broadcast %5 {dims = [0]} : tensor<2x3xf32>\n"
              "  %7 = div %4, %6 : tensor<2x3xf32>\n"
              "  return %7\n"
              "}\n",
              text);
  CHECK(f->body->last->opnd[0].v == p); /* the return still uses the same value */
  free(text);
  tile_module_free(m);
}

TEST(decompose, ungrouped_attention_needs_no_reshape) {
  TileModule *m = parse("func @f(%q: tensor<1x2x3x4xf32>, %k: tensor<1x2x5x4xf32>)\n"
                        "    -> tensor<1x2x3x4xf32> {\n"
                        "  %o = attention %q, %k, %k {scale = 0.5} : tensor<1x2x3x4xf32>\n"
                        "  return %o\n"
                        "}\n");
  REQUIRE(m != NULL);
  REQUIRE(decompose(m));
  const TileBlock *body = m->funcs->body;
  CHECK_EQ(0, count_kind(body, TILE_OP_RESHAPE));
  CHECK_EQ(0, count_kind(body, TILE_OP_SELECT)); /* no causal mask asked for */
  CHECK_EQ(0, count_kind(body, TILE_OP_CONVERT));
  CHECK_EQ(2, count_kind(body, TILE_OP_DOT_GENERAL));
  tile_module_free(m);
}

TEST(decompose, a_module_without_composites_is_unchanged) {
  const char *src = "func @f(%x: tensor<4xf32>) -> tensor<4xf32> {\n"
                    "  %y = exp %x : tensor<4xf32>\n"
                    "  return %y\n"
                    "}\n";
  TileModule *m = parse(src);
  REQUIRE(m != NULL);
  REQUIRE(decompose(m));
  char *text = tile_print_module_str(m);
  CHECK_STREQ(src, text);
  free(text);
  tile_module_free(m);
}
