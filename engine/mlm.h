/* engine/mlm.h — masked-language-model data: blocks of token ids and masking.
 *
 * Owns: (a) grouping a tokenized corpus into training blocks — either
 * "concatenate and split" (every line's ids, without specials, concatenated
 * and cut into blocks of max_seq_len-2 content tokens, each wrapped
 * [CLS] ... [SEP]) or "one block per line" (each non-empty line truncated to
 * max_seq_len-2 and wrapped); (b) the masking rule of HF
 * DataCollatorForLanguageModeling (15% selected; of those 80% [MASK], 10% a
 * uniform random id in [0, vocab), 10% unchanged; labels -100 elsewhere), with
 * optional whole-word masking.
 * Must not: tokenize, allocate per call, or use any randomness other than
 * Philox stream BT_STREAM_MLM_MASK. Every draw is a pure function of
 * (seed, epoch, example id, position), so a resumed run masks identically and
 * CPU and GPU builds agree. See docs/tasks.md.
 */
#ifndef BATON_ENGINE_MLM_H
#define BATON_ENGINE_MLM_H

#include <stddef.h>
#include <stdint.h>

/* The epoch key used for evaluation masks: fixed per (seed, example id). */
#define BT_MLM_EVAL_EPOCH 0xFFFFFFFFu
/* The label of a position that does not contribute to the loss (HF/PyTorch). */
#define BT_MLM_IGNORE (-100)

typedef enum {
    BT_MLM_GROUP_CONCAT = 0, /* concatenate all lines, split into full blocks */
    BT_MLM_GROUP_LINE = 1,   /* one block per non-empty line, truncated */
} bt_mlm_grouping;

/* A block's content: ids[start .. start+len) of the flat corpus array (no
 * specials); the block fed to the model is [CLS] content [SEP]. */
typedef struct {
    size_t start;
    int32_t len;
} bt_mlm_span;

typedef struct {
    bt_mlm_span *spans; /* [n] heap */
    size_t n;
} bt_mlm_blocks;

/* Groups a corpus held as one flat id array with line offsets
 * line_off[0..n_lines] (line i = ids[line_off[i] .. line_off[i+1]), offsets
 * non-decreasing, line_off[0] usually 0) into blocks.
 *   CONCAT: content tokens line_off[0] .. line_off[n_lines] cut into blocks of
 *     W = max_seq_len-2; the short remainder is dropped (as HF group_texts)
 *     unless keep_remainder, when it becomes a last, shorter block. Line
 *     boundaries are ignored (a block may start mid-line or mid-word).
 *   LINE: one block per line with at least one token, its first W tokens.
 * max_seq_len must be >= 3. Returns 0, or BT_ECONFIG / BT_EDATA (offsets not
 * monotonic) with a message. out->spans is NULL when out->n == 0. */
int bt_mlm_make_blocks(bt_mlm_grouping mode, const size_t *line_off, size_t n_lines,
                       int max_seq_len, int keep_remainder, bt_mlm_blocks *out);
void bt_mlm_blocks_free(bt_mlm_blocks *b);

/* Writes [CLS] ids[span] [SEP] to out (room for span.len+2); returns the length.
 * is_cont (may be NULL) gives the per-token "##" continuation flags of the
 * corpus; when cont_out is non-NULL it receives the flags of the block (0 for
 * [CLS]/[SEP], and 0 for a first content token that continues a word cut by
 * the block boundary: within a block it starts its own word). */
int bt_mlm_wrap(const int32_t *ids, const uint8_t *is_cont, bt_mlm_span span, int32_t cls_id,
                int32_t sep_id, int32_t *out, uint8_t *cont_out);

typedef struct {
    int32_t vocab_size;   /* random replacements are uniform over [0, vocab_size) */
    int32_t mask_id;      /* [MASK] */
    int32_t cls_id, sep_id, pad_id; /* never selected (-1: none) */
    const int32_t *extra_special; /* further ids never selected (may be NULL) */
    int n_extra_special;
    float probability;    /* selection probability, HF default 0.15 */
    float mask_frac;      /* of selected: replaced by [MASK], HF 0.8 */
    float random_frac;    /* of selected: replaced by a random id, HF 0.1 (rest unchanged) */
    int whole_word;       /* 1: select whole words (needs is_cont flags) */
} bt_mlm_config;

/* The HF defaults for the given vocabulary and special ids. */
bt_mlm_config bt_mlm_config_default(int32_t vocab_size, int32_t mask_id, int32_t cls_id,
                                    int32_t sep_id, int32_t pad_id);

/* Checks a config (probabilities in range, mask id inside the vocabulary,
 * mask_frac + random_frac <= 1). BT_ECONFIG with a message otherwise. */
int bt_mlm_config_check(const bt_mlm_config *c);

/* Masks one sequence in place.
 *   ids     [n] in: the block ([CLS] ... [SEP] [PAD]...), out: the model input
 *   is_cont [n] per-token continuation flags (1 = "##" piece), or NULL; used
 *           only when c->whole_word
 *   labels  [n] out: the original id at selected positions, BT_MLM_IGNORE elsewhere
 * Draws: position p uses r = bt_random4(seed, BT_STREAM_MLM_MASK, epoch,
 * example_id, p, 0). A word (a non-special token and the continuation pieces
 * that follow it; without whole_word every token is its own word) is selected
 * iff u01(r_first.v[0]) < probability, where r_first is the draw of its first
 * piece; the action for all its pieces is decided by u01(r_first.v[1]):
 * < mask_frac -> [MASK], < mask_frac+random_frac -> random, else unchanged;
 * a random replacement at position p is ((r_p.v[2] << 32) | r_p.v[3]) mod
 * vocab_size. Use epoch = BT_MLM_EVAL_EPOCH for evaluation data.
 * Returns the number of selected positions. The config must have passed
 * bt_mlm_config_check. */
int bt_mlm_mask(const bt_mlm_config *c, uint64_t seed, uint32_t epoch, uint32_t example_id,
                int32_t *ids, const uint8_t *is_cont, int n, int32_t *labels);

#endif
