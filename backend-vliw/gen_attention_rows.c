/* The rows kernel of the attention generator (prefill; gen_attention.h has the plan).
 *
 * For one K/V head: the key blocks are taken nk at a time (a group, nk = MXUs / 2).
 * Key block j of a group holds MXU 2j with K^T (score weights) and MXU 2j+1 with V
 * (value weights), loaded once per group. A pipelined loop then streams the 8-row
 * query tiles of the G heads past them: push the Q tile to every score unit, pop the
 * scores, online-softmax them with the tile's running state (VMEM, a slot per tile),
 * push P to the value units and pop-accumulate into the tile's accumulator. Every unit
 * takes one push per tile, so the loop runs at the MXU's rate, mxu_push_cycles per
 * tile and group.
 *
 * Tiles are visited tile-major (the G heads of a tile position, then the next
 * position), the order of the state and of the causal bias; Q is head-major as the DMA
 * brings it, so each tile's Q offset (and its bias entry) comes from a word table in
 * SMEM rather than from a counter that wraps at each head.
 *
 * Causal (top-left): a group is skipped by the rows that precede its first key k0, so
 * its loop starts at tile position t0 = k0 / 8. Rows from k0 to k0 + nk * dim see only
 * part of the group: their scores get a bias (0 or -inf) from a VMEM table indexed by
 * min(t - t0, 16 * nk); entry 16 * nk (every key visible) serves all later tiles.
 * Padding keys (Sk not a whole number of blocks) are masked in the last group the same
 * way, by a second table or, without causality, by bias registers.
 *
 * Alpha (the rescale of the accumulator) is known at the softmax but needed one MXU
 * latency later at the pop-accumulate; registers are not renamed across iterations, so
 * it waits in the tile's state instead of a register. The first group writes the state
 * without reading it; a last loop turns each tile's acc / l into the result rows.
 *
 * Rate: registers are not renamed across iterations, so a pipelined loop's II is at
 * least the longest time any one register holds a value. Every group of accesses that
 * happen close together gets its own address register (a stream), and a tile's scores,
 * read from their pop through the row max (an XLU reduction) to the exp, 16 cycles on
 * v5e-like, pass through a second register (a relay) half way; alpha, known long before
 * the row sum it scales, is read back from the state. The loop then runs at II 9 on
 * v5e-like, against the MXU's 8 per tile. Two body copies per iteration (UNROLL = 2)
 * would schedule at the MXU's rate but hold 22 to 27 vector values at once, and
 * register allocation today counts every value live across the loop's back edge as
 * live through the whole body (29 to 38), so it spills; one copy is the default until
 * the allocator treats such a range as two pieces. */
#include "gen_attention.h"

#include <stdio.h>
#include <stdlib.h>

/* The causal tables have entries 0 .. 16 * nk (per entry nk vregs: one per key block). */
static int64_t table_entries(const Attn *a) { return (int64_t)a->dim / a->sub * a->nk + 1; }
static int64_t table_bytes(const Attn *a) {
  return table_entries(a) * a->nk * attn_vreg_bytes(a);
}

static bool needs_limit(const Attn *a) { return a->Skp != a->Sk; }

/* UNROLL copies of the loop body per iteration (see the file comment). */
enum { UNROLL = 1, STATE_SLOTS = 128 };

/* Query tiles of the G heads. */
static int64_t ntiles(const Attn *a) { return a->G * a->ntq; }

/* The state of every tile, declared as STATE_SLOTS slots: each copy of a loop body
 * names its own slot (STATE_SLOTS / UNROLL apart), so the scheduler sees tiles of
 * different iterations and copies as distinct (they are: each tile has its own bytes;
 * the slots only say so to the scheduler, conservatively, for up to STATE_SLOTS /
 * UNROLL iterations). */
static int64_t state_slot_bytes(const Attn *a) {
  int64_t bytes = (ntiles(a) * ATTN_ST_N * attn_vreg_bytes(a) + STATE_SLOTS - 1) / STATE_SLOTS;
  return (bytes + 511) / 512 * 512;
}

int64_t attn_rows_vmem(const Attn *a) {
  int64_t bytes = state_slot_bytes(a) * STATE_SLOTS;
  if (a->causal) bytes += table_bytes(a) * (needs_limit(a) ? 2 : 1);
  return bytes;
}

/* vsel's fields: d, c (condition), a (if true), b (if false). */
static int32_t vsel(Attn *a, int32_t cond, int32_t yes, int32_t no) {
  int32_t d = attn_vreg(a);
  attn_op(a, TILE_MOP_VSEL, d, yes, no, cond, 0);
  return d;
}

/* bias = (key_rel <= row_rel, if causal) and key_rel < limit (if limit >= 0) ? 0 : -inf
 * for key block j of a group: key_rel = j * dim + lane, row_rel = 8 * e + sublane. */
static int32_t bias_at(Attn *a, int64_t e, int j, int64_t limit, int32_t lane_i, int32_t sub_i) {
  int32_t vis = -1;
  if (a->causal) {
    int32_t off = attn_vli(a, (uint32_t)(int32_t)(a->sub * e + 1 - (int64_t)j * a->dim));
    int32_t row = attn_v1(a, TILE_MOP_VADDI, sub_i, off, 0, 0);
    vis = attn_v1(a, TILE_MOP_VCMPLTI, lane_i, row, 0, 0);
  }
  if (limit >= 0) {
    int32_t lim = attn_vli(a, (uint32_t)(int32_t)(limit - (int64_t)j * a->dim));
    int32_t in = attn_v1(a, TILE_MOP_VCMPLTI, lane_i, lim, 0, 0);
    vis = vis < 0 ? in : attn_v1(a, TILE_MOP_VAND, vis, in, 0, 0);
  }
  return vsel(a, vis, a->v_zero, a->v_ninf);
}

/* The SMEM word table: [0, N) the byte offset of the Q (and O) tile of tile-major
 * index i = t * G + h in the head-major staging buffers, [N, 2N) the byte offset of the
 * bias entry of a tile i positions after a group's first, N = G * ntq. */
static void make_offsets(Attn *a) {
  int64_t n = ntiles(a), qtb = (int64_t)a->sub * a->lanes * a->esz;
  int64_t emax = table_entries(a) - 1;
  uint8_t *w = malloc((size_t)(8 * n));
  if (!w) {
    fprintf(stderr, "tilec: out of memory building attention\n");
    abort();
  }
  for (int64_t i = 0; i < n; i++) {
    int64_t t = i / a->G, h = i % a->G, e = t < emax ? t : emax;
    uint32_t qo = (uint32_t)((h * a->ntq + t) * qtb);
    uint32_t bo = (uint32_t)(e * a->nk * attn_vreg_bytes(a));
    for (int k = 0; k < 4; k++) {
      w[4 * i + k] = (uint8_t)(qo >> (8 * k));
      w[4 * (n + i) + k] = (uint8_t)(bo >> (8 * k));
    }
  }
  a->offsets = tile_mir_buffer(a->m, "attn.tiles", TILE_SPACE_SMEM, 8 * n, 1, 4);
  tile_mir_data(a->m, a->offsets, w, 8 * n);
  free(w);
}

void attn_rows_setup(Attn *a) {
  int64_t vb = attn_vreg_bytes(a);
  a->state = tile_mir_buffer(a->m, "attn.state", TILE_SPACE_VMEM, state_slot_bytes(a),
                             STATE_SLOTS, 512);
  make_offsets(a);
  a->bias[0] = a->bias[1] = -1;
  if (!a->causal) return;
  int32_t lane_i = attn_v1(a, TILE_MOP_VIOTA, 0, 0, 0, 0);
  int32_t sub_i = attn_v1(a, TILE_MOP_VIOTA, 0, 0, 0, 1);
  int32_t st = attn_li(a, a->lanes * 4, -1);
  int ntables = needs_limit(a) ? 2 : 1;
  int64_t last_k0 = (a->nkb - 1) / a->nk * a->nk * a->dim;
  for (int tb = 0; tb < ntables; tb++) {
    a->bias[tb] = tile_mir_buffer(a->m, tb ? "attn.bias_last" : "attn.bias", TILE_SPACE_VMEM,
                                  table_bytes(a), 1, 512);
    int64_t limit = tb ? a->Sk - last_k0 : -1;
    for (int64_t e = 0; e < table_entries(a); e++)
      for (int j = 0; j < a->nk; j++) {
        int32_t b = bias_at(a, e, j, limit, lane_i, sub_i);
        attn_vst(a, b, a->zero, st, (e * a->nk + j) * vb, a->bias[tb], 0, false);
      }
  }
}

/* Loads the weights of key block kb into units 2j (K^T rows below D) and 2j+1 (V). */
static void load_weights(Attn *a, int par, int64_t kb, int j) {
  int32_t kst = attn_li(a, a->Skp * a->esz, -1);
  int32_t vst = attn_li(a, (int64_t)a->lanes * a->esz, -1);
  AttnRot rot = attn_rot(a);
  for (int64_t r = 0; r * a->sub < a->D; r++) {
    int32_t w = attn_vld(a, attn_rot_next(&rot), a->zero, kst,
                         (r * a->sub * a->Skp + kb * a->dim) * a->esz, a->ktbuf[par], 0,
                         a->bf16_in);
    attn_ldw(a, 2 * j, w, (int)r);
  }
  for (int64_t r = 0; r < a->dim / a->sub; r++) {
    int32_t w = attn_vld(a, attn_rot_next(&rot), a->zero, vst,
                         (kb * a->dim + r * a->sub) * a->lanes * a->esz, a->vbuf[par], 0,
                         a->bf16_in);
    attn_ldw(a, 2 * j + 1, w, (int)r);
  }
}

typedef struct GroupLoop {
  int nkg;         /* key blocks in this group */
  int64_t k0;      /* first key */
  int64_t t0;      /* first tile of each head the group reaches */
  bool first;      /* the first group: no state to read */
  int32_t table;   /* bias table, or -1 */
  int32_t lim[4];  /* loop-invariant bias registers (padding keys without causality), or -1 */
} GroupLoop;

/* A word of the offset table. */
static int32_t sld(Attn *a, int32_t addr, int64_t imm) {
  int32_t d = attn_sreg(a);
  TileMirInst in = tile_mir_inst(TILE_MOP_SLD, d, addr, 0, 0, (int32_t)imm);
  tile_mir_mem(&in, a->offsets, TILE_MIR_READ, 0);
  tile_mir_add(a->m, in);
  return d;
}

/* The address streams of one copy of the loop body. Registers are not renamed across
 * iterations, so a register read both early and late in an iteration holds the modulo
 * schedule's II up to that span; each group of accesses that happen close together
 * therefore has its own induction register, stepped right after them. */
enum { S_QWORD, S_BWORD, S_LOAD, S_NM, S_ALPHA, S_L, S_ACC, S_ACCST, S_COUNT };
typedef struct Streams {
  int32_t reg[S_COUNT]; /* SMEM word addresses (Q, bias offsets), then state addresses */
  int slot;             /* the state slot offset its references name */
} Streams;

typedef struct LoopRegs {
  int par;
  int64_t vb, stb;
  int32_t qst, sst, qbase, tbase;
} LoopRegs;

/* Loads and stores of a tile's state (f32 vregs) through stream k. */
static int32_t st_load(Attn *a, const LoopRegs *r, const Streams *c, int k, int field) {
  return attn_vld(a, -1, c->reg[k], r->sst, field * r->vb, a->state, c->slot, false);
}
static void st_store(Attn *a, const LoopRegs *r, const Streams *c, int k, int field, int32_t v) {
  attn_vst(a, v, c->reg[k], r->sst, field * r->vb, a->state, c->slot, false);
}
static void step(Attn *a, Streams *c, int k, int64_t by) {
  attn_op(a, TILE_MOP_ADDI, c->reg[k], c->reg[k], 0, 0, (int32_t)by);
}

/* One query tile against the group: a copy of the loop body; `n` copies per iteration. */
static void tile_body(Attn *a, const GroupLoop *gl, const LoopRegs *r, Streams *c, int n) {
  int64_t stb = r->stb;
  int32_t pq = sld(a, c->reg[S_QWORD], 0);
  pq = attn_s1(a, TILE_MOP_ADD, pq, r->qbase, 0);
  step(a, c, S_QWORD, 4 * n);
  int32_t q = attn_vld(a, -1, pq, r->qst, 0, a->qbuf[r->par], 0, a->bf16_in);
  for (int j = 0; j < gl->nkg; j++) attn_op(a, TILE_MOP_MXU_PUSH, 0, q, 0, 2 * j, 0);
  int32_t nm_old = -1, l_old = -1;
  if (!gl->first) {
    nm_old = st_load(a, r, c, S_LOAD, ATTN_ST_NM);
    step(a, c, S_LOAD, n * stb);
  }
  int32_t pb = -1;
  if (gl->table >= 0) {
    pb = sld(a, c->reg[S_BWORD], 0);
    pb = attn_s1(a, TILE_MOP_ADD, pb, r->tbase, 0);
    step(a, c, S_BWORD, 4 * n);
  }
  int32_t s[4];
  for (int j = 0; j < gl->nkg; j++) {
    s[j] = attn_vreg(a);
    attn_op(a, TILE_MOP_MXU_POP, s[j], 0, 0, 2 * j, 0);
    if (a->prescale) s[j] = attn_v1(a, TILE_MOP_VMULF, s[j], a->v_scale, 0, 0);
    if (gl->table >= 0) {
      int32_t b = attn_vld(a, -1, pb, r->sst, j * r->vb, gl->table, 0, false);
      s[j] = attn_v1(a, TILE_MOP_VADDF, s[j], b, 0, 0);
    } else if (gl->lim[j] >= 0) {
      s[j] = attn_v1(a, TILE_MOP_VADDF, s[j], gl->lim[j], 0, 0);
    }
  }
  /* The scores are read from their pop to the exp after the row max, longer than one
   * tile's II: a copy in a second register (a relay) splits that span in two. */
  int32_t relay[4];
  for (int j = 0; j < gl->nkg; j++)
    relay[j] = attn_v1(a, TILE_MOP_VMOV, s[j], 0, 0, 0);
  int32_t mxv = s[0];
  for (int j = 1; j < gl->nkg; j++) mxv = attn_v1(a, TILE_MOP_VMAXF, mxv, s[j], 0, 0);
  int32_t mx = attn_v1(a, TILE_MOP_XLMAX, mxv, 0, 0, 0);
  /* The state holds nm = -m * scale: p = e^(s * scale + nm), alpha = e^(nm - nm_old). */
  int32_t nm = attn_v1(a, TILE_MOP_VMULF, mx, a->v_nsc, 0, 0), alpha = -1;
  if (!gl->first) {
    nm = attn_v1(a, TILE_MOP_VMINF, nm_old, nm, 0, 0);
    int32_t dlt = attn_v1(a, TILE_MOP_VSUBF, nm, nm_old, 0, 0);
    alpha = attn_v1(a, TILE_MOP_VEXP, dlt, 0, 0, 0);
  }
  int32_t p[4], psum = -1;
  for (int j = 0; j < gl->nkg; j++) {
    int32_t x = attn_vreg(a);
    attn_op(a, TILE_MOP_VFMAF, x, relay[j], a->v_sc, nm, 0);
    p[j] = attn_v1(a, TILE_MOP_VEXP, x, 0, 0, 0);
    psum = j ? attn_v1(a, TILE_MOP_VADDF, psum, p[j], 0, 0) : p[j];
  }
  st_store(a, r, c, S_NM, ATTN_ST_NM, nm);
  step(a, c, S_NM, n * stb);
  if (!gl->first) {
    st_store(a, r, c, S_ALPHA, ATTN_ST_ALPHA, alpha);
    step(a, c, S_ALPHA, n * stb);
  }
  int32_t rs = attn_v1(a, TILE_MOP_XLSUM, psum, 0, 0, 0);
  int32_t l = rs;
  if (!gl->first) {
    /* alpha is ready long before the row sum: read it back from the state */
    l_old = st_load(a, r, c, S_L, ATTN_ST_L);
    int32_t al = st_load(a, r, c, S_L, ATTN_ST_ALPHA);
    l = attn_vreg(a);
    attn_op(a, TILE_MOP_VFMAF, l, l_old, al, rs, 0);
  }
  for (int j = 0; j < gl->nkg; j++) attn_op(a, TILE_MOP_MXU_PUSH, 0, p[j], 0, 2 * j + 1, 0);
  st_store(a, r, c, S_L, ATTN_ST_L, l);
  step(a, c, S_L, n * stb);
  int32_t acc;
  if (gl->first) {
    acc = attn_vreg(a);
    attn_op(a, TILE_MOP_MXU_POP, acc, 0, 0, 1, 0);
  } else {
    int32_t al = st_load(a, r, c, S_ACC, ATTN_ST_ALPHA);
    int32_t acc_old = st_load(a, r, c, S_ACC, ATTN_ST_ACC);
    step(a, c, S_ACC, n * stb);
    int32_t scaled = attn_v1(a, TILE_MOP_VMULF, acc_old, al, 0, 0);
    acc = attn_vreg(a);
    attn_op(a, TILE_MOP_MXU_POPACC, acc, scaled, 0, 1, 0);
  }
  for (int j = 1; j < gl->nkg; j++) {
    int32_t nx = attn_vreg(a);
    attn_op(a, TILE_MOP_MXU_POPACC, nx, acc, 0, 2 * j + 1, 0);
    acc = nx;
  }
  st_store(a, r, c, S_ACCST, ATTN_ST_ACC, acc);
  step(a, c, S_ACCST, n * stb);
}

/* One pipelined loop over the tiles at positions t0 .. ntq-1 of every head for one key
 * group. The body holds two tiles, each with its own registers: a tile's scores are
 * read from their pop to the exp after the row max, longer than one tile's MXU time,
 * and registers are not renamed across iterations. */
static void group_loop(Attn *a, int par, const GroupLoop *gl) {
  LoopRegs r;
  r.par = par;
  r.vb = attn_vreg_bytes(a);
  r.stb = ATTN_ST_N * r.vb;
  int64_t first = gl->t0 * a->G, trips = ntiles(a) - first;
  r.qst = attn_li(a, (int64_t)a->lanes * a->esz, -1);
  r.sst = attn_li(a, a->lanes * 4, -1);
  r.qbase = attn_li(a, 0, a->qbuf[par]);
  r.tbase = gl->table >= 0 ? attn_li(a, 0, gl->table) : -1;
  Streams c[UNROLL];
  for (int k = 0; k < UNROLL; k++) {
    c[k].reg[S_QWORD] = attn_li(a, 4 * (first + k), a->offsets);
    /* the bias words count from the group's first tile */
    c[k].reg[S_BWORD] = gl->table >= 0 ? attn_li(a, 4 * (ntiles(a) + k), a->offsets) : -1;
    for (int sk = S_LOAD; sk < S_COUNT; sk++) {
      bool reads = sk == S_LOAD || sk == S_ALPHA || sk == S_ACC; /* the old state's */
      c[k].reg[sk] = reads && gl->first ? -1 : attn_li(a, (first + k) * r.stb, a->state);
    }
    c[k].slot = k * (STATE_SLOTS / UNROLL);
  }
  if (trips >= UNROLL) {
    tile_mir_loop_begin(a->m, (int32_t)(trips / UNROLL), TILE_MIR_PIPELINE);
    for (int k = 0; k < UNROLL; k++) tile_body(a, gl, &r, &c[k], UNROLL);
    tile_mir_loop_end(a->m);
  }
  /* the tiles left over are the next ones of the first copy's stream */
  for (int64_t k = 0; k < trips % UNROLL; k++) tile_body(a, gl, &r, &c[0], 1);
}

typedef struct FinishRegs {
  int32_t sst, ost, obase; /* strides of the state and O rows; the O staging buffer */
} FinishRegs;

/* o = acc * (1 / l) for one tile through a copy's streams: its state address ps and the
 * SMEM address j of its O offset word; n copies per iteration. */
static void finish_tile(Attn *a, int par, const FinishRegs *f, int32_t ps, int32_t j, int n) {
  int64_t vb = attn_vreg_bytes(a);
  int32_t l = attn_vld(a, -1, ps, f->sst, ATTN_ST_L * vb, a->state, 0, false);
  int32_t r = attn_v1(a, TILE_MOP_VRCP, l, 0, 0, 0);
  int32_t acc = attn_vld(a, -1, ps, f->sst, ATTN_ST_ACC * vb, a->state, 0, false);
  attn_op(a, TILE_MOP_ADDI, ps, ps, 0, 0, (int32_t)(n * ATTN_ST_N * vb));
  int32_t o = attn_v1(a, TILE_MOP_VMULF, acc, r, 0, 0);
  int32_t po = sld(a, j, 0);
  po = attn_s1(a, TILE_MOP_ADD, po, f->obase, 0);
  attn_op(a, TILE_MOP_ADDI, j, j, 0, 0, 4 * n);
  attn_vst(a, o, po, f->ost, 0, a->obuf[par], 0, a->bf16_out);
}

/* o = acc * (1 / l) for every tile, into the head-major staging buffer of set par (O
 * tiles have Q's element type, so Q's offsets serve). FINISH_UNROLL tiles per
 * iteration, each with its own registers, so the reciprocal's latency overlaps. */
enum { FINISH_UNROLL = 4 };
static void finish_loop(Attn *a, int par) {
  int64_t stb = ATTN_ST_N * attn_vreg_bytes(a), n = ntiles(a);
  FinishRegs f = {.sst = attn_li(a, a->lanes * 4, -1),
                  .ost = attn_li(a, (int64_t)a->lanes * a->osz, -1),
                  .obase = attn_li(a, 0, a->obuf[par])};
  int32_t ps[FINISH_UNROLL], j[FINISH_UNROLL];
  for (int k = 0; k < FINISH_UNROLL; k++) {
    ps[k] = attn_li(a, k * stb, a->state);
    j[k] = attn_li(a, 4 * k, a->offsets);
  }
  if (n >= FINISH_UNROLL) {
    tile_mir_loop_begin(a->m, (int32_t)(n / FINISH_UNROLL), TILE_MIR_PIPELINE);
    for (int k = 0; k < FINISH_UNROLL; k++) finish_tile(a, par, &f, ps[k], j[k], FINISH_UNROLL);
    tile_mir_loop_end(a->m);
  }
  /* the tiles left over are the next ones of the first copies' streams */
  for (int64_t k = 0; k < n % FINISH_UNROLL; k++) finish_tile(a, par, &f, ps[k], j[k], 1);
}

void attn_rows_emit(Attn *a, int par) {
  int64_t ngroups = (a->nkb + a->nk - 1) / a->nk;
  for (int64_t gi = 0; gi < ngroups; gi++) {
    GroupLoop gl;
    gl.k0 = gi * a->nk * a->dim;
    gl.nkg = (int)(a->nkb - gi * a->nk < a->nk ? a->nkb - gi * a->nk : a->nk);
    gl.t0 = a->causal ? gl.k0 / a->sub : 0;
    if (gl.t0 >= a->ntq) break; /* no row sees this group or any later one */
    gl.first = gi == 0;
    bool last = gi == ngroups - 1;
    gl.table = a->causal ? a->bias[last && needs_limit(a) ? 1 : 0] : -1;
    for (int j = 0; j < 4; j++) gl.lim[j] = -1;
    if (!a->causal && last && needs_limit(a)) {
      int32_t lane_i = attn_v1(a, TILE_MOP_VIOTA, 0, 0, 0, 0);
      for (int j = 0; j < gl.nkg; j++) gl.lim[j] = bias_at(a, 0, j, a->Sk - gl.k0, lane_i, -1);
    }
    for (int j = 0; j < gl.nkg; j++) load_weights(a, par, gi * a->nk + j, j);
    group_loop(a, par, &gl);
  }
  finish_loop(a, par);
}
