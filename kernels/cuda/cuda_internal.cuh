/* kernels/cuda/cuda_internal.cuh — private to the CUDA backend (the .cu files of kernels/cuda/).
 *
 * Owns: the backend's private state (stream, cuBLASLt handle and workspace,
 * allocation table, scratch arena, sticky error), the error-check macros, the
 * dtype load/store helpers shared by every kernel, and the declarations that
 * join backend_cuda.cu (lifecycle, memory, GEMM), cuda_ops.cu (elementwise,
 * norms, embeddings, losses, optimizer, reductions) and cuda_attention.cu.
 * Must not: be included outside kernels/cuda/ (the engine goes through the
 * bt_backend vtable only).
 *
 * Errors. Two kinds:
 *  - a broken shape/dtype contract (a bug in the caller): CU_REQUIRE prints
 *    where and what and exits 70, exactly like the CPU backend's CPU_CHECK;
 *  - a CUDA / cuBLAS runtime failure (launch failure, illegal address, ...):
 *    cuda_fail() records a STICKY error (first one wins) in the backend, sets
 *    the thread's bt_fail() message (file:line, the call, the error string),
 *    and, unless BATON_CUDA_NONFATAL=1, prints it and exits 70: after such an
 *    error the device state (weights!) cannot be trusted, and the last
 *    committed checkpoint is intact by construction. In non-fatal mode every
 *    later op is a no-op and bt_cuda_status() returns the code (see
 *    docs/cuda.md for the proposed vtable field `status`).
 *  - Out-of-range ids found by kernels (token ids, labels, rows) set a device
 *    flag; sync(), sum_squares() and all_finite() check it and fail as above.
 */
#ifndef BATON_KERNELS_CUDA_INTERNAL_CUH
#define BATON_KERNELS_CUDA_INTERNAL_CUH

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

extern "C" {
#include "kernels/backend.h"
#include "util/err.h"
}
#include "kernels/philox.h"

/* GPUs one collective spans at most (engine/train.h BT_MAX_REPLICAS). */
#define CU_MAX_DEVICES 64

/* cuBLASLt algorithm cache: the heuristic is asked once per distinct problem. */
#define CU_ALGO_CACHE 128
typedef struct {
    int valid;
    int64_t m, n, k;
    int ta, tb, atype, ctype, compute, epi, align;
    int ok; /* 0: no algorithm for this epilogue (use the fallback) */
    cublasLtMatmulAlgo_t algo;
} cu_algo_entry;

/* Device-side error flag bits (cuda_impl.d_flag). */
enum {
    CU_FLAG_TOKEN_ID = 1, /* embed_fwd/embed_bwd: id outside its table */
    CU_FLAG_ROW = 2,      /* gather_rows: row outside src */
    CU_FLAG_LABEL = 4,    /* softmax_xent: label outside [0,C) and != -100 */
};

typedef struct {
    int device;
    int cc_major, cc_minor, sm_count;
    size_t smem_optin; /* max dynamic shared memory per block (opt-in) */
    cudaStream_t stream;
    cublasLtHandle_t lt;
    void *lt_ws;
    size_t lt_ws_bytes;
    int tf32;        /* F32 GEMMs use TF32 tensor cores (BATON_CUDA_TF32=1 or bt_cuda_set_tf32) */
    int lt_gelu;     /* 1: GELU_TANH epilogue inside cuBLASLt (BATON_CUDA_LT_GELU=1; default 0: our kernel) */
    int att_small;   /* 1: attention always uses 16-row query tiles (BATON_CUDA_ATT_SMALL_TILES=1: the
                        layout a P100's 48 KiB of shared memory forces, testable on any GPU) */
    int fatal;       /* exit(70) on the first CUDA error (default) */
    int status;      /* sticky: 0 or a BT_E* code */
    char errmsg[512];
    int *d_flag;     /* device int: CU_FLAG_* bits set by kernels */
    /* allocation table (open addressing on the pointer) for peak tracking */
    void **tab_ptr;
    size_t *tab_size;
    size_t tab_cap, tab_used;
    size_t cur_bytes, peak_bytes;
    /* scratch arena: grown on demand, reused by every op (stream-ordered) */
    void *scratch;
    size_t scratch_bytes;
    cu_algo_entry algos[CU_ALGO_CACHE];
    int algo_next;
    /* data parallelism (cuda_collective.cu): NCCL's communicators of the
     * devices nccl_dev[0..nccl_n), this backend's device first; NULL until
     * the first collective */
    struct bt_nccl *nccl;
    int nccl_n;
    int nccl_dev[CU_MAX_DEVICES];
    /* the bucketed sum (BT_COLL_ASYNC): this device's NCCL stream, beside
     * `stream`; ev_work: `stream`'s work so far (comm waits for it); ev_comm:
     * comm's sums so far (BT_COLL_JOIN makes `stream` wait for it). Made on
     * the first ASYNC sum, freed with the backend (cu_comm_free). */
    cudaStream_t comm;
    cudaEvent_t ev_work, ev_comm;
} cuda_impl;

/* The backend's state, with the calling thread's current device made the
 * backend's own: every op begins here, and with several GPUs (runtime.devices)
 * each replica's thread drives its own backend, so a thread's device is
 * whichever backend it used last (cudaGetDevice reads a thread-local value). */
static inline cuda_impl *cu_impl(bt_backend *be)
{
    cuda_impl *im = (cuda_impl *)be->impl;
    int cur = -1;
    if (cudaGetDevice(&cur) != cudaSuccess || cur != im->device) cudaSetDevice(im->device);
    return im;
}
static inline cudaStream_t cu_stream(bt_backend *be) { return cu_impl(be)->stream; }

/* Records a runtime failure (see the header comment); returns code. */
int cuda_fail(bt_backend *be, int code, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
int cuda_check_rt(bt_backend *be, cudaError_t e, const char *call, const char *file, int line);
int cuda_check_blas(bt_backend *be, cublasStatus_t s, const char *call, const char *file, int line);

#define CU_CHECK(be, call) cuda_check_rt((be), (call), #call, __FILE__, __LINE__)
#define LT_CHECK(be, call) cuda_check_blas((be), (call), #call, __FILE__, __LINE__)
/* after every kernel launch: launch-configuration errors surface here */
#define CU_LAUNCHED(be, what) cuda_check_rt((be), cudaGetLastError(), what, __FILE__, __LINE__)

/* true when a sticky error makes every op a no-op */
static inline int cu_dead(bt_backend *be) { return cu_impl(be)->status != 0; }

#define CU_REQUIRE(cond, ...)                                                                   \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "baton: internal error: cuda backend %s (%s:%d): ", __func__,      \
                    __FILE__, __LINE__);                                                        \
            fprintf(stderr, __VA_ARGS__);                                                       \
            fprintf(stderr, "\n  (a shape or dtype contract of kernels/backend.h was broken; "  \
                            "please report this)\n");                                           \
            exit(70);                                                                           \
        }                                                                                       \
    } while (0)

/* Scratch: a device buffer of at least bytes, valid until the next op that
 * asks for scratch (every op runs on the one stream, so reuse is ordered).
 * NULL after a sticky error. */
void *cuda_scratch(bt_backend *be, size_t bytes);

/* The device flag: fail (sticky) if a kernel reported a bad id. Synchronises. */
int cuda_check_flag(bt_backend *be);

/* The last dimension (row length) and the number of rows of a tensor. */
static inline int64_t cu_cols(const bt_tensor *t) { return t->ndim ? t->shape[t->ndim - 1] : 1; }
static inline int64_t cu_rows(const bt_tensor *t)
{
    int64_t c = cu_cols(t);
    return c ? bt_numel(t) / c : 0;
}
static inline int cu_is_float(bt_dtype d) { return d == BT_F32 || d == BT_F16 || d == BT_BF16; }
static inline unsigned cu_blocks(int64_t n, int threads, int64_t cap = 65535LL * 16)
{
    int64_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    return (unsigned)(b > cap ? cap : b);
}

/* ---- dtype helpers (device) ---- */
typedef __half f16;
typedef __nv_bfloat16 bf16;

__device__ __forceinline__ float cu_ld(const float *p, int64_t i) { return p[i]; }
__device__ __forceinline__ float cu_ld(const f16 *p, int64_t i) { return __half2float(p[i]); }
__device__ __forceinline__ float cu_ld(const bf16 *p, int64_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void cu_st(float *p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void cu_st(f16 *p, int64_t i, float v) { p[i] = __float2half_rn(v); }
__device__ __forceinline__ void cu_st(bf16 *p, int64_t i, float v) { p[i] = __float2bfloat16_rn(v); }

/* Runs BODY with T bound to the C++ type of a float dtype. */
#define CU_DISPATCH(dt, T, ...)                                                                 \
    do {                                                                                        \
        switch (dt) {                                                                           \
        case BT_F32: { typedef float T; __VA_ARGS__; } break;                                  \
        case BT_F16: { typedef f16 T; __VA_ARGS__; } break;                                    \
        case BT_BF16: { typedef bf16 T; __VA_ARGS__; } break;                                  \
        default: CU_REQUIRE(0, "float dtype expected (got %d)", (int)(dt));                    \
        }                                                                                       \
    } while (0)

/* ---- warp reductions (fixed butterfly order: deterministic) ---- */
__device__ __forceinline__ float cu_warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float cu_warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* dropout scale as torch computes it (float) */
static inline float cu_dropout_scale(float p) { return p < 1.0f ? 1.0f / (1.0f - p) : 0.0f; }

/* ---- entry points implemented in cuda_ops.cu / cuda_attention.cu ---- */
void cu_bias_gelu(bt_backend *be, bt_tensor *C, const float *bias, int epi, bt_tensor *pre);
void cu_fill_scaled(bt_backend *be, bt_tensor *C, float beta);
void cu_ops_install(bt_backend *be);
void cu_attention_install(bt_backend *be);
void cu_relattn_install(bt_backend *be); /* cuda_relattn.cu */
void cu_collective_install(bt_backend *be); /* cuda_collective.cu */
void cu_collective_free(cuda_impl *im);     /* its communicators, at destroy */
void cu_comm_free(cuda_impl *im);           /* its NCCL stream and events, at destroy */

#endif
