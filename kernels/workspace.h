/* kernels/workspace.h — how much scratch ("workspace") memory each backend's
 * ops ask for, and how each backend's scratch buffer grows.
 *
 * Owns: the size of every scratch request of the CPU backend
 * (kernels/cpu/cpu_half.c, cpu_attention.c) and the CUDA backend
 * (kernels/cuda/cuda_ops.cu, cuda_attention.cu, cuda_relattn.cu), as pure functions of the
 * op's shape, and the growth rule of each backend's one scratch buffer. The
 * backends size their requests with these functions and the counting backend
 * (kernels/count_backend.c, `baton plan`) replays the same requests, so the
 * memory plan follows the code instead of a copy of it.
 * Must not: allocate, or know about BERT. Header-only (static inline): C and
 * CUDA (nvcc) include it.
 */
#ifndef BATON_KERNELS_WORKSPACE_H
#define BATON_KERNELS_WORKSPACE_H

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- CPU */

/* Query rows per tile of the CPU attention that recomputes (probs NULL). */
#define BT_CPU_ATT_BQ 64
/* The CPU attention backward reads stored probabilities up to this sequence
 * length (bt_backend.attention_wants_probs): below it the stored-probability
 * kernel is faster (docs/performance.md, "Attention on the CPU"). */
#define BT_CPU_ATT_PROBS_MAX_S 256

/* bt_backend.attention_wants_probs of the CPU backend. */
static inline int bt_ws_cpu_wants_probs(int S, int Dh)
{
    (void)Dh;
    return S <= BT_CPU_ATT_PROBS_MAX_S;
}

/* The scratch buffer holds at least a request, plus 25% (a few growths per run). */
static inline size_t bt_ws_cpu_grow(size_t have, size_t want)
{
    return want <= have ? have : want + want / 4;
}

static inline size_t bt_ws_align16(size_t floats) { return (floats + 15) / 16 * 16; }

/* matmul with 16-bit A/B (F32 ones need none): A and B widened to F32, and
 * C's F32 accumulator when C is 16-bit; na, nb, nc elements. */
static inline size_t bt_ws_cpu_matmul_half(int64_t na, int64_t nb, int64_t nc, int c16)
{
    return sizeof(float) * (size_t)(na + nb + (c16 ? nc : 0) + 48);
}

/* Floats per thread of the attention forward: the score tile [BQ,S] (unless
 * probs are stored), the dropped-out tile [BQ,S] (p > 0), the mask bias and
 * dropout multipliers [S], and for 16-bit qkv the widened q, k, v [S,Dh] and
 * a ctx tile [BQ,Dh]. */
static inline size_t bt_ws_cpu_att_fwd_thread(int S, int Dh, int dropout, int probs, int half)
{
    size_t t = (size_t)BT_CPU_ATT_BQ * (size_t)S;
    size_t f = (probs ? 0 : t) + (dropout ? t : 0) + 2 * (size_t)S;
    if (half) f += 3 * (size_t)S * Dh + (size_t)BT_CPU_ATT_BQ * Dh;
    return bt_ws_align16(f);
}

/* Floats per thread of the attention backward. With stored probs: dP [S,S],
 * the dropped-out P [S,S] (p > 0), multipliers [S]. Recomputing: the score /
 * probability tile, dP and dropped-out tiles [BQ,S] each, bias and
 * multipliers [S]. 16-bit: q, k, v, dctx widened and F32 dq, dk, dv [S,Dh]. */
static inline size_t bt_ws_cpu_att_bwd_thread(int S, int Dh, int dropout, int probs, int half)
{
    size_t f;
    if (probs) f = (size_t)S * S * (dropout ? 2 : 1) + (size_t)S;
    else f = (size_t)BT_CPU_ATT_BQ * (size_t)S * (dropout ? 3 : 2) + 2 * (size_t)S;
    if (half) f += 7 * (size_t)S * Dh;
    return bt_ws_align16(f);
}

/* Bytes of one attention call's scratch: nt threads (at most B*H of them work). */
static inline size_t bt_ws_cpu_attention(int bwd, int B, int S, int H, int Dh, int dropout, int probs, int half,
                                         int nt)
{
    int64_t units = (int64_t)B * H;
    int n = units < nt ? (int)units : nt;
    if (n < 1) n = 1;
    size_t per = bwd ? bt_ws_cpu_att_bwd_thread(S, Dh, dropout, probs, half)
                     : bt_ws_cpu_att_fwd_thread(S, Dh, dropout, probs, half);
    return sizeof(float) * per * (size_t)n;
}

/* ---------------------------------------------------------------- CUDA */

#define BT_CUDA_BG_ROWS 256          /* bias_grad: rows per partial (cuda_ops.cu) */
#define BT_CUDA_LN_RPW 16            /* layernorm_bwd: rows per warp partial */
#define BT_CUDA_SQ_CHUNK 16384       /* sum_squares / all_finite: elements per chunk */
#define BT_CUDA_LT_WORKSPACE ((size_t)32 << 20) /* cuBLASLt workspace, allocated at creation */
#define BT_CUDA_TDESC_BYTES 32       /* sizeof(tdesc) of the global reductions */

static inline size_t bt_ws_cuda_grow(size_t have, size_t want)
{
    return want <= have ? have : want + want / 4 + ((size_t)1 << 20);
}
static inline size_t bt_ws_align256(size_t x) { return (x + 255) & ~(size_t)255; }

static inline size_t bt_ws_cuda_bias_grad(int64_t M, int64_t N)
{
    int64_t nch = (M + BT_CUDA_BG_ROWS - 1) / BT_CUDA_BG_ROWS;
    return sizeof(float) * (size_t)(nch * N);
}
static inline size_t bt_ws_cuda_layernorm_bwd(int64_t R, int64_t D)
{
    int64_t W = (R + BT_CUDA_LN_RPW - 1) / BT_CUDA_LN_RPW;
    return sizeof(float) * (size_t)(W * 2 * D);
}
/* embed_bwd / gather_rows_bwd: keys and values in and out [N] each (the
 * inputs hold the run flags and their scan after the sort), the run starts
 * [N + 2], and CUB's temporary storage (tmp_bytes: the larger of what its
 * radix sort and its scan report; the sort's is always the larger). */
static inline size_t bt_ws_cuda_scatter(int64_t N, size_t tmp_bytes)
{
    return 4 * bt_ws_align256(sizeof(uint32_t) * (size_t)N) + bt_ws_align256(sizeof(int32_t) * (size_t)(N + 2)) +
           bt_ws_align256(tmp_bytes);
}
/* What `baton plan` assumes CUB asks for to sort N (uint32 key, int32 value)
 * pairs: the double buffers of keys and values plus 1 MiB of histograms and
 * look-back state (an upper bound of CUB 1.x/2.x for these sizes; an estimate:
 * the true figure is known only on the GPU). */
static inline size_t bt_ws_cuda_cub_sort_estimate(int64_t N)
{
    return 2 * bt_ws_align256(sizeof(uint32_t) * (size_t)N) + ((size_t)1 << 20);
}
/* softmax_xent: a label count and the row losses (double) */
static inline size_t bt_ws_cuda_xent(int64_t N) { return 256 + sizeof(double) * (size_t)(N ? N : 1); }
/* bce_logits, mse: the row losses (double) */
static inline size_t bt_ws_cuda_rowloss(int64_t N) { return sizeof(double) * (size_t)(N ? N : 1); }
/* sum_squares / all_finite over n_tensors descriptors of desc_bytes each and
 * total_chunks chunks of BT_CUDA_SQ_CHUNK elements */
static inline size_t bt_ws_cuda_reduce(int n_tensors, size_t desc_bytes, int64_t total_chunks)
{
    return bt_ws_align256(desc_bytes * (size_t)n_tensors) + 256 + sizeof(double) * (size_t)total_chunks;
}
/* attention: lse when only probs were asked for (forward), Dvec (backward): [B,H,S] F32 */
static inline size_t bt_ws_cuda_attention_rows(int B, int S, int H) { return sizeof(float) * (size_t)B * H * S; }
/* disentangled attention backward (kernels/cuda/cuda_relattn.cu): dS [B,H,S,S] F32
 * (its forward asks for none) */
static inline size_t bt_ws_cuda_rel_attention_bwd(int B, int S, int H)
{
    return sizeof(float) * (size_t)B * H * S * S;
}

#endif
