/* .npy reading and writing: every supported dtype round trips, files as NumPy writes
 * them parse, every unsupported or broken file gets a sentence, and mutated files never
 * crash the reader. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "tile/npy.h"

static bool parse(const void *buf, size_t len, TileNpy *a, char *msg, size_t n) {
  TileDiag d;
  tile_diag_init(&d, NULL, "x.npy", NULL, 0);
  bool ok = tile_npy_parse(buf, len, "x.npy", a, &d);
  snprintf(msg, n, "%s", d.last);
  return ok;
}

TEST(npy, round_trip_every_dtype) {
  static const TileElem elems[] = {TILE_ELEM_F32, TILE_ELEM_F16, TILE_ELEM_I32, TILE_ELEM_I64,
                                   TILE_ELEM_I8,  TILE_ELEM_I1,  TILE_ELEM_BF16};
  for (size_t i = 0; i < sizeof elems / sizeof elems[0]; i++) {
    int64_t dims[3] = {2, 3, 5};
    int esz = tile_npy_elem_bytes(elems[i]);
    uint8_t data[2 * 3 * 5 * 8];
    for (size_t k = 0; k < sizeof data; k++) data[k] = (uint8_t)(k * 37 + i);
    if (elems[i] == TILE_ELEM_I1)
      for (size_t k = 0; k < sizeof data; k++) data[k] &= 1;
    for (int rank = 0; rank <= 3; rank++) {
      uint8_t *buf;
      size_t len;
      REQUIRE(tile_npy_encode(elems[i], rank, dims, data, &buf, &len));
      CHECK_EQ(0, (len - (size_t)esz * (rank >= 1 ? 2 : 1) * (rank >= 2 ? 3 : 1) *
                             (rank >= 3 ? 5 : 1)) % 64);
      TileNpy a;
      char msg[512];
      CHECK(parse(buf, len, &a, msg, sizeof msg));
      CHECK_EQ(elems[i], a.elem);
      CHECK_EQ(rank, a.rank);
      for (int k = 0; k < rank; k++) CHECK_EQ(dims[k], a.dims[k]);
      CHECK(memcmp(a.data, data, a.nbytes) == 0);
      tile_npy_free(&a);
      free(buf);
    }
  }
}

TEST(npy, reads_what_numpy_writes) {
  /* np.save(f, np.arange(6, dtype='<i4').reshape(2, 3)), header as NumPy pads it */
  char file[128 + 24];
  const char *h = "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }";
  memcpy(file, "\x93NUMPY\x01\x00\x76\x00", 10);
  memset(file + 10, ' ', 118);
  memcpy(file + 10, h, strlen(h));
  file[127] = '\n';
  for (int i = 0; i < 6; i++) memcpy(file + 128 + 4 * i, &i, 4);
  TileNpy a;
  char msg[512];
  REQUIRE(parse(file, 128 + 24, &a, msg, sizeof msg));
  CHECK_EQ(TILE_ELEM_I32, a.elem);
  CHECK_EQ(2, a.rank);
  CHECK_EQ(5, ((int32_t *)a.data)[5]);
  tile_npy_free(&a);
  /* void dtypes as NumPy writes them ('|V2') are bf16 too; version 2 headers */
  const char *h2 = "{\"descr\":\"|V2\",\"shape\":(4,),\"fortran_order\":False}";
  uint8_t f2[64 + 8];
  memcpy(f2, "\x93NUMPY\x02\x00\x34\x00\x00\x00", 12);
  memset(f2 + 12, ' ', 52);
  memcpy(f2 + 12, h2, strlen(h2));
  f2[63] = '\n';
  memset(f2 + 64, 0x3f, 8);
  REQUIRE(parse(f2, sizeof f2, &a, msg, sizeof msg));
  CHECK_EQ(TILE_ELEM_BF16, a.elem);
  CHECK_EQ(4, a.dims[0]);
  tile_npy_free(&a);
}

static const char *error_of(const char *header, size_t data_bytes) {
  static char msg[512];
  uint8_t buf[512];
  size_t hl = strlen(header);
  memcpy(buf, "\x93NUMPY\x01\x00", 8);
  buf[8] = (uint8_t)hl;
  buf[9] = 0;
  memcpy(buf + 10, header, hl);
  memset(buf + 10 + hl, 0, data_bytes);
  TileNpy a;
  if (parse(buf, 10 + hl + data_bytes, &a, msg, sizeof msg)) {
    tile_npy_free(&a);
    return "(parsed)";
  }
  return msg;
}

TEST(npy, clear_errors) {
  CHECK(strstr(error_of("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8),
                "dtype '>f4' is not supported") != NULL);
  CHECK(strstr(error_of("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", 8),
                "Fortran order") != NULL);
  CHECK(strstr(error_of("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 4),
                "need 8 data bytes but the file has 4") != NULL);
  CHECK(strstr(error_of("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (), }", 4),
                "structured dtypes") != NULL);
  CHECK(strstr(error_of("{'descr': '<f4', 'shape': (2,), }", 8), "lacks 'fortran_order'") != NULL);
  CHECK(strstr(error_of("{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }",
                        4),
                "more than 8 dimensions") != NULL);
  CHECK(strstr(error_of("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", 4),
                "too large") != NULL);
  char msg[512];
  TileNpy a;
  CHECK(!parse("PK\x03\x04 not npy", 16, &a, msg, sizeof msg));
  CHECK(strstr(msg, "not a .npy file") != NULL);
  CHECK(!parse("\x93NUMPY\x01\x00\xff\x00{", 11, &a, msg, sizeof msg));
  CHECK(strstr(msg, "runs past the file") != NULL);
}

TEST(npy, mutated_files_never_crash) {
  int64_t dims[2] = {3, 4};
  float data[12] = {0};
  uint8_t *good;
  size_t len;
  REQUIRE(tile_npy_encode(TILE_ELEM_F32, 2, dims, data, &good, &len));
  uint8_t *buf = malloc(len);
  uint32_t seed = 7;
  int parsed = 0;
  for (int iter = 0; iter < 20000; iter++) {
    memcpy(buf, good, len);
    int flips = 1 + iter % 4;
    for (int k = 0; k < flips; k++) {
      seed = seed * 1103515245u + 12345u;
      size_t at = (seed >> 8) % 128;
      seed = seed * 1103515245u + 12345u;
      buf[at] = (uint8_t)(seed >> 16);
    }
    seed = seed * 1103515245u + 12345u;
    size_t n = iter % 3 == 0 ? (seed >> 8) % (len + 1) : len;
    TileNpy a;
    char msg[512];
    if (parse(buf, n, &a, msg, sizeof msg)) {
      parsed++;
      CHECK(a.nbytes == n - (len - sizeof data) || a.nbytes <= n);
      tile_npy_free(&a);
    } else {
      CHECK(msg[0] != '\0');
    }
  }
  CHECK(parsed > 0);
  free(buf);
  free(good);
}
