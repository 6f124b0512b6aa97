/* DMA: descriptors, engines, bandwidth, completion; remote semaphore signals.
 *
 * `dma sA` reads a 16-word descriptor at SMEM byte address S[a] (docs/emulator.md,
 * "DMA descriptors and timing"): source and destination space and address, up to three
 * dimensions (count[0] contiguous bytes, count[1] and count[2] runs with signed byte
 * strides on each side), the peer chip (-1: this chip) and a semaphore to signal on the
 * source chip and one on the destination chip when the copy completes.
 *
 * Timing, all in integer cycles:
 *   engine   the engine free earliest (lowest index on ties) takes the descriptor at
 *            max(t, free) and is busy dma_issue_cycles: the transfer starts at
 *            s0 = max(t, free) + dma_issue_cycles.
 *   local, no HBM (VMEM/SMEM <-> VMEM/SMEM): done = s0 + ceil(S * clock / vmem_bw).
 *   local, HBM involved: the chip's HBM DMAs share hbm_bw by processor sharing in whole
 *            cycles. A DMA needs S * clock_hz units of work; each cycle the n active
 *            DMAs get floor(hbm_bw / n) units each, the first hbm_bw mod n of them (in
 *            start order) one more, and none more than its other side allows (vmem_bw
 *            for VMEM or SMEM, no limit for HBM to HBM). A DMA completes at the end of
 *            the cycle its work reaches zero. Shares change only when a DMA joins or
 *            leaves, so completion times are computed at those moments, never per cycle.
 *            Alone, a DMA takes exactly ceil(S * clock / hbm_bw) cycles.
 *   remote   the bytes leave at s0 and travel the torus (network.c); the copy completes
 *            when they are delivered.
 * A completion adds 1 to each semaphore the descriptor names. More than dma_outstanding
 * DMAs between issue and completion is a fault in strict mode.
 *
 * Data: a local DMA reads its source and writes its destination at its completion
 * cycle; a remote DMA reads its source when it issues and writes the destination when
 * it is delivered. In timing-only mode no bytes move except copies into SMEM on one
 * chip (the scalar core, which decides control flow, and the DMA descriptors stay
 * exact; their sources are SMEM or HBM's initial data). */
#include <stdlib.h>
#include <string.h>

#include "emu_internal.h"

static bool oom(EmuChip *c, int64_t t) {
  c->emu->oom = true;
  return emu_fault(c, TILE_EMU_FAULT_NONE, t, "out of memory");
}

/* ---- regions ---- */

static int64_t region_lo(int64_t addr, const int64_t count[3], const int64_t stride[3]) {
  int64_t lo = addr;
  for (int k = 1; k < 3; k++)
    if (stride[k] < 0) lo += (count[k] - 1) * stride[k];
  return lo;
}

static int64_t region_hi(int64_t addr, const int64_t count[3], const int64_t stride[3]) {
  int64_t hi = addr + count[0];
  for (int k = 1; k < 3; k++)
    if (stride[k] > 0) hi += (count[k] - 1) * stride[k];
  return hi;
}

static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* Whether any run of the region meets [lo, hi). The outer loop goes over the shorter of
 * the two strided dimensions; the other is solved for directly. */
static bool region_hits(int64_t addr, const int64_t count[3], const int64_t stride[3],
                        int64_t lo, int64_t hi) {
  if (region_hi(addr, count, stride) <= lo || hi <= region_lo(addr, count, stride)) return false;
  int outer = count[1] <= count[2] ? 1 : 2, inner = 3 - outer;
  int64_t n = count[inner], s = stride[inner], c0 = count[0];
  for (int64_t i = 0; i < count[outer]; i++) {
    int64_t b = addr + i * stride[outer];
    /* runs [b + j*s, b + j*s + c0) for j in [0, n): need lo - c0 < b + j*s < hi */
    if (s == 0) {
      if (b < hi && b + c0 > lo) return true;
      continue;
    }
    int64_t a1 = lo - c0 + 1 - b, a2 = hi - 1 - b; /* a1 <= j*s <= a2 */
    int64_t jlo, jhi;
    if (s > 0) {
      jlo = -floor_div(-a1, s);
      jhi = floor_div(a2, s);
    } else {
      jlo = -floor_div(-a2, s);
      jhi = floor_div(a1, s);
    }
    if (jlo < 0) jlo = 0;
    if (jhi > n - 1) jhi = n - 1;
    if (jlo <= jhi) return true;
  }
  return false;
}

/* Copies a strided region run by run through a bounce buffer: runs are written in
 * order (count[2] outermost), so overlapping destination runs end with the last one. */
static bool copy_runs(EmuMem *dm, const EmuDesc *d, EmuMem *sm, const uint8_t *payload) {
  static const size_t CHUNK = 1 << 16;
  uint8_t buf[1 << 16];
  size_t off = 0;
  for (int64_t i2 = 0; i2 < d->count[2]; i2++)
    for (int64_t i1 = 0; i1 < d->count[1]; i1++) {
      int64_t sa = d->src_addr + i1 * d->src_stride[1] + i2 * d->src_stride[2];
      int64_t da = d->dst_addr + i1 * d->dst_stride[1] + i2 * d->dst_stride[2];
      for (int64_t k = 0; k < d->count[0]; k += (int64_t)CHUNK) {
        size_t n = (size_t)(d->count[0] - k) < CHUNK ? (size_t)(d->count[0] - k) : CHUNK;
        if (payload) {
          if (dm && !emu_mem_write(dm, da + k, payload + off, n)) return false;
          off += n;
        } else {
          emu_mem_read(sm, sa + k, buf, n);
          if (!emu_mem_write(dm, da + k, buf, n)) return false;
        }
      }
    }
  return true;
}

/* Gathers the source region into a packed buffer (remote DMAs). */
static bool gather(EmuMem *sm, const EmuDesc *d, uint8_t *out) {
  size_t off = 0;
  for (int64_t i2 = 0; i2 < d->count[2]; i2++)
    for (int64_t i1 = 0; i1 < d->count[1]; i1++) {
      int64_t sa = d->src_addr + i1 * d->src_stride[1] + i2 * d->src_stride[2];
      emu_mem_read(sm, sa, out + off, (size_t)d->count[0]);
      off += (size_t)d->count[0];
    }
  return true;
}

/* ---- descriptors ---- */

static bool read_desc(EmuChip *c, int64_t addr, int64_t t, EmuDesc *d) {
  if (addr & 3)
    return emu_fault(c, TILE_EMU_FAULT_MISALIGNED, t,
                     "dma descriptor address %lld is not a multiple of 4", (long long)addr);
  if (!emu_check_range(c, TILE_SPACE_SMEM, addr, EMU_DESC_WORDS * 4, t, "dma descriptor"))
    return false;
  if (!emu_store_check(c, TILE_SPACE_SMEM, addr, addr + EMU_DESC_WORDS * 4, t, TILE_MOP_DMA))
    return false;
  int32_t w[EMU_DESC_WORDS];
  const uint8_t *at = emu_mem_span(&c->mem[TILE_SPACE_SMEM], addr, sizeof w, false);
  /* A program issues the same few descriptors over and over: the words decide the
   * decoded descriptor and whether it is valid (the checks below depend on nothing else
   * that changes during a run), so the last valid one is kept with its words and reused
   * when they match (compared in place, not copied first). */
  if (at && c->desc_cached && memcmp(at, c->desc_words, sizeof w) == 0) {
    *d = c->desc_cache;
    return true;
  }
  if (at) memcpy(w, at, sizeof w);
  else emu_mem_read(&c->mem[TILE_SPACE_SMEM], addr, w, sizeof w);
  d->src_space = (uint8_t)w[0];
  d->dst_space = (uint8_t)w[1];
  d->src_addr = (int64_t)((uint64_t)(uint32_t)w[2] | (uint64_t)(uint32_t)w[3] << 32);
  d->dst_addr = (int64_t)((uint64_t)(uint32_t)w[4] | (uint64_t)(uint32_t)w[5] << 32);
  d->count[0] = w[6];
  d->count[1] = w[7];
  d->count[2] = w[8];
  d->src_stride[0] = d->dst_stride[0] = 1;
  d->src_stride[1] = w[9];
  d->src_stride[2] = w[10];
  d->dst_stride[1] = w[11];
  d->dst_stride[2] = w[12];
  d->peer = w[13];
  d->src_sem = w[14];
  d->dst_sem = w[15];
  const Emu *e = c->emu;
  if (w[0] < 0 || w[0] >= TILE_SPACE_COUNT || w[1] < 0 || w[1] >= TILE_SPACE_COUNT)
    return emu_fault(c, TILE_EMU_FAULT_BAD_DMA, t,
                     "dma descriptor at SMEM %lld names space %d -> %d; spaces are 0 (hbm), 1 "
                     "(vmem), 2 (smem)",
                     (long long)addr, w[0], w[1]);
  if (d->count[0] < 1 || d->count[1] < 1 || d->count[2] < 1)
    return emu_fault(c, TILE_EMU_FAULT_BAD_DMA, t,
                     "dma descriptor at SMEM %lld has counts %lld x %lld x %lld; each must be at "
                     "least 1",
                     (long long)addr, (long long)d->count[2], (long long)d->count[1],
                     (long long)d->count[0]);
  if (d->count[1] * d->count[2] > (1LL << 32) ||
      d->count[0] * d->count[1] * d->count[2] > (1LL << 40))
    return emu_fault(c, TILE_EMU_FAULT_BAD_DMA, t,
                     "dma descriptor at SMEM %lld moves %lld runs of %lld bytes; a DMA moves at "
                     "most 2^32 runs and 2^40 bytes",
                     (long long)addr, (long long)(d->count[1] * d->count[2]),
                     (long long)d->count[0]);
  if (d->src_addr < 0 || d->dst_addr < 0)
    return emu_fault(c, TILE_EMU_FAULT_OUT_OF_BOUNDS, t,
                     "dma descriptor at SMEM %lld has a negative address (%lld -> %lld)",
                     (long long)addr, (long long)d->src_addr, (long long)d->dst_addr);
  if (d->peer < -1 || d->peer >= e->nchips)
    return emu_fault(c, TILE_EMU_FAULT_BAD_PEER, t,
                     "dma descriptor at SMEM %lld names peer chip %d; the torus has chips 0..%d "
                     "(-1 is this chip)",
                     (long long)addr, d->peer, e->nchips - 1);
  if (d->src_sem < -1 || d->src_sem >= e->t.nsems || d->dst_sem < -1 ||
      d->dst_sem >= e->t.nsems)
    return emu_fault(c, TILE_EMU_FAULT_BAD_DMA, t,
                     "dma descriptor at SMEM %lld names semaphores %d and %d; a chip has "
                     "semaphores 0..%d (-1 is none)",
                     (long long)addr, d->src_sem, d->dst_sem, e->t.nsems - 1);
  int64_t lo = region_lo(d->src_addr, d->count, d->src_stride);
  int64_t hi = region_hi(d->src_addr, d->count, d->src_stride);
  if (!emu_check_range(c, d->src_space, lo, hi - lo, t, "dma source")) return false;
  lo = region_lo(d->dst_addr, d->count, d->dst_stride);
  hi = region_hi(d->dst_addr, d->count, d->dst_stride);
  if (!emu_check_range(c, d->dst_space, lo, hi - lo, t, "dma destination")) return false;
  memcpy(c->desc_words, w, sizeof w);
  c->desc_cache = *d;
  c->desc_cached = true;
  return true;
}

/* ---- records, statistics ---- */

/* A record from the free list; the caller sets every field (no memset: this is on the
 * path of every DMA). */
static EmuDma *dma_new(EmuChip *c) {
  EmuDma *d = c->free_dma;
  if (d) c->free_dma = d->next;
  else d = malloc(sizeof *d);
  return d;
}

static void dma_release(EmuChip *c, EmuDma *d) {
  d->next = c->free_dma;
  c->free_dma = d;
}

void emu_dma_free_all(EmuChip *c) {
  for (EmuDma *d = c->pool, *n; d; d = n) {
    n = d->next;
    free(d);
  }
  c->pool = NULL;
  for (EmuDma *d = c->free_dma, *n; d; d = n) {
    n = d->next;
    free(d);
  }
  c->free_dma = NULL;
  for (EmuDma *d = c->start_head, *n; d; d = n) {
    n = d->next;
    free(d);
  }
  c->start_head = c->start_tail = NULL;
  /* records still referenced by queued events */
  for (int i = 0; i < c->heap.n; i++) {
    uint8_t k = c->heap.ev[i].kind;
    if (k == EV_DMA_DONE || k == EV_REMOTE_DONE) {
      free(c->heap.ev[i].ptr);
      c->heap.ev[i].ptr = NULL;
    }
  }
}

void emu_dma_inflight(EmuChip *c, int delta, int64_t t) {
  if (delta > 0 && c->inflight == 0) c->dma_busy_since = t;
  c->inflight += delta;
  if (delta < 0 && c->inflight == 0) c->st.busy[TILE_SLOT_DMA] += t - c->dma_busy_since;
}

/* Bookkeeping common to every DMA this chip started, at its completion. */
static void dma_finished(EmuChip *c, EmuDma *d, int64_t t) {
  d->done = t;
  c->outstanding--;
  emu_dma_inflight(c, -1, t);
  if (t > c->dma_last_done) c->dma_last_done = t;
  if (d->d.src_sem >= 0) emu_sem_add(c, d->d.src_sem, 1);
  if (c->tracing) {
    EmuTraceRec r = {.start = d->issue, .end = t, .a = d->bytes,
                     .b = d->peer == c->id ? -1 : d->peer, .track = -1, .kind = TK_DMA};
    emu_trace_add(&c->tr, &r);
  }
  dma_release(c, d);
}

static bool complete_local(EmuChip *c, EmuDma *d, int64_t t) {
  const EmuDesc *x = &d->d;
  bool move = c->emu->functional || x->dst_space == TILE_SPACE_SMEM;
  if (move && !copy_runs(&c->mem[x->dst_space], x, &c->mem[x->src_space], NULL)) return oom(c, t);
  if (x->dst_sem >= 0) emu_sem_add(c, x->dst_sem, 1);
  c->st.dma_bytes += d->bytes;
  dma_finished(c, d, t);
  return true;
}

/* ---- the HBM pool ---- */

static void pool_advance(EmuChip *c, int64_t t) {
  int64_t dt = t - c->pool_t;
  if (dt > 0)
    for (EmuDma *d = c->pool; d; d = d->next) d->left -= (__int128)d->share * dt;
  c->pool_t = t;
}

/* ceil(left / share) cycles after pool_t: the completion of a DMA at a given share
 * (capped far in the future for work no run could finish). */
static inline int64_t pool_done(EmuChip *c, const EmuDma *d, int64_t share) {
  __int128 cycles;
  if (d->left <= 0) cycles = 0;
  else if (d->left <= INT64_MAX - share) { /* the usual case: no 128-bit division */
    /* and often no division at all: a loop's DMAs move the same bytes at the same
     * share, so the last quotient is kept with its operands */
    const int64_t left = (int64_t)d->left;
    if (left != c->div_left || share != c->div_share) {
      c->div_left = left;
      c->div_share = share;
      c->div_cycles = (left + share - 1) / share;
    }
    cycles = c->div_cycles;
  } else {
    cycles = (d->left + share - 1) / share;
  }
  return cycles > (__int128)(EMU_NEVER / 2) ? EMU_NEVER / 2 : c->pool_t + (int64_t)cycles;
}

static void pool_reshare(EmuChip *c) {
  const int64_t H = c->emu->t.hbm_bw;
  /* the common cases first: an empty pool, and one DMA alone, which gets the whole
   * bandwidth up to its cap (the loop below, with n = 1, without the loop) */
  if (c->pool_n <= 1) {
    EmuDma *d = c->pool;
    c->pool_next_dma = d;
    if (!d) {
      c->pool_next = EMU_NEVER;
      return;
    }
    int64_t share = H < d->cap ? H : d->cap;
    d->share = share = share < 1 ? 1 : share;
    c->pool_next = pool_done(c, d, share);
    return;
  }
  const int64_t n = c->pool_n, base = H / n, rem = H - base * n;
  int64_t i = 0;
  c->pool_next = EMU_NEVER;
  c->pool_next_dma = NULL;
  for (EmuDma *d = c->pool; d; d = d->next, i++) {
    int64_t share = base + (i < rem ? 1 : 0);
    if (share > d->cap) share = d->cap;
    if (share < 1) share = 1;
    d->share = share;
    int64_t done = pool_done(c, d, share);
    if (done < c->pool_next || (done == c->pool_next && d->seq < c->pool_next_dma->seq)) {
      c->pool_next = done;
      c->pool_next_dma = d;
    }
  }
}

bool emu_dma_pool_complete(EmuChip *c) {
  EmuDma *d = c->pool_next_dma;
  int64_t t = c->pool_next;
  pool_advance(c, t);
  for (EmuDma **p = &c->pool; *p; p = &(*p)->next)
    if (*p == d) {
      *p = d->next;
      break;
    }
  c->pool_n--;
  d->in_pool = false;
  bool ok = complete_local(c, d, t);
  pool_reshare(c);
  return ok;
}

static void pool_join(EmuChip *c, EmuDma *d, int64_t t) {
  pool_advance(c, t);
  const TileTarget *tg = &c->emu->t;
  d->start = t;
  d->left = (__int128)d->bytes * tg->clock_hz;
  bool hbm_both = d->d.src_space == TILE_SPACE_HBM && d->d.dst_space == TILE_SPACE_HBM;
  d->cap = hbm_both ? tg->hbm_bw : tg->vmem_bw;
  d->in_pool = true;
  d->next = NULL;
  EmuDma **p = &c->pool;
  while (*p) p = &(*p)->next;
  *p = d;
  c->pool_n++;
  pool_reshare(c);
}

void emu_dma_start_next(EmuChip *c) {
  EmuDma *d = c->start_head;
  c->start_head = d->next;
  if (!c->start_head) c->start_tail = NULL;
  pool_join(c, d, d->start);
}

/* ---- issue ---- */

static bool push_out(EmuChip *c, EmuXfer *x) {
  if (c->nout == c->out_cap) {
    int nc = c->out_cap ? c->out_cap * 2 : 16;
    EmuXfer **n = realloc(c->out, (size_t)nc * sizeof *n);
    if (!n) return false;
    c->out = n;
    c->out_cap = nc;
  }
  c->out[c->nout++] = x;
  return true;
}

bool emu_dma_issue(EmuChip *c, const EmuOp *op, int64_t t) {
  Emu *e = c->emu;
  const TileTarget *tg = &e->t;
  /* the record first, so the descriptor is decoded into it (no copy) */
  EmuDma *d = dma_new(c);
  if (!d) return oom(c, t);
  const EmuDesc *desc = &d->d;
  if (!read_desc(c, (int64_t)c->s[op->a], t, &d->d)) {
    dma_release(c, d);
    return false;
  }
  if (c->outstanding >= tg->dma_outstanding) {
    if (e->strict) {
      dma_release(c, d);
      return emu_fault(c, TILE_EMU_FAULT_DMA_LIMIT, t,
                       "dma would be DMA number %d in flight; the target allows %d "
                       "(dma.outstanding)",
                       c->outstanding + 1, tg->dma_outstanding);
    }
  }
  /* the engine free earliest, lowest index on ties (written with selects: which engine
   * wins changes from one DMA to the next, and a branch on it would be mispredicted) */
  int engine = 0;
  int64_t first_free = c->engine_free[0];
  for (int k = 1; k < tg->dma_engines; k++) {
    const int64_t f = c->engine_free[k];
    const bool earlier = f < first_free;
    engine = earlier ? k : engine;
    first_free = earlier ? f : first_free;
  }
  int64_t s0 = (t > first_free ? t : first_free) + tg->dma_issue_cycles;
  c->engine_free[engine] = s0;
  int32_t peer = desc->peer < 0 ? c->id : desc->peer;
  /* the source is read from the start on: a store still landing there is a hazard */
  if (desc->src_space != TILE_SPACE_HBM) {
    EmuStoreRing *ring = emu_store_ring(c, desc->src_space);
    emu_store_prune(ring, t);
    for (int i = 0; i < ring->n; i++) {
      const EmuPendStore *ps = &ring->e[(ring->head + i) & (ring->cap - 1)];
      if (ps->land <= s0 ||
          !region_hits(desc->src_addr, desc->count, desc->src_stride, ps->lo, ps->hi))
        continue;
      if (!e->strict) {
        c->st.hazards_ignored++;
        break;
      }
      dma_release(c, d);
      return emu_fault(c, TILE_EMU_FAULT_HAZARD, t,
                       "dma reads %s bytes from cycle %lld on, before the %s of cycle %lld "
                       "(latency %lld) lands them at cycle %lld",
                       tile_space_name((TileSpace)desc->src_space), (long long)s0,
                       tile_mop_info[ps->op].mnemonic, (long long)ps->issue,
                       (long long)(ps->land - ps->issue), (long long)ps->land);
    }
  }
  d->seq = c->seq++;
  d->bytes = desc->count[0] * desc->count[1] * desc->count[2];
  d->issue = t;
  d->start = s0;
  d->done = 0;
  d->pc = c->pc;
  d->engine = engine;
  d->peer = peer;
  d->in_pool = false;
  d->left = 0;
  d->cap = d->share = 0;
  d->next = NULL;
  c->outstanding++;
  c->st.dmas++;
  emu_dma_inflight(c, +1, t);
  if (peer != c->id) {
    EmuXfer *x = calloc(1, sizeof *x);
    if (!x) return oom(c, t);
    *x = (EmuXfer){.t = s0, .inject = s0, .seq = d->seq, .src = c->id, .dst = peer, .cur = c->id,
                   .kind = XF_DATA, .bytes = d->bytes,
                   .ser = tile_target_xfer_cycles(tg, d->bytes, tg->ici_bw), .desc = *desc,
                   .dma = d};
    if (e->functional) {
      if (!(x->payload = malloc((size_t)d->bytes))) {
        free(x);
        return oom(c, t);
      }
      gather(&c->mem[desc->src_space], desc, x->payload);
    }
    c->st.bytes_sent += d->bytes;
    if (!push_out(c, x)) {
      free(x->payload);
      free(x);
      return oom(c, t);
    }
    return true;
  }
  if (desc->src_space == TILE_SPACE_HBM || desc->dst_space == TILE_SPACE_HBM) {
    /* joins the HBM pool at s0: the start queue (in start order, see EmuChip) */
    if (c->start_tail) c->start_tail->next = d;
    else c->start_head = d;
    c->start_tail = d;
    if (s0 < c->next_event) c->next_event = s0;
    return true;
  }
  EmuEvent ev = {.time = s0 + tile_target_xfer_cycles(tg, d->bytes, tg->vmem_bw), .seq = d->seq,
                 .src = c->id, .kind = EV_DMA_DONE, .ptr = d};
  return emu_chip_push_event(c, &ev);
}

bool emu_sem_signal_remote(EmuChip *c, const EmuOp *op, int64_t t) {
  Emu *e = c->emu;
  int32_t peer = c->s[op->a];
  if (peer < 0 || peer >= e->nchips)
    return emu_fault(c, TILE_EMU_FAULT_BAD_PEER, t,
                     "sem.signal.r names chip %d; the torus has chips 0..%d", peer, e->nchips - 1);
  if (peer == c->id) {
    EmuEvent ev = {.time = t + op->lat, .src = c->id, .seq = c->seq++, .kind = EV_SEM_ADD,
                   .index = op->c, .value = op->imm};
    if (ev.time > c->last_land) c->last_land = ev.time;
    return emu_chip_push_event(c, &ev);
  }
  EmuXfer *x = calloc(1, sizeof *x);
  if (!x) return oom(c, t);
  *x = (EmuXfer){.t = t, .inject = t, .seq = c->seq++, .src = c->id, .dst = peer, .cur = c->id,
                 .kind = XF_SIGNAL, .sem = op->c, .count = op->imm};
  c->st.signals_sent++;
  if (!push_out(c, x)) {
    free(x);
    return oom(c, t);
  }
  return true;
}

/* ---- events ---- */

bool emu_dma_event(EmuChip *c, const EmuEvent *ev) {
  switch (ev->kind) {
  case EV_DMA_DONE: return complete_local(c, ev->ptr, ev->time);
  case EV_REMOTE_DATA: {
    EmuXfer *x = ev->ptr;
    bool ok = true;
    if (x->payload) ok = copy_runs(&c->mem[x->desc.dst_space], &x->desc, NULL, x->payload);
    if (x->desc.dst_sem >= 0) emu_sem_add(c, x->desc.dst_sem, 1);
    c->st.bytes_received += x->bytes;
    free(x->payload);
    free(x);
    return ok ? true : oom(c, ev->time);
  }
  case EV_REMOTE_DONE: dma_finished(c, ev->ptr, ev->time); return true;
  case EV_REMOTE_SIGNAL: emu_sem_add(c, ev->index, ev->value); return true;
  default: return true;
  }
}
