/* engine/schedule.h — learning-rate schedules as pure functions of the step.
 *
 * Owns: the multiplier applied to every parameter group's base learning rate,
 * with the semantics of Hugging Face's get_linear_schedule_with_warmup,
 * get_cosine_schedule_with_warmup (num_cycles 0.5) and
 * get_constant_schedule_with_warmup under torch.optim.lr_scheduler.LambdaLR.
 * Must not: keep state (resume needs only the step).
 *
 * `step` is the number of optimizer steps already taken (LambdaLR's
 * last_epoch): optimizer step t (1-based) uses factor(t - 1), so with warmup
 * the first update runs at lr 0, exactly as HF Trainer does.
 */
#ifndef BATON_ENGINE_SCHEDULE_H
#define BATON_ENGINE_SCHEDULE_H

#include <stdint.h>

typedef enum { BT_SCHED_LINEAR = 0, BT_SCHED_COSINE = 1, BT_SCHED_CONSTANT = 2 } bt_sched_kind;

/* Multiplier in [0, 1] for scheduler step `step`. */
double bt_schedule_factor(bt_sched_kind kind, int64_t step, int64_t warmup_steps, int64_t total_steps);

/* "linear" / "cosine" / "constant" -> kind; returns 0, or -1 if unknown. */
int bt_schedule_parse(const char *name, bt_sched_kind *out);
const char *bt_schedule_name(bt_sched_kind kind);

#endif
