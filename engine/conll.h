/* engine/conll.h — token classification data: CoNLL files and label alignment.
 *
 * Owns: reading CoNLL-style files (one token per line, columns separated by
 * whitespace (or only tabs), the word in column 0 and the tag in the last or
 * a chosen column, a blank line between sentences, `-DOCSTART-` lines
 * skipped), the label list (collected: sorted bytewise with "O" first; or
 * given), and the alignment of word tags to sub-tokens (the label on each
 * word's first sub-token, -100 on the others and on [CLS]/[SEP]; truncation
 * keeps whole words where possible), the cutting of long sentences into
 * overlapping windows of whole words, and mapping token predictions back to
 * words.
 * Must not: tokenize (the caller gives per-word sub-token counts), compute
 * metrics (engine/entity_f1), or let malformed input reach an assert: every
 * error names file:line.
 */
#ifndef BATON_ENGINE_CONLL_H
#define BATON_ENGINE_CONLL_H

#include <stddef.h>
#include <stdint.h>

#define BT_CONLL_IGNORE (-100)

typedef enum {
    BT_CONLL_SEP_WHITESPACE = 0, /* any run of spaces and tabs separates columns (CoNLL-2003) */
    BT_CONLL_SEP_TAB = 1,        /* only tabs: words may contain spaces */
} bt_conll_sep;

typedef struct {
    int tag_column;                /* -1: the last column (default); else a 0-based column >= 1 */
    bt_conll_sep sep;
    const char *const *labels;     /* the label list (label id = index), or NULL to collect it */
    int n_labels;
} bt_conll_options;

typedef struct {
    char *text;          /* the file, words NUL-terminated in place */
    size_t *word;        /* [n_tokens] offset of each word in text */
    int32_t *tag;        /* [n_tokens] label id */
    size_t *sent;        /* [n_sents+1] sentence s = tokens sent[s] .. sent[s+1]-1 */
    uint32_t *sent_line; /* [n_sents] line number of each sentence's first token */
    size_t n_tokens, n_sents;
    char **labels;       /* [n_labels] heap copies */
    int n_labels;
    char *path;          /* for messages */
} bt_conll;

/* Reads and parses a CoNLL file. BT_ENOINPUT missing; BT_EDATA malformed
 * ("path:line: what; what to do"); BT_ECONFIG bad options or a given label
 * list with duplicates. On failure *out is zeroed. opts may be NULL (defaults). */
int bt_conll_read(const char *path, const bt_conll_options *opts, bt_conll *out);
/* The same for text in memory (copied); name labels messages. */
int bt_conll_parse(const char *text, size_t len, const char *name, const bt_conll_options *opts, bt_conll *out);
void bt_conll_free(bt_conll *c);

static inline const char *bt_conll_word(const bt_conll *c, size_t token) { return c->text + c->word[token]; }

/* The label id of name, or -1. */
int bt_conll_label_id(const bt_conll *c, const char *name);

/* Builds one model input from a sentence.
 *   tok_ids   [sum(word_ntok)] sub-token ids of the words, concatenated
 *   word_ntok [n_words] sub-tokens per word (0 allowed: such a word cannot be
 *             labelled or predicted)
 *   word_tags [n_words] label ids, or NULL (prediction: every label -100)
 *   ids_out, labels_out [max_seq_len]: [CLS] tokens [SEP]; the label of a word
 *             on its first sub-token, BT_CONLL_IGNORE elsewhere
 * Truncation: words are kept while all their sub-tokens fit in max_seq_len-2;
 * if even the first word does not fit, its first max_seq_len-2 sub-tokens are
 * kept. *n_out = tokens written, *words_kept = words kept (a prefix).
 * BT_ECONFIG when max_seq_len < 3, BT_EDATA on a negative count. */
int bt_conll_align(const int32_t *tok_ids, const int32_t *word_ntok, const int32_t *word_tags, int n_words,
                   int max_seq_len, int32_t cls_id, int32_t sep_id, int32_t *ids_out, int32_t *labels_out,
                   int *n_out, int *words_kept);

/* One window of a sentence: the words [begin, end) go into one model input;
 * the words [own_begin, own_end) are the ones this window labels (training)
 * and predicts (evaluation, predict). The own ranges of a sentence's windows
 * partition its words in order. */
typedef struct {
    int begin, end;
    int own_begin, own_end;
} bt_conll_window;

/* Cuts a sentence into windows of whole words, each fitting max_seq_len - 2
 * sub-tokens, so that no word is lost to truncation (HF's token-classification
 * pipeline with a stride does the same for prediction).
 *   word_ntok [n_words] sub-tokens per word
 *   overlap   sub-tokens of context repeated between consecutive windows: the
 *             next window starts at the earliest word such that the words it
 *             repeats hold at most overlap sub-tokens and the next new word
 *             still fits (it always starts at least one word later)
 *   out       room for max(1, n_words) windows
 * A sentence that fits is one window [0, n_words). A word longer than a whole
 * window gets a window of its own (bt_conll_align keeps its first pieces).
 * Words repeated by two windows belong to the earlier one for the first half
 * (rounded up) and to the later one for the rest, so each word is predicted
 * with context on both sides where the sentence has it. An empty sentence is
 * one window [0, 0). Returns the window count (>= 1). */
int bt_conll_windows(const int32_t *word_ntok, int n_words, int max_seq_len, int overlap, bt_conll_window *out);

/* Word-level predictions from per-position predictions of one aligned input:
 * word w < words_kept with sub-tokens gets token_pred[position of its first
 * sub-token]; truncated words and words without sub-tokens get fill (the "O"
 * id), so they count against recall instead of silently vanishing. */
void bt_conll_word_preds(const int32_t *token_pred /*[n_out]*/, const int32_t *word_ntok, int n_words, int words_kept,
                         int32_t fill, int32_t *word_pred /*[n_words]*/);

#endif
