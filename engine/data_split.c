/* engine/data_split.c — a held-out evaluation set carved from the training
 * data ([data] eval_split), for jobs whose data has no labelled eval file
 * (a competition's train.csv + an unlabelled test.csv).
 *
 * Owns: choosing which examples are held out (stratified by class, seeded,
 * counter-based: the same job picks the same examples on every machine and
 * in every session) and moving them into their own bt_dataset.
 * Must not: read files, tokenize, or know about job files.
 */
#include "engine/data.h"
#include "kernels/philox.h"
#include "util/err.h"
#include "util/mem.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Marks round(frac x n) of idx[0..n) as held (never all n), chosen by a
 * Fisher-Yates shuffle of group `group`. Returns how many it marked. */
static size_t hold_from_group(uint32_t *idx, size_t n, double frac, uint64_t seed, uint32_t group, uint8_t *held)
{
    size_t want = (size_t)floor(frac * (double)n + 0.5);
    if (want >= n) want = n - 1; /* a class is never left out of training entirely */
    if (want == 0) return 0;
    for (size_t i = n; i > 1; i--) {
        size_t k = i - 1;
        bt_u32x4 r = bt_random4(seed, BT_STREAM_EVAL_SPLIT, group, (uint32_t)k, (uint32_t)((uint64_t)k >> 32), 0);
        uint64_t u = ((uint64_t)r.v[1] << 32) | r.v[0];
        size_t j = (size_t)(((unsigned __int128)u * (unsigned __int128)(k + 1)) >> 64);
        uint32_t t = idx[k];
        idx[k] = idx[j];
        idx[j] = t;
    }
    for (size_t i = 0; i < want; i++) held[idx[i]] = 1;
    return want;
}

/* held[i] = 1 for the examples to move; returns their count. */
static size_t choose_held(const bt_dataset *ds, double frac, uint64_t seed, uint8_t *held)
{
    uint32_t *idx = bt_xmalloc((ds->n ? ds->n : 1) * sizeof *idx);
    size_t total = 0;
    if (ds->label_kind == BT_LABELS_CLASS) {
        for (int k = 0; k < ds->n_labels; k++) { /* indices of class k, in file order */
            size_t m = 0;
            for (size_t i = 0; i < ds->n; i++)
                if (ds->ex[i].label == k) idx[m++] = (uint32_t)i;
            total += hold_from_group(idx, m, frac, seed, (uint32_t)k, held);
        }
    } else {
        for (size_t i = 0; i < ds->n; i++) idx[i] = (uint32_t)i;
        total = hold_from_group(idx, ds->n, frac, seed, 0xFFFFFFFFu, held);
    }
    free(idx);
    return total;
}

/* *held: the shared parts of ds (texts, labels, kind), no examples yet. */
static void copy_shell(const bt_dataset *ds, double frac, bt_dataset *held)
{
    memset(held, 0, sizeof *held);
    held->path = bt_xasprintf("%s (held-out %g%%)", ds->path ? ds->path : "train", frac * 100.0);
    held->format = ds->format;
    held->text = bt_xmalloc(ds->text_len ? ds->text_len : 1);
    memcpy(held->text, ds->text, ds->text_len);
    held->text_len = ds->text_len;
    held->label_kind = ds->label_kind;
    held->n_labels = ds->n_labels;
    if (ds->n_labels) {
        held->labels = bt_xmalloc((size_t)ds->n_labels * sizeof *held->labels);
        for (int k = 0; k < ds->n_labels; k++) held->labels[k] = bt_xstrdup(ds->labels[k]);
    }
    if (ds->n_multi) {
        held->multi = bt_xmalloc(ds->n_multi * sizeof *held->multi);
        memcpy(held->multi, ds->multi, ds->n_multi * sizeof *held->multi);
        held->n_multi = ds->n_multi;
    }
    held->has_pair = ds->has_pair;
    memcpy(held->sha256, ds->sha256, sizeof held->sha256);
}

int bt_data_split(bt_dataset *ds, double frac, uint64_t seed, bt_dataset *held)
{
    memset(held, 0, sizeof *held);
    if (!(frac > 0.0 && frac < 1.0))
        return bt_fail(BT_ECONFIG, "eval_split = %g: the held-out fraction must be between 0 and 1", frac);
    uint8_t *mark = bt_xcalloc(ds->n ? ds->n : 1, 1);
    size_t n_held = choose_held(ds, frac, seed, mark);
    if (n_held == 0) { /* (never all: every group keeps one example) */
        free(mark);
        return bt_fail(BT_EDATA, "%s: %zu examples: holding out %g%% for evaluation selects no evaluation "
                       "example; use more data, a larger eval_split, or give [data] eval",
                       ds->path ? ds->path : "train", ds->n, frac * 100.0);
    }
    copy_shell(ds, frac, held);
    held->ex = bt_xmalloc(n_held * sizeof *held->ex);
    size_t kept = 0;
    for (size_t i = 0; i < ds->n; i++) {
        if (mark[i]) held->ex[held->n++] = ds->ex[i];
        else ds->ex[kept++] = ds->ex[i];
    }
    ds->n = kept;
    free(mark);
    return BT_OK;
}
