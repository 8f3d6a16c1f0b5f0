"""Benchmark suite: cnn_ext against the tutorial's loops, vectorised NumPy, PyTorch and TensorFlow.

Run it as ``python -m cnn_ext.bench`` (or ``python bench/run.py`` from a checkout):

    python -m cnn_ext.bench                  # default: 7 rounds, frameworks if installed
    python -m cnn_ext.bench --quick          # a few seconds of timing, for CI and tests
    python -m cnn_ext.bench --json out.json --plot out.png --full-epoch
    python -m cnn_ext.bench --scaling scaling.png   # + threads and training-set size

Everything runs side by side in one process, on the embedded MNIST, from the same
initial weights (``np.random.seed(seed)`` then the tutorial's draws):

* ``layer``: forward and backward of Conv3x3, MaxPool2 and Softmax, per image, for the
  tutorial's loops (:mod:`cnn_ext_reference`), the vectorised NumPy layers
  (:mod:`cnn_ext_reference.vectorized`) and cnn_ext's layer classes;
* ``train step``: forward + backward + SGD update of all three layers for one image: the
  tutorial's ``train`` function over each of those three sets of layers (six Python calls
  per image), cnn_ext's fused ``Network.train_step``, and PyTorch / TensorFlow (float64,
  plain SGD, batch 1 = the tutorial's step; batch 32 = one minibatch step on the mean loss,
  timed per image), when installed;
* ``epoch``: ``Network.fit`` over the 60,000 training images (``--full-epoch``, median of 5
  epochs), or over a 10,000-image slice with the time extrapolated to 60,000 (median of 3;
  the row says which);
* ``inference``: class probabilities for the 10,000 test images with
  ``Network.predict_proba(num_threads=1)`` and ``(num_threads=2)``, the vectorised NumPy
  batch forward, the frameworks' batch forward, and the tutorial's per-image loops.

Method: one warm-up pass per implementation, then ``--rounds`` rounds; within each round
every implementation of a case runs once, in an order rotated from round to round, so a
change of machine load hits all of them alike. A row's time is the median over the rounds
of its time per image; its speed-ups are medians of the per-round ratios (the tutorial's
loops, resp. the vectorised NumPy, over the row, in the same round). The tutorial's loops
take tens of milliseconds per image, so they are timed on only a few images per round
(``--reference-images``), which the ``timed`` column shows.

``rel_error`` is ``max |x - x_ref| / max |x_ref|`` over the outputs, returned gradients and
updated parameters, against the tutorial's loops on the same inputs from the same initial
weights (the maximum over the arrays compared). PyTorch and TensorFlow route a tied
max-pool window's gradient to one maximum only, where the tutorial gives it to every tied
position; their training rows are therefore compared on random-noise images whose pool
windows all have a unique maximum (``rel_error``), and the JSON also gives their error on
MNIST images (``rel_error_mnist``), which is the tie rule's doing.

Against the hardware: the float64 multiply-add peak of the core is measured with the
kernels' own probe (``fma_peak``: 12 chains of 4-wide FMAs in the AVX2 build), before and
after the cases; each training, epoch and inference row gets its arithmetic floor (the
tutorial's multiply-adds per image, counted from the shapes, at that peak times the threads)
and its fraction of peak, floor / median (:mod:`cnn_ext.bench.peak`).

Output: a fixed-width table on stdout, a JSON file (``--json``, default ``bench.json``)
and, with matplotlib, a bar chart on a log scale (``--plot``) and the scaling figure
(``--scaling``).

The package: :mod:`~cnn_ext.bench.cases` (what is timed and checked),
:mod:`~cnn_ext.bench.timing` (interleaved rounds, medians, ratios, errors),
:mod:`~cnn_ext.bench.peak` (peak probe and arithmetic floors),
:mod:`~cnn_ext.bench.report` (table, JSON, charts, machine info),
:mod:`~cnn_ext.bench.frameworks` (the PyTorch and TensorFlow twins) and
:mod:`~cnn_ext.bench.runner` (options and the run).
"""
from .cases import (FUSED, LAYERS, LEARN_RATE, NUM_CLASSES, NUM_FILTERS, ORIGINAL, ORIGINAL_REF, epoch_row,
                    epoch_scaling_case, inference_case, inference_scaling_case, layer_cases,
                    layer_params, layer_set, load_frameworks, network_params, train_case,
                    tutorial_forward, tutorial_step, unique_max_images)
from .peak import add_fractions, arithmetic, measure_peak, multiply_adds
from .report import (COLUMNS, format_error, format_fraction, format_ratio, format_time, header,
                     machine_info, numpy_info, plot, plot_scaling, table)
from .runner import SCHEMA, main, parse_args, run
from .timing import NUMPY, REF, Case, measure_layer_cases, rel_error

__all__ = ["Case", "COLUMNS", "FUSED", "LAYERS", "LEARN_RATE", "NUMPY", "NUM_CLASSES", "NUM_FILTERS",
           "ORIGINAL", "ORIGINAL_REF",
           "REF", "SCHEMA", "add_fractions", "arithmetic", "epoch_row", "epoch_scaling_case",
           "format_error", "format_fraction", "format_ratio", "format_time", "header",
           "inference_case", "inference_scaling_case", "layer_cases", "layer_params", "layer_set",
           "load_frameworks", "machine_info", "main", "measure_layer_cases", "measure_peak",
           "multiply_adds", "network_params", "numpy_info", "parse_args", "plot", "plot_scaling",
           "rel_error", "run", "table", "train_case", "tutorial_forward", "tutorial_step",
           "unique_max_images"]
