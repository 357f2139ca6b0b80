/* kernels/cuda/cuda_doctor.cu — `baton doctor`'s view from inside the GPU
 * backend library: driver and runtime versions, the cuBLASLt it loaded (or
 * why none), the architectures this library carries, and per GPU whether
 * this library has code it can run there.
 *
 * Owns: bt_cuda_impl_doctor (found with dlsym by kernels/backend.c).
 * Must not: create a backend, allocate more than a probe, or exit.
 */
#include <cuda_runtime.h>

#include <stdio.h>
#include <string.h>

extern "C" const char *bt_cuda_blas_loaded_from(void);
extern "C" const char *bt_cuda_blas_error(void);
extern "C" size_t cublasLtGetVersion(void);
#include "kernels/cuda/nccl_dl.h"

/* A kernel whose attributes tell whether this library has code for a GPU. */
__global__ static void doctor_probe_k(int *p)
{
    if (p) *p = 1;
}

#define STR2(...) #__VA_ARGS__
#define STR(...) STR2(__VA_ARGS__)
#ifdef __CUDA_ARCH_LIST__
#define ARCH_LIST STR(__CUDA_ARCH_LIST__)
#else
#define ARCH_LIST "?"
#endif

static void version_str(int v, char *buf, size_t cap)
{
    if (v <= 0) snprintf(buf, cap, "none");
    else snprintf(buf, cap, "%d.%d", v / 1000, (v % 1000) / 10);
}

/* Prints the report; returns the number of GPUs this library can train on
 * (0: *why says why not). */
extern "C" int bt_cuda_impl_doctor(FILE *f, char *why, size_t why_cap)
{
    int drv = 0, rt = 0;
    cudaDriverGetVersion(&drv);
    rt = CUDART_VERSION; /* static: the version it was built with (cudaRuntimeGetVersion needs a driver) */
    char d[16], r[16];
    version_str(drv, d, sizeof d);
    version_str(rt, r, sizeof r);
    fprintf(f, "  CUDA driver API %s, runtime %s (linked statically into the backend)\n", d, r);
    fprintf(f, "  backend code for:");
    for (const char *a = ARCH_LIST; *a;) { /* "600,700,..." -> sm_60 sm_70 ... */
        int v = 0;
        while (*a >= '0' && *a <= '9') v = v * 10 + (*a++ - '0');
        if (v) fprintf(f, " sm_%d", v / 10);
        while (*a && (*a < '0' || *a > '9')) a++;
    }
    fprintf(f, ", plus PTX of the newest\n");
    const char *lt = bt_cuda_blas_loaded_from();
    if (lt) {
        size_t v = cublasLtGetVersion();
        fprintf(f, "  cuBLASLt %zu.%zu.%zu from %s\n", v / 10000, (v / 100) % 100, v % 100, lt);
    } else {
        fprintf(f, "  cuBLASLt: not found: %s\n", bt_cuda_blas_error());
    }
    const char *nccl = bt_nccl_loaded_from(); /* several GPUs only (kernels/cuda/nccl_dl.h) */
    if (nccl) {
        int v = bt_nccl_version();
        fprintf(f, "  NCCL %d.%d.%d from %s (runtime.devices > 1: the gradient sum between GPUs)\n", v / 10000, (v / 100) % 100,
                v % 100, nccl);
    } else {
        fprintf(f, "  NCCL: not found (several GPUs then sum through host memory, slower): %s\n", bt_nccl_error());
    }
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        snprintf(why, why_cap, "no usable GPU: %s", e != cudaSuccess ? cudaGetErrorString(e) : "no devices");
        fprintf(f, "  GPUs: none usable (%s)\n", e != cudaSuccess ? cudaGetErrorString(e) : "no devices");
        return 0;
    }
    int usable = 0;
    why[0] = 0;
    for (int i = 0; i < n; i++) {
        cudaDeviceProp p;
        if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
        cudaSetDevice(i);
        cudaFuncAttributes fa;
        cudaError_t ke = cudaFuncGetAttributes(&fa, doctor_probe_k);
        int code = ke == cudaSuccess;
        if (!code) cudaGetLastError();
        const char *auto_prec = p.major >= 8 ? "bf16" : p.major >= 6 ? "fp16" : "fp32";
        fprintf(f, "  [%d] %s, compute capability %d.%d, %.1f GiB, %d SMs: %s; precision = auto -> %s\n", i, p.name,
                p.major, p.minor, p.totalGlobalMem / 1073741824.0, p.multiProcessorCount,
                code ? (fa.binaryVersion == p.major * 10 + p.minor ? "native code" : "code via PTX/compatible SASS")
                     : "NO code for this GPU in this backend",
                auto_prec);
        if (code && lt) usable++;
        else if (!why[0])
            snprintf(why, why_cap, "%s", !code ? "this backend has no code for the GPU (rebuild with make cuda-portable)"
                                                : "cuBLASLt was not found");
    }
    return usable;
}
