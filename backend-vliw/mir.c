/* Building MIR: the append-only builder the kernel generators use (include/tile/mir.h).
 * Allocation failures abort: a generator has no way to go on without its program. */
#include "tile/mir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *grow(void *p, int32_t *cap, int32_t need, size_t elem) {
  if (need <= *cap) return p;
  int32_t n = *cap ? *cap : 16;
  while (n < need) n *= 2;
  void *q = realloc(p, (size_t)n * elem);
  if (!q) {
    fprintf(stderr, "tilec: out of memory building machine code\n");
    abort();
  }
  *cap = n;
  return q;
}

void tile_mir_init(TileMir *m, const TileTarget *t) {
  memset(m, 0, sizeof *m);
  m->target = t;
}

void tile_mir_free(TileMir *m) {
  for (int32_t i = 0; i < m->nbufs; i++) free(m->bufs[i].init);
  free(m->insts);
  free(m->reg_class);
  free(m->bufs);
  free(m->relocs);
  free(m->srcs);
  memset(m, 0, sizeof *m);
}

static int32_t new_reg(TileMir *m, TileMirRegClass cls) {
  m->reg_class = grow(m->reg_class, &m->cap_regs, m->nregs + 1, 1);
  m->reg_class[m->nregs] = (uint8_t)cls;
  return m->nregs++;
}

int32_t tile_mir_sreg(TileMir *m) { return new_reg(m, TILE_MIR_SREG); }
int32_t tile_mir_vreg(TileMir *m) { return new_reg(m, TILE_MIR_VREG); }
int32_t tile_mir_sem(TileMir *m) { return m->nsems++; }

/* Source k's name and location (none for 0). */
static struct TileMirSrc src_at(const TileMir *m, int32_t k) {
  return k > 0 && k <= m->nsrcs ? m->srcs[k - 1] : (struct TileMirSrc){NULL, {0}};
}

int32_t tile_mir_buffer(TileMir *m, const char *name, TileSpace space, int64_t bytes,
                        int32_t nslots, int32_t align) {
  m->bufs = grow(m->bufs, &m->cap_bufs, m->nbufs + 1, sizeof *m->bufs);
  TileMirBuffer *b = &m->bufs[m->nbufs];
  memset(b, 0, sizeof *b);
  snprintf(b->name, sizeof b->name, "%s", name ? name : "buf");
  b->space = (uint8_t)space;
  b->bytes = bytes;
  b->nslots = nslots < 1 ? 1 : nslots;
  b->align = align < 1 ? 1 : align;
  b->addr = -1;
  b->view_of = -1;
  b->remote_after = -1;
  b->src_name = src_at(m, m->cur_src).name;
  b->src_loc = src_at(m, m->cur_src).loc;
  return m->nbufs++;
}

int32_t tile_mir_view(TileMir *m, const char *name, int32_t of, int64_t off, int64_t bytes) {
  const TileMirBuffer *o = &m->bufs[of];
  if (o->view_of >= 0) {
    off += o->view_off;
    of = o->view_of;
  }
  TileSpace space = (TileSpace)m->bufs[of].space;
  int32_t id = tile_mir_buffer(m, name, space, bytes, 1, 1);
  m->bufs[id].view_of = of;
  m->bufs[id].view_off = off;
  return id;
}

int32_t tile_mir_buffer_root(const TileMir *m, int32_t buf) {
  return buf >= 0 && buf < m->nbufs && m->bufs[buf].view_of >= 0 ? m->bufs[buf].view_of : buf;
}

int64_t tile_mir_buffer_offset(const TileMir *m, int32_t buf) {
  return tile_mir_buffer_root(m, buf) != buf ? m->bufs[buf].view_off : 0;
}

void tile_mir_canon_views(TileMir *m) {
  for (int32_t i = 0; i < m->ninsts; i++)
    for (int k = 0; k < TILE_MIR_MAX_MEM; k++)
      m->insts[i].mem[k].buf = tile_mir_buffer_root(m, m->insts[i].mem[k].buf);
}

int32_t tile_mir_li(TileMir *m, int64_t imm, int32_t buf) {
  int32_t r = tile_mir_sreg(m);
  TileMirInst in = tile_mir_inst(TILE_MOP_LI, r, 0, 0, 0, (int32_t)imm);
  in.imm_buf = buf;
  tile_mir_add(m, in);
  return r;
}

bool tile_mir_move_insts(TileMir *m, int32_t at, int32_t first, int32_t end) {
  int32_t n = end - first;
  if (n <= 0 || at == first) return true;
  TileMirInst *tmp = malloc(sizeof *tmp * (size_t)n);
  if (!tmp) return false;
  memcpy(tmp, m->insts + first, sizeof *tmp * (size_t)n);
  memmove(m->insts + at + n, m->insts + at, sizeof *tmp * (size_t)(first - at));
  memcpy(m->insts + at, tmp, sizeof *tmp * (size_t)n);
  free(tmp);
  return true;
}

bool tile_mir_insert_blocks(TileMir *m, int32_t n0, const int32_t *at, const int32_t *lo,
                            const int32_t *hi, int32_t k) {
  TileMirInst *out = malloc(sizeof *out * (size_t)(m->ninsts > 0 ? m->ninsts : 1));
  if (!out) return false;
  int32_t n = 0, i = 0;
  for (int32_t j = 0; j < k; j++) {
    memcpy(out + n, m->insts + i, sizeof *out * (size_t)(at[j] - i));
    n += at[j] - i;
    i = at[j];
    memcpy(out + n, m->insts + lo[j], sizeof *out * (size_t)(hi[j] - lo[j]));
    n += hi[j] - lo[j];
  }
  memcpy(out + n, m->insts + i, sizeof *out * (size_t)(n0 - i));
  n += n0 - i;
  memcpy(m->insts, out, sizeof *out * (size_t)n);
  free(out);
  return n == m->ninsts;
}

void tile_mir_data(TileMir *m, int32_t buf, const void *bytes, int64_t len) {
  TileMirBuffer *b = &m->bufs[buf];
  free(b->init);
  b->init = malloc(len > 0 ? (size_t)len : 1);
  if (!b->init) {
    fprintf(stderr, "tilec: out of memory building machine code\n");
    abort();
  }
  if (len > 0) memcpy(b->init, bytes, (size_t)len);
  b->init_len = len;
}

void tile_mir_reloc(TileMir *m, int32_t buf, int64_t offset, int32_t target,
                    int64_t addend, bool high) {
  m->relocs = grow(m->relocs, &m->cap_relocs, m->nrelocs + 1, sizeof *m->relocs);
  m->relocs[m->nrelocs++] =
      (TileMirReloc){.buf = buf, .offset = offset, .target = target, .addend = addend, .high = high};
}

/* How many of the newest entries tile_mir_src looks through: a generator sets its op's
 * source again for each block it emits, and the ops of a fused group take turns. */
enum { SRC_RECENT = 8 };

int32_t tile_mir_src(TileMir *m, const char *name, TileLoc loc) {
  if (!name && !loc.file && loc.line == 0 && loc.col == 0) return 0;
  for (int32_t k = m->nsrcs; k > 0 && k > m->nsrcs - SRC_RECENT; k--) {
    const struct TileMirSrc *s = &m->srcs[k - 1];
    if (s->name == name && s->loc.file == loc.file && s->loc.line == loc.line &&
        s->loc.col == loc.col)
      return k;
  }
  m->srcs = grow(m->srcs, &m->cap_srcs, m->nsrcs + 1, sizeof *m->srcs);
  m->srcs[m->nsrcs] = (struct TileMirSrc){name, loc};
  return ++m->nsrcs;
}

const char *tile_mir_src_name(const TileMir *m, const TileMirInst *in) {
  return src_at(m, in->src).name;
}

TileLoc tile_mir_src_loc(const TileMir *m, const TileMirInst *in) {
  return src_at(m, in->src).loc;
}

void tile_mir_set_source(TileMir *m, const char *name, TileLoc loc) {
  m->cur_src = tile_mir_src(m, name, loc);
}

TileMirInst tile_mir_inst(int op, int32_t d, int32_t a, int32_t b, int32_t c, int32_t imm) {
  TileMirInst in = {.op = (uint16_t)op, .d = d, .a = a, .b = b, .c = c, .imm = imm, .imm_buf = -1};
  for (int i = 0; i < TILE_MIR_MAX_MEM; i++) in.mem[i].buf = -1;
  return in;
}

void tile_mir_mem(TileMirInst *in, int32_t buf, int access, int slot_ofs) {
  for (int i = 0; i < TILE_MIR_MAX_MEM; i++)
    if (in->mem[i].buf < 0) {
      in->mem[i] = (TileMirMem){.buf = buf, .access = (uint8_t)access, .slot_ofs = (int8_t)slot_ofs};
      return;
    }
  fprintf(stderr, "tilec: internal error: more than %d memory references on one op\n",
          TILE_MIR_MAX_MEM);
  abort();
}

int32_t tile_mir_add(TileMir *m, TileMirInst in) {
  m->insts = grow(m->insts, &m->cap_insts, m->ninsts + 1, sizeof *m->insts);
  in.src = m->cur_src;
  m->insts[m->ninsts] = in;
  return m->ninsts++;
}

void tile_mir_loop_begin(TileMir *m, int32_t trips, int32_t flags) {
  tile_mir_add(m, tile_mir_inst(TILE_MIR_LOOP_BEGIN, 0, flags, 0, 0, trips));
  m->loop_depth++;
}

void tile_mir_loop_end(TileMir *m) {
  tile_mir_add(m, tile_mir_inst(TILE_MIR_LOOP_END, 0, 0, 0, 0, 0));
  m->loop_depth--;
}

void tile_mir_code_free(TileMirCode *c) {
  free(c->b);
  free(c->loops);
  memset(c, 0, sizeof *c);
}
