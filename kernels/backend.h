/* kernels/backend.h — the one op interface every compute backend implements.
 *
 * Owns: tensor descriptors (shape, dtype, device), the backend vtable, and the
 * exact semantics of every op (shapes in comments, row-major throughout).
 * Must not: know about BERT, jobs or files. The engine calls ONLY through a
 * bt_backend (never a backend's functions directly), so CPU and CUDA are
 * interchangeable and the CPU backend is the reference for the others.
 *
 * Conventions
 *  - Row-major. A "matrix [M,N]" is M rows of N contiguous elements.
 *  - Parameters, gradients, optimizer state: always F32. Activations may be
 *    F16 or BF16 (mixed precision): every backend, the CPU one included,
 *    stores such a tensor as the 16-bit type, computes in F32 (double where a
 *    reduction says so) and rounds to nearest-even on every store
 *    (kernels/half.h). Which tensors of an op may be 16-bit is said per op;
 *    "float" below means F32, F16 or BF16.
 *  - Integer inputs (token ids, labels, masks) are int32 on the device.
 *  - "accumulate" arguments add into the output (+=) instead of overwriting;
 *    gradient accumulation across micro-batches relies on this.
 *  - Determinism: for a given backend, device model and thread count every op
 *    is bit-reproducible: reductions run in a fixed order; no float atomics.
 *  - Randomness (dropout) is Philox4x32-10, counter-based (kernels/philox.h):
 *    the mask bit for element i is a pure function of (key, i), identical on
 *    every backend, so no mask is ever stored and backward regenerates it.
 */
#ifndef BATON_KERNELS_BACKEND_H
#define BATON_KERNELS_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { BT_F32 = 0, BT_F16 = 1, BT_BF16 = 2, BT_I32 = 3 } bt_dtype;
typedef enum { BT_DEV_CPU = 0, BT_DEV_CUDA = 1 } bt_device;

#define BT_MAX_DIMS 4

/* A view of device memory; never owns it. numel = product of shape[0..ndim). */
typedef struct {
    void *data;
    bt_dtype dtype;
    bt_device device;
    int ndim;
    int64_t shape[BT_MAX_DIMS];
} bt_tensor;

size_t bt_dtype_size(bt_dtype dt);
int64_t bt_numel(const bt_tensor *t);

enum bt_epilogue { BT_EPI_NONE = 0, BT_EPI_GELU_ERF = 1, BT_EPI_GELU_TANH = 2 };
enum bt_act { BT_ACT_GELU_ERF = 1, BT_ACT_GELU_TANH = 2, BT_ACT_RELU = 3, BT_ACT_TANH = 4 };

/* Identifies one dropout site: the mask is a pure function of these fields
 * and the element index (see philox.h: bt_dropout_keep()). */
typedef struct {
    uint64_t seed;
    uint32_t step;   /* optimizer step */
    uint32_t micro;  /* micro-batch within the step */
    uint32_t layer;  /* encoder layer, or a fixed id for embeddings/heads */
    uint32_t site;   /* which dropout inside the layer (BT_SITE_*) */
} bt_dropout_key;

enum bt_dropout_site {
    BT_SITE_EMBED = 1, BT_SITE_ATTN_PROBS = 2, BT_SITE_ATTN_OUT = 3,
    BT_SITE_FFN_OUT = 4, BT_SITE_CLASSIFIER = 5,
    BT_SITE_DOC_CLASSIFIER = 6, /* long documents: the pooled document vector (host, engine/longdoc_model.c) */
    BT_SITE_HEAD_IN = 7,        /* RoBERTa's classification head: <s> before its dense layer (engine/bert.c) */
    BT_SITE_REL_EMB = 8,        /* DeBERTa: the relative embeddings before a layer projects them (engine/bert.c) */
};

/* torch.optim.AdamW semantics for one step t (1-based):
 *   g' = g * grad_scale                       (clip coefficient / loss scale)
 *   p  = p * (1 - lr * weight_decay)
 *   m  = beta1 m + (1 - beta1) g'
 *   v  = beta2 v + (1 - beta2) g'^2
 *   p -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)   */
typedef struct {
    float lr, beta1, beta2, eps, weight_decay, grad_scale;
    int64_t step;
} bt_adamw_args;

/* Sizes and switches of one disentangled (DeBERTa-v2/v3) attention call. */
typedef struct {
    int B, S, H, Dh;
    int R;            /* rows of the projected relative embeddings (2k) */
    int c2p, p2c;     /* 1: add the content-to-position / position-to-content term */
    float scale;      /* 1 / sqrt(Dh * (1 + c2p + p2c)) */
    float p_drop;     /* dropout on the probabilities */
    bt_dropout_key key;
} bt_rel_attn;

typedef struct bt_backend bt_backend;
struct bt_backend {
    const char *name;       /* "cpu", "cuda" */
    bt_device device;
    int host_memory;        /* 1: alloc() returns host memory the caller may read directly (the CPU backend) */
    void *impl;             /* backend-private state */

    /* ---- memory and lifecycle ---- */
    void *(*alloc)(bt_backend *be, size_t bytes);   /* zero-filled; NULL on failure */
    void (*free)(bt_backend *be, void *p);
    void (*upload)(bt_backend *be, void *dst_dev, const void *src_host, size_t bytes);
    void (*download)(bt_backend *be, void *dst_host, const void *src_dev, size_t bytes);
    void (*memset0)(bt_backend *be, void *dst_dev, size_t bytes);
    void (*copy)(bt_backend *be, void *dst_dev, const void *src_dev, size_t bytes);
    void (*sync)(bt_backend *be);
    void (*destroy)(bt_backend *be);
    /* peak bytes allocated through alloc() plus the backend's own scratch
     * (op workspaces, kernels/workspace.h) since creation (0 if not tracked) */
    size_t (*peak_bytes)(bt_backend *be);
    /* Memory of the device: *free_bytes what a new allocation can still get
     * now (CPU: MemAvailable, capped by the cgroup's limit less its usage;
     * CUDA: cudaMemGetInfo), *total_bytes the device's size (CPU: MemTotal
     * or the cgroup limit). 0, or BT_EIO after bt_fail() when unknown. */
    int (*mem_info)(bt_backend *be, size_t *free_bytes, size_t *total_bytes);
    /* CPU: later ops run on n threads (n >= 1; results do not depend on it);
     * n <= 0 changes nothing. Returns the count before the call. NULL where
     * the device has no such setting (CUDA, the counting backend). Call it
     * only while no op of this backend runs (engine/train.c: the replicas'
     * share of runtime.threads, docs/operations.md). */
    int (*set_threads)(bt_backend *be, int n);

    /* ---- device capabilities and GEMM math ---- */
    int sm; /* CUDA compute capability as major*10 + minor (75 = T4); 0 for the CPU */
    /* 1 if every op (matmul included) computes with tensors of dtype dt here:
     * F32 everywhere; F16 on the CPU and every GPU; BF16 on the CPU and sm_80+. */
    int (*dtype_ok)(bt_backend *be, bt_dtype dt);
    /* on = 1: matmuls of F32 operands may round them to TF32 (10-bit
     * mantissa; sums stay F32). Returns 0, or BT_ECONFIG after bt_fail() when
     * the device has no TF32 (the CPU; GPUs before sm_80). on = 0 always works. */
    int (*set_tf32)(bt_backend *be, int on);

    /* ---- dense algebra ---- */
    /* C[M,N] = alpha * op(A) @ op(B) + beta * C, then + bias[N] on every row,
     * then the epilogue. op(A) is [M,K]: A is [M,K] (transA=0) or [K,M]
     * (transA=1); op(B) is [K,N]: B is [K,N] (transB=0) or [N,K] (transB=1).
     * With a GELU epilogue, pre_act [M,N] (if not NULL) receives the value
     * before the activation and C receives gelu(pre_act). bias may be NULL.
     * A linear layer y = x W^T + b (W [out,in] as HF stores it) is
     * matmul(x, 0, W, 1, y, b, 1, 0, epi, pre).
     * Dtypes: A and B share a float dtype; C (and pre_act) is F32 or A's
     * dtype; bias F32. Products of the (exactly widened) inputs are summed in
     * F32, the bias added in F32, and the result rounded once to C's dtype.
     * A 16-bit C with a GELU epilogue: pre_act = round(v), C = round(gelu(pre_act)),
     * i.e. the activation sees the stored (rounded) pre-activation, as torch
     * autocast's separate linear + gelu do. */
    void (*matmul)(bt_backend *be, const bt_tensor *A, int transA, const bt_tensor *B, int transB,
                   bt_tensor *C, const bt_tensor *bias, float alpha, float beta, int epilogue,
                   bt_tensor *pre_act);
    /* dbias[N] (+)= sum over rows of dY[M,N], rows summed in a fixed order.
     * dY float, dbias F32. */
    void (*bias_grad)(bt_backend *be, const bt_tensor *dY, bt_tensor *dbias, int accumulate);

    /* ---- elementwise: all tensors of one call share a float dtype ---- */
    /* y = act(x), same shape. */
    void (*act_fwd)(bt_backend *be, int act, const bt_tensor *x, bt_tensor *y);
    /* dx (+)= dy * act'(x), where x is the activation's INPUT. dx may alias dy. */
    void (*act_bwd)(bt_backend *be, int act, const bt_tensor *x, const bt_tensor *dy,
                    bt_tensor *dx, int accumulate);
    /* y = x * keep / (1 - p) with keep = bt_dropout_keep(key, i, p); in place allowed.
     * p == 0 copies. Backward is the same call on dy. */
    void (*dropout)(bt_backend *be, const bt_tensor *x, bt_tensor *y, float p, bt_dropout_key key);
    /* y = a + b (same shape); y may alias a or b. */
    void (*add)(bt_backend *be, const bt_tensor *a, const bt_tensor *b, bt_tensor *y);
    /* x *= s */
    void (*scale)(bt_backend *be, bt_tensor *x, float s);
    /* dst = src converted between F32/F16/BF16 (same numel), round to
     * nearest-even: bit-identical on every backend. */
    void (*convert)(bt_backend *be, const bt_tensor *src, bt_tensor *dst);

    /* ---- layer norm, fused with the residual add ----
     * h = x + res (res may be NULL: h = x); y = (h - mean) * rstd * gamma + beta
     * over the last dim D of R rows. Saves mean[R], rstd[R] (F32) and, if
     * h_out is not NULL, h [R,D] for the backward. y may alias x.
     * Dtypes: x float; res, y, h_out share one dtype, F32 or x's (mixed
     * precision adds a 16-bit projection x to the F32 residual stream res);
     * gamma, beta F32; statistics in F32 (the CPU: double). */
    void (*layernorm_fwd)(bt_backend *be, const bt_tensor *x, const bt_tensor *res,
                          const bt_tensor *gamma, const bt_tensor *beta, float eps, bt_tensor *y,
                          bt_tensor *mean, bt_tensor *rstd, bt_tensor *h_out);
    /* dh [R,D] = d(LN)/dh given h, dy, gamma, mean, rstd (overwrites dh; it is
     * the gradient for both x and res). dgamma[D], dbeta[D] += (rows in fixed order).
     * Dtypes: h float; dy and dh share one dtype, F32 or h's; the rest F32. */
    void (*layernorm_bwd)(bt_backend *be, const bt_tensor *h, const bt_tensor *dy,
                          const bt_tensor *gamma, const bt_tensor *mean, const bt_tensor *rstd,
                          bt_tensor *dh, bt_tensor *dgamma, bt_tensor *dbeta);

    /* ---- attention (multi-head, key-padding mask, dropout on probabilities) ----
     * qkv [B,S,3,H,Dh]: per token the query, key and value projections laid out
     * q|k|v, each [H,Dh]. mask [B,S] int32: 1 = real token, 0 = padding key.
     * ctx [B,S,H,Dh] = softmax(q k^T * scale + maskbias) (dropped out) @ v,
     * maskbias = -inf-like for padding keys (as HF: finfo(f32).min added).
     * probs [B,H,S,S] (may be NULL): receives the (pre-dropout) probabilities
     * for a backward that reads them; lse [B,H,S] (may be NULL in inference):
     * the log-sum-exp of each query row, all a recomputing backward needs.
     * Whether to keep probs is the caller's choice, from attention_wants_probs;
     * either way ctx is the same. A row whose keys are all padding gets
     * P = 1/S (as torch) and lse = -FLT_MAX.
     * Dtypes: qkv, ctx (and in the backward dctx, dqkv) share a float dtype;
     * probs, lse F32. Scores, softmax and both products run in F32 on the
     * widened q, k, v; ctx and dqkv are rounded once when stored. */
    void (*attention_fwd)(bt_backend *be, const bt_tensor *qkv, const bt_tensor *mask, int B, int S,
                          int H, int Dh, float scale, float p_drop, bt_dropout_key key,
                          bt_tensor *ctx, bt_tensor *probs, bt_tensor *lse);
    /* dqkv [B,S,3,H,Dh] (overwritten) from dctx [B,S,H,Dh] and what the forward
     * saved: probs when given (read back), else lse (the scores are recomputed
     * from qkv, the dropout mask regenerated: no [B,H,S,S] anywhere). ctx may
     * be needed (CUDA: rowsum(P dP) = dctx . ctx). The two ways agree within
     * float rounding (F32: 1e-5 relative, tests/unit/test_ops_attention.c). */
    void (*attention_bwd)(bt_backend *be, const bt_tensor *qkv, const bt_tensor *mask, int B, int S,
                          int H, int Dh, float scale, float p_drop, bt_dropout_key key,
                          const bt_tensor *ctx, const bt_tensor *probs, const bt_tensor *lse,
                          const bt_tensor *dctx, bt_tensor *dqkv);
    /* 1 if attention_bwd at sequence length S and head dim Dh is faster with
     * the forward's probs kept (the caller then keeps B*H*S*S floats per layer);
     * 0 if it should recompute from lse (CUDA: always). Monotone in S: once 0,
     * 0 for every longer S. */
    int (*attention_wants_probs)(bt_backend *be, int S, int Dh);

    /* ---- disentangled attention (DeBERTa-v2/v3; may be NULL: the backend
     * has none, and the engine refuses such models on it) ----
     * qkv [B,S,3,H,Dh] as attention_fwd. pos [R,3,H,Dh]: the relative
     * embeddings through the same q|k|v projection (pq = its q part, pk its
     * k part; the v part is not read). relidx int32 [2S-1]: query i and key j
     * use row r = relidx[i - j + S - 1] (in [0,R)). With a = *args:
     *   s[i,j] = scale (q_i.k_j + c2p q_i.pk_r + p2c k_j.pq_r) + maskbias_j
     * (maskbias as attention_fwd: -FLT_MAX for padding keys); P = row softmax;
     * a padding QUERY row (mask[b,i] == 0) gets P = 0 and ctx 0 (HF's
     * XSoftmax over mask_i * mask_j). ctx_i = sum_j Pd[i,j] v_j with Pd = P
     * keep / (1 - p), keep from Philox at the flat index into [B,H,S,S].
     * probs [B,H,S,S] F32 receives P (NULL allowed in inference only).
     * Dtypes: qkv, pos, ctx (dctx, dqkv, dpos) share a float dtype; math F32. */
    void (*rel_attention_fwd)(bt_backend *be, const bt_tensor *qkv, const bt_tensor *pos,
                              const bt_tensor *relidx, const bt_tensor *mask, const bt_rel_attn *a,
                              bt_tensor *ctx, bt_tensor *probs);
    /* dqkv [B,S,3,H,Dh] and dpos [R,3,H,Dh] (both overwritten; dpos's v part
     * 0) from dctx [B,S,H,Dh] and the forward's probs:
     *   dV = Pd^T dctx, dP = (dctx v^T) keep/(1-p), dS = P (dP - rowsum(P dP)),
     *   dq_i = scale sum_j dS_ij (k_j + c2p pk_r), dk_j = scale sum_i dS_ij (q_i + p2c pq_r),
     *   dpk_r = scale c2p sum dS_ij q_i, dpq_r = scale p2c sum dS_ij k_j
     * over the (b, i, j) with r(i,j) = r, summed per head in a fixed order
     * (b ascending; within b as the per-row products), independent of the
     * thread count. */
    void (*rel_attention_bwd)(bt_backend *be, const bt_tensor *qkv, const bt_tensor *pos,
                              const bt_tensor *relidx, const bt_tensor *mask, const bt_rel_attn *a,
                              const bt_tensor *probs, const bt_tensor *dctx, bt_tensor *dqkv, bt_tensor *dpos);

    /* ---- embeddings (tables and their gradients F32; out / dout float) ----
     * out[N,D] = word[ids[i]] + pos[pos_ids[i]] + type[type_ids[i]] (ids int32 [N]). */
    void (*embed_fwd)(bt_backend *be, const bt_tensor *ids, const bt_tensor *pos_ids,
                      const bt_tensor *type_ids, const bt_tensor *word, const bt_tensor *pos,
                      const bt_tensor *type, bt_tensor *out);
    /* dword/dpos/dtype += scatter of dout [N,D] by id, summed per row in
     * ascending i (no float atomics). Rows whose word id == pad_id get no
     * gradient (nn.Embedding padding_idx); pad_id < 0 disables that.
     * Any of dword/dpos/dtype may be NULL (frozen). */
    void (*embed_bwd)(bt_backend *be, const bt_tensor *ids, const bt_tensor *pos_ids,
                      const bt_tensor *type_ids, const bt_tensor *dout, int pad_id,
                      bt_tensor *dword, bt_tensor *dpos, bt_tensor *dtype);

    /* ---- row gather (CLS pooling, token selection) ----
     * out[n,D] = src[rows[n],D]; backward: dsrc[rows[n]] += dout[n] (ascending n).
     * src and out share a float dtype; dout float, dsrc F32. */
    void (*gather_rows)(bt_backend *be, const bt_tensor *src, const bt_tensor *rows, bt_tensor *out);
    void (*gather_rows_bwd)(bt_backend *be, const bt_tensor *dout, const bt_tensor *rows,
                            bt_tensor *dsrc);

    /* ---- losses: each writes the mean loss to loss[0] (F32 device scalar) and
     * dlogits = grad_scale * d(loss)/d(logits) (overwritten). logits and
     * dlogits share a float dtype; targets and loss F32; math in F32, row
     * losses summed in double. grad_scale carries 1/accumulation steps and
     * the fp16 loss scale. ----
     * softmax cross-entropy: logits [N,C], labels int32 [N], label -100 ignored,
     * mean over non-ignored rows (0 if none). */
    void (*softmax_xent)(bt_backend *be, const bt_tensor *logits, const bt_tensor *labels,
                         float grad_scale, bt_tensor *loss, bt_tensor *dlogits);
    /* BCE with logits, multi-label: logits [N,C], targets F32 [N,C], mean over N*C. */
    void (*bce_logits)(bt_backend *be, const bt_tensor *logits, const bt_tensor *targets,
                       float grad_scale, bt_tensor *loss, bt_tensor *dlogits);
    /* mean squared error: pred [N,C], target F32 [N,C], mean over N*C. */
    void (*mse)(bt_backend *be, const bt_tensor *pred, const bt_tensor *target, float grad_scale,
                bt_tensor *loss, bt_tensor *dpred);

    /* ---- optimizer and gradient checks ---- */
    /* One AdamW step over p,g,m,v [n] (F32), see bt_adamw_args. */
    void (*adamw)(bt_backend *be, bt_tensor *p, const bt_tensor *g, bt_tensor *m, bt_tensor *v,
                  const bt_adamw_args *a);
    /* Sum of squares of all elements of ts[0..n) (float tensors), in double,
     * tensors in order, elements in a fixed order; returns the host value
     * (synchronises). A non-finite element makes the result non-finite. */
    double (*sum_squares)(bt_backend *be, const bt_tensor *ts, int n);
    /* 1 if every element of ts[0..n) is finite (synchronises). */
    int (*all_finite)(bt_backend *be, const bt_tensor *ts, int n);

    /* ---- data parallelism (runtime.devices; engine/train.h "Replicas") ----
     * One collective over the backends bes[0..n) (n >= 2, distinct, all of
     * this kind, bes[0] == be: one per device) and bufs[i], F32 [count] on
     * bes[i], ordered after every op already issued to each backend:
     *  BT_COLL_SUM   bufs[0] = ((bufs[0] + bufs[1]) + bufs[2]) ... elementwise;
     *                the other buffers' contents are unspecified afterwards.
     *                With n = 2 the sum is one rounding of a + b, the same bits
     *                everywhere; for n > 2 a backend may add in another order
     *                (NCCL: by its ring/tree chunks), which it documents.
     *  BT_COLL_BCAST bufs[i] = bufs[0] for every i.
     *  BT_COLL_SUM | BT_COLL_ASYNC
     *                the same sum, of one bucket of the gradients while the
     *                backends go on computing (engine/train.c: the bucketed
     *                sum, overlapped with the backward): NCCL runs it on a
     *                stream of each device's own, after what that device was
     *                given so far, beside what it is given next. Until
     *                BT_COLL_JOIN, nothing may read bufs[0] or write any
     *                bufs[i]. The call may come from any thread, one at a
     *                time (the trainer holds a lock).
     *  BT_COLL_JOIN  every op issued to bes[i] after this one waits for the
     *                ASYNC sums issued before it (bufs and count unused).
     * bufs NULL (count 0): only prepare (NCCL's communicators), so that what
     * is missing is known before the first step. 0, or a BT_E* code after
     * bt_fail() saying why (e.g. no NCCL). NULL: the backend has none, and the
     * trainer goes through host memory (engine/train.c). */
    int (*collective)(bt_backend *be, bt_backend *const *bes, int n, float *const *bufs, size_t count, int op);
};

enum bt_collective_op { BT_COLL_SUM = 1, BT_COLL_BCAST = 2, BT_COLL_JOIN = 3, BT_COLL_ASYNC = 0x10 };

/* Constructors. On failure they return NULL after bt_fail() explains why. */
bt_backend *bt_backend_cpu_create(int threads);   /* threads <= 0: OpenMP default */
bt_backend *bt_backend_cuda_create(int device);   /* NULL when built without CUDA */

/* The counting backend (kernels/count_backend.c) for `baton plan`: alloc()
 * hands out address space that is never touched (PROT_NONE), every op
 * computes nothing and only replays the scratch requests the modelled
 * backend would make (kernels/workspace.h), so peak_bytes() is the peak a
 * real run of the same op sequence reaches on that device. */
typedef enum { BT_COUNT_CPU = 0, BT_COUNT_CUDA = 1 } bt_count_family;
typedef struct {
    bt_count_family family;
    int sm;              /* CUDA compute capability (dtype_ok, set_tf32 as that GPU) */
    int threads;         /* CPU: the thread count the scratch is sized for */
    size_t granularity;  /* every allocation rounded up to this (0: exact bytes) */
    size_t total_bytes;  /* what mem_info reports as the device's size */
} bt_count_profile;
bt_backend *bt_backend_count_create(const bt_count_profile *p);

/* Prints one line per compiled-in backend (for `baton version`). */
void bt_backends_describe(FILE *f);
/* `baton doctor`: what the GPU backend library sees (driver, runtime,
 * cuBLASLt, GPUs and whether it has code for each). Returns the number of
 * GPUs it can train on; when 0, why[0..cap) says why not. */
int bt_backend_cuda_doctor(FILE *f, char *why, size_t cap);

/* Who a CUDA backend would run on: what the first-contact self-check
 * remembers (runner/selftest.h) and `baton doctor` shows. Filled by
 * bt_cuda_impl_identity of the GPU backend library (kernels/cuda/cuda_identity.cu),
 * except library, which the loader fills. */
typedef struct {
    char gpu[128];          /* device name, e.g. "NVIDIA H200" */
    int cc_major, cc_minor; /* compute capability */
    int sms;                /* multiprocessors */
    double mem_gib;         /* device memory */
    int cuda_driver;        /* CUDA driver API version (12060 = 12.6), 0: none */
    int cuda_runtime;       /* CUDA runtime the backend library was built with */
    char cublaslt[32];      /* cuBLASLt version it loaded ("13.0.2"), "" if none */
    char library[4096];     /* path of the GPU backend library */
} bt_gpu_identity;
/* 0 and *out filled, or BT_E* after bt_fail() (no library, no such GPU, a
 * library too old to say). Creates no backend. */
int bt_backend_cuda_identity(int device, bt_gpu_identity *out);

/* Convenience constructor of a tensor view. */
bt_tensor bt_view(void *data, bt_dtype dt, bt_device dev, int ndim, const int64_t *shape);
bt_tensor bt_view2(void *data, bt_dtype dt, bt_device dev, int64_t d0, int64_t d1);
bt_tensor bt_view1(void *data, bt_dtype dt, bt_device dev, int64_t d0);

#endif
