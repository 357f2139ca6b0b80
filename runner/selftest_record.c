/* runner/selftest_record.c — selfcheck.json, the record of self-check passes
 * (format: docs/cuda.md, "The record").
 *
 * Owns: the file's layout, its self-hash (the SHA-256 of the canonical text
 * with the 64 hex digits of "sha256" replaced by '0's, as MANIFEST.json), the
 * strict reader and the atomic writer, and the key match.
 * Must not: decide whether to check (selftest_gate.c), or record anything
 * but a pass.
 */
#include "runner/selftest.h"

#include "util/err.h"
#include "util/file.h"
#include "util/mem.h"
#include "util/sha256.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FORMAT "baton-selfcheck"
#define VERSION 1
#define MAX_BYTES (1u << 20)
#define SELF_KEY "\"sha256\": \""

static const char *const key_fields[] = {"gpu", "cc", "driver", "cublaslt", "baton", "baton_sha256",
                                         "backend_sha256", "precision"};
#define N_KEY (sizeof key_fields / sizeof key_fields[0])

static const char *key_value(const bt_selftest_key *k, size_t i)
{
    const char *v[N_KEY] = {k->gpu, k->cc, k->driver, k->cublaslt, k->baton, k->baton_sha256, k->backend_sha256,
                            k->precision};
    return v[i];
}

char *bt_selfcheck_out_path(const char *out_dir) { return bt_path_join(out_dir, "selfcheck.json"); }

char *bt_selfcheck_cache_path(void)
{
    const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (x && x[0] == '/') return bt_xasprintf("%s/baton/selfcheck.json", x);
    if (home && home[0]) return bt_xasprintf("%s/.cache/baton/selfcheck.json", home);
    return NULL;
}

/* Last occurrence of SELF_KEY followed by 64 characters, or NULL. */
static const char *find_self(const char *text, size_t len)
{
    size_t kl = strlen(SELF_KEY);
    if (len < kl + 64) return NULL;
    for (size_t i = len - kl - 64 + 1; i-- > 0;)
        if (!memcmp(text + i, SELF_KEY, kl)) return text + i + kl;
    return NULL;
}

static void self_hash(const char *text, size_t len, size_t at, char hex[65])
{
    char *copy = bt_xmalloc(len ? len : 1);
    memcpy(copy, text, len);
    memset(copy + at, '0', 64);
    uint8_t d[32];
    bt_sha256(copy, len, d);
    bt_sha256_hex(d, hex);
    free(copy);
}

/* The records array of a valid file (new reference), else NULL with *why. */
static json_t *load_records(const char *path, char *why, size_t cap)
{
    char *text = NULL;
    size_t len = 0;
    int rc = bt_read_file(path, MAX_BYTES, &text, &len);
    if (rc) {
        if (rc != BT_ENOINPUT) snprintf(why, cap, "%s: unreadable (%s)", path, bt_errmsg());
        bt_err_clear();
        return NULL;
    }
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je), *recs = NULL;
    const char *at = find_self(text, len);
    json_t *fmt = json_object_get(root, "format"), *ver = json_object_get(root, "version"),
           *sum = json_object_get(root, "sha256");
    char hex[65] = "";
    if (at) self_hash(text, len, (size_t)(at - text), hex);
    if (!root || !json_is_object(root))
        snprintf(why, cap, "%s: not JSON (%s, line %d): damaged; it is rewritten by the next passing check", path,
                 root ? "not an object" : je.text, je.line);
    else if (!json_is_string(fmt) || strcmp(json_string_value(fmt), FORMAT))
        snprintf(why, cap, "%s: not a baton self-check record (format is not \"%s\"); ignored", path, FORMAT);
    else if (!json_is_integer(ver) || json_integer_value(ver) != VERSION)
        snprintf(why, cap, "%s: record version %s, this baton reads version %d; ignored (a newer baton wrote it?)",
                 path, json_is_integer(ver) ? "other" : "missing", VERSION);
    else if (!json_is_string(sum) || strlen(json_string_value(sum)) != 64 || !at ||
             memcmp(at, json_string_value(sum), 64) != 0)
        snprintf(why, cap, "%s: no sha256 where baton writes it: damaged or edited; it is rewritten by the next "
                           "passing check", path);
    else if (strcmp(hex, json_string_value(sum)) != 0)
        snprintf(why, cap, "%s: content hashes to %.12s..., its sha256 says %.12s...: damaged; it is rewritten by "
                           "the next passing check", path, hex, json_string_value(sum));
    else if (!json_is_array(recs = json_object_get(root, "records")))
        snprintf(why, cap, "%s: no records array: damaged", path);
    else
        json_incref(recs);
    if (!json_is_array(recs)) recs = NULL;
    json_decref(root);
    free(text);
    return recs;
}

static int matches(json_t *rec, const bt_selftest_key *k)
{
    if (!json_is_object(rec)) return 0;
    for (size_t i = 0; i < N_KEY; i++) {
        json_t *v = json_object_get(rec, key_fields[i]);
        if (!json_is_string(v) || strcmp(json_string_value(v), key_value(k, i))) return 0;
    }
    json_t *res = json_object_get(rec, "result");
    return json_is_string(res) && !strcmp(json_string_value(res), "pass");
}

static double real_of(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

int bt_selfcheck_find(const char *path, const bt_selftest_key *key, bt_selftest_result *found, char *note,
                      size_t note_cap)
{
    char why[1024] = "";
    if (note && note_cap) note[0] = 0;
    json_t *recs = path ? load_records(path, why, sizeof why) : NULL;
    if (!recs) {
        if (note && note_cap) snprintf(note, note_cap, "%s", why);
        return 0;
    }
    int hit = 0;
    size_t i;
    json_t *r;
    json_array_foreach(recs, i, r) {
        if (!matches(r, key)) continue;
        hit = 1;
        if (!found) continue;
        memset(found, 0, sizeof *found);
        found->pass = 1;
        found->limit = real_of(r, "limit");
        found->loss_err = real_of(r, "loss_error");
        found->grad_err = real_of(r, "grad_error");
        found->weight_err = real_of(r, "weight_error");
        found->seconds = real_of(r, "seconds");
        json_t *w = json_object_get(r, "checked_at");
        snprintf(found->checked_at, sizeof found->checked_at, "%s", json_is_string(w) ? json_string_value(w) : "?");
    }
    json_decref(recs);
    return hit;
}

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static json_t *new_record(const bt_selftest_key *k, const bt_selftest_result *r)
{
    json_t *o = json_object();
    for (size_t i = 0; i < N_KEY; i++) json_object_set_new(o, key_fields[i], json_string(key_value(k, i)));
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (r->checked_at[0]) snprintf(when, sizeof when, "%s", r->checked_at); /* a pass copied from the other place */
    json_object_set_new(o, "result", json_string("pass"));
    json_object_set_new(o, "limit", num(r->limit));
    json_object_set_new(o, "loss_error", num(r->loss_err));
    json_object_set_new(o, "grad_error", num(r->grad_err));
    json_object_set_new(o, "weight_error", num(r->weight_err));
    json_object_set_new(o, "seconds", num(r->seconds));
    json_object_set_new(o, "checked_at", json_string(when));
    return o;
}

int bt_selfcheck_add(const char *path, const bt_selftest_key *key, const bt_selftest_result *r)
{
    if (!r->pass) return bt_fail(BT_EINTERNAL, "selfcheck: only a pass is recorded (a bug in the caller)");
    char why[1024] = "";
    json_t *old = load_records(path, why, sizeof why), *recs = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(old, i, v) {
        if (!matches(v, key) && json_is_object(v)) json_array_append(recs, v);
    }
    json_decref(old);
    json_array_append_new(recs, new_record(key, r));
    while (json_array_size(recs) > BT_SELFCHECK_MAX) json_array_remove(recs, 0);
    json_t *root = json_pack("{s:s, s:i, s:o, s:s}", "format", FORMAT, "version", VERSION, "records", recs, "sha256",
                             "0000000000000000000000000000000000000000000000000000000000000000");
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    json_decref(root);
    if (!text) return bt_fail(BT_EINTERNAL, "%s: the record cannot be serialised", path);
    size_t len = strlen(text);
    const char *at = find_self(text, len);
    char hex[65];
    self_hash(text, len, (size_t)(at - text), hex);
    memcpy(text + (at - text), hex, 64);
    char *dir = bt_xstrdup(path);
    char *slash = strrchr(dir, '/');
    int rc = BT_OK;
    if (slash && slash != dir) {
        *slash = 0;
        rc = bt_mkdirs(dir);
    }
    free(dir);
    if (!rc) rc = bt_write_file_atomic(path, text, len);
    free(text);
    return rc;
}
