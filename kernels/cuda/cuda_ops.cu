/* kernels/cuda/cuda_ops.cu — every CUDA op except GEMM (backend_cuda.cu) and
 * attention (cuda_attention.cu): GEMM epilogue fallback, bias gradient,
 * elementwise ops, layer norm, embeddings, row gathers, losses, AdamW, and the
 * global reductions (sum of squares, finiteness).
 *
 * Owns: these kernels and their host wrappers (installed into the vtable by
 * cu_ops_install()).
 * Must not: use float atomics or any reduction whose order depends on timing
 * or on the GPU (SM count): every reduction below has a fixed shape decided
 * by the problem size only, so results are bit-identical run after run and
 * across GPUs of the same architecture (and, except for cuBLASLt GEMMs, across
 * architectures, modulo the compiler's FMA contraction per target).
 *
 * Dtypes: parameters, gradients of parameters, optimizer state, mean/rstd,
 * losses: F32. Activation tensors (x, y, dy, logits, ...) may be F32, F16 or
 * BF16; all tensors of one role share a dtype (see docs/cuda.md); math is F32
 * (double where the CPU reference uses double for a reduction).
 */
#include "kernels/cuda/cuda_internal.cuh"
#include "kernels/workspace.h"

#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include <float.h>
#include <math.h>
#include <string.h>

#define TPB 256

/* ------------------------------------------------------------------------ */
/* shared device helpers                                                     */

#define GELU_ALPHA 0.70710678118654752440f /* 1/sqrt(2) */
#define GELU_PDF 0.39894228040143267794f   /* 1/sqrt(2 pi) */
#define GELU_BETA 0.79788456080286535588f  /* sqrt(2/pi) */
#define GELU_KAPPA 0.044715f

__device__ __forceinline__ float d_gelu_erf(float x) { return x * 0.5f * (1.0f + erff(x * GELU_ALPHA)); }
__device__ __forceinline__ float d_gelu_tanh(float x)
{
    float inner = GELU_BETA * (x + GELU_KAPPA * (x * x * x));
    return 0.5f * x * (1.0f + tanhf(inner));
}
__device__ __forceinline__ float d_gelu_erf_grad(float x)
{
    float cdf = 0.5f * (1.0f + erff(x * GELU_ALPHA));
    float pdf = GELU_PDF * expf(x * x * -0.5f);
    return cdf + x * pdf;
}
__device__ __forceinline__ float d_gelu_tanh_grad(float x)
{
    float x_sq = x * x;
    float inner = GELU_BETA * (x + GELU_KAPPA * (x_sq * x));
    float t = tanhf(inner);
    float left = 0.5f * x, right = 1.0f + t;
    float left_d = 0.5f * right;
    float right_d = left * (1.0f - t * t) * (GELU_BETA * (1.0f + 3.0f * GELU_KAPPA * x_sq));
    return left_d + right_d;
}

__device__ __forceinline__ float d_act(int act, float x)
{
    switch (act) {
    case BT_ACT_GELU_ERF: return d_gelu_erf(x);
    case BT_ACT_GELU_TANH: return d_gelu_tanh(x);
    case BT_ACT_RELU: return x > 0.0f ? x : 0.0f;
    default: return tanhf(x);
    }
}

__device__ __forceinline__ float d_act_grad(int act, float x, float g)
{
    switch (act) {
    case BT_ACT_GELU_ERF: return g * d_gelu_erf_grad(x);
    case BT_ACT_GELU_TANH: return g * d_gelu_tanh_grad(x);
    case BT_ACT_RELU: return x > 0.0f ? g : 0.0f;
    default: { float t = tanhf(x); return g * (1.0f - t * t); }
    }
}

/* Block-wide reductions for TPB threads through shared memory, fixed tree:
 * deterministic. Every thread gets the result. */
template <typename V, typename OP>
__device__ __forceinline__ V block_reduce(V v, V *sm, OP op)
{
    int t = threadIdx.x;
    sm[t] = v;
    __syncthreads();
    for (int s = TPB / 2; s > 0; s >>= 1) {
        if (t < s) sm[t] = op(sm[t], sm[t + s]);
        __syncthreads();
    }
    V r = sm[0];
    __syncthreads();
    return r;
}
struct op_add { template <typename V> __device__ V operator()(V a, V b) const { return a + b; } };
struct op_max { __device__ float operator()(float a, float b) const { return fmaxf(a, b); } };

#define GRID_STRIDE(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

/* ------------------------------------------------------------------------ */
/* GEMM helpers: bias + GELU by hand, C = beta C                             */

template <typename T>
__global__ void bias_gelu_k(T *C, int64_t n, int64_t N, const float *bias, int epi, T *pre)
{
    GRID_STRIDE(i, n)
    {
        float v = cu_ld(C, i);
        if (bias) v += bias[i % N];
        if (epi == BT_EPI_NONE) {
            cu_st(C, i, v);
        } else {
            if (pre) cu_st(pre, i, v);
            cu_st(C, i, epi == BT_EPI_GELU_ERF ? d_gelu_erf(v) : d_gelu_tanh(v));
        }
    }
}

void cu_bias_gelu(bt_backend *be, bt_tensor *C, const float *bias, int epi, bt_tensor *pre)
{
    if (cu_dead(be)) return;
    int64_t n = bt_numel(C), N = cu_cols(C);
    CU_DISPATCH(C->dtype, T, bias_gelu_k<T><<<cu_blocks(n, TPB), TPB, 0, cu_stream(be)>>>(
                                 (T *)C->data, n, N, bias, epi, pre ? (T *)pre->data : (T *)NULL));
    CU_LAUNCHED(be, "bias_gelu kernel");
}

template <typename T>
__global__ void fill_scaled_k(T *C, int64_t n, float beta)
{
    GRID_STRIDE(i, n) cu_st(C, i, beta == 0.0f ? 0.0f : beta * cu_ld(C, i));
}

void cu_fill_scaled(bt_backend *be, bt_tensor *C, float beta)
{
    if (cu_dead(be)) return;
    int64_t n = bt_numel(C);
    CU_DISPATCH(C->dtype, T, fill_scaled_k<T><<<cu_blocks(n, TPB), TPB, 0, cu_stream(be)>>>((T *)C->data, n, beta));
    CU_LAUNCHED(be, "fill_scaled kernel");
}

/* ------------------------------------------------------------------------ */
/* bias_grad: pass 1 sums chunks of BG_ROWS rows per column (32 columns x 8
 * row lanes per block, lanes combined in order), pass 2 sums the chunks of a
 * column in order (double). Shape depends only on (M, N).                   */

#define BG_ROWS BT_CUDA_BG_ROWS

template <typename T>
__global__ void bias_grad_p1(const T *dY, int64_t M, int64_t N, float *part)
{
    __shared__ float sm[8][33];
    int tx = threadIdx.x, ty = threadIdx.y;
    int64_t c = (int64_t)blockIdx.x * 32 + tx, chunk = blockIdx.y;
    float acc = 0.0f;
    if (c < N) {
        int64_t r0 = chunk * BG_ROWS, r1 = r0 + BG_ROWS < M ? r0 + BG_ROWS : M;
        for (int64_t r = r0 + ty; r < r1; r += 8) acc += cu_ld(dY, r * N + c);
    }
    sm[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && c < N) {
        float s = sm[0][tx];
        for (int k = 1; k < 8; k++) s += sm[k][tx];
        part[chunk * N + c] = s;
    }
}

__global__ void colsum_p2(const float *part, int64_t nchunks, int64_t N, float *out, int accumulate,
                          int64_t stride)
{
    GRID_STRIDE(c, N)
    {
        double s = 0.0;
        for (int64_t k = 0; k < nchunks; k++) s += part[k * stride + c];
        out[c] = accumulate ? out[c] + (float)s : (float)s;
    }
}

static void cu_bias_grad(bt_backend *be, const bt_tensor *dY, bt_tensor *dbias, int accumulate)
{
    if (cu_dead(be)) return;
    int64_t M = cu_rows(dY), N = cu_cols(dY);
    CU_REQUIRE(cu_is_float(dY->dtype) && dbias->dtype == BT_F32 && bt_numel(dbias) == N,
               "bias_grad: dY float, dbias F32 [%lld]", (long long)N);
    if (N == 0) return;
    int64_t nch = (M + BG_ROWS - 1) / BG_ROWS;
    if (nch == 0) {
        if (!accumulate) CU_CHECK(be, cudaMemsetAsync(dbias->data, 0, sizeof(float) * N, cu_stream(be)));
        return;
    }
    CU_REQUIRE(nch < 65536, "bias_grad: %lld rows is too many (max %d)", (long long)M, 65535 * BG_ROWS);
    float *part = (float *)cuda_scratch(be, bt_ws_cuda_bias_grad(M, N));
    if (!part) return;
    dim3 g((unsigned)((N + 31) / 32), (unsigned)nch), b(32, 8);
    CU_DISPATCH(dY->dtype, T, bias_grad_p1<T><<<g, b, 0, cu_stream(be)>>>((const T *)dY->data, M, N, part));
    CU_LAUNCHED(be, "bias_grad pass 1");
    colsum_p2<<<cu_blocks(N, TPB), TPB, 0, cu_stream(be)>>>(part, nch, N, (float *)dbias->data, accumulate, N);
    CU_LAUNCHED(be, "bias_grad pass 2");
}

/* ------------------------------------------------------------------------ */
/* elementwise                                                               */

static void check_same(const char *who, const bt_tensor *a, const bt_tensor *b)
{
    CU_REQUIRE(cu_is_float(a->dtype) && a->dtype == b->dtype && bt_numel(a) == bt_numel(b),
               "%s: tensors of one float dtype and equal numel expected (dtypes %d/%d, numel %lld vs %lld)", who,
               (int)a->dtype, (int)b->dtype, (long long)bt_numel(a), (long long)bt_numel(b));
}

/* The dtype rule of the layer-norm ops: t is of equal numel to x, and F32 or x's dtype. */
static void check_ln(const char *who, const bt_tensor *x, const bt_tensor *t)
{
    CU_REQUIRE(cu_is_float(x->dtype) && (t->dtype == BT_F32 || t->dtype == x->dtype) && bt_numel(t) == bt_numel(x),
               "%s: F32 (or x's dtype) of equal numel expected (dtypes %d/%d, numel %lld vs %lld)", who,
               (int)x->dtype, (int)t->dtype, (long long)bt_numel(x), (long long)bt_numel(t));
}

template <typename T>
__global__ void act_fwd_k(int act, const T *x, T *y, int64_t n)
{
    GRID_STRIDE(i, n) cu_st(y, i, d_act(act, cu_ld(x, i)));
}

template <typename T>
__global__ void act_bwd_k(int act, const T *x, const T *dy, T *dx, int64_t n, int accumulate)
{
    GRID_STRIDE(i, n)
    {
        float d = d_act_grad(act, cu_ld(x, i), cu_ld(dy, i));
        cu_st(dx, i, accumulate ? cu_ld(dx, i) + d : d);
    }
}

static void cu_act_fwd(bt_backend *be, int act, const bt_tensor *x, bt_tensor *y)
{
    if (cu_dead(be)) return;
    check_same("act_fwd", x, y);
    CU_REQUIRE(act >= BT_ACT_GELU_ERF && act <= BT_ACT_TANH, "act_fwd: unknown activation %d", act);
    int64_t n = bt_numel(x);
    if (!n) return;
    CU_DISPATCH(x->dtype, T, act_fwd_k<T><<<cu_blocks(n, TPB), TPB, 0, cu_stream(be)>>>(act, (const T *)x->data,
                                                                                         (T *)y->data, n));
    CU_LAUNCHED(be, "act_fwd kernel");
}

static void cu_act_bwd(bt_backend *be, int act, const bt_tensor *x, const bt_tensor *dy, bt_tensor *dx,
                       int accumulate)
{
    if (cu_dead(be)) return;
    check_same("act_bwd", x, dy);
    check_same("act_bwd", x, dx);
    CU_REQUIRE(act >= BT_ACT_GELU_ERF && act <= BT_ACT_TANH, "act_bwd: unknown activation %d", act);
    int64_t n = bt_numel(x);
    if (!n) return;
    CU_DISPATCH(x->dtype, T, act_bwd_k<T><<<cu_blocks(n, TPB), TPB, 0, cu_stream(be)>>>(
                                 act, (const T *)x->data, (const T *)dy->data, (T *)dx->data, n, accumulate));
    CU_LAUNCHED(be, "act_bwd kernel");
}

/* One thread per Philox block (four elements): the same draws as the CPU's
 * cpu_dropout_mult() and philox.h's bt_dropout_keep_raw(). */
template <typename T>
__global__ void dropout_k(const T *x, T *y, int64_t n, float p, float s, bt_dropout_key key)
{
    int64_t ng = (n + 3) / 4;
    GRID_STRIDE(g, ng)
    {
        uint64_t q = (uint64_t)g;
        uint32_t c = ((uint32_t)(q >> 24) << 24) | ((key.layer & 0xFFFFu) << 8) | (key.site & 0xFFu);
        bt_u32x4 r = bt_random4(key.seed, BT_STREAM_DROPOUT, key.step, key.micro, c, (uint32_t)q);
#pragma unroll
        for (int t = 0; t < 4; t++) {
            int64_t i = g * 4 + t;
            if (i < n) cu_st(y, i, cu_ld(x, i) * (bt_u01(r.v[t]) >= p ? s : 0.0f));
        }
    }
}

static void cu_dropout(bt_backend *be, const bt_tensor *x, bt_tensor *y, float p, bt_dropout_key key)
{
    if (cu_dead(be)) return;
    check_same("dropout", x, y);
    int64_t n = bt_numel(x);
    if (!n) return;
    size_t bytes = (size_t)n * bt_dtype_size(x->dtype);
    if (p <= 0.0f) {
        if (y->data != x->data)
            CU_CHECK(be, cudaMemcpyAsync(y->data, x->data, bytes, cudaMemcpyDeviceToDevice, cu_stream(be)));
        return;
    }
    if (p >= 1.0f) {
        CU_CHECK(be, cudaMemsetAsync(y->data, 0, bytes, cu_stream(be)));
        return;
    }
    float s = cu_dropout_scale(p);
    CU_DISPATCH(x->dtype, T, dropout_k<T><<<cu_blocks((n + 3) / 4, TPB), TPB, 0, cu_stream(be)>>>(
                                 (const T *)x->data, (T *)y->data, n, p, s, key));
    CU_LAUNCHED(be, "dropout kernel");
}

template <typename T>
__global__ void add_k(const T *a, const T *b, T *y, int64_t n)
{
    GRID_STRIDE(i, n) cu_st(y, i, cu_ld(a, i) + cu_ld(b, i));
}

static void cu_add(bt_backend *be, const bt_tensor *a, const bt_tensor *b, bt_tensor *y)
{
    if (cu_dead(be)) return;
    check_same("add", a, b);
    check_same("add", a, y);
    int64_t n = bt_numel(a);
    if (!n) return;
    CU_DISPATCH(a->dtype, T, add_k<T><<<cu_blocks(n, TPB), TPB, 0, cu_stream(be)>>>(
                                 (const T *)a->data, (const T *)b->data, (T *)y->data, n));
    CU_LAUNCHED(be, "add kernel");
}

template <typename T>
__global__ void scale_k(T *x, int64_t n, float s)
{
    GRID_STRIDE(i, n) cu_st(x, i, cu_ld(x, i) * s);
}

static void cu_scale(bt_backend *be, bt_tensor *x, float s)
{
    if (cu_dead(be)) return;
    CU_REQUIRE(cu_is_float(x->dtype), "scale: float tensor expected");
    int64_t n = bt_numel(x);
    if (!n) return;
    CU_DISPATCH(x->dtype, T, scale_k<T><<<cu_blocks(n, TPB), TPB, 0, cu_stream(be)>>>((T *)x->data, n, s));
    CU_LAUNCHED(be, "scale kernel");
}

template <typename S, typename D>
__global__ void convert_k(const S *s, D *d, int64_t n)
{
    GRID_STRIDE(i, n) cu_st(d, i, cu_ld(s, i));
}

static void cu_convert(bt_backend *be, const bt_tensor *src, bt_tensor *dst)
{
    if (cu_dead(be)) return;
    int64_t n = bt_numel(src);
    CU_REQUIRE(n == bt_numel(dst), "convert: numel differs (%lld vs %lld)", (long long)n, (long long)bt_numel(dst));
    CU_REQUIRE(cu_is_float(src->dtype) && cu_is_float(dst->dtype), "convert: float types only");
    if (!n) return;
    if (src->dtype == dst->dtype) {
        if (src->data != dst->data)
            CU_CHECK(be, cudaMemcpyAsync(dst->data, src->data, (size_t)n * bt_dtype_size(src->dtype),
                                         cudaMemcpyDeviceToDevice, cu_stream(be)));
        return;
    }
    CU_DISPATCH(src->dtype, S, CU_DISPATCH(dst->dtype, D,
        convert_k<S, D><<<cu_blocks(n, TPB), TPB, 0, cu_stream(be)>>>((const S *)src->data, (D *)dst->data, n)));
    CU_LAUNCHED(be, "convert kernel");
}

/* ------------------------------------------------------------------------ */
/* layer norm: one warp per row, 4 rows per block                            */

/* TX: x's dtype; T: res, y and h (F32 or TX: kernels/backend.h) */
template <typename TX, typename T>
__global__ void ln_fwd_k(const TX *x, const T *res, const float *gamma, const float *beta, float eps, T *y,
                         float *mean, float *rstd, T *h, int64_t R, int D)
{
    int lane = threadIdx.x & 31;
    int64_t r = (int64_t)blockIdx.x * 4 + (threadIdx.x >> 5);
    if (r >= R) return;
    const TX *xr = x + r * D;
    const T *rr = res ? res + r * D : NULL;
    T *yr = y + r * D;
    T *hr = h ? h + r * D : NULL;
    float s = 0.0f;
    for (int j = lane; j < D; j += 32) {
        float hv = cu_ld(xr, j) + (rr ? cu_ld(rr, j) : 0.0f);
        s += hv;
    }
    float m = cu_warp_sum(s) / (float)D;
    float v = 0.0f;
    for (int j = lane; j < D; j += 32) {
        float d = cu_ld(xr, j) + (rr ? cu_ld(rr, j) : 0.0f) - m;
        v += d * d;
    }
    v = cu_warp_sum(v) / (float)D;
    float rs = 1.0f / sqrtf(v + eps);
    if (lane == 0) {
        mean[r] = m;
        rstd[r] = rs;
    }
    /* y (and h) may alias x: each element is read before it is written, by the same lane */
    for (int j = lane; j < D; j += 32) {
        float hv = cu_ld(xr, j) + (rr ? cu_ld(rr, j) : 0.0f);
        if (hr) cu_st(hr, j, hv);
        cu_st(yr, j, (hv - m) * rs * gamma[j] + beta[j]);
    }
}

static void cu_layernorm_fwd(bt_backend *be, const bt_tensor *x, const bt_tensor *res, const bt_tensor *gamma,
                             const bt_tensor *beta, float eps, bt_tensor *y, bt_tensor *mean, bt_tensor *rstd,
                             bt_tensor *h_out)
{
    if (cu_dead(be)) return;
    int64_t R = cu_rows(x), D = cu_cols(x);
    check_ln("layernorm_fwd(y)", x, y);
    if (res) check_ln("layernorm_fwd(res)", x, res);
    if (h_out) check_ln("layernorm_fwd(h_out)", x, h_out);
    CU_REQUIRE((!res || res->dtype == y->dtype) && (!h_out || h_out->dtype == y->dtype),
               "layernorm_fwd: res, y and h_out must share one dtype");
    CU_REQUIRE(bt_numel(gamma) == D && bt_numel(beta) == D && gamma->dtype == BT_F32 && beta->dtype == BT_F32,
               "layernorm_fwd: gamma/beta must be F32 [%lld]", (long long)D);
    CU_REQUIRE(mean->dtype == BT_F32 && rstd->dtype == BT_F32 && bt_numel(mean) == R && bt_numel(rstd) == R,
               "layernorm_fwd: mean/rstd must be F32 [%lld]", (long long)R);
    CU_REQUIRE(D > 0 && D < INT32_MAX, "layernorm_fwd: bad row length %lld", (long long)D);
    if (!R) return;
    CU_DISPATCH(x->dtype, TX, CU_DISPATCH(y->dtype, T, ln_fwd_k<TX, T><<<cu_blocks(R, 4, INT32_MAX), 128, 0, cu_stream(be)>>>(
        (const TX *)x->data, res ? (const T *)res->data : (const T *)NULL, (const float *)gamma->data,
        (const float *)beta->data, eps, (T *)y->data, (float *)mean->data, (float *)rstd->data,
        h_out ? (T *)h_out->data : (T *)NULL, R, (int)D)));
    CU_LAUNCHED(be, "layernorm_fwd kernel");
}

#define LN_RPW BT_CUDA_LN_RPW /* rows per warp in the backward: one partial dgamma/dbeta row each */

/* TH: h's dtype; T: dy and dh (F32 or TH) */
template <typename TH, typename T>
__global__ void ln_bwd_k(const TH *h, const T *dy, const float *gamma, const float *mean, const float *rstd,
                         T *dh, float *part, int64_t R, int D)
{
    int lane = threadIdx.x & 31;
    int64_t w = (int64_t)blockIdx.x * 4 + (threadIdx.x >> 5);
    int64_t r0 = w * LN_RPW;
    if (r0 >= R) return;
    float *pg = part + w * 2 * D, *pb = pg + D;
    for (int k = 0; k < LN_RPW && r0 + k < R; k++) {
        int64_t r = r0 + k;
        const TH *hr = h + r * D;
        const T *gr = dy + r * D;
        T *dr = dh + r * D;
        float m = mean[r], s = rstd[r];
        float a = 0.0f, b = 0.0f;
        for (int j = lane; j < D; j += 32) {
            float gy = cu_ld(gr, j);
            float xhat = (cu_ld(hr, j) - m) * s;
            float gj = gy * gamma[j];
            a += gj;
            b += gj * xhat;
            if (k == 0) {
                pg[j] = gy * xhat;
                pb[j] = gy;
            } else {
                pg[j] += gy * xhat;
                pb[j] += gy;
            }
        }
        a = cu_warp_sum(a) / (float)D;
        b = cu_warp_sum(b) / (float)D;
        /* dh may alias dy: read before write, same lane */
        for (int j = lane; j < D; j += 32) {
            float xhat = (cu_ld(hr, j) - m) * s;
            cu_st(dr, j, s * (cu_ld(gr, j) * gamma[j] - a - xhat * b));
        }
    }
}

static void cu_layernorm_bwd(bt_backend *be, const bt_tensor *h, const bt_tensor *dy, const bt_tensor *gamma,
                             const bt_tensor *mean, const bt_tensor *rstd, bt_tensor *dh, bt_tensor *dgamma,
                             bt_tensor *dbeta)
{
    if (cu_dead(be)) return;
    int64_t R = cu_rows(h), D = cu_cols(h);
    check_ln("layernorm_bwd(dy)", h, dy);
    check_ln("layernorm_bwd(dh)", h, dh);
    CU_REQUIRE(dy->dtype == dh->dtype, "layernorm_bwd: dy and dh must share a dtype");
    CU_REQUIRE(bt_numel(gamma) == D && bt_numel(mean) == R && bt_numel(rstd) == R && gamma->dtype == BT_F32,
               "layernorm_bwd: gamma [%lld], mean/rstd [%lld] F32 expected", (long long)D, (long long)R);
    CU_REQUIRE((!dgamma || (bt_numel(dgamma) == D && dgamma->dtype == BT_F32)) &&
                   (!dbeta || (bt_numel(dbeta) == D && dbeta->dtype == BT_F32)),
               "layernorm_bwd: dgamma/dbeta must be F32 [%lld]", (long long)D);
    if (!R || !D) return;
    int64_t W = (R + LN_RPW - 1) / LN_RPW;
    float *part = (float *)cuda_scratch(be, bt_ws_cuda_layernorm_bwd(R, D));
    if (!part) return;
    CU_DISPATCH(h->dtype, TH, CU_DISPATCH(dy->dtype, T, ln_bwd_k<TH, T><<<cu_blocks(W, 4, INT32_MAX), 128, 0, cu_stream(be)>>>(
        (const TH *)h->data, (const T *)dy->data, (const float *)gamma->data, (const float *)mean->data,
        (const float *)rstd->data, (T *)dh->data, part, R, (int)D)));
    CU_LAUNCHED(be, "layernorm_bwd kernel");
    if (dgamma) {
        colsum_p2<<<cu_blocks(D, TPB), TPB, 0, cu_stream(be)>>>(part, W, D, (float *)dgamma->data, 1, 2 * D);
        CU_LAUNCHED(be, "layernorm_bwd dgamma");
    }
    if (dbeta) {
        colsum_p2<<<cu_blocks(D, TPB), TPB, 0, cu_stream(be)>>>(part + D, W, D, (float *)dbeta->data, 1, 2 * D);
        CU_LAUNCHED(be, "layernorm_bwd dbeta");
    }
}

/* ------------------------------------------------------------------------ */
/* embeddings and row gathers                                                */

template <typename T>
__global__ void embed_fwd_k(const int32_t *ids, const int32_t *pids, const int32_t *tids, const float *W,
                            const float *P, const float *Ty, int64_t nw, int64_t np, int64_t nt, T *out,
                            int64_t N, int64_t D, int *flag)
{
    for (int64_t i = blockIdx.x; i < N; i += gridDim.x) {
        int32_t wi = ids[i], pi = pids ? pids[i] : 0, ti = tids ? tids[i] : 0;
        int bad = wi < 0 || wi >= nw || (pids && (pi < 0 || pi >= np)) || (tids && (ti < 0 || ti >= nt));
        if (bad) {
            if (threadIdx.x == 0) atomicOr(flag, CU_FLAG_TOKEN_ID);
            for (int64_t j = threadIdx.x; j < D; j += blockDim.x) cu_st(out, i * D + j, 0.0f);
            continue;
        }
        const float *w = W + (int64_t)wi * D;
        const float *p = pids ? P + (int64_t)pi * D : NULL;
        const float *t = tids ? Ty + (int64_t)ti * D : NULL;
        for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
            float v = w[j]; /* HF order: (word + type) + position */
            if (t) v += t[j];
            if (p) v += p[j];
            cu_st(out, i * D + j, v);
        }
    }
}

static void check_ids(const char *who, const bt_tensor *ids, int64_t N)
{
    CU_REQUIRE(ids->dtype == BT_I32 && bt_numel(ids) == N, "%s: ids must be int32 [%lld]", who, (long long)N);
}

static void cu_embed_fwd(bt_backend *be, const bt_tensor *ids, const bt_tensor *pos_ids,
                         const bt_tensor *type_ids, const bt_tensor *word, const bt_tensor *pos,
                         const bt_tensor *type, bt_tensor *out)
{
    if (cu_dead(be)) return;
    int64_t N = cu_rows(out), D = cu_cols(out);
    check_ids("embed_fwd", ids, N);
    int use_p = pos_ids && pos, use_t = type_ids && type;
    if (use_p) check_ids("embed_fwd(pos)", pos_ids, N);
    if (use_t) check_ids("embed_fwd(type)", type_ids, N);
    CU_REQUIRE(word->dtype == BT_F32 && cu_cols(word) == D && (!pos || (pos->dtype == BT_F32 && cu_cols(pos) == D)) &&
                   (!type || (type->dtype == BT_F32 && cu_cols(type) == D)) && cu_is_float(out->dtype),
               "embed_fwd: F32 tables with D=%lld columns expected", (long long)D);
    if (!N) return;
    unsigned grid = (unsigned)(N < 65535 ? N : 65535);
    CU_DISPATCH(out->dtype, T, embed_fwd_k<T><<<grid, TPB, 0, cu_stream(be)>>>(
        (const int32_t *)ids->data, use_p ? (const int32_t *)pos_ids->data : (const int32_t *)NULL,
        use_t ? (const int32_t *)type_ids->data : (const int32_t *)NULL, (const float *)word->data,
        use_p ? (const float *)pos->data : (const float *)NULL, use_t ? (const float *)type->data : (const float *)NULL,
        cu_rows(word), use_p ? cu_rows(pos) : 0, use_t ? cu_rows(type) : 0, (T *)out->data, N, D,
        cu_impl(be)->d_flag));
    CU_LAUNCHED(be, "embed_fwd kernel");
}

/* Deterministic scatter-add dst[idx[i]] += src[i] (i ascending, idx == skip
 * skipped), without atomics and with a bounded launch:
 *  1. keys (the index; out-of-range and skipped ones get the sentinel nrows)
 *     are sorted with their positions by CUB's stable radix sort, so the rows
 *     of one run of equal keys are in ascending i;
 *  2. the runs are found (a flag per run start, an inclusive scan of the
 *     flags, the start of each run written at its run number);
 *  3. a grid of (run, 32-column tile) blocks, striding over the runs, sums
 *     each run: a block has RS row slices (RS rows of 32 threads); slice y
 *     adds the run's rows y, y + RS, y + 2 RS, ... in order (slice 0 starting
 *     from dst's own value), then one thread per column adds the slices 0..RS-1
 *     in order and stores. RS is a power of two <= 32 chosen from N and nrows
 *     only (the expected run length), so the sum order is fixed by the
 *     problem size and the data: bit-identical run after run.
 * With RS = 1 (no more tokens than table rows, e.g. word embeddings) these
 * are the CPU backend's additions in the CPU's order: bit-identical to it;
 * with RS > 1 (position and token-type tables, long runs) equal to it up to
 * rounding. */
__global__ void scatter_keys_k(const int32_t *idx, int64_t N, int32_t skip, int64_t nrows, uint32_t *keys,
                               int32_t *vals, int *flag, int flagbit)
{
    GRID_STRIDE(i, N)
    {
        int32_t k = idx[i];
        uint32_t key = (uint32_t)nrows; /* sentinel: sorted last, ignored */
        if (k != skip) {
            if (k < 0 || k >= nrows) atomicOr(flag, flagbit);
            else key = (uint32_t)k;
        }
        keys[i] = key;
        vals[i] = (int32_t)i;
    }
}

/* flags[p] = 1 where sorted position p starts a run of equal keys */
__global__ void run_flags_k(const uint32_t *keys, int64_t N, uint32_t *flags)
{
    GRID_STRIDE(p, N) flags[p] = (p == 0 || keys[p] != keys[p - 1]) ? 1u : 0u;
}

/* incl = inclusive scan of the flags: starts[r] = first position of run r,
 * starts[nruns] = N, starts[N + 1] = nruns (starts holds N + 2 entries) */
__global__ void run_starts_k(const uint32_t *keys, const uint32_t *incl, int64_t N, int32_t *starts)
{
    GRID_STRIDE(p, N)
    {
        if (p == 0 || keys[p] != keys[p - 1]) starts[incl[p] - 1] = (int32_t)p;
        if (p == N - 1) {
            starts[incl[p]] = (int32_t)N;
            starts[N + 1] = (int32_t)incl[p];
        }
    }
}

#define SCATTER_MAX_RS 32
/* grid (runs, column tiles of 32), block (32, RS) */
template <typename T>
__global__ void scatter_runs_k(const uint32_t *keys, const int32_t *vals, const int32_t *starts, int64_t N,
                               uint32_t sentinel, const T *src, float *dst, int64_t D)
{
    __shared__ float part[SCATTER_MAX_RS][33];
    const int x = threadIdx.x, y = threadIdx.y, RS = blockDim.y;
    const int64_t c = (int64_t)blockIdx.y * 32 + x;
    const int32_t nruns = starts[N + 1];
    for (int32_t r = blockIdx.x; r < nruns; r += gridDim.x) {
        int32_t s = starts[r], e = starts[r + 1];
        uint32_t k = keys[s];
        if (k == sentinel) continue; /* the same for the whole block */
        float acc = 0.0f;
        if (c < D) {
            if (y == 0) acc = dst[(int64_t)k * D + c];
            for (int32_t q = s + y; q < e; q += RS) acc += cu_ld(src, (int64_t)vals[q] * D + c);
        }
        if (RS == 1) {
            if (c < D) dst[(int64_t)k * D + c] = acc;
            continue;
        }
        part[y][x] = acc;
        __syncthreads();
        if (y == 0 && c < D) {
            float t = part[0][x];
            for (int j = 1; j < RS; j++) t += part[j][x];
            dst[(int64_t)k * D + c] = t;
        }
        __syncthreads();
    }
}

static size_t align256(size_t x) { return (x + 255) & ~(size_t)255; }

/* row slices per block: the expected run length N / nrows, rounded up to a
 * power of two, at most SCATTER_MAX_RS (problem size only: deterministic) */
static int scatter_slices(int64_t N, int64_t nrows)
{
    int64_t per = nrows > 0 ? (N + nrows - 1) / nrows : N;
    int rs = 1;
    while (rs < SCATTER_MAX_RS && rs < per) rs <<= 1;
    return rs;
}

static void scatter_add_rows(bt_backend *be, const int32_t *idx, int64_t N, int32_t skip, const bt_tensor *src,
                             float *dst, int64_t nrows, int64_t D, int flagbit)
{
    if (cu_dead(be) || N == 0 || D == 0) return;
    CU_REQUIRE(N < INT32_MAX - 2 && nrows < INT32_MAX, "scatter: too many rows");
    CU_REQUIRE((D + 31) / 32 <= 65535, "scatter: rows of %lld columns are too long", (long long)D);
    int end_bit = 1;
    while (end_bit < 32 && ((uint64_t)1 << end_bit) <= (uint64_t)nrows) end_bit++;
    size_t sort_bytes = 0, scan_bytes = 0;
    if (CU_CHECK(be, cub::DeviceRadixSort::SortPairs(NULL, sort_bytes, (const uint32_t *)NULL, (uint32_t *)NULL,
                                                     (const int32_t *)NULL, (int32_t *)NULL, (int)N, 0, end_bit,
                                                     cu_stream(be))) ||
        CU_CHECK(be, cub::DeviceScan::InclusiveSum(NULL, scan_bytes, (const uint32_t *)NULL, (uint32_t *)NULL,
                                                   (int)N, cu_stream(be))))
        return;
    size_t tmp_bytes = sort_bytes > scan_bytes ? sort_bytes : scan_bytes;
    size_t a = align256(sizeof(uint32_t) * (size_t)N);
    char *s = (char *)cuda_scratch(be, bt_ws_cuda_scatter(N, tmp_bytes));
    if (!s) return;
    uint32_t *kin = (uint32_t *)s, *kout = (uint32_t *)(s + a);
    int32_t *vin = (int32_t *)(s + 2 * a), *vout = (int32_t *)(s + 3 * a);
    int32_t *starts = (int32_t *)(s + 4 * a); /* N + 2 entries */
    void *tmp = s + 4 * a + bt_ws_align256(sizeof(int32_t) * (size_t)(N + 2));
    scatter_keys_k<<<cu_blocks(N, TPB), TPB, 0, cu_stream(be)>>>(idx, N, skip, nrows, kin, vin, cu_impl(be)->d_flag,
                                                                 flagbit);
    if (CU_LAUNCHED(be, "scatter keys kernel")) return;
    if (CU_CHECK(be, cub::DeviceRadixSort::SortPairs(tmp, sort_bytes, kin, kout, vin, vout, (int)N, 0, end_bit,
                                                     cu_stream(be))))
        return;
    /* kin and vin are free now: run-start flags and their inclusive scan */
    uint32_t *flags = kin, *incl = (uint32_t *)vin;
    run_flags_k<<<cu_blocks(N, TPB), TPB, 0, cu_stream(be)>>>(kout, N, flags);
    if (CU_LAUNCHED(be, "scatter run flags kernel")) return;
    if (CU_CHECK(be, cub::DeviceScan::InclusiveSum(tmp, scan_bytes, flags, incl, (int)N, cu_stream(be)))) return;
    run_starts_k<<<cu_blocks(N, TPB), TPB, 0, cu_stream(be)>>>(kout, incl, N, starts);
    if (CU_LAUNCHED(be, "scatter run starts kernel")) return;
    /* at most min(N, nrows + 1) runs (the sentinel's included); the grid
     * strides over them with about 2^21 threads in all */
    int rs = scatter_slices(N, nrows);
    int64_t tiles = (D + 31) / 32, runs = N < nrows + 1 ? N : nrows + 1;
    int64_t gx = ((int64_t)1 << 21) / (32 * rs * tiles);
    if (gx > runs) gx = runs;
    if (gx < 1) gx = 1;
    dim3 grid((unsigned)gx, (unsigned)tiles), block(32, (unsigned)rs);
    CU_DISPATCH(src->dtype, T, scatter_runs_k<T><<<grid, block, 0, cu_stream(be)>>>(
        kout, vout, starts, N, (uint32_t)nrows, (const T *)src->data, dst, D));
    CU_LAUNCHED(be, "scatter runs kernel");
}

static void cu_embed_bwd(bt_backend *be, const bt_tensor *ids, const bt_tensor *pos_ids, const bt_tensor *type_ids,
                         const bt_tensor *dout, int pad_id, bt_tensor *dword, bt_tensor *dpos, bt_tensor *dtype)
{
    if (cu_dead(be)) return;
    int64_t N = cu_rows(dout), D = cu_cols(dout);
    CU_REQUIRE(cu_is_float(dout->dtype), "embed_bwd: dout must be a float tensor");
    if (dword) {
        check_ids("embed_bwd", ids, N);
        CU_REQUIRE(cu_cols(dword) == D && dword->dtype == BT_F32, "embed_bwd: dword must be F32 with D columns");
        scatter_add_rows(be, (const int32_t *)ids->data, N, pad_id >= 0 ? pad_id : INT32_MIN, dout,
                         (float *)dword->data, cu_rows(dword), D, CU_FLAG_TOKEN_ID);
    }
    if (dpos && pos_ids) {
        check_ids("embed_bwd(pos)", pos_ids, N);
        CU_REQUIRE(cu_cols(dpos) == D && dpos->dtype == BT_F32, "embed_bwd: dpos must be F32 with D columns");
        scatter_add_rows(be, (const int32_t *)pos_ids->data, N, INT32_MIN, dout, (float *)dpos->data, cu_rows(dpos),
                         D, CU_FLAG_TOKEN_ID);
    }
    if (dtype && type_ids) {
        check_ids("embed_bwd(type)", type_ids, N);
        CU_REQUIRE(cu_cols(dtype) == D && dtype->dtype == BT_F32, "embed_bwd: dtype must be F32 with D columns");
        scatter_add_rows(be, (const int32_t *)type_ids->data, N, INT32_MIN, dout, (float *)dtype->data,
                         cu_rows(dtype), D, CU_FLAG_TOKEN_ID);
    }
}

template <typename T>
__global__ void gather_k(const T *src, const int32_t *rows, int64_t nr, T *out, int64_t N, int64_t D, int *flag)
{
    for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
        int32_t r = rows[n];
        int bad = r < 0 || r >= nr;
        if (bad && threadIdx.x == 0) atomicOr(flag, CU_FLAG_ROW);
        for (int64_t j = threadIdx.x; j < D; j += blockDim.x)
            out[n * D + j] = bad ? T(0.0f) : src[(int64_t)r * D + j];
    }
}

static void cu_gather_rows(bt_backend *be, const bt_tensor *src, const bt_tensor *rows, bt_tensor *out)
{
    if (cu_dead(be)) return;
    int64_t N = cu_rows(out), D = cu_cols(out);
    CU_REQUIRE(cu_cols(src) == D && cu_is_float(src->dtype) && src->dtype == out->dtype,
               "gather_rows: src and out share a float dtype and D");
    check_ids("gather_rows", rows, N);
    if (!N || !D) return;
    unsigned grid = (unsigned)(N < 65535 ? N : 65535);
    CU_DISPATCH(src->dtype, T, gather_k<T><<<grid, D < TPB ? 64 : TPB, 0, cu_stream(be)>>>(
        (const T *)src->data, (const int32_t *)rows->data, cu_rows(src), (T *)out->data, N, D, cu_impl(be)->d_flag));
    CU_LAUNCHED(be, "gather_rows kernel");
}

static void cu_gather_rows_bwd(bt_backend *be, const bt_tensor *dout, const bt_tensor *rows, bt_tensor *dsrc)
{
    if (cu_dead(be)) return;
    int64_t N = cu_rows(dout), D = cu_cols(dout);
    CU_REQUIRE(cu_cols(dsrc) == D && dsrc->dtype == BT_F32 && cu_is_float(dout->dtype),
               "gather_rows_bwd: dsrc must be F32 with D columns");
    check_ids("gather_rows_bwd", rows, N);
    scatter_add_rows(be, (const int32_t *)rows->data, N, INT32_MIN, dout, (float *)dsrc->data, cu_rows(dsrc), D,
                     CU_FLAG_ROW);
}

/* ------------------------------------------------------------------------ */
/* losses: one block per row (row loss in double to scratch), then one block
 * sums the row losses in a fixed order.                                     */

__global__ void count_labels_k(const int32_t *y, int64_t N, int64_t C, int *cnt, int *flag)
{
    __shared__ int sm[TPB];
    int c = 0;
    for (int64_t i = threadIdx.x; i < N; i += TPB) {
        int32_t l = y[i];
        if (l == -100) continue;
        if (l < 0 || l >= C) atomicOr(flag, CU_FLAG_LABEL);
        else c++;
    }
    c = block_reduce(c, sm, op_add());
    if (threadIdx.x == 0) *cnt = c;
}

__global__ void mean_k(const double *rowloss, int64_t N, const int *cnt, double denom, float *loss)
{
    __shared__ double sm[TPB];
    double s = 0.0;
    for (int64_t i = threadIdx.x; i < N; i += TPB) s += rowloss[i];
    s = block_reduce(s, sm, op_add());
    if (threadIdx.x == 0) {
        double d = cnt ? (double)*cnt : denom;
        loss[0] = d != 0.0 ? (float)(s / d) : 0.0f;
    }
}

template <typename T>
__global__ void xent_rows_k(const T *X, const int32_t *y, int64_t N, int64_t C, float grad_scale, const int *cnt,
                            T *dX, double *rowloss)
{
    __shared__ float sm[TPB];
    int nvalid = *cnt;
    float gs = nvalid ? (float)((double)grad_scale / (double)nvalid) : 0.0f;
    for (int64_t i = blockIdx.x; i < N; i += gridDim.x) {
        const T *x = X + i * C;
        T *d = dX + i * C;
        int32_t l = y[i];
        if (l < 0 || l >= C) { /* -100 (ignored) or invalid (flagged) */
            for (int64_t j = threadIdx.x; j < C; j += TPB) cu_st(d, j, 0.0f);
            if (threadIdx.x == 0) rowloss[i] = 0.0;
            continue;
        }
        float mx = -INFINITY;
        for (int64_t j = threadIdx.x; j < C; j += TPB) mx = fmaxf(mx, cu_ld(x, j));
        mx = block_reduce(mx, sm, op_max());
        float s = 0.0f;
        for (int64_t j = threadIdx.x; j < C; j += TPB) s += expf(cu_ld(x, j) - mx);
        s = block_reduce(s, sm, op_add());
        float inv = (float)(1.0 / (double)s);
        for (int64_t j = threadIdx.x; j < C; j += TPB) {
            float e = expf(cu_ld(x, j) - mx);
            cu_st(d, j, (e * inv - (j == l ? 1.0f : 0.0f)) * gs);
        }
        if (threadIdx.x == 0) rowloss[i] = (double)mx + log((double)s) - (double)cu_ld(x, l);
    }
}

static void check_loss(const char *who, const bt_tensor *x, const bt_tensor *d, const bt_tensor *loss)
{
    CU_REQUIRE(cu_is_float(x->dtype) && x->dtype == d->dtype && bt_numel(x) == bt_numel(d),
               "%s: logits and their gradient share a float dtype and shape", who);
    CU_REQUIRE(loss->dtype == BT_F32 && bt_numel(loss) >= 1, "%s: loss must be an F32 scalar", who);
}

static void cu_softmax_xent(bt_backend *be, const bt_tensor *logits, const bt_tensor *labels, float grad_scale,
                            bt_tensor *loss, bt_tensor *dlogits)
{
    if (cu_dead(be)) return;
    int64_t N = cu_rows(logits), C = cu_cols(logits);
    check_loss("softmax_xent", logits, dlogits, loss);
    check_ids("softmax_xent(labels)", labels, N);
    char *s = (char *)cuda_scratch(be, bt_ws_cuda_xent(N));
    if (!s) return;
    int *cnt = (int *)s;
    double *rowloss = (double *)(s + 256);
    cudaStream_t st = cu_stream(be);
    count_labels_k<<<1, TPB, 0, st>>>((const int32_t *)labels->data, N, C, cnt, cu_impl(be)->d_flag);
    if (N) {
        unsigned grid = (unsigned)(N < 65535 ? N : 65535);
        CU_DISPATCH(logits->dtype, T, xent_rows_k<T><<<grid, TPB, 0, st>>>(
            (const T *)logits->data, (const int32_t *)labels->data, N, C, grad_scale, cnt, (T *)dlogits->data, rowloss));
    }
    mean_k<<<1, TPB, 0, st>>>(rowloss, N, cnt, 0.0, (float *)loss->data);
    CU_LAUNCHED(be, "softmax_xent kernels");
}

template <typename T>
__global__ void bce_rows_k(const T *X, const float *Tg, int64_t N, int64_t C, float gs, T *dX, double *rowloss)
{
    __shared__ double sm[TPB];
    for (int64_t i = blockIdx.x; i < N; i += gridDim.x) {
        double s = 0.0;
        for (int64_t j = threadIdx.x; j < C; j += TPB) {
            float x = cu_ld(X, i * C + j), t = Tg[i * C + j];
            s += (x > 0.0f ? (double)x : 0.0) - (double)x * t + log1p(exp(-fabs((double)x)));
            float sig = x >= 0.0f ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x));
            cu_st(dX, i * C + j, (sig - t) * gs);
        }
        s = block_reduce(s, sm, op_add());
        if (threadIdx.x == 0) rowloss[i] = s;
    }
}

template <typename T>
__global__ void mse_rows_k(const T *X, const float *Tg, int64_t N, int64_t C, float gs, T *dX, double *rowloss)
{
    __shared__ double sm[TPB];
    for (int64_t i = blockIdx.x; i < N; i += gridDim.x) {
        double s = 0.0;
        for (int64_t j = threadIdx.x; j < C; j += TPB) {
            float d = cu_ld(X, i * C + j) - Tg[i * C + j];
            s += (double)d * d;
            cu_st(dX, i * C + j, d * gs);
        }
        s = block_reduce(s, sm, op_add());
        if (threadIdx.x == 0) rowloss[i] = s;
    }
}

static void cu_bce_logits(bt_backend *be, const bt_tensor *logits, const bt_tensor *targets, float grad_scale,
                          bt_tensor *loss, bt_tensor *dlogits)
{
    if (cu_dead(be)) return;
    int64_t N = cu_rows(logits), C = cu_cols(logits);
    check_loss("bce_logits", logits, dlogits, loss);
    CU_REQUIRE(targets->dtype == BT_F32 && bt_numel(targets) == N * C, "bce_logits: targets must be F32 [N,C]");
    double *rowloss = (double *)cuda_scratch(be, bt_ws_cuda_rowloss(N));
    if (!rowloss) return;
    float gs = (N * C) != 0 ? (float)((double)grad_scale / (double)(N * C)) : 0.0f;
    cudaStream_t st = cu_stream(be);
    if (N) {
        unsigned grid = (unsigned)(N < 65535 ? N : 65535);
        CU_DISPATCH(logits->dtype, T, bce_rows_k<T><<<grid, TPB, 0, st>>>(
            (const T *)logits->data, (const float *)targets->data, N, C, gs, (T *)dlogits->data, rowloss));
    }
    mean_k<<<1, TPB, 0, st>>>(rowloss, N, NULL, (double)(N * C), (float *)loss->data);
    CU_LAUNCHED(be, "bce_logits kernels");
}

static void cu_mse(bt_backend *be, const bt_tensor *pred, const bt_tensor *target, float grad_scale, bt_tensor *loss,
                   bt_tensor *dpred)
{
    if (cu_dead(be)) return;
    int64_t N = cu_rows(pred), C = cu_cols(pred);
    check_loss("mse", pred, dpred, loss);
    CU_REQUIRE(target->dtype == BT_F32 && bt_numel(target) == N * C, "mse: target must be F32 [N,C]");
    double *rowloss = (double *)cuda_scratch(be, bt_ws_cuda_rowloss(N));
    if (!rowloss) return;
    float gs = (N * C) != 0 ? (float)(2.0 * (double)grad_scale / (double)(N * C)) : 0.0f;
    cudaStream_t st = cu_stream(be);
    if (N) {
        unsigned grid = (unsigned)(N < 65535 ? N : 65535);
        CU_DISPATCH(pred->dtype, T, mse_rows_k<T><<<grid, TPB, 0, st>>>(
            (const T *)pred->data, (const float *)target->data, N, C, gs, (T *)dpred->data, rowloss));
    }
    mean_k<<<1, TPB, 0, st>>>(rowloss, N, NULL, (double)(N * C), (float *)loss->data);
    CU_LAUNCHED(be, "mse kernels");
}

/* ------------------------------------------------------------------------ */
/* AdamW: the CPU backend's exact float operation sequence, with explicit
 * round-to-nearest intrinsics so nvcc cannot contract or reorder anything:
 * the update is bit-identical to the CPU backend's.                        */

struct adamw_scalars { float wdf, b1, c1, b2, c2, bc2s, eps, nss, gscale; };

__global__ void adamw_k(float *p, const float *g, float *m, float *v, int64_t n, adamw_scalars s)
{
    GRID_STRIDE(i, n)
    {
        float gi = s.gscale == 1.0f ? g[i] : __fmul_rn(g[i], s.gscale);
        float pi = __fmul_rn(p[i], s.wdf);
        float mi = __fmaf_rn(gi, s.c1, __fmul_rn(m[i], s.b1));
        float vi = __fmaf_rn(__fmul_rn(s.c2, gi), gi, __fmul_rn(v[i], s.b2));
        float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), s.bc2s), s.eps);
        p[i] = __fadd_rn(pi, __fdiv_rn(__fmul_rn(s.nss, mi), denom));
        m[i] = mi;
        v[i] = vi;
    }
}

/* torch holds hyper-parameters as Python floats: the shortest decimal that
 * rounds to the float (as the CPU backend's hyper_double()). */
static double hyper_double(float f)
{
    char buf[32];
    if (!isfinite(f)) return (double)f;
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f) return strtod(buf, NULL);
    }
    return (double)f;
}

static void cu_adamw(bt_backend *be, bt_tensor *pt, const bt_tensor *gt, bt_tensor *mt, bt_tensor *vt,
                     const bt_adamw_args *a)
{
    if (cu_dead(be)) return;
    int64_t n = bt_numel(pt);
    CU_REQUIRE(pt->dtype == BT_F32 && gt->dtype == BT_F32 && mt->dtype == BT_F32 && vt->dtype == BT_F32 &&
                   bt_numel(gt) == n && bt_numel(mt) == n && bt_numel(vt) == n,
               "adamw: p, g, m, v must be F32 of equal numel");
    CU_REQUIRE(a->step >= 1, "adamw: step must be >= 1 (got %lld)", (long long)a->step);
    double lr = hyper_double(a->lr), b1 = hyper_double(a->beta1), b2 = hyper_double(a->beta2);
    double eps = hyper_double(a->eps), wd = hyper_double(a->weight_decay);
    double bc1 = 1.0 - pow(b1, (double)a->step), bc2 = 1.0 - pow(b2, (double)a->step);
    adamw_scalars s;
    s.wdf = (float)(1.0 - lr * wd);
    s.b1 = (float)b1;
    s.c1 = (float)(1.0 - b1);
    s.b2 = (float)b2;
    s.c2 = (float)(1.0 - b2);
    s.bc2s = (float)sqrt(bc2);
    s.eps = (float)eps;
    s.nss = (float)(-(lr / bc1));
    s.gscale = a->grad_scale;
    if (!n) return;
    adamw_k<<<cu_blocks(n, TPB), TPB, 0, cu_stream(be)>>>((float *)pt->data, (const float *)gt->data,
                                                          (float *)mt->data, (float *)vt->data, n, s);
    CU_LAUNCHED(be, "adamw kernel");
}

/* ------------------------------------------------------------------------ */
/* global reductions over a list of tensors: a table of (pointer, numel,
 * first chunk) is uploaded; one block per fixed chunk of SQ_CHUNK elements
 * (double partial, fixed tree), then one block sums the partials in order. */

#define SQ_CHUNK BT_CUDA_SQ_CHUNK

struct tdesc { const void *p; int64_t n, c0; int dtype, pad; };
static_assert(sizeof(tdesc) == BT_CUDA_TDESC_BYTES, "kernels/workspace.h models the reduction's descriptors");

__device__ __forceinline__ float ld_any(const void *p, int dt, int64_t i)
{
    return dt == BT_F32 ? ((const float *)p)[i] : dt == BT_F16 ? cu_ld((const f16 *)p, i) : cu_ld((const bf16 *)p, i);
}

__global__ void sumsq_k(const tdesc *td, int nt, int64_t total, double *part, int *nonfinite, int mode)
{
    __shared__ double sm[TPB];
    for (int64_t c = blockIdx.x; c < total; c += gridDim.x) {
        int lo = 0, hi = nt - 1; /* last tensor with c0 <= c */
        while (lo < hi) {
            int mid = (lo + hi + 1) / 2;
            if (td[mid].c0 <= c) lo = mid;
            else hi = mid - 1;
        }
        tdesc t = td[lo];
        int64_t i0 = (c - t.c0) * SQ_CHUNK, len = t.n - i0;
        if (len > SQ_CHUNK) len = SQ_CHUNK;
        if (mode == 0) {
            double s = 0.0;
            for (int64_t i = threadIdx.x; i < len; i += TPB) {
                double x = (double)ld_any(t.p, t.dtype, i0 + i);
                s += x * x;
            }
            s = block_reduce(s, sm, op_add());
            if (threadIdx.x == 0) part[c] = s;
        } else {
            int bad = 0;
            for (int64_t i = threadIdx.x; i < len; i += TPB) bad |= !isfinite(ld_any(t.p, t.dtype, i0 + i));
            if (bad) *nonfinite = 1; /* same value from every writer */
        }
    }
}

__global__ void sum_parts_k(const double *part, int64_t n, double *out)
{
    __shared__ double sm[TPB];
    double s = 0.0;
    for (int64_t i = threadIdx.x; i < n; i += TPB) s += part[i];
    s = block_reduce(s, sm, op_add());
    if (threadIdx.x == 0) *out = s;
}

/* mode 0: sum of squares (returned), mode 1: 1 if all finite. */
static double global_reduce(bt_backend *be, const bt_tensor *ts, int n, int mode)
{
    if (cu_dead(be)) return mode ? 0.0 : NAN;
    if (n <= 0) return mode ? 1.0 : 0.0;
    tdesc *td = (tdesc *)calloc((size_t)n, sizeof *td);
    CU_REQUIRE(td != NULL, "out of host memory");
    int64_t total = 0;
    int m = 0;
    for (int t = 0; t < n; t++) {
        CU_REQUIRE(cu_is_float(ts[t].dtype), "%s: float tensors only (tensor %d)", mode ? "all_finite" : "sum_squares", t);
        int64_t k = (bt_numel(&ts[t]) + SQ_CHUNK - 1) / SQ_CHUNK;
        if (!k) continue;
        td[m].p = ts[t].data;
        td[m].n = bt_numel(&ts[t]);
        td[m].c0 = total;
        td[m].dtype = (int)ts[t].dtype;
        total += k;
        m++;
    }
    double result = mode ? 1.0 : 0.0;
    if (total == 0) {
        free(td);
        return result;
    }
    size_t a = align256(sizeof(tdesc) * (size_t)m);
    char *s = (char *)cuda_scratch(be, bt_ws_cuda_reduce(m, sizeof(tdesc), total));
    if (!s) {
        free(td);
        return mode ? 0.0 : NAN;
    }
    tdesc *dtd = (tdesc *)s;
    double *dout = (double *)(s + a);
    int *dflag = (int *)(s + a + 8);
    double *part = (double *)(s + a + 256);
    cudaStream_t st = cu_stream(be);
    CU_CHECK(be, cudaMemcpyAsync(dtd, td, sizeof(tdesc) * (size_t)m, cudaMemcpyHostToDevice, st));
    CU_CHECK(be, cudaMemsetAsync(dflag, 0, sizeof(int), st));
    unsigned grid = (unsigned)(total < 65535 ? total : 65535);
    sumsq_k<<<grid, TPB, 0, st>>>(dtd, m, total, part, dflag, mode);
    if (mode == 0) sum_parts_k<<<1, TPB, 0, st>>>(part, total, dout);
    CU_LAUNCHED(be, "global reduction kernels");
    double hv = 0.0;
    int hf = 0;
    if (mode == 0) CU_CHECK(be, cudaMemcpyAsync(&hv, dout, sizeof hv, cudaMemcpyDeviceToHost, st));
    else CU_CHECK(be, cudaMemcpyAsync(&hf, dflag, sizeof hf, cudaMemcpyDeviceToHost, st));
    CU_CHECK(be, cudaStreamSynchronize(st)); /* also keeps td alive until the upload is done */
    free(td);
    if (cuda_check_flag(be)) return mode ? 0.0 : NAN;
    return mode ? (hf ? 0.0 : 1.0) : hv;
}

static double cu_sum_squares(bt_backend *be, const bt_tensor *ts, int n) { return global_reduce(be, ts, n, 0); }
static int cu_all_finite(bt_backend *be, const bt_tensor *ts, int n) { return global_reduce(be, ts, n, 1) != 0.0; }

/* ------------------------------------------------------------------------ */

void cu_ops_install(bt_backend *be)
{
    be->bias_grad = cu_bias_grad;
    be->act_fwd = cu_act_fwd;
    be->act_bwd = cu_act_bwd;
    be->dropout = cu_dropout;
    be->add = cu_add;
    be->scale = cu_scale;
    be->convert = cu_convert;
    be->layernorm_fwd = cu_layernorm_fwd;
    be->layernorm_bwd = cu_layernorm_bwd;
    be->embed_fwd = cu_embed_fwd;
    be->embed_bwd = cu_embed_bwd;
    be->gather_rows = cu_gather_rows;
    be->gather_rows_bwd = cu_gather_rows_bwd;
    be->softmax_xent = cu_softmax_xent;
    be->bce_logits = cu_bce_logits;
    be->mse = cu_mse;
    be->adamw = cu_adamw;
    be->sum_squares = cu_sum_squares;
    be->all_finite = cu_all_finite;
}
