/* runner/tasks.h — every task baton trains, one line each:
 * X(value, ENUM, ops): `value` is the [job] task value, ENUM names
 * BT_JOB_TASK_<ENUM> (runner/job.h), ops is its bt_task_ops (runner/task.h),
 * defined in runner/task_<name>.c. The order is the order of [job] task's
 * allowed values; a new task goes last (one line: every entry ends in a
 * backslash, the list ends with the comment line).
 * Must not: hold anything but this list.
 */
#ifndef BATON_RUNNER_TASKS_H
#define BATON_RUNNER_TASKS_H

#define BT_TASKS(X)                                            \
    X(classify, CLASSIFY, bt_task_classify)                    \
    X(classify_long, CLASSIFY_LONG, bt_task_classify_long)     \
    X(mlm, MLM, bt_task_mlm)                                   \
    X(token_classify, TOKEN_CLASSIFY, bt_task_token_classify)  \
    X(similarity, SIMILARITY, bt_task_similarity)              \
    /* a new task: one X(...) line above this one */

/* "classify|classify_long|..." for the job schema */
#define BT_TASK_NAME_ITEM_(value, ENUM, ops) "|" #value
#define BT_TASK_NAMES (BT_TASKS(BT_TASK_NAME_ITEM_) + 1)

#endif
