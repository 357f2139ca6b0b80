/* kernels/cpu/cpu_half.c — the CPU backend's matmul of F16/BF16 operands and
 * its scratch buffer.
 *
 * Owns: cpu_matmul_half() and cpu_scratch(). A 16-bit GEMM is computed as
 * the GPU computes it: the operands widened exactly to F32, products summed
 * in F32 (OpenBLAS sgemm, the F32 path's thread split), the bias added in
 * F32, one round-to-nearest-even when C is 16-bit. With a GELU epilogue and
 * a 16-bit C the activation reads the rounded pre-activation (kernels/backend.h).
 * Must not: know about BERT; keep state besides the scratch buffer.
 *
 * Native bf16 (AVX512-BF16 dot products through OpenBLAS cblas_sbgemm) would
 * skip the widening, but Debian's OpenBLAS 0.3.21 is built without
 * BUILD_BFLOAT16 (the library exports no sbgemm), so every CPU widens.
 */
#include "kernels/cpu/cpu_internal.h"
#include "kernels/workspace.h"
#include "util/err.h"

#include <string.h>

void *cpu_scratch(bt_backend *be, size_t bytes)
{
    cpu_impl *im = be->impl;
    if (bytes <= im->scratch_bytes) return im->scratch;
    size_t want = bt_ws_cpu_grow(im->scratch_bytes, bytes); /* 25% more than asked: a few growths per run */
    void *p = NULL;
    CPU_CHECK(posix_memalign(&p, 64, want) == 0, "scratch: out of memory for %zu bytes", want);
    free(im->scratch);
    size_t cur = __atomic_add_fetch(&im->cur_bytes, want - im->scratch_bytes, __ATOMIC_RELAXED);
    if (cur > im->peak_bytes) im->peak_bytes = cur;
    im->scratch = p;
    im->scratch_bytes = want;
    return p;
}

/* Thread t of n widens its share of src[0..len) into out (elementwise: the
 * result does not depend on the split). */
static void widen_share(int t, int n, bt_dtype dt, const void *src, int64_t len, float *out)
{
    int64_t lo, hi;
    cpu_split_range(len, n, t, 64, &lo, &hi);
    if (hi > lo) cpu_widen(dt, src, lo, hi - lo, out + lo);
}

/* Rounds the block rows [r0,r1) x cols [c0,c1) of the F32 result v [.,N]
 * into the 16-bit C; with a GELU epilogue pre = round(v), C = round(gelu(pre)). */
static void store_block(bt_tensor *C, bt_tensor *pre, int epi, const float *v, int64_t N, const int64_t blk[4])
{
    float r[256];
    int dt = (int)C->dtype;
    for (int64_t i = blk[0]; i < blk[1]; i++)
        for (int64_t j0 = blk[2]; j0 < blk[3]; j0 += 256) {
            int64_t w = blk[3] - j0 < 256 ? blk[3] - j0 : 256, at = i * N + j0;
            if (epi == BT_EPI_NONE) {
                cpu_narrow(C->dtype, C->data, at, w, v + at);
                continue;
            }
            for (int64_t k = 0; k < w; k++) r[k] = bt_round_to(dt, v[at + k]);
            if (pre) cpu_narrow(pre->dtype, pre->data, at, w, r);
            for (int64_t k = 0; k < w; k++) r[k] = epi == BT_EPI_GELU_ERF ? cpu_gelu_erf(r[k]) : cpu_gelu_tanh(r[k]);
            cpu_narrow(C->dtype, C->data, at, w, r);
        }
}

/* One parallel region: every thread widens its share of A and B (and of C
 * when it is read), a barrier, then its block of the F32 GEMM (the same
 * blocks as an F32 matmul) and the rounding of that block. */
void cpu_matmul_half(bt_backend *be, const bt_tensor *A, int transA, const bt_tensor *B, int transB,
                     bt_tensor *C, const bt_tensor *bias, float alpha, float beta, int epilogue,
                     bt_tensor *pre_act, int64_t M, int64_t N, int64_t K)
{
    int64_t na = bt_numel(A), nb = bt_numel(B), nc = M * N;
    int c16 = C->dtype != BT_F32;
    /* scratch: A and B widened, and C's F32 accumulator when C is 16-bit */
    size_t bytes = bt_ws_cpu_matmul_half(na, nb, nc, c16);
    float *a = cpu_scratch(be, bytes);
    float *b = a + ((na + 15) / 16) * 16;
    float *c = c16 ? b + ((nb + 15) / 16) * 16 : F32P(C);
    const float *bi = bias ? F32P(bias) : NULL;
    int epi = c16 ? BT_EPI_NONE : epilogue; /* 16-bit C: the GELU reads the rounded value */
    float *pre = (!c16 && pre_act && epilogue != BT_EPI_NONE) ? F32P(pre_act) : NULL;
    bt_tensor *pre16 = (c16 && pre_act && epilogue != BT_EPI_NONE) ? pre_act : NULL;
    int lda = (int)cpu_cols(A), ldb = (int)cpu_cols(B);
    int nt = cpu_gemm_threads(be, M, N, K), parts = cpu_gemm_parts(M, N, K);
#pragma omp parallel num_threads(nt)
    {
        int t = cpu_thread_id(), n = nt;
#ifdef _OPENMP
        n = omp_get_num_threads();
#endif
        widen_share(t, n, A->dtype, A->data, na, a);
        widen_share(t, n, B->dtype, B->data, nb, b);
        if (c16 && beta != 0.0f) widen_share(t, n, C->dtype, C->data, nc, c);
#pragma omp barrier
        int64_t blk[4];
        for (int i = t; i < parts; i += n) /* part i of parts, round robin (cpu_gemm_parts) */
            if (cpu_gemm_block(i, parts, a, lda, transA, b, ldb, transB, c, M, N, K, bi, alpha, beta, epi, pre, blk) &&
                c16)
                store_block(C, pre16, epilogue, c, N, blk);
    }
}
