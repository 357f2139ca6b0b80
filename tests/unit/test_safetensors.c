/* tests/unit/test_safetensors.c — the safetensors reader and writer.
 *
 * Round trips of every dtype, the exact byte layout, dtype conversion edge
 * cases, one hand-made bad file per validation rule, and a sweep that
 * truncates a valid file at every byte and flips every header byte, checking
 * that each variant is refused with a message naming the file — or, for a
 * flip inside tensor data or inside a free-text string (a name, a metadata
 * value), accepted with exactly that change. Every variant lives in a buffer
 * of its exact size, so an out-of-bounds read fails under SAN=1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "state/safetensors.h"
#include "util/err.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers ---- */

typedef struct {
    uint8_t *buf;
    size_t len, cap;
    int fail_after; /* >0: the n-th call fails */
    int calls;
} mem_sink;

static int mem_write(void *ctx, const void *p, size_t n)
{
    mem_sink *s = ctx;
    s->calls++;
    if (s->fail_after && s->calls >= s->fail_after) return bt_fail(BT_EIO, "sink full");
    if (s->len + n > s->cap) {
        s->cap = (s->len + n) * 2 + 64;
        s->buf = realloc(s->buf, s->cap);
    }
    if (n) memcpy(s->buf + s->len, p, n);
    s->len += n;
    return 0;
}

/* An exact-size heap copy, so ASan sees any read past the end. */
static uint8_t *exact_copy(const void *p, size_t n)
{
    uint8_t *b = malloc(n ? n : 1);
    if (n) memcpy(b, p, n);
    return b;
}

/* 8-byte length + header text (padded with spaces to a multiple of 8 when pad) + data bytes. */
static uint8_t *make_file(const char *header, int pad, const void *data, size_t dlen, size_t *len)
{
    size_t h = strlen(header), hp = h;
    if (pad) hp = (h + 7) / 8 * 8;
    *len = 8 + hp + dlen;
    uint8_t *b = malloc(*len ? *len : 1);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)hp >> (8 * i));
    memcpy(b + 8, header, h);
    memset(b + 8 + h, ' ', hp - h);
    if (dlen) {
        if (data) memcpy(b + 8 + hp, data, dlen);
        else
            for (size_t i = 0; i < dlen; i++) b[8 + hp + i] = (uint8_t)(i * 7 + 1);
    }
    return b;
}

/* Expects header+data to be refused with BT_EDATA and a message containing
 * the label and `want`. */
static void expect_refused(const char *header, size_t dlen, const char *want)
{
    size_t len;
    uint8_t *b = make_file(header, 1, NULL, dlen, &len);
    bt_st_file *f = (bt_st_file *)0x1;
    bt_err_clear();
    int rc = bt_st_open_buffer(b, len, "bad.safetensors", &f);
    if (rc != BT_EDATA || !strstr(bt_errmsg(), "bad.safetensors") || !strstr(bt_errmsg(), want)) {
        fprintf(stderr, "header %s\n  rc %d, message: %s\n  wanted: %s\n", header, rc, bt_errmsg(), want);
        fail();
    }
    assert_null(f);
    free(b);
}

static void expect_ok(const char *header, size_t dlen, size_t ntensors)
{
    size_t len;
    uint8_t *b = make_file(header, 1, NULL, dlen, &len);
    bt_st_file *f = NULL;
    int rc = bt_st_open_buffer(b, len, "ok.safetensors", &f);
    if (rc) fprintf(stderr, "header %s: %s\n", header, bt_errmsg());
    assert_int_equal(rc, 0);
    assert_int_equal(bt_st_count(f), ntensors);
    bt_st_close(f);
    free(b);
}

/* ---- conversions ---- */

static void test_f16_conversion(void **state)
{
    (void)state;
    assert_true(bt_f16_to_f32(0x0000) == 0.0f && !signbit(bt_f16_to_f32(0x0000)));
    assert_true(bt_f16_to_f32(0x8000) == 0.0f && signbit(bt_f16_to_f32(0x8000)));
    assert_true(bt_f16_to_f32(0x3C00) == 1.0f);
    assert_true(bt_f16_to_f32(0xC000) == -2.0f);
    assert_true(bt_f16_to_f32(0x3555) == 0x1.554p-2f);
    assert_true(bt_f16_to_f32(0x7BFF) == 65504.0f);
    assert_true(bt_f16_to_f32(0x0400) == 0x1p-14f);          /* smallest normal */
    assert_true(bt_f16_to_f32(0x0001) == 0x1p-24f);          /* smallest subnormal */
    assert_true(bt_f16_to_f32(0x03FF) == 0x1.ff8p-15f);      /* largest subnormal */
    assert_true(bt_f16_to_f32(0x0200) == 0x1p-15f);
    assert_true(bt_f16_to_f32(0x8001) == -0x1p-24f);
    assert_true(isinf(bt_f16_to_f32(0x7C00)) && bt_f16_to_f32(0x7C00) > 0);
    assert_true(isinf(bt_f16_to_f32(0xFC00)) && bt_f16_to_f32(0xFC00) < 0);
    assert_true(isnan(bt_f16_to_f32(0x7E00)));
    assert_true(isnan(bt_f16_to_f32(0x7C01))); /* signalling NaN stays NaN, not inf */
    assert_true(isnan(bt_f16_to_f32(0xFE00)));
    /* Every finite half converts exactly: compare against ldexp arithmetic. */
    for (uint32_t h = 0; h < 0x10000; h++) {
        uint32_t e = (h >> 10) & 0x1F, m = h & 0x3FF;
        if (e == 0x1F) continue;
        double v = e ? ldexp(1024 + m, (int)e - 25) : ldexp(m, -24);
        if (h & 0x8000) v = -v;
        assert_true(bt_f16_to_f32((uint16_t)h) == (float)v);
    }
}

static void test_bf16_conversion(void **state)
{
    (void)state;
    assert_true(bt_bf16_to_f32(0x3F80) == 1.0f);
    assert_true(bt_bf16_to_f32(0xC040) == -3.0f);
    assert_true(bt_bf16_to_f32(0x0001) == 0x1p-133f); /* subnormal */
    assert_true(isinf(bt_bf16_to_f32(0x7F80)));
    assert_true(isnan(bt_bf16_to_f32(0x7FC0)));
    assert_true(isnan(bt_bf16_to_f32(0x7F81)));
}

static void test_dtype_names(void **state)
{
    (void)state;
    const char *names[] = {"BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32",
                           "U32", "F32", "F64", "I64", "U64", "F8_E4M3", "F8_E5M2"};
    const size_t sizes[] = {1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 8, 8, 8, 1, 1};
    for (int i = 0; i <= BT_ST_F8_E5M2; i++) {
        bt_st_dtype d;
        assert_string_equal(bt_st_dtype_name((bt_st_dtype)i), names[i]);
        assert_int_equal(bt_st_dtype_size((bt_st_dtype)i), sizes[i]);
        assert_int_equal(bt_st_dtype_from_name(names[i], &d), 1);
        assert_int_equal(d, i);
    }
    bt_st_dtype d;
    assert_int_equal(bt_st_dtype_from_name("f32", &d), 0);
    assert_int_equal(bt_st_dtype_from_name("F4", &d), 0);
    assert_int_equal(bt_st_dtype_from_name("", &d), 0);
}

/* ---- round trips ---- */

static void test_roundtrip_all_dtypes(void **state)
{
    (void)state;
    enum { NE = 18 };
    bt_st_entry e[NE];
    uint8_t *data[NE];
    memset(e, 0, sizeof e);
    char names[NE][48];
    for (int i = 0; i < NE; i++) {
        bt_st_dtype dt = (bt_st_dtype)(i % (BT_ST_F8_E5M2 + 1));
        snprintf(names[i], sizeof names[i], "t%d.%s \"q\\\xc3\xa9", i, bt_st_dtype_name(dt));
        e[i].name = names[i];
        e[i].dtype = dt;
        if (i == 15) { e[i].ndim = 0; }                                   /* scalar */
        else if (i == 16) { e[i].ndim = 2; e[i].shape[0] = 0; e[i].shape[1] = 5; } /* empty */
        else if (i == 17) { e[i].ndim = 8; for (int d = 0; d < 8; d++) e[i].shape[d] = 1 + (d == 3); }
        else { e[i].ndim = 1 + i % 3; for (int d = 0; d < e[i].ndim; d++) e[i].shape[d] = 1 + (i + d) % 4; }
        size_t n = bt_st_dtype_size(dt);
        for (int d = 0; d < e[i].ndim; d++) n *= (size_t)e[i].shape[d];
        data[i] = malloc(n + 1);
        for (size_t k = 0; k < n; k++) data[i][k] = (uint8_t)(k * 31 + i);
        e[i].data = data[i];
    }
    const char *meta[] = {"format", "pt", "note", "tab\tquote\" \xe2\x82\xac", NULL};
    uint64_t total;
    assert_int_equal(bt_st_serialized_size(e, NE, meta, &total), 0);
    mem_sink s = {0};
    assert_int_equal(bt_st_write(e, NE, meta, mem_write, &s), 0);
    assert_int_equal(s.len, total);
    uint64_t hn = 0;
    for (int i = 7; i >= 0; i--) hn = (hn << 8) | s.buf[i];
    assert_int_equal(hn % 8, 0);

    uint8_t *b = exact_copy(s.buf, s.len);
    bt_st_file *f;
    int rc = bt_st_open_buffer(b, s.len, "rt", &f);
    if (rc) fprintf(stderr, "%s\n", bt_errmsg());
    assert_int_equal(rc, 0);
    assert_int_equal(bt_st_count(f), NE);
    assert_string_equal(bt_st_metadata(f, "format"), "pt");
    assert_string_equal(bt_st_metadata(f, "note"), meta[3]);
    assert_null(bt_st_metadata(f, "absent"));
    assert_int_equal(bt_st_metadata_count(f), 2);
    assert_string_equal(bt_st_label(f), "rt");
    for (int i = 0; i < NE; i++) {
        const bt_st_tensor *t = bt_st_get(f, i); /* file order == given order */
        assert_string_equal(t->name, e[i].name);
        assert_ptr_equal(bt_st_find(f, e[i].name), t);
        assert_int_equal(t->dtype, e[i].dtype);
        assert_int_equal(t->ndim, e[i].ndim);
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            assert_int_equal(t->shape[d], e[i].shape[d]);
            numel *= e[i].shape[d];
        }
        assert_int_equal(t->numel, numel);
        assert_int_equal(t->nbytes, (size_t)numel * bt_st_dtype_size(t->dtype));
        if (t->nbytes) assert_memory_equal(t->data, data[i], t->nbytes);
    }
    assert_null(bt_st_get(f, NE));
    assert_null(bt_st_find(f, "nope"));
    bt_st_close(f);
    free(b);
    free(s.buf);
    for (int i = 0; i < NE; i++) free(data[i]);
}

static void test_read_f32_conversions(void **state)
{
    (void)state;
    float f32[3] = {1.5f, -0.0f, 3e38f};
    uint16_t f16[4] = {0x3C00, 0x0001, 0xFC00, 0x7BFF};
    uint16_t bf16[2] = {0x3F80, 0xC2F7};
    double f64[5] = {0.1, -1e300, 1e-50, 3.4028235e38 /* rounds to FLT_MAX */, 1e39};
    int32_t i32[2] = {1, 2};
    bt_st_entry e[] = {
        {"a", BT_ST_F32, 1, {3}, f32}, {"b", BT_ST_F16, 2, {2, 2}, f16}, {"c", BT_ST_BF16, 1, {2}, bf16},
        {"d", BT_ST_F64, 1, {5}, f64}, {"e", BT_ST_I32, 1, {2}, i32},
    };
    mem_sink s = {0};
    assert_int_equal(bt_st_write(e, 5, NULL, mem_write, &s), 0);
    bt_st_file *f;
    assert_int_equal(bt_st_open_buffer(s.buf, s.len, "conv", &f), 0);
    float out[5];
    assert_int_equal(bt_st_read_f32(f, bt_st_find(f, "a"), out), 0);
    assert_memory_equal(out, f32, sizeof f32);
    const float *view = bt_st_f32_view(bt_st_find(f, "a"));
    assert_non_null(view); /* header is padded to 8 and the buffer is malloc-aligned */
    assert_memory_equal(view, f32, sizeof f32);
    assert_null(bt_st_f32_view(bt_st_find(f, "b")));
    assert_int_equal(bt_st_read_f32(f, bt_st_find(f, "b"), out), 0);
    assert_true(out[0] == 1.0f && out[1] == 0x1p-24f && isinf(out[2]) && out[2] < 0 && out[3] == 65504.0f);
    assert_int_equal(bt_st_read_f32(f, bt_st_find(f, "c"), out), 0);
    assert_true(out[0] == 1.0f && out[1] == -123.5f);
    assert_int_equal(bt_st_read_f32(f, bt_st_find(f, "d"), out), 0);
    assert_true(out[0] == 0.1f && isinf(out[1]) && out[1] < 0 && out[2] == 0.0f);
    assert_true(out[3] == 3.4028234663852886e38f && isinf(out[4]));
    bt_err_clear();
    assert_int_equal(bt_st_read_f32(f, bt_st_find(f, "e"), out), BT_EDATA);
    assert_non_null(strstr(bt_errmsg(), "'e'"));
    assert_non_null(strstr(bt_errmsg(), "I32"));
    assert_non_null(strstr(bt_errmsg(), "conv"));
    bt_st_close(f);
    free(s.buf);
}

/* The byte layout the format specifies: compact JSON, data_offsets relative
 * to the data buffer, header padded with spaces to a multiple of 8. */
static void test_exact_layout(void **state)
{
    (void)state;
    float v[6] = {0, 1, 2, 3, 4, 5};
    bt_st_entry e = {"attn.0", BT_ST_F32, 3, {1, 2, 3}, v};
    mem_sink s = {0};
    assert_int_equal(bt_st_write(&e, 1, NULL, mem_write, &s), 0);
    const char *hdr = "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}";
    size_t hl = strlen(hdr), padded = (hl + 7) / 8 * 8;
    assert_int_equal(s.len, 8 + padded + 24);
    assert_int_equal(s.buf[0], padded);
    for (int i = 1; i < 8; i++) assert_int_equal(s.buf[i], 0);
    assert_memory_equal(s.buf + 8, hdr, hl);
    for (size_t i = hl; i < padded; i++) assert_int_equal(s.buf[8 + i], ' ');
    assert_memory_equal(s.buf + 8 + padded, v, 24);
    free(s.buf);

    /* No tensors: "{}" padded to 8. With metadata: __metadata__ first. */
    s = (mem_sink){0};
    assert_int_equal(bt_st_write(NULL, 0, NULL, mem_write, &s), 0);
    assert_int_equal(s.len, 16);
    assert_memory_equal(s.buf + 8, "{}      ", 8);
    bt_st_file *f;
    assert_int_equal(bt_st_open_buffer(s.buf, s.len, "empty", &f), 0);
    assert_int_equal(bt_st_count(f), 0);
    bt_st_close(f);
    free(s.buf);
    s = (mem_sink){0};
    const char *meta[] = {"format", "pt", NULL};
    assert_int_equal(bt_st_write(&e, 1, meta, mem_write, &s), 0);
    assert_memory_equal(s.buf + 8, "{\"__metadata__\":{\"format\":\"pt\"},\"attn.0\":", 41);
    free(s.buf);
}

static void test_writer_errors(void **state)
{
    (void)state;
    float v[2] = {1, 2};
    bt_st_entry dup[] = {{"w", BT_ST_F32, 1, {1}, v}, {"x", BT_ST_F32, 1, {1}, v}, {"w", BT_ST_F32, 1, {1}, v}};
    mem_sink s = {0};
    uint64_t total;
    assert_int_not_equal(bt_st_write(dup, 3, NULL, mem_write, &s), 0);
    assert_non_null(strstr(bt_errmsg(), "'w' given twice"));
    assert_int_not_equal(bt_st_serialized_size(dup, 3, NULL, &total), 0);
    assert_int_equal(s.calls, 0); /* nothing written before the check */
    bt_st_entry reserved = {"__metadata__", BT_ST_F32, 1, {1}, v};
    assert_int_not_equal(bt_st_write(&reserved, 1, NULL, mem_write, &s), 0);
    bt_st_entry neg = {"n", BT_ST_F32, 1, {-1}, v};
    assert_int_not_equal(bt_st_write(&neg, 1, NULL, mem_write, &s), 0);
    bt_st_entry badutf = {"\xff", BT_ST_F32, 1, {1}, v};
    assert_int_not_equal(bt_st_write(&badutf, 1, NULL, mem_write, &s), 0);
    bt_st_entry nodata = {"z", BT_ST_F32, 1, {2}, NULL};
    assert_int_not_equal(bt_st_write(&nodata, 1, NULL, mem_write, &s), 0);
    const char *dupmeta[] = {"k", "1", "k", "2", NULL};
    assert_int_not_equal(bt_st_write(dup, 2, dupmeta, mem_write, &s), 0);
    /* A failing sink's error comes back unchanged. */
    s = (mem_sink){.fail_after = 3};
    assert_int_equal(bt_st_write(dup, 2, NULL, mem_write, &s), BT_EIO);
    assert_string_equal(bt_errmsg(), "sink full");
    free(s.buf);
}

static void test_file_roundtrip(void **state)
{
    (void)state;
    char path[] = "/tmp/baton-st-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    float v[4] = {1, 2, 3, 4};
    bt_st_entry e[] = {{"w", BT_ST_F32, 2, {2, 2}, v}};
    assert_int_equal(bt_st_write_file(path, e, 1, NULL), 0);
    bt_st_file *f;
    assert_int_equal(bt_st_open(path, &f), 0);
    const float *view = bt_st_f32_view(bt_st_find(f, "w"));
    assert_non_null(view);
    assert_memory_equal(view, v, sizeof v);
    assert_string_equal(bt_st_label(f), path);
    bt_st_close(f);
    /* Truncated on disk. */
    assert_int_equal(truncate(path, 30), 0);
    bt_err_clear();
    assert_int_equal(bt_st_open(path, &f), BT_EDATA);
    assert_non_null(strstr(bt_errmsg(), path));
    assert_int_equal(truncate(path, 0), 0);
    assert_int_equal(bt_st_open(path, &f), BT_EDATA);
    unlink(path);
    assert_int_equal(bt_st_open(path, &f), BT_ENOINPUT);
    assert_int_equal(bt_st_write_file("/nonexistent-dir/x.safetensors", e, 1, NULL), BT_EIO);
}

/* ---- one bad file per rule ---- */

#define T1 "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"

static void test_bad_headers(void **state)
{
    (void)state;
    /* Length prefix. */
    {
        uint8_t b[7] = {0};
        bt_st_file *f;
        assert_int_equal(bt_st_open_buffer(b, 7, "bad.safetensors", &f), BT_EDATA);
        assert_non_null(strstr(bt_errmsg(), "shorter than the 8-byte"));
        uint8_t big[16] = {0x01, 0xE1, 0xF5, 0x05, 0, 0, 0, 0, '{', '}'}; /* 100000001 */
        assert_int_equal(bt_st_open_buffer(big, 16, "bad.safetensors", &f), BT_EDATA);
        assert_non_null(strstr(bt_errmsg(), "over the 100 MB limit"));
        uint8_t huge[16] = {0, 0, 0, 0, 0, 0, 0, 0x80, '{', '}'};
        assert_int_equal(bt_st_open_buffer(huge, 16, "bad.safetensors", &f), BT_EDATA);
        assert_non_null(strstr(bt_errmsg(), "over the 100 MB limit"));
        uint8_t past[16] = {9, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
        assert_int_equal(bt_st_open_buffer(past, 16, "bad.safetensors", &f), BT_EDATA);
        assert_non_null(strstr(bt_errmsg(), "runs past the end"));
        uint8_t zero[8] = {0};
        assert_int_equal(bt_st_open_buffer(zero, 8, "bad.safetensors", &f), BT_EDATA);
        assert_non_null(strstr(bt_errmsg(), "start with '{'"));
    }
    /* Text level. */
    expect_refused("{\"w\xc3\":{}}", 0, "not valid UTF-8");
    expect_refused("{\"\xed\xa0\x80\":{}}", 0, "not valid UTF-8");  /* surrogate */
    expect_refused("{\"\xc0\xaf\":{}}", 0, "not valid UTF-8");      /* overlong */
    expect_refused("{\"\xf4\x90\x80\x80\":{}}", 0, "not valid UTF-8"); /* > U+10FFFF */
    expect_refused(" {}", 0, "start with '{'");
    expect_refused("[]", 0, "start with '{'");
    expect_refused("{" T1, 8, "not valid JSON");
    expect_refused("{" T1 "}x", 8, "not valid JSON");
    expect_refused("{" T1 "," T1 "}", 8, "duplicate");
    expect_refused("{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}," T1 "}", 8, "duplicate");
    expect_refused("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"w\":1}", 8, "duplicate");
    /* Entries. */
    expect_refused("{\"w\":[]}", 0, "tensor 'w': header entry is not a JSON object");
    expect_refused("{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "tensor 'w': header entry lacks \"dtype\"");
    expect_refused("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "lacks \"shape\"");
    expect_refused("{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "lacks \"data_offsets\"");
    expect_refused("{\"w\":{\"dtype\":\"F31\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "tensor 'w': unknown dtype \"F31\"");
    expect_refused("{\"w\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "dtype is not a string");
    expect_refused("{\"w\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8, "shape is not a JSON array");
    expect_refused("{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "shape[0] is not a non-negative integer");
    expect_refused("{\"w\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, "shape[0] is not");
    expect_refused("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,\"2\"],\"data_offsets\":[0,8]}}", 8, "shape[1] is not");
    expect_refused("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", 8, "9 dimensions");
    expect_refused("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", 0, "overflows");
    expect_refused("{\"w\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,0]}}", 0, "overflows");
    expect_refused("{\"w\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}}", 8, "not valid JSON");
    expect_refused("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "data_offsets is not [begin, end]");
    expect_refused("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", 8, "data_offsets is not");
    expect_refused("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8, "data_offsets is not");
    expect_refused("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":{\"a\":1}}}", 8, "data_offsets is not");
    expect_refused("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "end before they begin");
    expect_refused("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", 12, "span 12 bytes but F32 [2] needs 8");
    expect_refused("{\"w\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "needs 6");
    /* Layout of the data buffer. */
    expect_refused("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
                   "tensor 'w': data_offsets begin at 4, leaving a gap after byte 0");
    expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}", 16,
                   "tensor 'b': data_offsets begin at 12, leaving a gap after byte 8 (where 'a' ends)");
    expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
                   "overlap tensor 'a'");
    expect_refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "overlap");
    expect_refused("{" T1 "}", 12, "4 bytes of trailing garbage");
    expect_refused("{" T1 "}", 4, "truncated");
    expect_refused("{}", 1, "trailing garbage");
    /* __metadata__. */
    expect_refused("{\"__metadata__\":[]," T1 "}", 8, "\"__metadata__\" is not a JSON object");
    expect_refused("{\"__metadata__\":\"x\"," T1 "}", 8, "\"__metadata__\" is not");
    expect_refused("{\"__metadata__\":{\"format\":1}," T1 "}", 8, "key 'format' has a non-string value");
    expect_refused("{\"__metadata__\":{\"format\":null}," T1 "}", 8, "non-string value");

    /* Valid edge cases. */
    expect_ok("{}", 0, 0);
    expect_ok("{\"__metadata__\":{}}", 0, 0);
    expect_ok("{" T1 "}", 8, 1);
    expect_ok("{ \"w\" : { \"dtype\" : \"F32\", \"shape\" : [2], \"data_offsets\" : [0, 8] } }\n", 8, 1);
    expect_ok("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"extra\":1}}", 8, 1);
    expect_ok("{\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
              "\"y\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]}," T1 "}", 8, 3);
    expect_ok("{\"s\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]}}", 8, 1);
    {
        /* Header order != data order: file order kept, data pointers follow the offsets. */
        const char *h = "{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[3,5]},"
                        "\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]}}";
        uint8_t d[5] = {10, 11, 12, 20, 21};
        size_t len;
        uint8_t *b = make_file(h, 1, d, 5, &len);
        bt_st_file *f;
        assert_int_equal(bt_st_open_buffer(b, len, "order", &f), 0);
        assert_string_equal(bt_st_get(f, 0)->name, "b");
        assert_int_equal(bt_st_get(f, 0)->data[0], 20);
        assert_int_equal(bt_st_find(f, "a")->data[2], 12);
        bt_st_close(f);
        free(b);
        /* Unpadded headers are valid too (the padding is a writer convention). */
        b = make_file(h, 0, d, 5, &len);
        assert_int_equal(bt_st_open_buffer(b, len, "unpadded", &f), 0);
        bt_st_close(f);
        free(b);
    }
}

/* ---- the sweep ---- */

/* A valid file whose header has free-text ranges we can locate. */
static uint8_t *sweep_file(size_t *len, size_t *hdr_end)
{
    static float w[6] = {0.5f, -1, 2, 3, 4, 5};
    static uint16_t h[3] = {0x3C00, 0x0001, 0x7BFF};
    static int64_t ids[2] = {7, -9};
    static uint16_t bf[1] = {0x3F80};
    bt_st_entry e[] = {
        {"enc.w", BT_ST_F32, 2, {2, 3}, w},
        {"enc.h", BT_ST_F16, 1, {3}, h},
        {"ids", BT_ST_I64, 2, {1, 2}, ids},
        {"bf", BT_ST_BF16, 0, {0}, bf},
    };
    const char *meta[] = {"format", "pt", NULL};
    mem_sink s = {0};
    assert_int_equal(bt_st_write(e, 4, meta, mem_write, &s), 0);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | s.buf[i];
    *hdr_end = 8 + (size_t)n;
    *len = s.len;
    return s.buf;
}

/* Is header byte i inside a JSON string that holds free text (a tensor name
 * or a metadata key or value), where a flip yields another valid file? */
static int in_free_text(const uint8_t *b, size_t hdr_end, size_t i)
{
    static const char *texts[] = {"\"enc.w\"", "\"enc.h\"", "\"ids\"", "\"bf\"", "\"format\"", "\"pt\""};
    for (size_t k = 0; k < sizeof texts / sizeof *texts; k++) {
        size_t tl = strlen(texts[k]);
        for (size_t p = 8; p + tl <= hdr_end; p++)
            if (!memcmp(b + p, texts[k], tl) && i > p && i < p + tl - 1) return 1;
    }
    return 0;
}

static void test_sweep_truncate_and_flip(void **state)
{
    (void)state;
    size_t len, hdr_end;
    uint8_t *good = sweep_file(&len, &hdr_end);
    bt_st_file *f;
    assert_int_equal(bt_st_open_buffer(good, len, "sweep.safetensors", &f), 0);
    bt_st_close(f);

    /* Truncation at every length, header and data alike. */
    int refused = 0;
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *b = exact_copy(good, cut);
        bt_err_clear();
        int rc = bt_st_open_buffer(b, cut, "sweep.safetensors", &f);
        if (rc != BT_EDATA || !strstr(bt_errmsg(), "sweep.safetensors")) {
            fprintf(stderr, "truncated at %zu: rc %d, '%s'\n", cut, rc, bt_errmsg());
            fail();
        }
        refused++;
        free(b);
    }
    assert_int_equal(refused, (int)len);
    /* Extended by one byte: refused too. */
    {
        uint8_t *b = malloc(len + 1);
        memcpy(b, good, len);
        b[len] = ' ';
        assert_int_equal(bt_st_open_buffer(b, len + 1, "sweep.safetensors", &f), BT_EDATA);
        free(b);
    }

    /* Flips: every byte of length + header (two masks), every data byte. */
    static const uint8_t masks[] = {0x01, 0x80, 0x20, 0x10};
    int n_refused = 0, n_text = 0, n_data = 0;
    for (size_t i = 0; i < len; i++) {
        for (size_t m = 0; m < sizeof masks; m++) {
            uint8_t *b = exact_copy(good, len);
            b[i] ^= masks[m];
            bt_err_clear();
            f = NULL;
            int rc = bt_st_open_buffer(b, len, "sweep.safetensors", &f);
            if (rc) {
                if (rc != BT_EDATA || !strstr(bt_errmsg(), "sweep.safetensors") || i >= hdr_end) {
                    fprintf(stderr, "flip %zu^%02x: rc %d '%s'\n", i, masks[m], rc, bt_errmsg());
                    fail();
                }
                n_refused++;
            } else if (i >= hdr_end) {
                /* Data flip: accepted, and exactly that byte differs. */
                n_data++;
                int seen = 0;
                for (size_t t = 0; t < bt_st_count(f); t++) {
                    const bt_st_tensor *tt = bt_st_get(f, t);
                    size_t at = (size_t)(tt->data - b);
                    if (i >= at && i < at + tt->nbytes) {
                        seen = 1;
                        assert_int_equal(tt->data[i - at] ^ good[i], masks[m]);
                    }
                }
                assert_true(seen);
            } else {
                /* Header flip accepted: only inside a name or metadata string,
                 * and then the parsed content shows the change. */
                if (!in_free_text(good, hdr_end, i)) {
                    fprintf(stderr, "flip %zu^%02x ('%c') in structure was accepted\n", i, masks[m], good[i]);
                    fail();
                }
                int changed = bt_st_count(f) == 4 && (!bt_st_find(f, "enc.w") || !bt_st_find(f, "enc.h") ||
                                                      !bt_st_find(f, "ids") || !bt_st_find(f, "bf") ||
                                                      !bt_st_metadata(f, "format") ||
                                                      strcmp(bt_st_metadata(f, "format"), "pt"));
                assert_true(changed);
                n_text++;
            }
            if (f && !rc) bt_st_close(f);
            free(b);
        }
    }
    /* 0x80 flips never give valid UTF-8 from ASCII; structure flips always fail. */
    assert_true(n_refused > (int)(hdr_end * 3));
    assert_true(n_text > 0);
    assert_int_equal(n_data, (int)((len - hdr_end) * sizeof masks));
    free(good);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_conversion),
        cmocka_unit_test(test_bf16_conversion),
        cmocka_unit_test(test_dtype_names),
        cmocka_unit_test(test_roundtrip_all_dtypes),
        cmocka_unit_test(test_read_f32_conversions),
        cmocka_unit_test(test_exact_layout),
        cmocka_unit_test(test_writer_errors),
        cmocka_unit_test(test_file_roundtrip),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_sweep_truncate_and_flip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
