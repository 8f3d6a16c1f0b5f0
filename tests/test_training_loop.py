"""The tutorial's training loop, run with cnn_ext and with the original classes."""
import numpy as np

import cnn_ext
import cnn_ext_reference


def test_1000_steps_match_the_tutorial(mnist, tutorial_training):
    (x_train, y_train), _ = mnist
    images, labels = x_train[:1000], y_train[:1000]
    fast_log, _, fast_params = tutorial_training(cnn_ext, images, labels)
    ref_log, _, ref_params = tutorial_training(cnn_ext_reference, images, labels)
    assert len(fast_log) == 10
    assert fast_log == ref_log
    for fast, slow in zip(fast_params, ref_params):
        assert np.max(np.abs(fast - slow)) / np.max(np.abs(slow)) < 1e-10
    # it learned: the last 100 steps beat chance by far
    assert int(fast_log[-1].rsplit(" ", 1)[1].rstrip("%")) > 50
