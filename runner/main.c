/* runner/main.c — the baton entry point: global flags and command dispatch.
 *
 * Owns: `baton --help`, -v/-q verbosity, and the table of subcommands.
 * Must not: implement any command itself (each is runner/cmd_<name>.c).
 */
#include "runner/commands.h"
#include "util/err.h"
#include "util/log.h"

#include <stdio.h>
#include <string.h>

static const struct bt_command commands[] = {
    {"run", cmd_run, "JOB.ini [-s k=v] [--fresh] [--resume PATH] [--force]: train one segment, resuming"},
    {"status", cmd_status, "JOB.ini [--json]: newest valid archive, step, epoch, best metric, ETA"},
    {"plan", cmd_plan, "JOB.ini [--device cpu|t4|...] [-s k=v] [--json]: peak memory, largest micro-batch, time estimate"},
    {"plot", cmd_plot, "JOB.ini [--output FILE]: SVG of loss and metric curves across segments"},
    {"version", cmd_version, "print version, build flags and compiled-in backends"},
    {"doctor", cmd_doctor, "what this machine offers: CPU, GPU backend, driver, cuBLASLt, GPUs; where device = auto trains"},
    {"selftest", cmd_selftest, "[--device cuda|cpu] [--precision P] [--json]: check the GPU backend against the CPU"},
    {"tokenize", cmd_tokenize, "MODEL_DIR [--pair] [--max-length N] [--json] [--truncation S]: ids as HF's BertTokenizerFast"},
    {"inspect-model", cmd_inspect_model, "MODEL_DIR: print a Hugging Face model's config and parameter table"},
    {"eval", cmd_eval, "JOB.ini [--archive PATH | --latest] [--json] [-s k=v]: score a checkpoint on the job's eval set"},
    {"predict", cmd_predict, "(MODEL_DIR|ARCHIVE|JOB.ini) --input FILE [--format tsv|jsonl|logits]: labels and probabilities"},
    {"verify", cmd_verify, "PATH...: check checkpoint archives (and their .sha256 sidecars)"},
    {"inspect", cmd_inspect, "ARCHIVE: print an archive's manifest, step, epoch and metrics"},
    {"export", cmd_export, "ARCHIVE OUTDIR: write a Hugging Face model directory from an archive"},
    {"demo-init", cmd_demo_init, "DIR: write the embedded demo (a tiny BERT and a synthetic dataset)"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    fprintf(f, "baton — fine-tunes BERT-family models on machines that get taken away\n\n"
               "usage: baton [-v|-vv|-q] COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].synopsis);
    fprintf(f, "\n`baton COMMAND --help` for a command's options. Exit codes: 0 done, 75 run again,\n"
               "64 usage, 65 bad data, 66 missing input, 69 job in use by another run, 70 internal,\n"
               "71 stalled, 74 I/O, 78 bad configuration, 130 interrupted twice.\n"
               "Documentation: docs/ in the source tree.\n");
}

int bt_report_error(int code)
{
    if (code != BT_OK) {
        const char *msg = bt_errmsg();
        fprintf(stderr, "baton: error: %s\n", msg[0] ? msg : bt_status_name(code));
    }
    return code;
}

int main(int argc, char **argv)
{
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "-v")) bt_log_set_level(BT_LOG_INFO);
        else if (!strcmp(argv[i], "-vv")) bt_log_set_level(BT_LOG_DEBUG);
        else if (!strcmp(argv[i], "-q")) bt_log_set_level(BT_LOG_ERROR);
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(stdout); return 0; }
        else if (!strcmp(argv[i], "--version")) return cmd_version(1, (char *[]){"version", NULL});
        else {
            fprintf(stderr, "baton: error: unknown option '%s'; see `baton --help`\n", argv[i]);
            return BT_EUSAGE;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return BT_EUSAGE;
    }
    if (!strcmp(argv[i], "help")) { usage(stdout); return 0; }
    for (size_t c = 0; c < N_COMMANDS; c++)
        if (!strcmp(argv[i], commands[c].name)) return commands[c].fn(argc - i, argv + i);
    fprintf(stderr, "baton: error: unknown command '%s'; see `baton --help`\n", argv[i]);
    return BT_EUSAGE;
}
