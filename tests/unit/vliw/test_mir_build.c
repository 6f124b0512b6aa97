/* Building MIR: moving appended insts into place in one pass (tile_mir_insert_blocks,
 * against the one move at a time it replaces) and the table of source ops insts name
 * by index (tile_mir_src). */
#include "alloc_fixture.h"

/* An inst told apart by its imm. */
static TileMirInst mark(int32_t k) { return af_op(TILE_MOP_LI, 0, 0, 0, 0, k); }

/* m's imms in order. */
static void imms(const TileMir *m, int32_t *out) {
  for (int32_t i = 0; i < m->ninsts; i++) out[i] = m->insts[i].imm;
}

TEST(mir_build, insert_blocks_matches_moves_one_at_a_time) {
  TileTarget t = af_target("tiny");
  /* Ten insts 0..9, then three blocks appended last place first, as staging does: block
   * 2 (imms 200, 201) bound for before inst 7, block 1 (100) for before inst 3, block 0
   * (none) and block 0' (300, 301, 302) both for before inst 3. */
  int32_t at[] = {3, 3, 3, 7};
  int32_t want[20], got[20];
  TileMir a, b;
  for (int pass = 0; pass < 2; pass++) {
    TileMir *m = pass ? &b : &a;
    tile_mir_init(m, &t);
    for (int32_t i = 0; i < 10; i++) tile_mir_add(m, mark(i));
  }
  int32_t lo[4], hi[4];
  const int32_t imm_of[4][3] = {{-1}, {300, 301, 302}, {100}, {200, 201}};
  const int32_t len[4] = {0, 3, 1, 2};
  for (int32_t j = 3; j >= 0; j--) {
    /* the reference: each block moved as it is made, the way the one-move code did */
    int32_t from = a.ninsts;
    for (int32_t k = 0; k < len[j]; k++) tile_mir_add(&a, mark(imm_of[j][k]));
    REQUIRE(tile_mir_move_insts(&a, at[j], from, a.ninsts));
    lo[j] = b.ninsts;
    for (int32_t k = 0; k < len[j]; k++) tile_mir_add(&b, mark(imm_of[j][k]));
    hi[j] = b.ninsts;
  }
  REQUIRE(tile_mir_insert_blocks(&b, 10, at, lo, hi, 4));
  CHECK_EQ(16, b.ninsts);
  imms(&a, want);
  imms(&b, got);
  for (int32_t i = 0; i < 16; i++) CHECK_EQ(want[i], got[i]);
  /* 0 1 2 300 301 302 100 3 4 5 6 200 201 7 8 9 */
  CHECK_EQ(300, got[3]);
  CHECK_EQ(100, got[6]);
  CHECK_EQ(3, got[7]);
  CHECK_EQ(200, got[11]);
  CHECK_EQ(9, got[15]);
  tile_mir_free(&a);
  tile_mir_free(&b);
}

TEST(mir_build, sources_by_index) {
  TileTarget t = af_target("tiny");
  TileMir m;
  tile_mir_init(&m, &t);
  int32_t glue = tile_mir_add(&m, mark(0));
  CHECK(tile_mir_src_name(&m, &m.insts[glue]) == NULL);
  CHECK_EQ(0, tile_mir_src_loc(&m, &m.insts[glue]).line);
  /* A generator switches between an op and the one it emits within, and back: the
   * sources stay two entries. */
  TileLoc at_mm = {"k.tile", 12, 3}, at_ew = {"k.tile", 14, 5};
  for (int i = 0; i < 50; i++) {
    tile_mir_set_source(&m, "matmul", at_mm);
    tile_mir_add(&m, mark(1));
    tile_mir_set_source(&m, "gelu", at_ew);
    tile_mir_add(&m, mark(2));
  }
  CHECK_EQ(2, m.nsrcs);
  const TileMirInst *mm = &m.insts[1], *ew = &m.insts[2];
  CHECK_STREQ("matmul", tile_mir_src_name(&m, mm));
  CHECK_EQ(12, tile_mir_src_loc(&m, mm).line);
  CHECK_STREQ("gelu", tile_mir_src_name(&m, ew));
  CHECK_EQ(14, tile_mir_src_loc(&m, ew).line);
  CHECK_EQ(5, tile_mir_src_loc(&m, ew).col);
  CHECK_EQ(mm->src, m.insts[99].src); /* the last pair */
  CHECK_EQ(ew->src, m.insts[100].src);
  /* The same name at another place is another source. Glue keeps the place it was
   * made for (the function's, for its diagnostics) without a name; neither is none. */
  CHECK(tile_mir_src(&m, "matmul", at_ew) != mm->src);
  tile_mir_set_source(&m, NULL, at_ew);
  int32_t placed = tile_mir_add(&m, mark(3));
  CHECK(tile_mir_src_name(&m, &m.insts[placed]) == NULL);
  CHECK_EQ(14, tile_mir_src_loc(&m, &m.insts[placed]).line);
  CHECK_EQ(0, tile_mir_src(&m, NULL, (TileLoc){0}));
  tile_mir_free(&m);
}
