"""The tutorial's network in PyTorch and in TensorFlow, for benchmarks and gradient checks.

Neither framework is a dependency of cnn_ext: both are imported lazily, and
:func:`torch_network` / :func:`tensorflow_network` return ``None`` when the framework is
not installed (the benchmark then leaves those rows out, the tests skip).

Both models are Conv3x3(8) -> MaxPool2 -> Softmax(13*13*8, 10) in float64, started from
the parameters of a :class:`cnn_ext.Network` (copied, so training one does not touch the
other), normalising uint8 images as the tutorial does, ``(image / 255) - 0.5``, and trained
with plain SGD on the cross-entropy ``-log(out[label])``:

* ``train_step(x, y)`` on a batch of one is exactly the tutorial's per-sample step (up to
  the max-pool rule below);
* on a batch of n it is one SGD step on the *mean* loss of the n images (minibatch SGD,
  not n per-sample steps: it is there to show what batching buys in time per image).

Max pooling differs from the tutorial's where a window ties: PyTorch's and TensorFlow's
max-pool backward routes a window's gradient to *one* maximum only, while the tutorial
(and cnn_ext) gives it to every position equal to the maximum. On MNIST, whose flat
background makes most windows 4-way ties, their gradients therefore differ from cnn_ext's;
on inputs whose windows all have a unique maximum (random noise) they agree to rounding.

Layouts: the tutorial flattens the pooled (13, 13, 8) output in (h, w, f) order. The
TensorFlow model is channels-last (NHWC), so its flatten order is the tutorial's. The
PyTorch model is channels-first (NCHW): rather than permuting the activations at every
step, its dense weights are stored permuted to the (f, h, w) flatten order, and
:meth:`TorchNetwork.parameters` permutes them back.
"""
import importlib
import importlib.metadata
import os

import numpy as np

__all__ = ["framework_versions", "torch_network", "tensorflow_network", "TorchNetwork",
           "TensorFlowNetwork"]


def _distribution_version(*names):
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def framework_versions():
    """Installed versions of torch and tensorflow (``None`` when absent), without importing them."""
    return {
        "torch": _distribution_version("torch"),
        "tensorflow": _distribution_version("tensorflow", "tensorflow-cpu", "tensorflow-intel",
                                            "tensorflow-macos"),
    }


def _import(name):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _import_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # no C++ info/warning banner
    return _import("tensorflow")


def _parameters_of(network):
    """Copies of (filters (f, 3, 3), weights (n, 10), biases (10,)) of a cnn_ext Network."""
    return (np.array(network.conv.filters, dtype=np.float64),
            np.array(network.softmax.weights, dtype=np.float64),
            np.array(network.softmax.biases, dtype=np.float64))


def _pooled_shape(image_shape, num_filters):
    h, w = image_shape
    return (h - 2) // 2, (w - 2) // 2, num_filters


def _network_parameters(network, image_shape):
    """``_parameters_of(network)`` and the pooled shape (ph, pw, f), checked against each other."""
    filters, weights, biases = _parameters_of(network)
    pooled_shape = _pooled_shape(image_shape, filters.shape[0])
    ph, pw, f = pooled_shape
    if weights.shape[0] != ph * pw * f:
        raise ValueError(f"weights {weights.shape} do not fit images of shape {image_shape}")
    return filters, weights, biases, pooled_shape


def torch_network(network, learn_rate=0.005, threads=1, image_shape=(28, 28)):
    """A :class:`TorchNetwork` copy of ``network``, or ``None`` if PyTorch is not installed."""
    if _import("torch") is None:
        return None
    return TorchNetwork(network, learn_rate=learn_rate, threads=threads, image_shape=image_shape)


def tensorflow_network(network, learn_rate=0.005, threads=1, image_shape=(28, 28)):
    """A :class:`TensorFlowNetwork` copy of ``network``, or ``None`` if TensorFlow is not installed."""
    if _import_tensorflow() is None:
        return None
    return TensorFlowNetwork(network, learn_rate=learn_rate, threads=threads, image_shape=image_shape)


class TorchNetwork:
    """The tutorial's network in PyTorch (float64, CPU, plain SGD).

    ``threads`` sets ``torch.set_num_threads`` (process-wide: 1 for single-core comparisons
    with cnn_ext's training step; ``None`` leaves it alone). Max-pool backward routes each
    window's gradient to one maximum only (see the module docstring).
    """

    name = "PyTorch"

    def __init__(self, network, learn_rate=0.005, threads=1, image_shape=(28, 28)):
        import torch

        self.torch = torch
        if threads is not None:
            torch.set_num_threads(threads)
        filters, weights, biases, self.pooled_shape = _network_parameters(network, image_shape)
        self.num_filters = filters.shape[0]
        ph, pw, f = self.pooled_shape
        nodes = weights.shape[1]
        self.learn_rate = float(learn_rate)
        # conv2d is a cross-correlation, as the tutorial's sum(region * filter): no flip.
        self.filters = torch.tensor(filters[:, np.newaxis], dtype=torch.float64, requires_grad=True)
        # (h*w*f, nodes) in the tutorial's (h, w, f) order -> (f*h*w, nodes) for NCHW flattening.
        permuted = weights.reshape(ph, pw, f, nodes).transpose(2, 0, 1, 3).reshape(-1, nodes)
        self.weights = torch.tensor(np.ascontiguousarray(permuted), dtype=torch.float64, requires_grad=True)
        self.biases = torch.tensor(biases, dtype=torch.float64, requires_grad=True)
        self._params = (self.filters, self.weights, self.biases)

    def prepare(self, images, labels=None):
        """uint8 images (n, h, w) and int labels (n,) as the tensors ``train_step`` takes."""
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8)).unsqueeze(1)  # (n, 1, h, w)
        if labels is None:
            return x
        return x, torch.from_numpy(np.asarray(labels, dtype=np.int64))

    def _logits(self, x_u8):
        F = self.torch.nn.functional
        x = x_u8.to(self.torch.float64) / 255 - 0.5
        out = F.conv2d(x, self.filters)
        out = F.max_pool2d(out, 2)
        return out.flatten(1) @ self.weights + self.biases

    def train_step(self, x, y):
        """One SGD step on the mean cross-entropy of a prepared batch (batch 1: the tutorial's step)."""
        F = self.torch.nn.functional
        loss = F.cross_entropy(self._logits(x), y)
        loss.backward()
        with self.torch.no_grad():
            for p in self._params:
                p.sub_(p.grad, alpha=self.learn_rate)
                p.grad = None

    def predict_proba(self, x):
        """Class probabilities (n, nodes) as a NumPy array, for prepared images."""
        with self.torch.no_grad():
            return self.torch.softmax(self._logits(x), dim=1).numpy()

    def parameters(self):
        """(filters (f, 3, 3), weights (h*w*f, nodes) in the tutorial's order, biases) as NumPy."""
        ph, pw, f = self.pooled_shape
        weights = self.weights.detach().numpy()
        nodes = weights.shape[1]
        weights = weights.reshape(f, ph, pw, nodes).transpose(1, 2, 0, 3).reshape(-1, nodes)
        return (self.filters.detach().numpy()[:, 0].copy(), np.ascontiguousarray(weights),
                self.biases.detach().numpy().copy())


class TensorFlowNetwork:
    """The tutorial's network in TensorFlow (float64, CPU, NHWC, plain SGD in ``tf.function``).

    ``threads`` sets TensorFlow's intra- and inter-op thread pools, which is only possible
    before TensorFlow has run anything in this process (later calls keep what was set
    first; ``None`` leaves them alone). Max-pool backward routes each window's gradient to
    one maximum only (see the module docstring).
    """

    name = "TensorFlow"

    def __init__(self, network, learn_rate=0.005, threads=1, image_shape=(28, 28)):
        tf = _import_tensorflow()
        self.tf = tf
        if threads is not None:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(threads)
            except RuntimeError:
                pass  # the runtime is already initialised: keep its pools
        self.threads = (tf.config.threading.get_intra_op_parallelism_threads(),
                        tf.config.threading.get_inter_op_parallelism_threads())
        filters, weights, biases, self.pooled_shape = _network_parameters(network, image_shape)
        self.num_filters = filters.shape[0]
        self.learn_rate = float(learn_rate)
        # filters (f, 3, 3) -> HWIO kernel (3, 3, 1, f); conv2d is a cross-correlation.
        self.kernel = tf.Variable(filters.transpose(1, 2, 0)[:, :, np.newaxis, :], dtype=tf.float64)
        self.weights = tf.Variable(weights, dtype=tf.float64)
        self.biases = tf.Variable(biases, dtype=tf.float64)
        self._variables = (self.kernel, self.weights, self.biases)
        h, w = image_shape
        images = tf.TensorSpec((None, h, w), tf.uint8)
        labels = tf.TensorSpec((None,), tf.int64)
        self._train = tf.function(self._train_step, input_signature=(images, labels))
        self._predict = tf.function(self._probabilities, input_signature=(images,))

    def prepare(self, images, labels=None):
        """uint8 images (n, h, w) and int labels (n,) as the tensors ``train_step`` takes."""
        tf = self.tf
        x = tf.constant(np.ascontiguousarray(images, dtype=np.uint8))
        if labels is None:
            return x
        return x, tf.constant(np.asarray(labels, dtype=np.int64))

    def _pooled(self, x_u8):
        tf = self.tf
        x = tf.cast(x_u8, tf.float64)[..., tf.newaxis] / 255 - 0.5
        out = tf.nn.conv2d(x, self.kernel, strides=1, padding="VALID")
        return tf.nn.max_pool2d(out, ksize=2, strides=2, padding="VALID")

    def _logits_from_pooled(self, pooled):
        flat = self.tf.reshape(pooled, (-1, self.weights.shape[0]))  # NHWC: the tutorial's order
        return flat @ self.weights + self.biases

    def _loss(self, logits, y):
        tf = self.tf
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))

    def _train_step(self, x, y):
        with self.tf.GradientTape() as tape:
            loss = self._loss(self._logits_from_pooled(self._pooled(x)), y)
        grads = tape.gradient(loss, self._variables)
        for var, grad in zip(self._variables, grads):
            var.assign_sub(self.learn_rate * grad)
        return loss

    def _probabilities(self, x):
        return self.tf.nn.softmax(self._logits_from_pooled(self._pooled(x)))

    def train_step(self, x, y):
        """One SGD step on the mean cross-entropy of a prepared batch (batch 1: the tutorial's step)."""
        self._train(x, y)

    def predict_proba(self, x):
        """Class probabilities (n, nodes) as a NumPy array, for prepared images."""
        return self._predict(x).numpy()

    def parameters(self):
        """(filters (f, 3, 3), weights (h*w*f, nodes), biases (nodes,)) as NumPy arrays."""
        kernel = self.kernel.numpy()[:, :, 0, :]
        return (np.ascontiguousarray(kernel.transpose(2, 0, 1)), self.weights.numpy().copy(),
                self.biases.numpy().copy())

    def gradients(self, image, label):
        """``GradientTape`` gradients of ``-log(out[label])`` for one *normalised* float image (h, w).

        Returns a dict of NumPy arrays in the tutorial's layouts: ``filters`` (f, 3, 3),
        ``weights``, ``biases``, and the gradients with respect to the softmax layer's input
        ``pooled`` (h', w', f) and the max-pool's input ``conv_output`` (h-2, w-2, f);
        ``probabilities`` is the forward output. Parameters are not updated.
        """
        tf = self.tf
        x = tf.constant(np.asarray(image, dtype=np.float64)[np.newaxis, :, :, np.newaxis])
        with tf.GradientTape(persistent=True) as tape:
            conv = tf.nn.conv2d(x, self.kernel, strides=1, padding="VALID")
            tape.watch(conv)
            pooled = tf.nn.max_pool2d(conv, ksize=2, strides=2, padding="VALID")
            tape.watch(pooled)
            logits = self._logits_from_pooled(pooled)
            loss = self._loss(logits, tf.constant([int(label)], dtype=tf.int64))
        d_kernel, d_weights, d_biases, d_pooled, d_conv = tape.gradient(
            loss, [self.kernel, self.weights, self.biases, pooled, conv])
        del tape
        return {
            "filters": np.ascontiguousarray(d_kernel.numpy()[:, :, 0, :].transpose(2, 0, 1)),
            "weights": d_weights.numpy(),
            "biases": d_biases.numpy(),
            "pooled": d_pooled.numpy()[0],
            "conv_output": d_conv.numpy()[0],
            "probabilities": tf.nn.softmax(logits).numpy()[0],
            "loss": float(loss.numpy()),
        }
