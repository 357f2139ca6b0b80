/* engine/longdoc.h — long documents: chunking, chunk micro-batches, pooling.
 *
 * Owns: (a) how a document's token ids (no specials) are cut into chunks of
 * W = max_seq_len-2 content tokens overlapping by `stride` tokens (the same
 * boundaries as HF tokenizers' truncation=True, stride=s,
 * return_overflowing_tokens=True), each wrapped [CLS] ... [SEP]; (b) the
 * max_chunks cap (first N, or N evenly spaced including the first and last);
 * (c) an iterator yielding micro-batches of at most C chunks, so the engine
 * can encode a document of any length in bounded memory, keep each chunk's
 * [CLS] vector and pool afterwards; (d) the pooling math over [n_chunks, D]
 * as plain-C reference functions (mean, max, attention), forward and backward,
 * which the kernels are tested against; (e) a deterministic builder of long
 * documents from AG News-style TSV for tests and benchmarks.
 * Must not: tokenize, touch the model, or allocate in the chunking/pooling
 * paths (the caller owns every buffer; shapes are in the comments).
 */
#ifndef BATON_ENGINE_LONGDOC_H
#define BATON_ENGINE_LONGDOC_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/philox.h"

typedef enum {
    BT_LONGDOC_CAP_FIRST = 0, /* keep the first max_chunks chunks (head of the document) */
    BT_LONGDOC_CAP_EVEN = 1,  /* keep max_chunks chunks evenly spaced over the document,
                                 first and last included: chunk floor(i*(K-1)/(N-1)) */
} bt_longdoc_cap;

typedef struct {
    int max_seq_len;   /* S: chunk length with [CLS] and [SEP]; W = S-2 content tokens */
    int stride;        /* overlap in tokens between consecutive chunks, 0 <= stride < W */
    int max_chunks;    /* 0: no cap */
    bt_longdoc_cap cap;
} bt_longdoc_config;

/* BT_ECONFIG with a message when S < 3, stride outside [0, W), max_chunks < 0
 * or an unknown cap. */
int bt_longdoc_config_check(const bt_longdoc_config *c);

/* Chunks of a document of n content tokens before the cap: 1 when n <= W
 * (an empty document is one chunk [CLS] [SEP]), else 1 + ceil((n-W)/(W-stride)). */
size_t bt_longdoc_total_chunks(size_t n, const bt_longdoc_config *c);
/* Chunks kept after the cap: min(total, max_chunks) (or total). */
size_t bt_longdoc_n_chunks(size_t n, const bt_longdoc_config *c);

typedef struct {
    size_t index; /* position among all (uncapped) chunks */
    size_t start; /* first content token */
    int32_t len;  /* content tokens, 0..W */
} bt_longdoc_chunk;

/* The k-th kept chunk (k < bt_longdoc_n_chunks): chunk j covers
 * [j*(W-stride), min(j*(W-stride)+W, n)). */
bt_longdoc_chunk bt_longdoc_chunk_at(size_t n, const bt_longdoc_config *c, size_t k);

/* Micro-batches of chunks of one document. */
typedef struct {
    const int32_t *doc; /* [n] content ids, borrowed */
    size_t n;
    bt_longdoc_config cfg;
    int32_t cls_id, sep_id, pad_id;
    int micro;          /* C: chunks per micro-batch */
    size_t n_chunks;    /* kept chunks */
    size_t next;        /* next kept chunk to emit */
} bt_chunk_iter;

/* micro_chunks >= 1; the config must have passed bt_longdoc_config_check. */
void bt_chunk_iter_init(bt_chunk_iter *it, const int32_t *doc, size_t n, const bt_longdoc_config *c,
                        int micro_chunks, int32_t cls_id, int32_t sep_id, int32_t pad_id);
/* Fills the next micro-batch of m <= C chunks and returns m (0 when done):
 *   ids   [C, S] rows 0..m-1: [CLS] content [SEP] [PAD]...
 *   attn  [C, S] 1 on real tokens, 0 on padding (may be NULL)
 *   lens  [C]    real length of each row, content + 2 (may be NULL)
 *   *first (may be NULL): index among kept chunks of row 0, for placing the
 *   rows' [CLS] vectors into the document's [n_chunks, D] array. */
int bt_chunk_iter_next(bt_chunk_iter *it, int32_t *ids, uint8_t *attn, int32_t *lens, size_t *first);

/* ---- pooling over a document's chunk vectors h [n, D], n >= 1 ----
 * Backward functions overwrite dh and ADD into parameter gradients. Sums run
 * in a fixed order with double accumulators. */
void bt_pool_mean_fwd(const float *h, int n, int d, float *out /*[D]*/);
void bt_pool_mean_bwd(const float *dout /*[D]*/, int n, int d, float *dh /*[n,D]*/);
/* max over chunks per feature; argmax [D] is the first chunk attaining it */
void bt_pool_max_fwd(const float *h, int n, int d, float *out /*[D]*/, int32_t *argmax /*[D]*/);
void bt_pool_max_bwd(const float *dout /*[D]*/, const int32_t *argmax, int n, int d, float *dh /*[n,D]*/);
/* attention pooling: u = tanh(h W^T + b) [n,A], s = u v [n], alpha = softmax(s),
 * out = sum_i alpha_i h_i. Saves u and alpha for the backward pass. */
void bt_pool_attn_fwd(const float *h /*[n,D]*/, int n, int d, const float *w /*[A,D]*/, const float *b /*[A]*/,
                      const float *v /*[A]*/, int a, float *out /*[D]*/, float *u /*[n,A]*/, float *alpha /*[n]*/);
void bt_pool_attn_bwd(const float *h /*[n,D]*/, int n, int d, const float *w /*[A,D]*/, const float *v /*[A]*/,
                      int a, const float *u /*[n,A]*/, const float *alpha /*[n]*/, const float *dout /*[D]*/,
                      float *dh /*[n,D]*/, float *dw /*[A,D] +=*/, float *db /*[A] +=*/, float *dv /*[A] +=*/);

/* ---- long-document builder (tests, benchmarks) ----
 * Reads in_path, TSV `text<TAB>label` without header (AG News dev.tsv), groups
 * the articles by label (labels sorted bytewise), shuffles each class with
 * Philox (stream BT_LONGDOC_BUILD_STREAM, counter (class, i, 0, 0): Fisher-Yates
 * from the end, j = ((v0<<32)|v1) mod (i+1)), and deals each class's shuffled
 * articles into documents of per_doc articles joined by one space (no article
 * is used twice; a class's leftover articles are unused). Documents are
 * ordered round-robin over classes (doc 0 of each class, then doc 1, ...);
 * documents first_doc .. first_doc+n_docs-1 (n_docs 0: all the rest) are
 * written atomically to out_path as `text<TAB>label` lines. Disjoint
 * [first_doc, n_docs) ranges share no article, so they make a clean
 * train/dev split. *written receives the number of documents (may be NULL).
 * tests/reference/make_longdocs.py implements the same, byte for byte. */
#define BT_LONGDOC_BUILD_STREAM BT_STREAM_LONGDOC_BUILD
int bt_longdoc_build_tsv(const char *in_path, const char *out_path, uint64_t seed, int per_doc, size_t first_doc,
                         size_t n_docs, size_t *written);

#endif
