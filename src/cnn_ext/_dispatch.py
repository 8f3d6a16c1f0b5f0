"""Pick the compiled kernels for this CPU, once, at import time.

``kernels`` is ``_kernels_avx2`` on x86-64 CPUs with AVX2 and FMA (when the wheel has
it), else ``_kernels``, the portable build. ``CNN_EXT_KERNELS=baseline`` (or ``avx2``)
forces a choice, e.g. to compare the two; asking for ``avx2`` where the CPU lacks it is
an error rather than a crash.
"""
from __future__ import annotations

import os

from . import _kernels as baseline

_choice = os.environ.get("CNN_EXT_KERNELS", "auto").strip().lower() or "auto"
if _choice not in ("auto", "baseline", "avx2"):
    raise ImportError(f"CNN_EXT_KERNELS must be auto, baseline or avx2, got {_choice!r}")

kernels = baseline
if _choice in ("auto", "avx2"):
    if baseline.cpu_has_avx2_fma():
        try:
            # The same API: _kernels_avx2.pyi re-exports _kernels.pyi.
            from . import _kernels_avx2 as kernels  # type: ignore[no-redef]
        except ImportError:  # a build without the AVX2 variant (not x86-64, or MSVC)
            if _choice == "avx2":
                raise
    elif _choice == "avx2":
        raise ImportError("CNN_EXT_KERNELS=avx2, but this CPU lacks AVX2/FMA")

NAME = kernels.__name__.rsplit(".", 1)[1]

__all__ = ["kernels", "baseline", "NAME"]
