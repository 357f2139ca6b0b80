/* engine/bert.c — BERT forward/backward and heads on a bt_backend (see bert.h).
 *
 * Owns: the parameter table and its single allocation, the activation arena,
 * batch staging (padding to the longest sequence), the op sequence, losses.
 * Must not: call backend functions except through be->op, include
 * engine/model_config.h (see init.h), or hold optimizer state.
 *
 * Shapes: B examples, S tokens (longest in the batch), N = B*S rows, D hidden,
 * H heads, Dh = D/H, I intermediate, V vocab, C labels, L layers.
 *
 * Forward (post-LN, as HF BertModel):
 *   e      = word[ids] + pos[s] + type[tt]                  [N,E]  (emb_h; E = D but for ELECTRA)
 *   x0     = dropout(LN(e))                                  [N,D]
 *            ELECTRA with E != D: x0 = dropout(LN(e)) Wproj^T + bproj (embx [N,E])
 *   per layer l, x = x_l:
 *     qkv  = x Wqkv^T + bqkv                                 [N,3D] = [B,S,3,H,Dh]
 *     ctx  = attention(qkv, mask)  (probs saved)             [N,D]
 *     h1   = dropout(ctx Wo^T + bo) + x ; a = LN1(h1)        [N,D]
 *     pre  = a Wi^T + bi ; act = f(pre)                      [N,I]
 *     h2   = dropout(act Wf^T + bf) + a ; x_{l+1} = LN2(h2)  [N,D]
 *   SEQ_CLS : cls = x_L[b*S] ; pooled = tanh(cls Wp^T + bp) ; logits = dropout(pooled) Wc^T + bc  [B,C]
 *   TOKEN   : logits = dropout(x_L) Wc^T + bc                                       [N,C]
 *   MLM     : t = LN(f(x_L Wt^T + bt)) ; logits = t[masked] Wword^T + bias          [M,V]
 *             (t [N,E]: Wt [E,D], the decoder tied to word [V,E]; f = hidden_act, ELECTRA's gelu)
 * Backward is the same sequence reversed; every parameter gradient is
 * ACCUMULATED (+=), so micro-batches add up without copies.
 *
 * Precision (bt_precision; docs/engine.md has the table). rdt is the GEMMs'
 * operand dtype: F32, or F16/BF16 for mixed precision, where, as under
 * torch.autocast, the GEMM outputs (qkv, ctx's projections, pre/act, pooler,
 * logits) and the activation gradients between GEMMs are 16-bit, the
 * residual stream (x, h1, a, h2), LayerNorm, softmax, losses and every
 * parameter gradient F32. F32 activations a GEMM reads are cast into the
 * 16-bit scratch xr first; the GEMMs read a 16-bit copy of the weights (wr),
 * refreshed from the F32 masters before a forward after they changed. With
 * rdt = F32 none of this exists and the op sequence is the fp32 one.
 */
#include "kernels/backend.h"
#include "engine/bert.h"
#include "engine/model_weights.h"
#include "engine/model_dir.h"
#include "kernels/half.h"
#include "state/safetensors.h"
#include "util/err.h"
#include "util/file.h"
#include "util/log.h"
#include "util/mem.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert((int)BT_BERT_ACT_GELU == (int)BT_ACT_GELU_ERF, "init.h activation values must match backend.h");
_Static_assert((int)BT_BERT_ACT_GELU_TANH == (int)BT_ACT_GELU_TANH, "init.h activation values must match backend.h");
_Static_assert((int)BT_BERT_ACT_RELU == (int)BT_ACT_RELU, "init.h activation values must match backend.h");

#define ALIGNF 16 /* floats: 64-byte alignment of every storage tensor */
#define MAX_PARAMS_PER_LAYER 16

typedef struct { size_t wqkv, bqkv, wo, bo, g1, b1, wi, bi, wf, bf, g2, b2; } layer_off;

/* Saved activations of one encoder layer (void *: of dtype rdt). With
 * recompute, layers share some of them (layout_arena). */
typedef struct {
    void *qkv;    /* [N,3D] rdt */
    void *ctx;    /* [N,D] rdt */
    float *probs; /* [B,H,S,S], NULL unless the backend's backward reads them (keep_probs) */
    float *lse;   /* [B,H,S] (NULL in inference) */
    void *pos;    /* DeBERTa: [2k,3D] rdt, the relative embeddings through this layer's q|k|v projection */
    void *reld;   /* DeBERTa: [2k,D] rdt, the relative embeddings as the projection read them (dropout, cast) */
    float *h1;    /* [N,D] residual sum before LN1 */
    float *m1, *r1; /* [N] */
    float *a;     /* [N,D] LN1 output */
    void *pre;    /* [N,I] rdt before the activation */
    void *act;    /* [N,I] rdt after; reused as d(pre) in backward */
    float *h2;    /* [N,D] */
    float *m2, *r2; /* [N] */
} layer_act;

struct bt_bert {
    bt_backend *be;
    bt_device dev;
    bt_bert_config cfg;
    bt_task task;
    int C;            /* logits columns: num_labels, or V for MLM, D for encoder */
    int max_B, max_S, training;
    bt_recompute recompute; /* NONE unless training */
    int keep_probs;   /* training and the backend's attention backward reads probabilities at max_S */
    size_t probs_bytes; /* of the arena: kept attention probabilities */
    uint64_t seed;
    int heads_init;
    bt_precision prec;
    bt_dtype rdt;     /* GEMM operands and 16-bit activations: F32, F16 or BF16 */
    size_t resz;      /* bytes per rdt element */
    void *wr;         /* [total] rdt copy of the parameters for the GEMMs (NULL when rdt is F32) */
    int wr_stale;     /* wr must be refreshed from params before the next forward */

    bt_bert_param *tab;
    size_t ntab, cap;
    size_t total;     /* floats in the parameter allocation */
    float *params, *grads;

    size_t o_word, o_pos, o_type, o_eg, o_eb;
    int has_proj;     /* ELECTRA, embedding_size != hidden_size: embeddings_project [D,E] + [D] */
    size_t o_jw, o_jb;
    int has_pos, has_type; /* absolute position / token-type tables (DistilBERT: no types; DeBERTa: per config) */
    size_t o_rel, o_rg, o_rb; /* DeBERTa: encoder.rel_embeddings [2k,D], encoder.LayerNorm (when rel_norm) */
    layer_off *lo;
    int has_pooler, has_cls, has_mlm;
    size_t o_pw, o_pb, o_cw, o_cb, o_tw, o_tb, o_tg, o_tbeta, o_mbias;
    int doc_attn;     /* A > 0: doc_pooler.* parameters (long-document attention pooling) */
    size_t o_dw, o_db, o_dv;

    int freeze_emb, freeze_layers;
    size_t o_heads;   /* the first float after the encoder layers: pooler and heads from here to total */
    bt_grads_ready_fn ready_fn; /* bt_bert_set_grads_ready (NULL: none) */
    void *ready_ctx;

    /* activation arena (one allocation) */
    void *arena;
    size_t arena_bytes;
    int32_t *ids, *pos, *tt, *mask, *rows, *lab, *mrows; /* [N] each ([B] rows) */
    float *targ;      /* [B,C] */
    float *emb_h, *emb_mean, *emb_rstd; /* [N,E], [N], [N] */
    float *embx;      /* has_proj: [N,E] the embeddings' LayerNorm + dropout, embeddings_project's input */
    void *embr;       /* has_proj, 16-bit: [N,E] rdt cast of embx */
    float *demb, *demb2; /* has_proj, training: [N,E] d(embx), d(e) */
    float *ztype, *dztype; /* DistilBERT: [1,D] zero token-type row and its discarded gradient (no parameter) */
    int32_t *relidx;  /* DeBERTa: [2 max_S - 1] rel_embeddings row of delta = i - j + max_S - 1 */
    float *reln, *rel_mean, *rel_rstd; /* DeBERTa: [2k,D] LayerNorm'ed rel_embeddings, [2k] statistics */
    float *drel;      /* DeBERTa (training): [2k,D] gradient of reln summed over the layers */
    float *dreld;     /* DeBERTa (training): [2k,D] one layer's share of it; the rel LayerNorm's dh */
    void *dpos;       /* DeBERTa (training): [2k,3D] rdt gradient of a layer's pos */
    float **x;        /* x[0..L] [N,D] */
    layer_act *la;
    float *cls;       /* [B,D] gathered [CLS] rows */
    void *ppre, *pooled, *pd; /* [B,D] rdt */
    float *xd;        /* [N,D] token-cls dropout output */
    void *tpre, *tact; /* MLM transform [N,D] rdt */
    float *t, *tmean, *trstd, *tm; /* MLM LayerNorm [N,D] / [N], gathered rows [M,D] */
    void *logits, *dlogits; /* [rows, C] rdt */
    float *loss;      /* [1] */
    void *xr;         /* [N,D] rdt: cast of an F32 activation a GEMM reads (16-bit only) */
    void *proj;       /* [N,D] rdt: a layer's output projection before its LN (16-bit only) */
    void *clsr;       /* [B,D] rdt: cast of cls for the pooler (16-bit only) */
    /* backward temporaries: dX, dH, dA, dB3 F32; dP, dC, dI, dQKV, dB1, dB2 rdt */
    float *dX, *dH, *dA, *dB3, *gscratch;
    void *dP, *dC, *dI, *dQKV, *dB1, *dB2;

    /* batch state */
    int B, S, nm;     /* current batch dims, masked rows (MLM) */
    int pooled_ready; /* a training bt_bert_encode_pooled ran; its activations are live */
    int32_t *h_ids, *h_pos, *h_tt, *h_mask, *h_rows, *h_lab, *h_mrows;
    float *h_targ;
    float *h_out;     /* host scratch for logits */
    size_t h_out_cap;
    uint16_t *h_raw;  /* host scratch for 16-bit downloads / uploads */
    size_t h_raw_cap;
};

/* ---------------------------------------------------------------- table */

static size_t add_param(bt_bert *m, size_t *cursor, int ndim, int64_t s0, int64_t s1, int part, int no_decay,
                        const char *fmt, ...) __attribute__((format(printf, 8, 9)));
static size_t add_param(bt_bert *m, size_t *cursor, int ndim, int64_t s0, int64_t s1, int part, int no_decay,
                        const char *fmt, ...)
{
    if (m->ntab == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 64;
        m->tab = bt_xrealloc(m->tab, m->cap * sizeof *m->tab);
    }
    bt_bert_param *p = &m->tab[m->ntab++];
    memset(p, 0, sizeof *p);
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    p->name = bt_xstrdup(buf);
    p->ndim = ndim;
    p->shape[0] = s0;
    p->shape[1] = ndim == 2 ? s1 : 0;
    p->numel = (size_t)s0 * (ndim == 2 ? (size_t)s1 : 1);
    p->off = *cursor;
    p->part = part;
    p->no_decay = no_decay;
    *cursor += p->numel;
    return p->off;
}

static size_t align_up(size_t x) { return (x + ALIGNF - 1) / ALIGNF * ALIGNF; }

/* E: the embedding tables' width (ELECTRA's embedding_size; D otherwise). */
static int64_t emb_width(const bt_bert_config *c) { return c->emb > 0 ? c->emb : c->hidden; }

static void build_table(bt_bert *m)
{
    const bt_bert_config *c = &m->cfg;
    int64_t V = c->vocab, D = c->hidden, I = c->inter, P = c->max_pos, T = c->type_vocab, E = emb_width(c);
    size_t cur = 0;
#define ALIGN() (cur = align_up(cur))
    m->o_word = add_param(m, &cur, 2, V, E, BT_PART_EMBED, 0, "embeddings.word_embeddings.weight"); ALIGN();
    m->has_pos = c->abs_pos; /* DeBERTa-v3: none */
    m->has_type = c->family != BT_FAMILY_DISTILBERT && T > 0; /* DistilBERT: none; DeBERTa: type_vocab_size 0 */
    if (m->has_pos) {
        m->o_pos = add_param(m, &cur, 2, P, E, BT_PART_EMBED, 0, "embeddings.position_embeddings.weight"); ALIGN();
    }
    if (m->has_type) {
        m->o_type = add_param(m, &cur, 2, T, E, BT_PART_EMBED, 0, "embeddings.token_type_embeddings.weight"); ALIGN();
    }
    m->o_eg = add_param(m, &cur, 1, E, 0, BT_PART_EMBED, 1, "embeddings.LayerNorm.weight"); ALIGN();
    m->o_eb = add_param(m, &cur, 1, E, 0, BT_PART_EMBED, 1, "embeddings.LayerNorm.bias"); ALIGN();
    m->has_proj = E != D;
    if (m->has_proj) { /* ELECTRA's embeddings_project: trained, frozen and decayed with the embeddings */
        m->o_jw = add_param(m, &cur, 2, D, E, BT_PART_EMBED, 0, "embeddings_project.weight"); ALIGN();
        m->o_jb = add_param(m, &cur, 1, D, 0, BT_PART_EMBED, 1, "embeddings_project.bias"); ALIGN();
    }
    if (c->family == BT_FAMILY_DEBERTA) { /* shared by every layer; frozen with the embeddings */
        m->o_rel = add_param(m, &cur, 2, 2 * (int64_t)c->rel_span, D, BT_PART_EMBED, 0, "encoder.rel_embeddings.weight");
        ALIGN();
        if (c->rel_norm) {
            m->o_rg = add_param(m, &cur, 1, D, 0, BT_PART_EMBED, 1, "encoder.LayerNorm.weight"); ALIGN();
            m->o_rb = add_param(m, &cur, 1, D, 0, BT_PART_EMBED, 1, "encoder.LayerNorm.bias"); ALIGN();
        }
    }
    m->lo = bt_xcalloc((size_t)c->layers, sizeof *m->lo);
    for (int l = 0; l < c->layers; l++) {
        layer_off *o = &m->lo[l];
        /* [3D,D]: q | k | v row blocks, then [3D] bias q | k | v */
        o->wqkv = add_param(m, &cur, 2, D, D, l, 0, "encoder.layer.%d.attention.self.query.weight", l);
        add_param(m, &cur, 2, D, D, l, 0, "encoder.layer.%d.attention.self.key.weight", l);
        add_param(m, &cur, 2, D, D, l, 0, "encoder.layer.%d.attention.self.value.weight", l); ALIGN();
        o->bqkv = add_param(m, &cur, 1, D, 0, l, 1, "encoder.layer.%d.attention.self.query.bias", l);
        add_param(m, &cur, 1, D, 0, l, 1, "encoder.layer.%d.attention.self.key.bias", l);
        add_param(m, &cur, 1, D, 0, l, 1, "encoder.layer.%d.attention.self.value.bias", l); ALIGN();
        o->wo = add_param(m, &cur, 2, D, D, l, 0, "encoder.layer.%d.attention.output.dense.weight", l); ALIGN();
        o->bo = add_param(m, &cur, 1, D, 0, l, 1, "encoder.layer.%d.attention.output.dense.bias", l); ALIGN();
        o->g1 = add_param(m, &cur, 1, D, 0, l, 1, "encoder.layer.%d.attention.output.LayerNorm.weight", l); ALIGN();
        o->b1 = add_param(m, &cur, 1, D, 0, l, 1, "encoder.layer.%d.attention.output.LayerNorm.bias", l); ALIGN();
        o->wi = add_param(m, &cur, 2, I, D, l, 0, "encoder.layer.%d.intermediate.dense.weight", l); ALIGN();
        o->bi = add_param(m, &cur, 1, I, 0, l, 1, "encoder.layer.%d.intermediate.dense.bias", l); ALIGN();
        o->wf = add_param(m, &cur, 2, D, I, l, 0, "encoder.layer.%d.output.dense.weight", l); ALIGN();
        o->bf = add_param(m, &cur, 1, D, 0, l, 1, "encoder.layer.%d.output.dense.bias", l); ALIGN();
        o->g2 = add_param(m, &cur, 1, D, 0, l, 1, "encoder.layer.%d.output.LayerNorm.weight", l); ALIGN();
        o->b2 = add_param(m, &cur, 1, D, 0, l, 1, "encoder.layer.%d.output.LayerNorm.bias", l); ALIGN();
    }
    m->o_heads = cur;
    if (m->has_pooler) {
        m->o_pw = add_param(m, &cur, 2, D, D, BT_PART_POOLER, 0, "pooler.dense.weight"); ALIGN();
        m->o_pb = add_param(m, &cur, 1, D, 0, BT_PART_POOLER, 1, "pooler.dense.bias"); ALIGN();
    }
    if (m->doc_attn > 0) { /* long-document attention pooling (engine/longdoc_model.h) */
        int64_t A = m->doc_attn;
        m->o_dw = add_param(m, &cur, 2, A, D, BT_PART_HEAD, 0, "doc_pooler.dense.weight"); ALIGN();
        m->o_db = add_param(m, &cur, 1, A, 0, BT_PART_HEAD, 1, "doc_pooler.dense.bias"); ALIGN();
        m->o_dv = add_param(m, &cur, 1, A, 0, BT_PART_HEAD, 0, "doc_pooler.score.weight"); ALIGN();
    }
    if (m->has_cls) {
        m->o_cw = add_param(m, &cur, 2, m->C, D, BT_PART_HEAD, 0, "classifier.weight"); ALIGN();
        m->o_cb = add_param(m, &cur, 1, m->C, 0, BT_PART_HEAD, 1, "classifier.bias"); ALIGN();
    }
    if (m->has_mlm) { /* the transform maps D -> E: the tied decoder reads the word table's width */
        m->o_tw = add_param(m, &cur, 2, E, D, BT_PART_HEAD, 0, "cls.predictions.transform.dense.weight"); ALIGN();
        m->o_tb = add_param(m, &cur, 1, E, 0, BT_PART_HEAD, 1, "cls.predictions.transform.dense.bias"); ALIGN();
        m->o_tg = add_param(m, &cur, 1, E, 0, BT_PART_HEAD, 1, "cls.predictions.transform.LayerNorm.weight"); ALIGN();
        m->o_tbeta = add_param(m, &cur, 1, E, 0, BT_PART_HEAD, 1, "cls.predictions.transform.LayerNorm.bias"); ALIGN();
        m->o_mbias = add_param(m, &cur, 1, c->vocab, 0, BT_PART_HEAD, 1, "cls.predictions.bias"); ALIGN();
    }
#undef ALIGN
    m->total = cur;
}

/* ---------------------------------------------------------------- arena */

typedef struct { char *base; size_t off; } bump;

static void *take(bump *b, size_t bytes)
{
    b->off = (b->off + 63) / 64 * 64;
    void *p = b->base ? b->base + b->off : NULL;
    b->off += bytes;
    return p;
}
#define TAKEF(b, n) ((float *)take((b), (size_t)(n) * sizeof(float)))
#define TAKEI(b, n) ((int32_t *)take((b), (size_t)(n) * sizeof(int32_t)))
#define TAKER(b, n) take((b), (size_t)(n) * m->resz) /* rdt elements */

static void layout_arena(bt_bert *m, bump *b)
{
    size_t Bm = (size_t)m->max_B, Sm = (size_t)m->max_S, N = Bm * Sm;
    size_t D = (size_t)m->cfg.hidden, I = (size_t)m->cfg.inter, H = (size_t)m->cfg.heads, L = (size_t)m->cfg.layers;
    size_t C = (size_t)m->C;
    m->ids = TAKEI(b, N); m->pos = TAKEI(b, N); m->tt = TAKEI(b, N); m->mask = TAKEI(b, N);
    m->rows = TAKEI(b, Bm); m->lab = TAKEI(b, N); m->mrows = TAKEI(b, N);
    m->targ = TAKEF(b, Bm * C);
    size_t E = (size_t)emb_width(&m->cfg);
    m->emb_h = TAKEF(b, N * E); m->emb_mean = TAKEF(b, N); m->emb_rstd = TAKEF(b, N);
    if (m->has_proj) {
        m->embx = TAKEF(b, N * E);
        if (m->rdt != BT_F32) m->embr = TAKER(b, N * E);
        if (m->training) { m->demb = TAKEF(b, N * E); m->demb2 = TAKEF(b, N * E); }
    }
    if (m->cfg.family == BT_FAMILY_DISTILBERT) { m->ztype = TAKEF(b, D); m->dztype = TAKEF(b, D); }
    size_t K2 = 2 * (size_t)m->cfg.rel_span, deb = m->cfg.family == BT_FAMILY_DEBERTA;
    if (deb) {
        m->relidx = TAKEI(b, 2 * Sm - 1);
        m->reln = TAKEF(b, K2 * D); m->rel_mean = TAKEF(b, K2); m->rel_rstd = TAKEF(b, K2);
        if (m->training) { m->drel = TAKEF(b, K2 * D); m->dreld = TAKEF(b, K2 * D); m->dpos = TAKER(b, K2 * 3 * D); }
    }
    /* training keeps every layer's activations (recompute: some are one set
     * shared by all layers, see bt_recompute); inference shares one set and
     * ping-pongs x between two buffers */
    size_t nsets = m->training && m->recompute != BT_RECOMPUTE_FULL ? L : 1;
    size_t nattn = m->training && m->recompute == BT_RECOMPUTE_NONE ? L : 1;
    float *xs[2] = {NULL, NULL};
    if (!m->training) { xs[0] = TAKEF(b, N * D); xs[1] = TAKEF(b, N * D); }
    for (size_t l = 0; l <= L; l++) m->x[l] = m->training ? TAKEF(b, N * D) : xs[l & 1];
    m->probs_bytes = 0;
    for (size_t l = 0; l < L; l++) {
        layer_act *a = &m->la[l];
        if (l >= nsets) { *a = m->la[0]; continue; }
        if (l < nattn) {
            a->qkv = TAKER(b, N * 3 * D); a->ctx = TAKER(b, N * D);
            if (deb) { a->pos = TAKER(b, K2 * 3 * D); a->reld = TAKER(b, K2 * D); }
            a->probs = m->keep_probs ? TAKEF(b, Bm * H * Sm * Sm) : NULL;
            a->lse = m->training ? TAKEF(b, Bm * H * Sm) : NULL;
            if (a->probs) m->probs_bytes += Bm * H * Sm * Sm * sizeof(float);
        } else {
            a->qkv = m->la[0].qkv; a->ctx = m->la[0].ctx; a->probs = m->la[0].probs; a->lse = m->la[0].lse;
            a->pos = m->la[0].pos; a->reld = m->la[0].reld;
        }
        a->h1 = TAKEF(b, N * D); a->m1 = TAKEF(b, N); a->r1 = TAKEF(b, N); a->a = TAKEF(b, N * D);
        a->pre = TAKER(b, N * I); a->act = TAKER(b, N * I);
        a->h2 = TAKEF(b, N * D); a->m2 = TAKEF(b, N); a->r2 = TAKEF(b, N);
    }
    size_t rows = m->task == BT_TASK_SEQ_CLS ? Bm : N;
    if (m->task == BT_TASK_SEQ_CLS) {
        m->cls = TAKEF(b, Bm * D); m->ppre = TAKER(b, Bm * D); m->pooled = TAKER(b, Bm * D); m->pd = TAKER(b, Bm * D);
    }
    if (m->task == BT_TASK_TOKEN_CLS) m->xd = TAKEF(b, N * D);
    if (m->task == BT_TASK_MLM) {
        m->tpre = TAKER(b, N * E); m->tact = TAKER(b, N * E); m->t = TAKEF(b, N * E);
        m->tmean = TAKEF(b, N); m->trstd = TAKEF(b, N); m->tm = TAKEF(b, N * E);
    }
    /* the MLM head's backward runs [N,E] through xr, dX, dH, dA and dC (ELECTRA's E may exceed D) */
    size_t DE = m->task == BT_TASK_MLM && E > D ? E : D;
    if (m->task != BT_TASK_ENCODER) {
        m->logits = TAKER(b, rows * C);
        m->dlogits = TAKER(b, rows * C);
    }
    m->loss = TAKEF(b, 16);
    if (m->rdt != BT_F32) { /* 16-bit casts of F32 activations for the GEMMs, projection outputs */
        m->xr = TAKER(b, N * DE);
        m->proj = TAKER(b, N * D);
        if (m->task == BT_TASK_SEQ_CLS) m->clsr = TAKER(b, Bm * D);
    }
    if (m->training) {
        m->dX = TAKEF(b, N * DE); m->dH = TAKEF(b, N * DE); m->dP = TAKER(b, N * D);
        m->dA = TAKEF(b, N * DE); m->dC = TAKER(b, N * DE); m->dI = TAKER(b, N * I);
        m->dQKV = TAKER(b, N * 3 * D);
        m->dB1 = TAKER(b, Bm * D); m->dB2 = TAKER(b, Bm * D); m->dB3 = TAKEF(b, Bm * D);
        m->gscratch = TAKEF(b, 2 * D);
    }
}

/* ---------------------------------------------------------------- views */

static bt_tensor V1(const bt_bert *m, void *p, int64_t a) { return bt_view1(p, BT_F32, m->dev, a); }
static bt_tensor V2(const bt_bert *m, void *p, int64_t a, int64_t b) { return bt_view2(p, BT_F32, m->dev, a, b); }
static bt_tensor R1(const bt_bert *m, void *p, int64_t a) { return bt_view1(p, m->rdt, m->dev, a); }
static bt_tensor R2(const bt_bert *m, void *p, int64_t a, int64_t b) { return bt_view2(p, m->rdt, m->dev, a, b); }
static bt_tensor I1(const bt_bert *m, void *p, int64_t a) { return bt_view1(p, BT_I32, m->dev, a); }
static bt_tensor I2(const bt_bert *m, void *p, int64_t a, int64_t b) { return bt_view2(p, BT_I32, m->dev, a, b); }
static float *P(const bt_bert *m, size_t off) { return m->params + off; }
static float *G(const bt_bert *m, size_t off) { return m->grads + off; }
/* A weight as the GEMMs read it: the rdt copy (16-bit) or the F32 master. */
static void *W(const bt_bert *m, size_t off) { return m->wr ? (char *)m->wr + off * m->resz : (void *)(m->params + off); }

/* An F32 activation [n] as a GEMM operand: itself (rdt F32), or cast into
 * the rdt buffer dst (round to nearest-even). */
static void *gemm_in(bt_bert *m, float *x, int64_t n, void *dst)
{
    if (m->rdt == BT_F32) return x;
    bt_tensor X = V1(m, x, n), Y = R1(m, dst, n);
    m->be->convert(m->be, &X, &Y);
    return dst;
}

/* y[M,N] = x[M,K] W[N,K]^T + b: x and w of dtype rdt, y (and pre) of dtype ydt */
static void linear(bt_bert *m, void *x, int64_t M, int64_t K, void *w, float *bias, int64_t Nout, void *y,
                   bt_dtype ydt, int epi, void *pre)
{
    bt_tensor X = R2(m, x, M, K), Wt = R2(m, w, Nout, K), Bv = V1(m, bias, Nout);
    bt_tensor Y = bt_view2(y, ydt, m->dev, M, Nout), Pre = bt_view2(pre, ydt, m->dev, M, Nout);
    m->be->matmul(m->be, &X, 0, &Wt, 1, &Y, bias ? &Bv : NULL, 1.0f, 0.0f, epi, pre ? &Pre : NULL);
}

/* dW[N,K] += dY[M,N]^T x[M,K] (dY, x rdt; dW F32); db[N] += sum_rows dY (db may be NULL) */
static void linear_wgrad(bt_bert *m, void *dy, int64_t M, int64_t Nout, void *x, int64_t K, float *dw, float *db)
{
    bt_tensor DY = R2(m, dy, M, Nout), X = R2(m, x, M, K), DW = V2(m, dw, Nout, K);
    m->be->matmul(m->be, &DY, 1, &X, 0, &DW, NULL, 1.0f, 1.0f, BT_EPI_NONE, NULL);
    if (db) {
        bt_tensor DB = V1(m, db, Nout);
        m->be->bias_grad(m->be, &DY, &DB, 1);
    }
}

/* dx[M,K] (= or +=) dY[M,N] W[N,K]: dY, W rdt; dx of dtype dxdt */
static void linear_dgrad(bt_bert *m, void *dy, int64_t M, int64_t Nout, void *w, int64_t K, void *dx, bt_dtype dxdt,
                         float beta)
{
    bt_tensor DY = R2(m, dy, M, Nout), Wt = R2(m, w, Nout, K), DX = bt_view2(dx, dxdt, m->dev, M, K);
    m->be->matmul(m->be, &DY, 0, &Wt, 0, &DX, NULL, 1.0f, beta, BT_EPI_NONE, NULL);
}

static bt_dropout_key dkey(const bt_bert *m, uint32_t step, uint32_t micro, uint32_t layer, uint32_t site)
{
    bt_dropout_key k = {m->seed, step, micro, layer, site};
    return k;
}

static void dropout(bt_bert *m, void *x, void *y, int64_t n, bt_dtype dt, float p, bt_dropout_key k)
{
    bt_tensor X = bt_view1(x, dt, m->dev, n), Y = bt_view1(y, dt, m->dev, n);
    m->be->dropout(m->be, &X, &Y, p, k);
}

/* y (rdt) = dropout(x) for an F32 gradient x entering a 16-bit GEMM's
 * backward: cast, then the dropout on the cast (torch autocast's order: the
 * gradient of a 16-bit output is 16-bit). rdt F32: the plain dropout. */
static void dropout_to_r(bt_bert *m, float *x, void *y, int64_t n, float p, bt_dropout_key k)
{
    if (m->rdt == BT_F32) {
        dropout(m, x, y, n, BT_F32, p, k);
        return;
    }
    gemm_in(m, x, n, y);
    dropout(m, y, y, n, m->rdt, p, k);
}

static int act_epilogue(int act)
{
    return act == BT_ACT_GELU_ERF ? BT_EPI_GELU_ERF : act == BT_ACT_GELU_TANH ? BT_EPI_GELU_TANH : BT_EPI_NONE;
}

/* y = act(x W^T + b), pre receives x W^T + b (x, w, pre, y rdt) */
static void linear_act(bt_bert *m, int act, void *x, int64_t M, int64_t K, void *w, float *bias, int64_t Nout,
                       void *pre, void *y)
{
    int epi = act_epilogue(act);
    if (epi != BT_EPI_NONE) {
        linear(m, x, M, K, w, bias, Nout, y, m->rdt, epi, pre);
    } else {
        linear(m, x, M, K, w, bias, Nout, pre, m->rdt, BT_EPI_NONE, NULL);
        bt_tensor Pr = R2(m, pre, M, Nout), Y = R2(m, y, M, Nout);
        m->be->act_fwd(m->be, act, &Pr, &Y);
    }
}

/* The MLM transform's activation: hidden_act (BertPredictionHeadTransform, DeBERTa's), but ELECTRA's
 * generator head, which applies gelu (erf) whatever hidden_act says (ElectraGeneratorPredictions). */
static int mlm_act(const bt_bert *m)
{
    return m->cfg.family == BT_FAMILY_ELECTRA ? BT_ACT_GELU_ERF : m->cfg.act;
}

/* ---------------------------------------------------------------- create */

static int resolve_labels(bt_bert *m, const bt_bert_opts *o)
{
    bt_bert_config *c = &m->cfg;
    if (o->num_labels > 0) c->num_labels = o->num_labels;
    if (o->problem != BT_LOSS_AUTO) c->problem = o->problem;
    if (m->task == BT_TASK_SEQ_CLS && c->problem == BT_LOSS_AUTO)
        c->problem = c->num_labels == 1 ? BT_LOSS_REGRESSION : BT_LOSS_SINGLE; /* HF's rule (int labels) */
    if (m->task == BT_TASK_TOKEN_CLS) c->problem = BT_LOSS_SINGLE;
    if ((m->task == BT_TASK_SEQ_CLS || m->task == BT_TASK_TOKEN_CLS) && c->num_labels < 1)
        return bt_fail(BT_ECONFIG, "num_labels is %d: a classification head needs at least 1 label "
                                   "(set num_labels in the job, or id2label in config.json)", c->num_labels);
    if (m->task == BT_TASK_SEQ_CLS && c->problem == BT_LOSS_SINGLE && c->num_labels < 2)
        return bt_fail(BT_ECONFIG, "single_label_classification needs num_labels >= 2 (got %d); "
                                   "for one output use problem_type regression", c->num_labels);
    m->C = m->task == BT_TASK_MLM ? c->vocab : m->task == BT_TASK_ENCODER ? c->hidden : c->num_labels;
    return 0;
}

/* A token classifier of RoBERTa / XLM-R or ELECTRA reads classifier.weight;
 * their sequence classifiers' classifier.out_proj reads as the same canonical
 * name, so weights holding that head are refused for a token classifier
 * (to predict with or to train) rather than taken for its classifier
 * (Transformers would start a fresh one; baton says so instead). */
static int refuse_sequence_head(const bt_bert *m, const char *path)
{
    if (m->task != BT_TASK_TOKEN_CLS || (m->cfg.family != BT_FAMILY_ROBERTA && m->cfg.family != BT_FAMILY_ELECTRA))
        return 0;
    bt_st_file *f;
    int rc = bt_weights_open(path, &f);
    if (rc) return rc;
    int seq = bt_st_find(f, "classifier.out_proj.weight") != NULL;
    bt_st_close(f);
    if (seq)
        return bt_fail(BT_ECONFIG, "%s: holds a sequence-classification head (classifier.dense, classifier.out_proj; "
                                   "config.json says %s), which is not a token classifier's classifier: start "
                                   "token classification from the encoder (weights without classifier.*) or from "
                                   "a token classifier", path, m->cfg.arch);
    return 0;
}

static void init_missing(bt_bert *m, float *host, const bt_param_load *pl)
{
    const bt_bert_config *c = &m->cfg;
    for (size_t i = 0; i < m->ntab; i++) {
        if (pl[i].found) continue;
        const bt_bert_param *p = &m->tab[i];
        float *d = host + p->off;
        uint32_t id = 0;
        if (!strcmp(p->name, "classifier.weight")) id = BT_INIT_CLASSIFIER_W;
        else if (!strcmp(p->name, "pooler.dense.weight")) id = BT_INIT_POOLER_W;
        else if (!strcmp(p->name, "cls.predictions.transform.dense.weight")) id = BT_INIT_MLM_DENSE_W;
        else if (!strcmp(p->name, "doc_pooler.dense.weight")) id = BT_INIT_DOC_POOL_W;
        else if (!strcmp(p->name, "doc_pooler.score.weight")) id = BT_INIT_DOC_POOL_V;
        if (id) bt_init_normal(d, (int64_t)p->numel, m->seed, id, c->init_range);
        else if (strstr(p->name, "LayerNorm.weight")) for (size_t k = 0; k < p->numel; k++) d[k] = 1.0f;
        else memset(d, 0, p->numel * sizeof *d);
        m->heads_init++;
        bt_info("initialised %s (%s)", p->name, pl[i].mismatched ? "another shape in the checkpoint" : "not in the checkpoint");
    }
}

const char *bt_precision_name(bt_precision p)
{
    switch (p) {
    case BT_PREC_FP32: return "fp32";
    case BT_PREC_TF32: return "tf32";
    case BT_PREC_FP16: return "fp16";
    case BT_PREC_BF16: return "bf16";
    }
    return "?";
}

/* The backend computes in the requested precision, or a BT_ECONFIG naming
 * train.precision and what to use instead. Sets the GEMM math (TF32 or not). */
static int setup_precision(bt_bert *m, bt_precision p)
{
    bt_backend *be = m->be;
    char dev[48];
    if (be->device == BT_DEV_CPU) snprintf(dev, sizeof dev, "the CPU backend");
    else snprintf(dev, sizeof dev, "this GPU (sm_%d)", be->sm);
    m->prec = p;
    m->rdt = p == BT_PREC_FP16 ? BT_F16 : p == BT_PREC_BF16 ? BT_BF16 : BT_F32;
    m->resz = bt_dtype_size(m->rdt);
    if ((int)p < BT_PREC_FP32 || (int)p > BT_PREC_BF16)
        return bt_fail(BT_EINTERNAL, "bt_bert_create: unknown precision %d", (int)p);
    if (m->rdt != BT_F32 && !be->dtype_ok(be, m->rdt))
        return bt_fail(BT_ECONFIG, "[train] precision = %s: %s cannot compute in %s (bf16 needs an sm_80+ GPU: "
                                   "A100, L4, H100); use precision = fp16 (or auto)",
                       bt_precision_name(p), dev, bt_precision_name(p));
    int rc = be->set_tf32(be, p == BT_PREC_TF32);
    if (rc)
        return bt_fail_context(rc, "[train] precision = tf32 on %s: use precision = %s", dev,
                               be->device == BT_DEV_CPU ? "fp32 (or bf16)" : "fp16, fp32 or auto");
    return 0;
}

/* The parameter allocation, the 16-bit copy and the gradients, in this order. */
static int alloc_params(bt_bert *m, const char *model_dir)
{
    bt_backend *be = m->be;
    m->params = be->alloc(be, m->total * sizeof(float));
    if (!m->params)
        return bt_fail(BT_EIO, "%s: cannot allocate %.1f MB of parameters on the %s backend", model_dir,
                       m->total * 4.0 / 1e6, be->name);
    if (m->rdt != BT_F32) {
        m->wr = be->alloc(be, m->total * m->resz);
        if (!m->wr)
            return bt_fail(BT_EIO, "%s: cannot allocate the %s copy of the weights (%.1f MB) on the %s backend",
                           model_dir, bt_precision_name(m->prec), m->total * (double)m->resz / 1e6, be->name);
        m->wr_stale = 1;
    }
    if (m->training) {
        m->grads = be->alloc(be, m->total * sizeof(float));
        if (!m->grads)
            return bt_fail(BT_EIO, "cannot allocate %.1f MB of gradients on the %s backend", m->total * 4.0 / 1e6,
                           be->name);
    }
    return 0;
}

/* Every family has the masked-LM head (issue 22): BERT's cls.predictions layers under the family's names
 * (engine/model_weights.c), the decoder tied to the word embeddings. Refused: RoBERTa with another
 * hidden_act (RobertaLMHead applies gelu whatever it says; baton's transform uses hidden_act there), and
 * an untied decoder (tie_word_embeddings false: the checkpoint's own decoder weight would be dropped). */
static int check_mlm_head(const bt_bert *m, const char *model_dir)
{
    const bt_bert_config *c = &m->cfg;
    if (m->task != BT_TASK_MLM) return 0;
    if (c->family == BT_FAMILY_ROBERTA && c->act != BT_ACT_GELU_ERF)
        return bt_fail(BT_ECONFIG, "%s/config.json: hidden_act is not \"gelu\": RoBERTa's MLM head (lm_head) always "
                                   "applies gelu, which baton's masked-LM head does only with hidden_act gelu",
                       model_dir);
    if (!c->tie_word)
        return bt_fail(BT_ECONFIG, "%s/config.json: tie_word_embeddings is false: baton's masked-LM head decodes "
                                   "with the word embeddings (a tied decoder) and has no separate decoder weight; "
                                   "use a model whose decoder is tied (tie_word_embeddings true or absent)",
                       model_dir);
    return 0;
}

int bt_bert_create(bt_backend *be, const char *model_dir, const bt_bert_opts *o, bt_bert **out)
{
    *out = NULL;
    bt_bert *m = bt_xcalloc(1, sizeof *m);
    m->be = be;
    m->dev = be->device;
    m->task = o->task;
    m->seed = o->seed;
    m->training = o->training;
    int rc = setup_precision(m, o->precision);
    if (rc) goto fail;
    rc = bt_bert_config_load(model_dir, &m->cfg);
    if (rc) goto fail;
    if (o->dropout_set) /* [train] dropout: one probability for every dropout site */
        m->cfg.p_hidden = m->cfg.p_attn = m->cfg.p_classifier = m->cfg.p_pooler = o->dropout;
    const bt_bert_config *c = &m->cfg;
    if ((rc = resolve_labels(m, o))) goto fail;
    if (o->max_batch < 1 || o->max_seq < 1) {
        rc = bt_fail(BT_EUSAGE, "max_batch %d / max_seq %d: both must be >= 1", o->max_batch, o->max_seq);
        goto fail;
    }
    if (o->max_seq > bt_bert_max_seq_len(c)) {
        rc = bt_fail(BT_ECONFIG, "max_seq %d exceeds the %d positions of the model's max_position_embeddings %d "
                                 "(%s/config.json); lower max_length", o->max_seq, bt_bert_max_seq_len(c),
                     c->max_pos, model_dir);
        goto fail;
    }
    if ((rc = check_mlm_head(m, model_dir))) goto fail;
    int deb = c->family == BT_FAMILY_DEBERTA;
    /* DistilBertForTokenClassification's dropout is config.dropout, not seq_classif_dropout */
    /* DebertaV2ForTokenClassification's dropout is hidden_dropout_prob, not cls_dropout */
    if ((c->family == BT_FAMILY_DISTILBERT || deb) && m->task == BT_TASK_TOKEN_CLS && !o->dropout_set)
        m->cfg.p_classifier = m->cfg.p_hidden;
    m->max_B = o->max_batch;
    m->max_S = o->max_seq;
    m->has_pooler = m->task == BT_TASK_SEQ_CLS;
    m->has_cls = m->task == BT_TASK_SEQ_CLS || m->task == BT_TASK_TOKEN_CLS;
    m->has_mlm = m->task == BT_TASK_MLM;
    if (o->doc_attn_dim > 0 && m->task != BT_TASK_SEQ_CLS) {
        rc = bt_fail(BT_ECONFIG, "attention pooling over chunks needs a sequence-classification model");
        goto fail;
    }
    m->doc_attn = o->doc_attn_dim > 0 ? o->doc_attn_dim : 0;
    if ((int)o->recompute < BT_RECOMPUTE_NONE || (int)o->recompute > BT_RECOMPUTE_FULL) {
        rc = bt_fail(BT_EINTERNAL, "bt_bert_create: unknown recompute mode %d", (int)o->recompute);
        goto fail;
    }
    m->recompute = m->training ? o->recompute : BT_RECOMPUTE_NONE;
    m->keep_probs = m->training && (c->family == BT_FAMILY_DEBERTA || /* its backward reads them */
                                     be->attention_wants_probs(be, m->max_S, c->hidden / c->heads));
    if (c->family == BT_FAMILY_DEBERTA && (!be->rel_attention_fwd || (m->training && !be->rel_attention_bwd))) {
        rc = bt_fail(BT_ECONFIG, "%s/config.json: model_type \"deberta-v2\" needs the disentangled attention, "
                                 "which the %s backend does not have yet; use device = cpu", model_dir, be->name);
        goto fail;
    }
    build_table(m);
    if (o->no_weights) {
        rc = alloc_params(m, model_dir);
        if (rc) goto fail;
        goto weights_done;
    }

    /* load into a host mirror, initialise missing heads, upload once (the
     * same allocations as alloc_params, which no_weights uses) */
    float *host = bt_xaligned_alloc(m->total * sizeof(float));
    memset(host, 0, m->total * sizeof(float));
    bt_param_load *pl = bt_xcalloc(m->ntab, sizeof *pl);
    for (size_t i = 0; i < m->ntab; i++) {
        pl[i].name = m->tab[i].name;
        pl[i].ndim = m->tab[i].ndim;
        pl[i].shape[0] = m->tab[i].shape[0];
        pl[i].shape[1] = m->tab[i].shape[1];
        pl[i].dst = host + m->tab[i].off;
        pl[i].optional = m->tab[i].part == BT_PART_HEAD || m->tab[i].part == BT_PART_POOLER;
        pl[i].reinit_mismatched = o->ignore_mismatched_sizes;
    }
    char *st = NULL; /* model.safetensors, else pytorch_model.bin */
    rc = bt_model_weights_path(model_dir, &st);
    if (!rc) rc = refuse_sequence_head(m, st);
    if (!rc) rc = bt_load_hf_weights_path_family(st, c->family, pl, m->ntab);
    free(st);
    if (!rc) init_missing(m, host, pl);
    free(pl);
    if (rc) {
        bt_aligned_free(host);
        goto fail;
    }
    rc = alloc_params(m, model_dir);
    if (!rc) be->upload(be, m->params, host, m->total * sizeof(float));
    bt_aligned_free(host);
    if (rc) goto fail;
weights_done:
    m->x = bt_xcalloc((size_t)c->layers + 1, sizeof *m->x);
    m->la = bt_xcalloc((size_t)c->layers, sizeof *m->la);
    bump b = {NULL, 0};
    layout_arena(m, &b);
    m->arena_bytes = b.off;
    m->arena = be->alloc(be, m->arena_bytes);
    if (!m->arena) {
        rc = bt_fail(BT_EIO, "cannot allocate a %.1f MB activation arena for batch %d x seq %d on the %s backend; "
                             "lower batch_size or max_length", m->arena_bytes / 1e6, m->max_B, m->max_S, be->name);
        goto fail;
    }
    b.base = m->arena;
    b.off = 0;
    layout_arena(m, &b);
    if (m->ztype) be->memset0(be, m->ztype, (size_t)c->hidden * sizeof(float));
    if (m->relidx) { /* delta = i - j in [-(max_S-1), max_S-1] */
        int32_t *ri = bt_xcalloc(2 * (size_t)m->max_S, sizeof *ri);
        for (int d = 0; d < 2 * m->max_S - 1; d++) ri[d] = bt_bert_rel_index(c, d - (m->max_S - 1));
        be->upload(be, m->relidx, ri, (2 * (size_t)m->max_S - 1) * sizeof *ri);
        free(ri);
    }
    size_t N = (size_t)m->max_B * m->max_S;
    m->h_ids = bt_xcalloc(N, 4); m->h_pos = bt_xcalloc(N, 4); m->h_tt = bt_xcalloc(N, 4);
    m->h_mask = bt_xcalloc(N, 4); m->h_rows = bt_xcalloc((size_t)m->max_B, 4); m->h_lab = bt_xcalloc(N, 4);
    m->h_mrows = bt_xcalloc(N, 4); m->h_targ = bt_xcalloc((size_t)m->max_B * m->C, 4);
    bt_info("model %s: %zu parameters (%.1f MB), arena %.1f MB for batch %d x %d (attention probabilities "
            "%.1f MB), %s, recompute %s", model_dir, m->total, m->total * 4.0 / 1e6, m->arena_bytes / 1e6, m->max_B,
            m->max_S, m->probs_bytes / 1e6, bt_precision_name(m->prec), bt_recompute_name(m->recompute));
    *out = m;
    return 0;
fail:
    bt_bert_free(m);
    return rc;
}

void bt_bert_free(bt_bert *m)
{
    if (!m) return;
    if (m->params) m->be->free(m->be, m->params);
    if (m->wr) m->be->free(m->be, m->wr);
    if (m->grads) m->be->free(m->be, m->grads);
    if (m->arena) m->be->free(m->be, m->arena);
    for (size_t i = 0; i < m->ntab; i++) free(m->tab[i].name);
    free(m->tab);
    free(m->lo);
    free(m->x);
    free(m->la);
    free(m->h_ids); free(m->h_pos); free(m->h_tt); free(m->h_mask); free(m->h_rows); free(m->h_lab);
    free(m->h_mrows); free(m->h_targ); free(m->h_out); free(m->h_raw);
    free(m);
}

/* ---------------------------------------------------------------- accessors */

const bt_bert_config *bt_bert_cfg(const bt_bert *m) { return &m->cfg; }
bt_precision bt_bert_precision(const bt_bert *m) { return m->prec; }
bt_recompute bt_bert_recompute(const bt_bert *m) { return m->recompute; }
int bt_bert_max_batch(const bt_bert *m) { return m->max_B; }

const char *bt_recompute_name(bt_recompute r)
{
    return r == BT_RECOMPUTE_NONE ? "none" : r == BT_RECOMPUTE_ATTENTION ? "attention" : r == BT_RECOMPUTE_FULL ? "full" : "?";
}

void bt_bert_memory_of(const bt_bert *m, bt_bert_memory *out)
{
    out->params = m->total * sizeof(float);
    out->copy16 = m->wr ? m->total * m->resz : 0;
    out->grads = m->grads ? m->total * sizeof(float) : 0;
    out->arena = m->arena_bytes;
    out->probs = m->probs_bytes;
}
bt_task bt_bert_task(const bt_bert *m) { return m->task; }
bt_backend *bt_bert_backend(const bt_bert *m) { return m->be; }
size_t bt_bert_nparams(const bt_bert *m) { return m->ntab; }
const bt_bert_param *bt_bert_param_at(const bt_bert *m, size_t i) { return i < m->ntab ? &m->tab[i] : NULL; }
size_t bt_bert_total_floats(const bt_bert *m) { return m->total; }
float *bt_bert_params_dev(bt_bert *m) { return m->params; }
float *bt_bert_grads_dev(bt_bert *m) { return m->grads; }
float *bt_bert_swap_grads(bt_bert *m, float *g)
{
    float *old = m->grads;
    if (old && g) m->grads = g;
    return old;
}
int bt_bert_heads_initialised(const bt_bert *m) { return m->heads_init; }
int bt_bert_logits_cols(const bt_bert *m) { return m->C; }

const bt_bert_param *bt_bert_find(const bt_bert *m, const char *name)
{
    for (size_t i = 0; i < m->ntab; i++)
        if (!strcmp(m->tab[i].name, name)) return &m->tab[i];
    return NULL;
}

void bt_bert_download_params(bt_bert *m, float *host)
{
    m->be->download(m->be, host, m->params, m->total * sizeof(float));
}

void bt_bert_upload_params(bt_bert *m, const float *host)
{
    m->be->upload(m->be, m->params, host, m->total * sizeof(float));
    m->wr_stale = 1;
}

void bt_bert_params_changed(bt_bert *m) { m->wr_stale = 1; }

/* The 16-bit weight copy, from the F32 masters, when they changed. */
static void refresh_weights(bt_bert *m)
{
    if (!m->wr || !m->wr_stale) return;
    bt_tensor P = V1(m, m->params, (int64_t)m->total), Wr = R1(m, m->wr, (int64_t)m->total);
    m->be->convert(m->be, &P, &Wr);
    m->wr_stale = 0;
}

/* n elements of dtype dt at dev -> host floats (16-bit: through h_raw). */
static void download_f32(bt_bert *m, float *host, const void *dev, bt_dtype dt, size_t n)
{
    if (dt == BT_F32) {
        m->be->download(m->be, host, dev, n * sizeof(float));
        return;
    }
    if (m->h_raw_cap < n) {
        free(m->h_raw);
        m->h_raw = bt_xmalloc(n * sizeof *m->h_raw);
        m->h_raw_cap = n;
    }
    m->be->download(m->be, m->h_raw, dev, n * sizeof *m->h_raw);
    for (size_t i = 0; i < n; i++) host[i] = dt == BT_F16 ? bt_f16_to_f32(m->h_raw[i]) : bt_bf16_to_f32(m->h_raw[i]);
}

/* host floats -> n elements of dtype dt at dev, rounded to nearest-even. */
static void upload_f32(bt_bert *m, void *dev, const float *host, bt_dtype dt, size_t n)
{
    if (dt == BT_F32) {
        m->be->upload(m->be, dev, host, n * sizeof(float));
        return;
    }
    if (m->h_raw_cap < n) {
        free(m->h_raw);
        m->h_raw = bt_xmalloc(n * sizeof *m->h_raw);
        m->h_raw_cap = n;
    }
    for (size_t i = 0; i < n; i++) m->h_raw[i] = dt == BT_F16 ? bt_f32_to_f16(host[i]) : bt_f32_to_bf16(host[i]);
    m->be->upload(m->be, dev, m->h_raw, n * sizeof *m->h_raw);
}

void bt_bert_set_frozen(bt_bert *m, int freeze_embeddings, int freeze_layers)
{
    m->freeze_emb = freeze_embeddings ? 1 : 0;
    m->freeze_layers = freeze_layers < 0 ? 0 : freeze_layers > m->cfg.layers ? m->cfg.layers : freeze_layers;
}

static int layer_trainable(const bt_bert *m, int l) { return l >= m->freeze_layers; }

int bt_bert_param_trainable(const bt_bert *m, const bt_bert_param *p)
{
    if (p->part == BT_PART_EMBED) return !m->freeze_emb;
    if (p->part >= 0) return layer_trainable(m, p->part);
    return 1;
}

void bt_bert_zero_grads(bt_bert *m)
{
    if (m->grads) m->be->memset0(m->be, m->grads, m->total * sizeof(float));
}

/* ---------------------------------------------------------------- batch */

static int stage_batch(bt_bert *m, const bt_batch *b, int need_labels)
{
    const bt_bert_config *c = &m->cfg;
    if (b->n < 1 || b->n > m->max_B)
        return bt_fail(BT_EDATA, "batch of %d examples: the model was sized for 1..%d", b->n, m->max_B);
    int S = 0;
    for (int i = 0; i < b->n; i++) {
        if (b->len[i] < 1 || b->len[i] > m->max_S)
            return bt_fail(BT_EDATA, "example %d of the batch has %d tokens: allowed 1..%d (max_length)", i,
                           b->len[i], m->max_S);
        if (b->len[i] > S) S = b->len[i];
    }
    if (need_labels && (m->task == BT_TASK_TOKEN_CLS || m->task == BT_TASK_MLM) && !b->token_labels)
        return bt_fail(BT_EDATA, "%s batch without per-token labels (use -100 for tokens without one)",
                       m->task == BT_TASK_MLM ? "masked-LM" : "token-classification");
    int B = b->n, N = B * S, C = m->C;
    int pad = c->pad_id >= 0 ? c->pad_id : 0, roberta = c->family == BT_FAMILY_ROBERTA,
        types = c->family == BT_FAMILY_BERT || c->family == BT_FAMILY_ELECTRA ||
                (c->family == BT_FAMILY_DEBERTA && m->has_type); /* else all 0 */
    m->nm = 0;
    for (int i = 0; i < B; i++) {
        m->h_rows[i] = i * S;
        int32_t npos = pad; /* RoBERTa: cumsum(id != pad) * (id != pad) + pad */
        for (int s = 0; s < S; s++) {
            int r = i * S + s, real = s < b->len[i];
            int32_t id = real ? b->ids[i][s] : pad;
            int32_t ty = real && b->type_ids && types ? b->type_ids[i][s] : 0;
            if (id < 0 || id >= c->vocab)
                return bt_fail(BT_EDATA, "example %d token %d: id %d outside the vocabulary [0,%d)", i, s, id, c->vocab);
            if (types && (ty < 0 || ty >= c->type_vocab))
                return bt_fail(BT_EDATA, "example %d token %d: token type %d outside [0,%d)", i, s, ty, c->type_vocab);
            m->h_ids[r] = id;
            m->h_pos[r] = !roberta ? s : id != pad ? ++npos : pad;
            m->h_tt[r] = ty;
            m->h_mask[r] = real;
            m->h_lab[r] = -100;
            if (m->task == BT_TASK_TOKEN_CLS && real && b->token_labels) {
                int32_t y = b->token_labels[i][s];
                if (y != -100 && (y < 0 || y >= C))
                    return bt_fail(BT_EDATA, "example %d token %d: label %d outside [0,%d) (or -100 to ignore)", i, s,
                                   y, C);
                m->h_lab[r] = y;
            }
            if (m->task == BT_TASK_MLM && real) {
                int32_t y = b->token_labels ? b->token_labels[i][s] : -2;
                if (y == -100) continue;
                if (y != -2 && (y < 0 || y >= c->vocab))
                    return bt_fail(BT_EDATA, "example %d token %d: MLM label %d outside [0,%d) (or -100)", i, s, y,
                                   c->vocab);
                m->h_mrows[m->nm] = r;
                m->h_lab[m->nm] = y < 0 ? 0 : y;
                m->nm++;
            }
        }
    }
    if (m->task == BT_TASK_SEQ_CLS && need_labels) {
        int prob = c->problem;
        if (prob == BT_LOSS_SINGLE) {
            if (!b->label) return bt_fail(BT_EDATA, "single-label classification batch without labels");
            for (int i = 0; i < B; i++) {
                if (b->label[i] != -100 && (b->label[i] < 0 || b->label[i] >= C))
                    return bt_fail(BT_EDATA, "example %d: label %d outside [0,%d)", i, b->label[i], C);
                m->h_lab[i] = b->label[i];
            }
        } else {
            if (!b->target) return bt_fail(BT_EDATA, "%s batch without float targets",
                                           prob == BT_LOSS_MULTI ? "multi-label" : "regression");
            memcpy(m->h_targ, b->target, (size_t)B * C * sizeof(float));
        }
    }
    bt_backend *be = m->be;
    be->upload(be, m->ids, m->h_ids, (size_t)N * 4);
    be->upload(be, m->pos, m->h_pos, (size_t)N * 4);
    be->upload(be, m->tt, m->h_tt, (size_t)N * 4);
    be->upload(be, m->mask, m->h_mask, (size_t)N * 4);
    be->upload(be, m->rows, m->h_rows, (size_t)B * 4);
    be->upload(be, m->lab, m->h_lab, (size_t)N * 4);
    if (m->task == BT_TASK_MLM && m->nm) be->upload(be, m->mrows, m->h_mrows, (size_t)m->nm * 4);
    if (m->task == BT_TASK_SEQ_CLS && c->problem != BT_LOSS_SINGLE && need_labels)
        be->upload(be, m->targ, m->h_targ, (size_t)B * C * 4);
    m->B = B;
    m->S = S;
    return 0;
}

/* ---------------------------------------------------------------- forward */

/* The DeBERTa args of one layer's attention call. */
static bt_rel_attn rel_args(const bt_bert *m, int l, int train, uint32_t step, uint32_t micro)
{
    const bt_bert_config *c = &m->cfg;
    bt_rel_attn ra = {m->B, m->S, c->heads, c->hidden / c->heads, 2 * c->rel_span, c->rel_c2p, c->rel_p2c,
                      0.0f, train ? c->p_attn : 0.0f, dkey(m, step, micro, (uint32_t)l, BT_SITE_ATTN_PROBS)};
    ra.scale = 1.0f / sqrtf((float)ra.Dh * (float)(1 + c->rel_c2p + c->rel_p2c));
    return ra;
}

/* The relative-index table for the current S: a view into the max_S one. */
static bt_tensor relidx_view(const bt_bert *m)
{
    return I1(m, m->relidx + (m->max_S - m->S), 2 * (int64_t)m->S - 1);
}

/* DeBERTa: pos = dropout(reln) Wqkv^T + bqkv (HF: pos_dropout, then the
 * shared query/key projections), then the disentangled attention. */
static void rel_attention_forward(bt_bert *m, int l, int train, uint32_t step, uint32_t micro, bt_tensor *qkv,
                                  bt_tensor *ctx)
{
    bt_backend *be = m->be;
    const bt_bert_config *c = &m->cfg;
    int64_t K2 = 2 * (int64_t)c->rel_span, D = c->hidden;
    const layer_off *o = &m->lo[l];
    layer_act *a = &m->la[l];
    bt_tensor rn = V1(m, m->reln, K2 * D), rd = R1(m, a->reld, K2 * D);
    if (m->rdt == BT_F32) be->copy(be, a->reld, m->reln, (size_t)(K2 * D) * sizeof(float));
    else be->convert(be, &rn, &rd);
    dropout(m, a->reld, a->reld, K2 * D, m->rdt, train ? c->p_hidden : 0.0f,
            dkey(m, step, micro, (uint32_t)l, BT_SITE_REL_EMB));
    linear(m, a->reld, K2, D, W(m, o->wqkv), P(m, o->bqkv), 3 * D, a->pos, m->rdt, BT_EPI_NONE, NULL);
    bt_rel_attn ra = rel_args(m, l, train, step, micro);
    int64_t ps[4] = {m->B, c->heads, m->S, m->S};
    bt_tensor pos = R2(m, a->pos, K2, 3 * D), ri = relidx_view(m), mask = I2(m, m->mask, m->B, m->S);
    bt_tensor probs = bt_view(a->probs, BT_F32, m->dev, 4, ps);
    be->rel_attention_fwd(be, qkv, &pos, &ri, &mask, &ra, ctx, a->probs ? &probs : NULL);
}

/* qkv = x_l Wqkv^T + bqkv ; ctx = attention(qkv, mask) (probs kept when the
 * arena has them, lse when training). */
static void attention_forward(bt_bert *m, int l, int train, uint32_t step, uint32_t micro)
{
    bt_backend *be = m->be;
    const bt_bert_config *c = &m->cfg;
    int64_t B = m->B, S = m->S, N = B * S, D = c->hidden, H = c->heads, Dh = D / H;
    const layer_off *o = &m->lo[l];
    layer_act *a = &m->la[l];
    linear(m, gemm_in(m, m->x[l], N * D, m->xr), N, D, W(m, o->wqkv), P(m, o->bqkv), 3 * D, a->qkv, m->rdt,
           BT_EPI_NONE, NULL);
    bt_tensor qkv = R2(m, a->qkv, N, 3 * D), ctx = R2(m, a->ctx, N, D), mask = I2(m, m->mask, B, S);
    int64_t ps[4] = {B, H, S, S}, ls[3] = {B, H, S};
    bt_tensor probs = bt_view(a->probs, BT_F32, m->dev, 4, ps), lse = bt_view(a->lse, BT_F32, m->dev, 3, ls);
    if (c->family == BT_FAMILY_DEBERTA) {
        rel_attention_forward(m, l, train, step, micro, &qkv, &ctx);
        return;
    }
    be->attention_fwd(be, &qkv, &mask, (int)B, (int)S, (int)H, (int)Dh, 1.0f / sqrtf((float)Dh),
                      train ? c->p_attn : 0.0f, dkey(m, step, micro, (uint32_t)l, BT_SITE_ATTN_PROBS), &ctx,
                      a->probs ? &probs : NULL, a->lse ? &lse : NULL);
}

/* Encoder layer l: x_{l+1} from x_l, saving what the backward needs. */
static void layer_forward(bt_bert *m, int l, int train, uint32_t step, uint32_t micro)
{
    bt_backend *be = m->be;
    const bt_bert_config *c = &m->cfg;
    int64_t N = (int64_t)m->B * m->S, D = c->hidden, I = c->inter;
    float ph = train ? c->p_hidden : 0.0f;
    int lp = m->rdt != BT_F32;
    const layer_off *o = &m->lo[l];
    layer_act *a = &m->la[l];
    float *x = m->x[l];
    attention_forward(m, l, train, step, micro);
    /* h1 = dropout(ctx Wo^T + bo) + x ; a = LN1(h1). fp32: LN1's output
     * buffer holds the projection until LN overwrites it */
    void *tmp = lp ? m->proj : (void *)a->a;
    linear(m, a->ctx, N, D, W(m, o->wo), P(m, o->bo), D, tmp, m->rdt, BT_EPI_NONE, NULL);
    /* DistilBERT has no dropout after out_lin */
    dropout(m, tmp, tmp, N * D, m->rdt, c->family == BT_FAMILY_DISTILBERT ? 0.0f : ph,
            dkey(m, step, micro, (uint32_t)l, BT_SITE_ATTN_OUT));
    bt_tensor tT = R2(m, tmp, N, D), xT = V2(m, x, N, D), h1 = V2(m, a->h1, N, D), aT = V2(m, a->a, N, D);
    bt_tensor g1 = V1(m, P(m, o->g1), D), b1 = V1(m, P(m, o->b1), D);
    bt_tensor m1 = V1(m, a->m1, N), r1 = V1(m, a->r1, N);
    be->layernorm_fwd(be, &tT, &xT, &g1, &b1, c->ln_eps, &aT, &m1, &r1, &h1);
    /* FFN; fp32: x_{l+1} doubles as the projection scratch */
    linear_act(m, c->act, gemm_in(m, a->a, N * D, m->xr), N, D, W(m, o->wi), P(m, o->bi), I, a->pre, a->act);
    void *proj = lp ? m->proj : (void *)m->x[l + 1];
    linear(m, a->act, N, I, W(m, o->wf), P(m, o->bf), D, proj, m->rdt, BT_EPI_NONE, NULL);
    dropout(m, proj, proj, N * D, m->rdt, ph, dkey(m, step, micro, (uint32_t)l, BT_SITE_FFN_OUT));
    bt_tensor pT = R2(m, proj, N, D), h2 = V2(m, a->h2, N, D), xo = V2(m, m->x[l + 1], N, D);
    bt_tensor g2 = V1(m, P(m, o->g2), D), b2 = V1(m, P(m, o->b2), D);
    bt_tensor m2 = V1(m, a->m2, N), r2 = V1(m, a->r2, N);
    be->layernorm_fwd(be, &pT, &aT, &g2, &b2, c->ln_eps, &xo, &m2, &r2, &h2);
}

/* The activation after the pooler's dense layer: BERT's pooler and RoBERTa's
 * head tanh, DistilBERT's pre_classifier ReLU, ELECTRA's head GELU. */
static int head_act(const bt_bert *m)
{
    if (m->cfg.family == BT_FAMILY_DEBERTA) return m->cfg.pooler_act; /* ContextPooler: pooler_hidden_act */
    if (m->cfg.family == BT_FAMILY_ELECTRA) return BT_ACT_GELU_ERF;   /* ElectraClassificationHead: "gelu" */
    return m->cfg.family == BT_FAMILY_DISTILBERT ? BT_ACT_RELU : BT_ACT_TANH;
}

/* DeBERTa: reln = encoder.LayerNorm(rel_embeddings) (or the table itself),
 * once per forward: every layer projects it. */
static void rel_embed_forward(bt_bert *m)
{
    bt_backend *be = m->be;
    const bt_bert_config *c = &m->cfg;
    int64_t K2 = 2 * (int64_t)c->rel_span, D = c->hidden;
    if (!c->rel_norm) {
        be->copy(be, m->reln, P(m, m->o_rel), (size_t)(K2 * D) * sizeof(float));
        return;
    }
    bt_tensor re = V2(m, P(m, m->o_rel), K2, D), rn = V2(m, m->reln, K2, D);
    bt_tensor g = V1(m, P(m, m->o_rg), D), b = V1(m, P(m, m->o_rb), D);
    bt_tensor mn = V1(m, m->rel_mean, K2), rs = V1(m, m->rel_rstd, K2);
    be->layernorm_fwd(be, &re, NULL, &g, &b, c->ln_eps, &rn, &mn, &rs, NULL);
}

static void forward(bt_bert *m, int train, uint32_t step, uint32_t micro)
{
    bt_backend *be = m->be;
    const bt_bert_config *c = &m->cfg;
    int64_t B = m->B, S = m->S, N = B * S, D = c->hidden;
    float ph = train ? c->p_hidden : 0.0f;
    refresh_weights(m);

    int64_t E = emb_width(c);
    float *ex = m->has_proj ? m->embx : m->x[0]; /* the embeddings' output, [N,E] */
    bt_tensor ids = I1(m, m->ids, N), pos = I1(m, m->pos, N), tt = I1(m, m->tt, N);
    bt_tensor wv = V2(m, P(m, m->o_word), c->vocab, E), wp = V2(m, P(m, m->o_pos), c->max_pos, E),
              wt = V2(m, m->ztype ? m->ztype : P(m, m->o_type), c->type_vocab, E);
    bt_tensor e = V2(m, m->emb_h, N, E), x0 = V2(m, ex, N, E);
    bt_tensor eg = V1(m, P(m, m->o_eg), E), eb = V1(m, P(m, m->o_eb), E);
    bt_tensor em = V1(m, m->emb_mean, N), er = V1(m, m->emb_rstd, N);
    be->embed_fwd(be, &ids, &pos, &tt, &wv, m->has_pos ? &wp : NULL, m->has_type || m->ztype ? &wt : NULL, &e);
    if (c->family == BT_FAMILY_DEBERTA) rel_embed_forward(m);
    be->layernorm_fwd(be, &e, NULL, &eg, &eb, c->ln_eps, &x0, &em, &er, NULL);
    dropout(m, ex, ex, N * E, BT_F32, ph, dkey(m, step, micro, 0, BT_SITE_EMBED));
    if (m->has_proj) /* ELECTRA: x0 = embeddings_project(dropout(LN(e))), F32 (the residual stream) */
        linear(m, gemm_in(m, m->embx, N * E, m->embr), N, E, W(m, m->o_jw), P(m, m->o_jb), D, m->x[0], BT_F32,
               BT_EPI_NONE, NULL);
    for (int l = 0; l < c->layers; l++) layer_forward(m, l, train, step, micro);
    float *xL = m->x[c->layers];
    int64_t C = m->C;
    if (m->task == BT_TASK_SEQ_CLS) {
        bt_tensor src = V2(m, xL, N, D), rows = I1(m, m->rows, B), cls = V2(m, m->cls, B, D);
        be->gather_rows(be, &src, &rows, &cls);
        if (c->family == BT_FAMILY_ROBERTA || c->family == BT_FAMILY_DEBERTA || c->family == BT_FAMILY_ELECTRA)
            /* dropout before the dense: RobertaClassificationHead and ElectraClassificationHead (classifier
             * dropout), ContextPooler (pooler_dropout) */
            dropout(m, m->cls, m->cls, B * D, BT_F32,
                    train ? (c->family == BT_FAMILY_DEBERTA ? c->p_pooler : c->p_classifier) : 0.0f,
                    dkey(m, step, micro, 0, BT_SITE_HEAD_IN));
        linear(m, gemm_in(m, m->cls, B * D, m->clsr), B, D, W(m, m->o_pw), P(m, m->o_pb), D, m->ppre, m->rdt,
               BT_EPI_NONE, NULL);
        bt_tensor pp = R2(m, m->ppre, B, D), po = R2(m, m->pooled, B, D);
        be->act_fwd(be, head_act(m), &pp, &po);
        dropout(m, m->pooled, m->pd, B * D, m->rdt, train ? c->p_classifier : 0.0f,
                dkey(m, step, micro, 0, BT_SITE_CLASSIFIER));
        linear(m, m->pd, B, D, W(m, m->o_cw), P(m, m->o_cb), C, m->logits, m->rdt, BT_EPI_NONE, NULL);
    } else if (m->task == BT_TASK_TOKEN_CLS) {
        dropout(m, xL, m->xd, N * D, BT_F32, train ? c->p_classifier : 0.0f,
                dkey(m, step, micro, 0, BT_SITE_CLASSIFIER));
        linear(m, gemm_in(m, m->xd, N * D, m->xr), N, D, W(m, m->o_cw), P(m, m->o_cb), C, m->logits, m->rdt,
               BT_EPI_NONE, NULL);
    } else if (m->task == BT_TASK_MLM && m->nm > 0) { /* the transform is [E,D]: E = D but for ELECTRA */
        linear_act(m, mlm_act(m), gemm_in(m, xL, N * D, m->xr), N, D, W(m, m->o_tw), P(m, m->o_tb), E, m->tpre,
                   m->tact);
        bt_tensor ta = R2(m, m->tact, N, E), t = V2(m, m->t, N, E);
        bt_tensor tg = V1(m, P(m, m->o_tg), E), tb = V1(m, P(m, m->o_tbeta), E);
        bt_tensor tmn = V1(m, m->tmean, N), trs = V1(m, m->trstd, N);
        be->layernorm_fwd(be, &ta, NULL, &tg, &tb, c->ln_eps, &t, &tmn, &trs, NULL);
        bt_tensor rows = I1(m, m->mrows, m->nm), tm = V2(m, m->tm, m->nm, E);
        be->gather_rows(be, &t, &rows, &tm);
        linear(m, gemm_in(m, m->tm, m->nm * E, m->xr), m->nm, E, W(m, m->o_word), P(m, m->o_mbias), C, m->logits,
               m->rdt, BT_EPI_NONE, NULL);
    }
}

/* Loss of the current batch into m->loss[0], d(loss)*grad_scale into dlogits. */
static int compute_loss(bt_bert *m, float grad_scale, float *loss_host)
{
    bt_backend *be = m->be;
    int64_t C = m->C, B = m->B, N = (int64_t)m->B * m->S;
    bt_tensor loss = V1(m, m->loss, 1);
    if (m->task == BT_TASK_SEQ_CLS) {
        bt_tensor lg = R2(m, m->logits, B, C), dl = R2(m, m->dlogits, B, C);
        if (m->cfg.problem == BT_LOSS_SINGLE) {
            bt_tensor lab = I1(m, m->lab, B);
            be->softmax_xent(be, &lg, &lab, grad_scale, &loss, &dl);
        } else {
            bt_tensor tg = V2(m, m->targ, B, C);
            if (m->cfg.problem == BT_LOSS_MULTI) be->bce_logits(be, &lg, &tg, grad_scale, &loss, &dl);
            else be->mse(be, &lg, &tg, grad_scale, &loss, &dl);
        }
    } else if (m->task == BT_TASK_TOKEN_CLS) {
        bt_tensor lg = R2(m, m->logits, N, C), dl = R2(m, m->dlogits, N, C), lab = I1(m, m->lab, N);
        be->softmax_xent(be, &lg, &lab, grad_scale, &loss, &dl);
    } else if (m->task == BT_TASK_MLM) {
        if (m->nm == 0) {
            *loss_host = 0.0f;
            return 0;
        }
        bt_tensor lg = R2(m, m->logits, m->nm, C), dl = R2(m, m->dlogits, m->nm, C), lab = I1(m, m->lab, m->nm);
        be->softmax_xent(be, &lg, &lab, grad_scale, &loss, &dl);
    } else {
        return bt_fail(BT_EINTERNAL, "the encoder-only model has no loss");
    }
    be->download(be, loss_host, m->loss, sizeof(float));
    return 0;
}

/* ---------------------------------------------------------------- backward */

/* DeBERTa: dqkv and d(pos) from dctx; pos's gradient goes to the layer's
 * q|k|v weights (when trainable, tr) and, through the rel dropout, into
 * drel (when the embeddings train). */
static void rel_attention_backward(bt_bert *m, int l, int tr, uint32_t step, uint32_t micro, const bt_tensor *qkv,
                                   const bt_tensor *dctx, bt_tensor *dqkv)
{
    bt_backend *be = m->be;
    const bt_bert_config *c = &m->cfg;
    int64_t K2 = 2 * (int64_t)c->rel_span, D = c->hidden;
    const layer_off *o = &m->lo[l];
    layer_act *a = &m->la[l];
    bt_rel_attn ra = rel_args(m, l, 1, step, micro);
    int64_t ps[4] = {m->B, c->heads, m->S, m->S};
    bt_tensor pos = R2(m, a->pos, K2, 3 * D), dpos = R2(m, m->dpos, K2, 3 * D), ri = relidx_view(m);
    bt_tensor mask = I2(m, m->mask, m->B, m->S), probs = bt_view(a->probs, BT_F32, m->dev, 4, ps);
    be->rel_attention_bwd(be, qkv, &pos, &ri, &mask, &ra, &probs, dctx, dqkv, &dpos);
    if (tr) linear_wgrad(m, m->dpos, K2, 3 * D, a->reld, D, G(m, o->wqkv), G(m, o->bqkv));
    if (m->freeze_emb) return;
    linear_dgrad(m, m->dpos, K2, 3 * D, W(m, o->wqkv), D, m->dreld, BT_F32, 0.0f);
    dropout(m, m->dreld, m->dreld, K2 * D, BT_F32, c->p_hidden, dkey(m, step, micro, (uint32_t)l, BT_SITE_REL_EMB));
    bt_tensor dr = V1(m, m->drel, K2 * D), dl = V1(m, m->dreld, K2 * D);
    be->add(be, &dr, &dl, &dr);
}

/* DeBERTa: rel_embeddings' (and the rel LayerNorm's) gradients from drel. */
static void rel_embed_backward(bt_bert *m)
{
    bt_backend *be = m->be;
    const bt_bert_config *c = &m->cfg;
    int64_t K2 = 2 * (int64_t)c->rel_span, D = c->hidden;
    bt_tensor g = V1(m, G(m, m->o_rel), K2 * D), dr = V1(m, m->drel, K2 * D);
    if (c->rel_norm) {
        bt_tensor h = V2(m, P(m, m->o_rel), K2, D), dy = V2(m, m->drel, K2, D), dh = V2(m, m->dreld, K2, D);
        bt_tensor gm = V1(m, P(m, m->o_rg), D), mn = V1(m, m->rel_mean, K2), rs = V1(m, m->rel_rstd, K2);
        bt_tensor dg = V1(m, G(m, m->o_rg), D), db = V1(m, G(m, m->o_rb), D);
        be->layernorm_bwd(be, &h, &dy, &gm, &mn, &rs, &dh, &dg, &db);
        dr = V1(m, m->dreld, K2 * D);
    }
    be->add(be, &g, &dr, &g);
}

static void layer_backward(bt_bert *m, int l, int want_dx, uint32_t step, uint32_t micro)
{
    bt_backend *be = m->be;
    const bt_bert_config *c = &m->cfg;
    int64_t B = m->B, S = m->S, N = B * S, D = c->hidden, I = c->inter, H = c->heads, Dh = D / H;
    float ph = c->p_hidden, pa = c->p_attn;
    const layer_off *o = &m->lo[l];
    layer_act *a = &m->la[l];
    int tr = layer_trainable(m, l);
    float *sg = m->gscratch, *sb = m->gscratch + D; /* LN grads of a frozen layer go here */

    /* LN2: dH = d(h2) from dX = d(x_{l+1}) */
    bt_tensor h2 = V2(m, a->h2, N, D), dX = V2(m, m->dX, N, D), dH = V2(m, m->dH, N, D);
    bt_tensor g2 = V1(m, P(m, o->g2), D), m2 = V1(m, a->m2, N), r2 = V1(m, a->r2, N);
    bt_tensor dg2 = V1(m, tr ? G(m, o->g2) : sg, D), db2 = V1(m, tr ? G(m, o->b2) : sb, D);
    be->layernorm_bwd(be, &h2, &dX, &g2, &m2, &r2, &dH, &dg2, &db2);
    /* output dense (through its dropout) */
    dropout_to_r(m, m->dH, m->dP, N * D, ph, dkey(m, step, micro, (uint32_t)l, BT_SITE_FFN_OUT));
    if (tr) linear_wgrad(m, m->dP, N, D, a->act, I, G(m, o->wf), G(m, o->bf));
    linear_dgrad(m, m->dP, N, D, W(m, o->wf), I, m->dI, m->rdt, 0.0f);
    bt_tensor pre = R2(m, a->pre, N, I), dI = R2(m, m->dI, N, I), dpre = R2(m, a->act, N, I);
    be->act_bwd(be, c->act, &pre, &dI, &dpre, 0); /* a->act now holds d(pre) */
    if (tr) linear_wgrad(m, a->act, N, I, gemm_in(m, a->a, N * D, m->xr), D, G(m, o->wi), G(m, o->bi));
    /* dA = d(pre) Wi + dH (residual), F32 */
    linear_dgrad(m, a->act, N, I, W(m, o->wi), D, m->dA, BT_F32, 0.0f);
    bt_tensor dA = V2(m, m->dA, N, D);
    be->add(be, &dA, &dH, &dA);
    /* LN1 */
    bt_tensor h1 = V2(m, a->h1, N, D), g1 = V1(m, P(m, o->g1), D), m1 = V1(m, a->m1, N), r1 = V1(m, a->r1, N);
    bt_tensor dg1 = V1(m, tr ? G(m, o->g1) : sg, D), db1 = V1(m, tr ? G(m, o->b1) : sb, D);
    be->layernorm_bwd(be, &h1, &dA, &g1, &m1, &r1, &dH, &dg1, &db1);
    dropout_to_r(m, m->dH, m->dP, N * D, c->family == BT_FAMILY_DISTILBERT ? 0.0f : ph,
                 dkey(m, step, micro, (uint32_t)l, BT_SITE_ATTN_OUT));
    if (tr) linear_wgrad(m, m->dP, N, D, a->ctx, D, G(m, o->wo), G(m, o->bo));
    linear_dgrad(m, m->dP, N, D, W(m, o->wo), D, m->dC, m->rdt, 0.0f);
    /* attention */
    bt_tensor qkv = R2(m, a->qkv, N, 3 * D), ctx = R2(m, a->ctx, N, D), dctx = R2(m, m->dC, N, D);
    bt_tensor dqkv = R2(m, m->dQKV, N, 3 * D), mask = I2(m, m->mask, B, S);
    int64_t ps[4] = {B, H, S, S}, ls[3] = {B, H, S};
    bt_tensor probs = bt_view(a->probs, BT_F32, m->dev, 4, ps), lse = bt_view(a->lse, BT_F32, m->dev, 3, ls);
    if (c->family == BT_FAMILY_DEBERTA)
        rel_attention_backward(m, l, tr, step, micro, &qkv, &dctx, &dqkv);
    else
        be->attention_bwd(be, &qkv, &mask, (int)B, (int)S, (int)H, (int)Dh, 1.0f / sqrtf((float)Dh), pa,
                          dkey(m, step, micro, (uint32_t)l, BT_SITE_ATTN_PROBS), &ctx, a->probs ? &probs : NULL,
                          &lse, &dctx, &dqkv);
    if (tr) linear_wgrad(m, m->dQKV, N, 3 * D, gemm_in(m, m->x[l], N * D, m->xr), D, G(m, o->wqkv), G(m, o->bqkv));
    if (want_dx) {
        linear_dgrad(m, m->dQKV, N, 3 * D, W(m, o->wqkv), D, m->dX, BT_F32, 0.0f);
        be->add(be, &dX, &dH, &dX);
    }
}

/* What layer l's backward needs and the forward did not keep (recompute):
 * the same ops with the same dropout keys, so the values are bit-identical.
 * The top layer's shared buffers still hold its forward's values. */
static void recompute_layer(bt_bert *m, int l, uint32_t step, uint32_t micro)
{
    if (m->recompute == BT_RECOMPUTE_NONE || l == m->cfg.layers - 1) return;
    if (m->recompute == BT_RECOMPUTE_FULL) layer_forward(m, l, 1, step, micro);
    else attention_forward(m, l, 1, step, micro);
}

/* ELECTRA's embeddings_project from dX = d(x0) [N,D] F32: its weight and bias
 * gradients, and demb = d(embx) [N,E] F32. A 16-bit GEMM reads dX cast into
 * dP (free here), as the layers' output projections read their gradients. */
static void project_backward(bt_bert *m)
{
    int64_t N = (int64_t)m->B * m->S, D = m->cfg.hidden, E = emb_width(&m->cfg);
    void *dy = m->dX;
    if (m->rdt != BT_F32) dy = gemm_in(m, m->dX, N * D, m->dP);
    linear_wgrad(m, dy, N, D, m->embr ? m->embr : (void *)m->embx, E, G(m, m->o_jw), G(m, m->o_jb));
    linear_dgrad(m, dy, N, D, W(m, m->o_jw), E, m->demb, BT_F32, 0.0f);
}

/* [off, total) of the gradients is final for this backward: says so to
 * whoever listens (the trainer's bucketed sum). */
static void grads_ready(bt_bert *m, size_t off)
{
    if (m->ready_fn) m->ready_fn(m->ready_ctx, off);
}

void bt_bert_set_grads_ready(bt_bert *m, bt_grads_ready_fn fn, void *ctx)
{
    m->ready_fn = fn;
    m->ready_ctx = ctx;
}

int bt_bert_grad_edges(const bt_bert *m, size_t *edges, int cap)
{
    int n = 0;
    size_t last = (size_t)-1;
#define EDGE(x) do { if ((x) != last && n < cap) edges[n++] = last = (x); } while (0)
    EDGE(m->total);
    EDGE(m->o_heads);
    for (int l = m->cfg.layers - 1; l >= 0; l--) EDGE(m->lo[l].wqkv);
    EDGE((size_t)0);
#undef EDGE
    return n;
}

/* Encoder (and embeddings) backward from dX = d(x_L), top down; stops where
 * nothing below is trainable. After layer l: its gradients and everything
 * above them are final (the embeddings' wait for the end: the MLM decoder
 * and DeBERTa's relative embeddings add to them too). */
static void backward_encoder(bt_bert *m, uint32_t step, uint32_t micro)
{
    bt_backend *be = m->be;
    const bt_bert_config *c = &m->cfg;
    int64_t N = (int64_t)m->B * m->S, D = c->hidden;
    if (m->drel) be->memset0(be, m->drel, 2 * (size_t)c->rel_span * (size_t)D * sizeof(float));
    for (int l = c->layers - 1; l >= 0; l--) {
        int below = !m->freeze_emb || l > m->freeze_layers; /* a trainable part under layer l */
        if (!layer_trainable(m, l) && !below) return;
        recompute_layer(m, l, step, micro);
        layer_backward(m, l, below, step, micro);
        grads_ready(m, m->lo[l].wqkv);
    }
    if (m->freeze_emb) return;
    if (m->drel) rel_embed_backward(m);
    int64_t E = emb_width(c);
    float *dex = m->dX, *dh = m->dH; /* d(the embeddings' output) and d(e), [N,E] */
    if (m->has_proj) project_backward(m);
    if (m->has_proj) dex = m->demb, dh = m->demb2;
    dropout(m, dex, dex, N * E, BT_F32, c->p_hidden, dkey(m, step, micro, 0, BT_SITE_EMBED));
    bt_tensor e = V2(m, m->emb_h, N, E), eg = V1(m, P(m, m->o_eg), E), dEx = V2(m, dex, N, E);
    bt_tensor em = V1(m, m->emb_mean, N), er = V1(m, m->emb_rstd, N), dH = V2(m, dh, N, E);
    bt_tensor deg = V1(m, G(m, m->o_eg), E), deb = V1(m, G(m, m->o_eb), E);
    be->layernorm_bwd(be, &e, &dEx, &eg, &em, &er, &dH, &deg, &deb);
    bt_tensor ids = I1(m, m->ids, N), pos = I1(m, m->pos, N), tt = I1(m, m->tt, N);
    bt_tensor dw = V2(m, G(m, m->o_word), c->vocab, E), dp = V2(m, G(m, m->o_pos), c->max_pos, E),
              dt = V2(m, m->dztype ? m->dztype : G(m, m->o_type), c->type_vocab, E);
    be->embed_bwd(be, &ids, &pos, &tt, &dH, c->pad_id, &dw, m->has_pos ? &dp : NULL, m->has_type || m->dztype ? &dt : NULL);
    /* RoBERTa's position table is nn.Embedding(padding_idx = pad): row pad (the
     * position of pad ids) gets no gradient, in any micro-batch */
    if (c->family == BT_FAMILY_ROBERTA)
        be->memset0(be, G(m, m->o_pos) + (size_t)c->pad_id * (size_t)E, (size_t)E * sizeof(float));
}

/* SEQ_CLS from dB1 = d(pooled) [B,D] (rdt): tanh (DistilBERT's ReLU), pooler, [CLS] rows -> dX, encoder. */
static void backward_from_pooled(bt_bert *m, uint32_t step, uint32_t micro)
{
    bt_backend *be = m->be;
    int64_t B = m->B, N = (int64_t)m->B * m->S, D = m->cfg.hidden;
    bt_tensor dX = V2(m, m->dX, N, D);
    bt_tensor pp = R2(m, m->ppre, B, D), d1 = R2(m, m->dB1, B, D), d2 = R2(m, m->dB2, B, D);
    be->act_bwd(be, head_act(m), &pp, &d1, &d2, 0);
    /* the pooler's input as its forward GEMM read it (clsr: the forward's cast) */
    linear_wgrad(m, m->dB2, B, D, m->clsr ? m->clsr : (void *)m->cls, D, G(m, m->o_pw), G(m, m->o_pb));
    linear_dgrad(m, m->dB2, B, D, W(m, m->o_pw), D, m->dB3, BT_F32, 0.0f);
    if (m->cfg.family == BT_FAMILY_ROBERTA || m->cfg.family == BT_FAMILY_ELECTRA ||
        m->cfg.family == BT_FAMILY_DEBERTA) /* the forward's dropout before the dense (DeBERTa: pooler_dropout) */
        dropout(m, m->dB3, m->dB3, B * D, BT_F32,
                m->cfg.family == BT_FAMILY_DEBERTA ? m->cfg.p_pooler : m->cfg.p_classifier,
                dkey(m, step, micro, 0, BT_SITE_HEAD_IN));
    be->memset0(be, m->dX, (size_t)N * D * sizeof(float));
    bt_tensor d3 = V2(m, m->dB3, B, D), rows = I1(m, m->rows, B);
    be->gather_rows_bwd(be, &d3, &rows, &dX);
    grads_ready(m, m->o_heads);
    backward_encoder(m, step, micro);
}

/* The MLM head from dlogits [M,V] down to dX = d(x_L) [N,D]; the transform's rows are E wide
 * (E = D but for ELECTRA), so dX, dA, dH and dC hold [.,E] first (layout_arena sizes them). */
static void mlm_backward(bt_bert *m)
{
    bt_backend *be = m->be;
    int64_t N = (int64_t)m->B * m->S, D = m->cfg.hidden, E = emb_width(&m->cfg), C = m->C, M = m->nm;
    /* decoder tied to the word embeddings: its weight gradient lands there */
    if (!m->freeze_emb)
        linear_wgrad(m, m->dlogits, M, C, gemm_in(m, m->tm, M * E, m->xr), E, G(m, m->o_word), NULL);
    bt_tensor DL = R2(m, m->dlogits, M, C), DB = V1(m, G(m, m->o_mbias), C);
    be->bias_grad(be, &DL, &DB, 1);
    /* d(tm) [M,E] (F32) in dX, scattered to the rows of dT = dA */
    linear_dgrad(m, m->dlogits, M, C, W(m, m->o_word), E, m->dX, BT_F32, 0.0f);
    be->memset0(be, m->dA, (size_t)N * E * sizeof(float));
    bt_tensor dtm = V2(m, m->dX, M, E), rows = I1(m, m->mrows, M), dT = V2(m, m->dA, N, E);
    be->gather_rows_bwd(be, &dtm, &rows, &dT);
    bt_tensor ta = R2(m, m->tact, N, E), tg = V1(m, P(m, m->o_tg), E);
    bt_tensor tmn = V1(m, m->tmean, N), trs = V1(m, m->trstd, N), dH = V2(m, m->dH, N, E);
    bt_tensor dtg = V1(m, G(m, m->o_tg), E), dtb = V1(m, G(m, m->o_tbeta), E);
    be->layernorm_bwd(be, &ta, &dT, &tg, &tmn, &trs, &dH, &dtg, &dtb);
    /* d(tpre) into dC (rdt); a 16-bit activation's gradient is 16-bit */
    bt_tensor tp = R2(m, m->tpre, N, E), dC = R2(m, m->dC, N, E);
    if (m->rdt == BT_F32) {
        be->act_bwd(be, mlm_act(m), &tp, &dH, &dC, 0);
    } else {
        gemm_in(m, m->dH, N * E, m->dC);
        be->act_bwd(be, mlm_act(m), &tp, &dC, &dC, 0);
    }
    linear_wgrad(m, m->dC, N, E, gemm_in(m, m->x[m->cfg.layers], N * D, m->xr), D, G(m, m->o_tw), G(m, m->o_tb));
    linear_dgrad(m, m->dC, N, E, W(m, m->o_tw), D, m->dX, BT_F32, 0.0f);
}

static void backward(bt_bert *m, uint32_t step, uint32_t micro)
{
    const bt_bert_config *c = &m->cfg;
    int64_t B = m->B, S = m->S, N = B * S, D = c->hidden, C = m->C;

    if (m->task == BT_TASK_SEQ_CLS) {
        linear_wgrad(m, m->dlogits, B, C, m->pd, D, G(m, m->o_cw), G(m, m->o_cb));
        linear_dgrad(m, m->dlogits, B, C, W(m, m->o_cw), D, m->dB1, m->rdt, 0.0f);
        dropout(m, m->dB1, m->dB1, B * D, m->rdt, c->p_classifier, dkey(m, step, micro, 0, BT_SITE_CLASSIFIER));
        backward_from_pooled(m, step, micro);
        return;
    }
    if (m->task == BT_TASK_TOKEN_CLS) {
        linear_wgrad(m, m->dlogits, N, C, gemm_in(m, m->xd, N * D, m->xr), D, G(m, m->o_cw), G(m, m->o_cb));
        linear_dgrad(m, m->dlogits, N, C, W(m, m->o_cw), D, m->dX, BT_F32, 0.0f);
        dropout(m, m->dX, m->dX, N * D, BT_F32, c->p_classifier, dkey(m, step, micro, 0, BT_SITE_CLASSIFIER));
    } else if (m->task == BT_TASK_MLM) {
        if (m->nm == 0) return;
        mlm_backward(m);
    } else {
        return;
    }
    grads_ready(m, m->o_heads);
    backward_encoder(m, step, micro);
}

int bt_bert_forward_backward(bt_bert *m, const bt_batch *b, float grad_scale, uint32_t step, uint32_t micro,
                             float *loss)
{
    if (!m->training) return bt_fail(BT_EINTERNAL, "bt_bert_forward_backward on a model created without training");
    if (m->task == BT_TASK_ENCODER) return bt_fail(BT_ECONFIG, "an encoder without a head cannot be trained");
    int rc = stage_batch(m, b, 1);
    if (rc) return rc;
    m->pooled_ready = 0;
    forward(m, 1, step, micro);
    if ((rc = compute_loss(m, grad_scale, loss))) return rc;
    backward(m, step, micro);
    return 0;
}

/* ---------------------------------------------------------------- eval */

int64_t bt_bert_logits_rows(const bt_bert *m, const bt_batch *b)
{
    int64_t r = 0;
    if (m->task == BT_TASK_SEQ_CLS) return b->n;
    for (int i = 0; i < b->n; i++) {
        if (m->task == BT_TASK_MLM && b->token_labels) {
            for (int s = 0; s < b->len[i]; s++) r += b->token_labels[i][s] != -100;
        } else {
            r += b->len[i];
        }
    }
    return r;
}

int bt_bert_eval(bt_bert *m, const bt_batch *b, float *loss, float *logits)
{
    int want_loss = loss != NULL;
    if (want_loss && m->task == BT_TASK_ENCODER) return bt_fail(BT_ECONFIG, "an encoder without a head has no loss");
    int rc = stage_batch(m, b, want_loss);
    if (rc) return rc;
    m->pooled_ready = 0;
    forward(m, 0, 0, 0);
    if (want_loss && (rc = compute_loss(m, 1.0f, loss))) return rc;
    if (!logits) return 0;
    int64_t C = m->C, B = m->B, S = m->S;
    if (m->task == BT_TASK_SEQ_CLS) {
        download_f32(m, logits, m->logits, m->rdt, (size_t)(B * C));
    } else if (m->task == BT_TASK_MLM) {
        if (m->nm) download_f32(m, logits, m->logits, m->rdt, (size_t)m->nm * C);
    } else {
        int tok = m->task == BT_TASK_TOKEN_CLS;
        const void *src = tok ? m->logits : (void *)m->x[m->cfg.layers];
        size_t need = (size_t)(B * S * C);
        if (m->h_out_cap < need) {
            free(m->h_out);
            m->h_out = bt_xmalloc(need * sizeof(float));
            m->h_out_cap = need;
        }
        download_f32(m, m->h_out, src, tok ? m->rdt : BT_F32, need);
        size_t r = 0;
        for (int64_t i = 0; i < B; i++)
            for (int s = 0; s < b->len[i]; s++, r++)
                memcpy(logits + r * C, m->h_out + ((size_t)i * S + s) * C, (size_t)C * sizeof(float));
    }
    return 0;
}

/* ---------------------------------------------------------------- chunks */

int bt_bert_encode_pooled(bt_bert *m, const bt_batch *b, int train, uint32_t step, uint32_t micro, float *pooled)
{
    if (m->task != BT_TASK_SEQ_CLS)
        return bt_fail(BT_EINTERNAL, "bt_bert_encode_pooled needs a sequence-classification model");
    if (train && !m->training) return bt_fail(BT_EINTERNAL, "bt_bert_encode_pooled(train) on an inference model");
    int rc = stage_batch(m, b, 0);
    if (rc) return rc;
    forward(m, train, step, micro);
    m->pooled_ready = train ? 1 : 0;
    download_f32(m, pooled, m->pooled, m->rdt, (size_t)m->B * (size_t)m->cfg.hidden);
    return 0;
}

int bt_bert_backward_pooled(bt_bert *m, const float *dpooled, uint32_t step, uint32_t micro)
{
    if (!m->pooled_ready)
        return bt_fail(BT_EINTERNAL, "bt_bert_backward_pooled without a training bt_bert_encode_pooled before it");
    m->pooled_ready = 0;
    upload_f32(m, m->dB1, dpooled, m->rdt, (size_t)m->B * (size_t)m->cfg.hidden);
    backward_from_pooled(m, step, micro);
    return 0;
}

void bt_bert_read_param(bt_bert *m, const bt_bert_param *p, float *host)
{
    m->be->download(m->be, host, m->params + p->off, p->numel * sizeof(float));
}

void bt_bert_add_grad(bt_bert *m, const bt_bert_param *p, const float *host)
{
    if (!m->grads || !bt_bert_param_trainable(m, p)) return;
    float *tmp = bt_xmalloc(p->numel * sizeof *tmp);
    m->be->download(m->be, tmp, m->grads + p->off, p->numel * sizeof(float));
    for (size_t i = 0; i < p->numel; i++) tmp[i] += host[i];
    m->be->upload(m->be, m->grads + p->off, tmp, p->numel * sizeof(float));
    free(tmp);
}
