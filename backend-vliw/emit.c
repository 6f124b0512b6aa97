/* tile_mir_emit: the object for allocated, laid-out code.
 *
 * Needs: code after tile_mir_regalloc (machine registers in register fields, `loop` ops
 * in place, ending in `halt`) and m after tile_mir_layout (every buffer has an
 * address). Produces: one program for all chips, each slot word with exactly the fields
 * its op's pattern uses (unused fields are 0, as the encoding requires), buffer-relative
 * immediates turned into addresses (imm + the buffer's address, which must fit the
 * signed 32-bit field), one initial-data block per buffer with contents, one symbol per
 * bound buffer, and the target's name. The object is checked by the rules the writer and
 * the emulator apply (tile_object_check, tile_object_check_target) before it is handed
 * back, so a failure here is reported at compile time rather than as a refused object. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "mir_util.h"
#include "tile/mir.h"

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  if (!p) {
    fprintf(stderr, "tilec: out of memory emitting the object\n");
    abort();
  }
  return p;
}

/* One slot word from a MIR inst into out, which holds zeros (a nop); false with a
 * diagnostic when a field does not fit. */
static bool encode(const TileMir *m, const TileMirInst *in, int32_t pc, TileMInst *out,
                   TileDiag *d) {
  if (in->op == TILE_MOP_NOP) return true;
  if (!mir_is_isa_op(in->op))
    return tile_error(d, tile_mir_src_loc(m, in),
                      "emit: bundle %d holds %s, which is not a machine op", (int)pc,
                      mir_op_name(in->op));
  out->op = (uint8_t)in->op;
  TileOperand ops[TILE_MAX_OPERANDS];
  int n = tile_mop_operands(in->op, ops);
  for (int k = 0; k < n; k++) {
    char f = ops[k].field;
    int64_t v = mir_field_get(in, f);
    if (f == 'i') {
      if (in->imm_buf >= 0) {
        if (in->imm_buf >= m->nbufs || m->bufs[in->imm_buf].addr < 0)
          return tile_error(d, tile_mir_src_loc(m, in),
                            "emit: %s in bundle %d is relative to a buffer without an address "
                            "(run layout first)",
                            mir_op_name(in->op), (int)pc);
        v += m->bufs[in->imm_buf].addr;
        if (v < INT32_MIN || v > INT32_MAX)
          return tile_error(d, tile_mir_src_loc(m, in),
                            "emit: %s in bundle %d (from %s) addresses buffer '%s' at %" PRId64
                            ", which does not fit its signed 32-bit immediate",
                            mir_op_name(in->op), (int)pc, mir_src_name(m, in),
                            m->bufs[in->imm_buf].name, v);
      }
      out->imm = (int32_t)v;
      continue;
    }
    if (f == 'w') {
      if (v < 1 || v > TILE_WIDE_MAX)
        return tile_error(d, tile_mir_src_loc(m, in),
                          "emit: the loop at bundle %d has a body of %" PRId64
                          " bundles; a loop holds 1 to %d",
                          (int)pc, v, TILE_WIDE_MAX);
      tile_minst_set_field(out, 'w', (int32_t)v);
      continue;
    }
    if (v < 0 || v > 63)
      return tile_error(
          d, tile_mir_src_loc(m, in),
          "emit: %s in bundle %d has %" PRId64 " in field %c, which holds 0..63%s",
          mir_op_name(in->op), (int)pc, v, f,
          ops[k].kind == 'S' || ops[k].kind == 's' || ops[k].kind == 'V' || ops[k].kind == 'v'
              ? " (were registers allocated?)"
              : "");
    uint8_t u = (uint8_t)v;
    switch (f) {
    case 'd': out->d = u; break;
    case 'a': out->a = u; break;
    case 'b': out->b = u; break;
    default: out->c = u; break;
    }
  }
  return true;
}

static bool emit_code(const TileMir *m, const TileMirCode *code, TileObject *obj, TileDiag *d) {
  obj->code = xcalloc(1, sizeof *obj->code);
  obj->ncode = 1;
  TileObjCode *c = &obj->code[0];
  c->chip = TILE_OBJ_ALL_CHIPS;
  c->nbundles = code->nbundles;
  c->bundles = xcalloc((size_t)code->nbundles, sizeof *c->bundles); /* all nops */
  for (int32_t p = 0; p < code->nbundles; p++)
    for (int w = 0; w < TILE_BUNDLE_SLOTS; w++)
      if (code->b[p].slot[w].op != TILE_MOP_NOP &&
          !encode(m, &code->b[p].slot[w], p, &c->bundles[p].slot[w], d))
        return false;
  return true;
}

static void emit_data(const TileMir *m, TileObject *obj) {
  obj->data = xcalloc((size_t)m->nbufs, sizeof *obj->data);
  for (int32_t i = 0; i < m->nbufs; i++) {
    const TileMirBuffer *b = &m->bufs[i];
    if (b->init_len <= 0 || !b->init) continue;
    TileObjData *dd = &obj->data[obj->ndata++];
    dd->chip = TILE_OBJ_ALL_CHIPS;
    dd->space = b->space;
    dd->addr = b->addr;
    dd->size = b->init_len;
    dd->bytes = xcalloc((size_t)b->init_len, 1);
    memcpy(dd->bytes, b->init, (size_t)b->init_len);
  }
}

static void emit_symbols(const TileMir *m, TileObject *obj) {
  obj->syms = xcalloc((size_t)m->nbufs, sizeof *obj->syms);
  for (int32_t i = 0; i < m->nbufs; i++) {
    const TileMirBuffer *b = &m->bufs[i];
    if (!b->bind) continue;
    TileObjSymbol *s = &obj->syms[obj->nsyms++];
    snprintf(s->name, sizeof s->name, "%s", b->name);
    s->kind = b->bind;
    s->space = b->space;
    s->elem = b->elem;
    s->per_chip = b->per_chip;
    s->rank = b->rank;
    for (int32_t k = 0; k < b->rank && k < TILE_MAX_RANK; k++) s->dims[k] = b->dims[k];
    s->addr = b->addr;
  }
}

bool tile_mir_emit(const TileMir *m, const TileMirCode *code, TileObject *obj, TileDiag *d) {
  memset(obj, 0, sizeof *obj);
  for (int32_t i = 0; i < m->nbufs; i++)
    if (m->bufs[i].addr < 0)
      return tile_error(d, (TileLoc){0}, "emit: buffer '%s' has no address (run layout first)",
                        m->bufs[i].name);
  if (code->nbundles < 1) return tile_error(d, (TileLoc){0}, "emit: the code has no bundles");
  snprintf(obj->target, sizeof obj->target, "%s", m->target->name);
  bool ok = emit_code(m, code, obj, d);
  if (ok) {
    emit_data(m, obj);
    emit_symbols(m, obj);
    /* What the writer and the emulator would refuse is a compiler bug: say so here. */
    int before = d->nerrors;
    ok = tile_object_check(obj, d) && tile_object_check_target(obj, m->target, d);
    if (!ok && d->nerrors > before)
      tile_note(d, (TileLoc){0},
                "the compiler built an object the machine refuses; this is a "
                "bug in code generation");
  }
  if (!ok) tile_object_free(obj);
  return ok;
}
