/* kernels/cuda/cuda_identity.cu — which GPU, driver, runtime and cuBLASLt
 * this backend library would run on: the key of the first-contact
 * self-check's record (runner/selftest.h) and part of `baton doctor`.
 *
 * Owns: bt_cuda_impl_identity (found with dlsym by kernels/backend.c, which
 * adds the library's path). Must not: create a backend, allocate device
 * memory, or exit.
 */
#include "kernels/backend.h"

#include <cuda_runtime.h>

#include <stdio.h>
#include <string.h>

extern "C" const char *bt_cuda_blas_loaded_from(void);
extern "C" size_t cublasLtGetVersion(void);

/* 0 and *out filled; -1 with the reason in out->gpu. size: the caller's
 * sizeof(bt_gpu_identity), so a library built from another header refuses. */
extern "C" int bt_cuda_impl_identity(int device, bt_gpu_identity *out, size_t size)
{
    if (size != sizeof(bt_gpu_identity)) {
        if (out && size >= sizeof out->gpu)
            snprintf(out->gpu, sizeof out->gpu, "the GPU backend library was built from another baton version; "
                                                "rebuild it");
        return -1;
    }
    memset(out, 0, sizeof *out);
    cudaDriverGetVersion(&out->cuda_driver);
    out->cuda_runtime = CUDART_VERSION;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || device < 0 || device >= n) {
        snprintf(out->gpu, sizeof out->gpu, "no such GPU (%s)",
                 e != cudaSuccess ? cudaGetErrorString(e) : "fewer devices");
        return -1;
    }
    cudaDeviceProp p;
    e = cudaGetDeviceProperties(&p, device);
    if (e != cudaSuccess) {
        snprintf(out->gpu, sizeof out->gpu, "cannot be queried (%s)", cudaGetErrorString(e));
        return -1;
    }
    snprintf(out->gpu, sizeof out->gpu, "%s", p.name);
    out->cc_major = p.major;
    out->cc_minor = p.minor;
    out->sms = p.multiProcessorCount;
    out->mem_gib = p.totalGlobalMem / 1073741824.0;
    if (bt_cuda_blas_loaded_from()) {
        size_t v = cublasLtGetVersion();
        snprintf(out->cublaslt, sizeof out->cublaslt, "%zu.%zu.%zu", v / 10000, (v / 100) % 100, v % 100);
    }
    return 0;
}
