/* engine/data.h — training data: TSV, CSV, JSONL and plain-text readers,
 * label maps, the token-id cache file, and the deterministic epoch order.
 *
 * Owns: turning a data file into a `bt_dataset` of examples (text, optional
 * second text, label), with every malformed row reported as
 * "path:line: what is wrong; what to do" (or skipped and counted when asked);
 * the label list (explicit, or the sorted labels found: integer-looking labels
 * sort numerically so 0..K-1 keep their ids); the cache file of tokenized ids
 * (versioned, checksummed; format in docs/jobs.md); and the per-epoch
 * permutation (Philox stream BT_STREAM_DATA_ORDER) with its cursor.
 * Must not: tokenize (the tokenizer fills `tokens` later), read CoNLL files
 * (engine/conll.h), or know about job files (the runner maps job keys to
 * bt_data_options).
 *
 * Formats:
 *   TSV   fields split on TAB, taken literally (no quoting; a trailing CR is
 *         dropped). Use CSV for fields that need quotes.
 *   CSV   RFC 4180: ',' separated; "quoted" fields may hold commas, CR/LF and
 *         doubled quotes (""); only ',' or the end of the line may follow a
 *         closing quote. Blank lines are skipped.
 *   JSONL one JSON object per line; columns are keys. Blank lines skipped.
 *   TEXT  one text per non-blank line (MLM corpora); no labels.
 * A UTF-8 byte-order mark at the start is ignored; text must be valid UTF-8.
 */
#ifndef BATON_ENGINE_DATA_H
#define BATON_ENGINE_DATA_H

#include <stddef.h>
#include <stdint.h>

/* Same order as the job's [data] format enum. */
typedef enum { BT_DATA_AUTO = 0, BT_DATA_TSV, BT_DATA_CSV, BT_DATA_JSONL, BT_DATA_TEXT, BT_DATA_CONLL } bt_data_format;
/* Same order as the job's [data] header enum. */
typedef enum { BT_HEADER_AUTO = 0, BT_HEADER_YES = 1, BT_HEADER_NO = 2 } bt_data_header;

typedef enum {
    BT_LABELS_NONE = 0,       /* no label column (MLM) */
    BT_LABELS_CLASS = 1,      /* one class per example: ex.label */
    BT_LABELS_MULTI = 2,      /* a set of classes: ds.multi[ex.labels_off ..] */
    BT_LABELS_REGRESSION = 3, /* a number: ex.target */
} bt_label_kind;

typedef struct {
    bt_data_format format;      /* AUTO: from the file extension */
    bt_data_header header;      /* TSV/CSV */
    const char *text_column;    /* header name, JSON key, or 0-based index; "auto" or NULL: auto */
    const char *pair_column;    /* NULL or "": single texts */
    const char *label_column;   /* "auto" or NULL: auto; ignored for BT_LABELS_NONE */
    bt_label_kind label_kind;
    const char *const *labels;  /* explicit label list (id = position), or NULL: collect */
    int n_labels;
    const char *label_separator;/* MULTI within one field; NULL: "|" */
    int skip_malformed;         /* 1: skip and count bad rows instead of failing */
    int64_t limit;              /* > 0: keep only the first N examples */
    /* Prediction input (`baton predict` on a table): a column of row ids
     * passed through to the output. NULL or "": none; "auto": the column (or
     * JSON key) `id` when there is one; else a header name, JSON key or
     * 0-based index that must exist. Ids must be non-empty (JSON: a string
     * or an integer). */
    const char *id_column;
    /* What a row error tells the user to do (NULL: "fix the row or set
     * [data] skip_malformed = true"). */
    const char *row_hint;
} bt_data_options;

#define BT_DATA_NO_TEXT SIZE_MAX
enum { BT_DATA_COL_TEXT = 0, BT_DATA_COL_PAIR, BT_DATA_COL_LABEL, BT_DATA_COL_ID };

typedef struct {
    size_t text;          /* offset of the NUL-terminated text in ds->text */
    size_t pair;          /* second text, or BT_DATA_NO_TEXT */
    uint32_t line;        /* 1-based line where the record starts (for messages) */
    int32_t label;        /* BT_LABELS_CLASS: class id; else -1 */
    float target;         /* BT_LABELS_REGRESSION */
    uint32_t labels_off;  /* BT_LABELS_MULTI: ds->multi[labels_off .. labels_off+n_labels) */
    uint32_t n_labels;
    size_t id;            /* offset of the NUL-terminated row id in ds->text, or BT_DATA_NO_TEXT */
} bt_example;

/* Rows of int32 ids: row r = ids[off[r] .. off[r+1]). The payload of the
 * token cache; the tokenizer fills one row per example. */
typedef struct {
    uint64_t n_rows;
    uint64_t *off; /* [n_rows + 1] */
    int32_t *ids;  /* [off[n_rows]] */
} bt_id_table;

typedef struct {
    char *path;             /* for messages */
    bt_data_format format;  /* resolved */
    char *text;             /* all texts, NUL-terminated, back to back */
    size_t text_len;
    bt_example *ex;         /* [n] */
    size_t n;
    bt_label_kind label_kind;
    char **labels;          /* [n_labels] the label list (CLASS, MULTI) */
    int n_labels;
    int32_t *multi;         /* [n_multi] MULTI label ids */
    size_t n_multi;
    int has_pair;
    int has_id;             /* examples carry ex.id (id_column) */
    char *column_names[4];  /* resolved column names (header name or JSON key; NULL when the
                             * file has no header): BT_DATA_COL_TEXT, _PAIR, _LABEL, _ID */
    size_t n_skipped;       /* malformed rows skipped (skip_malformed) */
    char *first_skip;       /* message of the first skipped row, or NULL */
    uint8_t sha256[32];     /* of the file's bytes */
    bt_id_table tokens;     /* empty until tokenized */
} bt_dataset;

/* Reads a data file. BT_ENOINPUT missing file; BT_EDATA malformed content
 * ("path:line: ..."); BT_ECONFIG options that do not fit the file (a column
 * name not in the header, labels for a TEXT file, an unknown extension). On
 * failure *ds is zeroed. */
int bt_data_load(const char *path, const bt_data_options *o, bt_dataset *ds);
/* The same from memory; name appears in messages (no sha256 of a file: of buf). */
int bt_data_parse(const char *buf, size_t len, const char *name, const bt_data_options *o, bt_dataset *ds);
void bt_data_free(bt_dataset *ds);

static inline const char *bt_example_text(const bt_dataset *ds, size_t i) { return ds->text + ds->ex[i].text; }
static inline const char *bt_example_pair(const bt_dataset *ds, size_t i)
{
    return ds->ex[i].pair == BT_DATA_NO_TEXT ? NULL : ds->text + ds->ex[i].pair;
}
static inline const char *bt_example_id(const bt_dataset *ds, size_t i)
{
    return ds->ex[i].id == BT_DATA_NO_TEXT ? NULL : ds->text + ds->ex[i].id;
}

/* Format from a file name's extension (BT_DATA_AUTO when unknown). */
bt_data_format bt_data_format_from_name(const char *path);
const char *bt_data_format_name(bt_data_format f);

/* Checks text is valid UTF-8 (no overlongs, surrogates or > U+10FFFF);
 * returns -1 if valid, else the byte offset of the first bad byte. */
long bt_utf8_invalid_at(const char *s, size_t n);

/* ---- token cache ---- */

#define BT_ID_CACHE_MAGIC "BTIDS\0\0\1"
#define BT_ID_CACHE_VERSION 1u

/* key = SHA-256("baton-id-cache/1\n" || data_sha256 || vocab_sha256 || settings),
 * where settings is a canonical text of everything else that changes the ids
 * (max_seq_len, pair column, lowercase, task, ...). */
void bt_id_cache_key(const uint8_t data_sha256[32], const uint8_t vocab_sha256[32], const char *settings,
                     uint8_t key[32]);
/* Writes atomically (temp, fsync, rename). */
int bt_id_cache_write(const char *path, const uint8_t key[32], const bt_id_table *t);
/* Reads and verifies: BT_ENOINPUT when absent; BT_EDATA when damaged (bad
 * magic, version, sizes, checksum) or stale (different key) — rebuild then. */
int bt_id_cache_read(const char *path, const uint8_t key[32], bt_id_table *t);
void bt_id_table_free(bt_id_table *t);

/* ---- a held-out evaluation set ([data] eval_split) ---- */

/* Moves a fraction of ds's examples into *held (engine/data_split.c).
 * Stratified: every class of a BT_LABELS_CLASS set gives round(frac x its
 * count) examples, never all of them (a class of one stays in training);
 * other label kinds draw from all examples as one group. Which examples go is
 * a pure function of (seed, frac, the labels in file order): Fisher-Yates per
 * group with bt_random4(seed, BT_STREAM_EVAL_SPLIT, group, i, i >> 32, 0).
 * Both parts keep file order. *held gets its own copy of the texts and
 * labels, the file's sha256, and path "<path> (held-out N%)". frac in (0, 1).
 * BT_EDATA (message names the file) when no example would be held out; ds
 * is unchanged then. */
int bt_data_split(bt_dataset *ds, double frac, uint64_t seed, bt_dataset *held);

/* ---- deterministic order ---- */

/* perm[0..n) = a permutation of 0..n-1 that is a pure function of (seed,
 * epoch, n): Fisher-Yates from i = n-1 down to 1, swapping i with
 * j = floor(u64 * (i+1) / 2^64) where u64 = the first two words of
 * bt_random4(seed, BT_STREAM_DATA_ORDER, epoch, i mod 2^32, i / 2^32, 0). */
void bt_data_permutation(uint64_t seed, uint32_t epoch, size_t n, uint32_t *perm);

/* Where training is in the data: epoch (0-based) and position in its permutation. */
typedef struct {
    uint32_t epoch;
    uint64_t position;
} bt_data_cursor;

/* Takes up to `batch` example indices from perm (the permutation of
 * cursor->epoch, n entries) into out and advances the cursor; the last batch
 * of an epoch may be short (as PyTorch's DataLoader without drop_last), after
 * which the cursor is (epoch + 1, 0). Returns the count (0 only if n == 0). */
size_t bt_data_next_batch(const uint32_t *perm, size_t n, bt_data_cursor *cursor, size_t batch, uint32_t *out);

#endif
