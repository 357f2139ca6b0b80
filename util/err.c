/* util/err.c — the per-thread last-error message (see err.h). */
#include "util/err.h"

#include <stdio.h>
#include <string.h>

#define BT_ERRMSG_MAX 4096
static _Thread_local char errmsg[BT_ERRMSG_MAX];

int bt_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, sizeof errmsg, fmt, ap);
    va_end(ap);
    return code;
}

int bt_fail_context(int code, const char *fmt, ...)
{
    char prefix[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    if (n < 0) return code;
    size_t plen = strlen(prefix);
    if (plen + 2 >= sizeof errmsg) return code;
    size_t old = strnlen(errmsg, sizeof errmsg - 1);
    if (old > sizeof errmsg - 1 - plen - 2) old = sizeof errmsg - 1 - plen - 2;
    memmove(errmsg + plen + 2, errmsg, old);
    memcpy(errmsg, prefix, plen);
    errmsg[plen] = ':';
    errmsg[plen + 1] = ' ';
    errmsg[plen + 2 + old] = '\0';
    return code;
}

const char *bt_errmsg(void) { return errmsg; }

void bt_err_clear(void) { errmsg[0] = '\0'; }

void bt_err_save(bt_err_saved *s) { snprintf(s->msg, sizeof s->msg, "%s", errmsg); }

void bt_err_restore(const bt_err_saved *s) { snprintf(errmsg, sizeof errmsg, "%s", s->msg); }

const char *bt_status_name(int code)
{
    switch (code) {
    case BT_OK: return "ok";
    case BT_EUSAGE: return "usage error";
    case BT_EDATA: return "bad data";
    case BT_ENOINPUT: return "missing input";
    case BT_EINTERNAL: return "internal error";
    case BT_EIO: return "I/O error";
    case BT_ETEMPFAIL: return "segment ended, run again";
    case BT_ECONFIG: return "bad configuration";
    default: return "error";
    }
}
