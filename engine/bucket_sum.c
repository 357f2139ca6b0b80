/* engine/bucket_sum.c — see bucket_sum.h. */
#include "engine/bucket_sum.h"

#include "util/err.h"
#include "util/mem.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bt_bucket_sum {
    int nb;           /* buckets; bucket b = [edge[b + 1], edge[b]) floats, b = 0 the heads */
    size_t *edge;     /* [nb + 1] decreasing: total ... 0 */
    pthread_mutex_t mu; /* guards everything below */
    int n;            /* replicas of the step */
    bt_backend *bes[BT_BUCKETS_MAX_REPLICAS];
    float *grads[BT_BUCKETS_MAX_REPLICAS];
    int *arrived;     /* [nb] replicas that finished bucket b this step */
    int issued;       /* buckets 0..issued-1 issued this step */
    int rc;           /* the step's first collective error */
    char msg[1024];
    int64_t sums, early;
};

bt_bucket_sum *bt_bucket_sum_create(const bt_bert *m)
{
    bt_bucket_sum *s = bt_xcalloc(1, sizeof *s);
    int cap = bt_bert_cfg(m)->layers + 3;
    s->edge = bt_xcalloc((size_t)cap, sizeof *s->edge);
    s->nb = bt_bert_grad_edges(m, s->edge, cap) - 1;
    s->arrived = bt_xcalloc((size_t)(s->nb > 0 ? s->nb : 1), sizeof *s->arrived);
    pthread_mutex_init(&s->mu, NULL);
    return s;
}

void bt_bucket_sum_free(bt_bucket_sum *s)
{
    if (!s) return;
    pthread_mutex_destroy(&s->mu);
    free(s->edge);
    free(s->arrived);
    free(s);
}

int bt_bucket_sum_buckets(const bt_bucket_sum *s) { return s->nb; }

void bt_bucket_sum_begin(bt_bucket_sum *s, bt_backend *const *bes, float *const *grads, int n)
{
    pthread_mutex_lock(&s->mu);
    s->n = n;
    for (int j = 0; j < n; j++) {
        s->bes[j] = bes[j];
        s->grads[j] = grads[j];
    }
    memset(s->arrived, 0, (size_t)s->nb * sizeof *s->arrived);
    s->issued = 0;
    s->rc = 0;
    s->msg[0] = 0;
    pthread_mutex_unlock(&s->mu);
}

/* Bucket b's sum over every replica, issued (s->mu held). */
static void issue(bt_bucket_sum *s, int b, int in_backward)
{
    size_t lo = s->edge[b + 1], count = s->edge[b] - lo;
    float *bufs[BT_BUCKETS_MAX_REPLICAS];
    for (int j = 0; j < s->n; j++) bufs[j] = s->grads[j] + lo;
    bt_backend *be0 = s->bes[0];
    int rc = be0->collective(be0, s->bes, s->n, bufs, count, BT_COLL_SUM | BT_COLL_ASYNC);
    if (rc) {
        s->rc = rc;
        snprintf(s->msg, sizeof s->msg, "%s (the gradient sum of bucket %d, floats [%zu, %zu))", bt_errmsg(), b,
                 lo, lo + count);
        return;
    }
    s->sums++;
    s->early += in_backward;
}

/* Replica r finished bucket b: the buckets every replica has finished are
 * issued, in order, by the one that finishes them last. */
static void publish(bt_bucket_rank *r, int b)
{
    bt_bucket_sum *s = r->s;
    pthread_mutex_lock(&s->mu);
    s->arrived[b]++;
    while (!s->rc && s->issued < s->nb && s->arrived[s->issued] == s->n) issue(s, s->issued++, r->in_backward);
    pthread_mutex_unlock(&s->mu);
}

void bt_bucket_rank_init(bt_bucket_rank *r, bt_bucket_sum *s, int j, float *part)
{
    *r = (bt_bucket_rank){.s = s, .j = j, .part = part};
}

void bt_bucket_rank_ready(void *rank, size_t off)
{
    bt_bucket_rank *r = rank;
    bt_bucket_sum *s = r->s;
    r->in_backward = off > 0;
    while (r->published < s->nb && s->edge[r->published + 1] >= off) {
        int b = r->published++;
        if (r->part) { /* the accumulation's add, g_j = acc + part, for these floats now */
            bt_backend *be = s->bes[r->j];
            size_t lo = s->edge[b + 1];
            int64_t count = (int64_t)(s->edge[b] - lo);
            bt_tensor acc = bt_view1(s->grads[r->j] + lo, BT_F32, be->device, count);
            bt_tensor g = bt_view1(r->part + lo, BT_F32, be->device, count);
            be->add(be, &acc, &g, &acc);
        }
        publish(r, b);
    }
}

int bt_bucket_sum_end(bt_bucket_sum *s, int replica_failed)
{
    pthread_mutex_lock(&s->mu);
    int rc = s->rc, issued = s->issued;
    char msg[sizeof s->msg];
    memcpy(msg, s->msg, sizeof msg);
    pthread_mutex_unlock(&s->mu);
    /* the join first, always: a failed step's issued sums must not outlive it (the next step zeroes the
     * gradients they read) */
    bt_backend *be0 = s->bes[0];
    float *bufs[BT_BUCKETS_MAX_REPLICAS];
    for (int j = 0; j < s->n; j++) bufs[j] = s->grads[j];
    if (replica_failed) { /* (the replica's error stays the step's) */
        bt_err_saved keep;
        bt_err_save(&keep);
        be0->collective(be0, s->bes, s->n, bufs, 0, BT_COLL_JOIN);
        bt_err_restore(&keep);
        return replica_failed;
    }
    int jrc = be0->collective(be0, s->bes, s->n, bufs, 0, BT_COLL_JOIN);
    if (rc) return bt_fail(rc, "%s", msg);
    if (jrc) return bt_fail_context(jrc, "the gradient sum's join");
    if (issued < s->nb)
        return bt_fail(BT_EINTERNAL, "the gradient sum: %d of %d buckets were finished by every replica", issued,
                       s->nb);
    return 0;
}

void bt_bucket_sum_stats(const bt_bucket_sum *s, int64_t *sums, int64_t *during_backward)
{
    pthread_mutex_lock((pthread_mutex_t *)&s->mu);
    *sums = s->sums;
    *during_backward = s->early;
    pthread_mutex_unlock((pthread_mutex_t *)&s->mu);
}
