/* The rows kernel of the attention generator (prefill; gen_attention.h has the plan).
 *
 * Key blocks are taken nk at a time (a group, nk = MXUs / 2): block j of a group holds
 * unit 2j with K^T * scale (score weights) and unit 2j+1 with V (value weights). A
 * visit is one 8-row query tile against one group: push the Q tile to the score units,
 * pop its scores, online-softmax them with the tile's running state (pm, l, alpha, acc
 * in VMEM), push P to the value units and pop-accumulate. Every unit takes one push
 * per visit, so the kernel runs at the MXU's rate when a visit costs mxu_push_cycles.
 *
 * The visits of every K/V head form one sequence (per head: group by group, the tiles
 * a group reaches, tile-major), pipelined by hand: iteration j pushes the Q of visit j
 * (the score stage), pops and softmaxes the scores of visit j - d and pushes its P (the
 * softmax stage), and pop-accumulates visit j - 2d (the value stage), d = one MXU
 * latency in visits. Results wait in the units' FIFOs in between, so no register lives
 * across the MXU latency and the modulo scheduler overlaps only the few iterations of
 * one stage's chain: its prologue and epilogue are short. A stretch of iterations whose
 * three stages keep their kind is one pipelined loop (a segment); segments end where
 * weights change (a group's K^T when the score stage reaches it, its V when the softmax
 * stage does), where a stage's body changes, and so where DMAs wait or start. The
 * FIFOs carry the results across those boundaries: a weight change costs the loads of
 * the new weights and two short pipeline ends, not a drain of the MXU latency.
 *
 * A per-head SMEM table gives each visit's byte offsets: its Q and O tile (head-major,
 * as the DMAs move them), the state record it writes and the one it reads (records are
 * tile-major, so a segment's visits of consecutive tiles step an induction register
 * instead of reading the table), and its causal bias entry. The first group of a head
 * reaches every tile once, in order, and is each tile's first visit: it reads no state.
 * With two buffer sets its value stage also finishes the previous head (o = acc / l of
 * the same tile, from the other state set) into that head's O staging, whose DMA then
 * runs under the next groups; the last head is finished by loops of its own, in pieces
 * whose stores run under the next piece. The first head's loads come in pieces too, so
 * the compute starts before all of its Q, K and V are in (both where the target has
 * semaphores to spare for the extra DMA sites). A head's store is waited for when the
 * next head's score stage enters its last group, so every head between the first and
 * the last does the same work at the same places; those heads run as one loop, two
 * per pass, with the transfers' HBM addresses in registers (head_passes).
 *
 * The scheduler knows the dependences between the stages of one visit (the state
 * buffer's slots by iteration); the visits of one tile are kept GAP visits apart
 * (dummy visits fill in where a head's groups reach few tiles), which orders their
 * accesses by time alone. A dummy writes a junk record and reads a constant one.
 *
 * Causal (top-left): a group is reached from the tile holding its first key k0, so its
 * visits start at tile position t0 = k0 / 8. Tiles that see only part of the group get a
 * bias (0 or -inf) per block from a VMEM table indexed by min(t - t0, 16 * nk), added
 * by the score pop itself (popacc); entry 16 * nk (every key visible) serves all later
 * tiles and the dummies. Padding keys (Sk not a whole number of blocks) are masked in
 * the last group by a second table.
 *
 * Registers are not renamed across iterations, so a value may be read at most one II
 * after it is defined, and a result whose latency is the II (exp and the cross-lane
 * ops on v5e-like) exactly one II after. The body is shaped for that: a tile's scores,
 * read from their pop through the row max to the exp, wait in a cross-lane copy and
 * then a vector copy; each p is pushed and row-summed on the cross-lane unit (no two
 * exp results meet in one add); l_old * alpha is formed as alpha lands. */

#include "gen_attention.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct AttnRows {
  int64_t ngroups;
  int64_t *t0;            /* per group: first tile position */
  int64_t *first;         /* per group: first tile index (t0 * G) */
  int64_t *vstart;        /* per group: first visit in the head's sequence (+1 entry) */
  int *nkg;               /* per group: key blocks */
  int64_t len;            /* visits per head */
  int64_t ndummy;         /* dummy visits per head */
  int64_t entries;        /* table entries: the tiles, then the most dummies of a group */
  int d, gap;             /* stage skew and least distance of a tile's visits, in visits */
  int64_t gw;             /* the group where a head's score stage waits for the previous
                           * head's store (-1: none comes after that store's issue) */
  bool masked;
  /* buffers */
  int32_t table, btable;  /* SMEM: per entry its offsets; per visit of a group its bias */
  bool by_visit;          /* the visit table fits SMEM (made at setup) */
  int32_t vtable;         /* SMEM: per visit its written and read records, or -1 */
  int32_t state, biasbuf;
  int32_t kscale;         /* vreg: the scale, folded into the score weights */
  int64_t recb, setb;     /* bytes of a state record, of a state set */
  int nsets;
} AttnRows;

/* Table words per entry: Q tile, the state record written and the one read (a dummy
 * writes the junk record and reads the constant one), O tile. */
enum { W_Q = 0, W_ST = 1, W_RD = 2, W_O = 3, W_WORDS = 4 };
enum { STATE_SLOTS = 128, FINISH_UNROLL = 4 };

/* The state buffer's slots say which accesses may meet: a visit's softmax stage names
 * slot (iteration + the field's phase), its value stage d iterations later the same
 * slot, and fields a quarter of the slots apart never meet within a quarter of the
 * slots of iterations (other visits' records are GAP visits apart, see above). */
static int phase(int field) { return field * (STATE_SLOTS / 4); }

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  if (!p) {
    fprintf(stderr, "tilec: out of memory building attention\n");
    abort();
  }
  return p;
}

static int64_t ntiles(const Attn *a) { return a->G * a->ntq; }
static bool needs_limit(const Attn *a) { return a->Skp != a->Sk; }
/* The causal bias tables: entries 0 .. 16 * nk, each nk vregs (one per key block). */
static int64_t bias_entries(const Attn *a) { return (int64_t)a->dim / a->sub * a->nk + 1; }
static int64_t bias_bytes(const Attn *a) {
  return bias_entries(a) * a->nk * attn_vreg_bytes(a);
}
static int64_t qtile_bytes(const Attn *a) { return (int64_t)a->sub * a->lanes * a->esz; }
static int64_t otile_bytes(const Attn *a) { return (int64_t)a->sub * a->lanes * a->osz; }

/* ---- the visit sequence ---- */

/* The groups a head's rows reach (a causal mask leaves out the groups past the last
 * query), their blocks and first tiles. */
static void plan_groups(Attn *a, AttnRows *R) {
  R->ngroups = (a->nkb + a->nk - 1) / a->nk;
  R->t0 = xcalloc((size_t)R->ngroups, sizeof *R->t0);
  R->first = xcalloc((size_t)R->ngroups, sizeof *R->first);
  R->vstart = xcalloc((size_t)R->ngroups + 1, sizeof *R->vstart);
  R->nkg = xcalloc((size_t)R->ngroups, sizeof *R->nkg);
  int64_t used = 0;
  for (int64_t g = 0; g < R->ngroups; g++) {
    R->nkg[g] = (int)(a->nkb - g * a->nk < a->nk ? a->nkb - g * a->nk : a->nk);
    R->t0[g] = a->causal ? g * a->nk * a->dim / a->sub : 0;
    R->first[g] = R->t0[g] * a->G;
    if (R->t0[g] >= a->ntq) break; /* no row sees this group or any later one */
    used = g + 1;
  }
  R->ngroups = used;
}

/* One head's visits: group by group the tiles it reaches (tile-major), then the
 * group's dummies. A tile's visits in groups g and g + 1 are n - first[g + 1] +
 * dummies[g] apart for every tile (n tiles), so the dummies make that GAP; the last
 * group's make the seam to the next head's first group (first 0) GAP too. The visits
 * of group g are then the table entries first[g] .. n + dummies[g] - 1: the tiles it
 * reaches, then dummy entries. */
static void plan_sequence(Attn *a, AttnRows *R) {
  int64_t n = ntiles(a), most = 0;
  for (int64_t g = 0; g < R->ngroups; g++) {
    int64_t next = g + 1 < R->ngroups ? R->first[g + 1] : 0;
    int64_t k = R->gap - (n - next) > 0 ? R->gap - (n - next) : 0;
    R->vstart[g] = R->len;
    R->len += n - R->first[g] + k;
    R->ndummy += k;
    if (k > most) most = k;
  }
  R->vstart[R->ngroups] = R->len;
  R->entries = n + most;
}

bool attn_rows_plan(Attn *a, bool report) {
  AttnRows *R = xcalloc(1, sizeof *R);
  a->rows = R;
  const TileTarget *t = a->t;
  R->masked = a->causal || needs_limit(a);
  /* one MXU latency in visits of mxu_push_cycles, and one more for slack */
  R->d = (int)((t->latency[TILE_LAT_MXU_RESULT] + t->mxu_push_cycles - 1) / t->mxu_push_cycles) + 1;
  /* A tile's next visit must come after this one's value stage has read the alpha
   * its softmax stage wrote (d visits later) and after both stages' state accesses
   * have landed: d, plus the visits one stage's dependence chain can span (its
   * latencies, at a push per visit), plus two. */
  const int32_t *L = t->latency;
  int64_t chain = 2 * L[TILE_LAT_XLU] + 2 * L[TILE_LAT_TRANS] + L[TILE_LAT_MXU_POP] +
                  L[TILE_LAT_VLOAD] + L[TILE_LAT_SMEM] + L[TILE_LAT_VSTORE] + 8 * L[TILE_LAT_VALU];
  R->gap = R->d + (int)((chain + t->mxu_push_cycles - 1) / t->mxu_push_cycles) + 2;
  plan_groups(a, R);
  plan_sequence(a, R);
  /* Head n - 1's store is issued when head n's value stage leaves its first group (2d
   * visits after the score stage did); the score stage waits for it on entering the
   * last group, long after, so every head but the first waits for one store at the
   * same place (see run_heads). */
  R->gw = R->ngroups >= 2 && R->vstart[R->ngroups - 1] > R->vstart[1] + 2 * R->d
              ? R->ngroups - 1 : -1;
  int64_t bytes = R->entries * (W_WORDS + (R->masked ? 1 : 0)) * 4;
  /* The value stage's records by visit, when SMEM has room: with it a value stage
   * runs on across a group's end, which is no segment boundary then. */
  R->by_visit = bytes + R->len * 8 <= t->smem_bytes / 4;
  if (bytes > t->smem_bytes / 4) {
    if (report)
      tile_lower_error(a->cx, a->op,
                       "%" PRId64 " query tiles of one query head need a %" PRId64 "-byte "
                       "table, more than a quarter of the target's %" PRId64 " bytes of SMEM; "
                       "use shorter sequences", ntiles(a), bytes, t->smem_bytes);
    attn_rows_free(a);
    return false;
  }
  R->recb = ATTN_ST_N * attn_vreg_bytes(a);
  R->setb = (ntiles(a) + 2) * R->recb; /* the tiles, the junk and the constant record */
  return true;
}

void attn_rows_free(Attn *a) {
  AttnRows *R = a->rows;
  if (!R) return;
  free(R->t0);
  free(R->first);
  free(R->vstart);
  free(R->nkg);
  free(R);
  a->rows = NULL;
}

/* One scratch O tile after the real ones: dummy visits finish into it. */
int64_t attn_rows_extra_out(const Attn *a) { return otile_bytes(a); }

int64_t attn_rows_vmem(Attn *a, int nsets) {
  AttnRows *R = a->rows;
  R->nsets = nsets;
  int64_t bytes = nsets * R->setb + STATE_SLOTS * 4;
  if (R->masked) bytes += bias_bytes(a) * (needs_limit(a) ? 2 : 1);
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
  if (vis < 0) return a->v_zero;
  return vsel(a, vis, a->v_zero, a->v_ninf);
}

void attn_rows_setup(Attn *a) {
  AttnRows *R = a->rows;
  int64_t vb = attn_vreg_bytes(a);
  int64_t slot = ((R->nsets * R->setb + STATE_SLOTS - 1) / STATE_SLOTS + 3) / 4 * 4;
  R->state = tile_mir_buffer(a->m, "attn.state", TILE_SPACE_VMEM, slot, STATE_SLOTS, 512);
  /* The tables. Records are tile-major (i = t * G + h), Q and O tiles head-major as
   * the DMAs move them; a dummy entry reads Q tile 0 and finishes into the scratch O
   * tile. A group's k-th visit (k from 0) is k / G tile positions past its first. */
  int64_t n = ntiles(a), emax = bias_entries(a) - 1;
  uint8_t *w = xcalloc((size_t)(R->entries * W_WORDS), 4);
  for (int64_t e = 0; e < R->entries; e++) {
    int64_t r = e < n ? e : n, hm = e < n ? e % a->G * a->ntq + e / a->G : n;
    uint32_t words[W_WORDS] = {(uint32_t)(e < n ? hm * qtile_bytes(a) : 0),
                               (uint32_t)(r * R->recb),
                               (uint32_t)((e < n ? r : n + 1) * R->recb),
                               (uint32_t)(hm * otile_bytes(a))};
    for (int k = 0; k < W_WORDS; k++)
      for (int b = 0; b < 4; b++) w[4 * (e * W_WORDS + k) + b] = (uint8_t)(words[k] >> (8 * b));
  }
  R->table = tile_mir_buffer(a->m, "attn.tiles", TILE_SPACE_SMEM, R->entries * W_WORDS * 4, 1, 4);
  tile_mir_data(a->m, R->table, w, R->entries * W_WORDS * 4);
  R->vtable = -1;
  if (R->by_visit) {
    uint8_t *vw = xcalloc((size_t)R->len, 8);
    for (int64_t g = 0; g < R->ngroups; g++)
      for (int64_t v = R->vstart[g]; v < R->vstart[g + 1]; v++) {
        int64_t e = R->first[g] + v - R->vstart[g];
        uint32_t words[2] = {(uint32_t)((e < n ? e : n) * R->recb),
                             (uint32_t)((e < n ? e : n + 1) * R->recb)};
        for (int k = 0; k < 2; k++)
          for (int b = 0; b < 4; b++) vw[8 * v + 4 * k + b] = (uint8_t)(words[k] >> (8 * b));
      }
    R->vtable = tile_mir_buffer(a->m, "attn.visits", TILE_SPACE_SMEM, R->len * 8, 1, 4);
    tile_mir_data(a->m, R->vtable, vw, R->len * 8);
    free(vw);
  }
  R->btable = -1;
  if (R->masked) {
    for (int64_t k = 0; k < R->entries; k++) {
      int64_t e = a->causal ? (k / a->G < emax ? k / a->G : emax) : 0;
      uint32_t off = (uint32_t)(e * a->nk * vb);
      for (int b = 0; b < 4; b++) w[4 * k + b] = (uint8_t)(off >> (8 * b));
    }
    R->btable = tile_mir_buffer(a->m, "attn.bias_entries", TILE_SPACE_SMEM, R->entries * 4, 1, 4);
    tile_mir_data(a->m, R->btable, w, R->entries * 4);
  }
  free(w);
  /* The constant record reads as a tile before any visit: pm = -inf (alpha = 0), l = 1
   * (finite, and the finish of a dummy divides by it), alpha = 0, acc = 0. */
  int32_t st = attn_li(a, a->lanes * 4, -1);
  int32_t one = attn_vlif(a, 1.0f);
  static const int fields[] = {ATTN_ST_MAX, ATTN_ST_L, ATTN_ST_ALPHA, ATTN_ST_ACC};
  for (int s = 0; s < R->nsets && R->ndummy > 0; s++)
    for (int f = 0; f < ATTN_ST_N; f++)
      attn_vst(a, fields[f] == ATTN_ST_MAX ? a->v_ninf : fields[f] == ATTN_ST_L ? one : a->v_zero,
               a->zero, st, s * R->setb + (n + 1) * R->recb + fields[f] * vb, R->state, 0, false);
  R->kscale = attn_vlif(a, (float)a->scale);
  R->biasbuf = -1;
  if (!R->masked) return;
  int32_t lane_i = attn_v1(a, TILE_MOP_VIOTA, 0, 0, 0, 0);
  int32_t sub_i = attn_v1(a, TILE_MOP_VIOTA, 0, 0, 0, 1);
  int ntables = needs_limit(a) ? 2 : 1;
  int64_t last_k0 = (a->nkb - 1) / a->nk * a->nk * a->dim;
  R->biasbuf = tile_mir_buffer(a->m, "attn.bias", TILE_SPACE_VMEM, bias_bytes(a) * ntables, 1, 512);
  for (int tb = 0; tb < ntables; tb++) {
    int64_t limit = tb ? a->Sk - last_k0 : -1;
    for (int64_t e = 0; e < bias_entries(a); e++)
      for (int j = 0; j < a->nk; j++) {
        int32_t b = bias_at(a, e, j, limit, lane_i, sub_i);
        attn_vst(a, b, a->zero, st, (tb * bias_entries(a) + e) * a->nk * vb + j * vb,
                 R->biasbuf, 0, false);
      }
  }
}

/* ---- emitting ---- */

/* A vector load/store at S[base] + imm + s * S[stride], imm relative to buffer buf. */
static int32_t vld_at(Attn *a, int32_t base, int32_t stride, int64_t imm, int32_t buf, int ofs,
                      bool bf16) {
  int32_t d = attn_vreg(a);
  TileMirInst in = tile_mir_inst(bf16 ? TILE_MOP_VLDBF : TILE_MOP_VLD, d, base, stride, 0,
                                 (int32_t)imm);
  in.imm_buf = buf;
  tile_mir_mem(&in, buf, TILE_MIR_READ, ofs);
  tile_mir_add(a->m, in);
  return d;
}

static void vst_at(Attn *a, int32_t val, int32_t base, int32_t stride, int64_t imm, int32_t buf,
                   int ofs, bool bf16) {
  TileMirInst in = tile_mir_inst(bf16 ? TILE_MOP_VSTBF : TILE_MOP_VST, val, base, stride, 0,
                                 (int32_t)imm);
  in.imm_buf = buf;
  tile_mir_mem(&in, buf, TILE_MIR_WRITE, ofs);
  tile_mir_add(a->m, in);
}

/* Table streams. Registers are not renamed across iterations, so an address register
 * may be read at most one II after it is set: each group of accesses that happen close
 * together reads its own copy of the table word, through its own pointer, stepped
 * right after. Where a stage's visits in a segment are consecutive tiles (records
 * i, i + 1, ...), a state address is an induction register instead, stepped after the
 * group's accesses (flush): one scalar op instead of two. */
enum { MAX_STREAMS = 7 };
typedef struct Streams {
  int32_t treg[MAX_STREAMS], sreg[MAX_STREAMS], breg;
  int nt, ns, pending[MAX_STREAMS], npending;
  bool lin;               /* state words: an induction register over records */
  bool by_visit;          /* state words: from the visit table (sreg point into it) */
} Streams;

/* The address of word w of the current visit's entry (or, for the state words of
 * consecutive tiles, the record's offset itself). */
static int32_t word(Attn *a, Streams *c, int w) {
  AttnRows *R = a->rows;
  if ((w == W_ST || w == W_RD) && c->lin) {
    int32_t p = c->sreg[c->ns++];
    c->pending[c->npending++] = p;
    return p;
  }
  if ((w == W_ST || w == W_RD) && c->by_visit) {
    int32_t p = c->sreg[c->ns++];
    int32_t d = attn_sreg(a);
    TileMirInst in = tile_mir_inst(TILE_MOP_SLD, d, p, 0, 0, w == W_ST ? 0 : 4);
    tile_mir_mem(&in, R->vtable, TILE_MIR_READ, 0);
    tile_mir_add(a->m, in);
    attn_op(a, TILE_MOP_ADDI, p, p, 0, 0, 8);
    return d;
  }
  int32_t p = c->treg[c->nt++];
  int32_t d = attn_sreg(a);
  TileMirInst in = tile_mir_inst(TILE_MOP_SLD, d, p, 0, 0, 4 * w);
  tile_mir_mem(&in, R->table, TILE_MIR_READ, 0);
  tile_mir_add(a->m, in);
  attn_op(a, TILE_MOP_ADDI, p, p, 0, 0, 4 * W_WORDS);
  return d;
}

/* The byte offset of the current visit's bias entry. */
static int32_t bias_word(Attn *a, Streams *c) {
  int32_t d = attn_sreg(a);
  TileMirInst in = tile_mir_inst(TILE_MOP_SLD, d, c->breg, 0, 0, 0);
  tile_mir_mem(&in, a->rows->btable, TILE_MIR_READ, 0);
  tile_mir_add(a->m, in);
  attn_op(a, TILE_MOP_ADDI, c->breg, c->breg, 0, 0, 4);
  return d;
}

static void flush(Attn *a, Streams *c) {
  for (int k = 0; k < c->npending; k++)
    attn_op(a, TILE_MOP_ADDI, c->pending[k], c->pending[k], 0, 0, (int32_t)a->rows->recb);
  c->npending = 0;
}

/* What one stage does in a segment: nothing (kvh < 0), or visits k, k + 1, ... of
 * group grp of head kvh. */
typedef struct Stage {
  int64_t kvh, grp, k;
} Stage;

/* The streams of a stage for `trips` visits. A stage's visits in a segment are
 * entries e, e + 1, ... of the table unless they run past their group's end (only a
 * value stage's can, and only with the visit table). */
static Streams streams(Attn *a, const Stage *s, int64_t trips) {
  AttnRows *R = a->rows;
  int64_t e = R->first[s->grp] + s->k, v = R->vstart[s->grp] + s->k;
  Streams c = {.nt = 0, .ns = 0, .npending = 0, .breg = -1};
  c.lin = e + trips <= ntiles(a); /* tiles only: records e, e + 1, ... */
  c.by_visit = !c.lin && v + trips > R->vstart[s->grp + 1];
  for (int k = 0; k < MAX_STREAMS; k++) {
    c.treg[k] = attn_li(a, e * 4 * W_WORDS, R->table);
    c.sreg[k] = c.lin ? attn_li(a, e * R->recb, -1)
                      : c.by_visit ? attn_li(a, v * 8, R->vtable) : -1;
  }
  if (R->masked) c.breg = attn_li(a, s->k * 4, R->btable);
  return c;
}

typedef struct Run {
  int64_t n0, n1;    /* heads [n0, n1) */
  int64_t nvis;      /* visits in the run */
  int32_t qst, sst, ost;
} Run;

static Stage stage_at(const Attn *a, const Run *run, int64_t visit) {
  const AttnRows *R = a->rows;
  Stage s = {-1, -1, 0};
  if (visit < 0 || visit >= run->nvis) return s;
  s.kvh = run->n0 + visit / R->len;
  int64_t w = visit % R->len;
  s.grp = 0;
  while (R->vstart[s.grp + 1] <= w) s.grp++;
  s.k = w - R->vstart[s.grp];
  return s;
}

/* What a stage's body depends on, which must stay the same through a segment: the
 * head (its buffer sets) and a key: for the score and softmax stages the group (their
 * weights), for the value stage only -1 for a first visit or else the group's blocks;
 * and whether the value stage finishes the previous head. */
typedef struct Kind {
  int64_t kvh, key;
  bool finish;
} Kind;

static Kind weights_kind(const Stage *s) { return (Kind){s->kvh, s->grp, false}; }
static Kind value_kind(const Attn *a, const Run *run, const Stage *s) {
  const AttnRows *R = a->rows;
  if (s->kvh < 0) return (Kind){-1, -1, false};
  /* without the visit table its streams cannot run past a group's end */
  int64_t key = s->grp == 0 ? -1 : R->by_visit ? R->nkg[s->grp] : 4 + s->grp;
  return (Kind){s->kvh, key, s->grp == 0 && s->kvh > run->n0};
}
static bool kind_eq(Kind x, Kind y) {
  return x.kvh == y.kvh && x.key == y.key && x.finish == y.finish;
}

static void score_stage(Attn *a, const Run *run, const Stage *s, Streams *c) {
  AttnRows *R = a->rows;
  int p = (int)(s->kvh % a->npar);
  int32_t q = vld_at(a, word(a, c, W_Q), run->qst, 0, a->qbuf[p], 0, a->bf16_in);
  for (int j = 0; j < R->nkg[s->grp]; j++) attn_op(a, TILE_MOP_MXU_PUSH, 0, q, 0, 2 * j, 0);
}

/* The score weights hold K^T * scale, so the scores come out scaled and the state
 * holds pm = the running max of the scaled scores: p = e^(s - pm), alpha =
 * e^(pm_old - pm). Masked scores get their bias (0 or -inf) as the pop's addend. */
static void softmax_stage(Attn *a, const Run *run, const Stage *s, Streams *c) {
  AttnRows *R = a->rows;
  int64_t vb = attn_vreg_bytes(a), set = (s->kvh % R->nsets) * R->setb;
  int nkg = R->nkg[s->grp];
  bool first = s->grp == 0;
  int32_t bo = R->masked ? bias_word(a, c) : -1;
  /* the last group masks the padding keys too: the second table */
  int64_t tb = s->grp == R->ngroups - 1 && needs_limit(a) ? bias_bytes(a) : 0;
  int32_t sc[4] = {0}, relay[4] = {0}; /* nkg >= 1 entries are set */
  for (int j = 0; j < nkg; j++) {
    sc[j] = attn_vreg(a);
    if (R->masked) {
      int32_t b = vld_at(a, bo, run->sst, tb + j * vb, R->biasbuf, 0, false);
      attn_op(a, TILE_MOP_MXU_POPACC, sc[j], b, 0, 2 * j, 0);
    } else {
      attn_op(a, TILE_MOP_MXU_POP, sc[j], 0, 0, 2 * j, 0);
    }
    /* The scores are read again after the row max, up to two II later: they wait in
     * a copy on the cross-lane unit, then in a vector copy, whose read can move. */
    relay[j] = attn_v1(a, TILE_MOP_XLROT, sc[j], 0, 0, 0);
    relay[j] = attn_v1(a, TILE_MOP_VMOV, relay[j], 0, 0, 0);
  }
  int32_t mxv = sc[0];
  for (int j = 1; j < nkg; j++) mxv = attn_v1(a, TILE_MOP_VMAXF, mxv, sc[j], 0, 0);
  int32_t pm = attn_v1(a, TILE_MOP_XLMAX, mxv, 0, 0, 0), alpha = -1;
  if (!first) {
    int32_t pm_old = vld_at(a, word(a, c, W_RD), run->sst, set + ATTN_ST_MAX * vb, R->state,
                            phase(ATTN_ST_MAX), false);
    flush(a, c);
    pm = attn_v1(a, TILE_MOP_VMAXF, pm_old, pm, 0, 0);
    int32_t dlt = attn_v1(a, TILE_MOP_VSUBF, pm_old, pm, 0, 0);
    alpha = attn_v1(a, TILE_MOP_VEXP, dlt, 0, 0, 0);
  }
  /* Each p is pushed and row-summed on the cross-lane unit as soon as its exp lands:
   * an exp result can be read only one II after it issues when the exp takes the II
   * (v5e-like), and neither reader then needs one of the vector slots its exp holds.
   * The sums join l one by one. */
  int32_t rs[4] = {0};
  for (int j = 0; j < nkg; j++) {
    int32_t x = attn_v1(a, TILE_MOP_VSUBF, relay[j], pm, 0, 0);
    int32_t p = attn_v1(a, TILE_MOP_VEXP, x, 0, 0, 0);
    attn_op(a, TILE_MOP_MXU_PUSH, 0, p, 0, 2 * j + 1, 0);
    rs[j] = attn_v1(a, TILE_MOP_XLSUM, p, 0, 0, 0);
  }
  /* pm is stored at once, alpha one exp later: each through its own stream */
  vst_at(a, pm, word(a, c, W_ST), run->sst, set + ATTN_ST_MAX * vb, R->state, phase(ATTN_ST_MAX),
         false);
  flush(a, c);
  int32_t l = -1;
  if (!first) {
    int32_t l_old = vld_at(a, word(a, c, W_RD), run->sst, set + ATTN_ST_L * vb, R->state,
                           phase(ATTN_ST_L), false);
    flush(a, c);
    vst_at(a, alpha, word(a, c, W_ST), run->sst, set + ATTN_ST_ALPHA * vb, R->state,
           phase(ATTN_ST_ALPHA), false);
    flush(a, c);
    /* l_old * alpha as soon as alpha is ready: alpha is ready long before the row sums */
    l = attn_v1(a, TILE_MOP_VMULF, l_old, alpha, 0, 0);
  }
  /* (two sums cannot meet in one add: each is read exactly one II after it issues) */
  if (l < 0) l = nkg > 1 ? attn_v1(a, TILE_MOP_VMOV, rs[0], 0, 0, 0) : rs[0];
  else l = attn_v1(a, TILE_MOP_VADDF, l, rs[0], 0, 0);
  for (int j = 1; j < nkg; j++) l = attn_v1(a, TILE_MOP_VADDF, l, rs[j], 0, 0);
  vst_at(a, l, word(a, c, W_ST), run->sst, set + ATTN_ST_L * vb, R->state, phase(ATTN_ST_L), false);
  flush(a, c);
}

static void value_stage(Attn *a, const Run *run, const Stage *s, const Kind *k, Streams *c) {
  AttnRows *R = a->rows;
  int64_t vb = attn_vreg_bytes(a), set = (s->kvh % R->nsets) * R->setb;
  int nkg = R->nkg[s->grp];
  int32_t acc = attn_vreg(a);
  if (s->grp == 0) {
    attn_op(a, TILE_MOP_MXU_POP, acc, 0, 0, 1, 0);
  } else {
    int32_t st = word(a, c, W_RD);
    int32_t al = vld_at(a, st, run->sst, set + ATTN_ST_ALPHA * vb, R->state,
                        phase(ATTN_ST_ALPHA) - R->d, false);
    int32_t old = vld_at(a, st, run->sst, set + ATTN_ST_ACC * vb, R->state,
                         phase(ATTN_ST_ACC) - R->d, false);
    flush(a, c);
    int32_t scaled = attn_v1(a, TILE_MOP_VMULF, old, al, 0, 0);
    attn_op(a, TILE_MOP_MXU_POPACC, acc, scaled, 0, 1, 0);
  }
  for (int j = 1; j < nkg; j++) {
    int32_t nx = attn_vreg(a);
    attn_op(a, TILE_MOP_MXU_POPACC, nx, acc, 0, 2 * j + 1, 0);
    acc = nx;
  }
  vst_at(a, acc, word(a, c, W_ST), run->sst, set + ATTN_ST_ACC * vb, R->state,
         phase(ATTN_ST_ACC) - R->d, false);
  flush(a, c);
  if (k->finish) {
    /* o = acc / l of the same tile of the previous head, from the other state set */
    int64_t prev = ((s->kvh - 1) % R->nsets) * R->setb;
    int fofs = STATE_SLOTS / 8 - R->d; /* between the phases: meets none of them */
    int32_t fst = word(a, c, W_RD);
    int32_t fl = vld_at(a, fst, run->sst, prev + ATTN_ST_L * vb, R->state, fofs, false);
    int32_t fa = vld_at(a, fst, run->sst, prev + ATTN_ST_ACC * vb, R->state, fofs + STATE_SLOTS / 4,
                        false);
    flush(a, c);
    int32_t r = attn_v1(a, TILE_MOP_VRCP, fl, 0, 0, 0);
    int32_t o = attn_v1(a, TILE_MOP_VMULF, fa, r, 0, 0);
    vst_at(a, o, word(a, c, W_O), run->ost, 0, a->obuf[(s->kvh - 1) % a->npar], 0, a->bf16_out);
  }
}

/* Loads K^T (rows below D) of group g into units 2j, or its V into units 2j + 1. */
static void load_weights(Attn *a, int par, int64_t g, bool values) {
  AttnRows *R = a->rows;
  int32_t kst = attn_li(a, a->Skp * a->esz, -1);
  int32_t vst = attn_li(a, (int64_t)a->lanes * a->esz, -1);
  AttnRot rot = attn_rot(a);
  for (int j = 0; j < R->nkg[g]; j++) {
    int64_t kb = g * a->nk + j;
    if (!values) {
      for (int64_t r = 0; r * a->sub < a->D; r++) {
        int32_t w = attn_vld(a, attn_rot_next(&rot), a->zero, kst,
                             (r * a->sub * a->Skp + kb * a->dim) * a->esz, a->ktbuf[par], 0,
                             a->bf16_in);
        int32_t ws = attn_rot_next(&rot);
        attn_op(a, TILE_MOP_VMULF, ws, w, R->kscale, 0, 0);
        attn_ldw(a, 2 * j, ws, (int)r);
      }
    } else {
      for (int64_t r = 0; r < a->dim / a->sub; r++) {
        int32_t w = attn_vld(a, attn_rot_next(&rot), a->zero, vst,
                             (kb * a->dim + r * a->sub) * a->lanes * a->esz, a->vbuf[par], 0,
                             a->bf16_in);
        attn_ldw(a, 2 * j + 1, w, (int)r);
      }
    }
  }
}

/* o = acc * (1 / l) for tiles [t0, t1) of head n (state set and O staging of its
 * sets). */
static void finish_loop(Attn *a, const Run *run, int64_t n, int64_t t0, int64_t t1) {
  AttnRows *R = a->rows;
  int64_t vb = attn_vreg_bytes(a), tiles = t1 - t0, set = (n % R->nsets) * R->setb;
  int32_t ps[FINISH_UNROLL], po[FINISH_UNROLL];
  int32_t obuf = a->obuf[n % a->npar];
  /* entry i of the table is tile i: its O offset */
  for (int k = 0; k < FINISH_UNROLL; k++) {
    ps[k] = attn_li(a, (t0 + k) * R->recb, -1);
    po[k] = attn_li(a, (t0 + k) * 4 * W_WORDS, R->table);
  }
  for (int pass = 0; pass < 2; pass++) {
    int64_t trips = pass == 0 ? tiles / FINISH_UNROLL : 1;
    int copies = pass == 0 ? FINISH_UNROLL : (int)(tiles % FINISH_UNROLL);
    if (trips == 0 || copies == 0) continue;
    int step = pass == 0 ? FINISH_UNROLL : 1;
    tile_mir_loop_begin(a->m, (int32_t)trips, TILE_MIR_PIPELINE);
    for (int k = 0; k < copies; k++) {
      int32_t l = vld_at(a, ps[k], run->sst, set + ATTN_ST_L * vb, R->state, 0, false);
      int32_t r = attn_v1(a, TILE_MOP_VRCP, l, 0, 0, 0);
      int32_t acc = vld_at(a, ps[k], run->sst, set + ATTN_ST_ACC * vb, R->state, 0, false);
      attn_op(a, TILE_MOP_ADDI, ps[k], ps[k], 0, 0, (int32_t)(step * R->recb));
      int32_t o = attn_v1(a, TILE_MOP_VMULF, acc, r, 0, 0);
      int32_t oo = attn_sreg(a);
      TileMirInst in = tile_mir_inst(TILE_MOP_SLD, oo, po[k], 0, 0, 4 * W_O);
      tile_mir_mem(&in, R->table, TILE_MIR_READ, 0);
      tile_mir_add(a->m, in);
      attn_op(a, TILE_MOP_ADDI, po[k], po[k], 0, 0, (int32_t)(step * 4 * W_WORDS));
      vst_at(a, o, oo, run->ost, 0, obuf, 0, a->bf16_out);
    }
    tile_mir_loop_end(a->m);
  }
}

/* The last head's finish in pieces of tile positions, each piece's result stored as
 * soon as it is finished, so the stores run under the later pieces' finish. Two sites
 * (a whole piece, the last one) with the addresses set per transfer. */
enum { TAIL_PIECES = 8 };
static void finish_last(Attn *a, const Run *run, int64_t n, int64_t *stores, TileDmaSite *site) {
  int64_t per = (a->ntq + TAIL_PIECES - 1) / TAIL_PIECES, row = (int64_t)a->lanes * a->osz;
  int64_t head = attn_q_elem(a, n) * a->osz;
  int32_t obuf = a->obuf[n % a->npar];
  for (int64_t p0 = 0; p0 < a->ntq; p0 += per) {
    int64_t p1 = p0 + per < a->ntq ? p0 + per : a->ntq;
    int64_t r0 = p0 * a->sub, r1 = p1 * a->sub < a->Sq ? p1 * a->sub : a->Sq;
    finish_loop(a, run, n, p0 * a->G, p1 * a->G);
    int k = p1 == a->ntq ? 1 : 0;
    if (site[k].desc < 0) {
      TileDmaShape sh = {.count0 = a->D * a->osz, .count1 = r1 - r0, .count2 = a->G,
                         .src_stride1 = row, .src_stride2 = a->ntq * a->sub * row,
                         .dst_stride1 = a->D * a->osz, .dst_stride2 = a->Sq * a->D * a->osz};
      site[k] = tile_dma_site(a->cx, obuf, 0, a->o.buf, 0, sh);
    }
    int32_t src = attn_li(a, r0 * row, obuf), dst = attn_li(a, head + r0 * a->D * a->osz, a->o.buf);
    tile_dma_issue(a->cx, &site[k], src, 0, dst, 0);
    stores[k]++;
  }
}

/* The first head's loads in pieces, so the compute starts once the first group's
 * K^T and V and the first tiles' Q are in, and the rest streams in under it: Q by tile
 * positions [0, p1), [p1, p2), [p2, ntq), each issued when the one before is in (a
 * DMA alone gets the whole HBM bandwidth; the compute takes Q slower than that), then
 * K^T and V of the later keys with the second head's loads. */
enum { EARLY_Q = 3 };
typedef struct Early {
  bool on;                 /* head 0's loads in pieces */
  bool pieces;             /* the last head's finish and store in pieces */
  TileDmaSite tail[2];
  int64_t tail_stores[2];
  TileDmaSite q[EARLY_Q], kt[2], v[2];
  int64_t qstart[EARLY_Q]; /* first tile position of each Q piece */
  int nq;
  bool kv_rest;            /* keys past the first group: a second K^T and V piece */
} Early;

static void early_make(Attn *a, Early *E) {
  AttnRows *R = a->rows;
  int e = a->esz;
  int64_t row = (int64_t)a->lanes * e, p1 = a->ntq / 8 > 1 ? a->ntq / 8 : 1;
  int64_t ends[EARLY_Q] = {p1, 3 * p1, a->ntq};
  E->nq = 0;
  for (int i = 0; i < EARLY_Q; i++) {
    int64_t p0 = E->nq ? ends[E->nq - 1] : 0, pe = ends[i] < a->ntq ? ends[i] : a->ntq;
    if (i > 0 && E->nq > 0 && p0 >= pe) continue;
    int64_t r0 = p0 * a->sub, r1 = pe * a->sub < a->Sq ? pe * a->sub : a->Sq;
    TileDmaShape sh = {.count0 = a->D * e, .count1 = r1 - r0, .count2 = a->G,
                       .src_stride1 = a->D * e, .src_stride2 = a->Sq * a->D * e,
                       .dst_stride1 = row, .dst_stride2 = a->ntq * a->sub * row};
    E->qstart[E->nq] = p0;
    E->q[E->nq++] = tile_dma_site(a->cx, a->q.buf, (attn_q_elem(a, 0) + r0 * a->D) * e,
                                  a->qbuf[0], r0 * row, sh);
  }
  int64_t k1 = (int64_t)R->nkg[0] * a->dim < a->Sk ? (int64_t)R->nkg[0] * a->dim : a->Sk;
  E->kv_rest = R->ngroups > 1; /* keys no row sees are never read: not loaded */
  for (int i = 0; i < (E->kv_rest ? 2 : 1); i++) {
    int64_t j0 = i ? k1 : 0, j1 = i ? a->Sk : k1;
    TileDmaShape kt = {.count0 = e, .count1 = j1 - j0, .count2 = a->D,
                       .src_stride1 = a->D * e, .src_stride2 = e,
                       .dst_stride1 = e, .dst_stride2 = a->Skp * e};
    TileDmaShape v = {.count0 = a->D * e, .count1 = j1 - j0, .count2 = 1,
                      .src_stride1 = a->D * e, .dst_stride1 = row};
    E->kt[i] = tile_dma_site(a->cx, a->k.buf, j0 * a->D * e, a->ktbuf[0], j0 * e, kt);
    E->v[i] = tile_dma_site(a->cx, a->v.buf, j0 * a->D * e, a->vbuf[0], j0 * row, v);
  }
}

/* Head 0's first pieces: issued and waited for before the run. */
static void early_start(Attn *a, Early *E) {
  tile_dma_issue(a->cx, &E->kt[0], -1, 0, -1, 0);
  tile_dma_issue(a->cx, &E->v[0], -1, 0, -1, 0);
  tile_dma_issue(a->cx, &E->q[0], -1, 0, -1, 0);
  tile_dma_wait(a->cx, &E->kt[0], 0, 0);
  tile_dma_wait(a->cx, &E->v[0], 0, 0);
  tile_dma_wait(a->cx, &E->q[0], 0, 0);
  if (E->nq > 1) tile_dma_issue(a->cx, &E->q[1], -1, 0, -1, 0);
}

/* The Q piece (1 .. nq - 1) whose first tile the score stage reaches at visit k of
 * head 0's first group, or -1. */
static int early_piece(const Attn *a, const Early *E, const Stage *s) {
  if (!E->on || s->kvh != 0 || s->grp != 0) return -1;
  for (int i = 1; i < E->nq; i++)
    if (s->k == E->qstart[i] * a->G) return i;
  return -1;
}

/* The HBM addresses of the transfers in the heads' loop (run_heads), stepped one head
 * per transfer (attn_addr_loads). Off: each transfer's addresses are made on the spot. */
typedef struct HeadAddr {
  bool on;
  AttnAddr r;
} HeadAddr;

static void issue_loads(Attn *a, AttnSites *S, const HeadAddr *h, int64_t n, int p) {
  if (h->on)
    attn_addr_loads(a, S, &h->r, p);
  else
    attn_issue_loads(a, S, n, p);
}

static void issue_store(Attn *a, AttnSites *S, const HeadAddr *h, int64_t n, int p) {
  if (h->on)
    attn_addr_store(a, S, &h->r, p);
  else
    attn_issue_store(a, S, n, p);
}

/* The work at a segment boundary, where the stages' kinds go from pk to k: waits,
 * weights, then new transfers (waits first, so that no transfer issued here orders
 * them behind its bytes). */
static void boundary(Attn *a, AttnSites *S, Early *E, const Run *run, const Stage *st,
                     const Kind *k, const Kind *pk, bool *store_pending, const HeadAddr *ha) {
  AttnRows *R = a->rows;
  int64_t n0 = run->n0, n1 = run->n1;
  if (!kind_eq(k[0], pk[0]) && st[0].kvh > n0 && st[0].grp == 0)
    attn_wait_loads(a, S, (int)(st[0].kvh % a->npar));
  if (!kind_eq(k[0], pk[0]) && st[0].kvh > n0 && st[0].grp == R->gw &&
      store_pending[st[0].kvh - 1]) {
    tile_dma_wait(a->cx, &S->o[(st[0].kvh - 1) % a->npar], 0, 0);
    store_pending[st[0].kvh - 1] = false;
  }
  int piece = early_piece(a, E, &st[0]);
  if (piece > 0) tile_dma_wait(a->cx, &E->q[piece], 0, 0);
  if (E->on && E->kv_rest && !kind_eq(k[0], pk[0]) && st[0].kvh == 0 && st[0].grp == 1) {
    tile_dma_wait(a->cx, &E->kt[1], 0, 0);
    tile_dma_wait(a->cx, &E->v[1], 0, 0);
  }
  if (!kind_eq(k[2], pk[2]) && k[2].finish) {
    /* head kvh - 1 is finished into the O set that head kvh - 3 used */
    int64_t old = k[2].kvh - 3;
    if (old >= 0 && store_pending[old]) {
      tile_dma_wait(a->cx, &S->o[old % a->npar], 0, 0);
      store_pending[old] = false;
    }
  }
  if (!kind_eq(k[0], pk[0]) && st[0].kvh >= 0)
    load_weights(a, (int)(st[0].kvh % a->npar), st[0].grp, false);
  if (!kind_eq(k[1], pk[1]) && st[1].kvh >= 0) {
    load_weights(a, (int)(st[1].kvh % a->npar), st[1].grp, true);
    /* head kvh - 1's K^T and V are no longer read: its set takes head kvh + 1 */
    if (st[1].grp == 0 && st[1].kvh > n0 && st[1].kvh + 1 < n1)
      issue_loads(a, S, ha, st[1].kvh + 1, (int)((st[1].kvh + 1) % a->npar));
  }
  if (!kind_eq(k[2], pk[2]) && pk[2].finish) {
    issue_store(a, S, ha, pk[2].kvh - 1, (int)((pk[2].kvh - 1) % a->npar));
    store_pending[pk[2].kvh - 1] = true;
  }
  if (piece > 0 && piece + 1 < E->nq) tile_dma_issue(a->cx, &E->q[piece + 1], -1, 0, -1, 0);
  if (piece > 0 && piece + 1 == E->nq) {
    /* the last Q piece is in: the later keys, and the second head */
    if (E->kv_rest) {
      tile_dma_issue(a->cx, &E->kt[1], -1, 0, -1, 0);
      tile_dma_issue(a->cx, &E->v[1], -1, 0, -1, 0);
    }
    if (n1 > 1) attn_issue_loads(a, S, 1, 1);
  }
}

/* One segment from iteration j, where the stages' kinds were pk before it: its
 * boundary work and its pipelined loop. Returns the iteration after it. */
static int64_t segment(Attn *a, AttnSites *S, Early *E, const Run *run, int64_t j, Kind *pk,
                       bool *store_pending, const HeadAddr *ha) {
  int d = a->rows->d;
  int64_t end = run->nvis + 2 * d;
  Stage st[3] = {stage_at(a, run, j), stage_at(a, run, j - d), stage_at(a, run, j - 2 * d)};
  Kind k[3] = {weights_kind(&st[0]), weights_kind(&st[1]), value_kind(a, run, &st[2])};
  boundary(a, S, E, run, st, k, pk, store_pending, ha);
  /* the segment runs until a stage changes kind or a Q piece must be waited for */
  int64_t j1 = j + 1;
  while (j1 < end) {
    Stage nx[3] = {stage_at(a, run, j1), stage_at(a, run, j1 - d), stage_at(a, run, j1 - 2 * d)};
    if (!kind_eq(weights_kind(&nx[0]), k[0]) || !kind_eq(weights_kind(&nx[1]), k[1]) ||
        !kind_eq(value_kind(a, run, &nx[2]), k[2]) || early_piece(a, E, &nx[0]) > 0)
      break;
    j1++;
  }
  /* Each stage's streams: made (li) by a first pass that emits nothing else into the
   * loop, so every li comes before it. */
  Streams c[3];
  for (int i = 0; i < 3; i++)
    if (st[i].kvh >= 0) c[i] = streams(a, &st[i], j1 - j);
  tile_mir_loop_begin(a->m, (int32_t)(j1 - j), TILE_MIR_PIPELINE);
  if (st[0].kvh >= 0) score_stage(a, run, &st[0], &c[0]);
  if (st[1].kvh >= 0) softmax_stage(a, run, &st[1], &c[1]);
  if (st[2].kvh >= 0) value_stage(a, run, &st[2], &k[2], &c[2]);
  tile_mir_loop_end(a->m);
  for (int i = 0; i < 3; i++) pk[i] = k[i];
  return j1;
}

/* The passes of the heads' loop: heads 1 .. n1 - 2 in pairs, from the iteration where
 * the score stage enters head 1 (0: no loop). Every head but the first and the last
 * does the same work at the same places of its visits: it waits for its loads, starts
 * the next head's and stores the previous one's, and waits for that store (at group
 * gw), all through buffer sets and state sets picked by its parity; only the HBM
 * addresses differ, and they step one head per transfer. So two heads, from the score
 * stage's entry into the first to its entry into the third, are one loop body: the
 * other stages run on across the pass's ends as they do across a head's, and the
 * pipeline never drains. That needs the value stage, when the score stage enters a
 * head, past the first group of the head before (its kind then holds no head's
 * number), and the two heads' stores waited for inside the pass. */
static int64_t head_passes(const Attn *a, const Run *run) {
  const AttnRows *R = a->rows;
  if (a->npar != 2 || run->n0 != 0 || R->gw < 0) return 0;
  if (R->len - 2 * R->d <= R->vstart[1]) return 0;
  int64_t passes = (run->n1 - 2) / 2;
  return passes >= 2 ? passes : 0;
}

/* One run: heads [n0, n1) as one pipelined sequence (all heads with two buffer sets,
 * else one head per run). Head n0's loads are in before it starts; the run waits for
 * and issues every other transfer at its segment boundaries. */
static void run_heads(Attn *a, AttnSites *S, Early *E, int64_t n0, int64_t n1,
                      bool *store_pending) {
  AttnRows *R = a->rows;
  Run run = {.n0 = n0, .n1 = n1, .nvis = (n1 - n0) * R->len};
  run.qst = attn_li(a, (int64_t)a->lanes * a->esz, -1);
  run.sst = attn_li(a, a->lanes * 4, -1);
  run.ost = attn_li(a, (int64_t)a->lanes * a->osz, -1);
  int64_t end = run.nvis + 2 * R->d, j = 0;
  int64_t passes = head_passes(a, &run), j0 = passes ? R->len : -1;
  HeadAddr off = {.on = false}, ha = {.on = true};
  if (passes) {
    /* pass 1 is emitted (heads 1 and 2: loads of heads 2 and 3, stores of heads 0 and
     * 1); the registers start at those heads. Made here, where the set-up leaves the
     * scalar slots free, rather than in bundles of their own before the loop. */
    int64_t kh = a->Sk * a->D;
    ha.r.q = attn_li(a, attn_q_elem(a, 2) * a->esz, a->q.buf);
    ha.r.k = attn_li(a, 2 * kh * a->esz, a->k.buf);
    ha.r.v = attn_li(a, 2 * kh * a->esz, a->v.buf);
    ha.r.o = attn_li(a, attn_q_elem(a, 0) * a->osz, a->o.buf);
  }
  Kind pk[3] = {{-1, -1, false}, {-1, -1, false}, {-1, -1, false}};
  while (j < end) {
    if (j != j0) {
      j = segment(a, S, E, &run, j, pk, store_pending, &off);
      continue;
    }
    tile_mir_loop_begin(a->m, (int32_t)passes, 0);
    while (j < j0 + 2 * R->len) j = segment(a, S, E, &run, j, pk, store_pending, &ha);
    tile_mir_loop_end(a->m);
    /* after the last pass: its heads' kinds, its stores waited for in it */
    j = j0 + 2 * passes * R->len;
    for (int i = 0; i < 3; i++)
      if (pk[i].kvh >= 0) pk[i].kvh += 2 * (passes - 1);
  }
  if (pk[2].finish) {
    attn_issue_store(a, S, pk[2].kvh - 1, (int)((pk[2].kvh - 1) % a->npar));
    store_pending[pk[2].kvh - 1] = true;
  }
  /* the last head of the run: its own finish, into the set head n1 - 3 used */
  int64_t n = n1 - 1;
  for (int64_t old = n - 2; old >= 0 && old >= n - 2 * a->npar; old -= a->npar)
    if (store_pending[old] && old % a->npar == n % a->npar) {
      tile_dma_wait(a->cx, &S->o[old % a->npar], 0, 0);
      store_pending[old] = false;
    }
  if (n + 1 == a->B * a->Hkv && E->pieces) {
    finish_last(a, &run, n, E->tail_stores, E->tail);
    return;
  }
  finish_loop(a, &run, n, 0, ntiles(a));
  attn_issue_store(a, S, n, (int)(n % a->npar));
  store_pending[n] = true;
}

void attn_rows_run(Attn *a, AttnSites *S) {
  int64_t heads = a->B * a->Hkv;
  bool *pending = xcalloc((size_t)heads, sizeof *pending);
  /* The pieces take semaphores of their own (sites): only where the target has plenty,
   * leaving half of them to the rest of the program. */
  Early E = {.on = false, .pieces = false};
  E.tail[0].desc = E.tail[1].desc = -1;
  bool sems = a->m->nsems + 3 * EARLY_Q + 2 <= a->t->nsems / 2;
  E.pieces = sems;
  if (a->npar == 2 && sems) {
    E.on = true;
    early_make(a, &E);
    early_start(a, &E);
    /* with one Q piece, the second head's loads start now */
    if (E.nq == 1) {
      if (E.kv_rest) {
        tile_dma_issue(a->cx, &E.kt[1], -1, 0, -1, 0);
        tile_dma_issue(a->cx, &E.v[1], -1, 0, -1, 0);
      }
      attn_issue_loads(a, S, 1, 1);
    }
    run_heads(a, S, &E, 0, heads, pending);
  } else if (a->npar == 2) {
    attn_issue_loads(a, S, 0, 0);
    attn_wait_loads(a, S, 0);
    attn_issue_loads(a, S, 1, 1);
    run_heads(a, S, &E, 0, heads, pending);
  } else {
    attn_issue_loads(a, S, 0, 0);
    for (int64_t n = 0; n < heads; n++) {
      attn_wait_loads(a, S, 0);
      /* one set: the staging buffer is free once the previous store is done */
      if (n > 0 && pending[n - 1]) {
        tile_dma_wait(a->cx, &S->o[0], 0, 0);
        pending[n - 1] = false;
      }
      run_heads(a, S, &E, n, n + 1, pending);
      if (n + 1 < heads) attn_issue_loads(a, S, n + 1, 0);
    }
  }
  for (int64_t n = 0; n < heads; n++)
    if (pending[n]) tile_dma_wait(a->cx, &S->o[n % a->npar], 0, 0);
  for (int k = 0; k < 2; k++)
    for (int64_t i = 0; i < E.tail_stores[k]; i++) tile_dma_wait(a->cx, &E.tail[k], 0, 0);
  free(pending);
}
