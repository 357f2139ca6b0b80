/* state/discovery.h — finding the newest valid checkpoint archive.
 *
 * Owns: scanning the output directory (top level) and the resume paths
 * (files, or directories searched recursively; symlinked directories are
 * followed once each, so loops end), ordering candidates newest step first,
 * verifying each (plus the caller's content check, bt_archive_judge) and
 * skipping damaged or invalid ones with a warning that names the damage.
 * Only regular files are candidates: anything else named like an archive
 * (a directory, a FIFO) is ignored with a warning.
 * Must not: delete, rename or write anything (discovery runs on read-only
 * Kaggle inputs too).
 */
#ifndef BATON_STATE_DISCOVERY_H
#define BATON_STATE_DISCOVERY_H

#include "state/archive.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *path;    /* heap */
    int64_t step;  /* from the file name */
    int code;      /* BT_EDATA damaged, BT_ECONFIG another job's fingerprint, BT_EIO, ... */
    char *reason;  /* heap: the reader's message */
} bt_discovery_skip;

typedef struct {
    size_t n_candidates;        /* archives seen (after de-duplication) */
    size_t n_skipped;
    bt_discovery_skip *skipped; /* newest first */
} bt_discovery_report;
void bt_discovery_report_free(bt_discovery_report *r);

/* Candidate archives under out_dir (NULL: none) and resume_paths, newest step
 * first (ties: out_dir first, then resume paths in the given order). Files
 * named ckpt-<digits>.tar are candidates; a resume path naming a file is a
 * candidate whatever its name (its step comes from the manifest when the name
 * says nothing: it is tried last). *paths is a heap array of heap strings;
 * free with bt_discovery_list_free. */
int bt_discovery_list(const char *out_dir, const char *const *resume_paths, size_t n_resume,
                      char ***paths, int64_t **steps, size_t *n);
void bt_discovery_list_free(char **paths, int64_t *steps, size_t n);

/* Verifies candidates newest first and stops at the first valid one: 0 with
 * its path in found_path (and, when opened is not NULL, the archive read
 * with BT_ARCHIVE_KEEP_TENSORS, so it is not read twice). BT_ENOINPUT with
 * found_path "" when no candidate is valid (none at all: rep->n_candidates
 * is 0). Each skipped candidate is logged with bt_warn and, when rep is not
 * NULL, recorded there (free with bt_discovery_report_free). An archive
 * whose manifest step differs from its file name's is skipped as damaged.
 * fingerprint_json NULL: not checked. lim NULL: defaults. */
int bt_discover(const char *out_dir, const char *const *resume_paths, size_t n_resume,
                const char *fingerprint_json, const bt_archive_limits *lim,
                char *found_path, size_t cap, bt_archive **opened, bt_discovery_report *rep);

/* A content check added to the reader's own: state/ knows nothing of what
 * the tensors or trainer.json mean; the runner does (runner/archive_check.h).
 * Called on each candidate that passed every check of the reader, with all
 * its members in memory (tensors kept); returns 0 (usable) or a BT_E* code
 * after bt_fail() with a one-line reason (BT_EDATA: the candidate is
 * invalid, skipped and reported like a damaged one). */
typedef int (*bt_archive_judge_fn)(void *ctx, const bt_archive *a);
typedef struct {
    bt_archive_judge_fn fn;
    void *ctx;
} bt_archive_judge;

/* bt_discover with a judge (NULL: none, as bt_discover). */
int bt_discover_judged(const char *out_dir, const char *const *resume_paths, size_t n_resume,
                       const char *fingerprint_json, const bt_archive_limits *lim, const bt_archive_judge *judge,
                       char *found_path, size_t cap, bt_archive **opened, bt_discovery_report *rep);

#endif
