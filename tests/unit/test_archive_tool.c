/* tests/unit/test_archive_tool.c — helper program for the archive scripts,
 * and a unit test of itself when run without arguments.
 *
 *   test_archive_tool commit DIR STEP FLOATS   commit a synthetic archive (random tensors)
 *   test_archive_tool bench DIR [PARAMS]       bench/bench_archive.sh: commit and verify a
 *                                              BERT-base-sized state (PARAMS weights, default
 *                                              110M, plus AdamW m and v) against dd and sha256sum
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_archive_fixture.h"

#include <sys/stat.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int do_commit(const char *dir, int64_t step, size_t floats)
{
    fx_snap f;
    fx_make(&f, step, floats, (uint64_t)step + 1);
    char p[4096];
    int rc = bt_archive_commit(dir, &f.s, p, sizeof p);
    fx_free(&f);
    if (rc) {
        fprintf(stderr, "commit failed: %s\n", bt_errmsg());
        return rc;
    }
    printf("%s\n", p);
    return 0;
}

static double timed(const char *cmd)
{
    double t = now();
    if (system(cmd) != 0) {
        fprintf(stderr, "peer command failed: %s\n", cmd);
        exit(1);
    }
    return now() - t;
}

static int do_bench(const char *dir, size_t params)
{
    if (bt_mkdirs(dir)) return 1;
    fx_snap f;
    double t0 = now();
    fx_make(&f, 1, params, 5);
    fprintf(stderr, "state of %zu parameters (x3 with AdamW moments) made in %.1f s\n", params, now() - t0);
    char p[4096];
    double best_c = 1e30, best_v = 1e30, best_dd = 1e30, best_sum = 1e30;
    struct stat st;
    for (int rep = 0; rep < 2; rep++) {
        char *cmd = bt_xasprintf("rm -f '%s'/ckpt-* '%s'/peer.bin; sync", dir, dir);
        if (system(cmd) != 0) return 1;
        free(cmd);
        double t = now();
        if (bt_archive_commit(dir, &f.s, p, sizeof p)) {
            fprintf(stderr, "commit failed: %s\n", bt_errmsg());
            return 1;
        }
        double tc = now() - t;
        stat(p, &st);
        /* peer: the same bytes written to the same disk by dd, fsynced */
        if (system("sync") != 0) return 1;
        cmd = bt_xasprintf("dd if='%s' of='%s/peer.bin' bs=4M conv=fsync status=none", p, dir);
        double td = timed(cmd);
        free(cmd);
        t = now();
        if (bt_archive_verify(p, NULL, NULL, NULL)) {
            fprintf(stderr, "verify failed: %s\n", bt_errmsg());
            return 1;
        }
        double tv = now() - t;
        cmd = bt_xasprintf("sha256sum '%s' >/dev/null", p);
        double ts = timed(cmd);
        free(cmd);
        fprintf(stderr, "run %d: commit %.2f s, dd %.2f s, verify %.2f s, sha256sum %.2f s\n", rep, tc, td, tv, ts);
        if (tc < best_c) best_c = tc;
        if (td < best_dd) best_dd = td;
        if (tv < best_v) best_v = tv;
        if (ts < best_sum) best_sum = ts;
    }
    double mb = (double)st.st_size / 1e6;
    printf("archive of %.0f MB (best of 2 runs each)\n", mb);
    printf("archive_commit: ours %.0f MB/s, peer %.0f MB/s, ratio %.2f\n", mb / best_c, mb / best_dd, best_dd / best_c);
    printf("archive_verify: ours %.0f MB/s, peer %.0f MB/s, ratio %.2f\n", mb / best_v, mb / best_sum, best_sum / best_v);
    char *cmd = bt_xasprintf("rm -f '%s'/ckpt-* '%s'/peer.bin", dir, dir);
    if (system(cmd) != 0) return 1;
    free(cmd);
    fx_free(&f);
    return 0;
}

static void test_tool_commit(void **state)
{
    (void)state;
    char *dir = fx_tmpdir("ar-tool");
    assert_int_equal(do_commit(dir, 3, 100), 0);
    char *p = bt_xasprintf("%s/ckpt-000000003.tar", dir);
    assert_int_equal(bt_archive_verify(p, NULL, NULL, NULL), 0);
    free(p);
    fx_rmrf(dir);
    free(dir);
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "commit"))
        return do_commit(argv[2], strtoll(argv[3], NULL, 10), strtoull(argv[4], NULL, 10)) ? 1 : 0;
    if ((argc == 3 || argc == 4) && !strcmp(argv[1], "bench"))
        return do_bench(argv[2], argc == 4 ? strtoull(argv[3], NULL, 10) : 110000000ull);
    if (argc > 1) {
        fprintf(stderr, "usage: %s [commit DIR STEP FLOATS | bench DIR [PARAMS]]\n", argv[0]);
        return 64;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_tool_commit)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
