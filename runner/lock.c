/* runner/lock.c — flock on <output_dir>/.baton.lock (see lock.h). */
#include "runner/lock.h"
#include "util/err.h"
#include "util/file.h"
#include "util/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

long bt_lock_holder_pid(const char *output_dir)
{
    char *path = bt_path_join(output_dir, BT_LOCK_FILE);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    if (fd < 0) return 0;
    char buf[32];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    char *end;
    long pid = strtol(buf, &end, 10);
    return (end != buf && pid > 0) ? pid : 0;
}

int bt_lock_acquire(const char *output_dir, bt_lock *l)
{
    l->fd = -1;
    l->path = NULL;
    int rc = bt_mkdirs(output_dir);
    if (rc) return bt_fail_context(rc, "output directory");
    char *path = bt_path_join(output_dir, BT_LOCK_FILE);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = bt_fail(BT_EIO, "%s: cannot create the lock file: %s; check that the output directory is writable",
                     path, strerror(errno));
        free(path);
        return rc;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK) {
            long pid = bt_lock_holder_pid(output_dir);
            char who[48];
            if (pid > 0) snprintf(who, sizeof who, "pid %ld", pid);
            else snprintf(who, sizeof who, "pid unknown");
            rc = bt_fail(BT_ELOCKED, "%s is in use by another baton run (%s, lock %s); wait for it to finish "
                                     "or stop it (kill -TERM %ld commits and exits)",
                         output_dir, who, path, pid > 0 ? pid : 0L);
        } else {
            rc = bt_fail(BT_EIO, "%s: flock failed: %s", path, strerror(e));
        }
        free(path);
        return rc;
    }
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
        int e = errno;
        close(fd);
        rc = bt_fail(BT_EIO, "%s: cannot write the pid: %s", path, strerror(e));
        free(path);
        return rc;
    }
    l->fd = fd;
    l->path = path;
    return BT_OK;
}

void bt_lock_release(bt_lock *l)
{
    if (l->fd >= 0) {
        /* leave the file (and its stale pid) in place: see lock.h */
        flock(l->fd, LOCK_UN);
        close(l->fd);
    }
    l->fd = -1;
    free(l->path);
    l->path = NULL;
}
