/* engine/metrics.c — metrics and the metrics.jsonl appender (see metrics.h). */
#include "engine/metrics.h"
#include "util/err.h"
#include "util/mem.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void bt_confusion_init(bt_confusion *c, int n_classes)
{
    c->n_classes = n_classes > 0 ? n_classes : 1;
    c->cm = bt_xcalloc((size_t)c->n_classes * (size_t)c->n_classes, sizeof *c->cm);
    c->total = 0;
}

void bt_confusion_free(bt_confusion *c)
{
    free(c->cm);
    memset(c, 0, sizeof *c);
}

void bt_confusion_reset(bt_confusion *c)
{
    memset(c->cm, 0, (size_t)c->n_classes * (size_t)c->n_classes * sizeof *c->cm);
    c->total = 0;
}

int bt_confusion_add(bt_confusion *c, int gold, int pred)
{
    if (gold < 0 || gold >= c->n_classes || pred < 0 || pred >= c->n_classes)
        return bt_fail(BT_EDATA, "confusion matrix: label %d / prediction %d outside 0..%d", gold, pred,
                       c->n_classes - 1);
    c->cm[(size_t)gold * (size_t)c->n_classes + (size_t)pred]++;
    c->total++;
    return BT_OK;
}

static void class_counts(const bt_confusion *c, int k, int64_t *tp, int64_t *pred, int64_t *gold)
{
    int n = c->n_classes;
    *tp = c->cm[(size_t)k * (size_t)n + (size_t)k];
    *pred = *gold = 0;
    for (int i = 0; i < n; i++) {
        *pred += c->cm[(size_t)i * (size_t)n + (size_t)k];
        *gold += c->cm[(size_t)k * (size_t)n + (size_t)i];
    }
}

void bt_confusion_class(const bt_confusion *c, int k, double *p, double *r, double *f)
{
    int64_t tp, pred, gold;
    class_counts(c, k, &tp, &pred, &gold);
    *p = pred ? (double)tp / (double)pred : 0.0;
    *r = gold ? (double)tp / (double)gold : 0.0;
    *f = (tp && (pred + gold)) ? 2.0 * (double)tp / (double)(pred + gold) : 0.0;
}

void bt_confusion_metrics(const bt_confusion *c, bt_cls_metrics *m)
{
    memset(m, 0, sizeof *m);
    int n = c->n_classes;
    int64_t correct = 0;
    for (int k = 0; k < n; k++) correct += c->cm[(size_t)k * (size_t)n + (size_t)k];
    m->n = c->total;
    m->accuracy = c->total ? (double)correct / (double)c->total : 0.0;
    int present = 0;
    for (int k = 0; k < n; k++) {
        int64_t tp, pred, gold;
        class_counts(c, k, &tp, &pred, &gold);
        if (!pred && !gold) continue; /* sklearn: labels = unique(y_true) | unique(y_pred) */
        double p, r, f;
        bt_confusion_class(c, k, &p, &r, &f);
        m->precision += p;
        m->recall += r;
        m->f1 += f;
        present++;
    }
    if (present) {
        m->precision /= present;
        m->recall /= present;
        m->f1 /= present;
    }
    if (n == 2) {
        double p, r, f;
        bt_confusion_class(c, 1, &p, &r, &f);
        m->f1_binary = f;
    } else {
        m->f1_binary = m->f1;
    }
}

int bt_argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

void bt_multilabel_add(bt_multilabel_counts *c, const float *logits, const float *gold, int n)
{
    int all = 1;
    for (int i = 0; i < n; i++) {
        int p = logits[i] > 0.0f, g = gold[i] > 0.5f;
        c->tp += p && g;
        c->fp += p && !g;
        c->fn += !p && g;
        all &= p == g;
    }
    c->exact += all;
    c->n++;
}

double bt_multilabel_micro_f1(const bt_multilabel_counts *c)
{
    int64_t d = 2 * c->tp + c->fp + c->fn;
    return d ? 2.0 * (double)c->tp / (double)d : 0.0;
}

double bt_multilabel_subset_accuracy(const bt_multilabel_counts *c)
{
    return c->n ? (double)c->exact / (double)c->n : 0.0;
}

double bt_metric_mse(const float *pred, const float *target, size_t n)
{
    if (!n) return 0.0;
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)pred[i] - (double)target[i];
        s += d * d;
    }
    return s / (double)n;
}

double bt_metric_pearson(const float *x, const float *y, size_t n)
{
    if (n < 2) return 0.0;
    double mx = 0, my = 0;
    for (size_t i = 0; i < n; i++) {
        mx += x[i];
        my += y[i];
    }
    mx /= (double)n;
    my /= (double)n;
    double sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < n; i++) {
        double a = x[i] - mx, b = y[i] - my;
        sxy += a * b;
        sxx += a * a;
        syy += b * b;
    }
    if (sxx <= 0 || syy <= 0) return 0.0;
    return sxy / sqrt(sxx * syy);
}

double bt_metric_perplexity(double mean_loss)
{
    if (isnan(mean_loss)) return NAN;
    if (mean_loss > 709.0) return INFINITY;
    return exp(mean_loss);
}

int bt_metric_higher_is_better(const char *name)
{
    static const char *const lower[] = {"loss", "mse", "perplexity", "eval_loss", NULL};
    for (int i = 0; lower[i]; i++)
        if (!strcmp(name, lower[i])) return 0;
    return 1;
}

/* ------------------------------------------------------------- the log */

struct bt_metrics_log {
    FILE *f;
    char *path;
};

int bt_metrics_log_open(const char *path, bt_metrics_log **out)
{
    *out = NULL;
    FILE *f = fopen(path, "a+");
    if (!f) return bt_fail(BT_EIO, "%s: cannot open for appending: %s", path, strerror(errno));
    /* a writer killed mid-line leaves no trailing newline: start a fresh line */
    if (fseek(f, 0, SEEK_END) == 0 && ftell(f) > 0) {
        if (fseek(f, -1, SEEK_END) == 0) {
            int ch = fgetc(f);
            fseek(f, 0, SEEK_END);
            if (ch != '\n') fputc('\n', f);
        }
    }
    bt_metrics_log *l = bt_xcalloc(1, sizeof *l);
    l->f = f;
    l->path = bt_xstrdup(path);
    *out = l;
    return BT_OK;
}

static void set_num(json_t *o, const char *k, double v)
{
    json_object_set_new(o, k, isfinite(v) ? json_real(v) : json_null());
}

static int write_obj(bt_metrics_log *l, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER); /* full precision: times are epoch seconds */
    json_decref(o);
    if (!s) return bt_fail(BT_EINTERNAL, "%s: cannot encode a metrics record", l->path);
    int ok = fputs(s, l->f) >= 0 && fputc('\n', l->f) != EOF && fflush(l->f) == 0;
    free(s);
    if (!ok) return bt_fail(BT_EIO, "%s: write failed: %s", l->path, strerror(errno));
    return BT_OK;
}

int bt_metrics_log_append(bt_metrics_log *l, int64_t step, double epoch, const char *split, double loss, double lr,
                          const bt_metric_value *v, int n, double time)
{
    json_t *o = json_object();
    json_object_set_new(o, "step", json_integer(step));
    set_num(o, "epoch", epoch);
    json_object_set_new(o, "split", json_string(split));
    if (!isnan(loss)) set_num(o, "loss", loss);
    if (!isnan(lr)) set_num(o, "lr", lr);
    for (int i = 0; i < n; i++) set_num(o, v[i].name, v[i].value);
    set_num(o, "time", time);
    return write_obj(l, o);
}

int bt_metrics_log_segment(bt_metrics_log *l, int64_t step, int segment, double time)
{
    json_t *o = json_object();
    json_object_set_new(o, "event", json_string("segment_start"));
    json_object_set_new(o, "step", json_integer(step));
    json_object_set_new(o, "segment", json_integer(segment));
    set_num(o, "time", time);
    return write_obj(l, o);
}

int bt_metrics_log_write_json(bt_metrics_log *l, json_t *o)
{
    return write_obj(l, o);
}

int bt_metrics_log_sync(bt_metrics_log *l)
{
    if (fflush(l->f) != 0 || fsync(fileno(l->f)) != 0)
        return bt_fail(BT_EIO, "%s: fsync failed: %s", l->path, strerror(errno));
    return BT_OK;
}

void bt_metrics_log_close(bt_metrics_log *l)
{
    if (!l) return;
    fclose(l->f);
    free(l->path);
    free(l);
}
