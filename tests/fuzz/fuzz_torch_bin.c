/* tests/fuzz/fuzz_torch_bin.c — libFuzzer target for the pytorch_model.bin
 * reader (state/zip.c, state/pickle.c, state/torch_bin.c): any input must be
 * refused with a message, or accepted with every float tensor readable,
 * without a crash, leak or out-of-bounds access. Build: make fuzz. */
#include "state/torch_bin.h"
#include "util/err.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bt_st_file *f = NULL;
    int rc = bt_pt_open_buffer(data, size, "fuzz.bin", &f);
    if (rc == 0) {
        for (size_t i = 0; i < bt_st_count(f); i++) {
            const bt_st_tensor *t = bt_st_get(f, i);
            if (t->dtype != BT_ST_F32 && t->dtype != BT_ST_F16 && t->dtype != BT_ST_BF16 && t->dtype != BT_ST_F64)
                continue;
            float *dst = malloc((size_t)t->numel * sizeof *dst + 1);
            if (dst && bt_st_read_f32(f, t, dst)) __builtin_trap(); /* an accepted float tensor reads */
            free(dst);
        }
        bt_st_close(f);
    } else if (!bt_errmsg()[0]) {
        __builtin_trap(); /* every refusal says why */
    }
    bt_err_clear();
    return 0;
}
