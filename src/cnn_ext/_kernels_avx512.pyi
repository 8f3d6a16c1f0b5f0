from ._kernels import *  # the AVX-512 build has the portable build's API
