/* kernels/cpu/cpu_attention.c — multi-head softmax attention, forward and
 * backward, for the CPU backend.
 *
 * Owns: the (b, h) loop. Each (batch, head) pair is one unit of work handed
 * to one OpenMP thread (schedule(static)); inside it the four products run
 * as single-threaded OpenBLAS sgemm calls straight on the strided qkv layout
 * (no copies), and the mask, softmax and dropout run row by row in between.
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
 */
#include "kernels/cpu/cpu_internal.h"

#include <float.h>
#include <math.h>
#include <string.h>

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

static void check_qkv(const char *who, const bt_tensor *qkv, const bt_tensor *mask, int B, int S,
                      int H, int Dh)
{
    CPU_CHECK(cpu_is_float(qkv->dtype) && bt_numel(qkv) == (int64_t)B * S * 3 * H * Dh,
              "%s: qkv must be float [B=%d,S=%d,3,H=%d,Dh=%d] (numel %lld)", who, B, S, H, Dh,
              (long long)bt_numel(qkv));
    CPU_CHECK(mask == NULL || (mask->dtype == BT_I32 && bt_numel(mask) == (int64_t)B * S),
              "%s: mask must be int32 [B=%d,S=%d]", who, B, S);
}

/* Rows [S] of one head of a 16-bit [B,S,.] tensor (row stride ld, head
 * offset off) widened into a contiguous F32 [S,Dh] block, and back. */
static void widen_head(const bt_tensor *t, int64_t base, int64_t ld, int S, int Dh, float *out)
{
    for (int i = 0; i < S; i++) cpu_widen(t->dtype, t->data, base + (int64_t)i * ld, Dh, out + (size_t)i * Dh);
}
static void narrow_head(bt_tensor *t, int64_t base, int64_t ld, int S, int Dh, const float *in)
{
    for (int i = 0; i < S; i++) cpu_narrow(t->dtype, t->data, base + (int64_t)i * ld, Dh, in + (size_t)i * Dh);
}

/* Additive mask bias row for batch b: 0 for real tokens, -FLT_MAX for padding
 * (torch.finfo(float32).min, as HF's extended attention mask). */
static void mask_bias(const bt_tensor *mask, int b, int S, float *out)
{
    const int32_t *m = mask ? I32P(mask) + (int64_t)b * S : NULL;
    for (int j = 0; j < S; j++) out[j] = (m && m[j] == 0) ? -FLT_MAX : 0.0f;
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
    const float *X = lp ? NULL : F32P(qkv);
    float *C = lp ? NULL : F32P(ctx);
    float *Pall = probs ? F32P(probs) : NULL;
    float *L = lse ? F32P(lse) : NULL;
    const int ld = 3 * H * Dh, ldc = H * Dh;
    const float dscale = cpu_dropout_scale(p_drop);
    const int nt = cpu_nt(be);
    const int need_pd = p_drop > 0.0f;

#pragma omp parallel num_threads(nt)
    {
        size_t ss = (size_t)S * S, sd = (size_t)S * Dh;
        float *scratch = malloc(sizeof(float) * (ss * ((Pall ? 0 : 1) + (need_pd ? 1 : 0)) + 2 * (size_t)S +
                                                  (lp ? 4 * sd : 0)));
        CPU_CHECK(scratch != NULL, "attention_fwd: out of memory for %d x %d scores", S, S);
        float *bias = scratch, *mult = scratch + S, *own = scratch + 2 * S;
        float *Pd_buf = own + (Pall ? 0 : ss);
        float *hq = Pd_buf + (need_pd ? ss : 0), *hk = hq + sd, *hv = hk + sd, *hc = hv + sd; /* lp only */
        int last_b = -1;
#pragma omp for schedule(static)
        for (int bh = 0; bh < B * H; bh++) {
            int b = bh / H, h = bh % H;
            if (b != last_b) { mask_bias(mask, b, S, bias); last_b = b; }
            int64_t qoff = (int64_t)b * S * ld + (int64_t)h * Dh, coff = (int64_t)b * S * ldc + (int64_t)h * Dh;
            const float *q, *k, *v;
            float *cout;
            int lq = ld, lcx = ldc;
            if (lp) {
                widen_head(qkv, qoff, ld, S, Dh, hq);
                widen_head(qkv, qoff + H * Dh, ld, S, Dh, hk);
                widen_head(qkv, qoff + 2 * H * Dh, ld, S, Dh, hv);
                q = hq, k = hk, v = hv, cout = hc, lq = Dh, lcx = Dh;
            } else {
                q = X + qoff, k = q + H * Dh, v = q + 2 * H * Dh, cout = C + coff;
            }
            float *P = Pall ? Pall + (int64_t)bh * ss : own;
            cpu_sgemm(0, 1, S, S, Dh, scale, q, lq, k, lq, 0.0f, P, S);
            for (int i = 0; i < S; i++) {
                float l = softmax_row(P + (size_t)i * S, bias, S);
                if (L) L[(int64_t)bh * S + i] = l;
            }
            const float *Pd = P;
            if (need_pd) {
                for (int i = 0; i < S; i++) {
                    cpu_dropout_mult(&key, ((uint64_t)bh * S + i) * S, S, p_drop, dscale, mult);
                    const float *pr = P + (size_t)i * S;
                    float *dr = Pd_buf + (size_t)i * S;
#pragma omp simd
                    for (int j = 0; j < S; j++) dr[j] = pr[j] * mult[j];
                }
                Pd = Pd_buf;
            }
            cpu_sgemm(0, 0, S, Dh, S, 1.0f, Pd, S, v, lq, 0.0f, cout, lcx);
            if (lp) narrow_head(ctx, coff, ldc, S, Dh, hc);
        }
        free(scratch);
    }
}

void cpu_attention_bwd(bt_backend *be, const bt_tensor *qkv, const bt_tensor *mask, int B, int S,
                       int H, int Dh, float scale, float p_drop, bt_dropout_key key,
                       const bt_tensor *ctx, const bt_tensor *probs, const bt_tensor *lse,
                       const bt_tensor *dctx, bt_tensor *dqkv)
{
    check_qkv("attention_bwd", qkv, mask, B, S, H, Dh);
    CPU_CHECK(probs != NULL && probs->dtype == BT_F32 && bt_numel(probs) == (int64_t)B * H * S * S,
              "attention_bwd: the CPU backend needs the forward's probs F32 [B,H,S,S]");
    CPU_CHECK(dctx->dtype == qkv->dtype && bt_numel(dctx) == (int64_t)B * S * H * Dh,
              "attention_bwd: dctx must be [B,S,H,Dh] of qkv's dtype");
    CPU_CHECK(dqkv->dtype == qkv->dtype && bt_numel(dqkv) == bt_numel(qkv),
              "attention_bwd: dqkv must be [B,S,3,H,Dh] of qkv's dtype");
    (void)ctx; (void)lse;
    const int lp = qkv->dtype != BT_F32; /* 16-bit: each head is widened to F32 first */
    const float *X = lp ? NULL : F32P(qkv), *Pall = F32P(probs), *dC = lp ? NULL : F32P(dctx);
    float *dX = lp ? NULL : F32P(dqkv);
    const int ld = 3 * H * Dh, ldc = H * Dh;
    const float dscale = cpu_dropout_scale(p_drop);
    const int nt = cpu_nt(be);
    const int need_pd = p_drop > 0.0f;

#pragma omp parallel num_threads(nt)
    {
        size_t ss = (size_t)S * S, sd = (size_t)S * Dh;
        float *scratch = malloc(sizeof(float) * (ss * (need_pd ? 2 : 1) + (size_t)S + (lp ? 7 * sd : 0)));
        CPU_CHECK(scratch != NULL, "attention_bwd: out of memory for %d x %d scores", S, S);
        float *mult = scratch, *dP = scratch + S, *Pd_buf = dP + ss;
        float *hq = Pd_buf + (need_pd ? ss : 0), *hk = hq + sd, *hv = hk + sd, *hdc = hv + sd; /* lp only */
        float *hdq = hdc + sd, *hdk = hdq + sd, *hdv = hdk + sd;
#pragma omp for schedule(static)
        for (int bh = 0; bh < B * H; bh++) {
            int b = bh / H, h = bh % H;
            int64_t qoff = (int64_t)b * S * ld + (int64_t)h * Dh, coff = (int64_t)b * S * ldc + (int64_t)h * Dh;
            const float *q, *k, *v, *dc;
            float *dq, *dk, *dv;
            int lq = ld, lcx = ldc;
            if (lp) {
                widen_head(qkv, qoff, ld, S, Dh, hq);
                widen_head(qkv, qoff + H * Dh, ld, S, Dh, hk);
                widen_head(qkv, qoff + 2 * H * Dh, ld, S, Dh, hv);
                widen_head(dctx, coff, ldc, S, Dh, hdc);
                q = hq, k = hk, v = hv, dc = hdc, dq = hdq, dk = hdk, dv = hdv, lq = Dh, lcx = Dh;
            } else {
                q = X + qoff, k = q + H * Dh, v = q + 2 * H * Dh;
                dq = dX + qoff, dk = dq + H * Dh, dv = dq + 2 * H * Dh;
                dc = dC + coff;
            }
            const float *P = Pall + (int64_t)bh * ss;

            /* dPd [S,S] = dctx [S,Dh] @ v^T */
            cpu_sgemm(0, 1, S, S, Dh, 1.0f, dc, lcx, v, lq, 0.0f, dP, S);
            const float *Pd = P;
            if (need_pd) {
                for (int i = 0; i < S; i++) {
                    cpu_dropout_mult(&key, ((uint64_t)bh * S + i) * S, S, p_drop, dscale, mult);
                    const float *pr = P + (size_t)i * S;
                    float *dr = Pd_buf + (size_t)i * S, *gr = dP + (size_t)i * S;
#pragma omp simd
                    for (int j = 0; j < S; j++) {
                        dr[j] = pr[j] * mult[j];
                        gr[j] *= mult[j];
                    }
                }
                Pd = Pd_buf;
            }
            /* dv [S,Dh] = Pd^T @ dctx */
            cpu_sgemm(1, 0, S, Dh, S, 1.0f, Pd, S, dc, lcx, 0.0f, dv, lq);
            /* dS = P * (dP - sum_j P dP), in place in dP */
            for (int i = 0; i < S; i++) {
                const float *pr = P + (size_t)i * S;
                float *gr = dP + (size_t)i * S;
                double dot = 0.0;
                for (int j = 0; j < S; j++) dot += (double)pr[j] * gr[j];
                float d = (float)dot;
#pragma omp simd
                for (int j = 0; j < S; j++) gr[j] = pr[j] * (gr[j] - d);
            }
            /* dq = scale dS @ k ; dk = scale dS^T @ q */
            cpu_sgemm(0, 0, S, Dh, S, scale, dP, S, k, lq, 0.0f, dq, lq);
            cpu_sgemm(1, 0, S, Dh, S, scale, dP, S, q, lq, 0.0f, dk, lq);
            if (lp) {
                narrow_head(dqkv, qoff, ld, S, Dh, hdq);
                narrow_head(dqkv, qoff + H * Dh, ld, S, Dh, hdk);
                narrow_head(dqkv, qoff + 2 * H * Dh, ld, S, Dh, hdv);
            }
        }
        free(scratch);
    }
}
