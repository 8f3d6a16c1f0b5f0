"""Softmax weights are allocated on 64-byte boundaries (cnn_ext._aligned), wherever a layer
gets them: its constructor, either tutorial's class, ModelSaver.load and a model file."""
import numpy as np
import pytest

import cnn_ext
from cnn_ext._aligned import aligned_float64
from cnn_ext.cnn_from_scratch import Softmax as OriginalSoftmax


def _aligned(a):
    return a.ctypes.data % 64 == 0 and a.flags.c_contiguous and a.dtype == np.float64


def _misaligned(a):
    buffer = np.empty(a.size + 8)
    start = (-buffer.ctypes.data % 64) // 8 + 2  # 16 bytes past a boundary
    view = buffer[start:start + a.size].reshape(a.shape)
    view[...] = a
    return view


@pytest.mark.parametrize("shape", [(1352, 10), (1, 1), (7, 3), (2, 3, 5)])
def test_aligned_copy_has_the_values_shape_and_a_64_byte_start(shape):
    values = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    out = aligned_float64(values)
    assert _aligned(out) and out.shape == shape
    assert np.array_equal(out, values.astype(np.float64))
    out[...] = 1  # a copy: the source is untouched
    assert not np.any(values == 1)


def test_layers_allocate_aligned_weights_with_the_tutorials_numbers():
    for seed in range(6):  # NumPy's own placements vary; the layers' never do
        np.random.seed(seed)
        layer = cnn_ext.Softmax(1352, 10)
        np.random.seed(seed)
        assert _aligned(layer.weights)
        assert np.array_equal(layer.weights, np.random.randn(1352, 10) / 10)
        np.random.seed(seed)
        original = OriginalSoftmax(1352, 10)
        np.random.seed(seed)
        assert _aligned(original.weights)
        assert np.array_equal(original.weights, np.random.randn(1352, 10) / 1352)
        assert _aligned(cnn_ext.Network(seed=seed).softmax.weights)


def test_loaded_weights_are_aligned(tmp_path):
    net = cnn_ext.Network(seed=1)
    path = tmp_path / "model.npz"
    saver = cnn_ext.ModelSaver(str(path))
    saver.save(net.conv, net.pool, net.softmax)
    conv, pool, softmax = cnn_ext.Conv3x3(8), cnn_ext.MaxPool2(), cnn_ext.Softmax(1352, 10)
    softmax.weights = _misaligned(softmax.weights)  # as a user may leave it: load replaces it
    assert not _aligned(softmax.weights)
    assert saver.load(conv, pool, softmax)
    assert _aligned(softmax.weights) and np.array_equal(softmax.weights, net.softmax.weights)
    from cnn_ext._models import _network_from_file
    loaded = _network_from_file(str(path))
    assert _aligned(loaded.softmax.weights)
    assert np.array_equal(loaded.softmax.weights, net.softmax.weights)
