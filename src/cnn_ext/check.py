"""Check a learner's layers: ``Conv3x3``, ``MaxPool2``, ``Softmax`` (and a training step)
against the tutorial's rules, naming the first wrong element in the tutorial's indices.

``check(conv=MyConv3x3, pool=MyMaxPool2, softmax=MySoftmax)`` (any of them) builds the
learner's *own* objects, gives them seeded parameters and inputs, runs their ``forward`` and
``backprop`` and compares every tensor with a pure-NumPy computation of the tutorial's rule
(below, :func:`expected_step`). Each tensor is *exact* (bit-identical), *close* (within
rounding: ``|actual - expected| <= RTOL * scale``, where scale is the largest expected
magnitude of that tensor, or of the parameter's change for updated parameters) or *wrong*.
Close counts as right. ``RTOL`` is 1e-8, far from both sides: on these cases the correct
implementations (the learner-style ones of the tests, summing in other orders, and the
package's own) differ from the reference by at most 1.0e-13 of the scale, and the smallest
planted bug in ``tests/test_check.py`` (the weights updated before the input gradient)
moves its tensor by 1.2e-2 of the scale.

Why not finite differences: with the tutorial's max-pool rule (the gradient goes to *every*
position equal to its window's maximum) the tutorial's correct code disagrees with the
numerical derivative wherever a window is tied, which on MNIST is most of the background.
The checker therefore compares with the tutorial's rule itself.

Both tutorials' APIs are accepted, detected per class from ``backprop``'s signature:

* the adaptation (this package's): ``Conv3x3(num_filters, learn_rate=0.01)``,
  ``backprop(d_L_d_out)``; Softmax weights ``randn(input_len, nodes) / nodes``; Softmax's
  backprop applies every non-zero entry of ``d_L_d_out``;
* the English original: ``Conv3x3(num_filters)``, ``backprop(d_L_d_out, learn_rate)``;
  Softmax weights ``randn / input_len``; Softmax's backprop returns after the first
  non-zero entry of ``d_L_d_out``.

The likely-cause hints come from rules tested in ``tests/test_check.py``: each planted bug
must be named, and no rule may fire on a correct implementation.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import inspect
import itertools
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

RTOL = 1e-8
ADAPTATION = "adaptation"
ORIGINAL = "original"
_API_WORDS = {
    ADAPTATION: "the adaptation's API (learn rate in the constructor, backprop(d_L_d_out))",
    ORIGINAL: "the English original's API (backprop(d_L_d_out, learn_rate))",
}
LEARN_RATE = 0.005  # the tutorials' training rate; small enough that updates stay tiny
BOTH = ("forward", "backprop")


# ----------------------------------------------------------------------------------------
# The tutorial's rules in NumPy (the reference the learner's numbers are compared with)
# ----------------------------------------------------------------------------------------

def regions3(image: np.ndarray) -> np.ndarray:
    """(h, w) -> (h-2, w-2, 3, 3) view: ``[i, j]`` is ``image[i:i+3, j:j+3]``."""
    return np.lib.stride_tricks.sliding_window_view(image, (3, 3))


def conv_forward(image: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """(h, w), (F, 3, 3) -> (h-2, w-2, F): ``output[i, j, f] = sum(image[i:i+3, j:j+3] * filters[f])``."""
    out: np.ndarray = np.einsum("ijab,fab->ijf", regions3(image), filters)
    return out


def conv_filter_gradient(image: np.ndarray, d_L_d_out: np.ndarray) -> np.ndarray:
    """(h, w), (h-2, w-2, F) -> (F, 3, 3): the sum over regions of ``d_L_d_out[i, j, f] * region``."""
    grad: np.ndarray = np.einsum("ijab,ijf->fab", regions3(image), d_L_d_out)
    return grad


def pool_forward(x: np.ndarray) -> np.ndarray:
    """(h, w, F) -> (h//2, w//2, F): the maximum of each 2x2 window (odd last row/column dropped)."""
    h2, w2, f = x.shape[0] // 2, x.shape[1] // 2, x.shape[2]
    out: np.ndarray = x[:2 * h2, :2 * w2].reshape(h2, 2, w2, 2, f).max(axis=(1, 3))
    return out


def pool_tie_mask(x: np.ndarray) -> np.ndarray:
    """(h, w, F) bool: True where a value equals its window's maximum (every tied position)."""
    h2, w2 = x.shape[0] // 2, x.shape[1] // 2
    up = np.repeat(np.repeat(pool_forward(x), 2, axis=0), 2, axis=1)
    mask = np.zeros(x.shape, dtype=bool)
    mask[:2 * h2, :2 * w2] = x[:2 * h2, :2 * w2] == up
    return mask


def pool_backprop(x: np.ndarray, d_L_d_out: np.ndarray) -> np.ndarray:
    """The tutorial's rule: ``d_L_d_out[i, j, f]`` at *every* position of window (i, j) equal
    to its maximum, 0 elsewhere; shaped like ``x``."""
    h2, w2 = x.shape[0] // 2, x.shape[1] // 2
    out = np.zeros(x.shape)
    up = np.repeat(np.repeat(d_L_d_out, 2, axis=0), 2, axis=1)
    mask = pool_tie_mask(x)
    out[:2 * h2, :2 * w2] = np.where(mask[:2 * h2, :2 * w2], up, 0.0)
    return out


def softmax_forward(flat: np.ndarray, weights: np.ndarray, biases: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Totals and probabilities (shifted by the largest total, which changes nothing but overflow)."""
    totals = flat @ weights + biases
    e = np.exp(totals - totals.max())
    return totals, e / e.sum()


def softmax_d_totals(totals: np.ndarray, d_L_d_out: np.ndarray, rule: str) -> np.ndarray:
    """``d_L_d_t`` from the non-zero entries of ``d_L_d_out``: all of them (``"all"``, the
    adaptation), the first (``"first"``, the original's ``return`` inside the loop) or the
    last (``"last"``, the result of ``=`` for ``+=``)."""
    e = np.exp(totals - totals.max())  # the tutorial's ratios are unchanged by the shift
    s = e.sum()
    nonzero = [i for i, g in enumerate(d_L_d_out) if g != 0]
    if rule == "first":
        nonzero = nonzero[:1]
    elif rule == "last":
        nonzero = nonzero[-1:]
    d_L_d_t = np.zeros(totals.shape)
    for i in nonzero:
        d_out_d_t = -e[i] * e / s ** 2
        d_out_d_t[i] = e[i] * (s - e[i]) / s ** 2
        d_L_d_t += d_L_d_out[i] * d_out_d_t
    return d_L_d_t


def init_filters(seed: int, num_filters: int) -> np.ndarray:
    np.random.seed(seed)
    return np.random.randn(num_filters, 3, 3) / 9


def init_weights(seed: int, input_len: int, nodes: int, api: str) -> np.ndarray:
    np.random.seed(seed)
    return np.random.randn(input_len, nodes) / (nodes if api == ADAPTATION else input_len)


# ----------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------

@dataclass
class TensorCheck:
    """One compared tensor of one case. ``status`` is "exact", "close" or "wrong"."""
    layer: str
    case: str
    name: str                 # e.g. "d_L_d_input", "filters (after backprop)"
    status: str
    differing: int = 0
    size: int = 0
    index: tuple[int, ...] | None = None  # first wrong element, in the tutorial's indices
    expected: float | None = None
    actual: float | None = None
    where: str = ""           # the region/window that produced that element
    problem: str = ""         # shape/type/non-finite problems

    @property
    def ok(self) -> bool:
        return self.status != "wrong"

    def describe(self) -> str:
        if self.ok:
            return f"{self.name}: {self.status}"
        if self.problem:
            return f"{self.name}: {self.problem}"
        idx = ", ".join(str(i) for i in self.index or ())
        text = (f"{self.name}[{idx}] expected {self.expected:.6g}, got {self.actual:.6g} "
                f"({self.differing} of {self.size} elements differ)")
        if self.where:
            text += f"\n      from {self.where}"
        return text


@dataclass
class LayerResult:
    """The checks of one layer class. ``status``: "right", "wrong", "not implemented yet",
    "error" (it raised) or "missing" (not given)."""
    name: str
    api: str = ""
    status: str = "right"
    tensors: list[TensorCheck] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str = ""
    error_traceback: str = ""
    methods: tuple[str, ...] = BOTH  # what was checked


    @property
    def ok(self) -> bool:
        return self.status == "right"

    @property
    def first_wrong(self) -> TensorCheck | None:
        return next((t for t in self.tensors if not t.ok), None)

    def summary(self) -> str:
        counts = {s: sum(t.status == s for t in self.tensors) for s in ("exact", "close", "wrong")}
        tally = f"{counts['exact']} exact, {counts['close']} close, {counts['wrong']} wrong"
        if self.methods != BOTH:
            tally += f"; {' and '.join(self.methods)} only"
        if self.status == "right":
            return f"{self.name:9s} right ({tally} tensors)"
        if self.status in ("not implemented yet", "missing"):
            return f"{self.name:9s} {self.status}" + (f": {self.error}" if self.error else "")
        if self.status == "error":
            return f"{self.name:9s} error: {self.error}"
        return f"{self.name:9s} wrong ({tally} tensors)"


@dataclass
class TrainingResult:
    """The training-run check: ``steps`` steps, compared after each one."""
    status: str = "right"
    steps: int = 0
    step: int | None = None        # first diverging step (1-based)
    parameter: str = ""            # e.g. "conv.filters[2, 0, 1]"
    expected: float | None = None
    actual: float | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "right"

    def summary(self) -> str:
        if self.status == "right":
            return f"{'training':9s} right ({self.steps} steps, every parameter agrees after every step)"
        if self.step is not None and self.parameter:
            return (f"{'training':9s} diverges at step {self.step}: {self.parameter} expected "
                    f"{self.expected:.6g}, got {self.actual:.6g}")
        return f"{'training':9s} {self.status}: {self.error}"


@dataclass
class CheckResult:
    """Everything the checker found. ``ok`` is True when every given layer (and the
    training run, if checked) is right; ``report()`` is the short text the CLI prints."""
    layers: dict[str, LayerResult] = field(default_factory=dict)
    training: TrainingResult | None = None
    source: str = ""

    @property
    def ok(self) -> bool:
        given = [r for r in self.layers.values() if r.status != "missing"]
        return bool(given) and all(r.ok for r in given) and (self.training is None or self.training.ok)

    @property
    def hints(self) -> list[str]:
        return [h for r in self.layers.values() for h in r.hints]

    def __str__(self) -> str:
        return self.report()

    def report(self, verbose: bool = False) -> str:
        """The short text report: a line per layer, the first wrong element, the likely
        cause; tracebacks of the learner's exceptions only with ``verbose``."""
        lines = []
        if self.source:
            lines.append(f"checking {self.source}")
        apis = {r.api for r in self.layers.values() if r.api}
        for api in sorted(apis):
            names = ", ".join(n for n, r in self.layers.items() if r.api == api)
            lines.append(f"{names}: {_API_WORDS[api]}")
        for r in self.layers.values():
            if r.status == "missing":
                continue  # not given: nothing to say (the last line says if nothing was)
            lines.append(r.summary())
            bad = r.first_wrong
            if bad is not None and r.status == "wrong":
                lines.append(f"  case: {bad.case}")
                lines.append("  first wrong: " + bad.describe())
            for hint in r.hints:
                lines.append(f"  likely cause: {hint}")
            for note in r.notes:
                lines.append(f"  note: {note}")
            if verbose and r.error_traceback:
                lines.append(r.error_traceback.rstrip())
        if self.training is not None:
            lines.append(self.training.summary())
        if not any(r.status != "missing" for r in self.layers.values()):
            lines.append("nothing to check: give Conv3x3, MaxPool2 or Softmax")
        lines.append("all right" if self.ok else "not right yet")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------
# Comparing
# ----------------------------------------------------------------------------------------

def _as_array(value: Any) -> np.ndarray | None:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def _close(actual: np.ndarray, expected: np.ndarray, scale: float) -> np.ndarray:
    within: np.ndarray = np.abs(actual - expected) <= RTOL * scale
    return within


def compare(layer: str, case: str, name: str, expected: np.ndarray, actual: Any,
            where: Callable[[tuple[int, ...]], str] | None = None, scale: float | None = None,
            reference: np.ndarray | None = None) -> TensorCheck:
    """Compare one tensor. ``scale`` defaults to the largest expected magnitude; for an
    updated parameter pass the largest expected change (``reference`` is then the value
    before the update, whose rounding is allowed too)."""
    size = int(np.size(expected))
    if actual is None:
        return TensorCheck(layer, case, name, "wrong", size, size, problem=f"got None, expected shape {expected.shape}")
    arr = _as_array(actual)
    if arr is None:
        return TensorCheck(layer, case, name, "wrong", size, size,
                           problem=f"got {type(actual).__name__}, expected an array of shape {expected.shape}")
    if arr.shape != expected.shape:
        return TensorCheck(layer, case, name, "wrong", size, size,
                           problem=f"got shape {arr.shape}, expected {expected.shape}")
    if np.array_equal(arr, expected):
        return TensorCheck(layer, case, name, "exact", 0, size)
    if scale is None:
        scale = float(np.abs(expected).max()) if size else 0.0
    if reference is not None:
        scale = max(scale, 4 * np.finfo(np.float64).eps * float(np.abs(reference).max()) / RTOL)
    scale = max(scale, np.finfo(np.float64).tiny)
    ok = _close(arr, expected, scale)
    if ok.all():
        return TensorCheck(layer, case, name, "close", 0, size)
    bad = np.argwhere(~ok)
    index = tuple(int(i) for i in bad[0])
    return TensorCheck(layer, case, name, "wrong", int(len(bad)), size, index,
                       float(expected[index]), float(arr[index]), where(index) if where else "")


def _matches(actual: Any, expected: np.ndarray, scale: float | None = None) -> bool:
    arr = _as_array(actual)
    if arr is None or arr.shape != expected.shape:
        return False
    if scale is None:
        scale = float(np.abs(expected).max()) if expected.size else 0.0
    return bool(_close(arr, expected, max(scale, np.finfo(np.float64).tiny)).all())


def _ratio(actual_change: np.ndarray, expected_change: np.ndarray) -> float | None:
    """The scalar c with actual_change = c * expected_change, if there is one (to 1e-6)."""
    denom = float(np.sum(expected_change * expected_change))
    if denom == 0 or actual_change.shape != expected_change.shape:
        return None
    c = float(np.sum(actual_change * expected_change)) / denom
    resid = np.abs(actual_change - c * expected_change).max()
    if resid <= 1e-6 * max(np.abs(actual_change).max(), np.abs(expected_change).max()):
        return c
    return None


def _update_hints(what: str, old: np.ndarray, new: Any, expected_new: np.ndarray, rate: float) -> list[str]:
    """Rules on a parameter update: sign, rate twice or not at all, no update."""
    arr = _as_array(new)
    if arr is None or arr.shape != old.shape:
        return []
    c = _ratio(arr - old, expected_new - old)
    if c is None:
        return []
    if abs(c) < 1e-9:
        return [f"{what} did not change: the update `{what} -= learn_rate * gradient` is missing "
                "(or applied to a copy)"]
    for value, text in (
        (-1.0, f"the update's sign: {what} moved up the gradient; use `-=` (gradient descent)"),
        (2.0, f"the update is applied twice: {what} moved by 2 x learn_rate x gradient"),
        (rate, f"the learn rate applied twice: {what} moved by learn_rate**2 x gradient"),
        (1 / rate, f"the learn rate not applied: {what} moved by the whole gradient; "
                   "multiply it by learn_rate"),
        (-1 / rate, f"the learn rate not applied and the sign flipped: use `{what} -= learn_rate * gradient`"),
    ):
        if abs(c - value) <= 1e-6 * abs(value):
            return [text]
    return []


# ----------------------------------------------------------------------------------------
# Running the learner's code
# ----------------------------------------------------------------------------------------

def detect_api(cls: type) -> str:
    """ADAPTATION for ``backprop(self, d_L_d_out)`` (or a rate with a default, as in
    cnn_ext's own layers), ORIGINAL for ``backprop(self, d_L_d_out, learn_rate)``."""
    try:
        params = list(inspect.signature(getattr(cls, "backprop")).parameters.values())[1:]
    except (AttributeError, TypeError, ValueError):
        return ADAPTATION
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= 2 and positional[1].default is inspect.Parameter.empty:
        return ORIGINAL
    return ADAPTATION


def _backprop(obj: Any, api: str, d: np.ndarray, rate: float) -> Any:
    if api == ORIGINAL:
        return obj.backprop(d, rate)
    obj.learn_rate = rate
    return obj.backprop(d)


def _learner_frame(exc: BaseException) -> str:
    """'file.py, line N, in name' of the innermost frame outside this module."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if os.path.abspath(f.filename) != os.path.abspath(__file__)]
    if not frames:
        return ""
    f = frames[-1]
    return f" ({os.path.basename(f.filename)}, line {f.lineno}, in {f.name})"


class _Raised(Exception):
    def __init__(self, step: str, exc: BaseException) -> None:
        super().__init__(step)
        self.step, self.exc = step, exc


CALL_SECONDS = 30.0  # one call of the learner's code; the tutorial's loops take well under 1 s
# Importing the learner's file runs its top-level code, and a tutorial script trains there:
# the English original's cnn.py, 3 epochs of 1,000 digits with the tutorial's loops, takes
# about a minute; a full MNIST epoch would take hours. cnn-ext check says what is going on
# after IMPORT_NOTICE_SECONDS and stops the import after its --import-timeout.
IMPORT_NOTICE_SECONDS = 10.0
IMPORT_SECONDS = 600.0


class TimeLimitError(Exception):
    """The learner's method did not return within ``CALL_SECONDS`` (an endless loop?)."""


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the learner's code after ``seconds`` (SIGALRM: the main thread on POSIX;
    elsewhere there is no limit)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise TimeLimitError(f"did not return within {seconds:g} s (an endless loop?)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _call(step: str, fn: Callable[..., Any], *args: Any) -> Any:
    try:
        with _time_limit(CALL_SECONDS):
            return fn(*args)
    except Exception as exc:  # the learner's code: any exception is a finding, not a crash
        raise _Raised(step, exc) from exc


def _record_error(result: LayerResult, raised: _Raised) -> None:
    exc = raised.exc
    result.error_traceback = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if isinstance(exc, NotImplementedError):
        result.status = "not implemented yet"
        result.error = f"{raised.step} raises NotImplementedError" + (f" ({exc})" if str(exc) else "")
        return
    result.status = "error"
    result.error = f"{raised.step} raised {type(exc).__name__}: {exc}{_learner_frame(exc)}"
    if isinstance(exc, TypeError) and "." not in raised.step.split("(")[0]:  # a constructor call
        result.hints.append("the constructor's arguments: the checker builds Conv3x3(num_filters), "
                            "MaxPool2() and Softmax(input_len, nodes), as the tutorials do (a learn "
                            "rate, if any, needs a default)")
    if isinstance(exc, AttributeError) and "last_" in str(exc):
        result.hints.append("forward state not cached: forward must keep what backprop needs "
                            "(self.last_input, and for Softmax last_input_shape and last_totals)")


# ----------------------------------------------------------------------------------------
# Seeded cases
# ----------------------------------------------------------------------------------------

_MNIST_CACHE: dict[str, Any] = {}


def _mnist() -> tuple[np.ndarray, np.ndarray]:
    if "data" not in _MNIST_CACHE:
        from .datasets import mnist

        (x_train, y_train), _ = mnist.load_data()
        _MNIST_CACHE["data"] = (x_train, y_train)
    data: tuple[np.ndarray, np.ndarray] = _MNIST_CACHE["data"]
    return data


def tie_free(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random values with no two equal (so no window is tied)."""
    return rng.permutation(np.prod(shape)).reshape(shape) / np.prod(shape) - 0.5 + rng.random(shape) * 1e-3


def tied_digit(filters: np.ndarray) -> tuple[int, np.ndarray]:
    """The first MNIST training digit (normalised as the tutorial does) whose conv maps under
    ``filters`` have 4-, 3- and 2-way tied pooling windows; returns (index, image)."""
    x, _ = _mnist()
    for k in range(200):
        image = x[k] / 255 - 0.5
        counts = _tie_kinds(conv_forward(image, filters))
        if {2, 3, 4} <= counts:
            return k, image
    raise RuntimeError("no MNIST digit with 4-, 3- and 2-way ties among the first 200")


def _tie_kinds(maps: np.ndarray) -> set[int]:
    h2, w2, f = maps.shape[0] // 2, maps.shape[1] // 2, maps.shape[2]
    mask = pool_tie_mask(maps)[:2 * h2, :2 * w2].reshape(h2, 2, w2, 2, f)
    return set(np.unique(mask.sum(axis=(1, 3))).tolist())


def _several(rng: np.random.Generator, n: int) -> np.ndarray:
    d = np.zeros(n)
    picks = rng.choice(n, size=3, replace=False)
    d[picks] = rng.uniform(-3, -0.5, size=3)
    return d


def _one_hot_loss(probs: np.ndarray, label: int) -> np.ndarray:
    d = np.zeros(probs.shape)
    d[label] = -1 / probs[label]
    return d


# ----------------------------------------------------------------------------------------
# Layer checks
# ----------------------------------------------------------------------------------------

def _conv_cases(seed: int) -> list[tuple[str, int, np.ndarray, str]]:
    """(description, filters, image, gradient kind)."""
    rng = np.random.default_rng(seed)
    filters8 = init_filters(seed, 8)
    k, digit = tied_digit(filters8)
    return [
        ("tie-free random 7x9 image, 3 filters, dense gradient", 3, tie_free(rng, (7, 9)), "dense"),
        (f"MNIST training digit {k}, 8 filters, one non-zero gradient entry", 8, digit, "one"),
        (f"MNIST training digit {k}, 8 filters, dense gradient", 8, digit, "dense"),
        ("odd 11x8 image, 1 filter, dense gradient", 1, tie_free(rng, (11, 8)), "dense"),
    ]


def check_conv(cls: type, seed: int = 0, methods: tuple[str, ...] = BOTH) -> LayerResult:
    """Check a Conv3x3 class: the initial filters, forward, backprop's filter update (and
    that it returns None), on the seeded cases (``methods=("forward",)``: the first two only)."""
    api = detect_api(cls)
    result = LayerResult("Conv3x3", api, methods=tuple(methods))
    rng = np.random.default_rng(seed + 1)
    try:
        obj = _call("Conv3x3(8)", _construct_seeded, cls, seed, (8,))
        got = getattr(obj, "filters", None)
        t = compare("Conv3x3", "Conv3x3(8) after np.random.seed(%d)" % seed, "filters (initial)",
                    init_filters(seed, 8), got)
        result.tensors.append(t)
        if not t.ok:
            result.hints += _init_hints("filters", got, init_filters(seed, 8),
                                        {9: "a missing `/ 9` in the initial filters: "
                                            "np.random.randn(num_filters, 3, 3) / 9"})
        for case, nf, image, kind in _conv_cases(seed):
            filters = rng.standard_normal((nf, 3, 3)) / 9
            h, w = image.shape
            d = rng.standard_normal((h - 2, w - 2, nf))
            if kind == "one":
                d[:] = 0
                d[h // 2 - 1, w // 2 - 1, nf // 2] = -2.5
            conv = _call(f"Conv3x3({nf})", cls, nf)
            conv.filters = filters.copy()
            # A decoy forward first in the dense cases: backprop must use the *last* input.
            decoy = tie_free(rng, image.shape) if kind == "dense" else None
            if decoy is not None:
                _call("Conv3x3.forward", conv.forward, decoy.copy())
            out = _call("Conv3x3.forward", conv.forward, image.copy())
            expected_out = conv_forward(image, filters)
            result.tensors.append(compare("Conv3x3", case, "output", expected_out, out,
                                          functools.partial(_conv_where, image=image)))
            if "backprop" not in methods:
                continue
            ret = _call("Conv3x3.backprop", _backprop, conv, api, d.copy(), LEARN_RATE)
            grad = conv_filter_gradient(image, d)
            expected = filters - LEARN_RATE * grad
            new = getattr(conv, "filters", None)
            t = compare("Conv3x3", case, "filters (after backprop)", expected, new,
                        lambda ix: _conv_grad_where(ix, image.shape), scale=LEARN_RATE * float(np.abs(grad).max()),
                        reference=filters)
            result.tensors.append(t)
            if ret is not None:
                result.notes.append("backprop returns something; the tutorial's first layer returns None")
            if not t.ok and not t.problem:
                result.hints += _conv_backprop_hints(image, d, filters, new, decoy)
    except _Raised as raised:
        _record_error(result, raised)
        return result
    _finish(result)
    return result


def _construct_seeded(cls: type, seed: int, args: tuple[Any, ...]) -> Any:
    np.random.seed(seed)
    return cls(*args)


def _init_hints(what: str, got: Any, expected: np.ndarray, factors: dict[float, str]) -> list[str]:
    arr = _as_array(got)
    if arr is None or arr.shape != expected.shape:
        return []
    c = _ratio(arr, expected)
    for factor, text in factors.items():
        if c is not None and abs(c - factor) <= 1e-6 * factor:
            return [text]
    if c is None:
        return [f"the initial {what} are not drawn with np.random.randn from NumPy's global random "
                "state, as the tutorial does (np.random.seed would not reproduce them)"]
    return []


def _conv_where(ix: tuple[int, ...], image: np.ndarray) -> str:
    i, j, f = ix
    return f"the 3x3 region image[{i}:{i + 3}, {j}:{j + 3}] times filters[{f}]"


def _conv_grad_where(ix: tuple[int, ...], shape: tuple[int, int]) -> str:
    f, a, b = ix
    h, w = shape
    return (f"d_L_d_filters[{f}, {a}, {b}] = sum over the {h - 2}x{w - 2} regions of "
            f"d_L_d_out[i, j, {f}] * image[i + {a}, j + {b}]")


def _conv_backprop_hints(image: np.ndarray, d: np.ndarray, filters: np.ndarray, new: Any,
                         decoy: np.ndarray | None) -> list[str]:
    arr = _as_array(new)
    if arr is None or arr.shape != filters.shape:
        return []
    h, w = image.shape
    last = np.einsum("ab,f->fab", image[h - 3:, w - 3:], d[h - 3, w - 3])
    if _matches(arr, filters - LEARN_RATE * last, LEARN_RATE * np.abs(last).max()):
        return ["`=` instead of `+=` in `d_L_d_filters[f] += d_L_d_out[i, j, f] * im_region`: "
                "only the last region's contribution is kept"]
    if decoy is not None:
        stale = filters - LEARN_RATE * conv_filter_gradient(decoy, d)
        if _matches(arr, stale):
            return ["forward state not cached: backprop used the input of an earlier forward; "
                    "forward must set self.last_input = input"]
    hints = _update_hints("filters", filters, arr, filters - LEARN_RATE * conv_filter_gradient(image, d),
                          LEARN_RATE)
    if hints:
        return hints
    grad = conv_filter_gradient(image, d)
    if _matches(arr, filters - LEARN_RATE * grad.transpose(0, 2, 1), LEARN_RATE * np.abs(grad).max()):
        return ["region and gradient indices swapped: the update is the transpose of "
                "d_L_d_filters (i and j exchanged)"]
    return []


def _pool_cases(seed: int) -> list[tuple[str, np.ndarray, str]]:
    rng = np.random.default_rng(seed + 2)
    filters8 = init_filters(seed, 8)
    k, digit = tied_digit(filters8)
    maps = conv_forward(digit, filters8)
    counts = _tie_counts_text(maps)
    return [
        ("tie-free random (6, 8, 3) input, dense gradient", tie_free(rng, (6, 8, 3)), "dense"),
        (f"conv maps of MNIST training digit {k} (26, 26, 8), {counts}, softmax-like gradient",
         maps, "dense"),
        ("odd (7, 9, 2) input (last row and column dropped), dense gradient",
         tie_free(rng, (7, 9, 2)), "dense"),
        ("(4, 4, 2) input with 4-, 3- and 2-way ties, one non-zero gradient entry",
         np.array([[[1, 1], [1, 2], [0, 0], [5, 1]], [[1, 0], [1, 2], [5, 3], [0, 3]],
                   [[2, 4], [2, 4], [0, 1], [0, 2]], [[1, 4], [2, 0], [0, 7], [0, 7]]], float), "one"),
    ]


def _tie_counts_text(maps: np.ndarray) -> str:
    h2, w2, f = maps.shape[0] // 2, maps.shape[1] // 2, maps.shape[2]
    mask = pool_tie_mask(maps)[:2 * h2, :2 * w2].reshape(h2, 2, w2, 2, f).sum(axis=(1, 3))
    return ", ".join(f"{int((mask == n).sum())} {n}-way tied windows" for n in (4, 3, 2))


def check_pool(cls: type, seed: int = 0, methods: tuple[str, ...] = BOTH) -> LayerResult:
    """Check a MaxPool2 class: forward and the tutorial's tie rule in backprop."""
    result = LayerResult("MaxPool2", methods=tuple(methods))
    rng = np.random.default_rng(seed + 3)
    try:
        for case, x, kind in _pool_cases(seed):
            pool = _call("MaxPool2()", cls)
            decoy = tie_free(rng, x.shape) if kind == "dense" else None
            if decoy is not None:  # backprop must use the *last* input
                _call("MaxPool2.forward", pool.forward, decoy.copy())
            out = _call("MaxPool2.forward", pool.forward, x.copy())
            result.tensors.append(compare("MaxPool2", case, "output", pool_forward(x), out,
                                          functools.partial(_window_where, x=x, pooled=True)))
            if "backprop" not in methods:
                continue
            d = rng.uniform(-1, 1, (x.shape[0] // 2, x.shape[1] // 2, x.shape[2]))
            if kind == "one":
                d[:] = 0
                d[0, 0, 0] = 0.75
            got = _call("MaxPool2.backprop", pool.backprop, d.copy())
            expected = pool_backprop(x, d)
            t = compare("MaxPool2", case, "d_L_d_input", expected, got,
                        functools.partial(_window_where, x=x, d=d))
            result.tensors.append(t)
            if not t.ok and not t.problem:
                result.hints += _pool_hints(x, d, got, decoy)
    except _Raised as raised:
        _record_error(result, raised)
        return result
    _finish(result)
    return result


def _window_where(ix: tuple[int, ...], x: np.ndarray, pooled: bool = False, d: np.ndarray | None = None) -> str:
    if pooled:
        i2, j2, f = ix
    else:
        i, j, f = ix
        i2, j2 = i // 2, j // 2
        if i2 >= x.shape[0] // 2 or j2 >= x.shape[1] // 2:
            return f"no window: row/column {i}/{j} is the odd one the pooling drops"
    win = x[2 * i2:2 * i2 + 2, 2 * j2:2 * j2 + 2, f]
    ties = int((win == win.max()).sum())
    kind = "no tie" if ties == 1 else f"{ties}-way tie"
    values = np.array2string(win, precision=4, separator=", ").replace("\n", "")
    text = f"the 2x2 window input[{2 * i2}:{2 * i2 + 2}, {2 * j2}:{2 * j2 + 2}, {f}] = {values} ({kind})"
    if d is not None:
        text += f", d_L_d_out[{i2}, {j2}, {f}] = {d[i2, j2, f]:.6g}"
    return text


def _pool_hints(x: np.ndarray, d: np.ndarray, got: Any, decoy: np.ndarray | None) -> list[str]:
    arr = _as_array(got)
    if arr is None or arr.shape != x.shape:
        return []
    expected = pool_backprop(x, d)
    if decoy is not None and _matches(arr, pool_backprop(decoy, d)):
        return ["forward state not cached: backprop used the input of an earlier forward; "
                "forward must set self.last_input = input"]
    h2, w2, f = x.shape[0] // 2, x.shape[1] // 2, x.shape[2]
    diff = ~_close(arr, expected, max(float(np.abs(expected).max()), 1e-300))
    if diff[2 * h2:].any() or diff[:, 2 * w2:].any():
        return []
    mask = pool_tie_mask(x)[:2 * h2, :2 * w2].reshape(h2, 2, w2, 2, f)
    a = arr[:2 * h2, :2 * w2].reshape(h2, 2, w2, 2, f)
    e = expected[:2 * h2, :2 * w2].reshape(h2, 2, w2, 2, f)
    dw = diff[:2 * h2, :2 * w2].reshape(h2, 2, w2, 2, f).any(axis=(1, 3))
    ties = mask.sum(axis=(1, 3))
    if dw.any() and (ties[dw] >= 2).all():
        given = (a != 0).sum(axis=(1, 3))
        same = np.isclose(a, e) | (a == 0)
        if (given[dw] == 1).all() and same.all():
            return [f"gradient to one tied maximum only: all {int(dw.sum())} differing windows are "
                    "tied, and each gives d_L_d_out to one position; the tutorial gives it to every "
                    "position equal to the maximum (`if im_region[i2, j2, f2] == amax[f2]`, no break)"]
    return []


def _softmax_cases(seed: int) -> list[tuple[str, np.ndarray, int, str]]:
    """(description, input, nodes, gradient kind)."""
    rng = np.random.default_rng(seed + 4)
    filters8 = init_filters(seed, 8)
    k, digit = tied_digit(filters8)
    pooled = pool_forward(conv_forward(digit, filters8))
    return [
        ("random (3, 4, 2) input, 10 nodes, loss gradient (one non-zero entry)",
         tie_free(rng, (3, 4, 2)), 10, "one"),
        (f"pooled maps of MNIST training digit {k} (13, 13, 8), 10 nodes, loss gradient",
         pooled, 10, "one"),
        ("random (5, 3, 2) input, 4 nodes, 3 non-zero gradient entries", tie_free(rng, (5, 3, 2)), 4, "several"),
        (f"pooled maps of MNIST training digit {k}, 10 nodes, 3 non-zero gradient entries",
         pooled, 10, "several"),
    ]


def check_softmax(cls: type, seed: int = 0, methods: tuple[str, ...] = BOTH) -> LayerResult:
    """Check a Softmax class: initial weights and biases, forward, backprop's input gradient
    and its weight and bias updates."""
    api = detect_api(cls)
    result = LayerResult("Softmax", api, methods=tuple(methods))
    rng = np.random.default_rng(seed + 5)
    rule = "all" if api == ADAPTATION else "first"
    try:
        obj = _call("Softmax(1352, 10)", _construct_seeded, cls, seed, (1352, 10))
        w0 = init_weights(seed, 1352, 10, api)
        got = getattr(obj, "weights", None)
        t = compare("Softmax", f"Softmax(1352, 10) after np.random.seed({seed})", "weights (initial)", w0, got)
        result.tensors.append(t)
        if not t.ok:
            divisor, other = ("nodes", "input_len") if api == ADAPTATION else ("input_len", "nodes")
            size = {"nodes": 10, "input_len": 1352}
            result.hints += _init_hints("weights", got, w0, {
                size[divisor]: f"a missing `/ {divisor}` in the initial weights: "
                               f"np.random.randn(input_len, nodes) / {divisor}",
                size[divisor] / size[other]: f"the initial weights are divided by {other}; "
                                             f"this tutorial divides by {divisor}",
            })
        result.tensors.append(compare("Softmax", "Softmax(1352, 10)", "biases (initial)", np.zeros(10),
                                      getattr(obj, "biases", None)))
        for case, x, nodes, kind in _softmax_cases(seed):
            n = x.size
            weights = rng.standard_normal((n, nodes)) / nodes
            biases = rng.standard_normal(nodes) * 0.1
            sm = _call(f"Softmax({n}, {nodes})", cls, n, nodes)
            sm.weights, sm.biases = weights.copy(), biases.copy()
            decoy = tie_free(rng, x.shape) if kind == "several" else None
            if decoy is not None:  # backprop must use the *last* forward's state
                _call("Softmax.forward", sm.forward, decoy.copy())
            probs = _call("Softmax.forward", sm.forward, x.copy())
            totals, expected_probs = softmax_forward(x.flatten(), weights, biases)
            t = compare("Softmax", case, "probabilities", expected_probs, probs,
                        lambda ix: f"softmax of totals = input.flatten() @ weights + biases; totals[{ix[0]}] = {totals[ix[0]]:.6g}")
            result.tensors.append(t)
            if not t.ok and not t.problem:
                result.hints += _flatten_hints(x, weights, biases, probs)
            if "backprop" not in methods:
                continue
            if kind == "several":
                d = _several(rng, nodes)
            else:
                d = _one_hot_loss(expected_probs, int(rng.integers(nodes)))
            got = _call("Softmax.backprop", _backprop, sm, api, d.copy(), LEARN_RATE)
            flat = x.flatten()
            d_t = softmax_d_totals(totals, d, rule)
            d_in = (weights @ d_t).reshape(x.shape)
            new_w = weights - LEARN_RATE * np.outer(flat, d_t)
            new_b = biases - LEARN_RATE * d_t
            t_in = compare("Softmax", case, "d_L_d_input", d_in, got,
                           lambda ix: f"d_L_d_input{list(ix)} = weights[row] @ d_L_d_t, row "
                                      f"{int(np.ravel_multi_index(ix, x.shape))} of the flattened input")
            t_w = compare("Softmax", case, "weights (after backprop)", new_w, getattr(sm, "weights", None),
                          lambda ix: f"d_L_d_w[{ix[0]}, {ix[1]}] = input.flatten()[{ix[0]}] * d_L_d_t[{ix[1]}]",
                          scale=float(np.abs(new_w - weights).max()), reference=weights)
            t_b = compare("Softmax", case, "biases (after backprop)", new_b, getattr(sm, "biases", None),
                          lambda ix: f"d_L_d_b[{ix[0]}] = d_L_d_t[{ix[0]}]",
                          scale=float(np.abs(new_b - biases).max()), reference=biases)
            result.tensors += [t_in, t_w, t_b]
            if not (t_in.ok and t_w.ok and t_b.ok):
                result.hints += _softmax_hints(api, x, d, weights, biases, totals, got,
                                               getattr(sm, "weights", None), getattr(sm, "biases", None),
                                               t_in, t_w, t_b, decoy)
        result.notes += _overflow_note(cls, api)
    except _Raised as raised:
        _record_error(result, raised)
        return result
    _finish(result)
    return result


def _flatten_hints(x: np.ndarray, weights: np.ndarray, biases: np.ndarray, probs: Any) -> list[str]:
    orders: list[tuple[tuple[int, ...] | str, np.ndarray]] = [(p, x.transpose(p).flatten()) for p in itertools.permutations(range(x.ndim)) if p != tuple(range(x.ndim))]
    orders.append(("F", x.flatten(order="F")))
    for p, flat in orders:
        if _matches(probs, softmax_forward(flat, weights, biases)[1]):
            how = "input.flatten(order='F')" if p == "F" else f"input.transpose{p}.flatten()"
            return [f"a transposed flatten: the probabilities are those of {how}; "
                    "use input.flatten() (row-major, as the tutorial)"]
    return []


def _softmax_hints(api: str, x: np.ndarray, d: np.ndarray, weights: np.ndarray, biases: np.ndarray,
                   totals: np.ndarray, got: Any, got_w: Any, got_b: Any,
                   t_in: TensorCheck, t_w: TensorCheck, t_b: TensorCheck, decoy: np.ndarray | None) -> list[str]:
    flat = x.flatten()
    rule = "all" if api == ADAPTATION else "first"
    d_t = softmax_d_totals(totals, d, rule)
    hints: list[str] = []
    if decoy is not None:
        dflat = decoy.flatten()
        dtot = dflat @ weights + biases
        sd_t = softmax_d_totals(dtot, d, rule)
        if _matches(got_w, weights - LEARN_RATE * np.outer(dflat, sd_t)) or \
                _matches(got_w, weights - LEARN_RATE * np.outer(flat, sd_t)) or \
                _matches(got_w, weights - LEARN_RATE * np.outer(dflat, d_t)):
            return ["forward state not cached: backprop used the input or totals of an earlier "
                    "forward; forward must set self.last_input and self.last_totals"]
    for other, text in (("all", "every non-zero entry of d_L_d_out is applied (the adaptation's rule); "
                                "the English original returns after the first"),
                        ("first", "only the first non-zero entry of d_L_d_out is applied (a `return` "
                                  "inside the loop, as the English original does); this tutorial "
                                  "accumulates every non-zero entry"),
                        ("last", "`=` instead of `+=` in the gradient sums: only the last non-zero "
                                 "entry of d_L_d_out is kept")):
        if other == rule or np.count_nonzero(d) < 2:
            continue
        o_t = softmax_d_totals(totals, d, other)
        if _matches(got_w, weights - LEARN_RATE * np.outer(flat, o_t),
                    LEARN_RATE * float(np.abs(np.outer(flat, o_t)).max())):
            return [text]
    if t_w.ok and t_b.ok and not t_in.ok:
        new_w = weights - LEARN_RATE * np.outer(flat, d_t)
        if _matches(got, (new_w @ d_t).reshape(x.shape)):
            return ["the weights are updated before the input gradient is computed: "
                    "d_L_d_input must use the weights from before the update (keep them, or "
                    "compute d_L_d_input first)"]
        if x.ndim > 1 and _matches(got, weights @ d_t):
            return ["the input gradient is returned flat: reshape it to last_input_shape"]
    if not t_w.ok:
        hints += _update_hints("weights", weights, got_w, weights - LEARN_RATE * np.outer(flat, d_t), LEARN_RATE)
    if not t_b.ok and not hints:
        hints += _update_hints("biases", biases, got_b, biases - LEARN_RATE * d_t, LEARN_RATE)
    return hints


def _overflow_note(cls: type, api: str) -> list[str]:
    """Totals above ~709 overflow np.exp: the tutorial's own code gives nan there, so this is
    a note for the learner, not a failure."""
    try:
        with _time_limit(CALL_SECONDS):
            sm = cls(4, 3)
    except Exception:
        return []
    sm.weights = np.array([[400.0, 0, 0], [400.0, 0, 0], [0, 1, 0], [0, 0, 1]])
    sm.biases = np.zeros(3)
    try:
        with np.errstate(all="ignore"), _time_limit(CALL_SECONDS):
            probs = _as_array(sm.forward(np.array([1.0, 1.0, 0.0, 0.0])))
    except Exception:
        return []
    if probs is None or np.isfinite(probs).all():
        return []
    return ["softmax overflow: totals above about 709 give nan (as the tutorial's own code does); "
            "subtract totals.max() before np.exp to avoid it"]


def _finish(result: LayerResult) -> None:
    if any(not t.ok for t in result.tensors):
        result.status = "wrong"
    seen: dict[str, str] = {}  # one hint per rule (the words before the colon), the first case's
    for h in result.hints:
        seen.setdefault(h.split(":")[0], h)
    result.hints = list(seen.values())
    result.notes = list(dict.fromkeys(result.notes))


# ----------------------------------------------------------------------------------------
# Training run
# ----------------------------------------------------------------------------------------

def expected_step(image: np.ndarray, label: int, filters: np.ndarray, weights: np.ndarray,
                  biases: np.ndarray, rate: float, api: str, conv_rate: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One step of the tutorial's training (``train(im, label)``) in NumPy: the new filters,
    weights and biases. The one place that knows each tutorial's step."""
    x = image / 255 - 0.5
    maps = conv_forward(x, filters)
    pooled = pool_forward(maps)
    flat = pooled.flatten()
    totals, probs = softmax_forward(flat, weights, biases)
    d = _one_hot_loss(probs, label)
    d_t = softmax_d_totals(totals, d, "all" if api == ADAPTATION else "first")
    d_pooled = (weights @ d_t).reshape(pooled.shape)
    new_w = weights - rate * np.outer(flat, d_t)
    new_b = biases - rate * d_t
    d_maps = pool_backprop(maps, d_pooled)
    new_f = filters - (rate if conv_rate is None else conv_rate) * conv_filter_gradient(x, d_maps)
    return new_f, new_w, new_b


def check_training(conv_cls: type | None = None, pool_cls: type | None = None, softmax_cls: type | None = None,
                   *, train: Callable[..., Any] | None = None, layers: tuple[Any, Any, Any] | None = None,
                   steps: int = 40, seed: int = 0, rate: float | None = None) -> TrainingResult:
    """Run ``steps`` training steps on the first MNIST training digits and compare every
    parameter with the tutorial's step after each one (restarting the reference from the
    learner's parameters each step, so the first difference is where the learner's step
    differs, not an echo of an earlier one).

    With ``train`` (the learner's ``train(image, label)``, using the objects in ``layers``:
    (conv, pool, softmax)) the learner's own loop is run; otherwise the tutorial's step is
    run with objects built from the learner's classes.
    """
    result = TrainingResult(steps=steps)
    x, y = _mnist()
    rng = np.random.default_rng(seed + 6)
    if layers is None:
        if conv_cls is None or pool_cls is None or softmax_cls is None:
            raise ValueError("check_training needs the three classes, or train= and layers=")
        conv, pool, softmax = conv_cls(8), pool_cls(), softmax_cls(13 * 13 * 8, 10)
    else:
        conv, pool, softmax = layers
    apis = {detect_api(type(conv)), detect_api(type(softmax))}
    api = ORIGINAL if ORIGINAL in apis else ADAPTATION
    conv_rate = None
    if rate is None:
        rate = _train_rate(train, conv, softmax, api)
        if train is not None and api == ADAPTATION:
            conv_rate = float(getattr(conv, "learn_rate", rate))
    conv.filters = rng.standard_normal((8, 3, 3)) / 9
    softmax.weights = rng.standard_normal((1352, 10)) / 10
    softmax.biases = np.zeros(10)
    if api == ADAPTATION and train is None:
        conv.learn_rate = softmax.learn_rate = rate

    def step(image: np.ndarray, label: int) -> None:
        out = conv.forward(image / 255 - 0.5)
        out = pool.forward(out)
        probs = softmax.forward(out)
        d = _one_hot_loss(np.asarray(probs, dtype=float), label)
        if api == ORIGINAL:
            g = softmax.backprop(d, rate)
            g = pool.backprop(g)
            conv.backprop(g, rate)
        else:
            g = softmax.backprop(d)
            g = pool.backprop(g)
            conv.backprop(g)

    run: Callable[..., Any] = train if train is not None else step
    for s in range(steps):
        image, label = x[s], int(y[s])
        before = [np.array(conv.filters, dtype=float), np.array(softmax.weights, dtype=float),
                  np.array(softmax.biases, dtype=float)]
        try:
            with _time_limit(CALL_SECONDS):
                if train is not None and api == ORIGINAL and _takes_rate(train):
                    run(image, label, rate)
                else:
                    run(image, label)
        except Exception as exc:  # the learner's code: a finding, not a crash
            result.step = s + 1
            if isinstance(exc, NotImplementedError):
                result.status = "not implemented yet"
                result.error = "train raises NotImplementedError" + (f" ({exc})" if str(exc) else "")
            else:
                result.status = "error"
                result.error = f"step {s + 1} raised {type(exc).__name__}: {exc}{_learner_frame(exc)}"
            return result
        expected = expected_step(image, label, before[0], before[1], before[2], rate, api, conv_rate)
        for name, old, exp, got in zip(("conv.filters", "softmax.weights", "softmax.biases"), before, expected,
                                       (conv.filters, softmax.weights, softmax.biases)):
            t = compare("training", f"step {s + 1}", name, exp, got, scale=float(np.abs(exp - old).max()),
                        reference=old)
            if not t.ok:
                result.status, result.step = "wrong", s + 1
                if t.index is not None:
                    result.parameter = f"{name}[{', '.join(map(str, t.index))}]"
                    result.expected, result.actual = t.expected, t.actual
                else:
                    result.error = f"step {s + 1}: {name} {t.problem}"
                return result
    return result


def _takes_rate(fn: Callable[..., Any]) -> bool:
    try:
        return len(inspect.signature(fn).parameters) >= 3
    except (TypeError, ValueError):
        return False


def _train_rate(train: Callable[..., Any] | None, conv: Any, softmax: Any, api: str) -> float:
    if train is None:
        return LEARN_RATE
    if api == ADAPTATION:
        return float(getattr(softmax, "learn_rate", LEARN_RATE))
    try:
        params = list(inspect.signature(train).parameters.values())
        if len(params) >= 3 and params[2].default is not inspect.Parameter.empty:
            return float(params[2].default)
    except (TypeError, ValueError):
        pass
    return LEARN_RATE


# ----------------------------------------------------------------------------------------
# Entry points
# ----------------------------------------------------------------------------------------

def check(conv: type | None = None, pool: type | None = None, softmax: type | None = None, *,
          train: Callable[..., Any] | None = None, layers: tuple[Any, Any, Any] | None = None,
          seed: int = 0, steps: int = 40, training: bool | None = None,
          methods: tuple[str, ...] | list[str] = BOTH) -> CheckResult:
    """Check the given layer classes (any of ``conv``, ``pool``, ``softmax``) and, when all
    three are given and right (or ``train`` is given), a training run of ``steps`` steps.
    ``methods=["forward"]`` checks the constructors and forward passes only (an exercise
    whose backprop is not written yet)."""
    methods = tuple(methods)
    if not methods or set(methods) - set(BOTH):
        raise ValueError(f"check(methods=...) takes 'forward' and/or 'backprop', got {methods!r}")
    result = CheckResult()
    for name, cls, fn in (("Conv3x3", conv, check_conv), ("MaxPool2", pool, check_pool),
                          ("Softmax", softmax, check_softmax)):
        if cls is None:
            result.layers[name] = LayerResult(name, status="missing")
        else:
            result.layers[name] = fn(cls, seed, methods)
    if training is None:
        training = train is not None or all(c is not None for c in (conv, pool, softmax))
    training = training and "backprop" in methods
    if training:
        if train is not None and layers is None:
            raise ValueError("check(train=...) needs layers=(conv, pool, softmax): the objects train() uses")
        if all(r.ok for r in result.layers.values()) or train is not None:
            result.training = check_training(conv, pool, softmax, train=train, layers=layers,
                                             steps=steps, seed=seed)
    return result


def load_module(path: str, time_limit: float | None = None) -> Any:
    """Import the learner's file once, under a private name (so that code under
    ``if __name__ == "__main__":`` does not run). With ``time_limit`` (seconds), an import
    that takes longer raises :class:`TimeLimitError` (SIGALRM: POSIX, main thread)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no file {path!r}")
    name = "_cnn_ext_checked_" + "".join(c if c.isalnum() else "_" for c in os.path.splitext(os.path.basename(path))[0])
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path!r} as Python")
    module = importlib.util.module_from_spec(spec)
    # Registered under its private name, as an import would (dataclasses and pickle look
    # classes up there); a later check of the same file imports it afresh.
    sys.modules[name] = module
    folder = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, folder)  # so that the learner's own imports (conv.py beside it) work
    try:
        if time_limit is None:
            spec.loader.exec_module(module)
        else:
            with _time_limit(time_limit):
                spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    finally:
        if sys.path and sys.path[0] == folder:
            del sys.path[0]
    return module


def check_module(module: Any, *, seed: int = 0, steps: int = 40) -> CheckResult:
    """Check the ``Conv3x3``, ``MaxPool2`` and ``Softmax`` a module defines (or imports), and
    its ``train(image, label)`` when it has one with module-level ``conv``, ``pool`` and
    ``softmax`` objects (as the tutorials' scripts do)."""
    classes = {n: getattr(module, n, None) for n in ("Conv3x3", "MaxPool2", "Softmax")}
    classes = {n: (c if isinstance(c, type) else None) for n, c in classes.items()}
    train = getattr(module, "train", None)
    objs = tuple(getattr(module, n, None) for n in ("conv", "pool", "softmax"))
    if callable(train) and all(o is not None for o in objs):
        result = check(classes["Conv3x3"], classes["MaxPool2"], classes["Softmax"], seed=seed,
                       steps=steps, training=False)
        result.training = check_training(train=train, layers=objs, steps=steps, seed=seed)  # type: ignore[arg-type]
    else:
        result = check(classes["Conv3x3"], classes["MaxPool2"], classes["Softmax"], seed=seed, steps=steps)
    result.source = getattr(module, "__file__", "") or ""
    return result


def check_file(path: str, *, seed: int = 0, steps: int = 40) -> CheckResult:
    """Import ``path`` once and check what it defines (see :func:`check_module`)."""
    result = check_module(load_module(path), seed=seed, steps=steps)
    result.source = path
    return result


# ----------------------------------------------------------------------------------------
# cnn-ext check FILE
# ----------------------------------------------------------------------------------------

def add_parser(subparsers: Any) -> Any:
    """Register ``check`` on the ``cnn-ext`` subcommands; returns its parser."""
    import argparse

    parser = subparsers.add_parser(
        "check", help="check your own Conv3x3, MaxPool2, Softmax (and train) against the tutorial",
        description="Import FILE once and check the Conv3x3, MaxPool2 and Softmax classes it "
                    "defines (any of them; either tutorial's API), and its train(image, label) "
                    "when it has module-level conv, pool and softmax objects. Prints a line per "
                    "layer, the first wrong element in the tutorial's indices and the likely "
                    "cause. Exit status 0 when all is right, 1 otherwise. Code under "
                    "`if __name__ == \"__main__\":` does not run.")
    parser.add_argument("file", metavar="FILE.py", help="your Python file")
    parser.add_argument("--steps", type=_steps, default=40, metavar="N",
                        help="training steps to compare (default 40)")
    parser.add_argument("--seed", type=_steps, default=0, help="seed of the cases (default 0)")
    parser.add_argument("--traceback", action="store_true",
                        help="show the traceback when your code raises")
    parser.add_argument("--import-timeout", type=_seconds, default=IMPORT_SECONDS, metavar="SECONDS",
                        help="stop importing FILE after this long: its top-level code runs "
                             f"first, a tutorial script's training too (default {IMPORT_SECONDS:g})")
    parser.set_defaults(func=cmd_check, parser=parser)
    del argparse
    return parser


def _steps(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= 10000:
        raise argparse.ArgumentTypeError(f"expected 0..10000, got {value}")
    return value


def _seconds(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"expected more than 0 and at most 86400 seconds, got {text}")
    return value


def cmd_check(args: Any) -> int:
    """``cnn-ext check FILE``: print the report; 0 when right, 1 when not, 2 for a bad FILE."""
    if not os.path.isfile(args.file):
        args.parser.error(f"no file {args.file!r}")
    # Said first: importing runs the file's top-level code (a tutorial script trains there).
    print(f"checking {args.file}", flush=True)
    # A file still importing after a while is most likely training at its top level: say so
    # (from a timer thread, while the import runs), and how to stop or avoid it.
    notice = threading.Timer(IMPORT_NOTICE_SECONDS, lambda: print(
        f"still importing {args.file} after {IMPORT_NOTICE_SECONDS:g} s: its top-level code runs "
        "first (a tutorial script trains there). To check the layers alone, put that code "
        "under `if __name__ == \"__main__\":`. Ctrl-C stops; --import-timeout limits the "
        f"wait (now {args.import_timeout:g} s).", flush=True))
    notice.daemon = True
    notice.start()
    try:
        module = load_module(args.file, time_limit=args.import_timeout)
    except TimeLimitError:
        print(f"cnn-ext check: importing {args.file} did not finish within {args.import_timeout:g} s "
              "(--import-timeout): its top-level code was still running. Put the training or any "
              "long work under `if __name__ == \"__main__\":`, which check does not run.")
        return 1
    except Exception as exc:  # the learner's file: one line, the traceback only when asked
        print(f"cnn-ext check: importing {args.file} raised {type(exc).__name__}: {exc}{_learner_frame(exc)}")
        if args.traceback:
            traceback.print_exc(file=sys.stdout)
        return 1
    finally:
        notice.cancel()
    result = check_module(module, seed=args.seed, steps=args.steps)
    result.source = ""  # named above
    print(result.report(verbose=args.traceback))
    return 0 if result.ok else 1
