/* Storage for a chip's HBM, VMEM and SMEM.
 *
 * A machine of many chips with gigabytes of HBM each cannot be allocated whole, and a
 * program touches a small part of it. Small spaces are one block, allocated (zeroed) on
 * first write; large spaces are paged in two levels (64 KiB pages, directories of 1024
 * pages) and a page appears on its first write. Untouched bytes read as zero, so a
 * space behaves exactly as if it had been allocated and cleared.
 *
 * Bounds are the callers' business (they know which op to blame); these functions only
 * move bytes. */
#include <stdlib.h>
#include <string.h>

#include "emu_internal.h"

enum { L2_ENTRIES = 1 << EMU_L2_BITS, DIR_SHIFT = EMU_PAGE_BITS + EMU_L2_BITS };

bool emu_mem_init(EmuMem *m, int64_t size, bool flat) {
  memset(m, 0, sizeof *m);
  m->size = size;
  m->paged = !flat;
  if (m->paged) {
    m->ndir = (size + (1LL << DIR_SHIFT) - 1) >> DIR_SHIFT;
    m->dir = calloc((size_t)(m->ndir ? m->ndir : 1), sizeof *m->dir);
    if (!m->dir) return false;
  }
  return true;
}

void emu_mem_free(EmuMem *m) {
  if (m->paged && m->dir) {
    for (int64_t i = 0; i < m->ndir; i++) {
      if (!m->dir[i]) continue;
      for (int j = 0; j < L2_ENTRIES; j++) free(m->dir[i][j]);
      free(m->dir[i]);
    }
  }
  free(m->dir);
  free(m->flat);
  memset(m, 0, sizeof *m);
}

static uint8_t *page_of(const EmuMem *m, int64_t addr) {
  uint8_t **l2 = m->dir[addr >> DIR_SHIFT];
  return l2 ? l2[(addr >> EMU_PAGE_BITS) & (L2_ENTRIES - 1)] : NULL;
}

static uint8_t *page_make(EmuMem *m, int64_t addr) {
  uint8_t ***slot = &m->dir[addr >> DIR_SHIFT];
  if (!*slot) {
    *slot = calloc(L2_ENTRIES, sizeof **slot);
    if (!*slot) return NULL;
  }
  uint8_t **page = &(*slot)[(addr >> EMU_PAGE_BITS) & (L2_ENTRIES - 1)];
  if (!*page) *page = calloc(1, EMU_PAGE);
  return *page;
}

bool emu_mem_read(const EmuMem *m, int64_t addr, void *dst, size_t n) {
  uint8_t *out = dst;
  if (!m->paged) {
    if (m->flat) memcpy(out, m->flat + addr, n);
    else memset(out, 0, n);
    return true;
  }
  while (n > 0) {
    int64_t off = addr & (EMU_PAGE - 1);
    size_t k = (size_t)(EMU_PAGE - off);
    if (k > n) k = n;
    const uint8_t *p = page_of(m, addr);
    if (p) memcpy(out, p + off, k);
    else memset(out, 0, k);
    out += k;
    addr += (int64_t)k;
    n -= k;
  }
  return true;
}

bool emu_mem_write(EmuMem *m, int64_t addr, const void *src, size_t n) {
  const uint8_t *in = src;
  if (!m->paged) {
    if (!m->flat) {
      m->flat = calloc(1, (size_t)m->size);
      if (!m->flat) return false;
    }
    memcpy(m->flat + addr, in, n);
    return true;
  }
  while (n > 0) {
    int64_t off = addr & (EMU_PAGE - 1);
    size_t k = (size_t)(EMU_PAGE - off);
    if (k > n) k = n;
    uint8_t *p = page_make(m, addr);
    if (!p) return false;
    memcpy(p + off, in, k);
    in += k;
    addr += (int64_t)k;
    n -= k;
  }
  return true;
}

uint8_t *emu_mem_span(EmuMem *m, int64_t addr, size_t n, bool for_write) {
  if (!m->paged) {
    if (!m->flat) {
      if (!for_write) return NULL;
      m->flat = calloc(1, (size_t)m->size);
      if (!m->flat) return NULL;
    }
    return m->flat + addr;
  }
  int64_t off = addr & (EMU_PAGE - 1);
  if ((size_t)(EMU_PAGE - off) < n) return NULL;
  uint8_t *p = for_write ? page_make(m, addr) : page_of(m, addr);
  return p ? p + off : NULL;
}
