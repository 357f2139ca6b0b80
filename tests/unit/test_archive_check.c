/* tests/unit/test_archive_check.c — trainer.json's schema (runner/archive_check.h):
 * a trainer.json as `baton run` writes it passes; each forged variant is
 * refused with a message naming the key (issue 15, findings 1 and 3: a
 * history that is not a list of objects, "step" as a string, an epoch or a
 * "complete" that contradicts the step, ...). The tensor half of the check
 * is exercised on real archives by tests/integration/test_run_forged.sh. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "runner/archive_check.h"
#include "util/err.h"
#include "util/mem.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* step 60 of a job of 2 epochs x 47 steps, batch 32, grad_accum 1: epoch 1,
 * 13 steps into it, position 13 x 32 = 416 (as segment.c writes it) */
static const char *const BASE =
    "{\"format\":\"baton-trainer\",\"version\":1,\"step\":60,\"epoch\":1,\"position\":416,"
    "\"epochs_done\":1.2765957446808511,\"total_steps\":94,\"steps_per_epoch\":47,\"seed\":7,\"segment\":2,"
    "\"complete\":false,\"stop_reason\":\"deadline\",\"labels\":[\"negative\",\"positive\"],\"label_kind\":\"class\","
    "\"bad_evals\":0,\"last_eval_step\":47,"
    "\"best\":{\"metric\":\"accuracy\",\"value\":0.87,\"step\":47,\"archive\":\"ckpt-000000047.tar\"},"
    "\"forced_changes\":[],\"history\":[{\"event\":\"segment_start\",\"step\":0,\"segment\":1,\"time\":1.0},"
    "{\"step\":10,\"split\":\"train\",\"loss\":0.69}],\"device\":\"cpu\",\"loss_scale\":\"none\",\"eval_seconds\":0.5}";

static const char *const FP = "{\"train.batch_size\":32,\"train.grad_accum\":1,\"train.epochs\":2,\"train.max_steps\":0}";

/* BASE with top-level KEY set to the JSON value VAL ("-": removed). */
static char *with(const char *key, const char *val)
{
    json_t *o = json_loads(BASE, 0, NULL);
    assert_non_null(o);
    if (!strcmp(val, "-")) json_object_del(o, key);
    else {
        json_t *v = json_loads(val, JSON_DECODE_ANY, NULL);
        assert_non_null(v);
        json_object_set_new(o, key, v);
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

static int check(const char *text, int64_t mstep)
{
    return bt_trainer_json_check(text, strlen(text), mstep, FP, "ckpt-x.tar");
}

/* KEY=VAL is refused, and the message has `want` */
static void refused(const char *key, const char *val, const char *want)
{
    char *t = with(key, val);
    int rc = check(t, 60);
    if (rc != BT_EDATA || !strstr(bt_errmsg(), want))
        fail_msg("%s=%s: rc %d, message '%s' (wanted '%s')", key, val, rc, bt_errmsg(), want);
    assert_non_null(strstr(bt_errmsg(), "ckpt-x.tar"));
    free(t);
}

static void accepted(const char *key, const char *val)
{
    char *t = with(key, val);
    if (check(t, 60) != BT_OK) fail_msg("%s=%s refused: %s", key, val, bt_errmsg());
    free(t);
}

static void test_valid(void **state)
{
    (void)state;
    assert_int_equal(check(BASE, 60), BT_OK);
    /* without a fingerprint the checks that need one are skipped */
    assert_int_equal(bt_trainer_json_check(BASE, strlen(BASE), 60, NULL, "x"), BT_OK);
    accepted("some_future_key", "{\"a\": 1}");      /* additions within version 1 stay optional */
    accepted("stop_reason", "null");
    accepted("best", "null");
    accepted("loss_scale", "65536.0");
    accepted("eval_seconds", "-");
}

/* finding 1: a history entry that is not an object crashed `baton run` */
static void test_history(void **state)
{
    (void)state;
    refused("history", "[1]", "\"history\"");
    refused("history", "[{\"step\": 10}, \"x\"]", "entry 1");
    refused("history", "{\"step\": 1}", "\"history\"");
    refused("history", "[{\"step\": 61}]", "[0, 60]");
    refused("history", "[{\"step\": \"10\"}]", "\"history\"");
    refused("forced_changes", "[3]", "\"forced_changes\"");
}

/* finding 3: forged state was believed */
static void test_types_and_ranges(void **state)
{
    (void)state;
    refused("step", "\"60\"", "\"step\" must be an integer");
    refused("step", "-1", "\"step\"");
    refused("step", "-", "\"step\"");
    char *t = with("step", "61");
    assert_int_equal(check(t, 60), BT_EDATA); /* the manifest's step rules */
    assert_non_null(strstr(bt_errmsg(), "manifest"));
    free(t);
    refused("epoch", "\"1\"", "\"epoch\"");
    refused("position", "1.5", "\"position\"");
    refused("complete", "1", "\"complete\"");
    refused("complete", "\"true\"", "\"complete\"");
    refused("total_steps", "0", "\"total_steps\"");
    refused("steps_per_epoch", "0", "\"steps_per_epoch\"");
    refused("segment", "0", "\"segment\"");
    refused("labels", "[\"a\", 2]", "\"labels\"");
    refused("labels", "[\"\"]", "\"labels\"");
    refused("label_kind", "\"regress\"", "\"label_kind\"");
    refused("bad_evals", "-2", "\"bad_evals\"");
    refused("last_eval_step", "61", "\"last_eval_step\"");
    refused("best", "{\"metric\": \"accuracy\", \"value\": 0.8, \"step\": 47, \"archive\": \"../../etc/passwd\"}",
            "\"best\"");
    refused("best", "{\"metric\": \"accuracy\", \"value\": 0.8, \"step\": 47, \"archive\": \"ckpt-000000046.tar\"}",
            "\"best\"");
    refused("best", "{\"metric\": \"accuracy\", \"value\": 0.8, \"step\": 59, \"archive\": \"\"}", "\"best\"");
    refused("best", "{\"metric\": \"accuracy\", \"value\": null, \"step\": 47, \"archive\": \"\"}", "\"best\"");
    refused("eval_seconds", "\"x\"", "\"eval_seconds\"");
    refused("device", "3", "\"device\"");
    refused("seed", "\"7\"", "\"seed\"");
    refused("stop_reason", "5", "\"stop_reason\"");
    refused("format", "\"other\"", "\"format\"");
    refused("version", "2", "version 2");
    refused("epochs_done", "\"1.2\"", "\"epochs_done\"");
    const char *nojson = "[1, 2]";
    assert_int_equal(check(nojson, 60), BT_EDATA);
}

/* BASE with several top-level keys set: pairs of key, JSON value, then NULL */
static char *with_all(const char *k, ...)
{
    json_t *o = json_loads(BASE, 0, NULL);
    va_list ap;
    va_start(ap, k);
    for (; k; k = va_arg(ap, const char *)) {
        json_t *v = json_loads(va_arg(ap, const char *), JSON_DECODE_ANY, NULL);
        assert_non_null(v);
        json_object_set_new(o, k, v);
    }
    va_end(ap);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

/* the precision and the fp16 loss scaler (issue 17): optional (archives from
 * before them), typed, in range, and a loss scale exactly when fp16 */
static void test_precision_and_scaler(void **state)
{
    (void)state;
    char *t = with_all("precision", "\"fp16\"", "loss_scale", "32768.0", "loss_scale_clean_steps", "5",
                       "skipped_steps", "2", NULL);
    assert_int_equal(check(t, 60), BT_OK);
    free(t);
    t = with_all("precision", "\"bf16\"", "loss_scale", "\"none\"", "loss_scale_clean_steps", "0",
                 "skipped_steps", "3", NULL); /* skips left by an earlier fp16 segment */
    assert_int_equal(check(t, 60), BT_OK);
    free(t);
    accepted("precision", "\"tf32\"");
    accepted("loss_scale", "65536.0");      /* no precision recorded: not checked against it */
    accepted("loss_scale", "5.9604644775390625e-08"); /* 2^-24, a float */
    accepted("skipped_steps", "60");
    accepted("loss_scale_clean_steps", "-");
    refused("precision", "\"fp8\"", "\"precision\" must be one of");
    refused("precision", "16", "\"precision\"");
    refused("loss_scale", "-1", "\"loss_scale\"");
    refused("loss_scale", "0", "\"loss_scale\"");
    refused("loss_scale", "0.1", "a float > 0");   /* not a float: never written by the scaler */
    refused("loss_scale", "1e39", "\"loss_scale\""); /* beyond the float range */
    refused("loss_scale", "\"auto\"", "\"loss_scale\"");
    refused("loss_scale", "{\"scale\": 1024}", "\"loss_scale\"");
    refused("loss_scale", "-", "\"loss_scale\"");
    refused("skipped_steps", "61", "\"skipped_steps\" must be an integer in [0, 60]");
    refused("skipped_steps", "-1", "\"skipped_steps\"");
    refused("skipped_steps", "\"2\"", "\"skipped_steps\"");
    refused("loss_scale_clean_steps", "61", "\"loss_scale_clean_steps\" must be an integer in [0, 60]");
    refused("loss_scale_clean_steps", "1.5", "\"loss_scale_clean_steps\"");
    /* consistency: fp16 always scales, nothing else does */
    t = with_all("precision", "\"bf16\"", "loss_scale", "1024.0", NULL);
    assert_int_equal(check(t, 60), BT_EDATA);
    assert_non_null(strstr(bt_errmsg(), "precision bf16 with a loss scale"));
    free(t);
    t = with_all("precision", "\"fp16\"", "loss_scale", "\"none\"", NULL);
    assert_int_equal(check(t, 60), BT_EDATA);
    assert_non_null(strstr(bt_errmsg(), "precision fp16 without a loss scale"));
    free(t);
    t = with_all("loss_scale_clean_steps", "4", NULL); /* BASE: "none" */
    assert_int_equal(check(t, 60), BT_EDATA);
    assert_non_null(strstr(bt_errmsg(), "loss_scale_clean_steps 4 without a loss scale"));
    free(t);
    /* the growth interval bounds the clean steps of a long run */
    json_t *o = json_loads(BASE, 0, NULL);
    json_object_set_new(o, "step", json_integer(4747));
    json_object_set_new(o, "epoch", json_integer(101));
    json_object_set_new(o, "position", json_integer(0));
    json_object_set_new(o, "epochs_done", json_real(101.0));
    json_object_set_new(o, "total_steps", json_integer(9400));
    json_object_set_new(o, "loss_scale", json_real(8.0));
    json_object_set_new(o, "loss_scale_clean_steps", json_integer(1999));
    char *fp = "{\"train.batch_size\":32,\"train.grad_accum\":1,\"train.epochs\":200,\"train.max_steps\":0}";
    t = json_dumps(o, JSON_COMPACT);
    assert_int_equal(bt_trainer_json_check(t, strlen(t), 4747, fp, "ckpt-x.tar"), BT_OK);
    free(t);
    json_object_set_new(o, "loss_scale_clean_steps", json_integer(2000));
    t = json_dumps(o, JSON_COMPACT);
    assert_int_equal(bt_trainer_json_check(t, strlen(t), 4747, fp, "ckpt-x.tar"), BT_EDATA);
    assert_non_null(strstr(bt_errmsg(), "[0, 1999]"));
    free(t);
    json_decref(o);
}

/* runtime.devices' record (runner/devices.h): well formed, and the data
 * position counts its micro-batches per step */
static void test_devices(void **state)
{
    (void)state;
    accepted("devices", "-");
    accepted("devices", "{\"count\":1,\"grad_accum\":1,\"job_grad_accum\":1,\"batch_factor\":1}");
    accepted("devices", "{\"count\":1,\"grad_accum\":4,\"job_grad_accum\":1,\"batch_factor\":1}"); /* micro_batch = auto */
    refused("devices", "2", "\"devices\" must be");
    refused("devices", "{\"count\":0,\"grad_accum\":1,\"job_grad_accum\":1,\"batch_factor\":1}", "\"devices\"");
    refused("devices", "{\"count\":65,\"grad_accum\":1,\"job_grad_accum\":65,\"batch_factor\":1}", "\"devices\"");
    refused("devices", "{\"count\":2,\"grad_accum\":1,\"job_grad_accum\":1,\"batch_factor\":3}",
            "count x grad_accum = job_grad_accum x batch_factor");
    refused("devices", "{\"count\":2,\"grad_accum\":1,\"job_grad_accum\":1}", "\"devices\"");
    /* 2 devices x grad_accum 1: 13 steps into the epoch are 13 x 32 x 2 examples, not 416 */
    refused("devices", "{\"count\":2,\"grad_accum\":1,\"job_grad_accum\":1,\"batch_factor\":2}",
            "expected 832");
    char *t = with_all("devices", "{\"count\":1,\"grad_accum\":2,\"job_grad_accum\":1,\"batch_factor\":2}",
                       "position", "832", NULL); /* a 2-device archive continued on one device */
    assert_int_equal(check(t, 60), BT_OK);
    free(t);
}

/* step, epoch, cursor, total and `complete` agree */
static void test_consistency(void **state)
{
    (void)state;
    refused("epoch", "99", "epoch 99");
    refused("epoch", "0", "epoch 0");
    refused("position", "0", "data position 0");
    refused("position", "448", "expected 416");
    refused("epochs_done", "1.5", "epochs_done");
    refused("total_steps", "95", "total_steps 95");
    refused("complete", "true", "complete is true");
    char *t = with("complete", "true"), *u;
    json_t *o = json_loads(t, 0, NULL);
    json_object_set_new(o, "stop_reason", json_string("complete"));
    u = json_dumps(o, JSON_COMPACT);
    assert_int_equal(check(u, 60), BT_EDATA); /* complete at step 60 of 94 */
    assert_non_null(strstr(bt_errmsg(), "complete at step 60 of total_steps 94"));
    free(u);
    json_object_set_new(o, "stop_reason", json_string("early stopping"));
    u = json_dumps(o, JSON_COMPACT);
    assert_int_equal(check(u, 60), BT_EDATA); /* early stopping needs an evaluation at that step */
    assert_non_null(strstr(bt_errmsg(), "stopped early"));
    free(u);
    json_object_set_new(o, "last_eval_step", json_integer(60));
    json_object_set_new(o, "bad_evals", json_integer(3));
    u = json_dumps(o, JSON_COMPACT);
    assert_int_equal(check(u, 60), BT_OK); /* a real early stop */
    free(u);
    json_object_set_new(o, "complete", json_false());
    u = json_dumps(o, JSON_COMPACT);
    assert_int_equal(check(u, 60), BT_EDATA);
    assert_non_null(strstr(bt_errmsg(), "complete is false"));
    free(u);
    json_decref(o);
    free(t);
    /* a job changed with --force (recorded) may have moved its cursor */
    t = with("forced_changes", "[{\"step\": 47, \"changes\": \"data.train\"}]");
    o = json_loads(t, 0, NULL);
    json_object_set_new(o, "epoch", json_integer(2));
    json_object_set_new(o, "position", json_integer(0));
    json_object_set_new(o, "total_steps", json_integer(120));
    u = json_dumps(o, JSON_COMPACT);
    assert_int_equal(check(u, 60), BT_OK);
    free(u);
    json_decref(o);
    free(t);
    /* the last step of a job: complete, position 0 of the next epoch */
    o = json_loads(BASE, 0, NULL);
    json_object_set_new(o, "step", json_integer(94));
    json_object_set_new(o, "epoch", json_integer(2));
    json_object_set_new(o, "position", json_integer(0));
    json_object_set_new(o, "epochs_done", json_real(2.0));
    json_object_set_new(o, "complete", json_true());
    json_object_set_new(o, "stop_reason", json_string("complete"));
    json_object_set_new(o, "last_eval_step", json_integer(94));
    u = json_dumps(o, JSON_COMPACT);
    assert_int_equal(check(u, 94), BT_OK);
    free(u);
    json_decref(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_history),
        cmocka_unit_test(test_types_and_ranges),
        cmocka_unit_test(test_precision_and_scaler),
        cmocka_unit_test(test_devices), cmocka_unit_test(test_consistency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
