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

/* Where the pending write of register sb issued: its landing minus its op's latency. */
static int64_t producer_issue(const EmuChip *c, int sb) {
  const TileMopInfo *p = &tile_mop_info[emu_sb_op(c, sb)];
  return emu_sb_land(c, sb) - c->emu->t.latency[p->latency];
}

bool emu_hazard_read(EmuChip *c, int sb, uint8_t reader, int64_t t) {
  char r[16];
  int64_t land = emu_sb_land(c, sb), issue = producer_issue(c, sb);
  return emu_fault(c, TILE_EMU_FAULT_HAZARD, t,
                   "%s read by %s before its producer (%s at cycle %lld, latency %lld) lands at "
                   "cycle %lld",
                   emu_reg_name(sb, r, sizeof r), tile_mop_info[reader].mnemonic,
                   tile_mop_info[emu_sb_op(c, sb)].mnemonic, (long long)issue,
                   (long long)(land - issue), (long long)land);
}

bool emu_hazard_waw(EmuChip *c, int sb, uint8_t writer, int64_t land, int64_t t) {
  char r[16];
  int64_t pend = emu_sb_land(c, sb), issue = producer_issue(c, sb);
  if (issue == t)
    return emu_fault(c, TILE_EMU_FAULT_HAZARD, t,
                     "%s is written twice by one bundle (%s landing at cycle %lld and %s landing "
                     "at cycle %lld)",
                     emu_reg_name(sb, r, sizeof r), tile_mop_info[emu_sb_op(c, sb)].mnemonic,
                     (long long)pend, tile_mop_info[writer].mnemonic, (long long)land);
  return emu_fault(c, TILE_EMU_FAULT_HAZARD, t,
                   "%s written by %s (landing at cycle %lld) while the write of %s (cycle %lld, "
                   "latency %lld) is still pending until cycle %lld: the writes would land out "
                   "of order",
                   emu_reg_name(sb, r, sizeof r), tile_mop_info[writer].mnemonic, (long long)land,
                   tile_mop_info[emu_sb_op(c, sb)].mnemonic, (long long)issue,
                   (long long)(pend - issue), (long long)pend);
}

bool emu_range_fault(EmuChip *c, uint8_t space, int64_t addr, int64_t n, int64_t t,
                     const char *what) {
  int64_t size = c->mem[space].size;
  return emu_fault(c, TILE_EMU_FAULT_OUT_OF_BOUNDS, t,
                   "%s touches %s bytes %lld..%lld, outside the %lld bytes of %s", what,
                   tile_space_name((TileSpace)space), (long long)addr, (long long)(addr + n - 1),
                   (long long)size, tile_space_name((TileSpace)space));
}

bool emu_store_grow(EmuStoreRing *r) {
  int nc = r->cap ? r->cap * 2 : 16;
  EmuPendStore *n = malloc((size_t)nc * sizeof *n);
  if (!n) return false;
  for (int i = 0; i < r->n; i++) n[i] = r->e[(r->head + i) & (r->cap - 1)];
  free(r->e);
  r->e = n;
  r->cap = nc;
  r->head = 0;
  return true;
}

bool emu_store_check_slow(EmuChip *c, uint8_t space, int64_t lo, int64_t hi, int64_t t,
                          uint8_t op) {
  EmuStoreRing *r = emu_store_ring(c, space);
  emu_store_prune(r, t);
  for (int i = 0; i < r->n; i++) {
    const EmuPendStore *s = &r->e[(r->head + i) & (r->cap - 1)];
    if (s->hi <= lo || hi <= s->lo) continue;
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
