/* Faults and hazards: the rules that are not in the scoreboard loop itself, and the
 * sentences every fault carries.
 *
 * A fault names the chip, the bundle (pc) and the cycle, then says what went wrong in
 * terms of the program: which register, which op produced it and when, which address
 * and which memory. The first fault of a chip stops that chip; run.c reports the
 * earliest fault of the run, by (cycle, chip).
 *
 * Memory written by a store lands latency cycles after the store issues (lat.vstore
 * for vst, lat.smem for sst). Until then a load of those bytes would read the old data
 * on the machine, so it is a hazard; the stores in flight are kept in a short list
 * (at most latency x slots entries) and pruned as they land. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu_internal.h"

const char *emu_reg_name(int sb, char *buf, size_t n) {
  snprintf(buf, n, "%c%d", sb >= EMU_SB_V ? 'v' : 's', sb >= EMU_SB_V ? sb - EMU_SB_V : sb);
  return buf;
}

static bool vfault(EmuChip *c, TileEmuFaultKind k, int64_t cycle, const char *fmt, va_list ap) {
  if (c->faulted) return false;
  char body[768];
  vsnprintf(body, sizeof body, fmt, ap);
  size_t n = strlen(body) + 96;
  char *msg = malloc(n);
  if (msg) snprintf(msg, n, "chip %d, pc %d, cycle %lld: %s", c->id, c->pc, (long long)cycle, body);
  c->faulted = true;
  c->fault_kind = k;
  c->fault_pc = c->pc;
  c->fault_cycle = cycle;
  c->fault_msg = msg;
  return false;
}

bool emu_fault(EmuChip *c, TileEmuFaultKind k, int64_t cycle, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfault(c, k, cycle, fmt, ap);
  va_end(ap);
  return false;
}

bool emu_hazard_read(EmuChip *c, int sb, uint8_t reader, int64_t t) {
  char r[8];
  int64_t land = c->ready[sb], issue = c->prod_issue[sb];
  return emu_fault(c, TILE_EMU_FAULT_HAZARD, t,
                   "%s read by %s before its producer (%s at cycle %lld, latency %lld) lands at "
                   "cycle %lld",
                   emu_reg_name(sb, r, sizeof r), tile_mop_info[reader].mnemonic,
                   tile_mop_info[c->prod_op[sb]].mnemonic, (long long)issue,
                   (long long)(land - issue), (long long)land);
}

bool emu_hazard_waw(EmuChip *c, int sb, uint8_t writer, int64_t land, int64_t t) {
  char r[8];
  int64_t pend = c->ready[sb], issue = c->prod_issue[sb];
  if (issue == t)
    return emu_fault(c, TILE_EMU_FAULT_HAZARD, t,
                     "%s is written twice by one bundle (%s landing at cycle %lld and %s landing "
                     "at cycle %lld)",
                     emu_reg_name(sb, r, sizeof r), tile_mop_info[c->prod_op[sb]].mnemonic,
                     (long long)pend, tile_mop_info[writer].mnemonic, (long long)land);
  return emu_fault(c, TILE_EMU_FAULT_HAZARD, t,
                   "%s written by %s (landing at cycle %lld) while the write of %s (cycle %lld, "
                   "latency %lld) is still pending until cycle %lld: the writes would land out "
                   "of order",
                   emu_reg_name(sb, r, sizeof r), tile_mop_info[writer].mnemonic, (long long)land,
                   tile_mop_info[c->prod_op[sb]].mnemonic, (long long)issue,
                   (long long)(pend - issue), (long long)pend);
}

bool emu_check_range(EmuChip *c, uint8_t space, int64_t addr, int64_t n, int64_t t,
                     const char *what) {
  int64_t size = c->mem[space].size;
  if (addr >= 0 && n >= 0 && addr <= size && n <= size - addr) return true;
  return emu_fault(c, TILE_EMU_FAULT_OUT_OF_BOUNDS, t,
                   "%s touches %s bytes %lld..%lld, outside the %lld bytes of %s", what,
                   tile_space_name((TileSpace)space), (long long)addr, (long long)(addr + n - 1),
                   (long long)size, tile_space_name((TileSpace)space));
}

static void prune_stores(EmuChip *c, int64_t t) {
  int k = 0;
  for (int i = 0; i < c->npend_st; i++)
    if (c->pend_st[i].land > t) c->pend_st[k++] = c->pend_st[i];
  c->npend_st = k;
}

void emu_store_note(EmuChip *c, uint8_t space, int64_t lo, int64_t hi, int64_t land, int64_t t,
                    uint8_t op) {
  if (land > c->last_land) c->last_land = land; /* a halted chip waits for its stores too */
  prune_stores(c, t);
  if (c->npend_st == c->cap_pend_st) {
    int nc = c->cap_pend_st ? c->cap_pend_st * 2 : 16;
    EmuPendStore *n = realloc(c->pend_st, (size_t)nc * sizeof *n);
    if (!n) return; /* only the hazard check is lost, never data */
    c->pend_st = n;
    c->cap_pend_st = nc;
  }
  c->pend_st[c->npend_st++] = (EmuPendStore){lo, hi, land, t, space, op};
}

bool emu_store_check(EmuChip *c, uint8_t space, int64_t lo, int64_t hi, int64_t t, uint8_t op) {
  for (int i = 0; i < c->npend_st; i++) {
    const EmuPendStore *s = &c->pend_st[i];
    if (s->space != space || s->land <= t || s->hi <= lo || hi <= s->lo) continue;
    if (!c->emu->strict) {
      c->st.hazards_ignored++;
      return true;
    }
    int64_t a = lo > s->lo ? lo : s->lo, b = hi < s->hi ? hi : s->hi;
    return emu_fault(c, TILE_EMU_FAULT_HAZARD, t,
                     "%s reads %s bytes %lld..%lld before the %s of cycle %lld (latency %lld) "
                     "lands them at cycle %lld",
                     tile_mop_info[op].mnemonic, tile_space_name((TileSpace)space), (long long)a,
                     (long long)(b - 1), tile_mop_info[s->op].mnemonic, (long long)s->issue,
                     (long long)(s->land - s->issue), (long long)s->land);
  }
  return true;
}
