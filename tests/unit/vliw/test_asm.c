/* The assembler and disassembler: programs survive asm -> object -> disasm -> asm byte
 * for byte, the canonical text is a fixed point, literals read and print exactly, and
 * bad input gets its located message. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "tile/asm.h"

static bool assemble(const char *src, TileObject *o, char **messages) {
  size_t len;
  FILE *f = open_memstream(messages, &len);
  TileDiag d;
  tile_diag_init(&d, f, "p.s", src, strlen(src));
  bool ok = tile_asm(src, strlen(src), "p.s", NULL, o, &d);
  fclose(f);
  return ok;
}

static char *disasm(const TileObject *o) {
  char *text;
  size_t len;
  FILE *f = open_memstream(&text, &len);
  tile_disasm(f, o);
  fclose(f);
  return text;
}

/* asm(src) -> bytes -> read -> disasm -> asm -> bytes must be identical, and the text
 * a fixed point. Returns the canonical text (caller frees), or NULL. */
static char *round_trip(const char *src) {
  TileObject a, b, c;
  char *msg;
  bool ok = assemble(src, &a, &msg);
  CHECK(ok);
  CHECK_STREQ("", msg);
  free(msg);
  if (!ok) return NULL;
  uint8_t *ba = NULL, *bb = NULL;
  size_t la = 0, lb = 0;
  ok = tile_object_write(&a, &ba, &la);
  CHECK(ok);
  tile_object_free(&a);
  if (!ok) return NULL;
  TileDiag d;
  tile_diag_init(&d, stderr, "p.tobj", NULL, 0);
  ok = tile_object_read(ba, la, &b, &d);
  CHECK(ok);
  if (!ok) {
    free(ba);
    return NULL;
  }
  char *text = disasm(&b);
  tile_object_free(&b);
  ok = assemble(text, &c, &msg);
  CHECK(ok);
  CHECK_STREQ("", msg);
  free(msg);
  if (ok) {
    CHECK(tile_object_write(&c, &bb, &lb));
    CHECK_EQ(la, lb);
    CHECK(la == lb && memcmp(ba, bb, la) == 0);
    char *again = disasm(&c);
    CHECK_STREQ(text, again);
    free(again);
    free(bb);
    tile_object_free(&c);
  }
  free(ba);
  return text;
}

static const char *programs[] = {
    /* every slot kind, labels forward and back, a loop */
    ".target tiny\n"
    ".symbol x in vmem f32 [8, 128] at 0\n"
    ".symbol y out vmem f32 [8, 128] at 4096 per_chip\n"
    ".symbol n inout smem i32 [] at 0\n"
    ".code all\n"
    "  li s1, 0 ; li s2, 512 ; vld v0, s1, s2, 0\n"
    "top: vli v1, 2.0 ; viota v3, 2 ; coord s4, 1\n"
    "  loop body_end, 4\n"
    "  vmul.f v2, v0, v1 ; vfma.f v5, v0, v1, v2 ; xlu.lsum v6, v2\n"
    "  mxu.ldw m1, v2, 3\n"
    "body_end:\n"
    "  mxu.push m0, v2 ; vst v2, s1, s2, 4096 ; sem.signal sem3, 1\n"
    "  addi s5, s5, -1 ; dma s6\n"
    "  bnz s5, top\n"
    "  mxu.popacc v7, m0, v7 ; sem.signal.r sem1, s3, 2\n"
    "  sem.wait sem1, 2 ; xlu.trpush v1, 15 ; vld.bf16 v8, s1, s2, -64\n"
    "  halt\n",
    /* per-chip code, data of every type, an op in the second scalar slot only */
    ".target v5e-like\n"
    ".data hbm 0 f32 1.0, -2.5, 0.1, 3.4028235e38, 1e-45, -0.0, inf, -inf, nan, 0x7f800001,\n"
    "   16777217, 0.3333333\n"
    ".data hbm 0 f32 1.0, -2.5, 0.1, -0.0, inf, -inf, nan, 16777217,\n"
    "   0.3333333\n"
    ".data chip 3 smem 8 i32 -1, 0x7fffffff, 4294967295, 65536\n"
    ".data vmem 100 bf16 1.0, 1.00390625, -3.0\n"
    ".data vmem 200 i8 -128, 255, 7\n"
    ".data chip 0 hbm 64 bytes 00ff10a5\n"
    ".code chip 3\n"
    "  @1 add s1, s2, s3\n"
    "  @1 mov s1, s2 ; vadd.i v1, v2, v3\n"
    "  @1 vsub.i v1, v2, v3 ; @0 sub s4, s5, s6\n"
    "  nop\n"
    "  jmp 5\n"
    "  halt\n"
    ".code all\n"
    "  chipid s1 ; vbcast v2, s1\n"
    "  halt\n",
    /* no target: nothing machine-specific is checked */
    ".code all\n"
    "  li s63, 0xffffffff ; li s62, -2147483648 ; vli v63, -1.5e-7\n"
    "  sld s1, s2, 16 ; sst s1, s2, -4 ; vsel v1, v2, v3, v4\n"
    "  mxu.pop v1, m63 ; sem.wait sem63, 0\n"
    "a: b: c:\n"
    "  bz s1, a\n"
    "  halt\n",
};

TEST(asm, programs_round_trip) {
  for (size_t i = 0; i < sizeof programs / sizeof programs[0]; i++) {
    char *text = round_trip(programs[i]);
    CHECK(text != NULL);
    free(text);
  }
}

TEST(asm, canonical_text) {
  char *text = round_trip(programs[1]);
  REQUIRE(text != NULL);
  CHECK(strstr(text, ".target v5e-like\n") != NULL);
  CHECK(strstr(text, "  @1 add s1, s2, s3\n") != NULL);
  CHECK(strstr(text, "  sub s4, s5, s6 ; @1 mov s1, s2 ; vadd.i v1, v2, v3\n") == NULL);
  CHECK(strstr(text, "  @1 mov s1, s2 ; vadd.i v1, v2, v3\n") != NULL);
  CHECK(strstr(text, "  sub s4, s5, s6 ; @1 vsub.i v1, v2, v3\n") != NULL);
  CHECK(strstr(text, "  jmp L5\n") != NULL);
  CHECK(strstr(text, "L5:\n  halt\n") != NULL);
  /* A huge float, a denormal and an odd NaN make the first block print as i32. */
  CHECK(strstr(text, ".data hbm 0 i32 1065353216, -1071644672, 1036831949, 2139095039, 1, -2147483648, "
                     "2139095040, -8388608,\n"
                     "    2143289344, 2139095041, 1266679808, 1051372202\n") != NULL);
  CHECK(strstr(text, ".data hbm 0 f32 1.0, -2.5, 0.1, -0.0, inf, -inf, 0x7fc00000, 16777216.0,\n    0.3333333\n") != NULL);
  CHECK(strstr(text, ".data chip 3 smem 8 i32 -1, 2147483647, -1, 65536\n") != NULL);
  CHECK(strstr(text, ".data vmem 100 bytes 803f803f40c0\n") != NULL);
  CHECK(strstr(text, ".data vmem 200 bytes 80ff07\n") != NULL);
  CHECK(strstr(text, ".data chip 0 hbm 64 i32 -1525612800\n") != NULL);
  free(text);
  text = round_trip(programs[0]);
  REQUIRE(text != NULL);
  CHECK(strstr(text, ".symbol y out vmem f32 [8, 128] at 4096 per_chip\n") != NULL);
  CHECK(strstr(text, ".symbol n inout smem i32 [] at 0\n") != NULL);
  CHECK(strstr(text, "L1:\n  coord s4, 1 ; vli v1, 2.0 ; viota v3, 2\n  loop L5, 4\n") != NULL);
  CHECK(strstr(text, "  bnz s5, L1\n") != NULL);
  free(text);
}

TEST(asm, float_literals) {
  static const struct {
    uint32_t bits;
    const char *text;
  } cases[] = {
      {0x3f800000, "1.0"},        {0x80000000, "-0.0"},      {0x3dcccccd, "0.1"},
      {0x40490fdb, "3.1415927"}, {0x00000001, "1e-45"},     {0x4b800000, "16777216.0"},
      {0x7f800000, "inf"},        {0xff800000, "-inf"},      {0x7fc00000, "0x7fc00000"},
      {0x7f7fffff, "3.4028235e+38"}, {0x00000000, "0.0"},   {0x4e6e6b28, "1e+09"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char buf[48];
    tile_f32_format(cases[i].bits, buf, sizeof buf);
    CHECK_STREQ(cases[i].text, buf);
  }
}

TEST(asm, bf16_rounds_to_nearest_even) {
  TileObject o;
  char *msg;
  REQUIRE(assemble(".data vmem 0 bf16 1.00390625, 1.01171875, 0x1234\n.code all\n  halt\n", &o, &msg));
  free(msg);
  REQUIRE(o.ndata == 1 && o.data[0].size == 6);
  /* 1 + 2^-8 is halfway between 1.0 and 1 + 2^-7: to even (1.0, 0x3f80). 1 + 3*2^-8
   * is halfway too: to even (1 + 2^-6, 0x3f82). */
  CHECK_EQ(0x3f80, o.data[0].bytes[0] | o.data[0].bytes[1] << 8);
  CHECK_EQ(0x3f82, o.data[0].bytes[2] | o.data[0].bytes[3] << 8);
  CHECK_EQ(0x1234, o.data[0].bytes[4] | o.data[0].bytes[5] << 8);
  tile_object_free(&o);
}

TEST(asm, format_one_op) {
  char buf[80];
  tile_minst_format((TileMInst){.op = TILE_MOP_VADDF, .d = 1, .a = 2, .b = 3}, buf, sizeof buf);
  CHECK_STREQ("vadd.f v1, v2, v3", buf);
  tile_minst_format((TileMInst){.op = TILE_MOP_WAIT, .c = 2, .imm = 1}, buf, sizeof buf);
  CHECK_STREQ("sem.wait sem2, 1", buf);
  tile_minst_format((TileMInst){.op = TILE_MOP_VLI, .d = 0, .imm = 0x3fc00000}, buf, sizeof buf);
  CHECK_STREQ("vli v0, 1.5", buf);
  tile_minst_format((TileMInst){.op = TILE_MOP_LOOP, .c = 3, .imm = 10}, buf, sizeof buf);
  CHECK_STREQ("loop 3, 10", buf);
  CHECK_EQ(4, tile_minst_format((TileMInst){.op = TILE_MOP_HALT}, NULL, 0));
  int n = tile_minst_format((TileMInst){.op = TILE_MOP_MXU_POPACC, .d = 10, .c = 1, .a = 11}, buf, 5);
  CHECK_EQ((int)strlen("mxu.popacc v10, m1, v11"), n);
  CHECK_STREQ("mxu.", buf);
}

/* The first line of the messages must be `want`. */
static void expect_error(const char *src, const char *want) {
  TileObject o;
  char *msg;
  bool ok = assemble(src, &o, &msg);
  CHECK(!ok);
  CHECK_EQ(0, o.ncode);
  char first[400];
  snprintf(first, sizeof first, "%.*s", (int)strcspn(msg, "\n"), msg);
  CHECK_STREQ(want, first);
  free(msg);
}

TEST(asm, errors) {
  expect_error(".code all\n  frob s1\n", "p.s:2:3: error: unknown op 'frob'");
  expect_error(".code all\n  add s1, s2\n", "p.s:2:13: error: 'add' takes 3 operands (Sd sa sb), found 2");
  expect_error(".code all\n  add s1, s2, s3, s4\n", "p.s:2:17: error: 'add' takes 3 operands (Sd sa sb), found more");
  expect_error(".code all\n  add s1, v2, s3\n", "p.s:2:11: error: operand 2 of 'add' must be a scalar register (s0..s63), not 'v2'");
  expect_error(".code all\n  mov s64, s1\n", "p.s:2:7: error: s64 is out of range: the encoding has s0..s63");
  expect_error(".code all\n  add s1, s2, s3 ; add s4, s5, s6 ; sub s7, s8, s9\n",
               "p.s:2:37: error: no free scalar slot for 'sub' in this bundle (a bundle has 2)");
  expect_error(".code all\n  jmp nowhere\n  halt\n", "p.s:2:7: error: label 'nowhere' is not defined in this code block");
  expect_error(".code all\n  jmp 7\n  halt\n", "p.s:2:7: error: 'jmp' targets bundle 7, but the code has 2 bundles");
  expect_error(".code all\nend:\n  halt\nend:\n", "p.s:4:1: error: label 'end' is already defined on line 2");
  expect_error(".code all\n  jmp end\nend:\n", "p.s:2:7: error: label 'end' is after the last bundle; a branch must target a bundle");
  expect_error(".code all\n  viota v1, 3\n", "p.s:2:13: error: operand 2 of 'viota' must be in 0..2, not 3");
  expect_error(".code all\n  li s1, 4294967296\n", "p.s:2:10: error: operand 2 of 'li' does not fit in 32 bits: 4294967296");
  expect_error(".code all\n  li s1, -0x8000000000000000\n", "p.s:2:10: error: the number is too large");
  expect_error(".code all\n  li s1, -0x1ffffffffffffffff\n", "p.s:2:10: error: the number is too large");
  expect_error(".code all\n  vli v1, 1e39\n", "p.s:2:11: error: 1e39 is out of the range of f32");
  expect_error(".code all\n  vli v1, 1.2.3\n", "p.s:2:11: error: '1.2.3' is not a number");
  expect_error("  halt\n", "p.s:1:3: error: ops must follow '.code all' or '.code chip N'");
  expect_error(".code all\n  halt\n.code all\n  halt\n", "p.s:3:1: error: there is already code for all chips (line 1)");
  expect_error(".code all\n", "p.s:1:1: error: this code block has no bundles");
  expect_error("", "p.s: error: there is no code: start it with '.code all' (or '.code chip N')");
  expect_error(".frob\n", "p.s:1:1: error: unknown directive '.frob' (there are .target, .code, .symbol, .data)");
  expect_error(".code all\n  halt\n.target tiny\n", "p.s:3:1: error: '.target' must come before code, data and symbols");
  expect_error(".symbol x in hbm f99 [4] at 0\n", "p.s:1:18: error: expected an element type (f32, bf16, i32, ...), found 'f99'");
  expect_error(".symbol x in hbm f32 [4, 0] at 0\n", "p.s:1:26: error: dimension sizes start at 1, not 0");
  expect_error(".symbol x in hbm f32 [4] at 0\n.symbol x out hbm f32 [4] at 64\n",
               "p.s:2:9: error: symbol 'x' is already defined on line 1");
  expect_error(".data hbm 0 i8 256\n", "p.s:1:16: error: 256 does not fit in i8 (-128..255)");
  expect_error(".data hbm 0 f32 1.0,\n.code all\n  halt\n", "p.s:1:1: error: the values of this '.data' end with ',' but no more follow");
  expect_error(".data hbm 0 bytes 0f0\n", "p.s:1:19: error: 'bytes' values are runs of hex digit pairs, like 00ff10");
  expect_error(".code all\n  @2 add s1, s2, s3\n", "p.s:2:3: error: '@2': a bundle has 2 scalar slots (@0..@1)");
  expect_error(".code all\n  add s1, s2, s3 ; @0 sub s1, s2, s3\n", "p.s:2:20: error: scalar slot 0 is already taken in this bundle");
  expect_error(".code all\n  loop 0, 4\n  halt\n", "p.s:2:8: error: a loop body has at least 1 bundle");
  expect_error(".code all\n  loop 2, 4\n  halt\n", "p.s:2:8: error: 'loop' at bundle 0 runs 2 bundles past the end of the code (2 bundles)");
  expect_error(".code all\n  add s1 s2, s3\n", "p.s:2:10: error: expected ',' before operand 2 of 'add', found 's2'");
  expect_error(".code all\n  halt ;\n", "p.s:2:9: error: expected an op after ';'");
}

TEST(asm, errors_against_the_target) {
  expect_error(".target tiny\n.code all\n  vmov v32, v1\n", "p.s:3:8: error: vector register v32 does not exist on target tiny (it has 32)");
  expect_error(".target tiny\n.code all\n  mxu.push m2, v1\n", "p.s:3:12: error: MXU unit m2 does not exist on target tiny (it has 2)");
  expect_error(".target tiny\n.code all\n  sem.wait sem16, 1\n", "p.s:3:12: error: semaphore sem16 does not exist on target tiny (it has 16)");
  expect_error(".target tiny\n.code all\n  mxu.ldw m0, v1, 16\n",
               "p.s:3:3: error: 'mxu.ldw' row group 16 is beyond the MXU's weight rows on target tiny (groups 0..15 of 8 rows)");
  expect_error(".target tiny\n.symbol big in vmem f32 [1024, 1024] at 0\n",
               "p.s:2:41: error: bytes 0..4194303 are outside vmem, which has 1048576 bytes on target tiny");
  expect_error(".target tiny\n.data smem 65535 i32 1\n",
               "p.s:2:1: error: bytes 65535..65538 are outside smem, which has 65536 bytes on target tiny");
}

TEST(asm, given_target_limits_slots) {
  TileTarget t;
  TileDiag d;
  tile_diag_init(&d, stderr, "t", NULL, 0);
  REQUIRE(tile_target_load("tiny", &t, &d));
  t.slots[TILE_SLOT_SCALAR] = 1;
  const char *src = ".code all\n  add s1, s2, s3 ; add s4, s5, s6\n";
  char *msg;
  size_t len;
  FILE *f = open_memstream(&msg, &len);
  tile_diag_init(&d, f, "p.s", src, strlen(src));
  TileObject o;
  CHECK(!tile_asm(src, strlen(src), "p.s", &t, &o, &d));
  fclose(f);
  CHECK(strncmp(msg, "p.s:2:20: error: no free scalar slot for 'add' in this bundle (target tiny has 1)\n", 80) == 0);
  free(msg);
  src = ".target v4-like\n.code all\n  halt\n";
  f = open_memstream(&msg, &len);
  tile_diag_init(&d, f, "p.s", src, strlen(src));
  CHECK(!tile_asm(src, strlen(src), "p.s", &t, &o, &d));
  fclose(f);
  CHECK(strncmp(msg, "p.s:1:9: error: this file is for target v4-like, but tiny was asked for\n", 60) == 0);
  free(msg);
  /* Without .target, the given target's name is recorded. */
  src = ".code all\n  halt\n";
  tile_diag_init(&d, stderr, "p.s", src, strlen(src));
  REQUIRE(tile_asm(src, strlen(src), "p.s", &t, &o, &d));
  CHECK_STREQ("tiny", o.target);
  tile_object_free(&o);
}

TEST(asm, several_errors_and_no_crash_on_junk) {
  TileObject o;
  char *msg;
  CHECK(!assemble(".code all\n  frob\n  add s1\n  halt\n  vli v1, x\n", &o, &msg));
  CHECK(strstr(msg, "p.s:2:3:") != NULL);
  CHECK(strstr(msg, "p.s:3:9:") != NULL);
  CHECK(strstr(msg, "p.s:5:11:") != NULL);
  free(msg);
  static const char junk[] = ".code all\n\x01\xff;;@@ ,,: [ ] .data .symbol\n@9999999999999999999999 x\n\0halt";
  CHECK(!assemble(junk, &o, &msg) || true);
  free(msg);
  const char nul[] = ".code all\n  ha\0lt\n";
  size_t len;
  FILE *f = open_memstream(&msg, &len);
  TileDiag d;
  tile_diag_init(&d, f, "p.s", nul, sizeof nul - 1);
  CHECK(!tile_asm(nul, sizeof nul - 1, "p.s", NULL, &o, &d));
  fclose(f);
  CHECK(strstr(msg, "p.s:2:5: error: unexpected NUL byte (assembly is text)") != NULL);
  free(msg);
}

TEST(asm, hex_immediates_are_bit_patterns) {
  TileObject o;
  char *msg;
  REQUIRE(assemble(".code all\n  li s1, 0xffffffff ; li s2, -0x10\n  vli v1, 0x3fc00000 ; halt\n", &o, &msg));
  free(msg);
  CHECK_EQ(-1, o.code[0].bundles[0].slot[0].imm);
  CHECK_EQ(-16, o.code[0].bundles[0].slot[1].imm);
  CHECK_EQ(0x3fc00000, o.code[0].bundles[1].slot[2].imm);
  tile_object_free(&o);
  expect_error(".code all\n  li s1, 0x100000000\n", "p.s:2:10: error: operand 2 of 'li' does not fit in 32 bits: 4294967296");
  expect_error(".code all\n  vli v1, 0x123456789\n", "p.s:2:11: error: raw bits are written 0x and 1 to 8 hex digits");
}
