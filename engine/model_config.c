/* engine/model_config.c — config.json -> bt_model_config, and back
 * (see model_config.h).
 *
 * Owns: HF BertConfig defaults, per-key type and range checks, the label map.
 * Must not: print (warnings go through util/log), read anything but the one
 * JSON file, or drop keys it does not understand when writing back.
 *
 * Absent keys take HF BertConfig's defaults (HF writes every BertConfig key,
 * but leaves out PretrainedConfig keys equal to their defaults: id2label for
 * two labels, problem_type null, ...). Sanity limits on sizes keep a damaged
 * file from asking for absurd allocations; they are far above any BERT.
 */
#include "engine/model_config.h"
#include "engine/init.h"
#include "util/err.h"
#include "util/file.h"
#include "util/log.h"
#include "util/json.h"
#include "util/mem.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_MAX_BYTES (16u << 20)
#define MAX_LABELS 100000

static const struct {
    const char *name;
    bt_activation act;
} act_names[] = {
    {"gelu", BT_HIDDEN_ACT_GELU},           {"gelu_python", BT_HIDDEN_ACT_GELU},
    {"gelu_new", BT_HIDDEN_ACT_GELU_TANH},  {"gelu_pytorch_tanh", BT_HIDDEN_ACT_GELU_TANH},
    {"gelu_fast", BT_HIDDEN_ACT_GELU_TANH}, {"relu", BT_HIDDEN_ACT_RELU},
    {"silu", BT_HIDDEN_ACT_SILU},           {"swish", BT_HIDDEN_ACT_SILU},
};

const char *bt_activation_name(bt_activation a)
{
    switch (a) {
    case BT_HIDDEN_ACT_GELU: return "gelu";
    case BT_HIDDEN_ACT_GELU_TANH: return "gelu_new";
    case BT_HIDDEN_ACT_RELU: return "relu";
    case BT_HIDDEN_ACT_SILU: return "silu";
    }
    return "?";
}

int bt_model_family(const char *model_type)
{
    if (!model_type || !strcmp(model_type, "bert")) return BT_FAMILY_BERT;
    if (!strcmp(model_type, "roberta") || !strcmp(model_type, "xlm-roberta")) return BT_FAMILY_ROBERTA;
    if (!strcmp(model_type, "distilbert")) return BT_FAMILY_DISTILBERT;
    if (!strcmp(model_type, "deberta-v2")) return BT_FAMILY_DEBERTA;
    if (!strcmp(model_type, "electra")) return BT_FAMILY_ELECTRA;
    return -1;
}

const char *bt_model_type_arch(const char *model_type, const char *head, char *buf, size_t cap)
{
    const char *prefix = !model_type || !strcmp(model_type, "bert") ? "Bert"
                         : !strcmp(model_type, "roberta")           ? "Roberta"
                         : !strcmp(model_type, "xlm-roberta")       ? "XLMRoberta"
                         : !strcmp(model_type, "distilbert")        ? "DistilBert"
                         : !strcmp(model_type, "electra")           ? "Electra"
                         : !strcmp(model_type, "deberta-v2")        ? "DebertaV2"
                                                                    : NULL;
    if (!prefix || !head) return NULL;
    int n = snprintf(buf, cap, "%sFor%s", prefix, head);
    return n < 0 || (size_t)n >= cap ? NULL : buf;
}

static const char *problem_names[] = {
    [BT_PROBLEM_NONE] = NULL,
    [BT_PROBLEM_SINGLE_LABEL] = "single_label_classification",
    [BT_PROBLEM_MULTI_LABEL] = "multi_label_classification",
    [BT_PROBLEM_REGRESSION] = "regression",
};

const char *bt_problem_type_name(bt_problem_type p)
{
    return (unsigned)p < sizeof problem_names / sizeof *problem_names ? problem_names[p] : NULL;
}

/* ---- typed getters: absent (or JSON null where allowed) -> default ---- */

static int get_int(const json_t *root, const char *label, const char *key, int def, long long lo,
                   long long hi, int *out)
{
    const json_t *v = json_object_get(root, key);
    if (!v) {
        *out = def;
        return BT_OK;
    }
    long long x;
    int clamped;
    if (bt_json_as_int64(v, &x, &clamped))
        return bt_fail(BT_ECONFIG, "%s: key \"%s\" must be an integer; fix config.json", label, key);
    if (clamped)
        return bt_fail(BT_ECONFIG, "%s: key \"%s\" is %g, outside [%lld, %lld]; fix config.json", label, key,
                       json_real_value(v), lo, hi);
    if (x < lo || x > hi)
        return bt_fail(BT_ECONFIG, "%s: key \"%s\" is %lld, outside [%lld, %lld]; fix config.json",
                       label, key, (long long)x, lo, hi);
    *out = (int)x;
    return BT_OK;
}

/* lo_open: 1 means the value must be > lo; 0 means >= lo. */
static int get_float(const json_t *root, const char *label, const char *key, double def, double lo,
                     int lo_open, double hi, float *out)
{
    const json_t *v = json_object_get(root, key);
    if (!v) {
        *out = (float)def;
        return BT_OK;
    }
    if (!json_is_number(v))
        return bt_fail(BT_ECONFIG, "%s: key \"%s\" must be a number; fix config.json", label, key);
    double x = json_number_value(v);
    if (!isfinite(x) || (lo_open ? x <= lo : x < lo) || x > hi)
        return bt_fail(BT_ECONFIG, "%s: key \"%s\" is %g, outside %s%g, %g]; fix config.json", label,
                       key, x, lo_open ? "(" : "[", lo, hi);
    *out = (float)x;
    return BT_OK;
}

static int get_string(const json_t *root, const char *label, const char *key, const char **out)
{
    const json_t *v = json_object_get(root, key);
    *out = NULL;
    if (!v || json_is_null(v)) return BT_OK;
    if (!json_is_string(v))
        return bt_fail(BT_ECONFIG, "%s: key \"%s\" must be a string; fix config.json", label, key);
    *out = json_string_value(v);
    return BT_OK;
}

/* "12" -> 12; only plain decimal digits, no sign, no leading zeros. */
static int parse_label_id(const char *s, long *out)
{
    if (!s[0] || (s[0] == '0' && s[1]) || strlen(s) > 9) return 0;
    long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return 0;
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return 1;
}

static void free_labels(bt_model_config *c)
{
    if (c->labels)
        for (int i = 0; i < c->num_labels; i++) free(c->labels[i]);
    free(c->labels);
    c->labels = NULL;
}

static void default_labels(bt_model_config *c, int n)
{
    free_labels(c);
    c->num_labels = n;
    c->labels = bt_xcalloc((size_t)n, sizeof *c->labels);
    for (int i = 0; i < n; i++) c->labels[i] = bt_xasprintf("LABEL_%d", i);
}

static int parse_labels(bt_model_config *c, const json_t *root, const char *label)
{
    const json_t *id2label = json_object_get(root, "id2label");
    int num_labels_key = 0;
    int rc = get_int(root, label, "num_labels", 0, 1, MAX_LABELS, &num_labels_key);
    if (rc) return rc;
    if (!id2label || json_is_null(id2label)) {
        default_labels(c, num_labels_key ? num_labels_key : 2);
        c->has_labels = 0;
        return BT_OK;
    }
    if (!json_is_object(id2label))
        return bt_fail(BT_ECONFIG, "%s: key \"id2label\" must be an object {\"0\": \"label\", ...}; fix "
                       "config.json", label);
    size_t n = json_object_size(id2label);
    if (n < 1 || n > MAX_LABELS)
        return bt_fail(BT_ECONFIG, "%s: key \"id2label\" has %zu entries, expected 1..%d", label, n,
                       MAX_LABELS);
    c->num_labels = (int)n;
    c->labels = bt_xcalloc(n, sizeof *c->labels);
    c->has_labels = 1;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)id2label, k, v) {
        long id;
        if (!parse_label_id(k, &id))
            return bt_fail(BT_ECONFIG, "%s: id2label key \"%s\" is not a label id (a decimal integer "
                           "string such as \"0\"); fix config.json", label, k);
        if (id >= (long)n)
            return bt_fail(BT_ECONFIG, "%s: id2label key \"%s\" is out of range: %zu labels need ids "
                           "0..%zu without gaps; fix config.json", label, k, n, n - 1);
        if (!json_is_string(v) || !json_string_value(v)[0])
            return bt_fail(BT_ECONFIG, "%s: id2label[\"%s\"] must be a non-empty string; fix config.json",
                           label, k);
        if (c->labels[id])
            return bt_fail(BT_ECONFIG, "%s: id2label id %s appears twice", label, k);
        c->labels[id] = bt_xstrdup(json_string_value(v));
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (!strcmp(c->labels[i], c->labels[j]))
                return bt_fail(BT_ECONFIG, "%s: id2label gives the label \"%s\" to ids %zu and %zu; labels "
                               "must be distinct", label, c->labels[i], j, i);
    if (num_labels_key && num_labels_key != (int)n)
        bt_warn("%s: num_labels is %d but id2label has %zu entries; using id2label", label,
                num_labels_key, n);
    const json_t *label2id = json_object_get(root, "label2id");
    if (label2id && json_is_object(label2id)) {
        int consistent = json_object_size(label2id) == n;
        for (size_t i = 0; i < n && consistent; i++) {
            const json_t *id = json_object_get(label2id, c->labels[i]);
            consistent = id && json_is_integer(id) && json_integer_value(id) == (json_int_t)i;
        }
        if (!consistent)
            bt_warn("%s: label2id does not match id2label; using id2label (label2id is rewritten on "
                    "export)", label);
    } else if (label2id && !json_is_null(label2id)) {
        return bt_fail(BT_ECONFIG, "%s: key \"label2id\" must be an object; fix config.json", label);
    }
    return BT_OK;
}

/* pad_token_id: null (-1: none) or a vocabulary id; absent: 0. */
static int parse_pad(const json_t *root, const char *label, bt_model_config *c)
{
    const json_t *pad = json_object_get(root, "pad_token_id");
    if (pad && json_is_null(pad)) {
        c->pad_token_id = -1;
        return BT_OK;
    }
    return get_int(root, label, "pad_token_id", 0, 0, c->vocab_size - 1, &c->pad_token_id);
}

/* The classifier's dropout under key: absent or null: the hidden dropout. */
static int parse_cls_dropout(const json_t *root, const char *label, const char *key, bt_model_config *c)
{
    const json_t *cd = json_object_get(root, key);
    if (!cd || json_is_null(cd)) {
        c->classifier_dropout = c->hidden_dropout_prob;
        return BT_OK;
    }
    return get_float(root, label, key, 0, 0, 0, 0.99, &c->classifier_dropout);
}

static int parse_act(const json_t *root, const char *label, const char *key, bt_activation *out)
{
    const char *s;
    int rc = get_string(root, label, key, &s);
    if (rc) return rc;
    if (!s) {
        *out = BT_HIDDEN_ACT_GELU;
        return BT_OK;
    }
    size_t i;
    for (i = 0; i < sizeof act_names / sizeof *act_names; i++)
        if (!strcmp(s, act_names[i].name)) break;
    if (i == sizeof act_names / sizeof *act_names)
        return bt_fail(BT_ECONFIG, "%s: %s \"%s\" is not supported (supported: gelu, gelu_python, gelu_new, "
                       "gelu_pytorch_tanh, gelu_fast, relu, silu, swish)", label, key, s);
    *out = act_names[i].act;
    return BT_OK;
}

/* BertConfig / RobertaConfig keys (HF BertConfig's defaults). */
static int parse_bert_sizes(bt_model_config *c, json_t *root, const char *label)
{
    int rc;
    const char *s;
    if ((rc = get_string(root, label, "position_embedding_type", &s))) return rc;
    if (s && strcmp(s, "absolute"))
        return bt_fail(BT_ECONFIG, "%s: position_embedding_type \"%s\" is not supported (only "
                       "\"absolute\")", label, s);
    if (json_is_true(json_object_get(root, "is_decoder")) ||
        json_is_true(json_object_get(root, "add_cross_attention")))
        return bt_fail(BT_ECONFIG, "%s: is_decoder/add_cross_attention is set; baton fine-tunes encoders "
                       "only", label);

    if ((rc = get_int(root, label, "vocab_size", 30522, 1, 50000000, &c->vocab_size)) ||
        (rc = get_int(root, label, "hidden_size", 768, 1, 65536, &c->hidden_size)) ||
        (rc = get_int(root, label, "num_hidden_layers", 12, 1, 1024, &c->num_hidden_layers)) ||
        (rc = get_int(root, label, "num_attention_heads", 12, 1, 65536, &c->num_attention_heads)) ||
        (rc = get_int(root, label, "intermediate_size", 3072, 1, 1 << 20, &c->intermediate_size)) ||
        (rc = get_int(root, label, "max_position_embeddings", 512, 1, 1 << 20,
                      &c->max_position_embeddings)) ||
        (rc = get_int(root, label, "type_vocab_size", 2, 1, 1 << 16, &c->type_vocab_size)))
        return rc;
    if (c->hidden_size % c->num_attention_heads)
        return bt_fail(BT_ECONFIG, "%s: hidden_size %d is not a multiple of num_attention_heads %d; fix "
                       "config.json", label, c->hidden_size, c->num_attention_heads);

    if ((rc = parse_act(root, label, "hidden_act", &c->hidden_act))) return rc;
    if ((rc = get_float(root, label, "hidden_dropout_prob", 0.1, 0, 0, 0.99, &c->hidden_dropout_prob)) ||
        (rc = get_float(root, label, "attention_probs_dropout_prob", 0.1, 0, 0, 0.99,
                        &c->attention_probs_dropout_prob)) ||
        (rc = get_float(root, label, "layer_norm_eps", 1e-12, 0, 1, 1.0, &c->layer_norm_eps)) ||
        (rc = get_float(root, label, "initializer_range", 0.02, 0, 1, 10.0, &c->initializer_range)))
        return rc;
    if ((rc = parse_cls_dropout(root, label, "classifier_dropout", c))) return rc;

    return parse_pad(root, label, c);
}

/* DistilBertConfig keys (its defaults) in the same fields: dim, n_layers,
 * n_heads, hidden_dim, activation, dropout, attention_dropout,
 * seq_classif_dropout; LayerNorm eps is 1e-12 and there are no token types
 * (type_vocab_size 1: the engine keeps no table). Sinusoidal positions are refused. */
static int parse_distil_sizes(bt_model_config *c, json_t *root, const char *label)
{
    int rc;
    if (json_is_true(json_object_get(root, "sinusoidal_pos_embds")))
        return bt_fail(BT_ECONFIG, "%s: sinusoidal_pos_embds is true: baton reads DistilBERT with learned "
                       "position embeddings only (sinusoidal_pos_embds false, as distilbert-base-*)", label);
    if ((rc = get_int(root, label, "vocab_size", 30522, 1, 50000000, &c->vocab_size)) ||
        (rc = get_int(root, label, "dim", 768, 1, 65536, &c->hidden_size)) ||
        (rc = get_int(root, label, "n_layers", 6, 1, 1024, &c->num_hidden_layers)) ||
        (rc = get_int(root, label, "n_heads", 12, 1, 65536, &c->num_attention_heads)) ||
        (rc = get_int(root, label, "hidden_dim", 3072, 1, 1 << 20, &c->intermediate_size)) ||
        (rc = get_int(root, label, "max_position_embeddings", 512, 1, 1 << 20, &c->max_position_embeddings)))
        return rc;
    if (c->hidden_size % c->num_attention_heads)
        return bt_fail(BT_ECONFIG, "%s: dim %d is not a multiple of n_heads %d; fix config.json", label,
                       c->hidden_size, c->num_attention_heads);
    c->type_vocab_size = 1;
    c->layer_norm_eps = 1e-12f;
    if ((rc = parse_act(root, label, "activation", &c->hidden_act))) return rc;
    if ((rc = get_float(root, label, "dropout", 0.1, 0, 0, 0.99, &c->hidden_dropout_prob)) ||
        (rc = get_float(root, label, "attention_dropout", 0.1, 0, 0, 0.99, &c->attention_probs_dropout_prob)) ||
        (rc = get_float(root, label, "seq_classif_dropout", 0.2, 0, 0, 0.99, &c->classifier_dropout)) ||
        (rc = get_float(root, label, "initializer_range", 0.02, 0, 1, 10.0, &c->initializer_range)))
        return rc;
    return parse_pad(root, label, c);
}

/* pos_att_type: a list of strings, or one string "p2c|c2p" (DebertaV2Config
 * splits it on '|'); only "c2p" and "p2c" are read. */
static int parse_pos_att(bt_model_config *c, const json_t *root, const char *label)
{
    const json_t *v = json_object_get(root, "pos_att_type");
    char buf[128];
    const char *items[8];
    size_t n = 0;
    if (!v || json_is_null(v)) return BT_OK;
    if (json_is_string(v)) {
        snprintf(buf, sizeof buf, "%s", json_string_value(v));
        for (char *save = NULL, *t = strtok_r(buf, "|", &save); t && n < 8; t = strtok_r(NULL, "|", &save))
            items[n++] = t;
    } else if (json_is_array(v) && json_array_size(v) <= 8) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (!json_is_string(json_array_get(v, i)))
                return bt_fail(BT_ECONFIG, "%s: pos_att_type must hold strings (\"c2p\", \"p2c\"); fix config.json",
                               label);
            items[n++] = json_string_value(json_array_get(v, i));
        }
    } else {
        return bt_fail(BT_ECONFIG, "%s: pos_att_type must be a list of \"c2p\"/\"p2c\" or a string like "
                       "\"p2c|c2p\"; fix config.json", label);
    }
    for (size_t i = 0; i < n; i++) {
        const char *t = items[i];
        while (*t == ' ') t++;
        if (!strncmp(t, "c2p", 3) && !t[3 + strspn(t + 3, " ")]) c->rel_c2p = 1;
        else if (!strncmp(t, "p2c", 3) && !t[3 + strspn(t + 3, " ")]) c->rel_p2c = 1;
        else
            return bt_fail(BT_ECONFIG, "%s: pos_att_type \"%s\" is not supported: baton reads \"c2p\" and \"p2c\" "
                           "(as deberta-v3-*: \"p2c|c2p\")", label, t);
    }
    return BT_OK;
}

/* Keys of DebertaV2Config that select variants baton does not implement. */
static int refuse_deberta_variants(const json_t *root, const char *label, const bt_model_config *c)
{
    const char *s;
    int k = 0, rc;
    if (!json_is_true(json_object_get(root, "relative_attention")))
        return bt_fail(BT_ECONFIG, "%s: relative_attention is not true: baton reads DeBERTa-v2/v3 with "
                       "relative attention only (as every released deberta-v2/v3 checkpoint)", label);
    if (!json_is_true(json_object_get(root, "share_att_key")))
        return bt_fail(BT_ECONFIG, "%s: share_att_key is not true: baton reads DeBERTa-v2/v3 whose relative "
                       "embeddings share the query/key projections (as deberta-v3-*); separate pos_key_proj / "
                       "pos_query_proj are not supported", label);
    if ((rc = get_int(root, label, "conv_kernel_size", 0, 0, 1 << 16, &k))) return rc;
    if (k > 0)
        return bt_fail(BT_ECONFIG, "%s: conv_kernel_size %d: the convolution layer of deberta-v2-xlarge/xxlarge "
                       "is not supported (deberta-v3-* have none)", label, k);
    if ((rc = get_int(root, label, "embedding_size", c->hidden_size, 1, 65536, &k))) return rc;
    if (k != c->hidden_size)
        return bt_fail(BT_ECONFIG, "%s: embedding_size %d differs from hidden_size %d (embed_proj): not "
                       "supported", label, k, c->hidden_size);
    if ((rc = get_int(root, label, "attention_head_size", c->hidden_size / c->num_attention_heads, 1, 65536, &k)))
        return rc;
    if (k != c->hidden_size / c->num_attention_heads)
        return bt_fail(BT_ECONFIG, "%s: attention_head_size %d is not hidden_size / num_attention_heads: not "
                       "supported", label, k);
    if ((rc = get_string(root, label, "norm_rel_ebd", &s))) return rc;
    if (s && strcmp(s, "layer_norm") && strcmp(s, "none"))
        return bt_fail(BT_ECONFIG, "%s: norm_rel_ebd \"%s\" is not supported (\"layer_norm\" or \"none\")",
                       label, s);
    return BT_OK;
}

/* DebertaV2Config keys (its defaults: type_vocab_size 0, layer_norm_eps 1e-7,
 * position_biased_input true, pooler_hidden_act gelu, cls_dropout = hidden
 * dropout). */
static int parse_deberta_sizes(bt_model_config *c, json_t *root, const char *label)
{
    int rc;
    const char *s;
    if ((rc = get_int(root, label, "vocab_size", 128100, 1, 50000000, &c->vocab_size)) ||
        (rc = get_int(root, label, "hidden_size", 1536, 1, 65536, &c->hidden_size)) ||
        (rc = get_int(root, label, "num_hidden_layers", 24, 1, 1024, &c->num_hidden_layers)) ||
        (rc = get_int(root, label, "num_attention_heads", 24, 1, 65536, &c->num_attention_heads)) ||
        (rc = get_int(root, label, "intermediate_size", 6144, 1, 1 << 20, &c->intermediate_size)) ||
        (rc = get_int(root, label, "max_position_embeddings", 512, 1, 1 << 20, &c->max_position_embeddings)) ||
        (rc = get_int(root, label, "type_vocab_size", 0, 0, 1 << 16, &c->type_vocab_size)))
        return rc;
    if (c->hidden_size % c->num_attention_heads)
        return bt_fail(BT_ECONFIG, "%s: hidden_size %d is not a multiple of num_attention_heads %d; fix "
                       "config.json", label, c->hidden_size, c->num_attention_heads);
    if ((rc = refuse_deberta_variants(root, label, c)) || (rc = parse_pos_att(c, root, label))) return rc;
    const json_t *pbi = json_object_get(root, "position_biased_input");
    c->position_biased_input = !pbi || json_is_true(pbi);
    if ((rc = get_int(root, label, "max_relative_positions", -1, -1, 1 << 20, &c->rel_max_positions)) ||
        (rc = get_int(root, label, "position_buckets", -1, -1, 1 << 20, &c->rel_buckets)))
        return rc;
    if (c->rel_max_positions < 1) c->rel_max_positions = c->max_position_embeddings;
    if (c->rel_buckets == 0) c->rel_buckets = -1;
    c->rel_span = c->rel_buckets > 0 ? c->rel_buckets : c->rel_max_positions;
    if (c->rel_buckets > 0 && (c->rel_buckets < 4 || c->rel_max_positions <= c->rel_buckets / 2 + 1))
        return bt_fail(BT_ECONFIG, "%s: position_buckets %d needs max_relative_positions (%d) above "
                       "position_buckets / 2 + 1 and at least 4 buckets; fix config.json", label, c->rel_buckets,
                       c->rel_max_positions);
    if ((rc = get_string(root, label, "norm_rel_ebd", &s))) return rc;
    c->rel_norm = s && !strcmp(s, "layer_norm");
    if ((rc = parse_act(root, label, "hidden_act", &c->hidden_act)) ||
        (rc = parse_act(root, label, "pooler_hidden_act", &c->pooler_act)))
        return rc;
    if ((rc = get_float(root, label, "hidden_dropout_prob", 0.1, 0, 0, 0.99, &c->hidden_dropout_prob)) ||
        (rc = get_float(root, label, "attention_probs_dropout_prob", 0.1, 0, 0, 0.99,
                        &c->attention_probs_dropout_prob)) ||
        (rc = get_float(root, label, "pooler_dropout", 0, 0, 0, 0.99, &c->pooler_dropout)) ||
        (rc = get_float(root, label, "layer_norm_eps", 1e-7, 0, 1, 1.0, &c->layer_norm_eps)) ||
        (rc = get_float(root, label, "initializer_range", 0.02, 0, 1, 10.0, &c->initializer_range)))
        return rc;
    if ((rc = parse_cls_dropout(root, label, "cls_dropout", c))) return rc;
    return parse_pad(root, label, c);
}

static int parse_root(bt_model_config *c, json_t *root, const char *label)
{
    int rc;
    const char *s;
    if ((rc = get_string(root, label, "model_type", &s))) return rc;
    if (s && bt_model_family(s) < 0)
        return bt_fail(BT_ECONFIG, "%s: model_type \"%s\" is not supported; baton reads model_type %s "
                       "(e.g. bert-base-uncased, all-MiniLM-L6-v2, roberta-base, xlm-roberta-base, distilbert-base-uncased, "
                       "microsoft/deberta-v3-base, google/electra-base-discriminator); others are not read yet "
                       "(docs/model-directories.md)", label, s,
                       BT_SUPPORTED_MODEL_TYPES);
    c->model_type = bt_xstrdup(s ? s : "bert");
    int fam = bt_model_family(c->model_type);
    c->position_biased_input = 1;
    rc = fam == BT_FAMILY_DISTILBERT ? parse_distil_sizes(c, root, label)
         : fam == BT_FAMILY_DEBERTA  ? parse_deberta_sizes(c, root, label)
                                     : parse_bert_sizes(c, root, label);
    if (rc) return rc;
    c->embedding_size = c->hidden_size;
    /* ElectraConfig: the embedding tables are embedding_size wide (its default 128) */
    if (fam == BT_FAMILY_ELECTRA &&
        (rc = get_int(root, label, "embedding_size", 128, 1, 65536, &c->embedding_size)))
        return rc;
    const json_t *tie = json_object_get(root, "tie_word_embeddings");
    c->tie_word_embeddings = !tie || json_is_true(tie);

    if ((rc = get_string(root, label, "problem_type", &s))) return rc;
    c->problem_type = BT_PROBLEM_NONE;
    if (s) {
        int found = 0;
        for (int p = BT_PROBLEM_SINGLE_LABEL; p <= BT_PROBLEM_REGRESSION; p++)
            if (!strcmp(s, problem_names[p])) {
                c->problem_type = (bt_problem_type)p;
                found = 1;
            }
        if (!found)
            return bt_fail(BT_ECONFIG, "%s: problem_type \"%s\" is not one of single_label_classification, "
                           "multi_label_classification, regression", label, s);
    }
    const json_t *arch = json_object_get(root, "architectures");
    if (arch && !json_is_null(arch)) {
        if (!json_is_array(arch))
            return bt_fail(BT_ECONFIG, "%s: key \"architectures\" must be a list of strings", label);
        if (json_array_size(arch) > 0) {
            const json_t *a0 = json_array_get(arch, 0);
            if (!json_is_string(a0))
                return bt_fail(BT_ECONFIG, "%s: architectures[0] must be a string", label);
            c->architecture = bt_xstrdup(json_string_value(a0));
        }
    }
    return parse_labels(c, root, label);
}

int bt_model_config_parse(const char *text, size_t len, const char *label, bt_model_config *c)
{
    memset(c, 0, sizeof *c);
    json_error_t jerr;
    json_t *root = bt_json_loads_py(text, len, &jerr); /* as Transformers reads it (util/json.h) */
    if (!root)
        return bt_fail(BT_ECONFIG, "%s:%d:%d: not valid JSON: %s; fix or re-download config.json", label,
                       jerr.line, jerr.column, jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return bt_fail(BT_ECONFIG, "%s: not a JSON object; expected a Hugging Face config.json", label);
    }
    c->path = bt_xstrdup(label);
    c->json = root;
    int rc = parse_root(c, root, label);
    if (rc) bt_model_config_free(c);
    return rc;
}

int bt_model_config_load(const char *path, bt_model_config *c)
{
    memset(c, 0, sizeof *c);
    char *text;
    size_t len;
    int rc = bt_read_file(path, CONFIG_MAX_BYTES, &text, &len);
    if (rc) return rc;
    rc = bt_model_config_parse(text, len, path, c);
    free(text);
    return rc;
}

void bt_model_config_free(bt_model_config *c)
{
    if (!c) return;
    free_labels(c);
    free(c->architecture);
    free(c->model_type);
    free(c->path);
    if (c->json) json_decref((json_t *)c->json);
    memset(c, 0, sizeof *c);
}

int bt_model_config_set_labels(bt_model_config *c, const char *const *labels, int n)
{
    if (n < 1 || n > MAX_LABELS)
        return bt_fail(BT_ECONFIG, "%d labels: expected 1..%d", n, MAX_LABELS);
    for (int i = 0; i < n; i++) {
        if (!labels[i] || !labels[i][0]) return bt_fail(BT_ECONFIG, "label %d is empty", i);
        for (int j = 0; j < i; j++)
            if (!strcmp(labels[i], labels[j]))
                return bt_fail(BT_ECONFIG, "label \"%s\" appears twice (ids %d and %d)", labels[i], j, i);
    }
    free_labels(c);
    c->num_labels = n;
    c->labels = bt_xcalloc((size_t)n, sizeof *c->labels);
    for (int i = 0; i < n; i++) c->labels[i] = bt_xstrdup(labels[i]);
    c->has_labels = 1;
    return BT_OK;
}

void bt_model_config_set_problem_type(bt_model_config *c, bt_problem_type p) { c->problem_type = p; }

void bt_model_config_set_architecture(bt_model_config *c, const char *arch)
{
    free(c->architecture);
    c->architecture = arch ? bt_xstrdup(arch) : NULL;
}

void bt_model_config_set_inference(bt_model_config *c, int max_seq_len, int stride)
{
    json_t *o = json_pack("{s:i}", "max_seq_len", max_seq_len);
    if (stride >= 0) json_object_set_new(o, "stride", json_integer(stride));
    json_object_set_new((json_t *)c->json, BT_INFERENCE_CONFIG_KEY, o);
}

void bt_model_config_set_tokenizer(bt_model_config *c, int lowercase, int strip_accents, int chinese_chars)
{
    json_t *o = json_pack("{s:b,s:b,s:b}", "do_lower_case", lowercase, "strip_accents", strip_accents,
                          "tokenize_chinese_chars", chinese_chars);
    json_object_set_new((json_t *)c->json, BT_TOKENIZER_CONFIG_KEY, o);
}

int bt_model_config_inference(const bt_model_config *c, int *max_seq_len, int *stride)
{
    *max_seq_len = 0;
    *stride = -1;
    const json_t *o = c->json ? json_object_get((const json_t *)c->json, BT_INFERENCE_CONFIG_KEY) : NULL;
    if (!o) return BT_OK;
    const json_t *m = json_is_object(o) ? json_object_get(o, "max_seq_len") : NULL;
    const json_t *st = json_is_object(o) ? json_object_get(o, "stride") : NULL;
    if (!json_is_integer(m) || json_integer_value(m) < 3 || json_integer_value(m) > 1 << 20 ||
        (st && (!json_is_integer(st) || json_integer_value(st) < 0 || json_integer_value(st) > 1 << 20)))
        return bt_fail(BT_EDATA, "%s: \"%s\" must be {\"max_seq_len\": N >= 3[, \"stride\": N >= 0]}; remove "
                                 "the key (predict then takes its defaults) or re-export the model from its archive",
                       c->path ? c->path : "config.json", BT_INFERENCE_CONFIG_KEY);
    *max_seq_len = (int)json_integer_value(m);
    if (st) *stride = (int)json_integer_value(st);
    return BT_OK;
}

static const char *const column_keys[3] = {"text", "text_pair", "label"};

void bt_model_config_set_columns(bt_model_config *c, const char *const names[3])
{
    json_t *o = json_object();
    for (int k = 0; k < 3; k++)
        if (names[k]) json_object_set_new(o, column_keys[k], json_string(names[k]));
    if (json_object_size(o)) json_object_set_new((json_t *)c->json, BT_COLUMNS_CONFIG_KEY, o);
    else json_decref(o);
}

int bt_model_config_columns(const bt_model_config *c, const char *names[3])
{
    for (int k = 0; k < 3; k++) names[k] = NULL;
    const json_t *o = c->json ? json_object_get((const json_t *)c->json, BT_COLUMNS_CONFIG_KEY) : NULL;
    if (!o) return BT_OK;
    int ok = json_is_object(o);
    for (int k = 0; k < 3 && ok; k++) {
        const json_t *v = json_object_get(o, column_keys[k]);
        ok = !v || (json_is_string(v) && json_string_length(v) > 0);
        names[k] = v ? json_string_value(v) : NULL;
    }
    if (ok) return BT_OK;
    for (int k = 0; k < 3; k++) names[k] = NULL;
    return bt_fail(BT_EDATA, "%s: \"%s\" must be {\"text\": name, \"text_pair\": name, \"label\": name} (each "
                             "optional); remove the key or re-export the model from its archive",
                   c->path ? c->path : "config.json", BT_COLUMNS_CONFIG_KEY);
}

void bt_model_config_remove_key(bt_model_config *c, const char *key)
{
    if (c->json) json_object_del((json_t *)c->json, key);
}

void bt_model_config_remove_baton_keys(bt_model_config *c)
{
    const char *key;
    json_t *v, *o = (json_t *)c->json;
    void *tmp;
    if (!o) return;
    json_object_foreach_safe(o, tmp, key, v) {
        if (!strncmp(key, "baton_", 6)) json_object_del(o, key);
    }
}

/* Smallest %.{15,16,17}g precision that reproduces every real in v exactly. */
static int reals_need(const json_t *v, int prec)
{
    if (json_is_real(v)) {
        char buf[64];
        double d = json_real_value(v);
        snprintf(buf, sizeof buf, "%.*g", prec, d);
        return strtod(buf, NULL) == d;
    }
    size_t i;
    const char *k;
    json_t *x;
    if (json_is_array(v)) {
        json_array_foreach((json_t *)v, i, x) if (!reals_need(x, prec)) return 0;
    } else if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, x) if (!reals_need(x, prec)) return 0;
    }
    return 1;
}

char *bt_model_config_dumps(const bt_model_config *c)
{
    json_t *root = c->json ? json_deep_copy((json_t *)c->json) : json_object();
    if (c->has_labels) {
        json_t *i2l = json_object(), *l2i = json_object();
        for (int i = 0; i < c->num_labels; i++) {
            char id[16];
            snprintf(id, sizeof id, "%d", i);
            json_object_set_new(i2l, id, json_string(c->labels[i]));
            json_object_set_new(l2i, c->labels[i], json_integer(i));
        }
        json_object_set_new(root, "id2label", i2l);
        json_object_set_new(root, "label2id", l2i);
        if (json_object_get(root, "num_labels"))
            json_object_set_new(root, "num_labels", json_integer(c->num_labels));
    }
    if (c->problem_type != BT_PROBLEM_NONE)
        json_object_set_new(root, "problem_type", json_string(bt_problem_type_name(c->problem_type)));
    else
        json_object_del(root, "problem_type");
    if (c->architecture) {
        json_t *a = json_array();
        json_array_append_new(a, json_string(c->architecture));
        json_object_set_new(root, "architectures", a);
    }
    int prec = reals_need(root, 15) ? 15 : reals_need(root, 16) ? 16 : 17;
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(prec));
    json_decref(root);
    if (!s) {
        fprintf(stderr, "baton: out of memory serialising config.json\n");
        exit(BT_EINTERNAL);
    }
    char *out = bt_xasprintf("%s\n", s);
    free(s);
    return out;
}

int bt_model_config_write(const bt_model_config *c, const char *path)
{
    char *s = bt_model_config_dumps(c);
    int rc = bt_write_file_atomic(path, s, strlen(s));
    free(s);
    return rc;
}
