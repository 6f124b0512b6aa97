/* The builder: modules made through include/tile/builder.h print as the expected
 * text, verify, and read back; malformed requests give a message and leave the IR
 * as it was. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "tile/builder.h"
#include "tile/text.h"
#include "tile/verify.h"

static TileType tensor2(TileElem e, int64_t d0, int64_t d1) {
  return tile_type_tensor(e, 2, (int64_t[]){d0, d1});
}

/* Prints m, checks the verifier accepts it and that parsing the text and printing
 * again gives the same text; returns the text (the caller frees it). */
static char *print_checked(TileModule *m) {
  TileDiag d;
  tile_diag_init(&d, stderr, "<built>", NULL, 0);
  CHECK(tile_verify_module(m, &d));
  char *text = tile_print_module_str(m);
  tile_diag_init(&d, stderr, "<printed>", text, strlen(text));
  TileModule *back = tile_parse(text, strlen(text), "<printed>", &d);
  if (check_true(back != NULL, "the printed text parses", __FILE__, __LINE__)) {
    char *again = tile_print_module_str(back);
    CHECK_STREQ(text, again);
    free(again);
    tile_module_free(back);
  }
  return text;
}

static int count_ops(const TileBlock *blk) {
  int n = 0;
  for (const TileOp *op = blk->first; op; op = op->next) n++;
  return n;
}

TEST(builder, elementwise_func) {
  TileModule *m = tile_module_new("jit");
  TileBuilder b;
  tile_builder_init(&b, m);
  TileType t = tensor2(TILE_ELEM_F32, 8, 128);
  TileFunc *f = tile_build_func(&b, "f", false, 2, (TileType[]){t, t});
  REQUIRE(f != NULL);
  CHECK(b.block == f->body);
  CHECK(f->body->func == f);
  TileValue *s = tile_build1(&b, TILE_OP_ADD, 2, f->body->args, NULL, NULL);
  REQUIRE(s != NULL);
  CHECK(tile_type_eq(&t, &s->type));
  TileValue *e = tile_build1(&b, TILE_OP_EXP, 1, &s, NULL, NULL);
  REQUIRE(e != NULL);
  CHECK(tile_build_return(&b, 1, &e));
  CHECK_EQ(0, b.diag.nerrors);
  CHECK_EQ(1, f->nret);
  CHECK(tile_type_eq(&t, &f->ret[0]));

  /* Links: every op knows its block and neighbours. */
  const TileOp *first = f->body->first, *last = f->body->last;
  CHECK(first == s->def && first->prev == NULL && first->next == e->def);
  CHECK(last->kind == TILE_OP_RETURN && last->prev == e->def && last->next == NULL);
  for (const TileOp *op = first; op; op = op->next) CHECK(op->block == f->body);

  char *text = print_checked(m);
  CHECK_STREQ("func @f(%0: tensor<8x128xf32>, %1: tensor<8x128xf32>) -> tensor<8x128xf32> {\n"
              "  %2 = add %0, %1 : tensor<8x128xf32>\n"
              "  %3 = exp %2 : tensor<8x128xf32>\n"
              "  return %3\n"
              "}\n",
              text);
  free(text);
  tile_module_free(m);
}

TEST(builder, mesh_shardings_and_collective) {
  TileModule *m = tile_module_new("jit");
  TileBuilder b;
  tile_builder_init(&b, m);
  REQUIRE(tile_build_mesh(&b, "tp", 2, (int64_t[]){4, 4}, 2, (const char *[]){"x", "y"}));
  TileType x = tensor2(TILE_ELEM_BF16, 8, 128), w = tensor2(TILE_ELEM_BF16, 128, 256);
  TileFunc *f = tile_build_func(&b, "mlp", false, 2, (TileType[]){x, w});
  REQUIRE(f != NULL);
  TileAttr shard[] = {tile_attr_none(), tile_attr_ident(m, "x")};
  tile_build_arg_attr(&b, f, 1, "shard", tile_attr_array(m, 2, shard));
  tile_build_func_attr(&b, f, "mesh", tile_attr_symbol(m, "tp"));
  TileType h = tensor2(TILE_ELEM_F32, 8, 256);
  TileValue *p = tile_build1(&b, TILE_OP_MATMUL, 2, f->body->args, NULL, &h);
  REQUIRE(p != NULL);
  TileAttr axes[] = {tile_attr_ident(m, "x")};
  TileNamedAttr ar[] = {{"kind", tile_attr_ident(m, "add")},
                        {"axes", tile_attr_array(m, 1, axes)}};
  TileValue *y =
      tile_build1(&b, TILE_OP_ALL_REDUCE, 1, &p, &(TileAttrDict){2, ar}, NULL);
  REQUIRE(y != NULL);
  CHECK(tile_build_return(&b, 1, &y));
  CHECK_EQ(0, b.diag.nerrors);
  char *text = print_checked(m);
  CHECK_STREQ("mesh @tp = torus<4x4>(x, y)\n"
              "\n"
              "func @mlp(%0: tensor<8x128xbf16>, %1: tensor<128x256xbf16> {shard = [-, x]})"
              " -> tensor<8x256xf32> attributes {mesh = @tp} {\n"
              "  %2 = matmul %0, %1 : tensor<8x256xf32>\n"
              "  %3 = all_reduce %2 {kind = add, axes = [x]} : tensor<8x256xf32>\n"
              "  return %3\n"
              "}\n",
              text);
  free(text);
  tile_module_free(m);
}

TEST(builder, for_if_and_call) {
  TileModule *m = tile_module_new("jit");
  TileBuilder b;
  tile_builder_init(&b, m);
  TileType t = tensor2(TILE_ELEM_F32, 8, 128), i1 = tile_type_scalar(TILE_ELEM_I1);
  TileFunc *g = tile_build_func(&b, "double", false, 1, &t);
  REQUIRE(g != NULL);
  TileValue *twice = tile_build1(&b, TILE_OP_ADD, 2, (TileValue *[]){g->body->args[0],
                                                               g->body->args[0]}, NULL, NULL);
  REQUIRE(tile_build_return(&b, 1, &twice));

  TileFunc *f = tile_build_func(&b, "f", false, 2, (TileType[]){t, i1});
  REQUIRE(f != NULL);
  TileOp *loop = tile_build_for(&b, 0, 16, 1, 1, &f->body->args[0]);
  REQUIRE(loop != NULL);
  CHECK_EQ(1, loop->nres);
  CHECK_EQ(1, loop->nregion);
  TileBlock *body = loop->region[0];
  REQUIRE(body->nargs == 2);
  CHECK_EQ(TILE_TY_SCALAR, body->args[0]->type.kind);
  CHECK_EQ(TILE_ELEM_I32, body->args[0]->type.elem);
  CHECK(tile_type_eq(&t, &body->args[1]->type));
  CHECK(body->parent == loop);

  tile_builder_set_block(&b, body);
  TileOp *br = tile_build_if(&b, f->body->args[1], 1, &t);
  REQUIRE(br != NULL);
  CHECK_EQ(2, br->nregion);
  tile_builder_set_block(&b, br->region[0]);
  TileOp *call = tile_build_op(&b, TILE_OP_CALL, 1, &(TileUse){.v = body->args[1]}, 1,
                               (TileNamedAttr[]){{"callee", tile_attr_symbol(m, "double")}}, -1,
                               NULL);
  REQUIRE(call != NULL);
  CHECK_EQ(1, call->nres);
  CHECK(tile_build_yield(&b, 1, call->res));
  tile_builder_set_block(&b, br->region[1]);
  CHECK(tile_build_yield(&b, 1, &body->args[1]));
  tile_builder_set_block(&b, body);
  CHECK(tile_build_yield(&b, 1, br->res));

  tile_builder_set_block(&b, f->body);
  TileOp *side = tile_build_if(&b, f->body->args[1], 0, NULL);
  REQUIRE(side != NULL);
  tile_builder_set_block(&b, side->region[0]);
  REQUIRE(tile_build1(&b, TILE_OP_NEG, 1, loop->res, NULL, NULL));
  CHECK(tile_build_yield(&b, 0, NULL));
  tile_builder_set_block(&b, side->region[1]);
  CHECK(tile_build_yield(&b, 0, NULL));
  tile_builder_set_block(&b, f->body);
  CHECK(tile_build_return(&b, 1, loop->res));
  CHECK_EQ(0, b.diag.nerrors);

  char *text = print_checked(m);
  CHECK_STREQ("func @double(%0: tensor<8x128xf32>) -> tensor<8x128xf32> {\n"
              "  %1 = add %0, %0 : tensor<8x128xf32>\n"
              "  return %1\n"
              "}\n"
              "\n"
              "func @f(%0: tensor<8x128xf32>, %1: i1) -> tensor<8x128xf32> {\n"
              "  %2 = for %3 = 0 to 16 step 1 iter(%4 = %0) : tensor<8x128xf32> {\n"
              "    %5 = if %1 : tensor<8x128xf32> {\n"
              "      %6 = call @double(%4) : tensor<8x128xf32>\n"
              "      yield %6\n"
              "    } else {\n"
              "      yield %4\n"
              "    }\n"
              "    yield %5\n"
              "  }\n"
              "  if %1 {\n"
              "    %7 = neg %2 : tensor<8x128xf32>\n"
              "  }\n"
              "  return %2\n"
              "}\n",
              text);
  free(text);
  tile_module_free(m);
}

TEST(builder, kernel_with_accesses_and_dma) {
  TileModule *m = tile_module_new("jit");
  TileBuilder b;
  tile_builder_init(&b, m);
  TileType hbm = tile_type_buffer(TILE_SPACE_HBM, TILE_ELEM_F32, 2, (int64_t[]){64, 128});
  TileType vmem = tile_type_buffer(TILE_SPACE_VMEM, TILE_ELEM_F32, 3, (int64_t[]){2, 8, 128});
  TileFunc *k = tile_build_func(&b, "copy", true, 2, (TileType[]){hbm, hbm});
  REQUIRE(k != NULL);
  TileValue *in = k->body->args[0], *out = k->body->args[1];
  TileValue *buf = tile_build1(&b, TILE_OP_ALLOC, 0, NULL, NULL, &vmem);
  REQUIRE(buf != NULL);
  TileValue *sem = tile_build1(&b, TILE_OP_SEMAPHORE, 0, NULL, NULL, NULL);
  REQUIRE(sem != NULL);
  CHECK_EQ(TILE_TY_SEM, sem->type.kind);
  TileOp *loop = tile_build_for(&b, 0, 64, 8, 0, NULL);
  REQUIRE(loop != NULL);
  tile_builder_set_block(&b, loop->region[0]);
  TileValue *i = loop->region[0]->args[0];
  TileIndex src[] = {{.v = i}, {.c = 0}}, dst[] = {{.c = 0}, {.c = 0}, {.c = 0}};
  TileUse dma_in[] = {{in, true, 2, src}, {buf, true, 3, dst}, {sem}};
  TileNamedAttr shape[] = {{"shape", tile_attr_ints(m, 2, (int64_t[]){8, 128})}};
  TileOp *start = tile_build_op(&b, TILE_OP_DMA_START, 3, dma_in, 1, shape, -1, NULL);
  REQUIRE(start != NULL);
  CHECK_EQ(TILE_TY_TOKEN, start->res[0]->type.kind);
  REQUIRE(tile_build_op(&b, TILE_OP_DMA_WAIT, 2,
                        (TileUse[]){{sem}, {start->res[0]}}, 0, NULL, 0, NULL));
  TileType tile = tensor2(TILE_ELEM_F32, 8, 128);
  TileOp *ld = tile_build_op(&b, TILE_OP_LOAD, 1, &(TileUse){buf, true, 3, dst}, 0, NULL, 1,
                             &tile);
  REQUIRE(ld != NULL);
  TileValue *dbl = tile_build1(&b, TILE_OP_ADD, 2, (TileValue *[]){ld->res[0], ld->res[0]}, NULL,
                               NULL);
  REQUIRE(dbl != NULL);
  REQUIRE(tile_build_op(&b, TILE_OP_STORE, 2, (TileUse[]){{dbl}, {buf, true, 3, dst}}, 0, NULL,
                        0, NULL));
  TileUse dma_out[] = {{buf, true, 3, dst}, {out, true, 2, src}, {sem}};
  TileOp *back = tile_build_op(&b, TILE_OP_DMA_START, 3, dma_out, 1, shape, 1, NULL);
  REQUIRE(back != NULL);
  REQUIRE(tile_build_op(&b, TILE_OP_DMA_WAIT, 1, (TileUse[]){{sem}}, 0, NULL, 0, NULL));
  CHECK(tile_build_yield(&b, 0, NULL));
  tile_builder_set_block(&b, k->body);
  CHECK(tile_build_return(&b, 0, NULL));
  CHECK_EQ(0, b.diag.nerrors);
  CHECK_EQ(0, k->nret);

  char *text = print_checked(m);
  CHECK_STREQ("kernel @copy(%0: hbm<64x128xf32>, %1: hbm<64x128xf32>) {\n"
              "  %2 = alloc : vmem<2x8x128xf32>\n"
              "  %3 = semaphore : sem\n"
              "  for %4 = 0 to 64 step 8 {\n"
              "    %5 = dma_start %0[%4, 0], %2[0, 0, 0], %3 {shape = [8, 128]} : token\n"
              "    dma_wait %3, %5\n"
              "    %6 = load %2[0, 0, 0] : tensor<8x128xf32>\n"
              "    %7 = add %6, %6 : tensor<8x128xf32>\n"
              "    store %7, %2[0, 0, 0]\n"
              "    %8 = dma_start %2[0, 0, 0], %1[%4, 0], %3 {shape = [8, 128]} : token\n"
              "    dma_wait %3\n"
              "  }\n"
              "  return\n"
              "}\n",
              text);
  free(text);
  tile_module_free(m);
}

/* ---- malformed requests: a message, and the block as it was ---- */
TEST(builder, wrong_operand_count) {
  TileModule *m = tile_module_new("jit");
  TileBuilder b;
  tile_builder_init(&b, m);
  TileType t = tensor2(TILE_ELEM_F32, 4, 4);
  TileFunc *f = tile_build_func(&b, "f", false, 1, &t);
  REQUIRE(f != NULL);
  CHECK(tile_build1(&b, TILE_OP_ADD, 1, f->body->args, NULL, NULL) == NULL);
  CHECK_STREQ("add: takes 2 operands, got 1", b.diag.last);
  CHECK(tile_build1(&b, TILE_OP_CONCATENATE, 0, NULL, NULL, NULL) == NULL);
  CHECK_STREQ("concatenate: takes at least 1 operands, got 0", b.diag.last);
  CHECK(tile_build_op(&b, TILE_OP_DMA_WAIT, 0, NULL, 0, NULL, 0, NULL) == NULL);
  CHECK_STREQ("dma_wait: takes 1 to 2 operands, got 0", b.diag.last);
  CHECK_EQ(3, b.diag.nerrors);
  CHECK_EQ(0, count_ops(f->body));
  tile_module_free(m);
}

TEST(builder, bad_requests_do_not_crash) {
  TileModule *m = tile_module_new("jit");
  TileBuilder b;
  tile_builder_init(&b, m);
  TileType t = tensor2(TILE_ELEM_F32, 4, 4);
  TileValue *none = NULL;

  /* No insertion point yet. */
  CHECK(tile_build1(&b, TILE_OP_NEG, 1, &none, NULL, NULL) == NULL);
  CHECK(strstr(b.diag.last, "no insertion point") != NULL);

  TileFunc *f = tile_build_func(&b, "f", false, 1, &t);
  REQUIRE(f != NULL);
  TileValue *x = f->body->args[0];
  CHECK(tile_build_op(&b, (TileOpKind)(TILE_OP_COUNT + 7), 0, NULL, 0, NULL, 0, NULL) == NULL);
  CHECK(strstr(b.diag.last, "not in the op table") != NULL);
  CHECK(tile_build1(&b, TILE_OP_NEG, 1, &none, NULL, NULL) == NULL);
  CHECK_STREQ("neg: operand 1 is NULL", b.diag.last);
  CHECK(tile_build1(&b, TILE_OP_NEG, 1, NULL, NULL, NULL) == NULL);
  CHECK(tile_build_op(&b, TILE_OP_NEG, -1, NULL, 0, NULL, 1, NULL) == NULL);
  /* Result types the rule cannot infer must be given. */
  CHECK(tile_build1(&b, TILE_OP_RESHAPE, 1, &x, NULL, NULL) == NULL);
  /* A single-result shorthand for a two-result op. */
  CHECK(tile_build1(&b, TILE_OP_TOPK, 1, &x, &(TileAttrDict){1, (TileNamedAttr[]){
                                                 {"k", tile_attr_int(2)}}},
                    NULL) == NULL);
  CHECK(strstr(b.diag.last, "has 2 results, asked for 1") != NULL);
  /* A plain value where an access belongs, and the reverse. */
  CHECK(tile_build_op(&b, TILE_OP_LOAD, 1, &(TileUse){.v = x}, 0, NULL, 1, &t) == NULL);
  CHECK(strstr(b.diag.last, "must be a buffer access") != NULL);
  CHECK(tile_build_op(&b, TILE_OP_NEG, 1, &(TileUse){x, true, 1, (TileIndex[]){{.c = 0}}}, 0,
                      NULL, 1, NULL) == NULL);
  /* A type that is not a type. */
  TileType bad = t;
  bad.dims[1] = 0;
  CHECK(tile_build1(&b, TILE_OP_NEG, 1, &x, NULL, &bad) == NULL);
  CHECK(strstr(b.diag.last, "dimensions must be positive") != NULL);
  CHECK(tile_build_for(&b, 0, 4, 0, 0, NULL) == NULL);
  CHECK(tile_build_if(&b, x, 1, NULL) == NULL);
  CHECK(tile_build_op(&b, TILE_OP_CALL, 0, NULL, 1,
                      (TileNamedAttr[]){{"callee", tile_attr_symbol(m, "nowhere")}}, -1,
                      NULL) == NULL);
  CHECK(strstr(b.diag.last, "no function @nowhere") != NULL);
  CHECK(!tile_build_yield(&b, 0, NULL));
  CHECK(strstr(b.diag.last, "not the region") != NULL);
  CHECK_EQ(0, count_ops(f->body));

  /* Nothing may follow a return. */
  CHECK(tile_build_return(&b, 1, &x));
  CHECK(tile_build1(&b, TILE_OP_NEG, 1, &x, NULL, NULL) == NULL);
  CHECK(strstr(b.diag.last, "already ends with return") != NULL);
  CHECK_EQ(1, count_ops(f->body));

  /* No builder, no module: nothing to report to, but no crash either. */
  CHECK(tile_build1(NULL, TILE_OP_NEG, 1, &x, NULL, NULL) == NULL);
  CHECK(tile_build_func(NULL, "g", false, 0, NULL) == NULL);
  TileBuilder nob;
  tile_builder_init(&nob, NULL);
  CHECK(tile_build_func(&nob, "g", false, 0, NULL) == NULL);
  CHECK(strstr(nob.diag.last, "no module") != NULL);
  tile_module_free(m);
}

TEST(builder, attributes_are_checked_and_copied) {
  TileModule *m = tile_module_new("jit");
  TileBuilder b;
  tile_builder_init(&b, m);
  TileType t = tensor2(TILE_ELEM_F32, 4, 4);
  TileFunc *f = tile_build_func(&b, "f", false, 1, &t);
  REQUIRE(f != NULL);
  TileValue *x = f->body->args[0];
  TileAttrDict twice = {2, (TileNamedAttr[]){{"dim", tile_attr_int(0)}, {"dim", tile_attr_int(1)}}};
  CHECK(tile_build1(&b, TILE_OP_SOFTMAX, 1, &x, &twice, NULL) == NULL);
  CHECK(strstr(b.diag.last, "given twice") != NULL);
  TileAttrDict badname = {1, (TileNamedAttr[]){{"9dim", tile_attr_int(0)}}};
  CHECK(tile_build1(&b, TILE_OP_SOFTMAX, 1, &x, &badname, NULL) == NULL);
  TileAttrDict badident = {1, (TileNamedAttr[]){{"dir", tile_attr_ident(m, "not ok")}}};
  CHECK(tile_build1(&b, TILE_OP_COMPARE, 2, (TileValue *[]){x, x}, &badident, NULL) == NULL);
  CHECK(strstr(b.diag.last, "is not an identifier") != NULL);
  TileAttrDict nan_ident = {1, (TileNamedAttr[]){{"dir", tile_attr_ident(m, "nan")}}};
  CHECK(tile_build1(&b, TILE_OP_COMPARE, 2, (TileValue *[]){x, x}, &nan_ident, NULL) == NULL);
  TileAttrDict nomod = {1, (TileNamedAttr[]){{"dir", tile_attr_ident(NULL, "lt")}}};
  CHECK(tile_build1(&b, TILE_OP_COMPARE, 2, (TileValue *[]){x, x}, &nomod, NULL) == NULL);
  CHECK_EQ(0, count_ops(f->body));

  /* Strings handed in from temporary memory are copied. */
  char word[8];
  strcpy(word, "lt");
  TileAttrDict dir = {1, (TileNamedAttr[]){{"dir", {.kind = TILE_ATTR_IDENT, .s = word}}}};
  TileValue *c = tile_build1(&b, TILE_OP_COMPARE, 2, (TileValue *[]){x, x}, &dir, NULL);
  REQUIRE(c != NULL);
  strcpy(word, "gt");
  CHECK_STREQ("lt", tile_attr_get(&c->def->attrs, "dir")->s);
  CHECK_EQ(TILE_ELEM_I1, c->type.elem);

  /* Argument attributes replace one of the same name. */
  tile_build_arg_attr(&b, f, 0, "note", tile_attr_string(m, "one"));
  tile_build_arg_attr(&b, f, 0, "note", tile_attr_string(m, "two\n"));
  CHECK_EQ(1, f->arg_attrs[0].n);
  CHECK_STREQ("two\n", f->arg_attrs[0].items[0].val.s);
  int before = b.diag.nerrors;
  tile_build_arg_attr(&b, f, 1, "note", tile_attr_int(1));
  CHECK_EQ(before + 1, b.diag.nerrors);
  CHECK_STREQ("@f: parameter index 1 is out of range (it has 1 parameter)", b.diag.last);
  tile_module_free(m);
}

TEST(builder, meshes_and_functions_are_checked) {
  TileModule *m = tile_module_new("jit");
  TileBuilder b;
  tile_builder_init(&b, m);
  CHECK(tile_build_mesh(&b, "tp", 2, (int64_t[]){2, 4}, 2, (const char *[]){"x", "y"}));
  CHECK(!tile_build_mesh(&b, "tp", 1, (int64_t[]){2}, 1, (const char *[]){"x"}));
  CHECK(strstr(b.diag.last, "already exists") != NULL);
  CHECK(!tile_build_mesh(&b, "m", 2, (int64_t[]){2, 4}, 1, (const char *[]){"x"}));
  CHECK(!tile_build_mesh(&b, "m", 2, (int64_t[]){2, 4}, 2, (const char *[]){"x", "x"}));
  CHECK(!tile_build_mesh(&b, "m", 1, (int64_t[]){0}, 1, (const char *[]){"x"}));
  CHECK(!tile_build_mesh(&b, "m", 1, (int64_t[]){2}, 1, (const char *[]){NULL}));
  CHECK(!tile_build_mesh(&b, "bad name", 1, (int64_t[]){2}, 1, (const char *[]){"x"}));
  CHECK(tile_build_mesh(&b, "dp", 1, (int64_t[]){8}, 1, (const char *[]){"d"}));
  CHECK(m->meshes && m->meshes->next && !m->meshes->next->next);
  CHECK_STREQ("dp", m->meshes->next->name);

  TileType t = tensor2(TILE_ELEM_F32, 4, 4);
  TileFunc *f = tile_build_func(&b, "f", false, 1, &t);
  REQUIRE(f != NULL);
  CHECK(tile_build_func(&b, "f", false, 0, NULL) == NULL);
  CHECK(strstr(b.diag.last, "already exists") != NULL);
  CHECK(tile_build_func(&b, "g", false, 1, NULL) == NULL);
  CHECK(tile_build_func(&b, "g", false, 1, (TileType[]){{0}}) == NULL);
  CHECK(b.block == f->body);

  /* An if needs a scalar condition, not a tensor of i1. */
  TileValue *x = f->body->args[0];
  TileAttrDict lt = {1, (TileNamedAttr[]){{"dir", tile_attr_ident(m, "lt")}}};
  TileValue *mask = tile_build1(&b, TILE_OP_COMPARE, 2, (TileValue *[]){x, x}, &lt, NULL);
  REQUIRE(mask != NULL);
  CHECK(tile_build_if(&b, mask, 0, NULL) == NULL);
  CHECK_EQ(1, count_ops(f->body));
  CHECK(tile_build_return(&b, 1, &x));
  TileFunc *g = tile_build_func(&b, "g", false, 0, NULL);
  REQUIRE(g != NULL);
  TileValue *c = tile_build1(&b, TILE_OP_CONSTANT, 0, NULL,
                             &(TileAttrDict){1, (TileNamedAttr[]){{"value", tile_attr_float(1.5)}}},
                             &t);
  REQUIRE(c != NULL);
  CHECK(tile_build_return(&b, 1, &c));
  CHECK_EQ(1, g->nret);

  /* A kernel returns nothing. */
  TileFunc *k = tile_build_func(&b, "k", true, 0, NULL);
  REQUIRE(k != NULL);
  TileValue *s = tile_build1(&b, TILE_OP_SEMAPHORE, 0, NULL, NULL, NULL);
  CHECK(!tile_build_return(&b, 1, &s));
  CHECK(strstr(b.diag.last, "returns nothing") != NULL);
  CHECK(tile_build_return(&b, 0, NULL));
  tile_module_free(m);
}

TEST(builder, yield_must_match_the_region) {
  TileModule *m = tile_module_new("jit");
  TileBuilder b;
  tile_builder_init(&b, m);
  TileType t = tensor2(TILE_ELEM_F32, 4, 4), u = tensor2(TILE_ELEM_F32, 2, 8);
  TileFunc *f = tile_build_func(&b, "f", false, 2, (TileType[]){t, u});
  REQUIRE(f != NULL);
  TileOp *loop = tile_build_for(&b, 0, 4, 1, 1, &f->body->args[0]);
  REQUIRE(loop != NULL);
  tile_builder_set_block(&b, loop->region[0]);
  CHECK(!tile_build_yield(&b, 0, NULL));
  CHECK(strstr(b.diag.last, "has 1 results, got 0") != NULL);
  CHECK(!tile_build_yield(&b, 1, &f->body->args[1]));
  CHECK(strstr(b.diag.last, "is tensor<4x4xf32>, got tensor<2x8xf32>") != NULL);
  CHECK(!tile_build_return(&b, 0, NULL));
  CHECK(strstr(b.diag.last, "not a function body") != NULL);
  CHECK_EQ(0, count_ops(loop->region[0]));
  CHECK(tile_build_yield(&b, 1, &loop->region[0]->args[1]));
  CHECK_EQ(1, count_ops(loop->region[0]));
  tile_module_free(m);
}
