/* Compiling ahead of time with nvcc: the source goes to a file in a fresh temporary
 * folder, nvcc (from $CUDA_HOME/bin, else /usr/local/cuda/bin) makes a cubin or a
 * fatbin (SASS for the architecture plus its PTX, so newer GPUs can run it), and its
 * diagnostics become ours when it fails. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cuda_internal.h"

static bool read_all(const char *path, uint8_t **out, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return false;
  Buf b = {0};
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (b.n + n + 1 > b.cap) {
      size_t cap = b.cap ? b.cap : 65536;
      while (cap < b.n + n + 1) cap *= 2;
      char *p = realloc(b.p, cap);
      if (!p) {
        fclose(f);
        buf_free(&b);
        return false;
      }
      b.p = p;
      b.cap = cap;
    }
    memcpy(b.p + b.n, chunk, n);
    b.n += n;
    b.p[b.n] = 0;
  }
  fclose(f);
  *out = (uint8_t *)b.p;
  *len = b.n;
  return b.p != NULL;
}

static void remove_dir(const char *dir, const char *const *names, int n) {
  char path[600];
  for (int i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    unlink(path);
  }
  rmdir(dir);
}

bool tile_cuda_nvcc(const TileCudaProgram *p, bool fatbin, uint8_t **out, size_t *len,
                    TileDiag *d) {
  *out = NULL;
  *len = 0;
  char nvcc[512];
  const char *home = getenv("CUDA_HOME");
  snprintf(nvcc, sizeof nvcc, "%s/bin/nvcc", home && *home ? home : "/usr/local/cuda");
  if (access(nvcc, X_OK) != 0)
    return tile_error(d, (TileLoc){0}, "cannot run nvcc: %s: %s (set CUDA_HOME)", nvcc,
                      strerror(errno));
  const char *tmp = getenv("TMPDIR");
  char dir[512];
  snprintf(dir, sizeof dir, "%s/tilec-nvcc-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(dir))
    return tile_error(d, (TileLoc){0}, "cannot make a temporary folder: %s", strerror(errno));
  static const char *const names[] = {"kernels.cu", "kernels.out", "nvcc.log"};
  char src[600], bin[600], log[600];
  snprintf(src, sizeof src, "%s/%s", dir, names[0]);
  snprintf(bin, sizeof bin, "%s/%s", dir, names[1]);
  snprintf(log, sizeof log, "%s/%s", dir, names[2]);
  FILE *f = fopen(src, "w");
  bool ok = f && fputs(p->source, f) >= 0;
  if (f && fclose(f) != 0) ok = false;
  if (!ok) {
    remove_dir(dir, names, 3);
    return tile_error(d, (TileLoc){0}, "cannot write %s", src);
  }
  char arch[40];
  snprintf(arch, sizeof arch, "-arch=%s", p->arch);
  const char *argv[] = {nvcc, fatbin ? "-fatbin" : "-cubin", arch, "-std=c++17", "-o", bin, src,
                        NULL};
  pid_t pid = fork();
  if (pid < 0) {
    remove_dir(dir, names, 3);
    return tile_error(d, (TileLoc){0}, "cannot start nvcc: %s", strerror(errno));
  }
  if (pid == 0) {
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    execv(nvcc, (char *const *)argv);
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (!ok) {
    uint8_t *text = NULL;
    size_t n = 0;
    read_all(log, &text, &n);
    tile_error(d, (TileLoc){0}, "nvcc could not compile the generated CUDA for %s (exit %d):\n%s",
               p->arch, WIFEXITED(status) ? WEXITSTATUS(status) : -1, text ? (char *)text : "");
    free(text);
  } else if (!read_all(bin, out, len)) {
    ok = tile_error(d, (TileLoc){0}, "nvcc wrote no output");
  }
  remove_dir(dir, names, 3);
  return ok;
}
