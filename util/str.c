/* util/str.c — string helpers (see str.h). */
#include "util/str.h"
#include "util/mem.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *bt_str_trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

int bt_str_starts_with(const char *s, const char *prefix) { return !strncmp(s, prefix, strlen(prefix)); }

int bt_str_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static void reserve(bt_strbuf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (b->len + more + 1 > cap) cap *= 2;
    b->s = bt_xrealloc(b->s, cap);
    b->cap = cap;
}

void bt_strbuf_put(bt_strbuf *b, const char *p, size_t n)
{
    reserve(b, n);
    memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void bt_strbuf_puts(bt_strbuf *b, const char *p) { bt_strbuf_put(b, p, strlen(p)); }

void bt_strbuf_printf(bt_strbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need <= 0) return;
    reserve(b, (size_t)need);
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)need;
}

char *bt_strbuf_take(bt_strbuf *b)
{
    char *s = b->s ? b->s : bt_xstrdup("");
    b->s = NULL;
    b->len = b->cap = 0;
    return s;
}

void bt_strbuf_free(bt_strbuf *b)
{
    free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
}
