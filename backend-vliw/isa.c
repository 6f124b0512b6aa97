/* The ISA table (include/tile/isa.h) made into data, the slot word encoding, and the
 * checks every consumer of machine code shares: the object reader, the assembler and
 * the emulator all ask the same functions whether an op is well formed, so a rule is
 * written once.
 *
 * Word layout (64 bits): opcode 63..56, d 55..50, a 49..44, b 43..38, c 37..32,
 * imm 31..0. Register fields are 6 bits, so register, MXU and semaphore numbers are
 * below 64 by construction once decoded. */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
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

/* ---- the table decoded once ----
 *
 * Every slot word of every object is checked (by the compiler before it hands an object
 * back, by the writer, the reader and the emulator), and the checks ask, per word, for
 * its slot kind and the op's operand pattern, fields and immediate range. Those are
 * read out of the string table once into this form, so a check is a few loads. */

enum { FIELD_IMM = 4 }; /* bit of the imm field in OpForm.used (d a b c are bits 0..3) */

/* What a machine numbers: the operands whose value must exist on the target. */
typedef enum Numbered { NUM_SREG, NUM_VREG, NUM_MXU, NUM_SEM, NUM_COUNT } Numbered;

static const char *const numbered_what[NUM_COUNT] = {
    [NUM_SREG] = "scalar register s",
    [NUM_VREG] = "vector register v",
    [NUM_MXU] = "MXU unit m",
    [NUM_SEM] = "semaphore sem",
};

typedef struct OpForm {
  int n; /* operands */
  TileOperand ops[TILE_MAX_OPERANDS];
  uint8_t used;   /* the fields the op's pattern names (the wide field is a, b and c) */
  int64_t lo, hi; /* the encoding's range of its imm field */
  int nnum;       /* operands naming a register, MXU unit or semaphore, in operand order */
  struct {
    char field;
    Numbered what;
  } num[TILE_MAX_OPERANDS];
} OpForm;

static struct {
  OpForm op[TILE_MOP_COUNT];
  int8_t word_slot[TILE_BUNDLE_SLOTS]; /* the slot kind of each bundle word */
  int8_t first[TILE_SLOT_COUNT];       /* the first word of each slot kind */
} forms;
/* Set (release) once forms is built; read (acquire) before each use, so the common case
 * is one load and pthread_once runs only until the table exists. */
static atomic_bool forms_ready;
static pthread_once_t forms_once = PTHREAD_ONCE_INIT;

/* Immediate rules the encoding enforces (machine-independent). */
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

static int field_bit(char field) {
  switch (field) {
  case 'd': return 1 << 0;
  case 'a': return 1 << 1;
  case 'b': return 1 << 2;
  case 'c': return 1 << 3;
  case 'w': return 1 << 1 | 1 << 2 | 1 << 3; /* the wide field spans a, b and c */
  default: return 1 << FIELD_IMM;
  }
}

static void forms_build(void) {
  for (int op = 0; op < TILE_MOP_COUNT; op++) {
    OpForm *f = &forms.op[op];
    const char *p = tile_mop_info[op].operands;
    /* Patterns are pairs of letters separated by single spaces (see isa.h). */
    while (*p && f->n < TILE_MAX_OPERANDS) {
      if (*p == ' ') {
        p++;
        continue;
      }
      f->ops[f->n].kind = p[0];
      f->ops[f->n].field = p[1];
      f->used |= (uint8_t)field_bit(p[1]);
      int what = p[0] == 'S' || p[0] == 's'   ? NUM_SREG
                 : p[0] == 'V' || p[0] == 'v' ? NUM_VREG
                 : p[0] == 'm'                ? NUM_MXU
                 : p[0] == 'q'                ? NUM_SEM
                                              : -1;
      if (what >= 0) {
        f->num[f->nnum].field = p[1];
        f->num[f->nnum].what = (Numbered)what;
        f->nnum++;
      }
      f->n++;
      p += p[1] ? 2 : 1;
    }
    f->lo = INT32_MIN;
    f->hi = INT32_MAX;
    for (size_t i = 0; i < sizeof imm_rules / sizeof imm_rules[0]; i++)
      if (imm_rules[i].op == op) {
        f->lo = imm_rules[i].lo;
        f->hi = imm_rules[i].hi;
      }
  }
  int first = 0;
  for (int k = 0; k < TILE_SLOT_COUNT; k++) {
    forms.first[k] = (int8_t)first;
    for (int w = first; w < first + slot_words[k]; w++) forms.word_slot[w] = (int8_t)k;
    first += slot_words[k];
  }
  atomic_store_explicit(&forms_ready, true, memory_order_release);
}

static inline void forms_need(void) {
  if (!atomic_load_explicit(&forms_ready, memory_order_acquire))
    pthread_once(&forms_once, forms_build);
}

static inline const OpForm *form(int op) {
  forms_need();
  return &forms.op[op];
}

int tile_slot_words(TileSlot s) {
  return (int)s >= 0 && s < TILE_SLOT_COUNT ? slot_words[s] : 0;
}

int tile_slot_first(TileSlot s) {
  forms_need();
  if ((int)s < 0) return 0;
  return s < TILE_SLOT_COUNT ? forms.first[s] : TILE_BUNDLE_SLOTS;
}

TileSlot tile_slot_of_word(int w) {
  forms_need();
  return w >= 0 && w < TILE_BUNDLE_SLOTS ? (TileSlot)forms.word_slot[w] : TILE_SLOT_COUNT;
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
  const OpForm *f = form(op);
  for (int k = 0; k < f->n; k++) out[k] = f->ops[k];
  return f->n;
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

void tile_mop_imm_range(int op, int64_t *lo, int64_t *hi) {
  *lo = INT32_MIN;
  *hi = INT32_MAX;
  if (op < 0 || op >= TILE_MOP_COUNT) return;
  *lo = form(op)->lo;
  *hi = form(op)->hi;
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

/* ---- the checks ----
 *
 * Each check is written twice: a predicate on the passing path (every op of every
 * object goes through it, so it is a few table loads and compares), and the full rule,
 * run only for a word the predicate refuses, which finds the first rule broken and says
 * which. The predicate refuses at least what the rule refuses, so the answer is always
 * the rule's. */

static inline bool minst_fits(TileMInst in, int word) {
  if (word < 0 || word >= TILE_BUNDLE_SLOTS || in.op >= TILE_MOP_COUNT) return false;
  const OpForm *f = form(in.op);
  if (in.op != TILE_MOP_NOP && tile_mop_info[in.op].slot != (TileSlot)forms.word_slot[word])
    return false;
  int nonzero = (in.d != 0) | (in.a != 0) << 1 | (in.b != 0) << 2 | (in.c != 0) << 3 |
                (in.imm != 0) << FIELD_IMM;
  if ((in.d | in.a | in.b | in.c) > FIELD_MASK || (nonzero & ~f->used)) return false;
  if (in.imm < f->lo || in.imm > f->hi) return false;
  return in.op != TILE_MOP_LOOP || tile_minst_field(in, 'w') >= 1;
}

__attribute__((noinline, cold)) static bool minst_why(TileMInst in, int word, char *why,
                                                      size_t why_len) {
  if (word < 0 || word >= TILE_BUNDLE_SLOTS)
    return tile_vliw_say(why, why_len, "slot word %d is not in a bundle of %d words", word,
               TILE_BUNDLE_SLOTS);
  if (in.op >= TILE_MOP_COUNT)
    return tile_vliw_say(why, why_len, "unknown opcode %d (this ISA has %d ops)", in.op,
                         TILE_MOP_COUNT);
  const TileMopInfo *info = &tile_mop_info[in.op];
  const OpForm *f = form(in.op);
  TileSlot kind = (TileSlot)forms.word_slot[word];
  if (in.op != TILE_MOP_NOP && info->slot != kind)
    return tile_vliw_say(why, why_len,
                         "'%s' is a %s-slot op but sits in bundle word %d (a %s slot)",
                         info->mnemonic, tile_slot_name(info->slot), word, tile_slot_name(kind));
  /* Most words pass; only a failing one walks the fields for its message. */
  int nonzero = (in.d != 0) | (in.a != 0) << 1 | (in.b != 0) << 2 | (in.c != 0) << 3 |
                (in.imm != 0) << FIELD_IMM;
  if ((in.d | in.a | in.b | in.c) > FIELD_MASK || (nonzero & ~f->used)) {
    static const char fields[] = "dabci";
    for (int k = 0; k < 5; k++) {
      int32_t v = tile_minst_field(in, fields[k]);
      if (k < 4 && v > FIELD_MASK)
        return tile_vliw_say(why, why_len, "'%s' has %d in its 6-bit %c field (at most %d)",
                             info->mnemonic, (int)v, fields[k], FIELD_MASK);
      if (!(f->used >> k & 1) && v != 0)
        return tile_vliw_say(
            why, why_len, "'%s' does not use its %s field, which must be 0 but holds %d",
            info->mnemonic, k == FIELD_IMM ? "imm" : (const char *[]){"d", "a", "b", "c"}[k],
            (int)v);
    }
  }
  if (in.imm < f->lo || in.imm > f->hi) {
    if (f->hi == INT32_MAX)
      return tile_vliw_say(why, why_len, "'%s' needs an immediate of at least %lld, not %d",
                 info->mnemonic, (long long)f->lo, (int)in.imm);
    return tile_vliw_say(why, why_len, "'%s' needs an immediate in %lld..%lld, not %d",
                         info->mnemonic, (long long)f->lo, (long long)f->hi, (int)in.imm);
  }
  if (in.op == TILE_MOP_LOOP && tile_minst_field(in, 'w') < 1)
    return tile_vliw_say(why, why_len, "'%s' needs a body of at least 1 bundle", info->mnemonic);
  return true;
}

bool tile_minst_check(TileMInst in, int word, char *why, size_t why_len) {
  return minst_fits(in, word) || minst_why(in, word, why, why_len);
}

/* The row groups an op's imm may name on t (INT32_MAX: the op has no such bound). */
static inline int32_t row_groups(int op, const TileTarget *t) {
  if (op == TILE_MOP_MXU_LDW) return t->vreg_sublanes ? t->mxu_dim / t->vreg_sublanes : 0;
  if (op == TILE_MOP_XTRPUSH || op == TILE_MOP_XTRPOP)
    return t->vreg_sublanes ? t->vreg_lanes / t->vreg_sublanes : 0;
  return INT32_MAX;
}

static inline bool target_fits(TileMInst in, int word, const TileTarget *t) {
  if (in.op == TILE_MOP_NOP) return true;
  if (word < 0 || word >= TILE_BUNDLE_SLOTS || in.op >= TILE_MOP_COUNT) return false;
  const OpForm *f = form(in.op);
  TileSlot kind = (TileSlot)forms.word_slot[word];
  if (word - forms.first[kind] >= t->slots[kind]) return false;
  const int limit[NUM_COUNT] = {t->nsregs, t->nvregs, t->mxu_count, t->nsems};
  for (int k = 0; k < f->nnum; k++)
    if (tile_minst_field(in, f->num[k].field) >= limit[f->num[k].what]) return false;
  int32_t rows = row_groups(in.op, t);
  return rows == INT32_MAX || in.imm < rows;
}

__attribute__((noinline, cold)) static bool target_why(TileMInst in, int word,
                                                       const TileTarget *t, char *why,
                                                       size_t why_len) {
  if (in.op == TILE_MOP_NOP) return true;
  if (word < 0 || word >= TILE_BUNDLE_SLOTS || in.op >= TILE_MOP_COUNT)
    return minst_why(in, word, why, why_len);
  const TileMopInfo *info = &tile_mop_info[in.op];
  const OpForm *f = form(in.op);
  TileSlot kind = (TileSlot)forms.word_slot[word];
  int index = word - forms.first[kind];
  if (index >= t->slots[kind]) {
    return tile_vliw_say(why, why_len, "%s slot %d does not exist on target %s (it has %d)",
               tile_slot_name(kind), index, t->name, t->slots[kind]);
  }
  const int limit[NUM_COUNT] = {t->nsregs, t->nvregs, t->mxu_count, t->nsems};
  for (int k = 0; k < f->nnum; k++) {
    int32_t v = tile_minst_field(in, f->num[k].field);
    Numbered what = f->num[k].what;
    if (v >= limit[what])
      return tile_vliw_say(why, why_len, "%s%d does not exist on target %s (it has %d)",
                           numbered_what[what], (int)v, t->name, limit[what]);
  }
  int32_t rows = row_groups(in.op, t);
  const char *rows_of = in.op == TILE_MOP_MXU_LDW ? "the MXU's weight rows"
                                                  : "the transpose buffer's rows";
  if (rows != INT32_MAX && in.imm >= rows)
    return tile_vliw_say(why, why_len,
                         "'%s' row group %d is beyond %s on target %s (groups 0..%d of %d rows)",
                         info->mnemonic, (int)in.imm, rows_of, t->name, rows - 1, t->vreg_sublanes);
  return true;
}

bool tile_minst_check_target(TileMInst in, int word, const TileTarget *t, char *why,
                             size_t why_len) {
  return target_fits(in, word, t) || target_why(in, word, t, why, why_len);
}
