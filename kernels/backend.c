/* kernels/backend.c — backend-neutral helpers: dtype sizes, views, describe. */
#include "kernels/backend.h"
#include "util/err.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

size_t bt_dtype_size(bt_dtype dt)
{
    switch (dt) {
    case BT_F32: case BT_I32: return 4;
    case BT_F16: case BT_BF16: return 2;
    }
    return 0;
}

int64_t bt_numel(const bt_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

bt_tensor bt_view(void *data, bt_dtype dt, bt_device dev, int ndim, const int64_t *shape)
{
    bt_tensor t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.dtype = dt;
    t.device = dev;
    t.ndim = ndim;
    for (int i = 0; i < ndim && i < BT_MAX_DIMS; i++) t.shape[i] = shape[i];
    return t;
}

bt_tensor bt_view2(void *data, bt_dtype dt, bt_device dev, int64_t d0, int64_t d1)
{
    int64_t s[2] = {d0, d1};
    return bt_view(data, dt, dev, 2, s);
}

bt_tensor bt_view1(void *data, bt_dtype dt, bt_device dev, int64_t d0)
{
    return bt_view(data, dt, dev, 1, &d0);
}

#if BATON_CUDA
int bt_cuda_describe(FILE *f);
#endif

void bt_backends_describe(FILE *f)
{
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    fprintf(f, "  cpu   fp32, OpenBLAS sgemm + OpenMP (%d threads)\n", threads);
#if BATON_CUDA
    bt_cuda_describe(f);
#else
    fprintf(f, "  cuda  not compiled in (built with CUDA=0 or without nvcc)\n");
#endif
}

#if !BATON_CUDA
bt_backend *bt_backend_cuda_create(int device)
{
    (void)device;
    bt_fail(BT_ECONFIG, "this baton was built without CUDA (CUDA=0 or no nvcc at build time); "
                        "rebuild with nvcc on PATH, or set device = cpu");
    return NULL;
}
#endif
