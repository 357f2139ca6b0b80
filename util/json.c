/* util/json.c — Python-compatible JSON reading (see json.h).
 *
 * jansson refuses three things Python's json module accepts: integers beyond
 * int64 ("too big integer"), reals beyond double ("real number overflow")
 * and the NaN/Infinity literals. The strict parse is tried first; only when
 * it fails is the text rewritten (outside strings) into an equivalent that
 * jansson accepts, and parsed again. Repeated keys already behave as in
 * Python when JSON_REJECT_DUPLICATES is not passed: the last value wins.
 */
#include "util/json.h"
#include "util/err.h"
#include "util/file.h"
#include "util/mem.h"
#include "util/str.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of the JSON number token at p (0 if none). *is_int: no '.', 'e'. */
static size_t number_len(const char *p, const char *end, int *is_int)
{
    const char *q = p;
    *is_int = 1;
    if (q < end && *q == '-') q++;
    if (q >= end || *q < '0' || *q > '9') return 0;
    while (q < end && ((*q >= '0' && *q <= '9') || *q == '.' || *q == 'e' || *q == 'E' || *q == '+' ||
                       *q == '-')) {
        if (*q == '.' || *q == 'e' || *q == 'E') *is_int = 0;
        q++;
    }
    return (size_t)(q - p);
}

/* The replacement of one number token, or NULL to keep it as it is. */
static const char *rewrite_number(const char *tok, size_t n, int is_int, char *buf, size_t cap)
{
    char tmp[400];
    if (n >= sizeof tmp) { /* beyond any double's digits: magnitude decides */
        snprintf(buf, cap, "%s1.7976931348623157e308", tok[0] == '-' ? "-" : "");
        return buf;
    }
    memcpy(tmp, tok, n);
    tmp[n] = 0;
    errno = 0;
    if (is_int) {
        (void)strtoll(tmp, NULL, 10);
        if (errno != ERANGE) return NULL;
        double d = strtod(tmp, NULL); /* ~1e30 stays a (huge) real */
        snprintf(buf, cap, "%.17e", d);
        return buf;
    }
    double d = strtod(tmp, NULL);
    if (errno == ERANGE && isinf(d)) {
        snprintf(buf, cap, "%s1.7976931348623157e308", d < 0 ? "-" : "");
        return buf;
    }
    return NULL;
}

static int word_at(const char *p, const char *end, const char *w)
{
    size_t n = strlen(w);
    return (size_t)(end - p) >= n && !memcmp(p, w, n);
}

/* Rewrites text so that jansson reads it as Python would (see the top). */
static char *python_compatible(const char *text, size_t len)
{
    bt_strbuf b = {0};
    const char *p = text, *end = text + len;
    char buf[64];
    while (p < end) {
        if (*p == '"') { /* a string, escapes included, copied as it is */
            const char *q = p + 1;
            while (q < end && *q != '"') q += (*q == '\\' && q + 1 < end) ? 2 : 1;
            if (q < end) q++;
            bt_strbuf_put(&b, p, (size_t)(q - p));
            p = q;
            continue;
        }
        const char *lit = NULL;
        size_t skip = 0;
        if (word_at(p, end, "NaN")) lit = "null", skip = 3;
        else if (word_at(p, end, "Infinity")) lit = "1.7976931348623157e308", skip = 8;
        else if (word_at(p, end, "-Infinity")) lit = "-1.7976931348623157e308", skip = 9;
        if (lit) {
            bt_strbuf_put(&b, lit, strlen(lit));
            p += skip;
            continue;
        }
        int is_int;
        size_t n = (*p == '-' || (*p >= '0' && *p <= '9')) ? number_len(p, end, &is_int) : 0;
        if (n) {
            const char *r = rewrite_number(p, n, is_int, buf, sizeof buf);
            bt_strbuf_put(&b, r ? r : p, r ? strlen(r) : n);
            p += n;
            continue;
        }
        bt_strbuf_put(&b, p, 1);
        p++;
    }
    return bt_strbuf_take(&b);
}

json_t *bt_json_loads_py(const char *text, size_t len, json_error_t *err)
{
    json_t *v = json_loadb(text, len, JSON_ALLOW_NUL, err);
    if (v) return v;
    json_error_t first = *err;
    char *fixed = python_compatible(text, len);
    v = json_loads(fixed, JSON_ALLOW_NUL, err);
    free(fixed);
    if (!v) *err = first; /* a real syntax error: report it where the user's text has it */
    return v;
}

int bt_json_load_file_py(const char *path, size_t max_bytes, const char *what_to_do, json_t **out)
{
    char *text;
    size_t len;
    *out = NULL;
    int rc = bt_read_file(path, max_bytes, &text, &len);
    if (rc) return rc;
    json_error_t je;
    *out = bt_json_loads_py(text, len, &je);
    free(text);
    if (!*out)
        return bt_fail(BT_ECONFIG, "%s:%d:%d: not valid JSON: %s; %s", path, je.line, je.column, je.text,
                       what_to_do);
    return BT_OK;
}

int bt_json_as_int64(const json_t *v, long long *out, int *clamped)
{
    if (clamped) *clamped = 0;
    if (json_is_integer(v)) {
        *out = (long long)json_integer_value(v);
        return 0;
    }
    if (!json_is_real(v)) return -1;
    double d = json_real_value(v);
    if (d >= 9.2233720368547758e18 || d <= -9.2233720368547758e18) {
        *out = d > 0 ? INT64_MAX : INT64_MIN;
        if (clamped) *clamped = 1;
        return 0;
    }
    return -1;
}
