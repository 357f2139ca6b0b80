/* tests/unit/test_archive_forge.c — forges checkpoint archives whose
 * checksums are all valid (member SHA-256s, manifest self-hash, sidecar), to
 * test what baton does with contents that checksums cannot vouch for
 * (runner/archive_check.h). A helper program for the integration scripts,
 * and a unit test of itself when run without arguments.
 *
 *   test_archive_forge IN.tar OUT.tar EDIT...
 *     reads IN (which must verify), applies the edits, writes OUT and
 *     OUT.sha256 with every checksum recomputed (as state/archive.c and
 *     state/manifest.c make them). EDIT is one of:
 *       trainer.KEY=JSON       set a top-level key of trainer.json (JSON text;
 *                              "trainer.KEY=-" removes it)
 *       config.KEY=JSON        the same for config.json
 *       MEMBER:NAME:fill=V     every value of tensor NAME (V: a number, inf,
 *                              -inf, nan); NAME "*" = every F32 tensor
 *       MEMBER:NAME:set=I,V    value I of tensor NAME
 *       MEMBER:NAME:swap       the shape reversed (same bytes)
 *       MEMBER:NAME:dtype=DT   the dtype relabelled (DT of the same size: I32)
 *       MEMBER:NAME:drop       the tensor removed
 *       MEMBER:hdrlen=N        the safetensors header-length field set to N
 *       fingerprint.KEY=JSON   a field of MANIFEST.json's job fingerprint
 *                              ("fingerprint.KEY=-" removes it)
 *       format=1               written as format version 1 (no tokenizer
 *                              members; they must be empty): an archive of
 *                              the baton before archives carried tokenizers
 *     MEMBER is model (model.safetensors) or optim (optimizer.safetensors).
 *     Not a test itself: it never judges, it only forges.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_archive_fixture.h"
#include "state/manifest.h"
#include "util/sha256.h"

#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>
#include <math.h>

typedef struct {
    uint8_t *data[BT_M_COUNT - 1]; /* members but the manifest, heap */
    size_t len[BT_M_COUNT - 1];
    int64_t step;
    char *fingerprint;
    char *version;
    int format; /* format_version of the archive read (kept) */
} forge;

static void forge_free(forge *f)
{
    for (int i = 0; i < BT_M_COUNT - 1; i++) free(f->data[i]);
    free(f->fingerprint);
    free(f->version);
    memset(f, 0, sizeof *f);
}

static int forge_load(forge *f, const char *path)
{
    memset(f, 0, sizeof *f);
    bt_archive *a;
    if (bt_archive_read(path, NULL, NULL, &a)) {
        fprintf(stderr, "forge: %s: %s\n", path, bt_errmsg());
        return 1;
    }
    f->format = bt_archive_format_version(a);
    for (int i = 0; i < BT_M_COUNT - 1; i++) {
        size_t n;
        const uint8_t *p = bt_archive_member(a, bt_archive_member_name(i), &n);
        f->data[i] = bt_xmalloc(n + 1);
        if (n) memcpy(f->data[i], p, n);
        f->data[i][n] = 0;
        f->len[i] = n;
    }
    f->step = bt_archive_step(a);
    f->fingerprint = bt_xstrdup(bt_archive_fingerprint_json(a));
    f->version = bt_xstrdup(bt_archive_baton_version(a));
    bt_archive_close(a);
    return 0;
}

static void set_member(forge *f, int id, char *text)
{
    free(f->data[id]);
    f->data[id] = (uint8_t *)text;
    f->len[id] = strlen(text);
}

/* trainer.KEY=JSON / config.KEY=JSON */
static int edit_json(forge *f, int id, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq) return 1;
    char *key = bt_xstrndup(kv, (size_t)(eq - kv));
    json_t *o = json_loadb((const char *)f->data[id], f->len[id], 0, NULL);
    int rc = 1;
    if (json_is_object(o)) {
        if (!strcmp(eq + 1, "-")) {
            json_object_del(o, key);
            rc = 0;
        } else {
            json_error_t je;
            json_t *v = json_loads(eq + 1, JSON_DECODE_ANY, &je);
            if (v) {
                json_object_set_new(o, key, v);
                rc = 0;
            } else {
                fprintf(stderr, "forge: %s: not JSON: %s\n", eq + 1, je.text);
            }
        }
        if (!rc) set_member(f, id, json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER));
    }
    json_decref(o);
    free(key);
    return rc;
}

static int st_sink(void *ctx, const void *buf, size_t len)
{
    uint8_t **pp = ctx;
    memcpy(*pp, buf, len);
    *pp += len;
    return 0;
}

static float parse_value(const char *s)
{
    if (!strcmp(s, "inf")) return INFINITY;
    if (!strcmp(s, "-inf")) return -INFINITY;
    if (!strcmp(s, "nan")) return NAN;
    return strtof(s, NULL);
}

/* MEMBER:NAME:OP or MEMBER:hdrlen=N on a safetensors member. */
static int edit_tensors(forge *f, int id, const char *spec)
{
    if (!strncmp(spec, "hdrlen=", 7)) {
        uint64_t v = strtoull(spec + 7, NULL, 10);
        for (int b = 0; b < 8 && (size_t)b < f->len[id]; b++) f->data[id][b] = (uint8_t)(v >> (8 * b));
        return 0;
    }
    const char *colon = strrchr(spec, ':');
    if (!colon) return 1;
    char *name = bt_xstrndup(spec, (size_t)(colon - spec));
    const char *op = colon + 1;
    bt_st_file *sf;
    if (bt_st_open_buffer(f->data[id], f->len[id], "forge", &sf)) {
        fprintf(stderr, "forge: %s\n", bt_errmsg());
        free(name);
        return 1;
    }
    size_t n = bt_st_count(sf), ne = 0, hit = 0;
    bt_st_entry *e = bt_xcalloc(n, sizeof *e);
    void **own = bt_xcalloc(n, sizeof *own);
    for (size_t i = 0; i < n; i++) {
        const bt_st_tensor *t = bt_st_get(sf, i);
        int match = !strcmp(name, t->name) || (!strcmp(name, "*") && t->dtype == BT_ST_F32);
        if (match) hit++;
        if (match && !strcmp(op, "drop")) continue;
        bt_st_entry *x = &e[ne++];
        x->name = t->name;
        x->dtype = t->dtype;
        x->ndim = t->ndim;
        for (int d = 0; d < t->ndim; d++) x->shape[d] = t->shape[d];
        own[i] = bt_xmalloc(t->nbytes ? t->nbytes : 1);
        memcpy(own[i], t->data, t->nbytes);
        x->data = own[i];
        if (!match) continue;
        if (!strncmp(op, "fill=", 5)) {
            float v = parse_value(op + 5);
            for (int64_t k = 0; k < t->numel; k++) ((float *)own[i])[k] = v;
        } else if (!strncmp(op, "set=", 4)) {
            long long k = strtoll(op + 4, NULL, 10);
            const char *c = strchr(op + 4, ',');
            if (k >= 0 && k < t->numel && c) {
                if (t->dtype == BT_ST_I64) ((int64_t *)own[i])[k] = strtoll(c + 1, NULL, 10);
                else ((float *)own[i])[k] = parse_value(c + 1);
            }
        } else if (!strcmp(op, "swap")) {
            for (int d = 0; d < t->ndim; d++) x->shape[d] = t->shape[t->ndim - 1 - d];
        } else if (!strncmp(op, "dtype=", 6)) {
            bt_st_dtype dt;
            if (bt_st_dtype_from_name(op + 6, &dt)) x->dtype = dt;
        }
    }
    const char *meta[2 * 8 + 1];
    size_t nm = 0;
    for (size_t k = 0; k < bt_st_metadata_count(sf) && k < 8; k++) {
        meta[nm++] = bt_st_metadata_key(sf, k);
        meta[nm++] = bt_st_metadata(sf, bt_st_metadata_key(sf, k));
    }
    meta[nm] = NULL;
    uint64_t total = 0;
    int rc = hit ? bt_st_serialized_size(e, ne, nm ? meta : NULL, &total) : 1;
    if (!hit) fprintf(stderr, "forge: no tensor %s\n", name);
    uint8_t *buf = NULL;
    if (!rc) {
        buf = bt_xmalloc(total + 1);
        uint8_t *p = buf;
        rc = bt_st_write(e, ne, nm ? meta : NULL, st_sink, &p);
    }
    bt_st_close(sf);
    for (size_t i = 0; i < n; i++) free(own[i]);
    free(own);
    free(e);
    free(name);
    if (rc) {
        free(buf);
        return 1;
    }
    buf[total] = 0;
    free(f->data[id]);
    f->data[id] = buf;
    f->len[id] = (size_t)total;
    return 0;
}

/* fingerprint.KEY=JSON: the manifest's fingerprint, kept as compact JSON text */
static int edit_fingerprint(forge *f, const char *kv)
{
    forge g = {0};
    g.data[BT_M_TRAINER] = (uint8_t *)f->fingerprint;
    g.len[BT_M_TRAINER] = strlen(f->fingerprint);
    int rc = edit_json(&g, BT_M_TRAINER, kv);
    f->fingerprint = (char *)g.data[BT_M_TRAINER];
    return rc;
}

static int forge_edit(forge *f, const char *ed)
{
    if (!strncmp(ed, "fingerprint.", 12)) return edit_fingerprint(f, ed + 12);
    if (!strcmp(ed, "format=1")) {
        for (int i = bt_archive_members_of_version(1); i < BT_M_MANIFEST; i++)
            if (f->len[i]) {
                fprintf(stderr, "forge: format=1: %s is not empty\n", bt_archive_member_name(i));
                return 1;
            }
        f->format = 1;
        return 0;
    }
    if (!strncmp(ed, "trainer.", 8)) return edit_json(f, BT_M_TRAINER, ed + 8);
    if (!strncmp(ed, "config.", 7)) return edit_json(f, BT_M_CONFIG, ed + 7);
    if (!strncmp(ed, "model:", 6)) return edit_tensors(f, BT_M_MODEL, ed + 6);
    if (!strncmp(ed, "optim:", 6)) return edit_tensors(f, BT_M_OPTIM, ed + 6);
    return 1;
}

typedef struct {
    FILE *fp;
    bt_sha256_ctx *h;
} wout;

static la_ssize_t w_cb(struct archive *a, void *c, const void *buf, size_t len)
{
    (void)a;
    wout *w = c;
    bt_sha256_update(w->h, buf, len);
    return fwrite(buf, 1, len, w->fp) == len ? (la_ssize_t)len : -1;
}

static int put_member(struct archive *ar, const char *name, const void *data, size_t len)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_size(e, (la_int64_t)len);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    int rc = archive_write_header(ar, e) != ARCHIVE_OK ||
             (len && archive_write_data(ar, data, len) != (la_ssize_t)len) ||
             archive_write_finish_entry(ar) != ARCHIVE_OK;
    archive_entry_free(e);
    return rc;
}

/* OUT (+ OUT.sha256): the members, a manifest with their sizes and hashes. */
static int forge_write(const forge *f, const char *out)
{
    bt_manifest m = {.version = f->format, .step = f->step, .baton_version = f->version,
                     .fingerprint_json = f->fingerprint};
    int nm = bt_archive_members_of_version(f->format);
    for (int i = 0; i < nm; i++) {
        uint8_t d[32];
        bt_sha256(f->data[i], f->len[i], d);
        bt_sha256_hex(d, m.sha256[i]);
        m.size[i] = f->len[i];
    }
    char *mtext;
    size_t mlen;
    if (bt_manifest_build(&m, &mtext, &mlen)) return 1;
    wout w = {fopen(out, "wb"), bt_sha256_new()};
    if (!w.fp) return 1;
    struct archive *ar = archive_write_new();
    int rc = archive_write_set_format_pax_restricted(ar) != ARCHIVE_OK ||
             archive_write_set_bytes_per_block(ar, 0) != ARCHIVE_OK ||
             archive_write_open2(ar, &w, NULL, w_cb, NULL, NULL) != ARCHIVE_OK;
    for (int i = 0; i < nm && !rc; i++)
        rc = put_member(ar, bt_archive_member_name(i), f->data[i], f->len[i]);
    if (!rc) rc = put_member(ar, "MANIFEST.json", mtext, mlen);
    if (archive_write_close(ar) != ARCHIVE_OK) rc = 1;
    archive_write_free(ar);
    free(mtext);
    uint8_t d[32];
    bt_sha256_final(w.h, d);
    if (fclose(w.fp) != 0) rc = 1;
    if (rc) return 1;
    char hex[65];
    bt_sha256_hex(d, hex);
    const char *base = strrchr(out, '/');
    char *side = bt_xasprintf("%s.sha256", out);
    char *line = bt_xasprintf("%s  %s\n", hex, base ? base + 1 : out);
    fx_write(side, line, strlen(line));
    free(side);
    free(line);
    return 0;
}

static int forge_file(const char *in, const char *out, int n, char **edits)
{
    forge f;
    if (forge_load(&f, in)) return 1;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++)
        if (forge_edit(&f, edits[i])) {
            fprintf(stderr, "forge: cannot apply '%s'\n", edits[i]);
            rc = 1;
        }
    if (!rc) rc = forge_write(&f, out);
    forge_free(&f);
    return rc;
}

/* ------------------------------------------------------------- self-test */

/* Forged archives pass every checksum (manifest, members, sidecar) and carry
 * exactly the edits asked for. */
static void test_forge_roundtrip(void **state)
{
    (void)state;
    char *dir = fx_tmpdir("forge");
    fx_snap s;
    fx_make(&s, 7, 64, 3);
    char in[4096];
    assert_int_equal(bt_archive_commit(dir, &s.s, in, sizeof in), 0);
    char *out = bt_xasprintf("%s/ckpt-000000007.forged.tar", dir);
    char *edits[] = {"trainer.step=\"188\"", "config.hidden_size=9",
                     "model:classifier.weight:set=1,inf", "optim:*:fill=nan",
                     "model:bert.encoder.layer.0.attention.self.query.weight:swap"};
    assert_int_equal(forge_file(in, out, 5, edits), 0);
    bt_archive *a;
    assert_int_equal(bt_archive_read(out, NULL, NULL, &a), 0); /* every checksum holds */
    assert_int_equal(bt_archive_sidecar_checked(a), 1);
    assert_non_null(strstr(bt_archive_text(a, BT_M_TRAINER), "\"step\":\"188\""));
    assert_non_null(strstr(bt_archive_text(a, BT_M_CONFIG), "\"hidden_size\":9"));
    bt_st_file *m, *o;
    assert_int_equal(bt_archive_open_model(a, &m), 0);
    const bt_st_tensor *t = bt_st_find(m, "classifier.weight");
    assert_non_null(t);
    assert_true(isinf(bt_st_f32_view(t)[1]) && isfinite(bt_st_f32_view(t)[0]));
    const bt_st_tensor *q = bt_st_find(m, "bert.encoder.layer.0.attention.self.query.weight");
    assert_int_equal(q->shape[0], s.model[1].shape[1]);
    assert_int_equal(q->shape[1], s.model[1].shape[0]);
    assert_string_equal(bt_st_metadata(m, "format"), "pt"); /* metadata kept */
    assert_int_equal(bt_archive_open_optim(a, &o), 0);
    assert_true(isnan(bt_st_f32_view(bt_st_get(o, 0))[0]));
    bt_st_close(m);
    bt_st_close(o);
    bt_archive_close(a);
    /* a broken header length: still checksum-valid, refused only by the safetensors reader */
    char *e2[] = {"model:hdrlen=9223372036854775808", "optim:classifier.weight.exp_avg:drop"};
    assert_int_equal(forge_file(in, out, 2, e2), 0);
    assert_int_equal(bt_archive_read(out, NULL, NULL, &a), 0);
    assert_int_equal(bt_archive_open_model(a, &m), BT_EDATA);
    assert_int_equal(bt_archive_open_optim(a, &o), 0);
    assert_null(bt_st_find(o, "classifier.weight.exp_avg"));
    bt_st_close(o);
    bt_archive_close(a);
    /* an edit that does not apply is refused */
    char *e3[] = {"model:no.such.tensor:drop"};
    assert_int_equal(forge_file(in, out, 1, e3), 1);
    fx_free(&s);
    free(out);
    fx_rmrf(dir);
    free(dir);
}

int main(int argc, char **argv)
{
    if (argc >= 3) return forge_file(argv[1], argv[2], argc - 3, argv + 3) ? 1 : 0;
    if (argc != 1) {
        fprintf(stderr, "usage: test_archive_forge IN.tar OUT.tar EDIT...   (no arguments: self-test)\n");
        return 2;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_forge_roundtrip)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
