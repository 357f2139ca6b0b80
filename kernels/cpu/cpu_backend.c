/* kernels/cpu/cpu_backend.c — placeholder until the CPU engine issue lands. */
#include "kernels/backend.h"
#include "util/err.h"

bt_backend *bt_backend_cpu_create(int threads)
{
    (void)threads;
    bt_fail(BT_EINTERNAL, "the CPU backend is not built yet in this version");
    return NULL;
}
