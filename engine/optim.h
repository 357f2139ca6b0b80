/* engine/optim.h — AdamW over the model's parameter table, with groups.
 *
 * Owns: the first and second moments (one allocation each, same layout as the
 * parameters), per-parameter step counts (torch keeps one per parameter, so
 * a layer unfrozen later starts its bias correction at 1), and the parameter
 * groups: base learning rate per part (head LR apart from the encoder's;
 * layer-wise decay: layer l of L gets lr * decay^(L - l), embeddings
 * decay^(L + 1), pooler decay^0) and weight decay (none on biases and
 * LayerNorm weights, as HF Trainer).
 * Must not: decide the schedule, clip, or touch frozen parameters.
 */
#ifndef BATON_ENGINE_OPTIM_H
#define BATON_ENGINE_OPTIM_H

#include "engine/bert.h"

typedef struct {
    float lr;            /* encoder base learning rate */
    float head_lr;       /* classifier / MLM head; <= 0: lr */
    float layer_decay;   /* layer-wise LR decay; <= 0 or 1: off */
    float weight_decay;
    float beta1, beta2, eps;
} bt_optim_config;

/* Base learning rate (before the schedule) of a parameter of a model with
 * n_layers encoder layers. Pure. */
double bt_param_base_lr(const bt_bert_param *p, int n_layers, const bt_optim_config *c);
/* Weight decay of a parameter (0 for no_decay ones). Pure. */
float bt_param_weight_decay(const bt_bert_param *p, const bt_optim_config *c);
/* 1 for canonical names HF Trainer exempts from weight decay (biases, LayerNorm). */
int bt_name_no_decay(const char *canonical);

typedef struct bt_adamw bt_adamw;

int bt_adamw_create(bt_bert *m, const bt_optim_config *c, bt_adamw **out);
void bt_adamw_free(bt_adamw *o);

/* One update of every trainable parameter (bt_bert_param_trainable):
 * lr = base_lr * lr_factor, gradients scaled by grad_scale (clip coefficient). */
void bt_adamw_step(bt_adamw *o, double lr_factor, float grad_scale);

float *bt_adamw_exp_avg_dev(bt_adamw *o);    /* [total floats] device */
float *bt_adamw_exp_avg_sq_dev(bt_adamw *o); /* [total floats] device */
int64_t *bt_adamw_steps(bt_adamw *o);        /* [nparams] host: updates applied per parameter */
const bt_optim_config *bt_adamw_config(const bt_adamw *o);

#endif
