/* kernels/cuda/cuda_relattn.cu — disentangled attention (DeBERTa-v2/v3),
 * forward and backward, for the CUDA backend (semantics: kernels/backend.h,
 * rel_attention_fwd / rel_attention_bwd; reference: kernels/cpu/cpu_relattn.c).
 *
 * Owns: these kernels and their launchers (installed by cu_relattn_install()).
 * Must not: use float atomics or a reduction whose order depends on timing;
 * store dropout masks (regenerated from Philox at the flat [B,H,S,S] index).
 *
 * A straightforward implementation (correct first; no tiling or tensor
 * cores): math in F32, qkv/pos/ctx (dctx, dqkv, dpos) F32, F16 or BF16.
 *  fwd    block = one query row (i, b*h), 128 threads: thread-strided scores
 *         over the keys (each a Dh dot product read from global memory), the
 *         row max and sum by a fixed shared-memory tree, P written to probs,
 *         then ctx[d] = sum_j Pd_j v_j[d] (thread per d, j ascending).
 *  dq     block = one query row: dP_j = dctx_i . v_j (times the dropout
 *         multiplier), rowsum(P dP) by the fixed tree, dS_j = scale P_j (dP_j -
 *         rowsum) into scratch [B,H,S,S], then dq[d] = sum_j dS_j (k_j[d] +
 *         c2p pk_r[d]) (j ascending).
 *  dkdv   block = one key row (j, b*h): dk[d] = sum_i dS_ij (q_i[d] + p2c
 *         pq_r[d]), dv[d] = sum_i Pd_ij dctx_i[d] (i ascending).
 *  dpos   block = (row r, head h): dpk_r = c2p sum dS_ij q_i, dpq_r = p2c sum
 *         dS_ij k_j over b, then the deltas i - j whose relidx is r, then i,
 *         all ascending; the v part is written 0.
 * Every output element is written by one thread after a fixed-order loop:
 * bit-identical run after run; equal to the CPU backend up to rounding.
 */
#include "kernels/cuda/cuda_internal.cuh"
#include "kernels/workspace.h"

#include <float.h>
#include <math.h>

#define RA_THREADS 128

typedef struct {
    int B, S, H, Dh, R, c2p, p2c;
    float scale, p, dscale;
    bt_dropout_key key;
} ra_call;

__device__ __forceinline__ float ra_mult(const ra_call &c, uint64_t idx)
{
    if (c.p <= 0.0f) return 1.0f;
    return bt_dropout_keep_raw(c.key.seed, c.key.step, c.key.micro, c.key.layer, c.key.site, idx, c.p) ? c.dscale
                                                                                                        : 0.0f;
}

/* fixed-order tree over blockDim.x (a power of two) values in red[] */
__device__ float ra_tree(float *red, float v, int is_max)
{
    int t = threadIdx.x;
    red[t] = v;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if (t < w) red[t] = is_max ? fmaxf(red[t], red[t + w]) : red[t] + red[t + w];
        __syncthreads();
    }
    float r = red[0];
    __syncthreads();
    return r;
}

template <typename T>
__device__ float ra_dot(const T *a, const T *b, int n)
{
    float s = 0.0f;
    for (int d = 0; d < n; d++) s += cu_ld(a, d) * cu_ld(b, d);
    return s;
}

/* grid (S, B*H); dynamic smem: S floats (the row) + RA_THREADS floats */
template <typename T>
__global__ void ra_fwd_k(ra_call c, const T *qkv, const T *pos, const int32_t *ri, const int32_t *mask, T *ctx,
                         float *probs)
{
    extern __shared__ float sm[];
    float *row = sm, *red = sm + c.S;
    int i = blockIdx.x, bh = blockIdx.y, b = bh / c.H, h = bh % c.H, S = c.S, Dh = c.Dh;
    int64_t ld = 3 * (int64_t)c.H * Dh, HD = (int64_t)c.H * Dh;
    const T *q = qkv + ((int64_t)b * S + i) * ld + (int64_t)h * Dh;
    T *out = ctx + ((int64_t)b * S + i) * HD + (int64_t)h * Dh;
    float *prow = probs ? probs + ((int64_t)bh * S + i) * S : NULL;
    if (mask && !mask[(int64_t)b * S + i]) { /* padding query row: P = 0, ctx 0 */
        for (int j = threadIdx.x; j < S; j += blockDim.x)
            if (prow) prow[j] = 0.0f;
        for (int d = threadIdx.x; d < Dh; d += blockDim.x) cu_st(out, d, 0.0f);
        return;
    }
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < S; j += blockDim.x) {
        const T *k = qkv + ((int64_t)b * S + j) * ld + HD + (int64_t)h * Dh;
        int r = ri[i - j + S - 1];
        float v = ra_dot(q, k, Dh);
        if (c.c2p) v += ra_dot(q, pos + (int64_t)r * ld + HD + (int64_t)h * Dh, Dh);
        if (c.p2c) v += ra_dot(k, pos + (int64_t)r * ld + (int64_t)h * Dh, Dh);
        v = v * c.scale + ((mask && !mask[(int64_t)b * S + j]) ? -FLT_MAX : 0.0f);
        row[j] = v;
        mx = fmaxf(mx, v);
    }
    mx = ra_tree(red, mx, 1);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < S; j += blockDim.x) {
        float e = expf(row[j] - mx);
        row[j] = e;
        sum += e;
    }
    sum = ra_tree(red, sum, 0);
    float inv = 1.0f / sum;
    for (int j = threadIdx.x; j < S; j += blockDim.x) {
        float p = row[j] * inv;
        if (prow) prow[j] = p;
        row[j] = p * ra_mult(c, ((uint64_t)bh * S + (uint64_t)i) * (uint64_t)S + (uint64_t)j);
    }
    __syncthreads();
    for (int d = threadIdx.x; d < Dh; d += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < S; j++) acc += row[j] * cu_ld(qkv, ((int64_t)b * S + j) * ld + 2 * HD + (int64_t)h * Dh + d);
        cu_st(out, d, acc);
    }
}

/* grid (S, B*H): dS row i into ds, dq_i */
template <typename T>
__global__ void ra_dq_k(ra_call c, const T *qkv, const T *pos, const int32_t *ri, const float *probs, const T *dctx,
                        float *ds, T *dqkv)
{
    extern __shared__ float sm[];
    float *row = sm, *red = sm + c.S;
    int i = blockIdx.x, bh = blockIdx.y, b = bh / c.H, h = bh % c.H, S = c.S, Dh = c.Dh;
    int64_t ld = 3 * (int64_t)c.H * Dh, HD = (int64_t)c.H * Dh;
    const float *P = probs + ((int64_t)bh * S + i) * S;
    const T *dc = dctx + ((int64_t)b * S + i) * HD + (int64_t)h * Dh;
    float dot = 0.0f;
    for (int j = threadIdx.x; j < S; j += blockDim.x) {
        const T *v = qkv + ((int64_t)b * S + j) * ld + 2 * HD + (int64_t)h * Dh;
        float dp = ra_dot(dc, v, Dh) * ra_mult(c, ((uint64_t)bh * S + (uint64_t)i) * (uint64_t)S + (uint64_t)j);
        row[j] = dp;
        dot += P[j] * dp;
    }
    dot = ra_tree(red, dot, 0);
    for (int j = threadIdx.x; j < S; j += blockDim.x) {
        float d = c.scale * (P[j] * (row[j] - dot));
        row[j] = d;
        ds[((int64_t)bh * S + i) * S + j] = d;
    }
    __syncthreads();
    for (int d = threadIdx.x; d < Dh; d += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < S; j++) {
            float k = cu_ld(qkv, ((int64_t)b * S + j) * ld + HD + (int64_t)h * Dh + d);
            if (c.c2p) k += cu_ld(pos, (int64_t)ri[i - j + S - 1] * ld + HD + (int64_t)h * Dh + d);
            acc += row[j] * k;
        }
        cu_st(dqkv, ((int64_t)b * S + i) * ld + (int64_t)h * Dh + d, acc);
    }
}

/* grid (S, B*H): dk_j, dv_j */
template <typename T>
__global__ void ra_dkdv_k(ra_call c, const T *qkv, const T *pos, const int32_t *ri, const float *probs,
                          const T *dctx, const float *ds, T *dqkv)
{
    int j = blockIdx.x, bh = blockIdx.y, b = bh / c.H, h = bh % c.H, S = c.S, Dh = c.Dh;
    int64_t ld = 3 * (int64_t)c.H * Dh, HD = (int64_t)c.H * Dh;
    for (int d = threadIdx.x; d < Dh; d += blockDim.x) {
        float ak = 0.0f, av = 0.0f;
        for (int i = 0; i < S; i++) {
            int64_t pij = ((int64_t)bh * S + i) * S + j;
            float q = cu_ld(qkv, ((int64_t)b * S + i) * ld + (int64_t)h * Dh + d);
            if (c.p2c) q += cu_ld(pos, (int64_t)ri[i - j + S - 1] * ld + (int64_t)h * Dh + d);
            ak += ds[pij] * q;
            av += probs[pij] * ra_mult(c, (uint64_t)pij) * cu_ld(dctx, ((int64_t)b * S + i) * HD + (int64_t)h * Dh + d);
        }
        cu_st(dqkv, ((int64_t)b * S + j) * ld + HD + (int64_t)h * Dh + d, ak);
        cu_st(dqkv, ((int64_t)b * S + j) * ld + 2 * HD + (int64_t)h * Dh + d, av);
    }
}

/* grid (R, H): dpq_r, dpk_r of head h (the v part 0) */
template <typename T>
__global__ void ra_dpos_k(ra_call c, const T *qkv, const int32_t *ri, const float *ds, T *dpos)
{
    int r = blockIdx.x, h = blockIdx.y, S = c.S, Dh = c.Dh;
    int64_t ld = 3 * (int64_t)c.H * Dh, HD = (int64_t)c.H * Dh;
    for (int d = threadIdx.x; d < Dh; d += blockDim.x) {
        float aq = 0.0f, ak = 0.0f;
        for (int b = 0; b < c.B; b++) {
            int64_t bh = (int64_t)b * c.H + h;
            for (int e = 0; e < 2 * S - 1; e++) {
                if (ri[e] != r) continue;
                int delta = e - (S - 1); /* i - j */
                for (int i = delta > 0 ? delta : 0; i < S && i - delta < S; i++) {
                    int j = i - delta;
                    float g = ds[(bh * S + i) * S + j];
                    if (c.c2p) ak += g * cu_ld(qkv, ((int64_t)b * S + i) * ld + (int64_t)h * Dh + d);
                    if (c.p2c) aq += g * cu_ld(qkv, ((int64_t)b * S + j) * ld + HD + (int64_t)h * Dh + d);
                }
            }
        }
        cu_st(dpos, (int64_t)r * ld + (int64_t)h * Dh + d, aq);
        cu_st(dpos, (int64_t)r * ld + HD + (int64_t)h * Dh + d, ak);
        cu_st(dpos, (int64_t)r * ld + 2 * HD + (int64_t)h * Dh + d, 0.0f);
    }
}

static void check_args(const char *who, const bt_tensor *qkv, const bt_tensor *pos, const bt_tensor *relidx,
                       const bt_tensor *mask, const bt_rel_attn *a)
{
    int64_t B = a->B, S = a->S, H = a->H, Dh = a->Dh, R = a->R;
    CU_REQUIRE(B > 0 && S > 0 && H > 0 && Dh > 0 && R > 0 && S <= 8192, "%s: shape (S <= 8192)", who);
    CU_REQUIRE(cu_is_float(qkv->dtype) && bt_numel(qkv) == B * S * 3 * H * Dh,
               "%s: qkv must be float [B,S,3,H,Dh]", who);
    CU_REQUIRE(pos->dtype == qkv->dtype && bt_numel(pos) == R * 3 * H * Dh, "%s: pos must be [R,3,H,Dh]", who);
    CU_REQUIRE(relidx->dtype == BT_I32 && bt_numel(relidx) == 2 * S - 1, "%s: relidx must be int32 [2S-1]", who);
    CU_REQUIRE(!mask || (mask->dtype == BT_I32 && bt_numel(mask) == B * S), "%s: mask must be int32 [B,S]", who);
}

static ra_call call_of(const bt_rel_attn *a)
{
    ra_call c = {a->B, a->S, a->H, a->Dh, a->R, a->c2p, a->p2c, a->scale, a->p_drop > 0.0f ? a->p_drop : 0.0f,
                 cu_dropout_scale(a->p_drop), a->key};
    if (a->p_drop >= 1.0f) c.p = 2.0f; /* every draw < 2: all dropped, as the CPU (mult 0) */
    return c;
}

static void cu_rel_attention_fwd(bt_backend *be, const bt_tensor *qkv, const bt_tensor *pos, const bt_tensor *relidx,
                                 const bt_tensor *mask, const bt_rel_attn *a, bt_tensor *ctx, bt_tensor *probs)
{
    if (cu_dead(be)) return;
    check_args("rel_attention_fwd", qkv, pos, relidx, mask, a);
    CU_REQUIRE(ctx->dtype == qkv->dtype && bt_numel(ctx) == (int64_t)a->B * a->S * a->H * a->Dh,
               "rel_attention_fwd: ctx must be [B,S,H,Dh] of qkv's dtype");
    CU_REQUIRE(!probs || (probs->dtype == BT_F32 && bt_numel(probs) == (int64_t)a->B * a->H * a->S * a->S),
               "rel_attention_fwd: probs must be F32 [B,H,S,S]");
    ra_call c = call_of(a);
    size_t smem = sizeof(float) * ((size_t)a->S + RA_THREADS);
    dim3 grid((unsigned)a->S, (unsigned)(a->B * a->H));
    CU_DISPATCH(qkv->dtype, T, ra_fwd_k<T><<<grid, RA_THREADS, smem, cu_stream(be)>>>(
        c, (const T *)qkv->data, (const T *)pos->data, (const int32_t *)relidx->data,
        mask ? (const int32_t *)mask->data : (const int32_t *)NULL, (T *)ctx->data,
        probs ? (float *)probs->data : (float *)NULL));
    CU_LAUNCHED(be, "rel_attention forward kernel");
}

static void cu_rel_attention_bwd(bt_backend *be, const bt_tensor *qkv, const bt_tensor *pos, const bt_tensor *relidx,
                                 const bt_tensor *mask, const bt_rel_attn *a, const bt_tensor *probs,
                                 const bt_tensor *dctx, bt_tensor *dqkv, bt_tensor *dpos)
{
    if (cu_dead(be)) return;
    (void)mask; /* P of a padding query row is 0: its dS is 0 */
    check_args("rel_attention_bwd", qkv, pos, relidx, mask, a);
    int64_t nP = (int64_t)a->B * a->H * a->S * a->S;
    CU_REQUIRE(probs && probs->dtype == BT_F32 && bt_numel(probs) == nP,
               "rel_attention_bwd: the forward's probs [B,H,S,S] are required");
    CU_REQUIRE(dctx->dtype == qkv->dtype && bt_numel(dctx) == (int64_t)a->B * a->S * a->H * a->Dh &&
                   dqkv->dtype == qkv->dtype && bt_numel(dqkv) == bt_numel(qkv) && dpos->dtype == qkv->dtype &&
                   bt_numel(dpos) == bt_numel(pos),
               "rel_attention_bwd: dctx [B,S,H,Dh], dqkv like qkv and dpos like pos, of qkv's dtype");
    float *ds = (float *)cuda_scratch(be, bt_ws_cuda_rel_attention_bwd(a->B, a->S, a->H)); /* [nP] */
    if (!ds) return;
    ra_call c = call_of(a);
    size_t smem = sizeof(float) * ((size_t)a->S + RA_THREADS);
    dim3 grid((unsigned)a->S, (unsigned)(a->B * a->H)), gpos((unsigned)a->R, (unsigned)a->H);
    const int32_t *ri = (const int32_t *)relidx->data;
    const float *P = (const float *)probs->data;
    CU_DISPATCH(qkv->dtype, T, {
        ra_dq_k<T><<<grid, RA_THREADS, smem, cu_stream(be)>>>(c, (const T *)qkv->data, (const T *)pos->data, ri, P,
                                                               (const T *)dctx->data, ds, (T *)dqkv->data);
        if (CU_LAUNCHED(be, "rel_attention dq kernel")) return;
        ra_dkdv_k<T><<<grid, 64, 0, cu_stream(be)>>>(c, (const T *)qkv->data, (const T *)pos->data, ri, P,
                                                      (const T *)dctx->data, ds, (T *)dqkv->data);
        if (CU_LAUNCHED(be, "rel_attention dk/dv kernel")) return;
        ra_dpos_k<T><<<gpos, 64, 0, cu_stream(be)>>>(c, (const T *)qkv->data, ri, ds, (T *)dpos->data);
        CU_LAUNCHED(be, "rel_attention dpos kernel");
    });
}

void cu_relattn_install(bt_backend *be)
{
    be->rel_attention_fwd = cu_rel_attention_fwd;
    be->rel_attention_bwd = cu_rel_attention_bwd;
}
