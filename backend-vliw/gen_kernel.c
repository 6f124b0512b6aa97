/* Tile-level kernels to MIR (tile_lower_kernel, include/tile/lower.h).
 *
 * Needs: a verified `kernel` whose parameters are hbm buffers. Guarantees: MIR that
 * does what the kernel's body says on one chip, with every parameter a bound HBM buffer
 * named after it, of kind in (only DMA sources), out (only DMA destinations) or inout
 * (both); or one diagnostic at the source location of the first thing it cannot lower.
 *
 * The body is walked once in program order (gen_kernel.h says what each value becomes):
 * scalar ops here and in gen_kernel_int.c, control in gen_kernel_ctl.c, buffers, tensors,
 * DMA and semaphores in gen_kernel_ops.c, tile_matmul in gen_kernel_mxu.c. The program
 * keeps the kernel's own order of DMAs and waits (the scheduler keeps DMA-slot ops in
 * order); everything else the scheduler moves as the dependences allow. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "gen_kernel.h"
#include "tile/ops.h"

/* ---- the value map ---- */

KEnt *kx_get(Kx *k, const TileValue *v) {
  KSlot *s = tile_vmap_find(k->map, k->cap, sizeof *k->map, v);
  return s ? &s->e : NULL;
}

void kx_set(Kx *k, const TileValue *v, KEnt e) {
  KSlot *s = tile_vmap_slot((void **)&k->map, &k->cap, &k->n, sizeof *k->map, 256, v);
  s->e = e;
}

/* ---- emission helpers ---- */

bool kx_error(Kx *k, const TileOp *op, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return tile_lower_error(k->cx, op, "%s", msg);
}

void kx_source(Kx *k, const TileOp *op) {
  tile_mir_set_source(k->m, tile_op_name((TileOpKind)op->kind), op->loc);
}

int32_t kx_emit(Kx *k, TileMirInst in) { return tile_mir_add(k->m, in); }

int32_t kx_li(Kx *k, int64_t v) { return tile_mir_li(k->m, v, -1); }

int32_t kx_li_buf(Kx *k, int32_t buf, int64_t off) { return tile_mir_li(k->m, off, buf); }

int32_t kx_pitch(Kx *k, int64_t bytes) {
  for (int i = 0; i < k->npitch; i++)
    if (k->pitch_bytes[i] == bytes) return k->pitch_reg[i];
  int32_t r = kx_li(k, bytes);
  if (k->npitch < KX_MAX_PITCH) {
    k->pitch_bytes[k->npitch] = bytes;
    k->pitch_reg[k->npitch++] = r;
  }
  return r;
}

/* Bytes per element in memory: f32 and i32 in 4, bf16 in 2 (tile_lower_elem_bytes
 * without i1, which a kernel's buffers do not hold). */
int kx_esize(TileElem e) { return e == TILE_ELEM_I1 ? 0 : tile_lower_elem_bytes(e); }

/* ---- what the kernel does with its parameters and semaphores ---- */

typedef struct Scan {
  Kx *k;
  const TileBlock *params;
  uint8_t *use; /* per parameter: TileBindKind bits */
  int32_t cap;
} Scan;

static void note_param(Scan *s, const TileValue *buf, uint8_t bits) {
  if (buf->block == s->params && !buf->def) s->use[buf->index] |= bits;
}

static void note_sem(Scan *s, const TileValue *sem, const TileValue *buf) {
  Kx *k = s->k;
  for (int32_t i = 0; i < k->nsemuse; i++)
    if (k->semuse[i].sem == sem && k->semuse[i].buf == buf) return;
  if (k->nsemuse == s->cap) {
    s->cap = s->cap ? 2 * s->cap : 16;
    k->semuse = realloc(k->semuse, sizeof *k->semuse * (size_t)s->cap);
    if (!k->semuse) {
      fprintf(stderr, "tilec: out of memory lowering a kernel\n");
      abort();
    }
  }
  k->semuse[k->nsemuse++] = (KSemUse){sem, buf};
}

/* Records which parameters DMAs read and write, and which buffers each semaphore's
 * DMAs touch (a wait without a token orders accesses to all of them). */
static void scan_block(Scan *s, const TileBlock *b) {
  for (const TileOp *op = b->first; op; op = op->next) {
    if (op->kind == TILE_OP_DMA_START && op->nopnd >= 3) {
      note_param(s, op->opnd[0].v, TILE_BIND_IN);
      note_param(s, op->opnd[1].v, TILE_BIND_OUT);
      note_sem(s, op->opnd[2].v, op->opnd[0].v);
      note_sem(s, op->opnd[2].v, op->opnd[1].v);
    }
    for (int32_t r = 0; r < op->nregion; r++) scan_block(s, op->region[r]);
  }
}

/* Parameters become bound HBM buffers named after them. */
static bool bind_params(Kx *k, TileFunc *f, const uint8_t *use) {
  TileBlock *body = f->body;
  for (int32_t i = 0; i < body->nargs; i++) {
    const TileValue *a = body->args[i];
    const char *name = a->name ? a->name : "arg";
    TileLoc loc = a->loc.line ? a->loc : f->loc;
    const TileType *t = &a->type;
    char ty[96];
    tile_type_format(t, ty, sizeof ty);
    if (t->kind != TILE_TY_BUFFER || t->space != TILE_SPACE_HBM)
      return tile_error(k->cx->d, loc, "cannot lower kernel parameter '%%%s' of type %s: kernel "
                        "parameters are hbm buffers the caller binds", name, ty);
    if (!kx_esize((TileElem)t->elem))
      return tile_error(k->cx->d, loc, "cannot lower kernel parameter '%%%s' of type %s: "
                        "buffers hold f32, bf16 or i32", name, ty);
    if (strlen(name) >= sizeof k->m->bufs[0].name)
      return tile_error(k->cx->d, loc, "parameter name '%%%s' is longer than %d characters, the "
                        "most a symbol holds", name, (int)sizeof k->m->bufs[0].name - 1);
    int64_t bytes = tile_type_numel(t) * kx_esize((TileElem)t->elem);
    int32_t b = tile_mir_buffer(k->m, name, TILE_SPACE_HBM, bytes, 1, HBM_ALIGN);
    TileMirBuffer *mb = &k->m->bufs[b];
    mb->bind = use[i] ? use[i] : TILE_BIND_IN;
    mb->elem = t->elem;
    mb->rank = t->rank;
    for (int j = 0; j < t->rank; j++) mb->dims[j] = t->dims[j];
    KEnt e = {.kind = KE_BUF, .b = {.mir = b, .type = *t}};
    kx_set(k, a, e);
  }
  return true;
}

/* ---- the walk ---- */

static bool unsupported(Kx *k, const TileOp *op) {
  switch (tile_op_info[op->kind].family) {
  case TILE_FAMILY_COLLECTIVE:
    return kx_error(k, op, "collectives need a mesh of chips; this compile is for one chip");
  case TILE_FAMILY_TENSOR:
    return kx_error(k, op, "a kernel computes with elementwise ops on tiles and tile_matmul; "
                           "this tensor op belongs in a `func`");
  default:
    return kx_error(k, op, "a kernel has no machine code for this op");
  }
}

static bool lower_op(Kx *k, const TileOp *op) {
  kx_source(k, op);
  switch ((TileOpKind)op->kind) {
  case TILE_OP_ALLOC: return kx_alloc(k, op);
  case TILE_OP_LOAD: return kx_load(k, op);
  case TILE_OP_STORE: return kx_store(k, op);
  case TILE_OP_TILE_MATMUL: return kx_tile_matmul(k, op);
  case TILE_OP_DMA_START: return kx_dma_start(k, op);
  case TILE_OP_DMA_WAIT:
  case TILE_OP_SEM_WAIT: return kx_wait(k, op);
  case TILE_OP_SEMAPHORE: return kx_semaphore(k, op);
  case TILE_OP_SEM_SIGNAL: return kx_sem_signal(k, op);
  case TILE_OP_FOR: return kx_for(k, op);
  case TILE_OP_IF: return kx_if(k, op);
  case TILE_OP_CALL: return kx_error(k, op, "a kernel cannot call a func");
  default: break;
  }
  if (kx_is_scalar_op(op)) return kx_scalar_op(k, op);
  if (op->nres == 1 && op->res[0]->type.kind == TILE_TY_TENSOR) {
    if (op->kind == TILE_OP_CONSTANT) return kx_tensor_const(k, op);
    if (tile_ew_supported(op)) return kx_elementwise(k, op);
  }
  if (op->nres == 1 && op->res[0]->type.kind == TILE_TY_SCALAR &&
      tile_op_info[op->kind].family == TILE_FAMILY_TENSOR) {
    char ty[64];
    tile_type_format(&op->res[0]->type, ty, sizeof ty);
    return kx_error(k, op, "kernels compute scalars in i32 and i1 (loop indices, addresses, "
                           "conditions); a %s scalar has no registers", ty);
  }
  return unsupported(k, op);
}

bool kx_block(Kx *k, const TileBlock *b, const TileOp **end) {
  *end = NULL;
  for (const TileOp *op = b->first; op; op = op->next) {
    if (op->kind == TILE_OP_YIELD || op->kind == TILE_OP_RETURN) {
      *end = op;
      return true;
    }
    if (!lower_op(k, op)) return false;
  }
  return true;
}

bool tile_lower_kernel(TileModule *m, TileFunc *f, TileMir *mir, TileDiag *d) {
  TileLowerCtx cx = {.m = m, .f = f, .mir = mir, .d = d, .target = mir->target};
  Kx k = {.cx = &cx, .m = mir, .t = mir->target, .mod = m};
  int before = d->nerrors;
  tile_mir_set_source(mir, NULL, f->loc);
  cx.zero = tile_mir_sreg(mir);
  tile_mir_add(mir, tile_mir_inst(TILE_MOP_LI, cx.zero, 0, 0, 0, 0));

  Scan s = {.k = &k, .params = f->body};
  s.use = calloc((size_t)f->body->nargs + 1, 1);
  if (!s.use) abort();
  scan_block(&s, f->body);
  bool ok = bind_params(&k, f, s.use);
  free(s.use);
  const TileOp *end = NULL;
  if (ok) ok = kx_block(&k, f->body, &end);
  if (ok && mir->loop_depth != 0)
    ok = tile_error(d, f->loc, "internal error: the kernel lowering left %d loops open",
                    (int)mir->loop_depth);
  free(k.map);
  free(k.semuse);
  free(cx.place);
  return ok && d->nerrors == before;
}
