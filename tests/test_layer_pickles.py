"""Models saved as pickled layer objects (``pickle.dump([conv, pool, softmax], f)``), as
learners' copies of the tutorials save them: loaded safely, as records, never as objects."""
import pickle
import re
import pickletools
import sys
import types

import numpy as np
import pytest

import cnn_ext
from cnn_ext import _safe_pickle
from cnn_ext.saver import ModelFileError, load_params


def learner_module(name="conv"):
    """A learner's layer classes, defined in a module of their own (as their conv.py,
    maxpool.py, softmax.py are), with the English original's attributes."""
    module = types.ModuleType(name)
    exec('''
import numpy as np
class Conv3x3:
    def __init__(self, num_filters):
        self.num_filters = num_filters
        self.filters = np.random.randn(num_filters, 3, 3) / 9
class MaxPool2:
    pass
class Softmax:
    def __init__(self, input_len, nodes):
        self.weights = np.random.randn(input_len, nodes) / input_len
        self.biases = np.zeros(nodes)
''', module.__dict__)
    sys.modules[name] = module
    return module


@pytest.fixture
def trained_layers():
    module = learner_module()
    np.random.seed(3)
    conv, pool, softmax = module.Conv3x3(8), module.MaxPool2(), module.Softmax(13 * 13 * 8, 10)
    softmax.biases += np.linspace(-1, 1, 10)
    # state a trained layer carries besides its parameters
    conv.last_input = np.random.rand(28, 28)
    pool.last_input = np.random.rand(26, 26, 8)
    softmax.last_input_shape, softmax.last_totals = (13, 13, 8), np.random.rand(10)
    yield conv, pool, softmax
    del sys.modules["conv"]


CONTAINERS = {
    "list": lambda c, p, s: [c, p, s],
    "tuple": lambda c, p, s: (c, p, s),
    "dict": lambda c, p, s: {"conv": c, "pool": p, "softmax": s},
    "no pool": lambda c, p, s: [c, s],
    "dict with an epoch": lambda c, p, s: {"conv": c, "pool": p, "softmax": s, "epoch": 3},
}


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("container", CONTAINERS)
def test_pickled_layers_load(tmp_path, trained_layers, container, protocol):
    conv, pool, softmax = trained_layers
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(CONTAINERS[container](conv, pool, softmax), protocol=protocol))
    params = load_params(path)
    np.testing.assert_array_equal(params["conv_filters"], conv.filters)
    np.testing.assert_array_equal(params["softmax_weights"], softmax.weights)
    np.testing.assert_array_equal(params["softmax_biases"], softmax.biases)


def test_model_saver_and_the_network_use_them(tmp_path, trained_layers, monkeypatch, mnist):
    conv, pool, softmax = trained_layers
    monkeypatch.chdir(tmp_path)
    with open("MNIST_CNN.pkl", "wb") as f:
        pickle.dump([conv, pool, softmax], f)
    layers = cnn_ext.Conv3x3(8), cnn_ext.MaxPool2(), cnn_ext.Softmax(13 * 13 * 8, 10)
    assert cnn_ext.ModelSaver().load(*layers)
    np.testing.assert_array_equal(layers[0].filters, conv.filters)
    np.testing.assert_array_equal(layers[2].biases, softmax.biases)
    # the same digits as the learner's own layers' arithmetic
    (_, _), (x_test, _) = mnist
    net = cnn_ext.Network(conv=layers[0], softmax=layers[2])
    predicted = net.predict(x_test[:200])
    for image, digit in zip(x_test[:200], predicted):
        out = layers[2].forward(layers[1].forward(layers[0].forward((image / 255) - 0.5)))
        assert np.argmax(out) == digit


def test_cnn_ext_layer_objects_load_too(tmp_path):
    np.random.seed(0)
    from cnn_ext.cnn_from_scratch import Conv3x3, MaxPool2, Softmax
    layers = Conv3x3(4), MaxPool2(), Softmax(13 * 13 * 4, 10)
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(list(layers)))
    params = load_params(path)
    np.testing.assert_array_equal(params["conv_filters"], layers[0].filters)


def test_nothing_of_the_class_runs(tmp_path, trained_layers):
    conv, pool, softmax = trained_layers
    ran = []
    module = sys.modules["conv"]
    module.Conv3x3.__setstate__ = lambda self, state: ran.append("setstate")
    module.Conv3x3.__new__ = lambda cls, *a: ran.append("new") or object.__new__(cls)
    raw = pickle.dumps([conv, pool, softmax])
    del sys.modules["conv"]  # a module the loader could not even import
    path = tmp_path / "m.pkl"
    path.write_bytes(raw)
    assert load_params(path)["conv_filters"].shape == (8, 3, 3)
    assert ran == [] and "conv" not in sys.modules
    sys.modules["conv"] = module
    record = _safe_pickle.loads(raw)[0]
    assert type(record) is _safe_pickle.PickledLayer and record.name == "Conv3x3"
    assert record.module == "conv" and set(record.state) == {"num_filters", "filters", "last_input"}


# ----------------------------------------------------------------------- refused files

def refused(tmp_path, raw, match):
    path = tmp_path / "m.pkl"
    path.write_bytes(raw)
    with pytest.raises(ModelFileError, match=match):
        load_params(path)


def test_wrong_sets_of_layers_are_refused_saying_what_the_file_holds(tmp_path, trained_layers):
    conv, pool, softmax = trained_layers
    refused(tmp_path, pickle.dumps([conv, pool]),
            r"holds a Conv3x3 object, a MaxPool2 object; a model of layer objects needs exactly "
            r"one Conv3x3 and one Softmax .*save it again with cnn_ext.ModelSaver")
    refused(tmp_path, pickle.dumps([conv, softmax, softmax]), r"a Softmax object, a Softmax object")
    refused(tmp_path, pickle.dumps([conv, pool, pool, softmax]), r"at most one MaxPool2")
    refused(tmp_path, pickle.dumps([conv, softmax, np.zeros(3)]),
            r"together with an array of shape \(3,\)")
    refused(tmp_path, pickle.dumps({"layers": [conv, softmax]}),
            r"missing key\(s\) 'conv_filters'")
    del conv.filters
    refused(tmp_path, pickle.dumps([conv, softmax]),
            r"the pickled conv.Conv3x3 object has no 'filters' \(its attributes: last_input, num_filters\)")


def test_bad_arrays_in_layers_are_refused(tmp_path, trained_layers):
    conv, pool, softmax = trained_layers
    conv.filters[0, 0, 0] = np.nan
    refused(tmp_path, pickle.dumps([conv, pool, softmax]), r"'conv_filters' contains 1 non-finite")
    conv.filters = np.zeros((8, 3, 4))
    refused(tmp_path, pickle.dumps([conv, pool, softmax]), r"'conv_filters' must have shape \(num_filters, 3, 3\)")
    conv.filters = np.zeros((8, 3, 3))
    softmax.weights = np.zeros((13 * 13 * 8, 10), dtype=complex)
    refused(tmp_path, pickle.dumps([conv, pool, softmax]), r"refused an array of dtype complex128")


def test_other_classes_are_refused_even_beside_layers(tmp_path, trained_layers):
    conv, pool, softmax = trained_layers

    class Conv3x3Extended:  # not one of the tutorials' names
        pass
    Conv3x3Extended.__module__ = "conv"
    Conv3x3Extended.__qualname__ = "Conv3x3Extended"
    sys.modules["conv"].Conv3x3Extended = Conv3x3Extended
    refused(tmp_path, pickle.dumps([conv, softmax, Conv3x3Extended()]),
            r"refused to load global 'conv.Conv3x3Extended'")


def hand_made(*ops):
    return b"".join(ops)


def test_hostile_layer_pickles_are_refused(tmp_path):
    G = lambda module, name: b"c" + f"{module}\n{name}\n".encode()
    cases = {
        # NEWOBJ with arguments: a class's __new__ could run with them
        "args": (hand_made(b"\x80\x02", G("conv", "Conv3x3"), b"K\x01\x85\x81."),
                 "refused to create an object"),
        # NEWOBJ of any other class (os.system is refused at the global already)
        "newobj dtype": (hand_made(b"\x80\x02", G("numpy", "dtype"), b")\x81."),
                         "refused to create an object"),
        # calling the class (REDUCE) instead of creating it
        "reduce": (hand_made(G("conv", "Conv3x3"), b"(K\x01tR."), "refused to call conv.Conv3x3"),
        # a state that is not a dict of attributes
        "list state": (hand_made(b"\x80\x02", G("conv", "Conv3x3"), b")\x81]b."),
                       "refused state for a Conv3x3 object"),
        "non-str keys": (hand_made(b"\x80\x02", G("conv", "Conv3x3"), b")\x81}K\x01K\x02sb."),
                         "refused state for a Conv3x3 object"),
        # BUILD twice: the state is set once
        "two builds": (hand_made(b"\x80\x02", G("conv", "Conv3x3"), b")\x81}b}b."),
                       "refused state for a Conv3x3 object"),
        # copyreg._reconstructor used for anything but (layer class, object, None)
        "reconstructor base": (hand_made(G("copy_reg", "_reconstructor"), b"(", G("conv", "Conv3x3"),
                                         G("numpy", "dtype"), b"NtR."),
                               "refused copyreg._reconstructor"),
        "reconstructor state": (hand_made(G("copy_reg", "_reconstructor"), b"(", G("conv", "Conv3x3"),
                                          G("__builtin__", "object"), b"I1\ntR."),
                                "refused copyreg._reconstructor"),
        "reconstructor class": (hand_made(G("copy_reg", "_reconstructor"), b"(", G("numpy", "ndarray"),
                                          G("__builtin__", "object"), b"NtR."),
                                "refused copyreg._reconstructor"),
        # object is a stand-in, not callable
        "object call": (hand_made(G("builtins", "object"), b")R."), "not a readable model pickle"),
        # a module name that is not a dotted name
        "module path": (hand_made(G("../conv", "Conv3x3"), b"."), "refused to load global '../conv.Conv3x3'"),
    }
    for name, (raw, match) in cases.items():
        list(pickletools.genops(raw))  # each is a well-formed pickle: the refusal is the point
        refused(tmp_path, raw, match)


def test_a_layer_state_cannot_smuggle_a_huge_array(tmp_path, trained_layers):
    # an array inside a layer's state that claims more data than the file holds is refused
    conv, pool, softmax = trained_layers
    conv.filters = np.zeros((4, 3, 3))
    del conv.last_input
    raw = pickle.dumps([conv, softmax], protocol=2)
    bad = raw.replace(b"K\x04K\x03K\x03\x87", b"J\x00\x00\x00\x10K\x03K\x03\x87")
    assert bad != raw
    refused(tmp_path, bad, "refused array state that does not match its data")


def test_a_state_dict_changed_after_its_check_is_not_what_the_record_keeps(tmp_path):
    # BUILD sets a layer's dict; the same dict, fetched from the memo, gets a non-str key
    # afterwards. The record keeps a copy of what was checked: a clean refusal follows.
    raw = (b"\x80\x02]q\x00(cconv\nConv3x3\nq\x01)\x81q\x02}q\x03b"
           b"h\x03K\x01K\x02se.")
    list(pickletools.genops(raw))
    record = _safe_pickle.loads(raw)[0]
    assert record.state == {} and repr(record) == "<pickled conv.Conv3x3 with no attributes>"
    refused(tmp_path, raw, "holds layer objects together with a dict")  # a ModelFileError, not a TypeError
