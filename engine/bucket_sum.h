/* engine/bucket_sum.h — the gradient sum across replicas in buckets, each
 * issued as soon as every replica's backward has finished it, so that the
 * sum runs beside the rest of the backward (runtime.devices = N; DDP's
 * bucketed all-reduce, in the shape of engine/train.c's replicas).
 *
 * Owns: the bucket edges of one model layout (bt_bert_grad_edges: the heads,
 * each encoder layer top down, the embeddings), how many replicas have
 * finished each bucket in the current step, and issuing bucket b's sum
 * through the backends' collective (BT_COLL_SUM | BT_COLL_ASYNC, in bucket
 * order, one at a time under a lock) from the thread of the replica that
 * finishes it last; then BT_COLL_JOIN once per step.
 * Must not: sum anything twice or out of order. Each element is summed once,
 * g0 + g1 + ..., as by one collective over the whole buffer: the bits do
 * not depend on the buckets or on which thread issues them.
 */
#ifndef BT_BUCKET_SUM_H
#define BT_BUCKET_SUM_H

#include "kernels/backend.h"
#include "engine/bert.h"

#include <stdint.h>

#define BT_BUCKETS_MAX_REPLICAS 64 /* = BT_MAX_REPLICAS (engine/train.h) */

typedef struct bt_bucket_sum bt_bucket_sum;

/* For models of m's layout; NULL never (allocation failure aborts). */
bt_bucket_sum *bt_bucket_sum_create(const bt_bert *m);
void bt_bucket_sum_free(bt_bucket_sum *s);
int bt_bucket_sum_buckets(const bt_bucket_sum *s);

/* A step: replica j's backend bes[j] and gradient buffer grads[j] (its
 * accumulator: where its final gradient will be), j < n <= BT_BUCKETS_MAX_REPLICAS. */
void bt_bucket_sum_begin(bt_bucket_sum *s, bt_backend *const *bes, float *const *grads, int n);

/* One replica's side, on its own thread. part: when the replica's last
 * micro-batch goes into a buffer of its own (accumulation), that buffer,
 * added into grads[j] bucket by bucket as they are finished; else NULL. */
typedef struct {
    bt_bucket_sum *s;
    int j;
    float *part;
    int published;   /* buckets this replica has finished */
    int in_backward; /* 1 while the calls come from its backward (bt_bert_set_grads_ready) */
} bt_bucket_rank;

void bt_bucket_rank_init(bt_bucket_rank *r, bt_bucket_sum *s, int j, float *part);
/* [off, total) of the replica's gradient is final: every bucket inside it is
 * published (and issued, when this replica is the last to finish it). A
 * bt_grads_ready_fn (ctx: the bt_bucket_rank); off = 0 after the backward. */
void bt_bucket_rank_ready(void *rank, size_t off);

/* After every replica: issues the JOIN (also after a failed step, so that
 * no sum outlives it); 0 when every bucket was issued without error, else
 * the first collective error, or BT_EINTERNAL when some bucket was never
 * finished by every replica. replica_failed != 0: a replica's error (a BT_E*
 * code, its message the current one) is the step's: kept and returned. */
int bt_bucket_sum_end(bt_bucket_sum *s, int replica_failed);

/* Since creation: buckets summed, and how many of them were issued from
 * inside a backward (while that replica still had layers to go). */
void bt_bucket_sum_stats(const bt_bucket_sum *s, int64_t *sums, int64_t *during_backward);

#endif
