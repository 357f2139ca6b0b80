/* runner/plan_auto.c — train.micro_batch = auto and runtime.memory_limit for
 * a run (see plan.h): the segment loop's three hooks.
 *
 * Owns: picking the micro-batch at the start of a segment from the device's
 * free memory, the refusal before training when nothing fits (with the plan
 * and what to change), the "micro_batch" record of trainer.json and its reuse
 * on resume.
 * Must not: touch the segment loop's state beyond the job's batch_size /
 * grad_accum and the model options it is handed (runner/segment.c calls it
 * from marked lines; the task interface of issue 16 will own those calls).
 */
#include "runner/plan.h"

#include "runner/task_longdoc.h"
#include "util/err.h"
#include "util/mem.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define AUTO_FREE_SHARE 0.95 /* the share of the free memory micro_batch = auto plans for */

int bt_plan_pick_micro(const bt_plan_input *in, const bt_plan_device *dev, int64_t E, size_t engine_budget,
                       size_t peak_limit, bt_plan_choice *out)
{
    memset(out, 0, sizeof *out);
    for (int64_t m = E; m >= 1; m--) {
        if (E % m) continue;
        bt_plan_memory pm;
        bt_plan_input im = *in;
        im.accum = (int)(E / m);
        int rc = bt_plan_memory_at(&im, dev, (int)m, &pm);
        if (rc) return rc;
        if (pm.engine <= engine_budget && pm.peak <= peak_limit) {
            out->active = 1;
            out->micro = (int)m;
            out->grad_accum = (int)(E / m);
            return 0;
        }
    }
    return 0;
}

/* The plan's view of the model the runner is about to create. */
static void input_of_run(const bt_job *job, const bt_bert_opts *mo, bt_plan_input *in)
{
    memset(in, 0, sizeof *in);
    in->model_dir = job->model.path;
    in->task = mo->task;
    in->num_labels = mo->num_labels;
    in->problem = mo->problem;
    in->doc_attn_dim = mo->doc_attn_dim;
    in->precision = mo->precision;
    in->recompute = mo->recompute;
    in->seq = mo->max_seq;
    int has_eval = (job->data.eval && job->data.eval[0]) || job->data.eval_split > 0;
    in->eval_batch = !has_eval ? 0 : job->train.eval_batch_size > 0 ? (int)job->train.eval_batch_size : -1;
    int t = (int)job->runtime.threads;
#ifdef _OPENMP
    if (t <= 0) t = omp_get_max_threads();
#endif
    in->threads = t < 1 ? 1 : t;
    in->accum = (int)job->train.grad_accum;
}

/* Prints the plan at micro-batch `micro` to stderr (before a refusal). */
static void print_plan(const bt_job *job, const bt_plan_device *dev, const bt_plan_input *in, int micro)
{
    bt_job j = *job; /* shallow: the report only reads it */
    j.train.batch_size = micro;
    if (in->accum > 0) j.train.grad_accum = in->accum;
    bt_plan_report r;
    if (bt_plan_report_make(&j, dev, in, &r) == 0) bt_plan_report_print(stderr, &j, &r);
    else bt_err_clear();
}

static double gib(size_t b) { return (double)b / 1073741824.0; }

int bt_plan_hook_setup(bt_job *job, bt_backend *be, bt_bert_opts *mo, int devices, bt_plan_choice *ch)
{
    memset(ch, 0, sizeof *ch);
    mo->recompute = (bt_recompute)job->train.recompute;
    int autom = job->train.micro_batch == BT_JOB_MICRO_AUTO;
    if (!autom && job->runtime.memory_limit == 0) return 0;
    int n = devices > 1 ? devices : 1;
    bt_plan_input in;
    input_of_run(job, mo, &in);
    in.threads = (in.threads + n - 1) / n; /* a replica's share (runner/devices.h: at most ceil(threads / N)) */
    in.accum = (int)(job->train.grad_accum / n);
    bt_plan_device dev;
    size_t fr = 0, tot = 0;
    int rc = bt_plan_device_of(be, in.threads, 0, &dev);
    if (!rc) rc = be->mem_info(be, &fr, &tot);
    if (rc) return bt_fail_context(rc, "[train] micro_batch / [runtime] memory_limit");
    size_t limit = bt_plan_limit(job, &dev);
    if (n > 1 && be->host_memory) { /* the CPU's replicas are in one process: they share its memory */
        fr /= (size_t)n;
        limit /= (size_t)n;
    }
    if (!autom) { /* memory_limit alone: the job's batch must fit it */
        bt_plan_memory pm;
        if ((rc = bt_plan_memory_at(&in, &dev, mo->max_batch, &pm))) return rc;
        if (pm.peak <= limit) return 0;
        print_plan(job, &dev, &in, mo->max_batch);
        return bt_fail(BT_ECONFIG, "[runtime] memory_limit = %.2f GiB%s: this job's micro-batch of %d needs %.2f "
                                   "GiB (the plan above); lower [train] batch_size (raise grad_accum to keep the "
                                   "effective batch), set micro_batch = auto, or raise memory_limit",
                       gib(limit), n > 1 && be->host_memory ? " (a replica's share: the CPU's replicas share it)" : "",
                       mo->max_batch, gib(pm.peak));
    }
    /* per device: grad_accum is already x N (runner/devices.h), E the examples one device takes per step; the
     * micro-batch m divides it, so N devices x E / m micro-batches of m keep batch_size x grad_accum x N exactly */
    int64_t E = job->train.batch_size * job->train.grad_accum / n;
    size_t budget = (size_t)(AUTO_FREE_SHARE * (double)fr);
    if ((rc = bt_plan_pick_micro(&in, &dev, E, budget, limit, ch))) return rc;
    if (!ch->micro) {
        in.accum = (int)E; /* a micro-batch of 1: E of them per step (per device) */
        print_plan(job, &dev, &in, 1);
        return bt_fail(BT_ECONFIG, "[train] micro_batch = auto: not even a micro-batch of 1 fits (%.2f GiB free on "
                                   "the %s device, limit %.2f GiB; the plan above); lower [data] max_seq_len, set "
                                   "[train] recompute = full, use precision = fp16 or bf16 on a GPU, or a device with "
                                   "more memory", gib(fr), be->name, gib(limit));
    }
    ch->grad_accum *= n; /* recorded and gathered: micro-batches per step over every device */
    job->train.batch_size = ch->micro;
    job->train.grad_accum = ch->grad_accum;
    int eval = job->train.eval_batch_size > 0 ? (int)job->train.eval_batch_size : ch->micro;
    mo->max_batch = ch->micro > eval ? ch->micro : eval;
    char per[80] = "";
    if (n > 1) snprintf(per, sizeof per, " per device x %d devices", n);
    fprintf(stderr, "micro_batch = auto: %d x grad_accum %d%s = %lld examples per step (%.2f GiB free on the %s "
                    "device%s; limit %.2f GiB)\n", ch->micro, ch->grad_accum / n, per, (long long)(E * n), gib(fr),
            be->name, n > 1 && be->host_memory ? ", a replica's share" : "", gib(limit));
    return 0;
}

void bt_plan_hook_record(const bt_plan_choice *ch, void *json)
{
    if (!ch->active) return;
    json_object_set_new((json_t *)json, "micro_batch", json_pack("{s:s, s:i, s:i}", "mode", "auto", "size",
                                                                 ch->micro, "grad_accum", ch->grad_accum));
}

int bt_plan_hook_resume(bt_plan_choice *ch, const void *json, bt_job *job, int max_batch, const char *where)
{
    json_t *mb = json_object_get((const json_t *)json, "micro_batch");
    if (!mb || job->train.micro_batch != BT_JOB_MICRO_AUTO) return 0;
    json_int_t m = json_integer_value(json_object_get(mb, "size"));
    json_int_t g = json_integer_value(json_object_get(mb, "grad_accum"));
    int64_t E = job->train.batch_size * job->train.grad_accum;
    if (m < 1 || g < 1 || m > 65536 || g > 65536)
        return bt_fail(BT_EDATA, "%s: trainer.json's micro_batch {size %lld, grad_accum %lld} is out of range", where,
                       (long long)m, (long long)g);
    if (m * g != E) { /* the effective batch changed (--force): this segment's choice stands */
        fprintf(stderr, "micro_batch = auto: %s was trained with %lld x %lld examples per step, the job now says "
                        "%lld: keeping this segment's choice\n", where, (long long)m, (long long)g, (long long)E);
        return 0;
    }
    if (m > max_batch)
        return bt_fail(BT_ECONFIG, "%s was trained with micro-batches of %lld (micro_batch = auto) and this device "
                                   "fits %d now: resume where more memory is free (a smaller micro-batch would change "
                                   "the numbers of an exact resume), or start over with --fresh",
                       where, (long long)m, max_batch);
    job->train.batch_size = m;
    job->train.grad_accum = g;
    ch->active = 1;
    ch->micro = (int)m;
    ch->grad_accum = (int)g;
    ch->from_archive = 1;
    if (m != max_batch)
        fprintf(stderr, "micro_batch = auto: resuming with the archive's %lld x grad_accum %lld\n", (long long)m,
                (long long)g);
    return 0;
}
