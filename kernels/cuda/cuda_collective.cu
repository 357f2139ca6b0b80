/* kernels/cuda/cuda_collective.cu — the CUDA backend's collective
 * (bt_backend.collective, kernels/backend.h): the gradient sum and the
 * weights' broadcast between the GPUs of one process (runtime.devices = N),
 * through NCCL loaded at run time (kernels/cuda/nccl_dl.h).
 *
 * Owns: the communicators of one set of devices (ncclCommInitAll, made on
 * the first collective and kept in the first backend's state until it is
 * destroyed), and enqueueing one NCCL call per device on that device's
 * backend stream, all in one group from the calling thread. Stream order
 * makes each call wait for what its backend was already given, and every
 * later op of a backend wait for it: no host synchronisation.
 * Must not: fall back by itself. Without NCCL the call fails with the reason
 * and the trainer goes through host memory (runner/devices.c says so).
 *
 * Bits: BT_COLL_SUM is ncclReduce to rank 0. With 2 GPUs each element is one
 * rounding of a + b, the CPU reference's bits; with more NCCL's order
 * depends on its algorithm (nccl_dl.h), so N > 2 GPUs repeat run to run but
 * do not equal one GPU with grad_accum N (docs/operations.md).
 */
#include "kernels/cuda/cuda_internal.cuh"

extern "C" {
#include "kernels/cuda/nccl_dl.h"
}

#include <string.h>

/* Communicators for the devices of bes[0..n): the cached ones when they are
 * for the same devices in the same order, else new ones. */
static int communicators(bt_backend *be, bt_backend *const *bes, int n)
{
    cuda_impl *im = cu_impl(be);
    int dev[CU_MAX_DEVICES];
    for (int i = 0; i < n; i++) dev[i] = ((cuda_impl *)bes[i]->impl)->device;
    if (im->nccl && im->nccl_n == n && !memcmp(im->nccl_dev, dev, (size_t)n * sizeof *dev)) return 0;
    cu_collective_free(im);
    char why[512];
    struct bt_nccl *c = NULL;
    int rc = bt_nccl_create(n, dev, &c, why, sizeof why);
    cu_impl(be); /* (NCCL may leave another device current) */
    if (rc) return bt_fail(BT_ECONFIG, "NCCL for %d GPUs: %s", n, why);
    im->nccl = c;
    im->nccl_n = n;
    memcpy(im->nccl_dev, dev, (size_t)n * sizeof *dev);
    return 0;
}

static int cu_collective(bt_backend *be, bt_backend *const *bes, int n, float *const *bufs, size_t count, int op)
{
    if (n < 2 || n > CU_MAX_DEVICES || bes[0] != be || (op != BT_COLL_SUM && op != BT_COLL_BCAST))
        return bt_fail(BT_EINTERNAL, "cuda collective: %d backends, op %d (want 2..%d, bes[0] the caller, a "
                                     "BT_COLL_* op)", n, op, CU_MAX_DEVICES);
    for (int i = 1; i < n; i++) {
        if (bes[i]->device != BT_DEV_CUDA || bes[i]->collective != be->collective)
            return bt_fail(BT_EINTERNAL, "cuda collective: backend %d is %s", i, bes[i]->name);
        if (cu_dead(bes[i])) return cu_impl(bes[i])->status;
    }
    if (cu_dead(be)) return cu_impl(be)->status;
    int rc = communicators(be, bes, n);
    if (rc || !bufs || !count) return rc;
    void *streams[CU_MAX_DEVICES];
    for (int i = 0; i < n; i++) streams[i] = (void *)((cuda_impl *)bes[i]->impl)->stream;
    char why[512];
    rc = op == BT_COLL_SUM ? bt_nccl_reduce0_f32(cu_impl(be)->nccl, bufs, count, streams, why, sizeof why)
                           : bt_nccl_broadcast0_f32(cu_impl(be)->nccl, bufs, count, streams, why, sizeof why);
    cu_impl(be);
    if (rc)
        return cuda_fail(be, BT_EINTERNAL, __FILE__, __LINE__, "%s of %zu floats over %d GPUs: %s",
                         op == BT_COLL_SUM ? "the gradient sum" : "the weights' broadcast", count, n, why);
    return 0;
}

void cu_collective_install(bt_backend *be) { be->collective = cu_collective; }

void cu_collective_free(cuda_impl *im)
{
    if (!im->nccl) return;
    bt_nccl_free(im->nccl);
    im->nccl = NULL;
    im->nccl_n = 0;
    cudaSetDevice(im->device);
}
