/* engine/longdoc_model.h — hierarchical classification of long documents.
 *
 * Owns: the forward/backward of one document through chunks -> encoder ->
 * per-chunk pooled vector -> pooling over chunks -> dropout -> classifier, in
 * memory bounded by the chunk micro-batch (C chunks of S tokens), whatever the
 * document's length; the schedule of that bounded backward (one encoder pass
 * when a document fits in one micro-batch, otherwise a forward pass that keeps
 * only the [n_chunks, D] pooled vectors, then a re-encoding of each
 * micro-batch with the same dropout keys followed by its backward); the
 * document-level head on the host (pooling of engine/longdoc.c, dropout keyed
 * (seed, step, micro, BT_SITE_DOC_CLASSIFIER), the classifier of the model:
 * classifier.weight [C,D], classifier.bias [C]); and the dropout micro ids:
 * document i of trainer micro-batch k uses chunk micro-batch ids
 * k*2^20 + (running count over that micro-batch's documents), its head
 * dropout micro id k*2^20 + i.
 * Must not: read data, tokenize (the caller passes content ids without
 * specials), step the optimizer, or allocate per chunk (buffers grow with the
 * longest document seen, [n_chunks, D] floats).
 *
 * Model: a bt_bert of task BT_TASK_SEQ_CLS with max_batch >= C and max_seq =
 * S, created with doc_attn_dim = A for attention pooling. The per-chunk
 * vector is the pooler output tanh(W_p h_[CLS] + b_p), as in
 * BertForSequenceClassification. With mean pooling the classifier commutes
 * with the mean, so an exported BertForSequenceClassification that averages
 * its chunk logits gives the same document logits.
 */
#ifndef BATON_ENGINE_LONGDOC_MODEL_H
#define BATON_ENGINE_LONGDOC_MODEL_H

#include "engine/bert.h"
#include "engine/longdoc.h"

#include <stddef.h>
#include <stdint.h>

typedef enum { BT_DOC_POOL_MEAN = 0, BT_DOC_POOL_MAX = 1, BT_DOC_POOL_ATTN = 2 } bt_doc_pool;

typedef struct {
    bt_longdoc_config chunk; /* S, stride, max_chunks, cap */
    int chunk_batch;         /* C: chunks per encoder pass, 1 <= C <= the model's max_batch */
    bt_doc_pool pool;
    int32_t cls_id, sep_id, pad_id;
    uint64_t seed;           /* the job's seed: keys the document-head dropout */
} bt_longdoc_opts;

typedef struct bt_longdoc bt_longdoc;

/* m must be SEQ_CLS, single-label, with doc_attn_dim > 0 iff pool = ATTN.
 * The long-document model does not own m. */
int bt_longdoc_create(bt_bert *m, const bt_longdoc_opts *o, bt_longdoc **out);
void bt_longdoc_free(bt_longdoc *ld);

/* One trainer micro-batch of n documents: doc[i][0..len[i]) content ids,
 * label[i] class ids. Adds gradients of (mean CE over the n documents) x
 * grad_scale; *loss = that mean (unscaled). k: the trainer's micro-batch index. */
int bt_longdoc_forward_backward(bt_longdoc *ld, const int32_t *const *doc, const size_t *len, const int32_t *label,
                                int n, float grad_scale, uint32_t step, uint32_t k, float *loss);

/* Inference on one document: logits [C] (dropout off). */
int bt_longdoc_logits(bt_longdoc *ld, const int32_t *doc, size_t len, float *logits);

/* Chunks a document of len content tokens is encoded as (after the cap). */
size_t bt_longdoc_doc_chunks(const bt_longdoc *ld, size_t len);

#endif
