/* tests/unit/test_mlm.c — MLM blocks and masking: rates, proportions,
 * specials, determinism keys, whole words, and golden masks computed by an
 * independent Python port of Philox + the documented rule (docs/tasks.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine/mlm.h"
#include "util/err.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { V = 30522, CLS = 101, SEP = 102, PAD = 0, MASK = 103 };

static bt_mlm_config cfg(void) { return bt_mlm_config_default(V, MASK, CLS, SEP, PAD); }

static void test_blocks_concat(void **state)
{
    (void)state;
    /* lines of 5, 0, 7, 3 tokens = 15 tokens; max_seq_len 6 -> W = 4 */
    size_t off[] = {0, 5, 5, 12, 15};
    bt_mlm_blocks b;
    assert_int_equal(bt_mlm_make_blocks(BT_MLM_GROUP_CONCAT, off, 4, 6, 0, &b), 0);
    assert_int_equal(b.n, 3); /* 15 / 4 = 3, remainder of 3 dropped */
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(b.spans[i].start, 4 * i);
        assert_int_equal(b.spans[i].len, 4);
    }
    bt_mlm_blocks_free(&b);
    assert_int_equal(bt_mlm_make_blocks(BT_MLM_GROUP_CONCAT, off, 4, 6, 1, &b), 0);
    assert_int_equal(b.n, 4);
    assert_int_equal(b.spans[3].start, 12);
    assert_int_equal(b.spans[3].len, 3);
    bt_mlm_blocks_free(&b);
    /* exact multiple: keep_remainder adds nothing */
    size_t off2[] = {0, 8};
    assert_int_equal(bt_mlm_make_blocks(BT_MLM_GROUP_CONCAT, off2, 1, 6, 1, &b), 0);
    assert_int_equal(b.n, 2);
    bt_mlm_blocks_free(&b);
    /* fewer tokens than one block: nothing (HF drops it too) */
    size_t off3[] = {10, 13};
    assert_int_equal(bt_mlm_make_blocks(BT_MLM_GROUP_CONCAT, off3, 1, 6, 0, &b), 0);
    assert_int_equal(b.n, 0);
    assert_null(b.spans);
    assert_int_equal(bt_mlm_make_blocks(BT_MLM_GROUP_CONCAT, off3, 1, 6, 1, &b), 0);
    assert_int_equal(b.n, 1);
    assert_int_equal(b.spans[0].start, 10); /* offsets need not start at 0 */
    assert_int_equal(b.spans[0].len, 3);
    bt_mlm_blocks_free(&b);
    /* empty corpus */
    assert_int_equal(bt_mlm_make_blocks(BT_MLM_GROUP_CONCAT, off, 0, 6, 1, &b), 0);
    assert_int_equal(b.n, 0);
}

static void test_blocks_line(void **state)
{
    (void)state;
    size_t off[] = {0, 5, 5, 12, 15};
    bt_mlm_blocks b;
    assert_int_equal(bt_mlm_make_blocks(BT_MLM_GROUP_LINE, off, 4, 6, 0, &b), 0);
    assert_int_equal(b.n, 3); /* the empty line is skipped */
    assert_int_equal(b.spans[0].start, 0);
    assert_int_equal(b.spans[0].len, 4);
    assert_int_equal(b.spans[1].start, 5);
    assert_int_equal(b.spans[1].len, 4);
    assert_int_equal(b.spans[2].start, 12);
    assert_int_equal(b.spans[2].len, 3);
    bt_mlm_blocks_free(&b);
}

static void test_blocks_errors(void **state)
{
    (void)state;
    size_t off[] = {0, 5, 3};
    bt_mlm_blocks b;
    assert_int_equal(bt_mlm_make_blocks(BT_MLM_GROUP_LINE, off, 2, 2, 0, &b), BT_ECONFIG);
    assert_non_null(strstr(bt_errmsg(), "max_seq_len 2"));
    assert_int_equal(bt_mlm_make_blocks(BT_MLM_GROUP_LINE, off, 2, 8, 0, &b), BT_EDATA);
    assert_non_null(strstr(bt_errmsg(), "line 2"));
    assert_int_equal(bt_mlm_make_blocks((bt_mlm_grouping)7, off, 1, 8, 0, &b), BT_ECONFIG);
}

static void test_wrap(void **state)
{
    (void)state;
    int32_t ids[] = {5, 6, 7, 8, 9, 10};
    uint8_t cont[] = {0, 1, 1, 0, 1, 0};
    int32_t out[8];
    uint8_t co[8];
    bt_mlm_span s = {1, 4}; /* 6 7 8 9: starts inside a word */
    assert_int_equal(bt_mlm_wrap(ids, cont, s, CLS, SEP, out, co), 6);
    int32_t want[] = {CLS, 6, 7, 8, 9, SEP};
    uint8_t wantc[] = {0, 0, 1, 0, 1, 0};
    assert_memory_equal(out, want, sizeof want);
    assert_memory_equal(co, wantc, sizeof wantc);
    bt_mlm_span e = {3, 0};
    assert_int_equal(bt_mlm_wrap(ids, NULL, e, CLS, SEP, out, co), 2);
    assert_int_equal(out[0], CLS);
    assert_int_equal(out[1], SEP);
}

static void test_config_check(void **state)
{
    (void)state;
    bt_mlm_config c = cfg();
    assert_int_equal(bt_mlm_config_check(&c), 0);
    c.probability = 1.5f;
    assert_int_equal(bt_mlm_config_check(&c), BT_ECONFIG);
    c = cfg();
    c.probability = NAN;
    assert_int_equal(bt_mlm_config_check(&c), BT_ECONFIG);
    c = cfg();
    c.mask_frac = 0.95f;
    assert_int_equal(bt_mlm_config_check(&c), BT_ECONFIG);
    c = cfg();
    c.mask_id = V;
    assert_int_equal(bt_mlm_config_check(&c), BT_ECONFIG);
    assert_non_null(strstr(bt_errmsg(), "[MASK]"));
    c = cfg();
    c.n_extra_special = 2;
    assert_int_equal(bt_mlm_config_check(&c), BT_ECONFIG);
}

/* One block: [CLS] 1000+p ... [SEP] PAD PAD, n = 48 (the golden sequence). */
static void golden_seq(int32_t *ids, int n)
{
    ids[0] = CLS;
    for (int p = 1; p < n - 3; p++) ids[p] = 1000 + p - 1;
    ids[n - 3] = SEP;
    ids[n - 2] = PAD;
    ids[n - 1] = PAD;
}

/* Values from an independent Python implementation of Philox4x32-10 (checked
 * against the Random123 known answer 6627e8d5 e169c58d bc57ac4c 9b00dbd8) and
 * the rule documented in mlm.h: seed 42, epoch 7, example 7, HF defaults. */
static void test_golden(void **state)
{
    (void)state;
    enum { N = 48 };
    int32_t ids[N], labels[N];
    golden_seq(ids, N);
    bt_mlm_config c = cfg();
    int sel = bt_mlm_mask(&c, 42, 7, 7, ids, NULL, N, labels);
    static const int32_t want_ids[N] = {
        101,  1000, 1001, 1002, 23377, 1004, 1005, 1006, 1007, 1008, 1009, 1010, 27557, 103,  1013, 1014,
        103,  1016, 1017, 1018, 1019,  1020, 1021, 1022, 1023, 1024, 1025, 1026, 1027,  1028, 1029, 1030,
        1031, 1032, 1033, 1034, 103,   1036, 1037, 1038, 1039, 1040, 103,  1042, 1043,  102,  0,    0};
    static const int32_t want_lab[N] = {
        -100, -100, -100, -100, 1003, -100, -100, -100, -100, -100, -100, -100, 1011, 1012, -100, -100,
        1015, -100, -100, -100, 1019, -100, -100, -100, -100, -100, -100, -100, -100, -100, -100, -100,
        -100, -100, -100, -100, 1035, -100, -100, -100, -100, -100, 1041, -100, -100, -100, -100, -100};
    assert_memory_equal(ids, want_ids, sizeof want_ids);
    assert_memory_equal(labels, want_lab, sizeof want_lab);
    assert_int_equal(sel, 7);

    /* whole words: every third position is a "##" piece; probability 0.3, epoch 3 */
    uint8_t cont[N];
    for (int p = 0; p < N; p++) cont[p] = p % 3 == 2;
    golden_seq(ids, N);
    c.whole_word = 1;
    c.probability = 0.3f;
    bt_mlm_mask(&c, 42, 3, 7, ids, cont, N, labels);
    static const int32_t wwm_ids[N] = {
        101,  1000, 1001, 103,  1003, 1004, 1005, 1006, 1007, 103,  1009, 1010, 1011, 103,  103,  103,
        1015, 1016, 1017, 1018, 1019, 1020, 1021, 1022, 1023, 1024, 1025, 1026, 103,  103,  1029, 103,
        103,  103,  103,  103,  1035, 1036, 1037, 1038, 1039, 1040, 1041, 1042, 1043, 102,  0,    0};
    static const int32_t wwm_lab[N] = {
        -100, 1000, 1001, 1002, -100, -100, -100, -100, -100, 1008, -100, -100, -100, 1012, 1013, 1014,
        -100, -100, -100, -100, -100, -100, 1021, 1022, -100, -100, -100, -100, 1027, 1028, -100, 1030,
        1031, 1032, 1033, 1034, -100, -100, -100, -100, -100, -100, -100, -100, -100, -100, -100, -100};
    assert_memory_equal(ids, wwm_ids, sizeof wwm_ids);
    assert_memory_equal(labels, wwm_lab, sizeof wwm_lab);
}

/* Over ~100k tokens: 15% selected, of those 80/10/10, random ids uniform. */
static void test_rates(void **state)
{
    (void)state;
    enum { N = 512, EX = 200 };
    int32_t ids[N], orig[N], labels[N];
    bt_mlm_config c = cfg();
    long tokens = 0, sel = 0, masked = 0, random = 0, kept = 0;
    for (uint32_t ex = 0; ex < EX; ex++) {
        ids[0] = CLS;
        for (int p = 1; p < N - 1; p++) ids[p] = 1000 + (int32_t)((ex * 131 + (uint32_t)p * 7) % 20000);
        ids[N - 1] = SEP;
        memcpy(orig, ids, sizeof ids);
        int s = bt_mlm_mask(&c, 1234, 0, ex, ids, NULL, N, labels);
        int count = 0;
        for (int p = 0; p < N; p++) {
            if (labels[p] == BT_MLM_IGNORE) {
                assert_int_equal(ids[p], orig[p]);
                continue;
            }
            count++;
            assert_int_equal(labels[p], orig[p]);
            if (ids[p] == MASK) masked++;
            else if (ids[p] == orig[p]) kept++;
            else random++;
        }
        assert_int_equal(count, s);
        sel += s;
        tokens += N - 2;
    }
    double rate = (double)sel / tokens;
    double sd = sqrt(0.15 * 0.85 / tokens);
    printf("selected %.4f of %ld; mask %.4f random %.4f kept %.4f\n", rate, tokens, (double)masked / sel,
           (double)random / sel, (double)kept / sel);
    assert_true(fabs(rate - 0.15) < 5 * sd);
    double sdm = sqrt(0.8 * 0.2 / sel), sdr = sqrt(0.1 * 0.9 / sel);
    assert_true(fabs((double)masked / sel - 0.8) < 5 * sdm);
    assert_true(fabs((double)random / sel - 0.1) < 5 * sdr);
    assert_true(fabs((double)kept / sel - 0.1) < 5 * sdr);
}

static void test_random_ids_uniform(void **state)
{
    (void)state;
    /* small vocabulary, everything selected and replaced at random */
    enum { VS = 16, N = 4000 };
    bt_mlm_config c = bt_mlm_config_default(VS, 3, 100, 101, 102); /* specials outside: all positions eligible */
    c.probability = 1.0f;
    c.mask_frac = 0.0f;
    c.random_frac = 1.0f;
    assert_int_equal(bt_mlm_config_check(&c), 0);
    static int32_t ids[N], labels[N];
    long hist[VS] = {0};
    for (int i = 0; i < N; i++) ids[i] = 5;
    assert_int_equal(bt_mlm_mask(&c, 9, 1, 1, ids, NULL, N, labels), N);
    for (int i = 0; i < N; i++) {
        assert_true(ids[i] >= 0 && ids[i] < VS);
        hist[ids[i]]++;
    }
    double chi = 0, e = (double)N / VS;
    for (int k = 0; k < VS; k++) chi += (hist[k] - e) * (hist[k] - e) / e;
    printf("chi2 %.1f (15 dof)\n", chi);
    assert_true(chi < 45.0); /* p ~ 1e-4 */
}

static void test_specials_never(void **state)
{
    (void)state;
    enum { N = 64 };
    int32_t extra[] = {100, 104}; /* e.g. [UNK] and a user token */
    bt_mlm_config c = cfg();
    c.probability = 1.0f; /* everything eligible is selected */
    c.extra_special = extra;
    c.n_extra_special = 2;
    int32_t ids[N], orig[N], labels[N];
    for (uint32_t ex = 0; ex < 50; ex++) {
        for (int p = 0; p < N; p++) {
            static const int32_t pool[] = {CLS, SEP, PAD, 100, 104, 2000, 2001, 2002};
            ids[p] = pool[(p * 5 + ex) % 8];
        }
        memcpy(orig, ids, sizeof ids);
        int s = bt_mlm_mask(&c, 77, ex, ex, ids, NULL, N, labels);
        int eligible = 0;
        for (int p = 0; p < N; p++) {
            int special = orig[p] == CLS || orig[p] == SEP || orig[p] == PAD || orig[p] == 100 || orig[p] == 104;
            if (special) {
                assert_int_equal(labels[p], BT_MLM_IGNORE);
                assert_int_equal(ids[p], orig[p]);
            } else {
                eligible++;
                assert_int_equal(labels[p], orig[p]);
            }
        }
        assert_int_equal(s, eligible);
    }
    /* probability 0 selects nothing */
    c.probability = 0.0f;
    for (int p = 0; p < N; p++) ids[p] = 2000 + p;
    assert_int_equal(bt_mlm_mask(&c, 77, 0, 0, ids, NULL, N, labels), 0);
}

static int mask_of(uint64_t seed, uint32_t epoch, uint32_t ex, int32_t *ids, int32_t *labels, int n)
{
    bt_mlm_config c = cfg();
    ids[0] = CLS;
    for (int p = 1; p < n - 1; p++) ids[p] = 3000 + p;
    ids[n - 1] = SEP;
    return bt_mlm_mask(&c, seed, epoch, ex, ids, NULL, n, labels);
}

static void test_determinism(void **state)
{
    (void)state;
    enum { N = 256 };
    int32_t a[N], la[N], b[N], lb[N];
    mask_of(5, 2, 11, a, la, N);
    mask_of(5, 2, 11, b, lb, N);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_equal(la, lb, sizeof la);
    /* a prefix of a longer sequence masks the same: draws depend on position only */
    int32_t c[N + 40], lc[N + 40];
    mask_of(5, 2, 11, c, lc, N + 40);
    assert_memory_equal(a + 1, c + 1, (N - 2) * sizeof *a);
    /* each key changes the mask */
    mask_of(5, 3, 11, b, lb, N);
    assert_memory_not_equal(la, lb, sizeof la);
    mask_of(5, 2, 12, b, lb, N);
    assert_memory_not_equal(la, lb, sizeof la);
    mask_of(6, 2, 11, b, lb, N);
    assert_memory_not_equal(la, lb, sizeof la);
    mask_of(5, BT_MLM_EVAL_EPOCH, 11, b, lb, N);
    assert_memory_not_equal(la, lb, sizeof la);
    mask_of(5, BT_MLM_EVAL_EPOCH, 11, a, la, N);
    assert_memory_equal(la, lb, sizeof la);
}

static void test_whole_word(void **state)
{
    (void)state;
    enum { N = 510 };
    bt_mlm_config c = cfg();
    c.whole_word = 1;
    int32_t ids[N], orig[N], labels[N];
    uint8_t cont[N];
    long words = 0, wsel = 0;
    for (uint32_t ex = 0; ex < 100; ex++) {
        /* words of 1..4 pieces, with [SEP] in the middle and a "##" piece right after it */
        ids[0] = CLS;
        cont[0] = 0;
        int p = 1, w = 0;
        while (p < N - 1) {
            int pieces = 1 + (int)((ex + (uint32_t)w * 7) % 4);
            for (int k = 0; k < pieces && p < N - 1; k++, p++) {
                ids[p] = 5000 + p;
                cont[p] = k > 0;
            }
            w++;
        }
        ids[200] = SEP;
        cont[201] = 1; /* continuation after a special: starts its own word */
        ids[N - 1] = SEP;
        cont[N - 1] = 0;
        memcpy(orig, ids, sizeof ids);
        bt_mlm_mask(&c, 99, 4, ex, ids, cont, N, labels);
        for (int q = 1; q < N - 1; q++) {
            if (orig[q] == SEP) continue;
            int start = !cont[q] || orig[q - 1] == SEP || orig[q - 1] == CLS;
            if (start) {
                words++;
                wsel += labels[q] != BT_MLM_IGNORE;
                continue;
            }
            /* a continuation piece follows its word's first piece */
            int first = q;
            while (first > 1 && cont[first] && orig[first - 1] != SEP) first--;
            assert_int_equal(labels[q] != BT_MLM_IGNORE, labels[first] != BT_MLM_IGNORE);
            if (labels[first] != BT_MLM_IGNORE) {
                /* same action: [MASK] with [MASK], kept with kept */
                assert_int_equal(ids[q] == MASK, ids[first] == MASK);
                assert_int_equal(ids[q] == orig[q], ids[first] == orig[first]);
            }
        }
    }
    double rate = (double)wsel / words;
    printf("words %ld selected %.4f\n", words, rate);
    assert_true(fabs(rate - 0.15) < 5 * sqrt(0.15 * 0.85 / words));
    /* whole words with no continuation flags (or none given) = per-token masking */
    int32_t a[N], la[N], d[N], ld[N];
    mask_of(1, 1, 1, a, la, N); /* per token, HF defaults */
    memset(cont, 0, sizeof cont);
    for (int pass = 0; pass < 2; pass++) {
        d[0] = CLS;
        for (int p = 1; p < N - 1; p++) d[p] = 3000 + p;
        d[N - 1] = SEP;
        bt_mlm_mask(&c, 1, 1, 1, d, pass ? NULL : cont, N, ld);
        assert_memory_equal(ld, la, sizeof la);
        assert_memory_equal(d, a, sizeof a);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocks_concat),   cmocka_unit_test(test_blocks_line),
        cmocka_unit_test(test_blocks_errors),   cmocka_unit_test(test_wrap),
        cmocka_unit_test(test_config_check),    cmocka_unit_test(test_golden),
        cmocka_unit_test(test_rates),           cmocka_unit_test(test_random_ids_uniform),
        cmocka_unit_test(test_specials_never),  cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_whole_word),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
