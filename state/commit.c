/* state/commit.c — atomic commit of checkpoint archives, stale-file cleanup
 * and retention (see commit.h; protocol and crash states in
 * docs/checkpoints.md).
 *
 * Order of a commit (each step durable before the next):
 *   1. ckpt-N.tar.partial written, fsynced, closed
 *   2. an old ckpt-N.tar.sha256 (same step committed before) unlinked, dir fsynced
 *   3. rename .partial -> ckpt-N.tar, dir fsynced          <- the commit point
 *   4. ckpt-N.tar.sha256 written atomically (.tmp, fsync, rename, dir fsync)
 * A final name therefore only ever holds a complete archive, and a sidecar
 * only ever sits next to the archive it describes (or none).
 */
#include "state/commit.h"
#include "util/err.h"
#include "util/file.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"
#include "util/sha256.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

void bt_archive_filename(int64_t step, char *buf, size_t cap)
{
    snprintf(buf, cap, "ckpt-%09lld.tar", (long long)step);
}

int bt_archive_parse_filename(const char *base, int64_t *step)
{
    if (strncmp(base, "ckpt-", 5) != 0) return 0;
    const char *p = base + 5;
    size_t nd = 0;
    int64_t v = 0;
    while (p[nd] >= '0' && p[nd] <= '9') {
        if (nd >= 18) return 0;
        v = v * 10 + (p[nd] - '0');
        nd++;
    }
    if (nd < 9 || strcmp(p + nd, ".tar") != 0) return 0;
    if (step) *step = v;
    return 1;
}

typedef struct {
    int fd;
    const char *path;
    const char *dir;
    uint64_t total;    /* expected archive size */
    uint64_t written;
    uint64_t fail_after; /* test hook; UINT64_MAX: off */
    int fail_errno;      /* test hook: the errno of that failure (ENOSPC) */
    const char *kept;    /* what a failure leaves: "the previous checkpoint ... is kept" */
} fd_out;

/* Slack kept free beyond the archive's exact size (directory entry, sidecar). */
#define SPACE_SLACK 4096u

static int disk_full(fd_out *o, int e)
{
    return bt_fail(BT_EIO, "%s: %s after %llu of %llu bytes: the archive needs %llu bytes free in %s; free "
                           "space there (or lower keep_last); %s",
                   o->path, strerror(e), (unsigned long long)o->written, (unsigned long long)o->total,
                   (unsigned long long)o->total, o->dir, o->kept);
}

/* What a failed commit leaves behind, for its message: the newest regular
 * ckpt-*.tar already in dir (kept, since nothing of it is touched), or none. */
static void kept_note(const char *dir, char *buf, size_t cap)
{
    int64_t best = -1, st;
    char name[256] = "";
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (!bt_archive_parse_filename(de->d_name, &st) || st <= best) continue;
        char *p = bt_path_join(dir, de->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISREG(sb.st_mode)) {
            best = st;
            snprintf(name, sizeof name, "%s", de->d_name);
        }
        free(p);
    }
    if (d) closedir(d);
    if (best >= 0) snprintf(buf, cap, "the previous checkpoint %s is kept", name);
    else snprintf(buf, cap, "no checkpoint was saved (there is none before this one in %s)", dir);
}

static int fd_write(void *ctx, const void *buf, size_t len)
{
    fd_out *o = ctx;
    const char *p = buf;
    while (len > 0) {
        size_t n = len;
        int e = 0;
        if (o->fail_after != UINT64_MAX && o->written + n > o->fail_after) {
            n = (size_t)(o->fail_after - o->written);
            if (n == 0) e = o->fail_errno;
        }
        ssize_t w = e ? -1 : write(o->fd, p, n);
        if (w < 0) {
            if (!e && errno == EINTR) continue;
            if (!e) e = errno;
            if (e == ENOSPC || e == EDQUOT || e == EFBIG) return disk_full(o, e);
            return bt_fail(BT_EIO, "%s: write failed after %llu bytes: %s; %s", o->path,
                           (unsigned long long)o->written, strerror(e), o->kept);
        }
        p += w;
        len -= (size_t)w;
        o->written += (uint64_t)w;
    }
    return BT_OK;
}

int bt_archive_commit(const char *out_dir, const bt_snapshot *s, char *committed_path, size_t cap)
{
    if (committed_path && cap) committed_path[0] = '\0';
    int rc = bt_mkdirs(out_dir);
    if (rc) return rc;
    char name[64];
    bt_archive_filename(s->step, name, sizeof name);
    char *final = bt_path_join(out_dir, name);
    char *partial = bt_xasprintf("%s.partial", final);
    char *side = bt_xasprintf("%s.sha256", final);
    int fd = -1;
    uint64_t total = 0;
    rc = bt_archive_size(s, &total);
    if (rc) goto fail;

    char kept[512];
    kept_note(out_dir, kept, sizeof kept);
    fd_out o = {.fd = -1, .path = partial, .dir = out_dir, .total = total, .fail_after = UINT64_MAX,
                .fail_errno = ENOSPC, .kept = kept};
    const char *hook = getenv("BATON_TEST_FAIL_WRITE_AFTER");
    if (hook && *hook) o.fail_after = strtoull(hook, NULL, 10);
    const char *hook_errno = getenv("BATON_TEST_FAIL_WRITE_ERRNO");
    if (hook_errno && *hook_errno) o.fail_errno = !strcmp(hook_errno, "EIO") ? EIO : atoi(hook_errno);
    if (o.fail_errno <= 0) o.fail_errno = ENOSPC;

    struct statvfs vfs;
    if (statvfs(out_dir, &vfs) == 0) {
        uint64_t avail = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
        if (avail < total + SPACE_SLACK) {
            rc = bt_fail(BT_EIO, "%s: not enough space: the archive needs %llu bytes plus %u bytes of slack, "
                                 "%llu are free in %s; free space there (or lower keep_last); %s",
                         final, (unsigned long long)total, SPACE_SLACK, (unsigned long long)avail, out_dir, kept);
            goto fail;
        }
    }
    fd = open(partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        rc = bt_fail(BT_EIO, "%s: cannot create: %s; check that the output directory is writable; %s", partial,
                     strerror(e), kept);
        goto fail;
    }
    o.fd = fd;
    /* Reserve the blocks now so a full disk shows up before any writing. */
    if (total > 0 && fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)total) != 0 &&
        (errno == ENOSPC || errno == EDQUOT)) {
        rc = disk_full(&o, errno);
        goto fail;
    }
    uint8_t digest[32];
    rc = bt_archive_write(s, partial, fd_write, &o, digest);
    if (rc) goto fail;
    if (o.written != total) {
        rc = bt_fail(BT_EINTERNAL, "%s: wrote %llu bytes, sized %llu: a bug in the archive writer", partial,
                     (unsigned long long)o.written, (unsigned long long)total);
        goto fail;
    }
    if (fsync(fd) != 0) {
        int e = errno;
        rc = (e == ENOSPC || e == EDQUOT) ? disk_full(&o, e)
                                          : bt_fail(BT_EIO, "%s: fsync failed: %s; %s", partial, strerror(e), kept);
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = bt_fail(BT_EIO, "%s: close failed: %s; %s", partial, strerror(errno), kept);
        goto fail;
    }
    fd = -1;
    /* A sidecar left by an earlier commit of the same step describes other bytes. */
    if (unlink(side) == 0) {
        rc = bt_fsync_dir(out_dir);
        if (rc) goto fail;
    }
    if (rename(partial, final) != 0) {
        rc = bt_fail(BT_EIO, "%s: rename to %s failed: %s; %s", partial, name, strerror(errno), kept);
        goto fail;
    }
    rc = bt_fsync_dir(out_dir);
    if (rc) goto out; /* renamed already: nothing to undo */
    char hex[65];
    bt_sha256_hex(digest, hex);
    char *line = bt_xasprintf("%s  %s\n", hex, name);
    if (bt_write_file_atomic(side, line, strlen(line)) != BT_OK)
        bt_warn("%s (the archive itself is committed and verified by its manifest)", bt_errmsg());
    free(line);
    if (committed_path && cap) snprintf(committed_path, cap, "%s", final);
    goto out;
fail:
    if (fd >= 0) close(fd);
    unlink(partial);
out:
    free(final);
    free(partial);
    free(side);
    return rc;
}

/* "ckpt-<digits>.tar" + suffix? */
static int is_ckpt_with(const char *name, const char *suffix)
{
    if (!bt_str_ends_with(name, suffix)) return 0;
    size_t n = strlen(name) - strlen(suffix);
    char base[256];
    if (n >= sizeof base) return 0;
    memcpy(base, name, n);
    base[n] = '\0';
    return bt_archive_parse_filename(base, NULL);
}

static int is_regular(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int bt_archive_clean_stale(const char *out_dir, int *removed)
{
    if (removed) *removed = 0;
    DIR *d = opendir(out_dir);
    if (!d) {
        if (errno == ENOENT) return BT_OK;
        return bt_fail(BT_EIO, "%s: cannot list: %s", out_dir, strerror(errno));
    }
    int n = 0, rc = BT_OK;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *nm = de->d_name;
        int stale = is_ckpt_with(nm, ".partial") || is_ckpt_with(nm, ".sha256.partial") ||
                    is_ckpt_with(nm, ".sha256.tmp"); /* the name older builds used */
        char *p = bt_path_join(out_dir, nm);
        if (!stale && is_ckpt_with(nm, ".sha256")) {
            char *tar = bt_xstrndup(p, strlen(p) - strlen(".sha256"));
            stale = !bt_path_exists(tar);
            free(tar);
        }
        if (stale && is_regular(p)) {
            if (unlink(p) == 0) {
                n++;
                bt_info("removed %s (left by an interrupted commit)", p);
            } else if (errno != ENOENT) {
                rc = bt_fail(BT_EIO, "%s: cannot remove stale file: %s", p, strerror(errno));
            }
        }
        free(p);
    }
    closedir(d);
    if (n && !rc) rc = bt_fsync_dir(out_dir);
    if (removed) *removed = n;
    return rc;
}

typedef struct {
    char *name;
    int64_t step;
} ent;

static int by_step_desc(const void *a, const void *b)
{
    const ent *x = a, *y = b;
    return x->step < y->step ? 1 : x->step > y->step ? -1 : strcmp(x->name, y->name);
}

int bt_retention_apply(const char *out_dir, int keep_last, const char *best_path)
{
    return bt_retention_apply_except(out_dir, keep_last, best_path, NULL, 0);
}

static int in_list(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(name, list[i])) return 1;
    return 0;
}

int bt_retention_apply_except(const char *out_dir, int keep_last, const char *best_path,
                              const char *const *damaged, size_t n_damaged)
{
    if (keep_last <= 0) return BT_OK;
    DIR *d = opendir(out_dir);
    if (!d) return bt_fail(BT_EIO, "%s: cannot list for retention: %s", out_dir, strerror(errno));
    ent *v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        int64_t st;
        if (!bt_archive_parse_filename(de->d_name, &st) || in_list(de->d_name, damaged, n_damaged)) continue;
        /* only regular files: a directory (or FIFO, link) named like an
         * archive is neither counted among keep_last nor removed */
        char *ep = bt_path_join(out_dir, de->d_name);
        struct stat sb;
        int regular = lstat(ep, &sb) == 0 && S_ISREG(sb.st_mode);
        free(ep);
        if (!regular) continue;
        if (n == cap) v = bt_xrealloc(v, (cap = cap ? 2 * cap : 16) * sizeof *v);
        v[n].name = bt_xstrdup(de->d_name);
        v[n].step = st;
        n++;
    }
    closedir(d);
    if (n) qsort(v, n, sizeof *v, by_step_desc);
    struct stat best;
    int have_best = best_path && stat(best_path, &best) == 0;
    int rc = BT_OK, removed = 0;
    for (size_t i = (size_t)keep_last; i < n; i++) {
        char *p = bt_path_join(out_dir, v[i].name);
        struct stat st;
        if (lstat(p, &st) != 0 || !S_ISREG(st.st_mode) ||
            (have_best && st.st_dev == best.st_dev && st.st_ino == best.st_ino)) {
            free(p);
            continue;
        }
        char *side = bt_xasprintf("%s.sha256", p);
        if (unlink(side) != 0 && errno != ENOENT)
            rc = bt_fail(BT_EIO, "%s: cannot remove: %s", side, strerror(errno));
        else if (unlink(p) != 0 && errno != ENOENT)
            rc = bt_fail(BT_EIO, "%s: cannot remove old checkpoint: %s", p, strerror(errno));
        else {
            removed++;
            bt_info("retention: removed %s (keep_last %d)", p, keep_last);
        }
        free(side);
        free(p);
    }
    for (size_t i = 0; i < n; i++) free(v[i].name);
    free(v);
    if (removed && !rc) rc = bt_fsync_dir(out_dir);
    return rc;
}
