/* tests/unit/test_archive_fixture.h — shared by the test_archive*.c tests:
 * a synthetic snapshot (random tensors), temp directories, file helpers.
 * Not a test itself (only tests/unit/test_*.c are). */
#ifndef BATON_TEST_ARCHIVE_FIXTURE_H
#define BATON_TEST_ARCHIVE_FIXTURE_H

#include "state/archive.h"
#include "state/commit.h"
#include "state/discovery.h"
#include "util/err.h"
#include "util/file.h"
#include "util/mem.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FX_MAXT 8

typedef struct {
    bt_st_entry model[FX_MAXT], optim[2 * FX_MAXT];
    void *buf[3 * FX_MAXT];
    char names[3 * FX_MAXT][64];
    size_t nbuf;
    char trainer[256];
    bt_snapshot s;
} fx_snap;

static __attribute__((unused)) uint64_t fx_rng(uint64_t *s)
{
    uint64_t x = *s += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static __attribute__((unused)) void *fx_fill(fx_snap *f, size_t n, uint64_t *seed)
{
    float *p = bt_xaligned_alloc(n * sizeof(float) + 64);
    uint32_t *u = (uint32_t *)p;
    for (size_t i = 0; i < n; i += 2) {
        uint64_t r = fx_rng(seed);
        u[i] = (uint32_t)r;
        if (i + 1 < n) u[i + 1] = (uint32_t)(r >> 32);
    }
    f->buf[f->nbuf++] = p;
    return p;
}

/* A snapshot with 4 weight tensors of about `floats` floats in total (at
 * least a few), their AdamW moments, and small text members. */
static __attribute__((unused)) void fx_make(fx_snap *f, int64_t step, size_t floats, uint64_t seed)
{
    memset(f, 0, sizeof *f);
    static const char *wn[4] = {"bert.embeddings.word_embeddings.weight", "bert.encoder.layer.0.attention.self.query.weight",
                                "bert.encoder.layer.0.attention.self.query.bias", "classifier.weight"};
    size_t q = floats / 4 > 4 ? floats / 4 : 4;
    int64_t shapes[4][2] = {{(int64_t)(q / 4), 4}, {(int64_t)(q / 8), 8}, {(int64_t)q, 1}, {2, (int64_t)(q / 2)}};
    for (int i = 0; i < 4; i++) {
        size_t n = (size_t)(shapes[i][0] * shapes[i][1]);
        bt_st_entry *e = &f->model[i];
        e->name = wn[i];
        e->dtype = BT_ST_F32;
        e->ndim = (i == 2) ? 1 : 2;
        e->shape[0] = shapes[i][0];
        e->shape[1] = shapes[i][1];
        e->data = fx_fill(f, n, &seed);
        for (int k = 0; k < 2; k++) {
            bt_st_entry *o = &f->optim[2 * i + k];
            *o = *e;
            snprintf(f->names[2 * i + k], 64, "%s.%s", wn[i], k ? "exp_avg_sq" : "exp_avg");
            o->name = f->names[2 * i + k];
            o->data = fx_fill(f, n, &seed);
        }
    }
    snprintf(f->trainer, sizeof f->trainer,
             "{\"step\": %lld, \"epoch\": 1, \"seed\": 42, \"loss_scale\": 1.0, "
             "\"metrics\": [{\"step\": %lld, \"loss\": 0.5}], \"label_map\": [\"neg\", \"pos\"]}",
             (long long)step, (long long)step);
    f->s = (bt_snapshot){.model = f->model, .n_model = 4, .optim = f->optim, .n_optim = 8,
                         .trainer_json = f->trainer,
                         .job_ini = "[job]\nname = test\nlr = 2e-5\n",
                         .config_json = "{\"model_type\": \"bert\", \"hidden_size\": 8}",
                         .vocab_txt = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\n",
                         .fingerprint_json = "{\"lr\": 2e-05, \"seed\": 42, \"model\": \"tiny\"}",
                         .step = step, .baton_version = "test"};
}

static __attribute__((unused)) void fx_free(fx_snap *f)
{
    for (size_t i = 0; i < f->nbuf; i++) bt_aligned_free(f->buf[i]);
    f->nbuf = 0;
}

static __attribute__((unused)) char *fx_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char *t = bt_xasprintf("%s/baton-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    if (!mkdtemp(t)) {
        perror("mkdtemp");
        exit(1);
    }
    return t;
}

static int fx_rm1(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(p);
}

static __attribute__((unused)) void fx_rmrf(const char *dir) { nftw(dir, fx_rm1, 16, FTW_DEPTH | FTW_PHYS); }

static __attribute__((unused)) void fx_write(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* Number of directory entries other than . and .. */
static __attribute__((unused)) int fx_count_dir(const char *dir)
{
    char *cmd = bt_xasprintf("ls -A '%s' | wc -l", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p && fscanf(p, "%d", &n) != 1) n = -1;
    if (p) pclose(p);
    free(cmd);
    return n;
}

#endif
