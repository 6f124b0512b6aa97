/* Bundles: one line of ops separated by ';'. Each op's operands follow its pattern in
 * the ISA table (include/tile/isa.h); the op goes to the slot word `@N` names, or else
 * to the lowest free word of its slot kind. Labels name bundle indices and may be used
 * before they are defined; they are resolved when the code block ends. */
#include <string.h>

#include "asm_internal.h"
#include "objrules.h"

static AsmLabel *find_label(AsmBlock *b, const char *name, size_t len) {
  for (int i = 0; i < b->nlabels; i++)
    if (strlen(b->labels[i].name) == len && memcmp(b->labels[i].name, name, len) == 0)
      return &b->labels[i];
  return NULL;
}

void asm_label(Asm *a, Cursor *c, const char *name, size_t len, const char *at) {
  AsmBlock *b = a->cur;
  if (!b) {
    asm_error(a, c, at, "label '%.*s' is outside a code block (start one with '.code all')",
              (int)len, name);
    return;
  }
  if (len >= sizeof b->labels[0].name) {
    asm_error(a, c, at, "a label has at most 63 characters");
    return;
  }
  AsmLabel *old = find_label(b, name, len);
  if (old) {
    asm_error(a, c, at, "label '%.*s' is already defined on line %d", (int)len, name, old->line);
    return;
  }
  if (!asm_grow((void **)&b->labels, &b->labels_cap, b->nlabels + 1, sizeof *b->labels)) {
    asm_error(a, c, at, "out of memory");
    return;
  }
  AsmLabel *l = &b->labels[b->nlabels++];
  memcpy(l->name, name, len);
  l->name[len] = 0;
  l->index = b->nbundles;
  l->line = c->line;
  l->col = (int)(at - c->s) + 1;
}

void asm_end_block(Asm *a) {
  AsmBlock *b = a->cur;
  if (!b) return;
  for (int i = 0; i < b->nfixups; i++) {
    AsmFixup *f = &b->fixups[i];
    AsmLabel *l = find_label(b, f->name, strlen(f->name));
    TileLoc loc = {a->file, f->line, f->col};
    TileMInst *in = &b->bundles[f->pc].slot[f->word];
    char why[200];
    if (!f->name[0]) {
      if (!tile_objrule_flow(*in, f->pc, b->nbundles, why, sizeof why))
        tile_error(a->d, loc, "%s", why);
    } else if (!l) {
      tile_error(a->d, loc, "label '%s' is not defined in this code block", f->name);
    } else if (f->loop_end) {
      int32_t body = l->index - (f->pc + 1);
      if (body < 1 || body > TILE_WIDE_MAX)
        tile_error(a->d, loc,
                   "label '%s' (bundle %d) must end a loop body of 1 to %d bundles after the "
                   "loop at bundle %d",
                   f->name, (int)l->index, TILE_WIDE_MAX, (int)f->pc);
      else
        tile_minst_set_field(in, 'w', body);
    } else if (l->index >= b->nbundles) {
      tile_error(a->d, loc, "label '%s' is after the last bundle; a branch must target a bundle",
                 f->name);
    } else {
      in->imm = l->index;
    }
  }
  if (b->nbundles == 0)
    tile_error(a->d, (TileLoc){a->file, b->line, b->col}, "this code block has no bundles");
  a->cur = NULL;
}

/* Register-like operands: a prefix and a number below 64 (the 6-bit field). */
typedef struct RegKind {
  char letter;
  const char *prefix, *what;
} RegKind;

static const RegKind reg_kinds[] = {
    {'S', "s", "a scalar register (s0..s63)"},  {'s', "s", "a scalar register (s0..s63)"},
    {'V', "v", "a vector register (v0..v63)"},  {'v', "v", "a vector register (v0..v63)"},
    {'m', "m", "an MXU unit (m0..m63)"},        {'q', "sem", "a semaphore (sem0..sem63)"},
};

static const RegKind *reg_kind(char letter) {
  for (size_t i = 0; i < sizeof reg_kinds / sizeof reg_kinds[0]; i++)
    if (reg_kinds[i].letter == letter) return &reg_kinds[i];
  return NULL;
}

/* The target's count for a register-like kind, and what to call it. */
static int target_limit(const TileTarget *t, char letter, const char **noun) {
  switch (letter) {
  case 'S':
  case 's': *noun = "scalar register"; return t->nsregs;
  case 'V':
  case 'v': *noun = "vector register"; return t->nvregs;
  case 'm': *noun = "MXU unit"; return t->mxu_count;
  default: *noun = "semaphore"; return t->nsems;
  }
}

static bool parse_reg(Asm *a, Cursor *c, const RegKind *k, int opnd, const char *mn,
                      uint8_t *out) {
  cur_skip_ws(c);
  const char *at = c->p;
  size_t plen = strlen(k->prefix);
  const char *p = c->p;
  bool good = (size_t)(c->e - p) > plen && memcmp(p, k->prefix, plen) == 0 &&
              p[plen] >= '0' && p[plen] <= '9';
  int v = 0;
  if (good) {
    p += plen;
    for (; p < c->e && *p >= '0' && *p <= '9'; p++)
      if (v < 1000) v = v * 10 + (*p - '0');
    good = p >= c->e || !is_ident_char(*p);
  }
  if (!good) {
    char tok[40];
    asm_error(a, c, at, "operand %d of '%s' must be %s, not %s", opnd, mn, k->what,
              cur_token(c, at, tok, sizeof tok));
    return false;
  }
  c->p = p;
  if (v > 63) {
    asm_error(a, c, at, "%s%d is out of range: the encoding has %s0..%s63", k->prefix, v,
              k->prefix, k->prefix);
    return false;
  }
  if (a->target) {
    const char *noun;
    int limit = target_limit(a->target, k->letter, &noun);
    if (v >= limit) {
      asm_error(a, c, at, "%s %s%d does not exist on target %s (it has %d)", noun, k->prefix, v,
                a->target->name, limit);
      return false;
    }
  }
  *out = (uint8_t)v;
  return true;
}

static bool is_branch(int op) {
  return op == TILE_MOP_JMP || op == TILE_MOP_BNZ || op == TILE_MOP_BZ;
}

/* An integer operand, or (where the op allows) a label recorded as a fixup. */
static bool parse_int_operand(Asm *a, Cursor *c, int op, TileOperand o, int opnd,
                              AsmFixup *fix, bool *is_fix, int32_t *out) {
  const char *mn = tile_mop_info[op].mnemonic;
  cur_skip_ws(c);
  const char *at = c->p;
  bool label_ok = (o.field == 'i' && is_branch(op)) || (o.field == 'w' && op == TILE_MOP_LOOP);
  const char *name;
  size_t len = label_ok ? cur_ident(c, &name) : 0;
  if (len) {
    if (len >= sizeof fix->name) {
      asm_error(a, c, at, "a label has at most 63 characters");
      return false;
    }
    memcpy(fix->name, name, len);
    fix->name[len] = 0;
    fix->loop_end = o.field == 'w';
    fix->line = c->line;
    fix->col = (int)(at - c->s) + 1;
    *is_fix = true;
    *out = o.field == 'w' ? 1 : 0; /* a valid placeholder until the label resolves */
    return true;
  }
  if (label_ok) {
    /* A numeric target is checked against the code's size when the block ends. */
    fix->name[0] = 0;
    fix->line = c->line;
    fix->col = (int)(at - c->s) + 1;
    *is_fix = true;
  }
  int64_t v;
  bool ok = false;
  if (!cur_int(a, c, &v, &ok)) {
    char tok[40];
    asm_error(a, c, at, "operand %d of '%s' must be %s, not %s", opnd, mn,
              label_ok ? "a label or an integer" : "an integer", cur_token(c, at, tok, sizeof tok));
    return false;
  }
  if (!ok) return false;
  if (o.field == 'w') {
    if (v < 0 || v > TILE_WIDE_MAX) {
      asm_error(a, c, at, "operand %d of '%s' must be in 0..%d, not %lld", opnd, mn,
                TILE_WIDE_MAX, (long long)v);
      return false;
    }
  } else if (o.field == 'c') {
    if (v < 0 || v > 63) {
      asm_error(a, c, at, "operand %d of '%s' must be in 0..63 (a 6-bit field), not %lld", opnd,
                mn, (long long)v);
      return false;
    }
  } else {
    /* Hex literals up to 0xffffffff are bit patterns; decimals must fit int32. */
    const char *digits = at + (*at == '-' || *at == '+');
    bool hex = c->p - digits > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X');
    if (hex && v >= 0 && v <= UINT32_MAX) v = (int32_t)(uint32_t)v;
    if (v < INT32_MIN || v > INT32_MAX) {
      asm_error(a, c, at, "operand %d of '%s' does not fit in 32 bits: %lld", opnd, mn,
                (long long)v);
      return false;
    }
    int64_t lo, hi;
    tile_mop_imm_range(op, &lo, &hi);
    if (v < lo || v > hi) {
      if (hi == INT32_MAX)
        asm_error(a, c, at, "operand %d of '%s' must be at least %lld, not %lld", opnd, mn,
                  (long long)lo, (long long)v);
      else
        asm_error(a, c, at, "operand %d of '%s' must be in %lld..%lld, not %lld", opnd, mn,
                  (long long)lo, (long long)hi, (long long)v);
      return false;
    }
  }
  if (op == TILE_MOP_LOOP && o.field == 'w' && v < 1) {
    asm_error(a, c, at, "a loop body has at least 1 bundle");
    return false;
  }
  *out = (int32_t)v;
  return true;
}

/* Parses one op's operands into in; false after reporting. */
static bool parse_operands(Asm *a, Cursor *c, int op, TileMInst *in, AsmFixup *fix,
                           bool *has_fix) {
  const char *mn = tile_mop_info[op].mnemonic;
  TileOperand ops[TILE_MAX_OPERANDS];
  int n = tile_mop_operands(op, ops);
  *has_fix = false;
  for (int k = 0; k < n; k++) {
    cur_skip_ws(c);
    if (k > 0 && !cur_eat(c, ',')) {
      char tok[40];
      if (c->p >= c->e || *c->p == ';')
        asm_error(a, c, c->p, "'%s' takes %d operand%s (%s), found %d", mn, n, n == 1 ? "" : "s",
                  tile_mop_info[op].operands, k);
      else
        asm_error(a, c, c->p, "expected ',' before operand %d of '%s', found %s", k + 1, mn,
                  cur_token(c, c->p, tok, sizeof tok));
      return false;
    }
    cur_skip_ws(c);
    if (c->p >= c->e || *c->p == ';') {
      asm_error(a, c, c->p, "'%s' takes %d operand%s (%s), found %d", mn, n, n == 1 ? "" : "s",
                tile_mop_info[op].operands, k);
      return false;
    }
    const RegKind *rk = reg_kind(ops[k].kind);
    int32_t v = 0;
    if (rk) {
      uint8_t r;
      if (!parse_reg(a, c, rk, k + 1, mn, &r)) return false;
      v = r;
    } else if (ops[k].kind == 'f') {
      uint32_t bits;
      if (!cur_f32(a, c, &bits)) return false;
      v = (int32_t)bits;
    } else if (!parse_int_operand(a, c, op, ops[k], k + 1, fix, has_fix, &v)) {
      return false;
    }
    tile_minst_set_field(in, ops[k].field, v);
  }
  cur_skip_ws(c);
  if (c->p < c->e && *c->p != ';') {
    char tok[40];
    if (*c->p == ',')
      asm_error(a, c, c->p, "'%s' takes %d operand%s (%s), found more", mn, n, n == 1 ? "" : "s",
                tile_mop_info[op].operands);
    else
      asm_error(a, c, c->p, "expected ';' or the end of the line after '%s', found %s", mn,
                cur_token(c, c->p, tok, sizeof tok));
    return false;
  }
  return true;
}

/* Skips to the next ';' (or the end), after an error in one op. */
static void skip_op(Cursor *c) {
  while (c->p < c->e && *c->p != ';') c->p++;
}

/* Picks the slot word for op; -1 after reporting. */
static int place(Asm *a, Cursor *c, const char *at, int op, int explicit_index,
                 const bool used[TILE_BUNDLE_SLOTS]) {
  const char *mn = tile_mop_info[op].mnemonic;
  TileSlot kind = tile_mop_info[op].slot;
  int first = tile_slot_first(kind), words = tile_slot_words(kind);
  int avail = words;
  if (a->target && a->target->slots[kind] < avail) avail = a->target->slots[kind];
  if (explicit_index >= 0) {
    if (explicit_index >= words) {
      asm_error(a, c, at, "'@%d': a bundle has %d %s slot%s (@0..@%d)", explicit_index, words,
                tile_slot_name(kind), words == 1 ? "" : "s", words - 1);
      return -1;
    }
    if (explicit_index >= avail) {
      asm_error(a, c, at, "'@%d': target %s has %d %s slot%s", explicit_index, a->target->name,
                avail, tile_slot_name(kind), avail == 1 ? "" : "s");
      return -1;
    }
    if (used[first + explicit_index]) {
      asm_error(a, c, at, "%s slot %d is already taken in this bundle", tile_slot_name(kind),
                explicit_index);
      return -1;
    }
    return first + explicit_index;
  }
  for (int k = 0; k < avail; k++)
    if (!used[first + k]) return first + k;
  if (a->target && avail < words)
    asm_error(a, c, at, "no free %s slot for '%s' in this bundle (target %s has %d)",
              tile_slot_name(kind), mn, a->target->name, avail);
  else
    asm_error(a, c, at, "no free %s slot for '%s' in this bundle (a bundle has %d)",
              tile_slot_name(kind), mn, words);
  return -1;
}

/* One op at c->p; fills its slot word in bundle b. */
static void parse_op(Asm *a, Cursor *c, TileBundle *b, bool used[TILE_BUNDLE_SLOTS],
                     int32_t pc) {
  cur_skip_ws(c);
  const char *at = c->p;
  int explicit_index = -1;
  if (cur_eat(c, '@')) {
    int64_t v = 0;
    bool ok = false;
    cur_skip_ws(c);
    const char *num = c->p;
    bool found = cur_int(a, c, &v, &ok);
    if (!found || !ok || v < 0 || v >= TILE_BUNDLE_SLOTS) {
      if (!found) asm_error(a, c, at, "'@' is followed by a slot number, like '@1 add ...'");
      else if (ok) asm_error(a, c, num, "slot number %lld is out of range", (long long)v);
      skip_op(c);
      return;
    }
    explicit_index = (int)v;
  }
  const char *mn;
  cur_skip_ws(c);
  const char *mn_at = c->p;
  size_t len = cur_ident(c, &mn);
  if (!len) {
    char tok[40];
    asm_error(a, c, mn_at, "expected an op, found %s", cur_token(c, mn_at, tok, sizeof tok));
    skip_op(c);
    return;
  }
  int op = tile_mop_lookup(mn, len);
  if (op < 0) {
    asm_error(a, c, mn_at, "unknown op '%.*s'", (int)len, mn);
    skip_op(c);
    return;
  }
  TileMInst in = {.op = (uint8_t)op};
  AsmFixup fix = {0};
  bool has_fix = false;
  if (!parse_operands(a, c, op, &in, &fix, &has_fix)) {
    skip_op(c);
    return;
  }
  if (op == TILE_MOP_NOP) {
    if (explicit_index >= 0) asm_error(a, c, at, "'nop' takes no slot; drop the '@'");
    return;
  }
  int word = place(a, c, explicit_index >= 0 ? at : mn_at, op, explicit_index, used);
  if (word < 0) return;
  char why[300];
  /* Field widths and immediates were checked operand by operand; this catches what
   * depends on the whole op and, with a target, the machine's row groups. */
  if (!tile_minst_check(in, word, why, sizeof why) ||
      (a->target && !tile_minst_check_target(in, word, a->target, why, sizeof why))) {
    asm_error(a, c, mn_at, "%s", why);
    return;
  }
  used[word] = true;
  b->slot[word] = in;
  if (has_fix) {
    AsmBlock *blk = a->cur;
    if (!asm_grow((void **)&blk->fixups, &blk->fixups_cap, blk->nfixups + 1, sizeof *blk->fixups)) {
      asm_error(a, c, mn_at, "out of memory");
      return;
    }
    fix.pc = pc;
    fix.word = word;
    blk->fixups[blk->nfixups++] = fix;
  }
}

void asm_bundle(Asm *a, Cursor *c) {
  AsmBlock *b = a->cur;
  if (!b) {
    asm_error(a, c, c->p, "ops must follow '.code all' or '.code chip N'");
    return;
  }
  if (!asm_grow((void **)&b->bundles, &b->cap, b->nbundles + 1, sizeof *b->bundles)) {
    asm_error(a, c, c->p, "out of memory");
    return;
  }
  TileBundle *bundle = &b->bundles[b->nbundles];
  memset(bundle, 0, sizeof *bundle);
  bool used[TILE_BUNDLE_SLOTS] = {false};
  for (;;) {
    parse_op(a, c, bundle, used, b->nbundles);
    if (cur_at_end(c)) break;
    if (!cur_eat(c, ';')) { /* parse_op stops only at ';' or the end */
      c->p = c->e;
      break;
    }
    if (cur_at_end(c)) {
      asm_error(a, c, c->p, "expected an op after ';'");
      break;
    }
  }
  b->nbundles++;
}
