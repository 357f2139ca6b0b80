/* runner/task_token.c — `task = token_classify`: CoNLL data, batches,
 * entity-level evaluation and per-word prediction (see task_token.h).
 *
 * Owns: the glue between the job, engine/conll (reading, alignment, word
 * predictions), engine/entity_f1 (scores) and the tokenizer.
 * Must not: make a random draw (the batch order and dropout belong to the
 * segment loop and the engine), or depend on batch composition: a sentence's
 * aligned row is fixed at set-up.
 */
#include "runner/task_token.h"
#include "runner/task.h"
#include "runner/watchdog.h"

#include "engine/model_config.h"
#include "kernels/backend.h"
#include "util/err.h"
#include "util/file.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/sha256.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONLL_MAX_BYTES ((size_t)4 << 30)

/* The job's CoNLL reading options; labels: the job's list, or NULL (collect). */
static int conll_options(const bt_job *job, bt_conll_options *o)
{
    memset(o, 0, sizeof *o);
    o->tag_column = -1;
    const char *lc = job->data.label_column;
    if (lc && *lc && strcmp(lc, "auto")) {
        char *end;
        errno = 0;
        long v = strtol(lc, &end, 10);
        if (*end || errno || v < 1 || v > 63)
            return bt_job_key_error(job, BT_ECONFIG, "data", "label_column",
                            "'%s': a CoNLL file has no header; give the 0-based column of the tag (1..63; column 0 is "
                            "the word, e.g. 3 for CoNLL-2003's NER tags), or auto for the last column", lc);
        o->tag_column = (int)v;
    }
    o->sep = job->data.conll_separator == BT_JOB_CONLL_SEP_TAB ? BT_CONLL_SEP_TAB : BT_CONLL_SEP_WHITESPACE;
    if (job->data.labels.n > 0) {
        o->labels = (const char *const *)job->data.labels.v;
        o->n_labels = job->data.labels.n;
    }
    return BT_OK;
}

/* Keys of classification that have no meaning for CoNLL data. */
static int check_keys(const bt_job *job)
{
    const char *tc = job->data.text_column;
    if (tc && *tc && strcmp(tc, "auto") && strcmp(tc, "0"))
        return bt_job_key_error(job, BT_ECONFIG, "data", "text_column", "'%s': in a CoNLL file the word is column 0; remove the key", tc);
    if (job->data.text_pair_column && job->data.text_pair_column[0])
        return bt_job_key_error(job, BT_ECONFIG, "data", "text_pair_column", "task = token_classify reads one sentence per example; remove it");
    if (job->model.problem_type == BT_JOB_PROBLEM_MULTI || job->model.problem_type == BT_JOB_PROBLEM_REGRESSION)
        return bt_job_key_error(job, BT_ECONFIG, "model", "problem_type", "task = token_classify has one tag per word (a softmax over the "
                                                     "labels); use auto or single_label_classification");
    if (job->data.skip_malformed)
        return bt_job_key_error(job, BT_ECONFIG, "data", "skip_malformed", "CoNLL files are read whole: a malformed line is always an "
                                                       "error (file:line); fix the line and set it to false");
    int m = job->train.metric;
    if (m != BT_JOB_METRIC_AUTO && m != BT_JOB_METRIC_ENTITY_F1 && m != BT_JOB_METRIC_F1 &&
        m != BT_JOB_METRIC_ACCURACY && m != BT_JOB_METRIC_LOSS)
        return bt_job_key_error(job, BT_ECONFIG, "train", "metric", "task token_classify supports entity_f1 (= f1, entity level), accuracy "
                                                "(words) or loss");
    return BT_OK;
}

/* Tokenizes the words of the kept sentences of s into rows (one per word,
 * sub-token ids without [CLS]/[SEP]), through the token cache. */
static int tokenize_words(bt_token_set *s, const bt_tokenizer *tok, const char *cache_dir, const char *vocab_text,
                          const char *which, bt_id_table *t)
{
    memset(t, 0, sizeof *t);
    const bt_tokenizer_config *tc = bt_tokenizer_get_config(tok);
    char settings[256];
    int space = bt_tokenizer_word_needs_space(tok); /* byte-level BPE: " word", as add_prefix_space=True */
    snprintf(settings, sizeof settings, "task=token_classify;rows=words;lower=%d;accents=%d;cjk=%d;words=%zu%s",
             tc->lowercase, tc->strip_accents, tc->chinese_chars, s->n_words, space ? ";space=1" : "");
    uint8_t vocab_sha[32], key[32];
    bt_sha256(vocab_text ? vocab_text : "", vocab_text ? strlen(vocab_text) : 0, vocab_sha);
    bt_id_cache_key(s->sha256, vocab_sha, settings, key);
    char *path = NULL;
    if (cache_dir) {
        char hex[65];
        bt_sha256_hex(key, hex);
        char *name = bt_xasprintf("%s-%.16s.ids", which, hex);
        path = bt_path_join(cache_dir, name);
        free(name);
        int rc = bt_id_cache_read(path, key, t);
        if (rc == BT_OK && t->n_rows == s->n_words) {
            bt_info("%s: %zu words from the token cache %s", which, s->n_words, path);
            free(path);
            return BT_OK;
        }
        if (rc == BT_OK) bt_id_table_free(t);
        bt_err_clear();
    }
    bt_encoding enc;
    bt_encoding_init(&enc);
    t->n_rows = s->n_words;
    t->off = bt_xmalloc((s->n_words + 1) * sizeof *t->off);
    size_t cap = s->n_words * 2 + 16, used = 0;
    t->ids = bt_xmalloc(cap * sizeof *t->ids);
    t->off[0] = 0;
    int rc = BT_OK;
    const bt_conll *c = &s->conll;
    for (size_t si = 0; si < c->n_sents && rc == BT_OK; si++) {
        for (size_t w = c->sent[si]; w < c->sent[si + 1]; w++) {
            const char *word = bt_conll_word(c, w);
            rc = bt_encode_word(tok, word, &enc);
            if (rc) {
                /* token lines of a sentence are consecutive lines of the file */
                bt_fail_context(rc, "%s:%zu", c->path, (size_t)c->sent_line[si] + (w - c->sent[si]));
                break;
            }
            size_t n = enc.len >= 2 ? enc.len - 2 : 0;
            if (used + n > cap) {
                cap = (used + n) * 2;
                t->ids = bt_xrealloc(t->ids, cap * sizeof *t->ids);
            }
            if (n) memcpy(t->ids + used, enc.input_ids + 1, n * sizeof *t->ids);
            used += n;
            t->off[w + 1] = used;
        }
    }
    bt_encoding_free(&enc);
    if (rc == BT_OK && path) {
        int wrc = bt_mkdirs(cache_dir);
        if (!wrc) wrc = bt_id_cache_write(path, key, t);
        if (wrc) {
            bt_warn("could not write the token cache (%s); continuing without it", bt_errmsg());
            bt_err_clear();
        }
    }
    free(path);
    if (rc) bt_id_table_free(t);
    return rc;
}

static void token_set_free(bt_token_set *s)
{
    bt_conll_free(&s->conll);
    free(s->word_ntok);
    free(s->ids);
    free(s->labels);
    free(s->off);
    free(s->row_sent);
    free(s->win);
    memset(s, 0, sizeof *s);
}

/* How a set is read: its CoNLL options, the tokenizer and its cache, the windows. */
typedef struct {
    const bt_conll_options *o;
    const bt_tokenizer *tok;
    const char *cache_dir;       /* NULL: no token cache */
    const char *vocab_text;      /* keys the cache */
    int max_seq, overlap;
} token_src;

/* Reads path into s: parse, limit, tokenize, cut into windows, align. */
static int token_set_load(bt_token_set *s, const char *path, int64_t limit, const char *which, const token_src *src)
{
    const bt_conll_options *o = src->o;
    const bt_tokenizer *tok = src->tok;
    int max_seq = src->max_seq, overlap = src->overlap;
    memset(s, 0, sizeof *s);
    char *text;
    size_t len;
    int rc = bt_read_file(path, CONLL_MAX_BYTES, &text, &len);
    if (rc) return rc;
    bt_sha256(text, len, s->sha256);
    rc = bt_conll_parse(text, len, path, o, &s->conll);
    free(text);
    if (rc) return rc;
    bt_conll *c = &s->conll;
    if (limit > 0 && (uint64_t)limit < c->n_sents) c->n_sents = (size_t)limit;
    if (c->n_sents > UINT32_MAX)
        return bt_fail(BT_EDATA, "%s: %zu sentences: at most %u are supported; use limit_%s", path, c->n_sents,
                       UINT32_MAX, which);
    s->n_words = c->sent[c->n_sents];
    for (size_t si = 0; si < c->n_sents; si++)
        if (c->sent[si + 1] - c->sent[si] > INT_MAX)
            return bt_fail(BT_EDATA, "%s:%u: a sentence of %zu words: split it", path, c->sent_line[si],
                           c->sent[si + 1] - c->sent[si]);
    bt_id_table t;
    rc = tokenize_words(s, tok, src->cache_dir, src->vocab_text, which, &t);
    if (rc) return rc;
    bt_special_ids sp = bt_tokenizer_special_ids(tok);
    s->word_ntok = bt_xmalloc((s->n_words ? s->n_words : 1) * sizeof *s->word_ntok);
    for (size_t w = 0; w < s->n_words; w++) s->word_ntok[w] = (int32_t)(t.off[w + 1] - t.off[w]);
    /* windows: at most one per word (one for an empty sentence) */
    size_t cap = s->n_words + c->n_sents + 1;
    s->win = bt_xmalloc(cap * sizeof *s->win);
    s->row_sent = bt_xmalloc(cap * sizeof *s->row_sent);
    size_t total = 0;
    for (size_t si = 0; si < c->n_sents; si++) {
        size_t w0 = c->sent[si];
        int nw = (int)(c->sent[si + 1] - w0);
        int k = bt_conll_windows(s->word_ntok + w0, nw, max_seq, overlap, s->win + s->n_rows);
        if (k > 1) s->n_split_sents++;
        for (int i = 0; i < k; i++) {
            const bt_conll_window *wi = &s->win[s->n_rows + (size_t)i];
            size_t pieces = (size_t)(t.off[w0 + (size_t)wi->end] - t.off[w0 + (size_t)wi->begin]);
            if (pieces > (size_t)max_seq - 2) {
                pieces = (size_t)max_seq - 2; /* one word longer than a window */
                s->n_long_words++;
            }
            total += 2 + pieces;
            s->row_sent[s->n_rows + (size_t)i] = (uint32_t)si;
        }
        s->n_rows += (size_t)k;
    }
    s->ids = bt_xmalloc((total ? total : 1) * sizeof *s->ids);
    s->labels = bt_xmalloc((total ? total : 1) * sizeof *s->labels);
    s->off = bt_xmalloc((s->n_rows + 1) * sizeof *s->off);
    s->off[0] = 0;
    size_t maxw = 1;
    for (size_t r = 0; r < s->n_rows; r++) {
        int nw = s->win[r].end - s->win[r].begin;
        if ((size_t)nw > maxw) maxw = (size_t)nw;
    }
    int32_t *tags = bt_xmalloc(maxw * sizeof *tags);
    for (size_t r = 0; r < s->n_rows && !rc; r++) {
        const bt_conll_window *wi = &s->win[r];
        size_t w0 = c->sent[s->row_sent[r]] + (size_t)wi->begin;
        int nw = wi->end - wi->begin;
        /* only the words this window owns are labelled: every word trains once */
        for (int w = 0; w < nw; w++) {
            int in = wi->begin + w >= wi->own_begin && wi->begin + w < wi->own_end;
            tags[w] = in ? c->tag[w0 + (size_t)w] : BT_CONLL_IGNORE;
        }
        int n_out = 0, kept = 0;
        rc = bt_conll_align(t.ids + t.off[w0], s->word_ntok + w0, tags, nw, max_seq, sp.cls, sp.sep,
                            s->ids + s->off[r], s->labels + s->off[r], &n_out, &kept);
        if (!rc && kept != nw)
            rc = bt_fail(BT_EINTERNAL, "%s: window %zu keeps %d of its %d words", path, r, kept, nw);
        if (!rc) s->off[r + 1] = s->off[r] + (size_t)n_out;
    }
    free(tags);
    bt_id_table_free(&t);
    if (rc) return rc;
    if (s->n_split_sents)
        bt_info("%s: %zu of %zu sentences are longer than max_seq_len = %d sub-tokens: cut into overlapping "
                "windows (%zu model inputs in all)",
                path, s->n_split_sents, c->n_sents, max_seq, s->n_rows);
    if (s->n_long_words)
        bt_warn("%s: %zu words are longer than max_seq_len = %d sub-tokens on their own: only their first %d "
                "pieces are seen",
                path, s->n_long_words, max_seq, max_seq - 2);
    return BT_OK;
}

/* The generic runner view of a set: path, sentence count, label list, hash. */
static void fill_view(const bt_token_set *s, const char *path, bt_dataset *v)
{
    memset(v, 0, sizeof *v);
    v->path = bt_xstrdup(path);
    v->format = BT_DATA_CONLL;
    v->n = s->n_rows; /* the examples are the windows */
    v->label_kind = BT_LABELS_CLASS;
    v->n_labels = s->conll.n_labels;
    v->labels = bt_xmalloc(((size_t)v->n_labels + 1) * sizeof *v->labels);
    for (int i = 0; i < v->n_labels; i++) v->labels[i] = bt_xstrdup(s->conll.labels[i]);
    memcpy(v->sha256, s->sha256, sizeof v->sha256);
}

static void batcher_init(bt_token_batcher *b, int cap)
{
    b->cap = cap;
    b->ids = bt_xcalloc((size_t)cap, sizeof *b->ids);
    b->labels = bt_xcalloc((size_t)cap, sizeof *b->labels);
    b->len = bt_xcalloc((size_t)cap, sizeof *b->len);
}

static void batcher_free(bt_token_batcher *b)
{
    free(b->ids);
    free(b->labels);
    free(b->len);
    memset(b, 0, sizeof *b);
}

static void make_batch(bt_token_batcher *b, const bt_token_set *s, const uint32_t *idx, int n, bt_batch *out)
{
    for (int i = 0; i < n; i++) {
        size_t e = idx[i];
        b->ids[i] = s->ids + s->off[e];
        b->labels[i] = s->labels + s->off[e];
        b->len[i] = (int)(s->off[e + 1] - s->off[e]);
    }
    memset(out, 0, sizeof *out);
    out->n = n;
    out->ids = b->ids;
    out->len = b->len;
    out->token_labels = b->labels;
}

int bt_task_token_load(bt_token_task *t, const bt_task_env *env, const char *cache_dir, bt_dataset *train_view,
                       bt_dataset *eval_view)
{
    const bt_job *job = env->job;
    memset(t, 0, sizeof *t);
    memset(train_view, 0, sizeof *train_view);
    memset(eval_view, 0, sizeof *eval_view);
    bt_conll_options o;
    int rc = conll_options(job, &o);
    if (rc) return rc;
    t->max_seq = (int)job->data.max_seq_len;
    /* the overlap of the windows of a long sentence: [data] stride when the job
     * sets it, else the default capped at half a window */
    int stride_key = bt_job_key_index("data", "stride");
    t->overlap = (int)job->data.stride;
    if (job->origin[stride_key].file) {
        if (t->overlap >= t->max_seq - 2)
            return bt_job_key_error(job, BT_ECONFIG, "data", "stride", "%d: the overlap of the windows of a long sentence must be "
                                                   "below max_seq_len - 2 = %d sub-tokens",
                            t->overlap, t->max_seq - 2);
    } else if (t->overlap > (t->max_seq - 2) / 2) {
        t->overlap = (t->max_seq - 2) / 2;
    }
    token_src src = {.o = &o, .tok = env->tok, .cache_dir = cache_dir, .vocab_text = env->vocab_text,
                     .max_seq = t->max_seq, .overlap = t->overlap};
    rc = token_set_load(&t->train, job->data.train, job->data.limit_train, "train", &src);
    if (rc) return rc;
    bt_conll *tc = &t->train.conll;
    if (tc->n_sents == 0)
        return bt_fail(BT_EDATA, "%s: no training sentences; check [data] train", job->data.train);
    t->num_labels = tc->n_labels;
    if (job->model.num_labels > 0 && job->model.num_labels != tc->n_labels)
        return bt_job_key_error(job, BT_ECONFIG, "model", "num_labels", "%lld, but the label list has %d tags (%s ... ); for "
                                                    "token_classify they must agree: remove num_labels, or list every "
                                                    "tag in [data] labels",
                        (long long)job->model.num_labels, tc->n_labels, tc->labels[0]);
    if (job->data.eval && job->data.eval[0]) {
        bt_conll_options eo = o;
        eo.labels = (const char *const *)tc->labels; /* the training list: an unknown tag is an error at its line */
        eo.n_labels = tc->n_labels;
        src.o = &eo;
        rc = token_set_load(&t->eval, job->data.eval, job->data.limit_eval, "eval", &src);
        if (rc) return rc;
        t->has_eval = t->eval.conll.n_sents > 0;
    }
    /* entity scores need an entity tag scheme (B-/I-/E-/S- + type, and O) */
    int m = job->train.metric;
    if (bt_entity_scheme_init(&t->scheme, (const char *const *)tc->labels, tc->n_labels) == BT_OK) {
        t->has_scheme = 1;
    } else if (m == BT_JOB_METRIC_ENTITY_F1 || m == BT_JOB_METRIC_F1) {
        char why[512];
        snprintf(why, sizeof why, "%s", bt_errmsg());
        bt_err_clear();
        return bt_job_key_error(job, BT_ECONFIG, "train", "metric", "%s needs entity tags (O, B-TYPE, I-TYPE, ...) but %s has others "
                                                "(%s); use metric = accuracy (words) for these tags",
                        bt_job_enum_name(bt_job_key_index("train", "metric"), m), job->data.train, why);
    } else {
        if (m == BT_JOB_METRIC_AUTO)
            bt_warn("%s: the tags are not an entity scheme (%s): entity F1 is not computed; the metric is word "
                    "accuracy (set [train] metric = accuracy to say so)", job->data.train, bt_errmsg());
        bt_err_clear();
    }
    t->fill = bt_conll_label_id(tc, "O");
    if (t->fill < 0) t->fill = 0;
    t->metric = m == BT_JOB_METRIC_LOSS ? "loss"
              : m == BT_JOB_METRIC_ACCURACY || !t->has_scheme ? "accuracy"
                                                              : "f1";
    fill_view(&t->train, job->data.train, train_view);
    if (job->data.eval && job->data.eval[0]) fill_view(&t->eval, job->data.eval, eval_view);
    bt_info("token_classify: %zu training sentences (%zu words), %d tags%s%s", tc->n_sents, t->train.n_words,
            tc->n_labels, t->has_eval ? "" : ", no evaluation data",
            t->has_scheme ? "" : " (not an entity scheme: word accuracy only)");
    return BT_OK;
}

void bt_task_token_free(bt_token_task *t)
{
    if (!t) return;
    token_set_free(&t->train);
    token_set_free(&t->eval);
    if (t->has_scheme) bt_entity_scheme_free(&t->scheme);
    for (int k = 0; k < t->n_micro; k++) batcher_free(&t->micro[k]);
    free(t->micro);
    memset(t, 0, sizeof *t);
}

int bt_task_token_evaluate(bt_token_task *t, const bt_task_eval_args *a, double *loss, bt_metric_value *v, int *n,
                           void **extra)
{
    bt_bert *m = a->model;
    int batch_size = a->batch_size;
    *n = 0;
    *extra = NULL;
    *loss = NAN;
    const bt_token_set *s = &t->eval;
    const bt_conll *c = &s->conll;
    int C = bt_bert_logits_cols(m);
    if (C != t->num_labels)
        return bt_fail(BT_EINTERNAL, "token classifier has %d outputs for %d labels", C, t->num_labels);
    bt_token_batcher b;
    batcher_init(&b, batch_size);
    uint32_t *idx = bt_xmalloc((size_t)batch_size * sizeof *idx);
    float *logits = bt_xmalloc((size_t)batch_size * (size_t)t->max_seq * (size_t)C * sizeof *logits);
    int32_t *tok_pred = bt_xmalloc((size_t)t->max_seq * sizeof *tok_pred);
    size_t maxw = 1;
    for (size_t i = 0; i < c->n_sents; i++)
        if (c->sent[i + 1] - c->sent[i] > maxw) maxw = c->sent[i + 1] - c->sent[i];
    int32_t *word_pred = bt_xmalloc(maxw * sizeof *word_pred); /* the sentence being assembled */
    int32_t *win_pred = bt_xmalloc(maxw * sizeof *win_pred);   /* one window's words */
    bt_entity_counts cnt;
    memset(&cnt, 0, sizeof cnt);
    if (t->has_scheme) bt_entity_counts_init(&cnt, &t->scheme);
    double loss_sum = 0;
    int64_t n_lab = 0, n_words = 0, n_right = 0;
    int rc = BT_OK;
    for (size_t start = 0; start < s->n_rows && rc == BT_OK; start += (size_t)batch_size) {
        int nb = (int)(s->n_rows - start < (size_t)batch_size ? s->n_rows - start : (size_t)batch_size);
        for (int i = 0; i < nb; i++) idx[i] = (uint32_t)(start + (size_t)i);
        bt_batch batch;
        make_batch(&b, s, idx, nb, &batch);
        int64_t k = 0;
        for (int i = 0; i < nb; i++)
            for (int p = 0; p < batch.len[i]; p++) k += batch.token_labels[i][p] != BT_CONLL_IGNORE;
        float bl = 0;
        rc = bt_bert_eval(m, &batch, k > 0 ? &bl : NULL, logits);
        if (rc) break;
        if (k > 0) {
            loss_sum += (double)bl * (double)k;
            n_lab += k;
        }
        size_t pos = 0;
        for (int i = 0; i < nb && rc == BT_OK; i++) {
            size_t r = idx[i], si = s->row_sent[r], w0 = c->sent[si];
            const bt_conll_window *wi = &s->win[r];
            int nw = wi->end - wi->begin;
            for (int p = 0; p < batch.len[i]; p++) tok_pred[p] = bt_argmax(logits + (pos + (size_t)p) * (size_t)C, C);
            pos += (size_t)batch.len[i];
            bt_conll_word_preds(tok_pred, s->word_ntok + w0 + (size_t)wi->begin, nw, nw, t->fill, win_pred);
            for (int w = wi->own_begin; w < wi->own_end; w++) word_pred[w] = win_pred[w - wi->begin];
            if (r + 1 < s->n_rows && s->row_sent[r + 1] == si) continue; /* more windows of this sentence */
            int ns = (int)(c->sent[si + 1] - w0);
            for (int w = 0; w < ns; w++) n_right += word_pred[w] == c->tag[w0 + (size_t)w];
            n_words += ns;
            if (t->has_scheme) rc = bt_entity_count(&cnt, &t->scheme, c->tag + w0, word_pred, ns);
        }
        if (rc == BT_OK && a->heartbeat && a->heartbeat(a->hb_ctx)) rc = BT_ETEMPFAIL;
    }
    if (rc == BT_OK) {
        *loss = n_lab > 0 ? loss_sum / (double)n_lab : NAN;
        json_t *x = json_object();
        if (t->has_scheme) {
            bt_prf mi = bt_entity_micro(&cnt);
            v[(*n)++] = (bt_metric_value){"f1", mi.f1};
            v[(*n)++] = (bt_metric_value){"precision", mi.precision};
            v[(*n)++] = (bt_metric_value){"recall", mi.recall};
            json_t *per = json_object();
            for (int ty = 0; ty < cnt.n_types; ty++) {
                if (!cnt.n_true[ty] && !cnt.n_pred[ty]) continue;
                bt_prf p = bt_entity_per_type(&cnt, ty);
                json_object_set_new(per, t->scheme.types[ty],
                                    json_pack("{s:f, s:f, s:f, s:I}", "precision", p.precision, "recall", p.recall,
                                              "f1", p.f1, "support", (json_int_t)p.support));
            }
            json_object_set_new(x, "entities", per);
            json_object_set_new(x, "support", json_integer((json_int_t)mi.support));
        }
        v[(*n)++] = (bt_metric_value){"accuracy", n_words > 0 ? (double)n_right / (double)n_words : NAN};
        json_object_set_new(x, "words", json_integer((json_int_t)n_words));
        *extra = x;
    }
    if (t->has_scheme) bt_entity_counts_free(&cnt);
    batcher_free(&b);
    free(idx);
    free(logits);
    free(tok_pred);
    free(word_pred);
    free(win_pred);
    return rc;
}

/* ------------------------------------------------- the task interface */

typedef struct {
    bt_token_task tk;
    bt_dataset train, eval;      /* the generic views: paths, sentence windows, label list, hashes */
    bt_batch *micro;             /* [grad_accum] */
} token_task;

static const char *const token_metrics[] = {"entity_f1", "f1", "accuracy", "loss", NULL};

static int token_check_job(const bt_job *j)
{
    int fmt = j->data.format;
    if (fmt != BT_JOB_FORMAT_AUTO && fmt != BT_JOB_FORMAT_CONLL)
        return bt_job_key_error(j, BT_ECONFIG, "data", "format", "task token_classify reads CoNLL files: "
                                                                "set format = conll (or auto with a .conll file)");
    if (j->data.eval_split > 0)
        return bt_job_key_error(j, BT_ECONFIG, "data", "eval_split", "is not supported for task = token_classify: "
                                                                    "give [data] eval a CoNLL file");
    return check_keys(j);
}

static int token_load(bt_task_state *t, const bt_task_env *env)
{
    token_task *T = bt_xcalloc(1, sizeof *T);
    t->impl = T;
    /* read-only: no cache at all (words tokenize quickly) */
    char *cache_dir = env->read_only ? NULL : bt_path_join(env->out_dir, "cache");
    int rc = bt_task_token_load(&T->tk, env, cache_dir, &T->train, &T->eval);
    free(cache_dir);
    if (rc) return rc;
    t->n_train = T->train.n;
    t->n_eval = T->tk.has_eval ? T->eval.n : 0;
    memcpy(t->train_sha256, T->train.sha256, 32);
    if (T->tk.has_eval) memcpy(t->eval_sha256, T->eval.sha256, 32);
    t->labels = T->train.labels;
    t->n_labels = T->train.n_labels;
    t->label_kind = "class";
    t->keep_labels = 1;
    t->num_labels = T->tk.num_labels;
    t->eval_name = t->job->data.eval;
    t->unit = T->tk.train.n_split_sents ? "sentence windows" : "sentences";
    t->eval_unit = T->tk.eval.n_split_sents ? "sentence windows" : "sentences";
    rc = bt_task_config_labels(env->mcfg, t->labels, t->n_labels, t->num_labels, 0);
    if (rc) return rc;
    bt_model_config_set_problem_type(env->mcfg, BT_PROBLEM_NONE); /* one softmax per token */
    char arch[64]; /* the family's class (RobertaForTokenClassification, ...) */
    bt_model_config_set_architecture(env->mcfg, bt_model_type_arch(env->mcfg->model_type, "TokenClassification",
                                                                   arch, sizeof arch));
    bt_model_config_set_inference(env->mcfg, (int)t->job->data.max_seq_len, T->tk.overlap);
    t->model.task = BT_TASK_TOKEN_CLS;
    t->model.num_labels = t->num_labels;
    t->model.problem = BT_LOSS_SINGLE;
    bt_task_set_metric(t, T->tk.metric); /* f1 (entities), accuracy (words) or loss */
    return BT_OK;
}

/* The sentences' aligned rows, fixed at set-up. */
static int token_step(bt_task_state *t, bt_trainer *tr, const bt_task_step_args *a, bt_step_info *info)
{
    token_task *T = t->impl;
    bt_token_task *tk = &T->tk;
    if (!T->micro) { /* [train] batch_size and grad_accum are final now (micro_batch = auto sets them) */
        tk->n_micro = (int)t->job->train.grad_accum;
        tk->micro = bt_xcalloc((size_t)tk->n_micro, sizeof *tk->micro);
        for (int k = 0; k < tk->n_micro; k++) batcher_init(&tk->micro[k], a->batch_size);
        T->micro = bt_xcalloc((size_t)tk->n_micro, sizeof *T->micro);
    }
    for (int k = 0; k < a->n_micro; k++)
        make_batch(&tk->micro[k], &tk->train, a->idx + (size_t)k * (size_t)a->batch_size, a->n[k], &T->micro[k]);
    return bt_train_step(tr, T->micro, a->n_micro, info);
}

/* Loss per labelled token, entity P/R/F1 (seqeval default), word accuracy. */
static int token_eval(bt_task_state *t, const bt_task_eval_args *a, bt_task_eval *r)
{
    token_task *T = t->impl;
    void *extra = NULL;
    int rc = bt_task_token_evaluate(&T->tk, a, &r->loss, r->v, &r->n, &extra);
    r->extra = extra;
    return rc;
}

static void token_free(bt_task_state *t)
{
    token_task *T = t->impl;
    if (!T) return;
    bt_task_token_free(&T->tk);
    bt_data_free(&T->train);
    bt_data_free(&T->eval);
    free(T->micro);
    free(T);
}

const bt_task_ops bt_task_token_classify = {
    .name = "token_classify", .metrics = token_metrics, .check_job = token_check_job, .load = token_load,
    .step = token_step, .evaluate = token_eval, .free = token_free,
    .head = "ForTokenClassification", .predict = bt_task_token_predict_request,
};
