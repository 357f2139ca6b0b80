/* util/str.h — the small string helpers every layer needs, in one place.
 *
 * Owns: trimming, prefix/suffix tests, and a growable NUL-terminated string
 * buffer (append bytes, text, printf), so no file defines its own.
 * Must not: know any format (JSON, INI, SVG): callers escape what they write.
 */
#ifndef BATON_UTIL_STR_H
#define BATON_UTIL_STR_H

#include <stddef.h>

/* s without leading and trailing white space (isspace): moves the start,
 * cuts the end in place. */
char *bt_str_trim(char *s);
int bt_str_starts_with(const char *s, const char *prefix);
int bt_str_ends_with(const char *s, const char *suffix);

/* A growable string: s is NUL-terminated (NULL until the first append) and
 * owned by the buffer; take it over with bt_strbuf_take. Zero-initialise. */
typedef struct {
    char *s;
    size_t len, cap;
} bt_strbuf;

void bt_strbuf_put(bt_strbuf *b, const char *p, size_t n);
void bt_strbuf_puts(bt_strbuf *b, const char *p);
void bt_strbuf_printf(bt_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The text (heap, "" when nothing was appended); the buffer is empty after. */
char *bt_strbuf_take(bt_strbuf *b);
void bt_strbuf_free(bt_strbuf *b);

#endif
