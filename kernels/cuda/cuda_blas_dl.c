/* kernels/cuda/cuda_blas_dl.c — cuBLASLt found and loaded at run time.
 *
 * Owns: the definitions of the cuBLASLt (and two cuBLAS) entry points the
 * CUDA backend calls, each forwarding to the function of the same name in a
 * libcublasLt found with dlopen the first time one is called; where that
 * library is searched for; which one was used, or why none could be.
 * Must not: know what the backend computes, or be linked with -lcublasLt:
 * libbaton-cuda.so then needs no CUDA library at load time (the CUDA runtime
 * is linked statically), so one build serves any CUDA major the machine has.
 *
 * Search order (the first library that has every symbol wins): cuda_dl_find.h's
 * ($BATON_CUDA_LIBS, Python packages' nvidia/cublas/lib, the library path).
 * In each place the majors are tried in the order 12, 11, 13: the CUDA 12
 * driver of Kaggle's image runs 12 and 11; 13 needs a driver >= 580. The
 * prototypes below come from the toolkit's own cublasLt.h, so the compiler
 * checks each forwarder against the declaration; tests/gpu/check_cublas_abi.sh
 * checks that the enum values baton passes are the same in every major.
 */
#define _GNU_SOURCE /* dladdr */
#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "kernels/cuda/cuda_dl_find.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLAS_SYMBOLS(X)                                                                                            \
    X(cublasLtCreate) X(cublasLtDestroy) X(cublasLtGetVersion) X(cublasLtGetStatusName)                            \
    X(cublasLtGetStatusString) X(cublasLtMatmul) X(cublasLtMatmulAlgoGetHeuristic) X(cublasLtMatmulDescCreate)     \
    X(cublasLtMatmulDescDestroy) X(cublasLtMatmulDescSetAttribute) X(cublasLtMatmulPreferenceCreate)               \
    X(cublasLtMatmulPreferenceDestroy) X(cublasLtMatmulPreferenceSetAttribute) X(cublasLtMatrixLayoutCreate)      \
    X(cublasLtMatrixLayoutDestroy)

static struct {
#define X(name) __typeof__(&name) name;
    BLAS_SYMBOLS(X)
#undef X
} fn;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static void *handle;
static char loaded_from[PATH_MAX];
static char load_error[2048];

static const char *const majors[] = {"12", "11", "13"};

/* Opens path and resolves every symbol; 0 on success. */
static int try_library(const char *path)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) return -1;
#define X(name)                                                                                                    \
    if (!(fn.name = (__typeof__(&name))dlsym(h, #name))) {                                                        \
        size_t u = strlen(load_error);                                                                             \
        snprintf(load_error + u, sizeof load_error - u, "%s%s lacks %s", u ? "; " : "", path, #name);             \
        dlclose(h);                                                                                                \
        memset(&fn, 0, sizeof fn);                                                                                 \
        return -1;                                                                                                 \
    }
    BLAS_SYMBOLS(X)
#undef X
    handle = h;
    Dl_info info; /* the file behind a soname found on the library path */
    snprintf(loaded_from, sizeof loaded_from, "%s",
             dladdr((void *)fn.cublasLtCreate, &info) && info.dli_fname ? info.dli_fname : path);
    return 0;
}

static void load(void)
{
    if (bt_cuda_dl_find("cublas", "libcublasLt", majors, 3, try_library) == 0) return;
    const char *env = getenv("BATON_CUDA_LIBS");
    size_t u = strlen(load_error);
    snprintf(load_error + u, sizeof load_error - u,
             "%sno libcublasLt.so.12, .11 or .13 found in $BATON_CUDA_LIBS%s%s, in Python packages (nvidia/cublas/lib) "
             "or on the library path; install PyTorch with CUDA or the CUDA toolkit's cuBLAS, or set BATON_CUDA_LIBS "
             "to the directory that holds libcublasLt",
             u ? "; " : "", env && *env ? " = " : " (unset)", env && *env ? env : "");
}

static int ready(void)
{
    pthread_once(&load_once, load);
    return handle != NULL;
}

/* For `baton version` / `baton doctor`: the library used, or why none. */
const char *bt_cuda_blas_loaded_from(void) { return ready() ? loaded_from : NULL; }
const char *bt_cuda_blas_error(void) { return ready() ? "" : load_error; }

/* ---- forwarders: the declarations are cublasLt.h's ---- */
#define NOT_LOADED CUBLAS_STATUS_NOT_INITIALIZED

cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) { return ready() ? fn.cublasLtCreate(h) : NOT_LOADED; }
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) { return ready() ? fn.cublasLtDestroy(h) : NOT_LOADED; }
size_t cublasLtGetVersion(void) { return ready() ? fn.cublasLtGetVersion() : 0; }

const char *cublasLtGetStatusName(cublasStatus_t s) { return ready() ? fn.cublasLtGetStatusName(s) : "not loaded"; }
const char *cublasLtGetStatusString(cublasStatus_t s)
{
    return ready() ? fn.cublasLtGetStatusString(s) : load_error;
}
/* cuBLAS's names for the same statuses (libcublas itself is not needed) */
const char *cublasGetStatusName(cublasStatus_t s) { return cublasLtGetStatusName(s); }
const char *cublasGetStatusString(cublasStatus_t s) { return cublasLtGetStatusString(s); }

cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void *alpha, const void *A,
                              cublasLtMatrixLayout_t Ad, const void *B, cublasLtMatrixLayout_t Bd, const void *beta,
                              const void *C, cublasLtMatrixLayout_t Cd, void *D, cublasLtMatrixLayout_t Dd,
                              const cublasLtMatmulAlgo_t *algo, void *ws, size_t ws_bytes, cudaStream_t stream)
{
    return ready() ? fn.cublasLtMatmul(h, d, alpha, A, Ad, B, Bd, beta, C, Cd, D, Dd, algo, ws, ws_bytes, stream)
                   : NOT_LOADED;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t Ad,
                                              cublasLtMatrixLayout_t Bd, cublasLtMatrixLayout_t Cd,
                                              cublasLtMatrixLayout_t Dd, cublasLtMatmulPreference_t pref,
                                              int requested, cublasLtMatmulHeuristicResult_t results[], int *count)
{
    return ready() ? fn.cublasLtMatmulAlgoGetHeuristic(h, d, Ad, Bd, Cd, Dd, pref, requested, results, count)
                   : NOT_LOADED;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t compute, cudaDataType_t scale)
{
    return ready() ? fn.cublasLtMatmulDescCreate(d, compute, scale) : NOT_LOADED;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d)
{
    return ready() ? fn.cublasLtMatmulDescDestroy(d) : NOT_LOADED;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t size)
{
    return ready() ? fn.cublasLtMatmulDescSetAttribute(d, attr, buf, size) : NOT_LOADED;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p)
{
    return ready() ? fn.cublasLtMatmulPreferenceCreate(p) : NOT_LOADED;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p)
{
    return ready() ? fn.cublasLtMatmulPreferenceDestroy(p) : NOT_LOADED;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void *buf,
                                                    size_t size)
{
    return ready() ? fn.cublasLtMatmulPreferenceSetAttribute(p, attr, buf, size) : NOT_LOADED;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType type, uint64_t rows, uint64_t cols,
                                          int64_t ld)
{
    return ready() ? fn.cublasLtMatrixLayoutCreate(l, type, rows, cols, ld) : NOT_LOADED;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l)
{
    return ready() ? fn.cublasLtMatrixLayoutDestroy(l) : NOT_LOADED;
}
