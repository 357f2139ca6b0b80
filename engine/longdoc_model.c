/* engine/longdoc_model.c — hierarchical classification of long documents (see
 * longdoc_model.h for what this file owns).
 *
 * One document of n content tokens, K kept chunks, D hidden, NL labels:
 *   h      [K, D]  pooled chunk vectors (bt_bert_encode_pooled, C chunks a pass)
 *   out    [D]     pool(h): mean | max | attention (engine/longdoc.c)
 *   pd     [D]     dropout(out), keys (seed, step, k*2^20 + i, 0, DOC_CLASSIFIER)
 *   logits [NL]    classifier.weight pd + classifier.bias
 *   loss           cross-entropy with the document's label
 * Backward: dlogits -> classifier grads (host) -> dout -> dh [K, D] (+ the
 * attention pooling grads) -> per chunk micro-batch bt_bert_backward_pooled.
 * Sums on the host run in double, in index order (deterministic).
 */
#include "engine/longdoc_model.h"

#include "kernels/backend.h"
#include "kernels/philox.h"
#include "util/err.h"
#include "util/mem.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MICRO_SHIFT 20 /* document chunk passes of trainer micro-batch k: k << 20 | j */

struct bt_longdoc {
    bt_bert *m;
    bt_longdoc_opts o;
    int D, NL, A, C, S;
    float p_drop;
    const bt_bert_param *pcw, *pcb, *pdw, *pdb, *pdv;
    /* one chunk micro-batch */
    int32_t *ids;        /* [C, S] */
    int32_t *lens;       /* [C] */
    int *len_i;          /* [C] */
    const int32_t **ids_p; /* [C] */
    /* one document (grow with the longest document) */
    size_t cap;          /* chunks the buffers hold */
    float *h, *dh;       /* [cap, D] */
    float *u;            /* [cap, A] */
    float *alpha;        /* [cap] */
    /* head (host) */
    float *out, *pd, *dout, *logits, *dlog; /* [D], [D], [D], [NL], [NL] */
    uint8_t *keep;       /* [D] */
    int32_t *argmax;     /* [D] */
    float *wc, *bc, *wa, *ba, *va;      /* parameters: [NL,D] [NL] [A,D] [A] [A] */
    float *gwc, *gbc, *gwa, *gba, *gva; /* their gradients of the current micro-batch */
};

int bt_longdoc_create(bt_bert *m, const bt_longdoc_opts *o, bt_longdoc **out)
{
    *out = NULL;
    if (bt_bert_task(m) != BT_TASK_SEQ_CLS)
        return bt_fail(BT_EINTERNAL, "long documents need a sequence-classification model");
    const bt_bert_config *c = bt_bert_cfg(m);
    if (c->problem != BT_LOSS_SINGLE)
        return bt_fail(BT_ECONFIG, "long-document classification supports single-label classes only "
                                   "(problem_type single_label_classification)");
    int rc = bt_longdoc_config_check(&o->chunk);
    if (rc) return rc;
    if (o->chunk_batch < 1) return bt_fail(BT_ECONFIG, "chunk_batch %d: must be >= 1", o->chunk_batch);
    bt_longdoc *ld = bt_xcalloc(1, sizeof *ld);
    ld->m = m;
    ld->o = *o;
    ld->D = c->hidden;
    ld->NL = c->num_labels;
    ld->C = o->chunk_batch;
    ld->S = o->chunk.max_seq_len;
    ld->p_drop = c->p_classifier;
    ld->pcw = bt_bert_find(m, "classifier.weight");
    ld->pcb = bt_bert_find(m, "classifier.bias");
    ld->pdw = bt_bert_find(m, "doc_pooler.dense.weight");
    ld->pdb = bt_bert_find(m, "doc_pooler.dense.bias");
    ld->pdv = bt_bert_find(m, "doc_pooler.score.weight");
    if (o->pool == BT_DOC_POOL_ATTN && !(ld->pdw && ld->pdb && ld->pdv)) {
        free(ld);
        return bt_fail(BT_EINTERNAL, "attention pooling: the model was created without doc_attn_dim");
    }
    ld->A = o->pool == BT_DOC_POOL_ATTN ? (int)ld->pdw->shape[0] : 0;
    size_t D = (size_t)ld->D, NL = (size_t)ld->NL, A = (size_t)ld->A, C = (size_t)ld->C, S = (size_t)ld->S;
    ld->ids = bt_xcalloc(C * S, sizeof *ld->ids);
    ld->lens = bt_xcalloc(C, sizeof *ld->lens);
    ld->len_i = bt_xcalloc(C, sizeof *ld->len_i);
    ld->ids_p = bt_xcalloc(C, sizeof *ld->ids_p);
    ld->out = bt_xcalloc(D, sizeof(float));
    ld->pd = bt_xcalloc(D, sizeof(float));
    ld->dout = bt_xcalloc(D, sizeof(float));
    ld->keep = bt_xcalloc(D, 1);
    ld->argmax = bt_xcalloc(D, sizeof(int32_t));
    ld->logits = bt_xcalloc(NL, sizeof(float));
    ld->dlog = bt_xcalloc(NL, sizeof(float));
    ld->wc = bt_xcalloc(NL * D, sizeof(float));
    ld->gwc = bt_xcalloc(NL * D, sizeof(float));
    ld->bc = bt_xcalloc(NL, sizeof(float));
    ld->gbc = bt_xcalloc(NL, sizeof(float));
    if (A) {
        ld->wa = bt_xcalloc(A * D, sizeof(float));
        ld->gwa = bt_xcalloc(A * D, sizeof(float));
        ld->ba = bt_xcalloc(A, sizeof(float));
        ld->gba = bt_xcalloc(A, sizeof(float));
        ld->va = bt_xcalloc(A, sizeof(float));
        ld->gva = bt_xcalloc(A, sizeof(float));
    }
    *out = ld;
    return BT_OK;
}

void bt_longdoc_free(bt_longdoc *ld)
{
    if (!ld) return;
    free(ld->ids); free(ld->lens); free(ld->len_i); free(ld->ids_p);
    free(ld->h); free(ld->dh); free(ld->u); free(ld->alpha);
    free(ld->out); free(ld->pd); free(ld->dout); free(ld->keep); free(ld->argmax);
    free(ld->logits); free(ld->dlog);
    free(ld->wc); free(ld->gwc); free(ld->bc); free(ld->gbc);
    free(ld->wa); free(ld->gwa); free(ld->ba); free(ld->gba); free(ld->va); free(ld->gva);
    free(ld);
}

size_t bt_longdoc_doc_chunks(const bt_longdoc *ld, size_t len) { return bt_longdoc_n_chunks(len, &ld->o.chunk); }

static void ensure_chunks(bt_longdoc *ld, size_t k)
{
    if (k <= ld->cap) return;
    size_t cap = ld->cap ? ld->cap : 8;
    while (cap < k) cap *= 2;
    size_t D = (size_t)ld->D, A = (size_t)(ld->A > 0 ? ld->A : 1);
    free(ld->h); free(ld->dh); free(ld->u); free(ld->alpha);
    ld->h = bt_xmalloc(cap * D * sizeof(float));
    ld->dh = bt_xmalloc(cap * D * sizeof(float));
    ld->u = bt_xmalloc(cap * A * sizeof(float));
    ld->alpha = bt_xmalloc(cap * sizeof(float));
    ld->cap = cap;
}

/* The head parameters as they are now (they change only at optimizer steps). */
static void read_head(bt_longdoc *ld)
{
    bt_bert_read_param(ld->m, ld->pcw, ld->wc);
    bt_bert_read_param(ld->m, ld->pcb, ld->bc);
    if (ld->A) {
        bt_bert_read_param(ld->m, ld->pdw, ld->wa);
        bt_bert_read_param(ld->m, ld->pdb, ld->ba);
        bt_bert_read_param(ld->m, ld->pdv, ld->va);
    }
}

/* Encodes every kept chunk of the document, C at a time, into h; with dh
 * (not NULL) runs each pass's backward right after it (recomputation). */
static int encode_pass(bt_longdoc *ld, const int32_t *doc, size_t len, int train, uint32_t step, uint32_t micro0,
                       const float *dh)
{
    bt_chunk_iter it;
    bt_chunk_iter_init(&it, doc, len, &ld->o.chunk, ld->C, ld->o.cls_id, ld->o.sep_id, ld->o.pad_id);
    size_t first = 0;
    uint32_t j = 0;
    int got;
    while ((got = bt_chunk_iter_next(&it, ld->ids, NULL, ld->lens, &first)) > 0) {
        for (int r = 0; r < got; r++) {
            ld->ids_p[r] = ld->ids + (size_t)r * (size_t)ld->S;
            ld->len_i[r] = ld->lens[r];
        }
        bt_batch b = {.n = got, .ids = ld->ids_p, .len = ld->len_i};
        int rc = bt_bert_encode_pooled(ld->m, &b, train, step, micro0 + j, ld->h + first * (size_t)ld->D);
        if (!rc && dh) rc = bt_bert_backward_pooled(ld->m, dh + first * (size_t)ld->D, step, micro0 + j);
        if (rc) return rc;
        j++;
    }
    return BT_OK;
}

/* Document head forward on h [K, D]: logits; returns the cross-entropy with
 * label (label < 0: none, returns 0). train: dropout keyed (step, micro). */
static double head_forward(bt_longdoc *ld, int K, int train, uint32_t step, uint32_t micro, int32_t label)
{
    int D = ld->D, NL = ld->NL;
    switch (ld->o.pool) {
    case BT_DOC_POOL_MEAN: bt_pool_mean_fwd(ld->h, K, D, ld->out); break;
    case BT_DOC_POOL_MAX: bt_pool_max_fwd(ld->h, K, D, ld->out, ld->argmax); break;
    case BT_DOC_POOL_ATTN:
        bt_pool_attn_fwd(ld->h, K, D, ld->wa, ld->ba, ld->va, ld->A, ld->out, ld->u, ld->alpha);
        break;
    }
    float p = train ? ld->p_drop : 0.0f, inv = p > 0.0f ? 1.0f / (1.0f - p) : 1.0f;
    for (int d = 0; d < D; d++) {
        ld->keep[d] = p > 0.0f ? (uint8_t)bt_dropout_keep_raw(ld->o.seed, step, micro, 0, BT_SITE_DOC_CLASSIFIER,
                                                               (uint64_t)d, p)
                               : 1;
        ld->pd[d] = ld->keep[d] ? ld->out[d] * inv : 0.0f;
    }
    double mx = -INFINITY;
    for (int c = 0; c < NL; c++) {
        double s = ld->bc[c];
        const float *w = ld->wc + (size_t)c * (size_t)D;
        for (int d = 0; d < D; d++) s += (double)w[d] * ld->pd[d];
        ld->logits[c] = (float)s;
        if (s > mx) mx = s;
    }
    if (label < 0) return 0.0;
    double z = 0;
    for (int c = 0; c < NL; c++) z += exp((double)ld->logits[c] - mx);
    double lse = mx + log(z);
    for (int c = 0; c < NL; c++) ld->dlog[c] = (float)exp((double)ld->logits[c] - lse);
    return lse - ld->logits[label];
}

/* Backward of the head: dlog = (softmax - onehot) x scale; classifier and
 * pooling gradients into the host accumulators; dh [K, D]. */
static void head_backward(bt_longdoc *ld, int K, int32_t label, float scale)
{
    int D = ld->D, NL = ld->NL;
    for (int c = 0; c < NL; c++) ld->dlog[c] = (ld->dlog[c] - (c == label ? 1.0f : 0.0f)) * scale;
    for (int c = 0; c < NL; c++) {
        float g = ld->dlog[c];
        float *gw = ld->gwc + (size_t)c * (size_t)D;
        for (int d = 0; d < D; d++) gw[d] += g * ld->pd[d];
        ld->gbc[c] += g;
    }
    float p = ld->p_drop, inv = p > 0.0f ? 1.0f / (1.0f - p) : 1.0f;
    for (int d = 0; d < D; d++) {
        double s = 0;
        for (int c = 0; c < NL; c++) s += (double)ld->dlog[c] * ld->wc[(size_t)c * (size_t)D + (size_t)d];
        ld->dout[d] = ld->keep[d] ? (float)s * inv : 0.0f;
    }
    switch (ld->o.pool) {
    case BT_DOC_POOL_MEAN: bt_pool_mean_bwd(ld->dout, K, D, ld->dh); break;
    case BT_DOC_POOL_MAX: bt_pool_max_bwd(ld->dout, ld->argmax, K, D, ld->dh); break;
    case BT_DOC_POOL_ATTN:
        bt_pool_attn_bwd(ld->h, K, D, ld->wa, ld->va, ld->A, ld->u, ld->alpha, ld->dout, ld->dh, ld->gwa, ld->gba,
                         ld->gva);
        break;
    }
}

int bt_longdoc_forward_backward(bt_longdoc *ld, const int32_t *const *doc, const size_t *len, const int32_t *label,
                                int n, float grad_scale, uint32_t step, uint32_t k, float *loss)
{
    if (n < 1) return bt_fail(BT_EINTERNAL, "bt_longdoc_forward_backward: no documents");
    if (k >= (1u << (32 - MICRO_SHIFT))) return bt_fail(BT_ECONFIG, "grad_accum %u is too large for long documents", k);
    read_head(ld);
    size_t D = (size_t)ld->D, NL = (size_t)ld->NL, A = (size_t)ld->A;
    memset(ld->gwc, 0, NL * D * sizeof(float));
    memset(ld->gbc, 0, NL * sizeof(float));
    if (A) {
        memset(ld->gwa, 0, A * D * sizeof(float));
        memset(ld->gba, 0, A * sizeof(float));
        memset(ld->gva, 0, A * sizeof(float));
    }
    uint32_t micro_base = k << MICRO_SHIFT, passes = 0;
    double loss_sum = 0;
    float scale = grad_scale / (float)n;
    for (int i = 0; i < n; i++) {
        if (label[i] < 0 || label[i] >= ld->NL)
            return bt_fail(BT_EDATA, "document %d of the batch: label %d outside [0,%d)", i, label[i], ld->NL);
        size_t K = bt_longdoc_n_chunks(len[i], &ld->o.chunk);
        size_t n_pass = (K + (size_t)ld->C - 1) / (size_t)ld->C;
        if (passes + n_pass >= (1u << MICRO_SHIFT))
            return bt_fail(BT_EDATA, "document %d of the batch has %zu chunks: too many for one micro-batch", i, K);
        ensure_chunks(ld, K);
        uint32_t micro0 = micro_base + passes, head_micro = micro_base + (uint32_t)i;
        int rc;
        if (n_pass == 1) {
            /* fits in one encoder pass: keep its activations, no recomputation */
            bt_chunk_iter it;
            bt_chunk_iter_init(&it, doc[i], len[i], &ld->o.chunk, ld->C, ld->o.cls_id, ld->o.sep_id, ld->o.pad_id);
            int got = bt_chunk_iter_next(&it, ld->ids, NULL, ld->lens, NULL);
            for (int r = 0; r < got; r++) {
                ld->ids_p[r] = ld->ids + (size_t)r * (size_t)ld->S;
                ld->len_i[r] = ld->lens[r];
            }
            bt_batch b = {.n = got, .ids = ld->ids_p, .len = ld->len_i};
            rc = bt_bert_encode_pooled(ld->m, &b, 1, step, micro0, ld->h);
            if (rc) return rc;
            loss_sum += head_forward(ld, (int)K, 1, step, head_micro, label[i]);
            head_backward(ld, (int)K, label[i], scale);
            rc = bt_bert_backward_pooled(ld->m, ld->dh, step, micro0);
        } else {
            rc = encode_pass(ld, doc[i], len[i], 1, step, micro0, NULL);
            if (rc) return rc;
            loss_sum += head_forward(ld, (int)K, 1, step, head_micro, label[i]);
            head_backward(ld, (int)K, label[i], scale);
            rc = encode_pass(ld, doc[i], len[i], 1, step, micro0, ld->dh);
        }
        if (rc) return bt_fail_context(rc, "document %d of the batch (%zu tokens, %zu chunks)", i, len[i], K);
        passes += (uint32_t)n_pass;
    }
    bt_bert_add_grad(ld->m, ld->pcw, ld->gwc);
    bt_bert_add_grad(ld->m, ld->pcb, ld->gbc);
    if (A) {
        bt_bert_add_grad(ld->m, ld->pdw, ld->gwa);
        bt_bert_add_grad(ld->m, ld->pdb, ld->gba);
        bt_bert_add_grad(ld->m, ld->pdv, ld->gva);
    }
    *loss = (float)(loss_sum / n);
    return BT_OK;
}

int bt_longdoc_logits(bt_longdoc *ld, const int32_t *doc, size_t len, float *logits)
{
    read_head(ld);
    size_t K = bt_longdoc_n_chunks(len, &ld->o.chunk);
    ensure_chunks(ld, K);
    int rc = encode_pass(ld, doc, len, 0, 0, 0, NULL);
    if (rc) return rc;
    head_forward(ld, (int)K, 0, 0, 0, -1);
    memcpy(logits, ld->logits, (size_t)ld->NL * sizeof(float));
    return BT_OK;
}
