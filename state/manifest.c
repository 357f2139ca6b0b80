/* state/manifest.c — MANIFEST.json: canonical writer, strict reader (see
 * manifest.h). The manifest hashes itself: "manifest_sha256" is the SHA-256
 * of the canonical text with those 64 hex digits replaced by '0's, so damage
 * to any byte of the manifest is caught even when the sidecar is missing.
 */
#include "state/manifest.h"
#include "util/err.h"
#include "util/mem.h"
#include "util/sha256.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define SELF_KEY "\"manifest_sha256\": \""

static const char *const top_keys[] = {"format", "format_version", "step", "baton_version",
                                       "fingerprint", "members", "manifest_sha256"};
#define N_TOP (sizeof top_keys / sizeof top_keys[0])

static int is_hex64(const char *s)
{
    if (strlen(s) != 64) return 0;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

/* Last occurrence of SELF_KEY in text[0..len). */
static const char *find_self(const char *text, size_t len)
{
    size_t kl = strlen(SELF_KEY);
    if (len < kl + 64) return NULL;
    for (size_t i = len - kl - 64 + 1; i-- > 0;)
        if (!memcmp(text + i, SELF_KEY, kl)) return text + i + kl;
    return NULL;
}

static void self_hash(const char *text, size_t len, size_t hex_at, char hex[65])
{
    char *copy = bt_xmalloc(len ? len : 1);
    memcpy(copy, text, len);
    memset(copy + hex_at, '0', 64);
    uint8_t d[32];
    bt_sha256(copy, len, d);
    bt_sha256_hex(d, hex);
    free(copy);
}

int bt_manifest_build(const bt_manifest *m, char **text, size_t *len)
{
    *text = NULL;
    *len = 0;
    json_error_t jerr;
    json_t *fp = json_loads(m->fingerprint_json ? m->fingerprint_json : "{}", JSON_REJECT_DUPLICATES, &jerr);
    if (!fp || !json_is_object(fp)) {
        json_decref(fp);
        return bt_fail(BT_EINTERNAL, "manifest: the job fingerprint is not a JSON object (%s at %d:%d); "
                                     "this is a bug in the caller",
                       fp ? "not an object" : jerr.text, jerr.line, jerr.column);
    }
    json_t *root = json_object();
    json_object_set_new(root, "format", json_string(BT_ARCHIVE_FORMAT));
    int version = m->version ? m->version : BT_ARCHIVE_VERSION, nm = bt_archive_members_of_version(version);
    if (!nm) {
        json_decref(fp);
        json_decref(root);
        return bt_fail(BT_EINTERNAL, "manifest: format version %d is not one baton writes", version);
    }
    json_object_set_new(root, "format_version", json_integer(version));
    json_object_set_new(root, "step", json_integer((json_int_t)m->step));
    json_object_set_new(root, "baton_version", json_string(m->baton_version ? m->baton_version : ""));
    json_object_set_new(root, "fingerprint", fp);
    json_t *arr = json_array();
    for (int i = 0; i < nm; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(bt_archive_member_name(i)));
        json_object_set_new(o, "size", json_integer((json_int_t)m->size[i]));
        json_object_set_new(o, "sha256", json_string(m->sha256[i]));
        json_array_append_new(arr, o);
    }
    json_object_set_new(root, "members", arr);
    char zeros[65];
    memset(zeros, '0', 64);
    zeros[64] = '\0';
    json_object_set_new(root, "manifest_sha256", json_string(zeros));
    char *dumped = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    json_decref(root);
    if (!dumped) return bt_fail(BT_EINTERNAL, "manifest: cannot serialise (a string is not UTF-8?)");
    size_t n = strlen(dumped);
    char *t = bt_xmalloc(n + 2);
    memcpy(t, dumped, n);
    t[n++] = '\n';
    t[n] = '\0';
    free(dumped);
    const char *at = find_self(t, n);
    if (!at) {
        free(t);
        return bt_fail(BT_EINTERNAL, "manifest: self-hash field not found in the canonical text");
    }
    char hex[65];
    self_hash(t, n, (size_t)(at - t), hex);
    memcpy(t + (at - t), hex, 64);
    *text = t;
    *len = n;
    return BT_OK;
}

void bt_manifest_free(bt_manifest *m)
{
    free(m->baton_version);
    free(m->fingerprint_json);
    memset(m, 0, sizeof *m);
}

#define MFAIL(...) do { rc = bt_fail(BT_EDATA, __VA_ARGS__); goto out; } while (0)

int bt_manifest_parse(const char *text, size_t len, const char *label, bt_manifest *m)
{
    memset(m, 0, sizeof *m);
    int rc = BT_OK;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return bt_fail(BT_EDATA, "%s: MANIFEST.json is not valid JSON (%s, line %d column %d): the "
                                 "archive is damaged; use an older checkpoint",
                       label, jerr.text, jerr.line, jerr.column);
    if (!json_is_object(root)) MFAIL("%s: MANIFEST.json is not a JSON object: the archive is damaged", label);
    json_t *fmt = json_object_get(root, "format");
    if (!json_is_string(fmt) || strcmp(json_string_value(fmt), BT_ARCHIVE_FORMAT) != 0)
        MFAIL("%s: MANIFEST.json: format is not \"%s\": not a baton checkpoint, or damaged", label,
              BT_ARCHIVE_FORMAT);
    json_t *ver = json_object_get(root, "format_version");
    if (!json_is_integer(ver))
        MFAIL("%s: MANIFEST.json: format_version is missing or not an integer: the archive is damaged", label);
    if (json_integer_value(ver) < BT_ARCHIVE_MIN_VERSION || json_integer_value(ver) > BT_ARCHIVE_VERSION)
        MFAIL("%s: MANIFEST.json: unknown format version %lld (this baton reads versions %d to %d): "
              "use the baton that wrote it, or a newer one",
              label, (long long)json_integer_value(ver), BT_ARCHIVE_MIN_VERSION, BT_ARCHIVE_VERSION);
    m->version = (int)json_integer_value(ver);
    int nm = bt_archive_members_of_version(m->version);
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        size_t k = 0;
        while (k < N_TOP && strcmp(key, top_keys[k]) != 0) k++;
        if (k == N_TOP)
            MFAIL("%s: MANIFEST.json: unknown key \"%.64s\" in a version-%d manifest: damaged", label, key, m->version);
    }
    if (json_object_size(root) != N_TOP)
        MFAIL("%s: MANIFEST.json: %zu of the %zu keys are present: the archive is damaged", label,
              json_object_size(root), N_TOP);
    json_t *step = json_object_get(root, "step");
    if (!json_is_integer(step) || json_integer_value(step) < 0)
        MFAIL("%s: MANIFEST.json: step is not a non-negative integer: the archive is damaged", label);
    m->step = (int64_t)json_integer_value(step);
    json_t *bv = json_object_get(root, "baton_version");
    if (!json_is_string(bv)) MFAIL("%s: MANIFEST.json: baton_version is not a string: damaged", label);
    json_t *fp = json_object_get(root, "fingerprint");
    if (!json_is_object(fp)) MFAIL("%s: MANIFEST.json: fingerprint is not an object: damaged", label);
    json_t *mem = json_object_get(root, "members");
    if (!json_is_array(mem) || json_array_size(mem) != (size_t)nm)
        MFAIL("%s: MANIFEST.json: members is not a list of %d entries (format version %d): damaged", label, nm,
              m->version);
    for (int i = 0; i < nm; i++) {
        json_t *o = json_array_get(mem, (size_t)i);
        const char *want = bt_archive_member_name(i);
        if (!json_is_object(o) || json_object_size(o) != 3)
            MFAIL("%s: MANIFEST.json: members[%d] is not {name, size, sha256}: damaged", label, i);
        json_t *nm = json_object_get(o, "name"), *sz = json_object_get(o, "size"),
               *sh = json_object_get(o, "sha256");
        if (!json_is_string(nm) || strcmp(json_string_value(nm), want) != 0)
            MFAIL("%s: MANIFEST.json: members[%d] should be %s: damaged", label, i, want);
        if (!json_is_integer(sz) || json_integer_value(sz) < 0)
            MFAIL("%s: MANIFEST.json: %s: size is not a non-negative integer: damaged", label, want);
        if (!json_is_string(sh) || !is_hex64(json_string_value(sh)))
            MFAIL("%s: MANIFEST.json: %s: sha256 is not 64 lowercase hex digits: damaged", label, want);
        m->size[i] = (uint64_t)json_integer_value(sz);
        memcpy(m->sha256[i], json_string_value(sh), 65);
    }
    json_t *self = json_object_get(root, "manifest_sha256");
    if (!json_is_string(self) || !is_hex64(json_string_value(self)))
        MFAIL("%s: MANIFEST.json: manifest_sha256 is not 64 lowercase hex digits: damaged", label);
    const char *at = find_self(text, len);
    if (!at || memcmp(at, json_string_value(self), 64) != 0)
        MFAIL("%s: MANIFEST.json is not in canonical form (manifest_sha256 not found where baton "
              "writes it): damaged or edited",
              label);
    char hex[65];
    self_hash(text, len, (size_t)(at - text), hex);
    if (strcmp(hex, json_string_value(self)) != 0)
        MFAIL("%s: MANIFEST.json: content hashes to %.12s..., its manifest_sha256 says %.12s...: "
              "the manifest is damaged; use an older checkpoint",
              label, hex, json_string_value(self));
    m->baton_version = bt_xstrdup(json_string_value(bv));
    m->fingerprint_json = json_dumps(fp, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    if (!m->fingerprint_json) MFAIL("%s: MANIFEST.json: fingerprint cannot be re-serialised", label);
out:
    json_decref(root);
    if (rc) bt_manifest_free(m);
    return rc;
}
