/* engine/tokjson.h — the tokenizer.json pipeline (internal to engine/tokjson_*.c
 * and engine/tokenizer.c; exposed for the unit tests).
 *
 * Owns: the in-memory form of a Hugging Face `tokenizer.json` (normalizers,
 * pre-tokenizers, model, post-processor, added tokens) and the per-encoding
 * scratch it runs in. The behaviour of every component is the Rust
 * `tokenizers` crate's (0.20.x), documented in docs/tokenizer.md.
 * Must not: print, read data sets, know about models or tensors, abort on any
 * input (a malformed file is refused at load with its JSON path named).
 *
 * Text representation: a normalized string is an array of code points, each
 * with the byte offset in the original text its alignment starts at (`orig`).
 * The crate only uses that start for one decision (Metaspace's
 * prepend_scheme "first": "does this split start at original offset 0?"), but
 * it must be tracked through every transformation to take that decision as
 * the crate does (e.g. Strip moves it, a Precompiled deletion does not).
 */
#ifndef BATON_ENGINE_TOKJSON_H
#define BATON_ENGINE_TOKJSON_H

#include "engine/tokenizer.h"
#include "util/utf8.h"

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------ text */

typedef struct {
    int32_t *cp;   /* [n] code points */
    int32_t *orig; /* [n] original byte offset each one's alignment starts at */
    size_t n, cap;
} tj_text;

/* one change of NormalizedString::transform: the new char, and 0 (replaces
 * the next old char), 1 (inserted) or -k (replaces the next old char and
 * removes the k after it) */
typedef struct {
    int32_t cp;
    int32_t chg;
} tj_tr;

typedef struct {
    tj_tr *v;
    size_t n, cap;
} tj_trs;

void tj_text_reserve(tj_text *t, size_t n);
void tj_text_push(tj_text *t, int32_t cp, int32_t orig);
void tj_text_free(tj_text *t);
void tj_trs_push(tj_trs *l, int32_t cp, int32_t chg);
/* dst = src transformed by l (the crate's alignment rule for `orig`);
 * `initial` old chars are removed before the first change; `base` is where
 * the string's original starts (a char inserted at its very start aligns
 * there: the crate's (0, 0)). */
void tj_transform(tj_text *dst, const tj_text *src, const tj_trs *l, size_t initial, int32_t base);

/* ------------------------------------------------------------ unicode */

enum {
    TJU_L       = 1 << 0,  /* \p{L} (Oniguruma, the crate's SysRegex) */
    TJU_N       = 1 << 1,  /* \p{N} (Oniguruma) */
    TJU_WS      = 1 << 2,  /* White_Space: char::is_whitespace, \s of both regex engines */
    TJU_WORD_RX = 1 << 3,  /* \w of the `regex` crate (Whitespace pre-tokenizer, added tokens) */
    TJU_WORD_OG = 1 << 4,  /* \w of Oniguruma (Split patterns) */
    TJU_NUMERIC = 1 << 5,  /* char::is_numeric (Digits) */
    TJU_MARK    = 1 << 6,  /* is_combining_mark (StripAccents) */
    TJU_PUNCT   = 1 << 7,  /* is_ascii_punctuation || is_punctuation (Punctuation, BertPreTokenizer) */
};
uint16_t tju_flags(int32_t cp);
#define TJ_FLAGS(t, c) ((c) < 0x10000 ? (t)->flags[(c)] : tju_flags(c))
/* Full decomposition (canonical, or compatibility when compat) as the crate's
 * unicode-normalization-alignments has it; returns the count (<= cap). */
int tju_decompose(int32_t cp, int compat, int32_t *out, int cap);
/* Extended grapheme cluster boundary between a and b (the crate's
 * unicode-segmentation, newer than utf8proc for a few marks); state as
 * utf8proc_grapheme_break_stateful's, 0 at the start of the text. */
int tju_grapheme_break(int32_t a, int32_t b, int32_t *state);
/* The crate's primary composite of (a, b), or -1. Needs tju_compose_init. */
typedef struct tj_compose tj_compose;
tj_compose *tju_compose_new(void);
void tju_compose_free(tj_compose *c);
int32_t tju_compose(const tj_compose *c, int32_t a, int32_t b);

/* ------------------------------------------------------------ vocabulary */

/* string -> id (exact bytes), id -> string */
typedef struct {
    char *arena;       /* every entry, NUL-terminated */
    size_t arena_n, arena_cap;
    uint32_t *off, *len; /* [n] by insertion order */
    int32_t *ids;      /* [n] */
    size_t n, cap;
    struct tj_slot { uint32_t hash; int32_t idx; } *table; /* idx into off/len/ids */
    size_t mask;
    size_t max_len;    /* longest entry in bytes */
} tj_vocab;

/* Adds (or, for a key already present, re-points) key -> id. */
void tj_vocab_put(tj_vocab *v, const char *key, size_t n, int32_t id);
int32_t tj_vocab_get(const tj_vocab *v, const char *key, size_t n);
void tj_vocab_free(tj_vocab *v);

/* 64-bit key -> 64-bit value (BPE merges, Unigram trie edges) */
typedef struct {
    uint64_t *keys; /* 0 = empty (keys are stored + 1) */
    uint64_t *vals;
    size_t n, mask;
} tj_map;
void tj_map_put(tj_map *m, uint64_t key, uint64_t val);
int tj_map_get(const tj_map *m, uint64_t key, uint64_t *val);
void tj_map_free(tj_map *m);

/* ------------------------------------------------------------ components */

enum tj_norm_kind {
    TJN_BERT, TJN_NFC, TJN_NFD, TJN_NFKC, TJN_NFKD, TJN_LOWERCASE, TJN_STRIP, TJN_STRIP_ACCENTS,
    TJN_REPLACE, TJN_PREPEND, TJN_PRECOMPILED,
};

/* regular expressions the crate's tokenizer files use, matched by hand */
enum tj_regex {
    TJR_NONE = 0,
    TJR_GPT2,        /* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
    TJR_WORDS,       /* \w+|[^\w\s]+ (Oniguruma \w) */
    TJR_SPACES,      /* \s+ */
    TJR_SPACES2,     /* " {2,}" */
};

typedef struct tj_charsmap tj_charsmap;

typedef struct {
    int kind;
    int clean, cjk, strip_accents, lower; /* BertNormalizer */
    int left, right;                      /* Strip */
    int32_t *pat;                         /* Replace: literal pattern (code points) */
    size_t pat_n;
    int regex;                            /* Replace: TJR_* or TJR_NONE for a literal */
    int32_t *content;                     /* Replace content / Prepend text */
    size_t content_n;
    tj_charsmap *cm;                      /* Precompiled */
} tj_norm;

enum tj_pretok_kind {
    TJP_BYTELEVEL, TJP_METASPACE, TJP_WHITESPACE, TJP_WHITESPACE_SPLIT, TJP_BERT, TJP_PUNCTUATION,
    TJP_DIGITS, TJP_SPLIT, TJP_CHAR_DELIMITER,
};
enum tj_behavior { TJB_REMOVED, TJB_ISOLATED, TJB_MERGED_PREV, TJB_MERGED_NEXT, TJB_CONTIGUOUS };
enum tj_prepend { TJ_PREPEND_ALWAYS, TJ_PREPEND_FIRST, TJ_PREPEND_NEVER };

typedef struct {
    int kind;
    int behavior;           /* Split, Punctuation */
    int invert;             /* Split */
    int add_prefix_space;   /* ByteLevel */
    int use_regex;          /* ByteLevel */
    int32_t replacement;    /* Metaspace */
    int prepend_scheme;     /* Metaspace */
    int split;              /* Metaspace */
    int individual_digits;  /* Digits */
    int32_t delimiter;      /* CharDelimiterSplit */
    int32_t *pat;           /* Split literal pattern */
    size_t pat_n;
    int regex;              /* Split: TJR_* (TJR_NONE: literal) */
} tj_pretok;

enum tj_model_kind { TJM_WORDPIECE, TJM_BPE, TJM_UNIGRAM, TJM_WORDLEVEL };

typedef struct {
    int kind;
    tj_vocab vocab;          /* token -> id (all models) */
    int32_t unk;             /* unk id, -1 none */
    int unk_given;           /* BPE: an unk_token is set (absent: unknown chars are dropped) */
    /* WordPiece */
    char *prefix;            /* continuing_subword_prefix (WordPiece, BPE; NULL none) */
    size_t prefix_n;
    char *suffix;            /* end_of_word_suffix (BPE) */
    size_t suffix_n;
    long max_chars;          /* max_input_chars_per_word */
    /* BPE */
    tj_map merges;           /* (left id << 32 | right id) -> (rank << 32 | new id) */
    int fuse_unk, byte_fallback, ignore_merges;
    int32_t byte_ids[256];   /* <0xXX> ids, -1 when absent (byte_fallback) */
    /* Unigram */
    double *scores;          /* [n pieces] by id */
    size_t n_pieces;
    double min_score;
    tj_map trie;             /* (node << 8 | byte) -> child node */
    int32_t *node_id;        /* [n_nodes] piece id ending at node, -1 none */
    size_t n_nodes;
} tj_model;

typedef struct {
    char *content;           /* UTF-8 as in the file */
    size_t len;
    int32_t *cps;            /* content as code points (normalized when `normalized`) */
    size_t n_cps;
    int32_t id;
    int single_word, lstrip, rstrip, normalized, special;
} tj_added;

enum tj_post_kind { TJPP_NONE, TJPP_TEMPLATE };
/* Every supported post-processor (TemplateProcessing, BertProcessing,
 * RobertaProcessing, ByteLevel, Sequence of those) becomes a template. */
typedef struct {
    int is_seq;              /* 1: a sequence ($A / $B), 0: special token ids */
    int seq;                 /* 0 = A, 1 = B */
    int32_t type_id;
    int32_t *ids;            /* special token ids */
    size_t n_ids;
} tj_piece_tpl;

typedef struct {
    int kind;
    tj_piece_tpl *single, *pair;
    size_t n_single, n_pair;
    size_t added_single, added_pair; /* special tokens each adds */
    int roberta;             /* RobertaProcessing: type ids all 0 */
} tj_post;

typedef struct tj {
    tj_norm *norms;
    size_t n_norms;
    tj_pretok *pretoks;
    size_t n_pretoks;
    tj_model model;
    tj_post post;
    tj_added *added;         /* sorted by first code point of cps (then longest first) */
    size_t n_added;
    size_t n_added_raw, n_added_norm; /* added[0..raw) non-normalized, [raw..) normalized */
    tj_compose *compose;     /* NFC/NFKC only */
    uint16_t *flags;         /* [0x10000] tju_flags of the BMP */
    int32_t byte_char[256];  /* ByteLevel: byte -> code point */
    char **id_to_token;      /* [vocab_size] (NULL holes) */
    size_t vocab_size;
    int trunc_left;          /* truncation_side "left": keep the end of each text */
} tj;

/* ------------------------------------------------------------ scratch */

typedef struct {
    uint32_t off, len;       /* into the stage's text */
    int32_t id;              /* added token id, -1 for text */
    int32_t shift;           /* original offset of the split (NormalizedString::original_shift) */
} tj_piece;

typedef struct {
    tj_piece *v;
    size_t n, cap;
} tj_pieces;

typedef struct tj_scratch {
    tj_text raw, norm, seg, tmp, buf[2]; /* raw: decoded text; norm: normalized pieces */
    tj_trs trs;
    tj_pieces p1, p2, pieces[2]; /* p1: raw splits; p2: normalized splits */
    struct { size_t s, e; int match; } *m; /* matches of a split */
    size_t m_n, m_cap;
    uint8_t *word;           /* UTF-8 of one word (model input) */
    size_t word_cap;
    uint8_t *key;            /* WordPiece candidate (prefix + part of the word) */
    size_t key_cap;
    /* models */
    struct tj_sym { int32_t id; int32_t prev, next; uint32_t len; } *sym;
    size_t sym_cap;
    struct tj_heap { uint32_t rank; uint32_t pos; int32_t new_id; } *heap;
    size_t heap_cap;
    struct tj_best { double score; int32_t start; int32_t id; } *best;
    size_t best_cap;
    int32_t *tmp_ids;
    size_t tmp_n, tmp_cap;
    struct tj_cache *cache;  /* [TJ_CACHE] recent words -> ids (speed only: the model is a pure function) */
} tj_scratch;

#define TJ_CACHE 8192
#define TJ_CACHE_WORD 30
#define TJ_CACHE_IDS 14
struct tj_cache {
    uint64_t hash;           /* 0: empty */
    uint8_t len, n;
    char w[TJ_CACHE_WORD];
    int32_t ids[TJ_CACHE_IDS];
};

void tj_scratch_free(tj_scratch *s);

/* ------------------------------------------------------------ stages */

/* Applies every normalizer in order to s (tmp space from w); base: where the
 * string's original starts. */
void tj_normalize(const tj *t, tj_text *s, tj_scratch *w, int32_t base);
/* Matches (not the gaps) of a known regex (TJR_*) or, with TJR_NONE, of a
 * literal (an empty literal matches nothing), leftmost-first and
 * non-overlapping as the crate's find_iter: into w->m, returns the count. */
size_t tj_find_matches(const tj *t, const int32_t *cp, size_t n, int regex, const int32_t *pat, size_t pat_n,
                       tj_scratch *w);
/* Runs the pre-tokenizers: `in` pieces over `text` -> w->pieces[*which] over w->buf[*which]. */
void tj_pretokenize(const tj *t, const tj_text *text, const tj_pieces *in, tj_scratch *w, int *which);
/* Model: tokens of one word (UTF-8) appended to *ids / *n / *cap. */
int tj_model_tokenize(const tj_model *m, const uint8_t *word, size_t n, tj_scratch *w, int32_t **ids, size_t *nids,
                      size_t *cap);

/* Precompiled char map (sentencepiece): parse / transform / free. */
int tj_charsmap_parse(const uint8_t *blob, size_t n, tj_charsmap **out, const char *where);
void tj_charsmap_free(tj_charsmap *cm);
/* Normalization of `key` (bytes), or NULL; *out_n its length. */
const char *tj_charsmap_lookup(const tj_charsmap *cm, const uint8_t *key, size_t n, size_t *out_n);

/* ------------------------------------------------------------ load */

/* Parses tokenizer.json text (`where` names the file in errors). */
int tj_load(const char *json, size_t len, const char *where, tj **out);
void tj_free(tj *t);
/* Id of a token string: added tokens first, then the model's vocabulary; -1. */
int tj_token_id(const tj *t, const char *s, size_t n);

/* Runs one text through added tokens, normalizer, pre-tokenizer and model:
 * the ids of the text (no post-processing) into *ids. fn != NULL: calls it
 * per word instead (the model's input words, added tokens marked special). */
typedef void (*tj_word_fn)(const char *word, size_t n, int is_special, void *ctx);
int tj_encode_text(const tj *t, const char *text, size_t len, int replace_invalid, tj_scratch *w, int32_t **ids,
                   size_t *n, size_t *cap, tj_word_fn fn, void *ctx);

/* Truncation (opts) and the post-processor's template over the ids of the
 * first and second text, into enc (padding with pad_id when asked). */
int tj_post_process(const tj *t, const int32_t *a, size_t na, const int32_t *b, size_t nb, int has_pair,
                    const bt_encode_opts *opts, int32_t pad_id, bt_encoding *enc);
/* engine/tokenizer.c: grows enc's arrays to hold n tokens */
void bt_encoding_reserve(bt_encoding *enc, size_t n);

/* UTF-8 helpers shared by the tj files */
/* (one scalar value in or out: bt_utf8_decode / bt_utf8_encode, util/utf8.h) */
/* Python's errors="replace": length of the maximal invalid subpart at p (>= 1). */
int tj_utf8_invalid_len(const uint8_t *p, const uint8_t *end);

#endif
