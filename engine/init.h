/* engine/init.h — the engine's view of a model config, and head initialisation.
 *
 * Owns: bt_bert_config (the plain numbers the engine needs from config.json,
 * with the activation already mapped to a backend op) and the deterministic
 * initialisation of heads that a checkpoint does not provide
 * (normal(0, initializer_range) from Philox stream BT_STREAM_HEAD_INIT).
 * Must not: allocate device memory or call a backend. This header does not
 * include kernels/backend.h (engine/model_config.h and backend.h currently
 * both define BT_ACT_GELU_TANH/BT_ACT_RELU, so no file may include both);
 * init.c is the one place that reads engine/model_config.h.
 */
#ifndef BATON_ENGINE_INIT_H
#define BATON_ENGINE_INIT_H

#include <stddef.h>
#include <stdint.h>

/* Hidden activations; the values equal the backend's enum bt_act
 * (BT_ACT_GELU_ERF=1, BT_ACT_GELU_TANH=2, BT_ACT_RELU=3), checked in bert.c. */
enum { BT_BERT_ACT_GELU = 1, BT_BERT_ACT_GELU_TANH = 2, BT_BERT_ACT_RELU = 3 };

/* Loss choice of a sequence-classification head (values as config.json's
 * problem_type in engine/model_config.h). AUTO follows HF: num_labels == 1 ->
 * regression, otherwise single-label (integer labels). */
enum { BT_LOSS_AUTO = 0, BT_LOSS_SINGLE = 1, BT_LOSS_MULTI = 2, BT_LOSS_REGRESSION = 3 };

typedef struct {
    int vocab;          /* V */
    int hidden;         /* D */
    int emb;            /* E: width of the embedding tables (ELECTRA's embedding_size; D for the others) */
    int tie_word;       /* tie_word_embeddings: the MLM decoder is the word table (0: the MLM head is refused) */
    int layers;         /* L */
    int heads;          /* H, D % H == 0 */
    int inter;          /* I */
    int max_pos;        /* P */
    int type_vocab;     /* T */
    int act;            /* BT_BERT_ACT_* */
    float ln_eps;
    float init_range;
    float p_hidden;     /* hidden_dropout_prob */
    float p_attn;       /* attention_probs_dropout_prob */
    float p_classifier; /* classifier_dropout (or hidden_dropout_prob when null) */
    int pad_id;         /* -1 when null */
    int num_labels;     /* from config (the caller may override) */
    int problem;        /* BT_LOSS_* from config.json's problem_type */
    char arch[64];      /* architectures[0], "" when absent */
    int family;         /* BT_FAMILY_*: from model_type */
    /* DeBERTa-v2/v3 (engine/model_config.h has the meaning of each) */
    int abs_pos;        /* 1: an absolute position table (position_biased_input); the other families: 1 */
    int rel_span;       /* k: rel_embeddings [2k, D] */
    int rel_buckets;    /* position_buckets, -1 none */
    int rel_max;        /* max_relative_positions as resolved */
    int rel_c2p, rel_p2c;
    int rel_norm;       /* encoder.LayerNorm on rel_embeddings */
    float p_pooler;     /* ContextPooler dropout on [CLS] */
    int pooler_act;     /* BT_BERT_ACT_* of pooler_hidden_act */
} bt_bert_config;

/* Model families (config.json's model_type). Same encoder; they differ in
 * parameter names (engine/model_weights.h), embeddings and heads:
 *  BERT     "bert": positions 0.., token types as given, pooler -> classifier;
 *  ROBERTA  "roberta", "xlm-roberta": positions pad_id + 1 + i (HF's
 *           create_position_ids_from_input_ids: cumsum(id != pad) * (id != pad)
 *           + pad), token types all 0 (RoBERTa tokenizers return none), and
 *           RobertaClassificationHead: dropout -> dense -> tanh -> dropout ->
 *           out_proj on <s> (canonical pooler.dense.* / classifier.*);
 *  DISTILBERT "distilbert": positions 0.., no token type table (type ids
 *           ignored), no dropout after the attention's out_lin, and the head
 *           pre_classifier -> ReLU -> dropout -> classifier on [CLS]
 *           (canonical pooler.dense.* / classifier.*). */
enum { BT_FAMILY_BERT = 0, BT_FAMILY_ROBERTA = 1, BT_FAMILY_DISTILBERT = 2, BT_FAMILY_DEBERTA = 3,
       BT_FAMILY_ELECTRA = 4 };
/*  DEBERTA  "deberta-v2" (DeBERTa-v2 and v3): word (+ position when
 *           position_biased_input, + token type when type_vocab_size > 0)
 *           embeddings -> LayerNorm; disentangled attention in every layer
 *           (content-to-position and position-to-content scores from the
 *           shared rel_embeddings, LayerNorm'ed once, projected by each
 *           layer's query/key weights; scale 1/sqrt(Dh * (1 + #pos_att_type));
 *           kernels/backend.h rel_attention_*); the ContextPooler head:
 *           dropout -> dense -> pooler_hidden_act -> dropout -> classifier
 *           on [CLS] (canonical pooler.dense.* / classifier.*).
 *  ELECTRA  "electra" (discriminators): BERT's encoder and embeddings, the
 *           tables E = embedding_size wide (LayerNorm over E), then, when E !=
 *           D, embeddings_project (Linear E -> D) after the embeddings'
 *           dropout; ElectraClassificationHead on [CLS]: dropout -> dense ->
 *           GELU (erf) -> dropout -> out_proj (canonical pooler.dense.* /
 *           classifier.*, as RoBERTa's). */
/* The relative-position bucket of delta = i - j (query i, key j) for
 * span k = c->rel_span: HF's make_log_bucket_position when rel_buckets > 0,
 * else delta itself; then the row of rel_embeddings, clamp(bucket + k, 0, 2k-1). */
int bt_bert_rel_index(const bt_bert_config *c, int delta);
/* Longest sequence the position table allows: max_pos, less pad_id + 1 for RoBERTa. */
int bt_bert_max_seq_len(const bt_bert_config *c);

/* Reads MODEL_DIR/config.json into *c. Errors: BT_ENOINPUT (missing),
 * BT_ECONFIG (invalid, or an activation baton has no kernel for). */
int bt_bert_config_load(const char *model_dir, bt_bert_config *c);

/* Tensor ids of the head-init stream (part of the checkpoint format's
 * determinism promise: never renumber). */
enum {
    BT_INIT_CLASSIFIER_W = 1,
    BT_INIT_POOLER_W = 2,
    BT_INIT_MLM_DENSE_W = 3,
    BT_INIT_DOC_POOL_W = 4,  /* doc_pooler.dense.weight (long documents) */
    BT_INIT_DOC_POOL_V = 5,  /* doc_pooler.score.weight */
};

/* dst[i] = std * N(0,1) drawn from Philox(seed, BT_STREAM_HEAD_INIT,
 * counter = (tensor_id, i/4)); draws (0,1) and (2,3) of each block are
 * Box-Muller pairs. A pure function of (seed, tensor_id, i). */
void bt_init_normal(float *dst, int64_t n, uint64_t seed, uint32_t tensor_id, float std);

#endif
