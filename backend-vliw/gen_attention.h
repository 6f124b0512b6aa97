/* The attention generator's shared state (gen_attention.c, gen_attention_rows.c,
 * gen_attention_block.c). Generators elsewhere see only include/tile/lower.h.
 *
 * One `attention` op, q [B, Hq, Sq, D], k and v [B, Hkv, Sk, D], is lowered per K/V
 * head (b, kvh): the G = Hq / Hkv query heads that read it are handled together, so K
 * and V are read from HBM once. For each (b, kvh) the driver (gen_attention.c) brings
 * into VMEM, by DMA and one (b, kvh) ahead of the compute:
 *   - Q of the G heads, rows padded to `lanes` elements (the MXU's contraction width);
 *   - K transposed, K^T [D][Skp] (a strided DMA of one element per run: the DMA costs
 *     bytes, not runs, so the transpose is free), the S = Q K^T weights;
 *   - V [Skp][lanes], the P V weights;
 * with Skp = Sk rounded up to whole key blocks of `dim` keys. Then one of two kernels:
 *   - rows (gen_attention_rows.c, prefill): key blocks are the MXU weights, a group
 *     of them loaded at a time; every 8-row query tile of the G heads that sees the
 *     group visits it, and the visits of all K/V heads form one sequence pipelined by
 *     hand across the MXU latency; the running max, sum and accumulator of each tile
 *     live in VMEM between visits. It runs its own DMAs (loads of the next K/V head
 *     under this one's compute, the result of a K/V head under the next one's);
 *   - block (gen_attention_block.c, decode): all G x Sq query rows fit one 8-row tile;
 *     a pipelined loop over key blocks loads each block's weights and keeps the
 *     running state in registers; the driver runs its DMAs.
 * Both write O rows to a VMEM staging buffer that is copied to HBM.
 *
 * Online softmax, in f32. Block kernel (scores scaled by `scale` > 0; a non-positive
 * scale is applied to the scores first and the kernel then uses 1): per row the
 * negated running max nm = -max(s * scale), the running sum l and the accumulator
 * acc; for a new block of scores s:  nm' = min(nm, -scale * max(s)),
 * alpha = e^(nm' - nm), p = e^(s * scale + nm') (one fused multiply-add and an exp),
 * l' = l * alpha + sum(p),  acc' = acc * alpha + p V, and at the end o = acc * (1 / l).
 * Rows kernel: the score weights hold K^T * scale (any sign; rounded to bf16 like
 * every weight), so scores s come out scaled, and pm = max(s) runs instead of nm:
 * pm' = max(pm, max(s)), alpha = e^(pm - pm'), p = e^(s - pm'), l and acc as above.
 * Masked scores are -inf before the max, so they never raise it and their p is exactly
 * 0; every row sees at least one key (key 0, with a top-left causal mask), so the
 * running max is finite after the first block. */
#ifndef TILE_GEN_ATTENTION_H
#define TILE_GEN_ATTENTION_H

#include "tile/lower.h"

enum { ATTN_MAX_PAR = 2 }; /* (b, kvh) buffer sets: double buffering */

typedef struct Attn {
  TileLowerCtx *cx;
  TileMir *m;
  const TileTarget *t;
  const TileOp *op;
  /* shape: G of the Gq query heads that read a K/V head are taken at a time, from
   * head qh0 of each K/V head's on (plan_vmem: parts of a K/V head's heads) */
  int64_t B, Hq, Hkv, G, Sq, Sk, D;
  int64_t Gq, qh0;
  int parts;              /* Gq / G runs of the kernel over every K/V head */
  int64_t nkb, Skp;       /* key blocks of `dim` keys; keys padded to whole blocks */
  int64_t ntq;            /* 8-row query tiles per head (rows path) */
  int esz, osz;           /* bytes per element of q/k/v and of the result */
  bool bf16_in, bf16_out;
  double scale;           /* as written */
  double sc;              /* the scale folded into exp: scale > 0 ? scale : 1 */
  bool prescale;          /* scale <= 0: multiply scores by scale before anything else */
  bool causal;
  bool block;             /* the block (decode) kernel; else rows */
  int nk;                 /* key blocks per weight group (rows: two MXUs each) */
  /* machine */
  int32_t lanes, sub, dim;
  int32_t zero;           /* sreg holding 0 */
  /* placement */
  TileTensorRef q, k, v, o;
  int npar;               /* 1 or 2 buffer sets */
  int32_t qbuf[ATTN_MAX_PAR], ktbuf[ATTN_MAX_PAR], vbuf[ATTN_MAX_PAR], obuf[ATTN_MAX_PAR];
  int64_t qbytes, ktbytes, vbytes, obytes; /* one set's buffers */
  /* rows kernel (gen_attention_rows.c owns what `rows` points to) */
  struct AttnRows *rows;
  /* block kernel */
  int32_t ring;           /* alpha, carried from the softmax to the accumulate */
  int32_t pos;            /* the query position of each row of the tile (i32) */
  /* sregs and vregs the block kernel's heads share, made once at its set-up: strides
   * of the Q/V rows, K^T rows and f32 rows; the ring's address and offset mask; the
   * key step, the key count (or -1) and the positions + 1 of the rows (or -1) */
  int32_t b_qst, b_kst, b_sst, b_ost, b_rbase, b_rmask;
  int32_t b_step, b_skv, b_pos1;
  /* constants made once at the start (vregs) */
  int32_t v_zero, v_ninf, v_pinf, v_sc, v_nsc, v_scale;
} Attn;

/* Bytes of one f32 vreg; the fields of the rows kernel's per-tile state record (f32
 * vregs): the running max pm, the running sum l, the latest alpha, the accumulator. */
static inline int64_t attn_vreg_bytes(const Attn *a) { return (int64_t)a->sub * a->lanes * 4; }
enum { ATTN_ST_MAX = 0, ATTN_ST_L = 1, ATTN_ST_ALPHA = 2, ATTN_ST_ACC = 3, ATTN_ST_N = 4 };

/* The element offset in q (and in the result) of the first query head this run takes
 * of K/V head n (= b * Hkv + kvh): linear in n, as Hq = Gq * Hkv. */
static inline int64_t attn_q_elem(const Attn *a, int64_t n) {
  return (n * a->Gq + a->qh0) * a->Sq * a->D;
}

/* The DMA sites of the driver, one per buffer set, and the transfers of K/V head n
 * (= b * Hkv + kvh) through them (gen_attention.c). */
typedef struct AttnSites {
  TileDmaSite q[ATTN_MAX_PAR], kt[ATTN_MAX_PAR], v[ATTN_MAX_PAR], o[ATTN_MAX_PAR];
} AttnSites;
void attn_issue_loads(Attn *a, AttnSites *s, int64_t n, int p);
void attn_wait_loads(Attn *a, AttnSites *s, int p);
void attn_issue_store(Attn *a, AttnSites *s, int64_t n, int p);
/* Registers holding the HBM addresses of the next loads and the next store, stepped one
 * head per transfer (the addresses are linear in the head n, as Hq = G * Hkv), so a
 * loop over heads issues from registers: the loads into set p and the store from set p,
 * each followed by the step. */
typedef struct AttnAddr {
  int32_t q, k, v, o;
} AttnAddr;
void attn_addr_loads(Attn *a, AttnSites *s, const AttnAddr *r, int p);
void attn_addr_store(Attn *a, AttnSites *s, const AttnAddr *r, int p);

/* ---- emitting (gen_attention.c) ---- */

int32_t attn_sreg(Attn *a);
int32_t attn_vreg(Attn *a);
/* An op with register/unit fields and imm; no memory. Returns the inst index. */
int32_t attn_op(Attn *a, int op, int32_t d, int32_t x, int32_t y, int32_t z, int32_t imm);
/* A fresh register holding the result of a one-result op (d is the result). */
int32_t attn_v1(Attn *a, int op, int32_t x, int32_t y, int32_t z, int32_t imm);
int32_t attn_s1(Attn *a, int op, int32_t x, int32_t y, int32_t imm);
/* li of an immediate, or of a buffer's address plus an offset (buf >= 0). */
int32_t attn_li(Attn *a, int64_t value, int32_t buf);
int32_t attn_vli(Attn *a, uint32_t bits);
int32_t attn_vlif(Attn *a, float f);
/* Vector load/store of 8 rows at S[base] + imm + s * S[stride] of buffer buf (slot
 * offset ofs); imm relative to buf when base is the zero register. bf16 picks the
 * 2-byte forms. A load returns a fresh vreg (or loads into dst >= 0). */
int32_t attn_vld(Attn *a, int32_t dst, int32_t base, int32_t stride, int64_t imm, int32_t buf,
                 int ofs, bool bf16);
void attn_vst(Attn *a, int32_t val, int32_t base, int32_t stride, int64_t imm, int32_t buf,
              int ofs, bool bf16);
/* Loads rows 8r.. of the weights of MXU `unit` from vregs: one mxu.ldw per row group. */
void attn_ldw(Attn *a, int unit, int32_t vreg, int group);

/* Weight rows go vector load -> mxu.ldw through a few registers in turn, so the
 * scheduler cannot run the loads far ahead of the one MXU slot that drains them and
 * hold dozens of rows in registers. */
enum { ATTN_ROT = 4 };
typedef struct AttnRot {
  int32_t reg[ATTN_ROT];
  int next;
} AttnRot;
AttnRot attn_rot(Attn *a);
int32_t attn_rot_next(AttnRot *r);

/* ---- the kernels ---- */

/* VMEM each kernel needs beyond the driver's Q/K^T/V/O sets, and its set-up (tables,
 * constants) emitted once before the first (b, kvh). */
/* The rows kernel plans its visit sequence first (false when its table does not fit
 * SMEM, with a diagnostic if `report`), then sizes its VMEM, sets up, and runs every
 * K/V head itself, once per part of their query heads: its loads, compute and stores
 * interleave across heads (gen_attention_rows.c). attn_rows_free frees the plan. */
bool attn_rows_plan(Attn *a, bool report);
/* VMEM of the kernel's state and tables with nsets buffer sets (the last call sets the
 * number the kernel uses). */
int64_t attn_rows_vmem(Attn *a, int nsets);
int64_t attn_rows_extra_out(const Attn *a); /* O staging bytes beyond the tiles */
void attn_rows_setup(Attn *a);
void attn_rows_run(Attn *a, AttnSites *s);
void attn_rows_free(Attn *a);

int64_t attn_block_vmem(const Attn *a);
void attn_block_setup(Attn *a);
void attn_block_emit(Attn *a, int par);

#endif
