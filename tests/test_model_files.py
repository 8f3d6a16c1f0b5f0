"""Model files: names, places, overwrites, non-regular paths and resource bounds.

* names ending in .pkl/.npz are taken literally (ModelSaver, model_filename);
* check_writable and save_params give one-line ModelWriteErrors and leave no files;
* temporary files of killed saves are removed by the next save, in-flight ones are not;
* load refuses directories, FIFOs and devices without blocking, and files over the cap;
* the pickle pre-scan is lazy, and declared shapes are bounded before arrays are built.

Hangs and memory bombs run in a child interpreter, with a timeout and an address-space
limit, so a regression fails the test instead of hanging or exhausting the machine.
"""
import errno
import io
import os
import pickle
import signal
import stat
import subprocess
import sys
import textwrap
import time
import tracemalloc
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import cnn_ext
from cnn_ext import ModelSaver, saver
from cnn_ext.saver import (MAX_MODEL_BYTES, ModelFileError, ModelWriteError, check_writable,
                           load_params, model_filename, save_params)

MiB = 1024 * 1024
POSIX = os.name == "posix"
IS_ROOT = POSIX and os.geteuid() == 0


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def make_layers(num_filters=8, nodes=10, seed=0):
    rng = np.random.default_rng(seed)
    conv = SimpleNamespace(filters=rng.standard_normal((num_filters, 3, 3)) / 9)
    softmax = SimpleNamespace(weights=rng.standard_normal((169 * num_filters, nodes)) / nodes,
                              biases=rng.standard_normal(nodes))
    return conv, softmax


def params(num_filters=8, nodes=10, seed=0):
    conv, softmax = make_layers(num_filters, nodes, seed)
    return conv.filters, softmax.weights, softmax.biases


def traced_peak(call, *expected):
    """Peak traced allocation (bytes) while ``call()`` runs; ``expected`` exceptions pass."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        try:
            call()
        except expected:
            pass
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def run_child(code, cwd, timeout=60, address_space_mib=None):
    """Run ``code`` in a child interpreter importing this cnn_ext; return CompletedProcess.

    With ``address_space_mib``, the child limits its address space (RLIMIT_AS) to its size
    after the imports plus that many MiB before running the code.
    """
    paths = [str(Path(cnn_ext.__file__).resolve().parents[1])]
    paths += [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    prelude = "import numpy, cnn_ext, cnn_ext.saver\n"
    if address_space_mib is not None:
        prelude += textwrap.dedent(f"""\
            import resource
            with open('/proc/self/status') as f:
                vm = [int(l.split()[1]) * 1024 for l in f if l.startswith('VmSize:')][0]
            limit = vm + {address_space_mib} * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            """)
    try:
        return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                              capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the child did not finish within {timeout} s (blocked?):\n{code}")


needs_linux_rlimit = pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="needs Linux (RLIMIT_AS and /proc/self/status) to cap the child's memory")


# ----------------------------------------------------------------------------- names

@pytest.mark.parametrize("name, filename", [
    ("MNIST_CNN", "MNIST_CNN.pkl"),
    ("m.pkl", "m.pkl"),
    ("m.PKL", "m.PKL"),
    ("m.npz", "m.npz"),
    ("models/m.pkl", "models/m.pkl"),
    ("m.v2", "m.v2.pkl"),
    ("m.pkl.bak", "m.pkl.bak.pkl"),
    (Path("m.pkl"), "m.pkl"),
])
def test_names_ending_in_pkl_or_npz_are_taken_literally(name, filename):
    assert ModelSaver(name).filename == filename
    assert model_filename(name) == filename
    assert type(model_filename(name)) is str


@pytest.mark.parametrize("name", ["m.pkl", "m.npz"])
def test_literal_names_save_and_load_that_file(workdir, capsys, name):
    conv, softmax = make_layers()
    ModelSaver(name).save(conv, None, softmax)
    assert capsys.readouterr().out == f"保存参数到{name}\n"
    assert os.listdir(workdir) == [name]
    assert zipfile.is_zipfile(name) == name.endswith(".npz")
    conv2, softmax2 = make_layers(seed=1)
    assert ModelSaver(name).load(conv2, None, softmax2) is True
    assert capsys.readouterr().out == "模型参数加载成功\n"
    assert np.array_equal(conv2.filters, conv.filters)


# -------------------------------------------------------------------- check_writable

def assert_one_line(exc, filename):
    message = str(exc)
    assert isinstance(exc, ModelWriteError) and isinstance(exc, OSError)
    assert isinstance(exc, ModelFileError)
    assert "\n" not in message and message.startswith(f"cannot save {filename}: ")
    assert exc.filename == filename
    return message


def test_check_writable_accepts_new_and_existing_files_and_leaves_nothing(workdir):
    assert check_writable("m.pkl") is None
    assert os.listdir(workdir) == []
    save_params("m.pkl", *params())
    before = (workdir / "m.pkl").read_bytes()
    assert check_writable("m.pkl") is None
    assert os.listdir(workdir) == ["m.pkl"] and (workdir / "m.pkl").read_bytes() == before


def test_check_writable_missing_folder(workdir):
    with pytest.raises(ModelWriteError) as info:
        check_writable(os.path.join("missing", "m.pkl"))
    message = assert_one_line(info.value, os.path.join("missing", "m.pkl"))
    assert "the folder 'missing' does not exist" in message
    assert info.value.errno == errno.ENOENT
    assert os.listdir(workdir) == []


def test_check_writable_folder_is_a_file(workdir):
    (workdir / "notes").write_text("x")
    with pytest.raises(ModelWriteError) as info:
        check_writable(os.path.join("notes", "m.pkl"))
    assert "'notes' is not a folder" in assert_one_line(info.value, os.path.join("notes", "m.pkl"))


def test_check_writable_path_is_a_directory(workdir):
    (workdir / "m.pkl").mkdir()
    with pytest.raises(ModelWriteError) as info:
        check_writable("m.pkl")
    assert "it is a directory" in assert_one_line(info.value, "m.pkl")
    assert os.listdir(workdir) == ["m.pkl"] and os.listdir(workdir / "m.pkl") == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX only")
def test_check_writable_path_is_a_fifo(workdir):
    os.mkfifo("m.pkl")
    with pytest.raises(ModelWriteError) as info:
        check_writable("m.pkl")  # would block if it opened the FIFO
    assert "FIFO" in assert_one_line(info.value, "m.pkl")
    assert stat.S_ISFIFO(os.lstat("m.pkl").st_mode)


@pytest.mark.skipif(not POSIX or IS_ROOT, reason="running as root, which may write into any "
                    "folder, so a folder without write permission cannot be shown here "
                    "(the error message is tested with a simulated EACCES below)")
def test_check_writable_folder_without_permission(workdir):
    (workdir / "ro").mkdir()
    os.chmod(workdir / "ro", 0o555)
    try:
        with pytest.raises(ModelWriteError) as info:
            check_writable(os.path.join("ro", "m.pkl"))
        assert "no permission to create files in the folder 'ro'" in str(info.value)
    finally:
        os.chmod(workdir / "ro", 0o755)


@pytest.mark.skipif(not POSIX or IS_ROOT, reason="running as root, which may replace a "
                    "read-only file, so the refusal cannot be shown here")
def test_read_only_model_is_not_replaced(workdir):
    save_params("m.pkl", *params(seed=1))
    os.chmod("m.pkl", 0o444)
    before = (workdir / "m.pkl").read_bytes()
    with pytest.raises(ModelWriteError, match="read-only"):
        check_writable("m.pkl")
    with pytest.raises(ModelWriteError, match="read-only"):
        save_params("m.pkl", *params(seed=2))
    assert (workdir / "m.pkl").read_bytes() == before and os.listdir(workdir) == ["m.pkl"]


@pytest.mark.parametrize("code, fragment", [
    (errno.EACCES, "no permission to create files in the folder 'sub'"),
    (errno.EROFS, "the folder 'sub' is on a read-only file system"),
    (errno.ENOSPC, "no space left on the device"),
])
def test_folder_problems_are_named(workdir, monkeypatch, code, fragment):
    (workdir / "sub").mkdir()

    def mkstemp(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr(saver.tempfile, "mkstemp", mkstemp)
    name = os.path.join("sub", "m.pkl")
    for call in (lambda: check_writable(name), lambda: save_params(name, *params())):
        with pytest.raises(ModelWriteError) as info:
            call()
        assert fragment in assert_one_line(info.value, name) and info.value.errno == code


# -------------------------------------------------------------------- save failures

def test_save_into_a_missing_folder_is_a_one_line_error(workdir, capsys):
    conv, softmax = make_layers()
    with pytest.raises(ModelWriteError) as info:
        ModelSaver(os.path.join("missing", "m")).save(conv, None, softmax)
    assert "the folder 'missing' does not exist" in assert_one_line(
        info.value, os.path.join("missing", "m.pkl"))
    assert isinstance(info.value.__cause__, FileNotFoundError)  # kept for debugging
    assert os.listdir(workdir) == [] and capsys.readouterr().out == ""


def test_save_onto_a_directory_is_a_one_line_error(workdir):
    (workdir / "m.npz").mkdir()
    with pytest.raises(ModelWriteError) as info:
        save_params("m.npz", *params())
    assert "it is a directory" in assert_one_line(info.value, "m.npz")
    assert os.listdir(workdir) == ["m.npz"] and os.listdir(workdir / "m.npz") == []


@pytest.mark.parametrize("failure", ["replace", "write"])
def test_failing_save_raises_model_write_error_and_leaves_no_temporary(workdir, monkeypatch, failure):
    save_params("m.pkl", *params(seed=1))
    before = (workdir / "m.pkl").read_bytes()
    if failure == "replace":
        def replace(src, dst):
            raise IsADirectoryError(errno.EISDIR, "Is a directory")
        monkeypatch.setattr(os, "replace", replace)
    else:
        def dump(obj, f, protocol=None):
            f.write(b"\x80\x04partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        monkeypatch.setattr(pickle, "dump", dump)
    with pytest.raises(ModelWriteError) as info:
        save_params("m.pkl", *params(seed=2))
    assert_one_line(info.value, "m.pkl")
    monkeypatch.undo()
    assert os.listdir(workdir) == ["m.pkl"] and (workdir / "m.pkl").read_bytes() == before


def test_arrays_over_the_bounds_are_not_saved(workdir):
    with pytest.raises(ModelFileError, match="cannot save m.pkl: 2000 filters, more than the 1024"):
        save_params("m.pkl", np.zeros((2000, 3, 3)), np.zeros((2000, 10)), np.zeros(10))
    with pytest.raises(ModelFileError, match="not a multiple of the 8 filters"):
        save_params("m.pkl", np.zeros((8, 3, 3)), np.zeros((1351, 10)), np.zeros(10))
    assert os.listdir(workdir) == []


# ------------------------------------------------------------- stale temporary files

KILLED_SAVE = """
    import os, pickle, signal
    from cnn_ext.saver import save_params
    import numpy as np

    def dump(obj, f, protocol=None):
        f.write(b"\\x80\\x04partial model data")
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)  # killed in the middle of the save
    pickle.dump = dump
    save_params("m.pkl", np.zeros((8, 3, 3)), np.zeros((1352, 10)), np.zeros(10))
"""


def temporaries(folder, name="m.pkl"):
    return sorted(n for n in os.listdir(folder) if saver._temp_pattern(name).match(n))


def age(path, seconds):
    t = time.time() - seconds
    os.utime(path, (t, t))


@pytest.mark.skipif(not POSIX, reason="SIGKILL is POSIX only")
def test_temporary_file_of_a_killed_save_is_removed_by_the_next_save(workdir):
    save_params("m.pkl", *params(seed=1))
    result = run_child(KILLED_SAVE, workdir)
    assert result.returncode == -signal.SIGKILL, result.stderr
    stale, = temporaries(workdir)
    # Files that are not this model's temporaries stay, whatever their age.
    others = [".other.pkl.abcdefgh.tmp", ".m.pkl.abc.tmp", "m.pkl.abcdefgh.tmp",
              ".m.pkl.abcdefgh.tmp.bak", ".m.pkl.abcdefgh.tmp.abcdefgh.tmp", ".xm.pkl.abcdefgh.tmp"]
    for name in others:
        (workdir / name).write_bytes(b"keep me")
        age(workdir / name, 3600)
    age(workdir / stale, 60)
    save_params("m.pkl", *params(seed=2))
    assert temporaries(workdir) == []
    assert sorted(os.listdir(workdir)) == sorted(["m.pkl", *others])
    assert np.array_equal(load_params("m.pkl")["conv_filters"], params(seed=2)[0])


def test_temporary_names_match_the_clean_up_pattern(workdir, monkeypatch):
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append(os.path.basename(src))
        return real_replace(src, dst)
    monkeypatch.setattr(os, "replace", spy)
    for name in ("m.pkl", "m.npz", "with space (1).pkl"):
        save_params(name, *params())
        assert saver._temp_pattern(name).match(seen[-1]), seen[-1]


def test_recent_temporary_files_are_kept(workdir):
    (workdir / ".m.pkl.abcdefgh.tmp").write_bytes(b"maybe another save, just created")
    save_params("m.pkl", *params())
    assert temporaries(workdir) == [".m.pkl.abcdefgh.tmp"]


IN_FLIGHT_SAVE = """
    import os, pickle, sys
    from cnn_ext.saver import save_params
    import numpy as np
    real_dump = pickle.dump

    def dump(obj, f, protocol=None):
        f.write(b"\\x80")  # the temporary file exists, is locked, and is being written
        f.flush()
        print("writing", flush=True)
        sys.stdin.readline()  # until the parent has run its own save
        f.seek(0)
        real_dump(obj, f, protocol=protocol)
    pickle.dump = dump
    save_params("m.pkl", np.full((8, 3, 3), 0.5), np.zeros((1352, 10)), np.zeros(10))
    print("saved", flush=True)
"""


@pytest.mark.skipif(saver.fcntl is None, reason="needs flock (POSIX)")
def test_temporary_file_of_a_running_save_is_kept(workdir):
    paths = [str(Path(cnn_ext.__file__).resolve().parents[1])]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths + [os.environ.get("PYTHONPATH", "")]))
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(IN_FLIGHT_SAVE)], cwd=workdir,
                             env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "writing\n"
        busy, = temporaries(workdir)
        age(workdir / busy, 3600)  # as if the other save were very slow: the lock decides
        save_params("m.pkl", *params())
        assert temporaries(workdir) == [busy]
        out, _ = child.communicate("go\n", timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0 and out == "saved\n"
    assert temporaries(workdir) == []
    assert (load_params("m.pkl")["conv_filters"] == 0.5).all()  # the other save completed


# ------------------------------------------------------------- non-regular model paths

def untouched_layers():
    conv = SimpleNamespace(filters=np.full((8, 3, 3), 7.0))
    softmax = SimpleNamespace(weights=np.full((1352, 10), 7.0), biases=np.full(10, 7.0))
    return conv, softmax


def test_directory_is_refused(workdir, capsys):
    (workdir / "MNIST_CNN.pkl").mkdir()
    conv, softmax = untouched_layers()
    with pytest.raises(ModelFileError, match="MNIST_CNN.pkl: is a directory, not a model file"):
        ModelSaver().load(conv, None, softmax)
    assert (conv.filters == 7).all() and capsys.readouterr().out == ""
    with pytest.raises(ModelFileError, match="is a directory"):
        load_params("MNIST_CNN.pkl")


NON_REGULAR_LOAD = """
    from types import SimpleNamespace
    import numpy as np
    from cnn_ext import ModelSaver
    from cnn_ext.saver import ModelFileError, load_params
    for name in {names!r}:
        conv = SimpleNamespace(filters=np.full((8, 3, 3), 7.0))
        softmax = SimpleNamespace(weights=np.full((1352, 10), 7.0), biases=np.full(10, 7.0))
        for call in (lambda: ModelSaver(name).load(conv, None, softmax), lambda: load_params(name)):
            try:
                call()
            except ModelFileError as exc:
                print("refused:", exc)
            else:
                print("loaded", name)
        assert (conv.filters == 7).all()
"""


@needs_linux_rlimit
@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_symlink_to_a_device_is_refused_without_reading_it(workdir, device):
    if not os.path.exists(device):
        pytest.skip(f"{device} does not exist here")
    for name in ("m.pkl", "m.npz"):
        os.symlink(device, name)
    result = run_child(NON_REGULAR_LOAD.format(names=["m.pkl", "m.npz"]), workdir, timeout=60,
                       address_space_mib=512)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and all("is a character device, not a model file" in l for l in lines), lines


@needs_linux_rlimit
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX only")
def test_fifo_is_refused_without_blocking(workdir):
    os.mkfifo("m.pkl")
    result = run_child(NON_REGULAR_LOAD.format(names=["m.pkl"]), workdir, timeout=30)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all("is a FIFO (named pipe), not a model file" in l for l in lines)


SWAPPED_FIFO = """
    import os, stat
    from cnn_ext.saver import ModelFileError, load_params
    real_stat = os.stat
    os.mkfifo("m.pkl.fifo")
    regular = real_stat("m.pkl.real")

    def swapping_stat(path, *args, **kwargs):
        # The check sees a regular file; by the time the file is opened it is a FIFO.
        if os.fspath(path) == "m.pkl":
            os.replace("m.pkl.fifo", "m.pkl")
            return regular
        return real_stat(path, *args, **kwargs)
    os.stat = swapping_stat
    try:
        load_params("m.pkl")
    except ModelFileError as exc:
        print("refused:", exc)
"""


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX only")
def test_fifo_swapped_in_after_the_check_is_refused_without_blocking(workdir):
    save_params("m.pkl", *params())
    os.rename("m.pkl", "m.pkl.real")
    (workdir / "m.pkl").write_bytes(b"placeholder")
    result = run_child(SWAPPED_FIFO, workdir, timeout=30)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "is a FIFO (named pipe), not a model file" in result.stdout
    assert stat.S_ISFIFO(os.lstat("m.pkl").st_mode)  # the swap did happen


@pytest.mark.parametrize("name", ["m.pkl", "m.npz"])
def test_files_larger_than_any_model_are_refused_without_reading(workdir, name):
    with open(name, "wb") as f:
        f.truncate(MAX_MODEL_BYTES + 1)  # sparse: costs no disk space
    peak = traced_peak(lambda: load_params(name), ModelFileError)
    with pytest.raises(ModelFileError, match="larger than any model"):
        load_params(name)
    assert peak < 1 * MiB, f"{peak / MiB:.0f} MiB allocated to refuse an oversized file"


# ---------------------------------------------------------------- pickle pre-scan cost

def one_byte_opcodes(n):
    """A protocol-4 pickle of ``n`` NONE opcodes (each pushes None) then STOP."""
    return b"\x80\x04" + b"N" * n + b"."


def test_prescan_of_many_opcodes_is_lazy_and_bounded(workdir):
    (workdir / "m.pkl").write_bytes(one_byte_opcodes(4 * MiB))
    peak = traced_peak(lambda: load_params("m.pkl"), ModelFileError)
    with pytest.raises(ModelFileError, match="more than 10000 pickle opcodes"):
        load_params("m.pkl")
    # The file is read once (4 MiB); the scan itself keeps nothing.
    assert peak < 4 * MiB + MiB, f"{peak / MiB:.0f} MiB allocated to refuse a 4 MiB pickle"


@needs_linux_rlimit
def test_prescan_of_a_large_pickle_fits_a_small_memory_limit(workdir):
    (workdir / "m.pkl").write_bytes(one_byte_opcodes(40 * MiB))
    code = """
        from cnn_ext.saver import ModelFileError, load_params
        try:
            load_params("m.pkl")
        except ModelFileError as exc:
            print(exc)
    """
    result = run_child(code, workdir, timeout=120, address_space_mib=150)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "more than 10000 pickle opcodes" in result.stdout, result.stdout


@pytest.mark.parametrize("opcode, raw", [
    ("INST", b"(ibuiltins\nobject\n."),
    ("OBJ", b"\x80\x02(cnumpy\ndtype\no."),
    ("NEWOBJ_EX", b"\x80\x04cnumpy\ndtype\n)}\x92."),
    ("EXT1", b"\x80\x02\x82\x01."),
    ("PERSID", b"Pfoo\n."),
    ("BINPERSID", b"\x80\x02NQ."),
    ("NEXT_BUFFER", b"\x80\x05\x97."),
])
def test_opcodes_no_model_uses_are_refused(workdir, opcode, raw):
    from cnn_ext import _safe_pickle

    with pytest.raises(_safe_pickle.RefusedPickle, match=f"refused pickle opcode {opcode} "):
        _safe_pickle.loads(raw)
    (workdir / "m.pkl").write_bytes(raw)
    with pytest.raises(ModelFileError, match=f"m.pkl: refused pickle opcode {opcode} at byte"):
        load_params("m.pkl")


def test_safe_pickle_is_a_self_contained_module():
    import ast

    from cnn_ext import _safe_pickle

    tree = ast.parse(Path(_safe_pickle.__file__).read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.level == 0}
    # __future__, typing and collections (collections.abc) serve the annotations only.
    allowed = {"io", "pickle", "pickletools", "warnings", "numpy", "__future__", "typing", "collections"}
    assert imported <= allowed, imported
    assert "Threat model" in _safe_pickle.__doc__
    assert not any(isinstance(node, ast.ImportFrom) and node.level for node in ast.walk(tree))
    data = pickle.dumps({"a": np.arange(3.0)}, protocol=4)
    assert np.array_equal(_safe_pickle.loads(data)["a"], np.arange(3.0))
    assert not hasattr(saver, "_RestrictedUnpickler")  # one implementation, in one place


# ------------------------------------------------------- declared shapes and bounds

def npz_declaring(num_filters, input_len=1352, nodes=10):
    buf = io.BytesIO()
    np.savez_compressed(buf, format_version=np.array(1), conv_filters=np.zeros((num_filters, 3, 3)),
                        softmax_weights=np.zeros((input_len, nodes)), softmax_biases=np.zeros(nodes))
    return buf.getvalue()


def test_tiny_npz_declaring_300000_filters_is_refused_before_reading(workdir):
    raw = npz_declaring(300_000)
    assert len(raw) < 64 * 1024  # 21.6 MB of zeros compress to a few tens of kB
    (workdir / "m.npz").write_bytes(raw)
    peak = traced_peak(lambda: load_params("m.npz"), ModelFileError)
    with pytest.raises(ModelFileError, match="m.npz: 300000 filters, more than the 1024"):
        load_params("m.npz")
    assert peak < 2 * MiB, f"{peak / MiB:.0f} MiB allocated for a {len(raw) // 1024} kB file"


SHAPE_CASES = [
    (((8, 3, 3), (1351, 10), (10,)), "1351 rows, which is not a multiple of the 8 filters"),
    (((8, 3, 3), (1352, 5000), (5000,)), "5000 softmax nodes (classes), more than the 1024"),
]


# A pickle over the bounds is larger than MAX_MODEL_BYTES, refused by its size (tested above).
@pytest.mark.parametrize("shapes, fragment, fmt", [
    *[(*case, fmt) for case in SHAPE_CASES for fmt in ("npz", "pkl")],
    (((1024, 3, 3), (169 * 1024, 100), (100,)), "MiB of float64, more than the 63 MiB", "npz"),
])
def test_inconsistent_or_oversized_shapes_are_refused(workdir, shapes, fragment, fmt):
    filters, weights, biases = (np.zeros(s) for s in shapes)
    if fmt == "npz":
        buf = io.BytesIO()
        np.savez_compressed(buf, format_version=np.array(1), conv_filters=filters,
                            softmax_weights=weights, softmax_biases=biases)
        raw = buf.getvalue()
    else:
        raw = pickle.dumps({"conv_filters": filters, "softmax_weights": weights,
                            "softmax_biases": biases}, protocol=4)
    (workdir / f"m.{fmt}").write_bytes(raw)
    with pytest.raises(ModelFileError) as info:
        load_params(f"m.{fmt}")
    assert fragment in str(info.value)


def test_pickle_declaring_300000_filters_is_refused_before_conversion(workdir):
    raw = pickle.dumps({"conv_filters": np.zeros((300_000, 3, 3), dtype=np.float32),
                        "softmax_weights": np.zeros((1352, 10)), "softmax_biases": np.zeros(10)},
                       protocol=4)
    (workdir / "m.pkl").write_bytes(raw)
    peak = traced_peak(lambda: load_params("m.pkl"), ModelFileError)
    with pytest.raises(ModelFileError, match="300000 filters, more than the 1024"):
        load_params("m.pkl")
    # The file (10.8 MB) is read and unpickled; its float32 array is never widened to float64.
    assert peak < 3 * len(raw), f"{peak / MiB:.0f} MiB allocated for a {len(raw) / MiB:.0f} MiB file"


@needs_linux_rlimit
def test_npz_with_300000_filters_loads_under_a_small_memory_limit(workdir):
    (workdir / "m.npz").write_bytes(npz_declaring(300_000))
    code = """
        from cnn_ext.saver import ModelFileError, load_params
        try:
            load_params("m.npz")
        except ModelFileError as exc:
            print(exc)
    """
    result = run_child(code, workdir, timeout=60, address_space_mib=64)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "300000 filters, more than the 1024" in result.stdout, result.stdout


def test_largest_mnist_model_within_the_bounds_round_trips(workdir):
    # 1024 filters on 28x28 images, 10 classes: 13.9 MB, the bounds admit it in both formats.
    arrays = params(num_filters=1024)
    for name in ("big.pkl", "big.npz"):
        save_params(name, *arrays)
        assert os.path.getsize(name) < MAX_MODEL_BYTES
        assert load_params(name)["softmax_weights"].shape == (169 * 1024, 10)


def archive_of_empty_entries(count):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(count):
            z.writestr(f"{i:x}", b"")
    return buf.getvalue()


@pytest.mark.parametrize("count, fragment", [
    (17, "17 entries in"),
    (60_000, "60000 entries in"),
    (70_000, "a Zip64 archive"),  # more than 65,535 entries
])
def test_npz_with_many_entries_is_refused_before_zipfile_parses_them(workdir, count, fragment):
    raw = archive_of_empty_entries(count)
    (workdir / "m.npz").write_bytes(raw)
    peak = traced_peak(lambda: load_params("m.npz"), ModelFileError)
    with pytest.raises(ModelFileError, match="not a cnn_ext .npz model") as info:
        load_params("m.npz")
    assert fragment in str(info.value)
    # zipfile would build a ZipInfo per entry first (~600 bytes each); only the file is read.
    assert peak < len(raw) + MiB, f"{peak / MiB:.0f} MiB allocated for a {len(raw) / MiB:.1f} MiB archive"


def test_npz_with_a_comment_is_still_read(workdir):
    save_params("m.npz", *params())
    with zipfile.ZipFile("m.npz", "a") as z:
        z.comment = b"x" * 1000
    assert load_params("m.npz")["conv_filters"].shape == (8, 3, 3)
