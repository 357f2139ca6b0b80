/* runner/cmd_demo_init.c — `baton demo-init DIR`: writes the embedded demo.
 *
 * Owns: a tiny randomly initialised BERT (Hugging Face layout: config.json,
 * model.safetensors, vocab.txt, tokenizer_config.json) and a small synthetic
 * sentiment dataset (train.tsv, eval.tsv) that baton generates itself, so
 * `make demo` needs no download. Everything is a pure function of the seed
 * (Philox), so two machines generate byte-identical demos.
 *
 * The task: a sentence of 4-16 words drawn from positive, negative and
 * neutral word lists; the label is "positive" when positive words outnumber
 * negative ones, "negative" when fewer (ties are not generated). Learnable by
 * a 2-layer model in a minute of CPU time, and not by bag-of-one-word.
 *
 * The token-classification demo (train.conll, eval.conll; task =
 * token_classify): CoNLL sentences of the same words, three columns (word, a
 * coarse part of speech, an entity tag in BIO). Entities: POS (a positive
 * word, or "very"/"quite" + a positive word: B-POS I-POS), NEG (the same with
 * negative words) and ROLE ("director", "actors", "cast"); "very"/"quite"
 * before a neutral word are O, so a tag depends on the next word too.
 */
#include "runner/commands.h"
#include "kernels/philox.h"
#include "state/safetensors.h"
#include "util/err.h"
#include "util/file.h"
#include "util/mem.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { DEMO_HIDDEN = 64, DEMO_LAYERS = 2, DEMO_HEADS = 4, DEMO_INTER = 256, DEMO_MAXPOS = 64 };
static const uint64_t DEMO_SEED = 20261123;

static const char *const positive_words[] = {
    "good", "great", "excellent", "wonderful", "superb", "delightful", "charming", "brilliant",
    "moving", "funny", "clever", "beautiful", "fresh", "gripping", "touching", "smart"};
static const char *const negative_words[] = {
    "bad", "awful", "terrible", "boring", "dull", "tedious", "clumsy", "weak",
    "bland", "messy", "stale", "annoying", "painful", "flat", "silly", "lazy"};
static const char *const neutral_words[] = {
    "the", "film", "movie", "story", "a", "is", "and", "but", "with", "plot", "actors", "its",
    "this", "of", "scenes", "director", "was", "very", "quite", "ending", "music", "script",
    "cast", "at", "times", "an", "it", "overall", "camera", "dialogue"};
#define N_POS (sizeof positive_words / sizeof *positive_words)
#define N_NEG (sizeof negative_words / sizeof *negative_words)
#define N_NEU (sizeof neutral_words / sizeof *neutral_words)
static const char *const special_tokens[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
#define N_SPECIAL 5
#define DEMO_VOCAB (N_SPECIAL + N_POS + N_NEG + N_NEU)

typedef struct { uint64_t seed; uint32_t a, b, n; bt_u32x4 r; } demo_rng;

static uint32_t demo_next(demo_rng *g)
{
    if ((g->n & 3) == 0) g->r = bt_random4(g->seed, BT_STREAM_HEAD_INIT, g->a, g->b, g->n >> 2, 0x7D);
    return g->r.v[g->n++ & 3];
}

static int write_text(const char *dir, const char *name, const char *text)
{
    char *p = bt_path_join(dir, name);
    int rc = bt_write_file_atomic(p, text, strlen(text));
    free(p);
    return rc;
}

/* Appends one generated example "words\tlabel\n" to buf. */
static void gen_sentence(demo_rng *g, char **buf, size_t *len, size_t *cap)
{
    for (;;) {
        uint32_t n = 4 + demo_next(g) % 13;
        int pos = 0, neg = 0;
        char line[512];
        size_t l = 0;
        for (uint32_t w = 0; w < n; w++) {
            uint32_t kind = demo_next(g) % 10, pick = demo_next(g);
            const char *word;
            if (kind < 2) { word = positive_words[pick % N_POS]; pos++; }
            else if (kind < 4) { word = negative_words[pick % N_NEG]; neg++; }
            else word = neutral_words[pick % N_NEU];
            l += (size_t)snprintf(line + l, sizeof line - l, "%s%s", w ? " " : "", word);
        }
        if (pos == neg) continue;
        l += (size_t)snprintf(line + l, sizeof line - l, "\t%s\n", pos > neg ? "positive" : "negative");
        if (*len + l + 1 > *cap) {
            *cap = (*cap + l + 1) * 2;
            *buf = bt_xrealloc(*buf, *cap);
        }
        memcpy(*buf + *len, line, l + 1);
        *len += l;
        return;
    }
}

static int write_dataset(const char *dir, const char *name, uint32_t stream_b, int count)
{
    size_t cap = 4096, len = 0;
    char *buf = bt_xmalloc(cap);
    len = (size_t)snprintf(buf, cap, "sentence\tlabel\n");
    demo_rng g = {DEMO_SEED, 1000, stream_b, 0, {{0}}};
    for (int i = 0; i < count; i++) gen_sentence(&g, &buf, &len, &cap);
    int rc = write_text(dir, name, buf);
    free(buf);
    return rc;
}

/* The coarse part of speech of a demo word (column 1 of the CoNLL demo). */
static const char *demo_pos(const char *w, int adjective)
{
    static const char *const det[] = {"the", "a", "an", "this", "its"};
    static const char *const noun[] = {"film", "movie", "story", "plot", "actors", "scenes", "director", "ending",
                                       "music", "script", "cast", "times", "camera", "dialogue"};
    if (adjective) return "ADJ";
    if (!strcmp(w, "very") || !strcmp(w, "quite") || !strcmp(w, "overall")) return "ADV";
    for (size_t i = 0; i < sizeof det / sizeof *det; i++)
        if (!strcmp(w, det[i])) return "DET";
    for (size_t i = 0; i < sizeof noun / sizeof *noun; i++)
        if (!strcmp(w, noun[i])) return "NOUN";
    return "X";
}

/* A CoNLL file of count sentences (see the top of this file). */
static int write_conll(const char *dir, const char *name, uint32_t stream_b, int count)
{
    size_t cap = 65536, len = 0;
    char *buf = bt_xmalloc(cap);
    len = (size_t)snprintf(buf, cap, "-DOCSTART- -X- O\n\n");
    demo_rng g = {DEMO_SEED, 1000, stream_b, 0, {{0}}};
    for (int s = 0; s < count; s++) {
        uint32_t n = 4 + demo_next(&g) % 11;
        for (uint32_t w = 0; w < n; w++) {
            uint32_t kind = demo_next(&g) % 10, pick = demo_next(&g);
            const char *word[2] = {NULL, NULL}, *tag[2] = {"O", "O"}, *pos[2];
            int k = 1, adj = 0;
            if (kind < 2 || kind == 4) { /* 4: intensified positive */
                word[0] = positive_words[pick % N_POS];
                tag[0] = "B-POS";
                adj = 1;
            } else if (kind < 4 || kind == 5) { /* 5: intensified negative */
                word[0] = negative_words[pick % N_NEG];
                tag[0] = "B-NEG";
                adj = 1;
            } else {
                word[0] = neutral_words[pick % N_NEU];
                if (!strcmp(word[0], "director") || !strcmp(word[0], "actors") || !strcmp(word[0], "cast"))
                    tag[0] = "B-ROLE";
            }
            pos[0] = demo_pos(word[0], adj);
            if (!strcmp(word[0], "very") || !strcmp(word[0], "quite")) { /* O: a neutral word follows */
                word[1] = neutral_words[demo_next(&g) % N_NEU];
                if (!strcmp(word[1], "very") || !strcmp(word[1], "quite")) word[1] = "film";
                tag[1] = strcmp(word[1], "director") && strcmp(word[1], "actors") && strcmp(word[1], "cast") ? "O"
                                                                                                         : "B-ROLE";
                pos[1] = demo_pos(word[1], 0);
                k = 2;
            }
            if (kind == 4 || kind == 5) { /* "very good": B- on the intensifier, I- on the adjective */
                word[1] = word[0];
                tag[1] = kind == 4 ? "I-POS" : "I-NEG";
                pos[1] = "ADJ";
                word[0] = demo_next(&g) % 2 ? "very" : "quite";
                tag[0] = kind == 4 ? "B-POS" : "B-NEG";
                pos[0] = "ADV";
                k = 2;
            }
            for (int i = 0; i < k; i++) {
                if (len + 64 > cap) buf = bt_xrealloc(buf, cap *= 2);
                len += (size_t)snprintf(buf + len, cap - len, "%s %s %s\n", word[i], pos[i], tag[i]);
            }
        }
        if (len + 2 > cap) buf = bt_xrealloc(buf, cap *= 2);
        buf[len++] = '\n';
        buf[len] = '\0';
    }
    int rc = write_text(dir, name, buf);
    free(buf);
    return rc;
}

static int write_config(const char *dir)
{
    json_t *c = json_pack("{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:s, s:f, s:f, s:i, s:i, s:f, s:f, s:i, s:s}",
                          "architectures", "BertModel", "model_type", "bert", "vocab_size", (int)DEMO_VOCAB,
                          "hidden_size", DEMO_HIDDEN, "num_hidden_layers", DEMO_LAYERS,
                          "num_attention_heads", DEMO_HEADS, "intermediate_size", DEMO_INTER,
                          "hidden_act", "gelu", "hidden_dropout_prob", 0.1,
                          "attention_probs_dropout_prob", 0.1, "max_position_embeddings", DEMO_MAXPOS,
                          "type_vocab_size", 2, "initializer_range", 0.02, "layer_norm_eps", 1e-12,
                          "pad_token_id", 0, "position_embedding_type", "absolute");
    char *text = json_dumps(c, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
    json_decref(c);
    char *withnl = bt_xasprintf("%s\n", text);
    free(text);
    int rc = write_text(dir, "config.json", withnl);
    free(withnl);
    return rc;
}

static int write_vocab(const char *dir)
{
    size_t cap = 8192, len = 0;
    char *buf = bt_xmalloc(cap);
    buf[0] = '\0';
    const char *const *lists[] = {special_tokens, positive_words, negative_words, neutral_words};
    size_t counts[] = {N_SPECIAL, N_POS, N_NEG, N_NEU};
    for (int l = 0; l < 4; l++)
        for (size_t i = 0; i < counts[l]; i++)
            len += (size_t)snprintf(buf + len, cap - len, "%s\n", lists[l][i]);
    int rc = write_text(dir, "vocab.txt", buf);
    free(buf);
    return rc;
}

/* Random "pretrained" weights: normal(0, 0.02) matrices, LayerNorm 1/0, biases 0. */
static int write_weights(const char *dir)
{
    enum { MAXT = 64 };
    bt_st_entry e[MAXT];
    char *names[MAXT];
    float *bufs[MAXT];
    size_t n = 0;
    const int H = DEMO_HIDDEN, I = DEMO_INTER;
#define ADD(nm, rows, cols, kind) do {                                                   \
        names[n] = (nm);                                                                 \
        int64_t numel = (int64_t)(rows) * ((cols) ? (cols) : 1);                         \
        bufs[n] = bt_xcalloc((size_t)numel, sizeof(float));                              \
        demo_rng g = {DEMO_SEED, 2000, (uint32_t)n, 0, {{0}}};                            \
        for (int64_t k = 0; k < numel; k++) {                                            \
            if ((kind) == 'n') {                                                         \
                uint32_t u1 = demo_next(&g), u2 = demo_next(&g);                          \
                bufs[n][k] = 0.02f * bt_normal_from(u1, u2, 0);                           \
            } else bufs[n][k] = (kind) == '1' ? 1.0f : 0.0f;                              \
        }                                                                                \
        e[n] = (bt_st_entry){names[n], BT_ST_F32, (cols) ? 2 : 1, {(rows), (cols)}, bufs[n]}; \
        n++;                                                                             \
    } while (0)
    ADD(bt_xstrdup("embeddings.word_embeddings.weight"), DEMO_VOCAB, H, 'n');
    ADD(bt_xstrdup("embeddings.position_embeddings.weight"), DEMO_MAXPOS, H, 'n');
    ADD(bt_xstrdup("embeddings.token_type_embeddings.weight"), 2, H, 'n');
    ADD(bt_xstrdup("embeddings.LayerNorm.weight"), H, 0, '1');
    ADD(bt_xstrdup("embeddings.LayerNorm.bias"), H, 0, '0');
    for (int l = 0; l < DEMO_LAYERS; l++) {
        const char *qkv[] = {"query", "key", "value"};
        for (int q = 0; q < 3; q++) {
            ADD(bt_xasprintf("encoder.layer.%d.attention.self.%s.weight", l, qkv[q]), H, H, 'n');
            ADD(bt_xasprintf("encoder.layer.%d.attention.self.%s.bias", l, qkv[q]), H, 0, '0');
        }
        ADD(bt_xasprintf("encoder.layer.%d.attention.output.dense.weight", l), H, H, 'n');
        ADD(bt_xasprintf("encoder.layer.%d.attention.output.dense.bias", l), H, 0, '0');
        ADD(bt_xasprintf("encoder.layer.%d.attention.output.LayerNorm.weight", l), H, 0, '1');
        ADD(bt_xasprintf("encoder.layer.%d.attention.output.LayerNorm.bias", l), H, 0, '0');
        ADD(bt_xasprintf("encoder.layer.%d.intermediate.dense.weight", l), I, H, 'n');
        ADD(bt_xasprintf("encoder.layer.%d.intermediate.dense.bias", l), I, 0, '0');
        ADD(bt_xasprintf("encoder.layer.%d.output.dense.weight", l), H, I, 'n');
        ADD(bt_xasprintf("encoder.layer.%d.output.dense.bias", l), H, 0, '0');
        ADD(bt_xasprintf("encoder.layer.%d.output.LayerNorm.weight", l), H, 0, '1');
        ADD(bt_xasprintf("encoder.layer.%d.output.LayerNorm.bias", l), H, 0, '0');
    }
    ADD(bt_xstrdup("pooler.dense.weight"), H, H, 'n');
    ADD(bt_xstrdup("pooler.dense.bias"), H, 0, '0');
#undef ADD
    char *path = bt_path_join(dir, "model.safetensors");
    const char *meta[] = {"format", "pt", NULL};
    int rc = bt_st_write_file(path, e, n, meta);
    free(path);
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
        free(bufs[i]);
    }
    return rc;
}

int cmd_demo_init(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: baton demo-init DIR\n"
                        "  writes DIR/model (a tiny BERT) and DIR/data (train.tsv, eval.tsv;\n"
                        "  train.conll, eval.conll for task = token_classify)\n");
        return argc == 2 && !strcmp(argv[1], "--help") ? 0 : BT_EUSAGE;
    }
    char *model = bt_path_join(argv[1], "model"), *data = bt_path_join(argv[1], "data");
    int rc = bt_mkdirs(model);
    if (!rc) rc = bt_mkdirs(data);
    if (!rc) rc = write_config(model);
    if (!rc) rc = write_vocab(model);
    if (!rc) rc = write_text(model, "tokenizer_config.json",
                             "{\n  \"do_lower_case\": true,\n  \"model_max_length\": 64,\n"
                             "  \"tokenizer_class\": \"BertTokenizer\"\n}\n");
    if (!rc) rc = write_weights(model);
    if (!rc) rc = write_dataset(data, "train.tsv", 1, 6000);
    if (!rc) rc = write_dataset(data, "eval.tsv", 2, 600);
    if (!rc) rc = write_conll(data, "train.conll", 3, 1500);
    if (!rc) rc = write_conll(data, "eval.conll", 4, 300);
    free(model);
    free(data);
    if (rc) return bt_report_error(rc);
    printf("demo model and data written under %s\n", argv[1]);
    return 0;
}
