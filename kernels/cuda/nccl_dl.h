/* kernels/cuda/nccl_dl.h — NCCL, found and loaded at run time, for the
 * gradient all-reduce of data-parallel training on several GPUs of one
 * process (runtime.devices, engine/train.h "data parallelism").
 *
 * Owns: loading libnccl.so.2 (where: cuda_dl_find.h, Python package dir
 * nvidia/nccl/lib, as pip's nvidia-nccl-cu12 installs it), the entry points
 * baton calls (ncclCommInitAll, ncclAllReduce, ncclReduce, ncclBroadcast,
 * ncclGroupStart/End, ncclCommDestroy, ncclGetErrorString, ncclGetVersion),
 * one communicator per device of the process, and in-place F32 sums and
 * broadcasts over the devices.
 * Must not: be linked with -lnccl (libbaton-cuda.so needs no NCCL at load
 * time: a machine without it trains on one GPU, or on several through host
 * memory), or know what is summed.
 *
 * What the sum guarantees (docs/operations.md, "Both GPUs of a T4 x2"): with
 * 2 devices every element is a + b, one rounding, which is commutative: the
 * same bits as the CPU's fixed-order sum, whatever NCCL's algorithm. With
 * more devices NCCL adds in an order that depends on the element's chunk,
 * the algorithm (ring / tree), protocol and channel count: results are the
 * same run to run on the same machine with the same NCCL and settings
 * (NCCL_ALGO=Ring, NCCL_PROTO=Simple pin them), not equal to one device's.
 *
 * Used by the CUDA backend's collective (kernels/cuda/cuda_collective.cu):
 * the trainer's gradient sum is bt_nccl_reduce0_f32 (the sum lands on rank
 * 0, which runs the optimizer) and the weights' broadcast after each update
 * bt_nccl_broadcast0_f32 (engine/train.h "data parallelism").
 */
#ifndef BATON_KERNELS_NCCL_DL_H
#define BATON_KERNELS_NCCL_DL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library used ("" never: NULL when none could be loaded), why not, and
 * its version code (e.g. 22807 for 2.28.7; 0 when not loaded). Loads on the
 * first call; thread-safe. */
const char *bt_nccl_loaded_from(void);
const char *bt_nccl_error(void);
int bt_nccl_version(void);

typedef struct bt_nccl bt_nccl;
/* One communicator per device in devices[0..n) (ncclCommInitAll; rank i is
 * devices[i]). 0, or -1 with why[0..cap) saying what failed. */
int bt_nccl_create(int n, const int *devices, bt_nccl **out, char *why, size_t cap);
/* In place on every rank: buf[i][0..count) = sum over ranks of buf[r][...],
 * F32, enqueued on streams[i] (cudaStream_t of device i) inside one NCCL
 * group (one thread drives every device); the caller synchronises the
 * streams. 0, or -1 with why. */
int bt_nccl_allreduce_f32(bt_nccl *c, float *const *buf, size_t count, void *const *streams, char *why, size_t cap);
/* The same, with the sum in buf[0] only (ncclReduce to rank 0; the other
 * buffers keep their values): what the trainer needs, with half the traffic
 * of an all-reduce. */
int bt_nccl_reduce0_f32(bt_nccl *c, float *const *buf, size_t count, void *const *streams, char *why, size_t cap);
/* In place on every rank: buf[i][0..count) = buf[0][...] (ncclBroadcast from rank 0). */
int bt_nccl_broadcast0_f32(bt_nccl *c, float *const *buf, size_t count, void *const *streams, char *why, size_t cap);
void bt_nccl_free(bt_nccl *c);

#ifdef __cplusplus
}
#endif

#endif
