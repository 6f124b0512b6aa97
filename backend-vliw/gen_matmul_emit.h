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

/* The words of a block's record. */
enum { REC_B, REC_A, REC_ACC, REC_STAGE, REC_ROW0 };

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

enum { SEM_B, SEM_B_EDGE, SEM_A, SEM_A0, SEM_OUT, SEM_COUNT };

typedef struct Gen {
  TileLowerCtx *cx;
  TileMir *m;
  const MmPlan *p;
  int32_t zero;
  int32_t c_apitch, c_bpitch, c_tpitch, c_spitch;
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
  DescTable bdesc, adesc, a0desc, odesc;
  /* pointer registers walking the tables */
  int32_t rp, bp, ap, a0, op;
  int64_t nfine;                /* copies out of the final block issued so far */
} Gen;

/* The final block's copies out, in issue order: copy c covers row tiles [lo, hi).
 * Returns false past the last. */
bool mm_fine_copy(const MmPlan *p, int64_t c, int64_t *lo, int64_t *hi);

/* Builds the buffers, the blocks, the records and the descriptor tables. */
void mm_tables(Gen *g);
void mm_tables_free(Gen *g);
PopKind mm_pop_kind(const Gen *g, int64_t j);

#endif
