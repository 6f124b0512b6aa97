/* The trace: records kept per chip (and for the network) during the run, written as
 * Chrome trace-event JSON ({"traceEvents": [...]}) that ui.perfetto.dev and
 * chrome://tracing open.
 *
 * Layout: a process per chip ("chip 3 (0,1,1)"), a thread (track) per unit: the issue
 * slots (scalar, vector, vload, vstore, mxu, xlu, dma, branch), "sem wait", one track
 * per MXU with a slice per push, and DMA lanes with a slice per DMA from issue to
 * completion (a DMA takes the first lane free at its issue, so overlapping DMAs stack).
 * Issue-slot activity is coalesced into runs of consecutive busy cycles. A last process,
 * "network", has a track per link with a slice per transfer while it serializes.
 *
 * Times are microseconds computed exactly from cycles (cycles x 1e6 / clock_hz, printed
 * to the picosecond); every slice also carries its cycle numbers in args. Records are
 * written in (process, track, start, end) order, so the file is byte-identical for any
 * number of host threads. */
#include <stdlib.h>
#include <string.h>

#include "emu_internal.h"

enum { DMA_LANE_TID = 1000 };

bool emu_trace_add(EmuTraceBuf *b, const EmuTraceRec *r) {
  if (b->n == b->cap) {
    int64_t nc = b->cap ? b->cap * 2 : 1024;
    EmuTraceRec *n = realloc(b->r, (size_t)nc * sizeof *n);
    if (!n) return false;
    b->r = n;
    b->cap = nc;
  }
  b->r[b->n++] = *r;
  return true;
}

static void flush_run(EmuTraceBuf *b, int k) {
  if (b->run_ops[k] == 0) return;
  EmuTraceRec r = {.start = b->run_start[k], .end = b->run_end[k], .a = b->run_ops[k],
                   .track = k, .kind = TK_UNIT};
  emu_trace_add(b, &r);
  b->run_ops[k] = 0;
}

void emu_trace_bundle(EmuTraceBuf *b, uint8_t units, const uint8_t *counts, int64_t t) {
  for (int k = 0; units; k++, units >>= 1) {
    if (!(units & 1)) continue;
    if (b->run_ops[k] > 0 && b->run_end[k] == t) {
      b->run_end[k] = t + 1;
      b->run_ops[k] += counts[k];
      continue;
    }
    flush_run(b, k);
    b->run_start[k] = t;
    b->run_end[k] = t + 1;
    b->run_ops[k] = counts[k];
  }
}

void emu_trace_flush_runs(EmuTraceBuf *b) {
  for (int k = 0; k < TILE_SLOT_COUNT; k++) flush_run(b, k);
}

static int cmp_rec(const void *pa, const void *pb) {
  const EmuTraceRec *a = pa, *b = pb;
  if (a->track != b->track) return a->track < b->track ? -1 : 1;
  if (a->start != b->start) return a->start < b->start ? -1 : 1;
  if (a->end != b->end) return a->end < b->end ? -1 : 1;
  if (a->kind != b->kind) return a->kind < b->kind ? -1 : 1;
  if (a->a != b->a) return a->a < b->a ? -1 : 1;
  return a->b < b->b ? -1 : a->b > b->b;
}

/* Microseconds with six decimals, exact from integer cycles. */
static void put_us(FILE *f, int64_t cycles, int64_t clock) {
  __int128 ps = (__int128)cycles * 1000000000000LL / clock;
  if (ps < 0) ps = 0;
  fprintf(f, "%lld.%06lld", (long long)(ps / 1000000), (long long)(ps % 1000000));
}

typedef struct Out {
  FILE *f;
  bool first;
  int64_t clock;
} Out;

static void begin(Out *o) {
  fputs(o->first ? "\n" : ",\n", o->f);
  o->first = false;
}

static void meta(Out *o, const char *what, int pid, int tid, const char *name, int sort) {
  begin(o);
  if (tid < 0)
    fprintf(o->f, "{\"ph\":\"M\",\"pid\":%d,\"name\":\"%s\",\"args\":{\"name\":\"%s\"}}", pid,
            what, name);
  else
    fprintf(o->f, "{\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"name\":\"%s\",\"args\":{\"name\":\"%s\"}}",
            pid, tid, what, name);
  begin(o);
  if (tid < 0)
    fprintf(o->f, "{\"ph\":\"M\",\"pid\":%d,\"name\":\"process_sort_index\",\"args\":{\"sort_index\":%d}}",
            pid, sort);
  else
    fprintf(o->f,
            "{\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"name\":\"thread_sort_index\",\"args\":{\"sort_index\":%d}}",
            pid, tid, sort);
}

static void slice(Out *o, int pid, int tid, const char *name, const EmuTraceRec *r,
                  const char *args) {
  begin(o);
  fprintf(o->f, "{\"ph\":\"X\",\"pid\":%d,\"tid\":%d,\"name\":\"%s\",\"ts\":", pid, tid, name);
  put_us(o->f, r->start, o->clock);
  fputs(",\"dur\":", o->f);
  /* the difference of the rounded ends, so adjacent slices stay adjacent */
  __int128 s = (__int128)r->start * 1000000000000LL / o->clock;
  __int128 e = (__int128)r->end * 1000000000000LL / o->clock;
  __int128 d = e - s;
  fprintf(o->f, "%lld.%06lld", (long long)(d / 1000000), (long long)(d % 1000000));
  fprintf(o->f, ",\"args\":{\"cycle\":%lld,\"cycles\":%lld%s%s}}", (long long)r->start,
          (long long)(r->end - r->start), args[0] ? "," : "", args);
}

/* Gives each DMA record a lane: the first lane whose last DMA ended by its issue. */
static int assign_lanes(EmuTraceRec *r, int64_t n) {
  int64_t *free_at = NULL;
  int lanes = 0;
  for (int64_t i = 0; i < n; i++) {
    if (r[i].kind != TK_DMA) continue;
    int l = 0;
    while (l < lanes && free_at[l] > r[i].start) l++;
    if (l == lanes) {
      int64_t *nf = realloc(free_at, (size_t)(lanes + 1) * sizeof *nf);
      if (!nf) break;
      free_at = nf;
      lanes++;
    }
    free_at[l] = r[i].end;
    r[i].track = DMA_LANE_TID + l;
  }
  free(free_at);
  return lanes;
}

static void chip_trace(Out *o, const Emu *e, const EmuChip *c) {
  char name[96];
  int n = snprintf(name, sizeof name, "chip %d (", c->id);
  for (int a = 0; a < e->t.torus_rank; a++)
    n += snprintf(name + n, sizeof name - (size_t)n, "%s%d", a ? "," : "", c->coord[a]);
  snprintf(name + n, sizeof name - (size_t)n, ")");
  meta(o, "process_name", c->id, -1, name, c->id);
  for (int k = 0; k < TILE_SLOT_COUNT; k++) meta(o, "thread_name", c->id, k, tile_slot_name((TileSlot)k), k);
  meta(o, "thread_name", c->id, TR_SEM_WAIT, "sem wait", TR_SEM_WAIT);
  for (int u = 0; u < e->t.mxu_count; u++) {
    snprintf(name, sizeof name, "mxu%d pushes", u);
    meta(o, "thread_name", c->id, TR_MXU0 + u, name, TR_MXU0 + u);
  }
  /* DMA records are sorted by issue first so lanes follow issue order */
  EmuTraceRec *r = c->tr.r;
  int64_t nr = c->tr.n;
  for (int64_t i = 0; i < nr; i++)
    if (r[i].kind == TK_DMA) r[i].track = DMA_LANE_TID - 1;
  qsort(r, (size_t)nr, sizeof *r, cmp_rec);
  int lanes = assign_lanes(r, nr);
  for (int l = 0; l < lanes; l++) {
    snprintf(name, sizeof name, "dma lane %d", l);
    meta(o, "thread_name", c->id, DMA_LANE_TID + l, name, DMA_LANE_TID + l);
  }
  qsort(r, (size_t)nr, sizeof *r, cmp_rec);
  char args[160];
  for (int64_t i = 0; i < nr; i++) {
    const EmuTraceRec *x = &r[i];
    switch (x->kind) {
    case TK_UNIT:
      snprintf(args, sizeof args, "\"ops\":%lld", (long long)x->a);
      slice(o, c->id, x->track, tile_slot_name((TileSlot)x->track), x, args);
      break;
    case TK_PUSH:
      snprintf(name, sizeof name, "mxu%lld push", (long long)x->a);
      slice(o, c->id, x->track, name, x, "");
      break;
    case TK_WAIT:
      snprintf(name, sizeof name, "sem.wait sem%lld >= %lld", (long long)x->a, (long long)x->b);
      slice(o, c->id, x->track, name, x, "");
      break;
    case TK_DMA:
      if (x->b < 0) snprintf(name, sizeof name, "dma %lld B", (long long)x->a);
      else snprintf(name, sizeof name, "dma %lld B -> chip %lld", (long long)x->a, (long long)x->b);
      snprintf(args, sizeof args, "\"bytes\":%lld,\"peer\":%lld", (long long)x->a, (long long)x->b);
      slice(o, c->id, x->track, name, x, args);
      break;
    default: break;
    }
  }
}

static void net_trace(Out *o, const Emu *e) {
  EmuTraceBuf *b = (EmuTraceBuf *)&e->net.tr;
  if (b->n == 0) return;
  int pid = e->nchips;
  meta(o, "process_name", pid, -1, "network", pid);
  qsort(b->r, (size_t)b->n, sizeof *b->r, cmp_rec);
  char name[96], args[96];
  int32_t last = -1;
  for (int64_t i = 0; i < b->n; i++) {
    const EmuTraceRec *x = &b->r[i];
    const TileEmuLinkStats *l = &e->net.links[x->track];
    if (x->track != last) {
      snprintf(name, sizeof name, "chip %d -> chip %d (axis %d %c)", l->chip, l->peer, l->axis,
               l->dir > 0 ? '+' : '-');
      meta(o, "thread_name", pid, x->track, name, x->track);
      last = x->track;
    }
    snprintf(name, sizeof name, "%lld B from chip %lld", (long long)x->a, (long long)x->b);
    snprintf(args, sizeof args, "\"bytes\":%lld,\"src\":%lld", (long long)x->a, (long long)x->b);
    slice(o, pid, x->track, name, x, args);
  }
}

static void put_json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
    else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
    else fputc(ch, f);
  }
  fputc('"', f);
}

bool tile_emu_write_trace(TileEmu *e, FILE *out) {
  if (!e->o.trace) {
    emu_set_error(e, "the run recorded no trace (enable options.trace)");
    return false;
  }
  if (!e->ran) {
    emu_set_error(e, "there is no trace before the run");
    return false;
  }
  Out o = {out, true, e->t.clock_hz};
  fputs("{\"traceEvents\":[", out);
  for (int32_t i = 0; i < e->nchips; i++) chip_trace(&o, e, &e->chips[i]);
  net_trace(&o, e);
  fputs("\n],\"displayTimeUnit\":\"ns\",\"otherData\":{\"target\":", out);
  put_json_string(out, e->t.name);
  fprintf(out, ",\"clock_hz\":%lld,\"cycles\":%lld,\"mode\":\"%s\"}}\n",
          (long long)e->t.clock_hz, (long long)e->end_cycle, tile_emu_mode_name(e->o.mode));
  if (ferror(out)) {
    emu_set_error(e, "could not write the trace");
    return false;
  }
  return true;
}
