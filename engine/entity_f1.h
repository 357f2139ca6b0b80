/* engine/entity_f1.h — entity-level precision, recall and F1 as seqeval's default.
 *
 * Owns: turning tag sequences into entities exactly as seqeval's default
 * (conlleval-compatible, lenient) mode does — get_entities() with its
 * start_of_chunk/end_of_chunk rules, the scheme used by HF run_ner and
 * `evaluate.load("seqeval")` — and counting exact-match entities per type.
 * Tags: "O", or a prefix B/I/E/S followed by "-TYPE" (IOB2/BIO, IOBES, IOE
 * all decode); a bare prefix ("B") has type "_" as in seqeval. Lenient means:
 * an I- (or E-) after O, or after a different type, starts an entity; a type
 * change ends one. An entity counts as correct when type, first and last
 * word all match.
 * Micro-averaged P/R/F1 over all types plus per type; 0 where a denominator
 * is 0 (seqeval's zero_division default, without the warning).
 * Must not: know about tokens or sub-tokens (inputs are word-level label ids).
 */
#ifndef BATON_ENGINE_ENTITY_F1_H
#define BATON_ENGINE_ENTITY_F1_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int n_labels;
    char *prefix;   /* [n_labels] 'O', 'B', 'I', 'E', 'S' */
    int *type;      /* [n_labels] type id; the type of "O" is the id of "_" or -1 (as seqeval, "O" and bare tags share "_") */
    int n_types;
    char **types;   /* [n_types] type names, sorted bytewise (as seqeval's report) */
} bt_entity_scheme;

/* Decodes a label list. BT_ECONFIG (naming the label) when a label is neither
 * "O" nor [BIES] optionally followed by "-TYPE" — e.g. POS tags; use token
 * accuracy for those. */
int bt_entity_scheme_init(bt_entity_scheme *s, const char *const *labels, int n_labels);
void bt_entity_scheme_free(bt_entity_scheme *s);

typedef struct {
    int32_t type;
    int32_t first, last; /* word positions, inclusive */
} bt_entity;

/* Entities of one sentence of label ids (each in [0, n_labels)) into out
 * (room for n); returns how many. */
int bt_entity_extract(const bt_entity_scheme *s, const int32_t *tags, int n, bt_entity *out);

typedef struct {
    int n_types;
    int64_t *tp;     /* [n_types] correct predicted entities */
    int64_t *n_pred; /* [n_types] predicted entities */
    int64_t *n_true; /* [n_types] gold entities (support) */
} bt_entity_counts;

void bt_entity_counts_init(bt_entity_counts *c, const bt_entity_scheme *s);
void bt_entity_counts_free(bt_entity_counts *c);
void bt_entity_counts_reset(bt_entity_counts *c);
/* Adds one sentence (gold and predicted word-level label ids, both [n]).
 * Returns 0, or BT_EDATA when an id is outside the label list. */
int bt_entity_count(bt_entity_counts *c, const bt_entity_scheme *s, const int32_t *gold, const int32_t *pred, int n);

typedef struct {
    double precision, recall, f1;
    int64_t support; /* gold entities */
} bt_prf;

bt_prf bt_entity_micro(const bt_entity_counts *c);
bt_prf bt_entity_per_type(const bt_entity_counts *c, int type);

#endif
