/* tests/unit/test_lock.c — one run per output directory: a child holds the
 * lock, the parent is refused with the holder's pid; the lock dies with its
 * holder, even by SIGKILL. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "runner/lock.h"
#include "util/err.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_contention(void **state)
{
    (void)state;
    char dir[] = "/tmp/baton-test-lock-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char out[128];
    snprintf(out, sizeof out, "%s/out/nested", dir); /* created on demand */
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(ready[0]);
        bt_lock l;
        if (bt_lock_acquire(out, &l) != BT_OK) _exit(1);
        if (write(ready[1], "x", 1) != 1) _exit(2);
        pause(); /* hold until killed */
        _exit(0);
    }
    close(ready[1]);
    char ch;
    assert_int_equal(read(ready[0], &ch, 1), 1);
    close(ready[0]);

    bt_lock l;
    assert_int_equal(bt_lock_acquire(out, &l), BT_ELOCKED);
    assert_int_equal(l.fd, -1);
    char pidtxt[32];
    snprintf(pidtxt, sizeof pidtxt, "pid %d", (int)child);
    if (!strstr(bt_errmsg(), pidtxt)) fail_msg("message without the holder: %s", bt_errmsg());
    assert_non_null(strstr(bt_errmsg(), "in use by another baton run"));
    assert_int_equal(bt_lock_holder_pid(out), child);

    /* SIGKILL: no cleanup runs, yet the lock is free afterwards */
    kill(child, SIGKILL);
    int st;
    assert_int_equal(waitpid(child, &st, 0), child);
    assert_int_equal(bt_lock_acquire(out, &l), BT_OK);
    assert_int_equal(bt_lock_holder_pid(out), getpid());
    /* the same process taking it twice (a second open file) is refused too */
    bt_lock l2;
    assert_int_equal(bt_lock_acquire(out, &l2), BT_ELOCKED);
    bt_lock_release(&l);
    bt_lock_release(&l); /* idempotent */
    assert_int_equal(bt_lock_acquire(out, &l2), BT_OK);
    bt_lock_release(&l2);

    /* an output dir that cannot be created */
    assert_int_not_equal(bt_lock_acquire("/proc/baton-cannot-exist/x", &l), BT_OK);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* issue 15, finding 7: the lock is tied to the directory it was taken in: a
 * directory deleted, or replaced by another of the same name, is noticed */
static void test_identity(void **state)
{
    (void)state;
    char dir[] = "/tmp/baton-test-lockid-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char out[128], moved[160], cmd[256];
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(moved, sizeof moved, "%s/moved", dir);
    bt_lock l;
    assert_int_equal(bt_lock_acquire(out, &l), BT_OK);
    assert_int_equal(bt_lock_check(&l), BT_OK);
    assert_int_equal(rename(out, moved), 0); /* replaced: a new directory of the same name */
    assert_int_equal(mkdir(out, 0755), 0);
    assert_int_equal(bt_lock_check(&l), BT_EIO);
    assert_non_null(strstr(bt_errmsg(), "was replaced by another directory"));
    /* a second run can lock the new directory: the first one must stop */
    bt_lock l2;
    assert_int_equal(bt_lock_acquire(out, &l2), BT_OK);
    bt_lock_release(&l2);
    snprintf(cmd, sizeof cmd, "rm -rf %s", out);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(bt_lock_check(&l), BT_EIO);
    assert_non_null(strstr(bt_errmsg(), "was deleted"));
    bt_lock_release(&l);
    assert_int_equal(bt_lock_check(&l), BT_OK); /* not held: nothing to check */
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_contention), cmocka_unit_test(test_identity)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
