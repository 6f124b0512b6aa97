/* The layer programs of the layers suite (programs.h), written as global `.tile` text
 * with the annotations of a serving layout, so they go through the same parse,
 * sharding propagation and partitioning as a user's program.
 *
 * The model is Llama-style at the 8B class: model width E, feed-forward width F
 * (SwiGLU), H query heads sharing Hkv key/value heads of dim D (grouped-query
 * attention), RMS norms, rotary positions. Layout: the mesh is d x t; t splits the
 * heads and the feed-forward width (Megatron: wq/wk/wv/w_gate/w_up by columns, wo and
 * w_down by rows, one all_reduce after each), d splits the batch. The MLP block alone
 * is tensor-parallel over every chip, (d, t) together, Megatron or gathered (w_down by
 * columns too: one all_gather of the activations between the matmuls, while w_down's
 * shard streams into VMEM, and the output split by columns, as the next block's
 * gather or a sequence-parallel residual takes it).
 *
 * Decode: one new token for each of B sequences, attending to a cache of S positions;
 * the layer also returns the token's key and value (roped), what the cache appends.
 * Prefill: d sequences of L tokens each (one per d-group), causal attention. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "programs.h"

typedef struct Text {
  char *buf;
  size_t len;
  FILE *f;
} Text;

static void put(Text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(Text *t, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(t->f, fmt, ap);
  va_end(ap);
}

/* "tensor<8x4096xbf16>" for up to 4 dims (0 ends the list early). */
static const char *ty(char *buf, size_t n, const char *elem, long a, long b, long c, long d) {
  long dims[4] = {a, b, c, d};
  size_t at = (size_t)snprintf(buf, n, "tensor<");
  for (int i = 0; i < 4 && dims[i]; i++) at += (size_t)snprintf(buf + at, n - at, "%ldx", dims[i]);
  snprintf(buf + at, n - at, "%s>", elem);
  return buf;
}

#define T1(e, a) ty((char[64]){0}, 64, e, a, 0, 0, 0)
#define T2(e, a, b) ty((char[64]){0}, 64, e, a, b, 0, 0)
#define T4(e, a, b, c, d) ty((char[64]){0}, 64, e, a, b, c, d)

/* Parameters of one layer (suffix "" or "_7" for layer 7 of a model). */
static void layer_params(Text *t, const LayerShape *s, const char *sfx) {
  long E = s->E, F = s->F, HD = s->H * s->D, KD = s->Hkv * s->D;
  put(t, ",\n  %%attn_norm%s: %s, %%ffn_norm%s: %s,\n", sfx, T1("f32", E), sfx,
      T1("f32", E));
  put(t, "  %%wq%s: %s {shard = [-, t]}, %%wk%s: %s {shard = [-, t]},\n", sfx, T2("bf16", E, HD),
      sfx, T2("bf16", E, KD));
  put(t, "  %%wv%s: %s {shard = [-, t]}, %%wo%s: %s {shard = [t, -]},\n", sfx, T2("bf16", E, KD),
      sfx, T2("bf16", HD, E));
  if (s->phase == PHASE_DECODE)
    put(t, "  %%kc%s: %s {shard = [d, t, -, -]}, %%vc%s: %s {shard = [d, t, -, -]},\n", sfx,
        T4("bf16", s->B, s->Hkv, s->S, s->D), sfx, T4("bf16", s->B, s->Hkv, s->S, s->D));
  put(t, "  %%wg%s: %s {shard = [-, t]}, %%wu%s: %s {shard = [-, t]},\n", sfx, T2("bf16", E, F),
      sfx, T2("bf16", E, F));
  put(t, "  %%wd%s: %s {shard = [t, -]}", sfx, T2("bf16", F, E));
}

/* One decoder layer from %IN to %OUT (both [tokens, E] f32). */
static void layer_body(Text *t, const LayerShape *s, const char *sfx, const char *in,
                       const char *out) {
  long E = s->E, HD = s->H * s->D, KD = s->Hkv * s->D, D = s->D;
  bool dec = s->phase == PHASE_DECODE;
  long B = s->B, L = dec ? 1 : s->L, T = B * L;
  const char *f32 = "f32", *b16 = "bf16";
  double scale = 1.0 / __builtin_sqrt((double)D);
  put(t, "  %%n%s = rmsnorm %%%s, %%attn_norm%s {eps = 1e-05} : %s\n", sfx, in, sfx, T2(f32, T, E));
  put(t, "  %%nb%s = convert %%n%s : %s\n", sfx, sfx, T2(b16, T, E));
  /* Sequence-parallel: the residual stream's rows are split over (d, t), so the
   * projections say their results are split by columns over t (their input is
   * gathered over t), and the residual adds bring the partial sums back onto rows. */
  bool seq = s->mlp == MLP_SEQUENCE;
  const char *cols = seq ? " {shard = [d, t]}" : "", *rows = seq ? " {shard = [(d, t), -]}" : "";
  put(t, "  %%q%s = matmul %%nb%s, %%wq%s%s : %s\n", sfx, sfx, sfx, cols, T2(f32, T, HD));
  put(t, "  %%k%s = matmul %%nb%s, %%wk%s%s : %s\n", sfx, sfx, sfx, cols, T2(f32, T, KD));
  put(t, "  %%v%s = matmul %%nb%s, %%wv%s%s : %s\n", sfx, sfx, sfx, cols, T2(b16, T, KD));
  /* [tokens, heads * D] -> [B, L, heads, D] -> [B, heads, L, D] */
  const char *names[3] = {"q", "k", "v"};
  long heads[3] = {s->H, s->Hkv, s->Hkv};
  const char *elem[3] = {f32, f32, b16};
  for (int i = 0; i < 3; i++) {
    put(t, "  %%%s4%s = reshape %%%s%s : %s\n", names[i], sfx, names[i], sfx,
        T4(elem[i], B, L, heads[i], D));
    put(t, "  %%%sh%s = transpose %%%s4%s {perm = [0, 2, 1, 3]} : %s\n", names[i], sfx, names[i],
        sfx, T4(elem[i], B, heads[i], L, D));
  }
  for (int i = 0; i < 2; i++) {
    put(t, "  %%%sr%s = rope %%%sh%s, %%cos, %%sin : %s\n", names[i], sfx, names[i], sfx,
        T4(f32, B, heads[i], L, D));
    put(t, "  %%%sb%s = convert %%%sr%s : %s\n", names[i], sfx, names[i], sfx,
        T4(b16, B, heads[i], L, D));
  }
  if (dec)
    put(t, "  %%o%s = attention %%qb%s, %%kc%s, %%vc%s {scale = %.17g} : %s\n", sfx, sfx, sfx, sfx,
        scale, T4(b16, B, s->H, 1, D));
  else
    put(t, "  %%o%s = attention %%qb%s, %%kb%s, %%vh%s {scale = %.17g, causal = 1} : %s\n", sfx,
        sfx, sfx, sfx, scale, T4(b16, B, s->H, L, D));
  put(t, "  %%ot%s = transpose %%o%s {perm = [0, 2, 1, 3]} : %s\n", sfx, sfx,
      T4(b16, B, L, s->H, D));
  put(t, "  %%o2%s = reshape %%ot%s : %s\n", sfx, sfx, T2(b16, T, HD));
  put(t, "  %%proj%s = matmul %%o2%s, %%wo%s : %s\n", sfx, sfx, sfx, T2(f32, T, E));
  put(t, "  %%h%s = add %%%s, %%proj%s%s : %s\n", sfx, in, sfx, rows, T2(f32, T, E));
  put(t, "  %%m%s = rmsnorm %%h%s, %%ffn_norm%s {eps = 1e-05} : %s\n", sfx, sfx, sfx, T2(f32, T, E));
  put(t, "  %%mb%s = convert %%m%s : %s\n", sfx, sfx, T2(b16, T, E));
  put(t, "  %%g%s = matmul %%mb%s, %%wg%s%s : %s\n", sfx, sfx, sfx, cols, T2(b16, T, s->F));
  put(t, "  %%u%s = matmul %%mb%s, %%wu%s%s : %s\n", sfx, sfx, sfx, cols, T2(b16, T, s->F));
  put(t, "  %%a%s = silu %%g%s : %s\n", sfx, sfx, T2(b16, T, s->F));
  put(t, "  %%hh%s = mul %%a%s, %%u%s : %s\n", sfx, sfx, sfx, T2(b16, T, s->F));
  put(t, "  %%y%s = matmul %%hh%s, %%wd%s : %s\n", sfx, sfx, sfx, T2(f32, T, E));
  put(t, "  %%%s = add %%h%s, %%y%s%s : %s\n", out, sfx, sfx, rows, T2(f32, T, E));
}

static void mesh_line(Text *t, const LayerShape *s) {
  put(t, "mesh @m = torus<%dx%d>(d, t)\n\n", s->dsize, s->tsize);
}

static void layers(Text *t, const LayerShape *s) {
  bool dec = s->phase == PHASE_DECODE;
  long B = s->B, L = dec ? 1 : s->L, T = B * L;
  mesh_line(t, s);
  put(t, "func @%s(%%x: %s {shard = [%s, -]},\n  %%cos: %s, %%sin: %s", s->nlayers > 1 ? "model" : "layer",
      T2("f32", T, s->E), s->mlp == MLP_SEQUENCE ? "(d, t)" : "d", T2("f32", L, s->D / 2),
      T2("f32", L, s->D / 2));
  char sfx[16];
  for (int l = 0; l < s->nlayers; l++) {
    snprintf(sfx, sizeof sfx, s->nlayers > 1 ? "_%d" : "", l);
    layer_params(t, s, sfx);
  }
  /* results: the layer's output, then each layer's new key and value rows */
  put(t, ")\n    -> (%s", T2("f32", T, s->E));
  for (int l = 0; l < s->nlayers; l++)
    put(t, ", %s, %s", T4("bf16", B, s->Hkv, L, s->D), T4("bf16", B, s->Hkv, L, s->D));
  put(t, ") attributes {mesh = @m} {\n");
  char in[32] = "x", out[32];
  for (int l = 0; l < s->nlayers; l++) {
    snprintf(sfx, sizeof sfx, s->nlayers > 1 ? "_%d" : "", l);
    snprintf(out, sizeof out, "x%d", l + 1);
    layer_body(t, s, sfx, in, out);
    snprintf(in, sizeof in, "%s", out);
  }
  put(t, "  return %%%s", in);
  for (int l = 0; l < s->nlayers; l++) {
    snprintf(sfx, sizeof sfx, s->nlayers > 1 ? "_%d" : "", l);
    put(t, ", %%kb%s, %%vh%s", sfx, sfx);
  }
  put(t, "\n}\n");
}

static void mlp(Text *t, const LayerShape *s) {
  long T = s->phase == PHASE_DECODE ? s->B : s->B * s->L, E = s->E, F = s->F;
  bool seq = s->mlp == MLP_SEQUENCE;
  mesh_line(t, s);
  put(t, "func @mlp(%%x: %s%s, %%wg: %s {shard = [-, (d, t)]},\n", T2("bf16", T, E),
      seq ? " {shard = [(d, t), -]}" : "", T2("bf16", E, F));
  put(t, "          %%wu: %s {shard = [-, (d, t)]}, %%wd: %s {shard = %s})\n",
      T2("bf16", E, F), T2("bf16", F, E), s->mlp == MLP_GATHERED ? "[-, (d, t)]" : "[(d, t), -]");
  put(t, "    -> %s attributes {mesh = @m} {\n", T2("f32", T, E));
  /* With the input split by rows, the projections' results are still split by columns. */
  const char *cols = seq ? " {shard = [-, (d, t)]}" : "";
  put(t, "  %%g = matmul %%x, %%wg%s : %s\n", cols, T2("bf16", T, F));
  put(t, "  %%u = matmul %%x, %%wu%s : %s\n", cols, T2("bf16", T, F));
  put(t, "  %%a = silu %%g : %s\n", T2("bf16", T, F));
  put(t, "  %%h = mul %%a, %%u : %s\n", T2("bf16", T, F));
  put(t, "  %%y = matmul %%h, %%wd : %s\n", T2("f32", T, E));
  if (seq) /* the rows split again: a reduce_scatter of the partial sums */
    put(t, "  %%z = convert %%y {shard = [(d, t), -]} : %s\n  return %%z\n}\n", T2("f32", T, E));
  else
    put(t, "  return %%y\n}\n");
}

char *layer_program(const LayerShape *s, size_t *len) {
  Text t = {0};
  t.f = open_memstream(&t.buf, &t.len);
  if (!t.f) return NULL;
  if (s->block == BLOCK_MLP) mlp(&t, s);
  else layers(&t, s);
  if (fclose(t.f) != 0) {
    free(t.buf);
    return NULL;
  }
  *len = t.len;
  return t.buf;
}
