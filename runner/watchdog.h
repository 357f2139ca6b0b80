/* runner/watchdog.h — time budget, deadline, stop signals and the stall detector.
 *
 * Owns: parsing durations ("90m", "1h30m", "45", "1.5h") and budgets
 * ("none", "2h", "session:12h"); the session start (PID 1's start time, i.e.
 * the container's first process, overridable by BATON_SESSION_START) and the
 * process start (where a plain duration budget counts from); the
 * deadline (budget end - margin, margin = max(configured, 2 x measured
 * checkpoint-write time + 3 x p95 step time)); the process-wide stop flag set
 * by SIGTERM/SIGINT/SIGUSR1/SIGXCPU (a second SIGINT exits at once with 130);
 * and a stall-detector thread that exits the process with BT_ESTALL when no
 * step has finished for max(stall_timeout, stall_factor x p95 step time).
 * Must not: commit archives or touch the model (the segment loop asks
 * bt_watchdog_should_stop() once per step and does the committing itself).
 *
 * Clocks: step times and stall detection use CLOCK_MONOTONIC; the deadline is
 * wall-clock epoch seconds (the session start is only known as wall time).
 */
#ifndef BATON_RUNNER_WATCHDOG_H
#define BATON_RUNNER_WATCHDOG_H

#include <stdint.h>

/* Exit code of a run the stall detector killed (EX_OSERR; not one of the
 * codes of DESIGN.md). A supervisor should restart the run: the last
 * committed archive is intact by construction. */
#define BT_ESTALL 71
/* Exit code after a second SIGINT (128 + SIGINT, as shells report it). */
#define BT_EXIT_INTERRUPTED 130

/* ---- durations and budgets ---- */

/* "45" (seconds), "45s", "90m", "1h30m", "1.5h", "2d", "1h 30m"; units s m h d,
 * each at most once, in any order. Returns 0, or -1 (empty, bad number, unknown
 * or repeated unit, negative, not finite). The caller names the key. */
int bt_parse_duration(const char *s, double *seconds);
/* Shortest readable form: "1h30m", "45s", "2h", "0.5s", "0s". */
void bt_format_duration(double seconds, char *buf, unsigned n);

typedef enum {
    BT_BUDGET_NONE = 0,     /* run until done or signalled */
    BT_BUDGET_DURATION = 1, /* from the start of this process */
    BT_BUDGET_SESSION = 2,  /* from the start of the session (container) */
} bt_budget_kind;

typedef struct {
    bt_budget_kind kind;
    double seconds; /* > 0 unless NONE */
} bt_budget;

/* "none" | DURATION | "session:" DURATION. Returns 0 or -1. */
int bt_budget_parse(const char *s, bt_budget *out);
/* Canonical text ("none", "1h30m", "session:11h30m"). */
void bt_budget_format(const bt_budget *b, char *buf, unsigned n);

/* Start of the session as epoch seconds: $BATON_SESSION_START when set (must
 * be a number), else PID 1's start (/proc/1/stat field 22, clock ticks since
 * boot, against CLOCK_BOOTTIME). BT_ECONFIG for a bad variable (not a
 * number, or more than 1 s in the future: it would lengthen the budget),
 * BT_EIO when /proc cannot be read. */
int bt_session_start(double *epoch_s);
/* Start of this process as epoch seconds (/proc/self/stat, as above; to the
 * clock tick, 10 ms), or now where /proc cannot be read. A plain duration
 * budget counts from it, so loading, tokenizing and verifying count too. */
double bt_process_start(void);

/* ---- stop reasons and signals ---- */

typedef enum {
    BT_STOP_NONE = 0,
    BT_STOP_DEADLINE = 1,  /* the budget (minus margin) is used up */
    BT_STOP_SIGTERM = 2,
    BT_STOP_SIGINT = 3,
    BT_STOP_SIGUSR1 = 4,
    BT_STOP_SIGXCPU = 5,
} bt_stop_reason;

const char *bt_stop_reason_name(bt_stop_reason r); /* "deadline", "SIGTERM", ... */

/* Installs the handlers (process-wide, idempotent). The handlers only set a
 * lock-free atomic flag (they may run on any thread; the loop reads it on the
 * main thread); a second SIGINT writes one line to stderr and _exit(130). */
int bt_signals_install(void);
/* Restores the previous handlers and clears the flag. */
void bt_signals_restore(void);
/* The first stop signal received since install (BT_STOP_NONE if none). */
bt_stop_reason bt_signal_pending(void);
/* Clears the flag (tests; a new segment in the same process). */
void bt_signal_clear(void);

/* ---- the watchdog ---- */

#define BT_WATCHDOG_RING 64 /* recent step times kept for the p95 */

typedef struct {
    bt_budget budget;
    double margin_s;        /* the configured minimum margin */
    double stall_timeout_s; /* <= 0: no stall detector */
    double stall_factor;    /* N in N x p95; <= 0: 20 */
    double session_start;   /* epoch seconds for BT_BUDGET_SESSION; 0: bt_session_start() */
    double process_start;   /* epoch seconds for BT_BUDGET_DURATION; 0: bt_process_start() */
    /* Called by the stall thread just before it exits (e.g. to write
     * status.json state "stalled"); may be NULL. Runs on the stall thread,
     * concurrently with the main thread: it may only touch what is locked
     * or atomic (runner/status.h's bt_status_mark_stalled). */
    void (*on_stall)(void *ctx, double idle_s);
    void *on_stall_ctx;
} bt_watchdog_config;

typedef struct bt_watchdog bt_watchdog;

/* BT_ECONFIG when the budget is already used up at creation ("the session
 * started 12h05m ago; budget session:11h30m leaves no time: ..."), BT_EIO when
 * the session start cannot be found. Does not install signals or start the
 * stall thread. */
int bt_watchdog_create(const bt_watchdog_config *c, bt_watchdog **out);
/* Stops the stall thread (if started) and frees. */
void bt_watchdog_free(bt_watchdog *w);

/* Starts the stall thread; its clock starts now (set-up before the first step
 * counts against stall_timeout only). No-op when stall_timeout_s <= 0. */
int bt_watchdog_start_stall_thread(bt_watchdog *w);

/* One optimizer step finished, having taken step_s seconds: feeds the p95
 * ring and resets the stall clock. */
void bt_watchdog_step_done(bt_watchdog *w, double step_s);
/* Progress that is not a step (evaluation batches, archive writes): resets
 * the stall clock without touching the step statistics. */
void bt_watchdog_heartbeat(bt_watchdog *w);
/* A checkpoint write took seconds (the largest one is kept). */
void bt_watchdog_checkpoint_done(bt_watchdog *w, double seconds);

double bt_watchdog_p95(const bt_watchdog *w);    /* 0 before the first step */
double bt_watchdog_margin(const bt_watchdog *w); /* max(configured, 2 x ckpt + 3 x p95) */
/* Epoch seconds at which the loop must stop (budget end - margin); INFINITY
 * for budget none. */
double bt_watchdog_deadline(const bt_watchdog *w);
/* Budget end (epoch seconds; INFINITY for none). */
double bt_watchdog_budget_end(const bt_watchdog *w);
/* Seconds left before the deadline at wall time now (may be negative). */
double bt_watchdog_remaining_at(const bt_watchdog *w, double now);

/* Asked once per step: a pending signal wins over the deadline. */
bt_stop_reason bt_watchdog_should_stop(const bt_watchdog *w);
bt_stop_reason bt_watchdog_should_stop_at(const bt_watchdog *w, double now_epoch);

/* Pure helper for the rule above (tests): p95 of n samples (nearest-rank). */
double bt_percentile95(const double *samples, int n);

/* Wall clock and monotonic clock in seconds. */
double bt_now_epoch(void);
double bt_now_mono(void);

#endif
