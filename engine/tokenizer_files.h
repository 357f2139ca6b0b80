/* engine/tokenizer_files.h — the files that define a model directory's
 * tokenizer, read as bytes so that checkpoint archives and exports carry
 * them (issue 22).
 *
 * Owns: which files travel with a model for each tokenizer source —
 * tokenizer.json sources: tokenizer.json, tokenizer_config.json,
 * special_tokens_map.json and vocab.txt, each when present; vocab.txt
 * sources (BERT WordPiece without tokenizer.json): vocab.txt alone, its
 * settings travelling in config.json ("baton_tokenizer", as before);
 * spm.model / sentencepiece.bpe.model sources (DeBERTa-v2/v3, XLM-R
 * without tokenizer.json): the
 * tokenizer.json converted from it in tokenizer.json's place, with the
 * others as for tokenizer.json sources — and
 * reading them with size limits.
 * Must not: parse the files (engine/tokenizer.c does), or know about archives.
 */
#ifndef BATON_ENGINE_TOKENIZER_FILES_H
#define BATON_ENGINE_TOKENIZER_FILES_H

#include "engine/tokenizer.h"

#include <stddef.h>

enum { BT_TOKFILE_VOCAB = 0, BT_TOKFILE_JSON, BT_TOKFILE_CONFIG, BT_TOKFILE_SPECIAL, BT_TOKFILE_COUNT };
extern const char *const bt_tokfile_names[BT_TOKFILE_COUNT]; /* "vocab.txt", "tokenizer.json", ... */

typedef struct {
    char *text[BT_TOKFILE_COUNT]; /* heap, NUL-terminated; "" when the file is absent or not carried */
    size_t len[BT_TOKFILE_COUNT];
} bt_tokenizer_files;

/* Reads the files of tok (loaded from model_dir) as the header says. Errors:
 * BT_EIO / BT_EDATA from reading (over the limits of a checkpoint member:
 * vocab.txt 256 MiB as before, tokenizer.json 64 MiB, tokenizer_config.json
 * and special_tokens_map.json 4 MiB). On failure f is freed. */
int bt_tokenizer_files_read(const char *model_dir, const bt_tokenizer *tok, bt_tokenizer_files *f);
void bt_tokenizer_files_free(bt_tokenizer_files *f);

#endif
