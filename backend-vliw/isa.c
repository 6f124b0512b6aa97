/* The ISA table (include/tile/isa.h) made into data, the slot word encoding, and the
 * checks every consumer of machine code shares: the object reader, the assembler and
 * the emulator all ask the same functions whether an op is well formed, so a rule is
 * written once.
 *
 * Word layout (64 bits): opcode 63..56, d 55..50, a 49..44, b 43..38, c 37..32,
 * imm 31..0. Register fields are 6 bits, so register, MXU and semaphore numbers are
 * below 64 by construction once decoded. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "objrules.h"
#include "tile/isa.h"

const TileMopInfo tile_mop_info[TILE_MOP_COUNT] = {
#define X(id, mn, slot, lat, opnds, sem) \
  [TILE_MOP_##id] = {mn, TILE_SLOT_##slot, TILE_LAT_##lat, opnds, sem},
    TILE_ISA(X)
#undef X
};

enum { FIELD_BITS = 6, FIELD_MASK = (1 << FIELD_BITS) - 1 };
enum { SHIFT_OP = 56, SHIFT_D = 50, SHIFT_A = 44, SHIFT_B = 38, SHIFT_C = 32 };

uint64_t tile_minst_encode(TileMInst in) {
  return (uint64_t)in.op << SHIFT_OP | (uint64_t)(in.d & FIELD_MASK) << SHIFT_D |
         (uint64_t)(in.a & FIELD_MASK) << SHIFT_A | (uint64_t)(in.b & FIELD_MASK) << SHIFT_B |
         (uint64_t)(in.c & FIELD_MASK) << SHIFT_C | (uint64_t)(uint32_t)in.imm;
}

TileMInst tile_minst_decode(uint64_t word) {
  TileMInst in;
  in.op = (uint8_t)(word >> SHIFT_OP);
  in.d = (uint8_t)(word >> SHIFT_D & FIELD_MASK);
  in.a = (uint8_t)(word >> SHIFT_A & FIELD_MASK);
  in.b = (uint8_t)(word >> SHIFT_B & FIELD_MASK);
  in.c = (uint8_t)(word >> SHIFT_C & FIELD_MASK);
  in.imm = (int32_t)(uint32_t)word;
  return in;
}

/* ---- slot positions, from TILE_SLOT_WORDS ---- */

static const int slot_words[TILE_SLOT_COUNT] = {
#define X(slot, n) [TILE_SLOT_##slot] = n,
    TILE_SLOT_WORDS(X)
#undef X
};

/* The words of the slot kinds add up to the bundle, so the diagram in isa.h holds. */
_Static_assert(0
#define X(slot, n) +n
                   TILE_SLOT_WORDS(X)
#undef X
                   == TILE_BUNDLE_SLOTS,
               "TILE_SLOT_WORDS must fill TILE_BUNDLE_SLOTS");

int tile_slot_words(TileSlot s) {
  return (int)s >= 0 && s < TILE_SLOT_COUNT ? slot_words[s] : 0;
}

int tile_slot_first(TileSlot s) {
  int first = 0;
  for (int k = 0; k < (int)s && k < TILE_SLOT_COUNT; k++) first += slot_words[k];
  return first;
}

TileSlot tile_slot_of_word(int w) {
  int first = 0;
  for (int k = 0; k < TILE_SLOT_COUNT; k++) {
    if (w >= first && w < first + slot_words[k]) return (TileSlot)k;
    first += slot_words[k];
  }
  return TILE_SLOT_COUNT;
}

int tile_mop_lookup(const char *mnemonic, size_t len) {
  for (int op = 0; op < TILE_MOP_COUNT; op++)
    if (strlen(tile_mop_info[op].mnemonic) == len &&
        memcmp(tile_mop_info[op].mnemonic, mnemonic, len) == 0)
      return op;
  return -1;
}

int tile_mop_operands(int op, TileOperand out[TILE_MAX_OPERANDS]) {
  if (op < 0 || op >= TILE_MOP_COUNT) return 0;
  const char *p = tile_mop_info[op].operands;
  int n = 0;
  /* Patterns are pairs of letters separated by single spaces (see isa.h). */
  while (*p && n < TILE_MAX_OPERANDS) {
    if (*p == ' ') {
      p++;
      continue;
    }
    out[n].kind = p[0];
    out[n].field = p[1];
    n++;
    p += p[1] ? 2 : 1;
  }
  return n;
}

int32_t tile_minst_field(TileMInst in, char field) {
  switch (field) {
  case 'd': return in.d;
  case 'a': return in.a;
  case 'b': return in.b;
  case 'c': return in.c;
  case 'w': return in.c | in.b << 6 | in.a << 12;
  case 'i': return in.imm;
  }
  return 0;
}

void tile_minst_set_field(TileMInst *in, char field, int32_t v) {
  switch (field) {
  case 'd': in->d = (uint8_t)(v & FIELD_MASK); break;
  case 'a': in->a = (uint8_t)(v & FIELD_MASK); break;
  case 'b': in->b = (uint8_t)(v & FIELD_MASK); break;
  case 'c': in->c = (uint8_t)(v & FIELD_MASK); break;
  case 'w':
    in->c = (uint8_t)(v & FIELD_MASK);
    in->b = (uint8_t)(v >> 6 & FIELD_MASK);
    in->a = (uint8_t)(v >> 12 & FIELD_MASK);
    break;
  default: in->imm = v; break;
  }
}

/* ---- immediate rules the encoding enforces (machine-independent) ---- */

static const struct {
  int op;
  int64_t lo, hi;
} imm_rules[] = {
    {TILE_MOP_VIOTA, 0, 2},                       /* lane, sublane or linear index */
    {TILE_MOP_COORD, 0, TILE_MAX_TORUS_RANK - 1}, /* a torus axis */
    {TILE_MOP_LOOP, 1, INT32_MAX},                /* a trip count */
    {TILE_MOP_JMP, 0, INT32_MAX},                 /* bundle indices */
    {TILE_MOP_BNZ, 0, INT32_MAX},
    {TILE_MOP_BZ, 0, INT32_MAX},
    {TILE_MOP_MXU_LDW, 0, INT32_MAX}, /* row groups; the machine bounds them above */
    {TILE_MOP_XTRPUSH, 0, INT32_MAX},
    {TILE_MOP_XTRPOP, 0, INT32_MAX},
    {TILE_MOP_SIGNAL, 0, INT32_MAX}, /* semaphores count up by signals, down by waits */
    {TILE_MOP_SIGNALR, 0, INT32_MAX},
    {TILE_MOP_WAIT, 0, INT32_MAX},
};

void tile_mop_imm_range(int op, int64_t *lo, int64_t *hi) {
  *lo = INT32_MIN;
  *hi = INT32_MAX;
  for (size_t i = 0; i < sizeof imm_rules / sizeof imm_rules[0]; i++)
    if (imm_rules[i].op == op) {
      *lo = imm_rules[i].lo;
      *hi = imm_rules[i].hi;
    }
}

const char *tile_slot_name(TileSlot s) {
  static const char *keys[] = {
#define X(e, k, m) k,
      TILE_SLOTS(X)
#undef X
  };
  return (int)s >= 0 && s < TILE_SLOT_COUNT ? keys[s] : "?";
}

/* Writes one sentence to why (when given) and returns false. */
bool tile_vliw_say(char *why, size_t n, const char *fmt, ...) {
  if (why && n) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
  }
  return false;
}

bool tile_minst_check(TileMInst in, int word, char *why, size_t why_len) {
  if (word < 0 || word >= TILE_BUNDLE_SLOTS)
    return tile_vliw_say(why, why_len, "slot word %d is not in a bundle of %d words", word,
               TILE_BUNDLE_SLOTS);
  if (in.op >= TILE_MOP_COUNT)
    return tile_vliw_say(why, why_len, "unknown opcode %d (this ISA has %d ops)", in.op,
                         TILE_MOP_COUNT);
  const TileMopInfo *info = &tile_mop_info[in.op];
  TileSlot kind = tile_slot_of_word(word);
  if (in.op != TILE_MOP_NOP && info->slot != kind)
    return tile_vliw_say(why, why_len,
                         "'%s' is a %s-slot op but sits in bundle word %d (a %s slot)",
                         info->mnemonic, tile_slot_name(info->slot), word, tile_slot_name(kind));
  TileOperand ops[TILE_MAX_OPERANDS];
  int n = tile_mop_operands(in.op, ops);
  static const char fields[] = "dabci";
  bool used[5] = {false};
  for (int k = 0; k < n; k++) {
    if (ops[k].field == 'w') /* the wide field spans a, b and c */
      used[1] = used[2] = used[3] = true;
    else
      used[strchr(fields, ops[k].field) - fields] = true;
  }
  for (int f = 0; f < 5; f++) {
    int32_t v = tile_minst_field(in, fields[f]);
    if (f < 4 && v > FIELD_MASK)
      return tile_vliw_say(why, why_len, "'%s' has %d in its 6-bit %c field (at most %d)",
                           info->mnemonic, (int)v, fields[f], FIELD_MASK);
    if (!used[f] && v != 0)
      return tile_vliw_say(
          why, why_len, "'%s' does not use its %s field, which must be 0 but holds %d",
          info->mnemonic, f == 4 ? "imm" : (const char *[]){"d", "a", "b", "c"}[f], (int)v);
  }
  int64_t lo, hi;
  tile_mop_imm_range(in.op, &lo, &hi);
  if (in.imm < lo || in.imm > hi) {
    if (hi == INT32_MAX)
      return tile_vliw_say(why, why_len, "'%s' needs an immediate of at least %lld, not %d",
                 info->mnemonic, (long long)lo, (int)in.imm);
    return tile_vliw_say(why, why_len, "'%s' needs an immediate in %lld..%lld, not %d",
                         info->mnemonic, (long long)lo, (long long)hi, (int)in.imm);
  }
  if (in.op == TILE_MOP_LOOP && tile_minst_field(in, 'w') < 1)
    return tile_vliw_say(why, why_len, "'%s' needs a body of at least 1 bundle", info->mnemonic);
  return true;
}

bool tile_minst_check_target(TileMInst in, int word, const TileTarget *t, char *why,
                             size_t why_len) {
  if (in.op == TILE_MOP_NOP) return true;
  const TileMopInfo *info = &tile_mop_info[in.op];
  TileSlot kind = tile_slot_of_word(word);
  int index = word - tile_slot_first(kind);
  if (index >= t->slots[kind]) {
    return tile_vliw_say(why, why_len, "%s slot %d does not exist on target %s (it has %d)",
               tile_slot_name(kind), index, t->name, t->slots[kind]);
  }
  TileOperand ops[TILE_MAX_OPERANDS];
  int n = tile_mop_operands(in.op, ops);
  for (int k = 0; k < n; k++) {
    int32_t v = tile_minst_field(in, ops[k].field);
    const char *what = NULL;
    int limit = 0;
    switch (ops[k].kind) {
    case 'S':
    case 's': what = "scalar register s", limit = t->nsregs; break;
    case 'V':
    case 'v': what = "vector register v", limit = t->nvregs; break;
    case 'm': what = "MXU unit m", limit = t->mxu_count; break;
    case 'q': what = "semaphore sem", limit = t->nsems; break;
    }
    if (what && v >= limit)
      return tile_vliw_say(why, why_len, "%s%d does not exist on target %s (it has %d)", what,
                           (int)v, t->name, limit);
  }
  int32_t rows = 0;
  const char *rows_of = NULL;
  if (in.op == TILE_MOP_MXU_LDW) {
    rows = t->vreg_sublanes ? t->mxu_dim / t->vreg_sublanes : 0;
    rows_of = "the MXU's weight rows";
  } else if (in.op == TILE_MOP_XTRPUSH || in.op == TILE_MOP_XTRPOP) {
    rows = t->vreg_sublanes ? t->vreg_lanes / t->vreg_sublanes : 0;
    rows_of = "the transpose buffer's rows";
  }
  if (rows_of && in.imm >= rows)
    return tile_vliw_say(why, why_len,
                         "'%s' row group %d is beyond %s on target %s (groups 0..%d of %d rows)",
                         info->mnemonic, (int)in.imm, rows_of, t->name, rows - 1, t->vreg_sublanes);
  return true;
}
