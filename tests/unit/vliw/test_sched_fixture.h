/* Helpers of the scheduler tests: a target on a single chip, a layout of MIR buffers
 * (bump allocation per memory, relocations applied), a trivial register assignment
 * (virtual register -> the next machine register of its class), and an emulator built
 * from scheduled code, run in strict mode with every read and write checked. */
#ifndef TILE_TEST_SCHED_FIXTURE_H
#define TILE_TEST_SCHED_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/diag.h"
#include "tile/emu.h"
#include "tile/isa.h"
#include "tile/mir.h"
#include "tile/object.h"
#include "tile/target.h"

static inline bool sfx_target(const char *name, TileTarget *t) {
  TileDiag d;
  tile_diag_init(&d, stderr, name, NULL, 0);
  return tile_target_load(name, t, &d) && tile_target_set_torus(t, "1", &d);
}

/* Places every buffer at the next aligned address of its memory (from 64, so address 0
 * stays unused). */
static inline void sfx_layout(TileMir *m) {
  int64_t next[TILE_SPACE_COUNT] = {64, 64, 64};
  for (int32_t b = 0; b < m->nbufs; b++) {
    TileMirBuffer *buf = &m->bufs[b];
    int64_t a = (next[buf->space] + buf->align - 1) / buf->align * buf->align;
    buf->addr = a;
    next[buf->space] = a + buf->bytes * buf->nslots;
  }
}

/* Scheduled code with machine registers and absolute immediates; NULL when there are
 * more virtual registers of a class than the target has. */
static inline TileBundle *sfx_bundles(const TileMir *m, const TileMirCode *c) {
  int32_t *phys = calloc((size_t)m->nregs + 1, sizeof(int32_t));
  int ns = 0, nv = 0;
  for (int32_t r = 0; r < m->nregs; r++)
    phys[r] = m->reg_class[r] == TILE_MIR_SREG ? ns++ : nv++;
  if (ns > m->target->nsregs || nv > m->target->nvregs) {
    free(phys);
    return NULL;
  }
  TileBundle *out = calloc((size_t)c->nbundles + 1, sizeof *out);
  for (int32_t i = 0; i < c->nbundles; i++)
    for (int w = 0; w < TILE_BUNDLE_SLOTS; w++) {
      const TileMirInst *in = &c->b[i].slot[w];
      TileMInst o = {(uint8_t)in->op, 0, 0, 0, 0, in->imm};
      TileOperand ops[TILE_MAX_OPERANDS];
      int n = tile_mop_operands(in->op, ops);
      for (int k = 0; k < n; k++) {
        char fl = ops[k].field;
        if (fl == 'i') continue; /* the imm was copied whole */
        /* MIR holds the wide loop-body field 'w' whole in c */
        int32_t v = fl == 'd' ? in->d : fl == 'a' ? in->a : fl == 'b' ? in->b : in->c;
        bool reg = ops[k].kind == 'S' || ops[k].kind == 's' || ops[k].kind == 'V' || ops[k].kind == 'v';
        tile_minst_set_field(&o, fl, reg ? phys[v] : v);
      }
      if (in->imm_buf >= 0) o.imm = (int32_t)(in->imm + m->bufs[in->imm_buf].addr);
      out[i].slot[w] = o;
    }
  free(phys);
  return out;
}

/* An emulator running the code (after sfx_layout), with initial data and relocations. */
static inline TileEmu *sfx_emu(const TileMir *m, const TileMirCode *c, TileEmuMode mode) {
  TileBundle *b = sfx_bundles(m, c);
  if (!b) {
    fprintf(stderr, "sfx_emu: too many virtual registers for the trivial assignment\n");
    return NULL;
  }
  TileObjCode code = {TILE_OBJ_ALL_CHIPS, c->nbundles, b};
  TileObjData *data = calloc((size_t)m->nbufs + 1, sizeof *data);
  int nd = 0;
  for (int32_t i = 0; i < m->nbufs; i++) {
    const TileMirBuffer *buf = &m->bufs[i];
    if (!buf->init || buf->init_len <= 0) continue;
    uint8_t *bytes = malloc((size_t)buf->init_len);
    memcpy(bytes, buf->init, (size_t)buf->init_len);
    for (int32_t r = 0; r < m->nrelocs; r++) {
      const TileMirReloc *rl = &m->relocs[r];
      if (rl->buf != i) continue;
      int64_t a = m->bufs[rl->target].addr + rl->addend;
      uint32_t w = rl->high ? (uint32_t)((uint64_t)a >> 32) : (uint32_t)a;
      memcpy(bytes + rl->offset, &w, 4);
    }
    data[nd++] = (TileObjData){TILE_OBJ_ALL_CHIPS, buf->space, buf->addr, buf->init_len, bytes};
  }
  TileObject obj;
  memset(&obj, 0, sizeof obj);
  snprintf(obj.target, sizeof obj.target, "%s", m->target->name);
  obj.ncode = 1;
  obj.code = &code;
  obj.ndata = nd;
  obj.data = data;
  TileEmuOptions o;
  tile_emu_options_default(&o);
  o.mode = mode;
  o.check_all = true;
  TileDiag d;
  tile_diag_init(&d, stderr, "sched test", NULL, 0);
  TileEmu *e = tile_emu_create(&obj, m->target, &o, &d);
  for (int i = 0; i < nd; i++) free(data[i].bytes);
  free(data);
  free(b);
  return e;
}

/* Runs e; the chip's cycle count, or -1 after printing the fault. */
static inline int64_t sfx_run(TileEmu *e) {
  if (!e) return -1;
  if (tile_emu_run(e) != TILE_EMU_OK) {
    const TileEmuFault *f = tile_emu_fault(e);
    fprintf(stderr, "emulator: %s: %s\n", tile_emu_fault_name(f->kind), f->message ? f->message : tile_emu_error(e));
    return -1;
  }
  TileEmuStats s;
  tile_emu_stats(e, &s);
  return s.chips[0].cycles;
}

/* With TILE_SCHED_DUMP set, prints the bundles (one line each, ops by mnemonic). */
static inline void sfx_dump(const char *what, const TileMirCode *c) {
  if (!getenv("TILE_SCHED_DUMP")) return;
  fprintf(stderr, "== %s: %d bundles\n", what, (int)c->nbundles);
  for (int32_t i = 0; i < c->nbundles; i++) {
    fprintf(stderr, "%4d:", (int)i);
    for (int w = 0; w < TILE_BUNDLE_SLOTS; w++) {
      const TileMirInst *in = &c->b[i].slot[w];
      if (in->op == TILE_MOP_NOP) continue;
      fprintf(stderr, " %s", tile_mop_info[in->op].mnemonic);
      if (in->op == TILE_MOP_LOOP) fprintf(stderr, "(%d,%d)", (int)in->c, (int)in->imm);
    }
    fprintf(stderr, "\n");
  }
}

/* Schedules m, lays it out and runs it; the cycle count or -1. Keeps the code in *c. */
static inline int64_t sfx_schedule_run(TileMir *m, TileMirCode *c, TileEmuMode mode, TileEmu **keep) {
  TileDiag d;
  tile_diag_init(&d, stderr, "sched test", NULL, 0);
  if (!tile_mir_schedule(m, c, &d)) return -1;
  sfx_dump("schedule", c);
  sfx_layout(m);
  TileEmu *e = sfx_emu(m, c, mode);
  int64_t cycles = sfx_run(e);
  if (keep) *keep = e;
  else tile_emu_free(e);
  return cycles;
}

/* An instruction with memory references: up to two (buf, access, slot_ofs) triples. */
static inline int32_t sfx_add(TileMir *m, TileMirInst in) { return tile_mir_add(m, in); }

static inline TileMirInst sfx_mem(TileMirInst in, int32_t buf, int access, int ofs) {
  tile_mir_mem(&in, buf, access, ofs);
  return in;
}

/* `li d, imm` relative to buffer buf (its address + imm). */
static inline TileMirInst sfx_addr(int32_t d, int32_t buf, int32_t imm) {
  TileMirInst in = tile_mir_inst(TILE_MOP_LI, d, 0, 0, 0, imm);
  in.imm_buf = buf;
  return in;
}

static inline float sfx_f(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static inline int32_t sfx_bits(float f) {
  int32_t u;
  memcpy(&u, &f, 4);
  return u;
}

#endif
