/* tests/unit/test_torch_bin.c — the pytorch_model.bin reader (state/zip.c,
 * state/pickle.c, state/torch_bin.c) on files built here byte by byte.
 *
 * A valid state dict as torch.save writes it (protocol 2, and protocol 4
 * with frames, memoize and STACK_GLOBAL; ZIP64 records; views materialised)
 * loads with the right names, dtypes, shapes and values. Then every class of
 * hostile or broken input is refused with BT_EDATA and a message naming the
 * file and what is wrong: a __reduce__ to os.system (GLOBAL and
 * STACK_GLOBAL + REDUCE: the command is never run), unknown and unsupported
 * globals, every opcode outside the allowed list, nested and oversized
 * frames, huge lengths, memo and stack abuse, bad persistent ids and tensor
 * rebuilds, bad zip directories and offsets, CRC failures, compressed or
 * encrypted members, legacy and TorchScript files, the limits. Sweeps cut
 * the file at every byte and flip every byte of its pickle, each variant in
 * an exact-size buffer so SAN=1 catches any read past the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "state/pickle.h"
#include "state/torch_bin.h"
#include "state/zip.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------ bytes */

typedef struct {
    uint8_t *b;
    size_t n, cap;
} buf;

static void put(buf *p, const void *d, size_t n)
{
    if (p->n + n > p->cap) {
        p->cap = (p->n + n) * 2 + 64;
        p->b = realloc(p->b, p->cap);
    }
    if (n) memcpy(p->b + p->n, d, n);
    p->n += n;
}
static void byte(buf *p, int c) { uint8_t x = (uint8_t)c; put(p, &x, 1); }
static void le(buf *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) byte(p, (int)(v >> (8 * i)) & 0xFF);
}
static void text(buf *p, const char *s) { put(p, s, strlen(s)); }

/* ---- pickle pieces, as torch.save (protocol 2) writes them */
static void pk_str(buf *p, const char *s)
{
    byte(p, 'X');
    le(p, strlen(s), 4);
    text(p, s);
}
static void pk_global(buf *p, const char *mod, const char *name)
{
    byte(p, 'c');
    text(p, mod);
    byte(p, '\n');
    text(p, name);
    byte(p, '\n');
}
static void pk_int(buf *p, long v)
{
    if (v >= 0 && v < 256) byte(p, 'K'), byte(p, (int)v);
    else if (v >= 0 && v < 65536) byte(p, 'M'), le(p, (uint64_t)v, 2);
    else byte(p, 'J'), le(p, (uint64_t)v, 4);
}
static void pk_odict(buf *p) /* OrderedDict() */
{
    pk_global(p, "collections", "OrderedDict");
    byte(p, ')');
    byte(p, 'R');
}
static void pk_tuple(buf *p, const long *v, int n)
{
    byte(p, '(');
    for (int i = 0; i < n; i++) pk_int(p, v[i]);
    byte(p, 't');
}

/* name -> _rebuild_tensor_v2(('storage', torch.<type>, key, 'cpu', numel), offset, shape, stride, False, OrderedDict()) */
static void pk_tensor(buf *p, const char *name, const char *type, const char *key, long numel, long offset, int nd,
                      const long *shape, const long *stride)
{
    pk_str(p, name);
    pk_global(p, "torch._utils", "_rebuild_tensor_v2");
    byte(p, '(');
    byte(p, '(');
    pk_str(p, "storage");
    pk_global(p, "torch", type);
    pk_str(p, key);
    pk_str(p, "cpu");
    pk_int(p, numel);
    byte(p, 't');
    byte(p, 'Q');
    pk_int(p, offset);
    pk_tuple(p, shape, nd);
    pk_tuple(p, stride, nd);
    byte(p, 0x89);
    pk_odict(p);
    byte(p, 't');
    byte(p, 'R');
}

static void sd_begin(buf *p)
{
    byte(p, 0x80);
    byte(p, 2);
    pk_odict(p);
    byte(p, '(');
}
static void sd_end(buf *p)
{
    byte(p, 'u');
    byte(p, '.');
}

/* The standard state dict: w = F32 [2,3] (storage '0', 6 floats), b = F16 [2] (storage '1'). */
static const long S23[] = {2, 3}, ST23[] = {3, 1}, S2[] = {2}, ST1[] = {1};
static void sd_tensors(buf *p)
{
    pk_tensor(p, "w", "FloatStorage", "0", 6, 0, 2, S23, ST23);
    pk_tensor(p, "b", "HalfStorage", "1", 2, 0, 1, S2, ST1);
}
static buf std_pickle(void)
{
    buf p = {0};
    sd_begin(&p);
    sd_tensors(&p);
    sd_end(&p);
    return p;
}

/* ---- zip writer (stored members) */
typedef struct {
    const char *name;
    const void *data;
    size_t len;
    int method, flags, bad_crc, zero_crc;
} member;
#define MEMBER(name, data, len) {name, data, len, 0, 0, 0, 0}

static const float W6[6] = {1.5f, -2.0f, 0.25f, 3.0f, -0.125f, 1e-3f};
static const uint16_t B2[2] = {0x3C00, 0xC000}; /* 1.0, -2.0 in f16 */

static uint8_t *exact(const buf *p, size_t *len)
{
    uint8_t *b = malloc(p->n ? p->n : 1);
    if (p->n) memcpy(b, p->b, p->n);
    *len = p->n;
    return b;
}

static uint8_t *zip(const member *m, size_t n, int zip64, size_t *len)
{
    buf z = {0};
    uint64_t *off = calloc(n + 1, sizeof *off);
    for (size_t i = 0; i < n; i++) {
        off[i] = z.n;
        uint32_t crc = m[i].zero_crc ? 0 : bt_crc32(0, m[i].data, m[i].len) ^ (m[i].bad_crc ? 1u : 0u);
        le(&z, 0x04034b50, 4);
        le(&z, 20, 2);
        le(&z, (uint64_t)m[i].flags, 2);
        le(&z, (uint64_t)m[i].method, 2);
        le(&z, 0, 4);
        le(&z, crc, 4);
        le(&z, m[i].len, 4);
        le(&z, m[i].len, 4);
        le(&z, strlen(m[i].name), 2);
        le(&z, 0, 2);
        text(&z, m[i].name);
        put(&z, m[i].data, m[i].len);
    }
    uint64_t cd = z.n;
    for (size_t i = 0; i < n; i++) {
        uint32_t crc = m[i].zero_crc ? 0 : bt_crc32(0, m[i].data, m[i].len) ^ (m[i].bad_crc ? 1u : 0u);
        le(&z, 0x02014b50, 4);
        le(&z, 45, 2);
        le(&z, 45, 2);
        le(&z, (uint64_t)m[i].flags, 2);
        le(&z, (uint64_t)m[i].method, 2);
        le(&z, 0, 4);
        le(&z, crc, 4);
        le(&z, zip64 ? 0xFFFFFFFFu : m[i].len, 4);
        le(&z, zip64 ? 0xFFFFFFFFu : m[i].len, 4);
        le(&z, strlen(m[i].name), 2);
        le(&z, zip64 ? 28 : 0, 2);
        le(&z, 0, 2);
        le(&z, 0, 2);
        le(&z, 0, 2);
        le(&z, 0, 4);
        le(&z, zip64 ? 0xFFFFFFFFu : off[i], 4);
        text(&z, m[i].name);
        if (zip64) {
            le(&z, 1, 2);
            le(&z, 24, 2);
            le(&z, m[i].len, 8);
            le(&z, m[i].len, 8);
            le(&z, off[i], 8);
        }
    }
    uint64_t cd_size = z.n - cd;
    if (zip64) {
        uint64_t rec = z.n;
        le(&z, 0x06064b50, 4);
        le(&z, 44, 8);
        le(&z, 45, 2);
        le(&z, 45, 2);
        le(&z, 0, 4);
        le(&z, 0, 4);
        le(&z, n, 8);
        le(&z, n, 8);
        le(&z, cd_size, 8);
        le(&z, cd, 8);
        le(&z, 0x07064b50, 4);
        le(&z, 0, 4);
        le(&z, rec, 8);
        le(&z, 1, 4);
    }
    le(&z, 0x06054b50, 4);
    le(&z, 0, 2);
    le(&z, 0, 2);
    le(&z, zip64 ? 0xFFFF : n, 2);
    le(&z, zip64 ? 0xFFFF : n, 2);
    le(&z, zip64 ? 0xFFFFFFFFu : cd_size, 4);
    le(&z, zip64 ? 0xFFFFFFFFu : cd, 4);
    le(&z, 0, 2);
    free(off);
    uint8_t *b = exact(&z, len);
    free(z.b);
    return b;
}

/* The standard members around a pickle; extra members (or replacements by name) appended. */
static uint8_t *pt_file_ex(const buf *pkl, const member *extra, size_t n_extra, int zip64, size_t *len)
{
    member m[16] = {
        MEMBER("arc/data.pkl", pkl->b, pkl->n), MEMBER("arc/data/0", W6, sizeof W6),
        MEMBER("arc/data/1", B2, sizeof B2), MEMBER("arc/version", "3\n", 2),
        MEMBER("arc/byteorder", "little", 6),
    };
    size_t n = 5;
    for (size_t i = 0; i < n_extra; i++) {
        size_t k = 0;
        while (k < n && strcmp(m[k].name, extra[i].name)) k++;
        m[k] = extra[i];
        if (k == n) n++;
    }
    /* a member with data NULL is dropped */
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        if (m[i].data) m[w++] = m[i];
    return zip(m, w, zip64, len);
}
static uint8_t *pt_file(const buf *pkl, size_t *len) { return pt_file_ex(pkl, NULL, 0, 0, len); }

/* ------------------------------------------------------------------ checks */

static void expect_refused_buf(const uint8_t *b, size_t len, const char *want)
{
    bt_st_file *f = (bt_st_file *)0x1;
    bt_err_clear();
    int rc = bt_pt_open_buffer(b, len, "m/pytorch_model.bin", &f);
    if (rc != BT_EDATA || !strstr(bt_errmsg(), "m/pytorch_model.bin") || !strstr(bt_errmsg(), want)) {
        fprintf(stderr, "rc %d, message: %s\n  wanted: %s\n", rc, bt_errmsg(), want);
        fail();
    }
    assert_null(f);
}

/* A pickle inside otherwise standard members must be refused with want in the message. */
static void expect_pickle_refused(const buf *pkl, const char *want)
{
    size_t len;
    uint8_t *b = pt_file(pkl, &len);
    expect_refused_buf(b, len, want);
    free(b);
}

static bt_st_file *open_ok(const uint8_t *b, size_t len)
{
    bt_st_file *f = NULL;
    int rc = bt_pt_open_buffer(b, len, "ok.bin", &f);
    if (rc) fprintf(stderr, "%s\n", bt_errmsg());
    assert_int_equal(rc, 0);
    return f;
}

static void check_std(bt_st_file *f)
{
    assert_int_equal(bt_st_count(f), 2);
    const bt_st_tensor *w = bt_st_find(f, "w"), *b = bt_st_find(f, "b");
    assert_non_null(w);
    assert_non_null(b);
    assert_int_equal(w->dtype, BT_ST_F32);
    assert_int_equal(w->ndim, 2);
    assert_int_equal(w->shape[0], 2);
    assert_int_equal(w->shape[1], 3);
    assert_int_equal(w->nbytes, 24);
    assert_int_equal(b->dtype, BT_ST_F16);
    float x[6];
    assert_int_equal(bt_st_read_f32(f, w, x), 0);
    assert_memory_equal(x, W6, sizeof W6);
    assert_int_equal(bt_st_read_f32(f, b, x), 0);
    assert_true(x[0] == 1.0f && x[1] == -2.0f);
    assert_string_equal(bt_st_get(f, 0)->name, "w"); /* file order = state dict order */
}

/* ------------------------------------------------------------------ valid files */

static void test_crc32(void **state)
{
    (void)state;
    assert_int_equal(bt_crc32(0, "123456789", 9), 0xCBF43926u); /* the standard check value */
    assert_int_equal(bt_crc32(bt_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
    assert_int_equal(bt_crc32(0, "", 0), 0);
}

static void test_valid(void **state)
{
    (void)state;
    buf p = std_pickle();
    for (int z64 = 0; z64 <= 1; z64++) {
        size_t len;
        uint8_t *b = pt_file_ex(&p, NULL, 0, z64, &len);
        bt_st_file *f = open_ok(b, len);
        check_std(f);
        bt_st_close(f);
        free(b);
    }
    /* the same from a file on disk (mapped; the handle owns the mapping) */
    size_t len;
    uint8_t *b = pt_file(&p, &len);
    char path[] = "/tmp/baton-test-ptXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0 && write(fd, b, len) == (ssize_t)len);
    close(fd);
    bt_st_file *f = NULL;
    assert_int_equal(bt_pt_open(path, &f), 0);
    check_std(f);
    bt_st_close(f);
    unlink(path);
    assert_int_equal(bt_pt_open(path, &f), BT_ENOINPUT);
    free(b);
    free(p.b);
}

/* Protocol 4: FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL, BINGET of a memoized global. */
static void test_protocol4(void **state)
{
    (void)state;
    buf body = {0};
    /* OrderedDict via STACK_GLOBAL, memoized as 0 */
    byte(&body, 0x8c), byte(&body, 11), text(&body, "collections");
    byte(&body, 0x8c), byte(&body, 11), text(&body, "OrderedDict");
    byte(&body, 0x93), byte(&body, 0x94);
    byte(&body, ')'), byte(&body, 'R'), byte(&body, '(');
    byte(&body, 0x8c), byte(&body, 1), text(&body, "b");
    byte(&body, 0x8c), byte(&body, 12), text(&body, "torch._utils");
    byte(&body, 0x8c), byte(&body, 18), text(&body, "_rebuild_tensor_v2");
    byte(&body, 0x93), byte(&body, 0x94); /* memo 1 */
    byte(&body, '('), byte(&body, '(');
    byte(&body, 0x8c), byte(&body, 7), text(&body, "storage");
    byte(&body, 0x8c), byte(&body, 5), text(&body, "torch");
    byte(&body, 0x8c), byte(&body, 11), text(&body, "HalfStorage");
    byte(&body, 0x93);
    byte(&body, 0x8c), byte(&body, 1), text(&body, "1");
    byte(&body, 0x8c), byte(&body, 3), text(&body, "cpu");
    pk_int(&body, 2);
    byte(&body, 't'), byte(&body, 'Q');
    pk_int(&body, 0), pk_int(&body, 2), byte(&body, 0x85), pk_int(&body, 1), byte(&body, 0x85);
    byte(&body, 0x89), byte(&body, 'h'), byte(&body, 0), byte(&body, ')'), byte(&body, 'R');
    byte(&body, 't'), byte(&body, 'R');
    byte(&body, 'u');
    buf p = {0};
    byte(&p, 0x80), byte(&p, 4);
    byte(&p, 0x95), le(&p, body.n, 8); /* the frame holds everything up to STOP */
    put(&p, body.b, body.n);
    byte(&p, 0x95), le(&p, 1, 8);      /* a second frame, just STOP */
    byte(&p, '.');
    size_t len;
    uint8_t *b = pt_file(&p, &len);
    bt_st_file *f = open_ok(b, len);
    assert_int_equal(bt_st_count(f), 1);
    assert_int_equal(bt_st_find(f, "b")->dtype, BT_ST_F16);
    bt_st_close(f);
    free(b);
    free(p.b);
    free(body.b);
}

/* Views into one storage: an offset slice (pointed at), a transpose and a
 * strided column (copied), a 0-d tensor, an empty tensor, _rebuild_parameter,
 * _rebuild_tensor (v1), and the module _metadata BUILD. */
static void test_views(void **state)
{
    (void)state;
    buf p = {0};
    sd_begin(&p);
    static const long s3[] = {3}, s32[] = {3, 2}, st13[] = {1, 3}, s1[] = {1}, st2[] = {2}, s0[] = {0, 3};
    pk_tensor(&p, "slice", "FloatStorage", "0", 6, 3, 1, s3, ST1);  /* W6[3..5] */
    pk_tensor(&p, "t", "FloatStorage", "0", 6, 0, 2, s32, st13);    /* transpose of [2,3] */
    pk_tensor(&p, "col", "FloatStorage", "0", 6, 1, 1, S2, (const long[]){3}); /* W6[1], W6[4] */
    pk_tensor(&p, "scalar", "FloatStorage", "0", 6, 5, 0, NULL, NULL);
    pk_tensor(&p, "empty", "FloatStorage", "0", 6, 99, 2, s0, ST23);
    pk_tensor(&p, "one", "FloatStorage", "0", 6, 2, 1, s1, st2);
    /* _rebuild_parameter(_rebuild_tensor(storage, 0, (2,), (1,)), True, OrderedDict()) */
    pk_str(&p, "param");
    pk_global(&p, "torch._utils", "_rebuild_parameter");
    byte(&p, '(');
    pk_global(&p, "torch._utils", "_rebuild_tensor");
    byte(&p, '('), byte(&p, '('), pk_str(&p, "storage"), pk_global(&p, "torch", "HalfStorage"), pk_str(&p, "1"),
        pk_str(&p, "cpu"), pk_int(&p, 2), byte(&p, 't'), byte(&p, 'Q');
    pk_int(&p, 0), pk_tuple(&p, S2, 1), pk_tuple(&p, ST1, 1), byte(&p, 't'), byte(&p, 'R');
    byte(&p, 0x88), pk_odict(&p), byte(&p, 't'), byte(&p, 'R');
    byte(&p, 'u');
    /* _metadata: OrderedDict state {'_metadata': OrderedDict with {'': {'version': 1}}} */
    byte(&p, '}'), pk_str(&p, "_metadata"), pk_odict(&p), pk_str(&p, ""), byte(&p, '}'), pk_str(&p, "version"),
        pk_int(&p, 1), byte(&p, 's'), byte(&p, 's'), byte(&p, 's'), byte(&p, 'b');
    byte(&p, '.');
    size_t len;
    uint8_t *b = pt_file(&p, &len);
    bt_st_file *f = open_ok(b, len);
    float x[6];
    const bt_st_tensor *t = bt_st_find(f, "slice");
    assert_true(t->data == (const uint8_t *)memmem(b, len, W6, sizeof W6) + 12); /* no copy: into the file */
    assert_int_equal(bt_st_read_f32(f, t, x), 0);
    assert_true(x[0] == W6[3] && x[2] == W6[5]);
    assert_int_equal(bt_st_read_f32(f, bt_st_find(f, "t"), x), 0);
    float tw[6] = {W6[0], W6[3], W6[1], W6[4], W6[2], W6[5]};
    assert_memory_equal(x, tw, sizeof tw);
    assert_int_equal(bt_st_read_f32(f, bt_st_find(f, "col"), x), 0);
    assert_true(x[0] == W6[1] && x[1] == W6[4]);
    t = bt_st_find(f, "scalar");
    assert_true(t->ndim == 0 && t->numel == 1);
    assert_int_equal(bt_st_read_f32(f, t, x), 0);
    assert_true(x[0] == W6[5]);
    t = bt_st_find(f, "empty");
    assert_true(t->numel == 0 && t->nbytes == 0 && t->shape[1] == 3);
    assert_int_equal(bt_st_read_f32(f, bt_st_find(f, "one"), x), 0);
    assert_true(x[0] == W6[2]);
    t = bt_st_find(f, "param");
    assert_true(t && t->dtype == BT_ST_F16 && t->numel == 2);
    bt_st_close(f);
    free(b);
    free(p.b);
}

/* ------------------------------------------------------------------ code and globals */

/* A __reduce__ to os.system: GLOBAL posix.system / STACK_GLOBAL os.system + REDUCE. The
 * command would create a file: it must not exist afterwards (nothing ever runs). */
static void test_reduce_to_system(void **state)
{
    (void)state;
    char marker[] = "/tmp/baton-pwned-XXXXXX";
    int fd = mkstemp(marker);
    close(fd);
    unlink(marker);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "touch %s", marker);
    for (int v = 0; v < 4; v++) {
        buf p = {0};
        byte(&p, 0x80), byte(&p, v >= 2 ? 4 : 2);
        if (v == 3) { /* inside the state dict, as a value */
            pk_odict(&p), byte(&p, '('), pk_str(&p, "w");
        }
        if (v == 0 || v == 3) pk_global(&p, v == 0 ? "posix" : "os", "system");
        else if (v == 1) pk_global(&p, "builtins", "eval");
        else byte(&p, 0x8c), byte(&p, 2), text(&p, "os"), byte(&p, 0x8c), byte(&p, 6), text(&p, "system"),
            byte(&p, 0x93);
        byte(&p, '('), pk_str(&p, v == 1 ? "__import__('os').system('true')" : cmd), byte(&p, 't'), byte(&p, 'R');
        if (v == 3) byte(&p, 'u');
        byte(&p, '.');
        static const char *const want[] = {"global 'posix.system' is not allowed", "global 'builtins.eval' is not allowed",
                                           "global 'os.system' is not allowed", "global 'os.system' is not allowed"};
        expect_pickle_refused(&p, want[v]);
        assert_non_null(strstr(bt_errmsg(), "malicious"));
        assert_non_null(strstr(bt_errmsg(), "weights_only=True"));
        free(p.b);
    }
    assert_int_equal(access(marker, F_OK), -1);
}

static void test_globals(void **state)
{
    (void)state;
    static const struct {
        const char *mod, *name, *want;
    } cases[] = {
        {"numpy.core.multiarray", "_reconstruct", "global 'numpy.core.multiarray._reconstruct' is not allowed"},
        {"argparse", "Namespace", "global 'argparse.Namespace' is not allowed"},
        {"collections", "defaultdict", "global 'collections.defaultdict' is not allowed"},
        {"torch._tensor", "_rebuild_from_type_v2", "'torch._tensor._rebuild_from_type_v2' is not supported"},
        {"torch._utils", "_rebuild_tensor_v3", "'torch._utils._rebuild_tensor_v3' is not supported"},
        {"torch._utils", "_rebuild_qtensor", "'torch._utils._rebuild_qtensor' is not supported"},
        {"torch", "ComplexFloatStorage", "storage type 'torch.ComplexFloatStorage' is not supported"},
        {"torch", "UntypedStorage", "storage type 'torch.UntypedStorage' is not supported"},
        {"torch", "device", "'torch.device' is not supported"},
        {"torchvision", "x", "global 'torchvision.x' is not allowed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        buf p = {0};
        byte(&p, 0x80), byte(&p, 2);
        pk_global(&p, cases[i].mod, cases[i].name);
        byte(&p, '.');
        expect_pickle_refused(&p, cases[i].want);
        assert_non_null(strstr(bt_errmsg(), "byte 2 (GLOBAL)"));
        free(p.b);
    }
    /* names that are not printable, too long, or not strings */
    buf p = {0};
    byte(&p, 0x80), byte(&p, 2), byte(&p, 'c'), text(&p, "os\x01"), byte(&p, '\n');
    expect_pickle_refused(&p, "non-printable");
    p.n = 2;
    byte(&p, 'c');
    for (int i = 0; i < 2000; i++) byte(&p, 'a');
    byte(&p, '\n'), text(&p, "x\n.");
    expect_pickle_refused(&p, "longer than 1024");
    p.n = 2;
    pk_int(&p, 1), pk_str(&p, "system"), byte(&p, 0x93), byte(&p, '.');
    expect_pickle_refused(&p, "module and name must be strings");
    p.n = 2;
    byte(&p, 'X'), le(&p, 3, 4), put(&p, "o\0s", 3), pk_str(&p, "system"), byte(&p, 0x93), byte(&p, '.');
    expect_pickle_refused(&p, "NUL byte");
    free(p.b);
}

/* Every opcode outside the allowed list, and bytes that are no opcode. */
static void test_refused_opcodes(void **state)
{
    (void)state;
    static const uint8_t ops[] = {'0', '1', '2', 'F', 'I', 'L', 'P', 'S', 'T', 'U', 'V', 'd', 'g', 'i', 'l', 'o',
                                  'p', 0x81, 0x82, 0x83, 0x84, 0x8b, 'B', 'C', 0x8e, 0x8f, 0x90, 0x91, 0x92,
                                  0x96, 0x97, 0x98};
    for (size_t i = 0; i < sizeof ops; i++) {
        buf p = {0};
        byte(&p, 0x80), byte(&p, 2), byte(&p, 'N'), byte(&p, ops[i]);
        for (int k = 0; k < 16; k++) byte(&p, 'N'); /* arguments, if any */
        byte(&p, '.');
        char want[64];
        snprintf(want, sizeof want, "byte 3 (%s): opcode %s (0x%02x) is not allowed", bt_pk_opcode_name(ops[i]),
                 bt_pk_opcode_name(ops[i]), ops[i]);
        expect_pickle_refused(&p, want);
        free(p.b);
    }
    static const uint8_t junk[] = {0x00, 'A', 'z', 0x7f, 0x99, 0xff};
    for (size_t i = 0; i < sizeof junk; i++) {
        buf p = {0};
        byte(&p, 0x80), byte(&p, 2), byte(&p, junk[i]), byte(&p, '.');
        expect_pickle_refused(&p, "is not a pickle opcode");
        free(p.b);
    }
}

/* ------------------------------------------------------------------ structure of the pickle */

static void refused_bytes(const char *bytes, size_t n, const char *want)
{
    buf p = {malloc(1), 0, 1}; /* never NULL: a NULL member is dropped by pt_file_ex */
    put(&p, bytes, n);
    expect_pickle_refused(&p, want);
    free(p.b);
}
#define REFUSED(lit, want) refused_bytes(lit, sizeof lit - 1, want)

static void test_frames(void **state)
{
    (void)state;
    /* nested: a frame starting before the current one ends */
    REFUSED("\x80\x04\x95\x0c\0\0\0\0\0\0\0" "N\x95\x01\0\0\0\0\0\0\0." "..", "a new frame starts 10 bytes before");
    /* oversized: a frame longer than the rest of the pickle */
    REFUSED("\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\x7f" "N.", "runs past the end of the pickle");
    REFUSED("\x80\x04\x95\x03\0\0\0\0\0\0\0" "N.", "runs past the end of the pickle");
    /* an opcode crossing the end of its frame */
    REFUSED("\x80\x04\x95\x03\0\0\0\0\0\0\0" "NJ\0\0\0\0.", "its frame ends at byte");
    /* STOP before the end of the frame, bytes after STOP */
    REFUSED("\x80\x04\x95\x03\0\0\0\0\0\0\0" "N.N", "bytes before the end of its frame");
    REFUSED("\x80\x02N.N", "1 bytes follow STOP");
    /* a frame cut short by the end of the data */
    REFUSED("\x80\x04\x95\x01\0\0", "the pickle ends at byte");
}

static void test_lengths(void **state)
{
    (void)state;
    REFUSED("\x80\x02X\xff\xff\xff\xff" "abc.", "a 4294967295-byte string runs past the end");
    REFUSED("\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\xff" "abc.", "string runs past the end");
    REFUSED("\x80\x04\x8c\x05" "ab.", "string runs past the end");
    REFUSED("\x80\x02\x8a\xff" "\x01\x02.", "255-byte integer");
    REFUSED("\x80\x02\x8a\x09" "\x01\x02\x03\x04\x05\x06\x07\x08\x09.", "9-byte integer");
    REFUSED("\x80\x02X\x02\0\0\0\xc3\x28.", "not valid UTF-8");
    REFUSED("\x80\x02X\x03\0\0\0\xed\xa0\x80.", "not valid UTF-8"); /* a surrogate */
    REFUSED("\x80\x02J\x01\x02", "the pickle ends at byte");
    REFUSED("\x80\x02N", "ends without STOP");
    REFUSED("", "the pickle ends without STOP");
}

static void test_memo_and_stack(void **state)
{
    (void)state;
    REFUSED("\x80\x02h\x05.", "memo key 5 was never stored");
    REFUSED("\x80\x02j\xff\xff\xff\xff.", "memo key 4294967295 was never stored");
    REFUSED("\x80\x02Nr\xff\xff\xff\xff.", "memo key 4294967295 is over baton's limit");
    REFUSED("\x80\x02Nr\x40\x42\x0f\x00.", "memo key 1000000 is over baton's limit");
    REFUSED("\x80\x02q\x00N.", "the stack is empty");
    REFUSED("\x80\x04\x94N.", "the stack is empty");
    REFUSED("\x80\x02N(q\x00.", "the stack is empty above the mark");
    REFUSED("\x80\x02R.", "the stack is empty");
    REFUSED("\x80\x02Nt.", "no MARK to pop to");
    REFUSED("\x80\x02N(N\x86.", "fewer than 2 values on the stack");
    REFUSED("\x80\x02}(N.", "STOP with a MARK still open");
    REFUSED("\x80\x02NN.", "STOP with 2 values on the stack");
    REFUSED("\x80\x02.", "STOP with 0 values");
    REFUSED("\x80\x02}(Nu.", "1 items for key/value pairs");
    REFUSED("\x80\x02]NNs.", "setting items on a list");
    REFUSED("\x80\x02}Na.", "appending to a dict");
    REFUSED("\x80\x02]NNe.", "no MARK to pop to");
    REFUSED("N.", "does not start with PROTO");
    REFUSED("\x80\x06N.", "pickle protocol 6");
    REFUSED("\x80\x01N.", "pickle protocol 1");
    REFUSED("\x80\x02N\x80\x02.", "PROTO after the start");
    REFUSED("\x80\x02NN\x85R.", "calling a None");
    REFUSED("\x80\x02" "ccollections\nOrderedDict\nNR.", "the arguments are a None, not a tuple");
    REFUSED("\x80\x02NNb.", "setting the state of a None");
    REFUSED("\x80\x02]}b.", "setting the state of a list");
    REFUSED("\x80\x02}}b.", "setting the state of a plain dict");
    REFUSED("\x80\x02NQ.", "persistent id must be");
    /* marks: 10001 nested */
    buf p = {0};
    byte(&p, 0x80), byte(&p, 2);
    for (int i = 0; i < 10001; i++) byte(&p, '(');
    byte(&p, '.');
    expect_pickle_refused(&p, "more than 10000 nested marks");
    /* values: a million and one Nones in a list */
    p.n = 2;
    byte(&p, ']'), byte(&p, '(');
    for (int i = 0; i < 1000001; i++) byte(&p, 'N');
    byte(&p, 'e'), byte(&p, '.');
    expect_pickle_refused(&p, "more than 1000000 values");
    /* slots: a list appended to itself 900,000 times, five times over (the stack stays under its limit) */
    p.n = 2;
    byte(&p, ']'), byte(&p, 'q'), byte(&p, 0);
    for (int k = 0; k < 5; k++) {
        byte(&p, '(');
        for (int i = 0; i < 900000; i++) byte(&p, 'h'), byte(&p, 0);
        byte(&p, 'e');
    }
    byte(&p, '.');
    expect_pickle_refused(&p, "containers hold more than 4000000 items");
    free(p.b);
}

/* ------------------------------------------------------------------ storages and tensors */

static void tensor_refused(const char *name, const char *type, const char *key, long numel, long offset, int nd,
                           const long *shape, const long *stride, const char *want)
{
    buf p = {0};
    sd_begin(&p);
    pk_tensor(&p, name, type, key, numel, offset, nd, shape, stride);
    sd_end(&p);
    expect_pickle_refused(&p, want);
    free(p.b);
}

static void test_storages_and_views(void **state)
{
    (void)state;
    static const long s7[] = {7}, s9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    tensor_refused("w", "FloatStorage", "9", 6, 0, 2, S23, ST23, "member 'arc/data/9' is missing");
    tensor_refused("w", "FloatStorage", "../0", 6, 0, 2, S23, ST23, "storage key must be");
    tensor_refused("w", "FloatStorage", "", 6, 0, 2, S23, ST23, "storage key must be");
    tensor_refused("w", "FloatStorage", "0", 7, 0, 1, s7, ST1, "7 F32 elements need 28 bytes but member 'arc/data/0' has 24");
    tensor_refused("w", "DoubleStorage", "0", 6, 0, 2, S23, ST23, "6 F64 elements need 48 bytes");
    tensor_refused("w", "FloatStorage", "0", 6, 0, 1, s7, ST1, "reaches past the end of storage '0'");
    tensor_refused("w", "FloatStorage", "0", 6, 1, 2, S23, ST23, "reaches past the end of storage '0'");
    tensor_refused("w", "FloatStorage", "0", 6, 0, 2, S23, (const long[]){3, 2}, "reaches past the end");
    tensor_refused("w", "FloatStorage", "0", 6, 0, 9, s9, s9, "9 dimensions: baton reads at most 8");
    tensor_refused("w", "FloatStorage", "0", 6, 0, 2, (const long[]){2147483647, 2147483647},
                   (const long[]){0, 0}, "view with 4611686014132420609 elements over a storage of 6");
    /* a view repeating one element: refused rather than copied into a huge buffer */
    tensor_refused("w", "FloatStorage", "0", 6, 0, 1, (const long[]){1000}, (const long[]){0},
                   "strides repeat elements");
    /* the same key as two types */
    buf p = {0};
    sd_begin(&p);
    pk_tensor(&p, "a", "FloatStorage", "0", 6, 0, 2, S23, ST23);
    pk_tensor(&p, "b", "IntStorage", "0", 6, 0, 2, S23, ST23);
    sd_end(&p);
    expect_pickle_refused(&p, "storage '0' is named twice with different types");
    /* the same name twice in the state dict */
    p.n = 0;
    sd_begin(&p);
    pk_tensor(&p, "a", "FloatStorage", "0", 6, 0, 2, S23, ST23);
    pk_tensor(&p, "a", "FloatStorage", "0", 6, 0, 2, S23, ST23);
    sd_end(&p);
    expect_pickle_refused(&p, "tensor 'a' appears twice");
    free(p.b);
    /* a storage member with a wrong CRC, compressed, encrypted */
    p = std_pickle();
    size_t len;
    member m = {"arc/data/0", W6, sizeof W6, 0, 0, 1, 0};
    uint8_t *b = pt_file_ex(&p, &m, 1, 0, &len);
    expect_refused_buf(b, len, "member 'arc/data/0' fails its CRC-32 check");
    free(b);
    m.bad_crc = 0, m.zero_crc = 1; /* "not computed": accepted */
    b = pt_file_ex(&p, &m, 1, 0, &len);
    bt_st_file *f = open_ok(b, len);
    bt_st_close(f);
    free(b);
    m.zero_crc = 0, m.method = 8;
    b = pt_file_ex(&p, &m, 1, 0, &len);
    expect_refused_buf(b, len, "member 'arc/data/0' is compressed (zip method 8)");
    free(b);
    m.method = 0, m.flags = 1;
    b = pt_file_ex(&p, &m, 1, 0, &len);
    expect_refused_buf(b, len, "member 'arc/data/0' is encrypted");
    free(b);
    free(p.b);
}

static void rebuild_refused(const char *args, size_t n, const char *fn, const char *want)
{
    /* {'w': fn(<args>)} with args raw pickle bytes after the storage */
    buf p = {0};
    sd_begin(&p);
    pk_str(&p, "w");
    pk_global(&p, "torch._utils", fn);
    byte(&p, '(');
    byte(&p, '('), pk_str(&p, "storage"), pk_global(&p, "torch", "FloatStorage"), pk_str(&p, "0"), pk_str(&p, "cpu"),
        pk_int(&p, 6), byte(&p, 't'), byte(&p, 'Q');
    put(&p, args, n);
    byte(&p, 't'), byte(&p, 'R');
    sd_end(&p);
    expect_pickle_refused(&p, want);
    free(p.b);
}
#define REBUILD(args, fn, want) rebuild_refused(args, sizeof args - 1, fn, want)

static void test_rebuild_args(void **state)
{
    (void)state;
    REBUILD("K\x00(K\x06t(K\x01t\x89", "_rebuild_tensor_v2", "with 5 arguments, not 6 or 7");
    REBUILD("K\x00(K\x06t(K\x01tK\x01" "ccollections\nOrderedDict\n)R", "_rebuild_tensor_v2",
            "requires_grad must be a bool");
    /* non-empty backward hooks: hooks are code */
    REBUILD("K\x00(K\x06t(K\x01t\x89" "ccollections\nOrderedDict\n)RNNs", "_rebuild_tensor_v2",
            "hooks are code, baton refuses them");
    REBUILD("K\x00(K\x06t(K\x01t\x89}", "_rebuild_tensor_v2", "an empty OrderedDict");
    REBUILD("K\x00(K\x06t(K\x01t\x89" "ccollections\nOrderedDict\n)R}X\x01\0\0\0aNs", "_rebuild_tensor_v2",
            "the tensor carries metadata");
    REBUILD("K\x00(K\x06t(K\x01t\x89" "ccollections\nOrderedDict\n)RNN", "_rebuild_tensor_v2",
            "with 8 arguments");
    REBUILD("N(K\x06t(K\x01t", "_rebuild_tensor", "storage offset is not an int >= 0");
    REBUILD("J\xff\xff\xff\xff(K\x06t(K\x01t", "_rebuild_tensor", "storage offset is not an int >= 0");
    REBUILD("K\x00N(K\x01t", "_rebuild_tensor", "size is a None, not a tuple of ints");
    REBUILD("K\x00(K\x06t(J\xff\xff\xff\xfft", "_rebuild_tensor", "stride[0] is not an int >= 0");
    REBUILD("K\x00(K\x06t(K\x01K\x01t", "_rebuild_tensor", "1 sizes but 2 strides");
    REBUILD("K\x00(K\x06t", "_rebuild_tensor", "with 3 arguments, not 4");
    REBUILD("K\x00(K\x06t(K\x01t", "_rebuild_parameter", "_rebuild_parameter takes (tensor, requires_grad");
    /* OrderedDict with arguments; a storage type called; a persistent id of the wrong shape */
    REFUSED("\x80\x02" "ccollections\nOrderedDict\n(]t" "R.", "OrderedDict with 1 arguments");
    REFUSED("\x80\x02" "ctorch\nFloatStorage\n)R.", "a storage type is called");
    REFUSED("\x80\x02(X\x07\0\0\0storageNX\x01\0\0\0" "0X\x03\0\0\0cpuK\x06tQ.", "a storage's type is a None");
    REFUSED("\x80\x02(X\x07\0\0\0storage" "ctorch\nFloatStorage\nX\x01\0\0\0" "0NK\x06tQ.", "location must be a str");
    REFUSED("\x80\x02(X\x04\0\0\0blobNNNNtQ.", "persistent id must be ('storage'");
    REFUSED("\x80\x02(X\x07\0\0\0storage" "ctorch\nFloatStorage\nX\x01\0\0\0" "0X\x03\0\0\0cpuJ\xff\xff\xff\xfftQ.",
            "numel an int >= 0");
}

static void test_results(void **state)
{
    (void)state;
    REFUSED("\x80\x02]\x2e", "the pickle holds a list, not a state dict");
    REFUSED("\x80\x02K\x01.", "the pickle holds a int, not a state dict");
    REFUSED("\x80\x02}X\x01\0\0\0wK\x01s.", "'w' holds a int, not a tensor");
    REFUSED("\x80\x02}X\x01\0\0\0w}s.", "'w' holds a dict, not a tensor: the file is not a plain state dict");
    REFUSED("\x80\x02}K\x01Ns.", "state dict key 0 is a int, not a name");
    REFUSED("\x80\x02}X\0\0\0\0Ns.", "state dict key 0 is not a name");
    REFUSED("\x80\x02}X\x03\0\0\0a\0bNs.", "state dict key 0 is not a name");
    REFUSED("\x80\x02}X\x03\0\0\0a\x1b[Ns.", "state dict key 0 is not a name");
    REFUSED("\x80\x02}X\x01\0\0\0w(X\x07\0\0\0storage" "ctorch\nFloatStorage\nX\x01\0\0\0" "0X\x03\0\0\0cpuK\x06tQs.",
            "'w' holds a storage, not a tensor");
    /* an empty state dict is a valid file with no tensors */
    buf p = {0};
    put(&p, "\x80\x02}.", 4);
    size_t len;
    uint8_t *b = pt_file(&p, &len);
    bt_st_file *f = open_ok(b, len);
    assert_int_equal(bt_st_count(f), 0);
    bt_st_close(f);
    free(b);
    free(p.b);
}

/* ------------------------------------------------------------------ limits of the tensor table */

/* PROTO, OrderedDict() whose _metadata (BUILD: parsed, ignored) holds the building blocks
 * fn=memo 1, storage=memo 2, 0=memo 3, (2,3)=memo 4, strides=memo 5, False=memo 6,
 * OrderedDict()=memo 7, name=memo 8, a tensor=memo 9; then MARK for the entries. */
static void limits_prelude(buf *p, const char *name, const long *stride)
{
    byte(p, 0x80), byte(p, 2);
    pk_odict(p);
    byte(p, '}'), byte(p, '(');
    pk_str(p, "_");
    byte(p, '(');
    pk_global(p, "torch._utils", "_rebuild_tensor_v2"), byte(p, 'q'), byte(p, 1);
    byte(p, '('), pk_str(p, "storage"), pk_global(p, "torch", "FloatStorage"), pk_str(p, "0"), pk_str(p, "cpu"),
        pk_int(p, 6), byte(p, 't'), byte(p, 'Q'), byte(p, 'q'), byte(p, 2);
    pk_int(p, 0), byte(p, 'q'), byte(p, 3);
    pk_tuple(p, S23, 2), byte(p, 'q'), byte(p, 4);
    pk_tuple(p, stride, 2), byte(p, 'q'), byte(p, 5);
    byte(p, 0x89), byte(p, 'q'), byte(p, 6);
    pk_odict(p), byte(p, 'q'), byte(p, 7);
    pk_str(p, name), byte(p, 'q'), byte(p, 8);
    /* one tensor, memo 9 */
    byte(p, 'h'), byte(p, 1), byte(p, '(');
    for (int k = 2; k <= 7; k++) byte(p, 'h'), byte(p, k);
    byte(p, 't'), byte(p, 'R'), byte(p, 'q'), byte(p, 9);
    byte(p, 't'), byte(p, 'u'), byte(p, 'b'), byte(p, '(');
}

static void test_limits(void **state)
{
    (void)state;
    /* 200,001 tensors made: refused when made, before any table grows further */
    buf p = {0};
    limits_prelude(&p, "k", ST23);
    for (int i = 0; i < 200001; i++) {
        byte(&p, 'h'), byte(&p, 8), byte(&p, 'h'), byte(&p, 1), byte(&p, '(');
        for (int k = 2; k <= 7; k++) byte(&p, 'h'), byte(&p, k);
        byte(&p, 't'), byte(&p, 'R');
    }
    byte(&p, 'u'), byte(&p, '.');
    expect_pickle_refused(&p, "more than 200000 tensors");
    /* a dict of 200,001 entries */
    p.n = 0;
    limits_prelude(&p, "k", ST23);
    for (int i = 0; i < 200001; i++) byte(&p, 'h'), byte(&p, 8), byte(&p, 'N');
    byte(&p, 'u'), byte(&p, '.');
    expect_pickle_refused(&p, "the state dict has 200001 entries, over baton's limit of 200000");
    /* one 4 KB name for 8,193 entries of one tensor: 32 MB of names */
    char name[4097];
    memset(name, 'n', 4096);
    name[4096] = '\0';
    p.n = 0;
    limits_prelude(&p, name, ST23);
    for (int i = 0; i < 8193; i++) byte(&p, 'h'), byte(&p, 8), byte(&p, 'h'), byte(&p, 9);
    byte(&p, 'u'), byte(&p, '.');
    expect_pickle_refused(&p, "the tensor names add up to more than 33554432 bytes");
    /* one transposed view under 1,000 names: the copies would outweigh the file */
    p.n = 0;
    limits_prelude(&p, "t", (const long[]){1, 2});
    char key[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "v%d", i);
        pk_str(&p, key), byte(&p, 'h'), byte(&p, 9);
    }
    byte(&p, 'u'), byte(&p, '.');
    expect_pickle_refused(&p, "the strided views copied add up to more than the file's");
    free(p.b);
}

/* ------------------------------------------------------------------ files and zips */

static void test_not_zip(void **state)
{
    (void)state;
    uint8_t legacy[64] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
    expect_refused_buf(legacy, sizeof legacy, "legacy format (PyTorch < 1.6 wrote a bare pickle stream)");
    uint8_t tar[1024] = "archive/";
    memcpy(tar + 257, "ustar", 5);
    expect_refused_buf(tar, sizeof tar, "legacy tar format");
    uint8_t st[24] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
    expect_refused_buf(st, 16, "a safetensors file under a PyTorch name");
    expect_refused_buf((const uint8_t *)"hello world", 11, "not a PyTorch file");
    expect_refused_buf((const uint8_t *)"", 0, "not a PyTorch file");
    expect_refused_buf((const uint8_t *)"PK\3\4", 4, "too short for a zip archive");
}

static void test_layout(void **state)
{
    (void)state;
    buf p = std_pickle();
    size_t len;
    uint8_t *b;
    struct {
        member m[2];
        size_t n;
        const char *want;
    } cases[] = {
        {{MEMBER("arc/byteorder", "big", 3)}, 1, "big-endian"},
        {{MEMBER("arc/byteorder", "middle", 6)}, 1, "byteorder member says 'middle'"},
        {{MEMBER("arc/version", NULL, 0)}, 1, "no 'arc/version' member"},
        {{MEMBER("arc/version", "99\n", 3)}, 1, "format version '99' is not one baton knows"},
        {{MEMBER("arc/version", "x", 1)}, 1, "format version 'x'"},
        {{MEMBER("arc/data.pkl", NULL, 0)}, 1, "a zip archive without <folder>/data.pkl"},
        {{MEMBER("other/data.pkl", "\x80\x02}.", 4)}, 1, "two pickles"},
        {{MEMBER("arc/constants.pkl", "\x80\x02).", 4), MEMBER("arc/code/m.py", "x", 1)}, 2, "a TorchScript archive"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        b = pt_file_ex(&p, cases[i].m, cases[i].n, 0, &len);
        expect_refused_buf(b, len, cases[i].want);
        free(b);
    }
    /* version in .data/version (newer PyTorch) and no byteorder (older): accepted */
    member m[3] = {MEMBER("arc/version", NULL, 0), MEMBER("arc/.data/version", "3\n", 2), MEMBER("arc/byteorder", NULL, 0)};
    b = pt_file_ex(&p, m, 3, 0, &len);
    bt_st_file *f = open_ok(b, len);
    bt_st_close(f);
    free(b);
    /* data.pkl over the limit (its size from the directory is checked before reading) */
    b = pt_file(&p, &len);
    uint8_t *cd = memmem(b, len, "PK\1\2", 4); /* the first directory entry is data.pkl */
    uint32_t big = BT_PT_MAX_PICKLE + 1;
    memcpy(cd + 20, &big, 4);
    memcpy(cd + 24, &big, 4);
    expect_refused_buf(b, len, "over baton's limit of 33554432");
    free(b);
    free(p.b);
}

/* Byte patches of the zip structure: each offset, count and size lies. */
static void patch32(uint8_t *b, size_t at, uint32_t v) { memcpy(b + at, &v, 4); }
static void patch16(uint8_t *b, size_t at, uint16_t v) { memcpy(b + at, &v, 2); }

static void test_bad_zip(void **state)
{
    (void)state;
    buf p = std_pickle();
    size_t len;
    uint8_t *b = pt_file(&p, &len);
    size_t eocd = len - 22, cd = (size_t)((uint8_t *)memmem(b, len, "PK\1\2", 4) - b);
    uint8_t *w = malloc(len);
#define CASE(stmt, want)                                                                                              \
    do {                                                                                                              \
        memcpy(w, b, len);                                                                                            \
        stmt;                                                                                                         \
        expect_refused_buf(w, len, want);                                                                             \
    } while (0)
    CASE(patch32(w, eocd + 16, (uint32_t)len), "central directory [");                /* offset past the end */
    CASE(patch32(w, eocd + 12, (uint32_t)len), "lies outside the file");              /* size past the end */
    CASE(patch16(w, eocd + 10, 6), "multi-volume");                                   /* count mismatch */
    CASE((patch16(w, eocd + 8, 6), patch16(w, eocd + 10, 6)), "is missing or cut short");
    CASE((patch16(w, eocd + 8, 4), patch16(w, eocd + 10, 4)), "bytes after its 4 entries");
    CASE((patch16(w, eocd + 8, 60000), patch16(w, eocd + 10, 60000)), "60000 members");
    CASE(patch16(w, eocd + 4, 1), "multi-volume");
    CASE(patch16(w, eocd + 20, 5), "no zip end-of-central-directory record");        /* comment past the end */
    CASE(patch32(w, eocd, 0), "no zip end-of-central-directory record");
    CASE(patch32(w, cd, 0), "central directory entry 0 at byte");
    CASE(patch16(w, cd + 28, 60000), "runs past the directory");                      /* name length */
    CASE(patch16(w, cd + 30, 3), "entry 1 at byte");                                  /* extra length */
    CASE(patch32(w, cd + 42, (uint32_t)cd), "no local header at byte");                /* local offset = the directory */
    CASE(patch32(w, cd + 42, 0xFFFFFFF0u), "no local header at byte");
    CASE(patch32(w, cd + 42, 0xFFFFFFFFu), "no ZIP64 extra field");
    CASE(patch32(w, cd + 20, 0xFFFFFFF0u), "is stored but its sizes differ");
    /* data/0 (the second entry: 46 + 12 bytes after the first) claims 2 GB */
    CASE((patch32(w, cd + 58 + 20, 0x7FFFFFF0u), patch32(w, cd + 58 + 24, 0x7FFFFFF0u)),
         "member 'arc/data/0': its 2147483632 bytes");
    size_t l1 = (size_t)((uint8_t *)memmem(b + 4, len - 4, "PK\3\4", 4) - b); /* data/0's local header */
    CASE(patch32(w, l1, 0), "member 'arc/data/0': no local header at byte");
    CASE(w[30] = 'x', "its local header names another member");
    CASE(patch16(w, 28, 0xFFFF), "run past the start of the directory");               /* local extra length */
    CASE(patch16(w, cd + 34, 3), "starts on disk 3");
    CASE(w[cd + 46 + 4] = 0, "has a control byte in its name");
    CASE(w[cd + 46 + 4] = 0x1b, "has a control byte in its name");
    /* the pickle's own CRC */
    CASE(w[30 + 12 + 5] ^= 1, "member 'arc/data.pkl' fails its CRC-32 check");
    /* a duplicate name: rename data/1 to data/0 in the directory and the local header */
    {
        memcpy(w, b, len);
        uint8_t *x = w;
        for (int k = 0; k < 2; k++) {
            x = memmem(x, len - (size_t)(x - w), "arc/data/1", 10);
            x[9] = '0';
            x += 10;
        }
        expect_refused_buf(w, len, "member 'arc/data/0' appears twice");
    }
#undef CASE
    free(w);
    free(b);
    /* ZIP64: the locator pointing outside, a missing record, a short extra field */
    b = pt_file_ex(&p, NULL, 0, 1, &len);
    w = malloc(len);
    size_t loc = len - 22 - 20;
    memcpy(w, b, len);
    patch32(w, loc + 8, (uint32_t)len);
    expect_refused_buf(w, len, "ZIP64 end record offset");
    memcpy(w, b, len);
    patch32(w, loc, 0);
    expect_refused_buf(w, len, "no ZIP64 locator");
    memcpy(w, b, len);
    patch32(w, loc - 56, 0);
    expect_refused_buf(w, len, "no ZIP64 end record at byte");
    memcpy(w, b, len);
    size_t cd64 = (size_t)((uint8_t *)memmem(w, len, "PK\1\2", 4) - w);
    patch16(w, cd64 + 46 + 12 + 2, 8); /* the ZIP64 field of arc/data.pkl claims 8 bytes: 24 needed */
    expect_refused_buf(w, len, "extra field");
    free(w);
    free(b);
    free(p.b);
}

/* ------------------------------------------------------------------ sweeps */

/* Cut the whole file at every length, and flip every byte of the pickle with
 * four masks: each variant is refused with a message, or (a flip inside a
 * name or a value) accepted; never a crash or a read past the buffer. */
static void test_sweeps(void **state)
{
    (void)state;
    buf p = std_pickle();
    size_t len;
    uint8_t *b = pt_file(&p, &len);
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *c = malloc(cut ? cut : 1);
        memcpy(c, b, cut);
        bt_st_file *f = NULL;
        bt_err_clear();
        int rc = bt_pt_open_buffer(c, cut, "cut.bin", &f);
        if (rc == 0) {
            fprintf(stderr, "a file cut to %zu of %zu bytes was accepted\n", cut, len);
            fail();
        }
        assert_true(bt_errmsg()[0] != '\0');
        free(c);
    }
    free(b);
    static const uint8_t masks[] = {0x01, 0x20, 0x80, 0xFF};
    size_t accepted = 0, refused = 0;
    for (size_t i = 2; i < p.n; i++)
        for (size_t k = 0; k < sizeof masks; k++) {
            buf q = {0};
            put(&q, p.b, p.n);
            q.b[i] ^= masks[k];
            b = pt_file(&q, &len);
            bt_st_file *f = NULL;
            bt_err_clear();
            int rc = bt_pt_open_buffer(b, len, "flip.bin", &f);
            if (rc) {
                assert_int_equal(rc, BT_EDATA);
                assert_non_null(strstr(bt_errmsg(), "flip.bin"));
                refused++;
            } else {
                accepted++;
                for (size_t t = 0; t < bt_st_count(f); t++) { /* whatever was accepted reads in bounds */
                    const bt_st_tensor *x = bt_st_get(f, t);
                    if (x->dtype == BT_ST_F32 || x->dtype == BT_ST_F16 || x->dtype == BT_ST_BF16 ||
                        x->dtype == BT_ST_F64) {
                        float *d = malloc((size_t)x->numel * sizeof *d + 1);
                        assert_int_equal(bt_st_read_f32(f, x, d), 0);
                        free(d);
                    }
                }
                bt_st_close(f);
            }
            free(b);
            free(q.b);
        }
    fprintf(stderr, "pickle flips: %zu refused, %zu accepted\n", refused, accepted);
    assert_true(refused > accepted); /* most flips break the structure */
    free(p.b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_protocol4),
        cmocka_unit_test(test_views),
        cmocka_unit_test(test_reduce_to_system),
        cmocka_unit_test(test_globals),
        cmocka_unit_test(test_refused_opcodes),
        cmocka_unit_test(test_frames),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_memo_and_stack),
        cmocka_unit_test(test_storages_and_views),
        cmocka_unit_test(test_rebuild_args),
        cmocka_unit_test(test_results),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_not_zip),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_bad_zip),
        cmocka_unit_test(test_sweeps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
