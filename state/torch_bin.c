/* state/torch_bin.c — torch.save zip files (pytorch_model.bin) read without
 * Python: the zip layout, the meaning of the few pickle globals a state dict
 * uses, storages and tensor views (see torch_bin.h for what is accepted).
 * The layout and the allowed names follow PyTorch's documentation and its
 * torch.load(weights_only=True) unpickler (read for its rules, not copied).
 *
 * Owns: the hooks state/pickle.c calls (global, persistent_load, reduce,
 * build), the storage and tensor tables, the final dict -> tensors step.
 * Must not: know any tensor name, call or import anything a pickle names, or
 * allocate from a count before checking it against the file.
 */
#include "state/torch_bin.h"
#include "state/pickle.h"
#include "state/zip.h"
#include "util/err.h"
#include "util/file.h"
#include "util/mem.h"

#include <stdlib.h>
#include <string.h>

#define ADVICE "baton reads pytorch_model.bin as torch.load(weights_only=True) does and runs none of it; " \
               "if you trust this file, convert it to model.safetensors (docs/model-directories.md)"
#define DAMAGED "the file is damaged or was not written by torch.save"

enum { G_ODICT, G_REBUILD_V2, G_REBUILD, G_REBUILD_PARAM, G_STORAGE0 = 100 };
enum { OBJ_STORAGE = 1, OBJ_TENSOR = 2 };

static const struct {
    const char *name;
    bt_st_dtype dtype;
} storage_types[] = {
    {"FloatStorage", BT_ST_F32}, {"HalfStorage", BT_ST_F16},  {"BFloat16Storage", BT_ST_BF16},
    {"DoubleStorage", BT_ST_F64}, {"LongStorage", BT_ST_I64}, {"IntStorage", BT_ST_I32},
    {"ShortStorage", BT_ST_I16},  {"CharStorage", BT_ST_I8},  {"ByteStorage", BT_ST_U8},
    {"BoolStorage", BT_ST_BOOL},
};
#define N_STORAGE_TYPES (sizeof storage_types / sizeof *storage_types)

typedef struct {
    char *key;
    bt_st_dtype dtype;
    int64_t numel;
    const uint8_t *data; /* numel x element size bytes in the mapping */
} storage;

typedef struct {
    size_t storage;
    int64_t offset, numel;
    int ndim;
    int64_t shape[BT_ST_MAX_DIMS], stride[BT_ST_MAX_DIMS];
} tensor;

typedef struct {
    const char *label;
    const bt_zip *z;
    size_t file_len;   /* bounds the bytes of strided views copied */
    const char *prefix;
    storage *st;
    size_t nst, capst;
    long *st_of_entry; /* zip entry index -> storage index + 1 (0: none yet) */
    tensor *t;
    size_t nt, capt;
} ctx;

/* ------------------------------------------------------------------ hooks */

static int hook_global(void *vc, const char *module, const char *name, int *id)
{
    if (!strcmp(module, "collections") && !strcmp(name, "OrderedDict")) return *id = G_ODICT, BT_OK;
    if (!strcmp(module, "torch._utils")) {
        if (!strcmp(name, "_rebuild_tensor_v2")) return *id = G_REBUILD_V2, BT_OK;
        if (!strcmp(name, "_rebuild_tensor")) return *id = G_REBUILD, BT_OK;
        if (!strcmp(name, "_rebuild_parameter")) return *id = G_REBUILD_PARAM, BT_OK;
    }
    if (!strcmp(module, "torch")) {
        for (size_t i = 0; i < N_STORAGE_TYPES; i++)
            if (!strcmp(name, storage_types[i].name)) return *id = G_STORAGE0 + (int)i, BT_OK;
        size_t n = strlen(name);
        if (n > 7 && !strcmp(name + n - 7, "Storage"))
            return bt_fail(BT_EDATA, "storage type 'torch.%s' is not supported: baton reads Float, Half, "
                           "BFloat16, Double, Long, Int, Short, Char, Byte and Bool storages", name);
    }
    if (!strncmp(module, "torch", 5) && (!module[5] || module[5] == '.'))
        return bt_fail(BT_EDATA, "'%s.%s' is not supported: baton reads a state dict of dense tensors (made by "
                       "torch._utils._rebuild_tensor_v2 from plain storages); sparse, quantized, nested or "
                       "subclassed tensors, TorchScript and other torch objects are refused", module, name);
    return bt_fail(BT_EDATA, "global '%s.%s' is not allowed: a state dict needs only collections.OrderedDict and "
                   "torch's tensor rebuild functions and storage types. Python would import this name and may call "
                   "it while loading (that is how a pickle runs code such as os.system), so the file may be "
                   "malicious: do not load it with torch.load unless you trust its source", module, name);
}

static int is_str(const bt_pk_value *v, const char *s) { return v->kind == BT_PK_STR && !strcmp(v->u.s, s); }

static bt_pk_value *object(bt_pk *pk, int tag, size_t index)
{
    bt_pk_value *v = bt_pk_new(pk, BT_PK_OBJECT);
    if (v) {
        v->tag = tag;
        v->u.i = (int64_t)index;
    }
    return v;
}

static int storage_key_ok(const bt_pk_value *k)
{
    if (k->kind != BT_PK_STR || k->n == 0 || k->n > 64 || k->u.s[0] == '.') return 0;
    for (size_t i = 0; i < k->n; i++) {
        char c = k->u.s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '-' ||
              c == '.'))
            return 0;
    }
    return 1;
}

/* ('storage', torch.<T>Storage, key, location, numel) -> a storage object. */
static int hook_persistent_load(void *vc, bt_pk *pk, const bt_pk_value *pid, bt_pk_value **out)
{
    ctx *c = vc;
    bt_pk_value *const *a = pid->u.items;
    if (pid->kind != BT_PK_TUPLE || pid->n != 5 || !is_str(a[0], "storage"))
        return bt_fail(BT_EDATA, "a persistent id must be ('storage', type, key, location, numel), not a %zu-%s; "
                       DAMAGED, pid->kind == BT_PK_TUPLE ? pid->n : 1, bt_pk_kind_name(pid->kind));
    if (a[1]->kind != BT_PK_GLOBAL || a[1]->tag < G_STORAGE0)
        return bt_fail(BT_EDATA, "a storage's type is a %s, not a torch.<T>Storage; " DAMAGED,
                       bt_pk_kind_name(a[1]->kind));
    if (!storage_key_ok(a[2]))
        return bt_fail(BT_EDATA, "a storage key must be 1 to 64 letters, digits, '_', '-' or '.'; " DAMAGED);
    if (a[3]->kind != BT_PK_STR || a[4]->kind != BT_PK_INT || a[4]->u.i < 0)
        return bt_fail(BT_EDATA, "storage '%s': location must be a str and numel an int >= 0; " DAMAGED, a[2]->u.s);
    bt_st_dtype dt = storage_types[a[1]->tag - G_STORAGE0].dtype;
    int64_t numel = a[4]->u.i;
    char *member = bt_xasprintf("%s/data/%s", c->prefix, a[2]->u.s);
    const bt_zip_entry *e = bt_zip_find(c->z, member);
    long *seen = e ? &c->st_of_entry[e - bt_zip_get(c->z, 0)] : NULL;
    if (seen && *seen) { /* a storage shared by several tensors */
        free(member);
        const storage *s = &c->st[*seen - 1];
        if (s->dtype != dt || s->numel != numel)
            return bt_fail(BT_EDATA, "storage '%s' is named twice with different types or sizes; " DAMAGED, a[2]->u.s);
        return (*out = object(pk, OBJ_STORAGE, (size_t)(*seen - 1))) ? BT_OK : BT_EDATA;
    }
    const uint8_t *data = NULL;
    size_t len = 0;
    int rc = e ? bt_zip_data(c->z, e, 1, &data, &len)
               : bt_fail(BT_EDATA, "storage '%s': member '%s' is missing; the file is truncated or damaged",
                         a[2]->u.s, member);
    uint64_t want;
    if (!rc && (__builtin_mul_overflow((uint64_t)numel, bt_st_dtype_size(dt), &want) || want != len))
        rc = bt_fail(BT_EDATA, "storage '%s': %lld %s elements need %llu bytes but member '%s' has %zu; " DAMAGED,
                     a[2]->u.s, (long long)numel, bt_st_dtype_name(dt),
                     (unsigned long long)numel * bt_st_dtype_size(dt), member, len);
    free(member);
    if (rc) return rc;
    if (c->nst == c->capst) {
        c->capst = c->capst ? 2 * c->capst : 64;
        c->st = bt_xrealloc(c->st, c->capst * sizeof *c->st);
    }
    c->st[c->nst] = (storage){bt_xstrdup(a[2]->u.s), dt, numel, data};
    c->nst++;
    *seen = (long)c->nst;
    return (*out = object(pk, OBJ_STORAGE, c->nst - 1)) ? BT_OK : BT_EDATA;
}

/* size/stride: a tuple of ints >= 0. */
static int int_tuple(const bt_pk_value *v, const char *what, int64_t *dst, int *n)
{
    if (v->kind != BT_PK_TUPLE)
        return bt_fail(BT_EDATA, "a tensor's %s is a %s, not a tuple of ints; " DAMAGED, what, bt_pk_kind_name(v->kind));
    if (v->n > BT_ST_MAX_DIMS)
        return bt_fail(BT_EDATA, "a tensor with %zu dimensions: baton reads at most %d", v->n, BT_ST_MAX_DIMS);
    for (size_t i = 0; i < v->n; i++) {
        const bt_pk_value *x = v->u.items[i];
        if (x->kind != BT_PK_INT || x->u.i < 0)
            return bt_fail(BT_EDATA, "a tensor's %s[%zu] is not an int >= 0; " DAMAGED, what, i);
        dst[i] = x->u.i;
    }
    *n = (int)v->n;
    return BT_OK;
}

static int empty_odict(const bt_pk_value *v) { return v->kind == BT_PK_DICT && v->tag == 1 && v->n == 0; }

/* storage, offset, size, stride -> a tensor whose view lies inside its storage. */
static int make_tensor(ctx *c, bt_pk *pk, bt_pk_value *const *a, bt_pk_value **out)
{
    tensor t = {0};
    int ns = 0;
    if (a[0]->kind != BT_PK_OBJECT || a[0]->tag != OBJ_STORAGE)
        return bt_fail(BT_EDATA, "a tensor's storage is a %s, not a storage; " DAMAGED, bt_pk_kind_name(a[0]->kind));
    if (a[1]->kind != BT_PK_INT || a[1]->u.i < 0)
        return bt_fail(BT_EDATA, "a tensor's storage offset is not an int >= 0; " DAMAGED);
    int rc = int_tuple(a[2], "size", t.shape, &t.ndim);
    if (!rc) rc = int_tuple(a[3], "stride", t.stride, &ns);
    if (rc) return rc;
    if (ns != t.ndim)
        return bt_fail(BT_EDATA, "a tensor has %d sizes but %d strides; " DAMAGED, t.ndim, ns);
    t.storage = (size_t)a[0]->u.i;
    t.offset = a[1]->u.i;
    const storage *s = &c->st[t.storage];
    uint64_t numel = 1, last = 0, x;
    int over = 0;
    for (int d = 0; d < t.ndim; d++) {
        over |= __builtin_mul_overflow(numel, (uint64_t)t.shape[d], &numel);
        if (t.shape[d] > 0) {
            over |= __builtin_mul_overflow((uint64_t)(t.shape[d] - 1), (uint64_t)t.stride[d], &x);
            over |= __builtin_add_overflow(last, x, &last);
        }
    }
    if (over || numel > (uint64_t)INT64_MAX)
        return bt_fail(BT_EDATA, "a tensor's size or strides overflow 64 bits; " DAMAGED);
    t.numel = (int64_t)numel;
    /* the last element read, offset + sum((size-1) x stride), must lie inside the storage */
    if (numel && (__builtin_add_overflow(last, (uint64_t)t.offset, &last) || last >= (uint64_t)s->numel))
        return bt_fail(BT_EDATA, "a tensor view (offset %lld) reaches past the end of storage '%s' (%lld elements); "
                       DAMAGED, (long long)t.offset, s->key, (long long)s->numel);
    if (c->nt >= BT_PT_MAX_TENSORS)
        return bt_fail(BT_EDATA, "more than %u tensors: over baton's limit for a state dict", BT_PT_MAX_TENSORS);
    if (c->nt == c->capt) {
        c->capt = c->capt ? 2 * c->capt : 64;
        c->t = bt_xrealloc(c->t, c->capt * sizeof *c->t);
    }
    c->t[c->nt++] = t;
    return (*out = object(pk, OBJ_TENSOR, c->nt - 1)) ? BT_OK : BT_EDATA;
}

static int hook_reduce(void *vc, bt_pk *pk, const bt_pk_value *fn, const bt_pk_value *args, bt_pk_value **out)
{
    ctx *c = vc;
    bt_pk_value *const *a = args->u.items;
    size_t n = args->n;
    switch (fn->tag) {
    case G_ODICT:
        if (n)
            return bt_fail(BT_EDATA, "collections.OrderedDict with %zu arguments: torch.save writes an empty one "
                           "and fills it; " DAMAGED, n);
        if (!(*out = bt_pk_new(pk, BT_PK_DICT))) return BT_EDATA;
        (*out)->tag = 1;
        return BT_OK;
    case G_REBUILD_V2:
        if (n != 6 && n != 7)
            return bt_fail(BT_EDATA, "torch._utils._rebuild_tensor_v2 with %zu arguments, not 6 or 7; " DAMAGED, n);
        if (a[4]->kind != BT_PK_BOOL || !empty_odict(a[5]))
            return bt_fail(BT_EDATA, "torch._utils._rebuild_tensor_v2: requires_grad must be a bool and the backward "
                           "hooks an empty OrderedDict (a %s holding %zu); hooks are code, baton refuses them",
                           bt_pk_kind_name(a[5]->kind), a[5]->kind == BT_PK_DICT ? a[5]->n : 0);
        if (n == 7 && a[6]->kind != BT_PK_NONE && !(a[6]->kind == BT_PK_DICT && a[6]->n == 0))
            return bt_fail(BT_EDATA, "torch._utils._rebuild_tensor_v2: the tensor carries metadata (a %s): baton reads "
                           "plain tensors only", bt_pk_kind_name(a[6]->kind));
        return make_tensor(c, pk, a, out);
    case G_REBUILD:
        if (n != 4) return bt_fail(BT_EDATA, "torch._utils._rebuild_tensor with %zu arguments, not 4; " DAMAGED, n);
        return make_tensor(c, pk, a, out);
    case G_REBUILD_PARAM:
        if (n != 3 || a[0]->kind != BT_PK_OBJECT || a[0]->tag != OBJ_TENSOR || a[1]->kind != BT_PK_BOOL ||
            !empty_odict(a[2]))
            return bt_fail(BT_EDATA, "torch._utils._rebuild_parameter takes (tensor, requires_grad, OrderedDict()) "
                           "with no backward hooks; " DAMAGED);
        *out = a[0];
        return BT_OK;
    default:
        return bt_fail(BT_EDATA, "a storage type is called: torch.save never does that; " DAMAGED);
    }
}

/* Only an OrderedDict's __dict__ (the state dict's _metadata of module versions, unused). */
static int hook_build(void *vc, bt_pk *pk, bt_pk_value *inst, const bt_pk_value *state)
{
    if (inst->kind != BT_PK_DICT || inst->tag != 1 || state->kind != BT_PK_DICT)
        return bt_fail(BT_EDATA, "setting the state of a %s from a %s is not allowed: only an OrderedDict's "
                       "attributes (the state dict's _metadata) may be set, as torch.load(weights_only=True) allows",
                       inst->kind == BT_PK_DICT && inst->tag != 1 ? "plain dict" : bt_pk_kind_name(inst->kind),
                       bt_pk_kind_name(state->kind));
    return BT_OK;
}

/* ------------------------------------------------------------------ tensors */

static int contiguous(const tensor *t)
{
    int64_t want = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->stride[d] != want) return 0;
        want *= t->shape[d];
    }
    return 1;
}

/* A strided view copied into dst, element by element (es bytes each). */
static void gather(const tensor *t, const uint8_t *base, size_t es, uint8_t *dst)
{
    int64_t idx[BT_ST_MAX_DIMS] = {0};
    for (int64_t k = 0; k < t->numel; k++) {
        int64_t off = t->offset;
        for (int d = 0; d < t->ndim; d++) off += idx[d] * t->stride[d];
        memcpy(dst + (size_t)k * es, base + (size_t)off * es, es);
        for (int d = t->ndim - 1; d >= 0 && ++idx[d] == t->shape[d]; d--) idx[d] = 0;
    }
}

/* A tensor name: 1 to 4096 bytes, no control characters (names reach messages and terminals). */
static int name_ok(const bt_pk_value *k)
{
    if (k->n == 0 || k->n > 4096) return 0;
    for (size_t i = 0; i < k->n; i++)
        if ((uint8_t)k->u.s[i] < 0x20 || k->u.s[i] == 0x7f) return 0;
    return 1;
}

/* The result: a dict of str -> tensor, into out[] (owned[] gets copied views). */
static int collect(ctx *c, const bt_pk_value *root, bt_st_tensor **out, size_t *n_out, void ***owned, size_t *n_owned)
{
    if (root->kind != BT_PK_DICT)
        return bt_fail(BT_EDATA, "%s: the pickle holds a %s, not a state dict (a dict of tensors)", c->label,
                       bt_pk_kind_name(root->kind));
    if (root->n > BT_PT_MAX_TENSORS)
        return bt_fail(BT_EDATA, "%s: the state dict has %zu entries, over baton's limit of %u", c->label, root->n,
                       BT_PT_MAX_TENSORS);
    bt_st_tensor *ts = bt_xcalloc(root->n + 1, sizeof *ts);
    *out = ts;
    *owned = bt_xcalloc(root->n + 1, sizeof **owned);
    size_t name_bytes = 0, copied = 0;
    for (size_t i = 0; i < root->n; i++) {
        const bt_pk_value *k = root->u.items[2 * i], *v = root->u.items[2 * i + 1];
        if (k->kind != BT_PK_STR)
            return bt_fail(BT_EDATA, "%s: state dict key %zu is a %s, not a name; " DAMAGED, c->label, i,
                           bt_pk_kind_name(k->kind));
        if (!name_ok(k))
            return bt_fail(BT_EDATA, "%s: state dict key %zu is not a name (1 to 4096 bytes without control "
                           "characters); " DAMAGED, c->label, i);
        /* one memoized name used for many entries would be copied each time */
        if ((name_bytes += k->n) > BT_PT_MAX_PICKLE)
            return bt_fail(BT_EDATA, "%s: the tensor names add up to more than %u bytes; " DAMAGED, c->label,
                           BT_PT_MAX_PICKLE);
        if (v->kind != BT_PK_OBJECT || v->tag != OBJ_TENSOR)
            return bt_fail(BT_EDATA, "%s: '%s' holds a %s, not a tensor: the file is not a plain state dict (a training "
                           "checkpoint?); save model.state_dict() alone, or model.save_pretrained(dir)", c->label,
                           k->u.s, v->kind == BT_PK_OBJECT ? "storage" : bt_pk_kind_name(v->kind));
        const tensor *t = &c->t[v->u.i];
        const storage *s = &c->st[t->storage];
        size_t es = bt_st_dtype_size(s->dtype);
        bt_st_tensor *o = &ts[(*n_out)++];
        o->name = k->u.s;
        o->dtype = s->dtype;
        o->ndim = t->ndim;
        memcpy(o->shape, t->shape, sizeof o->shape);
        o->numel = t->numel;
        o->nbytes = (size_t)t->numel * es; /* <= the storage's bytes: checked in make_tensor */
        if (!t->numel) { /* its offset is unchecked: point at the storage itself */
            o->data = s->data;
            continue;
        }
        if (contiguous(t)) {
            o->data = s->data + (size_t)t->offset * es;
            continue;
        }
        /* a view that repeats elements (stride 0, overlaps) could be far larger than its file */
        if (t->numel > s->numel)
            return bt_fail(BT_EDATA, "%s: tensor '%s' is a view with %lld elements over a storage of %lld (strides "
                           "repeat elements): baton refuses it; save a contiguous copy (tensor.contiguous())",
                           c->label, k->u.s, (long long)t->numel, (long long)s->numel);
        /* many views of one storage could each be copied: all copies together stay within the file's size */
        if ((copied += o->nbytes) > c->file_len)
            return bt_fail(BT_EDATA, "%s: tensor '%s': the strided views copied add up to more than the file's %zu "
                           "bytes; " DAMAGED, c->label, k->u.s, c->file_len);
        uint8_t *copy = malloc(o->nbytes);
        if (!copy)
            return bt_fail(BT_EIO, "%s: tensor '%s': cannot allocate %zu bytes to copy a strided view", c->label,
                           k->u.s, o->nbytes);
        gather(t, s->data, es, copy);
        (*owned)[(*n_owned)++] = copy;
        o->data = copy;
    }
    return BT_OK;
}

/* ------------------------------------------------------------------ files */

/* Why a file that is not a zip is refused. */
static int not_zip(const uint8_t *b, size_t len, const char *label)
{
    if (len >= 2 && b[0] == 0x80 && b[1] <= 5)
        return bt_fail(BT_EDATA, "%s: a PyTorch file in the legacy format (PyTorch < 1.6 wrote a bare pickle "
                       "stream): baton reads only the zip format torch.save writes since 1.6; re-save it with a newer "
                       "PyTorch, or convert it to model.safetensors (docs/model-directories.md)", label);
    if (len >= 262 && !memcmp(b + 257, "ustar", 5))
        return bt_fail(BT_EDATA, "%s: a PyTorch file in the legacy tar format (PyTorch < 1.0): baton reads only the "
                       "zip format torch.save writes since 1.6; re-save it with a newer PyTorch, or convert it to "
                       "model.safetensors", label);
    uint64_t n = 0;
    for (int i = 7; len > 8 && i >= 0; i--) n = n << 8 | b[i];
    if (len > 8 && b[8] == '{' && n <= len - 8)
        return bt_fail(BT_EDATA, "%s: a safetensors file under a PyTorch name: rename it model.safetensors", label);
    return bt_fail(BT_EDATA, "%s: not a PyTorch file (neither the zip archive torch.save writes nor a legacy "
                   "pickle); " DAMAGED, label);
}

/* The single "<prefix>/data.pkl" member. */
static int find_prefix(const bt_zip *z, const char *label, char **prefix)
{
    const char *found = NULL;
    int torchscript = 0;
    for (size_t i = 0; i < bt_zip_count(z); i++) {
        const char *nm = bt_zip_get(z, i)->name, *slash = strchr(nm, '/');
        if (slash && (!strcmp(slash, "/constants.pkl") || !strncmp(slash, "/code/", 6))) torchscript = 1;
        if (!slash || slash == nm || strcmp(slash, "/data.pkl")) continue;
        if (found)
            return bt_fail(BT_EDATA, "%s: two pickles ('%s' and '%s'); " DAMAGED, label, found, nm);
        found = nm;
    }
    if (torchscript && found)
        return bt_fail(BT_EDATA, "%s: a TorchScript archive (torch.jit.save), not a state dict: baton does not read "
                       "TorchScript; save model.state_dict() with torch.save, or use save_pretrained", label);
    if (!found)
        return bt_fail(BT_EDATA, "%s: a zip archive without <folder>/data.pkl: not a file torch.save wrote", label);
    *prefix = bt_xstrndup(found, (size_t)(strchr(found, '/') - found));
    return BT_OK;
}

/* A small text member (byteorder, version), NUL-terminated into buf; 0 if absent. */
static int small_member(const bt_zip *z, const char *prefix, const char *name, char *buf, size_t cap, int *present)
{
    char *path = bt_xasprintf("%s/%s", prefix, name);
    const bt_zip_entry *e = bt_zip_find(z, path);
    free(path);
    *present = e != NULL;
    buf[0] = '\0';
    if (!e) return BT_OK;
    const uint8_t *d;
    size_t n;
    int rc = bt_zip_data(z, e, 1, &d, &n);
    if (rc) return rc;
    while (n && (d[n - 1] == '\n' || d[n - 1] == '\r' || d[n - 1] == ' ')) n--;
    if (n >= cap) n = cap - 1;
    memcpy(buf, d, n);
    buf[n] = '\0';
    return BT_OK;
}

static int check_layout(const bt_zip *z, const char *prefix, const char *label)
{
    char buf[32];
    int present, rc = small_member(z, prefix, "byteorder", buf, sizeof buf, &present);
    if (rc) return rc;
    if (present && !strcmp(buf, "big"))
        return bt_fail(BT_EDATA, "%s: written on a big-endian machine (byteorder 'big'): baton reads little-endian "
                       "files; re-save it on a little-endian machine or convert it to model.safetensors", label);
    if (present && strcmp(buf, "little"))
        return bt_fail(BT_EDATA, "%s: byteorder member says '%s', not 'little' or 'big'; " DAMAGED, label, buf);
    if ((rc = small_member(z, prefix, "version", buf, sizeof buf, &present))) return rc;
    if (!present && (rc = small_member(z, prefix, ".data/version", buf, sizeof buf, &present))) return rc;
    if (!present) return bt_fail(BT_EDATA, "%s: no '%s/version' member; " DAMAGED, label, prefix);
    char *end;
    long v = strtol(buf, &end, 10);
    if (end == buf || *end || v < 1 || v > 10)
        return bt_fail(BT_EDATA, "%s: format version '%s' is not one baton knows (1 to 10); a newer PyTorch may "
                       "have written it: convert it to model.safetensors", label, buf);
    return BT_OK;
}

static int parse(const uint8_t *b, size_t len, const char *label, bt_mapping *map, bt_st_file **out)
{
    if (len < 4 || memcmp(b, "PK\3\4", 4)) return not_zip(b, len, label);
    bt_zip *z = NULL;
    char *prefix = NULL, *pkl_label = NULL;
    bt_pk *pk = NULL;
    bt_pk_value *root = NULL;
    bt_st_tensor *ts = NULL;
    void **owned = NULL;
    size_t nts = 0, nowned = 0;
    ctx c = {.label = label, .file_len = len};
    int rc = bt_zip_open(b, len, label, &z);
    if (!rc) rc = find_prefix(z, label, &prefix);
    if (!rc) rc = check_layout(z, prefix, label);
    if (rc) goto out;
    pkl_label = bt_xasprintf("%s:%s/data.pkl", label, prefix);
    const bt_zip_entry *e = bt_zip_find(z, pkl_label + strlen(label) + 1);
    const uint8_t *pkl;
    size_t pkl_len;
    if (e->usize > BT_PT_MAX_PICKLE) {
        rc = bt_fail(BT_EDATA, "%s: %llu bytes, over baton's limit of %u for a state dict's pickle", pkl_label,
                     (unsigned long long)e->usize, BT_PT_MAX_PICKLE);
        goto out;
    }
    if ((rc = bt_zip_data(z, e, 1, &pkl, &pkl_len))) goto out;
    c.z = z;
    c.prefix = prefix;
    c.st_of_entry = bt_xcalloc(bt_zip_count(z) + 1, sizeof *c.st_of_entry);
    bt_pk_hooks h = {&c, hook_global, hook_persistent_load, hook_reduce, hook_build};
    rc = bt_pk_load(pkl, pkl_len, pkl_label, &h, &pk, &root);
    if (!rc) rc = collect(&c, root, &ts, &nts, &owned, &nowned);
    if (rc == BT_EDATA) {
        char *why = bt_xstrdup(bt_errmsg());
        bt_fail(rc, "%s\n%s", why, ADVICE);
        free(why);
    }
    if (!rc) rc = bt_st_open_tensors(label, ts, nts, map, owned, nowned, out);
    else
        for (size_t i = 0; i < nowned; i++) free(owned[i]);
out:
    free(ts);
    free(owned);
    bt_pk_free(pk);
    for (size_t i = 0; i < c.nst; i++) free(c.st[i].key);
    free(c.st);
    free(c.st_of_entry);
    free(c.t);
    free(pkl_label);
    free(prefix);
    bt_zip_close(z);
    return rc;
}

int bt_pt_open_buffer(const void *buf, size_t len, const char *label, bt_st_file **out)
{
    *out = NULL;
    return parse(buf, len, label ? label : "pytorch buffer", NULL, out);
}

int bt_pt_open(const char *path, bt_st_file **out)
{
    *out = NULL;
    bt_mapping map;
    int rc = bt_map_file(path, &map);
    if (rc) return rc;
    rc = parse(map.data, map.len, path, &map, out);
    if (map.map_base || map.data) bt_unmap_file(&map); /* not taken over: failed */
    return rc;
}
