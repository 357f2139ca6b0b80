/* runner/cmd_inspect_model.c — `baton inspect-model DIR`: what baton sees in a
 * Hugging Face model directory.
 *
 * Owns: printing the config's key settings and labels, the checkpoint's
 * tensor table (name, dtype, shape, count) with totals, and the check of the
 * weights against the config (every encoder tensor present with the shape
 * config.json implies; heads reported). Exit 0 when the directory would load.
 * Must not: modify anything, or load tensor data (the check is shapes only;
 * a pytorch_model.bin is read as state/torch_bin.c reads it, CRCs included).
 */
#include "engine/init.h"
#include "engine/model_config.h"
#include "engine/model_dir.h"
#include "engine/model_weights.h"
#include "runner/commands.h"
#include "state/safetensors.h"
#include "util/err.h"
#include "util/file.h"
#include "util/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: baton inspect-model MODEL_DIR\n\n"
                 "Prints the config (sizes, activation, dropout, labels) and every tensor of\n"
                 "MODEL_DIR/model.safetensors (or pytorch_model.bin, read without Python), then\n"
                 "checks the weights against config.json. A folder without config.json that\n"
                 "holds exactly one model directory below it stands for that directory.\n"
                 "Exit 0: the directory loads; 65 bad weights; 66 missing files; 78 bad config.\n");
}

static long count_lines(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    long n = 0;
    int c, last = '\n';
    while ((c = getc(fp)) != EOF) {
        if (c == '\n') n++;
        last = c;
    }
    if (last != '\n') n++;
    fclose(fp);
    return n;
}

static void print_config(const char *dir, const bt_model_config *c)
{
    printf("model: %s\n", dir);
    printf("config: model_type %s, architecture %s\n", c->model_type ? c->model_type : "bert",
           c->architecture ? c->architecture : "(none)");
    printf("  vocab_size               %d\n", c->vocab_size);
    printf("  hidden_size              %d\n", c->hidden_size);
    printf("  num_hidden_layers        %d\n", c->num_hidden_layers);
    printf("  num_attention_heads      %d (head size %d)\n", c->num_attention_heads,
           c->hidden_size / c->num_attention_heads);
    printf("  intermediate_size        %d\n", c->intermediate_size);
    if (bt_model_family(c->model_type) == BT_FAMILY_ELECTRA)
        printf("  embedding_size           %d%s\n", c->embedding_size,
               c->embedding_size != c->hidden_size ? " (embeddings_project to hidden_size)" : "");
    printf("  hidden_act               %s\n", bt_activation_name(c->hidden_act));
    printf("  max_position_embeddings  %d\n", c->max_position_embeddings);
    printf("  type_vocab_size          %d\n", c->type_vocab_size);
    printf("  layer_norm_eps           %g\n", c->layer_norm_eps);
    printf("  dropout                  hidden %g, attention %g, classifier %g\n", c->hidden_dropout_prob,
           c->attention_probs_dropout_prob, c->classifier_dropout);
    printf("  initializer_range        %g\n", c->initializer_range);
    printf("  pad_token_id             %d\n", c->pad_token_id);
    if (bt_model_family(c->model_type) == BT_FAMILY_DEBERTA) {
        printf("  position_biased_input    %s\n", c->position_biased_input ? "true" : "false");
        printf("  relative attention       span %d (position_buckets %d, max_relative_positions %d), "
               "pos_att_type%s%s, norm_rel_ebd %s\n", c->rel_span, c->rel_buckets, c->rel_max_positions,
               c->rel_c2p ? " c2p" : "", c->rel_p2c ? " p2c" : "", c->rel_norm ? "layer_norm" : "none");
        printf("  pooler                   %s, dropout %g\n", bt_activation_name(c->pooler_act), c->pooler_dropout);
    }
    const char *pt = bt_problem_type_name(c->problem_type);
    printf("  problem_type             %s\n", pt ? pt : "(not set)");
    if (c->has_labels) {
        printf("labels: %d:", c->num_labels);
        for (int i = 0; i < c->num_labels; i++) printf(" %d=%s", i, c->labels[i]);
        printf("\n");
    } else {
        printf("labels: none in config.json (num_labels %d by default; a job sets its own)\n",
               c->num_labels);
    }
}

static const char *shape_text(const bt_st_tensor *t, char *buf, size_t sz)
{
    size_t o = (size_t)snprintf(buf, sz, "[");
    for (int d = 0; d < t->ndim && o < sz; d++)
        o += (size_t)snprintf(buf + o, sz - o, "%s%lld", d ? "," : "", (long long)t->shape[d]);
    if (o < sz) snprintf(buf + o, sz - o, "]");
    return buf;
}

/* How a family's checkpoint names its sequence-classification head. */
static const char *head_names(int family)
{
    switch (family) {
    case BT_FAMILY_ROBERTA: /* and ElectraClassificationHead */
    case BT_FAMILY_ELECTRA: return "classifier.dense, classifier.out_proj";
    case BT_FAMILY_DISTILBERT: return "pre_classifier, classifier";
    default: return "pooler.dense, classifier"; /* DeBERTa's ContextPooler */
    }
}

/* How a family's checkpoint names its masked-LM head (engine/model_weights.c). */
static const char *mlm_names(int family)
{
    switch (family) {
    case BT_FAMILY_ROBERTA: return "lm_head";
    case BT_FAMILY_DISTILBERT: return "vocab_transform, vocab_layer_norm, vocab_projector";
    case BT_FAMILY_ELECTRA: return "generator_predictions, generator_lm_head";
    default: return "cls.predictions or lm_predictions.lm_head"; /* DeBERTa */
    }
}

/* The heads found (canonical names of params[0..np) loaded from the checkpoint)
 * and what baton does with the family; BT_EDATA for a head only partly there. */
static int check_heads(const bt_model_config *c, const bt_param_load *params, size_t np, size_t unknown,
                       const char *st_path)
{
    int pooler = 0, classifier = 0, mlm = 0, bert = bt_model_family(c->model_type) == BT_FAMILY_BERT;
    for (size_t i = 0; i < np; i++) {
        if (!params[i].found) continue;
        if (!strncmp(params[i].name, "pooler.", 7)) pooler++;
        if (!strncmp(params[i].name, "classifier.", 11)) classifier++;
        if (!strncmp(params[i].name, "cls.", 4)) mlm++;
    }
    if (bert)
        printf("check: encoder matches config.json (%d layers); heads: pooler %s, classifier %s, mlm %s%s\n",
               c->num_hidden_layers, pooler == 2 ? "yes" : pooler ? "partial" : "no",
               classifier == 2 ? "yes" : classifier ? "partial" : "no", mlm == 5 ? "yes" : mlm ? "partial" : "no",
               unknown ? "; some tensors are unknown to baton and will not be used" : "");
    else /* RobertaClassificationHead (classifier.dense, classifier.out_proj), DistilBERT's
          * pre_classifier + classifier: the pooler and classifier slots; the MLM head: cls.* */
        printf("check: encoder matches config.json (%d layers); heads: classification head (%s) %s, masked-LM "
               "head (%s) %s%s\n", c->num_hidden_layers, head_names(bt_model_family(c->model_type)),
               pooler + classifier == 4 ? "yes" : pooler + classifier ? "partial" : "no",
               mlm_names(bt_model_family(c->model_type)), mlm == 5 ? "yes" : mlm ? "partial" : "no",
               unknown ? "; some tensors are unknown to baton and will not be used" : "");
    printf("support: %s\n", bert ? "train (classify, classify_long, mlm, token_classify), predict, export"
                              : "train (classify, similarity, classify_long, token_classify, mlm), predict, export");
    if ((pooler && pooler != 2) || (classifier && classifier != 2) || (mlm && mlm != 5))
        return bt_fail(BT_EDATA, "%s: a head is only partly present (%s %d/2, classifier %d/2, mlm %d/5 "
                       "tensors); the checkpoint is incomplete", st_path, bert ? "pooler" : "head dense layer",
                       pooler, classifier, mlm);
    return BT_OK;
}

/* A directory whose tokenizer is a SentencePiece model (no tokenizer.json):
 * says so. */
static int spm_only(const char *dir, int has_tj)
{
    static const char *const names[2][2] = {{"spm.model", "DebertaV2TokenizerFast"},
                                            {"sentencepiece.bpe.model", "XLMRobertaTokenizerFast"}};
    for (int k = 0; k < 2 && !has_tj; k++) {
        char *p = bt_path_join(dir, names[k][0]);
        int has = bt_path_exists(p);
        free(p);
        if (has) {
            printf("%s: present (the tokenizer: converted as transformers' %s does)\n", names[k][0], names[k][1]);
            return 1;
        }
    }
    return 0;
}

int cmd_inspect_model(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    if (argc != 2 || argv[1][0] == '-') {
        usage(stderr);
        return BT_EUSAGE;
    }
    char *dir = NULL;
    int rc = bt_model_dir_resolve(argv[1], BT_MODEL_DIR_WEIGHTS, &dir);
    if (rc) return bt_report_error(rc);
    char *cfg_path = bt_path_join(dir, "config.json");
    char *st_path = NULL;
    char *vocab_path = bt_path_join(dir, "vocab.txt");
    bt_model_config c;
    bt_st_file *f = NULL;
    bt_param_load *params = NULL;
    size_t np = 0;

    if ((rc = bt_model_config_load(cfg_path, &c))) goto out_nocfg;
    if ((rc = bt_model_weights_path(dir, &st_path))) goto out;
    if ((rc = bt_weights_open(st_path, &f))) goto out;

    print_config(dir, &c);
    long vl = count_lines(vocab_path);
    char *tj = bt_path_join(dir, "tokenizer.json");
    int has_tj = bt_path_exists(tj), has_spm = spm_only(dir, has_tj);
    free(tj);
    if (has_tj) printf("tokenizer.json: present (the tokenizer)\n");
    if (vl < 0) printf("vocab.txt: missing%s\n", has_tj || has_spm ? "" : " (needed to tokenize text)");
    else printf("vocab.txt: %ld lines%s\n", vl, vl == c.vocab_size ? "" : " (differs from vocab_size)");

    size_t nt = bt_st_count(f);
    int w = 4;
    for (size_t i = 0; i < nt; i++) {
        int l = (int)strlen(bt_st_get(f, i)->name);
        if (l > w) w = l;
    }
    const char *fmt = bt_st_metadata(f, "format");
    size_t pl = strlen(st_path);
    if (pl > 4 && !strcmp(st_path + pl - 4, ".bin")) fmt = "PyTorch zip, read without running its pickle";
    printf("tensors: %s%s%s\n", st_path, fmt ? ", format " : "", fmt ? fmt : "");
    printf("  %-*s  %-7s  %-14s  %12s  %s\n", w, "name", "dtype", "shape", "count", "baton");
    int64_t total = 0, bytes = 0;
    size_t unknown = 0;
    for (size_t i = 0; i < nt; i++) {
        const bt_st_tensor *t = bt_st_get(f, i);
        char sb[160], cn[256];
        int k = bt_canonical_name_family(t->name, bt_model_family(c.model_type), cn, sizeof cn);
        const char *note = k == BT_NAME_CANONICAL ? (strcmp(cn, t->name) ? cn : "=")
                           : k == BT_NAME_TIED    ? "(tied to word embeddings)"
                           : k == BT_NAME_IGNORED ? "(ignored)"
                                                  : "(unknown to baton)";
        if (k == BT_NAME_UNKNOWN) unknown++;
        printf("  %-*s  %-7s  %-14s  %12lld  %s\n", w, t->name, bt_st_dtype_name(t->dtype),
               shape_text(t, sb, sizeof sb), (long long)t->numel, note);
        total += t->numel;
        bytes += (int64_t)t->nbytes;
    }
    printf("total: %zu tensors, %lld parameters, %.1f MB of data\n", nt, (long long)total,
           (double)bytes / 1e6);

    params = bt_bert_param_list(&c, BT_HEAD_POOLER | BT_HEAD_CLASSIFIER | BT_HEAD_MLM, &np);
    rc = bt_load_hf_weights_family(f, bt_model_family(c.model_type), params, np);
    if (rc) goto out;
    rc = check_heads(&c, params, np, unknown, st_path);
out:
    bt_param_list_free(params, np);
    if (f) bt_st_close(f);
    bt_model_config_free(&c);
out_nocfg:
    free(cfg_path);
    free(st_path);
    free(vocab_path);
    free(dir);
    return bt_report_error(rc);
}
