/* kernels/backend.c — backend-neutral helpers: dtype sizes, views, describe;
 * the loader of the CUDA backend library. */
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

/* The CUDA backend lives in a shared library (libbaton-cuda.so, built beside
 * the objects by `make` with nvcc, or by `make cuda-portable`; kaggle/bundle.sh
 * puts it in the bundle's lib/), loaded on first use: baton then starts, and
 * trains on the CPU, on a machine without a GPU or CUDA. Every build has the
 * loader (a CPU-only build can use a backend built later by `make
 * cuda-portable`). The library resolves the util/ and kernels/ symbols it uses
 * from this executable (linked with -rdynamic). */
#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#ifndef BATON_CUDA_LIB_BUILD
#define BATON_CUDA_LIB_BUILD ""
#endif
#ifndef BATON_CUDA_LIB_PORTABLE
#define BATON_CUDA_LIB_PORTABLE ""
#endif
#define CUDA_LIB_NAME "libbaton-cuda.so"

static void *cuda_handle;
static bt_backend *(*cuda_create)(int);
static int (*cuda_describe)(FILE *);
static int (*cuda_doctor)(FILE *, char *, size_t);
static int (*cuda_identity)(int, bt_gpu_identity *, size_t);
static char cuda_load_error[1536];
static char cuda_loaded_from[PATH_MAX];

/* The CUDA libraries (driver, runtime, cuBLASLt, the NVRTC it loads) make
 * one-time allocations at first contact and some unload helper libraries
 * again, which orphans what those allocated: LeakSanitizer reports it under
 * an unknown module, where no suppression can name it. In a sanitized build
 * leak checking is paused across the calls into the backend library that
 * reach them (loading, describing, identifying, creating); baton's own code
 * is checked everywhere else. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define FOREIGN_BEGIN() __lsan_disable()
#define FOREIGN_END() __lsan_enable()
#else
#define FOREIGN_BEGIN() ((void)0)
#define FOREIGN_END() ((void)0)
#endif

static int cuda_try(const char *path)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        size_t used = strlen(cuda_load_error);
        snprintf(cuda_load_error + used, sizeof cuda_load_error - used, "%s%.700s", used ? "; " : "",
                 e ? e : path);
        return -1;
    }
    cuda_create = (bt_backend * (*)(int)) dlsym(h, "bt_cuda_impl_create");
    cuda_describe = (int (*)(FILE *))dlsym(h, "bt_cuda_impl_describe");
    cuda_doctor = (int (*)(FILE *, char *, size_t))dlsym(h, "bt_cuda_impl_doctor"); /* older libraries lack it */
    cuda_identity = (int (*)(int, bt_gpu_identity *, size_t))dlsym(h, "bt_cuda_impl_identity"); /* likewise */
    if (!cuda_create || !cuda_describe) {
        size_t used = strlen(cuda_load_error);
        snprintf(cuda_load_error + used, sizeof cuda_load_error - used, "%s%.700s: not a baton CUDA backend library",
                 used ? "; " : "", path);
        dlclose(h);
        return -1;
    }
    cuda_handle = h;
    snprintf(cuda_loaded_from, sizeof cuda_loaded_from, "%.4000s", path);
    return 0;
}

/* Candidates, first found wins: $BATON_CUDA_LIB; <exe dir>/lib/ (the bundle);
 * <exe dir>/; the portable build of this tree (build/cuda-portable/, which
 * runs on more drivers and GPUs); the build directory this binary was built in. */
static int cuda_load_paths(void)
{
    if (cuda_handle) return 0;
    if (cuda_load_error[0]) return -1;
    char cands[5][PATH_MAX + 32];
    int n = 0;
    const char *env = getenv("BATON_CUDA_LIB");
    if (env && *env) snprintf(cands[n++], sizeof cands[0], "%s", env);
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        snprintf(cands[n++], sizeof cands[0], "%s/lib/%s", exe, CUDA_LIB_NAME);
        snprintf(cands[n++], sizeof cands[0], "%s/%s", exe, CUDA_LIB_NAME);
    }
    if (BATON_CUDA_LIB_PORTABLE[0]) snprintf(cands[n++], sizeof cands[0], "%s", BATON_CUDA_LIB_PORTABLE);
    if (BATON_CUDA_LIB_BUILD[0]) snprintf(cands[n++], sizeof cands[0], "%s", BATON_CUDA_LIB_BUILD);
    int tried = 0;
    for (int i = 0; i < n; i++) {
        if (access(cands[i], F_OK) != 0 && !(i == 0 && env && *env)) continue;
        tried++;
        if (cuda_try(cands[i]) == 0) return 0;
    }
    if (!tried) snprintf(cuda_load_error, sizeof cuda_load_error, "%s not found beside the binary, in its lib/, "
                         "or at %.1000s (build it with `make cuda-portable`, or `make` with nvcc on PATH)",
                         CUDA_LIB_NAME, BATON_CUDA_LIB_PORTABLE[0] ? BATON_CUDA_LIB_PORTABLE : "(none)");
    return -1;
}

static int cuda_load(void)
{
    FOREIGN_BEGIN();
    int rc = cuda_load_paths();
    FOREIGN_END();
    return rc;
}

bt_backend *bt_backend_cuda_create(int device)
{
    if (cuda_load() != 0) {
        bt_fail(BT_ECONFIG, "the CUDA backend library (%s) cannot be loaded here: %s; set device = cpu, or build "
                            "it (`make` with nvcc on the PATH, or `make cuda-portable`)", CUDA_LIB_NAME,
                cuda_load_error);
        return NULL;
    }
    FOREIGN_BEGIN();
    bt_backend *be = cuda_create(device);
    FOREIGN_END();
    return be;
}

int bt_backend_cuda_doctor(FILE *f, char *why, size_t cap)
{
    if (cuda_load() != 0) {
        fprintf(f, "  GPU backend library: not loadable: %s\n", cuda_load_error);
        snprintf(why, cap, "no GPU backend library (%s)", cuda_load_error);
        return 0;
    }
    fprintf(f, "  GPU backend library: %s\n", cuda_loaded_from);
    FOREIGN_BEGIN();
    int rc;
    if (!cuda_doctor) {
        snprintf(why, cap, "%s is an older backend without a doctor report; rebuild it", cuda_loaded_from);
        rc = cuda_describe(f);
    } else rc = cuda_doctor(f, why, cap);
    FOREIGN_END();
    return rc;
}

int bt_backend_cuda_identity(int device, bt_gpu_identity *out)
{
    memset(out, 0, sizeof *out);
    if (cuda_load() != 0)
        return bt_fail(BT_ECONFIG, "the CUDA backend cannot be loaded here: %s", cuda_load_error);
    if (!cuda_identity)
        return bt_fail(BT_ECONFIG, "%s is an older GPU backend library that cannot say which GPU it runs on; "
                                   "rebuild it (make cuda-portable)", cuda_loaded_from);
    FOREIGN_BEGIN();
    int rc = cuda_identity(device, out, sizeof *out);
    FOREIGN_END();
    if (rc) return bt_fail(BT_ECONFIG, "GPU %d: %s", device, out->gpu[0] ? out->gpu : "cannot be queried");
    snprintf(out->library, sizeof out->library, "%s", cuda_loaded_from);
    return BT_OK;
}

void bt_backends_describe(FILE *f)
{
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    fprintf(f, "  cpu   fp32, fp16/bf16 (16-bit storage, fp32 arithmetic), OpenBLAS sgemm + OpenMP (%d threads)\n", threads);
    if (cuda_load() == 0) {
        FOREIGN_BEGIN();
        cuda_describe(f);
        FOREIGN_END();
        fprintf(f, "        (from %s)\n", cuda_loaded_from);
    } else {
        fprintf(f, "  cuda  not loadable here: %s\n", cuda_load_error);
    }
}
