"""Learner-style layers for tests/test_check.py and the exercise notebook's CI run, written
from scratch (not copied from either tutorial or from cnn_ext), and the classic bugs as
text edits of them.

``ADAPTATION`` follows the adaptation's API (learn rate in the constructors,
``backprop(d_L_d_out)``), ``ORIGINAL`` the English original's (``backprop(d_L_d_out,
learn_rate)``, Softmax returning after the first non-zero entry). Both include the
tutorial's training script objects and ``train`` under ``TRAIN_*``.
"""

ADAPTATION = '''
import numpy as np


class Conv3x3:
    def __init__(self, num_filters, learn_rate=0.01):
        self.num_filters = num_filters
        self.filters = np.random.randn(num_filters, 3, 3) / 9
        self.learn_rate = learn_rate

    def regions(self, image):
        h, w = image.shape
        for i in range(h - 2):
            for j in range(w - 2):
                yield image[i:i + 3, j:j + 3], i, j

    def forward(self, input):
        self.last_input = input
        h, w = input.shape
        out = np.zeros((h - 2, w - 2, self.num_filters))
        for region, i, j in self.regions(input):
            for f in range(self.num_filters):
                out[i, j, f] = (region * self.filters[f]).sum()
        return out

    def backprop(self, d_L_d_out):
        d_L_d_filters = np.zeros(self.filters.shape)
        for region, i, j in self.regions(self.last_input):
            for f in range(self.num_filters):
                d_L_d_filters[f] += d_L_d_out[i, j, f] * region
        self.filters -= self.learn_rate * d_L_d_filters
        return None


class MaxPool2:
    def forward(self, input):
        self.last_input = input
        h, w, n = input.shape
        out = np.zeros((h // 2, w // 2, n))
        for i in range(h // 2):
            for j in range(w // 2):
                out[i, j] = input[2 * i:2 * i + 2, 2 * j:2 * j + 2].max(axis=(0, 1))
        return out

    def backprop(self, d_L_d_out):
        x = self.last_input
        d_L_d_input = np.zeros(x.shape)
        for i in range(x.shape[0] // 2):
            for j in range(x.shape[1] // 2):
                window = x[2 * i:2 * i + 2, 2 * j:2 * j + 2]
                top = window.max(axis=(0, 1))
                for f in range(x.shape[2]):
                    for a in range(2):
                        for b in range(2):
                            if window[a, b, f] == top[f]:
                                d_L_d_input[2 * i + a, 2 * j + b, f] = d_L_d_out[i, j, f]
        return d_L_d_input


class Softmax:
    def __init__(self, input_len, nodes, learn_rate=0.01):
        self.weights = np.random.randn(input_len, nodes) / nodes
        self.biases = np.zeros(nodes)
        self.learn_rate = learn_rate

    def forward(self, input):
        self.last_input_shape = input.shape
        input = input.flatten()
        self.last_input = input
        totals = input @ self.weights + self.biases
        self.last_totals = totals
        e = np.exp(totals)
        return e / e.sum()

    def backprop(self, d_L_d_out):
        d_L_d_t_sum = np.zeros(self.biases.shape)
        for k, g in enumerate(d_L_d_out):
            if g == 0:
                continue
            e = np.exp(self.last_totals)
            s = e.sum()
            d_out_d_t = -e[k] * e / s ** 2
            d_out_d_t[k] = e[k] * (s - e[k]) / s ** 2
            d_L_d_t_sum += g * d_out_d_t
        d_L_d_input = self.weights @ d_L_d_t_sum
        self.weights -= self.learn_rate * np.outer(self.last_input, d_L_d_t_sum)
        self.biases -= self.learn_rate * d_L_d_t_sum
        return d_L_d_input.reshape(self.last_input_shape)
'''

ORIGINAL = '''
import numpy as np


class Conv3x3:
    def __init__(self, num_filters):
        self.num_filters = num_filters
        self.filters = np.random.randn(num_filters, 3, 3) / 9

    def forward(self, input):
        self.last_input = input
        h, w = input.shape
        out = np.zeros((h - 2, w - 2, self.num_filters))
        for i in range(h - 2):
            for j in range(w - 2):
                out[i, j] = np.tensordot(self.filters, input[i:i + 3, j:j + 3], axes=([1, 2], [0, 1]))
        return out

    def backprop(self, d_L_d_out, learn_rate):
        grad = np.zeros(self.filters.shape)
        h, w = self.last_input.shape
        for i in range(h - 2):
            for j in range(w - 2):
                patch = self.last_input[i:i + 3, j:j + 3]
                for f in range(self.num_filters):
                    grad[f] += d_L_d_out[i, j, f] * patch
        self.filters -= learn_rate * grad
        return None


class MaxPool2:
    def forward(self, input):
        self.last_input = input
        h, w, n = input.shape
        out = np.zeros((h // 2, w // 2, n))
        for i in range(h // 2):
            for j in range(w // 2):
                out[i, j] = np.amax(input[i * 2:i * 2 + 2, j * 2:j * 2 + 2], axis=(0, 1))
        return out

    def backprop(self, d_L_d_out):
        x = self.last_input
        grad = np.zeros(x.shape)
        for i in range(x.shape[0] // 2):
            for j in range(x.shape[1] // 2):
                win = x[i * 2:i * 2 + 2, j * 2:j * 2 + 2]
                amax = np.amax(win, axis=(0, 1))
                for a in range(2):
                    for b in range(2):
                        for f in range(x.shape[2]):
                            if win[a, b, f] == amax[f]:
                                grad[i * 2 + a, j * 2 + b, f] = d_L_d_out[i, j, f]
        return grad


class Softmax:
    def __init__(self, input_len, nodes):
        self.weights = np.random.randn(input_len, nodes) / input_len
        self.biases = np.zeros(nodes)

    def forward(self, input):
        self.last_input_shape = input.shape
        input = input.flatten()
        self.last_input = input
        totals = np.dot(input, self.weights) + self.biases
        self.last_totals = totals
        exp = np.exp(totals)
        return exp / np.sum(exp, axis=0)

    def backprop(self, d_L_d_out, learn_rate):
        for i, gradient in enumerate(d_L_d_out):
            if gradient == 0:
                continue
            t_exp = np.exp(self.last_totals)
            S = np.sum(t_exp)
            d_out_d_t = -t_exp[i] * t_exp / (S ** 2)
            d_out_d_t[i] = t_exp[i] * (S - t_exp[i]) / (S ** 2)
            d_L_d_t = gradient * d_out_d_t
            d_L_d_w = np.outer(self.last_input, d_L_d_t)
            d_L_d_inputs = self.weights @ d_L_d_t
            self.weights -= learn_rate * d_L_d_w
            self.biases -= learn_rate * d_L_d_t
            return d_L_d_inputs.reshape(self.last_input_shape)
'''

# The tutorials' training scripts (module-level objects and train()), appended to the layers.
TRAIN_ADAPTATION = '''

conv = Conv3x3(8, learn_rate=0.005)
pool = MaxPool2()
softmax = Softmax(13 * 13 * 8, 10, learn_rate=0.005)


def train(image, label):
    out = conv.forward((image / 255) - 0.5)
    out = pool.forward(out)
    out = softmax.forward(out)
    gradient = np.zeros(10)
    gradient[label] = -1 / out[label]
    gradient = softmax.backprop(gradient)
    gradient = pool.backprop(gradient)
    conv.backprop(gradient)
'''

TRAIN_ORIGINAL = '''

conv = Conv3x3(8)
pool = MaxPool2()
softmax = Softmax(13 * 13 * 8, 10)


def train(im, label, lr=.005):
    out = conv.forward((im / 255) - 0.5)
    out = pool.forward(out)
    out = softmax.forward(out)
    gradient = np.zeros(10)
    gradient[label] = -1 / out[label]
    gradient = softmax.backprop(gradient, lr)
    gradient = pool.backprop(gradient)
    conv.backprop(gradient, lr)
'''

# name -> {tutorial: [(old, new), ...]}, the layer it breaks and words of the hint naming it.
BUGS = {
    "pool_first_max_only": {
        "layer": "MaxPool2", "hint": "gradient to one tied maximum only",
        "adaptation": [("if window[a, b, f] == top[f]:",
                        "if window[a, b, f] == top[f] and not (window[:, :, f] == top[f])"
                        ".ravel()[:2 * a + b].any():")],
        "original": [("if win[a, b, f] == amax[f]:",
                      "if win[a, b, f] == amax[f] and not grad[i * 2:i * 2 + 2, j * 2:j * 2 + 2, f].any():")],
    },
    "softmax_weights_before_input_gradient": {
        "layer": "Softmax", "hint": "weights are updated before the input gradient",
        "adaptation": [("        d_L_d_input = self.weights @ d_L_d_t_sum\n", ""),
                       ("        self.biases -= self.learn_rate * d_L_d_t_sum\n",
                        "        self.biases -= self.learn_rate * d_L_d_t_sum\n"
                        "        d_L_d_input = self.weights @ d_L_d_t_sum\n")],
        "original": [("            d_L_d_inputs = self.weights @ d_L_d_t\n", ""),
                     ("            self.biases -= learn_rate * d_L_d_t\n",
                      "            self.biases -= learn_rate * d_L_d_t\n"
                      "            d_L_d_inputs = self.weights @ d_L_d_t\n")],
    },
    "conv_assign_not_accumulate": {
        "layer": "Conv3x3", "hint": "`=` instead of `+=`",
        "adaptation": [("d_L_d_filters[f] += d_L_d_out", "d_L_d_filters[f] = d_L_d_out")],
        "original": [("grad[f] += d_L_d_out", "grad[f] = d_L_d_out")],
    },
    "conv_missing_div9": {
        "layer": "Conv3x3", "hint": "missing `/ 9`",
        "adaptation": [("np.random.randn(num_filters, 3, 3) / 9", "np.random.randn(num_filters, 3, 3)")],
        "original": [("np.random.randn(num_filters, 3, 3) / 9", "np.random.randn(num_filters, 3, 3)")],
    },
    "softmax_missing_div": {
        "layer": "Softmax", "hint": "missing `/ ",
        "adaptation": [("np.random.randn(input_len, nodes) / nodes", "np.random.randn(input_len, nodes)")],
        "original": [("np.random.randn(input_len, nodes) / input_len", "np.random.randn(input_len, nodes)")],
    },
    "update_sign": {
        "layer": "Conv3x3", "hint": "the update's sign",
        "adaptation": [("self.filters -= self.learn_rate", "self.filters += self.learn_rate")],
        "original": [("self.filters -= learn_rate", "self.filters += learn_rate")],
    },
    "rate_applied_twice": {
        "layer": "Conv3x3", "hint": "learn rate applied twice",
        "adaptation": [("self.filters -= self.learn_rate * d_L_d_filters",
                        "self.filters -= self.learn_rate * self.learn_rate * d_L_d_filters")],
        "original": [("self.filters -= learn_rate * grad", "self.filters -= learn_rate * learn_rate * grad")],
    },
    "rate_not_applied": {
        "layer": "Softmax", "hint": "learn rate not applied",
        "adaptation": [("self.weights -= self.learn_rate * np.outer", "self.weights -= np.outer")],
        "original": [("self.weights -= learn_rate * d_L_d_w", "self.weights -= d_L_d_w")],
    },
    "transposed_flatten": {
        "layer": "Softmax", "hint": "transposed flatten",
        "adaptation": [("input = input.flatten()", "input = input.T.flatten()")],
        "original": [("input = input.flatten()", "input = input.T.flatten()")],
    },
    "forward_state_not_cached": {
        "layer": "MaxPool2", "hint": "forward state not cached",
        "adaptation": [("    def forward(self, input):\n        self.last_input = input\n        h, w, n",
                        "    def forward(self, input):\n        if not hasattr(self, 'last_input'):\n"
                        "            self.last_input = input\n        h, w, n")],
        "original": [("    def forward(self, input):\n        self.last_input = input\n        h, w, n",
                      "    def forward(self, input):\n        if not hasattr(self, 'last_input'):\n"
                      "            self.last_input = input\n        h, w, n")],
    },
    "conv_forward_does_not_keep_input": {
        "layer": "Conv3x3", "hint": "forward state not cached",
        "adaptation": [("        self.last_input = input\n        h, w = input.shape\n",
                        "        h, w = input.shape\n")],
        "original": [("        self.last_input = input\n        h, w = input.shape\n",
                      "        h, w = input.shape\n")],
    },
    "softmax_first_entry_only": {
        "layer": "Softmax", "hint": "only the first non-zero entry",
        "adaptation": [("            d_L_d_t_sum += g * d_out_d_t\n",
                        "            d_L_d_t_sum += g * d_out_d_t\n            break\n")],
    },
    "softmax_assign_not_accumulate": {
        "layer": "Softmax", "hint": "`=` instead of `+=`",
        "adaptation": [("d_L_d_t_sum += g * d_out_d_t", "d_L_d_t_sum = g * d_out_d_t")],
    },
}

# Bugs that only a training run shows: (tutorial, edits, first diverging step, parameter prefix).
TRAINING_BUGS = {
    "conv_gradient_kept_between_steps": (
        "adaptation",
        [("d_L_d_filters = np.zeros(self.filters.shape)",
          "d_L_d_filters = self.__dict__.setdefault('kept', np.zeros(self.filters.shape))")],
        2, "conv.filters["),
    "loss_gradient_sign": (
        "original", [("gradient[label] = -1 / out[label]", "gradient[label] = 1 / out[label]")],
        1, "conv.filters["),
}


def source(tutorial, bug=None, train=False):
    """The learner's file text for ``tutorial`` ("adaptation" or "original"), with ``bug``
    planted (a key of BUGS or TRAINING_BUGS)."""
    text = ADAPTATION if tutorial == "adaptation" else ORIGINAL
    if train:
        text += TRAIN_ADAPTATION if tutorial == "adaptation" else TRAIN_ORIGINAL
    edits = []
    if bug in BUGS:
        edits = BUGS[bug][tutorial]
    elif bug in TRAINING_BUGS:
        edits = TRAINING_BUGS[bug][1]
    for old, new in edits:
        assert text.count(old) == 1, (bug, old)
        text = text.replace(old, new)
    return text


# ------------------------------------------------------------------------------------------
# examples/05_exercises.ipynb: the solutions of its exercise cells (keyed by the cell's
# metadata "exercise"), and the classic bugs as edits of them, with the layer and the words
# of the hint the check cell must print.
# ------------------------------------------------------------------------------------------

_NB_CONV_HEAD = '''class Conv3x3:
    """3x3 convolution, valid padding, stride 1: (h, w) -> (h - 2, w - 2, num_filters)."""

    def __init__(self, num_filters, learn_rate=0.01):
        self.num_filters = num_filters
        self.filters = np.random.randn(num_filters, 3, 3) / 9
        self.learn_rate = learn_rate

    def iterate_regions(self, image):
        h, w = image.shape
        for i in range(h - 2):
            for j in range(w - 2):
                yield image[i:(i + 3), j:(j + 3)], i, j
'''

NOTEBOOK_SOLUTIONS = {
    "conv_forward": _NB_CONV_HEAD + '''
    def forward(self, input):
        self.last_input = input
        h, w = input.shape
        output = np.zeros((h - 2, w - 2, self.num_filters))
        for im_region, i, j in self.iterate_regions(input):
            output[i, j] = np.sum(im_region * self.filters, axis=(1, 2))
        return output
''',
    "pool_forward": '''class MaxPool2:
    def iterate_regions(self, image):
        h, w, _ = image.shape
        for i in range(h // 2):
            for j in range(w // 2):
                yield image[(i * 2):(i * 2 + 2), (j * 2):(j * 2 + 2)], i, j

    def forward(self, input):
        self.last_input = input
        h, w, num_filters = input.shape
        output = np.zeros((h // 2, w // 2, num_filters))
        for im_region, i, j in self.iterate_regions(input):
            output[i, j] = np.amax(im_region, axis=(0, 1))
        return output
''',
    "softmax_forward": '''class Softmax:
    def __init__(self, input_len, nodes, learn_rate=0.01):
        self.weights = np.random.randn(input_len, nodes) / nodes
        self.biases = np.zeros(nodes)
        self.learn_rate = learn_rate

    def forward(self, input):
        self.last_input_shape = input.shape
        input = input.flatten()
        self.last_input = input
        totals = np.dot(input, self.weights) + self.biases
        self.last_totals = totals
        exp = np.exp(totals - totals.max())
        return exp / np.sum(exp, axis=0)
''',
    "softmax_backprop": '''def softmax_backprop(self, d_L_d_out):
    d_L_d_t = np.zeros(self.biases.shape)
    for i, gradient in enumerate(d_L_d_out):
        if gradient == 0:
            continue
        t_exp = np.exp(self.last_totals)
        S = np.sum(t_exp)
        d_out_d_t = -t_exp[i] * t_exp / (S ** 2)
        d_out_d_t[i] = t_exp[i] * (S - t_exp[i]) / (S ** 2)
        d_L_d_t += gradient * d_out_d_t
    d_L_d_input = self.weights @ d_L_d_t
    self.weights -= self.learn_rate * np.outer(self.last_input, d_L_d_t)
    self.biases -= self.learn_rate * d_L_d_t
    return d_L_d_input.reshape(self.last_input_shape)


Softmax.backprop = softmax_backprop
''',
    "pool_backprop": '''def maxpool_backprop(self, d_L_d_out):
    d_L_d_input = np.zeros(self.last_input.shape)
    for im_region, i, j in self.iterate_regions(self.last_input):
        h, w, f = im_region.shape
        amax = np.amax(im_region, axis=(0, 1))
        for i2 in range(h):
            for j2 in range(w):
                for f2 in range(f):
                    if im_region[i2, j2, f2] == amax[f2]:
                        d_L_d_input[i * 2 + i2, j * 2 + j2, f2] = d_L_d_out[i, j, f2]
    return d_L_d_input


MaxPool2.backprop = maxpool_backprop
''',
    "conv_backprop": '''def conv_backprop(self, d_L_d_out):
    d_L_d_filters = np.zeros(self.filters.shape)
    for im_region, i, j in self.iterate_regions(self.last_input):
        for f in range(self.num_filters):
            d_L_d_filters[f] += d_L_d_out[i, j, f] * im_region
    self.filters -= self.learn_rate * d_L_d_filters
    return None


Conv3x3.backprop = conv_backprop
''',
    "train": '''conv = Conv3x3(8, learn_rate=0.005)
pool = MaxPool2()
softmax = Softmax(13 * 13 * 8, 10, learn_rate=0.005)


def train(image, label):
    out = conv.forward((image / 255) - 0.5)
    out = pool.forward(out)
    out = softmax.forward(out)
    gradient = np.zeros(10)
    gradient[label] = -1 / out[label]
    gradient = softmax.backprop(gradient)
    gradient = pool.backprop(gradient)
    conv.backprop(gradient)
''',
}

# name -> (exercise, old, new, check cell's exercise, words of the hint)
NOTEBOOK_BUGS = {
    "pool_first_max_only": (
        "pool_backprop", "                    if im_region[i2, j2, f2] == amax[f2]:",
        "                    if im_region[i2, j2, f2] == amax[f2] and not "
        "d_L_d_input[i * 2:i * 2 + 2, j * 2:j * 2 + 2, f2].any():",
        "pool_backprop", "gradient to one tied maximum only"),
    "softmax_weights_before_input_gradient": (
        "softmax_backprop", "    d_L_d_input = self.weights @ d_L_d_t\n    self.weights -= "
                            "self.learn_rate * np.outer(self.last_input, d_L_d_t)\n",
        "    self.weights -= self.learn_rate * np.outer(self.last_input, d_L_d_t)\n"
        "    d_L_d_input = self.weights @ d_L_d_t\n",
        "softmax_backprop", "weights are updated before the input gradient"),
    "conv_assign_not_accumulate": (
        "conv_backprop", "d_L_d_filters[f] += ", "d_L_d_filters[f] = ",
        "conv_backprop", "`=` instead of `+=`"),
    "conv_missing_div9": (
        "conv_forward", "np.random.randn(num_filters, 3, 3) / 9", "np.random.randn(num_filters, 3, 3)",
        "conv_forward", "missing `/ 9`"),
    "softmax_missing_div": (
        "softmax_forward", "np.random.randn(input_len, nodes) / nodes", "np.random.randn(input_len, nodes)",
        "softmax_forward", "missing `/ nodes`"),
    "update_sign": (
        "conv_backprop", "self.filters -= self.learn_rate", "self.filters += self.learn_rate",
        "conv_backprop", "the update's sign"),
    "rate_applied_twice": (
        "softmax_backprop", "self.biases -= self.learn_rate * d_L_d_t",
        "self.biases -= self.learn_rate * self.learn_rate * d_L_d_t",
        "softmax_backprop", "learn rate applied twice"),
    "rate_not_applied": (
        "conv_backprop", "self.filters -= self.learn_rate * d_L_d_filters", "self.filters -= d_L_d_filters",
        "conv_backprop", "learn rate not applied"),
    "transposed_flatten": (
        "softmax_forward", "input = input.flatten()", "input = input.T.flatten()",
        "softmax_forward", "transposed flatten"),
    "softmax_overflow": (
        "softmax_forward", "np.exp(totals - totals.max())", "np.exp(totals)",
        "softmax_forward", "softmax overflow"),
    "forward_state_not_cached": (
        "pool_forward", "        self.last_input = input\n",
        "        if not hasattr(self, 'last_input'):\n            self.last_input = input\n",
        "pool_backprop", "forward state not cached"),
    "softmax_first_entry_only": (
        "softmax_backprop", "        d_L_d_t += gradient * d_out_d_t\n",
        "        d_L_d_t += gradient * d_out_d_t\n        break\n",
        "softmax_backprop", "only the first non-zero entry"),
    "loss_gradient_sign": (
        "train", "gradient[label] = -1 / out[label]", "gradient[label] = 1 / out[label]",
        "train", "diverges at step 1: conv.filters["),
}


def notebook_solution(exercise, bug=None):
    """The solution text of one exercise cell, with ``bug`` (a NOTEBOOK_BUGS key) planted."""
    text = NOTEBOOK_SOLUTIONS[exercise]
    if bug is not None and NOTEBOOK_BUGS[bug][0] == exercise:
        _, old, new, _, _ = NOTEBOOK_BUGS[bug]
        assert text.count(old) == 1, (bug, old)
        text = text.replace(old, new)
    return text
