/* Small helpers over MIR insts shared by the checks, the printers, register allocation,
 * layout and emission: which fields of an op are registers (and of which file, read or
 * written), an op's name including the loop pseudo-ops, and its result latency. All of
 * it is read off the ISA table (include/tile/isa.h), so no op is listed twice. */
#ifndef TILE_VLIW_MIR_UTIL_H
#define TILE_VLIW_MIR_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "tile/mir.h"

/* One register operand of an op: the field it lives in, its register file and whether
 * the op writes it. */
typedef struct MirRegOperand {
  char field;  /* 'd', 'a', 'b' or 'c' */
  uint8_t cls; /* TileMirRegClass */
  bool write;
} MirRegOperand;

static inline bool mir_is_isa_op(int op) { return op >= 0 && op < TILE_MOP_COUNT; }

static inline const char *mir_op_name(int op) {
  if (mir_is_isa_op(op)) return tile_mop_info[op].mnemonic;
  if (op == TILE_MIR_LOOP_BEGIN) return "loop.begin";
  if (op == TILE_MIR_LOOP_END) return "loop.end";
  return "?";
}

/* A field of an inst. MIR fields are 32 bits wide, so the machine's wide field 'w' (a
 * loop's body length, spread over a, b and c in the encoding) is held whole in c. */
static inline int32_t *mir_field(TileMirInst *in, char f) {
  switch (f) {
  case 'd': return &in->d;
  case 'a': return &in->a;
  case 'b': return &in->b;
  case 'c':
  case 'w': return &in->c;
  default: return &in->imm;
  }
}

static inline int32_t mir_field_get(const TileMirInst *in, char f) {
  return *mir_field((TileMirInst *)in, f);
}

/* The register operands of an ISA op in assembly order; returns how many (0 for the
 * loop pseudo-ops). */
static inline int mir_reg_operands(int op, MirRegOperand out[TILE_MAX_OPERANDS]) {
  TileOperand ops[TILE_MAX_OPERANDS];
  int n = mir_is_isa_op(op) ? tile_mop_operands(op, ops) : 0, k = 0;
  for (int i = 0; i < n; i++) {
    char c = ops[i].kind;
    if (c == 'S' || c == 's' || c == 'V' || c == 'v')
      out[k++] = (MirRegOperand){.field = ops[i].field,
                                 .cls = (c == 'S' || c == 's') ? TILE_MIR_SREG : TILE_MIR_VREG,
                                 .write = c == 'S' || c == 'V'};
  }
  return k;
}

/* The register operands of every op, read off the table once (mir_reg_operands parses
 * the operand pattern; passes that visit every op many times use this instead). */
typedef struct MirRegTable {
  uint8_t n[TILE_MOP_COUNT];
  MirRegOperand op[TILE_MOP_COUNT][TILE_MAX_OPERANDS];
} MirRegTable;

static inline void mir_reg_table_init(MirRegTable *t) {
  for (int op = 0; op < TILE_MOP_COUNT; op++) t->n[op] = (uint8_t)mir_reg_operands(op, t->op[op]);
}

/* The register operands of op (none for the loop pseudo-ops); returns how many. */
static inline int mir_regs_of(const MirRegTable *t, int op, const MirRegOperand **out) {
  if (!mir_is_isa_op(op)) return 0;
  *out = t->op[op];
  return t->n[op];
}

/* Cycles from an op's issue until its register result may be read. */
static inline int32_t mir_latency(const TileTarget *t, int op) {
  return mir_is_isa_op(op) ? t->latency[tile_mop_info[op].latency] : 0;
}

/* Formats one inst in assembly syntax ("vld %v3, %s1, %s2, a_tiles+64"): registers as
 * %sN/%vN, or sN/vN when physical; a buffer-relative immediate by its buffer's name.
 * Returns the length it needs, like snprintf. (mir_print.c) */
int mir_format_inst(const TileMir *m, const TileMirInst *in, bool physical, char *buf, size_t size);

/* "matmul" / "glue": what a listing or message calls an inst's source. */
static inline const char *mir_src_name(const TileMir *m, const TileMirInst *in) {
  const char *name = tile_mir_src_name(m, in);
  return name ? name : "glue";
}

#endif
