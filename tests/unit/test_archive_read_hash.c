/* tests/unit/test_archive_read_hash.c — state/archive_read_hash: the reader's
 * SHA-256 (one lane and two lanes) against OpenSSL's, on random data cut into
 * random updates, in both modes: SHA extensions (where the CPU has them) and
 * the OpenSSL fallback (BATON_ARCHIVE_NO_SHANI=1, in a forked child, since the
 * mode is chosen once per process). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "state/archive_read_hash.h"
#include "util/sha256.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_u64(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* n bytes of data hashed by a random sequence of one- and two-lane updates
 * into a and b, compared with OpenSSL's digest of the same bytes. */
static void check_random_splits(size_t n)
{
    uint8_t *msg = malloc(n ? n : 1);
    assert_non_null(msg);
    for (size_t i = 0; i < n; i++) msg[i] = (uint8_t)next_u64();
    uint8_t want[32], da[32], db[32];
    bt_sha256(msg, n, want);

    bt_ahash a, b;
    bt_ahash_init(&a);
    bt_ahash_init(&b);
    size_t pos = 0;
    while (pos < n) {
        size_t left = n - pos, take = 1 + (size_t)(next_u64() % (left < 700 ? left : 700));
        if (next_u64() % 2) {
            /* two lanes; whatever update2 does not take goes one lane at a time */
            size_t k = bt_ahash_update2(&a, &b, msg + pos, take);
            assert_true(k <= take);
            assert_int_equal(k % 64, 0);
            if (!bt_ahash_fast()) assert_int_equal(k, 0);
            bt_ahash_update(&a, msg + pos + k, take - k);
            bt_ahash_update(&b, msg + pos + k, take - k);
        } else {
            bt_ahash_update(&a, msg + pos, take);
            bt_ahash_update(&b, msg + pos, take);
        }
        pos += take;
    }
    bt_ahash_final(&a, da);
    bt_ahash_final(&b, db);
    assert_memory_equal(da, want, 32);
    assert_memory_equal(db, want, 32);
    free(msg);
}

static void test_lengths_around_blocks(void **state)
{
    (void)state;
    for (size_t n = 0; n <= 300; n++) check_random_splits(n);
}

static void test_random_lengths(void **state)
{
    (void)state;
    for (int t = 0; t < 200; t++) check_random_splits((size_t)(next_u64() % 20000));
    check_random_splits((size_t)3 << 20);
}

/* Two lanes fed different data before a shared stretch stay independent. */
static void test_lanes_independent(void **state)
{
    (void)state;
    uint8_t x[192], y[64], d[32], w[32];
    for (size_t i = 0; i < sizeof x; i++) x[i] = (uint8_t)next_u64();
    for (size_t i = 0; i < sizeof y; i++) y[i] = (uint8_t)next_u64();
    bt_ahash a, b;
    bt_ahash_init(&a);
    bt_ahash_init(&b);
    bt_ahash_update(&a, y, sizeof y); /* a: y then x; b: x */
    size_t k = bt_ahash_update2(&a, &b, x, sizeof x);
    bt_ahash_update(&a, x + k, sizeof x - k);
    bt_ahash_update(&b, x + k, sizeof x - k);
    uint8_t yx[256];
    memcpy(yx, y, 64);
    memcpy(yx + 64, x, 192);
    bt_ahash_final(&a, d);
    bt_sha256(yx, sizeof yx, w);
    assert_memory_equal(d, w, 32);
    bt_ahash_final(&b, d);
    bt_sha256(x, sizeof x, w);
    assert_memory_equal(d, w, 32);
}

static int run_all(const char *mode)
{
    printf("[ mode: %s; two-lane fast path %s ]\n", mode, bt_ahash_fast() ? "on" : "off");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lengths_around_blocks),
        cmocka_unit_test(test_random_lengths),
        cmocka_unit_test(test_lanes_independent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

int main(void)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        setenv("BATON_ARCHIVE_NO_SHANI", "1", 1);
        _exit(run_all("OpenSSL fallback") ? 1 : 0);
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid) return 1;
    int fallback_failed = !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    int rc = run_all("default");
    return rc || fallback_failed;
}
