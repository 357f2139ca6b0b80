/* engine/collective_probe.c — see collective_probe.h. */
#include "engine/collective_probe.h"

#include "util/err.h"
#include "util/mem.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PROBE_MAX ((size_t)(1u << 20) + 5u) /* floats per backend at most: 4 MiB and an odd tail */
#define BT_PROBE_MAX_DEVICES 64             /* = BT_MAX_REPLICAS (engine/train.h) */

/* Replica j's value i: (k / 1024 + f) x (1 + j), k in [-1000, 1000], f in
 * [0, 2^-10) from other bits of the hash: every mantissa bit in use, so a
 * sum in less than F32 (or rounded twice) shows. */
static float probe_value(size_t i, int j)
{
    uint32_t h = (uint32_t)i * 2654435761u + (uint32_t)j * 40503u;
    float k = (float)((int)(h % 2001u) - 1000) * (1.0f / 1024.0f);
    float f = (float)(h >> 12) * 0x1p-30f;
    return (k + f) * (float)(1 + j);
}

/* The first element where got differs from want: exactly (n = 2), else by more
 * than 1e-6 of the sum of magnitudes. -1 when none. */
static long first_wrong(const float *got, const float *want, const float *mag, int n, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        int bad = n == 2 ? memcmp(&got[i], &want[i], sizeof(float)) != 0
                         : !(fabsf(got[i] - want[i]) <= 1e-6f * mag[i]);
        if (bad) return (long)i;
    }
    return -1;
}

/* Device 0's sum (downloaded into got) checked against want (first_wrong);
 * how: "" or " in two buckets". */
static int check_sum(bt_backend *const *bes, int n, float *const *dev, size_t count, const float *want,
                     const float *mag, float *got, const char *how)
{
    bes[0]->download(bes[0], got, dev[0], count * sizeof(float));
    long at = first_wrong(got, want, mag, n, count);
    if (at < 0) return 0;
    return bt_fail(BT_EINTERNAL, "the %s collective summed a probe of %d devices%s wrongly (element %ld: %.9g, "
                                 "want %.9g)", bes[0]->name, n, how, at, got[at], want[at]);
}

/* Every device's probe values uploaded; want and mag (when not NULL) their
 * sum and sum of magnitudes. x: count floats of scratch. */
static void upload_probe(bt_backend *const *bes, int n, float *const *dev, size_t count, float *x, float *want,
                         float *mag)
{
    if (want)
        for (size_t i = 0; i < count; i++) want[i] = mag[i] = 0.0f;
    for (int j = 0; j < n; j++) {
        for (size_t i = 0; i < count; i++) {
            x[i] = probe_value(i, j);
            if (!want) continue;
            want[i] += x[i]; /* ((x0 + x1) + x2) ... in float: the CPU collective's order */
            mag[i] += fabsf(x[i]);
        }
        bes[j]->upload(bes[j], dev[j], x, count * sizeof(float));
    }
}

/* The bucketed sum's way (engine/bucket_sum.h): two ASYNC sums, the upper
 * part first, then the join; device 0 must hold what the sum of the whole
 * must (want, mag: first_wrong). */
static int probe_async(bt_backend *const *bes, int n, float *const *dev, size_t count, const float *want,
                       const float *mag, float *got)
{
    const char *kind = bes[0]->name;
    upload_probe(bes, n, dev, count, got, NULL, NULL);
    size_t half = count / 2;
    float *hi[BT_PROBE_MAX_DEVICES];
    for (int j = 0; j < n; j++) hi[j] = dev[j] + half;
    if (bes[0]->collective(bes[0], bes, n, hi, count - half, BT_COLL_SUM | BT_COLL_ASYNC) ||
        bes[0]->collective(bes[0], bes, n, dev, half, BT_COLL_SUM | BT_COLL_ASYNC) ||
        bes[0]->collective(bes[0], bes, n, dev, count, BT_COLL_JOIN))
        return bt_fail_context(BT_EINTERNAL, "the %s collective's probe (a sum of %d in two buckets)", kind, n);
    return check_sum(bes, n, dev, count, want, mag, got, " in two buckets");
}

/* host: 4 x count floats of scratch */
static int run_probe(bt_backend *const *bes, int n, float *const *dev, size_t count, float *host)
{
    float *x = host, *want = host + count, *mag = host + 2 * count, *got = host + 3 * count;
    upload_probe(bes, n, dev, count, x, want, mag);
    const char *kind = bes[0]->name;
    if (bes[0]->collective(bes[0], bes, n, dev, count, BT_COLL_SUM))
        return bt_fail_context(BT_EINTERNAL, "the %s collective's probe (sum of %d)", kind, n);
    int rc = check_sum(bes, n, dev, count, want, mag, x, "");
    if (!rc) rc = probe_async(bes, n, dev, count, want, mag, got);
    if (rc) return rc;
    if (bes[0]->collective(bes[0], bes, n, dev, count, BT_COLL_BCAST))
        return bt_fail_context(BT_EINTERNAL, "the %s collective's probe (broadcast to %d)", kind, n - 1);
    for (int j = 0; j < n; j++) { /* device 0 kept its sum; the others got its bytes */
        bes[j]->download(bes[j], got, dev[j], count * sizeof(float));
        if (memcmp(got, x, count * sizeof(float)))
            return bt_fail(BT_EINTERNAL, "the %s collective's broadcast left device %d with other values than "
                                         "device 0's sum", kind, j);
    }
    return 0;
}

int bt_collective_probe(bt_backend *const *bes, float *const *bufs, int n, size_t count)
{
    if (n < 2 || !bes[0]->collective || count == 0)
        return bt_fail(BT_EINTERNAL, "bt_collective_probe: %d backends, %zu floats", n, count);
    if (count > PROBE_MAX) count = PROBE_MAX;
    float *host = bt_xmalloc(4 * count * sizeof(float));
    int rc = run_probe(bes, n, bufs, count, host);
    free(host);
    return rc;
}
