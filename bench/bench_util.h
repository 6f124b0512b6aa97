/* Helpers every benchmark program of bench/ shares: the clock it measures with and how
 * it stops on a setup error. The including file defines BENCH_NAME (the program's name,
 * the prefix of its messages) first. */
#ifndef TILE_BENCH_UTIL_H
#define TILE_BENCH_UTIL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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

#endif
