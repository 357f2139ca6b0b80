/* state/manifest.h — MANIFEST.json of a checkpoint archive.
 *
 * Owns: the manifest's schema (docs/checkpoints.md, "MANIFEST.json"), its
 * canonical text, its self-hash, and strict parsing.
 * Must not: read or write files (archive.c hands it bytes).
 */
#ifndef BATON_STATE_MANIFEST_H
#define BATON_STATE_MANIFEST_H

#include "state/archive.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int version;             /* format_version: 0 when building means BT_ARCHIVE_VERSION */
    int64_t step;
    char *baton_version;     /* heap */
    char *fingerprint_json;  /* heap, compact JSON object */
    uint64_t size[BT_M_COUNT - 1];     /* every member but the manifest, archive order (the
                                          first bt_archive_members_of_version(version) used) */
    char sha256[BT_M_COUNT - 1][65];   /* lowercase hex */
} bt_manifest;

/* Canonical text (heap, NUL-terminated) with "manifest_sha256" filled in. */
int bt_manifest_build(const bt_manifest *m, char **text, size_t *len);
/* Strict parse of text (len bytes, need not be NUL-terminated): the format
 * name, version 1 or 2, exactly the known keys, the version's members in order with
 * sizes and 64-hex hashes, and a matching manifest_sha256. label names the
 * archive in errors. On success fills *m (free with bt_manifest_free). */
int bt_manifest_parse(const char *text, size_t len, const char *label, bt_manifest *m);
void bt_manifest_free(bt_manifest *m);

#endif
