/* tests/unit/test_conll.c — CoNLL reading (labels, -DOCSTART-, errors with
 * file:line), sub-token alignment and truncation, and entity-level P/R/F1
 * against hand-checked seqeval (default mode) results. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/conll.h"
#include "engine/entity_f1.h"
#include "kernels/philox.h"
#include "util/err.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *CONLL2003 = "-DOCSTART- -X- -X- O\n"
                               "\n"
                               "EU NNP B-NP B-ORG\n"
                               "rejects VBZ B-VP O\n"
                               "German JJ B-NP B-MISC\n"
                               "call NN I-NP O\n"
                               "\n"
                               "\n"
                               "Peter NNP B-NP B-PER\r\n"
                               "Blackburn NNP I-NP I-PER\r\n"
                               "\r\n"
                               "-DOCSTART- -X- -X- O\n"
                               "BRUSSELS\tNNP B-NP    B-LOC\n"; /* no final newline, mixed separators */

static void test_read_conll2003(void **state)
{
    (void)state;
    bt_conll c;
    assert_int_equal(bt_conll_parse(CONLL2003, strlen(CONLL2003), "train.txt", NULL, &c), 0);
    assert_int_equal(c.n_sents, 3);
    assert_int_equal(c.n_tokens, 7);
    assert_int_equal(c.sent[0], 0);
    assert_int_equal(c.sent[1], 4);
    assert_int_equal(c.sent[2], 6);
    assert_int_equal(c.sent[3], 7);
    assert_int_equal(c.sent_line[0], 3);
    assert_int_equal(c.sent_line[1], 9);
    assert_int_equal(c.sent_line[2], 13);
    /* sorted, "O" first */
    const char *want[] = {"O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-PER"};
    assert_int_equal(c.n_labels, 6);
    for (int i = 0; i < 6; i++) assert_string_equal(c.labels[i], want[i]);
    assert_string_equal(bt_conll_word(&c, 0), "EU");
    assert_string_equal(bt_conll_word(&c, 5), "Blackburn");
    assert_string_equal(bt_conll_word(&c, 6), "BRUSSELS");
    int32_t tags[] = {3, 0, 2, 0, 4, 5, 1};
    assert_memory_equal(c.tag, tags, sizeof tags);
    assert_int_equal(bt_conll_label_id(&c, "I-PER"), 5);
    assert_int_equal(bt_conll_label_id(&c, "I-LOC"), -1);
    bt_conll_free(&c);
    bt_conll_free(&c);
}

static void test_options(void **state)
{
    (void)state;
    bt_conll c;
    /* tag from column 2 (the chunk tag); given label list */
    const char *labels[] = {"I-NP", "B-NP", "B-VP", "O"};
    bt_conll_options o = {2, BT_CONLL_SEP_WHITESPACE, labels, 4};
    const char *t = "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\ncall NN I-NP O\n";
    assert_int_equal(bt_conll_parse(t, strlen(t), "x", &o, &c), 0);
    assert_int_equal(c.n_labels, 4);
    assert_string_equal(c.labels[0], "I-NP"); /* given order is kept */
    int32_t tags[] = {1, 2, 0};
    assert_memory_equal(c.tag, tags, sizeof tags);
    bt_conll_free(&c);
    /* tab-separated: words with spaces */
    bt_conll_options tab = {-1, BT_CONLL_SEP_TAB, NULL, 0};
    const char *tt = "-DOCSTART- -X- O\n\nNew York\tB-LOC\nis\tO\n \t \nfine\tO\n";
    assert_int_equal(bt_conll_parse(tt, strlen(tt), "x", &tab, &c), 0);
    assert_int_equal(c.n_sents, 2);
    assert_string_equal(bt_conll_word(&c, 0), "New York");
    bt_conll_free(&c);
    /* bad options */
    bt_conll_options bad = {0, BT_CONLL_SEP_WHITESPACE, NULL, 0};
    assert_int_equal(bt_conll_parse(t, strlen(t), "x", &bad, &c), BT_ECONFIG);
    const char *dup[] = {"O", "B-X", "O"};
    bt_conll_options d = {-1, BT_CONLL_SEP_WHITESPACE, dup, 3};
    assert_int_equal(bt_conll_parse(t, strlen(t), "x", &d, &c), BT_ECONFIG);
    assert_non_null(strstr(bt_errmsg(), "twice"));
    assert_null(c.text);
}

/* Expects text refused with BT_EDATA and a message containing want. */
static void refused(const char *text, const bt_conll_options *o, const char *want)
{
    bt_conll c;
    bt_err_clear();
    int rc = bt_conll_parse(text, strlen(text), "data/train.conll", o, &c);
    if (rc != BT_EDATA || !strstr(bt_errmsg(), want)) {
        fprintf(stderr, "text '%s': rc %d message '%s', wanted '%s'\n", text, rc, bt_errmsg(), want);
        fail();
    }
    assert_null(c.text);
    assert_null(c.labels);
}

static void test_errors(void **state)
{
    (void)state;
    refused("EU B-ORG\nrejects\n", NULL, "data/train.conll:2: one column");
    refused("EU NNP B-ORG\nrejects O\n", NULL, "data/train.conll:2: 2 columns, but line 1 has 3");
    refused("", NULL, "no tokens");
    refused("-DOCSTART- O\n\n\n", NULL, "no tokens");
    const char *labels[] = {"O", "B-PER"};
    bt_conll_options o = {-1, BT_CONLL_SEP_WHITESPACE, labels, 2};
    refused("a O\nb B-PER\n\nc B-LOC\n", &o, "data/train.conll:4: tag 'B-LOC' is not in the job's label list");
    bt_conll_options col5 = {5, BT_CONLL_SEP_WHITESPACE, NULL, 0};
    refused("a NN O\n", &col5, "data/train.conll:1: 3 columns, but the tag column is 5");
    bt_conll_options tab = {-1, BT_CONLL_SEP_TAB, NULL, 0};
    refused("a\t\n", &tab, "data/train.conll:1: empty tag");
    refused("a O\nb\0 O\n", NULL, "one column"); /* strlen stops at the NUL: "b" alone */
    bt_conll c;
    assert_int_equal(bt_conll_parse("a O\nb\0 O\n", 9, "f", NULL, &c), BT_EDATA);
    assert_non_null(strstr(bt_errmsg(), "NUL"));
    assert_int_equal(bt_conll_read("/nonexistent/train.conll", NULL, &c), BT_ENOINPUT);
}

static void test_align(void **state)
{
    (void)state;
    /* words: "Peter"(1) "Blackburnshire"(3) "x"(0) "is"(1) */
    int32_t toks[] = {50, 60, 61, 62, 70};
    int32_t ntok[] = {1, 3, 0, 1};
    int32_t tags[] = {4, 5, 0, 0};
    int32_t ids[16], lab[16];
    int n, kept;
    assert_int_equal(bt_conll_align(toks, ntok, tags, 4, 16, 101, 102, ids, lab, &n, &kept), 0);
    assert_int_equal(n, 7);
    assert_int_equal(kept, 4);
    int32_t want_ids[] = {101, 50, 60, 61, 62, 70, 102};
    int32_t want_lab[] = {-100, 4, 5, -100, -100, 0, -100};
    assert_memory_equal(ids, want_ids, sizeof want_ids);
    assert_memory_equal(lab, want_lab, sizeof want_lab);
    /* predictions back to words: the zero-token word gets the fill */
    int32_t pred[] = {9, 4, 5, 7, 7, 1, 9}, wp[4];
    bt_conll_word_preds(pred, ntok, 4, kept, 0, wp);
    int32_t want_wp[] = {4, 5, 0, 1};
    assert_memory_equal(wp, want_wp, sizeof want_wp);
    /* max_seq_len 5: 3 content slots; "Blackburnshire" does not fit whole -> only "Peter" */
    assert_int_equal(bt_conll_align(toks, ntok, tags, 4, 5, 101, 102, ids, lab, &n, &kept), 0);
    assert_int_equal(n, 3);
    assert_int_equal(kept, 1);
    assert_int_equal(ids[2], 102);
    bt_conll_word_preds(pred, ntok, 4, kept, 0, wp);
    int32_t want_wp2[] = {4, 0, 0, 0};
    assert_memory_equal(wp, want_wp2, sizeof want_wp2);
    /* max_seq_len 6: 4 slots: Peter + Blackburnshire(3) + x(0); "is" cut */
    assert_int_equal(bt_conll_align(toks, ntok, tags, 4, 6, 101, 102, ids, lab, &n, &kept), 0);
    assert_int_equal(n, 6);
    assert_int_equal(kept, 3);
    /* first word longer than the budget: its first tokens are kept */
    int32_t ntok1[] = {5};
    assert_int_equal(bt_conll_align(toks, ntok1, tags, 1, 4, 101, 102, ids, lab, &n, &kept), 0);
    assert_int_equal(n, 4);
    assert_int_equal(kept, 1);
    int32_t want3[] = {101, 50, 60, 102}, wl3[] = {-100, 4, -100, -100};
    assert_memory_equal(ids, want3, sizeof want3);
    assert_memory_equal(lab, wl3, sizeof wl3);
    /* prediction mode: no labels */
    assert_int_equal(bt_conll_align(toks, ntok, NULL, 4, 16, 101, 102, ids, lab, &n, &kept), 0);
    for (int i = 0; i < n; i++) assert_int_equal(lab[i], -100);
    /* empty sentence, bad arguments */
    assert_int_equal(bt_conll_align(toks, ntok, tags, 0, 16, 101, 102, ids, lab, &n, &kept), 0);
    assert_int_equal(n, 2);
    assert_int_equal(bt_conll_align(toks, ntok, tags, 4, 2, 101, 102, ids, lab, &n, &kept), BT_ECONFIG);
    int32_t neg[] = {1, -1};
    assert_int_equal(bt_conll_align(toks, neg, tags, 2, 16, 101, 102, ids, lab, &n, &kept), BT_EDATA);
}

static void test_windows(void **state)
{
    (void)state;
    bt_conll_window w[16];
    /* fits: one window owning everything */
    int32_t fit[] = {1, 3, 0, 1};
    assert_int_equal(bt_conll_windows(fit, 4, 16, 4, w), 1);
    assert_true(w[0].begin == 0 && w[0].end == 4 && w[0].own_begin == 0 && w[0].own_end == 4);
    /* empty sentence */
    assert_int_equal(bt_conll_windows(fit, 0, 16, 4, w), 1);
    assert_true(w[0].begin == 0 && w[0].end == 0 && w[0].own_end == 0);
    /* ten one-piece words, room 4, overlap 2: [0,4) [2,6) [4,8) [6,10);
     * the two repeated words split one each */
    int32_t ones[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    assert_int_equal(bt_conll_windows(ones, 10, 6, 2, w), 4);
    int want[4][4] = {{0, 4, 0, 3}, {2, 6, 3, 5}, {4, 8, 5, 7}, {6, 10, 7, 10}};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(w[i].begin, want[i][0]);
        assert_int_equal(w[i].end, want[i][1]);
        assert_int_equal(w[i].own_begin, want[i][2]);
        assert_int_equal(w[i].own_end, want[i][3]);
    }
    /* no overlap: consecutive windows, each owning its words */
    assert_int_equal(bt_conll_windows(ones, 10, 6, 0, w), 3);
    assert_true(w[1].begin == 4 && w[1].end == 8 && w[1].own_begin == 4 && w[2].own_end == 10);
    /* a word longer than a window gets one of its own; the repeated context
     * before it is dropped so it can start there, and none fits beside it */
    int32_t longw[] = {1, 1, 9, 1};
    assert_int_equal(bt_conll_windows(longw, 4, 6, 3, w), 3);
    assert_true(w[0].begin == 0 && w[0].end == 2);
    assert_true(w[1].begin == 2 && w[1].end == 3 && w[1].own_begin == 2 && w[1].own_end == 3);
    assert_true(w[2].begin == 3 && w[2].end == 4 && w[2].own_begin == 3 && w[2].own_end == 4);

    /* random sentences: windows fit, repeat at most `overlap` pieces, make
     * progress, and their own ranges partition the words in order */
    uint32_t x = 12345;
    for (int trial = 0; trial < 3000; trial++) {
        int32_t nt[40];
        x = x * 1664525u + 1013904223u;
        int n = (int)(x >> 8) % 41;
        for (int i = 0; i < n; i++) {
            x = x * 1664525u + 1013904223u;
            nt[i] = (int32_t)((x >> 12) % 7); /* 0..6 pieces */
        }
        x = x * 1664525u + 1013904223u;
        int msl = 3 + (int)((x >> 9) % 14), ov = (int)((x >> 20) % 12), room = msl - 2;
        bt_conll_window win[41];
        int k = bt_conll_windows(nt, n, msl, ov, win);
        assert_true(k >= 1 && k <= (n > 0 ? n : 1));
        assert_int_equal(win[0].own_begin, 0);
        assert_int_equal(win[k - 1].own_end, n);
        assert_int_equal(win[k - 1].end, n);
        for (int i = 0; i < k; i++) {
            long used = 0;
            for (int j = win[i].begin; j < win[i].end; j++) used += nt[j];
            assert_true(used <= room || win[i].end - win[i].begin == 1);
            assert_true(win[i].begin <= win[i].own_begin && win[i].own_begin < win[i].own_end + (n == 0) &&
                        win[i].own_end <= win[i].end);
            if (i > 0) {
                assert_int_equal(win[i].own_begin, win[i - 1].own_end);
                assert_true(win[i].begin > win[i - 1].begin && win[i].end > win[i - 1].end);
                assert_true(win[i].begin <= win[i - 1].end); /* no word skipped */
                long rep = 0;
                for (int j = win[i].begin; j < win[i - 1].end; j++) rep += nt[j];
                assert_true(rep <= ov);
            }
        }
    }
}

/* ---- entity F1 ---- */

static bt_entity_scheme scheme;
static const char *LABELS[] = {"O",     "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC",
                               "I-MISC", "E-PER", "S-PER", "E-LOC", "S-LOC", "B",     "I"};
enum { NL = sizeof LABELS / sizeof LABELS[0] };

static int setup(void **state)
{
    (void)state;
    return bt_entity_scheme_init(&scheme, LABELS, NL);
}

static int teardown(void **state)
{
    (void)state;
    bt_entity_scheme_free(&scheme);
    return 0;
}

/* label names -> ids */
static int ids_of(const char *seq, int32_t *out)
{
    int n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", seq);
    for (char *t = strtok(buf, " "); t; t = strtok(NULL, " ")) {
        int id = -1;
        for (int i = 0; i < NL; i++)
            if (!strcmp(LABELS[i], t)) id = i;
        assert_true(id >= 0);
        out[n++] = id;
    }
    return n;
}

static int type_id(const char *name)
{
    for (int t = 0; t < scheme.n_types; t++)
        if (!strcmp(scheme.types[t], name)) return t;
    return -1;
}

/* "PER 0 1, LOC 3 3" */
static void expect_entities(const char *seq, const char *want)
{
    int32_t tags[64];
    bt_entity e[64];
    int n = ids_of(seq, tags), m = bt_entity_extract(&scheme, tags, n, e);
    char got[512] = "";
    for (int i = 0; i < m; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s %d %d", i ? ", " : "", scheme.types[e[i].type],
                 e[i].first, e[i].last);
    if (strcmp(got, want)) {
        fprintf(stderr, "%s: got '%s', want '%s'\n", seq, got, want);
        fail();
    }
}

static void test_scheme(void **state)
{
    (void)state;
    const char *want[] = {"LOC", "MISC", "ORG", "PER", "_"};
    assert_int_equal(scheme.n_types, 5);
    for (int i = 0; i < 5; i++) assert_string_equal(scheme.types[i], want[i]);
    bt_entity_scheme s;
    const char *pos[] = {"O", "NN"};
    assert_int_equal(bt_entity_scheme_init(&s, pos, 2), BT_ECONFIG);
    assert_non_null(strstr(bt_errmsg(), "'NN'"));
    const char *bad[][2] = {{"O", "B-"}, {"O", "X-PER"}, {"O", "O-PER"}, {"O", ""}, {"O", "BPER"}};
    for (int i = 0; i < 5; i++) assert_int_equal(bt_entity_scheme_init(&s, bad[i], 2), BT_ECONFIG);
    const char *ok[] = {"O", "B-PER"};
    assert_int_equal(bt_entity_scheme_init(&s, ok, 2), 0);
    assert_int_equal(s.n_types, 1);
    assert_int_equal(s.type[0], -1); /* no "_" type */
    bt_entity_scheme_free(&s);
}

/* Each expected result worked by hand through seqeval's start_of_chunk /
 * end_of_chunk (default, non-strict mode). */
static void test_extract(void **state)
{
    (void)state;
    expect_entities("B-PER I-PER O B-LOC", "PER 0 1, LOC 3 3");
    expect_entities("O O O", "");
    /* I- without B- starts an entity (conlleval / seqeval default) */
    expect_entities("O I-PER I-PER O", "PER 1 2");
    expect_entities("I-PER", "PER 0 0");
    expect_entities("I-PER I-LOC", "PER 0 0, LOC 1 1");
    /* type change inside: B-PER I-LOC is two entities */
    expect_entities("B-PER I-LOC I-LOC", "PER 0 0, LOC 1 2");
    /* B after B starts a new one */
    expect_entities("B-PER B-PER I-PER", "PER 0 0, PER 1 2");
    /* IOBES */
    expect_entities("S-PER B-LOC E-LOC O", "PER 0 0, LOC 1 2");
    expect_entities("B-LOC I-LOC E-LOC", "LOC 0 2");
    expect_entities("O E-PER O", "PER 1 1");
    expect_entities("B-PER E-PER I-PER", "PER 0 1, PER 2 2");
    expect_entities("S-LOC S-LOC", "LOC 0 0, LOC 1 1");
    expect_entities("S-PER I-PER", "PER 0 0, PER 1 1");
    /* I-PER E-PER: the chunk goes on through E and ends after it */
    expect_entities("B-PER I-PER E-PER I-PER", "PER 0 2, PER 3 3");
    /* bare tags have type "_" */
    expect_entities("B I O B", "_ 0 1, _ 3 3");
    expect_entities("I B-PER", "_ 0 0, PER 1 1");
}

static void counts_of(const char *const *gold, const char *const *pred, int n_sents, bt_entity_counts *c)
{
    bt_entity_counts_init(c, &scheme);
    for (int s = 0; s < n_sents; s++) {
        int32_t g[64], p[64];
        int ng = ids_of(gold[s], g), np = ids_of(pred[s], p);
        assert_int_equal(ng, np);
        assert_int_equal(bt_entity_count(c, &scheme, g, p, ng), 0);
    }
}

static void test_f1(void **state)
{
    (void)state;
    /* seqeval README example: micro F1 0.50; MISC 0/0/0 support 1; PER 1/1/1 support 1 */
    const char *gold[] = {"O O O B-MISC I-MISC I-MISC O", "B-PER I-PER O"};
    const char *pred[] = {"O O B-MISC I-MISC I-MISC I-MISC O", "B-PER I-PER O"};
    bt_entity_counts c;
    counts_of(gold, pred, 2, &c);
    bt_prf m = bt_entity_micro(&c);
    assert_float_equal(m.precision, 0.5, 1e-12);
    assert_float_equal(m.recall, 0.5, 1e-12);
    assert_float_equal(m.f1, 0.5, 1e-12);
    assert_int_equal(m.support, 2);
    bt_prf misc = bt_entity_per_type(&c, type_id("MISC")), per = bt_entity_per_type(&c, type_id("PER"));
    assert_float_equal(misc.f1, 0.0, 0);
    assert_int_equal(misc.support, 1);
    assert_float_equal(per.f1, 1.0, 0);
    bt_entity_counts_free(&c);

    /* type mismatch and I-without-B:
     * gold  PER(0,1) LOC(3,3) | ORG(0,0) MISC(2,3)
     * pred  PER(0,1) ORG(3,3) | ORG(0,0) MISC(3,3) from "O I-MISC"
     * tp = 2 (PER, ORG), pred 4, gold 4 -> P = R = F = 0.5 */
    const char *g2[] = {"B-PER I-PER O B-LOC", "B-ORG O B-MISC I-MISC"};
    const char *p2[] = {"B-PER I-PER O B-ORG", "B-ORG O O I-MISC"};
    counts_of(g2, p2, 2, &c);
    m = bt_entity_micro(&c);
    assert_float_equal(m.precision, 0.5, 1e-12);
    assert_float_equal(m.recall, 0.5, 1e-12);
    assert_float_equal(m.f1, 0.5, 1e-12);
    bt_prf loc = bt_entity_per_type(&c, type_id("LOC")), org = bt_entity_per_type(&c, type_id("ORG"));
    assert_float_equal(loc.precision, 0.0, 0); /* no LOC predicted: 0, not NaN */
    assert_float_equal(loc.recall, 0.0, 0);
    assert_int_equal(loc.support, 1);
    assert_float_equal(org.precision, 0.5, 1e-12); /* 1 of 2 predicted ORG correct */
    assert_float_equal(org.recall, 1.0, 1e-12);
    assert_float_equal(org.f1, 2 * 0.5 / 1.5, 1e-12);
    bt_entity_counts_free(&c);

    /* an I- predicted where gold has B-: the same span and type match (lenient) */
    const char *g3[] = {"O B-PER I-PER O"};
    const char *p3[] = {"O I-PER I-PER O"};
    counts_of(g3, p3, 1, &c);
    assert_float_equal(bt_entity_micro(&c).f1, 1.0, 0);
    /* a longer span does not match; recall 1/2 after adding it */
    int32_t g[4], p[4];
    ids_of("B-LOC I-LOC O O", g);
    ids_of("B-LOC I-LOC I-LOC O", p);
    assert_int_equal(bt_entity_count(&c, &scheme, g, p, 4), 0);
    m = bt_entity_micro(&c);
    assert_float_equal(m.recall, 0.5, 1e-12);
    assert_float_equal(m.precision, 0.5, 1e-12);
    /* reset; out-of-range ids are errors, not crashes */
    bt_entity_counts_reset(&c);
    assert_int_equal(bt_entity_micro(&c).support, 0);
    assert_float_equal(bt_entity_micro(&c).f1, 0.0, 0);
    p[1] = NL;
    assert_int_equal(bt_entity_count(&c, &scheme, g, p, 4), BT_EDATA);
    p[1] = -100;
    assert_int_equal(bt_entity_count(&c, &scheme, g, p, 4), BT_EDATA);
    bt_entity_counts_free(&c);
}

/* Entities never cross sentences: counting sentence by sentence equals
 * seqeval's flattening with an "O" between sentences. */
static void test_sentence_boundary(void **state)
{
    (void)state;
    const char *gold[] = {"O B-PER", "I-PER O"};
    const char *pred[] = {"O B-PER", "I-PER O"};
    bt_entity_counts c;
    counts_of(gold, pred, 2, &c);
    assert_int_equal(c.n_true[type_id("PER")], 2);
    assert_int_equal(c.tp[type_id("PER")], 2);
    bt_entity_counts_free(&c);
}

/* Random tag sequences (BIO, IOBES and bare tags mixed, so every rule runs)
 * scored here and by the real seqeval (default mode), when python3 has it. */
static const char *SEQEVAL_PY =
    "import sys\n"
    "from seqeval.metrics import classification_report, precision_score, recall_score, f1_score\n"
    "g, p = [], []\n"
    "for line in open(sys.argv[1]):\n"
    "    a, b = line.rstrip('\\n').split('\\t')\n"
    "    g.append(a.split()); p.append(b.split())\n"
    "print('micro %.17g %.17g %.17g' % (precision_score(g, p), recall_score(g, p), f1_score(g, p)))\n"
    "r = classification_report(g, p, output_dict=True, zero_division=0)\n"
    "for k in sorted(r):\n"
    "    if not k.endswith('avg'): print('%s %.17g %.17g %.17g %d' % (k, r[k]['precision'], r[k]['recall'], r[k]['f1-score'], r[k]['support']))\n";

static void test_against_seqeval(void **state)
{
    (void)state;
    const char *python = getenv("BATON_PYTHON") ? getenv("BATON_PYTHON") : "/usr/bin/python3";
    char probe[256];
    snprintf(probe, sizeof probe, "'%s' -c 'import seqeval' >/dev/null 2>&1", python);
    if (system(probe) != 0) {
        printf("skip: %s with seqeval not found (pip install seqeval; BATON_PYTHON picks the python)\n", python);
        if (getenv("CI") && !strcmp(getenv("CI"), "true")) fail_msg("CI must run the seqeval comparison: install tests/reference/requirements.txt");
        skip();
    }
    char dir[64], data[96], py[96], res[96];
    snprintf(dir, sizeof dir, "/tmp/baton-test-conll-%d", (int)getpid());
    snprintf(data, sizeof data, "%s.tsv", dir);
    snprintf(py, sizeof py, "%s.py", dir);
    snprintf(res, sizeof res, "%s.out", dir);
    FILE *f = fopen(py, "w");
    assert_non_null(f);
    fputs(SEQEVAL_PY, f);
    fclose(f);
    f = fopen(data, "w");
    assert_non_null(f);
    bt_entity_counts c;
    bt_entity_counts_init(&c, &scheme);
    uint32_t q = 0;
    for (int s = 0; s < 3000; s++) {
        int32_t g[12], p[12];
        bt_u32x4 r = bt_random4(5, BT_STREAM_HEAD_INIT, 7, (uint32_t)s, 0, 0);
        int n = 1 + (int)(r.v[0] % 12);
        for (int i = 0; i < n; i++) {
            bt_u32x4 x = bt_random4(5, BT_STREAM_HEAD_INIT, 8, q++, 0, 0);
            /* half O; sentences 0..999 BIO only, the rest any label */
            int lim = s < 1000 ? 9 : NL;
            g[i] = x.v[0] % 2 ? 0 : (int32_t)(x.v[1] % (uint32_t)lim);
            /* predictions: mostly the gold tag, else random */
            p[i] = x.v[2] % 3 ? g[i] : (x.v[3] % 2 ? 0 : (int32_t)(x.v[3] / 2 % (uint32_t)lim));
        }
        for (int i = 0; i < n; i++) fprintf(f, "%s%s", i ? " " : "", LABELS[g[i]]);
        fputc('\t', f);
        for (int i = 0; i < n; i++) fprintf(f, "%s%s", i ? " " : "", LABELS[p[i]]);
        fputc('\n', f);
        assert_int_equal(bt_entity_count(&c, &scheme, g, p, n), 0);
    }
    fclose(f);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "'%s' %s %s > %s 2>/dev/null", python, py, data, res);
    assert_int_equal(system(cmd), 0);
    f = fopen(res, "r");
    assert_non_null(f);
    char name[64];
    double pr, rc, f1;
    long sup;
    assert_int_equal(fscanf(f, "%63s %lf %lf %lf", name, &pr, &rc, &f1), 4);
    bt_prf m = bt_entity_micro(&c);
    printf("micro P %.4f R %.4f F1 %.4f (seqeval %.4f %.4f %.4f)\n", m.precision, m.recall, m.f1, pr, rc, f1);
    assert_float_equal(m.precision, pr, 1e-12);
    assert_float_equal(m.recall, rc, 1e-12);
    assert_float_equal(m.f1, f1, 1e-12);
    int types = 0;
    while (fscanf(f, "%63s %lf %lf %lf %ld", name, &pr, &rc, &f1, &sup) == 5) {
        int t = type_id(name);
        assert_true(t >= 0);
        bt_prf e = bt_entity_per_type(&c, t);
        assert_float_equal(e.precision, pr, 1e-12);
        assert_float_equal(e.recall, rc, 1e-12);
        assert_float_equal(e.f1, f1, 1e-12);
        assert_int_equal(e.support, sup);
        types++;
    }
    assert_int_equal(types, scheme.n_types);
    fclose(f);
    bt_entity_counts_free(&c);
    unlink(py);
    unlink(data);
    unlink(res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_conll2003),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_align),
        cmocka_unit_test(test_windows),
        cmocka_unit_test_setup_teardown(test_scheme, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extract, setup, teardown),
        cmocka_unit_test_setup_teardown(test_f1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sentence_boundary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_against_seqeval, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
