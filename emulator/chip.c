/* One chip: the bundle interpreter, the scoreboard, the scalar core, control flow,
 * semaphores and the chip's event queue.
 *
 * A chip issues one bundle per cycle. Every op of the bundle reads its registers at the
 * issue cycle t; its result lands at t + latency. The scoreboard keeps, per register, the
 * cycle its last write lands: a read at t of a register whose write lands after t is a
 * hazard, and so is a write that would land no later than a write still pending on the
 * same register. In strict mode a hazard stops the run, so a run that goes on never
 * observes a register between issue and landing, and results can be written at issue.
 * In no-strict mode results are queued and land at their cycle, so a read that comes
 * too early sees the old value.
 *
 * Control: a taken branch makes the next bundle issue at t + lat.branch; `loop` repeats
 * the next c bundles at no cost per iteration; sem.wait holds its whole bundle until the
 * semaphore reaches the count; halt ends issue, and the chip is done once its DMAs have
 * completed and its pending writes have landed.
 *
 * The loop runs as four copies specialized on (functional, strict), so timing-only mode
 * touches nothing but the scoreboard, the scalar core and the ops that decide timing. */
#include <stdlib.h>
#include <string.h>

#include "emu_internal.h"

/* ---- the event heap ---- */

bool emu_heap_push(EmuHeap *h, const EmuEvent *e) {
  if (h->n == h->cap) {
    int nc = h->cap ? h->cap * 2 : 64;
    EmuEvent *ne = realloc(h->ev, (size_t)nc * sizeof *ne);
    if (!ne) return false;
    h->ev = ne;
    h->cap = nc;
  }
  int i = h->n++;
  while (i > 0) {
    int parent = (i - 1) / 2;
    if (!emu_event_before(e, &h->ev[parent])) break;
    h->ev[i] = h->ev[parent];
    i = parent;
  }
  h->ev[i] = *e;
  return true;
}

void emu_heap_pop(EmuHeap *h, EmuEvent *out) {
  *out = h->ev[0];
  EmuEvent last = h->ev[--h->n];
  int i = 0;
  for (;;) {
    int l = 2 * i + 1, r = l + 1, m = i;
    const EmuEvent *best = &last;
    if (l < h->n && emu_event_before(&h->ev[l], best)) m = l, best = &h->ev[l];
    if (r < h->n && emu_event_before(&h->ev[r], best)) m = r;
    if (m == i) break;
    h->ev[i] = h->ev[m];
    i = m;
  }
  if (h->n > 0) h->ev[i] = last;
}

static void update_next(EmuChip *c) {
  int64_t n = c->pool_next;
  if (c->heap.n > 0 && c->heap.ev[0].time < n) n = c->heap.ev[0].time;
  if (c->start_head && c->start_head->start < n) n = c->start_head->start;
  c->next_event = n;
}

bool emu_chip_push_event(EmuChip *c, const EmuEvent *ev) {
  if (!emu_heap_push(&c->heap, ev)) {
    c->emu->oom = true;
    return emu_fault(c, TILE_EMU_FAULT_NONE, ev->time, "out of memory queueing an event");
  }
  if (ev->time < c->next_event) c->next_event = ev->time;
  return true;
}

void emu_sem_add(EmuChip *c, int sem, int64_t n) {
  if (sem >= 0 && sem < 64) c->sem[sem] += n;
}

/* ---- setup ---- */

bool emu_chip_init(Emu *e, EmuChip *c, int32_t id, const EmuProgram *p) {
  const TileTarget *t = &e->t;
  memset(c, 0, sizeof *c);
  c->emu = e;
  c->id = id;
  c->prog = p;
  int32_t rest = id;
  for (int k = t->torus_rank - 1; k >= 0; k--) {
    c->coord[k] = rest % t->torus[k];
    rest /= t->torus[k];
  }
  c->state = CHIP_RUN;
  c->loop_end = -1;
  c->row_bytes[0] = (int64_t)t->vreg_lanes * 4;
  c->row_bytes[1] = (int64_t)t->vreg_lanes * 2;
  c->rows = t->vreg_sublanes;
  for (int bf = 0; bf < 2; bf++) {
    c->row_span[bf] = c->rows * c->row_bytes[bf];
    c->vmem_last[bf] = t->vmem_bytes - c->row_span[bf];
  }
  c->next_event = EMU_NEVER;
  c->pool_next = EMU_NEVER;
  c->tracing = e->o.trace;
  c->mxu_push_cycles = t->mxu_push_cycles;
  bool ok = true;
  /* SMEM is small and hot (scalar loads), so it is flat; the others are paged. */
  ok &= emu_mem_init(&c->mem[TILE_SPACE_SMEM], t->smem_bytes, t->smem_bytes <= (16 << 20));
  ok &= emu_mem_init(&c->mem[TILE_SPACE_VMEM], t->vmem_bytes, false);
  ok &= emu_mem_init(&c->mem[TILE_SPACE_HBM], t->hbm_bytes, false);
  if (e->functional) {
    c->v = calloc((size_t)(EMU_SB_V + p->max_vsave) * (size_t)e->vlen, sizeof *c->v);
    c->trbuf = calloc((size_t)t->vreg_lanes * (size_t)t->vreg_lanes, sizeof *c->trbuf);
    ok &= c->v && c->trbuf;
  }
  c->engine_free = calloc((size_t)t->dma_engines, sizeof *c->engine_free);
  c->sig_exec = calloc((size_t)(p->nsigs ? p->nsigs : 1), sizeof *c->sig_exec);
  ok &= c->engine_free && c->sig_exec;
  ok &= emu_mxu_init(c);
  return ok;
}

void emu_chip_free(EmuChip *c) {
  for (int s = 0; s < TILE_SPACE_COUNT; s++) emu_mem_free(&c->mem[s]);
  emu_mxu_free(c);
  emu_dma_free_all(c);
  for (int i = 0; i < c->heap.n; i++) {
    EmuEvent *ev = &c->heap.ev[i];
    if (ev->kind == EV_VREG_LAND) free(ev->ptr);
    if (ev->kind == EV_REMOTE_DATA) {
      EmuXfer *x = ev->ptr;
      free(x->payload);
      free(x);
    }
  }
  free(c->heap.ev);
  for (int i = 0; i < c->nvbuf_free; i++) free(c->vbuf_free[i]);
  free(c->vbuf_free);
  for (int i = 0; i < c->nout; i++) {
    free(c->out[i]->payload);
    free(c->out[i]->dma);
    free(c->out[i]);
  }
  free(c->out);
  free(c->v);
  free(c->trbuf);
  free(c->engine_free);
  free(c->sig_exec);
  free(c->pend[0].e);
  free(c->pend[1].e);
  free(c->tr.r);
  free(c->fault_msg);
  memset(c, 0, sizeof *c);
}

/* ---- events ---- */

static void *vbuf_get(EmuChip *c) {
  if (c->nvbuf_free > 0) return c->vbuf_free[--c->nvbuf_free];
  return malloc((size_t)c->emu->vlen * sizeof(EmuLane));
}

static void vbuf_put(EmuChip *c, void *p) {
  if (c->nvbuf_free == c->vbuf_cap) {
    int nc = c->vbuf_cap ? c->vbuf_cap * 2 : 16;
    void **n = realloc(c->vbuf_free, (size_t)nc * sizeof *n);
    if (!n) {
      free(p);
      return;
    }
    c->vbuf_free = n;
    c->vbuf_cap = nc;
  }
  c->vbuf_free[c->nvbuf_free++] = p;
}

static bool apply_event(EmuChip *c, EmuEvent *ev) {
  switch (ev->kind) {
  case EV_SEM_ADD: emu_sem_add(c, ev->index, ev->value); return true;
  case EV_SREG_LAND: c->s[ev->index] = (int32_t)ev->value; return true;
  case EV_VREG_LAND:
    memcpy(c->v + (size_t)ev->index * (size_t)c->emu->vlen, ev->ptr,
           (size_t)c->emu->vlen * sizeof(EmuLane));
    vbuf_put(c, ev->ptr);
    return true;
  default: return emu_dma_event(c, ev);
  }
}

/* emu_event_before on bare keys (cycle, source chip, sequence). */
static inline bool key_before(int64_t at, int32_t as, uint64_t aq, int64_t bt, int32_t bs,
                              uint64_t bq) {
  if (at != bt) return at < bt;
  if (as != bs) return as < bs;
  return aq < bq;
}

/* Applies every event due at or before t, in (cycle, source chip, sequence) order. Two
 * kinds of this chip's DMA events live outside the heap and take part with key (cycle,
 * this chip, the DMA's sequence): the HBM pool's next completion and the next HBM DMA
 * start. */
static bool process_events(EmuChip *c, int64_t t) {
  enum { FROM_NONE, FROM_HEAP, FROM_POOL, FROM_STARTS };
  while (c->next_event <= t) {
    int from = FROM_NONE;
    int64_t bt = 0;
    int32_t bs = 0;
    uint64_t bq = 0;
    if (c->heap.n > 0) {
      from = FROM_HEAP;
      bt = c->heap.ev[0].time, bs = c->heap.ev[0].src, bq = c->heap.ev[0].seq;
    }
    if (c->pool_next <= t) {
      const uint64_t q = c->pool_next_dma->seq;
      if (from == FROM_NONE || key_before(c->pool_next, c->id, q, bt, bs, bq)) {
        from = FROM_POOL;
        bt = c->pool_next, bs = c->id, bq = q;
      }
    }
    const EmuDma *s = c->start_head;
    if (s && s->start <= t &&
        (from == FROM_NONE || key_before(s->start, c->id, s->seq, bt, bs, bq)))
      from = FROM_STARTS;
    if (from == FROM_POOL) {
      if (!emu_dma_pool_complete(c)) return false;
    } else if (from == FROM_STARTS) {
      emu_dma_start_next(c);
    } else {
      EmuEvent ev;
      emu_heap_pop(&c->heap, &ev);
      if (!apply_event(c, &ev)) return false;
    }
    update_next(c);
  }
  return true;
}

int64_t emu_chip_next(const EmuChip *c) {
  if (c->faulted) return EMU_NEVER;
  if (c->state == CHIP_RUN) return c->t < c->next_event ? c->t : c->next_event;
  return c->next_event;
}

/* ---- the issue loop ---- */

static inline void sreg_set(EmuChip *c, const EmuOp *op, int32_t v, int64_t t, bool strict) {
  if (strict) {
    c->s[op->d] = v;
    return;
  }
  EmuEvent ev = {.time = t + op->lat, .src = c->id, .seq = c->seq++, .kind = EV_SREG_LAND,
                 .index = op->d, .value = v};
  emu_chip_push_event(c, &ev);
}

static inline EmuLane *vreg_dst(EmuChip *c, const EmuOp *op, int64_t t, bool strict) {
  if (strict) return c->v + (size_t)op->d * (size_t)c->emu->vlen;
  void *buf = vbuf_get(c);
  if (!buf) {
    c->emu->oom = true;
    emu_fault(c, TILE_EMU_FAULT_NONE, t, "out of memory");
    return NULL;
  }
  EmuEvent ev = {.time = t + op->lat, .src = c->id, .seq = c->seq++, .kind = EV_VREG_LAND,
                 .index = op->d, .ptr = buf};
  if (!emu_chip_push_event(c, &ev)) {
    free(buf);
    return NULL;
  }
  return buf;
}

static int32_t sra(int32_t a, int n) { return a < 0 ? ~(int32_t)(~(uint32_t)a >> n) : a >> n; }

static bool oom(EmuChip *c, int64_t t) {
  c->emu->oom = true;
  return emu_fault(c, TILE_EMU_FAULT_NONE, t, "out of memory");
}

/* sld / sst: a 32-bit word at S[a] + imm, 4-byte aligned. */
static inline bool smem_op(EmuChip *c, const EmuOp *op, int64_t t, bool strict) {
  int64_t addr = (int64_t)c->s[op->a] + op->imm;
  const char *mn = tile_mop_info[op->op].mnemonic;
  if (addr & 3)
    return emu_fault(c, TILE_EMU_FAULT_MISALIGNED, t, "%s address %lld is not a multiple of 4",
                     mn, (long long)addr);
  if (!emu_check_range(c, TILE_SPACE_SMEM, addr, 4, t, mn)) return false;
  EmuMem *m = &c->mem[TILE_SPACE_SMEM];
  if (op->op == TILE_MOP_SST) {
    int32_t v = c->s[op->d];
    emu_store_note(c, TILE_SPACE_SMEM, addr, addr + 4, t + op->lat, t, op->op);
    return emu_mem_write(m, addr, &v, 4) || oom(c, t);
  }
  if (!emu_store_check(c, TILE_SPACE_SMEM, addr, addr + 4, t, op->op)) return false;
  int32_t v;
  emu_mem_read(m, addr, &v, 4);
  sreg_set(c, op, v, t, strict);
  return true;
}

/* vld / vst (and their bf16 forms): sublane s at S[a] + imm + s * S[b]. The checks run in
 * both modes; the data moves in functional mode only (vpu.c). */
static bool vmem_fault(EmuChip *c, const EmuOp *op, int64_t base, int64_t stride, int64_t t) {
  int64_t esz = op->flags & EMU_OP_BF16 ? 2 : 4;
  if ((base | stride) & (esz - 1))
    return emu_fault(c, TILE_EMU_FAULT_MISALIGNED, t,
                     "%s address %lld with sublane stride %lld is not aligned to its %lld-byte "
                     "elements",
                     tile_mop_info[op->op].mnemonic, (long long)base, (long long)stride,
                     (long long)esz);
  const int64_t rowb = c->row_bytes[(op->flags & EMU_OP_BF16) != 0];
  const int64_t last = base + (c->rows - 1) * stride;
  const int64_t lo = base < last ? base : last, hi = (base > last ? base : last) + rowb;
  return emu_range_fault(c, TILE_SPACE_VMEM, lo, hi - lo, t, tile_mop_info[op->op].mnemonic);
}

static bool vmem_rows(EmuChip *c, const EmuOp *op, int64_t base, int64_t stride, int64_t t) {
  const int64_t rowb = c->row_bytes[(op->flags & EMU_OP_BF16) != 0];
  for (int64_t s = 0; s < c->rows; s++) {
    int64_t at = base + s * stride;
    if (op->flags & EMU_OP_STORE) emu_store_note(c, TILE_SPACE_VMEM, at, at + rowb, t + op->lat, t, op->op);
    else if (!emu_store_check(c, TILE_SPACE_VMEM, at, at + rowb, t, op->op)) return false;
  }
  return true;
}

static inline __attribute__((always_inline)) bool vmem_op(EmuChip *c, const EmuOp *op, int64_t t,
                                                          bool functional, bool strict) {
  const bool bf = (op->flags & EMU_OP_BF16) != 0, store = (op->flags & EMU_OP_STORE) != 0;
  const int64_t rowb = c->row_bytes[bf];
  const int64_t base = (int64_t)c->s[op->a] + op->imm, stride = c->s[op->b];
  const int64_t span = c->row_span[bf];
  /* the common case: aligned rows one after another inside VMEM */
  if (__builtin_expect(stride == rowb && (base & (bf ? 1 : 3)) == 0 && base >= 0 &&
                           base <= c->vmem_last[bf],
                       1)) {
    EmuStoreRing *ring = &c->pend[0];
    if (store) {
      emu_store_note(c, TILE_SPACE_VMEM, base, base + span, t + op->lat, t, op->op);
    } else if (ring->n > 0) {
      emu_store_prune(ring, t);
      if (ring->n > 0 && !emu_store_check_slow(c, TILE_SPACE_VMEM, base, base + span, t, op->op))
        return false;
    }
  } else {
    const int64_t esz = bf ? 2 : 4, last = base + (c->rows - 1) * stride;
    const int64_t lo = base < last ? base : last, hi = (base > last ? base : last) + rowb;
    if (((base | stride) & (esz - 1)) != 0 || lo < 0 || hi > c->mem[TILE_SPACE_VMEM].size)
      return vmem_fault(c, op, base, stride, t);
    if (!vmem_rows(c, op, base, stride, t)) return false;
  }
  if (!functional) return true;
  EmuLane *dst = NULL;
  if (!store && !(dst = vreg_dst(c, op, t, strict))) return false;
  return emu_vmem_move(c, op, base, stride, dst) || oom(c, t);
}

/* What an op did to control flow: nothing, stopped the run (a fault), took its branch
 * (to its imm), or halted the chip. */
enum { OP_NEXT, OP_STOP, OP_TAKEN, OP_HALT };

static inline __attribute__((always_inline)) int take_branch(EmuChip *c, const EmuOp *op,
                                                            int64_t t) {
  int32_t to = op->imm;
  if (__builtin_expect(c->nloops > 0, 0)) {
    const EmuLoop *l = &c->loops[c->nloops - 1];
    if (to < l->start || to > l->end) {
      emu_fault(c, TILE_EMU_FAULT_BAD_PC, t,
                "%s to bundle %d leaves the body (bundles %d..%d) of the loop at bundle %d; a "
                "loop is left only by finishing it",
                tile_mop_info[op->op].mnemonic, to, l->start, l->end, l->start - 1);
      return OP_STOP;
    }
  }
  return OP_TAKEN;
}

static bool push_loop(EmuChip *c, const EmuOp *op, int32_t pc, int64_t t) {
  if (c->nloops == EMU_LOOP_DEPTH)
    return emu_fault(c, TILE_EMU_FAULT_BAD_PC, t,
                     "loop would nest %d deep; loops nest at most %d deep", EMU_LOOP_DEPTH + 1,
                     EMU_LOOP_DEPTH);
  EmuLoop l = {pc + 1, pc + op->body, op->imm};
  if (c->nloops > 0 && l.end > c->loops[c->nloops - 1].end)
    return emu_fault(c, TILE_EMU_FAULT_BAD_PC, t,
                     "the loop body (bundles %d..%d) runs past the end of the enclosing loop's "
                     "body (bundle %d)",
                     l.start, l.end, c->loops[c->nloops - 1].end);
  c->loops[c->nloops++] = l;
  c->loop_end = l.end;
  return true;
}

static bool signal_local(EmuChip *c, const EmuOp *op, int64_t t) {
  EmuEvent ev = {.time = t + op->lat, .src = c->id, .seq = c->seq++, .kind = EV_SEM_ADD,
                 .index = op->c, .value = op->imm};
  if (ev.time > c->last_land) c->last_land = ev.time;
  return emu_chip_push_event(c, &ev);
}

/* One op. Scalar results are computed here; the units' ops go to their files. */
static inline __attribute__((always_inline)) int do_op(EmuChip *c, const EmuOp *op, int32_t pc,
                                                       int64_t t, bool functional, bool strict) {
  const int32_t *s = c->s;
#define A ((uint32_t)s[op->a])
#define B ((uint32_t)s[op->b])
#define IMM ((uint32_t)op->imm)
  int32_t r;
  EmuLane *dst;
  switch (op->op) {
  case TILE_MOP_LI: r = op->imm; break;
  case TILE_MOP_MOV: r = (int32_t)A; break;
  case TILE_MOP_ADD: r = (int32_t)(A + B); break;
  case TILE_MOP_ADDI: r = (int32_t)(A + IMM); break;
  case TILE_MOP_SUB: r = (int32_t)(A - B); break;
  case TILE_MOP_MUL: r = (int32_t)(A * B); break;
  case TILE_MOP_MULI: r = (int32_t)(A * IMM); break;
  case TILE_MOP_AND: r = (int32_t)(A & B); break;
  case TILE_MOP_OR: r = (int32_t)(A | B); break;
  case TILE_MOP_XOR: r = (int32_t)(A ^ B); break;
  case TILE_MOP_SHLI: r = (int32_t)(A << (IMM & 31)); break;
  case TILE_MOP_SHRI: r = (int32_t)(A >> (IMM & 31)); break;
  case TILE_MOP_SRAI: r = sra((int32_t)A, (int)(IMM & 31)); break;
  case TILE_MOP_SLT: r = (int32_t)A < (int32_t)B; break;
  case TILE_MOP_SEQ: r = A == B; break;
  case TILE_MOP_MIN: r = (int32_t)A < (int32_t)B ? (int32_t)A : (int32_t)B; break;
  case TILE_MOP_MAX: r = (int32_t)A > (int32_t)B ? (int32_t)A : (int32_t)B; break;
  case TILE_MOP_CHIPID: r = c->id; break;
  case TILE_MOP_COORD: r = op->imm < TILE_MAX_TORUS_RANK ? c->coord[op->imm] : 0; break;
  case TILE_MOP_SLD:
  case TILE_MOP_SST: return smem_op(c, op, t, strict) ? OP_NEXT : OP_STOP;
  case TILE_MOP_VLD:
  case TILE_MOP_VLDBF:
  case TILE_MOP_VST:
  case TILE_MOP_VSTBF: return vmem_op(c, op, t, functional, strict) ? OP_NEXT : OP_STOP;
  case TILE_MOP_MXU_LDW:
  case TILE_MOP_MXU_PUSH:
  case TILE_MOP_MXU_POP:
  case TILE_MOP_MXU_POPACC:
    if (!functional) return emu_mxu_timing(c, op, t) ? OP_NEXT : OP_STOP;
    dst = NULL;
    if ((op->op == TILE_MOP_MXU_POP || op->op == TILE_MOP_MXU_POPACC) &&
        !(dst = vreg_dst(c, op, t, strict)))
      return OP_STOP;
    return emu_mxu_exec(c, op, t, functional, dst) ? OP_NEXT : OP_STOP;
  case TILE_MOP_XTRPUSH: return emu_xlu_exec(c, op, t, functional, NULL) ? OP_NEXT : OP_STOP;
  case TILE_MOP_XLSUM:
  case TILE_MOP_XLMAX:
  case TILE_MOP_XSSUM:
  case TILE_MOP_XSMAX:
  case TILE_MOP_XLROT:
  case TILE_MOP_XSROT:
  case TILE_MOP_XTRPOP:
    dst = NULL;
    if (functional && !(dst = vreg_dst(c, op, t, strict))) return OP_STOP;
    return emu_xlu_exec(c, op, t, functional, dst) ? OP_NEXT : OP_STOP;
  case TILE_MOP_DMA: return emu_dma_issue(c, op, t) ? OP_NEXT : OP_STOP;
  case TILE_MOP_SIGNAL: return signal_local(c, op, t) ? OP_NEXT : OP_STOP;
  case TILE_MOP_SIGNALR: return emu_sem_signal_remote(c, op, t) ? OP_NEXT : OP_STOP;
  case TILE_MOP_JMP: return take_branch(c, op, t);
  case TILE_MOP_BNZ: return A != 0 ? take_branch(c, op, t) : OP_NEXT;
  case TILE_MOP_BZ: return A == 0 ? take_branch(c, op, t) : OP_NEXT;
  case TILE_MOP_LOOP: return push_loop(c, op, pc, t) ? OP_NEXT : OP_STOP;
  case TILE_MOP_HALT: return OP_HALT;
  default:
    /* the vector ALU (functional mode only: timing mode never lists these ops) */
    if (!(dst = vreg_dst(c, op, t, strict))) return OP_STOP;
    emu_vpu_exec(c, op, dst, t);
    return OP_NEXT;
  }
#undef A
#undef B
#undef IMM
  sreg_set(c, op, r, t, strict);
  return OP_NEXT;
}

/* A read before its producer lands: strict mode reports the first such register (in the
 * bundle's read order) and stops; no-strict mode counts each and reads on. */
static bool read_hazard(EmuChip *c, const EmuBundle *b, int32_t pc, int64_t t, bool strict) {
  const EmuRead *rd = c->prog->reads + b->reads;
  for (int i = 0; i < b->nreads; i++) {
    if (emu_sb_land(c, rd[i].sb) <= t) continue;
    if (strict) {
      c->pc = pc;
      return emu_hazard_read(c, rd[i].sb, rd[i].op, t);
    }
    c->st.hazards_ignored++;
  }
  return true;
}

/* Issues bundles from c->t until t_end, the next event, a stall, a halt or a fault. */
static inline __attribute__((always_inline)) void issue_impl(EmuChip *c, int64_t t_end,
                                                             const bool functional,
                                                             const bool strict) {
  const EmuProgram *p = c->prog;
  const EmuBundle *bundles = p->bundles;
  const EmuOp *ops = functional ? p->ops : p->tops;
  const EmuRead *reads = p->reads;
  const EmuWrite *writes = p->writes;
  const size_t vlen = (size_t)c->emu->vlen;
  int64_t *sbd = c->sb;
  int64_t t = c->t;
  int32_t pc = c->pc;
  /* the latest landing of the writes no check looks at, kept in a register here (the
   * ops' own updates of last_land go through memory) and merged when the loop ends */
  int64_t wland = c->last_wland;
  while (t < t_end) {
    /* Events due now are applied here, as emu_chip_run would before issuing, without
     * leaving the loop (a DMA's events come every few bundles in DMA-heavy code).
     * Events never change the chip's state, so issue goes on after them. */
    if (__builtin_expect(t >= c->next_event, 0)) {
      c->t = t;
      c->pc = pc;
      if (!process_events(c, t)) break;
    }
    if (__builtin_expect((uint32_t)pc >= (uint32_t)p->nbundles, 0)) {
      c->pc = pc;
      emu_fault(c, TILE_EMU_FAULT_BAD_PC, t,
                "control ran past the program's last bundle (%d) without a halt",
                p->nbundles - 1);
      break;
    }
    const EmuBundle *b = &bundles[pc];
    if (__builtin_expect(b->flags & EMU_B_WAIT, 0)) {
      if (c->sem[b->wait_sem] < b->wait_count) {
        c->state = CHIP_WAIT;
        c->wait_since = t;
        break;
      }
      c->sem[b->wait_sem] -= b->wait_count;
    }
    /* every read of the bundle happens now, before any of its writes: one comparison
     * against the latest landing among them */
    const EmuRead *rd = reads + b->reads;
    const int64_t tt = t << 8 | 0xff; /* sb entries above this land after t */
    int64_t late0 = 0, late1 = 0;
    for (int i = 0, n = b->nreads; i < n; i += 2) { /* n is even (padded) */
      const int64_t r0 = sbd[rd[i].sb], r1 = sbd[rd[i + 1].sb];
      late0 = r0 > late0 ? r0 : late0;
      late1 = r1 > late1 ? r1 : late1;
    }
    if (__builtin_expect((late0 > tt) | (late1 > tt), 0) && !read_hazard(c, b, pc, t, strict))
      break;
    if (__builtin_expect(b->nsaves != 0, 0)) {
      const EmuSave *sv = p->saves + b->saves;
      for (int i = 0; i < b->nsaves; i++) {
        if (!sv[i].vector) c->s[sv[i].slot] = c->s[sv[i].reg];
        else if (functional)
          memcpy(c->v + sv[i].slot * vlen, c->v + sv[i].reg * vlen, vlen * sizeof(EmuLane));
      }
    }
    if (b->nwtrk != 0) { /* many bundles keep no scoreboard entry at all */
      const EmuWrite *wr = writes + b->writes, *wchk = wr + b->nwchk, *wend = wr + b->nwtrk;
      const int64_t t8 = t << 8;
      for (; wr < wchk; wr++) {
        const int64_t old = sbd[wr->sb];
        int64_t enc = t8 + wr->enc;
        /* old still pending, and this write would land no later than it */
        if (__builtin_expect(old > tt, 0) && (enc & ~(int64_t)0xff) <= (old | 0xff)) {
          if (strict) {
            c->pc = pc;
            emu_hazard_waw(c, wr->sb, wr->op, t + wr->lat, t);
            goto stop;
          }
          c->st.hazards_ignored++;
          enc = (old & ~(int64_t)0xff) | wr->op; /* lands with the later write */
        }
        sbd[wr->sb] = enc;
      }
      for (; wr < wend; wr++) sbd[wr->sb] = t8 + wr->enc; /* proven to land in order */
    }
    /* writes no check ever looks at: only when the last of them lands (halt waits) */
    wland = t + b->wlat > wland ? t + b->wlat : wland;
    const EmuOp *op = ops + (functional ? b->ops : b->tops);
    const int nops = functional ? b->nops : b->ntops;
    c->pc = pc;
    int32_t next = pc + 1;
    int64_t delay = 1;
    bool halted = false, taken = false;
    for (int i = 0; i < nops; i++) {
      int r = do_op(c, &op[i], pc, t, functional, strict);
      if (__builtin_expect(r == OP_NEXT, 1)) continue;
      if (r == OP_STOP) goto stop;
      if (r == OP_HALT) halted = true;
      else {
        next = op[i].imm;
        delay = c->emu->t.latency[TILE_LAT_BRANCH];
        taken = true;
      }
    }
    c->sig_exec[b->sig]++;
    if (c->tracing) emu_trace_bundle(&c->tr, b->units, p->sig_counts[b->sig], t);
    if (__builtin_expect(halted, 0)) {
      c->state = CHIP_HALTING;
      c->halt_cycle = t + 1;
      t = t + 1;
      break;
    }
    if (!taken) {
      /* the end of a loop body: back to its start, or out of the loop (and maybe the
       * loops around it that end at the same bundle) */
      while (pc == c->loop_end) {
        EmuLoop *l = &c->loops[c->nloops - 1];
        if (--l->left > 0) {
          next = l->start;
          break;
        }
        c->nloops--;
        c->loop_end = c->nloops > 0 ? c->loops[c->nloops - 1].end : -1;
      }
    } else {
      c->st.branch_bubbles += delay - 1;
    }
    t += delay;
    pc = next;
  }
stop:
  c->t = t;
  c->last_wland = wland;
  if (!c->faulted) c->pc = pc;
}

static void issue_fs(EmuChip *c, int64_t e) { issue_impl(c, e, true, true); }
static void issue_fn(EmuChip *c, int64_t e) { issue_impl(c, e, true, false); }
static void issue_ts(EmuChip *c, int64_t e) { issue_impl(c, e, false, true); }
static void issue_tn(EmuChip *c, int64_t e) { issue_impl(c, e, false, false); }

static void finish_if_drained(EmuChip *c) {
  if (c->state != CHIP_HALTING || c->outstanding > 0) return;
  int64_t done = c->halt_cycle;
  if (c->last_land > done) done = c->last_land;
  if (c->last_wland > done) done = c->last_wland;
  for (int r = 0; r < EMU_NSB; r++)
    if (emu_sb_land(c, r) > done) done = emu_sb_land(c, r);
  if (c->dma_last_done > done) done = c->dma_last_done;
  c->done_cycle = done;
  c->state = CHIP_DONE;
}

void emu_chip_run(EmuChip *c, int64_t t_end) {
  const Emu *e = c->emu;
  void (*issue)(EmuChip *, int64_t) =
      e->functional ? (e->strict ? issue_fs : issue_fn) : (e->strict ? issue_ts : issue_tn);
  while (!c->faulted) {
    if (c->next_event <= c->t && !process_events(c, c->t)) return;
    if (c->state == CHIP_RUN) {
      if (c->t >= t_end) return;
      issue(c, t_end);
      continue;
    }
    if (c->state == CHIP_WAIT) {
      int s = c->prog->bundles[c->pc].wait_sem;
      if (c->sem[s] >= c->prog->bundles[c->pc].wait_count) {
        int64_t stalled = c->t - c->wait_since;
        c->st.stall += stalled;
        if (c->tracing && stalled > 0) {
          EmuTraceRec r = {.start = c->wait_since, .end = c->t, .a = s,
                           .b = c->prog->bundles[c->pc].wait_count, .track = TR_SEM_WAIT,
                           .kind = TK_WAIT};
          emu_trace_add(&c->tr, &r);
        }
        c->state = CHIP_RUN;
        continue;
      }
    }
    finish_if_drained(c);
    if (c->next_event >= t_end) {
      if (c->t < t_end) c->t = t_end;
      return;
    }
    if (c->next_event > c->t) c->t = c->next_event;
  }
}
