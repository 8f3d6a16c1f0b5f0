"""The tutorial's training loop, run with cnn_ext and with the original classes."""
import numpy as np

import cnn_ext
import cnn_ext_reference


def tutorial_training(layers, images, labels):
    """The tutorial's per-sample SGD loop, verbatim but for the classes passed in."""
    Conv3x3, MaxPool2, Softmax = layers
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

    def train(im, label):
        out, loss, acc = forward(im, label)
        gradient = np.zeros(10)
        gradient[label] = -1 / out[label]
        gradient = softmax.backprop(gradient)
        gradient = pool.backprop(gradient)
        gradient = conv.backprop(gradient)
        return loss, acc

    log = []
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
    return log, (conv.filters, softmax.weights, softmax.biases)


def test_1000_steps_match_the_tutorial(mnist):
    (x_train, y_train), _ = mnist
    images, labels = x_train[:1000], y_train[:1000]
    np.random.seed(0)
    fast_log, fast_params = tutorial_training((cnn_ext.Conv3x3, cnn_ext.MaxPool2, cnn_ext.Softmax), images, labels)
    np.random.seed(0)
    ref_log, ref_params = tutorial_training(
        (cnn_ext_reference.Conv3x3, cnn_ext_reference.MaxPool2, cnn_ext_reference.Softmax), images, labels)
    assert len(fast_log) == 10
    assert fast_log == ref_log
    for fast, slow in zip(fast_params, ref_params):
        assert np.max(np.abs(fast - slow)) / np.max(np.abs(slow)) < 1e-10
    # it learned: the last 100 steps beat chance by far
    assert int(fast_log[-1].rsplit(" ", 1)[1].rstrip("%")) > 50
