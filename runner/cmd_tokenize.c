/* runner/cmd_tokenize.c — `baton tokenize MODEL_DIR`: tokenize stdin lines as
 * Hugging Face's fast tokenizer of that directory does (tokenizer.json, or
 * vocab.txt for BERT; see docs/tokenizer.md).
 *
 * Owns: argument parsing, line reading, and output formatting (ids, --json,
 * --words). Must not: implement any tokenizer rule (engine/tokenizer.c does).
 * Output is buffered and written in large blocks; one output line per item.
 */
#include "engine/model_dir.h"
#include "engine/tokenizer.h"
#include "runner/commands.h"
#include "util/err.h"
#include "util/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const usage_text =
    "usage: baton tokenize MODEL_DIR [--pair] [--max-length N] [--truncation STRATEGY]\n"
    "                      [--pad] [--json] [--replace-invalid] [--words]\n"
    "Reads UTF-8 lines from stdin and prints, per line (per two lines with --pair),\n"
    "the input ids separated by spaces, exactly as the Hugging Face fast tokenizer\n"
    "of MODEL_DIR would (its tokenizer.json; else vocab.txt, BERT WordPiece).\n"
    "  --pair              consecutive lines form a (first, second) pair\n"
    "  --max-length N      truncate to N tokens including the special tokens (default: none)\n"
    "  --truncation S      longest_first (default), only_first or only_second\n"
    "  --pad               pad with the pad token to --max-length\n"
    "  --json              {\"input_ids\":[..],\"token_type_ids\":[..],\"attention_mask\":[..]}\n"
    "  --replace-invalid   treat invalid UTF-8 as U+FFFD (dropped) instead of failing\n"
    "  --words             print the normalized, pre-tokenized words (hex UTF-8; special\n"
    "                      and added tokens prefixed with '!') instead of ids: for debugging\n";

struct out {
    char *buf;
    size_t len, cap;
    int failed;
};

static void out_flush(struct out *o)
{
    if (o->len && fwrite(o->buf, 1, o->len, stdout) != o->len) o->failed = 1;
    o->len = 0;
}

static inline void out_reserve(struct out *o, size_t n)
{
    if (o->len + n > o->cap) {
        out_flush(o);
        if (n > o->cap) {
            o->cap = n * 2;
            o->buf = bt_xrealloc(o->buf, o->cap);
        }
    }
}

static inline void out_str(struct out *o, const char *s, size_t n)
{
    out_reserve(o, n);
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static inline void out_int(struct out *o, int32_t v)
{
    char tmp[12];
    int n = 0;
    uint32_t u = v < 0 ? (uint32_t)0 - (uint32_t)v : (uint32_t)v;
    do { tmp[n++] = (char)('0' + u % 10); u /= 10; } while (u);
    if (v < 0) tmp[n++] = '-';
    out_reserve(o, (size_t)n);
    while (n) o->buf[o->len++] = tmp[--n];
}

static void out_ints(struct out *o, const int32_t *v, size_t n, char sep)
{
    for (size_t i = 0; i < n; i++) {
        if (i) out_str(o, &sep, 1);
        out_int(o, v[i]);
    }
}

struct words_ctx {
    struct out *o;
    int first;
};

static void on_word(const char *w, size_t n, int is_special, void *vctx)
{
    struct words_ctx *c = vctx;
    static const char hex[] = "0123456789abcdef";
    if (!c->first) out_str(c->o, " ", 1);
    c->first = 0;
    if (is_special) out_str(c->o, "!", 1);
    out_reserve(c->o, 2 * n);
    for (size_t i = 0; i < n; i++) {
        c->o->buf[c->o->len++] = hex[(uint8_t)w[i] >> 4];
        c->o->buf[c->o->len++] = hex[(uint8_t)w[i] & 15];
    }
}

/* Only this command has --replace-invalid (a job's data must be UTF-8): an
 * invalid-UTF-8 error says so here. */
static void hint_replace_invalid(void)
{
    if (!strstr(bt_errmsg(), "invalid UTF-8")) return;
    bt_err_saved m;
    bt_err_save(&m);
    bt_fail(BT_EDATA, "%s, or pass --replace-invalid to drop the invalid bytes", m.msg);
}

struct tok_args {
    const char *model_dir;
    int pair, json, words;
    bt_encode_opts opts;
};

/* Parses argv into a. Returns 0 to go on, -1 after printing --help, or a
 * BT_E* code (bt_fail set). */
static int parse_args(int argc, char **argv, struct tok_args *a)
{
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) { fputs(usage_text, stdout); return -1; }
        else if (!strcmp(s, "--pair")) a->pair = 1;
        else if (!strcmp(s, "--json")) a->json = 1;
        else if (!strcmp(s, "--words")) a->words = 1;
        else if (!strcmp(s, "--pad")) a->opts.pad_to_max_length = 1;
        else if (!strcmp(s, "--replace-invalid")) a->opts.replace_invalid = 1;
        else if (!strcmp(s, "--max-length") || !strcmp(s, "--truncation")) {
            if (i + 1 >= argc) return bt_fail(BT_EUSAGE, "tokenize: %s needs a value; see `baton tokenize --help`", s);
            const char *v = argv[++i];
            if (s[2] == 'm') {
                char *end;
                long n = strtol(v, &end, 10);
                if (*v == '\0' || *end || n < 1 || n > 1000000)
                    return bt_fail(BT_EUSAGE, "tokenize: --max-length '%s': expected an integer from 1 to 1000000", v);
                a->opts.max_length = (int)n;
            } else if (!strcmp(v, "longest_first")) a->opts.truncation = BT_TRUNC_LONGEST_FIRST;
            else if (!strcmp(v, "only_first")) a->opts.truncation = BT_TRUNC_ONLY_FIRST;
            else if (!strcmp(v, "only_second")) a->opts.truncation = BT_TRUNC_ONLY_SECOND;
            else
                return bt_fail(BT_EUSAGE, "tokenize: --truncation '%s': expected longest_first, "
                                          "only_first or only_second", v);
        } else if (s[0] == '-' && s[1]) {
            return bt_fail(BT_EUSAGE, "tokenize: unknown option '%s'; see `baton tokenize --help`", s);
        } else if (!a->model_dir) a->model_dir = s;
        else
            return bt_fail(BT_EUSAGE, "tokenize: unexpected argument '%s' (MODEL_DIR is '%s')", s, a->model_dir);
    }
    if (!a->model_dir) return bt_fail(BT_EUSAGE, "tokenize: MODEL_DIR missing; see `baton tokenize --help`");
    if (a->opts.pad_to_max_length && !a->opts.max_length)
        return bt_fail(BT_EUSAGE, "tokenize: --pad needs --max-length N");
    if (a->opts.truncation == BT_TRUNC_ONLY_SECOND && !a->pair && a->opts.max_length)
        return bt_fail(BT_EUSAGE, "tokenize: --truncation only_second needs --pair");
    return 0;
}

/* One encoding as an output line: ids, or the --json object. */
static void out_encoding(struct out *o, const bt_encoding *enc, int json)
{
    if (json) {
        out_str(o, "{\"input_ids\":[", 14);
        out_ints(o, enc->input_ids, enc->len, ',');
        out_str(o, "],\"token_type_ids\":[", 20);
        out_ints(o, enc->token_type_ids, enc->len, ',');
        out_str(o, "],\"attention_mask\":[", 20);
        out_ints(o, enc->attention_mask, enc->len, ',');
        out_str(o, "]}\n", 3);
    } else {
        out_ints(o, enc->input_ids, enc->len, ' ');
        out_str(o, "\n", 1);
    }
}

/* Reads stdin to its end (or the first error), one output line per line
 * (per two lines with --pair). Returns 0 or a BT_E* code (bt_fail set). */
static int tokenize_stdin(const bt_tokenizer *tok, const struct tok_args *a, struct out *o)
{
    bt_encoding enc;
    bt_encoding_init(&enc);
    char *line = NULL, *first = NULL;
    size_t cap = 0, first_cap = 0, first_len = 0, lineno = 0;
    ssize_t n;
    int have_first = 0, rc = 0;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        size_t len = (size_t)n;
        if (len && line[len - 1] == '\n') len--;
        if (a->words) {
            struct words_ctx c = {o, 1};
            rc = bt_tokenize_words(tok, line, len, a->opts.replace_invalid, &enc, on_word, &c);
            if (rc) { bt_fail_context(rc, "stdin line %zu", lineno); break; }
            out_str(o, "\n", 1);
            continue;
        }
        if (a->pair && !have_first) {
            if (first_cap < len + 1) {
                first_cap = len + 1;
                first = bt_xrealloc(first, first_cap);
            }
            memcpy(first, line, len);
            first_len = len;
            have_first = 1;
            continue;
        }
        if (a->pair) {
            rc = bt_encode_pair(tok, first, first_len, line, len, &a->opts, &enc);
            have_first = 0;
            if (rc) { bt_fail_context(rc, "stdin lines %zu-%zu", lineno - 1, lineno); break; }
        } else {
            rc = bt_encode(tok, line, len, &a->opts, &enc);
            if (rc) { bt_fail_context(rc, "stdin line %zu", lineno); break; }
        }
        out_encoding(o, &enc, a->json);
    }
    if (rc == BT_EDATA && !a->opts.replace_invalid) hint_replace_invalid();
    if (!rc && ferror(stdin)) rc = bt_fail(BT_EIO, "tokenize: reading stdin failed after line %zu", lineno);
    if (!rc && have_first)
        rc = bt_fail(BT_EDATA, "tokenize: stdin ends after line %zu, an unpaired first text: --pair needs an "
                     "even number of lines", lineno);
    free(line);
    free(first);
    bt_encoding_free(&enc);
    return rc;
}

int cmd_tokenize(int argc, char **argv)
{
    struct tok_args a = {NULL, 0, 0, 0, {0, BT_TRUNC_LONGEST_FIRST, 0, 0}};
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc < 0 ? 0 : bt_report_error(rc);

    bt_tokenizer *tok;
    char *dir = NULL; /* MODEL_DIR, or the one model directory below it */
    rc = bt_model_dir_resolve(a.model_dir, BT_MODEL_DIR_TOKENIZER, &dir);
    if (!rc) rc = bt_tokenizer_load(dir, &tok);
    free(dir);
    if (rc) return bt_report_error(rc);
    size_t n_special = bt_tokenizer_num_special(tok, a.pair);
    if (a.opts.max_length && (size_t)a.opts.max_length < n_special) {
        bt_tokenizer_free(tok);
        return bt_report_error(bt_fail(BT_EUSAGE, "tokenize: --max-length %d leaves no room for the %zu special tokens",
                                       a.opts.max_length, n_special));
    }

    static char inbuf[1 << 16];
    setvbuf(stdin, inbuf, _IOFBF, sizeof inbuf);
    struct out o = {bt_xmalloc(1 << 16), 0, 1 << 16, 0};
    rc = tokenize_stdin(tok, &a, &o);
    out_flush(&o);
    if (fflush(stdout) != 0 || o.failed) {
        if (!rc) rc = bt_fail(BT_EIO, "tokenize: writing stdout failed (disk full or closed pipe?)");
    }
    free(o.buf);
    bt_tokenizer_free(tok);
    return bt_report_error(rc);
}
