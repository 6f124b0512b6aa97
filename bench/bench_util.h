/* Helpers every benchmark program of bench/ shares: the clock it measures with and how
 * it stops on a setup error. The including file defines BENCH_NAME (the program's name,
 * the prefix of its messages) first. */
#ifndef TILE_BENCH_UTIL_H
#define TILE_BENCH_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef BENCH_NAME
#error "define BENCH_NAME before including bench_util.h"
#endif

/* CPU time of the process: every measurement runs on one host thread, so this is the
 * time of one host core, and load from other processes on a shared host does not count
 * against what is measured. */
static inline double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A setup error: the message on stderr and exit status 2 (1 means a missed floor). */
static _Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static _Noreturn void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, BENCH_NAME ": ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(2);
}

/* Looks up the floor of one metric of a suite in the floors file (`SUITE METRIC OP
 * VALUE` lines, `#` comments): true with its comparison ("<=" or ">=") and value when
 * the file has one. A malformed line is a setup error. */
static inline bool bench_floor(const char *path, const char *suite, const char *metric,
                               char op[3], double *value) {
  FILE *f = fopen(path, "r");
  if (!f) die("cannot read the floors file %s", path);
  char line[512];
  bool found = false;
  for (int lineno = 1; !found && fgets(line, sizeof line, f); lineno++) {
    char s[64], m[96], o[8], v[64];
    char *hash = strchr(line, '#');
    if (hash) *hash = 0;
    int got = sscanf(line, "%63s %95s %7s %63s", s, m, o, v);
    if (got <= 0) continue;
    char *end;
    double x = got == 4 ? strtod(v, &end) : 0;
    if (got != 4 || *end || (strcmp(o, "<=") != 0 && strcmp(o, ">=") != 0))
      die("%s:%d: a floor is 'SUITE METRIC <=|>= NUMBER'", path, lineno);
    if (strcmp(s, suite) != 0 || strcmp(m, metric) != 0) continue;
    memcpy(op, o, 3);
    *value = x;
    found = true;
  }
  fclose(f);
  return found;
}

#endif
