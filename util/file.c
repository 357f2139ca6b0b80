/* util/file.c — POSIX file plumbing with path-naming errors (see file.h). */
#include "util/file.h"
#include "util/err.h"
#include "util/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int errno_status(int e) { return (e == ENOENT || e == ENOTDIR) ? BT_ENOINPUT : BT_EIO; }

const char *bt_file_kind(unsigned mode)
{
    switch (mode & S_IFMT) {
    case S_IFREG: return "a regular file";
    case S_IFDIR: return "a directory";
    case S_IFIFO: return "a FIFO (named pipe)";
    case S_IFSOCK: return "a socket";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    case S_IFLNK: return "a symbolic link";
    default: return "not a regular file";
    }
}

/* Opens path for reading only if it is a regular file (after symlinks).
 * O_NONBLOCK keeps open() from waiting for a writer when path is a FIFO;
 * the type is then checked on the descriptor itself (no race with a rename).
 * Returns the fd, or after bt_fail: -1 missing, -2 I/O error, -3 not a
 * regular file. */
static int open_regular(const char *path, struct stat *st)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        bt_fail(errno_status(e), "%s: cannot open: %s", path, strerror(e));
        return errno_status(e) == BT_ENOINPUT ? -1 : -2;
    }
    if (fstat(fd, st) != 0) {
        int e = errno;
        close(fd);
        bt_fail(BT_EIO, "%s: cannot stat: %s", path, strerror(e));
        return -2;
    }
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        bt_fail(BT_EDATA, "%s: is %s, not a regular file: give the path of a file", path, bt_file_kind(st->st_mode));
        return -3;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

int bt_read_file(const char *path, size_t max_bytes, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    struct stat st;
    int fd = open_regular(path, &st);
    if (fd < 0) return fd == -1 ? BT_ENOINPUT : fd == -2 ? BT_EIO : BT_EDATA;
    if ((uint64_t)st.st_size > max_bytes) {
        close(fd);
        return bt_fail(BT_EDATA, "%s: file is %lld bytes, over the limit of %zu bytes",
                       path, (long long)st.st_size, max_bytes);
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *buf = bt_xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            if (cap > max_bytes) {
                free(buf);
                close(fd);
                return bt_fail(BT_EDATA, "%s: file grew over the limit of %zu bytes", path, max_bytes);
            }
            cap *= 2;
            buf = bt_xrealloc(buf, cap);
        }
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            free(buf);
            close(fd);
            return bt_fail(BT_EIO, "%s: read failed: %s", path, strerror(e));
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return BT_OK;
}

int bt_map_file(const char *path, bt_mapping *m)
{
    static const uint8_t empty[1];
    memset(m, 0, sizeof *m);
    struct stat st;
    int fd = open_regular(path, &st);
    if (fd < 0) return fd == -1 ? BT_ENOINPUT : fd == -2 ? BT_EIO : BT_EDATA;
    if (st.st_size == 0) {
        close(fd);
        m->data = empty;
        return BT_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) return bt_fail(BT_EIO, "%s: cannot map: %s", path, strerror(e));
    m->data = p;
    m->len = (size_t)st.st_size;
    m->map_base = p;
    return BT_OK;
}

void bt_unmap_file(bt_mapping *m)
{
    if (m->map_base) munmap(m->map_base, m->len);
    memset(m, 0, sizeof *m);
}

int bt_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return bt_fail(BT_EIO, "%s: cannot open directory: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0 && e != EINVAL) return bt_fail(BT_EIO, "%s: fsync failed: %s", dir, strerror(e));
    return BT_OK;
}

int bt_publish_begin(bt_publish *p, const char *path)
{
    p->path = bt_xstrdup(path);
    p->partial = bt_xasprintf("%s.partial", path);
    p->f = fopen(p->partial, "wbe");
    if (p->f) return BT_OK;
    int e = errno, rc = bt_fail(errno_status(e), "%s: cannot create: %s", p->partial, strerror(e));
    free(p->path);
    free(p->partial);
    p->path = p->partial = NULL;
    return rc;
}

/* The publishing steps after the content: 0, or BT_EIO after bt_fail. */
static int publish_finish(bt_publish *p)
{
    int bad = fflush(p->f) != 0 || ferror(p->f);
    int e = errno;
    if (!bad && fsync(fileno(p->f)) != 0) bad = 1, e = errno;
    if (fclose(p->f) != 0 && !bad) bad = 1, e = errno;
    p->f = NULL;
    if (bad) return bt_fail(BT_EIO, "%s: write/fsync failed: %s", p->partial, strerror(e));
    if (rename(p->partial, p->path) != 0)
        return bt_fail(BT_EIO, "%s: rename to %s failed: %s", p->partial, p->path, strerror(errno));
    char *dcopy = bt_xstrdup(p->path);
    int rc = bt_fsync_dir(dirname(dcopy));
    free(dcopy);
    return rc;
}

int bt_publish_end(bt_publish *p, int ok)
{
    int rc = BT_OK;
    if (ok) rc = publish_finish(p);
    if (p->f) fclose(p->f);
    p->f = NULL;
    if (!ok || rc) unlink(p->partial);
    free(p->path);
    free(p->partial);
    p->path = p->partial = NULL;
    return rc;
}

int bt_write_file_atomic(const char *path, const void *buf, size_t len)
{
    bt_publish p;
    int rc = bt_publish_begin(&p, path);
    if (rc) return rc;
    int ok = fwrite(buf, 1, len, p.f) == len;
    if (!ok) {
        int e = errno;
        bt_publish_end(&p, 0);
        char *tmp = bt_xasprintf("%s.partial", path);
        rc = bt_fail(BT_EIO, "%s: write failed (%zu bytes): %s", tmp, len, strerror(e));
        free(tmp);
        return rc;
    }
    return bt_publish_end(&p, 1);
}

int bt_mkdirs(const char *path)
{
    char *p = bt_xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            int rc = bt_fail(BT_EIO, "%s: cannot create directory: %s", p, strerror(errno));
            free(p);
            return rc;
        }
        *s = '/';
    }
    int rc = BT_OK;
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        rc = bt_fail(BT_EIO, "%s: cannot create directory: %s", p, strerror(errno));
    free(p);
    return rc;
}

int bt_path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int bt_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *bt_path_join(const char *a, const char *b)
{
    size_t la = strlen(a);
    if (la > 0 && a[la - 1] == '/') return bt_xasprintf("%s%s", a, b);
    return bt_xasprintf("%s/%s", a, b);
}

char *bt_path_normalize(const char *path)
{
    size_t n = strlen(path);
    int absolute = path[0] == '/';
    const char **seg = bt_xmalloc((n / 2 + 2) * sizeof *seg);
    size_t *seglen = bt_xmalloc((n / 2 + 2) * sizeof *seglen);
    size_t depth = 0;
    for (const char *p = path; *p;) {
        while (*p == '/') p++;
        const char *e = p;
        while (*e && *e != '/') e++;
        size_t l = (size_t)(e - p);
        int dot = l == 1 && p[0] == '.', dotdot = l == 2 && p[0] == '.' && p[1] == '.';
        if (l == 0 || dot) {
            /* nothing */
        } else if (dotdot && depth > 0 && !(seglen[depth - 1] == 2 && !memcmp(seg[depth - 1], "..", 2))) {
            depth--;
        } else if (dotdot && absolute) {
            /* "/.." is "/" */
        } else {
            seg[depth] = p;
            seglen[depth++] = l;
        }
        p = e;
    }
    char *out = bt_xmalloc(n + 2);
    size_t len = 0;
    if (absolute) out[len++] = '/';
    for (size_t i = 0; i < depth; i++) {
        if (i) out[len++] = '/';
        memcpy(out + len, seg[i], seglen[i]);
        len += seglen[i];
    }
    if (len == 0) out[len++] = '.';
    out[len] = '\0';
    free(seg);
    free(seglen);
    return out;
}
