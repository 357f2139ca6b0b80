/* tests/unit/test_predict_table.c — runner/predict_table: the input format
 * of `baton predict` (flag or extension), the output format (extension, else
 * the input's), and output fields (CSV quoting; TSV refuses a TAB or line
 * break). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "runner/predict_table.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

static void test_input_format(void **state)
{
    (void)state;
    static const struct { const char *flag, *input; bt_data_format want; } ok[] = {
        {NULL, "test.csv", BT_DATA_CSV},       {"auto", "TEST.TSV", BT_DATA_TSV},  {NULL, "t.jsonl", BT_DATA_JSONL},
        {NULL, "in.txt", BT_DATA_TEXT},        {NULL, "in", BT_DATA_TEXT},         {NULL, "-", BT_DATA_TEXT},
        {NULL, "a.conll", BT_DATA_CONLL},      {"csv", "-", BT_DATA_CSV},          {"text", "test.csv", BT_DATA_TEXT},
        {"jsonl", "x.data", BT_DATA_JSONL},    {"tsv", "x.csv", BT_DATA_TSV},      {"conll", "x.txt", BT_DATA_CONLL},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        bt_data_format f = BT_DATA_AUTO;
        assert_int_equal(bt_predict_input_format(ok[i].flag, ok[i].input, &f), BT_OK);
        assert_int_equal(f, ok[i].want);
    }
    bt_data_format f;
    assert_int_equal(bt_predict_input_format("xml", "a.csv", &f), BT_EUSAGE);
    assert_non_null(strstr(bt_errmsg(), "--input-format is auto, text, conll, csv, tsv or jsonl (got 'xml')"));
}

static void test_output_format(void **state)
{
    (void)state;
    assert_int_equal(bt_predict_output_format("submission.csv", BT_DATA_JSONL), BT_DATA_CSV);
    assert_int_equal(bt_predict_output_format("out.tsv", BT_DATA_CSV), BT_DATA_TSV);
    assert_int_equal(bt_predict_output_format("out.jsonl", BT_DATA_CSV), BT_DATA_JSONL);
    assert_int_equal(bt_predict_output_format("out.txt", BT_DATA_TSV), BT_DATA_TSV);
    assert_int_equal(bt_predict_output_format("out", BT_DATA_CSV), BT_DATA_CSV);
    assert_int_equal(bt_predict_output_format(NULL, BT_DATA_JSONL), BT_DATA_JSONL);
}

static void test_field(void **state)
{
    (void)state;
    static const struct { bt_data_format f; const char *in, *want; } cases[] = {
        {BT_DATA_CSV, "plain", "plain"},           {BT_DATA_CSV, "a,b", "\"a,b\""},
        {BT_DATA_CSV, "say \"hi\"", "\"say \"\"hi\"\"\""}, {BT_DATA_CSV, "two\nlines", "\"two\nlines\""},
        {BT_DATA_CSV, "cr\r", "\"cr\r\""},         {BT_DATA_CSV, "", ""},
        {BT_DATA_TSV, "a,b \"c\"", "a,b \"c\""},   {BT_DATA_TSV, "a\tb", NULL},
        {BT_DATA_TSV, "a\nb", NULL},               {BT_DATA_TSV, "a\rb", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = bt_predict_field(cases[i].f, cases[i].in);
        if (!cases[i].want) assert_null(got);
        else assert_string_equal(got, cases[i].want);
        free(got);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_input_format),
        cmocka_unit_test(test_output_format),
        cmocka_unit_test(test_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
