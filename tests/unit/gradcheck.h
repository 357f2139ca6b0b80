/* tests/unit/gradcheck.h — the finite-difference check the engine tests share:
 * for every parameter tensor, its largest analytic gradient and one more
 * element against a central difference of a loss the caller computes
 * (inference loss, or the training-mode loss at a fixed step, whose
 * counter-based dropout masks make it smooth). Header-only, for tests. */
#ifndef BATON_TESTS_GRADCHECK_H
#define BATON_TESTS_GRADCHECK_H

#include "engine/bert.h"

#include <math.h>
#include <stdio.h>

/* The loss at the model's current weights. */
typedef double (*gc_loss_fn)(bt_bert *m, void *ctx);

/* w: the weights (restored on return), g: their analytic gradient, both
 * bt_bert_total_floats(m) long; h: the step of the central difference
 * (3e-3; smaller where the loss has kinks nearby, e.g. max pooling). Returns
 * the number of elements outside 3e-2 relative + 5e-4 (each printed);
 * *checked counts them all. */
static int gradcheck_params(bt_bert *m, float *w, const float *g, gc_loss_fn loss, void *ctx, double h, int *checked)
{
    int bad = 0;
    *checked = 0;
    for (size_t i = 0; i < bt_bert_nparams(m); i++) {
        const bt_bert_param *p = bt_bert_param_at(m, i);
        size_t best = 0;
        for (size_t k = 1; k < p->numel; k++)
            if (fabsf(g[p->off + k]) > fabsf(g[p->off + best])) best = k;
        size_t picks[2] = {best, (p->numel * 7 / 11) % p->numel};
        for (int j = 0; j < 2; j++) {
            size_t at = p->off + picks[j];
            float keep = w[at];
            w[at] = keep + (float)h;
            bt_bert_upload_params(m, w);
            double lp = loss(m, ctx);
            w[at] = keep - (float)h;
            bt_bert_upload_params(m, w);
            double lm = loss(m, ctx);
            w[at] = keep;
            double fd = (lp - lm) / (2 * h), an = g[at];
            if (fabs(fd - an) > 3e-2 * fabs(an) + 5e-4) {
                bad++;
                fprintf(stderr, "%s[%zu]: analytic %.6g, finite difference %.6g\n", p->name, picks[j], an, fd);
            }
            (*checked)++;
        }
    }
    bt_bert_upload_params(m, w);
    return bad;
}

#endif
