/* tests/unit/test_plot.c — metrics.jsonl -> SVG: well-formed XML (checked by
 * Python's minidom when python3 is available, and structurally here), series
 * and legend present, segment boundaries, replayed steps drawn once, broken
 * lines skipped, names escaped. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "runner/plot.h"
#include "util/err.h"
#include "util/file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int count(const char *s, const char *sub)
{
    int n = 0;
    for (const char *p = strstr(s, sub); p; p = strstr(p + 1, sub)) n++;
    return n;
}

static const char *LOG =
    "{\"event\":\"segment_start\",\"step\":0,\"segment\":1,\"time\":1}\n"
    "{\"step\":10,\"epoch\":0.1,\"split\":\"train\",\"loss\":0.9,\"lr\":1e-5,\"time\":2}\n"
    "{\"step\":20,\"epoch\":0.2,\"split\":\"train\",\"loss\":0.7,\"lr\":2e-5,\"time\":3}\n"
    "{\"step\":20,\"epoch\":0.2,\"split\":\"eval\",\"loss\":0.8,\"accuracy\":0.6,\"f1<&>\":0.5,\"time\":3}\n"
    "{\"step\":30,\"epoch\":0.3,\"split\":\"train\",\"loss\":0.6,\"lr\":2e-5,\"time\":4}\n" /* lost: never committed */
    "{\"step\":30,\"split\":\"tr\n"                                                 /* killed mid-line */
    "{\"event\":\"segment_start\",\"step\":20,\"segment\":2,\"time\":5}\n"
    "{\"step\":30,\"epoch\":0.3,\"split\":\"train\",\"loss\":0.5,\"lr\":2e-5,\"time\":6}\n"
    "{\"step\":40,\"epoch\":0.4,\"split\":\"eval\",\"loss\":0.4,\"accuracy\":0.8,\"f1<&>\":0.7,\"time\":7}\n";

static void test_svg(void **state)
{
    (void)state;
    char *svg;
    int skipped = -1;
    assert_int_equal(bt_plot_svg(LOG, strlen(LOG), "sst2 & friends", &svg, &skipped), BT_OK);
    assert_int_equal(skipped, 1);
    assert_memory_equal(svg, "<?xml", 5);
    assert_non_null(strstr(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert_non_null(strstr(svg, "</svg>\n"));
    assert_int_equal(count(svg, "<g class=\"panel\">"), 2);
    assert_int_equal(count(svg, "<g"), count(svg, "</g>"));
    assert_int_equal(count(svg, "<text"), count(svg, "</text>"));
    assert_non_null(strstr(svg, ">train loss</text>"));
    assert_non_null(strstr(svg, ">eval loss</text>"));
    assert_non_null(strstr(svg, ">eval accuracy</text>"));
    assert_non_null(strstr(svg, ">eval f1&lt;&amp;&gt;</text>"));
    assert_non_null(strstr(svg, "sst2 &amp; friends"));
    assert_null(strstr(svg, "<&>"));
    assert_int_equal(count(svg, "class=\"segment\""), 2); /* step 20, in both panels */
    /* train loss: steps 10, 20, 30 once each (the lost 30 is dropped) */
    const char *tl = strstr(svg, "<polyline class=\"series\"");
    assert_non_null(tl);
    const char *pts = strstr(tl, "points=\"");
    const char *end = strchr(pts + 8, '"');
    int n_pts = 1;
    for (const char *p = pts + 8; p < end; p++) n_pts += *p == ' ';
    assert_int_equal(n_pts, 3);
    /* well-formed XML according to a real parser */
    if (system("python3 -c 'import xml.dom.minidom' >/dev/null 2>&1") == 0) {
        char path[] = "/tmp/baton-test-plot-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, svg, strlen(svg)), (ssize_t)strlen(svg));
        close(fd);
        char cmd[256];
        snprintf(cmd, sizeof cmd, "python3 -c 'import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])' %s", path);
        assert_int_equal(system(cmd), 0);
        unlink(path);
    } else {
        printf("python3 missing: XML checked structurally only\n");
    }
    free(svg);
}

static void test_empty_and_files(void **state)
{
    (void)state;
    char *svg;
    assert_int_equal(bt_plot_svg("", 0, NULL, &svg, NULL), BT_OK);
    assert_non_null(strstr(svg, "no metrics yet"));
    assert_int_equal(count(svg, "<g class=\"panel\">"), 1);
    free(svg);
    char dir[] = "/tmp/baton-test-plot-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *m = bt_path_join(dir, "metrics.jsonl"), *s = bt_path_join(dir, "metrics.svg");
    assert_int_equal(bt_plot_file(m, s, "x"), BT_ENOINPUT);
    assert_int_equal(bt_write_file_atomic(m, LOG, strlen(LOG)), BT_OK);
    assert_int_equal(bt_plot_file(m, s, "x"), BT_OK);
    assert_true(bt_path_exists(s));
    unlink(m);
    unlink(s);
    rmdir(dir);
    free(m);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_svg), cmocka_unit_test(test_empty_and_files)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
