/* The row-wise generator's shared state: the plan gen_rowwise.c makes for a group and
 * the emission gen_rowwise_emit.c does from it. Private to those two files. */
#ifndef TILE_GEN_ROWWISE_H
#define TILE_GEN_ROWWISE_H

#include "tile/lower.h"
#include "tile/ops.h"

enum {
  RW_MAX_SUBS = 8,   /* vregs of 8 rows stacked in a block (block rows = 8 x subs) */
  RW_MAX_UNROLL = 4, /* 128-lane columns per inner iteration */
  RW_MAX_VALS = 256,
  RW_MAX_PASSES = 8,
};

/* How a value is laid out against the group's full shape [rows, C]. */
typedef enum RwClass {
  RW_FULL,  /* the full shape: one tile per (8 rows, 128 columns) */
  RW_ROW,   /* one number per row (the last dim reduced away): a vreg per 8 rows,
             * each sublane's number in every lane */
  RW_TABLE, /* varies along the row and repeats every `period` rows (gamma, bias,
             * cos/sin tables): read from VMEM with a sublane stride */
  RW_SPLAT, /* a splat constant */
} RwClass;

/* Where a group input is kept. */
typedef enum RwSource {
  RW_COMPUTED,  /* made by an op of the group */
  RW_STREAMED,  /* a full-shape input: streamed through VMEM block by block */
  RW_RESIDENT,  /* a row or table input: loaded whole into VMEM up front */
} RwSource;

typedef struct RwVal {
  const TileValue *v;
  RwClass cls;
  RwSource src;
  int level;           /* the pass that can first compute it (reductions before it) */
  uint8_t elem;
  int ebytes;          /* bytes per element in memory */
  bool is_out;         /* the group writes it to memory */
  bool store_rounds;   /* stored as bf16 through vst.bf16 (its rounding is the store's) */
  /* tables: row r of the full shape reads table row (r mod period) */
  int64_t period;
  int64_t src_period;  /* the period in memory when VMEM repeats it to `period` (0: same) */
  int64_t row_bytes;   /* bytes of one table row in VMEM */
  int rope;            /* 1: rope cos table, 2: rope sin table (doubled rows in VMEM) */
  /* memory */
  TileTensorRef ref;   /* HBM placement (inputs and outputs) */
  int32_t vbuf;        /* VMEM buffer (streamed, resident, output staging) */
  TileDmaSite site[2]; /* [0] whole blocks, [1] the last, shorter block */
  int32_t reg_src, reg_dst; /* DMA address registers (streamed inputs, outputs) */
  int32_t reg_vbase;   /* the address of vbuf */
  int32_t reg_slot, slot_bytes; /* per-row outputs: the staging slot of the block */
  int32_t reg_stride;  /* tables and row inputs: the sublane stride */
  int32_t reg_tab;     /* tables, row inputs: the row offset of the current block (bytes) */
  int32_t reg_cur;     /* the column being read or written (tables: plus reg_tab; block
                        * buffers: plus the block's slot), in bytes */
  /* values in registers while emitting */
  int32_t tile[RW_MAX_SUBS][RW_MAX_UNROLL];
  int32_t gen[RW_MAX_SUBS][RW_MAX_UNROLL]; /* tile[][] holds this iteration's when == Rw.gen */
  int32_t row[RW_MAX_SUBS];
  bool divisor;        /* a per-row value dividing full rows: prepared once per block */
  /* Softmax's sum(exp(x - max(x))) found in the same pass as the max: per lane, a
   * running max and a sum rescaled whenever the max grows (online softmax). */
  struct RwVal *online;    /* on the max: the sum computed with it */
  struct RwVal *online_of; /* on the sum: its max */
  TileEwDivisor div[RW_MAX_SUBS];
  int32_t acc[RW_MAX_SUBS][RW_MAX_UNROLL];
} RwVal;

typedef struct Rw {
  TileLowerCtx *cx;
  TileMir *m;
  const TileTarget *t;
  const TileGroup *g;
  TileLoc loc;
  /* shape */
  int rank;
  int64_t dims[TILE_MAX_RANK];
  int64_t rows, cols;  /* rows = product of the leading dims, cols = C */
  int64_t cols_pad;    /* C rounded up to whole 128-lane columns */
  int64_t vcols;       /* 128-lane columns per row (the last may be partial) */
  int64_t tail_lanes;  /* valid lanes of a partial last column, 0 if none */
  /* tiling */
  int subs, unroll;    /* block rows = 8 * subs; columns per inner iteration */
  int64_t brows;       /* rows per block */
  int64_t nblocks, last_rows; /* last_rows: rows of the last block (<= brows) */
  int64_t pieces, piece_vcols; /* DMA pieces per block along the row, columns each */
  int lookahead;       /* pieces in flight ahead of the one computed */
  /* DMAs each output may have in flight: full-shape outputs `out_credit` pieces (two
   * blocks' worth, or one when the target's dma.outstanding is short; never less than
   * a block, or the last, shorter block's waits would find no credit), per-row outputs
   * `row_credit` blocks. */
  int64_t out_credit;
  int row_credit;
  int passes;
  /* values */
  RwVal vals[RW_MAX_VALS];
  int nvals;
  TileEwConsts k;
  int32_t zero, stride4, stride2; /* sregs: 0, row strides of 4- and 2-byte blocks */
  int32_t slot4, slot2, sb4, sb2; /* the block slot offsets and slot sizes */
  int32_t col4, col2;  /* column offset (bytes) for tables of 4- and 2-byte elements */
  int32_t tail_mask;   /* vreg: lanes < tail_lanes, or -1 */
  int32_t lane0;       /* vreg: lane == 0 (for row inputs), or -1 */
  int32_t gen;         /* the inner iteration being emitted */
  int32_t sign_half;   /* vreg: the sign bit in lanes < D/2 (rope), or -1 */
  int32_t lane_half;   /* vreg: 1 in lanes < D/2 (rope with D < 128), or -1 */
} Rw;

/* gen_rowwise.c */
RwVal *rw_val(Rw *w, const TileValue *v);

/* gen_rowwise_emit.c */
bool rw_emit(Rw *w);

#endif
