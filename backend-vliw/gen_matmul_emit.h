/* The matmul generator's emission state, shared by the block walk (gen_matmul.c) and
 * the tables it reads (gen_matmul_dma.c).
 *
 * Everything that differs from one block to the next without following a constant
 * step (which ring slot a block reads, where its accumulator columns and staging slot
 * are, which HBM bytes a copy moves) is looked up in SMEM tables the generator fills at
 * compile time: a record per block (VMEM addresses, relocated at layout) and a full
 * DMA descriptor per copy, in the order the copies are issued. The code then walks the
 * tables with pointer registers that step by a constant, so blocks of one kind run as
 * counted loops and the code's size follows the work per block, not the number of
 * blocks. */
#ifndef TILE_GEN_MATMUL_EMIT_H
#define TILE_GEN_MATMUL_EMIT_H

#include "dma_desc.h"
#include "gen_matmul.h"

/* The words of a block's record: then one per epilogue row (its first column), then one
 * per tile operand (the slot of a last-step block's piece, rec_tile). */
enum { REC_B, REC_A, REC_ACC, REC_STAGE, REC_ROW0 };

static inline int rec_tile(const MmPlan *p, int32_t i) { return REC_ROW0 + p->nrows + i; }

/* What a block does with its results: the K step decides. */
typedef enum PopKind {
  POP_NONE,  /* no block */
  POP_FIRST, /* first of several K steps: store into the accumulator */
  POP_MID,   /* add the accumulator, store it back */
  POP_LAST,  /* add the accumulator (if any), epilogue, stage for the copy out */
} PopKind;

/* One block: chunk (batch, row chunk, column chunk), K step, column block. */
typedef struct Block {
  int64_t b, mc, ng, kp, np;
  int64_t mstart, nstart, bcol; /* first row, first column of the chunk, block column */
  bool edge;                    /* the padded last K step */
  int64_t slab;                 /* A slab (chunk, K step) number */
} Block;

/* A table of DMA descriptors (SMEM), filled in issue order, DESC_BYTES apart. */
enum { DESC_BYTES = DESC_WORDS * 4 };
typedef struct DescTable {
  int32_t buf;
  int32_t n, cap;
  uint8_t *words;
} DescTable;

enum { SEM_B, SEM_B_EDGE, SEM_A, SEM_A0, SEM_OUT, SEM_IN, SEM_COUNT };

/* B pieces in flight ahead of the block reading one (at most the plan's depth): a
 * piece takes a fraction of a block to copy, so two ahead always arrive in time, and
 * more at once would share HBM with the first slab and the next block's piece, which
 * are needed sooner. */
enum { MM_B_AHEAD = 2 };

/* DMAs a prefetch takes at most (fewer when the lowering allows fewer): runs of
 * blocks, or parts that land in order (gen_matmul_dma.c, "Prefetch"). */
enum { MM_PF_RUNS = 2, MM_PF_PARTS = 4 };

typedef struct Gen {
  TileLowerCtx *cx;
  TileMir *m;
  const MmPlan *p;
  int32_t zero;
  int32_t c_apitch, c_bpitch, c_tpitch, c_spitch;
  int32_t c_ipitch[MM_MAX_TILES]; /* tile operands' slot pitch */
  /* VMEM: A slabs (two, and two of the padded last step), B pieces (depth, and as
   * many padded), the accumulator (a slot per row tile), staging (two slots) */
  int32_t abuf, aedge, bbuf, bedge, acc, stage;
  int64_t tile_bytes, acc_row, stage_slot;
  int32_t sem[SEM_COUNT];
  int32_t scratch;              /* SMEM bytes the placeholder copies move */
  /* tables */
  Block *blocks;
  int64_t nblocks;
  int64_t nslabs, *slab_first;  /* A slabs, and the first block reading each */
  int64_t width;                /* column blocks per K step of the chunk being emitted */
  int32_t rec;                  /* the records (SMEM) */
  int64_t rec_bytes;
  DescTable bdesc, adesc, a0desc, odesc, idesc;
  /* pointer registers walking the tables */
  int32_t rp, bp, ap, a0, op, ip;
  int32_t acc_next[16];         /* one row tile (lag 2): the accumulator tiles the next
                                 * block's pops add, loaded by the block before */
  int64_t nfine;                /* copies out of the final block issued so far */
  /* the prefetch (MmPlan.pf): runs of blocks, each copied by one DMA signalling pf_sem */
  int32_t pf_sem, npf;
  int64_t pf_first[MM_PF_PARTS], pf_count[MM_PF_PARTS];
  int64_t pf_steps[MM_PF_PARTS]; /* > 0: run r is pf_steps[r] whole K steps of the first
                                  * chunk, pf_count[r] / pf_steps[r] blocks each, block
                                  * (kp, i) in slot pf_first[r] + i * pf_steps[r] + kp -
                                  * its first step; < 0: -pf_steps[r] K steps of each of
                                  * pf_count[r] / -pf_steps[r] chunks of one block a step,
                                  * and 0: its blocks in slots pf_first.. in order */
  bool pf_parts;                 /* the runs are parts landing in order: the lowering
                                  * waits for the first, the blocks for the others */
  /* Weights kept in VMEM (gen_matmul_dma.c, "Resident"; res NULL: not): own, the group
   * copies every piece into a slot no other piece takes and records them in res; share,
   * it reads them from res's buffer (bbuf), block j's piece at offset bslot[j], and
   * copies and waits for none. */
  struct TileResident *res;
  bool own, share;
  int64_t *bslot;
} Gen;

/* The final block's copies out, in issue order: copy c covers row tiles [lo, hi).
 * Returns false past the last. */
bool mm_fine_copy(const MmPlan *p, int64_t c, int64_t *lo, int64_t *hi);

/* The static list of blocks (g->blocks), in the order they run. */
void mm_blocks(Gen *g);
/* Chooses the prefetch (p->pf, p->ring, g's runs) for `budget` bytes of weights in at
 * most `dmas` DMAs on semaphore `sem` (the lowering's, tile_lower_prefetch_budget);
 * none when budget is 0, K is padded, B is not a bound input, or VMEM has no room.
 * Needs the blocks. */
void mm_prefetch_plan(Gen *g, MmPlan *p, int64_t budget, int32_t sem, int32_t dmas);
/* Whether the weights stay in VMEM across groups, and this group's part (g->res, own,
 * share; p->ring for an owner). Needs nothing but the plan. */
void mm_resident_plan(Gen *g, MmPlan *p);
/* Emits the prefetch's DMAs (li and dma per run) and reports them to the lowering,
 * which moves them into an earlier group. Needs the buffers. */
void mm_prefetch_emit(Gen *g);
/* The first K step past kp, of the chunk starting at block c0, at which a prefetch part
 * starts (INT64_MAX: none; only the first chunk has parts). */
int64_t mm_part_step(const Gen *g, int64_t c0, int64_t kp);
/* Builds the records and the descriptor tables (and the blocks, if not yet made). */
void mm_tables(Gen *g);
void mm_tables_free(Gen *g);
PopKind mm_pop_kind(const Gen *g, int64_t j);

#endif
