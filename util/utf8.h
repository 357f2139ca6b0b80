/* util/utf8.h — one UTF-8 scalar value in, one out: what both tokenizers
 * (engine/tokenizer.c, the WordPiece fast path; engine/tokjson_*.c,
 * tokenizer.json pipelines) read and write text with.
 *
 * Owns: strict decoding (no overlongs, no surrogates, nothing past
 * U+10FFFF: such bytes are the caller's to replace or refuse) and encoding.
 * Header-only and inline: the tokenizers call it once per character.
 * Must not: allocate or know about replacement policy.
 */
#ifndef BATON_UTIL_UTF8_H
#define BATON_UTIL_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* The scalar value at p (p < end) into *cp; its length 1..4, or 0 when the
 * bytes there are not well-formed UTF-8. */
static inline int bt_utf8_decode(const uint8_t *p, const uint8_t *end, int32_t *cp)
{
    uint8_t b = p[0];
    size_t avail = (size_t)(end - p);
    if (b < 0x80) { *cp = b; return 1; }
    if (b < 0xC2) return 0;
    if (b < 0xE0) {
        if (avail < 2 || (p[1] & 0xC0) != 0x80) return 0;
        *cp = ((b & 0x1F) << 6) | (p[1] & 0x3F);
        return 2;
    }
    if (b < 0xF0) {
        if (avail < 3) return 0;
        uint8_t lo = b == 0xE0 ? 0xA0 : 0x80, hi = b == 0xED ? 0x9F : 0xBF;
        if (p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80) return 0;
        *cp = ((b & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F);
        return 3;
    }
    if (b < 0xF5) {
        if (avail < 4) return 0;
        uint8_t lo = b == 0xF0 ? 0x90 : 0x80, hi = b == 0xF4 ? 0x8F : 0xBF;
        if (p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
        *cp = ((b & 0x07) << 18) | ((p[1] & 0x3F) << 12) | ((p[2] & 0x3F) << 6) | (p[3] & 0x3F);
        return 4;
    }
    return 0;
}

/* cp (a scalar value) as 1..4 bytes at o; returns the count. */
static inline int bt_utf8_encode(int32_t cp, uint8_t *o)
{
    if (cp < 0x80) { o[0] = (uint8_t)cp; return 1; }
    if (cp < 0x800) { o[0] = (uint8_t)(0xC0 | (cp >> 6)); o[1] = (uint8_t)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (cp >> 12));
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | (cp >> 18));
    o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

#endif
