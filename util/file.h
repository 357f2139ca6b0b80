/* util/file.h — whole-file reads, read-only mappings, atomic small writes.
 *
 * Owns: the POSIX plumbing every layer needs (open/read/mmap/fsync/rename),
 * with errors that name the path and the errno text.
 * Must not: know about any file format.
 */
#ifndef BATON_UTIL_FILE_H
#define BATON_UTIL_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Reads a whole file into a NUL-terminated heap buffer (*out, *len without the
 * NUL). Files over max_bytes are refused (BT_EDATA). Missing: BT_ENOINPUT.
 * Like bt_map_file, it reads regular files only: a FIFO, socket, device or
 * directory is refused at once (BT_EDATA, naming what it is), never waited on. */
int bt_read_file(const char *path, size_t max_bytes, char **out, size_t *len);

/* A read-only private mapping of a whole file (an empty file maps to a
 * non-NULL dummy with len 0). */
typedef struct {
    const uint8_t *data;
    size_t len;
    void *map_base; /* NULL when len == 0 */
} bt_mapping;
int bt_map_file(const char *path, bt_mapping *m);
void bt_unmap_file(bt_mapping *m);

/* Publishing a file atomically (outside the archive protocol of state/):
 * the content is written to <path>.partial, then flushed, fsynced, renamed
 * over path and the directory fsynced, so a reader sees the old file or the
 * whole new one, never part of one; a failure or an abort removes the
 * .partial. Every file baton publishes goes through here. */
typedef struct {
    FILE *f;        /* write here between begin and end */
    char *path;     /* the published name */
    char *partial;  /* <path>.partial */
} bt_publish;
/* Creates <path>.partial (truncating one left by a killed run). */
int bt_publish_begin(bt_publish *p, const char *path);
/* ok: flush, fsync, close, rename onto path, fsync the directory (any
 * failure: BT_EIO naming the file and errno, the .partial removed);
 * !ok: close and remove the .partial, returning 0. Frees p's strings. */
int bt_publish_end(bt_publish *p, int ok);

/* bt_publish of buf[0..len) in one call. */
int bt_write_file_atomic(const char *path, const void *buf, size_t len);

/* fsync the directory containing path (or the directory itself). */
int bt_fsync_dir(const char *dir);

/* mkdir -p */
int bt_mkdirs(const char *path);

int bt_path_exists(const char *path);
/* "a regular file", "a directory", "a FIFO (named pipe)", ... for a st_mode. */
const char *bt_file_kind(unsigned mode);
int bt_is_dir(const char *path);

/* Lexical clean-up (heap): "//" and "/./" collapse, "dir/.." is removed
 * ("/a/b/../c" -> "/a/c"). Symlinks are not consulted. */
char *bt_path_normalize(const char *path);

/* "a/b" + "c" -> "a/b/c" (heap). */
char *bt_path_join(const char *a, const char *b);

#endif
