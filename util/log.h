/* util/log.h — messages for people, on stderr.
 *
 * Owns: verbosity (quiet by default: warnings and errors; -v adds info,
 * -vv debug) and the "baton: " prefix. Progress bars live in runner/, not here.
 */
#ifndef BATON_UTIL_LOG_H
#define BATON_UTIL_LOG_H

enum bt_log_level { BT_LOG_ERROR = 0, BT_LOG_WARN = 1, BT_LOG_INFO = 2, BT_LOG_DEBUG = 3 };

void bt_log_set_level(int level);
int bt_log_get_level(void);
void bt_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define bt_error(...) bt_log(BT_LOG_ERROR, __VA_ARGS__)
#define bt_warn(...)  bt_log(BT_LOG_WARN, __VA_ARGS__)
#define bt_info(...)  bt_log(BT_LOG_INFO, __VA_ARGS__)
#define bt_debug(...) bt_log(BT_LOG_DEBUG, __VA_ARGS__)

#endif
