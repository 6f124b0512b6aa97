/* The disassembler: an object as canonical assembly text (docs/isa.md, "Assembly").
 * Canonical means assembling the text gives back the same object byte for byte, so
 * the printer leaves nothing implicit that the assembler would decide differently:
 * an op not in the slot word the assembler would pick gets `@N`, floats are printed
 * with the shortest literal that reads back to the same bits, NaNs as raw bits, and
 * branch targets as labels `L<bundle>` defined before the bundles they name. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tile/asm.h"

int tile_f32_format(uint32_t bits, char *buf, size_t size) {
  float f;
  memcpy(&f, &bits, 4);
  if (isnan(f)) return snprintf(buf, size, "0x%08x", bits);
  if (isinf(f)) return snprintf(buf, size, f < 0 ? "-inf" : "inf");
  char tmp[48];
  for (int prec = 1; prec <= 9; prec++) {
    snprintf(tmp, sizeof tmp, "%.*g", prec, (double)f);
    float back = strtof(tmp, NULL);
    if (memcmp(&back, &f, 4) == 0) break;
  }
  /* "1" reads as a float too, but "1.0" says what it is. */
  if (!strpbrk(tmp, ".e")) strcat(tmp, ".0");
  return snprintf(buf, size, "%s", tmp);
}

static bool is_branch(int op) {
  return op == TILE_MOP_JMP || op == TILE_MOP_BNZ || op == TILE_MOP_BZ;
}

/* One op; with labels, branch targets and loop ends are printed as L<bundle>. */
static int format_op(TileMInst in, bool labels, int32_t pc, char *buf, size_t size) {
  if (in.op >= TILE_MOP_COUNT) return snprintf(buf, size, "<opcode %d>", in.op);
  TileOperand ops[TILE_MAX_OPERANDS];
  int n = tile_mop_operands(in.op, ops);
  size_t used = 0;
  int need = snprintf(buf, size, "%s", tile_mop_info[in.op].mnemonic);
#define ADVANCE(k)                                              \
  do {                                                          \
    need += (k);                                                \
    used = (size_t)need < size ? (size_t)need : size ? size - 1 : 0; \
  } while (0)
  ADVANCE(0);
  for (int k = 0; k < n; k++) {
    int32_t v = tile_minst_field(in, ops[k].field);
    char *p = buf ? buf + used : NULL;
    size_t room = size - used;
    const char *sep = k ? ", " : " ";
    char num[48];
    switch (ops[k].kind) {
    case 'S':
    case 's': ADVANCE(snprintf(p, room, "%ss%d", sep, (int)v)); break;
    case 'V':
    case 'v': ADVANCE(snprintf(p, room, "%sv%d", sep, (int)v)); break;
    case 'm': ADVANCE(snprintf(p, room, "%sm%d", sep, (int)v)); break;
    case 'q': ADVANCE(snprintf(p, room, "%ssem%d", sep, (int)v)); break;
    case 'f':
      tile_f32_format((uint32_t)v, num, sizeof num);
      ADVANCE(snprintf(p, room, "%s%s", sep, num));
      break;
    default:
      if (labels && ops[k].field == 'i' && is_branch(in.op))
        ADVANCE(snprintf(p, room, "%sL%d", sep, (int)v));
      else if (labels && ops[k].field == 'w' && in.op == TILE_MOP_LOOP)
        ADVANCE(snprintf(p, room, "%sL%d", sep, (int)(pc + 1 + v)));
      else
        ADVANCE(snprintf(p, room, "%s%d", sep, (int)v));
    }
  }
#undef ADVANCE
  return need;
}

int tile_minst_format(TileMInst in, char *buf, size_t size) {
  return format_op(in, false, 0, buf, size);
}

/* ---- whole objects ---- */

static void print_bundle(FILE *out, const TileBundle *b, int32_t pc) {
  bool any = false;
  int printed[TILE_SLOT_COUNT] = {0}; /* bitmask of indices printed per kind */
  fputs("  ", out);
  for (int w = 0; w < TILE_BUNDLE_SLOTS; w++) {
    TileMInst in = b->slot[w];
    if (in.op == TILE_MOP_NOP) continue;
    TileSlot kind = tile_slot_of_word(w);
    int index = w - tile_slot_first(kind);
    /* The assembler would put an op without '@' into the lowest word of its kind that
     * no earlier op of this bundle took. */
    int natural = 0;
    while (printed[kind] >> natural & 1) natural++;
    printed[kind] |= 1 << index;
    char text[160];
    format_op(in, true, pc, text, sizeof text);
    fprintf(out, "%s", any ? " ; " : "");
    if (index != natural) fprintf(out, "@%d ", index);
    fputs(text, out);
    any = true;
  }
  fputs(any ? "\n" : "nop\n", out);
}

static void print_code(FILE *out, const TileObjCode *c) {
  if (c->chip == TILE_OBJ_ALL_CHIPS) fprintf(out, ".code all\n");
  else fprintf(out, ".code chip %d\n", (int)c->chip);
  int32_t n = c->nbundles;
  bool *target = calloc((size_t)n + 1, 1);
  if (!target) return;
  for (int32_t pc = 0; pc < n; pc++)
    for (int w = 0; w < TILE_BUNDLE_SLOTS; w++) {
      TileMInst in = c->bundles[pc].slot[w];
      int64_t to = is_branch(in.op)           ? in.imm
                   : in.op == TILE_MOP_LOOP ? (int64_t)pc + 1 + tile_minst_field(in, 'w')
                                              : -1;
      if (to >= 0 && to <= n) target[to] = true;
    }
  for (int32_t pc = 0; pc <= n; pc++) {
    if (target[pc]) fprintf(out, "L%d:\n", (int)pc);
    if (pc < n) print_bundle(out, &c->bundles[pc], pc);
  }
  free(target);
}

enum { VALUES_PER_LINE = 8, BYTES_PER_LINE = 32 };

static uint32_t word_at(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Whether a word reads naturally as an f32: zero, an infinity, the usual quiet NaN,
 * or a normal float of moderate size (2^-40 <= |x| < 2^41). Small integers, -1 and
 * the like are denormals or odd NaNs as floats, so they fail this. */
static bool looks_like_f32(uint32_t w) {
  uint32_t mag = w & 0x7fffffff, exp = mag >> 23;
  return mag == 0 || mag == 0x7f800000 || w == 0x7fc00000 || (exp >= 87 && exp <= 167);
}

/* The type a block prints best as: f32 when every word looks like a float, i32
 * otherwise, raw bytes when the size is not a multiple of 4. Any choice reads back to
 * the same bytes. */
static const char *data_type(const TileObjData *dd) {
  if (dd->size % 4) return "bytes";
  for (int64_t i = 0; i < dd->size; i += 4)
    if (!looks_like_f32(word_at(dd->bytes + i))) return "i32";
  return "f32";
}

static void print_data(FILE *out, const TileObjData *dd) {
  const char *type = data_type(dd);
  fprintf(out, ".data ");
  if (dd->chip != TILE_OBJ_ALL_CHIPS) fprintf(out, "chip %d ", (int)dd->chip);
  fprintf(out, "%s %lld %s", tile_space_name((TileSpace)dd->space), (long long)dd->addr, type);
  if (type[0] == 'b') {
    for (int64_t i = 0; i < dd->size; i++) {
      if (i % BYTES_PER_LINE == 0) fputs(i ? ",\n    " : " ", out);
      fprintf(out, "%02x", dd->bytes[i]);
    }
  } else {
    for (int64_t i = 0; i < dd->size / 4; i++) {
      fputs(i == 0 ? " " : i % VALUES_PER_LINE ? ", " : ",\n    ", out);
      uint32_t w = word_at(dd->bytes + 4 * i);
      if (type[0] == 'i') {
        fprintf(out, "%d", (int)(int32_t)w);
      } else {
        char num[48];
        tile_f32_format(w, num, sizeof num);
        fputs(num, out);
      }
    }
  }
  fputc('\n', out);
}

static const char *const bind_words[] = {"", "in", "out", "inout"};

static void print_symbol(FILE *out, const TileObjSymbol *s) {
  fprintf(out, ".symbol %s %s %s %s [", s->name, s->kind <= 3 ? bind_words[s->kind] : "?",
          tile_space_name((TileSpace)s->space), tile_elem_name((TileElem)s->elem));
  for (int32_t k = 0; k < s->rank; k++) fprintf(out, "%s%lld", k ? ", " : "", (long long)s->dims[k]);
  fprintf(out, "] at %lld%s\n", (long long)s->addr, s->per_chip ? " per_chip" : "");
}

void tile_disasm(FILE *out, const TileObject *obj) {
  fprintf(out, "# tilec object%s%s: %d program%s, %d data block%s, %d symbol%s\n",
          obj->target[0] ? " for target " : "", obj->target, (int)obj->ncode,
          obj->ncode == 1 ? "" : "s", (int)obj->ndata, obj->ndata == 1 ? "" : "s",
          (int)obj->nsyms, obj->nsyms == 1 ? "" : "s");
  if (obj->target[0]) fprintf(out, ".target %s\n", obj->target);
  for (int32_t i = 0; i < obj->nsyms; i++) print_symbol(out, &obj->syms[i]);
  for (int32_t i = 0; i < obj->ndata; i++) print_data(out, &obj->data[i]);
  for (int32_t i = 0; i < obj->ncode; i++) print_code(out, &obj->code[i]);
}
