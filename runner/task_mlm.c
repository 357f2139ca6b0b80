/* runner/task_mlm.c — `task = mlm`: corpus, batches and evaluation (see
 * task_mlm.h), and its entry of the task interface (runner/task.h).
 *
 * Owns: the glue between the job, the token rows and engine/mlm.c: lines
 * become blocks, masked per (seed, epoch, block); the family's *ForMaskedLM
 * (BertForMaskedLM, RobertaForMaskedLM, ..., ElectraForMaskedLM) in
 * config.json; evaluation by loss per masked token and perplexity with fixed
 * evaluation masks.
 * Must not: make any random draw of its own (masks come from bt_mlm_mask only,
 * keyed by (seed, epoch, block id)) or depend on batch composition.
 */
#include "runner/task_mlm.h"
#include "runner/task.h"
#include "runner/task_text.h"

#include "util/err.h"
#include "util/log.h"
#include "util/mem.h"

#include <jansson.h>
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
        if (!bt_tokenizer_is_wordpiece(tok)) { /* byte-level BPE (RoBERTa: "Ġ" starts a word), Unigram ("▁") */
            free(line_off);
            bt_mlm_corpus_free(out);
            return bt_fail(BT_ECONFIG, "[data] whole_word_mask = true needs a WordPiece vocabulary (\"##\" pieces "
                                       "continue a word); this tokenizer is not WordPiece (byte-level BPE or "
                                       "Unigram marks word starts instead), so whole words cannot be found: set "
                                       "whole_word_mask = false");
        }
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

/* What masks a block: the corpus, the masking settings and the job's seed. */
typedef struct {
    const bt_mlm_corpus *c;
    const bt_mlm_config *cfg;
    uint64_t seed;
} mlm_masker;

/* Blocks idx[0..n) wrapped in [CLS]/[SEP] and masked for epoch (masks keyed
 * by (seed, epoch, block)); returns the masked tokens. */
static int mlm_batch(bt_mlm_batcher *b, const mlm_masker *mk, uint32_t epoch, const uint32_t *idx, int n,
                     bt_batch *out)
{
    const bt_mlm_corpus *c = mk->c;
    const bt_mlm_config *cfg = mk->cfg;
    int masked = 0;
    for (int i = 0; i < n; i++) {
        bt_mlm_span sp = c->blocks.spans[idx[i]];
        int32_t *ids = b->ids + (size_t)i * (size_t)b->max_seq;
        int32_t *lab = b->labels + (size_t)i * (size_t)b->max_seq;
        /* spans hold at most max_seq - 2 tokens (bt_mlm_make_blocks) */
        int len = bt_mlm_wrap(c->ids, c->cont, sp, cfg->cls_id, cfg->sep_id, ids, cfg->whole_word ? b->cont : NULL);
        masked += bt_mlm_mask(cfg, mk->seed, epoch, idx[i], ids, cfg->whole_word ? b->cont : NULL, len, lab);
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

/* Mean loss per masked token over every eval block with the fixed eval masks. */
static int mlm_evaluate(const mlm_masker *mk, const bt_task_eval_args *a, int max_seq, double *mean_loss,
                        int64_t *n_masked)
{
    const bt_mlm_corpus *c = mk->c;
    int bs = a->batch_size;
    bt_mlm_batcher b;
    bt_mlm_batcher_init(&b, bs, max_seq);
    uint32_t *idx = bt_xmalloc((size_t)bs * sizeof *idx);
    double sum = 0;
    int64_t nm = 0;
    int rc = BT_OK;
    for (size_t start = 0; start < c->blocks.n && rc == BT_OK; start += (size_t)bs) {
        int n = (int)(c->blocks.n - start < (size_t)bs ? c->blocks.n - start : (size_t)bs);
        for (int i = 0; i < n; i++) idx[i] = (uint32_t)(start + (size_t)i);
        bt_batch batch;
        int k = mlm_batch(&b, mk, BT_MLM_EVAL_EPOCH, idx, n, &batch);
        if (k > 0) {
            float loss = 0;
            rc = bt_bert_eval(a->model, &batch, &loss, NULL);
            if (rc) break;
            sum += (double)loss * (double)k;
            nm += k;
        }
        if (a->heartbeat && a->heartbeat(a->hb_ctx)) rc = BT_ETEMPFAIL;
    }
    free(idx);
    bt_mlm_batcher_free(&b);
    if (rc) return rc;
    *mean_loss = nm > 0 ? sum / (double)nm : NAN;
    *n_masked = nm;
    return BT_OK;
}

/* Tokens the fixed evaluation masks select (0: no perplexity to measure). */
static int64_t count_eval_masked(const mlm_masker *mk, int max_seq)
{
    bt_mlm_batcher b;
    bt_mlm_batcher_init(&b, 1, max_seq);
    int64_t nm = 0;
    for (size_t i = 0; i < mk->c->blocks.n; i++) {
        uint32_t id = (uint32_t)i;
        bt_batch batch;
        nm += mlm_batch(&b, mk, BT_MLM_EVAL_EPOCH, &id, 1, &batch);
    }
    bt_mlm_batcher_free(&b);
    return nm;
}

/* ------------------------------------------------- the task interface */

typedef struct {
    bt_text_data d;              /* the lines (their token rows are freed once the blocks exist) */
    bt_mlm_corpus train, eval;
    bt_mlm_config cfg;
    bt_mlm_batcher *mbs;         /* [grad_accum] */
    bt_batch *micro;             /* [grad_accum] */
    int n_mbs;
} mlm_task;

static const char *const mlm_metrics[] = {"perplexity", "loss", NULL};

static int mlm_check_job(const bt_job *j)
{
    int rc = bt_text_check_job(j);
    if (rc) return rc;
    if (!(j->data.mlm_probability > 0))
        return bt_job_key_error(j, BT_ECONFIG, "data", "mlm_probability", "task mlm needs a probability above 0 "
                                                                         "(0 masks nothing; HF default 0.15)");
    if (j->data.text_pair_column && j->data.text_pair_column[0])
        return bt_job_key_error(j, BT_ECONFIG, "data", "text_pair_column", "task mlm reads one text per example; "
                                                                          "remove text_pair_column");
    return BT_OK;
}

/* The lines become blocks; the token rows are not needed any more. */
static int build_corpora(mlm_task *M, const bt_task_env *env, bt_task_state *t)
{
    const bt_job *job = t->job;
    int rc = bt_mlm_corpus_build(&M->d.train.tokens, env->tok, job, "train", job->data.train, &M->train);
    if (!rc && M->d.has_eval)
        rc = bt_mlm_corpus_build(&M->d.eval.tokens, env->tok, job, "eval", M->d.eval.path, &M->eval);
    bt_id_table_free(&M->d.train.tokens);
    bt_id_table_free(&M->d.eval.tokens);
    if (rc) return rc;
    t->n_train = M->train.blocks.n;
    t->n_eval = M->d.has_eval ? M->eval.blocks.n : 0;
    bt_info("mlm: %zu training blocks from %zu lines (%zu tokens)%s", M->train.blocks.n, M->d.train.n,
            M->train.n_ids, M->d.has_eval ? "" : ", no evaluation data");
    return BT_OK;
}

static int mlm_load(bt_task_state *t, const bt_task_env *env)
{
    mlm_task *M = bt_xcalloc(1, sizeof *M);
    t->impl = M;
    const bt_job *job = t->job;
    int rc = bt_mlm_job_config(job, env->tok, env->mcfg->vocab_size, &M->cfg);
    if (!rc) rc = bt_text_load(&M->d, t, env, "mlm"); /* whole lines: the grouping cuts them */
    if (!rc) rc = build_corpora(M, env, t);
    if (rc) return rc;
    /* a masked LM: no label map and no classification problem type in config.json */
    bt_model_config_set_problem_type(env->mcfg, BT_PROBLEM_NONE);
    char arch[64]; /* the family's class (RobertaForMaskedLM, DistilBertForMaskedLM, ...) */
    bt_model_config_set_architecture(env->mcfg, bt_model_type_arch(env->mcfg->model_type, "MaskedLM", arch,
                                                                   sizeof arch));
    mlm_masker mk = {&M->eval, &M->cfg, (uint64_t)job->job.seed};
    if (M->d.has_eval && count_eval_masked(&mk, (int)job->data.max_seq_len) == 0)
        return bt_fail(BT_EDATA, "%s: the fixed evaluation masks select no token in its %zu blocks, so there is "
                                 "no perplexity to measure; use more evaluation data or a higher [data] "
                                 "mlm_probability", t->eval_name, M->eval.blocks.n);
    t->model.task = BT_TASK_MLM;
    t->unit = t->eval_unit = "blocks";
    bt_task_set_metric(t, job->train.metric == BT_JOB_METRIC_LOSS ? "loss" : "perplexity");
    return BT_OK;
}

static int mlm_step(bt_task_state *t, bt_trainer *tr, const bt_task_step_args *a, bt_step_info *info)
{
    mlm_task *M = t->impl;
    const bt_job *job = t->job;
    if (!M->mbs) {
        M->n_mbs = (int)job->train.grad_accum;
        M->mbs = bt_xcalloc((size_t)M->n_mbs, sizeof *M->mbs);
        M->micro = bt_xcalloc((size_t)M->n_mbs, sizeof *M->micro);
        for (int i = 0; i < M->n_mbs; i++) bt_mlm_batcher_init(&M->mbs[i], a->batch_size, (int)job->data.max_seq_len);
    }
    mlm_masker mk = {&M->train, &M->cfg, (uint64_t)job->job.seed};
    for (int k = 0; k < a->n_micro; k++) /* masks keyed by the epoch the batch belongs to */
        mlm_batch(&M->mbs[k], &mk, a->epoch, a->idx + (size_t)k * (size_t)a->batch_size, a->n[k], &M->micro[k]);
    return bt_train_step(tr, M->micro, a->n_micro, info);
}

/* Mean loss per masked token with the fixed eval masks, and perplexity. */
static int mlm_eval(bt_task_state *t, const bt_task_eval_args *a, bt_task_eval *r)
{
    mlm_task *M = t->impl;
    mlm_masker mk = {&M->eval, &M->cfg, (uint64_t)t->job->job.seed};
    int64_t nm = 0;
    int rc = mlm_evaluate(&mk, a, (int)t->job->data.max_seq_len, &r->loss, &nm);
    if (rc) return rc;
    r->v[r->n++] = (bt_metric_value){"perplexity", bt_metric_perplexity(r->loss)};
    r->extra = json_pack("{s:I}", "masked_tokens", (json_int_t)nm);
    return BT_OK;
}

static void mlm_free(bt_task_state *t)
{
    mlm_task *M = t->impl;
    if (!M) return;
    for (int i = 0; i < M->n_mbs; i++) bt_mlm_batcher_free(&M->mbs[i]);
    free(M->mbs);
    free(M->micro);
    bt_mlm_corpus_free(&M->train);
    bt_mlm_corpus_free(&M->eval);
    bt_text_free(&M->d);
    free(M);
}

const bt_task_ops bt_task_mlm = {
    .name = "mlm", .metrics = mlm_metrics, .check_job = mlm_check_job, .load = mlm_load,
    .step = mlm_step, .evaluate = mlm_eval, .free = mlm_free,
    .head = "ForMaskedLM",
    .no_predict = "masked-LM checkpoint (task = mlm, BertForMaskedLM): it has no classifier to predict with; export "
                  "it (baton export) and fine-tune that directory with task = classify",
};
