/* engine/tokjson_load.c — reads a Hugging Face tokenizer.json into a tj.
 *
 * Owns: the file's schema as the `tokenizers` crate (0.20) deserializes it —
 * which components exist, their fields and defaults, the added-token id rule
 * (ids come from the vocabularies, not from the file) — and refusing, with
 * the file and the JSON path named, anything malformed or unsupported.
 * Must not: encode text, or trust any number or string of the file (a
 * malformed file is an error, never a crash).
 */
#include "engine/tokjson.h"
#include "util/err.h"
#include "util/mem.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ID (1 << 26)   /* ids beyond 64M tokens are refused */
#define MAX_AFFIX 64       /* continuing_subword_prefix / end_of_word_suffix bytes */

typedef struct {
    const char *file;
    tj *t;
} ld;

static int bad(const ld *L, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(const ld *L, const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return bt_fail(BT_ECONFIG, "%s: %s: %s", L->file, path, msg);
}

static int unsupported(const ld *L, const char *path, const char *what, const char *name, const char *known)
{
    return bt_fail(BT_ECONFIG, "%s: %s: %s \"%s\" is not supported by baton (supported: %s); use a tokenizer "
                   "without it, or a vocab.txt (WordPiece) model directory", L->file, path, what, name, known);
}

/* ---------------------------------------------------------------- field helpers */

static int get_bool(const ld *L, json_t *o, const char *key, int dflt, int *out, const char *path)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) { *out = dflt; return 0; }
    if (!json_is_boolean(v)) return bad(L, path, "\"%s\" must be true or false", key);
    *out = json_is_true(v);
    return 0;
}

/* a string field; *out NULL when absent/null and !required */
static int get_str(const ld *L, json_t *o, const char *key, int required, const char **out, size_t *n,
                   const char *path)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (n) *n = 0;
    if (!v || json_is_null(v)) return required ? bad(L, path, "\"%s\" is missing: expected a string", key) : 0;
    if (!json_is_string(v)) return bad(L, path, "\"%s\" must be a string", key);
    *out = json_string_value(v);
    if (n) *n = json_string_length(v);
    return 0;
}

static int get_int(const ld *L, json_t *o, const char *key, long lo, long hi, long dflt, long *out, const char *path)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) { *out = dflt; return 0; }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return bad(L, path, "\"%s\" must be an integer from %ld to %ld", key, lo, hi);
    *out = (long)json_integer_value(v);
    return 0;
}

/* UTF-8 string -> code points (heap); the string must be valid UTF-8 (jansson checks) */
static int32_t *to_cps(const char *s, size_t n, size_t *out_n)
{
    int32_t *c = bt_xmalloc((n + 1) * sizeof *c);
    size_t k = 0;
    const uint8_t *p = (const uint8_t *)s, *e = p + n;
    while (p < e) {
        int32_t cp;
        int l = bt_utf8_decode(p, e, &cp);
        if (!l) { cp = 0xFFFD; l = 1; }
        c[k++] = cp;
        p += l;
    }
    *out_n = k;
    return c;
}

/* a one-character string (serde `char`) */
static int get_char(const ld *L, json_t *o, const char *key, int32_t dflt, int32_t *out, const char *path)
{
    const char *s;
    size_t n, k;
    int rc = get_str(L, o, key, 0, &s, &n, path);
    if (rc) return rc;
    if (!s) { *out = dflt; return 0; }
    int32_t *c = to_cps(s, n, &k);
    if (k != 1) { free(c); return bad(L, path, "\"%s\" must be exactly one character", key); }
    *out = c[0];
    free(c);
    return 0;
}

static const char *type_of(json_t *o)
{
    json_t *v = json_object_get(o, "type");
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A Split/Replace pattern: {"String": s} or {"Regex": r}. Regexes are
 * matched by hand: the ones the crate's files use, or a regex without any
 * special character (a literal). */
static int get_pattern(const ld *L, json_t *o, int32_t **pat, size_t *pat_n, int *regex, const char *path)
{
    json_t *p = json_object_get(o, "pattern");
    char sub[256];
    snprintf(sub, sizeof sub, "%s.pattern", path);
    if (!json_is_object(p) || json_object_size(p) != 1)
        return bad(L, sub, "expected {\"String\": \"...\"} or {\"Regex\": \"...\"}");
    json_t *s = json_object_get(p, "String"), *r = json_object_get(p, "Regex");
    *regex = TJR_NONE;
    if (json_is_string(s)) {
        *pat = to_cps(json_string_value(s), json_string_length(s), pat_n);
        return 0;
    }
    if (!json_is_string(r)) return bad(L, sub, "expected {\"String\": \"...\"} or {\"Regex\": \"...\"}");
    const char *re = json_string_value(r);
    static const struct { const char *re; int id; } known[] = {
        {"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", TJR_GPT2},
        {"\\w+|[^\\w\\s]+", TJR_WORDS},
        {"\\s+", TJR_SPACES},
        {" {2,}", TJR_SPACES2},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(re, known[i].re)) { *regex = known[i].id; *pat = NULL; *pat_n = 0; return 0; }
    if (json_string_length(r) && !strpbrk(re, "\\^$.|?*+()[]{}")) {
        *pat = to_cps(re, json_string_length(r), pat_n);
        return 0;
    }
    return bt_fail(BT_ECONFIG, "%s: %s.Regex: the pattern \"%s\" is not supported by baton (it matches, by hand, the "
                   "GPT-2 pattern, \\w+|[^\\w\\s]+, \\s+, \" {2,}\" and plain literals); use a tokenizer without "
                   "it, or a vocab.txt (WordPiece) model directory", L->file, sub, re);
}

static int get_behavior(const ld *L, json_t *o, int dflt, int *out, const char *path)
{
    const char *s;
    int rc = get_str(L, o, "behavior", dflt < 0, &s, NULL, path);
    if (rc) return rc;
    if (!s) { *out = dflt; return 0; }
    static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
    for (int i = 0; i < 5; i++)
        if (!strcmp(s, names[i])) { *out = i; return 0; }
    return bad(L, path, "\"behavior\" \"%s\": expected Removed, Isolated, MergedWithPrevious, MergedWithNext or "
               "Contiguous", s);
}

/* ---------------------------------------------------------------- base64 */

static int b64(int c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

static uint8_t *base64_decode(const char *s, size_t n, size_t *out_n)
{
    if (n % 4) return NULL;
    uint8_t *o = bt_xmalloc(n / 4 * 3 + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int j = 0; j < 4; j++) {
            if (s[i + j] == '=' && i + 4 == n && j >= 2) { v[j] = 0; pad++; continue; }
            if (pad || (v[j] = b64((unsigned char)s[i + j])) < 0) { free(o); return NULL; }
        }
        uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        o[k++] = (uint8_t)(x >> 16);
        if (pad < 2) o[k++] = (uint8_t)(x >> 8);
        if (pad < 1) o[k++] = (uint8_t)x;
    }
    *out_n = k;
    return o;
}

/* ---------------------------------------------------------------- normalizers */

static tj_norm *norm_add(tj *t)
{
    t->norms = bt_xrealloc(t->norms, (t->n_norms + 1) * sizeof *t->norms);
    tj_norm *n = &t->norms[t->n_norms++];
    memset(n, 0, sizeof *n);
    return n;
}

static int parse_normalizer(ld *L, json_t *o, const char *path, int depth)
{
    if (!json_is_object(o)) return bad(L, path, "expected an object with a \"type\"");
    const char *ty = type_of(o);
    if (!ty) return bad(L, path, "\"type\" is missing");
    char sub[256];
    int rc = 0;
    if (!strcmp(ty, "Sequence")) {
        json_t *a = json_object_get(o, "normalizers");
        if (!json_is_array(a)) return bad(L, path, "\"normalizers\" must be an array");
        if (depth > 8) return bad(L, path, "Sequence nested deeper than 8");
        for (size_t i = 0; i < json_array_size(a) && !rc; i++) {
            snprintf(sub, sizeof sub, "%s.normalizers[%zu]", path, i);
            rc = parse_normalizer(L, json_array_get(a, i), sub, depth + 1);
        }
        return rc;
    }
    static const struct { const char *name; int kind; } simple[] = {
        {"NFC", TJN_NFC}, {"NFD", TJN_NFD}, {"NFKC", TJN_NFKC}, {"NFKD", TJN_NFKD},
        {"Lowercase", TJN_LOWERCASE}, {"StripAccents", TJN_STRIP_ACCENTS},
    };
    for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++)
        if (!strcmp(ty, simple[i].name)) { norm_add(L->t)->kind = simple[i].kind; return 0; }
    if (!strcmp(ty, "BertNormalizer")) {
        tj_norm *n = norm_add(L->t);
        n->kind = TJN_BERT;
        int strip = -1;
        if (!rc) rc = get_bool(L, o, "clean_text", 1, &n->clean, path);
        if (!rc) rc = get_bool(L, o, "handle_chinese_chars", 1, &n->cjk, path);
        if (!rc) rc = get_bool(L, o, "lowercase", 1, &n->lower, path);
        if (!rc) rc = get_bool(L, o, "strip_accents", -1, &strip, path);
        n->strip_accents = strip < 0 ? n->lower : strip;
        return rc;
    }
    if (!strcmp(ty, "Strip")) {
        tj_norm *n = norm_add(L->t);
        n->kind = TJN_STRIP;
        if (!json_is_boolean(json_object_get(o, "strip_left")) || !json_is_boolean(json_object_get(o, "strip_right")))
            return bad(L, path, "\"strip_left\" and \"strip_right\" must be true or false");
        n->left = json_is_true(json_object_get(o, "strip_left"));
        n->right = json_is_true(json_object_get(o, "strip_right"));
        return 0;
    }
    if (!strcmp(ty, "Replace")) {
        tj_norm *n = norm_add(L->t);
        n->kind = TJN_REPLACE;
        const char *c;
        size_t cn;
        rc = get_pattern(L, o, &n->pat, &n->pat_n, &n->regex, path);
        if (!rc) rc = get_str(L, o, "content", 1, &c, &cn, path);
        if (!rc) n->content = to_cps(c, cn, &n->content_n);
        return rc;
    }
    if (!strcmp(ty, "Prepend")) {
        tj_norm *n = norm_add(L->t);
        n->kind = TJN_PREPEND;
        const char *c;
        size_t cn;
        rc = get_str(L, o, "prepend", 1, &c, &cn, path);
        if (!rc) n->content = to_cps(c, cn, &n->content_n);
        return rc;
    }
    if (!strcmp(ty, "Precompiled")) {
        const char *c;
        size_t cn, bn;
        rc = get_str(L, o, "precompiled_charsmap", 1, &c, &cn, path);
        if (rc) return rc;
        uint8_t *blob = base64_decode(c, cn, &bn);
        snprintf(sub, sizeof sub, "%s: %s.precompiled_charsmap", L->file, path);
        if (!blob) return bt_fail(BT_ECONFIG, "%s: not valid base64: the file is damaged; re-save the tokenizer", sub);
        tj_norm *n = norm_add(L->t);
        n->kind = TJN_PRECOMPILED;
        rc = tj_charsmap_parse(blob, bn, &n->cm, sub);
        free(blob);
        return rc;
    }
    return unsupported(L, path, "normalizer", ty,
                       "BertNormalizer, NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Replace, Prepend, "
                       "Precompiled, Sequence");
}

/* ---------------------------------------------------------------- pre-tokenizers */

static tj_pretok *pretok_add(tj *t)
{
    t->pretoks = bt_xrealloc(t->pretoks, (t->n_pretoks + 1) * sizeof *t->pretoks);
    tj_pretok *p = &t->pretoks[t->n_pretoks++];
    memset(p, 0, sizeof *p);
    return p;
}

static int parse_metaspace(ld *L, json_t *o, const char *path)
{
    tj_pretok *p = pretok_add(L->t);
    p->kind = TJP_METASPACE;
    int rc = get_char(L, o, "replacement", 0x2581, &p->replacement, path);
    const char *sch = NULL;
    int aps = -1;
    if (!rc) rc = get_bool(L, o, "split", 1, &p->split, path);
    if (!rc) rc = get_str(L, o, "prepend_scheme", 0, &sch, NULL, path);
    if (!rc) rc = get_bool(L, o, "add_prefix_space", -1, &aps, path);
    if (rc) return rc;
    p->prepend_scheme = TJ_PREPEND_ALWAYS;
    if (sch) {
        if (!strcmp(sch, "always")) p->prepend_scheme = TJ_PREPEND_ALWAYS;
        else if (!strcmp(sch, "first")) p->prepend_scheme = TJ_PREPEND_FIRST;
        else if (!strcmp(sch, "never")) p->prepend_scheme = TJ_PREPEND_NEVER;
        else return bad(L, path, "\"prepend_scheme\" \"%s\": expected always, first or never", sch);
    }
    if (aps == 0) p->prepend_scheme = TJ_PREPEND_NEVER; /* legacy files */
    return 0;
}

static int parse_pretok(ld *L, json_t *o, const char *path, int depth)
{
    if (!json_is_object(o)) return bad(L, path, "expected an object with a \"type\"");
    const char *ty = type_of(o);
    if (!ty) return bad(L, path, "\"type\" is missing");
    char sub[256];
    int rc = 0;
    if (!strcmp(ty, "Sequence")) {
        json_t *a = json_object_get(o, "pretokenizers");
        if (!json_is_array(a)) return bad(L, path, "\"pretokenizers\" must be an array");
        if (depth > 8) return bad(L, path, "Sequence nested deeper than 8");
        for (size_t i = 0; i < json_array_size(a) && !rc; i++) {
            snprintf(sub, sizeof sub, "%s.pretokenizers[%zu]", path, i);
            rc = parse_pretok(L, json_array_get(a, i), sub, depth + 1);
        }
        return rc;
    }
    static const struct { const char *name; int kind; } simple[] = {
        {"Whitespace", TJP_WHITESPACE}, {"WhitespaceSplit", TJP_WHITESPACE_SPLIT}, {"BertPreTokenizer", TJP_BERT},
    };
    for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++)
        if (!strcmp(ty, simple[i].name)) { pretok_add(L->t)->kind = simple[i].kind; return 0; }
    if (!strcmp(ty, "ByteLevel")) {
        tj_pretok *p = pretok_add(L->t);
        p->kind = TJP_BYTELEVEL;
        int trim;
        rc = get_bool(L, o, "add_prefix_space", 1, &p->add_prefix_space, path);
        if (!rc) rc = get_bool(L, o, "use_regex", 1, &p->use_regex, path);
        if (!rc) rc = get_bool(L, o, "trim_offsets", 1, &trim, path); /* offsets only */
        return rc;
    }
    if (!strcmp(ty, "Metaspace")) return parse_metaspace(L, o, path);
    if (!strcmp(ty, "Punctuation")) {
        tj_pretok *p = pretok_add(L->t);
        p->kind = TJP_PUNCTUATION;
        return get_behavior(L, o, TJB_ISOLATED, &p->behavior, path);
    }
    if (!strcmp(ty, "Digits")) {
        tj_pretok *p = pretok_add(L->t);
        p->kind = TJP_DIGITS;
        return get_bool(L, o, "individual_digits", 0, &p->individual_digits, path);
    }
    if (!strcmp(ty, "Split")) {
        tj_pretok *p = pretok_add(L->t);
        p->kind = TJP_SPLIT;
        rc = get_pattern(L, o, &p->pat, &p->pat_n, &p->regex, path);
        if (!rc) rc = get_behavior(L, o, -1, &p->behavior, path);
        if (!rc) rc = get_bool(L, o, "invert", 0, &p->invert, path);
        return rc;
    }
    if (!strcmp(ty, "CharDelimiterSplit")) {
        tj_pretok *p = pretok_add(L->t);
        p->kind = TJP_CHAR_DELIMITER;
        if (!json_object_get(o, "delimiter")) return bad(L, path, "\"delimiter\" is missing");
        return get_char(L, o, "delimiter", 0, &p->delimiter, path);
    }
    return unsupported(L, path, "pre-tokenizer", ty,
                       "ByteLevel, Metaspace, Whitespace, WhitespaceSplit, BertPreTokenizer, Punctuation, Digits, "
                       "Split, CharDelimiterSplit, Sequence");
}

/* ---------------------------------------------------------------- models */

/* vocab object {token: id} into m->vocab */
static int vocab_object(ld *L, json_t *v, tj_model *m, const char *path)
{
    char sub[256];
    snprintf(sub, sizeof sub, "%s.vocab", path);
    if (!json_is_object(v)) return bad(L, sub, "expected an object {\"token\": id, ...}");
    const char *k;
    size_t kn;
    json_t *x;
    json_object_keylen_foreach(v, k, kn, x) {
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= MAX_ID)
            return bad(L, sub, "the id of \"%.80s\" must be an integer from 0 to %d", k, MAX_ID - 1);
        tj_vocab_put(&m->vocab, k, kn, (int32_t)json_integer_value(x));
    }
    return 0;
}

static int affix(ld *L, json_t *o, const char *key, char **out, size_t *n, const char *dflt, const char *path)
{
    const char *s;
    int rc = get_str(L, o, key, 0, &s, n, path);
    if (rc) return rc;
    if (!s && !json_object_get(o, key) && dflt) { s = dflt; *n = strlen(dflt); }
    if (!s) { *out = NULL; *n = 0; return 0; }
    if (*n > MAX_AFFIX) return bad(L, path, "\"%s\" is longer than %d bytes", key, MAX_AFFIX);
    *out = bt_xstrndup(s, *n);
    return 0;
}

static int parse_wordpiece(ld *L, json_t *o, tj_model *m, const char *path)
{
    const char *unk;
    int rc = vocab_object(L, json_object_get(o, "vocab"), m, path);
    if (!rc) rc = get_str(L, o, "unk_token", 0, &unk, NULL, path);
    if (!rc) rc = affix(L, o, "continuing_subword_prefix", &m->prefix, &m->prefix_n, "##", path);
    if (!rc) rc = get_int(L, o, "max_input_chars_per_word", 0, 1L << 30, 100, &m->max_chars, path);
    if (!rc) m->unk = tj_vocab_get(&m->vocab, unk ? unk : "[UNK]", strlen(unk ? unk : "[UNK]"));
    if (!m->prefix) { m->prefix = bt_xstrdup(""); m->prefix_n = 0; }
    return rc;
}

/* one merge: "a b" (legacy) or ["a", "b"] */
static int merge_parts(ld *L, json_t *e, const char **a, size_t *an, const char **b, size_t *bn, const char *path)
{
    if (json_is_string(e)) {
        const char *s = json_string_value(e), *sp = strchr(s, ' ');
        if (!sp || strchr(sp + 1, ' ')) return bad(L, path, "expected \"left right\" (two tokens, one space)");
        *a = s;
        *an = (size_t)(sp - s);
        *b = sp + 1;
        *bn = strlen(sp + 1);
        return 0;
    }
    if (json_is_array(e) && json_array_size(e) == 2 && json_is_string(json_array_get(e, 0)) &&
        json_is_string(json_array_get(e, 1))) {
        *a = json_string_value(json_array_get(e, 0));
        *an = json_string_length(json_array_get(e, 0));
        *b = json_string_value(json_array_get(e, 1));
        *bn = json_string_length(json_array_get(e, 1));
        return 0;
    }
    return bad(L, path, "expected \"left right\" or [\"left\", \"right\"]");
}

static int parse_bpe(ld *L, json_t *o, tj_model *m, const char *path)
{
    char sub[256];
    json_t *d = json_object_get(o, "dropout");
    if (d && !json_is_null(d)) {
        if (!json_is_number(d) || json_number_value(d) < 0 || json_number_value(d) > 1)
            return bad(L, path, "\"dropout\" must be null or a number from 0 to 1");
        if (json_number_value(d) > 0)
            return bad(L, path, "\"dropout\" %g: BPE dropout is random, and baton tokenizes deterministically; set it "
                       "to null", json_number_value(d));
    }
    const char *unk;
    size_t unk_n;
    int rc = vocab_object(L, json_object_get(o, "vocab"), m, path);
    if (!rc) rc = get_str(L, o, "unk_token", 0, &unk, &unk_n, path);
    if (!rc) rc = affix(L, o, "continuing_subword_prefix", &m->prefix, &m->prefix_n, NULL, path);
    if (!rc) rc = affix(L, o, "end_of_word_suffix", &m->suffix, &m->suffix_n, NULL, path);
    if (!rc) rc = get_bool(L, o, "fuse_unk", 0, &m->fuse_unk, path);
    if (!rc) rc = get_bool(L, o, "byte_fallback", 0, &m->byte_fallback, path);
    if (!rc) rc = get_bool(L, o, "ignore_merges", 0, &m->ignore_merges, path);
    if (rc) return rc;
    m->unk_given = unk != NULL;
    m->unk = unk ? tj_vocab_get(&m->vocab, unk, unk_n) : -1;
    json_t *mg = json_object_get(o, "merges");
    snprintf(sub, sizeof sub, "%s.merges", path);
    if (!json_is_array(mg)) return bad(L, sub, "expected an array of merges");
    size_t n = json_array_size(mg);
    if (n >= UINT32_MAX) return bad(L, sub, "too many merges");
    char *buf = bt_xmalloc(2 * 65536 + 1);
    for (size_t i = 0; i < n && !rc; i++) {
        const char *a = NULL, *b = NULL;
        size_t an = 0, bn = 0;
        snprintf(sub, sizeof sub, "%s.merges[%zu]", path, i);
        rc = merge_parts(L, json_array_get(mg, i), &a, &an, &b, &bn, sub);
        if (rc) break;
        int32_t ia = tj_vocab_get(&m->vocab, a, an), ib = tj_vocab_get(&m->vocab, b, bn);
        if (ia < 0 || ib < 0) { rc = bad(L, sub, "token \"%.80s\" is not in the vocabulary", ia < 0 ? a : b); break; }
        size_t skip = m->prefix ? m->prefix_n : 0; /* the crate drops that many bytes of the right token */
        if (skip > bn || (skip < bn && ((uint8_t)b[skip] & 0xC0) == 0x80)) {
            rc = bad(L, sub, "the right token \"%.80s\" is shorter than continuing_subword_prefix", b);
            break;
        }
        if (an + bn > 2 * 65536) { rc = bad(L, sub, "tokens too long"); break; }
        memcpy(buf, a, an);
        memcpy(buf + an, b + skip, bn - skip);
        int32_t nid = tj_vocab_get(&m->vocab, buf, an + bn - skip);
        if (nid < 0) { rc = bad(L, sub, "the merged token \"%.*s\" is not in the vocabulary", (int)(an + bn - skip > 80 ? 80 : an + bn - skip), buf); break; }
        tj_map_put(&m->merges, ((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib, ((uint64_t)i << 32) | (uint32_t)nid);
    }
    free(buf);
    return rc;
}

/* The value serde_json (without its float_roundtrip feature, as the crate
 * builds it) reads for a number written in shortest form — the form both the
 * crate and Python write: the digits as an integer D, then D * 10^E or
 * D / 10^-E in double arithmetic. That is not always the correctly rounded
 * value jansson gives (1 ulp off for ~1 in 4 scores), and Viterbi ties follow
 * the crate's values. */
static double serde_f64(double d, const double *pow10)
{
    if (!isfinite(d) || d == 0) return d;
    char buf[48];
    int p = 15; /* trained scores mostly need 15-17 digits: start there */
    snprintf(buf, sizeof buf, "%.*e", p - 1, d);
    if (strtod(buf, NULL) == d) {
        while (p > 1) {
            char b2[48];
            snprintf(b2, sizeof b2, "%.*e", p - 2, d);
            if (strtod(b2, NULL) != d) break;
            memcpy(buf, b2, sizeof b2);
            p--;
        }
    } else {
        for (p = 16; p < 17; p++) {
            snprintf(buf, sizeof buf, "%.*e", p - 1, d);
            if (strtod(buf, NULL) == d) break;
        }
        snprintf(buf, sizeof buf, "%.*e", p - 1, d);
    }
    const char *q = buf;
    int neg = *q == '-';
    if (neg) q++;
    uint64_t D = 0;
    for (; *q && *q != 'e'; q++)
        if (*q >= '0' && *q <= '9') D = D * 10 + (uint64_t)(*q - '0');
    int E = (*q == 'e' ? atoi(q + 1) : 0) - (p - 1);
    double f = (double)D;
    for (;;) {
        int a = E < 0 ? -E : E;
        if (a <= 308) {
            if (E >= 0) f *= pow10[a];
            else f /= pow10[a];
            break;
        }
        if (f == 0 || E >= 0) break;
        f /= 1e308;
        E += 308;
    }
    return neg ? -f : f;
}

static int parse_unigram(ld *L, json_t *o, tj_model *m, const char *path)
{
    char sub[256];
    json_t *v = json_object_get(o, "vocab");
    snprintf(sub, sizeof sub, "%s.vocab", path);
    if (!json_is_array(v)) return bad(L, sub, "expected an array of [\"piece\", score]");
    size_t n = json_array_size(v);
    if (!n) return bad(L, sub, "the vocabulary is empty");
    if (n >= MAX_ID) return bad(L, sub, "more than %d pieces", MAX_ID - 1);
    long unk;
    int rc = get_int(L, o, "unk_id", 0, (long)n - 1, -1, &unk, path);
    if (!rc) rc = get_bool(L, o, "byte_fallback", 0, &m->byte_fallback, path);
    if (rc) return rc;
    m->unk = (int32_t)unk;
    m->n_pieces = n;
    m->scores = bt_xmalloc(n * sizeof *m->scores);
    m->min_score = INFINITY;
    double pow10[309];
    for (int i = 0; i <= 308; i++) {
        char e[8];
        snprintf(e, sizeof e, "1e%d", i);
        pow10[i] = strtod(e, NULL);
    }
    m->node_id = bt_xmalloc(64 * sizeof *m->node_id);
    size_t node_cap = 64;
    m->n_nodes = 1;
    m->node_id[0] = -1;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_array(e) || json_array_size(e) != 2 || !json_is_string(json_array_get(e, 0)) ||
            !json_is_number(json_array_get(e, 1))) {
            snprintf(sub, sizeof sub, "%s.vocab[%zu]", path, i);
            return bad(L, sub, "expected [\"piece\", score]");
        }
        const char *s = json_string_value(json_array_get(e, 0));
        size_t sn = json_string_length(json_array_get(e, 0));
        double sc = serde_f64(json_number_value(json_array_get(e, 1)), pow10);
        m->scores[i] = sc;
        if (sc < m->min_score) m->min_score = sc;
        tj_vocab_put(&m->vocab, s, sn, (int32_t)i);
        uint64_t node = 0;
        for (size_t k = 0; k < sn; k++) {
            uint64_t key = (node << 8) | (uint8_t)s[k], child;
            if (!tj_map_get(&m->trie, key, &child)) {
                if (m->n_nodes == node_cap) {
                    node_cap *= 2;
                    m->node_id = bt_xrealloc(m->node_id, node_cap * sizeof *m->node_id);
                }
                child = m->n_nodes++;
                m->node_id[child] = -1;
                tj_map_put(&m->trie, key, child);
            }
            node = child;
        }
        if (sn) m->node_id[node] = (int32_t)i; /* a later duplicate wins, as in the vocabulary */
    }
    return 0;
}

static int parse_model(ld *L, json_t *o)
{
    const char *path = "model";
    if (!json_is_object(o)) return bad(L, path, "missing, or not an object");
    tj_model *m = &L->t->model;
    const char *ty = type_of(o);
    if (!ty) { /* untagged (old files): what the fields say */
        json_t *v = json_object_get(o, "vocab");
        ty = json_object_get(o, "merges") ? "BPE" : json_is_array(v) ? "Unigram"
           : json_object_get(o, "max_input_chars_per_word") ? "WordPiece" : NULL;
        if (!ty) return bad(L, path, "\"type\" is missing");
    }
    m->unk = -1;
    for (int i = 0; i < 256; i++) m->byte_ids[i] = -1;
    int rc;
    if (!strcmp(ty, "WordPiece")) { m->kind = TJM_WORDPIECE; rc = parse_wordpiece(L, o, m, path); }
    else if (!strcmp(ty, "BPE")) { m->kind = TJM_BPE; rc = parse_bpe(L, o, m, path); }
    else if (!strcmp(ty, "Unigram")) { m->kind = TJM_UNIGRAM; rc = parse_unigram(L, o, m, path); }
    else if (!strcmp(ty, "WordLevel")) {
        m->kind = TJM_WORDLEVEL;
        const char *unk;
        rc = vocab_object(L, json_object_get(o, "vocab"), m, path);
        if (!rc) rc = get_str(L, o, "unk_token", 0, &unk, NULL, path);
        if (!rc) m->unk = tj_vocab_get(&m->vocab, unk ? unk : "<unk>", strlen(unk ? unk : "<unk>"));
    } else return unsupported(L, path, "model", ty, "WordPiece, BPE, Unigram, WordLevel");
    if (rc) return rc;
    if (m->byte_fallback)
        for (int b = 0; b < 256; b++) {
            char k[8];
            snprintf(k, sizeof k, "<0x%02X>", b);
            m->byte_ids[b] = tj_vocab_get(&m->vocab, k, 6);
        }
    return 0;
}

/* ---------------------------------------------------------------- post-processors */

static void tpl_push(tj_piece_tpl **v, size_t *n, tj_piece_tpl p)
{
    *v = bt_xrealloc(*v, (*n + 1) * sizeof **v);
    (*v)[(*n)++] = p;
}

static tj_piece_tpl tpl_special(int32_t id, int32_t type_id)
{
    tj_piece_tpl p = {0, 0, type_id, bt_xmalloc(sizeof(int32_t)), 1};
    p.ids[0] = id;
    return p;
}

static int token_pair(ld *L, json_t *o, const char *key, int32_t *id, const char *path)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_string(json_array_get(v, 0)) ||
        !json_is_integer(json_array_get(v, 1)) || json_integer_value(json_array_get(v, 1)) < 0 ||
        json_integer_value(json_array_get(v, 1)) >= MAX_ID)
        return bad(L, path, "\"%s\" must be [\"token\", id]", key);
    *id = (int32_t)json_integer_value(json_array_get(v, 1));
    return 0;
}

static int parse_template_list(ld *L, json_t *a, json_t *specials, tj_piece_tpl **out, size_t *n, const char *path)
{
    char sub[256];
    if (!json_is_array(a)) return bad(L, path, "expected an array of {\"SpecialToken\"|\"Sequence\": {...}}");
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *e = json_array_get(a, i), *sp = json_object_get(e, "SpecialToken"), *sq = json_object_get(e, "Sequence");
        snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        json_t *x = sp ? sp : sq;
        if (!json_is_object(x)) return bad(L, sub, "expected {\"SpecialToken\": {...}} or {\"Sequence\": {...}}");
        const char *id;
        long type_id;
        int rc = get_str(L, x, "id", 1, &id, NULL, sub);
        if (!rc) rc = get_int(L, x, "type_id", 0, 1 << 20, 0, &type_id, sub);
        if (rc) return rc;
        tj_piece_tpl p = {0};
        p.type_id = (int32_t)type_id;
        if (sq) {
            if (strcmp(id, "A") && strcmp(id, "B")) return bad(L, sub, "a Sequence id must be \"A\" or \"B\"");
            p.is_seq = 1;
            p.seq = id[0] == 'B';
        } else {
            json_t *st = json_object_get(specials, id), *ids = json_object_get(st, "ids");
            if (!json_is_array(ids))
                return bad(L, sub, "special token \"%.80s\" is not in the template's special_tokens (with \"ids\")", id);
            p.n_ids = json_array_size(ids);
            p.ids = bt_xmalloc((p.n_ids ? p.n_ids : 1) * sizeof *p.ids);
            for (size_t k = 0; k < p.n_ids; k++) {
                json_t *v = json_array_get(ids, k);
                if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= MAX_ID) {
                    free(p.ids);
                    return bad(L, sub, "special token \"%.80s\": ids must be integers from 0 to %d", id, MAX_ID - 1);
                }
                p.ids[k] = (int32_t)json_integer_value(v);
            }
        }
        tpl_push(out, n, p);
    }
    return 0;
}

static int parse_post(ld *L, json_t *o, const char *path, int depth)
{
    tj_post *pp = &L->t->post;
    if (!json_is_object(o)) return bad(L, path, "expected an object with a \"type\"");
    const char *ty = type_of(o);
    if (!ty) return bad(L, path, "\"type\" is missing");
    int rc = 0;
    char sub[256];
    if (!strcmp(ty, "ByteLevel")) return 0; /* trims offsets: ids unchanged */
    if (!strcmp(ty, "Sequence")) {
        json_t *a = json_object_get(o, "processors");
        if (!json_is_array(a)) return bad(L, path, "\"processors\" must be an array");
        if (depth > 8) return bad(L, path, "Sequence nested deeper than 8");
        for (size_t i = 0; i < json_array_size(a) && !rc; i++) {
            snprintf(sub, sizeof sub, "%s.processors[%zu]", path, i);
            rc = parse_post(L, json_array_get(a, i), sub, depth + 1);
        }
        return rc;
    }
    if (pp->kind == TJPP_TEMPLATE)
        return bad(L, path, "a second post-processor that adds special tokens: baton supports one");
    if (!strcmp(ty, "TemplateProcessing")) {
        json_t *sp = json_object_get(o, "special_tokens");
        if (!json_is_object(sp)) return bad(L, path, "\"special_tokens\" must be an object");
        snprintf(sub, sizeof sub, "%s.single", path);
        rc = parse_template_list(L, json_object_get(o, "single"), sp, &pp->single, &pp->n_single, sub);
        snprintf(sub, sizeof sub, "%s.pair", path);
        if (!rc) rc = parse_template_list(L, json_object_get(o, "pair"), sp, &pp->pair, &pp->n_pair, sub);
    } else if (!strcmp(ty, "BertProcessing") || !strcmp(ty, "RobertaProcessing")) {
        int32_t cls, sep;
        int roberta = ty[0] == 'R';
        rc = token_pair(L, o, "cls", &cls, path);
        if (!rc) rc = token_pair(L, o, "sep", &sep, path);
        if (rc) return rc;
        tpl_push(&pp->single, &pp->n_single, tpl_special(cls, 0));
        tpl_push(&pp->single, &pp->n_single, (tj_piece_tpl){1, 0, 0, NULL, 0});
        tpl_push(&pp->single, &pp->n_single, tpl_special(sep, 0));
        tpl_push(&pp->pair, &pp->n_pair, tpl_special(cls, 0));
        tpl_push(&pp->pair, &pp->n_pair, (tj_piece_tpl){1, 0, 0, NULL, 0});
        tpl_push(&pp->pair, &pp->n_pair, tpl_special(sep, 0));
        if (roberta) tpl_push(&pp->pair, &pp->n_pair, tpl_special(sep, 0));
        tpl_push(&pp->pair, &pp->n_pair, (tj_piece_tpl){1, 1, roberta ? 0 : 1, NULL, 0});
        tpl_push(&pp->pair, &pp->n_pair, tpl_special(sep, roberta ? 0 : 1));
        pp->roberta = roberta;
    } else {
        return unsupported(L, path, "post-processor", ty,
                           "TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel, Sequence");
    }
    if (rc) return rc;
    pp->kind = TJPP_TEMPLATE;
    return 0;
}

/* no post-processor: A (type 0), then B (type 1) */
static void default_post(tj_post *pp)
{
    tpl_push(&pp->single, &pp->n_single, (tj_piece_tpl){1, 0, 0, NULL, 0});
    tpl_push(&pp->pair, &pp->n_pair, (tj_piece_tpl){1, 0, 0, NULL, 0});
    tpl_push(&pp->pair, &pp->n_pair, (tj_piece_tpl){1, 1, 1, NULL, 0});
}

/* ---------------------------------------------------------------- added tokens */

static int added_cmp(const void *x, const void *y)
{
    const tj_added *a = x, *b = y;
    if (a->normalized != b->normalized) return a->normalized - b->normalized;
    if (a->n_cps && b->n_cps && a->cps[0] != b->cps[0]) return a->cps[0] < b->cps[0] ? -1 : 1;
    if (a->n_cps != b->n_cps) return a->n_cps > b->n_cps ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id; /* stable enough: ids are distinct */
}

/* AddedVocabulary::add_tokens: an id comes from the vocabularies (an added
 * token already seen, then the model); a new one gets the next free id. */
static int parse_added(ld *L, json_t *a)
{
    tj *t = L->t;
    if (!a || json_is_null(a)) return 0;
    if (!json_is_array(a)) return bad(L, "added_tokens", "expected an array");
    size_t n = json_array_size(a);
    t->added = bt_xcalloc(n ? n : 1, sizeof *t->added);
    size_t model_size = t->model.kind == TJM_UNIGRAM ? t->model.n_pieces : t->model.vocab.n;
    tj_vocab seen = {0};
    long max_added = -1;
    int rc = 0;
    char sub[64];
    for (size_t i = 0; i < n && !rc; i++) {
        json_t *e = json_array_get(a, i);
        snprintf(sub, sizeof sub, "added_tokens[%zu]", i);
        if (!json_is_object(e)) { rc = bad(L, sub, "expected an object"); break; }
        const char *c;
        size_t cn;
        tj_added ad = {0};
        long file_id;
        rc = get_str(L, e, "content", 1, &c, &cn, sub);
        if (!rc) rc = get_int(L, e, "id", 0, MAX_ID - 1, 0, &file_id, sub);
        if (!rc) rc = get_bool(L, e, "single_word", 0, &ad.single_word, sub);
        if (!rc) rc = get_bool(L, e, "lstrip", 0, &ad.lstrip, sub);
        if (!rc) rc = get_bool(L, e, "rstrip", 0, &ad.rstrip, sub);
        if (!rc) rc = get_bool(L, e, "special", 0, &ad.special, sub);
        if (!rc) rc = get_bool(L, e, "normalized", !ad.special, &ad.normalized, sub);
        if (rc) break;
        if (!cn) continue; /* the crate ignores empty tokens */
        int32_t id = tj_vocab_get(&seen, c, cn);
        if (id < 0) id = tj_vocab_get(&t->model.vocab, c, cn);
        if (id < 0) {
            id = max_added < 0 ? (int32_t)model_size
               : (max_added >= (long)model_size || !model_size) ? (int32_t)(max_added + 1) : (int32_t)model_size;
            if (id >= MAX_ID) { rc = bad(L, sub, "too many added tokens"); break; }
        }
        tj_vocab_put(&seen, c, cn, id);
        if (id > max_added) max_added = id;
        /* a token seen again replaces the earlier entry */
        size_t k;
        for (k = 0; k < t->n_added; k++)
            if (t->added[k].len == cn && !memcmp(t->added[k].content, c, cn)) break;
        if (k < t->n_added) { free(t->added[k].content); free(t->added[k].cps); }
        else t->n_added++;
        ad.content = bt_xstrndup(c, cn);
        ad.len = cn;
        ad.id = id;
        ad.cps = to_cps(c, cn, &ad.n_cps);
        t->added[k] = ad;
    }
    tj_vocab_free(&seen);
    return rc;
}

/* normalized tokens match their normalized content; sort; split the groups */
static int finish_added(ld *L, tj_scratch *w)
{
    tj *t = L->t;
    for (size_t i = 0; i < t->n_added; i++) {
        tj_added *ad = &t->added[i];
        if (!ad->normalized) continue;
        tj_text s = {0};
        for (size_t k = 0; k < ad->n_cps; k++) tj_text_push(&s, ad->cps[k], 0);
        tj_normalize(t, &s, w, 0);
        if (!s.n) {
            tj_text_free(&s);
            return bad(L, "added_tokens", "\"%.80s\" (normalized: true) normalizes to an empty string: set "
                       "\"normalized\": false for it", ad->content);
        }
        free(ad->cps);
        ad->cps = bt_xmalloc(s.n * sizeof *ad->cps);
        memcpy(ad->cps, s.cp, s.n * sizeof *s.cp);
        ad->n_cps = s.n;
        tj_text_free(&s);
    }
    if (t->n_added) qsort(t->added, t->n_added, sizeof *t->added, added_cmp);
    t->n_added_raw = 0;
    while (t->n_added_raw < t->n_added && !t->added[t->n_added_raw].normalized) t->n_added_raw++;
    t->n_added_norm = t->n_added - t->n_added_raw;
    return 0;
}

/* ---------------------------------------------------------------- tables */

static void build_tables(tj *t)
{
    t->flags = bt_xmalloc(0x10000 * sizeof *t->flags);
    for (int32_t c = 0; c < 0x10000; c++) t->flags[c] = (c >= 0xD800 && c < 0xE000) ? 0 : tju_flags(c);
    /* GPT-2's bytes_to_unicode: printable Latin-1 maps to itself, the rest to 256.. */
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        t->byte_char[b] = keep ? b : 256 + n++;
    }
    for (size_t i = 0; i < t->n_norms; i++)
        if (t->norms[i].kind == TJN_NFC || t->norms[i].kind == TJN_NFKC) {
            t->compose = tju_compose_new();
            break;
        }
}

static void build_id_to_token(tj *t)
{
    const tj_vocab *v = &t->model.vocab;
    size_t size = 0;
    for (size_t i = 0; i < v->n; i++)
        if ((size_t)v->ids[i] + 1 > size) size = (size_t)v->ids[i] + 1;
    if (t->model.kind == TJM_UNIGRAM && t->model.n_pieces > size) size = t->model.n_pieces;
    for (size_t i = 0; i < t->n_added; i++)
        if ((size_t)t->added[i].id + 1 > size) size = (size_t)t->added[i].id + 1;
    t->vocab_size = size;
    t->id_to_token = bt_xcalloc(size ? size : 1, sizeof *t->id_to_token);
    for (size_t i = 0; i < v->n; i++) t->id_to_token[v->ids[i]] = v->arena + v->off[i];
    for (size_t i = 0; i < t->n_added; i++) t->id_to_token[t->added[i].id] = t->added[i].content;
}

int tj_token_id(const tj *t, const char *s, size_t n)
{
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == n && !memcmp(t->added[i].content, s, n)) return t->added[i].id;
    return tj_vocab_get(&t->model.vocab, s, n);
}

/* ---------------------------------------------------------------- entry */

int tj_load(const char *json, size_t len, const char *where, tj **out)
{
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_ALLOW_NUL, &jerr);
    if (!root)
        return bt_fail(BT_ECONFIG, "%s:%d:%d: %s: the file is not valid JSON; re-save the tokenizer", where, jerr.line,
                       jerr.column, jerr.text);
    tj *t = bt_xcalloc(1, sizeof *t);
    ld L = {where, t};
    int rc = 0;
    if (!json_is_object(root)) rc = bad(&L, "(top level)", "expected a JSON object");
    json_t *x;
    if (!rc && (x = json_object_get(root, "normalizer")) && !json_is_null(x)) rc = parse_normalizer(&L, x, "normalizer", 0);
    if (!rc && (x = json_object_get(root, "pre_tokenizer")) && !json_is_null(x)) rc = parse_pretok(&L, x, "pre_tokenizer", 0);
    if (!rc) rc = parse_model(&L, json_object_get(root, "model"));
    if (!rc && (x = json_object_get(root, "post_processor")) && !json_is_null(x)) rc = parse_post(&L, x, "post_processor", 0);
    if (!rc && t->post.kind != TJPP_TEMPLATE) {
        t->post.kind = TJPP_TEMPLATE;
        default_post(&t->post);
    }
    if (!rc) {
        for (size_t i = 0; i < t->post.n_single; i++)
            if (!t->post.single[i].is_seq) t->post.added_single += t->post.single[i].n_ids;
        for (size_t i = 0; i < t->post.n_pair; i++)
            if (!t->post.pair[i].is_seq) t->post.added_pair += t->post.pair[i].n_ids;
    }
    if (!rc) build_tables(t);
    if (!rc) rc = parse_added(&L, json_object_get(root, "added_tokens"));
    if (!rc) {
        tj_scratch *w = bt_xcalloc(1, sizeof *w);
        rc = finish_added(&L, w);
        tj_scratch_free(w);
    }
    if (!rc) build_id_to_token(t);
    json_decref(root);
    if (rc) { tj_free(t); return rc; }
    *out = t;
    return 0;
}

void tj_free(tj *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->n_norms; i++) {
        free(t->norms[i].pat);
        free(t->norms[i].content);
        tj_charsmap_free(t->norms[i].cm);
    }
    free(t->norms);
    for (size_t i = 0; i < t->n_pretoks; i++) free(t->pretoks[i].pat);
    free(t->pretoks);
    tj_model *m = &t->model;
    tj_vocab_free(&m->vocab);
    free(m->prefix);
    free(m->suffix);
    tj_map_free(&m->merges);
    free(m->scores);
    tj_map_free(&m->trie);
    free(m->node_id);
    for (size_t i = 0; i < t->post.n_single; i++) free(t->post.single[i].ids);
    for (size_t i = 0; i < t->post.n_pair; i++) free(t->post.pair[i].ids);
    free(t->post.single);
    free(t->post.pair);
    for (size_t i = 0; i < t->n_added; i++) {
        free(t->added[i].content);
        free(t->added[i].cps);
    }
    free(t->added);
    tju_compose_free(t->compose);
    free(t->flags);
    free(t->id_to_token);
    free(t);
}
