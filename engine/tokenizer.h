/* engine/tokenizer.h — the tokenizer of a model directory, id-for-id identical
 * to Hugging Face's fast tokenizers (the Rust `tokenizers` crate, 0.20.x).
 *
 * Owns: loading a model directory's tokenizer — tokenizer.json when there is
 * one (WordPiece, BPE, Unigram, WordLevel with their normalizers,
 * pre-tokenizers, post-processors and added tokens: engine/tokjson*.c), else
 * vocab.txt + tokenizer_config.json (BERT WordPiece: the BertNormalizer, the
 * BertPreTokenizer, WordPiece, special tokens typed inside text, [CLS] A [SEP]
 * B [SEP]) — truncation (longest_first / only_first / only_second with the
 * crate's arithmetic), padding and the special-token roles. What is supported
 * and the exact code points where our Unicode tables differ from the crate's
 * are documented in docs/tokenizer.md.
 * Must not: read data sets, know about models or tensors, print anything.
 *
 * Threads: a loaded bt_tokenizer is immutable; any number of threads may encode
 * with it at once, each with its own bt_encoding (which owns every buffer an
 * encode needs, reused across calls: no allocation per token or per text once
 * warm).
 */
#ifndef BATON_ENGINE_TOKENIZER_H
#define BATON_ENGINE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct bt_tokenizer bt_tokenizer;

/* Settings read from tokenizer_config.json (BERT defaults when it is absent). */
typedef struct {
    int lowercase;         /* do_lower_case (default 1) */
    int strip_accents;     /* strip_accents; null/absent follows lowercase */
    int chinese_chars;     /* tokenize_chinese_chars (default 1) */
    long model_max_length; /* 0 when absent or "unbounded" (> INT32_MAX) */
} bt_tokenizer_config;

/* Loads MODEL_DIR/tokenizer.json when it exists (plus tokenizer_config.json
 * for the special-token roles, model_max_length and truncation_side; a
 * vocab.txt beside a WordPiece tokenizer.json must hold the same vocabulary),
 * else MODEL_DIR/vocab.txt (one token per line, id = line number, trailing
 * \r trimmed) and MODEL_DIR/tokenizer_config.json if present.
 * Errors: BT_ENOINPUT (neither file), BT_ECONFIG (bad JSON, an unsupported
 * component — named with its JSON path —, a special token that is not in the
 * vocabulary, files that disagree), BT_EDATA (vocab not UTF-8). */
int bt_tokenizer_load(const char *model_dir, bt_tokenizer **out);

/* Builds a tokenizer from an in-memory vocabulary (newline separated, as
 * vocab.txt) and explicit settings; special tokens are [CLS] [SEP] [PAD] [UNK]
 * [MASK]. For tests and tools. */
int bt_tokenizer_from_vocab(const char *vocab, size_t len, const bt_tokenizer_config *cfg,
                            bt_tokenizer **out);
void bt_tokenizer_free(bt_tokenizer *tok);

const bt_tokenizer_config *bt_tokenizer_get_config(const bt_tokenizer *tok);
/* The embedding rows the ids index: lines of vocab.txt, or 1 + the largest id
 * of tokenizer.json (model vocabulary and added tokens). */
size_t bt_tokenizer_vocab_size(const bt_tokenizer *tok);
/* The file that defines the tokenizer: "tokenizer.json" or "vocab.txt". */
const char *bt_tokenizer_source(const bt_tokenizer *tok);
/* SHA-256 over the defining files (tokenizer.json or vocab.txt, then
 * tokenizer_config.json when present): changes whenever the ids can. */
void bt_tokenizer_fingerprint(const bt_tokenizer *tok, uint8_t out[32]);
/* Special tokens the post-processor adds to one text (pair 0) or a pair. */
size_t bt_tokenizer_num_special(const bt_tokenizer *tok, int pair);
/* Id of a token string (exact, e.g. "[PAD]", "##ing"), or -1. */
int32_t bt_tokenizer_token_id(const bt_tokenizer *tok, const char *token);
/* Token string of an id (NUL-terminated, owned by tok), or NULL if out of range. */
const char *bt_tokenizer_id_to_token(const bt_tokenizer *tok, int32_t id);

/* Special tokens by role. cls is also the bos role (<s>) and sep the eos role
 * (</s>): the first and last special token the post-processor puts around one
 * text. From tokenizer.json: the template's edges, then tokenizer_config.json
 * (cls_token/bos_token, sep_token/eos_token, pad_token, unk_token,
 * mask_token), then the model's unk and the usual names ([PAD]/<pad>, ...).
 * vocab.txt: cls, sep, pad and unk always exist; from tokenizer.json any role
 * may be -1 (absent); mask is -1 when the vocabulary has none. */
typedef struct {
    int32_t cls, sep, pad, unk, mask;
} bt_special_ids;
bt_special_ids bt_tokenizer_special_ids(const bt_tokenizer *tok);

/* 1 when a word encoded on its own must be given a leading space to be
 * encoded as it is inside a text: a ByteLevel pre-tokenizer without
 * add_prefix_space (RoBERTa's byte-level BPE marks word starts with "Ġ";
 * Transformers' is_split_into_words needs add_prefix_space=True for the same
 * reason). WordPiece and Metaspace ("▁" is prepended to every word): 0. */
int bt_tokenizer_word_needs_space(const bt_tokenizer *tok);
/* 1 for a WordPiece tokenizer (vocab.txt, or tokenizer.json's model
 * WordPiece), whose "##" pieces continue a word; 0 for BPE / Unigram /
 * WordLevel, which mark word starts instead. */
int bt_tokenizer_is_wordpiece(const bt_tokenizer *tok);

typedef enum {
    BT_TRUNC_LONGEST_FIRST = 0, /* HF default */
    BT_TRUNC_ONLY_FIRST,
    BT_TRUNC_ONLY_SECOND,
} bt_truncation;

typedef struct {
    int max_length;          /* total length including the special tokens; 0 = no truncation */
    bt_truncation truncation;
    int pad_to_max_length;   /* pad with the pad token (type 0, mask 0) up to max_length */
    int replace_invalid;     /* invalid UTF-8 -> U+FFFD (which clean_text then drops)
                                instead of failing with BT_EDATA */
} bt_encode_opts;

struct bt_tok_scratch;
/* One encoded item. Arrays are [len]; valid until the next encode with this
 * bt_encoding. Zero-initialise (or bt_encoding_init) before first use. */
typedef struct {
    int32_t *input_ids;
    int32_t *token_type_ids;
    int32_t *attention_mask;
    size_t len;
    size_t n_first, n_second;   /* tokens of each text before truncation */
    size_t cap;
    struct bt_tok_scratch *scratch; /* private */
} bt_encoding;

void bt_encoding_init(bt_encoding *enc);
void bt_encoding_free(bt_encoding *enc);

/* Encodes one text (UTF-8, len bytes, may contain NUL) as [CLS] text [SEP]
 * (or what tokenizer.json's post-processor says).
 * Errors: BT_EDATA for invalid UTF-8 ("at byte N", the caller adds the line)
 * unless opts->replace_invalid; BT_EUSAGE when max_length is positive but
 * smaller than the special tokens. opts may be NULL (no truncation). */
int bt_encode(const bt_tokenizer *tok, const char *text, size_t len,
              const bt_encode_opts *opts, bt_encoding *enc);
/* Encodes a pair as [CLS] a [SEP] b [SEP] (type ids 0 ... 0 1 ... 1), or as
 * tokenizer.json's post-processor says (RoBERTa: <s> a </s></s> b </s>). With
 * only_first/only_second, a text too short to absorb the cut is BT_EDATA,
 * as the reference raises "Sequence to truncate too short". */
/* One word of a pre-split sentence (token classification), as Transformers'
 * is_split_into_words encodes it: with the leading space above when the
 * tokenizer needs it; enc holds the specials around its pieces as bt_encode's. */
int bt_encode_word(const bt_tokenizer *tok, const char *word, bt_encoding *enc);
int bt_encode_pair(const bt_tokenizer *tok, const char *a, size_t alen, const char *b,
                   size_t blen, const bt_encode_opts *opts, bt_encoding *enc);

/* The crate's truncation arithmetic on lengths alone (exposed for tests):
 * n1, n2 WordPiece counts (has_pair 0: n2 ignored), max_tokens = max_length
 * minus the special tokens. Writes the kept counts; BT_EDATA when
 * only_first/only_second cannot cut enough. */
int bt_truncate_lengths(size_t n1, size_t n2, int has_pair, size_t max_tokens,
                        bt_truncation strategy, size_t *keep1, size_t *keep2);

/* Debug / parity view: the normalized, pre-tokenized words of a text (the
 * model's input; added/special tokens typed in the text come out as themselves,
 * is_special 1). Calls
 * fn(word, nbytes, is_special, ctx) per word. Same errors as bt_encode. */
typedef void (*bt_word_fn)(const char *word, size_t n, int is_special, void *ctx);
int bt_tokenize_words(const bt_tokenizer *tok, const char *text, size_t len, int replace_invalid,
                      bt_encoding *enc, bt_word_fn fn, void *ctx);

#endif
