/* state/safetensors.h — the safetensors format: validating reader and
 * streaming writer. https://github.com/huggingface/safetensors (format spec).
 *
 * Owns: byte layout (8-byte little-endian header length N, N bytes of UTF-8
 * JSON {name: {dtype, shape, data_offsets:[begin,end]}, "__metadata__":
 * {str: str}}, then the data buffer), validation, dtype conversion to fp32.
 * Must not: know tensor names of any model (that is engine/), or archives.
 *
 * Validation follows the reference implementation: header length <= 100 MB
 * and inside the file; UTF-8 JSON object; known dtypes; byte size of each
 * tensor == numel * dtype size; data offsets contiguous from 0, no gaps or
 * overlaps; the file is exactly 8 + N + data bytes; no duplicate names. Each
 * failure is a BT_EDATA error naming the file (label) and the tensor.
 */
#ifndef BATON_STATE_SAFETENSORS_H
#define BATON_STATE_SAFETENSORS_H

#include "util/file.h"

#include <stddef.h>
#include <stdint.h>

typedef enum {
    BT_ST_BOOL, BT_ST_U8, BT_ST_I8, BT_ST_I16, BT_ST_U16, BT_ST_F16, BT_ST_BF16,
    BT_ST_I32, BT_ST_U32, BT_ST_F32, BT_ST_F64, BT_ST_I64, BT_ST_U64,
    BT_ST_F8_E4M3, BT_ST_F8_E5M2,
} bt_st_dtype;

#define BT_ST_MAX_DIMS 8
#define BT_ST_MAX_HEADER (100u * 1000u * 1000u)

const char *bt_st_dtype_name(bt_st_dtype dt); /* "F32", ... */
size_t bt_st_dtype_size(bt_st_dtype dt);      /* bytes per element (1 for F8/BOOL) */
/* "F32" -> BT_ST_F32; returns 1 if known, 0 otherwise (added). */
int bt_st_dtype_from_name(const char *name, bt_st_dtype *out);
/* Scalar conversions used by bt_st_read_f32 (added; exact, keep inf/NaN). */
float bt_f16_to_f32(uint16_t h);
float bt_bf16_to_f32(uint16_t h);

/* ---- reader ---- */
typedef struct {
    const char *name;
    bt_st_dtype dtype;
    int ndim;
    int64_t shape[BT_ST_MAX_DIMS];
    int64_t numel;
    const uint8_t *data; /* points into the mapping/buffer */
    size_t nbytes;
} bt_st_tensor;

typedef struct bt_st_file bt_st_file;

/* mmap + full validation. */
int bt_st_open(const char *path, bt_st_file **out);
/* Validates a buffer in memory (not copied: it must outlive the handle);
 * label names it in errors (e.g. "ckpt-000000100.tar:model.safetensors"). */
int bt_st_open_buffer(const void *buf, size_t len, const char *label, bt_st_file **out);
void bt_st_close(bt_st_file *f);
/* (added) A handle over tensors another reader located and validated
 * (state/torch_bin.c, pytorch_model.bin), so every user of bt_st_file reads
 * either format: t[i].data points into *map or into one of owned[0..n_owned)
 * (heap blocks, e.g. a strided view made contiguous). The handle takes map
 * and the blocks over, also on failure (map is zeroed). Names are copied; a
 * name given twice is a BT_EDATA error naming label; a tensor whose nbytes is
 * not numel x dtype size is BT_EINTERNAL. */
int bt_st_open_tensors(const char *label, const bt_st_tensor *t, size_t n, bt_mapping *map, void **owned,
                       size_t n_owned, bt_st_file **out);

size_t bt_st_count(const bt_st_file *f);
const bt_st_tensor *bt_st_get(const bt_st_file *f, size_t i);      /* file order */
const bt_st_tensor *bt_st_find(const bt_st_file *f, const char *name); /* NULL if absent */
const char *bt_st_metadata(const bt_st_file *f, const char *key);  /* NULL if absent */
size_t bt_st_metadata_count(const bt_st_file *f);                 /* (added) */
const char *bt_st_metadata_key(const bt_st_file *f, size_t i);    /* (added) NULL past the end */
const char *bt_st_label(const bt_st_file *f);

/* Copies a tensor into dst (numel floats), converting F16/BF16/F64 to fp32;
 * other dtypes are a BT_EDATA error naming the tensor. */
int bt_st_read_f32(const bt_st_file *f, const bt_st_tensor *t, float *dst);
/* Zero-copy view when the tensor is F32 and 4-byte aligned, else NULL. */
const float *bt_st_f32_view(const bt_st_tensor *t);

/* ---- writer ---- */
typedef struct {
    const char *name;
    bt_st_dtype dtype;
    int ndim;
    int64_t shape[BT_ST_MAX_DIMS];
    const void *data; /* numel * dtype size bytes, host memory */
} bt_st_entry;

/* Receives the serialized bytes in order; returns 0 or a BT_E* code. */
typedef int (*bt_st_sink)(void *ctx, const void *buf, size_t len);

/* Serialized size of entries (header + data) without writing anything.
 * meta_kv: NULL, or a NULL-terminated list key0, value0, key1, value1, ... */
int bt_st_serialized_size(const bt_st_entry *e, size_t n, const char *const *meta_kv,
                          uint64_t *total);
/* Streams header then each tensor's bytes, straight from e[i].data (no copy
 * of the data is made). Tensors are laid out in the given order. */
int bt_st_write(const bt_st_entry *e, size_t n, const char *const *meta_kv, bt_st_sink sink,
                void *ctx);
/* Plain file (not atomic; archives do their own commit). */
int bt_st_write_file(const char *path, const bt_st_entry *e, size_t n, const char *const *meta_kv);

#endif
