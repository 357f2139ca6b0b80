/* runner/precision.c — [train] precision resolved for the device (see precision.h). */
#include "runner/precision.h"
#include "util/err.h"

#include <stdio.h>

static void say(char *describe, size_t n, const char *fmt, const char *a, int sm)
{
    if (describe && n) snprintf(describe, n, fmt, a, sm / 10, sm % 10);
}

int bt_precision_pick(int requested, bt_precision_device dev, const char *where, bt_precision *out,
                      char *describe, size_t n)
{
    const bt_device device = dev.device;
    const int sm = dev.sm;
    const char *w = where && *where ? where : "[train] precision";
    const char *sep = where && *where ? ": [train] precision" : "";
    int gpu = device == BT_DEV_CUDA;
    if (requested == BT_JOB_PREC_AUTO) {
        if (!gpu) {
            *out = BT_PREC_FP32;
            say(describe, n, "%s (auto: the CPU)", "fp32", sm);
        } else if (sm >= 80) {
            *out = BT_PREC_BF16;
            say(describe, n, "%s (auto: sm_%d%d GPU)", "bf16", sm);
        } else if (sm >= 60) {
            *out = BT_PREC_FP16;
            say(describe, n, "%s (auto: sm_%d%d GPU, dynamic loss scaling)", "fp16", sm);
        } else {
            *out = BT_PREC_FP32;
            say(describe, n, "%s (auto: sm_%d%d GPU has no fast fp16)", "fp32", sm);
        }
        return 0;
    }
    switch (requested) {
    case BT_JOB_PREC_FP32:
        *out = BT_PREC_FP32;
        say(describe, n, "%s (requested)", "fp32", sm);
        return 0;
    case BT_JOB_PREC_TF32:
        if (!gpu)
            return bt_fail(BT_ECONFIG, "%s%s = tf32: TF32 is a tensor-core format of sm_80+ GPUs and this job runs "
                                       "on the CPU; use precision = fp32 (or auto)", w, sep);
        if (sm < 80)
            return bt_fail(BT_ECONFIG, "%s%s = tf32: TF32 needs an sm_80+ GPU (A100, L4, H100) and this one is "
                                       "sm_%d%d; use precision = fp16 (or auto, which picks it here) or fp32",
                           w, sep, sm / 10, sm % 10);
        *out = BT_PREC_TF32;
        say(describe, n, "%s (requested; sm_%d%d GPU)", "tf32", sm);
        return 0;
    case BT_JOB_PREC_FP16:
        *out = BT_PREC_FP16;
        if (gpu) say(describe, n, "%s (requested; sm_%d%d GPU, dynamic loss scaling)", "fp16", sm);
        else say(describe, n, "%s (requested; on the CPU: 16-bit storage, fp32 arithmetic, slower than fp32)", "fp16", sm);
        return 0;
    case BT_JOB_PREC_BF16:
        if (gpu && sm < 80)
            return bt_fail(BT_ECONFIG, "%s%s = bf16: bf16 needs an sm_80+ GPU (A100, L4, H100) and this one is "
                                       "sm_%d%d (a T4 is sm_75, a P100 sm_60); use precision = fp16 (or auto, which "
                                       "picks it here) or fp32", w, sep, sm / 10, sm % 10);
        *out = BT_PREC_BF16;
        if (gpu) say(describe, n, "%s (requested; sm_%d%d GPU)", "bf16", sm);
        else say(describe, n, "%s (requested; on the CPU: 16-bit storage, fp32 arithmetic, slower than fp32)", "bf16", sm);
        return 0;
    }
    return bt_fail(BT_EINTERNAL, "%s%s: unknown value %d", w, sep, requested);
}

int bt_precision_resolve(const bt_job *job, const bt_backend *be, bt_precision *out, char *describe, size_t n)
{
    char where[256] = "";
    int k = bt_job_key_index("train", "precision");
    if (k >= 0 && job->origin && job->origin[k].file) bt_job_where(job, k, where, sizeof where);
    return bt_precision_pick(job->train.precision, (bt_precision_device){be->device, be->sm}, where, out, describe,
                             n);
}
