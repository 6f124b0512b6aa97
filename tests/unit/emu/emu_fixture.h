/* Shared helpers of the emulator's unit tests: a small machine description with round
 * numbers (1 GHz, so bandwidths in bytes/s are 1e9 x bytes per cycle), a bundle builder
 * that puts each op into the first free word of its slot kind, and DMA descriptors. */
#ifndef TILE_TEST_EMU_FIXTURE_H
#define TILE_TEST_EMU_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/asm.h"
#include "tile/diag.h"
#include "tile/emu.h"
#include "tile/isa.h"
#include "tile/object.h"
#include "tile/target.h"

/* The test machine:
 *   latencies salu 1, smem 2, valu 2, trans 4, vload 3, vstore 2, mxu_weights 6,
 *   mxu_result 20, mxu_pop 1, xlu 3, branch 2; 8 x 128 registers; 2 MXUs, 8 cycles per
 *   push; HBM 100 B/cycle, VMEM 1000 B/cycle; 2 DMA engines, 4 issue cycles, 4
 *   outstanding; ICI 10 B/cycle per link, 50 cycles per hop. */
static inline TileTarget fx_target(int x, int y, int z, bool wrap) {
  TileTarget t;
  memset(&t, 0, sizeof t);
  snprintf(t.name, sizeof t.name, "unit");
  t.clock_hz = 1000000000;
  for (int s = 0; s < TILE_SLOT_COUNT; s++) t.slots[s] = tile_slot_words((TileSlot)s);
  const int lat[TILE_LAT_COUNT] = {
      [TILE_LAT_SALU] = 1,        [TILE_LAT_SMEM] = 2,        [TILE_LAT_VALU] = 2,
      [TILE_LAT_TRANS] = 4,       [TILE_LAT_VLOAD] = 3,       [TILE_LAT_VSTORE] = 2,
      [TILE_LAT_MXU_WEIGHTS] = 6, [TILE_LAT_MXU_RESULT] = 20, [TILE_LAT_MXU_POP] = 1,
      [TILE_LAT_XLU] = 3,         [TILE_LAT_BRANCH] = 2};
  memcpy(t.latency, lat, sizeof lat);
  t.vreg_sublanes = 8;
  t.vreg_lanes = 128;
  t.nvregs = 32;
  t.nsregs = 32;
  t.mxu_dim = 128;
  t.mxu_count = 2;
  t.mxu_push_cycles = 8;
  t.vmem_bytes = 1 << 20;
  t.smem_bytes = 64 << 10;
  t.hbm_bytes = 64 << 20;
  t.hbm_bw = 100000000000LL;
  t.vmem_bw = 1000000000000LL;
  t.dma_engines = 2;
  t.dma_issue_cycles = 4;
  t.dma_outstanding = 4;
  t.nsems = 16;
  int dims[3] = {x, y, z}, rank = z > 1 ? 3 : y > 1 ? 2 : 1;
  t.torus_rank = rank;
  for (int k = 0; k < rank; k++) {
    t.torus[k] = dims[k];
    t.wrap[k] = wrap && dims[k] > 1;
  }
  t.ici_bw = 10000000000LL;
  t.ici_hop_ns = 50;
  t.watchdog_cycles = 1000000;
  return t;
}

enum { FX_MAX_BUNDLES = 512 };

typedef struct FxProg {
  TileBundle b[FX_MAX_BUNDLES];
  int n;
} FxProg;

/* Puts an op into bundle pc (fields as TileMInst: d, a, b, c, imm). */
static inline void fx_op(FxProg *p, int pc, int mop, int d, int a, int b, int c, int imm) {
  TileSlot s = tile_mop_info[mop].slot;
  int first = tile_slot_first(s), n = tile_slot_words(s);
  for (int w = first; w < first + n; w++)
    if (p->b[pc].slot[w].op == TILE_MOP_NOP) {
      p->b[pc].slot[w] = (TileMInst){(uint8_t)mop, (uint8_t)d, (uint8_t)a, (uint8_t)b,
                                     (uint8_t)c, imm};
      if (pc >= p->n) p->n = pc + 1;
      return;
    }
  fprintf(stderr, "fx_op: bundle %d has no free %s slot\n", pc, tile_mop_info[mop].mnemonic);
  abort();
}

/* Extends the program with empty bundles up to pc. */
static inline void fx_len(FxProg *p, int n) {
  if (n > p->n) p->n = n;
}

static inline float fx_f(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static inline int32_t fx_bits(float f) {
  int32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static inline TileEmu *fx_emu_syms(const TileTarget *t, const FxProg *p, const TileEmuOptions *o,
                                   TileObjSymbol *syms, int nsyms) {
  TileObjCode code = {TILE_OBJ_ALL_CHIPS, p->n, (TileBundle *)p->b};
  TileObject obj;
  memset(&obj, 0, sizeof obj);
  snprintf(obj.target, sizeof obj.target, "%s", t->name);
  obj.ncode = 1;
  obj.code = &code;
  obj.nsyms = nsyms;
  obj.syms = syms;
  TileDiag d;
  tile_diag_init(&d, stderr, "test", NULL, 0);
  return tile_emu_create(&obj, t, o, &d);
}

static inline TileEmu *fx_emu(const TileTarget *t, const FxProg *p, const TileEmuOptions *o) {
  return fx_emu_syms(t, p, o, NULL, 0);
}

/* Assembles src (docs/isa.md) for t and builds an emulator; NULL after printing why. */
static inline TileEmu *fx_asm(const TileTarget *t, const char *src, const TileEmuOptions *o) {
  TileObject obj;
  TileDiag d;
  tile_diag_init(&d, stderr, "test.s", src, strlen(src));
  if (!tile_asm(src, strlen(src), "test.s", t, &obj, &d)) return NULL;
  tile_diag_init(&d, stderr, "test", NULL, 0);
  TileEmu *e = tile_emu_create(&obj, t, o, &d);
  tile_object_free(&obj);
  return e;
}

static inline TileEmuOptions fx_opts(TileEmuMode mode, int threads) {
  TileEmuOptions o;
  tile_emu_options_default(&o);
  o.mode = mode;
  o.threads = threads;
  return o;
}

/* A DMA descriptor (docs/emulator.md) written into SMEM of chip at byte address at. */
typedef struct FxDesc {
  int src_space, dst_space;
  int64_t src, dst;
  int32_t c0, c1, c2;
  int32_t ss1, ss2, ds1, ds2;
  int32_t peer, src_sem, dst_sem;
} FxDesc;

static inline bool fx_desc(TileEmu *e, int chip, int64_t at, FxDesc d) {
  int32_t w[16] = {d.src_space,
                   d.dst_space,
                   (int32_t)(uint32_t)d.src,
                   (int32_t)(d.src >> 32),
                   (int32_t)(uint32_t)d.dst,
                   (int32_t)(d.dst >> 32),
                   d.c0 ? d.c0 : 1,
                   d.c1 ? d.c1 : 1,
                   d.c2 ? d.c2 : 1,
                   d.ss1,
                   d.ss2,
                   d.ds1,
                   d.ds2,
                   d.peer,
                   d.src_sem,
                   d.dst_sem};
  return tile_emu_write_memory(e, chip, TILE_SPACE_SMEM, at, w, sizeof w);
}

static inline int64_t fx_cycles(TileEmu *e, int chip) {
  TileEmuStats s;
  tile_emu_stats(e, &s);
  return chip < s.nchips ? s.chips[chip].cycles : -1;
}

#endif
