/* runner/watchdog.c — budget, deadline, signals, stall detector (see watchdog.h). */
#include "runner/watchdog.h"
#include "util/err.h"
#include "util/mem.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- clocks */

double bt_now_epoch(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double bt_now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------- durations */

int bt_parse_duration(const char *s, double *seconds)
{
    if (!s) return -1;
    while (isspace((unsigned char)*s)) s++;
    if (!*s) return -1;
    double total = 0;
    unsigned seen = 0; /* bit per unit */
    int parts = 0, bare = 0;
    while (*s) {
        if (!isdigit((unsigned char)*s) && *s != '.') return -1; /* no sign, no "inf" */
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (end == s || errno || !isfinite(v) || v < 0) return -1;
        s = end;
        double mul;
        int bit;
        switch (*s) {
        case 's': mul = 1; bit = 1; break;
        case 'm': mul = 60; bit = 2; break;
        case 'h': mul = 3600; bit = 4; break;
        case 'd': mul = 86400; bit = 8; break;
        case '\0': mul = 1; bit = 16; bare = 1; break;
        default: return -1;
        }
        if (seen & (unsigned)bit) return -1;
        seen |= (unsigned)bit;
        if (*s) s++;
        total += v * mul;
        parts++;
        while (isspace((unsigned char)*s)) s++;
    }
    if (bare && parts > 1) return -1; /* "1h30" is ambiguous */
    if (!isfinite(total)) return -1;
    *seconds = total;
    return 0;
}

void bt_format_duration(double seconds, char *buf, unsigned n)
{
    if (!(seconds >= 0) || !isfinite(seconds)) {
        snprintf(buf, n, "%g", seconds);
        return;
    }
    double whole = floor(seconds);
    if (whole != seconds) { /* fractional: plain seconds, shortest round trip */
        snprintf(buf, n, "%.6gs", seconds);
        return;
    }
    uint64_t t = (uint64_t)whole;
    if (t == 0) {
        snprintf(buf, n, "0s");
        return;
    }
    unsigned d = (unsigned)(t / 86400), h = (unsigned)(t % 86400 / 3600), m = (unsigned)(t % 3600 / 60),
             s = (unsigned)(t % 60);
    char tmp[64];
    size_t k = 0;
    if (d) k += (size_t)snprintf(tmp + k, sizeof tmp - k, "%ud", d);
    if (h) k += (size_t)snprintf(tmp + k, sizeof tmp - k, "%uh", h);
    if (m) k += (size_t)snprintf(tmp + k, sizeof tmp - k, "%um", m);
    if (s) k += (size_t)snprintf(tmp + k, sizeof tmp - k, "%us", s);
    snprintf(buf, n, "%s", tmp);
}

int bt_budget_parse(const char *s, bt_budget *out)
{
    if (!s) return -1;
    while (isspace((unsigned char)*s)) s++;
    if (!strcmp(s, "none")) {
        out->kind = BT_BUDGET_NONE;
        out->seconds = 0;
        return 0;
    }
    bt_budget_kind kind = BT_BUDGET_DURATION;
    if (!strncmp(s, "session:", 8)) {
        kind = BT_BUDGET_SESSION;
        s += 8;
    }
    double secs;
    if (bt_parse_duration(s, &secs) != 0 || secs <= 0) return -1;
    out->kind = kind;
    out->seconds = secs;
    return 0;
}

void bt_budget_format(const bt_budget *b, char *buf, unsigned n)
{
    char d[64];
    switch (b->kind) {
    case BT_BUDGET_NONE: snprintf(buf, n, "none"); return;
    case BT_BUDGET_DURATION: bt_format_duration(b->seconds, buf, n); return;
    case BT_BUDGET_SESSION:
        bt_format_duration(b->seconds, d, sizeof d);
        snprintf(buf, n, "session:%s", d);
        return;
    }
    snprintf(buf, n, "?");
}

/* ------------------------------------------------- session and process start */

/* When the process of STAT_PATH (/proc/<pid>/stat) started, as epoch seconds:
 * now minus its age, the age being CLOCK_BOOTTIME now minus its starttime
 * (field 22, clock ticks since boot). Errors end with HINT. */
static int proc_start_epoch(const char *stat_path, const char *hint, double *epoch_s)
{
    FILE *f = fopen(stat_path, "r");
    if (!f) return bt_fail(BT_EIO, "%s: cannot open: %s%s", stat_path, strerror(errno), hint);
    char buf[2048];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* comm (field 2) may contain spaces and ')': fields resume after the last ')' */
    char *p = strrchr(buf, ')');
    if (!p) return bt_fail(BT_EIO, "%s: unexpected format%s", stat_path, hint);
    p++;
    /* after ')' comes field 3 (state); starttime is field 22 */
    unsigned long long start = 0;
    int field = 2, ok = 0;
    char *save = NULL;
    for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        field++;
        if (field == 22) {
            start = strtoull(tok, NULL, 10);
            ok = 1;
            break;
        }
    }
    if (!ok) return bt_fail(BT_EIO, "%s: no field 22 (starttime)%s", stat_path, hint);
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0) hz = 100;
    struct timespec up;
    if (clock_gettime(CLOCK_BOOTTIME, &up))
        return bt_fail(BT_EIO, "clock_gettime(CLOCK_BOOTTIME): %s%s", strerror(errno), hint);
    double age = ((double)up.tv_sec + up.tv_nsec * 1e-9) - (double)start / (double)hz;
    *epoch_s = bt_now_epoch() - (age > 0 ? age : 0);
    return BT_OK;
}

int bt_session_start(double *epoch_s)
{
    const char *env = getenv("BATON_SESSION_START");
    if (env && *env) {
        char *end;
        errno = 0;
        double v = strtod(env, &end);
        while (isspace((unsigned char)*end)) end++;
        if (end == env || *end || errno || !isfinite(v) || v < 0)
            return bt_fail(BT_ECONFIG, "BATON_SESSION_START='%s' is not a number of seconds since the epoch; "
                                       "unset it or set e.g. BATON_SESSION_START=$(date +%%s)", env);
        /* a start in the future would silently lengthen a session budget
         * (1 s of slack for clocks read at different moments) */
        double now = bt_now_epoch();
        if (v > now + 1.0)
            return bt_fail(BT_ECONFIG, "BATON_SESSION_START='%s' is %.0f s in the future (now is %.0f): it would "
                                       "extend the session budget past the session's real end; set it to when the "
                                       "session started (e.g. BATON_SESSION_START=$(date +%%s) at its start) or "
                                       "unset it", env, v - now, now);
        *epoch_s = v;
        return BT_OK;
    }
    return proc_start_epoch("/proc/1/stat", "; set BATON_SESSION_START=<epoch seconds> or use a plain duration budget",
                            epoch_s);
}

double bt_process_start(void)
{
    double t;
    if (proc_start_epoch("/proc/self/stat", "", &t)) {
        bt_err_clear();
        return bt_now_epoch();
    }
    return t;
}

/* --------------------------------------------------------------- signals */

/* The handlers may run on any thread that does not block the signal (the
 * stall thread, OpenMP and BLAS workers), and the loop reads the flags on the
 * main thread: lock-free C11 atomics are both async-signal-safe and ordered
 * across threads, where a volatile sig_atomic_t is only the former. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the signal flags need lock-free atomic ints");
static atomic_int g_stop;      /* bt_stop_reason of the first signal */
static atomic_int g_sigint_n;  /* SIGINTs seen */
static int g_installed;
static struct sigaction g_old[4];
static const int g_sigs[4] = {SIGTERM, SIGINT, SIGUSR1, SIGXCPU};

static void on_signal(int sig)
{
    int saved = errno;
    bt_stop_reason r = sig == SIGTERM ? BT_STOP_SIGTERM : sig == SIGINT ? BT_STOP_SIGINT
                     : sig == SIGUSR1 ? BT_STOP_SIGUSR1 : BT_STOP_SIGXCPU;
    if (sig == SIGINT && atomic_fetch_add(&g_sigint_n, 1) + 1 >= 2) {
        static const char msg[] = "\nbaton: second interrupt: exiting now; the last committed checkpoint is intact\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        _exit(BT_EXIT_INTERRUPTED);
    }
    int none = BT_STOP_NONE; /* the first reason wins, also against a signal on another thread */
    atomic_compare_exchange_strong(&g_stop, &none, (int)r);
    errno = saved;
}

int bt_signals_install(void)
{
    if (g_installed) return BT_OK;
    atomic_store(&g_stop, BT_STOP_NONE);
    atomic_store(&g_sigint_n, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (int i = 0; i < 4; i++)
        if (sigaction(g_sigs[i], &sa, &g_old[i]) != 0) {
            int e = errno;
            for (int k = 0; k < i; k++) sigaction(g_sigs[k], &g_old[k], NULL);
            return bt_fail(BT_EINTERNAL, "sigaction(%d) failed: %s", g_sigs[i], strerror(e));
        }
    g_installed = 1;
    return BT_OK;
}

void bt_signals_restore(void)
{
    if (!g_installed) return;
    for (int i = 0; i < 4; i++) sigaction(g_sigs[i], &g_old[i], NULL);
    g_installed = 0;
    bt_signal_clear();
}

bt_stop_reason bt_signal_pending(void) { return (bt_stop_reason)atomic_load(&g_stop); }

void bt_signal_clear(void)
{
    atomic_store(&g_stop, BT_STOP_NONE);
    atomic_store(&g_sigint_n, 0);
}

const char *bt_stop_reason_name(bt_stop_reason r)
{
    switch (r) {
    case BT_STOP_NONE: return "none";
    case BT_STOP_DEADLINE: return "deadline";
    case BT_STOP_SIGTERM: return "SIGTERM";
    case BT_STOP_SIGINT: return "SIGINT";
    case BT_STOP_SIGUSR1: return "SIGUSR1";
    case BT_STOP_SIGXCPU: return "SIGXCPU";
    }
    return "?";
}

/* -------------------------------------------------------------- watchdog */

struct bt_watchdog {
    bt_watchdog_config c;
    double budget_end;           /* epoch; INFINITY for none */
    pthread_mutex_t mu;          /* guards everything below */
    double ring[BT_WATCHDOG_RING];
    int ring_n, ring_pos;
    double p95;
    double ckpt_s;
    double last_progress;        /* monotonic */
    int steps_seen;
    /* stall thread */
    pthread_t thread;
    int thread_running, thread_stop;
    pthread_cond_t cv;
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bt_percentile95(const double *samples, int n)
{
    if (n <= 0) return 0;
    double tmp[BT_WATCHDOG_RING];
    if (n > BT_WATCHDOG_RING) {
        samples += n - BT_WATCHDOG_RING;
        n = BT_WATCHDOG_RING;
    }
    memcpy(tmp, samples, (size_t)n * sizeof *tmp);
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_double);
    int rank = (int)ceil(0.95 * n); /* nearest-rank, 1-based */
    if (rank < 1) rank = 1;
    return tmp[rank - 1];
}

int bt_watchdog_create(const bt_watchdog_config *c, bt_watchdog **out)
{
    *out = NULL;
    bt_watchdog_config cfg = *c;
    if (cfg.stall_factor <= 0) cfg.stall_factor = 20;
    if (cfg.margin_s < 0) cfg.margin_s = 0;
    double now = bt_now_epoch();
    double end = INFINITY;
    if (cfg.budget.kind == BT_BUDGET_DURATION) {
        if (cfg.process_start <= 0) cfg.process_start = bt_process_start();
        end = cfg.process_start + cfg.budget.seconds;
    } else if (cfg.budget.kind == BT_BUDGET_SESSION) {
        if (cfg.session_start <= 0) {
            int rc = bt_session_start(&cfg.session_start);
            if (rc) return rc;
        }
        end = cfg.session_start + cfg.budget.seconds;
    }
    if (isfinite(end) && end - cfg.margin_s <= now) {
        char b[64], ago[64], m[64];
        bt_budget_format(&cfg.budget, b, sizeof b);
        double start = cfg.budget.kind == BT_BUDGET_SESSION ? cfg.session_start : cfg.process_start;
        bt_format_duration(floor(now - start), ago, sizeof ago);
        bt_format_duration(cfg.margin_s, m, sizeof m);
        return bt_fail(BT_ECONFIG, "budget %s with margin %s leaves no time: the %s started %s ago; "
                                   "raise [runtime] budget or lower margin (for a session budget, "
                                   "BATON_SESSION_START overrides the measured start)",
                       b, m, cfg.budget.kind == BT_BUDGET_SESSION ? "session" : "run", ago);
    }
    bt_watchdog *w = bt_xcalloc(1, sizeof *w);
    w->c = cfg;
    w->budget_end = end;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->last_progress = bt_now_mono();
    *out = w;
    return BT_OK;
}

void bt_watchdog_free(bt_watchdog *w)
{
    if (!w) return;
    if (w->thread_running) {
        pthread_mutex_lock(&w->mu);
        w->thread_stop = 1;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
    }
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

static double stall_limit_locked(const bt_watchdog *w)
{
    double lim = w->c.stall_timeout_s;
    double n = w->c.stall_factor * w->p95;
    return n > lim ? n : lim;
}

static void *stall_main(void *arg)
{
    bt_watchdog *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->thread_stop) {
        double lim = stall_limit_locked(w);
        double idle = bt_now_mono() - w->last_progress;
        if (idle > lim) {
            pthread_mutex_unlock(&w->mu);
            char msg[256], a[64], b[64];
            if (idle < 60) snprintf(a, sizeof a, "%.1fs", idle);
            else bt_format_duration(floor(idle), a, sizeof a);
            if (lim < 60) snprintf(b, sizeof b, "%.1fs", lim);
            else bt_format_duration(ceil(lim), b, sizeof b);
            int n = snprintf(msg, sizeof msg,
                             "baton: error: stalled: no training step finished for %s (limit %s = "
                             "max(stall_timeout, %g x p95 step time)); exiting with %d so a supervisor "
                             "restarts the run from the last checkpoint\n",
                             a, b, w->c.stall_factor, BT_ESTALL);
            if (n > 0) {
                ssize_t wr = write(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
                (void)wr;
            }
            if (w->c.on_stall) w->c.on_stall(w->c.on_stall_ctx, idle);
            _exit(BT_ESTALL);
        }
        /* wake at the earliest possible stall time, at most every second */
        double wait = lim - idle + 0.01;
        if (wait > 1.0) wait = 1.0;
        if (wait < 0.01) wait = 0.01;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double t = ts.tv_sec + ts.tv_nsec * 1e-9 + wait;
        ts.tv_sec = (time_t)t;
        ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int bt_watchdog_start_stall_thread(bt_watchdog *w)
{
    if (w->c.stall_timeout_s <= 0 || w->thread_running) return BT_OK;
    pthread_mutex_lock(&w->mu);
    w->last_progress = bt_now_mono();
    w->thread_stop = 0;
    pthread_mutex_unlock(&w->mu);
    int e = pthread_create(&w->thread, NULL, stall_main, w);
    if (e) return bt_fail(BT_EINTERNAL, "cannot start the stall-detector thread: %s", strerror(e));
    w->thread_running = 1;
    return BT_OK;
}

void bt_watchdog_step_done(bt_watchdog *w, double step_s)
{
    pthread_mutex_lock(&w->mu);
    if (step_s >= 0 && isfinite(step_s)) {
        w->ring[w->ring_pos] = step_s;
        w->ring_pos = (w->ring_pos + 1) % BT_WATCHDOG_RING;
        if (w->ring_n < BT_WATCHDOG_RING) w->ring_n++;
        w->p95 = bt_percentile95(w->ring, w->ring_n);
    }
    w->steps_seen++;
    w->last_progress = bt_now_mono();
    pthread_mutex_unlock(&w->mu);
}

void bt_watchdog_heartbeat(bt_watchdog *w)
{
    pthread_mutex_lock(&w->mu);
    w->last_progress = bt_now_mono();
    pthread_mutex_unlock(&w->mu);
}

void bt_watchdog_checkpoint_done(bt_watchdog *w, double seconds)
{
    pthread_mutex_lock(&w->mu);
    if (seconds > w->ckpt_s && isfinite(seconds)) w->ckpt_s = seconds;
    w->last_progress = bt_now_mono();
    pthread_mutex_unlock(&w->mu);
}

double bt_watchdog_p95(const bt_watchdog *w)
{
    bt_watchdog *m = (bt_watchdog *)w;
    pthread_mutex_lock(&m->mu);
    double p = m->p95;
    pthread_mutex_unlock(&m->mu);
    return p;
}

double bt_watchdog_margin(const bt_watchdog *w)
{
    bt_watchdog *m = (bt_watchdog *)w;
    pthread_mutex_lock(&m->mu);
    double measured = 2.0 * m->ckpt_s + 3.0 * m->p95;
    pthread_mutex_unlock(&m->mu);
    return measured > w->c.margin_s ? measured : w->c.margin_s;
}

double bt_watchdog_budget_end(const bt_watchdog *w) { return w->budget_end; }

double bt_watchdog_deadline(const bt_watchdog *w)
{
    if (!isfinite(w->budget_end)) return INFINITY;
    return w->budget_end - bt_watchdog_margin(w);
}

double bt_watchdog_remaining_at(const bt_watchdog *w, double now) { return bt_watchdog_deadline(w) - now; }

bt_stop_reason bt_watchdog_should_stop_at(const bt_watchdog *w, double now_epoch)
{
    bt_stop_reason s = bt_signal_pending();
    if (s != BT_STOP_NONE) return s;
    if (now_epoch >= bt_watchdog_deadline(w)) return BT_STOP_DEADLINE;
    return BT_STOP_NONE;
}

bt_stop_reason bt_watchdog_should_stop(const bt_watchdog *w)
{
    return bt_watchdog_should_stop_at(w, bt_now_epoch());
}
