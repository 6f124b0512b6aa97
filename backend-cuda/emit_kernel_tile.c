/* Tiles of a tile-level kernel on the CUDA backend: elementwise ops, the copies of
 * load, store and dma_start, and tile_matmul.
 *
 * Tiles are row-major arrays in their storage type (bf16 as 16-bit words, so every
 * op rounds its result to the type as the machine does). A block-wide op has the
 * threads of the block stride over the elements and ends with a barrier. A `load`
 * whose uses all come before anything writes its buffer is a view: its uses read
 * the buffer where the tile lies, so a matmul's operands are not copied first.
 * tile_matmul runs on tensor cores: each warp takes 16 x 8 output tiles in turn and
 * accumulates mma.sync m16n8k16 (bf16 or f16 in, f32 accumulate) over K, reading its
 * fragments from shared or global memory; other element types or shapes that are
 * not multiples of 16 x 8 x 16 use a per-element loop in f32. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emit_kernel.h"

/* ---- offsets ---- */

static int64_t stride_of(const TileType *b, int d) {
  int64_t s = 1;
  for (int i = d + 1; i < b->rank; i++) s *= b->dims[i];
  return s;
}

/* The offset, in buffer b, of element i (flat, a C expression) of a block of shape t
 * covering b's trailing dims. */
static void block_offset(const TileType *t, const TileType *b, const char *i, char *out,
                         size_t len) {
  int rt = t->kind == TILE_TY_TENSOR ? t->rank : 0, rb = b->rank;
  if (rt == 0) {
    snprintf(out, len, "0");
    return;
  }
  bool contiguous = true;
  for (int j = 1; j < rt; j++)
    if (t->dims[j] != b->dims[rb - rt + j]) contiguous = false;
  if (contiguous) {
    snprintf(out, len, "(%s)", i);
    return;
  }
  size_t n = (size_t)snprintf(out, len, "(");
  int64_t inner = 1;
  for (int j = rt - 1; j >= 0 && n < len; j--) {
    n += (size_t)snprintf(out + n, len - n, "%s((%s) / %lld %% %lld) * %lld", j == rt - 1 ? "" : " + ",
                          i, (long long)inner, (long long)t->dims[j],
                          (long long)stride_of(b, rb - rt + j));
    inner *= t->dims[j];
  }
  if (n < len) snprintf(out + n, len - n, ")");
}

/* Declares the element offset of access u's origin; writes the variable's name. */
static void access_base(KEmit *k, const TileUse *u, char *name, size_t len) {
  const TileType *b = &u->v->type;
  Buf e = {0};
  int64_t c = 0;
  for (int d = 0; d < u->nidx; d++) {
    const TileIndex *ix = &u->idx[d];
    if (!ix->v) {
      c += ix->c * stride_of(b, d);
      continue;
    }
    char idx[64];
    k_index(k, u, d, idx, sizeof idx);
    buf_printf(&e, "%s * %lld + ", idx, (long long)stride_of(b, d));
  }
  snprintf(name, len, "o%d", k->nnames++);
  kline(k, "const int %s = %s%lld;", name, e.p ? e.p : "", (long long)c);
  buf_free(&e);
}

void kt_elem(KEmit *k, const KVal *kv, const char *i, char *out, size_t len) {
  (void)k;
  TileElem e = (TileElem)kv->v->type.elem;
  char at[640];
  Buf b = {0};
  switch (kv->kind) {
  case KV_SPLAT: snprintf(out, len, "%s", kv->lit); return;
  case KV_SCALAR: snprintf(out, len, "%s", kv->name); return;
  case KV_VIEW: {
    char off[256];
    block_offset(&kv->v->type, kv->buf, i, off, sizeof off);
    snprintf(at, sizeof at, "%s[%s + %s]", kv->name, kv->off, off);
    break;
  }
  default: snprintf(at, sizeof at, "%s[%s]", kv->name, i); break;
  }
  ce_load_expr(&b, e, at);
  snprintf(out, len, "%s", b.p ? b.p : "0");
  buf_free(&b);
}

/* ---- elementwise arithmetic ---- */

bool kt_is_elementwise(int kind) {
  switch (kind) {
  case TILE_OP_ADD: case TILE_OP_SUB: case TILE_OP_MUL: case TILE_OP_DIV: case TILE_OP_REM:
  case TILE_OP_MAX: case TILE_OP_MIN: case TILE_OP_POW: case TILE_OP_AND: case TILE_OP_OR:
  case TILE_OP_XOR: case TILE_OP_NEG: case TILE_OP_ABS: case TILE_OP_NOT: case TILE_OP_EXP:
  case TILE_OP_LOG: case TILE_OP_SQRT: case TILE_OP_RSQRT: case TILE_OP_RECIP:
  case TILE_OP_TANH: case TILE_OP_LOGISTIC: case TILE_OP_COMPARE: case TILE_OP_SELECT:
  case TILE_OP_CONVERT: case TILE_OP_GELU: case TILE_OP_SILU: return true;
  default: return false;
  }
}

/* Float ops: X(op, format); the operands are %1$s and %2$s. */
typedef struct OpFmt {
  int kind;
  const char *flt, *intg; /* NULL: not defined on that kind of type */
} OpFmt;

static const OpFmt op_fmts[] = {
    {TILE_OP_ADD, "(A + B)", "(A + B)"},
    {TILE_OP_SUB, "(A - B)", "(A - B)"},
    {TILE_OP_MUL, "(A * B)", "(A * B)"},
    {TILE_OP_DIV, "(A / B)", "(A / B)"},
    {TILE_OP_REM, "fmodf(A, B)", "(A % B)"},
    {TILE_OP_MAX, "tc_fmax(A, B)", "TcMax()(A, B)"},
    {TILE_OP_MIN, "tc_fmin(A, B)", "TcMin()(A, B)"},
    {TILE_OP_POW, "powf(A, B)", NULL},
    {TILE_OP_AND, NULL, "(A & B)"},
    {TILE_OP_OR, NULL, "(A | B)"},
    {TILE_OP_XOR, NULL, "(A ^ B)"},
    {TILE_OP_NEG, "(-A)", "(-A)"},
    {TILE_OP_ABS, "fabsf(A)", "(A < 0 ? -A : A)"},
    {TILE_OP_EXP, "expf(A)", NULL},
    {TILE_OP_LOG, "logf(A)", NULL},
    {TILE_OP_SQRT, "sqrtf(A)", NULL},
    {TILE_OP_RSQRT, "rsqrtf(A)", NULL},
    {TILE_OP_RECIP, "(1.0f / A)", NULL},
    {TILE_OP_TANH, "tanhf(A)", NULL},
    {TILE_OP_LOGISTIC, "(1.0f / (1.0f + expf(-A)))", NULL},
    {TILE_OP_GELU, "(0.5f * A * (1.0f + tanhf(0.7978845608f * (A + 0.044715f * A * A * A))))",
     NULL},
    {TILE_OP_SILU, "(A / (1.0f + expf(-A)))", NULL},
    {TILE_OP_SELECT, "(A ? B : C)", "(A ? B : C)"},
};

/* Writes fmt with A, B, C replaced by the operand expressions (parenthesized). */
static void expand(const char *fmt, const char *const *x, char *out, size_t len) {
  size_t n = 0;
  for (const char *p = fmt; *p && n + 1 < len; p++) {
    if (*p == 'A' || *p == 'B' || *p == 'C') {
      n += (size_t)snprintf(out + n, len - n, "(%s)", x[*p - 'A']);
      if (n >= len) n = len - 1;
    } else {
      out[n++] = *p;
    }
  }
  out[n] = 0;
}

bool kt_expr(KEmit *k, const TileOp *op, const char *const *x, char *out, size_t len) {
  TileElem re = (TileElem)op->res[0]->type.elem;
  TileElem oe = (TileElem)op->opnd[op->kind == TILE_OP_SELECT ? 1 : 0].v->type.elem;
  if (op->kind == TILE_OP_COMPARE) {
    static const char *const dirs[][2] = {{"eq", "=="}, {"ne", "!="}, {"lt", "<"},
                                          {"le", "<="}, {"gt", ">"},  {"ge", ">="}};
    const TileAttr *a = tile_attr_get(&op->attrs, "dir");
    for (size_t i = 0; a && a->kind == TILE_ATTR_IDENT && i < sizeof dirs / sizeof *dirs; i++)
      if (strcmp(a->s, dirs[i][0]) == 0) {
        snprintf(out, len, "((%s) %s (%s))", x[0], dirs[i][1], x[1]);
        return true;
      }
    return tile_error(k->d, op->loc, "compare needs dir = eq, ne, lt, le, gt or ge");
  }
  if (op->kind == TILE_OP_CONVERT) {
    bool ff = tile_elem_is_float(oe);
    if (re == TILE_ELEM_I1) snprintf(out, len, ff ? "((%s) != 0.0f)" : "((%s) != 0)", x[0]);
    else snprintf(out, len, "(%s)(%s)", ce_compute_type(re), x[0]);
    return true;
  }
  bool flt = tile_elem_is_float(oe);
  for (size_t i = 0; i < sizeof op_fmts / sizeof *op_fmts; i++) {
    if (op_fmts[i].kind != op->kind) continue;
    const char *fmt = flt ? op_fmts[i].flt : op_fmts[i].intg;
    if (!fmt) break;
    if (op->kind == TILE_OP_NOT) fmt = oe == TILE_ELEM_I1 ? "(!A)" : "(~A)";
    expand(fmt, x, out, len);
    return true;
  }
  if (op->kind == TILE_OP_NOT && !flt) {
    expand(oe == TILE_ELEM_I1 ? "(!A)" : "(~A)", x, out, len);
    return true;
  }
  return tile_error(k->d, op->loc, "'%s' on %s has no CUDA lowering in a kernel",
                    tile_op_name((TileOpKind)op->kind), tile_elem_name(oe));
}

/* Writes `dst[i] = value` for every element i of n, and a barrier. */
static void per_element(KEmit *k, int64_t n, const char *lhs, TileElem e, const char *value) {
  Buf s = {0};
  ce_store_expr(&s, e, value);
  kline(k, "for (int i = threadIdx.x; i < %lld; i += blockDim.x) %s = %s;", (long long)n, lhs,
        s.p ? s.p : "0");
  buf_free(&s);
}

bool kt_elementwise(KEmit *k, const TileOp *op) {
  const TileValue *r = op->res[0];
  if (r->type.kind != TILE_TY_TENSOR || !ce_elem_supported((TileElem)r->type.elem))
    return tile_error(k->d, op->loc, "the CUDA backend has no %s tiles",
                      tile_elem_name((TileElem)r->type.elem));
  char x[3][400];
  const char *xp[3] = {"", "", ""};
  int inplace = -1;
  for (int i = 0; i < op->nopnd && i < 3; i++) {
    const KVal *kv = kv_of(k, op->opnd[i].v);
    if (!kv) return tile_error(k->d, op->loc, "internal error: operand %d has no CUDA form", i + 1);
    kt_elem(k, kv, "i", x[i], sizeof x[i]);
    xp[i] = x[i];
    /* A tile of the result's type read only here is overwritten in place. */
    if (inplace < 0 && kv->kind == KV_TILE && kv->v->type.elem == r->type.elem &&
        k_count_uses(k->f->body, kv->v) == 1)
      inplace = i;
  }
  char e[1024];
  if (!kt_expr(k, op, xp, e, sizeof e)) return false;
  if (!k_tile_result(k, op, inplace)) return false;
  const KVal *d = kv_of(k, r);
  char lhs[96];
  snprintf(lhs, sizeof lhs, "%s[i]", d->name);
  kline(k, "// %s", tile_op_name((TileOpKind)op->kind));
  per_element(k, tile_type_numel(&r->type), lhs, (TileElem)r->type.elem, e);
  kline(k, "__syncthreads();");
  return true;
}

bool kt_copy(KEmit *k, const KVal *dst, const KVal *src) {
  char v[400], lhs[96];
  kt_elem(k, src, "i", v, sizeof v);
  snprintf(lhs, sizeof lhs, "%s[i]", dst->name);
  per_element(k, tile_type_numel(&dst->v->type), lhs, (TileElem)dst->v->type.elem, v);
  return true;
}

/* ---- load, store, dma_start ---- */

static bool writes_buffer(const TileOp *op, const TileValue *buf) {
  if ((op->kind == TILE_OP_STORE || op->kind == TILE_OP_DMA_START) && op->opnd[1].v == buf)
    return true;
  for (int r = 0; r < op->nregion; r++)
    for (const TileOp *o = op->region[r]->first; o; o = o->next)
      if (writes_buffer(o, buf)) return true;
  return false;
}

/* Uses of v by op o and the ops of its regions. */
static int op_uses(const TileOp *o, const TileValue *v) {
  int n = 0;
  for (int i = 0; i < o->nopnd; i++) {
    if (o->opnd[i].v == v) n++;
    for (int j = 0; j < o->opnd[i].nidx; j++)
      if (o->opnd[i].idx[j].v == v) n++;
  }
  for (int r = 0; r < o->nregion; r++) n += k_count_uses(o->region[r], v);
  return n;
}

/* Can load op be read in place: is its buffer unwritten from the load to its last use
 * (every use lies in the load's block or below)? */
static bool can_view(KEmit *k, const TileOp *op) {
  const TileValue *v = op->res[0], *buf = op->opnd[0].v;
  int total = k_count_uses(k->f->body, v), seen = 0;
  if (total == 0) return true;
  for (const TileOp *o = op->next; o; o = o->next) {
    if (writes_buffer(o, buf)) return false;
    seen += op_uses(o, v);
    if (seen >= total) return true;
  }
  return false;
}

bool kt_load(KEmit *k, const TileOp *op) {
  const TileValue *r = op->res[0];
  const KVal *b = kv_of(k, op->opnd[0].v);
  if (!b || b->kind != KV_BUF) return tile_error(k->d, op->loc, "load reads a buffer");
  char base[32];
  access_base(k, &op->opnd[0], base, sizeof base);
  TileElem e = (TileElem)r->type.elem;
  if (r->type.kind == TILE_TY_SCALAR) {
    if (e != TILE_ELEM_I1 && e != TILE_ELEM_I32 && e != TILE_ELEM_I64 && e != TILE_ELEM_F32)
      return tile_error(k->d, op->loc, "the CUDA backend has no %s scalars in a kernel",
                        tile_elem_name(e));
    char at[160];
    snprintf(at, sizeof at, "%s[%s]", b->name, base);
    Buf x = {0};
    ce_load_expr(&x, e, at);
    KVal *kv = kv_new(k, r, KV_SCALAR);
    if (kv) kline(k, "const %s %s = %s;", ce_compute_type(e), kv->name, x.p ? x.p : "0");
    buf_free(&x);
    return kv != NULL;
  }
  char bname[64];
  snprintf(bname, sizeof bname, "%s", b->name);
  const TileType *bt = &op->opnd[0].v->type;
  if (can_view(k, op)) {
    KVal *kv = kv_new(k, r, KV_VIEW);
    if (!kv) return false;
    snprintf(kv->name, sizeof kv->name, "%s", bname);
    snprintf(kv->off, sizeof kv->off, "%s", base);
    kv->buf = bt;
    kline(k, "// %%%s: read in place at %s[%s]", r->name ? r->name : "load", bname, base);
    return true;
  }
  if (!k_tile_result(k, op, -1)) return false;
  const KVal *d = kv_of(k, r);
  char off[256], src[400], lhs[96];
  block_offset(&r->type, bt, "i", off, sizeof off);
  snprintf(src, sizeof src, "%s[%s + %s]", bname, base, off);
  snprintf(lhs, sizeof lhs, "%s[i]", d->name);
  kline(k, "for (int i = threadIdx.x; i < %lld; i += blockDim.x) %s = %s;",
        (long long)tile_type_numel(&r->type), lhs, src);
  kline(k, "__syncthreads();");
  return true;
}

bool kt_store(KEmit *k, const TileOp *op) {
  const KVal *v = kv_of(k, op->opnd[0].v), *b = kv_of(k, op->opnd[1].v);
  if (!v || !b || b->kind != KV_BUF) return tile_error(k->d, op->loc, "store writes a buffer");
  char base[32];
  access_base(k, &op->opnd[1], base, sizeof base);
  TileElem e = (TileElem)op->opnd[0].v->type.elem;
  const TileType *bt = &op->opnd[1].v->type;
  if (op->opnd[0].v->type.kind == TILE_TY_SCALAR) {
    Buf x = {0};
    ce_store_expr(&x, e, v->name);
    kline(k, "if (threadIdx.x == 0) %s[%s] = %s;", b->name, base, x.p ? x.p : "0");
    buf_free(&x);
  } else {
    char off[256], lhs[400], val[400];
    block_offset(&op->opnd[0].v->type, bt, "i", off, sizeof off);
    snprintf(lhs, sizeof lhs, "%s[%s + %s]", b->name, base, off);
    kt_elem(k, v, "i", val, sizeof val);
    per_element(k, tile_type_numel(&op->opnd[0].v->type), lhs, e, val);
  }
  kline(k, "__syncthreads();");
  return true;
}

bool kt_dma(KEmit *k, const TileOp *op) {
  if (tile_attr_get(&op->attrs, "peer"))
    return tile_error(k->d, op->loc, "the CUDA backend runs a kernel on one GPU; a dma_start to "
                      "a peer has no CUDA lowering");
  const TileAttr *sh = tile_attr_get(&op->attrs, "shape");
  const KVal *s = kv_of(k, op->opnd[0].v), *d = kv_of(k, op->opnd[1].v);
  if (!sh || sh->kind != TILE_ATTR_ARRAY || !s || !d || s->kind != KV_BUF || d->kind != KV_BUF)
    return tile_error(k->d, op->loc, "dma_start copies between buffers with a shape");
  int64_t dims[TILE_MAX_RANK];
  for (int i = 0; i < sh->n && i < TILE_MAX_RANK; i++) dims[i] = sh->elems[i].i;
  TileType block = tile_type_tensor((TileElem)op->opnd[0].v->type.elem, sh->n, dims);
  char sb[32], db[32], so[256], dof[256];
  access_base(k, &op->opnd[0], sb, sizeof sb);
  access_base(k, &op->opnd[1], db, sizeof db);
  block_offset(&block, &op->opnd[0].v->type, "i", so, sizeof so);
  block_offset(&block, &op->opnd[1].v->type, "i", dof, sizeof dof);
  kline(k, "// dma_start: a copy by the whole block, complete at the barrier after it");
  kline(k, "for (int i = threadIdx.x; i < %lld; i += blockDim.x) %s[%s + %s] = %s[%s + %s];",
        (long long)tile_type_numel(&block), d->name, db, dof, s->name, sb, so);
  kline(k, "__syncthreads();");
  return true;
}

/* ---- tile_matmul ---- */

/* Element (r, c) of rank-2 value kv, in its storage type (tiles and views only). */
static void raw2(const KVal *kv, const char *r, const char *c, char *out, size_t len) {
  if (kv->kind == KV_VIEW)
    snprintf(out, len, "%s[%s + (%s) * %lld + (%s)]", kv->name, kv->off, r,
             (long long)kv->buf->dims[kv->buf->rank - 1], c);
  else
    snprintf(out, len, "%s[(%s) * %lld + (%s)]", kv->name, r, (long long)kv->v->type.dims[1], c);
}

/* Element (r, c) of kv in compute type. */
static void val2(const KVal *kv, const char *r, const char *c, char *out, size_t len) {
  if (kv->kind == KV_SPLAT) {
    snprintf(out, len, "%s", kv->lit);
    return;
  }
  char at[640];
  raw2(kv, r, c, at, sizeof at);
  Buf b = {0};
  ce_load_expr(&b, (TileElem)kv->v->type.elem, at);
  snprintf(out, len, "%s", b.p ? b.p : "0");
  buf_free(&b);
}

bool kt_matmul(KEmit *k, const TileOp *op) {
  const KVal *a = kv_of(k, op->opnd[0].v), *b = kv_of(k, op->opnd[1].v),
             *acc = kv_of(k, op->opnd[2].v);
  if (!a || !b || !acc) return tile_error(k->d, op->loc, "internal error: tile_matmul operands");
  int64_t M = op->opnd[0].v->type.dims[0], K = op->opnd[0].v->type.dims[1],
          N = op->opnd[1].v->type.dims[1];
  TileElem e = (TileElem)op->opnd[0].v->type.elem;
  if (!ce_elem_supported(e))
    return tile_error(k->d, op->loc, "the CUDA backend has no %s tile_matmul", tile_elem_name(e));
  int inplace = acc->kind == KV_TILE && k_count_uses(k->f->body, acc->v) == 1 ? 2 : -1;
  if (!k_tile_result(k, op, inplace)) return false;
  /* The result may have moved the array: look the operands up again. */
  a = kv_of(k, op->opnd[0].v);
  b = kv_of(k, op->opnd[1].v);
  acc = kv_of(k, op->opnd[2].v);
  const KVal *d = kv_of(k, op->res[0]);
  char x[400], y[400], z[400];
  bool mma = (e == TILE_ELEM_BF16 || e == TILE_ELEM_F16) && a->kind != KV_SPLAT &&
             b->kind != KV_SPLAT && M % 16 == 0 && N % 8 == 0 && K % 16 == 0;
  if (!mma) {
    kline(k, "// tile_matmul %lldx%lldx%lld, per element in f32", (long long)M, (long long)K,
          (long long)N);
    kline(k, "for (int e = threadIdx.x; e < %lld; e += blockDim.x) {", (long long)(M * N));
    k->indent++;
    kline(k, "const int r = e / %lld, c = e %% %lld;", (long long)N, (long long)N);
    kt_elem(k, acc, "e", z, sizeof z);
    kline(k, "float s = %s;", z);
    val2(a, "r", "kk", x, sizeof x);
    val2(b, "kk", "c", y, sizeof y);
    kline(k, "for (int kk = 0; kk < %lld; ++kk) s += (float)%s * (float)%s;", (long long)K, x, y);
    kline(k, "%s[e] = s;", d->name);
    k->indent--;
    kline(k, "}");
    kline(k, "__syncthreads();");
    return true;
  }
  const char *ty = e == TILE_ELEM_BF16 ? "bf16" : "f16";
  kline(k, "// tile_matmul %lldx%lldx%lld on tensor cores: warps take 16x8 tiles of the result",
        (long long)M, (long long)K, (long long)N);
  kline(k, "{");
  k->indent++;
  kline(k, "const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;");
  kline(k, "for (int tile = threadIdx.x >> 5; tile < %lld; tile += blockDim.x >> 5) {",
        (long long)(M / 16 * (N / 8)));
  k->indent++;
  kline(k, "const int r0 = tile / %lld * 16 + g, c0 = tile %% %lld * 8 + 2 * t;",
        (long long)(N / 8), (long long)(N / 8));
  /* c0..c3: rows g and g + 8, columns 2t and 2t + 1 of the 16 x 8 tile. */
  static const char *const cr[4] = {"r0", "r0", "r0 + 8", "r0 + 8"};
  static const char *const cc[4] = {"c0", "c0 + 1", "c0", "c0 + 1"};
  for (int i = 0; i < 4; i++) {
    char idx[96];
    snprintf(idx, sizeof idx, "(%s) * %lld + (%s)", cr[i], (long long)N, cc[i]);
    kt_elem(k, acc, idx, z, sizeof z);
    kline(k, "float d%d = %s;", i, z);
  }
  kline(k, "for (int k0 = 0; k0 < %lld; k0 += 16) {", (long long)K);
  k->indent++;
  /* A fragment: (row g, k 2t..2t+1), (row g+8, same), (row g, k +8), (row g+8, k +8). */
  static const char *const ar[4] = {"r0", "r0 + 8", "r0", "r0 + 8"};
  static const char *const ak[4] = {"k0 + 2 * t", "k0 + 2 * t", "k0 + 2 * t + 8",
                                    "k0 + 2 * t + 8"};
  for (int i = 0; i < 4; i++) {
    char k1[64];
    snprintf(k1, sizeof k1, "%s + 1", ak[i]);
    raw2(a, ar[i], ak[i], x, sizeof x);
    raw2(a, ar[i], k1, y, sizeof y);
    kline(k, "const unsigned a%d = tc_pack2(%s, %s);", i, x, y);
  }
  /* B fragment: column g of the tile, k rows 2t..2t+1 and 2t+8..2t+9. */
  static const char *const bk[2] = {"k0 + 2 * t", "k0 + 2 * t + 8"};
  for (int i = 0; i < 2; i++) {
    char k1[64], col[64];
    snprintf(k1, sizeof k1, "%s + 1", bk[i]);
    snprintf(col, sizeof col, "c0 - 2 * t + g");
    raw2(b, bk[i], col, x, sizeof x);
    raw2(b, k1, col, y, sizeof y);
    kline(k, "const unsigned b%d = tc_pack2(%s, %s);", i, x, y);
  }
  kline(k, "asm volatile(\"mma.sync.aligned.m16n8k16.row.col.f32.%s.%s.f32 {%%0, %%1, %%2, %%3}, "
           "{%%4, %%5, %%6, %%7}, {%%8, %%9}, {%%0, %%1, %%2, %%3};\"", ty, ty);
  kline(k, "             : \"+f\"(d0), \"+f\"(d1), \"+f\"(d2), \"+f\"(d3)");
  kline(k, "             : \"r\"(a0), \"r\"(a1), \"r\"(a2), \"r\"(a3), \"r\"(b0), \"r\"(b1));");
  k->indent--;
  kline(k, "}");
  for (int i = 0; i < 4; i++)
    kline(k, "%s[(%s) * %lld + (%s)] = d%d;", d->name, cr[i], (long long)N, cc[i], i);
  k->indent--;
  kline(k, "}");
  k->indent--;
  kline(k, "}");
  kline(k, "__syncthreads();");
  return true;
}
