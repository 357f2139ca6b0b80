/* kernels/cuda/backend_cuda.cu — CUDA backend entry: device discovery.
 * (Kernels arrive with the CUDA issue; this file proves the build wiring.) */
#include <cuda_runtime.h>
#include <stdio.h>

extern "C" int bt_cuda_describe(FILE *f)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    int rt = 0;
    cudaRuntimeGetVersion(&rt);
    fprintf(f, "  cuda  compiled in (runtime %d.%d); ", rt / 1000, (rt % 1000) / 10);
    if (e != cudaSuccess) {
        fprintf(f, "no usable device: %s\n", cudaGetErrorString(e));
        return 0;
    }
    fprintf(f, "%d device(s)\n", n);
    for (int i = 0; i < n; i++) {
        cudaDeviceProp p;
        if (cudaGetDeviceProperties(&p, i) == cudaSuccess)
            fprintf(f, "        [%d] %s, sm_%d%d, %.1f GiB\n", i, p.name, p.major, p.minor,
                    p.totalGlobalMem / 1073741824.0);
    }
    return n;
}
