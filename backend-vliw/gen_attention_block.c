/* The block kernel of the attention generator (decode; gen_attention.h has the plan).
 *
 * All G x Sq query rows of a K/V head fit one 8-row tile (G query heads of one new
 * token each, in decode), so the tile stays in a register and a pipelined loop walks
 * the key blocks: each iteration loads the block's K^T into MXU 0 and its V into MXU 1,
 * pushes the tile, online-softmaxes the scores with the running max, sum and
 * accumulator held in registers, pushes P and pop-accumulates. The loop is bound by
 * loading the weights (2 x dim / 8 vector loads per block), far below the HBM time of
 * the block's bytes, so the kernel runs at the rate the driver's DMAs bring K and V.
 *
 * Alpha waits for the pop-accumulate, one MXU latency after the softmax, in a small
 * ring of VMEM slots (registers are not renamed across iterations).
 *
 * Masks: a row's query position (its index within its head) comes from a constant
 * table; with causality a key is visible when key <= position, and keys past Sk (the
 * padding of the last block) never are. Key blocks that no row sees are not visited. */
#include "gen_attention.h"

#include <stdio.h>
#include <stdlib.h>

enum { RING_SLOTS = 8 };

int64_t attn_block_vmem(const Attn *a) { return (RING_SLOTS + 1) * attn_vreg_bytes(a); }

static bool needs_mask(const Attn *a) { return a->causal || a->Skp != a->Sk; }

static void make_positions(Attn *a) {
  /* position + 1 of each row (row r is query r % Sq of head r / Sq); padding rows see
   * every key, so they never produce an all-masked row. */
  int64_t n = (int64_t)a->sub * a->lanes;
  int32_t *pos = calloc((size_t)n, sizeof *pos);
  if (!pos) {
    fprintf(stderr, "tilec: out of memory building attention\n");
    abort();
  }
  for (int64_t r = 0; r < a->sub; r++)
    for (int64_t l = 0; l < a->lanes; l++)
      pos[r * a->lanes + l] = (int32_t)(r < a->G * a->Sq ? r % a->Sq + 1 : a->Skp);
  uint8_t *bytes = malloc((size_t)n * 4);
  if (!bytes) {
    fprintf(stderr, "tilec: out of memory building attention\n");
    abort();
  }
  for (int64_t i = 0; i < n; i++)
    for (int k = 0; k < 4; k++) bytes[i * 4 + k] = (uint8_t)((uint32_t)pos[i] >> (8 * k));
  a->pos = tile_mir_buffer(a->m, "attn.pos", TILE_SPACE_VMEM, n * 4, 1, 512);
  tile_mir_data(a->m, a->pos, bytes, n * 4);
  free(bytes);
  free(pos);
}

/* The ring, the positions table and what every head reads but never changes, made
 * once: the driver walks the heads in a loop, whose body should hold only the work. */
void attn_block_setup(Attn *a) {
  int64_t vb = attn_vreg_bytes(a);
  a->ring = tile_mir_buffer(a->m, "attn.ring", TILE_SPACE_VMEM, vb, RING_SLOTS, 512);
  a->pos = -1;
  if (a->causal) make_positions(a);
  a->b_qst = attn_li(a, (int64_t)a->lanes * a->esz, -1);
  a->b_kst = attn_li(a, a->Skp * a->esz, -1);
  a->b_sst = attn_li(a, a->lanes * 4, -1);
  a->b_ost = attn_li(a, (int64_t)a->lanes * a->osz, -1);
  a->b_rbase = attn_li(a, 0, a->ring);
  a->b_rmask = attn_li(a, RING_SLOTS * vb - 1, -1);
  a->b_step = a->b_skv = a->b_pos1 = -1;
  if (needs_mask(a)) {
    a->b_step = attn_vli(a, (uint32_t)a->dim);
    if (a->causal) a->b_pos1 = attn_vld(a, -1, a->zero, a->b_sst, 0, a->pos, 0, false);
    if (a->Skp != a->Sk) a->b_skv = attn_vli(a, (uint32_t)a->Sk);
  }
}


/* ofs = (ofs + one slot) mod the ring's bytes (a power of two). */
static void ring_step(Attn *a, int32_t ofs, int32_t mask, int64_t slot) {
  int32_t o1 = attn_s1(a, TILE_MOP_ADDI, ofs, 0, (int32_t)slot);
  attn_op(a, TILE_MOP_AND, ofs, o1, mask, 0, 0);
}

/* Registers are not renamed across iterations, so an address read both early and late
 * in an iteration would bound the modulo schedule's II by that span: every address
 * stream has its own induction register, stepped right after its last use. */
void attn_block_emit(Attn *a, int par) {
  TileMir *m = a->m;
  int64_t vb = attn_vreg_bytes(a);
  int64_t nblocks = a->nkb;
  if (a->causal) {
    int64_t seen = (a->Sq + a->dim - 1) / a->dim; /* blocks holding a key <= Sq - 1 */
    if (seen < nblocks) nblocks = seen;
  }
  int32_t qst = a->b_qst, kst = a->b_kst, sst = a->b_sst;
  int32_t q = attn_vld(a, -1, a->zero, qst, 0, a->qbuf[par], 0, a->bf16_in);
  int32_t pos1 = a->b_pos1, keyv = -1, step = a->b_step, skv = a->b_skv;
  if (needs_mask(a)) keyv = attn_v1(a, TILE_MOP_VIOTA, 0, 0, 0, 0);
  int32_t nm = attn_v1(a, TILE_MOP_VMOV, a->v_pinf, 0, 0, 0);
  int32_t l = attn_v1(a, TILE_MOP_VMOV, a->v_zero, 0, 0, 0);
  int32_t acc = attn_v1(a, TILE_MOP_VMOV, a->v_zero, 0, 0, 0);
  int32_t kp = attn_li(a, 0, a->ktbuf[par]);
  int32_t vp = attn_li(a, 0, a->vbuf[par]);
  int32_t rbase = a->b_rbase, rmask = a->b_rmask;
  /* The ring's slot offset, one register for the store and one for the load, each
   * stepped next to its use (see below). */
  int32_t ro_st = attn_li(a, 0, -1), ro_ld = attn_li(a, 0, -1);

  AttnRot rot = attn_rot(a);
  tile_mir_loop_begin(m, (int32_t)nblocks, TILE_MIR_PIPELINE);
  for (int64_t r = 0; r * a->sub < a->D; r++) {
    int32_t w = attn_vld(a, attn_rot_next(&rot), kp, kst, r * a->sub * a->Skp * a->esz, a->ktbuf[par], 0,
                         a->bf16_in);
    attn_ldw(a, 0, w, (int)r);
  }
  attn_op(a, TILE_MOP_MXU_PUSH, 0, q, 0, 0, 0);
  for (int64_t r = 0; r < a->dim / a->sub; r++) {
    int32_t w = attn_vld(a, attn_rot_next(&rot), vp, qst, r * a->sub * a->lanes * a->esz, a->vbuf[par], 0,
                         a->bf16_in);
    attn_ldw(a, 1, w, (int)r);
  }
  int32_t s = attn_vreg(a);
  attn_op(a, TILE_MOP_MXU_POP, s, 0, 0, 0, 0);
  if (a->prescale) s = attn_v1(a, TILE_MOP_VMULF, s, a->v_scale, 0, 0);
  if (needs_mask(a)) {
    int32_t vis = -1;
    if (pos1 >= 0) vis = attn_v1(a, TILE_MOP_VCMPLTI, keyv, pos1, 0, 0);
    if (skv >= 0) {
      int32_t in = attn_v1(a, TILE_MOP_VCMPLTI, keyv, skv, 0, 0);
      vis = vis < 0 ? in : attn_v1(a, TILE_MOP_VAND, vis, in, 0, 0);
    }
    int32_t ms = attn_vreg(a);
    attn_op(a, TILE_MOP_VSEL, ms, s, a->v_ninf, vis, 0);
    s = ms;
    attn_op(a, TILE_MOP_VADDI, keyv, keyv, step, 0, 0);
  }
  int32_t mx = attn_v1(a, TILE_MOP_XLMAX, s, 0, 0, 0);
  int32_t t = attn_v1(a, TILE_MOP_VMULF, mx, a->v_nsc, 0, 0);
  int32_t nmn = attn_v1(a, TILE_MOP_VMINF, nm, t, 0, 0);
  int32_t dlt = attn_v1(a, TILE_MOP_VSUBF, nmn, nm, 0, 0);
  int32_t alpha = attn_v1(a, TILE_MOP_VEXP, dlt, 0, 0, 0);
  attn_op(a, TILE_MOP_VMOV, nm, nmn, 0, 0, 0);
  int32_t x = attn_vreg(a);
  attn_op(a, TILE_MOP_VFMAF, x, s, a->v_sc, nmn, 0);
  int32_t p = attn_v1(a, TILE_MOP_VEXP, x, 0, 0, 0);
  int32_t rs = attn_v1(a, TILE_MOP_XLSUM, p, 0, 0, 0);
  attn_op(a, TILE_MOP_VFMAF, l, l, alpha, rs, 0);
  attn_op(a, TILE_MOP_MXU_PUSH, 0, p, 0, 1, 0);
  int32_t rp = attn_s1(a, TILE_MOP_ADD, ro_st, rbase, 0);
  attn_vst(a, alpha, rp, sst, 0, a->ring, 0, false);
  ring_step(a, ro_st, rmask, vb);
  rp = attn_s1(a, TILE_MOP_ADD, ro_ld, rbase, 0);
  int32_t al = attn_vld(a, -1, rp, sst, 0, a->ring, 0, false);
  ring_step(a, ro_ld, rmask, vb);
  int32_t scaled = attn_v1(a, TILE_MOP_VMULF, acc, al, 0, 0);
  attn_op(a, TILE_MOP_MXU_POPACC, acc, scaled, 0, 1, 0);
  attn_op(a, TILE_MOP_ADDI, kp, kp, 0, 0, (int32_t)(a->dim * a->esz));
  attn_op(a, TILE_MOP_ADDI, vp, vp, 0, 0, (int32_t)((int64_t)a->dim * a->lanes * a->esz));
  tile_mir_loop_end(m);

  int32_t r = attn_v1(a, TILE_MOP_VRCP, l, 0, 0, 0);
  int32_t o = attn_v1(a, TILE_MOP_VMULF, acc, r, 0, 0);
  attn_vst(a, o, a->zero, a->b_ost, 0, a->obuf[par], 0, a->bf16_out);
}
