"""Shared fixtures. The suite runs against the *installed* cnn_ext, never the source tree."""
import os
import select
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_mnist_dir():
    """The project's copy of the raw MNIST files (``../shared/data/mnist`` beside the checkout).

    ``CNN_EXT_SHARED_MNIST`` overrides the location. Users do not have this folder; in the
    project's CI (``.ci/run`` sets ``CNN_EXT_CI=1``) it must exist, so tests that need it
    never skip there. Other CI services (e.g. cibuildwheel's test step) skip, with reason.
    """
    env = os.environ.get("CNN_EXT_SHARED_MNIST")
    path = Path(env) if env else REPO.parent / "shared" / "data" / "mnist"
    return path if (path / "train-images-idx3-ubyte.gz").is_file() else None


@pytest.fixture(scope="session")
def shared_mnist_dir():
    path = _shared_mnist_dir()
    if path is None:
        if os.environ.get("CNN_EXT_CI"):
            pytest.fail("the project's CI must provide ../shared/data/mnist (or CNN_EXT_SHARED_MNIST)")
        pytest.skip("these tests compare the built-in MNIST with the original MNIST download (four IDX .gz files), which is not on this computer; to run them, set CNN_EXT_SHARED_MNIST to a folder holding those files")
    return path


@pytest.fixture(scope="session")
def mnist():
    """The embedded MNIST, as ``((x_train, y_train), (x_test, y_test))``."""
    from cnn_ext.datasets import mnist

    return mnist.load_data()


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def _tutorial_training(module, images, labels):
    """The tutorial's per-sample SGD loop over ``module``'s classes, log lines included;
    returns the log, every step's (loss, correct) and the final parameters."""
    np.random.seed(0)
    conv = module.Conv3x3(8)
    pool = module.MaxPool2()
    softmax = module.Softmax(13 * 13 * 8, 10)

    def forward(image, label):
        out = conv.forward((image / 255) - 0.5)
        out = pool.forward(out)
        out = softmax.forward(out)
        return out, -np.log(out[label]), 1 if np.argmax(out) == label else 0

    def train(im, label):
        out, loss, acc = forward(im, label)
        gradient = np.zeros(10)
        gradient[label] = -1 / out[label]
        gradient = softmax.backprop(gradient)
        gradient = pool.backprop(gradient)
        conv.backprop(gradient)
        return loss, acc

    log, steps = [], []
    loss = 0
    num_correct = 0
    for i, (im, label) in enumerate(zip(images, labels)):
        if i % 100 == 99:
            log.append('[Step %d] Past 100 steps :Average Loss %.3f | Accuracy %d%%' % (i + 1, loss / 100, num_correct))
            loss = 0
            num_correct = 0
        l, acc = train(im, label)
        loss += l
        num_correct += acc
        steps.append((l, acc))
    return log, steps, (conv.filters, softmax.weights, softmax.biases)


@pytest.fixture(scope="session")
def tutorial_training():
    """``f(module, images, labels) -> (log, steps, params)``: the tutorial's training loop,
    verbatim, over ``module``'s ``Conv3x3``, ``MaxPool2`` and ``Softmax`` (seed 0)."""
    return _tutorial_training


@pytest.fixture(scope="session")
def virtual_display():
    """A virtual X server (Xvfb) on a free display number, for the whole session: its
    DISPLAY (``:N``). Test modules check first that Xvfb and Tk are there (and fail
    instead of skipping in the project's CI)."""
    read, write = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x900x24",
                               "-nolisten", "tcp"], pass_fds=(write,),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(write)
    try:
        number = b""
        deadline = time.monotonic() + 20
        while not number.endswith(b"\n"):
            ready, _, _ = select.select([read], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(read, 32) if ready else b""
            if not chunk:
                server.kill()
                pytest.fail(f"Xvfb did not start: {server.communicate()[1].decode(errors='replace')}")
            number += chunk
        yield f":{int(number)}"
    finally:
        os.close(read)
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
