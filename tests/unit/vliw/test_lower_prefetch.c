/* Cross-group prefetch (backend-vliw/lower_prefetch.c, gen_matmul_dma.c "Prefetch"):
 * a matmul after a collective gets its first weight pieces copied by DMAs on a
 * semaphore of their own, moved to the start of the collective's group; the matmul
 * waits for them before its first block; its ring grows by the pieces copied; the
 * program schedules and runs strict on the torus. Functions without a mesh, without a
 * collective before the matmul, or whose weights are computed are lowered without
 * one. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "compile_fixture.h"
#include "tile/ops.h"

/* A per-chip mesh program: an all_reduce, a convert, a matmul by a parameter. */
#define PF_BODY(ATTRS)                                                                    \
  "func @f(%x: tensor<8x1024xf32>, %w: tensor<1024x2048xbf16>) -> tensor<8x2048xf32>"    \
  ATTRS " {\n"                                                                           \
  "  %s = all_reduce %x {kind = add, axes = [t]} : tensor<8x1024xf32>\n"                 \
  "  %b = convert %s : tensor<8x1024xbf16>\n"                                            \
  "  %y = matmul %b, %w : tensor<8x2048xf32>\n"                                          \
  "  return %y\n"                                                                        \
  "}\n"
static const char *PF_MESH = "mesh @m = torus<4x4>(d, t)\n" PF_BODY(" attributes {mesh = @m}");

/* The same matmul without the collective: a convert, then the matmul. */
#define PLAIN_BODY(ATTRS)                                                                 \
  "func @f(%x: tensor<8x1024xf32>, %w: tensor<1024x2048xbf16>) -> tensor<8x2048xf32>"    \
  ATTRS " {\n"                                                                           \
  "  %b = convert %x : tensor<8x1024xbf16>\n"                                            \
  "  %y = matmul %b, %w : tensor<8x2048xf32>\n"                                          \
  "  return %y\n"                                                                        \
  "}\n"

static int32_t find_buf(const TileMir *m, const char *prefix) {
  for (int32_t i = 0; i < m->nbufs; i++)
    if (strncmp(m->bufs[i].name, prefix, strlen(prefix)) == 0) return i;
  return -1;
}

static int count_bufs(const TileMir *m, const char *prefix) {
  int n = 0;
  for (int32_t i = 0; i < m->nbufs; i++) n += strncmp(m->bufs[i].name, prefix, strlen(prefix)) == 0;
  return n;
}



TEST(lower_prefetch, weight_dma_moves_before_the_collective) {
  Lowered L;
  REQUIRE(lower_verified(&L, "v5e-like", PF_MESH));
  const TileMir *m = &L.mir;
  int32_t desc = find_buf(m, "matmul.pf");
  REQUIRE(desc >= 0);
  int32_t sem = desc_sem(m, desc);
  int32_t first_coll = -1, last_coll = -1, pf_dma = -1, pf_dmas = 0, pf_waits = 0;
  for (int32_t i = 0; i < m->ninsts; i++) {
    const TileMirInst *in = &m->insts[i];
    if (inst_from(m, in, "all_reduce")) {
      if (first_coll < 0) first_coll = i;
      last_coll = i;
    }
    if (in->op == TILE_MOP_DMA && m->bufs[in->mem[0].buf].name[0] &&
        strncmp(m->bufs[in->mem[0].buf].name, "matmul.pf", 9) == 0) {
      if (pf_dma < 0) pf_dma = i;
      pf_dmas++;
      CHECK(inst_from(m, in, "matmul"));        /* attributed to the op it is for */
      CHECK(in->mem[1].buf == find_buf(m, "w")); /* reads the weights ... */
      CHECK(strcmp(m->bufs[in->mem[2].buf].name, "matmul.b") == 0); /* into the ring */
    }
    if (in->op == TILE_MOP_WAIT && in->c == sem) {
      pf_waits++;
      CHECK(inst_from(m, in, "matmul"));
      CHECK(i > last_coll);             /* every wait stays in the matmul's group */
    }
    if (in->op == TILE_MOP_SIGNAL) CHECK(in->c != sem);
  }
  REQUIRE(first_coll >= 0);
  /* before every op of the collective but its operand's load into VMEM and the wait for
   * it (the copies must not share HBM with that load), and before its last op */
  CHECK(pf_dma >= 0 && pf_dma < last_coll);
  int32_t coll_dmas = 0, coll_waits = 0;
  for (int32_t i = first_coll; i < pf_dma; i++) {
    coll_dmas += m->insts[i].op == TILE_MOP_DMA && inst_from(m, &m->insts[i], "all_reduce");
    coll_waits += m->insts[i].op == TILE_MOP_WAIT && inst_from(m, &m->insts[i], "all_reduce");
  }
  CHECK(coll_dmas <= 1 && coll_waits == coll_dmas);
  CHECK(pf_dmas >= 1 && pf_dmas <= 2);
  CHECK_EQ(pf_dmas, pf_waits);
  CHECK_EQ(pf_dmas, count_bufs(m, "matmul.pf"));
  /* The semaphore is no group's own: no other descriptor the program holds (single
   * ones, 64 bytes) signals it, and no wait of the collective takes it. */
  for (int32_t b = 0; b < m->nbufs; b++)
    if (m->bufs[b].space == TILE_SPACE_SMEM && m->bufs[b].init && m->bufs[b].bytes == 64 &&
        strncmp(m->bufs[b].name, "matmul.pf", 9) != 0)
      CHECK(desc_sem(m, b) != sem);
  for (int32_t i = first_coll; i <= last_coll; i++)
    if (m->insts[i].op == TILE_MOP_WAIT && inst_from(m, &m->insts[i], "all_reduce"))
      CHECK(m->insts[i].c != sem);
  TileMirCode code;
  CHECK(schedules(&L, &code));
  tile_mir_code_free(&code);
  lowered_free(&L);
}

TEST(lower_prefetch, ring_grows_by_the_pieces_copied) {
  Lowered a, b;
  lower_text(&a, "v5e-like", PF_MESH);
  lower_text(&b, "v5e-like", "mesh @m = torus<4x4>(d, t)\n" PLAIN_BODY(" attributes {mesh = @m}"));
  REQUIRE(a.ok && b.ok);
  int32_t ra = find_buf(&a.mir, "matmul.b"), rb = find_buf(&b.mir, "matmul.b");
  REQUIRE(ra >= 0 && rb >= 0);
  CHECK(a.mir.bufs[ra].bytes > b.mir.bufs[rb].bytes);
  /* Every block still waits once per piece: the B table keeps its length. */
  int32_t ta = find_buf(&a.mir, "matmul.bdesc"), tb = find_buf(&b.mir, "matmul.bdesc");
  REQUIRE(ta >= 0 && tb >= 0);
  CHECK_EQ(b.mir.bufs[tb].bytes, a.mir.bufs[ta].bytes);
  lowered_free(&a);
  lowered_free(&b);
}

TEST(lower_prefetch, none_where_it_cannot_or_may_not) {
  const char *srcs[] = {
      /* no mesh */
      PLAIN_BODY(""),
      /* a mesh, no collective */
      "mesh @m = torus<4x4>(d, t)\n" PLAIN_BODY(" attributes {mesh = @m}"),
      /* a collective, but the weights are computed (a convert of a parameter) */
      "mesh @m = torus<4x4>(d, t)\n"
      "func @f(%x: tensor<8x1024xf32>, %w: tensor<1024x2048xf32>) -> tensor<8x2048xf32>"
      " attributes {mesh = @m} {\n"
      "  %wb = convert %w : tensor<1024x2048xbf16>\n"
      "  %s = all_reduce %x {kind = add, axes = [t]} : tensor<8x1024xf32>\n"
      "  %b = convert %s : tensor<8x1024xbf16>\n"
      "  %y = matmul %b, %wb : tensor<8x2048xf32>\n"
      "  return %y\n"
      "}\n",
      /* a collective of 1 MiB over both axes: its ring steps issue more DMAs than
       * dma.outstanding, so no copy may be in flight beside them */
      "mesh @m = torus<4x4>(d, t)\n"
      "func @f(%x: tensor<64x4096xf32>, %w: tensor<4096x1024xbf16>) -> tensor<64x1024xf32>"
      " attributes {mesh = @m} {\n"
      "  %s = all_reduce %x {kind = add, axes = [d, t]} : tensor<64x4096xf32>\n"
      "  %b = convert %s : tensor<64x4096xbf16>\n"
      "  %y = matmul %b, %w : tensor<64x1024xf32>\n"
      "  return %y\n"
      "}\n",
  };
  for (size_t i = 0; i < sizeof srcs / sizeof srcs[0]; i++) {
    Lowered L;
    lower_text(&L, "v5e-like", srcs[i]);
    if (!L.ok) fprintf(stderr, "%zu: %s\n", i, L.err);
    REQUIRE(L.ok);
    CHECK_EQ(0, count_bufs(&L.mir, "matmul.pf"));
    lowered_free(&L);
  }
}

/* After lowering: the prefetch copies' descriptors the MIR holds, into *(int *)user. */
static void count_copies(void *user, TileVliwStage stage, const TileVliwResult *r) {
  if (stage == TILE_VLIW_MIR) *(int *)user = count_bufs(r->mir, "matmul.pf");
}

/* The whole pipeline, strict: no hazard, no more DMAs in flight than the target allows
 * (tiny allows 8), every chip halts; on v5e-like the all_reduce over one axis and over
 * both. */
TEST(lower_prefetch, runs_strict_on_the_torus) {
  /* tiny's collectives keep more of its 8 DMAs busy: a smaller one leaves room */
  static const char *small =
      "func @f(%x: tensor<8x256xf32>, %w: tensor<256x1024xbf16>) -> tensor<8x1024xf32>"
      " attributes {mesh = @m} {\n"
      "  %s = all_reduce %x {kind = add, axes = [t]} : tensor<8x256xf32>\n"
      "  %b = convert %s : tensor<8x256xbf16>\n"
      "  %y = matmul %b, %w : tensor<8x1024xf32>\n"
      "  return %y\n"
      "}\n";
  static const struct {
    const char *target, *torus, *axes;
  } cases[] = {{"tiny", "2x2", "[t]"}, {"tiny", "1x4", "[t]"},
               {"v5e-like", "4x4", "[t]"}, {"v5e-like", "4x4", "[d, t]"}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    TileTarget t;
    REQUIRE(target_for(cases[i].target, cases[i].torus, &t));
    char src[2048];
    snprintf(src, sizeof src, "mesh @m = torus<%s>(d, t)\n%s", cases[i].torus,
             i < 2 ? small : strchr(PF_MESH, '\n') + 1);
    char *at = strstr(src, "axes = [t]");
    REQUIRE(at != NULL);
    char rest[2048];
    snprintf(rest, sizeof rest, "%s", at + strlen("axes = [t]"));
    snprintf(at, sizeof src - (size_t)(at - src), "axes = %s%s", cases[i].axes, rest);
    TileObject obj;
    char err[600];
    int copies = 0; /* a prefetch is there to check */
    TileVliwOptions vo = {.stop_after = TILE_VLIW_OBJECT, .on_stage = count_copies,
                          .user = &copies};
    bool ok = compile_text(&t, src, &vo, err, sizeof err, &obj);
    if (copies < 1) fprintf(stderr, "no prefetch on %s %s\n", cases[i].target, cases[i].torus);
    CHECK(copies >= 1);
    if (!ok) fprintf(stderr, "%s: %s\n", cases[i].target, err);
    CHECK(ok);
    if (ok) CHECK_EQ(TILE_EMU_OK, run_object(&obj, &t, NULL));
    tile_object_free(&obj);
  }
}
