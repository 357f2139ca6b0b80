/* runner/devices.c — runtime.devices (see devices.h). */
#include "runner/devices.h"

#include "runner/selftest.h"
#include "util/err.h"
#include "util/log.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "job.ini:12: " where the key was set, or "". */
static void where_of(const bt_job *job, const char *section, const char *name, char *buf, size_t n)
{
    buf[0] = 0;
    int k = bt_job_key_index(section, name);
    if (k >= 0 && job->origin && job->origin[k].file) {
        bt_job_where(job, k, buf, n);
        if (strlen(buf) + 3 < n) strcat(buf, ": ");
    }
}

/* 1 when be is a GPU's: the CUDA backend, or the BATON_FAKE_GPU stand-in
 * (the CPU behind a test wrapper, runner/selftest.h), which takes the GPU
 * path here so that the CPU tests exercise it. */
static int on_gpu(const bt_backend *be) { return be->device == BT_DEV_CUDA || bt_selftest_is_fake(be); }

/* The GPUs this process sees: CUDA devices the backend library can query
 * (0, 1, ... until the first that cannot be), or BATON_FAKE_GPU_COUNT
 * stand-ins (default 1; testing only). */
static int gpus_present(const bt_backend *be)
{
    if (bt_selftest_is_fake(be)) {
        const char *v = getenv("BATON_FAKE_GPU_COUNT");
        int n = v && *v ? atoi(v) : 1;
        return n < 1 ? 1 : n > BT_MAX_REPLICAS ? BT_MAX_REPLICAS : n;
    }
    int n = 0;
    bt_gpu_identity id;
    while (n < BT_MAX_REPLICAS && bt_backend_cuda_identity(n, &id) == BT_OK) n++;
    bt_err_clear(); /* (the first GPU that is not there) */
    return n < 1 ? 1 : n;
}

/* The device count for be: on the CPU devices or 1 (auto); on GPUs every GPU
 * present (auto) or devices, which must not be more than are present. */
static int resolve_count(const bt_job *job, bt_backend *be, int *out)
{
    int64_t want = job->runtime.devices; /* 0: auto */
    if (!on_gpu(be)) {
        *out = want > 0 ? (int)want : 1;
        return 0;
    }
    int have = gpus_present(be);
    if (want > have) {
        char w[300];
        where_of(job, "runtime", "devices", w, sizeof w);
        return bt_fail(BT_ECONFIG, "%s[runtime] devices = %lld, but this machine has %d GPU%s; set devices = auto "
                                   "(every GPU present) or at most %d, and raise [train] grad_accum for the same "
                                   "effective batch (docs/operations.md)",
                       w, (long long)want, have, have == 1 ? "" : "s", have);
    }
    *out = want > 0 ? (int)want : have;
    return 0;
}

int bt_devices_hook_setup(bt_devices *d, bt_job *job, bt_backend *be)
{
    memset(d, 0, sizeof *d);
    d->job_accum = job->train.grad_accum;
    d->count = 1;
    d->factor = 1;
    int n = 1;
    int rc = resolve_count(job, be, &n);
    if (rc) return rc;
    if (n > 1) {
        char w[300];
        where_of(job, "runtime", "devices", w, sizeof w);
        if (job->train.grad_accum * n > 65536)
            return bt_fail(BT_ECONFIG, "%s[runtime] devices = %d x [train] grad_accum %lld: more than 65536 "
                                       "micro-batches per step", w, n, (long long)job->train.grad_accum);
    }
    d->count = n;
    d->factor = n;
    job->train.grad_accum *= n;
    if (n < 2) return 0;
    int total = be->set_threads ? be->set_threads(be, 0) : 1; /* (a GPU has none; its stand-in is a CPU) */
    for (int j = 0; j < n; j++) {
        d->threads[j] = total / n + (j < total % n);
        if (d->threads[j] < 1) d->threads[j] = 1;
    }
    if (on_gpu(be))
        fprintf(stderr, "devices = %d: %d GPU replicas (GPUs 0..%d, one thread each) x grad_accum %lld x batch %lld = "
                        "%lld examples per step\n", n, n, n - 1, (long long)d->job_accum,
                (long long)job->train.batch_size, (long long)(job->train.grad_accum * job->train.batch_size));
    else
        fprintf(stderr, "devices = %d: %d %s replicas x grad_accum %lld x batch %lld = %lld examples per step (one "
                        "thread per replica, %d thread(s) of runtime.threads = %d each%s)\n", n, n, be->name,
                (long long)d->job_accum, (long long)job->train.batch_size,
                (long long)(job->train.grad_accum * job->train.batch_size), d->threads[n - 1], total,
                total < n ? "; fewer threads than replicas: they share cores" : total % n ? ", the first ones one more" : "");
    return 0;
}

/* Replica j's backend: GPU j (or a stand-in), else a CPU backend of its own
 * (its workspace) with its share of the threads. */
static bt_backend *replica_backend(const bt_devices *d, const bt_backend *be0, int j)
{
    if (!on_gpu(be0)) return bt_backend_cpu_create(d->threads[j]);
    bt_backend *be = bt_selftest_gpu_backend(j);
    if (be && be->set_threads) be->set_threads(be, d->threads[j]); /* (the stand-in: a CPU) */
    if (be && be->sm != be0->sm) {
        bt_fail(BT_ECONFIG, "GPU %d is sm_%d and GPU 0 sm_%d: the replicas of one run need GPUs of one model; set "
                            "[runtime] devices = 1 (or make CUDA_VISIBLE_DEVICES list GPUs of one model)",
                j, be->sm, be0->sm);
        be->destroy(be);
        return NULL;
    }
    return be;
}

int bt_devices_hook_models(bt_devices *d, bt_backend *be, const char *model_dir, const bt_bert_opts *mo)
{
    d->be[0] = be;
    for (int j = 1; j < d->count; j++) {
        if (!(d->be[j] = replica_backend(d, be, j))) /* (a GPU that is not usable: the setting's; the CPU: memory) */
            return bt_fail_context(on_gpu(be) ? BT_ECONFIG : BT_EINTERNAL, "[runtime] devices = %d: replica %d's "
                                   "backend", d->count, j);
        int rc = bt_bert_create(d->be[j], model_dir, mo, &d->extra[j - 1]);
        if (rc) return bt_fail_context(rc, "[runtime] devices = %d: replica %d", d->count, j);
    }
    return 0;
}

/* BATON_FAULT_REPLICA=J@STEP (testing only, docs/operations.md). */
static int fault_env(const bt_devices *d, bt_trainer *t)
{
    const char *v = getenv("BATON_FAULT_REPLICA");
    if (!v || !*v) return 0;
    int j = -1;
    long long step = 0;
    char tail = 0;
    if (sscanf(v, "%d@%lld%c", &j, &step, &tail) != 2 || j < 0 || j >= d->count || step < 1)
        return bt_fail(BT_ECONFIG, "BATON_FAULT_REPLICA=%s: expected J@STEP, a replica 0..%d and a step >= 1 "
                                   "(testing only)", v, d->count - 1);
    bt_trainer_inject_failure(t, j, step);
    return 0;
}

/* The gradient sum and the weights' broadcast through the backends'
 * collective (NCCL between GPUs, kernels/cuda/nccl_dl.h; a fixed-order sum
 * on the CPU). Without NCCL the GPUs still train, through host memory, said
 * once per segment. */
static int use_collective(const bt_devices *d, bt_trainer *t)
{
    static int said;
    if (!d->be[0]->collective) return 0;
    int rc = bt_trainer_set_collective(t, 1);
    if (!rc || !on_gpu(d->be[0])) return rc;
    if (!said++)
        bt_warn("devices = %d: %s; the gradients and weights go through host memory instead (correct, "
                "slower; pip install nvidia-nccl-cu12, or see `baton doctor`)", d->count, bt_errmsg());
    bt_err_clear();
    return 0;
}

int bt_devices_hook_trainer(bt_devices *d, bt_trainer *t)
{
    int rc = d->count > 1 ? bt_trainer_set_replicas(t, d->extra, d->count - 1) : 0;
    if (!rc && d->count > 1) rc = bt_trainer_set_concurrent(t, 1, d->threads[0]);
    if (!rc && d->count > 1) rc = use_collective(d, t);
    return rc ? rc : fault_env(d, t);
}

void bt_devices_hook_record(const bt_devices *d, const bt_job *job, void *json)
{
    json_object_set_new((json_t *)json, "devices",
                        json_pack("{s:i, s:I, s:I, s:I}", "count", d->count, "grad_accum",
                                  (json_int_t)(job->train.grad_accum / d->count), "job_grad_accum",
                                  (json_int_t)d->job_accum, "batch_factor", (json_int_t)d->factor));
}

int64_t bt_devices_batch_factor(const void *o)
{
    json_t *dv = json_object_get((const json_t *)o, "devices");
    json_int_t f = json_integer_value(json_object_get(dv, "batch_factor"));
    return f >= 1 && f <= 65536 * (json_int_t)BT_MAX_REPLICAS ? f : 1; /* out of range: the position check fails */
}

int bt_devices_record_ok(const void *dv, int micro_auto)
{
    const json_t *o = dv;
    json_t *c = json_object_get(o, "count"), *a = json_object_get(o, "grad_accum");
    json_t *j = json_object_get(o, "job_grad_accum"), *f = json_object_get(o, "batch_factor");
    if (!json_is_object(o) || !json_is_integer(c) || !json_is_integer(a) || !json_is_integer(j) || !json_is_integer(f))
        return 0;
    json_int_t nc = json_integer_value(c), na = json_integer_value(a), nj = json_integer_value(j),
               nf = json_integer_value(f);
    return nc >= 1 && nc <= BT_MAX_REPLICAS && na >= 1 && na <= 65536 && nj >= 1 && nj <= 65536 && nf >= 1 &&
           nf <= 65536 * (json_int_t)BT_MAX_REPLICAS && (nc == 1 || micro_auto || nc * na == nj * nf);
    /* (micro_batch = auto may have rescaled grad_accum against the batch size, runner/plan.h) */
}

/* The archive's record: count, job_grad_accum and batch_factor (absent:
 * one device, this job's grad_accum, factor 1). */
static int archive_record(const char *text, const bt_devices *d, const char *where, int64_t *count, int64_t *jacc,
                          int64_t *factor)
{
    *count = 1;
    *jacc = d->job_accum;
    *factor = 1;
    json_t *o = json_loads(text, 0, NULL);
    json_t *dv = json_object_get(o, "devices");
    int rc = 0;
    if (json_is_object(dv)) {
        *count = json_integer_value(json_object_get(dv, "count"));
        *jacc = json_integer_value(json_object_get(dv, "job_grad_accum"));
        *factor = json_integer_value(json_object_get(dv, "batch_factor"));
        if (*count < 1 || *count > BT_MAX_REPLICAS || *jacc < 1 || *jacc > 65536 || *factor < 1 ||
            *factor * *jacc > 65536 * (int64_t)BT_MAX_REPLICAS)
            rc = bt_fail(BT_EDATA, "%s: trainer.json's devices {count %lld, job_grad_accum %lld, batch_factor %lld} "
                                   "is out of range; the archive is damaged", where, (long long)*count,
                         (long long)*jacc, (long long)*factor);
    }
    json_decref(o);
    return rc;
}

/* devices = auto resuming an archive whose micro-batches per step this many
 * devices cannot share (one GPU's archive on a T4 x2): the most devices that
 * can (a divisor of micro), said in one line. The replicas past them stay
 * until the trainer that holds them is gone (bt_devices_trim). */
static void fewer_devices(bt_devices *d, int64_t micro, const char *where)
{
    int n = d->count;
    while (n > 1 && micro % n) n--;
    fprintf(stderr, "devices = auto: %s was trained with %lld micro-batch(es) per step, which %d devices cannot "
                    "share; training on %d of them for the same effective batch (set [runtime] devices and "
                    "[train] grad_accum, and resume with --force, to use all %d)\n",
            where, (long long)micro, d->count, n, d->count);
    d->count = n;
}

void bt_devices_trim(bt_devices *d)
{
    for (int j = d->count > 1 ? d->count : 1; j < BT_MAX_REPLICAS; j++) {
        bt_bert_free(d->extra[j - 1]);
        d->extra[j - 1] = NULL;
        if (d->be[j]) d->be[j]->destroy(d->be[j]);
        d->be[j] = NULL;
    }
}

int bt_devices_hook_resume(bt_devices *d, const char *trainer_json, bt_job *job, const char *where, int *regroup)
{
    *regroup = 0;
    int64_t acount, ajacc, afactor;
    int rc = archive_record(trainer_json, d, where, &acount, &ajacc, &afactor);
    if (rc) return rc;
    /* the job's grad_accum changed (a --force resume): the job's effective batch from now on */
    if (ajacc != d->job_accum || afactor == d->factor) return 0;
    int64_t micro = ajacc * afactor;
    if (job->runtime.devices == 0 && job->train.micro_batch != BT_JOB_MICRO_AUTO && micro % d->count)
        fewer_devices(d, micro, where);
    if (job->train.micro_batch == BT_JOB_MICRO_AUTO || micro % d->count)
        return bt_fail(BT_ECONFIG, "%s was trained with %lld micro-batches of %lld examples per step (%lld device(s) "
                                   "x grad_accum %lld); %d device(s) cannot take the same effective batch%s: set "
                                   "[runtime] devices to a divisor of %lld, or change [train] grad_accum and resume "
                                   "with --force (a new effective batch), or start over with --fresh",
                       where, (long long)micro, (long long)job->train.batch_size, (long long)acount,
                       (long long)(micro / acount), d->count,
                       job->train.micro_batch == BT_JOB_MICRO_AUTO ? " with [train] micro_batch = auto" : "",
                       (long long)micro);
    job->train.grad_accum = micro;
    d->factor = afactor;
    *regroup = 1;
    fprintf(stderr, "devices = %d: %s was trained on %lld device(s) x grad_accum %lld; continuing with grad_accum "
                    "%lld per device (the same %lld examples per step)\n", d->count, where, (long long)acount,
            (long long)(micro / acount), (long long)(micro / d->count), (long long)(micro * job->train.batch_size));
    return 0;
}

void bt_devices_hook_rates(const bt_devices *d, const bt_trainer *t, bt_status *st)
{
    int n = d->count < BT_STATUS_MAX_DEVICES ? d->count : BT_STATUS_MAX_DEVICES;
    for (int j = 0; j < n; j++) {
        bt_replica_stats rs;
        bt_trainer_replica_stats(t, j, &rs);
        st->dev[j].examples_per_s = rs.busy_s > 0 ? (double)rs.examples / rs.busy_s : NAN;
        st->dev[j].tokens_per_s = rs.busy_s > 0 ? (double)rs.tokens / rs.busy_s : NAN;
        st->dev[j].memory_bytes = (double)rs.peak_bytes;
    }
    st->n_dev = n;
}

void bt_devices_free(bt_devices *d)
{
    for (int j = 0; j < BT_MAX_REPLICAS; j++) bt_bert_free(d->extra[j]);
    for (int j = 1; j < BT_MAX_REPLICAS; j++)
        if (d->be[j]) d->be[j]->destroy(d->be[j]);
    memset(d, 0, sizeof *d);
}
