/* The rounds of the chunk tournament (gen_select_tour.c describes the method), in one of
 * two schedules:
 *
 * - batched: after the whole stream, k rounds over batches of up to FAST_BATCH groups,
 *   whose independent chains the list scheduler interleaves (many short rows: the rounds
 *   are most of the work);
 * - overlapped: the stream goes group by group, and group g's k rounds run inside group
 *   g+1's stream, one round and a few blocks per iteration of a list-scheduled loop: a
 *   round is a dependent chain (about 100 cycles on v5e-like) that hides under the HBM
 *   time of the blocks beside it. Only the last group's rounds remain after the stream.
 *   The block DMAs run LA blocks ahead of the compute across every loop, so HBM stays
 *   busy through the heads of each group too; the last group's pass is emitted on its
 *   own, its loops issuing only the blocks that are left. Staging is group major
 *   ([G][k][8]): a round's wide store then only covers entries written later, as in the
 *   batched schedule's round-major [k][R].
 *
 * The batched schedule wins when the stream is short against the rounds; sel_tour_plan
 * chooses by an estimate of both.
 *
 * What bounds a round decides its form. Beside the stream, registers: the rows' loads
 * combine in a chain (two of each kind in flight, not eight), and the constants are made
 * in the loop body, so none stays live across the stream's loops. Alone (the last
 * group's rounds, one group's in the batched schedule), the chain: the group's line and
 * its best stay in registers from round to round, the byte offsets take a shorter path
 * (c->quick), and the slice's and the line's new best come from their other lanes,
 * reduced off the chain, against the one lane that changed (best_but, best_of). */
#include "gen_select_int.h"

/* Combines eight loads, one per sublane: sublane r of the result from v[r]. */
static int32_t sublane_tree(Sel *s, const RoundK *c, int32_t *v) {
  for (int w = 1, lvl = 0; w < 8; w *= 2, lvl++)
    for (int r = 0; r < 8; r += 2 * w) vset(s, TILE_MOP_VSEL, v[r], v[r + w], v[r], c->sub[lvl]);
  return v[0];
}

/* The best (x', key) among the lanes of (x, k) but lane ex (ex != 0 there): (*bx, *bk),
 * uniform along lanes; (-inf, -inf) when no lane is left. */
static void best_but(Sel *s, const RoundK *c, int32_t x, int32_t k, int32_t ex, int32_t *bx,
                     int32_t *bk) {
  int32_t rx = vsel(s, ex, c->neginf, x);
  *bx = vop(s, TILE_MOP_XLMAX, rx, 0);
  int32_t top = vop(s, TILE_MOP_VCMPEQF, rx, *bx);
  vset(s, TILE_MOP_VSEL, top, k, c->neginf, top);
  vset(s, TILE_MOP_VSEL, top, c->neginf, top, ex); /* not lane ex, even at -inf */
  *bk = vop(s, TILE_MOP_XLMAX, top, 0);
}

/* The better of (ax, ak) and (bx, bk), into registers dx and dk: x' first, then the key
 * (equal x': the larger key of the two). A few selects where a lane reduction was. */
static void best_of(Sel *s, const RoundK *c, int32_t ax, int32_t ak, int32_t bx, int32_t bk,
                    int32_t dx, int32_t dk) {
  int32_t gt = vop(s, TILE_MOP_VCMPLTF, bx, ax), eq = vop(s, TILE_MOP_VCMPEQF, bx, ax);
  int32_t t = vsel(s, eq, ak, c->neginf);
  vset(s, TILE_MOP_VMAXF, t, t, bk, 0);
  vset(s, TILE_MOP_VMAXF, dx, ax, bx, 0);
  vset(s, TILE_MOP_VSEL, dk, ak, t, gt);
}

/* One round of group j of the batch: 8 rows, sublane r = row r; the loads of `rows` name
 * slot rows_tag. */
static void round_group(Sel *s, Fast *f, const RoundK *c, int j, int rows_tag) {
  TileMir *m = s->m;
  int32_t z = s->zero, R = TILE_MIR_READ, W = TILE_MIR_WRITE;
  int64_t line = (int64_t)j * f->S * f->L * 4, keys = f->R8 * f->L * 4;
  /* The rows' best heads from their lines: x', then the largest key with that x'. */
  int32_t gx = c->lx, gk = c->lk; /* the line, carried in registers */
  if (gx < 0) {
    gx = vmem(s, TILE_MOP_VLD, -1, c->gb, c->s512, f->rec, line, R, j);
    gk = vmem(s, TILE_MOP_VLD, -1, c->gb, c->s512, f->rec, keys + line, R, j);
  }
  int32_t gm = c->lgm, nb = c->lnb; /* carried too: the last round left them */
  if (gm < 0) {
    gm = vop(s, TILE_MOP_XLMAX, gx, 0);
    nb = vop(s, TILE_MOP_VCMPEQF, gx, gm);
    vset(s, TILE_MOP_VSEL, nb, gk, c->neginf, nb);
    vset(s, TILE_MOP_XLMAX, nb, nb, 0, 0);
  }
  /* The index, its chunk's first index cb and tile's tb, and the slice's s * 128: bit
   * fields of the index, which is the low 24 bits of nv = -v (v = -index, + 2^24 for a
   * NaN). The byte offsets of the chunk in rows and of the slice in hb scale a field by a
   * power of two, which commutes with the mask: (nv & M) * e = (v * -e) & (M * e), two
   * ops less on the round's critical path for four more constants (c->quick: where the
   * chain is the bound, not the registers). */
  int32_t v = vop(s, TILE_MOP_VCVTFI, nb, 0);
  int32_t nv = vop(s, TILE_MOP_VSUBI, c->zero, v);
  int32_t idx = vop(s, TILE_MOP_VAND, nv, c->mask24);
  int32_t cb = vop(s, TILE_MOP_VAND, c->quick ? nv : idx, c->mcb);
  int32_t tb = vop(s, TILE_MOP_VAND, c->quick ? nv : idx, c->mtb);
  int32_t sv, co, ho;
  if (c->quick) {
    sv = vop(s, TILE_MOP_VAND, nv, c->msv);
    co = vop(s, TILE_MOP_VMULI, v, c->neb);
    vset(s, TILE_MOP_VAND, co, co, c->mcb_eb, 0);
  } else {
    sv = vop(s, TILE_MOP_VSUBI, cb, tb); /* no constant more */
    co = vop(s, TILE_MOP_VMULI, cb, c->ebv);
  }
  if (c->quick && c->nsp >= 0) {
    ho = vop(s, TILE_MOP_VMULI, v, c->nsp);
    vset(s, TILE_MOP_VAND, ho, ho, c->msv_sp, 0);
  } else {
    ho = vop(s, TILE_MOP_VMULI, sv, c->spv);
  }
  vset(s, TILE_MOP_VADDI, co, co, c->br, 0);
  vset(s, TILE_MOP_VADDI, ho, ho, c->bh, 0);
  vmem(s, TILE_MOP_VST, co, z, c->s512, f->xf[j], 0, W, 0);
  vmem(s, TILE_MOP_VST, ho, z, c->s512, f->xf[j], f->S * f->L * 4, W, 0);
  tile_dma_issue(s->cx, &c->xsite[j], -1, 0, -1, 0);
  tile_dma_wait(s->cx, &c->xsite[j], 0, 0);
  int32_t cr[8], hr[8], ck[8], px[8], pk[8];
  int ld = s->elem == TILE_ELEM_BF16 ? TILE_MOP_VLDBF : TILE_MOP_VLD;
  int64_t real = GUARD_BELOW * f->gd;
  /* In a chain (c->sio >= 0): sublanes r.. of each result from row r's load. Rows after
   * the first reuse two registers of each kind in turn, so a row's loads wait for the
   * chain to take the row two before: the loads then stay about two rows ahead of the
   * chain instead of all landing at once, and the round holds a few registers where a
   * tree held eight per result. */
  bool chain = c->sio >= 0;
  int32_t keep = -1, rv = -1, rs[2][2], rl[3][2];
  if (chain) {
    keep = tile_mir_vreg(m);
    rv = tile_mir_vreg(m);
    for (int i = 0; i < 2; i++) {
      rs[0][i] = tile_mir_sreg(m), rs[1][i] = tile_mir_sreg(m);
      for (int q = 0; q < 3; q++) rl[q][i] = tile_mir_vreg(m);
    }
  }
  for (int r = 0; r < 8; r++) {
    int64_t row = (int64_t)j * 8 + r;
    bool rot = chain && r > 0;
    cr[r] = rot ? rs[0][r & 1] : tile_mir_sreg(m);
    hr[r] = rot ? rs[1][r & 1] : tile_mir_sreg(m);
    for (int q = 0; q < 2; q++) {
      TileMirInst in = tile_mir_inst(TILE_MOP_SLD, q ? hr[r] : cr[r], z, 0, 0, 32 * q + 4 * r);
      in.imm_buf = f->xs[j];
      tile_mir_mem(&in, f->xs[j], R, 0);
      tile_mir_add(m, in);
    }
    ck[r] = vmem(s, ld, rot ? rl[0][r & 1] : -1, cr[r], z, f->rows, row * f->pitch_b, R, rows_tag);
    px[r] = vmem(s, TILE_MOP_VLD, rot ? rl[1][r & 1] : -1, hr[r], z, f->hb, real + row * f->rpx, R,
                 j);
    pk[r] = vmem(s, TILE_MOP_VLD, rot ? rl[2][r & 1] : -1, hr[r], z, f->hb,
                 real + f->koff + row * f->rpx, R, j);
    if (rot) {
      ins(m, TILE_MOP_VLI, rv, 0, 0, 0, r);
      ins(m, TILE_MOP_VCMPLTI, keep, c->sio, rv, 0, 0);
      vset(s, TILE_MOP_VSEL, ck[0], ck[0], ck[r], keep);
      vset(s, TILE_MOP_VSEL, px[0], px[0], px[r], keep);
      vset(s, TILE_MOP_VSEL, pk[0], pk[0], pk[r], keep);
    }
  }
  int32_t x = c->sio >= 0 ? ck[0] : sublane_tree(s, c, ck);

  /* The chunk's elements after the winner: smaller x', or equal x' and smaller key. */
  int32_t key = vop(s, TILE_MOP_VCVTIF, cb, 0);
  vset(s, TILE_MOP_VSUBF, key, c->nlane_f, key, 0); /* -index */
  int32_t e = vop(s, TILE_MOP_VCMPEQF, x, x);
  int32_t kn = vop(s, TILE_MOP_VADDF, key, c->big);
  vset(s, TILE_MOP_VSEL, key, key, kn, e);
  int32_t xp = vsel(s, e, x, c->pinf);
  int32_t lt = vop(s, TILE_MOP_VCMPLTF, xp, gm);
  vset(s, TILE_MOP_VCMPEQF, e, xp, gm, 0);
  vset(s, TILE_MOP_VCMPLTF, kn, key, nb, 0);
  vset(s, TILE_MOP_VSEL, e, kn, lt, e); /* eligible */
  int32_t xm = vsel(s, e, xp, c->neginf);
  int32_t km = vsel(s, e, key, c->neginf);
  int32_t nm = vop(s, TILE_MOP_XLMAX, xm, 0);
  vset(s, TILE_MOP_VCMPEQF, xm, xm, nm, 0);
  vset(s, TILE_MOP_VSEL, km, km, c->neginf, xm);
  int32_t nk = vop(s, TILE_MOP_XLMAX, km, 0);
  /* The winner's own bits (x' reads a NaN as +inf; the heads' maximum takes +0 over an
   * equal -0), and its index: sublane r to word r of the round's staging run. */
  int32_t wv = vop(s, TILE_MOP_VCMPEQF, key, nb);
  vset(s, TILE_MOP_VSEL, wv, x, c->neginf, wv);
  vset(s, TILE_MOP_XLMAX, wv, wv, 0, 0);
  vmem(s, s->elem == TILE_ELEM_BF16 ? TILE_MOP_VSTBF : TILE_MOP_VST, wv, c->sv, c->seb, s->vstage,
       (int64_t)j * 8 * s->eb, W, 0);
  vmem(s, TILE_MOP_VST, idx, c->si, c->s4, s->istage, (int64_t)j * 32, W, 0);

  /* The chunk's new head into its slice, the slice's best head into the row's line,
   * the slice back (guarded). */
  int32_t sx = c->sio >= 0 ? px[0] : sublane_tree(s, c, px);
  int32_t sk = c->sio >= 0 ? pk[0] : sublane_tree(s, c, pk);
  int32_t lm = vop(s, TILE_MOP_VCMPEQI, c->lane_t, tb);
  int32_t tx, tk;
  if (c->quick) {
    /* The slice's best head without the chunk's lane first (off the chain: it needs only
     * the old slice), then the new head against it. */
    int32_t rx = c->in_row >= 0 ? vsel(s, c->in_row, sx, c->neginf) : sx;
    int32_t rk = c->in_row >= 0 ? vsel(s, c->in_row, sk, c->neginf) : sk;
    int32_t rxm, rkm;
    best_but(s, c, rx, rk, lm, &rxm, &rkm);
    tx = tile_mir_vreg(m), tk = tile_mir_vreg(m);
    best_of(s, c, nm, nk, rxm, rkm, tx, tk);
    vset(s, TILE_MOP_VSEL, sx, nm, sx, lm);
    vset(s, TILE_MOP_VSEL, sk, nk, sk, lm);
  } else {
    vset(s, TILE_MOP_VSEL, sx, nm, sx, lm);
    vset(s, TILE_MOP_VSEL, sk, nk, sk, lm);
    int32_t mx = sx, mk = sk;
    if (c->in_row >= 0) {
      mx = vsel(s, c->in_row, sx, c->neginf);
      mk = vsel(s, c->in_row, sk, c->neginf);
    }
    tx = vop(s, TILE_MOP_XLMAX, mx, 0);
    int32_t top = vop(s, TILE_MOP_VCMPEQF, mx, tx);
    vset(s, TILE_MOP_VSEL, top, mk, c->neginf, top);
    tk = vop(s, TILE_MOP_XLMAX, top, 0);
  }
  /* The line first: the next round waits for it, the slices only later. */
  int32_t ls = vop(s, TILE_MOP_VCMPEQI, c->lane_s, sv);
  if (c->lgm >= 0) {
    /* the next round's best of the line, the same way: the rest of the line (off the
     * chain), then the slice's new best against it */
    int32_t rgm, rgk;
    best_but(s, c, gx, gk, ls, &rgm, &rgk);
    best_of(s, c, tx, tk, rgm, rgk, c->lgm, c->lnb);
  }
  vset(s, TILE_MOP_VSEL, gx, tx, gx, ls);
  vset(s, TILE_MOP_VSEL, gk, tk, gk, ls);
  if (c->lx < 0) {
    vmem(s, TILE_MOP_VST, gx, c->gb, c->s512, f->rec, line, W, j);
    vmem(s, TILE_MOP_VST, gk, c->gb, c->s512, f->rec, keys + line, W, j);
  }
  if (f->bs == 1) {
    /* One group: the round's chain is the bound, so each slice goes back as soon as it
     * is ready. Rows 0-3 step the other sublanes up by D, rows 4-7 down by -D: every
     * stray sublane lands 3 D below to 7 D above the real slices. */
    for (int q = 0; q < 2; q++)
      for (int r = 0; r < 8; r++) {
        /* all x' slices, then all keys: the hb stores keep their program order, and the
         * keys are ready last */
        if (chain && r > 0) { /* the row's slice offset again (its register was reused) */
          TileMirInst in = tile_mir_inst(TILE_MOP_SLD, hr[r], z, 0, 0, 32 + 4 * r);
          in.imm_buf = f->xs[j];
          tile_mir_mem(&in, f->xs[j], R, 0);
          tile_mir_add(m, in);
        }
        bool up = r < 4;
        int64_t at = real + ((int64_t)j * 8 + r) * f->rpx + (up ? -r : r) * f->gd;
        vmem(s, TILE_MOP_VST, q ? sk : sx, hr[r], up ? c->sgd : c->sngd, f->hb,
             at + q * f->koff, W, j);
      }
  } else {
    /* Several groups: the store slot is the bound, so one store per row writes both of
     * its slices: x' in sublane r and the key in sublane r+1 (even r) or r-1 (odd r),
     * from the keys rotated by one sublane, at the sublane stride koff (-koff) that takes
     * the key's sublane to the key slice. Sublane q lands (q - r) koff (even r) or
     * (r - q) koff (odd r) from the row's x' slice: -6 to +7 koff, guard space
     * (3 D >= 6 koff below, 7 D above). */
    int32_t kup = tile_mir_vreg(m), kdn = tile_mir_vreg(m);
    ins(m, TILE_MOP_XSROT, kup, sk, 0, 0, 1);
    ins(m, TILE_MOP_XSROT, kdn, sk, 0, 0, f->S - 1);
    int32_t pair[2] = {vsel(s, c->sub[0], kup, sx), vsel(s, c->sub[0], sx, kdn)};
    for (int r = 0; r < 8; r++) {
      bool even = (r & 1) == 0;
      int64_t at = real + ((int64_t)j * 8 + r) * f->rpx + (even ? -r : r) * f->koff;
      vmem(s, TILE_MOP_VST, pair[r & 1], hr[r], even ? c->skoff : c->snkoff, f->hb, at, W, j);
    }
  }
}

/* The rounds' vector constants (made where they start to live: the overlapped schedule
 * makes them again before each group's round loops, so they do not stay live through the
 * stream loops, whose registers they would take). */
static void round_vconsts(Sel *s, Fast *f, RoundK *c, bool chain, bool quick) {
  TileMir *m = s->m;
  c->zero = vli(s, 0);
  c->neginf = vli(s, fbits(-INFINITY));
  int32_t li0 = vop(s, TILE_MOP_VIOTA, 0, 0);
  c->nlane_f = vop(s, TILE_MOP_VSUBF, c->zero, vop(s, TILE_MOP_VCVTIF, li0, 0));
  c->lane_t = vop(s, TILE_MOP_VMULI, li0, vli(s, (uint32_t)f->TE));
  c->lane_s = vop(s, TILE_MOP_VMULI, li0, vli(s, (uint32_t)f->L));
  int32_t si0 = tile_mir_vreg(m);
  ins(m, TILE_MOP_VIOTA, si0, 0, 0, 0, 1);
  if (chain) {
    c->sio = si0;
  } else {
    c->sio = -1;
    for (int b = 0; b < 3; b++) c->sub[b] = vop(s, TILE_MOP_VAND, si0, vli(s, 1u << b));
  }
  c->in_row = f->sp < f->L * 4 ? vop(s, TILE_MOP_VCMPLTI, li0, vli(s, (uint32_t)f->ntp)) : -1;
  c->pinf = vli(s, fbits(INFINITY));
  c->big = vli(s, fbits(KEY_NAN));
  uint32_t m24 = (1u << 24) - 1, mcb = m24 & ~(uint32_t)(f->L - 1);
  uint32_t msv = (uint32_t)(f->TE - f->L), spv = (uint32_t)(f->sp / f->L);
  c->quick = quick;
  c->mask24 = vli(s, m24);
  c->mcb = vli(s, quick ? mcb : ~(uint32_t)(f->L - 1)); /* on nv, or on the index */
  c->mtb = vli(s, quick ? m24 & ~(uint32_t)(f->TE - 1) : ~(uint32_t)(f->TE - 1));
  c->msv = quick ? vli(s, msv) : -1;
  /* sp / lanes is 1 to 4: the quick slice offset when a power of two */
  bool pow2 = (spv & (spv - 1)) == 0;
  c->neb = quick ? vli(s, (uint32_t)-s->eb) : -1;
  c->mcb_eb = quick ? vli(s, mcb * (uint32_t)s->eb) : -1;
  c->ebv = quick ? -1 : vli(s, (uint32_t)s->eb);
  c->nsp = quick && pow2 ? vli(s, (uint32_t)-(int32_t)spv) : -1;
  c->msv_sp = quick && pow2 ? vli(s, msv * spv) : -1;
  c->spv = quick && pow2 ? -1 : vli(s, spv);
}

/* The rounds' scalar constants and their DMA sites (one per group of a batch). */
static void round_consts(Sel *s, Fast *f, RoundK *cp) {
  RoundK c = *cp;
  c.s512 = sop(s, TILE_MOP_LI, 0, 0, f->L * 4);
  c.s4 = sop(s, TILE_MOP_LI, 0, 0, 4);
  c.seb = sop(s, TILE_MOP_LI, 0, 0, s->eb);
  /* the slices' store strides (round_group) */
  int64_t sstep = f->bs == 1 ? f->gd : f->koff;
  c.sgd = c.skoff = sop(s, TILE_MOP_LI, 0, 0, (int32_t)sstep);
  c.sngd = c.snkoff = sop(s, TILE_MOP_LI, 0, 0, (int32_t)-sstep);
  TileDmaShape xshape = {.count0 = 4, .count1 = 8, .count2 = 2,
                         .src_stride1 = f->L * 4, .src_stride2 = f->S * f->L * 4,
                         .dst_stride1 = 4, .dst_stride2 = 32};
  for (int j = 0; j < f->bs; j++)
    c.xsite[j] = tile_dma_site(s->cx, f->xf[j], 0, f->xs[j], 0, xshape);
  *cp = c;
}

/* With on, the rounds of one group keep its line (rec at gb) in registers, and its best
 * (x', key): a loop of them then saves the line's store and load and the line's two
 * lane reductions at the start of each round's chain. */
static void carry_line(Sel *s, Fast *f, RoundK *c, bool on, int32_t gb) {
  c->lx = c->lk = c->lgm = c->lnb = -1;
  if (!on) return;
  c->lx = vmem(s, TILE_MOP_VLD, -1, gb, c->s512, f->rec, 0, TILE_MIR_READ, 0);
  c->lk = vmem(s, TILE_MOP_VLD, -1, gb, c->s512, f->rec, f->R8 * f->L * 4, TILE_MIR_READ, 0);
  /* the line's best for the first round (each round leaves the next one's) */
  c->lgm = vop(s, TILE_MOP_XLMAX, c->lx, 0);
  c->lnb = vop(s, TILE_MOP_VCMPEQF, c->lx, c->lgm);
  vset(s, TILE_MOP_VSEL, c->lnb, c->lk, vli(s, fbits(-INFINITY)), c->lnb);
  vset(s, TILE_MOP_XLMAX, c->lnb, c->lnb, 0, 0);
}

/* The k rounds: a loop over rounds around a loop over batches of groups. */
void sel_rounds_batched(Sel *s, Fast *f) {
  TileMir *m = s->m;
  RoundK c;
  round_vconsts(s, f, &c, false, f->bs == 1); /* one group: the chain is the bound */
  round_consts(s, f, &c);
  int32_t rv = sop(s, TILE_MOP_LI, 0, 0, 0), ri = sop(s, TILE_MOP_LI, 0, 0, 0);
  int32_t brow = tile_mir_sreg(m), bhs = tile_mir_sreg(m);
  c.gb = tile_mir_sreg(m);
  c.sv = tile_mir_sreg(m);
  c.si = tile_mir_sreg(m);
  carry_line(s, f, &c, f->bs == 1, s->zero);

  tile_mir_loop_begin(m, (int32_t)s->k, 0);
  ins(m, TILE_MOP_LI, brow, 0, 0, 0, 0);
  ins(m, TILE_MOP_LI, bhs, 0, 0, 0, 0);
  ins(m, TILE_MOP_LI, c.gb, 0, 0, 0, 0);
  ins(m, TILE_MOP_MOV, c.sv, rv, 0, 0, 0);
  ins(m, TILE_MOP_MOV, c.si, ri, 0, 0, 0);
  tile_mir_loop_begin(m, (int32_t)f->nbatch, 0);
  c.br = vop(s, TILE_MOP_VBCAST, brow, 0);
  c.bh = vop(s, TILE_MOP_VBCAST, bhs, 0);
  for (int j = 0; j < f->bs; j++) round_group(s, f, &c, j, j);
  int64_t rows = (int64_t)f->bs * f->S;
  ins(m, TILE_MOP_ADDI, brow, brow, 0, 0, (int32_t)(rows * f->pitch_b));
  ins(m, TILE_MOP_ADDI, bhs, bhs, 0, 0, (int32_t)(rows * f->rpx));
  ins(m, TILE_MOP_ADDI, c.gb, c.gb, 0, 0, (int32_t)(rows * f->L * 4));
  ins(m, TILE_MOP_ADDI, c.sv, c.sv, 0, 0, (int32_t)(rows * s->eb));
  ins(m, TILE_MOP_ADDI, c.si, c.si, 0, 0, (int32_t)(rows * 4));
  tile_mir_loop_end(m);
  ins(m, TILE_MOP_ADDI, rv, rv, 0, 0, (int32_t)(s->R * s->eb));
  ins(m, TILE_MOP_ADDI, ri, ri, 0, 0, (int32_t)(s->R * 4));
  tile_mir_loop_end(m);
}


enum {
  LOOKAHEAD = 10,   /* block DMAs in flight ahead of the compute (at most) */
  ROUND_BLOCKS = 3, /* blocks beside one round, at most: the rest run in a loop of their own */
};

/* Waits for nblocks blocks and issues nissue; one round of the group before (with c);
 * the blocks' heads. The DMA-slot ops stay in this order (the scheduler keeps them in
 * program order): waits first, since a wait after a block's DMA on the same site would be
 * held for that DMA's whole transfer. */
static void stream_round(Sel *s, Fast *f, Stream *st, RoundK *c, int64_t nblocks,
                         int64_t nissue) {
  /* Constants made in the body: live for one iteration, not across the loops (where the
   * allocator would reload them at every use). Beside blocks a round combines its loads in
   * a chain; alone, in a tree, and takes the quick path. */
  if (c) round_vconsts(s, f, c, nblocks > 0, nblocks == 0);
  if (nblocks > 0) sel_stream_consts(s, f, &st->k);
  for (int64_t i = 0; i < nblocks; i++) sel_stream_wait(s);
  for (int64_t i = 0; i < nissue; i++) sel_stream_issue(s, f, st);
  if (c) {
    round_group(s, f, c, 0, TAG_ROUND);
    ins(s->m, TILE_MOP_ADDI, c->sv, c->sv, 0, 0, f->S * s->eb);
    ins(s->m, TILE_MOP_ADDI, c->si, c->si, 0, 0, f->S * 4);
  }
  for (int64_t i = 0; i < nblocks; i++) sel_stream_block(s, f, st);
}

/* trips iterations of stream_round, each computing nblocks blocks and issuing as many
 * while *budget (the blocks not yet issued) lasts: loops of whole issues, one iteration
 * of the rest, loops of none. A negative budget means no limit. */
static void stream_round_loop(Sel *s, Fast *f, Stream *st, RoundK *c, int64_t trips,
                              int64_t nblocks, int64_t *budget) {
  while (trips > 0) {
    int64_t n = trips, issue = nblocks;
    if (*budget >= 0 && nblocks > 0) {
      int64_t whole = *budget / nblocks;
      if (whole == 0) {
        n = 1, issue = *budget; /* the last issues, then none */
        if (issue == 0) n = trips;
      } else if (whole < n) {
        n = whole;
      }
      *budget -= n * issue;
    }
    tile_mir_loop_begin(s->m, (int32_t)n, 0);
    stream_round(s, f, st, c, nblocks, issue);
    tile_mir_loop_end(s->m);
    trips -= n;
  }
}

/* One group's stream with the rounds of the group before: the blocks the rounds leave,
 * then the others beside k rounds (`extra` rounds take one block more than the others),
 * then the group's heads. */
static void group_pass(Sel *s, Fast *f, Stream *st, RoundK *c, int32_t brow, int32_t bhs,
                       const int32_t *heads, int64_t *budget) {
  TileMir *m = s->m;
  int64_t nb = f->S * s->nblk, k = s->k;
  int64_t during = nb < k * ROUND_BLOCKS ? nb : k * ROUND_BLOCKS;
  int64_t per = during / k, extra = during % k;
  c->br = vop(s, TILE_MOP_VBCAST, brow, 0);
  c->bh = vop(s, TILE_MOP_VBCAST, bhs, 0);
  /* the blocks the rounds leave first: the last group's pass then ends with blocks that
   * land last, not with blocks that landed long before */
  stream_round_loop(s, f, st, NULL, nb - during, 1, budget);
  stream_round_loop(s, f, st, c, extra, per + 1, budget);
  stream_round_loop(s, f, st, c, k - extra, per, budget);
  sel_tour_heads(s, f, f->S, heads[0], heads[1], heads[2]);
  ins(m, TILE_MOP_ADDI, brow, brow, 0, 0, (int32_t)(f->S * f->pitch_b));
  ins(m, TILE_MOP_ADDI, bhs, bhs, 0, 0, (int32_t)(f->S * f->rpx));
  ins(m, TILE_MOP_ADDI, c->gb, c->gb, 0, 0, f->S * f->L * 4);
}

/* Group-major staging ([G][k][8]) to the results ([R][k]): per group, element runs
 * (rows 8 apart in staging, k apart in the result; rounds the other way round). */
static void store_grouped(Sel *s, Fast *f) {
  TileMir *m = s->m;
  int64_t full = s->R / f->S, part = s->R % f->S, k = s->k;
  for (int r = 0; r < 2; r++) {
    TileTensorRef out = tile_lower_tensor(s->cx, s->op->res[r]);
    int64_t eb = r == 0 ? s->eb : 4;
    int32_t stage = r == 0 ? s->vstage : s->istage;
    for (int p = 0; p < 2; p++) {
      int64_t n = p == 0 ? full : (part > 0), rows = p == 0 ? f->S : part, g0 = p == 0 ? 0 : full;
      if (n == 0) continue;
      TileDmaShape sh = {.count0 = eb, .count1 = rows, .count2 = k,
                         .src_stride1 = eb, .dst_stride1 = k * eb,
                         .src_stride2 = f->S * eb, .dst_stride2 = eb};
      TileDmaSite d = tile_dma_site(s->cx, stage, g0 * k * f->S * eb, out.buf, g0 * f->S * k * eb, sh);
      if (n == 1) {
        tile_dma_issue(s->cx, &d, -1, 0, -1, 0);
        tile_dma_wait(s->cx, &d, 0, 0);
        continue;
      }
      int32_t src = li_buf(s, stage, 0), dst = li_buf(s, out.buf, 0);
      tile_mir_loop_begin(m, (int32_t)n, 0);
      tile_dma_issue(s->cx, &d, src, 0, dst, 0);
      tile_dma_wait(s->cx, &d, 0, 0);
      ins(m, TILE_MOP_ADDI, src, src, 0, 0, (int32_t)(k * f->S * eb));
      ins(m, TILE_MOP_ADDI, dst, dst, 0, 0, (int32_t)(f->S * k * eb));
      tile_mir_loop_end(m);
    }
  }
}

void sel_rounds_overlapped(Sel *s, Fast *f) {
  TileMir *m = s->m;
  RoundK c = {0};
  round_consts(s, f, &c);
  carry_line(s, f, &c, false, -1);
  Stream st;
  sel_stream_init(s, f, &st);
  int64_t groups = f->R8 / f->S, nb = f->S * s->nblk, k = s->k;
  /* blocks in flight ahead: no more than a group has, so only the last group stops
   * issuing (the one pass emitted on its own) */
  int64_t la = s->t->dma_outstanding - 2 < LOOKAHEAD ? s->t->dma_outstanding - 2 : LOOKAHEAD;
  if (la > nb) la = nb;
  if (la < 1) la = 1;
  int32_t brow = sop(s, TILE_MOP_LI, 0, 0, 0), bhs = sop(s, TILE_MOP_LI, 0, 0, 0);
  c.gb = sop(s, TILE_MOP_LI, 0, 0, 0);
  c.sv = sop(s, TILE_MOP_LI, 0, 0, 0);
  c.si = sop(s, TILE_MOP_LI, 0, 0, 0);
  int32_t heads[3];
  for (int i = 0; i < 3; i++) heads[i] = sop(s, TILE_MOP_LI, 0, 0, 0);
  for (int64_t i = 0; i < la; i++) sel_stream_issue(s, f, &st);
  int64_t unlimited = -1, last = nb - la; /* the last group's blocks left to issue */
  stream_round_loop(s, f, &st, NULL, nb, 1, &unlimited);
  sel_tour_heads(s, f, f->S, heads[0], heads[1], heads[2]);
  if (groups > 2) {
    tile_mir_loop_begin(m, (int32_t)(groups - 2), 0);
    group_pass(s, f, &st, &c, brow, bhs, heads, &unlimited);
    tile_mir_loop_end(m);
  }
  group_pass(s, f, &st, &c, brow, bhs, heads, &last);
  c.br = vop(s, TILE_MOP_VBCAST, brow, 0);
  c.bh = vop(s, TILE_MOP_VBCAST, bhs, 0);
  carry_line(s, f, &c, true, c.gb);
  stream_round_loop(s, f, &st, &c, k, 0, &unlimited);
  store_grouped(s, f);
}
