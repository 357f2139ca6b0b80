/* bench/bench_sgemm.c — sgemm rate of the CPU backend at BERT-like shapes.
 *
 * Owns: timing bt_backend.matmul (the path training uses: OpenBLAS sgemm
 * blocks split over the backend's OpenMP threads) for linear layers
 * y[M,N] = x[M,K] W[N,K]^T. Prints one line per shape and a total:
 *   shape MxNxK: X GFLOP/s
 *   total: X GFLOP/s
 * Usage: bench_sgemm THREADS [MxNxK ...]   (default shapes below)
 * Must not: be linked into baton (built by bench/bench_sgemm.sh only).
 */
#include "kernels/backend.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    const char *defaults[] = {"2048x384x384", "2048x1536x384", "2048x384x1536"};
    const char **shapes = argc > 2 ? (const char **)argv + 2 : defaults;
    int nshapes = argc > 2 ? argc - 2 : 3;
    bt_backend *be = bt_backend_cpu_create(threads);
    if (!be) {
        fprintf(stderr, "bench_sgemm: %s\n", bt_errmsg());
        return 1;
    }
    double tflop = 0, tsec = 0;
    for (int s = 0; s < nshapes; s++) {
        int M, N, K;
        if (sscanf(shapes[s], "%dx%dx%d", &M, &N, &K) != 3 || M <= 0 || N <= 0 || K <= 0) {
            fprintf(stderr, "bench_sgemm: bad shape '%s' (want MxNxK)\n", shapes[s]);
            return 2;
        }
        float *x = be->alloc(be, sizeof(float) * (size_t)M * K), *w = be->alloc(be, sizeof(float) * (size_t)N * K);
        float *y = be->alloc(be, sizeof(float) * (size_t)M * N);
        if (!x || !w || !y) { fprintf(stderr, "bench_sgemm: %s\n", bt_errmsg()); return 1; }
        for (size_t i = 0; i < (size_t)M * K; i++) x[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
        for (size_t i = 0; i < (size_t)N * K; i++) w[i] = (float)((i * 40503u) % 1000) * 1e-3f - 0.5f;
        bt_tensor tx = bt_view2(x, BT_F32, BT_DEV_CPU, M, K), tw = bt_view2(w, BT_F32, BT_DEV_CPU, N, K);
        bt_tensor ty = bt_view2(y, BT_F32, BT_DEV_CPU, M, N);
        double flop = 2.0 * M * N * K, best = 1e30;
        be->matmul(be, &tx, 0, &tw, 1, &ty, NULL, 1.0f, 0.0f, BT_EPI_NONE, NULL); /* warm up */
        for (int rep = 0; rep < 3; rep++) {
            int iters = 0;
            double t0 = now(), t;
            do {
                be->matmul(be, &tx, 0, &tw, 1, &ty, NULL, 1.0f, 0.0f, BT_EPI_NONE, NULL);
                iters++;
                t = now() - t0;
            } while (t < 0.3);
            if (t / iters < best) best = t / iters;
        }
        printf("shape %dx%dx%d: %.1f GFLOP/s\n", M, N, K, flop / best * 1e-9);
        tflop += flop;
        tsec += best;
        be->free(be, x); be->free(be, w); be->free(be, y);
    }
    printf("total: %.1f GFLOP/s\n", tflop / tsec * 1e-9);
    be->destroy(be);
    return 0;
}
