/* state/archive.h — checkpoint archives: the snapshot that goes in, the
 * validating in-memory reader that comes out. Format: docs/checkpoints.md.
 *
 * Owns: the tar layout (ustar/pax, uncompressed, via libarchive), the fixed
 * member list and order, member size limits, hashing of members and of the
 * whole file, and the reader's refusals (unknown/duplicate/missing members,
 * non-regular entries, names with '/' or "..", oversize members, hash
 * mismatches, unknown format versions, a different job fingerprint).
 * Must not: know what the tensors or the trainer JSON mean (that is the
 * runner and engine), extract anything to disk, or commit files (commit.h).
 *
 * Related headers: state/commit.h (atomic commit, retention, stale-file
 * cleanup), state/discovery.h (finding the newest valid archive),
 * state/manifest.h (MANIFEST.json).
 */
#ifndef BATON_STATE_ARCHIVE_H
#define BATON_STATE_ARCHIVE_H

#include "state/safetensors.h"

#include <stddef.h>
#include <stdint.h>

#define BT_ARCHIVE_FORMAT "baton-checkpoint"
#define BT_ARCHIVE_VERSION 2     /* what this baton writes */
#define BT_ARCHIVE_MIN_VERSION 1 /* the oldest it reads (version 1: no tokenizer members) */

/* The members, in archive order (MANIFEST.json last). */
enum bt_member_id {
    BT_M_MODEL = 0,   /* model.safetensors     fp32 weights under HF names          */
    BT_M_OPTIM,       /* optimizer.safetensors "<name>.exp_avg", "<name>.exp_avg_sq" */
    BT_M_TRAINER,     /* trainer.json          step, epoch, cursor, ... (runner's)  */
    BT_M_JOB,         /* job.ini                                                     */
    BT_M_CONFIG,      /* config.json           HF model config                       */
    BT_M_VOCAB,       /* vocab.txt             (empty: the tokenizer is tokenizer.json) */
    BT_M_TOKJSON,     /* tokenizer.json        (version 2; empty when the model has none) */
    BT_M_TOKCONFIG,   /* tokenizer_config.json (version 2; empty when absent)         */
    BT_M_SPECIAL,     /* special_tokens_map.json (version 2; empty when absent)       */
    BT_M_MANIFEST,    /* MANIFEST.json                                               */
    BT_M_COUNT
};
const char *bt_archive_member_name(int id); /* "model.safetensors", ...; NULL out of range */
/* Members before MANIFEST.json in an archive of format version v: 6 in
 * version 1 (model .. vocab.txt), 9 in version 2; 0 for another version. */
int bt_archive_members_of_version(int v);

/* What to commit. Tensor memory is only read, never copied as a whole: the
 * writer streams it straight into the tar. Text members may be NULL (stored
 * empty) except trainer_json (a JSON object) and fingerprint_json (a JSON
 * object of the training-relevant job fields, {"field": value, ...}). */
typedef struct {
    const bt_st_entry *model; size_t n_model;   /* fp32 weights, HF names */
    const bt_st_entry *optim; size_t n_optim;   /* AdamW m and v */
    const char *trainer_json;
    const char *job_ini;
    const char *config_json;
    const char *vocab_txt;
    const char *tokenizer_json;                 /* version 2: the model directory's tokenizer files, */
    const char *tokenizer_config_json;          /* as read (NULL or "": it has none)                */
    const char *special_tokens_map_json;
    const char *fingerprint_json;
    int64_t step;                               /* >= 0; names the file */
    const char *baton_version;                  /* NULL: this build's BATON_VERSION */
    int format_version;                         /* 0: BT_ARCHIVE_VERSION; 1: the old layout (tests of
                                                   old archives; the tokenizer members must be empty) */
} bt_snapshot;

/* Upper bounds on member sizes (bytes), checked against the tar header before
 * anything is allocated. Set from the model size by the caller
 * (bt_archive_limits_for_model), or the defaults. */
typedef struct {
    uint64_t model;      /* model.safetensors */
    uint64_t optim;      /* optimizer.safetensors */
    uint64_t trainer;    /* trainer.json */
    uint64_t text;       /* job.ini, config.json */
    uint64_t vocab;      /* vocab.txt, tokenizer.json */
    uint64_t manifest;   /* MANIFEST.json */
} bt_archive_limits;

/* Defaults: model 8 GiB, optimizer 16 GiB, trainer.json 256 MiB, job.ini and
 * config.json 4 MiB each (also tokenizer_config.json, special_tokens_map.json),
 * vocab.txt and tokenizer.json 64 MiB each, MANIFEST.json 1 MiB. */
void bt_archive_limits_default(bt_archive_limits *lim);
/* Tight limits for a model whose fp32 weights take model_bytes: model
 * model_bytes + 16 MiB of header slack, optimizer twice that; the rest default. */
void bt_archive_limits_for_model(bt_archive_limits *lim, uint64_t model_bytes);

/* ---- writer (the commit protocol around it is state/commit.h) ---- */

/* Receives the archive's bytes in order; returns 0 or a BT_E* code (after
 * bt_fail). */
typedef int (*bt_archive_out)(void *ctx, const void *buf, size_t len);

/* Exact size in bytes of the tar that bt_archive_write would produce. */
int bt_archive_size(const bt_snapshot *s, uint64_t *bytes);
/* Streams the whole tar to out; label names the destination in errors.
 * file_sha256 (may be NULL) receives the SHA-256 of all bytes written. The
 * output is a pure function of the snapshot (fixed mtime, owner, mode). */
int bt_archive_write(const bt_snapshot *s, const char *label, bt_archive_out out, void *ctx,
                     uint8_t file_sha256[32]);

/* ---- reader ---- */
typedef struct bt_archive bt_archive;

enum {
    BT_ARCHIVE_KEEP_TENSORS = 1, /* keep model/optimizer bytes (else hash and drop) */
    BT_ARCHIVE_NO_SIDECAR = 2,   /* do not look for <path>.sha256 */
};

/* Reads, checks and keeps every member in memory. expect_fingerprint_json:
 * NULL to skip the check, else the job's fingerprint (a JSON object); a
 * difference is a BT_ECONFIG error naming each differing field. Damage is
 * BT_EDATA, a missing file BT_ENOINPUT, read errors BT_EIO. When
 * <path>.sha256 exists it must match the whole file. lim NULL: defaults. */
int bt_archive_read(const char *path, const bt_archive_limits *lim,
                    const char *expect_fingerprint_json, bt_archive **out);
/* The same checks, hashing the tensor members without keeping them. out may
 * be NULL; if not, it gets the small members (manifest, trainer.json, ...)
 * and bt_archive_open_model/optim fail on it. */
int bt_archive_verify(const char *path, const bt_archive_limits *lim,
                      const char *expect_fingerprint_json, bt_archive **out);
/* General form: flags from the enum above. */
int bt_archive_open(const char *path, const bt_archive_limits *lim,
                    const char *expect_fingerprint_json, int flags, bt_archive **out);
/* From memory (fuzzing, tests): no sidecar; buf must outlive nothing (copied
 * as needed); label names it in errors. */
int bt_archive_open_buffer(const void *buf, size_t len, const char *label,
                           const bt_archive_limits *lim, const char *expect_fingerprint_json,
                           int flags, bt_archive **out);
void bt_archive_close(bt_archive *a);

/* Member bytes (NUL-terminated copy; *len without the NUL). Returns NULL for
 * an unknown name, or for a tensor member that was not kept. */
const uint8_t *bt_archive_member(const bt_archive *a, const char *name, size_t *len);
const char *bt_archive_text(const bt_archive *a, int member_id); /* text members; "" if empty */
int64_t bt_archive_step(const bt_archive *a);
int bt_archive_format_version(const bt_archive *a); /* MANIFEST.json's format_version (1 or 2) */
const char *bt_archive_path(const bt_archive *a);           /* or the buffer label */
const char *bt_archive_baton_version(const bt_archive *a);
const char *bt_archive_fingerprint_json(const bt_archive *a); /* compact JSON object */
const char *bt_archive_manifest_json(const bt_archive *a);    /* MANIFEST.json as stored */
uint64_t bt_archive_member_size(const bt_archive *a, int member_id);
const char *bt_archive_member_sha256(const bt_archive *a, int member_id); /* 64 hex */
/* 1: the sidecar was present and matched; 0: there was none (or NO_SIDECAR). */
int bt_archive_sidecar_checked(const bt_archive *a);
uint64_t bt_archive_file_size(const bt_archive *a);

/* The tensor members as validated safetensors views into the archive's memory
 * (close them before bt_archive_close). Requires BT_ARCHIVE_KEEP_TENSORS. */
int bt_archive_open_model(const bt_archive *a, bt_st_file **out);
int bt_archive_open_optim(const bt_archive *a, bt_st_file **out);

/* Compares two fingerprint objects; 0 if equal, else BT_ECONFIG with a
 * message naming each differing field with both values ("where" labels the
 * archive in the message). */
int bt_fingerprint_compare(const char *archive_fp_json, const char *job_fp_json, const char *where);

#endif
