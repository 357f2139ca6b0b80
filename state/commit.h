/* state/commit.h — committing a checkpoint archive so that a crash at any
 * instant leaves either the previous state or the new one, never a damaged
 * archive under a final name; retention; stale-file cleanup.
 *
 * Owns: the file names (ckpt-<step, 9 digits>.tar, .partial, .sha256), the
 * order of write/fsync/rename/fsync-dir (docs/checkpoints.md, "Commit
 * protocol" and its crash-state table), the disk-space check, and deleting
 * old archives in the output directory.
 * Must not: delete anything outside the output directory, touch resume paths,
 * or take the output-directory lock (the runner holds it around all of this).
 *
 * Test hook: environment variable BATON_TEST_FAIL_WRITE_AFTER=N makes the
 * archive writer fail with ENOSPC once N bytes of the tar have been written
 * (simulates a full disk); never set it outside tests.
 */
#ifndef BATON_STATE_COMMIT_H
#define BATON_STATE_COMMIT_H

#include "state/archive.h"

#include <stddef.h>
#include <stdint.h>

/* "ckpt-000000100.tar" for step 100 into buf (cap >= 32). */
void bt_archive_filename(int64_t step, char *buf, size_t cap);
/* Parses a base name of the form ckpt-<at least 9 digits>.tar; 1 and *step
 * on a match, 0 otherwise. */
int bt_archive_parse_filename(const char *base, int64_t *step);

/* Writes <out_dir>/ckpt-<step>.tar atomically (creating out_dir if needed):
 * .partial, fsync, rename, fsync dir, then the .sha256 sidecar atomically.
 * On failure (BT_EIO for disk full, naming the path and the bytes needed)
 * nothing new remains under a final name and the .partial is removed; the
 * previous archives are untouched. committed_path (may be NULL) receives the
 * final path. */
int bt_archive_commit(const char *out_dir, const bt_snapshot *s, char *committed_path, size_t cap);

/* Removes what an interrupted commit or retention can leave in out_dir:
 * ckpt-*.tar.partial, ckpt-*.tar.sha256.tmp, and sidecars whose archive is
 * gone. Call at start, holding the output-directory lock. *removed (may be
 * NULL) counts the files removed. A missing out_dir is not an error. */
int bt_archive_clean_stale(const char *out_dir, int *removed);

/* Keeps the keep_last newest archives (by step) in out_dir plus best_path
 * (NULL: none) and deletes the other ckpt-*.tar files there with their
 * sidecars (sidecar first). keep_last <= 0 keeps everything. Only call right
 * after a successful commit, so the newest archive is always a committed one. */
int bt_retention_apply(const char *out_dir, int keep_last, const char *best_path);
/* The same, with archives known to be damaged (file names in out_dir, e.g.
 * the ones discovery skipped) neither counted among the keep_last nor
 * removed: a damaged archive never takes the place of a valid one. */
int bt_retention_apply_except(const char *out_dir, int keep_last, const char *best_path,
                              const char *const *damaged, size_t n_damaged);

#endif
