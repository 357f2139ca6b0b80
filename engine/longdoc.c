/* engine/longdoc.c — chunking, chunk micro-batches, host pooling reference,
 * long-document builder (see longdoc.h and docs/tasks.md).
 *
 * Owns: chunk boundaries (HF overflow + stride semantics), the cap, pooling
 * math in plain C (the reference the kernels are checked against).
 * Must not: allocate in chunking/pooling, or use randomness other than
 * Philox (the builder's shuffle).
 */
#include "engine/longdoc.h"
#include "kernels/philox.h"
#include "util/err.h"
#include "util/file.h"
#include "util/mem.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int bt_longdoc_config_check(const bt_longdoc_config *c)
{
    if (c->max_seq_len < 3)
        return bt_fail(BT_ECONFIG, "long documents: max_seq_len %d is too small (need >= 3: [CLS], a token, [SEP])",
                       c->max_seq_len);
    int w = c->max_seq_len - 2;
    if (c->stride < 0 || c->stride >= w)
        return bt_fail(BT_ECONFIG,
                       "long documents: stride %d must be in [0, %d) (the overlap between chunks of max_seq_len-2 = %d "
                       "content tokens; e.g. %d)",
                       c->stride, w, w, w / 4);
    if (c->max_chunks < 0) return bt_fail(BT_ECONFIG, "long documents: max_chunks %d must be >= 0 (0: no cap)", c->max_chunks);
    if (c->cap != BT_LONGDOC_CAP_FIRST && c->cap != BT_LONGDOC_CAP_EVEN)
        return bt_fail(BT_ECONFIG, "long documents: unknown chunk cap mode %d (first or even)", (int)c->cap);
    return 0;
}

size_t bt_longdoc_total_chunks(size_t n, const bt_longdoc_config *c)
{
    size_t w = (size_t)c->max_seq_len - 2, step = w - (size_t)c->stride;
    if (n <= w) return 1;
    return 1 + (n - w + step - 1) / step;
}

size_t bt_longdoc_n_chunks(size_t n, const bt_longdoc_config *c)
{
    size_t k = bt_longdoc_total_chunks(n, c);
    if (c->max_chunks > 0 && k > (size_t)c->max_chunks) k = (size_t)c->max_chunks;
    return k;
}

bt_longdoc_chunk bt_longdoc_chunk_at(size_t n, const bt_longdoc_config *c, size_t k)
{
    size_t w = (size_t)c->max_seq_len - 2, step = w - (size_t)c->stride;
    size_t total = bt_longdoc_total_chunks(n, c), kept = bt_longdoc_n_chunks(n, c);
    size_t j = k;
    if (kept < total && c->cap == BT_LONGDOC_CAP_EVEN) j = kept == 1 ? 0 : k * (total - 1) / (kept - 1);
    bt_longdoc_chunk ch;
    ch.index = j;
    ch.start = j * step;
    if (ch.start > n) ch.start = n; /* only for n == 0 */
    size_t end = ch.start + w < n ? ch.start + w : n;
    ch.len = (int32_t)(end - ch.start);
    return ch;
}

void bt_chunk_iter_init(bt_chunk_iter *it, const int32_t *doc, size_t n, const bt_longdoc_config *c,
                        int micro_chunks, int32_t cls_id, int32_t sep_id, int32_t pad_id)
{
    it->doc = doc;
    it->n = n;
    it->cfg = *c;
    it->cls_id = cls_id;
    it->sep_id = sep_id;
    it->pad_id = pad_id;
    it->micro = micro_chunks < 1 ? 1 : micro_chunks;
    it->n_chunks = bt_longdoc_n_chunks(n, c);
    it->next = 0;
}

int bt_chunk_iter_next(bt_chunk_iter *it, int32_t *ids, uint8_t *attn, int32_t *lens, size_t *first)
{
    int s = it->cfg.max_seq_len;
    int m = 0;
    if (first) *first = it->next;
    while (m < it->micro && it->next < it->n_chunks) {
        bt_longdoc_chunk ch = bt_longdoc_chunk_at(it->n, &it->cfg, it->next);
        int32_t *row = ids + (size_t)m * s;
        row[0] = it->cls_id;
        memcpy(row + 1, it->doc + ch.start, (size_t)ch.len * sizeof *row);
        row[ch.len + 1] = it->sep_id;
        for (int p = ch.len + 2; p < s; p++) row[p] = it->pad_id;
        if (attn)
            for (int p = 0; p < s; p++) attn[(size_t)m * s + p] = p < ch.len + 2;
        if (lens) lens[m] = ch.len + 2;
        m++;
        it->next++;
    }
    return m;
}

/* ---- pooling ---- */

void bt_pool_mean_fwd(const float *h, int n, int d, float *out)
{
    for (int k = 0; k < d; k++) {
        double acc = 0;
        for (int i = 0; i < n; i++) acc += h[(size_t)i * d + k];
        out[k] = (float)(acc / n);
    }
}

void bt_pool_mean_bwd(const float *dout, int n, int d, float *dh)
{
    for (int i = 0; i < n; i++)
        for (int k = 0; k < d; k++) dh[(size_t)i * d + k] = (float)((double)dout[k] / n);
}

void bt_pool_max_fwd(const float *h, int n, int d, float *out, int32_t *argmax)
{
    for (int k = 0; k < d; k++) {
        int best = 0;
        for (int i = 1; i < n; i++)
            if (h[(size_t)i * d + k] > h[(size_t)best * d + k]) best = i;
        out[k] = h[(size_t)best * d + k];
        argmax[k] = best;
    }
}

void bt_pool_max_bwd(const float *dout, const int32_t *argmax, int n, int d, float *dh)
{
    memset(dh, 0, (size_t)n * d * sizeof *dh);
    for (int k = 0; k < d; k++) dh[(size_t)argmax[k] * d + k] = dout[k];
}

void bt_pool_attn_fwd(const float *h, int n, int d, const float *w, const float *b, const float *v, int a,
                      float *out, float *u, float *alpha)
{
    double smax = -INFINITY;
    for (int i = 0; i < n; i++) {
        const float *hi = h + (size_t)i * d;
        double s = 0;
        for (int j = 0; j < a; j++) {
            const float *wj = w + (size_t)j * d;
            double z = b[j];
            for (int k = 0; k < d; k++) z += (double)wj[k] * hi[k];
            float t = (float)tanh(z);
            u[(size_t)i * a + j] = t;
            s += (double)v[j] * t;
        }
        alpha[i] = (float)s; /* scores for now */
        if (s > smax) smax = s;
    }
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)alpha[i] - smax);
    for (int i = 0; i < n; i++) alpha[i] = (float)(exp((double)alpha[i] - smax) / sum);
    for (int k = 0; k < d; k++) {
        double acc = 0;
        for (int i = 0; i < n; i++) acc += (double)alpha[i] * h[(size_t)i * d + k];
        out[k] = (float)acc;
    }
}

static double dot_f(const float *x, const float *y, int n)
{
    double acc = 0;
    for (int k = 0; k < n; k++) acc += (double)x[k] * y[k];
    return acc;
}

void bt_pool_attn_bwd(const float *h, int n, int d, const float *w, const float *v, int a, const float *u,
                      const float *alpha, const float *dout, float *dh, float *dw, float *db, float *dv)
{
    /* dalpha_i = dout . h_i; ds_i = alpha_i (dalpha_i - sum_k alpha_k dalpha_k) */
    double mean = 0;
    for (int i = 0; i < n; i++) mean += (double)alpha[i] * dot_f(dout, h + (size_t)i * d, d);
    for (int i = 0; i < n; i++) {
        const float *hi = h + (size_t)i * d;
        float *dhi = dh + (size_t)i * d;
        double ds = (double)alpha[i] * (dot_f(dout, hi, d) - mean);
        for (int k = 0; k < d; k++) dhi[k] = (float)((double)alpha[i] * dout[k]);
        for (int j = 0; j < a; j++) {
            double uij = u[(size_t)i * a + j];
            dv[j] += (float)(ds * uij);
            double dz = ds * v[j] * (1.0 - uij * uij);
            db[j] += (float)dz;
            const float *wj = w + (size_t)j * d;
            float *dwj = dw + (size_t)j * d;
            for (int k = 0; k < d; k++) {
                dwj[k] += (float)(dz * hi[k]);
                dhi[k] += (float)(dz * wj[k]);
            }
        }
    }
}

/* ---- builder ---- */

typedef struct {
    const char *text;
    size_t len;
    int label;
} article;

typedef struct {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = bt_xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static int cmp_str(const void *x, const void *y) { return strcmp(*(char *const *)x, *(char *const *)y); }

int bt_longdoc_build_tsv(const char *in_path, const char *out_path, uint64_t seed, int per_doc, size_t first_doc,
                         size_t n_docs, size_t *written)
{
    if (written) *written = 0;
    if (per_doc < 1) return bt_fail(BT_EUSAGE, "long-document builder: articles per document %d must be >= 1", per_doc);
    char *text = NULL;
    size_t len = 0;
    int rc = bt_read_file(in_path, (size_t)1 << 31, &text, &len);
    if (rc) return rc;
    if (memchr(text, '\0', len)) {
        free(text);
        return bt_fail(BT_EDATA, "%s: contains a NUL byte: expected a text TSV file", in_path);
    }
    /* pass 1: split lines in place, collect labels */
    size_t n_art = 0, cap_art = 1024;
    article *arts = bt_xmalloc(cap_art * sizeof *arts);
    char **label_of = bt_xmalloc(cap_art * sizeof *label_of);
    size_t line = 0;
    for (char *p = text, *end = text + len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        line++;
        if (le > p && le[-1] == '\r') le--;
        *le = '\0';
        if (le > p) {
            char *tab = strrchr(p, '\t');
            if (!tab || tab == p || !tab[1]) {
                free(arts);
                free(label_of);
                free(text);
                return bt_fail(BT_EDATA, "%s:%zu: expected `text<TAB>label` (no header line)%s", in_path, line,
                               tab ? ": empty text or label" : ": no tab");
            }
            *tab = '\0';
            if (n_art == cap_art) {
                cap_art *= 2;
                arts = bt_xrealloc(arts, cap_art * sizeof *arts);
                label_of = bt_xrealloc(label_of, cap_art * sizeof *label_of);
            }
            arts[n_art].text = p;
            arts[n_art].len = (size_t)(tab - p);
            label_of[n_art] = tab + 1;
            n_art++;
        }
        p = nl ? nl + 1 : end;
    }
    /* distinct labels, sorted */
    char **labels = bt_xmalloc((n_art ? n_art : 1) * sizeof *labels);
    memcpy(labels, label_of, n_art * sizeof *labels);
    qsort(labels, n_art, sizeof *labels, cmp_str);
    size_t n_lab = 0;
    for (size_t i = 0; i < n_art; i++)
        if (!n_lab || strcmp(labels[n_lab - 1], labels[i])) labels[n_lab++] = labels[i];
    for (size_t i = 0; i < n_art; i++) {
        char **f = bsearch(&label_of[i], labels, n_lab, sizeof *labels, cmp_str);
        arts[i].label = (int)(f - labels);
    }
    /* per class: article indices in file order, shuffled */
    size_t *order = bt_xmalloc((n_art ? n_art : 1) * sizeof *order);
    size_t *cls_off = bt_xcalloc(n_lab + 1, sizeof *cls_off);
    for (size_t i = 0; i < n_art; i++) cls_off[arts[i].label + 1]++;
    for (size_t c = 0; c < n_lab; c++) cls_off[c + 1] += cls_off[c];
    size_t *fill = bt_xcalloc(n_lab ? n_lab : 1, sizeof *fill);
    for (size_t i = 0; i < n_art; i++) order[cls_off[arts[i].label] + fill[arts[i].label]++] = i;
    size_t max_docs = 0;
    for (size_t c = 0; c < n_lab; c++) {
        size_t *o = order + cls_off[c], m = cls_off[c + 1] - cls_off[c];
        for (size_t i = m; i-- > 1;) {
            bt_u32x4 r = bt_random4(seed, BT_LONGDOC_BUILD_STREAM, (uint32_t)c, (uint32_t)i, 0, 0);
            size_t j = (size_t)((((uint64_t)r.v[0] << 32) | r.v[1]) % (uint64_t)(i + 1));
            size_t t = o[i];
            o[i] = o[j];
            o[j] = t;
        }
        if (m / (size_t)per_doc > max_docs) max_docs = m / (size_t)per_doc;
    }
    /* round-robin over classes */
    sbuf out = {0};
    size_t doc = 0, count = 0;
    for (size_t g = 0; g < max_docs; g++) {
        for (size_t c = 0; c < n_lab; c++) {
            size_t m = cls_off[c + 1] - cls_off[c];
            if (g >= m / (size_t)per_doc) continue;
            size_t this_doc = doc++;
            if (this_doc < first_doc || (n_docs && this_doc >= first_doc + n_docs)) continue;
            for (int k = 0; k < per_doc; k++) {
                const article *ar = &arts[order[cls_off[c] + g * (size_t)per_doc + (size_t)k]];
                if (k) sb_put(&out, " ", 1);
                size_t at = out.len;
                sb_put(&out, ar->text, ar->len);
                for (size_t q = at; q < out.len; q++)
                    if (out.p[q] == '\t') out.p[q] = ' ';
            }
            sb_put(&out, "\t", 1);
            sb_put(&out, labels[c], strlen(labels[c]));
            sb_put(&out, "\n", 1);
            count++;
        }
    }
    if (!count)
        rc = bt_fail(BT_EDATA, "%s: %zu articles in %zu classes make %zu documents of %d articles; none in the range "
                               "starting at document %zu",
                     in_path, n_art, n_lab, doc, per_doc, first_doc);
    else
        rc = bt_write_file_atomic(out_path, out.p, out.len);
    if (!rc && written) *written = count;
    free(out.p);
    free(fill);
    free(cls_off);
    free(order);
    free(labels);
    free(label_of);
    free(arts);
    free(text);
    return rc;
}
