/* tests/unit/test_model_dir.c — following a model path (engine/model_dir.c):
 * a model directory is itself; a folder above exactly one is followed (two
 * levels down, as Kaggle datasets nest them); several are an error listing
 * them; none is an error naming the folders with vocab.txt or config.json;
 * the search stops at BT_MODEL_DIR_DEPTH levels, skips hidden folders and
 * does not look below a model directory; a model directory without a
 * vocabulary names the folder that has one; `tokenize` takes a bare
 * vocabulary folder; and the weights file is model.safetensors, else
 * pytorch_model.bin, else an error naming what is there instead.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/model_dir.h"
#include "util/err.h"
#include "util/file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char root[64];

/* Creates root/rel (folders as needed) as an empty file. */
static void touch(const char *rel)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    char *slash = strrchr(p, '/');
    *slash = '\0';
    assert_int_equal(bt_mkdirs(p), 0);
    *slash = '/';
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fclose(f);
}

static const char *at(const char *rel)
{
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", root, rel);
    return p[k];
}

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/baton-test-mdir-XXXXXX");
    return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    return system(cmd) == 0 ? 0 : -1;
}

static void expect_dir(const char *path, unsigned need, const char *want)
{
    char *d = NULL;
    int rc = bt_model_dir_resolve(path, need, &d);
    if (rc) fprintf(stderr, "%s\n", bt_errmsg());
    assert_int_equal(rc, 0);
    assert_string_equal(d, want);
    free(d);
}

static void expect_fail(const char *path, unsigned need, int code, const char *w1, const char *w2)
{
    char *d = (char *)1;
    bt_err_clear();
    int rc = bt_model_dir_resolve(path, need, &d);
    if (rc != code || !strstr(bt_errmsg(), w1) || (w2 && !strstr(bt_errmsg(), w2))) {
        fprintf(stderr, "rc %d (want %d): %s\n  wanted: %s / %s\n", rc, code, bt_errmsg(), w1, w2 ? w2 : "");
        fail();
    }
    assert_null(d);
}

#define ALL (BT_MODEL_DIR_WEIGHTS | BT_MODEL_DIR_TOKENIZER)

static void test_follow(void **state)
{
    (void)state;
    touch("ds/a/model/config.json");
    touch("ds/a/model/pytorch_model.bin");
    touch("ds/a/model/vocab.txt");
    touch("ds/a/model/1_Pooling/config.json"); /* below a model directory: not looked at */
    touch("ds/.cache/x/config.json");          /* hidden: skipped */
    touch("ds/.cache/x/model.safetensors");
    touch("ds/notes/readme.txt");
    expect_dir(at("ds/a/model"), ALL, at("ds/a/model")); /* itself */
    expect_dir(at("ds"), ALL, at("ds/a/model"));         /* two levels down */
    expect_dir(at("ds/a"), BT_MODEL_DIR_WEIGHTS, at("ds/a/model"));
    /* a second model directory: an error listing both */
    touch("ds/b/config.json");
    touch("ds/b/model.safetensors");
    expect_fail(at("ds"), ALL, BT_ECONFIG, "holds 2 below it", at("ds/b"));
    assert_non_null(strstr(bt_errmsg(), at("ds/a/model")));
    expect_dir(at("ds/b"), BT_MODEL_DIR_WEIGHTS, at("ds/b"));
}

static void test_none(void **state)
{
    (void)state;
    touch("empty/x/y.txt");
    expect_fail(at("empty"), ALL, BT_ENOINPUT, "no config.json here or in the folders below it", NULL);
    expect_fail(at("absent"), ALL, BT_ENOINPUT, "not a directory (it does not exist)", NULL);
    expect_fail(at("empty/x/y.txt"), ALL, BT_ENOINPUT, "not a directory;", NULL);
    /* config.json without weights, vocab.txt alone: both named */
    touch("half/cfg/config.json");
    touch("half/tok/vocab.txt");
    expect_fail(at("half"), ALL, BT_ENOINPUT, "config.json without weights in: ", at("half/cfg"));
    assert_non_null(strstr(bt_errmsg(), "vocab.txt in: "));
    assert_non_null(strstr(bt_errmsg(), at("half/tok")));
    /* four levels down is beyond the search */
    touch("deep/1/2/3/m/config.json");
    touch("deep/1/2/3/m/model.safetensors");
    expect_fail(at("deep"), ALL, BT_ENOINPUT, "(3 levels)", NULL);
    expect_dir(at("deep/1"), ALL, at("deep/1/2/3/m"));
}

static void test_vocab_elsewhere(void **state)
{
    (void)state;
    touch("split/weights/config.json");
    touch("split/weights/pytorch_model.bin");
    touch("split/tokenizer/vocab.txt");
    /* followed to weights/, which has no vocabulary: the error names split/tokenizer */
    expect_fail(at("split"), ALL, BT_ENOINPUT, "no vocab.txt", at("split/tokenizer"));
    /* inspect-model reads no vocabulary: fine */
    expect_dir(at("split"), BT_MODEL_DIR_WEIGHTS, at("split/weights"));
    /* a vocabulary below the model directory itself */
    touch("inner/m/config.json");
    touch("inner/m/model.safetensors");
    touch("inner/m/tok/vocab.txt");
    expect_fail(at("inner/m"), ALL, BT_ENOINPUT, "no vocab.txt", at("inner/m/tok"));
    /* tokenizer.json counts as a vocabulary; so does nothing at all found (the tokenizer reports) */
    touch("inner/m/tokenizer.json");
    expect_dir(at("inner/m"), ALL, at("inner/m"));
    touch("bare/config.json");
    expect_dir(at("bare"), ALL, at("bare"));
    /* tokenize: a folder with vocab.txt is itself, with no config.json */
    expect_dir(at("split/tokenizer"), BT_MODEL_DIR_TOKENIZER, at("split/tokenizer"));
    expect_fail(at("split/tokenizer"), ALL, BT_ENOINPUT, "no config.json here", "this folder has vocab.txt");
}

static void test_weights_path(void **state)
{
    (void)state;
    char *p = NULL;
    touch("w1/pytorch_model.bin");
    assert_int_equal(bt_model_weights_path(at("w1"), &p), 0);
    assert_string_equal(p, at("w1/pytorch_model.bin"));
    free(p);
    touch("w1/model.safetensors"); /* preferred when both are there */
    assert_int_equal(bt_model_weights_path(at("w1"), &p), 0);
    assert_string_equal(p, at("w1/model.safetensors"));
    free(p);
    static const struct {
        const char *file, *want;
    } others[] = {
        {"w2/model.safetensors.index.json", "a sharded safetensors checkpoint"},
        {"w3/pytorch_model.bin.index.json", "a sharded PyTorch checkpoint"},
        {"w4/tf_model.h5", "TensorFlow weights"},
        {"w5/flax_model.msgpack", "Flax weights"},
        {"w6/config.json", "no model.safetensors or pytorch_model.bin; save the model"},
    };
    for (size_t i = 0; i < sizeof others / sizeof *others; i++) {
        touch(others[i].file);
        char d[8];
        snprintf(d, sizeof d, "w%zu", i + 2);
        bt_err_clear();
        assert_int_equal(bt_model_weights_path(at(d), &p), BT_ENOINPUT);
        assert_null(p);
        if (!strstr(bt_errmsg(), others[i].want)) fail_msg("%s: %s", others[i].file, bt_errmsg());
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_follow),
        cmocka_unit_test(test_none),
        cmocka_unit_test(test_vocab_elsewhere),
        cmocka_unit_test(test_weights_path),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
