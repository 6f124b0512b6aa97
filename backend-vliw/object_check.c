/* Checks of a decoded object: what makes an object runnable beyond its bytes being
 * intact. tile_object_read applies tile_object_check after decoding, the writer refuses
 * what it refuses, and whoever knows the machine (the emulator, the assembler) adds
 * tile_object_check_target. The per-item rules live here once (objrules.h) so the
 * assembler can report each at its source line. */
#include <stdio.h>
#include <string.h>

#include "objrules.h"
#include "tile/object.h"

static bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '.' || c == '-';
}

bool tile_objrule_name(const char *name, bool symbol, char *why, size_t n) {
  size_t len = strnlen(name, 64);
  if (len >= 64) return tile_vliw_say(why, n, "a name has at most 63 characters");
  if (symbol && len == 0) return tile_vliw_say(why, n, "a symbol needs a name");
  if (symbol && !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') ||
                  name[0] == '_'))
    return tile_vliw_say(why, n, "symbol name '%s' must start with a letter or '_'", name);
  for (size_t i = 0; i < len; i++)
    if (!name_char(name[i]))
      return tile_vliw_say(why, n,
                           "%s name has a character other than letters, digits, '_', '.', '-'",
                           symbol ? "a symbol" : "the target");
  /* As in target files: such a name would be read as a file path when it is looked up. */
  if (!symbol && len >= 7 && strcmp(name + len - 7, ".target") == 0)
    return tile_vliw_say(
        why, n, "the target name '%s' ends in '.target', which reads as a file path", name);
  return true;
}

bool tile_objrule_chip(int32_t chip, char *why, size_t n) {
  if (chip < TILE_OBJ_ALL_CHIPS)
    return tile_vliw_say(why, n, "chip %d is neither a chip number nor 'all chips' (-1)",
                         (int)chip);
  return true;
}

bool tile_objrule_data(const TileObjData *dd, char *why, size_t n) {
  if (!tile_objrule_chip(dd->chip, why, n)) return false;
  if (dd->space >= TILE_SPACE_COUNT)
    return tile_vliw_say(why, n, "unknown memory space %d", dd->space);
  if (dd->addr < 0) return tile_vliw_say(why, n, "negative address %lld", (long long)dd->addr);
  if (dd->size < 1) return tile_vliw_say(why, n, "an initial-data block needs at least one byte");
  if (dd->size > INT64_MAX - dd->addr)
    return tile_vliw_say(why, n, "address %lld plus size %lld overflows", (long long)dd->addr,
               (long long)dd->size);
  if (!dd->bytes) return tile_vliw_say(why, n, "an initial-data block has no bytes");
  return true;
}

int64_t tile_objrule_symbol_bytes(const TileObjSymbol *s) {
  int64_t numel = 1;
  for (int32_t k = 0; k < s->rank && k < TILE_MAX_RANK; k++) {
    if (s->dims[k] < 0 || (s->dims[k] && numel > INT64_MAX / 64 / s->dims[k])) return -1;
    numel *= s->dims[k];
  }
  int bits = tile_elem_bits((TileElem)s->elem);
  return (numel * bits + 7) / 8; /* numel * 64 fits int64_t: no overflow */
}

bool tile_objrule_symbol(const TileObjSymbol *s, char *why, size_t n) {
  if (!tile_objrule_name(s->name, true, why, n)) return false;
  if (s->kind < TILE_BIND_IN || s->kind > TILE_BIND_INOUT)
    return tile_vliw_say(why, n, "symbol '%s' has binding kind %d (in 1, out 2, inout 3)", s->name,
               s->kind);
  if (s->space >= TILE_SPACE_COUNT)
    return tile_vliw_say(why, n, "symbol '%s' is in unknown memory space %d", s->name, s->space);
  if (s->elem == TILE_ELEM_NONE || s->elem >= TILE_ELEM_COUNT)
    return tile_vliw_say(why, n, "symbol '%s' has unknown element type %d", s->name, s->elem);
  if (s->rank < 0 || s->rank > TILE_MAX_RANK)
    return tile_vliw_say(why, n, "symbol '%s' has rank %d (0..%d)", s->name, (int)s->rank,
                         TILE_MAX_RANK);
  for (int32_t k = 0; k < s->rank; k++)
    if (s->dims[k] < 1)
      return tile_vliw_say(why, n, "symbol '%s' has dimension %d of size %lld; sizes start at 1",
                           s->name, (int)k, (long long)s->dims[k]);
  if (s->addr < 0)
    return tile_vliw_say(why, n, "symbol '%s' has negative address %lld", s->name,
                         (long long)s->addr);
  int64_t bytes = tile_objrule_symbol_bytes(s);
  if (bytes < 0 || bytes > INT64_MAX - s->addr)
    return tile_vliw_say(why, n, "symbol '%s' is too large to address", s->name);
  return true;
}

bool tile_objrule_flow(TileMInst in, int32_t pc, int32_t nbundles, char *why, size_t n) {
  switch (in.op) {
  case TILE_MOP_JMP:
  case TILE_MOP_BNZ:
  case TILE_MOP_BZ:
    if (in.imm >= nbundles)
      return tile_vliw_say(why, n, "'%s' targets bundle %d, but the code has %d bundles",
                 tile_mop_info[in.op].mnemonic, (int)in.imm, (int)nbundles);
    return true;
  case TILE_MOP_LOOP:
    if ((int64_t)pc + tile_minst_field(in, 'w') >= nbundles)
      return tile_vliw_say(
          why, n, "'loop' at bundle %d runs %d bundles past the end of the code (%d bundles)",
          (int)pc, (int)tile_minst_field(in, 'w'), (int)nbundles);
    return true;
  default: return true;
  }
}

bool tile_objrule_fits(TileSpace space, int64_t addr, int64_t bytes, const TileTarget *t,
                       char *why, size_t n) {
  int64_t size = space == TILE_SPACE_HBM ? t->hbm_bytes
                 : space == TILE_SPACE_VMEM ? t->vmem_bytes
                                            : t->smem_bytes;
  if (addr > size || bytes > size - addr)
    return tile_vliw_say(why, n,
                         "bytes %lld..%lld are outside %s, which has %lld bytes on target %s",
                         (long long)addr, (long long)(addr + bytes - 1), tile_space_name(space),
                         (long long)size, t->name);
  return true;
}

/* ---- whole objects ---- */

static const char *chip_words(int32_t chip, char *buf, size_t n) {
  if (chip == TILE_OBJ_ALL_CHIPS) return "all chips";
  snprintf(buf, n, "chip %d", (int)chip);
  return buf;
}

static bool check_code(const TileObjCode *c, int32_t index, const TileObject *obj,
                       TileDiag *d) {
  char why[300], who[32];
  const char *chip = chip_words(c->chip, who, sizeof who);
  if (!tile_objrule_chip(c->chip, why, sizeof why))
    return tile_error(d, (TileLoc){0}, "code %d: %s", (int)index, why);
  for (int32_t k = 0; k < index; k++)
    if (obj->code[k].chip == c->chip)
      return tile_error(d, (TileLoc){0}, "there are two programs for %s", chip);
  if (c->nbundles < 1 || !c->bundles)
    return tile_error(d, (TileLoc){0}, "the code for %s has no bundles", chip);
  for (int32_t pc = 0; pc < c->nbundles; pc++)
    for (int w = 0; w < TILE_BUNDLE_SLOTS; w++) {
      TileMInst in = c->bundles[pc].slot[w];
      if (in.op == TILE_MOP_NOP && !(in.d | in.a | in.b | in.c) && !in.imm)
        continue; /* an empty word, most of the code: nothing to check */
      if (!tile_minst_check(in, w, why, sizeof why) ||
          !tile_objrule_flow(in, pc, c->nbundles, why, sizeof why))
        return tile_error(d, (TileLoc){0}, "code for %s, bundle %d, word %d: %s", chip, (int)pc,
                          w, why);
    }
  return true;
}

bool tile_object_check(const TileObject *obj, TileDiag *d) {
  char why[300];
  bool ok = true;
  if (memchr(obj->target, 0, sizeof obj->target) == NULL ||
      !tile_objrule_name(obj->target, false, why, sizeof why))
    ok = tile_error(d, (TileLoc){0}, "bad target name: %s",
                    memchr(obj->target, 0, sizeof obj->target) ? why : "not NUL-terminated");
  if (obj->ncode < 1 || !obj->code)
    return tile_error(d, (TileLoc){0}, "the object holds no code");
  for (int32_t i = 0; i < obj->ncode && !tile_diag_full(d); i++)
    ok = check_code(&obj->code[i], i, obj, d) && ok;
  if (obj->ndata < 0 || (obj->ndata > 0 && !obj->data))
    return tile_error(d, (TileLoc){0}, "the object's data list is missing");
  for (int32_t i = 0; i < obj->ndata; i++)
    if (!tile_objrule_data(&obj->data[i], why, sizeof why))
      ok = tile_error(d, (TileLoc){0}, "initial data %d: %s", (int)i, why);
  if (obj->nsyms < 0 || (obj->nsyms > 0 && !obj->syms))
    return tile_error(d, (TileLoc){0}, "the object's symbol list is missing");
  for (int32_t i = 0; i < obj->nsyms; i++) {
    const TileObjSymbol *s = &obj->syms[i];
    if (memchr(s->name, 0, sizeof s->name) == NULL) {
      ok = tile_error(d, (TileLoc){0}, "symbol %d: its name is not NUL-terminated", (int)i);
      continue;
    }
    if (!tile_objrule_symbol(s, why, sizeof why)) {
      ok = tile_error(d, (TileLoc){0}, "symbol %d: %s", (int)i, why);
      continue;
    }
    for (int32_t k = 0; k < i; k++)
      if (strcmp(obj->syms[k].name, s->name) == 0) {
        ok = tile_error(d, (TileLoc){0}, "symbol '%s' is defined twice", s->name);
        break;
      }
  }
  return ok;
}

bool tile_object_check_target(const TileObject *obj, const TileTarget *t, TileDiag *d) {
  char why[300], who[32];
  bool ok = true;
  int64_t chips = tile_target_chips(t);
  for (int32_t i = 0; i < obj->ncode && !tile_diag_full(d); i++) {
    const TileObjCode *c = &obj->code[i];
    const char *chip = chip_words(c->chip, who, sizeof who);
    if (c->chip >= chips) {
      ok = tile_error(d, (TileLoc){0}, "there is code for chip %d, but target %s has %lld chips",
                      (int)c->chip, t->name, (long long)chips);
      continue;
    }
    bool code_ok = true;
    for (int32_t pc = 0; pc < c->nbundles && code_ok; pc++)
      for (int w = 0; w < TILE_BUNDLE_SLOTS && code_ok; w++)
        if (c->bundles[pc].slot[w].op != TILE_MOP_NOP &&
            !tile_minst_check_target(c->bundles[pc].slot[w], w, t, why, sizeof why))
          code_ok = ok = tile_error(d, (TileLoc){0}, "code for %s, bundle %d, word %d: %s", chip,
                                    (int)pc, w, why);
  }
  for (int32_t i = 0; i < obj->ndata; i++) {
    const TileObjData *dd = &obj->data[i];
    if (dd->chip >= chips)
      ok = tile_error(d, (TileLoc){0},
                      "initial data %d is for chip %d, but target %s has %lld chips", (int)i,
                      (int)dd->chip, t->name, (long long)chips);
    else if (!tile_objrule_fits((TileSpace)dd->space, dd->addr, dd->size, t, why, sizeof why))
      ok = tile_error(d, (TileLoc){0}, "initial data %d: %s", (int)i, why);
  }
  for (int32_t i = 0; i < obj->nsyms; i++) {
    const TileObjSymbol *s = &obj->syms[i];
    if (!tile_objrule_fits((TileSpace)s->space, s->addr, tile_objrule_symbol_bytes(s), t, why,
                           sizeof why))
      ok = tile_error(d, (TileLoc){0}, "symbol '%s': %s", s->name, why);
  }
  return ok;
}
