import numpy as np


class Conv3x3:
    """Convolution layer with ``num_filters`` 3x3 filters (valid padding, stride 1).

    ``forward``: (h, w) -> (h-2, w-2, num_filters); ``backprop`` updates ``filters`` and
    returns ``None`` (it is the first layer).
    """

    def __init__(self, num_filters, learn_rate=0.01):
        self.num_filters = num_filters
        self.filters = np.random.randn(num_filters, 3, 3) / 9
        self.last_input = None
        self.learn_rate = learn_rate

    def iterate_regions(self, image):
        # Every 3x3 region that the filters can cover.
        h, w = image.shape
        for i in range(h - 2):
            for j in range(w - 2):
                im_region = image[i:(i + 3), j:(j + 3)]
                yield im_region, i, j

    def forward(self, input):
        self.last_input = input
        h, w = input.shape
        output = np.zeros((h - 2, w - 2, self.num_filters))
        for im_region, i, j in self.iterate_regions(input):
            output[i, j] = np.sum(im_region * self.filters, axis=(1, 2))
        return output

    def backprop(self, d_L_d_out):
        d_L_d_filters = np.zeros(self.filters.shape)
        for im_region, i, j in self.iterate_regions(self.last_input):
            for f in range(self.num_filters):
                d_L_d_filters[f] += d_L_d_out[i, j, f] * im_region
        self.filters -= self.learn_rate * d_L_d_filters
        return None
