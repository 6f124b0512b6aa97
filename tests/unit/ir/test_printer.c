/* The printer: exact canonical text for IR made by hand (without the builder), and
 * the fixed point print(parse(print(x))) == print(x). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "tile/ir.h"
#include "tile/ops.h"
#include "tile/text.h"

/* ---- IR by hand: just enough to set up the shapes the printer must handle ---- */
static TileType T(int rank, int64_t d0, int64_t d1) {
  return tile_type_tensor(TILE_ELEM_F32, rank, (int64_t[]){d0, d1});
}

static TileValue *new_value(TileModule *m, TileType t, const char *name) {
  TileValue *v = tile_alloc(m, sizeof *v);
  v->type = t;
  v->name = name ? tile_strdup(m, name, strlen(name)) : NULL;
  return v;
}

static TileBlock *new_block(TileModule *m, int nargs, const TileType *types,
                            const char *const *names) {
  TileBlock *blk = tile_alloc(m, sizeof *blk);
  blk->nargs = nargs;
  blk->args = tile_alloc(m, (size_t)(nargs + 1) * sizeof *blk->args);
  for (int i = 0; i < nargs; i++) {
    blk->args[i] = new_value(m, types[i], names ? names[i] : NULL);
    blk->args[i]->block = blk;
    blk->args[i]->index = i;
  }
  return blk;
}

static TileFunc *new_func(TileModule *m, const char *name, bool kernel, int nargs,
                          const TileType *types, const char *const *names) {
  TileFunc *f = tile_alloc(m, sizeof *f);
  f->name = tile_strdup(m, name, strlen(name));
  f->is_kernel = kernel;
  f->body = new_block(m, nargs, types, names);
  f->body->func = f;
  f->arg_attrs = tile_alloc(m, (size_t)(nargs + 1) * sizeof *f->arg_attrs);
  TileFunc **tail = &m->funcs;
  while (*tail) tail = &(*tail)->next;
  *tail = f;
  return f;
}

static void set_ret(TileModule *m, TileFunc *f, int n, const TileType *types) {
  f->nret = n;
  f->ret = tile_alloc(m, (size_t)n * sizeof *f->ret);
  memcpy(f->ret, types, (size_t)n * sizeof *f->ret);
}

/* Appends an op on plain operands with unnamed results. */
static TileOp *add_op(TileModule *m, TileBlock *blk, TileOpKind kind, int nopnd,
                      TileValue *const *opnds, int nres, const TileType *types) {
  TileOp *op = tile_alloc(m, sizeof *op);
  op->kind = kind;
  op->nopnd = nopnd;
  op->opnd = tile_alloc(m, (size_t)(nopnd + 1) * sizeof *op->opnd);
  for (int i = 0; i < nopnd; i++) op->opnd[i].v = opnds[i];
  op->nres = nres;
  op->res = tile_alloc(m, (size_t)(nres + 1) * sizeof *op->res);
  for (int i = 0; i < nres; i++) {
    op->res[i] = new_value(m, types[i], NULL);
    op->res[i]->def = op;
    op->res[i]->index = i;
  }
  op->block = blk;
  op->prev = blk->last;
  if (blk->last) blk->last->next = op;
  else blk->first = op;
  blk->last = op;
  return op;
}

static void set_attrs(TileModule *m, TileAttrDict *d, int n, const TileNamedAttr *items) {
  d->n = n;
  d->items = tile_alloc(m, (size_t)n * sizeof *d->items);
  memcpy(d->items, items, (size_t)n * sizeof *d->items);
}

static TileAttr A_int(int64_t v) { return (TileAttr){.kind = TILE_ATTR_INT, .i = v}; }
static TileAttr A_float(double v) { return (TileAttr){.kind = TILE_ATTR_FLOAT, .f = v}; }
static TileAttr A_ident(const char *s) { return (TileAttr){.kind = TILE_ATTR_IDENT, .s = s}; }
static TileAttr A_list(TileModule *m, TileAttrKind kind, int n, const TileAttr *elems) {
  TileAttr a = {.kind = kind, .n = n, .elems = tile_alloc(m, (size_t)n * sizeof(TileAttr))};
  memcpy(a.elems, elems, (size_t)n * sizeof(TileAttr));
  return a;
}

static TileBlock *add_region(TileModule *m, TileOp *op, int nargs, const TileType *types,
                             const char *const *names) {
  TileBlock *blk = new_block(m, nargs, types, names);
  blk->parent = op;
  TileBlock **regions = tile_alloc(m, (size_t)(op->nregion + 1) * sizeof *regions);
  if (op->nregion) memcpy(regions, op->region, (size_t)op->nregion * sizeof *regions);
  regions[op->nregion++] = blk;
  op->region = regions;
  return blk;
}

static char *print_op_str(const TileOp *op) {
  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  tile_print_op(out, op);
  fclose(out);
  return buf;
}

static char *print_func_str(const TileFunc *f) {
  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  tile_print_func(out, f);
  fclose(out);
  return buf;
}

/* Parses text, prints it, and checks that the print is the same text. */
static void check_fixed_point(const char *text) {
  TileDiag d;
  tile_diag_init(&d, stderr, "<printed>", text, strlen(text));
  TileModule *m = tile_parse(text, strlen(text), "<printed>", &d);
  if (!check_true(m != NULL, "the printed text parses", __FILE__, __LINE__)) return;
  char *again = tile_print_module_str(m);
  CHECK_STREQ(text, again);
  free(again);
  tile_module_free(m);
}

/* ---- tests ---- */
TEST(printer, func_with_unnamed_values) {
  TileModule *m = tile_module_new("t");
  TileType t = T(2, 8, 128);
  TileFunc *f = new_func(m, "f", false, 2, (TileType[]){t, t}, (const char *[]){"a", "b"});
  set_ret(m, f, 1, &t);
  TileBlock *body = f->body;
  TileOp *s = add_op(m, body, TILE_OP_ADD, 2, body->args, 1, &t);
  TileOp *e = add_op(m, body, TILE_OP_EXP, 1, s->res, 1, &t);
  add_op(m, body, TILE_OP_RETURN, 1, e->res, 0, NULL);
  char *text = tile_print_module_str(m);
  CHECK_STREQ("func @f(%a: tensor<8x128xf32>, %b: tensor<8x128xf32>) -> tensor<8x128xf32> {\n"
              "  %0 = add %a, %b : tensor<8x128xf32>\n"
              "  %1 = exp %0 : tensor<8x128xf32>\n"
              "  return %1\n"
              "}\n",
              text);
  check_fixed_point(text);
  free(text);
  tile_module_free(m);
}

TEST(printer, numbering_skips_taken_names) {
  TileModule *m = tile_module_new("t");
  TileType t = T(1, 4, 0);
  /* "0" and "2" are names already; "02" reads as a different name than %2. */
  TileFunc *f = new_func(m, "f", false, 2, (TileType[]){t, t}, (const char *[]){"0", "02"});
  TileBlock *body = f->body;
  TileOp *a = add_op(m, body, TILE_OP_NEG, 1, &body->args[0], 1, &t);
  TileOp *b = add_op(m, body, TILE_OP_NEG, 1, a->res, 1, &t);
  b->res[0]->name = "2";
  TileOp *c = add_op(m, body, TILE_OP_NEG, 1, b->res, 1, &t);
  TileOp *d = add_op(m, body, TILE_OP_NEG, 1, c->res, 1, &t);
  add_op(m, body, TILE_OP_RETURN, 1, d->res, 0, NULL);
  set_ret(m, f, 1, &t);
  char *text = tile_print_module_str(m);
  CHECK_STREQ("func @f(%0: tensor<4xf32>, %02: tensor<4xf32>) -> tensor<4xf32> {\n"
              "  %1 = neg %0 : tensor<4xf32>\n"
              "  %2 = neg %1 : tensor<4xf32>\n"
              "  %3 = neg %2 : tensor<4xf32>\n"
              "  %4 = neg %3 : tensor<4xf32>\n"
              "  return %4\n"
              "}\n",
              text);
  free(text);
  tile_module_free(m);
}

TEST(printer, numbering_restarts_per_function) {
  TileModule *m = tile_module_new("t");
  TileType t = T(0, 0, 0);
  for (int k = 0; k < 2; k++) {
    TileFunc *f = new_func(m, k ? "g" : "f", false, 1, &t, NULL);
    TileOp *n = add_op(m, f->body, TILE_OP_NEG, 1, f->body->args, 1, &t);
    add_op(m, f->body, TILE_OP_RETURN, 1, n->res, 0, NULL);
    set_ret(m, f, 1, &t);
  }
  char *text = tile_print_module_str(m);
  CHECK_STREQ("func @f(%0: tensor<f32>) -> tensor<f32> {\n"
              "  %1 = neg %0 : tensor<f32>\n"
              "  return %1\n"
              "}\n"
              "\n"
              "func @g(%0: tensor<f32>) -> tensor<f32> {\n"
              "  %1 = neg %0 : tensor<f32>\n"
              "  return %1\n"
              "}\n",
              text);
  check_fixed_point(text);
  free(text);
  tile_module_free(m);
}

/* One constant per float, printed as the `value` attribute. */
static const struct {
  double x;
  const char *text;
} float_cases[] = {
    {1.0, "1.0"},
    {-2.0, "-2.0"},
    {0.5, "0.5"},
    {0.0, "0.0"},
    {-0.0, "-0.0"},
    {1e-05, "1e-05"},
    {0.30000000000000004, "0.30000000000000004"},
    {1e20, "1e+20"},
    {123456789.0, "123456789.0"},
    {0.1, "0.1"},
};

TEST(printer, floats_read_back_as_floats) {
  for (size_t i = 0; i < sizeof float_cases / sizeof float_cases[0]; i++) {
    TileModule *m = tile_module_new("t");
    TileType t = T(0, 0, 0);
    TileFunc *f = new_func(m, "f", false, 0, NULL, NULL);
    TileOp *c = add_op(m, f->body, TILE_OP_CONSTANT, 0, NULL, 1, &t);
    set_attrs(m, &c->attrs, 1, (TileNamedAttr[]){{"value", A_float(float_cases[i].x)}});
    char want[128];
    snprintf(want, sizeof want, "%%0 = constant {value = %s} : tensor<f32>\n",
             float_cases[i].text);
    char *text = print_op_str(c);
    CHECK_STREQ(want, text);
    free(text);
    tile_module_free(m);
  }
}

TEST(printer, special_floats_and_strings) {
  TileModule *m = tile_module_new("t");
  TileFunc *f = new_func(m, "f", false, 0, NULL, NULL);
  TileOp *r = add_op(m, f->body, TILE_OP_RETURN, 0, NULL, 0, NULL);
  TileAttr floats[] = {A_float(INFINITY), A_float(-INFINITY), A_float(NAN)};
  set_attrs(m, &r->attrs, 2,
            (TileNamedAttr[]){
                {"f", A_list(m, TILE_ATTR_ARRAY, 3, floats)},
                {"s", (TileAttr){.kind = TILE_ATTR_STRING, .s = "a\"b\\c\nd\te\x01\x7f\xc3"}},
            });
  char *text = print_op_str(r);
  CHECK_STREQ("return {f = [inf, -inf, nan], s = \"a\\\"b\\\\c\\nd\\te\\01\\7F\\C3\"}\n", text);
  free(text);
  tile_module_free(m);
}

TEST(printer, attribute_kinds_in_stored_order) {
  TileModule *m = tile_module_new("t");
  TileType t = T(2, 8, 128);
  TileFunc *f = new_func(m, "f", false, 1, &t, (const char *[]){"x"});
  TileOp *op = add_op(m, f->body, TILE_OP_ALL_REDUCE, 1, f->body->args, 1, &t);
  TileAttr xy[] = {A_ident("x"), A_ident("y")};
  TileAttr shard[] = {(TileAttr){.kind = TILE_ATTR_NONE}, A_list(m, TILE_ATTR_TUPLE, 2, xy)};
  set_attrs(m, &op->attrs, 4,
            (TileNamedAttr[]){
                {"kind", A_ident("add")},
                {"axes", A_list(m, TILE_ATTR_ARRAY, 2, xy)},
                {"mesh", (TileAttr){.kind = TILE_ATTR_SYMBOL, .s = "tp"}},
                {"shard", A_list(m, TILE_ATTR_ARRAY, 2, shard)},
            });
  char *text = print_op_str(op);
  CHECK_STREQ("%0 = all_reduce %x {kind = add, axes = [x, y], mesh = @tp, shard = [-, (x, y)]}"
              " : tensor<8x128xf32>\n",
              text);
  free(text);
  tile_module_free(m);
}

TEST(printer, meshes_and_func_header) {
  TileModule *m = tile_module_new("t");
  TileMesh *tp = tile_alloc(m, sizeof *tp);
  *tp = (TileMesh){.name = "tp", .rank = 2, .dims = {4, 4}, .naxes = 2};
  tp->axes[0] = (TileMeshAxis){.name = "x", .size = 4, .ndims = 1, .dims = {0}};
  tp->axes[1] = (TileMeshAxis){.name = "y", .size = 4, .ndims = 1, .dims = {1}};
  TileMesh *full = tile_alloc(m, sizeof *full);
  *full = (TileMesh){.name = "m", .rank = 2, .dims = {4, 4}, .naxes = 3};
  full->axes[0] = (TileMeshAxis){.name = "dp", .size = 2, .ndims = 1, .dims = {0}};
  full->axes[1] = (TileMeshAxis){.name = "tp", .size = 2, .ndims = 1, .dims = {0}};
  full->axes[2] = (TileMeshAxis){.name = "y", .size = 4, .ndims = 1, .dims = {1}};
  TileMesh *span = tile_alloc(m, sizeof *span);
  *span = (TileMesh){.name = "s", .rank = 3, .dims = {4, 4, 4}, .naxes = 2};
  span->axes[0] = (TileMeshAxis){.name = "x", .size = 16, .ndims = 2, .dims = {0, 1}};
  span->axes[1] = (TileMeshAxis){.name = "z", .size = 4, .ndims = 1, .dims = {2}};
  m->meshes = tp;
  tp->next = full;
  full->next = span;

  TileType x = T(2, 8, 128), w = T(2, 128, 256);
  TileType h = T(2, 8, 256);
  TileFunc *f = new_func(m, "mlp", false, 2, (TileType[]){x, w}, (const char *[]){"x", "w"});
  TileAttr shard[] = {(TileAttr){.kind = TILE_ATTR_NONE}, A_ident("x")};
  set_attrs(m, &f->arg_attrs[1], 1,
            (TileNamedAttr[]){{"shard", A_list(m, TILE_ATTR_ARRAY, 2, shard)}});
  set_attrs(m, &f->attrs, 1,
            (TileNamedAttr[]){{"mesh", (TileAttr){.kind = TILE_ATTR_SYMBOL, .s = "tp"}}});
  TileOp *mm = add_op(m, f->body, TILE_OP_MATMUL, 2, f->body->args, 1, &h);
  mm->res[0]->name = "h";
  add_op(m, f->body, TILE_OP_RETURN, 2, (TileValue *[]){mm->res[0], f->body->args[0]}, 0, NULL);
  set_ret(m, f, 2, (TileType[]){h, x});
  char *text = tile_print_module_str(m);
  CHECK_STREQ("mesh @tp = torus<4x4>(x, y)\n"
              "mesh @m = torus<4x4>(dp = 2 on [0], tp = 2 on [0], y = 4 on [1])\n"
              "mesh @s = torus<4x4x4>(x = 16 on [0, 1], z = 4 on [2])\n"
              "\n"
              "func @mlp(%x: tensor<8x128xf32>, %w: tensor<128x256xf32> {shard = [-, x]})"
              " -> (tensor<8x256xf32>, tensor<8x128xf32>) attributes {mesh = @tp} {\n"
              "  %h = matmul %x, %w : tensor<8x256xf32>\n"
              "  return %h, %x\n"
              "}\n",
              text);
  check_fixed_point(text);
  free(text);
  tile_module_free(m);
}

/* A mesh whose axes take whole dims, but not in order, needs the full form. */
TEST(printer, mesh_out_of_order_uses_full_form) {
  TileModule *m = tile_module_new("t");
  TileMesh *mesh = tile_alloc(m, sizeof *mesh);
  *mesh = (TileMesh){.name = "r", .rank = 2, .dims = {2, 8}, .naxes = 2};
  mesh->axes[0] = (TileMeshAxis){.name = "a", .size = 8, .ndims = 1, .dims = {1}};
  mesh->axes[1] = (TileMeshAxis){.name = "b", .size = 2, .ndims = 1, .dims = {0}};
  m->meshes = mesh;
  char *text = tile_print_module_str(m);
  CHECK_STREQ("mesh @r = torus<2x8>(a = 8 on [1], b = 2 on [0])\n", text);
  check_fixed_point(text);
  free(text);
  tile_module_free(m);
}

TEST(printer, empty_module_is_empty_text) {
  TileModule *m = tile_module_new("t");
  char *text = tile_print_module_str(m);
  CHECK_STREQ("", text);
  free(text);
  tile_module_free(m);
}

/* for with a carried value, an if with results in it, and an if without results
 * whose empty yields and empty else are left out. */
TEST(printer, structured_control_flow) {
  TileModule *m = tile_module_new("t");
  TileType t = T(2, 8, 128), i1 = tile_type_scalar(TILE_ELEM_I1);
  TileFunc *f =
      new_func(m, "loop", false, 2, (TileType[]){t, i1}, (const char *[]){"init", "c"});
  set_ret(m, f, 1, &t);
  TileBlock *body = f->body;
  TileOp *loop = add_op(m, body, TILE_OP_FOR, 1, &body->args[0], 1, &t);
  set_attrs(m, &loop->attrs, 3,
            (TileNamedAttr[]){{"lower", A_int(0)}, {"upper", A_int(16)}, {"step", A_int(2)}});
  TileBlock *lb = add_region(m, loop, 2, (TileType[]){tile_type_scalar(TILE_ELEM_I32), t},
                             (const char *[]){"i", "acc"});
  TileOp *br = add_op(m, lb, TILE_OP_IF, 1, &body->args[1], 1, &t);
  TileBlock *then_b = add_region(m, br, 0, NULL, NULL);
  TileBlock *else_b = add_region(m, br, 0, NULL, NULL);
  TileOp *sum = add_op(m, then_b, TILE_OP_ADD, 2, (TileValue *[]){lb->args[1], lb->args[1]}, 1, &t);
  add_op(m, then_b, TILE_OP_YIELD, 1, sum->res, 0, NULL);
  add_op(m, else_b, TILE_OP_YIELD, 1, &lb->args[1], 0, NULL);
  TileOp *side = add_op(m, lb, TILE_OP_IF, 1, &body->args[1], 0, NULL);
  TileBlock *side_then = add_region(m, side, 0, NULL, NULL);
  TileBlock *side_else = add_region(m, side, 0, NULL, NULL);
  add_op(m, side_then, TILE_OP_NEG, 1, &lb->args[1], 1, &t);
  add_op(m, side_then, TILE_OP_YIELD, 0, NULL, 0, NULL);
  add_op(m, side_else, TILE_OP_YIELD, 0, NULL, 0, NULL);
  add_op(m, lb, TILE_OP_YIELD, 1, br->res, 0, NULL);
  TileOp *plain = add_op(m, body, TILE_OP_FOR, 0, NULL, 0, NULL);
  set_attrs(m, &plain->attrs, 3,
            (TileNamedAttr[]){{"lower", A_int(-4)}, {"upper", A_int(4)}, {"step", A_int(1)}});
  TileBlock *pb = add_region(m, plain, 1, (TileType[]){tile_type_scalar(TILE_ELEM_I32)}, NULL);
  add_op(m, pb, TILE_OP_YIELD, 0, NULL, 0, NULL);
  add_op(m, body, TILE_OP_RETURN, 1, loop->res, 0, NULL);

  char *text = tile_print_module_str(m);
  CHECK_STREQ("func @loop(%init: tensor<8x128xf32>, %c: i1) -> tensor<8x128xf32> {\n"
              "  %0 = for %i = 0 to 16 step 2 iter(%acc = %init) : tensor<8x128xf32> {\n"
              "    %1 = if %c : tensor<8x128xf32> {\n"
              "      %2 = add %acc, %acc : tensor<8x128xf32>\n"
              "      yield %2\n"
              "    } else {\n"
              "      yield %acc\n"
              "    }\n"
              "    if %c {\n"
              "      %3 = neg %acc : tensor<8x128xf32>\n"
              "    }\n"
              "    yield %1\n"
              "  }\n"
              "  for %4 = -4 to 4 step 1 {\n"
              "  }\n"
              "  return %0\n"
              "}\n",
              text);
  check_fixed_point(text);
  free(text);

  /* An else region that does more than yield nothing is printed. */
  side_else->first = side_else->last = NULL;
  add_op(m, side_else, TILE_OP_NEG, 1, &lb->args[1], 1, &t);
  char *op_text = print_op_str(side);
  CHECK_STREQ("if %c {\n"
              "  %0 = neg %acc : tensor<8x128xf32>\n"
              "} else {\n"
              "  %1 = neg %acc : tensor<8x128xf32>\n"
              "}\n",
              op_text);
  free(op_text);
  tile_module_free(m);
}

TEST(printer, call_and_kernel_accesses) {
  TileModule *m = tile_module_new("t");
  TileType t = T(2, 8, 128);
  TileFunc *g = new_func(m, "g", false, 1, &t, (const char *[]){"a"});
  set_ret(m, g, 1, &t);
  add_op(m, g->body, TILE_OP_RETURN, 1, g->body->args, 0, NULL);
  TileFunc *f = new_func(m, "f", false, 1, &t, (const char *[]){"x"});
  set_ret(m, f, 1, &t);
  TileOp *call = add_op(m, f->body, TILE_OP_CALL, 1, f->body->args, 1, &t);
  set_attrs(m, &call->attrs, 1,
            (TileNamedAttr[]){{"callee", (TileAttr){.kind = TILE_ATTR_SYMBOL, .s = "g"}}});
  add_op(m, f->body, TILE_OP_RETURN, 1, call->res, 0, NULL);

  TileType hbm = tile_type_buffer(TILE_SPACE_HBM, TILE_ELEM_F32, 2, (int64_t[]){64, 128});
  TileType vmem = tile_type_buffer(TILE_SPACE_VMEM, TILE_ELEM_F32, 3, (int64_t[]){2, 8, 128});
  TileFunc *k = new_func(m, "k", true, 1, &hbm, (const char *[]){"in"});
  TileOp *buf = add_op(m, k->body, TILE_OP_ALLOC, 0, NULL, 1, &vmem);
  buf->res[0]->name = "buf";
  TileOp *sem = add_op(m, k->body, TILE_OP_SEMAPHORE, 0, NULL, 1, (TileType[]){tile_type_sem()});
  TileOp *dma = add_op(m, k->body, TILE_OP_DMA_START, 3,
                       (TileValue *[]){k->body->args[0], buf->res[0], sem->res[0]}, 1,
                       (TileType[]){tile_type_token()});
  TileIndex src_idx[] = {{.c = 8}, {.c = 0}}, dst_idx[] = {{.c = 1}, {.c = 0}, {.c = 0}};
  dma->opnd[0] = (TileUse){k->body->args[0], true, 2, src_idx};
  dma->opnd[1] = (TileUse){buf->res[0], true, 3, dst_idx};
  set_attrs(m, &dma->attrs, 1,
            (TileNamedAttr[]){{"shape", A_list(m, TILE_ATTR_ARRAY, 2,
                                                (TileAttr[]){A_int(8), A_int(128)})}});
  add_op(m, k->body, TILE_OP_DMA_WAIT, 2, (TileValue *[]){sem->res[0], dma->res[0]}, 0, NULL);
  TileOp *ld = add_op(m, k->body, TILE_OP_LOAD, 1, buf->res, 1, &t);
  TileIndex ld_idx[] = {{.v = NULL, .c = 1}, {.c = 0}, {.c = 0}};
  ld->opnd[0] = (TileUse){buf->res[0], true, 3, ld_idx};
  TileOp *st = add_op(m, k->body, TILE_OP_STORE, 2, (TileValue *[]){ld->res[0], buf->res[0]}, 0,
                      NULL);
  TileIndex st_idx[] = {{.v = NULL, .c = 0}, {.c = 0}, {.c = 0}};
  st->opnd[1] = (TileUse){buf->res[0], true, 3, st_idx};
  add_op(m, k->body, TILE_OP_RETURN, 0, NULL, 0, NULL);

  char *text = tile_print_module_str(m);
  CHECK_STREQ("func @g(%a: tensor<8x128xf32>) -> tensor<8x128xf32> {\n"
              "  return %a\n"
              "}\n"
              "\n"
              "func @f(%x: tensor<8x128xf32>) -> tensor<8x128xf32> {\n"
              "  %0 = call @g(%x) : tensor<8x128xf32>\n"
              "  return %0\n"
              "}\n"
              "\n"
              "kernel @k(%in: hbm<64x128xf32>) {\n"
              "  %buf = alloc : vmem<2x8x128xf32>\n"
              "  %0 = semaphore : sem\n"
              "  %1 = dma_start %in[8, 0], %buf[1, 0, 0], %0 {shape = [8, 128]} : token\n"
              "  dma_wait %0, %1\n"
              "  %2 = load %buf[1, 0, 0] : tensor<8x128xf32>\n"
              "  store %2, %buf[0, 0, 0]\n"
              "  return\n"
              "}\n",
              text);
  check_fixed_point(text);
  char *ftext = print_func_str(k);
  CHECK(strstr(text, ftext) != NULL);
  free(ftext);
  free(text);
  tile_module_free(m);
}

/* tile_print_op numbers what it prints on its own, starting from 0. */
TEST(printer, print_op_numbers_locally) {
  TileModule *m = tile_module_new("t");
  TileType t = T(1, 4, 0);
  TileFunc *f = new_func(m, "f", false, 1, &t, NULL);
  TileOp *a = add_op(m, f->body, TILE_OP_NEG, 1, f->body->args, 1, &t);
  TileOp *b = add_op(m, f->body, TILE_OP_MUL, 2, (TileValue *[]){a->res[0], f->body->args[0]}, 1,
                     &t);
  char *text = print_op_str(b);
  CHECK_STREQ("%0 = mul %1, %2 : tensor<4xf32>\n", text);
  free(text);
  tile_module_free(m);
}

/* Ops whose structure does not fit their special form print generically, without
 * crashing, so the problem shows in the text. */
TEST(printer, malformed_ops_print_generically) {
  TileModule *m = tile_module_new("t");
  TileType t = T(1, 4, 0);
  TileFunc *f = new_func(m, "f", false, 1, &t, (const char *[]){"x"});
  TileOp *loop = add_op(m, f->body, TILE_OP_FOR, 0, NULL, 0, NULL); /* no bounds, no body */
  TileOp *call = add_op(m, f->body, TILE_OP_CALL, 1, f->body->args, 1, &t); /* no callee */
  TileOp *bad = add_op(m, f->body, TILE_OP_NEG, 1, (TileValue *[]){NULL}, 1, &t);
  bad->kind = TILE_OP_COUNT + 3;
  char *text = print_func_str(f);
  CHECK_STREQ("func @f(%x: tensor<4xf32>) {\n"
              "  for\n"
              "  %0 = call %x : tensor<4xf32>\n"
              "  %1 = ? %<null> : tensor<4xf32>\n"
              "}\n",
              text);
  free(text);
  (void)loop;
  (void)call;
  tile_module_free(m);
}

TEST(printer, module_str_matches_file_output) {
  TileModule *m = tile_module_new("t");
  TileType t = T(2, 2, 2);
  TileFunc *f = new_func(m, "f", false, 1, &t, NULL);
  add_op(m, f->body, TILE_OP_RETURN, 1, f->body->args, 0, NULL);
  set_ret(m, f, 1, &t);
  char *a = tile_print_module_str(m);
  char *b = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&b, &len);
  tile_print_module(out, m);
  fclose(out);
  CHECK_STREQ(a, b);
  CHECK_EQ(strlen(a), len);
  free(a);
  free(b);
  tile_module_free(m);
}

/* Text written by hand in other layouts comes out canonical, and stays so. */
TEST(printer, parse_print_is_canonical) {
  const char *src = "// a comment\n"
                    "mesh @tp = torus<2x2>(x = 2 on [0], y = 2 on [1])\n"
                    "func @f(%a: tensor<4x4xf32>,\n"
                    "        %b: tensor<4x4xf32> {shard = [x, -]}) -> tensor<4x4xf32>\n"
                    "    attributes {mesh = @tp} {\n"
                    "  %s = add %a, %b : tensor<4x4xf32>\n"
                    "  %r = for %i = 0 to 4 step 1 iter(%acc = %s) : tensor<4x4xf32> {\n"
                    "    %n = mul %acc, %acc : tensor<4x4xf32>\n"
                    "    yield %n\n"
                    "  }\n"
                    "  return %r\n"
                    "}\n";
  TileDiag d;
  tile_diag_init(&d, stderr, "<src>", src, strlen(src));
  TileModule *m = tile_parse(src, strlen(src), "<src>", &d);
  REQUIRE(m != NULL);
  char *text = tile_print_module_str(m);
  CHECK_STREQ("mesh @tp = torus<2x2>(x, y)\n"
              "\n"
              "func @f(%a: tensor<4x4xf32>, %b: tensor<4x4xf32> {shard = [x, -]})"
              " -> tensor<4x4xf32> attributes {mesh = @tp} {\n"
              "  %s = add %a, %b : tensor<4x4xf32>\n"
              "  %r = for %i = 0 to 4 step 1 iter(%acc = %s) : tensor<4x4xf32> {\n"
              "    %n = mul %acc, %acc : tensor<4x4xf32>\n"
              "    yield %n\n"
              "  }\n"
              "  return %r\n"
              "}\n",
              text);
  check_fixed_point(text);
  free(text);
  tile_module_free(m);
}

/* Attributes other than a special form's own (for's bounds, call's callee) go in a
 * dictionary before the ':'. */
TEST(printer, extra_attributes_of_special_forms) {
  TileModule *m = tile_module_new("t");
  TileType t = T(1, 4, 0);
  TileFunc *f = new_func(m, "f", false, 1, &t, (const char *[]){"x"});
  TileAttr shard = A_list(m, TILE_ATTR_ARRAY, 1, (TileAttr[]){A_ident("x")});
  TileOp *loop = add_op(m, f->body, TILE_OP_FOR, 1, f->body->args, 1, &t);
  set_attrs(m, &loop->attrs, 4,
            (TileNamedAttr[]){{"lower", A_int(0)}, {"shard", shard}, {"upper", A_int(2)},
                              {"step", A_int(1)}});
  TileBlock *body = add_region(m, loop, 2, (TileType[]){tile_type_scalar(TILE_ELEM_I32), t},
                               (const char *[]){"i", "a"});
  add_op(m, body, TILE_OP_YIELD, 1, &body->args[1], 0, NULL);
  TileOp *call = add_op(m, f->body, TILE_OP_CALL, 1, loop->res, 1, &t);
  set_attrs(m, &call->attrs, 2,
            (TileNamedAttr[]){{"shard", shard},
                              {"callee", (TileAttr){.kind = TILE_ATTR_SYMBOL, .s = "f"}}});
  char *text = print_func_str(f);
  CHECK_STREQ("func @f(%x: tensor<4xf32>) {\n"
              "  %0 = for %i = 0 to 2 step 1 iter(%a = %x) {shard = [x]} : tensor<4xf32> {\n"
              "    yield %a\n"
              "  }\n"
              "  %1 = call @f(%0) {shard = [x]} : tensor<4xf32>\n"
              "}\n",
              text);
  free(text);
  tile_module_free(m);
}
