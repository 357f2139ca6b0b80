/* kernels/cpu/cpu_internal.h — private to the CPU backend (the kernels/cpu/ sources).
 *
 * Owns: the backend's private state, the shape-check helper, the thread
 * partition, the fast four-at-a-time dropout draw, the 16-bit load/store
 * helpers (widen to F32, round to nearest-even on store), and the
 * declarations shared between cpu_backend.c (memory, F32 GEMM, elementwise,
 * norms, losses, optimizer), cpu_half.c (16-bit GEMM operands, scratch) and
 * cpu_attention.c (attention forward/backward), cpu_mem.c (memory size,
 * attention kernel choice).
 * Must not: be included outside kernels/cpu/ or by tests (tests go through
 * the bt_backend vtable like the engine does).
 *
 * Threading model: the backend owns ONE pool, OpenMP's. OpenBLAS is set to a
 * single thread and every GEMM is split by the backend into fixed blocks of
 * rows (or columns) of C, one block per OpenMP thread, so OpenBLAS helper
 * threads never spin against OpenMP ones on a small machine and each output
 * element is computed by exactly one thread in a fixed order. Every parallel
 * loop is schedule(static) with num_threads(nt): for a given thread count the
 * results are bit-identical run after run. Reductions across rows are done
 * per column (rows ascending) or in fixed-size chunks combined in order, so
 * most of them do not even depend on the thread count.
 */
#ifndef BATON_KERNELS_CPU_INTERNAL_H
#define BATON_KERNELS_CPU_INTERNAL_H

#include "kernels/backend.h"
#include "kernels/half.h"
#include "kernels/philox.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct {
    int nt;                 /* OpenMP threads used by every parallel region */
    size_t cur_bytes;       /* bytes live through alloc() and the scratch (atomic updates) */
    size_t peak_bytes;
    void *scratch;          /* cpu_scratch(): F32 copies of 16-bit GEMM operands */
    size_t scratch_bytes;
} cpu_impl;

static inline int cpu_nt(bt_backend *be) { return ((cpu_impl *)be->impl)->nt; }

static inline int cpu_thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* [lo, hi) of part t of n items split into nt parts, boundaries on multiples
 * of align (the last part takes the rest). Depends only on (n, nt, t). */
static inline void cpu_split_range(int64_t n, int nt, int t, int64_t align, int64_t *lo, int64_t *hi)
{
    int64_t per = (n + nt - 1) / nt;
    per = (per + align - 1) / align * align;
    *lo = per * t < n ? per * t : n;
    *hi = per * (t + 1) < n ? per * (t + 1) : n;
}

/* A broken shape/dtype contract is a bug in the caller (the engine), never
 * user input: say where and what, and exit 70 (internal error). */
#define CPU_CHECK(cond, ...)                                                                    \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "baton: internal error: cpu backend %s (%s:%d): ", __func__,       \
                    __FILE__, __LINE__);                                                        \
            fprintf(stderr, __VA_ARGS__);                                                       \
            fprintf(stderr, "\n  (a shape or dtype contract of kernels/backend.h was broken; "  \
                            "please report this)\n");                                           \
            exit(70);                                                                           \
        }                                                                                       \
    } while (0)

#define F32P(t) ((float *)(t)->data)
#define I32P(t) ((int32_t *)(t)->data)

/* ---- 16-bit tensors: stored as F16/BF16, computed in F32, rounded to
 * nearest-even on store (kernels/half.h). The pattern of every op:
 *     const float *x = cpu_ld(X, i0, n, buf);   (a pointer into X when F32)
 *     float *y = cpu_out(Y, i0, buf2);           (into Y when F32, else buf2)
 *     ... y[k] = f(x[k]) ...
 *     cpu_st(Y, i0, n, y);                       (rounds into Y; no-op for F32)
 * so the F32 path runs exactly the arithmetic it always did. */
static inline int cpu_is_float(bt_dtype d) { return d == BT_F32 || d == BT_F16 || d == BT_BF16; }

static inline void cpu_widen(bt_dtype dt, const void *src, int64_t i0, int64_t n, float *out)
{
    if (dt == BT_F32) {
        memcpy(out, (const float *)src + i0, sizeof(float) * (size_t)n);
    } else if (dt == BT_BF16) {
        const uint16_t *s = (const uint16_t *)src + i0;
        for (int64_t k = 0; k < n; k++) out[k] = bt_bits_f32((uint32_t)s[k] << 16);
    } else {
        const uint16_t *s = (const uint16_t *)src + i0;
        for (int64_t k = 0; k < n; k++) out[k] = bt_f16_to_f32(s[k]);
    }
}

static inline void cpu_narrow(bt_dtype dt, void *dst, int64_t i0, int64_t n, const float *in)
{
    if (dt == BT_F32) {
        float *d = (float *)dst + i0;
        if (d != in) memcpy(d, in, sizeof(float) * (size_t)n);
    } else if (dt == BT_BF16) {
        uint16_t *d = (uint16_t *)dst + i0;
        for (int64_t k = 0; k < n; k++) d[k] = bt_f32_to_bf16(in[k]);
    } else {
        uint16_t *d = (uint16_t *)dst + i0;
        for (int64_t k = 0; k < n; k++) d[k] = bt_f32_to_f16(in[k]);
    }
}

static inline const float *cpu_ld(const bt_tensor *t, int64_t i0, int64_t n, float *buf)
{
    if (t->dtype == BT_F32) return (const float *)t->data + i0;
    cpu_widen(t->dtype, t->data, i0, n, buf);
    return buf;
}
static inline float *cpu_out(bt_tensor *t, int64_t i0, float *buf)
{
    return t->dtype == BT_F32 ? (float *)t->data + i0 : buf;
}
static inline void cpu_st(bt_tensor *t, int64_t i0, int64_t n, const float *v)
{
    if (t->dtype != BT_F32) cpu_narrow(t->dtype, t->data, i0, n, v);
}

/* A buffer of at least bytes owned by the backend, valid until the next call
 * (ops run one at a time; never from inside a parallel region). Counted in
 * peak_bytes. */
void *cpu_scratch(bt_backend *be, size_t bytes);

/* The matmul of 16-bit A/B (cpu_half.c): widens them exactly to F32, runs
 * the F32 GEMM of cpu_matmul_f32 and rounds C on store. (Debian's OpenBLAS
 * is built without BUILD_BFLOAT16: there is no cblas_sbgemm to call.) */
void cpu_matmul_half(bt_backend *be, const bt_tensor *A, int transA, const bt_tensor *B, int transB,
                     bt_tensor *C, const bt_tensor *bias, float alpha, float beta, int epilogue,
                     bt_tensor *pre_act, int64_t M, int64_t N, int64_t K);
/* C[M,N] (F32, ld N) = alpha op(A) op(B) + beta C + bias, then the epilogue
 * (pre: F32 [M,N] or NULL); A, B F32 with leading dims lda, ldb. C is cut
 * into cpu_gemm_parts() row or column blocks, a function of the shape alone
 * (so the bits do not depend on the thread count); cpu_gemm_threads() threads
 * take them round robin, cpu_gemm_block(i, parts, ...) computing part i and
 * reporting it in blk (rows [blk0, blk1) x columns [blk2, blk3)); it returns
 * 0 for an empty part. */
int cpu_gemm_parts(int64_t M, int64_t N, int64_t K);
int cpu_gemm_threads(bt_backend *be, int64_t M, int64_t N, int64_t K);
int cpu_gemm_block(int t, int n, const float *a, int lda, int transA, const float *b, int ldb, int transB, float *c,
                   int64_t M, int64_t N, int64_t K, const float *bias, float alpha, float beta, int epilogue,
                   float *pre, int64_t blk[4]);
void cpu_matmul_f32(bt_backend *be, const float *a, int lda, int transA, const float *b, int ldb, int transB,
                    float *c, int64_t M, int64_t N, int64_t K, const float *bias, float alpha, float beta,
                    int epilogue, float *pre);
float cpu_gelu_erf(float x);
float cpu_gelu_tanh(float x);

/* The last dimension of a tensor (its row length) and the number of rows. */
static inline int64_t cpu_cols(const bt_tensor *t) { return t->ndim ? t->shape[t->ndim - 1] : 1; }
static inline int64_t cpu_rows(const bt_tensor *t)
{
    int64_t c = cpu_cols(t);
    return c ? bt_numel(t) / c : 0;
}

/* Dropout multipliers for elements [i0, i0+n) of a site: out[k] = keep ? scale : 0,
 * with keep exactly bt_dropout_keep_raw(key, i0+k, p), but one Philox block per
 * four elements instead of one per element. */
static inline void cpu_dropout_mult(const bt_dropout_key *key, uint64_t i0, int64_t n, float p,
                                    float scale, float *out)
{
    uint64_t i = i0, end = i0 + (uint64_t)n;
    while (i < end) {
        uint64_t q = i >> 2;
        uint32_t c = ((uint32_t)(q >> 24) << 24) | ((key->layer & 0xFFFFu) << 8) | (key->site & 0xFFu);
        bt_u32x4 r = bt_random4(key->seed, BT_STREAM_DROPOUT, key->step, key->micro, c, (uint32_t)q);
        for (unsigned lane = (unsigned)(i & 3); lane < 4 && i < end; lane++, i++)
            out[i - i0] = bt_u01(r.v[lane]) >= p ? scale : 0.0f;
    }
}

/* 1/(1-p) as torch computes the dropout scale (float). */
static inline float cpu_dropout_scale(float p) { return p < 1.0f ? 1.0f / (1.0f - p) : 0.0f; }

/* Single-threaded row-major sgemm on the calling thread (OpenBLAS is set to
 * one thread): C = alpha op(A) op(B) + beta C with explicit leading dims. */
void cpu_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc);

/* cpu_mem.c */
int cpu_mem_info(bt_backend *be, size_t *free_bytes, size_t *total_bytes);
int cpu_attention_wants_probs(bt_backend *be, int S, int Dh);
/* bt_backend.collective between CPU replicas (cpu_collective.c) */
int cpu_collective(bt_backend *be, bt_backend *const *bes, int n, float *const *bufs, size_t count, int op);

void cpu_attention_fwd(bt_backend *be, const bt_tensor *qkv, const bt_tensor *mask, int B, int S,
                       int H, int Dh, float scale, float p_drop, bt_dropout_key key, bt_tensor *ctx,
                       bt_tensor *probs, bt_tensor *lse);
void cpu_attention_bwd(bt_backend *be, const bt_tensor *qkv, const bt_tensor *mask, int B, int S,
                       int H, int Dh, float scale, float p_drop, bt_dropout_key key,
                       const bt_tensor *ctx, const bt_tensor *probs, const bt_tensor *lse,
                       const bt_tensor *dctx, bt_tensor *dqkv);

/* cpu_relattn.c (kernels/backend.h: rel_attention_fwd / rel_attention_bwd) */
void cpu_rel_attention_fwd(bt_backend *be, const bt_tensor *qkv, const bt_tensor *pos, const bt_tensor *relidx,
                           const bt_tensor *mask, const bt_rel_attn *a, bt_tensor *ctx, bt_tensor *probs);
void cpu_rel_attention_bwd(bt_backend *be, const bt_tensor *qkv, const bt_tensor *pos, const bt_tensor *relidx,
                           const bt_tensor *mask, const bt_rel_attn *a, const bt_tensor *probs,
                           const bt_tensor *dctx, bt_tensor *dqkv, bt_tensor *dpos);

#endif
