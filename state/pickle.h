/* state/pickle.h — a restricted reader of Python pickles that never executes
 * anything: a stack machine that builds inert values and hands the four
 * dangerous operations (GLOBAL, persistent ids, REDUCE, BUILD) to hooks, so
 * the caller decides the few names it accepts (state/torch_bin.c: what a
 * torch.save state dict uses) and everything else is refused.
 * Opcode reference: CPython's Lib/pickletools.py (documentation of opcodes).
 *
 * Owns: the opcode loop, the value, stack, mark and memo bookkeeping, frames
 * (protocol 4), and the limits that keep a hostile pickle from allocating
 * absurdly (values, container slots, stack, marks, memo size).
 * Must not: know torch, call anything a pickle names, or accept an opcode
 * outside this list:
 *   PROTO (<= 5)  FRAME  STOP  MARK  EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 TUPLE3
 *   EMPTY_LIST APPEND APPENDS  EMPTY_DICT SETITEM SETITEMS
 *   NONE NEWTRUE NEWFALSE  BININT BININT1 BININT2 LONG1 (<= 8 bytes) BINFLOAT
 *   BINUNICODE SHORT_BINUNICODE BINUNICODE8 (valid UTF-8)
 *   BINPUT LONG_BINPUT MEMOIZE BINGET LONG_BINGET
 *   GLOBAL STACK_GLOBAL BINPERSID REDUCE BUILD   (only through the hooks)
 * which is the set torch.load(weights_only=True) accepts, plus the protocol-4
 * spellings of the same things. Stricter than Python: a pickle must start
 * with PROTO, end at STOP with exactly one value on the stack and no open
 * mark, and have no bytes after STOP.
 */
#ifndef BATON_STATE_PICKLE_H
#define BATON_STATE_PICKLE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    BT_PK_NONE, BT_PK_BOOL, BT_PK_INT, BT_PK_FLOAT, BT_PK_STR, BT_PK_TUPLE, BT_PK_LIST, BT_PK_DICT,
    BT_PK_GLOBAL, /* a name a hook accepted; tag = the hook's id */
    BT_PK_OBJECT, /* made by a hook (e.g. a tensor); tag = its type, i = its index */
} bt_pk_kind;

typedef struct bt_pk_value bt_pk_value;
struct bt_pk_value {
    bt_pk_kind kind;
    int tag;            /* GLOBAL, OBJECT: the hook's; DICT: 1 when a hook made it (OrderedDict) */
    union {
        int64_t i;      /* BOOL (0/1), INT, OBJECT index */
        double f;       /* FLOAT */
        char *s;        /* STR: UTF-8, NUL-terminated (may hold NUL bytes: use len) */
        bt_pk_value **items; /* TUPLE, LIST: n items; DICT: keys and values alternate, n pairs */
    } u;
    size_t n, cap;      /* STR: bytes; TUPLE, LIST: items; DICT: pairs */
};

typedef struct bt_pk bt_pk;

typedef struct {
    void *ctx;
    /* GLOBAL / STACK_GLOBAL module.name: set *id (>= 0) or refuse with bt_fail. */
    int (*global)(void *ctx, const char *module, const char *name, int *id);
    /* BINPERSID: the popped persistent id -> *out (made with bt_pk_new). */
    int (*persistent_load)(void *ctx, bt_pk *pk, const bt_pk_value *pid, bt_pk_value **out);
    /* REDUCE: callable (a BT_PK_GLOBAL) applied to args (a tuple) -> *out. */
    int (*reduce)(void *ctx, bt_pk *pk, const bt_pk_value *callable, const bt_pk_value *args, bt_pk_value **out);
    /* BUILD: state applied to inst (left on the stack). */
    int (*build)(void *ctx, bt_pk *pk, bt_pk_value *inst, const bt_pk_value *state);
} bt_pk_hooks;

#define BT_PK_MAX_VALUES 1000000u  /* values made (a state dict needs ~20 per tensor) */
#define BT_PK_MAX_SLOTS 4000000u   /* container items, all containers together */
#define BT_PK_MAX_STACK 1000000u
#define BT_PK_MAX_MARKS 10000u
#define BT_PK_MAX_MEMO 1000000u    /* memo keys are 0 .. this - 1 */
#define BT_PK_MAX_NAME 1024u       /* GLOBAL module / name line */

/* Runs the pickle buf[0..len). On success *out owns every value and *result
 * is the value STOP returned; free with bt_pk_free. A NULL hook refuses its
 * opcode. Errors (BT_EDATA) name label, the byte offset and the opcode; a
 * hook's own error gets the same prefix. On failure *out is NULL. */
int bt_pk_load(const uint8_t *buf, size_t len, const char *label, const bt_pk_hooks *h, bt_pk **out,
               bt_pk_value **result);
void bt_pk_free(bt_pk *pk);

/* For hooks: a new value of kind (zeroed), counted against the limits; NULL
 * after bt_fail when a limit is reached. */
bt_pk_value *bt_pk_new(bt_pk *pk, bt_pk_kind kind);

const char *bt_pk_kind_name(bt_pk_kind k); /* "int", "tuple", ... as Python says */
const char *bt_pk_opcode_name(int op);     /* "REDUCE", ...; NULL for a byte that is no opcode */

#endif
