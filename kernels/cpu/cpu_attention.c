/* kernels/cpu/cpu_attention.c — multi-head softmax attention, forward and
 * backward, for the CPU backend.
 *
 * Owns: the (b, h) loop. Each (batch, head) pair is one unit of work handed
 * to one OpenMP thread (schedule(static)); inside it the four products run
 * as single-threaded OpenBLAS sgemm calls straight on the strided qkv layout
 * (no copies), and the mask, softmax and dropout run row by row in between.
 * Must not: know about BERT layers or the engine's buffers beyond the shapes
 * documented in kernels/backend.h.
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
    CPU_CHECK(qkv->dtype == BT_F32 && bt_numel(qkv) == (int64_t)B * S * 3 * H * Dh,
              "%s: qkv must be F32 [B=%d,S=%d,3,H=%d,Dh=%d] (numel %lld)", who, B, S, H, Dh,
              (long long)bt_numel(qkv));
    CPU_CHECK(mask == NULL || (mask->dtype == BT_I32 && bt_numel(mask) == (int64_t)B * S),
              "%s: mask must be int32 [B=%d,S=%d]", who, B, S);
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
    CPU_CHECK(ctx->dtype == BT_F32 && bt_numel(ctx) == (int64_t)B * S * H * Dh,
              "attention_fwd: ctx must be F32 [B,S,H,Dh]");
    CPU_CHECK(probs == NULL || (probs->dtype == BT_F32 && bt_numel(probs) == (int64_t)B * H * S * S),
              "attention_fwd: probs must be F32 [B,H,S,S]");
    CPU_CHECK(lse == NULL || (lse->dtype == BT_F32 && bt_numel(lse) == (int64_t)B * H * S),
              "attention_fwd: lse must be F32 [B,H,S]");
    const float *X = F32P(qkv);
    float *C = F32P(ctx);
    float *Pall = probs ? F32P(probs) : NULL;
    float *L = lse ? F32P(lse) : NULL;
    const int ld = 3 * H * Dh, ldc = H * Dh;
    const float dscale = cpu_dropout_scale(p_drop);
    const int nt = cpu_nt(be);
    const int need_pd = p_drop > 0.0f;

#pragma omp parallel num_threads(nt)
    {
        size_t ss = (size_t)S * S;
        float *scratch = malloc(sizeof(float) * (ss * ((Pall ? 0 : 1) + (need_pd ? 1 : 0)) + 2 * (size_t)S));
        CPU_CHECK(scratch != NULL, "attention_fwd: out of memory for %d x %d scores", S, S);
        float *bias = scratch, *mult = scratch + S, *own = scratch + 2 * S;
        float *Pd_buf = own + (Pall ? 0 : ss);
        int last_b = -1;
#pragma omp for schedule(static)
        for (int bh = 0; bh < B * H; bh++) {
            int b = bh / H, h = bh % H;
            if (b != last_b) { mask_bias(mask, b, S, bias); last_b = b; }
            const float *q = X + (int64_t)b * S * ld + (int64_t)h * Dh;
            const float *k = q + H * Dh;
            const float *v = q + 2 * H * Dh;
            float *P = Pall ? Pall + (int64_t)bh * ss : own;
            cpu_sgemm(0, 1, S, S, Dh, scale, q, ld, k, ld, 0.0f, P, S);
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
            cpu_sgemm(0, 0, S, Dh, S, 1.0f, Pd, S, v, ld, 0.0f,
                      C + (int64_t)b * S * ldc + (int64_t)h * Dh, ldc);
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
    CPU_CHECK(dctx->dtype == BT_F32 && bt_numel(dctx) == (int64_t)B * S * H * Dh,
              "attention_bwd: dctx must be F32 [B,S,H,Dh]");
    CPU_CHECK(dqkv->dtype == BT_F32 && bt_numel(dqkv) == bt_numel(qkv),
              "attention_bwd: dqkv must be F32 [B,S,3,H,Dh]");
    (void)ctx; (void)lse;
    const float *X = F32P(qkv), *Pall = F32P(probs), *dC = F32P(dctx);
    float *dX = F32P(dqkv);
    const int ld = 3 * H * Dh, ldc = H * Dh;
    const float dscale = cpu_dropout_scale(p_drop);
    const int nt = cpu_nt(be);
    const int need_pd = p_drop > 0.0f;

#pragma omp parallel num_threads(nt)
    {
        size_t ss = (size_t)S * S;
        float *scratch = malloc(sizeof(float) * (ss * (need_pd ? 2 : 1) + (size_t)S));
        CPU_CHECK(scratch != NULL, "attention_bwd: out of memory for %d x %d scores", S, S);
        float *mult = scratch, *dP = scratch + S, *Pd_buf = dP + ss;
#pragma omp for schedule(static)
        for (int bh = 0; bh < B * H; bh++) {
            int b = bh / H, h = bh % H;
            const float *q = X + (int64_t)b * S * ld + (int64_t)h * Dh;
            const float *k = q + H * Dh;
            const float *v = q + 2 * H * Dh;
            float *dq = dX + (int64_t)b * S * ld + (int64_t)h * Dh;
            float *dk = dq + H * Dh;
            float *dv = dq + 2 * H * Dh;
            const float *dc = dC + (int64_t)b * S * ldc + (int64_t)h * Dh;
            const float *P = Pall + (int64_t)bh * ss;

            /* dPd [S,S] = dctx [S,Dh] @ v^T */
            cpu_sgemm(0, 1, S, S, Dh, 1.0f, dc, ldc, v, ld, 0.0f, dP, S);
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
            cpu_sgemm(1, 0, S, Dh, S, 1.0f, Pd, S, dc, ldc, 0.0f, dv, ld);
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
            cpu_sgemm(0, 0, S, Dh, S, scale, dP, S, k, ld, 0.0f, dq, ld);
            cpu_sgemm(1, 0, S, Dh, S, scale, dP, S, q, ld, 0.0f, dk, ld);
        }
        free(scratch);
    }
}
