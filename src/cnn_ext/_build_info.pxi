# What this build was compiled with (cnn_ext.build_info() reads it), and the CPU check
# that cnn_ext._dispatch asks of the portable build before importing the AVX2 one.
from cnn_ext._kernel_headers cimport (CNN_EXT_CFLAGS, CNN_EXT_COMPILER, CNN_EXT_OPENMP,
                                      cnn_ext_cpu_has_avx2_fma, cnn_ext_cpu_has_avx512,
                                      cnn_ext_cpu_has_neon,
                                      cnn_ext_simd, omp_get_max_threads)


def cpu_has_avx2_fma():
    """True when this CPU (and OS) can run the AVX2 + FMA build of the kernels."""
    return bool(cnn_ext_cpu_has_avx2_fma())


def cpu_has_avx512():
    """True when this CPU has AVX-512 F, VL and DQ (and AVX2, FMA) and the OS saves the
    opmask and ZMM registers (XCR0 bits 5-7): it can run the AVX-512 build."""
    return bool(cnn_ext_cpu_has_avx512())


def cpu_has_neon():
    """True on an aarch64 CPU, which always has NEON with float64 FMA: it can run the NEON build."""
    return bool(cnn_ext_cpu_has_neon())


OPENMP = bool(CNN_EXT_OPENMP)
CFLAGS = CNN_EXT_CFLAGS.decode()
COMPILER = CNN_EXT_COMPILER.decode()
SIMD = cnn_ext_simd().decode().split()


def max_threads():
    """Threads OpenMP would use by default (1 without OpenMP)."""
    return omp_get_max_threads()
