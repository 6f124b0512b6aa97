/* Asynchronous permutes (backend-vliw/lower_async.c): a one-hop collective_permute sends
 * in its group; its two waits (the arrival, then its own send, on a semaphore of the
 * function) go before the first later group that reads its result or is another
 * collective, in the order the sends were issued; the loops of the groups between
 * leave the sends' DMAs in flight (LOOP_BEGIN b); a permute with nothing between it and
 * its reader stays synchronous; the programs run strict on the torus and leave no
 * semaphore held. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "compile_fixture.h"
#include "tile/ops.h"

#define MESH "mesh @m = torus<4x4>(d, t)\n"
#define XT "tensor<64x128xf32>"

/* x -> permute along t; an independent matmul; the add reads the permute's result. */
static const char *ONE =
    MESH "func @f(%x: " XT ", %a: tensor<256x512xbf16>, %b: tensor<512x512xbf16>) -> (" XT
    ", tensor<256x512xf32>) attributes {mesh = @m} {\n"
    "  %y = collective_permute %x {axis = t, shift = 1} : " XT "\n"
    "  %m = matmul %a, %b : tensor<256x512xf32>\n"
    "  %z = add %y, %x : " XT "\n"
    "  return %z, %m\n"
    "}\n";

/* Two permutes on one ring (one band semaphore), then the matmul, then their reader. */
static const char *TWO =
    MESH "func @f(%x: " XT ", %w: " XT ", %a: tensor<256x512xbf16>, %b: tensor<512x512xbf16>)"
    " -> (" XT ", tensor<256x512xf32>) attributes {mesh = @m} {\n"
    "  %y = collective_permute %x {axis = t, shift = 1} : " XT "\n"
    "  %v = collective_permute %w {axis = t, shift = 1} : " XT "\n"
    "  %m = matmul %a, %b : tensor<256x512xf32>\n"
    "  %z = add %y, %v : " XT "\n"
    "  return %z, %m\n"
    "}\n";

/* An all_reduce between the matmul and the reader takes the waits first. */
static const char *COLL =
    MESH "func @f(%x: " XT ", %s: " XT ", %a: tensor<256x512xbf16>, %b: tensor<512x512xbf16>)"
    " -> (" XT ", tensor<256x512xf32>) attributes {mesh = @m} {\n"
    "  %y = collective_permute %x {axis = t, shift = 1} : " XT "\n"
    "  %m = matmul %a, %b : tensor<256x512xf32>\n"
    "  %r = all_reduce %s {kind = add, axes = [t]} : " XT "\n"
    "  %z = add %y, %r : " XT "\n"
    "  return %z, %m\n"
    "}\n";

/* The reader right after the permute: nothing to overlap. */
static const char *NEXT =
    MESH "func @f(%x: " XT ") -> " XT " attributes {mesh = @m} {\n"
    "  %y = collective_permute %x {axis = t, shift = -1} : " XT "\n"
    "  %z = add %y, %x : " XT "\n"
    "  return %z\n"
    "}\n";


static int32_t find_buf(const TileMir *m, const char *name) {
  for (int32_t i = 0; i < m->nbufs; i++)
    if (strcmp(m->bufs[i].name, name) == 0) return i;
  return -1;
}


/* First and last inst attributed to op (-1 when none). */
static void span_of(const TileMir *m, const char *op, int32_t *first, int32_t *last) {
  *first = *last = -1;
  for (int32_t i = 0; i < m->ninsts; i++)
    if (inst_from(m, &m->insts[i], op)) {
      if (*first < 0) *first = i;
      *last = i;
    }
}

/* The permute's insts of one kind, in order. */
static int permute_insts(const TileMir *m, int op, int32_t *at, int max) {
  int n = 0;
  for (int32_t i = 0; i < m->ninsts && n < max; i++)
    if (m->insts[i].op == op && inst_from(m, &m->insts[i], "collective_permute")) at[n++] = i;
  return n;
}

static bool names(const TileMirInst *in, int32_t buf) {
  for (int k = 0; k < TILE_MIR_MAX_MEM; k++)
    if (in->mem[k].buf == buf) return true;
  return false;
}

/* The first inst of lo .. hi but a wait that names buf (-1: none). */
static int32_t first_use(const TileMir *m, int32_t lo, int32_t hi, int32_t buf) {
  for (int32_t i = lo; i <= hi; i++)
    if (m->insts[i].op != TILE_MOP_WAIT && names(&m->insts[i], buf)) return i;
  return -1;
}

/* Every LOOP_BEGIN attributed to op has b == want. */
static bool loops_reserve(const TileMir *m, const char *op, int32_t want) {
  bool any = false;
  for (int32_t i = 0; i < m->ninsts; i++)
    if (m->insts[i].op == TILE_MIR_LOOP_BEGIN && inst_from(m, &m->insts[i], op)) {
      any = true;
      if (m->insts[i].b != want) return false;
    }
  return any;
}

TEST(lower_async, waits_move_to_the_reader) {
  Lowered L;
  REQUIRE(lower_verified(&L, "v5e-like", ONE));
  const TileMir *m = &L.mir;
  int32_t send[4], wait[4], mm0, mm1, add0, add1;
  REQUIRE(permute_insts(m, TILE_MOP_DMA, send, 4) == 1);
  REQUIRE(permute_insts(m, TILE_MOP_WAIT, wait, 4) == 2);
  span_of(m, "matmul", &mm0, &mm1);
  span_of(m, "add", &add0, &add1);
  REQUIRE(mm0 >= 0 && add0 >= 0);
  CHECK(send[0] < mm0);                      /* the send stays before the matmul */
  int32_t y = m->insts[send[0]].mem[2].buf, desc = m->insts[send[0]].mem[0].buf;
  /* its waits come after it, right before the add first copies the result in */
  CHECK(mm1 < wait[0] && wait[1] < first_use(m, add0, add1, y));
  int32_t x = find_buf(m, "x");
  CHECK(names(&m->insts[wait[0]], y));       /* the arrival guards the result */
  CHECK(names(&m->insts[wait[1]], desc) && names(&m->insts[wait[1]], x));
  /* the send completes on a semaphore no other op of the program waits for or signals */
  int32_t sent = m->insts[wait[1]].c;
  CHECK_EQ(sent, desc_sem(m, desc));
  CHECK(m->insts[wait[0]].c != sent);
  for (int32_t i = 0; i < m->ninsts; i++) {
    const TileMirInst *in = &m->insts[i];
    if ((in->op == TILE_MOP_WAIT || in->op == TILE_MOP_SIGNAL) && i != wait[1])
      CHECK(in->c != sent);
  }
  for (int32_t i = 0; i < m->ninsts; i++) { /* every descriptor of every other DMA */
    const TileMirInst *in = &m->insts[i];
    int32_t b = in->mem[0].buf;
    if (in->op != TILE_MOP_DMA || b == desc || !m->bufs[b].init) continue;
    for (int64_t e = 0; e + 64 <= m->bufs[b].init_len; e += 64) {
      const uint8_t *w = m->bufs[b].init + e + 14 * 4;
      CHECK((int32_t)(w[0] | w[1] << 8 | w[2] << 16 | (uint32_t)w[3] << 24) != sent);
    }
  }
  CHECK(sent < L.t.nsems);
  /* the matmul's loops leave the send its DMA; the add's need none */
  CHECK(loops_reserve(m, "matmul", 1));
  for (int32_t i = add0; i <= add1; i++)
    if (m->insts[i].op == TILE_MIR_LOOP_BEGIN) CHECK_EQ(0, m->insts[i].b);
  CHECK(schedules(&L, NULL));
  lowered_free(&L);
}

TEST(lower_async, waits_in_the_order_of_the_sends) {
  Lowered L;
  REQUIRE(lower_verified(&L, "v5e-like", TWO));
  const TileMir *m = &L.mir;
  int32_t send[4], wait[8], mm0, mm1, add0, add1;
  REQUIRE(permute_insts(m, TILE_MOP_DMA, send, 4) == 2);
  REQUIRE(permute_insts(m, TILE_MOP_WAIT, wait, 8) == 4);
  span_of(m, "matmul", &mm0, &mm1);
  span_of(m, "add", &add0, &add1);
  int32_t y = m->insts[send[0]].mem[2].buf, v = m->insts[send[1]].mem[2].buf;
  /* after the matmul, each right before the add first copies its result in */
  CHECK(send[1] < mm0 && mm1 < wait[0]);
  CHECK(wait[1] < first_use(m, add0, add1, y) && wait[3] < first_use(m, add0, add1, v));
  CHECK(first_use(m, add0, add1, y) < wait[2]);
  /* one band semaphore: the first arrival waited for is the first sent */
  CHECK_EQ(m->insts[wait[0]].c, m->insts[wait[2]].c);
  CHECK(names(&m->insts[wait[0]], y) && names(&m->insts[wait[2]], v));
  CHECK(names(&m->insts[wait[1]], m->insts[send[0]].mem[0].buf));
  CHECK(names(&m->insts[wait[3]], m->insts[send[1]].mem[0].buf));
  CHECK(loops_reserve(m, "matmul", 2));
  CHECK(schedules(&L, NULL));
  lowered_free(&L);
}

TEST(lower_async, another_collective_takes_the_waits_first) {
  Lowered L;
  REQUIRE(lower_verified(&L, "v5e-like", COLL));
  const TileMir *m = &L.mir;
  int32_t wait[4], mm0, mm1, ar0, ar1;
  REQUIRE(permute_insts(m, TILE_MOP_WAIT, wait, 4) == 2);
  span_of(m, "matmul", &mm0, &mm1);
  span_of(m, "all_reduce", &ar0, &ar1);
  REQUIRE(ar0 >= 0);
  CHECK(mm1 < wait[0] && wait[1] < ar0);
  for (int32_t i = ar0; i <= ar1; i++)
    if (m->insts[i].op == TILE_MIR_LOOP_BEGIN) CHECK_EQ(0, m->insts[i].b);
  lowered_free(&L);
}

TEST(lower_async, synchronous_where_nothing_runs_between) {
  Lowered L;
  REQUIRE(lower_verified(&L, "v5e-like", NEXT));
  const TileMir *m = &L.mir;
  int32_t send[4], wait[4], add0, add1;
  REQUIRE(permute_insts(m, TILE_MOP_DMA, send, 4) == 1);
  REQUIRE(permute_insts(m, TILE_MOP_WAIT, wait, 4) == 2);
  span_of(m, "add", &add0, &add1);
  CHECK(wait[1] < add0);
  /* the group's own semaphore, as before: the add's group numbers its own from the
   * same first id again */
  int32_t desc = m->insts[send[0]].mem[0].buf, sent = m->insts[wait[1]].c;
  CHECK_EQ(sent, desc_sem(m, desc));
  bool shared = false;
  for (int32_t i = add0; i <= add1; i++)
    shared |= m->insts[i].op == TILE_MOP_WAIT && m->insts[i].c == sent;
  CHECK(shared);
  for (int32_t i = 0; i < m->ninsts; i++)
    if (m->insts[i].op == TILE_MIR_LOOP_BEGIN) CHECK_EQ(0, m->insts[i].b);
  lowered_free(&L);
}

/* The whole pipeline, strict (no hazard, DMAs in flight within the target's limit), on
 * a ring (tiny 1x4) and lines (v5e-like 4x4); no semaphore is left held. */
TEST(lower_async, runs_strict_on_the_torus) {
  static const struct {
    const char *target, *torus;
  } cases[] = {{"tiny", "1x4"}, {"v5e-like", "4x4"}};
  const char *srcs[] = {ONE, TWO, COLL};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    for (size_t j = 0; j < sizeof srcs / sizeof srcs[0]; j++) {
      TileTarget t;
      REQUIRE(target_for(cases[i].target, cases[i].torus, &t));
      char src[2048];
      snprintf(src, sizeof src, "mesh @m = torus<%s>(d, t)\n%s", cases[i].torus,
               strchr(srcs[j], '\n') + 1);
      TileObject obj;
      char err[600];
      bool ok = compile_text(&t, src, NULL, err, sizeof err, &obj);
      if (!ok) fprintf(stderr, "%s %zu: %s\n", cases[i].target, j, err);
      CHECK(ok);
      if (ok) {
        int held = -1;
        CHECK_EQ(TILE_EMU_OK, run_object(&obj, &t, &held));
        CHECK_EQ(0, held);
      }
      tile_object_free(&obj);
    }
}
