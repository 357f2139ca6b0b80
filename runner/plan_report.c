/* runner/plan_report.c — the report of `baton plan`: the job's plan on one
 * device as a table for people and as one JSON object for scripts.
 *
 * Owns: assembling bt_plan_report (the plan at the job's micro-batch, the
 * largest micro-batch that fits, the time estimate) and printing it.
 * Must not: count data (runner/cmd_plan.c does) or decide anything for a run
 * (runner/plan_auto.c).
 */
#include "runner/plan.h"

#include "util/err.h"
#include "util/mem.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define MAX_MICRO_CAP 65536

static const char *task_name(const bt_job *job) { return bt_job_enum_name(bt_job_key_index("job", "task"), job->job.task); }

int bt_plan_report_make(const bt_job *job, const bt_plan_device *dev, const bt_plan_input *in, bt_plan_report *r)
{
    memset(r, 0, sizeof *r);
    r->dev = *dev;
    r->examples = -1;
    r->epoch_s = -1;
    int rc = 0;
    if (in) {
        r->in = *in;
        snprintf(r->precision_line, sizeof r->precision_line, "%s (the run's)", bt_precision_name(in->precision));
    } else {
        rc = bt_plan_input_of(job, dev, &r->in, r->precision_line, sizeof r->precision_line);
    }
    if (rc) return rc;
    if ((rc = bt_bert_config_load(job->model.path, &r->cfg))) return rc;
    /* runtime.devices as the runner resolves it (runner/devices.c): auto is every GPU of a GPU profile, 1 on the CPU */
    r->devices = job->runtime.devices > 1                                         ? (int)job->runtime.devices
                 : job->runtime.devices == 0 && dev->family == BT_COUNT_CUDA && dev->devices > 1 ? dev->devices
                                                                                 : 1;
    if (!in) r->in.threads = (r->in.threads + r->devices - 1) / r->devices; /* a replica's share (runner/devices.h) */
    r->micro = job->job.task == BT_JOB_TASK_CLASSIFY_LONG ? (int)job->data.chunk_batch : (int)job->train.batch_size;
    r->grad_accum = (int)job->train.grad_accum;
    if ((rc = bt_plan_memory_at(&r->in, dev, r->micro, &r->mem))) return rc;
    r->limit = bt_plan_limit(job, dev);
    if (dev->family == BT_COUNT_CPU) r->limit /= (size_t)r->devices; /* in-process replicas share the memory */
    if (job->train.micro_batch == BT_JOB_MICRO_AUTO && job->job.task != BT_JOB_TASK_CLASSIFY_LONG) {
        bt_plan_choice ch; /* as runner/plan_auto.c picks it, per device, within the limit alone */
        int64_t E = job->train.batch_size * job->train.grad_accum;
        if ((rc = bt_plan_pick_micro(&r->in, dev, E, r->limit, r->limit, &ch))) return rc;
        r->auto_micro = ch.micro;
        r->auto_accum = ch.grad_accum;
    }
    r->fits = r->mem.peak <= r->limit;
    if ((rc = bt_plan_max_micro(&r->in, dev, r->limit, MAX_MICRO_CAP, &r->max_micro))) return rc;
    if (r->max_micro > 0 && (rc = bt_plan_memory_at(&r->in, dev, r->max_micro, &r->max_mem))) return rc;
    bt_plan_report_time(job, r);
    return 0;
}

static double peak_tflops(const bt_plan_report *r)
{
    const bt_plan_device *d = &r->dev;
    switch (r->in.precision) {
    case BT_PREC_TF32: return d->tflops_tf32 > 0 ? d->tflops_tf32 : d->tflops_fp32;
    case BT_PREC_FP16:
    case BT_PREC_BF16: return d->tflops_16 > 0 ? d->tflops_16 : d->tflops_fp32;
    default: return d->tflops_fp32;
    }
}

void bt_plan_report_time(const bt_job *job, bt_plan_report *r)
{
    double per_example = bt_plan_example_flops(&r->in, &r->cfg);
    int64_t E = job->train.batch_size * job->train.grad_accum;
    if (job->job.task == BT_JOB_TASK_CLASSIFY_LONG) E = job->data.chunk_batch; /* one pass of chunks */
    else E *= r->devices > 1 ? r->devices : 1; /* runtime.devices: the effective batch */
    r->step_flops = per_example * (double)E;
    /* the GPUs the replicas run on (CPU replicas share the same cores) */
    int used = r->dev.family == BT_COUNT_CUDA ? (r->devices < r->dev.devices ? r->devices : r->dev.devices) : 1;
    double rate = peak_tflops(r) * 1e12 * r->dev.efficiency * (used > 0 ? used : 1);
    r->step_s = rate > 0 ? r->step_flops / rate : -1;
    if (r->examples >= 0 && r->step_s > 0) { /* classify_long: examples are chunks, a step one pass */
        r->steps_per_epoch = (r->examples + E - 1) / E;
        r->epoch_s = (double)r->steps_per_epoch * r->step_s;
    }
}

static double mib(size_t b) { return (double)b / 1048576.0; }

static void row(FILE *f, const char *what, size_t b) { fprintf(f, "  %-40s %10.1f\n", what, mib(b)); }

static void print_memory(FILE *f, const bt_plan_report *r)
{
    const bt_plan_memory *m = &r->mem;
    int gpu = r->dev.family == BT_COUNT_CUDA;
    size_t whole = r->dev.family == BT_COUNT_CPU ? r->dev.memory / (size_t)r->devices : r->dev.memory; /* a replica's */
    char w16[64];
    snprintf(w16, sizeof w16, "%s copy of the weights", bt_precision_name(r->in.precision));
    fprintf(f, "\nmemory at micro-batch %d %27s\n", r->micro, "MiB");
    row(f, "weights (fp32 masters)", m->params);
    if (m->copy16) row(f, w16, m->copy16);
    row(f, "gradients (fp32)", m->grads);
    row(f, "AdamW moments (fp32)", m->moments);
    row(f, "activations", m->activations);
    row(f, "  of which attention probabilities", m->probs);
    row(f, "workspace (op scratch)", m->workspace);
    if (m->fixed) row(f, "cuBLASLt workspace", m->fixed);
    row(f, gpu ? (r->dev.measured ? "CUDA context and libraries (measured)" : "CUDA context and libraries (estimate)")
               : "process: program, BLAS, data (estimate)", m->overhead);
    fprintf(f, "  %-40s %10.1f  = %.2f GiB of %.2f GiB%s (%.0f%%): %s\n", "peak", mib(m->peak),
            (double)m->peak / 1073741824.0, (double)r->limit / 1073741824.0,
            r->limit < whole ? " (memory_limit)" : r->devices > 1 && !gpu ? " (1/devices of it)" : "", 100.0 * (double)m->peak / (double)r->limit,
            r->fits ? "fits" : "DOES NOT FIT");
}

/* The batch line(s): micro-batch x grad_accum (x devices), and micro_batch = auto's pick. */
static void print_batch(FILE *f, const bt_job *job, const bt_plan_report *r)
{
    char per[64] = "";
    if (r->devices > 1) snprintf(per, sizeof per, " per device x %d devices", r->devices);
    fprintf(f, "batch      micro-batch %d x grad_accum %d%s = %lld examples per step%s\n", r->micro, r->grad_accum, per,
            (long long)r->micro * r->grad_accum * r->devices,
            job->train.micro_batch == BT_JOB_MICRO_AUTO ? " (micro_batch = auto: a run picks its own)" : "");
    if (job->train.micro_batch != BT_JOB_MICRO_AUTO) return;
    if (r->auto_micro > 0)
        fprintf(f, "auto       micro-batch %d x grad_accum %d%s = %lld examples per step (the largest divisor of %lld "
                   "that fits the limit%s; a run also keeps to 95%% of the memory free then)\n", r->auto_micro,
                r->auto_accum, per, (long long)r->auto_micro * r->auto_accum * r->devices,
                (long long)r->micro * r->grad_accum, r->devices > 1 ? ", each device one replica" : "");
    else
        fprintf(f, "auto       not even a micro-batch of 1 fits: a run refuses to start\n");
}

void bt_plan_report_print(FILE *f, const bt_job *job, const bt_plan_report *r)
{
    const bt_bert_config *c = &r->cfg;
    fprintf(f, "plan for job '%s' (%s) on %s: %s\n", job->job.name, task_name(job), r->dev.name, r->dev.desc);
    fprintf(f, "model      %s: %d layers, hidden %d, %d heads, intermediate %d, vocab %d\n", job->model.path,
            c->layers, c->hidden, c->heads, c->inter, c->vocab);
    fprintf(f, "precision  %s; recompute %s; %d tokens per sequence\n", r->precision_line,
            bt_recompute_name(r->in.recompute), r->in.seq);
    if (job->job.task == BT_JOB_TASK_CLASSIFY_LONG)
        fprintf(f, "batch      %d chunks per encoder pass (data.chunk_batch); documents per step %lld\n", r->micro,
                (long long)(job->train.batch_size * job->train.grad_accum));
    else
        print_batch(f, job, r);
    print_memory(f, r);
    if (r->max_micro > 0)
        fprintf(f, "\nlargest %s that fits: %d (peak %.2f GiB)%s\n",
                job->job.task == BT_JOB_TASK_CLASSIFY_LONG ? "chunk_batch" : "micro-batch", r->max_micro,
                (double)r->max_mem.peak / 1073741824.0, r->max_micro >= 65536 ? " (searched up to 65536)" : "");
    else
        fprintf(f, "\nnot even a micro-batch of 1 fits: lower data.max_seq_len, use precision = fp16/bf16 (GPU), "
                   "train.recompute = full, or a device with more memory\n");
    double tf = r->step_s > 0 ? r->step_flops / r->step_s / 1e12 : 0;
    int longdoc = job->job.task == BT_JOB_TASK_CLASSIFY_LONG;
    const char *unit = longdoc ? "pass of chunk_batch chunks" : "step";
    fprintf(f, "time (estimate): %.3g s per %s (%.3g TFLOP at %.3g TFLOP/s: %.0f%% of %s%s)", r->step_s, unit,
            r->step_flops / 1e12, tf, 100.0 * r->dev.efficiency,
            r->dev.family == BT_COUNT_CPU ? "the measured GEMM rate" : "the datasheet peak",
            r->dev.family == BT_COUNT_CUDA && r->devices > 1 && r->dev.devices > 1 ? ", over every device" : "");
    if (r->epoch_s >= 0)
        fprintf(f, "; %lld %s, %lld %s: %.3g s (%.2g h) per epoch\n", (long long)r->examples, r->examples_note,
                (long long)r->steps_per_epoch, longdoc ? "passes" : "steps", r->epoch_s, r->epoch_s / 3600.0);
    else
        fprintf(f, "; per epoch: %s\n", r->examples_note[0] ? r->examples_note : "unknown (no training data)");
    if (r->dev.family == BT_COUNT_CUDA)
        fprintf(f, "  (every example at full length; the attention kernels run on CUDA cores, so long sequences "
                   "train slower than this)\n");
    if (r->dev.devices > 1 && r->devices < r->dev.devices)
        fprintf(f, "  (runtime.devices = %d of this profile's %d GPUs)\n", r->devices, r->dev.devices);
    if (r->dev.family == BT_COUNT_CUDA && r->devices > r->dev.devices)
        fprintf(f, "  (runtime.devices = %d, but this profile has %d GPU%s: `baton run` refuses that)\n", r->devices,
                r->dev.devices, r->dev.devices == 1 ? "" : "s");
    if (r->devices > 1)
        fprintf(f, "  (runtime.devices = %d: the memory above is one replica's, %s)\n", r->devices,
                r->dev.family == BT_COUNT_CPU ? "with its share of the threads; the CPU's replicas share its memory, "
                                                "so the limit is 1/devices of it"
                                              : "on each GPU");
}

static json_t *memory_json(const bt_plan_memory *m)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "params", (json_int_t)m->params,
                     "copy16", (json_int_t)m->copy16, "grads", (json_int_t)m->grads, "moments",
                     (json_int_t)m->moments, "activations", (json_int_t)m->activations, "attention_probs",
                     (json_int_t)m->probs, "workspace", (json_int_t)m->workspace, "engine", (json_int_t)m->engine,
                     "backend_fixed", (json_int_t)m->fixed, "runtime_overhead", (json_int_t)m->overhead,
                     "peak", (json_int_t)m->peak);
}

char *bt_plan_report_json(const bt_job *job, const bt_plan_report *r)
{
    json_t *est = json_pack("{s:f, s:f, s:f}", "step_seconds", r->step_s, "step_tflop", r->step_flops / 1e12,
                            "efficiency", r->dev.efficiency);
    if (r->epoch_s >= 0) {
        json_object_set_new(est, "examples_per_epoch", json_integer((json_int_t)r->examples));
        json_object_set_new(est, "steps_per_epoch", json_integer((json_int_t)r->steps_per_epoch));
        json_object_set_new(est, "epoch_seconds", json_real(r->epoch_s));
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:I, s:I, s:I, s:b, s:o, s:i, s:o}",
                          "job", job->job.name, "task", task_name(job), "device", r->dev.name, "precision",
                          bt_precision_name(r->in.precision), "recompute", bt_recompute_name(r->in.recompute),
                          "seq", r->in.seq, "micro_batch", r->micro, "grad_accum", r->grad_accum,
                          "peak_bytes", (json_int_t)r->mem.peak, "limit_bytes", (json_int_t)r->limit,
                          "device_bytes", (json_int_t)r->dev.memory, "fits", r->fits, "memory",
                          memory_json(&r->mem), "max_micro_batch", r->max_micro, "estimate", est);
    if (r->max_micro > 0)
        json_object_set_new(o, "max_micro_batch_peak_bytes", json_integer((json_int_t)r->max_mem.peak));
    json_object_set_new(o, "devices", json_integer(r->devices));
    if (job->train.micro_batch == BT_JOB_MICRO_AUTO && r->auto_micro > 0) /* grad_accum: per device */
        json_object_set_new(o, "auto", json_pack("{s:i, s:i, s:I}", "micro_batch", r->auto_micro, "grad_accum",
                                                 r->auto_accum, "examples_per_step",
                                                 (json_int_t)r->auto_micro * r->auto_accum * r->devices));
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}
