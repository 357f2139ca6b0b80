/* engine/tokenizer_internal.h — the inside of a bt_tokenizer, shared by the
 * files that build one (engine/tokenizer.c: vocab.txt and the BERT engine;
 * engine/tokenizer_json.c: tokenizer.json directories).
 *
 * Owns: struct bt_tokenizer and the builders both loaders use.
 * Must not: be included outside engine/tokenizer*.c (and unit tests).
 */
#ifndef BATON_ENGINE_TOKENIZER_INTERNAL_H
#define BATON_ENGINE_TOKENIZER_INTERNAL_H

#include "engine/tokenizer.h"
#include "engine/tokjson.h"

#include <stddef.h>
#include <stdint.h>

#define MAX_WORD_CHARS 100 /* WordPiece max_input_chars_per_word */
#define N_SPECIAL 5

enum { A_WORD = 0, A_SPACE, A_PUNCT, A_REMOVE };

struct slot {
    uint32_t hash; /* low bits of the 64-bit hash; 0 marks an empty slot (we force bit 0) */
    int32_t id;
};

struct special {
    char *text;
    size_t len;
    int32_t id;
};

struct bt_tokenizer {
    bt_tokenizer_config cfg;
    int strip;             /* effective strip_accents */
    char *arena;           /* all tokens, NUL-terminated */
    uint32_t *tok_off;     /* [n_tokens] offset in arena */
    uint32_t *tok_len;     /* [n_tokens] */
    size_t n_tokens;
    struct slot *table;    /* [mask+1] */
    size_t mask;
    size_t max_tok_len;    /* longest vocab entry in bytes */
    uint16_t *flags;       /* [0x10000] toku_flags of the BMP */
    uint8_t ascii_cls[128];
    uint8_t ascii_out[128]; /* lowercased when cfg.lowercase */
    uint8_t sp_first[256];  /* 1 when some special token starts with this byte */
    struct special *sp;     /* special (added) tokens typed in text: [n_sp] */
    int n_sp;
    bt_special_ids ids;     /* roles */
    int32_t wp_unk;         /* the id WordPiece gives an unknown word */
    tj *tj;                 /* tokenizer.json pipeline, or NULL for the BERT engine above */
    const char *source;     /* "vocab.txt" or "tokenizer.json" */
    uint8_t fingerprint[32];
};

/* vocab.txt text (one token per line, id = line) into t's BERT engine */
int tok_parse_vocab(bt_tokenizer *t, const char *v, size_t len, const char *where);
/* the BERT engine's per-code-point tables (after cfg is set) */
void tok_build_tables(bt_tokenizer *t);
/* a token found in the raw text before anything else (leftmost-longest) */
void tok_add_special(bt_tokenizer *t, const char *s, size_t n, int32_t id);
/* MODEL_DIR with a tokenizer.json (engine/tokenizer_json.c) */
int tok_load_json(const char *model_dir, const char *json_path, bt_tokenizer **out);
/* the same from tokenizer.json text; where names it in messages, source is
 * what bt_tokenizer_source reports (a static string) */
int tok_load_json_text(const char *model_dir, const char *text, size_t len, const char *where, const char *source,
                       bt_tokenizer **out);
/* a vocab.txt directory whose added tokens (tokenizer_config.json
 * added_tokens_decoder, added_tokens.json) are not all vocab.txt entries at
 * their ids: *json_text = the tokenizer.json transformers would convert it to
 * (heap); else NULL (engine/tokenizer_added.c) */
int tok_vocab_added_json(const char *model_dir, char **json_text);
/* a directory with a SentencePiece model (spm.model) and no tokenizer.json:
 * *json_text = the tokenizer.json transformers' DebertaV2Converter and
 * DebertaV2TokenizerFast build from it and tokenizer_config.json (heap);
 * damaged or unsupported files are refused (engine/tokenizer_spm.c) */
int tok_spm_json(const char *model_dir, const char *spm_path, char **json_text);

#endif
