/* kernels/cpu/cpu_attention.c — multi-head softmax attention, forward and
 * backward, for the CPU backend.
 *
 * Owns: the (b, h) loop and the two backward kernels. Each (batch, head) pair
 * is one unit of work handed to one OpenMP thread (schedule(static)); inside
 * it the products run as single-threaded OpenBLAS sgemm calls straight on the
 * strided qkv layout (no copies), the mask, softmax and dropout row by row in
 * between. Per-thread buffers come from the backend's scratch (cpu_scratch,
 * sized by kernels/workspace.h), so they count in peak_bytes.
 * Must not: know about BERT layers or the engine's buffers beyond the shapes
 * documented in kernels/backend.h.
 * F16/BF16 qkv: each (b, h) widens its q, k, v (and dctx) rows into F32
 * blocks, runs the same F32 products, and rounds ctx (dq, dk, dv) once on
 * store, as the CUDA kernels do.
 *
 * Semantics (as Hugging Face BertSelfAttention, eager path):
 *   s[i,j]  = (q_i . k_j) * scale + (mask[b,j] == 0 ? -FLT_MAX : 0)
 *   P[i,:]  = softmax(s[i,:])            (fp32, row max subtracted, * 1/sum)
 *   Pd      = P * keep / (1 - p)         (keep: Philox, element index = flat
 *                                          index into [B,H,S,S])
 *   ctx_i   = sum_j Pd[i,j] v_j
 * probs (if given) receives P (pre-dropout); lse (if given) max + log(sum).
 * Backward: dPd = dctx V^T; dV = Pd^T dctx; dP = dPd * keep/(1-p);
 * dS = P * (dP - rowsum(P * dP)); dQ = scale dS K; dK = scale dS^T Q.
 *
 * Forward: tiles of BT_CPU_ATT_BQ query rows; a tile's scores [BQ,S] live in
 * probs when the caller keeps them, else in per-thread scratch, so the output
 * is the same bits either way and memory is O(BQ S) per thread.
 * Backward, two kernels chosen by the caller (kernels/backend.h):
 *  - probs given: the forward's P is read back (fastest at short S, but the
 *    caller keeps B*H*S*S floats per layer);
 *  - probs NULL: the scores of each query tile are recomputed from q, k and
 *    lse (P = exp(s - lse); a row whose keys are all padding has lse =
 *    -FLT_MAX and P = 1/S), the dropout mask regenerated from Philox, and dK,
 *    dV accumulated over the tiles in order (one thread per (b, h), so the
 *    result does not depend on the thread count). FlashAttention's backward,
 *    with full key rows per tile (S fits a CPU cache line of work).
 * The two agree within float rounding (tests/unit/test_ops_attention.c: 1e-5
 * relative in F32).
 */
#include "kernels/cpu/cpu_internal.h"
#include "kernels/workspace.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define BQ BT_CPU_ATT_BQ
#define ATT_DEAD (-1.0e38f) /* lse below this: every key of the row was padding */

/* Softmax of one row of n scores in place (with the additive mask bias);
 * returns the log-sum-exp. */
static float softmax_row(float *s, const float *bias, int n)
{
    float mx = -INFINITY;
    for (int j = 0; j < n; j++) {
        s[j] += bias[j];
        mx = s[j] > mx ? s[j] : mx;
    }
    float sum = 0.0f;
    for (int j = 0; j < n; j++) {
        s[j] = expf(s[j] - mx);
        sum += s[j];
    }
    float inv = 1.0f / sum;
#pragma omp simd
    for (int j = 0; j < n; j++) s[j] *= inv;
    return mx + logf(sum);
}

/* P from recomputed scores s (in place) and the row's lse. */
static void recompute_row(float *s, const float *bias, int n, float lse)
{
    if (lse < ATT_DEAD) { /* every key is padding: the forward's softmax was uniform */
        float u = 1.0f / (float)n;
        for (int j = 0; j < n; j++) s[j] = u;
        return;
    }
    for (int j = 0; j < n; j++) s[j] = expf((s[j] + bias[j]) - lse);
}

static void check_qkv(const char *who, const bt_tensor *qkv, const bt_tensor *mask, int B, int S,
                      int H, int Dh)
{
    CPU_CHECK(cpu_is_float(qkv->dtype) && bt_numel(qkv) == (int64_t)B * S * 3 * H * Dh,
              "%s: qkv must be float [B=%d,S=%d,3,H=%d,Dh=%d] (numel %lld)", who, B, S, H, Dh,
              (long long)bt_numel(qkv));
    CPU_CHECK(mask == NULL || (mask->dtype == BT_I32 && bt_numel(mask) == (int64_t)B * S),
              "%s: mask must be int32 [B=%d,S=%d]", who, B, S);
}

/* Rows [n] of one head of a 16-bit [B,S,.] tensor (row stride ld, head
 * offset off) widened into a contiguous F32 [n,Dh] block, and back. */
static void widen_head(const bt_tensor *t, int64_t base, int64_t ld, int n, int Dh, float *out)
{
    for (int i = 0; i < n; i++) cpu_widen(t->dtype, t->data, base + (int64_t)i * ld, Dh, out + (size_t)i * Dh);
}
static void narrow_head(bt_tensor *t, int64_t base, int64_t ld, int n, int Dh, const float *in)
{
    for (int i = 0; i < n; i++) cpu_narrow(t->dtype, t->data, base + (int64_t)i * ld, Dh, in + (size_t)i * Dh);
}

/* Additive mask bias row for batch b: 0 for real tokens, -FLT_MAX for padding
 * (torch.finfo(float32).min, as HF's extended attention mask). */
static void mask_bias(const bt_tensor *mask, int b, int S, float *out)
{
    const int32_t *m = mask ? I32P(mask) + (int64_t)b * S : NULL;
    for (int j = 0; j < S; j++) out[j] = (m && m[j] == 0) ? -FLT_MAX : 0.0f;
}

/* Pd rows [n,S] = P * dropout multipliers of rows i0.. of head bh. */
static void drop_rows(const bt_dropout_key *key, int64_t bh, int S, int i0, int n, float p, float dscale,
                      const float *P, float *Pd, float *mult)
{
    for (int i = 0; i < n; i++) {
        cpu_dropout_mult(key, ((uint64_t)bh * S + (uint64_t)(i0 + i)) * (uint64_t)S, S, p, dscale, mult);
        const float *pr = P + (size_t)i * S;
        float *dr = Pd + (size_t)i * S;
#pragma omp simd
        for (int j = 0; j < S; j++) dr[j] = pr[j] * mult[j];
    }
}

/* The backward's dropout on rows i0..i0+n: Pd = P * mult and dP *= mult with
 * the forward's multipliers (regenerated once per row). */
static void drop_both(const bt_dropout_key *key, int64_t bh, int S, int i0, int n, float p, float dscale,
                      const float *P, float *Pd, float *dP, float *mult)
{
    for (int i = 0; i < n; i++) {
        cpu_dropout_mult(key, ((uint64_t)bh * S + (uint64_t)(i0 + i)) * (uint64_t)S, S, p, dscale, mult);
        const float *pr = P + (size_t)i * S;
        float *dr = Pd + (size_t)i * S, *gr = dP + (size_t)i * S;
#pragma omp simd
        for (int j = 0; j < S; j++) {
            dr[j] = pr[j] * mult[j];
            gr[j] *= mult[j];
        }
    }
}

/* q, k, v (and a ctx/dctx pointer) of one (b, h): into the tensor when F32,
 * else widened into the thread's blocks. */
typedef struct {
    const float *q, *k, *v;
    int lq;          /* row stride of q, k, v */
    int64_t qoff, coff;
} head_view;

static head_view head_of(const bt_tensor *qkv, int b, int h, int S, int H, int Dh, float *wq)
{
    const int ld = 3 * H * Dh;
    head_view hv;
    hv.qoff = (int64_t)b * S * ld + (int64_t)h * Dh;
    hv.coff = (int64_t)b * S * H * Dh + (int64_t)h * Dh;
    if (qkv->dtype == BT_F32) {
        hv.q = F32P(qkv) + hv.qoff, hv.k = hv.q + H * Dh, hv.v = hv.q + 2 * H * Dh, hv.lq = ld;
    } else {
        size_t sd = (size_t)S * Dh;
        widen_head(qkv, hv.qoff, ld, S, Dh, wq);
        widen_head(qkv, hv.qoff + H * Dh, ld, S, Dh, wq + sd);
        widen_head(qkv, hv.qoff + 2 * H * Dh, ld, S, Dh, wq + 2 * sd);
        hv.q = wq, hv.k = wq + sd, hv.v = wq + 2 * sd, hv.lq = Dh;
    }
    return hv;
}

void cpu_attention_fwd(bt_backend *be, const bt_tensor *qkv, const bt_tensor *mask, int B, int S,
                       int H, int Dh, float scale, float p_drop, bt_dropout_key key, bt_tensor *ctx,
                       bt_tensor *probs, bt_tensor *lse)
{
    check_qkv("attention_fwd", qkv, mask, B, S, H, Dh);
    CPU_CHECK(ctx->dtype == qkv->dtype && bt_numel(ctx) == (int64_t)B * S * H * Dh,
              "attention_fwd: ctx must be [B,S,H,Dh] of qkv's dtype");
    CPU_CHECK(probs == NULL || (probs->dtype == BT_F32 && bt_numel(probs) == (int64_t)B * H * S * S),
              "attention_fwd: probs must be F32 [B,H,S,S]");
    CPU_CHECK(lse == NULL || (lse->dtype == BT_F32 && bt_numel(lse) == (int64_t)B * H * S),
              "attention_fwd: lse must be F32 [B,H,S]");
    const int lp = qkv->dtype != BT_F32; /* 16-bit: each head is widened to F32 first */
    float *Pall = probs ? F32P(probs) : NULL;
    float *L = lse ? F32P(lse) : NULL;
    const int ldc = H * Dh;
    const float dscale = cpu_dropout_scale(p_drop);
    const int nt = cpu_nt(be), need_pd = p_drop > 0.0f;
    const size_t per = bt_ws_cpu_att_fwd_thread(S, Dh, need_pd, Pall != NULL, lp);
    float *ws = cpu_scratch(be, bt_ws_cpu_attention(0, B, S, H, Dh, need_pd, Pall != NULL, lp, nt));

#pragma omp parallel num_threads(nt)
    {
        float *own = ws + per * (size_t)cpu_thread_id();
        size_t tile = (size_t)BQ * S;
        float *tbuf = own, *Pd_buf = tbuf + (Pall ? 0 : tile);
        float *bias = Pd_buf + (need_pd ? tile : 0), *mult = bias + S;
        float *wq = mult + S, *hc = wq + 3 * (size_t)S * Dh; /* lp only */
        int last_b = -1;
#pragma omp for schedule(static)
        for (int bh = 0; bh < B * H; bh++) {
            int b = bh / H, h = bh % H;
            if (b != last_b) { mask_bias(mask, b, S, bias); last_b = b; }
            head_view hv = head_of(qkv, b, h, S, H, Dh, wq);
            for (int i0 = 0; i0 < S; i0 += BQ) {
                int n = S - i0 < BQ ? S - i0 : BQ;
                float *P = Pall ? Pall + ((int64_t)bh * S + i0) * S : tbuf;
                cpu_sgemm(0, 1, n, S, Dh, scale, hv.q + (size_t)i0 * hv.lq, hv.lq, hv.k, hv.lq, 0.0f, P, S);
                for (int i = 0; i < n; i++) {
                    float l = softmax_row(P + (size_t)i * S, bias, S);
                    if (L) L[(int64_t)bh * S + i0 + i] = l;
                }
                const float *Pd = P;
                if (need_pd) {
                    drop_rows(&key, bh, S, i0, n, p_drop, dscale, P, Pd_buf, mult);
                    Pd = Pd_buf;
                }
                if (lp) {
                    cpu_sgemm(0, 0, n, Dh, S, 1.0f, Pd, S, hv.v, hv.lq, 0.0f, hc, Dh);
                    narrow_head(ctx, hv.coff + (int64_t)i0 * ldc, ldc, n, Dh, hc);
                } else {
                    cpu_sgemm(0, 0, n, Dh, S, 1.0f, Pd, S, hv.v, hv.lq, 0.0f, F32P(ctx) + hv.coff + (int64_t)i0 * ldc,
                              ldc);
                }
            }
        }
    }
}

/* Gradient outputs of one (b, h): into dqkv when F32, else F32 blocks that are
 * rounded into dqkv at the end. */
typedef struct {
    float *dq, *dk, *dv;
    const float *dc;
    int lcx;         /* row stride of dc */
} grad_view;

static grad_view grads_of(const bt_tensor *dctx, bt_tensor *dqkv, const head_view *hv, int S, int H, int Dh,
                          float *wg)
{
    grad_view g;
    if (dqkv->dtype == BT_F32) {
        g.dq = F32P(dqkv) + hv->qoff, g.dk = g.dq + H * Dh, g.dv = g.dq + 2 * H * Dh;
        g.dc = F32P(dctx) + hv->coff, g.lcx = H * Dh;
    } else {
        size_t sd = (size_t)S * Dh;
        widen_head(dctx, hv->coff, H * Dh, S, Dh, wg);
        g.dc = wg, g.lcx = Dh;
        g.dq = wg + sd, g.dk = wg + 2 * sd, g.dv = wg + 3 * sd;
    }
    return g;
}

static void store_grads(bt_tensor *dqkv, const head_view *hv, const grad_view *g, int S, int H, int Dh)
{
    if (dqkv->dtype == BT_F32) return;
    const int ld = 3 * H * Dh;
    narrow_head(dqkv, hv->qoff, ld, S, Dh, g->dq);
    narrow_head(dqkv, hv->qoff + H * Dh, ld, S, Dh, g->dk);
    narrow_head(dqkv, hv->qoff + 2 * H * Dh, ld, S, Dh, g->dv);
}

/* dS = P * (dP - sum_j P dP) for n rows of S, in place in dP. */
static void softmax_grad_rows(const float *P, float *dP, int n, int S)
{
    for (int i = 0; i < n; i++) {
        const float *pr = P + (size_t)i * S;
        float *gr = dP + (size_t)i * S;
        double dot = 0.0;
        for (int j = 0; j < S; j++) dot += (double)pr[j] * gr[j];
        float d = (float)dot;
#pragma omp simd
        for (int j = 0; j < S; j++) gr[j] = pr[j] * (gr[j] - d);
    }
}

typedef struct {
    const bt_tensor *qkv, *mask, *dctx;
    bt_tensor *dqkv;
    const float *Pall, *L;
    int B, S, H, Dh;
    float scale, p, dscale;
    bt_dropout_key key;
} bwd_args;

/* One (b, h) from the stored probabilities: four S x S products. */
static void bwd_head_probs(const bwd_args *a, int bh, float *own)
{
    const int S = a->S, Dh = a->Dh, b = bh / a->H, h = bh % a->H, need_pd = a->p > 0.0f;
    size_t ss = (size_t)S * S;
    float *dP = own, *Pd_buf = dP + ss, *mult = Pd_buf + (need_pd ? ss : 0), *wq = mult + S;
    head_view hv = head_of(a->qkv, b, h, S, a->H, Dh, wq);
    grad_view g = grads_of(a->dctx, a->dqkv, &hv, S, a->H, Dh, wq + 3 * (size_t)S * Dh);
    const float *P = a->Pall + (int64_t)bh * ss;
    /* dPd [S,S] = dctx [S,Dh] @ v^T */
    cpu_sgemm(0, 1, S, S, Dh, 1.0f, g.dc, g.lcx, hv.v, hv.lq, 0.0f, dP, S);
    const float *Pd = P;
    if (need_pd) {
        drop_both(&a->key, bh, S, 0, S, a->p, a->dscale, P, Pd_buf, dP, mult);
        Pd = Pd_buf;
    }
    /* dv [S,Dh] = Pd^T @ dctx */
    cpu_sgemm(1, 0, S, Dh, S, 1.0f, Pd, S, g.dc, g.lcx, 0.0f, g.dv, hv.lq);
    softmax_grad_rows(P, dP, S, S);
    /* dq = scale dS @ k ; dk = scale dS^T @ q */
    cpu_sgemm(0, 0, S, Dh, S, a->scale, dP, S, hv.k, hv.lq, 0.0f, g.dq, hv.lq);
    cpu_sgemm(1, 0, S, Dh, S, a->scale, dP, S, hv.q, hv.lq, 0.0f, g.dk, hv.lq);
    store_grads(a->dqkv, &hv, &g, S, a->H, Dh);
}

/* One (b, h) recomputing P per query tile from q, k and lse. */
static void bwd_head_recompute(const bwd_args *a, int bh, float *own, int *last_b)
{
    const int S = a->S, Dh = a->Dh, b = bh / a->H, h = bh % a->H, need_pd = a->p > 0.0f;
    size_t tile = (size_t)BQ * S;
    float *P = own, *dP = P + tile, *Pd_buf = dP + tile, *mult = Pd_buf + (need_pd ? tile : 0);
    float *bias = mult + S, *wq = bias + S;
    if (b != *last_b) { mask_bias(a->mask, b, S, bias); *last_b = b; }
    head_view hv = head_of(a->qkv, b, h, S, a->H, Dh, wq);
    grad_view g = grads_of(a->dctx, a->dqkv, &hv, S, a->H, Dh, wq + 3 * (size_t)S * Dh);
    for (int i0 = 0; i0 < S; i0 += BQ) {
        int n = S - i0 < BQ ? S - i0 : BQ;
        float beta = i0 == 0 ? 0.0f : 1.0f; /* dk, dv: the first tile overwrites, the others add */
        const float *qt = hv.q + (size_t)i0 * hv.lq, *dct = g.dc + (size_t)i0 * g.lcx;
        cpu_sgemm(0, 1, n, S, Dh, a->scale, qt, hv.lq, hv.k, hv.lq, 0.0f, P, S);
        for (int i = 0; i < n; i++) recompute_row(P + (size_t)i * S, bias, S, a->L[(int64_t)bh * S + i0 + i]);
        cpu_sgemm(0, 1, n, S, Dh, 1.0f, dct, g.lcx, hv.v, hv.lq, 0.0f, dP, S);
        const float *Pd = P;
        if (need_pd) {
            drop_both(&a->key, bh, S, i0, n, a->p, a->dscale, P, Pd_buf, dP, mult);
            Pd = Pd_buf;
        }
        cpu_sgemm(1, 0, S, Dh, n, 1.0f, Pd, S, dct, g.lcx, beta, g.dv, hv.lq);
        softmax_grad_rows(P, dP, n, S);
        cpu_sgemm(0, 0, n, Dh, S, a->scale, dP, S, hv.k, hv.lq, 0.0f, g.dq + (size_t)i0 * hv.lq, hv.lq);
        cpu_sgemm(1, 0, S, Dh, n, a->scale, dP, S, qt, hv.lq, beta, g.dk, hv.lq);
    }
    store_grads(a->dqkv, &hv, &g, S, a->H, Dh);
}

void cpu_attention_bwd(bt_backend *be, const bt_tensor *qkv, const bt_tensor *mask, int B, int S,
                       int H, int Dh, float scale, float p_drop, bt_dropout_key key,
                       const bt_tensor *ctx, const bt_tensor *probs, const bt_tensor *lse,
                       const bt_tensor *dctx, bt_tensor *dqkv)
{
    check_qkv("attention_bwd", qkv, mask, B, S, H, Dh);
    CPU_CHECK(probs == NULL || (probs->dtype == BT_F32 && bt_numel(probs) == (int64_t)B * H * S * S),
              "attention_bwd: probs must be the forward's F32 [B,H,S,S]");
    CPU_CHECK(probs != NULL || (lse != NULL && lse->dtype == BT_F32 && bt_numel(lse) == (int64_t)B * H * S),
              "attention_bwd: without probs the forward's lse F32 [B,H,S] is needed");
    CPU_CHECK(dctx->dtype == qkv->dtype && bt_numel(dctx) == (int64_t)B * S * H * Dh,
              "attention_bwd: dctx must be [B,S,H,Dh] of qkv's dtype");
    CPU_CHECK(dqkv->dtype == qkv->dtype && bt_numel(dqkv) == bt_numel(qkv),
              "attention_bwd: dqkv must be [B,S,3,H,Dh] of qkv's dtype");
    (void)ctx;
    const int lp = qkv->dtype != BT_F32, need_pd = p_drop > 0.0f, nt = cpu_nt(be);
    bwd_args a = {qkv, mask, dctx, dqkv, probs ? F32P(probs) : NULL, probs ? NULL : F32P(lse), B, S, H, Dh,
                  scale, p_drop, cpu_dropout_scale(p_drop), key};
    const size_t per = bt_ws_cpu_att_bwd_thread(S, Dh, need_pd, probs != NULL, lp);
    float *ws = cpu_scratch(be, bt_ws_cpu_attention(1, B, S, H, Dh, need_pd, probs != NULL, lp, nt));

#pragma omp parallel num_threads(nt)
    {
        float *own = ws + per * (size_t)cpu_thread_id();
        int last_b = -1; /* the mask bias row in own is batch last_b's */
#pragma omp for schedule(static)
        for (int bh = 0; bh < B * H; bh++) {
            if (probs) bwd_head_probs(&a, bh, own);
            else bwd_head_recompute(&a, bh, own, &last_b);
        }
    }
}
