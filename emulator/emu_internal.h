/* The emulator's internal interface, shared by its files (one job each):
 *
 *   emu.c      the API: create, bind data, read results, free
 *   decode.c   validation of an object against a target, pre-decoding into bundles
 *   memory.c   HBM/VMEM/SMEM storage (lazily paged) and bounds-checked access
 *   chip.c     one chip's cycle loop: issue, scoreboard, scalar core, control, events
 *   vpu.c      vector ALU, vector loads and stores (functional)
 *   vmath.c    transcendentals: our own f32 exp, log, tanh, rsqrt, rcp (vectorized)
 *   mxu.c      matrix units: weights, pushes, result FIFOs, bf16 x bf16 -> f32
 *   xlu.c      cross-lane unit: lane/sublane reductions, rotations, transpose buffer
 *   hazard.c   hazard and fault reports (the sentences), store-in-flight tracking
 *   dma.c      DMA descriptors, engines, HBM bandwidth sharing, local completion
 *   network.c  torus routing, link arbitration, remote delivery
 *   run.c      windows over all chips, host threads, barriers, deadlock and watchdog
 *   stats.c    counters into TileEmuStats, the printed table
 *   trace.c    trace records and the Chrome trace-event JSON
 *
 * Time: every chip has its own cycle counter. Chips run independently inside windows of
 * W cycles (W <= the network's one-hop latency, so nothing one chip does in a window can
 * reach another chip inside it); between windows the network moves transfers and hands
 * their deliveries to the chips as events. Events on a chip are applied in
 * (cycle, source chip, sequence) order. */
#ifndef TILE_EMU_INTERNAL_H
#define TILE_EMU_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "tile/emu.h"
#include "tile/isa.h"

#define EMU_NEVER INT64_MAX
/* The longest run: a cycle shifted left by 8 (the scoreboard's encoding) plus the
 * longest latency must fit in 63 bits. */
#define EMU_MAX_CYCLES (INT64_C(1) << 52)

/* Scoreboard entries: s0..s63 then v0..v63, then one that always reads as landed (reads
 * are padded to an even count with it, so the read check runs two at a time). */
enum { EMU_SB_V = 64, EMU_NSB = 128, EMU_SB_ZERO = 128, EMU_NSB_ALL = 129 };
/* Register copies a bundle may need (see EmuSave). */
enum { EMU_SAVE_MAX = 4 * TILE_BUNDLE_SLOTS };
enum { EMU_LOOP_DEPTH = 4 };
enum { EMU_NO_REG = 0xff };

/* ---- the pre-decoded program ---- */

enum {
  EMU_OP_TIMING = 1, /* also executed in timing mode (affects control, addresses, units) */
  EMU_OP_BF16 = 2,   /* vld.bf16 / vst.bf16 */
  EMU_OP_STORE = 4,  /* vst / vst.bf16 */
};

typedef struct EmuOp {
  uint8_t op;         /* TileMop */
  uint8_t d, a, b, c; /* fields; a read may point at a save slot (>= 64) */
  uint8_t flags;
  uint8_t slot;       /* TileSlot */
  int32_t imm;
  int32_t lat;        /* the op's latency class, resolved for the target */
  int32_t body;       /* loop: bundles in the body (the wide field a:b:c) */
} EmuOp;

/* A register read by a bundle, checked against the scoreboard at issue. */
typedef struct EmuRead {
  uint8_t sb;    /* scoreboard index */
  uint8_t op;    /* the reading op (TileMop), for the message */
} EmuRead;

/* A register a bundle writes: its value lands lat cycles after issue. enc is what the
 * scoreboard entry becomes, less the issue cycle: (lat << 8) | op (see EmuChip.sb). */
typedef struct EmuWrite {
  int64_t enc;
  uint8_t sb;
  uint8_t op;
  int32_t lat;
} EmuWrite;

/* Ops of a bundle run one after another in slot order, but all of them read their
 * registers at issue. When a later op reads a register an earlier op of the same bundle
 * writes, the old value is copied to a save slot first and the read goes there. */
typedef struct EmuSave {
  uint8_t vector; /* 1: v register, 0: s register */
  uint8_t reg;
  uint8_t slot;   /* index >= 64 in the register file */
} EmuSave;

enum {
  EMU_B_WAIT = 1,  /* holds a sem.wait: the bundle issues only when it is satisfied */
};

/* reads hold only what emu_decode could not prove safe for every run (see prove_hazards
 * in decode.c). Writes come in three groups: the first nwchk need the write-order check;
 * up to nwtrk update the scoreboard (their registers are checked somewhere); the rest
 * touch nothing, and wlat, their longest latency, keeps the chip's last landing. */
typedef struct EmuBundle {
  uint32_t ops, tops, reads, writes, saves; /* first index into the program's arrays */
  uint8_t nops, ntops, nreads, nwrites, nsaves, nwchk, nwtrk;
  int32_t wlat;
  uint8_t flags;
  uint8_t units;   /* bit per TileSlot with an op (trace) */
  uint8_t wait_sem;
  int32_t wait_count;
  uint16_t sig;    /* index of the bundle's slot-count signature */
} EmuBundle;

typedef struct EmuProgram {
  int32_t nbundles;
  EmuBundle *bundles;
  EmuOp *ops, *tops;
  EmuRead *reads;
  EmuWrite *writes;
  EmuSave *saves;
  int nsigs;
  uint8_t (*sig_counts)[TILE_SLOT_COUNT]; /* ops per slot kind, per signature */
  int32_t *sig_mxu_pushes;                /* mxu.push ops per signature */
  int max_vsave, max_ssave;               /* save slots the program needs */
} EmuProgram;

/* ---- memory ---- */

enum { EMU_PAGE_BITS = 16, EMU_PAGE = 1 << EMU_PAGE_BITS, EMU_L2_BITS = 10 };

/* A space of one chip. Small spaces are one flat block; large ones are paged in two
 * levels and pages appear on first write (untouched bytes read as zero), so a 16 GB
 * HBM costs only what a program touches. */
typedef struct EmuMem {
  int64_t size;
  uint8_t *flat;      /* flat spaces (allocated on first write) */
  uint8_t ***dir;     /* paged spaces: dir[hi][lo] -> page */
  int64_t ndir;
  bool paged;
} EmuMem;

bool emu_mem_init(EmuMem *m, int64_t size, bool flat);
void emu_mem_free(EmuMem *m);
/* Unchecked (callers check bounds first). Return false only when memory runs out. */
bool emu_mem_read(const EmuMem *m, int64_t addr, void *dst, size_t n);
bool emu_mem_write(EmuMem *m, int64_t addr, const void *src, size_t n);
/* A pointer to n bytes at addr when they lie in one allocated block, else NULL. */
uint8_t *emu_mem_span(EmuMem *m, int64_t addr, size_t n, bool for_write);

/* ---- events ---- */

typedef enum EmuEventKind {
  EV_SEM_ADD,      /* value added to semaphore `index` */
  EV_SREG_LAND,    /* non-strict: scalar register `index` := value */
  EV_VREG_LAND,    /* non-strict: vector register `index` := ptr's words */
  EV_DMA_DONE,     /* a local DMA that does not use HBM completes */
  EV_REMOTE_DATA,  /* a remote DMA's bytes arrive here */
  EV_REMOTE_DONE,  /* a remote DMA this chip started has been delivered */
  EV_REMOTE_SIGNAL /* a remote sem.signal.r arrives */
} EmuEventKind;

typedef struct EmuEvent {
  int64_t time;
  uint64_t seq;
  int32_t src;
  uint8_t kind;
  int32_t index;
  int64_t value;
  void *ptr;
} EmuEvent;

typedef struct EmuHeap {
  EmuEvent *ev;
  int n, cap;
} EmuHeap;

bool emu_heap_push(EmuHeap *h, const EmuEvent *e);
void emu_heap_pop(EmuHeap *h, EmuEvent *out);
/* f32 <-> bits, and a select written on bits: the element loops of the vector unit and
 * the transcendentals stay branch-free this way, so the compiler vectorizes them. */
static inline uint32_t emu_f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
static inline float emu_f32_from_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static inline uint32_t emu_select_bits(int c, uint32_t a, uint32_t b) {
  const uint32_t m = -(uint32_t)c;
  return (a & m) | (b & ~m);
}

static inline bool emu_event_before(const EmuEvent *a, const EmuEvent *b) {
  if (a->time != b->time) return a->time < b->time;
  if (a->src != b->src) return a->src < b->src;
  return a->seq < b->seq;
}

/* ---- DMA ---- */

/* A descriptor as the `dma` op reads it from SMEM (docs/emulator.md). */
typedef struct EmuDesc {
  uint8_t src_space, dst_space;
  int64_t src_addr, dst_addr;
  int64_t count[3];  /* count[0] bytes per run; count[1], count[2] runs */
  int64_t src_stride[3], dst_stride[3]; /* [1], [2]: byte strides of the outer dims */
  int32_t peer;      /* -1: this chip */
  int32_t src_sem, dst_sem; /* -1: none */
} EmuDesc;

enum { EMU_DESC_WORDS = 16 };

typedef struct EmuDma {
  EmuDesc d;
  uint64_t seq;
  int64_t bytes;
  int64_t issue, start, done;
  int32_t pc, engine, peer; /* peer: destination chip (this chip for local DMAs) */
  bool in_pool;
  __int128 left;     /* HBM pool: work left, in bytes x clock_hz */
  int64_t cap;       /* most work per cycle (the other side's bandwidth) */
  int64_t share;     /* work per cycle at the current sharing */
  struct EmuDma *next; /* in the pool, or the free list */
} EmuDma;

/* ---- matrix and cross-lane units ---- */

typedef struct EmuMxuResult {
  int64_t ready;
  int64_t push;   /* issue cycle of the push */
  float *data;    /* sublanes x dim (functional) */
} EmuMxuResult;

typedef struct EmuMxu {
  float *w;          /* dim x dim, bf16-rounded, as f32 (functional) */
  int64_t w_ready;   /* pushes may use the weights from this cycle */
  int64_t w_issue;   /* the last mxu.ldw's cycle (messages) */
  int64_t last_push; /* cycle of the previous push; busy until + push_cycles */
  EmuMxuResult *fifo;
  int head, count, cap;
  float **spare;     /* result buffers to reuse */
  int nspare, spare_cap;
} EmuMxu;

/* ---- trace records ---- */

typedef enum EmuTrack {
  TR_SCALAR, TR_VECTOR, TR_VLOAD, TR_VSTORE, TR_MXU_SLOT, TR_XLU, TR_DMA_SLOT, TR_BRANCH,
  TR_SEM_WAIT, /* then one track per MXU unit, then DMA lanes */
  TR_MXU0
} EmuTrack;

typedef struct EmuTraceRec {
  int64_t start, end;
  int64_t a, b;   /* meaning depends on kind */
  int32_t track;  /* EmuTrack, TR_MXU0 + unit, or -1 - dma lane (assigned when written) */
  uint8_t kind;   /* EmuTraceKind */
} EmuTraceRec;

typedef enum EmuTraceKind {
  TK_UNIT,   /* a run of consecutive issue cycles on a slot kind: a = ops */
  TK_PUSH,   /* an MXU push: a = unit */
  TK_WAIT,   /* a sem.wait stall: a = semaphore, b = count */
  TK_DMA,    /* a DMA from issue to completion: a = bytes, b = peer (-1 local) */
  TK_LINK,   /* a link serializing: a = bytes, b = source chip */
} EmuTraceKind;

typedef struct EmuTraceBuf {
  EmuTraceRec *r;
  int64_t n, cap;
  int64_t run_start[TILE_SLOT_COUNT], run_end[TILE_SLOT_COUNT], run_ops[TILE_SLOT_COUNT];
} EmuTraceBuf;

bool emu_trace_add(EmuTraceBuf *b, const EmuTraceRec *r);
/* Extends the per-unit runs with a bundle issued at t (units: bit per slot kind). */
void emu_trace_bundle(EmuTraceBuf *b, uint8_t units, const uint8_t *counts, int64_t t);
void emu_trace_flush_runs(EmuTraceBuf *b);

/* ---- chips ---- */

typedef enum EmuChipState {
  CHIP_RUN,     /* issuing bundles */
  CHIP_WAIT,    /* stalled in sem.wait */
  CHIP_HALTING, /* halted; DMAs still in flight */
  CHIP_DONE,
} EmuChipState;

typedef struct EmuLoop {
  int32_t start, end; /* body: bundles start..end */
  int64_t left;       /* iterations still to run, this one included */
} EmuLoop;

typedef union EmuLane {
  float f;
  uint32_t u;
  int32_t i;
} EmuLane;

typedef struct TileEmu Emu;

typedef struct EmuPendStore {
  int64_t lo, hi, land, issue;
  uint8_t space, op;
} EmuPendStore;

typedef struct EmuStoreRing {
  EmuPendStore *e;
  int head, n, cap; /* cap is a power of two */
} EmuStoreRing;

typedef struct EmuChip {
  Emu *emu;
  int32_t id;
  int32_t coord[TILE_MAX_TORUS_RANK];
  const EmuProgram *prog;

  /* core */
  int64_t t;          /* the cycle the chip stands at */
  int32_t pc;
  uint8_t state;
  int32_t s[EMU_SB_V + EMU_SAVE_MAX];
  EmuLane *v;         /* (64 + saves) x vlen (functional) */
  /* The scoreboard: per register, (the cycle its last write lands << 8) | the op that
   * wrote it. A read at t is early when sb > (t << 8 | 255): one comparison per read, one
   * store per write. */
  int64_t sb[EMU_NSB_ALL];
  int64_t last_land;           /* the latest landing of a store or a semaphore signal */
  int64_t last_wland;          /* ... of a register write no check looks at (chip.c) */
  EmuLoop loops[EMU_LOOP_DEPTH];
  int nloops;
  int32_t loop_end;   /* the innermost loop's last bundle, -1 outside loops */
  int64_t row_bytes[2]; /* one sublane in VMEM: f32 rows, bf16 rows */
  int64_t rows;         /* sublanes */
  int64_t row_span[2];  /* a whole register's rows, back to back: f32, bf16 */
  int64_t vmem_last[2]; /* the last VMEM address such a span fits at (< 0: none) */
  int64_t halt_cycle;
  int64_t done_cycle;
  int64_t wait_since;
  int64_t sem[64];

  /* memories */
  EmuMem mem[TILE_SPACE_COUNT];

  /* stores still on their way to memory, per space (VMEM, SMEM): rings in issue order,
   * so also in landing order (a space's store latency is fixed) */
  EmuStoreRing pend[2];

  /* units */
  EmuLane *scratch;   /* one register's worth, for ops that cannot work in place */
  EmuMxu *mxu;
  int64_t mxu_push_cycles; /* the target's, at hand for the issue loop */
  float *trbuf;       /* lanes x lanes transpose buffer (functional) */
  int64_t tr_ready, tr_issue;

  /* DMA */
  bool desc_cached;      /* the last valid descriptor read, and its words (dma.c) */
  int32_t desc_words[EMU_DESC_WORDS];
  EmuDesc desc_cache;
  int64_t *engine_free;
  int32_t outstanding;
  EmuDma *pool;          /* HBM-sharing DMAs, in start order */
  int32_t pool_n;
  int64_t pool_t;        /* the pool's progress is computed up to this cycle */
  int64_t pool_next;     /* the earliest completion in the pool */
  EmuDma *pool_next_dma;
  /* HBM DMAs issued and not yet started, a queue linked through `next`: DMAs start in
   * issue order (a later dma never starts earlier: engines free up in order), so the
   * queue is in (cycle, sequence) order and needs no heap (dma.c) */
  EmuDma *start_head, *start_tail;
  int64_t div_left, div_share, div_cycles; /* the pool's last division (dma.c) */
  EmuDma *free_dma;
  int64_t dma_busy_since; /* start of the current in-flight stretch */
  int32_t inflight;       /* DMAs between issue and completion */
  int64_t dma_last_done;  /* the latest completion of a DMA this chip started */

  /* events */
  EmuHeap heap;
  int64_t next_event;   /* min(heap top, pool_next, start_head's start) */
  uint64_t seq;         /* numbers this chip's events and transfers */
  void **vbuf_free;     /* non-strict landing buffers to reuse */
  int nvbuf_free, vbuf_cap;

  /* outgoing network transfers of the current window */
  struct EmuXfer **out;
  int nout, out_cap;

  /* statistics */
  int64_t *sig_exec;    /* bundles issued per signature */
  TileEmuChipStats st;

  /* trace */
  bool tracing;
  EmuTraceBuf tr;

  /* fault (the first one stops the chip) */
  bool faulted;
  TileEmuFaultKind fault_kind;
  int32_t fault_pc;
  int64_t fault_cycle;
  char *fault_msg;
} EmuChip;

/* ---- the network ---- */

typedef enum EmuXferKind { XF_DATA, XF_SIGNAL } EmuXferKind;

typedef struct EmuXfer {
  int64_t t;       /* the time of its next step (arrival at the next link) */
  int64_t inject;
  uint64_t seq;
  int32_t src, dst, cur;
  uint8_t kind;
  int64_t bytes, ser;
  int32_t hops;
  /* XF_DATA */
  EmuDesc desc;
  uint8_t *payload; /* functional mode */
  EmuDma *dma;      /* the source chip's record */
  /* XF_SIGNAL */
  int32_t sem;
  int64_t count;
} EmuXfer;

typedef struct EmuNet {
  int32_t nlinks;
  int64_t hop;         /* cycles per hop */
  int64_t *link_free;
  TileEmuLinkStats *links;
  EmuXfer **heap;
  int n, cap;
  EmuTraceBuf tr;      /* link occupancy (track = link index) */
  int64_t last_delivery;
} EmuNet;

bool emu_net_init(Emu *e);
void emu_net_free(Emu *e);
/* Takes every chip's outgoing transfers and moves all network steps before t_end,
 * handing deliveries to the chips. Serial (between windows). */
bool emu_net_step(Emu *e, int64_t t_end);
int64_t emu_net_next(const Emu *e);
int32_t emu_link_index(const Emu *e, int32_t chip, int axis, int dir);

/* ---- the whole machine ---- */

/* A reusable barrier whose party count may shrink while threads wait at it (if a host
 * thread cannot be started, the run goes on with those that did). */
typedef struct EmuBarrier {
  pthread_mutex_t m;
  pthread_cond_t cv;
  int parties, arrived;
  unsigned gen;
} EmuBarrier;

struct TileEmu {
  TileTarget t;
  TileEmuOptions o;
  bool functional, strict;
  int32_t nchips;
  int32_t vlen;         /* words per vector register */
  int64_t watchdog;
  int64_t window;       /* W */
  EmuProgram *progs;    /* one per distinct code block */
  int nprogs;
  EmuChip *chips;
  TileObjSymbol *syms;
  int nsyms;
  EmuNet net;
  bool ran;
  TileEmuStatus status;
  TileEmuFault fault;
  char *fault_msg;
  int64_t end_cycle;
  TileEmuChipStats *chip_stats;
  TileEmuLinkStats *link_stats; /* the links that exist, in (chip, axis, direction) order */
  int32_t nlink_stats;
  char err[512];
  /* threads */
  int nthreads;
  EmuBarrier start_bar, end_bar;
  int64_t win_end;
  bool stop;
  bool oom;             /* a worker ran out of memory */
};

void emu_set_error(Emu *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static inline int64_t emu_sb_land(const EmuChip *c, int r) { return c->sb[r] >> 8; }
static inline uint8_t emu_sb_op(const EmuChip *c, int r) { return (uint8_t)(c->sb[r] & 0xff); }

/* decode.c */
bool emu_check_target(const TileTarget *t, TileDiag *d);
/* prove: drop the run-time checks the static analysis proves unnecessary. */
bool emu_decode(const TileTarget *t, const TileObjCode *code, bool prove, EmuProgram *p,
                TileDiag *d);
void emu_program_free(EmuProgram *p);

/* chip.c */
bool emu_chip_init(Emu *e, EmuChip *c, int32_t id, const EmuProgram *p);
void emu_chip_free(EmuChip *c);
/* Runs the chip until its cycle reaches t_end or nothing can happen before t_end. */
void emu_chip_run(EmuChip *c, int64_t t_end);
/* The earliest cycle at which the chip can do anything (EMU_NEVER if never). */
int64_t emu_chip_next(const EmuChip *c);
bool emu_chip_push_event(EmuChip *c, const EmuEvent *ev);
void emu_sem_add(EmuChip *c, int sem, int64_t n);

/* hazard.c: reports (they set the chip's fault and return false) */
bool emu_fault(EmuChip *c, TileEmuFaultKind k, int64_t cycle, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
bool emu_hazard_read(EmuChip *c, int sb, uint8_t reader, int64_t t);
bool emu_hazard_waw(EmuChip *c, int sb, uint8_t writer, int64_t land, int64_t t);
/* Stores whose data is still on its way: a load of their bytes before they land is a
 * hazard. */

bool emu_store_check_slow(EmuChip *c, uint8_t space, int64_t lo, int64_t hi, int64_t t,
                          uint8_t op);
static inline EmuStoreRing *emu_store_ring(EmuChip *c, uint8_t space) {
  return &c->pend[space == TILE_SPACE_SMEM];
}
static inline bool emu_store_check(EmuChip *c, uint8_t space, int64_t lo, int64_t hi, int64_t t,
                                   uint8_t op) {
  return emu_store_ring(c, space)->n == 0 || emu_store_check_slow(c, space, lo, hi, t, op);
}
/* Drops the stores of a ring that have landed by cycle t. */
static inline void emu_store_prune(EmuStoreRing *r, int64_t t) {
  while (r->n > 0 && r->e[r->head].land <= t) {
    r->head = (r->head + 1) & (r->cap - 1);
    r->n--;
  }
}
bool emu_store_grow(EmuStoreRing *r);
static inline void emu_store_note(EmuChip *c, uint8_t space, int64_t lo, int64_t hi, int64_t land,
                                  int64_t t, uint8_t op) {
  if (land > c->last_land) c->last_land = land; /* a halted chip waits for its stores too */
  EmuStoreRing *r = emu_store_ring(c, space);
  emu_store_prune(r, t);
  if (r->n == r->cap && !emu_store_grow(r)) return; /* only the hazard check is lost */
  r->e[(r->head + r->n) & (r->cap - 1)] = (EmuPendStore){lo, hi, land, t, space, op};
  r->n++;
}
bool emu_range_fault(EmuChip *c, uint8_t space, int64_t addr, int64_t n, int64_t t,
                     const char *what);
/* addr .. addr+n-1 inside the space, else an out-of-bounds fault. */
static inline bool emu_check_range(EmuChip *c, uint8_t space, int64_t addr, int64_t n,
                                   int64_t t, const char *what) {
  int64_t size = c->mem[space].size;
  if (addr >= 0 && n >= 0 && addr <= size && n <= size - addr) return true;
  return emu_range_fault(c, space, addr, n, t, what);
}
const char *emu_reg_name(int sb, char *buf, size_t n);

/* vpu.c */
void emu_vpu_exec(EmuChip *c, const EmuOp *op, EmuLane *dst, int64_t t);
/* Moves a vector load's or store's data (the checks are chip.c's); false: out of memory. */
bool emu_vmem_move(EmuChip *c, const EmuOp *op, int64_t base, int64_t stride, EmuLane *dst);
/* Rounds to bf16 precision, nearest even (NaNs stay NaN, quieted). Inline and free of
 * branches, so the MXU's loops over a register vectorize. */
static inline float emu_bf16_round(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  const uint32_t nan = (u | 0x00400000u) & 0xffff0000u;
  const uint32_t num = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  u = (u & 0x7fffffffu) > 0x7f800000u ? nan : num;
  memcpy(&x, &u, 4);
  return x;
}
uint16_t emu_bf16_bits(float x);
float emu_bf16_widen(uint16_t b);

/* vmath.c: the transcendentals, bit-identical on every host and every vector width */
typedef enum EmuMath {
  EMU_MATH_EXP, EMU_MATH_LOG, EMU_MATH_TANH, EMU_MATH_RSQRT, EMU_MATH_RCP, EMU_MATH_COUNT
} EmuMath;
typedef enum EmuMathIsa { EMU_ISA_BASE, EMU_ISA_AVX2, EMU_ISA_AVX512 } EmuMathIsa;
/* y[i] = f(x[i]) for n lanes; x and y may overlap. */
void emu_vmath(EmuMath f, const float *x, float *y, int n);
/* The same with one instruction set (tests); false when the host lacks it. */
bool emu_vmath_isa(EmuMath f, EmuMathIsa isa, const float *x, float *y, int n);
/* One lane, scalar code. */
float emu_vmath1(EmuMath f, float x);

/* mxu.c */
bool emu_mxu_init(EmuChip *c);
void emu_mxu_free(EmuChip *c);
bool emu_mxu_exec(EmuChip *c, const EmuOp *op, int64_t t, bool functional, EmuLane *dst);
/* Timing-only mode's MXU ops, inlined into the issue loop: the bookkeeping of
 * emu_mxu_exec without values. Anything out of the ordinary (a hazard, a full FIFO, a
 * trace record) goes to emu_mxu_exec, so both give the same results. */
static inline bool emu_mxu_timing(EmuChip *c, const EmuOp *op, int64_t t) {
  EmuMxu *m = &c->mxu[op->c];
  if (op->op == TILE_MOP_MXU_PUSH) {
    if (__builtin_expect(t < m->last_push + c->mxu_push_cycles || t < m->w_ready ||
                             m->count == m->cap || c->tracing,
                         0))
      return emu_mxu_exec(c, op, t, false, NULL);
    m->fifo[(m->head + m->count) & (m->cap - 1)] = (EmuMxuResult){t + op->lat, t, NULL};
    m->count++;
    m->last_push = t;
    return true;
  }
  if (op->op == TILE_MOP_MXU_LDW) return emu_mxu_exec(c, op, t, false, NULL);
  /* mxu.pop, mxu.popacc: the oldest result, ready */
  if (__builtin_expect(m->count == 0 || m->fifo[m->head].ready > t, 0))
    return emu_mxu_exec(c, op, t, false, NULL);
  m->head = (m->head + 1) & (m->cap - 1);
  m->count--;
  return true;
}
/* The kernel: out[i][j] = sum over k in order of x[i][k] * w[k][j], rows x dim x dim. */
void emu_mxu_kernel(const float *x, const float *w, float *out, int rows, int dim);

/* xlu.c */
bool emu_xlu_exec(EmuChip *c, const EmuOp *op, int64_t t, bool functional, EmuLane *dst);

/* dma.c */
bool emu_dma_issue(EmuChip *c, const EmuOp *op, int64_t t);
bool emu_dma_event(EmuChip *c, const EmuEvent *ev);
/* The HBM pool's next completion, processed at its time by the chip's event loop. */
bool emu_dma_pool_complete(EmuChip *c);
/* The next HBM DMA in the start queue joins the pool (at its start cycle). */
void emu_dma_start_next(EmuChip *c);
void emu_dma_free_all(EmuChip *c);
/* The chip's in-flight stretch of DMAs (statistics). */
void emu_dma_inflight(EmuChip *c, int delta, int64_t t);
bool emu_sem_signal_remote(EmuChip *c, const EmuOp *op, int64_t t);

/* run.c */
TileEmuStatus emu_run(Emu *e);

/* stats.c */
void emu_stats_finish(Emu *e);

#endif
