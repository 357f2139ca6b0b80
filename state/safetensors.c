/* state/safetensors.c — validating safetensors reader and streaming writer
 * (see safetensors.h for the format and the API).
 *
 * Owns: parsing and checking the header (length, UTF-8, JSON, every tensor's
 * dtype/shape/offsets, contiguity, exact file length, __metadata__), dtype
 * conversion to fp32, and producing byte-exact files with a padded header.
 * Must not: know any model's tensor names, allocate tensor-sized buffers
 * (the reader points into the mapping; the writer streams from the caller's
 * memory), or trust a single number read from a file before checking it.
 *
 * Validation mirrors the reference implementation (huggingface/safetensors,
 * Metadata::validate and SafeTensors::read_metadata), read for its rules, not
 * copied: header length <= 100 MB and inside the file; the header is UTF-8
 * and a JSON object starting with '{' (trailing spaces allowed, they are the
 * padding); entries sorted by data_offsets must start at 0 and follow one
 * another without gaps or overlaps; end - begin == numel * dtype size, with
 * overflow checks; 8 + N + end of last tensor == file length. Stricter than
 * the reference: duplicate names (anywhere in the header) are refused instead
 * of the last one silently winning, and a tensor has at most 8 dimensions.
 */
#include "state/safetensors.h"
#include "util/err.h"
#include "util/file.h"
#include "util/mem.h"
#include "util/str.h"

#include <errno.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ dtypes */

static const struct {
    const char *name;
    size_t size;
} dtype_info[] = {
    [BT_ST_BOOL] = {"BOOL", 1},       [BT_ST_U8] = {"U8", 1},     [BT_ST_I8] = {"I8", 1},
    [BT_ST_I16] = {"I16", 2},         [BT_ST_U16] = {"U16", 2},   [BT_ST_F16] = {"F16", 2},
    [BT_ST_BF16] = {"BF16", 2},       [BT_ST_I32] = {"I32", 4},   [BT_ST_U32] = {"U32", 4},
    [BT_ST_F32] = {"F32", 4},         [BT_ST_F64] = {"F64", 8},   [BT_ST_I64] = {"I64", 8},
    [BT_ST_U64] = {"U64", 8},         [BT_ST_F8_E4M3] = {"F8_E4M3", 1},
    [BT_ST_F8_E5M2] = {"F8_E5M2", 1},
};
#define N_DTYPES ((int)(sizeof dtype_info / sizeof dtype_info[0]))

static int dtype_valid(bt_st_dtype dt) { return (int)dt >= 0 && (int)dt < N_DTYPES; }

const char *bt_st_dtype_name(bt_st_dtype dt) { return dtype_valid(dt) ? dtype_info[dt].name : "?"; }

size_t bt_st_dtype_size(bt_st_dtype dt) { return dtype_valid(dt) ? dtype_info[dt].size : 0; }

int bt_st_dtype_from_name(const char *s, bt_st_dtype *out)
{
    for (int i = 0; i < N_DTYPES; i++)
        if (!strcmp(s, dtype_info[i].name)) {
            *out = (bt_st_dtype)i;
            return 1;
        }
    return 0;
}

/* ------------------------------------------------------------------ UTF-8 */

/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF), as Rust's
 * str::from_utf8. Returns the offset of the first bad byte or len if valid. */
static size_t utf8_bad_offset(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t need;
        uint32_t cp, min;
        if (c < 0x80) { i++; continue; }
        else if ((c & 0xE0) == 0xC0) { need = 1; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { need = 2; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { need = 3; cp = c & 0x07; min = 0x10000; }
        else return i;
        if (len - i <= need) return i;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += need + 1;
    }
    return len;
}

/* ------------------------------------------------------------------ reader */

struct bt_st_file {
    char *label;
    bt_mapping map; /* only when opened from a path */
    size_t n;
    bt_st_tensor *t;     /* file (header) order */
    size_t *by_name;     /* indices sorted by name, for bt_st_find */
    size_t n_meta;
    char **meta;         /* key0, value0, key1, value1, ... */
    void **owned;        /* heap blocks tensors point into (bt_st_open_tensors) */
    size_t n_owned;
};

static void file_free(bt_st_file *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->n; i++) free((char *)f->t[i].name);
    for (size_t i = 0; i < 2 * f->n_meta; i++) free(f->meta[i]);
    free(f->t);
    free(f->by_name);
    free(f->meta);
    for (size_t i = 0; i < f->n_owned; i++) free(f->owned[i]);
    free(f->owned);
    if (f->map.map_base || f->map.data) bt_unmap_file(&f->map);
    free(f->label);
    free(f);
}

void bt_st_close(bt_st_file *f) { file_free(f); }

/* JSON non-negative integer -> uint64 (jansson integers are long long). */
static int json_u64(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v)) return 0;
    json_int_t x = json_integer_value(v);
    if (x < 0) return 0;
    *out = (uint64_t)x;
    return 1;
}

/* Human-readable shape, "[2,3]", into buf. */
static const char *shape_str(const int64_t *shape, int ndim, char *buf, size_t sz)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, sz - o, "[");
    for (int i = 0; i < ndim && o < sz; i++)
        o += (size_t)snprintf(buf + o, sz - o, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (o < sz) snprintf(buf + o, sz - o, "]");
    return buf;
}

typedef struct {
    uint64_t begin, end;
    size_t idx;
} span;

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int name_cmp(const void *a, const void *b, void *ctx)
{
    const bt_st_file *f = ctx;
    return strcmp(f->t[*(const size_t *)a].name, f->t[*(const size_t *)b].name);
}

#define DAMAGED "the file is damaged or not a safetensors file; re-download or re-export it"

/* Parses one tensor entry of the header into t (name already set). */
static int parse_entry(const char *label, const char *name, const json_t *v, bt_st_tensor *t,
                       uint64_t off[2])
{
    if (!json_is_object(v))
        return bt_fail(BT_EDATA, "%s: tensor '%s': header entry is not a JSON object; " DAMAGED,
                       label, name);
    const json_t *jd = json_object_get(v, "dtype");
    const json_t *js = json_object_get(v, "shape");
    const json_t *jo = json_object_get(v, "data_offsets");
    if (!jd || !js || !jo)
        return bt_fail(BT_EDATA, "%s: tensor '%s': header entry lacks \"%s\"; " DAMAGED, label, name,
                       !jd ? "dtype" : !js ? "shape" : "data_offsets");
    if (!json_is_string(jd))
        return bt_fail(BT_EDATA, "%s: tensor '%s': dtype is not a string; " DAMAGED, label, name);
    bt_st_dtype dt;
    if (!bt_st_dtype_from_name(json_string_value(jd), &dt))
        return bt_fail(BT_EDATA,
                       "%s: tensor '%s': unknown dtype \"%s\" (known: BOOL U8 I8 I16 U16 F16 BF16 "
                       "I32 U32 F32 F64 I64 U64 F8_E4M3 F8_E5M2); " DAMAGED,
                       label, name, json_string_value(jd));
    t->dtype = dt;
    if (!json_is_array(js))
        return bt_fail(BT_EDATA, "%s: tensor '%s': shape is not a JSON array; " DAMAGED, label, name);
    size_t nd = json_array_size(js);
    if (nd > BT_ST_MAX_DIMS)
        return bt_fail(BT_EDATA, "%s: tensor '%s': shape has %zu dimensions, baton reads at most %d",
                       label, name, nd, BT_ST_MAX_DIMS);
    t->ndim = (int)nd;
    uint64_t numel = 1;
    int overflow = 0;
    for (size_t d = 0; d < nd; d++) {
        uint64_t x;
        if (!json_u64(json_array_get(js, d), &x))
            return bt_fail(BT_EDATA,
                           "%s: tensor '%s': shape[%zu] is not a non-negative integer; " DAMAGED,
                           label, name, d);
        if (x > (uint64_t)INT64_MAX) overflow = 1;
        t->shape[d] = (int64_t)x;
        if (__builtin_mul_overflow(numel, x, &numel)) overflow = 1;
    }
    uint64_t nbytes = 0;
    if (overflow || numel > (uint64_t)INT64_MAX ||
        __builtin_mul_overflow(numel, (uint64_t)bt_st_dtype_size(dt), &nbytes) || nbytes > SIZE_MAX)
        return bt_fail(BT_EDATA,
                       "%s: tensor '%s': shape's element count overflows 64 bits; " DAMAGED, label, name);
    t->numel = (int64_t)numel;
    t->nbytes = (size_t)nbytes;
    if (!json_is_array(jo) || json_array_size(jo) != 2 || !json_u64(json_array_get(jo, 0), &off[0]) ||
        !json_u64(json_array_get(jo, 1), &off[1]))
        return bt_fail(BT_EDATA,
                       "%s: tensor '%s': data_offsets is not [begin, end] with non-negative integers; "
                       DAMAGED, label, name);
    if (off[1] < off[0])
        return bt_fail(BT_EDATA, "%s: tensor '%s': data_offsets [%llu,%llu] end before they begin; " DAMAGED,
                       label, name, (unsigned long long)off[0], (unsigned long long)off[1]);
    if (off[1] - off[0] != nbytes) {
        char sb[160];
        return bt_fail(BT_EDATA,
                       "%s: tensor '%s': data_offsets [%llu,%llu] span %llu bytes but %s %s needs "
                       "%llu; " DAMAGED,
                       label, name, (unsigned long long)off[0], (unsigned long long)off[1],
                       (unsigned long long)(off[1] - off[0]), bt_st_dtype_name(dt),
                       shape_str(t->shape, t->ndim, sb, sizeof sb), (unsigned long long)nbytes);
    }
    return BT_OK;
}

static int parse_metadata(bt_st_file *f, const json_t *v)
{
    const char *label = f->label;
    if (!json_is_object(v))
        return bt_fail(BT_EDATA, "%s: \"__metadata__\" is not a JSON object of strings; " DAMAGED, label);
    f->n_meta = json_object_size(v);
    f->meta = bt_xcalloc(2 * f->n_meta + 1, sizeof *f->meta);
    size_t i = 0;
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)v, k, val) {
        if (!json_is_string(val))
            return bt_fail(BT_EDATA, "%s: \"__metadata__\" key '%s' has a non-string value; " DAMAGED,
                           label, k);
        f->meta[2 * i] = bt_xstrdup(k);
        f->meta[2 * i + 1] = bt_xstrdup(json_string_value(val));
        i++;
    }
    return BT_OK;
}

/* Validates buf[0..len) and fills f. */
static int parse(bt_st_file *f, const uint8_t *buf, size_t len)
{
    const char *label = f->label;
    if (len < 8)
        return bt_fail(BT_EDATA, "%s: file is %zu bytes, shorter than the 8-byte header length; " DAMAGED,
                       label, len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | buf[i];
    if (n > BT_ST_MAX_HEADER)
        return bt_fail(BT_EDATA, "%s: header length %llu is over the 100 MB limit; " DAMAGED, label,
                       (unsigned long long)n);
    if (n > len - 8)
        return bt_fail(BT_EDATA,
                       "%s: header length %llu runs past the end of the file (%zu bytes); the file is "
                       "truncated or not a safetensors file",
                       label, (unsigned long long)n, len);
    const uint8_t *h = buf + 8;
    size_t hn = (size_t)n;
    size_t bad = utf8_bad_offset(h, hn);
    if (bad != hn)
        return bt_fail(BT_EDATA, "%s: header is not valid UTF-8 (byte %zu of the file); " DAMAGED, label,
                       8 + bad);
    if (hn == 0 || h[0] != '{')
        return bt_fail(BT_EDATA, "%s: header does not start with '{'; " DAMAGED, label);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)h, hn, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return bt_fail(BT_EDATA, "%s: header is not valid JSON: %s (at byte %zu of the file); " DAMAGED,
                       label, jerr.text, 8 + (size_t)(jerr.position > 0 ? jerr.position : 0));
    int rc = BT_OK;
    if (!json_is_object(root)) {
        rc = bt_fail(BT_EDATA, "%s: header is not a JSON object; " DAMAGED, label);
        goto out;
    }
    size_t cap = json_object_size(root);
    f->t = bt_xcalloc(cap + 1, sizeof *f->t);
    uint64_t (*offs)[2] = bt_xcalloc(cap + 1, sizeof *offs);
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (!strcmp(key, "__metadata__")) {
            if ((rc = parse_metadata(f, val))) break;
            continue;
        }
        bt_st_tensor *t = &f->t[f->n];
        t->name = bt_xstrdup(key);
        f->n++;
        if ((rc = parse_entry(label, key, val, t, offs[f->n - 1]))) break;
    }
    if (rc) {
        free(offs);
        goto out;
    }
    /* Contiguity: sorted by (begin, end), each starts where the previous ended. */
    span *sp = bt_xcalloc(f->n + 1, sizeof *sp);
    for (size_t i = 0; i < f->n; i++) sp[i] = (span){offs[i][0], offs[i][1], i};
    free(offs);
    qsort(sp, f->n, sizeof *sp, span_cmp);
    uint64_t at = 0;
    for (size_t i = 0; i < f->n; i++) {
        const char *nm = f->t[sp[i].idx].name;
        if (sp[i].begin > at) {
            rc = bt_fail(BT_EDATA,
                         "%s: tensor '%s': data_offsets begin at %llu, leaving a gap after byte %llu%s%s%s; "
                         DAMAGED,
                         label, nm, (unsigned long long)sp[i].begin, (unsigned long long)at,
                         i ? " (where '" : "", i ? f->t[sp[i - 1].idx].name : "", i ? "' ends)" : "");
            break;
        }
        if (sp[i].begin < at) {
            rc = bt_fail(BT_EDATA,
                         "%s: tensor '%s': data_offsets [%llu,%llu] overlap tensor '%s' (which ends at "
                         "%llu); " DAMAGED,
                         label, nm, (unsigned long long)sp[i].begin, (unsigned long long)sp[i].end,
                         f->t[sp[i - 1].idx].name, (unsigned long long)at);
            break;
        }
        at = sp[i].end;
    }
    if (!rc && at != (uint64_t)(len - 8 - hn)) {
        if (at > (uint64_t)(len - 8 - hn))
            rc = bt_fail(BT_EDATA,
                         "%s: tensor '%s': data ends at byte %llu of the data buffer but the file has only "
                         "%zu data bytes; the file is truncated, re-download or re-export it",
                         label, f->n ? f->t[sp[f->n - 1].idx].name : "?", (unsigned long long)at,
                         len - 8 - hn);
        else
            rc = bt_fail(BT_EDATA,
                         "%s: file has %zu data bytes but the header accounts for %llu (%zu bytes of "
                         "trailing garbage); " DAMAGED,
                         label, len - 8 - hn, (unsigned long long)at,
                         (size_t)((uint64_t)(len - 8 - hn) - at));
    }
    if (!rc) {
        const uint8_t *data = buf + 8 + hn;
        for (size_t i = 0; i < f->n; i++) f->t[sp[i].idx].data = data + sp[i].begin;
        f->by_name = bt_xcalloc(f->n + 1, sizeof *f->by_name);
        for (size_t i = 0; i < f->n; i++) f->by_name[i] = i;
        qsort_r(f->by_name, f->n, sizeof *f->by_name, name_cmp, f);
    }
    free(sp);
out:
    json_decref(root);
    return rc;
}

int bt_st_open_buffer(const void *buf, size_t len, const char *label, bt_st_file **out)
{
    *out = NULL;
    bt_st_file *f = bt_xcalloc(1, sizeof *f);
    f->label = bt_xstrdup(label ? label : "safetensors buffer");
    int rc = parse(f, buf, len);
    if (rc) {
        file_free(f);
        return rc;
    }
    *out = f;
    return BT_OK;
}

int bt_st_open(const char *path, bt_st_file **out)
{
    *out = NULL;
    bt_st_file *f = bt_xcalloc(1, sizeof *f);
    f->label = bt_xstrdup(path);
    int rc = bt_map_file(path, &f->map);
    if (rc) {
        free(f->label);
        free(f);
        return rc;
    }
    rc = parse(f, f->map.data, f->map.len);
    if (rc) {
        file_free(f);
        return rc;
    }
    *out = f;
    return BT_OK;
}

int bt_st_open_tensors(const char *label, const bt_st_tensor *t, size_t n, bt_mapping *map, void **owned,
                       size_t n_owned, bt_st_file **out)
{
    *out = NULL;
    bt_st_file *f = bt_xcalloc(1, sizeof *f);
    f->label = bt_xstrdup(label ? label : "tensors");
    if (map) {
        f->map = *map;
        memset(map, 0, sizeof *map);
    }
    f->owned = bt_xcalloc(n_owned + 1, sizeof *f->owned);
    for (size_t i = 0; i < n_owned; i++) f->owned[i] = owned[i];
    f->n_owned = n_owned;
    f->t = bt_xcalloc(n + 1, sizeof *f->t);
    int rc = BT_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        uint64_t nb;
        f->t[i] = t[i];
        f->t[i].name = bt_xstrdup(t[i].name ? t[i].name : "");
        f->n++;
        if (!t[i].name || !dtype_valid(t[i].dtype) || t[i].ndim < 0 || t[i].ndim > BT_ST_MAX_DIMS ||
            t[i].numel < 0 || __builtin_mul_overflow((uint64_t)t[i].numel, bt_st_dtype_size(t[i].dtype), &nb) ||
            nb != t[i].nbytes)
            rc = bt_fail(BT_EINTERNAL, "%s: tensor %zu is inconsistent (name, dtype, shape or size)", f->label, i);
    }
    if (!rc) {
        f->by_name = bt_xcalloc(f->n + 1, sizeof *f->by_name);
        for (size_t i = 0; i < f->n; i++) f->by_name[i] = i;
        qsort_r(f->by_name, f->n, sizeof *f->by_name, name_cmp, f);
        for (size_t i = 1; i < f->n && !rc; i++)
            if (!strcmp(f->t[f->by_name[i]].name, f->t[f->by_name[i - 1]].name))
                rc = bt_fail(BT_EDATA, "%s: tensor '%s' appears twice; the file is damaged, re-download or "
                             "re-export it", f->label, f->t[f->by_name[i]].name);
    }
    if (rc) {
        file_free(f);
        return rc;
    }
    *out = f;
    return BT_OK;
}

size_t bt_st_count(const bt_st_file *f) { return f->n; }

const bt_st_tensor *bt_st_get(const bt_st_file *f, size_t i) { return i < f->n ? &f->t[i] : NULL; }

const bt_st_tensor *bt_st_find(const bt_st_file *f, const char *name)
{
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, f->t[f->by_name[mid]].name);
        if (c == 0) return &f->t[f->by_name[mid]];
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

const char *bt_st_metadata(const bt_st_file *f, const char *key)
{
    for (size_t i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta[2 * i], key)) return f->meta[2 * i + 1];
    return NULL;
}

size_t bt_st_metadata_count(const bt_st_file *f) { return f->n_meta; }

const char *bt_st_metadata_key(const bt_st_file *f, size_t i)
{
    return i < f->n_meta ? f->meta[2 * i] : NULL;
}

const char *bt_st_label(const bt_st_file *f) { return f->label; }

/* ------------------------------------------------------------ conversion */

float bt_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign; /* +-0 */
        } else { /* subnormal: man * 2^-24; normalise so the leading 1 is bit 10 */
            uint32_t e = 0;
            while (!(man & 0x400u)) {
                man <<= 1;
                e++;
            }
            bits = sign | ((127u - 14u - e) << 23) | ((man & 0x3FFu) << 13);
        }
    } else if (exp == 0x1F) {
        bits = sign | 0x7F800000u | (man << 13); /* inf, or NaN keeping its payload */
    } else {
        bits = sign | ((exp + 127u - 15u) << 23) | (man << 13);
    }
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

float bt_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

/* double -> float with IEEE round-to-nearest-even, without the undefined
 * behaviour C gives an out-of-range conversion: |d| >= FLT_MAX + half an ulp
 * (2^103) rounds to infinity, just below it to FLT_MAX. */
static float f64_to_f32(double d)
{
    if (isnan(d)) return NAN;
    if (fabs(d) >= (double)FLT_MAX + 0x1p103) return copysignf(INFINITY, (float)(d > 0 ? 1 : -1));
    if (fabs(d) > (double)FLT_MAX) return d > 0 ? FLT_MAX : -FLT_MAX;
    return (float)d;
}

int bt_st_read_f32(const bt_st_file *f, const bt_st_tensor *t, float *dst)
{
    const uint8_t *p = t->data;
    size_t n = (size_t)t->numel;
    switch (t->dtype) {
    case BT_ST_F32:
        if (n) memcpy(dst, p, n * 4);
        return BT_OK;
    case BT_ST_F16:
    case BT_ST_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(p[2 * i] | (p[2 * i + 1] << 8));
            dst[i] = t->dtype == BT_ST_F16 ? bt_f16_to_f32(h) : bt_bf16_to_f32(h);
        }
        return BT_OK;
    case BT_ST_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            dst[i] = f64_to_f32(d);
        }
        return BT_OK;
    default:
        return bt_fail(BT_EDATA,
                       "%s: tensor '%s': dtype %s cannot be read as floating point (baton reads F32, "
                       "F16, BF16 and F64 weights); convert the checkpoint to a float dtype",
                       f ? f->label : "safetensors", t->name, bt_st_dtype_name(t->dtype));
    }
}

const float *bt_st_f32_view(const bt_st_tensor *t)
{
    if (t->dtype != BT_ST_F32 || ((uintptr_t)t->data & 3u)) return NULL;
    return (const float *)(const void *)t->data;
}

/* ------------------------------------------------------------------ writer */

/* A JSON string literal; s must be valid UTF-8 (checked by the caller). */
static void sb_json_str(bt_strbuf *b, const char *s)
{
    bt_strbuf_puts(b, "\"");
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') bt_strbuf_puts(b, "\\\"");
        else if (c == '\\') bt_strbuf_puts(b, "\\\\");
        else if (c < 0x20) bt_strbuf_printf(b, "\\u%04x", c);
        else bt_strbuf_put(b, (const char *)&c, 1);
    }
    bt_strbuf_puts(b, "\"");
}

static int check_text(const char *what, const char *s)
{
    if (!s) return bt_fail(BT_EINTERNAL, "safetensors writer: %s is NULL", what);
    size_t n = strlen(s);
    if (utf8_bad_offset((const uint8_t *)s, n) != n)
        return bt_fail(BT_EINTERNAL, "safetensors writer: %s '%s' is not valid UTF-8", what, s);
    return BT_OK;
}

static int name_ptr_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Builds the padded header (without the 8-byte length) and the data size. */
static int build_header(const bt_st_entry *e, size_t n, const char *const *meta_kv, bt_strbuf *hb,
                        uint64_t *data_bytes)
{
    int rc;
    uint64_t off = 0;
    memset(hb, 0, sizeof *hb);
    bt_strbuf_puts(hb, "{");
    int first = 1;
    if (meta_kv && meta_kv[0]) {
        bt_strbuf_puts(hb, "\"__metadata__\":{");
        size_t nk = 0;
        for (const char *const *kv = meta_kv; kv[0]; kv += 2, nk++) {
            if ((rc = check_text("metadata key", kv[0])) || (rc = check_text("metadata value", kv[1])))
                goto fail;
            for (const char *const *q = meta_kv; q < kv; q += 2)
                if (!strcmp(q[0], kv[0])) {
                    rc = bt_fail(BT_EINTERNAL, "safetensors writer: metadata key '%s' given twice", kv[0]);
                    goto fail;
                }
            if (nk) bt_strbuf_puts(hb, ",");
            sb_json_str(hb, kv[0]);
            bt_strbuf_puts(hb, ":");
            sb_json_str(hb, kv[1]);
        }
        bt_strbuf_puts(hb, "}");
        first = 0;
    }
    for (size_t i = 0; i < n; i++) {
        const bt_st_entry *t = &e[i];
        if ((rc = check_text("tensor name", t->name))) goto fail;
        if (!strcmp(t->name, "__metadata__")) {
            rc = bt_fail(BT_EINTERNAL, "safetensors writer: '__metadata__' is reserved, not a tensor name");
            goto fail;
        }
        if (!dtype_valid(t->dtype) || t->ndim < 0 || t->ndim > BT_ST_MAX_DIMS) {
            rc = bt_fail(BT_EINTERNAL, "safetensors writer: tensor '%s': bad dtype or ndim %d", t->name,
                         t->ndim);
            goto fail;
        }
        uint64_t numel = 1, nbytes;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0 || __builtin_mul_overflow(numel, (uint64_t)t->shape[d], &numel)) {
                rc = bt_fail(BT_EINTERNAL, "safetensors writer: tensor '%s': bad shape", t->name);
                goto fail;
            }
        }
        if (__builtin_mul_overflow(numel, (uint64_t)dtype_info[t->dtype].size, &nbytes) ||
            __builtin_add_overflow(off, nbytes, &off) || off > (uint64_t)INT64_MAX) {
            rc = bt_fail(BT_EINTERNAL, "safetensors writer: tensor '%s': size overflows", t->name);
            goto fail;
        }
        if (nbytes && !t->data) {
            rc = bt_fail(BT_EINTERNAL, "safetensors writer: tensor '%s': data is NULL", t->name);
            goto fail;
        }
        if (!first) bt_strbuf_puts(hb, ",");
        first = 0;
        sb_json_str(hb, t->name);
        bt_strbuf_printf(hb, ":{\"dtype\":\"%s\",\"shape\":[", dtype_info[t->dtype].name);
        for (int d = 0; d < t->ndim; d++) bt_strbuf_printf(hb, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        bt_strbuf_printf(hb, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)(off - nbytes),
                  (unsigned long long)off);
    }
    bt_strbuf_puts(hb, "}");
    /* Duplicate names would make an unreadable file: refuse them here. */
    if (n > 1) {
        const char **names = bt_xcalloc(n, sizeof *names);
        for (size_t i = 0; i < n; i++) names[i] = e[i].name;
        qsort(names, n, sizeof *names, name_ptr_cmp);
        for (size_t i = 1; i < n; i++)
            if (!strcmp(names[i], names[i - 1])) {
                rc = bt_fail(BT_EINTERNAL, "safetensors writer: tensor name '%s' given twice", names[i]);
                free(names);
                goto fail;
            }
        free(names);
    }
    while (hb->len % 8) bt_strbuf_puts(hb, " ");
    if (hb->len > BT_ST_MAX_HEADER) {
        rc = bt_fail(BT_EINTERNAL, "safetensors writer: header of %zu bytes is over the 100 MB limit",
                     hb->len);
        goto fail;
    }
    *data_bytes = off;
    return BT_OK;
fail:
    free(hb->s);
    memset(hb, 0, sizeof *hb);
    return rc;
}

int bt_st_serialized_size(const bt_st_entry *e, size_t n, const char *const *meta_kv, uint64_t *total)
{
    bt_strbuf hb;
    uint64_t data;
    int rc = build_header(e, n, meta_kv, &hb, &data);
    if (rc) return rc;
    *total = 8 + (uint64_t)hb.len + data;
    free(hb.s);
    return BT_OK;
}

int bt_st_write(const bt_st_entry *e, size_t n, const char *const *meta_kv, bt_st_sink sink, void *ctx)
{
    bt_strbuf hb;
    uint64_t data;
    int rc = build_header(e, n, meta_kv, &hb, &data);
    if (rc) return rc;
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)hb.len >> (8 * i));
    rc = sink(ctx, len8, 8);
    if (!rc) rc = sink(ctx, hb.s, hb.len);
    free(hb.s);
    for (size_t i = 0; i < n && !rc; i++) {
        size_t nb = dtype_info[e[i].dtype].size;
        for (int d = 0; d < e[i].ndim; d++) nb *= (size_t)e[i].shape[d];
        if (nb) rc = sink(ctx, e[i].data, nb);
    }
    return rc;
}

typedef struct {
    FILE *fp;
    const char *path;
} file_sink;

static int write_to_file(void *ctx, const void *buf, size_t len)
{
    file_sink *s = ctx;
    if (fwrite(buf, 1, len, s->fp) != len)
        return bt_fail(BT_EIO, "%s: write failed: %s", s->path, strerror(errno));
    return BT_OK;
}

int bt_st_write_file(const char *path, const bt_st_entry *e, size_t n, const char *const *meta_kv)
{
    file_sink s = {fopen(path, "wb"), path};
    if (!s.fp) return bt_fail(BT_EIO, "%s: cannot create: %s", path, strerror(errno));
    int rc = bt_st_write(e, n, meta_kv, write_to_file, &s);
    if (fclose(s.fp) != 0 && !rc) rc = bt_fail(BT_EIO, "%s: write failed: %s", path, strerror(errno));
    if (rc) remove(path);
    return rc;
}
