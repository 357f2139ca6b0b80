/* util/mem.c — allocation wrappers that exit 70 with a message on OOM. */
#include "util/mem.h"
#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    fprintf(stderr, "baton: out of memory allocating %zu bytes; "
                    "reduce batch_size or max_seq_len, or use a larger machine\n", n);
    exit(BT_EINTERNAL);
}

void *bt_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *bt_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) oom(count * size);
    return p;
}

void *bt_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *bt_xstrdup(const char *s) { return bt_xstrndup(s, strlen(s)); }

char *bt_xstrndup(const char *s, size_t n)
{
    char *p = bt_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void *bt_xaligned_alloc(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64) != 0) oom(n);
    return p;
}

void bt_aligned_free(void *p) { free(p); }

char *bt_xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = bt_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}
