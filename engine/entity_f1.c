/* engine/entity_f1.c — seqeval-compatible entity extraction and P/R/F1
 * (see entity_f1.h and docs/tasks.md).
 *
 * Owns: the chunk start/end rules (seqeval.metrics.sequence_labeling,
 * default mode) re-expressed over label ids.
 * Must not: allocate per sentence beyond what bt_entity_count needs.
 */
#include "engine/entity_f1.h"
#include "util/err.h"
#include "util/mem.h"

#include <stdlib.h>
#include <string.h>

static int cmp_str(const void *x, const void *y) { return strcmp(*(char *const *)x, *(char *const *)y); }

void bt_entity_scheme_free(bt_entity_scheme *s)
{
    free(s->prefix);
    free(s->type);
    if (s->types)
        for (int i = 0; i < s->n_types; i++) free(s->types[i]);
    free(s->types);
    memset(s, 0, sizeof *s);
}

/* The type part of a valid label ("_" for a bare prefix), or NULL if invalid. */
static const char *type_of(const char *l)
{
    if (!strcmp(l, "O")) return "_";
    if (!strchr("BIES", l[0]) || !l[0]) return NULL;
    if (!l[1]) return "_";
    if (l[1] != '-' || !l[2]) return NULL;
    return l + 2;
}

int bt_entity_scheme_init(bt_entity_scheme *s, const char *const *labels, int n_labels)
{
    memset(s, 0, sizeof *s);
    if (n_labels < 1) return bt_fail(BT_ECONFIG, "entity F1: empty label list");
    for (int i = 0; i < n_labels; i++)
        if (!labels[i] || !type_of(labels[i]))
            return bt_fail(BT_ECONFIG,
                           "entity F1: label '%s' (id %d) is not \"O\" or B-/I-/E-/S- followed by a type (IOB2, IOBES): "
                           "entity-level F1 needs such tags (use token accuracy for other tag sets)",
                           labels[i] ? labels[i] : "(null)", i);
    /* distinct types, sorted; "O" contributes "_" only if a bare tag does too */
    char **names = bt_xmalloc((size_t)n_labels * sizeof *names);
    int n = 0;
    for (int i = 0; i < n_labels; i++)
        if (strcmp(labels[i], "O")) names[n++] = (char *)type_of(labels[i]);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!k || strcmp(names[k - 1], names[i])) names[k++] = names[i];
    s->n_labels = n_labels;
    s->n_types = k;
    s->types = bt_xmalloc((size_t)(k ? k : 1) * sizeof *s->types);
    for (int i = 0; i < k; i++) s->types[i] = bt_xstrdup(names[i]);
    free(names);
    s->prefix = bt_xmalloc((size_t)n_labels);
    s->type = bt_xmalloc((size_t)n_labels * sizeof *s->type);
    for (int i = 0; i < n_labels; i++) {
        const char *t = type_of(labels[i]);
        s->prefix[i] = labels[i][0];
        s->type[i] = -1;
        char **f = bsearch(&t, s->types, (size_t)k, sizeof *s->types, cmp_str);
        if (f) s->type[i] = (int)(f - s->types);
    }
    return 0;
}

/* seqeval end_of_chunk: did a chunk end just before the current tag? */
static int end_of_chunk(char prev_tag, char tag, int prev_type, int type)
{
    if (prev_tag == 'E' || prev_tag == 'S') return 1;
    if ((prev_tag == 'B' || prev_tag == 'I') && (tag == 'B' || tag == 'S' || tag == 'O')) return 1;
    if (prev_tag != 'O' && prev_type != type) return 1;
    return 0;
}

/* seqeval start_of_chunk: does a chunk start at the current tag? */
static int start_of_chunk(char prev_tag, char tag, int prev_type, int type)
{
    if (tag == 'B' || tag == 'S') return 1;
    if ((prev_tag == 'E' || prev_tag == 'S' || prev_tag == 'O') && (tag == 'E' || tag == 'I')) return 1;
    if (tag != 'O' && prev_type != type) return 1;
    return 0;
}

int bt_entity_extract(const bt_entity_scheme *s, const int32_t *tags, int n, bt_entity *out)
{
    char prev_tag = 'O';
    int prev_type = -2; /* seqeval starts with prev_type '' (no type) */
    int begin = 0, m = 0;
    /* the type of the "O" appended at the end: "_" (or a value no type has) */
    int o_type = -1;
    for (int t = 0; t < s->n_types; t++)
        if (!strcmp(s->types[t], "_")) o_type = t;
    for (int i = 0; i <= n; i++) {
        char tag = i < n ? s->prefix[tags[i]] : 'O';
        int type = i < n ? s->type[tags[i]] : o_type;
        if (tag == 'O') type = o_type;
        if (end_of_chunk(prev_tag, tag, prev_type, type)) {
            out[m].type = prev_type;
            out[m].first = begin;
            out[m].last = i - 1;
            m++;
        }
        if (start_of_chunk(prev_tag, tag, prev_type, type)) begin = i;
        prev_tag = tag;
        prev_type = type;
    }
    return m;
}

void bt_entity_counts_init(bt_entity_counts *c, const bt_entity_scheme *s)
{
    c->n_types = s->n_types;
    size_t k = (size_t)(s->n_types ? s->n_types : 1);
    c->tp = bt_xcalloc(k, sizeof *c->tp);
    c->n_pred = bt_xcalloc(k, sizeof *c->n_pred);
    c->n_true = bt_xcalloc(k, sizeof *c->n_true);
}

void bt_entity_counts_free(bt_entity_counts *c)
{
    free(c->tp);
    free(c->n_pred);
    free(c->n_true);
    memset(c, 0, sizeof *c);
}

void bt_entity_counts_reset(bt_entity_counts *c)
{
    for (int t = 0; t < c->n_types; t++) c->tp[t] = c->n_pred[t] = c->n_true[t] = 0;
}

int bt_entity_count(bt_entity_counts *c, const bt_entity_scheme *s, const int32_t *gold, const int32_t *pred, int n)
{
    for (int i = 0; i < n; i++)
        if (gold[i] < 0 || gold[i] >= s->n_labels || pred[i] < 0 || pred[i] >= s->n_labels)
            return bt_fail(BT_EDATA, "entity F1: label id %d at word %d is outside the %d labels",
                           gold[i] < 0 || gold[i] >= s->n_labels ? gold[i] : pred[i], i, s->n_labels);
    if (n <= 0) return 0;
    bt_entity *g = bt_xmalloc((size_t)n * sizeof *g), *p = bt_xmalloc((size_t)n * sizeof *p);
    int ng = bt_entity_extract(s, gold, n, g), np = bt_entity_extract(s, pred, n, p);
    for (int i = 0; i < ng; i++) c->n_true[g[i].type]++;
    for (int i = 0; i < np; i++) c->n_pred[p[i].type]++;
    /* both lists are ordered by first word and do not overlap: merge */
    for (int i = 0, j = 0; i < ng && j < np;) {
        if (g[i].first < p[j].first) i++;
        else if (g[i].first > p[j].first) j++;
        else {
            if (g[i].last == p[j].last && g[i].type == p[j].type) c->tp[g[i].type]++;
            i++;
            j++;
        }
    }
    free(g);
    free(p);
    return 0;
}

static bt_prf prf(int64_t tp, int64_t np, int64_t nt)
{
    bt_prf r;
    r.precision = np ? (double)tp / (double)np : 0.0;
    r.recall = nt ? (double)tp / (double)nt : 0.0;
    r.f1 = r.precision + r.recall > 0 ? 2 * r.precision * r.recall / (r.precision + r.recall) : 0.0;
    r.support = nt;
    return r;
}

bt_prf bt_entity_micro(const bt_entity_counts *c)
{
    int64_t tp = 0, np = 0, nt = 0;
    for (int t = 0; t < c->n_types; t++) {
        tp += c->tp[t];
        np += c->n_pred[t];
        nt += c->n_true[t];
    }
    return prf(tp, np, nt);
}

bt_prf bt_entity_per_type(const bt_entity_counts *c, int type) { return prf(c->tp[type], c->n_pred[type], c->n_true[type]); }
