/* tests/unit/rand_bert.h — a random BERT of any size written to a temp dir
 * (config.json + model.safetensors with pooler, classifier and MLM head),
 * for the engine tests that need other shapes than tiny_bert.h's; with
 * deberta = 1 a DeBERTa-v3-like DebertaV2ForSequenceClassification instead
 * (no position table, log buckets 16, p2c|c2p, rel LayerNorm; no MLM head),
 * deberta = 2 a v2-like one (absolute positions, max_relative_positions 12,
 * c2p only, no rel LayerNorm; token types when T > 0); with E > 0 an ELECTRA
 * model (embedding_size E: the tables E wide, embeddings_project [D,E] when
 * E != D; no pooler, no MLM head).
 * Include after cmocka.h. Everything is static (one executable per test). */
#ifndef BATON_TESTS_RAND_BERT_H
#define BATON_TESTS_RAND_BERT_H

#include "state/safetensors.h"
#include "util/file.h"
#include "util/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct { int V, D, L, H, I, P, T, C; float dropout; int deberta, E; } rb_dims;
#define RB_DEBERTA_SPAN 16 /* v3-like position_buckets: rel_embeddings [2 x 16, D] */
#define RB_DEBERTA2_SPAN 12 /* v2-like max_relative_positions: rel_embeddings [2 x 12, D] */

static uint64_t rb_state = 0x2545F4914F6CDD1Dull;
static float rb_rand(void) /* uniform [-1, 1) */
{
    rb_state ^= rb_state << 13;
    rb_state ^= rb_state >> 7;
    rb_state ^= rb_state << 17;
    return (float)((rb_state >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

typedef struct { char name[96]; int ndim; int64_t s0, s1; } rb_spec;

static int rb_add(rb_spec *s, int n, int ndim, int64_t a, int64_t b, const char *fmt, int l)
{
    snprintf(s[n].name, sizeof s[n].name, fmt, l);
    s[n].ndim = ndim;
    s[n].s0 = a;
    s[n].s1 = b;
    return n + 1;
}

/* A canonical name as DebertaV2ForSequenceClassification spells it (in
 * place; cap bytes hold it). */
static void rb_deberta_name(char *name, size_t cap)
{
    if (strncmp(name, "embeddings.", 11) && strncmp(name, "encoder.", 8)) return;
    size_t n = strlen(name);
    assert_true(n + 8 + 5 < cap);
    memmove(name + 8, name, n + 1);
    memcpy(name, "deberta.", 8);
    char *self = strstr(name, ".attention.self."), *dot = self ? strchr(self + 16, '.') : NULL;
    if (dot) {
        memmove(dot + 5, dot, strlen(dot) + 1);
        memcpy(dot, "_proj", 5);
    }
}

/* config.json's family keys: model_type, DeBERTa's relative attention, ELECTRA's embedding_size. */
static const char *rb_family(const rb_dims *d)
{
    static char electra[96];
    if (d->E > 0) {
        snprintf(electra, sizeof electra, "\"model_type\":\"electra\",\"embedding_size\":%d,", d->E);
        return electra;
    }
    if (d->deberta == 1)
        return "\"model_type\":\"deberta-v2\",\"relative_attention\":true,\"position_biased_input\":false,"
               "\"position_buckets\":16,\"max_relative_positions\":64,\"pos_att_type\":\"p2c|c2p\","
               "\"share_att_key\":true,\"norm_rel_ebd\":\"layer_norm\",";
    if (d->deberta == 2)
        return "\"model_type\":\"deberta-v2\",\"relative_attention\":true,\"position_biased_input\":true,"
               "\"max_relative_positions\":12,\"pos_att_type\":[\"c2p\"],\"share_att_key\":true,";
    return "\"model_type\":\"bert\",";
}

/* Writes the model into a fresh temp dir; weights only when with_weights
 * (a directory with config.json alone is what `baton plan` needs). */
static char *rb_write(const rb_dims *d, int with_weights)
{
    char tmpl[] = "/tmp/baton-rbert-XXXXXX";
    char *dir = bt_xstrdup(mkdtemp(tmpl));
    char *cfg = bt_xasprintf(
        "{%s\"vocab_size\":%d,\"hidden_size\":%d,\"num_hidden_layers\":%d,"
        "\"num_attention_heads\":%d,\"intermediate_size\":%d,\"max_position_embeddings\":%d,"
        "\"type_vocab_size\":%d,\"hidden_act\":\"gelu\",\"hidden_dropout_prob\":%g,"
        "\"attention_probs_dropout_prob\":%g,\"layer_norm_eps\":1e-12,\"initializer_range\":0.2,"
        "\"pad_token_id\":0,\"num_labels\":%d}\n",
        rb_family(d), d->V, d->D, d->L, d->H, d->I, d->P, d->T, d->dropout, d->dropout, d->C);
    char *cp = bt_path_join(dir, "config.json");
    assert_int_equal(bt_write_file_atomic(cp, cfg, strlen(cfg)), 0);
    free(cp);
    free(cfg);
    if (!with_weights) return dir;
    int cap = 16 + 16 * d->L, n = 0;
    rb_spec *s = bt_xcalloc((size_t)cap, sizeof *s);
    int E = d->E > 0 ? d->E : d->D;
    n = rb_add(s, n, 2, d->V, E, "embeddings.word_embeddings.weight", 0);
    if (d->deberta != 1) n = rb_add(s, n, 2, d->P, E, "embeddings.position_embeddings.weight", 0);
    if (d->T > 0) n = rb_add(s, n, 2, d->T, E, "embeddings.token_type_embeddings.weight", 0);
    n = rb_add(s, n, 1, E, 0, "embeddings.LayerNorm.weight", 0);
    n = rb_add(s, n, 1, E, 0, "embeddings.LayerNorm.bias", 0);
    if (E != d->D) {
        n = rb_add(s, n, 2, d->D, E, "embeddings_project.weight", 0);
        n = rb_add(s, n, 1, d->D, 0, "embeddings_project.bias", 0);
    }
    if (d->deberta == 2) n = rb_add(s, n, 2, 2 * RB_DEBERTA2_SPAN, d->D, "encoder.rel_embeddings.weight", 0);
    if (d->deberta == 1) {
        n = rb_add(s, n, 2, 2 * RB_DEBERTA_SPAN, d->D, "encoder.rel_embeddings.weight", 0);
        n = rb_add(s, n, 1, d->D, 0, "encoder.LayerNorm.weight", 0);
        n = rb_add(s, n, 1, d->D, 0, "encoder.LayerNorm.bias", 0);
    }
    for (int l = 0; l < d->L; l++) {
        n = rb_add(s, n, 2, d->D, d->D, "encoder.layer.%d.attention.self.query.weight", l);
        n = rb_add(s, n, 1, d->D, 0, "encoder.layer.%d.attention.self.query.bias", l);
        n = rb_add(s, n, 2, d->D, d->D, "encoder.layer.%d.attention.self.key.weight", l);
        n = rb_add(s, n, 1, d->D, 0, "encoder.layer.%d.attention.self.key.bias", l);
        n = rb_add(s, n, 2, d->D, d->D, "encoder.layer.%d.attention.self.value.weight", l);
        n = rb_add(s, n, 1, d->D, 0, "encoder.layer.%d.attention.self.value.bias", l);
        n = rb_add(s, n, 2, d->D, d->D, "encoder.layer.%d.attention.output.dense.weight", l);
        n = rb_add(s, n, 1, d->D, 0, "encoder.layer.%d.attention.output.dense.bias", l);
        n = rb_add(s, n, 1, d->D, 0, "encoder.layer.%d.attention.output.LayerNorm.weight", l);
        n = rb_add(s, n, 1, d->D, 0, "encoder.layer.%d.attention.output.LayerNorm.bias", l);
        n = rb_add(s, n, 2, d->I, d->D, "encoder.layer.%d.intermediate.dense.weight", l);
        n = rb_add(s, n, 1, d->I, 0, "encoder.layer.%d.intermediate.dense.bias", l);
        n = rb_add(s, n, 2, d->D, d->I, "encoder.layer.%d.output.dense.weight", l);
        n = rb_add(s, n, 1, d->D, 0, "encoder.layer.%d.output.dense.bias", l);
        n = rb_add(s, n, 1, d->D, 0, "encoder.layer.%d.output.LayerNorm.weight", l);
        n = rb_add(s, n, 1, d->D, 0, "encoder.layer.%d.output.LayerNorm.bias", l);
    }
    if (d->E <= 0) {
        n = rb_add(s, n, 2, d->D, d->D, "pooler.dense.weight", 0);
        n = rb_add(s, n, 1, d->D, 0, "pooler.dense.bias", 0);
    }
    n = rb_add(s, n, 2, d->C, d->D, "classifier.weight", 0);
    n = rb_add(s, n, 1, d->C, 0, "classifier.bias", 0);
    for (int i = 0; d->deberta && i < n; i++) /* DeBERTa's names: deberta.*, attention.self.{q,k,v}_proj */
        rb_deberta_name(s[i].name, sizeof s[i].name);
    if (!d->deberta && d->E <= 0) {
        n = rb_add(s, n, 2, d->D, d->D, "cls.predictions.transform.dense.weight", 0);
        n = rb_add(s, n, 1, d->D, 0, "cls.predictions.transform.dense.bias", 0);
        n = rb_add(s, n, 1, d->D, 0, "cls.predictions.transform.LayerNorm.weight", 0);
        n = rb_add(s, n, 1, d->D, 0, "cls.predictions.transform.LayerNorm.bias", 0);
        n = rb_add(s, n, 1, d->V, 0, "cls.predictions.bias", 0);
    }
    bt_st_entry *e = bt_xcalloc((size_t)n, sizeof *e);
    float **data = bt_xcalloc((size_t)n, sizeof *data);
    for (int i = 0; i < n; i++) {
        size_t numel = (size_t)s[i].s0 * (s[i].ndim == 2 ? (size_t)s[i].s1 : 1);
        int lnw = strstr(s[i].name, "LayerNorm.weight") != NULL;
        data[i] = bt_xmalloc(numel * sizeof(float));
        for (size_t k = 0; k < numel; k++) data[i][k] = (lnw ? 1.0f : 0.0f) + 0.3f * rb_rand();
        e[i].name = s[i].name;
        e[i].dtype = BT_ST_F32;
        e[i].ndim = s[i].ndim;
        e[i].shape[0] = s[i].s0;
        e[i].shape[1] = s[i].s1;
        e[i].data = data[i];
    }
    char *mp = bt_path_join(dir, "model.safetensors");
    assert_int_equal(bt_st_write_file(mp, e, (size_t)n, NULL), 0);
    free(mp);
    for (int i = 0; i < n; i++) free(data[i]);
    free(data);
    free(e);
    free(s);
    return dir;
}

static void rb_remove(char *dir)
{
    char *a = bt_path_join(dir, "config.json"), *b = bt_path_join(dir, "model.safetensors");
    unlink(a);
    unlink(b);
    rmdir(dir);
    free(a);
    free(b);
    free(dir);
}

#endif
