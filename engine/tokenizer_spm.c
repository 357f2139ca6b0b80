/* engine/tokenizer_spm.c — a model directory whose tokenizer is a
 * SentencePiece model (`spm.model`, the DeBERTa-v2/v3 layout, or XLM-R's
 * `sentencepiece.bpe.model`) and no tokenizer.json.
 *
 * Owns: reading the SentencePiece ModelProto (protobuf wire format: the
 * pieces with score and type, trainer_spec.model_type / unk_id /
 * byte_fallback, normalizer_spec.precompiled_charsmap), refusing damaged or
 * unsupported files with the file, what is wrong and what to do, and
 * building the tokenizer.json text that transformers' slow-to-fast
 * conversion (DebertaV2Converter, then DebertaV2TokenizerFast's added
 * tokens) builds for the directory — Unigram over the pieces' scores,
 * [Lowercase] + Strip + [Precompiled] + Replace(" {2,}", " "),
 * [Punctuation isolated] + Metaspace(always), the [CLS] A [SEP] / [CLS] A
 * [SEP] B [SEP] template, added tokens — so the tokenizer.json pipeline runs
 * it and archives/exports carry it as tokenizer.json. Likewise XLM-R's
 * `sentencepiece.bpe.model` (XLMRobertaConverter: fairseq ids, <mask> last,
 * SpmConverter's normalizer, <s> A </s></s> B </s>).
 * Must not: know any tokenizer.json semantics beyond emitting the file
 * (engine/tokjson_*.c own those).
 */
#include "engine/tokenizer_internal.h"
#include "util/err.h"
#include "util/file.h"
#include "util/json.h"
#include "util/mem.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPM_MAX_BYTES ((size_t)256 << 20)
#define SPM_MAX_PIECES (1 << 24)

typedef struct {
    const uint8_t *s;
    size_t len;
} span;

typedef struct {
    span piece;
    float score;
    int type; /* 1 normal, 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte */
} spm_piece;

typedef struct {
    spm_piece *pieces;
    size_t n, cap;
    int model_type; /* 1 unigram, 2 bpe, 3 word, 4 char */
    long unk_id;
    int byte_fallback;
    span charsmap;
    int xlmr; /* sentencepiece.bpe.model: XLMRobertaConverter's layout */
} spm_model;

/* ---------------------------------------------------------------- wire format */

typedef struct {
    const uint8_t *p, *end;
    const char *file;
} rd;

static int damaged(const rd *r, const char *what)
{
    return bt_fail(BT_EDATA, "%s: not a valid SentencePiece model (%s); the file is damaged or not a spm.model: "
                   "download it again, or give a directory with tokenizer.json", r->file, what);
}

static int varint(rd *r, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return damaged(r, "a number runs past the end of the file");
        uint8_t b = *r->p++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return 0;
    }
    return damaged(r, "a number longer than 10 bytes");
}

/* One field: its number and wire type; a length-delimited value in *sub, a
 * varint in *v, a fixed32 in *v; fixed64 is skipped. */
static int field(rd *r, uint32_t *num, int *wt, uint64_t *v, span *sub)
{
    uint64_t key;
    int rc = varint(r, &key);
    if (rc) return rc;
    *num = (uint32_t)(key >> 3);
    *wt = (int)(key & 7);
    if (*num == 0) return damaged(r, "a field numbered 0");
    switch (*wt) {
    case 0: return varint(r, v);
    case 1:
        if (r->end - r->p < 8) return damaged(r, "a 64-bit value runs past the end");
        r->p += 8;
        return 0;
    case 5:
        if (r->end - r->p < 4) return damaged(r, "a 32-bit value runs past the end");
        *v = (uint64_t)r->p[0] | (uint64_t)r->p[1] << 8 | (uint64_t)r->p[2] << 16 | (uint64_t)r->p[3] << 24;
        r->p += 4;
        return 0;
    case 2:
        if ((rc = varint(r, v))) return rc;
        if (*v > (uint64_t)(r->end - r->p)) return damaged(r, "a field's length runs past the end of the file");
        sub->s = r->p;
        sub->len = (size_t)*v;
        r->p += *v;
        return 0;
    default: return damaged(r, "a protobuf group or an unknown wire type");
    }
}

/* Every field of the message r reads, in order, to fn (which may stop the
 * walk with an error). */
typedef int (*field_fn)(rd *r, uint32_t num, int wt, uint64_t v, span sub, void *ctx);
static int walk(rd *r, field_fn fn, void *ctx)
{
    int rc = 0;
    while (!rc && r->p < r->end) {
        uint32_t num;
        int wt;
        uint64_t v = 0;
        span sub = {NULL, 0};
        if ((rc = field(r, &num, &wt, &v, &sub))) break;
        rc = fn(r, num, wt, v, sub, ctx);
    }
    return rc;
}

typedef struct {
    spm_piece pc;
    int have_piece;
} piece_ctx;

static int piece_field(rd *r, uint32_t num, int wt, uint64_t v, span sub, void *ctx)
{
    piece_ctx *c = ctx;
    if (num == 1 && wt == 2) {
        c->pc.piece = sub;
        c->have_piece = 1;
    } else if (num == 2 && wt == 5) {
        uint32_t u = (uint32_t)v;
        memcpy(&c->pc.score, &u, sizeof u);
    } else if (num == 3 && wt == 0) {
        c->pc.type = (int)(v > 6 ? 0 : v);
    } else if (num <= 3) {
        return damaged(r, "a piece field has the wrong wire type");
    }
    return 0;
}

static int parse_piece(const rd *outer, span body, spm_model *m)
{
    rd r = {body.s, body.s + body.len, outer->file};
    piece_ctx c = {{{NULL, 0}, 0.0f, 1}, 0};
    int rc = walk(&r, piece_field, &c);
    if (rc) return rc;
    char what[96];
    if (!c.have_piece || !c.pc.piece.len) {
        snprintf(what, sizeof what, "piece %zu is empty", m->n);
        return damaged(&r, what);
    }
    if (c.pc.type < 1) {
        snprintf(what, sizeof what, "piece %zu has an unknown type", m->n);
        return damaged(&r, what);
    }
    if (!isfinite(c.pc.score)) {
        snprintf(what, sizeof what, "piece %zu has a score that is not a finite number", m->n);
        return damaged(&r, what);
    }
    if (m->n == SPM_MAX_PIECES) return damaged(&r, "more than 16M pieces");
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 1024;
        m->pieces = bt_xrealloc(m->pieces, m->cap * sizeof *m->pieces);
    }
    m->pieces[m->n++] = c.pc;
    return 0;
}

/* TrainerSpec: model_type (3), byte_fallback (35), unk_id (40). */
static int trainer_field(rd *r, uint32_t num, int wt, uint64_t v, span sub, void *ctx)
{
    spm_model *m = ctx;
    if (wt != 0) return 0;
    if (num == 3) m->model_type = (int)(v > 100 ? 100 : v);
    else if (num == 35) m->byte_fallback = v != 0;
    else if (num == 40) m->unk_id = (long)(int32_t)(uint32_t)v;
    return 0;
}

/* NormalizerSpec: precompiled_charsmap (2). */
static int normalizer_field(rd *r, uint32_t num, int wt, uint64_t v, span sub, void *ctx)
{
    spm_model *m = ctx;
    if (num == 2 && wt == 2) m->charsmap = sub;
    return 0;
}

/* ModelProto: pieces (1), trainer_spec (2), normalizer_spec (3). */
static int model_field(rd *r, uint32_t num, int wt, uint64_t v, span sub, void *ctx)
{
    spm_model *m = ctx;
    if (num >= 1 && num <= 3 && wt != 2) return damaged(r, "a top-level field has the wrong wire type");
    rd inner = {sub.s, sub.s + sub.len, r->file};
    if (num == 1) return parse_piece(r, sub, m);
    if (num == 2) return walk(&inner, trainer_field, m);
    if (num == 3) return walk(&inner, normalizer_field, m);
    return 0;
}

static int parse_model(const char *file, const uint8_t *buf, size_t len, spm_model *m)
{
    memset(m, 0, sizeof *m);
    m->model_type = 1; /* the proto's defaults */
    rd r = {buf, buf + len, file};
    int rc = walk(&r, model_field, m);
    if (!rc && !m->n) rc = damaged(&r, "it has no pieces");
    return rc;
}

/* ---------------------------------------------------------------- checks */

static int utf8_valid(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!k || i + k > n || (k == 2 && c < 0xc2)) return 0;
        uint32_t cp = k == 1 ? c : (uint32_t)c & (0x7f >> k);
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if ((k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp < 0xe000) ||
            cp == 0)
            return 0;
        i += k;
    }
    return 1;
}

static int check_model(const char *file, const spm_model *m)
{
    if (m->model_type != 1)
        return bt_fail(BT_ECONFIG, "%s: a SentencePiece %s model: baton reads only Unigram SentencePiece models "
                       "(DeBERTa-v2/v3); save the tokenizer with tokenizer.json (transformers' "
                       "save_pretrained of the fast tokenizer) and use that", file,
                       m->model_type == 2 ? "BPE" : m->model_type == 3 ? "WORD" : m->model_type == 4 ? "CHAR" : "unknown-type");
    if (m->unk_id < 0 || (size_t)m->unk_id >= m->n)
        return bt_fail(BT_EDATA, "%s: not a valid SentencePiece model (unk_id %ld is outside its %zu pieces); the file "
                       "is damaged: download it again", file, m->unk_id, m->n);
    for (size_t i = 0; i < m->n; i++)
        if (!utf8_valid(m->pieces[i].piece.s, m->pieces[i].piece.len))
            return bt_fail(BT_EDATA, "%s: not a valid SentencePiece model (piece %zu is not UTF-8, or holds NUL); the file is "
                           "damaged: download it again", file, i);
    return 0;
}

/* ---------------------------------------------------------------- base64 */

static char *base64(const uint8_t *s, size_t n)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = bt_xmalloc(4 * ((n + 2) / 3) + 1), *q = o;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0) | (i + 2 < n ? s[i + 2] : 0);
        *q++ = al[v >> 18 & 63];
        *q++ = al[v >> 12 & 63];
        *q++ = i + 1 < n ? al[v >> 6 & 63] : '=';
        *q++ = i + 2 < n ? al[v & 63] : '=';
    }
    *q = 0;
    return o;
}

/* ---------------------------------------------------------------- tokenizer.json */

/* The shortest decimal that reads back as d (what the crate and Python write). */
static void shortest(double d, char *buf, size_t cap)
{
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, cap, "%.*g", p, d);
        if (strtod(buf, NULL) == d) break;
    }
    if (!strpbrk(buf, ".eEn")) strncat(buf, ".0", cap - strlen(buf) - 1);
}

static int flag(json_t *o, const char *key, int dflt)
{
    json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static const char *role(json_t *cfg, const char *key, const char *dflt)
{
    json_t *v = json_object_get(cfg, key);
    if (json_is_object(v)) v = json_object_get(v, "content");
    return json_is_string(v) ? json_string_value(v) : json_is_null(v) && v ? NULL : dflt;
}

static int listed(json_t *added, const char *c)
{
    size_t i;
    json_t *v;
    json_array_foreach(added, i, v) if (!strcmp(json_string_value(json_object_get(v, "content")), c)) return 1;
    return 0;
}

static void add_token(json_t *added, const char *c, int special, int normalized, json_t *flags)
{
    if (listed(added, c)) return;
    json_array_append_new(added, json_pack("{s:I,s:s,s:b,s:b,s:b,s:b,s:b}", "id", (json_int_t)0, "content", c,
                                           "single_word", flags ? flag(flags, "single_word", 0) : 0, "lstrip",
                                           flags ? flag(flags, "lstrip", 0) : 0, "rstrip",
                                           flags ? flag(flags, "rstrip", 0) : 0, "normalized", normalized, "special",
                                           special));
}


static int by_key(const void *a, const void *b)
{
    long x = atol(*(const char *const *)a), y = atol(*(const char *const *)b);
    return x < y ? -1 : x > y;
}

/* Is c a role token or an additional special token of cfg (transformers'
 * legacy rule for added_tokens.json)? */
static int is_role(json_t *cfg, const char *c)
{
    static const char *const keys[] = {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
                                       "mask_token"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        const char *r = role(cfg, keys[k], NULL);
        if (r && !strcmp(r, c) && json_object_get(cfg, keys[k])) return 1;
    }
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(cfg, "additional_special_tokens"), i, v) {
        json_t *x = json_is_object(v) ? json_object_get(v, "content") : v;
        if (json_is_string(x) && !strcmp(json_string_value(x), c)) return 1;
    }
    return 0;
}

/* The legacy added_tokens.json ({token: id}; read when tokenizer_config.json
 * has no added_tokens_decoder): by id, special when a role or additional
 * special token names it, normalized = not special (transformers' rule). */
static void legacy_added(json_t *added, json_t *legacy, json_t *cfg)
{
    size_t n = json_object_size(legacy), k = 0;
    const char **keys = bt_xcalloc(n ? n : 1, sizeof *keys), *key;
    json_t *v;
    char (*ids)[24] = bt_xcalloc(n ? n : 1, sizeof *ids);
    json_object_foreach(legacy, key, v) {
        if (!json_is_integer(v) || !*key) continue;
        snprintf(ids[k], sizeof ids[k], "%lld", (long long)json_integer_value(v));
        keys[k] = ids[k];
        k++;
    }
    qsort(keys, k, sizeof *keys, by_key);
    for (size_t i = 0; i < k; i++)
        json_object_foreach(legacy, key, v) {
            char idbuf[24];
            if (!json_is_integer(v) || !*key) continue;
            snprintf(idbuf, sizeof idbuf, "%lld", (long long)json_integer_value(v));
            if (strcmp(idbuf, keys[i])) continue;
            int special = is_role(cfg, key);
            add_token(added, key, special, !special, NULL);
        }
    free(keys);
    free(ids);
}

/* The added tokens in the order the crate receives them: the converter's
 * control (special) and user-defined pieces, then DebertaV2TokenizerFast's:
 * tokenizer_config.json added_tokens_decoder by id, then the special tokens
 * (bos, eos, unk, sep, pad, cls, mask, additional) not added yet. Ids are the
 * vocabulary's or the next free ones (set by the loader, as the crate does). */
static json_t *added_tokens(const spm_model *m, json_t *cfg, json_t *legacy)
{
    json_t *added = json_array();
    for (size_t i = 0; i < m->n; i++)
        if (m->pieces[i].type == 3 || m->pieces[i].type == 4) {
            char *c = bt_xstrndup((const char *)m->pieces[i].piece.s, m->pieces[i].piece.len);
            add_token(added, c, m->pieces[i].type == 3, 0, NULL);
            free(c);
        }
    json_t *dec = json_object_get(cfg, "added_tokens_decoder");
    if (legacy) legacy_added(added, legacy, cfg);
    else if (json_is_object(dec) && json_object_size(dec)) {
        size_t n = json_object_size(dec), k = 0;
        const char **keys = bt_xcalloc(n, sizeof *keys), *key;
        json_t *v;
        json_object_foreach(dec, key, v) keys[k++] = key;
        qsort(keys, n, sizeof *keys, by_key);
        for (k = 0; k < n; k++) {
            v = json_object_get(dec, keys[k]);
            const char *c = json_string_value(json_object_get(v, "content"));
            if (!c || !*c) continue;
            int special = flag(v, "special", 0);
            add_token(added, c, special, flag(v, "normalized", !special), v);
        }
        free(keys);
    }
    static const char *const roles[][3] = {{"bos_token", "[CLS]", "<s>"}, {"eos_token", "[SEP]", "</s>"},
                                           {"unk_token", "[UNK]", "<unk>"}, {"sep_token", "[SEP]", "</s>"},
                                           {"pad_token", "[PAD]", "<pad>"}, {"cls_token", "[CLS]", "<s>"},
                                           {"mask_token", "[MASK]", "<mask>"}};
    for (size_t r = 0; r < sizeof roles / sizeof *roles; r++) {
        const char *c = role(cfg, roles[r][0], roles[r][1 + m->xlmr]);
        json_t *obj = json_object_get(cfg, roles[r][0]);
        /* XLMRobertaTokenizerFast makes a plain-string mask token lstrip */
        json_t *fl = json_is_object(obj) ? json_incref(obj)
                     : m->xlmr && r == 6 ? json_pack("{s:b}", "lstrip", 1) : NULL;
        if (c && *c) add_token(added, c, 1, 0, fl);
        json_decref(fl);
    }
    json_t *extra = json_object_get(cfg, "additional_special_tokens");
    size_t i;
    json_t *v;
    json_array_foreach(extra, i, v) {
        json_t *c = json_is_object(v) ? json_object_get(v, "content") : v;
        if (json_is_string(c) && *json_string_value(c)) add_token(added, json_string_value(c), 1, 0, NULL);
    }
    return added;
}

/* The piece's id, else the id the crate gives an added token (next free). */
static long token_id(const spm_model *m, json_t *added, const char *c)
{
    size_t n = strlen(c), i;
    for (i = 0; i < m->n; i++)
        if (m->pieces[i].piece.len == n && !memcmp(m->pieces[i].piece.s, c, n)) return (long)i;
    long next = (long)m->n;
    json_t *v;
    json_array_foreach(added, i, v) {
        const char *a = json_string_value(json_object_get(v, "content"));
        long id = next;
        size_t an = strlen(a), j;
        for (j = 0; j < m->n; j++)
            if (m->pieces[j].piece.len == an && !memcmp(m->pieces[j].piece.s, a, an)) break;
        if (j < m->n) continue;
        next++;
        if (!strcmp(a, c)) return id;
    }
    return (long)m->unk_id;
}

/* XLMRobertaConverter's: <s> $A </s> / <s> $A </s> </s> $B </s>, all type 0. */
static json_t *xlmr_post(const spm_model *m, json_t *added)
{
    json_t *single = json_array(), *pair = json_array(), *sp = json_object();
    static const char *const seq_p[] = {"<s>", "A", "</s>", "</s>", "B", "</s>"};
    for (int i = 0; i < 6; i++) {
        const char *x = seq_p[i];
        int is_seq = x[0] != '<';
        json_t *e = json_pack("{s:{s:s,s:i}}", is_seq ? "Sequence" : "SpecialToken", "id", x, "type_id", 0);
        if (i < 3) json_array_append(single, e);
        json_array_append_new(pair, e);
        if (!is_seq && !json_object_get(sp, x))
            json_object_set_new(sp, x, json_pack("{s:s,s:[I],s:[s]}", "id", x, "ids",
                                                 (json_int_t)token_id(m, added, x), "tokens", x));
    }
    return json_pack("{s:s,s:o,s:o,s:o}", "type", "TemplateProcessing", "single", single, "pair", pair,
                     "special_tokens", sp);
}

static json_t *post_processor(const spm_model *m, json_t *added)
{
    /* DebertaV2Converter names "[CLS]" and "[SEP]" whatever cls_token says; the
     * slow tokenizer's convert_tokens_to_ids gives their ids */
    if (m->xlmr) return xlmr_post(m, added);
    json_t *single = json_pack("[{s:{s:s,s:i}},{s:{s:s,s:i}},{s:{s:s,s:i}}]", "SpecialToken", "id", "[CLS]",
                               "type_id", 0, "Sequence", "id", "A", "type_id", 0, "SpecialToken", "id", "[SEP]",
                               "type_id", 0);
    json_t *pair = json_pack("[{s:{s:s,s:i}},{s:{s:s,s:i}},{s:{s:s,s:i}},{s:{s:s,s:i}},{s:{s:s,s:i}}]",
                             "SpecialToken", "id", "[CLS]", "type_id", 0, "Sequence", "id", "A", "type_id", 0,
                             "SpecialToken", "id", "[SEP]", "type_id", 0, "Sequence", "id", "B", "type_id", 1,
                             "SpecialToken", "id", "[SEP]", "type_id", 1);
    json_t *sp = json_object();
    static const char *const names[2] = {"[CLS]", "[SEP]"};
    for (int i = 0; i < 2; i++)
        json_object_set_new(sp, names[i], json_pack("{s:s,s:[I],s:[s]}", "id", names[i], "ids",
                                                    (json_int_t)token_id(m, added, names[i]), "tokens", names[i]));
    return json_pack("{s:s,s:o,s:o,s:o}", "type", "TemplateProcessing", "single", single, "pair", pair,
                     "special_tokens", sp);
}

static json_t *normalizer(const spm_model *m, int lower)
{
    json_t *seq = json_array();
    if (m->xlmr) { /* SpmConverter's: [Precompiled], Strip right, Replace(" {2,}" -> "▁") */
        if (m->charsmap.len) {
            char *b = base64(m->charsmap.s, m->charsmap.len);
            json_array_append_new(seq, json_pack("{s:s,s:s}", "type", "Precompiled", "precompiled_charsmap", b));
            free(b);
        }
        json_array_append_new(seq, json_pack("{s:s,s:b,s:b}", "type", "Strip", "strip_left", 0, "strip_right", 1));
        json_array_append_new(seq, json_pack("{s:s,s:{s:s},s:s}", "type", "Replace", "pattern", "Regex", " {2,}",
                                             "content", "\xe2\x96\x81"));
        return json_pack("{s:s,s:o}", "type", "Sequence", "normalizers", seq);
    }
    if (lower) json_array_append_new(seq, json_pack("{s:s}", "type", "Lowercase"));
    json_array_append_new(seq, json_pack("{s:s,s:b,s:b}", "type", "Strip", "strip_left", 1, "strip_right", 1));
    if (m->charsmap.len) {
        char *b = base64(m->charsmap.s, m->charsmap.len);
        json_array_append_new(seq, json_pack("{s:s,s:s}", "type", "Precompiled", "precompiled_charsmap", b));
        free(b);
    }
    json_array_append_new(seq, json_pack("{s:s,s:{s:s},s:s}", "type", "Replace", "pattern", "Regex", " {2,}",
                                         "content", " "));
    return json_pack("{s:s,s:o}", "type", "Sequence", "normalizers", seq);
}

static json_t *pre_tokenizer(int split_by_punct)
{
    json_t *seq = json_array();
    if (split_by_punct) json_array_append_new(seq, json_pack("{s:s,s:s}", "type", "Punctuation", "behavior", "Isolated"));
    json_array_append_new(seq, json_pack("{s:s,s:s,s:s,s:b}", "type", "Metaspace", "replacement", "\xe2\x96\x81",
                                         "prepend_scheme", "always", "split", 1));
    return json_pack("{s:s,s:o}", "type", "Sequence", "pretokenizers", seq);
}

/* The model as text, scores in shortest form (jansson would write 17 digits). */
static char *unigram_text(const spm_model *m)
{
    size_t cap = 64 + m->n * 48, len = 0;
    char *o = bt_xmalloc(cap);
    len += (size_t)snprintf(o, cap, "{\"type\":\"Unigram\",\"unk_id\":%ld,\"vocab\":[", m->unk_id);
    for (size_t i = 0; i < m->n; i++) {
        json_t *s = json_stringn((const char *)m->pieces[i].piece.s, m->pieces[i].piece.len);
        char *q = json_dumps(s, JSON_ENCODE_ANY), num[40];
        json_decref(s);
        shortest((double)m->pieces[i].score, num, sizeof num);
        size_t need = strlen(q) + strlen(num) + 8;
        if (len + need + 64 > cap) {
            cap = (cap + need) * 2;
            o = bt_xrealloc(o, cap);
        }
        len += (size_t)snprintf(o + len, cap - len, "%s[%s,%s]", i ? "," : "", q, num);
        free(q);
    }
    snprintf(o + len, cap - len, "],\"byte_fallback\":false}");
    return o;
}

static char *tokenizer_json(const spm_model *m, json_t *cfg, json_t *legacy)
{
    json_t *added = added_tokens(m, cfg, legacy);
    json_t *root = json_pack("{s:s,s:n,s:n,s:o,s:o,s:o,s:o,s:{s:s,s:s,s:s,s:b}}", "version", "1.0", "truncation",
                             "padding", "added_tokens", json_incref(added), "normalizer",
                             normalizer(m, !m->xlmr && flag(cfg, "do_lower_case", 0)), "pre_tokenizer",
                             pre_tokenizer(!m->xlmr && flag(cfg, "split_by_punct", 0)), "post_processor",
                             post_processor(m, added), "decoder", "type", "Metaspace", "replacement",
                             "\xe2\x96\x81", "prepend_scheme", "always", "split", 1);
    size_t i;
    json_t *v;
    json_array_foreach(added, i, v) json_object_set_new(v, "id", json_integer(token_id(m, added, json_string_value(json_object_get(v, "content")))));
    json_decref(added);
    char *head = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER), *model = unigram_text(m);
    json_decref(root);
    size_t hn = strlen(head), mn = strlen(model);
    char *o = bt_xmalloc(hn + mn + 16);
    memcpy(o, head, hn - 1); /* drop the closing brace */
    memcpy(o + hn - 1, ",\"model\":", 9);
    memcpy(o + hn + 8, model, mn);
    memcpy(o + hn + 8 + mn, "}", 2);
    free(head);
    free(model);
    return o;
}

/* XLMRobertaConverter's vocabulary (fairseq's ids): <s> <pad> </s> <unk>,
 * then the pieces from the fourth on (the model's first three are
 * <unk> <s> </s>), then <mask>; unk_id 3. A fixed entry keeps the type of
 * the model's piece with that content (so <s> </s> stay control pieces). */
static int convert_xlmr(const char *file, spm_model *m)
{
    if (m->n < 3)
        return bt_fail(BT_EDATA, "%s: not a valid SentencePiece model for XLM-R (%zu pieces; the first three are "
                       "<unk> <s> </s>); the file is damaged: download it again", file, m->n);
    static const char *const fixed[4] = {"<s>", "<pad>", "</s>", "<unk>"};
    size_t n = m->n - 3 + 5;
    spm_piece *p = bt_xcalloc(n, sizeof *p);
    for (int i = 0; i < 4; i++) {
        p[i].piece.s = (const uint8_t *)fixed[i];
        p[i].piece.len = strlen(fixed[i]);
        p[i].type = 1;
        for (size_t j = 0; j < m->n; j++)
            if (m->pieces[j].piece.len == p[i].piece.len && !memcmp(m->pieces[j].piece.s, fixed[i], p[i].piece.len))
                p[i].type = m->pieces[j].type;
    }
    memcpy(p + 4, m->pieces + 3, (m->n - 3) * sizeof *p);
    p[n - 1].piece.s = (const uint8_t *)"<mask>";
    p[n - 1].piece.len = 6;
    p[n - 1].type = 1;
    free(m->pieces);
    m->pieces = p;
    m->n = m->cap = n;
    m->unk_id = 3;
    return 0;
}

/* A directory saved without added_tokens_decoder (transformers < 4.34):
 * special_tokens_map.json's entries override tokenizer_config.json's, and
 * added_tokens.json (*legacy, NULL when absent) lists the added tokens. */
static int read_legacy(const char *dir, json_t *cfg, json_t **legacy)
{
    json_t *map = NULL;
    char *p = bt_path_join(dir, "special_tokens_map.json");
    int rc = bt_path_exists(p) ? bt_json_load_file_py(p, 16u << 20, "fix or remove it", &map) : 0;
    if (!rc && map && !json_is_object(map)) rc = bt_fail(BT_ECONFIG, "%s: expected a JSON object; fix or remove it", p);
    free(p);
    if (!rc && map) json_object_update(cfg, map);
    json_decref(map);
    p = bt_path_join(dir, "added_tokens.json");
    if (!rc && bt_path_exists(p)) rc = bt_json_load_file_py(p, 64u << 20, "fix or remove it", legacy);
    if (!rc && *legacy && !json_is_object(*legacy))
        rc = bt_fail(BT_ECONFIG, "%s: expected a JSON object {token: id}; fix or remove it", p);
    free(p);
    return rc;
}

int tok_spm_json(const char *dir, const char *spm_path, char **json_text)
{
    *json_text = NULL;
    char *buf = NULL;
    size_t len = 0;
    int rc = bt_read_file(spm_path, SPM_MAX_BYTES, &buf, &len);
    if (rc) return rc;
    spm_model m;
    rc = parse_model(spm_path, (const uint8_t *)buf, len, &m);
    if (!rc) rc = check_model(spm_path, &m);
    size_t bl = strlen(spm_path);
    m.xlmr = bl >= 23 && !strcmp(spm_path + bl - 23, "sentencepiece.bpe.model");
    if (!rc && m.xlmr) rc = convert_xlmr(spm_path, &m);
    json_t *cfg = NULL;
    char *cpath = bt_path_join(dir, "tokenizer_config.json");
    if (!rc && bt_path_exists(cpath)) rc = bt_json_load_file_py(cpath, 64u << 20, "fix or remove it", &cfg);
    if (!rc && cfg && !json_is_object(cfg))
        rc = bt_fail(BT_ECONFIG, "%s: expected a JSON object; fix or remove it", cpath);
    free(cpath);
    json_t *legacy = NULL;
    if (!rc) {
        if (!cfg) cfg = json_object();
        if (!json_object_get(cfg, "added_tokens_decoder")) rc = read_legacy(dir, cfg, &legacy);
    }
    if (!rc) *json_text = tokenizer_json(&m, cfg, legacy);
    json_decref(legacy);
    json_decref(cfg);
    free(m.pieces);
    free(buf);
    return rc;
}
