/* tests/unit/test_archive.c — checkpoint archives: round trip, format,
 * determinism, hostile archives, fingerprints, retention, discovery. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "state/manifest.h"
#include "test_archive_fixture.h"
#include "util/sha256.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

static void assert_msg_has(const char *needle)
{
    if (!strstr(bt_errmsg(), needle)) {
        fprintf(stderr, "error message lacks '%s': %s\n", needle, bt_errmsg());
        fail();
    }
}

static void test_roundtrip(void **state)
{
    (void)state;
    char *dir = fx_tmpdir("ar-rt");
    fx_snap f;
    fx_make(&f, 1234, 5000, 1);
    char path[4096];
    assert_int_equal(bt_archive_commit(dir, &f.s, path, sizeof path), 0);
    char *want = bt_xasprintf("%s/ckpt-000001234.tar", dir);
    assert_string_equal(path, want);
    uint64_t sz;
    assert_int_equal(bt_archive_size(&f.s, &sz), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal((uint64_t)st.st_size, sz);
    assert_int_equal(st.st_size % 512, 0);

    bt_archive *a;
    assert_int_equal(bt_archive_read(path, NULL, f.s.fingerprint_json, &a), 0);
    assert_int_equal(bt_archive_step(a), 1234);
    assert_true(bt_archive_sidecar_checked(a));
    assert_string_equal(bt_archive_baton_version(a), "test");
    assert_string_equal(bt_archive_text(a, BT_M_TRAINER), f.trainer);
    assert_string_equal(bt_archive_text(a, BT_M_VOCAB), f.s.vocab_txt);
    assert_string_equal(bt_archive_text(a, BT_M_JOB), f.s.job_ini);
    assert_string_equal(bt_archive_text(a, BT_M_CONFIG), f.s.config_json);
    bt_st_file *m, *o;
    assert_int_equal(bt_archive_open_model(a, &m), 0);
    assert_int_equal(bt_archive_open_optim(a, &o), 0);
    assert_int_equal(bt_st_count(m), 4);
    assert_int_equal(bt_st_count(o), 8);
    for (int i = 0; i < 4; i++) {
        const bt_st_tensor *t = bt_st_find(m, f.model[i].name);
        assert_non_null(t);
        assert_memory_equal(t->data, f.model[i].data, t->nbytes);
        assert_non_null(bt_st_f32_view(t));
    }
    for (int i = 0; i < 8; i++) {
        const bt_st_tensor *t = bt_st_find(o, f.optim[i].name);
        assert_non_null(t);
        assert_memory_equal(t->data, f.optim[i].data, t->nbytes);
    }
    assert_string_equal(bt_st_metadata(m, "format"), "pt");
    bt_st_close(m);
    bt_st_close(o);
    /* member hashes are the manifest's, and are SHA-256 of the member bytes */
    size_t vl;
    const uint8_t *vb = bt_archive_member(a, "vocab.txt", &vl);
    uint8_t d[32];
    char hex[65];
    bt_sha256(vb, vl, d);
    bt_sha256_hex(d, hex);
    assert_string_equal(hex, bt_archive_member_sha256(a, BT_M_VOCAB));
    assert_non_null(strstr(bt_archive_manifest_json(a), "\"format\": \"baton-checkpoint\""));
    bt_archive_close(a);

    /* verify keeps no tensors */
    assert_int_equal(bt_archive_verify(path, NULL, NULL, &a), 0);
    assert_null(bt_archive_member(a, "model.safetensors", NULL));
    assert_int_not_equal(bt_archive_open_model(a, &m), 0);
    bt_archive_close(a);

    /* interoperability: sha256sum -c accepts the sidecar; tar lists the members in order */
    char *cmd = bt_xasprintf("cd '%s' && sha256sum -c --status ckpt-000001234.tar.sha256", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    cmd = bt_xasprintf("tar tf '%s' | tr '\\n' ' '", path);
    FILE *p = popen(cmd, "r");
    char line[512] = "";
    assert_non_null(fgets(line, sizeof line, p));
    pclose(p);
    free(cmd);
    assert_string_equal(line, "model.safetensors optimizer.safetensors trainer.json job.ini config.json vocab.txt "
                              "tokenizer.json tokenizer_config.json special_tokens_map.json MANIFEST.json ");
    /* deterministic bytes: the same snapshot committed elsewhere is identical */
    char *dir2 = fx_tmpdir("ar-rt2");
    char path2[4096];
    assert_int_equal(bt_archive_commit(dir2, &f.s, path2, sizeof path2), 0);
    cmd = bt_xasprintf("cmp -s '%s' '%s'", path, path2);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    /* recommitting the same step replaces archive and sidecar consistently */
    fx_snap g;
    fx_make(&g, 1234, 3000, 2);
    assert_int_equal(bt_archive_commit(dir, &g.s, path, sizeof path), 0);
    assert_int_equal(bt_archive_read(path, NULL, NULL, &a), 0);
    bt_archive_close(a);
    fx_free(&g);
    fx_rmrf(dir2);
    free(dir2);
    fx_free(&f);
    fx_rmrf(dir);
    free(dir);
    free(want);
}

static void test_fingerprint(void **state)
{
    (void)state;
    char *dir = fx_tmpdir("ar-fp");
    fx_snap f;
    fx_make(&f, 7, 100, 3);
    char path[4096];
    assert_int_equal(bt_archive_commit(dir, &f.s, path, sizeof path), 0);
    assert_int_equal(bt_archive_verify(path, NULL, "{\"model\": \"tiny\", \"seed\": 42, \"lr\": 2e-5}", NULL), 0);
    assert_int_equal(bt_archive_verify(path, NULL, "{\"lr\": 3e-05, \"seed\": 42, \"model\": \"tiny\", \"max_len\": 128}", NULL),
                     BT_ECONFIG);
    assert_msg_has("lr (archive 2");
    assert_msg_has("job 3");
    assert_msg_has("max_len (archive (absent), job 128)");
    assert_msg_has("2 fingerprint fields differ");
    assert_msg_has(path);
    fx_free(&f);
    fx_rmrf(dir);
    free(dir);
}

/* ---- hostile archives, built by hand ---- */
typedef struct {
    const char *name;
    mode_t type;       /* AE_IFREG, AE_IFLNK, ... */
    const void *data;  /* NULL: copy member `from` of the base archive */
    size_t len;
    const char *from;
    const char *link;  /* symlink target or hardlink */
} hent;

static bt_archive *g_base;

static void build_tar(const char *path, const hent *e, size_t n, int gzip)
{
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    if (gzip) archive_write_add_filter_gzip(a);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        const void *d = e[i].data;
        size_t len = e[i].len;
        if (!d && e[i].from) d = bt_archive_member(g_base, e[i].from, &len);
        struct archive_entry *en = archive_entry_new();
        archive_entry_set_pathname(en, e[i].name);
        archive_entry_set_filetype(en, e[i].type ? e[i].type : AE_IFREG);
        archive_entry_set_perm(en, 0644);
        if (e[i].type == AE_IFLNK) archive_entry_set_symlink(en, e[i].link);
        else if (e[i].link) archive_entry_set_hardlink(en, e[i].link);
        if (e[i].type == AE_IFCHR) archive_entry_set_rdev(en, 0x0101);
        size_t sz = (e[i].type && e[i].type != AE_IFREG) || e[i].link ? 0 : len;
        archive_entry_set_size(en, (la_int64_t)sz);
        assert_int_equal(archive_write_header(a, en), ARCHIVE_OK);
        if (sz) assert_int_equal(archive_write_data(a, d, sz), (la_ssize_t)sz);
        archive_entry_free(en);
    }
    archive_write_close(a);
    archive_write_free(a);
}

static const char *M[] = {"model.safetensors", "optimizer.safetensors", "trainer.json", "job.ini",
                          "config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json",
                          "special_tokens_map.json", "MANIFEST.json"};
#define NM 10 /* members of a format-2 archive, MANIFEST.json (M[NM - 1]) included */

static void expect_refused(const char *path, const char *needle, const char *cwd_dir)
{
    int before = fx_count_dir(cwd_dir);
    int rc = bt_archive_read(path, NULL, NULL, NULL);
    if (rc == 0) {
        fprintf(stderr, "accepted a hostile archive (%s)\n", needle);
        fail();
    }
    assert_msg_has(needle);
    assert_int_equal(fx_count_dir(cwd_dir), before); /* nothing was written */
}

static void test_hostile(void **state)
{
    (void)state;
    char *dir = fx_tmpdir("ar-host");
    char *cwd = fx_tmpdir("ar-cwd");
    char *old = getcwd(NULL, 0);
    assert_int_equal(chdir(cwd), 0);
    fx_snap f;
    fx_make(&f, 5, 200, 4);
    char path[4096];
    assert_int_equal(bt_archive_commit(dir, &f.s, path, sizeof path), 0);
    assert_int_equal(bt_archive_read(path, NULL, NULL, &g_base), 0);
    char *t = bt_xasprintf("%s/h.tar", dir);
    hent e[NM + 2];
    for (int i = 0; i < NM; i++) e[i] = (hent){.name = M[i], .from = M[i]};

    /* the hand-built copy itself is accepted (so the refusals below are the tweaks) */
    build_tar(t, e, NM, 0);
    assert_int_equal(bt_archive_read(t, NULL, NULL, NULL), 0);

    static const char *bad_names[] = {"../model.safetensors", "/etc/passwd", "sub/model.safetensors", "..", "a/../b"};
    for (size_t k = 0; k < sizeof bad_names / sizeof *bad_names; k++) {
        hent x[NM + 1];
        memcpy(x, e, sizeof(hent) * NM);
        x[NM] = (hent){.name = bad_names[k], .data = "x", .len = 1};
        build_tar(t, x, NM + 1, 0);
        expect_refused(t, "has a path", cwd);
        /* and as the first entry */
        x[0] = (hent){.name = bad_names[k], .from = M[0]};
        build_tar(t, x, NM, 0);
        expect_refused(t, "has a path", cwd);
    }
    hent x[NM + 2];
    memcpy(x, e, sizeof(hent) * NM);
    x[0] = (hent){.name = M[0], .type = AE_IFLNK, .link = "/etc/passwd"};
    build_tar(t, x, NM, 0);
    expect_refused(t, "symbolic link", cwd);
    x[0] = (hent){.name = M[0], .type = AE_IFCHR};
    build_tar(t, x, NM, 0);
    expect_refused(t, "character device", cwd);
    x[0] = (hent){.name = M[0], .type = AE_IFDIR};
    build_tar(t, x, NM, 0);
    expect_refused(t, "directory", cwd);
    x[0] = (hent){.name = M[0], .type = AE_IFIFO};
    build_tar(t, x, NM, 0);
    expect_refused(t, "FIFO", cwd);
    memcpy(x, e, sizeof(hent) * NM);
    x[NM] = (hent){.name = "vocab.txt", .link = "config.json"};
    build_tar(t, x, NM + 1, 0);
    expect_refused(t, "vocab.txt", cwd);
    /* duplicate, unknown, missing */
    memcpy(x, e, sizeof(hent) * NM);
    x[NM] = (hent){.name = "trainer.json", .from = "trainer.json"};
    build_tar(t, x, NM + 1, 0);
    expect_refused(t, "appears twice", cwd);
    x[NM] = (hent){.name = "evil.sh", .data = "rm -rf /\n", .len = 9};
    build_tar(t, x, NM + 1, 0);
    expect_refused(t, "unknown member 'evil.sh'", cwd);
    memcpy(x, e, sizeof(hent) * NM);
    memmove(x + 5, x + 6, sizeof(hent) * (NM - 6));
    build_tar(t, x, NM - 1, 0);
    expect_refused(t, "member vocab.txt is missing", cwd);
    /* hash mismatch: same size, other bytes */
    size_t vl;
    const uint8_t *vb = bt_archive_member(g_base, "vocab.txt", &vl);
    char *v2 = bt_xstrndup((const char *)vb, vl);
    v2[0] ^= 1;
    memcpy(x, e, sizeof(hent) * NM);
    x[5] = (hent){.name = "vocab.txt", .data = v2, .len = vl};
    build_tar(t, x, NM, 0);
    expect_refused(t, "vocab.txt: SHA-256 mismatch", cwd);
    x[5] = (hent){.name = "vocab.txt", .data = v2, .len = vl - 1};
    build_tar(t, x, NM, 0);
    expect_refused(t, "MANIFEST.json says", cwd);
    free(v2);
    /* unknown format version */
    size_t ml;
    const char *mb = (const char *)bt_archive_member(g_base, "MANIFEST.json", &ml);
    char *m2 = bt_xstrndup(mb, ml);
    char *pv = strstr(m2, "\"format_version\": 2");
    assert_non_null(pv);
    pv[strlen("\"format_version\": ")] = '3';
    memcpy(x, e, sizeof(hent) * NM);
    x[NM - 1] = (hent){.name = "MANIFEST.json", .data = m2, .len = ml};
    build_tar(t, x, NM, 0);
    expect_refused(t, "unknown format version 3", cwd);
    /* an edited manifest (step changed) fails its self-hash */
    memcpy(m2, mb, ml);
    char *ps = strstr(m2, "\"step\": 5");
    assert_non_null(ps);
    ps[strlen("\"step\": ")] = '6';
    build_tar(t, x, NM, 0);
    expect_refused(t, "manifest is damaged", cwd);
    free(m2);
    /* gzip-compressed tar: refused, never inflated */
    build_tar(t, e, NM, 1);
    expect_refused(t, "gzip-compressed", cwd);
    /* compressed input whose first 512 bytes also pass as a tar header (CI met
     * a gzip stream that did): refused by its magic before libarchive parses it */
    {
        hent bz[1] = {{.name = "BZh91AY&SY", .data = "x", .len = 1}};
        build_tar(t, bz, 1, 0);
        expect_refused(t, "bzip2-compressed", cwd);
    }
    /* a gzip bomb: a small file claiming to inflate enormously is refused the same way */
    {
        struct archive *a = archive_write_new();
        archive_write_set_format_pax_restricted(a);
        archive_write_add_filter_gzip(a);
        archive_write_open_filename(a, t);
        struct archive_entry *en = archive_entry_new();
        archive_entry_set_pathname(en, "model.safetensors");
        archive_entry_set_filetype(en, AE_IFREG);
        archive_entry_set_size(en, 1ll << 30);
        archive_write_header(a, en);
        char *zeros = calloc(1, 1 << 20);
        for (int i = 0; i < 1024; i++) archive_write_data(a, zeros, 1 << 20);
        free(zeros);
        archive_entry_free(en);
        archive_write_close(a);
        archive_write_free(a);
        struct stat st;
        stat(t, &st);
        assert_true(st.st_size < (8 << 20));
        expect_refused(t, "gzip-compressed", cwd);
    }
    /* a huge size field (base-256) in an otherwise valid header */
    {
        size_t tl;
        char *tb;
        build_tar(t, e, NM, 0);
        assert_int_equal(bt_read_file(t, 1u << 30, &tb, &tl), 0);
        unsigned char *h = (unsigned char *)tb;
        memset(h + 124, 0, 12);
        h[124] = 0x80;
        h[129] = 0x7f; /* 0x7f << 48 bytes */
        memset(h + 148, ' ', 8);
        unsigned sum = 0;
        for (int i = 0; i < 512; i++) sum += h[i];
        snprintf((char *)h + 148, 8, "%06o", sum);
        fx_write(t, tb, tl);
        free(tb);
        expect_refused(t, "model.safetensors", cwd);
        /* and an octal size just over the file but under the limits */
        assert_int_equal(bt_read_file(t, 1u << 30, &tb, &tl), 0);
        h = (unsigned char *)tb;
        snprintf((char *)h + 124, 12, "%011o", 077777777);
        memset(h + 148, ' ', 8);
        sum = 0;
        for (int i = 0; i < 512; i++) sum += h[i];
        snprintf((char *)h + 148, 8, "%06o", sum);
        fx_write(t, tb, tl);
        free(tb);
        expect_refused(t, "model.safetensors", cwd);
    }
    /* tight limits: a model over its bound is refused before allocation */
    {
        bt_archive_limits lim;
        bt_archive_limits_default(&lim);
        lim.model = 100;
        assert_int_equal(bt_archive_read(path, &lim, NULL, NULL), BT_EDATA);
        assert_msg_has("over the limit");
    }
    /* not a tar; empty; garbage */
    fx_write(t, "", 0);
    expect_refused(t, "", cwd);
    fx_write(t, "hello world, not a tar at all\n", 30);
    expect_refused(t, "h.tar", cwd);
    /* a damaged sidecar makes the archive BAD; a missing one is fine */
    char *side = bt_xasprintf("%s.sha256", path);
    fx_write(side, "nonsense\n", 9);
    assert_int_equal(bt_archive_verify(path, NULL, NULL, NULL), BT_EDATA);
    assert_msg_has("sha256sum");
    unlink(side);
    bt_archive *a;
    assert_int_equal(bt_archive_verify(path, NULL, NULL, &a), 0);
    assert_false(bt_archive_sidecar_checked(a));
    bt_archive_close(a);
    free(side);
    assert_int_equal(fx_count_dir(cwd), 0);
    bt_archive_close(g_base);
    assert_int_equal(chdir(old), 0);
    free(old);
    free(t);
    fx_free(&f);
    fx_rmrf(dir);
    fx_rmrf(cwd);
    free(dir);
    free(cwd);
}

static void test_manifest_strict(void **state)
{
    (void)state;
    bt_manifest m = {.step = 3, .baton_version = "v", .fingerprint_json = "{\"a\": 1}"};
    for (int i = 0; i < BT_M_COUNT - 1; i++) memset(m.sha256[i], 'a', 64), m.sha256[i][64] = 0, m.size[i] = (uint64_t)i;
    char *t;
    size_t n;
    assert_int_equal(bt_manifest_build(&m, &t, &n), 0);
    bt_manifest p;
    assert_int_equal(bt_manifest_parse(t, n, "x", &p), 0);
    assert_int_equal(p.step, 3);
    assert_string_equal(p.fingerprint_json, "{\"a\":1}");
    bt_manifest_free(&p);
    /* every single-byte change of the manifest text is refused */
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        t[i] = (char)(c ^ 0x04);
        int rc = bt_manifest_parse(t, n, "x", &p);
        if (rc == 0) {
            fprintf(stderr, "manifest byte %zu changed and accepted\n", i);
            fail();
        }
        t[i] = c;
    }
    free(t);
}

static void test_retention_and_stale(void **state)
{
    (void)state;
    char *dir = fx_tmpdir("ar-ret");
    fx_snap f;
    for (int s = 1; s <= 5; s++) {
        fx_make(&f, s * 10, 64, (uint64_t)s);
        assert_int_equal(bt_archive_commit(dir, &f.s, NULL, 0), 0);
        fx_free(&f);
    }
    char *best = bt_xasprintf("%s/ckpt-000000020.tar", dir);
    /* files retention and cleanup must not touch */
    char *other = bt_xasprintf("%s/notes.txt", dir), *partial = bt_xasprintf("%s/ckpt-000000060.tar.partial", dir),
         *tmp = bt_xasprintf("%s/ckpt-000000060.tar.sha256.tmp", dir),
         *orphan = bt_xasprintf("%s/ckpt-000000070.tar.sha256", dir);
    fx_write(other, "x", 1);
    fx_write(partial, "x", 1);
    fx_write(tmp, "x", 1);
    fx_write(orphan, "x", 1);
    int removed;
    assert_int_equal(bt_archive_clean_stale(dir, &removed), 0);
    assert_int_equal(removed, 3);
    assert_false(bt_path_exists(partial));
    assert_false(bt_path_exists(orphan));
    assert_true(bt_path_exists(other));
    assert_int_equal(bt_retention_apply(dir, 2, best), 0);
    assert_true(bt_path_exists(best));
    char *p;
    static const int gone[] = {10, 30}, kept[] = {20, 40, 50};
    for (int i = 0; i < 2; i++) {
        p = bt_xasprintf("%s/ckpt-%09d.tar", dir, gone[i]);
        assert_false(bt_path_exists(p));
        free(p);
        p = bt_xasprintf("%s/ckpt-%09d.tar.sha256", dir, gone[i]);
        assert_false(bt_path_exists(p));
        free(p);
    }
    for (int i = 0; i < 3; i++) {
        p = bt_xasprintf("%s/ckpt-%09d.tar.sha256", dir, kept[i]);
        assert_true(bt_path_exists(p));
        free(p);
    }
    assert_true(bt_path_exists(other));
    assert_int_equal(bt_archive_clean_stale("/nonexistent/baton", &removed), 0);
    free(best);
    free(other);
    free(partial);
    free(tmp);
    free(orphan);
    fx_rmrf(dir);
    free(dir);
}

static void test_discovery(void **state)
{
    (void)state;
    char *root = fx_tmpdir("ar-disc");
    char *out = bt_xasprintf("%s/out", root), *in = bt_xasprintf("%s/input/ds/v1/deep", root);
    assert_int_equal(bt_mkdirs(in), 0);
    fx_snap f;
    char found[4096];
    bt_discovery_report rep;
    /* nothing at all */
    const char *rp[2] = {NULL, NULL};
    rp[0] = bt_xasprintf("%s/input", root);
    assert_int_equal(bt_discover(out, rp, 1, NULL, NULL, found, sizeof found, NULL, &rep), BT_ENOINPUT);
    assert_int_equal(rep.n_candidates, 0);
    assert_string_equal(found, "");
    bt_discovery_report_free(&rep);
    /* out: 100, 300; input (nested): 200, 400 (400 from another job), 500 damaged */
    int64_t steps[] = {100, 300};
    for (int i = 0; i < 2; i++) {
        fx_make(&f, steps[i], 64, 9);
        assert_int_equal(bt_archive_commit(out, &f.s, NULL, 0), 0);
        fx_free(&f);
    }
    fx_make(&f, 200, 64, 9);
    assert_int_equal(bt_archive_commit(in, &f.s, NULL, 0), 0);
    fx_free(&f);
    fx_make(&f, 400, 64, 9);
    f.s.fingerprint_json = "{\"lr\": 1e-4, \"seed\": 42, \"model\": \"tiny\"}";
    assert_int_equal(bt_archive_commit(in, &f.s, NULL, 0), 0);
    fx_free(&f);
    fx_make(&f, 500, 64, 9);
    char p500[4096];
    assert_int_equal(bt_archive_commit(in, &f.s, p500, sizeof p500), 0);
    const char *fp = f.s.fingerprint_json;
    {
        FILE *h = fopen(p500, "r+b");
        fseek(h, 700, SEEK_SET);
        int c = fgetc(h);
        fseek(h, 700, SEEK_SET);
        fputc(c ^ 0x10, h);
        fclose(h);
    }
    /* a symlink loop and a second path to the same directory */
    char *loop = bt_xasprintf("%s/input/ds/loop", root);
    assert_int_equal(symlink("..", loop), 0);
    char **paths;
    int64_t *st;
    size_t n;
    assert_int_equal(bt_discovery_list(out, rp, 1, &paths, &st, &n), 0);
    assert_int_equal(n, 5);
    assert_int_equal(st[0], 500);
    assert_int_equal(st[4], 100);
    bt_discovery_list_free(paths, st, n);
    bt_archive *a;
    assert_int_equal(bt_discover(out, rp, 1, fp, NULL, found, sizeof found, &a, &rep), 0);
    assert_int_equal(bt_archive_step(a), 300);
    assert_non_null(strstr(found, "/out/ckpt-000000300.tar"));
    assert_int_equal(rep.n_skipped, 2);
    assert_int_equal(rep.skipped[0].step, 500);
    assert_int_equal(rep.skipped[0].code, BT_EDATA);
    assert_int_equal(rep.skipped[1].step, 400);
    assert_int_equal(rep.skipped[1].code, BT_ECONFIG);
    assert_non_null(strstr(rep.skipped[1].reason, "lr (archive"));
    bt_st_file *m;
    assert_int_equal(bt_archive_open_model(a, &m), 0);
    bt_st_close(m);
    bt_archive_close(a);
    bt_discovery_report_free(&rep);
    /* without a fingerprint check, 400 wins; a renamed archive is refused */
    assert_int_equal(bt_discover(out, rp, 1, NULL, NULL, found, sizeof found, NULL, NULL), 0);
    assert_non_null(strstr(found, "ckpt-000000400.tar"));
    char *ren = bt_xasprintf("%s/ckpt-000000900.tar", out);
    char *src = bt_xasprintf("%s/ckpt-000000100.tar", out);
    assert_int_equal(rename(src, ren), 0);
    assert_int_equal(bt_discover(out, NULL, 0, fp, NULL, found, sizeof found, NULL, &rep), 0);
    assert_int_equal(rep.n_skipped, 1);
    assert_non_null(strstr(rep.skipped[0].reason, "file name says step 900"));
    bt_discovery_report_free(&rep);
    /* an explicit file path is a candidate whatever its name */
    char *odd = bt_xasprintf("%s/some-name.tar", root);
    char *s300 = bt_xasprintf("%s/ckpt-000000300.tar", out);
    char *cmd = bt_xasprintf("cp '%s' '%s'", s300, odd);
    assert_int_equal(system(cmd), 0);
    const char *only[1] = {odd};
    assert_int_equal(bt_discover(NULL, only, 1, fp, NULL, found, sizeof found, NULL, NULL), 0);
    assert_string_equal(found, odd);
    fx_free(&f);
    free(cmd);
    free(s300);
    free(odd);
    free(ren);
    free(src);
    free(loop);
    free((char *)rp[0]);
    free(out);
    free(in);
    fx_rmrf(root);
    free(root);
}

/* Format 2 carries the tokenizer files; format-1 archives (no tokenizer
 * members) stay readable; each version's member set is exact. */
static void test_format_versions(void **state)
{
    (void)state;
    char *dir = fx_tmpdir("ar-ver");
    fx_snap f;
    fx_make(&f, 9, 64, 5);
    f.s.tokenizer_json = "{\"model\": {\"type\": \"BPE\"}}";
    f.s.tokenizer_config_json = "{\"model_max_length\": 38}";
    char path[4096];
    assert_int_equal(bt_archive_commit(dir, &f.s, path, sizeof path), 0);
    bt_archive *a;
    assert_int_equal(bt_archive_read(path, NULL, NULL, &a), 0);
    assert_int_equal(bt_archive_format_version(a), 2);
    assert_string_equal(bt_archive_text(a, BT_M_TOKJSON), f.s.tokenizer_json);
    assert_string_equal(bt_archive_text(a, BT_M_TOKCONFIG), f.s.tokenizer_config_json);
    assert_string_equal(bt_archive_text(a, BT_M_SPECIAL), "");
    assert_non_null(strstr(bt_archive_manifest_json(a), "\"format_version\": 2"));
    bt_archive_close(a);
    /* a format-1 writer refuses tokenizer members; without them it writes the old layout */
    f.s.format_version = 1;
    assert_int_equal(bt_archive_commit(dir, &f.s, path, sizeof path), BT_EINTERNAL);
    f.s.tokenizer_json = f.s.tokenizer_config_json = NULL;
    char *d1 = bt_xasprintf("%s/v1", dir), *d2 = bt_xasprintf("%s/v2", dir);
    assert_int_equal(bt_archive_commit(d1, &f.s, path, sizeof path), 0);
    assert_int_equal(bt_archive_read(path, NULL, NULL, &a), 0);
    assert_int_equal(bt_archive_format_version(a), 1);
    assert_string_equal(bt_archive_text(a, BT_M_TOKJSON), "");
    assert_int_equal(bt_archive_member_size(a, BT_M_TOKJSON), 0);
    assert_non_null(strstr(bt_archive_manifest_json(a), "\"format_version\": 1"));
    assert_null(strstr(bt_archive_manifest_json(a), "tokenizer.json"));
    g_base = a;
    /* format 1 with a tokenizer member, format 2 without one: refused */
    char *t = bt_xasprintf("%s/v.tar", dir);
    hent e[8];
    for (int i = 0; i < 6; i++) e[i] = (hent){.name = M[i], .from = M[i]};
    e[6] = (hent){.name = "tokenizer.json", .data = "{}", .len = 2};
    e[7] = (hent){.name = "MANIFEST.json", .from = "MANIFEST.json"};
    build_tar(t, e, 8, 0);
    assert_int_equal(bt_archive_read(t, NULL, NULL, NULL), BT_EDATA);
    assert_msg_has("tokenizer.json is present in an archive of format version 1");
    e[6] = e[7];
    build_tar(t, e, 7, 0);
    assert_int_equal(bt_archive_read(t, NULL, NULL, NULL), 0);
    bt_archive_close(a);
    g_base = NULL;
    assert_int_equal(bt_archive_read(path, NULL, NULL, &a), 0); /* unchanged */
    bt_archive_close(a);
    char p9[4096];
    f.s.format_version = 0;
    assert_int_equal(bt_archive_commit(d2, &f.s, p9, sizeof p9), 0);
    assert_int_equal(bt_archive_read(p9, NULL, NULL, &g_base), 0);
    hent e2[9];
    for (int i = 0; i < 7; i++) e2[i] = (hent){.name = M[i], .from = M[i]}; /* no tokenizer_config.json */
    e2[7] = (hent){.name = M[8], .from = M[8]};
    e2[8] = (hent){.name = "MANIFEST.json", .from = "MANIFEST.json"};
    build_tar(t, e2, 9, 0);
    assert_int_equal(bt_archive_read(t, NULL, NULL, NULL), BT_EDATA);
    assert_msg_has("tokenizer_config.json is missing in an archive of format version 2");
    bt_archive_close(g_base);
    g_base = NULL;
    free(t);
    free(d1);
    free(d2);
    fx_free(&f);
    fx_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_fingerprint),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_manifest_strict),
        cmocka_unit_test(test_format_versions),
        cmocka_unit_test(test_retention_and_stale),
        cmocka_unit_test(test_discovery),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
