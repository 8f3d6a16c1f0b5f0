"""``cnn-ext explain``: one image through the network, every intermediate drawn in one PNG.

``cnn-ext explain IMAGE`` converts a drawn digit (PNG/JPEG) the way ``cnn-ext predict``
does; ``cnn-ext explain --index N`` takes MNIST test digit N (and its label). The figure
(:func:`cnn_ext.viz.plot_explain`) reads top to bottom: the input (with one conv output
spelled out as patch times filter), the conv maps, the pooled maps with their tied windows
counted in words, the probabilities and, when a label is known (``--label D`` or an MNIST
index), the gradients of one training step. At most 8 filters are drawn (``--maps``, or a
choice named in the figure), so wide models take the same time as narrow ones. The model is
not changed.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from ._models import DEFAULT_MODEL, _load_network, int_in

MNIST_TEST_SIZE = 10000
_FORMATS = (".png", ".pdf", ".svg")


_index = int_in(0, MNIST_TEST_SIZE - 1, "an MNIST test index")
_digit = int_in(0, 9, "a digit")


def _maps(text: str) -> list[int]:
    """``--maps 0,5,9``: filter indices (checked against the model after loading)."""
    try:
        maps = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected filter indices like 0,5,9, got {text!r}") from None
    if not 1 <= len(maps) <= 8 or len(set(maps)) != len(maps) or min(maps) < 0:
        raise argparse.ArgumentTypeError(f"expected 1 to 8 different filter indices (0 or more), got {text!r}")
    return maps


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Register ``explain`` on the ``cnn-ext`` subcommands; returns its parser."""
    parser = subparsers.add_parser(
        "explain", help="draw one image's trip through the network: feature maps, ties, "
                        "probabilities, gradients (needs matplotlib)",
        description="Trace one image through the network and save the figure, read top to "
                    "bottom: the input, the conv maps, the pooled maps (tied windows counted "
                    "in words), the probabilities and, with a label, one step's gradients. At "
                    "most 8 filters are drawn. The model is not changed.")
    parser.add_argument("image", nargs="?", metavar="IMAGE",
                        help="a PNG/JPEG of a digit (converted as `cnn-ext predict` does)")
    parser.add_argument("--index", type=_index, metavar="N",
                        help=f"use MNIST test digit N (0..{MNIST_TEST_SIZE - 1}) and its label instead of IMAGE")
    parser.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME",
                        help="model to load: NAME.pkl, or NAME if it ends in .npz (default MNIST_CNN)")
    parser.add_argument("--label", type=_digit, metavar="D",
                        help="the true digit, to draw the gradients of a step towards it "
                             "(default: the MNIST label with --index, none for IMAGE)")
    parser.add_argument("--maps", type=_maps, metavar="F,F,...",
                        help="the filters whose maps to draw, at most 8 (default: all of a model "
                             "with up to 8 filters, else the 8 with the largest gradient, or "
                             "the most varied maps without a label)")
    parser.add_argument("--out", metavar="FILE.png",
                        help="where to save the figure (.png, .pdf or .svg; default "
                             "explain_N.png or IMAGE_explain.png in the current folder)")
    parser.set_defaults(func=cmd_explain, explain_parser=parser)
    return parser


def _check_args(args: argparse.Namespace) -> None:
    """argparse-style errors (exit status 2) before any work."""
    parser = args.explain_parser
    if (args.image is None) == (args.index is None):
        parser.error("give either IMAGE or --index N (one of them)")
    if args.out is None:
        if args.index is not None:
            args.out = f"explain_{args.index}.png"
        else:
            args.out = os.path.splitext(os.path.basename(args.image))[0] + "_explain.png"
    if os.path.splitext(args.out)[1].lower() not in _FORMATS:
        parser.error(f"--out must end in {', '.join(_FORMATS)}, got {args.out!r}")
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        parser.error(f"--out: no folder {folder}")
    if os.path.isdir(args.out):
        parser.error(f"--out {args.out!r} is a folder, not a file name")
    if not os.access(folder, os.W_OK):
        parser.error(f"--out: cannot write into {folder}")
    if args.image is not None and not os.path.isfile(args.image):
        parser.error(f"no image file {args.image!r}")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        parser.error('explain needs matplotlib: pip install "cnn_ext[plot]"')


def cmd_explain(args: argparse.Namespace) -> int:
    """``cnn-ext explain``: trace one image, save the figure, print what it shows."""
    _check_args(args)
    network = _load_network(args.model)
    label = args.label
    if args.index is not None:
        from .datasets import mnist

        _, (x_test, y_test) = mnist.load_data()
        image, true = x_test[args.index], int(y_test[args.index])
        label = true if label is None else label
        name = f"MNIST test digit {args.index} (label {true})"
    else:
        from .imaging import digit_problem, load_image, to_mnist

        try:
            image = to_mnist(load_image(args.image))
        except (OSError, ValueError) as exc:
            print(f"cnn-ext explain: {args.image}: {exc}", file=sys.stderr)
            return 1
        problem = digit_problem(image)  # the criterion of `cnn-ext predict`
        if problem is not None:
            print(f"{args.image}: no digit found ({problem})")
            return 1
        name = os.path.basename(args.image)
    nodes = network.softmax.biases.shape[0]
    if label is not None and label >= nodes:
        args.explain_parser.error(f"--label {label}: the model has {nodes} classes")

    nf = network.conv.num_filters
    if args.maps is not None and max(args.maps) >= nf:
        args.explain_parser.error(f"--maps {max(args.maps)}: the model has {nf} filters (0..{nf - 1})")
    from . import viz

    trace = network.trace(image, label)
    import matplotlib

    matplotlib.use("Agg")
    title = f"cnn-ext explain: {name}, model {args.model}"
    fig = viz.plot_explain(trace, title, args.maps, network.conv.filters)
    fig.savefig(args.out, dpi=110)
    probs = trace.probs
    counts = trace.tie_counts().sum(axis=0)
    print(f"{name}: prediction {trace.prediction} ({100 * probs[trace.prediction]:.1f}%)  "
          + " ".join(f"{d}:{p:.3f}" for d, p in enumerate(probs)))
    windows = int(counts.sum())
    print(f"max-pool windows ({windows} over {trace.num_filters} filters): "
          f"{counts[3]} 4-way ties, {counts[2]} 3-way, {counts[1]} 2-way, {counts[0]} single maxima")
    if label is not None:
        # (type: ignore: a labelled trace has its gradients)
        print(f"label {label}: loss {trace.loss:.4f}, "
              f"|d_L_d_filters| {np.abs(trace.d_L_d_filters).max():.3g} max")  # type: ignore[arg-type]
    print(f"maps drawn: {viz.explain_maps(trace, args.maps)[1]}")
    print(f"figure saved to {args.out}")
    return 0
