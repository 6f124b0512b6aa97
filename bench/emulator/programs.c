/* The emulator suite's programs (programs.h), written as assembly text for the target at
 * hand: the loop period follows the target's MXU latencies so every push finds its unit
 * free and every pop its result ready, and the program runs without a hazard in strict
 * mode.
 *
 * Loop structure: two nested `loop`s sharing their end, so the body runs outer x inner
 * times (the inner `loop` bundle issues once per outer iteration):
 *
 *       loop end, OUTER
 *       loop end, INNER
 *       <body: P bundles>
 *   end:
 *       halt */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "programs.h"

enum { MAX_LOOP_BODY = 63, INNER_MAX = 1 << 20 };

typedef struct Text {
  char *buf;
  size_t len;
  FILE *f;
} Text;

static bool text_open(Text *x) {
  x->buf = NULL;
  x->len = 0;
  x->f = open_memstream(&x->buf, &x->len);
  return x->f != NULL;
}

static void emit(Text *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(Text *x, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(x->f, fmt, ap);
  va_end(ap);
}

static char *text_close(Text *x) {
  if (fclose(x->f) != 0) {
    free(x->buf);
    return NULL;
  }
  return x->buf;
}

/* The MXU period of a loop that pushes to every unit in bundles 0..U-1 and pops unit u's
 * result in bundle R+u: the result is ready when R >= lat.mxu_result, and unit u is free
 * for the next iteration's push when R + U >= mxu.push_cycles. */
static int mxu_pop_bundle(const TileTarget *t) {
  int units = t->mxu_count;
  int r = t->latency[TILE_LAT_MXU_RESULT];
  if (t->mxu_push_cycles - units > r) r = t->mxu_push_cycles - units;
  return r;
}

static bool fits(const TileTarget *t, char *why, size_t why_len) {
  int period = mxu_pop_bundle(t) + t->mxu_count;
  if (period > MAX_LOOP_BODY) {
    snprintf(why, why_len,
             "target %s needs a loop body of %d bundles (MXU result latency %d, %d units); "
             "a loop body holds at most %d",
             t->name, period, t->latency[TILE_LAT_MXU_RESULT], t->mxu_count, MAX_LOOP_BODY);
    return false;
  }
  if (t->vreg_lanes != t->mxu_dim || t->nvregs < 24 || t->nsregs < 8) {
    snprintf(why, why_len, "target %s lacks the registers the benchmark uses", t->name);
    return false;
  }
  return true;
}

/* vli v1, v2 and the wait for them; weights of every unit from v1 (one mxu.ldw per 8-row block); then enough
 * empty bundles for the last weights to become usable. */
static void prologue(Text *x, const TileTarget *t) {
  emit(x, "  vli v1, 1.0 ; vli v2, 0.5 ; li s1, 0 ; li s2, %d\n", 4 * t->vreg_lanes);
  for (int i = 1; i < t->latency[TILE_LAT_VALU]; i++) emit(x, "  nop\n");
  int blocks = t->mxu_dim / t->vreg_sublanes;
  for (int u = 0; u < t->mxu_count; u++)
    for (int r = 0; r < blocks; r++) emit(x, "  mxu.ldw m%d, v1, %d\n", u, r);
  for (int i = 1; i < t->latency[TILE_LAT_MXU_WEIGHTS]; i++) emit(x, "  nop\n");
}

static void loops(Text *x, int64_t iters) {
  int64_t inner = iters < INNER_MAX ? (iters < 1 ? 1 : iters) : INNER_MAX;
  int64_t outer = (iters + inner - 1) / inner;
  if (outer < 1) outer = 1;
  emit(x, "  loop end, %lld\n", (long long)outer);
  emit(x, "  loop end, %lld\n", (long long)inner);
}

char *bench_mxu_program(const TileTarget *t, int64_t iters, char *why, size_t why_len) {
  if (!fits(t, why, why_len)) return NULL;
  Text x;
  if (!text_open(&x)) return NULL;
  emit(&x, ".code all\n");
  prologue(&x, t);
  loops(&x, iters);
  int units = t->mxu_count, pop = mxu_pop_bundle(t);
  for (int b = 0; b < pop + units; b++) {
    if (b < units) emit(&x, "  mxu.push m%d, v%d\n", b, 1 + b % 2);
    else if (b >= pop) emit(&x, "  mxu.pop v%d, m%d\n", 4 + (b - pop), b - pop);
    else emit(&x, "  nop\n");
  }
  emit(&x, "end:\n  halt\n");
  return text_close(&x);
}

char *bench_mix_program(const TileTarget *t, int64_t iters, char *why, size_t why_len) {
  if (!fits(t, why, why_len)) return NULL;
  Text x;
  if (!text_open(&x)) return NULL;
  /* s3: where the stores go, past the rows the loads read. s6: the DMA descriptor (at
   * SMEM 0, words as in docs/emulator.md): HBM 0 -> VMEM 32768, one run, completion
   * counted on sem0. Its size lets it finish before the loop waits for it (in the MXU
   * pop bundle), so the wait does not stall. */
  int pop0 = mxu_pop_bundle(t);
  int64_t room = (int64_t)(pop0 - t->dma_issue_cycles) * t->hbm_bw / t->clock_hz;
  int64_t bytes = room > 512 ? 512 : room < 4 ? 4 : room & ~(int64_t)3;
  emit(&x, ".data smem 0 i32 0, 1, 0, 0, 32768, 0, %lld, 1, 1, 0, 0, 0, 0, -1, -1, 0\n",
       (long long)bytes);
  emit(&x, ".code all\n");
  prologue(&x, t);
  emit(&x, "  li s3, %d ; li s6, 0\n", 4 * t->vreg_lanes * t->vreg_sublanes);
  loops(&x, iters);
  int units = t->mxu_count, pop = mxu_pop_bundle(t);
  for (int b = 0; b < pop + units; b++) {
    /* The other units get one op each on alternate bundles: about half of every slot
     * kind is busy, as in scheduled kernel code; one transcendental per iteration (the
     * C library's expf on 1024 lanes costs as much as the rest of a bundle's work). */
    if (b % 2 == 0)
      emit(&x, "  vld v10, s1, s2, 0 ; vadd.f v14, v1, v2 ; %s ; addi s4, s4, 1 ; "
               "xlu.lsum v20, v1",
           b == 0 ? "vexp v16, v2" : "vmax.f v16, v1, v2");
    else
      emit(&x, "  vst v1, s3, s2, 0 ; vmul.f v15, v1, v2 ; add s5, s5, s2");
    if (b == 0) emit(&x, " ; dma s6");
    if (b == pop) emit(&x, " ; sem.wait sem0, 1");
    if (b < units) emit(&x, " ; mxu.push m%d, v%d\n", b, 1 + b % 2);
    else if (b >= pop) emit(&x, " ; mxu.pop v%d, m%d\n", 4 + (b - pop), b - pop);
    else emit(&x, "\n");
  }
  emit(&x, "end:\n  halt\n");
  return text_close(&x);
}
