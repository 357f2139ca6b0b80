/* kernels/philox.h — Philox4x32-10, the only source of randomness in baton.
 *
 * Owns: the counter-based generator and how every random stream derives its
 * key and counter, so that a draw is a pure function of (seed, stream,
 * coordinates). Header-only and usable from C and CUDA (host and device), so
 * the CPU and GPU produce the same dropout masks, bit for bit.
 * Reference: Salmon et al., "Parallel random numbers: as easy as 1, 2, 3"
 * (SC'11); constants from the paper (as also used by Random123 and cuRAND).
 *
 * Streams (the high byte of the counter's word 3):
 *   BT_STREAM_DATA_ORDER  counter = (epoch, draw index)
 *   BT_STREAM_DROPOUT     counter = (step, micro, layer/site/high bits, element/4)
 *   BT_STREAM_MLM_MASK    counter = (epoch or 0xFFFFFFFF for eval, example, draw)
 *   BT_STREAM_HEAD_INIT   counter = (tensor id, element/4)
 *   BT_STREAM_EVAL_SPLIT  counter = (label group, draw index)
 */
#ifndef BATON_KERNELS_PHILOX_H
#define BATON_KERNELS_PHILOX_H

#include <stdint.h>

#ifdef __CUDACC__
#define BT_HD __host__ __device__ __forceinline__
#else
#define BT_HD static inline
#endif

enum bt_stream {
    BT_STREAM_DATA_ORDER = 1,
    BT_STREAM_DROPOUT = 2,
    BT_STREAM_MLM_MASK = 3,
    BT_STREAM_HEAD_INIT = 4,
    BT_STREAM_LONGDOC_BUILD = 5, /* composing test/benchmark documents */
    BT_STREAM_EVAL_SPLIT = 6,    /* [data] eval_split: which training examples are held out */
};

typedef struct { uint32_t v[4]; } bt_u32x4;

BT_HD uint32_t bt_mulhilo32(uint32_t a, uint32_t b, uint32_t *hi)
{
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

/* Philox4x32 with 10 rounds: ctr (128 bits) under key (64 bits). */
BT_HD bt_u32x4 bt_philox4x32_10(bt_u32x4 ctr, uint64_t key64)
{
    uint32_t k0 = (uint32_t)key64, k1 = (uint32_t)(key64 >> 32);
    for (int r = 0; r < 10; r++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = bt_mulhilo32(0xD2511F53u, ctr.v[0], &hi0);
        uint32_t lo1 = bt_mulhilo32(0xCD9E8D57u, ctr.v[2], &hi1);
        bt_u32x4 n;
        n.v[0] = hi1 ^ ctr.v[1] ^ k0;
        n.v[1] = lo1;
        n.v[2] = hi0 ^ ctr.v[3] ^ k1;
        n.v[3] = lo0;
        ctr = n;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return ctr;
}

/* Four 32-bit draws for counter (a, b, c, d) of a stream; d's high byte is
 * replaced by the stream id, so d must stay below 2^24. */
BT_HD bt_u32x4 bt_random4(uint64_t seed, int stream, uint32_t a, uint32_t b, uint32_t c, uint32_t d)
{
    bt_u32x4 ctr;
    ctr.v[0] = a;
    ctr.v[1] = b;
    ctr.v[2] = c;
    ctr.v[3] = (d & 0x00FFFFFFu) | ((uint32_t)stream << 24);
    return bt_philox4x32_10(ctr, seed);
}

/* Uniform float in [0, 1) with 24 bits of resolution. */
BT_HD float bt_u01(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

/* Dropout: element i of a site is kept iff its uniform draw >= p.
 * counter = (step, micro, hi8(i/4)<<24 | layer<<8 | site, lo24(i/4)), draw i%4.
 * Valid for layer < 2^16 and numel per site < 2^34. */
BT_HD int bt_dropout_keep_raw(uint64_t seed, uint32_t step, uint32_t micro, uint32_t layer,
                              uint32_t site, uint64_t i, float p)
{
    uint64_t q = i >> 2;
    uint32_t c = ((uint32_t)(q >> 24) << 24) | ((layer & 0xFFFFu) << 8) | (site & 0xFFu);
    bt_u32x4 r = bt_random4(seed, BT_STREAM_DROPOUT, step, micro, c, (uint32_t)q);
    return bt_u01(r.v[i & 3]) >= p;
}

/* Standard normal pair by Box-Muller from two uniforms (host use: head init). */
#ifndef __CUDACC__
#include <math.h>
static inline float bt_normal_from(uint32_t u1, uint32_t u2, int second)
{
    double a = ((double)(u1 >> 8) + 1.0) * (1.0 / 16777217.0); /* (0,1] */
    double b = (double)(u2 >> 8) * (1.0 / 16777216.0);
    double r = sqrt(-2.0 * log(a));
    return (float)(second ? r * sin(2.0 * M_PI * b) : r * cos(2.0 * M_PI * b));
}
#endif

#endif
