/* tests/unit/test_model_config.c — config.json parsing, validation and re-export. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/init.h"
#include "engine/model_config.h"
#include "util/err.h"
#include "util/file.h"

#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

/* all-MiniLM-L6-v2's config.json, as shipped. */
static const char *MINILM =
    "{\n  \"_name_or_path\": \"nreimers/MiniLM-L6-H384-uncased\",\n  \"architectures\": [\"BertModel\"],\n"
    "  \"attention_probs_dropout_prob\": 0.1,\n  \"gradient_checkpointing\": false,\n"
    "  \"hidden_act\": \"gelu\",\n  \"hidden_dropout_prob\": 0.1,\n  \"hidden_size\": 384,\n"
    "  \"initializer_range\": 0.02,\n  \"intermediate_size\": 1536,\n  \"layer_norm_eps\": 1e-12,\n"
    "  \"max_position_embeddings\": 512,\n  \"model_type\": \"bert\",\n  \"num_attention_heads\": 12,\n"
    "  \"num_hidden_layers\": 6,\n  \"pad_token_id\": 0,\n  \"position_embedding_type\": \"absolute\",\n"
    "  \"transformers_version\": \"4.8.2\",\n  \"type_vocab_size\": 2,\n  \"use_cache\": true,\n"
    "  \"vocab_size\": 30522\n}\n";

static int parse(const char *text, bt_model_config *c)
{
    bt_err_clear();
    return bt_model_config_parse(text, strlen(text), "m/config.json", c);
}

/* Expects text to be refused with BT_ECONFIG and a message naming the file and want. */
static void refused(const char *text, const char *want)
{
    bt_model_config c;
    int rc = parse(text, &c);
    if (rc != BT_ECONFIG || !strstr(bt_errmsg(), "m/config.json") || !strstr(bt_errmsg(), want)) {
        fprintf(stderr, "config %s\n  rc %d message '%s'\n  wanted '%s'\n", text, rc, bt_errmsg(), want);
        fail();
    }
    assert_null(c.json);
    assert_null(c.labels);
}

static void test_minilm(void **state)
{
    (void)state;
    bt_model_config c;
    assert_int_equal(parse(MINILM, &c), 0);
    assert_int_equal(c.vocab_size, 30522);
    assert_int_equal(c.hidden_size, 384);
    assert_int_equal(c.num_hidden_layers, 6);
    assert_int_equal(c.num_attention_heads, 12);
    assert_int_equal(c.intermediate_size, 1536);
    assert_int_equal(c.hidden_act, BT_HIDDEN_ACT_GELU);
    assert_true(c.hidden_dropout_prob == 0.1f);
    assert_true(c.attention_probs_dropout_prob == 0.1f);
    assert_true(c.classifier_dropout == 0.1f); /* absent -> hidden_dropout_prob */
    assert_int_equal(c.max_position_embeddings, 512);
    assert_int_equal(c.type_vocab_size, 2);
    assert_true(c.layer_norm_eps == 1e-12f);
    assert_true(c.initializer_range == 0.02f);
    assert_int_equal(c.pad_token_id, 0);
    assert_int_equal(c.num_labels, 2);
    assert_int_equal(c.has_labels, 0);
    assert_string_equal(c.labels[1], "LABEL_1");
    assert_int_equal(c.problem_type, BT_PROBLEM_NONE);
    assert_string_equal(c.architecture, "BertModel");
    assert_string_equal(c.model_type, "bert");
    assert_string_equal(c.path, "m/config.json");
    bt_model_config_free(&c);
    assert_null(c.json);
    bt_model_config_free(&c); /* idempotent */
}

static void test_defaults_and_options(void **state)
{
    (void)state;
    bt_model_config c;
    assert_int_equal(parse("{}", &c), 0); /* HF BertConfig defaults = bert-base */
    assert_int_equal(c.vocab_size, 30522);
    assert_int_equal(c.hidden_size, 768);
    assert_int_equal(c.num_hidden_layers, 12);
    assert_int_equal(c.intermediate_size, 3072);
    assert_int_equal(c.hidden_act, BT_HIDDEN_ACT_GELU);
    assert_null(c.architecture);
    bt_model_config_free(&c);

    assert_int_equal(parse("{\"hidden_dropout_prob\":0.2,\"classifier_dropout\":null,\"pad_token_id\":null,"
                           "\"hidden_act\":\"gelu_new\",\"num_labels\":5,\"problem_type\":\"regression\"}", &c), 0);
    assert_true(c.classifier_dropout == 0.2f);
    assert_int_equal(c.pad_token_id, -1);
    assert_int_equal(c.hidden_act, BT_HIDDEN_ACT_GELU_TANH);
    assert_int_equal(c.num_labels, 5);
    assert_int_equal(c.has_labels, 0);
    assert_string_equal(c.labels[4], "LABEL_4");
    assert_int_equal(c.problem_type, BT_PROBLEM_REGRESSION);
    bt_model_config_free(&c);

    assert_int_equal(parse("{\"classifier_dropout\":0.3,\"hidden_act\":\"gelu_pytorch_tanh\"}", &c), 0);
    assert_true(c.classifier_dropout == 0.3f);
    assert_int_equal(c.hidden_act, BT_HIDDEN_ACT_GELU_TANH);
    bt_model_config_free(&c);
    const struct { const char *name; bt_activation a; } acts[] = {
        {"gelu", BT_HIDDEN_ACT_GELU}, {"gelu_python", BT_HIDDEN_ACT_GELU}, {"gelu_fast", BT_HIDDEN_ACT_GELU_TANH},
        {"relu", BT_HIDDEN_ACT_RELU}, {"silu", BT_HIDDEN_ACT_SILU}, {"swish", BT_HIDDEN_ACT_SILU}};
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) {
        char buf[96];
        snprintf(buf, sizeof buf, "{\"hidden_act\":\"%s\"}", acts[i].name);
        assert_int_equal(parse(buf, &c), 0);
        assert_int_equal(c.hidden_act, acts[i].a);
        bt_model_config_free(&c);
    }
    assert_string_equal(bt_activation_name(BT_HIDDEN_ACT_GELU), "gelu");
    assert_string_equal(bt_problem_type_name(BT_PROBLEM_MULTI_LABEL), "multi_label_classification");
    assert_null(bt_problem_type_name(BT_PROBLEM_NONE));
}

static void test_labels(void **state)
{
    (void)state;
    bt_model_config c;
    assert_int_equal(parse("{\"id2label\":{\"2\":\"pos\",\"0\":\"neg\",\"1\":\"neu\"},"
                           "\"label2id\":{\"neg\":0,\"neu\":1,\"pos\":2}}", &c), 0);
    assert_int_equal(c.num_labels, 3);
    assert_int_equal(c.has_labels, 1);
    assert_string_equal(c.labels[0], "neg");
    assert_string_equal(c.labels[1], "neu");
    assert_string_equal(c.labels[2], "pos");
    bt_model_config_free(&c);
    /* A label2id that disagrees is only a warning (common on the Hub). */
    assert_int_equal(parse("{\"id2label\":{\"0\":\"a\",\"1\":\"b\"},\"label2id\":{\"LABEL_0\":0,\"LABEL_1\":1}}", &c), 0);
    assert_string_equal(c.labels[1], "b");
    bt_model_config_free(&c);

    refused("{\"id2label\":{\"0\":\"a\",\"2\":\"b\"}}", "id2label key \"2\" is out of range");
    refused("{\"id2label\":{\"zero\":\"a\"}}", "id2label key \"zero\" is not a label id");
    refused("{\"id2label\":{\"-1\":\"a\"}}", "is not a label id");
    refused("{\"id2label\":{\"01\":\"a\",\"1\":\"b\"}}", "is not a label id");
    refused("{\"id2label\":{\"0\":\"a\",\"1\":\"a\"}}", "gives the label \"a\" to ids 0 and 1");
    refused("{\"id2label\":{\"0\":3}}", "id2label[\"0\"] must be a non-empty string");
    refused("{\"id2label\":{\"0\":\"\"}}", "must be a non-empty string");
    refused("{\"id2label\":{}}", "has 0 entries");
    refused("{\"id2label\":[\"a\"]}", "must be an object");
    refused("{\"id2label\":{\"0\":\"a\"},\"label2id\":3}", "\"label2id\" must be an object");
    refused("{\"num_labels\":0}", "\"num_labels\" is 0");
}

static void test_invalid(void **state)
{
    (void)state;
    refused("{\"hidden_size\":100,\"num_attention_heads\":12}", "hidden_size 100 is not a multiple of num_attention_heads 12");
    refused("{\"vocab_size\":-5}", "key \"vocab_size\" is -5");
    refused("{\"vocab_size\":0}", "\"vocab_size\" is 0");
    refused("{\"hidden_size\":\"384\"}", "key \"hidden_size\" must be an integer");
    refused("{\"num_hidden_layers\":6.0}", "key \"num_hidden_layers\" must be an integer");
    refused("{\"intermediate_size\":99999999999}", "\"intermediate_size\" is 99999999999");
    refused("{\"hidden_act\":\"mish\"}", "hidden_act \"mish\" is not supported");
    refused("{\"hidden_act\":3}", "key \"hidden_act\" must be a string");
    refused("{\"hidden_dropout_prob\":1.5}", "\"hidden_dropout_prob\" is 1.5");
    refused("{\"hidden_dropout_prob\":\"x\"}", "must be a number");
    refused("{\"layer_norm_eps\":0}", "\"layer_norm_eps\" is 0");
    refused("{\"classifier_dropout\":-0.1}", "\"classifier_dropout\"");
    refused("{\"pad_token_id\":30522}", "\"pad_token_id\" is 30522");
    refused("{\"model_type\":\"funnel\"}", "model_type \"funnel\" is not supported; baton reads "
                                           "model_type \"bert\", \"roberta\", \"xlm-roberta\"");
    refused("{\"model_type\":\"deberta-v2\"}", "relative_attention is not true");
    refused("{\"model_type\":\"deberta-v2\",\"relative_attention\":true}", "share_att_key is not true");
    refused("{\"model_type\":\"deberta-v2\",\"relative_attention\":true,\"share_att_key\":true,"
            "\"conv_kernel_size\":3}", "conv_kernel_size 3");
    refused("{\"model_type\":\"deberta-v2\",\"relative_attention\":true,\"share_att_key\":true,"
            "\"pos_att_type\":\"p2c|p2p\"}", "pos_att_type \"p2p\" is not supported");
    refused("{\"model_type\":\"deberta-v2\",\"relative_attention\":true,\"share_att_key\":true,"
            "\"position_buckets\":256,\"max_relative_positions\":100}", "position_buckets 256 needs");
    refused("{\"model_type\":\"funnel\"}", "\"deberta-v2\", \"electra\" (e.g.");
    refused("{\"model_type\":\"electra\",\"embedding_size\":0}", "\"embedding_size\" is 0");
    refused("{\"model_type\":\"distilbert\",\"sinusoidal_pos_embds\":true}", "sinusoidal_pos_embds is true");
    refused("{\"model_type\":\"distilbert\",\"dim\":100,\"n_heads\":3}", "dim 100 is not a multiple of n_heads 3");
    refused("{\"position_embedding_type\":\"relative_key\"}", "position_embedding_type \"relative_key\"");
    refused("{\"is_decoder\":true}", "encoders only");
    refused("{\"problem_type\":\"ranking\"}", "problem_type \"ranking\"");
    refused("{\"architectures\":\"BertModel\"}", "\"architectures\" must be a list");
    refused("{\"architectures\":[3]}", "architectures[0] must be a string");
    refused("{\"num_hidden_layers\":1e30}", "\"num_hidden_layers\" is 1e+30, outside");
    refused("{\"num_hidden_layers\":100000000000000000000000000000}", "\"num_hidden_layers\" is 1e+29, outside");
    refused("{\"hidden_size\": 384,,}", "m/config.json:1:");
    refused("[1,2]", "not a JSON object");
    refused("", "not valid JSON");
}

/* DebertaV2Config keys: deberta-v3-base's settings, and v2's defaults */
static void test_deberta(void **state)
{
    (void)state;
    bt_model_config c;
    const char *v3 = "{\"model_type\":\"deberta-v2\",\"hidden_size\":768,\"num_attention_heads\":12,"
                     "\"num_hidden_layers\":12,\"intermediate_size\":3072,\"vocab_size\":128100,"
                     "\"relative_attention\":true,\"share_att_key\":true,\"position_buckets\":256,"
                     "\"max_relative_positions\":-1,\"pos_att_type\":\"p2c|c2p\",\"norm_rel_ebd\":\"layer_norm\","
                     "\"position_biased_input\":false,\"type_vocab_size\":0,\"pooler_hidden_act\":\"gelu\"}";
    assert_int_equal(parse(v3, &c), 0);
    assert_string_equal(c.model_type, "deberta-v2");
    assert_int_equal(c.rel_span, 256);
    assert_int_equal(c.rel_buckets, 256);
    assert_int_equal(c.rel_max_positions, 512); /* -1: max_position_embeddings */
    assert_true(c.rel_c2p && c.rel_p2c && c.rel_norm && !c.position_biased_input);
    assert_int_equal(c.type_vocab_size, 0);
    assert_true(fabs(c.layer_norm_eps - 1e-7) < 1e-12);
    bt_model_config_free(&c);
    const char *v2 = "{\"model_type\":\"deberta-v2\",\"relative_attention\":true,\"share_att_key\":true,"
                     "\"pos_att_type\":[\"c2p\"],\"max_relative_positions\":128,\"cls_dropout\":0.3}";
    assert_int_equal(parse(v2, &c), 0);
    assert_int_equal(c.rel_span, 128);
    assert_int_equal(c.rel_buckets, -1);
    assert_true(c.rel_c2p && !c.rel_p2c && !c.rel_norm && c.position_biased_input);
    assert_true(fabs(c.classifier_dropout - 0.3) < 1e-6);
    bt_model_config_free(&c);
}

/* ElectraConfig: BERT's keys plus embedding_size (its default 128); the
 * other families' embedding width is hidden_size */
static void test_electra(void **state)
{
    (void)state;
    bt_model_config c;
    assert_int_equal(parse("{\"model_type\":\"electra\",\"hidden_size\":256,\"num_attention_heads\":4,"
                           "\"embedding_size\":128,\"type_vocab_size\":2}", &c), 0);
    assert_string_equal(c.model_type, "electra");
    assert_int_equal(bt_model_family(c.model_type), BT_FAMILY_ELECTRA);
    assert_int_equal(c.embedding_size, 128);
    assert_int_equal(c.hidden_size, 256);
    assert_int_equal(c.type_vocab_size, 2);
    bt_model_config_free(&c);
    assert_int_equal(parse("{\"model_type\":\"electra\",\"hidden_size\":768}", &c), 0);
    assert_int_equal(c.embedding_size, 128); /* ElectraConfig's default */
    bt_model_config_free(&c);
    assert_int_equal(parse("{\"model_type\":\"bert\",\"hidden_size\":384,\"embedding_size\":128}", &c), 0);
    assert_int_equal(c.embedding_size, 384); /* not a BertConfig key */
    bt_model_config_free(&c);
    char buf[64];
    assert_string_equal(bt_model_type_arch("electra", "SequenceClassification", buf, sizeof buf),
                        "ElectraForSequenceClassification");
}

static void test_export(void **state)
{
    (void)state;
    bt_model_config c;
    const char *text = "{\"architectures\":[\"BertModel\"],\"custom_key\":{\"x\":[1,2]},\"layer_norm_eps\":1e-12,"
                       "\"initializer_range\":0.02,\"hidden_size\":384,\"num_attention_heads\":12,"
                       "\"num_labels\":2}";
    assert_int_equal(parse(text, &c), 0);
    const char *labels[] = {"negative", "neutral", "positive"};
    assert_int_equal(bt_model_config_set_labels(&c, labels, 3), 0);
    bt_model_config_set_problem_type(&c, BT_PROBLEM_SINGLE_LABEL);
    bt_model_config_set_architecture(&c, "BertForSequenceClassification");
    char *out = bt_model_config_dumps(&c);
    assert_non_null(strstr(out, "\"layer_norm_eps\": 1e-12"));
    assert_non_null(strstr(out, "\"initializer_range\": 0.02"));
    assert_non_null(strstr(out, "\"0\": \"negative\""));
    assert_non_null(strstr(out, "\"positive\": 2"));
    assert_non_null(strstr(out, "\"num_labels\": 3"));
    assert_non_null(strstr(out, "\"problem_type\": \"single_label_classification\""));
    assert_non_null(strstr(out, "\"custom_key\""));
    assert_int_equal(out[strlen(out) - 1], '\n');
    bt_model_config d;
    assert_int_equal(parse(out, &d), 0);
    assert_int_equal(d.num_labels, 3);
    assert_int_equal(d.has_labels, 1);
    assert_string_equal(d.labels[2], "positive");
    assert_int_equal(d.problem_type, BT_PROBLEM_SINGLE_LABEL);
    assert_string_equal(d.architecture, "BertForSequenceClassification");
    assert_true(d.layer_norm_eps == c.layer_norm_eps);
    char *out2 = bt_model_config_dumps(&d);
    assert_string_equal(out, out2);
    free(out2);
    bt_model_config_free(&d);
    free(out);

    /* Reals survive exactly: a value needing 17 digits switches the dump to 17. */
    {
        bt_model_config e;
        assert_int_equal(parse("{\"odd_real\":0.30000000000000004,\"initializer_range\":0.02}", &e), 0);
        char *o = bt_model_config_dumps(&e);
        assert_non_null(strstr(o, "0.30000000000000004"));
        bt_model_config f;
        assert_int_equal(parse(o, &f), 0);
        assert_true(f.initializer_range == e.initializer_range);
        free(o);
        bt_model_config_free(&f);
        bt_model_config_free(&e);
    }
    /* Problem type cleared -> key removed; invalid label sets refused. */
    bt_model_config_set_problem_type(&c, BT_PROBLEM_NONE);
    out = bt_model_config_dumps(&c);
    assert_null(strstr(out, "problem_type"));
    free(out);
    const char *dup[] = {"a", "b", "a"};
    assert_int_equal(bt_model_config_set_labels(&c, dup, 3), BT_ECONFIG);
    const char *empty[] = {""};
    assert_int_equal(bt_model_config_set_labels(&c, empty, 1), BT_ECONFIG);
    assert_int_equal(c.num_labels, 3); /* unchanged after a refused update */

    /* Write and load back through a file. */
    char dir[] = "/tmp/baton-cfg-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = bt_path_join(dir, "config.json");
    assert_int_equal(bt_model_config_write(&c, path), 0);
    bt_model_config_free(&c);
    assert_int_equal(bt_model_config_load(path, &c), 0);
    assert_string_equal(c.labels[0], "negative");
    bt_model_config_free(&c);
    unlink(path);
    assert_int_equal(bt_model_config_load(path, &c), BT_ENOINPUT);
    free(path);
    rmdir(dir);
}

/* baton_inference: absent, set and read back, dumped, malformed, removed */
static void test_inference(void **state)
{
    (void)state;
    bt_model_config c;
    int len, stride;
    assert_int_equal(parse(MINILM, &c), BT_OK);
    assert_int_equal(bt_model_config_inference(&c, &len, &stride), BT_OK);
    assert_int_equal(len, 0);
    assert_int_equal(stride, -1);
    bt_model_config_set_inference(&c, 128, 16);
    assert_int_equal(bt_model_config_inference(&c, &len, &stride), BT_OK);
    assert_int_equal(len, 128);
    assert_int_equal(stride, 16);
    char *d = bt_model_config_dumps(&c);
    assert_non_null(strstr(d, "\"baton_inference\": {\n    \"max_seq_len\": 128,\n    \"stride\": 16\n  }"));
    free(d);
    bt_model_config_set_inference(&c, 64, -1);
    assert_int_equal(bt_model_config_inference(&c, &len, &stride), BT_OK);
    assert_true(len == 64 && stride == -1);
    bt_model_config_remove_key(&c, BT_INFERENCE_CONFIG_KEY);
    assert_int_equal(bt_model_config_inference(&c, &len, &stride), BT_OK);
    assert_int_equal(len, 0);
    bt_model_config_free(&c);
    const char *bad[] = {"\"baton_inference\": 128", "\"baton_inference\": {\"max_seq_len\": 2}",
                         "\"baton_inference\": {\"max_seq_len\": 64, \"stride\": -1}",
                         "\"baton_inference\": {\"stride\": 8}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "{\"model_type\": \"bert\", %s}", bad[i]);
        assert_int_equal(parse(text, &c), BT_OK);
        assert_int_equal(bt_model_config_inference(&c, &len, &stride), BT_EDATA);
        assert_non_null(strstr(bt_errmsg(), "m/config.json: \"baton_inference\" must be"));
        assert_int_equal(len, 0);
        bt_model_config_free(&c);
    }
}

/* baton_columns: absent, set and read back (only named columns), malformed */
static void test_columns(void **state)
{
    (void)state;
    bt_model_config c;
    const char *names[3];
    assert_int_equal(parse(MINILM, &c), BT_OK);
    assert_int_equal(bt_model_config_columns(&c, names), BT_OK);
    assert_true(!names[0] && !names[1] && !names[2]);
    const char *none[3] = {NULL, NULL, NULL}, *some[3] = {"review", NULL, "target"};
    bt_model_config_set_columns(&c, none);
    char *d0 = bt_model_config_dumps(&c);
    assert_null(strstr(d0, "baton_columns"));
    free(d0);
    bt_model_config_set_columns(&c, some);
    assert_int_equal(bt_model_config_columns(&c, names), BT_OK);
    assert_string_equal(names[0], "review");
    assert_null(names[1]);
    assert_string_equal(names[2], "target");
    char *d = bt_model_config_dumps(&c);
    assert_non_null(strstr(d, "\"baton_columns\": {\n    \"label\": \"target\",\n    \"text\": \"review\"\n  }"));
    free(d);
    bt_model_config_free(&c);
    const char *bad[] = {"\"baton_columns\": \"text\"", "\"baton_columns\": {\"text\": 1}",
                         "\"baton_columns\": {\"label\": \"\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "{\"model_type\": \"bert\", %s}", bad[i]);
        assert_int_equal(parse(text, &c), BT_OK);
        assert_int_equal(bt_model_config_columns(&c, names), BT_EDATA);
        assert_non_null(strstr(bt_errmsg(), "m/config.json: \"baton_columns\" must be"));
        assert_null(names[0]);
        bt_model_config_free(&c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minilm),
        cmocka_unit_test(test_defaults_and_options),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_deberta),
        cmocka_unit_test(test_electra),
        cmocka_unit_test(test_export),
        cmocka_unit_test(test_inference),
        cmocka_unit_test(test_columns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
