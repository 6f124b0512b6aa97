/* The JIT compile cache of CUDA cubins (include/tile/cuda_runtime.h).
 *
 * Key: SHA-256 over (source, arch, compiler), each part preceded by its length as 8
 * little-endian bytes, so that moving bytes from one part to the next changes the key.
 * The compiler part names NVRTC's version and tilec's: a new NVRTC or a new tilec (which
 * may pass other options) never reuses an old cubin.
 *
 * Entry file DIR/KEY.cubin:
 *
 *   offset  size  field
 *   0       8     magic "TILECUBN"
 *   8       4     format version (1), little-endian
 *   12      64    the key, hex (a renamed or copied file does not answer another key)
 *   76      8     cubin size in bytes, little-endian
 *   84      n     the cubin
 *
 * Writers write a temporary file unique to the process and the call (O_EXCL) in DIR and
 * rename it over DIR/KEY.cubin: rename is atomic within a file system, so a reader
 * sees the old entry, the new one or none, never a part. Two writers of one key write
 * the same bytes, so either may win. An entry whose header or size is wrong (a crash
 * between write and rename cannot make one, a full disk or a hand edit can) reads as a
 * miss and is replaced by the next compile. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tile/cuda_runtime.h"

/* ---- SHA-256 (FIPS 180-4) ---- */

typedef struct Sha256 {
  uint32_t h[8];
  uint8_t buf[64];
  size_t nbuf;
  uint64_t bytes;
} Sha256;

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

static uint32_t ror(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha_block(Sha256 *s, const uint8_t *p) {
  uint32_t w[64];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
           p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4], f = s->h[5],
           g = s->h[6], h = s->h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = h + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + sha_k[i] + w[i];
    uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
  }
  s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d;
  s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

static void sha_init(Sha256 *s) {
  static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(s->h, h0, sizeof h0);
  s->nbuf = 0;
  s->bytes = 0;
}

static void sha_update(Sha256 *s, const void *data, size_t n) {
  const uint8_t *p = data;
  s->bytes += n;
  while (n) {
    size_t k = 64 - s->nbuf < n ? 64 - s->nbuf : n;
    memcpy(s->buf + s->nbuf, p, k);
    s->nbuf += k, p += k, n -= k;
    if (s->nbuf == 64) {
      sha_block(s, s->buf);
      s->nbuf = 0;
    }
  }
}

static void sha_final(Sha256 *s, uint8_t out[32]) {
  uint64_t bits = s->bytes * 8;
  uint8_t pad = 0x80, zero = 0, len[8];
  sha_update(s, &pad, 1);
  while (s->nbuf != 56) sha_update(s, &zero, 1);
  for (int i = 0; i < 8; i++) len[i] = (uint8_t)(bits >> (56 - 8 * i));
  sha_update(s, len, 8);
  for (int i = 0; i < 32; i++) out[i] = (uint8_t)(s->h[i / 4] >> (24 - 8 * (i % 4)));
}

static void sha_part(Sha256 *s, const char *text) {
  uint64_t n = strlen(text);
  uint8_t len[8];
  for (int i = 0; i < 8; i++) len[i] = (uint8_t)(n >> (8 * i));
  sha_update(s, len, 8);
  sha_update(s, text, (size_t)n);
}

void tile_cuda_cache_key(const char *source, const char *arch, const char *compiler,
                         char key[TILE_CUDA_KEY_LEN + 1]) {
  Sha256 s;
  uint8_t digest[32];
  sha_init(&s);
  sha_part(&s, source);
  sha_part(&s, arch);
  sha_part(&s, compiler);
  sha_final(&s, digest);
  for (int i = 0; i < 32; i++) snprintf(key + 2 * i, 3, "%02x", digest[i]);
}

/* ---- NVRTC's version ---- */

static char nvrtc_version[32] = "none";
static pthread_once_t nvrtc_once = PTHREAD_ONCE_INIT;

static void find_nvrtc_version(void) {
  /* The places backend-cuda looks, in its order: the toolkit, then the loader's path.
   * The library stays loaded (as backend-cuda keeps it): closing it would lose what
   * its C++ runtime allocated at load time. */
  char toolkit[512];
  const char *home = getenv("CUDA_HOME");
  snprintf(toolkit, sizeof toolkit, "%s/lib64/libnvrtc.so",
           home && *home ? home : "/usr/local/cuda");
  const char *names[] = {toolkit, "/usr/local/cuda/lib64/libnvrtc.so", "libnvrtc.so",
                         "libnvrtc.so.13", "libnvrtc.so.12"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) continue;
    int (*version)(int *, int *);
    *(void **)&version = dlsym(h, "nvrtcVersion");
    int major = 0, minor = 0;
    bool ok = version && version(&major, &minor) == 0;
    if (ok) {
      snprintf(nvrtc_version, sizeof nvrtc_version, "%d.%d", major, minor);
      return;
    }
  }
}

const char *tile_cuda_nvrtc_version(void) {
  pthread_once(&nvrtc_once, find_nvrtc_version);
  return nvrtc_version;
}

/* ---- entries on disk ---- */

enum { HEADER_BYTES = 84, FORMAT_VERSION = 1 };
static const char magic[8] = {'T', 'I', 'L', 'E', 'C', 'U', 'B', 'N'};

bool tile_cuda_cache_dir(char *buf, size_t n) {
  const char *dir = getenv("TILE_CUDA_CACHE_DIR");
  if (dir && *dir) return (size_t)snprintf(buf, n, "%s", dir) < n;
  const char *xdg = getenv("XDG_CACHE_HOME");
  /* The XDG spec: a relative XDG_CACHE_HOME is invalid and must be ignored. */
  if (xdg && xdg[0] == '/') return (size_t)snprintf(buf, n, "%s/tilec", xdg) < n;
  const char *home = getenv("HOME");
  if (home && *home) return (size_t)snprintf(buf, n, "%s/.cache/tilec", home) < n;
  return false;
}

static bool entry_path(const char *dir, const char *key, char *buf, size_t n) {
  return (size_t)snprintf(buf, n, "%s/%s.cubin", dir, key) < n;
}

static bool valid_key(const char *key) {
  if (strlen(key) != TILE_CUDA_KEY_LEN) return false;
  for (const char *c = key; *c; c++)
    if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f'))) return false;
  return true;
}

bool tile_cuda_cache_get(const char *dir, const char *key, uint8_t **cubin, size_t *len) {
  char path[4096];
  if (!valid_key(key) || !entry_path(dir, key, path, sizeof path)) return false;
  FILE *f = fopen(path, "rb");
  if (!f) return false;
  uint8_t h[HEADER_BYTES];
  uint8_t *data = NULL;
  bool ok = fread(h, 1, sizeof h, f) == sizeof h && memcmp(h, magic, 8) == 0 &&
            h[8] == FORMAT_VERSION && !h[9] && !h[10] && !h[11] &&
            memcmp(h + 12, key, TILE_CUDA_KEY_LEN) == 0;
  uint64_t n = 0;
  for (int i = 0; i < 8; i++) n |= (uint64_t)h[76 + i] << (8 * i);
  struct stat st;
  /* The size must match the file's exactly: a short file is damaged, a longer one is
   * not ours. Checked before allocating, so a bad header cannot ask for much. */
  ok = ok && fstat(fileno(f), &st) == 0 && (uint64_t)st.st_size == HEADER_BYTES + n && n > 0;
  if (ok) {
    data = malloc((size_t)n);
    ok = data && fread(data, 1, (size_t)n, f) == n;
  }
  fclose(f);
  if (!ok) {
    free(data);
    return false;
  }
  *cubin = data;
  *len = (size_t)n;
  return true;
}

/* mkdir -p */
static bool make_dirs(const char *dir) {
  char path[4096];
  if ((size_t)snprintf(path, sizeof path, "%s", dir) >= sizeof path) return false;
  for (char *p = path + 1;; p++) {
    if (*p == '/' || !*p) {
      char c = *p;
      *p = '\0';
      if (mkdir(path, 0777) != 0 && errno != EEXIST) return false;
      *p = c;
      if (!c) break;
    }
  }
  struct stat st;
  return stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool write_all(int fd, const void *data, size_t n) {
  const uint8_t *p = data;
  while (n) {
    ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    p += k, n -= (size_t)k;
  }
  return true;
}

bool tile_cuda_cache_put(const char *dir, const char *key, const uint8_t *cubin, size_t len,
                         TileDiag *d) {
  static atomic_uint serial;
  const TileLoc none = {0};
  char path[4096], tmp[4200];
  if (!valid_key(key)) return tile_error(d, none, "cache: '%s' is not a cache key", key);
  if (!entry_path(dir, key, path, sizeof path))
    return tile_error(d, none, "cache: the folder name '%s' is too long", dir);
  if (!make_dirs(dir))
    return tile_error(d, none, "cache: cannot create the folder '%s': %s", dir, strerror(errno));
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  snprintf(tmp, sizeof tmp, "%s/.%s.%ld.%u.%ld.tmp", dir, key, (long)getpid(),
           atomic_fetch_add(&serial, 1u), (long)ts.tv_nsec);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    return tile_error(d, none, "cache: cannot create '%s': %s", tmp, strerror(errno));
  uint8_t h[HEADER_BYTES] = {0};
  memcpy(h, magic, 8);
  h[8] = FORMAT_VERSION;
  memcpy(h + 12, key, TILE_CUDA_KEY_LEN);
  for (int i = 0; i < 8; i++) h[76 + i] = (uint8_t)((uint64_t)len >> (8 * i));
  bool ok = write_all(fd, h, sizeof h) && write_all(fd, cubin, len);
  int saved = errno;
  ok = close(fd) == 0 && ok;
  if (ok && rename(tmp, path) != 0) {
    saved = errno;
    ok = false;
  }
  if (!ok) {
    unlink(tmp);
    return tile_error(d, none, "cache: cannot write '%s': %s", path, strerror(saved));
  }
  return true;
}

bool tile_cuda_cache_compile(const TileCudaProgram *p, TileCudaCompileFn compile,
                             uint8_t **cubin, size_t *len, TileCudaCacheResult *res,
                             TileDiag *d) {
  memset(res, 0, sizeof *res);
  char compiler[96], dir[4000];
  snprintf(compiler, sizeof compiler, "nvrtc %s; tilec %s", tile_cuda_nvrtc_version(),
           TILE_VERSION);
  tile_cuda_cache_key(p->source, p->arch, compiler, res->key);
  bool have_dir = tile_cuda_cache_dir(dir, sizeof dir);
  if (have_dir) {
    entry_path(dir, res->key, res->path, sizeof res->path);
    if (tile_cuda_cache_get(dir, res->key, cubin, len)) {
      res->hit = true;
      return true;
    }
  }
  if (!compile(p, cubin, len, d)) return false;
  if (have_dir) {
    /* A cache that cannot be written costs the next run a compile, nothing more: its
     * message goes nowhere. */
    TileDiag quiet;
    tile_diag_init(&quiet, NULL, "cache", NULL, 0);
    res->stored = tile_cuda_cache_put(dir, res->key, *cubin, *len, &quiet);
  }
  return true;
}
