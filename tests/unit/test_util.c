/* tests/unit/test_util.c — util/: error messages, files, SHA-256. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "util/err.h"
#include "util/file.h"
#include "util/mem.h"
#include "util/sha256.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_fail_and_context(void **state)
{
    (void)state;
    assert_int_equal(bt_fail(BT_EDATA, "tensor '%s' is short", "x"), BT_EDATA);
    assert_string_equal(bt_errmsg(), "tensor 'x' is short");
    assert_int_equal(bt_fail_context(BT_EDATA, "model.safetensors"), BT_EDATA);
    assert_string_equal(bt_errmsg(), "model.safetensors: tensor 'x' is short");
    bt_err_clear();
    assert_string_equal(bt_errmsg(), "");
    /* a very long message is truncated, never overflowed */
    char big[9000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    bt_fail(BT_EIO, "%s", big);
    bt_fail_context(BT_EIO, "%s", "ctx");
    assert_true(strlen(bt_errmsg()) < 4096);
    assert_memory_equal(bt_errmsg(), "ctx: aaa", 8);
}

static void test_sha256_known_vectors(void **state)
{
    (void)state;
    uint8_t d[32];
    char hex[65];
    bt_sha256("abc", 3, d);
    bt_sha256_hex(d, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    bt_sha256("", 0, d);
    bt_sha256_hex(d, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    /* streaming in odd pieces equals one shot */
    const char *msg = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    bt_sha256_ctx *h = bt_sha256_new();
    for (size_t i = 0; i < strlen(msg); i += 7) bt_sha256_update(h, msg + i, strlen(msg + i) < 7 ? strlen(msg + i) : 7);
    bt_sha256_final(h, d);
    bt_sha256_hex(d, hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/baton-test-util-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *sub = bt_path_join(dir, "a/b/c");
    assert_int_equal(bt_mkdirs(sub), BT_OK);
    assert_true(bt_is_dir(sub));
    char *f = bt_path_join(sub, "x.txt");
    assert_int_equal(bt_write_file_atomic(f, "hello", 5), BT_OK);
    char *buf;
    size_t len;
    assert_int_equal(bt_read_file(f, 100, &buf, &len), BT_OK);
    assert_int_equal(len, 5);
    assert_string_equal(buf, "hello");
    free(buf);
    assert_int_equal(bt_read_file(f, 3, &buf, &len), BT_EDATA); /* over the limit */
    assert_non_null(strstr(bt_errmsg(), "x.txt"));
    char *missing = bt_path_join(dir, "nope");
    assert_int_equal(bt_read_file(missing, 100, &buf, &len), BT_ENOINPUT);
    assert_non_null(strstr(bt_errmsg(), "nope"));
    bt_mapping m;
    assert_int_equal(bt_map_file(f, &m), BT_OK);
    assert_int_equal(m.len, 5);
    assert_memory_equal(m.data, "hello", 5);
    bt_unmap_file(&m);
    char *tmp = bt_xasprintf("%s.tmp", f), *partial = bt_xasprintf("%s.partial", f);
    assert_false(bt_path_exists(tmp)); /* atomic write leaves no temp file */
    assert_false(bt_path_exists(partial));
    free(partial);
    unlink(f);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    free(tmp); free(missing); free(f); free(sub);
}

/* issue 15, finding 9: a FIFO (or a directory) where a file is read is
 * refused at once, naming what it is; reading it used to wait for a writer
 * forever. The error kept aside while other code fails is the one restored. */
static void test_non_regular(void **state)
{
    (void)state;
    char dir[] = "/tmp/baton-test-fifo-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *fifo = bt_path_join(dir, "p.tar");
    assert_int_equal(mkfifo(fifo, 0644), 0);
    char *buf;
    size_t len;
    assert_int_equal(bt_read_file(fifo, 100, &buf, &len), BT_EDATA);
    assert_non_null(strstr(bt_errmsg(), "is a FIFO (named pipe), not a regular file"));
    assert_non_null(strstr(bt_errmsg(), "p.tar"));
    bt_mapping m;
    assert_int_equal(bt_map_file(fifo, &m), BT_EDATA);
    assert_non_null(strstr(bt_errmsg(), "FIFO"));
    assert_int_equal(bt_map_file(dir, &m), BT_EDATA);
    assert_non_null(strstr(bt_errmsg(), "is a directory"));
    assert_int_equal(bt_read_file(dir, 100, &buf, &len), BT_EDATA);
    /* save / restore */
    bt_fail(BT_EIO, "first: %s", "cause");
    bt_err_saved saved;
    bt_err_save(&saved);
    bt_fail(BT_EIO, "second");
    bt_err_restore(&saved);
    assert_string_equal(bt_errmsg(), "first: cause");
    unlink(fifo);
    rmdir(dir);
    free(fifo);
}

static void test_path_normalize(void **state)
{
    (void)state;
    const char *cases[][2] = {
        {"/work/main/jobs/../build/demo", "/work/main/build/demo"}, {"/a//b/./c/", "/a/b/c"},
        {"/..", "/"}, {"/a/../..", "/"}, {"a/../..", ".."}, {"./x", "x"}, {"", "."},
        {"a/b/../../c", "c"}, {"/", "/"}, {"../a/b/..", "../a"}, {"../..", "../.."}, {"a/./b//c/..", "a/b"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *n = bt_path_normalize(cases[i][0]);
        assert_string_equal(n, cases[i][1]);
        free(n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fail_and_context),
        cmocka_unit_test(test_sha256_known_vectors),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_non_regular),
        cmocka_unit_test(test_path_normalize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
