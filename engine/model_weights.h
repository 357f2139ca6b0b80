/* engine/model_weights.h — Hugging Face checkpoint names <-> baton's canonical
 * parameter names, and loading HF model.safetensors (or pytorch_model.bin,
 * read by state/torch_bin.c without Python) into fp32 buffers.
 *
 * Owns: the name mapping (prefixes, legacy gamma/beta, tied and ignored
 * tensors), shape checks against what the engine expects, and the canonical
 * BERT parameter list derived from a config.
 * Must not: allocate model memory (callers give dst), know about archives.
 *
 * Canonical names are HF BertModel names without prefix:
 *   embeddings.word_embeddings.weight                 [V,D]
 *   embeddings.position_embeddings.weight             [P,D]
 *   embeddings.token_type_embeddings.weight           [T,D]
 *   embeddings.LayerNorm.weight / .bias               [D]
 *   encoder.layer.N.attention.self.{query,key,value}.weight [D,D]  .bias [D]
 *   encoder.layer.N.attention.output.dense.weight     [D,D]  .bias [D]
 *   encoder.layer.N.attention.output.LayerNorm.weight / .bias [D]
 *   encoder.layer.N.intermediate.dense.weight         [I,D]  .bias [I]
 *   encoder.layer.N.output.dense.weight               [D,I]  .bias [D]
 *   encoder.layer.N.output.LayerNorm.weight / .bias   [D]
 *   pooler.dense.weight [D,D]  pooler.dense.bias [D]
 * plus heads, named as in HF without the "bert." prefix:
 *   classifier.weight [L,D]  classifier.bias [L]     (sequence / token classification)
 *   cls.predictions.transform.dense.weight [E,D] / .bias [E]           (MLM)
 *   cls.predictions.transform.LayerNorm.weight / .bias [E]
 *     (E = D but for ELECTRA's generator, whose head maps D -> embedding_size)
 *   cls.predictions.bias [V]   (decoder weight is tied to word embeddings)
 *
 * Accepted checkpoint spellings: BertModel / sentence-transformers (no
 * prefix), BertFor{SequenceClassification,TokenClassification,MaskedLM,
 * PreTraining} ("bert." prefix on the encoder), legacy "LayerNorm.gamma/beta"
 * (-> weight/bias), "cls.predictions.decoder.bias" (alias of
 * "cls.predictions.bias"), "cls.predictions.decoder.weight" (tied: used as the
 * word embeddings only when those are absent). Ignored: "embeddings.position_ids",
 * "cls.seq_relationship.*".
 */
#ifndef BATON_ENGINE_MODEL_WEIGHTS_H
#define BATON_ENGINE_MODEL_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *name;           /* canonical name */
    int ndim; int64_t shape[4]; /* expected shape */
    float *dst;                 /* receives numel fp32 values; NULL: check only (added) */
    int optional;               /* 1: may be absent (a fresh head); dst untouched */
    int reinit_mismatched;      /* with optional: another shape in the checkpoint is no error either:
                                   found stays 0 and mismatched is set (the caller initialises it) */
    int found;                  /* out: 1 if loaded */
    int mismatched;             /* out: 1 if left out for its shape (reinit_mismatched) */
} bt_param_load;

/* Opens a checkpoint file by its name: *.safetensors with the safetensors
 * reader, any other name (pytorch_model.bin) as a torch.save zip
 * (state/torch_bin.h); both give the same validated handle. */
typedef struct bt_st_file bt_st_file;
int bt_weights_open(const char *path, bt_st_file **out);

/* Loads every params[i] from a checkpoint file (path: model.safetensors or
 * pytorch_model.bin, opened with bt_weights_open); one error listing ALL missing
 * required and mis-shaped tensors (name, expected vs found shape). Unused checkpoint
 * tensors are counted and reported via bt_info (not an error). F32, F16, BF16 and
 * F64 checkpoints are converted to fp32. Errors: BT_EDATA (bad file, missing or
 * mis-shaped tensors), BT_ENOINPUT (no file), BT_EINTERNAL (duplicate names in params). */
int bt_load_hf_weights(const char *path, bt_param_load *params, size_t n);

/* HF name for a canonical name in a given architecture (for export):
 * arch "BertForSequenceClassification" → "bert." + encoder names, heads unprefixed;
 * "BertModel" (or NULL) → unprefixed. Known prefixed archs: BertFor{Sequence,Token}
 * Classification, BertForMaskedLM, BertForPreTraining, BertForMultipleChoice,
 * BertForQuestionAnswering, BertForNextSentencePrediction, BertLMHeadModel.
 * {Roberta,XLMRoberta}ForSequenceClassification: "roberta." + encoder names,
 * pooler.dense.* -> classifier.dense.*, classifier.* -> classifier.out_proj.*.
 * The *ForMaskedLM of each family: its MLM head's names (RoBERTa lm_head.*,
 * DistilBERT vocab_*, DeBERTa cls.predictions.*, ELECTRA generator_*).
 * Returns buf, or NULL when arch is unknown or buf is too small. */
const char *bt_hf_name(const char *canonical, const char *arch, char *buf, size_t bufsz);

/* ---- added helpers (additive to the agreed API) ---- */

/* The same on an already opened (validated) file, e.g. model.safetensors read
 * from a checkpoint archive with bt_st_open_buffer; errors name bt_st_label(f). */
int bt_load_hf_weights_st(const bt_st_file *f, bt_param_load *params, size_t n);

/* Canonical name of a checkpoint tensor name, into buf. Returns
 *   BT_NAME_CANONICAL  buf holds the canonical name,
 *   BT_NAME_TIED       "cls.predictions.decoder.weight" (buf: "embeddings.word_embeddings.weight"),
 *   BT_NAME_IGNORED    known and deliberately unused (position_ids, seq_relationship),
 *   BT_NAME_UNKNOWN    not a BERT tensor baton knows (buf holds the name, prefix stripped). */
enum { BT_NAME_CANONICAL = 0, BT_NAME_TIED = 1, BT_NAME_IGNORED = 2, BT_NAME_UNKNOWN = 3 };
int bt_canonical_name(const char *hf_name, char *buf, size_t bufsz);
/* The same for a model family (BT_FAMILY_* of engine/init.h; bt_canonical_name
 * is BERT's). RoBERTa / XLM-R: "roberta." prefix; classifier.dense.* ->
 * pooler.dense.*, classifier.out_proj.* -> classifier.* (RobertaClassificationHead
 * kept in the BERT pooler's slots); lm_head.* as BERT's cls.predictions.*;
 * pooler.* and embeddings.token_type_ids ignored (RobertaForSequenceClassification
 * has no pooler); BERT head names (cls.*, plain classifier.weight) unknown.
 * DistilBERT: "distilbert." prefix and its layer names (model_weights.c).
 * DeBERTa-v2/v3: "deberta." prefix, attention.self.{query,key,value}_proj ->
 * {query,key,value}; encoder.rel_embeddings.weight [2k,D] and
 * encoder.LayerNorm.* are canonical names of their own; pooler.dense.* and
 * classifier.* as BERT's; the MLM head cls.predictions.* (DebertaV2ForMaskedLM)
 * or lm_predictions.lm_head.{dense,LayerNorm,bias} (microsoft/deberta-v3-*) as
 * BERT's cls.predictions.* (both in one checkpoint: refused by the loader);
 * mask_predictions.* ignored.
 * ELECTRA: "electra." prefix, BERT's layer names, embeddings_project.* (a
 * canonical name of its own), the head as RoBERTa's; the generator's
 * generator_predictions.{dense,LayerNorm} and generator_lm_head.bias as BERT's
 * cls.predictions.*, generator_lm_head.weight tied; discriminator_predictions.*
 * ignored. */
int bt_canonical_name_family(const char *hf_name, int family, char *buf, size_t bufsz);
/* bt_load_hf_weights_st with the family's spellings. */
int bt_load_hf_weights_family(const bt_st_file *f, int family, bt_param_load *params, size_t n);
int bt_load_hf_weights_path_family(const char *path, int family, bt_param_load *params, size_t n);

/* Which heads bt_bert_param_list includes. */
enum { BT_HEAD_POOLER = 1, BT_HEAD_CLASSIFIER = 2, BT_HEAD_MLM = 4 };

struct bt_model_config;
/* The canonical parameter list for config c: the encoder (required) plus the
 * heads in heads_mask (each marked optional), classifier with c->num_labels rows.
 * Names are heap strings, dst NULL. Free with bt_param_list_free. */
bt_param_load *bt_bert_param_list(const struct bt_model_config *c, unsigned heads_mask, size_t *n);
void bt_param_list_free(bt_param_load *p, size_t n);

#endif
