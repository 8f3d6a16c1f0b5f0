import numpy as np


class Softmax:
    """The English original's dense + softmax layer: any input shape -> (nodes,).

    Weights are ``randn(input_len, nodes) / input_len``. ``forward`` does not shift the
    totals before ``exp``. ``backprop(d_L_d_out, learn_rate)`` finds the first non-zero
    entry of ``d_L_d_out``, updates the weights and biases for it alone and returns the
    input gradient computed with the weights from before the update; with no non-zero
    entry it changes nothing and returns ``None``, as the original does.
    """

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
            # d out[i] / d totals: -e_i e_k / S^2 for k != i, e_i (S - e_i) / S^2 for k == i
            d_out_d_t = -t_exp[i] * t_exp / (S ** 2)
            d_out_d_t[i] = t_exp[i] * (S - t_exp[i]) / (S ** 2)
            d_L_d_t = gradient * d_out_d_t
            d_L_d_w = self.last_input[np.newaxis].T @ d_L_d_t[np.newaxis]
            d_L_d_b = d_L_d_t
            d_L_d_input = self.weights @ d_L_d_t  # before the update
            self.weights -= learn_rate * d_L_d_w
            self.biases -= learn_rate * d_L_d_b
            return d_L_d_input.reshape(self.last_input_shape)
        return None
