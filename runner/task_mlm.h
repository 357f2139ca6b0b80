/* runner/task_mlm.h — `task = mlm` in the segment loop: corpus -> blocks,
 * masked micro-batches, and the masked-LM evaluation (see docs/tasks.md).
 *
 * Owns: turning the tokenized lines of a data file (rows [CLS] ids [SEP], as
 * the token cache holds them) into the flat corpus and the blocks of
 * engine/mlm.h for the job's grouping; the job keys -> bt_mlm_config mapping;
 * the batches of one micro-step (wrapped blocks masked with the key (seed,
 * epoch, block id)); and the evaluation over the eval blocks with the fixed
 * masks (epoch BT_MLM_EVAL_EPOCH): mean loss per masked token, perplexity.
 * Must not: choose batch order, step the optimizer, or touch archives (the
 * segment loop does); keep state that a batch's content depends on besides
 * its arguments (so a resumed run builds identical batches).
 */
#ifndef BATON_RUNNER_TASK_MLM_H
#define BATON_RUNNER_TASK_MLM_H

#include "engine/bert.h"
#include "engine/data.h"
#include "engine/mlm.h"
#include "engine/tokenizer.h"
#include "runner/job.h"

#include <stddef.h>
#include <stdint.h>

/* A tokenized corpus grouped into blocks. */
typedef struct {
    int32_t *ids;        /* [n_ids] every line's ids without [CLS]/[SEP], back to back */
    uint8_t *cont;       /* [n_ids] 1 = "##" continuation piece (whole-word masking), or NULL */
    size_t n_ids;
    bt_mlm_blocks blocks;/* example id = index into blocks.spans */
} bt_mlm_corpus;

/* Builds the corpus of a data file from its token rows (one row per line,
 * each [CLS] ... [SEP], untruncated). which ("train"/"eval") and path name it
 * in messages. Zero blocks is an error (BT_EDATA) saying how to get some. */
int bt_mlm_corpus_build(const bt_id_table *rows, const bt_tokenizer *tok, const bt_job *job, const char *which,
                        const char *path, bt_mlm_corpus *out);
void bt_mlm_corpus_free(bt_mlm_corpus *c);

/* The masking config of the job: HF 80/10/10, [CLS]/[SEP]/[PAD] never
 * masked, random ids over the tokenizer's vocabulary. model_vocab is the
 * model's embedding rows: a tokenizer vocabulary larger than that, or one
 * without [MASK], is BT_ECONFIG. */
int bt_mlm_job_config(const bt_job *job, const bt_tokenizer *tok, int model_vocab, bt_mlm_config *out);

/* Buffers of one micro-batch (sized once for max_batch x max_seq). */
typedef struct {
    int max_batch, max_seq;
    int32_t *ids, *labels;          /* [max_batch * max_seq] */
    uint8_t *cont;                  /* [max_seq] */
    const int32_t **ids_p, **lab_p; /* [max_batch] */
    int *len;                       /* [max_batch] */
} bt_mlm_batcher;

void bt_mlm_batcher_init(bt_mlm_batcher *b, int max_batch, int max_seq);
void bt_mlm_batcher_free(bt_mlm_batcher *b);

#endif
