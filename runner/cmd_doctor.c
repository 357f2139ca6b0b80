/* runner/cmd_doctor.c — `baton doctor`: what this machine offers baton, and
 * where `device = auto` will train and why.
 *
 * Owns: the report (CPU, the GPU backend library and what it sees, the
 * verdict). Must not: train, write files, or change anything it inspects.
 */
#include "runner/commands.h"
#include "kernels/backend.h"
#include "runner/precision.h"
#include "runner/selftest.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef BATON_VERSION
#define BATON_VERSION "0.0.0-dev"
#endif

/* "model name : Intel(R) ..." of /proc/cpuinfo, and whether it has avx512_bf16 / amx_bf16. */
static void cpu_line(FILE *f)
{
    char model[256] = "unknown", line[4096];
    int bf16 = 0, amx = 0;
    FILE *c = fopen("/proc/cpuinfo", "r");
    while (c && fgets(line, sizeof line, c)) {
        if (!strncmp(line, "model name", 10) && !strcmp(model, "unknown")) {
            char *v = strchr(line, ':');
            if (v) snprintf(model, sizeof model, "%s", v + 2);
            model[strcspn(model, "\n")] = 0;
        }
        if (!strncmp(line, "flags", 5)) {
            bf16 |= strstr(line, " avx512_bf16") != NULL;
            amx |= strstr(line, " amx_bf16") != NULL;
        }
    }
    if (c) fclose(c);
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    fprintf(f, "CPU: %s, %d threads; native bf16: %s\n", model, threads,
            amx ? "AMX-BF16" : bf16 ? "AVX512-BF16" : "no (bf16 is emulated in fp32, exactly rounded)");
}

/* The precision `auto` trains GPU 0 in, which its first run self-checks
 * (runner/precision.h); the BATON_FAKE_GPU stand-in is the CPU: fp32. */
static bt_precision auto_precision(int real_gpu)
{
    bt_precision p = BT_PREC_FP32;
    bt_gpu_identity id;
    if (!real_gpu) return p;
    if (bt_backend_cuda_identity(0, &id) == BT_OK)
        bt_precision_pick(BT_JOB_PREC_AUTO, (bt_precision_device){BT_DEV_CUDA, id.cc_major * 10 + id.cc_minor}, NULL, &p,
                          NULL, 0);
    bt_err_clear();
    return p;
}

int cmd_doctor(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: baton doctor\n  what this machine offers baton: CPU, GPU backend library, driver, runtime,\n"
                   "  cuBLASLt, GPUs; and where `device = auto` trains, and why\n");
            return 0;
        }
        fprintf(stderr, "baton: error: doctor: unexpected argument '%s'\n", argv[i]);
        return 64;
    }
    printf("baton %s\n", BATON_VERSION);
    cpu_line(stdout);
    printf("GPU:\n");
    char why[1024] = "";
    int gpus = bt_backend_cuda_doctor(stdout, why, sizeof why);
    const char *fake = getenv("BATON_FAKE_GPU");
    if (fake && *fake)
        printf("  BATON_FAKE_GPU=%s: device = auto/cuda train on a CPU stand-in for the GPU (testing only)\n", fake);
    /* the self-check record of what precision = auto trains in there */
    if (gpus > 0 || (fake && *fake)) bt_selftest_doctor(stdout, auto_precision(gpus > 0 && !(fake && *fake)));
    if (fake && *fake)
        printf("verdict: device = auto trains on the BATON_FAKE_GPU stand-in (the CPU behind a test wrapper)\n");
    else if (gpus > 1)
        printf("verdict: device = auto trains on the GPUs, runtime.devices = auto on all %d of them (data parallel: "
               "the sums go through NCCL, or host memory without it, see above; device = cpu forces the CPU)\n",
               gpus);
    else if (gpus > 0)
        printf("verdict: device = auto trains on GPU 0 (device = cpu forces the CPU)\n");
    else
        printf("verdict: device = auto trains on the CPU: %s\n", why[0] ? why : "no GPU");
    return 0;
}
