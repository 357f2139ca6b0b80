/* engine/tokenizer_json.c — a model directory with a tokenizer.json.
 *
 * Owns: what bt_tokenizer_load does when MODEL_DIR has tokenizer.json (it is
 * used, as transformers' AutoTokenizer uses it, even beside a vocab.txt):
 * the special-token roles (cls/bos, sep/eos, pad, unk, mask) from the
 * post-processor's template and tokenizer_config.json; the checks that
 * tokenizer_config.json and a vocab.txt beside it say the same as
 * tokenizer.json; and compiling a plain BERT tokenizer.json into the fast
 * BERT engine of engine/tokenizer.c (same ids, its speed).
 * Must not: encode text, or accept a directory whose files disagree.
 */
#include "engine/tokenizer_internal.h"
#include "util/err.h"
#include "util/file.h"
#include "util/json.h"
#include "util/mem.h"
#include "util/sha256.h"

#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum { R_CLS, R_SEP, R_PAD, R_UNK, R_MASK, R_BOS, R_EOS, N_ROLES };
static const char *const role_keys[N_ROLES] = {"cls_token", "sep_token", "pad_token", "unk_token", "mask_token",
                                               "bos_token", "eos_token"};

typedef struct {
    char *names[N_ROLES];
    long model_max_length;
    int lower, strip, cjk;   /* -1: not set */
    int trunc_left;
    char *text;              /* the file, for the fingerprint */
    size_t len;
} tcfg;

static void tcfg_free(tcfg *c)
{
    for (int i = 0; i < N_ROLES; i++) free(c->names[i]);
    free(c->text);
}

static int opt_bool(json_t *root, const char *key, int *out, const char *path)
{
    json_t *v = json_object_get(root, key);
    *out = -1;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) return bt_fail(BT_ECONFIG, "%s: \"%s\" must be true, false or null", path, key);
    *out = json_is_true(v);
    return 0;
}

static int read_config(const char *dir, tcfg *c)
{
    memset(c, 0, sizeof *c);
    c->lower = c->strip = c->cjk = -1;
    char *path = bt_path_join(dir, "tokenizer_config.json");
    int rc = bt_read_file(path, (size_t)64 << 20, &c->text, &c->len);
    if (rc == BT_ENOINPUT) { bt_err_clear(); free(path); return 0; }
    if (rc) { free(path); return rc; }
    json_error_t jerr;
    json_t *root = bt_json_loads_py(c->text, c->len, &jerr); /* as transformers reads it (huge ints, NaN) */
    if (!root) {
        rc = bt_fail(BT_ECONFIG, "%s:%d:%d: %s: fix or remove the file", path, jerr.line, jerr.column, jerr.text);
        free(path);
        return rc;
    }
    if (!json_is_object(root)) rc = bt_fail(BT_ECONFIG, "%s: expected a JSON object", path);
    if (!rc) rc = opt_bool(root, "do_lower_case", &c->lower, path);
    if (!rc) rc = opt_bool(root, "strip_accents", &c->strip, path);
    if (!rc) rc = opt_bool(root, "tokenize_chinese_chars", &c->cjk, path);
    json_t *m = rc ? NULL : json_object_get(root, "model_max_length");
    if (m && json_is_number(m)) {
        double d = json_number_value(m);
        c->model_max_length = (d >= 1 && d <= INT32_MAX) ? (long)d : 0;
    } else if (m && !json_is_null(m)) {
        rc = bt_fail(BT_ECONFIG, "%s: \"model_max_length\" must be a number", path);
    }
    json_t *side = rc ? NULL : json_object_get(root, "truncation_side");
    if (side && !json_is_null(side)) {
        const char *s = json_is_string(side) ? json_string_value(side) : "";
        if (!strcmp(s, "left")) c->trunc_left = 1;
        else if (strcmp(s, "right"))
            rc = bt_fail(BT_ECONFIG, "%s: \"truncation_side\" must be \"right\" or \"left\"", path);
    }
    for (int i = 0; !rc && i < N_ROLES; i++) {
        json_t *v = json_object_get(root, role_keys[i]);
        if (!v || json_is_null(v)) continue;
        if (json_is_object(v)) v = json_object_get(v, "content"); /* serialized AddedToken */
        if (!json_is_string(v))
            rc = bt_fail(BT_ECONFIG, "%s: \"%s\" must be a string (or an AddedToken object with \"content\")", path,
                         role_keys[i]);
        else c->names[i] = bt_xstrdup(json_string_value(v));
    }
    json_decref(root);
    free(path);
    return rc;
}

/* id of the special token at the start (last = 0) or end of the single template, or -1 */
static int32_t template_edge(const tj_post *pp, int last)
{
    if (!pp->n_single) return -1;
    const tj_piece_tpl *p = &pp->single[last ? pp->n_single - 1 : 0];
    return !p->is_seq && p->n_ids == 1 ? p->ids[0] : -1;
}

static int32_t first_known(const tj *j, const char *const *names)
{
    for (; *names; names++) {
        int32_t id = tj_token_id(j, *names, strlen(*names));
        if (id >= 0) return id;
    }
    return -1;
}

static int resolve_roles(const tj *j, const tcfg *c, const char *dir, bt_special_ids *ids)
{
    int32_t cfg_id[N_ROLES];
    for (int i = 0; i < N_ROLES; i++) {
        cfg_id[i] = -1;
        if (!c->names[i]) continue;
        cfg_id[i] = tj_token_id(j, c->names[i], strlen(c->names[i]));
        if (cfg_id[i] < 0)
            return bt_fail(BT_ECONFIG, "%s/tokenizer_config.json: %s \"%s\" is not in tokenizer.json (neither an added "
                           "token nor in the model's vocabulary): fix %s, or add the token", dir, role_keys[i],
                           c->names[i], role_keys[i]);
    }
    static const char *const pads[] = {"[PAD]", "<pad>", NULL}, *const unks[] = {"[UNK]", "<unk>", NULL},
                             *const masks[] = {"[MASK]", "<mask>", NULL}, *const clss[] = {"[CLS]", "<s>", NULL},
                             *const seps[] = {"[SEP]", "</s>", NULL};
    int32_t e;
    ids->cls = (e = template_edge(&j->post, 0)) >= 0 ? e : cfg_id[R_CLS] >= 0 ? cfg_id[R_CLS]
             : cfg_id[R_BOS] >= 0 ? cfg_id[R_BOS] : first_known(j, clss);
    ids->sep = (e = template_edge(&j->post, 1)) >= 0 ? e : cfg_id[R_SEP] >= 0 ? cfg_id[R_SEP]
             : cfg_id[R_EOS] >= 0 ? cfg_id[R_EOS] : first_known(j, seps);
    ids->pad = cfg_id[R_PAD] >= 0 ? cfg_id[R_PAD] : first_known(j, pads);
    ids->unk = cfg_id[R_UNK] >= 0 ? cfg_id[R_UNK] : j->model.unk >= 0 ? j->model.unk : first_known(j, unks);
    ids->mask = cfg_id[R_MASK] >= 0 ? cfg_id[R_MASK] : first_known(j, masks);
    return 0;
}

/* transformers' BertTokenizerFast replaces a BertNormalizer whose flags differ
 * from tokenizer_config.json: refuse the disagreement instead of guessing */
static int check_bert_flags(const tj *j, const tcfg *c, const char *dir)
{
    for (size_t i = 0; i < j->n_norms; i++) {
        const tj_norm *n = &j->norms[i];
        if (n->kind != TJN_BERT) continue;
        const char *key = NULL;
        if (c->lower >= 0 && c->lower != n->lower) key = "do_lower_case";
        else if (c->strip >= 0 && c->strip != n->strip_accents) key = "strip_accents";
        else if (c->cjk >= 0 && c->cjk != n->cjk) key = "tokenize_chinese_chars";
        if (key)
            return bt_fail(BT_ECONFIG, "%s: tokenizer_config.json sets \"%s\" differently from tokenizer.json's "
                           "BertNormalizer (transformers would rebuild the normalizer from tokenizer_config.json): "
                           "make the two files agree", dir, key);
    }
    return 0;
}

/* vocab.txt beside a WordPiece tokenizer.json must be the same vocabulary:
 * checkpoints and exports carry vocab.txt */
static int check_vocab_txt(const tj *j, const char *dir)
{
    if (j->model.kind != TJM_WORDPIECE) return 0;
    char *path = bt_path_join(dir, "vocab.txt"), *v = NULL;
    size_t len = 0;
    int rc = bt_read_file(path, (size_t)1 << 30, &v, &len);
    if (rc == BT_ENOINPUT) { bt_err_clear(); free(path); return 0; }
    if (rc) { free(path); return rc; }
    tj_vocab txt = {0};
    size_t pos = 0, line = 0;
    while (pos < len) {
        const char *nl = memchr(v + pos, '\n', len - pos);
        size_t l = nl ? (size_t)(nl - (v + pos)) : len - pos, tl = l;
        if (tl && v[pos + tl - 1] == '\r') tl--;
        tj_vocab_put(&txt, v + pos, tl, (int32_t)line++);
        pos += l + 1;
    }
    const tj_vocab *m = &j->model.vocab;
    for (size_t i = 0; i < m->n && !rc; i++) {
        int32_t a = tj_vocab_get(&txt, m->arena + m->off[i], m->len[i]);
        if (a != m->ids[i])
            rc = bt_fail(BT_ECONFIG, "%s: vocab.txt and tokenizer.json disagree: token \"%.60s\" has id %d in "
                         "tokenizer.json and %d in vocab.txt (-1: absent). baton tokenizes with tokenizer.json (as "
                         "transformers does) and saves vocab.txt in checkpoints: remove the stale file or save the "
                         "tokenizer again", dir, m->arena + m->off[i], m->ids[i], a);
    }
    if (!rc && txt.n != m->n)
        rc = bt_fail(BT_ECONFIG, "%s: vocab.txt has %zu distinct tokens, tokenizer.json's WordPiece %zu: remove the "
                     "stale file or save the tokenizer again", dir, txt.n, m->n);
    tj_vocab_free(&txt);
    free(v);
    free(path);
    return rc;
}

static int is_special(const tj_piece_tpl *p, int32_t id, int32_t type_id)
{
    return !p->is_seq && p->n_ids == 1 && p->ids[0] == id && p->type_id == type_id;
}
static int is_seq(const tj_piece_tpl *p, int seq, int32_t type_id)
{
    return p->is_seq && p->seq == seq && p->type_id == type_id;
}

/* A tokenizer.json that says exactly what the BERT engine does: compile into it. */
static int bert_compatible(const tj *j, int32_t cls, int32_t sep)
{
    const tj_model *m = &j->model;
    if (j->n_norms != 1 || j->norms[0].kind != TJN_BERT || !j->norms[0].clean) return 0;
    if (j->n_pretoks != 1 || j->pretoks[0].kind != TJP_BERT) return 0;
    if (m->kind != TJM_WORDPIECE || strcmp(m->prefix, "##") || m->max_chars != 100 || m->unk < 0) return 0;
    if (j->trunc_left) return 0;
    const tj_post *pp = &j->post;
    if (pp->n_single != 3 || !is_special(&pp->single[0], cls, 0) || !is_seq(&pp->single[1], 0, 0) ||
        !is_special(&pp->single[2], sep, 0))
        return 0;
    if (pp->n_pair != 5 || !is_special(&pp->pair[0], cls, 0) || !is_seq(&pp->pair[1], 0, 0) ||
        !is_special(&pp->pair[2], sep, 0) || !is_seq(&pp->pair[3], 1, 1) || !is_special(&pp->pair[4], sep, 1))
        return 0;
    size_t n = m->vocab.n;
    uint8_t *seen = bt_xcalloc(n ? n : 1, 1);
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++) {
        int32_t id = m->vocab.ids[i];
        const char *s = m->vocab.arena + m->vocab.off[i];
        size_t l = m->vocab.len[i];
        if ((size_t)id >= n || seen[id] || memchr(s, '\n', l) || memchr(s, '\0', l) || (l && s[l - 1] == '\r')) ok = 0;
        else seen[id] = 1;
    }
    free(seen);
    for (size_t i = 0; i < j->n_added && ok; i++) {
        const tj_added *a = &j->added[i];
        if (a->normalized || a->lstrip || a->rstrip || a->single_word || (size_t)a->id >= n) ok = 0;
    }
    return ok;
}

static int compile_bert(bt_tokenizer *t, const tj *j, const char *where)
{
    const tj_vocab *m = &j->model.vocab;
    size_t n = m->n, total = 0;
    const char **by_id = bt_xcalloc(n, sizeof *by_id);
    size_t *len = bt_xcalloc(n, sizeof *len);
    for (size_t i = 0; i < n; i++) {
        by_id[m->ids[i]] = m->arena + m->off[i];
        len[m->ids[i]] = m->len[i];
        total += m->len[i] + 1;
    }
    char *text = bt_xmalloc(total + 1), *p = text;
    for (size_t i = 0; i < n; i++) {
        memcpy(p, by_id[i], len[i]);
        p += len[i];
        *p++ = '\n';
    }
    int rc = tok_parse_vocab(t, text, (size_t)(p - text), where);
    free(text);
    free(by_id);
    free(len);
    if (rc) return rc;
    const tj_norm *bn = &j->norms[0];
    t->cfg.lowercase = bn->lower;
    t->cfg.strip_accents = bn->strip_accents;
    t->cfg.chinese_chars = bn->cjk;
    for (size_t i = 0; i < j->n_added; i++) tok_add_special(t, j->added[i].content, j->added[i].len, j->added[i].id);
    t->wp_unk = j->model.unk;
    tok_build_tables(t);
    return 0;
}

int tok_load_json(const char *dir, const char *jpath, bt_tokenizer **out)
{
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc = bt_read_file(jpath, (size_t)1 << 30, &text, &len);
    if (rc) return rc;
    rc = tok_load_json_text(dir, text, len, jpath, "tokenizer.json", out);
    free(text);
    return rc;
}

int tok_load_json_text(const char *dir, const char *text, size_t len, const char *jpath, const char *source,
                       bt_tokenizer **out)
{
    *out = NULL;
    int rc;
    tj *j = NULL;
    tcfg c;
    memset(&c, 0, sizeof c);
    rc = tj_load(text, len, jpath, &j);
    if (!rc) rc = read_config(dir, &c);
    bt_tokenizer *t = NULL;
    if (!rc) {
        j->trunc_left = c.trunc_left;
        t = bt_xcalloc(1, sizeof *t);
        t->source = source;
        t->cfg.model_max_length = c.model_max_length;
        for (size_t i = 0; i < j->n_norms; i++)
            if (j->norms[i].kind == TJN_BERT) {
                t->cfg.lowercase = j->norms[i].lower;
                t->cfg.strip_accents = j->norms[i].strip_accents;
                t->cfg.chinese_chars = j->norms[i].cjk;
                break;
            }
        bt_sha256_ctx *h = bt_sha256_new();
        bt_sha256_update(h, "tokenizer.json\n", 15);
        bt_sha256_update(h, text, len);
        if (c.text) {
            bt_sha256_update(h, "tokenizer_config.json\n", 22);
            bt_sha256_update(h, c.text, c.len);
        }
        bt_sha256_final(h, t->fingerprint);
        rc = check_bert_flags(j, &c, dir);
        if (!rc) rc = resolve_roles(j, &c, dir, &t->ids);
        if (!rc) rc = check_vocab_txt(j, dir);
    }
    if (!rc && bert_compatible(j, t->ids.cls, t->ids.sep)) {
        rc = compile_bert(t, j, jpath);
        tj_free(j);
        j = NULL;
    } else if (!rc) {
        t->tj = j;
        j = NULL;
    }
    tj_free(j);
    tcfg_free(&c);
    if (rc) {
        bt_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return 0;
}
