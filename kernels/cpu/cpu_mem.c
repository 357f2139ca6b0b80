/* kernels/cpu/cpu_mem.c — how much memory the CPU backend's "device" (this
 * process's machine or container) has, and the attention kernel choice.
 *
 * Owns: cpu_mem_info() (bt_backend.mem_info) and cpu_attention_wants_probs().
 * Memory: MemTotal / MemAvailable of /proc/meminfo, capped by the cgroup's
 * limit (v2: memory.max less memory.current; v1: memory.limit_in_bytes less
 * memory.usage_in_bytes) when there is one: a container (Kaggle, Docker)
 * sees the host's /proc/meminfo but is killed at its own limit.
 * Must not: allocate device memory or keep state.
 */
#include "kernels/cpu/cpu_internal.h"
#include "kernels/workspace.h"
#include "util/err.h"

#include <stdio.h>
#include <string.h>

/* A "key: N kB" line of /proc/meminfo, in bytes; 0 when absent. */
static size_t meminfo_field(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    unsigned long long kb = 0;
    if (p && sscanf(p + strlen(key), ": %llu", &kb) == 1) return (size_t)kb * 1024;
    return 0;
}

/* One number from a file; 0 when absent or "max". */
static size_t file_number(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    unsigned long long v = 0;
    if (fscanf(f, "%llu", &v) != 1) v = 0;
    fclose(f);
    return (size_t)v;
}

/* The cgroup's limit and usage (bytes); limit 0 when there is none. */
static void cgroup_memory(size_t *limit, size_t *usage)
{
    *limit = file_number("/sys/fs/cgroup/memory.max");
    *usage = file_number("/sys/fs/cgroup/memory.current");
    if (!*limit) {
        *limit = file_number("/sys/fs/cgroup/memory/memory.limit_in_bytes");
        *usage = file_number("/sys/fs/cgroup/memory/memory.usage_in_bytes");
    }
    if (*limit >= ((size_t)1 << 60)) *limit = 0; /* "no limit" is a huge number in v1 */
}

int cpu_mem_info(bt_backend *be, size_t *free_bytes, size_t *total_bytes)
{
    (void)be;
    char text[8192];
    FILE *f = fopen("/proc/meminfo", "r");
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f) fclose(f);
    text[n] = '\0';
    size_t total = meminfo_field(text, "MemTotal"), avail = meminfo_field(text, "MemAvailable");
    if (!total || !avail)
        return bt_fail(BT_EIO, "/proc/meminfo: no MemTotal/MemAvailable; cannot tell how much memory this "
                               "machine has (set [runtime] memory_limit)");
    size_t lim, use;
    cgroup_memory(&lim, &use);
    if (lim && lim < total) total = lim;
    if (lim) {
        size_t left = lim > use ? lim - use : 0;
        if (left < avail) avail = left;
    }
    *free_bytes = avail;
    *total_bytes = total;
    return 0;
}

int cpu_attention_wants_probs(bt_backend *be, int S, int Dh)
{
    (void)be;
    return bt_ws_cpu_wants_probs(S, Dh);
}
