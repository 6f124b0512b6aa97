/* The attention generator: one `attention` op (include/tile/ops.h) lowered whole.
 *
 * Needs: a group holding one attention op whose q, k, v live in HBM (f32 or bf16),
 * head dim D at most the MXU's dim, and at least two MXUs (one holds the score weights,
 * one the value weights of a key block). Gives: MIR that reads q, k, v once per K/V
 * head, computes softmax(q k^T * scale [+ top-left causal mask]) v with an online
 * softmax in f32, and writes the result in q's element type.
 *
 * This file checks the op, plans the buffers (two sets, double-buffered, when VMEM
 * allows), makes the DMA sites of Q, K^T, V and the result, and runs the kernel: the
 * rows kernel (gen_attention_rows.c, prefill) issues and waits for its transfers
 * itself; for the block kernel (gen_attention_block.c, decode) the per-(b, kvh) driver
 * here loads one K/V head ahead of the compute and stores each result. The shared
 * state and the math are described in gen_attention.h. */
#include "gen_attention.h"

#include <inttypes.h>
#include <stdio.h>
#include <math.h>
#include <string.h>

#include "tile/ops.h"

/* ---- emitting ---- */

int32_t attn_sreg(Attn *a) { return tile_mir_sreg(a->m); }
int32_t attn_vreg(Attn *a) { return tile_mir_vreg(a->m); }

int32_t attn_op(Attn *a, int op, int32_t d, int32_t x, int32_t y, int32_t z, int32_t imm) {
  return tile_mir_add(a->m, tile_mir_inst(op, d, x, y, z, imm));
}

int32_t attn_v1(Attn *a, int op, int32_t x, int32_t y, int32_t z, int32_t imm) {
  int32_t d = attn_vreg(a);
  attn_op(a, op, d, x, y, z, imm);
  return d;
}

int32_t attn_s1(Attn *a, int op, int32_t x, int32_t y, int32_t imm) {
  int32_t d = attn_sreg(a);
  attn_op(a, op, d, x, y, 0, imm);
  return d;
}

int32_t attn_li(Attn *a, int64_t value, int32_t buf) { return tile_mir_li(a->m, value, buf); }

int32_t attn_vli(Attn *a, uint32_t bits) {
  return attn_v1(a, TILE_MOP_VLI, 0, 0, 0, (int32_t)bits);
}

int32_t attn_vlif(Attn *a, float f) {
  uint32_t bits;
  memcpy(&bits, &f, sizeof bits);
  return attn_vli(a, bits);
}

int32_t attn_vld(Attn *a, int32_t dst, int32_t base, int32_t stride, int64_t imm, int32_t buf,
                 int ofs, bool bf16) {
  int32_t d = dst >= 0 ? dst : attn_vreg(a);
  TileMirInst in = tile_mir_inst(bf16 ? TILE_MOP_VLDBF : TILE_MOP_VLD, d, base, stride, 0,
                                 (int32_t)imm);
  if (base == a->zero) in.imm_buf = buf;
  tile_mir_mem(&in, buf, TILE_MIR_READ, ofs);
  tile_mir_add(a->m, in);
  return d;
}

void attn_vst(Attn *a, int32_t val, int32_t base, int32_t stride, int64_t imm, int32_t buf,
              int ofs, bool bf16) {
  TileMirInst in = tile_mir_inst(bf16 ? TILE_MOP_VSTBF : TILE_MOP_VST, val, base, stride, 0,
                                 (int32_t)imm);
  if (base == a->zero) in.imm_buf = buf;
  tile_mir_mem(&in, buf, TILE_MIR_WRITE, ofs);
  tile_mir_add(a->m, in);
}

void attn_ldw(Attn *a, int unit, int32_t vreg, int group) {
  attn_op(a, TILE_MOP_MXU_LDW, 0, vreg, 0, unit, group);
}

AttnRot attn_rot(Attn *a) {
  AttnRot r = {.next = 0};
  for (int i = 0; i < ATTN_ROT; i++) r.reg[i] = attn_vreg(a);
  return r;
}

int32_t attn_rot_next(AttnRot *r) {
  int32_t v = r->reg[r->next];
  r->next = (r->next + 1) % ATTN_ROT;
  return v;
}

/* ---- checking and planning ---- */

static bool check_op(Attn *a, const TileGroup *g) {
  const TileOp *op = a->op;
  if (g->nops != 1 || op->kind != TILE_OP_ATTENTION || op->nopnd != 3 || op->nres != 1)
    return tile_lower_error(a->cx, op, "an attention group must hold exactly one attention op");
  const TileType *q = &op->opnd[0].v->type, *k = &op->opnd[1].v->type;
  const TileType *r = &op->res[0]->type;
  if (q->elem != TILE_ELEM_BF16 && q->elem != TILE_ELEM_F32)
    return tile_lower_error(a->cx, op, "attention on %s is not supported (f32 and bf16 are)",
                            tile_elem_name((TileElem)q->elem));
  for (int i = 0; i < 3; i++)
    if (tile_lower_splat(op->opnd[i].v, NULL))
      return tile_lower_error(a->cx, op, "operand %d of attention is a splat constant; "
                                         "materialize it as a tensor first", i);
  a->B = q->dims[0];
  a->Hq = q->dims[1];
  a->Sq = q->dims[2];
  a->D = q->dims[3];
  a->Hkv = k->dims[1];
  a->Sk = k->dims[2];
  a->G = a->Gq = a->Hq / a->Hkv;
  a->parts = 1;
  a->esz = q->elem == TILE_ELEM_BF16 ? 2 : 4;
  a->osz = r->elem == TILE_ELEM_BF16 ? 2 : 4;
  a->bf16_in = a->esz == 2;
  a->bf16_out = a->osz == 2;
  const TileAttr *sa = tile_attr_get(&op->attrs, "scale");
  a->scale = sa && sa->kind == TILE_ATTR_FLOAT ? sa->f : sa ? (double)sa->i : 1.0;
  int64_t causal = 0;
  tile_attr_get_int(&op->attrs, "causal", &causal);
  a->causal = causal != 0;
  a->prescale = !(a->scale > 0);
  a->sc = a->prescale ? 1.0 : a->scale;
  if (!((float)a->sc > 0) || isinf((float)a->sc))
    return tile_lower_error(a->cx, op, "scale %g does not fit f32", a->scale);

  const TileTarget *t = a->t;
  a->lanes = t->vreg_lanes;
  a->sub = t->vreg_sublanes;
  a->dim = t->mxu_dim;
  if (a->dim != a->lanes)
    return tile_lower_error(a->cx, op, "the attention kernels need the MXU dim (%d) equal to the "
                                       "vector lanes (%d)", (int)a->dim, (int)a->lanes);
  if (a->D > a->dim)
    return tile_lower_error(a->cx, op, "head dim %" PRId64 " is wider than the MXU (%d); split the "
                                       "heads", a->D, (int)a->dim);
  if (t->mxu_count < 2)
    return tile_lower_error(a->cx, op, "attention needs at least 2 MXUs, target '%s' has %d",
                            t->name, (int)t->mxu_count);
  a->nkb = (a->Sk + a->dim - 1) / a->dim;
  a->Skp = a->nkb * a->dim;
  a->ntq = (a->Sq + a->sub - 1) / a->sub;
  a->block = a->G * a->Sq <= a->sub;
  a->nk = t->mxu_count / 2;
  if (a->nk > 4) a->nk = 4; /* a wider group would not leave the loop body room */
  return true;
}

static bool fits_imm(Attn *a, int64_t x, const char *what) {
  if (x >= 0 && x <= INT32_MAX) return true;
  return tile_lower_error(a->cx, a->op, "%s (%" PRId64 " bytes) is past the 2 GiB that an "
                                        "immediate offset reaches", what, x);
}

static void make_buffers(Attn *a, int npar) {
  a->npar = npar;
  for (int p = 0; p < npar; p++) {
    char name[64];
    snprintf(name, sizeof name, "attn.q%d", p);
    a->qbuf[p] = tile_mir_buffer(a->m, name, TILE_SPACE_VMEM, a->qbytes, 1, 512);
    snprintf(name, sizeof name, "attn.kt%d", p);
    a->ktbuf[p] = tile_mir_buffer(a->m, name, TILE_SPACE_VMEM, a->ktbytes, 1, 512);
    snprintf(name, sizeof name, "attn.v%d", p);
    a->vbuf[p] = tile_mir_buffer(a->m, name, TILE_SPACE_VMEM, a->vbytes, 1, 512);
    snprintf(name, sizeof name, "attn.o%d", p);
    a->obuf[p] = tile_mir_buffer(a->m, name, TILE_SPACE_VMEM, a->obytes, 1, 512);
  }
}

/* Sizes of one (b, kvh) set for G query heads at a time, and the choice of one or two
 * sets: true (with the buffers made) when they fit the VMEM the kernel may take. */
static bool fit_sets(Attn *a, int64_t avail, int64_t *need) {
  int64_t rows = a->block ? a->sub : a->G * a->ntq * a->sub;
  a->qbytes = rows * a->lanes * a->esz;
  a->ktbytes = a->D * a->Skp * a->esz;
  a->vbytes = a->Skp * a->lanes * a->esz;
  a->obytes = rows * a->lanes * a->osz;
  if (!a->block) a->obytes += attn_rows_extra_out(a);
  int64_t set = a->qbytes + a->ktbytes + a->vbytes + a->obytes;
  /* Two sets let the next K/V head's loads run under this one's compute (the rows
   * kernel then keeps two sets of its state too). */
  for (int np = a->B * a->Hkv > 1 ? 2 : 1; np >= 1; np--) {
    int64_t kernel = a->block ? attn_block_vmem(a) : attn_rows_vmem(a, np);
    *need = kernel + np * set;
    if (*need <= avail) {
      make_buffers(a, np);
      return true;
    }
  }
  return false;
}

/* Plans the buffers. The rows kernel keeps a running state per query tile of the G
 * heads that read a K/V head, so its VMEM grows with G: where a K/V head's Gq heads do
 * not fit together, the kernel takes them Gq / s at a time (the least s dividing Gq
 * that fits), one run over every K/V head per part, reading K and V again in each.
 * Returns false (with a diagnostic) when even one head at a time does not fit. */
static bool plan_vmem(Attn *a) {
  /* Leave room for the other groups' buffers and register spills. */
  int64_t avail = a->t->vmem_bytes - a->t->vmem_bytes / 8, need = 0;
  for (int64_t s = 1; s <= a->Gq; s++) {
    if (a->Gq % s != 0) continue;
    bool last = a->block || s == a->Gq;
    a->G = a->Gq / s;
    a->parts = (int)s;
    if (!a->block && !attn_rows_plan(a, last)) {
      if (last) return false;
      continue;
    }
    if (fit_sets(a, avail, &need)) return true;
    if (last) break;
    attn_rows_free(a);
  }
  return tile_lower_error(
      a->cx, a->op,
      "one K/V head needs %" PRId64 " bytes of VMEM with %" PRId64 " of its query heads at a "
      "time (Q %" PRId64 ", K^T %" PRId64 ", V %" PRId64 ", O %" PRId64 ", state %" PRId64
      "), more than the %" PRId64 " the target '%s' leaves; use shorter sequences",
      need, a->G, a->qbytes, a->ktbytes, a->vbytes, a->obytes,
      need - a->qbytes - a->ktbytes - a->vbytes - a->obytes, avail, a->t->name);
}

/* ---- the DMA driver ---- */


/* Q rows of the G heads of (b, kvh): Sq rows of D elements per head, each row to a
 * `lanes`-wide VMEM row; heads `head_rows` rows apart in VMEM (rows kernel) or packed
 * back to back (block kernel: all G x Sq rows are consecutive in HBM). */
static TileDmaShape q_shape(const Attn *a, int elem) {
  int64_t row = (int64_t)a->lanes * elem;
  if (a->block)
    return (TileDmaShape){.count0 = a->D * elem, .count1 = a->G * a->Sq, .count2 = 1,
                          .src_stride1 = a->D * elem, .dst_stride1 = row};
  return (TileDmaShape){.count0 = a->D * elem, .count1 = a->Sq, .count2 = a->G,
                        .src_stride1 = a->D * elem, .src_stride2 = a->Sq * a->D * elem,
                        .dst_stride1 = row, .dst_stride2 = a->ntq * a->sub * row};
}

/* O is Q's shape the other way round. */
static TileDmaShape o_shape(const Attn *a) {
  TileDmaShape s = q_shape(a, a->osz);
  TileDmaShape r = s;
  r.src_stride1 = s.dst_stride1;
  r.src_stride2 = s.dst_stride2;
  r.dst_stride1 = s.src_stride1;
  r.dst_stride2 = s.src_stride2;
  return r;
}

static void make_sites(Attn *a, AttnSites *s) {
  int e = a->esz;
  /* K^T: run (key j, dim d) of one element from k[j][d] to kt[d][j]. */
  TileDmaShape kt = {.count0 = e, .count1 = a->Sk, .count2 = a->D,
                     .src_stride1 = a->D * e, .src_stride2 = e,
                     .dst_stride1 = e, .dst_stride2 = a->Skp * e};
  TileDmaShape v = {.count0 = a->D * e, .count1 = a->Sk, .count2 = 1,
                    .src_stride1 = a->D * e, .dst_stride1 = (int64_t)a->lanes * e};
  for (int p = 0; p < a->npar; p++) {
    s->q[p] = tile_dma_site(a->cx, a->q.buf, 0, a->qbuf[p], 0, q_shape(a, e));
    s->kt[p] = tile_dma_site(a->cx, a->k.buf, 0, a->ktbuf[p], 0, kt);
    s->v[p] = tile_dma_site(a->cx, a->v.buf, 0, a->vbuf[p], 0, v);
    s->o[p] = tile_dma_site(a->cx, a->obuf[p], 0, a->o.buf, 0, o_shape(a));
  }
}

/* Starts the loads of K/V head n (= b * Hkv + kvh) into set p. */
void attn_issue_loads(Attn *a, AttnSites *s, int64_t n, int p) {
  int32_t qa = attn_li(a, attn_q_elem(a, n) * a->esz, a->q.buf);
  tile_dma_issue(a->cx, &s->q[p], qa, 0, -1, 0);
  int64_t ko = n * a->Sk * a->D * a->esz; /* k and v are [B, Hkv, Sk, D] */
  int32_t ka = attn_li(a, ko, a->k.buf);
  tile_dma_issue(a->cx, &s->kt[p], ka, 0, -1, 0);
  int32_t va = attn_li(a, ko, a->v.buf);
  tile_dma_issue(a->cx, &s->v[p], va, 0, -1, 0);
}

void attn_wait_loads(Attn *a, AttnSites *s, int p) {
  tile_dma_wait(a->cx, &s->q[p], 0, 0);
  tile_dma_wait(a->cx, &s->kt[p], 0, 0);
  tile_dma_wait(a->cx, &s->v[p], 0, 0);
}

void attn_issue_store(Attn *a, AttnSites *s, int64_t n, int p) {
  int32_t oa = attn_li(a, attn_q_elem(a, n) * a->osz, a->o.buf);
  tile_dma_issue(a->cx, &s->o[p], -1, 0, oa, 0);
}

/* Zeroes what the DMAs never write but the MXU reads: the lanes of Q rows past D (they
 * meet the zero weight rows past D, and 0 * NaN would not be 0), the K^T columns and V
 * rows of the padding keys (masked to p = 0, which must meet finite values). Once per
 * buffer set: the DMAs only ever write the same valid parts. */
static void zero_padding(Attn *a) {
  int32_t st = attn_li(a, (int64_t)a->lanes * a->esz, -1);
  for (int p = 0; p < a->npar; p++) {
    if (a->D < a->lanes) {
      int64_t rows = a->qbytes / ((int64_t)a->lanes * a->esz);
      for (int64_t r = 0; r < rows; r += a->sub)
        attn_vst(a, a->v_zero, a->zero, st, r * a->lanes * a->esz, a->qbuf[p], 0, a->bf16_in);
    }
    if (a->Skp != a->Sk) {
      int64_t last = (a->nkb - 1) * a->dim;
      /* V rows of the last key block: zeros first, the DMA then writes the valid ones. */
      for (int64_t r = last; r < a->Skp; r += a->sub)
        attn_vst(a, a->v_zero, a->zero, st, r * a->lanes * a->esz, a->vbuf[p], 0, a->bf16_in);
      int32_t kst = attn_li(a, a->Skp * a->esz, -1);
      for (int64_t d = 0; d < a->D; d += a->sub)
        attn_vst(a, a->v_zero, a->zero, kst, (d * a->Skp + last) * a->esz, a->ktbuf[p], 0,
                 a->bf16_in);
    }
  }
}

static void make_constants(Attn *a) {
  a->v_zero = attn_vli(a, 0);
  a->v_ninf = attn_vli(a, 0xff800000u);
  a->v_pinf = attn_vli(a, 0x7f800000u);
  a->v_sc = attn_vlif(a, (float)a->sc);
  a->v_nsc = attn_vlif(a, -(float)a->sc);
  a->v_scale = a->prescale ? attn_vlif(a, (float)a->scale) : -1;
}

/* ---- the block kernel's driver ----
 *
 * Every K/V head n (= b * Hkv + kvh) runs the same code but for its HBM addresses and
 * its buffer set n % npar, and the addresses are linear in n (Hq = G * Hkv), so the
 * heads are walked by a counted loop of npar heads per iteration with the addresses
 * in registers that step one head each transfer: the code holds a few copies of the
 * kernel instead of one per head. The first head (no store before it) and the last
 * (no loads after it) are peeled, and so is what is left of the middle heads after
 * whole iterations. */

static void step_addr(Attn *a, int32_t reg, int64_t by) {
  attn_op(a, TILE_MOP_ADDI, reg, reg, 0, 0, (int32_t)by);
}

void attn_addr_loads(Attn *a, AttnSites *s, const AttnAddr *r, int p) {
  tile_dma_issue(a->cx, &s->q[p], r->q, 0, -1, 0);
  tile_dma_issue(a->cx, &s->kt[p], r->k, 0, -1, 0);
  tile_dma_issue(a->cx, &s->v[p], r->v, 0, -1, 0);
  step_addr(a, r->q, a->Gq * a->Sq * a->D * a->esz);
  step_addr(a, r->k, a->Sk * a->D * a->esz);
  step_addr(a, r->v, a->Sk * a->D * a->esz);
}

void attn_addr_store(Attn *a, AttnSites *s, const AttnAddr *r, int p) {
  tile_dma_issue(a->cx, &s->o[p], -1, 0, r->o, 0);
  step_addr(a, r->o, a->Gq * a->Sq * a->D * a->osz);
}

/* Issues the first head's loads (from addresses made on the spot, so the first DMA
 * starts as early as it can) and returns the registers for the heads after it. */
static AttnAddr block_first_loads(Attn *a, AttnSites *s) {
  attn_issue_loads(a, s, 0, 0);
  int64_t kh = a->Sk * a->D;
  AttnAddr r;
  r.q = attn_li(a, attn_q_elem(a, 1) * a->esz, a->q.buf);
  r.k = attn_li(a, kh * a->esz, a->k.buf);
  r.v = attn_li(a, kh * a->esz, a->v.buf);
  r.o = attn_li(a, attn_q_elem(a, 0) * a->osz, a->o.buf);
  return r;
}

/* One head in set p; first: no head before it, next: a head after it. */
static void block_head(Attn *a, AttnSites *s, const AttnAddr *r, int p, bool first, bool next) {
  attn_wait_loads(a, s, p);
  /* With two sets the next head's loads run under this head's compute. */
  if (a->npar == 2 && next) attn_addr_loads(a, s, r, 1 - p);
  /* The staging buffer of set p is free once the store of head n - npar is done. With
   * one set that is the store just issued; with two, the store of head n - 2 was
   * waited for before the store of head n - 1 was issued (below): a wait here, next
   * to that issue, would be ordered behind that unrelated transfer's bytes. */
  if (a->npar == 1 && !first) tile_dma_wait(a->cx, &s->o[p], 0, 0);
  attn_block_emit(a, p);
  /* The store of head n - 1 ran under this head's compute: wait for it now, before
   * another DMA touches the result, so the set it read is free for head n + 1. */
  if (a->npar == 2 && !first) tile_dma_wait(a->cx, &s->o[1 - p], 0, 0);
  attn_addr_store(a, s, r, p);
  if (a->npar == 1 && next) attn_addr_loads(a, s, r, 0);
}

static void block_drive(Attn *a, AttnSites *s) {
  int64_t n_heads = a->B * a->Hkv;
  AttnAddr r = block_first_loads(a, s);
  block_head(a, s, &r, 0, true, n_heads > 1);
  /* heads 1 .. n_heads - 2: npar per iteration, starting in set 1 % npar */
  int64_t middle = n_heads > 2 ? n_heads - 2 : 0;
  int64_t trips = middle / a->npar, n = 1;
  if (trips > 1) tile_mir_loop_begin(a->m, (int32_t)trips, 0);
  for (int64_t i = 0; i < (trips > 1 ? 1 : trips); i++)
    for (int j = 0; j < a->npar; j++) block_head(a, s, &r, (int)((n + j) % a->npar), false, true);
  if (trips > 1) tile_mir_loop_end(a->m);
  n += trips * a->npar;
  for (; n < n_heads - 1; n++) block_head(a, s, &r, (int)(n % a->npar), false, true);
  if (n_heads > 1) block_head(a, s, &r, (int)(n % a->npar), false, false);
  /* the last store (the ones before it were waited for in the heads) */
  tile_dma_wait(a->cx, &s->o[(n_heads - 1) % a->npar], 0, 0);
}

bool tile_gen_attention(TileLowerCtx *cx, const TileGroup *g) {
  Attn a;
  memset(&a, 0, sizeof a);
  a.cx = cx;
  a.m = tile_lower_mir(cx);
  a.t = tile_lower_target(cx);
  a.op = g->ops[0];
  if (!check_op(&a, g)) return false;
  a.q = tile_lower_tensor(cx, a.op->opnd[0].v);
  a.k = tile_lower_tensor(cx, a.op->opnd[1].v);
  a.v = tile_lower_tensor(cx, a.op->opnd[2].v);
  a.o = tile_lower_tensor(cx, a.op->res[0]);
  if (!fits_imm(&a, a.q.bytes, "q") || !fits_imm(&a, a.k.bytes, "k") ||
      !fits_imm(&a, a.o.bytes, "the result"))
    return false;
  a.zero = tile_lower_zero(cx);
  if (!plan_vmem(&a)) {
    attn_rows_free(&a);
    return false;
  }

  make_constants(&a);
  /* Weight rows past D stay zero: the score units only ever load rows below D. */
  for (int u = 0; u < a.t->mxu_count; u += 2)
    for (int64_t r = (a.D + a.sub - 1) / a.sub; r < a.dim / a.sub; r++)
      attn_ldw(&a, u, a.v_zero, (int)r);
  zero_padding(&a);
  if (a.block)
    attn_block_setup(&a);
  else
    attn_rows_setup(&a);

  AttnSites s;
  make_sites(&a, &s);
  if (!a.block) {
    for (int p = 0; p < a.parts; p++) {
      a.qh0 = p * a.G;
      attn_rows_run(&a, &s);
    }
    attn_rows_free(&a);
    return true;
  }
  block_drive(&a, &s);
  return true;
}
