/* engine/tokenizer_files.c — reading the files of a model directory's
 * tokenizer as bytes (see tokenizer_files.h).
 */
#include "engine/tokenizer_files.h"
#include "engine/tokenizer_internal.h"
#include "util/err.h"
#include "util/file.h"
#include "util/mem.h"

#include <stdlib.h>
#include <string.h>

const char *const bt_tokfile_names[BT_TOKFILE_COUNT] = {"vocab.txt", "tokenizer.json", "tokenizer_config.json",
                                                        "special_tokens_map.json"};

void bt_tokenizer_files_free(bt_tokenizer_files *f)
{
    for (int i = 0; i < BT_TOKFILE_COUNT; i++) free(f->text[i]);
    memset(f, 0, sizeof *f);
}

int bt_tokenizer_files_read(const char *model_dir, const bt_tokenizer *tok, bt_tokenizer_files *f)
{
    memset(f, 0, sizeof *f);
    const char *src = bt_tokenizer_source(tok);
    int spm = !strcmp(src, "spm.model") || !strcmp(src, "sentencepiece.bpe.model");
    int json = spm || !strcmp(bt_tokenizer_source(tok), "tokenizer.json"), rc = BT_OK;
    for (int i = 0; i < BT_TOKFILE_COUNT && !rc; i++) {
        char *p = bt_path_join(model_dir, bt_tokfile_names[i]);
        int carried = i == BT_TOKFILE_VOCAB || json;
        if (spm && i == BT_TOKFILE_JSON) { /* the converted tokenizer.json travels in place of spm.model */
            char *sp = bt_path_join(model_dir, src);
            rc = tok_spm_json(model_dir, sp, &f->text[i]);
            free(sp);
            if (!rc) f->len[i] = strlen(f->text[i]);
        } else if (carried && bt_path_exists(p))
            rc = bt_read_file(p, i == BT_TOKFILE_VOCAB ? 256u << 20 : i == BT_TOKFILE_JSON ? 64u << 20 : 4u << 20,
                              &f->text[i], &f->len[i]);
        free(p);
        if (!rc && !f->text[i]) f->text[i] = bt_xstrdup("");
    }
    if (rc) bt_tokenizer_files_free(f);
    return rc;
}
