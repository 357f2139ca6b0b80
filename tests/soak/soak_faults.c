/* tests/soak/soak_faults.c — the fault-injection half of `make soak` (not
 * part of `make test`): thousands of damaged archives and failing commits
 * against the reader, the content judge and discovery, counting every load
 * that returned data other than what was committed.
 *
 *   soak_faults DIR A.tar B.tar N SEED
 *     A, B: two valid archives of one job written by `baton run` (step A <
 *     step B); DIR: a scratch directory (tmpfs is best: thousands of fsyncs).
 *     N faults, split 40% bit flips (half with B's sidecar, half without),
 *     20% truncations, 30% ENOSPC and 10% EIO at a random write offset of a
 *     commit (BATON_TEST_FAIL_WRITE_AFTER / _ERRNO). After each: discovery
 *     with the content judge (runner/archive_check.h), exactly as `baton run`
 *     resumes, over DIR holding A and the damaged B (or the failed commit).
 *   A damaged load: discovery returned an archive whose members differ from
 *   the ones committed under its name. A lost fallback: it returned nothing
 *   although A was intact beside it. A failed commit that left a .partial,
 *   or a final name, is a bad commit. Prints one summary line per kind and
 *   "soak faults: N injected, damaged loads D, lost fallbacks L, bad commits
 *   C"; exits 1 if D, L or C is not 0.
 * Must not: touch anything outside DIR.
 */
#include "runner/archive_check.h"
#include "state/archive.h"
#include "state/commit.h"
#include "state/discovery.h"
#include "util/err.h"
#include "util/file.h"
#include "util/log.h"
#include "util/mem.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    char *path;
    uint8_t *bytes;   /* the whole file */
    size_t len;
    char *side;       /* its sidecar text */
    size_t side_len;
    int64_t step;
    uint8_t *member[BT_M_COUNT]; /* as committed, for comparison */
    size_t mlen[BT_M_COUNT];
} ref_archive;

static uint64_t rng;
static uint64_t next(void)
{
    uint64_t x = rng += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static void die(const char *what)
{
    fprintf(stderr, "soak_faults: %s: %s\n", what, bt_errmsg());
    exit(2);
}

static void load_ref(ref_archive *r, const char *path)
{
    memset(r, 0, sizeof *r);
    r->path = bt_xstrdup(path);
    char *b;
    if (bt_read_file(path, (size_t)1 << 34, &b, &r->len)) die(path);
    r->bytes = (uint8_t *)b;
    char *sp = bt_xasprintf("%s.sha256", path);
    if (bt_read_file(sp, 4096, &r->side, &r->side_len)) die(sp);
    free(sp);
    bt_archive *a;
    if (bt_archive_read_checked(path, NULL, NULL, &a)) die(path);
    r->step = bt_archive_step(a);
    for (int i = 0; i < BT_M_COUNT; i++) {
        const uint8_t *m = bt_archive_member(a, bt_archive_member_name(i), &r->mlen[i]);
        r->member[i] = bt_xmalloc(r->mlen[i] + 1);
        if (r->mlen[i]) memcpy(r->member[i], m, r->mlen[i]);
    }
    bt_archive_close(a);
}

static char *in_dir(const char *dir, int64_t step, const char *suffix)
{
    char name[64];
    bt_archive_filename(step, name, sizeof name);
    char *base = bt_path_join(dir, name);
    char *p = bt_xasprintf("%s%s", base, suffix);
    free(base);
    return p;
}

static void put(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(2);
    }
}

/* DIR holds exactly A (intact, with its sidecar). */
static void reset_dir(const char *dir, const ref_archive *A)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char *p = bt_path_join(dir, de->d_name);
        unlink(p);
        free(p);
    }
    if (d) closedir(d);
    char *p = in_dir(dir, A->step, ""), *s = in_dir(dir, A->step, ".sha256");
    put(p, A->bytes, A->len);
    put(s, A->side, A->side_len);
    free(p);
    free(s);
}

typedef struct {
    long injected, damaged, lost, bad_commits, fell_back, loaded_damaged_name;
} counts;

/* Discovery as `baton run` resumes: what it returns must be one of the
 * archives committed, byte for byte; with A intact, it must return one. */
static void judge(const char *dir, const ref_archive *A, const ref_archive *B, counts *c)
{
    char found[4096];
    bt_archive *a = NULL;
    int rc = bt_discover_judged(dir, NULL, 0, NULL, NULL, &bt_archive_contents_judge, found, sizeof found, &a, NULL);
    bt_err_clear();
    if (rc) {
        c->lost++;
        return;
    }
    const ref_archive *r = bt_archive_step(a) == A->step ? A : bt_archive_step(a) == B->step ? B : NULL;
    int same = r != NULL;
    for (int i = 0; same && i < BT_M_COUNT; i++) {
        size_t n;
        const uint8_t *m = bt_archive_member(a, bt_archive_member_name(i), &n);
        same = m && n == r->mlen[i] && !memcmp(m, r->member[i], n);
    }
    if (!same) c->damaged++;
    else if (r == A) c->fell_back++;
    else c->loaded_damaged_name++; /* the damage was in bytes that carry no content */
    bt_archive_close(a);
}

static void flip_or_truncate(const char *dir, const ref_archive *A, const ref_archive *B, int truncate, int sidecar,
                             counts *c)
{
    reset_dir(dir, A);
    uint8_t *copy = bt_xmalloc(B->len);
    memcpy(copy, B->bytes, B->len);
    size_t len = B->len;
    if (truncate) len = (size_t)(next() % B->len);
    else copy[next() % B->len] ^= (uint8_t)(1u << (next() % 8));
    char *p = in_dir(dir, B->step, ""), *s = in_dir(dir, B->step, ".sha256");
    put(p, copy, len);
    if (sidecar) put(s, B->side, B->side_len);
    free(copy);
    free(p);
    free(s);
    c->injected++;
    judge(dir, A, B, c);
}

/* B's contents as a snapshot of step B+1 (views into a, which must stay open). */
static void snapshot_of(const bt_archive *a, bt_st_file **m, bt_st_file **o, bt_snapshot *s, bt_st_entry **ents)
{
    if (bt_archive_open_model(a, m) || bt_archive_open_optim(a, o)) die("open tensors");
    size_t nm = bt_st_count(*m), no = bt_st_count(*o);
    bt_st_entry *e = bt_xcalloc(nm + no, sizeof *e);
    for (size_t i = 0; i < nm + no; i++) {
        const bt_st_tensor *t = i < nm ? bt_st_get(*m, i) : bt_st_get(*o, i - nm);
        e[i].name = t->name;
        e[i].dtype = t->dtype;
        e[i].ndim = t->ndim;
        memcpy(e[i].shape, t->shape, sizeof e[i].shape);
        e[i].data = t->data;
    }
    *ents = e;
    *s = (bt_snapshot){.model = e, .n_model = nm, .optim = e + nm, .n_optim = no,
                       .trainer_json = bt_archive_text(a, BT_M_TRAINER), .job_ini = bt_archive_text(a, BT_M_JOB),
                       .config_json = bt_archive_text(a, BT_M_CONFIG), .vocab_txt = bt_archive_text(a, BT_M_VOCAB),
                       .tokenizer_json = bt_archive_text(a, BT_M_TOKJSON),
                       .tokenizer_config_json = bt_archive_text(a, BT_M_TOKCONFIG),
                       .special_tokens_map_json = bt_archive_text(a, BT_M_SPECIAL),
                       .fingerprint_json = bt_archive_fingerprint_json(a), .step = bt_archive_step(a),
                       .baton_version = bt_archive_baton_version(a)};
}

static int leftovers(const char *dir, int64_t step)
{
    int n = 0;
    char *fin = in_dir(dir, step, ""), *part = in_dir(dir, step, ".partial"), *tmp = in_dir(dir, step, ".sha256.tmp");
    n = bt_path_exists(fin) + bt_path_exists(part) + bt_path_exists(tmp);
    free(fin);
    free(part);
    free(tmp);
    return n;
}

/* A commit of B's state that fails after `at` bytes with errno kind. */
static void failed_commit(const char *dir, const ref_archive *A, const ref_archive *B, const bt_snapshot *s,
                          uint64_t at, const char *err, counts *c)
{
    reset_dir(dir, A);
    char v[32];
    snprintf(v, sizeof v, "%llu", (unsigned long long)at);
    setenv("BATON_TEST_FAIL_WRITE_AFTER", v, 1);
    setenv("BATON_TEST_FAIL_WRITE_ERRNO", err, 1);
    int rc = bt_archive_commit(dir, s, NULL, 0);
    unsetenv("BATON_TEST_FAIL_WRITE_AFTER");
    unsetenv("BATON_TEST_FAIL_WRITE_ERRNO");
    bt_err_clear();
    c->injected++;
    if (rc != BT_EIO || leftovers(dir, s->step)) c->bad_commits++;
    judge(dir, A, B, c);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: soak_faults DIR A.tar B.tar N SEED\n");
        return 2;
    }
    bt_log_set_level(BT_LOG_ERROR); /* the skips are counted, not printed */
    const char *dir = argv[1];
    long n = atol(argv[4]);
    rng = strtoull(argv[5], NULL, 10);
    ref_archive A, B;
    load_ref(&A, argv[2]);
    load_ref(&B, argv[3]);
    if (A.step >= B.step) {
        fprintf(stderr, "soak_faults: A (step %lld) must be older than B (step %lld)\n", (long long)A.step,
                (long long)B.step);
        return 2;
    }
    long n_flip = n * 4 / 10, n_trunc = n * 2 / 10, n_nospc = n * 3 / 10, n_eio = n - n_flip - n_trunc - n_nospc;
    counts cf = {0}, ct = {0}, cn = {0}, ce = {0};
    for (long i = 0; i < n_flip; i++) flip_or_truncate(dir, &A, &B, 0, i % 2 == 0, &cf);
    for (long i = 0; i < n_trunc; i++) flip_or_truncate(dir, &A, &B, 1, i % 2 == 0, &ct);
    /* B's state committed anew, failing at random offsets of its write */
    bt_archive *b;
    if (bt_archive_read(B.path, NULL, NULL, &b)) die(B.path);
    bt_st_file *m, *o;
    bt_snapshot s;
    bt_st_entry *ents;
    snapshot_of(b, &m, &o, &s, &ents);
    uint64_t total;
    if (bt_archive_size(&s, &total)) die("size");
    for (long i = 0; i < n_nospc; i++) failed_commit(dir, &A, &B, &s, next() % total, "ENOSPC", &cn);
    for (long i = 0; i < n_eio; i++) failed_commit(dir, &A, &B, &s, next() % total, "EIO", &ce);
    /* and without a fault the same commit goes through and loads as B */
    reset_dir(dir, &A);
    if (bt_archive_commit(dir, &s, NULL, 0)) die("a commit without a fault");
    counts ok = {0};
    judge(dir, &A, &B, &ok);
    int sane = ok.loaded_damaged_name == 1;
    bt_st_close(m);
    bt_st_close(o);
    free(ents);
    bt_archive_close(b);
    printf("soak faults: bit flips %ld (half with the sidecar): %ld refused (fell back to step %lld), %ld loaded "
           "intact (flips in bytes that carry no content)\n", cf.injected, cf.fell_back, (long long)A.step,
           cf.loaded_damaged_name);
    printf("soak faults: truncations %ld: %ld refused, %ld loaded intact (cut in the end-of-archive blocks, no "
           "sidecar)\n", ct.injected, ct.fell_back, ct.loaded_damaged_name);
    printf("soak faults: ENOSPC at a random write offset %ld, EIO %ld: %ld failed cleanly\n", cn.injected, ce.injected,
           cn.injected + ce.injected - cn.bad_commits - ce.bad_commits);
    long injected = cf.injected + ct.injected + cn.injected + ce.injected;
    long damaged = cf.damaged + ct.damaged + cn.damaged + ce.damaged;
    long lost = cf.lost + ct.lost + cn.lost + ce.lost;
    long bad = cn.bad_commits + ce.bad_commits + !sane;
    printf("soak faults: %ld injected, damaged loads %ld, lost fallbacks %ld, bad commits %ld\n", injected, damaged,
           lost, bad);
    reset_dir(dir, &A);
    return damaged || lost || bad ? 1 : 0;
}
