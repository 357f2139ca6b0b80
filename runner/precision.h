/* runner/precision.h — resolving [train] precision for the device a job runs on.
 *
 * Owns: the rule "auto: bf16 on sm_80+, fp16 on sm_60..sm_75, fp32 on the
 * CPU", the refusal of requests the device cannot honour (bf16 or tf32 on a
 * GPU before sm_80, tf32 on the CPU) with a message naming the key, where it
 * was set and what to use instead, and the one line that says at the start of
 * a run which precision was chosen and why.
 * Must not: create backends or models (the engine double-checks what it is
 * given: bt_bert_create refuses what the backend cannot compute), or fall
 * back silently to another precision.
 */
#ifndef BATON_RUNNER_PRECISION_H
#define BATON_RUNNER_PRECISION_H

#include "engine/bert.h"
#include "kernels/backend.h"
#include "runner/job.h"

#include <stddef.h>

/* The device a precision is picked for, as the backend reports it
 * (be->device, be->sm; sm = 10 x major + minor compute capability, 0 on the CPU). */
typedef struct {
    bt_device device;
    int sm;
} bt_precision_device;

/* requested: a bt_job_precision (AUTO, FP32, TF32, FP16, BF16); dev: the
 * device it runs on; where: the key's origin
 * ("job.ini:12", "command line (-s #1)", "default"; NULL: none). On success
 * *out is the precision and describe (may be NULL) receives e.g.
 * "bf16 (auto: sm_80 GPU)" or "fp16 (requested; on the CPU: 16-bit storage,
 * fp32 arithmetic, slower than fp32)". Errors: BT_ECONFIG. */
int bt_precision_pick(int requested, bt_precision_device dev, const char *where, bt_precision *out,
                      char *describe, size_t n);

/* The same for a loaded job's train.precision on backend be. */
int bt_precision_resolve(const bt_job *job, const bt_backend *be, bt_precision *out, char *describe, size_t n);

#endif
