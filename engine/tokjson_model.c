/* engine/tokjson_model.c — the models of tokenizer.json: WordPiece, BPE,
 * Unigram and WordLevel, turning one pre-tokenized word into ids as the
 * `tokenizers` crate does.
 *
 * Owns: greedy longest-match WordPiece; BPE (initial symbols with
 * continuing_subword_prefix / end_of_word_suffix, unk fusing, byte_fallback
 * "<0xXX>" pieces, ignore_merges, then merges by lowest rank, leftmost first,
 * through a binary heap as the crate's Word::merge_all); Unigram Viterbi
 * (best path by summed scores, unknown chars at min_score - 10, consecutive
 * unknowns fused, byte_fallback); WordLevel lookup.
 * Must not: allocate per token once the scratch is warm, or read outside the
 * word.
 */
#include "engine/tokjson.h"
#include "util/err.h"
#include "util/mem.h"

#include <string.h>

static inline void ids_push(int32_t **ids, size_t *n, size_t *cap, int32_t id)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        *ids = bt_xrealloc(*ids, *cap * sizeof **ids);
    }
    (*ids)[(*n)++] = id;
}

static int no_unk(const char *model)
{
    return bt_fail(BT_EDATA, "%s: a word needs the unknown token, but the model's unk token is not in its vocabulary: "
                   "fix model.unk_token (or unk_id) in tokenizer.json", model);
}

static inline int utf8_len(uint8_t b)
{
    return b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
}

/* ---------------------------------------------------------------- WordPiece */

static int wordpiece(const tj_model *m, const uint8_t *w, size_t n, tj_scratch *s, int32_t **ids, size_t *nids,
                     size_t *cap)
{
    size_t chars = 0;
    for (size_t i = 0; i < n; i++) chars += (w[i] & 0xC0) != 0x80;
    if ((long)chars > m->max_chars) {
        if (m->unk < 0) return no_unk("WordPiece");
        ids_push(ids, nids, cap, m->unk);
        return 0;
    }
    size_t need = m->prefix_n + n;
    if (s->key_cap < need + 1) {
        s->key_cap = need + 64;
        s->key = bt_xrealloc(s->key, s->key_cap);
    }
    uint8_t *key = s->key;
    size_t mark = *nids, start = 0;
    while (start < n) {
        size_t pre = start ? m->prefix_n : 0, end = n;
        if (pre) memcpy(key, m->prefix, pre);
        if (end - start + pre > m->vocab.max_len) {
            end = m->vocab.max_len > pre ? start + m->vocab.max_len - pre : start;
            while (end > start && (w[end] & 0xC0) == 0x80) end--;
        }
        int32_t id = -1;
        while (end > start) {
            memcpy(key + pre, w + start, end - start);
            id = tj_vocab_get(&m->vocab, (const char *)key, end - start + pre);
            if (id >= 0) break;
            do end--; while (end > start && (w[end] & 0xC0) == 0x80);
        }
        if (id < 0) {
            *nids = mark;
            if (m->unk < 0) return no_unk("WordPiece");
            ids_push(ids, nids, cap, m->unk);
            return 0;
        }
        ids_push(ids, nids, cap, id);
        start = end;
    }
    return 0;
}

/* ---------------------------------------------------------------- BPE */

typedef struct tj_sym sym_t;
typedef struct tj_heap heap_t;

static inline int heap_less(const heap_t *a, const heap_t *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(heap_t *h, size_t *n, heap_t e)
{
    size_t i = (*n)++;
    while (i) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&e, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static heap_t heap_pop(heap_t *h, size_t *n)
{
    heap_t top = h[0], e = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const heap_t *best = &e;
        if (l < *n && heap_less(&h[l], best)) { m = l; best = &h[l]; }
        if (r < *n && heap_less(&h[r], best)) { m = r; }
        if (m == i) break;
        h[i] = h[m];
        i = m;
    }
    if (*n) h[i] = e;
    return top;
}

static inline int merge_of(const tj_model *m, int32_t a, int32_t b, uint32_t *rank, int32_t *id)
{
    uint64_t v;
    if (!tj_map_get(&m->merges, ((uint64_t)(uint32_t)a << 32) | (uint32_t)b, &v)) return 0;
    *rank = (uint32_t)(v >> 32);
    *id = (int32_t)(uint32_t)v;
    return 1;
}

static void sym_add(tj_scratch *s, size_t *ns, int32_t id, uint32_t len)
{
    if (*ns == s->sym_cap) {
        s->sym_cap = s->sym_cap ? 2 * s->sym_cap : 64;
        s->sym = bt_xrealloc(s->sym, s->sym_cap * sizeof *s->sym);
    }
    sym_t *x = &s->sym[*ns];
    x->id = id;
    x->len = len;
    x->prev = (int32_t)*ns - 1;
    x->next = -1;
    if (*ns) s->sym[*ns - 1].next = (int32_t)*ns;
    (*ns)++;
}

/* Word::merge_all: pops the lowest (rank, position); stale entries (a side
 * merged away, or the pair now makes another token) are skipped. */
static void bpe_merge(const tj_model *m, tj_scratch *s, size_t ns)
{
    if (ns < 2) return;
    if (s->heap_cap < 2 * ns + 8) {
        s->heap_cap = 2 * ns + 8;
        s->heap = bt_xrealloc(s->heap, s->heap_cap * sizeof *s->heap);
    }
    size_t hn = 0;
    for (size_t i = 0; i + 1 < ns; i++) {
        uint32_t r;
        int32_t id;
        if (merge_of(m, s->sym[i].id, s->sym[i + 1].id, &r, &id)) heap_push(s->heap, &hn, (heap_t){r, (uint32_t)i, id});
    }
    while (hn) {
        heap_t top = heap_pop(s->heap, &hn);
        sym_t *cur = &s->sym[top.pos];
        if (!cur->len || cur->next < 0) continue;
        size_t nx = (size_t)cur->next;
        sym_t right = s->sym[nx];
        uint32_t r;
        int32_t id;
        if (!merge_of(m, cur->id, right.id, &r, &id) || id != top.new_id) continue;
        cur->id = top.new_id;
        cur->len += right.len;
        cur->next = right.next;
        s->sym[nx].len = 0;
        if (right.next >= 0) s->sym[right.next].prev = (int32_t)top.pos;
        if (hn + 2 > s->heap_cap) {
            s->heap_cap = 2 * s->heap_cap + 8;
            s->heap = bt_xrealloc(s->heap, s->heap_cap * sizeof *s->heap);
        }
        if (cur->prev >= 0 && merge_of(m, s->sym[cur->prev].id, cur->id, &r, &id))
            heap_push(s->heap, &hn, (heap_t){r, (uint32_t)cur->prev, id});
        if (cur->next >= 0 && merge_of(m, cur->id, s->sym[cur->next].id, &r, &id))
            heap_push(s->heap, &hn, (heap_t){r, top.pos, id});
    }
}

static int bpe(const tj_model *m, const uint8_t *w, size_t n, tj_scratch *s, int32_t **ids, size_t *nids, size_t *cap)
{
    if (!n) return 0;
    if (m->ignore_merges) {
        int32_t id = tj_vocab_get(&m->vocab, (const char *)w, n);
        if (id >= 0) { ids_push(ids, nids, cap, id); return 0; }
    }
    uint8_t key[4 + 2 * 64];
    size_t ns = 0;
    int32_t unk_len = -1; /* pending unk (bytes), -1 none */
    for (size_t i = 0; i < n;) {
        size_t cl = (size_t)utf8_len(w[i]);
        if (i + cl > n) cl = n - i;
        size_t k = 0;
        if (i && m->prefix) { memcpy(key, m->prefix, m->prefix_n); k = m->prefix_n; }
        memcpy(key + k, w + i, cl);
        k += cl;
        if (i + cl == n && m->suffix) { memcpy(key + k, m->suffix, m->suffix_n); k += m->suffix_n; }
        int32_t id = tj_vocab_get(&m->vocab, (const char *)key, k);
        if (id >= 0) {
            if (unk_len >= 0) { sym_add(s, &ns, m->unk, (uint32_t)unk_len); unk_len = -1; }
            sym_add(s, &ns, id, (uint32_t)cl);
        } else {
            int done = 0;
            if (m->byte_fallback) {
                size_t b = 0;
                while (b < k && m->byte_ids[key[b]] >= 0) b++;
                if (b == k) {
                    /* (the crate adds these without flushing a pending unk: kept) */
                    for (b = 0; b < k; b++) sym_add(s, &ns, m->byte_ids[key[b]], 1);
                    done = 1;
                }
            }
            if (!done && m->unk_given) {
                if (m->unk < 0) return no_unk("BPE");
                if (unk_len >= 0 && m->fuse_unk) unk_len += (int32_t)cl;
                else {
                    if (unk_len >= 0) sym_add(s, &ns, m->unk, (uint32_t)unk_len);
                    unk_len = (int32_t)cl;
                }
            }
        }
        i += cl;
    }
    if (unk_len >= 0) sym_add(s, &ns, m->unk, (uint32_t)unk_len);
    bpe_merge(m, s, ns);
    for (size_t i = 0; i < ns; i++)
        if (s->sym[i].len) ids_push(ids, nids, cap, s->sym[i].id);
    return 0;
}

/* ---------------------------------------------------------------- Unigram */

static int unigram(const tj_model *m, const uint8_t *w, size_t n, tj_scratch *s, int32_t **ids, size_t *nids,
                   size_t *cap)
{
    if (!n) return 0;
    if (s->best_cap < n + 1) {
        s->best_cap = n + 64;
        s->best = bt_xrealloc(s->best, s->best_cap * sizeof *s->best);
    }
    struct tj_best *best = s->best;
    for (size_t i = 0; i <= n; i++) { best[i].start = -1; best[i].score = 0; best[i].id = -1; }
    double unk_score = m->min_score - 10.0;
    for (size_t st = 0; st < n;) {
        double here = best[st].score;
        size_t mb = (size_t)utf8_len(w[st]);
        if (st + mb > n) mb = n - st;
        int single = 0;
        uint64_t node = 0;
        for (size_t k = st; k < n; k++) {
            uint64_t child;
            if (!tj_map_get(&m->trie, (node << 8) | w[k], &child)) break;
            node = child;
            int32_t id = m->node_id[node];
            if (id < 0) continue;
            size_t end = k + 1;
            double sc = m->scores[id] + here;
            if (best[end].start < 0 || sc > best[end].score) {
                best[end].score = sc;
                best[end].start = (int32_t)st;
                best[end].id = id;
            }
            if (!single && end - st == mb) single = 1;
        }
        if (!single) {
            double sc = unk_score + here;
            if (best[st + mb].start < 0 || sc > best[st + mb].score) {
                if (m->unk < 0)
                    return bt_fail(BT_EDATA, "Unigram: a character is not in the vocabulary and the model has no "
                                   "unk_id: set model.unk_id in tokenizer.json");
                best[st + mb].score = sc;
                best[st + mb].start = (int32_t)st;
                best[st + mb].id = m->unk;
            }
        }
        st += mb;
    }
    /* back-track into s->tmp_ids as (start, end, id) triples, last first; unknowns fused */
    s->tmp_n = 0;
    size_t end = n;
    while (end > 0) {
        size_t st = (size_t)best[end].start;
        int32_t id = best[end].id;
        if (id == m->unk && s->tmp_n >= 3 && s->tmp_ids[s->tmp_n - 1] == -2) {
            s->tmp_ids[s->tmp_n - 3] = (int32_t)st; /* extend the fused unknown to the left */
        } else {
            if (s->tmp_n + 3 > s->tmp_cap) {
                s->tmp_cap = 2 * s->tmp_cap + 96;
                s->tmp_ids = bt_xrealloc(s->tmp_ids, s->tmp_cap * sizeof *s->tmp_ids);
            }
            s->tmp_ids[s->tmp_n++] = (int32_t)st;
            s->tmp_ids[s->tmp_n++] = (int32_t)end;
            s->tmp_ids[s->tmp_n++] = id == m->unk ? -2 : id;
        }
        end = st;
    }
    for (size_t k = s->tmp_n; k >= 3; k -= 3) {
        int32_t a = s->tmp_ids[k - 3], b = s->tmp_ids[k - 2], id = s->tmp_ids[k - 1];
        if (id != -2) { ids_push(ids, nids, cap, id); continue; }
        /* a fused unknown: the string itself if the vocabulary has it, else bytes, else unk */
        int32_t v = tj_vocab_get(&m->vocab, (const char *)w + a, (size_t)(b - a));
        if (v >= 0) { ids_push(ids, nids, cap, v); continue; }
        if (m->byte_fallback) {
            int32_t i = a;
            while (i < b && m->byte_ids[w[i]] >= 0) i++;
            if (i == b) {
                for (i = a; i < b; i++) ids_push(ids, nids, cap, m->byte_ids[w[i]]);
                continue;
            }
        }
        ids_push(ids, nids, cap, m->unk);
    }
    return 0;
}

/* ---------------------------------------------------------------- dispatch */

int tj_model_tokenize(const tj_model *m, const uint8_t *word, size_t n, tj_scratch *w, int32_t **ids, size_t *nids,
                      size_t *cap)
{
    switch (m->kind) {
    case TJM_WORDPIECE: return wordpiece(m, word, n, w, ids, nids, cap);
    case TJM_BPE: return bpe(m, word, n, w, ids, nids, cap);
    case TJM_UNIGRAM: return unigram(m, word, n, w, ids, nids, cap);
    case TJM_WORDLEVEL: {
        int32_t id = tj_vocab_get(&m->vocab, (const char *)word, n);
        if (id < 0) {
            if (m->unk < 0) return no_unk("WordLevel");
            id = m->unk;
        }
        ids_push(ids, nids, cap, id);
        return 0;
    }
    }
    return bt_fail(BT_EINTERNAL, "tokenizer model kind %d", m->kind);
}
