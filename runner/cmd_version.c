/* runner/cmd_version.c — `baton version`: version, build flags, backends. */
#include "runner/commands.h"
#include "kernels/backend.h"

#include <stdio.h>

#ifndef BATON_VERSION
#define BATON_VERSION "0.0.0-dev"
#endif
#ifndef BATON_CFLAGS
#define BATON_CFLAGS "?"
#endif

int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("baton %s\n", BATON_VERSION);
    printf("build: %s %s, cflags: %s\n", __DATE__, __TIME__, BATON_CFLAGS);
    printf("backends:\n");
    bt_backends_describe(stdout);
    return 0;
}
