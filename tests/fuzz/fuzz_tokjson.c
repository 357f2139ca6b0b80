/* tests/fuzz/fuzz_tokjson.c — libFuzzer target for the tokenizer.json loader
 * and pipeline (engine/tokjson_*.c): the input is a tokenizer.json, then a
 * 0xFF byte, then a text (may be invalid UTF-8). Any file must be refused
 * with a message or loaded; a loaded one must encode the text (or refuse it
 * with a message) without a crash, leak or out-of-bounds access.
 * Build: make fuzz. */
#include "engine/tokjson.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *sep = memchr(data, 0xFF, size);
    size_t jl = sep ? (size_t)(sep - data) : size;
    const char *text = sep ? (const char *)sep + 1 : "";
    size_t tl = sep ? size - jl - 1 : 0;
    tj *t = NULL;
    int rc = tj_load((const char *)data, jl, "fuzz/tokenizer.json", &t);
    if (rc) {
        if (!bt_errmsg()[0]) __builtin_trap(); /* every refusal says why */
        bt_err_clear();
        return 0;
    }
    tj_scratch *w = calloc(1, sizeof *w);
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    for (int replace = 0; replace < 2; replace++) {
        n = 0;
        rc = tj_encode_text(t, text, tl, replace, w, &ids, &n, &cap, NULL, NULL);
        if (rc && !bt_errmsg()[0]) __builtin_trap();
        for (size_t i = 0; !rc && i < n; i++)
            if (ids[i] < 0 || (size_t)ids[i] >= t->vocab_size) __builtin_trap(); /* an id outside the vocabulary */
        bt_err_clear();
    }
    free(ids);
    tj_scratch_free(w);
    tj_free(t);
    return 0;
}
