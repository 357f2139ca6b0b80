/* tests/unit/test_job.c — runner/job: malformed job files (each with its own
 * message and file:line), overrides, suggestions, Kaggle defaults, relative
 * paths, fingerprint and diff, INI round trip, docs/jobs.md in sync. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "runner/job.h"
#include "util/err.h"
#include "util/file.h"
#include "util/mem.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp[64];

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    unsetenv("KAGGLE_KERNEL_RUN_TYPE");
    unsetenv("BATON_KAGGLE_ROOT");
    snprintf(tmp, sizeof tmp, "/tmp/baton-test-job-XXXXXX");
    if (!mkdtemp(tmp)) return -1;
    char p[256];
    snprintf(p, sizeof p, "%s/model", tmp);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/model/config.json", tmp); /* what makes it a model directory */
    write_text(p, "{}");
    snprintf(p, sizeof p, "%s/train.tsv", tmp);
    write_text(p, "sentence\tlabel\nhello\t1\n");
    snprintf(p, sizeof p, "%s/dev.tsv", tmp);
    write_text(p, "sentence\tlabel\nbye\t0\n");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

#define BASE "[model]\npath = model\n[data]\ntrain = train.tsv\n"

/* Loads text as <tmp>/job.ini; returns the status. */
static int load_text(const char *text, bt_job *j, const char *const *ov, int n_ov)
{
    char path[256];
    snprintf(path, sizeof path, "%s/job.ini", tmp);
    write_text(path, text);
    bt_job_load_options o = {.overrides = ov, .n_overrides = n_ov, .check_paths = 1};
    return bt_job_load(path, &o, j);
}

/* ------------------------------------------------------ the bad-job table */

static const struct {
    const char *text;
    int code;
    const char *expect[3]; /* substrings of the message */
} bad[] = {
    {BASE "[train]\nlr = fast\n", BT_ECONFIG, {"job.ini:6:", "[train] lr = 'fast'", "not a number"}},
    {BASE "[train]\nbatch_size = 0\n", BT_ECONFIG, {"job.ini:6:", "batch_size", "between 1 and 65536"}},
    {BASE "[train]\nbatch_size = 12x\n", BT_ECONFIG, {"job.ini:6:", "not a whole number", NULL}},
    {BASE "[train]\nschedule = cosin\n", BT_ECONFIG, {"job.ini:6:", "must be one of: linear,cosine,constant", NULL}},
    {BASE "[train]\nlearning_rate = 1e-5\n", BT_ECONFIG, {"job.ini:6:", "unknown key 'learning_rate'", "did you mean [train] lr (Hugging Face's learning_rate)?"}},
    {BASE "[train]\nnum_train_epochs = 3\n", BT_ECONFIG, {"job.ini:6:", "did you mean [train] epochs (Hugging Face's num_train_epochs)?", NULL}},
    {BASE "[train]\nepoch = 3\n", BT_ECONFIG, {"job.ini:6:", "did you mean [train] epochs?", NULL}},
    {BASE "[trian]\nepochs = 3\n", BT_ECONFIG, {"job.ini:5:", "unknown section [trian]", "did you mean [train]?"}},
    {BASE "[optimizer]\nlr = 3\n", BT_ECONFIG, {"job.ini:5:", "unknown section [optimizer]", "[runtime]"}},
    {BASE "[runtime]\nlr = 3e-5\n", BT_ECONFIG, {"job.ini:6:", "unknown key 'lr' in [runtime]", "did you mean [train] lr?"}},
    {"seed = 1\n" BASE, BT_ECONFIG, {"job.ini:1:", "before any [section]", NULL}},
    {BASE "[train]\nthis line has no equals\n", BT_ECONFIG, {"job.ini:6:", "syntax error", NULL}},
    {BASE "[train\nlr = 1\n", BT_ECONFIG, {"job.ini:5:", "syntax error", NULL}},
    {BASE "[train]\nlr = 1e-5\nlr = 2e-5\n", BT_ECONFIG, {"job.ini:7:", "set twice (first at line 6)", NULL}},
    {BASE "[train]\nlr = 1e-5\n  epochs = 3\n", BT_ECONFIG, {"job.ini:7:", "indented line continues", "[train] lr"}},
    {BASE "[train]\nlr = 20\n", BT_ECONFIG, {"job.ini:6:", "between 1e-12 and 10", NULL}},
    {BASE "[train]\nwarmup_ratio = 1.5\n", BT_ECONFIG, {"job.ini:6:", "warmup_ratio", "between 0 and 1"}},
    {BASE "[train]\nfreeze_embeddings = maybe\n", BT_ECONFIG, {"job.ini:6:", "true or false", NULL}},
    {BASE "[train]\ndropout = lots\n", BT_ECONFIG, {"job.ini:6:", "or auto", NULL}},
    {BASE "[train]\nlr = nan\n", BT_ECONFIG, {"job.ini:6:", "not a number", NULL}},
    {BASE "[runtime]\nbudget = 90 minutes\n", BT_ECONFIG, {"job.ini:6:", "budget", "session:12h"}},
    {BASE "[runtime]\nbudget = session:\n", BT_ECONFIG, {"job.ini:6:", "budget", NULL}},
    {BASE "[runtime]\nmargin = 1h30\n", BT_ECONFIG, {"job.ini:6:", "margin", "duration"}},
    {BASE "[runtime]\ncheckpoint_every = -5\n", BT_ECONFIG, {"job.ini:6:", "checkpoint_every", "number of steps"}},
    {BASE "[runtime]\ndevice = tpu\n", BT_ECONFIG, {"job.ini:6:", "auto,cpu,cuda", NULL}},
    {BASE "[job]\nname = my job\n", BT_ECONFIG, {"job.ini:6:", "letters, digits", NULL}},
    {BASE "[job]\ntask = ner\n", BT_ECONFIG, {"job.ini:6:", "classify,classify_long,mlm,token_classify", NULL}},
    {BASE "[data]\nlabels = pos, neg, pos\n", BT_ECONFIG, {"job.ini:6:", "'pos' is listed twice", NULL}},
    {BASE "[train]\nwarmup_steps = 10\nwarmup_ratio = 0.1\n", BT_ECONFIG, {"job.ini:6:", "job.ini:7:", "keep one"}},
    {BASE "[train]\nmetric = perplexity\n", BT_ECONFIG, {"job.ini:6:", "task = mlm", NULL}},
    {BASE "[train]\nmetric = mse\n", BT_ECONFIG, {"job.ini:6:", "problem_type = regression", NULL}},
    {BASE "[job]\ntask = mlm\n[data]\nmlm_probability = 0\n", BT_ECONFIG,
     {"job.ini:8:", "[data] mlm_probability", "above 0"}},
    {BASE "[job]\ntask = mlm\n[data]\ntext_pair_column = sentence2\n", BT_ECONFIG,
     {"job.ini:8:", "[data] text_pair_column", "one text per example"}},
    {BASE "[job]\ntask = mlm\n[train]\nmetric = accuracy\n", BT_ECONFIG, {"job.ini:8:", "perplexity or loss", NULL}},
    {BASE "[job]\ntask = token_classify\n[data]\nformat = tsv\n", BT_ECONFIG, {"job.ini:8:", "conll", NULL}},
    {BASE "[job]\ntask = classify_long\n[data]\nmax_seq_len = 64\nstride = 62\n", BT_ECONFIG,
     {"job.ini:9:", "below max_seq_len - 2 = 62", NULL}},
    {BASE "[model]\nnum_labels = 3\n[data]\nlabels = a, b\n", BT_ECONFIG, {"job.ini:6:", "lists 2 labels", NULL}},
    {"[data]\ntrain = train.tsv\n", BT_ECONFIG, {"[model] path", "missing", NULL}},
    {"[model]\npath = model\n", BT_ECONFIG, {"[data] train", "missing", NULL}},
    {"[model]\npath = nomodel\n[data]\ntrain = train.tsv\n", BT_ENOINPUT, {"job.ini:2:", "nomodel", "does not exist"}},
    {"[model]\npath = model\n[data]\ntrain = missing.tsv\n", BT_ENOINPUT, {"job.ini:4:", "missing.tsv", "does not exist"}},
    {BASE "eval = dev2.tsv\n", BT_ENOINPUT, {"job.ini:5:", "[data] eval", "dev2.tsv"}},
    {"[model]\npath = train.tsv\n[data]\ntrain = train.tsv\n", BT_ENOINPUT, {"job.ini:2:", "not a directory", NULL}},
    {"[model]\npath = model\n[data]\ntrain = model\n", BT_ENOINPUT, {"job.ini:4:", "is a directory", NULL}},
    {BASE "[runtime]\nprogress_every = 0\n", BT_ECONFIG, {"job.ini:6:", "more than 0s", NULL}},
};

static void test_bad_jobs(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bt_job j;
        int rc = load_text(bad[i].text, &j, NULL, 0);
        const char *msg = bt_errmsg();
        int ok = rc == bad[i].code;
        for (int k = 0; k < 3 && bad[i].expect[k]; k++) ok &= strstr(msg, bad[i].expect[k]) != NULL;
        if (!ok) print_error("case %zu: rc %d (want %d), message: %s\n", i, rc, bad[i].code, msg);
        assert_true(ok);
        assert_null(j.origin); /* zeroed on failure */
        bt_job_free(&j);
    }
}

static void test_overlong_line(void **state)
{
    (void)state;
    char text[1024];
    char longv[400];
    memset(longv, 'a', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    snprintf(text, sizeof text, BASE "[job]\nname = %s\n", longv);
    bt_job j;
    assert_int_equal(load_text(text, &j, NULL, 0), BT_ECONFIG);
    assert_non_null(strstr(bt_errmsg(), "job.ini:6:"));
    assert_non_null(strstr(bt_errmsg(), "characters long"));
}

static void test_defaults_and_paths(void **state)
{
    (void)state;
    bt_job j;
    assert_int_equal(load_text(BASE "eval = ./dev.tsv\n", &j, NULL, 0), BT_OK);
    char want[256];
    snprintf(want, sizeof want, "%s/model", tmp);
    assert_string_equal(j.model.path, want);
    snprintf(want, sizeof want, "%s/dev.tsv", tmp);
    assert_string_equal(j.data.eval, want);
    snprintf(want, sizeof want, "%s/job-out", tmp);
    assert_string_equal(j.job.output_dir, want);
    assert_string_equal(j.job.name, "job");
    assert_int_equal(j.job.seed, 42);
    assert_int_equal(j.train.batch_size, 32);
    assert_true(fabs(j.train.lr - 5e-5) < 1e-15);
    assert_true(j.train.dropout < 0);
    assert_int_equal(j.runtime.budget.kind, BT_BUDGET_NONE);
    assert_int_equal(j.runtime.checkpoint_every.steps, 0);
    assert_true(j.runtime.checkpoint_every.seconds == 900);
    assert_int_equal(j.job.resume_from.n, 0);
    assert_false(j.kaggle);
    char where[256];
    bt_job_where(&j, bt_job_key_index("data", "eval"), where, sizeof where);
    assert_non_null(strstr(where, "job.ini:5"));
    bt_job_where(&j, bt_job_key_index("train", "lr"), where, sizeof where);
    assert_non_null(strstr(where, "(default)"));
    bt_job_free(&j);

    /* values in every form */
    assert_int_equal(load_text(BASE "[job]\nname = sst2.v1\nresume_from = a, /abs/b\n    c\n"
                               "[train]\nlr = 3e-5 ; inline comment\nfreeze_embeddings = yes\nschedule = COSINE\n"
                               "dropout = 0.2\n[runtime]\nbudget = session:11h30m\ncheckpoint_every = 500\n"
                               "margin = 1h 30m\nstall_timeout = 0\n[data]\nlabels = \"neg\", pos\n",
                               &j, NULL, 0), BT_OK);
    assert_string_equal(j.job.name, "sst2.v1");
    assert_int_equal(j.job.resume_from.n, 3);
    snprintf(want, sizeof want, "%s/a", tmp);
    assert_string_equal(j.job.resume_from.v[0], want);
    assert_string_equal(j.job.resume_from.v[1], "/abs/b");
    snprintf(want, sizeof want, "%s/c", tmp);
    assert_string_equal(j.job.resume_from.v[2], want);
    assert_true(fabs(j.train.lr - 3e-5) < 1e-15);
    assert_int_equal(j.train.freeze_embeddings, 1);
    assert_int_equal(j.train.schedule, BT_JOB_SCHED_COSINE);
    assert_true(fabs(j.train.dropout - 0.2) < 1e-12);
    assert_int_equal(j.runtime.budget.kind, BT_BUDGET_SESSION);
    assert_true(j.runtime.budget.seconds == 41400);
    assert_int_equal(j.runtime.checkpoint_every.steps, 500);
    assert_true(j.runtime.margin == 5400);
    assert_true(j.runtime.stall_timeout == 0);
    assert_int_equal(j.data.labels.n, 2);
    assert_string_equal(j.data.labels.v[0], "neg"); /* the first item's quotes are stripped */
    snprintf(want, sizeof want, "%s/sst2.v1-out", tmp);
    assert_string_equal(j.job.output_dir, want);
    bt_job_free(&j);
}

static void test_overrides(void **state)
{
    (void)state;
    bt_job j;
    const char *ov[] = {"train.lr=3e-5", "runtime.budget = 2h", "job.output_dir=rel/out"};
    assert_int_equal(load_text(BASE "[train]\nlr = 1e-5\n", &j, ov, 3), BT_OK);
    assert_true(fabs(j.train.lr - 3e-5) < 1e-15);
    assert_int_equal(j.runtime.budget.kind, BT_BUDGET_DURATION);
    assert_true(j.runtime.budget.seconds == 7200);
    char cwd[512], want[600];
    assert_non_null(getcwd(cwd, sizeof cwd));
    snprintf(want, sizeof want, "%s/rel/out", cwd); /* command-line paths: against the cwd */
    assert_string_equal(j.job.output_dir, want);
    char where[128];
    bt_job_where(&j, bt_job_key_index("train", "lr"), where, sizeof where);
    assert_string_equal(where, "command line (-s #1)");
    bt_job_free(&j);

    const char *bad1[] = {"train.lr=abc"};
    assert_int_equal(load_text(BASE, &j, bad1, 1), BT_ECONFIG);
    assert_non_null(strstr(bt_errmsg(), "command line (-s #1): train.lr=abc: not a number"));
    const char *bad2[] = {"train.lr=1e-5", "train.bach_size=8"};
    assert_int_equal(load_text(BASE, &j, bad2, 2), BT_ECONFIG);
    assert_non_null(strstr(bt_errmsg(), "command line (-s #2)"));
    assert_non_null(strstr(bt_errmsg(), "did you mean [train] batch_size?"));
    const char *bad3[] = {"lr=1e-5"};
    assert_int_equal(load_text(BASE, &j, bad3, 1), BT_EUSAGE);
    assert_non_null(strstr(bt_errmsg(), "section.key=value"));
    /* an override is validated across fields too */
    const char *bad4[] = {"train.metric=perplexity"};
    assert_int_equal(load_text(BASE, &j, bad4, 1), BT_ECONFIG);
    assert_non_null(strstr(bt_errmsg(), "command line (-s #1): [train] metric"));
}

static void test_suggest(void **state)
{
    (void)state;
    char b[128];
    assert_string_equal(bt_job_suggest_key("train", "batchsize", b, sizeof b), "[train] batch_size");
    assert_string_equal(bt_job_suggest_key("train", "warmup_ration", b, sizeof b), "[train] warmup_ratio");
    assert_string_equal(bt_job_suggest_key("data", "max_seq_length", b, sizeof b), "[data] max_seq_len");
    assert_string_equal(bt_job_suggest_key("train", "budget", b, sizeof b), "[runtime] budget");
    assert_null(bt_job_suggest_key("train", "completely_unrelated", b, sizeof b));
    /* Hugging Face argument names */
    assert_string_equal(bt_job_suggest_key("train", "learning_rate", b, sizeof b),
                        "[train] lr (Hugging Face's learning_rate)");
    assert_string_equal(bt_job_suggest_key("train", "per_device_train_batch_size", b, sizeof b),
                        "[train] batch_size (Hugging Face's per_device_train_batch_size)");
    assert_string_equal(bt_job_suggest_key("runtime", "gradient_accumulation_steps", b, sizeof b),
                        "[train] grad_accum (Hugging Face's gradient_accumulation_steps)");
    assert_string_equal(bt_job_suggest_key("data", "max_length", b, sizeof b),
                        "[data] max_seq_len (Hugging Face's max_length)");
    assert_string_equal(bt_job_suggest_key("model", "model_name_or_path", b, sizeof b),
                        "[model] path (Hugging Face's model_name_or_path)");
    /* the same name in another section */
    assert_string_equal(bt_job_suggest_key("runtime", "warmup_ratio", b, sizeof b), "[train] warmup_ratio");
    assert_string_equal(bt_job_suggest_key("model", "weight_decay", b, sizeof b), "[train] weight_decay");
}

static void test_kaggle_defaults(void **state)
{
    (void)state;
    char root[256], w[300];
    snprintf(root, sizeof root, "%s/kaggle", tmp);
    snprintf(w, sizeof w, "%s/working", root);
    assert_int_equal(bt_mkdirs(w), BT_OK);
    setenv("BATON_KAGGLE_ROOT", root, 1);
    bt_job j;
    /* the directory alone is not enough */
    assert_int_equal(bt_job_on_kaggle(), 0);
    setenv("KAGGLE_KERNEL_RUN_TYPE", "Batch", 1);
    assert_int_equal(bt_job_on_kaggle(), 1);
    assert_int_equal(load_text(BASE "[job]\nname = sst2\n", &j, NULL, 0), BT_OK);
    assert_true(j.kaggle);
    char want[400];
    snprintf(want, sizeof want, "%s/working/sst2", root);
    assert_string_equal(j.job.output_dir, want);
    assert_int_equal(j.job.resume_from.n, 1);
    snprintf(want, sizeof want, "%s/input", root);
    assert_string_equal(j.job.resume_from.v[0], want);
    assert_int_equal(j.runtime.budget.kind, BT_BUDGET_SESSION);
    assert_true(j.runtime.budget.seconds == 11 * 3600 + 30 * 60);
    bt_job_free(&j);
    /* explicit values win */
    assert_int_equal(load_text(BASE "[runtime]\nbudget = 1h\n[job]\noutput_dir = /tmp/x\n", &j, NULL, 0), BT_OK);
    assert_int_equal(j.runtime.budget.kind, BT_BUDGET_DURATION);
    assert_string_equal(j.job.output_dir, "/tmp/x");
    bt_job_free(&j);
    unsetenv("KAGGLE_KERNEL_RUN_TYPE");
    unsetenv("BATON_KAGGLE_ROOT");
}

static void test_fingerprint(void **state)
{
    (void)state;
    bt_job a, b;
    assert_int_equal(load_text(BASE "[train]\nlr = 2e-5\n", &a, NULL, 0), BT_OK);
    const char *ov[] = {"train.lr=3e-5", "runtime.budget=1h", "runtime.threads=3", "job.output_dir=/tmp/elsewhere",
                        "runtime.progress=none", "train.precision=bf16", "train.loss_scale_init=1024"};
    assert_int_equal(load_text(BASE "[train]\nlr = 2e-5\n", &b, ov, 7), BT_OK);
    char *fa = bt_job_fingerprint(&a, "{\"model.sha256\": \"abc\"}");
    char *fb = bt_job_fingerprint(&b, "{\"model.sha256\": \"abc\"}");
    assert_non_null(fa);
    assert_non_null(strstr(fa, "\"train.lr\":"));
    assert_non_null(strstr(fa, "\"data.train\":\"train.tsv\"")); /* base name only */
    assert_non_null(strstr(fa, "\"model.sha256\":\"abc\""));
    assert_null(strstr(fa, "budget"));
    assert_null(strstr(fa, "output_dir"));
    assert_null(strstr(fa, "threads"));
    char *diff;
    int n;
    assert_int_equal(bt_job_fingerprint_diff(fa, fb, &diff, &n), 0);
    assert_int_equal(n, 1); /* only lr: budget, threads, paths, progress, precision, loss scale are not
                               training-relevant (archives are fp32 master state in every precision) */
    if (!strstr(diff, "train.lr: 2e-05 -> 3e-05")) print_error("%s", diff);
    assert_non_null(strstr(diff, "train.lr: 2e-05 -> 3e-05"));
    free(diff);
    assert_int_equal(bt_job_fingerprint_diff(fa, fa, &diff, &n), 0);
    assert_int_equal(n, 0);
    assert_string_equal(diff, "");
    free(diff);
    /* canonical: the same job gives the same text */
    char *fa2 = bt_job_fingerprint(&a, "{\"model.sha256\": \"abc\"}");
    assert_string_equal(fa, fa2);
    /* a key only on one side */
    char *fc = bt_job_fingerprint(&a, NULL);
    assert_int_equal(bt_job_fingerprint_diff(fa, fc, &diff, &n), 0);
    assert_int_equal(n, 1);
    assert_non_null(strstr(diff, "model.sha256: \"abc\" -> (absent)"));
    free(diff);
    /* train.precision was in the fingerprint once: archives holding it are no different (a retired key) */
    assert_int_equal(bt_job_fingerprint_diff("{\"train.precision\":\"fp16\",\"train.lr\":2e-05}",
                                             "{\"train.lr\":2e-05}", &diff, &n), 0);
    assert_int_equal(n, 0);
    free(diff);
    assert_int_equal(bt_job_fingerprint_diff("{", fa, &diff, &n), -1);
    assert_null(bt_job_fingerprint(&a, "[1]"));
    free(fa); free(fb); free(fa2); free(fc);
    bt_job_free(&a);
    bt_job_free(&b);
}

static void test_ini_round_trip(void **state)
{
    (void)state;
    bt_job a, b;
    const char *ov[] = {"train.lr=3e-5", "data.labels=neg,pos"};
    assert_int_equal(load_text(BASE "eval = dev.tsv\n[job]\nresume_from = x, y\n[runtime]\nbudget = session:5h\n"
                               "checkpoint_every = 250\nmargin = 90s\n[train]\ndropout = 0.15\nwarmup_ratio = 0.06\n",
                               &a, ov, 2), BT_OK);
    char *ini = bt_job_to_ini(&a);
    bt_job_load_options o = {.check_paths = 1};
    int rc = bt_job_load_string(ini, "effective.ini", tmp, &o, &b);
    if (rc) print_error("%s\n%s\n", bt_errmsg(), ini);
    assert_int_equal(rc, BT_OK);
    size_t n;
    bt_job_schema(&n);
    for (size_t k = 0; k < n; k++) {
        char *x = bt_job_value_text(&a, (int)k), *y = bt_job_value_text(&b, (int)k);
        if (strcmp(x, y)) print_error("key %zu: '%s' vs '%s'\n", k, x, y);
        assert_string_equal(x, y);
        free(x);
        free(y);
    }
    char *fa = bt_job_fingerprint(&a, NULL), *fb = bt_job_fingerprint(&b, NULL);
    assert_string_equal(fa, fb);
    free(fa); free(fb); free(ini);
    bt_job_free(&a);
    bt_job_free(&b);
}

static void test_schema_consistency(void **state)
{
    (void)state;
    size_t n;
    const bt_job_key *k = bt_job_schema(&n);
    assert_true(n >= 50);
    /* every default parses (load of a minimal job succeeded above) and every
     * key has docs; enum orders match job.h */
    for (size_t i = 0; i < n; i++) {
        assert_true(strlen(k[i].doc) > 10);
        assert_int_equal(bt_job_key_index(k[i].section, k[i].name), (int)i);
    }
    assert_string_equal(bt_job_enum_name(bt_job_key_index("job", "task"), BT_JOB_TASK_TOKEN_CLASSIFY), "token_classify");
    assert_string_equal(bt_job_enum_name(bt_job_key_index("train", "metric"), BT_JOB_METRIC_LOSS), "loss");
    assert_string_equal(bt_job_enum_name(bt_job_key_index("train", "precision"), BT_JOB_PREC_BF16), "bf16");
    assert_string_equal(bt_job_enum_name(bt_job_key_index("data", "format"), BT_JOB_FORMAT_CONLL), "conll");
    assert_string_equal(bt_job_enum_name(bt_job_key_index("runtime", "progress"), BT_JOB_PROGRESS_NONE), "none");
    assert_string_equal(bt_job_enum_name(bt_job_key_index("model", "problem_type"), BT_JOB_PROBLEM_REGRESSION), "regression");
    assert_string_equal(bt_job_enum_name(bt_job_key_index("train", "schedule"), BT_JOB_SCHED_CONSTANT), "constant");
}

/* docs/jobs.md holds the generated table between markers. BATON_UPDATE_DOCS=1 rewrites it. */
static void test_docs_in_sync(void **state)
{
    (void)state;
    const char *root = getenv("ROOT");
    char path[1024];
    snprintf(path, sizeof path, "%s/docs/jobs.md", root && *root ? root : ".");
    char *text;
    size_t len;
    if (bt_read_file(path, 1 << 20, &text, &len) != BT_OK) fail_msg("cannot read %s (set ROOT)", path);
    const char *b = "<!-- BEGIN KEYS", *e = "<!-- END KEYS -->";
    char *pb = strstr(text, b), *pe = strstr(text, e);
    assert_non_null(pb);
    assert_non_null(pe);
    char *body = strchr(pb, '\n') + 1;
    char *md = bt_job_keys_markdown();
    size_t blen = (size_t)(pe - body);
    if (getenv("BATON_UPDATE_DOCS")) {
        char *out = bt_xasprintf("%.*s%s%s", (int)(body - text), text, md, pe);
        assert_int_equal(bt_write_file_atomic(path, out, strlen(out)), BT_OK);
        free(out);
    } else {
        if (blen != strlen(md) || memcmp(body, md, blen))
            fail_msg("docs/jobs.md's key table differs from the schema: run "
                     "BATON_UPDATE_DOCS=1 ROOT=$PWD build/tests/test_job");
    }
    free(md);
    free(text);
}

/* the example job users copy parses (its model may not be fetched here) */
static void test_example_job(void **state)
{
    (void)state;
    const char *root = getenv("ROOT");
    char path[1024];
    snprintf(path, sizeof path, "%s/jobs/sst2.ini", root && *root ? root : ".");
    bt_job j;
    bt_job_load_options o = {.check_paths = 0};
    int rc = bt_job_load(path, &o, &j);
    if (rc) fail_msg("%s", bt_errmsg());
    assert_string_equal(j.job.name, "sst2");
    assert_int_equal(j.data.max_seq_len, 64);
    assert_non_null(strstr(j.data.train, "/shared/data/sst2/train.tsv"));
    assert_int_equal(j.train.metric, BT_JOB_METRIC_ACCURACY);
    assert_true(j.runtime.checkpoint_every.seconds == 600);
    bt_job_free(&j);
}

/* the MLM example jobs parse, with the MLM keys they document */
static void test_example_mlm_jobs(void **state)
{
    (void)state;
    const char *root = getenv("ROOT");
    static const struct {
        const char *file, *name, *train;
        int64_t max_seq_len;
    } ex[] = {
        {"mlm_demo.ini", "mlm_demo", "/build/demo/data/train.tsv", 32},
        {"sst2_mlm.ini", "sst2_mlm", "/shared/data/sst2/train.tsv", 64},
    };
    for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/jobs/%s", root && *root ? root : ".", ex[i].file);
        bt_job j;
        bt_job_load_options o = {.check_paths = 0};
        int rc = bt_job_load(path, &o, &j);
        if (rc) fail_msg("%s: %s", path, bt_errmsg());
        assert_string_equal(j.job.name, ex[i].name);
        assert_int_equal(j.job.task, BT_JOB_TASK_MLM);
        assert_int_equal(j.data.max_seq_len, ex[i].max_seq_len);
        assert_non_null(strstr(j.data.train, ex[i].train));
        assert_true(j.data.mlm_probability == 0.15);
        assert_int_equal(j.data.mlm_grouping, BT_JOB_MLM_CONCAT);
        assert_int_equal(j.train.metric, BT_JOB_METRIC_PERPLEXITY);
        bt_job_free(&j);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_jobs),        cmocka_unit_test(test_overlong_line),
        cmocka_unit_test(test_defaults_and_paths), cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_suggest),         cmocka_unit_test(test_kaggle_defaults),
        cmocka_unit_test(test_fingerprint),     cmocka_unit_test(test_ini_round_trip),
        cmocka_unit_test(test_schema_consistency), cmocka_unit_test(test_docs_in_sync),
        cmocka_unit_test(test_example_job),     cmocka_unit_test(test_example_mlm_jobs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
