/* Staging large SMEM tables through HBM (tile_lower_stage_tables, lower_internal.h).
 *
 * Generators keep tables of DMA descriptors in SMEM with initial contents (a matmul's
 * descriptor per weight block). Initial contents are in place before the first bundle,
 * so layout keeps such a buffer for the whole run (layout_live.c); a long program, a
 * stack of decoder layers, then needs the tables of every layer in SMEM at once and
 * runs out of it although each group reads only its own. When a function's initialized
 * SMEM would take more than half of the target's, every table of at least
 * STAGE_MIN_BYTES moves its contents to an HBM image, and the group that reads it begins
 * by copying the image into the table (a DMA HBM -> SMEM, then its wait), so the table
 * lives only while its group runs and layout gives its bytes to later groups. Smaller
 * buffers (single descriptors) stay: staging one would need a descriptor of its own.
 *
 * The copies go in front of the group's first op, one after another on the group's first
 * semaphore (the group before handed every semaphore on at zero, and the scheduler keeps
 * DMA-slot ops in program order, so the group's own use of it comes after the last
 * wait). Each wait names the table as written, so every op that reads the table stays
 * behind it. Programs whose tables fit are left exactly as they were. */
#include <stdio.h>
#include <stdlib.h>

#include "dma_desc.h"
#include "lower_internal.h"

enum { STAGE_MIN_BYTES = 256 };

static bool is_table(const TileMirBuffer *b) {
  return b->space == TILE_SPACE_SMEM && b->init && b->bytes * b->nslots >= STAGE_MIN_BYTES;
}

static int64_t initialized_smem(const TileMir *m) {
  int64_t sum = 0;
  for (int32_t i = 0; i < m->nbufs; i++)
    if (m->bufs[i].space == TILE_SPACE_SMEM && m->bufs[i].init)
      sum += m->bufs[i].bytes * m->bufs[i].nslots;
  return sum;
}

/* The HBM image of table t: its contents and the relocations that fill them. */
static int32_t make_image(TileMir *m, int32_t t) {
  TileMirBuffer *tb = &m->bufs[t];
  char name[64];
  snprintf(name, sizeof name, "img.%.56s", tb->name);
  int32_t img = tile_mir_buffer(m, name, TILE_SPACE_HBM, tb->bytes * tb->nslots, 1, HBM_ALIGN);
  tb = &m->bufs[t]; /* the buffer array may have moved */
  m->bufs[img].init = tb->init;
  m->bufs[img].init_len = tb->init_len;
  tb->init = NULL;
  tb->init_len = 0;
  return img; /* the relocations inside t move with its contents: see the caller */
}

/* Appends the copy of table t from its image and the wait for it, on semaphore sem;
 * returns the image. */
static int32_t copy_in(TileLowerCtx *cx, int32_t t, int32_t sem) {
  TileMir *m = cx->mir;
  int32_t img = make_image(m, t);
  int64_t bytes = m->bufs[t].bytes * m->bufs[t].nslots;
  TileDmaShape flat = {.count0 = bytes, .count1 = 1, .count2 = 1};
  char name[64];
  snprintf(name, sizeof name, "stage.%.56s", m->bufs[t].name);
  TileDmaSite s = {.sem = sem, .src_buf = img, .dst_buf = t, .bytes = bytes};
  s.est_cycles = tile_dma_est_cycles(cx->target, TILE_SPACE_HBM, TILE_SPACE_SMEM, bytes);
  s.desc = tile_dma_desc_buffer(m, name, img, 0, t, 0, &flat, sem);
  s.desc_reg = tile_mir_sreg(m);
  TileMirInst li = tile_mir_inst(TILE_MOP_LI, s.desc_reg, 0, 0, 0, 0);
  li.imm_buf = s.desc;
  tile_mir_add(m, li);
  tile_dma_issue(cx, &s, -1, 0, -1, 0);
  tile_dma_wait(cx, &s, 0, 0);
  return img;
}

bool tile_lower_stage_tables(TileLowerCtx *cx, const TileStageGroup *groups, int32_t ngroups) {
  TileMir *m = cx->mir;
  if (initialized_smem(m) <= cx->target->smem_bytes / 2) return true;
  /* Each group's copies are appended (last group first, the order buffers are made
   * in), then all moved in front of their groups in one pass over the code, and the
   * relocations inside each table moved to its image in one pass over them: a stack of
   * layers has thousands of tables. */
  int32_t n0 = m->ninsts, nbufs0 = m->nbufs;
  int32_t *at = calloc((size_t)ngroups + 1, sizeof *at);
  int32_t *lo = calloc((size_t)ngroups + 1, sizeof *lo);
  int32_t *hi = calloc((size_t)ngroups + 1, sizeof *hi);
  int32_t *img_of = malloc(((size_t)nbufs0 + 1) * sizeof *img_of);
  bool ok = at && lo && hi && img_of;
  for (int32_t i = 0; ok && i < nbufs0; i++) img_of[i] = -1;
  for (int32_t g = ngroups - 1; ok && g >= 0; g--) {
    int32_t end = g + 1 < ngroups ? groups[g + 1].first_buf : nbufs0;
    at[g] = groups[g].first_inst;
    lo[g] = m->ninsts;
    for (int32_t b = groups[g].first_buf; b < end; b++)
      if (is_table(&m->bufs[b])) img_of[b] = copy_in(cx, b, cx->sems_base);
    hi[g] = m->ninsts;
  }
  if (ok) {
    for (int32_t r = 0; r < m->nrelocs; r++) {
      int32_t b = m->relocs[r].buf;
      if (b >= 0 && b < nbufs0 && img_of[b] >= 0) m->relocs[r].buf = img_of[b];
    }
    ok = tile_mir_insert_blocks(m, n0, at, lo, hi, ngroups);
  }
  free(at);
  free(lo);
  free(hi);
  free(img_of);
  if (cx->sems_used < cx->sems_base + 1) cx->sems_used = cx->sems_base + 1;
  return ok;
}
