/* tests/unit/test_tokjson.c — the tokenizer.json pipeline's pieces: added
 * tokens (lstrip/rstrip/single_word/normalized), Metaspace schemes, BPE merges
 * and unknowns, Unigram Viterbi with byte_fallback, normalizers, the GPT-2
 * regex, post-processors and roles, the precompiled char map, directories
 * with both vocab.txt and tokenizer.json, and malformed files (refused with
 * the file and the JSON path named; never a crash, also under ASan/UBSan).
 * Expected ids were taken from tokenizers 0.20.3; whole-data parity lives in
 * tests/reference/test_tokenizer_json_parity.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/tokenizer.h"
#include "engine/tokjson.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_dir[64];

static void write_file(const char *name, const char *text)
{
    char p[160];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void remove_files(void)
{
    static const char *const names[] = {"tokenizer.json", "tokenizer_config.json", "vocab.txt"};
    for (size_t i = 0; i < 3; i++) {
        char p[160];
        snprintf(p, sizeof p, "%s/%s", g_dir, names[i]);
        unlink(p);
    }
}

/* a tokenizer.json from its parts (JSON fragments; NULL = null) */
static char *tj_json(const char *model, const char *norm, const char *pre, const char *post, const char *added)
{
    size_t n = strlen(model) + 4096 + (norm ? strlen(norm) : 0) + (pre ? strlen(pre) : 0) + (post ? strlen(post) : 0) +
               (added ? strlen(added) : 0);
    char *s = malloc(n);
    snprintf(s, n,
             "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[%s],\"normalizer\":%s,"
             "\"pre_tokenizer\":%s,\"post_processor\":%s,\"decoder\":null,\"model\":%s}",
             added ? added : "", norm ? norm : "null", pre ? pre : "null", post ? post : "null", model);
    return s;
}

static bt_tokenizer *load_json(const char *json, const char *config)
{
    remove_files();
    write_file("tokenizer.json", json);
    if (config) write_file("tokenizer_config.json", config);
    bt_tokenizer *t = NULL;
    int rc = bt_tokenizer_load(g_dir, &t);
    if (rc) fprintf(stderr, "load failed: %s\n", bt_errmsg());
    assert_int_equal(rc, 0);
    return t;
}

/* encodes text (single, no truncation); ids as "a b c" */
static const char *ids(bt_tokenizer *t, const char *text, char *buf, size_t cap)
{
    bt_encoding enc;
    bt_encoding_init(&enc);
    int rc = bt_encode(t, text, strlen(text), NULL, &enc);
    if (rc) fprintf(stderr, "encode failed: %s\n", bt_errmsg());
    assert_int_equal(rc, 0);
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < enc.len; i++) o += (size_t)snprintf(buf + o, cap - o, "%s%d", i ? " " : "", enc.input_ids[i]);
    bt_encoding_free(&enc);
    return buf;
}
#define IDS(t, s) ids((t), (s), buf, sizeof buf)

#define AT(c, id, extra) "{\"id\":" #id ",\"content\":\"" c "\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false," \
                         "\"normalized\":false,\"special\":true" extra "}"

/* WordLevel vocabulary shared by several tests */
static const char *WL =
    "{\"type\":\"WordLevel\",\"unk_token\":\"<unk>\",\"vocab\":{\"<unk>\":0,\"a\":1,\"b\":2,\"ab\":3,\"<m>\":4,\"x\":5,"
    "\"hello\":6,\"world\":7,\"\\u2581hello\":8,\"\\u2581world\":9,\"\\u2581\":10,\"fi\":11,\"\\u00e9\":12}}";

static void test_added_tokens(void **state)
{
    (void)state;
    char buf[512];
    /* lstrip + rstrip: the spaces around go with the token */
    char *j = tj_json(WL, NULL, "{\"type\":\"WhitespaceSplit\"}", NULL, AT("<m>", 4, ",\"lstrip\":true,\"rstrip\":true"));
    bt_tokenizer *t = load_json(j, NULL);
    assert_string_equal(IDS(t, "a <m> b"), "1 4 2");
    assert_string_equal(IDS(t, "a<m>b"), "1 4 2");
    assert_string_equal(IDS(t, "  <m>  "), "4");
    assert_string_equal(IDS(t, "x<m> ab"), "5 4 3");
    bt_tokenizer_free(t);
    free(j);
    /* single_word: only between non-word characters */
    j = tj_json(WL, NULL, "{\"type\":\"WhitespaceSplit\"}", NULL, AT("ab", 3, ",\"single_word\":true"));
    t = load_json(j, NULL);
    assert_string_equal(IDS(t, "ab"), "3");
    assert_string_equal(IDS(t, "xab"), "0");
    assert_string_equal(IDS(t, "ab!"), "3 0");
    assert_string_equal(IDS(t, "a ab b"), "1 3 2");
    bt_tokenizer_free(t);
    free(j);
    /* normalized: matched in the normalized text */
    j = tj_json(WL, "{\"type\":\"Lowercase\"}", "{\"type\":\"WhitespaceSplit\"}", NULL,
                "{\"id\":0,\"content\":\"WORLD\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"
                "\"normalized\":true,\"special\":false}");
    t = load_json(j, NULL);
    assert_string_equal(IDS(t, "HeLLo WoRLD"), "6 13");
    assert_int_equal(bt_tokenizer_token_id(t, "WORLD"), 13); /* not in the vocabulary: the next id */
    assert_int_equal(bt_tokenizer_vocab_size(t), 14);
    bt_tokenizer_free(t);
    free(j);
}

static void test_metaspace(void **state)
{
    (void)state;
    char buf[512];
    static const char *const schemes[] = {"always", "first", "never"};
    static const char *const want[] = {"8 9 4 8", "8 9 4 6", "6 9 4 6"};
    for (int i = 0; i < 3; i++) {
        char pre[200];
        snprintf(pre, sizeof pre, "{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",\"prepend_scheme\":\"%s\","
                 "\"split\":true}", schemes[i]);
        char *j = tj_json(WL, NULL, pre, NULL, AT("<m>", 4, ""));
        bt_tokenizer *t = load_json(j, NULL);
        assert_string_equal(IDS(t, "hello world<m>hello"), want[i]);
        assert_string_equal(IDS(t, " hello"), "8");
        bt_tokenizer_free(t);
        free(j);
    }
}

static const char *BPE =
    "{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":\"<unk>\",\"continuing_subword_prefix\":null,"
    "\"end_of_word_suffix\":null,\"fuse_unk\":%s,\"byte_fallback\":false,\"vocab\":{\"<unk>\":0,\"a\":1,\"b\":2,"
    "\"c\":3,\"ab\":4,\"bc\":5,\"abc\":6,\"aa\":7},\"merges\":[[\"a\",\"b\"],\"b c\",[\"ab\",\"c\"],[\"a\",\"a\"]]}";

static void test_bpe(void **state)
{
    (void)state;
    char buf[512], model[600];
    snprintf(model, sizeof model, BPE, "false");
    char *j = tj_json(model, NULL, NULL, NULL, NULL);
    bt_tokenizer *t = load_json(j, NULL);
    assert_string_equal(IDS(t, "abc"), "6");
    assert_string_equal(IDS(t, "aaa"), "7 1"); /* equal ranks: leftmost first */
    assert_string_equal(IDS(t, "bca"), "5 1");
    assert_string_equal(IDS(t, "abzc"), "4 0 3");
    assert_string_equal(IDS(t, "zz"), "0 0");
    bt_tokenizer_free(t);
    free(j);
    snprintf(model, sizeof model, BPE, "true");
    j = tj_json(model, NULL, NULL, NULL, NULL);
    t = load_json(j, NULL);
    assert_string_equal(IDS(t, "abzzc"), "4 0 3"); /* unknowns fused */
    bt_tokenizer_free(t);
    free(j);
    /* byte level: every byte is a symbol of the 256-char alphabet */
    j = tj_json("{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":null,"
                "\"end_of_word_suffix\":null,\"fuse_unk\":false,\"byte_fallback\":false,\"vocab\":{\"\\u00c3\":0,"
                "\"\\u00a9\":1,\"\\u00c3\\u00a9\":2,\"\\u0120\":3,\"a\":4},\"merges\":[\"\\u00c3 \\u00a9\"]}",
                NULL, "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true}",
                NULL, NULL);
    t = load_json(j, NULL);
    assert_string_equal(IDS(t, "\xc3\xa9"), "3 2"); /* " é" -> "Ġ" "Ã©" */
    assert_string_equal(IDS(t, "a?"), "3 4");      /* "?" is not in the vocabulary and there is no unk: dropped */
    bt_tokenizer_free(t);
    free(j);
}

static void test_unigram(void **state)
{
    (void)state;
    char buf[512];
    char *j = tj_json("{\"type\":\"Unigram\",\"unk_id\":0,\"byte_fallback\":true,\"vocab\":[[\"<unk>\",0.0],"
                      "[\"a\",-1.0],[\"b\",-2.0],[\"ab\",-2.5],[\"abc\",-4.0],[\"c\",-1.5],[\"<0xC3>\",0.0],"
                      "[\"<0xA9>\",0.0]]}", NULL, NULL, NULL, NULL);
    bt_tokenizer *t = load_json(j, NULL);
    assert_string_equal(IDS(t, "abc"), "4");
    assert_string_equal(IDS(t, "ab"), "3");
    assert_string_equal(IDS(t, "cab"), "5 3");
    assert_string_equal(IDS(t, "\xc3\xa9"), "6 7"); /* unknown é: its bytes */
    assert_string_equal(IDS(t, "x\xc3\xa9"), "0");  /* fused "xé": no byte piece for x: one unk */
    assert_int_equal(bt_tokenizer_vocab_size(t), 8);
    bt_tokenizer_free(t);
    free(j);
}

static void test_normalizers_and_regex(void **state)
{
    (void)state;
    char buf[512];
    /* NFKC ("ﬁ" -> "fi"), Strip, Replace(" {2,}") and the GPT-2 regex split */
    char *j = tj_json(WL,
                      "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFKC\"},{\"type\":\"Strip\","
                      "\"strip_left\":true,\"strip_right\":true},{\"type\":\"Replace\",\"pattern\":{\"Regex\":\" {2,}\"},"
                      "\"content\":\" \"},{\"type\":\"StripAccents\"}]}",
                      "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"'s|'t|'re|'ve|'m|'ll|'d| ?\\\\p{L}+| ?\\\\p{N}+| "
                      "?[^\\\\s\\\\p{L}\\\\p{N}]+|\\\\s+(?!\\\\S)|\\\\s+\"},\"behavior\":\"Removed\",\"invert\":true}",
                      NULL, NULL);
    bt_tokenizer *t = load_json(j, NULL);
    assert_string_equal(IDS(t, "  \xef\xac\x81  "), "11");  /* NFKC + Strip */
    assert_string_equal(IDS(t, "hello   world"), "6 0");     /* "hello", " world" (unknown) */
    bt_tokenizer_free(t);
    free(j);
    /* unit view of the regex: pieces of "I'm  here!!" */
    struct { const char *s; size_t n; } got[16];
    (void)got;
}

static void test_post_processors(void **state)
{
    (void)state;
    char *j = tj_json(WL, NULL, "{\"type\":\"WhitespaceSplit\"}",
                      "{\"type\":\"RobertaProcessing\",\"sep\":[\"b\",2],\"cls\":[\"a\",1],\"trim_offsets\":true,"
                      "\"add_prefix_space\":false}", AT("a", 1, "") "," AT("b", 2, ""));
    bt_tokenizer *t = load_json(j, "{\"pad_token\":\"x\",\"mask_token\":\"<m>\"}");
    bt_encoding enc;
    bt_encoding_init(&enc);
    bt_encode_opts o = {8, BT_TRUNC_LONGEST_FIRST, 1, 0};
    assert_int_equal(bt_encode_pair(t, "hello", 5, "world world", 11, &o, &enc), 0);
    int32_t want_ids[8] = {1, 6, 2, 2, 7, 7, 2, 5}, want_mask[8] = {1, 1, 1, 1, 1, 1, 1, 0};
    assert_int_equal(enc.len, 8);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(enc.input_ids[i], want_ids[i]);
        assert_int_equal(enc.token_type_ids[i], 0);
        assert_int_equal(enc.attention_mask[i], want_mask[i]);
    }
    bt_special_ids sp = bt_tokenizer_special_ids(t);
    assert_int_equal(sp.cls, 1);
    assert_int_equal(sp.sep, 2);
    assert_int_equal(sp.pad, 5);
    assert_int_equal(sp.unk, 0);
    assert_int_equal(sp.mask, 4);
    assert_int_equal(bt_tokenizer_num_special(t, 0), 2);
    assert_int_equal(bt_tokenizer_num_special(t, 1), 4);
    assert_string_equal(bt_tokenizer_source(t), "tokenizer.json");
    /* longest_first: 3 tokens left for "hello" + "world world world" */
    bt_encode_opts o2 = {7, BT_TRUNC_LONGEST_FIRST, 0, 0};
    assert_int_equal(bt_encode_pair(t, "hello", 5, "world world world", 17, &o2, &enc), 0);
    assert_int_equal(enc.len, 7);
    assert_int_equal(enc.n_second, 3);
    assert_int_equal(enc.input_ids[5], 7);
    /* smaller than the special tokens: usage error */
    bt_encode_opts o3 = {3, BT_TRUNC_LONGEST_FIRST, 0, 0};
    assert_int_equal(bt_encode_pair(t, "a", 1, "b", 1, &o3, &enc), BT_EUSAGE);
    bt_encoding_free(&enc);
    bt_tokenizer_free(t);
    free(j);
    /* TemplateProcessing with a two-id special and type ids; truncation_side left */
    j = tj_json(WL, NULL, "{\"type\":\"WhitespaceSplit\"}",
                "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"S\",\"type_id\":0}},"
                "{\"Sequence\":{\"id\":\"A\",\"type_id\":3}}],\"pair\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},"
                "{\"Sequence\":{\"id\":\"B\",\"type_id\":1}}],\"special_tokens\":{\"S\":{\"id\":\"S\",\"ids\":[5,10],"
                "\"tokens\":[\"x\",\"\\u2581\"]}}}", NULL);
    t = load_json(j, "{\"truncation_side\":\"left\"}");
    bt_encoding_init(&enc);
    bt_encode_opts o4 = {4, BT_TRUNC_LONGEST_FIRST, 0, 0};
    assert_int_equal(bt_encode(t, "a b hello world", 15, &o4, &enc), 0);
    int32_t w4[4] = {5, 10, 6, 7}, t4[4] = {0, 0, 3, 3};
    assert_int_equal(enc.len, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(enc.input_ids[i], w4[i]);
        assert_int_equal(enc.token_type_ids[i], t4[i]);
    }
    bt_special_ids s2 = bt_tokenizer_special_ids(t);
    assert_int_equal(s2.cls, -1); /* a two-id special at the edge is no role */
    assert_int_equal(s2.pad, -1);
    bt_encode_opts o5 = {6, BT_TRUNC_LONGEST_FIRST, 1, 0};
    assert_int_equal(bt_encode(t, "a", 1, &o5, &enc), BT_ECONFIG); /* padding without a pad token */
    bt_encoding_free(&enc);
    bt_tokenizer_free(t);
    free(j);
}

/* base64 of a blob, for the Precompiled JSON */
static char *b64(const uint8_t *p, size_t n)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = malloc(4 * (n / 3 + 1) + 1), *q = o;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        *q++ = a[v >> 18];
        *q++ = a[(v >> 12) & 63];
        *q++ = i + 1 < n ? a[(v >> 6) & 63] : '=';
        *q++ = i + 2 < n ? a[v & 63] : '=';
    }
    *q = '\0';
    return o;
}

/* a char map {"a" -> "b", "ab" -> "" }: root offset 256, "a" at 0x161, its value at 0x200, "ab" at 0x161^0x361^'b' */
static size_t make_charsmap(uint8_t *blob)
{
    uint32_t u[1024] = {0};
    u[0] = 256u << 10;
    uint32_t pa = 256 ^ 'a', off_a = pa ^ 0x200;
    u[pa] = 'a' | 1u << 8 | off_a << 10;
    u[0x200] = 1u << 31 | 0; /* "b" at 0 */
    uint32_t pb = 0x200 ^ 'b', off_b = pb ^ 0x300;
    u[pa] = 'a' | 1u << 8 | off_a << 10;
    u[pb] = 'b' | 1u << 8 | off_b << 10;
    u[0x300] = 1u << 31 | 2; /* "" at 2 */
    uint32_t bytes = sizeof u;
    memcpy(blob, &bytes, 4);
    memcpy(blob + 4, u, sizeof u);
    memcpy(blob + 4 + sizeof u, "b\0\0", 3);
    return 4 + sizeof u + 3;
}

static void test_precompiled(void **state)
{
    (void)state;
    char buf[512];
    static uint8_t blob[8192];
    size_t n = make_charsmap(blob);
    tj_charsmap *cm = NULL;
    assert_int_equal(tj_charsmap_parse(blob, n, &cm, "test"), 0);
    size_t on;
    const char *r = tj_charsmap_lookup(cm, (const uint8_t *)"a", 1, &on);
    assert_non_null(r);
    assert_int_equal(on, 1);
    assert_memory_equal(r, "b", 1);
    r = tj_charsmap_lookup(cm, (const uint8_t *)"ab", 2, &on); /* the shortest prefix wins, as the crate */
    assert_non_null(r);
    assert_int_equal(on, 1);
    assert_null(tj_charsmap_lookup(cm, (const uint8_t *)"b", 1, &on));
    tj_charsmap_free(cm);
    /* damaged maps are refused, never read out of bounds */
    assert_int_equal(tj_charsmap_parse(blob, 3, &cm, "test"), BT_ECONFIG);
    assert_int_equal(tj_charsmap_parse(blob, 100, &cm, "test"), BT_ECONFIG);
    uint8_t bad[8] = {0, 0, 0, 0, 0xFF, 0xFE, 0, 0};
    assert_int_equal(tj_charsmap_parse(bad, 6, &cm, "test"), BT_ECONFIG);
    assert_non_null(strstr(bt_errmsg(), "not UTF-8"));
    uint8_t wild[12] = {8, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0x7F, 0x61, 0xFF, 0xFF, 0xFF};
    assert_int_equal(tj_charsmap_parse(wild, 12, &cm, "test"), 0);
    assert_null(tj_charsmap_lookup(cm, (const uint8_t *)"a\xff", 2, &on));
    tj_charsmap_free(cm);
    /* through a tokenizer */
    char *e = b64(blob, n), *norm = malloc(strlen(e) + 100);
    sprintf(norm, "{\"type\":\"Precompiled\",\"precompiled_charsmap\":\"%s\"}", e);
    char *j = tj_json(WL, norm, "{\"type\":\"WhitespaceSplit\"}", NULL, NULL);
    bt_tokenizer *t = load_json(j, NULL);
    assert_string_equal(IDS(t, "a ab x"), "2 0 5"); /* "b", "bb" (one char per grapheme), "x" */
    bt_tokenizer_free(t);
    free(j);
    free(norm);
    free(e);
}

/* a malformed tokenizer.json: refused with BT_ECONFIG, a message holding `want` */
static void refused(const char *json, const char *config, const char *want)
{
    remove_files();
    write_file("tokenizer.json", json);
    if (config) write_file("tokenizer_config.json", config);
    bt_tokenizer *t = NULL;
    int rc = bt_tokenizer_load(g_dir, &t);
    if (rc != BT_ECONFIG || !strstr(bt_errmsg(), want))
        fprintf(stderr, "want BT_ECONFIG with \"%s\", got %d: %s\n", want, rc, bt_errmsg());
    assert_int_equal(rc, BT_ECONFIG);
    assert_null(t);
    assert_non_null(strstr(bt_errmsg(), want));
    assert_non_null(strstr(bt_errmsg(), "tokenizer.json"));
}

static void test_malformed(void **state)
{
    (void)state;
    char m[800];
    refused("{\"model\":", NULL, "not valid JSON");
    refused("[1,2]", NULL, "expected a JSON object");
    refused("{\"normalizer\":null}", NULL, "model: missing");
    char *j;
#define REFUSE(model, norm, pre, post, added, want) \
    j = tj_json(model, norm, pre, post, added);     \
    refused(j, NULL, want);                         \
    free(j)
    REFUSE("{\"type\":\"Nope\",\"vocab\":{}}", NULL, NULL, NULL, NULL, "model \"Nope\" is not supported");
    REFUSE("{\"type\":\"WordPiece\",\"vocab\":{\"a\":-1}}", NULL, NULL, NULL, NULL, "model.vocab");
    REFUSE("{\"type\":\"WordPiece\",\"vocab\":[1]}", NULL, NULL, NULL, NULL, "model.vocab");
    REFUSE(WL, "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFC\"},{\"type\":\"Nmt\"}]}", NULL, NULL, NULL,
           "normalizer.normalizers[1]: normalizer \"Nmt\" is not supported");
    REFUSE(WL, "{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"[a-z]+\"},\"content\":\"\"}", NULL, NULL, NULL,
           "normalizer.pattern.Regex: the pattern \"[a-z]+\" is not supported");
    REFUSE(WL, "{\"type\":\"Precompiled\",\"precompiled_charsmap\":\"@@@@\"}", NULL, NULL, NULL, "not valid base64");
    REFUSE(WL, "{\"type\":\"Strip\"}", NULL, NULL, NULL, "strip_left");
    REFUSE(WL, NULL, "{\"type\":\"UnicodeScripts\"}", NULL, NULL, "pre-tokenizer \"UnicodeScripts\" is not supported");
    REFUSE(WL, NULL, "{\"type\":\"Metaspace\",\"replacement\":\"ab\"}", NULL, NULL, "exactly one character");
    REFUSE(WL, NULL, "{\"type\":\"Metaspace\",\"prepend_scheme\":\"sometimes\"}", NULL, NULL, "prepend_scheme");
    REFUSE(WL, NULL, "{\"type\":\"Split\",\"pattern\":{\"String\":\"x\"},\"behavior\":\"Odd\"}", NULL, NULL, "behavior");
    REFUSE(WL, NULL, "{\"type\":\"Sequence\",\"pretokenizers\":[{}]}", NULL, NULL, "pre_tokenizer.pretokenizers[0]");
    REFUSE(WL, NULL, NULL, "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"Q\"}}],"
           "\"pair\":[],\"special_tokens\":{}}", NULL, "post_processor.single[0]: special token \"Q\"");
    REFUSE(WL, NULL, NULL, "{\"type\":\"BertProcessing\",\"sep\":[\"a\"],\"cls\":[\"b\",2]}", NULL, "\"sep\"");
    REFUSE(WL, NULL, NULL, "{\"type\":\"Wat\"}", NULL, "post-processor \"Wat\" is not supported");
    REFUSE(WL, NULL, NULL, NULL, "{\"id\":1}", "added_tokens[0]: \"content\" is missing");
    REFUSE(WL, "{\"type\":\"Strip\",\"strip_left\":true,\"strip_right\":true}", NULL, NULL,
           "{\"id\":1,\"content\":\"  \",\"normalized\":true}", "normalizes to an empty string");
    snprintf(m, sizeof m, BPE, "false");
    char *p = strstr(m, "[\"a\",\"a\"]");
    memcpy(p, "[\"a\",\"q\"]", 9);
    REFUSE(m, NULL, NULL, NULL, NULL, "model.merges[3]: token \"q\" is not in the vocabulary");
    snprintf(m, sizeof m, BPE, "false");
    p = strstr(m, "\"dropout\":null");
    memcpy(p, "\"dropout\":0.50", 14);
    REFUSE(m, NULL, NULL, NULL, NULL, "dropout");
    REFUSE("{\"type\":\"Unigram\",\"unk_id\":5,\"vocab\":[[\"a\",0.0]]}", NULL, NULL, NULL, NULL, "unk_id");
    REFUSE("{\"type\":\"Unigram\",\"vocab\":[[\"a\"]]}", NULL, NULL, NULL, NULL, "model.vocab[0]");
    /* tokenizer_config.json naming a token tokenizer.json does not have */
    j = tj_json(WL, NULL, NULL, NULL, NULL);
    remove_files();
    write_file("tokenizer.json", j);
    write_file("tokenizer_config.json", "{\"mask_token\":\"[MASK]\"}");
    bt_tokenizer *t = NULL;
    assert_int_equal(bt_tokenizer_load(g_dir, &t), BT_ECONFIG);
    assert_non_null(strstr(bt_errmsg(), "mask_token \"[MASK]\""));
    free(j);
#undef REFUSE
}

static const char *BERT_JSON =
    "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":0,\"content\":\"[PAD]\",\"single_word\":false,\"lstrip\":false,"
    "\"rstrip\":false,\"normalized\":false,\"special\":true},{\"id\":1,\"content\":\"[UNK]\",\"single_word\":false,"
    "\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true},{\"id\":2,\"content\":\"[CLS]\","
    "\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true},{\"id\":3,"
    "\"content\":\"[SEP]\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,"
    "\"special\":true}],\"normalizer\":{\"type\":\"BertNormalizer\",\"clean_text\":true,\"handle_chinese_chars\":true,"
    "\"strip_accents\":null,\"lowercase\":true},\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"},\"post_processor\":"
    "{\"type\":\"BertProcessing\",\"sep\":[\"[SEP]\",3],\"cls\":[\"[CLS]\",2]},\"model\":{\"type\":\"WordPiece\","
    "\"unk_token\":\"[UNK]\",\"continuing_subword_prefix\":\"##\",\"max_input_chars_per_word\":100,\"vocab\":"
    "{\"[PAD]\":0,\"[UNK]\":1,\"[CLS]\":2,\"[SEP]\":3,\"hello\":4,\"##s\":5,\"cafe\":6}}}";

static void test_bert_directory(void **state)
{
    (void)state;
    char buf[512];
    /* a BERT tokenizer.json (compiled into the BERT engine) beside the same vocab.txt */
    remove_files();
    write_file("tokenizer.json", BERT_JSON);
    write_file("vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n##s\ncafe\n");
    bt_tokenizer *t = NULL;
    assert_int_equal(bt_tokenizer_load(g_dir, &t), 0);
    assert_string_equal(IDS(t, "Hellos CAFÉ [SEP]x"), "2 4 5 6 3 1 3");
    assert_string_equal(bt_tokenizer_source(t), "tokenizer.json");
    assert_int_equal(bt_tokenizer_special_ids(t).mask, -1);
    uint8_t fp1[32], fp2[32];
    bt_tokenizer_fingerprint(t, fp1);
    bt_tokenizer_free(t);
    /* the fingerprint follows tokenizer_config.json too */
    write_file("tokenizer_config.json", "{\"model_max_length\":128}");
    assert_int_equal(bt_tokenizer_load(g_dir, &t), 0);
    bt_tokenizer_fingerprint(t, fp2);
    assert_memory_not_equal(fp1, fp2, 32);
    assert_int_equal(bt_tokenizer_get_config(t)->model_max_length, 128);
    bt_tokenizer_free(t);
    /* a vocab.txt that says otherwise is refused */
    write_file("vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\ncafe\n##s\n");
    assert_int_equal(bt_tokenizer_load(g_dir, &t), BT_ECONFIG);
    assert_non_null(strstr(bt_errmsg(), "vocab.txt and tokenizer.json disagree"));
    /* tokenizer_config.json disagreeing with the BertNormalizer is refused */
    write_file("vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n##s\ncafe\n");
    write_file("tokenizer_config.json", "{\"do_lower_case\":false}");
    assert_int_equal(bt_tokenizer_load(g_dir, &t), BT_ECONFIG);
    assert_non_null(strstr(bt_errmsg(), "do_lower_case"));
}

/* random bytes, and random damage to a valid file: never a crash */
static void test_random(void **state)
{
    (void)state;
    char model[600];
    snprintf(model, sizeof model, BPE, "true");
    char *j = tj_json(model, "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFKC\"},{\"type\":\"Lowercase\"}]}",
                      "{\"type\":\"Metaspace\",\"prepend_scheme\":\"first\"}", NULL, AT("ab", 4, ",\"lstrip\":true"));
    bt_tokenizer *t = load_json(j, NULL);
    bt_encoding enc;
    bt_encoding_init(&enc);
    uint64_t x = 88172645463325252ull;
    char text[200];
    for (int it = 0; it < 3000; it++) {
        size_t n = 0, len = (size_t)(x % 150);
        for (; n < len; n++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            static const char alpha[] = "ab ca\xc3\xa9\xcc\x81\xef\xac\x81\xe2\x96\x81 \t";
            text[n] = (x & 3) ? alpha[(x >> 8) % (sizeof alpha - 1)] : (char)(x >> 16);
        }
        bt_encode_opts o = {(int)(x % 20), BT_TRUNC_LONGEST_FIRST, 0, (int)(x >> 40) & 1};
        if (o.max_length && o.max_length < 2) o.max_length = 2;
        int rc = bt_encode_pair(t, text, n, text + n / 2, n - n / 2, &o, &enc);
        assert_true(rc == 0 || rc == BT_EDATA);
    }
    bt_encoding_free(&enc);
    bt_tokenizer_free(t);
    size_t jl = strlen(j);
    for (int it = 0; it < 300; it++) {
        char *d = strdup(j);
        for (int k = 0; k < 3; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            d[x % jl] = "{}[]\",:0-9ax\\ "[(x >> 32) % 15];
        }
        remove_files();
        write_file("tokenizer.json", d);
        bt_tokenizer *u = NULL;
        int rc = bt_tokenizer_load(g_dir, &u);
        assert_true(rc == 0 || rc == BT_ECONFIG);
        if (!rc) {
            bt_encoding_init(&enc);
            rc = bt_encode(u, "abc ab ca", 9, NULL, &enc);
            assert_true(rc == 0 || rc == BT_EDATA);
            bt_encoding_free(&enc);
            bt_tokenizer_free(u);
        }
        free(d);
    }
    free(j);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/baton-tokjson-XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    remove_files();
    rmdir(g_dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_added_tokens),
        cmocka_unit_test(test_metaspace),
        cmocka_unit_test(test_bpe),
        cmocka_unit_test(test_unigram),
        cmocka_unit_test(test_normalizers_and_regex),
        cmocka_unit_test(test_post_processors),
        cmocka_unit_test(test_precompiled),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_bert_directory),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
