/* runner/model_tokenizer.c — the tokenizer's part of a run's fingerprint and
 * snapshots, and the pair-type rule (see model_tokenizer.h).
 */
#include "runner/model_tokenizer.h"

#include "engine/init.h"
#include "engine/model_config.h"
#include "util/sha256.h"

#include <jansson.h>
#include <string.h>

void bt_run_tokenizer_hex(const bt_tokenizer *tok, char hex[65])
{
    uint8_t d[32];
    bt_tokenizer_fingerprint(tok, d);
    bt_sha256_hex(d, hex);
}

char *bt_run_fingerprint_for_archive(const char *archive_fp, const char *job_fp, const char *vocab_txt)
{
    json_t *a = json_loads(archive_fp, 0, NULL), *j = json_loads(job_fp, 0, NULL);
    char *out = NULL;
    if (json_is_object(a) && json_is_object(j)) {
        if (json_object_get(a, BT_FP_VOCAB_KEY) && !json_object_get(a, BT_FP_TOKENIZER_KEY) &&
            json_object_get(j, BT_FP_TOKENIZER_KEY)) {
            uint8_t d[32];
            char hex[65];
            bt_sha256(vocab_txt ? vocab_txt : "", vocab_txt ? strlen(vocab_txt) : 0, d);
            bt_sha256_hex(d, hex);
            json_object_del(j, BT_FP_TOKENIZER_KEY);
            json_object_set_new(j, BT_FP_VOCAB_KEY, json_string(hex));
        }
        out = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17) | JSON_ENSURE_ASCII);
    }
    json_decref(a);
    json_decref(j);
    return out;
}

void bt_run_snapshot_tokenizer(bt_snapshot *s, const bt_tokenizer_files *tf)
{
    s->vocab_txt = tf->text[BT_TOKFILE_VOCAB];
    s->tokenizer_json = tf->text[BT_TOKFILE_JSON];
    s->tokenizer_config_json = tf->text[BT_TOKFILE_CONFIG];
    s->special_tokens_map_json = tf->text[BT_TOKFILE_SPECIAL];
}

int bt_run_pair_types(const struct bt_model_config *c)
{
    int fam = bt_model_family(c->model_type);
    return fam == BT_FAMILY_BERT || fam == BT_FAMILY_ELECTRA /* ELECTRA: BERT's token types */
           || (fam == BT_FAMILY_DEBERTA && c->type_vocab_size > 1);
}
