/* The pass manager: the table and the pipeline, running passes in order, the
 * verification after each pass (a pass that breaks the IR is an internal error),
 * how failures are reported, and printing after one pass or after all. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "parse_fixture.h"
#include "tile/ops.h"
#include "tile/pass.h"
#include "tile/text.h"
#include "tile/verify.h"

static const char *PROGRAM = "func @f(%x: tensor<2x8xf32>) -> tensor<2x8xf32> {\n"
                             "  %p = softmax %x {dim = 1} : tensor<2x8xf32>\n"
                             "  return %p\n"
                             "}\n";


/* A diag that writes into a string, so tests can read what was reported. */
typedef struct Captured {
  char *text;
  size_t len;
  FILE *f;
  TileDiag d;
} Captured;

static void capture(Captured *c) {
  c->text = NULL;
  c->len = 0;
  c->f = open_memstream(&c->text, &c->len);
  tile_diag_init(&c->d, c->f, "prog.tile", NULL, 0);
}

static const char *captured(Captured *c) {
  fflush(c->f);
  return c->text ? c->text : "";
}

static void release(Captured *c) {
  fclose(c->f);
  free(c->text);
}

/* ---- passes for the tests ---- */

static int runs;

static TilePassStatus count_pass(TileModule *m, TileDiag *d) {
  runs++;
  return TILE_PASS_OK;
}

/* Gives the first op's result a type its rule does not give. */
static TilePassStatus break_pass(TileModule *m, TileDiag *d) {
  TileOp *op = m->funcs->body->first;
  op->res[0]->type = tile_type_tensor(TILE_ELEM_F32, 1, (int64_t[]){3});
  return TILE_PASS_OK;
}

static TilePassStatus refuse_pass(TileModule *m, TileDiag *d) {
  tile_error(d, (TileLoc){0}, "this program cannot be compiled");
  return TILE_PASS_FAILED;
}

static TilePassStatus silent_failure_pass(TileModule *m, TileDiag *d) { return TILE_PASS_FAILED; }

static TilePassStatus errors_but_ok_pass(TileModule *m, TileDiag *d) {
  tile_error(d, (TileLoc){0}, "something went wrong");
  return TILE_PASS_OK;
}

static const TilePass COUNT = {"count", count_pass, "counts its runs"};
static const TilePass BREAK = {"break", break_pass, "breaks the IR"};
static const TilePass REFUSE = {"refuse", refuse_pass, "refuses the program"};
static const TilePass SILENT = {"silent", silent_failure_pass, "fails without a word"};
static const TilePass ERRORS_OK = {"errors_ok", errors_but_ok_pass, "reports and succeeds"};

/* ---- the table ---- */

TEST(manager, table_and_pipeline) {
  const TilePass *p = tile_pass_find("decompose");
  REQUIRE(p != NULL);
  CHECK_STREQ("decompose", p->name);
  CHECK(p->run == tile_pass_decompose);
  CHECK(p->summary && p->summary[0]);
  CHECK(tile_pass_find("nope") == NULL);
  CHECK(tile_pass_find(NULL) == NULL);
  CHECK(tile_npasses >= 1);
  CHECK_EQ(0, tile_pipeline_index("decompose"));
  CHECK_EQ(-1, tile_pipeline_index("nope"));
  /* Every pipeline entry names a pass of the table, once. */
  for (int i = 0; i < tile_pipeline_len; i++) {
    CHECK(tile_pass_find(tile_pipeline[i]) != NULL);
    CHECK_EQ(i, tile_pipeline_index(tile_pipeline[i]));
  }
  char names[256];
  tile_pass_names(names, sizeof names);
  CHECK(strstr(names, "decompose") == names);
  char tiny[4];
  tile_pass_names(tiny, sizeof tiny); /* truncated, still a string */
  CHECK_EQ(3, strlen(tiny));
}

/* ---- running ---- */

TEST(manager, runs_passes_in_order) {
  TileModule *m = parse(PROGRAM);
  REQUIRE(m != NULL);
  Captured c;
  capture(&c);
  runs = 0;
  const TilePass *passes[] = {&COUNT, tile_pass_find("decompose"), &COUNT};
  CHECK_EQ(TILE_PASS_OK, tile_run_passes(m, passes, 3, NULL, &c.d));
  CHECK_EQ(2, runs);
  CHECK_EQ(0, c.d.nerrors);
  CHECK(m->funcs->body->first->kind != TILE_OP_SOFTMAX);
  release(&c);
  tile_module_free(m);
}

TEST(manager, unknown_pass_name) {
  TileModule *m = parse(PROGRAM);
  REQUIRE(m != NULL);
  Captured c;
  capture(&c);
  const char *names[] = {"decompose", "nope"};
  CHECK_EQ(TILE_PASS_FAILED, tile_run_pipeline(m, names, 2, NULL, &c.d));
  CHECK(strstr(captured(&c), "error: unknown pass 'nope' (passes: decompose") != NULL);
  /* Nothing ran: the names are checked first. */
  CHECK_EQ(TILE_OP_SOFTMAX, m->funcs->body->first->kind);
  release(&c);
  tile_module_free(m);
}

TEST(manager, broken_ir_is_an_internal_error) {
  TileModule *m = parse(PROGRAM);
  REQUIRE(m != NULL);
  Captured c;
  capture(&c);
  runs = 0;
  const TilePass *passes[] = {&BREAK, &COUNT};
  CHECK_EQ(TILE_PASS_INTERNAL, tile_run_passes(m, passes, 2, NULL, &c.d));
  CHECK_EQ(0, runs); /* nothing runs after a broken pass */
  CHECK_EQ(1, c.d.nerrors);
  CHECK(strstr(captured(&c), "prog.tile: error: internal error: after pass 'break': ") != NULL);
  CHECK_STREQ("internal error: after pass 'break': 'softmax' result type tensor<3xf32> does "
              "not match the inferred tensor<2x8xf32>",
              c.d.last);
  release(&c);
  tile_module_free(m);
}

TEST(manager, failures_are_reported) {
  TileModule *m = parse(PROGRAM);
  REQUIRE(m != NULL);
  Captured c;
  capture(&c);
  runs = 0;
  const TilePass *refuse[] = {&REFUSE, &COUNT};
  CHECK_EQ(TILE_PASS_FAILED, tile_run_passes(m, refuse, 2, NULL, &c.d));
  CHECK_EQ(0, runs);
  CHECK_STREQ("this program cannot be compiled", c.d.last);

  const TilePass *silent[] = {&SILENT};
  CHECK_EQ(TILE_PASS_FAILED, tile_run_passes(m, silent, 1, NULL, &c.d));
  CHECK_STREQ("pass 'silent' failed without a message", c.d.last);

  const TilePass *errors_ok[] = {&ERRORS_OK};
  CHECK_EQ(TILE_PASS_INTERNAL, tile_run_passes(m, errors_ok, 1, NULL, &c.d));
  CHECK_STREQ("internal error: pass 'errors_ok' reported errors but succeeded", c.d.last);
  release(&c);
  tile_module_free(m);
}

/* ---- printing ---- */

static int count_substr(const char *s, const char *sub) {
  int n = 0;
  for (const char *p = strstr(s, sub); p; p = strstr(p + 1, sub)) n++;
  return n;
}

TEST(manager, print_after_one_pass) {
  TileModule *m = parse(PROGRAM);
  REQUIRE(m != NULL);
  Captured c, dump;
  capture(&c);
  capture(&dump);
  TilePassPrint print = {dump.f, "decompose", false};
  const TilePass *passes[] = {&COUNT, tile_pass_find("decompose"), &COUNT};
  CHECK_EQ(TILE_PASS_OK, tile_run_passes(m, passes, 3, &print, &c.d));
  const char *text = captured(&dump);
  CHECK_EQ(1, count_substr(text, "// ----- IR after pass"));
  CHECK(strstr(text, "// ----- IR after pass 'decompose' -----\nfunc @f(") == text);
  CHECK(strstr(text, "%p.max = reduce %x {kind = max, dims = [1]}") != NULL);
  /* The dump is the module as text: it parses back and verifies. */
  TileModule *back = parse(text);
  CHECK(back != NULL);
  tile_module_free(back);
  release(&dump);
  release(&c);
  tile_module_free(m);
}

TEST(manager, print_after_all) {
  TileModule *m = parse(PROGRAM);
  REQUIRE(m != NULL);
  Captured c, dump;
  capture(&c);
  capture(&dump);
  TilePassPrint print = {dump.f, NULL, true};
  const TilePass *passes[] = {&COUNT, tile_pass_find("decompose")};
  CHECK_EQ(TILE_PASS_OK, tile_run_passes(m, passes, 2, &print, &c.d));
  const char *text = captured(&dump);
  const char *first = strstr(text, "// ----- IR after pass 'count' -----\n");
  const char *second = strstr(text, "// ----- IR after pass 'decompose' -----\n");
  CHECK(first == text);
  CHECK(second != NULL && second > first);
  /* After count the softmax is still there; after decompose it is gone. */
  CHECK_EQ(1, count_substr(text, "softmax"));
  release(&dump);
  release(&c);
  tile_module_free(m);
}

TEST(manager, broken_ir_is_printed_before_it_is_refused) {
  TileModule *m = parse(PROGRAM);
  REQUIRE(m != NULL);
  Captured c, dump;
  capture(&c);
  capture(&dump);
  TilePassPrint print = {dump.f, "break", false};
  const TilePass *passes[] = {&BREAK};
  CHECK_EQ(TILE_PASS_INTERNAL, tile_run_passes(m, passes, 1, &print, &c.d));
  CHECK(strstr(captured(&dump), "// ----- IR after pass 'break' -----\n") != NULL);
  CHECK(strstr(captured(&dump), "softmax %x {dim = 1} : tensor<3xf32>") != NULL);
  release(&dump);
  release(&c);
  tile_module_free(m);
}
