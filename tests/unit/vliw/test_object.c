/* The object container: write and read back, and every class of damaged or hostile
 * input rejected with its sentence (never a crash, never a huge allocation). Tampered
 * bytes are resealed with a fresh checksum so the structural checks behind it are
 * reached. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "tile/object.h"

/* Offsets in the object made by make(): header 32, target section 16 + 64, then the
 * code section header at 112 and its first entry at 128 (chip, nbundles, words). */
enum { CODE_SEC = 112, CODE_ENTRY = 128, FIRST_WORD = 136, BUNDLE_BYTES = TILE_BUNDLE_SLOTS * 8 };

static TileBundle bundles_all[3], bundles_chip2[1];
static uint8_t data_bytes[6] = {1, 2, 3, 4, 5, 6};

static void make(TileObject *o) {
  static TileObjCode code[2];
  static TileObjData data[1];
  static TileObjSymbol syms[2];
  memset(o, 0, sizeof *o);
  memset(bundles_all, 0, sizeof bundles_all);
  memset(bundles_chip2, 0, sizeof bundles_chip2);
  snprintf(o->target, sizeof o->target, "tiny");
  bundles_all[0].slot[0] = (TileMInst){.op = TILE_MOP_LI, .d = 1, .imm = -5};
  bundles_all[0].slot[3] = (TileMInst){.op = TILE_MOP_VADDF, .d = 2, .a = 3, .b = 4};
  const int br = tile_slot_first(TILE_SLOT_BRANCH);
  bundles_all[1].slot[br] = (TileMInst){.op = TILE_MOP_BNZ, .a = 1, .imm = 0};
  bundles_all[2].slot[br] = (TileMInst){.op = TILE_MOP_HALT};
  bundles_chip2[0].slot[br] = (TileMInst){.op = TILE_MOP_HALT};
  code[0] = (TileObjCode){TILE_OBJ_ALL_CHIPS, 3, bundles_all};
  code[1] = (TileObjCode){2, 1, bundles_chip2};
  data[0] = (TileObjData){.chip = 1, .space = TILE_SPACE_VMEM, .addr = 64, .size = 6, .bytes = data_bytes};
  memset(syms, 0, sizeof syms);
  snprintf(syms[0].name, sizeof syms[0].name, "x");
  syms[0].kind = TILE_BIND_IN;
  syms[0].space = TILE_SPACE_HBM;
  syms[0].elem = TILE_ELEM_F32;
  syms[0].rank = 2;
  syms[0].dims[0] = 8;
  syms[0].dims[1] = 128;
  snprintf(syms[1].name, sizeof syms[1].name, "y.out");
  syms[1].kind = TILE_BIND_OUT;
  syms[1].space = TILE_SPACE_VMEM;
  syms[1].elem = TILE_ELEM_BF16;
  syms[1].per_chip = true;
  syms[1].addr = 4096;
  o->ncode = 2;
  o->code = code;
  o->ndata = 1;
  o->data = data;
  o->nsyms = 2;
  o->syms = syms;
}

static uint8_t *bytes_of(size_t *len) {
  TileObject o;
  make(&o);
  uint8_t *b;
  if (!tile_object_write(&o, &b, len)) return NULL;
  return b;
}

static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void reseal(uint8_t *b, size_t len) { put64(b + 24, tile_object_checksum(b + 32, len - 32)); }

/* Reads; the read must fail with exactly `want` (or, with a trailing '*', a message
 * starting with it). */
static void expect_reject(const uint8_t *b, size_t len, const char *want) {
  TileObject o;
  TileDiag d;
  tile_diag_init(&d, NULL, "x.tobj", NULL, 0);
  bool ok = tile_object_read(b, len, &o, &d);
  CHECK(!ok);
  CHECK_EQ(0, o.ncode);
  CHECK(o.code == NULL);
  size_t n = strlen(want);
  if (n && want[n - 1] == '*') {
    if (!CHECK(strncmp(d.last, want, n - 1) == 0)) CHECK_STREQ(want, d.last);
  } else {
    CHECK_STREQ(want, d.last);
  }
}

TEST(object, round_trip) {
  size_t len;
  uint8_t *b = bytes_of(&len);
  REQUIRE(b != NULL);
  CHECK(memcmp(b, "TILEOBJ", 8) == 0);
  TileObject o, ref;
  make(&ref);
  TileDiag d;
  tile_diag_init(&d, stderr, "x.tobj", NULL, 0);
  REQUIRE(tile_object_read(b, len, &o, &d));
  CHECK_STREQ("tiny", o.target);
  REQUIRE(o.ncode == 2 && o.ndata == 1 && o.nsyms == 2);
  CHECK_EQ(3, o.code[0].nbundles);
  for (int k = 0; k < 3; k++)
    for (int w = 0; w < TILE_BUNDLE_SLOTS; w++) {
      TileMInst x = o.code[0].bundles[k].slot[w], y = ref.code[0].bundles[k].slot[w];
      CHECK(x.op == y.op && x.d == y.d && x.a == y.a && x.b == y.b && x.c == y.c && x.imm == y.imm);
    }
  CHECK_EQ(2, o.code[1].chip);
  CHECK_EQ(6, o.data[0].size);
  CHECK(memcmp(o.data[0].bytes, data_bytes, 6) == 0);
  CHECK_STREQ("y.out", o.syms[1].name);
  CHECK(o.syms[1].per_chip);
  CHECK_EQ(0, o.syms[1].rank);
  /* Canonical: writing what was read gives the same bytes. */
  uint8_t *again;
  size_t again_len;
  REQUIRE(tile_object_write(&o, &again, &again_len));
  CHECK_EQ(len, again_len);
  CHECK(memcmp(b, again, len) == 0);
  /* Lookups */
  CHECK(tile_object_code_for(&o, 2) == &o.code[1]);
  CHECK(tile_object_code_for(&o, 0) == &o.code[0]);
  CHECK(tile_object_find_symbol(&o, "x") == &o.syms[0]);
  CHECK(tile_object_find_symbol(&o, "z") == NULL);
  tile_object_free(&o);
  CHECK_EQ(0, o.ncode);
  free(again);
  free(b);
}

TEST(object, header_damage) {
  size_t len;
  uint8_t *b = bytes_of(&len);
  REQUIRE(b != NULL);
  char want[300];
  expect_reject(b, 10, "truncated object: 10 bytes, but the header alone takes 32");
  snprintf(want, sizeof want, "truncated object: the header says %zu bytes, but only %zu are present", len,
           len - 1);
  expect_reject(b, len - 1, want);
  uint8_t *copy = malloc(len + 1);
  memcpy(copy, b, len);
  copy[len] = 0;
  snprintf(want, sizeof want, "1 extra bytes follow the end of the object (the header says %zu bytes)", len);
  expect_reject(copy, len + 1, want);
  memcpy(copy, b, len);
  copy[0] = 'X';
  expect_reject(copy, len, "not a tilec object: it does not start with \"TILEOBJ\"");
  memcpy(copy, b, len);
  put32(copy + 8, 2);
  expect_reject(copy, len, "object version 2 is not supported (this tilec reads version 1)");
  memcpy(copy, b, len);
  copy[len - 3] ^= 0x40; /* a flipped bit anywhere after the header */
  expect_reject(copy, len, "checksum mismatch: the object is corrupted (stored *");
  memcpy(copy, b, len);
  put32(copy + 12, 5);
  reseal(copy, len);
  expect_reject(copy, len, "bad object at byte 12: 5 sections, but version 1 objects have 4");
  free(copy);
  free(b);
}

TEST(object, hostile_sizes_and_counts) {
  size_t len;
  uint8_t *b = bytes_of(&len);
  REQUIRE(b != NULL);
  uint8_t *c = malloc(len);
  char want[300];
  memcpy(c, b, len);
  put64(c + CODE_SEC + 8, 1ULL << 60);
  reseal(c, len);
  snprintf(want, sizeof want,
           "bad object at byte 112: the code section is 1152921504606846976 bytes long but only %zu bytes remain",
           len - CODE_ENTRY);
  expect_reject(c, len, want);
  memcpy(c, b, len);
  put32(c + CODE_SEC + 4, 0xffffffffu);
  reseal(c, len);
  expect_reject(c, len, "bad object at byte 112: the code section claims 4294967295 entries, more than its *");
  memcpy(c, b, len);
  put32(c + CODE_ENTRY + 4, 0x7fffffff); /* nbundles */
  reseal(c, len);
  expect_reject(c, len, "bad object at byte 128: code entry 0 claims 2147483647 bundles but its section has *");
  memcpy(c, b, len);
  put32(c + CODE_SEC, 3); /* a data section where code belongs */
  reseal(c, len);
  expect_reject(c, len, "bad object at byte 112: expected the code section (kind 2), found kind 3");
  free(c);
  free(b);
}

/* Finds the data section's first entry: after the code section. */
static size_t data_entry(const uint8_t *b) {
  uint64_t code_size = 0;
  for (int i = 0; i < 8; i++) code_size |= (uint64_t)b[CODE_SEC + 8 + i] << (8 * i);
  return CODE_ENTRY + (size_t)code_size + 16;
}

TEST(object, bad_entries) {
  size_t len;
  uint8_t *b = bytes_of(&len);
  REQUIRE(b != NULL);
  uint8_t *c = malloc(len);
  size_t de = data_entry(b);
  size_t sym = de + 24 + 6 + 16; /* after the one data entry and the symbols header */

  memcpy(c, b, len);
  c[FIRST_WORD + 7] = 200; /* opcode of bundle 0, word 0 */
  reseal(c, len);
  expect_reject(c, len, "code for all chips, bundle 0, word 0: unknown opcode 200 (this ISA has *");

  memcpy(c, b, len);
  c[FIRST_WORD + 7] = TILE_MOP_VADDF; /* a vector op in a scalar word */
  reseal(c, len);
  expect_reject(c, len,
                "code for all chips, bundle 0, word 0: 'vadd.f' is a vector-slot op but sits in bundle word 0 (a scalar slot)");

  memcpy(c, b, len);
  c[FIRST_WORD + 4] = 1; /* li has no c field */
  reseal(c, len);
  expect_reject(c, len,
                "code for all chips, bundle 0, word 0: 'li' does not use its c field, which must be 0 but holds 1");

  memcpy(c, b, len);
  put32(c + FIRST_WORD + BUNDLE_BYTES + (size_t)tile_slot_first(TILE_SLOT_BRANCH) * 8,
        3); /* bnz to bundle 3 of 3 */
  reseal(c, len);
  expect_reject(c, len, "code for all chips, bundle 1, word 10: 'bnz' targets bundle 3, but the code has 3 bundles");

  memcpy(c, b, len);
  put32(c + CODE_ENTRY + 8 + 3 * BUNDLE_BYTES, 0xffffffffu); /* second program also for all chips */
  reseal(c, len);
  expect_reject(c, len, "there are two programs for all chips");

  memcpy(c, b, len);
  c[de + 4] = 7;
  reseal(c, len);
  expect_reject(c, len, "initial data 0: unknown memory space 7");

  char want[300];
  memcpy(c, b, len);
  c[de + 5] = 1;
  reseal(c, len);
  snprintf(want, sizeof want, "bad object at byte %zu: data entry 0 has non-zero reserved bytes", de);
  expect_reject(c, len, want);

  memcpy(c, b, len);
  put64(c + de + 16, 1ULL << 62);
  reseal(c, len);
  snprintf(want, sizeof want,
           "bad object at byte %zu: data entry 0 claims 4611686018427387904 bytes but its section has 6 left", de);
  expect_reject(c, len, want);

  memcpy(c, b, len);
  c[sym + 66] = 99; /* elem of symbol 0 */
  reseal(c, len);
  expect_reject(c, len, "symbol 0: symbol 'x' has unknown element type 99");

  memcpy(c, b, len);
  c[sym + 64] = 4; /* binding kind */
  reseal(c, len);
  expect_reject(c, len, "symbol 0: symbol 'x' has binding kind 4 (in 1, out 2, inout 3)");

  memcpy(c, b, len);
  memset(c + sym, 'a', 64);
  reseal(c, len);
  snprintf(want, sizeof want, "bad object at byte %zu: the symbol name is not NUL-terminated within its 64 bytes",
           sym);
  expect_reject(c, len, want);

  memcpy(c, b, len);
  c[sym + 3] = 'q'; /* "x\0\0q": stray bytes after the NUL */
  reseal(c, len);
  snprintf(want, sizeof want, "bad object at byte %zu: the symbol name has stray bytes after its NUL", sym);
  expect_reject(c, len, want);

  memcpy(c, b, len);
  put64(c + sym + 80 + 8, 0); /* dims[1] of x */
  reseal(c, len);
  expect_reject(c, len, "symbol 0: symbol 'x' has dimension 1 of size 0; sizes start at 1");

  memcpy(c, b, len);
  c[sym] = '1'; /* "1": names start with a letter */
  reseal(c, len);
  expect_reject(c, len, "symbol 0: symbol name '1' must start with a letter or '_'");
  free(c);
  free(b);
}

TEST(object, every_prefix_is_rejected) {
  /* Truncation anywhere is caught (with the length fixed up, so the structure is read). */
  size_t len;
  uint8_t *b = bytes_of(&len);
  REQUIRE(b != NULL);
  uint8_t *c = malloc(len);
  for (size_t n = 32; n < len; n++) {
    memcpy(c, b, n);
    put64(c + 16, n);
    reseal(c, n);
    TileObject o;
    TileDiag d;
    tile_diag_init(&d, NULL, "x", NULL, 0);
    if (!CHECK(!tile_object_read(c, n, &o, &d))) break;
  }
  free(c);
  free(b);
}

TEST(object, writer_refuses_invalid_objects) {
  TileObject o;
  make(&o);
  uint8_t *b = NULL;
  size_t len = 0;
  bundles_all[0].slot[0].d = 64; /* no 6-bit field holds it */
  CHECK(!tile_object_write(&o, &b, &len));
  CHECK(b == NULL);
  make(&o);
  o.ncode = 0;
  CHECK(!tile_object_write(&o, &b, &len));
  TileDiag d;
  tile_diag_init(&d, NULL, "x", NULL, 0);
  CHECK(!tile_object_check(&o, &d));
  CHECK_STREQ("the object holds no code", d.last);
}

/* A target name ending in .target would be looked up as a file path, so the
 * disassembly of such an object could not be assembled again. */
TEST(object, target_name_that_reads_as_a_path) {
  TileObject o;
  make(&o);
  snprintf(o.target, sizeof o.target, "v.target");
  uint8_t *b = NULL;
  size_t len = 0;
  CHECK(!tile_object_write(&o, &b, &len));
  TileDiag d;
  tile_diag_init(&d, NULL, "x", NULL, 0);
  CHECK(!tile_object_check(&o, &d));
  CHECK_STREQ("bad target name: the target name 'v.target' ends in '.target', which reads as a file path",
              d.last);
  snprintf(o.target, sizeof o.target, "v.target2");
  CHECK(tile_object_check(&o, &d));
}

TEST(object, check_against_a_target) {
  TileObject o;
  make(&o);
  TileTarget t;
  TileDiag d;
  tile_diag_init(&d, NULL, "x", NULL, 0);
  REQUIRE(tile_target_load("tiny", &t, &d));
  CHECK(tile_object_check_target(&o, &t, &d));
  REQUIRE(tile_target_set_torus(&t, "2x1", &d));
  CHECK(!tile_object_check_target(&o, &t, &d));
  CHECK_STREQ("there is code for chip 2, but target tiny has 2 chips", d.last);
  REQUIRE(tile_target_set_torus(&t, "2x2", &d));
  bundles_all[0].slot[3].d = 40;
  CHECK(!tile_object_check_target(&o, &t, &d));
  CHECK_STREQ("code for all chips, bundle 0, word 3: vector register v40 does not exist on target tiny (it has 32)",
              d.last);
  make(&o);
  o.syms[0].addr = t.hbm_bytes - 100;
  CHECK(!tile_object_check_target(&o, &t, &d));
  CHECK_STREQ("symbol 'x': bytes 16777116..16781211 are outside hbm, which has 16777216 bytes on target tiny", d.last);
}
