/* The cycle loop over all chips: windows, host threads, barriers, and the run's end
 * (done, fault, deadlock, runaway).
 *
 * Chips run independently for a window of W cycles, W = the network's one-hop latency
 * (the least time in which one chip can affect another; a single chip runs in one
 * window). Between windows, on one thread: the earliest fault stops the run; the
 * network moves transfers up to the window's end and hands deliveries to the chips; the
 * next window starts at the earliest cycle at which anything can happen (idle stretches
 * of the whole machine are skipped in one step).
 *
 * Which chips a host thread runs never changes what a chip sees: a chip reads only its
 * own state and the events handed to it between windows, which are ordered by
 * (cycle, source chip, sequence). So every result, count and trace record is the same
 * for any number of threads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu_internal.h"

typedef struct Worker {
  Emu *e;
  int32_t lo, hi;
  pthread_t th;
} Worker;

static void barrier_init(EmuBarrier *b, int parties) {
  pthread_mutex_init(&b->m, NULL);
  pthread_cond_init(&b->cv, NULL);
  b->parties = parties;
  b->arrived = 0;
  b->gen = 0;
}

static void barrier_destroy(EmuBarrier *b) {
  pthread_mutex_destroy(&b->m);
  pthread_cond_destroy(&b->cv);
}

static void barrier_release_if_full(EmuBarrier *b) {
  if (b->arrived >= b->parties) {
    b->arrived = 0;
    b->gen++;
    pthread_cond_broadcast(&b->cv);
  }
}

static void barrier_wait(EmuBarrier *b) {
  pthread_mutex_lock(&b->m);
  unsigned gen = b->gen;
  b->arrived++;
  barrier_release_if_full(b);
  while (gen == b->gen) pthread_cond_wait(&b->cv, &b->m);
  pthread_mutex_unlock(&b->m);
}

static void barrier_shrink(EmuBarrier *b, int parties) {
  pthread_mutex_lock(&b->m);
  b->parties = parties;
  barrier_release_if_full(b);
  pthread_mutex_unlock(&b->m);
}

static void run_range(Emu *e, int32_t lo, int32_t hi) {
  for (int32_t i = lo; i < hi; i++) emu_chip_run(&e->chips[i], e->win_end);
}

static void *worker_main(void *arg) {
  Worker *w = arg;
  Emu *e = w->e;
  for (;;) {
    barrier_wait(&e->start_bar);
    if (e->stop) break;
    run_range(e, w->lo, w->hi);
    barrier_wait(&e->end_bar);
  }
  return NULL;
}

static void set_fault(Emu *e, TileEmuFaultKind k, int32_t chip, int32_t pc, int64_t cycle,
                      char *msg) {
  free(e->fault_msg);
  e->fault_msg = msg;
  e->fault = (TileEmuFault){k, chip, pc, cycle, msg ? msg : "out of memory"};
}

/* One line on a chip's state, for deadlock and runaway reports. */
static void describe(FILE *f, const Emu *e, const EmuChip *c) {
  fprintf(f, "  chip %d: pc %d, ", c->id, c->pc);
  switch (c->state) {
  case CHIP_RUN: fprintf(f, "running at cycle %lld", (long long)c->t); break;
  case CHIP_WAIT: {
    const EmuBundle *b = &c->prog->bundles[c->pc];
    fprintf(f, "waiting since cycle %lld for sem%d >= %d (it is %lld)", (long long)c->wait_since,
            b->wait_sem, b->wait_count, (long long)c->sem[b->wait_sem]);
    break;
  }
  case CHIP_HALTING:
    fprintf(f, "halted at cycle %lld with %d DMAs in flight", (long long)c->halt_cycle - 1,
            c->outstanding);
    break;
  case CHIP_DONE: fprintf(f, "done at cycle %lld", (long long)c->done_cycle); break;
  }
  bool any = false;
  for (int s = 0; s < e->t.nsems; s++)
    if (c->sem[s] != 0) {
      fprintf(f, "%s sem%d=%lld", any ? "," : "; semaphores:", s, (long long)c->sem[s]);
      any = true;
    }
  if (!any) fprintf(f, "; every semaphore is 0");
  fputc('\n', f);
}

static TileEmuStatus report_stuck(Emu *e, TileEmuFaultKind kind) {
  /* the chip to blame: the first one that is not done (waiting first, for deadlocks) */
  const EmuChip *blame = NULL;
  int64_t quiet = e->net.last_delivery;
  for (int32_t i = 0; i < e->nchips; i++) {
    const EmuChip *c = &e->chips[i];
    int64_t at = c->state == CHIP_DONE ? c->done_cycle
                 : c->state == CHIP_WAIT ? c->wait_since
                 : c->state == CHIP_HALTING ? c->halt_cycle
                                            : c->t;
    if (at > quiet) quiet = at;
    if (c->state == CHIP_DONE) continue;
    if (!blame || (kind == TILE_EMU_FAULT_DEADLOCK && c->state == CHIP_WAIT &&
                   blame->state != CHIP_WAIT))
      blame = c;
  }
  int64_t cycle = kind == TILE_EMU_FAULT_RUNAWAY ? e->watchdog : quiet;
  char *msg = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&msg, &len);
  if (!f) return TILE_EMU_ERROR;
  fprintf(f, "chip %d, pc %d, cycle %lld: ", blame ? blame->id : -1, blame ? blame->pc : -1,
          (long long)cycle);
  if (kind == TILE_EMU_FAULT_DEADLOCK)
    fprintf(f, "deadlock: every chip is waiting or halted and nothing in flight can release a "
               "waiter\n");
  else
    fprintf(f, "runaway: the run reached the watchdog limit of %lld cycles before every chip "
               "finished\n",
            (long long)e->watchdog);
  int shown = 0;
  for (int32_t i = 0; i < e->nchips; i++) {
    const EmuChip *c = &e->chips[i];
    if (e->nchips > 64 && c->state == CHIP_DONE) continue; /* keep big reports readable */
    describe(f, e, c);
    shown++;
  }
  if (shown < e->nchips) fprintf(f, "  (%d more chips are done)\n", e->nchips - shown);
  fclose(f);
  if (len > 0 && msg[len - 1] == '\n') msg[len - 1] = '\0';
  set_fault(e, kind, blame ? blame->id : -1, blame ? blame->pc : -1, cycle, msg);
  return TILE_EMU_FAULTED;
}

typedef enum { GO_ON = -1 } StepResult;

/* The serial work between windows. Returns GO_ON or the run's final status. */
static int between_windows(Emu *e, int64_t end, int64_t *next_start) {
  if (e->oom) {
    emu_set_error(e, "the emulator ran out of memory");
    return TILE_EMU_ERROR;
  }
  const EmuChip *first = NULL;
  for (int32_t i = 0; i < e->nchips; i++) {
    const EmuChip *c = &e->chips[i];
    if (c->faulted && (!first || c->fault_cycle < first->fault_cycle)) first = c;
  }
  if (first) {
    char *msg = first->fault_msg ? strdup(first->fault_msg) : NULL;
    set_fault(e, first->fault_kind, first->id, first->fault_pc, first->fault_cycle, msg);
    return TILE_EMU_FAULTED;
  }
  if (!emu_net_step(e, end)) {
    emu_set_error(e, "the emulator ran out of memory moving network transfers");
    return TILE_EMU_ERROR;
  }
  int64_t next = emu_net_next(e);
  bool all_done = true;
  for (int32_t i = 0; i < e->nchips; i++) {
    const EmuChip *c = &e->chips[i];
    int64_t n = emu_chip_next(c);
    if (n < next) next = n;
    all_done &= c->state == CHIP_DONE;
  }
  if (next == EMU_NEVER) {
    if (all_done) return TILE_EMU_OK;
    return report_stuck(e, TILE_EMU_FAULT_DEADLOCK);
  }
  if (next >= e->watchdog) return report_stuck(e, TILE_EMU_FAULT_RUNAWAY);
  *next_start = next > end ? next : end;
  return GO_ON;
}

TileEmuStatus emu_run(Emu *e) {
  int nth = e->o.threads < 1 ? 1 : e->o.threads;
  if (nth > e->nchips) nth = e->nchips;
  Worker *w = calloc((size_t)nth, sizeof *w);
  if (!w) {
    emu_set_error(e, "out of memory");
    return TILE_EMU_ERROR;
  }
  for (int k = 0; k < nth; k++) {
    w[k].e = e;
    w[k].lo = (int32_t)((int64_t)k * e->nchips / nth);
    w[k].hi = (int32_t)((int64_t)(k + 1) * e->nchips / nth);
  }
  bool barriers = nth > 1;
  int32_t extra_lo = e->nchips; /* chips of threads that could not be started */
  if (barriers) {
    barrier_init(&e->start_bar, nth);
    barrier_init(&e->end_bar, nth);
    e->stop = false;
    int started = 1;
    for (; started < nth; started++)
      if (pthread_create(&w[started].th, NULL, worker_main, &w[started]) != 0) break;
    if (started < nth) {
      /* go on with the threads that did start; the main thread takes the rest */
      barrier_shrink(&e->start_bar, started);
      barrier_shrink(&e->end_bar, started);
      extra_lo = w[started].lo;
      nth = started;
    }
  }
  int64_t T = 0;
  int result;
  for (;;) {
    int64_t end = e->window == EMU_NEVER || T > e->watchdog - e->window ? e->watchdog
                                                                          : T + e->window;
    e->win_end = end;
    if (nth > 1) {
      barrier_wait(&e->start_bar);
      run_range(e, w[0].lo, w[0].hi);
      run_range(e, extra_lo, e->nchips);
      barrier_wait(&e->end_bar);
    } else {
      run_range(e, 0, e->nchips);
    }
    result = between_windows(e, end, &T);
    if (result != GO_ON) break;
  }
  if (nth > 1) {
    e->stop = true;
    barrier_wait(&e->start_bar);
    for (int k = 1; k < nth; k++) pthread_join(w[k].th, NULL);
  }
  if (barriers) {
    barrier_destroy(&e->start_bar);
    barrier_destroy(&e->end_bar);
  }
  free(w);
  return (TileEmuStatus)result;
}
