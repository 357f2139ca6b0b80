/* bench/bench_attention.c — the CPU attention kernels, forward + backward,
 * storing the probabilities (the backward reads them) against recomputing
 * them from the log-sum-exp (FlashAttention's way, no [B,H,S,S] buffer).
 *
 * Owns: timing bt_backend.attention_fwd + attention_bwd at BERT-base heads
 * (H = 12, Dh = 64, dropout 0.1, training) for a list of sequence lengths,
 * best of at least 5 passes and 1 s,
 * B*S = 4096 tokens each. Prints per length:
 *   S=128 B=32: stored X ms, recomputed Y ms, ratio Y/X, probs Z MB
 * Usage: bench_attention THREADS [S ...]; BENCH_CPU_TIME=1: process CPU time
 * instead of wall time (meaningful with THREADS = 1)
 * Must not: be linked into baton (built by bench/bench_attention.sh only).
 */
#include "kernels/backend.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* process CPU time: on a shared machine it moves less with the load than
 * wall time does (run with 1 thread: no OpenMP spinning in it) */
static int use_cpu_time;
static double now(void)
{
    struct timespec ts;
    clock_gettime(use_cpu_time ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* best seconds of fwd+bwd over a few repetitions (at least 0.5 s in all) */
static double time_pass(bt_backend *be, int stored, const bt_tensor *q, const bt_tensor *m, int B, int S, int H,
                        int Dh, bt_tensor *c, bt_tensor *p, bt_tensor *l, const bt_tensor *dc, bt_tensor *dq)
{
    bt_dropout_key k = {.seed = 1, .step = 1, .layer = 0, .site = BT_SITE_ATTN_PROBS};
    double best = 1e30, spent = 0;
    for (int r = 0; r < 20 && (r < 5 || spent < 1.0); r++) {
        double t0 = now();
        be->attention_fwd(be, q, m, B, S, H, Dh, 0.125f, 0.1f, k, c, stored ? p : NULL, l);
        be->attention_bwd(be, q, m, B, S, H, Dh, 0.125f, 0.1f, k, c, stored ? p : NULL, l, dc, dq);
        double t = now() - t0;
        spent += t;
        if (t < best) best = t;
    }
    return best;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    use_cpu_time = getenv("BENCH_CPU_TIME") && atoi(getenv("BENCH_CPU_TIME")) != 0;
    const char *defaults[] = {"64", "128", "256", "512", "1024"};
    const char **lens = argc > 2 ? (const char **)argv + 2 : defaults;
    int nlens = argc > 2 ? argc - 2 : 5;
    bt_backend *be = bt_backend_cpu_create(threads);
    if (!be) {
        fprintf(stderr, "bench_attention: %s\n", bt_errmsg());
        return 1;
    }
    const int H = 12, Dh = 64, tokens = 4096;
    for (int i = 0; i < nlens; i++) {
        int S = atoi(lens[i]), B = tokens / (S > 0 ? S : 1);
        if (S <= 0 || B < 1) {
            fprintf(stderr, "bench_attention: bad length '%s'\n", lens[i]);
            return 2;
        }
        size_t nq = (size_t)B * S * 3 * H * Dh, nc = (size_t)B * S * H * Dh, np = (size_t)B * H * S * S;
        float *q = be->alloc(be, 4 * nq), *c = be->alloc(be, 4 * nc), *dc = be->alloc(be, 4 * nc);
        float *dq = be->alloc(be, 4 * nq), *p = be->alloc(be, 4 * np), *l = be->alloc(be, 4 * (size_t)B * H * S);
        int32_t *mk = be->alloc(be, 4 * (size_t)B * S);
        if (!q || !c || !dc || !dq || !p || !l || !mk) { fprintf(stderr, "bench_attention: %s\n", bt_errmsg()); return 1; }
        for (size_t e = 0; e < nq; e++) q[e] = (float)((e * 2654435761u) % 1000) * 2e-3f - 1.0f;
        for (size_t e = 0; e < nc; e++) dc[e] = (float)((e * 40503u) % 1000) * 1e-3f - 0.5f;
        for (int b = 0; b < B; b++)
            for (int j = 0; j < S; j++) mk[b * S + j] = j < S - (b % 4) * S / 8; /* some padding */
        int64_t s4[4] = {B, S, 3 * H, Dh}, c4[4] = {B, S, H, Dh}, p4[4] = {B, H, S, S}, l3[3] = {B, H, S};
        bt_tensor tq = bt_view(q, BT_F32, BT_DEV_CPU, 4, s4), tc = bt_view(c, BT_F32, BT_DEV_CPU, 4, c4);
        bt_tensor tdc = bt_view(dc, BT_F32, BT_DEV_CPU, 4, c4), tdq = bt_view(dq, BT_F32, BT_DEV_CPU, 4, s4);
        bt_tensor tp = bt_view(p, BT_F32, BT_DEV_CPU, 4, p4), tl = bt_view(l, BT_F32, BT_DEV_CPU, 3, l3);
        bt_tensor tm = bt_view2(mk, BT_I32, BT_DEV_CPU, B, S);
        double ts = time_pass(be, 1, &tq, &tm, B, S, H, Dh, &tc, &tp, &tl, &tdc, &tdq);
        double tr = time_pass(be, 0, &tq, &tm, B, S, H, Dh, &tc, &tp, &tl, &tdc, &tdq);
        printf("S=%d B=%d: stored %.1f ms, recomputed %.1f ms, ratio %.2f, probs %.0f MB per layer\n", S, B,
               ts * 1e3, tr * 1e3, tr / ts, 4.0 * np / 1e6);
        fflush(stdout);
        be->free(be, q); be->free(be, c); be->free(be, dc); be->free(be, dq); be->free(be, p); be->free(be, l);
        be->free(be, mk);
    }
    be->destroy(be);
    return 0;
}
