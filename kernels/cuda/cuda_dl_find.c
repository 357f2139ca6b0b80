/* kernels/cuda/cuda_dl_find.c — the search for run-time CUDA libraries (see cuda_dl_find.h). */
#include "kernels/cuda/cuda_dl_find.h"

#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

/* Every <lib>.so.<major> under the directories matching pattern. */
static int try_glob(const char *pattern, const char *lib, const char *major, int (*try_lib)(const char *))
{
    char pat[PATH_MAX];
    snprintf(pat, sizeof pat, "%s/%s.so.%s", pattern, lib, major);
    glob_t g;
    int found = -1;
    if (glob(pat, 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc && found; i++) found = try_lib(g.gl_pathv[i]);
        globfree(&g);
    }
    return found;
}

int bt_cuda_dl_find(const char *pkg, const char *lib, const char *const *majors, int n_majors,
                    int (*try_lib)(const char *path))
{
    const char *env = getenv("BATON_CUDA_LIBS");
    const char *home = getenv("HOME");
    static const char *const roots[] = {
        "/usr/local/lib/python3*/dist-packages", "/usr/local/lib/python3*/site-packages",
        "/usr/lib/python3*/dist-packages",       "/opt/conda/lib/python3*/site-packages",
    };
    char dirs[5][PATH_MAX];
    int nd = 0;
    for (; nd < 4; nd++) snprintf(dirs[nd], sizeof dirs[nd], "%s/nvidia/%s/lib", roots[nd], pkg);
    snprintf(dirs[nd++], sizeof dirs[0], "%s/.local/lib/python3*/site-packages/nvidia/%s/lib", home ? home : "/root",
             pkg);
    for (int m = 0; m < n_majors; m++)
        if (env && *env && try_glob(env, lib, majors[m], try_lib) == 0) return 0;
    for (int m = 0; m < n_majors; m++)
        for (int d = 0; d < nd; d++)
            if (try_glob(dirs[d], lib, majors[m], try_lib) == 0) return 0;
    for (int m = 0; m < n_majors; m++) {
        char so[128];
        snprintf(so, sizeof so, "%s.so.%s", lib, majors[m]);
        if (try_lib(so) == 0) return 0;
    }
    return -1;
}
