/* Weights kept in VMEM across matmul groups (lower_internal.h).
 *
 * A parameter that is the right operand of several matmul groups is copied from HBM by
 * each of them. The ring steps of coll_matmul read every weight of their block once a
 * step: mlp_prefill_16 on v5e-like reads its 22 MB of weight shards 16 times, and its
 * steps wait for HBM instead of the links. The plan picks such weights, in the order
 * the groups first read them, while their bytes fit RES_VMEM_SHARE of VMEM. The first
 * group to read one (its owner) copies every piece into a slot that no later piece
 * takes, and records where each piece lies; the groups after it read the pieces there
 * and copy nothing (gen_matmul_dma.c, "Resident"). Groups run one after the other and
 * each drains its DMAs before the next starts (lower.c), so the owner's copies have
 * landed before any later group reads them. The owner's buffer is live from its first
 * copy to the last read (layout_live.c): the groups between do without that VMEM.
 *
 * A group whose pieces differ (another blocking of the same weights) or are not all in
 * the owner's buffer streams its weights as before. */
#include <stdlib.h>

#include "lower_internal.h"
#include "tile/ops.h"

/* The share of VMEM resident weights take at most: each group's own plan keeps within
 * half (gen_matmul_plan.c), and the collectives' receive buffers live beside them. */
#define RES_VMEM_SHARE 0.25

const TileValue *tile_lower_group_weights(const TileGroup *g, const TileOp **mm) {
  if (g->kind != TILE_GROUP_MATMUL) return NULL;
  for (int32_t i = 0; i < g->nops; i++) {
    const TileOp *op = g->ops[i];
    if (op->kind != TILE_OP_MATMUL && op->kind != TILE_OP_DOT_GENERAL) continue;
    *mm = op;
    return op->nopnd >= 2 && op->opnd[1].v->def == NULL ? op->opnd[1].v : NULL;
  }
  return NULL;
}

void tile_lower_resident_plan(TileLowerCtx *cx, TileGroup *const *groups, int32_t n) {
  struct TileResPlan *rp = tile_alloc(cx->m, sizeof *rp);
  rp->e = tile_alloc(cx->m, sizeof *rp->e * (size_t)(n + 1));
  rp->room = (int64_t)(RES_VMEM_SHARE * (double)cx->target->vmem_bytes);
  cx->res = rp;
  int64_t planned = 0;
  for (int32_t i = 0; i < n; i++) {
    const TileOp *mm;
    const TileValue *w = tile_lower_group_weights(groups[i], &mm);
    if (!w) continue;
    int32_t k = 0;
    while (k < rp->n && rp->e[k].w != w) k++;
    if (k == rp->n) rp->e[rp->n++] = (TileResident){.w = w, .vmem = -1};
    rp->e[k].uses++;
  }
  /* in the order of first use, those read more than once while they fit */
  int32_t kept = 0;
  for (int32_t k = 0; k < rp->n; k++) {
    int64_t bytes = tile_lower_tensor(cx, rp->e[k].w).bytes;
    if (rp->e[k].uses < 2 || planned + bytes > rp->room) continue;
    planned += bytes;
    rp->e[kept++] = rp->e[k];
  }
  rp->n = kept;
}

TileResident *tile_lower_resident(TileLowerCtx *cx, const TileValue *w) {
  for (int32_t k = 0; cx->res && k < cx->res->n; k++)
    if (cx->res->e[k].w == w) return &cx->res->e[k];
  return NULL;
}

bool tile_lower_resident_own(TileLowerCtx *cx, TileResident *r, int64_t bytes) {
  if (r->vmem >= 0 || cx->res->used + bytes > cx->res->room) return false;
  cx->res->used += bytes;
  return true;
}

int64_t tile_lower_resident_find(const TileResident *r, int64_t src) {
  for (int64_t i = 0; i < r->npieces; i++)
    if (r->src[i] == src) return r->dst[i];
  return -1;
}
