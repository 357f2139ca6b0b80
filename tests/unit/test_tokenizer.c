/* tests/unit/test_tokenizer.c — the BERT tokenizer's pieces: normalizer,
 * pre-tokenizer, WordPiece, special tokens, truncation arithmetic, padding,
 * loading, invalid UTF-8, and random bytes (never a crash). Parity with the
 * reference on real data lives in tests/reference/test_tokenizer_parity.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/tokenizer.h"
#include "engine/tokenizer_unicode.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char VOCAB[] =
    "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n" /* 0-4 */
    "un\n##aff\n##able\nhello\nworld\n"    /* 5-9 */
    ",\n!\na\n##a\nb\n"                   /* 10-14 */
    "cafe\ncafé\n[\n]\nmask\n"             /* 15-19 */
    "你\n好\ni\n##̇\nhe\n##llo\n";          /* 20-25 */

static bt_tokenizer *make(int lower, int strip)
{
    bt_tokenizer_config cfg = {lower, strip, 1, 0};
    bt_tokenizer *t = NULL;
    assert_int_equal(bt_tokenizer_from_vocab(VOCAB, sizeof VOCAB - 1, &cfg, &t), 0);
    return t;
}

/* encodes text, returns ids as "a b c" (without [CLS]/[SEP]) in buf */
static const char *ids_of(bt_tokenizer *t, const char *text, char *buf, size_t cap)
{
    bt_encoding enc;
    bt_encoding_init(&enc);
    int rc = bt_encode(t, text, strlen(text), NULL, &enc);
    assert_int_equal(rc, 0);
    assert_true(enc.len >= 2);
    assert_int_equal(enc.input_ids[0], 2);
    assert_int_equal(enc.input_ids[enc.len - 1], 3);
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 1; i + 1 < enc.len; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%d", i > 1 ? " " : "", enc.input_ids[i]);
    bt_encoding_free(&enc);
    return buf;
}

struct wbuf { char s[1024]; size_t n; };
static void on_word(const char *w, size_t n, int sp, void *ctx)
{
    struct wbuf *b = ctx;
    b->n += (size_t)snprintf(b->s + b->n, sizeof b->s - b->n, "%s%s%.*s", b->n ? "|" : "", sp ? "!" : "", (int)n, w);
}
static const char *words_of(bt_tokenizer *t, const char *text, size_t len, struct wbuf *b)
{
    bt_encoding enc;
    bt_encoding_init(&enc);
    b->n = 0;
    b->s[0] = '\0';
    assert_int_equal(bt_tokenize_words(t, text, len, 0, &enc, on_word, b), 0);
    bt_encoding_free(&enc);
    return b->s;
}

static void test_wordpiece(void **state)
{
    (void)state;
    bt_tokenizer *t = make(1, 1);
    char buf[512];
    assert_string_equal(ids_of(t, "unaffable", buf, sizeof buf), "5 6 7");
    assert_string_equal(ids_of(t, "Hello, World!", buf, sizeof buf), "8 10 9 11");
    assert_string_equal(ids_of(t, "unaffablex", buf, sizeof buf), "1");      /* an unmatched piece: whole word [UNK] */
    assert_string_equal(ids_of(t, "hello zzz hello", buf, sizeof buf), "8 1 8");
    assert_string_equal(ids_of(t, "", buf, sizeof buf), "");
    /* 100 chars is still a word, 101 is [UNK] */
    char w[128];
    memset(w, 'a', 100);
    w[100] = '\0';
    ids_of(t, w, buf, sizeof buf);
    assert_int_equal(strncmp(buf, "12 13 13", 8), 0);
    w[100] = 'a';
    w[101] = '\0';
    assert_string_equal(ids_of(t, w, buf, sizeof buf), "1");
    bt_tokenizer_free(t);
}

static void test_normalizer(void **state)
{
    (void)state;
    struct wbuf b;
    bt_tokenizer *t = make(1, 1);
    assert_string_equal(words_of(t, "Café NAÏVE", 12, &b), "cafe|naive");
    assert_string_equal(words_of(t, "e\xcc\x81t\xc3\xa9", 6, &b), "ete");            /* decomposed + composed */
    assert_string_equal(words_of(t, "a\0b\x01" "c\xef\xbf\xbd" "d", 9, &b), "abcd"); /* NUL, control, U+FFFD removed */
    assert_string_equal(words_of(t, "a\xc2\xa0" "b\xe3\x80\x80" "c\td", 10, &b), "a|b|c|d"); /* NBSP, ideographic space */
    assert_string_equal(words_of(t, "a\xe2\x80\x8b" "b", 5, &b), "ab");              /* ZWSP is Cf: removed */
    assert_string_equal(words_of(t, "x你好y", 8, &b), "x|你|好|y");
    assert_string_equal(words_of(t, "a,b.c", 5, &b), "a|,|b|.|c");
    assert_string_equal(words_of(t, "$5+3", 4, &b), "$|5|+|3");                     /* ASCII symbols are punctuation */
    assert_string_equal(words_of(t, "\xcd\xb8x", 3, &b), "\xcd\xb8x");              /* unassigned U+0378 is kept */
    assert_string_equal(words_of(t, "a\xe0\xa2\x90" "b", 5, &b), "a\xe0\xa2\x90" "b"); /* U+0890: Cf now, kept by the crate */
    assert_string_equal(words_of(t, "\xc4\xb0", 2, &b), "i");                        /* İ -> I + U+0307 (dropped) -> i */
    assert_string_equal(words_of(t, "\xce\xa3\xce\x91\xce\xa3", 6, &b), "σασ");     /* no final sigma rule */
    bt_tokenizer_free(t);

    t = make(1, 0); /* lowercase without accent stripping */
    assert_string_equal(words_of(t, "\xc4\xb0Z", 3, &b), "i\xcc\x87z");             /* U+0130 -> two chars */
    assert_string_equal(words_of(t, "Café", 5, &b), "café");
    bt_tokenizer_free(t);

    t = make(0, 0); /* cased */
    assert_string_equal(words_of(t, "Café [MASK]x", 13, &b), "Café|![MASK]|x");
    bt_tokenizer_free(t);

    /* the flag table itself */
    assert_true(toku_flags(0x2028) & TOKU_WS);
    assert_true(toku_flags(0x85) & TOKU_REMOVE);   /* NEL: Cc wins over whitespace */
    assert_true(toku_flags(0x300) & TOKU_MN);
    assert_true(toku_flags(0x300) & TOKU_CCC);
    assert_true(toku_flags(0x4E00) & TOKU_CJK);
    assert_false(toku_flags(0x2B81F + 1) & TOKU_CJK); /* the crate's gap 0x2B820..0x2B91F */
    assert_true(toku_flags(0x166D) & TOKU_PUNCT);  /* exception table: punctuation in the old tables */
    assert_false(toku_flags(0x2E52) & TOKU_PUNCT); /* newer than the crate's tables */
}

static void test_special_tokens(void **state)
{
    (void)state;
    bt_tokenizer *t = make(1, 1);
    char buf[256];
    assert_string_equal(ids_of(t, "a[MASK]b", buf, sizeof buf), "12 4 14");
    assert_string_equal(ids_of(t, "[mask]", buf, sizeof buf), "17 19 18"); /* case-sensitive, else ordinary text */
    assert_string_equal(ids_of(t, "[SEP][CLS]", buf, sizeof buf), "3 2");
    assert_string_equal(ids_of(t, "[MAS", buf, sizeof buf), "17 1");
    bt_special_ids s = bt_tokenizer_special_ids(t);
    assert_int_equal(s.pad, 0);
    assert_int_equal(s.unk, 1);
    assert_int_equal(s.cls, 2);
    assert_int_equal(s.sep, 3);
    assert_int_equal(s.mask, 4);
    assert_int_equal(bt_tokenizer_token_id(t, "##able"), 7);
    assert_int_equal(bt_tokenizer_token_id(t, "nope"), -1);
    assert_string_equal(bt_tokenizer_id_to_token(t, 8), "hello");
    assert_null(bt_tokenizer_id_to_token(t, 1000));
    assert_int_equal(bt_tokenizer_vocab_size(t), 26);
    bt_tokenizer_free(t);
}

static void test_truncation_arithmetic(void **state)
{
    (void)state;
    size_t k1, k2;
    /* longest_first, pairs (tokenizers' truncate_encodings) */
    assert_int_equal(bt_truncate_lengths(10, 3, 1, 8, BT_TRUNC_LONGEST_FIRST, &k1, &k2), 0);
    assert_int_equal(k1, 5); assert_int_equal(k2, 3);
    assert_int_equal(bt_truncate_lengths(10, 10, 1, 7, BT_TRUNC_LONGEST_FIRST, &k1, &k2), 0);
    assert_int_equal(k1, 3); assert_int_equal(k2, 4);   /* odd budget: the extra one goes to the second */
    assert_int_equal(bt_truncate_lengths(5, 5, 1, 9, BT_TRUNC_LONGEST_FIRST, &k1, &k2), 0);
    assert_int_equal(k1, 4); assert_int_equal(k2, 5);
    assert_int_equal(bt_truncate_lengths(3, 20, 1, 4, BT_TRUNC_LONGEST_FIRST, &k1, &k2), 0);
    assert_int_equal(k1, 2); assert_int_equal(k2, 2);
    assert_int_equal(bt_truncate_lengths(3, 2, 1, 10, BT_TRUNC_LONGEST_FIRST, &k1, &k2), 0);
    assert_int_equal(k1, 3); assert_int_equal(k2, 2);   /* fits: untouched */
    assert_int_equal(bt_truncate_lengths(30, 0, 0, 6, BT_TRUNC_LONGEST_FIRST, &k1, &k2), 0);
    assert_int_equal(k1, 6);
    assert_int_equal(bt_truncate_lengths(3, 4, 1, 0, BT_TRUNC_LONGEST_FIRST, &k1, &k2), 0);
    assert_int_equal(k1, 0); assert_int_equal(k2, 0);   /* budget 0 empties both */
    /* only_first / only_second */
    assert_int_equal(bt_truncate_lengths(5, 3, 1, 6, BT_TRUNC_ONLY_FIRST, &k1, &k2), 0);
    assert_int_equal(k1, 3); assert_int_equal(k2, 3);
    assert_int_equal(bt_truncate_lengths(2, 10, 1, 6, BT_TRUNC_ONLY_FIRST, &k1, &k2), BT_EDATA);
    assert_non_null(strstr(bt_errmsg(), "too short"));
    assert_int_equal(bt_truncate_lengths(2, 10, 1, 6, BT_TRUNC_ONLY_SECOND, &k1, &k2), 0);
    assert_int_equal(k1, 2); assert_int_equal(k2, 4);
    assert_int_equal(bt_truncate_lengths(6, 6, 1, 6, BT_TRUNC_ONLY_SECOND, &k1, &k2), BT_EDATA); /* 6 > 6 fails */
    assert_int_equal(bt_truncate_lengths(9, 0, 0, 6, BT_TRUNC_ONLY_SECOND, &k1, &k2), BT_EUSAGE);
    assert_int_equal(bt_truncate_lengths(3, 0, 0, 6, BT_TRUNC_ONLY_SECOND, &k1, &k2), 0); /* no cut needed */
}

static void test_encode_pair_and_padding(void **state)
{
    (void)state;
    bt_tokenizer *t = make(1, 1);
    bt_encoding enc;
    bt_encoding_init(&enc);
    bt_encode_opts o = {8, BT_TRUNC_LONGEST_FIRST, 1, 0};
    assert_int_equal(bt_encode_pair(t, "hello world", 11, "a b", 3, &o, &enc), 0);
    int32_t ids[] = {2, 8, 9, 3, 12, 14, 3, 0}, tt[] = {0, 0, 0, 0, 1, 1, 1, 0}, am[] = {1, 1, 1, 1, 1, 1, 1, 0};
    assert_int_equal(enc.len, 8);
    assert_memory_equal(enc.input_ids, ids, sizeof ids);
    assert_memory_equal(enc.token_type_ids, tt, sizeof tt);
    assert_memory_equal(enc.attention_mask, am, sizeof am);
    o.max_length = 3;
    o.pad_to_max_length = 0;
    assert_int_equal(bt_encode_pair(t, "hello", 5, "a", 1, &o, &enc), 0);
    assert_int_equal(enc.len, 3); /* [CLS] [SEP] [SEP] */
    o.max_length = 2;
    assert_int_equal(bt_encode_pair(t, "hello", 5, "a", 1, &o, &enc), BT_EUSAGE);
    o.max_length = 5;
    assert_int_equal(bt_encode(t, "hello world hello world", 23, &o, &enc), 0);
    int32_t cut[] = {2, 8, 9, 8, 3};
    assert_int_equal(enc.len, 5);
    assert_memory_equal(enc.input_ids, cut, sizeof cut);
    assert_int_equal(enc.n_first, 4);
    bt_encoding_free(&enc);
    bt_tokenizer_free(t);
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    bt_tokenizer *t = make(1, 1);
    bt_encoding enc;
    bt_encoding_init(&enc);
    static const char *bad[] = {"abc \xff", "abc \xe2\x82", "abc \xc0\xaf", "abc \xed\xa0\x80", "abc \x80",
                                "abc \xf4\x90\x80\x80", "abc \xf8\x88\x80\x80\x80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bt_encode_opts o = {0, BT_TRUNC_LONGEST_FIRST, 0, 0};
        assert_int_equal(bt_encode(t, bad[i], strlen(bad[i]), &o, &enc), BT_EDATA);
        assert_non_null(strstr(bt_errmsg(), "invalid UTF-8 at byte offset 4"));
        o.replace_invalid = 1;
        assert_int_equal(bt_encode(t, bad[i], strlen(bad[i]), &o, &enc), 0);
    }
    bt_encode_opts o = {0, BT_TRUNC_LONGEST_FIRST, 0, 1};
    assert_int_equal(bt_encode(t, "hel\xfflo", 6, &o, &enc), 0); /* the byte vanishes: one word */
    assert_int_equal(enc.len, 3);
    assert_int_equal(enc.input_ids[1], 8);
    bt_encoding_free(&enc);
    bt_tokenizer_free(t);
}

static void test_random_bytes(void **state)
{
    (void)state;
    bt_tokenizer *t = make(1, 1), *c = make(0, 0);
    bt_encoding enc;
    bt_encoding_init(&enc);
    uint64_t x = 0x243F6A8885A308D3ull;
    char buf[600];
    static const char *pieces[] = {"[MASK]", "\xcc\x81", "\xe4\xbd\xa0", "\xf0\x9f\x98\x80", " ", "hello", "##",
                                   "\xc4\xb0", "\xe2\x80\x8b", "\xef\xbf\xbd", "\xf0\x9d\x85\xa5", "\x00"};
    for (int it = 0; it < 4000; it++) {
        size_t n = 0, want = (size_t)(it % 500);
        while (n < want) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            if ((x >> 60) < 6) { /* a meaningful piece */
                const char *p = pieces[(x >> 8) % 12];
                size_t l = (x >> 8) % 12 == 11 ? 1 : strlen(p);
                if (n + l > sizeof buf) break;
                memcpy(buf + n, p, l);
                n += l;
            } else {
                buf[n++] = (char)(x >> 16);
            }
        }
        bt_tokenizer *tk = it & 1 ? c : t;
        bt_encode_opts o = {it % 3 ? 0 : 16 + it % 40, (bt_truncation)(it % 2), it % 5 == 0, 1};
        int prc = bt_encode_pair(tk, buf, n, buf, n / 2, &o, &enc);
        if (prc) { /* only_first may not be able to cut enough: an error, as in the reference */
            assert_int_equal(prc, BT_EDATA);
            assert_int_equal(o.truncation, BT_TRUNC_ONLY_FIRST);
            assert_non_null(strstr(bt_errmsg(), "too short"));
            continue;
        }
        for (size_t i = 0; i < enc.len; i++) assert_true(enc.input_ids[i] >= 0 && enc.input_ids[i] < 26);
        if (o.max_length) assert_true(enc.len <= (size_t)o.max_length);
        o.replace_invalid = 0;
        int rc = bt_encode(tk, buf, n, &o, &enc);
        assert_true(rc == 0 || rc == BT_EDATA);
    }
    bt_encoding_free(&enc);
    bt_tokenizer_free(t);
    bt_tokenizer_free(c);
}

static void write_file(const char *path, const char *s)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(s, f);
    fclose(f);
}

static void test_load_dir(void **state)
{
    (void)state;
    char dir[] = "/tmp/baton-tok-XXXXXX", p[256], q[256];
    assert_non_null(mkdtemp(dir));
    bt_tokenizer *t = NULL;
    assert_int_equal(bt_tokenizer_load(dir, &t), BT_ENOINPUT); /* no vocab.txt */
    snprintf(p, sizeof p, "%s/vocab.txt", dir);
    write_file(p, VOCAB);
    assert_int_equal(bt_tokenizer_load(dir, &t), 0);             /* no config: BERT defaults */
    assert_int_equal(bt_tokenizer_get_config(t)->lowercase, 1);
    assert_int_equal(bt_tokenizer_get_config(t)->strip_accents, 1);
    bt_tokenizer_free(t);
    snprintf(q, sizeof q, "%s/tokenizer_config.json", dir);
    write_file(q, "{\"do_lower_case\": false, \"strip_accents\": null, \"model_max_length\": 1e30,"
                  " \"unk_token\": {\"content\": \"[UNK]\", \"__type\": \"AddedToken\"}}");
    assert_int_equal(bt_tokenizer_load(dir, &t), 0);
    assert_int_equal(bt_tokenizer_get_config(t)->lowercase, 0);
    assert_int_equal(bt_tokenizer_get_config(t)->strip_accents, 0);
    assert_int_equal(bt_tokenizer_get_config(t)->model_max_length, 0);
    bt_tokenizer_free(t);
    write_file(q, "{\"do_lower_case\": \"yes\"}");
    assert_int_equal(bt_tokenizer_load(dir, &t), BT_ECONFIG);
    assert_non_null(strstr(bt_errmsg(), "do_lower_case"));
    write_file(q, "{\"do_lower_case\": true,");
    assert_int_equal(bt_tokenizer_load(dir, &t), BT_ECONFIG);
    write_file(q, "{\"unk_token\": \"<unk>\"}");
    assert_int_equal(bt_tokenizer_load(dir, &t), BT_ECONFIG);
    assert_non_null(strstr(bt_errmsg(), "<unk>"));
    assert_null(t);
    unlink(q);
    write_file(p, "[PAD]\n[UNK]\n[CLS]\n[SEP]\nbad\xff\n");
    assert_int_equal(bt_tokenizer_load(dir, &t), BT_EDATA);
    assert_non_null(strstr(bt_errmsg(), ":5:"));
    unlink(p);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wordpiece),
        cmocka_unit_test(test_normalizer),
        cmocka_unit_test(test_special_tokens),
        cmocka_unit_test(test_truncation_arithmetic),
        cmocka_unit_test(test_encode_pair_and_padding),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_load_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
