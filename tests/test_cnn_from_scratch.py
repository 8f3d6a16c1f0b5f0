"""The English original's API (vzhou842/cnn-from-scratch): its scripts run on cnn_ext with
their import lines changed and nothing else, and give the original's numbers.

The scripts below are the original's ``cnn.py`` (first 1,000 images, 3 epochs, lr 0.005,
a log line every 100 steps, then 1,000 test images) and the blog's Part-1 forward-only
run, rebuilt from their behaviour. Each runs twice, with only the import lines differing:
once on the pure-NumPy reference of the original (:mod:`cnn_ext_reference.cnn_from_scratch`),
once on the compiled layers (:mod:`cnn_ext.cnn_from_scratch`).
"""
import contextlib
import inspect
import io

import numpy as np
import pytest

import cnn_ext
import cnn_ext_reference
from cnn_ext import cnn_from_scratch
from cnn_ext.datasets import mnist as mnist_package
from cnn_ext_reference import cnn_from_scratch as reference

# The original's imports (`import mnist`, `from conv import Conv3x3`, ...), swapped.
COMPILED_IMPORTS = """\
from cnn_ext.datasets import mnist
import numpy as np
from cnn_ext.cnn_from_scratch.conv import Conv3x3
from cnn_ext.cnn_from_scratch.maxpool import MaxPool2
from cnn_ext.cnn_from_scratch.softmax import Softmax
"""
REFERENCE_IMPORTS = COMPILED_IMPORTS.replace("cnn_ext.cnn_from_scratch", "cnn_ext_reference.cnn_from_scratch")

# cnn.py after its imports: the training script of the original.
CNN_PY = """\
train_images = mnist.train_images()[:1000]
train_labels = mnist.train_labels()[:1000]
test_images = mnist.test_images()[:1000]
test_labels = mnist.test_labels()[:1000]

conv = Conv3x3(8)                  # 28x28x1 -> 26x26x8
pool = MaxPool2()                  # 26x26x8 -> 13x13x8
softmax = Softmax(13 * 13 * 8, 10) # 13x13x8 -> 10

def forward(image, label):
  out = conv.forward((image / 255) - 0.5)
  out = pool.forward(out)
  out = softmax.forward(out)
  loss = -np.log(out[label])
  acc = 1 if np.argmax(out) == label else 0
  return out, loss, acc

def train(im, label, lr=.005):
  out, loss, acc = forward(im, label)
  gradient = np.zeros(10)
  gradient[label] = -1 / out[label]
  gradient = softmax.backprop(gradient, lr)
  gradient = pool.backprop(gradient)
  gradient = conv.backprop(gradient, lr)
  return loss, acc

print('MNIST CNN initialized!')

for epoch in range(3):
  print('--- Epoch %d ---' % (epoch + 1))
  permutation = np.random.permutation(len(train_images))
  train_images = train_images[permutation]
  train_labels = train_labels[permutation]
  loss = 0
  num_correct = 0
  for i, (im, label) in enumerate(zip(train_images, train_labels)):
    if i % 100 == 99:
      print(
        '[Step %d] Past 100 steps: Average Loss %.3f | Accuracy: %d%%' %
        (i + 1, loss / 100, num_correct)
      )
      loss = 0
      num_correct = 0
    l, acc = train(im, label)
    loss += l
    num_correct += acc

print('\\n--- Testing the CNN ---')
loss = 0
num_correct = 0
for im, label in zip(test_images, test_labels):
  _, l, acc = forward(im, label)
  loss += l
  num_correct += acc

num_tests = len(test_images)
print('Test Loss:', loss / num_tests)
print('Test Accuracy:', num_correct / num_tests)
"""

# The blog's Part 1: forward passes only, on the first 1,000 test images.
PART1_PY = """\
test_images = mnist.test_images()[:1000]
test_labels = mnist.test_labels()[:1000]

conv = Conv3x3(8)
pool = MaxPool2()
softmax = Softmax(13 * 13 * 8, 10)

def forward(image, label):
  out = conv.forward((image / 255) - 0.5)
  out = pool.forward(out)
  out = softmax.forward(out)
  loss = -np.log(out[label])
  acc = 1 if np.argmax(out) == label else 0
  return out, loss, acc

print('MNIST CNN initialized!')

loss = 0
num_correct = 0
for i, (im, label) in enumerate(zip(test_images, test_labels)):
  _, l, acc = forward(im, label)
  loss += l
  num_correct += acc
  if i % 100 == 99:
    print(
      '[Step %d] Past 100 steps: Average Loss %.3f | Accuracy: %d%%' %
      (i + 1, loss / 100, num_correct)
    )
    loss = 0
    num_correct = 0
"""


def run_script(imports, body, seed=0):
    """Run a learner's script (its imports, then its body) as ``__main__`` would; return
    its printed lines and its global namespace."""
    np.random.seed(seed)
    namespace = {"__name__": "__main__"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(imports + body, "<learner's script>", "exec"), namespace)
    return out.getvalue().splitlines(), namespace


def relative_difference(fast, slow):
    return float(np.max(np.abs(fast - slow)) / np.max(np.abs(slow)))


@pytest.fixture(scope="module")
def cnn_py_runs():
    return run_script(REFERENCE_IMPORTS, CNN_PY), run_script(COMPILED_IMPORTS, CNN_PY)


def test_cnn_py_prints_the_same_lines_as_the_reference(cnn_py_runs):
    (ref_lines, _), (fast_lines, _) = cnn_py_runs
    steps = [line for line in fast_lines if line.startswith("[Step ")]
    assert len(steps) == 30 and fast_lines[0] == "MNIST CNN initialized!"
    # Every line but the test loss (a float printed with all its digits) is identical.
    assert fast_lines[:-2] == ref_lines[:-2]
    assert fast_lines[-1] == ref_lines[-1]  # 'Test Accuracy: 0.xxx'
    fast_loss, ref_loss = (float(lines[-2].split()[-1]) for lines in (fast_lines, ref_lines))
    assert abs(fast_loss - ref_loss) <= 1e-12 * ref_loss
    # It learned: the original reaches about 78% on these 1,000 test images.
    assert float(fast_lines[-1].split()[-1]) > 0.6


def test_cnn_py_weights_match_the_reference_after_3000_steps(cnn_py_runs):
    (_, ref), (_, fast) = cnn_py_runs
    assert isinstance(fast["conv"], cnn_from_scratch.Conv3x3)
    assert isinstance(ref["conv"], reference.Conv3x3)
    assert relative_difference(fast["conv"].filters, ref["conv"].filters) <= 1e-12
    assert relative_difference(fast["softmax"].weights, ref["softmax"].weights) <= 1e-12
    assert relative_difference(fast["softmax"].biases, ref["softmax"].biases) <= 1e-12
    # and training moved them (a swapped-in layer that learned nothing would fail above,
    # unless the reference learned nothing too)
    np.random.seed(0)
    initial = np.random.randn(8, 3, 3) / 9
    assert np.max(np.abs(ref["conv"].filters - initial)) > 1e-3


def test_part1_forward_only_run_is_identical():
    ref_lines, _ = run_script(REFERENCE_IMPORTS, PART1_PY, seed=3)
    fast_lines, _ = run_script(COMPILED_IMPORTS, PART1_PY, seed=3)
    assert len(fast_lines) == 11 and fast_lines == ref_lines
    # Untrained: about chance, as the blog shows (~10%).
    accuracies = [int(line.rsplit(" ", 1)[1].rstrip("%")) for line in fast_lines[1:]]
    assert 0 <= np.mean(accuracies) <= 25


def test_the_original_draws_the_same_weights():
    np.random.seed(7)
    ref = reference.Conv3x3(8), reference.Softmax(13 * 13 * 8, 10)
    np.random.seed(7)
    fast = cnn_from_scratch.Conv3x3(8), cnn_from_scratch.Softmax(13 * 13 * 8, 10)
    np.testing.assert_array_equal(fast[0].filters, ref[0].filters)
    np.testing.assert_array_equal(fast[1].weights, ref[1].weights)
    np.testing.assert_array_equal(fast[1].biases, np.zeros(10))
    # the English original divides by input_len, the adaptation by nodes: 135x smaller
    np.random.seed(7)
    cnn_ext.Conv3x3(8)
    adaptation = cnn_ext.Softmax(13 * 13 * 8, 10)
    np.testing.assert_allclose(adaptation.weights / fast[1].weights, 1352 / 10)


def test_the_original_modules_are_file_for_file():
    from cnn_ext.cnn_from_scratch import conv, maxpool, softmax
    assert (conv.Conv3x3, maxpool.MaxPool2, softmax.Softmax) == (
        cnn_from_scratch.Conv3x3, cnn_from_scratch.MaxPool2, cnn_from_scratch.Softmax)
    assert list(inspect.signature(conv.Conv3x3).parameters) == ["num_filters"]
    assert list(inspect.signature(softmax.Softmax).parameters) == ["input_len", "nodes"]
    for cls in (conv.Conv3x3, softmax.Softmax):
        assert list(inspect.signature(cls.backprop).parameters) == ["self", "d_L_d_out", "learn_rate"]


def forward_once(module, seed=1, image=None):
    np.random.seed(seed)
    conv, pool, softmax = module.Conv3x3(8), module.MaxPool2(), module.Softmax(13 * 13 * 8, 10)
    if image is None:
        image = np.random.rand(28, 28) - 0.5
    out = softmax.forward(pool.forward(conv.forward(image)))
    return conv, pool, softmax, out


@pytest.mark.parametrize("gradient", [
    [0, 0, 0, -2.5, 0, 0, 0, 0, 0, 0],          # one entry, as the training loop sets
    [0, 0.5, 0, -2.5, 0, 0, 0, 3.0, 0, 0],      # several: only the first counts
    [np.nan, 0, 0, 1.0, 0, 0, 0, 0, 0, 0],      # NaN is non-zero for `gradient == 0`
])
def test_softmax_backprop_applies_only_the_first_nonzero_entry(gradient):
    gradient = np.array(gradient, dtype=np.float64)
    *_, ref_softmax, _ = forward_once(reference)
    *_, fast_softmax, _ = forward_once(cnn_from_scratch)
    with np.errstate(invalid="ignore"):
        expected = ref_softmax.backprop(gradient.copy(), 0.01)
    got = fast_softmax.backprop(gradient.copy(), 0.01)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(fast_softmax.weights, ref_softmax.weights, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(fast_softmax.biases, ref_softmax.biases, rtol=1e-12, atol=1e-15)
    if np.count_nonzero(gradient) > 1 and not np.isnan(gradient).any():
        # the adaptation's rule (every entry) gives another result
        first_only = np.where(np.arange(10) == np.flatnonzero(gradient)[0], gradient, 0)
        *_, both, _ = forward_once(cnn_from_scratch)
        all_entries = cnn_ext.Softmax.backprop(both, gradient, 0.01)
        assert not np.allclose(all_entries, got)
        *_, one, _ = forward_once(cnn_from_scratch)
        np.testing.assert_array_equal(cnn_ext.Softmax.backprop(one, first_only, 0.01), got)


def test_softmax_backprop_of_an_all_zero_gradient_changes_nothing():
    *_, softmax, _ = forward_once(cnn_from_scratch)
    before = softmax.weights.copy(), softmax.biases.copy()
    d = softmax.backprop(np.zeros(10), 0.01)
    # the original returns None here; the compiled layer returns zeros, and learns nothing
    assert d.shape == (13, 13, 8) and not d.any()
    np.testing.assert_array_equal(softmax.weights, before[0])
    np.testing.assert_array_equal(softmax.biases, before[1])
    *_, ref_softmax, _ = forward_once(reference)
    assert ref_softmax.backprop(np.zeros(10), 0.01) is None


def test_the_learn_rate_is_required_and_checked():
    conv, pool, softmax, out = forward_once(cnn_from_scratch)
    gradient = np.zeros(10)
    gradient[2] = -1 / out[2]
    with pytest.raises(TypeError, match="learn_rate"):
        softmax.backprop(gradient)
    with pytest.raises(TypeError, match="needs the learn rate"):
        softmax.backprop(gradient, None)
    with pytest.raises(ValueError, match=r"Softmax.backprop\(learn_rate\) must be a finite number > 0, got -0.1"):
        softmax.backprop(gradient, -0.1)
    d = pool.backprop(softmax.backprop(gradient, learn_rate=0.005))
    with pytest.raises(TypeError, match="learn_rate"):
        conv.backprop(d)
    with pytest.raises(ValueError, match=r"Conv3x3.backprop\(learn_rate\) must be a finite number > 0, got nan"):
        conv.backprop(d, float("nan"))
    with pytest.raises(TypeError, match=r"Conv3x3.backprop\(learn_rate\) must be a positive number, got '0.1'"):
        conv.backprop(d, "0.1")
    assert conv.backprop(d, 0.005) is None


def test_real_mnist_digits_with_ties_match_the_reference(mnist):
    # Flat backgrounds tie in most pooling windows: the tie rule is the same in both
    # tutorials, and the compiled layers must keep it.
    (x_train, y_train), _ = mnist
    for index in (0, 1, 7):
        image = (x_train[index] / 255) - 0.5
        label = y_train[index]
        ref = forward_once(reference, seed=index, image=image)
        fast = forward_once(cnn_from_scratch, seed=index, image=image)
        np.testing.assert_allclose(fast[3], ref[3], rtol=1e-12)
        for layers, rate in ((ref, 0.005), (fast, 0.005)):
            conv, pool, softmax, out = layers
            gradient = np.zeros(10)
            gradient[label] = -1 / out[label]
            conv.backprop(pool.backprop(softmax.backprop(gradient, rate)), rate)
        np.testing.assert_allclose(fast[0].filters, ref[0].filters, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(fast[2].weights, ref[2].weights, rtol=1e-12, atol=1e-15)
