/* engine/init.c — config.json -> bt_bert_config, and deterministic head init
 * (see init.h).
 *
 * Owns: the mapping from engine/model_config's parsed config to the numbers
 * the engine uses, and the Philox normal draws for fresh heads.
 * Must not: include kernels/backend.h (enumerator clash, see init.h) or
 * allocate model memory.
 */
#include "engine/init.h"
#include "engine/model_config.h"
#include "kernels/philox.h"
#include "util/err.h"
#include "util/file.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* by canonical name, so this file does not depend on the enumerator
 * spellings of engine/model_config.h (which clash with backend.h's); 0: none */
static int act_of(bt_activation a)
{
    const char *act = bt_activation_name(a);
    if (!strcmp(act, "gelu")) return BT_BERT_ACT_GELU;
    if (!strcmp(act, "gelu_new")) return BT_BERT_ACT_GELU_TANH;
    if (!strcmp(act, "relu")) return BT_BERT_ACT_RELU;
    return 0;
}

int bt_bert_config_load(const char *model_dir, bt_bert_config *out)
{
    memset(out, 0, sizeof *out);
    char *path = bt_path_join(model_dir, "config.json");
    bt_model_config c;
    int rc = bt_model_config_load(path, &c);
    if (rc) {
        free(path);
        return rc;
    }
    out->act = act_of(c.hidden_act);
    out->pooler_act = act_of(c.pooler_act);
    if (!out->act || (bt_model_family(c.model_type) == BT_FAMILY_DEBERTA && !out->pooler_act)) {
        int hid = !out->act;
        rc = bt_fail(BT_ECONFIG, "%s: %s \"%s\" has no kernel in baton; supported: gelu, "
                                 "gelu_new/gelu_pytorch_tanh/gelu_fast, relu", path,
                     hid ? "hidden_act" : "pooler_hidden_act", bt_activation_name(hid ? c.hidden_act : c.pooler_act));
        bt_model_config_free(&c);
        free(path);
        return rc;
    }
    out->vocab = c.vocab_size;
    out->hidden = c.hidden_size;
    out->emb = c.embedding_size;
    out->tie_word = c.tie_word_embeddings;
    out->layers = c.num_hidden_layers;
    out->heads = c.num_attention_heads;
    out->inter = c.intermediate_size;
    out->max_pos = c.max_position_embeddings;
    out->type_vocab = c.type_vocab_size;
    out->ln_eps = c.layer_norm_eps;
    out->init_range = c.initializer_range;
    out->p_hidden = c.hidden_dropout_prob;
    out->p_attn = c.attention_probs_dropout_prob;
    out->p_classifier = c.classifier_dropout;
    out->pad_id = c.pad_token_id;
    out->num_labels = c.num_labels;
    switch (c.problem_type) {
    case BT_PROBLEM_SINGLE_LABEL: out->problem = BT_LOSS_SINGLE; break;
    case BT_PROBLEM_MULTI_LABEL: out->problem = BT_LOSS_MULTI; break;
    case BT_PROBLEM_REGRESSION: out->problem = BT_LOSS_REGRESSION; break;
    default: out->problem = BT_LOSS_AUTO; break;
    }
    if (c.architecture) snprintf(out->arch, sizeof out->arch, "%s", c.architecture);
    out->family = bt_model_family(c.model_type);
    out->abs_pos = c.position_biased_input;
    out->rel_span = c.rel_span;
    out->rel_buckets = c.rel_buckets;
    out->rel_max = c.rel_max_positions;
    out->rel_c2p = c.rel_c2p;
    out->rel_p2c = c.rel_p2c;
    out->rel_norm = c.rel_norm;
    out->p_pooler = c.pooler_dropout;
    if (out->family == BT_FAMILY_ROBERTA && (out->pad_id < 0 || out->pad_id + 2 > out->max_pos)) {
        rc = bt_fail(BT_ECONFIG, "%s: model_type \"%s\" numbers positions from pad_token_id + 1, so it "
                                 "needs pad_token_id (got %d) and max_position_embeddings %d > pad_token_id + 1; "
                                 "fix config.json", path, c.model_type, out->pad_id, out->max_pos);
        bt_model_config_free(&c);
        free(path);
        return rc;
    }
    bt_model_config_free(&c);
    free(path);
    return 0;
}

int bt_bert_max_seq_len(const bt_bert_config *c)
{
    return c->family == BT_FAMILY_ROBERTA ? c->max_pos - c->pad_id - 1 : c->max_pos;
}

int bt_bert_rel_index(const bt_bert_config *c, int delta)
{
    int k = c->rel_span, b = delta;
    if (c->rel_buckets > 0) { /* HF make_log_bucket_position (float32 math, as torch runs it) */
        int mid = c->rel_buckets / 2, a = delta < 0 ? -delta : delta;
        if (a > mid) {
            float lp = ceilf(logf((float)a / (float)mid) / logf((float)(c->rel_max - 1) / (float)mid) *
                             (float)(mid - 1)) + (float)mid;
            b = delta < 0 ? -(int)lp : (int)lp;
        }
    }
    b += k;
    return b < 0 ? 0 : b > 2 * k - 1 ? 2 * k - 1 : b;
}

void bt_init_normal(float *dst, int64_t n, uint64_t seed, uint32_t tensor_id, float std)
{
    for (int64_t q = 0; q * 4 < n; q++) {
        bt_u32x4 r = bt_random4(seed, BT_STREAM_HEAD_INIT, tensor_id, (uint32_t)q,
                                (uint32_t)((uint64_t)q >> 32), 0);
        for (int j = 0; j < 4 && q * 4 + j < n; j++)
            dst[q * 4 + j] = std * bt_normal_from(r.v[j & 2], r.v[(j & 2) + 1], j & 1);
    }
}
