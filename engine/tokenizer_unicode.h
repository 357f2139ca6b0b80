/* engine/tokenizer_unicode.h — per-code-point classes for the BERT tokenizer
 * (internal to engine/tokenizer*.c; exposed for tests).
 *
 * Owns: the Unicode rules of BertNormalizer / BertPreTokenizer as the Rust
 * `tokenizers` crate applies them, derived from utf8proc plus the generated
 * exception table engine/tokenizer_unicode_exc.h (see docs/tokenizer.md).
 * Must not: allocate, or keep any mutable global state.
 */
#ifndef BATON_ENGINE_TOKENIZER_UNICODE_H
#define BATON_ENGINE_TOKENIZER_UNICODE_H

#include <stdint.h>

enum {
    TOKU_REMOVE = 1 << 0, /* clean_text drops it (control/format/private use, NUL, U+FFFD) */
    TOKU_SPACE  = 1 << 1, /* clean_text turns it into ' ' (White_Space, \t \n \r) */
    TOKU_CJK    = 1 << 2, /* handle_chinese_chars puts spaces around it */
    TOKU_DECOMP = 1 << 3, /* NFD changes it */
    TOKU_MN     = 1 << 4, /* strip_accents drops it (Mn, by the crate's table) */
    TOKU_CCC    = 1 << 5, /* non-zero canonical combining class (NFD reordering) */
    TOKU_LOWER  = 1 << 6, /* char::to_lowercase changes it */
    TOKU_PUNCT  = 1 << 7, /* BertPreTokenizer isolates it */
    TOKU_WS     = 1 << 8, /* BertPreTokenizer splits on it (char::is_whitespace) */
};

/* Flags of one code point (0..0x10FFFF, surrogates excluded by the decoder). */
uint16_t toku_flags(int32_t cp);
/* Canonical decomposition (NFD of one code point, at most 4 code points).
 * Returns the count; writes cp itself when it does not decompose. */
int toku_decompose(int32_t cp, int32_t out[4]);
/* Canonical combining class as the reference sees it. */
int toku_ccc(int32_t cp);
/* Lowercase (1 or 2 code points; U+0130 -> "i\u0307"). Returns the count. */
int toku_lower(int32_t cp, int32_t out[2]);
/* "utf8proc X.Y.Z" the tables come from. */
const char *toku_unicode_version(void);

#endif
