/* runner/lock.h — one run per output directory.
 *
 * Owns: the advisory lock <output_dir>/.baton.lock (flock LOCK_EX|LOCK_NB),
 * whose content is the holder's pid. The kernel drops the lock when the
 * holder exits, however it exits (SIGKILL included), so a stale lock file
 * never blocks the next run. The file is never unlinked (unlinking a flock'd
 * file lets two processes each lock a different inode).
 * Must not: wait for the lock (a second run exits at once, naming the holder).
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
} bt_lock;

/* Creates output_dir if needed, then takes the lock. BT_ELOCKED when another
 * process holds it ("<dir> is in use by another baton run (pid N) ..."),
 * BT_EIO when the directory or file cannot be created. *l is valid (fd -1)
 * on failure. */
int bt_lock_acquire(const char *output_dir, bt_lock *l);
/* Releases (closes) the lock; safe on an unheld lock. */
void bt_lock_release(bt_lock *l);
/* The pid recorded in <output_dir>/.baton.lock, or 0 when none/unreadable. */
long bt_lock_holder_pid(const char *output_dir);

#endif
