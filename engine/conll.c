/* engine/conll.c — CoNLL reader, label list, sub-token alignment (see conll.h).
 *
 * Owns: the file format rules and their error messages.
 * Must not: tokenize or score.
 */
#include "engine/conll.h"
#include "engine/data.h"
#include "util/err.h"
#include "util/file.h"
#include "util/mem.h"

#include <stdlib.h>
#include <string.h>

#define CONLL_MAX_BYTES ((size_t)4 << 30)
#define MAX_COLS 64

static int cmp_str(const void *x, const void *y) { return strcmp(*(char *const *)x, *(char *const *)y); }

void bt_conll_free(bt_conll *c)
{
    free(c->text);
    free(c->word);
    free(c->tag);
    free(c->sent);
    free(c->sent_line);
    if (c->labels)
        for (int i = 0; i < c->n_labels; i++) free(c->labels[i]);
    free(c->labels);
    free(c->path);
    memset(c, 0, sizeof *c);
}

int bt_conll_label_id(const bt_conll *c, const char *name)
{
    for (int i = 0; i < c->n_labels; i++)
        if (!strcmp(c->labels[i], name)) return i;
    return -1;
}

/* label string -> id through a sorted index */
typedef struct {
    const char *name;
    int id;
} label_ix;

static int cmp_ix(const void *x, const void *y) { return strcmp(((const label_ix *)x)->name, ((const label_ix *)y)->name); }

/* Parses c->text (owned, NUL-terminated, len bytes) into c. */
static int parse(bt_conll *c, size_t len, const bt_conll_options *o)
{
    const char *name = c->path;
    size_t cap = 1024, scap = 128;
    c->word = bt_xmalloc(cap * sizeof *c->word);
    size_t *tag_off = bt_xmalloc(cap * sizeof *tag_off);
    uint32_t *tok_line = bt_xmalloc(cap * sizeof *tok_line);
    c->sent = bt_xmalloc((scap + 1) * sizeof *c->sent);
    c->sent_line = bt_xmalloc(scap * sizeof *c->sent_line);
    c->sent[0] = 0;
    int ncols_first = 0;
    size_t line_first = 0, line = 0;
    int in_sent = 0, rc = 0;
    char *text = c->text, *end = text + len;
    for (char *p = text; p < end && !rc;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        char *next = nl ? nl + 1 : end;
        line++;
        if (le > p && le[-1] == '\r') le--;
        *le = '\0';
        /* -DOCSTART- lines are recognised whatever separates their other
         * columns (CoNLL-2003's "-DOCSTART- -X- -X- O" in a tab-separated file) */
        const char *ds = p;
        while (*ds == ' ' || *ds == '\t') ds++;
        int docstart = !strncmp(ds, "-DOCSTART-", 10) && (!ds[10] || ds[10] == ' ' || ds[10] == '\t');
        /* split into columns in place */
        char *col[MAX_COLS];
        int ncol = 0;
        char *q = p;
        if (o->sep == BT_CONLL_SEP_TAB) {
            int blank = 1;
            for (char *r = p; r < le; r++)
                if (*r != ' ' && *r != '\t') blank = 0;
            if (!blank)
                for (;;) {
                    char *t = strchr(q, '\t');
                    if (ncol == MAX_COLS) break;
                    col[ncol++] = q;
                    if (!t) break;
                    *t = '\0';
                    q = t + 1;
                }
        } else {
            for (;;) {
                while (*q == ' ' || *q == '\t') q++;
                if (!*q) break;
                if (ncol == MAX_COLS) {
                    ncol++;
                    break;
                }
                col[ncol++] = q;
                while (*q && *q != ' ' && *q != '\t') q++;
                if (*q) *q++ = '\0';
            }
        }
        p = next;
        if (ncol > MAX_COLS) {
            rc = bt_fail(BT_EDATA, "%s:%zu: more than %d columns: is this a CoNLL file (one token per line)?", name, line,
                         MAX_COLS);
            break;
        }
        if (ncol == 0 || docstart) {
            if (in_sent) {
                if (c->n_sents == scap) {
                    scap *= 2;
                    c->sent = bt_xrealloc(c->sent, (scap + 1) * sizeof *c->sent);
                    c->sent_line = bt_xrealloc(c->sent_line, scap * sizeof *c->sent_line);
                }
                c->sent[++c->n_sents] = c->n_tokens;
                in_sent = 0;
            }
            continue;
        }
        if (ncol < 2) {
            rc = bt_fail(BT_EDATA,
                         "%s:%zu: one column ('%.40s'): expected the word and its tag separated by %s, and a blank line "
                         "between sentences",
                         name, line, col[0], o->sep == BT_CONLL_SEP_TAB ? "a tab" : "whitespace");
            break;
        }
        if (!ncols_first) {
            ncols_first = ncol;
            line_first = line;
            if (o->tag_column >= ncol) {
                rc = bt_fail(BT_EDATA, "%s:%zu: %d columns, but the tag column is %d (0-based): check the job's tag column",
                             name, line, ncol, o->tag_column);
                break;
            }
        } else if (ncol != ncols_first) {
            rc = bt_fail(BT_EDATA,
                         "%s:%zu: %d columns, but line %zu has %d: every token line needs the same columns%s", name,
                         line, ncol, line_first, ncols_first,
                         o->sep == BT_CONLL_SEP_WHITESPACE ? " (words with spaces need tab-separated columns)" : "");
            break;
        }
        int tc = o->tag_column < 0 ? ncol - 1 : o->tag_column;
        if (!*col[0] || !*col[tc]) {
            rc = bt_fail(BT_EDATA, "%s:%zu: empty %s", name, line, !*col[0] ? "word" : "tag");
            break;
        }
        for (int k = 0; k < 2 && !rc; k++) {
            const char *f = col[k ? tc : 0];
            long bad = bt_utf8_invalid_at(f, strlen(f));
            if (bad >= 0)
                rc = bt_fail(BT_EDATA, "%s:%zu: the %s is not valid UTF-8 (byte 0x%02X at offset %ld of it); convert "
                                       "the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)",
                             name, line, k ? "tag" : "word", (unsigned char)f[bad], bad);
        }
        if (rc) break;
        if (c->n_tokens == cap) {
            cap *= 2;
            c->word = bt_xrealloc(c->word, cap * sizeof *c->word);
            tag_off = bt_xrealloc(tag_off, cap * sizeof *tag_off);
            tok_line = bt_xrealloc(tok_line, cap * sizeof *tok_line);
        }
        if (!in_sent) {
            if (c->n_sents == scap) {
                scap *= 2;
                c->sent = bt_xrealloc(c->sent, (scap + 1) * sizeof *c->sent);
                c->sent_line = bt_xrealloc(c->sent_line, scap * sizeof *c->sent_line);
            }
            c->sent_line[c->n_sents] = (uint32_t)line;
            in_sent = 1;
        }
        c->word[c->n_tokens] = (size_t)(col[0] - text);
        tag_off[c->n_tokens] = (size_t)(col[tc] - text);
        tok_line[c->n_tokens] = (uint32_t)line;
        c->n_tokens++;
    }
    if (!rc && in_sent) c->sent[++c->n_sents] = c->n_tokens;
    if (!rc && !c->n_tokens) rc = bt_fail(BT_EDATA, "%s: no tokens: expected CoNLL lines `word ... tag`", name);
    if (rc) goto out;

    /* label list */
    if (o->labels) {
        c->n_labels = o->n_labels;
        c->labels = bt_xmalloc((size_t)o->n_labels * sizeof *c->labels);
        for (int i = 0; i < o->n_labels; i++) c->labels[i] = bt_xstrdup(o->labels[i]);
    } else {
        const char **all = bt_xmalloc(c->n_tokens * sizeof *all);
        for (size_t i = 0; i < c->n_tokens; i++) all[i] = text + tag_off[i];
        qsort(all, c->n_tokens, sizeof *all, cmp_str);
        size_t n = 0;
        for (size_t i = 0; i < c->n_tokens; i++)
            if (!n || strcmp(all[n - 1], all[i])) all[n++] = all[i];
        c->labels = bt_xmalloc(n * sizeof *c->labels);
        int k = 0;
        for (size_t i = 0; i < n; i++)
            if (!strcmp(all[i], "O")) c->labels[k++] = bt_xstrdup("O");
        for (size_t i = 0; i < n; i++)
            if (strcmp(all[i], "O")) c->labels[k++] = bt_xstrdup(all[i]);
        c->n_labels = k;
        free(all);
    }
    label_ix *ix = bt_xmalloc(((size_t)c->n_labels + 1) * sizeof *ix);
    for (int i = 0; i < c->n_labels; i++) {
        ix[i].name = c->labels[i];
        ix[i].id = i;
    }
    qsort(ix, (size_t)c->n_labels, sizeof *ix, cmp_ix);
    c->tag = bt_xmalloc(c->n_tokens * sizeof *c->tag);
    for (size_t i = 0; i < c->n_tokens; i++) {
        label_ix key = {text + tag_off[i], 0};
        label_ix *f = bsearch(&key, ix, (size_t)c->n_labels, sizeof *ix, cmp_ix);
        if (!f) {
            rc = bt_fail(BT_EDATA, "%s:%u: tag '%.60s' is not in the job's label list (%d labels, first '%s'): add it or "
                                   "fix the data",
                         name, tok_line[i], key.name, c->n_labels, c->n_labels ? c->labels[0] : "");
            break;
        }
        c->tag[i] = f->id;
    }
    free(ix);
out:
    free(tag_off);
    free(tok_line);
    return rc;
}

static int check_options(const bt_conll_options *o)
{
    if (o->tag_column == 0 || o->tag_column < -1)
        return bt_fail(BT_ECONFIG, "conll: tag column %d: use -1 for the last column or a 0-based column >= 1 (column 0 is the word)",
                       o->tag_column);
    if (o->sep != BT_CONLL_SEP_WHITESPACE && o->sep != BT_CONLL_SEP_TAB)
        return bt_fail(BT_ECONFIG, "conll: unknown column separator %d", (int)o->sep);
    if (o->labels) {
        if (o->n_labels < 1) return bt_fail(BT_ECONFIG, "conll: an empty label list");
        for (int i = 0; i < o->n_labels; i++) {
            if (!o->labels[i] || !*o->labels[i]) return bt_fail(BT_ECONFIG, "conll: label %d is empty", i);
            for (int j = 0; j < i; j++)
                if (!strcmp(o->labels[i], o->labels[j]))
                    return bt_fail(BT_ECONFIG, "conll: label '%s' is listed twice (ids %d and %d)", o->labels[i], j, i);
        }
    }
    return 0;
}

int bt_conll_parse(const char *text, size_t len, const char *name, const bt_conll_options *opts, bt_conll *out)
{
    memset(out, 0, sizeof *out);
    bt_conll_options def = {-1, BT_CONLL_SEP_WHITESPACE, NULL, 0};
    const bt_conll_options *o = opts ? opts : &def;
    int rc = check_options(o);
    if (rc) return rc;
    if (memchr(text, '\0', len)) return bt_fail(BT_EDATA, "%s: contains a NUL byte: expected a text file", name);
    out->path = bt_xstrdup(name);
    out->text = bt_xmalloc(len + 1);
    memcpy(out->text, text, len);
    out->text[len] = '\0';
    rc = parse(out, len, o);
    if (rc) bt_conll_free(out);
    return rc;
}

int bt_conll_read(const char *path, const bt_conll_options *opts, bt_conll *out)
{
    memset(out, 0, sizeof *out);
    char *text;
    size_t len;
    int rc = bt_read_file(path, CONLL_MAX_BYTES, &text, &len);
    if (rc) return rc;
    rc = bt_conll_parse(text, len, path, opts, out);
    free(text);
    return rc;
}

int bt_conll_align(const int32_t *tok_ids, const int32_t *word_ntok, const int32_t *word_tags, int n_words,
                   int max_seq_len, int32_t cls_id, int32_t sep_id, int32_t *ids_out, int32_t *labels_out,
                   int *n_out, int *words_kept)
{
    *n_out = 0;
    *words_kept = 0;
    if (max_seq_len < 3)
        return bt_fail(BT_ECONFIG, "token classification: max_seq_len %d is too small (need >= 3)", max_seq_len);
    for (int w = 0; w < n_words; w++)
        if (word_ntok[w] < 0) return bt_fail(BT_EDATA, "token classification: word %d has %d sub-tokens", w, word_ntok[w]);
    int budget = max_seq_len - 2, n = 1, kept = 0;
    size_t src = 0;
    ids_out[0] = cls_id;
    labels_out[0] = BT_CONLL_IGNORE;
    for (int w = 0; w < n_words; w++) {
        int k = word_ntok[w];
        if (k > budget - (n - 1)) {
            if (w == 0) { /* the first word alone is too long: keep what fits */
                k = budget;
            } else {
                break;
            }
        }
        for (int t = 0; t < k; t++) {
            ids_out[n] = tok_ids[src + (size_t)t];
            labels_out[n] = (t == 0 && word_tags) ? word_tags[w] : BT_CONLL_IGNORE;
            n++;
        }
        src += (size_t)word_ntok[w];
        kept++;
    }
    ids_out[n] = sep_id;
    labels_out[n] = BT_CONLL_IGNORE;
    *n_out = n + 1;
    *words_kept = kept;
    return 0;
}

int bt_conll_windows(const int32_t *word_ntok, int n_words, int max_seq_len, int overlap, bt_conll_window *out)
{
    int room = max_seq_len - 2 > 1 ? max_seq_len - 2 : 1;
    if (overlap < 0) overlap = 0;
    if (n_words <= 0) {
        out[0] = (bt_conll_window){0, 0, 0, 0};
        return 1;
    }
    int n = 0, start = 0, own_begin = 0;
    for (;;) {
        /* the window: whole words from start while they fit (the first always) */
        int end = start;
        long used = 0;
        while (end < n_words && (end == start || used + word_ntok[end] <= room)) used += word_ntok[end++];
        out[n] = (bt_conll_window){start, end, own_begin, end};
        if (end >= n_words) return n + 1;
        /* the next start: repeat the last words (at most overlap sub-tokens,
         * at least one word of progress), then drop repeated words from the
         * front until word `end` fits after them */
        int next = end;
        long rep = 0;
        while (next - 1 > start && rep + word_ntok[next - 1] <= overlap) rep += word_ntok[--next];
        while (next < end && rep + word_ntok[end] > room) rep -= word_ntok[next++];
        /* the repeated words [next, end): the first half stays with this window */
        own_begin = next + (end - next + 1) / 2;
        out[n].own_end = own_begin;
        start = next;
        n++;
    }
}

void bt_conll_word_preds(const int32_t *token_pred, const int32_t *word_ntok, int n_words, int words_kept,
                         int32_t fill, int32_t *word_pred)
{
    int pos = 1;
    for (int w = 0; w < n_words; w++) {
        if (w < words_kept && word_ntok[w] > 0) {
            word_pred[w] = token_pred[pos];
            pos += word_ntok[w];
        } else {
            word_pred[w] = fill;
        }
    }
}
