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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    /* by canonical name, so this file does not depend on the enumerator
     * spellings of engine/model_config.h (which clash with backend.h's) */
    const char *act = bt_activation_name(c.hidden_act);
    if (!strcmp(act, "gelu")) out->act = BT_BERT_ACT_GELU;
    else if (!strcmp(act, "gelu_new")) out->act = BT_BERT_ACT_GELU_TANH;
    else if (!strcmp(act, "relu")) out->act = BT_BERT_ACT_RELU;
    else {
        rc = bt_fail(BT_ECONFIG, "%s: hidden_act \"%s\" has no kernel in baton; supported: gelu, "
                                 "gelu_new/gelu_pytorch_tanh/gelu_fast, relu", path, act);
        bt_model_config_free(&c);
        free(path);
        return rc;
    }
    out->vocab = c.vocab_size;
    out->hidden = c.hidden_size;
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

void bt_init_normal(float *dst, int64_t n, uint64_t seed, uint32_t tensor_id, float std)
{
    for (int64_t q = 0; q * 4 < n; q++) {
        bt_u32x4 r = bt_random4(seed, BT_STREAM_HEAD_INIT, tensor_id, (uint32_t)q,
                                (uint32_t)((uint64_t)q >> 32), 0);
        for (int j = 0; j < 4 && q * 4 + j < n; j++)
            dst[q * 4 + j] = std * bt_normal_from(r.v[j & 2], r.v[(j & 2) + 1], j & 1);
    }
}
