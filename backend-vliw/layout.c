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
 * then HBM scratch; VMEM and SMEM in creation order. Each memory is filled from address
 * 0 up. A memory that overflows gets one message naming the first buffer that does not
 * fit, its size, what the target has and what is left. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/mir.h"

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
  int64_t next;   /* first free byte */
  int32_t placed; /* buffers placed */
  int64_t total;  /* bytes every buffer of the space needs (for messages) */
  bool full;      /* reported already */
} Space;

static bool place(TileMir *m, int32_t id, Space *sp, TileDiag *d) {
  TileMirBuffer *b = &m->bufs[id];
  const TileTarget *t = m->target;
  int64_t cap = capacity(t, sp->space), size = b->bytes * b->nslots;
  int64_t align = b->align > MIN_ALIGN ? b->align : MIN_ALIGN;
  int64_t at = (sp->next + align - 1) / align * align;
  if (sp->full) return false;
  if (at > cap || size > cap - at) {
    char need[64], has[64], left[64], used[64], all[64];
    const char *name = tile_space_name(sp->space);
    sp->full = true;
    if (size > cap)
      return tile_error(d, (TileLoc){0}, "%s buffer '%s' needs %s, the target has %s", name,
                        b->name, fmt_bytes(size, need, sizeof need),
                        fmt_bytes(cap, has, sizeof has));
    int64_t rest = at < cap ? cap - at : 0;
    return tile_error(d, (TileLoc){0},
                      "%s buffer '%s' needs %s, but only %s of the target's %s is left after "
                      "%d other %s buffers (%s); the program's %s buffers need %s in all",
                      name, b->name, fmt_bytes(size, need, sizeof need),
                      fmt_bytes(rest, left, sizeof left), fmt_bytes(cap, has, sizeof has),
                      (int)sp->placed, name, fmt_bytes(sp->next, used, sizeof used), name,
                      fmt_bytes(sp->total, all, sizeof all));
  }
  b->addr = at;
  sp->next = at + size;
  sp->placed++;
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

bool tile_mir_layout(TileMir *m, TileDiag *d) {
  const TileTarget *t = m->target;
  Space spaces[TILE_SPACE_COUNT];
  for (int s = 0; s < TILE_SPACE_COUNT; s++) spaces[s] = (Space){.space = (TileSpace)s};
  for (int32_t i = 0; i < m->nbufs; i++) {
    TileMirBuffer *b = &m->bufs[i];
    b->addr = -1;
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
  /* HBM: bound buffers first, then scratch; then the on-chip memories. */
  for (int pass = 0; pass < 2; pass++)
    for (int32_t i = 0; i < m->nbufs; i++) {
      TileMirBuffer *b = &m->bufs[i];
      if (b->space == TILE_SPACE_HBM && (b->bind != 0) == (pass == 0))
        ok = place(m, i, &spaces[TILE_SPACE_HBM], d) && ok;
    }
  for (int32_t i = 0; i < m->nbufs; i++)
    if (m->bufs[i].space != TILE_SPACE_HBM) ok = place(m, i, &spaces[m->bufs[i].space], d) && ok;
  if (m->nsems > t->nsems)
    ok = tile_error(d, (TileLoc){0}, "the program uses %d semaphores, the target %s has %d",
                    (int)m->nsems, t->name, (int)t->nsems);
  return ok && apply_relocs(m, d);
}
