/* Machine descriptions: the shipped targets load and print back to themselves, numbers
 * are exact, every class of bad file is rejected with its message and location, and the
 * cycle conversions are exact. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "tile/target.h"

static const char *shipped[] = {"tiny", "v4-like", "v5e-like", "v5p-like"};

/* A complete, valid description to edit: the base text with one key replaced. */
static const char base[] =
    "name = t\n"
    "source = \"test\"\n"
    "clock_hz = 1e9\n"
    "slots.scalar = 2\nslots.vector = 2\nslots.vload = 1\nslots.vstore = 1\n"
    "slots.mxu = 1\nslots.xlu = 1\nslots.dma = 1\nslots.branch = 1\n"
    "lat.salu = 1\nlat.smem = 2\nlat.valu = 2\nlat.trans = 4\nlat.vload = 2\n"
    "lat.vstore = 1\nlat.mxu_weights = 4\nlat.mxu_result = 16\nlat.mxu_pop = 1\n"
    "lat.xlu = 2\nlat.branch = 1\n"
    "vreg.sublanes = 8\nvreg.lanes = 128\nvregs = 32\nsregs = 32\n"
    "mxu.dim = 128\nmxu.count = 2\nmxu.push_cycles = 8\n"
    "vmem.bytes = 1MiB\nsmem.bytes = 64KiB\nhbm.bytes = 16MiB\n"
    "hbm.bw = 1e11\nvmem.bw = 2.2e12\n"
    "dma.engines = 2\ndma.issue_cycles = 1\ndma.outstanding = 8\nsems = 16\n"
    "torus = 2x2\ntorus.wrap = always\n"
    "ici.bw = 1e10\nici.hop_ns = 20\nwatchdog_cycles = 1e7\n";

/* base with the line of `key` replaced by `line` ("" drops it). */
static char *edit(const char *key, const char *line) {
  static char buf[4096];
  buf[0] = 0;
  const char *p = base;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t klen = strlen(key);
    if (strncmp(p, key, klen) == 0 && p[klen] == ' ') strcat(buf, line);
    else strncat(buf, p, (size_t)(nl - p + 1));
    p = nl + 1;
  }
  return buf;
}

/* Parses src; returns whether it parsed, with all messages in *out. */
static bool parse(const char *src, TileTarget *t, char **out) {
  size_t len;
  FILE *f = open_memstream(out, &len);
  TileDiag d;
  tile_diag_init(&d, f, "t.target", NULL, 0);
  bool ok = tile_target_parse(src, strlen(src), "t.target", t, &d);
  fclose(f);
  return ok;
}

/* The file's first error line must be `want` exactly. */
static void expect_error(const char *src, const char *want) {
  TileTarget t;
  char *out;
  bool ok = parse(src, &t, &out);
  CHECK(!ok);
  char first[400];
  size_t n = strcspn(out, "\n");
  snprintf(first, sizeof first, "%.*s", (int)n, out);
  CHECK_STREQ(want, first);
  free(out);
}

TEST(target, base_parses) {
  TileTarget t;
  char *out;
  bool ok = parse(base, &t, &out);
  CHECK(ok);
  CHECK_STREQ("", out);
  free(out);
  CHECK_EQ(1000000000, t.clock_hz);
  CHECK_EQ(1 << 20, t.vmem_bytes);
  CHECK_EQ(2200000000000LL, t.vmem_bw);
  CHECK_EQ(2, t.torus_rank);
  CHECK(t.wrap[0] && t.wrap[1] && !t.wrap[2]);
}

TEST(target, errors_each_class) {
  expect_error(edit("clock_hz", "clock_hz = 1e9\nfrequency = 3\n"),
               "t.target:4:1: error: unknown key 'frequency'");
  expect_error(edit("lat.valu", ""), "t.target: error: missing key 'lat.valu'");
  expect_error(edit("clock_hz", "clock_hz = 0\n"), "t.target:3:12: error: clock_hz must be at least 1, not 0");
  expect_error(edit("slots.scalar", "slots.scalar = 3\n"),
               "t.target:4:16: error: slots.scalar must be at most 2 (the encoding's scalar slot words), not 3");
  expect_error(edit("lat.salu", "lat.salu = 0\n"), "t.target:12:12: error: lat.salu must be at least 1, not 0");
  expect_error(edit("vregs", "vregs = 65\n"),
               "t.target:25:9: error: vregs must be at most 64 (register fields have 6 bits), not 65");
  expect_error(edit("vreg.lanes", "vreg.lanes = 64\n"),
               "t.target:27:1: error: vreg.lanes (64) must equal mxu.dim (128): a vector register row is one row of MXU input");
  expect_error(edit("torus", "torus = 4x0\n"),
               "t.target:39:9: error: torus: torus axis 1 has length 0; each axis needs at least 1 chip");
  expect_error(edit("torus", "torus = 2x2x2x2\n"), "t.target:39:9: error: torus: a torus has at most 3 axes");
  expect_error(edit("torus.wrap", "torus.wrap = sometimes\n"),
               "t.target:40:14: error: torus.wrap is one of 'never', 'always', 'multiple-of N' or 'equal N'");
  expect_error(edit("torus.wrap", "torus.wrap = equal\n"),
               "t.target:40:14: error: 'equal' needs an axis length, like 'equal 4'");
  expect_error(edit("clock_hz", "clock_hz = 1.5\n"), "t.target:3:12: error: clock_hz: '1.5' is not a whole number");
  expect_error(edit("clock_hz", "clock_hz = 1GiB\n"), "t.target:3:12: error: clock_hz: a unit ('GiB') only fits byte sizes");
  expect_error(edit("hbm.bytes", "hbm.bytes = 16 MiB\n"),
               "t.target:32:13: error: hbm.bytes: unexpected ' MiB' after the number");
  expect_error(edit("hbm.bytes", "hbm.bytes = 99999999999999999999\n"),
               "t.target:32:13: error: hbm.bytes: '99999999999999999999' is too large");
  expect_error(edit("sems", "sems = 8\nsems = 9\n"), "t.target:39:1: error: key 'sems' is given twice (first on line 38)");
  expect_error(edit("name", "name t\n"), "t.target:1:6: error: expected '=' after 'name'");
  expect_error(edit("name", "name = a/b\n"),
               "t.target:1:8: error: name must be 1 to 63 letters, digits, '_', '.' or '-'");
  expect_error(edit("source", "source = \"open\n"), "t.target:2:10: error: unterminated string");
  expect_error(edit("vmem.bytes", "vmem.bytes = 4GiB\n"),
               "t.target:30:14: error: vmem.bytes must be at most 2147483647 (VMEM addresses are 32-bit scalars), not 4294967296");
  expect_error(edit("smem.bytes", "smem.bytes = 6\n"),
               "t.target:31:1: error: smem.bytes (6) must be a multiple of 4: SMEM holds 32-bit words");
  expect_error(edit("ici.hop_ns", "ici.hop_ns = 0\n"), "t.target:42:14: error: ici.hop_ns must be at least 1, not 0");
  expect_error(edit("sregs", "sregs =\n"), "t.target:26:8: error: key 'sregs' has no value");
}

TEST(target, error_shows_line_and_caret) {
  TileTarget t;
  char *out;
  CHECK(!parse(edit("clock_hz", "clock_hz = 0  # wrong\n"), &t, &out));
  CHECK_STREQ("t.target:3:12: error: clock_hz must be at least 1, not 0\n"
              "clock_hz = 0  # wrong\n"
              "           ^\n",
              out);
  free(out);
}

TEST(target, several_errors_in_one_file) {
  TileTarget t;
  char *out;
  char src[4096];
  snprintf(src, sizeof src, "%s", edit("vregs", "vregs = 0\n"));
  strcat(src, "bogus = 1\n");
  CHECK(!parse(src, &t, &out));
  CHECK(strstr(out, "vregs must be at least 1") != NULL);
  CHECK(strstr(out, "unknown key 'bogus'") != NULL);
  free(out);
}

TEST(target, exact_numbers) {
  TileTarget t;
  char *out;
  CHECK(parse(edit("hbm.bytes", "hbm.bytes = 1.5MiB\n"), &t, &out));
  free(out);
  CHECK_EQ(1572864, t.hbm_bytes);
  CHECK(parse(edit("hbm.bw", "hbm.bw = 1.23456789012e11\n"), &t, &out));
  free(out);
  CHECK_EQ(123456789012LL, t.hbm_bw);
  CHECK(parse(edit("hbm.bytes", "hbm.bytes = 96GB\n"), &t, &out));
  free(out);
  CHECK_EQ(96000000000LL, t.hbm_bytes);
  CHECK(parse(edit("watchdog_cycles", "watchdog_cycles = 9223372036854775807\n"), &t, &out));
  free(out);
  CHECK_EQ(INT64_MAX, t.watchdog_cycles);
}

static bool load(const char *name, TileTarget *t) {
  TileDiag d;
  tile_diag_init(&d, stderr, name, NULL, 0);
  return tile_target_load(name, t, &d);
}

TEST(target, shipped_targets_load_and_print_back) {
  for (size_t i = 0; i < sizeof shipped / sizeof shipped[0]; i++) {
    TileTarget t, again;
    REQUIRE(load(shipped[i], &t));
    CHECK_STREQ(shipped[i], t.name);
    CHECK(t.source[0] != 0);
    char *text;
    size_t len;
    FILE *f = open_memstream(&text, &len);
    tile_target_print(f, &t);
    fclose(f);
    char *out;
    bool ok = parse(text, &again, &out);
    CHECK(ok);
    CHECK_STREQ("", out);
    CHECK(memcmp(&t, &again, sizeof t) == 0);
    free(out);
    free(text);
  }
}

TEST(target, tpu_like_shapes) {
  for (size_t i = 1; i < sizeof shipped / sizeof shipped[0]; i++) {
    TileTarget t;
    REQUIRE(load(shipped[i], &t));
    CHECK_EQ(8, t.vreg_sublanes);
    CHECK_EQ(128, t.vreg_lanes);
    CHECK_EQ(128, t.mxu_dim);
    CHECK_EQ(2, t.latency[TILE_LAT_VALU]);
  }
}

TEST(target, unknown_name_and_bad_path) {
  TileTarget t;
  TileDiag d;
  tile_diag_init(&d, NULL, "x", NULL, 0);
  CHECK(!tile_target_load("no-such-machine", &t, &d));
  CHECK(strncmp(d.last, "unknown target 'no-such-machine' (looked in: ", 45) == 0);
  CHECK(!tile_target_load("a b", &t, &d));
  CHECK_STREQ("'a b' is not a target name (letters, digits, '_', '.', '-') or a path", d.last);
  CHECK(!tile_target_load("/nonexistent/x.target", &t, &d));
  CHECK_STREQ("cannot read target file '/nonexistent/x.target': No such file or directory", d.last);
}

TEST(target, load_by_path) {
  const char *dir = getenv("TILE_SOURCE_DIR");
  if (!dir) SKIP("TILE_SOURCE_DIR is not set");
  char path[1024];
  snprintf(path, sizeof path, "%s/targets/v5e-like.target", dir);
  TileTarget t;
  REQUIRE(load(path, &t));
  CHECK_STREQ("v5e-like", t.name);
}

TEST(target, torus_override_follows_the_wrap_rule) {
  TileTarget t;
  TileDiag d;
  tile_diag_init(&d, NULL, "x", NULL, 0);
  REQUIRE(load("v4-like", &t));
  CHECK_EQ(64, tile_target_chips(&t));
  CHECK(t.wrap[0] && t.wrap[1] && t.wrap[2]);
  REQUIRE(tile_target_set_torus(&t, "8x8x6", &d));
  CHECK_EQ(384, tile_target_chips(&t));
  CHECK(t.wrap[0] && t.wrap[1] && !t.wrap[2]);
  REQUIRE(load("v5e-like", &t));
  CHECK_EQ(16, tile_target_chips(&t));
  CHECK(!t.wrap[0] && !t.wrap[1]);
  REQUIRE(tile_target_set_torus(&t, "16x8", &d));
  CHECK(t.wrap[0] && !t.wrap[1]);
  REQUIRE(load("tiny", &t));
  REQUIRE(tile_target_set_torus(&t, "4x1", &d));
  CHECK(t.wrap[0] && !t.wrap[1]); /* an axis of length 1 never wraps */
  CHECK(!tile_target_set_torus(&t, "4x", &d));
  CHECK_STREQ("bad torus shape '4x': a torus shape is axis lengths joined by 'x', like 4x4x4", d.last);
  CHECK(!tile_target_set_torus(&t, "1000x1000", &d));
  CHECK_STREQ("bad torus shape '1000x1000': a torus of more than 65536 chips is not supported", d.last);
}

TEST(target, cycle_conversions_are_exact) {
  TileTarget t;
  REQUIRE(load("v5e-like", &t));
  /* 1 MiB at 8.1e11 B/s and 1.5 GHz: 1048576 * 1.5e9 / 8.1e11 = 1941.8... -> 1942 */
  CHECK_EQ(1942, tile_target_xfer_cycles(&t, 1 << 20, t.hbm_bw));
  /* 8.1e11 bytes take exactly one second */
  CHECK_EQ(1500000000, tile_target_xfer_cycles(&t, 810000000000LL, t.hbm_bw));
  CHECK_EQ(1500000001, tile_target_xfer_cycles(&t, 810000000001LL, t.hbm_bw));
  CHECK_EQ(0, tile_target_xfer_cycles(&t, 0, t.hbm_bw));
  CHECK_EQ(1500, tile_target_hop_cycles(&t));
  /* 8 GiB at 1e9 B/s: the product 2^33 x 1.5e9 overflows 64 bits, the result does not */
  CHECK_EQ(12884901888LL, tile_target_xfer_cycles(&t, 1LL << 33, 1000000000));
  CHECK_EQ(INT64_MAX, tile_target_xfer_cycles(&t, INT64_MAX, 1)); /* saturates */
  REQUIRE(load("tiny", &t));
  CHECK_EQ(20, tile_target_hop_cycles(&t));
}
