"""``python -m cnn_ext.bench``: the benchmark suite (see ``--help``)."""
import sys

from .runner import main

sys.exit(main())
