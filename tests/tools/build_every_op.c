/* build_every_op: builds, through the builder API alone, a module that holds every op
 * of the op table (a mesh; a func with tensor ops, collectives, for, if and call; a
 * kernel with buffers, tile ops, DMA and semaphores), verifies it and prints it.
 *
 * It exits 1 with the builder's message when any build call fails, with the
 * verifier's messages when the module does not verify, and naming the op when some
 * kind of the op table was never built, so an op added to the table without
 * extending this program fails the lit test that runs it. */
#include <stdio.h>
#include <stdlib.h>

#include "tile/builder.h"
#include "tile/text.h"
#include "tile/verify.h"

static TileBuilder B;
static TileModule *M;

static void die(const char *what) {
  fprintf(stderr, "build_every_op: %s failed: %s\n", what, B.diag.last);
  exit(1);
}

/* ---- shorthands that stop at the first failure ---- */
/* An array literal and its length, as two arguments. */
#define ARRAY_ARGS(T, ...) (T[]){__VA_ARGS__}, (int)(sizeof((T[]){__VA_ARGS__}) / sizeof(T))
#define ATTRS(...) ARRAY_ARGS(TileNamedAttr, __VA_ARGS__)
#define VALS(...) ARRAY_ARGS(TileValue *, __VA_ARGS__)

/* A single-result op on plain values; res NULL infers the type. */
static TileValue *op1(TileOpKind k, TileValue *const *opnds, int nopnd, const TileNamedAttr *attrs,
                      int nattr, const TileType *res) {
  TileAttrDict d = {nattr, (TileNamedAttr *)attrs};
  TileValue *v = tile_build1(&B, k, nopnd, opnds, &d, res);
  if (!v) die(tile_op_name(k));
  return v;
}

/* The general form, for accesses and ops without exactly one result. */
static TileOp *opn(TileOpKind k, const TileUse *opnds, int nopnd, const TileNamedAttr *attrs,
                   int nattr, int nres, const TileType *res) {
  TileOp *op = tile_build_op(&B, k, nopnd, opnds, nattr, attrs, nres, res);
  if (!op) die(tile_op_name(k));
  return op;
}

static void yield(int n, TileValue *const *vals) {
  if (!tile_build_yield(&B, n, vals)) die("yield");
}

static void ret(int n, TileValue *const *vals) {
  if (!tile_build_return(&B, n, vals)) die("return");
}

static TileAttr ints(int n, const int64_t *v) { return tile_attr_ints(M, n, v); }
static TileAttr ident(const char *s) { return tile_attr_ident(M, s); }
static TileAttr axes1(const char *a) { return tile_attr_array(M, 1, (TileAttr[]){ident(a)}); }

static TileType tensor(TileElem e, int rank, const int64_t *dims) {
  return tile_type_tensor(e, rank, dims);
}

/* ---- the module ---- */
static void build_mesh(void) {
  if (!tile_build_mesh(&B, "tp", 2, (int64_t[]){2, 2}, 2, (const char *[]){"x", "y"}))
    die("mesh");
}

/* @scale, the callee of the call in @tensor_ops. */
static void build_callee(const TileType *t) {
  TileFunc *f = tile_build_func(&B, "scale", false, 1, t);
  if (!f) die("func @scale");
  TileValue *h = op1(TILE_OP_ADD, VALS(f->body->args[0], f->body->args[0]), NULL, 0, NULL);
  ret(1, &h);
}

static void build_elementwise(TileValue *a, TileValue *b, TileValue *n) {
  static const TileOpKind binary[] = {TILE_OP_ADD, TILE_OP_SUB, TILE_OP_MUL, TILE_OP_DIV,
                                      TILE_OP_REM, TILE_OP_MAX, TILE_OP_MIN, TILE_OP_POW};
  static const TileOpKind unary[] = {TILE_OP_NEG,  TILE_OP_ABS,   TILE_OP_EXP,
                                     TILE_OP_LOG,  TILE_OP_SQRT,  TILE_OP_RSQRT,
                                     TILE_OP_RECIP, TILE_OP_TANH, TILE_OP_LOGISTIC,
                                     TILE_OP_GELU, TILE_OP_SILU};
  static const TileOpKind bitwise[] = {TILE_OP_AND, TILE_OP_OR, TILE_OP_XOR};
  for (size_t i = 0; i < sizeof binary / sizeof binary[0]; i++)
    op1(binary[i], VALS(a, b), NULL, 0, NULL);
  for (size_t i = 0; i < sizeof unary / sizeof unary[0]; i++) op1(unary[i], VALS(a), NULL, 0, NULL);
  for (size_t i = 0; i < sizeof bitwise / sizeof bitwise[0]; i++)
    op1(bitwise[i], VALS(n, n), NULL, 0, NULL);
  op1(TILE_OP_NOT, VALS(n), NULL, 0, NULL);
  TileValue *mask = op1(TILE_OP_COMPARE, VALS(a, b), ATTRS({"dir", ident("lt")}), NULL);
  op1(TILE_OP_SELECT, VALS(mask, a, b), NULL, 0, NULL);
}

/* Structure ops on a: tensor<8x128xf32>, with w: tensor<128x64xf32>,
 * row: tensor<128xf32> and idx: tensor<4xi32>. */
static void build_structure(TileValue *a, TileValue *b, TileValue *w, TileValue *row,
                            TileValue *idx) {
  TileType wide = tensor(TILE_ELEM_F32, 2, (int64_t[]){8, 64});
  op1(TILE_OP_MATMUL, VALS(a, w), NULL, 0, &wide);
  op1(TILE_OP_DOT_GENERAL, VALS(a, w),
      ATTRS({"lhs_batch", ints(0, NULL)}, {"rhs_batch", ints(0, NULL)},
            {"lhs_contract", ints(1, (int64_t[]){1})}, {"rhs_contract", ints(1, (int64_t[]){0})}),
      NULL);
  op1(TILE_OP_REDUCE, VALS(a), ATTRS({"kind", ident("max")}, {"dims", ints(1, (int64_t[]){1})}),
      NULL);
  op1(TILE_OP_ARGMAX, VALS(a), ATTRS({"dim", tile_attr_int(1)}), NULL);
  TileType full = tensor(TILE_ELEM_F32, 2, (int64_t[]){8, 128});
  op1(TILE_OP_BROADCAST, VALS(row), ATTRS({"dims", ints(1, (int64_t[]){1})}), &full);
  op1(TILE_OP_TRANSPOSE, VALS(a), ATTRS({"perm", ints(2, (int64_t[]){1, 0})}), NULL);
  TileType flat = tensor(TILE_ELEM_F32, 1, (int64_t[]){1024});
  op1(TILE_OP_RESHAPE, VALS(a), NULL, 0, &flat);
  op1(TILE_OP_SLICE, VALS(a),
      ATTRS({"start", ints(2, (int64_t[]){0, 0})}, {"limit", ints(2, (int64_t[]){4, 128})}), NULL);
  op1(TILE_OP_CONCATENATE, VALS(a, b), ATTRS({"dim", tile_attr_int(0)}), NULL);
  op1(TILE_OP_GATHER, VALS(a, idx), ATTRS({"axis", tile_attr_int(0)}), NULL);
  TileOp *topk = opn(TILE_OP_TOPK, (TileUse[]){{a}}, 1, ATTRS({"k", tile_attr_int(4)}), -1, NULL);
  if (topk->nres != 2) die("topk results");
  TileType half = tensor(TILE_ELEM_BF16, 2, (int64_t[]){8, 128});
  op1(TILE_OP_CONVERT, VALS(a), NULL, 0, &half);
  TileType iota = tensor(TILE_ELEM_I32, 2, (int64_t[]){8, 128});
  op1(TILE_OP_IOTA, NULL, 0, ATTRS({"dim", tile_attr_int(1)}), &iota);
  op1(TILE_OP_CONSTANT, NULL, 0, ATTRS({"value", tile_attr_float(0.5)}), &full);
  TileType four = tensor(TILE_ELEM_I32, 1, (int64_t[]){4});
  TileAttr elems[] = {tile_attr_int(3), tile_attr_int(1), tile_attr_int(4), tile_attr_int(-1)};
  op1(TILE_OP_CONSTANT, NULL, 0, ATTRS({"value", tile_attr_array(M, 4, elems)}), &four);
}

static void build_composites(TileValue *a, TileValue *row) {
  op1(TILE_OP_SOFTMAX, VALS(a), ATTRS({"dim", tile_attr_int(1)}), NULL);
  op1(TILE_OP_LAYERNORM, VALS(a, row, row), ATTRS({"eps", tile_attr_float(1e-5)}), NULL);
  op1(TILE_OP_RMSNORM, VALS(a, row), ATTRS({"eps", tile_attr_float(1e-6)}), NULL);
  /* rope on [S = 8, D = 128] with cos and sin [8, 64], taken from a by strided slices. */
  TileNamedAttr even[] = {{"start", ints(2, (int64_t[]){0, 0})},
                          {"limit", ints(2, (int64_t[]){8, 128})},
                          {"stride", ints(2, (int64_t[]){1, 2})}};
  TileValue *cs = op1(TILE_OP_SLICE, VALS(a), even, 3, NULL);
  TileValue *sn = op1(TILE_OP_NEG, VALS(cs), NULL, 0, NULL);
  op1(TILE_OP_ROPE, VALS(a, cs, sn), NULL, 0, NULL);
  TileType qkv = tensor(TILE_ELEM_F32, 4, (int64_t[]){1, 2, 4, 128});
  TileValue *q = op1(TILE_OP_RESHAPE, VALS(a), NULL, 0, &qkv);
  op1(TILE_OP_ATTENTION, VALS(q, q, q),
      ATTRS({"scale", tile_attr_float(0.088388347648318447)}, {"causal", tile_attr_int(1)}), NULL);
}

static void build_collectives(TileValue *a) {
  op1(TILE_OP_ALL_REDUCE, VALS(a), ATTRS({"kind", ident("add")}, {"axes", axes1("x")}), NULL);
  op1(TILE_OP_ALL_GATHER, VALS(a),
      ATTRS({"dim", tile_attr_int(0)}, {"axes", axes1("y")}, {"mesh", tile_attr_symbol(M, "tp")}),
      NULL);
  op1(TILE_OP_REDUCE_SCATTER, VALS(a),
      ATTRS({"kind", ident("add")}, {"dim", tile_attr_int(1)}, {"axes", axes1("x")}), NULL);
  TileAttr xy = tile_attr_array(M, 2, (TileAttr[]){ident("x"), ident("y")});
  op1(TILE_OP_ALL_TO_ALL, VALS(a),
      ATTRS({"split_dim", tile_attr_int(1)}, {"concat_dim", tile_attr_int(0)}, {"axes", xy}),
      NULL);
  op1(TILE_OP_COLLECTIVE_PERMUTE, VALS(a), ATTRS({"axis", ident("y")}, {"shift", tile_attr_int(1)}),
      NULL);
  TileValue *chunk = op1(TILE_OP_RING_SLICE, VALS(a),
                         ATTRS({"axis", ident("y")}, {"step", tile_attr_int(1)}), NULL);
  op1(TILE_OP_RING_CONCAT, VALS(chunk, chunk), ATTRS({"axis", ident("y")}), NULL);
}

/* for with a carried value around a call, then an if with a result. */
static TileValue *build_control(TileValue *a, TileValue *b, TileValue *c) {
  TileOp *loop = tile_build_for(&B, 0, 4, 1, 1, &a);
  if (!loop) die("for");
  TileBlock *outer = B.block;
  tile_builder_set_block(&B, loop->region[0]);
  TileOp *call = opn(TILE_OP_CALL, (TileUse[]){{loop->region[0]->args[1]}}, 1,
                     ATTRS({"callee", tile_attr_symbol(M, "scale")}), -1, NULL);
  yield(1, call->res);

  tile_builder_set_block(&B, outer);
  TileOp *br = tile_build_if(&B, c, 1, &a->type);
  if (!br) die("if");
  tile_builder_set_block(&B, br->region[0]);
  yield(1, loop->res);
  tile_builder_set_block(&B, br->region[1]);
  TileValue *d = op1(TILE_OP_SUB, VALS(b, a), NULL, 0, NULL);
  yield(1, &d);
  tile_builder_set_block(&B, outer);
  return br->res[0];
}

static void build_tensor_func(void) {
  TileType t = tensor(TILE_ELEM_F32, 2, (int64_t[]){8, 128});
  build_callee(&t);
  TileType params[] = {
      t,
      t,
      tensor(TILE_ELEM_I32, 2, (int64_t[]){8, 128}),
      tile_type_scalar(TILE_ELEM_I1),
      tensor(TILE_ELEM_F32, 2, (int64_t[]){128, 64}),
      tensor(TILE_ELEM_F32, 1, (int64_t[]){128}),
      tensor(TILE_ELEM_I32, 1, (int64_t[]){4}),
  };
  TileFunc *f = tile_build_func(&B, "tensor_ops", false, 7, params);
  if (!f) die("func @tensor_ops");
  tile_build_arg_attr(&B, f, 1, "shard", tile_attr_array(M, 2, (TileAttr[]){tile_attr_none(),
                                                                             ident("x")}));
  tile_build_func_attr(&B, f, "mesh", tile_attr_symbol(M, "tp"));
  if (B.diag.nerrors) die("attributes of @tensor_ops");
  TileValue **p = f->body->args;
  build_elementwise(p[0], p[1], p[2]);
  build_structure(p[0], p[1], p[4], p[5], p[6]);
  build_composites(p[0], p[5]);
  build_collectives(p[0]);
  TileValue *r = build_control(p[0], p[1], p[3]);
  ret(1, &r);
}

static TileUse at(TileValue *buf, int n, TileIndex *idx) { return (TileUse){buf, true, n, idx}; }

/* A kernel: y[i] = x[i] @ w, eight rows at a time, through vmem and the matrix
 * unit; then a signal to the next chip along x and a wait for its signal. */
static void build_kernel(void) {
  TileType params[] = {
      tile_type_buffer(TILE_SPACE_HBM, TILE_ELEM_BF16, 2, (int64_t[]){64, 128}),
      tile_type_buffer(TILE_SPACE_HBM, TILE_ELEM_BF16, 2, (int64_t[]){128, 128}),
      tile_type_buffer(TILE_SPACE_HBM, TILE_ELEM_F32, 2, (int64_t[]){64, 128}),
  };
  TileFunc *k = tile_build_func(&B, "rows_matmul", true, 3, params);
  if (!k) die("kernel @rows_matmul");
  TileValue *in = k->body->args[0], *w = k->body->args[1], *out = k->body->args[2];
  TileType xt = tile_type_buffer(TILE_SPACE_VMEM, TILE_ELEM_BF16, 3, (int64_t[]){2, 8, 128});
  TileType wt = tile_type_buffer(TILE_SPACE_VMEM, TILE_ELEM_BF16, 2, (int64_t[]){128, 128});
  TileType ot = tile_type_buffer(TILE_SPACE_VMEM, TILE_ELEM_F32, 2, (int64_t[]){8, 128});
  TileValue *xbuf = op1(TILE_OP_ALLOC, NULL, 0, NULL, 0, &xt);
  TileValue *wbuf = op1(TILE_OP_ALLOC, NULL, 0, NULL, 0, &wt);
  TileValue *obuf = op1(TILE_OP_ALLOC, NULL, 0, NULL, 0, &ot);
  TileValue *sem = op1(TILE_OP_SEMAPHORE, NULL, 0, NULL, 0, NULL);

  TileIndex zero2[] = {{.c = 0}, {.c = 0}}, slot1[] = {{.c = 1}, {.c = 0}, {.c = 0}};
  TileAttr block = ints(2, (int64_t[]){8, 128}), whole = ints(2, (int64_t[]){128, 128});
  TileOp *wcopy = opn(TILE_OP_DMA_START, (TileUse[]){at(w, 2, zero2), at(wbuf, 2, zero2), {sem}},
                      3, ATTRS({"shape", whole}), 1, NULL);
  opn(TILE_OP_DMA_WAIT, (TileUse[]){{sem}, {wcopy->res[0]}}, 2, NULL, 0, 0, NULL);
  TileType wtile = tensor(TILE_ELEM_BF16, 2, (int64_t[]){128, 128});
  TileValue *wv = opn(TILE_OP_LOAD, (TileUse[]){at(wbuf, 2, zero2)}, 1, NULL, 0, 1, &wtile)->res[0];

  TileOp *loop = tile_build_for(&B, 0, 64, 8, 0, NULL);
  if (!loop) die("for");
  tile_builder_set_block(&B, loop->region[0]);
  TileValue *i = loop->region[0]->args[0];
  TileIndex rows[] = {{.v = i}, {.c = 0}};
  TileOp *in_copy = opn(TILE_OP_DMA_START, (TileUse[]){at(in, 2, rows), at(xbuf, 3, slot1), {sem}},
                        3, ATTRS({"shape", block}), 1, NULL);
  opn(TILE_OP_DMA_WAIT, (TileUse[]){{sem}, {in_copy->res[0]}}, 2, NULL, 0, 0, NULL);
  TileType xtile = tensor(TILE_ELEM_BF16, 2, (int64_t[]){8, 128});
  TileType otile = tensor(TILE_ELEM_F32, 2, (int64_t[]){8, 128});
  TileValue *xv =
      opn(TILE_OP_LOAD, (TileUse[]){at(xbuf, 3, slot1)}, 1, NULL, 0, 1, &xtile)->res[0];
  TileValue *acc = opn(TILE_OP_LOAD, (TileUse[]){at(obuf, 2, zero2)}, 1, NULL, 0, 1, &otile)->res[0];
  TileValue *y = op1(TILE_OP_TILE_MATMUL, VALS(xv, wv, acc), NULL, 0, NULL);
  opn(TILE_OP_STORE, (TileUse[]){{y}, at(obuf, 2, zero2)}, 2, NULL, 0, 0, NULL);
  opn(TILE_OP_DMA_START, (TileUse[]){at(obuf, 2, zero2), at(out, 2, rows), {sem}}, 3,
      ATTRS({"shape", block}), 1, NULL);
  opn(TILE_OP_DMA_WAIT, (TileUse[]){{sem}}, 1, NULL, 0, 0, NULL);
  yield(0, NULL);

  tile_builder_set_block(&B, k->body);
  TileAttr peer = tile_attr_tuple(M, 2, (TileAttr[]){ident("x"), tile_attr_int(1)});
  opn(TILE_OP_SEM_SIGNAL, (TileUse[]){{sem}}, 1, ATTRS({"count", tile_attr_int(1)}, {"peer", peer}),
      0, NULL);
  opn(TILE_OP_SEM_WAIT, (TileUse[]){{sem}}, 1, ATTRS({"count", tile_attr_int(1)}), 0, NULL);
  ret(0, NULL);
}

/* ---- coverage of the op table ---- */
static void count_block(const TileBlock *blk, int *count);

static void count_op(const TileOp *op, int *count) {
  if (op->kind < TILE_OP_COUNT) count[op->kind]++;
  for (int i = 0; i < op->nregion; i++) count_block(op->region[i], count);
}

static void count_block(const TileBlock *blk, int *count) {
  for (const TileOp *op = blk->first; op; op = op->next) count_op(op, count);
}

int main(void) {
  M = tile_module_new("every_op");
  tile_builder_init(&B, M);
  build_mesh();
  build_tensor_func();
  build_kernel();
  if (B.diag.nerrors) die("building");

  int count[TILE_OP_COUNT] = {0}, missing = 0;
  for (const TileFunc *f = M->funcs; f; f = f->next) count_block(f->body, count);
  for (int k = 0; k < TILE_OP_COUNT; k++)
    if (!count[k]) {
      fprintf(stderr, "build_every_op: op '%s' of the op table is never built; add it here\n",
              tile_op_name(k));
      missing++;
    }
  if (missing) return 1;

  TileDiag d;
  tile_diag_init(&d, stderr, "every_op", NULL, 0);
  if (!tile_verify_module(M, &d) || d.nerrors) {
    fprintf(stderr, "build_every_op: the built module does not verify\n");
    return 1;
  }
  tile_print_module(stdout, M);
  tile_module_free(M);
  return fflush(stdout) == 0 ? 0 : 1;
}
