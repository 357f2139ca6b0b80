/* engine/optim.c — AdamW groups over the parameter table (see optim.h).
 * The update itself is the backend's adamw op (torch.optim.AdamW semantics). */
#include "kernels/backend.h"
#include "engine/optim.h"
#include "util/err.h"
#include "util/mem.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct bt_adamw {
    bt_bert *m;
    bt_optim_config c;
    float *mom1, *mom2; /* device, bt_bert_total_floats each */
    int64_t *steps;     /* [nparams] */
};

int bt_name_no_decay(const char *name)
{
    size_t n = strlen(name);
    if (n >= 5 && !strcmp(name + n - 5, ".bias")) return 1;
    return strstr(name, "LayerNorm.") != NULL;
}

double bt_param_base_lr(const bt_bert_param *p, int L, const bt_optim_config *c)
{
    double d = c->layer_decay > 0.0f ? c->layer_decay : 1.0;
    switch (p->part) {
    case BT_PART_HEAD: return c->head_lr > 0.0f ? c->head_lr : c->lr;
    case BT_PART_POOLER: return c->lr;
    case BT_PART_EMBED: return c->lr * pow(d, L + 1);
    default: return c->lr * pow(d, L - p->part);
    }
}

float bt_param_weight_decay(const bt_bert_param *p, const bt_optim_config *c)
{
    return p->no_decay ? 0.0f : c->weight_decay;
}

int bt_adamw_create(bt_bert *m, const bt_optim_config *c, bt_adamw **out)
{
    *out = NULL;
    if (!(c->lr >= 0.0f) || !(c->beta1 >= 0.0f && c->beta1 < 1.0f) || !(c->beta2 >= 0.0f && c->beta2 < 1.0f) ||
        !(c->eps > 0.0f) || !(c->weight_decay >= 0.0f))
        return bt_fail(BT_ECONFIG, "AdamW settings out of range (lr %g >= 0, betas %g %g in [0,1), eps %g > 0, "
                                   "weight_decay %g >= 0): fix the job's optimizer section",
                       c->lr, c->beta1, c->beta2, c->eps, c->weight_decay);
    bt_backend *be = bt_bert_backend(m);
    size_t bytes = bt_bert_total_floats(m) * sizeof(float);
    bt_adamw *o = bt_xcalloc(1, sizeof *o);
    o->m = m;
    o->c = *c;
    o->mom1 = be->alloc(be, bytes);
    o->mom2 = be->alloc(be, bytes);
    if (!o->mom1 || !o->mom2) {
        bt_adamw_free(o);
        return bt_fail(BT_EIO, "cannot allocate %.1f MB of AdamW moments on the %s backend", 2 * bytes / 1e6,
                       be->name);
    }
    o->steps = bt_xcalloc(bt_bert_nparams(m), sizeof *o->steps);
    *out = o;
    return 0;
}

void bt_adamw_free(bt_adamw *o)
{
    if (!o) return;
    bt_backend *be = bt_bert_backend(o->m);
    if (o->mom1) be->free(be, o->mom1);
    if (o->mom2) be->free(be, o->mom2);
    free(o->steps);
    free(o);
}

void bt_adamw_step(bt_adamw *o, double lr_factor, float grad_scale)
{
    bt_bert *m = o->m;
    bt_backend *be = bt_bert_backend(m);
    int L = bt_bert_cfg(m)->layers;
    float *P = bt_bert_params_dev(m), *G = bt_bert_grads_dev(m);
    for (size_t i = 0; i < bt_bert_nparams(m); i++) {
        const bt_bert_param *p = bt_bert_param_at(m, i);
        if (!bt_bert_param_trainable(m, p)) continue;
        o->steps[i]++;
        bt_adamw_args a = {
            .lr = (float)(bt_param_base_lr(p, L, &o->c) * lr_factor),
            .beta1 = o->c.beta1, .beta2 = o->c.beta2, .eps = o->c.eps,
            .weight_decay = bt_param_weight_decay(p, &o->c),
            .grad_scale = grad_scale, .step = o->steps[i],
        };
        bt_tensor tp = bt_view1(P + p->off, BT_F32, be->device, (int64_t)p->numel);
        bt_tensor tg = bt_view1(G + p->off, BT_F32, be->device, (int64_t)p->numel);
        bt_tensor tm = bt_view1(o->mom1 + p->off, BT_F32, be->device, (int64_t)p->numel);
        bt_tensor tv = bt_view1(o->mom2 + p->off, BT_F32, be->device, (int64_t)p->numel);
        be->adamw(be, &tp, &tg, &tm, &tv, &a);
    }
    bt_bert_params_changed(m); /* the 16-bit weight copy follows the masters */
}

float *bt_adamw_exp_avg_dev(bt_adamw *o) { return o->mom1; }
float *bt_adamw_exp_avg_sq_dev(bt_adamw *o) { return o->mom2; }
int64_t *bt_adamw_steps(bt_adamw *o) { return o->steps; }
const bt_optim_config *bt_adamw_config(const bt_adamw *o) { return &o->c; }
