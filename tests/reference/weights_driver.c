/* tests/reference/weights_driver.c — compares two checkpoint files as baton
 * reads them (engine/model_weights.c: bt_weights_open, so model.safetensors
 * or pytorch_model.bin), for tests/reference/test_torch_bin.py.
 *
 *   weights_driver A B   same tensor names, dtypes, shapes, bytes, and the
 *                        same fp32 values from bt_st_read_f32 (floats only):
 *                        prints "same N tensors" and exits 0, else one line
 *                        per difference and exit 1
 *   weights_driver FILE  opens FILE: prints "N tensors" (exit 0) or the
 *                        error message (exit with its code)
 * Must not: judge anything beyond equality (the Python side says what is expected).
 */
#include "engine/model_weights.h"
#include "state/safetensors.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_float(bt_st_dtype d) { return d == BT_ST_F32 || d == BT_ST_F16 || d == BT_ST_BF16 || d == BT_ST_F64; }

static int compare(const bt_st_file *a, const bt_st_file *b)
{
    int bad = 0;
    if (bt_st_count(a) != bt_st_count(b)) {
        printf("count: %zu vs %zu\n", bt_st_count(a), bt_st_count(b));
        bad = 1;
    }
    for (size_t i = 0; i < bt_st_count(a); i++) {
        const bt_st_tensor *x = bt_st_get(a, i), *y = bt_st_find(b, x->name);
        if (!y) {
            printf("%s: only in the first\n", x->name);
            bad = 1;
            continue;
        }
        int same = x->dtype == y->dtype && x->ndim == y->ndim && x->nbytes == y->nbytes;
        for (int d = 0; same && d < x->ndim; d++) same = x->shape[d] == y->shape[d];
        if (!same) {
            printf("%s: dtype/shape differ (%s vs %s)\n", x->name, bt_st_dtype_name(x->dtype), bt_st_dtype_name(y->dtype));
            bad = 1;
            continue;
        }
        if (x->nbytes && memcmp(x->data, y->data, x->nbytes)) {
            printf("%s: bytes differ\n", x->name);
            bad = 1;
        }
        if (is_float(x->dtype) && x->numel) {
            float *fx = malloc((size_t)x->numel * sizeof *fx), *fy = malloc((size_t)x->numel * sizeof *fy);
            if (bt_st_read_f32(a, x, fx) || bt_st_read_f32(b, y, fy) ||
                memcmp(fx, fy, (size_t)x->numel * sizeof *fx)) {
                printf("%s: fp32 values differ\n", x->name);
                bad = 1;
            }
            free(fx);
            free(fy);
        }
    }
    for (size_t i = 0; i < bt_st_count(b); i++)
        if (!bt_st_find(a, bt_st_get(b, i)->name)) {
            printf("%s: only in the second\n", bt_st_get(b, i)->name);
            bad = 1;
        }
    if (!bad) printf("same %zu tensors\n", bt_st_count(a));
    return bad;
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: weights_driver A [B]\n");
        return 64;
    }
    bt_st_file *a = NULL, *b = NULL;
    int rc = bt_weights_open(argv[1], &a);
    if (!rc && argc == 3) rc = bt_weights_open(argv[2], &b);
    if (rc) {
        fprintf(stderr, "%s\n", bt_errmsg());
        bt_st_close(a);
        return rc;
    }
    if (argc == 2) printf("%zu tensors\n", bt_st_count(a));
    else rc = compare(a, b);
    bt_st_close(a);
    bt_st_close(b);
    return rc;
}
