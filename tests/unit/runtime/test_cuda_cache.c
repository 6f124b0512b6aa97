/* The CUDA JIT compile cache (runtime/cuda_cache.c): keys, entries, atomic writes under
 * concurrent writers, damaged entries, and the compile-through-cache path with a counting
 * stand-in for NVRTC (no toolkit or GPU needed). */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "tile/cuda_runtime.h"

static void temp_dir(char *buf, size_t n) {
  snprintf(buf, n, "/tmp/tile_cuda_cache_XXXXXX");
  REQUIRE(mkdtemp(buf) != NULL);
}

static int count_files(const char *dir, const char *suffix) {
  DIR *d = opendir(dir);
  int n = 0;
  if (!d) return -1;
  for (struct dirent *e; (e = readdir(d));) {
    size_t len = strlen(e->d_name), k = strlen(suffix);
    if (e->d_name[0] != '.' || !strcmp(suffix, ".tmp"))
      n += len >= k && strcmp(e->d_name + len - k, suffix) == 0;
  }
  closedir(d);
  return n;
}

static void remove_dir(const char *dir) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK_EQ(0, system(cmd));
}

TEST(cuda_cache, key_is_hex_and_follows_every_part) {
  char a[65], b[65];
  tile_cuda_cache_key("src", "sm_90", "nvrtc 13.0", a);
  CHECK_EQ(64, (int)strlen(a));
  for (int i = 0; i < 64; i++) CHECK(strchr("0123456789abcdef", a[i]) != NULL);
  tile_cuda_cache_key("src", "sm_90", "nvrtc 13.0", b);
  CHECK_STREQ(a, b);
  tile_cuda_cache_key("src", "sm_80", "nvrtc 13.0", b);
  CHECK(strcmp(a, b) != 0);
  tile_cuda_cache_key("src ", "sm_90", "nvrtc 13.0", b);
  CHECK(strcmp(a, b) != 0);
  tile_cuda_cache_key("src", "sm_90", "nvrtc 12.8", b);
  CHECK(strcmp(a, b) != 0);
  /* Bytes moved from one part to the next change the key (length prefixes). */
  tile_cuda_cache_key("ab", "c", "x", a);
  tile_cuda_cache_key("a", "bc", "x", b);
  CHECK(strcmp(a, b) != 0);
}

TEST(cuda_cache, key_is_sha256_of_the_framed_parts) {
  /* SHA-256 of 24 zero bytes (three empty parts, each an 8-byte zero length). */
  char k[65];
  tile_cuda_cache_key("", "", "", k);
  CHECK_STREQ("9d908ecfb6b256def8b49a7c504e6c889c4b0e41fe6ce3e01863dd7b61a20aa0", k);
}

TEST(cuda_cache, put_then_get_and_damage) {
  char dir[64], sub[128], key[65], path[256];
  temp_dir(dir, sizeof dir);
  snprintf(sub, sizeof sub, "%s/a/b", dir); /* created on the first put */
  tile_cuda_cache_key("kernel", "sm_90", "test", key);
  uint8_t *got = NULL;
  size_t len = 0;
  CHECK(!tile_cuda_cache_get(sub, key, &got, &len));
  const uint8_t cubin[] = {0x7f, 'E', 'L', 'F', 1, 2, 3, 4, 5};
  TileDiag d;
  tile_diag_init(&d, NULL, "test", NULL, 0);
  REQUIRE(tile_cuda_cache_put(sub, key, cubin, sizeof cubin, &d));
  REQUIRE(tile_cuda_cache_get(sub, key, &got, &len));
  CHECK_EQ(sizeof cubin, len);
  CHECK(memcmp(cubin, got, len) == 0);
  free(got);
  CHECK_EQ(0, count_files(sub, ".tmp"));
  /* Another key never answers from this entry, even under its name. */
  char other[65];
  tile_cuda_cache_key("kernel2", "sm_90", "test", other);
  snprintf(path, sizeof path, "%s/%s.cubin", sub, key);
  char moved[256];
  snprintf(moved, sizeof moved, "%s/%s.cubin", sub, other);
  REQUIRE(rename(path, moved) == 0);
  CHECK(!tile_cuda_cache_get(sub, other, &got, &len));
  /* A truncated entry is a miss. */
  REQUIRE(tile_cuda_cache_put(sub, key, cubin, sizeof cubin, &d));
  REQUIRE(truncate(path, 84 + 3) == 0);
  CHECK(!tile_cuda_cache_get(sub, key, &got, &len));
  CHECK(!tile_cuda_cache_get(sub, "../../etc/passwd", &got, &len));
  remove_dir(dir);
}

typedef struct Writer {
  const char *dir;
  const char *key;
  int ok;
} Writer;

static void *write_many(void *arg) {
  Writer *w = arg;
  uint8_t blob[4096];
  for (size_t i = 0; i < sizeof blob; i++) blob[i] = (uint8_t)(i * 7);
  TileDiag d;
  tile_diag_init(&d, NULL, "test", NULL, 0);
  for (int i = 0; i < 50; i++) {
    w->ok += tile_cuda_cache_put(w->dir, w->key, blob, sizeof blob, &d);
    uint8_t *got;
    size_t len;
    /* A reader at any moment sees the whole entry (or, before the first rename, none). */
    if (tile_cuda_cache_get(w->dir, w->key, &got, &len)) {
      w->ok += len == sizeof blob && memcmp(got, blob, len) == 0 ? 0 : -1000;
      free(got);
    }
  }
  return NULL;
}

TEST(cuda_cache, concurrent_writers_leave_one_whole_entry) {
  char dir[64], key[65];
  temp_dir(dir, sizeof dir);
  tile_cuda_cache_key("shared", "sm_90", "test", key);
  pthread_t t[4];
  Writer w[4];
  for (int i = 0; i < 4; i++) {
    w[i] = (Writer){dir, key, 0};
    REQUIRE(pthread_create(&t[i], NULL, write_many, &w[i]) == 0);
  }
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < 4; i++) CHECK_EQ(50, w[i].ok);
  CHECK_EQ(1, count_files(dir, ".cubin"));
  CHECK_EQ(0, count_files(dir, ".tmp"));
  remove_dir(dir);
}

static int compiles;

static bool fake_compile(const TileCudaProgram *p, uint8_t **cubin, size_t *len, TileDiag *d) {
  compiles++;
  *len = strlen(p->source) + strlen(p->arch);
  *cubin = malloc(*len);
  memcpy(*cubin, p->source, strlen(p->source));
  memcpy(*cubin + strlen(p->source), p->arch, strlen(p->arch));
  return true;
}

TEST(cuda_cache, compile_through_the_cache) {
  char dir[64];
  temp_dir(dir, sizeof dir);
  setenv("TILE_CUDA_CACHE_DIR", dir, 1);
  TileCudaProgram p = {.arch = "sm_90", .source = "extern \"C\" __global__ void k() {}"};
  TileDiag d;
  tile_diag_init(&d, NULL, "test", NULL, 0);
  TileCudaCacheResult r1, r2, r3;
  uint8_t *c1, *c2, *c3;
  size_t l1, l2, l3;
  compiles = 0;
  REQUIRE(tile_cuda_cache_compile(&p, fake_compile, &c1, &l1, &r1, &d));
  CHECK(!r1.hit && r1.stored);
  REQUIRE(tile_cuda_cache_compile(&p, fake_compile, &c2, &l2, &r2, &d));
  CHECK(r2.hit);
  CHECK_EQ(1, compiles);
  CHECK_STREQ(r1.key, r2.key);
  CHECK_STREQ(r1.path, r2.path);
  CHECK(l1 == l2 && memcmp(c1, c2, l1) == 0);
  snprintf(p.arch, sizeof p.arch, "sm_80");
  REQUIRE(tile_cuda_cache_compile(&p, fake_compile, &c3, &l3, &r3, &d));
  CHECK(!r3.hit);
  CHECK_EQ(2, compiles);
  free(c1), free(c2), free(c3);
  unsetenv("TILE_CUDA_CACHE_DIR");
  remove_dir(dir);
}

TEST(cuda_cache, folder_from_the_environment) {
  char buf[512];
  setenv("TILE_CUDA_CACHE_DIR", "/x/y", 1);
  REQUIRE(tile_cuda_cache_dir(buf, sizeof buf));
  CHECK_STREQ("/x/y", buf);
  unsetenv("TILE_CUDA_CACHE_DIR");
  setenv("XDG_CACHE_HOME", "/xdg", 1);
  REQUIRE(tile_cuda_cache_dir(buf, sizeof buf));
  CHECK_STREQ("/xdg/tilec", buf);
  setenv("XDG_CACHE_HOME", "relative", 1); /* invalid by the XDG spec: ignored */
  setenv("HOME", "/home/u", 1);
  REQUIRE(tile_cuda_cache_dir(buf, sizeof buf));
  CHECK_STREQ("/home/u/.cache/tilec", buf);
}

TEST(cuda_device, no_driver_says_no_cuda_device) {
  /* Only meaningful where the driver has not been loaded yet in this process. */
  setenv("TILE_CUDA_DRIVER", "/nonexistent/libcuda.so.1", 1);
  char err[512] = "";
  TileCudaDevice *dev = tile_cuda_device_open(0, err, sizeof err);
  CHECK(dev == NULL);
  CHECK(strncmp(err, TILE_CUDA_NO_DEVICE, strlen(TILE_CUDA_NO_DEVICE)) == 0);
  tile_cuda_device_close(dev);
}
