/* engine/mlm.c — MLM blocks and masking (see mlm.h and docs/tasks.md).
 *
 * Owns: the block boundaries of both groupings and the masking decisions.
 * Must not: keep state between calls: masking is a pure function of its
 * arguments, which is what makes resumed runs mask identically.
 */
#include "engine/mlm.h"
#include "kernels/philox.h"
#include "util/err.h"
#include "util/mem.h"

#include <stdlib.h>
#include <string.h>

int bt_mlm_make_blocks(bt_mlm_grouping mode, const size_t *line_off, size_t n_lines,
                       int max_seq_len, int keep_remainder, bt_mlm_blocks *out)
{
    out->spans = NULL;
    out->n = 0;
    if (max_seq_len < 3)
        return bt_fail(BT_ECONFIG, "mlm: max_seq_len %d is too small: need room for [CLS], one token and [SEP] (use >= 3)",
                       max_seq_len);
    if (mode != BT_MLM_GROUP_CONCAT && mode != BT_MLM_GROUP_LINE)
        return bt_fail(BT_ECONFIG, "mlm: unknown grouping %d", (int)mode);
    for (size_t i = 0; i < n_lines; i++)
        if (line_off[i + 1] < line_off[i])
            return bt_fail(BT_EDATA, "mlm: line offsets decrease at line %zu (%zu < %zu)", i + 1,
                           line_off[i + 1], line_off[i]);
    size_t w = (size_t)max_seq_len - 2;
    size_t n = 0;
    if (mode == BT_MLM_GROUP_CONCAT) {
        size_t total = n_lines ? line_off[n_lines] - line_off[0] : 0;
        n = total / w + (keep_remainder && total % w ? 1 : 0);
        if (n) out->spans = bt_xmalloc(n * sizeof *out->spans);
        for (size_t b = 0; b < n; b++) {
            size_t len = total - b * w < w ? total - b * w : w;
            out->spans[b].start = line_off[0] + b * w;
            out->spans[b].len = (int32_t)len;
        }
    } else {
        for (size_t i = 0; i < n_lines; i++) n += line_off[i + 1] > line_off[i];
        if (n) out->spans = bt_xmalloc(n * sizeof *out->spans);
        size_t b = 0;
        for (size_t i = 0; i < n_lines; i++) {
            size_t len = line_off[i + 1] - line_off[i];
            if (!len) continue;
            out->spans[b].start = line_off[i];
            out->spans[b].len = (int32_t)(len < w ? len : w);
            b++;
        }
    }
    out->n = n;
    return 0;
}

void bt_mlm_blocks_free(bt_mlm_blocks *b)
{
    free(b->spans);
    b->spans = NULL;
    b->n = 0;
}

int bt_mlm_wrap(const int32_t *ids, const uint8_t *is_cont, bt_mlm_span span, int32_t cls_id,
                int32_t sep_id, int32_t *out, uint8_t *cont_out)
{
    int n = span.len;
    out[0] = cls_id;
    memcpy(out + 1, ids + span.start, (size_t)n * sizeof *out);
    out[n + 1] = sep_id;
    if (cont_out) {
        cont_out[0] = 0;
        for (int i = 0; i < n; i++) cont_out[1 + i] = is_cont ? (is_cont[span.start + (size_t)i] != 0) : 0;
        if (n > 0) cont_out[1] = 0; /* a word cut by the block boundary starts afresh here */
        cont_out[n + 1] = 0;
    }
    return n + 2;
}

bt_mlm_config bt_mlm_config_default(int32_t vocab_size, int32_t mask_id, int32_t cls_id,
                                    int32_t sep_id, int32_t pad_id)
{
    bt_mlm_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = vocab_size;
    c.mask_id = mask_id;
    c.cls_id = cls_id;
    c.sep_id = sep_id;
    c.pad_id = pad_id;
    c.probability = 0.15f;
    c.mask_frac = 0.8f;
    c.random_frac = 0.1f;
    return c;
}

int bt_mlm_config_check(const bt_mlm_config *c)
{
    if (c->vocab_size <= 0) return bt_fail(BT_ECONFIG, "mlm: vocab_size %d must be positive", c->vocab_size);
    if (c->mask_id < 0 || c->mask_id >= c->vocab_size)
        return bt_fail(BT_ECONFIG, "mlm: [MASK] id %d is outside the vocabulary [0, %d): check vocab.txt has [MASK]",
                       c->mask_id, c->vocab_size);
    if (!(c->probability >= 0.0f && c->probability <= 1.0f))
        return bt_fail(BT_ECONFIG, "mlm: mlm_probability %g must be in [0, 1] (HF default 0.15)", c->probability);
    if (!(c->mask_frac >= 0.0f && c->mask_frac <= 1.0f) || !(c->random_frac >= 0.0f && c->random_frac <= 1.0f) ||
        !(c->mask_frac + c->random_frac <= 1.0f + 1e-6f))
        return bt_fail(BT_ECONFIG,
                       "mlm: mask fraction %g and random fraction %g must be in [0, 1] and sum to at most 1 (HF: 0.8, 0.1)",
                       c->mask_frac, c->random_frac);
    if (c->n_extra_special < 0 || (c->n_extra_special > 0 && !c->extra_special))
        return bt_fail(BT_ECONFIG, "mlm: %d extra special ids but no array", c->n_extra_special);
    return 0;
}

static int is_special(const bt_mlm_config *c, int32_t id)
{
    if (id == c->cls_id || id == c->sep_id || id == c->pad_id) return 1;
    for (int i = 0; i < c->n_extra_special; i++)
        if (id == c->extra_special[i]) return 1;
    return 0;
}

int bt_mlm_mask(const bt_mlm_config *c, uint64_t seed, uint32_t epoch, uint32_t example_id,
                int32_t *ids, const uint8_t *is_cont, int n, int32_t *labels)
{
    int selected = 0;
    int in_word = 0;      /* previous position was part of a (non-special) word */
    int word_action = -1; /* -1 not selected, 0 [MASK], 1 random, 2 keep */
    for (int p = 0; p < n; p++) {
        int32_t id = ids[p];
        labels[p] = BT_MLM_IGNORE;
        if (is_special(c, id)) {
            in_word = 0;
            continue;
        }
        bt_u32x4 r = bt_random4(seed, BT_STREAM_MLM_MASK, epoch, example_id, (uint32_t)p, 0);
        int continues = c->whole_word && is_cont && is_cont[p] && in_word;
        if (!continues) {
            word_action = -1;
            if (bt_u01(r.v[0]) < c->probability) {
                float u = bt_u01(r.v[1]);
                word_action = u < c->mask_frac ? 0 : u < c->mask_frac + c->random_frac ? 1 : 2;
            }
        }
        in_word = 1;
        if (word_action < 0) continue;
        labels[p] = id;
        selected++;
        if (word_action == 0) {
            ids[p] = c->mask_id;
        } else if (word_action == 1) {
            uint64_t x = ((uint64_t)r.v[2] << 32) | r.v[3];
            ids[p] = (int32_t)(x % (uint64_t)c->vocab_size);
        }
    }
    return selected;
}
