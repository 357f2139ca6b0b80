/* kernels/cpu/cpu_relattn.c — disentangled attention (DeBERTa-v2/v3),
 * forward and backward, for the CPU backend (semantics: kernels/backend.h,
 * rel_attention_fwd / rel_attention_bwd).
 *
 * Owns: the per-head work of the disentangled attention: the content and
 * relative-position score tables, the masked softmax, the dropout on the
 * probabilities, and the gradients of q, k, v and of the projected relative
 * embeddings.
 * Must not: know about DeBERTa's layers or buffers beyond the documented
 * shapes, or use a reduction whose order depends on the thread count.
 *
 * Per (b, h) the products run as single-threaded sgemm calls on F32 blocks
 * (16-bit inputs are widened, outputs rounded once on store):
 *   QK [S,S] = q k^T, C2P [S,R] = q pk^T, P2C [S,R] = k pq^T,
 *   s[i,j] = scale (QK[i,j] + C2P[i,r] + P2C[j,r]), r = relidx[i - j + S - 1].
 * Backward: G1[i,r] = sum_j dS_ij, G2[j,r] = sum_i dS_ij over the pairs with
 * that r (j resp. i ascending), then dq += G1 pk, dk += G2 pq, dpk += G1^T q,
 * dpq += G2^T k. The forward runs one (b, h) per thread; the backward one
 * head per thread with b ascending inside, so dpos sums in a fixed order.
 * Buffers are malloc'd per thread (not counted in peak_bytes: DeBERTa is not
 * trainable through `baton run` yet, so `baton plan` never models it).
 */
#include "kernels/cpu/cpu_internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void check_args(const char *who, const bt_tensor *qkv, const bt_tensor *pos, const bt_tensor *relidx,
                       const bt_tensor *mask, const bt_rel_attn *a)
{
    int64_t B = a->B, S = a->S, H = a->H, Dh = a->Dh, R = a->R;
    CPU_CHECK(B > 0 && S > 0 && H > 0 && Dh > 0 && R > 0, "%s: empty shape", who);
    CPU_CHECK(cpu_is_float(qkv->dtype) && bt_numel(qkv) == B * S * 3 * H * Dh,
              "%s: qkv must be float [B=%lld,S=%lld,3,H=%lld,Dh=%lld]", who, (long long)B, (long long)S,
              (long long)H, (long long)Dh);
    CPU_CHECK(pos->dtype == qkv->dtype && bt_numel(pos) == R * 3 * H * Dh, "%s: pos must be [R=%lld,3,H,Dh] of qkv's dtype",
              who, (long long)R);
    CPU_CHECK(relidx->dtype == BT_I32 && bt_numel(relidx) == 2 * S - 1, "%s: relidx must be int32 [2S-1]", who);
    CPU_CHECK(!mask || (mask->dtype == BT_I32 && bt_numel(mask) == B * S), "%s: mask must be int32 [B,S]", who);
    const int32_t *ri = I32P(relidx);
    for (int64_t d = 0; d < 2 * S - 1; d++)
        CPU_CHECK(ri[d] >= 0 && ri[d] < R, "%s: relidx[%lld] = %d outside [0,%lld)", who, (long long)d, ri[d],
                  (long long)R);
}

/* n rows of Dh floats at element offset base, row stride ld, widened */
static void widen_rows(const bt_tensor *t, int64_t base, int64_t ld, int64_t n, int Dh, float *out)
{
    for (int64_t i = 0; i < n; i++) cpu_widen(t->dtype, t->data, base + i * ld, Dh, out + i * Dh);
}
static void narrow_rows(bt_tensor *t, int64_t base, int64_t ld, int64_t n, int Dh, const float *in)
{
    for (int64_t i = 0; i < n; i++) cpu_narrow(t->dtype, t->data, base + i * ld, Dh, in + i * Dh);
}

/* per-thread F32 blocks */
typedef struct {
    float *q, *k, *v, *pq, *pk; /* [S,Dh] x3, [R,Dh] x2 */
    float *s, *c2p, *p2c;       /* [S,S], [S,R], [S,R] */
    float *mult, *pd;           /* [S], [S,S] */
    float *dq, *dk, *dv, *dc;   /* [S,Dh] x4 (backward) */
    float *dpq, *dpk;           /* [R,Dh] (backward) */
} rel_buf;

static int buf_alloc(rel_buf *w, int64_t S, int64_t R, int64_t Dh)
{
    memset(w, 0, sizeof *w);
    size_t n = (size_t)(7 * S * Dh + 4 * R * Dh + 2 * S * S + 2 * S * R + S);
    float *p = malloc(sizeof(float) * n);
    if (!p) return -1;
    w->q = p; p += S * Dh; w->k = p; p += S * Dh; w->v = p; p += S * Dh;
    w->pq = p; p += R * Dh; w->pk = p; p += R * Dh;
    w->s = p; p += S * S; w->c2p = p; p += S * R; w->p2c = p; p += S * R;
    w->mult = p; p += S; w->pd = p; p += S * S;
    w->dq = p; p += S * Dh; w->dk = p; p += S * Dh; w->dv = p; p += S * Dh; w->dc = p; p += S * Dh;
    w->dpq = p; p += R * Dh; w->dpk = p;
    return 0;
}

/* q, k, v of (b, h) and pq, pk of head h into w */
static void load_head(const bt_tensor *qkv, const bt_tensor *pos, const bt_rel_attn *a, int b, int h, rel_buf *w)
{
    int64_t S = a->S, H = a->H, Dh = a->Dh, ld = 3 * H * Dh, base = (int64_t)b * S * ld + (int64_t)h * Dh;
    widen_rows(qkv, base, ld, S, (int)Dh, w->q);
    widen_rows(qkv, base + H * Dh, ld, S, (int)Dh, w->k);
    widen_rows(qkv, base + 2 * H * Dh, ld, S, (int)Dh, w->v);
    widen_rows(pos, (int64_t)h * Dh, ld, a->R, (int)Dh, w->pq);
    widen_rows(pos, H * Dh + (int64_t)h * Dh, ld, a->R, (int)Dh, w->pk);
}

/* P [S,S] of (b, h) into w->s: scores, mask, softmax (padding query rows 0) */
static void probs_of(const bt_rel_attn *a, const int32_t *ri, const int32_t *mk, rel_buf *w)
{
    int S = a->S, R = a->R, Dh = a->Dh;
    cpu_sgemm(0, 1, S, S, Dh, 1.0f, w->q, Dh, w->k, Dh, 0.0f, w->s, S);
    if (a->c2p) cpu_sgemm(0, 1, S, R, Dh, 1.0f, w->q, Dh, w->pk, Dh, 0.0f, w->c2p, R);
    if (a->p2c) cpu_sgemm(0, 1, S, R, Dh, 1.0f, w->k, Dh, w->pq, Dh, 0.0f, w->p2c, R);
    for (int i = 0; i < S; i++) {
        float *s = w->s + (size_t)i * S;
        if (mk && !mk[i]) {
            memset(s, 0, sizeof(float) * (size_t)S);
            continue;
        }
        const int32_t *rr = ri + i + S - 1; /* r(i,j) = rr[-j] */
        float mx = -INFINITY;
        for (int j = 0; j < S; j++) {
            int r = rr[-j];
            float v = s[j];
            if (a->c2p) v += w->c2p[(size_t)i * R + r];
            if (a->p2c) v += w->p2c[(size_t)j * R + r];
            v = v * a->scale + ((mk && !mk[j]) ? -FLT_MAX : 0.0f);
            s[j] = v;
            mx = v > mx ? v : mx;
        }
        float sum = 0.0f;
        for (int j = 0; j < S; j++) {
            s[j] = expf(s[j] - mx);
            sum += s[j];
        }
        float inv = 1.0f / sum;
        for (int j = 0; j < S; j++) s[j] *= inv;
    }
}

/* Pd = P * dropout multipliers (rows of (b, h)) */
static void drop_probs(const bt_rel_attn *a, int64_t bh, const float *P, rel_buf *w)
{
    int S = a->S;
    float ds = cpu_dropout_scale(a->p_drop);
    for (int i = 0; i < S; i++) {
        if (a->p_drop > 0.0f) cpu_dropout_mult(&a->key, ((uint64_t)bh * S + (uint64_t)i) * (uint64_t)S, S, a->p_drop, ds, w->mult);
        for (int j = 0; j < S; j++)
            w->pd[(size_t)i * S + j] = P[(size_t)i * S + j] * (a->p_drop > 0.0f ? w->mult[j] : 1.0f);
    }
}

void cpu_rel_attention_fwd(bt_backend *be, const bt_tensor *qkv, const bt_tensor *pos, const bt_tensor *relidx,
                           const bt_tensor *mask, const bt_rel_attn *a, bt_tensor *ctx, bt_tensor *probs)
{
    check_args("rel_attention_fwd", qkv, pos, relidx, mask, a);
    int64_t S = a->S, H = a->H, Dh = a->Dh, BH = (int64_t)a->B * H;
    CPU_CHECK(ctx->dtype == qkv->dtype && bt_numel(ctx) == a->B * S * H * Dh, "rel_attention_fwd: ctx must be [B,S,H,Dh]");
    CPU_CHECK(!probs || (probs->dtype == BT_F32 && bt_numel(probs) == BH * S * S),
              "rel_attention_fwd: probs must be F32 [B,H,S,S]");
    const int32_t *ri = I32P(relidx);
    int failed = 0;
#pragma omp parallel num_threads(cpu_nt(be)) reduction(| : failed)
    {
        rel_buf w;
        if (buf_alloc(&w, S, a->R, Dh)) {
            failed = 1;
        } else {
#pragma omp for schedule(static)
            for (int64_t bh = 0; bh < BH; bh++) {
                int b = (int)(bh / H), h = (int)(bh % H);
                const int32_t *mk = mask ? I32P(mask) + (int64_t)b * S : NULL;
                load_head(qkv, pos, a, b, h, &w);
                probs_of(a, ri, mk, &w);
                if (probs) memcpy(F32P(probs) + bh * S * S, w.s, sizeof(float) * (size_t)(S * S));
                drop_probs(a, bh, w.s, &w);
                cpu_sgemm(0, 0, (int)S, (int)Dh, (int)S, 1.0f, w.pd, (int)S, w.v, (int)Dh, 0.0f, w.dc, (int)Dh);
                narrow_rows(ctx, (int64_t)b * S * H * Dh + (int64_t)h * Dh, H * Dh, S, (int)Dh, w.dc);
            }
            free(w.q);
        }
    }
    CPU_CHECK(!failed, "rel_attention_fwd: out of memory for the per-thread blocks (S=%lld, R=%d)", (long long)S, a->R);
}

/* dS (in w->s, scaled by scale) of (b, h) from P and dctx (w->dc); dv into w->dv */
static void dscores(const bt_rel_attn *a, int64_t bh, const float *P, rel_buf *w)
{
    int S = a->S, Dh = a->Dh;
    drop_probs(a, bh, P, w);
    cpu_sgemm(1, 0, S, Dh, S, 1.0f, w->pd, S, w->dc, Dh, 0.0f, w->dv, Dh); /* dV = Pd^T dctx */
    cpu_sgemm(0, 1, S, S, Dh, 1.0f, w->dc, Dh, w->v, Dh, 0.0f, w->s, S);   /* dPd = dctx V^T */
    float ds = cpu_dropout_scale(a->p_drop);
    for (int i = 0; i < S; i++) {
        float *d = w->s + (size_t)i * S;
        const float *p = P + (size_t)i * S;
        if (a->p_drop > 0.0f) {
            cpu_dropout_mult(&a->key, ((uint64_t)bh * S + (uint64_t)i) * (uint64_t)S, S, a->p_drop, ds, w->mult);
            for (int j = 0; j < S; j++) d[j] *= w->mult[j];
        }
        float dot = 0.0f;
        for (int j = 0; j < S; j++) dot += p[j] * d[j];
        for (int j = 0; j < S; j++) d[j] = a->scale * (p[j] * (d[j] - dot));
    }
}

/* gradients of one (b, h): dq, dk (w), dpq, dpk accumulated (w) */
static void head_backward(const bt_rel_attn *a, const int32_t *ri, rel_buf *w)
{
    int S = a->S, R = a->R, Dh = a->Dh;
    cpu_sgemm(0, 0, S, Dh, S, 1.0f, w->s, S, w->k, Dh, 0.0f, w->dq, Dh); /* dq = dS k */
    cpu_sgemm(1, 0, S, Dh, S, 1.0f, w->s, S, w->q, Dh, 0.0f, w->dk, Dh); /* dk = dS^T q */
    if (a->c2p) { /* G1[i,r] = sum_j dS_ij (j ascending) */
        memset(w->c2p, 0, sizeof(float) * (size_t)S * R);
        for (int i = 0; i < S; i++)
            for (int j = 0; j < S; j++) w->c2p[(size_t)i * R + ri[i - j + S - 1]] += w->s[(size_t)i * S + j];
        cpu_sgemm(0, 0, S, Dh, R, 1.0f, w->c2p, R, w->pk, Dh, 1.0f, w->dq, Dh);
        cpu_sgemm(1, 0, R, Dh, S, 1.0f, w->c2p, R, w->q, Dh, 1.0f, w->dpk, Dh);
    }
    if (a->p2c) { /* G2[j,r] = sum_i dS_ij (i ascending) */
        memset(w->p2c, 0, sizeof(float) * (size_t)S * R);
        for (int i = 0; i < S; i++)
            for (int j = 0; j < S; j++) w->p2c[(size_t)j * R + ri[i - j + S - 1]] += w->s[(size_t)i * S + j];
        cpu_sgemm(0, 0, S, Dh, R, 1.0f, w->p2c, R, w->pq, Dh, 1.0f, w->dk, Dh);
        cpu_sgemm(1, 0, R, Dh, S, 1.0f, w->p2c, R, w->k, Dh, 1.0f, w->dpq, Dh);
    }
}

void cpu_rel_attention_bwd(bt_backend *be, const bt_tensor *qkv, const bt_tensor *pos, const bt_tensor *relidx,
                           const bt_tensor *mask, const bt_rel_attn *a, const bt_tensor *probs,
                           const bt_tensor *dctx, bt_tensor *dqkv, bt_tensor *dpos)
{
    check_args("rel_attention_bwd", qkv, pos, relidx, mask, a);
    int64_t S = a->S, H = a->H, Dh = a->Dh, R = a->R, ld = 3 * H * Dh;
    CPU_CHECK(probs && probs->dtype == BT_F32 && bt_numel(probs) == (int64_t)a->B * H * S * S,
              "rel_attention_bwd: the forward's probs [B,H,S,S] are required");
    CPU_CHECK(dctx->dtype == qkv->dtype && bt_numel(dctx) == a->B * S * H * Dh && dqkv->dtype == qkv->dtype &&
                  bt_numel(dqkv) == bt_numel(qkv) && dpos->dtype == qkv->dtype && bt_numel(dpos) == bt_numel(pos),
              "rel_attention_bwd: dctx [B,S,H,Dh], dqkv like qkv and dpos like pos, of qkv's dtype");
    const int32_t *ri = I32P(relidx);
    float *zero = calloc((size_t)Dh, sizeof(float));
    CPU_CHECK(zero, "rel_attention_bwd: out of memory");
    for (int64_t r = 0; r < R; r++) /* the v part of dpos */
        for (int64_t h = 0; h < H; h++) cpu_narrow(dpos->dtype, dpos->data, r * ld + 2 * H * Dh + h * Dh, Dh, zero);
    free(zero);
    int failed = 0;
#pragma omp parallel num_threads(cpu_nt(be)) reduction(| : failed)
    {
        rel_buf w;
        if (buf_alloc(&w, S, R, Dh)) {
            failed = 1;
        } else {
#pragma omp for schedule(static)
            for (int64_t h = 0; h < H; h++) {
                memset(w.dpq, 0, sizeof(float) * (size_t)(R * Dh));
                memset(w.dpk, 0, sizeof(float) * (size_t)(R * Dh));
                for (int b = 0; b < a->B; b++) {
                    int64_t bh = (int64_t)b * H + h, base = (int64_t)b * S * ld + h * Dh;
                    load_head(qkv, pos, a, b, (int)h, &w);
                    widen_rows(dctx, (int64_t)b * S * H * Dh + h * Dh, H * Dh, S, (int)Dh, w.dc);
                    dscores(a, bh, F32P(probs) + bh * S * S, &w);
                    head_backward(a, ri, &w);
                    narrow_rows(dqkv, base, ld, S, (int)Dh, w.dq);
                    narrow_rows(dqkv, base + H * Dh, ld, S, (int)Dh, w.dk);
                    narrow_rows(dqkv, base + 2 * H * Dh, ld, S, (int)Dh, w.dv);
                }
                narrow_rows(dpos, h * Dh, ld, R, (int)Dh, w.dpq);
                narrow_rows(dpos, H * Dh + h * Dh, ld, R, (int)Dh, w.dpk);
            }
            free(w.q);
        }
    }
    CPU_CHECK(!failed, "rel_attention_bwd: out of memory for the per-thread blocks (S=%lld, R=%lld)", (long long)S,
              (long long)R);
}
