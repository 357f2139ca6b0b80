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
#include "util/err.h"

#include <string.h>

void *cpu_scratch(bt_backend *be, size_t bytes)
{
    cpu_impl *im = be->impl;
    if (bytes <= im->scratch_bytes) return im->scratch;
    size_t want = bytes + bytes / 4; /* grow by 25% more than asked: a few growths per run */
    void *p = NULL;
    CPU_CHECK(posix_memalign(&p, 64, want) == 0, "scratch: out of memory for %zu bytes", want);
    free(im->scratch);
    size_t cur = __atomic_add_fetch(&im->cur_bytes, want - im->scratch_bytes, __ATOMIC_RELAXED);
    if (cur > im->peak_bytes) im->peak_bytes = cur;
    im->scratch = p;
    im->scratch_bytes = want;
    return p;
}

/* out[0..n) = widened src[0..n), split over the threads (elementwise: the
 * result does not depend on the split). */
static void widen_all(int nt, bt_dtype dt, const void *src, int64_t n, float *out)
{
    const int64_t CH = 8192;
    int64_t nch = (n + CH - 1) / CH;
    if (nch < 4) nt = 1;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t c = 0; c < nch; c++) {
        int64_t i0 = c * CH, len = n - i0 < CH ? n - i0 : CH;
        cpu_widen(dt, src, i0, len, out + i0);
    }
}

static void narrow_all(int nt, bt_dtype dt, void *dst, int64_t n, const float *in)
{
    const int64_t CH = 8192;
    int64_t nch = (n + CH - 1) / CH;
    if (nch < 4) nt = 1;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t c = 0; c < nch; c++) {
        int64_t i0 = c * CH, len = n - i0 < CH ? n - i0 : CH;
        cpu_narrow(dt, dst, i0, len, in + i0);
    }
}

/* 16-bit C with a GELU epilogue: pre = round(v), C = round(gelu(pre)). */
static void gelu_store(int nt, int epi, bt_tensor *C, bt_tensor *pre, const float *v, int64_t n)
{
    const int64_t CH = 2048;
    int64_t nch = (n + CH - 1) / CH;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t c = 0; c < nch; c++) {
        float r[2048];
        int64_t i0 = c * CH, len = n - i0 < CH ? n - i0 : CH;
        for (int64_t k = 0; k < len; k++) r[k] = bt_round_to((int)C->dtype, v[i0 + k]);
        if (pre) cpu_narrow(pre->dtype, pre->data, i0, len, r);
        for (int64_t k = 0; k < len; k++) r[k] = epi == BT_EPI_GELU_ERF ? cpu_gelu_erf(r[k]) : cpu_gelu_tanh(r[k]);
        cpu_narrow(C->dtype, C->data, i0, len, r);
    }
}

void cpu_matmul_half(bt_backend *be, const bt_tensor *A, int transA, const bt_tensor *B, int transB,
                     bt_tensor *C, const bt_tensor *bias, float alpha, float beta, int epilogue,
                     bt_tensor *pre_act, int64_t M, int64_t N, int64_t K)
{
    int nt = cpu_nt(be);
    int64_t na = bt_numel(A), nb = bt_numel(B), nc = M * N;
    int c16 = C->dtype != BT_F32;
    /* scratch: A and B widened, and C's F32 accumulator when C is 16-bit */
    size_t bytes = sizeof(float) * (size_t)(na + nb + (c16 ? nc : 0) + 48);
    float *a = cpu_scratch(be, bytes);
    float *b = a + ((na + 15) / 16) * 16;
    float *c = c16 ? b + ((nb + 15) / 16) * 16 : F32P(C);
    widen_all(nt, A->dtype, A->data, na, a);
    widen_all(nt, B->dtype, B->data, nb, b);
    if (c16 && beta != 0.0f) widen_all(nt, C->dtype, C->data, nc, c);
    const float *bi = bias ? F32P(bias) : NULL;
    int epi = c16 ? BT_EPI_NONE : epilogue; /* 16-bit C: the GELU reads the rounded value */
    float *pre = (!c16 && pre_act && epilogue != BT_EPI_NONE) ? F32P(pre_act) : NULL;
    cpu_matmul_f32(be, a, (int)cpu_cols(A), transA, b, (int)cpu_cols(B), transB, c, M, N, K, bi, alpha, beta,
                   epi, pre);
    if (!c16) return;
    if (epilogue != BT_EPI_NONE)
        gelu_store(nt, epilogue, C, pre_act, c, nc);
    else
        narrow_all(nt, C->dtype, C->data, nc, c);
}
