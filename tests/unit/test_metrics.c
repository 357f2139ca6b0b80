/* tests/unit/test_metrics.c — metrics against known values (scikit-learn's
 * documented examples, hand-computed Pearson) and the metrics.jsonl appender. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/metrics.h"
#include "util/err.h"
#include "util/file.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NEAR(a, b) assert_true(fabs((a) - (b)) < 1e-9)

static void test_classification(void **state)
{
    (void)state;
    /* sklearn f1_score docs: y_true [0,1,2,0,1,2], y_pred [0,2,1,0,0,1] -> macro 0.2666... */
    int gold[] = {0, 1, 2, 0, 1, 2}, pred[] = {0, 2, 1, 0, 0, 1};
    bt_confusion c;
    bt_confusion_init(&c, 3);
    for (int i = 0; i < 6; i++) assert_int_equal(bt_confusion_add(&c, gold[i], pred[i]), BT_OK);
    bt_cls_metrics m;
    bt_confusion_metrics(&c, &m);
    NEAR(m.accuracy, 2.0 / 6);
    NEAR(m.f1, 0.8 / 3);
    NEAR(m.precision, (2.0 / 3) / 3);
    NEAR(m.recall, 1.0 / 3);
    assert_int_equal(m.n, 6);
    assert_int_equal(c.cm[0 * 3 + 0], 2);
    assert_int_equal(c.cm[2 * 3 + 1], 2);
    assert_int_equal(bt_confusion_add(&c, 3, 0), BT_EDATA);
    assert_int_equal(bt_confusion_add(&c, 0, -1), BT_EDATA);
    /* a class absent from gold and predictions does not dilute the macro average */
    bt_confusion c4;
    bt_confusion_init(&c4, 4);
    for (int i = 0; i < 6; i++) bt_confusion_add(&c4, gold[i], pred[i]);
    bt_cls_metrics m4;
    bt_confusion_metrics(&c4, &m4);
    NEAR(m4.f1, m.f1);
    bt_confusion_free(&c4);
    bt_confusion_reset(&c);
    bt_confusion_metrics(&c, &m);
    NEAR(m.accuracy, 0);
    bt_confusion_free(&c);
    /* binary: F1 of class 1 */
    int g2[] = {1, 1, 0, 0, 1}, p2[] = {1, 0, 0, 1, 1};
    bt_confusion_init(&c, 2);
    for (int i = 0; i < 5; i++) bt_confusion_add(&c, g2[i], p2[i]);
    bt_confusion_metrics(&c, &m);
    NEAR(m.f1_binary, 2.0 / 3);
    NEAR(m.accuracy, 0.6);
    NEAR(m.f1, (2.0 / 3 + 0.5) / 2);
    bt_confusion_free(&c);
    float lg[] = {0.1f, 2.0f, 2.0f, -1.0f};
    assert_int_equal(bt_argmax(lg, 4), 1);
}

static void test_multilabel(void **state)
{
    (void)state;
    bt_multilabel_counts c = {0};
    float l1[] = {1, -1, 1}, g1[] = {1, 0, 1};
    float l2[] = {1, 1, -1}, g2[] = {1, 0, 1};
    bt_multilabel_add(&c, l1, g1, 3);
    bt_multilabel_add(&c, l2, g2, 3);
    /* tp 3, fp 1, fn 1 -> 6/8 */
    NEAR(bt_multilabel_micro_f1(&c), 0.75);
    NEAR(bt_multilabel_subset_accuracy(&c), 0.5);
}

static void test_regression(void **state)
{
    (void)state;
    float x[] = {1, 2, 3, 4, 5}, y[] = {2, 4, 5, 4, 5};
    NEAR(bt_metric_pearson(x, y, 5), 0.7745966692414834);
    float a[] = {1, 2}, b[] = {2, 4};
    NEAR(bt_metric_mse(a, b, 2), 2.5);
    float k[] = {3, 3, 3};
    NEAR(bt_metric_pearson(k, x, 3), 0); /* constant side */
    NEAR(bt_metric_perplexity(1.0), exp(1.0));
    assert_true(isinf(bt_metric_perplexity(1000)));
    assert_int_equal(bt_metric_higher_is_better("accuracy"), 1);
    assert_int_equal(bt_metric_higher_is_better("perplexity"), 0);
}

static void test_log(void **state)
{
    (void)state;
    char path[] = "/tmp/baton-test-metrics-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    /* a previous writer was killed mid-line */
    assert_int_equal(write(fd, "{\"step\":1,\"spl", 14), 14);
    close(fd);
    bt_metrics_log *l;
    assert_int_equal(bt_metrics_log_open(path, &l), BT_OK);
    assert_int_equal(bt_metrics_log_segment(l, 0, 1, 1000.0), BT_OK);
    assert_int_equal(bt_metrics_log_append(l, 10, 0.5, "train", 0.25, 3e-5, NULL, 0, 1001.0), BT_OK);
    bt_metric_value v[] = {{"accuracy", 0.875}, {"f1", NAN}};
    assert_int_equal(bt_metrics_log_append(l, 20, 1.0, "eval", 0.3, NAN, v, 2, 1002.0), BT_OK);
    assert_int_equal(bt_metrics_log_sync(l), BT_OK);
    bt_metrics_log_close(l);
    char *text;
    size_t len;
    assert_int_equal(bt_read_file(path, 1 << 20, &text, &len), BT_OK);
    char *lines[8];
    int n = 0;
    for (char *s = strtok(text, "\n"); s && n < 8; s = strtok(NULL, "\n")) lines[n++] = s;
    assert_int_equal(n, 4);
    assert_string_equal(lines[0], "{\"step\":1,\"spl"); /* left alone, on its own line */
    json_t *o = json_loads(lines[1], 0, NULL);
    assert_string_equal(json_string_value(json_object_get(o, "event")), "segment_start");
    json_decref(o);
    o = json_loads(lines[2], 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(o, "step")), 10);
    NEAR(json_real_value(json_object_get(o, "lr")), 3e-5);
    json_decref(o);
    o = json_loads(lines[3], 0, NULL);
    assert_string_equal(json_string_value(json_object_get(o, "split")), "eval");
    NEAR(json_real_value(json_object_get(o, "accuracy")), 0.875);
    assert_true(json_is_null(json_object_get(o, "f1")));
    assert_null(json_object_get(o, "lr"));
    json_decref(o);
    free(text);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classification), cmocka_unit_test(test_multilabel),
        cmocka_unit_test(test_regression),     cmocka_unit_test(test_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
