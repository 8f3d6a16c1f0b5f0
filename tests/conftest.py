"""Shared fixtures. The suite runs against the *installed* cnn_ext, never the source tree."""
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_mnist_dir():
    """The project's copy of the raw MNIST files (``../shared/data/mnist`` beside the checkout).

    ``CNN_EXT_SHARED_MNIST`` overrides the location. Users do not have this folder; in CI
    (``CI`` set) it must exist, so tests that need it never skip silently there.
    """
    env = os.environ.get("CNN_EXT_SHARED_MNIST")
    path = Path(env) if env else REPO.parent / "shared" / "data" / "mnist"
    return path if (path / "train-images-idx3-ubyte.gz").is_file() else None


@pytest.fixture(scope="session")
def shared_mnist_dir():
    path = _shared_mnist_dir()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("CI must provide ../shared/data/mnist (or CNN_EXT_SHARED_MNIST)")
        pytest.skip("../shared/data/mnist not present (only the project's CI and developers have it)")
    return path


@pytest.fixture(scope="session")
def mnist():
    """The embedded MNIST, as ``((x_train, y_train), (x_test, y_test))``."""
    from cnn_ext.datasets import mnist

    return mnist.load_data()


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
