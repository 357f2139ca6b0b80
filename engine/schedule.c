/* engine/schedule.c — LR schedules (see schedule.h). Computed in double, as
 * Python does, so the factors equal HF's to the last bit of a double. */
#include "engine/schedule.h"

#include <math.h>
#include <string.h>

static double warm(int64_t step, int64_t warmup)
{
    return (double)step / (double)(warmup > 1 ? warmup : 1);
}

double bt_schedule_factor(bt_sched_kind kind, int64_t step, int64_t warmup, int64_t total)
{
    if (step < 0) step = 0;
    if (warmup < 0) warmup = 0;
    if (step < warmup) return warm(step, warmup);
    int64_t span = total - warmup > 1 ? total - warmup : 1;
    switch (kind) {
    case BT_SCHED_LINEAR: {
        double f = (double)(total - step) / (double)span;
        return f > 0.0 ? f : 0.0;
    }
    case BT_SCHED_COSINE: {
        double progress = (double)(step - warmup) / (double)span;
        double f = 0.5 * (1.0 + cos(M_PI * 0.5 * 2.0 * progress));
        return f > 0.0 ? f : 0.0;
    }
    case BT_SCHED_CONSTANT:
        return 1.0;
    }
    return 1.0;
}

int bt_schedule_parse(const char *name, bt_sched_kind *out)
{
    if (!strcmp(name, "linear")) *out = BT_SCHED_LINEAR;
    else if (!strcmp(name, "cosine")) *out = BT_SCHED_COSINE;
    else if (!strcmp(name, "constant")) *out = BT_SCHED_CONSTANT;
    else return -1;
    return 0;
}

const char *bt_schedule_name(bt_sched_kind kind)
{
    switch (kind) {
    case BT_SCHED_LINEAR: return "linear";
    case BT_SCHED_COSINE: return "cosine";
    case BT_SCHED_CONSTANT: return "constant";
    }
    return "?";
}
