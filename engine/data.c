/* engine/data.c — TSV/CSV/JSONL/TEXT readers, label maps, epoch order (see data.h).
 * The token cache file lives in engine/data_cache.c. */
#include "engine/data.h"
#include "kernels/philox.h"
#include "util/err.h"
#include "util/file.h"
#include "util/mem.h"
#include "util/sha256.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ utilities */

long bt_utf8_invalid_at(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        unsigned cp, min;
        if (c >= 0xC2 && c <= 0xDF) { need = 1; cp = c & 0x1F; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { need = 2; cp = c & 0x0F; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { need = 3; cp = c & 0x07; min = 0x10000; }
        else return (long)i;
        for (size_t k = 1; k <= need; k++) {
            if (i + k >= n || (s[i + k] & 0xC0) != 0x80) return (long)i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return (long)i;
        i += need + 1;
    }
    return -1;
}

bt_data_format bt_data_format_from_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    if (!dot) return BT_DATA_AUTO;
    static const struct { const char *ext; bt_data_format f; } map[] = {
        {".tsv", BT_DATA_TSV}, {".tab", BT_DATA_TSV}, {".csv", BT_DATA_CSV}, {".jsonl", BT_DATA_JSONL},
        {".json", BT_DATA_JSONL}, {".ndjson", BT_DATA_JSONL}, {".txt", BT_DATA_TEXT}, {".text", BT_DATA_TEXT},
        {".conll", BT_DATA_CONLL}, {".bio", BT_DATA_CONLL}, {".iob", BT_DATA_CONLL},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcasecmp(dot, map[i].ext)) return map[i].f;
    return BT_DATA_AUTO;
}

const char *bt_data_format_name(bt_data_format f)
{
    static const char *const n[] = {"auto", "tsv", "csv", "jsonl", "text", "conll"};
    return (unsigned)f < 6 ? n[f] : "?";
}

/* --------------------------------------------------------- parse context */

typedef struct {
    const bt_data_options *o;
    const char *name;
    bt_dataset *ds;
    size_t text_cap, ex_cap;
    /* label strings while parsing: offsets into ds->text; per example in
     * ex.labels_off/n_labels (indices into lab) */
    size_t *lab;
    size_t n_lab, lab_cap;
    int fatal;              /* set on a non-skippable error */
    int rc;
    int label_col, text_col, pair_col, id_col; /* TSV/CSV indices (-1 none) */
    const char *sep;
    /* JSONL keys */
    char *text_key, *pair_key, *label_key;
    int ncols;              /* expected columns (TSV/CSV) */
} pctx;

/* A bad row: fails (BT_EDATA) or, with skip_malformed, counts and returns 0. */
static int row_error(pctx *c, uint32_t line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int row_error(pctx *c, uint32_t line, const char *fmt, ...)
{
    char why[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (c->o->skip_malformed) {
        c->ds->n_skipped++;
        if (!c->ds->first_skip) c->ds->first_skip = bt_xasprintf("%s:%u: %s", c->name, line, why);
        return 0;
    }
    return bt_fail(BT_EDATA, "%s:%u: %s; %s", c->name, line, why,
                   c->o->row_hint ? c->o->row_hint : "fix the row or set [data] skip_malformed = true");
}

static size_t add_text(pctx *c, const char *s, size_t n)
{
    bt_dataset *ds = c->ds;
    while (ds->text_len + n + 1 > c->text_cap) {
        c->text_cap = c->text_cap ? c->text_cap * 2 : 65536;
        ds->text = bt_xrealloc(ds->text, c->text_cap);
    }
    size_t off = ds->text_len;
    memcpy(ds->text + off, s, n);
    ds->text[off + n] = '\0';
    ds->text_len += n + 1;
    return off;
}

static int blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isspace((unsigned char)s[i])) return 0;
    return 1;
}

/* Validates and stores a text field; returns the offset or SIZE_MAX after a row error. */
static int check_text(pctx *c, uint32_t line, const char *what, const char *s, size_t n)
{
    if (n == 0 || blank(s, n)) return row_error(c, line, "empty %s", what) ? -1 : 1;
    long bad = bt_utf8_invalid_at(s, n);
    if (bad >= 0)
        return row_error(c, line, "%s is not valid UTF-8 (byte 0x%02X at offset %ld of the field); "
                                  "convert the file to UTF-8", what, (unsigned char)s[bad], bad) ? -1 : 1;
    if (memchr(s, '\0', n)) return row_error(c, line, "%s contains a NUL byte", what) ? -1 : 1;
    return 0;
}

static void push_label(pctx *c, const char *s, size_t n)
{
    if (c->n_lab == c->lab_cap) {
        c->lab_cap = c->lab_cap ? c->lab_cap * 2 : 1024;
        c->lab = bt_xrealloc(c->lab, c->lab_cap * sizeof *c->lab);
    }
    c->lab[c->n_lab++] = add_text(c, s, n);
}

static size_t trimmed(const char **s, size_t n)
{
    while (n && isspace((unsigned char)**s)) { (*s)++; n--; }
    while (n && isspace((unsigned char)(*s)[n - 1])) n--;
    return n;
}

/* Parses a label field from text (TSV/CSV, or a JSON string) into e.
 * Returns 0 ok, 1 skipped row, or an error code. */
static int label_from_text(pctx *c, uint32_t line, const char *s, size_t n, bt_example *e)
{
    switch (c->o->label_kind) {
    case BT_LABELS_NONE: return 0;
    case BT_LABELS_REGRESSION: {
        n = trimmed(&s, n);
        char buf[64];
        if (n == 0 || n >= sizeof buf)
            return row_error(c, line, n ? "label '%.*s' is not a number" : "empty label%.*s", (int)(n > 40 ? 40 : n), s) ? -1 : 1;
        memcpy(buf, s, n);
        buf[n] = '\0';
        char *end;
        errno = 0;
        double v = strtod(buf, &end);
        if (*end || errno || !isfinite(v) || fabs(v) > 3.4e38)
            return row_error(c, line, "label '%s' is not a finite number (regression)", buf) ? -1 : 1;
        e->target = (float)v;
        return 0;
    }
    case BT_LABELS_CLASS: {
        n = trimmed(&s, n);
        if (n == 0) return row_error(c, line, "empty label") ? -1 : 1;
        long bad = bt_utf8_invalid_at(s, n);
        if (bad >= 0) return row_error(c, line, "label is not valid UTF-8") ? -1 : 1;
        e->labels_off = (uint32_t)c->n_lab;
        e->n_labels = 1;
        push_label(c, s, n);
        return 0;
    }
    case BT_LABELS_MULTI: {
        const char *sep = c->sep;
        size_t sl = strlen(sep);
        e->labels_off = (uint32_t)c->n_lab;
        e->n_labels = 0;
        n = trimmed(&s, n);
        if (n == 0) return 0; /* no labels: all negative */
        if (bt_utf8_invalid_at(s, n) >= 0) return row_error(c, line, "label is not valid UTF-8") ? -1 : 1;
        const char *p = s, *end = s + n;
        while (p <= end) {
            const char *q = p;
            while (q < end && !(q + sl <= end && !memcmp(q, sep, sl))) q++;
            const char *t = p;
            size_t tl = trimmed(&t, (size_t)(q - p));
            if (tl == 0) {
                c->n_lab = e->labels_off;
                return row_error(c, line, "empty label between separators '%s' in '%.*s'", sep, (int)(n > 60 ? 60 : n), s) ? -1 : 1;
            }
            push_label(c, t, tl);
            e->n_labels++;
            if (q >= end) break;
            p = q + sl;
        }
        return 0;
    }
    }
    return 0;
}

static void push_example(pctx *c, const bt_example *e)
{
    bt_dataset *ds = c->ds;
    if (ds->n == c->ex_cap) {
        c->ex_cap = c->ex_cap ? c->ex_cap * 2 : 1024;
        ds->ex = bt_xrealloc(ds->ex, c->ex_cap * sizeof *ds->ex);
    }
    ds->ex[ds->n++] = *e;
}

static int at_limit(const pctx *c) { return c->o->limit > 0 && (int64_t)c->ds->n >= c->o->limit; }

/* ----------------------------------------------------- delimited (TSV/CSV) */

typedef struct {
    const char *p, *end;
    uint32_t line;      /* line of *p */
    int csv;
    char delim;
    char *buf;          /* unquoted field bytes, NUL after each */
    size_t blen, bcap;
    size_t *fo, *fl;    /* field offsets / lengths into buf */
    int nf, fcap;
    uint32_t row_line;
    char err[256];      /* malformed-row reason (row still consumed) */
} rowrd;

static void rb_putc(rowrd *r, char ch)
{
    if (r->blen + 2 > r->bcap) {
        r->bcap = r->bcap ? r->bcap * 2 : 4096;
        r->buf = bt_xrealloc(r->buf, r->bcap);
    }
    r->buf[r->blen++] = ch;
}

static void rb_field_start(rowrd *r)
{
    if (r->nf == r->fcap) {
        r->fcap = r->fcap ? r->fcap * 2 : 16;
        r->fo = bt_xrealloc(r->fo, (size_t)r->fcap * sizeof *r->fo);
        r->fl = bt_xrealloc(r->fl, (size_t)r->fcap * sizeof *r->fl);
    }
    r->fo[r->nf] = r->blen;
    r->fl[r->nf] = 0;
    r->nf++;
}

static void rb_field_end(rowrd *r)
{
    r->fl[r->nf - 1] = r->blen - r->fo[r->nf - 1];
    rb_putc(r, '\0');
}

/* Skips to after the end of the current physical line. */
static void skip_line(rowrd *r)
{
    while (r->p < r->end && *r->p != '\n') r->p++;
    if (r->p < r->end) {
        r->p++;
        r->line++;
    }
}

/* Reads one row. Returns 1 (row; r->err[0] set if malformed), 0 at EOF, or
 * BT_EDATA for an unterminated quote (fatal: it swallowed the rest of the file). */
static int read_row(rowrd *r, const char *name)
{
    for (;;) {
        if (r->p >= r->end) return 0;
        r->nf = 0;
        r->blen = 0;
        r->err[0] = '\0';
        r->row_line = r->line;
        /* blank line (only CR/whitespace-free): skip */
        if (*r->p == '\n' || (*r->p == '\r' && (r->p + 1 == r->end || r->p[1] == '\n'))) {
            skip_line(r);
            continue;
        }
        for (;;) { /* fields */
            rb_field_start(r);
            if (r->csv && r->p < r->end && *r->p == '"') {
                uint32_t qline = r->line;
                r->p++;
                for (;;) {
                    if (r->p >= r->end)
                        return bt_fail(BT_EDATA, "%s:%u: quoted field opened here is never closed (a \" is "
                                                 "missing); double a quote inside a field (\"\")", name, qline);
                    char ch = *r->p;
                    if (ch == '"') {
                        if (r->p + 1 < r->end && r->p[1] == '"') {
                            rb_putc(r, '"');
                            r->p += 2;
                            continue;
                        }
                        r->p++;
                        break;
                    }
                    if (ch == '\n') r->line++;
                    rb_putc(r, ch);
                    r->p++;
                }
                rb_field_end(r);
                if (r->p < r->end && *r->p == r->delim) {
                    r->p++;
                    continue;
                }
                if (r->p < r->end && *r->p == '\r' && (r->p + 1 == r->end || r->p[1] == '\n')) r->p++;
                if (r->p >= r->end) return 1;
                if (*r->p == '\n') {
                    r->p++;
                    r->line++;
                    return 1;
                }
                snprintf(r->err, sizeof r->err, "unexpected '%c' after the closing quote of field %d "
                         "(only ',' or the end of the line may follow; write \"\" for a quote inside)",
                         *r->p, r->nf);
                skip_line(r);
                return 1;
            }
            /* unquoted */
            while (r->p < r->end && *r->p != r->delim && *r->p != '\n') {
                rb_putc(r, *r->p);
                r->p++;
            }
            if (r->p < r->end && *r->p == r->delim) {
                rb_field_end(r);
                r->p++;
                continue;
            }
            /* end of line: drop a CR before LF */
            if (r->blen > r->fo[r->nf - 1] && r->buf[r->blen - 1] == '\r') r->blen--;
            rb_field_end(r);
            if (r->p < r->end) {
                r->p++;
                r->line++;
            }
            return 1;
        }
    }
}

static const char *const known_text[] = {"text", "sentence", "sentence1", "document", "content", "review", NULL};
static const char *const known_label[] = {"label", "labels", "target", "score", NULL};

static int is_auto(const char *s) { return !s || !strcmp(s, "auto"); }
static int is_none(const char *s) { return !s || !*s; }
static int is_index(const char *s)
{
    if (!*s) return 0;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p)) return 0;
    return 1;
}

static int find_col(const rowrd *r, const char *nm)
{
    for (int i = 0; i < r->nf; i++)
        if (!strcmp(r->buf + r->fo[i], nm)) return i;
    for (int i = 0; i < r->nf; i++)
        if (!strcasecmp(r->buf + r->fo[i], nm)) return i;
    return -1;
}

static char *header_list(const rowrd *r)
{
    size_t len = 1;
    for (int i = 0; i < r->nf; i++) len += r->fl[i] + 2;
    char *s = bt_xmalloc(len);
    s[0] = '\0';
    for (int i = 0; i < r->nf; i++) {
        if (i) strcat(s, ", ");
        strcat(s, r->buf + r->fo[i]);
    }
    return s;
}

/* Resolves one column spec against the first row; -1 with *rc set on error. */
static int resolve_col(pctx *c, const rowrd *r, int header, const char *spec, const char *key,
                       const char *const *known, int fallback, int *rc)
{
    if (is_auto(spec)) {
        if (header)
            for (int k = 0; known[k]; k++) {
                int i = find_col(r, known[k]);
                if (i >= 0) return i;
            }
        return fallback;
    }
    if (header) {
        int i = find_col(r, spec);
        if (i >= 0) return i;
    }
    if (is_index(spec)) {
        long i = strtol(spec, NULL, 10);
        if (i >= r->nf) {
            *rc = bt_fail(BT_ECONFIG, "%s:%u: %s = %s, but rows have %d columns (0-based: 0..%d)",
                          c->name, r->row_line, key, spec, r->nf, r->nf - 1);
            return -1;
        }
        return (int)i;
    }
    if (!header) {
        *rc = bt_fail(BT_ECONFIG, "%s:%u: %s = '%s' names a column, but the file has no header row; "
                                  "use a 0-based column index or set header = true",
                      c->name, r->row_line, key, spec);
        return -1;
    }
    char *cols = header_list(r);
    *rc = bt_fail(BT_ECONFIG, "%s:%u: no column '%s' in the header (columns: %s); set %s",
                  c->name, r->row_line, spec, cols, key);
    free(cols);
    return -1;
}

static int header_auto(const rowrd *r, const bt_data_options *o)
{
    const char *specs[4] = {o->text_column, o->pair_column, o->label_column, o->id_column};
    if (is_auto(o->id_column) && o->id_column && find_col(r, "id") >= 0) return 1;
    for (int s = 0; s < 4; s++)
        if (!is_auto(specs[s]) && !is_none(specs[s]) && !is_index(specs[s]) && find_col(r, specs[s]) >= 0)
            return 1;
    for (int k = 0; known_text[k]; k++)
        if (find_col(r, known_text[k]) >= 0) return 1;
    for (int k = 0; known_label[k]; k++)
        if (find_col(r, known_label[k]) >= 0) return 1;
    return 0;
}

/* The text, pair, label and id columns from the first row (the header, when
 * there is one); their names go to ds->column_names. */
static int resolve_columns(pctx *c, const rowrd *r, int header)
{
    int rc = 0, want_label = c->o->label_kind != BT_LABELS_NONE;
    c->text_col = resolve_col(c, r, header, c->o->text_column, "[data] text_column", known_text, 0, &rc);
    if (rc) return rc;
    c->pair_col = -1;
    if (!is_none(c->o->pair_column)) {
        c->pair_col = resolve_col(c, r, header, c->o->pair_column, "[data] text_pair_column", known_text, 1, &rc);
        if (rc) return rc;
    }
    c->label_col = -1;
    if (want_label) {
        if (r->nf < 2 && is_auto(c->o->label_column))
            return bt_fail(BT_ECONFIG, "%s:%u: the rows have one column, so there is no label column; "
                                       "use a file with text and label columns (or task = mlm)", c->name, r->row_line);
        c->label_col = resolve_col(c, r, header, c->o->label_column, "[data] label_column", known_label, r->nf - 1, &rc);
        if (rc) return rc;
        if (c->label_col == c->text_col)
            return bt_fail(BT_ECONFIG, "%s: text and label are the same column (%d); set [data] text_column and "
                                       "label_column", c->name, c->text_col);
    }
    c->id_col = -1;
    if (!is_none(c->o->id_column)) {
        static const char *const known_id[] = {"id", NULL};
        c->id_col = resolve_col(c, r, header, c->o->id_column, "--id-column", known_id, -1, &rc);
        if (rc) return rc;
        if (c->id_col >= 0 && (c->id_col == c->text_col || c->id_col == c->pair_col))
            return bt_fail(BT_ECONFIG, "%s:%u: the id column '%s' is also the text column; give the id column "
                                       "with --id-column, or the text column with [data] text_column", c->name,
                           r->row_line, header ? r->buf + r->fo[c->id_col] : c->o->id_column);
    }
    c->ds->has_id = c->id_col >= 0;
    int cols[4] = {c->text_col, c->pair_col, c->label_col, c->id_col};
    for (int k = 0; k < 4 && header; k++)
        if (cols[k] >= 0) c->ds->column_names[k] = bt_xstrdup(r->buf + r->fo[cols[k]]);
    return BT_OK;
}

static int parse_delimited(pctx *c, const char *buf, size_t len, int csv)
{
    rowrd r = {.p = buf, .end = buf + len, .line = 1, .csv = csv, .delim = csv ? ',' : '\t'};
    int rc = 0;
    int got = read_row(&r, c->name);
    if (got == 0) goto out; /* empty file: no examples (the caller says so) */
    if (got != 1) { rc = got; goto out; }
    if (r.err[0]) {
        rc = bt_fail(BT_EDATA, "%s:%u: %s", c->name, r.row_line, r.err);
        goto out;
    }
    int header = c->o->header == BT_HEADER_YES ? 1 : c->o->header == BT_HEADER_NO ? 0 : header_auto(&r, c->o);
    c->ncols = r.nf;
    if ((rc = resolve_columns(c, &r, header))) goto out;
    c->ds->has_pair = c->pair_col >= 0;
    int first = !header;
    for (;;) {
        if (at_limit(c)) break;
        if (!first) {
            got = read_row(&r, c->name);
            if (got == 0) break;
            if (got != 1) { rc = got; goto out; }
        }
        first = 0;
        if (r.err[0]) {
            if ((rc = row_error(c, r.row_line, "%s", r.err))) goto out;
            continue;
        }
        if (r.nf != c->ncols) {
            if ((rc = row_error(c, r.row_line, "%d columns, expected %d%s", r.nf, c->ncols,
                                csv ? " (quote fields that contain commas)" : " (a TAB inside a text?)")))
                goto out;
            continue;
        }
        bt_example e = {.pair = BT_DATA_NO_TEXT, .id = BT_DATA_NO_TEXT, .line = r.row_line, .label = -1};
        const char *t = r.buf + r.fo[c->text_col];
        if (c->id_col >= 0 && blank(r.buf + r.fo[c->id_col], r.fl[c->id_col])) {
            if ((rc = row_error(c, r.row_line, "empty id (column %d)", c->id_col + 1))) goto out;
            continue;
        }
        int k = check_text(c, r.row_line, "text", t, r.fl[c->text_col]);
        if (k < 0) { rc = BT_EDATA; goto out; }
        if (k > 0) continue;
        if (c->pair_col >= 0) {
            k = check_text(c, r.row_line, "second text (text_pair_column)", r.buf + r.fo[c->pair_col], r.fl[c->pair_col]);
            if (k < 0) { rc = BT_EDATA; goto out; }
            if (k > 0) continue;
        }
        if (c->label_col >= 0) {
            size_t save = c->n_lab;
            k = label_from_text(c, r.row_line, r.buf + r.fo[c->label_col], r.fl[c->label_col], &e);
            if (k < 0) { rc = BT_EDATA; goto out; }
            if (k > 0) { c->n_lab = save; continue; }
        }
        e.text = add_text(c, t, r.fl[c->text_col]);
        if (c->pair_col >= 0) e.pair = add_text(c, r.buf + r.fo[c->pair_col], r.fl[c->pair_col]);
        if (c->id_col >= 0) e.id = add_text(c, r.buf + r.fo[c->id_col], r.fl[c->id_col]);
        push_example(c, &e);
    }
out:
    free(r.buf);
    free(r.fo);
    free(r.fl);
    return rc;
}

/* ------------------------------------------------------------------ JSONL */

static char *keys_of(json_t *o)
{
    size_t len = 1;
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) { (void)v; len += strlen(k) + 2; }
    char *s = bt_xmalloc(len);
    s[0] = '\0';
    int first = 1;
    json_object_foreach(o, k, v)
    {
        (void)v;
        if (!first) strcat(s, ", ");
        strcat(s, k);
        first = 0;
    }
    return s;
}

static const char *pick_key(json_t *o, const char *spec, const char *const *known)
{
    if (!is_auto(spec)) return spec;
    for (int k = 0; known[k]; k++)
        if (json_object_get(o, known[k])) return known[k];
    return NULL;
}

static int json_label(pctx *c, uint32_t line, json_t *v, bt_example *e)
{
    bt_label_kind kind = c->o->label_kind;
    char buf[64];
    if (kind == BT_LABELS_REGRESSION) {
        if (json_is_number(v)) {
            double x = json_number_value(v);
            if (!isfinite(x) || fabs(x) > 3.4e38) return row_error(c, line, "label is not a finite number") ? -1 : 1;
            e->target = (float)x;
            return 0;
        }
        if (json_is_string(v)) return label_from_text(c, line, json_string_value(v), json_string_length(v), e);
        return row_error(c, line, "label must be a number (regression)") ? -1 : 1;
    }
    if (json_is_string(v)) return label_from_text(c, line, json_string_value(v), json_string_length(v), e);
    if (json_is_integer(v)) {
        int n = snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
        return label_from_text(c, line, buf, (size_t)n, e);
    }
    if (json_is_array(v) && kind == BT_LABELS_MULTI) {
        e->labels_off = (uint32_t)c->n_lab;
        e->n_labels = 0;
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            const char *s;
            size_t n;
            if (json_is_string(x)) {
                s = json_string_value(x);
                n = json_string_length(x);
            } else if (json_is_integer(x)) {
                n = (size_t)snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(x));
                s = buf;
            } else {
                c->n_lab = e->labels_off;
                return row_error(c, line, "label list item %zu is neither a string nor an integer", i) ? -1 : 1;
            }
            const char *t = s;
            size_t tl = trimmed(&t, n);
            if (!tl) {
                c->n_lab = e->labels_off;
                return row_error(c, line, "label list item %zu is empty", i) ? -1 : 1;
            }
            push_label(c, t, tl);
            e->n_labels++;
        }
        return 0;
    }
    if (json_is_array(v))
        return row_error(c, line, "label is a list, but the task is single-label; set [model] problem_type = "
                                  "multi_label_classification") ? -1 : 1;
    return row_error(c, line, "label must be a string or an integer%s",
                     kind == BT_LABELS_MULTI ? " (or a list of them)" : "") ? -1 : 1;
}

static int json_text(pctx *c, uint32_t line, json_t *o, const char *key, const char *what, const char **s, size_t *n)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        char *ks = keys_of(o);
        int rc = row_error(c, line, "no key \"%s\" for the %s (keys: %s)", key, what, ks);
        free(ks);
        return rc ? -1 : 1;
    }
    if (!json_is_string(v)) return row_error(c, line, "\"%s\" (the %s) is not a string", key, what) ? -1 : 1;
    *s = json_string_value(v);
    *n = json_string_length(v);
    int k = check_text(c, line, what, *s, *n);
    return k;
}

/* A row id: a non-empty string or an integer (written into buf[32]). */
static int json_id(pctx *c, uint32_t line, json_t *o, const char *key, char *buf, const char **s, size_t *n)
{
    json_t *v = json_object_get(o, key);
    if (json_is_integer(v)) {
        *n = (size_t)snprintf(buf, 32, "%lld", (long long)json_integer_value(v));
        *s = buf;
        return 0;
    }
    if (json_is_string(v) && !blank(json_string_value(v), json_string_length(v)) &&
        !memchr(json_string_value(v), '\0', json_string_length(v))) {
        *s = json_string_value(v);
        *n = json_string_length(v);
        return 0;
    }
    if (!v) {
        char *ks = keys_of(o);
        int rc = row_error(c, line, "no key \"%s\" for the id (keys: %s)", key, ks);
        free(ks);
        return rc ? -1 : 1;
    }
    return row_error(c, line, "the id \"%s\" is not a non-empty string or an integer", key) ? -1 : 1;
}

static int parse_jsonl(pctx *c, const char *buf, size_t len)
{
    if (!is_none(c->o->text_column) && !is_auto(c->o->text_column) && is_index(c->o->text_column))
        return bt_fail(BT_ECONFIG, "%s: [data] text_column = %s is a column index, but JSONL rows are "
                                   "objects: give the key name", c->name, c->o->text_column);
    const char *p = buf, *end = buf + len;
    uint32_t line = 0;
    int resolved = 0, rc = 0;
    const char *tkey = NULL, *pkey = NULL, *lkey = NULL, *ikey = NULL;
    char **names = c->ds->column_names; /* the resolved keys (freed with the dataset) */
    while (p < end && !at_limit(c)) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        line++;
        const char *l = p;
        p = nl ? nl + 1 : end;
        if (blank(l, n)) continue;
        json_error_t err;
        json_t *o = json_loadb(l, n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
        if (!o) {
            if ((rc = row_error(c, line, "invalid JSON at column %d: %s", err.column, err.text))) break;
            continue;
        }
        if (!json_is_object(o)) {
            json_decref(o);
            if ((rc = row_error(c, line, "expected a JSON object per line, e.g. {\"text\": \"...\", \"label\": 1}")))
                break;
            continue;
        }
        if (!resolved) {
            tkey = pick_key(o, c->o->text_column, known_text);
            lkey = c->o->label_kind != BT_LABELS_NONE ? pick_key(o, c->o->label_column, known_label) : NULL;
            if (!tkey || (c->o->label_kind != BT_LABELS_NONE && !lkey)) {
                char *ks = keys_of(o);
                rc = bt_fail(BT_ECONFIG, "%s:%u: cannot tell which key holds the %s (keys: %s); set [data] %s",
                             c->name, line, tkey ? "label" : "text", ks, tkey ? "label_column" : "text_column");
                free(ks);
                json_decref(o);
                break;
            }
            tkey = names[BT_DATA_COL_TEXT] = bt_xstrdup(tkey);
            lkey = names[BT_DATA_COL_LABEL] = lkey ? bt_xstrdup(lkey) : NULL;
            pkey = names[BT_DATA_COL_PAIR] = is_none(c->o->pair_column) ? NULL : bt_xstrdup(c->o->pair_column);
            ikey = is_none(c->o->id_column) ? NULL : is_auto(c->o->id_column) ? (json_object_get(o, "id") ? "id" : NULL)
                                                                                : c->o->id_column;
            ikey = names[BT_DATA_COL_ID] = ikey ? bt_xstrdup(ikey) : NULL;
            c->ds->has_pair = pkey != NULL;
            c->ds->has_id = ikey != NULL;
            resolved = 1;
        }
        bt_example e = {.pair = BT_DATA_NO_TEXT, .id = BT_DATA_NO_TEXT, .line = line, .label = -1};
        char idbuf[32];
        const char *is = NULL;
        size_t in = 0;
        const char *ts = NULL, *ps = NULL;
        size_t tn = 0, pn = 0;
        size_t save = c->n_lab;
        int k = json_text(c, line, o, tkey, "text", &ts, &tn);
        if (!k && pkey) k = json_text(c, line, o, pkey, "second text (text_pair_column)", &ps, &pn);
        if (!k && ikey) k = json_id(c, line, o, ikey, idbuf, &is, &in);
        if (!k && lkey) {
            json_t *lv = json_object_get(o, lkey);
            if (!lv) {
                char *ks = keys_of(o);
                k = row_error(c, line, "no key \"%s\" for the label (keys: %s)", lkey, ks) ? -1 : 1;
                free(ks);
            } else if (json_is_null(lv)) {
                k = row_error(c, line, "label is null") ? -1 : 1;
            } else {
                k = json_label(c, line, lv, &e);
            }
        }
        if (k == 0) {
            e.text = add_text(c, ts, tn);
            if (ps) e.pair = add_text(c, ps, pn);
            if (is) e.id = add_text(c, is, in);
            push_example(c, &e);
        } else {
            c->n_lab = save;
        }
        json_decref(o);
        if (k < 0) {
            rc = BT_EDATA;
            break;
        }
    }
    return rc;
}

/* ------------------------------------------------------------------- TEXT */

static int parse_textfile(pctx *c, const char *buf, size_t len)
{
    const char *p = buf, *end = buf + len;
    uint32_t line = 0;
    while (p < end && !at_limit(c)) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        line++;
        const char *l = p;
        p = nl ? nl + 1 : end;
        if (n && l[n - 1] == '\r') n--;
        if (blank(l, n)) continue;
        int k = check_text(c, line, "text", l, n);
        if (k < 0) return BT_EDATA;
        if (k > 0) continue;
        bt_example e = {.pair = BT_DATA_NO_TEXT, .id = BT_DATA_NO_TEXT, .line = line, .label = -1};
        e.text = add_text(c, l, n);
        push_example(c, &e);
    }
    return 0;
}

/* ---------------------------------------------------------------- labels */

typedef struct {
    const char *s;
    int32_t id;
} label_ent;

static int cmp_ent(const void *a, const void *b)
{
    return strcmp(((const label_ent *)a)->s, ((const label_ent *)b)->s);
}

static int int_like(const char *s, long long *v)
{
    char *end;
    errno = 0;
    if (!*s || isspace((unsigned char)*s)) return 0;
    *v = strtoll(s, &end, 10);
    return !*end && !errno;
}

static int cmp_label(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    long long u, v;
    if (int_like(x, &u) && int_like(y, &v)) return (u > v) - (u < v);
    return strcmp(x, y);
}

static char *label_list_text(char **labels, int n)
{
    size_t len = 16;
    for (int i = 0; i < n && i < 20; i++) len += strlen(labels[i]) + 2;
    char *s = bt_xmalloc(len);
    s[0] = '\0';
    for (int i = 0; i < n && i < 20; i++) {
        if (i) strcat(s, ", ");
        strcat(s, labels[i]);
    }
    if (n > 20) strcat(s, ", ...");
    return s;
}

static int finish_labels(pctx *c)
{
    bt_dataset *ds = c->ds;
    const bt_data_options *o = c->o;
    if (o->label_kind != BT_LABELS_CLASS && o->label_kind != BT_LABELS_MULTI) return 0;
    /* the label list */
    if (o->labels && o->n_labels > 0) {
        ds->labels = bt_xcalloc((size_t)o->n_labels, sizeof *ds->labels);
        for (int i = 0; i < o->n_labels; i++) {
            for (int k = 0; k < i; k++)
                if (!strcmp(o->labels[k], o->labels[i]))
                    return bt_fail(BT_ECONFIG, "%s: label '%s' appears twice in the label list", c->name, o->labels[i]);
            ds->labels[i] = bt_xstrdup(o->labels[i]);
        }
        ds->n_labels = o->n_labels;
    } else {
        const char **all = bt_xmalloc((c->n_lab ? c->n_lab : 1) * sizeof *all);
        for (size_t i = 0; i < c->n_lab; i++) all[i] = ds->text + c->lab[i];
        qsort(all, c->n_lab, sizeof *all, cmp_label);
        size_t u = 0;
        for (size_t i = 0; i < c->n_lab; i++)
            if (!u || strcmp(all[u - 1], all[i])) all[u++] = all[i];
        if (u > (size_t)INT32_MAX) {
            free(all);
            return bt_fail(BT_EDATA, "%s: %zu distinct labels; is label_column right?", c->name, u);
        }
        ds->labels = bt_xcalloc(u ? u : 1, sizeof *ds->labels);
        for (size_t i = 0; i < u; i++) ds->labels[i] = bt_xstrdup(all[i]);
        ds->n_labels = (int)u;
        free(all);
    }
    label_ent *map = bt_xmalloc((size_t)(ds->n_labels ? ds->n_labels : 1) * sizeof *map);
    for (int i = 0; i < ds->n_labels; i++) map[i] = (label_ent){ds->labels[i], i};
    qsort(map, (size_t)ds->n_labels, sizeof *map, cmp_ent);
    /* map every example; compact away rows with unknown labels when skipping */
    size_t w = 0, nm = 0;
    int32_t *multi = NULL;
    size_t mcap = 0;
    int rc = 0;
    for (size_t i = 0; i < ds->n; i++) {
        bt_example e = ds->ex[i];
        int ok = 1;
        uint32_t moff = (uint32_t)nm;
        for (uint32_t k = 0; k < e.n_labels; k++) {
            label_ent key = {ds->text + c->lab[e.labels_off + k], 0};
            label_ent *hit = bsearch(&key, map, (size_t)ds->n_labels, sizeof *map, cmp_ent);
            if (!hit) {
                char *list = label_list_text(ds->labels, ds->n_labels);
                rc = row_error(c, e.line, "label '%s' is not in the label list (%s); add it to [data] labels "
                                          "(or, for evaluation data, to the training data)", key.s, list);
                free(list);
                ok = 0;
                nm = moff;
                break;
            }
            if (o->label_kind == BT_LABELS_CLASS) {
                e.label = hit->id;
            } else {
                if (nm == mcap) multi = bt_xrealloc(multi, (mcap = mcap ? mcap * 2 : 1024) * sizeof *multi);
                multi[nm++] = hit->id;
            }
        }
        if (rc) break;
        if (!ok) continue;
        if (o->label_kind == BT_LABELS_MULTI) e.labels_off = moff;
        else { e.labels_off = 0; e.n_labels = 0; }
        ds->ex[w++] = e;
    }
    free(map);
    ds->n = w;
    ds->multi = multi;
    ds->n_multi = nm;
    return rc;
}

/* ------------------------------------------------------------------ entry */

int bt_data_parse(const char *buf, size_t len, const char *name, const bt_data_options *opts, bt_dataset *ds)
{
    memset(ds, 0, sizeof *ds);
    bt_data_options o = *opts;
    if (!o.label_separator || !*o.label_separator) o.label_separator = "|";
    ds->path = bt_xstrdup(name);
    bt_sha256(buf, len, ds->sha256);
    bt_data_format f = o.format;
    if (f == BT_DATA_AUTO) {
        f = bt_data_format_from_name(name);
        if (f == BT_DATA_AUTO) {
            bt_data_free(ds);
            return bt_fail(BT_ECONFIG, "%s: cannot tell the format from the file name; set [data] format = "
                                       "tsv, csv, jsonl or text", name);
        }
    }
    if (f == BT_DATA_CONLL) {
        bt_data_free(ds);
        return bt_fail(BT_ECONFIG, "%s: CoNLL files are for task = token_classify (read by engine/conll)", name);
    }
    if (f == BT_DATA_TEXT && o.label_kind != BT_LABELS_NONE) {
        bt_data_free(ds);
        return bt_fail(BT_ECONFIG, "%s: a plain text file has no labels; use tsv/csv/jsonl for classification, "
                                   "or task = mlm", name);
    }
    ds->format = f;
    ds->label_kind = o.label_kind;
    /* UTF-8 byte-order mark */
    if (len >= 3 && (unsigned char)buf[0] == 0xEF && (unsigned char)buf[1] == 0xBB && (unsigned char)buf[2] == 0xBF) {
        buf += 3;
        len -= 3;
    }
    pctx c = {.o = &o, .name = name, .ds = ds, .sep = o.label_separator};
    int rc;
    switch (f) {
    case BT_DATA_TSV: rc = parse_delimited(&c, buf, len, 0); break;
    case BT_DATA_CSV: rc = parse_delimited(&c, buf, len, 1); break;
    case BT_DATA_JSONL: rc = parse_jsonl(&c, buf, len); break;
    default: rc = parse_textfile(&c, buf, len); break;
    }
    if (!rc) rc = finish_labels(&c);
    if (!rc && ds->n == 0)
        rc = bt_fail(BT_EDATA, "%s: no examples%s; check the file and [data] settings", name,
                     ds->n_skipped ? " (every row was malformed and skipped)" : "");
    free(c.lab);
    if (rc) {
        bt_data_free(ds);
        return rc;
    }
    return BT_OK;
}

int bt_data_load(const char *path, const bt_data_options *o, bt_dataset *ds)
{
    memset(ds, 0, sizeof *ds);
    bt_mapping m;
    int rc = bt_map_file(path, &m);
    if (rc) return bt_fail_context(rc, "data file");
    rc = bt_data_parse((const char *)m.data, m.len, path, o, ds);
    bt_unmap_file(&m);
    return rc;
}

void bt_data_free(bt_dataset *ds)
{
    if (!ds) return;
    free(ds->path);
    free(ds->text);
    free(ds->ex);
    for (int i = 0; i < ds->n_labels; i++) free(ds->labels[i]);
    free(ds->labels);
    free(ds->multi);
    free(ds->first_skip);
    for (int k = 0; k < 4; k++) free(ds->column_names[k]);
    bt_id_table_free(&ds->tokens);
    memset(ds, 0, sizeof *ds);
}

/* ------------------------------------------------------------------ order */

void bt_data_permutation(uint64_t seed, uint32_t epoch, size_t n, uint32_t *perm)
{
    for (size_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
    for (size_t i = n; i > 1; i--) {
        size_t k = i - 1;
        bt_u32x4 r = bt_random4(seed, BT_STREAM_DATA_ORDER, epoch, (uint32_t)k, (uint32_t)((uint64_t)k >> 32), 0);
        uint64_t u = ((uint64_t)r.v[1] << 32) | r.v[0];
        size_t j = (size_t)(((unsigned __int128)u * (unsigned __int128)(k + 1)) >> 64);
        uint32_t t = perm[k];
        perm[k] = perm[j];
        perm[j] = t;
    }
}

size_t bt_data_next_batch(const uint32_t *perm, size_t n, bt_data_cursor *cur, size_t batch, uint32_t *out)
{
    if (n == 0 || batch == 0) return 0;
    if (cur->position >= n) { /* a cursor at the very end of an epoch */
        cur->epoch++;
        cur->position = 0;
        return 0;
    }
    size_t take = n - (size_t)cur->position;
    if (take > batch) take = batch;
    memcpy(out, perm + cur->position, take * sizeof *out);
    cur->position += take;
    if (cur->position >= n) {
        cur->epoch++;
        cur->position = 0;
    }
    return take;
}
