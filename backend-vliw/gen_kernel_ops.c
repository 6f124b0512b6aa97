/* Buffers, tiles, DMA and semaphores of a kernel.
 *
 * Buffers: `alloc` makes a VMEM or SMEM buffer (one slot, row-major, f32/i32 in 4 bytes
 * and bf16 in 2); its size counts against the target's memory, and one that does not fit
 * is refused at the alloc. An access `%buf[%i, 0]` is a byte offset: the sum of each
 * index times its dimension's stride, as a KInt (constant, affine in the loop indices,
 * or a register), split into a register part and an immediate.
 *
 * Tiles: a tensor in a kernel is a grid of sublanes x lanes tiles (its last dim a
 * multiple of the lanes, the one before of the sublanes; dims before those are more
 * rows). A loaded tensor is read with one `vld` (`vld.bf16`) per tile, sublanes one
 * buffer row apart, and kept in vregs, at most half the register file; a load all of
 * whose uses are tile_matmul operands is a view instead, read tile by tile where the
 * MXU takes it (gen_kernel.h). Elementwise ops run tile by tile through tile_ew_emit.
 *
 * DMA: every dma_start has its own descriptor in SMEM (as backend-vliw/lower_dma.c
 * builds them) signalling the kernel's semaphore. The block's dims are merged where
 * contiguous on both sides into one run and at most two strided dims. An address known
 * at compile time is a relocation of the descriptor; one that depends on a loop index
 * is computed with scalar ops and stored (`sst`) into the descriptor's low address
 * word before the `dma`. A wait names, as writes, the VMEM and SMEM buffers of the DMA
 * it waits for (its token's, else those of every dma_start on the semaphore), so no
 * vector or scalar access to them moves above it; HBM is touched only by DMAs, which
 * keep their order. */
#include <math.h>
#include <string.h>

#include "dma_desc.h"
#include "gen_kernel.h"
#include "tile/ops.h"

enum { VMEM_ALIGN = 128, SMEM_ALIGN = 4 };

static const char *value_name(const TileValue *v, const char *fallback) {
  return v->name ? v->name : fallback;
}

static KTensor *new_tensor(Kx *k, KTKind kind, uint8_t elem, int32_t rows, int32_t cols) {
  KTensor *t = tile_alloc(k->mod, sizeof *t);
  t->kind = (uint8_t)kind;
  t->elem = elem;
  t->rows = rows;
  t->cols = cols;
  t->splat_reg = t->buf = t->dyn = -1;
  if (kind == KT_REGS) t->vreg = tile_alloc(k->mod, sizeof(int32_t) * (size_t)(rows * cols));
  return t;
}

static void set_tensor(Kx *k, const TileValue *v, KTensor *t) {
  kx_set(k, v, (KEnt){.kind = KE_TENSOR, .t = t});
}

KTensor *kx_tensor(Kx *k, const TileValue *v, const TileOp *user) {
  KEnt *e = kx_get(k, v);
  if (e && e->kind == KE_TENSOR) return e->t;
  kx_error(k, user, "an operand that should be a tile is not one");
  return NULL;
}

bool kx_grid(Kx *k, const TileOp *op, const TileType *t, bool in_regs, int32_t *rows,
             int32_t *cols) {
  const TileTarget *tg = k->t;
  char ty[96];
  tile_type_format(t, ty, sizeof ty);
  if (t->elem != TILE_ELEM_F32 && t->elem != TILE_ELEM_BF16 && t->elem != TILE_ELEM_I32 &&
      t->elem != TILE_ELEM_I1)
    return kx_error(k, op, "tile %s: the vector unit computes f32, bf16, i32 and i1 tiles", ty);
  if (t->rank < 2 || t->dims[t->rank - 1] % tg->vreg_lanes || t->dims[t->rank - 2] % tg->vreg_sublanes)
    return kx_error(k, op, "tile %s is not whole vector registers: a tile needs at least two "
                           "dims, the last a multiple of %d lanes and the one before a multiple "
                           "of %d sublanes", ty, (int)tg->vreg_lanes, (int)tg->vreg_sublanes);
  int64_t last = t->dims[t->rank - 1];
  int64_t r = tile_type_numel(t) / last / tg->vreg_sublanes, c = last / tg->vreg_lanes;
  if (in_regs && r * c > tg->nvregs / 2)
    return kx_error(k, op, "tile %s takes %lld vector registers; a tile kept in registers may "
                           "take at most half of the target's %d, so split it into smaller "
                           "tiles", ty, (long long)(r * c), (int)tg->nvregs);
  if (r * c > INT32_MAX / 2) return kx_error(k, op, "tile %s is too large", ty);
  *rows = (int32_t)r;
  *cols = (int32_t)c;
  return true;
}

/* ---- tiles ---- */

static int32_t view_load(Kx *k, int32_t d, const KTensor *t, int32_t r, int32_t c) {
  int esize = kx_esize((TileElem)t->elem);
  TileMirInst in = tile_mir_inst(t->elem == TILE_ELEM_BF16 ? TILE_MOP_VLDBF : TILE_MOP_VLD, d,
                                 t->dyn >= 0 ? t->dyn : tile_lower_zero(k->cx),
                                 kx_pitch(k, t->pitch), 0,
                                 (int32_t)(t->base + t->row_off[r] +
                                           (int64_t)c * k->t->vreg_lanes * esize));
  in.imm_buf = t->buf;
  tile_mir_mem(&in, t->buf, TILE_MIR_READ, 0);
  kx_emit(k, in);
  return d;
}

int32_t kx_tile(Kx *k, KTensor *t, int32_t r, int32_t c) {
  switch ((KTKind)t->kind) {
  case KT_REGS: return t->vreg[r * t->cols + c];
  case KT_SPLAT:
    if (t->splat_reg < 0) {
      t->splat_reg = tile_mir_vreg(k->m);
      kx_emit(k, tile_mir_inst(TILE_MOP_VLI, t->splat_reg, 0, 0, 0, (int32_t)t->bits));
    }
    return t->splat_reg;
  default: return view_load(k, tile_mir_vreg(k->m), t, r, c);
  }
}

void kx_tile_into(Kx *k, int32_t dst, KTensor *t, int32_t r, int32_t c) {
  switch ((KTKind)t->kind) {
  case KT_REGS:
    kx_emit(k, tile_mir_inst(TILE_MOP_VMOV, dst, t->vreg[r * t->cols + c], 0, 0, 0));
    break;
  case KT_SPLAT: kx_emit(k, tile_mir_inst(TILE_MOP_VLI, dst, 0, 0, 0, (int32_t)t->bits)); break;
  default: view_load(k, dst, t, r, c); break;
  }
}

/* ---- accesses ---- */

typedef struct Access {
  KBuf b;
  int esize;
  int64_t stride[TILE_MAX_RANK]; /* bytes per step of each buffer dim */
  KInt off;                      /* bytes from the buffer's start */
} Access;

static bool access_of(Kx *k, const TileOp *op, int32_t i, Access *a) {
  const TileUse *u = &op->opnd[i];
  KEnt *e = kx_get(k, u->v);
  if (!e || e->kind != KE_BUF)
    return kx_error(k, op, "operand %d should be a buffer the kernel allocates or takes",
                    (int)i + 1);
  a->b = e->b;
  const TileType *t = &a->b.type;
  a->esize = kx_esize((TileElem)t->elem);
  int64_t s = a->esize;
  for (int j = t->rank - 1; j >= 0; j--) {
    a->stride[j] = s;
    s *= t->dims[j];
  }
  a->off = kx_const(0);
  for (int32_t j = 0; j < u->nidx && j < t->rank; j++) {
    KInt x;
    if (u->idx[j].v) {
      if (!kx_int(k, u->idx[j].v, op, &x)) return false;
    } else {
      x = kx_const(u->idx[j].c);
    }
    a->off = kx_add(k, a->off, kx_scale(k, x, a->stride[j]));
  }
  return true;
}

/* The access offset as a register part (-1: none) and a constant. */
static void split_off(Kx *k, const KInt *off, int32_t *dyn, int64_t *c) {
  if (off->reg >= 0) {
    *dyn = off->reg;
    *c = 0;
    return;
  }
  *c = off->c;
  KInt d = *off;
  d.c = 0;
  *dyn = kx_is_const(&d) ? -1 : kx_reg(k, &d);
}

/* The view of a tile of type tt at access a: per row tile, its offset from the access;
 * sublanes one row of the buffer's second-to-last dim apart. */
static void tile_view(Kx *k, const Access *a, const TileType *tt, int32_t rows, KTensor *t) {
  int br = a->b.type.rank, q = tt->rank;
  t->buf = a->b.mir;
  t->pitch = a->stride[br - 2];
  t->row_off = tile_alloc(k->mod, sizeof(int64_t) * (size_t)rows);
  for (int32_t r = 0; r < rows; r++) {
    int64_t rho = (int64_t)r * k->t->vreg_sublanes, off = 0;
    for (int j = q - 2; j >= 0; j--) {
      off += rho % tt->dims[j] * a->stride[br - q + j];
      rho /= tt->dims[j];
    }
    t->row_off[r] = off;
  }
  split_off(k, &a->off, &t->dyn, &t->base);
}

/* ---- alloc ---- */

bool kx_alloc(Kx *k, const TileOp *op) {
  const TileType *t = &op->res[0]->type;
  char ty[96];
  tile_type_format(t, ty, sizeof ty);
  int esize = kx_esize((TileElem)t->elem);
  if (!esize) return kx_error(k, op, "%s: kernel buffers hold f32, bf16 or i32", ty);
  int64_t bytes = tile_type_numel(t) * esize;
  bool vmem = t->space == TILE_SPACE_VMEM;
  int64_t *used = vmem ? &k->vmem_used : &k->smem_used;
  int64_t cap = vmem ? k->t->vmem_bytes : k->t->smem_bytes;
  if (bytes > cap - *used)
    return kx_error(k, op, "%s takes %lld bytes; with the kernel's other %s buffers (%lld bytes) "
                           "that is more than the target's %lld bytes of %s",
                    ty, (long long)bytes, vmem ? "vmem" : "smem", (long long)*used,
                    (long long)cap, vmem ? "VMEM" : "SMEM");
  *used += bytes;
  int32_t b = tile_mir_buffer(k->m, value_name(op->res[0], "alloc"), (TileSpace)t->space, bytes,
                              1, vmem ? VMEM_ALIGN : SMEM_ALIGN);
  kx_set(k, op->res[0], (KEnt){.kind = KE_BUF, .b = {.mir = b, .type = *t}});
  return true;
}

/* ---- load and store ---- */

static bool is_matmul_operand(const TileOp *o, const TileValue *v) {
  if (o->kind != TILE_OP_TILE_MATMUL || o->nopnd != 3 || o->opnd[2].v == v) return false;
  return o->opnd[0].v == v || o->opnd[1].v == v;
}

static int uses_in(const TileOp *o, const TileValue *v) {
  int n = 0;
  for (int32_t i = 0; i < o->nopnd; i++) n += o->opnd[i].v == v;
  for (int32_t r = 0; r < o->nregion; r++)
    for (const TileOp *p = o->region[r]->first; p; p = p->next) n += uses_in(p, v);
  return n;
}

static bool writes_buffer(const TileOp *o, const TileValue *buf) {
  if ((o->kind == TILE_OP_STORE || o->kind == TILE_OP_DMA_START) && o->nopnd >= 2 &&
      o->opnd[1].v == buf)
    return true;
  for (int32_t r = 0; r < o->nregion; r++)
    for (const TileOp *p = o->region[r]->first; p; p = p->next)
      if (writes_buffer(p, buf)) return true;
  return false;
}

/* A load can be a view when every use is a tile_matmul operand (a or b) in its own
 * block and nothing between it and the last use may write the buffer. */
static bool view_ok(const TileOp *load) {
  const TileValue *v = load->res[0], *buf = load->opnd[0].v;
  const TileOp *last = NULL;
  for (const TileOp *o = load->next; o; o = o->next) {
    int n = uses_in(o, v);
    if (!n) continue;
    if (!is_matmul_operand(o, v) || o->nregion) return false;
    last = o;
  }
  if (!last) return false;
  for (const TileOp *o = load->next; o != last; o = o->next)
    if (writes_buffer(o, buf)) return false;
  return true;
}

bool kx_load(Kx *k, const TileOp *op) {
  const TileType *rt = &op->res[0]->type;
  Access a;
  if (!access_of(k, op, 0, &a)) return false;
  bool smem = a.b.type.space == TILE_SPACE_SMEM;
  if (rt->kind == TILE_TY_SCALAR) {
    if (!smem) return kx_error(k, op, "a scalar load reads SMEM; this buffer is in vmem");
    if (rt->elem != TILE_ELEM_I32)
      return kx_error(k, op, "kernels compute scalars in i32 and i1; load an i32");
    int32_t dyn;
    int64_t c;
    split_off(k, &a.off, &dyn, &c);
    int32_t d = tile_mir_sreg(k->m);
    TileMirInst in = tile_mir_inst(TILE_MOP_SLD, d, dyn >= 0 ? dyn : tile_lower_zero(k->cx), 0, 0,
                                   (int32_t)c);
    in.imm_buf = a.b.mir;
    tile_mir_mem(&in, a.b.mir, TILE_MIR_READ, 0);
    kx_emit(k, in);
    KInt r = kx_const(0);
    r.reg = d;
    r.lo = INT32_MIN;
    r.hi = INT32_MAX;
    kx_set(k, op->res[0], (KEnt){.kind = KE_INT, .i = r});
    return true;
  }
  if (smem) return kx_error(k, op, "a tile load reads VMEM; this buffer is in smem");
  bool view = view_ok(op);
  int32_t rows, cols;
  if (!kx_grid(k, op, rt, !view, &rows, &cols)) return false;
  KTensor *t = new_tensor(k, KT_VIEW, rt->elem, rows, cols);
  tile_view(k, &a, rt, rows, t);
  if (!view) {
    KTensor *regs = new_tensor(k, KT_REGS, rt->elem, rows, cols);
    for (int32_t j = 0; j < rows * cols; j++) regs->vreg[j] = kx_tile(k, t, j / cols, j % cols);
    t = regs;
  }
  set_tensor(k, op->res[0], t);
  return true;
}

bool kx_store(Kx *k, const TileOp *op) {
  const TileType *vt = &op->opnd[0].v->type;
  Access a;
  if (!access_of(k, op, 1, &a)) return false;
  bool smem = a.b.type.space == TILE_SPACE_SMEM;
  if (vt->kind == TILE_TY_SCALAR) {
    if (!smem) return kx_error(k, op, "a scalar store writes SMEM; this buffer is in vmem");
    KInt x;
    if (!kx_int(k, op->opnd[0].v, op, &x)) return false;
    int32_t dyn, val = kx_reg(k, &x);
    int64_t c;
    split_off(k, &a.off, &dyn, &c);
    TileMirInst in = tile_mir_inst(TILE_MOP_SST, val, dyn >= 0 ? dyn : tile_lower_zero(k->cx), 0,
                                   0, (int32_t)c);
    in.imm_buf = a.b.mir;
    tile_mir_mem(&in, a.b.mir, TILE_MIR_WRITE, 0);
    kx_emit(k, in);
    return true;
  }
  if (smem) return kx_error(k, op, "a tile store writes VMEM; this buffer is in smem");
  KTensor *t = kx_tensor(k, op->opnd[0].v, op);
  if (!t) return false;
  int32_t rows, cols;
  if (!kx_grid(k, op, vt, false, &rows, &cols)) return false;
  KTensor at;
  memset(&at, 0, sizeof at);
  tile_view(k, &a, vt, rows, &at);
  int32_t base = at.dyn >= 0 ? at.dyn : tile_lower_zero(k->cx), pitch = kx_pitch(k, at.pitch);
  for (int32_t r = 0; r < rows; r++)
    for (int32_t c = 0; c < cols; c++) {
      int32_t v = kx_tile(k, t, r, c);
      TileMirInst in = tile_mir_inst(vt->elem == TILE_ELEM_BF16 ? TILE_MOP_VSTBF : TILE_MOP_VST,
                                     v, base, pitch, 0,
                                     (int32_t)(at.base + at.row_off[r] +
                                               (int64_t)c * k->t->vreg_lanes * a.esize));
      in.imm_buf = a.b.mir;
      tile_mir_mem(&in, a.b.mir, TILE_MIR_WRITE, 0);
      kx_emit(k, in);
    }
  return true;
}

/* ---- constants and elementwise ops ---- */

static double attr_number(const TileAttr *a) {
  return a->kind == TILE_ATTR_INT ? (double)a->i : a->kind == TILE_ATTR_FLOAT ? a->f : 0;
}

bool kx_tensor_const(Kx *k, const TileOp *op) {
  const TileType *t = &op->res[0]->type;
  const TileAttr *val = tile_attr_get(&op->attrs, "value");
  if (!val) return kx_error(k, op, "a constant needs a value");
  bool dense = val->kind == TILE_ATTR_ARRAY;
  int32_t rows, cols;
  if (!kx_grid(k, op, t, false, &rows, &cols)) return false;
  if (!dense) {
    KTensor *s = new_tensor(k, KT_SPLAT, t->elem, rows, cols);
    s->bits = tile_lower_lane_bits((TileElem)t->elem, attr_number(val));
    set_tensor(k, op->res[0], s);
    return true;
  }
  /* Every element given: initial contents of a VMEM buffer, read as a view. */
  int esize = kx_esize((TileElem)t->elem);
  if (!esize) return kx_error(k, op, "dense constants hold f32, bf16 or i32");
  int64_t n = tile_type_numel(t), bytes = n * esize;
  if (bytes > k->t->vmem_bytes - k->vmem_used)
    return kx_error(k, op, "the constant takes %lld bytes, more than the VMEM left",
                    (long long)bytes);
  k->vmem_used += bytes;
  uint8_t *data = tile_alloc(k->mod, (size_t)bytes);
  for (int64_t i = 0; i < n; i++) {
    const TileAttr *x = &val->elems[i < val->n ? i : 0];
    uint32_t u = tile_lower_lane_bits((TileElem)t->elem, attr_number(x));
    if (esize == 2) u >>= 16;
    memcpy(data + i * esize, &u, (size_t)esize);
  }
  int32_t b = tile_mir_buffer(k->m, value_name(op->res[0], "constant"), TILE_SPACE_VMEM, bytes, 1,
                              VMEM_ALIGN);
  tile_mir_data(k->m, b, data, bytes);
  Access a;
  memset(&a, 0, sizeof a);
  a.b = (KBuf){.mir = b, .type = tile_type_buffer(TILE_SPACE_VMEM, (TileElem)t->elem, t->rank,
                                                   t->dims)};
  a.esize = esize;
  int64_t s = esize;
  for (int j = t->rank - 1; j >= 0; j--) {
    a.stride[j] = s;
    s *= t->dims[j];
  }
  a.off = kx_const(0);
  KTensor *v = new_tensor(k, KT_VIEW, t->elem, rows, cols);
  tile_view(k, &a, t, rows, v);
  set_tensor(k, op->res[0], v);
  return true;
}

enum { MAX_EW_OPERANDS = 3 };

bool kx_elementwise(Kx *k, const TileOp *op) {
  const TileType *t = &op->res[0]->type;
  int32_t rows, cols;
  if (!kx_grid(k, op, t, true, &rows, &cols)) return false;
  if (op->nopnd > MAX_EW_OPERANDS) return kx_error(k, op, "too many operands");
  KTensor *in[MAX_EW_OPERANDS] = {NULL, NULL, NULL};
  bool all_splat = true;
  for (int32_t i = 0; i < op->nopnd; i++) {
    if (op->opnd[i].v->type.kind != TILE_TY_TENSOR)
      return kx_error(k, op, "operand %d is a scalar; elementwise ops in a kernel take tiles",
                      (int)i + 1);
    if (tile_lower_splat(op->opnd[i].v, NULL)) continue; /* an immediate of tile_ew_emit */
    if (!(in[i] = kx_tensor(k, op->opnd[i].v, op))) return false;
    all_splat &= in[i]->kind == KT_SPLAT;
  }
  KTensor *res = new_tensor(k, KT_REGS, t->elem, rows, cols);
  for (int32_t j = 0; j < rows * cols; j++) {
    if (all_splat && j > 0) { /* every tile alike: compute one */
      res->vreg[j] = res->vreg[0];
      continue;
    }
    int32_t v[MAX_EW_OPERANDS] = {-1, -1, -1};
    for (int32_t i = 0; i < op->nopnd; i++)
      if (in[i]) v[i] = kx_tile(k, in[i], j / cols, j % cols);
    res->vreg[j] = tile_ew_emit_mir(k->m, op, v, NULL);
  }
  set_tensor(k, op->res[0], res);
  return true;
}

/* ---- DMA and semaphores ---- */

typedef struct Dim {
  int64_t count, src, dst; /* count, byte strides */
} Dim;

/* The block as one contiguous run (*run bytes) and up to two strided dims (outer[0]
 * the inner one). */
static bool block_dims(Kx *k, const TileOp *op, const Access *s, const Access *d,
                       const TileAttr *shape, int64_t *run, Dim *outer, int *nouter) {
  int n = shape->n, rs = s->b.type.rank, rd = d->b.type.rank;
  Dim dims[TILE_MAX_RANK];
  int nd = 0;
  int64_t r = s->esize;
  int j = n - 1;
  /* The innermost dims that are contiguous on both sides form the run. */
  for (; j >= 0; j--) {
    int64_t c = shape->elems[j].i;
    if (c != 1 && (s->stride[rs - n + j] != r || d->stride[rd - n + j] != r)) break;
    r *= c;
  }
  for (; j >= 0; j--) {
    int64_t c = shape->elems[j].i;
    if (c == 1) continue;
    Dim x = {c, s->stride[rs - n + j], d->stride[rd - n + j]};
    if (nd && dims[nd - 1].src * dims[nd - 1].count == x.src &&
        dims[nd - 1].dst * dims[nd - 1].count == x.dst) {
      dims[nd - 1].count *= c; /* continues the dim inside it on both sides */
      continue;
    }
    dims[nd++] = x;
  }
  if (nd > 2)
    return kx_error(k, op, "the block needs %d strided dims besides its contiguous rows; a DMA "
                           "descriptor has two: copy it in parts", nd);
  *run = r;
  *nouter = nd;
  for (int i = 0; i < nd; i++) outer[i] = dims[i];
  return true;
}

/* A register with the full byte address of the access (the buffer's address plus the
 * offset). */
static int32_t address_reg(Kx *k, const Access *a) {
  int32_t r = kx_li_buf(k, a->b.mir, a->off.reg >= 0 ? 0 : a->off.c);
  int32_t dyn;
  int64_t c;
  split_off(k, &a->off, &dyn, &c);
  if (dyn < 0) return r;
  int32_t d = tile_mir_sreg(k->m);
  kx_emit(k, tile_mir_inst(TILE_MOP_ADD, d, r, dyn, 0, 0));
  return d;
}

static void desc_store(Kx *k, int32_t desc, int32_t desc_reg, int32_t val, int word) {
  TileMirInst st = tile_mir_inst(TILE_MOP_SST, val, desc_reg, 0, 0, word * 4);
  tile_mir_mem(&st, desc, TILE_MIR_WRITE, 0);
  kx_emit(k, st);
}

bool kx_dma_start(Kx *k, const TileOp *op) {
  if (tile_attr_get(&op->attrs, "peer"))
    return kx_error(k, op, "a DMA to another chip needs a mesh; this compile is for one chip");
  const TileAttr *shape = tile_attr_get(&op->attrs, "shape");
  KEnt *se = kx_get(k, op->opnd[2].v);
  if (!shape || shape->kind != TILE_ATTR_ARRAY || !se || se->kind != KE_SEM)
    return kx_error(k, op, "needs a shape and a semaphore the kernel made");
  int32_t sem = se->sem;
  Access s, d;
  if (!access_of(k, op, 0, &s) || !access_of(k, op, 1, &d)) return false;
  int64_t run = 0;
  Dim outer[2] = {{1, 0, 0}, {1, 0, 0}};
  int nouter = 0;
  if (!block_dims(k, op, &s, &d, shape, &run, outer, &nouter)) return false;
  if (k->smem_used + DESC_WORDS * 4 > k->t->smem_bytes)
    return kx_error(k, op, "no SMEM left for this DMA's descriptor (%lld bytes used)",
                    (long long)k->smem_used);
  k->smem_used += DESC_WORDS * 4;

  TileSpace ss = (TileSpace)s.b.type.space, ds = (TileSpace)d.b.type.space;
  TileMir *m = k->m;
  char name[64];
  snprintf(name, sizeof name, "dma.%.56s", m->bufs[d.b.mir].name);
  bool s_static = kx_is_const(&s.off), d_static = kx_is_const(&d.off);
  TileDmaShape dims = {run, outer[0].count, outer[1].count, outer[0].src, outer[1].src,
                       outer[0].dst, outer[1].dst};
  int32_t desc = tile_dma_desc_buffer(m, name, s.b.mir, s_static ? s.off.c : 0, d.b.mir,
                                      d_static ? d.off.c : 0, &dims, sem);

  int32_t desc_reg = kx_li_buf(k, desc, 0);
  if (!s_static) desc_store(k, desc, desc_reg, address_reg(k, &s), DESC_SRC_LO);
  if (!d_static) desc_store(k, desc, desc_reg, address_reg(k, &d), DESC_DST_LO);
  int64_t bytes = run * outer[0].count * outer[1].count;
  TileMirInst in = tile_mir_inst(TILE_MOP_DMA, 0, desc_reg, 0, 0, 0);
  in.est_cycles = tile_dma_est_cycles(k->t, ss, ds, bytes);
  tile_mir_mem(&in, desc, TILE_MIR_READ, 0);
  tile_mir_mem(&in, s.b.mir, TILE_MIR_READ, 0);
  tile_mir_mem(&in, d.b.mir, TILE_MIR_WRITE, 0);
  kx_emit(k, in);
  kx_set(k, op->res[0], (KEnt){.kind = KE_TOKEN, .tok = {sem, s.b.mir, d.b.mir}});
  return true;
}

static void add_unique(int32_t *list, int *n, int32_t b) {
  for (int i = 0; i < *n; i++)
    if (list[i] == b) return;
  list[(*n)++] = b;
}

bool kx_wait(Kx *k, const TileOp *op) {
  KEnt *se = kx_get(k, op->opnd[0].v);
  if (!se || se->kind != KE_SEM) return kx_error(k, op, "needs a semaphore the kernel made");
  int32_t sem = se->sem;
  int64_t count = 1;
  if (op->kind == TILE_OP_SEM_WAIT) tile_attr_get_int(&op->attrs, "count", &count);
  /* The on-chip buffers whose accesses must follow the wait. */
  int32_t bufs[64];
  int nb = 0;
  if (op->kind == TILE_OP_DMA_WAIT && op->nopnd >= 2) {
    KEnt *te = kx_get(k, op->opnd[1].v);
    if (!te || te->kind != KE_TOKEN) return kx_error(k, op, "operand 2 is not a DMA token");
    if (te->tok.sem != sem)
      return kx_error(k, op, "waits on a semaphore its DMA does not signal");
    add_unique(bufs, &nb, te->tok.src);
    add_unique(bufs, &nb, te->tok.dst);
  } else {
    for (int32_t i = 0; i < k->nsemuse && nb < 64; i++) {
      if (k->semuse[i].sem != op->opnd[0].v) continue;
      KEnt *be = kx_get(k, k->semuse[i].buf);
      if (be && be->kind == KE_BUF) add_unique(bufs, &nb, be->b.mir);
    }
  }
  int n = 0;
  for (int i = 0; i < nb; i++)
    if (k->m->bufs[bufs[i]].space != TILE_SPACE_HBM) bufs[n++] = bufs[i];
  /* The wait, then (past three buffers) waits for nothing that carry the rest. */
  int i = 0;
  do {
    TileMirInst in = tile_mir_inst(TILE_MOP_WAIT, 0, 0, 0, sem, i == 0 ? (int32_t)count : 0);
    for (int j = 0; j < TILE_MIR_MAX_MEM && i < n; j++, i++)
      tile_mir_mem(&in, bufs[i], TILE_MIR_WRITE, 0);
    kx_emit(k, in);
  } while (i < n);
  return true;
}

bool kx_semaphore(Kx *k, const TileOp *op) {
  int32_t id = tile_mir_sem(k->m);
  if (id >= k->t->nsems)
    return kx_error(k, op, "the kernel makes more than %d semaphores, the target's count",
                    (int)k->t->nsems);
  kx_set(k, op->res[0], (KEnt){.kind = KE_SEM, .sem = id});
  return true;
}

bool kx_sem_signal(Kx *k, const TileOp *op) {
  if (tile_attr_get(&op->attrs, "peer"))
    return kx_error(k, op, "a signal to another chip needs a mesh; this compile is for one chip");
  KEnt *se = kx_get(k, op->opnd[0].v);
  if (!se || se->kind != KE_SEM) return kx_error(k, op, "needs a semaphore the kernel made");
  int64_t count = 1;
  tile_attr_get_int(&op->attrs, "count", &count);
  kx_emit(k, tile_mir_inst(TILE_MOP_SIGNAL, 0, 0, 0, se->sem, (int32_t)count));
  return true;
}
