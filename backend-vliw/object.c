/* The object container: serializing a TileObject and reading one back with every
 * check a hostile file needs (docs/isa.md, "Object layout", draws the bytes).
 *
 *   header   "TILEOBJ\0", u32 version, u32 sections (4), u64 total length,
 *            u64 FNV-1a 64 of every byte after the 32-byte header
 *   sections target, code, data, symbols, in that order; each is
 *            u32 kind, u32 count, u64 size, then `size` bytes of entries
 *
 * Everything is little-endian. The layout is canonical: reserved bytes and the bytes
 * after a name's NUL must be zero and nothing may follow the last section, so a
 * readable object is exactly the bytes tile_object_write makes from what it decodes.
 *
 * The reader never trusts a count: every entry is bounded by the bytes that remain in
 * its section before anything is allocated, so a hostile count cannot make it allocate
 * more than a small multiple of the input's length. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "tile/object.h"

enum {
  HEADER_BYTES = 32,
  SECTION_HEADER_BYTES = 16,
  NAME_BYTES = 64,
  WORD_BYTES = 8,
  BUNDLE_BYTES = TILE_BUNDLE_SLOTS * WORD_BYTES,
  CODE_ENTRY_BYTES = 8,  /* chip, nbundles; then the bundles */
  DATA_ENTRY_BYTES = 24, /* chip, space, 3 reserved, addr, size; then the bytes */
  SYM_ENTRY_BYTES = 80,  /* name, kind, space, elem, flags, rank, addr; then rank dims */
};

static const char MAGIC[8] = {'T', 'I', 'L', 'E', 'O', 'B', 'J', 0};

typedef enum SectionKind { SEC_TARGET = 1, SEC_CODE, SEC_DATA, SEC_SYMBOLS, SEC_COUNT } SectionKind;
static const char *const section_names[] = {"", "target", "code", "data", "symbols"};

enum { SYM_PER_CHIP = 1 };

uint64_t tile_object_checksum(const uint8_t *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

/* ---- writing ---- */

typedef struct Buf {
  uint8_t *p;
  size_t len, cap;
  bool failed;
} Buf;

static void put(Buf *b, const void *src, size_t n) {
  if (b->failed) return;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
      b->failed = true;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, src, n);
  b->len += n;
}

static void put_le(Buf *b, uint64_t v, int bytes) {
  uint8_t tmp[8];
  for (int i = 0; i < bytes; i++) tmp[i] = (uint8_t)(v >> (8 * i));
  put(b, tmp, (size_t)bytes);
}

static void patch_le(Buf *b, size_t at, uint64_t v, int bytes) {
  if (b->failed) return;
  for (int i = 0; i < bytes; i++) b->p[at + (size_t)i] = (uint8_t)(v >> (8 * i));
}

static void put_name(Buf *b, const char *name) {
  uint8_t field[NAME_BYTES] = {0};
  size_t n = strnlen(name, NAME_BYTES - 1);
  memcpy(field, name, n);
  put(b, field, NAME_BYTES);
}

/* Starts a section; returns where its size goes. */
static size_t begin_section(Buf *b, SectionKind kind, uint32_t count) {
  put_le(b, kind, 4);
  put_le(b, count, 4);
  size_t at = b->len;
  put_le(b, 0, 8);
  return at;
}

static void end_section(Buf *b, size_t size_at) {
  patch_le(b, size_at, b->len - (size_at + 8), 8);
}

bool tile_object_write(const TileObject *obj, uint8_t **out, size_t *len) {
  *out = NULL;
  *len = 0;
  TileDiag quiet;
  tile_diag_init(&quiet, NULL, "object", NULL, 0);
  if (!tile_object_check(obj, &quiet)) return false;
  Buf b = {0};
  put(&b, MAGIC, sizeof MAGIC);
  put_le(&b, TILE_OBJECT_VERSION, 4);
  put_le(&b, SEC_COUNT - 1, 4);
  put_le(&b, 0, 8); /* total length, patched below */
  put_le(&b, 0, 8); /* checksum, patched below */

  size_t at = begin_section(&b, SEC_TARGET, 1);
  put_name(&b, obj->target);
  end_section(&b, at);

  at = begin_section(&b, SEC_CODE, (uint32_t)obj->ncode);
  for (int32_t i = 0; i < obj->ncode; i++) {
    const TileObjCode *c = &obj->code[i];
    put_le(&b, (uint32_t)c->chip, 4);
    put_le(&b, (uint32_t)c->nbundles, 4);
    for (int32_t k = 0; k < c->nbundles; k++)
      for (int w = 0; w < TILE_BUNDLE_SLOTS; w++)
        put_le(&b, tile_minst_encode(c->bundles[k].slot[w]), 8);
  }
  end_section(&b, at);

  at = begin_section(&b, SEC_DATA, (uint32_t)obj->ndata);
  for (int32_t i = 0; i < obj->ndata; i++) {
    const TileObjData *dd = &obj->data[i];
    put_le(&b, (uint32_t)dd->chip, 4);
    put_le(&b, dd->space, 1);
    put_le(&b, 0, 3);
    put_le(&b, (uint64_t)dd->addr, 8);
    put_le(&b, (uint64_t)dd->size, 8);
    put(&b, dd->bytes, (size_t)dd->size);
  }
  end_section(&b, at);

  at = begin_section(&b, SEC_SYMBOLS, (uint32_t)obj->nsyms);
  for (int32_t i = 0; i < obj->nsyms; i++) {
    const TileObjSymbol *s = &obj->syms[i];
    put_name(&b, s->name);
    put_le(&b, s->kind, 1);
    put_le(&b, s->space, 1);
    put_le(&b, s->elem, 1);
    put_le(&b, s->per_chip ? SYM_PER_CHIP : 0, 1);
    put_le(&b, (uint32_t)s->rank, 4);
    put_le(&b, (uint64_t)s->addr, 8);
    for (int32_t k = 0; k < s->rank; k++) put_le(&b, (uint64_t)s->dims[k], 8);
  }
  end_section(&b, at);

  if (b.failed) {
    free(b.p);
    return false;
  }
  patch_le(&b, 16, b.len, 8);
  patch_le(&b, 24, tile_object_checksum(b.p + HEADER_BYTES, b.len - HEADER_BYTES), 8);
  *out = b.p;
  *len = b.len;
  return true;
}

/* ---- reading ---- */

typedef struct Reader {
  const uint8_t *p;
  size_t len, pos;
  TileDiag *d;
} Reader;

__attribute__((format(printf, 3, 4))) static bool bad(Reader *r, size_t at, const char *fmt,
                                                      ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return tile_error(r->d, (TileLoc){0}, "bad object at byte %zu: %s", at, msg);
}

static uint64_t get_le(const uint8_t *p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static uint64_t take(Reader *r, int bytes) {
  uint64_t v = get_le(r->p + r->pos, bytes);
  r->pos += (size_t)bytes;
  return v;
}

/* A NUL-terminated name in a 64-byte field whose tail is zero. */
static bool take_name(Reader *r, char out[NAME_BYTES], const char *what) {
  size_t at = r->pos;
  const uint8_t *f = r->p + r->pos;
  r->pos += NAME_BYTES;
  const uint8_t *nul = memchr(f, 0, NAME_BYTES);
  if (!nul) return bad(r, at, "the %s name is not NUL-terminated within its %d bytes", what, NAME_BYTES);
  for (const uint8_t *q = nul; q < f + NAME_BYTES; q++)
    if (*q) return bad(r, at, "the %s name has stray bytes after its NUL", what);
  memcpy(out, f, NAME_BYTES);
  return true;
}

/* Reads a section header and checks its kind and that its bytes are in the file. */
static bool take_section(Reader *r, SectionKind want, uint32_t *count, size_t *end) {
  size_t at = r->pos;
  if (r->len - r->pos < SECTION_HEADER_BYTES)
    return bad(r, at, "the file ends inside the header of the %s section", section_names[want]);
  uint32_t kind = (uint32_t)take(r, 4);
  *count = (uint32_t)take(r, 4);
  uint64_t size = take(r, 8);
  if (kind != want)
    return bad(r, at, "expected the %s section (kind %d), found kind %u", section_names[want],
               want, kind);
  if (size > r->len - r->pos)
    return bad(r, at, "the %s section is %llu bytes long but only %zu bytes remain",
               section_names[want], (unsigned long long)size, r->len - r->pos);
  *end = r->pos + (size_t)size;
  return true;
}

/* How many entries of at least min_bytes fit before end; a count above that is a lie. */
static bool count_fits(Reader *r, size_t at, const char *what, uint32_t count, size_t end,
                       size_t min_bytes) {
  if (count > INT32_MAX || (uint64_t)count * min_bytes > end - r->pos)
    return bad(r, at, "the %s section claims %u entries, more than its %zu bytes can hold",
               what, count, end - r->pos);
  return true;
}

static bool read_code(Reader *r, TileObject *obj) {
  uint32_t count;
  size_t end, at = r->pos;
  if (!take_section(r, SEC_CODE, &count, &end)) return false;
  if (!count_fits(r, at, "code", count, end, CODE_ENTRY_BYTES + BUNDLE_BYTES)) return false;
  obj->code = calloc(count ? count : 1, sizeof *obj->code);
  if (!obj->code) return bad(r, at, "out of memory");
  for (uint32_t i = 0; i < count; i++) {
    size_t eat = r->pos;
    if (end - r->pos < CODE_ENTRY_BYTES) return bad(r, eat, "code entry %u is cut short", i);
    int32_t chip = (int32_t)(uint32_t)take(r, 4);
    uint32_t n = (uint32_t)take(r, 4);
    if ((uint64_t)n * BUNDLE_BYTES > end - r->pos || n > INT32_MAX)
      return bad(r, eat, "code entry %u claims %u bundles but its section has %zu bytes left", i,
                 n, end - r->pos);
    TileObjCode *c = &obj->code[obj->ncode++];
    c->chip = chip;
    c->nbundles = (int32_t)n;
    c->bundles = calloc(n ? n : 1, sizeof *c->bundles);
    if (!c->bundles) return bad(r, eat, "out of memory");
    for (uint32_t k = 0; k < n; k++)
      for (int w = 0; w < TILE_BUNDLE_SLOTS; w++) c->bundles[k].slot[w] = tile_minst_decode(take(r, 8));
  }
  if (r->pos != end)
    return bad(r, r->pos, "the code section has %zu bytes after its last entry", end - r->pos);
  return true;
}

static bool read_data(Reader *r, TileObject *obj) {
  uint32_t count;
  size_t end, at = r->pos;
  if (!take_section(r, SEC_DATA, &count, &end)) return false;
  if (!count_fits(r, at, "data", count, end, DATA_ENTRY_BYTES)) return false;
  obj->data = calloc(count ? count : 1, sizeof *obj->data);
  if (!obj->data) return bad(r, at, "out of memory");
  for (uint32_t i = 0; i < count; i++) {
    size_t eat = r->pos;
    if (end - r->pos < DATA_ENTRY_BYTES) return bad(r, eat, "data entry %u is cut short", i);
    int32_t chip = (int32_t)(uint32_t)take(r, 4);
    uint8_t space = (uint8_t)take(r, 1);
    uint32_t reserved = (uint32_t)take(r, 3);
    int64_t addr = (int64_t)take(r, 8);
    uint64_t size = take(r, 8);
    if (reserved) return bad(r, eat, "data entry %u has non-zero reserved bytes", i);
    if (size > end - r->pos)
      return bad(r, eat, "data entry %u claims %llu bytes but its section has %zu left", i,
                 (unsigned long long)size, end - r->pos);
    TileObjData *dd = &obj->data[obj->ndata++];
    dd->chip = chip;
    dd->space = space;
    dd->addr = addr;
    dd->size = (int64_t)size;
    dd->bytes = malloc(size ? size : 1);
    if (!dd->bytes) return bad(r, eat, "out of memory");
    memcpy(dd->bytes, r->p + r->pos, size);
    r->pos += size;
  }
  if (r->pos != end)
    return bad(r, r->pos, "the data section has %zu bytes after its last entry", end - r->pos);
  return true;
}

static bool read_symbols(Reader *r, TileObject *obj) {
  uint32_t count;
  size_t end, at = r->pos;
  if (!take_section(r, SEC_SYMBOLS, &count, &end)) return false;
  if (!count_fits(r, at, "symbols", count, end, SYM_ENTRY_BYTES)) return false;
  obj->syms = calloc(count ? count : 1, sizeof *obj->syms);
  if (!obj->syms) return bad(r, at, "out of memory");
  for (uint32_t i = 0; i < count; i++) {
    size_t eat = r->pos;
    if (end - r->pos < SYM_ENTRY_BYTES) return bad(r, eat, "symbol entry %u is cut short", i);
    TileObjSymbol *s = &obj->syms[obj->nsyms++];
    if (!take_name(r, s->name, "symbol")) return false;
    s->kind = (uint8_t)take(r, 1);
    s->space = (uint8_t)take(r, 1);
    s->elem = (uint8_t)take(r, 1);
    uint8_t flags = (uint8_t)take(r, 1);
    uint32_t rank = (uint32_t)take(r, 4);
    s->addr = (int64_t)take(r, 8);
    if (flags & ~SYM_PER_CHIP)
      return bad(r, eat, "symbol '%s' has unknown flags 0x%02x", s->name, flags);
    s->per_chip = flags & SYM_PER_CHIP;
    if (rank > TILE_MAX_RANK)
      return bad(r, eat, "symbol '%s' has rank %u; at most %d is supported", s->name, rank,
                 TILE_MAX_RANK);
    s->rank = (int32_t)rank;
    if ((size_t)rank * 8 > end - r->pos)
      return bad(r, eat, "symbol '%s' is cut short in its dimensions", s->name);
    for (uint32_t k = 0; k < rank; k++) s->dims[k] = (int64_t)take(r, 8);
  }
  if (r->pos != end)
    return bad(r, r->pos, "the symbols section has %zu bytes after its last entry", end - r->pos);
  return true;
}

bool tile_object_read(const uint8_t *bytes, size_t len, TileObject *obj, TileDiag *d) {
  memset(obj, 0, sizeof *obj);
  Reader r = {bytes, len, 0, d};
  if (len < HEADER_BYTES)
    return tile_error(d, (TileLoc){0},
                      "truncated object: %zu bytes, but the header alone takes %d", len,
                      HEADER_BYTES);
  if (memcmp(bytes, MAGIC, sizeof MAGIC) != 0)
    return tile_error(d, (TileLoc){0}, "not a tilec object: it does not start with \"TILEOBJ\"");
  r.pos = sizeof MAGIC;
  uint32_t version = (uint32_t)take(&r, 4);
  uint32_t nsections = (uint32_t)take(&r, 4);
  uint64_t total = take(&r, 8);
  uint64_t sum = take(&r, 8);
  if (version != TILE_OBJECT_VERSION)
    return tile_error(d, (TileLoc){0},
                      "object version %u is not supported (this tilec reads version %d)",
                      version, TILE_OBJECT_VERSION);
  if (total > len)
    return tile_error(d, (TileLoc){0},
                      "truncated object: the header says %llu bytes, but only %zu are present",
                      (unsigned long long)total, len);
  if (total < len)
    return tile_error(d, (TileLoc){0},
                      "%zu extra bytes follow the end of the object (the header says %llu bytes)",
                      len - (size_t)total, (unsigned long long)total);
  uint64_t want = tile_object_checksum(bytes + HEADER_BYTES, len - HEADER_BYTES);
  if (sum != want)
    return tile_error(d, (TileLoc){0},
                      "checksum mismatch: the object is corrupted (stored %016llx, computed "
                      "%016llx)",
                      (unsigned long long)sum, (unsigned long long)want);
  if (nsections != SEC_COUNT - 1)
    return bad(&r, 12, "%u sections, but version %d objects have %d", nsections,
               TILE_OBJECT_VERSION, SEC_COUNT - 1);
  uint32_t count;
  size_t end, at = r.pos;
  bool ok = take_section(&r, SEC_TARGET, &count, &end);
  if (ok && (count != 1 || end - r.pos != NAME_BYTES))
    ok = bad(&r, at, "the target section must hold one %d-byte name", NAME_BYTES);
  ok = ok && take_name(&r, obj->target, "target");
  ok = ok && read_code(&r, obj) && read_data(&r, obj) && read_symbols(&r, obj);
  if (ok && r.pos != len)
    ok = bad(&r, r.pos, "%zu bytes follow the last section", len - r.pos);
  ok = ok && tile_object_check(obj, d);
  if (!ok) tile_object_free(obj);
  return ok;
}

void tile_object_free(TileObject *obj) {
  if (!obj) return;
  for (int32_t i = 0; i < obj->ncode; i++) free(obj->code[i].bundles);
  for (int32_t i = 0; i < obj->ndata; i++) free(obj->data[i].bytes);
  free(obj->code);
  free(obj->data);
  free(obj->syms);
  memset(obj, 0, sizeof *obj);
}

const TileObjCode *tile_object_code_for(const TileObject *obj, int32_t chip) {
  const TileObjCode *all = NULL;
  for (int32_t i = 0; i < obj->ncode; i++) {
    if (obj->code[i].chip == chip) return &obj->code[i];
    if (obj->code[i].chip == TILE_OBJ_ALL_CHIPS) all = &obj->code[i];
  }
  return all;
}

const TileObjSymbol *tile_object_find_symbol(const TileObject *obj, const char *name) {
  for (int32_t i = 0; i < obj->nsyms; i++)
    if (strcmp(obj->syms[i].name, name) == 0) return &obj->syms[i];
  return NULL;
}
