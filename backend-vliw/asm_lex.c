/* The assembler's scanner: blanks, names, integer and float literals within one line,
 * with every failure reported at its column. Literals are read exactly: integers with
 * overflow checks, floats with strtof (one correctly rounded conversion to f32, so the
 * disassembler's shortest literal reads back to the same bits). */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "asm_internal.h"

void asm_error(Asm *a, const Cursor *c, const char *at, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  TileLoc loc = {a->file, c ? c->line : 0, c ? (int)(at - c->s) + 1 : 0};
  tile_verror(a->d, loc, fmt, ap);
  va_end(ap);
}

void cur_skip_ws(Cursor *c) {
  while (c->p < c->e && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r')) c->p++;
}

bool cur_at_end(Cursor *c) {
  cur_skip_ws(c);
  return c->p >= c->e;
}

bool cur_eat(Cursor *c, char ch) {
  cur_skip_ws(c);
  if (c->p < c->e && *c->p == ch) {
    c->p++;
    return true;
  }
  return false;
}

bool is_ident_start(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
}

bool is_ident_char(char ch) {
  return is_ident_start(ch) || (ch >= '0' && ch <= '9') || ch == '.';
}

size_t cur_ident(Cursor *c, const char **start) {
  cur_skip_ws(c);
  *start = c->p;
  if (c->p >= c->e || !is_ident_start(*c->p)) return 0;
  while (c->p < c->e && is_ident_char(*c->p)) c->p++;
  return (size_t)(c->p - *start);
}

size_t cur_name(Cursor *c, const char **start) {
  cur_skip_ws(c);
  *start = c->p;
  while (c->p < c->e && (is_ident_char(*c->p) || *c->p == '-')) c->p++;
  return (size_t)(c->p - *start);
}

const char *cur_token(const Cursor *c, const char *p, char *buf, size_t n) {
  if (p >= c->e) return "the end of the line";
  size_t len = 0;
  while (p + len < c->e && p[len] != ' ' && p[len] != '\t' && p[len] != ',' && p[len] != ';' &&
         (len == 0 || (p[len] != '[' && p[len] != ']')))
    len++;
  if (len == 0) len = 1;
  if (len > 24) len = 24;
  char tmp[32];
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)p[i];
    tmp[i] = ch < 32 || ch > 126 ? '?' : (char)ch;
  }
  tmp[len] = 0;
  snprintf(buf, n, "'%s'", tmp);
  return buf;
}

static int hex_digit(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

bool cur_int(Asm *a, Cursor *c, int64_t *v, bool *ok) {
  *ok = false;
  cur_skip_ws(c);
  const char *p = c->p, *start = c->p;
  bool neg = false;
  if (p < c->e && (*p == '-' || *p == '+')) neg = *p++ == '-';
  if (p >= c->e || *p < '0' || *p > '9') return false;
  *ok = true;
  uint64_t mag = 0;
  bool over = false;
  if (*p == '0' && p + 1 < c->e && (p[1] == 'x' || p[1] == 'X')) {
    p += 2;
    const char *digits = p;
    for (; p < c->e && hex_digit(*p) >= 0; p++) {
      if (mag >> 60) over = true;
      mag = mag << 4 | (uint64_t)hex_digit(*p);
    }
    if (p == digits) {
      asm_error(a, c, start, "expected hex digits after '0x'");
      *ok = false;
    }
  } else {
    for (; p < c->e && *p >= '0' && *p <= '9'; p++) {
      if (mag > (UINT64_MAX - 9) / 10) over = true;
      mag = mag * 10 + (uint64_t)(*p - '0');
    }
  }
  if (*ok && p < c->e && (is_ident_char(*p) || *p == '-')) {
    char buf[40];
    asm_error(a, c, start, "%s is not a number", cur_token(c, start, buf, sizeof buf));
    *ok = false;
    while (p < c->e && (is_ident_char(*p) || *p == '-')) p++;
  }
  if (*ok && (over || mag > (uint64_t)INT64_MAX)) {
    asm_error(a, c, start, "the number is too large");
    *ok = false;
  }
  c->p = p;
  if (over || mag > (uint64_t)INT64_MAX) mag = 0; /* reported above; negating it would overflow */
  *v = neg ? -(int64_t)mag : (int64_t)mag;
  return true;
}

/* Scans a float literal's characters: [-+](digits[.digits][e[-+]digits] | inf | nan). */
static const char *float_end(const Cursor *c, const char *p) {
  if (p < c->e && (*p == '-' || *p == '+')) p++;
  if (p < c->e && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))) {
    while (p < c->e && is_ident_char(*p)) p++;
    return p;
  }
  while (p < c->e && ((*p >= '0' && *p <= '9') || *p == '.')) p++;
  if (p < c->e && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < c->e && (*p == '-' || *p == '+')) p++;
    while (p < c->e && *p >= '0' && *p <= '9') p++;
  }
  while (p < c->e && is_ident_char(*p)) p++; /* trailing junk becomes part of the token */
  return p;
}

static bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }

/* [-+]digits[.digits][e[-+]digits], with at least one mantissa digit. */
static bool is_decimal(const char *s) {
  if (*s == '-' || *s == '+') s++;
  int m = 0;
  for (; is_digit(*s); s++) m++;
  if (*s == '.')
    for (s++; is_digit(*s); s++) m++;
  if (!m) return false;
  if (*s == 'e' || *s == 'E') {
    s++;
    if (*s == '-' || *s == '+') s++;
    if (!is_digit(*s)) return false;
    while (is_digit(*s)) s++;
  }
  return *s == 0;
}

/* Reads a decimal float literal into a float; reports what is wrong with it. */
static bool decimal_f32(Asm *a, Cursor *c, float *out) {
  const char *start = c->p, *end = float_end(c, c->p);
  char buf[80];
  size_t len = (size_t)(end - start);
  if (len == 0 || len >= sizeof buf) {
    char tok[40];
    asm_error(a, c, start, "expected a number, found %s", cur_token(c, start, tok, sizeof tok));
    c->p = end > start ? end : start + (start < c->e);
    return false;
  }
  memcpy(buf, start, len);
  buf[len] = 0;
  c->p = end;
  const char *word = buf + (buf[0] == '-' || buf[0] == '+');
  bool neg = buf[0] == '-';
  if (strcmp(word, "inf") == 0) {
    *out = neg ? -INFINITY : INFINITY;
    return true;
  }
  if (strcmp(word, "nan") == 0) {
    *out = neg ? -NAN : NAN;
    return true;
  }
  /* strtof also takes hex floats, "infinity" and the like; only plain decimals here. */
  if (!is_decimal(buf)) {
    asm_error(a, c, start, "'%s' is not a number", buf);
    return false;
  }
  float f = strtof(buf, NULL);
  if (isinf(f)) {
    asm_error(a, c, start, "%s is out of the range of f32", buf);
    return false;
  }
  *out = f;
  return true;
}

/* "0x" followed by at most `digits` hex digits: raw bits. Returns -1 when p holds no
 * 0x literal, 0 after reporting an error, 1 with the bits. */
static int hex_bits(Asm *a, Cursor *c, int digits, uint32_t *bits) {
  const char *p = c->p;
  if (!(p + 1 < c->e && p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))) return -1;
  const char *start = p;
  p += 2;
  uint64_t v = 0;
  int n = 0;
  for (; p < c->e && hex_digit(*p) >= 0; p++, n++) v = (v << 4 | (uint64_t)hex_digit(*p)) & 0xffffffffffULL;
  c->p = p;
  if (n == 0 || n > digits || (p < c->e && is_ident_char(*p))) {
    asm_error(a, c, start, "raw bits are written 0x and 1 to %d hex digits", digits);
    while (c->p < c->e && is_ident_char(*c->p)) c->p++;
    return 0;
  }
  *bits = (uint32_t)v;
  return 1;
}

bool cur_f32(Asm *a, Cursor *c, uint32_t *bits) {
  cur_skip_ws(c);
  int h = hex_bits(a, c, 8, bits);
  if (h >= 0) return h == 1;
  float f;
  if (!decimal_f32(a, c, &f)) return false;
  memcpy(bits, &f, 4);
  return true;
}

bool cur_bf16(Asm *a, Cursor *c, uint16_t *bits) {
  cur_skip_ws(c);
  uint32_t b;
  int h = hex_bits(a, c, 4, &b);
  if (h >= 0) {
    *bits = (uint16_t)b;
    return h == 1;
  }
  const char *start = c->p;
  float f;
  if (!decimal_f32(a, c, &f)) return false;
  memcpy(&b, &f, 4);
  if (isnan(f)) {
    *bits = (uint16_t)(b >> 16 | 0x40); /* stays a (quiet) NaN */
    return true;
  }
  uint32_t rounded = b + 0x7fff + (b >> 16 & 1); /* nearest, ties to even */
  if ((rounded & 0x7f800000) == 0x7f800000 && !isinf(f)) {
    asm_error(a, c, start, "%.*s is out of the range of bf16", (int)(c->p - start), start);
    return false;
  }
  *bits = (uint16_t)(rounded >> 16);
  return true;
}

bool asm_grow(void **p, int *cap, int need, size_t elem) {
  if (need <= *cap) return true;
  int n = *cap ? *cap : 8;
  while (n < need) {
    if (n > INT32_MAX / 2) return false;
    n *= 2;
  }
  void *q = realloc(*p, (size_t)n * elem);
  if (!q) return false;
  memset((char *)q + (size_t)*cap * elem, 0, (size_t)(n - *cap) * elem);
  *p = q;
  *cap = n;
  return true;
}
