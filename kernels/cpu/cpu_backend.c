/* kernels/cpu/cpu_backend.c — the CPU backend: F32, F16 and BF16 tensors (16-bit ones
 * computed in F32, rounded to nearest-even on store), OpenBLAS sgemm + OpenMP.
 *
 * Owns: bt_backend_cpu_create() and every op of kernels/backend.h except
 * attention (cpu_attention.c). This backend is the reference the others are
 * tested against, so semantics follow PyTorch / Hugging Face exactly where
 * the header says so, and every op is deterministic for a given thread count
 * (see cpu_internal.h for the threading model).
 * Must not: know about BERT, jobs or files; keep global state beyond the
 * OpenBLAS thread setting it makes at creation.
 */
#include "kernels/cpu/cpu_internal.h"
#include "util/err.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define thread_id cpu_thread_id
#define split_range cpu_split_range

/* A ThreadSanitizer build (make test-tsan) runs every parallel region on one
 * thread whatever it is asked: libgomp is not instrumented, so its barriers
 * would read as races between a region's threads. The results are the same
 * (they do not depend on the thread count). */
#if defined(__SANITIZE_THREAD__)
#define CPU_MAX_THREADS 1
#else
#define CPU_MAX_THREADS 1024
#endif

/* ------------------------------------------------------------------------ */
/* memory                                                                    */

#define HDR 64 /* bytes before each block: its size; keeps 64-byte alignment */

static void *cpu_alloc(bt_backend *be, size_t bytes)
{
    cpu_impl *im = be->impl;
    void *base = NULL;
    if (bytes > SIZE_MAX - HDR || posix_memalign(&base, 64, bytes + HDR) != 0) {
        bt_fail(BT_EINTERNAL, "cpu backend: out of memory allocating %zu bytes; reduce "
                              "batch_size or max_seq_len", bytes);
        return NULL;
    }
    memset(base, 0, bytes + HDR);
    *(size_t *)base = bytes;
    size_t cur = __atomic_add_fetch(&im->cur_bytes, bytes, __ATOMIC_RELAXED);
    size_t peak = __atomic_load_n(&im->peak_bytes, __ATOMIC_RELAXED);
    while (cur > peak && !__atomic_compare_exchange_n(&im->peak_bytes, &peak, cur, 1,
                                                      __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    return (char *)base + HDR;
}

static void cpu_free(bt_backend *be, void *p)
{
    if (!p) return;
    cpu_impl *im = be->impl;
    void *base = (char *)p - HDR;
    __atomic_sub_fetch(&im->cur_bytes, *(size_t *)base, __ATOMIC_RELAXED);
    free(base);
}

static size_t cpu_peak(bt_backend *be) { return __atomic_load_n(&((cpu_impl *)be->impl)->peak_bytes, __ATOMIC_RELAXED); }

static void cpu_memcpy(bt_backend *be, void *dst, const void *src, size_t bytes)
{
    (void)be;
    if (bytes && dst != src) memmove(dst, src, bytes);
}
static void cpu_upload(bt_backend *be, void *d, const void *s, size_t n) { cpu_memcpy(be, d, s, n); }
static void cpu_download(bt_backend *be, void *d, const void *s, size_t n) { cpu_memcpy(be, d, s, n); }
static void cpu_memset0(bt_backend *be, void *d, size_t n) { (void)be; if (n) memset(d, 0, n); }
static void cpu_sync(bt_backend *be) { (void)be; }

static int cpu_set_threads(bt_backend *be, int n)
{
    cpu_impl *im = be->impl;
    int was = im->nt;
    if (n > 0) im->nt = n > CPU_MAX_THREADS ? CPU_MAX_THREADS : n;
    return was;
}

static void cpu_destroy(bt_backend *be)
{
    if (!be) return;
    free(((cpu_impl *)be->impl)->scratch);
    free(be->impl);
    free(be);
}

/* ------------------------------------------------------------------------ */
/* GEMM                                                                      */

void cpu_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { /* BLAS would only scale C; keep that explicit */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(int64_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(int64_t)i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* GELU, erf and tanh forms, and their derivatives: torch's formulas, written
 * so that the negative tail keeps its relative accuracy (torch evaluates
 * 1 + erf(x/sqrt2) and 1 + tanh(u) in float, which cancel to 0 below x ~ -5.5;
 * here 1 + erf(z) = erfc(-z) and 1 + tanh(u) = 2 sigmoid(2u)). */
#define GELU_ALPHA 0.70710678118654752440f  /* 1/sqrt(2) */
#define GELU_PDF 0.39894228040143267794f    /* 1/sqrt(2 pi) */
#define GELU_BETA 0.79788456080286535588f   /* sqrt(2/pi) */
#define GELU_KAPPA 0.044715f

static inline float gelu_erf(float x) { return x * 0.5f * erfcf(-x * GELU_ALPHA); }
static inline float gelu_erf_grad(float x)
{
    float cdf = 0.5f * erfcf(-x * GELU_ALPHA);
    float pdf = GELU_PDF * expf(x * x * -0.5f);
    return cdf + x * pdf;
}
/* s = sigmoid(2u) = (1 + tanh u) / 2 and 1 - s, both without cancellation. */
static inline void sigmoid2(float u, float *s, float *oms)
{
    if (u >= 0.0f) {
        float e = expf(-2.0f * u);
        *s = 1.0f / (1.0f + e);
        *oms = e / (1.0f + e);
    } else {
        float e = expf(2.0f * u);
        *s = e / (1.0f + e);
        *oms = 1.0f / (1.0f + e);
    }
}
static inline float gelu_tanh(float x)
{
    float u = GELU_BETA * (x + GELU_KAPPA * (x * x * x)), s, oms;
    sigmoid2(u, &s, &oms);
    return x * s; /* 0.5 x (1 + tanh u) */
}
static inline float gelu_tanh_grad(float x)
{
    float x_sq = x * x;
    float u = GELU_BETA * (x + GELU_KAPPA * (x_sq * x)), s, oms;
    sigmoid2(u, &s, &oms);
    /* d/dx [0.5 x (1 + tanh u)] = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) u'
     *                           = s + 2 x s (1 - s) u' */
    return s + 2.0f * x * s * oms * (GELU_BETA * (1.0f + 3.0f * GELU_KAPPA * x_sq));
}

float cpu_gelu_erf(float x) { return gelu_erf(x); }
float cpu_gelu_tanh(float x) { return gelu_tanh(x); }

/* Bias and epilogue over the block rows [r0,r1) x cols [c0,c1) of C [.,N]. */
static void epilogue_block(float *C, int64_t N, const float *bias, int epi, float *pre, int64_t r0,
                           int64_t r1, int64_t c0, int64_t c1)
{
    if (!bias && epi == BT_EPI_NONE) return;
    for (int64_t r = r0; r < r1; r++) {
        float *c = C + r * N;
        float *pr = pre ? pre + r * N : NULL;
        if (bias) {
#pragma omp simd
            for (int64_t j = c0; j < c1; j++) c[j] += bias[j];
        }
        if (epi == BT_EPI_NONE) continue;
        if (pr) memcpy(pr + c0, c + c0, sizeof(float) * (size_t)(c1 - c0));
        if (epi == BT_EPI_GELU_ERF)
            for (int64_t j = c0; j < c1; j++) c[j] = gelu_erf(c[j]);
        else
            for (int64_t j = c0; j < c1; j++) c[j] = gelu_tanh(c[j]);
    }
}

/* The parts of a GEMM depend on (M, N, K) alone, never on the thread count:
 * OpenBLAS picks its kernel by the shape of each call (on Skylake-X its
 * small-matrix kernel, used below M*N*K ~ 1e6, accumulates over K in one
 * pass where the blocked kernel adds K-blocks into C), so parts that
 * followed the threads made the bits depend on runtime.threads. Parts are
 * at least GEMM_PART_MIN rows (or columns) and at most GEMM_PARTS_MAX. */
#define GEMM_PART_MIN 64
#define GEMM_PARTS_MAX 32

int cpu_gemm_parts(int64_t M, int64_t N, int64_t K)
{
    double work = (double)M * N * (K ? K : 1);
    if (work < 262144.0) return 1; /* too small to be worth a fork */
    int64_t dim = M >= N ? M : N, p = (dim + GEMM_PART_MIN - 1) / GEMM_PART_MIN;
    return p > GEMM_PARTS_MAX ? GEMM_PARTS_MAX : (int)p;
}

int cpu_gemm_threads(bt_backend *be, int64_t M, int64_t N, int64_t K)
{
    int nt = cpu_nt(be), parts = cpu_gemm_parts(M, N, K);
    return nt < parts ? nt : parts;
}

int cpu_gemm_block(int t, int n, const float *a, int lda, int transA, const float *b, int ldb, int transB, float *c,
                   int64_t M, int64_t N, int64_t K, const float *bi, float alpha, float beta, int epilogue,
                   float *pre, int64_t blk[4])
{
    int ldc = (int)N;
    int64_t lo, hi;
    if (M >= N) { /* split rows */
        split_range(M, n, t, 8, &lo, &hi);
        blk[0] = lo, blk[1] = hi, blk[2] = 0, blk[3] = N;
        if (hi <= lo) return 0;
        const float *ap = transA ? a + lo : a + lo * lda;
        cpu_sgemm(transA, transB, (int)(hi - lo), (int)N, (int)K, alpha, ap, lda, b, ldb, beta, c + lo * ldc, ldc);
        epilogue_block(c, N, bi, epilogue, pre, lo, hi, 0, N);
    } else { /* split columns */
        split_range(N, n, t, 16, &lo, &hi);
        blk[0] = 0, blk[1] = M, blk[2] = lo, blk[3] = hi;
        if (hi <= lo) return 0;
        const float *bp = transB ? b + lo * ldb : b + lo;
        cpu_sgemm(transA, transB, (int)M, (int)(hi - lo), (int)K, alpha, a, lda, bp, ldb, beta, c + lo, ldc);
        epilogue_block(c, N, bi, epilogue, pre, 0, M, lo, hi);
    }
    return 1;
}

void cpu_matmul_f32(bt_backend *be, const float *a, int lda, int transA, const float *b, int ldb, int transB,
                    float *c, int64_t M, int64_t N, int64_t K, const float *bi, float alpha, float beta,
                    int epilogue, float *pre)
{
    int nt = cpu_gemm_threads(be, M, N, K), parts = cpu_gemm_parts(M, N, K);
#pragma omp parallel num_threads(nt)
    {
        int n = nt;
#ifdef _OPENMP
        n = omp_get_num_threads();
#endif
        int64_t blk[4];
        for (int i = thread_id(); i < parts; i += n) /* part i of parts, round robin */
            cpu_gemm_block(i, parts, a, lda, transA, b, ldb, transB, c, M, N, K, bi, alpha, beta, epilogue, pre, blk);
    }
}

static void cpu_matmul(bt_backend *be, const bt_tensor *A, int transA, const bt_tensor *B, int transB,
                       bt_tensor *C, const bt_tensor *bias, float alpha, float beta, int epilogue,
                       bt_tensor *pre_act)
{
    CPU_CHECK(cpu_is_float(A->dtype) && A->dtype == B->dtype, "matmul: A and B must share a float dtype (%d/%d)",
              (int)A->dtype, (int)B->dtype);
    CPU_CHECK(C->dtype == BT_F32 || C->dtype == A->dtype, "matmul: C must be F32 or A's dtype (C %d, A %d)",
              (int)C->dtype, (int)A->dtype);
    int64_t ar = cpu_rows(A), ac = cpu_cols(A), br = cpu_rows(B), bc = cpu_cols(B);
    int64_t M = transA ? ac : ar, K = transA ? ar : ac;
    int64_t Kb = transB ? bc : br, N = transB ? br : bc;
    CPU_CHECK(K == Kb, "matmul: inner dimensions differ: op(A) is [%lld,%lld], op(B) is [%lld,%lld]",
              (long long)M, (long long)K, (long long)Kb, (long long)N);
    CPU_CHECK(cpu_rows(C) == M && cpu_cols(C) == N, "matmul: C is [%lld,%lld], expected [%lld,%lld]",
              (long long)cpu_rows(C), (long long)cpu_cols(C), (long long)M, (long long)N);
    CPU_CHECK(bias == NULL || (bias->dtype == BT_F32 && bt_numel(bias) == N), "matmul: bias must be F32 [%lld]", (long long)N);
    CPU_CHECK(epilogue >= BT_EPI_NONE && epilogue <= BT_EPI_GELU_TANH, "matmul: unknown epilogue %d", epilogue);
    CPU_CHECK(pre_act == NULL || epilogue == BT_EPI_NONE || (bt_numel(pre_act) == M * N && pre_act->dtype == C->dtype),
              "matmul: pre_act must be [M,N] of C's dtype");
    CPU_CHECK(M < INT32_MAX && N < INT32_MAX && K < INT32_MAX, "matmul: dimension too large for BLAS");
    if (A->dtype != BT_F32) {
        cpu_matmul_half(be, A, transA, B, transB, C, bias, alpha, beta, epilogue, pre_act, M, N, K);
        return;
    }
    cpu_matmul_f32(be, F32P(A), (int)ac, transA, F32P(B), (int)bc, transB, F32P(C), M, N, K,
                   bias ? F32P(bias) : NULL, alpha, beta, epilogue,
                   (pre_act && epilogue != BT_EPI_NONE) ? F32P(pre_act) : NULL);
}

/* Per-column sums over rows (ascending), in double, columns split across
 * threads: the result does not depend on the thread count. */
static void cpu_bias_grad(bt_backend *be, const bt_tensor *dY, bt_tensor *dbias, int accumulate)
{
    int64_t M = cpu_rows(dY), N = cpu_cols(dY);
    CPU_CHECK(cpu_is_float(dY->dtype) && dbias->dtype == BT_F32 && bt_numel(dbias) == N,
              "bias_grad: dY float, dbias F32 [%lld]", (long long)N);
    float *db = F32P(dbias);
    int nt = cpu_nt(be);
#pragma omp parallel num_threads(nt)
    {
        int64_t lo, hi;
        int n = 1;
#ifdef _OPENMP
        n = omp_get_num_threads();
#endif
        split_range(N, n, thread_id(), 16, &lo, &hi);
        if (hi > lo) {
            int64_t w = hi - lo;
            double *acc = calloc((size_t)w, sizeof(double));
            float *buf = dY->dtype == BT_F32 ? NULL : malloc(sizeof(float) * (size_t)w);
            CPU_CHECK(acc != NULL && (dY->dtype == BT_F32 || buf), "bias_grad: out of memory");
            for (int64_t r = 0; r < M; r++) {
                const float *row = cpu_ld(dY, r * N + lo, w, buf);
#pragma omp simd
                for (int64_t j = 0; j < w; j++) acc[j] += row[j];
            }
            for (int64_t j = 0; j < w; j++)
                db[lo + j] = accumulate ? db[lo + j] + (float)acc[j] : (float)acc[j];
            free(acc);
            free(buf);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* elementwise: chunks of EW_CH elements; a 16-bit tensor is widened into a  */
/* per-chunk buffer, computed in F32 and rounded on store (cpu_internal.h).  */
/* Elementwise results do not depend on how chunks are split over threads.   */

#define EW_CH 1024

static void check_same(const char *who, const bt_tensor *a, const bt_tensor *b)
{
    CPU_CHECK(cpu_is_float(a->dtype) && a->dtype == b->dtype && bt_numel(a) == bt_numel(b),
              "%s: tensors of one float dtype and equal numel expected (dtypes %d/%d, numel %lld vs %lld)", who,
              (int)a->dtype, (int)b->dtype, (long long)bt_numel(a), (long long)bt_numel(b));
}

static void cpu_act_fwd(bt_backend *be, int act, const bt_tensor *x, bt_tensor *y)
{
    check_same("act_fwd", x, y);
    CPU_CHECK(act >= BT_ACT_GELU_ERF && act <= BT_ACT_TANH, "act_fwd: unknown activation %d", act);
    int64_t n = bt_numel(x), nch = (n + EW_CH - 1) / EW_CH;
    int nt = cpu_nt(be);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t c = 0; c < nch; c++) {
        float bx[EW_CH], by[EW_CH];
        int64_t i0 = c * EW_CH, len = n - i0 < EW_CH ? n - i0 : EW_CH;
        const float *a = cpu_ld(x, i0, len, bx);
        float *o = cpu_out(y, i0, by);
        switch (act) {
        case BT_ACT_GELU_ERF:
            for (int64_t i = 0; i < len; i++) o[i] = gelu_erf(a[i]);
            break;
        case BT_ACT_GELU_TANH:
            for (int64_t i = 0; i < len; i++) o[i] = gelu_tanh(a[i]);
            break;
        case BT_ACT_RELU:
#pragma omp simd
            for (int64_t i = 0; i < len; i++) o[i] = a[i] > 0.0f ? a[i] : 0.0f;
            break;
        case BT_ACT_TANH:
            for (int64_t i = 0; i < len; i++) o[i] = tanhf(a[i]);
            break;
        }
        cpu_st(y, i0, len, o);
    }
}

static void cpu_act_bwd(bt_backend *be, int act, const bt_tensor *x, const bt_tensor *dy, bt_tensor *dx,
                        int accumulate)
{
    check_same("act_bwd", x, dy);
    check_same("act_bwd", x, dx);
    CPU_CHECK(act >= BT_ACT_GELU_ERF && act <= BT_ACT_TANH, "act_bwd: unknown activation %d", act);
    int64_t n = bt_numel(x), nch = (n + EW_CH - 1) / EW_CH;
    int nt = cpu_nt(be);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t c = 0; c < nch; c++) {
        float bx[EW_CH], bg[EW_CH], bo[EW_CH];
        int64_t i0 = c * EW_CH, len = n - i0 < EW_CH ? n - i0 : EW_CH;
        const float *a = cpu_ld(x, i0, len, bx), *g = cpu_ld(dy, i0, len, bg);
        float *o = cpu_out(dx, i0, bo);
        if (accumulate && dx->dtype != BT_F32) cpu_widen(dx->dtype, dx->data, i0, len, bo);
        for (int64_t i = 0; i < len; i++) {
            float d;
            switch (act) {
            case BT_ACT_GELU_ERF: d = g[i] * gelu_erf_grad(a[i]); break;
            case BT_ACT_GELU_TANH: d = g[i] * gelu_tanh_grad(a[i]); break;
            case BT_ACT_RELU: d = a[i] > 0.0f ? g[i] : 0.0f; break;
            default: { float t = tanhf(a[i]); d = g[i] * (1.0f - t * t); } break;
            }
            o[i] = accumulate ? o[i] + d : d;
        }
        cpu_st(dx, i0, len, o);
    }
}

static void cpu_dropout(bt_backend *be, const bt_tensor *x, bt_tensor *y, float p, bt_dropout_key key)
{
    check_same("dropout", x, y);
    int64_t n = bt_numel(x);
    size_t bytes = (size_t)n * bt_dtype_size(x->dtype);
    int nt = cpu_nt(be);
    if (p <= 0.0f) {
        if (y->data != x->data) memcpy(y->data, x->data, bytes);
        return;
    }
    if (p >= 1.0f) {
        memset(y->data, 0, bytes);
        return;
    }
    const float s = cpu_dropout_scale(p);
    const int64_t CH = EW_CH; /* multiple of 4: Philox blocks never straddle chunks */
    int64_t nch = (n + CH - 1) / CH;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t c = 0; c < nch; c++) {
        float mult[EW_CH], bx[EW_CH], by[EW_CH];
        int64_t i0 = c * CH, len = n - i0 < CH ? n - i0 : CH;
        cpu_dropout_mult(&key, (uint64_t)i0, len, p, s, mult);
        const float *a = cpu_ld(x, i0, len, bx);
        float *o = cpu_out(y, i0, by);
#pragma omp simd
        for (int64_t k = 0; k < len; k++) o[k] = a[k] * mult[k];
        cpu_st(y, i0, len, o);
    }
}

static void cpu_add(bt_backend *be, const bt_tensor *a, const bt_tensor *b, bt_tensor *y)
{
    check_same("add", a, b);
    check_same("add", a, y);
    int64_t n = bt_numel(a), nch = (n + EW_CH - 1) / EW_CH;
    int nt = cpu_nt(be);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t c = 0; c < nch; c++) {
        float ba[EW_CH], bb[EW_CH], by[EW_CH];
        int64_t i0 = c * EW_CH, len = n - i0 < EW_CH ? n - i0 : EW_CH;
        const float *x = cpu_ld(a, i0, len, ba), *z = cpu_ld(b, i0, len, bb);
        float *o = cpu_out(y, i0, by);
#pragma omp simd
        for (int64_t i = 0; i < len; i++) o[i] = x[i] + z[i];
        cpu_st(y, i0, len, o);
    }
}

static void cpu_scale(bt_backend *be, bt_tensor *x, float s)
{
    CPU_CHECK(cpu_is_float(x->dtype), "scale: float tensor expected");
    int64_t n = bt_numel(x), nch = (n + EW_CH - 1) / EW_CH;
    int nt = cpu_nt(be);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t c = 0; c < nch; c++) {
        float bx[EW_CH];
        int64_t i0 = c * EW_CH, len = n - i0 < EW_CH ? n - i0 : EW_CH;
        float *o = cpu_out(x, i0, bx);
        if (x->dtype != BT_F32) cpu_widen(x->dtype, x->data, i0, len, bx);
#pragma omp simd
        for (int64_t i = 0; i < len; i++) o[i] *= s;
        cpu_st(x, i0, len, o);
    }
}

/* Between F32/F16/BF16 with round-to-nearest-even (kernels/half.h). */
static void cpu_convert(bt_backend *be, const bt_tensor *src, bt_tensor *dst)
{
    int64_t n = bt_numel(src);
    CPU_CHECK(n == bt_numel(dst), "convert: numel differs (%lld vs %lld)", (long long)n, (long long)bt_numel(dst));
    CPU_CHECK(cpu_is_float(src->dtype) && cpu_is_float(dst->dtype), "convert: float types only");
    if (src->dtype == dst->dtype) {
        cpu_memcpy(be, dst->data, src->data, (size_t)n * bt_dtype_size(src->dtype));
        return;
    }
    int64_t nch = (n + EW_CH - 1) / EW_CH;
    int nt = cpu_nt(be);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t c = 0; c < nch; c++) {
        float b[EW_CH];
        int64_t i0 = c * EW_CH, len = n - i0 < EW_CH ? n - i0 : EW_CH;
        if (dst->dtype == BT_F32) cpu_widen(src->dtype, src->data, i0, len, F32P(dst) + i0);
        else cpu_narrow(dst->dtype, dst->data, i0, len, cpu_ld(src, i0, len, b));
    }
}

/* ------------------------------------------------------------------------ */
/* layer norm                                                                */

/* The dtype rule of the layer-norm ops: t is of equal numel to x, and F32 or x's dtype. */
static void check_ln(const char *who, const bt_tensor *x, const bt_tensor *t)
{
    CPU_CHECK(cpu_is_float(x->dtype) && (t->dtype == BT_F32 || t->dtype == x->dtype) && bt_numel(t) == bt_numel(x),
              "%s: F32 (or x's dtype) of equal numel expected (dtypes %d/%d, numel %lld vs %lld)", who,
              (int)x->dtype, (int)t->dtype, (long long)bt_numel(x), (long long)bt_numel(t));
}

static void cpu_layernorm_fwd(bt_backend *be, const bt_tensor *x, const bt_tensor *res,
                              const bt_tensor *gamma, const bt_tensor *beta, float eps, bt_tensor *y,
                              bt_tensor *mean, bt_tensor *rstd, bt_tensor *h_out)
{
    int64_t R = cpu_rows(x), D = cpu_cols(x);
    check_ln("layernorm_fwd(y)", x, y);
    if (res) check_ln("layernorm_fwd(res)", x, res);
    if (h_out) check_ln("layernorm_fwd(h_out)", x, h_out);
    CPU_CHECK((!res || res->dtype == y->dtype) && (!h_out || h_out->dtype == y->dtype),
              "layernorm_fwd: res, y and h_out must share one dtype");
    CPU_CHECK(bt_numel(gamma) == D && bt_numel(beta) == D && gamma->dtype == BT_F32 && beta->dtype == BT_F32,
              "layernorm_fwd: gamma/beta must be F32 [%lld]", (long long)D);
    CPU_CHECK(mean->dtype == BT_F32 && rstd->dtype == BT_F32 && bt_numel(mean) == R && bt_numel(rstd) == R,
              "layernorm_fwd: mean/rstd must be F32 [%lld]", (long long)R);
    const float *g = F32P(gamma), *bt = F32P(beta);
    float *mu = F32P(mean), *rs = F32P(rstd);
    int nt = cpu_nt(be);
#pragma omp parallel num_threads(nt)
    {
        float *buf = malloc(sizeof(float) * 4 * (size_t)(D ? D : 1)); /* 16-bit rows: x, res, y, h */
        CPU_CHECK(buf != NULL, "layernorm_fwd: out of memory");
#pragma omp for schedule(static)
        for (int64_t r = 0; r < R; r++) {
            const float *xr = cpu_ld(x, r * D, D, buf), *rr = res ? cpu_ld(res, r * D, D, buf + D) : NULL;
            float *yr = cpu_out(y, r * D, buf + 2 * D), *hr = h_out ? cpu_out(h_out, r * D, buf + 3 * D) : NULL;
            /* pass 1: h (kept in h_out if given) and its sum */
            double s = 0.0;
            if (rr) {
                if (hr) {
                    for (int64_t j = 0; j < D; j++) { hr[j] = xr[j] + rr[j]; s += hr[j]; }
                } else {
                    for (int64_t j = 0; j < D; j++) s += (double)(xr[j] + rr[j]);
                }
            } else {
                for (int64_t j = 0; j < D; j++) s += xr[j];
                if (hr && hr != xr) memcpy(hr, xr, sizeof(float) * (size_t)D);
            }
            double m = s / (double)D, v = 0.0;
            /* pass 2: biased variance around the mean */
            for (int64_t j = 0; j < D; j++) {
                double d = (double)(rr ? xr[j] + rr[j] : xr[j]) - m;
                v += d * d;
            }
            v /= (double)D;
            float mf = (float)m, rf = (float)(1.0 / sqrt(v + (double)eps));
            mu[r] = mf;
            rs[r] = rf;
            /* pass 3: normalise (y may alias x: each element is read before written;
             * a 16-bit x was widened into buf first) */
            for (int64_t j = 0; j < D; j++) {
                float h = rr ? xr[j] + rr[j] : xr[j];
                yr[j] = (h - mf) * rf * g[j] + bt[j];
            }
            if (hr) cpu_st(h_out, r * D, D, hr);
            cpu_st(y, r * D, D, yr);
        }
        free(buf);
    }
}

static void cpu_layernorm_bwd(bt_backend *be, const bt_tensor *h, const bt_tensor *dy,
                              const bt_tensor *gamma, const bt_tensor *mean, const bt_tensor *rstd,
                              bt_tensor *dh, bt_tensor *dgamma, bt_tensor *dbeta)
{
    int64_t R = cpu_rows(h), D = cpu_cols(h);
    check_ln("layernorm_bwd(dy)", h, dy);
    check_ln("layernorm_bwd(dh)", h, dh);
    CPU_CHECK(dy->dtype == dh->dtype, "layernorm_bwd: dy and dh must share a dtype");
    CPU_CHECK(bt_numel(gamma) == D && bt_numel(mean) == R && bt_numel(rstd) == R && gamma->dtype == BT_F32 &&
                  mean->dtype == BT_F32 && rstd->dtype == BT_F32,
              "layernorm_bwd: gamma [%lld], mean/rstd [%lld] F32 expected", (long long)D, (long long)R);
    CPU_CHECK((!dgamma || (bt_numel(dgamma) == D && dgamma->dtype == BT_F32)) &&
                  (!dbeta || (bt_numel(dbeta) == D && dbeta->dtype == BT_F32)),
              "layernorm_bwd: dgamma/dbeta must be F32 [%lld]", (long long)D);
    const float *g = F32P(gamma), *mu = F32P(mean), *rs = F32P(rstd);
    float *dg = dgamma ? F32P(dgamma) : NULL, *db = dbeta ? F32P(dbeta) : NULL;
    int nt = cpu_nt(be);
    /* dgamma/dbeta first (columns split across threads, rows ascending):
     * dh may alias dy, so it must be read before dh is written. */
    if (dg || db) {
#pragma omp parallel num_threads(nt)
        {
            int64_t lo, hi;
            int n = 1;
#ifdef _OPENMP
            n = omp_get_num_threads();
#endif
            split_range(D, n, thread_id(), 16, &lo, &hi);
            if (hi > lo) {
                int64_t w = hi - lo;
                double *acc = calloc((size_t)(2 * w), sizeof(double));
                float *buf = malloc(sizeof(float) * 2 * (size_t)w);
                CPU_CHECK(acc != NULL && buf != NULL, "layernorm_bwd: out of memory");
                double *ag = acc, *ab = acc + w;
                for (int64_t r = 0; r < R; r++) {
                    const float *hr = cpu_ld(h, r * D + lo, w, buf), *gr = cpu_ld(dy, r * D + lo, w, buf + w);
                    float m = mu[r], s = rs[r];
                    for (int64_t j = 0; j < w; j++) {
                        ag[j] += (double)(gr[j] * ((hr[j] - m) * s));
                        ab[j] += gr[j];
                    }
                }
                for (int64_t j = 0; j < w; j++) {
                    if (dg) dg[lo + j] += (float)ag[j];
                    if (db) db[lo + j] += (float)ab[j];
                }
                free(acc);
                free(buf);
            }
        }
    }
#pragma omp parallel num_threads(nt)
    {
        float *buf = malloc(sizeof(float) * 3 * (size_t)(D ? D : 1));
        CPU_CHECK(buf != NULL, "layernorm_bwd: out of memory");
#pragma omp for schedule(static)
        for (int64_t r = 0; r < R; r++) {
            const float *hr = cpu_ld(h, r * D, D, buf), *gr = cpu_ld(dy, r * D, D, buf + D);
            float *dr = cpu_out(dh, r * D, buf + 2 * D);
            float m = mu[r], s = rs[r];
            double a = 0.0, b = 0.0; /* mean(g), mean(g * xhat) with g = dy * gamma */
            for (int64_t j = 0; j < D; j++) {
                float gj = gr[j] * g[j];
                a += gj;
                b += (double)gj * (double)((hr[j] - m) * s);
            }
            float af = (float)(a / (double)D), bf = (float)(b / (double)D);
            for (int64_t j = 0; j < D; j++) {
                float xhat = (hr[j] - m) * s;
                dr[j] = s * (gr[j] * g[j] - af - xhat * bf);
            }
            cpu_st(dh, r * D, D, dr);
        }
        free(buf);
    }
}

/* ------------------------------------------------------------------------ */
/* embeddings and row gathers                                                */

static void check_ids(const char *who, const bt_tensor *ids, int64_t N)
{
    CPU_CHECK(ids->dtype == BT_I32 && bt_numel(ids) == N, "%s: ids must be int32 [%lld]", who, (long long)N);
}

static void cpu_embed_fwd(bt_backend *be, const bt_tensor *ids, const bt_tensor *pos_ids,
                          const bt_tensor *type_ids, const bt_tensor *word, const bt_tensor *pos,
                          const bt_tensor *type, bt_tensor *out)
{
    int64_t N = cpu_rows(out), D = cpu_cols(out);
    check_ids("embed_fwd", ids, N);
    if (pos_ids && pos) check_ids("embed_fwd(pos)", pos_ids, N);
    if (type_ids && type) check_ids("embed_fwd(type)", type_ids, N);
    CPU_CHECK(cpu_cols(word) == D && (!pos || cpu_cols(pos) == D) && (!type || cpu_cols(type) == D),
              "embed_fwd: tables must have D=%lld columns", (long long)D);
    const int32_t *wi = I32P(ids), *pi = (pos_ids && pos) ? I32P(pos_ids) : NULL;
    const int32_t *ti = (type_ids && type) ? I32P(type_ids) : NULL;
    CPU_CHECK(word->dtype == BT_F32 && (!pos || pos->dtype == BT_F32) && (!type || type->dtype == BT_F32) &&
                  cpu_is_float(out->dtype),
              "embed_fwd: F32 tables and a float output expected");
    const float *W = F32P(word), *P = pos ? F32P(pos) : NULL, *T = type ? F32P(type) : NULL;
    int64_t nw = cpu_rows(word), np = pos ? cpu_rows(pos) : 0, ntp = type ? cpu_rows(type) : 0;
    int nt = cpu_nt(be);
#pragma omp parallel num_threads(nt)
    {
        float *buf = out->dtype == BT_F32 ? NULL : malloc(sizeof(float) * (size_t)(D ? D : 1));
        CPU_CHECK(out->dtype == BT_F32 || buf, "embed_fwd: out of memory");
#pragma omp for schedule(static)
        for (int64_t i = 0; i < N; i++) {
            CPU_CHECK(wi[i] >= 0 && wi[i] < nw, "embed_fwd: token id %d at %lld outside [0,%lld)", wi[i], (long long)i, (long long)nw);
            CPU_CHECK(!pi || (pi[i] >= 0 && pi[i] < np), "embed_fwd: position id %d outside [0,%lld)", pi ? pi[i] : 0, (long long)np);
            CPU_CHECK(!ti || (ti[i] >= 0 && ti[i] < ntp), "embed_fwd: type id %d outside [0,%lld)", ti ? ti[i] : 0, (long long)ntp);
            const float *w = W + (int64_t)wi[i] * D;
            const float *p = pi ? P + (int64_t)pi[i] * D : NULL;
            const float *t = ti ? T + (int64_t)ti[i] * D : NULL;
            float *o = cpu_out(out, i * D, buf);
            /* HF order: (word + type) + position */
            for (int64_t j = 0; j < D; j++) {
                float v = w[j];
                if (t) v += t[j];
                if (p) v += p[j];
                o[j] = v;
            }
            cpu_st(out, i * D, D, o);
        }
        free(buf);
    }
}

/* dst[idx[i]] += src[i] for i ascending (skipping idx == skip), columns split
 * across threads: deterministic and independent of the thread count. */
static void scatter_add_rows(int nt, const int32_t *idx, int64_t N, int32_t skip, const bt_tensor *srct,
                             float *dst, int64_t nrows, int64_t D, const char *who)
{
    CPU_CHECK(cpu_is_float(srct->dtype), "%s: the gradient must be a float tensor", who);
    for (int64_t i = 0; i < N; i++)
        CPU_CHECK(idx[i] == skip || (idx[i] >= 0 && idx[i] < nrows), "%s: index %d at %lld outside [0,%lld)",
                  who, idx[i], (long long)i, (long long)nrows);
#pragma omp parallel num_threads(nt)
    {
        int64_t lo, hi;
        int n = 1;
#ifdef _OPENMP
        n = omp_get_num_threads();
#endif
        split_range(D, n, thread_id(), 16, &lo, &hi);
        float *buf = hi > lo && srct->dtype != BT_F32 ? malloc(sizeof(float) * (size_t)(hi - lo)) : NULL;
        CPU_CHECK(hi <= lo || srct->dtype == BT_F32 || buf, "%s: out of memory", who);
        for (int64_t i = 0; i < N && hi > lo; i++) {
            if (idx[i] == skip) continue;
            const float *s = cpu_ld(srct, i * D + lo, hi - lo, buf);
            float *d = dst + (int64_t)idx[i] * D + lo;
#pragma omp simd
            for (int64_t j = 0; j < hi - lo; j++) d[j] += s[j];
        }
        free(buf);
    }
}

static void cpu_embed_bwd(bt_backend *be, const bt_tensor *ids, const bt_tensor *pos_ids,
                          const bt_tensor *type_ids, const bt_tensor *dout, int pad_id,
                          bt_tensor *dword, bt_tensor *dpos, bt_tensor *dtype)
{
    int64_t N = cpu_rows(dout), D = cpu_cols(dout);
    const bt_tensor *G = dout;
    int nt = cpu_nt(be);
    int32_t noskip = INT32_MIN; /* never a valid id */
    CPU_CHECK((!dword || dword->dtype == BT_F32) && (!dpos || dpos->dtype == BT_F32) && (!dtype || dtype->dtype == BT_F32),
              "embed_bwd: the table gradients must be F32");
    if (dword) {
        check_ids("embed_bwd", ids, N);
        CPU_CHECK(cpu_cols(dword) == D, "embed_bwd: dword must have D columns");
        scatter_add_rows(nt, I32P(ids), N, pad_id >= 0 ? pad_id : noskip, G, F32P(dword), cpu_rows(dword), D,
                         "embed_bwd(word)");
    }
    if (dpos && pos_ids) {
        check_ids("embed_bwd(pos)", pos_ids, N);
        CPU_CHECK(cpu_cols(dpos) == D, "embed_bwd: dpos must have D columns");
        scatter_add_rows(nt, I32P(pos_ids), N, noskip, G, F32P(dpos), cpu_rows(dpos), D, "embed_bwd(pos)");
    }
    if (dtype && type_ids) {
        check_ids("embed_bwd(type)", type_ids, N);
        CPU_CHECK(cpu_cols(dtype) == D, "embed_bwd: dtype must have D columns");
        scatter_add_rows(nt, I32P(type_ids), N, noskip, G, F32P(dtype), cpu_rows(dtype), D, "embed_bwd(type)");
    }
}

static void cpu_gather_rows(bt_backend *be, const bt_tensor *src, const bt_tensor *rows, bt_tensor *out)
{
    int64_t N = cpu_rows(out), D = cpu_cols(out), nr = cpu_rows(src);
    CPU_CHECK(cpu_cols(src) == D && cpu_is_float(src->dtype) && src->dtype == out->dtype,
              "gather_rows: src and out share a float dtype and D");
    check_ids("gather_rows", rows, N);
    const int32_t *ri = I32P(rows);
    size_t es = bt_dtype_size(src->dtype);
    const char *S = src->data;
    char *O = out->data;
    int nt = cpu_nt(be);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t n = 0; n < N; n++) {
        CPU_CHECK(ri[n] >= 0 && ri[n] < nr, "gather_rows: row %d outside [0,%lld)", ri[n], (long long)nr);
        memcpy(O + (size_t)(n * D) * es, S + (size_t)((int64_t)ri[n] * D) * es, es * (size_t)D);
    }
}

static void cpu_gather_rows_bwd(bt_backend *be, const bt_tensor *dout, const bt_tensor *rows, bt_tensor *dsrc)
{
    int64_t N = cpu_rows(dout), D = cpu_cols(dout);
    CPU_CHECK(cpu_cols(dsrc) == D && dsrc->dtype == BT_F32, "gather_rows_bwd: dsrc must be F32 with D columns");
    check_ids("gather_rows_bwd", rows, N);
    scatter_add_rows(cpu_nt(be), I32P(rows), N, INT32_MIN, dout, F32P(dsrc), cpu_rows(dsrc), D,
                     "gather_rows_bwd");
}

/* ------------------------------------------------------------------------ */
/* losses: per-row partial sums in double, combined in row order              */

static double sum_in_order(const double *v, int64_t n)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += v[i];
    return s;
}

static void cpu_softmax_xent(bt_backend *be, const bt_tensor *logits, const bt_tensor *labels,
                             float grad_scale, bt_tensor *loss, bt_tensor *dlogits)
{
    int64_t N = cpu_rows(logits), C = cpu_cols(logits);
    check_same("softmax_xent", logits, dlogits);
    check_ids("softmax_xent(labels)", labels, N);
    CPU_CHECK(loss->dtype == BT_F32, "softmax_xent: loss must be F32");
    const int32_t *y = I32P(labels);
    int64_t nvalid = 0;
    for (int64_t i = 0; i < N; i++) {
        CPU_CHECK(y[i] == -100 || (y[i] >= 0 && y[i] < C), "softmax_xent: label %d at row %lld outside [0,%lld)",
                  y[i], (long long)i, (long long)C);
        nvalid += y[i] != -100;
    }
    double *rowloss = malloc(sizeof(double) * (size_t)(N ? N : 1));
    CPU_CHECK(rowloss != NULL, "softmax_xent: out of memory");
    float gs = nvalid ? (float)((double)grad_scale / (double)nvalid) : 0.0f;
    int nt = cpu_nt(be);
#pragma omp parallel num_threads(nt)
    {
        float *buf = logits->dtype == BT_F32 ? NULL : malloc(sizeof(float) * 2 * (size_t)(C ? C : 1));
        CPU_CHECK(logits->dtype == BT_F32 || buf, "softmax_xent: out of memory");
#pragma omp for schedule(static)
        for (int64_t i = 0; i < N; i++) {
            float *d = cpu_out(dlogits, i * C, buf ? buf + C : NULL);
            if (y[i] == -100) {
                memset(d, 0, sizeof(float) * (size_t)C);
                cpu_st(dlogits, i * C, C, d);
                rowloss[i] = 0.0;
                continue;
            }
            const float *x = cpu_ld(logits, i * C, C, buf);
            float mx = -INFINITY;
            for (int64_t j = 0; j < C; j++) mx = x[j] > mx ? x[j] : mx;
            double s = 0.0;
            for (int64_t j = 0; j < C; j++) {
                float e = expf(x[j] - mx);
                d[j] = e;
                s += e;
            }
            rowloss[i] = (double)mx + log(s) - (double)x[y[i]];
            float inv = (float)(1.0 / s);
            for (int64_t j = 0; j < C; j++) d[j] = (d[j] * inv - (j == y[i] ? 1.0f : 0.0f)) * gs;
            cpu_st(dlogits, i * C, C, d);
        }
        free(buf);
    }
    F32P(loss)[0] = nvalid ? (float)(sum_in_order(rowloss, N) / (double)nvalid) : 0.0f;
    free(rowloss);
}

static void cpu_bce_logits(bt_backend *be, const bt_tensor *logits, const bt_tensor *targets,
                           float grad_scale, bt_tensor *loss, bt_tensor *dlogits)
{
    int64_t N = cpu_rows(logits), C = cpu_cols(logits);
    CPU_CHECK(bt_numel(targets) == N * C, "bce_logits: targets must be [N,C]");
    check_same("bce_logits", logits, dlogits);
    CPU_CHECK(targets->dtype == BT_F32 && loss->dtype == BT_F32, "bce_logits: targets and loss must be F32");
    const float *T = F32P(targets);
    double *rowloss = malloc(sizeof(double) * (size_t)(N ? N : 1));
    CPU_CHECK(rowloss != NULL, "bce_logits: out of memory");
    float gs = (N * C) != 0 ? (float)((double)grad_scale / (double)(N * C)) : 0.0f;
    int nt = cpu_nt(be);
#pragma omp parallel num_threads(nt)
    {
        float *buf = logits->dtype == BT_F32 ? NULL : malloc(sizeof(float) * 2 * (size_t)(C ? C : 1));
        CPU_CHECK(logits->dtype == BT_F32 || buf, "bce_logits: out of memory");
#pragma omp for schedule(static)
        for (int64_t i = 0; i < N; i++) {
            const float *X = cpu_ld(logits, i * C, C, buf);
            float *dX = cpu_out(dlogits, i * C, buf ? buf + C : NULL);
            double s = 0.0;
            for (int64_t j = 0; j < C; j++) {
                float x = X[j], t = T[i * C + j];
                /* max(x,0) - x t + log(1 + exp(-|x|)): stable for any x */
                s += (x > 0.0f ? (double)x : 0.0) - (double)x * t + log1p(exp(-fabs((double)x)));
                float sig = x >= 0.0f ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x));
                dX[j] = (sig - t) * gs;
            }
            cpu_st(dlogits, i * C, C, dX);
            rowloss[i] = s;
        }
        free(buf);
    }
    F32P(loss)[0] = (N * C) != 0 ? (float)(sum_in_order(rowloss, N) / (double)(N * C)) : 0.0f;
    free(rowloss);
}

static void cpu_mse(bt_backend *be, const bt_tensor *pred, const bt_tensor *target, float grad_scale,
                    bt_tensor *loss, bt_tensor *dpred)
{
    int64_t N = cpu_rows(pred), C = cpu_cols(pred);
    CPU_CHECK(bt_numel(target) == N * C, "mse: target must be [N,C]");
    check_same("mse", pred, dpred);
    CPU_CHECK(target->dtype == BT_F32 && loss->dtype == BT_F32, "mse: target and loss must be F32");
    const float *T = F32P(target);
    double *rowloss = malloc(sizeof(double) * (size_t)(N ? N : 1));
    CPU_CHECK(rowloss != NULL, "mse: out of memory");
    float gs = (N * C) != 0 ? (float)(2.0 * (double)grad_scale / (double)(N * C)) : 0.0f;
    int nt = cpu_nt(be);
#pragma omp parallel num_threads(nt)
    {
        float *buf = pred->dtype == BT_F32 ? NULL : malloc(sizeof(float) * 2 * (size_t)(C ? C : 1));
        CPU_CHECK(pred->dtype == BT_F32 || buf, "mse: out of memory");
#pragma omp for schedule(static)
        for (int64_t i = 0; i < N; i++) {
            const float *X = cpu_ld(pred, i * C, C, buf);
            float *dX = cpu_out(dpred, i * C, buf ? buf + C : NULL);
            double s = 0.0;
            for (int64_t j = 0; j < C; j++) {
                float d = X[j] - T[i * C + j];
                s += (double)d * d;
                dX[j] = d * gs;
            }
            cpu_st(dpred, i * C, C, dX);
            rowloss[i] = s;
        }
        free(buf);
    }
    F32P(loss)[0] = (N * C) != 0 ? (float)(sum_in_order(rowloss, N) / (double)(N * C)) : 0.0f;
    free(rowloss);
}

/* ------------------------------------------------------------------------ */
/* AdamW (torch.optim.AdamW, single-tensor path, amsgrad off)                */

/* torch's hyper-parameters are Python floats (doubles) such as 0.9 or 1e-8;
 * the op receives them as float. The double torch would hold is the shortest
 * decimal that rounds to the float, so recover that (0.9f -> 0.9, not
 * 0.8999999762). */
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

/* The element update. torch (1.13, AVX2 kernels: GCC contracts the vector
 * mul+add into FMA) computes, in float with these scalars:
 *   p = p * wdf                         param.mul_(1 - lr*wd)
 *   m = fma(g, c1, m * b1)              exp_avg.mul_(b1).add_(g, alpha=1-b1)  (vectorised fmadd)
 *   v = fma(c2 * g, g, v * b2)          exp_avg_sq.mul_(b2).addcmul_(g, g, value=1-b2)
 *   denom = sqrt(v) / bc2s + eps
 *   p = p + (-step_size) * m / denom    param.addcdiv_(m, denom, value=-step_size) */
#define ADAMW_BODY(FMA)                                                              \
    for (int64_t i = lo; i < hi; i++) {                                              \
        float gi = gscale == 1.0f ? g[i] : g[i] * gscale;                            \
        float pi = p[i] * wdf;                                                       \
        float mi = FMA(gi, c1, m[i] * b1);                                           \
        float vi = FMA(c2 * gi, gi, v[i] * b2);                                      \
        float denom = sqrtf(vi) / bc2s + eps;                                        \
        p[i] = pi + nss * mi / denom;                                                \
        m[i] = mi;                                                                   \
        v[i] = vi;                                                                   \
    }

struct adamw_scalars { float wdf, b1, c1, b2, c2, bc2s, eps, nss, gscale; };

#define ADAMW_FN(NAME, ATTR, FMA)                                                           \
    ATTR static void NAME(float *restrict p, const float *restrict g, float *restrict m,    \
                          float *restrict v, int64_t lo, int64_t hi, struct adamw_scalars s) \
    {                                                                                       \
        const float wdf = s.wdf, b1 = s.b1, c1 = s.c1, b2 = s.b2, c2 = s.c2, bc2s = s.bc2s;  \
        const float eps = s.eps, nss = s.nss, gscale = s.gscale;                            \
        ADAMW_BODY(FMA)                                                                     \
    }
/* fmaf is exactly rounded either way; with the fma target it is one instruction. */
ADAMW_FN(adamw_fma, __attribute__((target("fma"))), __builtin_fmaf)
ADAMW_FN(adamw_soft, , fmaf)

static void cpu_adamw(bt_backend *be, bt_tensor *pt, const bt_tensor *gt, bt_tensor *mt, bt_tensor *vt,
                      const bt_adamw_args *a)
{
    int64_t n = bt_numel(pt);
    check_same("adamw(g)", pt, gt);
    check_same("adamw(m)", pt, mt);
    check_same("adamw(v)", pt, vt);
    CPU_CHECK(a->step >= 1, "adamw: step must be >= 1 (got %lld)", (long long)a->step);
    double lr = hyper_double(a->lr), b1 = hyper_double(a->beta1), b2 = hyper_double(a->beta2);
    double eps = hyper_double(a->eps), wd = hyper_double(a->weight_decay);
    double bc1 = 1.0 - pow(b1, (double)a->step), bc2 = 1.0 - pow(b2, (double)a->step);
    double step_size = lr / bc1;
    struct adamw_scalars s = {
        .wdf = (float)(1.0 - lr * wd), .b1 = (float)b1, .c1 = (float)(1.0 - b1), .b2 = (float)b2,
        .c2 = (float)(1.0 - b2), .bc2s = (float)sqrt(bc2), .eps = (float)eps,
        .nss = (float)(-step_size), .gscale = a->grad_scale,
    };
    float *p = F32P(pt), *m = F32P(mt), *v = F32P(vt);
    const float *g = F32P(gt);
    int use_fma = __builtin_cpu_supports("fma");
    int nt = cpu_nt(be);
    if (n < 32768) nt = 1;
#pragma omp parallel num_threads(nt)
    {
        int k = 1;
#ifdef _OPENMP
        k = omp_get_num_threads();
#endif
        int64_t lo, hi;
        split_range(n, k, thread_id(), 16, &lo, &hi);
        if (use_fma) adamw_fma(p, g, m, v, lo, hi, s);
        else adamw_soft(p, g, m, v, lo, hi, s);
    }
}

/* ------------------------------------------------------------------------ */
/* global checks: fixed chunks, each summed by one thread, combined in order  */

#define SQ_CHUNK 16384

static double cpu_sum_squares(bt_backend *be, const bt_tensor *ts, int n)
{
    int64_t total = 0;
    for (int t = 0; t < n; t++) {
        CPU_CHECK(cpu_is_float(ts[t].dtype), "sum_squares: float tensors only (tensor %d)", t);
        total += (bt_numel(&ts[t]) + SQ_CHUNK - 1) / SQ_CHUNK;
    }
    if (total == 0) return 0.0;
    double *part = malloc(sizeof(double) * (size_t)total);
    int64_t *start = malloc(sizeof(int64_t) * (size_t)(n + 1));
    CPU_CHECK(part && start, "sum_squares: out of memory");
    start[0] = 0;
    for (int t = 0; t < n; t++) start[t + 1] = start[t] + (bt_numel(&ts[t]) + SQ_CHUNK - 1) / SQ_CHUNK;
    int nt = cpu_nt(be);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t c = 0; c < total; c++) {
        int t = 0;
        while (start[t + 1] <= c) t++; /* n is small (parameter tensors) */
        int64_t i0 = (c - start[t]) * SQ_CHUNK, len = bt_numel(&ts[t]) - i0;
        if (len > SQ_CHUNK) len = SQ_CHUNK;
        double s = 0.0;
        if (ts[t].dtype == BT_F32) {
            const float *x = F32P(&ts[t]) + i0;
#pragma omp simd reduction(+ : s)
            for (int64_t i = 0; i < len; i++) s += (double)x[i] * (double)x[i];
        } else {
            float x[EW_CH];
            for (int64_t k0 = 0; k0 < len; k0 += EW_CH) {
                int64_t m = len - k0 < EW_CH ? len - k0 : EW_CH;
                cpu_widen(ts[t].dtype, ts[t].data, i0 + k0, m, x);
#pragma omp simd reduction(+ : s)
                for (int64_t i = 0; i < m; i++) s += (double)x[i] * (double)x[i];
            }
        }
        part[c] = s;
    }
    double s = sum_in_order(part, total);
    free(part);
    free(start);
    return s;
}

static int cpu_all_finite(bt_backend *be, const bt_tensor *ts, int n)
{
    int ok = 1;
    int nt = cpu_nt(be);
    for (int t = 0; t < n && ok; t++) {
        CPU_CHECK(cpu_is_float(ts[t].dtype), "all_finite: float tensors only (tensor %d)", t);
        int64_t len = bt_numel(&ts[t]);
        int bad = 0;
        if (ts[t].dtype == BT_F32) {
            const uint32_t *x = (const uint32_t *)ts[t].data;
#pragma omp parallel for simd num_threads(nt) schedule(static) reduction(| : bad)
            for (int64_t i = 0; i < len; i++) bad |= (x[i] & 0x7F800000u) == 0x7F800000u;
        } else { /* all exponent bits set: inf or NaN */
            const uint16_t *x = (const uint16_t *)ts[t].data;
            uint16_t e = ts[t].dtype == BT_F16 ? 0x7C00u : 0x7F80u;
#pragma omp parallel for simd num_threads(nt) schedule(static) reduction(| : bad)
            for (int64_t i = 0; i < len; i++) bad |= (x[i] & e) == e;
        }
        ok = !bad;
    }
    return ok;
}

/* ------------------------------------------------------------------------ */
/* capabilities                                                              */

static int cpu_dtype_ok(bt_backend *be, bt_dtype dt)
{
    (void)be;
    return dt == BT_F32 || dt == BT_F16 || dt == BT_BF16;
}

static int cpu_set_tf32(bt_backend *be, int on)
{
    (void)be;
    if (!on) return 0;
    return bt_fail(BT_ECONFIG, "tf32 is a GPU tensor-core format (sm_80+): the CPU backend computes F32 matmuls "
                               "in full fp32; use precision fp32 (or bf16) on the CPU");
}

/* ------------------------------------------------------------------------ */

bt_backend *bt_backend_cpu_create(int threads)
{
    int nt = threads;
#ifdef _OPENMP
    if (nt <= 0) nt = omp_get_max_threads();
#else
    nt = 1;
#endif
    if (nt < 1) nt = 1;
    if (nt > 1024) {
        bt_fail(BT_ECONFIG, "cpu backend: %d threads requested; use at most 1024 (or 0 for the default)", threads);
        return NULL;
    }
    bt_backend *be = calloc(1, sizeof *be);
    cpu_impl *im = calloc(1, sizeof *im);
    if (!be || !im) {
        free(be);
        free(im);
        bt_fail(BT_EINTERNAL, "cpu backend: out of memory creating the backend");
        return NULL;
    }
    im->nt = nt > CPU_MAX_THREADS ? CPU_MAX_THREADS : nt;
    /* All parallelism is OpenMP's: each GEMM block runs single-threaded BLAS. */
    openblas_set_num_threads(1);
    be->name = "cpu";
    be->device = BT_DEV_CPU;
    be->host_memory = 1;
    be->impl = im;
    be->alloc = cpu_alloc;
    be->free = cpu_free;
    be->upload = cpu_upload;
    be->download = cpu_download;
    be->memset0 = cpu_memset0;
    be->copy = cpu_memcpy;
    be->sync = cpu_sync;
    be->destroy = cpu_destroy;
    be->peak_bytes = cpu_peak;
    be->mem_info = cpu_mem_info;
    be->set_threads = cpu_set_threads;
    be->sm = 0;
    be->dtype_ok = cpu_dtype_ok;
    be->set_tf32 = cpu_set_tf32;
    be->matmul = cpu_matmul;
    be->bias_grad = cpu_bias_grad;
    be->act_fwd = cpu_act_fwd;
    be->act_bwd = cpu_act_bwd;
    be->dropout = cpu_dropout;
    be->add = cpu_add;
    be->scale = cpu_scale;
    be->convert = cpu_convert;
    be->layernorm_fwd = cpu_layernorm_fwd;
    be->layernorm_bwd = cpu_layernorm_bwd;
    be->attention_fwd = cpu_attention_fwd;
    be->attention_bwd = cpu_attention_bwd;
    be->rel_attention_fwd = cpu_rel_attention_fwd;
    be->rel_attention_bwd = cpu_rel_attention_bwd;
    be->attention_wants_probs = cpu_attention_wants_probs;
    be->embed_fwd = cpu_embed_fwd;
    be->embed_bwd = cpu_embed_bwd;
    be->gather_rows = cpu_gather_rows;
    be->gather_rows_bwd = cpu_gather_rows_bwd;
    be->softmax_xent = cpu_softmax_xent;
    be->bce_logits = cpu_bce_logits;
    be->mse = cpu_mse;
    be->adamw = cpu_adamw;
    be->sum_squares = cpu_sum_squares;
    be->all_finite = cpu_all_finite;
    be->collective = cpu_collective;
    return be;
}
