/* Locations of values and uses: the parser records where each parameter, result,
 * block argument, operand and index stands; the builder leaves them zero; and the
 * verifier reports at the most precise one it has (a parameter, an operand, an
 * index), falling back to the op's or the function's location when there is none. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "tile/builder.h"
#include "tile/text.h"
#include "tile/verify.h"

static TileModule *parse_ok(const char *src) {
  TileDiag d;
  tile_diag_init(&d, NULL, "t.tile", src, strlen(src));
  return tile_parse(src, strlen(src), "t.tile", &d);
}

/* Every diagnostic the verifier prints for m (malloc'ed); src is shown in them. */
static char *verify_out(const TileModule *m, const char *src) {
  char *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&out, &len);
  TileDiag d;
  tile_diag_init(&d, f, "t.tile", src, src ? strlen(src) : 0);
  tile_verify_module(m, &d);
  fclose(f);
  return out;
}

/* src parses, and the verifier's output holds want (a whole `file:line:col: error:
 * message` line, so the position is checked with the text). */
static void expect_at(const char *src, const char *want, const char *file, int line) {
  TileModule *m = parse_ok(src);
  if (!check_true(m != NULL, "the test program parses", file, line)) return;
  char *out = verify_out(m, src);
  if (!strstr(out, want)) {
    char msg[4096];
    snprintf(msg, sizeof msg, "expected \"%s\" in:\n%s", want, out);
    check_true(false, msg, file, line);
  }
  free(out);
  tile_module_free(m);
}
#define AT(src, want) expect_at((src), (want), __FILE__, __LINE__)

#define LOC_IS(loc, l, c)         \
  do {                            \
    CHECK_EQ((l), (loc).line);    \
    CHECK_EQ((c), (loc).col);     \
  } while (0)

TEST(locations, parser_sets_values_and_uses) {
  static const char src[] =
      "func @f(%a: tensor<4xf32>,\n"                                        /* 1 */
      "        %n: i32) -> tensor<4xf32> {\n"                                 /* 2 */
      "  %c = neg %a : tensor<4xf32>\n"                                     /* 3 */
      "  neg %c : tensor<4xf32>\n"                                          /* 4 */
      "  %r = for %i = 0 to 2 step 1 iter(%x = %c) : tensor<4xf32> {\n"     /* 5 */
      "    yield %x\n"                                                      /* 6 */
      "  }\n"                                                               /* 7 */
      "  return %r\n"                                                       /* 8 */
      "}\n"                                                                 /* 9 */
      "kernel @k(%buf: vmem<2x4xf32>, %j: i32) {\n"                         /* 10 */
      "  %t = load %buf[%j, 1] : tensor<4xf32>\n"                           /* 11 */
      "  return\n"                                                          /* 12 */
      "}\n";
  TileModule *m = parse_ok(src);
  REQUIRE(m != NULL);
  TileBlock *body = m->funcs->body;
  LOC_IS(body->args[0]->loc, 1, 9);
  LOC_IS(body->args[1]->loc, 2, 9);
  CHECK_STREQ("t.tile", body->args[1]->loc.file);
  TileOp *neg = body->first;
  LOC_IS(neg->res[0]->loc, 3, 3);   /* the result's name */
  LOC_IS(neg->opnd[0].loc, 3, 12);  /* the operand */
  TileOp *unnamed = neg->next;
  LOC_IS(unnamed->res[0]->loc, 4, 3); /* no name: where its op stands */
  LOC_IS(unnamed->opnd[0].loc, 4, 7);
  TileOp *loop = unnamed->next;
  TileBlock *lb = loop->region[0];
  LOC_IS(loop->res[0]->loc, 5, 3);
  LOC_IS(lb->args[0]->loc, 5, 12); /* the induction variable */
  LOC_IS(lb->args[1]->loc, 5, 36); /* the carried value */
  LOC_IS(loop->opnd[0].loc, 5, 41); /* its initial value, a use */
  LOC_IS(lb->first->opnd[0].loc, 6, 11);
  LOC_IS(body->last->opnd[0].loc, 8, 10);

  TileBlock *kb = m->funcs->next->body;
  TileUse *access = &kb->first->opnd[0];
  LOC_IS(access->loc, 11, 13);
  REQUIRE(access->nidx == 2);
  LOC_IS(access->idx[0].loc, 11, 18); /* an SSA index */
  LOC_IS(access->idx[1].loc, 11, 22); /* a constant index */
  tile_module_free(m);
}

TEST(locations, builder_leaves_them_zero) {
  TileModule *m = tile_module_new("jit");
  TileBuilder b;
  tile_builder_init(&b, m);
  TileType t = tile_type_tensor(TILE_ELEM_F32, 1, (int64_t[]){4});
  TileFunc *f = tile_build_func(&b, "f", false, 1, &t);
  REQUIRE(f != NULL);
  TileValue *x = f->body->args[0];
  TileValue *y = tile_build1(&b, TILE_OP_NEG, 1, &x, NULL, NULL);
  REQUIRE(y != NULL);
  CHECK_EQ(0, x->loc.line);
  CHECK_EQ(0, y->loc.line);
  CHECK_EQ(0, y->def->opnd[0].loc.line);
  CHECK(y->def->opnd[0].loc.file == NULL);
  tile_module_free(m);
}

TEST(locations, parameter_errors_stand_at_the_parameter) {
  AT("mesh @m = torus<4>(x)\n"
     "func @f(%a: tensor<4xf32>,\n"
     "        %b: tensor<6xf32> {shard = [x]}) {\n"
     "  return\n"
     "}\n",
     "t.tile:3:9: error: sharding of parameter '%b' of @f: dim 0 (size 6) is not divisible by "
     "4, the size of its axes\n"
     "        %b: tensor<6xf32> {shard = [x]}) {\n"
     "        ^\n");
  AT("func @f(%a: f32, %b: f32 {donate = 1}) {\n  return\n}\n",
     "t.tile:1:18: error: unknown attribute 'donate' on parameter '%b' of @f (a parameter takes "
     "only 'shard')\n");
}

TEST(locations, dominance_errors_stand_at_the_use) {
  AT("func @f(%a: f32) -> f32 {\n"
     "  %r = add %a, %s : f32\n"
     "  %s = neg %a : f32\n"
     "  return %r\n"
     "}\n",
     "t.tile:2:16: error: value '%s' is used before it is defined\n"
     "  %r = add %a, %s : f32\n"
     "               ^\n");
  /* An index is a use of its own. */
  AT("kernel @k(%b: vmem<4xf32>) {\n"
     "  %t = load %b[%i] : f32\n"
     "  %i = constant {value = 0} : i32\n"
     "  return\n"
     "}\n",
     "t.tile:2:16: error: value '%i' is used before it is defined\n");
  AT("func @f(%p: i1, %a: f32) -> f32 {\n"
     "  if %p {\n"
     "    %t = neg %a : f32\n"
     "  }\n"
     "  return %t\n"
     "}\n",
     "t.tile:5:10: error: value '%t' defined inside a region is used outside it\n");
}

TEST(locations, operand_errors_stand_at_the_operand) {
  AT("func @f(%a: f32, %b: tensor<4x4xf32>) -> tensor<4x4xf32> {\n"
     "  %c = matmul %b, %a : tensor<4x4xf32>\n"
     "  return %c\n"
     "}\n",
     "t.tile:2:19: error: 'matmul' operand 2 must be a tensor, got f32\n");
  AT("kernel @k(%b: vmem<4x8xf32>, %x: f32) {\n"
     "  %t = load %b[0, %x] : f32\n"
     "  return\n"
     "}\n",
     "t.tile:2:19: error: 'load' index 2 of operand 1 must be an integer scalar, got f32\n");
  AT("kernel @k(%b: vmem<4x8xf32>) {\n  %u = load %b[4, 0] : f32\n  return\n}\n",
     "t.tile:2:16: error: 'load' index 1 of operand 1 is 4, outside [0, 4) of vmem<4x8xf32>\n");
  AT("kernel @k(%b: vmem<4x8xf32>) {\n  %v = load %b : f32\n  return\n}\n",
     "t.tile:2:13: error: 'load' operand 1 must be a buffer access");
  AT("func @f(%a: f32, %b: f32) -> f32 {\n  %c = exp %a[0] : f32\n  return %c\n}\n",
     "t.tile:2:12: error: 'exp' operand 1 takes no index list");
  AT("func @g(%x: f32) -> f32 {\n  return %x\n}\n"
     "func @f(%a: i32) -> f32 {\n  %c = call @g(%a) : f32\n  return %c\n}\n",
     "t.tile:5:16: error: 'call' argument 1 has type i32 but @g takes f32\n");
  AT("func @f(%a: f32, %b: i32) -> (f32, f32) {\n  return %a, %b\n}\n",
     "t.tile:2:14: error: 'return' value 2 has type i32 but @f returns f32\n");
  AT("func @f(%a: f32, %n: i32) -> f32 {\n"
     "  %r = for %i = 0 to 2 step 1 iter(%x = %a) : f32 {\n"
     "    yield %n\n"
     "  }\n"
     "  return %r\n"
     "}\n",
     "t.tile:3:11: error: 'yield' value 1 has type i32 but the enclosing 'for' result 1 has "
     "type f32\n");
}

/* Where a value or use has no location (IR made or changed by hand), messages
 * stand at its op or function instead. */
TEST(locations, fall_back_to_the_op) {
  static const char src[] =
      "mesh @m = torus<4>(x)\n"
      "func @f(%a: tensor<6xf32> {shard = [x]}, %b: f32) -> f32 {\n"
      "  %r = add %b, %s : f32\n"
      "  %s = neg %b : f32\n"
      "  %c = matmul %b, %b : f32\n"
      "  return %r\n"
      "}\n";
  TileModule *m = parse_ok(src);
  REQUIRE(m != NULL);
  TileBlock *body = m->funcs->body;
  body->args[0]->loc = (TileLoc){0};
  body->first->opnd[1].loc = (TileLoc){0};
  body->first->next->next->opnd[0].loc = (TileLoc){0};
  char *out = verify_out(m, src);
  CHECK(strstr(out, "t.tile:2:1: error: sharding of parameter '%a' of @f: dim 0 (size 6)") !=
        NULL);
  CHECK(strstr(out, "t.tile:3:8: error: value '%s' is used before it is defined") != NULL);
  CHECK(strstr(out, "t.tile:5:8: error: 'matmul' operand 1 must be a tensor, got f32") != NULL);
  free(out);
  tile_module_free(m);
}
