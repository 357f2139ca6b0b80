/* state/zip.h — a minimal, bounded reader of zip archives held in memory
 * (a read-only mapping): the central directory, ZIP64 where a size or offset
 * needs it, and zero-copy access to *stored* (uncompressed) members.
 * Spec: PKWARE APPNOTE.TXT (sections 4.3 and 4.5).
 *
 * Owns: locating the end-of-central-directory record (and the ZIP64 locator
 * and record), walking the central directory with every size checked against
 * the buffer, the ZIP64 extra field, local headers (checked against the
 * directory), CRC-32.
 * Must not: inflate, decrypt, write, or know what the members mean (that is
 * state/torch_bin.c); hand out a pointer or size it has not bounded.
 *
 * Why not libarchive (already a dependency): PyTorch's zips are read-only
 * mappings of up to gigabytes whose members are stored and 64-byte aligned;
 * this reader hands out pointers into the mapping (no copy of the weights),
 * and every offset a hostile file gives is checked here, in ~300 lines, where
 * libarchive would copy each member and accept far more than torch writes.
 */
#ifndef BATON_STATE_ZIP_H
#define BATON_STATE_ZIP_H

#include <stddef.h>
#include <stdint.h>

#define BT_ZIP_MAX_ENTRIES 1000000u

typedef struct {
    char *name;            /* NUL-terminated copy (names with control bytes, NUL included, are refused) */
    uint16_t flags;        /* general purpose bits */
    uint16_t method;       /* 0 stored, 8 deflate, ... */
    uint32_t crc;
    uint64_t csize, usize; /* compressed / uncompressed sizes (ZIP64 resolved) */
    uint64_t local_offset; /* of the local header */
} bt_zip_entry;

typedef struct bt_zip bt_zip;

/* Parses the directory of buf[0..len) (which must outlive the handle); label
 * names the file in errors. BT_EDATA when it is not a well-formed zip. */
int bt_zip_open(const uint8_t *buf, size_t len, const char *label, bt_zip **out);
void bt_zip_close(bt_zip *z);

size_t bt_zip_count(const bt_zip *z);
const bt_zip_entry *bt_zip_get(const bt_zip *z, size_t i);      /* directory order */
const bt_zip_entry *bt_zip_find(const bt_zip *z, const char *name); /* NULL if absent */

/* The bytes of a stored member, after checking its local header (signature,
 * same name as the directory, data inside the buffer and before the
 * directory), that it is neither compressed nor encrypted, and its CRC-32
 * when verify_crc and the directory records one (a zero CRC on non-empty
 * data means "not computed": PyTorch can save without CRCs). */
int bt_zip_data(const bt_zip *z, const bt_zip_entry *e, int verify_crc, const uint8_t **data, size_t *len);

/* CRC-32 (ISO 3309 / zip), continuing from crc (0 to start). */
uint32_t bt_crc32(uint32_t crc, const void *buf, size_t len);

#endif
