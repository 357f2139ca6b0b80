/* runner/lock.h — one run per output directory.
 *
 * Owns: the advisory lock <output_dir>/.baton.lock (flock LOCK_EX|LOCK_NB),
 * whose content is the holder's pid. The kernel drops the lock when the
 * holder exits, however it exits (SIGKILL included), so a stale lock file
 * never blocks the next run. The file is never unlinked (unlinking a flock'd
 * file lets two processes each lock a different inode).
 * The holder checks (bt_lock_check) that the directory it locked is still the
 * one at output_dir, and stops when it is not.
 * Must not: wait for the lock (a second run exits at once, naming the holder),
 * or recreate a locked directory that disappeared.
 */
#ifndef BATON_RUNNER_LOCK_H
#define BATON_RUNNER_LOCK_H

/* Exit code when another run holds the output directory (EX_UNAVAILABLE).
 * Deliberately not 75: a supervisor that re-runs on 75 would spin against the
 * live holder. */
#define BT_ELOCKED 69

#define BT_LOCK_FILE ".baton.lock"

typedef struct {
    int fd;      /* -1 when not held */
    char *path;  /* <output_dir>/.baton.lock */
    char *dir;   /* output_dir as given */
    unsigned long long dir_dev, dir_ino; /* the directory the lock was taken in */
    int open_errno;  /* after a failure: errno of creating the directory or lock file (0: other) */
} bt_lock;

/* Creates output_dir if needed, then takes the lock. BT_ELOCKED when another
 * process holds it ("<dir> is in use by another baton run (pid N) ..."),
 * BT_EIO when the directory or file cannot be created. *l is valid (fd -1)
 * on failure. */
int bt_lock_acquire(const char *output_dir, bt_lock *l);
/* The lock is tied to the directory it was taken in (device and inode of
 * the directory and of the lock file): 0 while output_dir is still that
 * directory holding that lock file; BT_EIO after bt_fail() when it was
 * deleted, renamed away or replaced (a second run could then lock a new
 * directory of the same name and both would write there), so the holder
 * stops instead of recreating it. */
int bt_lock_check(const bt_lock *l);
/* Releases (closes) the lock; safe on an unheld lock. */
void bt_lock_release(bt_lock *l);
/* The pid recorded in <output_dir>/.baton.lock, or 0 when none/unreadable. */
long bt_lock_holder_pid(const char *output_dir);
/* Whether a process holds the lock now, without taking it (read-only: the
 * kernel's /proc/locks): its pid, 0 when none does (or there is no lock
 * file), -1 when that cannot be told (/proc/locks unreadable). */
long bt_lock_active_holder(const char *output_dir);

#endif
