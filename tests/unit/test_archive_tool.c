/* tests/unit/test_archive_tool.c — helper program for the archive scripts,
 * and a unit test of itself when run without arguments.
 *
 *   test_archive_tool commit DIR STEP FLOATS   commit a synthetic archive (random tensors; its
 *                                              contents are not a model: `baton verify` judges
 *                                              it invalid, bt_archive_verify accepts it)
 *   test_archive_tool commit-bert DIR STEP     commit a tiny BERT sequence classifier whose
 *                                              contents pass the judgement of `baton verify`
 *                                              (runner/archive_check.h)
 *   test_archive_tool bench DIR [PARAMS]       bench/bench_archive.sh: commit and verify a
 *                                              BERT-base-sized state (PARAMS weights, default
 *                                              110M, plus AdamW m and v) against dd and sha256sum
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_archive_fixture.h"
#include "engine/model_config.h"
#include "engine/model_weights.h"
#include "runner/archive_check.h"

#include <sys/stat.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int do_commit(const char *dir, int64_t step, size_t floats)
{
    fx_snap f;
    fx_make(&f, step, floats, (uint64_t)step + 1);
    char p[4096];
    int rc = bt_archive_commit(dir, &f.s, p, sizeof p);
    fx_free(&f);
    if (rc) {
        fprintf(stderr, "commit failed: %s\n", bt_errmsg());
        return rc;
    }
    printf("%s\n", p);
    return 0;
}

/* A tiny BERT (V 13, D 4, 1 layer, 2 labels) with pooler and classifier,
 * its AdamW state and a trainer.json of schema version 1 (plus the keys
 * label_map and metrics, which export and inspect read). */
static const char *const TINY_CONFIG =
    "{\"architectures\": [\"BertForSequenceClassification\"], \"model_type\": \"bert\", \"vocab_size\": 13, "
    "\"hidden_size\": 4, \"num_hidden_layers\": 1, \"num_attention_heads\": 1, \"intermediate_size\": 8, "
    "\"max_position_embeddings\": 8, \"type_vocab_size\": 2, \"id2label\": {\"0\": \"neg\", \"1\": \"pos\"}, "
    "\"label2id\": {\"neg\": 0, \"pos\": 1}, \"problem_type\": \"single_label_classification\"}";

static int do_commit_bert(const char *dir, int64_t step)
{
    bt_model_config cfg;
    if (bt_model_config_parse(TINY_CONFIG, strlen(TINY_CONFIG), "tiny", &cfg)) return 1;
    size_t np;
    bt_param_load *pl = bt_bert_param_list(&cfg, BT_HEAD_POOLER | BT_HEAD_CLASSIFIER, &np);
    bt_st_entry *w = bt_xcalloc(np, sizeof *w), *o = bt_xcalloc(3 * np, sizeof *o);
    char **names = bt_xcalloc(4 * np, sizeof *names);
    float **bufs = bt_xcalloc(3 * np, sizeof *bufs);
    int64_t *steps = bt_xcalloc(np, sizeof *steps);
    uint64_t seed = (uint64_t)step;
    for (size_t i = 0; i < np; i++) {
        char hf[300];
        names[4 * i] = bt_xstrdup(bt_hf_name(pl[i].name, "BertForSequenceClassification", hf, sizeof hf));
        size_t n = (size_t)pl[i].shape[0] * (pl[i].ndim == 2 ? (size_t)pl[i].shape[1] : 1);
        for (int k = 0; k < 3; k++) {
            float *b = bufs[3 * i + k] = bt_xmalloc(n * sizeof(float));
            for (size_t j = 0; j < n; j++) b[j] = (float)((double)(fx_rng(&seed) >> 11) / 9007199254740992.0) - (k == 2 ? 0 : 0.5f);
        }
        steps[i] = step;
        bt_st_entry e = {.name = names[4 * i], .dtype = BT_ST_F32, .ndim = pl[i].ndim,
                         .shape = {pl[i].shape[0], pl[i].shape[1]}, .data = bufs[3 * i]};
        w[i] = e;
        static const char *suf[3] = {".exp_avg", ".exp_avg_sq", ".step"};
        for (int k = 0; k < 3; k++) {
            names[4 * i + 1 + k] = bt_xasprintf("%s%s", names[4 * i], suf[k]);
            o[3 * i + k] = e;
            o[3 * i + k].name = names[4 * i + 1 + k];
            if (k < 2) o[3 * i + k].data = bufs[3 * i + 1 + k];
            else o[3 * i + k] = (bt_st_entry){.name = names[4 * i + 3], .dtype = BT_ST_I64, .ndim = 1, .shape = {1},
                                              .data = &steps[i]};
        }
    }
    int64_t spe = 150, in_epoch = step % spe;
    char *trainer = bt_xasprintf(
        "{\"format\": \"baton-trainer\", \"version\": 1, \"step\": %lld, \"epoch\": %lld, \"position\": %lld, "
        "\"epochs_done\": %.17g, \"total_steps\": 300, \"steps_per_epoch\": %lld, \"seed\": 42, \"segment\": 1, "
        "\"complete\": false, \"stop_reason\": \"periodic\", \"labels\": [\"neg\", \"pos\"], \"label_kind\": \"class\", "
        "\"bad_evals\": 0, \"last_eval_step\": -1, \"best\": null, \"forced_changes\": [], \"history\": [], "
        "\"device\": \"cpu\", \"loss_scale\": \"none\", \"label_map\": [\"neg\", \"pos\"], "
        "\"metrics\": [{\"step\": %lld, \"loss\": 0.5}]}",
        (long long)step, (long long)(step / spe), (long long)(in_epoch * 32), (double)step / (double)spe,
        (long long)spe, (long long)step);
    bt_snapshot snap = {.model = w, .n_model = np, .optim = o, .n_optim = 3 * np, .trainer_json = trainer,
                        .job_ini = "[job]\nname = tiny\n", .config_json = TINY_CONFIG,
                        .vocab_txt = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\na\nb\nc\nd\ne\nf\ng\nh\n",
                        .fingerprint_json = "{\"lr\": 2e-05, \"seed\": 42, \"model\": \"tiny\"}", .step = step,
                        .baton_version = "test"};
    char p[4096];
    int rc = bt_archive_commit(dir, &snap, p, sizeof p);
    if (rc) fprintf(stderr, "commit failed: %s\n", bt_errmsg());
    else printf("%s\n", p);
    for (size_t i = 0; i < 4 * np; i++) free(names[i]);
    for (size_t i = 0; i < 3 * np; i++) free(bufs[i]);
    free(names);
    free(bufs);
    free(steps);
    free(w);
    free(o);
    free(trainer);
    bt_param_list_free(pl, np);
    bt_model_config_free(&cfg);
    return rc;
}

static double timed(const char *cmd)
{
    double t = now();
    if (system(cmd) != 0) {
        fprintf(stderr, "peer command failed: %s\n", cmd);
        exit(1);
    }
    return now() - t;
}

static int do_bench(const char *dir, size_t params)
{
    if (bt_mkdirs(dir)) return 1;
    fx_snap f;
    double t0 = now();
    fx_make(&f, 1, params, 5);
    fprintf(stderr, "state of %zu parameters (x3 with AdamW moments) made in %.1f s\n", params, now() - t0);
    char p[4096];
    double best_c = 1e30, best_v = 1e30, best_dd = 1e30, best_sum = 1e30;
    struct stat st;
    for (int rep = 0; rep < 2; rep++) {
        char *cmd = bt_xasprintf("rm -f '%s'/ckpt-* '%s'/peer.bin; sync", dir, dir);
        if (system(cmd) != 0) return 1;
        free(cmd);
        double t = now();
        if (bt_archive_commit(dir, &f.s, p, sizeof p)) {
            fprintf(stderr, "commit failed: %s\n", bt_errmsg());
            return 1;
        }
        double tc = now() - t;
        stat(p, &st);
        /* peer: the same bytes written to the same disk by dd, fsynced */
        if (system("sync") != 0) return 1;
        cmd = bt_xasprintf("dd if='%s' of='%s/peer.bin' bs=4M conv=fsync status=none", p, dir);
        double td = timed(cmd);
        free(cmd);
        t = now();
        if (bt_archive_verify(p, NULL, NULL, NULL)) {
            fprintf(stderr, "verify failed: %s\n", bt_errmsg());
            return 1;
        }
        double tv = now() - t;
        cmd = bt_xasprintf("sha256sum '%s' >/dev/null", p);
        double ts = timed(cmd);
        free(cmd);
        fprintf(stderr, "run %d: commit %.2f s, dd %.2f s, verify %.2f s, sha256sum %.2f s\n", rep, tc, td, tv, ts);
        if (tc < best_c) best_c = tc;
        if (td < best_dd) best_dd = td;
        if (tv < best_v) best_v = tv;
        if (ts < best_sum) best_sum = ts;
    }
    double mb = (double)st.st_size / 1e6;
    printf("archive of %.0f MB (best of 2 runs each)\n", mb);
    printf("archive_commit: ours %.0f MB/s, peer %.0f MB/s, ratio %.2f\n", mb / best_c, mb / best_dd, best_dd / best_c);
    printf("archive_verify: ours %.0f MB/s, peer %.0f MB/s, ratio %.2f\n", mb / best_v, mb / best_sum, best_sum / best_v);
    char *cmd = bt_xasprintf("rm -f '%s'/ckpt-* '%s'/peer.bin", dir, dir);
    if (system(cmd) != 0) return 1;
    free(cmd);
    fx_free(&f);
    return 0;
}

static void test_tool_commit(void **state)
{
    (void)state;
    char *dir = fx_tmpdir("ar-tool");
    assert_int_equal(do_commit(dir, 3, 100), 0);
    char *p = bt_xasprintf("%s/ckpt-000000003.tar", dir);
    assert_int_equal(bt_archive_verify(p, NULL, NULL, NULL), 0);
    free(p);
    fx_rmrf(dir);
    free(dir);
}

/* the tiny BERT archive passes the judgement of `baton verify`; the
 * synthetic one of `commit` does not (its tensors are no model) */
static void test_tool_commit_bert(void **state)
{
    (void)state;
    char *dir = fx_tmpdir("ar-tool-bert");
    assert_int_equal(do_commit_bert(dir, 200), 0);
    char *p = bt_xasprintf("%s/ckpt-000000200.tar", dir);
    if (bt_archive_read_checked(p, NULL, NULL, NULL)) fail_msg("judged invalid: %s", bt_errmsg());
    assert_int_equal(do_commit(dir, 3, 100), 0);
    char *q = bt_xasprintf("%s/ckpt-000000003.tar", dir);
    assert_int_equal(bt_archive_read_checked(q, NULL, NULL, NULL), BT_EDATA);
    free(q);
    free(p);
    fx_rmrf(dir);
    free(dir);
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "commit-bert")) return do_commit_bert(argv[2], strtoll(argv[3], NULL, 10)) ? 1 : 0;
    if (argc == 5 && !strcmp(argv[1], "commit"))
        return do_commit(argv[2], strtoll(argv[3], NULL, 10), strtoull(argv[4], NULL, 10)) ? 1 : 0;
    if ((argc == 3 || argc == 4) && !strcmp(argv[1], "bench"))
        return do_bench(argv[2], argc == 4 ? strtoull(argv[3], NULL, 10) : 110000000ull);
    if (argc > 1) {
        fprintf(stderr, "usage: %s [commit DIR STEP FLOATS | commit-bert DIR STEP | bench DIR [PARAMS]]\n", argv[0]);
        return 64;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_tool_commit), cmocka_unit_test(test_tool_commit_bert)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
