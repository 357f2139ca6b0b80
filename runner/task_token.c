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

/* "job.ini:12: [data] key: why" (BT_ECONFIG) */
static int key_fail(const bt_job *j, const char *sec, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int key_fail(const bt_job *j, const char *sec, const char *name, const char *fmt, ...)
{
    char why[1024], where[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    bt_job_where(j, bt_job_key_index(sec, name), where, sizeof where);
    return bt_fail(BT_ECONFIG, "%s: [%s] %s: %s", where, sec, name, why);
}

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
            return key_fail(job, "data", "label_column",
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
        return key_fail(job, "data", "text_column", "'%s': in a CoNLL file the word is column 0; remove the key", tc);
    if (job->data.text_pair_column && job->data.text_pair_column[0])
        return key_fail(job, "data", "text_pair_column", "task = token_classify reads one sentence per example; remove it");
    if (job->model.problem_type == BT_JOB_PROBLEM_MULTI || job->model.problem_type == BT_JOB_PROBLEM_REGRESSION)
        return key_fail(job, "model", "problem_type", "task = token_classify has one tag per word (a softmax over the "
                                                     "labels); use auto or single_label_classification");
    if (job->data.skip_malformed)
        return key_fail(job, "data", "skip_malformed", "CoNLL files are read whole: a malformed line is always an "
                                                       "error (file:line); fix the line and set it to false");
    int m = job->train.metric;
    if (m != BT_JOB_METRIC_AUTO && m != BT_JOB_METRIC_ENTITY_F1 && m != BT_JOB_METRIC_F1 &&
        m != BT_JOB_METRIC_ACCURACY && m != BT_JOB_METRIC_LOSS)
        return key_fail(job, "train", "metric", "task token_classify supports entity_f1 (= f1, entity level), accuracy "
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
    snprintf(settings, sizeof settings, "task=token_classify;rows=words;lower=%d;accents=%d;cjk=%d;words=%zu",
             tc->lowercase, tc->strip_accents, tc->chinese_chars, s->n_words);
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
            rc = bt_encode(tok, word, strlen(word), NULL, &enc);
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

/* Reads path into s: parse, limit, tokenize, cut into windows, align. */
static int token_set_load(bt_token_set *s, const char *path, const bt_conll_options *o, int64_t limit,
                          const bt_tokenizer *tok, int max_seq, int overlap, const char *cache_dir,
                          const char *vocab_text, const char *which)
{
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
    rc = tokenize_words(s, tok, cache_dir, vocab_text, which, &t);
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

int bt_task_token_load(bt_token_task *t, const bt_job *job, const bt_tokenizer *tok, const char *cache_dir,
                       const char *vocab_text, bt_dataset *train_view, bt_dataset *eval_view)
{
    memset(t, 0, sizeof *t);
    memset(train_view, 0, sizeof *train_view);
    memset(eval_view, 0, sizeof *eval_view);
    int rc = check_keys(job);
    bt_conll_options o;
    if (!rc) rc = conll_options(job, &o);
    if (rc) return rc;
    t->max_seq = (int)job->data.max_seq_len;
    /* the overlap of the windows of a long sentence: [data] stride when the job
     * sets it, else the default capped at half a window */
    int stride_key = bt_job_key_index("data", "stride");
    t->overlap = (int)job->data.stride;
    if (job->origin[stride_key].file) {
        if (t->overlap >= t->max_seq - 2)
            return key_fail(job, "data", "stride", "%d: the overlap of the windows of a long sentence must be "
                                                   "below max_seq_len - 2 = %d sub-tokens",
                            t->overlap, t->max_seq - 2);
    } else if (t->overlap > (t->max_seq - 2) / 2) {
        t->overlap = (t->max_seq - 2) / 2;
    }
    rc = token_set_load(&t->train, job->data.train, &o, job->data.limit_train, tok, t->max_seq, t->overlap,
                        cache_dir, vocab_text, "train");
    if (rc) return rc;
    bt_conll *tc = &t->train.conll;
    if (tc->n_sents == 0)
        return bt_fail(BT_EDATA, "%s: no training sentences; check [data] train", job->data.train);
    t->num_labels = tc->n_labels;
    if (job->model.num_labels > 0 && job->model.num_labels != tc->n_labels)
        return key_fail(job, "model", "num_labels", "%lld, but the label list has %d tags (%s ... ); for "
                                                    "token_classify they must agree: remove num_labels, or list every "
                                                    "tag in [data] labels",
                        (long long)job->model.num_labels, tc->n_labels, tc->labels[0]);
    if (job->data.eval && job->data.eval[0]) {
        bt_conll_options eo = o;
        eo.labels = (const char *const *)tc->labels; /* the training list: an unknown tag is an error at its line */
        eo.n_labels = tc->n_labels;
        rc = token_set_load(&t->eval, job->data.eval, &eo, job->data.limit_eval, tok, t->max_seq, t->overlap,
                            cache_dir, vocab_text, "eval");
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
        return key_fail(job, "train", "metric", "%s needs entity tags (O, B-TYPE, I-TYPE, ...) but %s has others "
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
    int bs = (int)job->train.batch_size;
    t->n_micro = (int)job->train.grad_accum;
    t->micro = bt_xcalloc((size_t)t->n_micro, sizeof *t->micro);
    for (int k = 0; k < t->n_micro; k++) batcher_init(&t->micro[k], bs);
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

void bt_task_token_batch(bt_token_task *t, int k, const uint32_t *idx, int n, bt_batch *out)
{
    make_batch(&t->micro[k], &t->train, idx, n, out);
}

int bt_task_token_evaluate(bt_token_task *t, bt_bert *m, int batch_size, int (*heartbeat)(void *), void *hb_ctx,
                           double *loss, bt_metric_value *v, int *n, void **extra)
{
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
        if (rc == BT_OK && heartbeat && heartbeat(hb_ctx)) rc = BT_ETEMPFAIL;
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

/* ------------------------------------------------------------------ predict */

typedef struct {
    char **w;   /* words (pointers into the input text) */
    int n;
    long line;  /* input line of the first word (or of the sentence) */
} sentence;

/* Splits the input into sentences in place. */
static void split_input(char *text, size_t len, int conll, sentence **out, size_t *n_out)
{
    size_t cap = 64, n = 0, wcap = 0;
    sentence *s = bt_xmalloc(cap * sizeof *s);
    char *p = text, *end = text + len;
    long line = 0;
    int open = 0; /* conll: a sentence is being filled */
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        char *next = nl ? nl + 1 : end;
        line++;
        if (le > p && le[-1] == '\r') le--;
        *le = '\0';
        if (conll) {
            char *q = p;
            while (*q == ' ' || *q == '\t') q++;
            if (!*q || !strncmp(q, "-DOCSTART-", 10)) {
                open = 0;
                p = next;
                continue;
            }
            /* the word: up to the first TAB when there is one, else the first whitespace field */
            char *word = strchr(p, '\t') ? p : q;
            char *e = word;
            if (strchr(p, '\t')) e = strchr(p, '\t');
            else
                while (*e && *e != ' ') e++;
            *e = '\0';
            if (!open) {
                if (n == cap) s = bt_xrealloc(s, (cap *= 2) * sizeof *s);
                s[n++] = (sentence){NULL, 0, line};
                wcap = 0;
                open = 1;
            }
            sentence *cur = &s[n - 1];
            if (cur->n == (int)wcap) cur->w = bt_xrealloc(cur->w, (wcap = wcap ? wcap * 2 : 16) * sizeof *cur->w);
            cur->w[cur->n++] = word;
        } else {
            if (n == cap) s = bt_xrealloc(s, (cap *= 2) * sizeof *s);
            sentence *cur = &s[n++];
            *cur = (sentence){NULL, 0, line};
            size_t wc = 0;
            for (char *q = p;;) {
                while (*q == ' ' || *q == '\t') q++;
                if (!*q) break;
                char *w = q;
                while (*q && *q != ' ' && *q != '\t') q++;
                if (*q) *q++ = '\0';
                if (cur->n == (int)wc) cur->w = bt_xrealloc(cur->w, (wc = wc ? wc * 2 : 16) * sizeof *cur->w);
                cur->w[cur->n++] = w;
            }
        }
        p = next;
    }
    *out = s;
    *n_out = n;
}

/* Reads a whole file, or stdin for "-". */
static int read_input(const char *input, char **text, size_t *len)
{
    if (strcmp(input, "-")) {
        int rc = bt_read_file(input, CONLL_MAX_BYTES, text, len);
        if (rc == BT_ENOINPUT) return bt_fail(BT_ENOINPUT, "%s: cannot open the input file", input);
        return rc;
    }
    size_t cap = 65536, n = 0;
    char *b = bt_xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) b = bt_xrealloc(b, cap *= 2);
        size_t r = fread(b + n, 1, cap - n - 1, stdin);
        n += r;
        if (r == 0) break;
    }
    if (ferror(stdin)) {
        free(b);
        return bt_fail(BT_EIO, "stdin: read error");
    }
    b[n] = '\0';
    *text = b;
    *len = n;
    return BT_OK;
}

typedef struct {
    int fmt; /* 0 tsv, 1 jsonl, 2 logits */
    char **labels;
    int C;
    int32_t fill;
    FILE *out;
} pwriter;

/* Output of one sentence: its words and, for each, the logits [C] at its
 * first sub-token in the window that owns it (NULL: a word without pieces). */
static void write_sentence(const pwriter *pw, const sentence *s, const float *const *word_logits)
{
    int C = pw->C;
    json_t *words = pw->fmt == 1 ? json_array() : NULL, *tags = words ? json_array() : NULL,
           *probs = words ? json_array() : NULL;
    for (int w = 0; w < s->n; w++) {
        const float *x = word_logits[w];
        if (pw->fmt == 2) {
            fputs(s->w[w], pw->out);
            for (int k = 0; k < C; k++) {
                if (x) fprintf(pw->out, "\t%.7g", x[k]);
                else fputs("\tnan", pw->out);
            }
            fputc('\n', pw->out);
            continue;
        }
        int best = x ? bt_argmax(x, C) : pw->fill;
        double p = NAN;
        if (x) {
            double mx = x[best], z = 0;
            for (int k = 0; k < C; k++) z += exp((double)x[k] - mx);
            p = 1.0 / z;
        }
        if (words) {
            json_array_append_new(words, json_string(s->w[w]));
            json_array_append_new(tags, json_string(pw->labels[best]));
            json_array_append_new(probs, isfinite(p) ? json_real(p) : json_null());
        } else {
            fprintf(pw->out, "%s\t%s\n", s->w[w], pw->labels[best]);
        }
    }
    if (words) {
        json_t *o = json_pack("{s:o, s:o, s:o}", "words", words, "tags", tags, "probs", probs);
        char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(7));
        fprintf(pw->out, "%s\n", line ? line : "{}");
        free(line);
        json_decref(o);
    } else {
        fputc('\n', pw->out);
    }
}

int bt_task_token_predict(const char *dir, const char *src, const char *input, int conll, const char *output,
                          const char *format, int batch, int max_len, int overlap, int threads, const char *device)
{
    bt_tokenizer *tok = NULL;
    bt_model_config mc;
    memset(&mc, 0, sizeof mc);
    bt_backend *be = NULL;
    bt_bert *m = NULL;
    char *text = NULL, *out_tmp = NULL;
    sentence *sents = NULL;
    size_t n_sents = 0;
    FILE *out = NULL;
    bt_encoding enc;
    bt_encoding_init(&enc);
    int32_t *flat = NULL, *ntok = NULL, *ids = NULL;
    size_t *woff = NULL, *row_word0 = NULL, *sent_row = NULL;
    float *logits = NULL;
    int *lens = NULL;
    size_t *row_pos = NULL;
    const int32_t **idp = NULL;
    const float **word_logits = NULL;
    bt_conll_window *win = NULL;
    int32_t *labels_scratch = NULL;
    int rc = bt_tokenizer_load(dir, &tok);
    if (rc) goto out;
    char *cp = bt_path_join(dir, "config.json");
    rc = bt_model_config_load(cp, &mc);
    free(cp);
    if (rc) goto out;
    if (max_len < 3) max_len = 3;
    if (overlap < 0 || overlap >= max_len - 2) overlap = (max_len - 2) / 4;
    be = !strcmp(device, "cuda") ? bt_backend_cuda_create(0) : bt_backend_cpu_create(threads);
    if (!be) {
        rc = bt_fail_context(BT_ECONFIG, "predict --device %s", device);
        goto out;
    }
    bt_bert_opts o = {.task = BT_TASK_TOKEN_CLS, .max_batch = batch, .max_seq = max_len, .training = 0, .seed = 0};
    if ((rc = bt_bert_create(be, dir, &o, &m))) goto out;
    if (bt_bert_heads_initialised(m))
        bt_warn("%s has no trained token classifier (%d head tensors freshly initialised): the predictions are not "
                "meaningful; point predict at a fine-tuned model, an archive or a job",
                src, bt_bert_heads_initialised(m));
    int C = bt_bert_logits_cols(m);
    if (mc.num_labels != C) {
        rc = bt_fail(BT_EDATA, "%s: config.json names %d labels but the token classifier has %d outputs", src,
                     mc.num_labels, C);
        goto out;
    }
    pwriter pw = {.fmt = !strcmp(format, "jsonl") ? 1 : !strcmp(format, "logits") ? 2 : 0, .labels = mc.labels, .C = C};
    pw.fill = 0;
    for (int k = 0; k < C; k++)
        if (!strcmp(mc.labels[k], "O")) {
            pw.fill = k;
            break;
        }
    size_t len;
    if ((rc = read_input(input, &text, &len))) goto out;
    split_input(text, len, conll, &sents, &n_sents);
    if (output) {
        out_tmp = bt_xasprintf("%s.partial", output);
        out = fopen(out_tmp, "wb");
        if (!out) {
            rc = bt_fail(BT_EIO, "%s: cannot create the output file: %s", out_tmp, strerror(errno));
            goto out;
        }
    } else {
        out = stdout;
    }
    pw.out = out;
    labels_scratch = bt_xmalloc((size_t)max_len * sizeof *labels_scratch);
    sent_row = bt_xcalloc((size_t)batch + 1, sizeof *sent_row);
    /* per group of `batch` sentences: words (ntok, woff: sub-token counts and
     * offsets into flat), windows (win, row_word0: the row's first word in the
     * group), rows (ids, lens, row_pos: first logits row) */
    size_t ntok_cap = 0, flat_cap = 0, row_cap = 0;
    size_t *ntok_off = bt_xcalloc((size_t)batch + 1, sizeof *ntok_off);
    bt_special_ids sp = bt_tokenizer_special_ids(tok);
    size_t n_split = 0, n_long = 0;
    for (size_t start = 0; start < n_sents && !rc; start += (size_t)batch) {
        bt_stop_reason why = bt_signal_pending(); /* a stop request: within one batch */
        if (why != BT_STOP_NONE) {
            rc = bt_fail(BT_ETEMPFAIL, "predict interrupted by %s after %zu of %zu sentences: %s; run it again",
                         bt_stop_reason_name(why), start, n_sents,
                         output ? "nothing was written to the output (its .partial is removed)"
                                : "the tags of those sentences were written to stdout, the rest were not");
            break;
        }
        int nb = (int)(n_sents - start < (size_t)batch ? n_sents - start : (size_t)batch);
        size_t nw_all = 0;
        for (int i = 0; i < nb; i++) nw_all += (size_t)sents[start + (size_t)i].n;
        if (nw_all + 1 > ntok_cap) {
            ntok_cap = nw_all + 1;
            ntok = bt_xrealloc(ntok, ntok_cap * sizeof *ntok);
            woff = bt_xrealloc(woff, (ntok_cap + 1) * sizeof *woff);
            word_logits = bt_xrealloc(word_logits, ntok_cap * sizeof *word_logits);
        }
        /* rows: at most one window per word, one for an empty sentence */
        if (nw_all + (size_t)nb > row_cap) {
            row_cap = nw_all + (size_t)nb;
            win = bt_xrealloc(win, row_cap * sizeof *win);
            row_word0 = bt_xrealloc(row_word0, row_cap * sizeof *row_word0);
            row_pos = bt_xrealloc(row_pos, (row_cap + 1) * sizeof *row_pos);
            lens = bt_xrealloc(lens, row_cap * sizeof *lens);
            idp = bt_xrealloc(idp, row_cap * sizeof *idp);
            ids = bt_xrealloc(ids, row_cap * (size_t)max_len * sizeof *ids);
            logits = bt_xrealloc(logits, row_cap * (size_t)max_len * (size_t)C * sizeof *logits);
        }
        ntok_off[0] = 0;
        woff[0] = 0;
        size_t used = 0, nrows = 0;
        for (int i = 0; i < nb && !rc; i++) {
            const sentence *s = &sents[start + (size_t)i];
            for (int w = 0; w < s->n; w++) {
                rc = bt_encode(tok, s->w[w], strlen(s->w[w]), NULL, &enc);
                if (rc) {
                    bt_fail_context(rc, "%s:%ld", input, conll ? s->line + w : s->line);
                    break;
                }
                size_t k = enc.len >= 2 ? enc.len - 2 : 0;
                if (used + k > flat_cap) flat = bt_xrealloc(flat, (flat_cap = (used + k) * 2 + 64) * sizeof *flat);
                if (k) memcpy(flat + used, enc.input_ids + 1, k * sizeof *flat);
                used += k;
                size_t gw = ntok_off[i] + (size_t)w;
                ntok[gw] = (int32_t)k;
                woff[gw + 1] = used;
            }
            if (rc) break;
            ntok_off[i + 1] = ntok_off[i] + (size_t)s->n;
            sent_row[i] = nrows;
            int k = bt_conll_windows(ntok + ntok_off[i], s->n, max_len, overlap, win + nrows);
            n_split += k > 1;
            for (int r = 0; r < k; r++) row_word0[nrows + (size_t)r] = ntok_off[i] + (size_t)win[nrows + (size_t)r].begin;
            nrows += (size_t)k;
        }
        if (rc) break;
        sent_row[nb] = nrows;
        row_pos[0] = 0;
        for (size_t r = 0; r < nrows && !rc; r++) {
            int32_t *row = ids + r * (size_t)max_len;
            int nw = win[r].end - win[r].begin, kept = 0;
            size_t gw = row_word0[r];
            rc = bt_conll_align(flat + woff[gw], ntok + gw, NULL, nw, max_len, sp.cls, sp.sep, row, labels_scratch,
                                &lens[r], &kept);
            if (!rc && nw == 1 && ntok[gw] > max_len - 2) n_long++;
            idp[r] = row;
            row_pos[r + 1] = row_pos[r] + (size_t)lens[r];
        }
        /* the model sees at most `batch` rows at a time */
        for (size_t r = 0; r < nrows && !rc; r += (size_t)batch) {
            int nr = (int)(nrows - r < (size_t)batch ? nrows - r : (size_t)batch);
            bt_batch b = {.n = nr, .ids = idp + r, .len = lens + r};
            rc = bt_bert_eval(m, &b, NULL, logits + row_pos[r] * (size_t)C);
        }
        for (int i = 0; i < nb && !rc; i++) {
            for (size_t r = sent_row[i]; r < sent_row[i + 1]; r++) {
                const float *lg = logits + row_pos[r] * (size_t)C;
                int pos = 1; /* after [CLS] */
                for (int w = win[r].begin; w < win[r].end; w++) {
                    size_t gw = ntok_off[i] + (size_t)w;
                    if (w >= win[r].own_begin && w < win[r].own_end)
                        word_logits[gw] = ntok[gw] > 0 ? lg + (size_t)pos * (size_t)C : NULL;
                    pos += ntok[gw];
                }
            }
            write_sentence(&pw, &sents[start + (size_t)i], word_logits + ntok_off[i]);
        }
    }
    free(ntok_off);
    if (!rc && n_split)
        bt_info("%zu sentences longer than %d sub-tokens were cut into windows overlapping by %d", n_split, max_len,
                overlap);
    if (!rc && n_long)
        bt_warn("%zu words are longer than %d sub-tokens on their own: tagged from their first %d pieces", n_long,
                max_len, max_len - 2);
    if (!rc && (fflush(out) || ferror(out)))
        rc = bt_fail(BT_EIO, "cannot write the predictions to %s", output ? out_tmp : "stdout");
    if (!rc && output) {
        if (fsync(fileno(out)) != 0 || fclose(out) != 0) rc = bt_fail(BT_EIO, "%s: %s", out_tmp, strerror(errno));
        out = NULL;
        if (!rc && rename(out_tmp, output) != 0)
            rc = bt_fail(BT_EIO, "cannot rename %s to %s: %s", out_tmp, output, strerror(errno));
        if (!rc) fprintf(stderr, "wrote the tags of %zu sentences to %s\n", n_sents, output);
    }
out:
    if (out && out != stdout) fclose(out);
    if (rc && out_tmp) unlink(out_tmp);
    free(out_tmp);
    for (size_t i = 0; i < n_sents; i++) free(sents[i].w);
    free(sents);
    free(text);
    free(flat);
    free(ntok);
    free(woff);
    free(word_logits);
    free(win);
    free(row_word0);
    free(row_pos);
    free(sent_row);
    free(labels_scratch);
    free(ids);
    free(logits);
    free(lens);
    free(idp);
    bt_encoding_free(&enc);
    bt_bert_free(m);
    if (be) be->destroy(be);
    bt_tokenizer_free(tok);
    bt_model_config_free(&mc);
    return rc;
}
