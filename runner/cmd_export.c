/* runner/cmd_export.c — `baton export ARCHIVE OUTDIR`: a Hugging Face model
 * directory from a verified checkpoint: config.json (id2label/label2id from
 * trainer.json's label map when there is one), model.safetensors (the
 * member, byte for byte: tensors under the family's names), and the
 * tokenizer: the archive's tokenizer.json, tokenizer_config.json (its
 * model_max_length set to the training length), special_tokens_map.json and
 * vocab.txt as the model directory had them; archives of a vocab.txt-only
 * model (and format-1 archives): vocab.txt and a tokenizer_config.json made
 * from the settings config.json keeps.
 * Must not: overwrite files in OUTDIR unless --force; write the optimizer.
 */
#include "runner/archive_check.h"
#include "runner/commands.h"
#include "engine/model_config.h"
#include "state/archive.h"
#include "util/err.h"
#include "util/file.h"
#include "util/json.h"
#include "util/mem.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: baton export [--force] ARCHIVE OUTDIR\n"
               "  writes OUTDIR/{config.json, model.safetensors, tokenizer_config.json} and the tokenizer's files\n"
               "  (tokenizer.json, special_tokens_map.json, vocab.txt: those the trained model directory had)\n"
               "  --force: overwrite those files if they exist\n");
}

/* trainer.json "label_map": ["neg", "pos"] (index = id), {"0": "neg", ...} or {"neg": 0, ...}. */
static int apply_label_map(json_t *config, json_t *trainer, const char *where)
{
    json_t *lm = trainer ? json_object_get(trainer, "label_map") : NULL;
    if (!lm) return BT_OK;
    json_t *id2 = json_object(), *l2i = json_object();
    size_t n = 0;
    if (json_is_array(lm)) {
        size_t i;
        json_t *v;
        json_array_foreach(lm, i, v) {
            if (!json_is_string(v)) goto bad;
            char k[32];
            snprintf(k, sizeof k, "%zu", i);
            json_object_set(id2, k, v);
            json_object_set_new(l2i, json_string_value(v), json_integer((json_int_t)i));
            n++;
        }
    } else if (json_is_object(lm)) {
        const char *k;
        json_t *v;
        json_object_foreach(lm, k, v) {
            if (json_is_string(v)) { /* id -> label */
                char *end;
                long id = strtol(k, &end, 10);
                if (*end || id < 0) goto bad;
                json_object_set(id2, k, v);
                json_object_set_new(l2i, json_string_value(v), json_integer(id));
            } else if (json_is_integer(v)) { /* label -> id */
                char ks[32];
                snprintf(ks, sizeof ks, "%lld", (long long)json_integer_value(v));
                json_object_set_new(id2, ks, json_string(k));
                json_object_set(l2i, k, v);
            } else goto bad;
            n++;
        }
    } else goto bad;
    json_object_set_new(config, "id2label", id2);
    json_object_set_new(config, "label2id", l2i);
    if (n) json_object_set_new(config, "num_labels", json_integer((json_int_t)n));
    return BT_OK;
bad:
    json_decref(id2);
    json_decref(l2i);
    return bt_fail(BT_EDATA, "%s: trainer.json: label_map is neither a list of names nor an {id: name} object", where);
}

static int put(const char *dir, const char *name, const void *buf, size_t len, int force)
{
    char *p = bt_path_join(dir, name);
    int rc = BT_OK;
    if (!force && bt_path_exists(p))
        rc = bt_fail(BT_EUSAGE, "%s already exists: export into an empty directory, or pass --force", p);
    else
        rc = bt_write_file_atomic(p, buf, len);
    free(p);
    return rc;
}

static int put_json(const char *dir, const char *name, json_t *j, int force)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!s) return bt_fail(BT_EINTERNAL, "export: cannot serialise %s", name);
    size_t n = strlen(s);
    char *t = bt_xasprintf("%s\n", s);
    free(s);
    int rc = put(dir, name, t, n + 1, force);
    free(t);
    return rc;
}

/* A boolean of the archive's tokenizer settings (config.json
 * "baton_tokenizer"; older archives: config.json or trainer.json
 * "do_lower_case"), or dflt. */
static int tokenizer_flag(json_t *config, json_t *trainer, const char *key, int dflt)
{
    json_t *v = json_object_get(json_object_get(config, BT_TOKENIZER_CONFIG_KEY), key);
    if (!v) v = json_object_get(config, key);
    if (!v && trainer) v = json_object_get(trainer, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* model_max_length = the length the model predicts at: the max_seq_len of
 * training when config.json records it ("baton_inference"), else the
 * position table. Transformers truncates there (truncation=True) as baton
 * predict does (docs/model-directories.md). */
static void set_max_length(json_t *tok, json_t *config)
{
    json_t *len = json_object_get(json_object_get(config, BT_INFERENCE_CONFIG_KEY), "max_seq_len");
    if (!json_is_integer(len)) len = json_object_get(config, "max_position_embeddings");
    if (json_is_integer(len)) json_object_set(tok, "model_max_length", len);
}

/* tokenizer_config.json of the export: the tokenizer of training (see
 * set_max_length). Removes the baton_tokenizer key from config (it lives in
 * tokenizer_config.json now). */
static json_t *export_tokenizer_config(json_t *config, json_t *trainer)
{
    int lower = tokenizer_flag(config, trainer, "do_lower_case", 1);
    int strip = tokenizer_flag(config, trainer, "strip_accents", lower);
    int cjk = tokenizer_flag(config, trainer, "tokenize_chinese_chars", 1);
    json_object_del(config, "do_lower_case");
    json_object_del(config, BT_TOKENIZER_CONFIG_KEY);
    json_t *tok = json_object();
    /* DistilBERT's tokenizer is BERT's without token types (its model takes none);
     * ELECTRA's is BERT's under its own class name */
    const char *mt = json_string_value(json_object_get(config, "model_type"));
    json_object_set_new(tok, "tokenizer_class",
                        json_string(mt && !strcmp(mt, "distilbert") ? "DistilBertTokenizer"
                                    : mt && !strcmp(mt, "electra")  ? "ElectraTokenizer"
                                                                    : "BertTokenizer"));
    json_object_set_new(tok, "do_lower_case", json_boolean(lower));
    /* HF: null means "as do_lower_case"; written only when it differs */
    json_object_set_new(tok, "strip_accents", strip == lower ? json_null() : json_boolean(strip));
    json_object_set_new(tok, "tokenize_chinese_chars", json_boolean(cjk));
    set_max_length(tok, config);
    json_object_set_new(tok, "unk_token", json_string("[UNK]"));
    json_object_set_new(tok, "sep_token", json_string("[SEP]"));
    json_object_set_new(tok, "pad_token", json_string("[PAD]"));
    json_object_set_new(tok, "cls_token", json_string("[CLS]"));
    json_object_set_new(tok, "mask_token", json_string("[MASK]"));
    return tok;
}

/* The tokenizer of an archive that carries tokenizer.json (format 2):
 * its files as the model directory had them, tokenizer_config.json with
 * model_max_length set (issue 22). */
static int put_tokenizer_files(const bt_archive *a, json_t *config, const char *out, int force)
{
    static const int member[] = {BT_M_TOKJSON, BT_M_SPECIAL, BT_M_VOCAB};
    int rc = BT_OK;
    for (size_t i = 0; i < sizeof member / sizeof *member && !rc; i++) {
        const char *t = bt_archive_text(a, member[i]);
        if (t[0]) rc = put(out, bt_archive_member_name(member[i]), t, strlen(t), force);
    }
    if (rc) return rc;
    const char *ct = bt_archive_text(a, BT_M_TOKCONFIG);
    json_error_t je;
    /* as Transformers wrote it: Python's JSON (a model_max_length of 1e30 as an integer) */
    json_t *tc = ct[0] ? bt_json_loads_py(ct, strlen(ct), &je) : json_object();
    if (!json_is_object(tc)) {
        json_decref(tc);
        return bt_fail(BT_EDATA, "%s: tokenizer_config.json is not a JSON object (%s): the archive cannot be exported",
                       bt_archive_path(a), tc ? "another JSON type" : je.text);
    }
    set_max_length(tc, config);
    rc = put_json(out, "tokenizer_config.json", tc, force);
    json_decref(tc);
    return rc;
}

/* Writes the HF model directory of the archive at path into out (see
 * commands.h). */
int bt_export_archive(const char *path, const char *out, int force, long long *step)
{
    bt_archive *a;
    /* the judgement of `baton run`: a config.json that disagrees with the
     * tensors (or non-finite weights) is refused, never exported */
    int rc = bt_archive_read_checked(path, NULL, NULL, &a);
    if (rc) return rc;
    bt_st_file *m = NULL;
    json_t *config = NULL, *trainer = NULL, *tok = NULL;
    rc = bt_archive_open_model(a, &m); /* validates the safetensors before it is published */
    if (rc) goto out;
    json_error_t je;
    const char *ctext = bt_archive_text(a, BT_M_CONFIG);
    config = json_loads(ctext[0] ? ctext : "{}", 0, &je);
    if (!json_is_object(config)) {
        rc = bt_fail(BT_EDATA, "%s: config.json is not a JSON object (%s)", path, config ? "another type" : je.text);
        goto out;
    }
    trainer = json_loads(bt_archive_text(a, BT_M_TRAINER), 0, NULL);
    rc = apply_label_map(config, trainer, path);
    if (rc) goto out;
    int tokjson = bt_archive_member_size(a, BT_M_TOKJSON) > 0; /* issue 22: format 2 with tokenizer.json */
    if (!tokjson) tok = export_tokenizer_config(config, trainer);
    else json_object_del(config, BT_TOKENIZER_CONFIG_KEY); /* a vocab.txt tokenizer's settings: not this one's */
    if (!tokjson && !bt_archive_member_size(a, BT_M_VOCAB)) {
        rc = bt_fail(BT_EDATA, "%s: vocab.txt is empty: this archive cannot be exported as a model directory", path);
        goto out;
    }
    rc = bt_mkdirs(out);
    size_t len;
    const uint8_t *mb = bt_archive_member(a, "model.safetensors", &len);
    if (!rc) rc = put(out, "model.safetensors", mb, len, force);
    if (!rc) rc = put_json(out, "config.json", config, force);
    const char *vocab = bt_archive_text(a, BT_M_VOCAB);
    if (!rc && tokjson) rc = put_tokenizer_files(a, config, out, force);
    if (!rc && !tokjson) rc = put(out, "vocab.txt", vocab, strlen(vocab), force);
    if (!rc && !tokjson) rc = put_json(out, "tokenizer_config.json", tok, force);
    if (!rc && step) *step = (long long)bt_archive_step(a);
out:
    json_decref(config);
    json_decref(trainer);
    json_decref(tok);
    bt_st_close(m);
    bt_archive_close(a);
    return rc;
}

int cmd_export(int argc, char **argv)
{
    int force = 0;
    const char *args[2] = {NULL, NULL};
    int na = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(stdout); return 0; }
        if (!strcmp(argv[i], "--force")) force = 1;
        else if (argv[i][0] != '-' && na < 2) args[na++] = argv[i];
        else {
            usage(stderr);
            return bt_report_error(bt_fail(BT_EUSAGE, "export: unexpected argument '%s'", argv[i]));
        }
    }
    if (na != 2) {
        usage(stderr);
        return bt_report_error(bt_fail(BT_EUSAGE, "export: needs ARCHIVE and OUTDIR"));
    }
    long long step = 0;
    int rc = bt_export_archive(args[0], args[1], force, &step);
    if (rc) return bt_report_error(rc);
    printf("exported step %lld of %s to %s (config.json, model.safetensors, tokenizer_config.json and the "
           "tokenizer's files)\n", step, args[0], args[1]);
    return 0;
}
