/* tests/unit/test_watchdog.c — durations, budgets, session start, margin,
 * deadline, the signal flag, a second SIGINT, the stall detector, status.json
 * (also written by two threads at once: the loop and the stall thread) and
 * progress lines. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "runner/progress.h"
#include "runner/status.h"
#include "runner/watchdog.h"
#include "util/err.h"
#include "util/file.h"

#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void test_durations(void **state)
{
    (void)state;
    static const struct { const char *s; double v; } ok[] = {
        {"45", 45}, {"45s", 45}, {"90m", 5400}, {"1h30m", 5400}, {"1.5h", 5400}, {"2d", 172800},
        {"1h 30m", 5400}, {"30m1h", 5400}, {"0", 0}, {" 10m ", 600}, {"0.5s", 0.5},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        double v = -1;
        assert_int_equal(bt_parse_duration(ok[i].s, &v), 0);
        assert_true(fabs(v - ok[i].v) < 1e-9);
    }
    static const char *bad[] = {"", "m", "1x", "-5m", "1h30", "1h1h", "inf", "nan", "1e400", "10 minutes", "1.2.3s", NULL};
    for (int i = 0; bad[i]; i++) {
        double v;
        if (bt_parse_duration(bad[i], &v) == 0) fail_msg("'%s' parsed", bad[i]);
    }
    char b[64];
    bt_format_duration(5400, b, sizeof b);
    assert_string_equal(b, "1h30m");
    bt_format_duration(90061, b, sizeof b);
    assert_string_equal(b, "1d1h1m1s");
    bt_format_duration(0, b, sizeof b);
    assert_string_equal(b, "0s");
    bt_format_duration(0.25, b, sizeof b);
    assert_string_equal(b, "0.25s");
}

static void test_budgets(void **state)
{
    (void)state;
    bt_budget b;
    char t[64];
    assert_int_equal(bt_budget_parse("none", &b), 0);
    assert_int_equal(b.kind, BT_BUDGET_NONE);
    assert_int_equal(bt_budget_parse("90m", &b), 0);
    assert_int_equal(b.kind, BT_BUDGET_DURATION);
    assert_true(b.seconds == 5400);
    assert_int_equal(bt_budget_parse("session:12h", &b), 0);
    assert_int_equal(b.kind, BT_BUDGET_SESSION);
    assert_true(b.seconds == 43200);
    bt_budget_format(&b, t, sizeof t);
    assert_string_equal(t, "session:12h");
    assert_int_equal(bt_budget_parse("session:", &b), -1);
    assert_int_equal(bt_budget_parse("0", &b), -1); /* a zero budget is never meant */
    assert_int_equal(bt_budget_parse("session 12h", &b), -1);
    assert_int_equal(bt_budget_parse("Session:1h", &b), -1);
}

static void test_session_start(void **state)
{
    (void)state;
    double s;
    setenv("BATON_SESSION_START", "1700000000", 1);
    assert_int_equal(bt_session_start(&s), BT_OK);
    assert_true(s == 1700000000.0);
    setenv("BATON_SESSION_START", "yesterday", 1);
    assert_int_equal(bt_session_start(&s), BT_ECONFIG);
    assert_non_null(strstr(bt_errmsg(), "BATON_SESSION_START='yesterday'"));
    /* issue 15: a start in the future would lengthen the budget */
    char future[32];
    snprintf(future, sizeof future, "%.0f", bt_now_epoch() + 600);
    setenv("BATON_SESSION_START", future, 1);
    assert_int_equal(bt_session_start(&s), BT_ECONFIG);
    assert_non_null(strstr(bt_errmsg(), "in the future"));
    snprintf(future, sizeof future, "%.0f", bt_now_epoch());
    setenv("BATON_SESSION_START", future, 1); /* now (rounded): fine */
    assert_int_equal(bt_session_start(&s), BT_OK);
    unsetenv("BATON_SESSION_START");
    /* from /proc: PID 1 started before now and after 2000-01-01 */
    if (bt_session_start(&s) == BT_OK) {
        assert_true(s <= bt_now_epoch() + 1);
        assert_true(s > 946684800.0);
    }
}

/* A plain duration budget counts from the process start, not from the
 * watchdog's creation: a child that spends 0.3 s before creating its watchdog
 * has 0.3 s less of its budget (and none of a 0.2 s budget). */
static void test_process_start(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct timespec nap = {0, 300 * 1000000L};
        nanosleep(&nap, NULL);
        double now = bt_now_epoch(), age = now - bt_process_start();
        if (!(age >= 0.28 && age < 5)) _exit(1);
        bt_watchdog *w;
        bt_watchdog_config c = {.budget = {BT_BUDGET_DURATION, 10}};
        if (bt_watchdog_create(&c, &w) != BT_OK) _exit(2);
        double left = bt_watchdog_deadline(w) - now; /* 10 s budget, no margin */
        if (!(left > 5 && left <= 9.72)) _exit(3);
        bt_watchdog_free(w);
        bt_watchdog_config spent = {.budget = {BT_BUDGET_DURATION, 0.2}};
        if (bt_watchdog_create(&spent, &w) != BT_ECONFIG || !strstr(bt_errmsg(), "leaves no time")) _exit(4);
        _exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_margin_and_deadline(void **state)
{
    (void)state;
    bt_watchdog *w;
    double now = bt_now_epoch();
    bt_watchdog_config c = {.budget = {BT_BUDGET_SESSION, 3600}, .margin_s = 60, .session_start = now - 600};
    assert_int_equal(bt_watchdog_create(&c, &w), BT_OK);
    assert_true(bt_watchdog_p95(w) == 0);
    assert_true(bt_watchdog_margin(w) == 60); /* nothing measured yet: the configured minimum */
    assert_true(fabs(bt_watchdog_deadline(w) - (now - 600 + 3600 - 60)) < 1e-6);
    /* 64 steps, 4 of them slow: nearest rank ceil(0.95 x 64) = 61 -> 10 s */
    for (int i = 0; i < 64; i++) bt_watchdog_step_done(w, i < 60 ? 1.0 : 10.0);
    assert_true(bt_watchdog_p95(w) == 10.0);
    for (int i = 0; i < 64; i++) bt_watchdog_step_done(w, i < 61 ? 1.0 : 10.0); /* 3 slow of 64: rank 61 -> 1 s */
    assert_true(bt_watchdog_p95(w) == 1.0);
    bt_watchdog_checkpoint_done(w, 40);
    bt_watchdog_checkpoint_done(w, 20); /* the largest is kept */
    assert_true(bt_watchdog_margin(w) == 2 * 40 + 3 * 1.0);
    double dl = bt_watchdog_deadline(w);
    assert_int_equal(bt_watchdog_should_stop_at(w, dl - 1), BT_STOP_NONE);
    assert_int_equal(bt_watchdog_should_stop_at(w, dl), BT_STOP_DEADLINE);
    bt_watchdog_free(w);

    /* a budget already spent is refused at creation */
    bt_watchdog_config late = {.budget = {BT_BUDGET_SESSION, 3600}, .margin_s = 120, .session_start = now - 3550};
    assert_int_equal(bt_watchdog_create(&late, &w), BT_ECONFIG);
    assert_non_null(strstr(bt_errmsg(), "leaves no time"));
    /* none: never a deadline */
    bt_watchdog_config none = {.budget = {BT_BUDGET_NONE, 0}};
    assert_int_equal(bt_watchdog_create(&none, &w), BT_OK);
    assert_true(isinf(bt_watchdog_deadline(w)));
    assert_int_equal(bt_watchdog_should_stop_at(w, now + 1e9), BT_STOP_NONE);
    bt_watchdog_free(w);
    double ring[] = {5, 1, 2, 3, 4};
    assert_true(bt_percentile95(ring, 5) == 5);
    assert_true(bt_percentile95(ring, 0) == 0);
}

static void test_signal_flag(void **state)
{
    (void)state;
    bt_watchdog *w;
    bt_watchdog_config c = {.budget = {BT_BUDGET_NONE, 0}};
    assert_int_equal(bt_watchdog_create(&c, &w), BT_OK);
    assert_int_equal(bt_signals_install(), BT_OK);
    assert_int_equal(bt_watchdog_should_stop(w), BT_STOP_NONE);
    raise(SIGUSR1);
    assert_int_equal(bt_watchdog_should_stop(w), BT_STOP_SIGUSR1);
    raise(SIGTERM); /* the first reason is kept */
    assert_int_equal(bt_watchdog_should_stop(w), BT_STOP_SIGUSR1);
    assert_string_equal(bt_stop_reason_name(BT_STOP_SIGUSR1), "SIGUSR1");
    bt_signal_clear();
    raise(SIGXCPU);
    assert_int_equal(bt_signal_pending(), BT_STOP_SIGXCPU);
    bt_signals_restore();
    assert_int_equal(bt_signal_pending(), BT_STOP_NONE);
    bt_watchdog_free(w);

    /* one SIGINT sets the flag; a second exits 130 at once */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        bt_signals_install();
        raise(SIGINT);
        if (bt_signal_pending() != BT_STOP_SIGINT) _exit(1);
        raise(SIGINT);
        _exit(2); /* not reached */
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), BT_EXIT_INTERRUPTED);
}

static int stalled_flag_fd = -1;
static void on_stall(void *ctx, double idle)
{
    (void)ctx;
    (void)idle;
    if (write(stalled_flag_fd, "S", 1) != 1) _exit(99);
}

static void test_stall_detector(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        stalled_flag_fd = fds[1];
        bt_watchdog *w;
        bt_watchdog_config c = {.budget = {BT_BUDGET_NONE, 0}, .stall_timeout_s = 1.0, .on_stall = on_stall};
        if (bt_watchdog_create(&c, &w) || bt_watchdog_start_stall_thread(w)) _exit(1);
        /* steps keep it alive for a while ... */
        for (int i = 0; i < 8; i++) {
            usleep(100000);
            bt_watchdog_step_done(w, 0.01);
        }
        /* ... then nothing finishes */
        sleep(8);
        _exit(0); /* not reached */
    }
    close(fds[1]);
    double t0 = bt_now_mono();
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    double took = bt_now_mono() - t0;
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), BT_ESTALL);
    assert_true(took > 1.5 && took < 6.0); /* not during the 0.8 s of steps (+1 s limit), well before the 8 s sleep */
    char ch = 0;
    assert_int_equal(read(fds[0], &ch, 1), 1);
    assert_int_equal(ch, 'S');
    close(fds[0]);

    /* freeing a watchdog stops its thread cleanly */
    bt_watchdog *w;
    bt_watchdog_config c = {.budget = {BT_BUDGET_NONE, 0}, .stall_timeout_s = 30};
    assert_int_equal(bt_watchdog_create(&c, &w), BT_OK);
    assert_int_equal(bt_watchdog_start_stall_thread(w), BT_OK);
    bt_watchdog_heartbeat(w);
    bt_watchdog_free(w);
}

static void test_status(void **state)
{
    (void)state;
    char dir[] = "/tmp/baton-test-status-XXXXXX";
    assert_non_null(mkdtemp(dir));
    bt_status s = bt_status_init("sst2", dir);
    s.step = 10;
    s.total_steps = 100;
    s.loss = 0.5;
    s.latest_archive = "ckpt-000000010.tar";
    bt_status_writer w;
    bt_status_writer_init(&w, dir, 3600);
    assert_int_equal(bt_status_update(&w, &s, 0), BT_OK);
    s.step = 11;
    assert_int_equal(bt_status_update(&w, &s, 0), BT_OK); /* rate-limited: not written */
    json_t *o = json_load_file(w.path, 0, NULL);
    assert_non_null(o);
    assert_int_equal(json_integer_value(json_object_get(o, "step")), 10);
    assert_true(json_is_null(json_object_get(o, "eta_job_s")));
    assert_true(json_is_false(json_object_get(o, "complete")));
    assert_int_equal(json_integer_value(json_object_get(o, "pid")), getpid());
    json_decref(o);
    s.state = "complete";
    assert_int_equal(bt_status_update(&w, &s, 1), BT_OK); /* forced */
    o = json_load_file(w.path, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(o, "step")), 11);
    assert_true(json_is_true(json_object_get(o, "complete")));
    assert_string_equal(json_string_value(json_object_get(o, "state")), "complete");
    const char *keys[] = {"job", "state", "step", "total_steps", "epoch", "loss", "examples_per_s", "eta_segment_s",
                          "eta_job_s", "last_commit", "latest_archive", "best_metric", "updated_at", "pid",
                          "output_dir", "complete", NULL};
    for (int i = 0; keys[i]; i++) assert_non_null(json_object_get(o, keys[i]));
    json_decref(o);
    bt_status_writer_free(&w);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* The loop's thread keeps updating status.json while the stall thread marks
 * it "stalled" (issue 16: both write under the writer's lock; under
 * ThreadSanitizer, `make test-tsan`, an unlocked access is a reported race). */
typedef struct {
    bt_status_writer *w;
    const char *dir;
    atomic_int done, stop; /* updates made; set: stop updating */
    int rc;
} status_hammer;

static void *hammer_status(void *arg)
{
    status_hammer *h = arg;
    char archive[64];
    bt_status s = bt_status_init("sst2", h->dir);
    for (int i = 0; !atomic_load(&h->stop) && !h->rc; i++) {
        s.step = i;
        s.loss = 1.0 / (i + 1);
        snprintf(archive, sizeof archive, "ckpt-%09d.tar", i); /* the caller's buffer changes under the writer */
        s.latest_archive = archive;
        h->rc = bt_status_update(h->w, &s, i % 2);
        atomic_fetch_add(&h->done, 1);
    }
    return NULL;
}

static json_t *status_doc(const bt_status_writer *w)
{
    json_t *o = json_load_file(w->path, 0, NULL);
    assert_non_null(o);
    return o;
}

static void test_status_stalled(void **state)
{
    (void)state;
    char dir[] = "/tmp/baton-test-stalled-XXXXXX";
    assert_non_null(mkdtemp(dir));
    bt_status_writer w;

    /* before any update: a document that says stalled, with what is known */
    bt_status_writer_init(&w, dir, 0);
    assert_int_equal(bt_status_mark_stalled(&w), BT_OK);
    json_t *o = status_doc(&w);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "stalled");
    assert_string_equal(json_string_value(json_object_get(o, "output_dir")), dir);
    assert_true(json_is_null(json_object_get(o, "job")));
    json_decref(o);
    bt_status_writer_free(&w);

    /* during updates from another thread */
    bt_status_writer_init(&w, dir, 0);
    status_hammer h = {&w, dir, 0, 0, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, hammer_status, &h), 0);
    while (atomic_load(&h.done) < 50) usleep(1000);
    assert_int_equal(bt_status_mark_stalled(&w), BT_OK); /* while the updates go on, */
    int after = atomic_load(&h.done);
    while (atomic_load(&h.done) < after + 50) usleep(1000); /* and go on after it */
    atomic_store(&h.stop, 1);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(h.rc, BT_OK);
    o = status_doc(&w);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "stalled"); /* no update after it */
    assert_false(json_is_true(json_object_get(o, "complete")));
    assert_string_equal(json_string_value(json_object_get(o, "job")), "sst2");
    char want[64];
    snprintf(want, sizeof want, "ckpt-%09d.tar", (int)json_integer_value(json_object_get(o, "step")));
    assert_string_equal(json_string_value(json_object_get(o, "latest_archive")), want); /* one update's copy */
    json_decref(o);
    bt_status s = bt_status_init("sst2", dir);
    s.state = "complete";
    assert_int_equal(bt_status_update(&w, &s, 1), BT_OK); /* dropped: the process is exiting */
    o = status_doc(&w);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "stalled");
    json_decref(o);
    bt_status_writer_free(&w);

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* A loop stuck inside a status write (here: blocked opening a FIFO that
 * stands where status.json.partial goes) holds the lock; the stall thread
 * gives up on status.json after BT_STATUS_STALL_WAIT_S instead of never
 * exiting. */
static void *stuck_update(void *arg)
{
    status_hammer *h = arg;
    bt_status s = bt_status_init("sst2", h->dir);
    h->rc = bt_status_update(h->w, &s, 1);
    return NULL;
}

static void test_status_stalled_busy(void **state)
{
    (void)state;
    alarm(30); /* a writer without the lock would block on the FIFO too: fail, do not hang */
    char dir[] = "/tmp/baton-test-stuck-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char fifo[128];
    snprintf(fifo, sizeof fifo, "%s/status.json.partial", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    bt_status_writer w;
    bt_status_writer_init(&w, dir, 0);
    status_hammer h = {&w, dir, 0, 0, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stuck_update, &h), 0);
    usleep(200000); /* the update is blocked in open(), holding the lock */
    double t0 = bt_now_mono();
    assert_int_equal(bt_status_mark_stalled(&w), BT_EIO);
    double took = bt_now_mono() - t0;
    assert_true(took > BT_STATUS_STALL_WAIT_S - 0.5 && took < BT_STATUS_STALL_WAIT_S + 3);
    assert_non_null(strstr(bt_errmsg(), "not marked stalled"));
    /* release the writer: it fails (a FIFO cannot be fsynced) and returns */
    int fd = open(fifo, O_RDONLY);
    assert_true(fd >= 0);
    char buf[4096];
    while (read(fd, buf, sizeof buf) > 0) {}
    close(fd);
    assert_int_equal(pthread_join(t, NULL), 0);
    alarm(0);
    bt_status_writer_free(&w);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_progress(void **state)
{
    (void)state;
    bt_progress_info i = {.step = 120, .total_steps = 900, .epoch = 0.4, .epochs = 3, .loss = 0.41234,
                          .examples_per_s = 85.23, .eta_job_s = 3700, .eta_segment_s = 300};
    char b[256];
    bt_progress_format(&i, 0, b, sizeof b);
    assert_string_equal(b, "step 120/900  epoch 0.40/3  loss 0.4123  85.2 ex/s  ETA 1h1m (segment ends in 5m)");
    bt_progress_format(&i, 10, b, sizeof b);
    assert_memory_equal(b, "[#.........] step", 17);
    i.loss = NAN;
    i.eta_job_s = i.eta_segment_s = NAN;
    bt_progress_format(&i, 0, b, sizeof b);
    assert_string_equal(b, "step 120/900  epoch 0.40/3  85.2 ex/s");
    /* fp16: the loss scale and the steps skipped for overflow (issue 17) */
    i.loss = 0.5;
    i.loss_scale = 32768;
    i.skipped = 3;
    bt_progress_format(&i, 0, b, sizeof b);
    assert_string_equal(b, "step 120/900  epoch 0.40/3  loss 0.5000  fp16 scale 32768, 3 skipped  85.2 ex/s");
    i.loss = NAN;
    i.loss_scale = 0;
    /* plain mode: rate-limited to every_s */
    FILE *f = tmpfile();
    bt_progress *p = bt_progress_create(BT_PROGRESS_AUTO, 10, f);
    assert_int_equal(bt_progress_resolved_mode(p), BT_PROGRESS_PLAIN); /* a file is not a terminal */
    bt_progress_update_at(p, &i, 0, 100.0);
    bt_progress_update_at(p, &i, 0, 105.0); /* skipped */
    bt_progress_update_at(p, &i, 0, 111.0);
    bt_progress_update_at(p, &i, 1, 111.5); /* forced */
    bt_progress_free(p);
    p = bt_progress_create(BT_PROGRESS_NONE, 10, f);
    bt_progress_update_at(p, &i, 1, 200.0);
    bt_progress_free(p);
    rewind(f);
    int lines = 0;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        assert_memory_equal(line, "baton: step 120/900", 19);
        lines++;
    }
    assert_int_equal(lines, 3);
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations),   cmocka_unit_test(test_budgets),
        cmocka_unit_test(test_session_start), cmocka_unit_test(test_process_start),
        cmocka_unit_test(test_margin_and_deadline),
        cmocka_unit_test(test_signal_flag), cmocka_unit_test(test_stall_detector),
        cmocka_unit_test(test_status_stalled), cmocka_unit_test(test_status_stalled_busy),
        cmocka_unit_test(test_status),      cmocka_unit_test(test_progress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
