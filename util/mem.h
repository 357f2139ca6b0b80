/* util/mem.h — allocation wrappers.
 *
 * Owns: the only place that turns an out-of-memory condition into a message.
 * bt_xmalloc & co. never return NULL: on failure they print what was being
 * allocated and exit 70 (an allocation failure is not user input, and no
 * caller can do anything better). Use plain malloc where a failure can be
 * reported as a normal error instead (e.g. sizes read from a file).
 */
#ifndef BATON_UTIL_MEM_H
#define BATON_UTIL_MEM_H

#include <stddef.h>

void *bt_xmalloc(size_t n);
void *bt_xcalloc(size_t count, size_t size);
void *bt_xrealloc(void *p, size_t n);
char *bt_xstrdup(const char *s);
char *bt_xstrndup(const char *s, size_t n);
/* 64-byte aligned, for tensors; free with bt_aligned_free. */
void *bt_xaligned_alloc(size_t n);
void bt_aligned_free(void *p);
/* printf into a fresh heap string. */
char *bt_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
