# The body shared by _kernels.pyx and the vector builds' .pyx (see _kernels.pyx for the layout
# and the rule for the array boundary).
from cython.parallel cimport prange, threadid
from libc.math cimport exp, fabs, log, INFINITY
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memset

cimport cython
cimport numpy as cnp
import numpy as _np

cnp.import_array()

include "_build_info.pxi"
include "_arrays.pxi"
include "_sgd.pxi"
include "_conv.pxi"
include "_maxpool.pxi"
include "_softmax.pxi"
include "_network.pxi"
