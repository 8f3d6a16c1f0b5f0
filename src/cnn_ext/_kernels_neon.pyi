from ._kernels import *  # the NEON build (arm64) has the portable build's API
