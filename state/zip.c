/* state/zip.c — bounded zip directory reader and stored-member access (see
 * zip.h; layout from PKWARE's APPNOTE.TXT, read for its field tables).
 *
 * Owns: EOCD search, ZIP64 locator/record, central directory entries and
 * their ZIP64 extra fields, local header checks, CRC-32.
 * Must not: trust any count, size or offset before comparing it with the
 * buffer, allocate more than the directory's own size implies, or inflate.
 */
#include "state/zip.h"
#include "util/err.h"
#include "util/mem.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u
#define EOCD_LEN 22u
#define LOC64_LEN 20u
#define EOCD64_LEN 56u
#define CENTRAL_LEN 46u
#define LOCAL_LEN 30u

#define NOT_ZIP "the file is damaged, truncated or not a zip archive"

struct bt_zip {
    const uint8_t *buf;
    size_t len;
    char *label;
    uint64_t cd_offset; /* members must end before the directory */
    size_t n;
    bt_zip_entry *e;
    size_t *by_name; /* indices sorted by name */
};

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)rd16(p) | (uint32_t)rd16(p + 2) << 16; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* ------------------------------------------------------------------ CRC-32 */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            crc_table[t][i] = crc_table[0][crc_table[t - 1][i] & 0xFF] ^ (crc_table[t - 1][i] >> 8);
}

uint32_t bt_crc32(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = buf;
    uint32_t c = ~crc;
    while (len >= 8) { /* slicing by 8: one table per byte position */
        uint32_t a = c ^ rd32(p), b = rd32(p + 4);
        c = crc_table[7][a & 0xFF] ^ crc_table[6][(a >> 8) & 0xFF] ^ crc_table[5][(a >> 16) & 0xFF] ^
            crc_table[4][a >> 24] ^ crc_table[3][b & 0xFF] ^ crc_table[2][(b >> 8) & 0xFF] ^
            crc_table[1][(b >> 16) & 0xFF] ^ crc_table[0][b >> 24];
        p += 8;
        len -= 8;
    }
    while (len--) c = crc_table[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
    return ~c;
}

/* ------------------------------------------------------------------ directory */

static void zip_free(bt_zip *z)
{
    if (!z) return;
    for (size_t i = 0; i < z->n; i++) free(z->e[i].name);
    free(z->e);
    free(z->by_name);
    free(z->label);
    free(z);
}

void bt_zip_close(bt_zip *z) { zip_free(z); }

/* The end-of-central-directory record: the last signature whose comment runs
 * exactly to the end of the buffer. */
static int find_eocd(const bt_zip *z, uint64_t *pos)
{
    if (z->len < EOCD_LEN)
        return bt_fail(BT_EDATA, "%s: %zu bytes is too short for a zip archive; " NOT_ZIP, z->label, z->len);
    size_t lo = z->len - EOCD_LEN > 0xFFFFu ? z->len - EOCD_LEN - 0xFFFFu : 0;
    for (size_t p = z->len - EOCD_LEN + 1; p-- > lo;) {
        if (rd32(z->buf + p) == SIG_EOCD && p + EOCD_LEN + rd16(z->buf + p + 20) == z->len) {
            *pos = p;
            return BT_OK;
        }
    }
    return bt_fail(BT_EDATA, "%s: no zip end-of-central-directory record; " NOT_ZIP, z->label);
}

/* Reads the ZIP64 end record through its locator (20 bytes before the EOCD). */
static int read_zip64(const bt_zip *z, uint64_t eocd, uint64_t *entries, uint64_t *cd_size, uint64_t *cd_off,
                      uint64_t *dir_end)
{
    if (eocd < LOC64_LEN || rd32(z->buf + eocd - LOC64_LEN) != SIG_LOC64)
        return bt_fail(BT_EDATA, "%s: the end record defers to ZIP64 but there is no ZIP64 locator; " NOT_ZIP,
                       z->label);
    const uint8_t *l = z->buf + eocd - LOC64_LEN;
    uint64_t at = rd64(l + 8);
    if (rd32(l + 4) != 0 || rd32(l + 16) > 1)
        return bt_fail(BT_EDATA, "%s: multi-volume zip archives are not supported", z->label);
    if (at > eocd - LOC64_LEN || eocd - LOC64_LEN - at < EOCD64_LEN)
        return bt_fail(BT_EDATA, "%s: ZIP64 end record offset %llu is outside the file; " NOT_ZIP, z->label,
                       (unsigned long long)at);
    const uint8_t *r = z->buf + at;
    if (rd32(r) != SIG_EOCD64)
        return bt_fail(BT_EDATA, "%s: no ZIP64 end record at byte %llu; " NOT_ZIP, z->label, (unsigned long long)at);
    if (rd32(r + 16) != 0 || rd32(r + 20) != 0 || rd64(r + 24) != rd64(r + 32))
        return bt_fail(BT_EDATA, "%s: multi-volume zip archives are not supported", z->label);
    *entries = rd64(r + 32);
    *cd_size = rd64(r + 40);
    *cd_off = rd64(r + 48);
    *dir_end = at;
    return BT_OK;
}

/* Applies a ZIP64 extended-information extra field (id 1) to e: the 64-bit
 * values replace, in order, each 32-bit field that was saturated. */
static int apply_zip64_extra(const bt_zip *z, const uint8_t *x, size_t xlen, bt_zip_entry *e, int need_u,
                             int need_c, int need_o)
{
    size_t at = 0;
    int found = 0;
    while (at + 4 <= xlen) {
        uint16_t id = rd16(x + at), sz = rd16(x + at + 2);
        if (sz > xlen - at - 4)
            return bt_fail(BT_EDATA, "%s: member '%s': extra field runs past its entry; " NOT_ZIP, z->label, e->name);
        if (id == 1 && !found) {
            const uint8_t *f = x + at + 4;
            size_t need = 8u * (size_t)(need_u + need_c + need_o), o = 0;
            if (sz < need)
                return bt_fail(BT_EDATA, "%s: member '%s': ZIP64 extra field is %u bytes, %zu needed; " NOT_ZIP,
                               z->label, e->name, sz, need);
            if (need_u) e->usize = rd64(f + o), o += 8;
            if (need_c) e->csize = rd64(f + o), o += 8;
            if (need_o) e->local_offset = rd64(f + o);
            found = 1;
        }
        at += 4u + sz;
    }
    if ((need_u || need_c || need_o) && !found)
        return bt_fail(BT_EDATA, "%s: member '%s': a size or offset is 0xFFFFFFFF but there is no ZIP64 extra "
                       "field; " NOT_ZIP, z->label, e->name);
    return BT_OK;
}

/* One central directory entry at *at (inside [.., end)); advances *at. */
static int read_entry(bt_zip *z, uint64_t *at, uint64_t end, bt_zip_entry *e)
{
    if (end - *at < CENTRAL_LEN || rd32(z->buf + *at) != SIG_CENTRAL)
        return bt_fail(BT_EDATA, "%s: central directory entry %zu at byte %llu is missing or cut short; " NOT_ZIP,
                       z->label, z->n, (unsigned long long)*at);
    const uint8_t *c = z->buf + *at;
    uint16_t nl = rd16(c + 28), xl = rd16(c + 30), cl = rd16(c + 32);
    if (end - *at - CENTRAL_LEN < (uint64_t)nl + xl + cl)
        return bt_fail(BT_EDATA, "%s: central directory entry %zu runs past the directory; " NOT_ZIP, z->label,
                       z->n);
    const char *name = (const char *)c + CENTRAL_LEN;
    for (uint16_t k = 0; k < nl; k++) /* names reach messages: no NUL, no terminal control bytes */
        if ((uint8_t)name[k] < 0x20 || name[k] == 0x7f)
            return bt_fail(BT_EDATA, "%s: central directory entry %zu has a control byte in its name; " NOT_ZIP,
                           z->label, z->n);
    e->name = bt_xstrndup(name, nl);
    e->flags = rd16(c + 8);
    e->method = rd16(c + 10);
    e->crc = rd32(c + 16);
    e->csize = rd32(c + 20);
    e->usize = rd32(c + 24);
    e->local_offset = rd32(c + 42);
    int nu = e->usize == 0xFFFFFFFFu, nc = e->csize == 0xFFFFFFFFu, no = e->local_offset == 0xFFFFFFFFu;
    if (rd16(c + 34) != 0 && rd16(c + 34) != 0xFFFFu)
        return bt_fail(BT_EDATA, "%s: member '%s' starts on disk %u: multi-volume zip archives are not supported",
                       z->label, e->name, rd16(c + 34));
    int rc = apply_zip64_extra(z, c + CENTRAL_LEN + nl, xl, e, nu, nc, no);
    *at += CENTRAL_LEN + (uint64_t)nl + xl + cl;
    return rc;
}

static int name_cmp(const void *a, const void *b, void *ctx)
{
    const bt_zip *z = ctx;
    return strcmp(z->e[*(const size_t *)a].name, z->e[*(const size_t *)b].name);
}

static int read_directory(bt_zip *z)
{
    uint64_t eocd = 0;
    int rc = find_eocd(z, &eocd);
    if (rc) return rc;
    const uint8_t *r = z->buf + eocd;
    uint64_t entries = rd16(r + 10), cd_size = rd32(r + 12), cd_off = rd32(r + 16), dir_end = eocd;
    if (rd16(r + 4) != rd16(r + 6) || rd16(r + 8) != rd16(r + 10) || (rd16(r + 4) != 0 && rd16(r + 4) != 0xFFFFu))
        return bt_fail(BT_EDATA, "%s: multi-volume zip archives are not supported", z->label);
    if (entries == 0xFFFFu || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu ||
        (eocd >= LOC64_LEN && rd32(z->buf + eocd - LOC64_LEN) == SIG_LOC64)) {
        if ((rc = read_zip64(z, eocd, &entries, &cd_size, &cd_off, &dir_end))) return rc;
    }
    if (cd_off > dir_end || cd_size > dir_end - cd_off)
        return bt_fail(BT_EDATA, "%s: central directory [%llu, +%llu) lies outside the file; " NOT_ZIP, z->label,
                       (unsigned long long)cd_off, (unsigned long long)cd_size);
    if (entries > BT_ZIP_MAX_ENTRIES || entries > cd_size / CENTRAL_LEN)
        return bt_fail(BT_EDATA, "%s: %llu members in a %llu-byte directory (baton reads at most %u); " NOT_ZIP,
                       z->label, (unsigned long long)entries, (unsigned long long)cd_size, BT_ZIP_MAX_ENTRIES);
    z->cd_offset = cd_off;
    z->e = bt_xcalloc((size_t)entries + 1, sizeof *z->e);
    uint64_t at = cd_off, end = cd_off + cd_size;
    for (uint64_t i = 0; i < entries; i++) {
        rc = read_entry(z, &at, end, &z->e[z->n]);
        z->n++; /* counted even on failure, so its name is freed */
        if (rc) return rc;
    }
    if (at != end)
        return bt_fail(BT_EDATA, "%s: the central directory has %llu bytes after its %llu entries; " NOT_ZIP,
                       z->label, (unsigned long long)(end - at), (unsigned long long)entries);
    z->by_name = bt_xcalloc(z->n + 1, sizeof *z->by_name);
    for (size_t i = 0; i < z->n; i++) z->by_name[i] = i;
    qsort_r(z->by_name, z->n, sizeof *z->by_name, name_cmp, z);
    for (size_t i = 1; i < z->n; i++)
        if (!strcmp(z->e[z->by_name[i]].name, z->e[z->by_name[i - 1]].name))
            return bt_fail(BT_EDATA, "%s: member '%s' appears twice in the zip directory; " NOT_ZIP, z->label,
                           z->e[z->by_name[i]].name);
    return BT_OK;
}

int bt_zip_open(const uint8_t *buf, size_t len, const char *label, bt_zip **out)
{
    *out = NULL;
    bt_zip *z = bt_xcalloc(1, sizeof *z);
    z->buf = buf;
    z->len = len;
    z->label = bt_xstrdup(label ? label : "zip buffer");
    int rc = read_directory(z);
    if (rc) {
        zip_free(z);
        return rc;
    }
    *out = z;
    return BT_OK;
}

size_t bt_zip_count(const bt_zip *z) { return z->n; }

const bt_zip_entry *bt_zip_get(const bt_zip *z, size_t i) { return i < z->n ? &z->e[i] : NULL; }

const bt_zip_entry *bt_zip_find(const bt_zip *z, const char *name)
{
    size_t lo = 0, hi = z->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, z->e[z->by_name[mid]].name);
        if (c == 0) return &z->e[z->by_name[mid]];
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

int bt_zip_data(const bt_zip *z, const bt_zip_entry *e, int verify_crc, const uint8_t **data, size_t *len)
{
    const char *lb = z->label, *nm = e->name;
    if (e->flags & 1u)
        return bt_fail(BT_EDATA, "%s: member '%s' is encrypted; baton reads only plain stored members", lb, nm);
    if (e->method != 0)
        return bt_fail(BT_EDATA, "%s: member '%s' is compressed (zip method %u); torch.save stores members "
                       "uncompressed: was the file re-zipped? Use the file torch.save wrote", lb, nm, e->method);
    if (e->csize != e->usize)
        return bt_fail(BT_EDATA, "%s: member '%s' is stored but its sizes differ (%llu vs %llu); " NOT_ZIP, lb, nm,
                       (unsigned long long)e->csize, (unsigned long long)e->usize);
    uint64_t lo = e->local_offset;
    if (lo > z->cd_offset || z->cd_offset - lo < LOCAL_LEN || rd32(z->buf + lo) != SIG_LOCAL)
        return bt_fail(BT_EDATA, "%s: member '%s': no local header at byte %llu; " NOT_ZIP, lb, nm,
                       (unsigned long long)lo);
    const uint8_t *h = z->buf + lo;
    uint16_t nl = rd16(h + 26), xl = rd16(h + 28);
    uint64_t start = lo + LOCAL_LEN + nl + xl;
    if (start > z->cd_offset || e->csize > z->cd_offset - start)
        return bt_fail(BT_EDATA, "%s: member '%s': its %llu bytes at byte %llu run past the start of the "
                       "directory; the file is truncated or damaged", lb, nm, (unsigned long long)e->csize,
                       (unsigned long long)start);
    if (nl != strlen(nm) || memcmp(h + LOCAL_LEN, nm, nl))
        return bt_fail(BT_EDATA, "%s: member '%s': its local header names another member; " NOT_ZIP, lb, nm);
    if (e->csize > SIZE_MAX)
        return bt_fail(BT_EDATA, "%s: member '%s' is too large for this machine", lb, nm);
    *data = z->buf + start;
    *len = (size_t)e->csize;
    if (verify_crc && e->crc && bt_crc32(0, *data, *len) != e->crc)
        return bt_fail(BT_EDATA, "%s: member '%s' fails its CRC-32 check: the file is damaged; re-download it", lb,
                       nm);
    return BT_OK;
}
