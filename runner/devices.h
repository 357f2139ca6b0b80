/* runner/devices.h — runtime.devices: data-parallel replicas of the model.
 *
 * Owns: how many replicas a segment trains with (auto: 1 on the CPU, every
 * GPU present on CUDA; docs/operations.md), what it refuses (more GPUs than
 * present, GPUs of different models, more than 65536 micro-batches a step),
 * creating replicas 1..N-1 (a CPU backend each, or a CUDA backend on GPU j),
 * handing them to the trainer (engine/train.h, "data parallelism") with the
 * backends' collective (NCCL between GPUs; without it host memory, said once), the effective batch (batch_size x
 * grad_accum x devices), its record in trainer.json ("devices") and a resume
 * on another device count (grad_accum per device adjusted so that the
 * archive's micro-batches per step, the effective batch, the steps per epoch
 * and the data order stay; a clear error where they cannot).
 * Must not: depend on runner/segment.c, read data, or touch archives; the
 * segment calls the bt_devices_hook_* functions (lines marked "issue 20 hook").
 *
 * After bt_devices_hook_setup, job->train.grad_accum is the number of
 * micro-batches per optimizer step over ALL devices (grad_accum x devices):
 * what the segment's loop gathers, the steps per epoch follow from and the
 * trainer deals out (micro-batch k to replica k mod devices). The job as
 * written (job.ini, the fingerprint) keeps the per-device grad_accum.
 */
#ifndef BATON_RUNNER_DEVICES_H
#define BATON_RUNNER_DEVICES_H

#include "engine/bert.h"
#include "engine/train.h"
#include "kernels/backend.h"
#include "runner/job.h"
#include "runner/status.h"

typedef struct {
    int count;         /* replicas this segment trains with (>= 1) */
    int64_t job_accum; /* [train] grad_accum as the job says (per device) */
    int64_t factor;    /* micro-batches per step = job_accum x factor (count, or the archive's on a resume) */
    bt_bert *extra[BT_MAX_REPLICAS]; /* replicas 1..count-1 (owned) */
    bt_backend *be[BT_MAX_REPLICAS]; /* be[j]: replica j's backend (be[0] the segment's; 1.. owned) */
    int threads[BT_MAX_REPLICAS];    /* replica j's share of runtime.threads (CPU) */
} bt_devices;

/* Setup, once the backend exists and before the steps per epoch are
 * computed: resolves runtime.devices for be, refuses what is not built
 * (BT_ECONFIG naming the key and where it was set), multiplies
 * job->train.grad_accum by the device count and says so when > 1. */
int bt_devices_hook_setup(bt_devices *d, bt_job *job, bt_backend *be);
/* After replica 0 was created with (model_dir, mo): replicas 1..count-1,
 * each on a CPU backend of its own with its share of be's threads (replica
 * j: threads / count, one more for the first threads % count, at least 1),
 * or, when be is a GPU's (or the BATON_FAKE_GPU stand-in, with
 * BATON_FAKE_GPU_COUNT of them), on GPU j (BT_ECONFIG for another model). */
int bt_devices_hook_models(bt_devices *d, bt_backend *be, const char *model_dir, const bt_bert_opts *mo);
/* After the trainer was created (again): hands it the replicas, to run
 * concurrently (one thread each) and to sum through the backends'
 * collective (bt_trainer_set_collective; on GPUs without NCCL a warning and
 * host memory), and BATON_FAULT_REPLICA=J@STEP (testing
 * only: replica J fails at step STEP; BT_ECONFIG when malformed). */
int bt_devices_hook_trainer(bt_devices *d, bt_trainer *t);
/* trainer.json: "devices": {"count": N, "grad_accum": micro-batches per device per step,
 * "job_grad_accum": the job's, "batch_factor": the effective batch / the job's batch_size x
 * grad_accum}; count x grad_accum = job_grad_accum x batch_factor when count > 1 unless
 * micro_batch = auto traded grad_accum against batch_size (runner/plan.h). */
void bt_devices_hook_record(const bt_devices *d, const bt_job *job, void *json);
/* Resume: trainer_json is the archive's trainer.json text. When the archive
 * ran another number of micro-batches per step only because of its device
 * count (the job's grad_accum unchanged), job->train.grad_accum becomes the
 * archive's and *regroup = 1: the caller recomputes the steps per epoch and
 * recreates the trainer before restoring it. BT_ECONFIG when this device
 * count does not divide them — except with devices = auto, which then takes
 * the most devices that do (freeing the other replicas, said in one line);
 * BT_EDATA for a record out of range. */
int bt_devices_hook_resume(bt_devices *d, const char *trainer_json, bt_job *job, const char *where, int *regroup);
void bt_devices_free(bt_devices *d);
/* Frees the replicas (and backends) past count: call it once no trainer
 * holds them (after a resume lowered count, runner/segment.c's regroup). */
void bt_devices_trim(bt_devices *d);
/* After a step: each replica's figures since the segment began
 * (bt_trainer_replica_stats: examples and tokens over its busy seconds, its
 * backend's peak counted bytes) into st->dev[0..count), st->n_dev = count. */
void bt_devices_hook_rates(const bt_devices *d, const bt_trainer *t, bt_status *st);

/* The batch factor trainer.json records (1 when absent): for the archive
 * check of the data position (runner/archive_check.c). */
int64_t bt_devices_batch_factor(const void *trainer_json_object);
/* 1 when a trainer.json "devices" value is well formed (docs/checkpoints.md);
 * micro_auto: trainer.json also records a micro_batch = auto choice (which
 * trades grad_accum against the batch size, so count x grad_accum need not
 * be job_grad_accum x batch_factor). */
int bt_devices_record_ok(const void *devices_json, int micro_auto);

#endif
