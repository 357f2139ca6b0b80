/* runner/selftest_gate.c — when the first-contact self-check runs and what a
 * mismatch does (see selftest.h), the record key of a GPU, and the
 * BATON_FAKE_GPU stand-in.
 *
 * Owns: the policy (checked before? run, record, refuse or fall back), the
 * messages a user sees about it, the key (GPU name, compute capability,
 * driver, cuBLASLt, baton version and binary, backend library, precision),
 * and the self-check line of `baton doctor`.
 * Must not: compare anything itself (selftest.c), know the record's layout
 * (selftest_record.c), or create a backend other than the CPU reference and
 * the stand-in.
 */
#include "runner/selftest.h"

#include "kernels/backend_fault.h"
#include "runner/job.h" /* bt_job_device */
#include "util/err.h"
#include "util/file.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/sha256.h"

#include <stdlib.h>
#include <string.h>

#ifndef BATON_VERSION
#define BATON_VERSION "0.0.0-dev"
#endif

bt_backend *bt_selftest_gpu_backend(int device)
{
    const char *fake = getenv("BATON_FAKE_GPU");
    if (!fake || !*fake) return bt_backend_cuda_create(device);
    bt_fault_spec sp;
    if (bt_fault_parse(fake, &sp)) {
        bt_fail_context(BT_ECONFIG, "BATON_FAKE_GPU");
        return NULL;
    }
    return bt_backend_fault_wrap(bt_backend_cpu_create(0), &sp);
}

int bt_selftest_is_fake(const bt_backend *be) { return be && bt_backend_fault_hits(be) >= 0; }

/* SHA-256 (hex) of a file's bytes; "unknown" if it cannot be read. */
static void file_sha256(const char *path, char hex[65])
{
    bt_mapping m;
    if (bt_map_file(path, &m) != BT_OK) {
        bt_err_clear();
        snprintf(hex, 65, "unknown");
        return;
    }
    uint8_t d[32];
    bt_sha256(m.data, m.len, d);
    bt_sha256_hex(d, hex);
    bt_unmap_file(&m);
}

/* The kernel module's release ("580.159.03") from /proc, "" when absent. */
static void driver_release(char *out, size_t cap)
{
    out[0] = 0;
    char *text = NULL;
    size_t len = 0;
    if (bt_read_file("/proc/driver/nvidia/version", 1 << 16, &text, &len) != BT_OK) {
        bt_err_clear();
        return;
    }
    /* "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.159.03  ...": the first d+.d+ word */
    for (char *p = text; *p && *p != '\n'; p++) {
        if ((p == text || p[-1] == ' ') && *p >= '0' && *p <= '9') {
            size_t n = strspn(p, "0123456789.");
            if (n > 2 && memchr(p, '.', n) && (p[n] == ' ' || p[n] == '\n' || !p[n])) {
                snprintf(out, cap, "%.*s", (int)n, p);
                break;
            }
        }
    }
    free(text);
}

int bt_selftest_key_for(const bt_backend *be, int device, bt_precision precision, bt_selftest_key *k)
{
    memset(k, 0, sizeof *k);
    snprintf(k->baton, sizeof k->baton, "%s", BATON_VERSION);
    file_sha256("/proc/self/exe", k->baton_sha256);
    snprintf(k->precision, sizeof k->precision, "%s", bt_precision_name(precision));
    const char *fake = getenv("BATON_FAKE_GPU");
    if (bt_selftest_is_fake(be) || (!be && fake && *fake)) {
        bt_fault_spec sp;
        if (bt_fault_parse(fake, &sp)) return bt_fail_context(BT_ECONFIG, "BATON_FAKE_GPU");
        if (sp.kind == BT_FAULT_NONE) snprintf(k->gpu, sizeof k->gpu, "fake GPU (BATON_FAKE_GPU=none)");
        else snprintf(k->gpu, sizeof k->gpu, "fake GPU (BATON_FAKE_GPU=%s:%g)", bt_fault_name(sp.kind), sp.rel);
        snprintf(k->cc, sizeof k->cc, "-");
        snprintf(k->driver, sizeof k->driver, "-");
        snprintf(k->cublaslt, sizeof k->cublaslt, "-");
        snprintf(k->backend_sha256, sizeof k->backend_sha256, "-");
        return BT_OK;
    }
    bt_gpu_identity *id = bt_xcalloc(1, sizeof *id);
    int rc = bt_backend_cuda_identity(device, id);
    if (!rc) {
        char rel[48];
        driver_release(rel, sizeof rel);
        snprintf(k->gpu, sizeof k->gpu, "%s", id->gpu);
        snprintf(k->cc, sizeof k->cc, "%d.%d", id->cc_major, id->cc_minor);
        snprintf(k->driver, sizeof k->driver, "%s%sCUDA %d.%d", rel, rel[0] ? ", " : "", id->cuda_driver / 1000,
                 (id->cuda_driver % 1000) / 10);
        snprintf(k->cublaslt, sizeof k->cublaslt, "%s", id->cublaslt[0] ? id->cublaslt : "none");
        file_sha256(id->library, k->backend_sha256);
    }
    free(id);
    return rc;
}

/* 1 when a pass for key is on record in out or cache (NULL: not looked at);
 * *found gets its figures. Damaged files are reported as warnings. */
static int on_record(const char *out, const char *cache, const bt_selftest_key *k, int *in_out, int *in_cache,
                     bt_selftest_result *found)
{
    char note[1100];
    *in_out = out && bt_selfcheck_find(out, k, found, note, sizeof note);
    if (out && note[0]) bt_warn("self-check record %s", note);
    *in_cache = cache && bt_selfcheck_find(cache, k, *in_out ? NULL : found, note, sizeof note);
    if (cache && note[0]) bt_warn("self-check record %s", note);
    return *in_out || *in_cache;
}

static void remember(const char *path, const bt_selftest_key *k, const bt_selftest_result *r)
{
    if (!path) return;
    if (bt_selfcheck_add(path, k, r) != BT_OK) {
        bt_warn("self-check passed, but it cannot be remembered in %s (%s); it will run again next time", path,
                bt_errmsg());
        bt_err_clear();
    }
}

static void say(bt_progress *p, const char *msg) { bt_progress_message(p, "%s", msg); }

/* The mismatch report: what was compared and where it differs. */
static char *report(const bt_selftest_key *k, const bt_selftest_result *r, int rc)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return bt_xstrdup("(no report: out of memory)");
    fprintf(f, "  GPU %s (compute capability %s), driver %s, cuBLASLt %s, baton %s, %s\n", k->gpu, k->cc, k->driver,
            k->cublaslt, k->baton, k->precision);
    if (rc) fprintf(f, "  the check could not run: %s\n", bt_errmsg());
    else bt_selftest_result_print(f, r, "  ");
    fclose(f);
    return buf;
}

int bt_selftest_gate(bt_backend **be, const bt_selftest_gate_opts *o)
{
    bt_backend *dev = *be;
    if (!dev || (dev->device != BT_DEV_CUDA && !bt_selftest_is_fake(dev))) return BT_OK;
    int rc;
    bt_selftest_key k;
    int keyed = bt_selftest_key_for(dev, 0, o->precision, &k) == BT_OK;
    if (!keyed) {
        bt_warn("the GPU cannot be identified (%s): the self-check runs, and is not remembered", bt_errmsg());
        bt_err_clear();
    }
    char *out = o->out_dir ? bt_selfcheck_out_path(o->out_dir) : NULL, *cache = bt_selfcheck_cache_path();
    int in_out = 0, in_cache = 0;
    bt_selftest_result known;
    if (keyed && on_record(out, cache, &k, &in_out, &in_cache, &known)) {
        bt_info("self-check: %s (%s) passed on %s for this driver, baton build and precision; not repeated",
                k.gpu, k.cc, known.checked_at);
        /* a pass known in one place is copied to the other (the output directory travels between sessions) */
        if (!in_out && o->write_out_dir) remember(out, &k, &known);
        if (!in_cache) remember(cache, &k, &known);
        free(out);
        free(cache);
        return BT_OK;
    }
    char *msg = bt_xasprintf("first contact with %s (compute capability %s, driver %s, baton %s): checking the "
                             "GPU backend against the CPU in %s (a few seconds)", k.gpu[0] ? k.gpu : "this GPU",
                             k.cc, k.driver, k.baton, bt_precision_name(o->precision));
    say(o->progress, msg);
    free(msg);
    bt_selftest_result r;
    bt_backend *ref = bt_backend_cpu_create(o->threads);
    rc = ref ? bt_selftest_compare(dev, ref, o->precision, &r) : BT_EINTERNAL;
    if (ref) ref->destroy(ref);
    if (!rc && r.pass) {
        msg = bt_xasprintf("self-check passed in %.1f s: worst relative error of losses %.2g, gradients %.2g, "
                           "weight updates %.2g (limit %g)", r.seconds, r.loss_err, r.grad_err, r.weight_err, r.limit);
        say(o->progress, msg);
        free(msg);
        if (keyed) {
            if (o->write_out_dir) remember(out, &k, &r);
            remember(cache, &k, &r);
        }
        free(out);
        free(cache);
        return BT_OK;
    }
    free(out);
    free(cache);
    /* not the device's fault: a precision it cannot compute (the engine says what to use), no temp dir */
    if (rc == BT_ECONFIG || rc == BT_EIO) return bt_fail_context(rc, "first-contact self-check");
    char *rep = report(&k, &r, rc);
    dev->destroy(dev);
    *be = NULL;
    if (o->device_setting == BT_JOB_DEVICE_CUDA) {
        rc = bt_fail(BT_EINTERNAL, "the GPU backend does not match the CPU reference on this GPU (first-contact "
                                   "self-check, docs/cuda.md):\n%sbaton will not train on it: set [runtime] "
                                   "device = cpu (or auto, which then trains on the CPU), and please report it "
                                   "with the output of `baton selftest --json`", rep);
        free(rep);
        return rc;
    }
    bt_err_clear();
    bt_warn("\n"
            "********************************************************************************\n"
            "** WARNING: the GPU backend does not match the CPU reference on this GPU\n"
            "** (first-contact self-check, docs/cuda.md). device = auto: TRAINING ON THE CPU,\n"
            "** which is much slower. Set device = cpu to silence this, and please report it\n"
            "** with the output of `baton selftest --json`.\n"
            "********************************************************************************\n%s", rep);
    free(rep);
    return BT_OK;
}

void bt_selftest_doctor(FILE *f, bt_precision precision)
{
    bt_selftest_key k;
    if (bt_selftest_key_for(NULL, 0, precision, &k) != BT_OK) {
        fprintf(f, "  self-check: GPU 0 cannot be identified (%s)\n", bt_errmsg());
        bt_err_clear();
        return;
    }
    char *cache = bt_selfcheck_cache_path();
    char note[1100] = "";
    bt_selftest_result r;
    int found = cache && bt_selfcheck_find(cache, &k, &r, note, sizeof note);
    if (found)
        fprintf(f, "  self-check: passed on %s for %s with this driver, cuBLASLt, baton build and %s (%s)\n",
                r.checked_at, k.gpu, k.precision, cache);
    else
        fprintf(f, "  self-check: not run yet for %s with this driver, cuBLASLt, baton build and %s%s%s: the first "
                   "training run on it runs it (seconds), or `baton selftest`\n", k.gpu, k.precision,
                note[0] ? "; " : "", note);
    free(cache);
}
