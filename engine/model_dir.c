/* engine/model_dir.c — following a model path to its model directory, and
 * choosing its weights file (see model_dir.h).
 *
 * Owns: the bounded breadth-first search below a path without config.json,
 * and the messages that say what was followed or what is there instead.
 * Must not: open any file for reading, or follow more than
 * BT_MODEL_DIR_DEPTH levels or BT_MODEL_DIR_MAX_SCAN entries (symlinked
 * folders are followed, the depth bound ends any loop).
 */
#include "engine/model_dir.h"
#include "util/err.h"
#include "util/file.h"
#include "util/log.h"
#include "util/mem.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char **v;
    size_t n, cap;
} list;

static void add(list *l, char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 8;
        l->v = bt_xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = s;
}

static void clear(list *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int has(const char *dir, const char *name)
{
    char *p = bt_path_join(dir, name);
    int r = bt_path_exists(p);
    free(p);
    return r;
}

static int has_weights(const char *d) { return has(d, "model.safetensors") || has(d, "pytorch_model.bin"); }

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

typedef struct {
    list models;  /* config.json + weights */
    list configs; /* config.json without weights */
    list vocabs;  /* vocab.txt */
    int truncated;
} found;

/* Breadth-first below root, depth levels; nothing below a folder with config.json. */
static void scan(const char *root, int depth, found *f)
{
    list cur = {0}, next = {0};
    add(&cur, bt_xstrdup(root));
    size_t seen = 0;
    for (int level = 1; level <= depth && cur.n && !f->truncated; level++) {
        for (size_t i = 0; i < cur.n && !f->truncated; i++) {
            DIR *dp = opendir(cur.v[i]);
            if (!dp) continue;
            list names = {0};
            struct dirent *de;
            while ((de = readdir(dp))) {
                if (de->d_name[0] == '.') continue; /* ., .., hidden folders (.git, .cache) */
                if (++seen > BT_MODEL_DIR_MAX_SCAN) {
                    f->truncated = 1;
                    break;
                }
                add(&names, bt_xstrdup(de->d_name));
            }
            closedir(dp);
            qsort(names.v, names.n, sizeof *names.v, cmp_str);
            for (size_t k = 0; k < names.n; k++) {
                char *child = bt_path_join(cur.v[i], names.v[k]);
                if (!bt_is_dir(child)) {
                    free(child);
                    continue;
                }
                if (has(child, "vocab.txt")) add(&f->vocabs, bt_xstrdup(child));
                if (has(child, "config.json")) add(has_weights(child) ? &f->models : &f->configs, child);
                else add(&next, child);
            }
            clear(&names);
        }
        clear(&cur);
        cur = next;
        memset(&next, 0, sizeof next);
    }
    clear(&cur);
    clear(&next);
}

static void free_found(found *f)
{
    clear(&f->models);
    clear(&f->configs);
    clear(&f->vocabs);
}

/* "a, b, c" (at most 5 and "..."), into buf. */
static const char *join_list(const list *l, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < l->n && i < 5 && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? ", " : "", l->v[i]);
    if (l->n > 5 && o < cap) snprintf(buf + o, cap - o, ", ... (%zu in all)", l->n);
    return buf;
}

/* A model directory without a vocabulary, while a folder under it (or under
 * the path the user gave) has vocab.txt: name that folder. */
static int check_vocab(const char *given, const char *dir)
{
    if (has(dir, "vocab.txt") || has(dir, "tokenizer.json") || has(dir, "spm.model") ||
        has(dir, "sentencepiece.bpe.model"))
        return BT_OK;
    found f = {0};
    scan(dir, 2, &f);
    if (!f.vocabs.n && strcmp(given, dir)) scan(given, BT_MODEL_DIR_DEPTH, &f);
    int rc = BT_OK;
    if (f.vocabs.n) {
        char l[2048];
        rc = bt_fail(BT_ENOINPUT, "%s: no vocab.txt (the tokenizer's vocabulary) beside config.json, but %s %s one: "
                     "copy vocab.txt (and tokenizer_config.json) into %s, or give the folder that holds the whole "
                     "model", dir, join_list(&f.vocabs, l, sizeof l), f.vocabs.n > 1 ? "have" : "has", dir);
    }
    free_found(&f);
    return rc;
}

int bt_model_dir_resolve(const char *path, unsigned need, char **dir)
{
    *dir = NULL;
    if (!bt_is_dir(path))
        return bt_fail(BT_ENOINPUT, "%s: not a directory%s; give a Hugging Face model directory (config.json, "
                       "model.safetensors or pytorch_model.bin, vocab.txt)", path,
                       bt_path_exists(path) ? "" : " (it does not exist)");
    int need_tokenizer = (need & BT_MODEL_DIR_TOKENIZER) != 0;
    if (has(path, "config.json") ||
        (!(need & BT_MODEL_DIR_WEIGHTS) &&
         (has(path, "vocab.txt") || has(path, "tokenizer.json") || has(path, "spm.model") ||
          has(path, "sentencepiece.bpe.model")))) {
        int rc = need_tokenizer ? check_vocab(path, path) : BT_OK;
        if (!rc) *dir = bt_xstrdup(path);
        return rc;
    }
    found f = {0};
    scan(path, BT_MODEL_DIR_DEPTH, &f);
    char l[2048], c[2048];
    int rc = BT_OK;
    if (f.models.n == 1) {
        bt_warn("model path %s has no config.json; using the model directory below it: %s", path, f.models.v[0]);
        rc = need_tokenizer ? check_vocab(path, f.models.v[0]) : BT_OK;
        if (!rc) *dir = bt_xstrdup(f.models.v[0]);
    } else if (f.models.n > 1) {
        rc = bt_fail(BT_ECONFIG, "%s is not a model directory (no config.json) and holds %zu below it: %s; give one "
                     "of them as the model path", path, f.models.n, join_list(&f.models, l, sizeof l));
    } else {
        const char *have = f.configs.n ? join_list(&f.configs, c, sizeof c) : NULL;
        const char *voc = f.vocabs.n ? join_list(&f.vocabs, l, sizeof l) : NULL;
        rc = bt_fail(BT_ENOINPUT, "%s: no config.json here or in the folders below it (%d levels%s): not a Hugging "
                     "Face model directory (config.json, model.safetensors or pytorch_model.bin, vocab.txt)%s%s%s%s%s",
                     path, BT_MODEL_DIR_DEPTH, f.truncated ? ", search cut short" : "",
                     have ? "; config.json without weights in: " : "", have ? have : "",
                     voc ? "; vocab.txt in: " : "", voc ? voc : "",
                     has(path, "vocab.txt") ? "; this folder has vocab.txt but no config.json" : "");
    }
    free_found(&f);
    return rc;
}

int bt_model_weights_path(const char *dir, char **path)
{
    *path = NULL;
    static const char *const names[] = {"model.safetensors", "pytorch_model.bin"};
    for (size_t i = 0; i < 2; i++) {
        char *p = bt_path_join(dir, names[i]);
        if (bt_path_exists(p)) {
            *path = p;
            return BT_OK;
        }
        free(p);
    }
    static const struct {
        const char *file, *what;
    } others[] = {
        {"model.safetensors.index.json", "a sharded safetensors checkpoint (model-0000x-of-0000y.safetensors)"},
        {"pytorch_model.bin.index.json", "a sharded PyTorch checkpoint (pytorch_model-0000x-of-0000y.bin)"},
        {"tf_model.h5", "TensorFlow weights (tf_model.h5)"},
        {"flax_model.msgpack", "Flax weights (flax_model.msgpack)"},
    };
    for (size_t i = 0; i < sizeof others / sizeof *others; i++)
        if (has(dir, others[i].file))
            return bt_fail(BT_ENOINPUT, "%s: no model.safetensors or pytorch_model.bin, only %s, which baton does not "
                           "read; load the model in Python with from_pretrained (from_tf=True or from_flax=True for "
                           "those) and save_pretrained(dir, max_shard_size=\"100GB\") writes one model.safetensors", dir, others[i].what);
    return bt_fail(BT_ENOINPUT, "%s: no model.safetensors or pytorch_model.bin; save the model with "
                   "save_pretrained(dir) (it writes model.safetensors)", dir);
}
