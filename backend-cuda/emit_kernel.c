/* A tile-level kernel becomes one CUDA kernel run by one thread block: the driver.
 *
 * The kernel's HBM parameters are global pointers (bound buffers named after them:
 * `in` when DMAs only read one, `out` when they only write it, `inout` for both);
 * allocs and the tiles values need are placed, in program order, in dynamic shared
 * memory while they fit KERNEL_SMEM_BUDGET and in one global scratch buffer after
 * that. Scalars (i32, i1, f32) are C variables every thread computes alike, so
 * every branch and loop is uniform over the block and barriers inside them are
 * legal. DMAs are cooperative copies done at `dma_start`; a copy is complete when
 * the barrier after it passes, so `dma_wait`, `sem_wait` and `sem_signal` keep only
 * their ordering (a barrier). Loop-carried tiles live in storage the loop owns:
 * the initial value is copied in before the loop, the yielded value at the end of
 * each iteration (nothing to copy when it was computed in place). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emit_kernel.h"

/* ---- values and storage ---- */

KVal *kv_of(KEmit *k, const TileValue *v) {
  for (int i = k->nvals - 1; i >= 0; i--)
    if (k->vals[i].v == v) return &k->vals[i];
  return NULL;
}

KVal *kv_new(KEmit *k, const TileValue *v, int kind) {
  if (k->nvals == k->cap_vals) {
    int cap = k->cap_vals ? 2 * k->cap_vals : 64;
    KVal *a = realloc(k->vals, (size_t)cap * sizeof *a);
    if (!a) return NULL;
    k->vals = a;
    k->cap_vals = cap;
  }
  KVal *kv = &k->vals[k->nvals++];
  memset(kv, 0, sizeof *kv);
  kv->v = v;
  kv->kind = kind;
  kv->storage = -1;
  /* A C name unique in the kernel, readable after the IR's. */
  char clean[40] = "";
  const char *n = v && v->name ? v->name : "v";
  size_t j = 0;
  for (size_t i = 0; n[i] && j + 1 < sizeof clean; i++)
    clean[j++] = (n[i] >= 'a' && n[i] <= 'z') || (n[i] >= 'A' && n[i] <= 'Z') ||
                         (n[i] >= '0' && n[i] <= '9')
                     ? n[i]
                     : '_';
  clean[j] = 0;
  snprintf(kv->name, sizeof kv->name, "%c%d_%s", kind == KV_SCALAR ? 's' : 't', k->nnames++,
           clean);
  return kv;
}

int kv_new_storage(KEmit *k, int64_t bytes) {
  if (k->nst == k->cap_st) {
    int cap = k->cap_st ? 2 * k->cap_st : 32;
    KStore *a = realloc(k->st, (size_t)cap * sizeof *a);
    if (!a) return -1;
    k->st = a;
    k->cap_st = cap;
  }
  bytes = (bytes + 15) & ~(int64_t)15; /* 16-byte aligned, for any element type */
  KStore *s = &k->st[k->nst];
  s->bytes = bytes;
  s->shared = k->smem + bytes <= KERNEL_SMEM_BUDGET;
  s->off = s->shared ? k->smem : k->scratch;
  if (s->shared) k->smem += bytes;
  else k->scratch += bytes;
  return k->nst++;
}

static int64_t elem_bytes(TileElem e) {
  return e == TILE_ELEM_I1 ? 4 : (tile_elem_bits(e) + 7) / 8;
}

void kline(KEmit *k, const char *fmt, ...) {
  for (int i = 0; i < k->indent; i++) buf_puts(&k->body, "  ");
  va_list ap;
  va_start(ap, fmt);
  buf_vprintf(&k->body, fmt, ap);
  va_end(ap);
  buf_puts(&k->body, "\n");
}

/* Declares kv's pointer to storage s, typed for elem. */
static void declare_pointer(KEmit *k, const KVal *kv, TileElem elem, int s) {
  const char *t = ce_storage_type(elem);
  kline(k, "%s *const %s = (%s *)(%s + %lld);", t, kv->name, t,
        k->st[s].shared ? "tc_smem" : "tc_scratch", (long long)k->st[s].off);
}

bool k_tile_result(KEmit *k, const TileOp *op, int inplace) {
  const TileValue *r = op->res[0];
  KVal *kv = kv_new(k, r, KV_TILE);
  if (!kv) return tile_error(k->d, op->loc, "out of memory");
  if (inplace >= 0) {
    const KVal *src = kv_of(k, op->opnd[inplace].v);
    snprintf(kv->name, sizeof kv->name, "%s", src->name);
    kv->storage = src->storage;
    return true;
  }
  int s = kv_new_storage(k, tile_type_numel(&r->type) * elem_bytes((TileElem)r->type.elem));
  if (s < 0) return tile_error(k->d, op->loc, "out of memory");
  kv->storage = s;
  declare_pointer(k, kv, (TileElem)r->type.elem, s);
  return true;
}

int k_count_uses(const TileBlock *b, const TileValue *v) {
  int n = 0;
  for (const TileOp *op = b->first; op; op = op->next) {
    for (int i = 0; i < op->nopnd; i++) {
      if (op->opnd[i].v == v) n++;
      for (int j = 0; j < op->opnd[i].nidx; j++)
        if (op->opnd[i].idx[j].v == v) n++;
    }
    for (int r = 0; r < op->nregion; r++) n += k_count_uses(op->region[r], v);
  }
  return n;
}

const char *k_index(KEmit *k, const TileUse *u, int i, char *out, size_t len) {
  const TileIndex *ix = &u->idx[i];
  if (!ix->v) snprintf(out, len, "%lld", (long long)ix->c);
  else {
    const KVal *kv = kv_of(k, ix->v);
    snprintf(out, len, "%s", kv ? kv->name : "0");
  }
  return out;
}

/* ---- scalars ---- */

static bool scalar_type_ok(KEmit *k, const TileValue *v, TileLoc loc) {
  TileElem e = (TileElem)v->type.elem;
  if (e == TILE_ELEM_I1 || e == TILE_ELEM_I32 || e == TILE_ELEM_I64 || e == TILE_ELEM_F32)
    return true;
  return tile_error(k->d, loc, "the CUDA backend has no %s scalars in a kernel (i1, i32, i64 and "
                    "f32 are computed)", tile_elem_name(e));
}

static const char *scalar_ctype(const TileValue *v) {
  return ce_compute_type((TileElem)v->type.elem);
}

/* A constant: a scalar variable, or a splat tile read as a literal. */
static bool emit_constant(KEmit *k, const TileOp *op) {
  const TileValue *r = op->res[0];
  const TileAttr *a = tile_attr_get(&op->attrs, "value");
  if (!a || (a->kind != TILE_ATTR_INT && a->kind != TILE_ATTR_FLOAT))
    return tile_error(k->d, op->loc, "the CUDA backend takes splat constants in a kernel (one "
                      "number); a dense constant has no CUDA lowering here");
  TileElem e = (TileElem)r->type.elem;
  if (!ce_elem_supported(e))
    return tile_error(k->d, op->loc, "the CUDA backend has no %s arithmetic", tile_elem_name(e));
  double x = a->kind == TILE_ATTR_INT ? (double)a->i : a->f;
  char lit[48];
  if (tile_elem_is_float(e)) {
    float f = (float)x;
    if (e == TILE_ELEM_BF16) { /* the value the tile holds: rounded to its type */
      uint32_t u = (uint32_t)tile_cuda_f32_to_bf16(f) << 16;
      memcpy(&f, &u, 4);
    }
    if (f != f) snprintf(lit, sizeof lit, "tc_nan()");
    else if (f > 3.4e38f) snprintf(lit, sizeof lit, "tc_inf()");
    else if (f < -3.4e38f) snprintf(lit, sizeof lit, "(-tc_inf())");
    else snprintf(lit, sizeof lit, "%.9gf", (double)f);
    if (!strchr(lit, '.') && !strchr(lit, 'e') && !strchr(lit, 'n') && !strchr(lit, '('))
      snprintf(lit, sizeof lit, "%.1ff", (double)f);
  } else if (e == TILE_ELEM_I1) {
    snprintf(lit, sizeof lit, "%d", x != 0);
  } else {
    snprintf(lit, sizeof lit, "%lldLL", (long long)x);
    if (e != TILE_ELEM_I64) snprintf(lit, sizeof lit, "%d", (int)(long long)x);
  }
  if (r->type.kind == TILE_TY_SCALAR) {
    if (!scalar_type_ok(k, r, op->loc)) return false;
    KVal *kv = kv_new(k, r, KV_SCALAR);
    if (!kv) return false;
    kline(k, "const %s %s = %s;", scalar_ctype(r), kv->name, lit);
    return true;
  }
  KVal *kv = kv_new(k, r, KV_SPLAT);
  if (!kv) return false;
  snprintf(kv->lit, sizeof kv->lit, "%s", lit);
  return true;
}

static bool emit_scalar_op(KEmit *k, const TileOp *op) {
  const TileValue *r = op->res[0];
  if (!scalar_type_ok(k, r, op->loc)) return false;
  const char *x[3] = {"", "", ""};
  for (int i = 0; i < op->nopnd && i < 3; i++) {
    const KVal *kv = kv_of(k, op->opnd[i].v);
    if (!kv || kv->kind != KV_SCALAR)
      return tile_error(k->d, op->loc, "operand %d of '%s' is not a scalar", i + 1,
                        tile_op_name((TileOpKind)op->kind));
    x[i] = kv->name;
  }
  char e[512];
  if (!kt_expr(k, op, x, e, sizeof e)) return false;
  KVal *kv = kv_new(k, r, KV_SCALAR);
  if (!kv) return false;
  kline(k, "const %s %s = %s;", scalar_ctype(r), kv->name, e);
  return true;
}

/* ---- control ---- */

static bool emit_block(KEmit *k, const TileBlock *b);

static const TileOp *yield_of(const TileBlock *b) {
  return b->last && b->last->kind == TILE_OP_YIELD ? b->last : NULL;
}

/* Storage for a carried or branch result: a scalar variable declared (not set), or
 * a tile of its own. */
static KVal *result_slot(KEmit *k, const TileValue *v, TileLoc loc) {
  if (v->type.kind == TILE_TY_SCALAR) {
    if (!scalar_type_ok(k, v, loc)) return NULL;
    KVal *kv = kv_new(k, v, KV_SCALAR);
    if (kv) kline(k, "%s %s;", scalar_ctype(v), kv->name);
    return kv;
  }
  if (v->type.kind != TILE_TY_TENSOR || !ce_elem_supported((TileElem)v->type.elem)) {
    tile_error(k->d, loc, "the CUDA backend carries scalars and tiles only");
    return NULL;
  }
  KVal *kv = kv_new(k, v, KV_TILE);
  if (!kv) return NULL;
  int s = kv_new_storage(k, tile_type_numel(&v->type) * elem_bytes((TileElem)v->type.elem));
  if (s < 0) return NULL;
  kv->storage = s;
  declare_pointer(k, kv, (TileElem)v->type.elem, s);
  return kv;
}

/* Sets slots dst[0..n) from values src (a yield's operands or a loop's initial
 * values). Scalars go through temporaries, so one carried value may become another;
 * a tile whose storage is another slot's is refused (its copy would overwrite it). */
static bool assign_slots(KEmit *k, KVal **dst, const TileUse *src, int n, TileLoc loc) {
  int tmp0 = k->nnames;
  k->nnames += n;
  bool tiles = false;
  for (int i = 0; i < n; i++) {
    const KVal *s = kv_of(k, src[i].v);
    if (!s) return tile_error(k->d, loc, "internal error: value %d has no CUDA form", i + 1);
    if (dst[i]->kind == KV_SCALAR) {
      kline(k, "const %s tc_tmp%d = %s;", scalar_ctype(dst[i]->v), tmp0 + i, s->name);
      continue;
    }
    if (s->storage >= 0 && s->storage == dst[i]->storage) continue; /* computed in place */
    for (int j = 0; j < n; j++)
      if (j != i && s->storage >= 0 && s->storage == dst[j]->storage)
        return tile_error(k->d, src[i].loc.line ? src[i].loc : loc,
                          "the CUDA backend cannot carry tile %d into slot %d while slot %d "
                          "still holds it; copy it first (add it to a zero tile)", j + 1, i + 1,
                          j + 1);
    if (!kt_copy(k, dst[i], s)) return false;
    tiles = true;
  }
  for (int i = 0; i < n; i++)
    if (dst[i]->kind == KV_SCALAR) kline(k, "%s = tc_tmp%d;", dst[i]->name, tmp0 + i);
  if (tiles) kline(k, "__syncthreads();");
  return true;
}

static bool emit_for(KEmit *k, const TileOp *op) {
  int64_t lo = 0, hi = 0, step = 1;
  tile_attr_get_int(&op->attrs, "lower", &lo);
  tile_attr_get_int(&op->attrs, "upper", &hi);
  tile_attr_get_int(&op->attrs, "step", &step);
  const TileBlock *body = op->region[0];
  int n = op->nopnd;
  if (body->nargs != n + 1 || op->nres != n)
    return tile_error(k->d, op->loc, "internal error: malformed for");
  KVal **slots = calloc((size_t)n + 1, sizeof *slots);
  if (!slots) return tile_error(k->d, op->loc, "out of memory");
  bool ok = true;
  int first = k->nvals; /* the slots' KVals; emitting the body may move the array */
  kline(k, "// for %%%s = %lld to %lld step %lld", body->args[0]->name ? body->args[0]->name : "i",
        (long long)lo, (long long)hi, (long long)step);
  for (int i = 0; ok && i < n; i++) ok = result_slot(k, body->args[i + 1], op->loc) != NULL;
  for (int i = 0; ok && i < n; i++) slots[i] = &k->vals[first + i];
  if (ok) ok = assign_slots(k, slots, op->opnd, n, op->loc);
  KVal *iv = ok ? kv_new(k, body->args[0], KV_SCALAR) : NULL;
  if (ok && iv) {
    kline(k, "for (int %s = %lld; %s < %lld; %s += %lld) {", iv->name, (long long)lo, iv->name,
          (long long)hi, iv->name, (long long)step);
    k->indent++;
    ok = emit_block(k, body);
    const TileOp *y = yield_of(body);
    for (int i = 0; i < n; i++) slots[i] = &k->vals[first + i];
    if (ok && n) {
      if (!y || y->nopnd != n) ok = tile_error(k->d, op->loc, "the loop body yields no values");
      else ok = assign_slots(k, slots, y->opnd, n, y->loc);
    }
    k->indent--;
    kline(k, "}");
  } else {
    ok = false;
  }
  /* The loop's results are its carried values' final contents. */
  for (int i = 0; ok && i < n; i++) {
    KVal *r = kv_new(k, op->res[i], k->vals[first + i].kind);
    if (!r) ok = false;
    else {
      const KVal *s = kv_of(k, body->args[i + 1]);
      snprintf(r->name, sizeof r->name, "%s", s->name);
      r->storage = s->storage;
    }
  }
  free(slots);
  return ok;
}

static bool emit_if(KEmit *k, const TileOp *op) {
  const KVal *c = kv_of(k, op->opnd[0].v);
  if (!c || c->kind != KV_SCALAR)
    return tile_error(k->d, op->loc, "the condition of 'if' must be an i1 scalar");
  char cond[64];
  snprintf(cond, sizeof cond, "%s", c->name);
  int n = op->nres;
  KVal **slots = calloc((size_t)n + 1, sizeof *slots);
  if (!slots) return tile_error(k->d, op->loc, "out of memory");
  bool ok = true;
  int first = k->nvals;
  for (int i = 0; ok && i < n; i++) ok = result_slot(k, op->res[i], op->loc) != NULL;
  /* Slots are KVals; emitting the branches may move the array, so keep indices. */
  for (int r = 0; ok && r < op->nregion; r++) {
    if (r == 1 && !op->region[1]->first) break; /* an empty else */
    if (r == 0) kline(k, "if (%s) {", cond);
    else kline(k, "} else {");
    k->indent++;
    ok = emit_block(k, op->region[r]);
    const TileOp *y = yield_of(op->region[r]);
    if (ok && n) {
      for (int i = 0; i < n; i++) slots[i] = &k->vals[first + i];
      if (!y || y->nopnd != n) ok = tile_error(k->d, op->loc, "a branch of 'if' yields no values");
      else ok = assign_slots(k, slots, y->opnd, n, y->loc);
    }
    k->indent--;
  }
  if (ok) kline(k, "}");
  if (ok && n && op->nregion < 2)
    ok = tile_error(k->d, op->loc, "an 'if' with results needs an else branch");
  free(slots);
  return ok;
}

/* ---- ops ---- */

static bool emit_op(KEmit *k, const TileOp *op) {
  const TileOpInfo *info = &tile_op_info[op->kind];
  switch (op->kind) {
  case TILE_OP_ALLOC: {
    const TileType *t = &op->res[0]->type;
    if (!ce_elem_supported((TileElem)t->elem))
      return tile_error(k->d, op->loc, "the CUDA backend has no %s buffers",
                        tile_elem_name((TileElem)t->elem));
    KVal *kv = kv_new(k, op->res[0], KV_BUF);
    if (!kv) return false;
    int s = kv_new_storage(k, tile_type_numel(t) * elem_bytes((TileElem)t->elem));
    if (s < 0) return false;
    kv->storage = s;
    kline(k, "// %s: %s (%lld bytes)", kv->name, k->st[s].shared ? "shared memory" : "global scratch",
          (long long)k->st[s].bytes);
    declare_pointer(k, kv, (TileElem)t->elem, s);
    return true;
  }
  case TILE_OP_SEMAPHORE:
  case TILE_OP_RETURN:
  case TILE_OP_YIELD: return true;
  case TILE_OP_CONSTANT: return emit_constant(k, op);
  case TILE_OP_LOAD: return kt_load(k, op);
  case TILE_OP_STORE: return kt_store(k, op);
  case TILE_OP_TILE_MATMUL: return kt_matmul(k, op);
  case TILE_OP_DMA_START: return kt_dma(k, op);
  case TILE_OP_DMA_WAIT:
  case TILE_OP_SEM_WAIT:
  case TILE_OP_SEM_SIGNAL:
    if (tile_attr_get(&op->attrs, "peer"))
      return tile_error(k->d, op->loc, "the CUDA backend runs a kernel on one GPU; '%s' to a "
                        "peer has no CUDA lowering", info->name);
    /* The copies are done at dma_start; the barrier keeps the order the wait gives. */
    kline(k, "__syncthreads(); // %s", info->name);
    return true;
  case TILE_OP_FOR: return emit_for(k, op);
  case TILE_OP_IF: return emit_if(k, op);
  default: break;
  }
  if (kt_is_elementwise(op->kind) && op->nres == 1) {
    if (op->res[0]->type.kind == TILE_TY_SCALAR) return emit_scalar_op(k, op);
    return kt_elementwise(k, op);
  }
  return tile_error(k->d, op->loc, "'%s' has no CUDA lowering in a tile-level kernel",
                    info->name);
}

static bool emit_block(KEmit *k, const TileBlock *b) {
  for (const TileOp *op = b->first; op; op = op->next)
    if (!emit_op(k, op)) return false;
  return true;
}

/* ---- parameters ---- */

/* How DMAs use parameter p: bit 1 read (source), bit 2 written (destination). */
static int param_use(const TileBlock *b, const TileValue *p) {
  int use = 0;
  for (const TileOp *op = b->first; op; op = op->next) {
    if (op->kind == TILE_OP_DMA_START) {
      if (op->opnd[0].v == p) use |= 1;
      if (op->opnd[1].v == p) use |= 2;
    }
    for (int r = 0; r < op->nregion; r++) use |= param_use(op->region[r], p);
  }
  return use;
}

bool ce_emit_kernel(TileModule *m, TileFunc *f, TileCudaProgram *out, TileDiag *d) {
  KEmit k = {.m = m, .f = f, .d = d, .indent = 1};
  CudaEmit e = {.m = m, .f = f, .d = d, .p = out};
  Buf params = {0};
  bool ok = true;
  for (int i = 0; ok && i < f->body->nargs; i++) {
    const TileValue *a = f->body->args[i];
    TileLoc loc = a->loc.line ? a->loc : f->loc;
    if (a->type.kind != TILE_TY_BUFFER || a->type.space != TILE_SPACE_HBM ||
        !ce_elem_supported((TileElem)a->type.elem)) {
      ok = tile_error(d, loc, "the CUDA backend takes hbm buffers of i1, i8, i32, i64, f32, bf16 "
                      "or f16 as kernel parameters; '%s' is not one", a->name ? a->name : "?");
      break;
    }
    int use = param_use(f->body, a);
    int bind = use == 3 ? TILE_BIND_INOUT : use == 2 ? TILE_BIND_OUT : TILE_BIND_IN;
    TileType t = tile_type_tensor((TileElem)a->type.elem, a->type.rank, a->type.dims);
    int b = ce_add_buffer(&e, a->name ? a->name : "arg", bind, &t);
    KVal *kv = b >= 0 ? kv_new(&k, a, KV_BUF) : NULL;
    if (!kv) {
      ok = tile_error(d, f->loc, "out of memory");
      break;
    }
    snprintf(kv->name, sizeof kv->name, "p_%.56s", e.p->bufs[b].name);
    for (char *c = kv->name; *c; c++)
      if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')))
        *c = '_';
    buf_printf(&params, "%s%s *__restrict__ %s", i ? ", " : "",
               ce_storage_type((TileElem)a->type.elem), kv->name);
  }
  if (ok) ok = emit_block(&k, f->body);
  if (ok && k.body.oom) ok = tile_error(d, f->loc, "out of memory writing the CUDA source");

  char name[64];
  snprintf(name, sizeof name, "k_%s", f->name);
  for (char *c = name; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')))
      *c = '_';
  int scratch = -1;
  if (ok && k.scratch > 0) {
    TileType t = tile_type_tensor(TILE_ELEM_I8, 1, (int64_t[]){k.scratch});
    scratch = ce_add_buffer(&e, "scratch", 0, &t);
    ok = scratch >= 0;
  }
  TileCudaLaunch *l = ok ? ce_add_launch(&e, name, NULL) : NULL;
  if (ok && l) {
    l->src_name = "kernel";
    l->src_loc = f->loc;
    l->block[0] = KERNEL_THREADS;
    l->smem_bytes = (uint32_t)k.smem;
    for (int i = 0; i < f->body->nargs; i++) l->args[l->nargs++] = i;
    if (scratch >= 0) l->args[l->nargs++] = scratch;
    if (l->nargs > TILE_CUDA_MAX_ARGS)
      ok = tile_error(d, f->loc, "the CUDA backend passes at most %d buffers to a kernel",
                      TILE_CUDA_MAX_ARGS - 1);
  } else if (ok) {
    ok = tile_error(d, f->loc, "out of memory");
  }
  if (ok) {
    Buf *s = &e.src;
    buf_puts(s, ce_prelude);
    buf_puts(s, "// Two bf16 (or f16) words in one register, the first in the low half.\n"
                "__device__ __forceinline__ unsigned tc_pack2(unsigned short lo, unsigned short hi) {\n"
                "  return (unsigned)lo | ((unsigned)hi << 16);\n"
                "}\n");
    buf_printf(s, "\n// kernel @%s: one thread block of %d threads (the machine's core);\n"
                  "// %lld bytes of shared memory, %lld bytes of global scratch.\n",
               f->name, KERNEL_THREADS, (long long)k.smem, (long long)k.scratch);
    buf_printf(s, "extern \"C\" __global__ void __launch_bounds__(%d) %s(%s%s%s) {\n",
               KERNEL_THREADS, name, params.p ? params.p : "",
               scratch >= 0 ? (params.n ? ", " : "") : "",
               scratch >= 0 ? "unsigned char *__restrict__ tc_scratch" : "");
    buf_puts(s, "  extern __shared__ __align__(16) unsigned char tc_smem[];\n");
    if (k.smem == 0) buf_puts(s, "  (void)tc_smem;\n");
    buf_puts(s, k.body.p ? k.body.p : "");
    buf_puts(s, "}\n");
    if (s->oom) ok = tile_error(d, f->loc, "out of memory writing the CUDA source");
  }
  buf_free(&params);
  buf_free(&k.body);
  free(k.vals);
  free(k.st);
  if (!ok) {
    if (!d->nerrors) tile_error(d, f->loc, "internal error: the CUDA kernel emitter failed");
    buf_free(&e.src);
    tile_cuda_program_free(out);
    return false;
  }
  out->source = e.src.p;
  return true;
}
