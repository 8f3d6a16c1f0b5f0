"""Run the cnn_ext benchmark suite: ``python bench/run.py [options]`` (see ``--help``).

The same as ``python -m cnn_ext.bench``; it uses the installed cnn_ext (or, from a
checkout whose kernels are built in place, the source tree: set PYTHONPATH=src:python).
"""
import sys

from cnn_ext.bench import main

if __name__ == "__main__":
    sys.exit(main())
