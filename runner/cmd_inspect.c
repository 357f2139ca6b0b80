/* runner/cmd_inspect.c — `baton inspect ARCHIVE`: verifies an archive, then
 * prints its manifest (step, version, fingerprint, members) and what
 * trainer.json records (epoch, cursor, metrics). --json prints MANIFEST.json.
 * The contents are judged as `baton run` judges them (runner/archive_check.h):
 * an invalid archive is still shown (to see what is wrong with it), with the
 * reason, and the exit code is 65.
 * Must not: modify the archive.
 */
#include "runner/archive_check.h"
#include "runner/commands.h"
#include "state/archive.h"
#include "util/err.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: baton inspect [--json] ARCHIVE\n"
               "  prints the manifest, step, epoch and metrics of a checkpoint archive (after verifying it)\n"
               "  --json: print MANIFEST.json as stored\n");
}

static void print_value(const char *key, json_t *v)
{
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(8));
    if (s && strlen(s) > 200) strcpy(s + 197, "...");
    printf("  %-22s %s\n", key, s ? s : "?");
    free(s);
}

int cmd_inspect(int argc, char **argv)
{
    int as_json = 0;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(stdout); return 0; }
        if (!strcmp(argv[i], "--json")) as_json = 1;
        else if (!path && argv[i][0] != '-') path = argv[i];
        else {
            usage(stderr);
            return bt_report_error(bt_fail(BT_EUSAGE, "inspect: unexpected argument '%s'", argv[i]));
        }
    }
    if (!path) {
        usage(stderr);
        return bt_report_error(bt_fail(BT_EUSAGE, "inspect: no archive given"));
    }
    bt_archive *a;
    int rc = bt_archive_read(path, NULL, NULL, &a);
    if (rc) return bt_report_error(rc);
    int judged = bt_archive_contents_check(a);
    char why[1024] = "";
    if (judged) snprintf(why, sizeof why, "%s", bt_errmsg());
    if (as_json) {
        fputs(bt_archive_manifest_json(a), stdout);
        bt_archive_close(a);
        if (judged) bt_fail(judged, "%s", why);
        return judged ? bt_report_error(judged) : 0;
    }
    printf("archive        %s (%llu bytes, %s)\n", path, (unsigned long long)bt_archive_file_size(a),
           bt_archive_sidecar_checked(a) ? "verified with sidecar" : "verified, no sidecar");
    printf("format         %s version %d, written by baton %s\n", BT_ARCHIVE_FORMAT, bt_archive_format_version(a),
           bt_archive_baton_version(a));
    printf("step           %lld\n", (long long)bt_archive_step(a));
    printf("contents       %s%s\n", judged ? "INVALID: " : "valid (trainer.json, tensors against config.json)", why);
    json_t *tj = json_loads(bt_archive_text(a, BT_M_TRAINER), 0, NULL);
    json_t *ep = tj ? json_object_get(tj, "epoch") : NULL;
    if (ep) {
        char *s = json_dumps(ep, JSON_ENCODE_ANY | JSON_COMPACT);
        printf("epoch          %s\n", s ? s : "?");
        free(s);
    }
    printf("members\n");
    for (int i = 0; i < BT_M_COUNT; i++)
        if (i < bt_archive_members_of_version(bt_archive_format_version(a)) || i == BT_M_MANIFEST)
            printf("  %-23s %12llu  %s\n", bt_archive_member_name(i), (unsigned long long)bt_archive_member_size(a, i),
               bt_archive_member_sha256(a, i));
    printf("fingerprint\n");
    json_t *fj = json_loads(bt_archive_fingerprint_json(a), 0, NULL);
    const char *k;
    json_t *v;
    json_object_foreach(fj, k, v) print_value(k, v);
    json_decref(fj);
    if (tj) {
        printf("trainer.json\n");
        json_object_foreach(tj, k, v) {
            if (json_is_array(v) && json_array_size(v) > 0) {
                char key[64];
                snprintf(key, sizeof key, "%s[%zu], last", k, json_array_size(v));
                print_value(key, json_array_get(v, json_array_size(v) - 1));
            } else {
                print_value(k, v);
            }
        }
    }
    json_decref(tj);
    bt_archive_close(a);
    if (judged) {
        fflush(stdout);
        bt_fail(judged, "%s", why);
        return bt_report_error(judged);
    }
    return 0;
}
