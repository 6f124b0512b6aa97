/* The emulator's API: building a machine for an object, data in and out, the run.
 *
 * tile_emu_create checks everything that can be checked before a run (the target, every
 * op, every chip's code, initial data and symbols inside their memories) so that a run
 * fails only for what the program does. Code shared by several chips (SPMD) is decoded
 * once. */
#include <stdlib.h>
#include <string.h>

#include "emu_internal.h"

void tile_emu_options_default(TileEmuOptions *o) {
  memset(o, 0, sizeof *o);
  o->mode = TILE_EMU_FUNCTIONAL;
  o->threads = 1;
  o->strict = true;
}

const char *tile_emu_mode_name(TileEmuMode m) {
  return m == TILE_EMU_TIMING ? "timing" : "functional";
}

bool tile_emu_mode_parse(const char *s, TileEmuMode *m) {
  if (strcmp(s, "functional") == 0) *m = TILE_EMU_FUNCTIONAL;
  else if (strcmp(s, "timing") == 0) *m = TILE_EMU_TIMING;
  else return false;
  return true;
}

const char *tile_emu_fault_name(TileEmuFaultKind k) {
  static const char *names[] = {
#define X(e, n, m) n,
      TILE_EMU_FAULTS(X)
#undef X
  };
  return (int)k >= 0 && k < TILE_EMU_FAULT_COUNT ? names[k] : "?";
}

void emu_set_error(Emu *e, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->err, sizeof e->err, fmt, ap);
  va_end(ap);
}

const char *tile_emu_error(const TileEmu *e) { return e->err; }
int32_t tile_emu_chips(const TileEmu *e) { return e->nchips; }
const TileTarget *tile_emu_target(const TileEmu *e) { return &e->t; }

/* Bytes one element of e takes in memory. */
static int64_t elem_bytes(uint8_t elem) {
  int bits = tile_elem_bits((TileElem)elem);
  return bits <= 0 ? 0 : (bits + 7) / 8;
}

static int64_t sym_chip_bytes(const TileObjSymbol *s) {
  int64_t n = elem_bytes(s->elem);
  for (int k = 0; k < s->rank; k++) n *= s->dims[k];
  return n;
}

static bool check_symbol(const TileTarget *t, const TileObjSymbol *s, TileDiag *d) {
  if (s->space >= TILE_SPACE_COUNT)
    return tile_error(d, (TileLoc){0}, "symbol '%s' lives in unknown space %d", s->name, s->space);
  if (s->elem == TILE_ELEM_NONE || s->elem >= TILE_ELEM_COUNT)
    return tile_error(d, (TileLoc){0}, "symbol '%s' has unknown element type %d", s->name,
                      s->elem);
  if (s->rank < 0 || s->rank > TILE_MAX_RANK)
    return tile_error(d, (TileLoc){0}, "symbol '%s' has rank %d", s->name, s->rank);
  if (s->kind < TILE_BIND_IN || s->kind > TILE_BIND_INOUT)
    return tile_error(d, (TileLoc){0}, "symbol '%s' has unknown binding kind %d", s->name, s->kind);
  int64_t n = elem_bytes(s->elem);
  for (int k = 0; k < s->rank; k++) {
    if (s->dims[k] < 0 || (s->dims[k] > 0 && n > INT64_MAX / s->dims[k]))
      return tile_error(d, (TileLoc){0}, "symbol '%s' has an impossible shape", s->name);
    n *= s->dims[k];
  }
  int64_t size = s->space == TILE_SPACE_HBM ? t->hbm_bytes
                 : s->space == TILE_SPACE_VMEM ? t->vmem_bytes
                                               : t->smem_bytes;
  if (s->addr < 0 || n > size || s->addr > size - n)
    return tile_error(d, (TileLoc){0},
                      "symbol '%s' (%lld bytes at %s address %lld) does not fit in the %lld bytes "
                      "of %s on target %s",
                      s->name, (long long)n, tile_space_name((TileSpace)s->space),
                      (long long)s->addr, (long long)size, tile_space_name((TileSpace)s->space),
                      t->name);
  return true;
}

/* In timing-only mode only SMEM holds data. */
static bool keeps_data(const Emu *e, uint8_t space) {
  return e->functional || space == TILE_SPACE_SMEM;
}

/* The object's initial data: in timing-only mode HBM keeps it too, as the source of
 * tables a program copies into SMEM (the only copies that move bytes there). */
static bool keeps_initial_data(const Emu *e, uint8_t space) {
  return keeps_data(e, space) || space == TILE_SPACE_HBM;
}

TileEmu *tile_emu_create(const TileObject *obj, const TileTarget *t, const TileEmuOptions *o,
                         TileDiag *d) {
  TileEmuOptions defaults;
  if (!o) {
    tile_emu_options_default(&defaults);
    o = &defaults;
  }
  if (o->mode != TILE_EMU_FUNCTIONAL && o->mode != TILE_EMU_TIMING) {
    tile_error(d, (TileLoc){0}, "unknown emulator mode %d", (int)o->mode);
    return NULL;
  }
  if (o->threads < 1 || o->threads > 4096) {
    tile_error(d, (TileLoc){0}, "threads must be in 1..4096, not %d", o->threads);
    return NULL;
  }
  if (o->watchdog < 0) {
    tile_error(d, (TileLoc){0}, "the watchdog must be a positive number of cycles");
    return NULL;
  }
  if (!emu_check_target(t, d)) return NULL;
  int64_t nchips = tile_target_chips(t);
  Emu *e = calloc(1, sizeof *e);
  if (!e) {
    tile_error(d, (TileLoc){0}, "out of memory");
    return NULL;
  }
  e->t = *t;
  e->o = *o;
  e->fault = (TileEmuFault){TILE_EMU_FAULT_NONE, -1, -1, 0, ""};
  e->functional = o->mode == TILE_EMU_FUNCTIONAL;
  e->strict = o->strict;
  e->nchips = (int32_t)nchips;
  e->vlen = t->vreg_sublanes * t->vreg_lanes;
  e->watchdog = o->watchdog > 0 ? o->watchdog
                : t->watchdog_cycles > 0 ? t->watchdog_cycles
                                         : 1000000000;
  /* the scoreboard packs a cycle and an op into 64 bits (EmuChip.sb) */
  if (e->watchdog > EMU_MAX_CYCLES) e->watchdog = EMU_MAX_CYCLES;
  e->window = nchips > 1 ? tile_target_hop_cycles(t) : EMU_NEVER;

  /* which code block each chip runs */
  int32_t *code_of = malloc((size_t)nchips * sizeof *code_of);
  e->progs = calloc((size_t)(obj->ncode ? obj->ncode : 1), sizeof *e->progs);
  e->chips = calloc((size_t)nchips, sizeof *e->chips);
  if (!code_of || !e->progs || !e->chips) {
    free(code_of);
    tile_error(d, (TileLoc){0}, "out of memory");
    tile_emu_free(e);
    return NULL;
  }
  int32_t spmd = -1;
  for (int64_t c = 0; c < nchips; c++) code_of[c] = -1;
  bool ok = true;
  for (int32_t i = 0; ok && i < obj->ncode; i++) {
    int32_t chip = obj->code[i].chip;
    if (chip == TILE_OBJ_ALL_CHIPS) {
      if (spmd >= 0) ok = tile_error(d, (TileLoc){0}, "the object has two codes for every chip");
      spmd = i;
    } else if (chip < 0 || chip >= nchips) {
      ok = tile_error(d, (TileLoc){0},
                      "the object has code for chip %d, but the %s torus has chips 0..%lld", chip,
                      t->name, (long long)nchips - 1);
    } else if (code_of[chip] >= 0) {
      ok = tile_error(d, (TileLoc){0}, "the object has two codes for chip %d", chip);
    } else {
      code_of[chip] = i;
    }
  }
  for (int64_t c = 0; ok && c < nchips; c++) {
    if (code_of[c] < 0) code_of[c] = spmd;
    if (code_of[c] < 0)
      ok = tile_error(d, (TileLoc){0}, "the object has no code for chip %lld", (long long)c);
  }
  for (int32_t i = 0; ok && i < obj->ncode; i++) {
    if (!emu_decode(t, &obj->code[i], !o->check_all, &e->progs[i], d)) {
      if (obj->code[i].chip >= 0) tile_note(d, (TileLoc){0}, "in the code for chip %d", obj->code[i].chip);
      ok = false;
    }
    e->nprogs = i + 1;
  }
  for (int64_t c = 0; ok && c < nchips; c++)
    if (!emu_chip_init(e, &e->chips[c], (int32_t)c, &e->progs[code_of[c]]))
      ok = tile_error(d, (TileLoc){0}, "out of memory building chip %lld", (long long)c);
  free(code_of);
  if (ok && !emu_net_init(e)) ok = tile_error(d, (TileLoc){0}, "out of memory building the torus");

  /* initial memory */
  for (int32_t i = 0; ok && i < obj->ndata; i++) {
    const TileObjData *dd = &obj->data[i];
    if (dd->space >= TILE_SPACE_COUNT || dd->chip < TILE_OBJ_ALL_CHIPS || dd->chip >= nchips ||
        dd->size < 0 || (dd->size > 0 && !dd->bytes)) {
      ok = tile_error(d, (TileLoc){0}, "initial data block %d names space %d of chip %d", i,
                      dd->space, dd->chip);
      break;
    }
    for (int64_t c = 0; ok && c < nchips; c++) {
      if (dd->chip != TILE_OBJ_ALL_CHIPS && dd->chip != c) continue;
      const EmuMem *m = &e->chips[c].mem[dd->space];
      if (dd->addr < 0 || dd->size > m->size || dd->addr > m->size - dd->size) {
        ok = tile_error(d, (TileLoc){0},
                        "initial data block %d (%lld bytes at %s address %lld) does not fit in "
                        "%lld bytes",
                        i, (long long)dd->size, tile_space_name((TileSpace)dd->space),
                        (long long)dd->addr, (long long)m->size);
        break;
      }
      if (keeps_initial_data(e, dd->space) && dd->size > 0 &&
          !emu_mem_write(&e->chips[c].mem[dd->space], dd->addr, dd->bytes, (size_t)dd->size))
        ok = tile_error(d, (TileLoc){0}, "out of memory placing initial data");
    }
  }
  /* symbols */
  if (ok && obj->nsyms > 0) {
    e->syms = malloc((size_t)obj->nsyms * sizeof *e->syms);
    if (!e->syms) ok = tile_error(d, (TileLoc){0}, "out of memory");
  }
  for (int32_t i = 0; ok && i < obj->nsyms; i++) {
    ok = check_symbol(t, &obj->syms[i], d);
    if (ok) {
      e->syms[i] = obj->syms[i];
      e->syms[i].name[sizeof e->syms[i].name - 1] = '\0';
      e->nsyms = i + 1;
    }
  }
  if (!ok) {
    tile_emu_free(e);
    return NULL;
  }
  return e;
}

void tile_emu_free(TileEmu *e) {
  if (!e) return;
  if (e->chips)
    for (int32_t c = 0; c < e->nchips; c++)
      if (e->chips[c].emu) emu_chip_free(&e->chips[c]);
  emu_net_free(e);
  for (int i = 0; i < e->nprogs; i++) emu_program_free(&e->progs[i]);
  free(e->progs);
  free(e->chips);
  free(e->syms);
  free(e->fault_msg);
  free(e->chip_stats);
  free(e->link_stats);
  free(e);
}

/* ---- data in and out ---- */

static const TileObjSymbol *find_sym(TileEmu *e, const char *name) {
  for (int i = 0; i < e->nsyms; i++)
    if (strcmp(e->syms[i].name, name) == 0) return &e->syms[i];
  emu_set_error(e, "the object has no symbol '%s'", name);
  return NULL;
}

int64_t tile_emu_symbol_bytes(const TileEmu *e, const char *name) {
  for (int i = 0; i < e->nsyms; i++)
    if (strcmp(e->syms[i].name, name) == 0)
      return sym_chip_bytes(&e->syms[i]) * (e->syms[i].per_chip ? e->nchips : 1);
  return -1;
}

static bool check_len(TileEmu *e, const TileObjSymbol *s, size_t len, const char *what) {
  int64_t want = sym_chip_bytes(s) * (s->per_chip ? e->nchips : 1);
  if ((int64_t)len == want) return true;
  emu_set_error(e, "%s '%s' takes %lld bytes (%s%lld elements of %s%s), not %zu", what, s->name,
                (long long)want, s->per_chip ? "per chip " : "",
                (long long)(sym_chip_bytes(s) / (elem_bytes(s->elem) ? elem_bytes(s->elem) : 1)),
                tile_elem_name((TileElem)s->elem), s->per_chip ? ", one slice per chip" : "", len);
  return false;
}

bool tile_emu_set_input(TileEmu *e, const char *name, const void *bytes, size_t len) {
  const TileObjSymbol *s = find_sym(e, name);
  if (!s) return false;
  if (!(s->kind & TILE_BIND_IN)) {
    emu_set_error(e, "symbol '%s' is an output; it takes no input", name);
    return false;
  }
  if (!check_len(e, s, len, "input")) return false;
  if (!keeps_data(e, s->space)) return true;
  int64_t n = sym_chip_bytes(s);
  for (int32_t c = 0; c < e->nchips; c++) {
    const uint8_t *src = (const uint8_t *)bytes + (s->per_chip ? (size_t)c * (size_t)n : 0);
    if (!emu_mem_write(&e->chips[c].mem[s->space], s->addr, src, (size_t)n)) {
      emu_set_error(e, "out of memory binding input '%s'", name);
      return false;
    }
  }
  return true;
}

bool tile_emu_get_output(TileEmu *e, const char *name, void *bytes, size_t len) {
  const TileObjSymbol *s = find_sym(e, name);
  if (!s) return false;
  if (!(s->kind & TILE_BIND_OUT)) {
    emu_set_error(e, "symbol '%s' is an input, not an output", name);
    return false;
  }
  if (!check_len(e, s, len, "output")) return false;
  if (!keeps_data(e, s->space)) {
    emu_set_error(e, "output '%s' lives in %s, which holds no data in timing-only mode", name,
                  tile_space_name((TileSpace)s->space));
    return false;
  }
  int64_t n = sym_chip_bytes(s);
  for (int32_t c = 0; c < (s->per_chip ? e->nchips : 1); c++)
    emu_mem_read(&e->chips[c].mem[s->space], s->addr, (uint8_t *)bytes + (size_t)c * (size_t)n,
                 (size_t)n);
  return true;
}

static EmuMem *raw_mem(TileEmu *e, int32_t chip, TileSpace space, int64_t addr, size_t len) {
  if (chip < 0 || chip >= e->nchips || (int)space < 0 || space >= TILE_SPACE_COUNT) {
    emu_set_error(e, "chip %d or space %d does not exist", chip, (int)space);
    return NULL;
  }
  if (!keeps_data(e, space)) {
    emu_set_error(e, "%s holds no data in timing-only mode", tile_space_name(space));
    return NULL;
  }
  EmuMem *m = &e->chips[chip].mem[space];
  if (addr < 0 || (int64_t)len > m->size || addr > m->size - (int64_t)len) {
    emu_set_error(e, "%zu bytes at %s address %lld are outside its %lld bytes", len,
                  tile_space_name(space), (long long)addr, (long long)m->size);
    return NULL;
  }
  return m;
}

bool tile_emu_write_memory(TileEmu *e, int32_t chip, TileSpace space, int64_t addr,
                           const void *bytes, size_t len) {
  EmuMem *m = raw_mem(e, chip, space, addr, len);
  if (m && !emu_mem_write(m, addr, bytes, len)) {
    emu_set_error(e, "out of memory");
    return false;
  }
  return m != NULL;
}

bool tile_emu_read_memory(TileEmu *e, int32_t chip, TileSpace space, int64_t addr, void *bytes,
                          size_t len) {
  EmuMem *m = raw_mem(e, chip, space, addr, len);
  return m && emu_mem_read(m, addr, bytes, len);
}

int32_t tile_emu_sreg(const TileEmu *e, int32_t chip, int reg) {
  if (chip < 0 || chip >= e->nchips || reg < 0 || reg >= 64) return 0;
  return e->chips[chip].s[reg];
}

bool tile_emu_vreg(const TileEmu *e, int32_t chip, int reg, uint32_t *words, size_t nwords) {
  if (!e->functional || chip < 0 || chip >= e->nchips || reg < 0 || reg >= e->t.nvregs ||
      nwords != (size_t)e->vlen)
    return false;
  const EmuLane *v = e->chips[chip].v + (size_t)reg * (size_t)e->vlen;
  for (size_t i = 0; i < nwords; i++) words[i] = v[i].u;
  return true;
}

int64_t tile_emu_sem(const TileEmu *e, int32_t chip, int sem) {
  if (chip < 0 || chip >= e->nchips || sem < 0 || sem >= 64) return 0;
  return e->chips[chip].sem[sem];
}

/* ---- running ---- */

TileEmuStatus tile_emu_run(TileEmu *e) {
  if (e->ran) {
    emu_set_error(e, "this emulator has already run; create a new one for another run");
    return TILE_EMU_ERROR;
  }
  e->ran = true;
  e->status = emu_run(e);
  emu_stats_finish(e);
  return e->status;
}

const TileEmuFault *tile_emu_fault(const TileEmu *e) { return &e->fault; }
