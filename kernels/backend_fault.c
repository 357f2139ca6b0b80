/* kernels/backend_fault.c — the fault-injecting backend wrapper (see backend_fault.h).
 *
 * The wrapper is a copy of the inner backend's vtable with the same impl, so
 * every op it does not perturb is the inner backend's own function called on
 * the inner state; the perturbed op calls the inner op, then changes its
 * output with the inner backend's own ops (scale, add, convert, copy) or,
 * for noise, through download/upload, so it works on any device.
 * Must not: keep state between calls other than a scratch buffer, the hit
 * counter and the noise generator.
 */
#include "kernels/backend_fault.h"
#include "util/err.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    bt_backend be;      /* first: the ops get a bt_backend * that is this struct */
    bt_backend *inner;
    bt_fault_spec spec;
    long hits;
    void *tmp;          /* scratch on the inner device (adamw's old weights, F32 copies) */
    size_t tmp_bytes;
    uint64_t rng;       /* noise */
    char name[96];
} fault_be;

static const char *const kind_names[BT_FAULT_COUNT] = {
    "none", "matmul", "attention", "attention_bwd", "layernorm", "layernorm_bwd", "gelu",
    "embed", "embed_bwd", "xent", "dropout", "adamw", "sum_squares", "noise", "rel_attention", "rel_attention_bwd",
};

const char *bt_fault_name(bt_fault_kind k)
{
    return k >= 0 && k < BT_FAULT_COUNT ? kind_names[k] : "?";
}

int bt_fault_parse(const char *text, bt_fault_spec *out)
{
    memset(out, 0, sizeof *out);
    if (!text) text = "";
    const char *colon = strchr(text, ':');
    size_t klen = colon ? (size_t)(colon - text) : strlen(text);
    int kind = -1;
    for (int k = 0; k < BT_FAULT_COUNT; k++)
        if (strlen(kind_names[k]) == klen && !strncmp(kind_names[k], text, klen)) kind = k;
    if (kind < 0) {
        char list[256] = "";
        for (int k = 0; k < BT_FAULT_COUNT; k++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", k ? ", " : "", kind_names[k]);
        return bt_fail(BT_ECONFIG, "fault '%.80s': unknown kind; use one of %s, optionally followed by :REL "
                                   "(e.g. matmul:1e-3)", text, list);
    }
    out->kind = (bt_fault_kind)kind;
    out->rel = kind == BT_FAULT_NOISE ? 1e-7 : 1e-3;
    if (colon) {
        char *end = NULL;
        double r = strtod(colon + 1, &end);
        if (end == colon + 1 || *end || !(r > 0.0 && r <= 1.0))
            return bt_fail(BT_ECONFIG, "fault '%.80s': the size after ':' must be a number in (0, 1], e.g. %s:1e-3",
                           text, kind_names[kind]);
        out->rel = r;
    }
    return BT_OK;
}

static fault_be *F(bt_backend *be) { return (fault_be *)be; }

static void *scratch(fault_be *f, size_t bytes)
{
    if (bytes <= f->tmp_bytes) return f->tmp;
    if (f->tmp) f->inner->free(f->inner, f->tmp);
    f->tmp = f->inner->alloc(f->inner, bytes);
    f->tmp_bytes = f->tmp ? bytes : 0;
    if (!f->tmp) {
        fprintf(stderr, "baton: fault wrapper: cannot allocate %zu bytes of scratch: %s\n", bytes, bt_errmsg());
        exit(BT_EINTERNAL);
    }
    return f->tmp;
}

/* t *= s on the inner device, whatever t's float dtype. */
static void scale_any(fault_be *f, bt_tensor *t, float s)
{
    bt_backend *in = f->inner;
    if (t->dtype == BT_F32) {
        in->scale(in, t, s);
        return;
    }
    int64_t n = bt_numel(t);
    bt_tensor w = bt_view1(scratch(f, (size_t)n * 4), BT_F32, t->device, n);
    bt_tensor tv = bt_view1(t->data, t->dtype, t->device, n);
    in->convert(in, &tv, &w);
    in->scale(in, &w, s);
    in->convert(in, &w, &tv);
}

static double urand(fault_be *f) /* uniform [-1, 1) */
{
    f->rng ^= f->rng << 13;
    f->rng ^= f->rng >> 7;
    f->rng ^= f->rng << 17;
    return (double)(f->rng >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

/* Each element x += rel u (|x| + rms): rounding of the size a sum in another
 * order leaves (absolute, so elements near zero get a large relative error,
 * as in a GEMM with cancellation); an element that is exactly 0 stays 0, as
 * any device's sum of exact zeros (a gradient column of a ReLU unit dead for
 * the whole batch: noise there would turn into AdamW steps of lr). A 16-bit tensor is widened to F32,
 * perturbed and rounded back, so it changes where a correct device's sum
 * would round to the neighbouring 16-bit value. */
static void noise(fault_be *f, bt_tensor *t)
{
    if (!t || !t->data) return;
    bt_backend *in = f->inner;
    size_t n = (size_t)bt_numel(t);
    bt_tensor w = bt_view1(t->data, BT_F32, t->device, (int64_t)n);
    bt_tensor tv = bt_view1(t->data, t->dtype, t->device, (int64_t)n);
    if (t->dtype != BT_F32) {
        w.data = scratch(f, n * 4);
        in->convert(in, &tv, &w);
    }
    float *h = malloc(n * sizeof *h + 1);
    if (!h) return;
    in->download(in, h, w.data, n * sizeof *h);
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double)h[i] * h[i];
    double rms = n ? sqrt(ss / (double)n) : 0;
    for (size_t i = 0; i < n; i++) /* an exact 0 (a sum of exact zeros: a dead ReLU unit's gradient) stays 0 */
        if (h[i] != 0.0f) h[i] = (float)(h[i] + f->spec.rel * urand(f) * (fabs(h[i]) + rms));
    in->upload(in, w.data, h, n * sizeof *h);
    free(h);
    if (t->dtype != BT_F32) in->convert(in, &w, &tv);
}

/* Perturbs t for fault kind k (or with noise when the spec is noise and
 * noisy says this output is one noise touches). */
static void hit(fault_be *f, bt_fault_kind k, int noisy, bt_tensor *t)
{
    if (!t || !t->data) return;
    if (f->spec.kind == k) {
        f->hits++;
        scale_any(f, t, (float)(1.0 + f->spec.rel));
    } else if (f->spec.kind == BT_FAULT_NOISE && noisy) {
        f->hits++;
        noise(f, t);
    }
}

static void w_matmul(bt_backend *be, const bt_tensor *A, int transA, const bt_tensor *B, int transB, bt_tensor *C,
                     const bt_tensor *bias, float alpha, float beta, int epilogue, bt_tensor *pre_act)
{
    fault_be *f = F(be);
    f->inner->matmul(f->inner, A, transA, B, transB, C, bias, alpha, beta, epilogue, pre_act);
    hit(f, BT_FAULT_MATMUL, 1, C);
    if (epilogue != BT_EPI_NONE) hit(f, BT_FAULT_GELU, 0, C);
}

static void w_act_fwd(bt_backend *be, int act, const bt_tensor *x, bt_tensor *y)
{
    fault_be *f = F(be);
    f->inner->act_fwd(f->inner, act, x, y);
    if (act == BT_ACT_GELU_ERF || act == BT_ACT_GELU_TANH) hit(f, BT_FAULT_GELU, 0, y);
}

static void w_dropout(bt_backend *be, const bt_tensor *x, bt_tensor *y, float p, bt_dropout_key key)
{
    fault_be *f = F(be);
    f->inner->dropout(f->inner, x, y, p, key);
    if (p > 0.0f) hit(f, BT_FAULT_DROPOUT, 0, y);
}

static void w_ln_fwd(bt_backend *be, const bt_tensor *x, const bt_tensor *res, const bt_tensor *gamma,
                     const bt_tensor *beta, float eps, bt_tensor *y, bt_tensor *mean, bt_tensor *rstd,
                     bt_tensor *h_out)
{
    fault_be *f = F(be);
    f->inner->layernorm_fwd(f->inner, x, res, gamma, beta, eps, y, mean, rstd, h_out);
    hit(f, BT_FAULT_LAYERNORM, 1, y);
}

static void w_ln_bwd(bt_backend *be, const bt_tensor *h, const bt_tensor *dy, const bt_tensor *gamma,
                     const bt_tensor *mean, const bt_tensor *rstd, bt_tensor *dh, bt_tensor *dgamma,
                     bt_tensor *dbeta)
{
    fault_be *f = F(be);
    f->inner->layernorm_bwd(f->inner, h, dy, gamma, mean, rstd, dh, dgamma, dbeta);
    hit(f, BT_FAULT_LAYERNORM_BWD, 1, dh);
}

static void w_attn_fwd(bt_backend *be, const bt_tensor *qkv, const bt_tensor *mask, int B, int S, int H, int Dh,
                       float scale, float p_drop, bt_dropout_key key, bt_tensor *ctx, bt_tensor *probs,
                       bt_tensor *lse)
{
    fault_be *f = F(be);
    f->inner->attention_fwd(f->inner, qkv, mask, B, S, H, Dh, scale, p_drop, key, ctx, probs, lse);
    hit(f, BT_FAULT_ATTENTION, 1, ctx);
}

static void w_attn_bwd(bt_backend *be, const bt_tensor *qkv, const bt_tensor *mask, int B, int S, int H, int Dh,
                       float scale, float p_drop, bt_dropout_key key, const bt_tensor *ctx, const bt_tensor *probs,
                       const bt_tensor *lse, const bt_tensor *dctx, bt_tensor *dqkv)
{
    fault_be *f = F(be);
    f->inner->attention_bwd(f->inner, qkv, mask, B, S, H, Dh, scale, p_drop, key, ctx, probs, lse, dctx, dqkv);
    hit(f, BT_FAULT_ATTENTION_BWD, 1, dqkv);
}

static void w_rel_fwd(bt_backend *be, const bt_tensor *qkv, const bt_tensor *pos, const bt_tensor *relidx,
                      const bt_tensor *mask, const bt_rel_attn *a, bt_tensor *ctx, bt_tensor *probs)
{
    fault_be *f = F(be);
    f->inner->rel_attention_fwd(f->inner, qkv, pos, relidx, mask, a, ctx, probs);
    hit(f, BT_FAULT_REL_ATTENTION, 1, ctx);
}

static void w_rel_bwd(bt_backend *be, const bt_tensor *qkv, const bt_tensor *pos, const bt_tensor *relidx,
                      const bt_tensor *mask, const bt_rel_attn *a, const bt_tensor *probs, const bt_tensor *dctx,
                      bt_tensor *dqkv, bt_tensor *dpos)
{
    fault_be *f = F(be);
    f->inner->rel_attention_bwd(f->inner, qkv, pos, relidx, mask, a, probs, dctx, dqkv, dpos);
    hit(f, BT_FAULT_REL_ATTENTION_BWD, 1, dqkv);
    hit(f, BT_FAULT_REL_ATTENTION_BWD, 1, dpos);
}

static void w_embed_fwd(bt_backend *be, const bt_tensor *ids, const bt_tensor *pos_ids, const bt_tensor *type_ids,
                        const bt_tensor *word, const bt_tensor *pos, const bt_tensor *type, bt_tensor *out)
{
    fault_be *f = F(be);
    f->inner->embed_fwd(f->inner, ids, pos_ids, type_ids, word, pos, type, out);
    hit(f, BT_FAULT_EMBED, 0, out);
}

static void w_embed_bwd(bt_backend *be, const bt_tensor *ids, const bt_tensor *pos_ids, const bt_tensor *type_ids,
                        const bt_tensor *dout, int pad_id, bt_tensor *dword, bt_tensor *dpos, bt_tensor *dtype)
{
    fault_be *f = F(be);
    f->inner->embed_bwd(f->inner, ids, pos_ids, type_ids, dout, pad_id, dword, dpos, dtype);
    hit(f, BT_FAULT_EMBED_BWD, 0, dword);
    hit(f, BT_FAULT_EMBED_BWD, 0, dpos);
    hit(f, BT_FAULT_EMBED_BWD, 0, dtype);
}

static void w_xent(bt_backend *be, const bt_tensor *logits, const bt_tensor *labels, float grad_scale,
                   bt_tensor *loss, bt_tensor *dlogits)
{
    fault_be *f = F(be);
    f->inner->softmax_xent(f->inner, logits, labels, grad_scale, loss, dlogits);
    hit(f, BT_FAULT_XENT, 0, dlogits);
}

static void w_bce(bt_backend *be, const bt_tensor *logits, const bt_tensor *targets, float grad_scale,
                  bt_tensor *loss, bt_tensor *dlogits)
{
    fault_be *f = F(be);
    f->inner->bce_logits(f->inner, logits, targets, grad_scale, loss, dlogits);
    hit(f, BT_FAULT_XENT, 0, dlogits);
}

static void w_mse(bt_backend *be, const bt_tensor *pred, const bt_tensor *target, float grad_scale, bt_tensor *loss,
                  bt_tensor *dpred)
{
    fault_be *f = F(be);
    f->inner->mse(f->inner, pred, target, grad_scale, loss, dpred);
    hit(f, BT_FAULT_XENT, 0, dpred);
}

/* p_new = p_old + (1 + rel) (p_inner - p_old) = (1 + rel) p_inner - rel p_old */
static void w_adamw(bt_backend *be, bt_tensor *p, const bt_tensor *g, bt_tensor *m, bt_tensor *v,
                    const bt_adamw_args *a)
{
    fault_be *f = F(be);
    bt_backend *in = f->inner;
    int64_t n = bt_numel(p);
    bt_tensor old = bt_view1(scratch(f, (size_t)n * 4), BT_F32, p->device, n);
    in->copy(in, old.data, p->data, (size_t)n * 4);
    in->adamw(in, p, g, m, v, a);
    f->hits++;
    bt_tensor pv = bt_view1(p->data, BT_F32, p->device, n);
    in->scale(in, &pv, (float)(1.0 + f->spec.rel));
    in->scale(in, &old, (float)-f->spec.rel);
    in->add(in, &pv, &old, &pv);
}

static double w_sum_squares(bt_backend *be, const bt_tensor *ts, int n)
{
    fault_be *f = F(be);
    f->hits++;
    return f->inner->sum_squares(f->inner, ts, n) * (1.0 + f->spec.rel);
}

static size_t w_peak(bt_backend *be) { return F(be)->inner->peak_bytes(F(be)->inner); }

static void w_destroy(bt_backend *be)
{
    if (!be) return;
    fault_be *f = F(be);
    if (f->tmp) f->inner->free(f->inner, f->tmp);
    f->inner->destroy(f->inner);
    free(f);
}

bt_backend *bt_backend_fault_wrap(bt_backend *inner, const bt_fault_spec *spec)
{
    if (!inner) return NULL;
    if (!spec || spec->kind < 0 || spec->kind >= BT_FAULT_COUNT || !(spec->rel > 0.0 && spec->rel <= 1.0)) {
        inner->destroy(inner);
        bt_fail(BT_EINTERNAL, "fault wrapper: bad fault spec (a bug in the caller)");
        return NULL;
    }
    fault_be *f = calloc(1, sizeof *f);
    if (!f) {
        inner->destroy(inner);
        bt_fail(BT_EINTERNAL, "fault wrapper: out of memory");
        return NULL;
    }
    f->be = *inner; /* every op, impl and device of the inner backend */
    f->inner = inner;
    f->spec = *spec;
    f->rng = 0x9E3779B97F4A7C15ull;
    if (spec->kind == BT_FAULT_NONE) snprintf(f->name, sizeof f->name, "%s+wrap", inner->name);
    else snprintf(f->name, sizeof f->name, "%s+fault(%s:%g)", inner->name, bt_fault_name(spec->kind), spec->rel);
    f->be.name = f->name;
    f->be.destroy = w_destroy;
    f->be.peak_bytes = w_peak;
    switch (spec->kind) {
    case BT_FAULT_NONE: break;
    case BT_FAULT_MATMUL: f->be.matmul = w_matmul; break;
    case BT_FAULT_ATTENTION: f->be.attention_fwd = w_attn_fwd; break;
    case BT_FAULT_ATTENTION_BWD: f->be.attention_bwd = w_attn_bwd; break;
    case BT_FAULT_LAYERNORM: f->be.layernorm_fwd = w_ln_fwd; break;
    case BT_FAULT_LAYERNORM_BWD: f->be.layernorm_bwd = w_ln_bwd; break;
    case BT_FAULT_GELU: f->be.act_fwd = w_act_fwd; f->be.matmul = w_matmul; break;
    case BT_FAULT_EMBED: f->be.embed_fwd = w_embed_fwd; break;
    case BT_FAULT_EMBED_BWD: f->be.embed_bwd = w_embed_bwd; break;
    case BT_FAULT_XENT: f->be.softmax_xent = w_xent; f->be.bce_logits = w_bce; f->be.mse = w_mse; break;
    case BT_FAULT_DROPOUT: f->be.dropout = w_dropout; break;
    case BT_FAULT_ADAMW: f->be.adamw = w_adamw; break;
    case BT_FAULT_SUM_SQUARES: f->be.sum_squares = w_sum_squares; break;
    case BT_FAULT_REL_ATTENTION: f->be.rel_attention_fwd = inner->rel_attention_fwd ? w_rel_fwd : NULL; break;
    case BT_FAULT_REL_ATTENTION_BWD: f->be.rel_attention_bwd = inner->rel_attention_bwd ? w_rel_bwd : NULL; break;
    case BT_FAULT_NOISE:
        f->be.matmul = w_matmul;
        f->be.attention_fwd = w_attn_fwd;
        f->be.attention_bwd = w_attn_bwd;
        f->be.layernorm_fwd = w_ln_fwd;
        f->be.layernorm_bwd = w_ln_bwd;
        if (inner->rel_attention_fwd) f->be.rel_attention_fwd = w_rel_fwd;
        if (inner->rel_attention_bwd) f->be.rel_attention_bwd = w_rel_bwd;
        break;
    case BT_FAULT_COUNT: break;
    }
    return &f->be;
}

long bt_backend_fault_hits(const bt_backend *be)
{
    if (!be || be->destroy != w_destroy) return -1;
    return ((const fault_be *)be)->hits;
}
