/* Layout with live ranges (tile_mir_layout_code, backend-vliw/layout_live.c): buffers
 * whose lives in the scheduled code do not meet share VMEM and SMEM; loops, DMA
 * descriptors, initial contents and buffers other chips write keep their buffers live
 * longer. The code is written by hand (alloc_fixture.h): only memory entries matter. */
#include "alloc_fixture.h"

typedef struct LL {
  TileTarget t;
  TileMir m;
  TileMirCode c;
} LL;

static void ll_init(LL *l) {
  l->t = af_target("tiny");
  tile_mir_init(&l->m, &l->t);
  memset(&l->c, 0, sizeof l->c);
}

static void ll_free(LL *l) {
  tile_mir_code_free(&l->c);
  tile_mir_free(&l->m);
}

static int32_t vbuf(LL *l, const char *name) {
  return tile_mir_buffer(&l->m, name, TILE_SPACE_VMEM, 4096, 1, 64);
}

/* A vector load of buf in bundle p; store() a vector store, for a second buffer in the
 * same bundle (one load word per bundle on tiny). */
static void use(LL *l, int32_t p, int32_t buf) {
  af_put(&l->c, p, af_mem(af_op(TILE_MOP_VLD, 1, 0, 0, 0, 0), buf, TILE_MIR_READ));
}
static void store(LL *l, int32_t p, int32_t buf) {
  af_put(&l->c, p, af_mem(af_op(TILE_MOP_VST, 0, 1, 0, 2, 0), buf, TILE_MIR_WRITE));
}

static bool lay(LL *l) {
  TileDiag d;
  tile_diag_init(&d, stderr, "test", NULL, 0);
  return tile_mir_layout_code(&l->m, &l->c, &d);
}

TEST(layout_live, disjoint_lives_share) {
  LL l;
  ll_init(&l);
  int32_t a = vbuf(&l, "a"), b = vbuf(&l, "b"), c = vbuf(&l, "c");
  use(&l, 0, a);
  use(&l, 1, a);
  store(&l, 1, c); /* meets a */
  use(&l, 3, b); /* after a: a's bytes */
  use(&l, 4, b);
  af_halt(&l.c, 5);
  REQUIRE(lay(&l));
  CHECK_EQ(0, l.m.bufs[a].addr);
  CHECK_EQ(4096, l.m.bufs[c].addr);
  CHECK_EQ(0, l.m.bufs[b].addr);
  ll_free(&l);
}

TEST(layout_live, a_loop_keeps_its_buffers_apart) {
  LL l;
  ll_init(&l);
  int32_t a = vbuf(&l, "a"), b = vbuf(&l, "b");
  af_loop(&l.c, 0, 4, 10); /* bundles 1..4, ten times */
  use(&l, 1, a);           /* a's last use in one iteration ... */
  use(&l, 3, b);           /* ... comes before b's, but the next iteration reads a again */
  af_halt(&l.c, 5);
  REQUIRE(lay(&l));
  CHECK(l.m.bufs[a].addr != l.m.bufs[b].addr);
  ll_free(&l);
}

TEST(layout_live, a_dma_keeps_its_buffers_until_its_wait) {
  LL l;
  ll_init(&l);
  int32_t src = vbuf(&l, "src"), later = vbuf(&l, "later");
  int32_t hbm = tile_mir_buffer(&l.m, "out", TILE_SPACE_HBM, 4096, 1, 64);
  int32_t desc = tile_mir_buffer(&l.m, "desc", TILE_SPACE_SMEM, 64, 1, 4);
  uint8_t words[64] = {0};
  tile_mir_data(&l.m, desc, words, sizeof words);
  use(&l, 0, src);
  /* dma at 1 reads src; its wait at 5 names only the descriptor and the destination */
  TileMirInst dma = af_op(TILE_MOP_DMA, 0, 1, 0, 0, 0);
  tile_mir_mem(&dma, desc, TILE_MIR_READ, 0);
  tile_mir_mem(&dma, src, TILE_MIR_READ, 0);
  tile_mir_mem(&dma, hbm, TILE_MIR_WRITE, 0);
  af_put(&l.c, 1, dma);
  use(&l, 3, later); /* while the DMA may still read src */
  TileMirInst wait = af_op(TILE_MOP_WAIT, 0, 0, 0, 0, 1);
  tile_mir_mem(&wait, desc, TILE_MIR_WRITE, 0);
  tile_mir_mem(&wait, hbm, TILE_MIR_WRITE, 0);
  af_put(&l.c, 5, wait);
  af_halt(&l.c, 6);
  REQUIRE(lay(&l));
  CHECK(l.m.bufs[src].addr != l.m.bufs[later].addr);
  ll_free(&l);
}

TEST(layout_live, contents_and_remote_writes_live_from_the_start) {
  LL l;
  ll_init(&l);
  int32_t early = vbuf(&l, "early"), consts = vbuf(&l, "consts"), recv = vbuf(&l, "recv");
  int32_t unused = vbuf(&l, "unused"), late = vbuf(&l, "late");
  uint8_t one[4] = {1, 0, 0, 0};
  tile_mir_data(&l.m, consts, one, sizeof one);
  l.m.bufs[recv].remote = true;
  use(&l, 0, early);
  use(&l, 5, consts);
  store(&l, 5, recv);
  use(&l, 6, late); /* early is dead: late takes its bytes */
  af_halt(&l.c, 7);
  REQUIRE(lay(&l));
  CHECK_EQ(0, l.m.bufs[early].addr);
  CHECK(l.m.bufs[consts].addr != 0); /* in place before the first bundle */
  CHECK(l.m.bufs[recv].addr != 0);   /* a peer may write it before bundle 5 */
  CHECK(l.m.bufs[unused].addr != 0); /* named by no bundle: the whole run */
  CHECK_EQ(0, l.m.bufs[late].addr);
  ll_free(&l);
}

TEST(layout_live, overflow_counts_the_buffers_live_beside) {
  LL l;
  ll_init(&l); /* tiny: 1 MiB of VMEM */
  int32_t a = tile_mir_buffer(&l.m, "a", TILE_SPACE_VMEM, 600 << 10, 1, 64);
  int32_t b = tile_mir_buffer(&l.m, "b", TILE_SPACE_VMEM, 600 << 10, 1, 64);
  int32_t c = tile_mir_buffer(&l.m, "c", TILE_SPACE_VMEM, 600 << 10, 1, 64);
  use(&l, 0, a);
  use(&l, 1, b); /* b shares a's bytes */
  store(&l, 1, c); /* but c lives with b */
  af_halt(&l.c, 2);
  TileDiag d;
  tile_diag_init(&d, NULL, "test", NULL, 0);
  CHECK(!tile_mir_layout_code(&l.m, &l.c, &d));
  CHECK_STREQ("vmem buffer 'c' needs 600 KiB, but only 424 KiB of the target's 1 MiB is left "
              "beside 1 other vmem buffers live at the same time (600 KiB); the program's "
              "vmem buffers need 1.76 MiB (1843200 bytes) in all",
              d.last);
  ll_free(&l);
}
