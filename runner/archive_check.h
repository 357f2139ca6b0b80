/* runner/archive_check.h — whether what a checkpoint archive holds makes
 * sense: the one judgement that `run`, `verify`, `status`, `eval`,
 * `predict` and `export` share, so they agree on which archive is usable.
 *
 * Checksums (state/archive.c) prove an archive is the one that was written,
 * not that its contents are usable: archives come back from Kaggle datasets,
 * other machines, older versions and hands. This module checks the rest:
 *   - trainer.json against its versioned schema (BT_TRAINER_FORMAT version
 *     BT_TRAINER_VERSION, docs/checkpoints.md "trainer.json"): types, ranges,
 *     and the consistency of step, epoch, cursor, steps per epoch, batch size,
 *     total steps, `complete` and the stop reason, with each other, with the
 *     manifest's step and with the job fingerprint;
 *   - model.safetensors and optimizer.safetensors against the archive's own
 *     config.json: exactly the tensors of the architecture it names, F32 (the
 *     step counts I64 [1]), the shapes the config implies, every value finite,
 *     AdamW second moments >= 0, step counts within the archive's step.
 * Every failure is BT_EDATA with a one-line reason naming the archive, the
 * member and the key or tensor. Discovery takes bt_archive_check_judge as its
 * content check (state/discovery.h), so an invalid archive is skipped like a
 * damaged one and the next valid one is used.
 * Must not: read or write files (the archive is in memory), or know a job
 * file: everything judged is inside the archive, so a command without a job
 * (verify, export) judges exactly as `run` does.
 */
#ifndef BATON_RUNNER_ARCHIVE_CHECK_H
#define BATON_RUNNER_ARCHIVE_CHECK_H

#include "state/archive.h"
#include "state/discovery.h"

#include <stddef.h>
#include <stdint.h>

#define BT_TRAINER_FORMAT "baton-trainer"
#define BT_TRAINER_VERSION 1

/* trainer.json (text[0..len)) of an archive at manifest_step whose
 * fingerprint is fingerprint_json (NULL: the checks that need it are
 * skipped); label names the archive in messages. */
int bt_trainer_json_check(const char *text, size_t len, int64_t manifest_step, const char *fingerprint_json,
                          const char *label);

/* The tensors of an archive read with BT_ARCHIVE_KEEP_TENSORS against its
 * config.json (and trainer.json's label kind). */
int bt_archive_tensors_check(const bt_archive *a);

/* Both checks. */
int bt_archive_contents_check(const bt_archive *a);

/* bt_archive_contents_check as a discovery judge (ctx unused). */
int bt_archive_check_judge(void *ctx, const bt_archive *a);
extern const bt_archive_judge bt_archive_contents_judge;

/* Reads path with its tensors (bt_archive_read) and judges its contents:
 * what a command given one archive uses (verify, export, inspect). */
int bt_archive_read_checked(const char *path, const bt_archive_limits *lim, const char *expect_fingerprint_json,
                            bt_archive **out);

#endif
