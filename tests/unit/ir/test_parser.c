/* The .tile parser: the IR it builds (op kinds, operand links, types, attributes,
 * locations, regions, meshes) and its errors (exact text and position, several per
 * file, recovery), plus inputs meant to break it: binary bytes, NULs, truncation,
 * huge numbers, deep nesting. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "tile/diag.h"
#include "tile/ir.h"
#include "tile/ops.h"
#include "tile/text.h"

/* Parses src; *errs (if given) gets every message, without source lines (the
 * diagnostics get no source text), for exact comparison. */
static TileModule *parse_n(const char *src, size_t len, char **errs, int *nerrors) {
  char *buf = NULL;
  size_t size = 0;
  FILE *out = open_memstream(&buf, &size);
  TileDiag d;
  tile_diag_init(&d, out, "t.tile", NULL, 0);
  TileModule *m = tile_parse(src, len, "t.tile", &d);
  fclose(out);
  if (nerrors) *nerrors = d.nerrors;
  if (errs) *errs = buf;
  else free(buf);
  return m;
}

static TileModule *parse(const char *src) { return parse_n(src, strlen(src), NULL, NULL); }

/* The messages for src, which must not parse. */
static char *errors_of(const char *src) {
  char *errs = NULL;
  int n = 0;
  TileModule *m = parse_n(src, strlen(src), &errs, &n);
  CHECK(m == NULL);
  CHECK(n > 0);
  tile_module_free(m);
  return errs;
}

/* Checks that src fails with exactly the messages want. */
static void check_errors(const char *src, const char *want) {
  char *got = errors_of(src);
  CHECK_STREQ(want, got);
  free(got);
}

static TileOp *nth_op(TileBlock *b, int n) {
  TileOp *op = b->first;
  while (op && n-- > 0) op = op->next;
  return op;
}

static int count_ops(const TileBlock *b) {
  int n = 0;
  for (const TileOp *op = b->first; op; op = op->next) n++;
  return n;
}

static const char *type_str(const TileType *t) {
  static char buf[128];
  tile_type_format(t, buf, sizeof buf);
  return buf;
}

static const char mlp_src[] =
    "mesh @tp = torus<4x4>(x, y)\n"
    "\n"
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
    "}\n";

TEST(parser, mlp_structure) {
  TileModule *m = parse(mlp_src);
  REQUIRE(m != NULL);
  REQUIRE(m->meshes != NULL);
  CHECK_STREQ("tp", m->meshes->name);
  REQUIRE(m->funcs != NULL);
  TileFunc *f = m->funcs;
  CHECK(f->next == NULL);
  CHECK_STREQ("mlp", f->name);
  CHECK(!f->is_kernel);
  CHECK_EQ(3, f->loc.line);
  CHECK_EQ(1, f->loc.col);
  CHECK_STREQ("t.tile", f->loc.file);

  /* parameters: block arguments with types and attributes */
  TileBlock *body = f->body;
  CHECK(body->func == f);
  CHECK(body->parent == NULL);
  REQUIRE(body->nargs == 3);
  CHECK_STREQ("x", body->args[0]->name);
  CHECK_STREQ("tensor<4096x16384xbf16>", type_str(&body->args[1]->type));
  for (int i = 0; i < 3; i++) {
    CHECK(body->args[i]->def == NULL);
    CHECK(body->args[i]->block == body);
    CHECK_EQ(i, body->args[i]->index);
  }
  REQUIRE(f->arg_attrs != NULL);
  CHECK_EQ(0, f->arg_attrs[0].n);
  const TileAttr *shard = tile_attr_get(&f->arg_attrs[1], "shard");
  REQUIRE(shard != NULL);
  REQUIRE(shard->kind == TILE_ATTR_ARRAY && shard->n == 2);
  CHECK_EQ(TILE_ATTR_NONE, shard->elems[0].kind);
  CHECK_EQ(TILE_ATTR_IDENT, shard->elems[1].kind);
  CHECK_STREQ("x", shard->elems[1].s);
  const TileAttr *mesh = tile_attr_get(&f->attrs, "mesh");
  REQUIRE(mesh != NULL);
  CHECK_EQ(TILE_ATTR_SYMBOL, mesh->kind);
  CHECK_STREQ("tp", mesh->s);
  REQUIRE(f->nret == 1);
  CHECK_STREQ("tensor<8x4096xbf16>", type_str(&f->ret[0]));

  /* ops in order, linked to their block and to each other */
  static const int kinds[] = {TILE_OP_MATMUL, TILE_OP_GELU,    TILE_OP_MATMUL,
                              TILE_OP_ALL_REDUCE, TILE_OP_CONVERT, TILE_OP_RETURN};
  REQUIRE(count_ops(body) == 6);
  TileOp *prev = NULL;
  int i = 0;
  for (TileOp *op = body->first; op; op = op->next, i++) {
    CHECK_EQ(kinds[i], op->kind);
    CHECK(op->block == body);
    CHECK(op->prev == prev);
    CHECK_EQ(7 + i, op->loc.line);
    prev = op;
  }
  CHECK(body->last == prev);

  TileOp *h = nth_op(body, 0), *g = nth_op(body, 1), *p = nth_op(body, 2);
  TileOp *y = nth_op(body, 3), *ret = nth_op(body, 5);
  CHECK_EQ(8, h->loc.col); /* the op name */
  REQUIRE(h->nopnd == 2 && h->nres == 1);
  CHECK(h->opnd[0].v == body->args[0]);
  CHECK(h->opnd[1].v == body->args[1]);
  CHECK(!h->opnd[0].has_idx);
  CHECK(h->res[0]->def == h);
  CHECK_EQ(0, h->res[0]->index);
  CHECK_STREQ("h", h->res[0]->name);
  CHECK_STREQ("tensor<8x16384xbf16>", type_str(&h->res[0]->type));
  CHECK(g->opnd[0].v == h->res[0]);
  CHECK(p->opnd[0].v == g->res[0]);
  CHECK(p->opnd[1].v == body->args[2]);

  REQUIRE(y->attrs.n == 2);
  CHECK_STREQ("kind", y->attrs.items[0].name);
  CHECK_EQ(TILE_ATTR_IDENT, y->attrs.items[0].val.kind);
  CHECK_STREQ("add", y->attrs.items[0].val.s);
  CHECK_STREQ("axes", y->attrs.items[1].name);
  CHECK_EQ(1, y->attrs.items[1].val.n);

  REQUIRE(ret->nopnd == 1);
  CHECK(ret->opnd[0].v == nth_op(body, 4)->res[0]);
  CHECK_EQ(0, ret->nres);
  tile_module_free(m);
}

TEST(parser, kernel_accesses) {
  TileModule *m = parse(
      "kernel @scale(%in: hbm<1024x128xf32>, %out: hbm<1024x128xf32>) {\n"
      "  %buf = alloc : vmem<2x8x128xf32>\n"
      "  %sem = semaphore : sem\n"
      "  %slot = constant {value = 1} : i32\n"
      "  %k = dma_start %in[%slot, 0], %buf[%slot, 0, 0], %sem {shape = [8, 128]} : token\n"
      "  dma_wait %sem, %k\n"
      "  %t = load %buf[%slot, 0, -3] : tensor<8x128xf32>\n"
      "  store %t, %buf[1, 0, 0]\n"
      "}\n");
  REQUIRE(m != NULL);
  TileFunc *f = m->funcs;
  CHECK(f->is_kernel);
  CHECK_EQ(0, f->nret);
  CHECK_EQ(2, f->body->nargs);
  CHECK_EQ(0, f->arg_attrs[0].n);
  CHECK_EQ(0, f->arg_attrs[1].n);
  TileOp *alloc = nth_op(f->body, 0), *sem = nth_op(f->body, 1), *slot = nth_op(f->body, 2);
  TileOp *dma = nth_op(f->body, 3), *wait = nth_op(f->body, 4), *load = nth_op(f->body, 5);
  CHECK_EQ(TILE_TY_BUFFER, alloc->res[0]->type.kind);
  CHECK_EQ(TILE_SPACE_VMEM, alloc->res[0]->type.space);
  CHECK_EQ(3, alloc->res[0]->type.rank);
  CHECK_EQ(TILE_TY_SEM, sem->res[0]->type.kind);
  REQUIRE(dma->nopnd == 3);
  TileUse *src = &dma->opnd[0], *dst = &dma->opnd[1];
  CHECK(src->v == f->body->args[0]);
  CHECK(src->has_idx);
  REQUIRE(src->nidx == 2);
  CHECK(src->idx[0].v == slot->res[0]);
  CHECK(src->idx[1].v == NULL);
  CHECK_EQ(0, src->idx[1].c);
  CHECK(dst->v == alloc->res[0]);
  CHECK_EQ(3, dst->nidx);
  CHECK(!dma->opnd[2].has_idx);
  CHECK(dma->opnd[2].v == sem->res[0]);
  const TileAttr *shape = tile_attr_get(&dma->attrs, "shape");
  REQUIRE(shape != NULL && shape->kind == TILE_ATTR_ARRAY && shape->n == 2);
  CHECK_EQ(128, shape->elems[1].i);
  CHECK_EQ(TILE_TY_TOKEN, dma->res[0]->type.kind);
  CHECK_EQ(TILE_OP_DMA_WAIT, wait->kind);
  CHECK_EQ(0, wait->nres);
  CHECK(wait->opnd[1].v == dma->res[0]);
  CHECK_EQ(-3, load->opnd[0].idx[2].c);
  tile_module_free(m);
}

TEST(parser, for_with_iter) {
  TileModule *m = parse(
      "func @f(%init: tensor<8x128xf32>, %n: i64) -> tensor<8x128xf32> {\n"
      "  %r, %c = for %i = -2 to 16 step 3 iter(%acc = %init, %cnt = %n)"
      " : tensor<8x128xf32>, i64 {\n"
      "    %next = add %acc, %acc : tensor<8x128xf32>\n"
      "    yield %next, %cnt\n"
      "  }\n"
      "  return %r\n"
      "}\n");
  REQUIRE(m != NULL);
  TileBlock *body = m->funcs->body;
  TileOp *loop = body->first;
  CHECK_EQ(TILE_OP_FOR, loop->kind);
  REQUIRE(loop->attrs.n == 3);
  static const char *const names[] = {"lower", "upper", "step"};
  static const int64_t vals[] = {-2, 16, 3};
  for (int i = 0; i < 3; i++) {
    CHECK_STREQ(names[i], loop->attrs.items[i].name);
    CHECK_EQ(TILE_ATTR_INT, loop->attrs.items[i].val.kind);
    CHECK_EQ(vals[i], loop->attrs.items[i].val.i);
  }
  REQUIRE(loop->nopnd == 2);
  CHECK(loop->opnd[0].v == body->args[0]);
  CHECK(loop->opnd[1].v == body->args[1]);
  REQUIRE(loop->nres == 2);
  CHECK_STREQ("r", loop->res[0]->name);
  CHECK_STREQ("i64", type_str(&loop->res[1]->type));
  REQUIRE(loop->nregion == 1);
  TileBlock *lb = loop->region[0];
  CHECK(lb->parent == loop);
  CHECK(lb->func == NULL);
  REQUIRE(lb->nargs == 3);
  CHECK_STREQ("i", lb->args[0]->name);
  CHECK_STREQ("i32", type_str(&lb->args[0]->type));
  CHECK_STREQ("acc", lb->args[1]->name);
  CHECK_STREQ("tensor<8x128xf32>", type_str(&lb->args[1]->type));
  CHECK_STREQ("i64", type_str(&lb->args[2]->type));
  CHECK(lb->args[2]->block == lb);
  CHECK_EQ(2, lb->args[2]->index);
  /* the yield as written, no extra one */
  REQUIRE(count_ops(lb) == 2);
  TileOp *add = lb->first, *yield = lb->last;
  CHECK(add->opnd[0].v == lb->args[1]);
  CHECK(add->block == lb);
  CHECK_EQ(TILE_OP_YIELD, yield->kind);
  REQUIRE(yield->nopnd == 2);
  CHECK(yield->opnd[0].v == add->res[0]);
  CHECK(yield->opnd[1].v == lb->args[2]);
  CHECK(body->last->opnd[0].v == loop->res[0]);
  tile_module_free(m);
}

/* for, if and call take an attribute dictionary where the printer writes one:
 * after the operands, before ':' (so `shard` round-trips on them). */
TEST(parser, attributes_on_special_forms) {
  static const char src[] =
      "mesh @tp = torus<2>(x)\n"
      "func @g(%a: tensor<4xf32>) -> tensor<4xf32> {\n"
      "  return %a\n"
      "}\n"
      "func @f(%p: i1, %a: tensor<4xf32>) -> tensor<4xf32> {\n"
      "  %r = for %i = 0 to 4 step 1 iter(%x = %a) {shard = [x]} : tensor<4xf32> {\n"
      "    yield %x\n"
      "  }\n"
      "  %s = if %p {shard = [-]} : tensor<4xf32> {\n"
      "    yield %r\n"
      "  } else {\n"
      "    yield %a\n"
      "  }\n"
      "  %t = call @g(%s) {shard = [x]} : tensor<4xf32>\n"
      "  for %j = 0 to 2 step 1 {note = \"n\", k = 1} {\n"
      "  }\n"
      "  if %p {} {\n"
      "  }\n"
      "  call @g(%t) {}\n"
      "  return %t\n"
      "}\n";
  TileModule *m = parse(src);
  REQUIRE(m != NULL);
  TileBlock *body = m->funcs->next->body;
  TileOp *loop = nth_op(body, 0), *branch = nth_op(body, 1), *call = nth_op(body, 2);
  TileOp *loop2 = nth_op(body, 3), *branch2 = nth_op(body, 4), *call2 = nth_op(body, 5);
  /* The form's own attributes first, then the dictionary's. */
  REQUIRE(loop->attrs.n == 4);
  CHECK_STREQ("step", loop->attrs.items[2].name);
  CHECK_STREQ("shard", loop->attrs.items[3].name);
  CHECK_EQ(TILE_ATTR_ARRAY, loop->attrs.items[3].val.kind);
  CHECK_EQ(1, loop->nres);
  CHECK_EQ(2, loop->region[0]->nargs);
  REQUIRE(branch->attrs.n == 1);
  CHECK_STREQ("shard", branch->attrs.items[0].name);
  CHECK_EQ(2, branch->nregion);
  REQUIRE(call->attrs.n == 2);
  CHECK_STREQ("callee", call->attrs.items[0].name);
  CHECK_STREQ("g", call->attrs.items[0].val.s);
  CHECK_STREQ("shard", call->attrs.items[1].name);
  /* Without result types, a '{' that starts `name =` is the dictionary, and an
   * empty one is followed by the body's own '{'. */
  REQUIRE(loop2->attrs.n == 5);
  CHECK_STREQ("note", loop2->attrs.items[3].name);
  CHECK_STREQ("k", loop2->attrs.items[4].name);
  CHECK_EQ(1, count_ops(loop2->region[0]));
  CHECK_EQ(0, branch2->attrs.n);
  CHECK_EQ(TILE_OP_IF, branch2->kind);
  CHECK_EQ(1, call2->attrs.n);
  CHECK_EQ(TILE_OP_RETURN, nth_op(body, 6)->kind);
  tile_module_free(m);
}

TEST(parser, for_without_yield_gets_one) {
  TileModule *m = parse(
      "kernel @k(%b: vmem<4xi32>) {\n"
      "  for %i = 0 to 4 step 1 {\n"
      "    %v = load %b[%i] : i32\n"
      "  }\n"
      "  for %j = 0 to 4 step 1 {\n"
      "  }\n"
      "}\n");
  REQUIRE(m != NULL);
  TileOp *l1 = m->funcs->body->first, *l2 = l1->next;
  CHECK_EQ(0, l1->nopnd);
  CHECK_EQ(0, l1->nres);
  TileBlock *b1 = l1->region[0];
  CHECK_EQ(1, b1->nargs);
  REQUIRE(count_ops(b1) == 2);
  CHECK(b1->first->opnd[0].idx[0].v == b1->args[0]);
  CHECK_EQ(TILE_OP_YIELD, b1->last->kind);
  CHECK_EQ(0, b1->last->nopnd);
  CHECK(b1->last->block == b1);
  CHECK(b1->last->prev == b1->first);
  CHECK_EQ(4, b1->last->loc.line); /* at the closing '}' */
  CHECK_EQ(3, b1->last->loc.col);
  REQUIRE(count_ops(l2->region[0]) == 1);
  CHECK_EQ(TILE_OP_YIELD, l2->region[0]->first->kind);
  tile_module_free(m);
}

TEST(parser, if_regions) {
  TileModule *m = parse(
      "func @f(%c: i1, %a: f32) -> f32 {\n"
      "  %r = if %c : f32 {\n"
      "    yield %a\n"
      "  } else {\n"
      "    %b = neg %a : f32\n"
      "    yield %b\n"
      "  }\n"
      "  if %c {\n"
      "    %d = neg %a : f32\n"
      "  }\n"
      "  return %r\n"
      "}\n");
  REQUIRE(m != NULL);
  TileOp *if1 = m->funcs->body->first, *if2 = if1->next;
  CHECK_EQ(TILE_OP_IF, if1->kind);
  REQUIRE(if1->nopnd == 1);
  CHECK(if1->opnd[0].v == m->funcs->body->args[0]);
  CHECK_EQ(1, if1->nres);
  REQUIRE(if1->nregion == 2);
  CHECK(if1->region[0]->parent == if1);
  CHECK(if1->region[1]->parent == if1);
  CHECK_EQ(0, if1->region[0]->nargs);
  CHECK_EQ(1, count_ops(if1->region[0]));
  CHECK_EQ(2, count_ops(if1->region[1]));
  CHECK(if1->region[1]->last->opnd[0].v == if1->region[1]->first->res[0]);
  /* no else: still two regions, the else holds only an empty yield */
  REQUIRE(if2->nregion == 2);
  CHECK_EQ(0, if2->nres);
  REQUIRE(count_ops(if2->region[0]) == 2);
  CHECK_EQ(TILE_OP_YIELD, if2->region[0]->last->kind);
  REQUIRE(count_ops(if2->region[1]) == 1);
  CHECK_EQ(TILE_OP_YIELD, if2->region[1]->first->kind);
  CHECK_EQ(0, if2->region[1]->first->nopnd);
  tile_module_free(m);
}

TEST(parser, call_and_return) {
  TileModule *m = parse(
      "func @g(%a: f32, %b: f32) -> (f32, f32) {\n"
      "  return %b, %a\n"
      "}\n"
      "func @f(%a: f32) -> f32 {\n"
      "  %x, %y = call @g(%a, %a) : f32, f32\n"
      "  call @h()\n"
      "  return %y\n"
      "}\n"
      "func @h() {\n"
      "  return\n"
      "}\n");
  REQUIRE(m != NULL);
  TileFunc *g = m->funcs, *f = g->next, *h = f->next;
  REQUIRE(h != NULL);
  CHECK(h->next == NULL);
  CHECK_STREQ("h", h->name);
  CHECK_EQ(0, h->body->nargs);
  CHECK(h->arg_attrs == NULL);
  CHECK_EQ(2, g->nret);
  CHECK_EQ(2, g->body->first->nopnd);
  CHECK(g->body->first->opnd[0].v == g->body->args[1]);
  TileOp *c1 = f->body->first, *c2 = c1->next;
  CHECK_EQ(TILE_OP_CALL, c1->kind);
  const TileAttr *callee = tile_attr_get(&c1->attrs, "callee");
  REQUIRE(callee != NULL);
  CHECK_EQ(TILE_ATTR_SYMBOL, callee->kind);
  CHECK_STREQ("g", callee->s);
  CHECK_EQ(1, c1->attrs.n);
  CHECK_EQ(2, c1->nopnd);
  CHECK_EQ(2, c1->nres);
  CHECK_EQ(1, c1->res[1]->index);
  CHECK_EQ(0, c2->nopnd);
  CHECK_EQ(0, c2->nres);
  CHECK(f->body->last->opnd[0].v == c1->res[1]);
  CHECK_EQ(0, h->body->first->nopnd);
  tile_module_free(m);
}

TEST(parser, meshes_both_forms) {
  TileModule *m = parse(
      "mesh @a = torus<4x4x4>(x, y, z)\n"
      "mesh @b = torus<4x4>(dp = 2 on [0], tp = 2 on [0], y = 4 on [1])\n"
      "mesh @c = torus<4x4x4>(x = 16 on [0, 1], z = 4 on [2])\n"
      "mesh @d = torus<2x8>(dp = 2 on [0], y)\n");
  REQUIRE(m != NULL);
  TileMesh *a = m->meshes, *b = a->next, *c = b->next, *d = c->next;
  REQUIRE(d != NULL);
  CHECK(d->next == NULL);
  CHECK_EQ(3, a->rank);
  CHECK_EQ(3, a->naxes);
  for (int i = 0; i < 3; i++) {
    CHECK_EQ(4, a->dims[i]);
    CHECK_EQ(4, a->axes[i].size);
    CHECK_EQ(1, a->axes[i].ndims);
    CHECK_EQ(i, a->axes[i].dims[0]);
  }
  CHECK_STREQ("z", a->axes[2].name);
  CHECK_EQ(1, a->loc.line);
  CHECK_EQ(2, b->loc.line);
  CHECK_EQ(3, b->naxes);
  CHECK_STREQ("tp", b->axes[1].name);
  CHECK_EQ(2, b->axes[1].size);
  CHECK_EQ(0, b->axes[1].dims[0]);
  CHECK_EQ(1, b->axes[2].dims[0]);
  CHECK_EQ(2, c->naxes);
  CHECK_EQ(16, c->axes[0].size);
  CHECK_EQ(2, c->axes[0].ndims);
  CHECK_EQ(1, c->axes[0].dims[1]);
  CHECK_EQ(2, c->axes[1].dims[0]);
  /* a simple axis after full ones takes the next dim none of them spans */
  CHECK_EQ(1, d->axes[1].dims[0]);
  CHECK_EQ(8, d->axes[1].size);
  CHECK(tile_module_find_mesh(m, "c") == c);
  tile_module_free(m);
}

TEST(parser, types) {
  TileModule *m = parse(
      "func @f(%a: i1, %b: i8, %c: i32, %d: i64, %e: f32, %f: bf16, %g: f16,\n"
      "        %h: f8E4M3FN, %i: f8E5M2, %j: tensor<f32>, %k: tensor<1x2x3x4x5x6x7x8xi8>,\n"
      "        %l: hbm<1024x128xf32>, %m: vmem<2x8x128xbf16>, %n: smem<16xi32>,\n"
      "        %o: sem, %p: token, %q: tensor<1099511627776xi1>) {\n"
      "  return\n"
      "}\n");
  REQUIRE(m != NULL);
  static const char *const want[] = {
      "i1", "i8", "i32", "i64", "f32", "bf16", "f16", "f8E4M3FN", "f8E5M2", "tensor<f32>",
      "tensor<1x2x3x4x5x6x7x8xi8>", "hbm<1024x128xf32>", "vmem<2x8x128xbf16>", "smem<16xi32>",
      "sem", "token", "tensor<1099511627776xi1>"};
  TileBlock *b = m->funcs->body;
  REQUIRE(b->nargs == 17);
  for (int i = 0; i < 17; i++) CHECK_STREQ(want[i], type_str(&b->args[i]->type));
  CHECK_EQ(TILE_TY_SCALAR, b->args[0]->type.kind);
  CHECK_EQ(TILE_TY_TENSOR, b->args[9]->type.kind);
  CHECK_EQ(0, b->args[9]->type.rank);
  CHECK_EQ(TILE_SPACE_SMEM, b->args[13]->type.space);
  tile_module_free(m);
}

TEST(parser, attribute_kinds) {
  TileModule *m = parse(
      "func @f() {\n"
      "  %c = constant {i = 42, n = -9223372036854775808, x = 9223372036854775807,\n"
      "                 f = 1.5, e = 1e-05, g = -2.5E+3, h = 3., pi = -inf, qi = inf, nn = nan,\n"
      "                 s = \"a\\\\b\\\"c\\nd\\te\\41\\7e\", id = add, no = -, sym = @tp,\n"
      "                 arr = [1, [2, (x, y)], []], tup = (x, -), empty = ()} : f32\n"
      "  return\n"
      "}\n");
  REQUIRE(m != NULL);
  const TileAttrDict *d = &m->funcs->body->first->attrs;
  REQUIRE(d->n == 17);
  static const char *const names[] = {"i", "n",  "x",  "f",  "e",  "g",  "h",   "pi",  "qi",
                                      "nn", "s", "id", "no", "sym", "arr", "tup", "empty"};
  for (int i = 0; i < 17; i++) CHECK_STREQ(names[i], d->items[i].name);
  CHECK_EQ(42, tile_attr_get(d, "i")->i);
  CHECK(tile_attr_get(d, "n")->i == INT64_MIN);
  CHECK(tile_attr_get(d, "x")->i == INT64_MAX);
  CHECK_EQ(TILE_ATTR_FLOAT, tile_attr_get(d, "f")->kind);
  CHECK(tile_attr_get(d, "f")->f == 1.5);
  CHECK(tile_attr_get(d, "e")->f == 1e-05);
  CHECK(tile_attr_get(d, "g")->f == -2500.0);
  CHECK(tile_attr_get(d, "h")->f == 3.0);
  CHECK(isinf(tile_attr_get(d, "pi")->f) && tile_attr_get(d, "pi")->f < 0);
  CHECK(isinf(tile_attr_get(d, "qi")->f) && tile_attr_get(d, "qi")->f > 0);
  CHECK_EQ(TILE_ATTR_FLOAT, tile_attr_get(d, "nn")->kind);
  CHECK(isnan(tile_attr_get(d, "nn")->f));
  CHECK_EQ(TILE_ATTR_STRING, tile_attr_get(d, "s")->kind);
  CHECK_STREQ("a\\b\"c\nd\teA~", tile_attr_get(d, "s")->s);
  CHECK_EQ(TILE_ATTR_IDENT, tile_attr_get(d, "id")->kind);
  CHECK_STREQ("add", tile_attr_get(d, "id")->s);
  CHECK_EQ(TILE_ATTR_NONE, tile_attr_get(d, "no")->kind);
  CHECK_EQ(TILE_ATTR_SYMBOL, tile_attr_get(d, "sym")->kind);
  CHECK_STREQ("tp", tile_attr_get(d, "sym")->s);
  const TileAttr *arr = tile_attr_get(d, "arr");
  REQUIRE(arr->kind == TILE_ATTR_ARRAY && arr->n == 3);
  CHECK_EQ(TILE_ATTR_ARRAY, arr->elems[1].kind);
  REQUIRE(arr->elems[1].n == 2);
  CHECK_EQ(TILE_ATTR_TUPLE, arr->elems[1].elems[1].kind);
  CHECK_STREQ("y", arr->elems[1].elems[1].elems[1].s);
  CHECK_EQ(0, arr->elems[2].n);
  CHECK_EQ(TILE_ATTR_NONE, tile_attr_get(d, "tup")->elems[1].kind);
  CHECK_EQ(TILE_ATTR_TUPLE, tile_attr_get(d, "empty")->kind);
  CHECK_EQ(0, tile_attr_get(d, "empty")->n);
  tile_module_free(m);
}

TEST(parser, comments_and_layout) {
  TileModule *m = parse(
      "// a module\r\n"
      "func @f(%a: f32) -> f32 { // the body\r\n"
      "\t%b = neg %a : f32 // negate\r\n"
      "  return %b }");
  REQUIRE(m != NULL);
  TileOp *neg = m->funcs->body->first;
  CHECK_EQ(3, neg->loc.line);
  CHECK_EQ(7, neg->loc.col); /* columns count bytes; a tab is one */
  CHECK_EQ(TILE_OP_RETURN, neg->next->kind);
  tile_module_free(m);
  m = parse("");
  REQUIRE(m != NULL);
  CHECK(m->funcs == NULL && m->meshes == NULL);
  tile_module_free(m);
}

TEST(parser, op_without_operands_before_results) {
  /* Only the '=' tells `return` + `%x = ...` from `return %x`: the next line's
   * result names are not operands. */
  TileModule *m = parse(
      "func @f(%a: f32) {\n"
      "  if %a {\n"
      "    yield\n"
      "    %x, %y = call @f(%a) : f32, f32\n"
      "  }\n"
      "  return\n"
      "  %z = neg %a : f32\n"
      "  return %a, %z\n"
      "}\n");
  REQUIRE(m != NULL);
  TileBlock *b = m->funcs->body;
  REQUIRE(count_ops(b) == 4);
  CHECK_EQ(0, b->first->next->nopnd);
  CHECK_EQ(TILE_OP_NEG, b->first->next->next->kind);
  CHECK_EQ(2, b->last->nopnd);
  TileBlock *then = b->first->region[0];
  REQUIRE(count_ops(then) == 3); /* and the yield a block not ending in one gets */
  CHECK_EQ(0, then->first->nopnd);
  CHECK_EQ(TILE_OP_CALL, then->first->next->kind);
  CHECK_EQ(TILE_OP_YIELD, then->last->kind);
  tile_module_free(m);
}

TEST(parser, forward_reference_resolves) {
  /* Uses before definitions parse (the verifier reports dominance); they end up
   * pointing at the definition, and a loop-carried argument gets its type. */
  TileModule *m = parse(
      "func @f(%a: f32) -> f32 {\n"
      "  %r = for %i = 0 to 4 step 1 iter(%acc = %late) : f32 {\n"
      "    %s = add %acc, %later : f32\n"
      "    yield %s\n"
      "  }\n"
      "  %late = neg %a : f32\n"
      "  %later = neg %late : f32\n"
      "  return %r\n"
      "}\n");
  REQUIRE(m != NULL);
  TileBlock *b = m->funcs->body;
  TileOp *loop = b->first, *late = loop->next, *later = late->next;
  CHECK(loop->opnd[0].v == late->res[0]);
  CHECK_STREQ("f32", type_str(&loop->region[0]->args[1]->type));
  CHECK(loop->region[0]->first->opnd[1].v == later->res[0]);
  tile_module_free(m);
}

TEST(parser, no_pointers_into_source) {
  size_t len = strlen(mlp_src);
  char *src = malloc(len);
  memcpy(src, mlp_src, len); /* not NUL-terminated */
  TileModule *m = parse_n(src, len, NULL, NULL);
  memset(src, '#', len);
  free(src);
  REQUIRE(m != NULL);
  CHECK_STREQ("tp", m->meshes->name);
  CHECK_STREQ("x", m->meshes->axes[0].name);
  CHECK_STREQ("mlp", m->funcs->name);
  CHECK_STREQ("w1", m->funcs->body->args[1]->name);
  CHECK_STREQ("shard", m->funcs->arg_attrs[1].items[0].name);
  CHECK_STREQ("x", m->funcs->arg_attrs[1].items[0].val.elems[1].s);
  CHECK_STREQ("add", m->funcs->body->first->next->next->next->attrs.items[0].val.s);
  tile_module_free(m);
}

TEST(parser, length_not_terminator) {
  /* Only the first len bytes count: what follows them is never read. */
  const char *src = "func @f() {\n  return\n}\ngarbage $$$";
  size_t len = strlen("func @f() {\n  return\n}\n");
  TileModule *m = parse_n(src, len, NULL, NULL);
  CHECK(m != NULL);
  tile_module_free(m);
  /* A cut in the middle of a token is the end of the input. */
  char *errs;
  m = parse_n("func @f() {\n  return\n}\nmesh @m = torus<4x4>(x, y)", 40, &errs, NULL);
  CHECK(m == NULL);
  CHECK_STREQ("t.tile:4:18: error: expected 'x' or '>' in the torus shape, got end of file\n",
              errs);
  free(errs);
}

/* ---- errors ---- */

TEST(parser, error_unknown_op) {
  check_errors("func @f(%a: f32) {\n  %b = frobnicate %a : f32\n  return\n}\n",
               "t.tile:2:8: error: unknown op 'frobnicate'\n");
}

TEST(parser, error_index_list) {
  check_errors("kernel @k(%b: vmem<4x4xf32>) {\n  %t = load %b[0 foo] : f32\n}\n",
               "t.tile:2:18: error: expected ',' or ']' in index list, got 'foo'\n");
  check_errors("kernel @k(%b: vmem<4x4xf32>) {\n  %t = load %b[] : f32\n}\n",
               "t.tile:2:16: error: expected an index (a %name or an integer), got ']'\n");
}

TEST(parser, error_results) {
  /* Result types missing at the end of a line are reported there, just past the
   * op, not at whatever starts the next line (or the end of the file). */
  check_errors("func @f(%a: f32) {\n  %b = neg %a\n  return\n}\n",
               "t.tile:2:14: error: expected ':' and result types after 'neg'\n");
  check_errors("func @f(%a: f32) {\n  %b = neg %a {k = 1}\n}\n",
               "t.tile:2:22: error: expected ':' and result types after 'neg'\n");
  check_errors("func @f(%a: f32) {\n  %b = neg %a\n  %c = neg %b : f32\n}\n",
               "t.tile:2:14: error: expected ':' and result types after 'neg'\n");
  check_errors("func @f(%a: f32) {\n  %b = call @f(%a)   // comment\n}\n",
               "t.tile:2:19: error: expected ':' and result types after 'call'\n");
  check_errors("func @f(%a: f32) {\n  %b = neg %a",
               "t.tile:2:14: error: expected ':' and result types after 'neg'\n");
  /* On the same line, the token that stands there is named. */
  check_errors("func @f(%a: f32) {\n  %b = neg %a f32\n}\n",
               "t.tile:2:15: error: expected ':' and result types, got 'f32'\n");
  check_errors("func @f(%a: f32) {\n  %b, %c = neg %a : f32\n  return\n}\n",
               "t.tile:2:19: error: 2 result names but 1 result type\n");
  check_errors("func @f(%a: f32) {\n  %b = return %a\n}\n",
               "t.tile:2:3: error: 'return' has no results\n");
  check_errors("func @f(%a: f32) {\n  %b %c = neg %a : f32\n}\n",
               "t.tile:2:6: error: expected ',' or '=' after a result name, got '%c'\n");
}

TEST(parser, error_missing_comma) {
  check_errors("func @f(%a: f32) {\n  %b = add %a %a : f32\n}\n",
               "t.tile:2:15: error: expected ',' between operands, got '%a'\n");
  check_errors("func @f(%a: f32) {\n  %b = select %a, %a %a : f32\n}\n",
               "t.tile:2:22: error: expected ',' between operands, got '%a'\n");
  check_errors("func @f(%a: f32) -> (f32, f32) {\n  return %a %a\n}\n",
               "t.tile:2:13: error: expected ',' between operands, got '%a'\n");
  check_errors("kernel @k(%b: vmem<4xf32>, %i: i32) {\n  %t = load %b[%i] %i : f32\n}\n",
               "t.tile:2:20: error: expected ',' between operands, got '%i'\n");
  /* A %name that begins the next op's results is not a missing operand. */
  TileModule *m = parse("func @f(%a: f32) -> f32 {\n"
                        "  %b = neg %a : f32\n"
                        "  return %b\n"
                        "}\n"
                        "func @g(%s: sem) {\n"
                        "  dma_wait %s\n"
                        "  %t, %u = call @h() : f32, f32\n"
                        "  return\n"
                        "}\n"
                        "func @h() -> (f32, f32) {\n"
                        "  %c = constant {value = 1.0} : f32\n"
                        "  return %c, %c\n"
                        "}\n");
  CHECK(m != NULL);
  tile_module_free(m);
}

TEST(parser, error_duplicate_attribute) {
  check_errors("func @f(%a: f32) {\n  %b = neg %a {k = 1, j = 2, k = 3} : f32\n}\n",
               "t.tile:2:30: error: duplicate attribute 'k'\n");
}

TEST(parser, error_values) {
  check_errors("func @f(%a: f32) {\n  %b = neg %c : f32\n  %d = neg %c : f32\n  return\n}\n",
               "t.tile:2:12: error: use of undefined value '%c'\n");
  check_errors("func @f(%a: f32) {\n  %b = neg %a : f32\n  %b = neg %a : f32\n  return\n}\n",
               "t.tile:3:3: error: redefinition of value '%b'\n"
               "t.tile:2:3: note: previous definition is here\n");
  check_errors("func @f(%a: f32) {\n  for %a = 0 to 1 step 1 {\n  }\n}\n",
               "t.tile:2:7: error: redefinition of value '%a'\n"
               "t.tile:1:9: note: previous definition is here\n");
  /* names are per function */
  TileModule *m = parse("func @f(%a: f32) {\n  return\n}\nfunc @g(%a: f32) {\n  return\n}\n");
  CHECK(m != NULL);
  tile_module_free(m);
}

TEST(parser, error_symbols) {
  check_errors("mesh @m = torus<2>(x)\nfunc @m() {\n  return\n}\n",
               "t.tile:2:6: error: redefinition of symbol '@m'\n"
               "t.tile:1:6: note: previous definition is here\n");
}

TEST(parser, error_unexpected_characters) {
  check_errors("func @f() {\n  %a = neg \xe2\x80\x9c%x\xe2\x80\x9d : f32\n}\n",
               "t.tile:2:12: error: unexpected character U+201C\n");
  check_errors("func @f() {\n  return $\n}\n", "t.tile:2:10: error: unexpected character '$'\n");
  check_errors("func @f() \xff{\n}\n", "t.tile:1:11: error: unexpected character '\\xff'\n");
  /* an embedded NUL is a character like any other */
  char *errs;
  TileModule *m = parse_n("func @f() {\n  re\0turn\n}\n", 23, &errs, NULL);
  CHECK(m == NULL);
  CHECK_STREQ("t.tile:2:3: error: unknown op 're'\n", errs);
  free(errs);
  check_errors("func @f() {\n  %a = neg % : f32\n}\n",
               "t.tile:2:12: error: expected a name after '%'\n");
}

TEST(parser, error_strings) {
  check_errors("func @f() {\n  %a = constant {v = \"ab\\q\"} : f32\n}\n",
               "t.tile:2:25: error: invalid escape in string (use \\\\, \\\", \\n, \\t or \\XX)\n");
  check_errors("func @f() {\n  %a = constant {v = \"abc} : f32\n  return\n}\n",
               "t.tile:2:22: error: unterminated string\n");
  check_errors("func @f() {\n  %a = constant {v = \"a\\00\"} : f32\n}\n",
               "t.tile:2:24: error: strings cannot hold a NUL character (\\00)\n");
  check_errors("func @f() {\n  %a = constant {v = \"a\x01\"} : f32\n}\n",
               "t.tile:2:24: error: unexpected character '\\x01' in string (escape it as \\XX)\n");
}

TEST(parser, error_numbers) {
  check_errors("func @f() {\n  %a = constant {v = 9223372036854775808} : f32\n}\n",
               "t.tile:2:22: error: integer '9223372036854775808' does not fit in 64 bits\n");
  check_errors("func @f() {\n  %a = constant {v = -9223372036854775809} : f32\n}\n",
               "t.tile:2:22: error: integer '-9223372036854775809' does not fit in 64 bits\n");
  check_errors("func @f() {\n  %a = constant {v = 1e400} : f32\n}\n",
               "t.tile:2:22: error: float '1e400' is out of range\n");
  check_errors("func @f() {\n  for %i = 0 to 99999999999999999999999 step 1 {\n  }\n}\n",
               "t.tile:2:17: error: integer '99999999999999999999999' does not fit in 64 bits\n");
  check_errors("func @f() {\n  for %i = 0 to 1.5 step 1 {\n  }\n}\n",
               "t.tile:2:17: error: expected the upper bound (an integer), got '1.5'\n");
  /* A number run into name characters is one malformed number. */
  check_errors("func @f() {\n  %a = constant {v = 12abc} : f32\n}\n",
               "t.tile:2:22: error: malformed number '12abc'\n");
  check_errors("func @f() {\n  %a = constant {v = 1.5.3} : f32\n}\n",
               "t.tile:2:22: error: malformed number '1.5.3'\n");
  check_errors("func @f() {\n  %a = constant {v = 2e} : f32\n}\n",
               "t.tile:2:22: error: malformed number '2e'\n");
  check_errors("func @f() {\n  %a = constant {v = -7_1} : f32\n}\n",
               "t.tile:2:22: error: malformed number '-7_1'\n");
  check_errors("func @f() {\n  for %i = 0 to 4x step 1 {\n  }\n}\n",
               "t.tile:2:17: error: malformed number '4x'\n");
  check_errors("kernel @k(%b: vmem<4xf32>) {\n  %t = load %b[0x1] : f32\n}\n",
               "t.tile:2:16: error: malformed number '0x1'\n");
  /* Long ones are shortened in the message. */
  check_errors("func @f() {\n  %a = constant {v = 1234567890123456789012345678901234567890abc}"
               " : f32\n}\n",
               "t.tile:2:22: error: malformed number '12345678901234567890123456789012...'\n");
  /* Numbers next to punctuation stay numbers. */
  TileModule *m = parse("func @f() {\n  %a = constant {v = [1,-2,3.5e-1]} : f32\n  return\n}\n");
  CHECK(m != NULL);
  tile_module_free(m);
}

TEST(parser, error_types) {
  check_errors("func @f(%a: tensor<8xq32>) {\n}\n",
               "t.tile:1:22: error: unknown element type 'q32'\n");
  check_errors("func @f(%a: tensor<0x8xf32>) {\n}\n",
               "t.tile:1:20: error: dimensions must be positive, got '0'\n");
  check_errors("func @f(%a: tensor<1099511627777xf32>) {\n}\n",
               "t.tile:1:20: error: dimension '1099511627777' is too large (the limit is 2^40)\n");
  check_errors("func @f(%a: tensor<1x1x1x1x1x1x1x1x1xf32>) {\n}\n",
               "t.tile:1:36: error: too many dimensions (the limit is 8)\n");
  check_errors("func @f(%a: tensor<65536x65536x65537xf32>) {\n}\n",
               "t.tile:1:13: error: the type has more than 2^48 elements\n");
  check_errors("func @f(%a: vmem<f32>) {\n}\n",
               "t.tile:1:13: error: a buffer type needs at least one dimension\n");
  check_errors("func @f(%a: tensor<8 x f32>) {\n}\n",
               "t.tile:1:21: error: expected 'x' after a dimension, got ' '\n");
  check_errors("func @f(%a: tensor<8xf32) {\n}\n",
               "t.tile:1:25: error: expected '>' after the element type, got ')'\n");
  check_errors("func @f(%a: tensor 8) {\n}\n",
               "t.tile:1:20: error: expected '<' after 'tensor', got '8'\n");
  check_errors("func @f(%a: f31) {\n}\n", "t.tile:1:13: error: unknown type 'f31'\n");
  check_errors("func @f(%a) {\n}\n",
               "t.tile:1:11: error: expected ':' and the parameter's type, got ')'\n");
}

TEST(parser, error_meshes) {
  check_errors("mesh @m = torus<4x4>(x, y, z)\n",
               "t.tile:1:28: error: mesh axis 'z' has no torus dim left to take (the torus has 2)\n");
  check_errors("mesh @m = torus<4x4>(x = 2 on [2])\n",
               "t.tile:1:32: error: torus dim 2 is out of range (the torus has 2)\n");
  check_errors("mesh @m = torus<2x2x2x2x2x2x2x2>(a, b, c, d, e, f, g, h, i)\n",
               "t.tile:1:58: error: a mesh has at most 8 axes\n");
  check_errors("mesh @m = torus<4xf32>(x)\n",
               "t.tile:1:19: error: expected a dimension, got 'f32'\n");
  check_errors("mesh @m = torus<4>(x = 0 on [0])\n",
               "t.tile:1:24: error: mesh axis size must be between 1 and 2^40, got 0\n");
  check_errors("mesh @m = torus<4>(x on [0])\n",
               "t.tile:1:22: error: expected ',' or ')' after a mesh axis, got 'on'\n");
  check_errors("mesh @m = torus<4>()\n", "t.tile:1:20: error: expected a mesh axis name, got ')'\n");
  check_errors("mesh m = torus<4>(x)\n",
               "t.tile:1:6: error: expected the mesh name (a @name) after 'mesh', got 'm'\n");
}

TEST(parser, error_special_forms) {
  check_errors("func @f() {\n  for %i = 0 to 4 {\n  }\n}\n",
               "t.tile:2:19: error: expected 'step' after the upper bound, got '{'\n");
  check_errors("func @f(%a: f32) {\n  %r = for %i = 0 to 4 step 1 iter(%x = %a) {\n  }\n}\n",
               "t.tile:2:45: error: expected ':' and result types, got '{'\n");
  check_errors("func @f(%a: f32) {\n  for %i = 0 to 4 step 1 iter(%x %a) {\n  }\n}\n",
               "t.tile:2:34: error: expected '=' after the loop-carried value, got '%a'\n");
  check_errors("func @f(%a: f32) {\n  if %a {\n  } else\n}\n",
               "t.tile:4:1: error: expected '{' and the body, got '}'\n");
  check_errors("func @f(%a: f32) {\n  call f(%a)\n}\n",
               "t.tile:2:8: error: expected the callee (a @name) after 'call', got 'f'\n");
  check_errors("func @f(%a: f32) {\n  call @f(%a %a)\n}\n",
               "t.tile:2:14: error: expected ',' or ')' in the call arguments, got '%a'\n");
  /* The forms spell some attributes themselves; their dictionaries cannot. */
  check_errors("func @f() {\n  for %i = 0 to 4 step 1 {step = 2} {\n  }\n}\n",
               "t.tile:2:27: error: 'step' is written in the 'for' form itself, not as an "
               "attribute\n");
  check_errors("func @f(%a: f32) {\n  call @f(%a) {k = 1, callee = @g}\n}\n",
               "t.tile:2:23: error: 'callee' is written in the 'call' form itself, not as an "
               "attribute\n");
  check_errors("func @f(%p: i1) {\n  if %p {k = 1 {\n  }\n}\n",
               "t.tile:2:16: error: expected ',' or '}' in the attribute dictionary, got '{'\n");
}

TEST(parser, error_top_level) {
  check_errors("%x = neg %y : f32\n",
               "t.tile:1:1: error: expected 'mesh', 'func' or 'kernel', got '%x'\n");
  check_errors("func @f() {\n  return\n",
               "t.tile:3:1: error: expected '}' to close the block, got end of file\n"
               "t.tile:1:11: note: the block begins here\n");
  check_errors("func @f() {\n  return\nfunc @g() {\n  return\n}\n",
               "t.tile:3:1: error: expected '}' to close the block, got 'func'\n"
               "t.tile:1:11: note: the block begins here\n");
}

TEST(parser, several_errors_one_file) {
  /* Each broken op is reported; the parse goes on with the next line, the next
   * function, past an unclosed attribute dictionary and a broken loop header. */
  check_errors(
      "func @f(%a: f32) -> f32 {\n"
      "  %b = frob %a : f32\n"
      "  %c = neg %a {k = 1 : f32\n"
      "  for %i = 0 to n step 1 {\n"
      "    %z = neg %a : f32\n"
      "  }\n"
      "  %d = neg %a : tensor<4xf33>\n"
      "  return %a\n"
      "}\n"
      "mesh @m = torus<4>(x, y)\n"
      "kernel @k() {\n"
      "  %e = neg %f : f32\n"
      "}\n",
      "t.tile:2:8: error: unknown op 'frob'\n"
      "t.tile:3:22: error: expected ',' or '}' in the attribute dictionary, got ':'\n"
      "t.tile:4:17: error: expected the upper bound (an integer), got 'n'\n"
      "t.tile:7:26: error: unknown element type 'f33'\n"
      "t.tile:10:23: error: mesh axis 'y' has no torus dim left to take (the torus has 1)\n"
      "t.tile:12:12: error: use of undefined value '%f'\n");
}

TEST(parser, error_limit_stops) {
  /* Hundreds of bad lines: the parse stops at the diagnostics' limit. */
  size_t cap = 64 * 1000 + 64, len = 0;
  char *src = malloc(cap);
  len += (size_t)sprintf(src + len, "func @f() {\n");
  for (int i = 0; i < 1000; i++) len += (size_t)sprintf(src + len, "  bad%d\n", i);
  len += (size_t)sprintf(src + len, "}\n");
  int n = 0;
  TileModule *m = parse_n(src, len, NULL, &n);
  CHECK(m == NULL);
  CHECK_EQ(20, n);
  free(src);
}

/* ---- hostile inputs ---- */

static char *repeat(const char *a, int n, const char *mid, const char *b) {
  size_t la = strlen(a), lm = strlen(mid), lb = strlen(b);
  char *s = malloc(la * (size_t)n + lm + lb * (size_t)n + 1), *q = s;
  for (int i = 0; i < n; i++, q += la) memcpy(q, a, la);
  memcpy(q, mid, lm);
  q += lm;
  for (int i = 0; i < n; i++, q += lb) memcpy(q, b, lb);
  *q = 0;
  return s;
}

TEST(parser, nesting_limits) {
  /* 64 nested regions are fine, 65 are not. */
  for (int depth = 64; depth <= 65; depth++) {
    size_t cap = (size_t)depth * 64 + 64, len = 0;
    char *src = malloc(cap);
    len += (size_t)sprintf(src + len, "func @f() {\n");
    for (int i = 0; i < depth; i++)
      len += (size_t)sprintf(src + len, "for %%i%d = 0 to 1 step 1 {\n", i);
    for (int i = 0; i < depth; i++) len += (size_t)sprintf(src + len, "}\n");
    len += (size_t)sprintf(src + len, "}\n");
    char *errs;
    TileModule *m = parse_n(src, len, &errs, NULL);
    if (depth == 64) {
      CHECK(m != NULL);
      CHECK_STREQ("", errs);
    } else {
      CHECK(m == NULL);
      CHECK_STREQ("t.tile:66:26: error: regions are nested too deeply (the limit is 64)\n", errs);
    }
    tile_module_free(m);
    free(errs);
    free(src);
  }
  char *deep = repeat("[", 64, "1", "]");
  char *src = malloc(strlen(deep) + 64);
  sprintf(src, "func @f() {\n  %%a = constant {v = %s} : f32\n}\n", deep);
  TileModule *m = parse(src);
  CHECK(m != NULL);
  tile_module_free(m);
  free(deep);
  free(src);
  deep = repeat("(", 65, "1", ")");
  src = malloc(strlen(deep) + 64);
  sprintf(src, "func @f() {\n  %%a = constant {v = %s} : f32\n}\n", deep);
  char *errs = errors_of(src);
  CHECK_STREQ("t.tile:2:86: error: attributes are nested too deeply (the limit is 64)\n", errs);
  free(errs);
  free(deep);
  free(src);
  /* far deeper than any stack would allow, if the parser recursed without limit */
  deep = repeat("for %i = 0 to 1 step 1 { [(", 100000, "", ")] }");
  src = malloc(strlen(deep) + 64);
  sprintf(src, "func @f() { %s }", deep);
  m = parse(src);
  CHECK(m == NULL);
  free(deep);
  free(src);
}

/* Every prefix of a valid file either parses or fails with errors. */
TEST(parser, truncated_inputs) {
  size_t len = strlen(mlp_src);
  for (size_t n = 0; n <= len; n++) {
    char *copy = malloc(n ? n : 1);
    memcpy(copy, mlp_src, n);
    int nerr = 0;
    TileModule *m = parse_n(copy, n, NULL, &nerr);
    CHECK((m != NULL) != (nerr > 0));
    tile_module_free(m);
    free(copy);
  }
}

/* Random bytes, and valid text with random bytes changed: never a crash, and a
 * module exactly when no error was reported. */
TEST(parser, random_bytes) {
  uint64_t state = 0x9e3779b97f4a7c15ull;
  size_t base_len = strlen(mlp_src);
  char *buf = malloc(base_len + 1);
  for (int round = 0; round < 3000; round++) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    size_t n;
    if (round % 2 == 0) {
      n = (size_t)(state >> 33) % base_len;
      for (size_t i = 0; i < n; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        buf[i] = (char)(state >> 56);
      }
    } else {
      n = base_len;
      memcpy(buf, mlp_src, n);
      for (int k = 0; k < 4; k++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        buf[(state >> 33) % n] = (char)(state >> 20);
      }
    }
    int nerr = 0;
    TileModule *m = parse_n(buf, n, NULL, &nerr);
    CHECK((m != NULL) != (nerr > 0));
    tile_module_free(m);
  }
  free(buf);
}

TEST(parser, null_diag_and_long_tokens) {
  TileModule *m = tile_parse("func @f() {\n  return\n}\n", 22, "x.tile", NULL);
  CHECK(m != NULL);
  tile_module_free(m);
  CHECK(tile_parse("func", 4, NULL, NULL) == NULL);
  /* a diagnostics engine that is already full does not cut a valid parse short */
  TileDiag d;
  tile_diag_init(&d, NULL, "x.tile", NULL, 0);
  d.nerrors = d.max_errors;
  m = tile_parse("func @f() {\n  return\n}\n", 22, "x.tile", &d);
  REQUIRE(m != NULL);
  CHECK(m->funcs != NULL);
  tile_module_free(m);
  /* a very long name and number are reported shortened */
  char *name = repeat("a", 5000, "", "");
  char *src = malloc(strlen(name) + 64);
  sprintf(src, "func @f() {\n  %s\n}\n", name);
  char *errs = errors_of(src);
  CHECK_STREQ("t.tile:2:3: error: unknown op "
              "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'\n",
              errs);
  free(errs);
  free(src);
  free(name);
  char *digits = repeat("7", 3000, "", "");
  src = malloc(strlen(digits) + 64);
  sprintf(src, "func @f() {\n  %%a = constant {v = 0.%s} : f32\n  return\n}\n", digits);
  m = parse(src);
  REQUIRE(m != NULL);
  CHECK(isfinite(m->funcs->body->first->attrs.items[0].val.f));
  tile_module_free(m);
  free(src);
  free(digits);
}
