/* Loop-carried MXU result edges of the dependence graph (sched_deps.c). A loop body's
 * graph is built for its last iteration after replaying the earlier ones; which push a
 * pop of that iteration takes follows from first principles: run the body's pushes and
 * pops iteration by iteration on one queue that starts with the results queued before
 * the loop (a pop of an empty queue takes nothing). The tests do exactly that and
 * compare with the edges the graph has, for bodies where the queue never runs dry
 * (the replay writes the queue down directly) and bodies where it does (it is replayed
 * pop by pop). */
#include <stdlib.h>
#include <string.h>

#include "../../../backend-vliw/sched_internal.h"
#include "check.h"
#include "test_sched_fixture.h"

enum { MAX_BODY = 8, NO_PUSH = -1 };

/* What the pop at body position `at` of iteration L takes: the push's body position
 * and iteration, or NO_PUSH (a result queued before the loop, or none at all). */
typedef struct Taken {
  int node, iter;
} Taken;

/* body[i]: 1 push, 0 pop, on unit 0. */
static Taken simulate(const int *body, int n, int pending, int last, int at) {
  Taken q[4096];
  int head = 0, len = 0;
  for (int i = 0; i < pending; i++) q[len++] = (Taken){NO_PUSH, 0};
  for (int it = 0; it <= last; it++)
    for (int v = 0; v < n; v++) {
      if (body[v]) {
        q[head + len++] = (Taken){v, it};
        continue;
      }
      Taken t = {NO_PUSH, 0};
      if (len > 0) {
        t = q[head++];
        len--;
      }
      if (it == last && v == at) return t;
    }
  return (Taken){NO_PUSH, 0};
}

/* Builds the body on v5e-like, each op with registers of its own (so only the queue
 * links pushes to pops), and checks every pop's result edge. */
static bool body_edges_match(const int *body, int n, int64_t pending) {
  TileTarget t;
  if (!sfx_target("v5e-like", &t)) return false;
  TileMir m;
  tile_mir_init(&m, &t);
  for (int v = 0; v < n; v++) {
    int32_t r = tile_mir_vreg(&m);
    if (body[v])
      tile_mir_add(&m, tile_mir_inst(TILE_MOP_MXU_PUSH, 0, r, 0, 0, 0));
    else
      tile_mir_add(&m, tile_mir_inst(TILE_MOP_MXU_POP, r, 0, 0, 0, 0));
  }
  SchedCtx cx;
  sched_ctx_init(&cx, &m, NULL);
  int64_t fifo[16] = {pending};
  SchedGraph g;
  sched_graph_build(&cx, 0, n, true, fifo, &g);
  /* The graph's last iteration: far enough for every result queued before the loop
   * (one iteration more than it takes the body's pushes to catch up with them). */
  int np = 0;
  for (int v = 0; v < n; v++) np += body[v];
  int last = np > 0 && pending > 0 ? 1 + (int)((pending + np - 1) / np) : 1;
  bool ok = true;
  for (int v = 0; v < n; v++) {
    if (body[v]) continue;
    Taken want = simulate(body, n, (int)pending, last, v);
    int found = 0;
    for (int32_t i = 0; i < g.nedges; i++) {
      const SchedEdge *e = &g.e[i];
      if (e->to != v || !body[e->from]) continue;
      found++;
      if (want.node != e->from || last - want.iter != e->dist ||
          e->lat != t.latency[TILE_LAT_MXU_RESULT]) {
        fprintf(stderr, "pop at %d: edge from push %d, distance %d; want push %d, distance %d\n", v,
                (int)e->from, (int)e->dist, want.node, last - want.iter);
        ok = false;
      }
    }
    if (found != (want.node != NO_PUSH)) {
      fprintf(stderr, "pop at %d: %d result edges, want %d\n", v, found, want.node != NO_PUSH);
      ok = false;
    }
  }
  sched_graph_free(&g);
  sched_ctx_free(&cx);
  tile_mir_free(&m);
  return ok;
}

/* As many pushes as pops, results queued before the loop: the queue never runs dry. */
TEST(sched_deps, balanced_queue_with_results_before_the_loop) {
  static const int bodies[][MAX_BODY] = {
      {1, 0},       /* push, pop */
      {0, 1},       /* pop, push */
      {1, 1, 0, 0}, /* two of each, pushes first */
      {0, 0, 1, 1}, /* pops first */
      {1, 0, 0, 1},
  };
  static const int len[] = {2, 2, 4, 4, 4};
  for (int b = 0; b < 5; b++)
    for (int64_t pending = 2; pending <= 9; pending++) CHECK(body_edges_match(bodies[b], len[b], pending));
}

/* More pushes than pops: the queue grows every iteration. */
TEST(sched_deps, growing_queue) {
  static const int body[] = {1, 0, 1, 1};
  for (int64_t pending = 1; pending <= 6; pending++) CHECK(body_edges_match(body, 4, pending));
}

/* More pops than pushes, or a pop that finds the queue empty in the first iteration:
 * pops take nothing at times, so the queue is replayed pop by pop. */
TEST(sched_deps, queue_that_runs_dry) {
  static const int drains[] = {0, 0, 1};       /* pops outrun the pushes */
  static const int dry_first[] = {0, 0, 1, 1}; /* balanced, but the second pop finds it empty */
  for (int64_t pending = 1; pending <= 5; pending++) CHECK(body_edges_match(drains, 3, pending));
  CHECK(body_edges_match(dry_first, 4, 1));
}
