/* runner/model_tokenizer.h — what a training run keeps of its model's
 * tokenizer and family (issue 22): the job fingerprint's tokenizer field and
 * how archives from before it compare, the tokenizer members of a
 * checkpoint snapshot, and whether batches carry pair token types.
 *
 * Owns: the fingerprint key "model.tokenizer.sha256" (the tokenizer's
 * bt_tokenizer_fingerprint: tokenizer.json or vocab.txt, then
 * tokenizer_config.json) and the rule that an archive fingerprinted with the
 * older "model.vocab.sha256" (SHA-256 of vocab.txt alone) is compared on
 * that field instead; the snapshot's vocab.txt / tokenizer.json /
 * tokenizer_config.json / special_tokens_map.json.
 * Must not: read files (engine/tokenizer_files.c does), write archives, or
 * know about the segment loop.
 */
#ifndef BATON_RUNNER_MODEL_TOKENIZER_H
#define BATON_RUNNER_MODEL_TOKENIZER_H

#include "engine/tokenizer.h"
#include "engine/tokenizer_files.h"
#include "state/archive.h"

#define BT_FP_TOKENIZER_KEY "model.tokenizer.sha256"
#define BT_FP_VOCAB_KEY "model.vocab.sha256" /* archives of format version 1 */

/* bt_tokenizer_fingerprint of tok as 64 lowercase hex digits. */
void bt_run_tokenizer_hex(const bt_tokenizer *tok, char hex[65]);

/* The job fingerprint job_fp as an archive whose fingerprint is archive_fp
 * must be compared with it (heap): job_fp itself, or — when archive_fp has
 * BT_FP_VOCAB_KEY and no BT_FP_TOKENIZER_KEY (written before archives carried
 * the tokenizer) — job_fp with its BT_FP_TOKENIZER_KEY replaced by
 * BT_FP_VOCAB_KEY = SHA-256 of vocab_txt (what that baton fingerprinted; ""
 * when the model has no vocab.txt, which then differs). NULL when either is
 * not a JSON object. */
char *bt_run_fingerprint_for_archive(const char *archive_fp, const char *job_fp, const char *vocab_txt);

/* The tokenizer members of a snapshot from the model's files. */
void bt_run_snapshot_tokenizer(bt_snapshot *s, const bt_tokenizer_files *tf);

/* 1 when a pair's second text gets token type 1 in batches (after the first
 * sep), as BERT tokenizers give, and DeBERTa-v2/v3's ([CLS] A [SEP] B:1
 * [SEP]:1) for a model with a token-type table (type_vocab_size > 1; v3 has
 * none and its model reads no type ids). RoBERTa / XLM-R (one token type)
 * and DistilBERT (none) see type 0 everywhere, as their tokenizers give. */
struct bt_model_config;
int bt_run_pair_types(const struct bt_model_config *c);

#endif
