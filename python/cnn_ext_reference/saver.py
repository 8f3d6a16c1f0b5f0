import pickle


class ModelSaver:
    """The tutorial's ModelSaver: pickles the three weight arrays to ``{model_name}.pkl``.

    Kept verbatim for comparison and compatibility tests. It calls ``pickle.load`` on the
    file, which can run code from a malicious file: use ``cnn_ext.ModelSaver`` instead.
    """

    def __init__(self, model_name='MNIST_CNN'):
        self.model_name = model_name

    def save(self, conv, pool, softmax):
        data = {
            'conv_filters': conv.filters,
            'softmax_weights': softmax.weights,
            'softmax_biases': softmax.biases
        }
        filename = f'{self.model_name}.pkl'
        with open(filename, 'wb') as f:
            pickle.dump(data, f)
        print(f"保存参数到{filename}")

    def load(self, conv, pool, softmax):
        filename = f'{self.model_name}.pkl'
        try:
            with open(filename, 'rb') as f:
                data = pickle.load(f)
            conv.filters = data['conv_filters']
            softmax.weights = data['softmax_weights']
            softmax.biases = data['softmax_biases']
            print("模型参数加载成功")
            return True
        except FileNotFoundError:
            print("无可用模型参数")
            return False
