/* tests/gpu/ops_bench.c — timings of the CUDA backend's hot ops at BERT-base
 * shapes (run by bench/bench_gpu_ops.sh; needs a GPU).
 *
 * Owns: the measurement loop (warm-up, N timed repetitions between sync()s,
 * wall clock) and the output lines `gpu_<op>_<dtype>: ours X UNIT` that
 * bench/run.sh collects. Must not: check results (tests/gpu/ops_parity.c does).
 * Usage: ops_bench [B] [S]   (default 32 128: BERT-base, H=12, Dh=64, D=768)
 */
#include "kernels/backend.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* kernels/cuda/cuda_identity.cu (linked in directly here, not through dlsym) */
int bt_cuda_impl_identity(int device, bt_gpu_identity *out, size_t size);

void bt_cuda_set_tf32(bt_backend *be, int on);
bt_backend *bt_cuda_impl_create(int device); /* linked statically here, not through the loader */

static bt_backend *G;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
static bt_tensor mk(bt_dtype dt, int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    void *p = G->alloc(G, (size_t)n * bt_dtype_size(dt));
    if (!p) {
        fprintf(stderr, "%s\n", bt_errmsg());
        exit(1);
    }
    return bt_view(p, dt, BT_DEV_CUDA, ndim, shape);
}
#define MK(dt, ...) mk(dt, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]){__VA_ARGS__})
/* seconds per call of the statement */
#define TIME(reps, stmt)                                    \
    ({                                                      \
        for (int _w = 0; _w < 3; _w++) { stmt; }            \
        G->sync(G);                                         \
        double _t0 = now();                                 \
        for (int _r = 0; _r < (reps); _r++) { stmt; }       \
        G->sync(G);                                         \
        (now() - _t0) / (reps);                             \
    })
static const char *dn(bt_dtype d) { return d == BT_F32 ? "f32" : d == BT_F16 ? "f16" : "bf16"; }

int main(int argc, char **argv)
{
    int B = argc > 1 ? atoi(argv[1]) : 32, S = argc > 2 ? atoi(argv[2]) : 128, H = 12, Dh = 64, D = H * Dh;
    int64_t R = (int64_t)B * S;
    G = bt_cuda_impl_create(0);
    if (!G) {
        printf("skip: %s\n", bt_errmsg());
        return 77;
    }
    printf("B=%d S=%d H=%d Dh=%d\n", B, S, H, Dh);
    bt_gpu_identity id; /* BF16 GEMMs need sm_80+: cuBLASLt has no algorithm below */
    int cc = bt_cuda_impl_identity(0, &id, sizeof id) == 0 ? id.cc_major * 10 + id.cc_minor : 0;
    bt_dtype dts[4] = {BT_F32, BT_F32, BT_F16, BT_BF16};
    for (int k = 0; k < 4; k++) {
        bt_dtype dt = dts[k];
        if (dt == BT_BF16 && cc < 80) {
            printf("skip bf16: sm_%d has no bf16 GEMMs (precision = auto never asks for them there)\n", cc);
            continue;
        }
        int tf32 = k == 1;
        bt_cuda_set_tf32(G, tf32);
        const char *name = tf32 ? "tf32" : dn(dt);
        bt_tensor x = MK(dt, R, D), w = MK(dt, 4 * D, D), y = MK(dt, R, 4 * D), pre = MK(dt, R, 4 * D);
        bt_tensor bias = MK(BT_F32, 4 * D);
        double t = TIME(20, G->matmul(G, &x, 0, &w, 1, &y, &bias, 1.0f, 0.0f, BT_EPI_GELU_ERF, &pre));
        printf("gpu_ffn1_gelu_%s: ours %.1f TFLOP/s (%.3f ms)\n", name, 2.0 * R * D * 4 * D / t * 1e-12, t * 1e3);
        if (tf32) { /* the GEMM is all tf32 changes */
            bt_tensor *fr[] = {&x, &w, &y, &pre, &bias};
            for (size_t i = 0; i < sizeof fr / sizeof *fr; i++) G->free(G, fr[i]->data);
            continue;
        }
        bt_tensor qkv = MK(dt, B, S, 3, H, Dh), ctx = MK(dt, B, S, H, Dh), lse = MK(BT_F32, B, H, S);
        bt_tensor dctx = MK(dt, B, S, H, Dh), dqkv = MK(dt, B, S, 3, H, Dh), mask = MK(BT_I32, B, S);
        int32_t *hm = malloc(sizeof(int32_t) * R);
        for (int64_t i = 0; i < R; i++) hm[i] = 1;
        G->upload(G, mask.data, hm, sizeof(int32_t) * R);
        free(hm);
        bt_dropout_key key = {1, 1, 0, 0, BT_SITE_ATTN_PROBS};
        double fl = 4.0 * B * H * (double)S * S * Dh;
        for (int drop = 0; drop < 2; drop++) {
            float p = drop ? 0.1f : 0.0f;
            t = TIME(10, G->attention_fwd(G, &qkv, &mask, B, S, H, Dh, 0.125f, p, key, &ctx, NULL, &lse));
            printf("gpu_attn_fwd%s_%s: ours %.2f TFLOP/s (%.3f ms)\n", drop ? "_drop" : "", name, fl / t * 1e-12, t * 1e3);
            t = TIME(10, G->attention_bwd(G, &qkv, &mask, B, S, H, Dh, 0.125f, p, key, &ctx, NULL, &lse, &dctx, &dqkv));
            printf("gpu_attn_bwd%s_%s: ours %.2f TFLOP/s (%.3f ms)\n", drop ? "_drop" : "", name, 2.5 * fl / t * 1e-12,
                   t * 1e3);
        }
        bt_tensor g = MK(BT_F32, D), b = MK(BT_F32, D), mu = MK(BT_F32, R), rs = MK(BT_F32, R), h = MK(dt, R, D);
        bt_tensor dg = MK(BT_F32, D), db = MK(BT_F32, D);
        size_t es = bt_dtype_size(dt);
        t = TIME(20, G->layernorm_fwd(G, &x, &ctx, &g, &b, 1e-12f, &x, &mu, &rs, &h));
        printf("gpu_layernorm_fwd_%s: ours %.0f GB/s (%.3f ms)\n", name, 4.0 * R * D * es / t * 1e-9, t * 1e3);
        t = TIME(20, G->layernorm_bwd(G, &h, &x, &g, &mu, &rs, &ctx, &dg, &db));
        printf("gpu_layernorm_bwd_%s: ours %.0f GB/s (%.3f ms)\n", name, 3.0 * R * D * es / t * 1e-9, t * 1e3);
        bt_tensor *fr[] = {&x, &w, &y, &pre, &bias, &qkv, &ctx, &lse, &dctx, &dqkv, &mask, &g, &b, &mu, &rs, &h, &dg, &db};
        for (size_t i = 0; i < sizeof fr / sizeof *fr; i++) G->free(G, fr[i]->data);
    }
    int64_t n = 110000000; /* BERT-base parameters */
    bt_tensor p = MK(BT_F32, n), gr = MK(BT_F32, n), m = MK(BT_F32, n), v = MK(BT_F32, n);
    bt_adamw_args a = {2e-5f, 0.9f, 0.999f, 1e-8f, 0.01f, 1.0f, 1};
    double t = TIME(10, G->adamw(G, &p, &gr, &m, &v, &a));
    printf("gpu_adamw_110m: ours %.0f GB/s (%.3f ms)\n", 7.0 * 4 * n / t * 1e-9, t * 1e3);
    t = TIME(10, (void)G->sum_squares(G, &gr, 1));
    printf("gpu_sum_squares_110m: ours %.0f GB/s (%.3f ms)\n", 4.0 * n / t * 1e-9, t * 1e3);
    printf("peak GPU memory: %.0f MiB\n", G->peak_bytes(G) / 1048576.0);
    bt_tensor *fr[] = {&p, &gr, &m, &v};
    for (size_t i = 0; i < sizeof fr / sizeof *fr; i++) G->free(G, fr[i]->data);
    G->destroy(G);
    return 0;
}
