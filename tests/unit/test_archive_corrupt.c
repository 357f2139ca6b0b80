/* tests/unit/test_archive_corrupt.c — every single-bit flip and every
 * truncation of a real archive is detected, and discovery then falls back to
 * the previous archive. Without the sidecar, an undetected flip may only land
 * where it changes nothing the reader returns (tar padding, unused header
 * bytes): never damaged content. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_archive_fixture.h"

#include <fcntl.h>
#include <sys/stat.h>

#define N_FLIPS 2400
#define N_TRUNC 600
#define N_NOSIDE 400

typedef struct {
    char *dir, *prev, *target;
    char *orig;
    size_t len;
    bt_archive *ref; /* the intact archive, tensors kept */
} world;

static void put(const char *path, const char *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
    close(fd);
}

static void must_fall_back(world *w, const char *what, size_t off)
{
    char found[4096];
    bt_discovery_report rep;
    int rc = bt_discover(w->dir, NULL, 0, "{\"lr\": 2e-05, \"seed\": 42, \"model\": \"tiny\"}", NULL, found,
                         sizeof found, NULL, &rep);
    if (rc != 0 || strcmp(found, w->prev) != 0 || rep.n_skipped != 1) {
        fprintf(stderr, "%s at offset %zu of %zu: discovery returned rc %d, '%s', %zu skipped: %s\n", what, off,
                w->len, rc, found, rep.n_skipped, bt_errmsg());
        fail();
    }
    bt_discovery_report_free(&rep);
}

static void setup_world(world *w)
{
    memset(w, 0, sizeof *w);
    w->dir = fx_tmpdir("ar-corrupt");
    fx_snap a, b;
    fx_make(&a, 1, 64, 11);
    char p[4096];
    assert_int_equal(bt_archive_commit(w->dir, &a.s, p, sizeof p), 0);
    w->prev = bt_xstrdup(p);
    fx_make(&b, 2, 120000, 12); /* ~1.4 MB */
    assert_int_equal(bt_archive_commit(w->dir, &b.s, p, sizeof p), 0);
    w->target = bt_xstrdup(p);
    fx_free(&a);
    fx_free(&b);
    assert_int_equal(bt_read_file(w->target, 1u << 30, &w->orig, &w->len), 0);
    assert_int_equal(bt_archive_read(w->target, NULL, NULL, &w->ref), 0);
    fprintf(stderr, "archive of %zu bytes\n", w->len);
}

static void teardown_world(world *w)
{
    bt_archive_close(w->ref);
    free(w->orig);
    fx_rmrf(w->dir);
    free(w->dir);
    free(w->prev);
    free(w->target);
}

static void test_bit_flips(void **state)
{
    (void)state;
    world w;
    setup_world(&w);
    uint64_t seed = 77;
    char *buf = bt_xmalloc(w.len);
    for (int i = 0; i < N_FLIPS; i++) {
        size_t off;
        uint64_t r = fx_rng(&seed);
        if (i % 4 == 0) off = (size_t)(r % 4096);                         /* first header + safetensors header */
        else if (i % 4 == 1) off = w.len - 1 - (size_t)(r % (w.len < 8192 ? w.len : 8192)); /* manifest, end blocks */
        else off = (size_t)(r % w.len);
        memcpy(buf, w.orig, w.len);
        buf[off] ^= (char)(1u << (fx_rng(&seed) % 8));
        put(w.target, buf, w.len);
        must_fall_back(&w, "bit flip", off);
    }
    fprintf(stderr, "%d bit flips detected\n", N_FLIPS);
    put(w.target, w.orig, w.len);
    assert_int_equal(bt_archive_verify(w.target, NULL, NULL, NULL), 0);
    free(buf);
    teardown_world(&w);
}

static void test_truncations(void **state)
{
    (void)state;
    world w;
    setup_world(&w);
    uint64_t seed = 78;
    for (int i = 0; i < N_TRUNC; i++) {
        size_t off = i == 0 ? 0 : i == 1 ? w.len - 1 : i == 2 ? w.len - 512 : i == 3 ? w.len - 1024
                   : (size_t)(fx_rng(&seed) % w.len);
        put(w.target, w.orig, off);
        must_fall_back(&w, "truncation", off);
    }
    /* appended garbage is damage too */
    char *big = bt_xmalloc(w.len + 512);
    memcpy(big, w.orig, w.len);
    memset(big + w.len, 0, 512);
    put(w.target, big, w.len + 512);
    must_fall_back(&w, "512 zero bytes appended", w.len);
    free(big);
    fprintf(stderr, "%d truncations detected\n", N_TRUNC);
    teardown_world(&w);
}

/* Without the sidecar: either refused, or exactly the original content. */
static void test_flips_without_sidecar(void **state)
{
    (void)state;
    world w;
    setup_world(&w);
    char *side = bt_xasprintf("%s.sha256", w.target);
    unlink(side);
    uint64_t seed = 79;
    char *buf = bt_xmalloc(w.len);
    int detected = 0, harmless = 0;
    for (int i = 0; i < N_NOSIDE; i++) {
        size_t off = (i % 2) ? (size_t)(fx_rng(&seed) % w.len) : w.len - 1 - (size_t)(fx_rng(&seed) % 6000);
        memcpy(buf, w.orig, w.len);
        buf[off] ^= (char)(1u << (fx_rng(&seed) % 8));
        put(w.target, buf, w.len);
        bt_archive *a;
        if (bt_archive_read(w.target, NULL, NULL, &a) != 0) {
            detected++;
            continue;
        }
        for (int m = 0; m < BT_M_COUNT; m++) {
            size_t l1, l2;
            const uint8_t *x = bt_archive_member(a, bt_archive_member_name(m), &l1);
            const uint8_t *y = bt_archive_member(w.ref, bt_archive_member_name(m), &l2);
            if (l1 != l2 || memcmp(x, y, l1) != 0) {
                fprintf(stderr, "flip at %zu accepted with changed %s\n", off, bt_archive_member_name(m));
                fail();
            }
        }
        bt_archive_close(a);
        harmless++;
    }
    fprintf(stderr, "no sidecar: %d flips detected, %d in bytes that carry no content\n", detected, harmless);
    assert_true(detected > N_NOSIDE / 2);
    free(buf);
    free(side);
    teardown_world(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bit_flips),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_flips_without_sidecar),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
