/* state/pickle.c — the restricted pickle machine (see pickle.h for the
 * accepted opcodes and the hooks).
 *
 * Owns: reading opcodes and their arguments with every length checked
 * against the buffer (and the current frame), the value pool, the stack,
 * marks and memo, and the limits.
 * Must not: call anything, resolve a name itself, or let a count from the
 * pickle size an allocation before it is checked against what remains.
 */
#include "state/pickle.h"
#include "util/err.h"
#include "util/mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 4096

typedef struct chunk {
    struct chunk *next;
    size_t used;
    bt_pk_value v[CHUNK];
} chunk;

struct bt_pk {
    chunk *chunks;
    size_t n_values, n_slots;
};

typedef struct {
    const uint8_t *b;
    size_t len, pos;
    size_t frame_end; /* 0: not in a frame */
    const char *label;
    const bt_pk_hooks *h;
    bt_pk *pk;
    bt_pk_value **st;
    size_t sn, scap;
    size_t *marks;
    size_t mn, mcap;
    bt_pk_value **memo;
    size_t memo_cap, memo_count;
    size_t op_at;
    int op;
} vm;

/* ------------------------------------------------------------------ names */

static const struct {
    unsigned char op;
    const char *name;
} opnames[] = {
    {'(', "MARK"}, {'.', "STOP"}, {'0', "POP"}, {'1', "POP_MARK"}, {'2', "DUP"}, {'F', "FLOAT"},
    {'I', "INT"}, {'J', "BININT"}, {'K', "BININT1"}, {'L', "LONG"}, {'M', "BININT2"}, {'N', "NONE"},
    {'P', "PERSID"}, {'Q', "BINPERSID"}, {'R', "REDUCE"}, {'S', "STRING"}, {'T', "BINSTRING"},
    {'U', "SHORT_BINSTRING"}, {'V', "UNICODE"}, {'X', "BINUNICODE"}, {'a', "APPEND"}, {'b', "BUILD"},
    {'c', "GLOBAL"}, {'d', "DICT"}, {'}', "EMPTY_DICT"}, {'e', "APPENDS"}, {'g', "GET"}, {'h', "BINGET"},
    {'i', "INST"}, {'j', "LONG_BINGET"}, {'l', "LIST"}, {']', "EMPTY_LIST"}, {'o', "OBJ"}, {'p', "PUT"},
    {'q', "BINPUT"}, {'r', "LONG_BINPUT"}, {'s', "SETITEM"}, {'t', "TUPLE"}, {')', "EMPTY_TUPLE"},
    {'u', "SETITEMS"}, {'G', "BINFLOAT"}, {0x80, "PROTO"}, {0x81, "NEWOBJ"}, {0x82, "EXT1"},
    {0x83, "EXT2"}, {0x84, "EXT4"}, {0x85, "TUPLE1"}, {0x86, "TUPLE2"}, {0x87, "TUPLE3"},
    {0x88, "NEWTRUE"}, {0x89, "NEWFALSE"}, {0x8a, "LONG1"}, {0x8b, "LONG4"}, {'B', "BINBYTES"},
    {'C', "SHORT_BINBYTES"}, {0x8c, "SHORT_BINUNICODE"}, {0x8d, "BINUNICODE8"}, {0x8e, "BINBYTES8"},
    {0x8f, "EMPTY_SET"}, {0x90, "ADDITEMS"}, {0x91, "FROZENSET"}, {0x92, "NEWOBJ_EX"},
    {0x93, "STACK_GLOBAL"}, {0x94, "MEMOIZE"}, {0x95, "FRAME"}, {0x96, "BYTEARRAY8"},
    {0x97, "NEXT_BUFFER"}, {0x98, "READONLY_BUFFER"},
};

const char *bt_pk_opcode_name(int op)
{
    for (size_t i = 0; i < sizeof opnames / sizeof *opnames; i++)
        if (opnames[i].op == op) return opnames[i].name;
    return NULL;
}

const char *bt_pk_kind_name(bt_pk_kind k)
{
    static const char *const names[] = {"None", "bool", "int", "float", "str", "tuple", "list", "dict",
                                        "global", "object"};
    return (unsigned)k < sizeof names / sizeof *names ? names[k] : "?";
}

/* ------------------------------------------------------------------ values */

bt_pk_value *bt_pk_new(bt_pk *pk, bt_pk_kind kind)
{
    if (pk->n_values >= BT_PK_MAX_VALUES) {
        bt_fail(BT_EDATA, "more than %u values: over baton's limit for a state dict", BT_PK_MAX_VALUES);
        return NULL;
    }
    if (!pk->chunks || pk->chunks->used == CHUNK) {
        chunk *c = bt_xmalloc(sizeof *c);
        c->next = pk->chunks;
        c->used = 0;
        pk->chunks = c;
    }
    bt_pk_value *v = &pk->chunks->v[pk->chunks->used++];
    memset(v, 0, sizeof *v);
    v->kind = kind;
    pk->n_values++;
    return v;
}

void bt_pk_free(bt_pk *pk)
{
    if (!pk) return;
    for (chunk *c = pk->chunks, *next; c; c = next) {
        next = c->next;
        for (size_t i = 0; i < c->used; i++) {
            bt_pk_value *v = &c->v[i];
            if (v->kind == BT_PK_STR) free(v->u.s);
            else if (v->kind == BT_PK_TUPLE || v->kind == BT_PK_LIST || v->kind == BT_PK_DICT) free(v->u.items);
        }
        free(c);
    }
    free(pk);
}

/* ------------------------------------------------------------------ errors */

static int fail(vm *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(vm *m, const char *fmt, ...)
{
    char why[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    const char *on = bt_pk_opcode_name(m->op);
    return bt_fail(BT_EDATA, "%s: byte %zu (%s): %s", m->label, m->op_at, on ? on : "?", why);
}

/* A hook's error, prefixed like the machine's own. */
static int hook_fail(vm *m, int rc)
{
    const char *on = bt_pk_opcode_name(m->op);
    return bt_fail_context(rc ? rc : BT_EDATA, "%s: byte %zu (%s)", m->label, m->op_at, on ? on : "?");
}

#define DAMAGED "the pickle is damaged or was not written by torch.save"

/* ------------------------------------------------------------------ input */

/* k bytes at the cursor, inside the buffer and the current frame. */
static int take(vm *m, size_t k, const uint8_t **p)
{
    if (m->frame_end && m->pos >= m->frame_end) m->frame_end = 0; /* the frame is used up */
    if (m->frame_end && k > m->frame_end - m->pos)
        return fail(m, "needs %zu bytes but its frame ends at byte %zu; " DAMAGED, k, m->frame_end);
    if (k > m->len - m->pos)
        return fail(m, "needs %zu bytes but the pickle ends at byte %zu: it is truncated", k, m->len);
    *p = m->b + m->pos;
    m->pos += k;
    return BT_OK;
}

static uint64_t le(const uint8_t *p, int n)
{
    uint64_t x = 0;
    for (int i = n - 1; i >= 0; i--) x = x << 8 | p[i];
    return x;
}

/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF); 1 if valid. */
static int utf8_ok(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t need;
        uint32_t cp, min;
        if (c < 0x80) { i++; continue; }
        else if ((c & 0xE0) == 0xC0) { need = 1; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { need = 2; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { need = 3; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if (len - i <= need) return 0;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += need + 1;
    }
    return 1;
}

/* ------------------------------------------------------------------ stack */

static size_t base(const vm *m) { return m->mn ? m->marks[m->mn - 1] : 0; }

static int push(vm *m, bt_pk_value *v)
{
    if (!v) return hook_fail(m, BT_EDATA);
    if (m->sn >= BT_PK_MAX_STACK) return fail(m, "the stack holds %u values, over baton's limit", BT_PK_MAX_STACK);
    if (m->sn == m->scap) {
        m->scap = m->scap ? 2 * m->scap : 64;
        m->st = bt_xrealloc(m->st, m->scap * sizeof *m->st);
    }
    m->st[m->sn++] = v;
    return BT_OK;
}

static int pop(vm *m, bt_pk_value **v)
{
    if (m->sn <= base(m)) return fail(m, "the stack is empty%s; " DAMAGED, m->mn ? " above the mark" : "");
    *v = m->st[--m->sn];
    return BT_OK;
}

static int top(vm *m, bt_pk_value **v)
{
    if (m->sn <= base(m)) return fail(m, "the stack is empty%s; " DAMAGED, m->mn ? " above the mark" : "");
    *v = m->st[m->sn - 1];
    return BT_OK;
}

/* The items above the last mark: st[*from .. sn); the mark is dropped. */
static int pop_mark(vm *m, size_t *from)
{
    if (!m->mn) return fail(m, "no MARK to pop to; " DAMAGED);
    *from = m->marks[--m->mn];
    return BT_OK;
}

static bt_pk_value *new_value(vm *m, bt_pk_kind k) { return bt_pk_new(m->pk, k); }

/* Appends n items (or n/2 pairs for a dict) to container c. */
static int extend(vm *m, bt_pk_value *c, bt_pk_value *const *items, size_t n)
{
    size_t have = c->kind == BT_PK_DICT ? 2 * c->n : c->n;
    if (!n) return BT_OK;
    if (m->pk->n_slots + n > BT_PK_MAX_SLOTS)
        return fail(m, "containers hold more than %u items, over baton's limit", BT_PK_MAX_SLOTS);
    if (have + n > c->cap) {
        size_t cap = c->cap ? c->cap : 4;
        while (cap < have + n) cap *= 2;
        c->u.items = bt_xrealloc(c->u.items, cap * sizeof *c->u.items);
        c->cap = cap;
    }
    memcpy(c->u.items + have, items, n * sizeof *items);
    c->n += c->kind == BT_PK_DICT ? n / 2 : n;
    m->pk->n_slots += n;
    return BT_OK;
}

static int make_tuple(vm *m, bt_pk_value *const *items, size_t n)
{
    bt_pk_value *t = new_value(m, BT_PK_TUPLE);
    if (!t) return hook_fail(m, BT_EDATA);
    int rc = extend(m, t, items, n);
    return rc ? rc : push(m, t);
}

/* ------------------------------------------------------------------ memo */

static int memo_put(vm *m, uint64_t idx)
{
    bt_pk_value *v;
    int rc = top(m, &v);
    if (rc) return rc;
    if (idx >= BT_PK_MAX_MEMO)
        return fail(m, "memo key %llu is over baton's limit of %u", (unsigned long long)idx, BT_PK_MAX_MEMO);
    if (idx >= m->memo_cap) {
        size_t cap = m->memo_cap ? m->memo_cap : 256;
        while (cap <= idx) cap *= 2;
        if (cap > BT_PK_MAX_MEMO) cap = BT_PK_MAX_MEMO;
        m->memo = bt_xrealloc(m->memo, cap * sizeof *m->memo);
        memset(m->memo + m->memo_cap, 0, (cap - m->memo_cap) * sizeof *m->memo);
        m->memo_cap = cap;
    }
    if (!m->memo[idx]) m->memo_count++;
    m->memo[idx] = v;
    return BT_OK;
}

static int memo_get(vm *m, uint64_t idx)
{
    if (idx >= m->memo_cap || !m->memo[idx])
        return fail(m, "memo key %llu was never stored; " DAMAGED, (unsigned long long)idx);
    return push(m, m->memo[idx]);
}

/* ------------------------------------------------------------------ opcodes */

static int op_string(vm *m, int width)
{
    const uint8_t *p;
    int rc = take(m, (size_t)width, &p);
    if (rc) return rc;
    uint64_t n = le(p, width);
    if (n > m->len - m->pos) return fail(m, "a %llu-byte string runs past the end: the pickle is truncated",
                                         (unsigned long long)n);
    if ((rc = take(m, (size_t)n, &p))) return rc;
    if (!utf8_ok(p, (size_t)n)) return fail(m, "the string is not valid UTF-8; " DAMAGED);
    bt_pk_value *v = new_value(m, BT_PK_STR);
    if (!v) return hook_fail(m, BT_EDATA);
    v->u.s = bt_xmalloc((size_t)n + 1); /* keeps NUL bytes: users compare len with strlen */
    if (n) memcpy(v->u.s, p, (size_t)n);
    v->u.s[n] = '\0';
    v->n = (size_t)n;
    return push(m, v);
}

static int op_int(vm *m, int64_t x)
{
    bt_pk_value *v = new_value(m, BT_PK_INT);
    if (!v) return hook_fail(m, BT_EDATA);
    v->u.i = x;
    return push(m, v);
}

static int op_long1(vm *m)
{
    const uint8_t *p;
    int rc = take(m, 1, &p);
    if (rc) return rc;
    size_t n = *p;
    if (n > 8) return fail(m, "a %zu-byte integer is larger than any a state dict holds", n);
    if ((rc = take(m, n, &p))) return rc;
    uint64_t x = le(p, (int)n);
    if (n && n < 8 && (p[n - 1] & 0x80)) x |= ~(uint64_t)0 << (8 * n); /* sign-extend */
    return op_int(m, (int64_t)x);
}

static int read_line(vm *m, char *buf)
{
    for (size_t i = 0; i <= BT_PK_MAX_NAME; i++) {
        const uint8_t *p = NULL;
        int rc = take(m, 1, &p);
        if (rc) return rc;
        if (*p == '\n') {
            buf[i] = '\0';
            return BT_OK;
        }
        if (*p < 0x20 || *p > 0x7e) return fail(m, "a global's name has a non-printable byte; " DAMAGED);
        if (i == BT_PK_MAX_NAME) break;
        buf[i] = (char)*p;
    }
    return fail(m, "a global's name is longer than %u bytes; " DAMAGED, BT_PK_MAX_NAME);
}

static int push_global(vm *m, const char *module, const char *name)
{
    int id = -1;
    if (!m->h->global) return fail(m, "global '%s.%s' is not allowed", module, name);
    int rc = m->h->global(m->h->ctx, module, name, &id);
    if (rc) return hook_fail(m, rc);
    bt_pk_value *v = new_value(m, BT_PK_GLOBAL);
    if (!v) return hook_fail(m, BT_EDATA);
    v->tag = id;
    return push(m, v);
}

static int op_global(vm *m)
{
    char module[BT_PK_MAX_NAME + 1], name[BT_PK_MAX_NAME + 1];
    int rc = read_line(m, module);
    if (!rc) rc = read_line(m, name);
    return rc ? rc : push_global(m, module, name);
}

static int op_stack_global(vm *m)
{
    bt_pk_value *name, *module;
    int rc = pop(m, &name);
    if (!rc) rc = pop(m, &module);
    if (rc) return rc;
    if (name->kind != BT_PK_STR || module->kind != BT_PK_STR)
        return fail(m, "module and name must be strings, not %s and %s; " DAMAGED, bt_pk_kind_name(module->kind),
                    bt_pk_kind_name(name->kind));
    if (strlen(module->u.s) != module->n || strlen(name->u.s) != name->n)
        return fail(m, "a global's name holds a NUL byte; " DAMAGED);
    return push_global(m, module->u.s, name->u.s);
}

static int op_frame(vm *m)
{
    if (m->frame_end && m->pos < m->frame_end)
        return fail(m, "a new frame starts %zu bytes before the current one ends; " DAMAGED, m->frame_end - m->pos);
    m->frame_end = 0;
    const uint8_t *p;
    int rc = take(m, 8, &p);
    if (rc) return rc;
    uint64_t n = le(p, 8);
    if (n > m->len - m->pos)
        return fail(m, "a frame of %llu bytes runs past the end of the pickle (%zu bytes left): it is truncated",
                    (unsigned long long)n, m->len - m->pos);
    if (n) m->frame_end = m->pos + (size_t)n;
    return BT_OK;
}

static int op_setitems(vm *m, int many)
{
    bt_pk_value *d, *kv[2];
    size_t from = 0;
    int rc;
    if (many) {
        if ((rc = pop_mark(m, &from))) return rc;
        if ((m->sn - from) % 2)
            return fail(m, "%zu items for key/value pairs; " DAMAGED, m->sn - from);
    } else {
        if ((rc = pop(m, &kv[1])) || (rc = pop(m, &kv[0]))) return rc;
    }
    size_t end = m->sn;
    if (many) m->sn = from; /* the items stay in st[from..end) until copied */
    if ((rc = top(m, &d))) return rc;
    if (d->kind != BT_PK_DICT) return fail(m, "setting items on a %s, not a dict; " DAMAGED, bt_pk_kind_name(d->kind));
    return many ? extend(m, d, m->st + from, end - from) : extend(m, d, kv, 2);
}

static int op_appends(vm *m, int many)
{
    bt_pk_value *l, *x;
    size_t from = 0;
    int rc;
    if (many) {
        if ((rc = pop_mark(m, &from))) return rc;
    } else if ((rc = pop(m, &x))) {
        return rc;
    }
    size_t end = m->sn;
    if (many) m->sn = from;
    if ((rc = top(m, &l))) return rc;
    if (l->kind != BT_PK_LIST) return fail(m, "appending to a %s, not a list; " DAMAGED, bt_pk_kind_name(l->kind));
    return many ? extend(m, l, m->st + from, end - from) : extend(m, l, &x, 1);
}

static int op_reduce(vm *m)
{
    bt_pk_value *args, *fn, *out = NULL;
    int rc = pop(m, &args);
    if (!rc) rc = pop(m, &fn);
    if (rc) return rc;
    if (fn->kind != BT_PK_GLOBAL)
        return fail(m, "calling a %s: only an allowed global can be called; " DAMAGED, bt_pk_kind_name(fn->kind));
    if (args->kind != BT_PK_TUPLE)
        return fail(m, "the arguments are a %s, not a tuple; " DAMAGED, bt_pk_kind_name(args->kind));
    if (!m->h->reduce) return fail(m, "calls are not allowed");
    if ((rc = m->h->reduce(m->h->ctx, m->pk, fn, args, &out))) return hook_fail(m, rc);
    return push(m, out);
}

static int op_build(vm *m)
{
    bt_pk_value *state, *inst;
    int rc = pop(m, &state);
    if (!rc) rc = top(m, &inst);
    if (rc) return rc;
    if (!m->h->build) return fail(m, "setting an object's state is not allowed");
    if ((rc = m->h->build(m->h->ctx, m->pk, inst, state))) return hook_fail(m, rc);
    return BT_OK;
}

static int op_persid(vm *m)
{
    bt_pk_value *pid, *out = NULL;
    int rc = pop(m, &pid);
    if (rc) return rc;
    if (!m->h->persistent_load) return fail(m, "persistent ids are not allowed");
    if ((rc = m->h->persistent_load(m->h->ctx, m->pk, pid, &out))) return hook_fail(m, rc);
    return push(m, out);
}

static int refuse(vm *m)
{
    const char *on = bt_pk_opcode_name(m->op);
    if (!on) return fail(m, "byte 0x%02x is not a pickle opcode; " DAMAGED, m->op);
    return fail(m, "opcode %s (0x%02x) is not allowed: baton reads only the opcodes a torch.save state dict uses "
                "(as torch.load(weights_only=True) does)", on, m->op);
}

static int op_stop(vm *m, int *done)
{
    if (m->mn) return fail(m, "STOP with a MARK still open; " DAMAGED);
    if (m->sn != 1) return fail(m, "STOP with %zu values on the stack, not 1; " DAMAGED, m->sn);
    if (m->frame_end && m->pos < m->frame_end)
        return fail(m, "STOP %zu bytes before the end of its frame; " DAMAGED, m->frame_end - m->pos);
    if (m->pos != m->len) return fail(m, "%zu bytes follow STOP; " DAMAGED, m->len - m->pos);
    *done = 1;
    return BT_OK;
}

static int op_mark(vm *m)
{
    if (m->mn >= BT_PK_MAX_MARKS) return fail(m, "more than %u nested marks", BT_PK_MAX_MARKS);
    if (m->mn == m->mcap) {
        m->mcap = m->mcap ? 2 * m->mcap : 16;
        m->marks = bt_xrealloc(m->marks, m->mcap * sizeof *m->marks);
    }
    m->marks[m->mn++] = m->sn;
    return BT_OK;
}

/* TUPLE (n < 0: down to the mark), TUPLE1..3 (n items). */
static int op_tuple(vm *m, int n)
{
    size_t from = 0, end = m->sn;
    int rc;
    if (n < 0) {
        if ((rc = pop_mark(m, &from))) return rc;
    } else {
        if (m->sn < base(m) + (size_t)n) return fail(m, "fewer than %d values on the stack; " DAMAGED, n);
        from = m->sn - (size_t)n;
    }
    m->sn = from; /* the items stay in st[from..end) until copied */
    return make_tuple(m, m->st + from, end - from);
}

/* None, booleans, integers, floats. */
static int op_scalar(vm *m)
{
    const uint8_t *p = NULL;
    bt_pk_value *v;
    int rc;
    switch (m->op) {
    case 'N': return push(m, new_value(m, BT_PK_NONE));
    case 0x88: case 0x89:
        if (!(v = new_value(m, BT_PK_BOOL))) return hook_fail(m, BT_EDATA);
        v->u.i = m->op == 0x88;
        return push(m, v);
    case 'J':
        if ((rc = take(m, 4, &p))) return rc;
        return op_int(m, (int32_t)(uint32_t)le(p, 4));
    case 'K':
        if ((rc = take(m, 1, &p))) return rc;
        return op_int(m, *p);
    case 'M':
        if ((rc = take(m, 2, &p))) return rc;
        return op_int(m, (int64_t)le(p, 2));
    case 0x8a: return op_long1(m);
    default: { /* 'G': BINFLOAT, big-endian */
        if ((rc = take(m, 8, &p))) return rc;
        uint64_t bits = 0;
        for (int i = 0; i < 8; i++) bits = bits << 8 | p[i];
        if (!(v = new_value(m, BT_PK_FLOAT))) return hook_fail(m, BT_EDATA);
        memcpy(&v->u.f, &bits, 8);
        return push(m, v);
    }
    }
}

/* BINPUT, LONG_BINPUT, MEMOIZE, BINGET, LONG_BINGET. */
static int op_memo(vm *m)
{
    const uint8_t *p = NULL;
    int rc, w = m->op == 'q' || m->op == 'h' ? 1 : 4;
    if (m->op == 0x94) return memo_put(m, m->memo_count);
    if ((rc = take(m, (size_t)w, &p))) return rc;
    return m->op == 'q' || m->op == 'r' ? memo_put(m, le(p, w)) : memo_get(m, le(p, w));
}

/* One opcode; *done set at STOP. */
static int step(vm *m, int *done)
{
    const uint8_t *p = NULL;
    int rc;
    m->op_at = m->pos;
    m->op = -1;
    if ((rc = take(m, 1, &p))) return rc;
    m->op = *p;
    if (m->op_at == 0 && m->op != 0x80)
        return fail(m, "the pickle does not start with PROTO: not a torch.save pickle (protocol 2 or later)");
    switch (m->op) {
    case 0x80: /* PROTO */
        if ((rc = take(m, 1, &p))) return rc;
        if (m->op_at != 0) return fail(m, "PROTO after the start; " DAMAGED);
        if (*p < 2 || *p > 5) return fail(m, "pickle protocol %u: baton reads protocols 2 to 5", *p);
        return BT_OK;
    case 0x95: return op_frame(m);
    case '.': return op_stop(m, done);
    case '(': return op_mark(m);
    case ')': return make_tuple(m, NULL, 0);
    case 't': return op_tuple(m, -1);
    case 0x85: case 0x86: case 0x87: return op_tuple(m, m->op - 0x84);
    case ']': return push(m, new_value(m, BT_PK_LIST));
    case '}': return push(m, new_value(m, BT_PK_DICT));
    case 'a': return op_appends(m, 0);
    case 'e': return op_appends(m, 1);
    case 's': return op_setitems(m, 0);
    case 'u': return op_setitems(m, 1);
    case 'N': case 0x88: case 0x89: case 'J': case 'K': case 'M': case 0x8a: case 'G': return op_scalar(m);
    case 'X': return op_string(m, 4);
    case 0x8c: return op_string(m, 1);
    case 0x8d: return op_string(m, 8);
    case 'q': case 'r': case 0x94: case 'h': case 'j': return op_memo(m);
    case 'c': return op_global(m);
    case 0x93: return op_stack_global(m);
    case 'Q': return op_persid(m);
    case 'R': return op_reduce(m);
    case 'b': return op_build(m);
    default: return refuse(m);
    }
}

int bt_pk_load(const uint8_t *buf, size_t len, const char *label, const bt_pk_hooks *h, bt_pk **out,
               bt_pk_value **result)
{
    *out = NULL;
    *result = NULL;
    vm m = {.b = buf, .len = len, .label = label ? label : "pickle", .h = h};
    m.pk = bt_xcalloc(1, sizeof *m.pk);
    int rc = BT_OK, done = 0;
    while (!rc && !done) {
        if (m.pos == m.len) {
            m.op_at = m.pos;
            m.op = '.';
            rc = fail(&m, "the pickle ends without STOP: it is truncated");
            break;
        }
        rc = step(&m, &done);
    }
    if (!rc) *result = m.st[0];
    free(m.st);
    free(m.marks);
    free(m.memo);
    if (rc) {
        bt_pk_free(m.pk);
        return rc;
    }
    *out = m.pk;
    return BT_OK;
}
