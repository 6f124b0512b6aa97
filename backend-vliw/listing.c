/* tile_mir_listing: the annotated listing `tilec -S` prints.
 *
 * For reading a schedule: one line per bundle with its index, then one column per slot
 * word the target has (scalar, vector, vload, vstore, mxu, xlu, dma, branch; `.` for an
 * empty word), each op tagged with the source op it came from (`vld v3, s1, s2, 0
 * [matmul:12]`). A loop gets a header line (trip count, and for a software-pipelined
 * loop its initiation interval and stage count with the bounds that set them) and its
 * body is indented. The footer counts bundles, bundles executed (with trip counts) and
 * how full each slot kind is, statically and as executed. Lines are as wide as the
 * widest op of each column; nothing here is meant to be parsed.
 *
 * The listing shows the code as it stands: machine registers `sN`/`vN` after allocation,
 * virtual `%sN`/`%vN` before (--emit=sched). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "mir_util.h"
#include "tile/mir.h"

enum { MAX_DEPTH = 8, TEXT = 200 };

/* "vld v3, s1, s2, 0 [matmul:12]" */
static void op_text(const TileMir *m, const TileMirInst *in, bool physical, char *buf, size_t n) {
  if (in->op == TILE_MOP_NOP) {
    snprintf(buf, n, ".");
    return;
  }
  int k = mir_format_inst(m, in, physical, buf, n);
  const char *name = tile_mir_src_name(m, in);
  int line = tile_mir_src_loc(m, in).line;
  if (k < 0 || (size_t)k >= n || !name) return;
  if (line > 0)
    snprintf(buf + k, n - (size_t)k, " [%s:%d]", name, line);
  else
    snprintf(buf + k, n - (size_t)k, " [%s]", name);
}

/* The slot words the target has, in bundle order. */
static int target_words(const TileTarget *t, int *words) {
  int n = 0;
  for (int w = 0; w < TILE_BUNDLE_SLOTS; w++) {
    TileSlot s = tile_slot_of_word(w);
    if (w - tile_slot_first(s) < t->slots[s]) words[n++] = w;
  }
  return n;
}

/* Times each bundle runs: the product of the trip counts of the loops around it. */
static int64_t *exec_counts(const TileMirCode *code) {
  int64_t *times = calloc((size_t)code->nbundles + 1, sizeof *times);
  if (!times) return NULL;
  for (int32_t p = 0; p < code->nbundles; p++) times[p] = 1;
  int w = tile_slot_first(TILE_SLOT_BRANCH);
  for (int32_t p = 0; p < code->nbundles; p++) {
    const TileMirInst *in = &code->b[p].slot[w];
    if (in->op != TILE_MOP_LOOP) continue;
    for (int32_t q = p + 1; q <= p + in->c && q < code->nbundles; q++)
      times[q] = times[q] > INT64_MAX / in->imm ? INT64_MAX : times[q] * in->imm;
  }
  return times;
}

static const struct TileMirLoopInfo *pipeline_of(const TileMirCode *code, int32_t first) {
  for (int32_t l = 0; l < code->nloops; l++)
    if (code->loops[l].first == first) return &code->loops[l];
  return NULL;
}

void tile_mir_listing(FILE *out, const TileMir *m, const TileMirCode *code) {
  const TileTarget *t = m->target;
  int words[TILE_BUNDLE_SLOTS];
  int nw = target_words(t, words);
  int width[TILE_BUNDLE_SLOTS] = {0};
  char text[TEXT];
  /* Column widths: the widest op of each word, at least its header. */
  for (int i = 0; i < nw; i++) {
    TileSlot s = tile_slot_of_word(words[i]);
    width[i] = (int)strlen(tile_slot_name(s)) + 2;
  }
  for (int32_t p = 0; p < code->nbundles; p++)
    for (int i = 0; i < nw; i++) {
      op_text(m, &code->b[p].slot[words[i]], code->allocated, text, sizeof text);
      int len = (int)strlen(text);
      if (len > width[i]) width[i] = len;
    }
  int64_t *times = exec_counts(code);
  int idx = snprintf(NULL, 0, "%d", code->nbundles > 0 ? (int)code->nbundles - 1 : 0);
  fprintf(out, "# target %s: %d bundles\n", t->name, (int)code->nbundles);
  fprintf(out, "%*s   ", idx, "");
  for (int i = 0; i < nw; i++) {
    TileSlot s = tile_slot_of_word(words[i]);
    snprintf(text, sizeof text, "%s%d", tile_slot_name(s), words[i] - tile_slot_first(s));
    fprintf(out, "%s%-*s", i ? " | " : "", width[i], text);
  }
  fputc('\n', out);
  int64_t used[TILE_SLOT_COUNT] = {0}, used_exec[TILE_SLOT_COUNT] = {0}, executed = 0;
  int32_t ends[MAX_DEPTH];
  int depth = 0;
  for (int32_t p = 0; p < code->nbundles; p++) {
    while (depth > 0 && ends[depth - 1] < p) depth--;
    const TileMirInst *br = &code->b[p].slot[tile_slot_first(TILE_SLOT_BRANCH)];
    int64_t times_p = times ? times[p] : 1;
    executed += times_p;
    fprintf(out, "%*s%*d:  ", 2 * depth, "", idx, (int)p);
    for (int i = 0; i < nw; i++) {
      const TileMirInst *in = &code->b[p].slot[words[i]];
      op_text(m, in, code->allocated, text, sizeof text);
      fprintf(out, "%s%-*s", i ? " | " : "", i + 1 < nw ? width[i] : 0, text);
      if (in->op != TILE_MOP_NOP) {
        TileSlot s = tile_slot_of_word(words[i]);
        used[s]++;
        used_exec[s] += times_p;
      }
    }
    fputc('\n', out);
    if (br->op == TILE_MOP_LOOP) {
      const struct TileMirLoopInfo *li = pipeline_of(code, p + 1);
      fprintf(out, "%*s# loop: bundles %d..%d, %d trips", 2 * depth + idx + 3, "", (int)(p + 1),
              (int)(p + br->c), (int)br->imm);
      if (li)
        fprintf(out,
                ", software-pipelined: ii %d, %d stages (resource bound %d, recurrence "
                "bound %d)",
                (int)li->ii, (int)li->stages, (int)li->res_mii, (int)li->rec_mii);
      fputc('\n', out);
      if (depth < MAX_DEPTH) ends[depth++] = p + br->c;
    }
  }
  fprintf(out, "# %d bundles, %" PRId64 " executed (loop trips counted)\n", (int)code->nbundles,
          executed);
  fprintf(out, "# slot use, in the code and as executed:\n");
  for (int s = 0; s < TILE_SLOT_COUNT; s++) {
    if (t->slots[s] < 1) continue;
    double cap = (double)code->nbundles * t->slots[s], cap_exec = (double)executed * t->slots[s];
    fprintf(out, "#   %-7s %7" PRId64 " ops  %5.1f%%   %12" PRId64 " ops  %5.1f%%\n",
            tile_slot_name((TileSlot)s), used[s], cap > 0 ? 100.0 * (double)used[s] / cap : 0.0,
            used_exec[s], cap_exec > 0 ? 100.0 * (double)used_exec[s] / cap_exec : 0.0);
  }
  free(times);
}
