/* engine/model_config.h — a Hugging Face BERT config.json, parsed and checked.
 *
 * Owns: reading config.json into a struct (with HF BertConfig defaults for
 * absent keys), validating it (errors name the file and the key), the label
 * map, and writing config.json back with updated labels / problem type /
 * architecture while keeping every other key as it was.
 * Must not: read weights or the tokenizer, or know about archives.
 */
#ifndef BATON_ENGINE_MODEL_CONFIG_H
#define BATON_ENGINE_MODEL_CONFIG_H

#include <stddef.h>

typedef enum {
    BT_HIDDEN_ACT_GELU,      /* "gelu", "gelu_python": exact erf GELU */
    BT_HIDDEN_ACT_GELU_TANH, /* "gelu_new", "gelu_pytorch_tanh", "gelu_fast": tanh approximation */
    BT_HIDDEN_ACT_RELU,      /* "relu" */
    BT_HIDDEN_ACT_SILU,      /* "silu", "swish" */
} bt_activation;

typedef enum {
    BT_PROBLEM_NONE,   /* absent / null: decided by the job */
    BT_PROBLEM_SINGLE_LABEL, /* "single_label_classification" */
    BT_PROBLEM_MULTI_LABEL,  /* "multi_label_classification" */
    BT_PROBLEM_REGRESSION,   /* "regression" */
} bt_problem_type;

typedef struct bt_model_config {
    int vocab_size;              /* V */
    int hidden_size;             /* D */
    int embedding_size;          /* E: ELECTRA's embedding width (embeddings_project E -> D when they
                                    differ); hidden_size for the other families */
    int tie_word_embeddings;     /* PretrainedConfig's (absent: 1): the MLM decoder is the word table; 0 when
                                    the key is anything but true (the masked-LM head is then refused) */
    int num_hidden_layers;
    int num_attention_heads;     /* H; D % H == 0 */
    int intermediate_size;       /* I */
    bt_activation hidden_act;
    float hidden_dropout_prob;
    float attention_probs_dropout_prob;
    float classifier_dropout;    /* null in the file -> hidden_dropout_prob */
    int max_position_embeddings; /* P */
    int type_vocab_size;         /* T */
    float layer_norm_eps;
    float initializer_range;
    int pad_token_id;            /* -1 when null */

    int num_labels;              /* len(id2label), else "num_labels", else 2 (HF default) */
    int has_labels;              /* 1 when id2label was in the file (or set) */
    char **labels;               /* [num_labels] id -> label (always filled: LABEL_i by default) */
    bt_problem_type problem_type;
    char *architecture;          /* architectures[0], or NULL */
    char *model_type;            /* "bert", "roberta", "xlm-roberta", "distilbert", "deberta-v2" or "electra"
                                    (bt_model_family) */

    /* DeBERTa-v2/v3 (model_type "deberta-v2"; zero / unused for the others) */
    int position_biased_input;   /* 1: an absolute position table is added (HF default true; v3: false) */
    int rel_span;                /* relative attention span k: position_buckets if > 0, else
                                    max_relative_positions (< 1: max_position_embeddings); the
                                    encoder's rel_embeddings has 2k rows */
    int rel_buckets;             /* position_buckets (log buckets), -1 none */
    int rel_max_positions;       /* max_relative_positions as resolved (the log buckets' range) */
    int rel_c2p, rel_p2c;        /* 1 when pos_att_type holds "c2p" / "p2c" */
    int rel_norm;                /* 1: norm_rel_ebd holds "layer_norm" (encoder.LayerNorm on rel_embeddings) */
    float pooler_dropout;        /* ContextPooler's dropout on the [CLS] row */
    bt_activation pooler_act;    /* pooler_hidden_act (HF default "gelu") */
    char *path;                  /* the file read, for messages */

    void *json;                  /* the parsed json_t, kept for re-export */
} bt_model_config;

/* The family (BT_FAMILY_* of engine/init.h) of a config.json model_type
 * (NULL: "bert"); -1 when baton does not read that model_type. */
int bt_model_family(const char *model_type);
/* The architecture name (config.json's architectures[0]) of a head of
 * model_type's family, into buf: head "SequenceClassification" gives
 * "BertForSequenceClassification", "RobertaForSequenceClassification",
 * "XLMRobertaForSequenceClassification", "DistilBertForSequenceClassification",
 * "DebertaV2ForSequenceClassification" or "ElectraForSequenceClassification"
 * (model_type NULL: "bert"). NULL for a model_type baton does not read. */
const char *bt_model_type_arch(const char *model_type, const char *head, char *buf, size_t cap);
#define BT_SUPPORTED_MODEL_TYPES "\"bert\", \"roberta\", \"xlm-roberta\", \"distilbert\", \"deberta-v2\", \"electra\""

/* Parses and validates path (a config.json). BT_ENOINPUT missing, BT_ECONFIG
 * invalid (message names the file and key). On failure *c is zeroed. */
int bt_model_config_load(const char *path, bt_model_config *c);
/* Same for JSON text already in memory; label names it in errors. */
int bt_model_config_parse(const char *text, size_t len, const char *label, bt_model_config *c);
void bt_model_config_free(bt_model_config *c);

const char *bt_activation_name(bt_activation a); /* canonical HF spelling */
const char *bt_problem_type_name(bt_problem_type p); /* NULL for NONE */

/* Updates (struct and the JSON kept for export). labels: n strings, copied;
 * they must be distinct and non-empty (BT_ECONFIG otherwise). */
int bt_model_config_set_labels(bt_model_config *c, const char *const *labels, int n);
void bt_model_config_set_problem_type(bt_model_config *c, bt_problem_type p);
void bt_model_config_set_architecture(bt_model_config *c, const char *arch);

/* baton's inference settings, kept in config.json of archives and exports
 * (HF keeps unknown keys as config attributes and ignores them): the
 * max_seq_len the model was trained with and, for token classification, the
 * overlap of the windows of long sentences, so that `baton predict` sees
 * inputs as training and evaluation did. */
#define BT_INFERENCE_CONFIG_KEY "baton_inference"
/* Sets {"max_seq_len": max_seq_len[, "stride": stride when >= 0]}. */
void bt_model_config_set_inference(bt_model_config *c, int max_seq_len, int stride);
/* Reads it: *max_seq_len = 0 and *stride = -1 when absent. BT_EDATA (naming
 * the file and key) when present but not {"max_seq_len": 3.., "stride": 0..}. */
int bt_model_config_inference(const bt_model_config *c, int *max_seq_len, int *stride);
/* The tokenizer settings of training, kept in config.json of archives (an
 * archive holds vocab.txt but no tokenizer_config.json), so that an export
 * or a prediction from an archive tokenizes as training did:
 * {"do_lower_case", "strip_accents", "tokenize_chinese_chars"} (booleans). */
#define BT_TOKENIZER_CONFIG_KEY "baton_tokenizer"
void bt_model_config_set_tokenizer(bt_model_config *c, int lowercase, int strip_accents, int chinese_chars);
/* The data columns training read, kept in config.json of archives and
 * exports of classifiers so that `baton predict` on a table finds the text
 * column and names its output's label column as the training file did, even
 * where that file is gone: {"text": name, "text_pair": name, "label": name}
 * (a key only when training's file named that column: a header name or a
 * JSONL key). */
#define BT_COLUMNS_CONFIG_KEY "baton_columns"
/* Sets it from names[0..3) (text, text pair, label; NULL: not named); no key
 * when none is named. */
void bt_model_config_set_columns(bt_model_config *c, const char *const names[3]);
/* Reads it: names[k] borrowed from the config (NULL when absent). BT_EDATA
 * (naming the file and key) when present but not an object of strings. */
int bt_model_config_columns(const bt_model_config *c, const char *names[3]);

/* Removes a top-level key (e.g. a baton key inherited from the base model). */
void bt_model_config_remove_key(bt_model_config *c, const char *key);
/* Removes every key baton adds (baton_*): how a baton export of a base model
 * saw inputs in its own training, which a new job sets anew. */
void bt_model_config_remove_baton_keys(bt_model_config *c);

/* The config as HF writes it (indent 2, sorted keys, trailing newline) with
 * the current id2label/label2id (when has_labels), num_labels (only if the
 * original had that key), problem_type and architectures. Heap string. */
char *bt_model_config_dumps(const bt_model_config *c);
/* Atomic write of bt_model_config_dumps to path. */
int bt_model_config_write(const bt_model_config *c, const char *path);

#endif
