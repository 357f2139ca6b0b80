/* engine/metrics.h — evaluation metrics and the metrics.jsonl log.
 *
 * Owns: accuracy, precision/recall/F1 (macro as scikit-learn's default
 * average='macro' with zero_division=0: averaged over the labels present in
 * the gold or predicted labels; binary F1 of class 1), the confusion matrix,
 * multi-label micro F1 and subset accuracy, MSE and Pearson correlation for
 * regression, perplexity from a mean loss, and the append-only metrics.jsonl
 * (one JSON object per line). Entity-level F1 lives in engine/entity_f1.h.
 * Must not: run the model (callers hand in predictions), or rewrite history
 * (the log is only appended; a resumed segment appends after the last line).
 */
#ifndef BATON_ENGINE_METRICS_H
#define BATON_ENGINE_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* ---- classification ---- */
typedef struct {
    int n_classes;
    int64_t *cm;   /* [n_classes * n_classes]: cm[gold * n + pred] */
    int64_t total;
} bt_confusion;

void bt_confusion_init(bt_confusion *c, int n_classes);
void bt_confusion_free(bt_confusion *c);
void bt_confusion_reset(bt_confusion *c);
/* BT_EDATA when an id is outside [0, n_classes). */
int bt_confusion_add(bt_confusion *c, int gold, int pred);

typedef struct {
    double accuracy;
    double precision, recall, f1;   /* macro */
    double f1_binary;               /* F1 of class 1 when n_classes == 2, else the macro F1 */
    int64_t n;
} bt_cls_metrics;

void bt_confusion_metrics(const bt_confusion *c, bt_cls_metrics *m);
/* Per class (zero_division = 0). */
void bt_confusion_class(const bt_confusion *c, int k, double *precision, double *recall, double *f1);

/* Index of the largest logit (the first on ties), as argmax. */
int bt_argmax(const float *logits, int n);

/* ---- multi-label ---- */
typedef struct {
    int64_t tp, fp, fn;
    int64_t exact, n;   /* examples whose whole label set was right */
} bt_multilabel_counts;
/* gold[n_labels] in {0,1}; a label is predicted when its logit > 0 (sigmoid > 0.5). */
void bt_multilabel_add(bt_multilabel_counts *c, const float *logits, const float *gold, int n_labels);
double bt_multilabel_micro_f1(const bt_multilabel_counts *c);
double bt_multilabel_subset_accuracy(const bt_multilabel_counts *c);

/* ---- regression ---- */
double bt_metric_mse(const float *pred, const float *target, size_t n);
/* Pearson's r; 0 when either side has zero variance (as NaN is useless for
 * "best checkpoint"), and n < 2. */
double bt_metric_pearson(const float *pred, const float *target, size_t n);

/* ---- MLM ---- */
/* exp(mean_loss), +inf when it overflows. */
double bt_metric_perplexity(double mean_loss);

/* ---- metric names: which direction is better ---- */
/* 1 when larger is better (accuracy, f1, pearson...), 0 when smaller is
 * (loss, mse, perplexity). */
int bt_metric_higher_is_better(const char *name);

/* ---- metrics.jsonl ---- */
typedef struct {
    const char *name;
    double value;    /* NaN/inf are written as null */
} bt_metric_value;

typedef struct bt_metrics_log bt_metrics_log;

/* Opens (creating) path for appending. If the file does not end with a
 * newline (a killed writer), a newline is added first so the next record
 * starts on its own line. */
int bt_metrics_log_open(const char *path, bt_metrics_log **out);
/* {"step":..,"epoch":..,"split":"train"|"eval",["loss":..],["lr":..],<values>,"time":..}
 * loss / lr NaN: omitted. time: epoch seconds. Flushed (fflush) per record. */
int bt_metrics_log_append(bt_metrics_log *l, int64_t step, double epoch, const char *split, double loss, double lr,
                          const bt_metric_value *v, int n, double time);
/* {"event":"segment_start","step":..,"segment":..,"time":..} — the plot
 * draws segment boundaries from these. */
int bt_metrics_log_segment(bt_metrics_log *l, int64_t step, int segment, double time);
/* Writes the JSON object o as one line; takes over the caller's reference. */
struct json_t;
int bt_metrics_log_write_json(bt_metrics_log *l, struct json_t *o);
/* fsync (e.g. before committing an archive). */
int bt_metrics_log_sync(bt_metrics_log *l);
void bt_metrics_log_close(bt_metrics_log *l);

#endif
