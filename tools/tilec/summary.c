/* --summary: a short account of a module after its text, as `// ` comment lines so
 * the whole output still parses. For each mesh its torus and axes; for each
 * function its kind, name, parameter and result types, and how many ops of each
 * family it holds (counting the ops inside loops and branches). */
#include <string.h>

#include "tilec.h"

enum { MAX_FAMILIES = 32 };

static void print_type(FILE *out, const TileType *t) {
  char buf[256];
  tile_type_format(t, buf, sizeof buf);
  fputs(buf, out);
}

static void print_types(FILE *out, int n, const TileType *const *types) {
  fputc('(', out);
  for (int i = 0; i < n; i++) {
    if (i) fputs(", ", out);
    print_type(out, types[i]);
  }
  fputc(')', out);
}

static void print_mesh(FILE *out, const TileMesh *mesh) {
  long long chips = 1;
  for (int i = 0; i < mesh->rank; i++) chips *= mesh->dims[i];
  fprintf(out, "// mesh @%s: torus<", mesh->name);
  for (int i = 0; i < mesh->rank; i++) fprintf(out, "%s%lld", i ? "x" : "", (long long)mesh->dims[i]);
  fprintf(out, ">, %lld chips, axes ", chips);
  for (int i = 0; i < mesh->naxes; i++) {
    const TileMeshAxis *a = &mesh->axes[i];
    fprintf(out, "%s%s = %lld on [", i ? ", " : "", a->name, (long long)a->size);
    for (int d = 0; d < a->ndims; d++) fprintf(out, "%s%d", d ? ", " : "", (int)a->dims[d]);
    fputc(']', out);
  }
  fputc('\n', out);
}

static void count_ops(const TileBlock *b, long long *per_family, long long *total) {
  for (const TileOp *op = b->first; op; op = op->next) {
    if (op->kind < TILE_OP_COUNT) {
      int fam = (int)tile_op_info[op->kind].family;
      if (fam >= 0 && fam < MAX_FAMILIES) per_family[fam]++;
    }
    (*total)++;
    for (int r = 0; r < op->nregion; r++)
      if (op->region[r]) count_ops(op->region[r], per_family, total);
  }
}

static void print_func(FILE *out, const TileFunc *f) {
  enum { MAX_SHOWN = 64 };
  const TileType *types[MAX_SHOWN];
  int nargs = f->body ? f->body->nargs : 0;
  int shown = nargs < MAX_SHOWN ? nargs : MAX_SHOWN;
  for (int i = 0; i < shown; i++) types[i] = &f->body->args[i]->type;
  fprintf(out, "// %s @%s: %d param%s ", f->is_kernel ? "kernel" : "func", f->name, nargs,
          nargs == 1 ? "" : "s");
  print_types(out, shown, types);
  if (shown < nargs) fputs(" ...", out);
  if (!f->is_kernel || f->nret) {
    int nret = f->nret < MAX_SHOWN ? f->nret : MAX_SHOWN;
    for (int i = 0; i < nret; i++) types[i] = &f->ret[i];
    fprintf(out, ", %d result%s ", (int)f->nret, f->nret == 1 ? "" : "s");
    print_types(out, nret, types);
    if (nret < f->nret) fputs(" ...", out);
  }
  fputc('\n', out);

  long long per_family[MAX_FAMILIES] = {0}, total = 0;
  if (f->body) count_ops(f->body, per_family, &total);
  fprintf(out, "//   %lld op%s", total, total == 1 ? "" : "s");
  const char *sep = ": ";
  for (int fam = 0; fam < tilec_family_count() && fam < MAX_FAMILIES; fam++) {
    if (!per_family[fam]) continue;
    fprintf(out, "%s%s %lld", sep, tilec_family((TileOpFamily)fam)->short_name, per_family[fam]);
    sep = ", ";
  }
  fputc('\n', out);
}

void tilec_print_summary(FILE *out, const TileModule *m, const char *filename) {
  int nmeshes = 0, nfuncs = 0;
  for (const TileMesh *x = m->meshes; x; x = x->next) nmeshes++;
  for (const TileFunc *f = m->funcs; f; f = f->next) nfuncs++;
  /* The file name is shown with control bytes replaced: a newline in it would end
   * the comment and break the output's promise to parse. */
  fputs("// summary of ", out);
  for (const char *p = filename; *p; p++) fputc((unsigned char)*p < 32 || *p == 127 ? '?' : *p, out);
  fprintf(out, ": %d mesh%s, %d function%s\n", nmeshes, nmeshes == 1 ? "" : "es", nfuncs,
          nfuncs == 1 ? "" : "s");
  for (const TileMesh *x = m->meshes; x; x = x->next) print_mesh(out, x);
  for (const TileFunc *f = m->funcs; f; f = f->next) print_func(out, f);
}
