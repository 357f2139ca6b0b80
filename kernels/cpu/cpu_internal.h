/* kernels/cpu/cpu_internal.h — private to the CPU backend (the kernels/cpu/ sources).
 *
 * Owns: the backend's private state, the shape-check helper, the fast
 * four-at-a-time dropout draw, and the declarations shared between
 * cpu_backend.c (memory, GEMM, elementwise, norms, losses, optimizer) and
 * cpu_attention.c (attention forward/backward).
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
#include "kernels/philox.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    int nt;                 /* OpenMP threads used by every parallel region */
    size_t cur_bytes;       /* bytes live through alloc() (atomic updates) */
    size_t peak_bytes;
} cpu_impl;

static inline int cpu_nt(bt_backend *be) { return ((cpu_impl *)be->impl)->nt; }

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

void cpu_attention_fwd(bt_backend *be, const bt_tensor *qkv, const bt_tensor *mask, int B, int S,
                       int H, int Dh, float scale, float p_drop, bt_dropout_key key, bt_tensor *ctx,
                       bt_tensor *probs, bt_tensor *lse);
void cpu_attention_bwd(bt_backend *be, const bt_tensor *qkv, const bt_tensor *mask, int B, int S,
                       int H, int Dh, float scale, float p_drop, bt_dropout_key key,
                       const bt_tensor *ctx, const bt_tensor *probs, const bt_tensor *lse,
                       const bt_tensor *dctx, bt_tensor *dqkv);

#endif
