/* engine/collective_probe.h — a check of a backend's collective before a
 * trainer trusts it with gradients (engine/train.h bt_trainer_set_collective).
 *
 * Owns: the probe. Each backend's buffer gets known values (signs and
 * magnitudes that differ per replica; up to 4 MiB, large enough for NCCL to
 * take the protocol it takes for gradients' chunks); the sum must land on
 * bes[0] with the bits of the fixed-order host sum for 2 backends (one
 * rounding of a + b) and within 1e-6 of it for more (NCCL's order), and the
 * broadcast must copy bes[0]'s bytes to every other buffer. The sum is
 * also taken the bucketed sum's way (two BT_COLL_ASYNC sums and a
 * BT_COLL_JOIN, engine/bucket_sum.h) and must land the same. A collective
 * that drops a replica, averages, or reduces into the wrong buffer fails it.
 * Must not: keep state or know about models.
 */
#ifndef BATON_ENGINE_COLLECTIVE_PROBE_H
#define BATON_ENGINE_COLLECTIVE_PROBE_H

#include "kernels/backend.h"

/* 0 when bes[0]->collective over bes[0..n) passes on bufs[j], F32 [count]
 * on bes[j] (the first min(count, 2^20 + 5) floats are overwritten: the
 * trainer lends its gradients, which every step recomputes from zero);
 * BT_EINTERNAL after bt_fail() saying what was wrong. No device memory is
 * allocated, so the backends' peak counts do not change. */
int bt_collective_probe(bt_backend *const *bes, float *const *bufs, int n, size_t count);

#endif
