# What this build was compiled with (cnn_ext.build_info() reads it), and the CPU check
# that cnn_ext._dispatch asks of the portable build before importing the AVX2 one.
from cnn_ext._kernel_headers cimport (CNN_EXT_CFLAGS, CNN_EXT_COMPILER, CNN_EXT_OPENMP,
                                      cnn_ext_cpu_has_avx2_fma, cnn_ext_simd,
                                      omp_get_max_threads)


def cpu_has_avx2_fma():
    """True when this CPU (and OS) can run the AVX2 + FMA build of the kernels."""
    return bool(cnn_ext_cpu_has_avx2_fma())


OPENMP = bool(CNN_EXT_OPENMP)
CFLAGS = CNN_EXT_CFLAGS.decode()
COMPILER = CNN_EXT_COMPILER.decode()
SIMD = cnn_ext_simd().decode().split()


def max_threads():
    """Threads OpenMP would use by default (1 without OpenMP)."""
    return omp_get_max_threads()
