/* OpenMP when the build has it (-fopenmp, /openmp), else a one-thread stand-in, so that
   the kernels call omp_get_max_threads() either way. */
#ifndef CNN_EXT_OPENMP_H
#define CNN_EXT_OPENMP_H

#ifdef _OPENMP
#include <omp.h>
#define CNN_EXT_OPENMP 1
#else
#define CNN_EXT_OPENMP 0
static inline int omp_get_max_threads(void) { return 1; }
#endif

#endif /* CNN_EXT_OPENMP_H */
