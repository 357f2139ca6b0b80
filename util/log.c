/* util/log.c — leveled messages on stderr (see log.h). */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>

static int log_level = BT_LOG_WARN;

void bt_log_set_level(int level) { log_level = level; }
int bt_log_get_level(void) { return log_level; }

void bt_log(int level, const char *fmt, ...)
{
    static const char *tags[] = {"error: ", "warning: ", "", "debug: "};
    if (level > log_level) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "baton: %s", tags[level < 0 ? 0 : level > 3 ? 3 : level]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
