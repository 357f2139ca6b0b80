/* runner/task_token.h — `task = token_classify` (runner/task_token.c, its
 * entry of the task interface runner/task.h): CoNLL sentences -> aligned
 * model inputs, labelled micro-batches, and the entity-level evaluation; and
 * `baton predict` with a token-classification model
 * (runner/task_token_predict.c; see docs/tasks.md, "In baton run (task =
 * token_classify)").
 *
 * Owns: the job keys -> bt_conll_options mapping (label_column = the tag
 * column, conll_separator, labels) and the checks of the keys that do not
 * apply; reading the train/eval CoNLL files (engine/conll), tokenizing each
 * word on its own (the tokenizer's encoding of the word without [CLS]/[SEP],
 * as HF `is_split_into_words`), through the token cache with one row per
 * word; cutting sentences longer than max_seq_len into overlapping windows
 * of whole words (bt_conll_windows; overlap = [data] stride) and aligning
 * each window with bt_conll_align (the tag of each word the window owns on
 * its first sub-token, -100 elsewhere); the micro-batches of one optimizer
 * step; the evaluation (each word predicted by the window that owns it; loss
 * per labelled token, seqeval-default entity precision/recall/F1 micro-averaged and per
 * type, word accuracy); and predict's per-word output (TSV word<TAB>tag,
 * JSONL, or the logits of each word's first sub-token).
 * Must not: choose batch order, step the optimizer, or touch archives (the
 * segment loop does); keep state that a batch depends on besides its
 * arguments and the data read at set-up (so a resumed run builds identical
 * batches).
 */
#ifndef BATON_RUNNER_TASK_TOKEN_H
#define BATON_RUNNER_TASK_TOKEN_H

#include "engine/bert.h"
#include "engine/conll.h"
#include "engine/data.h"
#include "engine/entity_f1.h"
#include "engine/metrics.h"
#include "engine/tokenizer.h"
#include "runner/job.h"
#include "runner/predict.h"
#include "runner/task.h"

#include <stddef.h>
#include <stdint.h>

/* One CoNLL file, tokenized, cut into windows and aligned. Example id = row
 * (window) index; a sentence that fits max_seq_len is one row. */
typedef struct {
    bt_conll conll;         /* words, gold tags, sentences (limit applied: n_sents may be cut) */
    size_t n_words;         /* words of the kept sentences (= conll.sent[n_sents]) */
    int32_t *word_ntok;     /* [n_words] sub-tokens of each word */
    size_t n_rows;          /* model inputs: the windows of every sentence, in order */
    int32_t *ids;           /* aligned rows back to back: [CLS] sub-tokens [SEP] */
    int32_t *labels;        /* same shape: label id on the first sub-token of each word the row owns, -100 elsewhere */
    size_t *off;            /* [n_rows + 1] row offsets into ids / labels */
    uint32_t *row_sent;     /* [n_rows] the sentence of each row */
    bt_conll_window *win;   /* [n_rows] the row's words and owned words (sentence-relative) */
    size_t n_split_sents;   /* sentences longer than one window */
    size_t n_long_words;    /* words longer than a window on their own (first pieces only) */
    uint8_t sha256[32];     /* of the file */
} bt_token_set;

/* Buffers of one micro-batch: pointers into a bt_token_set's rows. */
typedef struct {
    int cap;
    const int32_t **ids, **labels;
    int *len;
} bt_token_batcher;

typedef struct {
    bt_token_set train, eval;
    int has_eval;
    int num_labels;            /* = the label list's length */
    int max_seq;
    int overlap;               /* sub-tokens repeated between the windows of a long sentence */
    bt_entity_scheme scheme;   /* valid when has_scheme (BIO/IOBES/... tags) */
    int has_scheme;
    int32_t fill;              /* id given to words without a prediction: "O", else 0 */
    const char *metric;        /* "f1" (entity micro F1), "accuracy" (words) or "loss" */
    bt_token_batcher *micro;   /* [n_micro] one batcher per micro-batch of a step */
    int n_micro;
} bt_token_task;

/* Reads, tokenizes and aligns the job's train (and eval) files with env's
 * tokenizer. cache_dir (may be NULL: no cache) holds the token cache;
 * env->vocab_text keys it. The
 * runner's generic machinery reads the views: train_view / eval_view get the
 * path, n (sentences), label list (heap copies, freed by bt_data_free) and
 * the files' sha256, so the fingerprint, the label check on resume and the
 * evaluation estimate work as for classify. Errors: BT_ECONFIG for keys that
 * do not fit (naming the key), BT_EDATA for malformed data (file:line). */
int bt_task_token_load(bt_token_task *t, const bt_task_env *env, const char *cache_dir, bt_dataset *train_view,
                       bt_dataset *eval_view);
void bt_task_token_free(bt_token_task *t);

/* Evaluates every eval sentence in order, a->batch_size at a time (dropout off).
 * *loss = the mean cross-entropy per labelled token (NAN if none); v[0..*n)
 * (room for 6) = f1, precision, recall (entity level, micro; only with an
 * entity tag scheme) and accuracy (words); *extra = a new json_t * (as void
 * *) {"entities": {TYPE: {"precision","recall","f1","support"}...},
 * "support": gold entities, "words": N} or NULL. a->heartbeat may be NULL;
 * it is called after each batch, and a non-zero return (a stop request; it has
 * called bt_fail) stops the evaluation there with BT_ETEMPFAIL. */
int bt_task_token_evaluate(bt_token_task *t, const bt_task_eval_args *a, double *loss, bt_metric_value *v, int *n,
                           void **extra);

/* `baton predict` with a BertForTokenClassification model directory dir
 * (src names it in messages): input is a CoNLL file (one word per line: the
 * line up to its first TAB, else its first whitespace-separated field; a
 * blank line between sentences; -DOCSTART- skipped; other columns ignored)
 * when conll is 1, else one sentence per line, words split on whitespace.
 * format "tsv": word<TAB>tag per line, a blank line after each sentence;
 * "jsonl": {"words":[...],"tags":[...],"probs":[...]} per sentence; "logits":
 * word<TAB>the logits of its first sub-token (nan for a word without one).
 * A sentence longer than max_len is cut into windows of whole words
 * (bt_conll_windows) repeating overlap sub-tokens (< 0 or >= max_len - 2: a
 * quarter of the window); each word is tagged by the window that owns it.
 * Words without sub-tokens get "O" (else label 0); batch = rows (windows) per
 * forward pass. output NULL: stdout, else written atomically. */
typedef struct {
    const char *dir, *src;       /* the model directory; what the user named (messages) */
    const char *input;           /* a file, or "-" (stdin) */
    int conll;                   /* 1: input is a CoNLL file; 0: one sentence per line */
    const char *output;          /* NULL: stdout */
    const char *format;          /* "tsv", "jsonl", "logits" */
    int batch, max_len, overlap; /* rows per forward pass; window length; sub-tokens repeated between windows */
    int threads;
    const char *device;          /* "cpu", "cuda" */
    const char *table;           /* the input is a table of this format (refused after the model loads), or NULL */
} bt_token_predict_args;
int bt_task_token_predict(const bt_token_predict_args *a);
/* The same for `baton predict`'s request: text (a sentence per line) or
 * CoNLL input; the window overlap: --stride, else training's, else a quarter
 * of a window. */
int bt_task_token_predict_request(const bt_predict_request *r);

#endif
