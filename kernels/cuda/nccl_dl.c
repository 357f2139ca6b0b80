/* kernels/cuda/nccl_dl.c — NCCL loaded at run time (see nccl_dl.h).
 *
 * The few NCCL declarations baton needs are written here from NCCL's
 * documented API (nccl.h 2.x: ncclComm_t an opaque pointer; ncclResult_t
 * with ncclSuccess = 0; ncclFloat32 = 7; ncclSum = 0), so the build needs
 * no NCCL header either (the portable toolkit has none).
 */
#define _GNU_SOURCE /* dladdr */
#include "kernels/cuda/nccl_dl.h"
#include "kernels/cuda/cuda_dl_find.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ncclComm *ncclComm_t;
typedef int ncclResult_t; /* an enum in nccl.h; ncclSuccess = 0 */
#define NCCL_SUCCESS 0
#define NCCL_FLOAT32 7 /* ncclFloat32 */
#define NCCL_SUM 0     /* ncclSum */

static struct {
    ncclResult_t (*ncclCommInitAll)(ncclComm_t *comm, int ndev, const int *devlist);
    ncclResult_t (*ncclAllReduce)(const void *sendbuff, void *recvbuff, size_t count, int datatype, int op,
                                  ncclComm_t comm, void *stream);
    ncclResult_t (*ncclReduce)(const void *sendbuff, void *recvbuff, size_t count, int datatype, int op, int root,
                               ncclComm_t comm, void *stream);
    ncclResult_t (*ncclBroadcast)(const void *sendbuff, void *recvbuff, size_t count, int datatype, int root,
                                  ncclComm_t comm, void *stream);
    ncclResult_t (*ncclGroupStart)(void);
    ncclResult_t (*ncclGroupEnd)(void);
    ncclResult_t (*ncclCommDestroy)(ncclComm_t comm);
    const char *(*ncclGetErrorString)(ncclResult_t result);
    ncclResult_t (*ncclGetVersion)(int *version);
} fn;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static void *handle;
static char loaded_from[PATH_MAX];
static char load_error[2048];
static int version;

static int try_library(const char *path)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) return -1;
    static const char *const names[] = {"ncclCommInitAll", "ncclAllReduce",   "ncclReduce",
                                        "ncclBroadcast",   "ncclGroupStart",  "ncclGroupEnd",
                                        "ncclCommDestroy", "ncclGetErrorString", "ncclGetVersion"};
    void **slots[] = {(void **)&fn.ncclCommInitAll, (void **)&fn.ncclAllReduce,  (void **)&fn.ncclReduce,
                      (void **)&fn.ncclBroadcast,   (void **)&fn.ncclGroupStart, (void **)&fn.ncclGroupEnd,
                      (void **)&fn.ncclCommDestroy, (void **)&fn.ncclGetErrorString, (void **)&fn.ncclGetVersion};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        if (!(*slots[i] = dlsym(h, names[i]))) {
            size_t u = strlen(load_error);
            snprintf(load_error + u, sizeof load_error - u, "%s%s lacks %s", u ? "; " : "", path, names[i]);
            dlclose(h);
            memset(&fn, 0, sizeof fn);
            return -1;
        }
    }
    handle = h;
    Dl_info info;
    snprintf(loaded_from, sizeof loaded_from, "%s",
             dladdr((void *)fn.ncclAllReduce, &info) && info.dli_fname ? info.dli_fname : path);
    if (fn.ncclGetVersion(&version) != NCCL_SUCCESS) version = 0;
    return 0;
}

static void load(void)
{
    static const char *const majors[] = {"2"};
    if (bt_cuda_dl_find("nccl", "libnccl", majors, 1, try_library) == 0) return;
    size_t u = strlen(load_error);
    snprintf(load_error + u, sizeof load_error - u,
             "%sno libnccl.so.2 in $BATON_CUDA_LIBS, in Python packages (nvidia/nccl/lib: pip install "
             "nvidia-nccl-cu12) or on the library path (only needed to train on several GPUs)", u ? "; " : "");
}

static int ready(void)
{
    pthread_once(&load_once, load);
    return handle != NULL;
}

const char *bt_nccl_loaded_from(void) { return ready() ? loaded_from : NULL; }
const char *bt_nccl_error(void) { return ready() ? "" : load_error; }
int bt_nccl_version(void) { return ready() ? version : 0; }

struct bt_nccl {
    int n;
    ncclComm_t *comm;
};

static int failed(char *why, size_t cap, const char *what, ncclResult_t r)
{
    snprintf(why, cap, "%s: %s", what, fn.ncclGetErrorString ? fn.ncclGetErrorString(r) : "NCCL not loaded");
    return -1;
}

int bt_nccl_create(int n, const int *devices, bt_nccl **out, char *why, size_t cap)
{
    *out = NULL;
    if (!ready()) {
        snprintf(why, cap, "%s", load_error);
        return -1;
    }
    if (n < 1) {
        snprintf(why, cap, "ncclCommInitAll: %d devices", n);
        return -1;
    }
    bt_nccl *c = calloc(1, sizeof *c);
    if (!c || !(c->comm = calloc((size_t)n, sizeof *c->comm))) {
        free(c);
        snprintf(why, cap, "out of memory");
        return -1;
    }
    c->n = n;
    ncclResult_t r = fn.ncclCommInitAll(c->comm, n, devices);
    if (r != NCCL_SUCCESS) {
        free(c->comm);
        free(c);
        return failed(why, cap, "ncclCommInitAll", r);
    }
    *out = c;
    return 0;
}

/* One collective per rank, all inside one NCCL group (one thread drives
 * every device). op: 'a' all-reduce, 'r' reduce to rank 0, 'b' broadcast
 * from rank 0; in place. */
static int grouped(bt_nccl *c, int op, float *const *buf, size_t count, void *const *streams, char *why, size_t cap)
{
    ncclResult_t r = fn.ncclGroupStart();
    if (r != NCCL_SUCCESS) return failed(why, cap, "ncclGroupStart", r);
    ncclResult_t first = NCCL_SUCCESS;
    for (int i = 0; i < c->n; i++) {
        r = op == 'a'   ? fn.ncclAllReduce(buf[i], buf[i], count, NCCL_FLOAT32, NCCL_SUM, c->comm[i], streams[i])
            : op == 'r' ? fn.ncclReduce(buf[i], buf[i], count, NCCL_FLOAT32, NCCL_SUM, 0, c->comm[i], streams[i])
                        : fn.ncclBroadcast(buf[i], buf[i], count, NCCL_FLOAT32, 0, c->comm[i], streams[i]);
        if (r != NCCL_SUCCESS && first == NCCL_SUCCESS) first = r;
    }
    r = fn.ncclGroupEnd(); /* always: a group opened must be closed */
    if (first != NCCL_SUCCESS)
        return failed(why, cap, op == 'a' ? "ncclAllReduce" : op == 'r' ? "ncclReduce" : "ncclBroadcast", first);
    if (r != NCCL_SUCCESS) return failed(why, cap, "ncclGroupEnd", r);
    return 0;
}

int bt_nccl_allreduce_f32(bt_nccl *c, float *const *buf, size_t count, void *const *streams, char *why, size_t cap)
{
    return grouped(c, 'a', buf, count, streams, why, cap);
}

int bt_nccl_reduce0_f32(bt_nccl *c, float *const *buf, size_t count, void *const *streams, char *why, size_t cap)
{
    return grouped(c, 'r', buf, count, streams, why, cap);
}

int bt_nccl_broadcast0_f32(bt_nccl *c, float *const *buf, size_t count, void *const *streams, char *why, size_t cap)
{
    return grouped(c, 'b', buf, count, streams, why, cap);
}

void bt_nccl_free(bt_nccl *c)
{
    if (!c) return;
    for (int i = 0; i < c->n; i++)
        if (c->comm[i]) fn.ncclCommDestroy(c->comm[i]);
    free(c->comm);
    free(c);
}
