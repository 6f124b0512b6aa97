/* tile_mir_verify: structural checks of MIR as a generator left it, before scheduling.
 *
 * Needs: nothing beyond a built TileMir. Guarantees on success: loops balanced, at most
 * 4 deep, with trip counts >= 1 and non-empty bodies; every inst an ISA op or a loop
 * pseudo-op, never a branch, `loop` or `halt` (control is the scheduler's); register
 * fields name virtual registers of the class the op's pattern asks for, each read has a
 * definition on some path to it (earlier in program order, or later inside a loop around
 * the read, reaching it through the back edge); MXU units below the target's count,
 * semaphores below m->nsems; immediates inside the encoding's and the machine's bounds
 * (buffer-relative ones are checked at emission, once addresses are known); buffers,
 * memory references and relocations well formed. A failure is a generator bug, so the
 * first one is reported as one sentence at the inst's source location. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mir_util.h"
#include "objrules.h"
#include "tile/mir.h"

enum { MAX_LOOP_DEPTH = 4 };

typedef struct Verifier {
  const TileMir *m;
  TileDiag *d;
  MirRegTable regs; /* register operands per op, read off the ISA table once */
} Verifier;

/* Reports one sentence about inst i (or the program when i < 0) and returns false. */
static bool fail(Verifier *v, int32_t i, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool fail(Verifier *v, int32_t i, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (i < 0) return tile_error(v->d, (TileLoc){0}, "machine IR: %s", msg);
  const TileMirInst *in = &v->m->insts[i];
  return tile_error(v->d, tile_mir_src_loc(v->m, in), "machine IR inst %d (%s, from %s): %s",
                    (int)i, mir_op_name(in->op), mir_src_name(v->m, in), msg);
}

static bool is_pow2(int64_t x) { return x > 0 && (x & (x - 1)) == 0; }

static bool check_buffer(Verifier *v, int32_t id) {
  const TileMirBuffer *b = &v->m->bufs[id];
  if (memchr(b->name, 0, sizeof b->name) == NULL)
    return fail(v, -1, "buffer %d's name is not NUL-terminated", (int)id);
  if (b->space >= TILE_SPACE_COUNT)
    return fail(v, -1, "buffer '%s' is in unknown memory space %d", b->name, b->space);
  if (b->bytes < 0) return fail(v, -1, "buffer '%s' has %lld bytes", b->name, (long long)b->bytes);
  if (b->nslots < 1)
    return fail(v, -1, "buffer '%s' has %d slots; it needs at least 1", b->name, (int)b->nslots);
  if (b->bytes > INT64_MAX / b->nslots)
    return fail(v, -1, "buffer '%s' is too large to address", b->name);
  if (!is_pow2(b->align))
    return fail(v, -1, "buffer '%s' has alignment %d, which is not a power of two", b->name,
                (int)b->align);
  int64_t size = b->bytes * b->nslots;
  if (b->init_len < 0 || b->init_len > size || (b->init_len > 0 && !b->init))
    return fail(v, -1, "buffer '%s' has %lld bytes of initial contents but holds %lld bytes",
                b->name, (long long)b->init_len, (long long)size);
  if (!b->bind) return true;
  char why[200];
  if (b->bind > TILE_BIND_INOUT)
    return fail(v, -1, "buffer '%s' has binding kind %d (in 1, out 2, inout 3)", b->name, b->bind);
  if (b->space != TILE_SPACE_HBM)
    return fail(v, -1, "bound buffer '%s' is in %s; a caller binds HBM buffers only", b->name,
                tile_space_name((TileSpace)b->space));
  if (!tile_objrule_name(b->name, true, why, sizeof why))
    return fail(v, -1, "bound buffer '%s': %s", b->name, why);
  if (b->elem == TILE_ELEM_NONE || b->elem >= TILE_ELEM_COUNT)
    return fail(v, -1, "bound buffer '%s' has unknown element type %d", b->name, b->elem);
  if (b->rank < 0 || b->rank > TILE_MAX_RANK)
    return fail(v, -1, "bound buffer '%s' has rank %d (0..%d)", b->name, (int)b->rank,
                TILE_MAX_RANK);
  TileObjSymbol s = {.kind = b->bind, .elem = b->elem, .rank = b->rank};
  snprintf(s.name, sizeof s.name, "%s", b->name);
  for (int32_t k = 0; k < b->rank; k++) {
    if (b->dims[k] < 1)
      return fail(v, -1, "bound buffer '%s' has dimension %d of size %lld", b->name, (int)k,
                  (long long)b->dims[k]);
    s.dims[k] = b->dims[k];
  }
  int64_t need = tile_objrule_symbol_bytes(&s);
  if (need < 0 || need > size)
    return fail(v, -1, "bound buffer '%s' holds %lld bytes, less than its shape needs (%lld)",
                b->name, (long long)size, (long long)need);
  for (int32_t k = 0; k < id; k++)
    if (v->m->bufs[k].bind && strcmp(v->m->bufs[k].name, b->name) == 0)
      return fail(v, -1, "two bound buffers are named '%s'", b->name);
  return true;
}

static bool check_reloc(Verifier *v, int32_t i) {
  const TileMir *m = v->m;
  const TileMirReloc *r = &m->relocs[i];
  if (r->buf < 0 || r->buf >= m->nbufs || r->target < 0 || r->target >= m->nbufs)
    return fail(v, -1, "relocation %d names buffer %d and target %d, but there are %d buffers",
                (int)i, (int)r->buf, (int)r->target, (int)m->nbufs);
  const TileMirBuffer *b = &m->bufs[r->buf];
  if (r->offset < 0 || r->offset % 4 != 0 || r->offset > b->bytes * b->nslots - 4)
    return fail(v, -1,
                "relocation %d fills the word at byte %lld of buffer '%s', which is not an "
                "aligned word inside its %lld bytes",
                (int)i, (long long)r->offset, b->name, (long long)(b->bytes * b->nslots));
  return true;
}

static bool check_mem(Verifier *v, int32_t i) {
  const TileMirInst *in = &v->m->insts[i];
  for (int k = 0; k < TILE_MIR_MAX_MEM; k++) {
    const TileMirMem *mm = &in->mem[k];
    if (mm->buf < 0) continue;
    if (mm->buf >= v->m->nbufs)
      return fail(v, i, "memory reference %d names buffer %d, but there are %d buffers", k,
                  (int)mm->buf, (int)v->m->nbufs);
    if (mm->access == 0 || (mm->access & ~(TILE_MIR_READ | TILE_MIR_WRITE)))
      return fail(v, i, "memory reference to '%s' has access bits %d (read 1, write 2)",
                  v->m->bufs[mm->buf].name, mm->access);
  }
  return true;
}

/* Units, semaphores and immediates of one ISA op. */
static bool check_fields(Verifier *v, int32_t i) {
  const TileMir *m = v->m;
  const TileTarget *t = m->target;
  const TileMirInst *in = &m->insts[i];
  TileOperand ops[TILE_MAX_OPERANDS];
  int n = tile_mop_operands(in->op, ops);
  bool has_imm = false;
  for (int k = 0; k < n; k++) {
    int32_t x = mir_field_get(in, ops[k].field);
    if (ops[k].field == 'i') has_imm = true;
    if (ops[k].kind == 'm' && (x < 0 || x >= t->mxu_count))
      return fail(v, i, "MXU unit %d does not exist on target %s (it has %d)", (int)x, t->name,
                  (int)t->mxu_count);
    if (ops[k].kind == 'q' && (x < 0 || x >= m->nsems))
      return fail(v, i, "semaphore %d was never made (the program has %d)", (int)x, (int)m->nsems);
  }
  if (in->imm_buf >= 0) {
    if (in->imm_buf >= m->nbufs)
      return fail(v, i, "its immediate is relative to buffer %d, but there are %d buffers",
                  (int)in->imm_buf, (int)m->nbufs);
    if (!has_imm) return fail(v, i, "the op has no immediate to relocate");
    return true;
  }
  int64_t lo, hi;
  tile_mop_imm_range(in->op, &lo, &hi);
  if (in->imm < lo || in->imm > hi)
    return fail(v, i, "immediate %d is outside %lld..%lld", (int)in->imm, (long long)lo,
                (long long)hi);
  int32_t rows = -1;
  if (in->op == TILE_MOP_MXU_LDW && t->vreg_sublanes) rows = t->mxu_dim / t->vreg_sublanes;
  if ((in->op == TILE_MOP_XTRPUSH || in->op == TILE_MOP_XTRPOP) && t->vreg_sublanes)
    rows = t->vreg_lanes / t->vreg_sublanes;
  if (rows >= 0 && in->imm >= rows)
    return fail(v, i, "row group %d is beyond the unit's %d groups on target %s", (int)in->imm,
                (int)rows, t->name);
  return true;
}

/* Loop structure; fills outer_end[i] with the index of the LOOP_END of the outermost
 * loop around inst i (-1 outside loops). */
static bool check_loops(Verifier *v, int32_t *outer_end) {
  const TileMir *m = v->m;
  int32_t stack[MAX_LOOP_DEPTH], depth = 0;
  for (int32_t i = 0; i < m->ninsts; i++) {
    const TileMirInst *in = &m->insts[i];
    if (in->op == TILE_MIR_LOOP_BEGIN) {
      if (depth == MAX_LOOP_DEPTH)
        return fail(v, i, "loops nest more than %d deep", MAX_LOOP_DEPTH);
      if (in->imm < 1)
        return fail(v, i, "a loop runs %d times; trip counts start at 1", (int)in->imm);
      if (in->a & ~TILE_MIR_PIPELINE) return fail(v, i, "unknown loop flags 0x%x", (unsigned)in->a);
      if (in->b < 0 || (in->b > 0 && in->b >= v->m->target->dma_outstanding))
        return fail(v, i, "a loop leaves %d of the target's %d DMAs in flight to code before "
                    "it; it needs 0 to %d", (int)in->b, (int)v->m->target->dma_outstanding,
                    (int)v->m->target->dma_outstanding - 1);
      stack[depth++] = i;
    } else if (in->op == TILE_MIR_LOOP_END) {
      if (depth == 0) return fail(v, i, "a loop end without a loop begin");
      int32_t b = stack[--depth];
      if (b == i - 1) return fail(v, b, "a loop with an empty body");
      if (depth == 0)
        for (int32_t k = b; k <= i; k++) outer_end[k] = i;
    }
  }
  if (depth) return fail(v, stack[depth - 1], "a loop that is never closed");
  return true;
}

/* Register classes and definitions reaching each read. */
static bool check_regs(Verifier *v, const int32_t *outer_end) {
  const TileMir *m = v->m;
  int32_t *first_def = malloc(((size_t)m->nregs + 1) * sizeof *first_def);
  if (!first_def) return fail(v, -1, "out of memory checking registers");
  for (int32_t r = 0; r < m->nregs; r++) first_def[r] = INT32_MAX;
  bool ok = true;
  for (int32_t i = 0; i < m->ninsts && ok; i++) {
    const TileMirInst *in = &m->insts[i];
    const MirRegOperand *ro;
    int n = mir_regs_of(&v->regs, in->op, &ro);
    for (int k = 0; k < n && ok; k++) {
      int32_t r = mir_field_get(in, ro[k].field);
      const char *want = ro[k].cls == TILE_MIR_SREG ? "scalar" : "vector";
      if (r < 0 || r >= m->nregs)
        ok = fail(v, i, "field %c holds register %d, but only %d virtual registers exist",
                  ro[k].field, (int)r, (int)m->nregs);
      else if (m->reg_class[r] != ro[k].cls)
        ok = fail(v, i, "field %c holds %%%c%d where the op needs a %s register", ro[k].field,
                  m->reg_class[r] == TILE_MIR_SREG ? 's' : 'v', (int)r, want);
      else if (ro[k].write && first_def[r] == INT32_MAX)
        first_def[r] = i;
    }
  }
  for (int32_t i = 0; i < m->ninsts && ok; i++) {
    const TileMirInst *in = &m->insts[i];
    const MirRegOperand *ro;
    int n = mir_regs_of(&v->regs, in->op, &ro);
    for (int k = 0; k < n && ok; k++) {
      if (ro[k].write) continue;
      int32_t r = mir_field_get(in, ro[k].field);
      int32_t def = first_def[r];
      /* A read sees an earlier definition, or (inside a loop) one later in the loop
       * through the back edge; a definition by the reading inst itself counts only then. */
      bool reached = def < i || (outer_end[i] >= 0 && def != INT32_MAX && def < outer_end[i]);
      if (!reached)
        ok = fail(v, i, "%%%c%d is read but no definition reaches it",
                  ro[k].cls == TILE_MIR_SREG ? 's' : 'v', (int)r);
    }
  }
  free(first_def);
  return ok;
}

bool tile_mir_verify(const TileMir *m, TileDiag *d) {
  Verifier v = {m, d};
  mir_reg_table_init(&v.regs);
  if (!m->target) return fail(&v, -1, "no target is set");
  if (m->nsems < 0) return fail(&v, -1, "%d semaphores", (int)m->nsems);
  for (int32_t b = 0; b < m->nbufs; b++)
    if (!check_buffer(&v, b)) return false;
  for (int32_t r = 0; r < m->nrelocs; r++)
    if (!check_reloc(&v, r)) return false;
  for (int32_t r = 0; r < m->nregs; r++)
    if (m->reg_class[r] != TILE_MIR_SREG && m->reg_class[r] != TILE_MIR_VREG)
      return fail(&v, -1, "virtual register %d has unknown class %d", (int)r, m->reg_class[r]);
  for (int32_t i = 0; i < m->ninsts; i++) {
    const TileMirInst *in = &m->insts[i];
    if (in->op == TILE_MIR_LOOP_BEGIN || in->op == TILE_MIR_LOOP_END) continue;
    if (!mir_is_isa_op(in->op)) return fail(&v, i, "unknown op %d", in->op);
    if (tile_mop_info[in->op].slot == TILE_SLOT_BRANCH && in->op != TILE_MOP_NOP)
      return fail(&v, i,
                  "control op in machine IR; loops are LOOP_BEGIN/LOOP_END and the scheduler "
                  "adds the final halt");
    if (!check_mem(&v, i) || !check_fields(&v, i)) return false;
  }
  int32_t *outer_end = malloc(((size_t)m->ninsts + 1) * sizeof *outer_end);
  if (!outer_end) return fail(&v, -1, "out of memory checking loops");
  for (int32_t i = 0; i < m->ninsts; i++) outer_end[i] = -1;
  bool ok = check_loops(&v, outer_end) && check_regs(&v, outer_end);
  free(outer_end);
  return ok;
}
