/* engine/model_weights.c — HF checkpoint names -> canonical names, and
 * loading model.safetensors or pytorch_model.bin into caller-owned fp32
 * buffers (see model_weights.h).
 *
 * Owns: the spelling rules (prefix, gamma/beta, aliases, tied, ignored) and the
 * one error that lists every missing or mis-shaped tensor at once.
 * Must not: allocate model memory, guess at shapes (the caller says what it
 * expects), or silently accept a tensor whose shape differs.
 */
#include "engine/model_weights.h"
#include "engine/model_config.h"
#include "engine/init.h"
#include "state/safetensors.h"
#include "state/torch_bin.h"
#include "util/err.h"
#include "util/log.h"
#include "util/mem.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 256

static int starts_with(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }

static int ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

/* Suffixes after "encoder.layer.N." that a BERT layer has. */
static const char *const layer_suffixes[] = {
    "attention.self.query.weight",        "attention.self.query.bias",
    "attention.self.key.weight",          "attention.self.key.bias",
    "attention.self.value.weight",        "attention.self.value.bias",
    "attention.output.dense.weight",      "attention.output.dense.bias",
    "attention.output.LayerNorm.weight",  "attention.output.LayerNorm.bias",
    "intermediate.dense.weight",          "intermediate.dense.bias",
    "output.dense.weight",                "output.dense.bias",
    "output.LayerNorm.weight",            "output.LayerNorm.bias",
};
#define N_LAYER_SUFFIXES (sizeof layer_suffixes / sizeof *layer_suffixes)

static const char *const fixed_names[] = {
    "embeddings.word_embeddings.weight",
    "embeddings.position_embeddings.weight",
    "embeddings.token_type_embeddings.weight",
    "embeddings.LayerNorm.weight",
    "embeddings.LayerNorm.bias",
    "pooler.dense.weight",
    "pooler.dense.bias",
    "classifier.weight",
    "classifier.bias",
    "cls.predictions.transform.dense.weight",
    "cls.predictions.transform.dense.bias",
    "cls.predictions.transform.LayerNorm.weight",
    "cls.predictions.transform.LayerNorm.bias",
    "cls.predictions.bias",
    "doc_pooler.dense.weight",
    "doc_pooler.dense.bias",
    "doc_pooler.score.weight",
    "encoder.rel_embeddings.weight", /* DeBERTa-v2/v3 */
    "encoder.LayerNorm.weight",
    "encoder.LayerNorm.bias",
    "embeddings_project.weight", /* ELECTRA, when embedding_size != hidden_size */
    "embeddings_project.bias",
};

static int is_canonical(const char *s)
{
    for (size_t i = 0; i < sizeof fixed_names / sizeof *fixed_names; i++)
        if (!strcmp(s, fixed_names[i])) return 1;
    if (!starts_with(s, "encoder.layer.")) return 0;
    const char *p = s + strlen("encoder.layer.");
    if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] != '.')) return 0;
    while (*p >= '0' && *p <= '9') p++;
    if (*p++ != '.') return 0;
    for (size_t i = 0; i < N_LAYER_SUFFIXES; i++)
        if (!strcmp(p, layer_suffixes[i])) return 1;
    return 0;
}

/* The MLM heads of RoBERTa (lm_head.*), DistilBERT (vocab_*), DeBERTa-v2/v3
 * and ELECTRA's generator: the same layers as BERT's cls.predictions (dense ->
 * activation -> LayerNorm -> decoder tied to the word embeddings, + bias);
 * {family's spelling, canonical}; an entry ending in '.' is a prefix. */
static const char *const roberta_mlm[][2] = {
    {"dense.", "cls.predictions.transform.dense."}, {"layer_norm.", "cls.predictions.transform.LayerNorm."},
    {"bias", "cls.predictions.bias"}, {"decoder.bias", "cls.predictions.decoder.bias"},
    {"decoder.weight", "cls.predictions.decoder.weight"}, {NULL, NULL}};
static const char *const distil_mlm[][2] = {
    {"vocab_transform.", "cls.predictions.transform.dense."},
    {"vocab_layer_norm.", "cls.predictions.transform.LayerNorm."}, {"vocab_projector.bias", "cls.predictions.bias"},
    {"vocab_projector.weight", "cls.predictions.decoder.weight"}, {NULL, NULL}};
/* DebertaV2ForMaskedLM (Transformers 4.46) spells BERT's names; microsoft/deberta-v3-* checkpoints hold the
 * original lm_predictions.lm_head.* (the first entry is what export writes) */
static const char *const deberta_mlm[][2] = {
    {"cls.predictions.", "cls.predictions."},
    {"lm_predictions.lm_head.dense.", "cls.predictions.transform.dense."},
    {"lm_predictions.lm_head.LayerNorm.", "cls.predictions.transform.LayerNorm."},
    {"lm_predictions.lm_head.bias", "cls.predictions.bias"}, {NULL, NULL}};
/* ElectraForMaskedLM: the dense is [E,D] and the LayerNorm over E (engine/bert.c) */
static const char *const electra_mlm[][2] = {
    {"generator_predictions.dense.", "cls.predictions.transform.dense."},
    {"generator_predictions.LayerNorm.", "cls.predictions.transform.LayerNorm."},
    {"generator_lm_head.bias", "cls.predictions.bias"},
    {"generator_lm_head.weight", "cls.predictions.decoder.weight"}, {NULL, NULL}};

/* s (without the head's prefix) by map: the canonical name (the tied decoder:
 * BT_NAME_TIED, its bias the alias of cls.predictions.bias, as BERT's). */
static int mlm_head_name(const char *s, const char *const map[][2], char *buf, size_t bufsz)
{
    for (size_t i = 0; map[i][0]; i++) {
        size_t k = strlen(map[i][0]);
        int prefix = map[i][0][k - 1] == '.';
        if (prefix ? !starts_with(s, map[i][0]) : strcmp(s, map[i][0])) continue;
        int n = snprintf(buf, bufsz, "%s%s", map[i][1], prefix ? s + k : "");
        if (n < 0 || (size_t)n >= bufsz) break;
        if (!strcmp(buf, "cls.predictions.decoder.weight")) {
            snprintf(buf, bufsz, "embeddings.word_embeddings.weight");
            return BT_NAME_TIED;
        }
        if (!strcmp(buf, "cls.predictions.decoder.bias")) snprintf(buf, bufsz, "cls.predictions.bias");
        return is_canonical(buf) ? BT_NAME_CANONICAL : BT_NAME_UNKNOWN;
    }
    snprintf(buf, bufsz, "%s", s);
    return BT_NAME_UNKNOWN;
}

/* RoBERTa / XLM-R spellings (RobertaModel, RobertaFor*): "roberta." prefix;
 * RobertaClassificationHead's classifier.dense -> pooler.dense and
 * classifier.out_proj -> classifier; the MLM head lm_head.* as BERT's
 * cls.predictions.*; RobertaModel's pooler is unused: ignored. */
static int roberta_name(const char *hf_name, char *buf, size_t bufsz, const char **rest)
{
    const char *s = hf_name;
    if (starts_with(s, "roberta.")) s += 8;
    if (starts_with(s, "pooler.") || !strcmp(s, "embeddings.token_type_ids")) {
        snprintf(buf, bufsz, "%s", s);
        return BT_NAME_IGNORED;
    }
    if (starts_with(s, "lm_head.")) return mlm_head_name(s + strlen("lm_head."), roberta_mlm, buf, bufsz);
    if (starts_with(s, "classifier.dense.")) {
        snprintf(buf, bufsz, "pooler.dense.%s", s + strlen("classifier.dense."));
        return is_canonical(buf) ? BT_NAME_CANONICAL : BT_NAME_UNKNOWN;
    }
    if (starts_with(s, "classifier.out_proj.")) {
        snprintf(buf, bufsz, "classifier.%s", s + strlen("classifier.out_proj."));
        return is_canonical(buf) ? BT_NAME_CANONICAL : BT_NAME_UNKNOWN;
    }
    if (!strcmp(s, "classifier.weight") || !strcmp(s, "classifier.bias")) { /* RobertaForTokenClassification */
        snprintf(buf, bufsz, "%s", s);
        return BT_NAME_CANONICAL;
    }
    if (starts_with(s, "classifier.") || starts_with(s, "cls.")) { /* BERT head names: not RoBERTa's */
        snprintf(buf, bufsz, "%s", s);
        return BT_NAME_UNKNOWN;
    }
    *rest = s;
    return -1;
}

/* ELECTRA spellings (ElectraModel, ElectraForSequenceClassification, the
 * discriminator and generator checkpoints): "electra." prefix, BERT's layer
 * names, embeddings_project; ElectraClassificationHead's classifier.dense ->
 * pooler.dense and classifier.out_proj -> classifier (as RoBERTa's); the
 * generator's MLM head (generator_predictions.*, generator_lm_head.*) as
 * BERT's cls.predictions.*, the decoder weight tied; the discriminator's
 * head (discriminator_predictions.*) ignored. */
static int electra_name(const char *hf_name, char *buf, size_t bufsz, const char **rest)
{
    const char *s = hf_name;
    if (starts_with(s, "electra.")) s += strlen("electra.");
    if (starts_with(s, "discriminator_predictions.") || !strcmp(s, "embeddings.token_type_ids")) {
        snprintf(buf, bufsz, "%s", s);
        return BT_NAME_IGNORED;
    }
    if (starts_with(s, "generator_predictions.") || starts_with(s, "generator_lm_head."))
        return mlm_head_name(s, electra_mlm, buf, bufsz);
    if (starts_with(s, "classifier.dense.") || starts_with(s, "classifier.out_proj.") ||
        !strcmp(s, "classifier.weight") || !strcmp(s, "classifier.bias")) {
        const char *r;
        return roberta_name(s, buf, bufsz, &r); /* the same head names (ElectraForTokenClassification's too) */
    }
    if (starts_with(s, "classifier.") || starts_with(s, "cls.") || starts_with(s, "pooler.")) {
        snprintf(buf, bufsz, "%s", s); /* BERT head names: not ELECTRA's */
        return BT_NAME_UNKNOWN;
    }
    *rest = s;
    return -1;
}

/* DistilBERT spellings (DistilBertModel, DistilBertFor*): "distilbert." prefix,
 * transformer.layer.N.{attention.{q,k,v,out}_lin, sa_layer_norm, ffn.lin1,
 * ffn.lin2, output_layer_norm}; pre_classifier -> pooler.dense; the MLM head
 * (vocab_transform, vocab_layer_norm, vocab_projector) ignored. */
static const char *const distil_layer[][2] = {
    {"attention.q_lin.", "attention.self.query."},   {"attention.k_lin.", "attention.self.key."},
    {"attention.v_lin.", "attention.self.value."},   {"attention.out_lin.", "attention.output.dense."},
    {"sa_layer_norm.", "attention.output.LayerNorm."}, {"ffn.lin1.", "intermediate.dense."},
    {"ffn.lin2.", "output.dense."},                  {"output_layer_norm.", "output.LayerNorm."},
};
#define N_DISTIL_LAYER (sizeof distil_layer / sizeof *distil_layer)

static int distil_name(const char *hf_name, char *buf, size_t bufsz)
{
    const char *s = hf_name;
    if (starts_with(s, "distilbert.")) s += strlen("distilbert.");
    int n = -1;
    if (!strcmp(s, "embeddings.position_ids")) {
        snprintf(buf, bufsz, "%s", s);
        return BT_NAME_IGNORED;
    }
    if (starts_with(s, "vocab_")) return mlm_head_name(s, distil_mlm, buf, bufsz);
    if (starts_with(s, "pre_classifier.")) {
        n = snprintf(buf, bufsz, "pooler.dense.%s", s + strlen("pre_classifier."));
    } else if (starts_with(s, "transformer.layer.")) {
        const char *p = s + strlen("transformer.layer.");
        const char *dot = strchr(p, '.');
        for (size_t i = 0; dot && i < N_DISTIL_LAYER; i++)
            if (starts_with(dot + 1, distil_layer[i][0]))
                n = snprintf(buf, bufsz, "encoder.layer.%.*s.%s%s", (int)(dot - p), p, distil_layer[i][1],
                             dot + 1 + strlen(distil_layer[i][0]));
    } else if (starts_with(s, "embeddings.token_type_embeddings.") || starts_with(s, "cls.") ||
               starts_with(s, "encoder.") || starts_with(s, "pooler.")) {
        n = -1; /* BERT names: not DistilBERT's */
    } else {
        n = snprintf(buf, bufsz, "%s", s);
    }
    if (n < 0 || (size_t)n >= bufsz) {
        snprintf(buf, bufsz, "%s", s);
        return BT_NAME_UNKNOWN;
    }
    return is_canonical(buf) ? BT_NAME_CANONICAL : BT_NAME_UNKNOWN;
}

/* DeBERTa-v2/v3 spellings (DebertaV2Model, DebertaV2For*): "deberta."
 * prefix, encoder.layer.N.attention.self.{query,key,value}_proj ->
 * {query,key,value}; encoder.rel_embeddings and encoder.LayerNorm keep their
 * names; the ContextPooler (pooler.dense) and classifier as BERT's; the MLM
 * head as cls.predictions.* (from cls.predictions.* or lm_predictions.lm_head.*:
 * deberta_mlm; a checkpoint holding both is refused by the loader as the
 * same parameter spelled twice); the RTD head (mask_predictions.*) ignored. */
static int deberta_name(const char *hf_name, char *buf, size_t bufsz)
{
    const char *s = hf_name;
    if (starts_with(s, "deberta.")) s += strlen("deberta.");
    if (starts_with(s, "mask_predictions.") || !strcmp(s, "embeddings.position_ids")) {
        snprintf(buf, bufsz, "%s", s);
        return BT_NAME_IGNORED;
    }
    if (starts_with(s, "cls.") || starts_with(s, "lm_predictions.")) return mlm_head_name(s, deberta_mlm, buf, bufsz);
    int n = snprintf(buf, bufsz, "%s", s);
    if (n < 0 || (size_t)n >= bufsz) {
        if (bufsz) buf[0] = '\0';
        return BT_NAME_UNKNOWN;
    }
    if (starts_with(s, "encoder.layer.")) {
        static const char *const proj[] = {"query_proj.", "key_proj.", "value_proj."};
        char *self = strstr(buf, ".attention.self.");
        for (size_t i = 0; self && i < 3; i++) {
            char *p = self + strlen(".attention.self.");
            if (starts_with(p, proj[i])) {
                char *u = strstr(p, "_proj.");
                memmove(u, u + 5, strlen(u + 5) + 1); /* drop "_proj" */
            }
        }
        if (self && (strstr(self, ".query.") || strstr(self, ".key.") || strstr(self, ".value.")) &&
            !strstr(s, "_proj."))
            return BT_NAME_UNKNOWN; /* BERT's query/key/value: not DeBERTa's */
    }
    return is_canonical(buf) ? BT_NAME_CANONICAL : BT_NAME_UNKNOWN;
}

int bt_canonical_name_family(const char *hf_name, int family, char *buf, size_t bufsz)
{
    if (family == BT_FAMILY_DEBERTA) {
        if (bufsz) buf[0] = '\0';
        return deberta_name(hf_name, buf, bufsz);
    }
    if (family == BT_FAMILY_DISTILBERT) {
        if (bufsz) buf[0] = '\0';
        return distil_name(hf_name, buf, bufsz);
    }
    const char *s = hf_name;
    if (bufsz) buf[0] = '\0';
    if (family == BT_FAMILY_ROBERTA || family == BT_FAMILY_ELECTRA) {
        int k = family == BT_FAMILY_ROBERTA ? roberta_name(hf_name, buf, bufsz, &s)
                                            : electra_name(hf_name, buf, bufsz, &s);
        if (k >= 0) return k;
    }
    if (family == BT_FAMILY_BERT && starts_with(s, "bert.")) s += 5;
    if (!strcmp(s, "embeddings.position_ids") || starts_with(s, "cls.seq_relationship.")) {
        snprintf(buf, bufsz, "%s", s);
        return BT_NAME_IGNORED;
    }
    if (!strcmp(s, "cls.predictions.decoder.weight")) {
        snprintf(buf, bufsz, "embeddings.word_embeddings.weight");
        return BT_NAME_TIED;
    }
    if (!strcmp(s, "cls.predictions.decoder.bias")) s = "cls.predictions.bias";
    if ((size_t)snprintf(buf, bufsz, "%s", s) >= bufsz) {
        if (bufsz) buf[0] = '\0';
        return BT_NAME_UNKNOWN;
    }
    /* Legacy TF-converted checkpoints: LayerNorm.gamma / LayerNorm.beta. */
    size_t len = strlen(buf);
    if (ends_with(buf, "LayerNorm.gamma") && len + 1 < bufsz) strcpy(buf + len - 5, "weight");
    else if (ends_with(buf, "LayerNorm.beta")) strcpy(buf + len - 4, "bias");
    return is_canonical(buf) ? BT_NAME_CANONICAL : BT_NAME_UNKNOWN;
}

int bt_canonical_name(const char *hf_name, char *buf, size_t bufsz)
{
    return bt_canonical_name_family(hf_name, BT_FAMILY_BERT, buf, bufsz);
}

/* ---- export names ---- */

static const char *const prefixed_archs[] = {
    "BertForSequenceClassification", "BertForTokenClassification", "BertForMaskedLM",
    "BertForPreTraining", "BertForMultipleChoice", "BertForQuestionAnswering",
    "BertForNextSentencePrediction", "BertLMHeadModel",
};

static const char *const roberta_archs[] = {
    "RobertaForSequenceClassification", "XLMRobertaForSequenceClassification",
};

/* The token classifiers of RoBERTa / XLM-R and ELECTRA: the encoder's names
 * (FAMILY_hf_name) and a plain classifier.* (dropout -> Linear). */
static const char *token_hf_name(const char *(*encoder)(const char *, char *, size_t), const char *canonical,
                                 char *buf, size_t bufsz)
{
    if (starts_with(canonical, "pooler.")) return NULL;
    if (!starts_with(canonical, "classifier.")) return encoder(canonical, buf, bufsz);
    int n = snprintf(buf, bufsz, "%s", canonical);
    return n < 0 || (size_t)n >= bufsz ? NULL : buf;
}

/* The MLM head's HF name by map (the inverse of mlm_head_name), else NULL. */
static const char *mlm_hf_name(const char *canonical, const char *const map[][2], const char *prefix, char *buf,
                               size_t bufsz)
{
    for (size_t i = 0; map[i][0]; i++) {
        size_t k = strlen(map[i][1]);
        int dot = map[i][1][k - 1] == '.';
        if (dot ? !starts_with(canonical, map[i][1]) : strcmp(canonical, map[i][1])) continue;
        int n = snprintf(buf, bufsz, "%s%s%s", prefix, map[i][0], dot ? canonical + k : "");
        return n < 0 || (size_t)n >= bufsz ? NULL : buf;
    }
    return NULL;
}

/* A *ForMaskedLM's names: the MLM head by map under head (a prefix), the encoder's (FAMILY_hf_name); no
 * pooler, no classifier. */
static const char *masked_lm_hf_name(const char *(*encoder)(const char *, char *, size_t),
                                     const char *const map[][2], const char *head, const char *canonical,
                                     char *buf, size_t bufsz)
{
    if (starts_with(canonical, "cls.")) return mlm_hf_name(canonical, map, head, buf, bufsz);
    return starts_with(canonical, "pooler.") || starts_with(canonical, "classifier.")
               ? NULL : encoder(canonical, buf, bufsz);
}

/* The families whose sequence head is a dense layer + out_proj on [CLS]
 * (RobertaClassificationHead, ElectraClassificationHead): baton keeps the
 * dense in the pooler's slot and out_proj in the classifier's; the encoder
 * sits under prefix ("roberta.", "electra."; ELECTRA's embeddings_project.*
 * too, which RoBERTa never has). */
static const char *dense_head_hf_name(const char *canonical, const char *prefix, char *buf, size_t bufsz)
{
    int n;
    if (starts_with(canonical, "pooler.dense."))
        n = snprintf(buf, bufsz, "classifier.dense.%s", canonical + strlen("pooler.dense."));
    else if (starts_with(canonical, "classifier."))
        n = snprintf(buf, bufsz, "classifier.out_proj.%s", canonical + strlen("classifier."));
    else if (starts_with(canonical, "embeddings") || starts_with(canonical, "encoder."))
        n = snprintf(buf, bufsz, "%s%s", prefix, canonical);
    else
        return NULL;
    return n < 0 || (size_t)n >= bufsz ? NULL : buf;
}

static const char *roberta_hf_name(const char *canonical, char *buf, size_t bufsz)
{
    return dense_head_hf_name(canonical, "roberta.", buf, bufsz);
}

static const char *electra_hf_name(const char *canonical, char *buf, size_t bufsz)
{
    return dense_head_hf_name(canonical, "electra.", buf, bufsz);
}

static const char *distil_hf_name(const char *canonical, char *buf, size_t bufsz)
{
    int n = -1;
    if (starts_with(canonical, "cls.")) {
        return mlm_hf_name(canonical, distil_mlm, "", buf, bufsz);
    } else if (starts_with(canonical, "pooler.dense.")) {
        n = snprintf(buf, bufsz, "pre_classifier.%s", canonical + strlen("pooler.dense."));
    } else if (starts_with(canonical, "classifier.")) {
        n = snprintf(buf, bufsz, "%s", canonical);
    } else if (starts_with(canonical, "embeddings.") && !starts_with(canonical, "embeddings.token_type")) {
        n = snprintf(buf, bufsz, "distilbert.%s", canonical);
    } else if (starts_with(canonical, "encoder.layer.")) {
        const char *p = canonical + strlen("encoder.layer."), *dot = strchr(p, '.');
        for (size_t i = 0; dot && i < N_DISTIL_LAYER; i++)
            if (starts_with(dot + 1, distil_layer[i][1]))
                n = snprintf(buf, bufsz, "distilbert.transformer.layer.%.*s.%s%s", (int)(dot - p), p,
                             distil_layer[i][0], dot + 1 + strlen(distil_layer[i][1]));
    }
    return n < 0 || (size_t)n >= bufsz ? NULL : buf;
}

static const char *deberta_hf_name(const char *canonical, char *buf, size_t bufsz)
{
    /* (the MLM head's cls.* goes through masked_lm_hf_name) */
    int n = -1;
    if (starts_with(canonical, "pooler.") || starts_with(canonical, "classifier.")) {
        n = snprintf(buf, bufsz, "%s", canonical);
    } else if (starts_with(canonical, "embeddings.") || starts_with(canonical, "encoder.")) {
        n = snprintf(buf, bufsz, "deberta.%s", canonical);
        char *self = n > 0 && (size_t)n < bufsz ? strstr(buf, ".attention.self.") : NULL;
        if (self) { /* query|key|value -> *_proj */
            char *p = self + strlen(".attention.self."), *dot = strchr(p, '.');
            if (dot && (size_t)n + 5 < bufsz) {
                memmove(dot + 5, dot, strlen(dot) + 1);
                memcpy(dot, "_proj", 5);
            } else {
                n = -1;
            }
        }
    }
    return n < 0 || (size_t)n >= bufsz ? NULL : buf;
}

const char *bt_hf_name(const char *canonical, const char *arch, char *buf, size_t bufsz)
{
    int prefix = 0;
    if (arch && !strcmp(arch, "DebertaV2ForSequenceClassification")) return deberta_hf_name(canonical, buf, bufsz);
    if (arch && !strcmp(arch, "DistilBertForSequenceClassification")) return distil_hf_name(canonical, buf, bufsz);
    if (arch && !strcmp(arch, "ElectraForSequenceClassification")) return electra_hf_name(canonical, buf, bufsz);
    if (arch && (!strcmp(arch, "DistilBertForTokenClassification") || !strcmp(arch, "DistilBertForMaskedLM")))
        return distil_hf_name(canonical, buf, bufsz);
    if (arch && (!strcmp(arch, "RobertaForMaskedLM") || !strcmp(arch, "XLMRobertaForMaskedLM")))
        return masked_lm_hf_name(roberta_hf_name, roberta_mlm, "lm_head.", canonical, buf, bufsz);
    if (arch && !strcmp(arch, "DebertaV2ForMaskedLM"))
        return masked_lm_hf_name(deberta_hf_name, deberta_mlm, "", canonical, buf, bufsz);
    if (arch && !strcmp(arch, "ElectraForMaskedLM"))
        return masked_lm_hf_name(electra_hf_name, electra_mlm, "", canonical, buf, bufsz);
    if (arch && !strcmp(arch, "ElectraForTokenClassification"))
        return token_hf_name(electra_hf_name, canonical, buf, bufsz);
    if (arch && !strcmp(arch, "DebertaV2ForTokenClassification"))
        return token_hf_name(deberta_hf_name, canonical, buf, bufsz);
    if (arch && (!strcmp(arch, "RobertaForTokenClassification") || !strcmp(arch, "XLMRobertaForTokenClassification")))
        return token_hf_name(roberta_hf_name, canonical, buf, bufsz);
    for (size_t i = 0; arch && i < sizeof roberta_archs / sizeof *roberta_archs; i++)
        if (!strcmp(arch, roberta_archs[i])) return roberta_hf_name(canonical, buf, bufsz);
    if (arch && strcmp(arch, "BertModel")) {
        size_t i;
        for (i = 0; i < sizeof prefixed_archs / sizeof *prefixed_archs; i++)
            if (!strcmp(arch, prefixed_archs[i])) break;
        if (i == sizeof prefixed_archs / sizeof *prefixed_archs) return NULL;
        prefix = starts_with(canonical, "embeddings.") || starts_with(canonical, "encoder.") ||
                 starts_with(canonical, "pooler.");
    }
    int n = snprintf(buf, bufsz, "%s%s", prefix ? "bert." : "", canonical);
    if (n < 0 || (size_t)n >= bufsz) return NULL;
    return buf;
}

/* ---- loading ---- */

static const char *fmt_shape(const int64_t *shape, int ndim, char *buf, size_t sz)
{
    size_t o = 0;
    buf[0] = '\0';
    o += (size_t)snprintf(buf, sz, "[");
    for (int i = 0; i < ndim && o < sz; i++)
        o += (size_t)snprintf(buf + o, sz - o, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (o < sz) snprintf(buf + o, sz - o, "]");
    return buf;
}

typedef struct {
    char *buf;
    size_t len, cap;
    int lines, dropped;
} msg;

static void msg_add(msg *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void msg_add(msg *m, const char *fmt, ...)
{
    if (m->lines >= 20) {
        m->dropped++;
        return;
    }
    char tmp[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    size_t n = strlen(tmp);
    if (m->len + n + 1 > m->cap) {
        m->cap = (m->len + n + 1) * 2;
        m->buf = bt_xrealloc(m->buf, m->cap);
    }
    memcpy(m->buf + m->len, tmp, n + 1);
    m->len += n;
    m->lines++;
}

static int float_dtype(bt_st_dtype d)
{
    return d == BT_ST_F32 || d == BT_ST_F16 || d == BT_ST_BF16 || d == BT_ST_F64;
}

int bt_weights_open(const char *path, bt_st_file **out)
{
    return ends_with(path, ".safetensors") ? bt_st_open(path, out) : bt_pt_open(path, out);
}

int bt_load_hf_weights(const char *path, bt_param_load *params, size_t n)
{
    return bt_load_hf_weights_path_family(path, BT_FAMILY_BERT, params, n);
}

int bt_load_hf_weights_path_family(const char *path, int family, bt_param_load *params, size_t n)
{
    bt_st_file *f;
    int rc = bt_weights_open(path, &f);
    if (rc) return rc;
    rc = bt_load_hf_weights_family(f, family, params, n);
    bt_st_close(f);
    return rc;
}

int bt_load_hf_weights_st(const bt_st_file *f, bt_param_load *params, size_t n)
{
    return bt_load_hf_weights_family(f, BT_FAMILY_BERT, params, n);
}

int bt_load_hf_weights_family(const bt_st_file *f, int family, bt_param_load *params, size_t n)
{
    const char *path = bt_st_label(f);
    int rc = BT_OK;
    for (size_t i = 0; i < n; i++) {
        params[i].found = params[i].mismatched = 0;
        if (!params[i].name || params[i].ndim < 0 || params[i].ndim > 4)
            return bt_fail(BT_EINTERNAL, "bt_load_hf_weights: parameter %zu has no name or a bad ndim", i);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(params[i].name, params[j].name))
                return bt_fail(BT_EINTERNAL, "bt_load_hf_weights: parameter '%s' requested twice",
                               params[i].name);
    }
    size_t nt = bt_st_count(f);
    char **canon = bt_xcalloc(nt + 1, sizeof *canon);
    int *kind = bt_xcalloc(nt + 1, sizeof *kind);
    int *used = bt_xcalloc(nt + 1, sizeof *used);
    long *src = bt_xcalloc(n + 1, sizeof *src);
    long tied = -1;
    msg m = {0};
    int problems = 0, head_shape = 0; /* head_shape: mis-shaped tensors of a head (optional) */

    for (size_t i = 0; i < nt; i++) {
        char buf[NAME_MAX_LEN];
        const char *hf = bt_st_get(f, i)->name;
        kind[i] = bt_canonical_name_family(hf, family, buf, sizeof buf);
        canon[i] = bt_xstrdup(buf);
        if (kind[i] == BT_NAME_TIED) tied = (long)i;
        if (kind[i] != BT_NAME_CANONICAL) continue;
        for (size_t j = 0; j < i; j++) {
            if (kind[j] != BT_NAME_CANONICAL || strcmp(canon[i], canon[j])) continue;
            /* cls.predictions.bias and its alias decoder.bias: keep the primary one (two other spellings of
             * it, DeBERTa's cls.predictions.bias and lm_predictions.lm_head.bias, are refused below) */
            if (!strcmp(canon[i], "cls.predictions.bias") &&
                (ends_with(hf, "decoder.bias") || ends_with(bt_st_get(f, j)->name, "decoder.bias"))) {
                size_t alias = ends_with(hf, "decoder.bias") ? i : j;
                kind[alias] = BT_NAME_IGNORED;
                break;
            }
            rc = bt_fail(BT_EDATA,
                         "%s: tensors '%s' and '%s' are the same parameter '%s' spelled twice; the "
                         "checkpoint mixes naming schemes, re-export it from one model class",
                         path, bt_st_get(f, j)->name, hf, canon[i]);
            goto out;
        }
    }

    for (size_t p = 0; p < n; p++) {
        bt_param_load *pl = &params[p];
        char es[96], fs[160];
        src[p] = -1;
        for (size_t i = 0; i < nt; i++)
            if (kind[i] == BT_NAME_CANONICAL && !strcmp(canon[i], pl->name)) {
                src[p] = (long)i;
                break;
            }
        if (src[p] < 0 && tied >= 0 && !strcmp(pl->name, "embeddings.word_embeddings.weight"))
            src[p] = tied;
        fmt_shape(pl->shape, pl->ndim, es, sizeof es);
        if (src[p] < 0) {
            if (!pl->optional) {
                problems++;
                msg_add(&m, "\n  missing     %s %s", pl->name, es);
            }
            continue;
        }
        const bt_st_tensor *t = bt_st_get(f, (size_t)src[p]);
        used[src[p]] = 1;
        int same = t->ndim == pl->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == pl->shape[d];
        if (!same && pl->optional && pl->reinit_mismatched) {
            pl->mismatched = 1; /* a head of another size: left to its caller to initialise */
            src[p] = -1;
            bt_warn("%s: %s has shape %s in the checkpoint, %s here: initialised anew (ignore_mismatched_sizes; "
                    "a resume then takes it from its archive)",
                    path, t->name, fmt_shape(t->shape, t->ndim, fs, sizeof fs), es);
        } else if (!same) {
            problems++;
            head_shape += pl->optional;
            msg_add(&m, "\n  mis-shaped  %s: expected %s, checkpoint has %s (as '%s')", pl->name, es,
                    fmt_shape(t->shape, t->ndim, fs, sizeof fs), t->name);
        } else if (!float_dtype(t->dtype)) {
            problems++;
            msg_add(&m, "\n  bad dtype   %s: %s (as '%s'); baton reads F32, F16, BF16, F64", pl->name,
                    bt_st_dtype_name(t->dtype), t->name);
        }
    }
    if (problems) {
        size_t shown = 0;
        char names[512] = "";
        for (size_t i = 0; i < nt && shown < 3; i++, shown++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s'%s'", shown ? ", " : "",
                     bt_st_get(f, i)->name);
        char more[48] = "";
        if (m.dropped) snprintf(more, sizeof more, "\n  ... and %d more", m.dropped);
        if (head_shape == problems) /* only a head of another size: fine-tuned for another number of labels */
            rc = bt_fail(BT_EDATA,
                         "%s: its task head has another shape than this task's:%s%s\n"
                         "the checkpoint was fine-tuned for another number of labels (or task); to train a "
                         "new head on its encoder set ignore_mismatched_sizes = true in the job's [model] "
                         "section (Transformers' ignore_mismatched_sizes=True), or start from the base model",
                         path, m.buf ? m.buf : "", more);
        else
            rc = bt_fail(BT_EDATA,
                         "%s: %d of %zu expected tensors are missing or mis-shaped:%s%s\n"
                         "the checkpoint does not match config.json (hidden_size, num_hidden_layers, "
                         "vocab_size, num_labels) or is not a BERT checkpoint (its %zu tensors are named "
                         "like %s); use the config.json that came with these weights",
                         path, problems, n, m.buf ? m.buf : "",
                         more, nt, names);
        goto out;
    }
    for (size_t p = 0; p < n; p++) {
        if (src[p] < 0) continue;
        const bt_st_tensor *t = bt_st_get(f, (size_t)src[p]);
        if (params[p].dst && (rc = bt_st_read_f32(f, t, params[p].dst))) goto out;
        /* a non-finite weight would turn every loss into NaN (and be blamed on
         * the learning rate): refused where it enters */
        for (int64_t k = 0; params[p].dst && k < t->numel; k++)
            if (!isfinite(params[p].dst[k])) {
                rc = bt_fail(BT_EDATA, "%s: tensor '%s' holds %g at index %lld: the weights are damaged (every value "
                                       "must be finite); use an intact copy of the model or checkpoint",
                             path, t->name, (double)params[p].dst[k], (long long)k);
                goto out;
            }
        params[p].found = 1;
    }
    size_t unused = 0, ignored = 0;
    char list[512] = "";
    for (size_t i = 0; i < nt; i++) {
        if (used[i]) continue;
        if (kind[i] == BT_NAME_IGNORED || kind[i] == BT_NAME_TIED) {
            ignored++;
            continue;
        }
        if (unused++ < 5)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s'%s'", unused > 1 ? ", " : "",
                     bt_st_get(f, i)->name);
    }
    if (unused)
        bt_info("%s: %zu checkpoint tensors not used (%s%s)", path, unused, list, unused > 5 ? ", ..." : "");
    if (ignored) bt_debug("%s: %zu tied or known-unneeded tensors skipped", path, ignored);
out:
    for (size_t i = 0; i < nt; i++) free(canon[i]);
    free(canon);
    free(kind);
    free(used);
    free(src);
    free(m.buf);
    return rc;
}

/* ---- canonical list from a config ---- */

static void add(bt_param_load *p, size_t *n, int optional, int ndim, int64_t d0, int64_t d1,
                const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static void add(bt_param_load *p, size_t *n, int optional, int ndim, int64_t d0, int64_t d1,
                const char *fmt, ...)
{
    char buf[NAME_MAX_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    bt_param_load *q = &p[(*n)++];
    memset(q, 0, sizeof *q);
    q->name = bt_xstrdup(buf);
    q->ndim = ndim;
    q->shape[0] = d0;
    q->shape[1] = d1;
    q->optional = optional;
}

bt_param_load *bt_bert_param_list(const struct bt_model_config *c, unsigned heads, size_t *count)
{
    int64_t V = c->vocab_size, D = c->hidden_size, I = c->intermediate_size, P = c->max_position_embeddings,
            T = c->type_vocab_size, L = c->num_labels, E = c->embedding_size > 0 ? c->embedding_size : D;
    size_t cap = 5 + 2 + 16 * (size_t)c->num_hidden_layers + 3 + 2 + 2 + 5, n = 0;
    bt_param_load *p = bt_xcalloc(cap, sizeof *p);
    int fam = bt_model_family(c->model_type);
    add(p, &n, 0, 2, V, E, "embeddings.word_embeddings.weight");
    if (fam != BT_FAMILY_DEBERTA || c->position_biased_input) /* DeBERTa-v3: no absolute positions */
        add(p, &n, 0, 2, P, E, "embeddings.position_embeddings.weight");
    /* DistilBERT has no token types; DeBERTa when type_vocab_size is 0 */
    if (fam != BT_FAMILY_DISTILBERT && T > 0) add(p, &n, 0, 2, T, E, "embeddings.token_type_embeddings.weight");
    add(p, &n, 0, 1, E, 0, "embeddings.LayerNorm.weight");
    add(p, &n, 0, 1, E, 0, "embeddings.LayerNorm.bias");
    if (E != D) { /* ELECTRA's embeddings_project */
        add(p, &n, 0, 2, D, E, "embeddings_project.weight");
        add(p, &n, 0, 1, D, 0, "embeddings_project.bias");
    }
    for (int l = 0; l < c->num_hidden_layers; l++) {
        static const char *qkv[] = {"query", "key", "value"};
        for (int k = 0; k < 3; k++) {
            add(p, &n, 0, 2, D, D, "encoder.layer.%d.attention.self.%s.weight", l, qkv[k]);
            add(p, &n, 0, 1, D, 0, "encoder.layer.%d.attention.self.%s.bias", l, qkv[k]);
        }
        add(p, &n, 0, 2, D, D, "encoder.layer.%d.attention.output.dense.weight", l);
        add(p, &n, 0, 1, D, 0, "encoder.layer.%d.attention.output.dense.bias", l);
        add(p, &n, 0, 1, D, 0, "encoder.layer.%d.attention.output.LayerNorm.weight", l);
        add(p, &n, 0, 1, D, 0, "encoder.layer.%d.attention.output.LayerNorm.bias", l);
        add(p, &n, 0, 2, I, D, "encoder.layer.%d.intermediate.dense.weight", l);
        add(p, &n, 0, 1, I, 0, "encoder.layer.%d.intermediate.dense.bias", l);
        add(p, &n, 0, 2, D, I, "encoder.layer.%d.output.dense.weight", l);
        add(p, &n, 0, 1, D, 0, "encoder.layer.%d.output.dense.bias", l);
        add(p, &n, 0, 1, D, 0, "encoder.layer.%d.output.LayerNorm.weight", l);
        add(p, &n, 0, 1, D, 0, "encoder.layer.%d.output.LayerNorm.bias", l);
    }
    if (fam == BT_FAMILY_DEBERTA) {
        add(p, &n, 0, 2, 2 * (int64_t)c->rel_span, D, "encoder.rel_embeddings.weight");
        if (c->rel_norm) {
            add(p, &n, 0, 1, D, 0, "encoder.LayerNorm.weight");
            add(p, &n, 0, 1, D, 0, "encoder.LayerNorm.bias");
        }
    }
    if (heads & BT_HEAD_POOLER) {
        add(p, &n, 1, 2, D, D, "pooler.dense.weight");
        add(p, &n, 1, 1, D, 0, "pooler.dense.bias");
    }
    if (heads & BT_HEAD_CLASSIFIER) {
        add(p, &n, 1, 2, L, D, "classifier.weight");
        add(p, &n, 1, 1, L, 0, "classifier.bias");
    }
    if (heads & BT_HEAD_MLM) { /* D -> E: the tied decoder reads the word table's width */
        add(p, &n, 1, 2, E, D, "cls.predictions.transform.dense.weight");
        add(p, &n, 1, 1, E, 0, "cls.predictions.transform.dense.bias");
        add(p, &n, 1, 1, E, 0, "cls.predictions.transform.LayerNorm.weight");
        add(p, &n, 1, 1, E, 0, "cls.predictions.transform.LayerNorm.bias");
        add(p, &n, 1, 1, V, 0, "cls.predictions.bias");
    }
    *count = n;
    return p;
}

void bt_param_list_free(bt_param_load *p, size_t n)
{
    if (!p) return;
    for (size_t i = 0; i < n; i++) free((char *)p[i].name);
    free(p);
}
