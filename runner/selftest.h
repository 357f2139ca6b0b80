/* runner/selftest.h — the first-contact self-check of a GPU backend
 * (docs/cuda.md, "First-contact self-check").
 *
 * Before baton trains on a GPU model + driver + build it has not checked
 * before, it trains a small random BERT for a few steps on that GPU and on
 * the CPU backend (the reference), in the precision training will use, and
 * compares the losses, the gradients and the weight updates. A pass is
 * remembered (runner/selftest_record.c) in the output directory and in
 * ~/.cache/baton; a failure is never remembered.
 *
 * Files: selftest.c (the comparison), selftest_record.c (the record file),
 * selftest_gate.c (the policy at backend creation, the GPU identity, the
 * BATON_FAKE_GPU stand-in), cmd_selftest.c (`baton selftest`).
 */
#ifndef BATON_RUNNER_SELFTEST_H
#define BATON_RUNNER_SELFTEST_H

#include "engine/bert.h"
#include "kernels/backend.h"
#include "runner/progress.h"

#include <stddef.h>
#include <stdio.h>

/* ------------------------------------------------------------ comparison */

typedef struct {
    int pass;               /* every error <= limit and everything finite */
    double limit;           /* relative tolerance of the precision */
    double loss_err;        /* worst |l_dev - l_ref| / |l_ref| over steps */
    int model_wide;         /* 1: grad/weight judged model-wide (bf16), 0: per tensor (fp32, tf32, fp16) */
    double grad_err;        /* worst ||g_dev - g_ref|| / ||g_ref|| over tensors (or model-wide) and steps,
                               and of the global gradient norm */
    double weight_err;      /* the same of the updates u = w_end - w_start */
    double grad_tensor_err, weight_tensor_err; /* the worst single tensor's, always */
    char loss_at[96];       /* where each worst error was: "classify step 2" */
    char grad_at[192];      /* "classify step 1: encoder.layer.0.attention.self.query.weight" */
    char weight_at[192];
    int cases, steps;       /* models trained, optimizer steps per model */
    double seconds;
    char checked_at[32];    /* UTC, "2026-12-04T10:00:00Z": when (set by the record) */
} bt_selftest_result;

/* The relative tolerance of a precision: 1e-4 for fp32, 2e-2 for
 * tf32/fp16/bf16. */
double bt_selftest_limit(bt_precision precision);

/* Trains the self-check models on dev in precision and on ref (the CPU
 * reference) in the same precision (fp32 for tf32, which the CPU has not:
 * the limit allows for TF32's rounding) and compares them into *r. Returns 0
 * when the comparison ran (r->pass is the verdict), else a BT_E* code:
 * BT_ECONFIG when a backend cannot compute in the precision (the engine
 * says which and what to use), or a backend failed to allocate, say. */
int bt_selftest_compare(bt_backend *dev, bt_backend *ref, bt_precision precision, bt_selftest_result *r);

/* The result as one JSON object (caller frees), and as lines for people. */
char *bt_selftest_result_json(const bt_selftest_result *r);
void bt_selftest_result_print(FILE *f, const bt_selftest_result *r, const char *indent);

/* ---------------------------------------------------------------- record */

/* What a record is kept for: a pass is honoured only for the same values. */
typedef struct {
    char gpu[160];          /* device name ("NVIDIA H200"; "fake GPU: ..." for the stand-in) */
    char cc[16];            /* "9.0" */
    char driver[96];        /* "580.159.03, CUDA 13.0" */
    char cublaslt[32];      /* "13.0.2" */
    char baton[64];         /* version */
    char baton_sha256[65];  /* of the running executable */
    char backend_sha256[65];/* of the GPU backend library */
    char precision[8];      /* "fp32" */
} bt_selftest_key;

/* <out_dir>/selfcheck.json and $XDG_CACHE_HOME/baton/selfcheck.json
 * (~/.cache/baton/...); the cache path is NULL when neither XDG_CACHE_HOME
 * nor HOME is set. Caller frees. */
char *bt_selfcheck_out_path(const char *out_dir);
char *bt_selfcheck_cache_path(void);

/* 1 when path holds a pass for exactly key (*found, if not NULL, receives
 * its figures and checked_at), 0 when it does not or the file is missing. A
 * damaged, foreign or newer-version file counts as 0 and *note (if not NULL)
 * says why, so the caller can say it. */
int bt_selfcheck_find(const char *path, const bt_selftest_key *key, bt_selftest_result *found, char *note,
                      size_t note_cap);
/* Adds (or replaces) the pass for key; r must be a pass (its checked_at is
 * kept when set, else now). Keeps the newest BT_SELFCHECK_MAX records.
 * Written atomically (temp file, fsync, rename). */
#define BT_SELFCHECK_MAX 32
int bt_selfcheck_add(const char *path, const bt_selftest_key *key, const bt_selftest_result *r);

/* ------------------------------------------------------------------ gate */

/* The GPU backend the runner should use for device auto/cuda: the CUDA
 * backend on GPU `device`, or, when BATON_FAKE_GPU is set (tests, proof.sh
 * --dry-run), the CPU backend behind the fault wrapper it names (a
 * kernels/backend_fault.h spec: "none" for a faithful stand-in). NULL after
 * bt_fail() when there is none. */
bt_backend *bt_selftest_gpu_backend(int device);
/* 1 when be is the BATON_FAKE_GPU stand-in. */
int bt_selftest_is_fake(const bt_backend *be);

/* The record key of the GPU backend be runs on, in precision. */
int bt_selftest_key_for(const bt_backend *be, int device, bt_precision precision, bt_selftest_key *key);

typedef struct {
    int device_setting;     /* bt_job_device: AUTO or CUDA */
    bt_precision precision; /* what training computes in (resolved, runner/precision.h) */
    const char *out_dir;    /* NULL: no record in an output directory */
    int write_out_dir;      /* 0: read it, never write it (baton eval) */
    int threads;            /* CPU reference threads (0: default) */
    bt_progress *progress;  /* messages (NULL: stderr) */
} bt_selftest_gate_opts;

/* The policy at backend creation, for a GPU backend *be: if a pass for its
 * key is on record (output dir or cache), keep it. Else run the check: a pass
 * is recorded in both places and *be kept; a mismatch is reported and, for
 * device = cuda, *be is destroyed and BT_EINTERNAL returned (exit 70);
 * for device = auto, a loud warning, *be destroyed and set to NULL: the
 * caller trains on the CPU. A check that cannot run because of the job or the
 * machine (a precision the GPU cannot compute: BT_ECONFIG; no temporary
 * directory: BT_EIO) returns that error, *be kept; any other failure to run
 * counts as a mismatch. */
int bt_selftest_gate(bt_backend **be, const bt_selftest_gate_opts *o);

/* `baton doctor`'s line: whether ~/.cache/baton holds a pass for GPU 0 (or
 * the stand-in) with this driver, build and precision. */
void bt_selftest_doctor(FILE *f, bt_precision precision);

#endif
