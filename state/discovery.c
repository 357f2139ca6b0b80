/* state/discovery.c — candidate listing and newest-valid selection (see
 * discovery.h). Read-only: nothing here creates, renames or removes files.
 */
#include "state/discovery.h"
#include "state/commit.h"
#include "util/err.h"
#include "util/file.h"
#include "util/log.h"
#include "util/mem.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_DEPTH 32

typedef struct {
    char *path;
    int64_t step;  /* -1: unknown (tried last) */
    size_t order;  /* discovery order, for stable ties */
    dev_t dev;
    ino_t ino;
} cand;

typedef struct {
    cand *v;
    size_t n, cap;
    struct { dev_t dev; ino_t ino; } *dirs; /* directories visited */
    size_t nd, capd;
} clist;

static void add_cand(clist *c, const char *path, int64_t step, const struct stat *st)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i].dev == st->st_dev && c->v[i].ino == st->st_ino) return; /* same file twice */
    if (c->n == c->cap) c->v = bt_xrealloc(c->v, (c->cap = c->cap ? 2 * c->cap : 16) * sizeof *c->v);
    c->v[c->n] = (cand){bt_xstrdup(path), step, c->n, st->st_dev, st->st_ino};
    c->n++;
}

static int seen_dir(clist *c, const struct stat *st)
{
    for (size_t i = 0; i < c->nd; i++)
        if (c->dirs[i].dev == st->st_dev && c->dirs[i].ino == st->st_ino) return 1;
    if (c->nd == c->capd) c->dirs = bt_xrealloc(c->dirs, (c->capd = c->capd ? 2 * c->capd : 16) * sizeof *c->dirs);
    c->dirs[c->nd].dev = st->st_dev;
    c->dirs[c->nd].ino = st->st_ino;
    c->nd++;
    return 0;
}

/* Archives in dir; recursive when depth >= 0 (then up to MAX_DEPTH). */
static void scan_dir(clist *c, const char *dir, int recursive, int depth)
{
    struct stat dst;
    if (stat(dir, &dst) != 0 || !S_ISDIR(dst.st_mode) || seen_dir(c, &dst)) return;
    DIR *d = opendir(dir);
    if (!d) {
        bt_warn("%s: cannot list (%s); no checkpoints taken from it", dir, strerror(errno));
        return;
    }
    /* sorted names, so the order (and ties) do not depend on readdir */
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (n == cap) names = bt_xrealloc(names, (cap = cap ? 2 * cap : 32) * sizeof *names);
        names[n++] = bt_xstrdup(de->d_name);
    }
    closedir(d);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    for (size_t i = 0; i < n; i++) {
        char *p = bt_path_join(dir, names[i]);
        struct stat st;
        int64_t step;
        if (stat(p, &st) == 0) {
            int named = bt_archive_parse_filename(names[i], &step);
            if (S_ISREG(st.st_mode) && named) add_cand(c, p, step, &st);
            else if (S_ISDIR(st.st_mode) && recursive && depth < MAX_DEPTH) scan_dir(c, p, 1, depth + 1);
            /* once per scan, i.e. once per run */
            if (named && !S_ISREG(st.st_mode) && !(S_ISDIR(st.st_mode) && recursive))
                bt_warn("%s: named like a checkpoint archive but is %s: ignored (not a candidate; retention "
                        "never counts or removes it)", p, bt_file_kind(st.st_mode));
        }
        free(p);
        free(names[i]);
    }
    free(names);
}

static int cand_cmp(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->step != y->step) return x->step < y->step ? 1 : -1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static void collect(const char *out_dir, const char *const *resume, size_t nr, clist *c)
{
    memset(c, 0, sizeof *c);
    if (out_dir) scan_dir(c, out_dir, 0, 0);
    for (size_t i = 0; i < nr; i++) {
        if (!resume[i] || !resume[i][0]) continue;
        struct stat st;
        if (stat(resume[i], &st) != 0) {
            bt_info("resume path %s does not exist; skipped", resume[i]);
            continue;
        }
        if (S_ISDIR(st.st_mode)) scan_dir(c, resume[i], 1, 0);
        else if (S_ISREG(st.st_mode)) {
            const char *base = strrchr(resume[i], '/');
            int64_t step;
            if (!bt_archive_parse_filename(base ? base + 1 : resume[i], &step)) step = -1;
            add_cand(c, resume[i], step, &st);
        } else {
            bt_warn("resume path %s is %s, neither an archive file nor a directory: ignored", resume[i],
                    bt_file_kind(st.st_mode));
        }
    }
    if (c->n) qsort(c->v, c->n, sizeof *c->v, cand_cmp);
    free(c->dirs);
    c->dirs = NULL;
}

int bt_discovery_list(const char *out_dir, const char *const *resume, size_t nr, char ***paths, int64_t **steps,
                      size_t *n)
{
    clist c;
    collect(out_dir, resume, nr, &c);
    *paths = bt_xcalloc(c.n ? c.n : 1, sizeof **paths);
    *steps = bt_xcalloc(c.n ? c.n : 1, sizeof **steps);
    for (size_t i = 0; i < c.n; i++) {
        (*paths)[i] = c.v[i].path;
        (*steps)[i] = c.v[i].step;
    }
    *n = c.n;
    free(c.v);
    return BT_OK;
}

void bt_discovery_list_free(char **paths, int64_t *steps, size_t n)
{
    for (size_t i = 0; i < n; i++) free(paths[i]);
    free(paths);
    free(steps);
}

void bt_discovery_report_free(bt_discovery_report *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n_skipped; i++) {
        free(r->skipped[i].path);
        free(r->skipped[i].reason);
    }
    free(r->skipped);
    memset(r, 0, sizeof *r);
}

int bt_discover(const char *out_dir, const char *const *resume, size_t nr, const char *fp,
                const bt_archive_limits *lim, char *found, size_t cap, bt_archive **opened, bt_discovery_report *rep)
{
    return bt_discover_judged(out_dir, resume, nr, fp, lim, NULL, found, cap, opened, rep);
}

int bt_discover_judged(const char *out_dir, const char *const *resume, size_t nr, const char *fp,
                       const bt_archive_limits *lim, const bt_archive_judge *judge, char *found, size_t cap,
                       bt_archive **opened, bt_discovery_report *rep)
{
    if (found && cap) found[0] = '\0';
    if (opened) *opened = NULL;
    if (rep) memset(rep, 0, sizeof *rep);
    char **paths;
    int64_t *steps;
    size_t n;
    bt_discovery_list(out_dir, resume, nr, &paths, &steps, &n);
    if (rep) rep->n_candidates = n;
    int rc = BT_ENOINPUT;
    size_t nskip = 0;
    for (size_t i = 0; i < n; i++) {
        bt_archive *a = NULL;
        /* a judge looks at the tensors too: they are kept in memory for it */
        int r = opened || judge ? bt_archive_read(paths[i], lim, fp, &a) : bt_archive_verify(paths[i], lim, fp, &a);
        if (!r && steps[i] >= 0 && bt_archive_step(a) != steps[i])
            r = bt_fail(BT_EDATA, "%s: the file name says step %lld but MANIFEST.json says step %lld: renamed or "
                                  "damaged",
                        paths[i], (long long)steps[i], (long long)bt_archive_step(a));
        if (!r && judge && judge->fn) {
            r = judge->fn(judge->ctx, a);
            if (r) {
                /* the judge's reason names the member; the path goes first, once */
                const char *m = bt_errmsg();
                size_t pl = strlen(paths[i]);
                if (strncmp(m, paths[i], pl) || m[pl] != ':') bt_fail_context(r, "%s", paths[i]);
            }
        }
        if (!r) {
            if (found && cap) snprintf(found, cap, "%s", paths[i]);
            if (opened) *opened = a;
            else bt_archive_close(a);
            rc = BT_OK;
            break;
        }
        bt_archive_close(a);
        bt_warn("skipping checkpoint: %s", bt_errmsg());
        nskip++;
        if (rep) {
            rep->skipped = bt_xrealloc(rep->skipped, nskip * sizeof *rep->skipped);
            rep->skipped[nskip - 1] = (bt_discovery_skip){bt_xstrdup(paths[i]), steps[i], r, bt_xstrdup(bt_errmsg())};
            rep->n_skipped = nskip;
        }
    }
    if (rc)
        bt_fail(BT_ENOINPUT, "no valid checkpoint found (%zu candidate%s, %zu damaged, invalid or from another job)",
                n, n == 1 ? "" : "s", nskip);
    bt_discovery_list_free(paths, steps, n);
    return rc;
}
