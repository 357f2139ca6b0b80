/* tests/unit/test_tokenizer_spm.c — model directories with a SentencePiece
 * model (spm.model) and no tokenizer.json (engine/tokenizer_spm.c): a small
 * Unigram ModelProto written here in protobuf wire format (control pieces
 * [PAD] [CLS] [SEP], [UNK], a user-defined <br>, scored pieces), loaded and
 * encoded (Strip, Metaspace, Viterbi by score, the [CLS]/[SEP] template, pair
 * type ids, [MASK] after the pieces, do_lower_case, split_by_punct,
 * tokenizer.json winning when present); unsupported and damaged files
 * refused with the file named: every truncation and 2,000 random byte
 * changes, never a crash (also under ASan/UBSan); the same model as XLM-R's
 * sentencepiece.bpe.model (fairseq ids). Whole-data parity with
 * Transformers lives in tests/reference/test_spm_parity.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/tokenizer.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_dir[64];

typedef struct {
    uint8_t b[4096];
    size_t n;
} buf;

static void put_varint(buf *o, uint64_t v)
{
    do {
        o->b[o->n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
}

static void put_bytes(buf *o, uint32_t field, const void *s, size_t n)
{
    put_varint(o, (uint64_t)field << 3 | 2);
    put_varint(o, n);
    memcpy(o->b + o->n, s, n);
    o->n += n;
}

static void put_piece(buf *o, const char *piece, float score, int type)
{
    buf p = {{0}, 0};
    put_bytes(&p, 1, piece, strlen(piece));
    uint32_t u;
    memcpy(&u, &score, 4);
    put_varint(&p, 2 << 3 | 5);
    for (int i = 0; i < 4; i++) p.b[p.n++] = (uint8_t)(u >> (8 * i));
    if (type != 1) {
        put_varint(&p, 3 << 3);
        put_varint(&p, (uint64_t)type);
    }
    put_bytes(o, 1, p.b, p.n);
}

/* ids: [PAD]0 [CLS]1 [SEP]2 [UNK]3 <br>4 ▁5 ▁ab6 ▁a7 a8 b9 c10 ▁hello11 ,12 ▁,13 (14 pieces; [MASK] = 14) */
static size_t make_model(uint8_t *out, int model_type)
{
    buf o = {{0}, 0};
    put_piece(&o, "[PAD]", 0, 3);
    put_piece(&o, "[CLS]", 0, 3);
    put_piece(&o, "[SEP]", 0, 3);
    put_piece(&o, "[UNK]", 0, 2);
    put_piece(&o, "<br>", 0, 4);
    put_piece(&o, "\xe2\x96\x81", -2.0f, 1);
    put_piece(&o, "\xe2\x96\x81" "ab", -1.0f, 1);
    put_piece(&o, "\xe2\x96\x81" "a", -2.0f, 1);
    put_piece(&o, "a", -3.0f, 1);
    put_piece(&o, "b", -3.0f, 1);
    put_piece(&o, "c", -3.5f, 1);
    put_piece(&o, "\xe2\x96\x81" "hello", -1.5f, 1);
    put_piece(&o, ",", -2.5f, 1);
    put_piece(&o, "\xe2\x96\x81" ",", -2.5f, 1);
    buf t = {{0}, 0}; /* trainer_spec: model_type, vocab_size, unk_id */
    put_varint(&t, 3 << 3);
    put_varint(&t, (uint64_t)model_type);
    put_varint(&t, 4 << 3);
    put_varint(&t, 14);
    put_varint(&t, 40 << 3);
    put_varint(&t, 3);
    put_bytes(&o, 2, t.b, t.n);
    buf nm = {{0}, 0}; /* normalizer_spec: name, add_dummy_prefix */
    put_bytes(&nm, 1, "identity", 8);
    put_varint(&nm, 3 << 3);
    put_varint(&nm, 1);
    put_bytes(&o, 3, nm.b, nm.n);
    memcpy(out, o.b, o.n);
    return o.n;
}

static void write_file(const char *name, const void *data, size_t n)
{
    char p[160];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void remove_file(const char *name)
{
    char p[160];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    unlink(p);
}

static const char *ids(bt_tokenizer *t, const char *a, const char *b, char *out, size_t cap)
{
    bt_encoding enc;
    bt_encoding_init(&enc);
    int rc = b ? bt_encode_pair(t, a, strlen(a), b, strlen(b), NULL, &enc) : bt_encode(t, a, strlen(a), NULL, &enc);
    if (rc) fprintf(stderr, "encode failed: %s\n", bt_errmsg());
    assert_int_equal(rc, 0);
    size_t o = 0;
    out[0] = 0;
    for (size_t i = 0; i < enc.len; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%d%s", i ? " " : "", enc.input_ids[i],
                              enc.token_type_ids[i] ? "'" : "");
    bt_encoding_free(&enc);
    return out;
}

static bt_tokenizer *load(const char *config)
{
    uint8_t m[4096];
    size_t n = make_model(m, 1);
    write_file("spm.model", m, n);
    if (config) write_file("tokenizer_config.json", config, strlen(config));
    else remove_file("tokenizer_config.json");
    bt_tokenizer *t = NULL;
    int rc = bt_tokenizer_load(g_dir, &t);
    if (rc) fprintf(stderr, "load failed: %s\n", bt_errmsg());
    assert_int_equal(rc, 0);
    return t;
}

static void test_encode(void **state)
{
    (void)state;
    char o[512];
    bt_tokenizer *t = load(NULL);
    assert_string_equal(bt_tokenizer_source(t), "spm.model");
    assert_int_equal(bt_tokenizer_vocab_size(t), 15); /* 14 pieces + [MASK] */
    bt_special_ids sp = bt_tokenizer_special_ids(t);
    assert_int_equal(sp.cls, 1);
    assert_int_equal(sp.sep, 2);
    assert_int_equal(sp.pad, 0);
    assert_int_equal(sp.unk, 3);
    assert_int_equal(sp.mask, 14);
    assert_string_equal(ids(t, "  ab   a  ", NULL, o, sizeof o), "1 6 7 2");   /* Strip, spaces collapse */
    assert_string_equal(ids(t, "hello,ab", NULL, o, sizeof o), "1 11 12 8 9 2"); /* no punctuation split */
    assert_string_equal(ids(t, "ab<br>[MASK]x", NULL, o, sizeof o), "1 6 4 14 5 3 2");
    assert_string_equal(ids(t, "ABC", NULL, o, sizeof o), "1 5 3 2");          /* cased: unknowns fused */
    assert_string_equal(ids(t, "a", "b c", o, sizeof o), "1 7 2 5' 9' 5' 10' 2'");
    bt_tokenizer_free(t);
    t = load("{\"do_lower_case\": true}");
    assert_string_equal(ids(t, "AB", NULL, o, sizeof o), "1 6 2");
    bt_tokenizer_free(t);
    t = load("{\"split_by_punct\": true}");
    assert_string_equal(ids(t, "hello,ab", NULL, o, sizeof o), "1 11 13 6 2"); /* "▁hello" "▁," "▁ab": each piece prepended */
    bt_tokenizer_free(t);
    /* tokenizer.json beside spm.model wins */
    const char *tj = "{\"model\":{\"type\":\"WordLevel\",\"vocab\":{\"[UNK]\":0,\"ab\":1},\"unk_token\":\"[UNK]\"},"
                     "\"pre_tokenizer\":{\"type\":\"WhitespaceSplit\"}}";
    write_file("tokenizer.json", tj, strlen(tj));
    t = load(NULL);
    assert_string_equal(bt_tokenizer_source(t), "tokenizer.json");
    assert_string_equal(ids(t, "ab x", NULL, o, sizeof o), "1 0");
    bt_tokenizer_free(t);
    remove_file("tokenizer.json");
}

static int load_named(const char *name, const uint8_t *m, size_t n)
{
    write_file(name, m, n);
    bt_tokenizer *t = NULL;
    int rc = bt_tokenizer_load(g_dir, &t);
    if (!rc) {
        char o[4096];
        ids(t, "ab a hello, c<br>[MASK]", "x", o, sizeof o);
        bt_tokenizer_free(t);
    } else {
        assert_non_null(strstr(bt_errmsg(), name));
    }
    return rc;
}

static int load_bytes(const uint8_t *m, size_t n)
{
    return load_named("spm.model", m, n);
}

static void test_refused(void **state)
{
    (void)state;
    remove_file("tokenizer_config.json");
    uint8_t m[4096];
    size_t n = make_model(m, 2);
    assert_int_equal(load_bytes(m, n), BT_ECONFIG); /* BPE */
    assert_non_null(strstr(bt_errmsg(), "only Unigram"));
    n = make_model(m, 1);
    assert_int_equal(load_bytes(m, 0), BT_EDATA);
    assert_non_null(strstr(bt_errmsg(), "not a valid SentencePiece model (it has no pieces)"));
    assert_int_equal(load_bytes(m, n - 1), BT_EDATA);
    assert_non_null(strstr(bt_errmsg(), "runs past the end"));
    write_file("tokenizer_config.json", "{\"do_lower_case\": ", 18);
    write_file("spm.model", m, n);
    bt_tokenizer *t = NULL;
    assert_int_not_equal(bt_tokenizer_load(g_dir, &t), 0);
    assert_non_null(strstr(bt_errmsg(), "tokenizer_config.json"));
    remove_file("tokenizer_config.json");
    size_t refused = 0;
    for (size_t k = 0; k < n; k++) refused += load_bytes(m, k) != 0; /* every truncation */
    srand(22);
    for (int i = 0; i < 2000; i++) {
        uint8_t d[4096];
        memcpy(d, m, n);
        for (int j = 1 + rand() % 3; j > 0; j--) d[rand() % n] = (uint8_t)rand();
        refused += load_bytes(d, n) != 0;
    }
    assert_true(refused > 500);
}

/* XLM-R's sentencepiece.bpe.model: fairseq ids (<s> <pad> </s> <unk>, the
 * pieces from the fourth on shifted by one, <mask> last), <s> A </s></s> B </s> */
static void test_xlmr(void **state)
{
    (void)state;
    char o[512];
    uint8_t m[4096];
    size_t n = make_model(m, 1);
    remove_file("spm.model");
    remove_file("tokenizer_config.json");
    write_file("sentencepiece.bpe.model", m, n);
    bt_tokenizer *t = NULL;
    assert_int_equal(bt_tokenizer_load(g_dir, &t), 0);
    assert_string_equal(bt_tokenizer_source(t), "sentencepiece.bpe.model");
    assert_int_equal(bt_tokenizer_vocab_size(t), 16);
    bt_special_ids sp = bt_tokenizer_special_ids(t);
    assert_int_equal(sp.cls, 0);
    assert_int_equal(sp.pad, 1);
    assert_int_equal(sp.sep, 2);
    assert_int_equal(sp.unk, 3);
    assert_int_equal(sp.mask, 15);
    assert_string_equal(ids(t, "ab  a", "b", o, sizeof o), "0 7 8 2 2 6 10 2");
    assert_string_equal(ids(t, "x <mask>", NULL, o, sizeof o), "0 6 3 15 2"); /* <mask> takes the space before it */
    bt_tokenizer_free(t);
    assert_int_equal(load_named("sentencepiece.bpe.model", m, 9), BT_EDATA);
    srand(23);
    for (int i = 0; i < 500; i++) {
        uint8_t d[4096];
        memcpy(d, m, n);
        d[rand() % n] = (uint8_t)rand();
        load_named("sentencepiece.bpe.model", d, n);
    }
    remove_file("sentencepiece.bpe.model");
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/baton-spm-XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    remove_file("spm.model");
    remove_file("tokenizer_config.json");
    remove_file("tokenizer.json");
    remove_file("sentencepiece.bpe.model");
    rmdir(g_dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_xlmr),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
