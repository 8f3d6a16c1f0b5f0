import numpy as np


class Softmax:
    """Fully connected layer followed by softmax: any input shape -> (nodes,) probabilities.

    As in the tutorial, ``forward`` does not shift the totals before ``exp`` (it overflows
    for totals above about 709), and ``backprop`` loops over the non-zero entries of the
    upstream gradient, using the weights from before the update for the input gradient.
    """

    def __init__(self, input_len, nodes, learn_rate=0.01):
        self.weights = np.random.randn(input_len, nodes) / nodes
        self.biases = np.zeros(nodes)
        self.learn_rate = learn_rate
        self.last_input_shape = None
        self.last_input = None
        self.last_totals = None

    def forward(self, input):
        self.last_input_shape = input.shape
        input = input.flatten()
        self.last_input = input
        totals = np.dot(input, self.weights) + self.biases
        self.last_totals = totals
        exp = np.exp(totals)
        return exp / np.sum(exp, axis=0)

    def backprop(self, d_L_d_out):
        d_L_d_w = np.zeros(self.weights.shape)
        d_L_d_b = np.zeros(self.biases.shape)
        d_L_d_input = np.zeros(self.last_input.shape)
        for i, gradient in enumerate(d_L_d_out):
            if gradient == 0:
                continue
            t_exp = np.exp(self.last_totals)
            S = np.sum(t_exp)
            # d out[i] / d totals: first for every k != i, then the k == i entry.
            d_out_d_t = -t_exp[i] * t_exp / (S ** 2)
            d_out_d_t[i] = t_exp[i] * (S - t_exp[i]) / (S ** 2)
            d_t_d_w = self.last_input
            d_t_d_b = 1
            d_t_d_input = self.weights
            d_L_d_t = gradient * d_out_d_t
            d_L_d_w += d_t_d_w[np.newaxis].T @ d_L_d_t[np.newaxis]
            d_L_d_b += d_L_d_t * d_t_d_b
            d_L_d_input += d_t_d_input @ d_L_d_t
        self.weights -= self.learn_rate * d_L_d_w
        self.biases -= self.learn_rate * d_L_d_b
        return d_L_d_input.reshape(self.last_input_shape)
