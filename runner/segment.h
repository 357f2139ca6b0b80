/* runner/segment.h — one segment of a job: resume, train, evaluate, commit.
 *
 * Owns: the segment loop of DESIGN.md (job -> model dir -> tokenizer ->
 * dataset (cached ids) -> resume from the newest valid archive -> loop {
 * batch -> step -> metrics -> eval -> periodic commit -> should_stop? } ->
 * commit -> exit code), trainer.json (what a resume needs besides tensors),
 * and the mapping of job keys onto engine and state calls.
 * Must not: parse job files (runner/job.c), implement training maths
 * (engine/), or know the archive byte format (state/).
 */
#ifndef BATON_RUNNER_SEGMENT_H
#define BATON_RUNNER_SEGMENT_H

#include "runner/archive_check.h" /* BT_TRAINER_FORMAT, BT_TRAINER_VERSION */
#include "runner/job.h"
#include "runner/lock.h"

typedef struct {
    int fresh;               /* --fresh: ignore archives */
    const char *resume_path; /* --resume PATH: this archive (or directory) only */
    int force;               /* --force: accept a changed fingerprint */
    const char *job_text;    /* the job file's text, stored in archives (may be NULL) */
    const bt_lock *lock;     /* the output-directory lock held (NULL: none); checked before writing */
} bt_segment_options;

/* Runs one segment. Returns the process exit code: 0 job complete, 75
 * segment ended (run again), or a BT_E* code after bt_fail(). */
int bt_segment_run(bt_job *job, const bt_segment_options *o);

/* `baton eval`: scores an archive of the job on its eval set (no lock, no
 * write). archive: a path, or NULL for the job's best archive (trainer.json's
 * best, else its newest valid one). A fingerprint that differs (e.g. another
 * eval file given with -s data.eval=...) is reported, not refused. Prints the
 * metrics to stdout (json: one JSON object, as a metrics.jsonl record plus
 * "archive"). Returns 0 or a BT_E* code after bt_fail(). */
typedef struct {
    const char *archive;
    int latest;              /* archive NULL: the newest valid archive instead of the best */
    int json;
} bt_eval_options;
int bt_segment_eval(bt_job *job, const bt_eval_options *o);

#endif
