/* runner/plot.c — SVG chart of metrics.jsonl (see plot.h). */
#include "runner/plot.h"
#include "util/err.h"
#include "util/file.h"
#include "util/mem.h"
#include "util/str.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *name;
    int panel; /* 0 loss, 1 metrics */
    double *x, *y;
    size_t n, cap;
} series;

typedef struct {
    series *s;
    int n, cap;
    double *seg;
    size_t n_seg, seg_cap;
} chart;

static series *get_series(chart *c, const char *name, int panel)
{
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->s[i].name, name)) return &c->s[i];
    if (c->n == c->cap) c->s = bt_xrealloc(c->s, (size_t)(c->cap = c->cap ? c->cap * 2 : 8) * sizeof *c->s);
    series *s = &c->s[c->n++];
    memset(s, 0, sizeof *s);
    s->name = bt_xstrdup(name);
    s->panel = panel;
    return s;
}

static void add_point(series *s, double x, double y)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->x = bt_xrealloc(s->x, s->cap * sizeof *s->x);
        s->y = bt_xrealloc(s->y, s->cap * sizeof *s->y);
    }
    s->x[s->n] = x;
    s->y[s->n] = y;
    s->n++;
}

static void rewind_to(chart *c, double step)
{
    for (int i = 0; i < c->n; i++) {
        series *s = &c->s[i];
        size_t w = 0;
        for (size_t k = 0; k < s->n; k++)
            if (s->x[k] <= step) {
                s->x[w] = s->x[k];
                s->y[w] = s->y[k];
                w++;
            }
        s->n = w;
    }
    size_t w = 0;
    for (size_t k = 0; k < c->n_seg; k++)
        if (c->seg[k] <= step) c->seg[w++] = c->seg[k];
    c->n_seg = w;
}

static int is_meta(const char *k)
{
    static const char *const meta[] = {"step", "epoch", "split", "lr", "time", "event", "segment", "masked_tokens", "examples", "seconds", NULL};
    for (int i = 0; meta[i]; i++)
        if (!strcmp(k, meta[i])) return 1;
    return 0;
}

static void read_log(chart *c, const char *text, size_t len, int *skipped)
{
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        const char *l = p;
        p = nl ? nl + 1 : end;
        size_t k = 0;
        while (k < n && (l[k] == ' ' || l[k] == '\t' || l[k] == '\r')) k++;
        if (k == n) continue;
        json_t *o = json_loadb(l, n, 0, NULL);
        json_t *st = o ? json_object_get(o, "step") : NULL;
        if (!o || !json_is_object(o) || !json_is_number(st)) {
            (*skipped)++;
            json_decref(o);
            continue;
        }
        double step = json_number_value(st);
        const char *ev = json_string_value(json_object_get(o, "event"));
        const char *split = json_string_value(json_object_get(o, "split"));
        if (ev && !strcmp(ev, "segment_start")) {
            rewind_to(c, step);
            if (step > 0) {
                if (c->n_seg == c->seg_cap)
                    c->seg = bt_xrealloc(c->seg, (c->seg_cap = c->seg_cap ? c->seg_cap * 2 : 16) * sizeof *c->seg);
                c->seg[c->n_seg++] = step;
            }
        } else if (split) {
            int train = !strcmp(split, "train");
            const char *key;
            json_t *v;
            json_object_foreach(o, key, v)
            {
                if (is_meta(key) || !json_is_number(v)) continue;
                double y = json_number_value(v);
                if (!isfinite(y)) continue;
                char name[160];
                snprintf(name, sizeof name, "%s %s", split, key);
                if (train && strcmp(key, "loss")) continue; /* train: only the loss is drawn */
                /* losses share the top panel; every other metric goes below */
                add_point(get_series(c, name, strcmp(key, "loss") ? 1 : 0), step, y);
            }
        } else {
            (*skipped)++;
        }
        json_decref(o);
    }
}

/* ---------------------------------------------------------------- output */

static void put_escaped(bt_strbuf *s, const char *t)
{
    for (; *t; t++) {
        switch (*t) {
        case '<': bt_strbuf_printf(s, "&lt;"); break;
        case '>': bt_strbuf_printf(s, "&gt;"); break;
        case '&': bt_strbuf_printf(s, "&amp;"); break;
        case '"': bt_strbuf_printf(s, "&quot;"); break;
        case '\'': bt_strbuf_printf(s, "&apos;"); break;
        default:
            if ((unsigned char)*t < 0x20) bt_strbuf_printf(s, " "); /* control characters are not allowed in XML 1.0 */
            else bt_strbuf_printf(s, "%c", *t);
        }
    }
}

static double nice_step(double range, int target)
{
    if (!(range > 0)) return 1;
    double raw = range / target, mag = pow(10, floor(log10(raw))), f = raw / mag;
    double nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    return nf * mag;
}

static void fmt_tick(double v, double step, char *b, size_t n)
{
    if (fabs(v) < step * 1e-9) v = 0;
    if (fabs(v) >= 1e5 || (fabs(v) > 0 && fabs(v) < 1e-3)) snprintf(b, n, "%.3g", v);
    else {
        int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
        if (dec > 6) dec = 6;
        snprintf(b, n, "%.*f", dec, v);
    }
}

static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                      "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"};

#define W 960
#define PL 70   /* plot left */
#define PR 760  /* plot right (legend beyond) */
#define PH 280  /* panel height */

/* The steps the x axis spans (shared by both panels). */
typedef struct {
    double x0, x1;
} xspan;

static void draw_panel(bt_strbuf *s, const chart *c, int panel, int top, xspan span, const char *ylabel)
{
    const double x0 = span.x0, x1 = span.x1;
    double y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < c->n; i++)
        if (c->s[i].panel == panel)
            for (size_t k = 0; k < c->s[i].n; k++) {
                if (c->s[i].y[k] < y0) y0 = c->s[i].y[k];
                if (c->s[i].y[k] > y1) y1 = c->s[i].y[k];
            }
    if (!isfinite(y0)) { y0 = 0; y1 = 1; }
    if (y1 - y0 < 1e-12) { y0 -= 0.5; y1 += 0.5; }
    double ys = nice_step(y1 - y0, 5);
    y0 = floor(y0 / ys) * ys;
    y1 = ceil(y1 / ys) * ys;
    int bottom = top + PH;
#define SX(x) (PL + ((x) - x0) / (x1 - x0) * (PR - PL))
#define SY(y) (bottom - ((y) - y0) / (y1 - y0) * PH)
    bt_strbuf_printf(s, "<g class=\"panel\">\n<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#444\"/>\n",
        PL, top, PR - PL, PH);
    /* y ticks */
    for (double y = y0; y <= y1 + ys * 1e-6; y += ys) {
        char t[32];
        fmt_tick(y, ys, t, sizeof t);
        double py = SY(y);
        bt_strbuf_printf(s, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", PL, py, PR, py);
        bt_strbuf_printf(s, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" font-size=\"11\">%s</text>\n", PL - 6, py + 4, t);
    }
    /* x ticks */
    double xs = nice_step(x1 - x0, 8);
    for (double x = ceil(x0 / xs) * xs; x <= x1 + xs * 1e-6; x += xs) {
        char t[32];
        fmt_tick(x, xs, t, sizeof t);
        double px = SX(x);
        bt_strbuf_printf(s, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#444\"/>\n", px, bottom, px, bottom + 5);
        bt_strbuf_printf(s, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-size=\"11\">%s</text>\n", px, bottom + 18, t);
    }
    bt_strbuf_printf(s, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"12\">step</text>\n", (PL + PR) / 2, bottom + 34);
    bt_strbuf_printf(s, "<text x=\"16\" y=\"%d\" text-anchor=\"middle\" font-size=\"12\" transform=\"rotate(-90 16 %d)\">",
        top + PH / 2, top + PH / 2);
    put_escaped(s, ylabel);
    bt_strbuf_printf(s, "</text>\n");
    /* segment boundaries */
    for (size_t k = 0; k < c->n_seg; k++) {
        double px = SX(c->seg[k]);
        bt_strbuf_printf(s, "<line class=\"segment\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#999\" "
               "stroke-dasharray=\"4 3\"/>\n", px, top, px, bottom);
    }
    /* series and legend */
    int li = 0;
    for (int i = 0; i < c->n; i++) {
        const series *se = &c->s[i];
        if (se->panel != panel || !se->n) continue;
        const char *col = palette[i % 10];
        bt_strbuf_printf(s, "<polyline class=\"series\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", col);
        for (size_t k = 0; k < se->n; k++) bt_strbuf_printf(s, "%s%.1f,%.1f", k ? " " : "", SX(se->x[k]), SY(se->y[k]));
        bt_strbuf_printf(s, "\"/>\n");
        if (se->n == 1) bt_strbuf_printf(s, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", SX(se->x[0]), SY(se->y[0]), col);
        int ly = top + 14 + li * 18;
        bt_strbuf_printf(s, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/>\n", PR + 12, ly - 4,
            PR + 32, ly - 4, col);
        bt_strbuf_printf(s, "<text class=\"legend\" x=\"%d\" y=\"%d\" font-size=\"12\">", PR + 38, ly);
        put_escaped(s, se->name);
        bt_strbuf_printf(s, "</text>\n");
        li++;
    }
    if (c->n_seg) {
        int ly = top + 14 + li * 18;
        bt_strbuf_printf(s, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#999\" stroke-dasharray=\"4 3\"/>\n", PR + 12,
            ly - 4, PR + 32, ly - 4);
        bt_strbuf_printf(s, "<text class=\"legend\" x=\"%d\" y=\"%d\" font-size=\"12\">segment start</text>\n", PR + 38, ly);
    }
    bt_strbuf_printf(s, "</g>\n");
#undef SX
#undef SY
}

int bt_plot_svg(const char *jsonl, size_t len, const char *title, char **svg, int *n_skipped)
{
    chart c;
    memset(&c, 0, sizeof c);
    int skipped = 0;
    read_log(&c, jsonl, len, &skipped);
    if (n_skipped) *n_skipped = skipped;
    int has[2] = {0, 0};
    double x0 = INFINITY, x1 = -INFINITY;
    for (int i = 0; i < c.n; i++)
        for (size_t k = 0; k < c.s[i].n; k++) {
            has[c.s[i].panel] = 1;
            if (c.s[i].x[k] < x0) x0 = c.s[i].x[k];
            if (c.s[i].x[k] > x1) x1 = c.s[i].x[k];
        }
    for (size_t k = 0; k < c.n_seg; k++) {
        if (c.seg[k] < x0) x0 = c.seg[k];
        if (c.seg[k] > x1) x1 = c.seg[k];
    }
    if (!isfinite(x0)) { x0 = 0; x1 = 1; }
    if (x0 > 0) x0 = 0;
    if (x1 - x0 < 1) x1 = x0 + 1;
    int panels = has[1] ? 2 : 1;
    int height = 50 + panels * (PH + 55);
    bt_strbuf s = {0};
    bt_strbuf_printf(&s, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    bt_strbuf_printf(&s, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"sans-serif\">\n", W, height, W, height);
    bt_strbuf_printf(&s, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    bt_strbuf_printf(&s, "<text x=\"%d\" y=\"26\" font-size=\"16\" font-weight=\"bold\">", PL);
    put_escaped(&s, title ? title : "baton training metrics");
    bt_strbuf_printf(&s, "</text>\n");
    if (!has[0] && !has[1])
        bt_strbuf_printf(&s, "<text x=\"%d\" y=\"60\" font-size=\"12\" fill=\"#777\">no metrics yet</text>\n", PL);
    draw_panel(&s, &c, 0, 45, (xspan){x0, x1}, "loss");
    if (has[1]) draw_panel(&s, &c, 1, 45 + PH + 55, (xspan){x0, x1}, "evaluation");
    bt_strbuf_printf(&s, "</svg>\n");
    for (int i = 0; i < c.n; i++) {
        free(c.s[i].name);
        free(c.s[i].x);
        free(c.s[i].y);
    }
    free(c.s);
    free(c.seg);
    *svg = bt_strbuf_take(&s);
    return BT_OK;
}

int bt_plot_file(const char *metrics_path, const char *svg_path, const char *title)
{
    char *text;
    size_t len;
    int rc = bt_read_file(metrics_path, (size_t)1 << 30, &text, &len);
    if (rc) return bt_fail_context(rc, "metrics log");
    char *svg;
    int skipped = 0;
    rc = bt_plot_svg(text, len, title, &svg, &skipped);
    free(text);
    if (rc) return rc;
    rc = bt_write_file_atomic(svg_path, svg, strlen(svg));
    free(svg);
    return rc;
}
