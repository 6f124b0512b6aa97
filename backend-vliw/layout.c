/* tile_mir_layout: addresses for every buffer of a MIR program.
 *
 * Needs: a verified TileMir (after register allocation, which may add spill buffers).
 * Guarantees on success: every buffer has addr >= 0, aligned to its alignment (at least
 * 4 bytes, the scalar word), all of its slots inside its memory and apart from every
 * other buffer of that memory; semaphore ids fit the target; relocated words of initial
 * contents hold their final addresses.
 *
 * Order: in HBM the buffers a caller binds come first, in creation order (so the
 * addresses of a program's inputs and outputs do not move when its scratch changes),
 * then HBM scratch; VMEM and SMEM in creation order. HBM is filled from address 0 up.
 * With the scheduled code (tile_mir_layout_code), VMEM and SMEM are shared over time:
 * each buffer takes the lowest address where no buffer already placed whose live range
 * (layout_live.c) meets its own sits, so the groups of a long program reuse the memory
 * of the groups before them; without code every buffer gets its own bytes. A memory
 * that overflows gets one message naming the first buffer that does not fit, its size,
 * what the target has and what the buffers live with it hold. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layout_internal.h"

enum { MIN_ALIGN = 4 };

/* "160 MiB", "1.5 KiB", "12 bytes": a size for messages, exact to 3 digits. */
static const char *fmt_bytes(int64_t b, char *buf, size_t n) {
  static const struct {
    const char *unit;
    int64_t size;
  } units[] = {{"TiB", 1LL << 40}, {"GiB", 1LL << 30}, {"MiB", 1LL << 20}, {"KiB", 1LL << 10}};
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
    if (b >= units[i].size) {
      if (b % units[i].size == 0)
        snprintf(buf, n, "%" PRId64 " %s", b / units[i].size, units[i].unit);
      else
        snprintf(buf, n, "%.3g %s (%" PRId64 " bytes)", (double)b / (double)units[i].size,
                 units[i].unit, b);
      return buf;
    }
  snprintf(buf, n, "%" PRId64 " byte%s", b, b == 1 ? "" : "s");
  return buf;
}

static int64_t capacity(const TileTarget *t, TileSpace s) {
  return s == TILE_SPACE_HBM ? t->hbm_bytes : s == TILE_SPACE_VMEM ? t->vmem_bytes : t->smem_bytes;
}

typedef struct Space {
  TileSpace space;
  int64_t next;   /* first byte above every buffer placed */
  int32_t placed; /* buffers placed */
  int64_t total;  /* bytes every buffer of the space needs (for messages) */
  bool full;      /* reported already */
} Space;

typedef struct Placer {
  TileMir *m;
  const LiveRange *live; /* NULL: no sharing */
  int32_t *order;        /* placed on-chip buffers, by address */
  int32_t nplaced;
} Placer;

static bool meets(const LiveRange *a, const LiveRange *b) {
  return a->first <= b->last && b->first <= a->last;
}

static int64_t align_up(int64_t x, int64_t a) { return (x + a - 1) / a * a; }

/* The lowest aligned address of space sp where buffer id fits beside every placed
 * buffer whose life meets its own; *live_bytes and *nlive say what those hold. */
static int64_t lowest_fit(Placer *pl, int32_t id, int64_t size, int64_t align,
                          int64_t *live_bytes, int32_t *nlive) {
  const TileMirBuffer *b = &pl->m->bufs[id];
  int64_t at = 0;
  *live_bytes = 0;
  *nlive = 0;
  for (int32_t k = 0; k < pl->nplaced; k++) {
    const TileMirBuffer *o = &pl->m->bufs[pl->order[k]];
    if (o->space != b->space || !meets(&pl->live[pl->order[k]], &pl->live[id])) continue;
    int64_t osize = o->bytes * o->nslots;
    *live_bytes += osize;
    ++*nlive;
    if (at + size <= o->addr) continue; /* fits below: keep looking for a later clash */
    if (o->addr + osize > at) at = align_up(o->addr + osize, align);
  }
  return at;
}

/* Keeps pl->order sorted by address (then id) with buffer id added. */
static void record(Placer *pl, int32_t id) {
  const TileMirBuffer *b = &pl->m->bufs[id];
  int32_t k = pl->nplaced++;
  while (k > 0) {
    const TileMirBuffer *o = &pl->m->bufs[pl->order[k - 1]];
    if (o->addr < b->addr || (o->addr == b->addr && pl->order[k - 1] < id)) break;
    pl->order[k] = pl->order[k - 1];
    k--;
  }
  pl->order[k] = id;
}

static bool place(Placer *pl, int32_t id, Space *sp, TileDiag *d) {
  TileMir *m = pl->m;
  TileMirBuffer *b = &m->bufs[id];
  const TileTarget *t = m->target;
  int64_t cap = capacity(t, sp->space), size = b->bytes * b->nslots;
  int64_t align = b->align > MIN_ALIGN ? b->align : MIN_ALIGN;
  bool shared = pl->live && sp->space != TILE_SPACE_HBM;
  int64_t live_bytes = sp->next;
  int32_t nlive = sp->placed;
  int64_t at = shared ? lowest_fit(pl, id, size, align, &live_bytes, &nlive)
                      : align_up(sp->next, align);
  if (sp->full) return false;
  if (at > cap || size > cap - at) {
    char need[64], has[64], left[64], used[64], all[64];
    const char *name = tile_space_name(sp->space);
    sp->full = true;
    if (size > cap)
      return tile_error(d, b->src_loc, "%s buffer '%s' needs %s, the target has %s", name,
                        b->name, fmt_bytes(size, need, sizeof need),
                        fmt_bytes(cap, has, sizeof has));
    int64_t rest = live_bytes < cap ? cap - live_bytes : 0;
    return tile_error(d, b->src_loc,
                      "%s buffer '%s' needs %s, but only %s of the target's %s is left %s "
                      "%d other %s buffers%s (%s); the program's %s buffers need %s in all",
                      name, b->name, fmt_bytes(size, need, sizeof need),
                      fmt_bytes(rest, left, sizeof left), fmt_bytes(cap, has, sizeof has),
                      shared ? "beside" : "after", (int)nlive, name,
                      shared ? " live at the same time" : "",
                      fmt_bytes(live_bytes, used, sizeof used), name,
                      fmt_bytes(sp->total, all, sizeof all));
  }
  b->addr = at;
  if (at + size > sp->next) sp->next = at + size;
  sp->placed++;
  if (shared) record(pl, id);
  return true;
}

/* Fills the relocated words of initial contents (growing a buffer's contents to reach
 * a word past its current end; the bytes between are zeros, as memory never written). */
static bool apply_relocs(TileMir *m, TileDiag *d) {
  for (int32_t i = 0; i < m->nrelocs; i++) {
    const TileMirReloc *r = &m->relocs[i];
    if (r->buf < 0 || r->buf >= m->nbufs || r->target < 0 || r->target >= m->nbufs)
      return tile_error(d, (TileLoc){0}, "layout: relocation %d names a buffer that does not exist",
                        (int)i);
    TileMirBuffer *b = &m->bufs[r->buf];
    if (r->offset < 0 || r->offset % 4 || r->offset + 4 > b->bytes * b->nslots)
      return tile_error(d, (TileLoc){0},
                        "layout: relocation %d writes byte %" PRId64
                        " of buffer '%s', outside "
                        "its %" PRId64 " bytes or off a word",
                        (int)i, r->offset, b->name, b->bytes * b->nslots);
    if (r->offset + 4 > b->init_len) {
      uint8_t *p = realloc(b->init, (size_t)(r->offset + 4));
      if (!p) return tile_error(d, (TileLoc){0}, "layout: out of memory");
      memset(p + b->init_len, 0, (size_t)(r->offset + 4 - b->init_len));
      b->init = p;
      b->init_len = r->offset + 4;
    }
    uint64_t v = (uint64_t)(m->bufs[r->target].addr + r->addend);
    uint32_t w = (uint32_t)(r->high ? v >> 32 : v);
    for (int k = 0; k < 4; k++) b->init[r->offset + k] = (uint8_t)(w >> (8 * k));
  }
  return true;
}

static bool layout(TileMir *m, const LiveRange *live, TileDiag *d) {
  const TileTarget *t = m->target;
  Space spaces[TILE_SPACE_COUNT];
  for (int s = 0; s < TILE_SPACE_COUNT; s++) spaces[s] = (Space){.space = (TileSpace)s};
  for (int32_t i = 0; i < m->nbufs; i++) {
    TileMirBuffer *b = &m->bufs[i];
    b->addr = -1;
    if (b->view_of >= 0) continue; /* placed with its buffer, below */
    if (b->space >= TILE_SPACE_COUNT || b->nslots < 1 || b->bytes < 0 ||
        b->bytes > INT64_MAX / b->nslots || b->align < 1 || (b->align & (b->align - 1)))
      return tile_error(d, (TileLoc){0},
                        "layout: buffer '%s' is malformed (space %d, %" PRId64
                        " bytes x %d "
                        "slots, align %d)",
                        b->name, b->space, b->bytes, (int)b->nslots, (int)b->align);
    Space *sp = &spaces[b->space];
    sp->total =
        b->bytes * b->nslots > INT64_MAX - sp->total ? INT64_MAX : sp->total + b->bytes * b->nslots;
  }
  bool ok = true;
  Placer pl = {.m = m, .live = live};
  if (live && !(pl.order = malloc(sizeof *pl.order * (size_t)(m->nbufs > 0 ? m->nbufs : 1))))
    return tile_error(d, (TileLoc){0}, "layout: out of memory");
  /* HBM: bound buffers first, then scratch; then the on-chip memories. */
  for (int pass = 0; pass < 2; pass++)
    for (int32_t i = 0; i < m->nbufs; i++) {
      TileMirBuffer *b = &m->bufs[i];
      if (b->view_of < 0 && b->space == TILE_SPACE_HBM && (b->bind != 0) == (pass == 0))
        ok = place(&pl, i, &spaces[TILE_SPACE_HBM], d) && ok;
    }
  for (int32_t i = 0; i < m->nbufs; i++)
    if (m->bufs[i].view_of < 0 && m->bufs[i].space != TILE_SPACE_HBM)
      ok = place(&pl, i, &spaces[m->bufs[i].space], d) && ok;
  for (int32_t i = 0; i < m->nbufs && ok; i++) {
    TileMirBuffer *b = &m->bufs[i];
    if (b->view_of >= 0) b->addr = m->bufs[b->view_of].addr + b->view_off;
  }
  free(pl.order);
  if (m->nsems > t->nsems)
    ok = tile_error(d, (TileLoc){0}, "the program uses %d semaphores, the target %s has %d",
                    (int)m->nsems, t->name, (int)t->nsems);
  return ok && apply_relocs(m, d);
}

bool tile_mir_layout(TileMir *m, TileDiag *d) { return layout(m, NULL, d); }

bool tile_mir_layout_code(TileMir *m, const TileMirCode *code, TileDiag *d) {
  LiveRange *live = malloc(sizeof *live * (size_t)(m->nbufs > 0 ? m->nbufs : 1));
  bool ok = live && layout_live_ranges(m, code, live);
  if (!ok) {
    free(live);
    return tile_error(d, (TileLoc){0}, "layout: out of memory");
  }
  ok = layout(m, live, d);
  free(live);
  return ok;
}
