/* kernels/cuda/cuda_dl_find.h — where the GPU backend looks for the CUDA
 * libraries it loads at run time (cuBLASLt: cuda_blas_dl.c; NCCL: nccl_dl.c).
 *
 * Owns: the search order, shared by every such library:
 *   1. $BATON_CUDA_LIBS (a directory): an explicit choice beats discovery;
 *   2. the nvidia/<pkg>/lib directories of Python packages (site-packages
 *      and dist-packages under /usr/local/lib, /usr/lib, /opt/conda/lib,
 *      ~/.local/lib): where Kaggle's and pip's PyTorch keep them;
 *   3. the system library path (dlopen by soname).
 * In each place the majors are tried in the order given.
 * Must not: open a library itself (try_lib does) or know its symbols.
 */
#ifndef BATON_KERNELS_CUDA_DL_FIND_H
#define BATON_KERNELS_CUDA_DL_FIND_H

#ifdef __cplusplus
extern "C" {
#endif

/* Calls try_lib(path) for each candidate "<lib>.so.<major>" in the order
 * above until one returns 0; 0 then, -1 when none did. */
int bt_cuda_dl_find(const char *pkg, const char *lib, const char *const *majors, int n_majors,
                    int (*try_lib)(const char *path));

#ifdef __cplusplus
}
#endif

#endif
