/* runner/task_token_predict.c — `baton predict` with a token-classification
 * model (task = token_classify): words in, one tag per word out (see
 * task_token.h for the formats).
 *
 * Owns: reading the input (a CoNLL file or one sentence per line) into
 * sentences; tokenizing each word on its own (as training did); cutting long
 * sentences into windows of whole words (bt_conll_windows) and aligning them
 * (bt_conll_align); the forward passes, `batch` rows at a time; each word's
 * logits from the window that owns it; writing the output (stdout, or a file
 * published atomically).
 * Must not: train or read job files: everything comes from the model
 * directory and the arguments.
 */
#include "runner/task_token.h"
#include "runner/selftest.h"
#include "runner/watchdog.h"

#include "engine/conll.h"
#include "engine/model_config.h"
#include "kernels/backend.h"
#include "util/err.h"
#include "util/file.h"
#include "util/log.h"
#include "util/mem.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INPUT_MAX_BYTES ((size_t)4 << 30)

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
        int rc = bt_read_file(input, INPUT_MAX_BYTES, text, len);
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
                if (x) fprintf(pw->out, "\t%.9g", x[k]);
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

/* A prediction run: the model, the sentences, the output, and the buffers
 * of one group of `batch` sentences. */
typedef struct {
    const bt_token_predict_args *a;
    int max_len, overlap, C;
    bt_tokenizer *tok;
    bt_special_ids sp;
    bt_model_config mc;
    bt_backend *be;
    bt_bert *m;
    char *text;
    sentence *sents;
    size_t n_sents;
    bt_publish pub;              /* a->output: published at the end */
    pwriter pw;
    bt_encoding enc;
    /* per group: words (ntok, woff: sub-token counts and offsets into flat;
     * ntok_off: each sentence's first word), windows (win, row_word0: the
     * row's first word in the group), rows (ids, lens, row_pos: first logits
     * row; sent_row: each sentence's first row) */
    int32_t *flat, *ntok, *ids, *labels_scratch;
    size_t *woff, *ntok_off, *row_word0, *sent_row, *row_pos;
    bt_conll_window *win;
    int *lens;
    const int32_t **idp;
    float *logits;
    const float **word_logits;
    size_t ntok_cap, flat_cap, row_cap, nrows;
    size_t n_split, n_long;      /* sentences cut into windows; words longer than a window */
} tagger;

/* The tokenizer, config.json and the token classifier on the device. */
static int open_model(tagger *g)
{
    const bt_token_predict_args *a = g->a;
    int rc = bt_tokenizer_load(a->dir, &g->tok);
    if (rc) return rc;
    g->sp = bt_tokenizer_special_ids(g->tok);
    char *cp = bt_path_join(a->dir, "config.json");
    rc = bt_model_config_load(cp, &g->mc);
    free(cp);
    if (rc) return rc;
    /* cuda: the CUDA backend, or the BATON_FAKE_GPU stand-in as `baton run` (runner/selftest.h) */
    g->be = !strcmp(a->device, "cuda") ? bt_selftest_gpu_backend(0) : bt_backend_cpu_create(a->threads);
    if (!g->be) return bt_fail_context(BT_ECONFIG, "predict --device %s", a->device);
    bt_bert_opts o = {.task = BT_TASK_TOKEN_CLS, .max_batch = a->batch, .max_seq = g->max_len, .training = 0};
    if ((rc = bt_bert_create(g->be, a->dir, &o, &g->m))) return rc;
    if (bt_bert_heads_initialised(g->m))
        bt_warn("%s has no trained token classifier (%d head tensors freshly initialised): the predictions are not "
                "meaningful; point predict at a fine-tuned model, an archive or a job",
                a->src, bt_bert_heads_initialised(g->m));
    g->C = bt_bert_logits_cols(g->m);
    if (g->mc.num_labels != g->C)
        return bt_fail(BT_EDATA, "%s: config.json names %d labels but the token classifier has %d outputs", a->src,
                       g->mc.num_labels, g->C);
    return BT_OK;
}

/* The writer: the format, the labels, "O" for words without pieces, the output. */
static int open_output(tagger *g)
{
    const bt_token_predict_args *a = g->a;
    g->pw = (pwriter){.fmt = !strcmp(a->format, "jsonl") ? 1 : !strcmp(a->format, "logits") ? 2 : 0,
                      .labels = g->mc.labels, .C = g->C, .fill = 0, .out = stdout};
    for (int k = 0; k < g->C; k++)
        if (!strcmp(g->mc.labels[k], "O")) {
            g->pw.fill = k;
            break;
        }
    if (!a->output) return BT_OK;
    int rc = bt_publish_begin(&g->pub, a->output);
    if (!rc) g->pw.out = g->pub.f;
    return rc;
}

/* Buffers for nw words and at most nw + nb rows (one window per word, one for
 * an empty sentence). */
static void reserve(tagger *g, size_t nw, int nb)
{
    if (nw + 1 > g->ntok_cap) {
        g->ntok_cap = nw + 1;
        g->ntok = bt_xrealloc(g->ntok, g->ntok_cap * sizeof *g->ntok);
        g->woff = bt_xrealloc(g->woff, (g->ntok_cap + 1) * sizeof *g->woff);
        g->word_logits = bt_xrealloc(g->word_logits, g->ntok_cap * sizeof *g->word_logits);
    }
    if (nw + (size_t)nb > g->row_cap) {
        size_t cap = g->row_cap = nw + (size_t)nb, L = (size_t)g->max_len;
        g->win = bt_xrealloc(g->win, cap * sizeof *g->win);
        g->row_word0 = bt_xrealloc(g->row_word0, cap * sizeof *g->row_word0);
        g->row_pos = bt_xrealloc(g->row_pos, (cap + 1) * sizeof *g->row_pos);
        g->lens = bt_xrealloc(g->lens, cap * sizeof *g->lens);
        g->idp = bt_xrealloc(g->idp, cap * sizeof *g->idp);
        g->ids = bt_xrealloc(g->ids, cap * L * sizeof *g->ids);
        g->logits = bt_xrealloc(g->logits, cap * L * (size_t)g->C * sizeof *g->logits);
    }
}

/* Sentence i of the group: each word's pieces into flat, its windows. */
static int encode_sentence(tagger *g, const sentence *s, int i, size_t *used)
{
    for (int w = 0; w < s->n; w++) {
        int rc = bt_encode_word(g->tok, s->w[w], &g->enc);
        if (rc) return bt_fail_context(rc, "%s:%ld", g->a->input, g->a->conll ? s->line + w : s->line);
        size_t k = g->enc.len >= 2 ? g->enc.len - 2 : 0;
        if (*used + k > g->flat_cap)
            g->flat = bt_xrealloc(g->flat, (g->flat_cap = (*used + k) * 2 + 64) * sizeof *g->flat);
        if (k) memcpy(g->flat + *used, g->enc.input_ids + 1, k * sizeof *g->flat);
        *used += k;
        size_t gw = g->ntok_off[i] + (size_t)w;
        g->ntok[gw] = (int32_t)k;
        g->woff[gw + 1] = *used;
    }
    g->ntok_off[i + 1] = g->ntok_off[i] + (size_t)s->n;
    g->sent_row[i] = g->nrows;
    int k = bt_conll_windows(g->ntok + g->ntok_off[i], s->n, g->max_len, g->overlap, g->win + g->nrows);
    g->n_split += k > 1;
    for (int r = 0; r < k; r++)
        g->row_word0[g->nrows + (size_t)r] = g->ntok_off[i] + (size_t)g->win[g->nrows + (size_t)r].begin;
    g->nrows += (size_t)k;
    return BT_OK;
}

/* Every window of the group as a model row [CLS] pieces [SEP]. */
static int align_rows(tagger *g)
{
    g->row_pos[0] = 0;
    for (size_t r = 0; r < g->nrows; r++) {
        int32_t *row = g->ids + r * (size_t)g->max_len;
        int nw = g->win[r].end - g->win[r].begin, kept = 0;
        size_t gw = g->row_word0[r];
        int rc = bt_conll_align(g->flat + g->woff[gw], g->ntok + gw, NULL, nw, g->max_len, g->sp.cls, g->sp.sep, row,
                                g->labels_scratch, &g->lens[r], &kept);
        if (rc) return rc;
        if (nw == 1 && g->ntok[gw] > g->max_len - 2) g->n_long++;
        g->idp[r] = row;
        g->row_pos[r + 1] = g->row_pos[r] + (size_t)g->lens[r];
    }
    return BT_OK;
}

/* Sentence i's words: the logits of each at its first piece in the window
 * that owns it (NULL: a word without pieces). */
static void word_logits(tagger *g, int i)
{
    size_t C = (size_t)g->C;
    for (size_t r = g->sent_row[i]; r < g->sent_row[i + 1]; r++) {
        const float *lg = g->logits + g->row_pos[r] * C;
        int pos = 1; /* after [CLS] */
        for (int w = g->win[r].begin; w < g->win[r].end; w++) {
            size_t gw = g->ntok_off[i] + (size_t)w;
            if (w >= g->win[r].own_begin && w < g->win[r].own_end)
                g->word_logits[gw] = g->ntok[gw] > 0 ? lg + (size_t)pos * C : NULL;
            pos += g->ntok[gw];
        }
    }
}

/* Sentences [start, start + nb): encode, align, forward `batch` rows at a
 * time, write. */
static int tag_group(tagger *g, size_t start, int nb)
{
    size_t nw_all = 0, used = 0;
    for (int i = 0; i < nb; i++) nw_all += (size_t)g->sents[start + (size_t)i].n;
    reserve(g, nw_all, nb);
    g->ntok_off[0] = 0;
    g->woff[0] = 0;
    g->nrows = 0;
    int rc = BT_OK;
    for (int i = 0; i < nb && !rc; i++) rc = encode_sentence(g, &g->sents[start + (size_t)i], i, &used);
    g->sent_row[nb] = g->nrows;
    if (!rc) rc = align_rows(g);
    for (size_t r = 0; r < g->nrows && !rc; r += (size_t)g->a->batch) {
        int nr = (int)(g->nrows - r < (size_t)g->a->batch ? g->nrows - r : (size_t)g->a->batch);
        bt_batch b = {.n = nr, .ids = g->idp + r, .len = g->lens + r};
        rc = bt_bert_eval(g->m, &b, NULL, g->logits + g->row_pos[r] * (size_t)g->C);
    }
    for (int i = 0; i < nb && !rc; i++) {
        word_logits(g, i);
        write_sentence(&g->pw, &g->sents[start + (size_t)i], g->word_logits + g->ntok_off[i]);
    }
    return rc;
}

/* A stop request (SIGTERM, ...) ends predict between groups. */
static int stopped(const tagger *g, size_t done)
{
    bt_stop_reason why = bt_signal_pending();
    if (why == BT_STOP_NONE) return BT_OK;
    return bt_fail(BT_ETEMPFAIL, "predict interrupted by %s after %zu of %zu sentences: %s; run it again",
                   bt_stop_reason_name(why), done, g->n_sents,
                   g->a->output ? "nothing was written to the output (its .partial is removed)"
                                : "the tags of those sentences were written to stdout, the rest were not");
}

/* Every sentence, `batch` at a time; then what was cut, and the output published. */
static int tag_all(tagger *g)
{
    size_t len;
    int rc = read_input(g->a->input, &g->text, &len);
    if (rc) return rc;
    split_input(g->text, len, g->a->conll, &g->sents, &g->n_sents);
    int batch = g->a->batch;
    g->labels_scratch = bt_xmalloc((size_t)g->max_len * sizeof *g->labels_scratch);
    g->sent_row = bt_xcalloc((size_t)batch + 1, sizeof *g->sent_row);
    g->ntok_off = bt_xcalloc((size_t)batch + 1, sizeof *g->ntok_off);
    for (size_t start = 0; start < g->n_sents && !rc; start += (size_t)batch) {
        rc = stopped(g, start);
        if (!rc) rc = tag_group(g, start, (int)(g->n_sents - start < (size_t)batch ? g->n_sents - start : (size_t)batch));
    }
    if (!rc && g->n_split)
        bt_info("%zu sentences longer than %d sub-tokens were cut into windows overlapping by %d", g->n_split,
                g->max_len, g->overlap);
    if (!rc && g->n_long)
        bt_warn("%zu words are longer than %d sub-tokens on their own: tagged from their first %d pieces", g->n_long,
                g->max_len, g->max_len - 2);
    if (!rc && !g->a->output && (fflush(stdout) || ferror(stdout)))
        rc = bt_fail(BT_EIO, "cannot write the predictions to stdout");
    return rc;
}

static void tagger_free(tagger *g)
{
    for (size_t i = 0; i < g->n_sents; i++) free(g->sents[i].w);
    free(g->sents);
    free(g->text);
    free(g->flat); free(g->ntok); free(g->ids); free(g->labels_scratch);
    free(g->woff); free(g->ntok_off); free(g->row_word0); free(g->sent_row); free(g->row_pos);
    free(g->win); free(g->lens); free(g->idp); free(g->logits); free(g->word_logits);
    bt_encoding_free(&g->enc);
    bt_bert_free(g->m);
    if (g->be) g->be->destroy(g->be);
    bt_tokenizer_free(g->tok);
    bt_model_config_free(&g->mc);
}

int bt_task_token_predict(const bt_token_predict_args *a)
{
    tagger g;
    memset(&g, 0, sizeof g);
    g.a = a;
    bt_encoding_init(&g.enc);
    g.max_len = a->max_len < 3 ? 3 : a->max_len;
    g.overlap = a->overlap < 0 || a->overlap >= g.max_len - 2 ? (g.max_len - 2) / 4 : a->overlap;
    int rc = open_model(&g); /* first: a model the engine cannot build is refused as such (78) */
    if (!rc && a->table)
        rc = bt_fail(BT_EUSAGE, "%s: a token-classification model (task = token_classify) tags sentences: give one "
                                "sentence per line (.txt) or a CoNLL file, not a %s table", a->input, a->table);
    if (!rc) rc = open_output(&g);
    int opened = !rc && a->output;
    if (!rc) rc = tag_all(&g);
    if (opened) {
        int prc = bt_publish_end(&g.pub, rc == BT_OK);
        if (!rc && (rc = prc) == BT_OK) fprintf(stderr, "wrote the tags of %zu sentences to %s\n", g.n_sents, a->output);
    }
    tagger_free(&g);
    return rc;
}

int bt_task_token_predict_request(const bt_predict_request *r)
{
    if (r->stride >= r->max_len - 2)
        return bt_fail(BT_EUSAGE, "--stride %d: a window of a long sentence holds %d sub-tokens with --max-length "
                                  "%d and must repeat fewer; give a smaller --stride or a larger --max-length",
                       r->stride, r->max_len - 2, r->max_len);
    int overlap = r->stride >= 0 ? r->stride : r->trained_stride < r->max_len - 2 ? r->trained_stride : -1;
    bt_token_predict_args ta = {
        .dir = r->dir, .src = r->src, .input = r->input, .conll = r->in_fmt == BT_DATA_CONLL, .output = r->output,
        .format = r->fmt == BT_PREDICT_JSONL ? "jsonl" : r->fmt == BT_PREDICT_LOGITS ? "logits" : "tsv",
        .batch = r->batch, .max_len = r->max_len, .overlap = overlap, .threads = r->threads, .device = r->device,
        .table = r->in_fmt != BT_DATA_TEXT && r->in_fmt != BT_DATA_CONLL ? bt_data_format_name(r->in_fmt) : NULL,
    };
    return bt_task_token_predict(&ta);
}
