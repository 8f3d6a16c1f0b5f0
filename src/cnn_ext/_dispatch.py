"""Pick the compiled kernels for this CPU, once, at import time.

``kernels`` is the widest build this installation has and this CPU and OS can run:
on x86-64 ``_kernels_avx512`` (AVX-512 F, VL, DQ with the OS saving the ZMM state), else
``_kernels_avx2`` (AVX2 and FMA); on arm64 ``_kernels_neon``; else ``_kernels``, the
portable build. The avx512, avx2 and neon builds give the same numbers bit for bit (the
"fma" family); the portable build gives the tutorial's sums. ``CNN_EXT_KERNELS=avx512``,
``avx2``, ``neon`` or ``baseline`` forces a choice, e.g. to compare them; asking for a
build this CPU cannot run, or that this installation lacks, is an ImportError rather
than a crash.
"""
from __future__ import annotations

import importlib
import os

from . import _kernels as baseline

# The builds by name, widest first: (module, can this CPU and OS run it?, what it needs)
BUILDS = {
    "avx512": ("_kernels_avx512", baseline.cpu_has_avx512, "AVX-512 F, VL and DQ with OS support"),
    "avx2": ("_kernels_avx2", baseline.cpu_has_avx2_fma, "AVX2 and FMA"),
    "neon": ("_kernels_neon", baseline.cpu_has_neon, "NEON (an arm64 CPU)"),
}
CHOICES = ("auto", *BUILDS, "baseline")

_choice = os.environ.get("CNN_EXT_KERNELS", "auto").strip().lower() or "auto"
if _choice not in CHOICES:
    raise ImportError(f"CNN_EXT_KERNELS must be one of {', '.join(CHOICES)}, got {_choice!r}")

kernels = baseline
for _name, (_module, _cpu_has, _needs) in BUILDS.items():
    if _choice not in ("auto", _name):
        continue
    if not _cpu_has():
        if _choice == _name:
            raise ImportError(f"CNN_EXT_KERNELS={_name}, but this CPU (or OS) lacks {_needs}")
        continue
    try:
        # The same API: the variants' stubs re-export _kernels.pyi.
        kernels = importlib.import_module(f".{_module}", __package__)
        break
    except ImportError as e:  # an installation without this variant (another ISA, MSVC, old compiler)
        if _choice == _name:
            raise ImportError(f"CNN_EXT_KERNELS={_name}, but this installation has no {_module} "
                              f"build ({e})") from e

NAME = kernels.__name__.rsplit(".", 1)[1]

# The numeric family: the avx512, avx2 and neon builds run each output's multiply-adds as
# the same chains of FMAs and agree bit for bit (tests/data/fma_fingerprints.json); the
# portable build multiplies and adds separately, as the tutorial does.
FAMILIES = {"_kernels_avx512": "fma", "_kernels_avx2": "fma", "_kernels_neon": "fma",
            "_kernels": "tutorial"}
FAMILY = FAMILIES[NAME]

__all__ = ["kernels", "baseline", "NAME", "FAMILY", "FAMILIES", "CHOICES", "BUILDS"]
