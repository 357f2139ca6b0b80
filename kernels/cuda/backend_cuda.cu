/* kernels/cuda/backend_cuda.cu — the CUDA backend: creation, memory, errors, GEMM.
 *
 * Owns: bt_cuda_impl_create() and bt_cuda_impl_describe() (the C entry
 * points of libbaton-cuda.so, loaded by kernels/backend.c), the
 * stream, the cuBLASLt handle and workspace, device memory (zero-filled,
 * peak-tracked), the sticky error, and the matmul op (cuBLASLt, row-major by
 * swapping operands). The other ops live in cuda_ops.cu and cuda_attention.cu
 * and are installed into the vtable from here.
 * Must not: know about BERT, jobs or files; keep global state (everything is
 * in the backend's cuda_impl).
 *
 * Runtime knobs (read once at creation, documented in docs/cuda.md):
 *   BATON_CUDA_TF32=1       F32 GEMMs use TF32 tensor cores (also bt_cuda_set_tf32)
 *   BATON_CUDA_LT_GELU=0|1  GELU_TANH epilogue inside cuBLASLt (default: F16/BF16 only)
 *   BATON_CUDA_NONFATAL=1   record CUDA errors (sticky) instead of exiting 70
 */
#include "kernels/cuda/cuda_internal.cuh"
#include "kernels/workspace.h"

#include <stdarg.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* errors                                                                    */

int cuda_fail(bt_backend *be, int code, const char *file, int line, const char *fmt, ...)
{
    cuda_impl *im = cu_impl(be);
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    bt_fail(code, "cuda backend (%s:%d): %s", file, line, msg);
    if (im->status == 0) {
        im->status = code;
        snprintf(im->errmsg, sizeof im->errmsg, "cuda backend (%s:%d): %s", file, line, msg);
        if (im->fatal) {
            fprintf(stderr, "baton: %s\n  (GPU state can no longer be trusted; the last committed "
                            "checkpoint is intact: run the job again to resume from it)\n",
                    im->errmsg);
            exit(70);
        }
    }
    return code;
}

int cuda_check_rt(bt_backend *be, cudaError_t e, const char *call, const char *file, int line)
{
    if (e == cudaSuccess) return 0;
    return cuda_fail(be, BT_EINTERNAL, file, line, "%s failed: %s (%s)", call, cudaGetErrorString(e),
                     cudaGetErrorName(e));
}

int cuda_check_blas(bt_backend *be, cublasStatus_t s, const char *call, const char *file, int line)
{
    if (s == CUBLAS_STATUS_SUCCESS) return 0;
    return cuda_fail(be, BT_EINTERNAL, file, line, "%s failed: %s (%s)", call,
                     cublasGetStatusString(s), cublasGetStatusName(s));
}

int cuda_check_flag(bt_backend *be)
{
    cuda_impl *im = cu_impl(be);
    if (im->status) return im->status;
    int flag = 0;
    if (CU_CHECK(be, cudaMemcpyAsync(&flag, im->d_flag, sizeof flag, cudaMemcpyDeviceToHost, im->stream)))
        return im->status;
    if (CU_CHECK(be, cudaStreamSynchronize(im->stream))) return im->status;
    if (flag) {
        return cuda_fail(be, BT_EDATA, __FILE__, __LINE__,
                         "a kernel found an index outside its table:%s%s%s; check the data's token "
                         "ids against the model's vocab_size / max_position_embeddings / "
                         "type_vocab_size and the labels against num_labels",
                         (flag & CU_FLAG_TOKEN_ID) ? " embedding id" : "",
                         (flag & CU_FLAG_ROW) ? " gathered row" : "",
                         (flag & CU_FLAG_LABEL) ? " class label" : "");
    }
    return 0;
}

/* The sticky status: 0, or the BT_E* code of the first failure (its message
 * is the thread's bt_errmsg() at the time, and bt_cuda_errmsg()). Until the
 * vtable gets a `status` field, the engine may call this directly. */
extern "C" int bt_cuda_status(bt_backend *be)
{
    if (!be || be->device != BT_DEV_CUDA) return 0;
    cuda_impl *im = cu_impl(be);
    if (!im->status) {
        CU_CHECK(be, cudaStreamSynchronize(im->stream));
        cuda_check_flag(be);
    }
    return im->status;
}

extern "C" const char *bt_cuda_errmsg(bt_backend *be)
{
    return (be && be->device == BT_DEV_CUDA) ? cu_impl(be)->errmsg : "";
}

extern "C" void bt_cuda_set_tf32(bt_backend *be, int on)
{
    if (be && be->device == BT_DEV_CUDA) cu_impl(be)->tf32 = on != 0;
}

/* vtable: F16 everywhere (sm_60+), BF16 GEMMs need sm_80 (cuBLASLt). */
static int cu_dtype_ok(bt_backend *be, bt_dtype dt)
{
    return dt == BT_F32 || dt == BT_F16 || (dt == BT_BF16 && cu_impl(be)->cc_major >= 8);
}

static int cu_set_tf32(bt_backend *be, int on)
{
    cuda_impl *im = cu_impl(be);
    if (on && im->cc_major < 8)
        return bt_fail(BT_ECONFIG, "tf32 needs tensor cores of sm_80+ (A100, L4, H100); this GPU is sm_%d%d",
                       im->cc_major, im->cc_minor);
    im->tf32 = on != 0;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* memory                                                                    */

static size_t tab_slot(cuda_impl *im, void *p)
{
    uintptr_t h = (uintptr_t)p;
    h ^= h >> 17;
    h *= 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 7) & (im->tab_cap - 1);
}

static int tab_grow(cuda_impl *im)
{
    size_t ncap = im->tab_cap ? im->tab_cap * 2 : 1024;
    void **np = (void **)calloc(ncap, sizeof(void *));
    size_t *ns = (size_t *)calloc(ncap, sizeof(size_t));
    if (!np || !ns) {
        free(np);
        free(ns);
        return -1;
    }
    void **op = im->tab_ptr;
    size_t *os = im->tab_size, ocap = im->tab_cap;
    im->tab_ptr = np;
    im->tab_size = ns;
    im->tab_cap = ncap;
    im->tab_used = 0;
    for (size_t i = 0; i < ocap; i++) {
        if (!op[i] || op[i] == (void *)1) continue;
        size_t s = tab_slot(im, op[i]);
        while (np[s]) s = (s + 1) & (ncap - 1);
        np[s] = op[i];
        ns[s] = os[i];
        im->tab_used++;
    }
    free(op);
    free(os);
    return 0;
}

static void track_add(cuda_impl *im, void *p, size_t bytes)
{
    if ((im->tab_used + 1) * 2 > im->tab_cap && tab_grow(im) != 0) return; /* untracked */
    size_t s = tab_slot(im, p);
    while (im->tab_ptr[s] && im->tab_ptr[s] != (void *)1) s = (s + 1) & (im->tab_cap - 1);
    im->tab_ptr[s] = p;
    im->tab_size[s] = bytes;
    im->tab_used++;
    im->cur_bytes += bytes;
    if (im->cur_bytes > im->peak_bytes) im->peak_bytes = im->cur_bytes;
}

static void track_remove(cuda_impl *im, void *p)
{
    if (!im->tab_cap) return;
    size_t s = tab_slot(im, p);
    for (size_t n = 0; n < im->tab_cap && im->tab_ptr[s]; n++, s = (s + 1) & (im->tab_cap - 1)) {
        if (im->tab_ptr[s] == p) {
            im->cur_bytes -= im->tab_size[s];
            im->tab_ptr[s] = (void *)1; /* tombstone (keeps probe chains intact) */
            return;
        }
    }
}

static void *cu_alloc(bt_backend *be, size_t bytes)
{
    cuda_impl *im = cu_impl(be);
    void *p = NULL;
    if (bytes == 0) bytes = 1;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* OOM is not sticky: the caller may retry smaller */
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        bt_fail(BT_EINTERNAL, "cuda backend: out of GPU memory allocating %zu bytes (%s; %.2f of "
                              "%.2f GiB free, %.2f GiB held by baton); reduce batch_size or "
                              "max_seq_len, or use fp16/bf16",
                bytes, cudaGetErrorString(e), fr / 1073741824.0, tot / 1073741824.0,
                im->cur_bytes / 1073741824.0);
        return NULL;
    }
    if (CU_CHECK(be, cudaMemsetAsync(p, 0, bytes, im->stream))) {
        cudaFree(p);
        return NULL;
    }
    track_add(im, p, bytes);
    return p;
}

static void cu_free(bt_backend *be, void *p)
{
    if (!p) return;
    cuda_impl *im = cu_impl(be);
    track_remove(im, p);
    CU_CHECK(be, cudaFree(p)); /* cudaFree synchronises the device */
}

static size_t cu_peak(bt_backend *be) { return cu_impl(be)->peak_bytes; }

static int cu_mem_info(bt_backend *be, size_t *free_bytes, size_t *total_bytes)
{
    cu_impl(be); /* (this backend's GPU: cudaMemGetInfo reports the current device's) */
    size_t fr = 0, tot = 0;
    cudaError_t e = cudaMemGetInfo(&fr, &tot);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return bt_fail(BT_EIO, "cuda backend: cudaMemGetInfo failed (%s); cannot tell how much GPU memory is free "
                               "(set [runtime] memory_limit)", cudaGetErrorString(e));
    }
    *free_bytes = fr;
    *total_bytes = tot;
    return 0;
}

void *cuda_scratch(bt_backend *be, size_t bytes)
{
    cuda_impl *im = cu_impl(be);
    if (im->status) return NULL;
    if (bytes <= im->scratch_bytes) return im->scratch;
    size_t want = bt_ws_cuda_grow(im->scratch_bytes, bytes);
    if (im->scratch) {
        /* kernels queued on the stream may still read the old arena: wait for
         * them before freeing it (cudaFree's implicit sync is not promised) */
        if (CU_CHECK(be, cudaStreamSynchronize(im->stream))) return NULL;
        CU_CHECK(be, cudaFree(im->scratch));
        im->cur_bytes -= im->scratch_bytes;
        im->scratch = NULL;
        im->scratch_bytes = 0;
    }
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, want);
    if (e != cudaSuccess) {
        cuda_fail(be, BT_EINTERNAL, __FILE__, __LINE__,
                  "out of GPU memory for %zu bytes of scratch (%s); reduce batch_size or max_seq_len",
                  want, cudaGetErrorString(e));
        return NULL;
    }
    im->scratch = p;
    im->scratch_bytes = want;
    im->cur_bytes += want;
    if (im->cur_bytes > im->peak_bytes) im->peak_bytes = im->cur_bytes;
    return p;
}

static void cu_upload(bt_backend *be, void *dst, const void *src, size_t n)
{
    if (!n || cu_dead(be)) return;
    cuda_impl *im = cu_impl(be);
    /* pageable host memory: the copy is staged, and src may be reused on return */
    if (CU_CHECK(be, cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, im->stream))) return;
    CU_CHECK(be, cudaStreamSynchronize(im->stream));
}

static void cu_download(bt_backend *be, void *dst, const void *src, size_t n)
{
    if (!n || cu_dead(be)) return;
    cuda_impl *im = cu_impl(be);
    if (CU_CHECK(be, cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, im->stream))) return;
    CU_CHECK(be, cudaStreamSynchronize(im->stream));
}

static void cu_memset0(bt_backend *be, void *dst, size_t n)
{
    if (!n || cu_dead(be)) return;
    CU_CHECK(be, cudaMemsetAsync(dst, 0, n, cu_stream(be)));
}

static void cu_copy(bt_backend *be, void *dst, const void *src, size_t n)
{
    if (!n || dst == src || cu_dead(be)) return;
    CU_CHECK(be, cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, cu_stream(be)));
}

static void cu_sync(bt_backend *be)
{
    if (cu_dead(be)) return;
    if (CU_CHECK(be, cudaStreamSynchronize(cu_stream(be)))) return;
    cuda_check_flag(be);
}

static void cu_destroy(bt_backend *be)
{
    if (!be) return;
    cuda_impl *im = cu_impl(be);
    if (im) {
        cudaSetDevice(im->device);
        if (im->stream) cudaStreamSynchronize(im->stream);
        cu_collective_free(im);
        cu_comm_free(im);
        if (im->scratch) cudaFree(im->scratch);
        if (im->lt_ws) cudaFree(im->lt_ws);
        if (im->d_flag) cudaFree(im->d_flag);
        if (im->lt) cublasLtDestroy(im->lt);
        if (im->stream) cudaStreamDestroy(im->stream);
        /* blocks the engine did not free are its leak; they go with the context */
        free(im->tab_ptr);
        free(im->tab_size);
        free(im);
    }
    free(be);
}

/* ------------------------------------------------------------------------ */
/* GEMM (cuBLASLt)                                                           */

static cudaDataType_t cu_dt(bt_dtype d)
{
    switch (d) {
    case BT_F16: return CUDA_R_16F;
    case BT_BF16: return CUDA_R_16BF;
    default: return CUDA_R_32F;
    }
}

static int align_class(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    return (a % 16 == 0) ? 3 : (a % 8 == 0) ? 2 : (a % 4 == 0) ? 1 : 0;
}

/* One cuBLASLt call in column-major terms: D[m,n] = alpha opA(a) opB(b) + beta C
 * (+ bias[m], + epilogue). Returns 0 on success, 1 when no algorithm exists for
 * this epilogue (the caller falls back), -1 on a recorded error. */
static int lt_matmul(bt_backend *be, int ta, int tb, int64_t m, int64_t n, int64_t k, const void *a,
                     int64_t lda, const void *b, int64_t ldb, cudaDataType_t abtype, void *c, int64_t ldc,
                     cudaDataType_t ctype, float alpha, float beta, cublasLtEpilogue_t epi,
                     const float *bias, void *aux, int64_t ldaux)
{
    cuda_impl *im = cu_impl(be);
    cublasComputeType_t compute = (abtype == CUDA_R_32F && im->tf32) ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                                      : CUBLAS_COMPUTE_32F;
    int align = align_class(a) | align_class(b) << 2 | align_class(c) << 4 |
                (bias ? align_class(bias) : 3) << 6 | (aux ? align_class(aux) : 3) << 8 |
                (int)((lda % 8 == 0) | (ldb % 8 == 0) << 1 | (ldc % 8 == 0) << 2) << 10;
    cu_algo_entry *hit = NULL;
    for (int i = 0; i < CU_ALGO_CACHE; i++) {
        cu_algo_entry *e = &im->algos[i];
        if (e->valid && e->m == m && e->n == n && e->k == k && e->ta == ta && e->tb == tb &&
            e->atype == (int)abtype && e->ctype == (int)ctype && e->compute == (int)compute &&
            e->epi == (int)epi && e->align == align) {
            hit = e;
            break;
        }
    }
    if (hit && !hit->ok) return 1;

    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    int rc = -1;
    cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (LT_CHECK(be, cublasLtMatmulDescCreate(&op, compute, CUDA_R_32F))) goto out;
    if (LT_CHECK(be, cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa))) goto out;
    if (LT_CHECK(be, cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb))) goto out;
    if (LT_CHECK(be, cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi))) goto out;
    if (bias) {
        int32_t bt = CUDA_R_32F;
        if (LT_CHECK(be, cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias))) goto out;
        if (ctype != CUDA_R_32F &&
            cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt) !=
                CUBLAS_STATUS_SUCCESS) {
            rc = 1; /* F32 bias on a 16-bit output not supported here: fall back */
            goto out;
        }
    }
    if (aux) {
        if (LT_CHECK(be, cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof aux))) goto out;
        if (LT_CHECK(be, cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ldaux, sizeof ldaux))) goto out;
    }
    /* layouts describe the matrices as stored (column-major) */
    if (LT_CHECK(be, cublasLtMatrixLayoutCreate(&la, abtype, ta ? k : m, ta ? m : k, lda))) goto out;
    if (LT_CHECK(be, cublasLtMatrixLayoutCreate(&lb, abtype, tb ? n : k, tb ? k : n, ldb))) goto out;
    if (LT_CHECK(be, cublasLtMatrixLayoutCreate(&lc, ctype, m, n, ldc))) goto out;

    if (!hit) {
        if (LT_CHECK(be, cublasLtMatmulPreferenceCreate(&pref))) goto out;
        if (LT_CHECK(be, cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                              &im->lt_ws_bytes, sizeof im->lt_ws_bytes)))
            goto out;
        /* determinism: no split-K reduction (its partial sums may be added in
         * any order); with the algorithm cached per shape, a run repeats bit for bit */
        uint32_t no_reduction = CUBLASLT_REDUCTION_SCHEME_NONE;
        if (LT_CHECK(be, cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
                                                              &no_reduction, sizeof no_reduction)))
            goto out;
        cublasLtMatmulHeuristicResult_t res;
        int nres = 0;
        memset(&res, 0, sizeof res);
        cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(im->lt, op, la, lb, lc, lc, pref, 1, &res, &nres);
        hit = &im->algos[im->algo_next];
        im->algo_next = (im->algo_next + 1) % CU_ALGO_CACHE;
        hit->valid = 1;
        hit->m = m; hit->n = n; hit->k = k; hit->ta = ta; hit->tb = tb;
        hit->atype = (int)abtype; hit->ctype = (int)ctype; hit->compute = (int)compute;
        hit->epi = (int)epi; hit->align = align;
        hit->ok = hs == CUBLAS_STATUS_SUCCESS && nres > 0 && res.state == CUBLAS_STATUS_SUCCESS;
        if (hit->ok) hit->algo = res.algo;
        if (!hit->ok) {
            if (epi != CUBLASLT_EPILOGUE_DEFAULT) {
                rc = 1;
                goto out;
            }
            cuda_fail(be, BT_EINTERNAL, __FILE__, __LINE__,
                      "cuBLASLt has no algorithm for a %lldx%lldx%lld GEMM (types %d/%d, status %s)",
                      (long long)m, (long long)n, (long long)k, (int)abtype, (int)ctype,
                      cublasGetStatusName(hs));
            goto out;
        }
    }
    {
        cublasStatus_t s = cublasLtMatmul(im->lt, op, &alpha, a, la, b, lb, &beta, c, lc, c, lc, &hit->algo,
                                          im->lt_ws, im->lt_ws_bytes, im->stream);
        if (s == CUBLAS_STATUS_NOT_SUPPORTED && epi != CUBLASLT_EPILOGUE_DEFAULT) {
            hit->ok = 0;
            rc = 1;
            goto out;
        }
        rc = LT_CHECK(be, s) ? -1 : 0;
    }
out:
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (op) cublasLtMatmulDescDestroy(op);
    return rc;
}

static void cu_matmul(bt_backend *be, const bt_tensor *A, int transA, const bt_tensor *B, int transB,
                      bt_tensor *C, const bt_tensor *bias, float alpha, float beta, int epilogue,
                      bt_tensor *pre_act)
{
    if (cu_dead(be)) return;
    cuda_impl *im = cu_impl(be);
    CU_REQUIRE(cu_is_float(A->dtype) && A->dtype == B->dtype, "matmul: A and B must share a float dtype");
    CU_REQUIRE(C->dtype == BT_F32 || C->dtype == A->dtype, "matmul: C must be F32 or A's dtype");
    int64_t ar = cu_rows(A), ac = cu_cols(A), br = cu_rows(B), bc = cu_cols(B);
    int64_t M = transA ? ac : ar, K = transA ? ar : ac;
    int64_t Kb = transB ? bc : br, N = transB ? br : bc;
    CU_REQUIRE(K == Kb, "matmul: inner dimensions differ: op(A) is [%lld,%lld], op(B) is [%lld,%lld]",
               (long long)M, (long long)K, (long long)Kb, (long long)N);
    CU_REQUIRE(cu_rows(C) == M && cu_cols(C) == N, "matmul: C is [%lld,%lld], expected [%lld,%lld]",
               (long long)cu_rows(C), (long long)cu_cols(C), (long long)M, (long long)N);
    CU_REQUIRE(bias == NULL || (bias->dtype == BT_F32 && bt_numel(bias) == N), "matmul: bias must be F32 [%lld]",
               (long long)N);
    CU_REQUIRE(epilogue >= BT_EPI_NONE && epilogue <= BT_EPI_GELU_TANH, "matmul: unknown epilogue %d", epilogue);
    CU_REQUIRE(pre_act == NULL || epilogue == BT_EPI_NONE ||
                   (bt_numel(pre_act) == M * N && pre_act->dtype == C->dtype),
               "matmul: pre_act must be [M,N] of C's dtype");
    if (M == 0 || N == 0) return;
    bt_tensor *pre = (pre_act && epilogue != BT_EPI_NONE) ? pre_act : NULL;
    const float *bi = bias ? (const float *)bias->data : NULL;
    if (K == 0) { /* C = beta C, then bias and epilogue by hand */
        cu_fill_scaled(be, C, beta);
        if (bi || epilogue != BT_EPI_NONE) cu_bias_gelu(be, C, bi, epilogue, pre);
        return;
    }
    /* Row-major C[M,N] is column-major C^T[N,M] = op(B)^T op(A)^T: cuBLASLt's
     * "A" is our B (stored column-major as [N,K] when transB=0: no transpose),
     * its "B" is our A. */
    cudaDataType_t abt = cu_dt(A->dtype), ct = cu_dt(C->dtype);
    /* cuBLASLt's GELU epilogue applies the activation to the unrounded
     * pre-activation; by default (BATON_CUDA_LT_GELU unset) our kernel applies
     * it to the stored one, as the CPU backend and kernels/backend.h say */
    int lt_gelu = im->lt_gelu > 0;
    cublasLtEpilogue_t epi = bi ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    int done_epi = 0; /* the GELU is done by cuBLASLt */
    void *aux = NULL;
    if (epilogue == BT_EPI_GELU_TANH && lt_gelu && (N % 8) == 0) {
        /* GELU_AUX(_BIAS) stores the pre-activation to aux (ld % 8 == 0). */
        if (pre) {
            epi = bi ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
            aux = pre->data;
        } else {
            epi = bi ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
        }
        done_epi = 1;
    }
    int rc = lt_matmul(be, transB, transA, N, M, K, B->data, bc, A->data, ac, abt, C->data, N, ct, alpha, beta,
                       epi, bi, aux, N);
    if (rc == 1 && done_epi) { /* retry: bias only, GELU by hand */
        done_epi = 0;
        epi = bi ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
        rc = lt_matmul(be, transB, transA, N, M, K, B->data, bc, A->data, ac, abt, C->data, N, ct, alpha, beta,
                       epi, bi, NULL, 0);
    }
    int bias_done = bi != NULL;
    if (rc == 1) { /* no bias epilogue either: plain GEMM, everything by hand */
        bias_done = 0;
        rc = lt_matmul(be, transB, transA, N, M, K, B->data, bc, A->data, ac, abt, C->data, N, ct, alpha, beta,
                       CUBLASLT_EPILOGUE_DEFAULT, NULL, NULL, 0);
    }
    if (rc != 0) return;
    int need_gelu = epilogue != BT_EPI_NONE && !done_epi;
    if ((bi && !bias_done) || need_gelu)
        cu_bias_gelu(be, C, bias_done ? NULL : bi, need_gelu ? epilogue : BT_EPI_NONE, pre);
}

/* ------------------------------------------------------------------------ */
/* creation                                                                  */

static int env_int(const char *name, int dflt)
{
    const char *s = getenv(name);
    if (!s || !*s) return dflt;
    return atoi(s);
}

/* Entry points of libbaton-cuda.so, found with dlsym by kernels/backend.c. */
extern "C" bt_backend *bt_cuda_impl_create(int device)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        bt_fail(BT_ECONFIG, "cuda backend: no usable GPU (%s); set device = cpu, or check the driver "
                            "(nvidia-smi) and that the notebook has an accelerator enabled",
                e != cudaSuccess ? cudaGetErrorString(e) : "no devices");
        return NULL;
    }
    if (device < 0) device = 0;
    if (device >= n) {
        bt_fail(BT_ECONFIG, "cuda backend: GPU %d requested but only %d present; use a device index "
                            "below %d", device, n, n);
        return NULL;
    }
    if ((e = cudaSetDevice(device)) != cudaSuccess) {
        bt_fail(BT_ECONFIG, "cuda backend: cudaSetDevice(%d) failed: %s", device, cudaGetErrorString(e));
        return NULL;
    }
    cudaDeviceProp p;
    if ((e = cudaGetDeviceProperties(&p, device)) != cudaSuccess) {
        bt_fail(BT_EINTERNAL, "cuda backend: cudaGetDeviceProperties failed: %s", cudaGetErrorString(e));
        return NULL;
    }
    bt_backend *be = (bt_backend *)calloc(1, sizeof *be);
    cuda_impl *im = (cuda_impl *)calloc(1, sizeof *im);
    if (!be || !im) {
        free(be);
        free(im);
        bt_fail(BT_EINTERNAL, "cuda backend: out of host memory creating the backend");
        return NULL;
    }
    be->name = "cuda";
    be->device = BT_DEV_CUDA;
    be->impl = im;
    im->device = device;
    im->cc_major = p.major;
    im->cc_minor = p.minor;
    im->sm_count = p.multiProcessorCount;
    im->smem_optin = p.sharedMemPerBlockOptin;
    im->tf32 = env_int("BATON_CUDA_TF32", 0) != 0 && p.major >= 8;
    im->lt_gelu = env_int("BATON_CUDA_LT_GELU", 0);
    im->att_small = env_int("BATON_CUDA_ATT_SMALL_TILES", 0) != 0;
    im->fatal = env_int("BATON_CUDA_NONFATAL", 0) == 0;
    int fatal = im->fatal;
    im->fatal = 0; /* creation failures return NULL, they do not exit */
    im->lt_ws_bytes = BT_CUDA_LT_WORKSPACE;
    if (CU_CHECK(be, cudaStreamCreateWithFlags(&im->stream, cudaStreamNonBlocking)) ||
        LT_CHECK(be, cublasLtCreate(&im->lt)) || CU_CHECK(be, cudaMalloc(&im->lt_ws, im->lt_ws_bytes)) ||
        CU_CHECK(be, cudaMalloc((void **)&im->d_flag, sizeof(int))) ||
        CU_CHECK(be, cudaMemsetAsync(im->d_flag, 0, sizeof(int), im->stream)) || tab_grow(im) != 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", im->errmsg[0] ? im->errmsg : "out of host memory");
        cu_destroy(be);
        bt_fail(BT_EINTERNAL, "cuda backend: initialisation failed: %s", msg);
        return NULL;
    }
    im->fatal = fatal;
    be->alloc = cu_alloc;
    be->free = cu_free;
    be->upload = cu_upload;
    be->download = cu_download;
    be->memset0 = cu_memset0;
    be->copy = cu_copy;
    be->sync = cu_sync;
    be->destroy = cu_destroy;
    be->peak_bytes = cu_peak;
    be->mem_info = cu_mem_info;
    be->sm = p.major * 10 + p.minor;
    be->dtype_ok = cu_dtype_ok;
    be->set_tf32 = cu_set_tf32;
    be->matmul = cu_matmul;
    cu_ops_install(be);
    cu_attention_install(be);
    cu_relattn_install(be);
    cu_collective_install(be);
    return be;
}

extern "C" int bt_cuda_impl_describe(FILE *f)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    int rt = 0;
    cudaRuntimeGetVersion(&rt);
    fprintf(f, "  cuda  compiled in (runtime %d.%d, cuBLASLt %zu); ", rt / 1000, (rt % 1000) / 10,
            cublasLtGetVersion());
    if (e != cudaSuccess) {
        fprintf(f, "no usable device: %s\n", cudaGetErrorString(e));
        return 0;
    }
    fprintf(f, "%d device(s)\n", n);
    for (int i = 0; i < n; i++) {
        cudaDeviceProp p;
        if (cudaGetDeviceProperties(&p, i) == cudaSuccess)
            fprintf(f, "        [%d] %s, sm_%d%d, %.1f GiB%s\n", i, p.name, p.major, p.minor,
                    p.totalGlobalMem / 1073741824.0, p.major >= 8 ? ", fp32/tf32/fp16/bf16" : ", fp32/fp16");
    }
    return n;
}
