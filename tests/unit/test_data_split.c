/* tests/unit/test_data_split.c — engine/data_split.c ([data] eval_split):
 * per-class counts (stratified), file order kept in both parts, every example
 * in exactly one part, the same split for the same seed and another for
 * another seed, a class of one stays in training, regression and unlabelled
 * sets, and the refusals (nothing held out, nothing left). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/data.h"
#include "util/err.h"
#include "util/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* n rows "t<i>\t<label>" with label = class_of(i); parsed as a CLASS set. */
static void make_set(bt_dataset *ds, size_t n, const char *(*class_of)(size_t), bt_label_kind kind)
{
    size_t cap = 32 + n * 24, len = 0;
    char *buf = bt_xmalloc(cap);
    len += (size_t)snprintf(buf + len, cap - len, "sentence\tlabel\n");
    for (size_t i = 0; i < n; i++) len += (size_t)snprintf(buf + len, cap - len, "t%zu\t%s\n", i, class_of(i));
    bt_data_options o = {.format = BT_DATA_TSV, .label_kind = kind};
    assert_int_equal(bt_data_parse(buf, len, "train.tsv", &o, ds), 0);
    free(buf);
}

static const char *three_classes(size_t i) { return i % 10 < 6 ? "a" : i % 10 < 9 ? "b" : "c"; } /* 60/30/10 % */
static const char *lonely_class(size_t i) { return i == 5 ? "rare" : i % 2 ? "x" : "y"; }
static const char *numbers(size_t i)
{
    static char b[8][16];
    snprintf(b[i % 8], sizeof b[0], "%zu.5", i % 7);
    return b[i % 8];
}

static size_t row_of(const bt_dataset *ds, size_t i) { return (size_t)atol(bt_example_text(ds, i) + 1); }

/* Every row 0..n-1 is in exactly one part, each part in file order. */
static void check_partition(const bt_dataset *a, const bt_dataset *b, size_t n)
{
    assert_int_equal(a->n + b->n, n);
    char *seen = bt_xcalloc(n, 1);
    const bt_dataset *parts[2] = {a, b};
    for (int p = 0; p < 2; p++)
        for (size_t i = 0; i < parts[p]->n; i++) {
            size_t r = row_of(parts[p], i);
            assert_true(r < n);
            assert_int_equal(seen[r], 0);
            seen[r] = 1;
            if (i) assert_true(row_of(parts[p], i - 1) < r);
        }
    free(seen);
}

static size_t count_label(const bt_dataset *ds, int k)
{
    size_t m = 0;
    for (size_t i = 0; i < ds->n; i++) m += ds->ex[i].label == k;
    return m;
}

static void test_stratified(void **state)
{
    (void)state;
    bt_dataset tr, ev;
    make_set(&tr, 1000, three_classes, BT_LABELS_CLASS); /* a 600, b 300, c 100 */
    assert_int_equal(bt_data_split(&tr, 0.1, 42, &ev), 0);
    check_partition(&tr, &ev, 1000);
    assert_int_equal(count_label(&ev, 0), 60);
    assert_int_equal(count_label(&ev, 1), 30);
    assert_int_equal(count_label(&ev, 2), 10);
    assert_int_equal(ev.n_labels, 3);
    assert_string_equal(ev.labels[2], "c");
    assert_non_null(strstr(ev.path, "train.tsv (held-out 10%)"));
    assert_memory_equal(ev.sha256, tr.sha256, 32);
    bt_data_free(&tr);
    bt_data_free(&ev);
}

/* The rows held out, as a string of 0/1 per row. */
static char *held_rows(uint64_t seed)
{
    bt_dataset tr, ev;
    make_set(&tr, 200, three_classes, BT_LABELS_CLASS);
    assert_int_equal(bt_data_split(&tr, 0.25, seed, &ev), 0);
    char *m = bt_xcalloc(201, 1);
    memset(m, '0', 200);
    for (size_t i = 0; i < ev.n; i++) m[row_of(&ev, i)] = '1';
    bt_data_free(&tr);
    bt_data_free(&ev);
    return m;
}

static void test_seeded(void **state)
{
    (void)state;
    char *a = held_rows(7), *b = held_rows(7), *c = held_rows(8);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    free(a);
    free(b);
    free(c);
}

static void test_class_of_one_stays(void **state)
{
    (void)state;
    bt_dataset tr, ev;
    make_set(&tr, 41, lonely_class, BT_LABELS_CLASS);
    int rare = -1;
    for (int k = 0; k < tr.n_labels; k++)
        if (!strcmp(tr.labels[k], "rare")) rare = k;
    assert_true(rare >= 0);
    assert_int_equal(bt_data_split(&tr, 0.5, 1, &ev), 0);
    check_partition(&tr, &ev, 41);
    assert_int_equal(count_label(&tr, rare), 1);
    assert_int_equal(count_label(&ev, rare), 0);
    bt_data_free(&tr);
    bt_data_free(&ev);
}

static void test_regression_and_text(void **state)
{
    (void)state;
    bt_dataset tr, ev;
    make_set(&tr, 90, numbers, BT_LABELS_REGRESSION);
    assert_int_equal(bt_data_split(&tr, 0.2, 3, &ev), 0);
    check_partition(&tr, &ev, 90);
    assert_int_equal(ev.n, 18);
    for (size_t i = 0; i < ev.n; i++) /* targets travel with their rows */
        assert_true(ev.ex[i].target == (float)(row_of(&ev, i) % 7) + 0.5f);
    bt_data_free(&tr);
    bt_data_free(&ev);
}

static void test_refusals(void **state)
{
    (void)state;
    bt_dataset tr, ev;
    make_set(&tr, 4, lonely_class, BT_LABELS_CLASS); /* x 2, y 2: 10% of 2 rounds to 0 */
    assert_int_equal(bt_data_split(&tr, 0.1, 1, &ev), BT_EDATA);
    assert_non_null(strstr(bt_errmsg(), "train.tsv: 4 examples"));
    assert_non_null(strstr(bt_errmsg(), "no evaluation example"));
    assert_int_equal(tr.n, 4); /* unchanged */
    assert_int_equal(ev.n, 0);
    assert_int_equal(bt_data_split(&tr, 0.0, 1, &ev), BT_ECONFIG);
    assert_int_equal(bt_data_split(&tr, 1.0, 1, &ev), BT_ECONFIG);
    bt_data_free(&tr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stratified),   cmocka_unit_test(test_seeded),
        cmocka_unit_test(test_class_of_one_stays), cmocka_unit_test(test_regression_and_text),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
