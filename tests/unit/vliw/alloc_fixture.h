/* Shared helpers of the register allocation, layout and emission tests: targets, a
 * bundle builder for scheduled MIR code written by hand (so these tests pin exact
 * cycles and do not depend on the scheduler), the back half of the pipeline (regalloc,
 * layout, emit) and a strict-mode emulator run with f32 inputs and outputs. */
#ifndef TILE_TEST_ALLOC_FIXTURE_H
#define TILE_TEST_ALLOC_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "tile/diag.h"
#include "tile/emu.h"
#include "tile/mir.h"
#include "tile/object.h"
#include "tile/target.h"

/* A named target with one chip (the programs here are single-chip). */
static inline TileTarget af_target(const char *name) {
  TileTarget t;
  TileDiag d;
  memset(&t, 0, sizeof t);
  tile_diag_init(&d, stderr, "target", NULL, 0);
  if (!tile_target_load(name, &t, &d) || !tile_target_set_torus(&t, "1", &d)) {
    fprintf(stderr, "cannot load target %s\n", name);
    abort();
  }
  return t;
}

/* Puts an inst into the first free word of its slot kind in bundle p (growing the code). */
static inline void af_put(TileMirCode *c, int32_t p, TileMirInst in) {
  if (p >= c->cap) {
    int32_t cap = c->cap ? c->cap : 16;
    while (cap <= p) cap *= 2;
    c->b = realloc(c->b, (size_t)cap * sizeof *c->b);
    memset(c->b + c->cap, 0, (size_t)(cap - c->cap) * sizeof *c->b);
    c->cap = cap;
  }
  if (p >= c->nbundles) c->nbundles = p + 1;
  TileSlot s = tile_mop_info[in.op].slot;
  for (int w = tile_slot_first(s); w < tile_slot_first(s) + tile_slot_words(s); w++)
    if (c->b[p].slot[w].op == TILE_MOP_NOP) {
      c->b[p].slot[w] = in;
      return;
    }
  fprintf(stderr, "af_put: bundle %d has no free %s word\n", (int)p, tile_slot_name(s));
  abort();
}

/* Shorthands for the insts the tests use. */
static inline TileMirInst af_op(int op, int32_t d, int32_t a, int32_t b, int32_t c, int32_t imm) {
  return tile_mir_inst(op, d, a, b, c, imm);
}
/* `li d, buf+off`: the address of a buffer. */
static inline TileMirInst af_addr(int32_t d, int32_t buf, int32_t off) {
  TileMirInst in = tile_mir_inst(TILE_MOP_LI, d, 0, 0, 0, off);
  in.imm_buf = buf;
  return in;
}
static inline TileMirInst af_mem(TileMirInst in, int32_t buf, int access) {
  tile_mir_mem(&in, buf, access, 0);
  return in;
}
/* `loop body, trips` in bundle p (the branch word). */
static inline void af_loop(TileMirCode *c, int32_t p, int32_t body, int32_t trips) {
  af_put(c, p, af_op(TILE_MOP_LOOP, 0, 0, 0, body, trips));
}
static inline void af_halt(TileMirCode *c, int32_t p) {
  af_put(c, p, af_op(TILE_MOP_HALT, 0, 0, 0, 0, 0));
}

/* The first inst with op in bundle p (NULL if none). */
static inline TileMirInst *af_find(TileMirCode *c, int32_t p, int op) {
  for (int w = 0; p < c->nbundles && w < TILE_BUNDLE_SLOTS; w++)
    if (c->b[p].slot[w].op == op) return &c->b[p].slot[w];
  return NULL;
}

/* Regalloc + layout + emit; prints the diagnostics and returns false on failure. */
static inline bool af_back(TileMir *m, TileMirCode *c, TileObject *obj) {
  TileDiag d;
  tile_diag_init(&d, stderr, "test", NULL, 0);
  return tile_mir_regalloc(m, c, &d) && tile_mir_layout(m, &d) && tile_mir_emit(m, c, obj, &d);
}

/* Runs obj in strict mode with the given bound inputs; fills outputs; returns the
 * emulator for further reads (the caller frees it) or NULL after printing why. */
typedef struct AfBind {
  const char *name;
  void *data;
  size_t bytes;
} AfBind;

static inline TileEmu *af_run(const TileObject *obj, const TileTarget *t, const AfBind *in, int nin,
                              const AfBind *out, int nout) {
  TileEmuOptions o;
  tile_emu_options_default(&o);
  o.strict = true;
  o.check_all = true;
  TileDiag d;
  tile_diag_init(&d, stderr, "test", NULL, 0);
  TileEmu *e = tile_emu_create(obj, t, &o, &d);
  if (!e) return NULL;
  for (int i = 0; i < nin; i++)
    if (!tile_emu_set_input(e, in[i].name, in[i].data, in[i].bytes)) {
      fprintf(stderr, "set_input %s: %s\n", in[i].name, tile_emu_error(e));
      tile_emu_free(e);
      return NULL;
    }
  if (tile_emu_run(e) != TILE_EMU_OK) {
    const TileEmuFault *f = tile_emu_fault(e);
    fprintf(stderr, "run: %s\n", f->kind != TILE_EMU_FAULT_NONE ? f->message : tile_emu_error(e));
    tile_emu_free(e);
    return NULL;
  }
  for (int i = 0; i < nout; i++)
    if (!tile_emu_get_output(e, out[i].name, out[i].data, out[i].bytes)) {
      fprintf(stderr, "get_output %s: %s\n", out[i].name, tile_emu_error(e));
      tile_emu_free(e);
      return NULL;
    }
  return e;
}

/* A DMA descriptor (docs/emulator.md) as the initial contents of SMEM buffer desc:
 * one contiguous copy of `bytes` from src to dst, signalling semaphore sem on
 * completion; the two addresses are relocations. */
static inline void af_desc(TileMir *m, int32_t desc, int32_t src, int32_t dst, int32_t bytes,
                           int32_t sem) {
  int32_t w[16] = {
      m->bufs[src].space, m->bufs[dst].space, 0, 0, 0, 0, bytes, 1, 1, 0, 0, 0, 0, -1, sem, -1};
  tile_mir_data(m, desc, w, sizeof w);
  tile_mir_reloc(m, desc, 8, src, 0, false);
  tile_mir_reloc(m, desc, 12, src, 0, true);
  tile_mir_reloc(m, desc, 16, dst, 0, false);
  tile_mir_reloc(m, desc, 20, dst, 0, true);
}

/* Text a printer writes, as a malloc'ed string. */
#define AF_CAPTURE(var, call)                         \
  char *var = NULL;                                   \
  do {                                                \
    size_t var##_len = 0;                             \
    FILE *var##_f = open_memstream(&var, &var##_len); \
    FILE *out = var##_f;                              \
    call;                                             \
    fclose(var##_f);                                  \
  } while (0)

#endif
