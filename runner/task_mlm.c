/* runner/task_mlm.c — `task = mlm` corpus, batches and evaluation (see task_mlm.h).
 *
 * Owns: the glue between the job, the token rows and engine/mlm.c.
 * Must not: make any random draw of its own (masks come from bt_mlm_mask only,
 * keyed by (seed, epoch, block id)) or depend on batch composition.
 */
#include "runner/task_mlm.h"

#include "util/err.h"
#include "util/mem.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int bt_mlm_corpus_build(const bt_id_table *rows, const bt_tokenizer *tok, const bt_job *job, const char *which,
                        const char *path, bt_mlm_corpus *out)
{
    memset(out, 0, sizeof *out);
    size_t n_lines = (size_t)rows->n_rows;
    size_t total = 0;
    for (size_t i = 0; i < n_lines; i++) {
        uint64_t len = rows->off[i + 1] - rows->off[i];
        if (len < 2)
            return bt_fail(BT_EINTERNAL, "%s: line %zu has %llu token ids; a tokenized line has at least [CLS] and [SEP]",
                           path, i + 1, (unsigned long long)len);
        total += (size_t)len - 2;
    }
    size_t *line_off = bt_xmalloc((n_lines + 1) * sizeof *line_off);
    out->ids = bt_xmalloc((total ? total : 1) * sizeof *out->ids);
    size_t used = 0;
    line_off[0] = 0;
    for (size_t i = 0; i < n_lines; i++) {
        size_t len = (size_t)(rows->off[i + 1] - rows->off[i]) - 2;
        memcpy(out->ids + used, rows->ids + rows->off[i] + 1, len * sizeof *out->ids);
        used += len;
        line_off[i + 1] = used;
    }
    out->n_ids = total;
    if (job->data.whole_word_mask) {
        /* "##" pieces continue a word (as HF DataCollatorForWholeWordMask) */
        size_t V = bt_tokenizer_vocab_size(tok);
        uint8_t *is_cont_id = bt_xcalloc(V ? V : 1, 1);
        for (size_t v = 0; v < V; v++) {
            const char *t = bt_tokenizer_id_to_token(tok, (int32_t)v);
            is_cont_id[v] = t && t[0] == '#' && t[1] == '#' && t[2];
        }
        out->cont = bt_xmalloc(total ? total : 1);
        for (size_t k = 0; k < total; k++)
            out->cont[k] = out->ids[k] >= 0 && (size_t)out->ids[k] < V ? is_cont_id[out->ids[k]] : 0;
        free(is_cont_id);
    }
    bt_mlm_grouping g = job->data.mlm_grouping == BT_JOB_MLM_LINE ? BT_MLM_GROUP_LINE : BT_MLM_GROUP_CONCAT;
    int rc = bt_mlm_make_blocks(g, line_off, n_lines, (int)job->data.max_seq_len, 0, &out->blocks);
    free(line_off);
    if (rc) {
        bt_mlm_corpus_free(out);
        return bt_fail_context(rc, "%s data %s", which, path);
    }
    if (out->blocks.n == 0) {
        long long w = (long long)job->data.max_seq_len - 2;
        rc = g == BT_MLM_GROUP_CONCAT
                 ? bt_fail(BT_EDATA, "%s: the %s data has %zu tokens in %zu lines, fewer than one block of "
                                     "max_seq_len - 2 = %lld tokens (the short remainder is dropped, as HF group_texts); "
                                     "use more data, a smaller [data] max_seq_len, or mlm_grouping = line",
                           path, which, total, n_lines, w)
                 : bt_fail(BT_EDATA, "%s: the %s data has no line with a token; check the file and [data] text_column",
                           path, which);
        bt_mlm_corpus_free(out);
        return rc;
    }
    if (out->blocks.n > UINT32_MAX) {
        size_t n = out->blocks.n;
        bt_mlm_corpus_free(out);
        return bt_fail(BT_EDATA, "%s: %zu %s blocks: at most %u are supported; use limit_%s or a larger max_seq_len",
                       path, n, which, UINT32_MAX, which);
    }
    return BT_OK;
}

void bt_mlm_corpus_free(bt_mlm_corpus *c)
{
    free(c->ids);
    free(c->cont);
    bt_mlm_blocks_free(&c->blocks);
    memset(c, 0, sizeof *c);
}

int bt_mlm_job_config(const bt_job *job, const bt_tokenizer *tok, int model_vocab, bt_mlm_config *out)
{
    bt_special_ids sp = bt_tokenizer_special_ids(tok);
    size_t V = bt_tokenizer_vocab_size(tok);
    if (sp.mask < 0)
        return bt_fail(BT_ECONFIG, "[job] task = mlm: the model's vocab.txt has no [MASK] token; "
                                   "use a model whose vocabulary has one");
    if (V > (size_t)model_vocab)
        return bt_fail(BT_ECONFIG, "[job] task = mlm: vocab.txt has %zu tokens but the model has %d embedding rows; "
                                   "the vocabulary and config.json vocab_size must agree", V, model_vocab);
    *out = bt_mlm_config_default((int32_t)V, sp.mask, sp.cls, sp.sep, sp.pad);
    out->probability = (float)job->data.mlm_probability;
    out->whole_word = job->data.whole_word_mask;
    return bt_mlm_config_check(out);
}

void bt_mlm_batcher_init(bt_mlm_batcher *b, int max_batch, int max_seq)
{
    memset(b, 0, sizeof *b);
    b->max_batch = max_batch;
    b->max_seq = max_seq;
    size_t n = (size_t)max_batch * (size_t)max_seq;
    b->ids = bt_xmalloc(n * sizeof *b->ids);
    b->labels = bt_xmalloc(n * sizeof *b->labels);
    b->cont = bt_xmalloc((size_t)max_seq);
    b->ids_p = bt_xcalloc((size_t)max_batch, sizeof *b->ids_p);
    b->lab_p = bt_xcalloc((size_t)max_batch, sizeof *b->lab_p);
    b->len = bt_xcalloc((size_t)max_batch, sizeof *b->len);
}

void bt_mlm_batcher_free(bt_mlm_batcher *b)
{
    free(b->ids); free(b->labels); free(b->cont); free(b->ids_p); free(b->lab_p); free(b->len);
    memset(b, 0, sizeof *b);
}

int bt_mlm_batch(bt_mlm_batcher *b, const bt_mlm_corpus *c, const bt_mlm_config *cfg, uint64_t seed, uint32_t epoch,
                 const uint32_t *idx, int n, bt_batch *out)
{
    int masked = 0;
    for (int i = 0; i < n; i++) {
        bt_mlm_span sp = c->blocks.spans[idx[i]];
        int32_t *ids = b->ids + (size_t)i * (size_t)b->max_seq;
        int32_t *lab = b->labels + (size_t)i * (size_t)b->max_seq;
        /* spans hold at most max_seq - 2 tokens (bt_mlm_make_blocks) */
        int len = bt_mlm_wrap(c->ids, c->cont, sp, cfg->cls_id, cfg->sep_id, ids, cfg->whole_word ? b->cont : NULL);
        masked += bt_mlm_mask(cfg, seed, epoch, idx[i], ids, cfg->whole_word ? b->cont : NULL, len, lab);
        b->ids_p[i] = ids;
        b->lab_p[i] = lab;
        b->len[i] = len;
    }
    memset(out, 0, sizeof *out);
    out->n = n;
    out->ids = b->ids_p;
    out->len = b->len;
    out->token_labels = b->lab_p;
    return masked;
}

int bt_mlm_evaluate(bt_bert *m, const bt_mlm_corpus *c, const bt_mlm_config *cfg, uint64_t seed, int batch_size,
                    int max_seq, int (*heartbeat)(void *), void *hb_ctx, double *mean_loss, int64_t *n_masked)
{
    bt_mlm_batcher b;
    bt_mlm_batcher_init(&b, batch_size, max_seq);
    uint32_t *idx = bt_xmalloc((size_t)batch_size * sizeof *idx);
    double sum = 0;
    int64_t nm = 0;
    int rc = BT_OK;
    for (size_t start = 0; start < c->blocks.n; start += (size_t)batch_size) {
        int n = (int)(c->blocks.n - start < (size_t)batch_size ? c->blocks.n - start : (size_t)batch_size);
        for (int i = 0; i < n; i++) idx[i] = (uint32_t)(start + (size_t)i);
        bt_batch batch;
        int k = bt_mlm_batch(&b, c, cfg, seed, BT_MLM_EVAL_EPOCH, idx, n, &batch);
        if (k > 0) {
            float loss = 0;
            rc = bt_bert_eval(m, &batch, &loss, NULL);
            if (rc) break;
            sum += (double)loss * (double)k;
            nm += k;
        }
        if (heartbeat && heartbeat(hb_ctx)) {
            rc = BT_ETEMPFAIL;
            break;
        }
    }
    free(idx);
    bt_mlm_batcher_free(&b);
    if (rc) return rc;
    *mean_loss = nm > 0 ? sum / (double)nm : NAN;
    if (n_masked) *n_masked = nm;
    return BT_OK;
}

int64_t bt_mlm_count_eval_masked(const bt_mlm_corpus *c, const bt_mlm_config *cfg, uint64_t seed, int max_seq)
{
    bt_mlm_batcher b;
    bt_mlm_batcher_init(&b, 1, max_seq);
    int64_t nm = 0;
    for (size_t i = 0; i < c->blocks.n; i++) {
        uint32_t id = (uint32_t)i;
        bt_batch batch;
        nm += bt_mlm_batch(&b, c, cfg, seed, BT_MLM_EVAL_EPOCH, &id, 1, &batch);
    }
    bt_mlm_batcher_free(&b);
    return nm;
}
