/* .npy reading and writing (include/tile/npy.h).
 *
 * The format: the magic "\x93NUMPY", a version byte pair, the header length (2 bytes in
 * version 1, 4 in versions 2 and 3), then a Python dict literal padded with spaces and a
 * newline, then the raw data. The header is parsed by a small tokenizer that accepts
 * exactly what a dict literal of the three keys can be (strings in either quote, True
 * and False, tuples of integers, whitespace, trailing commas) and rejects anything else
 * with a sentence. Every read is bounds-checked against the input; sizes are computed
 * with overflow checks before anything is allocated. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tile/npy.h"

static const struct {
  TileElem elem;
  const char *write;       /* the dtype written */
  const char *read[3];     /* dtypes accepted */
} dtypes[] = {
    {TILE_ELEM_F32, "<f4", {"<f4"}},
    {TILE_ELEM_F16, "<f2", {"<f2"}},
    {TILE_ELEM_I32, "<i4", {"<i4"}},
    {TILE_ELEM_I64, "<i8", {"<i8"}},
    {TILE_ELEM_I8, "|i1", {"|i1", "<i1"}},
    {TILE_ELEM_I1, "|b1", {"|b1"}},
    {TILE_ELEM_BF16, "<V2", {"<V2", "|V2"}},
    {TILE_ELEM_F8E4M3FN, "|V1", {"|V1", "<V1"}},
    {TILE_ELEM_F8E5M2, "|V1", {NULL}},
};
enum { NDTYPES = sizeof dtypes / sizeof dtypes[0] };

int tile_npy_elem_bytes(TileElem e) {
  int bits = tile_elem_bits(e);
  return bits <= 0 ? 0 : (bits + 7) / 8;
}

const char *tile_npy_dtype(TileElem e) {
  for (int i = 0; i < NDTYPES; i++)
    if (dtypes[i].elem == e) return dtypes[i].write;
  return NULL;
}

void tile_npy_free(TileNpy *a) {
  free(a->data);
  memset(a, 0, sizeof *a);
}

/* ---- the header ---- */

typedef struct Lex {
  const char *p, *end;
} Lex;

static void skip_ws(Lex *l) {
  while (l->p < l->end && (*l->p == ' ' || *l->p == '\t' || *l->p == '\n' || *l->p == '\r'))
    l->p++;
}

static bool eat(Lex *l, char c) {
  skip_ws(l);
  if (l->p < l->end && *l->p == c) {
    l->p++;
    return true;
  }
  return false;
}

/* A quoted string into buf; false if malformed or too long. */
static bool read_string(Lex *l, char *buf, size_t n) {
  skip_ws(l);
  if (l->p >= l->end || (*l->p != '\'' && *l->p != '"')) return false;
  char q = *l->p++;
  size_t k = 0;
  while (l->p < l->end && *l->p != q) {
    if (*l->p == '\\' || k + 1 >= n) return false;
    buf[k++] = *l->p++;
  }
  if (l->p >= l->end) return false;
  l->p++;
  buf[k] = '\0';
  return true;
}

static bool read_word(Lex *l, const char *w) {
  skip_ws(l);
  size_t n = strlen(w);
  if ((size_t)(l->end - l->p) < n || memcmp(l->p, w, n) != 0) return false;
  l->p += n;
  return true;
}

static bool read_shape(Lex *l, TileNpy *a, char *why, size_t wn) {
  if (!eat(l, '(')) return snprintf(why, wn, "'shape' is not a tuple"), false;
  a->rank = 0;
  for (;;) {
    if (eat(l, ')')) return true;
    skip_ws(l);
    int64_t v = 0;
    int digits = 0;
    while (l->p < l->end && *l->p >= '0' && *l->p <= '9') {
      if (v > (INT64_MAX - 9) / 10) return snprintf(why, wn, "a dimension is too large"), false;
      v = v * 10 + (*l->p++ - '0');
      digits++;
    }
    if (!digits) return snprintf(why, wn, "'shape' holds something that is not a size"), false;
    if (l->p < l->end && *l->p == 'L') l->p++; /* Python 2 longs */
    if (a->rank == TILE_MAX_RANK)
      return snprintf(why, wn, "more than %d dimensions", TILE_MAX_RANK), false;
    a->dims[a->rank++] = v;
    if (eat(l, ')')) return true;
    if (!eat(l, ',')) return snprintf(why, wn, "'shape' is not a tuple of sizes"), false;
  }
}

static bool parse_header(const char *h, size_t n, char *descr, size_t dn, bool *fortran,
                         TileNpy *a, char *why, size_t wn) {
  Lex l = {h, h + n};
  bool seen[3] = {false, false, false};
  if (!eat(&l, '{')) return snprintf(why, wn, "the header is not a dict"), false;
  for (;;) {
    if (eat(&l, '}')) break;
    char key[32];
    if (!read_string(&l, key, sizeof key) || !eat(&l, ':'))
      return snprintf(why, wn, "the header dict is malformed"), false;
    if (strcmp(key, "descr") == 0 && !seen[0]) {
      if (!read_string(&l, descr, dn))
        return snprintf(why, wn, "'descr' is not a simple dtype string (structured dtypes are "
                                 "not supported)"), false;
      seen[0] = true;
    } else if (strcmp(key, "fortran_order") == 0 && !seen[1]) {
      if (read_word(&l, "True")) *fortran = true;
      else if (read_word(&l, "False")) *fortran = false;
      else return snprintf(why, wn, "'fortran_order' is not True or False"), false;
      seen[1] = true;
    } else if (strcmp(key, "shape") == 0 && !seen[2]) {
      if (!read_shape(&l, a, why, wn)) return false;
      seen[2] = true;
    } else {
      return snprintf(why, wn, "the header has an unknown or repeated key '%s'", key), false;
    }
    if (eat(&l, '}')) break;
    if (!eat(&l, ',')) return snprintf(why, wn, "the header dict is malformed"), false;
  }
  skip_ws(&l);
  if (l.p != l.end) return snprintf(why, wn, "the header has text after its dict"), false;
  if (!seen[0] || !seen[1] || !seen[2])
    return snprintf(why, wn, "the header lacks '%s'",
                    !seen[0] ? "descr" : !seen[1] ? "fortran_order" : "shape"), false;
  return true;
}

bool tile_npy_parse(const uint8_t *buf, size_t len, const char *what, TileNpy *out, TileDiag *d) {
  memset(out, 0, sizeof *out);
  if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0)
    return tile_error(d, (TileLoc){0}, "%s: not a .npy file (no \\x93NUMPY magic)", what);
  int major = buf[6];
  size_t hlen, off;
  if (major == 1) {
    hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
    off = 10;
  } else if (major == 2 || major == 3) {
    if (len < 12) return tile_error(d, (TileLoc){0}, "%s: the .npy header is truncated", what);
    hlen = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
    off = 12;
  } else {
    return tile_error(d, (TileLoc){0}, "%s: .npy format version %d.%d is not supported", what,
                      major, buf[7]);
  }
  if (hlen > len - off)
    return tile_error(d, (TileLoc){0}, "%s: the .npy header (%zu bytes) runs past the file", what,
                      hlen);
  char descr[32], why[160] = "";
  bool fortran = false;
  if (!parse_header((const char *)buf + off, hlen, descr, sizeof descr, &fortran, out, why,
                    sizeof why))
    return tile_error(d, (TileLoc){0}, "%s: %s", what, why);
  if (fortran)
    return tile_error(d, (TileLoc){0},
                      "%s: the array is in Fortran order; save it in C order "
                      "(numpy.ascontiguousarray)",
                      what);
  out->elem = TILE_ELEM_NONE;
  for (int i = 0; i < NDTYPES && out->elem == TILE_ELEM_NONE; i++)
    for (int k = 0; k < 3 && dtypes[i].read[k]; k++)
      if (strcmp(descr, dtypes[i].read[k]) == 0) out->elem = dtypes[i].elem;
  if (out->elem == TILE_ELEM_NONE)
    return tile_error(d, (TileLoc){0},
                      "%s: dtype '%s' is not supported (little-endian f4, f2, i4, i8, i1, b1, "
                      "and V2 for bf16)",
                      what, descr);
  size_t esz = (size_t)tile_npy_elem_bytes(out->elem), n = esz;
  for (int k = 0; k < out->rank; k++) {
    if (out->dims[k] != 0 && n > SIZE_MAX / (size_t)out->dims[k])
      return tile_error(d, (TileLoc){0}, "%s: the shape is too large", what);
    n *= (size_t)out->dims[k];
  }
  size_t data = off + hlen;
  if (len - data != n)
    return tile_error(d, (TileLoc){0},
                      "%s: the shape and dtype need %zu data bytes but the file has %zu", what, n,
                      len - data);
  out->nbytes = n;
  out->data = malloc(n ? n : 1);
  if (!out->data) return tile_error(d, (TileLoc){0}, "%s: out of memory", what);
  memcpy(out->data, buf + data, n);
  return true;
}

bool tile_npy_read_file(const char *path, TileNpy *out, TileDiag *d) {
  memset(out, 0, sizeof *out);
  FILE *f = fopen(path, "rb");
  if (!f) return tile_error(d, (TileLoc){0}, "%s: cannot open: %s", path, strerror(errno));
  uint8_t *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len == cap) {
      size_t nc = cap ? cap * 2 : 1 << 16;
      uint8_t *nb = realloc(buf, nc);
      if (!nb) {
        free(buf);
        fclose(f);
        return tile_error(d, (TileLoc){0}, "%s: out of memory", path);
      }
      buf = nb;
      cap = nc;
    }
    size_t k = fread(buf + len, 1, cap - len, f);
    len += k;
    if (k == 0) break;
  }
  bool err = ferror(f);
  fclose(f);
  if (err) {
    free(buf);
    return tile_error(d, (TileLoc){0}, "%s: read error", path);
  }
  bool ok = tile_npy_parse(buf, len, path, out, d);
  free(buf);
  return ok;
}

bool tile_npy_encode(TileElem elem, int rank, const int64_t *dims, const void *data,
                     uint8_t **out, size_t *len) {
  const char *dt = tile_npy_dtype(elem);
  if (!dt || rank < 0 || rank > TILE_MAX_RANK) return false;
  char shape[TILE_MAX_RANK * 24 + 8];
  size_t k = 0;
  size_t n = (size_t)tile_npy_elem_bytes(elem);
  shape[k++] = '(';
  for (int i = 0; i < rank; i++) {
    if (dims[i] < 0) return false;
    k += (size_t)snprintf(shape + k, sizeof shape - k, "%lld,%s", (long long)dims[i],
                          i + 1 < rank ? " " : "");
    n *= (size_t)dims[i];
  }
  if (rank > 1) k--; /* "(2, 3)" but "(5,)" */
  snprintf(shape + k, sizeof shape - k, ")");
  char dict[sizeof shape + 96];
  int dn = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                    dt, shape);
  /* magic + version + length + dict + padding + '\n', a multiple of 64 */
  size_t pre = dn + 1 + 10 > 65535 ? 12 : 10;
  size_t total_hdr = (pre + (size_t)dn + 1 + 63) / 64 * 64;
  size_t hlen = total_hdr - pre;
  uint8_t *b = malloc(total_hdr + n);
  if (!b) return false;
  memcpy(b, "\x93NUMPY", 6);
  b[6] = pre == 10 ? 1 : 2;
  b[7] = 0;
  for (size_t i = 0; i < pre - 8; i++) b[8 + i] = (uint8_t)(hlen >> (8 * i));
  memcpy(b + pre, dict, (size_t)dn);
  memset(b + pre + dn, ' ', hlen - (size_t)dn - 1);
  b[total_hdr - 1] = '\n';
  if (n) memcpy(b + total_hdr, data, n);
  *out = b;
  *len = total_hdr + n;
  return true;
}

bool tile_npy_write_file(const char *path, TileElem elem, int rank, const int64_t *dims,
                         const void *data, TileDiag *d) {
  uint8_t *buf;
  size_t len;
  if (!tile_npy_encode(elem, rank, dims, data, &buf, &len))
    return tile_error(d, (TileLoc){0}, "%s: .npy has no dtype for %s", path,
                      tile_elem_name(elem));
  FILE *f = fopen(path, "wb");
  if (!f) {
    free(buf);
    return tile_error(d, (TileLoc){0}, "%s: cannot create: %s", path, strerror(errno));
  }
  bool ok = fwrite(buf, 1, len, f) == len;
  ok &= fclose(f) == 0;
  free(buf);
  if (!ok) return tile_error(d, (TileLoc){0}, "%s: write error", path);
  return true;
}
