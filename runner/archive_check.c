/* runner/archive_check.c — the content judgement of checkpoint archives
 * (see archive_check.h; the rules are listed in docs/checkpoints.md).
 */
#include "runner/archive_check.h"
#include "runner/devices.h"

#include "engine/model_config.h"
#include "engine/model_weights.h"
#include "engine/train.h"
#include "runner/task_longdoc.h"
#include "state/commit.h"
#include "util/err.h"
#include "util/mem.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ trainer.json */

typedef struct {
    const char *label;
    json_t *o;
} tj;

/* A short rendering of a JSON value for messages. */
static void show(const json_t *v, char *buf, size_t cap)
{
    if (!v) {
        snprintf(buf, cap, "absent");
        return;
    }
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    snprintf(buf, cap, "%.60s%s", s ? s : "?", s && strlen(s) > 60 ? "..." : "");
    free(s);
}

static int bad(const tj *t, const char *key, const char *want)
{
    char got[80];
    show(json_object_get(t->o, key), got, sizeof got);
    return bt_fail(BT_EDATA, "%s: trainer.json: \"%s\" must be %s (it is %s): the archive is invalid (edited, or "
                             "not written by this baton); use another archive",
                   t->label, key, want, got);
}

static int need_int(const tj *t, const char *key, long long lo, long long hi, long long *out)
{
    json_t *v = json_object_get(t->o, key);
    char want[96];
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        if (hi == INT64_MAX) snprintf(want, sizeof want, "an integer >= %lld", lo);
        else snprintf(want, sizeof want, "an integer in [%lld, %lld]", lo, hi);
        return bad(t, key, want);
    }
    *out = json_integer_value(v);
    return BT_OK;
}

static int need_type(const tj *t, const char *key, int ok, const char *want)
{
    return ok ? BT_OK : bad(t, key, want);
}

static int inconsistent(const tj *t, const char *what)
{
    return bt_fail(BT_EDATA, "%s: trainer.json is inconsistent: %s: the archive is invalid (edited, or not written "
                             "by this baton); use another archive",
                   t->label, what);
}

/* A fingerprint field as an integer, or -1 when absent / not an integer. */
static long long fp_int(json_t *fp, const char *key)
{
    json_t *v = json_object_get(fp, key);
    return json_is_integer(v) ? json_integer_value(v) : -1;
}

/* Types and ranges of every key of version 1 (unknown keys are allowed:
 * later additions within version 1 must stay optional). */
typedef struct {
    long long step, epoch, position, total, spe, segment, bad_evals, last_eval;
    int complete, forced;
    const char *stop;
    json_t *best;
} tj_vals;

/* The precision and the fp16 loss scaler: "precision", "loss_scale_clean_steps"
 * and "skipped_steps" are optional (archives from before they were recorded
 * trained fp32 without scaling); a loss scale is a float > 0 and belongs to
 * fp16 exactly. */
static int check_scaler(const tj *t, long long step)
{
    json_t *o = t->o, *ls = json_object_get(o, "loss_scale"), *p = json_object_get(o, "precision");
    const char *ps = json_string_value(p);
    if (p && (!ps || (strcmp(ps, "fp32") && strcmp(ps, "tf32") && strcmp(ps, "fp16") && strcmp(ps, "bf16"))))
        return bad(t, "precision", "one of \"fp32\", \"tf32\", \"fp16\", \"bf16\"");
    double sc = json_number_value(ls);
    int scaled = json_is_number(ls);
    /* the scale is a float: exactly representable, and in range before the cast */
    if (!(json_is_string(ls) && !strcmp(json_string_value(ls), "none")) &&
        !(scaled && isfinite(sc) && sc > 0 && sc <= FLT_MAX && (double)(float)sc == sc))
        return bad(t, "loss_scale", "\"none\" or fp16's loss scale (a float > 0)");
    long long clean = 0, skipped = 0, cmax = step < BT_LOSS_SCALE_INTERVAL - 1 ? step : BT_LOSS_SCALE_INTERVAL - 1;
    int rc = BT_OK;
    if (json_object_get(o, "loss_scale_clean_steps")) rc = need_int(t, "loss_scale_clean_steps", 0, cmax, &clean);
    if (!rc && json_object_get(o, "skipped_steps")) rc = need_int(t, "skipped_steps", 0, step, &skipped);
    if (rc) return rc;
    char w[160];
    if (ps && scaled != !strcmp(ps, "fp16")) {
        snprintf(w, sizeof w, "precision %s %s a loss scale (only fp16 scales its loss, always)", ps,
                 scaled ? "with" : "without");
        return inconsistent(t, w);
    }
    if (!scaled && clean) {
        snprintf(w, sizeof w, "loss_scale_clean_steps %lld without a loss scale", clean);
        return inconsistent(t, w);
    }
    return BT_OK;
}

static int check_types(const tj *t, int64_t mstep, tj_vals *v)
{
    json_t *o = t->o;
    int rc = need_int(t, "step", 0, INT64_MAX, &v->step);
    if (!rc && v->step != mstep) {
        char w[64];
        snprintf(w, sizeof w, "the manifest's step %lld", (long long)mstep);
        rc = bad(t, "step", w);
    }
    if (!rc) rc = need_int(t, "epoch", 0, UINT32_MAX, &v->epoch);
    if (!rc) rc = need_int(t, "position", 0, INT64_MAX, &v->position);
    json_t *ed = json_object_get(o, "epochs_done");
    if (!rc) rc = need_type(t, "epochs_done", json_is_number(ed) && isfinite(json_number_value(ed)) &&
                                                  json_number_value(ed) >= 0, "a number >= 0");
    if (!rc) rc = need_int(t, "total_steps", 1, INT64_MAX, &v->total);
    if (!rc) rc = need_int(t, "steps_per_epoch", 1, INT64_MAX, &v->spe);
    if (!rc) rc = need_type(t, "seed", json_is_integer(json_object_get(o, "seed")), "an integer");
    if (!rc) rc = need_int(t, "segment", 1, INT32_MAX, &v->segment);
    json_t *c = json_object_get(o, "complete");
    if (!rc) rc = need_type(t, "complete", json_is_boolean(c), "true or false");
    v->complete = json_is_true(c);
    json_t *sr = json_object_get(o, "stop_reason");
    if (!rc) rc = need_type(t, "stop_reason", json_is_string(sr) || json_is_null(sr), "a string or null");
    v->stop = json_string_value(sr);
    json_t *labels = json_object_get(o, "labels");
    if (!rc) rc = need_type(t, "labels", json_is_array(labels), "a list of label names");
    for (size_t i = 0; !rc && i < json_array_size(labels); i++)
        if (!json_is_string(json_array_get(labels, i)) || !json_string_length(json_array_get(labels, i)))
            rc = bad(t, "labels", "a list of non-empty strings");
    const char *lk = json_string_value(json_object_get(o, "label_kind"));
    if (!rc && (!lk || (strcmp(lk, "none") && strcmp(lk, "class") && strcmp(lk, "multi") && strcmp(lk, "regression"))))
        rc = bad(t, "label_kind", "one of \"none\", \"class\", \"multi\", \"regression\"");
    if (!rc) rc = need_int(t, "bad_evals", 0, INT32_MAX, &v->bad_evals);
    if (!rc) rc = need_int(t, "last_eval_step", -1, v->step, &v->last_eval);
    v->best = json_object_get(o, "best");
    if (!rc) rc = need_type(t, "best", json_is_null(v->best) || json_is_object(v->best), "null or an object");
    json_t *f = json_object_get(o, "forced_changes"), *h = json_object_get(o, "history");
    if (!rc) rc = need_type(t, "forced_changes", json_is_array(f), "a list of objects");
    for (size_t i = 0; !rc && i < json_array_size(f); i++)
        if (!json_is_object(json_array_get(f, i))) rc = bad(t, "forced_changes", "a list of objects");
    v->forced = json_array_size(f) > 0;
    if (!rc) rc = need_type(t, "history", json_is_array(h), "a list of objects");
    for (size_t i = 0; !rc && i < json_array_size(h); i++) {
        json_t *r = json_array_get(h, i), *s = json_object_get(r, "step");
        if (!json_is_object(r) || (s && (!json_is_integer(s) || json_integer_value(s) < 0 ||
                                         json_integer_value(s) > v->step))) {
            char w[120];
            snprintf(w, sizeof w, "a list of objects whose \"step\" is in [0, %lld] (entry %zu is not)", v->step, i);
            rc = bad(t, "history", w);
        }
    }
    if (!rc) rc = need_type(t, "device", json_is_string(json_object_get(o, "device")), "a string");
    json_t *dm = json_object_get(o, "device_model"); /* absent in archives from before it was recorded */
    if (!rc && dm) rc = need_type(t, "device_model", json_is_string(dm) && json_string_length(dm) < 200,
                                  "a string of under 200 bytes");
    if (!rc) rc = check_scaler(t, v->step);
    json_t *dv = json_object_get(o, "devices"); /* absent: one device (runner/devices.h) */
    int mauto = json_is_object(json_object_get(o, "micro_batch")); /* written only by micro_batch = auto */
    if (!rc && dv) rc = need_type(t, "devices", bt_devices_record_ok(dv, mauto),
                                  "{\"count\": 1..64, \"grad_accum\", \"job_grad_accum\": 1..65536, "
                                  "\"batch_factor\": >= 1} with count x grad_accum = job_grad_accum x batch_factor (count > 1, without micro_batch = auto)");
    json_t *es = json_object_get(o, "eval_seconds");
    if (!rc && es) rc = need_type(t, "eval_seconds", json_is_number(es) && isfinite(json_number_value(es)) &&
                                                         json_number_value(es) >= 0, "a number >= 0");
    return rc;
}

static int check_best(const tj *t, const tj_vals *v)
{
    if (!json_is_object(v->best)) return BT_OK;
    json_t *b = v->best, *val = json_object_get(b, "value"), *st = json_object_get(b, "step");
    const char *arch = json_string_value(json_object_get(b, "archive"));
    if (!json_is_string(json_object_get(b, "metric")) || !json_is_number(val) || !isfinite(json_number_value(val)) ||
        !json_is_integer(st) || json_integer_value(st) < 0 || json_integer_value(st) > v->last_eval || !arch)
        return bad(t, "best", "{\"metric\": name, \"value\": a finite number, \"step\": an evaluated step, "
                              "\"archive\": a file name}");
    int64_t as;
    /* a bare archive file name of that step (it is joined to output_dir), or "" */
    if (arch[0] && (!bt_archive_parse_filename(arch, &as) || as != json_integer_value(st)))
        return bad(t, "best", "an object whose \"archive\" is \"\" or the file name ckpt-<its step>.tar");
    return BT_OK;
}

/* step, epoch, cursor, steps per epoch, batch, total, complete. */
static int check_consistency(const tj *t, const tj_vals *v, json_t *fp)
{
    char w[256];
    double ed = json_number_value(json_object_get(t->o, "epochs_done"));
    double want = (double)v->step / (double)v->spe;
    if (fabs(ed - want) > 1e-9 * (want > 1 ? want : 1)) {
        snprintf(w, sizeof w, "epochs_done %.17g is not step / steps_per_epoch = %lld / %lld", ed, v->step, v->spe);
        return inconsistent(t, w);
    }
    if (v->step > v->total) {
        snprintf(w, sizeof w, "step %lld is past total_steps %lld", v->step, v->total);
        return inconsistent(t, w);
    }
    /* the cursor follows from the step while the job never changed
     * (--force records a change in forced_changes and may move it) */
    if (!v->forced) {
        long long in_epoch = v->step % v->spe, bs = fp_int(fp, "train.batch_size"), ga = fp_int(fp, "train.grad_accum");
        ga *= (long long)bt_devices_batch_factor(t->o); /* runtime.devices: micro-batches per step (runner/devices.h) */
        if (v->epoch != v->step / v->spe) {
            snprintf(w, sizeof w, "epoch %lld at step %lld with %lld steps per epoch (expected epoch %lld)", v->epoch,
                     v->step, v->spe, v->step / v->spe);
            return inconsistent(t, w);
        }
        if (bs >= 1 && ga >= 1 && v->position != in_epoch * bs * ga) {
            snprintf(w, sizeof w, "data position %lld at step %lld (%lld steps into epoch %lld of batch %lld x "
                                  "grad_accum %lld: expected %lld)",
                     v->position, v->step, in_epoch, v->epoch, bs, ga, in_epoch * bs * ga);
            return inconsistent(t, w);
        }
        if (bs < 1 && (v->position == 0) != (in_epoch == 0)) {
            snprintf(w, sizeof w, "data position %lld at step %lld, %lld steps into an epoch", v->position, v->step,
                     in_epoch);
            return inconsistent(t, w);
        }
        long long ms = fp_int(fp, "train.max_steps"), ep = fp_int(fp, "train.epochs");
        long long total = ms > 0 ? ms : ep > 0 ? v->spe * ep : v->total;
        if (total != v->total) {
            snprintf(w, sizeof w, "total_steps %lld, but the job fingerprint gives %lld", v->total, total);
            return inconsistent(t, w);
        }
    }
    const char *sr = v->stop ? v->stop : "";
    int early = !strcmp(sr, "early stopping"), done = !strcmp(sr, "complete");
    if (v->complete && !early && !done) {
        snprintf(w, sizeof w, "complete is true with stop_reason \"%.40s\" (a complete job stops with \"complete\" "
                              "or \"early stopping\")", sr);
        return inconsistent(t, w);
    }
    if ((early || done) && !v->complete) {
        snprintf(w, sizeof w, "stop_reason \"%s\" but complete is false", sr);
        return inconsistent(t, w);
    }
    if (done && v->step != v->total) {
        snprintf(w, sizeof w, "complete at step %lld of total_steps %lld", v->step, v->total);
        return inconsistent(t, w);
    }
    if (early && (v->last_eval != v->step || v->bad_evals < 1)) {
        snprintf(w, sizeof w, "stopped early at step %lld, but its last evaluation was at step %lld with %lld "
                              "evaluations without improvement", v->step, v->last_eval, v->bad_evals);
        return inconsistent(t, w);
    }
    return BT_OK;
}

int bt_trainer_json_check(const char *text, size_t len, int64_t mstep, const char *fingerprint_json, const char *label)
{
    json_error_t je;
    tj t = {label, json_loadb(text, len, JSON_REJECT_DUPLICATES, &je)};
    if (!json_is_object(t.o)) {
        json_decref(t.o);
        return bt_fail(BT_EDATA, "%s: trainer.json is not a JSON object (%s): the archive is invalid", label,
                       t.o ? "another JSON type" : je.text);
    }
    const char *fmt = json_string_value(json_object_get(t.o, "format"));
    json_t *ver = json_object_get(t.o, "version");
    int rc = BT_OK;
    if (!fmt || strcmp(fmt, BT_TRAINER_FORMAT))
        rc = bad(&t, "format", "\"" BT_TRAINER_FORMAT "\"");
    else if (!json_is_integer(ver) || json_integer_value(ver) != BT_TRAINER_VERSION) {
        char got[80];
        show(ver, got, sizeof got);
        rc = bt_fail(BT_EDATA, "%s: trainer.json has version %s; this baton reads version %d: use the baton that "
                               "wrote the archive, or a newer one",
                     label, got, BT_TRAINER_VERSION);
    }
    tj_vals v;
    memset(&v, 0, sizeof v);
    json_t *fp = fingerprint_json ? json_loads(fingerprint_json, 0, NULL) : NULL;
    if (!rc) rc = check_types(&t, mstep, &v);
    if (!rc) rc = check_best(&t, &v);
    if (!rc) rc = check_consistency(&t, &v, fp);
    json_decref(fp);
    json_decref(t.o);
    return rc;
}

/* ----------------------------------------------------------------- tensors */

typedef struct {
    const char *label;      /* the archive */
    bt_model_config cfg;
    const char *arch;       /* architectures[0] */
    unsigned heads;
    int attn_dim;           /* doc_pooler width (long documents, attention pooling); 0: none */
    bt_param_load *pl;      /* canonical names and shapes */
    size_t np;
    char **hf;              /* [np] names as written */
} expect;

static void expect_free(expect *e)
{
    bt_param_list_free(e->pl, e->np);
    for (size_t i = 0; e->hf && i < e->np; i++) free(e->hf[i]);
    free(e->hf);
    bt_model_config_free(&e->cfg);
}

static int add_doc_pooler(expect *e)
{
    json_t *ld = json_object_get((json_t *)e->cfg.json, BT_LONGDOC_CONFIG_KEY);
    if (!ld) return BT_OK;
    const char *pool = json_string_value(json_object_get(ld, "pooling"));
    json_t *ad = json_object_get(ld, "attention_dim");
    if (!pool || strcmp(pool, "attention")) return BT_OK;
    if (!json_is_integer(ad) || json_integer_value(ad) < 1 || json_integer_value(ad) > 1 << 16)
        return bt_fail(BT_EDATA, "%s: config.json %s: attention pooling without a valid attention_dim: the archive "
                                 "is invalid", e->label, BT_LONGDOC_CONFIG_KEY);
    e->attn_dim = (int)json_integer_value(ad);
    e->pl = bt_xrealloc(e->pl, (e->np + 3) * sizeof *e->pl);
    int64_t A = e->attn_dim, D = e->cfg.hidden_size;
    static const char *names[3] = {"doc_pooler.dense.weight", "doc_pooler.dense.bias", "doc_pooler.score.weight"};
    for (int k = 0; k < 3; k++) {
        bt_param_load *p = &e->pl[e->np++];
        memset(p, 0, sizeof *p);
        p->name = bt_xstrdup(names[k]);
        p->ndim = k == 0 ? 2 : 1;
        p->shape[0] = A;
        p->shape[1] = k == 0 ? D : 0;
    }
    return BT_OK;
}

/* What config.json (and trainer.json's label kind) say the tensors are. */
static int expect_init(expect *e, const bt_archive *a)
{
    memset(e, 0, sizeof *e);
    e->label = bt_archive_path(a);
    const char *ct = bt_archive_text(a, BT_M_CONFIG);
    char *where = bt_xasprintf("%s: config.json", e->label);
    int rc = bt_model_config_parse(ct, strlen(ct), where, &e->cfg);
    free(where);
    if (rc) return bt_fail(BT_EDATA, "%s; the archive is invalid", bt_errmsg());
    e->arch = e->cfg.architecture ? e->cfg.architecture : "";
    /* the heads baton trains, named for the family of model_type (issue 22:
     * every family's sequence and token classifiers and MLM head) */
    char sa[64], ta[64], ma[64];
    const char *mt = e->cfg.model_type, *sq = bt_model_type_arch(mt, "SequenceClassification", sa, sizeof sa);
    const char *tq = bt_model_type_arch(mt, "TokenClassification", ta, sizeof ta);
    const char *mq = bt_model_type_arch(mt, "MaskedLM", ma, sizeof ma);
    int seq = sq && !strcmp(e->arch, sq), tok = tq && !strcmp(e->arch, tq), mlm = mq && !strcmp(e->arch, mq);
    if (!seq && !tok && !mlm)
        return bt_fail(BT_EDATA, "%s: config.json: architecture \"%s\" is not one baton trains for model_type "
                                 "\"%s\" (%s, %s, %s): the archive is invalid", e->label, e->arch, mt ? mt : "bert",
                       sq ? sq : "none", tq ? tq : "none", mq ? mq : "none");
    e->heads = seq ? BT_HEAD_POOLER | BT_HEAD_CLASSIFIER : tok ? BT_HEAD_CLASSIFIER : BT_HEAD_MLM;
    /* the classifier: one output for regression, else one per label */
    if (e->cfg.problem_type == BT_PROBLEM_REGRESSION) e->cfg.num_labels = 1;
    json_t *tjs = json_loads(bt_archive_text(a, BT_M_TRAINER), 0, NULL);
    const char *lk = json_string_value(json_object_get(tjs, "label_kind"));
    json_t *labels = json_object_get(tjs, "labels");
    if (lk && ((mlm && strcmp(lk, "none")) || (!mlm && !strcmp(lk, "none"))))
        rc = bt_fail(BT_EDATA, "%s: trainer.json label_kind \"%s\" but config.json's architecture is %s (a masked "
                               "LM has label_kind \"none\", a classifier another): the archive is invalid",
                     e->label, lk, e->arch);
    bt_problem_type pt = e->cfg.problem_type;
    if (!rc && lk && ((!strcmp(lk, "regression") && pt != BT_PROBLEM_REGRESSION) ||
                      (!strcmp(lk, "multi") && pt != BT_PROBLEM_MULTI_LABEL) ||
                      (!strcmp(lk, "class") && pt != BT_PROBLEM_SINGLE_LABEL && pt != BT_PROBLEM_NONE)))
        rc = bt_fail(BT_EDATA, "%s: trainer.json label_kind \"%s\" but config.json's problem_type is %s: the archive "
                               "is invalid", e->label, lk, bt_problem_type_name(pt) ? bt_problem_type_name(pt) : "none");
    /* the labels of the data are the first ones of config.json's id2label */
    for (size_t i = 0; !rc && !mlm && pt != BT_PROBLEM_REGRESSION && i < json_array_size(labels); i++) {
        const char *l = json_string_value(json_array_get(labels, i));
        if (!l || (int)i >= e->cfg.num_labels || strcmp(l, e->cfg.labels[i]))
            rc = bt_fail(BT_EDATA, "%s: trainer.json label %zu is \"%s\" but config.json's id2label has %s: the "
                                   "archive is invalid", e->label, i, l ? l : "?",
                         (int)i < e->cfg.num_labels ? e->cfg.labels[i] : "no such id");
    }
    json_decref(tjs);
    if (rc) return rc;
    e->pl = bt_bert_param_list(&e->cfg, e->heads, &e->np);
    rc = add_doc_pooler(e);
    if (rc) return rc;
    e->hf = bt_xcalloc(e->np, sizeof *e->hf);
    for (size_t i = 0; i < e->np; i++) {
        char buf[320];
        e->hf[i] = bt_xstrdup(bt_hf_name(e->pl[i].name, e->arch, buf, sizeof buf) ? buf : e->pl[i].name);
    }
    return BT_OK;
}

static void shape_str(int ndim, const int64_t *shape, char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++) n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* A tensor as config.json implies it. */
typedef struct {
    const char *name;
    bt_st_dtype dtype;
    int ndim;
    const int64_t *shape;
} want_tensor;

/* w in file f (member of the archive label): present, of its dtype and shape. */
static int check_tensor(const bt_st_file *f, const want_tensor *w, const char *member, const char *label,
                        const bt_st_tensor **out)
{
    const char *name = w->name;
    bt_st_dtype dt = w->dtype;
    int ndim = w->ndim;
    const int64_t *shape = w->shape;
    const bt_st_tensor *t = bt_st_find(f, name);
    *out = t;
    char want[64], got[64];
    shape_str(ndim, shape, want, sizeof want);
    if (!t)
        return bt_fail(BT_EDATA, "%s: %s: tensor %s %s is missing (config.json implies it): the archive is invalid",
                       label, member, name, want);
    shape_str(t->ndim, t->shape, got, sizeof got);
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (t->dtype != dt || !same)
        return bt_fail(BT_EDATA, "%s: %s: tensor %s is %s %s, config.json implies %s %s: the archive is invalid",
                       label, member, name, bt_st_dtype_name(t->dtype), got, bt_st_dtype_name(dt), want);
    return BT_OK;
}

/* Every value finite (and >= 0 when nonneg). */
static int check_values(const bt_st_tensor *t, int nonneg, const char *member, const char *label)
{
    const float *x = bt_st_f32_view(t);
    float *copy = NULL;
    if (!x) { /* unaligned: copy (never the case for archives baton writes) */
        copy = bt_xmalloc(t->nbytes ? t->nbytes : 1);
        memcpy(copy, t->data, t->nbytes);
        x = copy;
    }
    int64_t bad_i = -1;
    for (int64_t i = 0; i < t->numel; i++)
        if (!isfinite(x[i]) || (nonneg && x[i] < 0)) {
            bad_i = i;
            break;
        }
    int rc = BT_OK;
    if (bad_i >= 0)
        rc = bt_fail(BT_EDATA, "%s: %s: tensor %s holds %g at index %lld (%s): the archive is invalid (damaged "
                               "before it was written, or edited); use an earlier archive",
                     label, member, t->name, (double)x[bad_i], (long long)bad_i,
                     isfinite(x[bad_i]) ? "a second moment must be >= 0" : "every value must be finite");
    free(copy);
    return rc;
}

static int check_model(const expect *e, const bt_st_file *f)
{
    const char *label = e->label;
    if (bt_st_count(f) != e->np)
        for (size_t i = 0; i < bt_st_count(f); i++) {
            const char *n = bt_st_get(f, i)->name;
            int known = 0;
            for (size_t k = 0; k < e->np && !known; k++) known = !strcmp(n, e->hf[k]);
            if (!known)
                return bt_fail(BT_EDATA, "%s: model.safetensors: tensor %s is not one config.json (%s) implies: the "
                                         "archive is invalid", label, n, e->arch);
        }
    for (size_t i = 0; i < e->np; i++) {
        const bt_st_tensor *t;
        want_tensor w = {e->hf[i], BT_ST_F32, e->pl[i].ndim, e->pl[i].shape};
        int rc = check_tensor(f, &w, "model.safetensors", label, &t);
        if (!rc) rc = check_values(t, 0, "model.safetensors", label);
        if (rc) return rc;
    }
    return BT_OK;
}

static int check_optim(const expect *e, const bt_st_file *f, int64_t step)
{
    const char *label = e->label, *mem = "optimizer.safetensors";
    static const char *const suf[3] = {".exp_avg", ".exp_avg_sq", ".step"};
    if (bt_st_count(f) != 3 * e->np)
        for (size_t i = 0; i < bt_st_count(f); i++) {
            const char *n = bt_st_get(f, i)->name;
            int known = 0;
            for (size_t k = 0; k < e->np && !known; k++) {
                size_t l = strlen(e->hf[k]);
                if (strncmp(n, e->hf[k], l)) continue;
                for (int s = 0; s < 3 && !known; s++) known = !strcmp(n + l, suf[s]);
            }
            if (!known)
                return bt_fail(BT_EDATA, "%s: %s: tensor %s is not an AdamW moment of a parameter config.json implies: "
                                         "the archive is invalid", label, mem, n);
        }
    for (size_t i = 0; i < e->np; i++) {
        for (int s = 0; s < 3; s++) {
            char *n = bt_xasprintf("%s%s", e->hf[i], suf[s]);
            const bt_st_tensor *t;
            int64_t one = 1;
            want_tensor w = s < 2 ? (want_tensor){n, BT_ST_F32, e->pl[i].ndim, e->pl[i].shape}
                                  : (want_tensor){n, BT_ST_I64, 1, &one};
            int rc = check_tensor(f, &w, mem, label, &t);
            free(n);
            if (!rc && s < 2) rc = check_values(t, s == 1, mem, label);
            if (!rc && s == 2) {
                int64_t v;
                memcpy(&v, t->data, sizeof v);
                if (v < 0 || v > step)
                    rc = bt_fail(BT_EDATA, "%s: %s: tensor %s says %lld updates, outside [0, the archive's step %lld]: "
                                           "the archive is invalid", label, mem, t->name, (long long)v, (long long)step);
            }
            if (rc) return rc;
        }
    }
    return BT_OK;
}

int bt_archive_tensors_check(const bt_archive *a)
{
    expect e;
    int rc = expect_init(&e, a);
    bt_st_file *m = NULL, *o = NULL;
    if (!rc) rc = bt_archive_open_model(a, &m);
    if (!rc) rc = check_model(&e, m);
    if (!rc) rc = bt_archive_open_optim(a, &o);
    if (!rc) rc = check_optim(&e, o, bt_archive_step(a));
    if (rc && rc != BT_EDATA && rc != BT_EINTERNAL) rc = BT_EDATA; /* the safetensors reader's refusals */
    bt_st_close(m);
    bt_st_close(o);
    expect_free(&e);
    return rc;
}

int bt_archive_contents_check(const bt_archive *a)
{
    const char *t = bt_archive_text(a, BT_M_TRAINER);
    int rc = bt_trainer_json_check(t, strlen(t), bt_archive_step(a), bt_archive_fingerprint_json(a), bt_archive_path(a));
    if (!rc) rc = bt_archive_tensors_check(a);
    return rc;
}

int bt_archive_check_judge(void *ctx, const bt_archive *a)
{
    (void)ctx;
    return bt_archive_contents_check(a);
}

const bt_archive_judge bt_archive_contents_judge = {bt_archive_check_judge, NULL};

int bt_archive_read_checked(const char *path, const bt_archive_limits *lim, const char *fp, bt_archive **out)
{
    bt_archive *a = NULL;
    int rc = bt_archive_read(path, lim, fp, &a);
    if (!rc) rc = bt_archive_contents_check(a);
    if (rc) {
        bt_archive_close(a);
        a = NULL;
    }
    if (out) *out = a;
    else bt_archive_close(a);
    return rc;
}
