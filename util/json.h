/* util/json.h — reading JSON written by other programs (Hugging Face model
 * directories) the way Python's json module reads it.
 *
 * Owns: the leniency Transformers users rely on without knowing it: integers
 * of any size (tokenizer_config.json's "no limit" model_max_length is
 * 1000000000000000019884624838656, beyond int64), reals beyond double
 * (Python gives inf), the literals NaN / Infinity / -Infinity, and repeated
 * keys (the last one wins), and a getter for integers that may be huge.
 * Must not: be used for baton's own formats (archives, trainer.json,
 * manifests), which are strict on purpose, or know what any key means.
 */
#ifndef BATON_UTIL_JSON_H
#define BATON_UTIL_JSON_H

#include <jansson.h>
#include <stddef.h>

/* Parses text[0..len) as Python's json.loads would. An integer outside
 * int64 becomes a real of the same magnitude (so range checks reject or
 * clamp it), a real beyond double becomes +-DBL_MAX (Python: +-inf), NaN
 * becomes null. NULL on a syntax error, with *err filled as jansson does. */
json_t *bt_json_loads_py(const char *text, size_t len, json_error_t *err);

/* Reads the file at path (at most max_bytes) with bt_json_loads_py into
 * *out. Returns 0, or after bt_fail(): BT_ENOINPUT (missing), BT_EIO, or
 * BT_ECONFIG for a syntax error naming path:line:column and what_to_do. */
int bt_json_load_file_py(const char *path, size_t max_bytes, const char *what_to_do, json_t **out);

/* A JSON integer as long long. A real beyond the int64 range (how
 * bt_json_loads_py gives a huge integer) is clamped to it with *clamped = 1,
 * so a range check can name the value. Returns -1 for anything else: an
 * integer key given as 6.0 is refused, as Transformers' code would fail on
 * it. clamped may be NULL. */
int bt_json_as_int64(const json_t *v, long long *out, int *clamped);

#endif
