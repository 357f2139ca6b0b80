/* runner/cmd_selftest.c — `baton selftest`: the first-contact self-check
 * (runner/selftest.h) run by hand, whatever the records say.
 *
 * Owns: the command's options, its report (text or JSON) and exit code
 * (0 pass, 70 mismatch, 78 no such device or precision, 64 usage).
 * Must not: train a job or write anything but the cache record of a pass.
 */
#include "runner/commands.h"
#include "runner/job.h"
#include "runner/precision.h"
#include "runner/selftest.h"
#include "util/err.h"
#include "util/mem.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef BATON_VERSION
#define BATON_VERSION "0.0.0-dev"
#endif

static void usage(FILE *f)
{
    fprintf(f, "usage: baton selftest [--device cuda|cpu] [--precision auto|fp32|tf32|fp16|bf16] [--threads N] [--json]\n"
               "  trains two small random BERTs for a few steps on the device and on the CPU reference and\n"
               "  compares losses, gradients and weight updates (relative limit 1e-4 in fp32, 2e-2 otherwise).\n"
               "  --device cuda (default): the GPU backend, GPU 0; cpu: the CPU backend (checks the check).\n"
               "  --precision auto (default): what training picks here (bf16 on sm_80+, fp16 on older GPUs,\n"
               "  fp32 on the CPU); tf32 is compared with an fp32 CPU. A pass on a GPU is remembered in\n"
               "  ~/.cache/baton/selfcheck.json, so training on it skips the check.\n"
               "  Exit: 0 pass, 70 mismatch, 78 no GPU backend or an unsupported precision.\n");
}

static int parse_precision(const char *s, int *out)
{
    static const char *const names[] = {"auto", "fp32", "tf32", "fp16", "bf16"};
    for (int i = 0; i < 5; i++)
        if (!strcmp(s, names[i])) {
            *out = i; /* bt_job_precision order */
            return 0;
        }
    return -1;
}

static void print_json(const bt_selftest_key *k, const char *dev, const bt_selftest_result *r, const char *rec)
{
    char *res = bt_selftest_result_json(r);
    json_error_t je;
    json_t *o = json_loads(res, 0, &je);
    free(res);
    json_t *top = json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s}}", "baton", BATON_VERSION, "device", dev, "key",
                            "gpu", k->gpu, "cc", k->cc, "driver", k->driver, "cublaslt", k->cublaslt, "precision",
                            k->precision);
    json_object_update(top, o);
    json_object_set_new(top, "recorded", rec ? json_string(rec) : json_null());
    char *s = json_dumps(top, JSON_COMPACT | JSON_PRESERVE_ORDER);
    printf("%s\n", s);
    free(s);
    json_decref(o);
    json_decref(top);
}

int cmd_selftest(int argc, char **argv)
{
    int cuda = 1, json = 0, threads = 0, prec = BT_JOB_PREC_AUTO;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!strcmp(a, "--device") && v && (!strcmp(v, "cuda") || !strcmp(v, "cpu"))) { cuda = !strcmp(v, "cuda"); i++; continue; }
        if (!strcmp(a, "--precision") && v && parse_precision(v, &prec) == 0) { i++; continue; }
        char *end = NULL;
        long t = v ? strtol(v, &end, 10) : -1;
        if (!strcmp(a, "--threads") && v && *v && !*end && t >= 0 && t <= 1024) { threads = (int)t; i++; continue; }
        fprintf(stderr, "baton: error: selftest: bad or incomplete option '%s'%s%s%s (see baton selftest --help)\n", a,
                v ? " '" : "", v ? v : "", v ? "'" : "");
        return BT_EUSAGE;
    }
    bt_backend *dev = cuda ? bt_selftest_gpu_backend(0) : bt_backend_cpu_create(threads);
    if (!dev) return bt_report_error(BT_ECONFIG);
    /* auto: what training picks on this device (runner/precision.h); a precision it cannot do: 78 */
    bt_precision p;
    char how[160];
    int rc = bt_precision_pick(prec, (bt_precision_device){dev->device, dev->sm}, "--precision", &p, how, sizeof how);
    if (rc) {
        dev->destroy(dev);
        return bt_report_error(rc);
    }
    bt_selftest_key k;
    int keyed = 0;
    if (cuda) {
        keyed = bt_selftest_key_for(dev, 0, p, &k) == BT_OK;
        if (!keyed) bt_err_clear();
    }
    if (!keyed) {
        memset(&k, 0, sizeof k);
        snprintf(k.gpu, sizeof k.gpu, "%s", cuda ? "unidentified GPU" : "none (the CPU backend)");
        snprintf(k.precision, sizeof k.precision, "%s", bt_precision_name(p));
    }
    if (!json)
        printf("self-check: the %s backend against the CPU reference, %s\n  GPU %s%s%s%s%s\n", dev->name, how,
               k.gpu, k.cc[0] ? ", compute capability " : "", k.cc, k.driver[0] ? ", driver " : "", k.driver);
    fflush(stdout);
    bt_backend *ref = bt_backend_cpu_create(threads);
    bt_selftest_result r;
    rc = ref ? bt_selftest_compare(dev, ref, p, &r) : BT_EINTERNAL;
    if (ref) ref->destroy(ref);
    dev->destroy(dev);
    if (rc) return bt_report_error(rc);
    char *rec = NULL;
    if (r.pass && keyed && (rec = bt_selfcheck_cache_path()) && bt_selfcheck_add(rec, &k, &r) != BT_OK) {
        fprintf(stderr, "baton: warning: the pass cannot be remembered: %s\n", bt_errmsg());
        bt_err_clear();
        free(rec);
        rec = NULL;
    }
    if (json) {
        print_json(&k, cuda ? "cuda" : "cpu", &r, rec);
    } else {
        bt_selftest_result_print(stdout, &r, "  ");
        printf("result: %s (%d models x %d steps, %.1f s)%s%s\n", r.pass ? "pass" : "MISMATCH", r.cases, r.steps,
               r.seconds, rec ? "; remembered in " : "", rec ? rec : "");
    }
    free(rec);
    return r.pass ? 0 : BT_EINTERNAL;
}
