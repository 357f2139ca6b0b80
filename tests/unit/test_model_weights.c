/* tests/unit/test_model_weights.c — HF name mapping and bt_load_hf_weights on
 * synthetic checkpoints written with the safetensors writer: every source
 * naming scheme, legacy gamma/beta, tied and aliased tensors, fp16 data, and
 * the one error that lists every missing and mis-shaped tensor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/init.h"
#include "engine/model_config.h"
#include "engine/model_weights.h"
#include "state/safetensors.h"
#include "util/err.h"
#include "util/file.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_canonical_names(void **state)
{
    (void)state;
    char b[256];
    struct { const char *in, *out; int kind; } cases[] = {
        {"embeddings.word_embeddings.weight", "embeddings.word_embeddings.weight", BT_NAME_CANONICAL},
        {"bert.embeddings.word_embeddings.weight", "embeddings.word_embeddings.weight", BT_NAME_CANONICAL},
        {"bert.encoder.layer.11.attention.self.query.weight", "encoder.layer.11.attention.self.query.weight", BT_NAME_CANONICAL},
        {"encoder.layer.3.output.LayerNorm.gamma", "encoder.layer.3.output.LayerNorm.weight", BT_NAME_CANONICAL},
        {"bert.embeddings.LayerNorm.beta", "embeddings.LayerNorm.bias", BT_NAME_CANONICAL},
        {"cls.predictions.transform.LayerNorm.gamma", "cls.predictions.transform.LayerNorm.weight", BT_NAME_CANONICAL},
        {"classifier.weight", "classifier.weight", BT_NAME_CANONICAL},
        {"pooler.dense.bias", "pooler.dense.bias", BT_NAME_CANONICAL},
        {"cls.predictions.bias", "cls.predictions.bias", BT_NAME_CANONICAL},
        {"cls.predictions.decoder.bias", "cls.predictions.bias", BT_NAME_CANONICAL},
        {"cls.predictions.decoder.weight", "embeddings.word_embeddings.weight", BT_NAME_TIED},
        {"embeddings.position_ids", "embeddings.position_ids", BT_NAME_IGNORED},
        {"bert.embeddings.position_ids", "embeddings.position_ids", BT_NAME_IGNORED},
        {"cls.seq_relationship.weight", "cls.seq_relationship.weight", BT_NAME_IGNORED},
        {"encoder.layer.x.output.dense.weight", "encoder.layer.x.output.dense.weight", BT_NAME_UNKNOWN},
        {"encoder.layer.01.output.dense.weight", "encoder.layer.01.output.dense.weight", BT_NAME_UNKNOWN},
        {"encoder.layer.1.output.dense.gamma", "encoder.layer.1.output.dense.gamma", BT_NAME_UNKNOWN},
        {"roberta.embeddings.word_embeddings.weight", "roberta.embeddings.word_embeddings.weight", BT_NAME_UNKNOWN},
        {"qa_outputs.weight", "qa_outputs.weight", BT_NAME_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int k = bt_canonical_name(cases[i].in, b, sizeof b);
        if (k != cases[i].kind || strcmp(b, cases[i].out)) {
            fprintf(stderr, "%s -> %d '%s', want %d '%s'\n", cases[i].in, k, b, cases[i].kind, cases[i].out);
            fail();
        }
    }
    char small[8];
    assert_int_equal(bt_canonical_name("embeddings.word_embeddings.weight", small, sizeof small), BT_NAME_UNKNOWN);
    assert_string_equal(small, "");
}

static void test_roberta_names(void **state)
{
    (void)state;
    static const struct { const char *in, *out; int kind; } cases[] = {
        {"roberta.embeddings.word_embeddings.weight", "embeddings.word_embeddings.weight", BT_NAME_CANONICAL},
        {"embeddings.position_embeddings.weight", "embeddings.position_embeddings.weight", BT_NAME_CANONICAL},
        {"roberta.encoder.layer.3.attention.self.key.bias", "encoder.layer.3.attention.self.key.bias", BT_NAME_CANONICAL},
        {"classifier.dense.weight", "pooler.dense.weight", BT_NAME_CANONICAL},
        {"classifier.out_proj.bias", "classifier.bias", BT_NAME_CANONICAL},
        {"roberta.pooler.dense.weight", "pooler.dense.weight", BT_NAME_IGNORED},
        {"pooler.dense.bias", "pooler.dense.bias", BT_NAME_IGNORED},
        {"lm_head.dense.weight", "cls.predictions.transform.dense.weight", BT_NAME_CANONICAL},
        {"lm_head.layer_norm.bias", "cls.predictions.transform.LayerNorm.bias", BT_NAME_CANONICAL},
        {"lm_head.bias", "cls.predictions.bias", BT_NAME_CANONICAL},
        {"lm_head.decoder.bias", "cls.predictions.bias", BT_NAME_CANONICAL},
        {"lm_head.decoder.weight", "embeddings.word_embeddings.weight", BT_NAME_TIED},
        {"lm_head.dense.kernel", "cls.predictions.transform.dense.kernel", BT_NAME_UNKNOWN},
        {"roberta.embeddings.position_ids", "embeddings.position_ids", BT_NAME_IGNORED},
        {"classifier.weight", "classifier.weight", BT_NAME_CANONICAL}, /* RobertaForTokenClassification */
        {"classifier.kernel", "classifier.kernel", BT_NAME_UNKNOWN},
        {"bert.embeddings.word_embeddings.weight", "bert.embeddings.word_embeddings.weight", BT_NAME_UNKNOWN},
    };
    char b[256];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int k = bt_canonical_name_family(cases[i].in, BT_FAMILY_ROBERTA, b, sizeof b);
        if (k != cases[i].kind || strcmp(b, cases[i].out)) {
            fprintf(stderr, "%s -> %d '%s', want %d '%s'\n", cases[i].in, k, b, cases[i].kind, cases[i].out);
            fail();
        }
    }
    /* export names of the token classifier and the masked LM */
    static const struct { const char *canon, *arch, *hf; } back[] = {
        {"classifier.weight", "RobertaForTokenClassification", "classifier.weight"},
        {"classifier.bias", "XLMRobertaForTokenClassification", "classifier.bias"},
        {"encoder.layer.0.output.dense.bias", "RobertaForTokenClassification", "roberta.encoder.layer.0.output.dense.bias"},
        {"cls.predictions.transform.dense.weight", "RobertaForMaskedLM", "lm_head.dense.weight"},
        {"cls.predictions.transform.LayerNorm.weight", "XLMRobertaForMaskedLM", "lm_head.layer_norm.weight"},
        {"cls.predictions.bias", "RobertaForMaskedLM", "lm_head.bias"},
        {"embeddings.word_embeddings.weight", "RobertaForMaskedLM", "roberta.embeddings.word_embeddings.weight"},
        {"classifier.weight", "RobertaForSequenceClassification", "classifier.out_proj.weight"},
    };
    for (size_t i = 0; i < sizeof back / sizeof *back; i++) {
        assert_non_null(bt_hf_name(back[i].canon, back[i].arch, b, sizeof b));
        assert_string_equal(b, back[i].hf);
    }
    assert_null(bt_hf_name("pooler.dense.weight", "RobertaForTokenClassification", b, sizeof b));
    assert_null(bt_hf_name("pooler.dense.weight", "RobertaForMaskedLM", b, sizeof b));
}

static void test_distilbert_names(void **state)
{
    (void)state;
    static const struct { const char *in, *out; int kind; } cases[] = {
        {"distilbert.embeddings.word_embeddings.weight", "embeddings.word_embeddings.weight", BT_NAME_CANONICAL},
        {"embeddings.LayerNorm.bias", "embeddings.LayerNorm.bias", BT_NAME_CANONICAL},
        {"distilbert.transformer.layer.0.attention.q_lin.weight", "encoder.layer.0.attention.self.query.weight", BT_NAME_CANONICAL},
        {"transformer.layer.11.attention.out_lin.bias", "encoder.layer.11.attention.output.dense.bias", BT_NAME_CANONICAL},
        {"distilbert.transformer.layer.1.sa_layer_norm.weight", "encoder.layer.1.attention.output.LayerNorm.weight", BT_NAME_CANONICAL},
        {"distilbert.transformer.layer.1.ffn.lin1.bias", "encoder.layer.1.intermediate.dense.bias", BT_NAME_CANONICAL},
        {"distilbert.transformer.layer.1.ffn.lin2.weight", "encoder.layer.1.output.dense.weight", BT_NAME_CANONICAL},
        {"distilbert.transformer.layer.1.output_layer_norm.bias", "encoder.layer.1.output.LayerNorm.bias", BT_NAME_CANONICAL},
        {"pre_classifier.weight", "pooler.dense.weight", BT_NAME_CANONICAL},
        {"classifier.bias", "classifier.bias", BT_NAME_CANONICAL},
        {"vocab_projector.bias", "cls.predictions.bias", BT_NAME_CANONICAL},
        {"vocab_transform.weight", "cls.predictions.transform.dense.weight", BT_NAME_CANONICAL},
        {"vocab_layer_norm.bias", "cls.predictions.transform.LayerNorm.bias", BT_NAME_CANONICAL},
        {"vocab_projector.weight", "embeddings.word_embeddings.weight", BT_NAME_TIED},
        {"distilbert.transformer.layer.1.ffn.lin3.weight", "transformer.layer.1.ffn.lin3.weight", BT_NAME_UNKNOWN},
        {"embeddings.token_type_embeddings.weight", "embeddings.token_type_embeddings.weight", BT_NAME_UNKNOWN},
        {"encoder.layer.0.output.dense.weight", "encoder.layer.0.output.dense.weight", BT_NAME_UNKNOWN},
    };
    char b[256];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int k = bt_canonical_name_family(cases[i].in, BT_FAMILY_DISTILBERT, b, sizeof b);
        if (k != cases[i].kind || strcmp(b, cases[i].out)) {
            fprintf(stderr, "%s -> %d '%s', want %d '%s'\n", cases[i].in, k, b, cases[i].kind, cases[i].out);
            fail();
        }
        if (k != BT_NAME_CANONICAL || !strncmp(cases[i].in, "transformer.", 12) ||
            !strncmp(cases[i].in, "embeddings.", 11))
            continue;
        char back[256]; /* export names: the inverse */
        assert_non_null(bt_hf_name(b, "DistilBertForSequenceClassification", back, sizeof back));
        assert_string_equal(back, cases[i].in);
    }
    assert_null(bt_hf_name("embeddings.token_type_embeddings.weight", "DistilBertForSequenceClassification", b, sizeof b));
}

static void test_deberta_names(void **state)
{
    (void)state;
    static const struct { const char *in, *out; int kind; } cases[] = {
        {"deberta.embeddings.word_embeddings.weight", "embeddings.word_embeddings.weight", BT_NAME_CANONICAL},
        {"deberta.embeddings.LayerNorm.bias", "embeddings.LayerNorm.bias", BT_NAME_CANONICAL},
        {"deberta.encoder.layer.0.attention.self.query_proj.weight", "encoder.layer.0.attention.self.query.weight", BT_NAME_CANONICAL},
        {"deberta.encoder.layer.11.attention.self.key_proj.bias", "encoder.layer.11.attention.self.key.bias", BT_NAME_CANONICAL},
        {"deberta.encoder.layer.2.attention.self.value_proj.bias", "encoder.layer.2.attention.self.value.bias", BT_NAME_CANONICAL},
        {"deberta.encoder.layer.1.attention.output.LayerNorm.weight", "encoder.layer.1.attention.output.LayerNorm.weight", BT_NAME_CANONICAL},
        {"deberta.encoder.layer.1.output.dense.weight", "encoder.layer.1.output.dense.weight", BT_NAME_CANONICAL},
        {"deberta.encoder.rel_embeddings.weight", "encoder.rel_embeddings.weight", BT_NAME_CANONICAL},
        {"deberta.encoder.LayerNorm.weight", "encoder.LayerNorm.weight", BT_NAME_CANONICAL},
        {"encoder.LayerNorm.bias", "encoder.LayerNorm.bias", BT_NAME_CANONICAL},
        {"pooler.dense.weight", "pooler.dense.weight", BT_NAME_CANONICAL},
        {"classifier.bias", "classifier.bias", BT_NAME_CANONICAL},
        /* the MLM head: DebertaV2ForMaskedLM's names, and deberta-v3's original ones (read, never written) */
        {"cls.predictions.bias", "cls.predictions.bias", BT_NAME_CANONICAL},
        {"cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.weight", BT_NAME_CANONICAL},
        {"cls.predictions.transform.LayerNorm.bias", "cls.predictions.transform.LayerNorm.bias", BT_NAME_CANONICAL},
        {"cls.predictions.decoder.weight", "embeddings.word_embeddings.weight", BT_NAME_TIED},
        {"lm_predictions.lm_head.bias", "cls.predictions.bias", BT_NAME_CANONICAL},
        {"lm_predictions.lm_head.dense.bias", "cls.predictions.transform.dense.bias", BT_NAME_CANONICAL},
        {"lm_predictions.lm_head.LayerNorm.weight", "cls.predictions.transform.LayerNorm.weight", BT_NAME_CANONICAL},
        {"mask_predictions.classifier.weight", "mask_predictions.classifier.weight", BT_NAME_IGNORED},
        {"deberta.encoder.layer.0.attention.self.query.weight", "encoder.layer.0.attention.self.query.weight", BT_NAME_UNKNOWN},
        {"deberta.encoder.layer.0.attention.self.pos_key_proj.weight", "encoder.layer.0.attention.self.pos_key_proj.weight", BT_NAME_UNKNOWN},
    };
    char b[256];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int k = bt_canonical_name_family(cases[i].in, BT_FAMILY_DEBERTA, b, sizeof b);
        if (k != cases[i].kind || strcmp(b, cases[i].out)) {
            fprintf(stderr, "%s -> %d '%s', want %d '%s'\n", cases[i].in, k, b, cases[i].kind, cases[i].out);
            fail();
        }
        if (k != BT_NAME_CANONICAL || !strncmp(cases[i].in, "encoder.", 8) || !strncmp(cases[i].in, "lm_pred", 7))
            continue;
        char back[256]; /* export names: the inverse (the MLM head's by its class) */
        const char *arch = strncmp(b, "cls.", 4) ? "DebertaV2ForSequenceClassification" : "DebertaV2ForMaskedLM";
        assert_non_null(bt_hf_name(b, arch, back, sizeof back));
        assert_string_equal(back, cases[i].in);
    }
    assert_null(bt_hf_name("cls.predictions.bias", "DebertaV2ForSequenceClassification", b, sizeof b));
    assert_null(bt_hf_name("pooler.dense.weight", "DebertaV2ForMaskedLM", b, sizeof b));
    assert_string_equal(bt_hf_name("encoder.layer.3.attention.self.key.bias", "DebertaV2ForMaskedLM", b, sizeof b),
                        "deberta.encoder.layer.3.attention.self.key_proj.bias");
}

static void test_electra_names(void **state)
{
    (void)state;
    static const struct { const char *in, *out; int kind; } cases[] = {
        {"electra.embeddings.word_embeddings.weight", "embeddings.word_embeddings.weight", BT_NAME_CANONICAL},
        {"electra.embeddings.LayerNorm.bias", "embeddings.LayerNorm.bias", BT_NAME_CANONICAL},
        {"electra.embeddings_project.weight", "embeddings_project.weight", BT_NAME_CANONICAL},
        {"electra.embeddings_project.bias", "embeddings_project.bias", BT_NAME_CANONICAL},
        {"electra.encoder.layer.1.attention.self.key.bias", "encoder.layer.1.attention.self.key.bias", BT_NAME_CANONICAL},
        {"electra.encoder.layer.0.output.LayerNorm.weight", "encoder.layer.0.output.LayerNorm.weight", BT_NAME_CANONICAL},
        {"classifier.dense.weight", "pooler.dense.weight", BT_NAME_CANONICAL},
        {"classifier.out_proj.bias", "classifier.bias", BT_NAME_CANONICAL},
        {"electra.embeddings.position_ids", "embeddings.position_ids", BT_NAME_IGNORED},
        {"discriminator_predictions.dense.weight", "discriminator_predictions.dense.weight", BT_NAME_IGNORED},
        /* the generator's MLM head (ElectraForMaskedLM) */
        {"generator_lm_head.bias", "cls.predictions.bias", BT_NAME_CANONICAL},
        {"generator_predictions.dense.weight", "cls.predictions.transform.dense.weight", BT_NAME_CANONICAL},
        {"generator_predictions.LayerNorm.bias", "cls.predictions.transform.LayerNorm.bias", BT_NAME_CANONICAL},
        {"generator_lm_head.weight", "embeddings.word_embeddings.weight", BT_NAME_TIED},
        {"classifier.weight", "classifier.weight", BT_NAME_CANONICAL}, /* ElectraForTokenClassification */
        {"electra.pooler.dense.weight", "pooler.dense.weight", BT_NAME_UNKNOWN},
    };
    char b[256];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int k = bt_canonical_name_family(cases[i].in, BT_FAMILY_ELECTRA, b, sizeof b);
        if (k != cases[i].kind || strcmp(b, cases[i].out)) {
            fprintf(stderr, "%s -> %d '%s', want %d '%s'\n", cases[i].in, k, b, cases[i].kind, cases[i].out);
            fail();
        }
        if (k != BT_NAME_CANONICAL) continue;
        char back[256]; /* export names: the inverse (the token classifier's plain classifier.* by its class) */
        const char *arch = !strncmp(b, "cls.", 4)                   ? "ElectraForMaskedLM"
                           : strcmp(cases[i].in, "classifier.weight") ? "ElectraForSequenceClassification"
                                                                      : "ElectraForTokenClassification";
        assert_non_null(bt_hf_name(b, arch, back, sizeof back));
        assert_string_equal(back, cases[i].in);
    }
    assert_null(bt_hf_name("cls.predictions.bias", "ElectraForSequenceClassification", b, sizeof b));
    assert_null(bt_hf_name("pooler.dense.weight", "ElectraForTokenClassification", b, sizeof b));
    assert_null(bt_hf_name("classifier.weight", "ElectraForMaskedLM", b, sizeof b));
    assert_string_equal(bt_hf_name("embeddings_project.weight", "ElectraForMaskedLM", b, sizeof b),
                        "electra.embeddings_project.weight");
}

static void test_hf_names(void **state)
{
    (void)state;
    char b[256];
    assert_string_equal(bt_hf_name("encoder.layer.0.output.dense.weight", "BertForSequenceClassification", b, sizeof b),
                        "bert.encoder.layer.0.output.dense.weight");
    assert_string_equal(bt_hf_name("pooler.dense.weight", "BertForSequenceClassification", b, sizeof b), "bert.pooler.dense.weight");
    assert_string_equal(bt_hf_name("embeddings.LayerNorm.bias", "BertForMaskedLM", b, sizeof b), "bert.embeddings.LayerNorm.bias");
    assert_string_equal(bt_hf_name("classifier.weight", "BertForSequenceClassification", b, sizeof b), "classifier.weight");
    assert_string_equal(bt_hf_name("classifier.bias", "BertForTokenClassification", b, sizeof b), "classifier.bias");
    assert_string_equal(bt_hf_name("cls.predictions.bias", "BertForMaskedLM", b, sizeof b), "cls.predictions.bias");
    assert_string_equal(bt_hf_name("encoder.layer.0.output.dense.weight", "BertModel", b, sizeof b),
                        "encoder.layer.0.output.dense.weight");
    assert_string_equal(bt_hf_name("embeddings.word_embeddings.weight", NULL, b, sizeof b), "embeddings.word_embeddings.weight");
    assert_string_equal(bt_hf_name("classifier.weight", "RobertaForSequenceClassification", b, sizeof b),
                        "classifier.out_proj.weight");
    assert_string_equal(bt_hf_name("pooler.dense.bias", "XLMRobertaForSequenceClassification", b, sizeof b),
                        "classifier.dense.bias");
    assert_string_equal(bt_hf_name("encoder.layer.1.output.dense.weight", "RobertaForSequenceClassification", b,
                                   sizeof b), "roberta.encoder.layer.1.output.dense.weight");
    assert_null(bt_hf_name("cls.predictions.bias", "RobertaForSequenceClassification", b, sizeof b));
    assert_null(bt_hf_name("classifier.weight", "RobertaForMaskedLM", b, sizeof b));
    assert_null(bt_hf_name("embeddings.word_embeddings.weight", "BertForMaskedLM", b, 10));
}

/* ---- synthetic checkpoints ---- */

static bt_model_config tiny(int labels)
{
    bt_model_config c = {0};
    c.vocab_size = 10; c.hidden_size = 4; c.num_hidden_layers = 2; c.num_attention_heads = 2;
    c.intermediate_size = 8; c.max_position_embeddings = 6; c.type_vocab_size = 2; c.num_labels = labels;
    return c;
}

/* Deterministic per-(name, element) value, exact in fp16. */
static float value_of(const char *canon, int64_t k)
{
    uint32_t h = 2166136261u;
    for (const char *p = canon; *p; p++) h = (h ^ (uint8_t)*p) * 16777619u;
    return (float)(h % 64) + 0.25f * (float)(k % 16);
}

enum scheme { PLAIN, PREFIXED, LEGACY };

typedef struct {
    const char *drop[4];        /* canonical names to leave out */
    const char *reshape;        /* canonical name written with its first dim + 1 */
    const char *extra[4];       /* raw extra tensor names (F32 [2]) */
    const char *as_int;         /* canonical name written as I32 */
    int tie_embeddings;         /* write word embeddings as cls.predictions.decoder.weight only */
    int decoder_bias_alias;     /* write cls.predictions.bias as decoder.bias (and maybe both) */
    int f16;
} variant;

static int listed(const char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] && !strcmp(list[i], s)) return 1;
    return 0;
}

/* Writes a checkpoint holding params (canonical) under the given scheme. */
static void write_ckpt(const char *path, const bt_param_load *p, size_t n, enum scheme sch, const variant *v)
{
    bt_st_entry *e = calloc(n + 8, sizeof *e);
    void **bufs = calloc(n + 8, sizeof *bufs);
    char **names = calloc(n + 8, sizeof *names);
    size_t ne = 0;
    static float two[2] = {1, 2};
    for (size_t i = 0; i < n; i++) {
        if (listed(v->drop, 4, p[i].name)) continue;
        char nm[300];
        const char *canon = p[i].name;
        int enc = !strncmp(canon, "embeddings.", 11) || !strncmp(canon, "encoder.", 8) || !strncmp(canon, "pooler.", 7);
        snprintf(nm, sizeof nm, "%s%s", sch != PLAIN && enc ? "bert." : "", canon);
        if (sch == LEGACY) {
            size_t l = strlen(nm);
            if (l > 16 && !strcmp(nm + l - 16, "LayerNorm.weight")) strcpy(nm + l - 6, "gamma");
            else if (l > 14 && !strcmp(nm + l - 14, "LayerNorm.bias")) strcpy(nm + l - 4, "beta");
        }
        if (v->tie_embeddings && !strcmp(canon, "embeddings.word_embeddings.weight"))
            strcpy(nm, "cls.predictions.decoder.weight");
        if (v->decoder_bias_alias && !strcmp(canon, "cls.predictions.bias")) strcpy(nm, "cls.predictions.decoder.bias");
        bt_st_entry *t = &e[ne];
        t->ndim = p[i].ndim;
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            t->shape[d] = p[i].shape[d] + (v->reshape && !strcmp(v->reshape, canon) && d == 0);
            numel *= t->shape[d];
        }
        if (v->as_int && !strcmp(v->as_int, canon)) {
            t->dtype = BT_ST_I32;
            bufs[ne] = calloc((size_t)numel + 1, 4);
        } else if (v->f16) {
            t->dtype = BT_ST_F16;
            uint16_t *h = calloc((size_t)numel + 1, 2);
            for (int64_t k = 0; k < numel; k++) { /* value_of is a multiple of 1/4 below 68: exact in half */
                float x = value_of(canon, k);
                int ex;
                float m = frexpf(x, &ex); /* x = m * 2^ex, m in [0.5, 1) */
                h[k] = x == 0 ? 0 : (uint16_t)(((15 + ex - 1) << 10) | (uint16_t)((2 * m - 1) * 1024));
            }
            bufs[ne] = h;
        } else {
            t->dtype = BT_ST_F32;
            float *f = calloc((size_t)numel + 1, 4);
            for (int64_t k = 0; k < numel; k++) f[k] = value_of(canon, k);
            bufs[ne] = f;
        }
        names[ne] = strdup(nm);
        t->name = names[ne];
        t->data = bufs[ne];
        ne++;
    }
    for (int x = 0; x < 4 && v->extra[x]; x++) e[ne++] = (bt_st_entry){v->extra[x], BT_ST_F32, 1, {2}, two};
    const char *meta[] = {"format", "pt", NULL};
    assert_int_equal(bt_st_write_file(path, e, ne, meta), 0);
    for (size_t i = 0; i < n + 8; i++) {
        free(bufs[i]);
        free(names[i]);
    }
    free(bufs);
    free(names);
    free(e);
}

static char tmpdir[64];

static int setup(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/baton-wt-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char p[128];
    snprintf(p, sizeof p, "%s/model.safetensors", tmpdir);
    unlink(p);
    return rmdir(tmpdir);
}

/* Allocates dst for each param, loads, checks values. Returns the rc. */
static int load_and_check(const char *path, bt_param_load *p, size_t n, int expect_values)
{
    for (size_t i = 0; i < n; i++) {
        int64_t numel = 1;
        for (int d = 0; d < p[i].ndim; d++) numel *= p[i].shape[d];
        p[i].dst = malloc((size_t)numel * sizeof(float));
        for (int64_t k = 0; k < numel; k++) p[i].dst[k] = -12345.0f;
    }
    bt_err_clear();
    int rc = bt_load_hf_weights(path, p, n);
    for (size_t i = 0; i < n; i++) {
        int64_t numel = 1;
        for (int d = 0; d < p[i].ndim; d++) numel *= p[i].shape[d];
        if (!rc && expect_values && p[i].found)
            for (int64_t k = 0; k < numel; k++)
                if (p[i].dst[k] != value_of(p[i].name, k)) {
                    fprintf(stderr, "%s[%lld] = %g, want %g\n", p[i].name, (long long)k, p[i].dst[k],
                            value_of(p[i].name, k));
                    fail();
                }
        if (!p[i].found)
            for (int64_t k = 0; k < numel; k++) assert_true(p[i].dst[k] == -12345.0f); /* untouched */
        free(p[i].dst);
        p[i].dst = NULL;
    }
    return rc;
}

static void path_of(char *buf, size_t n) { snprintf(buf, n, "%s/model.safetensors", tmpdir); }

static size_t count_found(const bt_param_load *p, size_t n, const char *prefix)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += p[i].found && !strncmp(p[i].name, prefix, strlen(prefix));
    return k;
}

static void test_schemes(void **state)
{
    (void)state;
    char path[128];
    path_of(path, sizeof path);
    bt_model_config c = tiny(3);
    size_t n;
    bt_param_load *all = bt_bert_param_list(&c, BT_HEAD_POOLER | BT_HEAD_CLASSIFIER | BT_HEAD_MLM, &n);
    assert_int_equal(n, 5 + 16 * 2 + 2 + 2 + 5);
    assert_int_equal(all[0].optional, 0);
    assert_int_equal(all[n - 1].optional, 1);
    size_t ne;
    bt_param_load *enc = bt_bert_param_list(&c, 0, &ne);
    assert_int_equal(ne, 5 + 16 * 2);

    /* BertModel / sentence-transformers: unprefixed, position_ids, pooler. */
    variant v = {.drop = {"classifier.weight", "classifier.bias", "cls.predictions.transform.dense.weight"},
                 .extra = {"embeddings.position_ids"}};
    bt_param_load *base = bt_bert_param_list(&c, BT_HEAD_POOLER, &ne);
    write_ckpt(path, base, ne, PLAIN, &v);
    bt_param_list_free(base, ne);
    assert_int_equal(load_and_check(path, all, n, 1), 0);
    assert_int_equal(count_found(all, n, "encoder."), 32);
    assert_int_equal(count_found(all, n, "pooler."), 2);
    assert_int_equal(count_found(all, n, "classifier."), 0);
    assert_int_equal(count_found(all, n, "cls."), 0);

    /* BertForSequenceClassification: bert. prefix + classifier. */
    variant v2 = {.extra = {"bert.embeddings.position_ids"}};
    bt_param_load *seq = bt_bert_param_list(&c, BT_HEAD_POOLER | BT_HEAD_CLASSIFIER, &ne);
    write_ckpt(path, seq, ne, PREFIXED, &v2);
    assert_int_equal(load_and_check(path, all, n, 1), 0);
    assert_int_equal(count_found(all, n, "classifier."), 2);
    assert_int_equal(count_found(all, n, ""), ne);
    /* fp16 copy of the same */
    variant v2h = {.f16 = 1};
    write_ckpt(path, seq, ne, PREFIXED, &v2h);
    assert_int_equal(load_and_check(path, all, n, 1), 0);
    assert_int_equal(count_found(all, n, ""), ne);
    bt_param_list_free(seq, ne);

    /* BertForMaskedLM, legacy gamma/beta, tied decoder weight only, decoder.bias alias. */
    variant v3 = {.tie_embeddings = 1, .decoder_bias_alias = 1};
    bt_param_load *mlm = bt_bert_param_list(&c, BT_HEAD_MLM, &ne);
    write_ckpt(path, mlm, ne, LEGACY, &v3);
    assert_int_equal(load_and_check(path, all, n, 1), 0);
    assert_int_equal(count_found(all, n, "cls.predictions."), 5);
    assert_int_equal(count_found(all, n, "embeddings.word_embeddings."), 1);
    assert_int_equal(count_found(all, n, "pooler."), 0);

    /* BertForPreTraining: seq_relationship ignored, both decoder.bias and bias present. */
    variant v4 = {.extra = {"cls.seq_relationship.weight", "cls.seq_relationship.bias",
                            "cls.predictions.decoder.bias", "unexpected.tensor"}};
    bt_param_load *pre = bt_bert_param_list(&c, BT_HEAD_MLM | BT_HEAD_POOLER, &ne);
    /* the extra decoder.bias is F32 [2], cls.predictions.bias is [10]: the primary name wins */
    write_ckpt(path, pre, ne, PREFIXED, &v4);
    assert_int_equal(load_and_check(path, all, n, 1), 0);
    assert_int_equal(count_found(all, n, ""), ne);

    /* Check-only (dst NULL). */
    assert_int_equal(bt_load_hf_weights(path, enc, 37), 0);
    assert_int_equal(count_found(enc, 37, ""), 37);
    /* From a buffer (an archive member): errors name its label. */
    {
        char *buf;
        size_t len;
        assert_int_equal(bt_read_file(path, 1 << 20, &buf, &len), 0);
        bt_st_file *f;
        assert_int_equal(bt_st_open_buffer(buf, len, "ckpt-000000100.tar:model.safetensors", &f), 0);
        assert_int_equal(bt_load_hf_weights_st(f, all, n), 0);
        assert_int_equal(count_found(all, n, ""), ne);
        bt_model_config c4 = tiny(4);
        size_t n4;
        bt_param_load *q = bt_bert_param_list(&c4, BT_HEAD_CLASSIFIER, &n4);
        q[n4 - 1].optional = 0;
        assert_int_equal(bt_load_hf_weights_st(f, q, n4), BT_EDATA);
        assert_non_null(strstr(bt_errmsg(), "ckpt-000000100.tar:model.safetensors: 1 of 39"));
        assert_non_null(strstr(bt_errmsg(), "missing     classifier.bias [4]"));
        bt_param_list_free(q, n4);
        bt_st_close(f);
        free(buf);
    }
    bt_param_list_free(pre, ne);
    bt_param_list_free(mlm, ne);
    bt_param_list_free(enc, 37);
    bt_param_list_free(all, n);
}

/* A checkpoint fine-tuned for 3 labels, asked for 5: the error says it is the
 * head and what to do; with reinit_mismatched the head is left to initialise
 * (found 0, mismatched 1, untouched) and the rest loads; an encoder tensor of
 * another shape is refused all the same. */
static void test_mismatched_head(void **state)
{
    (void)state;
    char path[128];
    path_of(path, sizeof path);
    bt_model_config c = tiny(3), c5 = tiny(5);
    size_t n, n5;
    bt_param_load *p = bt_bert_param_list(&c, BT_HEAD_POOLER | BT_HEAD_CLASSIFIER, &n);
    variant none = {0};
    write_ckpt(path, p, n, PREFIXED, &none);
    bt_param_load *q = bt_bert_param_list(&c5, BT_HEAD_POOLER | BT_HEAD_CLASSIFIER, &n5);
    assert_int_equal(load_and_check(path, q, n5, 0), BT_EDATA);
    assert_non_null(strstr(bt_errmsg(), "its task head has another shape than this task's"));
    assert_non_null(strstr(bt_errmsg(), "mis-shaped  classifier.weight: expected [5,4], checkpoint has [3,4]"));
    assert_non_null(strstr(bt_errmsg(), "set ignore_mismatched_sizes = true in the job's [model] section"));
    for (size_t i = 0; i < n5; i++) q[i].reinit_mismatched = 1;
    assert_int_equal(load_and_check(path, q, n5, 1), 0);
    int mism = 0;
    for (size_t i = 0; i < n5; i++) {
        int head = !strncmp(q[i].name, "classifier.", 11);
        assert_int_equal(q[i].mismatched, head);
        assert_int_equal(q[i].found, !head);
        mism += q[i].mismatched;
    }
    assert_int_equal(mism, 2);
    /* an encoder tensor of another shape: refused, reinit_mismatched or not */
    variant v = {.reshape = "encoder.layer.0.attention.self.key.weight"};
    write_ckpt(path, p, n, PREFIXED, &v);
    assert_int_equal(load_and_check(path, q, n5, 0), BT_EDATA);
    assert_non_null(strstr(bt_errmsg(), "1 of 41 expected tensors are missing or mis-shaped"));
    assert_non_null(strstr(bt_errmsg(), "mis-shaped  encoder.layer.0.attention.self.key.weight"));
    assert_null(strstr(bt_errmsg(), "classifier.weight"));
    bt_param_list_free(q, n5);
    bt_param_list_free(p, n);
}

static void test_missing_and_misshaped(void **state)
{
    (void)state;
    char path[128];
    path_of(path, sizeof path);
    bt_model_config c = tiny(3);
    size_t n;
    bt_param_load *p = bt_bert_param_list(&c, BT_HEAD_POOLER | BT_HEAD_CLASSIFIER, &n);
    variant v = {.drop = {"encoder.layer.1.output.dense.weight", "embeddings.LayerNorm.bias", "pooler.dense.bias"},
                 .reshape = "encoder.layer.0.attention.self.key.weight", .as_int = "embeddings.token_type_embeddings.weight"};
    write_ckpt(path, p, n, PREFIXED, &v);
    /* The checkpoint has 3 labels; ask for 5 to get a mis-shaped head too. */
    bt_model_config c5 = tiny(5);
    size_t n5;
    bt_param_load *q = bt_bert_param_list(&c5, BT_HEAD_POOLER | BT_HEAD_CLASSIFIER, &n5);
    int rc = load_and_check(path, q, n5, 0);
    assert_int_equal(rc, BT_EDATA);
    const char *m = bt_errmsg();
    assert_non_null(strstr(m, path));
    assert_non_null(strstr(m, "missing     encoder.layer.1.output.dense.weight [4,8]"));
    assert_non_null(strstr(m, "missing     embeddings.LayerNorm.bias [4]"));
    assert_null(strstr(m, "pooler.dense.bias")); /* optional: absent is fine */
    assert_non_null(strstr(m, "mis-shaped  encoder.layer.0.attention.self.key.weight: expected [4,4], checkpoint has [5,4] "
                              "(as 'bert.encoder.layer.0.attention.self.key.weight')"));
    assert_non_null(strstr(m, "mis-shaped  classifier.weight: expected [5,4], checkpoint has [3,4]"));
    assert_non_null(strstr(m, "mis-shaped  classifier.bias: expected [5], checkpoint has [3]"));
    assert_non_null(strstr(m, "bad dtype   embeddings.token_type_embeddings.weight: I32"));
    assert_non_null(strstr(m, "6 of 41 expected tensors"));
    for (size_t i = 0; i < n5; i++) assert_int_equal(q[i].found, 0); /* nothing loaded on error */
    bt_param_list_free(q, n5);

    /* A wrong model entirely: a long list is cut, the message stays readable. */
    bt_model_config big = tiny(3);
    big.num_hidden_layers = 12;
    q = bt_bert_param_list(&big, 0, &n5);
    variant none = {0};
    write_ckpt(path, p, n, PREFIXED, &none);
    assert_int_equal(load_and_check(path, q, n5, 0), BT_EDATA);
    assert_non_null(strstr(bt_errmsg(), "... and "));
    assert_non_null(strstr(bt_errmsg(), "named like 'bert.embeddings.word_embeddings.weight'"));
    bt_param_list_free(q, n5);

    /* Duplicate spellings of one parameter. */
    variant dup = {.extra = {"encoder.layer.0.output.dense.bias"}};
    write_ckpt(path, p, n, PREFIXED, &dup);
    assert_int_equal(bt_load_hf_weights(path, p, n), BT_EDATA);
    assert_non_null(strstr(bt_errmsg(), "'bert.encoder.layer.0.output.dense.bias' and 'encoder.layer.0.output.dense.bias'"));

    /* Requests with duplicate names are a caller bug; a missing file is missing input. */
    bt_param_load twice[2] = {{.name = "pooler.dense.bias", .ndim = 1, .shape = {4}},
                              {.name = "pooler.dense.bias", .ndim = 1, .shape = {4}}};
    assert_int_equal(bt_load_hf_weights(path, twice, 2), BT_EINTERNAL);
    assert_int_equal(bt_load_hf_weights("/nonexistent/model.safetensors", p, n), BT_ENOINPUT);
    /* A damaged file: the safetensors error comes through. */
    assert_int_equal(truncate(path, 100), 0);
    assert_int_equal(bt_load_hf_weights(path, p, n), BT_EDATA);
    assert_non_null(strstr(bt_errmsg(), "truncated"));
    bt_param_list_free(p, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_names),
        cmocka_unit_test(test_hf_names),
        cmocka_unit_test(test_roberta_names),
        cmocka_unit_test(test_distilbert_names),
        cmocka_unit_test(test_deberta_names),
        cmocka_unit_test(test_electra_names),
        cmocka_unit_test_setup_teardown(test_schemes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_and_misshaped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mismatched_head, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
