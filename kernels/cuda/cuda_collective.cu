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
 * later op of a backend wait for it: no host synchronisation. An ASYNC sum
 * (one bucket of the gradients, issued by whichever replica thread completes
 * it) goes on each device's NCCL stream instead, after an event of what the
 * device's own stream was given so far, so the backward goes on beside it;
 * BT_COLL_JOIN puts the NCCL streams' last events back into the streams.
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

/* Device i's NCCL stream, made to wait for what its own stream was given so
 * far (made with its events on first use). The thread's device becomes i's. */
static int comm_stream_after_work(bt_backend *bi, cudaStream_t *out)
{
    cuda_impl *im = cu_impl(bi);
    if (!im->comm && (CU_CHECK(bi, cudaStreamCreateWithFlags(&im->comm, cudaStreamNonBlocking)) ||
                      CU_CHECK(bi, cudaEventCreateWithFlags(&im->ev_work, cudaEventDisableTiming)) ||
                      CU_CHECK(bi, cudaEventCreateWithFlags(&im->ev_comm, cudaEventDisableTiming))))
        return im->status;
    if (CU_CHECK(bi, cudaEventRecord(im->ev_work, im->stream)) ||
        CU_CHECK(bi, cudaStreamWaitEvent(im->comm, im->ev_work, 0)))
        return im->status;
    *out = im->comm;
    return 0;
}

/* BT_COLL_JOIN: each device's stream waits for its NCCL stream's sums. */
static int join_comm_streams(bt_backend *const *bes, int n)
{
    for (int i = 0; i < n; i++) {
        cuda_impl *im = cu_impl(bes[i]);
        if (!im->comm) continue; /* (no ASYNC sum yet) */
        if (CU_CHECK(bes[i], cudaEventRecord(im->ev_comm, im->comm)) ||
            CU_CHECK(bes[i], cudaStreamWaitEvent(im->stream, im->ev_comm, 0)))
            return im->status;
    }
    return 0;
}

static int cu_collective(bt_backend *be, bt_backend *const *bes, int n, float *const *bufs, size_t count, int op)
{
    int async = op == (BT_COLL_SUM | BT_COLL_ASYNC);
    if (async) op = BT_COLL_SUM;
    if (n < 2 || n > CU_MAX_DEVICES || bes[0] != be || (op != BT_COLL_SUM && op != BT_COLL_BCAST && op != BT_COLL_JOIN))
        return bt_fail(BT_EINTERNAL, "cuda collective: %d backends, op %d (want 2..%d, bes[0] the caller, a "
                                     "BT_COLL_* op)", n, op, CU_MAX_DEVICES);
    for (int i = 1; i < n; i++) {
        if (bes[i]->device != BT_DEV_CUDA || bes[i]->collective != be->collective)
            return bt_fail(BT_EINTERNAL, "cuda collective: backend %d is %s", i, bes[i]->name);
        if (cu_dead(bes[i])) return cu_impl(bes[i])->status;
    }
    if (cu_dead(be)) return cu_impl(be)->status;
    if (op == BT_COLL_JOIN) {
        int rc = join_comm_streams(bes, n);
        cu_impl(be);
        return rc;
    }
    int rc = communicators(be, bes, n);
    if (rc || !bufs || !count) return rc;
    void *streams[CU_MAX_DEVICES];
    for (int i = 0; i < n; i++) {
        cudaStream_t s = ((cuda_impl *)bes[i]->impl)->stream;
        if (async && (rc = comm_stream_after_work(bes[i], &s))) return rc;
        streams[i] = (void *)s;
    }
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

void cu_comm_free(cuda_impl *im)
{
    if (!im->comm) return;
    cudaSetDevice(im->device);
    cudaStreamSynchronize(im->comm);
    cudaStreamDestroy(im->comm);
    cudaEventDestroy(im->ev_work);
    cudaEventDestroy(im->ev_comm);
    im->comm = NULL;
}
