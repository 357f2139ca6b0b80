/* kernels/cuda/cuda_attention.cu — fused multi-head attention, forward and
 * backward, for the CUDA backend (FlashAttention-2 style: tiles in shared
 * memory, online softmax, the S x S score matrix never reaches device memory).
 *
 * Owns: the attention kernels and their launchers (installed into the vtable
 * by cu_attention_install()).
 * Must not: use float atomics; store dropout masks (they are regenerated from
 * Philox, element index = flat index into [B,H,S,S], exactly as the CPU).
 *
 * Semantics: kernels/backend.h and kernels/cpu/cpu_attention.c (the reference):
 *   s[i,j] = (q_i . k_j) * scale + (mask[b,j] == 0 ? -FLT_MAX : 0)
 *   P = softmax(s) (fp32), Pd = P * keep / (1 - p), ctx_i = sum_j Pd[i,j] v_j
 *   lse[b,h,i] = max_j s[i,j] + log(sum_j exp(s[i,j] - max))
 * A row whose keys are all padding has every s = -FLT_MAX, so P = 1/S (as on
 * the CPU); its lse rounds to -FLT_MAX and the backward recognises it.
 *
 * Kernels (all math in fp32 on CUDA cores; qkv/ctx/dctx/dqkv may be F32, F16
 * or BF16; lse, probs are F32; head dim Dh <= 128, padded to DM in 32/64/128):
 *  fwd   block = (query tile of BQ rows, b*h), 4 warps, each warp owns BQ/4
 *        query rows; key tiles of 64 (K stored transposed in shared memory),
 *        lane l scores keys 2l and 2l+1 (one Philox block serves both);
 *        running max m, per-lane running sums l, output rows in registers
 *        (lane owns dims l, l+32, ...).
 *  dpre  Dvec[b,h,i] = dctx_i . ctx_i (= rowsum(P * dP) of the reference).
 *  dkdv  block = (key tile of BN keys, b*h); each warp owns BN/4 keys, loops
 *        over query tiles of 32 (lane = query), recomputes P from q, k, lse,
 *        accumulates dV = Pd^T dctx and dK = scale dS^T Q in registers.
 *  dq    block = (query tile, b*h), the forward's layout; recomputes P and
 *        dP = dctx . v, accumulates dQ = scale dS K in registers.
 * Each output element is written by exactly one thread after a fixed-order
 * loop: deterministic, no atomics. probs (optional, F32 [B,H,S,S]) is written
 * by a separate simple kernel from lse (for tests and debugging only): the
 * backward never reads it (attention_wants_probs is 0), so the engine keeps
 * no [B,H,S,S] buffer on a GPU.
 *
 * Query tiles: BQ = 32 rows when the kernel's shared memory fits the GPU's
 * per-block limit, else 16 (head dim <= 64: forward 49,920 -> 41,728 bytes,
 * dq 58,624 -> 46,336, so a P100's 48 KiB runs BERT-base); head dims 65..128
 * use 16 rows and need an sm_70+/sm_80+ limit (77 / 86 KiB). The tile size
 * only changes how rows are grouped into blocks: every row's arithmetic is
 * the same, so both layouts give the same bits. BATON_CUDA_ATT_SMALL_TILES=1
 * forces 16 rows on any GPU (ops_parity checks the P100 layout that way).
 */
#include "kernels/cuda/cuda_internal.cuh"
#include "kernels/workspace.h"

#include <float.h>
#include <math.h>

#define ATT_THREADS 128
#define ATT_BK 64          /* keys per tile (forward, dq) */
#define ATT_KP (ATT_BK + 2) /* row stride of transposed K/V tiles (float2 aligned) */
#define ATT_BM 32          /* queries per tile (dkdv) */
#define ATT_DEAD (-1.0e38f) /* lse below this: every key of the row was padding */

/* ---- dropout draws (bt_dropout_keep_raw's counter layout) ---- */
__device__ __forceinline__ bt_u32x4 att_philox(const bt_dropout_key &k, uint64_t q)
{
    uint32_t c = ((uint32_t)(q >> 24) << 24) | ((k.layer & 0xFFFFu) << 8) | (k.site & 0xFFu);
    return bt_random4(k.seed, BT_STREAM_DROPOUT, k.step, k.micro, c, (uint32_t)q);
}
__device__ __forceinline__ uint32_t att_pick(const bt_u32x4 &r, unsigned w)
{
    return w == 0 ? r.v[0] : w == 1 ? r.v[1] : w == 2 ? r.v[2] : r.v[3];
}
/* multipliers (keep ? s : 0) of elements idx and idx+1 */
__device__ __forceinline__ float2 att_drop2(const bt_dropout_key &k, uint64_t idx, float p, float s)
{
    unsigned w = (unsigned)(idx & 3);
    bt_u32x4 r = att_philox(k, idx >> 2);
    uint32_t x0 = att_pick(r, w), x1;
    if (w == 3) x1 = att_philox(k, (idx >> 2) + 1).v[0];
    else x1 = att_pick(r, w + 1);
    return make_float2(bt_u01(x0) >= p ? s : 0.0f, bt_u01(x1) >= p ? s : 0.0f);
}
__device__ __forceinline__ float att_drop1(const bt_dropout_key &k, uint64_t idx, float p, float s)
{
    bt_u32x4 r = att_philox(k, idx >> 2);
    return bt_u01(att_pick(r, (unsigned)(idx & 3))) >= p ? s : 0.0f;
}

__device__ __forceinline__ float att_bias(const int32_t *mask, int b, int S, int j)
{
    if (j >= S) return -INFINITY;
    return (mask && mask[(int64_t)b * S + j] == 0) ? -FLT_MAX : 0.0f;
}

template <int DM, int BQ>
struct fwd_smem {
    static constexpr size_t floats = (size_t)BQ * DM + (size_t)DM * ATT_KP + (size_t)ATT_BK * DM + (size_t)BQ * ATT_BK + ATT_BK;
    static constexpr size_t bytes = floats * sizeof(float);
};

/* ------------------------------------------------------------------------ */
/* forward                                                                   */

template <typename T, int DM, int BQ>
__global__ void __launch_bounds__(ATT_THREADS) attn_fwd_k(const T *__restrict__ qkv, const int32_t *__restrict__ mask,
                                                          int S, int H, int Dh, float scale, float p, float dscale,
                                                          bt_dropout_key key, T *__restrict__ ctx, float *__restrict__ lse)
{
    constexpr int R = BQ / 4, DL = DM / 32;
    extern __shared__ float4 sm4[];
    float *sm = (float *)sm4;
    float *sQ = sm;                   /* [BQ][DM] */
    float *sKt = sQ + BQ * DM;        /* [DM][KP]  K transposed */
    float *sV = sKt + DM * ATT_KP;    /* [BK][DM] */
    float *sP = sV + ATT_BK * DM;     /* [4][R][BK] */
    float *sB = sP + BQ * ATT_BK;     /* [BK] mask bias */
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int bh = blockIdx.y, b = bh / H, h = bh % H, q0 = blockIdx.x * BQ;
    const int64_t ld = (int64_t)3 * H * Dh;
    const T *qb = qkv + (int64_t)b * S * ld + (int64_t)h * Dh;
    const T *kb = qb + (int64_t)H * Dh, *vb = qb + (int64_t)2 * H * Dh;

    for (int e = tid; e < BQ * DM; e += ATT_THREADS) {
        int r = e / DM, d = e % DM, i = q0 + r;
        sQ[e] = (i < S && d < Dh) ? cu_ld(qb, (int64_t)i * ld + d) : 0.0f;
    }
    float m[R], l[R], o[R][DL];
#pragma unroll
    for (int r = 0; r < R; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
#pragma unroll
        for (int dd = 0; dd < DL; dd++) o[r][dd] = 0.0f;
    }
    float *myP = sP + warp * R * ATT_BK;

    for (int k0 = 0; k0 < S; k0 += ATT_BK) {
        __syncthreads(); /* the previous tile is consumed */
        for (int e = tid; e < ATT_BK * DM; e += ATT_THREADS) {
            int j = e / DM, d = e % DM, kj = k0 + j;
            int in = kj < S && d < Dh;
            sKt[d * ATT_KP + j] = in ? cu_ld(kb, (int64_t)kj * ld + d) : 0.0f;
            sV[j * DM + d] = in ? cu_ld(vb, (int64_t)kj * ld + d) : 0.0f;
        }
        if (tid < ATT_BK) sB[tid] = att_bias(mask, b, S, k0 + tid);
        __syncthreads();
        const float bias0 = sB[2 * lane], bias1 = sB[2 * lane + 1];
#pragma unroll
        for (int r = 0; r < R; r++) {
            const int rr = warp * R + r, i = q0 + rr;
            const float *q = sQ + rr * DM;
            float s0 = 0.0f, s1 = 0.0f;
#pragma unroll 16
            for (int d = 0; d < DM; d++) {
                float qd = q[d];
                float2 kk = *(const float2 *)(sKt + d * ATT_KP + 2 * lane);
                s0 += qd * kk.x;
                s1 += qd * kk.y;
            }
            s0 = s0 * scale + bias0;
            s1 = s1 * scale + bias1;
            float mn = fmaxf(m[r], cu_warp_max(fmaxf(s0, s1)));
            float corr = expf(m[r] - mn);
            float p0 = expf(s0 - mn), p1 = expf(s1 - mn);
            l[r] = l[r] * corr + (p0 + p1);
            m[r] = mn;
#pragma unroll
            for (int dd = 0; dd < DL; dd++) o[r][dd] *= corr;
            if (p > 0.0f) {
                uint64_t idx = ((uint64_t)bh * S + (uint64_t)i) * S + (uint64_t)(k0 + 2 * lane);
                float2 mu = att_drop2(key, idx, p, dscale);
                p0 *= mu.x;
                p1 *= mu.y;
            }
            *(float2 *)(myP + r * ATT_BK + 2 * lane) = make_float2(p0, p1);
        }
        __syncwarp();
        for (int j = 0; j < ATT_BK; j++) {
            float v[DL];
#pragma unroll
            for (int dd = 0; dd < DL; dd++) v[dd] = sV[j * DM + lane + 32 * dd];
#pragma unroll
            for (int r = 0; r < R; r++) {
                float pj = myP[r * ATT_BK + j];
#pragma unroll
                for (int dd = 0; dd < DL; dd++) o[r][dd] += pj * v[dd];
            }
        }
    }
#pragma unroll
    for (int r = 0; r < R; r++) {
        const int i = q0 + warp * R + r;
        float lt = cu_warp_sum(l[r]);
        if (i >= S) continue;
        float inv = 1.0f / lt;
        T *out = ctx + ((int64_t)(b * S + i) * H + h) * Dh;
#pragma unroll
        for (int dd = 0; dd < DL; dd++) {
            int d = lane + 32 * dd;
            if (d < Dh) cu_st(out, d, o[r][dd] * inv);
        }
        if (lane == 0 && lse) lse[(int64_t)bh * S + i] = m[r] + logf(lt);
    }
}

/* probs[b,h,i,j] = P (pre-dropout), from lse: tests and debugging only. */
template <typename T>
__global__ void attn_probs_k(const T *qkv, const int32_t *mask, int S, int H, int Dh, float scale, const float *lse,
                             float *probs)
{
    const int i = blockIdx.x, bh = blockIdx.y, b = bh / H, h = bh % H;
    const int64_t ld = (int64_t)3 * H * Dh;
    const T *q = qkv + ((int64_t)b * S + i) * ld + (int64_t)h * Dh;
    float li = lse[(int64_t)bh * S + i];
    float *out = probs + ((int64_t)bh * S + i) * S;
    for (int j = threadIdx.x; j < S; j += blockDim.x) {
        const T *k = qkv + ((int64_t)b * S + j) * ld + (int64_t)(H + h) * Dh;
        float s = 0.0f;
        for (int d = 0; d < Dh; d++) s += cu_ld(q, d) * cu_ld(k, d);
        out[j] = li < ATT_DEAD ? 1.0f / (float)S : expf(s * scale + att_bias(mask, b, S, j) - li);
    }
}

/* ------------------------------------------------------------------------ */
/* backward                                                                  */

template <typename T>
__global__ void attn_dpre_k(const T *ctx, const T *dctx, int B, int S, int H, int Dh, float *Dv)
{
    const int lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); /* (b*S+i)*H+h */
    if (row >= (int64_t)B * S * H) return;
    const T *o = ctx + row * Dh, *g = dctx + row * Dh;
    float s = 0.0f;
    for (int d = lane; d < Dh; d += 32) s += cu_ld(o, d) * cu_ld(g, d);
    s = cu_warp_sum(s);
    if (lane == 0) {
        int h = (int)(row % H);
        int64_t bi = row / H; /* b*S + i */
        int64_t b = bi / S, i = bi % S;
        Dv[(b * H + h) * S + i] = s;
    }
}

template <int DM, int BN>
struct dkdv_smem {
    static constexpr size_t floats = (size_t)2 * BN * DM + (size_t)2 * ATT_BM * (DM + 1) + (size_t)2 * BN * ATT_BM + 2 * ATT_BM;
    static constexpr size_t bytes = floats * sizeof(float);
};

template <typename T, int DM, int BN>
__global__ void __launch_bounds__(ATT_THREADS) attn_dkdv_k(const T *__restrict__ qkv, const int32_t *__restrict__ mask,
                                                           int S, int H, int Dh, float scale, float p, float dscale,
                                                           bt_dropout_key key, const float *__restrict__ lse,
                                                           const float *__restrict__ Dv, const T *__restrict__ dctx,
                                                           T *__restrict__ dqkv)
{
    constexpr int R = BN / 4, DL = DM / 32, DP = DM + 1;
    extern __shared__ float4 sm4[];
    float *sm = (float *)sm4;
    float *sK = sm;                   /* [BN][DM] */
    float *sV = sK + BN * DM;         /* [BN][DM] */
    float *sQ = sV + BN * DM;         /* [BM][DP] */
    float *sG = sQ + ATT_BM * DP;     /* [BM][DP] dctx */
    float *sPd = sG + ATT_BM * DP;    /* [4][R][BM] */
    float *sdS = sPd + BN * ATT_BM;   /* [4][R][BM] */
    float *sL = sdS + BN * ATT_BM;    /* [BM] lse */
    float *sD = sL + ATT_BM;          /* [BM] Dvec */
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int bh = blockIdx.y, b = bh / H, h = bh % H, k0 = blockIdx.x * BN;
    const int64_t ld = (int64_t)3 * H * Dh, ldc = (int64_t)H * Dh;
    const T *qb = qkv + (int64_t)b * S * ld + (int64_t)h * Dh;
    const T *kb = qb + (int64_t)H * Dh, *vb = qb + (int64_t)2 * H * Dh;
    const T *gb = dctx + (int64_t)b * S * ldc + (int64_t)h * Dh;
    const float invS = 1.0f / (float)S;

    for (int e = tid; e < BN * DM; e += ATT_THREADS) {
        int j = e / DM, d = e % DM, kj = k0 + j;
        int in = kj < S && d < Dh;
        sK[e] = in ? cu_ld(kb, (int64_t)kj * ld + d) : 0.0f;
        sV[e] = in ? cu_ld(vb, (int64_t)kj * ld + d) : 0.0f;
    }
    float biasr[R];
    float dk[R][DL], dv[R][DL];
#pragma unroll
    for (int r = 0; r < R; r++) {
        biasr[r] = att_bias(mask, b, S, k0 + warp * R + r);
#pragma unroll
        for (int dd = 0; dd < DL; dd++) dk[r][dd] = dv[r][dd] = 0.0f;
    }
    float *myPd = sPd + warp * R * ATT_BM, *mydS = sdS + warp * R * ATT_BM;

    for (int q0 = 0; q0 < S; q0 += ATT_BM) {
        __syncthreads();
        for (int e = tid; e < ATT_BM * DM; e += ATT_THREADS) {
            int r = e / DM, d = e % DM, i = q0 + r;
            int in = i < S && d < Dh;
            sQ[r * DP + d] = in ? cu_ld(qb, (int64_t)i * ld + d) : 0.0f;
            sG[r * DP + d] = in ? cu_ld(gb, (int64_t)i * ldc + d) : 0.0f;
        }
        if (tid < ATT_BM) {
            int i = q0 + tid;
            sL[tid] = i < S ? lse[(int64_t)bh * S + i] : 0.0f;
            sD[tid] = i < S ? Dv[(int64_t)bh * S + i] : 0.0f;
        }
        __syncthreads();
        const int i = q0 + lane;
        const float li = sL[lane], Di = sD[lane];
        const int dead = li < ATT_DEAD;
        const float *qi = sQ + lane * DP, *gi = sG + lane * DP;
#pragma unroll
        for (int r = 0; r < R; r++) {
            const int jr = warp * R + r, j = k0 + jr;
            const float *kr = sK + jr * DM, *vr = sV + jr * DM;
            float s = 0.0f, dpd = 0.0f;
#pragma unroll 16
            for (int d = 0; d < DM; d++) {
                s += qi[d] * kr[d];
                dpd += gi[d] * vr[d];
            }
            float P = 0.0f;
            if (i < S && j < S) P = dead ? invS : expf(s * scale + biasr[r] - li);
            float mu = 1.0f;
            if (p > 0.0f && i < S && j < S)
                mu = att_drop1(key, ((uint64_t)bh * S + (uint64_t)i) * S + (uint64_t)j, p, dscale);
            myPd[r * ATT_BM + lane] = P * mu;
            mydS[r * ATT_BM + lane] = P * (dpd * mu - Di);
        }
        __syncwarp();
        for (int ii = 0; ii < ATT_BM; ii++) {
            float g[DL], q[DL];
#pragma unroll
            for (int dd = 0; dd < DL; dd++) {
                g[dd] = sG[ii * DP + lane + 32 * dd];
                q[dd] = sQ[ii * DP + lane + 32 * dd];
            }
#pragma unroll
            for (int r = 0; r < R; r++) {
                float a = myPd[r * ATT_BM + ii], c = mydS[r * ATT_BM + ii];
#pragma unroll
                for (int dd = 0; dd < DL; dd++) {
                    dv[r][dd] += a * g[dd];
                    dk[r][dd] += c * q[dd];
                }
            }
        }
    }
    T *dkb = dqkv + (int64_t)b * S * ld + (int64_t)(H + h) * Dh;
    T *dvb = dqkv + (int64_t)b * S * ld + (int64_t)(2 * H + h) * Dh;
#pragma unroll
    for (int r = 0; r < R; r++) {
        int j = k0 + warp * R + r;
        if (j >= S) continue;
#pragma unroll
        for (int dd = 0; dd < DL; dd++) {
            int d = lane + 32 * dd;
            if (d < Dh) {
                cu_st(dkb, (int64_t)j * ld + d, dk[r][dd] * scale);
                cu_st(dvb, (int64_t)j * ld + d, dv[r][dd]);
            }
        }
    }
}

template <int DM, int BQ>
struct dq_smem {
    static constexpr size_t floats = (size_t)2 * BQ * DM + (size_t)2 * DM * ATT_KP + (size_t)BQ * ATT_BK + ATT_BK;
    static constexpr size_t bytes = floats * sizeof(float);
};

template <typename T, int DM, int BQ>
__global__ void __launch_bounds__(ATT_THREADS) attn_dq_k(const T *__restrict__ qkv, const int32_t *__restrict__ mask,
                                                         int S, int H, int Dh, float scale, float p, float dscale,
                                                         bt_dropout_key key, const float *__restrict__ lse,
                                                         const float *__restrict__ Dv, const T *__restrict__ dctx,
                                                         T *__restrict__ dqkv)
{
    constexpr int R = BQ / 4, DL = DM / 32;
    extern __shared__ float4 sm4[];
    float *sm = (float *)sm4;
    float *sQ = sm;                   /* [BQ][DM] */
    float *sG = sQ + BQ * DM;         /* [BQ][DM] dctx */
    float *sKt = sG + BQ * DM;        /* [DM][KP] */
    float *sVt = sKt + DM * ATT_KP;   /* [DM][KP] */
    float *sS = sVt + DM * ATT_KP;    /* [4][R][BK] dS */
    float *sB = sS + BQ * ATT_BK;     /* [BK] */
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int bh = blockIdx.y, b = bh / H, h = bh % H, q0 = blockIdx.x * BQ;
    const int64_t ld = (int64_t)3 * H * Dh, ldc = (int64_t)H * Dh;
    const T *qb = qkv + (int64_t)b * S * ld + (int64_t)h * Dh;
    const T *kb = qb + (int64_t)H * Dh, *vb = qb + (int64_t)2 * H * Dh;
    const T *gb = dctx + (int64_t)b * S * ldc + (int64_t)h * Dh;
    const float invS = 1.0f / (float)S;

    for (int e = tid; e < BQ * DM; e += ATT_THREADS) {
        int r = e / DM, d = e % DM, i = q0 + r;
        int in = i < S && d < Dh;
        sQ[e] = in ? cu_ld(qb, (int64_t)i * ld + d) : 0.0f;
        sG[e] = in ? cu_ld(gb, (int64_t)i * ldc + d) : 0.0f;
    }
    float li[R], Di[R], acc[R][DL];
#pragma unroll
    for (int r = 0; r < R; r++) {
        int i = q0 + warp * R + r;
        li[r] = i < S ? lse[(int64_t)bh * S + i] : 0.0f;
        Di[r] = i < S ? Dv[(int64_t)bh * S + i] : 0.0f;
#pragma unroll
        for (int dd = 0; dd < DL; dd++) acc[r][dd] = 0.0f;
    }
    float *myS = sS + warp * R * ATT_BK;

    for (int k0 = 0; k0 < S; k0 += ATT_BK) {
        __syncthreads();
        for (int e = tid; e < ATT_BK * DM; e += ATT_THREADS) {
            int j = e / DM, d = e % DM, kj = k0 + j;
            int in = kj < S && d < Dh;
            sKt[d * ATT_KP + j] = in ? cu_ld(kb, (int64_t)kj * ld + d) : 0.0f;
            sVt[d * ATT_KP + j] = in ? cu_ld(vb, (int64_t)kj * ld + d) : 0.0f;
        }
        if (tid < ATT_BK) sB[tid] = att_bias(mask, b, S, k0 + tid);
        __syncthreads();
        const int j0 = k0 + 2 * lane;
        const float bias0 = sB[2 * lane], bias1 = sB[2 * lane + 1];
#pragma unroll
        for (int r = 0; r < R; r++) {
            const int rr = warp * R + r, i = q0 + rr;
            const float *q = sQ + rr * DM, *g = sG + rr * DM;
            float s0 = 0.0f, s1 = 0.0f, dp0 = 0.0f, dp1 = 0.0f;
#pragma unroll 16
            for (int d = 0; d < DM; d++) {
                float qd = q[d], gd = g[d];
                float2 kk = *(const float2 *)(sKt + d * ATT_KP + 2 * lane);
                float2 vv = *(const float2 *)(sVt + d * ATT_KP + 2 * lane);
                s0 += qd * kk.x;
                s1 += qd * kk.y;
                dp0 += gd * vv.x;
                dp1 += gd * vv.y;
            }
            float P0 = 0.0f, P1 = 0.0f;
            if (i < S) {
                int dead = li[r] < ATT_DEAD;
                if (j0 < S) P0 = dead ? invS : expf(s0 * scale + bias0 - li[r]);
                if (j0 + 1 < S) P1 = dead ? invS : expf(s1 * scale + bias1 - li[r]);
                if (p > 0.0f) {
                    float2 mu = att_drop2(key, ((uint64_t)bh * S + (uint64_t)i) * S + (uint64_t)j0, p, dscale);
                    dp0 *= mu.x;
                    dp1 *= mu.y;
                }
            }
            *(float2 *)(myS + r * ATT_BK + 2 * lane) = make_float2(P0 * (dp0 - Di[r]), P1 * (dp1 - Di[r]));
        }
        __syncwarp();
        for (int j = 0; j < ATT_BK; j++) {
            float kv[DL];
#pragma unroll
            for (int dd = 0; dd < DL; dd++) kv[dd] = sKt[(lane + 32 * dd) * ATT_KP + j];
#pragma unroll
            for (int r = 0; r < R; r++) {
                float ds = myS[r * ATT_BK + j];
#pragma unroll
                for (int dd = 0; dd < DL; dd++) acc[r][dd] += ds * kv[dd];
            }
        }
    }
    T *dqb = dqkv + (int64_t)b * S * ld + (int64_t)h * Dh;
#pragma unroll
    for (int r = 0; r < R; r++) {
        int i = q0 + warp * R + r;
        if (i >= S) continue;
#pragma unroll
        for (int dd = 0; dd < DL; dd++) {
            int d = lane + 32 * dd;
            if (d < Dh) cu_st(dqb, (int64_t)i * ld + d, acc[r][dd] * scale);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* launchers                                                                 */

static int att_dm(int Dh) { return Dh <= 32 ? 32 : Dh <= 64 ? 64 : 128; }

/* Opt in to the dynamic shared memory a kernel needs; false (after a sticky
 * error) when this GPU cannot give it. */
template <typename K>
static bool att_smem(bt_backend *be, K kernel, size_t bytes, int Dh, const char *what)
{
    cuda_impl *im = cu_impl(be);
    if (bytes > im->smem_optin) {
        cuda_fail(be, BT_ECONFIG, __FILE__, __LINE__,
                  "%s: head dim %d needs %zu bytes of shared memory per block even with 16-row query tiles, "
                  "this GPU (sm_%d%d) allows %zu; use a model with head dim <= 64 (hidden_size / "
                  "num_attention_heads) on this GPU, or a GPU with more shared memory per block (V100, A100, H100)",
                  what, Dh, bytes, im->cc_major, im->cc_minor, im->smem_optin);
        return false;
    }
    if (bytes > 48 * 1024)
        return CU_CHECK(be, cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes)) == 0;
    return true;
}

struct att_call {
    const void *qkv;
    const int32_t *mask;
    int B, S, H, Dh;
    float scale, p, dscale;
    bt_dropout_key key;
};

template <typename T, int DM, int BQ>
static void fwd_launch(bt_backend *be, const att_call &c, void *ctx, float *lse)
{
    size_t bytes = fwd_smem<DM, BQ>::bytes;
    if (!att_smem(be, attn_fwd_k<T, DM, BQ>, bytes, c.Dh, "attention_fwd")) return;
    dim3 grid((unsigned)((c.S + BQ - 1) / BQ), (unsigned)(c.B * c.H));
    attn_fwd_k<T, DM, BQ><<<grid, ATT_THREADS, bytes, cu_stream(be)>>>(
        (const T *)c.qkv, c.mask, c.S, c.H, c.Dh, c.scale, c.p, c.dscale, c.key, (T *)ctx, lse);
    CU_LAUNCHED(be, "attention_fwd kernel");
}

template <typename T, int DM, int BQ, int BN>
static void bwd_launch(bt_backend *be, const att_call &c, const float *lse, const float *Dv, const void *dctx, void *dqkv)
{
    size_t b1 = dkdv_smem<DM, BN>::bytes, b2 = dq_smem<DM, BQ>::bytes;
    if (!att_smem(be, attn_dkdv_k<T, DM, BN>, b1, c.Dh, "attention_bwd(dk,dv)")) return;
    if (!att_smem(be, attn_dq_k<T, DM, BQ>, b2, c.Dh, "attention_bwd(dq)")) return;
    dim3 g1((unsigned)((c.S + BN - 1) / BN), (unsigned)(c.B * c.H));
    attn_dkdv_k<T, DM, BN><<<g1, ATT_THREADS, b1, cu_stream(be)>>>((const T *)c.qkv, c.mask, c.S, c.H, c.Dh, c.scale,
                                                                   c.p, c.dscale, c.key, lse, Dv, (const T *)dctx,
                                                                   (T *)dqkv);
    if (CU_LAUNCHED(be, "attention_bwd dk/dv kernel")) return;
    dim3 g2((unsigned)((c.S + BQ - 1) / BQ), (unsigned)(c.B * c.H));
    attn_dq_k<T, DM, BQ><<<g2, ATT_THREADS, b2, cu_stream(be)>>>((const T *)c.qkv, c.mask, c.S, c.H, c.Dh, c.scale, c.p,
                                                                 c.dscale, c.key, lse, Dv, (const T *)dctx, (T *)dqkv);
    CU_LAUNCHED(be, "attention_bwd dq kernel");
}

static void check_qkv(const char *who, const bt_tensor *qkv, const bt_tensor *mask, int B, int S, int H, int Dh)
{
    CU_REQUIRE(B > 0 && S > 0 && H > 0 && Dh > 0, "%s: B, S, H, Dh must be positive", who);
    CU_REQUIRE(Dh <= 128, "%s: head dim %d > 128 is not supported by the CUDA attention kernels", who, Dh);
    CU_REQUIRE(B * H <= 65535, "%s: B*H = %d exceeds 65535", who, B * H);
    CU_REQUIRE(cu_is_float(qkv->dtype) && bt_numel(qkv) == (int64_t)B * S * 3 * H * Dh,
               "%s: qkv must be float [B=%d,S=%d,3,H=%d,Dh=%d] (numel %lld)", who, B, S, H, Dh,
               (long long)bt_numel(qkv));
    CU_REQUIRE(mask == NULL || (mask->dtype == BT_I32 && bt_numel(mask) == (int64_t)B * S),
               "%s: mask must be int32 [B=%d,S=%d]", who, B, S);
}

static void cu_attention_fwd(bt_backend *be, const bt_tensor *qkv, const bt_tensor *mask, int B, int S, int H, int Dh,
                             float scale, float p_drop, bt_dropout_key key, bt_tensor *ctx, bt_tensor *probs,
                             bt_tensor *lse)
{
    if (cu_dead(be)) return;
    check_qkv("attention_fwd", qkv, mask, B, S, H, Dh);
    CU_REQUIRE(ctx->dtype == qkv->dtype && bt_numel(ctx) == (int64_t)B * S * H * Dh,
               "attention_fwd: ctx must be [B,S,H,Dh] of qkv's dtype");
    CU_REQUIRE(probs == NULL || (probs->dtype == BT_F32 && bt_numel(probs) == (int64_t)B * H * S * S),
               "attention_fwd: probs must be F32 [B,H,S,S]");
    CU_REQUIRE(lse == NULL || (lse->dtype == BT_F32 && bt_numel(lse) == (int64_t)B * H * S),
               "attention_fwd: lse must be F32 [B,H,S]");
    float *L = lse ? (float *)lse->data : NULL;
    if (!L && probs) {
        L = (float *)cuda_scratch(be, bt_ws_cuda_attention_rows(B, S, H));
        if (!L) return;
    }
    att_call c = {qkv->data, mask ? (const int32_t *)mask->data : NULL, B, S, H, Dh, scale,
                  p_drop > 0.0f ? p_drop : 0.0f, cu_dropout_scale(p_drop), key};
    if (p_drop >= 1.0f) c.p = 2.0f; /* every draw < 2: all dropped, as the CPU (mult 0) */
    int dm = att_dm(Dh), big = !cu_impl(be)->att_small;
    CU_DISPATCH(qkv->dtype, T, {
        if (dm == 32 && big) fwd_launch<T, 32, 32>(be, c, ctx->data, L);
        else if (dm == 32) fwd_launch<T, 32, 16>(be, c, ctx->data, L);
        else if (dm == 64 && big && fwd_smem<64, 32>::bytes <= cu_impl(be)->smem_optin)
            fwd_launch<T, 64, 32>(be, c, ctx->data, L);
        else if (dm == 64) fwd_launch<T, 64, 16>(be, c, ctx->data, L);
        else fwd_launch<T, 128, 16>(be, c, ctx->data, L);
        if (probs && !cu_dead(be)) {
            attn_probs_k<T><<<dim3((unsigned)S, (unsigned)(B * H)), 128, 0, cu_stream(be)>>>(
                (const T *)qkv->data, c.mask, S, H, Dh, scale, L, (float *)probs->data);
            CU_LAUNCHED(be, "attention probs kernel");
        }
    });
}

static void cu_attention_bwd(bt_backend *be, const bt_tensor *qkv, const bt_tensor *mask, int B, int S, int H, int Dh,
                             float scale, float p_drop, bt_dropout_key key, const bt_tensor *ctx,
                             const bt_tensor *probs, const bt_tensor *lse, const bt_tensor *dctx, bt_tensor *dqkv)
{
    if (cu_dead(be)) return;
    (void)probs; /* recomputed from lse */
    check_qkv("attention_bwd", qkv, mask, B, S, H, Dh);
    CU_REQUIRE(lse != NULL && lse->dtype == BT_F32 && bt_numel(lse) == (int64_t)B * H * S,
               "attention_bwd: the CUDA backend needs the forward's lse F32 [B,H,S]");
    CU_REQUIRE(ctx != NULL && ctx->dtype == qkv->dtype && bt_numel(ctx) == (int64_t)B * S * H * Dh,
               "attention_bwd: ctx (the forward's output) must be [B,S,H,Dh] of qkv's dtype");
    CU_REQUIRE(dctx->dtype == qkv->dtype && bt_numel(dctx) == (int64_t)B * S * H * Dh,
               "attention_bwd: dctx must be [B,S,H,Dh] of qkv's dtype");
    CU_REQUIRE(dqkv->dtype == qkv->dtype && bt_numel(dqkv) == bt_numel(qkv),
               "attention_bwd: dqkv must be [B,S,3,H,Dh] of qkv's dtype");
    float *Dv = (float *)cuda_scratch(be, bt_ws_cuda_attention_rows(B, S, H));
    if (!Dv) return;
    att_call c = {qkv->data, mask ? (const int32_t *)mask->data : NULL, B, S, H, Dh, scale,
                  p_drop > 0.0f ? p_drop : 0.0f, cu_dropout_scale(p_drop), key};
    if (p_drop >= 1.0f) c.p = 2.0f;
    int64_t rows = (int64_t)B * S * H;
    int dm = att_dm(Dh), big = !cu_impl(be)->att_small;
    const float *Lp = (const float *)lse->data;
    CU_DISPATCH(qkv->dtype, T, {
        attn_dpre_k<T><<<cu_blocks(rows, 4, INT32_MAX), 128, 0, cu_stream(be)>>>(
            (const T *)ctx->data, (const T *)dctx->data, B, S, H, Dh, Dv);
        if (CU_LAUNCHED(be, "attention_bwd preprocess kernel")) return;
        if (dm == 32 && big) bwd_launch<T, 32, 32, 32>(be, c, Lp, Dv, dctx->data, dqkv->data);
        else if (dm == 32) bwd_launch<T, 32, 16, 16>(be, c, Lp, Dv, dctx->data, dqkv->data);
        else if (dm == 64 && big && dq_smem<64, 32>::bytes <= cu_impl(be)->smem_optin)
            bwd_launch<T, 64, 32, 32>(be, c, Lp, Dv, dctx->data, dqkv->data);
        else if (dm == 64) bwd_launch<T, 64, 16, 16>(be, c, Lp, Dv, dctx->data, dqkv->data);
        else bwd_launch<T, 128, 16, 16>(be, c, Lp, Dv, dctx->data, dqkv->data);
    });
}

/* The backward recomputes P from lse at every length (O(S) memory per row). */
static int cu_attention_wants_probs(bt_backend *be, int S, int Dh)
{
    (void)be; (void)S; (void)Dh;
    return 0;
}

void cu_attention_install(bt_backend *be)
{
    be->attention_fwd = cu_attention_fwd;
    be->attention_bwd = cu_attention_bwd;
    be->attention_wants_probs = cu_attention_wants_probs;
}
