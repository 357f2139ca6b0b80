/* tests/unit/test_philox.c — kernels/philox.h: Philox4x32-10 known answers,
 * stream/counter layout, and statistical sanity of the derived draws. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "kernels/philox.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Known-answer vectors of the Random123 distribution (tests/kat_vectors, the
 * three "philox4x32 10" lines): counter[4], key[2] -> result[4]. The key's
 * word 0 is the low half of bt_philox4x32_10's 64-bit key. */
static void test_known_answers(void **state)
{
    (void)state;
    static const struct { uint32_t ctr[4], key[2], out[4]; } kat[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
        {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu},
         {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
        {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u},
         {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
    };
    for (size_t t = 0; t < sizeof kat / sizeof kat[0]; t++) {
        bt_u32x4 c = {{kat[t].ctr[0], kat[t].ctr[1], kat[t].ctr[2], kat[t].ctr[3]}};
        uint64_t key = (uint64_t)kat[t].key[0] | ((uint64_t)kat[t].key[1] << 32);
        bt_u32x4 r = bt_philox4x32_10(c, key);
        for (int i = 0; i < 4; i++) {
            if (r.v[i] != kat[t].out[i]) {
                fprintf(stderr, "vector %zu word %d: got %08x want %08x\n", t, i, r.v[i], kat[t].out[i]);
                fail();
            }
        }
    }
}

/* bt_random4 puts the stream id in the top byte of counter word 3 and keeps
 * the low 24 bits of d: it must equal the raw generator on that counter. */
static void test_stream_layout(void **state)
{
    (void)state;
    bt_u32x4 a = bt_random4(42, BT_STREAM_DROPOUT, 1, 2, 3, 0x00ABCDEFu);
    bt_u32x4 c = {{1, 2, 3, 0x02ABCDEFu}};
    bt_u32x4 b = bt_philox4x32_10(c, 42);
    assert_memory_equal(&a, &b, sizeof a);
    /* d's high byte is ignored (replaced by the stream) */
    bt_u32x4 a2 = bt_random4(42, BT_STREAM_DROPOUT, 1, 2, 3, 0xFFABCDEFu);
    assert_memory_equal(&a, &a2, sizeof a);
    /* different streams, same coordinates: different draws */
    bt_u32x4 d = bt_random4(42, BT_STREAM_DATA_ORDER, 1, 2, 3, 0x00ABCDEFu);
    assert_true(memcmp(&a, &d, sizeof a) != 0);
    /* dropout: element i uses draw i%4 of block i/4 */
    for (uint64_t i = 0; i < 64; i++) {
        bt_u32x4 r = bt_random4(7, BT_STREAM_DROPOUT, 5, 1, (3u << 8) | 2u, (uint32_t)(i >> 2));
        /* pin the exact draw: kept at p = u, dropped at the next representable p */
        float u = bt_u01(r.v[i & 3]);
        assert_int_equal(bt_dropout_keep_raw(7, 5, 1, 3, 2, i, u), 1);
        assert_int_equal(bt_dropout_keep_raw(7, 5, 1, 3, 2, i, u + 1.0f / 16777216.0f), 0);
    }
    /* beyond 2^26 elements the high bits of i/4 go to the top byte of word 2 */
    uint64_t q = (5ull << 24) + 7, big = q * 4 + 1;
    bt_u32x4 r = bt_random4(7, BT_STREAM_DROPOUT, 5, 1, (5u << 24) | (3u << 8) | 2u, 7);
    float u = bt_u01(r.v[1]);
    assert_int_equal(bt_dropout_keep_raw(7, 5, 1, 3, 2, big, u), 1);
    assert_int_equal(bt_dropout_keep_raw(7, 5, 1, 3, 2, big, u + 1.0f / 16777216.0f), 0);
}

static void test_u01_statistics(void **state)
{
    (void)state;
    assert_true(bt_u01(0) == 0.0f);
    assert_true(bt_u01(0xFFFFFFFFu) < 1.0f);
    assert_true(bt_u01(0xFFFFFFFFu) == 1.0f - 1.0f / 16777216.0f);
    assert_true(bt_u01(0x80000000u) == 0.5f);
    enum { N = 1 << 18, BINS = 64 };
    long bins[BINS] = {0};
    double sum = 0, sumsq = 0, lag = 0, prev = 0;
    for (uint32_t i = 0; i < N / 4; i++) {
        bt_u32x4 r = bt_random4(2024, BT_STREAM_DATA_ORDER, 0, i, 0, 0);
        for (int k = 0; k < 4; k++) {
            double u = bt_u01(r.v[k]);
            assert_true(u >= 0.0 && u < 1.0);
            sum += u;
            sumsq += u * u;
            lag += (u - 0.5) * (prev - 0.5);
            prev = u;
            bins[(int)(u * BINS)]++;
        }
    }
    double mean = sum / N, var = sumsq / N - mean * mean;
    assert_true(fabs(mean - 0.5) < 5 * sqrt(1.0 / 12 / N));
    assert_true(fabs(var - 1.0 / 12) < 0.002);
    assert_true(fabs(lag / N) < 5 * (1.0 / 12) / sqrt((double)N)); /* serial correlation */
    double chi2 = 0, e = (double)N / BINS;
    for (int b = 0; b < BINS; b++) chi2 += (bins[b] - e) * (bins[b] - e) / e;
    /* 63 degrees of freedom: mean 63, sd ~11.2; 120 is beyond p = 1e-5 */
    assert_true(chi2 < 120.0);
    /* keep rate of dropout at p = 0.1 */
    long kept = 0;
    for (uint64_t i = 0; i < N; i++) kept += bt_dropout_keep_raw(11, 3, 0, 4, BT_STREAM_DROPOUT, i, 0.1f);
    assert_true(fabs((double)kept / N - 0.9) < 5 * sqrt(0.09 / N));
}

static void test_counter_avalanche(void **state)
{
    (void)state;
    /* flipping one counter or key bit flips about half of the 128 output bits */
    bt_u32x4 base = {{0x12345678u, 0x9abcdef0u, 0x0fedcba9u, 0x87654321u}};
    uint64_t key = 0x0123456789abcdefull;
    bt_u32x4 r0 = bt_philox4x32_10(base, key);
    long total = 0;
    for (int bit = 0; bit < 128 + 64; bit++) {
        bt_u32x4 c = base;
        uint64_t k = key;
        if (bit < 128) c.v[bit / 32] ^= 1u << (bit % 32);
        else k ^= 1ull << (bit - 128);
        bt_u32x4 r = bt_philox4x32_10(c, k);
        int flips = 0;
        for (int w = 0; w < 4; w++) flips += __builtin_popcount(r.v[w] ^ r0.v[w]);
        assert_true(flips > 30 && flips < 98);
        total += flips;
    }
    assert_true(fabs((double)total / (128 + 64) - 64.0) < 3.0);
}

static void test_normal_from(void **state)
{
    (void)state;
    enum { N = 1 << 16 };
    double s = 0, ss = 0;
    for (uint32_t i = 0; i < N / 2; i++) {
        bt_u32x4 r = bt_random4(5, BT_STREAM_HEAD_INIT, 0, i, 0, 0);
        for (int k = 0; k < 2; k++) {
            float z = bt_normal_from(r.v[0], r.v[1], k);
            assert_true(isfinite(z));
            s += z;
            ss += (double)z * z;
        }
    }
    assert_true(fabs(s / N) < 5 / sqrt((double)N));
    assert_true(fabs(ss / N - 1.0) < 0.03);
    /* extremes stay finite: u1 = 0 maps to (0,1], never log(0) */
    assert_true(isfinite(bt_normal_from(0, 0, 0)));
    assert_true(isfinite(bt_normal_from(0xFFFFFFFFu, 0xFFFFFFFFu, 1)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_stream_layout),
        cmocka_unit_test(test_u01_statistics),
        cmocka_unit_test(test_counter_avalanche),
        cmocka_unit_test(test_normal_from),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
