/* runner/cmd_verify.c — `baton verify PATH...`: checks checkpoint archives
 * (a directory means every ckpt-*.tar under it, recursively), one line per
 * archive, OK or BAD with the reason. Exit 0 only if every archive is valid.
 * The judgement is the one `baton run` makes before resuming: checksums
 * (state/archive.h), then contents (runner/archive_check.h).
 * Must not: modify, repair or delete anything.
 */
#include "runner/archive_check.h"
#include "runner/commands.h"
#include "state/archive.h"
#include "state/commit.h"
#include "state/discovery.h"
#include "util/err.h"
#include "util/file.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: baton verify [--fingerprint JSON] PATH...\n"
               "  PATH: a checkpoint archive, or a directory searched recursively for ckpt-*.tar\n"
               "  --fingerprint JSON: also require this job fingerprint ({\"field\": value, ...})\n"
               "Prints OK or BAD per archive; exit 0 only if every archive is valid (65 if one is damaged,\n"
               "66 if a path is missing or holds no archive).\n");
}

static int verify_one(const char *path, const char *fp)
{
    bt_archive *a = NULL;
    int rc = bt_archive_read_checked(path, NULL, fp, &a);
    /* as discovery judges it: a file named for another step is refused too */
    const char *base = strrchr(path, '/');
    int64_t named;
    if (!rc && bt_archive_parse_filename(base ? base + 1 : path, &named) && named != bt_archive_step(a)) {
        rc = bt_fail(BT_EDATA, "%s: the file name says step %lld but MANIFEST.json says step %lld: renamed or damaged",
                     path, (long long)named, (long long)bt_archive_step(a));
        bt_archive_close(a);
    }
    if (rc) {
        const char *msg = bt_errmsg();
        size_t pl = strlen(path);
        if (!strncmp(msg, path, pl) && msg[pl] == ':') printf("BAD  %s\n", msg); /* already names the path */
        else printf("BAD  %s: %s\n", path, msg);
        return rc;
    }
    printf("OK   %s: step %lld, %llu bytes, %s\n", path, (long long)bt_archive_step(a),
           (unsigned long long)bt_archive_file_size(a),
           bt_archive_sidecar_checked(a) ? "members, sidecar and contents verified"
                                         : "members and contents verified (no .sha256 sidecar)");
    bt_archive_close(a);
    return BT_OK;
}

int cmd_verify(int argc, char **argv)
{
    const char *fp = NULL;
    int first = 1;
    for (; first < argc && argv[first][0] == '-'; first++) {
        if (!strcmp(argv[first], "-h") || !strcmp(argv[first], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[first], "--fingerprint") && first + 1 < argc) {
            fp = argv[++first];
        } else if (!strcmp(argv[first], "--")) {
            first++;
            break;
        } else {
            usage(stderr);
            return bt_report_error(bt_fail(BT_EUSAGE, "verify: unknown option '%s'", argv[first]));
        }
    }
    if (first >= argc) {
        usage(stderr);
        return bt_report_error(bt_fail(BT_EUSAGE, "verify: no archive or directory given"));
    }
    int worst = BT_OK, n_ok = 0, n_bad = 0;
    for (int i = first; i < argc; i++) {
        const char *p = argv[i];
        if (!bt_path_exists(p)) {
            printf("BAD  %s: no such file or directory\n", p);
            n_bad++;
            if (!worst) worst = BT_ENOINPUT;
            continue;
        }
        if (bt_is_dir(p)) {
            char **paths;
            int64_t *steps;
            size_t n;
            const char *rp[1] = {p};
            bt_discovery_list(NULL, rp, 1, &paths, &steps, &n);
            if (n == 0) {
                printf("BAD  %s: no checkpoint archives (ckpt-*.tar) in this directory\n", p);
                n_bad++;
                if (!worst) worst = BT_ENOINPUT;
            }
            for (size_t k = 0; k < n; k++) {
                int rc = verify_one(paths[k], fp);
                if (rc) { n_bad++; if (!worst || worst == BT_ENOINPUT) worst = rc; }
                else n_ok++;
            }
            bt_discovery_list_free(paths, steps, n);
        } else {
            int rc = verify_one(p, fp);
            if (rc) { n_bad++; if (!worst || worst == BT_ENOINPUT) worst = rc; }
            else n_ok++;
        }
    }
    fflush(stdout);
    if (n_bad) {
        bt_fail(worst, "%d of %d archives failed verification (see the BAD lines above)", n_bad, n_ok + n_bad);
        return bt_report_error(worst == BT_ECONFIG ? BT_EDATA : worst);
    }
    return BT_OK;
}
