"""What the commands share: the model a ``--model NAME`` names, loaded, and argparse types.

One home below ``cnn_ext.cli`` and ``cnn_ext.explain`` (and any later command), so that
each command can be read and changed alone.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .network import Network

DEFAULT_MODEL = "MNIST_CNN"
SEED_MAX = 2**32 - 1  # np.random.seed's range


def _model_file(name: str) -> str:
    from .saver import ModelSaver

    return ModelSaver(name).filename


def _network_from_file(filename: str) -> Network:
    """A Network holding the model in ``filename`` (raises FileNotFoundError or ModelFileError)."""
    from .network import Network
    from .saver import ModelFileError, load_params

    params = load_params(filename)
    filters, weights, biases = params["conv_filters"], params["softmax_weights"], params["softmax_biases"]
    nf, (input_len, nodes) = filters.shape[0], weights.shape
    if input_len % nf:
        raise ModelFileError(f"{filename}: softmax weights {weights.shape} do not fit {nf} filters", filename)
    from ._aligned import aligned_float64
    from .conv import Conv3x3
    from .softmax import Softmax

    # The layers' constructors draw random weights from NumPy's global state; the file's
    # replace them, and the caller's random state is left as it was.
    state = np.random.get_state()
    try:
        conv, softmax = Conv3x3(nf), Softmax(input_len, nodes)
    finally:
        np.random.set_state(state)
    conv.filters, softmax.biases = filters, biases
    softmax.weights = aligned_float64(weights)  # where the vector kernels read it fastest
    return Network(conv, None, softmax)


def _load_network(model: str) -> Network:
    """The Network saved as ``model`` (a name as ``--model`` takes), for 28x28 MNIST images,
    or SystemExit with a one-line reason."""
    from .saver import ModelFileError

    filename = _model_file(model)
    try:
        network = _network_from_file(filename)
    except FileNotFoundError:
        raise SystemExit(f"cnn-ext: no model {filename}: train one first with "
                         f"`cnn-ext train --model {model}`") from None
    except (ModelFileError, OSError) as exc:
        raise SystemExit(f"cnn-ext: {exc}") from None
    if not network._fits((28, 28)):
        raise SystemExit(f"cnn-ext: {filename} does not fit 28x28 MNIST images: softmax weights "
                         f"{network.softmax.weights.shape} for {network.conv.num_filters} filters")
    return network


def int_in(minimum: int, maximum: int | None = None, what: str = "an integer") -> Callable[[str], int]:
    """An argparse ``type``: an integer in ``minimum..maximum`` (no upper bound if None),
    refused in argparse's words, e.g. ``expected an integer >= 1, got 0``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if maximum is None and value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what} >= {minimum}, got {value}")
        if maximum is not None and not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"expected {what} in {minimum}..{maximum}, got {value}")
        return value
    return parse



def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


_seed = int_in(0, SEED_MAX, "an integer (np.random.seed's range, 2**32 - 1 at most)")
