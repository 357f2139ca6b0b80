/* kernels/count_backend.c — the counting backend: a bt_backend that computes
 * nothing and counts the memory a real backend would hold (`baton plan`).
 *
 * Owns: bt_backend_count_create(). alloc() reserves address space that is
 * never readable (mmap PROT_NONE, MAP_NORESERVE: a stray access by the
 * engine faults at once instead of reading garbage) and counts its size,
 * rounded to the profile's granularity; free() uncounts it. Every op checks
 * nothing and writes nothing, except that it replays the scratch request the
 * modelled backend makes for that op (kernels/workspace.h: the CPU backend's
 * 16-bit GEMM and attention buffers, the CUDA backend's partial sums, sort
 * buffers, row losses, attention rows) and grows a modelled scratch buffer by
 * that backend's rule, so peak_bytes() is what the real backend's
 * peak_bytes() reports after the same op sequence. download() writes zeros,
 * sum_squares() returns 0 and all_finite() 1, so an engine step runs through.
 * What the real backends allocate outside alloc() at creation (cuBLASLt's
 * workspace) and the CUDA context are not counted here: runner/plan.c adds them.
 * Must not: compute, or touch the memory it hands out.
 */
#include "kernels/backend.h"
#include "kernels/workspace.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

typedef struct {
    bt_count_profile p;
    size_t cur, peak;
    size_t scratch; /* the modelled backend's scratch buffer */
    int tf32;
} count_impl;

static count_impl *ci(bt_backend *be) { return (count_impl *)be->impl; }

static void count_add(count_impl *im, size_t bytes)
{
    im->cur += bytes;
    if (im->cur > im->peak) im->peak = im->cur;
}

/* Blocks are [header page | PROT_NONE reservation]: the header holds the
 * counted size; the pointer handed out is past it. */
#define HDR 4096

static size_t rounded(const count_impl *im, size_t bytes)
{
    size_t g = im->p.granularity;
    if (im->p.family == BT_COUNT_CUDA && bytes == 0) bytes = 1; /* cudaMalloc(0) is given 1 byte by cu_alloc */
    return g ? (bytes + g - 1) / g * g : bytes;
}

static void *c_alloc(bt_backend *be, size_t bytes)
{
    count_impl *im = ci(be);
    size_t n = rounded(im, bytes), len = HDR + (bytes ? bytes : 1);
    char *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        bt_fail(BT_EINTERNAL, "counting backend: cannot reserve %zu bytes of address space", len);
        return NULL;
    }
    if (mprotect(p, HDR, PROT_READ | PROT_WRITE) != 0) {
        munmap(p, len);
        bt_fail(BT_EINTERNAL, "counting backend: mprotect failed");
        return NULL;
    }
    ((size_t *)p)[0] = n;
    ((size_t *)p)[1] = len;
    count_add(im, n);
    return p + HDR;
}

static void c_free(bt_backend *be, void *ptr)
{
    if (!ptr) return;
    char *p = (char *)ptr - HDR;
    ci(be)->cur -= ((size_t *)p)[0];
    munmap(p, ((size_t *)p)[1]);
}

/* The modelled backend grows its one scratch buffer to hold a request. */
static void want_scratch(bt_backend *be, size_t bytes)
{
    count_impl *im = ci(be);
    size_t next = im->p.family == BT_COUNT_CPU ? bt_ws_cpu_grow(im->scratch, bytes) : bt_ws_cuda_grow(im->scratch, bytes);
    if (next == im->scratch) return;
    count_add(im, next - im->scratch);
    im->scratch = next;
}
static int is_cpu(bt_backend *be) { return ci(be)->p.family == BT_COUNT_CPU; }

static void c_upload(bt_backend *be, void *d, const void *s, size_t n) { (void)be; (void)d; (void)s; (void)n; }
static void c_download(bt_backend *be, void *d, const void *s, size_t n) { (void)be; (void)s; memset(d, 0, n); }
static void c_memset0(bt_backend *be, void *d, size_t n) { (void)be; (void)d; (void)n; }
static void c_copy(bt_backend *be, void *d, const void *s, size_t n) { (void)be; (void)d; (void)s; (void)n; }
static void c_sync(bt_backend *be) { (void)be; }
static size_t c_peak(bt_backend *be) { return ci(be)->peak; }

static void c_destroy(bt_backend *be)
{
    if (!be) return;
    free(be->impl);
    free(be);
}

static int c_mem_info(bt_backend *be, size_t *free_bytes, size_t *total_bytes)
{
    count_impl *im = ci(be);
    *total_bytes = im->p.total_bytes;
    *free_bytes = im->p.total_bytes > im->cur ? im->p.total_bytes - im->cur : 0;
    return 0;
}

static int c_dtype_ok(bt_backend *be, bt_dtype dt)
{
    if (dt == BT_F32 || dt == BT_F16) return 1;
    return dt == BT_BF16 && (is_cpu(be) || be->sm >= 80);
}

static int c_set_tf32(bt_backend *be, int on)
{
    if (on && (is_cpu(be) || be->sm < 80)) {
        if (is_cpu(be)) return bt_fail(BT_ECONFIG, "the CPU backend has no TF32 mode");
        return bt_fail(BT_ECONFIG, "TF32 needs an sm_80+ GPU (this one is sm_%d)", be->sm);
    }
    ci(be)->tf32 = on;
    return 0;
}

static int c_wants_probs(bt_backend *be, int S, int Dh)
{
    return is_cpu(be) ? bt_ws_cpu_wants_probs(S, Dh) : 0; /* CUDA: always recomputes */
}

static int64_t rows_of(const bt_tensor *t)
{
    int64_t c = t->ndim ? t->shape[t->ndim - 1] : 1;
    return c ? bt_numel(t) / c : 0;
}
static int64_t cols_of(const bt_tensor *t) { return t->ndim ? t->shape[t->ndim - 1] : 1; }

static void c_matmul(bt_backend *be, const bt_tensor *A, int transA, const bt_tensor *B, int transB, bt_tensor *C,
                     const bt_tensor *bias, float alpha, float beta, int epilogue, bt_tensor *pre_act)
{
    (void)transA; (void)transB; (void)bias; (void)alpha; (void)beta; (void)epilogue; (void)pre_act;
    if (is_cpu(be) && A->dtype != BT_F32)
        want_scratch(be, bt_ws_cpu_matmul_half(bt_numel(A), bt_numel(B), bt_numel(C), C->dtype != BT_F32));
}

static void c_bias_grad(bt_backend *be, const bt_tensor *dY, bt_tensor *dbias, int accumulate)
{
    (void)dbias; (void)accumulate;
    int64_t M = rows_of(dY), N = cols_of(dY);
    if (!is_cpu(be) && N > 0 && M > 0) want_scratch(be, bt_ws_cuda_bias_grad(M, N));
}

static void c_act_fwd(bt_backend *be, int act, const bt_tensor *x, bt_tensor *y) { (void)be; (void)act; (void)x; (void)y; }
static void c_act_bwd(bt_backend *be, int act, const bt_tensor *x, const bt_tensor *dy, bt_tensor *dx, int acc)
{
    (void)be; (void)act; (void)x; (void)dy; (void)dx; (void)acc;
}
static void c_dropout(bt_backend *be, const bt_tensor *x, bt_tensor *y, float p, bt_dropout_key key)
{
    (void)be; (void)x; (void)y; (void)p; (void)key;
}
static void c_add(bt_backend *be, const bt_tensor *a, const bt_tensor *b, bt_tensor *y) { (void)be; (void)a; (void)b; (void)y; }
static void c_scale(bt_backend *be, bt_tensor *x, float s) { (void)be; (void)x; (void)s; }
static void c_convert(bt_backend *be, const bt_tensor *s, bt_tensor *d) { (void)be; (void)s; (void)d; }

static void c_ln_fwd(bt_backend *be, const bt_tensor *x, const bt_tensor *res, const bt_tensor *g, const bt_tensor *b,
                     float eps, bt_tensor *y, bt_tensor *mean, bt_tensor *rstd, bt_tensor *h)
{
    (void)be; (void)x; (void)res; (void)g; (void)b; (void)eps; (void)y; (void)mean; (void)rstd; (void)h;
}

static void c_ln_bwd(bt_backend *be, const bt_tensor *h, const bt_tensor *dy, const bt_tensor *g, const bt_tensor *mean,
                     const bt_tensor *rstd, bt_tensor *dh, bt_tensor *dg, bt_tensor *db)
{
    (void)dy; (void)g; (void)mean; (void)rstd; (void)dh; (void)dg; (void)db;
    int64_t R = rows_of(h), D = cols_of(h);
    if (!is_cpu(be) && R && D) want_scratch(be, bt_ws_cuda_layernorm_bwd(R, D));
}

static void c_att_fwd(bt_backend *be, const bt_tensor *qkv, const bt_tensor *mask, int B, int S, int H, int Dh,
                      float scale, float p, bt_dropout_key key, bt_tensor *ctx, bt_tensor *probs, bt_tensor *lse)
{
    (void)mask; (void)scale; (void)key; (void)ctx;
    if (is_cpu(be))
        want_scratch(be, bt_ws_cpu_attention(0, B, S, H, Dh, p > 0.0f, probs != NULL, qkv->dtype != BT_F32,
                                             ci(be)->p.threads));
    else if (!lse && probs)
        want_scratch(be, bt_ws_cuda_attention_rows(B, S, H));
}

static void c_att_bwd(bt_backend *be, const bt_tensor *qkv, const bt_tensor *mask, int B, int S, int H, int Dh,
                      float scale, float p, bt_dropout_key key, const bt_tensor *ctx, const bt_tensor *probs,
                      const bt_tensor *lse, const bt_tensor *dctx, bt_tensor *dqkv)
{
    (void)mask; (void)scale; (void)key; (void)ctx; (void)lse; (void)dctx; (void)dqkv;
    if (is_cpu(be))
        want_scratch(be, bt_ws_cpu_attention(1, B, S, H, Dh, p > 0.0f, probs != NULL, qkv->dtype != BT_F32,
                                             ci(be)->p.threads));
    else
        want_scratch(be, bt_ws_cuda_attention_rows(B, S, H));
}

/* DeBERTa's disentangled attention: the CUDA backward's dS buffer; the CPU
 * backend's per-thread row buffers are malloc'd outside its scratch (not in
 * its peak_bytes either: kernels/cpu/cpu_relattn.c). */
static void c_rel_att_fwd(bt_backend *be, const bt_tensor *qkv, const bt_tensor *pos, const bt_tensor *relidx,
                          const bt_tensor *mask, const bt_rel_attn *a, bt_tensor *ctx, bt_tensor *probs)
{
    (void)be; (void)qkv; (void)pos; (void)relidx; (void)mask; (void)a; (void)ctx; (void)probs;
}
static void c_rel_att_bwd(bt_backend *be, const bt_tensor *qkv, const bt_tensor *pos, const bt_tensor *relidx,
                          const bt_tensor *mask, const bt_rel_attn *a, const bt_tensor *probs,
                          const bt_tensor *dctx, bt_tensor *dqkv, bt_tensor *dpos)
{
    (void)qkv; (void)pos; (void)relidx; (void)mask; (void)probs; (void)dctx; (void)dqkv; (void)dpos;
    if (!is_cpu(be)) want_scratch(be, bt_ws_cuda_rel_attention_bwd(a->B, a->S, a->H));
}

/* The CUDA backend's embedding and gather backward sorts N row indices. */
static void scatter(bt_backend *be, int64_t N, int64_t D)
{
    if (!is_cpu(be) && N && D) want_scratch(be, bt_ws_cuda_scatter(N, bt_ws_cuda_cub_sort_estimate(N)));
}

static void c_embed_fwd(bt_backend *be, const bt_tensor *ids, const bt_tensor *pos, const bt_tensor *type,
                        const bt_tensor *w, const bt_tensor *p, const bt_tensor *t, bt_tensor *out)
{
    (void)be; (void)ids; (void)pos; (void)type; (void)w; (void)p; (void)t; (void)out;
}

static void c_embed_bwd(bt_backend *be, const bt_tensor *ids, const bt_tensor *pos_ids, const bt_tensor *type_ids,
                        const bt_tensor *dout, int pad_id, bt_tensor *dword, bt_tensor *dpos, bt_tensor *dtype)
{
    (void)ids; (void)pad_id;
    int64_t N = rows_of(dout), D = cols_of(dout);
    if (dword) scatter(be, N, D);
    if (dpos && pos_ids) scatter(be, N, D);
    if (dtype && type_ids) scatter(be, N, D);
}

static void c_gather(bt_backend *be, const bt_tensor *src, const bt_tensor *rows, bt_tensor *out)
{
    (void)be; (void)src; (void)rows; (void)out;
}
static void c_gather_bwd(bt_backend *be, const bt_tensor *dout, const bt_tensor *rows, bt_tensor *dsrc)
{
    (void)rows; (void)dsrc;
    scatter(be, rows_of(dout), cols_of(dout));
}

static void c_loss(bt_backend *be, int64_t N, int xent)
{
    if (!is_cpu(be)) want_scratch(be, xent ? bt_ws_cuda_xent(N) : bt_ws_cuda_rowloss(N));
}
static void c_xent(bt_backend *be, const bt_tensor *lg, const bt_tensor *lab, float gs, bt_tensor *loss, bt_tensor *d)
{
    (void)lab; (void)gs; (void)loss; (void)d;
    c_loss(be, rows_of(lg), 1);
}
static void c_bce(bt_backend *be, const bt_tensor *lg, const bt_tensor *t, float gs, bt_tensor *loss, bt_tensor *d)
{
    (void)t; (void)gs; (void)loss; (void)d;
    c_loss(be, rows_of(lg), 0);
}
static void c_mse(bt_backend *be, const bt_tensor *pr, const bt_tensor *t, float gs, bt_tensor *loss, bt_tensor *d)
{
    (void)t; (void)gs; (void)loss; (void)d;
    c_loss(be, rows_of(pr), 0);
}

static void c_adamw(bt_backend *be, bt_tensor *p, const bt_tensor *g, bt_tensor *m, bt_tensor *v, const bt_adamw_args *a)
{
    (void)be; (void)p; (void)g; (void)m; (void)v; (void)a;
}

static void c_reduce(bt_backend *be, const bt_tensor *ts, int n)
{
    if (is_cpu(be)) return;
    int64_t total = 0;
    int m = 0;
    for (int t = 0; t < n; t++) {
        int64_t k = (bt_numel(&ts[t]) + BT_CUDA_SQ_CHUNK - 1) / BT_CUDA_SQ_CHUNK;
        if (k) { total += k; m++; }
    }
    if (total) want_scratch(be, bt_ws_cuda_reduce(m, BT_CUDA_TDESC_BYTES, total));
}
static double c_sum_squares(bt_backend *be, const bt_tensor *ts, int n) { c_reduce(be, ts, n); return 0.0; }
static int c_all_finite(bt_backend *be, const bt_tensor *ts, int n) { c_reduce(be, ts, n); return 1; }

bt_backend *bt_backend_count_create(const bt_count_profile *p)
{
    bt_backend *be = calloc(1, sizeof *be);
    count_impl *im = calloc(1, sizeof *im);
    if (!be || !im) {
        free(be);
        free(im);
        bt_fail(BT_EINTERNAL, "counting backend: out of memory");
        return NULL;
    }
    im->p = *p;
    if (im->p.threads < 1) im->p.threads = 1;
    be->name = p->family == BT_COUNT_CPU ? "count:cpu" : "count:cuda";
    be->device = p->family == BT_COUNT_CPU ? BT_DEV_CPU : BT_DEV_CUDA;
    be->impl = im;
    be->sm = p->family == BT_COUNT_CPU ? 0 : p->sm;
    be->alloc = c_alloc; be->free = c_free; be->upload = c_upload; be->download = c_download;
    be->memset0 = c_memset0; be->copy = c_copy; be->sync = c_sync; be->destroy = c_destroy;
    be->peak_bytes = c_peak; be->mem_info = c_mem_info;
    be->dtype_ok = c_dtype_ok; be->set_tf32 = c_set_tf32;
    be->matmul = c_matmul; be->bias_grad = c_bias_grad;
    be->act_fwd = c_act_fwd; be->act_bwd = c_act_bwd; be->dropout = c_dropout; be->add = c_add;
    be->scale = c_scale; be->convert = c_convert;
    be->layernorm_fwd = c_ln_fwd; be->layernorm_bwd = c_ln_bwd;
    be->attention_fwd = c_att_fwd; be->attention_bwd = c_att_bwd;
    be->attention_wants_probs = c_wants_probs; /* as the modelled backend decides */
    be->rel_attention_fwd = c_rel_att_fwd; be->rel_attention_bwd = c_rel_att_bwd;
    be->embed_fwd = c_embed_fwd; be->embed_bwd = c_embed_bwd;
    be->gather_rows = c_gather; be->gather_rows_bwd = c_gather_bwd;
    be->softmax_xent = c_xent; be->bce_logits = c_bce; be->mse = c_mse;
    be->adamw = c_adamw; be->sum_squares = c_sum_squares; be->all_finite = c_all_finite;
    return be;
}
