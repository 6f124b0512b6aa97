/* Printing MIR: tile_mir_print (the generators' output, one inst per line, loops
 * indented) and tile_mir_code_print (scheduled bundles, before or after register
 * allocation), for --emit=mir, --emit=sched, --emit=alloc and for test failures.
 *
 * Insts print in assembly syntax (docs/isa.md) so they read like the listing and the
 * disassembly; only the names differ: virtual registers are %sN/%vN, a buffer-relative
 * immediate is `name+offset`, memory references trail in braces and the source op in a
 * `//` comment. The text is for people; nothing parses it back. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mir_util.h"
#include "tile/asm.h"
#include "tile/mir.h"

/* Appends to buf at *used, keeping the snprintf contract (need counts everything). */
typedef struct Out {
  char *buf;
  size_t size, used;
  int need;
} Out;

static void put(Out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(Out *o, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t room = o->used < o->size ? o->size - o->used : 0;
  int k = vsnprintf(room ? o->buf + o->used : NULL, room, fmt, ap);
  va_end(ap);
  if (k < 0) return;
  o->need += k;
  o->used += (size_t)k;
}

static const char *buf_name(const TileMir *m, int32_t b) {
  return b >= 0 && b < m->nbufs ? m->bufs[b].name : "?";
}

int mir_format_inst(const TileMir *m, const TileMirInst *in, bool physical, char *buf,
                    size_t size) {
  Out o = {buf, size, 0, 0};
  if (size) buf[0] = 0;
  if (in->op == TILE_MIR_LOOP_BEGIN) {
    put(&o, "loop %d%s", (int)in->imm, in->a & TILE_MIR_PIPELINE ? " pipeline" : "");
    if (in->b > 0) put(&o, " dma-reserve %d", (int)in->b);
    return o.need;
  }
  if (!mir_is_isa_op(in->op)) {
    put(&o, "%s", mir_op_name(in->op));
    return o.need;
  }
  const char *vs = physical ? "s" : "%s", *vv = physical ? "v" : "%v";
  TileOperand ops[TILE_MAX_OPERANDS];
  int n = tile_mop_operands(in->op, ops);
  put(&o, "%s", tile_mop_info[in->op].mnemonic);
  for (int k = 0; k < n; k++) {
    int32_t v = mir_field_get(in, ops[k].field);
    put(&o, "%s", k ? ", " : " ");
    switch (ops[k].kind) {
    case 'S':
    case 's': put(&o, "%s%d", vs, (int)v); break;
    case 'V':
    case 'v': put(&o, "%s%d", vv, (int)v); break;
    case 'm': put(&o, "m%d", (int)v); break;
    case 'q': put(&o, "sem%d", (int)v); break;
    case 'f': {
      char num[48];
      tile_f32_format((uint32_t)v, num, sizeof num);
      put(&o, "%s", num);
      break;
    }
    default:
      if (ops[k].field == 'i' && in->imm_buf >= 0) {
        put(&o, "%s", buf_name(m, in->imm_buf));
        if (v) put(&o, "%+d", (int)v);
      } else {
        put(&o, "%d", (int)v);
      }
    }
  }
  return o.need;
}

/* " {r a, w b[+1]}": the buffers an op touches. */
static void print_mem(FILE *out, const TileMir *m, const TileMirInst *in) {
  bool any = false;
  for (int k = 0; k < TILE_MIR_MAX_MEM; k++) {
    const TileMirMem *mm = &in->mem[k];
    if (mm->buf < 0) continue;
    const char *acc = mm->access == (TILE_MIR_READ | TILE_MIR_WRITE) ? "rw"
                      : mm->access == TILE_MIR_WRITE                 ? "w"
                                                                     : "r";
    fprintf(out, "%s%s %s", any ? ", " : "  {", acc, buf_name(m, mm->buf));
    if (mm->slot_ofs) fprintf(out, "[%+d]", mm->slot_ofs);
    any = true;
  }
  if (any) fputc('}', out);
}

static void print_source(FILE *out, const TileMir *m, const TileMirInst *in) {
  const char *name = tile_mir_src_name(m, in);
  TileLoc loc = tile_mir_src_loc(m, in);
  if (!name) return;
  fprintf(out, "  // %s", name);
  if (loc.line > 0) {
    fprintf(out, " @");
    if (loc.file) fprintf(out, "%s:", loc.file);
    fprintf(out, "%d", loc.line);
  }
}

static void print_buffers(FILE *out, const TileMir *m) {
  for (int32_t i = 0; i < m->nbufs; i++) {
    const TileMirBuffer *b = &m->bufs[i];
    fprintf(out, "buffer %s: %s %" PRId64 " bytes", b->name,
            tile_space_name((TileSpace)(b->space < TILE_SPACE_COUNT ? b->space : 0)), b->bytes);
    if (b->nslots > 1) fprintf(out, " x %d slots", (int)b->nslots);
    fprintf(out, ", align %d", (int)b->align);
    if (b->bind) {
      static const char *kinds[] = {"?", "in", "out", "inout"};
      fprintf(out, ", bound %s %s[", kinds[b->bind <= TILE_BIND_INOUT ? b->bind : 0],
              b->elem < TILE_ELEM_COUNT ? tile_elem_name((TileElem)b->elem) : "?");
      for (int32_t k = 0; k < b->rank && k < TILE_MAX_RANK; k++)
        fprintf(out, "%s%" PRId64, k ? "x" : "", b->dims[k]);
      fputc(']', out);
    }
    if (b->init_len > 0) fprintf(out, ", %" PRId64 " bytes initialized", b->init_len);
    if (b->addr >= 0) fprintf(out, ", at %" PRId64, b->addr);
    fputc('\n', out);
  }
  for (int32_t i = 0; i < m->nrelocs; i++) {
    const TileMirReloc *r = &m->relocs[i];
    fprintf(out, "reloc %s+%" PRId64 " := %s bits of &%s%+" PRId64 "\n", buf_name(m, r->buf),
            r->offset, r->high ? "high" : "low", buf_name(m, r->target), r->addend);
  }
  if (m->nsems) fprintf(out, "semaphores %d\n", (int)m->nsems);
}

void tile_mir_print(FILE *out, const TileMir *m) {
  fprintf(out, "# machine IR for target %s: %d insts, %d virtual registers\n",
          m->target ? m->target->name : "?", (int)m->ninsts, (int)m->nregs);
  print_buffers(out, m);
  int depth = 0;
  for (int32_t i = 0; i < m->ninsts; i++) {
    const TileMirInst *in = &m->insts[i];
    if (in->op == TILE_MIR_LOOP_END) {
      if (depth > 0) depth--;
      fprintf(out, "%*s}\n", 2 + 2 * depth, "");
      continue;
    }
    char text[256];
    mir_format_inst(m, in, false, text, sizeof text);
    fprintf(out, "%*s%s%s", 2 + 2 * depth, "", text, in->op == TILE_MIR_LOOP_BEGIN ? " {" : "");
    print_mem(out, m, in);
    print_source(out, m, in);
    fputc('\n', out);
    if (in->op == TILE_MIR_LOOP_BEGIN) depth++;
  }
}

/* ---- scheduled code ---- */

enum { MAX_PRINT_DEPTH = 8 };

void tile_mir_code_print(FILE *out, const TileMir *m, const TileMirCode *code, bool physical) {
  fprintf(out, "# scheduled code for target %s: %d bundles, %s registers\n",
          m->target ? m->target->name : "?", (int)code->nbundles, physical ? "machine" : "virtual");
  print_buffers(out, m);
  /* ends[k]: the last bundle of the k-th open loop body, innermost last */
  int32_t ends[MAX_PRINT_DEPTH];
  int depth = 0;
  int width = snprintf(NULL, 0, "%d", code->nbundles > 0 ? (int)code->nbundles - 1 : 0);
  for (int32_t p = 0; p < code->nbundles; p++) {
    for (int32_t l = 0; l < code->nloops; l++)
      if (code->loops[l].first == p)
        fprintf(out, "%*s# pipelined: ii %d, %d stages (resource bound %d, recurrence %d)\n",
                2 + 2 * depth + width + 2, "", (int)code->loops[l].ii, (int)code->loops[l].stages,
                (int)code->loops[l].res_mii, (int)code->loops[l].rec_mii);
    fprintf(out, "%*s%*d: ", 2 * depth, "", width, (int)p);
    const TileMirBundle *b = &code->b[p];
    bool any = false;
    int32_t loop_end = -1;
    for (int w = 0; w < TILE_BUNDLE_SLOTS; w++) {
      const TileMirInst *in = &b->slot[w];
      if (in->op == TILE_MOP_NOP) continue;
      char text[256];
      mir_format_inst(m, in, physical, text, sizeof text);
      fprintf(out, "%s%s", any ? " ; " : "", text);
      if (in->op == TILE_MOP_LOOP) loop_end = p + in->c;
      any = true;
    }
    fputs(any ? "\n" : "nop\n", out);
    while (depth > 0 && ends[depth - 1] <= p) depth--;
    if (loop_end >= 0 && depth < MAX_PRINT_DEPTH) ends[depth++] = loop_end;
  }
}
