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
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
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

/* The pid holding the flock on fd's file, from /proc/locks (the kernel's own
 * record: never a stale pid left in the file by an earlier run), or 0. */
static long proc_locks_holder(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0) return 0;
    FILE *f = fopen("/proc/locks", "r");
    if (!f) return 0;
    char line[256];
    long found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        char kind[16], mode[16];
        long pid;
        unsigned maj, min;
        unsigned long long ino;
        /* "1: FLOCK  ADVISORY  WRITE 1234 fd:01:123456 0 EOF" (blocked waiters carry "->") */
        if (strstr(line, "->")) continue;
        if (sscanf(line, "%*d: %15s %*s %15s %ld %x:%x:%llu", kind, mode, &pid, &maj, &min, &ino) == 6 &&
            strcmp(kind, "FLOCK") == 0 && ino == (unsigned long long)st.st_ino && maj == major(st.st_dev) &&
            min == minor(st.st_dev) && pid > 0)
            found = pid;
    }
    fclose(f);
    return found;
}

long bt_lock_active_holder(const char *output_dir)
{
    char *path = bt_path_join(output_dir, BT_LOCK_FILE);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    free(path);
    if (fd < 0) return 0;
    FILE *f = fopen("/proc/locks", "r");
    long pid = f ? proc_locks_holder(fd) : -1;
    if (f) fclose(f);
    close(fd);
    return pid;
}

/* Who holds the lock: /proc/locks where it answers; else the pid the holder
 * writes into the file right after it locks, read again for up to 200 ms
 * while the file is still empty (the holder may not have written it yet). */
static long flock_holder(int fd)
{
    long pid = proc_locks_holder(fd);
    for (int i = 0; pid <= 0 && i < 20; i++) {
        char buf[32];
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        if (n > 0) {
            buf[n] = '\0';
            char *end;
            long p = strtol(buf, &end, 10);
            if (end != buf && p > 0) return p;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return pid;
}

int bt_lock_acquire(const char *output_dir, bt_lock *l)
{
    l->fd = -1;
    l->path = NULL;
    l->dir = NULL;
    l->open_errno = 0;
    int rc = bt_mkdirs(output_dir);
    if (rc) {
        l->open_errno = errno;
        return bt_fail_context(rc, "output directory");
    }
    char *path = bt_path_join(output_dir, BT_LOCK_FILE);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        l->open_errno = errno;
        rc = bt_fail(BT_EIO, "%s: cannot create the lock file: %s; check that the output directory is writable",
                     path, strerror(errno));
        free(path);
        return rc;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        long pid = e == EWOULDBLOCK ? flock_holder(fd) : 0;
        close(fd);
        if (e == EWOULDBLOCK) {
            if (pid > 0)
                rc = bt_fail(BT_ELOCKED, "%s is in use by another baton run (pid %ld, lock %s); wait for it to finish "
                                         "or stop it (kill -TERM %ld commits and exits)",
                             output_dir, pid, path, pid);
            else
                rc = bt_fail(BT_ELOCKED, "%s is in use by another baton run (lock %s; its pid could not be read); "
                                         "wait for it to finish, or find it with: fuser %s",
                             output_dir, path, path);
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
    struct stat ds;
    if (stat(output_dir, &ds) != 0 || !S_ISDIR(ds.st_mode)) {
        int e = errno;
        close(fd);
        rc = bt_fail(BT_EIO, "%s: the output directory disappeared while it was being locked (%s)", output_dir,
                     strerror(e));
        free(path);
        return rc;
    }
    l->fd = fd;
    l->path = path;
    l->dir = bt_xstrdup(output_dir);
    l->dir_dev = (unsigned long long)ds.st_dev;
    l->dir_ino = (unsigned long long)ds.st_ino;
    return BT_OK;
}

int bt_lock_check(const bt_lock *l)
{
    if (!l || l->fd < 0) return BT_OK;
    struct stat ds, ls, fs;
    const char *what = NULL;
    if (stat(l->dir, &ds) != 0) what = errno == ENOENT ? "was deleted" : "cannot be reached";
    else if (!S_ISDIR(ds.st_mode)) what = "was replaced by something that is not a directory";
    else if ((unsigned long long)ds.st_dev != l->dir_dev || (unsigned long long)ds.st_ino != l->dir_ino)
        what = "was replaced by another directory";
    else if (stat(l->path, &ls) != 0 || fstat(l->fd, &fs) != 0 || ls.st_dev != fs.st_dev || ls.st_ino != fs.st_ino)
        what = "lost its lock file (deleted or replaced)";
    if (!what) return BT_OK;
    return bt_fail(BT_EIO, "output directory %s %s while this run held its lock (%s): stopping without writing "
                           "anything more (it is not recreated, so no second run can share it unlocked); restore "
                           "the directory (or set another [job] output_dir) and run again",
                   l->dir, what, l->path);
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
    free(l->dir);
    l->dir = NULL;
}
