"""cnn_ext.saver: the tutorial's ModelSaver API and messages, file-compatible with the
original in both directions, and safe against malicious, corrupt and half-written files.

Model files are relative to the current directory, so every test runs in ``tmp_path``.
Only pure-Python modules are used (no compiled cnn_ext kernels).
"""
import builtins
import codecs
import io
import os
import pickle
import pickletools
import re
import shlex
import subprocess
import types
import warnings
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest

import cnn_ext_reference as ref
from cnn_ext import saver
from cnn_ext.saver import ModelFileError, ModelSaver, load_params, save_params

KEYS = ("conv_filters", "softmax_weights", "softmax_biases")


# ----------------------------------------------------------------------------- helpers

@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def make_layers(num_filters=8, nodes=10, seed=0):
    """Fake conv and softmax layers shaped like the tutorial's MNIST network."""
    rng = np.random.default_rng(seed)
    conv = SimpleNamespace(filters=rng.standard_normal((num_filters, 3, 3)) / 9)
    softmax = SimpleNamespace(
        weights=rng.standard_normal((13 * 13 * num_filters, nodes)) / nodes,
        biases=rng.standard_normal(nodes),
    )
    return conv, softmax


def params_of(conv, softmax):
    return {"conv_filters": conv.filters, "softmax_weights": softmax.weights,
            "softmax_biases": softmax.biases}


def snapshot(conv, softmax):
    return [(layer, attr, getattr(layer, attr), getattr(layer, attr).copy())
            for layer, attr in ((conv, "filters"), (softmax, "weights"), (softmax, "biases"))]


def assert_untouched(snap):
    for layer, attr, obj, copy in snap:
        assert getattr(layer, attr) is obj, f"{attr} was replaced"
        assert np.array_equal(obj, copy), f"{attr} was modified"


def assert_bitwise_equal(a, b):
    assert a.dtype == b.dtype == np.float64
    assert a.shape == b.shape
    assert a.tobytes() == b.tobytes()


def write_pickle(path, obj, protocol=4):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


def globals_in(data):
    """(module, name) of every global a pickle references, as pickle hands them to find_class."""
    seen = set()

    class Recorder(pickle.Unpickler):
        def find_class(self, module, name):
            seen.add((module, name))
            with warnings.catch_warnings():  # NumPy 2 warns about numpy.core.numeric
                warnings.simplefilter("ignore", DeprecationWarning)
                return super().find_class(module, name)

    Recorder(io.BytesIO(data)).load()
    return seen


class NumPy1Pickler(pickle._Pickler):
    """Pickles NumPy arrays as NumPy 1.x did: globals from numpy.core, not numpy._core."""

    def save_global(self, obj, name=None):
        name = name or getattr(obj, "__qualname__", None) or obj.__name__
        module = pickle.whichmodule(obj, name)  # as pickle itself finds it
        if not module.startswith("numpy._core"):
            return super().save_global(obj, name)
        module = "numpy.core" + module[len("numpy._core"):]
        if self.proto >= 4:
            self.save(module)
            self.save(name)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode("ascii"))
        self.memoize(obj)

    # The base class maps Python functions (e.g. protocol 5's _frombuffer) straight to its
    # own save_global; route them through the override above.
    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[types.FunctionType] = save_global


def numpy1_dumps(obj, protocol):
    buf = io.BytesIO()
    NumPy1Pickler(buf, protocol=protocol).dump(obj)
    return buf.getvalue()


class Payload:
    """Pickles as a call of ``func(*args)``: what a malicious model file does."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def payloads(marker):
    """(label, payload object, fragment of the refused global's name)."""
    py_create = f"open({str(marker)!r}, 'w').close()"
    return [
        ("os.system", Payload(os.system, (f"touch {shlex.quote(str(marker))}",)), ".system'"),
        ("builtins.eval", Payload(builtins.eval, (py_create,)), "eval'"),
        ("builtins.exec", Payload(builtins.exec, (py_create,)), "exec'"),
        ("subprocess.Popen", Payload(subprocess.Popen, (["touch", str(marker)],)), "Popen'"),
    ]


PAYLOAD_LABELS = [label for label, _, _ in payloads("x")]


# ---------------------------------------------------------------- original API and messages

def test_default_name_and_filenames():
    assert ModelSaver().model_name == "MNIST_CNN"
    assert ModelSaver().filename == "MNIST_CNN.pkl"
    assert ModelSaver("other").filename == "other.pkl"
    assert ModelSaver("other.npz").filename == "other.npz"
    assert issubclass(ModelFileError, ValueError)
    assert {"ModelSaver", "ModelFileError", "save_params", "load_params"} <= set(saver.__all__)


def test_round_trip_with_messages(workdir, capsys):
    conv, softmax = make_layers()
    ModelSaver().save(conv, None, softmax)
    assert capsys.readouterr().out == "保存参数到MNIST_CNN.pkl\n"
    assert sorted(os.listdir(workdir)) == ["MNIST_CNN.pkl"]

    conv2, softmax2 = make_layers(seed=1)
    assert ModelSaver().load(conv2, None, softmax2) is True
    assert capsys.readouterr().out == "模型参数加载成功\n"
    for loaded, original in zip(params_of(conv2, softmax2).values(),
                                params_of(conv, softmax).values()):
        assert_bitwise_equal(loaded, original)
        assert loaded is not original
        assert loaded.flags.c_contiguous and loaded.flags.writeable


def test_missing_file_returns_false(workdir, capsys):
    conv, softmax = make_layers()
    snap = snapshot(conv, softmax)
    assert ModelSaver("nothing_here").load(conv, None, softmax) is False
    assert capsys.readouterr().out == "无可用模型参数\n"
    assert_untouched(snap)
    with pytest.raises(FileNotFoundError):
        load_params("nothing_here.pkl")


def test_saved_file_is_a_plain_pickle_of_float64_arrays(workdir):
    conv, softmax = make_layers()
    ModelSaver().save(conv, None, softmax)
    raw = (workdir / "MNIST_CNN.pkl").read_bytes()
    assert raw[:2] == b"\x80\x04"  # protocol 4
    data = pickle.loads(raw)
    assert type(data) is dict and list(data) == list(KEYS)
    for value in data.values():
        assert type(value) is np.ndarray and value.dtype == np.float64
    # Only the array machinery of the running NumPy, nothing the restricted loader refuses.
    assert globals_in(raw) <= {("numpy", "ndarray"), ("numpy", "dtype"),
                               (np.ndarray.__reduce__(np.zeros(1))[0].__module__, "_reconstruct")}


# ------------------------------------------------------- compatibility with the original

def test_original_modelsaver_loads_cnn_ext_file(workdir, capsys):
    conv, softmax = ref.Conv3x3(8), ref.Softmax(13 * 13 * 8, 10)
    softmax.biases = np.random.default_rng(3).standard_normal(10)
    ModelSaver().save(conv, ref.MaxPool2(), softmax)

    conv2, softmax2 = ref.Conv3x3(8), ref.Softmax(13 * 13 * 8, 10)
    assert ref.ModelSaver().load(conv2, ref.MaxPool2(), softmax2) is True
    assert_bitwise_equal(conv2.filters, conv.filters)
    assert_bitwise_equal(softmax2.weights, softmax.weights)
    assert_bitwise_equal(softmax2.biases, softmax.biases)


def test_cnn_ext_loads_original_modelsaver_file(workdir, capsys):
    conv, softmax = ref.Conv3x3(8), ref.Softmax(13 * 13 * 8, 10)
    softmax.biases = np.random.default_rng(4).standard_normal(10)
    ref.ModelSaver("tutorial").save(conv, ref.MaxPool2(), softmax)
    assert capsys.readouterr().out == "保存参数到tutorial.pkl\n"

    conv2, softmax2 = ref.Conv3x3(8), ref.Softmax(13 * 13 * 8, 10)
    assert ModelSaver("tutorial").load(conv2, None, softmax2) is True
    assert capsys.readouterr().out == "模型参数加载成功\n"
    assert_bitwise_equal(conv2.filters, conv.filters)
    assert_bitwise_equal(softmax2.weights, softmax.weights)
    assert_bitwise_equal(softmax2.biases, softmax.biases)


LAYOUTS = {
    "C": lambda a: a,
    "F": np.asfortranarray,
    "strided": lambda a: np.repeat(a, 2, axis=-1)[..., ::2],
    "big-endian": lambda a: a.astype(">f8"),
}


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_every_pickle_protocol_and_layout_loads(workdir, protocol, layout):
    # Protocols 0-2 add _codecs.encode, protocol 5 numpy._core.numeric._frombuffer (and
    # read-only arrays): the restricted loader must admit exactly what NumPy emits.
    conv, softmax = make_layers()
    params = {k: LAYOUTS[layout](v) for k, v in params_of(conv, softmax).items()}
    write_pickle("m.pkl", params, protocol=protocol)
    loaded = load_params("m.pkl")
    for key in KEYS:
        assert_bitwise_equal(loaded[key], np.ascontiguousarray(params[key], dtype=np.float64))
        assert loaded[key].flags.c_contiguous and loaded[key].flags.writeable


@pytest.mark.parametrize("protocol", [0, 2])
def test_numpy1_style_pickle_by_byte_replacement(workdir, protocol):
    # Protocols 0-2 write globals as text, so renaming the module keeps the pickle valid.
    # For protocol 2 this is byte-identical to what NumPy 1.24/1.26 write.
    conv, softmax = make_layers()
    raw = pickle.dumps(params_of(conv, softmax), protocol=protocol)
    raw = raw.replace(b"numpy._core", b"numpy.core")
    assert b"numpy.core.multiarray\n_reconstruct" in raw and b"numpy._core" not in raw
    (workdir / "MNIST_CNN.pkl").write_bytes(raw)

    conv2, softmax2 = make_layers(seed=1)
    assert ModelSaver().load(conv2, None, softmax2) is True
    for key, value in params_of(conv2, softmax2).items():
        assert_bitwise_equal(value, params_of(conv, softmax)[key])


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_numpy1_style_pickle_any_protocol(workdir, protocol):
    conv, softmax = make_layers()
    raw = numpy1_dumps(params_of(conv, softmax), protocol)
    modules = {module for module, _ in globals_in(raw)}
    assert not any(m.startswith("numpy._core") for m in modules)
    assert any(m.startswith("numpy.core") for m in modules)
    (workdir / "old.pkl").write_bytes(raw)
    loaded = load_params("old.pkl")
    for key, value in params_of(conv, softmax).items():
        assert_bitwise_equal(loaded[key], value)


# ----------------------------------------------------------------------- malicious files

def test_payloads_are_live_under_plain_pickle(tmp_path):
    # Control: the eval payload really creates the marker with the unrestricted pickle.load
    # that the tutorial uses, so the refusals below are meaningful.
    marker = tmp_path / "control"
    payload = dict((label, p) for label, p, _ in payloads(marker))["builtins.eval"]
    pickle.loads(pickle.dumps(payload))
    assert marker.exists()


def malicious_files(marker, payload):
    """Ways to smuggle a payload into an otherwise valid-looking model file."""
    conv, softmax = make_layers()
    params = params_of(conv, softmax)
    as_value = dict(params, softmax_biases=payload)
    inside_object_array = dict(params, conv_filters=np.array([payload, 1.0], dtype=object))
    return {
        "as a value": pickle.dumps(as_value, protocol=4),
        "as a value, protocol 2": pickle.dumps(as_value, protocol=2),
        "as a value, protocol 0": pickle.dumps(as_value, protocol=0),
        "top level": pickle.dumps(payload, protocol=4),
        "as a dict key": pickle.dumps({payload: 1, **params}, protocol=4),
        "inside an object array": pickle.dumps(inside_object_array, protocol=4),
    }


@pytest.mark.parametrize("label", PAYLOAD_LABELS)
def test_malicious_pickle_is_refused(workdir, label, capsys):
    marker = workdir / "pwned"
    (_, payload, fragment), = [p for p in payloads(marker) if p[0] == label]
    conv, softmax = make_layers()
    snap = snapshot(conv, softmax)
    for how, raw in malicious_files(marker, payload).items():
        (workdir / "MNIST_CNN.pkl").write_bytes(raw)
        with pytest.raises(ModelFileError) as info:
            ModelSaver().load(conv, None, softmax)
        message = str(info.value)
        assert "MNIST_CNN.pkl" in message, how
        if how == "inside an object array":
            # refused before the payload is even reached: model arrays are never objects
            assert "refused an array of dtype object" in message, (how, message)
        else:
            assert "refused to load global" in message and fragment in message, (how, message)
        assert not marker.exists(), how
        assert_untouched(snap)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("module, name", [
    ("builtins", "getattr"), ("builtins", "__import__"), ("builtins", "open"),
    ("builtins", "compile"), ("__builtin__", "eval"), ("builtins", "setattr"),
    ("os", "system"), ("pickle", "loads"), ("numpy", "load"), ("numpy", "frombuffer"),
    ("numpy.testing._private.utils", "runstring"), ("copyreg", "__newobj__"),
    ("collections", "OrderedDict"), ("conv", "Conv3x3x"), ("os", "Conv3x3 "),
])
def test_other_globals_are_refused(workdir, module, name):
    # A bare GLOBAL opcode: refused at lookup, before anything could be called.
    (workdir / "g.pkl").write_bytes(b"c" + f"{module}\n{name}\n".encode() + b".")
    expected = f"refused to load global '{module}.{name}'"
    with pytest.raises(ModelFileError, match=re.escape(expected)):
        load_params("g.pkl")


def test_codecs_encode_only_for_latin1(workdir):
    # Protocol-2 pickles need _codecs.encode(text, 'latin1'); any other codec is refused.
    raw = pickle.dumps(Payload(codecs.encode, ("abc", "rot13")), protocol=2)
    assert b"_codecs\nencode" in raw
    (workdir / "c.pkl").write_bytes(raw)
    with pytest.raises(ModelFileError, match="rot13"):
        load_params("c.pkl")


# ------------------------------------------------------------------ validation on load

def bad_models():
    """label -> (object to pickle, fragment of the expected message)."""
    conv, softmax = make_layers()
    good = params_of(conv, softmax)
    conv16, softmax16 = make_layers(num_filters=16)
    return {
        "16 filters into 8": (
            params_of(conv16, softmax16),
            "'conv_filters' has shape (16, 3, 3) but the layer expects (8, 3, 3)"),
        "weights for other nodes": (
            dict(good, softmax_weights=np.zeros((1352, 5)), softmax_biases=np.zeros(5)),
            "'softmax_weights' has shape (1352, 5) but the layer expects (1352, 10)"),
        "object array": (dict(good, conv_filters=good["conv_filters"].astype(object)),
                         "dtype object"),
        "complex": (dict(good, softmax_weights=good["softmax_weights"] + 1j), "complex128"),
        "strings": (dict(good, softmax_biases=np.full(10, "x")), "<U1"),
        "bytes": (dict(good, softmax_biases=np.full(10, b"x")), "|S1"),
        "bool": (dict(good, softmax_biases=np.ones(10, dtype=bool)), "dtype bool"),
        "missing key": ({k: v for k, v in good.items() if k != "softmax_biases"},
                        "missing key(s) 'softmax_biases'"),
        "extra key": (dict(good, learn_rate=0.01), "unexpected key(s) 'learn_rate'"),
        "list": (list(good.values()), "expected a dict"),
        "bare array": (good["conv_filters"], "found ndarray"),
        "None": (None, "found NoneType"),
        "value is a list": (dict(good, softmax_biases=[0.0] * 10), "must be a NumPy array"),
        "scalar value": (dict(good, softmax_biases=np.float64(0)), "must be a NumPy array"),
        "2-D filters": (dict(good, conv_filters=np.zeros((8, 9))), "(num_filters, 3, 3)"),
        "biases vs weights": (dict(good, softmax_biases=np.zeros(11)), "(nodes,)"),
        "NaN": (dict(good, softmax_weights=np.where(good["softmax_weights"] > 0, np.nan, 0.0)),
                "non-finite"),
        "inf": (dict(good, conv_filters=np.full((8, 3, 3), np.inf)), "non-finite"),
    }


@pytest.mark.parametrize("label", list(bad_models()))
def test_invalid_contents_are_refused(workdir, label, capsys):
    obj, fragment = bad_models()[label]
    write_pickle("MNIST_CNN.pkl", obj)
    conv, softmax = make_layers()
    snap = snapshot(conv, softmax)
    with pytest.raises(ModelFileError) as info:
        ModelSaver().load(conv, None, softmax)
    assert str(info.value).startswith("MNIST_CNN.pkl: ")
    assert fragment in str(info.value)
    assert info.value.filename == "MNIST_CNN.pkl"
    assert_untouched(snap)
    assert capsys.readouterr().out == ""


def test_zero_size_array_at_protocol_2_is_a_shape_error(workdir):
    # Protocol 2 spells empty bytes as __builtin__.bytes(): admitted, so the file fails
    # validation with a useful message instead of a refused global.
    good = params_of(*make_layers())
    raw = pickle.dumps(dict(good, conv_filters=np.zeros((0, 3, 3))), protocol=2)
    assert b"__builtin__\nbytes" in raw
    (workdir / "m.pkl").write_bytes(raw)
    with pytest.raises(ModelFileError, match=re.escape("(num_filters, 3, 3), found (0, 3, 3)")):
        load_params("m.pkl")


def corrupt_files():
    conv, softmax = make_layers()
    good = pickle.dumps(params_of(conv, softmax), protocol=4)
    return {
        "empty": (b"", "the file is empty"),
        "random bytes": (np.random.default_rng(0).bytes(4096), "not a readable model pickle"),
        "text": (b"hello world\n", "not a readable model pickle"),
        "truncated to half": (good[:len(good) // 2], "not a readable model pickle"),
        "truncated by one byte": (good[:-1], "not a readable model pickle"),
        "only the header": (good[:2], "not a readable model pickle"),
        "npz under .pkl name": (None, "give it a .npz suffix"),
    }


@pytest.mark.parametrize("label", list(corrupt_files()))
def test_corrupt_files_raise_model_file_error(workdir, label):
    raw, fragment = corrupt_files()[label]
    if raw is None:
        save_params("real.npz", *params_of(*make_layers()).values())
        raw = (workdir / "real.npz").read_bytes()
    (workdir / "MNIST_CNN.pkl").write_bytes(raw)
    conv, softmax = make_layers()
    snap = snapshot(conv, softmax)
    with pytest.raises(ModelFileError) as info:
        ModelSaver().load(conv, None, softmax)
    assert type(info.value) is ModelFileError  # not a raw UnpicklingError/EOFError/...
    assert "MNIST_CNN.pkl" in str(info.value) and fragment in str(info.value)
    assert_untouched(snap)


def test_load_params_returns_fresh_float64_arrays(workdir):
    conv, softmax = make_layers()
    params = {"conv_filters": (conv.filters * 100).astype(np.int32),
              "softmax_weights": softmax.weights.astype(np.float32),
              "softmax_biases": np.arange(10, dtype=np.uint8)}
    write_pickle("m.pkl", params, protocol=5)
    loaded = load_params("m.pkl")
    assert list(loaded) == list(KEYS)
    for key in KEYS:
        assert loaded[key].dtype == np.float64
        assert loaded[key].flags.c_contiguous and loaded[key].flags.writeable
        np.testing.assert_array_equal(loaded[key], params[key])


def test_setter_failure_leaves_layers_untouched(workdir):
    conv, softmax = make_layers()
    ModelSaver().save(conv, None, softmax)

    class StrictSoftmax:
        def __init__(self):
            self.weights = np.zeros((1352, 10))
            self._biases = np.zeros(10)

        @property
        def biases(self):
            return self._biases

        @biases.setter
        def biases(self, value):
            if value is not self._biases:  # accepts only the rollback
                raise RuntimeError("refused")
            self._biases = value

    conv2, _ = make_layers(seed=1)
    strict = StrictSoftmax()
    filters, weights = conv2.filters, strict.weights
    with pytest.raises(RuntimeError):
        ModelSaver().load(conv2, None, strict)
    assert conv2.filters is filters and strict.weights is weights


# --------------------------------------------------------------------------- saving

@pytest.mark.parametrize("label, change, fragment", [
    ("NaN", lambda p: p["softmax_biases"].__setitem__(0, np.nan), "non-finite"),
    ("complex", lambda p: p.__setitem__("conv_filters", p["conv_filters"] + 0j), "complex128"),
    ("5x5 filters", lambda p: p.__setitem__("conv_filters", np.zeros((8, 5, 5))),
     "(num_filters, 3, 3)"),
    ("biases vs weights", lambda p: p.__setitem__("softmax_biases", np.zeros(3)), "(nodes,)"),
    ("None", lambda p: p.__setitem__("softmax_weights", None), "dtype object"),
    ("ragged", lambda p: p.__setitem__("softmax_biases", [[1.0], [1.0, 2.0]]), "not an array"),
])
@pytest.mark.parametrize("filename", ["m.pkl", "m.npz"])
def test_save_validates_first(workdir, label, change, fragment, filename):
    params = {k: v.copy() for k, v in params_of(*make_layers()).items()}
    change(params)
    with pytest.raises(ModelFileError) as info:
        save_params(filename, *params.values())
    assert str(info.value).startswith(f"cannot save {filename}: ") and fragment in str(info.value)
    assert os.listdir(workdir) == []


def test_save_accepts_other_real_dtypes(workdir):
    conv, softmax = make_layers()
    save_params("m.pkl", conv.filters.astype(np.float32), softmax.weights, [0] * 10)
    data = pickle.loads((workdir / "m.pkl").read_bytes())
    assert all(v.dtype == np.float64 for v in data.values())
    assert_bitwise_equal(data["conv_filters"], conv.filters.astype(np.float32).astype(np.float64))


def failing_pickle_dump(exc):
    def dump(obj, f, protocol=None):
        f.write(b"\x80\x04\x95partial model data")  # some bytes reach the file first
        raise exc
    return dump


@pytest.mark.parametrize("filename", ["MNIST_CNN.pkl", "MNIST_CNN.npz"])
@pytest.mark.parametrize("failure", ["replace", "fsync", "write", "interrupt"])
def test_interrupted_save_keeps_old_model(workdir, monkeypatch, filename, failure):
    old_conv, old_softmax = make_layers(seed=1)
    save_params(filename, *params_of(old_conv, old_softmax).values())
    old_bytes = (workdir / filename).read_bytes()

    exc = KeyboardInterrupt() if failure == "interrupt" else OSError(28, "No space left")
    conv, softmax = make_layers(seed=2)
    with monkeypatch.context() as patch:  # undone on exit, unlike the fixture's chdir
        if failure == "replace":
            patch.setattr(os, "replace", lambda *a, **k: (_ for _ in ()).throw(exc))
        elif failure == "fsync":
            patch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(exc))
        elif filename.endswith(".npz"):
            real_savez = np.savez

            def savez(f, **arrays):
                real_savez(f, **arrays)
                f.truncate(f.tell() // 2)  # half the archive reached the disk, then the crash
                raise exc
            patch.setattr(np, "savez", savez)
        else:
            patch.setattr(pickle, "dump", failing_pickle_dump(exc))
        with pytest.raises(type(exc)):
            save_params(filename, *params_of(conv, softmax).values())

    assert sorted(os.listdir(workdir)) == [filename]  # no temporary file left behind
    assert (workdir / filename).read_bytes() == old_bytes
    loaded = load_params(filename)
    assert_bitwise_equal(loaded["conv_filters"], old_conv.filters)


def test_interrupted_first_save_leaves_nothing(workdir, monkeypatch, capsys):
    monkeypatch.setattr(pickle, "dump", failing_pickle_dump(RuntimeError("crash")))
    conv, softmax = make_layers()
    with pytest.raises(RuntimeError):
        ModelSaver().save(conv, None, softmax)
    assert os.listdir(workdir) == []
    assert capsys.readouterr().out == ""


def test_save_writes_a_dot_temp_file_in_the_same_folder(workdir, monkeypatch):
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append((os.fspath(src), os.fspath(dst)))
        return real_replace(src, dst)
    monkeypatch.setattr(os, "replace", spy)
    sub = workdir / "models"
    sub.mkdir()
    save_params(os.path.join("models", "m.pkl"), *params_of(*make_layers()).values())
    (src, dst), = seen
    assert os.path.dirname(src) == os.path.dirname(dst) == os.path.realpath(sub)
    assert os.path.basename(src).startswith(".")
    assert os.listdir(sub) == ["m.pkl"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_save_keeps_usual_permissions(workdir):
    umask = os.umask(0o022)
    os.umask(umask)
    params = params_of(*make_layers()).values()
    save_params("new.pkl", *params)
    assert (workdir / "new.pkl").stat().st_mode & 0o777 == 0o666 & ~umask
    os.chmod("new.pkl", 0o640)
    save_params("new.pkl", *params)
    assert (workdir / "new.pkl").stat().st_mode & 0o777 == 0o640


@pytest.mark.skipif(not hasattr(os, "symlink") or os.name != "posix", reason="symlinks")
def test_save_through_symlink_updates_target(workdir):
    (workdir / "store").mkdir()
    os.symlink(os.path.join("store", "real.pkl"), "MNIST_CNN.pkl")
    conv, softmax = make_layers()
    ModelSaver().save(conv, None, softmax)
    assert os.path.islink("MNIST_CNN.pkl")
    assert_bitwise_equal(load_params("store/real.pkl")["conv_filters"], conv.filters)


# ------------------------------------------------------------------------------ .npz

def test_npz_round_trip(workdir, capsys):
    conv, softmax = make_layers()
    ModelSaver("MNIST_CNN.npz").save(conv, None, softmax)
    assert capsys.readouterr().out == "保存参数到MNIST_CNN.npz\n"
    assert os.listdir(workdir) == ["MNIST_CNN.npz"]
    assert zipfile.is_zipfile(workdir / "MNIST_CNN.npz")
    with np.load(workdir / "MNIST_CNN.npz", allow_pickle=False) as npz:
        assert set(npz.files) == {*KEYS, "format_version"}
        assert npz["format_version"].shape == () and int(npz["format_version"]) == 1
        assert all(npz[k].dtype == np.float64 for k in KEYS)

    conv2, softmax2 = make_layers(seed=1)
    assert ModelSaver("MNIST_CNN.npz").load(conv2, None, softmax2) is True
    assert capsys.readouterr().out == "模型参数加载成功\n"
    for key, value in params_of(conv2, softmax2).items():
        assert_bitwise_equal(value, params_of(conv, softmax)[key])


def test_npz_is_read_without_pickle(workdir, monkeypatch):
    save_params("m.npz", *params_of(*make_layers()).values())
    calls = []
    real_load = np.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("allow_pickle"))
        return real_load(*args, **kwargs)
    monkeypatch.setattr(np, "load", spy)
    load_params("m.npz")
    assert calls == [False]


def write_npz(path, version=1, **arrays):
    if version is not None:
        arrays["format_version"] = np.asarray(version)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize("change, fragment", [
    (dict(version=2), "unsupported format_version 2"),
    (dict(version=0), "unsupported format_version 0"),
    (dict(version="1"), "unsupported format_version '1'"),
    (dict(version=[1]), "unsupported format_version [1]"),
    (dict(version=1.0), "unsupported format_version 1.0"),
    (dict(version=None), "no 'format_version' entry"),
    (dict(conv_filters=np.zeros((16, 3, 3))),
     "has shape (16, 3, 3) but the layer expects (8, 3, 3)"),
    (dict(extra=np.zeros(1)), "unexpected key(s) 'extra'"),
    (dict(softmax_biases=np.zeros(10, dtype=complex)), "complex128"),
    (dict(conv_filters=np.zeros((8, 3, 3), dtype=object)), "object arrays"),
])
def test_npz_bad_contents_are_refused(workdir, change, fragment):
    conv, softmax = make_layers()
    arrays = dict(params_of(conv, softmax))
    version = change.pop("version", 1)
    arrays.update(change)
    write_npz("MNIST_CNN.npz", version, **arrays)
    snap = snapshot(conv, softmax)
    with pytest.raises(ModelFileError) as info:
        ModelSaver("MNIST_CNN.npz").load(conv, None, softmax)
    assert str(info.value).startswith("MNIST_CNN.npz: ") and fragment in str(info.value)
    assert_untouched(snap)


def test_npz_object_array_payload_never_runs(workdir):
    marker = workdir / "pwned"
    conv, softmax = make_layers()
    payload = dict((label, p) for label, p, _ in payloads(marker))["builtins.eval"]
    arrays = dict(params_of(conv, softmax), conv_filters=np.array([payload], dtype=object))
    write_npz("MNIST_CNN.npz", **arrays)  # np.savez pickles object arrays into the archive
    with pytest.raises(ModelFileError, match="object arrays"):
        load_params("MNIST_CNN.npz")
    assert not marker.exists()


@pytest.mark.parametrize("content, fragment", [
    (b"", "the file is empty"),
    (b"\x80\x04garbage", "looks like a pickle"),
    (b"hello", "not a .npz archive"),
    ("truncated", "not a readable .npz model"),
    ("npy", "not a .npz archive"),
])
def test_npz_corrupt_files(workdir, content, fragment):
    if content == "truncated":
        save_params("good.npz", *params_of(*make_layers()).values())
        content = (workdir / "good.npz").read_bytes()[:300]
    elif content == "npy":
        buf = io.BytesIO()
        np.save(buf, np.zeros(3))
        content = buf.getvalue()
    (workdir / "m.npz").write_bytes(content)
    with pytest.raises(ModelFileError) as info:
        load_params("m.npz")
    assert type(info.value) is ModelFileError and fragment in str(info.value)


def test_pickle_format_does_not_read_npz_by_content(workdir):
    # The format follows the name: a pickle is never parsed as npz and vice versa.
    conv, softmax = make_layers()
    save_params("m.pkl", *params_of(conv, softmax).values())
    os.rename("m.pkl", "m.npz")
    with pytest.raises(ModelFileError, match="looks like a pickle"):
        load_params("m.npz")


def test_saved_pickle_ends_at_stop(workdir):
    # The saved pickle disassembles cleanly and ends exactly at STOP (no trailing data).
    save_params("m.pkl", *params_of(*make_layers()).values())
    raw = (workdir / "m.pkl").read_bytes()
    ops = list(pickletools.genops(raw))
    assert ops[0][0].name == "PROTO" and ops[0][1] == saver.PICKLE_PROTOCOL
    assert ops[-1][0].name == "STOP" and ops[-1][2] == len(raw) - 1
