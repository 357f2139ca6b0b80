/* engine/tokenizer_added.c — a vocab.txt model directory with added tokens.
 *
 * Owns: finding the tokens a user added to a WordPiece tokenizer saved
 * without a tokenizer.json (the slow BertTokenizer: tokenizer_config.json
 * "added_tokens_decoder", the older added_tokens.json) and, when some are
 * not plain vocabulary entries, building the tokenizer.json that
 * transformers' slow-to-fast conversion (BertConverter) would build from the
 * directory, so the tokenizer.json pipeline applies the added tokens with
 * their exact semantics (special or not, normalized, lstrip/rstrip,
 * single_word).
 * Must not: change anything for a directory whose added tokens are all in
 * vocab.txt at their ids (the usual [PAD]/[UNK]/[CLS]/[SEP]/[MASK]): those
 * keep the BERT engine of engine/tokenizer.c.
 */
#include "engine/tokenizer_internal.h"
#include "util/err.h"
#include "util/file.h"
#include "util/json.h"
#include "util/mem.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* vocab.txt lines as a {token: id} object; NULL when it cannot be read. */
static json_t *vocab_object(const char *dir, size_t *n_lines)
{
    char *path = bt_path_join(dir, "vocab.txt"), *v = NULL;
    size_t len = 0;
    int rc = bt_read_file(path, (size_t)1 << 30, &v, &len);
    free(path);
    if (rc) {
        bt_err_clear();
        return NULL;
    }
    json_t *o = json_object();
    size_t id = 0;
    for (char *p = v, *end = v + len; p < end; id++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (n && p[n - 1] == '\r') n--;
        char *tok = bt_xstrndup(p, n);
        if (!json_object_get(o, tok)) json_object_set_new(o, tok, json_integer((json_int_t)id)); /* first wins */
        free(tok);
        p = nl ? nl + 1 : end;
    }
    free(v);
    *n_lines = id;
    return o;
}

static int flag(json_t *o, const char *key, int dflt)
{
    json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static int by_id(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "id"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "id"));
    return x < y ? -1 : x > y;
}

/* The added tokens as tokenizer.json entries, in id order: tokenizer_config's
 * added_tokens_decoder, else added_tokens.json (special when listed in
 * additional_special_tokens; normalized = not special, as transformers
 * loads it). *extra: how many are not vocab.txt entries at their id. */
static json_t *added_tokens(const char *dir, json_t *cfg, json_t *vocab, size_t n_vocab, int *extra)
{
    json_t *out = json_array();
    *extra = 0;
    json_t *dec = cfg ? json_object_get(cfg, "added_tokens_decoder") : NULL;
    json_t *legacy = NULL;
    if (!json_is_object(dec) || !json_object_size(dec)) {
        char *p = bt_path_join(dir, "added_tokens.json");
        if (bt_path_exists(p) && bt_json_load_file_py(p, 64u << 20, "fix or remove it", &legacy)) bt_err_clear();
        free(p);
        dec = NULL;
    }
    json_t *addl = cfg ? json_object_get(cfg, "additional_special_tokens") : NULL, *map = NULL;
    if (!addl && legacy) { /* older directories list them in special_tokens_map.json only */
        char *p = bt_path_join(dir, "special_tokens_map.json");
        if (bt_path_exists(p) && bt_json_load_file_py(p, 16u << 20, "fix or remove it", &map)) bt_err_clear();
        free(p);
        addl = map ? json_object_get(map, "additional_special_tokens") : NULL;
    }
    const char *k;
    json_t *v;
    if (dec) {
        json_object_foreach(dec, k, v) {
            const char *c = json_string_value(json_object_get(v, "content"));
            if (!json_is_object(v) || !c) continue;
            int special = flag(v, "special", 0);
            json_array_append_new(out, json_pack("{s:I,s:s,s:b,s:b,s:b,s:b,s:b}", "id", (json_int_t)atol(k), "content",
                                                 c, "single_word", flag(v, "single_word", 0), "lstrip",
                                                 flag(v, "lstrip", 0), "rstrip", flag(v, "rstrip", 0), "normalized",
                                                 flag(v, "normalized", !special), "special", special));
        }
    } else if (json_is_object(legacy)) {
        json_object_foreach(legacy, k, v) {
            int special = 0;
            size_t i;
            json_t *s;
            json_array_foreach(addl, i, s) {
                if (json_is_object(s)) s = json_object_get(s, "content");
                special |= json_is_string(s) && !strcmp(json_string_value(s), k);
            }
            json_array_append_new(out, json_pack("{s:I,s:s,s:b,s:b,s:b,s:b,s:b}", "id", json_integer_value(v),
                                                 "content", k, "single_word", 0, "lstrip", 0, "rstrip", 0,
                                                 "normalized", !special, "special", special));
        }
    }
    json_decref(legacy);
    json_decref(map);
    /* in id order: tokenizer.json's added tokens take the next free ids in the order they are listed */
    size_t n = json_array_size(out);
    json_t **e = bt_xcalloc(n ? n : 1, sizeof *e);
    for (size_t a = 0; a < n; a++) e[a] = json_incref(json_array_get(out, a));
    qsort(e, n, sizeof *e, by_id);
    json_array_clear(out);
    for (size_t a = 0; a < n; a++) json_array_append_new(out, e[a]);
    free(e);
    size_t i;
    json_array_foreach(out, i, v) {
        json_int_t id = json_integer_value(json_object_get(v, "id"));
        json_t *at = json_object_get(vocab, json_string_value(json_object_get(v, "content")));
        if (id < 0 || (size_t)id >= n_vocab || !at || json_integer_value(at) != id) (*extra)++;
    }
    return out;
}

static json_t *special_piece(const char *name, int type_id)
{
    return json_pack("{s:{s:s,s:i}}", "SpecialToken", "id", name, "type_id", type_id);
}

static json_t *seq_piece(const char *seq, int type_id)
{
    return json_pack("{s:{s:s,s:i}}", "Sequence", "id", seq, "type_id", type_id);
}

static const char *role(json_t *cfg, const char *key, const char *dflt)
{
    json_t *v = cfg ? json_object_get(cfg, key) : NULL;
    if (json_is_object(v)) v = json_object_get(v, "content");
    return json_is_string(v) ? json_string_value(v) : dflt;
}

/* BertConverter's tokenizer.json for the directory. */
static json_t *bert_tokenizer_json(json_t *cfg, json_t *vocab, json_t *added)
{
    const char *cls = role(cfg, "cls_token", "[CLS]"), *sep = role(cfg, "sep_token", "[SEP]");
    const char *unk = role(cfg, "unk_token", "[UNK]");
    int lower = cfg ? flag(cfg, "do_lower_case", 1) : 1;
    json_t *strip = cfg ? json_object_get(cfg, "strip_accents") : NULL;
    json_t *norm = json_pack("{s:s,s:b,s:b,s:O,s:b}", "type", "BertNormalizer", "clean_text", 1,
                             "handle_chinese_chars", cfg ? flag(cfg, "tokenize_chinese_chars", 1) : 1, "strip_accents",
                             json_is_boolean(strip) ? strip : json_null(), "lowercase", lower);
    json_t *single = json_pack("[o,o,o]", special_piece(cls, 0), seq_piece("A", 0), special_piece(sep, 0));
    json_t *pair = json_pack("[o,o,o,o,o]", special_piece(cls, 0), seq_piece("A", 0), special_piece(sep, 0),
                             seq_piece("B", 1), special_piece(sep, 1));
    json_t *sp = json_object();
    const char *names[2] = {cls, sep};
    for (int i = 0; i < 2; i++) {
        json_t *id = json_object_get(vocab, names[i]);
        json_object_set_new(sp, names[i], json_pack("{s:s,s:[O],s:[s]}", "id", names[i], "ids",
                                                    id ? id : json_integer(0), "tokens", names[i]));
    }
    json_t *post = json_pack("{s:s,s:o,s:o,s:o}", "type", "TemplateProcessing", "single", single, "pair", pair,
                             "special_tokens", sp);
    json_t *model = json_pack("{s:s,s:s,s:s,s:i,s:O}", "type", "WordPiece", "unk_token", unk,
                              "continuing_subword_prefix", "##", "max_input_chars_per_word", 100, "vocab", vocab);
    return json_pack("{s:s,s:n,s:n,s:O,s:o,s:{s:s},s:o,s:n,s:o}", "version", "1.0", "truncation", "padding",
                     "added_tokens", added, "normalizer", norm, "pre_tokenizer", "type", "BertPreTokenizer",
                     "post_processor", post, "decoder", "model", model);
}

int tok_vocab_added_json(const char *dir, char **json_text)
{
    *json_text = NULL;
    size_t n_vocab = 0;
    json_t *vocab = vocab_object(dir, &n_vocab);
    if (!vocab) return 0;
    json_t *cfg = NULL;
    char *cpath = bt_path_join(dir, "tokenizer_config.json");
    if (bt_path_exists(cpath) && bt_json_load_file_py(cpath, 64u << 20, "fix or remove it", &cfg)) bt_err_clear();
    free(cpath);
    if (cfg && !json_is_object(cfg)) {
        json_decref(cfg);
        cfg = NULL;
    }
    int extra = 0;
    json_t *added = added_tokens(dir, cfg, vocab, n_vocab, &extra);
    if (extra) {
        json_t *tj = bert_tokenizer_json(cfg, vocab, added);
        *json_text = json_dumps(tj, JSON_COMPACT);
        json_decref(tj);
    }
    json_decref(added);
    json_decref(vocab);
    json_decref(cfg);
    return 0;
}
