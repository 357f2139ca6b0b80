/* kernels/half.h — IEEE binary16 (F16) and bfloat16 (BF16) <-> binary32
 * conversions on the host, round to nearest, ties to even.
 *
 * Owns: the one definition of how a float is rounded to a 16-bit type in
 * baton. The CPU backend stores every F16/BF16 tensor element through these
 * functions; the CUDA backend uses __float2half_rn / __float2bfloat16_rn,
 * which round the same way (tests/gpu/ops_parity.c checks convert bit for
 * bit); the engine and the tests use them for host copies.
 * Must not: depend on anything but <stdint.h>/<string.h> (header-only, pure).
 *
 * F16: 1 sign, 5 exponent, 10 mantissa bits; max 65504, values that round
 * above it become inf; subnormals down to 2^-24 are kept (no flush to zero).
 * BF16: the top 16 bits of a float (8 exponent bits: the float range, 8
 * significant bits). NaN stays NaN (quiet) in both.
 */
#ifndef BATON_KERNELS_HALF_H
#define BATON_KERNELS_HALF_H

#include <stdint.h>
#include <string.h>

static inline uint32_t bt_f32_bits(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    return x;
}

static inline float bt_bits_f32(uint32_t x)
{
    float f;
    memcpy(&f, &x, 4);
    return f;
}

static inline uint16_t bt_f32_to_f16(float f)
{
    uint32_t x = bt_f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7FFFFFFFu;
    if (ax >= 0x7F800000u) return (uint16_t)(sign | 0x7C00u | (ax > 0x7F800000u ? 0x200u : 0));
    if (ax >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u); /* rounds to >= 65520: inf */
    if (ax < 0x38800000u) {                                     /* subnormal or zero in f16 */
        if (ax < 0x33000000u) return (uint16_t)sign;             /* < 2^-25: rounds to 0 */
        uint32_t m = (ax & 0x7FFFFFu) | 0x800000u;
        int e = (int)(ax >> 23);
        int shift = 126 - e; /* value = m 2^(e-150); f16 subnormal unit 2^-24 */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = ax + 0xFFFu + ((ax >> 13) & 1u); /* round the mantissa to 10 bits */
    r -= 0x38000000u;                              /* rebias the exponent 127 -> 15 */
    return (uint16_t)(sign | (r >> 13));
}

static inline float bt_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1Fu, m = h & 0x3FFu, x;
    if (e == 0x1F) x = sign | 0x7F800000u | (m << 13);
    else if (e) x = sign | ((e + 112u) << 23) | (m << 13);
    else if (!m) x = sign;
    else {
        float v = (float)m * (1.0f / 16777216.0f); /* m * 2^-24, exact */
        return sign ? -v : v;
    }
    return bt_bits_f32(x);
}

static inline uint16_t bt_f32_to_bf16(float f)
{
    uint32_t x = bt_f32_bits(f);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet NaN */
    x += 0x7FFFu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

static inline float bt_bf16_to_f32(uint16_t h) { return bt_bits_f32((uint32_t)h << 16); }

/* v rounded to the precision of dtype code dt (0 F32, 1 F16, 2 BF16: the
 * bt_dtype values of kernels/backend.h) and back: what storing v in a tensor
 * of that dtype keeps. */
static inline float bt_round_to(int dt, float v)
{
    return dt == 1 ? bt_f16_to_f32(bt_f32_to_f16(v)) : dt == 2 ? bt_bf16_to_f32(bt_f32_to_bf16(v)) : v;
}

#endif
