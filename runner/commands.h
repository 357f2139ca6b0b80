/* runner/commands.h — the subcommands of the baton CLI.
 *
 * Owns: the signature every subcommand implements. Each command lives in its
 * own runner/cmd_<name>.c, parses its own arguments (argv[0] is the command
 * name) and returns a process exit code (0 or a BT_E* code from util/err.h),
 * printing the error itself via bt_errmsg() when it fails.
 */
#ifndef BATON_RUNNER_COMMANDS_H
#define BATON_RUNNER_COMMANDS_H

typedef int (*bt_command_fn)(int argc, char **argv);

struct bt_command {
    const char *name;
    bt_command_fn fn;
    const char *synopsis; /* one line for `baton --help` */
};

int cmd_version(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_selftest(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_inspect_model(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_demo_init(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_plan(int argc, char **argv);

/* The Hugging Face model directory of a checkpoint archive, written into out
 * (created; existing files refused unless force): config.json with id2label,
 * model.safetensors, vocab.txt, tokenizer_config.json. *step (may be NULL):
 * the archive's step. Used by `baton export` and `baton predict ARCHIVE`. */
int bt_export_archive(const char *path, const char *out, int force, long long *step);

/* Prints "baton: error: <bt_errmsg()>" to stderr and returns code. */
int bt_report_error(int code);

#endif
