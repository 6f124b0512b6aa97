/* DMA sites: the descriptors, issues and waits generators use to move blocks between
 * memories (include/tile/lower.h).
 *
 * A site is one 16-word descriptor in SMEM (docs/emulator.md, "DMA descriptors") whose
 * initial contents hold everything but the addresses, which are relocations filled at
 * layout, and one semaphore the transfer signals on completion. Every transfer of a
 * site has the site's shape, so transfers complete in issue order only when they are
 * alike; one semaphore counts them and `sem.wait sem, 1` consumes the oldest.
 *
 * An issue that moves to new addresses stores only the low address words (`sst`): scalar
 * registers are 32 bits wide, so the high words keep what layout put there, which is
 * right only while every buffer a register can address lies below 4 GiB.
 * tile_dma_check_layout refuses a layout whose HBM buffers end past that.
 *
 * Memory entries make the scheduler order the ops (include/tile/mir.h): the `sst`
 * writes the descriptor; the `dma` reads the descriptor and the source and writes the
 * destination (with est_cycles, the expected completion); the `sem.wait` names source
 * and destination as writes, so nothing reads the destination or overwrites the source
 * before the transfer has landed. */
#include <inttypes.h>
#include <string.h>

#include "dma_desc.h"
#include "lower_internal.h"

/* Space numbers of the descriptor; the same order as TileSpace. */
static uint32_t desc_space(TileSpace s) { return (uint32_t)s; }

static void put_word(uint8_t *bytes, int word, uint32_t v) {
  for (int i = 0; i < 4; i++) bytes[word * 4 + i] = (uint8_t)(v >> (8 * i));
}

/* The bandwidth a transfer between spaces a and b runs at when alone: HBM's when
 * either side is HBM (limited by the other side when that is VMEM or SMEM), VMEM's
 * otherwise (SMEM moves at the VMEM bandwidth). */
static int64_t pair_bw(const TileTarget *t, TileSpace a, TileSpace b) {
  bool ha = a == TILE_SPACE_HBM, hb = b == TILE_SPACE_HBM;
  if (ha && hb) return t->hbm_bw;
  if (ha || hb) return t->hbm_bw < t->vmem_bw ? t->hbm_bw : t->vmem_bw;
  return t->vmem_bw;
}

static int32_t clamp_cycles(int64_t c) { return c > INT32_MAX ? INT32_MAX : (int32_t)c; }

int32_t tile_lower_dma_cycles(const TileTarget *t, int64_t bytes) {
  return tile_dma_est_cycles(t, TILE_SPACE_HBM, TILE_SPACE_VMEM, bytes);
}

int32_t tile_dma_est_cycles(const TileTarget *t, TileSpace a, TileSpace b, int64_t bytes) {
  return clamp_cycles(t->dma_issue_cycles + tile_target_xfer_cycles(t, bytes, pair_bw(t, a, b)));
}

int32_t tile_dma_desc_buffer(TileMir *m, const char *name, int32_t src_buf, int64_t src_offset,
                             int32_t dst_buf, int64_t dst_offset, const TileDmaShape *shape,
                             int32_t sem) {
  TileSpace ss = (TileSpace)m->bufs[src_buf].space, ds = (TileSpace)m->bufs[dst_buf].space;
  int64_t c1 = shape->count1 < 1 ? 1 : shape->count1, c2 = shape->count2 < 1 ? 1 : shape->count2;
  int32_t desc = tile_mir_buffer(m, name, TILE_SPACE_SMEM, DESC_WORDS * 4, 1, 4);
  uint8_t words[DESC_WORDS * 4];
  memset(words, 0, sizeof words);
  put_word(words, DESC_SRC_SPACE, desc_space(ss));
  put_word(words, DESC_DST_SPACE, desc_space(ds));
  put_word(words, DESC_COUNT0, (uint32_t)shape->count0);
  put_word(words, DESC_COUNT1, (uint32_t)c1);
  put_word(words, DESC_COUNT2, (uint32_t)c2);
  put_word(words, DESC_SRC_STRIDE1, (uint32_t)(int32_t)shape->src_stride1);
  put_word(words, DESC_SRC_STRIDE2, (uint32_t)(int32_t)shape->src_stride2);
  put_word(words, DESC_DST_STRIDE1, (uint32_t)(int32_t)shape->dst_stride1);
  put_word(words, DESC_DST_STRIDE2, (uint32_t)(int32_t)shape->dst_stride2);
  put_word(words, DESC_PEER, UINT32_MAX);      /* -1: a local copy */
  put_word(words, DESC_SRC_SEM, (uint32_t)sem);
  put_word(words, DESC_DST_SEM, UINT32_MAX);   /* the destination is this chip: one signal */
  tile_mir_data(m, desc, words, sizeof words);
  tile_mir_reloc(m, desc, DESC_SRC_LO * 4, src_buf, src_offset, false);
  tile_mir_reloc(m, desc, DESC_SRC_HI * 4, src_buf, src_offset, true);
  tile_mir_reloc(m, desc, DESC_DST_LO * 4, dst_buf, dst_offset, false);
  tile_mir_reloc(m, desc, DESC_DST_HI * 4, dst_buf, dst_offset, true);
  return desc;
}

TileDmaSite tile_dma_site(TileLowerCtx *cx, int32_t src_buf, int64_t src_offset,
                          int32_t dst_buf, int64_t dst_offset, TileDmaShape shape) {
  TileMir *m = cx->mir;
  const TileTarget *t = cx->target;
  TileSpace ss = (TileSpace)m->bufs[src_buf].space, ds = (TileSpace)m->bufs[dst_buf].space;
  int64_t c0 = shape.count0, c1 = shape.count1 < 1 ? 1 : shape.count1,
          c2 = shape.count2 < 1 ? 1 : shape.count2;

  TileDmaSite s;
  memset(&s, 0, sizeof s);
  s.sem = tile_mir_sem(m);
  s.src_buf = src_buf;
  s.dst_buf = dst_buf;
  s.bytes = c0 * c1 * c2;
  s.est_cycles = tile_dma_est_cycles(t, ss, ds, s.bytes);

  char name[64];
  snprintf(name, sizeof name, "dma%d.%.48s", (int)s.sem, m->bufs[dst_buf].name);
  s.desc = tile_dma_desc_buffer(m, name, src_buf, src_offset, dst_buf, dst_offset, &shape, s.sem);

  s.desc_reg = tile_mir_sreg(m);
  TileMirInst li = tile_mir_inst(TILE_MOP_LI, s.desc_reg, 0, 0, 0, 0);
  li.imm_buf = s.desc;
  tile_mir_add(m, li);
  return s;
}

/* `sst reg, desc_reg, word*4`: one low address word of the descriptor. */
static void store_word(TileMir *m, const TileDmaSite *s, int32_t reg, int word) {
  TileMirInst st = tile_mir_inst(TILE_MOP_SST, reg, s->desc_reg, 0, 0, word * 4);
  tile_mir_mem(&st, s->desc, TILE_MIR_WRITE, 0);
  tile_mir_add(m, st);
}

void tile_dma_issue(TileLowerCtx *cx, const TileDmaSite *s, int32_t src_addr_reg,
                    int src_slot_ofs, int32_t dst_addr_reg, int dst_slot_ofs) {
  TileMir *m = cx->mir;
  if (src_addr_reg >= 0) store_word(m, s, src_addr_reg, DESC_SRC_LO);
  if (dst_addr_reg >= 0) store_word(m, s, dst_addr_reg, DESC_DST_LO);
  TileMirInst in = tile_mir_inst(TILE_MOP_DMA, 0, s->desc_reg, 0, 0, 0);
  in.est_cycles = s->est_cycles;
  tile_mir_mem(&in, s->desc, TILE_MIR_READ, 0);
  tile_mir_mem(&in, s->src_buf, TILE_MIR_READ, src_slot_ofs);
  tile_mir_mem(&in, s->dst_buf, TILE_MIR_WRITE, dst_slot_ofs);
  tile_mir_add(m, in);
}

void tile_dma_wait(TileLowerCtx *cx, const TileDmaSite *s, int src_slot_ofs,
                   int dst_slot_ofs) {
  TileMirInst in = tile_mir_inst(TILE_MOP_WAIT, 0, 0, 0, s->sem, 1);
  tile_mir_mem(&in, s->src_buf, TILE_MIR_WRITE, src_slot_ofs);
  tile_mir_mem(&in, s->dst_buf, TILE_MIR_WRITE, dst_slot_ofs);
  tile_mir_add(cx->mir, in);
}

/* A DMA address register holds 32 bits (the low word of the descriptor's address);
 * the high word stays as layout set it, so every buffer that is a DMA endpoint must
 * end below 4 GiB. Checked on the placed program, naming the first buffer past it. */
bool tile_dma_check_layout(const TileMir *m, TileDiag *d) {
  const int64_t limit = (int64_t)1 << 32;
  for (int32_t i = 0; i < m->nbufs; i++) {
    const TileMirBuffer *b = &m->bufs[i];
    if (b->space != TILE_SPACE_HBM || b->addr < 0) continue;
    int64_t end = b->addr + b->bytes * b->nslots;
    if (end > limit)
      return tile_error(d, (TileLoc){0},
                        "the program needs %" PRId64 " bytes of HBM (buffer '%s' ends at byte "
                        "%" PRId64 "), past the 4 GiB that 32-bit DMA addresses reach; split the "
                        "function or use smaller tensors",
                        end, b->name, end);
  }
  return true;
}
