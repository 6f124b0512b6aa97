/* Checking an object's code against a machine, and pre-decoding it.
 *
 * Needs: a target that passed emu_check_target. Guarantees after emu_decode: every op
 * is well formed for the encoding and exists on the target (slot, registers, units,
 * semaphores, row groups), every branch target and loop body lies inside the program,
 * and each bundle is reduced to what the cycle loop needs: its non-nop ops (all of
 * them, and the ones timing-only mode still executes), the registers it reads (checked
 * against the scoreboard at issue), the registers it writes with their latencies, the
 * copies that keep same-bundle reads seeing the old values, and its slot-count
 * signature for the statistics. */
#include <stdlib.h>
#include <string.h>

#include "emu_internal.h"

bool emu_check_target(const TileTarget *t, TileDiag *d) {
  const char *n = t->name[0] ? t->name : "(unnamed)";
  for (int k = 0; k < TILE_LAT_COUNT; k++)
    if (t->latency[k] < 1)
      return tile_error(d, (TileLoc){0}, "target %s: latency %d of class %d must be at least 1",
                        n, t->latency[k], k);
  for (int s = 0; s < TILE_SLOT_COUNT; s++)
    if (t->slots[s] < 0 || t->slots[s] > tile_slot_words((TileSlot)s))
      return tile_error(d, (TileLoc){0}, "target %s: slots.%s = %d is not in 0..%d", n,
                        tile_slot_name((TileSlot)s), t->slots[s], tile_slot_words((TileSlot)s));
  if (t->clock_hz < 1 || t->hbm_bw < 1 || t->vmem_bw < 1 || t->ici_bw < 1)
    return tile_error(d, (TileLoc){0},
                      "target %s: the clock and every bandwidth must be positive", n);
  if (t->vreg_sublanes < 1 || t->vreg_lanes < 1 || t->vreg_lanes > 4096 ||
      (int64_t)t->vreg_sublanes * t->vreg_lanes > (1 << 22))
    return tile_error(d, (TileLoc){0}, "target %s: a vector register of %d x %d is not usable",
                      n, t->vreg_sublanes, t->vreg_lanes);
  if (t->mxu_dim != t->vreg_lanes || t->mxu_dim % t->vreg_sublanes != 0)
    return tile_error(d, (TileLoc){0},
                      "target %s: the MXU dimension (%d) must equal the lanes (%d) and be a "
                      "multiple of the sublanes (%d)",
                      n, t->mxu_dim, t->vreg_lanes, t->vreg_sublanes);
  if (t->nvregs < 1 || t->nvregs > 64 || t->nsregs < 1 || t->nsregs > 64 || t->nsems < 0 ||
      t->nsems > 64 || t->mxu_count < 0 || t->mxu_count > 64 || t->mxu_push_cycles < 1)
    return tile_error(d, (TileLoc){0},
                      "target %s: register, semaphore and MXU counts must be in 1..64", n);
  if (t->vmem_bytes < 4 || t->smem_bytes < 4 || t->hbm_bytes < 4 ||
      t->vmem_bytes > INT32_MAX || t->smem_bytes > INT32_MAX)
    return tile_error(d, (TileLoc){0},
                      "target %s: memory sizes must be at least 4 bytes (VMEM and SMEM "
                      "below 2 GiB: their addresses are 32-bit scalars)", n);
  if (t->dma_engines < 1 || t->dma_issue_cycles < 1 || t->dma_outstanding < 1)
    return tile_error(d, (TileLoc){0},
                      "target %s: DMA engines, issue cycles and the outstanding limit must be "
                      "at least 1", n);
  if (t->torus_rank < 1 || t->torus_rank > TILE_MAX_TORUS_RANK)
    return tile_error(d, (TileLoc){0}, "target %s: a torus has 1 to %d axes, not %d", n,
                      TILE_MAX_TORUS_RANK, t->torus_rank);
  int64_t chips = 1;
  for (int k = 0; k < t->torus_rank; k++) {
    if (t->torus[k] < 1)
      return tile_error(d, (TileLoc){0}, "target %s: torus axis %d has length %d", n, k,
                        t->torus[k]);
    chips *= t->torus[k];
    if (chips > (1 << 20))
      return tile_error(d, (TileLoc){0}, "target %s: more than 2^20 chips", n);
  }
  if (chips > 1 && tile_target_hop_cycles(t) < 1)
    return tile_error(d, (TileLoc){0},
                      "target %s: the per-hop latency (ici.hop_ns = %lld) must be at least one "
                      "cycle, or chips could affect each other within a cycle",
                      n, (long long)t->ici_hop_ns);
  return true;
}

/* Growable arrays of the program. */
typedef struct Builder {
  EmuOp *ops, *tops;
  EmuRead *reads;
  EmuWrite *writes;
  EmuSave *saves;
  size_t nops, ntops, nreads, nwrites, nsaves;
  size_t cops, ctops, creads, cwrites, csaves;
  bool reported; /* an error about the program went to the diagnostics */
} Builder;

#define GROW(arr, n, cap)                                                   \
  do {                                                                      \
    if ((n) == (cap)) {                                                     \
      size_t nc = (cap) ? (cap) * 2 : 256;                                  \
      void *np = realloc((arr), nc * sizeof *(arr));                        \
      if (!np) return false;                                                \
      (arr) = np;                                                           \
      (cap) = nc;                                                           \
    }                                                                       \
  } while (0)

static bool timing_op(int op) {
  switch (tile_mop_info[op].slot) {
  case TILE_SLOT_VECTOR: return false;
  case TILE_SLOT_XLU: return op == TILE_MOP_XTRPUSH || op == TILE_MOP_XTRPOP;
  default: return true;
  }
}

static int find_sig(EmuProgram *p, const uint8_t counts[TILE_SLOT_COUNT], int pushes) {
  for (int i = 0; i < p->nsigs; i++)
    if (memcmp(p->sig_counts[i], counts, TILE_SLOT_COUNT) == 0 && p->sig_mxu_pushes[i] == pushes)
      return i;
  int i = p->nsigs++;
  uint8_t(*nc)[TILE_SLOT_COUNT] = realloc(p->sig_counts, (size_t)p->nsigs * sizeof *nc);
  int32_t *np = realloc(p->sig_mxu_pushes, (size_t)p->nsigs * sizeof *np);
  if (nc) p->sig_counts = nc;
  if (np) p->sig_mxu_pushes = np;
  if (!nc || !np) return -1;
  memcpy(p->sig_counts[i], counts, TILE_SLOT_COUNT);
  p->sig_mxu_pushes[i] = pushes;
  return i;
}

static bool decode_bundle(const TileTarget *t, const TileBundle *in, int32_t pc, EmuProgram *p,
                          Builder *b, TileDiag *d) {
  EmuBundle *eb = &p->bundles[pc];
  memset(eb, 0, sizeof *eb);
  eb->ops = (uint32_t)b->nops;
  eb->tops = (uint32_t)b->ntops;
  eb->reads = (uint32_t)b->nreads;
  eb->writes = (uint32_t)b->nwrites;
  eb->saves = (uint32_t)b->nsaves;
  uint8_t counts[TILE_SLOT_COUNT] = {0};
  int pushes = 0;
  bool written[EMU_NSB] = {false};
  int8_t save_of[EMU_NSB];
  memset(save_of, -1, sizeof save_of);
  int nvsave = 0, nssave = 0;
  for (int w = 0; w < TILE_BUNDLE_SLOTS; w++) {
    TileMInst mi = in->slot[w];
    if (mi.op == TILE_MOP_NOP) continue;
    const TileMopInfo *info = &tile_mop_info[mi.op];
    counts[info->slot]++;
    eb->units |= (uint8_t)(1u << info->slot);
    if (mi.op == TILE_MOP_MXU_PUSH) pushes++;
    if (mi.op == TILE_MOP_WAIT) {
      eb->flags |= EMU_B_WAIT;
      eb->wait_sem = mi.c;
      eb->wait_count = mi.imm;
      continue;
    }
    EmuOp op = {.op = mi.op, .d = mi.d, .a = mi.a, .b = mi.b, .c = mi.c, .imm = mi.imm,
                .slot = (uint8_t)info->slot, .lat = t->latency[info->latency],
                .body = mi.op == TILE_MOP_LOOP ? tile_minst_field(mi, 'w') : 0};
    TileOperand opnds[TILE_MAX_OPERANDS];
    int n = tile_mop_operands(mi.op, opnds);
    int nwr = 0;
    uint8_t wr_sb[2];
    for (int k = 0; k < n; k++) {
      char kind = opnds[k].kind, field = opnds[k].field;
      if (kind != 's' && kind != 'v' && kind != 'S' && kind != 'V') continue;
      int reg = tile_minst_field(mi, field);
      int sb = (kind == 's' || kind == 'S') ? reg : EMU_SB_V + reg;
      if (kind == 'S' || kind == 'V') {
        wr_sb[nwr++] = (uint8_t)sb;
        continue;
      }
      /* a read: scoreboard check once per bundle and register */
      bool seen = false;
      for (size_t r = eb->reads; r < b->nreads; r++) seen |= b->reads[r].sb == sb;
      if (!seen) {
        GROW(b->reads, b->nreads, b->creads);
        b->reads[b->nreads++] = (EmuRead){(uint8_t)sb, mi.op};
      }
      if (!written[sb]) continue;
      /* an earlier op of this bundle writes it: read a copy of the old value */
      if (save_of[sb] < 0) {
        bool vec = sb >= EMU_SB_V;
        int slot = vec ? nvsave++ : nssave++;
        save_of[sb] = (int8_t)slot;
        GROW(b->saves, b->nsaves, b->csaves);
        b->saves[b->nsaves++] =
            (EmuSave){(uint8_t)vec, (uint8_t)(vec ? sb - EMU_SB_V : sb), (uint8_t)(64 + slot)};
      }
      uint8_t redirected = (uint8_t)(64 + save_of[sb]);
      switch (field) {
      case 'd': op.d = redirected; break;
      case 'a': op.a = redirected; break;
      case 'b': op.b = redirected; break;
      case 'c': op.c = redirected; break;
      }
    }
    for (int k = 0; k < nwr; k++) {
      if (written[wr_sb[k]]) {
        /* the first value could never be read: a read while the second is pending is a
         * hazard, so the bundle is a mistake whether or not it ever runs */
        char r[16];
        emu_reg_name(wr_sb[k], r, sizeof r);
        tile_error(d, (TileLoc){0}, "bundle %d writes %s twice (the second time by '%s')", pc, r,
                   info->mnemonic);
        b->reported = true;
        return false;
      }
      GROW(b->writes, b->nwrites, b->cwrites);
      b->writes[b->nwrites++] =
          (EmuWrite){(int64_t)op.lat << 8 | mi.op, wr_sb[k], mi.op, op.lat};
      written[wr_sb[k]] = true;
    }
    if (mi.op == TILE_MOP_VLDBF || mi.op == TILE_MOP_VSTBF) op.flags |= EMU_OP_BF16;
    if (mi.op == TILE_MOP_VST || mi.op == TILE_MOP_VSTBF) op.flags |= EMU_OP_STORE;
    if (timing_op(mi.op)) {
      op.flags |= EMU_OP_TIMING;
      GROW(b->tops, b->ntops, b->ctops);
      b->tops[b->ntops++] = op;
    }
    GROW(b->ops, b->nops, b->cops);
    b->ops[b->nops++] = op;
  }
  if ((b->nreads - eb->reads) % 2 != 0) { /* pad: the read check takes two at a time */
    GROW(b->reads, b->nreads, b->creads);
    b->reads[b->nreads++] = (EmuRead){EMU_SB_ZERO, TILE_MOP_NOP};
  }
  eb->nops = (uint8_t)(b->nops - eb->ops);
  eb->ntops = (uint8_t)(b->ntops - eb->tops);
  eb->nreads = (uint8_t)(b->nreads - eb->reads);
  eb->nwrites = (uint8_t)(b->nwrites - eb->writes);
  eb->nwchk = eb->nwtrk = eb->nwrites; /* until prove_hazards shows otherwise */
  eb->nsaves = (uint8_t)(b->nsaves - eb->saves);
  if (nvsave > p->max_vsave) p->max_vsave = nvsave;
  if (nssave > p->max_ssave) p->max_ssave = nssave;
  int sig = find_sig(p, counts, pushes);
  if (sig < 0 || sig > UINT16_MAX) return false;
  eb->sig = (uint16_t)sig;
  return true;
}

static bool check_bundle(const TileTarget *t, const TileBundle *in, int32_t pc, int32_t n,
                         TileDiag *d) {
  char why[256];
  for (int w = 0; w < TILE_BUNDLE_SLOTS; w++) {
    TileMInst mi = in->slot[w];
    if (!tile_minst_check(mi, w, why, sizeof why) ||
        !tile_minst_check_target(mi, w, t, why, sizeof why))
      return tile_error(d, (TileLoc){0}, "bundle %d, word %d: %s", pc, w, why);
    switch (mi.op) {
    case TILE_MOP_JMP:
    case TILE_MOP_BNZ:
    case TILE_MOP_BZ:
      if (mi.imm >= n)
        return tile_error(d, (TileLoc){0},
                          "bundle %d: '%s' targets bundle %d, past the program's last bundle %d",
                          pc, tile_mop_info[mi.op].mnemonic, mi.imm, n - 1);
      break;
    case TILE_MOP_LOOP:
      if ((int64_t)pc + tile_minst_field(mi, 'w') >= n)
        return tile_error(d, (TileLoc){0},
                          "bundle %d: the loop body of %d bundles runs past the program's last "
                          "bundle %d",
                          pc, (int)tile_minst_field(mi, 'w'), n - 1);
      break;
    default: break;
    }
  }
  return true;
}

/* ---- static hazard proofs ----
 *
 * A forward dataflow analysis over the program's control flow computes, for every
 * bundle and register, an upper bound on the cycles from the bundle's issue until the
 * register's latest pending write lands (0: nothing pending), over every way of reaching
 * the bundle. Each bundle takes at least one cycle, a taken branch lat.branch, a stall
 * only more: more time only lets writes land, so the bounds hold for every run. A read
 * whose bound is 0 can never be early, and a write whose latency exceeds the bound can
 * never land out of order: the cycle loop checks only the others. Control flow: the
 * fall-through (1 cycle) unless the bundle jumps or halts, branch targets (lat.branch),
 * and from the last bundle of every loop body back to its first (1 cycle), whether or
 * not the loop repeats. Bounds saturate at 65535 (a saturated bound proves nothing).
 * The analysis gives up (every check stays) when the program is very large or the
 * fixpoint is slow to come; results never depend on it, only speed. */

typedef uint16_t Rem;
enum { REM_MAX = 65535 };

typedef struct Edge {
  int32_t to;
  int32_t weight;
  int32_t next; /* next edge from the same bundle, -1 */
} Edge;

static bool add_edge(Edge **e, int32_t *n, int32_t *cap, int32_t *head, int32_t from, int32_t to,
                     int32_t w) {
  if (*n == *cap) {
    int32_t nc = *cap ? *cap * 2 : 1024;
    Edge *ne = realloc(*e, (size_t)nc * sizeof *ne);
    if (!ne) return false;
    *e = ne;
    *cap = nc;
  }
  (*e)[*n] = (Edge){to, w, head[from]};
  head[from] = (*n)++;
  return true;
}

static void prove_hazards(const TileTarget *t, const TileObjCode *code, EmuProgram *p) {
  const int32_t n = p->nbundles;
  if ((size_t)n * EMU_NSB * sizeof(Rem) > ((size_t)64 << 20)) return;
  Rem *in = calloc((size_t)n * EMU_NSB, sizeof *in);
  uint8_t *seen = calloc((size_t)n, 1), *queued = calloc((size_t)n, 1);
  int32_t *head = malloc((size_t)n * sizeof *head), *work = malloc((size_t)n * sizeof *work);
  Edge *edges = NULL;
  int32_t nedges = 0, cap = 0;
  bool ok = in && seen && queued && head && work;
  const int32_t branch = t->latency[TILE_LAT_BRANCH];
  for (int32_t b = 0; ok && b < n; b++) head[b] = -1;
  for (int32_t b = 0; ok && b < n; b++) {
    const TileMInst *ctl = &code->bundles[b].slot[tile_slot_first(TILE_SLOT_BRANCH)];
    bool falls = ctl->op != TILE_MOP_JMP && ctl->op != TILE_MOP_HALT;
    if (falls && b + 1 < n) ok &= add_edge(&edges, &nedges, &cap, head, b, b + 1, 1);
    if (ctl->op == TILE_MOP_JMP || ctl->op == TILE_MOP_BNZ || ctl->op == TILE_MOP_BZ)
      ok &= add_edge(&edges, &nedges, &cap, head, b, ctl->imm, branch);
    if (ctl->op == TILE_MOP_LOOP)
      ok &= add_edge(&edges, &nedges, &cap, head, b + tile_minst_field(*ctl, 'w'), b + 1, 1);
  }
  /* the worklist, a stack: any order reaches the same fixpoint */
  int32_t top = 0;
  int64_t budget = 64 * (int64_t)n + 4096;
  if (ok) {
    seen[0] = queued[0] = 1;
    work[top++] = 0;
  }
  Rem out[EMU_NSB];
  while (ok && top > 0) {
    if (--budget < 0) {
      ok = false;
      break;
    }
    int32_t b = work[--top];
    queued[b] = 0;
    const EmuBundle *eb = &p->bundles[b];
    memcpy(out, in + (size_t)b * EMU_NSB, sizeof out);
    for (int i = 0; i < eb->nwrites; i++) {
      const EmuWrite *w = &p->writes[eb->writes + i];
      out[w->sb] = w->lat < REM_MAX ? (Rem)w->lat : REM_MAX;
    }
    for (int32_t k = head[b]; k >= 0; k = edges[k].next) {
      int32_t s = edges[k].to, w = edges[k].weight;
      Rem *dst = in + (size_t)s * EMU_NSB;
      bool changed = !seen[s];
      for (int r = 0; r < EMU_NSB; r++) {
        Rem v = out[r] == REM_MAX ? REM_MAX : out[r] > w ? (Rem)(out[r] - w) : 0;
        if (!seen[s]) dst[r] = v; /* the first way in */
        else if (v > dst[r]) dst[r] = v, changed = true; /* the bound over every way in */
      }
      seen[s] = 1;
      if (changed && !queued[s]) {
        queued[s] = 1;
        work[top++] = s;
      }
    }
  }
  for (int32_t b = 0; ok && b < n; b++) {
    if (!seen[b]) continue; /* never runs: keep its checks */
    EmuBundle *eb = &p->bundles[b];
    const Rem *rem = in + (size_t)b * EMU_NSB;
    /* reads: keep the unproven ones, in order, padded to an even count again */
    EmuRead *rd = p->reads + eb->reads;
    int kept = 0;
    for (int i = 0; i < eb->nreads; i++)
      if (rd[i].sb != EMU_SB_ZERO && rem[rd[i].sb] > 0) rd[kept++] = rd[i];
    if (kept % 2) rd[kept++] = (EmuRead){EMU_SB_ZERO, TILE_MOP_NOP};
    eb->nreads = (uint8_t)kept;
    /* writes: the ones that need the order check first */
    EmuWrite *wr = p->writes + eb->writes, tmp[TILE_BUNDLE_SLOTS * 2];
    int nchk = 0, nrest = 0;
    for (int i = 0; i < eb->nwrites; i++)
      if (wr[i].lat <= rem[wr[i].sb]) wr[nchk++] = wr[i];
      else tmp[nrest++] = wr[i];
    if (nrest) memcpy(wr + nchk, tmp, (size_t)nrest * sizeof *tmp);
    eb->nwchk = (uint8_t)nchk;
  }
  /* registers some run-time check looks at: their scoreboard entries must be kept */
  bool looked_at[EMU_NSB_ALL] = {false};
  for (int32_t b = 0; ok && b < n; b++) {
    const EmuBundle *eb = &p->bundles[b];
    for (int i = 0; i < eb->nreads; i++) looked_at[p->reads[eb->reads + i].sb] = true;
    for (int i = 0; i < eb->nwchk; i++) looked_at[p->writes[eb->writes + i].sb] = true;
  }
  for (int32_t b = 0; ok && b < n; b++) {
    EmuBundle *eb = &p->bundles[b];
    EmuWrite *wr = p->writes + eb->writes, tmp[TILE_BUNDLE_SLOTS * 2];
    int ntrk = eb->nwchk, nrest = 0;
    eb->wlat = 0;
    for (int i = eb->nwchk; i < eb->nwrites; i++) {
      if (looked_at[wr[i].sb]) {
        wr[ntrk++] = wr[i];
      } else {
        tmp[nrest++] = wr[i];
        if (wr[i].lat > eb->wlat) eb->wlat = wr[i].lat;
      }
    }
    if (nrest) memcpy(wr + ntrk, tmp, (size_t)nrest * sizeof *tmp);
    eb->nwtrk = (uint8_t)ntrk;
  }
  free(in);
  free(seen);
  free(queued);
  free(head);
  free(work);
  free(edges);
}

bool emu_decode(const TileTarget *t, const TileObjCode *code, bool prove, EmuProgram *p,
                TileDiag *d) {
  memset(p, 0, sizeof *p);
  if (code->nbundles < 1 || !code->bundles)
    return tile_error(d, (TileLoc){0}, "the code for %s has no bundles",
                      code->chip < 0 ? "every chip" : "a chip");
  for (int32_t pc = 0; pc < code->nbundles; pc++)
    if (!check_bundle(t, &code->bundles[pc], pc, code->nbundles, d)) return false;
  p->nbundles = code->nbundles;
  p->bundles = calloc((size_t)p->nbundles, sizeof *p->bundles);
  Builder b = {0};
  bool ok = p->bundles != NULL;
  for (int32_t pc = 0; ok && pc < p->nbundles; pc++)
    ok = decode_bundle(t, &code->bundles[pc], pc, p, &b, d);
  /* never NULL, so `array + 0` is always a valid pointer */
  if (ok && !b.ops) ok = (b.ops = malloc(sizeof *b.ops)) != NULL;
  if (ok && !b.tops) ok = (b.tops = malloc(sizeof *b.tops)) != NULL;
  if (ok && !b.reads) ok = (b.reads = malloc(sizeof *b.reads)) != NULL;
  if (ok && !b.writes) ok = (b.writes = malloc(sizeof *b.writes)) != NULL;
  if (ok && !b.saves) ok = (b.saves = malloc(sizeof *b.saves)) != NULL;
  p->ops = b.ops;
  p->tops = b.tops;
  p->reads = b.reads;
  p->writes = b.writes;
  p->saves = b.saves;
  if (!ok) {
    emu_program_free(p);
    return b.reported ? false : tile_error(d, (TileLoc){0}, "out of memory decoding the program");
  }
  if (prove) prove_hazards(t, code, p);
  return true;
}

void emu_program_free(EmuProgram *p) {
  free(p->bundles);
  free(p->ops);
  free(p->tops);
  free(p->reads);
  free(p->writes);
  free(p->saves);
  free(p->sig_counts);
  free(p->sig_mxu_pushes);
  memset(p, 0, sizeof *p);
}
