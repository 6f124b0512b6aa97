/* Live ranges of buffers in scheduled code, so layout can give VMEM and SMEM to
 * buffers whose lives do not meet (tile_mir_layout_code, layout_internal.h).
 *
 * A buffer is live from the first bundle that names it in a memory entry to the last,
 * in program order, widened:
 *   - over every loop (`loop` and its body) and every backward branch's range that
 *     holds a reference: an access in one iteration meets every bundle of the next;
 *   - to the last reference of a DMA descriptor named in the same op: a `dma` names its
 *     descriptor, source and destination, and the waits for it name the descriptor (the
 *     waits for a transfer's arrival name the destination too), so its buffers stay live
 *     until the transfer is known to be done, whatever the op that last touched them;
 *   - to the whole run for buffers with initial contents (they are in place before the
 *     first bundle) and for buffers no bundle names;
 *   - back to the first bundle for buffers that read bytes they never write, expecting
 *     zero (TileMirBuffer.zero_init): no earlier buffer may have left data there;
 *   - back for buffers other chips write (TileMirBuffer.remote): a peer ahead of this
 *     chip may deliver before this chip reaches the collective, though not before this
 *     chip has started an earlier collective the peer's result depended on
 *     (TileMirBuffer.remote_after): back to the first bundle that names a buffer of
 *     that collective, or to the first bundle of all where there is none.
 * Every generator names each buffer its ops touch (mir.h), which is what makes the
 * ranges complete. */
#include <stdlib.h>

#include "layout_internal.h"

static bool is_back_branch(const TileMirInst *in, int32_t p) {
  return (in->op == TILE_MOP_JMP || in->op == TILE_MOP_BNZ || in->op == TILE_MOP_BZ) &&
         in->imm <= p;
}

/* A descriptor: an SMEM buffer with initial contents that ops name alongside others. */
static bool is_descriptor(const TileMirBuffer *b) {
  return b->space == TILE_SPACE_SMEM && b->init != NULL;
}

bool layout_live_ranges(const TileMir *m, const TileMirCode *code, LiveRange *live) {
  int32_t n = m->nbufs, end = code->nbundles > 0 ? code->nbundles - 1 : 0;
  int32_t *own_last = malloc(sizeof *own_last * (size_t)(n > 0 ? n : 1));
  if (!own_last) return false;
  for (int32_t i = 0; i < n; i++) live[i] = (LiveRange){-1, -1};
  /* the bundles that name each buffer; the ops that name a descriptor, for the next
   * step (one pass over the code, which for a whole layer is hundreds of MiB) */
  const TileMirInst **dma = NULL;
  size_t ndma = 0, cap = 0;
  for (int32_t p = 0; p < code->nbundles; p++)
    for (int s = 0; s < TILE_BUNDLE_SLOTS; s++) {
      const TileMirInst *in = &code->b[p].slot[s];
      if (in->op == TILE_MOP_NOP) continue; /* empty words may hold zeroed entries */
      bool names_dsc = false;
      for (int k = 0; k < TILE_MIR_MAX_MEM; k++) {
        int32_t b = in->mem[k].buf;
        if (b < 0 || b >= n) continue;
        if (live[b].first < 0) live[b].first = p;
        live[b].last = p;
        names_dsc |= is_descriptor(&m->bufs[b]);
      }
      if (!names_dsc) continue;
      if (ndma == cap) {
        cap = cap ? 2 * cap : 256;
        const TileMirInst **grown = realloc(dma, cap * sizeof *dma);
        if (!grown) {
          free(dma);
          free(own_last);
          return false;
        }
        dma = grown;
      }
      dma[ndma++] = in;
    }
  for (int32_t i = 0; i < n; i++) own_last[i] = live[i].last;
  /* buffers of a DMA live until its descriptor's last reference (its last wait) */
  for (size_t i = 0; i < ndma; i++) {
    const TileMirInst *in = dma[i];
    for (int k = 0; k < TILE_MIR_MAX_MEM; k++) {
      int32_t dsc = in->mem[k].buf;
      if (dsc < 0 || dsc >= n || !is_descriptor(&m->bufs[dsc])) continue;
      for (int j = 0; j < TILE_MIR_MAX_MEM; j++) {
        int32_t b = in->mem[j].buf;
        if (b >= 0 && b < n && own_last[dsc] > live[b].last) live[b].last = own_last[dsc];
      }
    }
  }
  free(dma);
  /* loops and backward branches: a range that meets one covers all of it. Regions nest
   * or are disjoint, so one pass in any order suffices: widening a range to a region
   * only adds bundles inside that region. */
  for (int32_t p = 0; p < code->nbundles; p++) {
    const TileMirInst *br = &code->b[p].slot[tile_slot_first(TILE_SLOT_BRANCH)];
    int32_t lo, hi;
    if (br->op == TILE_MOP_LOOP) lo = p, hi = p + br->c;
    else if (is_back_branch(br, p)) lo = br->imm, hi = p;
    else continue;
    for (int32_t i = 0; i < n; i++) {
      LiveRange *r = &live[i];
      if (r->first < 0 || r->last < lo || r->first > hi) continue;
      if (lo < r->first) r->first = lo;
      if (hi > r->last) r->last = hi;
    }
  }
  /* where each buffer is first named (the anchors below need that, not the start a
   * buffer's own anchor gives it: the chain would run back to the first collective) */
  int32_t *named = own_last; /* its last use is above */
  for (int32_t i = 0; i < n; i++) named[i] = live[i].first;
  for (int32_t i = 0; i < n; i++) {
    const TileMirBuffer *b = &m->bufs[i];
    if (live[i].first < 0 || b->init) live[i] = (LiveRange){0, end};
    if (b->zero_init) live[i].first = 0;
    /* a peer may deliver before this chip reaches the collective, but not before this
     * chip used the anchor: the peer could finish that earlier collective only after */
    if (b->remote) {
      int32_t from = b->remote_after >= 0 ? live[i].first : 0;
      for (int32_t a = b->remote_after; a >= 0 && a < b->remote_after + b->remote_after_n &&
                                        a < n; a++)
        if (named[a] >= 0 && named[a] < from) from = named[a];
      if (from < live[i].first) live[i].first = from;
    }
  }
  free(own_last);
  return true;
}
