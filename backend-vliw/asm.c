/* The assembler's driver: splits the source into lines, reads labels and directives
 * (`.target`, `.code`, `.symbol`, `.data`) and hands bundles to asm_ops.c. The syntax is
 * specified in docs/isa.md ("Assembly").
 *
 * Errors are reported where they are found and parsing goes on with the next line, so
 * one run shows several problems. Nothing of a failed run is returned: the object is
 * built only when the whole file is clean, and is then checked once more by
 * tile_object_check, the same rules the object reader applies. */
#include <stdlib.h>
#include <string.h>

#include "asm_internal.h"
#include "objrules.h"

/* ---- .target ---- */

static void dir_target(Asm *a, Cursor *c, const char *at) {
  const char *name;
  size_t len = cur_name(c, &name);
  if (a->target_line) {
    asm_error(a, c, at, "'.target' is given twice (first on line %d)", a->target_line);
    return;
  }
  if (a->seen_content) {
    asm_error(a, c, at, "'.target' must come before code, data and symbols");
    return;
  }
  if (!len || len >= sizeof a->target_name) {
    asm_error(a, c, name, "'.target' takes a target name, like '.target tiny'");
    return;
  }
  char buf[64];
  memcpy(buf, name, len);
  buf[len] = 0;
  a->target_line = c->line;
  if (a->target_given) {
    if (strcmp(buf, a->target->name) != 0)
      asm_error(a, c, name, "this file is for target %s, but %s was asked for", buf,
                a->target->name);
    return;
  }
  memcpy(a->target_name, buf, len + 1);
  /* Check against the target when it is here to be loaded; an object may well be
   * assembled for a machine this installation has no description of. */
  TileDiag quiet;
  tile_diag_init(&quiet, NULL, a->file, NULL, 0);
  if (tile_target_load(buf, &a->loaded, &quiet)) {
    a->target = &a->loaded;
  } else if (strncmp(quiet.last, "unknown target", 14) != 0) {
    asm_error(a, c, name, "target %s cannot be loaded: %s", buf, quiet.last);
  }
}

/* ---- .code ---- */

/* "chip N"; false after reporting. */
static bool parse_chip(Asm *a, Cursor *c, int32_t *chip) {
  cur_skip_ws(c);
  const char *at = c->p;
  int64_t v;
  bool ok = false;
  if (!cur_int(a, c, &v, &ok)) {
    asm_error(a, c, at, "'chip' is followed by a chip number");
    return false;
  }
  if (!ok) return false;
  if (v < 0 || v > INT32_MAX) {
    asm_error(a, c, at, "chip numbers start at 0 and fit 31 bits, not %lld", (long long)v);
    return false;
  }
  *chip = (int32_t)v;
  return true;
}

/* Reads `all` or `chip N` (the chip word may be optional, for .data). */
static bool parse_chip_choice(Asm *a, Cursor *c, int32_t *chip, bool *given) {
  cur_skip_ws(c);
  const char *save = c->p, *w;
  size_t len = cur_ident(c, &w);
  *given = true;
  if (len == 3 && memcmp(w, "all", 3) == 0) {
    *chip = TILE_OBJ_ALL_CHIPS;
    return true;
  }
  if (len == 4 && memcmp(w, "chip", 4) == 0) return parse_chip(a, c, chip);
  c->p = save;
  *given = false;
  *chip = TILE_OBJ_ALL_CHIPS;
  return true;
}

static void dir_code(Asm *a, Cursor *c, const char *at) {
  asm_end_block(a);
  a->seen_content = true;
  int32_t chip;
  bool given;
  if (!parse_chip_choice(a, c, &chip, &given)) return;
  if (!given) {
    char tok[40];
    asm_error(a, c, c->p, "'.code' is followed by 'all' or 'chip N', not %s",
              cur_token(c, c->p, tok, sizeof tok));
    return;
  }
  if (!cur_at_end(c)) {
    char tok[40];
    asm_error(a, c, c->p, "unexpected %s after '.code'", cur_token(c, c->p, tok, sizeof tok));
    return;
  }
  for (int i = 0; i < a->nblocks; i++)
    if (a->blocks[i].chip == chip) {
      if (chip == TILE_OBJ_ALL_CHIPS)
        asm_error(a, c, at, "there is already code for all chips (line %d)", a->blocks[i].line);
      else
        asm_error(a, c, at, "there is already code for chip %d (line %d)", (int)chip,
                  a->blocks[i].line);
      return;
    }
  if (!asm_grow((void **)&a->blocks, &a->blocks_cap, a->nblocks + 1, sizeof *a->blocks)) {
    asm_error(a, c, at, "out of memory");
    return;
  }
  AsmBlock *b = &a->blocks[a->nblocks++];
  memset(b, 0, sizeof *b);
  b->chip = chip;
  b->line = c->line;
  b->col = (int)(at - c->s) + 1;
  a->cur = b;
}

/* ---- .symbol NAME in|out|inout SPACE ELEM [d0, d1] at ADDR [per_chip] ---- */

static int lookup_word(const char *w, size_t len, const char *const *words, int n) {
  for (int i = 0; i < n; i++)
    if (strlen(words[i]) == len && memcmp(words[i], w, len) == 0) return i;
  return -1;
}

static const char *const space_words[] = {
#define X(e, n) n,
    TILE_SPACES(X)
#undef X
};

static bool parse_space(Asm *a, Cursor *c, uint8_t *space) {
  const char *w;
  size_t len = cur_ident(c, &w);
  int s = lookup_word(w, len, space_words, TILE_SPACE_COUNT);
  if (s < 0) {
    char tok[40];
    asm_error(a, c, w, "expected a memory space (hbm, vmem or smem), found %s",
              cur_token(c, w, tok, sizeof tok));
    return false;
  }
  *space = (uint8_t)s;
  return true;
}

static bool parse_addr(Asm *a, Cursor *c, int64_t *addr) {
  cur_skip_ws(c);
  const char *at = c->p;
  bool ok = false;
  if (!cur_int(a, c, addr, &ok)) {
    char tok[40];
    asm_error(a, c, at, "expected an address, found %s", cur_token(c, at, tok, sizeof tok));
    return false;
  }
  if (ok && *addr < 0) {
    asm_error(a, c, at, "addresses are not negative");
    return false;
  }
  return ok;
}

static void dir_symbol(Asm *a, Cursor *c, const char *at) {
  a->seen_content = true;
  TileObjSymbol s;
  memset(&s, 0, sizeof s);
  const char *name, *w;
  size_t len = cur_name(c, &name);
  if (!len || len >= sizeof s.name) {
    asm_error(a, c, name, "'.symbol' takes a name of 1 to 63 characters first");
    return;
  }
  memcpy(s.name, name, len);
  char why[300];
  if (!tile_objrule_name(s.name, true, why, sizeof why)) {
    asm_error(a, c, name, "%s", why);
    return;
  }
  for (int i = 0; i < a->nsyms; i++)
    if (strcmp(a->syms[i].name, s.name) == 0) {
      asm_error(a, c, name, "symbol '%s' is already defined on line %d", s.name, a->sym_line[i]);
      return;
    }
  static const char *const kinds[] = {"in", "out", "inout"};
  size_t klen = cur_ident(c, &w);
  int kind = lookup_word(w, klen, kinds, 3);
  if (kind < 0) {
    char tok[40];
    asm_error(a, c, w, "expected 'in', 'out' or 'inout', found %s", cur_token(c, w, tok, sizeof tok));
    return;
  }
  s.kind = (uint8_t)(TILE_BIND_IN + kind);
  if (!parse_space(a, c, &s.space)) return;
  cur_skip_ws(c);
  const char *elem_at = c->p;
  while (c->p < c->e && ((*c->p >= 'a' && *c->p <= 'z') || (*c->p >= 'A' && *c->p <= 'Z') ||
                         (*c->p >= '0' && *c->p <= '9')))
    c->p++;
  TileElem elem = tile_elem_lookup(elem_at, (size_t)(c->p - elem_at));
  if (elem == TILE_ELEM_NONE) {
    char tok[40];
    asm_error(a, c, elem_at, "expected an element type (f32, bf16, i32, ...), found %s",
              cur_token(c, elem_at, tok, sizeof tok));
    return;
  }
  s.elem = (uint8_t)elem;
  cur_skip_ws(c);
  if (!cur_eat(c, '[')) {
    asm_error(a, c, c->p, "expected the shape, like [8, 128] (or [] for a scalar)");
    return;
  }
  if (!cur_eat(c, ']')) {
    for (;;) {
      cur_skip_ws(c);
      const char *dat = c->p;
      int64_t v;
      bool ok = false;
      if (!cur_int(a, c, &v, &ok)) {
        char tok[40];
        asm_error(a, c, dat, "expected a dimension size, found %s", cur_token(c, dat, tok, sizeof tok));
        return;
      }
      if (!ok) return;
      if (s.rank == TILE_MAX_RANK) {
        asm_error(a, c, dat, "a symbol has at most %d dimensions", TILE_MAX_RANK);
        return;
      }
      if (v < 1) {
        asm_error(a, c, dat, "dimension sizes start at 1, not %lld", (long long)v);
        return;
      }
      s.dims[s.rank++] = v;
      if (cur_eat(c, ']')) break;
      if (!cur_eat(c, ',')) {
        asm_error(a, c, c->p, "expected ',' or ']' in the shape");
        return;
      }
    }
  }
  size_t atlen = cur_ident(c, &w);
  if (atlen != 2 || memcmp(w, "at", 2) != 0) {
    asm_error(a, c, w, "expected 'at ADDRESS' after the shape");
    return;
  }
  cur_skip_ws(c);
  const char *addr_at = c->p;
  if (!parse_addr(a, c, &s.addr)) return;
  size_t flen = cur_name(c, &w);
  if (flen == 8 && memcmp(w, "per_chip", 8) == 0) s.per_chip = true;
  else if (flen) {
    asm_error(a, c, w, "unexpected '%.*s'; the only flag is 'per_chip'", (int)flen, w);
    return;
  }
  if (!cur_at_end(c)) {
    char tok[40];
    asm_error(a, c, c->p, "unexpected %s after the symbol", cur_token(c, c->p, tok, sizeof tok));
    return;
  }
  if (!tile_objrule_symbol(&s, why, sizeof why) ||
      (a->target && !tile_objrule_fits((TileSpace)s.space, s.addr, tile_objrule_symbol_bytes(&s),
                                       a->target, why, sizeof why))) {
    asm_error(a, c, addr_at, "%s", why);
    return;
  }
  if (!asm_grow((void **)&a->syms, &a->syms_cap, a->nsyms + 1, sizeof *a->syms)) {
    asm_error(a, c, at, "out of memory");
    return;
  }
  int cap = a->syms_cap;
  int *lines = realloc(a->sym_line, (size_t)cap * sizeof *lines);
  if (!lines) {
    asm_error(a, c, at, "out of memory");
    return;
  }
  a->sym_line = lines;
  a->sym_line[a->nsyms] = c->line;
  a->syms[a->nsyms++] = s;
}

/* ---- .data [chip N] SPACE ADDR TYPE v, v, ... ---- */

typedef enum DataType { DT_F32, DT_I32, DT_BF16, DT_I8, DT_BYTES, DT_COUNT } DataType;
static const char *const data_types[] = {"f32", "i32", "bf16", "i8", "bytes"};

static bool append_bytes(Asm *a, Cursor *c, const char *at, const void *src, size_t n) {
  TileObjData *dd = &a->data[a->ndata - 1];
  if (dd->size + (int64_t)n > a->data_cap_bytes) {
    int64_t cap = a->data_cap_bytes ? a->data_cap_bytes : 64;
    while (cap < dd->size + (int64_t)n) cap *= 2;
    uint8_t *p = realloc(dd->bytes, (size_t)cap);
    if (!p) {
      asm_error(a, c, at, "out of memory");
      return false;
    }
    dd->bytes = p;
    a->data_cap_bytes = cap;
  }
  memcpy(dd->bytes + dd->size, src, n);
  dd->size += (int64_t)n;
  return true;
}

static void put_le(uint8_t *out, uint64_t v, int n) {
  for (int i = 0; i < n; i++) out[i] = (uint8_t)(v >> (8 * i));
}

static int hexval(char ch) {
  return ch >= '0' && ch <= '9' ? ch - '0'
         : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
         : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                  : -1;
}

/* One value of the open data block; false after reporting. */
static bool data_value(Asm *a, Cursor *c) {
  cur_skip_ws(c);
  const char *at = c->p;
  uint8_t buf[8];
  switch ((DataType)a->data_type) {
  case DT_F32: {
    uint32_t bits;
    if (!cur_f32(a, c, &bits)) return false;
    put_le(buf, bits, 4);
    return append_bytes(a, c, at, buf, 4);
  }
  case DT_BF16: {
    uint16_t bits;
    if (!cur_bf16(a, c, &bits)) return false;
    put_le(buf, bits, 2);
    return append_bytes(a, c, at, buf, 2);
  }
  case DT_I32:
  case DT_I8: {
    int64_t v;
    bool ok = false;
    if (!cur_int(a, c, &v, &ok)) {
      char tok[40];
      asm_error(a, c, at, "expected an integer, found %s", cur_token(c, at, tok, sizeof tok));
      return false;
    }
    if (!ok) return false;
    int bytes = a->data_type == DT_I32 ? 4 : 1;
    int64_t lo = bytes == 4 ? INT32_MIN : -128, hi = bytes == 4 ? UINT32_MAX : 255;
    if (v < lo || v > hi) {
      asm_error(a, c, at, "%lld does not fit in %s (%lld..%lld)", (long long)v,
                data_types[a->data_type], (long long)lo, (long long)hi);
      return false;
    }
    put_le(buf, (uint64_t)v, bytes);
    return append_bytes(a, c, at, buf, (size_t)bytes);
  }
  case DT_BYTES: {
    const char *p = c->p;
    while (p < c->e && hexval(*p) >= 0) p++;
    if (p == at || (p - at) % 2 || (p < c->e && is_ident_char(*p))) {
      asm_error(a, c, at, "'bytes' values are runs of hex digit pairs, like 00ff10");
      return false;
    }
    for (const char *q = at; q < p; q += 2) {
      uint8_t byte = (uint8_t)(hexval(q[0]) << 4 | hexval(q[1]));
      if (!append_bytes(a, c, at, &byte, 1)) return false;
    }
    c->p = p;
    return true;
  }
  default: return false;
  }
}

/* Values up to the end of the line; a trailing ',' continues on the next line. */
static void data_values(Asm *a, Cursor *c) {
  a->data_open = false;
  for (;;) {
    if (cur_at_end(c)) {
      asm_error(a, c, c->p, "expected a value");
      return;
    }
    if (!data_value(a, c)) return;
    if (cur_at_end(c)) return;
    if (!cur_eat(c, ',')) {
      char tok[40];
      asm_error(a, c, c->p, "expected ',' between values, found %s",
                cur_token(c, c->p, tok, sizeof tok));
      return;
    }
    if (cur_at_end(c)) {
      a->data_open = true;
      return;
    }
  }
}

static void dir_data(Asm *a, Cursor *c, const char *at) {
  a->seen_content = true;
  TileObjData dd;
  memset(&dd, 0, sizeof dd);
  bool given;
  if (!parse_chip_choice(a, c, &dd.chip, &given)) return;
  if (!parse_space(a, c, &dd.space)) return;
  if (!parse_addr(a, c, &dd.addr)) return;
  const char *w;
  size_t len = cur_ident(c, &w);
  int type = lookup_word(w, len, data_types, DT_COUNT);
  if (type < 0) {
    char tok[40];
    asm_error(a, c, w, "expected a value type (f32, i32, bf16, i8 or bytes), found %s",
              cur_token(c, w, tok, sizeof tok));
    return;
  }
  if (!asm_grow((void **)&a->data, &a->data_cap, a->ndata + 1, sizeof *a->data)) {
    asm_error(a, c, at, "out of memory");
    return;
  }
  int *lines = realloc(a->data_line, (size_t)a->data_cap * sizeof *lines);
  if (!lines) {
    asm_error(a, c, at, "out of memory");
    return;
  }
  a->data_line = lines;
  a->data_line[a->ndata] = c->line;
  a->data[a->ndata++] = dd;
  a->data_type = type;
  a->data_cap_bytes = 0;
  a->data_pending = true;
  data_values(a, c);
}

/* Checks a finished data block where it began. */
static void end_data(Asm *a) {
  if (!a->data_pending) return;
  a->data_pending = false;
  TileObjData *dd = &a->data[a->ndata - 1];
  char why[300];
  TileLoc loc = {a->file, a->data_line[a->ndata - 1], 1};
  if (dd->size > 0 &&
      (!tile_objrule_data(dd, why, sizeof why) ||
       (a->target && !tile_objrule_fits((TileSpace)dd->space, dd->addr, dd->size, a->target, why,
                                        sizeof why))))
    tile_error(a->d, loc, "%s", why);
}

/* ---- lines ---- */

static const struct {
  const char *name;
  void (*parse)(Asm *, Cursor *, const char *);
} directives[] = {
    {"target", dir_target},
    {"code", dir_code},
    {"symbol", dir_symbol},
    {"data", dir_data},
};

static void parse_line(Asm *a, Cursor *c) {
  if (cur_at_end(c)) return;
  if (a->data_open && c->p + 1 < c->e && c->p[0] == '.' && is_ident_start(c->p[1])) {
    tile_error(a->d, (TileLoc){a->file, a->data_line[a->ndata - 1], 1},
               "the values of this '.data' end with ',' but no more follow");
    a->data_open = false;
    end_data(a);
  }
  if (a->data_open) {
    data_values(a, c);
    if (!a->data_open) end_data(a);
    return;
  }
  /* Labels: NAME ':' (several may name the same bundle). */
  for (;;) {
    const char *save = c->p, *name;
    size_t len = cur_ident(c, &name);
    if (len && cur_eat(c, ':')) {
      asm_label(a, c, name, len, name);
      continue;
    }
    c->p = save;
    break;
  }
  if (cur_at_end(c)) return;
  if (*c->p == '.') {
    const char *at = c->p++, *w;
    size_t len = cur_ident(c, &w);
    if (w != at + 1) len = 0;
    for (size_t i = 0; i < sizeof directives / sizeof directives[0]; i++)
      if (len && strlen(directives[i].name) == len && memcmp(directives[i].name, w, len) == 0) {
        directives[i].parse(a, c, at);
        if (strcmp(directives[i].name, "data") == 0 && !a->data_open) end_data(a);
        return;
      }
    asm_error(a, c, at, "unknown directive '.%.*s' (there are .target, .code, .symbol, .data)",
              (int)len, w);
    return;
  }
  asm_bundle(a, c);
}

static void free_asm(Asm *a) {
  for (int i = 0; i < a->nblocks; i++) {
    free(a->blocks[i].bundles);
    free(a->blocks[i].labels);
    free(a->blocks[i].fixups);
  }
  free(a->blocks);
  for (int i = 0; i < a->ndata; i++) free(a->data[i].bytes);
  free(a->data);
  free(a->data_line);
  free(a->syms);
  free(a->sym_line);
}

bool tile_asm(const char *src, size_t len, const char *filename, const TileTarget *target,
              TileObject *obj, TileDiag *d) {
  memset(obj, 0, sizeof *obj);
  const char *saved_src = d->src;
  size_t saved_len = d->src_len;
  d->src = src;
  d->src_len = len;
  int errors_before = d->nerrors;
  Asm a;
  memset(&a, 0, sizeof a);
  a.file = filename ? filename : "<asm>";
  a.d = d;
  a.target = target;
  a.target_given = target != NULL;
  if (target) snprintf(a.target_name, sizeof a.target_name, "%s", target->name);

  const char *end = src + len;
  int line = 1;
  for (const char *s = src; s < end && !tile_diag_full(d); line++) {
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    const char *e = nl ? nl : end;
    const char *hash = memchr(s, '#', (size_t)(e - s));
    Cursor c = {s, s, hash ? hash : e, line};
    const char *bad = memchr(s, 0, (size_t)(c.e - s));
    if (bad) asm_error(&a, &c, bad, "unexpected NUL byte (assembly is text)");
    else parse_line(&a, &c);
    s = nl ? nl + 1 : end;
  }
  if (a.data_open) {
    tile_error(d, (TileLoc){a.file, a.data_line[a.ndata - 1], 1},
               "the values of this '.data' end with ',' but no more follow");
    a.data_open = false;
  }
  end_data(&a);
  asm_end_block(&a);
  if (a.nblocks == 0 && d->nerrors == errors_before)
    tile_error(d, (TileLoc){a.file, 0, 0},
               "there is no code: start it with '.code all' (or '.code chip N')");

  bool ok = d->nerrors == errors_before;
  if (ok) {
    snprintf(obj->target, sizeof obj->target, "%s", a.target_name);
    obj->ncode = a.nblocks;
    obj->code = calloc((size_t)a.nblocks, sizeof *obj->code);
    obj->ndata = a.ndata;
    obj->data = a.data;
    obj->nsyms = a.nsyms;
    obj->syms = a.syms;
    a.data = NULL;
    a.ndata = 0;
    a.syms = NULL;
    if (!obj->code) {
      ok = tile_error(d, (TileLoc){a.file, 0, 0}, "out of memory");
    } else {
      for (int i = 0; i < a.nblocks; i++) {
        obj->code[i].chip = a.blocks[i].chip;
        obj->code[i].nbundles = a.blocks[i].nbundles;
        obj->code[i].bundles = a.blocks[i].bundles;
        a.blocks[i].bundles = NULL;
      }
      ok = tile_object_check(obj, d);
    }
    if (!ok) tile_object_free(obj);
  }
  free_asm(&a);
  d->src = saved_src;
  d->src_len = saved_len;
  return ok;
}
