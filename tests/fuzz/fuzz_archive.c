/* tests/fuzz/fuzz_archive.c — libFuzzer target for the checkpoint archive
 * reader (state/archive.c, state/manifest.c, state/safetensors.c): any input
 * must be refused with a message or accepted and fully readable, without a
 * crash, leak or out-of-bounds access. Build: make fuzz. */
#include "state/archive.h"
#include "util/err.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bt_archive_limits lim;
    bt_archive_limits_default(&lim);
    lim.model = lim.optim = lim.trainer = lim.vocab = 4u << 20; /* keep allocations fuzzer-sized */
    bt_archive *a = NULL;
    int rc = bt_archive_open_buffer(data, size, "fuzz.tar", &lim, "{\"lr\": 2e-05, \"seed\": 42, \"model\": \"tiny\"}",
                                    BT_ARCHIVE_KEEP_TENSORS, &a);
    if (rc == 0) {
        bt_st_file *m = NULL, *o = NULL;
        if (bt_archive_open_model(a, &m) == 0) bt_st_close(m);
        if (bt_archive_open_optim(a, &o) == 0) bt_st_close(o);
        (void)bt_archive_text(a, BT_M_TRAINER);
        bt_archive_close(a);
    } else if (!bt_errmsg()[0]) {
        __builtin_trap(); /* every refusal says why */
    }
    bt_err_clear();
    return 0;
}
