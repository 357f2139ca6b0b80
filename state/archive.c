/* state/archive.c — checkpoint archive writer and validating in-memory reader
 * on libarchive (see archive.h; format in docs/checkpoints.md).
 *
 * Writer: pax-restricted tar (plain ustar headers for every member smaller
 * than 8 GiB), libarchive's output blocking switched off so tensor bytes go
 * from the caller's memory through one hash update each straight to the
 * output callback: no second copy of the state is ever made.
 * Reader: the file is mapped read-only and parsed by libarchive from memory
 * with only the tar format enabled (no decompression filters, so compressed
 * input is refused, never inflated); every entry is checked before a byte of
 * it is allocated. Nothing is ever written to disk.
 */
#include "state/archive.h"
#include "state/archive_read_hash.h"
#include "state/manifest.h"
#include "util/err.h"
#include "util/file.h"
#include "util/mem.h"
#include "util/sha256.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifndef BATON_VERSION
#define BATON_VERSION "0.0.0-dev"
#endif

static const char *const member_names[BT_M_COUNT] = {
    "model.safetensors", "optimizer.safetensors", "trainer.json", "job.ini",
    "config.json",       "vocab.txt",             "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "MANIFEST.json",
};

int bt_archive_members_of_version(int v)
{
    return v == 1 ? BT_M_VOCAB + 1 : v == 2 ? BT_M_MANIFEST : 0;
}

const char *bt_archive_member_name(int id)
{
    return (id >= 0 && id < BT_M_COUNT) ? member_names[id] : NULL;
}

static int member_id(const char *name)
{
    for (int i = 0; i < BT_M_COUNT; i++)
        if (!strcmp(name, member_names[i])) return i;
    return -1;
}

#define MiB (1024ull * 1024ull)
#define GiB (1024ull * MiB)

void bt_archive_limits_default(bt_archive_limits *lim)
{
    lim->model = 8 * GiB;
    lim->optim = 16 * GiB;
    lim->trainer = 256 * MiB;
    lim->text = 4 * MiB;
    lim->vocab = 64 * MiB;
    lim->manifest = 1 * MiB;
}

void bt_archive_limits_for_model(bt_archive_limits *lim, uint64_t model_bytes)
{
    bt_archive_limits_default(lim);
    lim->model = model_bytes + 16 * MiB;
    lim->optim = 2 * model_bytes + 16 * MiB;
}

static uint64_t limit_of(const bt_archive_limits *lim, int id)
{
    switch (id) {
    case BT_M_MODEL: return lim->model;
    case BT_M_OPTIM: return lim->optim;
    case BT_M_TRAINER: return lim->trainer;
    case BT_M_JOB: case BT_M_CONFIG: case BT_M_TOKCONFIG: case BT_M_SPECIAL: return lim->text;
    case BT_M_VOCAB: case BT_M_TOKJSON: return lim->vocab;
    default: return lim->manifest;
    }
}

/* ======================================================================
 * writer
 * ====================================================================== */

static const char *const model_meta[] = {"format", "pt", NULL};

typedef struct {
    struct archive *a;
    const char *label;
    bt_archive_out out;   /* NULL: dry run (sizing) */
    void *octx;
    bt_sha256_ctx *file_h;
    bt_sha256_ctx *mem_h; /* current member's hash */
    uint64_t written;
    int rc;               /* first error from out (message already set) */
    /* The first block is held back and passed on with the second: libarchive
     * (3.6) leaks a little when the very first output call fails. */
    uint8_t *held;
    size_t held_len;
    int calls;
} wctx;

static int w_emit(wctx *w, const void *buf, size_t len)
{
    if (w->file_h) bt_sha256_update(w->file_h, buf, len);
    int rc = w->out(w->octx, buf, len);
    if (rc) w->rc = rc;
    return rc;
}

static int w_flush_held(wctx *w)
{
    int rc = BT_OK;
    if (w->held) {
        if (!w->rc) rc = w_emit(w, w->held, w->held_len);
        free(w->held);
        w->held = NULL;
    }
    return rc ? rc : w->rc;
}

static la_ssize_t w_cb(struct archive *a, void *c, const void *buf, size_t len)
{
    wctx *w = c;
    if (w->rc) return -1;
    if (w->out) {
        if (w->calls++ == 0) {
            w->held = bt_xmalloc(len ? len : 1);
            memcpy(w->held, buf, len);
            w->held_len = len;
        } else if (w_flush_held(w) || w_emit(w, buf, len)) {
            archive_set_error(a, EIO, "output failed");
            return -1;
        }
    }
    w->written += len;
    return (la_ssize_t)len;
}

static int werr(wctx *w, const char *what, const char *member)
{
    if (w->rc) return w->rc;
    const char *es = archive_error_string(w->a);
    return bt_fail(BT_EIO, "%s: %s %s: %s", w->label, what, member, es ? es : "libarchive error");
}

static int begin_member(wctx *w, const char *name, uint64_t size)
{
    struct archive_entry *e = archive_entry_new();
    if (!e) return bt_fail(BT_EINTERNAL, "%s: out of memory", w->label);
    archive_entry_set_pathname(e, name);
    archive_entry_set_size(e, (la_int64_t)size);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_mtime(e, 0, 0);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    int r = archive_write_header(w->a, e);
    archive_entry_free(e);
    if (r != ARCHIVE_OK) return werr(w, "writing the header of", name);
    if (w->out) w->mem_h = bt_sha256_new();
    return BT_OK;
}

static int member_data(void *c, const void *buf, size_t len)
{
    wctx *w = c;
    const char *p = buf;
    if (w->mem_h) bt_sha256_update(w->mem_h, buf, len);
    while (len > 0) {
        la_ssize_t n = archive_write_data(w->a, p, len);
        if (n <= 0) return werr(w, "writing", "member data");
        p += n;
        len -= (size_t)n;
    }
    return BT_OK;
}

static int end_member(wctx *w, char hex[65])
{
    if (archive_write_finish_entry(w->a) != ARCHIVE_OK) return werr(w, "finishing", "member");
    if (w->mem_h) {
        uint8_t d[32];
        bt_sha256_final(w->mem_h, d);
        w->mem_h = NULL;
        bt_sha256_hex(d, hex);
    } else {
        memset(hex, '0', 64);
        hex[64] = '\0';
    }
    return BT_OK;
}

static int check_json_object(const char *text, const char *what)
{
    if (!text) return bt_fail(BT_EINTERNAL, "checkpoint snapshot: %s is missing (a bug in the caller)", what);
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    int ok = j && json_is_object(j);
    json_decref(j);
    if (!ok)
        return bt_fail(BT_EINTERNAL, "checkpoint snapshot: %s is not a JSON object (%s, line %d): a bug in the caller",
                       what, j ? "not an object" : jerr.text, jerr.line);
    return BT_OK;
}

static int write_all(const bt_snapshot *s, const char *label, bt_archive_out out, void *octx,
                     uint8_t file_sha256[32], uint64_t *total)
{
    if (s->step < 0) return bt_fail(BT_EINTERNAL, "checkpoint snapshot: negative step %lld", (long long)s->step);
    int rc = check_json_object(s->trainer_json, "trainer.json");
    if (!rc) rc = check_json_object(s->fingerprint_json, "the job fingerprint");
    if (rc) return rc;
#define T_(x) ((x) ? (x) : "")
    const char *texts[BT_M_COUNT] = {NULL, NULL, s->trainer_json, T_(s->job_ini), T_(s->config_json),
                                     T_(s->vocab_txt), T_(s->tokenizer_json), T_(s->tokenizer_config_json),
                                     T_(s->special_tokens_map_json), NULL};
#undef T_
    int version = s->format_version ? s->format_version : BT_ARCHIVE_VERSION;
    int nm = bt_archive_members_of_version(version);
    if (!nm) return bt_fail(BT_EINTERNAL, "checkpoint snapshot: format version %d is not one baton writes", version);
    for (int i = nm; i < BT_M_MANIFEST; i++)
        if (texts[i][0])
            return bt_fail(BT_EINTERNAL, "checkpoint snapshot: format version %d has no %s member (a bug in the "
                                         "caller)", version, member_names[i]);
    uint64_t sizes[BT_M_COUNT] = {0};
    rc = bt_st_serialized_size(s->model, s->n_model, model_meta, &sizes[BT_M_MODEL]);
    if (!rc) rc = bt_st_serialized_size(s->optim, s->n_optim, NULL, &sizes[BT_M_OPTIM]);
    if (rc) return bt_fail_context(rc, "%s", label);
    for (int i = BT_M_TRAINER; i < nm; i++) sizes[i] = strlen(texts[i]);

    wctx w = {.label = label, .out = out, .octx = octx};
    w.a = archive_write_new();
    if (!w.a) return bt_fail(BT_EINTERNAL, "%s: libarchive: out of memory", label);
    if (archive_write_set_format_pax_restricted(w.a) != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(w.a, 0) != ARCHIVE_OK ||
        archive_write_open2(w.a, &w, NULL, w_cb, NULL, NULL) != ARCHIVE_OK) {
        rc = werr(&w, "opening", "the tar writer");
        archive_write_free(w.a);
        return rc;
    }
    if (out) w.file_h = bt_sha256_new();
    bt_manifest m = {.version = version, .step = s->step,
                     .baton_version = (char *)(s->baton_version ? s->baton_version : BATON_VERSION),
                     .fingerprint_json = (char *)s->fingerprint_json};
    for (int i = 0; i < nm && !rc; i++) {
        m.size[i] = sizes[i];
        rc = begin_member(&w, member_names[i], sizes[i]);
        if (rc) break;
        if (i == BT_M_MODEL) rc = bt_st_write(s->model, s->n_model, model_meta, member_data, &w);
        else if (i == BT_M_OPTIM) rc = bt_st_write(s->optim, s->n_optim, NULL, member_data, &w);
        else rc = member_data(&w, texts[i], sizes[i]);
        if (!rc) rc = end_member(&w, m.sha256[i]);
    }
    char *mtext = NULL;
    size_t mlen = 0;
    if (!rc) rc = bt_manifest_build(&m, &mtext, &mlen);
    if (!rc) rc = begin_member(&w, member_names[BT_M_MANIFEST], mlen);
    if (!rc) rc = member_data(&w, mtext, mlen);
    char mhex[65];
    if (!rc) rc = end_member(&w, mhex);
    free(mtext);
    if (!rc && archive_write_close(w.a) != ARCHIVE_OK) rc = werr(&w, "closing", "the tar");
    if (!rc && w.out) rc = w_flush_held(&w);
    free(w.held);
    w.held = NULL;
    if (w.mem_h) {
        uint8_t d[32];
        bt_sha256_final(w.mem_h, d);
    }
    archive_write_free(w.a);
    uint8_t d[32];
    if (w.file_h) bt_sha256_final(w.file_h, d);
    if (!rc && file_sha256 && out) memcpy(file_sha256, d, 32);
    if (total) *total = w.written;
    return rc;
}

int bt_archive_size(const bt_snapshot *s, uint64_t *bytes)
{
    *bytes = 0;
    return write_all(s, "checkpoint (sizing)", NULL, NULL, NULL, bytes);
}

int bt_archive_write(const bt_snapshot *s, const char *label, bt_archive_out out, void *ctx,
                     uint8_t file_sha256[32])
{
    if (!out) return bt_fail(BT_EINTERNAL, "bt_archive_write: no output");
    return write_all(s, label, out, ctx, file_sha256, NULL);
}

/* ======================================================================
 * reader
 * ====================================================================== */

struct bt_archive {
    char *path;
    uint64_t file_size;
    uint8_t *data[BT_M_COUNT]; /* NUL-terminated; tensors: aligned, NULL if not kept */
    uint64_t size[BT_M_COUNT];
    char sha[BT_M_COUNT][65];
    bt_manifest man;
    int sidecar_checked;
    int kept;
};

void bt_archive_close(bt_archive *a)
{
    if (!a) return;
    for (int i = 0; i < BT_M_COUNT; i++) free(a->data[i]);
    bt_manifest_free(&a->man);
    free(a->path);
    free(a);
}

static int is_tensor(int id) { return id == BT_M_MODEL || id == BT_M_OPTIM; }

static const char *filetype_name(mode_t t)
{
    switch (t) {
    case AE_IFLNK: return "a symbolic link";
    case AE_IFDIR: return "a directory";
    case AE_IFCHR: return "a character device";
    case AE_IFBLK: return "a block device";
    case AE_IFIFO: return "a FIFO";
    case AE_IFSOCK: return "a socket";
    default: return "not a regular file";
    }
}

/* Checks one entry's header; returns its member id or -1 after bt_fail. */
static int check_entry(struct archive_entry *e, const char *label, const bt_archive_limits *lim,
                       const int *seen, uint64_t avail, int *rc)
{
    const char *name = archive_entry_pathname(e);
    *rc = BT_EDATA;
    if (!name || !name[0]) {
        bt_fail(BT_EDATA, "%s: an entry has no name: not a baton checkpoint, or damaged", label);
        return -1;
    }
    mode_t ft = archive_entry_filetype(e);
    if (archive_entry_hardlink(e)) {
        bt_fail(BT_EDATA, "%s: entry '%.200s' is a hard link, not a regular file: refused", label, name);
        return -1;
    }
    if (ft != AE_IFREG || archive_entry_symlink(e)) {
        bt_fail(BT_EDATA, "%s: entry '%.200s' is %s, not a regular file: refused", label, name,
                archive_entry_symlink(e) ? "a symbolic link" : filetype_name(ft));
        return -1;
    }
    if (strchr(name, '/') || strstr(name, "..")) {
        bt_fail(BT_EDATA, "%s: entry '%.200s' has a path ('/' or '..') where a bare member name belongs: "
                          "refused (baton never extracts archives; this one was not written by baton)",
                label, name);
        return -1;
    }
    int id = member_id(name);
    if (id < 0) {
        bt_fail(BT_EDATA, "%s: unknown member '%.200s' (a baton checkpoint holds only model.safetensors, "
                          "optimizer.safetensors, trainer.json, job.ini, config.json, vocab.txt, "
                          "tokenizer.json, tokenizer_config.json, special_tokens_map.json, "
                          "MANIFEST.json): damaged or not a baton checkpoint",
                label, name);
        return -1;
    }
    if (seen[id]) {
        bt_fail(BT_EDATA, "%s: member %s appears twice: refused (a baton checkpoint holds each member once)",
                label, name);
        return -1;
    }
    if (archive_entry_sparse_count(e) > 0) {
        bt_fail(BT_EDATA, "%s: member %s is a sparse entry: refused", label, name);
        return -1;
    }
    if (!archive_entry_size_is_set(e) || archive_entry_size(e) < 0) {
        bt_fail(BT_EDATA, "%s: member %s has no valid size: damaged", label, name);
        return -1;
    }
    uint64_t sz = (uint64_t)archive_entry_size(e);
    uint64_t cap = limit_of(lim, id);
    if (sz > cap) {
        bt_fail(BT_EDATA, "%s: member %s claims %llu bytes, over the limit of %llu bytes for it: damaged "
                          "or hostile (raise the limit only if the model really is that large)",
                label, name, (unsigned long long)sz, (unsigned long long)cap);
        return -1;
    }
    if (sz > avail) {
        bt_fail(BT_EDATA, "%s: member %s claims %llu bytes but the archive has only %llu bytes left: "
                          "truncated or damaged",
                label, name, (unsigned long long)sz, (unsigned long long)avail);
        return -1;
    }
    *rc = BT_OK;
    return id;
}

static int check_trainer(bt_archive *a, const char *label)
{
    json_error_t jerr;
    json_t *j = json_loadb((const char *)a->data[BT_M_TRAINER], a->size[BT_M_TRAINER], JSON_REJECT_DUPLICATES, &jerr);
    int rc = BT_OK;
    if (!j || !json_is_object(j))
        rc = bt_fail(BT_EDATA, "%s: trainer.json is not a JSON object (%s): damaged", label,
                     j ? "another JSON type" : jerr.text);
    else {
        json_t *st = json_object_get(j, "step");
        if (st && json_is_integer(st) && json_integer_value(st) != a->man.step)
            rc = bt_fail(BT_EDATA, "%s: trainer.json says step %lld, MANIFEST.json step %lld: damaged", label,
                         (long long)json_integer_value(st), (long long)a->man.step);
    }
    json_decref(j);
    return rc;
}

/* The compression whose magic BUF starts with ("gzip", ...), or NULL. */
static const char *compression_magic(const uint8_t *buf, size_t len)
{
    static const struct { const char *magic; size_t n; const char *name; } z[] = {
        {"\x1f\x8b", 2, "gzip"}, {"BZh", 3, "bzip2"}, {"\xfd" "7zXZ", 5, "xz"},
        {"\x28\xb5\x2f\xfd", 4, "zstd"}, {"\x04\x22\x4d\x18", 4, "lz4"}, {"PK\x03\x04", 4, "zip"},
    };
    for (size_t i = 0; i < sizeof z / sizeof z[0]; i++)
        if (len >= z[i].n && !memcmp(buf, z[i].magic, z[i].n)) return z[i].name;
    return NULL;
}

static int compressed(const char *label, const char *name)
{
    return bt_fail(BT_EDATA, "%s: is %s-compressed: baton checkpoints are plain uncompressed tar, and "
                             "compressed input is refused, never inflated",
                   label, name);
}

static int not_tar(const uint8_t *buf, size_t len, const char *label, const char *es)
{
    const char *z = compression_magic(buf, len);
    if (z) return compressed(label, z);
    return bt_fail(BT_EDATA, "%s: not a valid tar archive (%s): damaged or truncated; use an older checkpoint", label,
                   es ? es : "libarchive error");
}

/* The whole-file hash (sidecar) carried along by read_core: every byte of the
 * buffer before pos has been hashed into h, in order. */
typedef struct {
    bt_ahash h;
    size_t pos;
} fhash_inline;

static void fh_to(fhash_inline *fh, const uint8_t *buf, size_t upto)
{
    if (fh && upto > fh->pos) {
        bt_ahash_update(&fh->h, buf + fh->pos, upto - fh->pos);
        fh->pos = upto;
    }
}

/* Bytes p[0..n) into the member hash h and, when fh is not NULL, the
 * whole-file hash (p lies at fh->pos in the file): one pass, two lanes. */
static void hash_both(bt_ahash *h, fhash_inline *fh, const uint8_t *p, size_t n)
{
    size_t k = fh ? bt_ahash_update2(&fh->h, h, p, n) : 0;
    if (fh) bt_ahash_update(&fh->h, p + k, n - k);
    bt_ahash_update(h, p + k, n - k);
    if (fh) fh->pos += n;
}

/* fh: NULL, or the whole-file hash to carry along (buf is the whole file);
 * on success the caller hashes what remains after fh->pos. */
static int read_core(const uint8_t *buf, size_t len, const char *label, const bt_archive_limits *lim_in,
                     const char *expect_fp, int flags, fhash_inline *fh, bt_archive **out)
{
    *out = NULL;
    bt_archive_limits dl;
    if (!lim_in) bt_archive_limits_default(&dl);
    const bt_archive_limits *lim = lim_in ? lim_in : &dl;
    bt_archive *A = bt_xcalloc(1, sizeof *A);
    A->path = bt_xstrdup(label);
    A->file_size = len;
    A->kept = (flags & BT_ARCHIVE_KEEP_TENSORS) != 0;
    int seen[BT_M_COUNT] = {0};
    int rc = BT_OK;

    struct archive *ar = archive_read_new();
    if (!ar) {
        bt_archive_close(A);
        return bt_fail(BT_EINTERNAL, "%s: libarchive: out of memory", label);
    }
    archive_read_support_format_tar(ar); /* tar only; no decompression filter is enabled */
    /* checked first: libarchive's tar reader can take a compressed stream's
     * first 512 bytes for a header whose checksum happens to pass */
    const char *z = compression_magic(buf, len);
    if (z) {
        rc = compressed(label, z);
        goto out;
    }
    if (archive_read_open_memory(ar, buf, len) != ARCHIVE_OK) {
        rc = not_tar(buf, len, label, archive_error_string(ar));
        goto out;
    }
    for (;;) {
        struct archive_entry *e;
        int r = archive_read_next_header(ar, &e);
        if (r == ARCHIVE_EOF) break;
        if (r != ARCHIVE_OK) {
            rc = not_tar(buf, len, label, archive_error_string(ar));
            goto out;
        }
        if (archive_format(ar) != ARCHIVE_FORMAT_TAR_USTAR && archive_format(ar) != ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE &&
            archive_format(ar) != ARCHIVE_FORMAT_TAR_PAX_RESTRICTED && archive_format(ar) != ARCHIVE_FORMAT_TAR &&
            archive_format(ar) != ARCHIVE_FORMAT_TAR_GNUTAR) {
            rc = bt_fail(BT_EDATA, "%s: not a tar archive: refused", label);
            goto out;
        }
        int64_t pos = archive_read_header_position(ar);
        uint64_t avail = (pos >= 0 && (uint64_t)pos < len) ? len - (uint64_t)pos : 0;
        int id = check_entry(e, label, lim, seen, avail, &rc);
        if (id < 0) goto out;
        seen[id] = 1;
        uint64_t sz = (uint64_t)archive_entry_size(e);
        A->size[id] = sz;
        uint8_t *dst = NULL;
        if (!is_tensor(id)) {
            dst = malloc(sz + 1);
        } else if (A->kept) {
            size_t al = ((size_t)sz + 64) & ~(size_t)63;
            dst = aligned_alloc(64, al ? al : 64);
#ifdef MADV_HUGEPAGE
            /* large and written once front to back: huge pages where the
             * system allows them (far fewer page faults) */
            if (dst && al >= (8u << 20)) {
                uintptr_t lo = ((uintptr_t)dst + (2u << 20) - 1) & ~(uintptr_t)((2u << 20) - 1);
                uintptr_t hi = ((uintptr_t)dst + al) & ~(uintptr_t)((2u << 20) - 1);
                if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
            }
#endif
        }
        if ((!is_tensor(id) || A->kept) && !dst) {
            rc = bt_fail(BT_EIO, "%s: %s: cannot allocate %llu bytes to read it: out of memory", label,
                         member_names[id], (unsigned long long)sz);
            goto out;
        }
        if (dst) {
            A->data[id] = dst;
            dst[sz] = 0;
        }
        bt_ahash h;
        bt_ahash_init(&h);
        uint64_t got = 0;
        for (;;) {
            const void *blk;
            size_t bl;
            la_int64_t off;
            r = archive_read_data_block(ar, &blk, &bl, &off);
            if (r == ARCHIVE_EOF) break;
            if (r != ARCHIVE_OK) {
                const char *es = archive_error_string(ar);
                rc = bt_fail(BT_EDATA, "%s: %s: cannot read its data (%s): truncated or damaged; use an older "
                                       "checkpoint",
                             label, member_names[id], es ? es : "libarchive error");
                break;
            }
            if (off < 0 || (uint64_t)off != got || bl > sz - got) {
                rc = bt_fail(BT_EDATA, "%s: %s: data blocks are not contiguous (a sparse or damaged entry): refused",
                             label, member_names[id]);
                break;
            }
            /* The block's place in the file, when it points into buf (libarchive
             * reading from memory hands out the buffer itself): then the file
             * hash catches up to it and both hashes take it in one pass. */
            const uint8_t *b = blk;
            fhash_inline *f = NULL;
            if (fh && b >= buf && (size_t)(b - buf) <= len && bl <= len - (size_t)(b - buf) &&
                (size_t)(b - buf) >= fh->pos) {
                fh_to(fh, buf, (size_t)(b - buf));
                f = fh;
            }
            if (dst) {
                /* copy, then hash the copy (what is kept is what was hashed), in
                 * cache-sized pieces */
                const size_t piece = 256u << 10;
                for (size_t o = 0; o < bl; o += piece) {
                    size_t n = bl - o < piece ? bl - o : piece;
                    memcpy(dst + got + o, b + o, n);
                    hash_both(&h, f, dst + got + o, n);
                }
            } else {
                hash_both(&h, f, b, bl);
            }
            got += bl;
        }
        uint8_t d[32];
        bt_ahash_final(&h, d);
        bt_sha256_hex(d, A->sha[id]);
        if (rc) goto out;
        if (got != sz) {
            rc = bt_fail(BT_EDATA, "%s: %s: %llu of %llu bytes present: truncated; use an older checkpoint",
                         label, member_names[id], (unsigned long long)got, (unsigned long long)sz);
            goto out;
        }
    }
    for (int i = 0; i < BT_M_COUNT; i++) /* the members of every version */
        if (!seen[i] && (i < bt_archive_members_of_version(1) || i == BT_M_MANIFEST)) {
            rc = bt_fail(BT_EDATA, "%s: member %s is missing: incomplete or damaged; use an older checkpoint",
                         label, member_names[i]);
            goto out;
        }
    rc = bt_manifest_parse((const char *)A->data[BT_M_MANIFEST], A->size[BT_M_MANIFEST], label, &A->man);
    if (rc) goto out;
    int nm = bt_archive_members_of_version(A->man.version);
    for (int i = bt_archive_members_of_version(1); i < BT_M_MANIFEST; i++)
        if (seen[i] != (i < nm)) {
            rc = bt_fail(BT_EDATA, "%s: member %s is %s in an archive of format version %d: %s; use an older "
                                   "checkpoint", label, member_names[i], seen[i] ? "present" : "missing",
                         A->man.version, seen[i] ? "damaged or not written by baton" : "incomplete or damaged");
            goto out;
        }
    for (int i = 0; i < nm; i++) {
        if (A->man.size[i] != A->size[i]) {
            rc = bt_fail(BT_EDATA, "%s: %s is %llu bytes, MANIFEST.json says %llu: damaged; use an older checkpoint",
                         label, member_names[i], (unsigned long long)A->size[i], (unsigned long long)A->man.size[i]);
            goto out;
        }
        if (strcmp(A->man.sha256[i], A->sha[i]) != 0) {
            rc = bt_fail(BT_EDATA, "%s: %s: SHA-256 mismatch (content %.16s..., MANIFEST.json %.16s...): "
                                   "damaged; use an older checkpoint",
                         label, member_names[i], A->sha[i], A->man.sha256[i]);
            goto out;
        }
    }
    rc = check_trainer(A, label);
    if (!rc && expect_fp) rc = bt_fingerprint_compare(A->man.fingerprint_json, expect_fp, label);
out:
    archive_read_free(ar);
    if (rc) {
        bt_archive_close(A);
        return rc;
    }
    *out = A;
    return BT_OK;
}

int bt_archive_open_buffer(const void *buf, size_t len, const char *label, const bt_archive_limits *lim,
                           const char *expect_fp, int flags, bt_archive **out)
{
    bt_archive *a = NULL;
    int rc = read_core(buf, len, label ? label : "(buffer)", lim, expect_fp, flags, NULL, &a);
    if (out) *out = a;
    else bt_archive_close(a);
    return rc;
}

/* ---- whole-file hash for the sidecar, on a second thread ---- */
typedef struct {
    const uint8_t *buf;
    size_t len;
    uint8_t digest[32];
    atomic_int stop;
} fhash_job;

static void *fhash_run(void *p)
{
    fhash_job *j = p;
    bt_sha256_ctx *h = bt_sha256_new();
    const size_t chunk = 4u << 20;
    for (size_t off = 0; off < j->len && !atomic_load(&j->stop); off += chunk)
        bt_sha256_update(h, j->buf + off, j->len - off < chunk ? j->len - off : chunk);
    bt_sha256_final(h, j->digest);
    return NULL;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* "<64 hex>  <name>\n" (or " *<name>"): the expected digest into want. */
static int parse_sidecar(const char *side, const char *text, size_t len, const char *base, uint8_t want[32])
{
    if (len < 67 || text[64] != ' ' || (text[65] != ' ' && text[65] != '*'))
        return bt_fail(BT_EDATA, "%s: not in `sha256sum` format (\"<64 hex digits>  <file name>\"): the sidecar is "
                                 "damaged; delete it to rely on the manifest alone, or use an older checkpoint",
                       side);
    for (int i = 0; i < 32; i++) {
        int hi = hexval(text[2 * i]), lo = hexval(text[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return bt_fail(BT_EDATA, "%s: the hash is not 64 hex digits: the sidecar is damaged", side);
        want[i] = (uint8_t)(hi << 4 | lo);
    }
    const char *name = text + 66;
    size_t nl = len - 66;
    if (nl > 0 && name[nl - 1] == '\n') nl--;
    if (nl != strlen(base) || memcmp(name, base, nl) != 0 || memchr(text, '\n', len) != text + len - 1)
        return bt_fail(BT_EDATA, "%s: names another file than %s (or has extra lines): the sidecar is damaged "
                                 "or belongs to a renamed archive",
                       side, base);
    return BT_OK;
}

int bt_archive_open(const char *path, const bt_archive_limits *lim, const char *expect_fp, int flags,
                    bt_archive **out)
{
    if (out) *out = NULL;
    bt_mapping map;
    int rc = bt_map_file(path, &map);
    if (rc) return rc;
    char *side = NULL, *stext = NULL;
    size_t slen = 0;
    int have_side = 0;
    if (!(flags & BT_ARCHIVE_NO_SIDECAR)) {
        side = bt_xasprintf("%s.sha256", path);
        rc = bt_read_file(side, 4096, &stext, &slen);
        if (rc == BT_OK) have_side = 1;
        else if (rc == BT_ENOINPUT) rc = BT_OK;
        else {
            rc = bt_fail_context(BT_EDATA, "sidecar of %s", path);
            goto done;
        }
    }
    uint8_t want[32];
    if (have_side) {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        rc = parse_sidecar(side, stext, slen, base, want);
        if (rc) goto done;
    }
    /* one sequential pass over the mapping: tell the kernel (read-ahead) */
    if (map.map_base) (void)madvise(map.map_base, map.len, MADV_SEQUENTIAL);
    fhash_job job = {.buf = map.data, .len = map.len};
    bt_archive *a = NULL;
    if (have_side && bt_ahash_fast()) {
        /* SHA extensions: the whole-file hash rides along with the member
         * hashes in the same pass (two lanes, one read of every byte) */
        fhash_inline fh;
        bt_ahash_init(&fh.h);
        fh.pos = 0;
        rc = read_core(map.data, map.len, path, lim, expect_fp, flags, &fh, &a);
        if (!rc) fh_to(&fh, map.data, map.len); /* the end-of-archive blocks and anything after */
        bt_ahash_final(&fh.h, job.digest);
    } else {
        /* otherwise the whole-file hash runs on a second thread */
        pthread_t th;
        int threaded = 0;
        if (have_side) {
            if (map.len >= (16u << 20) && pthread_create(&th, NULL, fhash_run, &job) == 0) threaded = 1;
            else fhash_run(&job);
        }
        rc = read_core(map.data, map.len, path, lim, expect_fp, flags, NULL, &a);
        if (threaded) {
            if (rc) atomic_store(&job.stop, 1);
            pthread_join(th, NULL);
        }
    }
    if (!rc && have_side && memcmp(job.digest, want, 32) != 0) {
        char got[65], exp[65];
        bt_sha256_hex(job.digest, got);
        bt_sha256_hex(want, exp);
        rc = bt_fail(BT_EDATA, "%s: the file hashes to %.16s..., its sidecar %s says %.16s...: the archive (or "
                               "the sidecar) is damaged; use an older checkpoint",
                     path, got, side, exp);
    }
    if (rc) bt_archive_close(a);
    else {
        a->sidecar_checked = have_side;
        if (out) *out = a;
        else bt_archive_close(a);
    }
done:
    free(side);
    free(stext);
    bt_unmap_file(&map);
    return rc;
}

int bt_archive_read(const char *path, const bt_archive_limits *lim, const char *expect_fp, bt_archive **out)
{
    return bt_archive_open(path, lim, expect_fp, BT_ARCHIVE_KEEP_TENSORS, out);
}

int bt_archive_verify(const char *path, const bt_archive_limits *lim, const char *expect_fp, bt_archive **out)
{
    return bt_archive_open(path, lim, expect_fp, 0, out);
}

/* ---- accessors ---- */
const uint8_t *bt_archive_member(const bt_archive *a, const char *name, size_t *len)
{
    int id = member_id(name);
    if (id < 0 || !a->data[id]) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = (size_t)a->size[id];
    return a->data[id];
}

const char *bt_archive_text(const bt_archive *a, int id)
{
    if (id < 0 || id >= BT_M_COUNT || is_tensor(id) || !a->data[id]) return "";
    return (const char *)a->data[id];
}

int64_t bt_archive_step(const bt_archive *a) { return a->man.step; }
int bt_archive_format_version(const bt_archive *a) { return a->man.version; }
const char *bt_archive_path(const bt_archive *a) { return a->path; }
const char *bt_archive_baton_version(const bt_archive *a) { return a->man.baton_version; }
const char *bt_archive_fingerprint_json(const bt_archive *a) { return a->man.fingerprint_json; }
const char *bt_archive_manifest_json(const bt_archive *a) { return (const char *)a->data[BT_M_MANIFEST]; }
uint64_t bt_archive_member_size(const bt_archive *a, int id) { return (id >= 0 && id < BT_M_COUNT) ? a->size[id] : 0; }
const char *bt_archive_member_sha256(const bt_archive *a, int id) { return (id >= 0 && id < BT_M_COUNT) ? a->sha[id] : ""; }
int bt_archive_sidecar_checked(const bt_archive *a) { return a->sidecar_checked; }
uint64_t bt_archive_file_size(const bt_archive *a) { return a->file_size; }

static int open_tensors(const bt_archive *a, int id, bt_st_file **out)
{
    *out = NULL;
    if (!a->data[id])
        return bt_fail(BT_EINTERNAL, "%s: %s was verified but not kept in memory (open with "
                                     "BT_ARCHIVE_KEEP_TENSORS): a bug in the caller",
                       a->path, member_names[id]);
    char *label = bt_xasprintf("%s:%s", a->path, member_names[id]);
    int rc = bt_st_open_buffer(a->data[id], (size_t)a->size[id], label, out);
    free(label);
    return rc;
}

int bt_archive_open_model(const bt_archive *a, bt_st_file **out) { return open_tensors(a, BT_M_MODEL, out); }
int bt_archive_open_optim(const bt_archive *a, bt_st_file **out) { return open_tensors(a, BT_M_OPTIM, out); }

/* ---- fingerprints ---- */
static char *short_json(json_t *v)
{
    if (!v) return bt_xstrdup("(absent)");
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(15));
    if (!s) return bt_xstrdup("?");
    if (strlen(s) > 60) strcpy(s + 57, "...");
    return s;
}

int bt_fingerprint_compare(const char *archive_fp, const char *job_fp, const char *where)
{
    json_error_t e1, e2;
    json_t *a = json_loads(archive_fp ? archive_fp : "", 0, &e1);
    json_t *b = json_loads(job_fp ? job_fp : "", 0, &e2);
    int rc = BT_OK;
    if (!json_is_object(a) || !json_is_object(b)) {
        rc = bt_fail(json_is_object(a) ? BT_EINTERNAL : BT_EDATA, "%s: job fingerprint is not a JSON object (%s)", where,
                     json_is_object(a) ? "the job's: a bug in the caller" : "the archive's: damaged");
        goto out;
    }
    char msg[2048];
    size_t n = 0, ndiff = 0;
    msg[0] = '\0';
    const char *key;
    json_t *v;
    for (int pass = 0; pass < 2; pass++) {
        json_t *x = pass ? b : a, *y = pass ? a : b;
        json_object_foreach(x, key, v) {
            json_t *w = json_object_get(y, key);
            if (pass && w) continue; /* already compared */
            if (w && json_equal(v, w)) continue;
            char *sa = short_json(pass ? w : v), *sb = short_json(pass ? v : w);
            if (n < sizeof msg)
                n += (size_t)snprintf(msg + n, sizeof msg - n, "%s%s (archive %s, job %s)", ndiff ? ", " : "", key, sa, sb);
            ndiff++;
            free(sa);
            free(sb);
        }
    }
    if (ndiff)
        rc = bt_fail(BT_ECONFIG, "%s: written by a different job: %zu fingerprint field%s differ%s: %s; restore "
                                 "those settings in the job file to resume from it, or use another output_dir",
                     where, ndiff, ndiff == 1 ? "" : "s", ndiff == 1 ? "s" : "", msg);
out:
    json_decref(a);
    json_decref(b);
    return rc;
}
