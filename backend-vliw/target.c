/* Machine descriptions: the `key = value` files of targets/ (include/tile/target.h).
 *
 * One table lists every key with its kind, its field in TileTarget and its bounds, so
 * parsing, the missing-key check and printing all come from it. Numbers are read
 * exactly: `1.5e9`, `16MiB` and `1.2e12` become the integers they denote (a value that
 * is not a whole number is an error), never a double rounded to an integer.
 *
 * A description is checked as a whole after parsing: every key present once, each value
 * in range, and the few rules that tie keys together (a vector register row is one MXU
 * row, so vreg.lanes must equal mxu.dim). Errors carry file:line:col and the source
 * line; several are reported per file. */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "tile/isa.h"
#include "tile/target.h"

#ifndef TILE_SOURCE_DIR
#define TILE_SOURCE_DIR ""
#endif
#ifndef TILE_TARGETS_INSTALL_DIR
#define TILE_TARGETS_INSTALL_DIR ""
#endif

enum { MAX_CHIPS = 65536, MAX_TARGET_FILE = 1 << 20 };

typedef enum ValueKind {
  V_NAME,   /* [A-Za-z0-9_.-]+ */
  V_STRING, /* the rest of the line, or a "quoted string" */
  V_I32,    /* a number that fits int32_t */
  V_I64,    /* a number that fits int64_t */
  V_BYTES,  /* an int64_t that may carry a unit: 16MiB, 32GB */
  V_TORUS,  /* 4x4x4 */
  V_WRAP,   /* never | always | multiple-of N | equal N */
} ValueKind;

typedef struct Key {
  const char *key;
  ValueKind kind;
  size_t off;   /* field in TileTarget */
  int64_t min, max;
  const char *why_max; /* why the upper bound exists, for the message */
} Key;

#define F(field) offsetof(TileTarget, field)
/* Slot counts are bounded by the words the encoding gives each slot kind. */
static const int encoding_slot_words[TILE_SLOT_COUNT] = {
#define X(slot, n) [TILE_SLOT_##slot] = n,
    TILE_SLOT_WORDS(X)
#undef X
};

static const Key keys[] = {
    {"name", V_NAME, F(name), 0, 0, NULL},
    {"source", V_STRING, F(source), 0, 0, NULL},
    {"clock_hz", V_I64, F(clock_hz), 1, INT64_MAX, NULL},
#define X(e, k, m)                                                                    \
  {"slots." k, V_I32, F(slots) + TILE_SLOT_##e * sizeof(int32_t), 1, -1,             \
   "the encoding's " k " slot words"},
    TILE_SLOTS(X)
#undef X
#define X(e, k, m)                                                                    \
  {"lat." k, V_I32, F(latency) + TILE_LAT_##e * sizeof(int32_t), 1, 1000000, NULL},
    TILE_LATENCIES(X)
#undef X
    {"vreg.sublanes", V_I32, F(vreg_sublanes), 1, 1024, NULL},
    {"vreg.lanes", V_I32, F(vreg_lanes), 1, 4096, NULL},
    {"vregs", V_I32, F(nvregs), 1, 64, "register fields have 6 bits"},
    {"sregs", V_I32, F(nsregs), 1, 64, "register fields have 6 bits"},
    {"mxu.dim", V_I32, F(mxu_dim), 1, 4096, NULL},
    {"mxu.count", V_I32, F(mxu_count), 1, 64, "MXU unit fields have 6 bits"},
    {"mxu.push_cycles", V_I32, F(mxu_push_cycles), 1, 1000000, NULL},
    {"vmem.bytes", V_BYTES, F(vmem_bytes), 4, INT32_MAX, "VMEM addresses are 32-bit scalars"},
    {"smem.bytes", V_BYTES, F(smem_bytes), 4, INT32_MAX, "SMEM addresses are 32-bit scalars"},
    {"hbm.bytes", V_BYTES, F(hbm_bytes), 4, INT64_MAX, NULL},
    {"hbm.bw", V_I64, F(hbm_bw), 1, INT64_MAX, NULL},
    {"vmem.bw", V_I64, F(vmem_bw), 1, INT64_MAX, NULL},
    {"dma.engines", V_I32, F(dma_engines), 1, 1024, NULL},
    {"dma.issue_cycles", V_I32, F(dma_issue_cycles), 1, 1000000, NULL},
    {"dma.outstanding", V_I32, F(dma_outstanding), 1, 1 << 20, NULL},
    {"sems", V_I32, F(nsems), 1, 64, "semaphore fields have 6 bits"},
    {"torus", V_TORUS, F(torus), 0, 0, NULL},
    {"torus.wrap", V_WRAP, F(wrap_rule), 0, 0, NULL},
    {"ici.bw", V_I64, F(ici_bw), 1, INT64_MAX, NULL},
    {"ici.hop_ns", V_I64, F(ici_hop_ns), 1, 1000000000, NULL},
    {"watchdog_cycles", V_I64, F(watchdog_cycles), 1, INT64_MAX, NULL},
};
#undef F
enum { NKEYS = sizeof keys / sizeof keys[0] };

static int64_t key_max(const Key *k) {
  if (k->max >= 0) return k->max;
  /* slots.<kind>: the words the encoding has for that kind */
  int kind = (int)((k->off - offsetof(TileTarget, slots)) / sizeof(int32_t));
  return encoding_slot_words[kind];
}

/* ---- exact numbers ---- */

static const struct {
  const char *suffix;
  int64_t mult;
} units[] = {
    {"KiB", 1LL << 10}, {"MiB", 1LL << 20}, {"GiB", 1LL << 30}, {"TiB", 1LL << 40},
    {"KB", 1000LL},     {"MB", 1000000LL},  {"GB", 1000000000LL}, {"TB", 1000000000000LL},
};

/* Reads digits[.digits][e[+-]digits][unit] from s (len bytes) as the exact integer it
 * denotes. On failure writes a sentence to err. */
static bool parse_exact(const char *s, size_t len, bool allow_unit, int64_t *out, char *err,
                        size_t errlen) {
  size_t i = 0;
  bool neg = false;
  if (i < len && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
  unsigned __int128 mant = 0;
  int ndigits = 0, scale = 0; /* value = mant * 10^scale */
  bool overflow = false;
  for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, ndigits++) {
    if (mant > (unsigned __int128)UINT64_MAX) overflow = true;
    else mant = mant * 10 + (unsigned)(s[i] - '0');
  }
  if (i < len && s[i] == '.') {
    i++;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, ndigits++, scale--) {
      if (mant > (unsigned __int128)UINT64_MAX) overflow = true;
      else mant = mant * 10 + (unsigned)(s[i] - '0');
    }
  }
  if (ndigits == 0) {
    snprintf(err, errlen, "expected a number");
    return false;
  }
  if (i < len && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    bool eneg = false;
    if (i < len && (s[i] == '-' || s[i] == '+')) eneg = s[i++] == '-';
    int e = 0, edigits = 0;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, edigits++)
      if (e < 10000) e = e * 10 + (s[i] - '0');
    if (edigits == 0) {
      snprintf(err, errlen, "expected digits after the exponent's 'e'");
      return false;
    }
    scale += eneg ? -e : e;
  }
  int64_t mult = 1;
  if (i < len) {
    size_t rest = len - i;
    bool found = false;
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++)
      if (strlen(units[u].suffix) == rest && memcmp(units[u].suffix, s + i, rest) == 0) {
        mult = units[u].mult;
        found = true;
      }
    if (!found) {
      snprintf(err, errlen, "unexpected '%.*s' after the number", (int)(rest > 20 ? 20 : rest),
               s + i);
      return false;
    }
    if (!allow_unit) {
      snprintf(err, errlen, "a unit ('%.*s') only fits byte sizes", (int)rest, s + i);
      return false;
    }
  }
  unsigned __int128 v = mant, limit = (unsigned __int128)INT64_MAX;
  if (!overflow) {
    v *= (unsigned __int128)mult;
    if (v > limit) overflow = true;
  }
  for (; !overflow && scale > 0 && v != 0; scale--) {
    v *= 10;
    if (v > limit) overflow = true;
  }
  for (; !overflow && scale < 0 && v != 0; scale++) {
    if (v % 10 != 0) {
      snprintf(err, errlen, "'%.*s' is not a whole number", (int)len, s);
      return false;
    }
    v /= 10;
  }
  if (overflow) {
    snprintf(err, errlen, "'%.*s' is too large", (int)(len > 40 ? 40 : len), s);
    return false;
  }
  *out = neg ? -(int64_t)v : (int64_t)v;
  return true;
}

/* "4x4x4" -> rank and dims. */
static bool parse_torus(const char *s, size_t len, int32_t *rank, int32_t dims[], char *err,
                        size_t errlen) {
  int32_t n = 0;
  size_t i = 0;
  int64_t chips = 1;
  for (;;) {
    size_t start = i;
    int64_t v = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
      if (v <= MAX_CHIPS) v = v * 10 + (s[i] - '0');
      i++;
    }
    if (i == start) {
      snprintf(err, errlen, "a torus shape is axis lengths joined by 'x', like 4x4x4");
      return false;
    }
    if (n == TILE_MAX_TORUS_RANK) {
      snprintf(err, errlen, "a torus has at most %d axes", TILE_MAX_TORUS_RANK);
      return false;
    }
    if (v < 1) {
      snprintf(err, errlen, "torus axis %d has length 0; each axis needs at least 1 chip", n);
      return false;
    }
    chips *= v;
    if (v > MAX_CHIPS || chips > MAX_CHIPS) {
      snprintf(err, errlen, "a torus of more than %d chips is not supported", MAX_CHIPS);
      return false;
    }
    dims[n++] = (int32_t)v;
    if (i == len) break;
    if (s[i] != 'x') {
      snprintf(err, errlen, "unexpected '%c' in the torus shape; axes are joined by 'x'", s[i]);
      return false;
    }
    i++;
  }
  *rank = n;
  return true;
}

static bool axis_wraps(const TileTarget *t, int32_t len) {
  if (len < 2) return false;
  switch (t->wrap_rule) {
  case TILE_WRAP_ALWAYS: return true;
  case TILE_WRAP_MULTIPLE_OF: return t->wrap_arg > 0 && len % t->wrap_arg == 0;
  case TILE_WRAP_EQUAL: return len == t->wrap_arg;
  default: return false;
  }
}

static void apply_wrap(TileTarget *t) {
  for (int k = 0; k < TILE_MAX_TORUS_RANK; k++)
    t->wrap[k] = k < t->torus_rank && axis_wraps(t, t->torus[k]);
}

static const char *const wrap_words[] = {
    [TILE_WRAP_NEVER] = "never",
    [TILE_WRAP_ALWAYS] = "always",
    [TILE_WRAP_MULTIPLE_OF] = "multiple-of",
    [TILE_WRAP_EQUAL] = "equal",
};

static bool parse_wrap(const char *s, size_t len, TileTarget *t, char *err, size_t errlen) {
  size_t w = 0;
  while (w < len && s[w] != ' ' && s[w] != '\t') w++;
  for (int r = 0; r < 4; r++) {
    if (strlen(wrap_words[r]) != w || memcmp(wrap_words[r], s, w) != 0) continue;
    const char *arg = s + w;
    size_t alen = len - w;
    while (alen && (*arg == ' ' || *arg == '\t')) arg++, alen--;
    bool takes_arg = r == TILE_WRAP_MULTIPLE_OF || r == TILE_WRAP_EQUAL;
    if (!takes_arg) {
      if (alen) {
        snprintf(err, errlen, "'%s' takes no argument", wrap_words[r]);
        return false;
      }
      t->wrap_rule = (uint8_t)r;
      t->wrap_arg = 0;
      return true;
    }
    int64_t v;
    if (!alen) {
      snprintf(err, errlen, "'%s' needs an axis length, like '%s 4'", wrap_words[r],
               wrap_words[r]);
      return false;
    }
    if (!parse_exact(arg, alen, false, &v, err, errlen)) return false;
    if (v < 1 || v > MAX_CHIPS) {
      snprintf(err, errlen, "the axis length of '%s' must be between 1 and %d", wrap_words[r],
               MAX_CHIPS);
      return false;
    }
    t->wrap_rule = (uint8_t)r;
    t->wrap_arg = (int32_t)v;
    return true;
  }
  snprintf(err, errlen,
           "torus.wrap is one of 'never', 'always', 'multiple-of N' or 'equal N'");
  return false;
}

/* ---- the parser ---- */

typedef struct Parser {
  const char *src, *end, *file;
  TileDiag *d;
  TileTarget *t;
  int seen_line[NKEYS]; /* line of each key, 0 when not seen */
  bool ok;
} Parser;

static TileLoc loc_at(const Parser *p, int line, const char *at, const char *line_start) {
  return (TileLoc){p->file, line, (int)(at - line_start) + 1};
}

static const Key *find_key(const char *s, size_t len) {
  for (int k = 0; k < NKEYS; k++)
    if (strlen(keys[k].key) == len && memcmp(keys[k].key, s, len) == 0) return &keys[k];
  return NULL;
}

static bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '.' || c == '-';
}

/* Stores one value; reports at loc on error. */
static void set_value(Parser *p, const Key *k, const char *v, size_t vlen, TileLoc loc) {
  char err[200];
  char *field = (char *)p->t + k->off;
  switch (k->kind) {
  case V_NAME: {
    bool good = vlen > 0 && vlen < sizeof p->t->name;
    for (size_t i = 0; good && i < vlen; i++) good = is_name_char(v[i]);
    if (!good) {
      p->ok = tile_error(p->d, loc,
                         "%s must be 1 to %zu letters, digits, '_', '.' or '-'", k->key,
                         sizeof p->t->name - 1);
      return;
    }
    /* A name ending in .target would be read as a file path wherever it is looked up
     * (tile_target_load, `.target` in assembly). */
    if (vlen >= 7 && memcmp(v + vlen - 7, ".target", 7) == 0) {
      p->ok = tile_error(p->d, loc, "%s may not end in '.target', which reads as a file path",
                         k->key);
      return;
    }
    memcpy(field, v, vlen);
    field[vlen] = 0;
    return;
  }
  case V_STRING: {
    char buf[sizeof p->t->source];
    size_t n = 0;
    if (vlen && v[0] == '"') {
      size_t i = 1;
      for (; i < vlen && v[i] != '"'; i++) {
        if (v[i] == '\\' && i + 1 < vlen) i++;
        if (n + 1 < sizeof buf) buf[n] = v[i];
        n++;
      }
      if (i + 1 != vlen) {
        p->ok = tile_error(p->d, loc, i >= vlen ? "unterminated string"
                                                : "unexpected text after the closing quote");
        return;
      }
    } else {
      for (; n < vlen; n++)
        if (n + 1 < sizeof buf) buf[n] = v[n];
    }
    if (n >= sizeof buf) {
      p->ok = tile_error(p->d, loc, "%s is longer than %zu characters", k->key, sizeof buf - 1);
      return;
    }
    for (size_t i = 0; i < n; i++)
      if ((unsigned char)buf[i] < 32 || buf[i] == 127) {
        p->ok = tile_error(p->d, loc, "%s holds a control character", k->key);
        return;
      }
    memcpy(field, buf, n);
    field[n] = 0;
    return;
  }
  case V_I32:
  case V_I64:
  case V_BYTES: {
    int64_t x;
    if (!parse_exact(v, vlen, k->kind == V_BYTES, &x, err, sizeof err)) {
      p->ok = tile_error(p->d, loc, "%s: %s", k->key, err);
      return;
    }
    int64_t hi = key_max(k);
    if (x < k->min) {
      p->ok = tile_error(p->d, loc, "%s must be at least %lld, not %lld", k->key,
                         (long long)k->min, (long long)x);
      return;
    }
    if (x > hi) {
      if (k->why_max)
        p->ok = tile_error(p->d, loc, "%s must be at most %lld (%s), not %lld", k->key,
                           (long long)hi, k->why_max, (long long)x);
      else
        p->ok = tile_error(p->d, loc, "%s must be at most %lld, not %lld", k->key,
                           (long long)hi, (long long)x);
      return;
    }
    if (k->kind == V_I32) *(int32_t *)field = (int32_t)x;
    else *(int64_t *)field = x;
    return;
  }
  case V_TORUS:
    if (!parse_torus(v, vlen, &p->t->torus_rank, p->t->torus, err, sizeof err))
      p->ok = tile_error(p->d, loc, "torus: %s", err);
    return;
  case V_WRAP:
    if (!parse_wrap(v, vlen, p->t, err, sizeof err)) p->ok = tile_error(p->d, loc, "%s", err);
    return;
  }
}

static void parse_line(Parser *p, int line, const char *s, const char *e) {
  const char *ls = s;
  /* Cut the comment, unless the '#' is inside a quoted string. */
  bool quoted = false;
  for (const char *q = s; q < e; q++) {
    if (*q == '"') quoted = !quoted;
    else if (*q == '\\' && quoted && q + 1 < e) q++;
    else if (*q == '#' && !quoted) {
      e = q;
      break;
    }
  }
  while (s < e && (*s == ' ' || *s == '\t' || *s == '\r')) s++;
  while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) e--;
  if (s == e) return;
  const char *ks = s;
  while (s < e && (is_name_char(*s))) s++;
  const char *ke = s;
  if (ke == ks) {
    p->ok = tile_error(p->d, loc_at(p, line, ks, ls), "expected a key, like 'clock_hz = 1e9'");
    return;
  }
  while (s < e && (*s == ' ' || *s == '\t')) s++;
  if (s == e || *s != '=') {
    p->ok = tile_error(p->d, loc_at(p, line, s, ls), "expected '=' after '%.*s'",
                       (int)(ke - ks), ks);
    return;
  }
  s++;
  while (s < e && (*s == ' ' || *s == '\t')) s++;
  const Key *k = find_key(ks, (size_t)(ke - ks));
  if (!k) {
    p->ok = tile_error(p->d, loc_at(p, line, ks, ls), "unknown key '%.*s'", (int)(ke - ks), ks);
    return;
  }
  int idx = (int)(k - keys);
  if (p->seen_line[idx]) {
    p->ok = tile_error(p->d, loc_at(p, line, ks, ls), "key '%s' is given twice (first on line %d)",
                       k->key, p->seen_line[idx]);
    return;
  }
  p->seen_line[idx] = line;
  if (s == e) {
    p->ok = tile_error(p->d, loc_at(p, line, s, ls), "key '%s' has no value", k->key);
    return;
  }
  set_value(p, k, s, (size_t)(e - s), loc_at(p, line, s, ls));
}

static int key_line(const Parser *p, const char *key) {
  const Key *k = find_key(key, strlen(key));
  return k ? p->seen_line[k - keys] : 0;
}

/* Rules that tie several keys together, reported on the line of the later key. */
static void check_whole(Parser *p) {
  TileTarget *t = p->t;
  int lanes_line = key_line(p, "vreg.lanes"), dim_line = key_line(p, "mxu.dim");
  TileLoc at = {p->file, lanes_line > dim_line ? lanes_line : dim_line, 1};
  if (t->vreg_lanes != t->mxu_dim)
    p->ok = tile_error(p->d, at,
                       "vreg.lanes (%d) must equal mxu.dim (%d): a vector register row is one "
                       "row of MXU input",
                       t->vreg_lanes, t->mxu_dim);
  else if (t->mxu_dim % t->vreg_sublanes != 0)
    p->ok = tile_error(p->d, at,
                       "mxu.dim (%d) must be a multiple of vreg.sublanes (%d): weights and "
                       "transposes move whole registers",
                       t->mxu_dim, t->vreg_sublanes);
  int smem_line = key_line(p, "smem.bytes");
  if (t->smem_bytes % 4 != 0)
    p->ok = tile_error(p->d, (TileLoc){p->file, smem_line, 1},
                       "smem.bytes (%lld) must be a multiple of 4: SMEM holds 32-bit words",
                       (long long)t->smem_bytes);
}

static bool parse_impl(const char *src, size_t len, const char *filename, TileTarget *t,
                       TileDiag *d, int *name_line) {
  /* Show lines of this file in the messages, whatever source d was made for. */
  const char *saved_src = d->src;
  size_t saved_len = d->src_len;
  d->src = src;
  d->src_len = len;
  memset(t, 0, sizeof *t);
  Parser p = {.src = src, .end = src + len, .file = filename ? filename : "<target>",
              .d = d, .t = t, .ok = true};
  int line = 1;
  for (const char *s = src; s < p.end; line++) {
    const char *nl = memchr(s, '\n', (size_t)(p.end - s));
    const char *e = nl ? nl : p.end;
    if (memchr(s, 0, (size_t)(e - s))) {
      p.ok = tile_error(d, (TileLoc){p.file, line, 1}, "a target file is text; this line holds a NUL byte");
    } else {
      parse_line(&p, line, s, e);
    }
    if (tile_diag_full(d)) break;
    s = nl ? nl + 1 : p.end;
  }
  bool all_present = true;
  for (int k = 0; k < NKEYS; k++)
    if (!p.seen_line[k]) {
      p.ok = tile_error(d, (TileLoc){p.file, 0, 0}, "missing key '%s'", keys[k].key);
      all_present = false;
    }
  if (p.ok && all_present) check_whole(&p);
  if (p.ok) apply_wrap(t);
  d->src = saved_src;
  d->src_len = saved_len;
  if (!p.ok) memset(t, 0, sizeof *t);
  if (name_line) *name_line = key_line(&p, "name");
  return p.ok;
}

bool tile_target_parse(const char *src, size_t len, const char *filename, TileTarget *t,
                       TileDiag *d) {
  return parse_impl(src, len, filename, t, d, NULL);
}

/* ---- loading by name ---- */

static char *read_small_file(const char *path, size_t *len, int *err) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    *err = errno;
    return NULL;
  }
  char *buf = malloc(MAX_TARGET_FILE + 1);
  size_t n = buf ? fread(buf, 1, MAX_TARGET_FILE + 1, f) : 0;
  *err = buf ? (ferror(f) ? EIO : 0) : ENOMEM;
  fclose(f);
  if (!buf || *err) {
    free(buf);
    return NULL;
  }
  if (n > MAX_TARGET_FILE) {
    free(buf);
    *err = EFBIG;
    return NULL;
  }
  *len = n;
  return buf;
}

static bool load_file(const char *path, const char *want_name, TileTarget *t, TileDiag *d) {
  size_t len = 0;
  int err = 0;
  char *src = read_small_file(path, &len, &err);
  if (!src) {
    if (err == EFBIG)
      return tile_error(d, (TileLoc){0}, "target file '%s' is larger than %d bytes", path,
                        MAX_TARGET_FILE);
    return tile_error(d, (TileLoc){0}, "cannot read target file '%s': %s", path, strerror(err));
  }
  int name_line = 0;
  bool ok = parse_impl(src, len, path, t, d, &name_line);
  if (ok && want_name && strcmp(t->name, want_name) != 0) {
    /* The object records its target by name; a file whose name key differs would load
     * under one name and be recorded under another. */
    const char *saved_src = d->src;
    size_t saved_len = d->src_len;
    d->src = src;
    d->src_len = len;
    tile_error(d, (TileLoc){path, name_line, 1},
               "the target file for '%s' names itself '%s'; the name must match the file's",
               want_name, t->name);
    d->src = saved_src;
    d->src_len = saved_len;
    memset(t, 0, sizeof *t);
    ok = false;
  }
  free(src);
  return ok;
}

static bool file_exists(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return false;
  fclose(f);
  return true;
}

bool tile_target_load(const char *name_or_path, TileTarget *t, TileDiag *d) {
  memset(t, 0, sizeof *t);
  if (!name_or_path || !*name_or_path)
    return tile_error(d, (TileLoc){0}, "no target named (give a name like 'tiny' or a path)");
  size_t n = strlen(name_or_path);
  if (strchr(name_or_path, '/') || (n > 7 && strcmp(name_or_path + n - 7, ".target") == 0))
    return load_file(name_or_path, NULL, t, d);
  bool good = n < sizeof t->name;
  for (size_t i = 0; good && i < n; i++) good = is_name_char(name_or_path[i]);
  if (!good)
    return tile_error(d, (TileLoc){0},
                      "'%s' is not a target name (letters, digits, '_', '.', '-') or a path",
                      name_or_path);
  /* The search path: $TILE_TARGET_PATH (directories separated by ':'), then the source
   * tree's targets/, then the installed targets. */
  char looked[1024] = "";
  size_t used = 0;
  char path[4096];
  const char *env = getenv("TILE_TARGET_PATH");
  const char *fixed[2] = {TILE_SOURCE_DIR[0] ? TILE_SOURCE_DIR "/targets" : NULL,
                          TILE_TARGETS_INSTALL_DIR[0] ? TILE_TARGETS_INSTALL_DIR : NULL};
  for (int k = -1; k < 2; k++) {
    const char *list = k < 0 ? env : fixed[k];
    while (list && *list) {
      const char *colon = k < 0 ? strchr(list, ':') : NULL;
      size_t dlen = colon ? (size_t)(colon - list) : strlen(list);
      if (dlen) {
        snprintf(path, sizeof path, "%.*s/%s.target", (int)dlen, list, name_or_path);
        if (file_exists(path)) return load_file(path, name_or_path, t, d);
        int w = snprintf(looked + used, sizeof looked - used, "%s%.*s", used ? ", " : "",
                         (int)dlen, list);
        if (w > 0 && used + (size_t)w < sizeof looked) used += (size_t)w;
      }
      list += dlen + (colon ? 1 : 0);
    }
  }
  return tile_error(d, (TileLoc){0}, "unknown target '%s' (looked in: %s)", name_or_path,
                    used ? looked : "no directories; set TILE_TARGET_PATH");
}

bool tile_target_set_torus(TileTarget *t, const char *shape, TileDiag *d) {
  char err[200];
  int32_t rank, dims[TILE_MAX_TORUS_RANK];
  if (!parse_torus(shape, strlen(shape), &rank, dims, err, sizeof err))
    return tile_error(d, (TileLoc){0}, "bad torus shape '%s': %s", shape, err);
  t->torus_rank = rank;
  for (int k = 0; k < TILE_MAX_TORUS_RANK; k++) t->torus[k] = k < rank ? dims[k] : 0;
  apply_wrap(t);
  return true;
}

/* ---- printing ---- */

/* Byte sizes in the largest binary unit that divides them. */
static void print_bytes(FILE *out, int64_t v) {
  for (int u = 3; u >= 0; u--)
    if (v >= units[u].mult && v % units[u].mult == 0) {
      fprintf(out, "%lld%s", (long long)(v / units[u].mult), units[u].suffix);
      return;
    }
  fprintf(out, "%lld", (long long)v);
}

/* Rates and clocks as 1.5e9 when they end in four or more zeros, else plain. */
static void print_number(FILE *out, int64_t v) {
  int zeros = 0;
  int64_t m = v;
  while (m != 0 && m % 10 == 0) m /= 10, zeros++;
  if (zeros < 4) {
    fprintf(out, "%lld", (long long)v);
    return;
  }
  char digits[32];
  int n = snprintf(digits, sizeof digits, "%lld", (long long)(m < 0 ? -m : m));
  fprintf(out, "%s%c", m < 0 ? "-" : "", digits[0]);
  if (n > 1) fprintf(out, ".%s", digits + 1);
  fprintf(out, "e%d", zeros + n - 1);
}

void tile_target_print(FILE *out, const TileTarget *t) {
  fprintf(out, "# target %s: %lld chip%s, wraparound per axis:", t->name,
          (long long)tile_target_chips(t), tile_target_chips(t) == 1 ? "" : "s");
  for (int k = 0; k < t->torus_rank; k++) fprintf(out, " %s", t->wrap[k] ? "yes" : "no");
  fprintf(out, "\n");
  for (int k = 0; k < NKEYS; k++) {
    const Key *key = &keys[k];
    const char *field = (const char *)t + key->off;
    fprintf(out, "%s = ", key->key);
    switch (key->kind) {
    case V_NAME: fputs(field, out); break;
    case V_STRING:
      fputc('"', out);
      for (const char *c = field; *c; c++) {
        if (*c == '"' || *c == '\\') fputc('\\', out);
        fputc(*c, out);
      }
      fputc('"', out);
      break;
    case V_I32: fprintf(out, "%d", *(const int32_t *)field); break;
    case V_I64: print_number(out, *(const int64_t *)field); break;
    case V_BYTES: print_bytes(out, *(const int64_t *)field); break;
    case V_TORUS:
      for (int a = 0; a < t->torus_rank; a++) fprintf(out, "%s%d", a ? "x" : "", t->torus[a]);
      break;
    case V_WRAP:
      fputs(t->wrap_rule < 4 ? wrap_words[t->wrap_rule] : "never", out);
      if (t->wrap_rule == TILE_WRAP_MULTIPLE_OF || t->wrap_rule == TILE_WRAP_EQUAL)
        fprintf(out, " %d", t->wrap_arg);
      break;
    }
    fputc('\n', out);
  }
}

int64_t tile_target_chips(const TileTarget *t) {
  int64_t n = 1;
  for (int k = 0; k < t->torus_rank; k++) n *= t->torus[k];
  return n;
}

int64_t tile_target_xfer_cycles(const TileTarget *t, int64_t bytes, int64_t bytes_per_s) {
  if (bytes <= 0) return 0;
  if (bytes_per_s <= 0) return INT64_MAX;
  unsigned __int128 num = (unsigned __int128)bytes * (unsigned __int128)t->clock_hz;
  unsigned __int128 q = (num + (unsigned __int128)bytes_per_s - 1) / (unsigned __int128)bytes_per_s;
  return q > (unsigned __int128)INT64_MAX ? INT64_MAX : (int64_t)q;
}

int64_t tile_target_hop_cycles(const TileTarget *t) {
  return tile_target_xfer_cycles(t, t->ici_hop_ns, 1000000000);
}
