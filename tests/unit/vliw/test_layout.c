/* Layout: where buffers go (bound HBM buffers first in creation order, then scratch;
 * VMEM and SMEM in creation order; alignment; slots), the messages when a memory or the
 * semaphores run out, and relocations filling initial contents with addresses. */
#include "alloc_fixture.h"

static TileMir fresh(TileTarget *t) {
  TileMir m;
  tile_mir_init(&m, t);
  return m;
}

static int32_t bound(TileMir *m, const char *name, int kind, int64_t rows, int64_t cols) {
  int32_t b = tile_mir_buffer(m, name, TILE_SPACE_HBM, rows * cols * 4, 1, 64);
  m->bufs[b].bind = (uint8_t)kind;
  m->bufs[b].elem = TILE_ELEM_F32;
  m->bufs[b].rank = 2;
  m->bufs[b].dims[0] = rows;
  m->bufs[b].dims[1] = cols;
  return b;
}

TEST(layout, order_alignment_slots) {
  TileTarget t = af_target("tiny");
  TileMir m = fresh(&t);
  int32_t scratch = tile_mir_buffer(&m, "scratch", TILE_SPACE_HBM, 100, 1, 256);
  int32_t x = bound(&m, "x", TILE_BIND_IN, 8, 128);
  int32_t tiles = tile_mir_buffer(&m, "tiles", TILE_SPACE_VMEM, 4096, 3, 64);
  int32_t odd = tile_mir_buffer(&m, "odd", TILE_SPACE_VMEM, 10, 1, 1);
  int32_t after = tile_mir_buffer(&m, "after", TILE_SPACE_VMEM, 8, 1, 128);
  int32_t y = bound(&m, "y", TILE_BIND_OUT, 1, 3);
  int32_t desc = tile_mir_buffer(&m, "desc", TILE_SPACE_SMEM, 64, 1, 4);
  TileDiag d;
  tile_diag_init(&d, stderr, "test", NULL, 0);
  REQUIRE(tile_mir_layout(&m, &d));
  CHECK_EQ(0, m.bufs[x].addr);          /* bound first, in creation order */
  CHECK_EQ(4096, m.bufs[y].addr);       /* right after x (64-aligned) */
  CHECK_EQ(4352, m.bufs[scratch].addr); /* 4096 + 12 rounded up to 256 */
  CHECK_EQ(0, m.bufs[tiles].addr);
  CHECK_EQ(3 * 4096, m.bufs[odd].addr); /* after all three slots */
  CHECK_EQ(12416, m.bufs[after].addr);  /* 12288 + 10 rounded up to 128 */
  CHECK_EQ(0, m.bufs[desc].addr);
  tile_mir_free(&m);
}

static const char *layout_error(TileMir *m) {
  static char last[512];
  TileDiag d;
  tile_diag_init(&d, NULL, "test", NULL, 0);
  bool ok = tile_mir_layout(m, &d);
  snprintf(last, sizeof last, "%s", ok ? "" : d.last);
  return last;
}

TEST(layout, too_big_for_the_memory) {
  TileTarget t = af_target("v5e-like"); /* 128 MiB of VMEM */
  TileMir m = fresh(&t);
  tile_mir_buffer(&m, "a_tiles", TILE_SPACE_VMEM, 80LL << 20, 2, 64);
  CHECK_STREQ("vmem buffer 'a_tiles' needs 160 MiB, the target has 128 MiB", layout_error(&m));
  tile_mir_free(&m);
}

TEST(layout, what_is_left) {
  TileTarget t = af_target("v5e-like");
  TileMir m = fresh(&t);
  tile_mir_buffer(&m, "w", TILE_SPACE_VMEM, 100LL << 20, 1, 64);
  tile_mir_buffer(&m, "b", TILE_SPACE_VMEM, 20LL << 20, 1, 64);
  tile_mir_buffer(&m, "acc", TILE_SPACE_VMEM, 16LL << 20, 1, 64);
  CHECK_STREQ(
      "vmem buffer 'acc' needs 16 MiB, but only 8 MiB of the target's 128 MiB is left "
      "after 2 other vmem buffers (120 MiB); the program's vmem buffers need 136 MiB in "
      "all",
      layout_error(&m));
  tile_mir_free(&m);
}

TEST(layout, smem_and_odd_sizes) {
  TileTarget t = af_target("tiny"); /* 64 KiB of SMEM */
  TileMir m = fresh(&t);
  tile_mir_buffer(&m, "table", TILE_SPACE_SMEM, 70000, 1, 4);
  CHECK_STREQ("smem buffer 'table' needs 68.4 KiB (70000 bytes), the target has 64 KiB",
              layout_error(&m));
  tile_mir_free(&m);
}

TEST(layout, semaphores) {
  TileTarget t = af_target("tiny"); /* 16 semaphores */
  TileMir m = fresh(&t);
  for (int i = 0; i < 17; i++) tile_mir_sem(&m);
  CHECK_STREQ("the program uses 17 semaphores, the target tiny has 16", layout_error(&m));
  tile_mir_free(&m);
}

TEST(layout, relocations) {
  TileTarget t = af_target("tiny");
  TileMir m = fresh(&t);
  bound(&m, "x", TILE_BIND_IN, 8, 128);
  int32_t v = tile_mir_buffer(&m, "v", TILE_SPACE_VMEM, 4096, 1, 64);
  int32_t pad = tile_mir_buffer(&m, "pad", TILE_SPACE_VMEM, 4000, 1, 64);
  int32_t desc = tile_mir_buffer(&m, "desc", TILE_SPACE_SMEM, 64, 1, 4);
  uint32_t words[4] = {7, 7, 7, 7};
  tile_mir_data(&m, desc, words, sizeof words); /* shorter than the relocated words */
  tile_mir_reloc(&m, desc, 4, pad, 12, false);
  tile_mir_reloc(&m, desc, 8, pad, 12, true);
  tile_mir_reloc(&m, desc, 40, v, -4, false);
  TileDiag d;
  tile_diag_init(&d, stderr, "test", NULL, 0);
  REQUIRE(tile_mir_layout(&m, &d));
  const TileMirBuffer *b = &m.bufs[desc];
  REQUIRE(b->init_len == 44);
  uint32_t got[11];
  memcpy(got, b->init, sizeof got);
  CHECK_EQ(7, got[0]);
  CHECK_EQ(m.bufs[pad].addr + 12, got[1]);
  CHECK_EQ(0, got[2]);
  CHECK_EQ(7, got[3]);
  CHECK_EQ(0, got[5]);
  CHECK_EQ((uint32_t)(m.bufs[v].addr - 4), got[10]);
  tile_mir_free(&m);
}

/* Laying out twice gives the same addresses (the driver may run it after more spills). */
TEST(layout, idempotent) {
  TileTarget t = af_target("tiny");
  TileMir m = fresh(&t);
  tile_mir_buffer(&m, "a", TILE_SPACE_VMEM, 100, 1, 64);
  int32_t b = tile_mir_buffer(&m, "b", TILE_SPACE_VMEM, 100, 1, 64);
  TileDiag d;
  tile_diag_init(&d, stderr, "test", NULL, 0);
  REQUIRE(tile_mir_layout(&m, &d));
  int64_t first = m.bufs[b].addr;
  REQUIRE(tile_mir_layout(&m, &d));
  CHECK_EQ(first, m.bufs[b].addr);
  CHECK_EQ(128, first);
  tile_mir_free(&m);
}
