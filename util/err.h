/* util/err.h — error reporting shared by every layer.
 *
 * Owns: the error codes (sysexits values, so they double as process exit
 * codes), the per-thread "last error" message, and the helpers that fill it.
 * Must not: print anything itself (the runner decides what reaches the user),
 * abort on user input, or know about any other subsystem.
 *
 * Convention: a function that can fail returns int, 0 on success or one of
 * the BT_E* codes below, after calling bt_fail() with a message that says
 * WHAT went wrong, WHERE (file:line, tensor or member name) and, when there is
 * one, WHAT TO DO. Callers that add context use bt_fail_context().
 */
#ifndef BATON_UTIL_ERR_H
#define BATON_UTIL_ERR_H

#include <stdarg.h>

enum bt_status {
    BT_OK        = 0,
    BT_EUSAGE    = 64, /* bad command line                         (EX_USAGE)    */
    BT_EDATA     = 65, /* bad input data: malformed file, bad UTF-8 (EX_DATAERR)  */
    BT_ENOINPUT  = 66, /* a file or directory that must exist does not (EX_NOINPUT) */
    BT_EINTERNAL = 70, /* a bug or an impossible state            (EX_SOFTWARE) */
    BT_EIO       = 74, /* read/write failure, disk full            (EX_IOERR)    */
    BT_ETEMPFAIL = 75, /* segment ended early: run again           (EX_TEMPFAIL) */
    BT_ECONFIG   = 78, /* bad job file or model config             (EX_CONFIG)   */
};

/* Records a message (printf-style) as this thread's last error; returns code
 * so that `return bt_fail(BT_EDATA, "...")` reads naturally. */
int bt_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "context: " to the current message (e.g. the file being loaded);
 * returns code unchanged. */
int bt_fail_context(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The last error message of this thread ("" if none). */
const char *bt_errmsg(void);

/* Clears the last error. */
void bt_err_clear(void);

/* The current message, kept aside while code that may fail on its own (a
 * status write after an error, say) runs, then put back: the first error of
 * a failure is the one the user sees. */
typedef struct {
    char msg[4096];
} bt_err_saved;
void bt_err_save(bt_err_saved *s);
void bt_err_restore(const bt_err_saved *s);

/* Short name of a status code ("bad data", "I/O error", ...). */
const char *bt_status_name(int code);

#endif
