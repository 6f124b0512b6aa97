/* The rewrite helpers (include/tile/rewrite.h): moving and erasing ops, replacing
 * and counting uses in nested regions and access indices, handing a result to
 * another op, attributes, building before an op, and fresh names. Each edit is
 * checked by printing the module and verifying it. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "parse_fixture.h"
#include "tile/rewrite.h"
#include "tile/text.h"
#include "tile/verify.h"


/* Silent: some tests expect the verifier to refuse. */
static bool verifies(const TileModule *m) {
  TileDiag d;
  tile_diag_init(&d, NULL, "<rewritten>", NULL, 0);
  return tile_verify_module(m, &d) && d.nerrors == 0;
}

/* The op of f's body (or nested block) defining the value named name. */
static TileOp *find_def(TileBlock *blk, const char *name) {
  for (TileOp *op = blk->first; op; op = op->next) {
    for (int i = 0; i < op->nres; i++)
      if (op->res[i]->name && strcmp(op->res[i]->name, name) == 0) return op;
    for (int r = 0; r < op->nregion; r++) {
      TileOp *in = find_def(op->region[r], name);
      if (in) return in;
    }
  }
  return NULL;
}

static TileValue *value(TileFunc *f, const char *name) {
  for (int i = 0; i < f->body->nargs; i++)
    if (strcmp(f->body->args[i]->name, name) == 0) return f->body->args[i];
  TileOp *op = find_def(f->body, name);
  for (int i = 0; op && i < op->nres; i++)
    if (strcmp(op->res[i]->name, name) == 0) return op->res[i];
  return NULL;
}

static void check_text(TileModule *m, const char *want) {
  char *got = tile_print_module_str(m);
  CHECK_STREQ(want, got);
  free(got);
}

static const char *LOOP =
    "func @f(%a: tensor<4xf32>, %b: tensor<4xf32>, %n: i32) -> tensor<4xf32> {\n"
    "  %s = add %a, %b : tensor<4xf32>\n"
    "  %t = exp %s : tensor<4xf32>\n"
    "  %r = for %i = 0 to 3 step 1 iter(%acc = %s) : tensor<4xf32> {\n"
    "    %u = mul %acc, %s : tensor<4xf32>\n"
    "    yield %u\n"
    "  }\n"
    "  %z = add %r, %t : tensor<4xf32>\n"
    "  return %z\n"
    "}\n";

TEST(rewrite, count_and_replace_uses_in_regions) {
  TileModule *m = parse(LOOP);
  REQUIRE(m != NULL);
  TileFunc *f = m->funcs;
  TileValue *s = value(f, "s"), *a = value(f, "a");
  REQUIRE(s && a);
  CHECK_EQ(3, tile_count_uses(f, s)); /* exp, the for's init, the mul in the body */
  CHECK_EQ(1, tile_count_uses(f, a));
  CHECK_EQ(3, tile_replace_all_uses(f, s, a));
  CHECK_EQ(0, tile_count_uses(f, s));
  CHECK_EQ(4, tile_count_uses(f, a));
  CHECK_EQ(0, tile_replace_all_uses(f, a, a)); /* a value for itself changes nothing */
  /* %s is unused now and can go. */
  tile_op_erase(s->def);
  CHECK(verifies(m));
  check_text(m,
             "func @f(%a: tensor<4xf32>, %b: tensor<4xf32>, %n: i32) -> tensor<4xf32> {\n"
             "  %t = exp %a : tensor<4xf32>\n"
             "  %r = for %i = 0 to 3 step 1 iter(%acc = %a) : tensor<4xf32> {\n"
             "    %u = mul %acc, %a : tensor<4xf32>\n"
             "    yield %u\n"
             "  }\n"
             "  %z = add %r, %t : tensor<4xf32>\n"
             "  return %z\n"
             "}\n");
  tile_module_free(m);
}

TEST(rewrite, uses_in_access_indices) {
  TileModule *m = parse("kernel @k(%buf: hbm<4x8x128xf32>) {\n"
                        "  %v = alloc : vmem<2x8x128xf32>\n"
                        "  %sem = semaphore : sem\n"
                        "  %i = constant {value = 1} : i32\n"
                        "  %j = constant {value = 0} : i32\n"
                        "  %t = dma_start %buf[%i, 0, 0], %v[%i, 0, 0], %sem {shape = [1, 8, 128]} "
                        ": token\n"
                        "  dma_wait %sem, %t\n"
                        "  return\n"
                        "}\n");
  REQUIRE(m != NULL);
  TileFunc *f = m->funcs;
  TileValue *i = value(f, "i"), *j = value(f, "j");
  CHECK_EQ(2, tile_count_uses(f, i));
  CHECK_EQ(2, tile_replace_all_uses(f, i, j));
  CHECK_EQ(2, tile_count_uses(f, j));
  CHECK(verifies(m));
  tile_module_free(m);
}

TEST(rewrite, erase_insert_and_move) {
  TileModule *m = parse(LOOP);
  REQUIRE(m != NULL);
  TileFunc *f = m->funcs;
  TileOp *t = find_def(f->body, "t"), *z = find_def(f->body, "z");
  TileOp *first = f->body->first;
  /* Move %t to just before %z, then back to the front. */
  tile_op_erase(t);
  CHECK(t->block == NULL && t->prev == NULL && t->next == NULL);
  tile_op_insert_before(t, z);
  CHECK(t->block == f->body && t->next == z && z->prev == t);
  CHECK(verifies(m));
  tile_op_erase(t);
  tile_op_insert_before(t, first);
  CHECK(f->body->first == t && t->prev == NULL && t->next == first);
  CHECK(!verifies(m)); /* %t now uses %s before it is defined */
  tile_op_erase(t);
  tile_op_insert_before(t, z);

  /* Erasing the last op of a block fixes the block's last pointer. */
  TileOp *ret = f->body->last;
  tile_op_erase(ret);
  CHECK(f->body->last == z && z->next == NULL);
  tile_op_insert_before(ret, z);
  tile_op_erase(z);
  tile_op_insert_before(z, ret);
  CHECK(f->body->last == ret);
  CHECK(verifies(m));

  /* Moving a whole block's ops keeps their order. */
  TileBlock holder = {0};
  TileOp *s = find_def(f->body, "s");
  tile_op_erase(s);
  tile_op_erase(t);
  s->block = t->block = &holder;
  holder.first = s;
  holder.last = t;
  s->next = t;
  t->prev = s;
  TileOp *loop = find_def(f->body, "r");
  tile_block_move_before(&holder, loop);
  CHECK(holder.first == NULL && holder.last == NULL);
  CHECK(f->body->first == s && s->next == t && t->next == loop);
  CHECK(s->block == f->body && t->block == f->body);
  CHECK(verifies(m));
  tile_module_free(m);
}

TEST(rewrite, take_result) {
  TileModule *m = parse(LOOP);
  REQUIRE(m != NULL);
  TileFunc *f = m->funcs;
  TileValue *t = value(f, "t"), *s = value(f, "s");
  TileOp *texp = t->def;
  /* Build `%t.new = log %s` before exp, then let it define %t in exp's place. */
  TileBuilder b;
  tile_builder_init(&b, m);
  TileInsertPoint ip;
  tile_insert_begin(&ip, &b, texp);
  TileValue *l = tile_build1(&b, TILE_OP_LOG, 1, &s, NULL, NULL);
  REQUIRE(l != NULL);
  tile_insert_end(&ip, &b, true);
  CHECK(b.block == NULL); /* the builder's own insertion block comes back */
  CHECK(l->def->block == f->body && l->def->next == texp);

  CHECK(!tile_op_take_result(l->def, 1, t));                   /* no result 2 */
  CHECK(!tile_op_take_result(l->def, 0, f->body->args[2]));    /* an i32 parameter */
  CHECK(!tile_op_take_result(l->def, 0, f->body->args[0]));    /* a block argument */
  CHECK(tile_op_take_result(l->def, 0, t));
  CHECK(t->def == l->def && t->index == 0);
  tile_op_erase(texp);
  CHECK(verifies(m));
  check_text(m,
             "func @f(%a: tensor<4xf32>, %b: tensor<4xf32>, %n: i32) -> tensor<4xf32> {\n"
             "  %s = add %a, %b : tensor<4xf32>\n"
             "  %t = log %s : tensor<4xf32>\n"
             "  %r = for %i = 0 to 3 step 1 iter(%acc = %s) : tensor<4xf32> {\n"
             "    %u = mul %acc, %s : tensor<4xf32>\n"
             "    yield %u\n"
             "  }\n"
             "  %z = add %r, %t : tensor<4xf32>\n"
             "  return %z\n"
             "}\n");
  tile_module_free(m);
}

TEST(rewrite, build_before_an_op_in_a_region) {
  TileModule *m = parse(LOOP);
  REQUIRE(m != NULL);
  TileFunc *f = m->funcs;
  TileOp *u = find_def(f->body, "u");
  TileBlock *body = u->block;
  TileValue *acc = body->args[1];
  TileBuilder b;
  tile_builder_init(&b, m);
  b.block = f->body;

  /* Dropped: nothing changes, and the builder's block is restored. */
  TileInsertPoint ip;
  tile_insert_begin(&ip, &b, u);
  CHECK(tile_build1(&b, TILE_OP_NEG, 1, &acc, NULL, NULL) != NULL);
  tile_insert_end(&ip, &b, false);
  CHECK(b.block == f->body);
  CHECK(body->first == u);

  /* Kept: %acc.neg = neg %acc lands before %u, which then uses it. */
  tile_insert_begin(&ip, &b, u);
  TileValue *neg = tile_build1(&b, TILE_OP_NEG, 1, &acc, NULL, NULL);
  REQUIRE(neg != NULL);
  tile_insert_end(&ip, &b, true);
  TileNameSet names;
  tile_names_init(&names, m, f);
  neg->name = tile_names_fresh(&names, "acc", "neg");
  tile_names_free(&names);
  u->opnd[0].v = neg;
  CHECK(verifies(m));
  check_text(m,
             "func @f(%a: tensor<4xf32>, %b: tensor<4xf32>, %n: i32) -> tensor<4xf32> {\n"
             "  %s = add %a, %b : tensor<4xf32>\n"
             "  %t = exp %s : tensor<4xf32>\n"
             "  %r = for %i = 0 to 3 step 1 iter(%acc = %s) : tensor<4xf32> {\n"
             "    %acc.neg = neg %acc : tensor<4xf32>\n"
             "    %u = mul %acc.neg, %s : tensor<4xf32>\n"
             "    yield %u\n"
             "  }\n"
             "  %z = add %r, %t : tensor<4xf32>\n"
             "  return %z\n"
             "}\n");
  tile_module_free(m);
}

TEST(rewrite, collective_built_before_an_op_finds_the_mesh) {
  /* Two meshes: only the function's {mesh = @b} names the one the all_reduce uses,
   * so the scratch block must stand in the function. */
  TileModule *m = parse("mesh @a = torus<2>(p)\n"
                        "mesh @b = torus<4>(x)\n"
                        "func @f(%v: tensor<8xf32>) -> tensor<8xf32> attributes {mesh = @b} {\n"
                        "  %w = exp %v : tensor<8xf32>\n"
                        "  return %w\n"
                        "}\n");
  REQUIRE(m != NULL);
  TileFunc *f = m->funcs;
  TileBuilder b;
  tile_builder_init(&b, m);
  TileInsertPoint ip;
  TileOp *w = f->body->first;
  tile_insert_begin(&ip, &b, w);
  TileNamedAttr attrs[2] = {{"kind", tile_attr_ident(m, "add")},
                            {"axes", tile_attr_array(m, 1, &(TileAttr){.kind = TILE_ATTR_IDENT,
                                                                        .s = "x"})}};
  TileUse use = {.v = f->body->args[0]};
  TileOp *ar = tile_build_op(&b, TILE_OP_ALL_REDUCE, 1, &use, 2, attrs, 1, NULL);
  CHECK(ar != NULL);
  tile_insert_end(&ip, &b, ar != NULL);
  CHECK(verifies(m));
  tile_module_free(m);
}

TEST(rewrite, set_attr) {
  TileModule *m = parse("mesh @m = torus<4>(x)\n"
                        "func @f(%v: tensor<8x4xf32>) -> tensor<8x4xf32> {\n"
                        "  %w = exp %v : tensor<8x4xf32>\n"
                        "  return %w\n"
                        "}\n");
  REQUIRE(m != NULL);
  TileOp *w = m->funcs->body->first;
  TileAttr ax[2] = {{.kind = TILE_ATTR_IDENT, .s = "x"}, {.kind = TILE_ATTR_NONE}};
  tile_op_set_attr(m, w, "shard", tile_attr_array(m, 2, ax));
  CHECK_EQ(1, w->attrs.n);
  TileAttr swapped[2] = {ax[1], ax[0]};
  tile_op_set_attr(m, w, "shard", tile_attr_array(m, 2, swapped)); /* replaces */
  CHECK_EQ(1, w->attrs.n);
  CHECK(verifies(m));
  check_text(m, "mesh @m = torus<4>(x)\n"
                "\n"
                "func @f(%v: tensor<8x4xf32>) -> tensor<8x4xf32> {\n"
                "  %w = exp %v {shard = [-, x]} : tensor<8x4xf32>\n"
                "  return %w\n"
                "}\n");
  tile_module_free(m);
}

TEST(rewrite, fresh_names) {
  TileModule *m = parse("func @f(%p: tensor<4xf32>) -> tensor<4xf32> {\n"
                        "  %p.max = exp %p : tensor<4xf32>\n"
                        "  %p.max.2 = exp %p.max : tensor<4xf32>\n"
                        "  %r = for %i = 0 to 2 step 1 iter(%p.sum = %p.max.2) : tensor<4xf32> {\n"
                        "    yield %p.sum\n"
                        "  }\n"
                        "  return %r\n"
                        "}\n");
  REQUIRE(m != NULL);
  TileNameSet s;
  tile_names_init(&s, m, m->funcs);
  /* Parameters, results, the induction variable and carried values are all taken. */
  CHECK(tile_names_has(&s, "p") && tile_names_has(&s, "p.max") && tile_names_has(&s, "i"));
  CHECK(tile_names_has(&s, "p.sum") && tile_names_has(&s, "r"));
  CHECK(!tile_names_has(&s, "p.exp"));
  CHECK_STREQ("p.exp", tile_names_fresh(&s, "p", "exp"));
  CHECK_STREQ("p.exp.2", tile_names_fresh(&s, "p", "exp"));
  CHECK_STREQ("p.max.3", tile_names_fresh(&s, "p", "max"));
  CHECK_STREQ("p.sum.2", tile_names_fresh(&s, "p", "sum"));
  CHECK(tile_names_fresh(&s, NULL, "exp") == NULL);
  /* Many names: the set grows and keeps every one. */
  char buf[32];
  for (int i = 0; i < 500; i++) {
    snprintf(buf, sizeof buf, "q%d", i);
    tile_names_fresh(&s, buf, "x");
  }
  CHECK(tile_names_has(&s, "q0.x") && tile_names_has(&s, "q499.x"));
  CHECK(tile_names_has(&s, "p.exp.2"));
  tile_names_free(&s);
  tile_module_free(m);
}
