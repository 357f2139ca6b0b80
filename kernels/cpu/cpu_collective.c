/* kernels/cpu/cpu_collective.c — the CPU backend's collective
 * (bt_backend.collective): the reference of what NCCL does for the CUDA
 * backend (kernels/cuda/cuda_collective.cu), between CPU replicas of one
 * process (runtime.devices = N on the CPU).
 *
 * Owns: cpu_collective(). The sum is replica 0's buffer plus replica 1's,
 * plus replica 2's ... in that order, elementwise in F32 with the CPU's own
 * add (so its bits do not depend on the thread count); a broadcast is a
 * copy. Every buffer is host memory, whichever CPU backend owns it. An
 * ASYNC sum (one bucket, from whichever replica's thread completes it) is
 * done before the call returns, so BT_COLL_JOIN has nothing to wait for.
 * Must not: keep state (there is nothing to prepare) or allocate.
 */
#include "kernels/cpu/cpu_internal.h"
#include "util/err.h"

#include <string.h>

int cpu_collective(bt_backend *be, bt_backend *const *bes, int n, float *const *bufs, size_t count, int op)
{
    if (op == (BT_COLL_SUM | BT_COLL_ASYNC)) op = BT_COLL_SUM; /* (done here and now) */
    if (n < 2 || bes[0] != be || (op != BT_COLL_SUM && op != BT_COLL_BCAST && op != BT_COLL_JOIN))
        return bt_fail(BT_EINTERNAL, "cpu collective: %d backends, op %d (want >= 2, bes[0] the caller, a "
                                     "BT_COLL_* op)", n, op);
    for (int i = 1; i < n; i++)
        if (!bes[i]->host_memory)
            return bt_fail(BT_EINTERNAL, "cpu collective: backend %d (%s) is not host memory", i, bes[i]->name);
    if (!bufs || !count || op == BT_COLL_JOIN) return 0; /* prepare, join: nothing to do */
    bt_tensor acc = bt_view1(bufs[0], BT_F32, BT_DEV_CPU, (int64_t)count);
    for (int i = 1; i < n; i++) {
        if (op == BT_COLL_BCAST) {
            if (bufs[i] != bufs[0]) memmove(bufs[i], bufs[0], count * sizeof(float));
            continue;
        }
        bt_tensor b = bt_view1(bufs[i], BT_F32, BT_DEV_CPU, (int64_t)count);
        be->add(be, &acc, &b, &acc);
    }
    return 0;
}
