/* The ISA table and the slot word encoding: every op encodes and decodes to itself,
 * fields sit where the diagram in isa.h draws them, and the well-formedness checks
 * accept exactly what the encoding allows. */
#include <string.h>

#include "check.h"
#include "tile/isa.h"
#include "tile/target.h"

/* A valid instance of op: every operand filled with a value its kind allows. */
static TileMInst sample(int op, unsigned seed) {
  TileMInst in = {.op = (uint8_t)op};
  TileOperand ops[TILE_MAX_OPERANDS];
  int n = tile_mop_operands(op, ops);
  int64_t lo, hi;
  tile_mop_imm_range(op, &lo, &hi);
  for (int k = 0; k < n; k++) {
    int32_t v = (int32_t)((seed * 2654435761u + (unsigned)k * 40503u) >> 3);
    if (ops[k].field == 'i') {
      if (ops[k].kind == 'f') v = (int32_t)0x3fc00000; /* 1.5f */
      else if (hi != INT32_MAX) v = (int32_t)(lo + (v & 0x7fffffff) % (hi - lo + 1));
      else if (lo > INT32_MIN && v < lo) v = (int32_t)(lo + (v & 0xffff));
      in.imm = v;
    } else {
      /* register fields take 6 bits, the wide loop-body field 18 */
      int32_t r = v & (ops[k].field == 'w' ? TILE_WIDE_MAX : 63);
      if (op == TILE_MOP_LOOP && r == 0) r = 1;
      tile_minst_set_field(&in, ops[k].field, r);
    }
  }
  return in;
}

static bool same(TileMInst x, TileMInst y) {
  return x.op == y.op && x.d == y.d && x.a == y.a && x.b == y.b && x.c == y.c && x.imm == y.imm;
}

TEST(isa, every_op_round_trips) {
  for (int op = 0; op < TILE_MOP_COUNT; op++)
    for (unsigned seed = 1; seed < 40; seed++) {
      TileMInst in = sample(op, seed * 7 + (unsigned)op);
      TileMInst back = tile_minst_decode(tile_minst_encode(in));
      if (!CHECK(same(in, back))) return;
      int word = tile_slot_first(tile_mop_info[op].slot);
      char why[200] = "";
      if (!CHECK(tile_minst_check(in, word, why, sizeof why))) {
        CHECK_STREQ("", why);
        return;
      }
    }
}

TEST(isa, field_positions_follow_the_diagram) {
  TileMInst in = {.op = 0x12, .d = 0x3f, .a = 0x01, .b = 0x20, .c = 0x05, .imm = -2};
  uint64_t w = tile_minst_encode(in);
  CHECK_EQ(0x12, (int64_t)(w >> 56));
  CHECK_EQ(0x3f, (int64_t)(w >> 50 & 63));
  CHECK_EQ(0x01, (int64_t)(w >> 44 & 63));
  CHECK_EQ(0x20, (int64_t)(w >> 38 & 63));
  CHECK_EQ(0x05, (int64_t)(w >> 32 & 63));
  CHECK_EQ(0xfffffffe, (int64_t)(w & 0xffffffff));
  CHECK_EQ(0, (int64_t)tile_minst_encode((TileMInst){0}));
}

TEST(isa, slot_positions) {
  CHECK_EQ(0, tile_slot_first(TILE_SLOT_SCALAR));
  CHECK_EQ(2, tile_slot_words(TILE_SLOT_SCALAR));
  CHECK_EQ(2, tile_slot_first(TILE_SLOT_VECTOR));
  CHECK_EQ(4, tile_slot_first(TILE_SLOT_VLOAD));
  CHECK_EQ(6, tile_slot_first(TILE_SLOT_MXU));
  CHECK_EQ(2, tile_slot_words(TILE_SLOT_MXU));
  CHECK_EQ(8, tile_slot_first(TILE_SLOT_XLU));
  CHECK_EQ(10, tile_slot_first(TILE_SLOT_BRANCH));
  int total = 0;
  for (int s = 0; s < TILE_SLOT_COUNT; s++) {
    for (int k = 0; k < tile_slot_words((TileSlot)s); k++)
      CHECK_EQ(s, tile_slot_of_word(tile_slot_first((TileSlot)s) + k));
    total += tile_slot_words((TileSlot)s);
  }
  CHECK_EQ(TILE_BUNDLE_SLOTS, total);
  CHECK_EQ(TILE_SLOT_COUNT, tile_slot_of_word(TILE_BUNDLE_SLOTS));
}

TEST(isa, table_is_consistent) {
  for (int op = 0; op < TILE_MOP_COUNT; op++) {
    const TileMopInfo *info = &tile_mop_info[op];
    REQUIRE(info->mnemonic != NULL);
    CHECK_EQ(op, tile_mop_lookup(info->mnemonic, strlen(info->mnemonic)));
    TileOperand ops[TILE_MAX_OPERANDS];
    int n = tile_mop_operands(op, ops);
    bool used[5] = {false};
    for (int k = 0; k < n; k++) {
      CHECK(strchr("SsVvmqif", ops[k].kind) != NULL);
      const char *f = strchr("dabciw", ops[k].field);
      REQUIRE(f != NULL);
      /* the wide field 'w' is a, b and c together: no field twice */
      const char *covers = *f == 'w' ? "abc" : (char[]){*f, 0};
      for (const char *x = covers; *x; x++) {
        int i = (int)(strchr("dabci", *x) - "dabci");
        CHECK(!used[i]);
        used[i] = true;
      }
    }
  }
  CHECK_EQ(-1, tile_mop_lookup("vadd", 4));
  CHECK_EQ(TILE_MOP_VADDF, tile_mop_lookup("vadd.f", 6));
  CHECK_EQ(TILE_MOP_NOP, 0);
}

static void expect_bad(TileMInst in, int word, const char *want) {
  char why[200] = "";
  CHECK(!tile_minst_check(in, word, why, sizeof why));
  CHECK_STREQ(want, why);
}

TEST(isa, checks_reject_what_the_encoding_forbids) {
  expect_bad((TileMInst){.op = TILE_MOP_VADDF}, 0,
             "'vadd.f' is a vector-slot op but sits in bundle word 0 (a scalar slot)");
  expect_bad((TileMInst){.op = TILE_MOP_HALT, .imm = 3}, 10,
             "'halt' does not use its imm field, which must be 0 but holds 3");
  expect_bad((TileMInst){.op = TILE_MOP_LI, .b = 1}, 0,
             "'li' does not use its b field, which must be 0 but holds 1");
  expect_bad((TileMInst){.op = TILE_MOP_ADD, .d = 64}, 1,
             "'add' has 64 in its 6-bit d field (at most 63)");
  expect_bad((TileMInst){.op = TILE_MOP_VIOTA, .imm = 3}, 2,
             "'viota' needs an immediate in 0..2, not 3");
  expect_bad((TileMInst){.op = TILE_MOP_JMP, .imm = -1}, 10,
             "'jmp' needs an immediate of at least 0, not -1");
  expect_bad((TileMInst){.op = TILE_MOP_LOOP, .c = 0, .imm = 4}, 10,
             "'loop' needs a body of at least 1 bundle");
  expect_bad((TileMInst){.op = TILE_MOP_LOOP, .c = 2, .imm = 0}, 10,
             "'loop' needs an immediate of at least 1, not 0");
  expect_bad((TileMInst){.op = TILE_MOP_NOP}, 11, "slot word 11 is not in a bundle of 11 words");
  /* nop fits every word */
  for (int w = 0; w < TILE_BUNDLE_SLOTS; w++) CHECK(tile_minst_check((TileMInst){0}, w, NULL, 0));
}

TEST(isa, unknown_opcode_message_names_the_count) {
  char why[200], want[200];
  CHECK(!tile_minst_check((TileMInst){.op = 250}, 0, why, sizeof why));
  snprintf(want, sizeof want, "unknown opcode 250 (this ISA has %d ops)", TILE_MOP_COUNT);
  CHECK_STREQ(want, why);
}

TEST(isa, target_checks) {
  TileTarget t;
  memset(&t, 0, sizeof t);
  snprintf(t.name, sizeof t.name, "m");
  for (int s = 0; s < TILE_SLOT_COUNT; s++) t.slots[s] = 1;
  t.nsregs = 16;
  t.nvregs = 32;
  t.mxu_count = 2;
  t.nsems = 4;
  t.vreg_sublanes = 8;
  t.vreg_lanes = t.mxu_dim = 128;
  char why[200];
  CHECK(tile_minst_check_target((TileMInst){.op = TILE_MOP_ADD, .d = 15}, 0, &t, why, sizeof why));
  CHECK(!tile_minst_check_target((TileMInst){.op = TILE_MOP_ADD, .d = 1}, 1, &t, why, sizeof why));
  CHECK_STREQ("scalar slot 1 does not exist on target m (it has 1)", why);
  CHECK(!tile_minst_check_target((TileMInst){.op = TILE_MOP_ADD, .a = 16}, 0, &t, why, sizeof why));
  CHECK_STREQ("scalar register s16 does not exist on target m (it has 16)", why);
  CHECK(!tile_minst_check_target((TileMInst){.op = TILE_MOP_VMOV, .d = 32}, 2, &t, why, sizeof why));
  CHECK_STREQ("vector register v32 does not exist on target m (it has 32)", why);
  CHECK(!tile_minst_check_target((TileMInst){.op = TILE_MOP_MXU_PUSH, .c = 2}, 6, &t, why, sizeof why));
  CHECK_STREQ("MXU unit m2 does not exist on target m (it has 2)", why);
  CHECK(!tile_minst_check_target((TileMInst){.op = TILE_MOP_WAIT, .c = 4}, 8, &t, why, sizeof why));
  CHECK_STREQ("semaphore sem4 does not exist on target m (it has 4)", why);
  CHECK(tile_minst_check_target((TileMInst){.op = TILE_MOP_MXU_LDW, .imm = 15}, 6, &t, why, sizeof why));
  CHECK(!tile_minst_check_target((TileMInst){.op = TILE_MOP_MXU_LDW, .imm = 16}, 6, &t, why, sizeof why));
  CHECK_STREQ("'mxu.ldw' row group 16 is beyond the MXU's weight rows on target m (groups 0..15 of 8 rows)", why);
  CHECK(!tile_minst_check_target((TileMInst){.op = TILE_MOP_XTRPOP, .imm = 16}, 7, &t, why, sizeof why));
}

/* A loop body longer than one 6-bit field: the wide field spreads it over a, b and c. */
TEST(isa, loop_body_uses_the_wide_field) {
  TileMInst in = {.op = TILE_MOP_LOOP, .imm = 3};
  tile_minst_set_field(&in, 'w', 70000);
  CHECK_EQ(70000, tile_minst_field(in, 'w'));
  CHECK_EQ(70000 & 63, in.c);
  TileMInst back = tile_minst_decode(tile_minst_encode(in));
  CHECK_EQ(70000, tile_minst_field(back, 'w'));
  char why[200] = "";
  CHECK(tile_minst_check(in, tile_slot_first(TILE_SLOT_BRANCH), why, sizeof why));
  CHECK_STREQ("", why);
}
