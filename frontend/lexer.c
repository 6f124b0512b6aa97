/* The .tile lexer (see lexer.h). Every read checks pos < len, so the input may end
 * anywhere (mid-string, mid-number) and may hold NUL bytes. Positions saturate at
 * INT_MAX instead of overflowing on absurd inputs. */
#include "lexer.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

void lex_init(Lexer *lx, const char *src, size_t len) {
  lx->src = src;
  lx->len = len;
  lx->pos = 0;
  lx->line = 1;
  lx->col = 1;
  lx->bol = true;
}

static int peek(const Lexer *lx, size_t ahead) {
  return lx->pos + ahead < lx->len ? (unsigned char)lx->src[lx->pos + ahead] : -1;
}

static void advance(Lexer *lx) {
  if (lx->pos >= lx->len) return;
  if (lx->src[lx->pos] == '\n') {
    if (lx->line < INT_MAX) lx->line++;
    lx->col = 1;
    lx->bol = true;
  } else if (lx->col < INT_MAX) {
    lx->col++;
  }
  lx->pos++;
}

static bool is_digit(int c) { return c >= '0' && c <= '9'; }
static bool is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_name_char(int c) { return is_alpha(c) || is_digit(c) || c == '.'; }
static int hex_value(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Starts a token at the current position. */
static Token start(const Lexer *lx, TokKind kind) {
  return (Token){.kind = (uint8_t)kind, .bol = lx->bol, .text = lx->src + lx->pos, .line = lx->line,
                 .col = lx->col};
}

static Token finish(Lexer *lx, Token t) {
  t.len = (size_t)(lx->src + lx->pos - t.text);
  lx->bol = false;
  return t;
}

static void skip_space_and_comments(Lexer *lx) {
  for (;;) {
    int c = peek(lx, 0);
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      advance(lx);
    } else if (c == '/' && peek(lx, 1) == '/') {
      while (lx->pos < lx->len && lx->src[lx->pos] != '\n') advance(lx);
    } else {
      return;
    }
  }
}

/* Length of the valid UTF-8 sequence at pos (2 to 4 bytes), or 0 when the bytes
 * there are not one. Overlong forms and surrogates are not valid. */
static int utf8_len(const Lexer *lx) {
  int c = peek(lx, 0), n, lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  for (int i = 1; i < n; i++) {
    int b = peek(lx, (size_t)i);
    if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xBF)) return 0;
  }
  return n;
}

/* A byte no token starts with: one error token for it, or for the whole UTF-8
 * character it begins, so "“" is one error, not three. */
static Token bad_char(Lexer *lx) {
  Token t = start(lx, TOK_ERROR);
  t.err = LEXERR_CHAR;
  int n = utf8_len(lx);
  if (n == 0) n = 1;
  for (int i = 0; i < n; i++) advance(lx);
  return finish(lx, t);
}

static Token lex_number(Lexer *lx, Token t) {
  if (peek(lx, 0) == '-') advance(lx);
  while (is_digit(peek(lx, 0))) advance(lx);
  bool is_float = false;
  if (peek(lx, 0) == '.') {
    is_float = true;
    advance(lx);
    while (is_digit(peek(lx, 0))) advance(lx);
  }
  int e = peek(lx, 0);
  if (e == 'e' || e == 'E') {
    int s = peek(lx, 1);
    size_t digits_at = (s == '+' || s == '-') ? 2 : 1;
    if (is_digit(peek(lx, digits_at))) {
      is_float = true;
      for (size_t i = 0; i < digits_at; i++) advance(lx);
      while (is_digit(peek(lx, 0))) advance(lx);
    }
  }
  t.kind = is_float ? TOK_FLOAT : TOK_INT;
  /* A number glued to a name character (12abc, 1.5.3, 2e) is one bad token: split
   * into a number and a name, it would be reported as a puzzling error about
   * whatever follows the digits. */
  if (is_name_char(peek(lx, 0))) {
    while (is_name_char(peek(lx, 0))) advance(lx);
    t.kind = TOK_ERROR;
    t.err = LEXERR_NUMBER;
  }
  return finish(lx, t);
}

/* A string: validates escapes and bytes here so the parser can decode blindly. On
 * an error the token still runs to the closing quote (or the end of the line), so
 * the rest of the string is not lexed as code; its position is the byte at fault. */
static Token lex_string(Lexer *lx, Token t) {
  t.kind = TOK_STRING;
  advance(lx); /* opening quote */
  size_t bad_at = 0;
  int bad_line = 0, bad_col = 0;
  uint8_t err = LEXERR_NONE;
  for (;;) {
    int c = peek(lx, 0);
    if (c < 0 || c == '\n') {
      t.kind = TOK_ERROR;
      t.err = LEXERR_UNTERMINATED;
      t.err_off = 0;
      return finish(lx, t);
    }
    if (c == '"') {
      advance(lx);
      break;
    }
    uint8_t e = LEXERR_NONE;
    size_t at = lx->pos;
    int line = lx->line, col = lx->col;
    if (c == '\\') {
      int d = peek(lx, 1);
      if (d == '\\' || d == '"' || d == 'n' || d == 't') {
        advance(lx);
        advance(lx);
      } else if (hex_value(d) >= 0 && hex_value(peek(lx, 2)) >= 0) {
        if (hex_value(d) == 0 && hex_value(peek(lx, 2)) == 0) e = LEXERR_STRING_NUL;
        advance(lx);
        advance(lx);
        advance(lx);
      } else {
        e = LEXERR_ESCAPE;
        advance(lx);
      }
    } else {
      if (c < 0x20 && c != '\t') e = LEXERR_STRING_CTRL;
      advance(lx);
    }
    if (e != LEXERR_NONE && err == LEXERR_NONE) {
      err = e;
      bad_at = at;
      bad_line = line;
      bad_col = col;
    }
  }
  if (err != LEXERR_NONE) {
    t.kind = TOK_ERROR;
    t.err = err;
    t.err_off = (size_t)(lx->src + bad_at - t.text);
    t = finish(lx, t);
    t.line = bad_line;
    t.col = bad_col;
    return t;
  }
  return finish(lx, t);
}

static Token punct(Lexer *lx, TokKind kind, int nbytes) {
  Token t = start(lx, kind);
  for (int i = 0; i < nbytes; i++) advance(lx);
  return finish(lx, t);
}

/* True when the word w (and no longer name) stands `ahead` bytes on. */
static bool starts_word(const Lexer *lx, size_t ahead, const char *w) {
  size_t n = strlen(w);
  for (size_t i = 0; i < n; i++)
    if (peek(lx, ahead + i) != (unsigned char)w[i]) return false;
  return !is_name_char(peek(lx, ahead + n));
}

Token lex_next(Lexer *lx) {
  skip_space_and_comments(lx);
  Token t = start(lx, TOK_EOF);
  int c = peek(lx, 0);
  if (c < 0) return t; /* EOF: empty text at the end */
  if (is_alpha(c)) {
    while (is_name_char(peek(lx, 0))) advance(lx);
    t.kind = TOK_IDENT;
    return finish(lx, t);
  }
  if (c == '%' || c == '@') {
    advance(lx);
    if (!is_name_char(peek(lx, 0))) {
      t.kind = TOK_ERROR;
      t.err = LEXERR_EMPTY_NAME;
      return finish(lx, t);
    }
    while (is_name_char(peek(lx, 0))) advance(lx);
    t.kind = c == '%' ? TOK_VALUE : TOK_SYMBOL;
    return finish(lx, t);
  }
  if (is_digit(c) || (c == '-' && is_digit(peek(lx, 1)))) return lex_number(lx, t);
  if (c == '-' && (starts_word(lx, 1, "inf") || starts_word(lx, 1, "nan"))) {
    t.kind = TOK_FLOAT;
    for (int i = 0; i < 4; i++) advance(lx);
    return finish(lx, t);
  }
  if (c == '"') return lex_string(lx, t);
  switch (c) {
  case '{': return punct(lx, TOK_LBRACE, 1);
  case '}': return punct(lx, TOK_RBRACE, 1);
  case '(': return punct(lx, TOK_LPAREN, 1);
  case ')': return punct(lx, TOK_RPAREN, 1);
  case '[': return punct(lx, TOK_LBRACKET, 1);
  case ']': return punct(lx, TOK_RBRACKET, 1);
  case '<': return punct(lx, TOK_LT, 1);
  case '>': return punct(lx, TOK_GT, 1);
  case ',': return punct(lx, TOK_COMMA, 1);
  case '=': return punct(lx, TOK_EQ, 1);
  case ':': return punct(lx, TOK_COLON, 1);
  case '-': return peek(lx, 1) == '>' ? punct(lx, TOK_ARROW, 2) : punct(lx, TOK_MINUS, 1);
  default: return bad_char(lx);
  }
}

Token lex_shape(Lexer *lx, bool after_dim) {
  Token t = start(lx, TOK_EOF);
  t.bol = false;
  int c = peek(lx, 0);
  if (c < 0) return t;
  if (after_dim && c == 'x') {
    t.kind = TOK_X;
    advance(lx);
  } else if (is_digit(c)) {
    t.kind = TOK_INT;
    while (is_digit(peek(lx, 0))) advance(lx);
  } else if (is_alpha(c)) {
    t.kind = TOK_IDENT;
    while (is_alpha(peek(lx, 0)) || is_digit(peek(lx, 0))) advance(lx);
  } else if (c == '>') {
    t.kind = TOK_GT;
    advance(lx);
  } else if (c >= 0x80) {
    return bad_char(lx);
  } else {
    t.kind = TOK_OTHER;
    advance(lx);
  }
  return finish(lx, t);
}

bool lex_is_ident(const Token *t, const char *kw) {
  size_t n = strlen(kw);
  return t->kind == TOK_IDENT && t->len == n && memcmp(t->text, kw, n) == 0;
}

/* Appends byte c to buf as a user can read it: itself if printable, else an escape. */
static size_t put_byte(char *buf, size_t size, size_t k, unsigned char c) {
  char tmp[8];
  if (c == '\n') snprintf(tmp, sizeof tmp, "\\n");
  else if (c == '\t') snprintf(tmp, sizeof tmp, "\\t");
  else if (c < 0x20 || c >= 0x7f) snprintf(tmp, sizeof tmp, "\\x%02x", c);
  else snprintf(tmp, sizeof tmp, "%c", c);
  size_t n = strlen(tmp);
  if (k + n < size) {
    memcpy(buf + k, tmp, n + 1);
    k += n;
  }
  return k;
}

enum { DESCRIBE_MAX = 32 }; /* source bytes shown of a long token */

void lex_describe(const Token *t, char *buf, size_t size) {
  if (size == 0) return;
  if (t->kind == TOK_EOF) {
    snprintf(buf, size, "end of file");
    return;
  }
  size_t k = 0;
  buf[0] = 0;
  k = put_byte(buf, size, k, '\'');
  size_t n = t->len < DESCRIBE_MAX ? t->len : DESCRIBE_MAX;
  for (size_t i = 0; i < n; i++) k = put_byte(buf, size, k, (unsigned char)t->text[i]);
  if (n < t->len && k + 3 < size) {
    memcpy(buf + k, "...", 4);
    k += 3;
  }
  put_byte(buf, size, k, '\'');
}

/* The code point of a valid UTF-8 sequence of n bytes. */
static unsigned utf8_decode(const unsigned char *s, size_t n) {
  static const unsigned lead_mask[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
  unsigned cp = s[0] & lead_mask[n];
  for (size_t i = 1; i < n; i++) cp = (cp << 6) | (s[i] & 0x3F);
  return cp;
}

void lex_error_message(const Token *t, char *buf, size_t size) {
  char ch[16];
  const unsigned char *bad = (const unsigned char *)t->text + t->err_off;
  switch (t->err) {
  case LEXERR_CHAR:
    if (t->len > 1) {
      snprintf(buf, size, "unexpected character U+%04X", utf8_decode(bad, t->len));
    } else {
      put_byte(ch, sizeof ch, 0, *bad);
      snprintf(buf, size, "unexpected character '%s'", ch);
    }
    return;
  case LEXERR_UNTERMINATED: snprintf(buf, size, "unterminated string"); return;
  case LEXERR_ESCAPE:
    snprintf(buf, size, "invalid escape in string (use \\\\, \\\", \\n, \\t or \\XX)");
    return;
  case LEXERR_STRING_NUL: snprintf(buf, size, "strings cannot hold a NUL character (\\00)"); return;
  case LEXERR_STRING_CTRL:
    put_byte(ch, sizeof ch, 0, *bad);
    snprintf(buf, size, "unexpected character '%s' in string (escape it as \\XX)", ch);
    return;
  case LEXERR_EMPTY_NAME:
    snprintf(buf, size, "expected a name after '%c'", t->text[0]);
    return;
  case LEXERR_NUMBER: {
    char shown[DESCRIBE_MAX * 4 + 8];
    lex_describe(t, shown, sizeof shown);
    snprintf(buf, size, "malformed number %s", shown);
    return;
  }
  default: snprintf(buf, size, "invalid token"); return;
  }
}

size_t lex_string_decode(const Token *t, char *out) {
  size_t k = 0;
  /* Between the quotes; the lexer has checked every escape. */
  for (size_t i = 1; i + 1 < t->len; i++) {
    char c = t->text[i];
    if (c != '\\') {
      out[k++] = c;
      continue;
    }
    char d = t->text[++i];
    switch (d) {
    case 'n': out[k++] = '\n'; break;
    case 't': out[k++] = '\t'; break;
    case '\\': out[k++] = '\\'; break;
    case '"': out[k++] = '"'; break;
    default:
      out[k++] = (char)(hex_value(d) * 16 + hex_value(t->text[i + 1]));
      i++;
      break;
    }
  }
  return k;
}
