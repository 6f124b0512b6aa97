/* The matmul generator's tables: the static list of blocks, a record per block with the
 * VMEM addresses it uses, and the DMA descriptors of every copy in the order the code
 * issues them (gen_matmul_emit.h says why tables).
 *
 * Copies and the semaphores they signal:
 *   - B pieces (one block of weights each) into a ring of `depth` slots; piece
 *     j + min(depth, 2) is issued by block j once it has read piece j (the table holds
 *     depth placeholders, enough for any lead up to the ring's size). With a prefetch
 *     the ring is larger and the table in another order ("Prefetch" below). Pieces of
 *     the padded last K step are smaller and signal their own semaphore, so the pieces behind each semaphore
 *     are alike and complete in issue order. Past the last block the table holds
 *     placeholders (a 4-byte SMEM copy signalling nothing), so every block issues one.
 *   - A slabs (rows of a chunk by one K step) into two slots (and two padded ones): the
 *     slab of the next K step comes in one piece per block of this one, issued by the
 *     block and waited for by the next, so one A copy at most is in flight at any wait
 *     and sizes may differ; blocks with no piece to copy issue a placeholder that
 *     signals the A semaphore. The first slab comes in its own pieces before the first
 *     block, waited for as its rows are reached. Held A has a slot per K step; in a lead
 *     chunk each block of a K step copies a piece (half) of the next slab, and the
 *     step's last block waits for them all.
 *   - Copies out of a last-step block's staged results, nout pieces of q row tiles
 *     (the last piece overlapping the one before when q does not divide), all the same
 *     size; 2 * nout placeholders come first, so a block about to overwrite a staging
 *     slot always waits for the nout oldest copies. The final block (nothing reuses its
 *     slot) copies in smaller pieces of any size (qf, then qd during the drain), each
 *     past its first nout waiting for one older copy, so little is left at the end. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen_matmul_emit.h"
#include "lower_internal.h"

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  if (!p) {
    fprintf(stderr, "tilec: out of memory lowering a matmul\n");
    abort();
  }
  return p;
}

static void put_word(uint8_t *bytes, int64_t word, uint32_t v) {
  for (int i = 0; i < 4; i++) bytes[word * 4 + i] = (uint8_t)(v >> (8 * i));
}

static void table_init(Gen *g, DescTable *t, const char *name, int32_t n) {
  t->cap = n > 0 ? n : 1;
  t->n = 0;
  t->words = xcalloc((size_t)t->cap, DESC_BYTES);
  t->buf = tile_mir_buffer(g->m, name, TILE_SPACE_SMEM, (int64_t)t->cap * DESC_BYTES, 1, 64);
}

/* Appends a copy of `rows` runs of `run` bytes, signalling sem (-1 none). */
static void table_add(Gen *g, DescTable *t, int32_t src_buf, int64_t src_off, int64_t src_stride,
                      int32_t dst_buf, int64_t dst_off, int64_t dst_stride, int64_t run,
                      int64_t rows, int32_t sem) {
  TileMir *m = g->m;
  if (t->n == t->cap) {
    fprintf(stderr, "tilec: internal error: matmul descriptor table %s overflows\n",
            m->bufs[t->buf].name);
    abort();
  }
  uint8_t *w = t->words + (size_t)t->n * DESC_BYTES;
  put_word(w, DESC_SRC_SPACE, m->bufs[src_buf].space);
  put_word(w, DESC_DST_SPACE, m->bufs[dst_buf].space);
  put_word(w, DESC_COUNT0, (uint32_t)run);
  put_word(w, DESC_COUNT1, (uint32_t)rows);
  put_word(w, DESC_COUNT2, 1);
  put_word(w, DESC_SRC_STRIDE1, (uint32_t)(int32_t)src_stride);
  put_word(w, DESC_DST_STRIDE1, (uint32_t)(int32_t)dst_stride);
  put_word(w, DESC_PEER, UINT32_MAX);
  put_word(w, DESC_SRC_SEM, (uint32_t)sem);
  put_word(w, DESC_DST_SEM, UINT32_MAX);
  int64_t at = (int64_t)t->n * DESC_BYTES;
  tile_mir_reloc(m, t->buf, at + DESC_SRC_LO * 4, src_buf, src_off, false);
  tile_mir_reloc(m, t->buf, at + DESC_SRC_HI * 4, src_buf, src_off, true);
  tile_mir_reloc(m, t->buf, at + DESC_DST_LO * 4, dst_buf, dst_off, false);
  tile_mir_reloc(m, t->buf, at + DESC_DST_HI * 4, dst_buf, dst_off, true);
  t->n++;
}

/* A copy that moves 4 bytes of SMEM scratch: keeps the issue pattern uniform. */
static void table_placeholder(Gen *g, DescTable *t, int32_t sem) {
  table_add(g, t, g->scratch, 0, 0, g->scratch, 4, 0, 4, 1, sem);
}

static void table_finish(Gen *g, DescTable *t) {
  tile_mir_data(g->m, t->buf, t->words, (int64_t)t->cap * DESC_BYTES);
}

void mm_tables_free(Gen *g) {
  free(g->blocks);
  free(g->slab_first);
  free(g->bdesc.words);
  free(g->bslot);
  free(g->adesc.words);
  free(g->a0desc.words);
  free(g->odesc.words);
  free(g->idesc.words);
}

PopKind mm_pop_kind(const Gen *g, int64_t j) {
  if (j < 0 || j >= g->nblocks) return POP_NONE;
  const Block *k = &g->blocks[j];
  if (k->kp == g->p->nkp - 1) return POP_LAST;
  return k->kp == 0 ? POP_FIRST : POP_MID;
}

bool mm_fine_copy(const MmPlan *p, int64_t c, int64_t *lo, int64_t *hi) {
  int64_t T = p->T, D = p->skew, n1 = (T - D + p->qf - 1) / p->qf;
  if (c < n1) {
    *lo = c * p->qf;
    *hi = *lo + p->qf < T - D ? *lo + p->qf : T - D;
    return true;
  }
  *lo = T - D + (c - n1) * p->qd;
  if (*lo >= T) return false;
  *hi = *lo + p->qd < T ? *lo + p->qd : T;
  return true;
}

/* The blocks in the order they run: per chunk (the first spanning p->lead column
 * chunks), per K step, its column blocks. A slab (chunk, K step) is read by the K
 * step's blocks, which follow each other. */
void mm_blocks(Gen *g) {
  const MmPlan *p = g->p;
  if (g->blocks) return;
  g->nblocks = p->chunks * p->nkp * p->nnp;
  g->blocks = xcalloc((size_t)g->nblocks, sizeof(Block));
  int64_t k = 0, slab = 0;
  int64_t bmax = p->Nv > p->Nb ? p->Nv - p->Nb : 0;
  for (int64_t b = 0; b < p->batch; b++)
    for (int64_t mc = 0; mc < p->MC; mc++)
      for (int64_t ng0 = 0; ng0 < p->NG;) {
        int64_t span = b == 0 && mc == 0 && ng0 == 0 ? p->lead : 1;
        int64_t ms = p->MC > 1 ? (mc * p->Mb < p->M - p->Mb ? mc * p->Mb : p->M - p->Mb) : 0;
        for (int64_t kp = 0; kp < p->nkp; kp++, slab++)
          for (int64_t ng = ng0; ng < ng0 + span; ng++) {
            int64_t ns = p->NG > 1 ? (ng * p->Ng < p->N - p->Ng ? ng * p->Ng : p->N - p->Ng) : 0;
            for (int64_t np = 0; np < p->nnp; np++)
              g->blocks[k++] = (Block){.b = b, .mc = mc, .ng = ng, .kp = kp,
                                       .np = (ng - ng0) * p->nnp + np, .mstart = ms,
                                       .nstart = ns,
                                       .bcol = np * p->Nb < bmax ? np * p->Nb : bmax,
                                       .edge = kp == p->nkp - 1 && p->Kr < p->Kb,
                                       .slab = slab};
          }
        ng0 += span;
      }
  g->nslabs = slab;
  g->slab_first = xcalloc((size_t)slab, sizeof(int64_t));
  for (int64_t j = g->nblocks - 1; j >= 0; j--) g->slab_first[g->blocks[j].slab] = j;
}

/* The HBM offset of block k's weights (its B piece). */
static int64_t b_src(const MmPlan *p, const Block *k) {
  return ((p->b_batched ? k->b * p->K * p->N : 0) + k->kp * p->Kb * p->N + k->nstart + k->bcol) *
         p->be;
}

/* ---- Resident ----
 *
 * Weights that several matmul groups read stay in VMEM (lower_resident.c). The first
 * group that may (its owner: one chunk of rows, so each piece comes once) has a ring
 * with a slot for every block's piece, in each kind (normal, padded K), so no piece
 * overwrites another, and records which HBM piece lies where. A later group whose
 * pieces are all there (the same blocking) points each block's record at its piece in
 * the owner's buffer and has no B table: it issues and waits for no B copy. Neither
 * takes a prefetch (lower_prefetch.c gives resident weights no budget): the owner's
 * ring is laid out by piece, and the later groups copy nothing. */

void mm_resident_plan(Gen *g, MmPlan *p) {
  TileResident *r = tile_lower_resident(g->cx, p->mm->opnd[1].v);
  if (!r) return;
  mm_blocks(g);
  if (r->vmem >= 0) {
    if (r->Kb != p->Kb || r->Nb != p->Nb || r->Kr != p->Kr || r->N != p->N || r->be != p->be)
      return;
    int64_t *slot = xcalloc((size_t)g->nblocks, sizeof(int64_t));
    for (int64_t j = 0; j < g->nblocks; j++) {
      slot[j] = tile_lower_resident_find(r, b_src(p, &g->blocks[j]));
      if (slot[j] < 0) {
        free(slot);
        return;
      }
    }
    g->res = r;
    g->share = true;
    g->bslot = slot;
    return;
  }
  if (p->MC != 1 || (p->batch > 1 && !p->b_batched)) return;
  int64_t counts[2] = {0, 0};
  for (int64_t j = 0; j < g->nblocks; j++) counts[g->blocks[j].edge]++;
  /* a slot per piece of each kind: every piece's slot is its own, whatever the lead */
  int64_t ring = counts[0] > 1 ? counts[0] : 1;
  int64_t eslots = p->Kr < p->Kb ? (counts[1] > 1 ? counts[1] : 1) : 0;
  if (!tile_lower_resident_own(g->cx, r, (ring + eslots) * p->Kb * p->Nb * p->be)) return;
  g->res = r;
  g->own = true;
  p->ring = ring;
  p->eslots = eslots > 0 ? eslots : p->eslots;
}

/* The owner's record of where its pieces lie (slot_of: each block's ring slot). */
static void resident_record(Gen *g, const int64_t *slot_of) {
  const MmPlan *p = g->p;
  TileResident *r = g->res;
  TileModule *mod = g->cx->m;
  size_t n = (size_t)g->nblocks;
  *r = (TileResident){.w = r->w, .uses = r->uses, .vmem = g->bbuf, .Kb = p->Kb, .Nb = p->Nb,
                      .Kr = p->Kr, .N = p->N, .be = p->be, .npieces = g->nblocks,
                      .src = tile_alloc(mod, sizeof(int64_t) * n),
                      .dst = tile_alloc(mod, sizeof(int64_t) * n)};
  for (int64_t j = 0; j < g->nblocks; j++) {
    r->src[j] = b_src(p, &g->blocks[j]);
    r->dst[j] = slot_of[j] * p->Kb * p->Nb * p->be;
  }
}

/* ---- Prefetch ----
 *
 * The lowering may give a matmul group a budget of weight bytes to copy early, a
 * semaphore of its own and a number of DMAs (lower_prefetch.c): the first pf blocks'
 * pieces then come by at most that many DMAs (whole K steps of the first chunk in one
 * when their blocks lie on a grid, all K steps of chunks of one block a step in one
 * when the chunks lie a constant stride apart, else runs of blocks whose pieces lie a
 * constant stride apart in HBM) into ring slots, and the lowering moves those DMAs to
 * the start of an earlier group (a collective, which leaves HBM idle) and waits for
 * them before this group starts.
 *
 * Parts. Where the copies take all the weights, on a grid, the K steps come in up to
 * MM_PF_PARTS DMAs of doubling size instead, and only the first is waited for before
 * the group; the blocks wait for each later one before its first K step (gen_matmul.c,
 * chunk). DMAs in flight together share HBM evenly, so the smaller lands first: the
 * parts land in order, the first of n after n / (2^n - 1) of the copy's time (two
 * thirds with two parts, about a quarter with four), and a matmul that starts before
 * the copy is done computes the parts in as they come (with one DMA it would wait for
 * all of it, then compute). The parts still in flight while the group runs come out
 * of its B pieces ahead (depth).
 *
 * The B table then holds the pieces of blocks pf.., the first of them first, so the
 * group's own copies start at once; the pf prefetched blocks' turns become placeholders
 * signalling SEM_B, spread evenly between the pieces after the first (pf_entries), the
 * last entry a piece. Every block still waits once on SEM_B and issues one entry, so
 * the loops stay uniform, and block j's wait passes only once its piece is in: the B
 * pieces complete in issue order, and the signals that can come before piece j's are
 * those of the pieces before it (j - pf) and the placeholders (pf at most), j in all.
 * Block j waits for the (j + 1)th signal, so the blocks run at the pace the pieces
 * land with the prefetched ones spread among them, and the last runs right after the
 * last piece lands (with the placeholders last, the prefetched blocks' turns came
 * after it, with HBM idle: 2.2k cycles of a decode w_up on v5e-like). At most lead
 * pieces are in flight, as without a prefetch: a block issues an entry only once the
 * signals of all but lead of those before it are in. The ring has pf + max(depth,
 * lead + 1) slots, and each piece goes to a slot whose last piece has been read when
 * it is issued (ring_slots). Without padded K, so one semaphore counts every piece. */

/* Whether the first `steps` K steps of the first chunk (c blocks each) lie on a grid:
 * rows of K run on across the steps, and the blocks of a step a constant stride apart. */
static bool on_grid(const Gen *g, int64_t steps, int64_t c) {
  const MmPlan *p = g->p;
  if (steps < 2 || steps * c > g->nblocks) return false;
  int64_t base = b_src(p, &g->blocks[0]), step = c > 1 ? b_src(p, &g->blocks[1]) - base : 1;
  if (step <= 0 || step > INT32_MAX) return false;
  for (int64_t kp = 0; kp < steps; kp++)
    for (int64_t i = 0; i < c; i++)
      if (b_src(p, &g->blocks[kp * c + i]) != base + kp * p->Kb * p->N * p->be + i * step)
        return false;
  return true;
}

/* Whole chunks from block 0 within the first `most` blocks whose pieces lie on a grid,
 * where every chunk has one block a K step (nkp blocks, rows of K running on) and the
 * chunks lie a constant stride apart: a decode wo, one column block a chunk, whose
 * runs of constant stride are one chunk's K steps. 0 where fewer than two. */
static int64_t chunk_grid(const Gen *g, int64_t most) {
  const MmPlan *p = g->p;
  int64_t nk = p->nkp, chunks = most / nk;
  if (chunks < 2) return 0;
  int64_t base = b_src(p, &g->blocks[0]), stride = b_src(p, &g->blocks[nk]) - base;
  if (stride <= 0 || stride > INT32_MAX) return 0;
  for (int64_t c = 0; c < chunks; c++)
    for (int64_t kp = 0; kp < nk; kp++)
      if (b_src(p, &g->blocks[c * nk + kp]) != base + c * stride + kp * p->Kb * p->N * p->be)
        return c >= 2 ? c : 0;
  return chunks;
}

/* Run r: K steps [k0, k1) of the first chunk (c blocks each) as one grid. */
static void grid_run(Gen *g, int64_t c, int64_t k0, int64_t k1) {
  g->pf_first[g->npf] = k0 * c;
  g->pf_count[g->npf] = (k1 - k0) * c;
  g->pf_steps[g->npf++] = k1 - k0;
}

/* Parts for all nkp steps (see "Parts"): as many as the DMAs and the B pieces ahead
 * allow, part r of steps * 2^r / (2^n - 1) K steps (rounded down at the cuts, so the
 * sizes never shrink); 0 parts where fewer than two fit. */
static int32_t part_count(const MmPlan *p, int32_t dmas) {
  int32_t n = dmas < MM_PF_PARTS ? dmas : MM_PF_PARTS;
  while (n >= 2 && (((int64_t)1 << n) - 1 > p->nkp || p->depth - (n - 1) < 1)) n--;
  return n >= 2 ? n : 0;
}

void mm_prefetch_plan(Gen *g, MmPlan *p, int64_t budget, int32_t sem, int32_t dmas) {
  const TileTarget *t = tile_lower_target(g->cx);
  p->pf = 0;
  p->ring = p->eslots = p->depth;
  g->npf = 0;
  g->pf_sem = sem;
  g->pf_parts = false;
  int32_t runs = dmas < MM_PF_RUNS ? dmas : MM_PF_RUNS;
  if (budget <= 0 || sem < 0 || runs < 1 || p->Kr < p->Kb) return;
  if (g->m->bufs[p->b.buf].bind != TILE_BIND_IN) return; /* weights: no group writes them */
  mm_blocks(g);
  int64_t piece = p->Kb * p->Nb * p->be;
  /* VMEM: within the plan's half, and an eighth of VMEM at most, since the copies
   * share VMEM with the groups they cross */
  int64_t room = (t->vmem_bytes / 2 - mm_plan_vmem(p)) / piece, most = budget / piece;
  if (room > t->vmem_bytes / 8 / piece) room = t->vmem_bytes / 8 / piece;
  if (most > room) most = room;
  if (most > g->nblocks) most = g->nblocks;
  int64_t j = 0;
  int64_t c = p->lead * p->nnp, steps = most / c;
  if (steps > p->nkp) steps = p->nkp;
  int32_t parts = most == g->nblocks && steps * c == most ? part_count(p, dmas) : 0;
  if (parts > 0 && on_grid(g, steps, c)) {
    int64_t whole = ((int64_t)1 << parts) - 1;
    for (int32_t r = 0; r < parts; r++)
      grid_run(g, c, steps * (((int64_t)1 << r) - 1) / whole,
               steps * (((int64_t)1 << (r + 1)) - 1) / whole);
    g->pf_parts = true;
    p->depth -= parts - 1;
    j = steps * c;
  } else if (c >= 2 && on_grid(g, steps, c)) {
    grid_run(g, c, 0, steps);
    j = steps * c;
  } else if (c == 1) {
    int64_t chunks = chunk_grid(g, most);
    if (chunks >= 2) {
      g->pf_first[g->npf] = 0;
      g->pf_count[g->npf] = chunks * p->nkp;
      g->pf_steps[g->npf++] = -p->nkp;
      j = chunks * p->nkp;
    }
  }
  while (j < most && g->npf < runs) {
    int64_t n = 1;
    if (j + 1 < most) {
      int64_t step = b_src(p, &g->blocks[j + 1]) - b_src(p, &g->blocks[j]);
      if (step > 0 && step <= INT32_MAX)
        for (n = 2; j + n < most; n++)
          if (b_src(p, &g->blocks[j + n]) - b_src(p, &g->blocks[j + n - 1]) != step) break;
    }
    g->pf_first[g->npf] = j;
    g->pf_steps[g->npf] = 0;
    g->pf_count[g->npf++] = n;
    j += n;
  }
  p->pf = j;
  int64_t lead = p->depth < MM_B_AHEAD ? p->depth : MM_B_AHEAD;
  p->ring = j + (p->depth > lead + 1 ? p->depth : lead + 1);
}

/* The B table's entry of each later block's piece (entry[pf..nb-1]): the first piece
 * first, then the pf placeholders spread evenly after each piece but the last
 * ("Prefetch"); nb entries in all (without a prefetch, block j's piece is entry j). */
static void pf_entries(const Gen *g, int64_t *entry) {
  int64_t pf = g->p->pf, own = g->nblocks - pf, e = 0;
  for (int64_t o = 0; o < own; o++) {
    entry[pf + o] = e++;
    if (o + 1 < own) e += (o + 1) * pf / (own - 1) - o * pf / (own - 1);
  }
}

/* The ring slot of every block's piece with a prefetch: the prefetched blocks' where
 * their DMAs put them; each later piece the lowest slot whose piece has been read when
 * the piece is issued. Table entry e is issued at the start or by block 0 for
 * e <= lead, else by block e - lead after it read its own; the pieces unread then are
 * the pf prefetched ones and those of entries past block e - lead's, lead at most:
 * depth + pf >= pf + lead + 1 slots always leave one. */
static void ring_slots(const Gen *g, const int64_t *entry, int64_t *slot) {
  const MmPlan *p = g->p;
  int64_t lead = p->depth < MM_B_AHEAD ? p->depth : MM_B_AHEAD;
  int64_t *reader = xcalloc((size_t)p->ring, sizeof(int64_t)); /* the block reading it */
  for (int64_t s = 0; s < p->ring; s++) reader[s] = -1;
  for (int32_t r = 0; r < g->npf; r++)
    for (int64_t i = 0; i < g->pf_count[r]; i++) {
      int64_t j = g->pf_first[r] + i, steps = g->pf_steps[r];
      int64_t c = steps > 0 ? g->pf_count[r] / steps : 1;
      slot[j] = steps > 0 ? g->pf_first[r] + (i % c) * steps + i / c : j;
      reader[slot[j]] = j;
    }
  for (int64_t k = p->pf; k < g->nblocks; k++) {
    int64_t e = entry[k], done = e <= lead ? -1 : e - lead, s = 0;
    while (s < p->ring && reader[s] > done) s++;
    if (s == p->ring) {
      fprintf(stderr, "tilec: internal error: matmul prefetch ring has no free slot\n");
      abort();
    }
    slot[k] = s;
    reader[s] = k;
  }
  free(reader);
}

void mm_prefetch_emit(Gen *g) {
  const MmPlan *p = g->p;
  TileMir *m = g->m;
  if (!g->npf) return;
  int64_t piece = p->Kb * p->Nb * p->be, cols = p->Nb < p->Nv ? p->Nb : p->Nv;
  int32_t first = m->ninsts;
  int64_t bytes = 0, run_bytes = 0;
  for (int32_t r = 0; r < g->npf; r++) {
    const Block *k = &g->blocks[g->pf_first[r]];
    int64_t n = g->pf_count[r], steps = g->pf_steps[r];
    int64_t step = n > 1 ? b_src(p, k + 1) - b_src(p, k) : 0;
    /* count2 blocks of Kb runs of a block's columns; block i lands in slot first + i */
    TileDmaShape shape = {.count0 = cols * p->be, .count1 = p->Kb, .count2 = n,
                          .src_stride1 = p->N * p->be, .dst_stride1 = p->Nb * p->be,
                          .src_stride2 = step, .dst_stride2 = piece};
    if (steps > 0) /* the grid: c blocks of a step, each steps * Kb rows */
      shape = (TileDmaShape){.count0 = cols * p->be, .count1 = n / steps,
                             .count2 = steps * p->Kb, .src_stride1 = step,
                             .dst_stride1 = steps * piece, .src_stride2 = p->N * p->be,
                             .dst_stride2 = p->Nb * p->be};
    else if (steps < 0) /* chunks: each -steps * Kb rows of one block's columns */
      shape = (TileDmaShape){.count0 = cols * p->be, .count1 = -steps * p->Kb,
                             .count2 = n / -steps, .src_stride1 = p->N * p->be,
                             .dst_stride1 = p->Nb * p->be,
                             .src_stride2 = b_src(p, k - steps) - b_src(p, k),
                             .dst_stride2 = -steps * piece};
    char name[64];
    snprintf(name, sizeof name, "matmul.pf%d", (int)r);
    int32_t desc = tile_dma_desc_buffer(m, name, p->b.buf, b_src(p, k), g->bbuf,
                                        g->pf_first[r] * piece, &shape, g->pf_sem);
    int32_t reg = tile_mir_sreg(m);
    TileMirInst li = tile_mir_inst(TILE_MOP_LI, reg, 0, 0, 0, 0);
    li.imm_buf = desc;
    tile_mir_add(m, li);
    TileMirInst in = tile_mir_inst(TILE_MOP_DMA, 0, reg, 0, 0, 0);
    run_bytes = n * p->Kb * cols * p->be;
    bytes += run_bytes;
    in.est_cycles = tile_lower_dma_cycles(tile_lower_target(g->cx), run_bytes);
    tile_mir_mem(&in, desc, TILE_MIR_READ, 0);
    tile_mir_mem(&in, p->b.buf, TILE_MIR_READ, 0);
    tile_mir_mem(&in, g->bbuf, TILE_MIR_WRITE, 0);
    tile_mir_add(m, in);
  }
  /* with parts, the blocks of the last one run after the group's last wait */
  tile_lower_prefetch_block(g->cx, first, m->ninsts, bytes, g->pf_parts ? g->npf - 1 : 0,
                            g->pf_parts ? run_bytes : bytes);
}

int64_t mm_part_step(const Gen *g, int64_t c0, int64_t kp) {
  int64_t c = g->p->lead * g->p->nnp; /* blocks per K step of the first chunk */
  for (int32_t r = 1; g->pf_parts && c0 == 0 && r < g->npf; r++)
    if (g->pf_first[r] / c > kp) return g->pf_first[r] / c;
  return INT64_MAX;
}

/* VMEM offset of slab s's slot in the A ring (two slots per kind, normal first), and of
 * B piece j's slot in the B ring (depth per kind). */
static int64_t slab_slot(const Gen *g, const int64_t *kind_index, int64_t s, bool edge) {
  const MmPlan *p = g->p;
  int64_t slot = p->ahold ? s % p->nkp : (edge ? 2 : 0) + kind_index[s] % 2;
  return slot * p->Mb * p->Kb * p->ae;
}

/* The element of the result (and of a tile operand, its shape) at row `row` of block k's
 * rows and its first column. */
static int64_t out_elem(const MmPlan *p, const Block *k, int64_t row) {
  return (k->b * p->M + k->mstart + row) * p->N + k->nstart + k->bcol;
}

/* VMEM offset of the q-th last-step block's slot of tile operand i. */
static int64_t tile_slot(const MmPlan *p, int32_t i, int64_t q) {
  return q % mm_tile_slots(p) * p->Mb * p->Nb * p->tiles[i].esize;
}

static int64_t a_src(const MmPlan *p, const Block *k, int64_t row) {
  return (k->b * p->M * p->K + (k->mstart + row) * p->K + k->kp * p->Kb) * p->ae;
}

/* Piece `piece` of `pieces`, `rows` rows each (the last overlapping): its first row. */
static int64_t piece_row(const MmPlan *p, int64_t piece, int64_t rows) {
  int64_t r = piece * rows, hi = p->Mv > rows ? p->Mv - rows : 0;
  return r < hi ? r : hi;
}

static int64_t piece_rows(const MmPlan *p, int64_t rows) { return rows < p->Mv ? rows : p->Mv; }

/* Adds the copy of rows [row, row + n) of slab `s` (first block k) into dst_off. */
static void add_a(Gen *g, DescTable *t, const Block *k, int64_t dst_off, int64_t row, int64_t n,
                  int32_t sem) {
  const MmPlan *p = g->p;
  int64_t kr = k->edge ? p->Kr : p->Kb;
  table_add(g, t, p->a.buf, a_src(p, k, row), p->K * p->ae, g->abuf,
            dst_off + row * p->Kb * p->ae, p->Kb * p->ae, kr * p->ae, n, sem);
}

void mm_tables(Gen *g) {
  const MmPlan *p = g->p;
  TileMir *m = g->m;
  mm_blocks(g);
  int64_t nb = g->nblocks, nslabs = g->nslabs;
  g->scratch = tile_mir_buffer(m, "matmul.scratch", TILE_SPACE_SMEM, 8, 1, 4);
  for (int i = 0; i < SEM_COUNT; i++) g->sem[i] = tile_mir_sem(m);

  /* slot numbers per kind (normal / padded) of slabs; each B piece's slot in its ring:
   * with a prefetch (no padded K) where ring_slots puts it, else per kind in turn */
  int64_t *slab_kind = xcalloc((size_t)nslabs, sizeof(int64_t));
  int64_t *slot_of = xcalloc((size_t)nb, sizeof(int64_t));
  int64_t *entry = xcalloc((size_t)nb, sizeof(int64_t)); /* of each piece in the B table */
  pf_entries(g, entry);
  if (p->pf > 0) ring_slots(g, entry, slot_of);
  int64_t counts[2] = {0, 0}, pcounts[2] = {0, 0};
  for (int64_t j = 0; j < nb; j++) {
    const Block *k = &g->blocks[j];
    if (g->slab_first[k->slab] == j) slab_kind[k->slab] = counts[k->edge]++;
    int64_t kind = pcounts[k->edge]++;
    if (p->pf <= 0) slot_of[j] = k->edge ? p->ring + kind % p->eslots : kind % p->ring;
  }

  /* records */
  int64_t words = REC_ROW0 + p->nrows + p->ntiles;
  g->rec_bytes = words * 4;
  g->rec = tile_mir_buffer(m, "matmul.rec", TILE_SPACE_SMEM, nb * g->rec_bytes, 1, 4);
  int64_t nlast = 0;
  for (int64_t j = 0; j < nb; j++) {
    const Block *k = &g->blocks[j];
    int64_t at = j * g->rec_bytes;
    tile_mir_reloc(m, g->rec, at + REC_B * 4, g->bbuf,
                   g->share ? g->bslot[j] : slot_of[j] * p->Kb * p->Nb * p->be, false);
    tile_mir_reloc(m, g->rec, at + REC_A * 4, g->abuf, slab_slot(g, slab_kind, k->slab, k->edge),
                   false);
    if (g->acc >= 0)
      tile_mir_reloc(m, g->rec, at + REC_ACC * 4, g->acc, k->np * p->nn * g->tile_bytes, false);
    if (mm_pop_kind(g, j) == POP_LAST) {
      for (int32_t i = 0; i < p->ntiles; i++)
        tile_mir_reloc(m, g->rec, at + rec_tile(p, i) * 4, p->tiles[i].vmem,
                       tile_slot(p, i, nlast), false);
      tile_mir_reloc(m, g->rec, at + REC_STAGE * 4, g->stage, (nlast++ % 2) * g->stage_slot, false);
    }
    for (int32_t r = 0; r < p->nrows; r++)
      tile_mir_reloc(m, g->rec, at + (REC_ROW0 + r) * 4, p->rows[r].vmem,
                     (k->nstart + k->bcol) * p->rows[r].esize, false);
  }
  uint8_t *zeros = xcalloc((size_t)(nb * g->rec_bytes), 1);
  tile_mir_data(m, g->rec, zeros, nb * g->rec_bytes);
  free(zeros);

  if (g->own) resident_record(g, slot_of);

  /* B pieces (those the prefetch copies left out) with the prefetched blocks' signals
   * between them ("Prefetch"), then placeholders for the issues past the last block;
   * none where the weights are another group's ("Resident") */
  if (!g->share) table_init(g, &g->bdesc, "matmul.bdesc", (int32_t)(nb + p->depth));
  for (int64_t j = p->pf, e = 0; !g->share && (j < nb || e < nb); e++) {
    if (j == nb || entry[j] > e) {
      table_placeholder(g, &g->bdesc, g->sem[SEM_B]);
      continue;
    }
    int64_t b = j++;
    const Block *k = &g->blocks[b];
    int64_t kr = k->edge ? p->Kr : p->Kb, cols = p->Nb < p->Nv ? p->Nb : p->Nv;
    table_add(g, &g->bdesc, p->b.buf, b_src(p, k), p->N * p->be, g->bbuf,
              slot_of[b] * p->Kb * p->Nb * p->be, p->Nb * p->be, cols * p->be, kr,
              g->sem[k->edge ? SEM_B_EDGE : SEM_B]);
  }
  for (int64_t i = 0; i < p->depth && !g->share; i++) table_placeholder(g, &g->bdesc, -1);

  /* the first slab, then one A copy per block: piece np of the next slab */
  table_init(g, &g->a0desc, "matmul.a0desc", (int32_t)p->a0pieces);
  for (int64_t i = 0; i < p->a0pieces; i++)
    add_a(g, &g->a0desc, &g->blocks[0], slab_slot(g, slab_kind, 0, g->blocks[0].edge),
          piece_row(p, i, p->a0rows), piece_rows(p, p->a0rows), g->sem[SEM_A0]);
  table_init(g, &g->adesc, "matmul.adesc", (int32_t)nb);
  for (int64_t j = 0; j < nb; j++) {
    const Block *k = &g->blocks[j];
    /* The first block of a step issues none: it starts with the slab just loaded, and
     * at the start of all it shares HBM with the first slab. Held A (a slot per K step,
     * so the next slab's is free) has every block of the first chunk issue one. */
    int64_t piece = p->lead > 1 ? k->np : p->nnp > 1 ? k->np - 1 : 0;
    if (piece < 0 || piece >= p->apieces || k->slab + 1 >= nslabs ||
        (p->ahold && g->blocks[g->slab_first[k->slab + 1]].ng > 0)) {
      table_placeholder(g, &g->adesc, g->sem[SEM_A]);
      continue;
    }
    const Block *next = &g->blocks[g->slab_first[k->slab + 1]];
    add_a(g, &g->adesc, next, slab_slot(g, slab_kind, next->slab, next->edge),
          piece_row(p, piece, p->arows), piece_rows(p, p->arows), g->sem[SEM_A]);
  }

  /* copies out: placeholders, then nout per last-step block, the final one's own */
  int64_t nfine = 0, lo, hi;
  while (mm_fine_copy(p, nfine, &lo, &hi)) nfine++;
  table_init(g, &g->odesc, "matmul.odesc", (int32_t)(2 * p->nout + (nlast - 1) * p->nout + nfine));
  for (int64_t i = 0; i < 2 * p->nout; i++) table_placeholder(g, &g->odesc, g->sem[SEM_OUT]);
  int64_t width = p->Nb < p->Nv ? p->Nb : p->Nv, q = 0;
  for (int64_t j = 0; j < nb; j++) {
    if (mm_pop_kind(g, j) != POP_LAST) continue;
    const Block *k = &g->blocks[j];
    int64_t drow = out_elem(p, k, 0) * p->oe;
    int64_t sbase = (q % 2) * g->stage_slot;
    if (j == nb - 1) {
      for (int64_t c = 0; mm_fine_copy(p, c, &lo, &hi); c++) {
        int64_t r0 = lo * p->sub, r1 = hi * p->sub < p->Mv ? hi * p->sub : p->Mv;
        table_add(g, &g->odesc, g->stage, sbase + r0 * p->Nb * p->oe, p->Nb * p->oe,
                  p->out.buf, drow + r0 * p->N * p->oe, p->N * p->oe, width * p->oe, r1 - r0,
                  g->sem[SEM_OUT]);
      }
      continue;
    }
    for (int64_t c = 0; c < p->nout; c++) {
      int64_t end = c == p->nout - 1 ? p->T : (c + 1) * p->q;
      if (c < p->nout - 1 && end > p->T - p->skew) end = p->T - p->skew;
      int64_t r1 = end * p->sub < p->Mv ? end * p->sub : p->Mv;
      int64_t r0 = r1 - p->q * p->sub > 0 ? r1 - p->q * p->sub : 0;
      table_add(g, &g->odesc, g->stage, (q % 2) * g->stage_slot + r0 * p->Nb * p->oe,
                p->Nb * p->oe, p->out.buf, out_elem(p, k, r0) * p->oe, p->N * p->oe,
                width * p->oe, r1 - r0, g->sem[SEM_OUT]);
    }
    q++;
  }
  /* tile operands: each last-step block's pieces, in block order (gen_matmul.c, "Tile
   * operands") */
  if (p->ntiles) {
    table_init(g, &g->idesc, "matmul.idesc", (int32_t)(nlast * p->ntiles));
    q = 0;
    for (int64_t j = 0; j < nb; j++) {
      if (mm_pop_kind(g, j) != POP_LAST) continue;
      for (int32_t i = 0; i < p->ntiles; i++) {
        const MmInput *t = &p->tiles[i];
        table_add(g, &g->idesc, t->ref.buf, out_elem(p, &g->blocks[j], 0) * t->esize,
                  p->N * t->esize, t->vmem, tile_slot(p, i, q), p->Nb * t->esize,
                  width * t->esize, p->Mv, g->sem[SEM_IN]);
      }
      q++;
    }
    table_finish(g, &g->idesc);
  }
  if (!g->share) table_finish(g, &g->bdesc);
  table_finish(g, &g->adesc);
  table_finish(g, &g->a0desc);
  table_finish(g, &g->odesc);
  free(slab_kind);
  free(slot_of);
  free(entry);
}
