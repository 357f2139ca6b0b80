/* tests/unit/test_json.c — util/json.c reads JSON as Python's json module
 * does: huge integers, reals beyond double, NaN/Infinity literals, repeated
 * keys; strings are never rewritten; real syntax errors keep their position. */
#include "util/json.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

static json_t *load(const char *s)
{
    json_error_t e;
    return bt_json_loads_py(s, strlen(s), &e);
}

static void test_huge_integer(void **state)
{
    (void)state;
    json_t *v = load("{\"model_max_length\": 1000000000000000019884624838656, \"n\": 7}");
    assert_non_null(v);
    json_t *m = json_object_get(v, "model_max_length");
    assert_true(json_is_real(m));
    assert_true(json_real_value(m) > 9.9e29 && json_real_value(m) < 1.1e30);
    assert_true(json_is_integer(json_object_get(v, "n")));
    long long x;
    int clamped;
    assert_int_equal(bt_json_as_int64(m, &x, &clamped), 0);
    assert_int_equal(clamped, 1);
    assert_true(x == INT64_MAX);
    json_decref(v);
    v = load("[-9223372036854775809, 9223372036854775807]");
    assert_non_null(v);
    assert_true(json_is_real(json_array_get(v, 0)) && json_real_value(json_array_get(v, 0)) < -9e18);
    assert_true(json_is_integer(json_array_get(v, 1)));
    json_decref(v);
}

static void test_literals_and_overflow(void **state)
{
    (void)state;
    json_t *v = load("{\"a\": Infinity, \"b\": -Infinity, \"c\": NaN, \"d\": 1e400, \"e\": -2e999, \"f\": 1e-400}");
    assert_non_null(v);
    assert_true(json_real_value(json_object_get(v, "a")) > 1e308);
    assert_true(json_real_value(json_object_get(v, "b")) < -1e308);
    assert_true(json_is_null(json_object_get(v, "c")));
    assert_true(json_real_value(json_object_get(v, "d")) > 1e308);
    assert_true(json_real_value(json_object_get(v, "e")) < -1e308);
    assert_true(json_real_value(json_object_get(v, "f")) == 0.0);
    json_decref(v);
}

static void test_strings_untouched(void **state)
{
    (void)state;
    /* only needs the rewrite because of the number; strings keep their text */
    const char *s = "{\"t\": \"NaN Infinity 99999999999999999999 \\\" 1e400\", \"x\": 99999999999999999999}";
    json_t *v = load(s);
    assert_non_null(v);
    assert_string_equal(json_string_value(json_object_get(v, "t")), "NaN Infinity 99999999999999999999 \" 1e400");
    json_decref(v);
}

static void test_repeated_key_last_wins(void **state)
{
    (void)state;
    json_t *v = load("{\"p\": 0.5, \"p\": 0.1}");
    assert_non_null(v);
    assert_true(json_real_value(json_object_get(v, "p")) == 0.1);
    json_decref(v);
}

static void test_syntax_error_position(void **state)
{
    (void)state;
    const char *s = "{\"a\": 1e400,\n \"b\": [1, 2,, 3]}";
    json_error_t e;
    assert_null(bt_json_loads_py(s, strlen(s), &e));
    assert_int_equal(e.line, 1); /* the strict parse's complaint (the first problem) is reported */
    assert_null(load("{\"a\": Infinit}"));
    assert_null(load("{\"a\": -}"));
    assert_null(load("{\"a\": \"unterminated"));
}

static void test_as_int64(void **state)
{
    (void)state;
    long long x;
    json_t *v = load("[3, 2.0, 2.5, \"3\", null, -1e30]");
    assert_int_equal(bt_json_as_int64(json_array_get(v, 0), &x, NULL), 0);
    assert_int_equal(x, 3);
    assert_int_equal(bt_json_as_int64(json_array_get(v, 1), &x, NULL), -1); /* 2.0: Python keeps a float */
    assert_int_equal(bt_json_as_int64(json_array_get(v, 2), &x, NULL), -1);
    assert_int_equal(bt_json_as_int64(json_array_get(v, 3), &x, NULL), -1);
    assert_int_equal(bt_json_as_int64(json_array_get(v, 4), &x, NULL), -1);
    int clamped;
    assert_int_equal(bt_json_as_int64(json_array_get(v, 5), &x, &clamped), 0);
    assert_true(x == INT64_MIN && clamped);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_huge_integer),         cmocka_unit_test(test_literals_and_overflow),
        cmocka_unit_test(test_strings_untouched),    cmocka_unit_test(test_repeated_key_last_wins),
        cmocka_unit_test(test_syntax_error_position), cmocka_unit_test(test_as_int64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
