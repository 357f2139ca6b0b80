/* tests/unit/tiny_bert.h — a random tiny BERT written to a temp dir, shared by
 * the engine unit tests: config.json + model.safetensors with pooler,
 * classifier (C labels) and MLM head; V=13 D=8 L=2 H=2 I=16 P=16 T=2 C=3.
 * Include after cmocka.h. */
#ifndef BATON_TESTS_TINY_BERT_H
#define BATON_TESTS_TINY_BERT_H

#include "state/safetensors.h"
#include "util/file.h"
#include "util/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { V = 13, D = 8, L = 2, H = 2, I = 16, P = 16, T = 2, C = 3 };

static uint64_t rng_state = 88172645463325252ull;
static float frand(void) /* uniform [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

typedef struct {
    char name[96];
    int ndim;
    int64_t s0, s1;
    int ln_weight;
} spec;

static int add(spec *s, int n, int ndim, int64_t a, int64_t b, const char *name)
{
    snprintf(s[n].name, sizeof s[n].name, "%s", name);
    s[n].ndim = ndim;
    s[n].s0 = a;
    s[n].s1 = b;
    s[n].ln_weight = strstr(name, "LayerNorm.weight") != NULL;
    return n + 1;
}

/* Writes config.json + model.safetensors of a random tiny BERT with pooler,
 * classifier and MLM head into a fresh temp dir. */
static char *write_model(float dropout)
{
    char tmpl[] = "/tmp/baton-bert-XXXXXX";
    char *dir = bt_xstrdup(mkdtemp(tmpl));
    char *cfg = bt_xasprintf(
        "{\"model_type\":\"bert\",\"vocab_size\":%d,\"hidden_size\":%d,\"num_hidden_layers\":%d,"
        "\"num_attention_heads\":%d,\"intermediate_size\":%d,\"max_position_embeddings\":%d,"
        "\"type_vocab_size\":%d,\"hidden_act\":\"gelu\",\"hidden_dropout_prob\":%g,"
        "\"attention_probs_dropout_prob\":%g,\"layer_norm_eps\":1e-12,\"initializer_range\":0.5,"
        "\"pad_token_id\":0,\"num_labels\":%d}\n", V, D, L, H, I, P, T, dropout, dropout, C);
    char *cp = bt_path_join(dir, "config.json");
    assert_int_equal(bt_write_file_atomic(cp, cfg, strlen(cfg)), 0);
    free(cp);
    free(cfg);
    spec s[64];
    int n = 0;
    char nm[96];
    n = add(s, n, 2, V, D, "embeddings.word_embeddings.weight");
    n = add(s, n, 2, P, D, "embeddings.position_embeddings.weight");
    n = add(s, n, 2, T, D, "embeddings.token_type_embeddings.weight");
    n = add(s, n, 1, D, 0, "embeddings.LayerNorm.weight");
    n = add(s, n, 1, D, 0, "embeddings.LayerNorm.bias");
    for (int l = 0; l < L; l++) {
        static const char *q[] = {"query", "key", "value"};
        for (int k = 0; k < 3; k++) {
            snprintf(nm, sizeof nm, "encoder.layer.%d.attention.self.%s.weight", l, q[k]); n = add(s, n, 2, D, D, nm);
            snprintf(nm, sizeof nm, "encoder.layer.%d.attention.self.%s.bias", l, q[k]); n = add(s, n, 1, D, 0, nm);
        }
        snprintf(nm, sizeof nm, "encoder.layer.%d.attention.output.dense.weight", l); n = add(s, n, 2, D, D, nm);
        snprintf(nm, sizeof nm, "encoder.layer.%d.attention.output.dense.bias", l); n = add(s, n, 1, D, 0, nm);
        snprintf(nm, sizeof nm, "encoder.layer.%d.attention.output.LayerNorm.weight", l); n = add(s, n, 1, D, 0, nm);
        snprintf(nm, sizeof nm, "encoder.layer.%d.attention.output.LayerNorm.bias", l); n = add(s, n, 1, D, 0, nm);
        snprintf(nm, sizeof nm, "encoder.layer.%d.intermediate.dense.weight", l); n = add(s, n, 2, I, D, nm);
        snprintf(nm, sizeof nm, "encoder.layer.%d.intermediate.dense.bias", l); n = add(s, n, 1, I, 0, nm);
        snprintf(nm, sizeof nm, "encoder.layer.%d.output.dense.weight", l); n = add(s, n, 2, D, I, nm);
        snprintf(nm, sizeof nm, "encoder.layer.%d.output.dense.bias", l); n = add(s, n, 1, D, 0, nm);
        snprintf(nm, sizeof nm, "encoder.layer.%d.output.LayerNorm.weight", l); n = add(s, n, 1, D, 0, nm);
        snprintf(nm, sizeof nm, "encoder.layer.%d.output.LayerNorm.bias", l); n = add(s, n, 1, D, 0, nm);
    }
    n = add(s, n, 2, D, D, "pooler.dense.weight");
    n = add(s, n, 1, D, 0, "pooler.dense.bias");
    n = add(s, n, 2, C, D, "classifier.weight");
    n = add(s, n, 1, C, 0, "classifier.bias");
    n = add(s, n, 2, D, D, "cls.predictions.transform.dense.weight");
    n = add(s, n, 1, D, 0, "cls.predictions.transform.dense.bias");
    n = add(s, n, 1, D, 0, "cls.predictions.transform.LayerNorm.weight");
    n = add(s, n, 1, D, 0, "cls.predictions.transform.LayerNorm.bias");
    n = add(s, n, 1, V, 0, "cls.predictions.bias");
    bt_st_entry e[64];
    float *data[64];
    for (int i = 0; i < n; i++) {
        size_t numel = (size_t)s[i].s0 * (s[i].ndim == 2 ? (size_t)s[i].s1 : 1);
        data[i] = bt_xmalloc(numel * sizeof(float));
        for (size_t k = 0; k < numel; k++) data[i][k] = (s[i].ln_weight ? 1.0f : 0.0f) + 0.5f * frand();
        memset(&e[i], 0, sizeof e[i]);
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
    return dir;
}

static void remove_model(char *dir)
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
