/* state/archive_read_hash.c — SHA-256 for the archive reader: one and two
 * lanes on the x86 SHA extensions, OpenSSL otherwise (see archive_read_hash.h).
 */
#include "state/archive_read_hash.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define BT_HAVE_SHANI_CODE 1
#include <cpuid.h>
#include <immintrin.h>
#endif

static const uint32_t H0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

#ifdef BT_HAVE_SHANI_CODE
static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define SHANI __attribute__((target("sha,sse4.1,ssse3")))

/* state words a..h -> the (ABEF, CDGH) register pair the instructions use */
SHANI static inline void load_state(const uint32_t st[8], __m128i *s0, __m128i *s1)
{
    __m128i t = _mm_loadu_si128((const __m128i *)&st[0]);
    __m128i u = _mm_loadu_si128((const __m128i *)&st[4]);
    t = _mm_shuffle_epi32(t, 0xB1);        /* CDAB */
    u = _mm_shuffle_epi32(u, 0x1B);        /* EFGH */
    *s0 = _mm_alignr_epi8(t, u, 8);        /* ABEF */
    *s1 = _mm_blend_epi16(u, t, 0xF0);     /* CDGH */
}

SHANI static inline void store_state(uint32_t st[8], __m128i s0, __m128i s1)
{
    __m128i t = _mm_shuffle_epi32(s0, 0x1B); /* FEBA */
    s1 = _mm_shuffle_epi32(s1, 0xB1);        /* DCHG */
    _mm_storeu_si128((__m128i *)&st[0], _mm_blend_epi16(t, s1, 0xF0)); /* DCBA */
    _mm_storeu_si128((__m128i *)&st[4], _mm_alignr_epi8(s1, t, 8));    /* HGFE */
}

/* Message words 4i..4i+3 of block p (loaded, or from the previous 16 kept in
 * w), stored into w, returned with the round constants added. */
SHANI static inline __m128i schedule_k(__m128i w[4], int i, const uint8_t *p, __m128i mask)
{
    __m128i m;
    if (i < 4) {
        m = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), mask);
    } else {
        __m128i x = _mm_sha256msg1_epu32(w[i & 3], w[(i + 1) & 3]);
        x = _mm_add_epi32(x, _mm_alignr_epi8(w[(i + 3) & 3], w[(i + 2) & 3], 4));
        m = _mm_sha256msg2_epu32(x, w[(i + 3) & 3]);
    }
    w[i & 3] = m;
    return _mm_add_epi32(m, _mm_loadu_si128((const __m128i *)&K[4 * i]));
}

/* One lane: nblk blocks of p into st. */
SHANI static void compress1(uint32_t st[8], const uint8_t *p, size_t nblk)
{
    const __m128i mask = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i a0, a1;
    load_state(st, &a0, &a1);
    for (; nblk; nblk--, p += 64) {
        __m128i sa0 = a0, sa1 = a1, w[4];
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) {
            __m128i k = schedule_k(w, i, p, mask);
            a1 = _mm_sha256rnds2_epu32(a1, a0, k);
            k = _mm_shuffle_epi32(k, 0x0E);
            a0 = _mm_sha256rnds2_epu32(a0, a1, k);
        }
        a0 = _mm_add_epi32(a0, sa0);
        a1 = _mm_add_epi32(a1, sa1);
    }
    store_state(st, a0, a1);
}

/* Two lanes over the same blocks: one message schedule, interleaved rounds. */
SHANI static void compress2(uint32_t sa[8], uint32_t sb[8], const uint8_t *p, size_t nblk)
{
    const __m128i mask = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i a0, a1, b0, b1;
    load_state(sa, &a0, &a1);
    load_state(sb, &b0, &b1);
    for (; nblk; nblk--, p += 64) {
        __m128i sa0 = a0, sa1 = a1, sb0 = b0, sb1 = b1, w[4];
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) {
            __m128i k = schedule_k(w, i, p, mask);
            a1 = _mm_sha256rnds2_epu32(a1, a0, k);
            b1 = _mm_sha256rnds2_epu32(b1, b0, k);
            k = _mm_shuffle_epi32(k, 0x0E);
            a0 = _mm_sha256rnds2_epu32(a0, a1, k);
            b0 = _mm_sha256rnds2_epu32(b0, b1, k);
        }
        a0 = _mm_add_epi32(a0, sa0);
        a1 = _mm_add_epi32(a1, sa1);
        b0 = _mm_add_epi32(b0, sb0);
        b1 = _mm_add_epi32(b1, sb1);
    }
    store_state(sa, a0, a1);
    store_state(sb, b0, b1);
}

static int cpu_has_shani(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!(c & (1u << 9)) || !(c & (1u << 19))) return 0; /* SSSE3, SSE4.1 */
    if (__get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b & (1u << 29)) != 0; /* SHA */
}
#endif /* BT_HAVE_SHANI_CODE */

static int fast_ok;
static pthread_once_t fast_once = PTHREAD_ONCE_INIT;

static void init_mode(bt_ahash *h, int fast)
{
    memset(h, 0, sizeof *h);
    h->fast = fast;
    memcpy(h->st, H0, sizeof H0);
    if (!fast) h->ossl = bt_sha256_new();
}

static void fast_init(void)
{
#ifdef BT_HAVE_SHANI_CODE
    const char *env = getenv("BATON_ARCHIVE_NO_SHANI");
    if ((env && env[0] && strcmp(env, "0") != 0) || !cpu_has_shani()) return;
    /* self-test against OpenSSL: lengths around block and padding edges, one
     * and two lanes, split updates */
    uint8_t msg[1000], d1[32], d2[32], d3[32];
    for (size_t i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)(i * 131u + (i >> 3) * 7u + 1u);
    static const size_t lens[] = {0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 200, 640, 999, 1000};
    int ok = 1;
    for (size_t t = 0; t < sizeof lens / sizeof lens[0] && ok; t++) {
        size_t n = lens[t], cut = n / 3;
        bt_sha256(msg, n, d1);
        bt_ahash a, b;
        init_mode(&a, 1);
        init_mode(&b, 1);
        size_t k = bt_ahash_update2(&a, &b, msg, n);
        bt_ahash_update(&a, msg + k, n - k);
        if (cut < k) cut = k;
        bt_ahash_update(&b, msg + k, cut - k);
        bt_ahash_update(&b, msg + cut, n - cut);
        bt_ahash_final(&a, d2);
        bt_ahash_final(&b, d3);
        if (k != n / 64 * 64 || memcmp(d1, d2, 32) || memcmp(d1, d3, 32)) ok = 0;
    }
    fast_ok = ok;
#endif
}

int bt_ahash_fast(void)
{
    pthread_once(&fast_once, fast_init);
    return fast_ok;
}

void bt_ahash_init(bt_ahash *h) { init_mode(h, bt_ahash_fast()); }

void bt_ahash_update(bt_ahash *h, const void *data, size_t n)
{
    if (!n) return;
    if (!h->fast) {
        bt_sha256_update(h->ossl, data, n);
        return;
    }
#ifdef BT_HAVE_SHANI_CODE
    const uint8_t *p = data;
    h->total += n;
    if (h->nbuf) {
        size_t take = 64 - h->nbuf < n ? 64 - h->nbuf : n;
        memcpy(h->buf + h->nbuf, p, take);
        h->nbuf += (unsigned)take;
        p += take;
        n -= take;
        if (h->nbuf < 64) return;
        compress1(h->st, h->buf, 1);
        h->nbuf = 0;
    }
    if (n >= 64) {
        compress1(h->st, p, n / 64);
        p += n / 64 * 64;
        n %= 64;
    }
    memcpy(h->buf, p, n);
    h->nbuf = (unsigned)n;
#endif
}

size_t bt_ahash_update2(bt_ahash *a, bt_ahash *b, const void *p, size_t n)
{
#ifdef BT_HAVE_SHANI_CODE
    if (!a->fast || !b->fast || a->nbuf || b->nbuf || n < 64) return 0;
    size_t nb = n / 64;
    compress2(a->st, b->st, p, nb);
    a->total += nb * 64;
    b->total += nb * 64;
    return nb * 64;
#else
    (void)a; (void)b; (void)p; (void)n;
    return 0;
#endif
}

void bt_ahash_final(bt_ahash *h, uint8_t digest[32])
{
    if (!h->fast) {
        bt_sha256_final(h->ossl, digest);
        h->ossl = NULL;
        return;
    }
#ifdef BT_HAVE_SHANI_CODE
    uint64_t bits = h->total * 8;
    uint8_t pad[128] = {0x80};
    size_t padlen = (h->nbuf < 56 ? 56 : 120) - h->nbuf;
    for (int i = 0; i < 8; i++) pad[padlen + (size_t)i] = (uint8_t)(bits >> (56 - 8 * i));
    bt_ahash_update(h, pad, padlen + 8);
    for (int i = 0; i < 8; i++) {
        digest[4 * i] = (uint8_t)(h->st[i] >> 24);
        digest[4 * i + 1] = (uint8_t)(h->st[i] >> 16);
        digest[4 * i + 2] = (uint8_t)(h->st[i] >> 8);
        digest[4 * i + 3] = (uint8_t)h->st[i];
    }
#endif
}
