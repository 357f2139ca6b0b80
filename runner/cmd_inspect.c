/* runner/cmd_inspect.c — placeholder until its issue lands; reports that plainly. */
#include "runner/commands.h"
#include "util/err.h"

int cmd_inspect(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return bt_report_error(bt_fail(BT_EINTERNAL, "'%s' is not built yet in this version", argv[0]));
}
