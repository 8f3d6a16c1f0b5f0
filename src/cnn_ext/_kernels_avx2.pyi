from ._kernels import *  # the AVX2 + FMA build has the portable build's API
