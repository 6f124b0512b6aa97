/* Statistics: counters gathered during the run turned into TileEmuStats, and the table
 * `tilec run --stats` prints.
 *
 * The cycle loop counts only bundles issued per slot-count signature (one increment per
 * bundle); busy cycles per unit follow at the end as sum(issues x ops of that kind).
 * Definitions (also in docs/emulator.md):
 *   cycles     the cycle the chip was done (halted, DMAs complete, writes landed); for a
 *              chip stopped by a fault or a stuck run, the cycle it stood at.
 *   busy       scalar, vector, vload, vstore, xlu, branch: ops issued (slot-cycles);
 *              mxu: mxu_push_cycles per push; dma: cycles with a DMA in flight.
 *   capacity   cycles x slots of that kind; mxu: cycles x mxu.count; dma: cycles.
 *   stall      cycles spent in sem.wait. */
#include <stdlib.h>
#include <string.h>

#include "emu_internal.h"

static int64_t chip_cycles(const EmuChip *c) {
  if (c->state == CHIP_DONE) return c->done_cycle;
  if (c->faulted) return c->fault_cycle;
  if (c->state == CHIP_WAIT) return c->wait_since;
  if (c->state == CHIP_HALTING) return c->halt_cycle;
  return c->t;
}

void emu_stats_finish(Emu *e) {
  const TileTarget *t = &e->t;
  free(e->chip_stats);
  free(e->link_stats);
  e->chip_stats = calloc((size_t)e->nchips, sizeof *e->chip_stats);
  e->link_stats = calloc((size_t)(e->net.nlinks ? e->net.nlinks : 1), sizeof *e->link_stats);
  if (!e->chip_stats || !e->link_stats) return;
  int64_t end = e->net.last_delivery;
  for (int32_t i = 0; i < e->nchips; i++) {
    EmuChip *c = &e->chips[i];
    TileEmuChipStats *s = &e->chip_stats[i];
    *s = c->st;
    s->cycles = chip_cycles(c);
    if (s->cycles > end) end = s->cycles;
    const EmuProgram *p = c->prog;
    for (int g = 0; g < p->nsigs; g++) {
      int64_t n = c->sig_exec[g];
      s->bundles += n;
      for (int k = 0; k < TILE_SLOT_COUNT; k++)
        if (k != TILE_SLOT_MXU && k != TILE_SLOT_DMA) s->busy[k] += n * p->sig_counts[g][k];
      s->mxu_pushes += n * p->sig_mxu_pushes[g];
    }
    s->busy[TILE_SLOT_MXU] = s->mxu_pushes * t->mxu_push_cycles;
    if (c->inflight > 0 && s->cycles > c->dma_busy_since)
      s->busy[TILE_SLOT_DMA] += s->cycles - c->dma_busy_since;
    for (int k = 0; k < TILE_SLOT_COUNT; k++) s->capacity[k] = s->cycles * t->slots[k];
    s->capacity[TILE_SLOT_MXU] = s->cycles * t->mxu_count;
    s->capacity[TILE_SLOT_DMA] = s->cycles;
    if (c->tracing) {
      emu_trace_flush_runs(&c->tr);
      if (c->state == CHIP_WAIT && !c->faulted && s->cycles > c->wait_since) {
        const EmuBundle *b = &p->bundles[c->pc];
        EmuTraceRec r = {.start = c->wait_since, .end = c->t > c->wait_since ? c->t : s->cycles,
                         .a = b->wait_sem, .b = b->wait_count, .track = TR_SEM_WAIT,
                         .kind = TK_WAIT};
        emu_trace_add(&c->tr, &r);
      }
    }
  }
  e->end_cycle = end;
  e->nlink_stats = 0;
  for (int32_t l = 0; l < e->net.nlinks; l++)
    if (e->net.links[l].peer >= 0) e->link_stats[e->nlink_stats++] = e->net.links[l];
}

void tile_emu_stats(const TileEmu *e, TileEmuStats *s) {
  memset(s, 0, sizeof *s);
  s->cycles = e->end_cycle;
  s->nchips = e->chip_stats ? e->nchips : 0;
  s->chips = e->chip_stats;
  s->nlinks = e->nlink_stats;
  s->links = e->link_stats;
}

static void coord_text(const Emu *e, int32_t chip, char *buf, size_t n) {
  size_t k = 0;
  buf[k++] = '(';
  for (int a = 0; a < e->t.torus_rank && k + 12 < n; a++)
    k += (size_t)snprintf(buf + k, n - k, "%s%d", a ? "," : "", e->chips[chip].coord[a]);
  snprintf(buf + k, n - k, ")");
}

static double pct(int64_t busy, int64_t cap) { return cap > 0 ? 100.0 * (double)busy / (double)cap : 0.0; }

void tile_emu_print_stats(const TileEmu *e, FILE *out, bool detail) {
  if (!e->chip_stats) return;
  char co[48];
  if (!detail) {
    for (int32_t i = 0; i < e->nchips; i++) {
      coord_text(e, i, co, sizeof co);
      fprintf(out, "chip %d %s: %lld cycles\n", i, co, (long long)e->chip_stats[i].cycles);
    }
  } else {
    fprintf(out, "%5s %-10s %10s %10s %8s", "chip", "coord", "cycles", "bundles", "stall");
    for (int k = 0; k < TILE_SLOT_COUNT; k++) fprintf(out, " %17s", tile_slot_name((TileSlot)k));
    fprintf(out, "\n");
    for (int32_t i = 0; i < e->nchips; i++) {
      const TileEmuChipStats *s = &e->chip_stats[i];
      coord_text(e, i, co, sizeof co);
      fprintf(out, "%5d %-10s %10lld %10lld %8lld", i, co, (long long)s->cycles,
              (long long)s->bundles, (long long)s->stall);
      for (int k = 0; k < TILE_SLOT_COUNT; k++)
        fprintf(out, " %10lld %5.1f%%", (long long)s->busy[k], pct(s->busy[k], s->capacity[k]));
      fprintf(out, "\n");
    }
    fprintf(out, "busy: ops issued per slot kind (mxu: push cycles; dma: cycles with a DMA in "
                 "flight); %% of cycles x units\n");
    int64_t dmas = 0, local = 0, sent = 0, recv = 0, sig = 0, haz = 0, bubbles = 0;
    for (int32_t i = 0; i < e->nchips; i++) {
      const TileEmuChipStats *s = &e->chip_stats[i];
      dmas += s->dmas;
      local += s->dma_bytes;
      sent += s->bytes_sent;
      recv += s->bytes_received;
      sig += s->signals_sent;
      haz += s->hazards_ignored;
      bubbles += s->branch_bubbles;
    }
    fprintf(out, "dma: %lld started, %lld local bytes, %lld bytes sent, %lld received; %lld "
                 "remote signals; %lld branch bubble cycles\n",
            (long long)dmas, (long long)local, (long long)sent, (long long)recv, (long long)sig,
            (long long)bubbles);
    if (haz > 0)
      fprintf(out, "hazards read through (no-strict): %lld\n", (long long)haz);
    bool any = false;
    for (int32_t l = 0; l < e->nlink_stats; l++) {
      const TileEmuLinkStats *ls = &e->link_stats[l];
      if (ls->transfers == 0) continue;
      if (!any) fprintf(out, "%-34s %14s %10s %10s\n", "link", "bytes", "busy", "transfers");
      any = true;
      char name[64];
      snprintf(name, sizeof name, "chip %d -> chip %d (axis %d %c)", ls->chip, ls->peer, ls->axis,
               ls->dir > 0 ? '+' : '-');
      fprintf(out, "%-34s %14lld %10lld %10lld\n", name, (long long)ls->bytes, (long long)ls->busy,
              (long long)ls->transfers);
    }
    if (!any && e->nchips > 1) fprintf(out, "no link carried traffic\n");
  }
  fprintf(out, "run: %lld cycles", (long long)e->end_cycle);
  /* microseconds, exactly: cycles * 1e6 / clock with six decimals */
  __int128 ps = (__int128)e->end_cycle * 1000000000000LL / e->t.clock_hz;
  fprintf(out, " (%lld.%06lld us at %lld Hz)\n", (long long)(ps / 1000000), (long long)(ps % 1000000),
          (long long)e->t.clock_hz);
}

/* ---- JSON (tilec run --stats-json) ---- */

/* A JSON string: quotes, backslashes and control characters escaped; other bytes as
 * they are (messages are ASCII; names are the object's, which are UTF-8). */
static void json_string(FILE *out, const char *s) {
  fputc('"', out);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') fprintf(out, "\\%c", *p);
    else if (*p == '\n') fputs("\\n", out);
    else if (*p == '\t') fputs("\\t", out);
    else if (*p < 0x20) fprintf(out, "\\u%04x", *p);
    else fputc(*p, out);
  }
  fputc('"', out);
}

/* Keys are written in a fixed order (this function's), integers only, one chip or link
 * per line: the text is byte-identical for the same run on any host. */
bool tile_emu_write_stats_json(const TileEmu *e, FILE *out) {
  if (!e->chip_stats) return false;
  fprintf(out, "{\n  \"target\": ");
  json_string(out, e->t.name);
  fprintf(out, ",\n  \"mode\": \"%s\",\n  \"clock_hz\": %lld,\n  \"cycles\": %lld,\n",
          tile_emu_mode_name(e->o.mode), (long long)e->t.clock_hz, (long long)e->end_cycle);
  const TileEmuFault *f = &e->fault;
  if (e->status == TILE_EMU_FAULTED && f->kind != TILE_EMU_FAULT_NONE) {
    fprintf(out, "  \"fault\": {\"kind\": \"%s\", \"chip\": %d, \"pc\": %d, \"cycle\": %lld, "
                 "\"message\": ",
            tile_emu_fault_name(f->kind), f->chip, f->pc, (long long)f->cycle);
    json_string(out, f->message ? f->message : "");
    fprintf(out, "},\n");
  } else {
    fprintf(out, "  \"fault\": null,\n");
  }
  fprintf(out, "  \"chips\": [");
  for (int32_t i = 0; i < e->nchips; i++) {
    const TileEmuChipStats *s = &e->chip_stats[i];
    fprintf(out, "%s\n    {\"chip\": %d, \"coord\": [", i ? "," : "", i);
    for (int a = 0; a < e->t.torus_rank; a++)
      fprintf(out, "%s%d", a ? ", " : "", e->chips[i].coord[a]);
    fprintf(out, "], \"cycles\": %lld, \"bundles\": %lld, \"stall\": %lld, "
                 "\"branch_bubbles\": %lld, \"units\": {",
            (long long)s->cycles, (long long)s->bundles, (long long)s->stall,
            (long long)s->branch_bubbles);
    for (int k = 0; k < TILE_SLOT_COUNT; k++)
      fprintf(out, "%s\"%s\": {\"busy\": %lld, \"capacity\": %lld}", k ? ", " : "",
              tile_slot_name((TileSlot)k), (long long)s->busy[k], (long long)s->capacity[k]);
    fprintf(out, "}, \"mxu_pushes\": %lld, \"dmas\": %lld, \"dma_bytes\": %lld, "
                 "\"bytes_sent\": %lld, \"bytes_received\": %lld, \"signals_sent\": %lld, "
                 "\"hazards_ignored\": %lld}",
            (long long)s->mxu_pushes, (long long)s->dmas, (long long)s->dma_bytes,
            (long long)s->bytes_sent, (long long)s->bytes_received, (long long)s->signals_sent,
            (long long)s->hazards_ignored);
  }
  fprintf(out, "\n  ],\n  \"links\": [");
  for (int32_t l = 0; l < e->nlink_stats; l++) {
    const TileEmuLinkStats *ls = &e->link_stats[l];
    fprintf(out, "%s\n    {\"chip\": %d, \"peer\": %d, \"axis\": %d, \"dir\": %d, "
                 "\"bytes\": %lld, \"busy\": %lld, \"transfers\": %lld}",
            l ? "," : "", ls->chip, ls->peer, ls->axis, ls->dir, (long long)ls->bytes,
            (long long)ls->busy, (long long)ls->transfers);
  }
  fprintf(out, "%s]\n}\n", e->nlink_stats ? "\n  " : "");
  return !ferror(out);
}
