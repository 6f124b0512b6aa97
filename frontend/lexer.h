/* The .tile lexer: turns bytes into tokens with 1-based line:col positions (columns
 * count bytes). It works on any bytes of a given length: the input need not be
 * NUL-terminated, and it never reads past its end. Bad bytes become TOK_ERROR
 * tokens that carry what went wrong (lex_error_message), so the parser reports
 * them with its own error recovery.
 *
 * Shapes (`8x128xbf16` inside `tensor<...>`) cannot be split by the ordinary rules
 * (`x128xbf16` reads as one identifier), so the parser switches to lex_shape() right
 * after a `<` that opens a shape and back to lex_next() after its `>`. */
#ifndef TILE_FRONTEND_LEXER_H
#define TILE_FRONTEND_LEXER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum TokKind {
  TOK_EOF,
  TOK_ERROR,    /* a byte or string the lexer rejects; see Token.err */
  TOK_IDENT,    /* [A-Za-z_][A-Za-z0-9_.]*  (op names, keywords, types, axes) */
  TOK_VALUE,    /* %name  (text includes the '%') */
  TOK_SYMBOL,   /* @name  (text includes the '@') */
  TOK_INT,      /* -?[0-9]+ */
  TOK_FLOAT,    /* -?[0-9]+.[0-9]*(e..)?, -?[0-9]+e.., -inf, -nan */
                /* (a number must not run straight into a name character: 12abc is
                 * one TOK_ERROR, not 12 and abc) */
  TOK_STRING,   /* "..." with the quotes; decode with lex_string_decode */
  TOK_LBRACE,   /* { */
  TOK_RBRACE,   /* } */
  TOK_LPAREN,   /* ( */
  TOK_RPAREN,   /* ) */
  TOK_LBRACKET, /* [ */
  TOK_RBRACKET, /* ] */
  TOK_LT,       /* < */
  TOK_GT,       /* > */
  TOK_COMMA,    /* , */
  TOK_EQ,       /* = */
  TOK_COLON,    /* : */
  TOK_ARROW,    /* -> */
  TOK_MINUS,    /* -  (the NONE attribute) */
  TOK_X,        /* x between dimensions (shape mode only) */
  TOK_OTHER,    /* any other byte inside a shape (shape mode only) */
} TokKind;

typedef enum LexError {
  LEXERR_NONE,
  LEXERR_CHAR,          /* a byte (or UTF-8 character) no token starts with */
  LEXERR_UNTERMINATED,  /* a string with no closing quote on its line */
  LEXERR_ESCAPE,        /* a bad escape in a string */
  LEXERR_STRING_NUL,    /* \00 in a string: names and strings are C strings */
  LEXERR_STRING_CTRL,   /* a raw control byte in a string */
  LEXERR_EMPTY_NAME,    /* '%' or '@' with no name after it */
  LEXERR_NUMBER,        /* a number run into letters, digits or dots (12abc, 1.5.3, 2e) */
} LexError;

typedef struct Token {
  uint8_t kind; /* TokKind */
  uint8_t err;  /* LexError, for TOK_ERROR */
  bool bol;     /* first token on its line */
  const char *text;
  size_t len;
  int line, col; /* where the token (for string errors: the bad byte) starts */
  size_t err_off; /* for TOK_ERROR: offset in text of the byte at fault */
} Token;

typedef struct Lexer {
  const char *src;
  size_t len, pos;
  int line, col;
  bool bol; /* no token yet on the current line */
} Lexer;

void lex_init(Lexer *lx, const char *src, size_t len);
Token lex_next(Lexer *lx);
/* One token of a shape, right after its '<': a dimension (TOK_INT, digits only),
 * 'x' (TOK_X, only when after_dim), an element type (TOK_IDENT of [A-Za-z0-9_]),
 * '>' (TOK_GT), end of file, or a single unexpected byte (TOK_OTHER, or TOK_ERROR
 * for bytes outside ASCII). Shapes hold no whitespace. */
Token lex_shape(Lexer *lx, bool after_dim);

/* The message for a TOK_ERROR token ("unexpected character U+201C"). */
void lex_error_message(const Token *t, char *buf, size_t size);
/* The token as a user sees it in "got ..." messages: 'text' (escaped, shortened)
 * or "end of file". */
void lex_describe(const Token *t, char *buf, size_t size);
/* Decodes a valid TOK_STRING into out (room for t->len bytes); returns the length.
 * The result holds no NUL (the lexer rejects \00). */
size_t lex_string_decode(const Token *t, char *out);
/* True when the token is the identifier kw. */
bool lex_is_ident(const Token *t, const char *kw);

#endif
