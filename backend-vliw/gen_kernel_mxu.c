/* tile_matmul in a kernel: acc + a [M, K] x b [K, N] on the MXUs.
 *
 * b is cut into weight blocks of mxu_dim x mxu_dim (kb, nb); a unit holding block
 * (kb, nb) takes the row tiles of a's column block kb (`mxu.push`, sublanes x mxu_dim
 * each) and gives result tiles that `mxu.popacc` adds to the accumulator tiles (mt, nb),
 * so the K blocks sum in f32 in order kb = 0, 1, ... (the MXU itself rounds a and b to
 * bf16 and accumulates each product in f32, docs/emulator.md).
 *
 * Jobs: each weight block with a range of row tiles. With fewer blocks than units the
 * rows of each block are split over units (each loads the same weights), so every MXU
 * pushes. Jobs run in rounds of one per unit: the weight loads (`mxu.ldw`, one row group
 * of sublanes rows each), the pushes interleaved across units (a unit takes one push
 * every mxu_push_cycles), then the pops in push order. Weights are double-buffered, so
 * the next round's loads may follow a unit's last push at once; the scheduler overlaps
 * the rounds as the dependences of include/tile/mir.h allow.
 *
 * Registers: the result takes one vreg per tile. When the accumulator is a value used
 * only here, in this block, held in registers no other value names (the loop-carried
 * accumulator of `%acc2 = tile_matmul %a, %b, %acc; yield %acc2`), the pops add into its
 * registers in place, so the loop needs no copies and half the registers. */
#include <stdlib.h>

#include "gen_kernel.h"
#include "tile/ops.h"

static int count_uses(const TileBlock *b, const TileValue *v) {
  int n = 0;
  for (const TileOp *o = b->first; o; o = o->next) {
    for (int32_t i = 0; i < o->nopnd; i++) n += o->opnd[i].v == v;
    for (int32_t r = 0; r < o->nregion; r++) n += count_uses(o->region[r], v);
  }
  return n;
}

/* Whether the accumulator's registers may take the result. */
static bool in_place(const TileOp *op, const KTensor *acc) {
  const TileValue *v = op->opnd[2].v;
  if (acc->kind != KT_REGS || acc->shared) return false;
  const TileBlock *scope = v->def ? v->def->block : v->block;
  if (op->block != scope || count_uses(scope, v) != 1) return false;
  int32_t n = acc->rows * acc->cols;
  for (int32_t i = 0; i < n; i++)
    for (int32_t j = i + 1; j < n; j++)
      if (acc->vreg[i] == acc->vreg[j]) return false;
  return true;
}

typedef struct Job {
  int32_t kb, nb, r0, r1, unit;
} Job;

bool kx_tile_matmul(Kx *k, const TileOp *op) {
  const TileTarget *t = k->t;
  const TileType *at = &op->opnd[0].v->type, *bt = &op->opnd[1].v->type;
  int32_t sub = t->vreg_sublanes, dim = t->mxu_dim;
  if (t->vreg_lanes != dim || dim % sub || t->mxu_count < 1)
    return kx_error(k, op, "the target's MXU (%d x %d, %d units) does not take vector "
                           "registers of %d lanes", (int)dim, (int)dim, (int)t->mxu_count,
                    (int)t->vreg_lanes);
  int64_t M = at->dims[0], K = at->dims[1], N = bt->dims[1];
  if (M % sub || K % dim || N % dim)
    return kx_error(k, op, "takes a [M, K] and b [K, N] with M a multiple of %d and K and N "
                           "multiples of %d (the MXU's size); got M = %lld, K = %lld, N = %lld",
                    (int)sub, (int)dim, (long long)M, (long long)K, (long long)N);
  KTensor *A = kx_tensor(k, op->opnd[0].v, op), *B = kx_tensor(k, op->opnd[1].v, op),
          *C = kx_tensor(k, op->opnd[2].v, op);
  if (!A || !B || !C) return false;
  int32_t rows, cols;
  if (!kx_grid(k, op, &op->res[0]->type, true, &rows, &cols)) return false;
  int32_t MT = rows, NB = cols, KB = (int32_t)(K / dim), G = dim / sub;

  /* The accumulator tiles, and whether each register is ours to overwrite. */
  bool inplace = in_place(op, C);
  int32_t n = MT * NB;
  int32_t *cur = tile_alloc(k->mod, sizeof(int32_t) * (size_t)n);
  bool *own = tile_alloc(k->mod, (size_t)n);
  for (int32_t j = 0; j < n; j++) {
    cur[j] = kx_tile(k, C, j / NB, j % NB);
    own[j] = inplace;
  }

  int32_t U = t->mxu_count, W = KB * NB;
  int32_t splits = W >= U ? 1 : U / W;
  if (splits > MT) splits = MT;
  int32_t njobs = W * splits;
  Job *jobs = calloc((size_t)njobs, sizeof *jobs);
  if (!jobs) abort();
  for (int32_t w = 0; w < W; w++)
    for (int32_t s = 0; s < splits; s++)
      jobs[w * splits + s] = (Job){.kb = w / NB, .nb = w % NB, .r0 = (int32_t)((int64_t)MT * s / splits),
                                   .r1 = (int32_t)((int64_t)MT * (s + 1) / splits)};

  for (int32_t start = 0; start < njobs; start += U) {
    int32_t nj = njobs - start < U ? njobs - start : U, longest = 0;
    Job *round = jobs + start;
    for (int32_t j = 0; j < nj; j++) {
      round[j].unit = j;
      for (int32_t g = 0; g < G; g++) {
        int32_t w = kx_tile(k, B, round[j].kb * G + g, round[j].nb);
        kx_emit(k, tile_mir_inst(TILE_MOP_MXU_LDW, 0, w, 0, j, g));
      }
      if (round[j].r1 - round[j].r0 > longest) longest = round[j].r1 - round[j].r0;
    }
    for (int32_t s = 0; s < longest; s++)
      for (int32_t j = 0; j < nj; j++)
        if (round[j].r0 + s < round[j].r1) {
          int32_t a = kx_tile(k, A, round[j].r0 + s, round[j].kb);
          kx_emit(k, tile_mir_inst(TILE_MOP_MXU_PUSH, 0, a, 0, j, 0));
        }
    for (int32_t j = 0; j < nj; j++)
      for (int32_t r = round[j].r0; r < round[j].r1; r++) {
        int32_t i = r * NB + round[j].nb;
        int32_t d = own[i] ? cur[i] : tile_mir_vreg(k->m);
        kx_emit(k, tile_mir_inst(TILE_MOP_MXU_POPACC, d, cur[i], 0, j, 0));
        cur[i] = d;
        own[i] = true;
      }
  }
  free(jobs);

  KTensor *res = inplace ? C : tile_alloc(k->mod, sizeof *res);
  if (!inplace) {
    res->kind = KT_REGS;
    res->elem = TILE_ELEM_F32;
    res->rows = MT;
    res->cols = NB;
    res->splat_reg = res->buf = res->dyn = -1;
  }
  res->vreg = cur;
  kx_set(k, op->res[0], (KEnt){.kind = KE_TENSOR, .t = res});
  return true;
}
