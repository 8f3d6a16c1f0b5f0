"""The checked path of the layer façades and Network: friendly checks and conversions.

The compiled kernels check their own arrays (float64, C-contiguous, dimensions, shapes,
writable where written) and raise on anything else; the façades hand common inputs straight
to them and come here for the rest. Here an input gets its number of dimensions, shape and
real numeric dtype checked, with an error that names the call, and is converted once to
C-contiguous float64 (a no-op for arrays that already are); layer parameters are made
writable C-contiguous float64 in place; learn rates and counts are checked.
"""
from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from typing import Protocol

    import numpy.typing as npt

    class _Learner(Protocol):
        """A layer with a ``learn_rate`` (read only here: any value, checked by learn_rate())."""

        @property
        def learn_rate(self) -> object: ...


_REAL_KINDS = "biuf"  # bool, signed, unsigned, floating
# Native float64 is a singleton dtype: an identity test is the cheapest check there is,
# and these checks run on every layer call.
_FLOAT64 = np.dtype(np.float64)
_MAX_FLOAT = float(np.finfo(np.float64).max)


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    return f"{type(value).__name__}"


def as_float64(value: object, where: str, ndim: int | None = None) -> npt.NDArray[np.float64]:
    """``value`` as a C-contiguous float64 ndarray, after checking its dtype and ndim.

    ``where`` names the argument in error messages, e.g. ``"Conv3x3.forward(input)"``.
    Read-only arrays are fine (the kernels never write to inputs).
    """
    if type(value) is np.ndarray and value.dtype is _FLOAT64 and value.flags.c_contiguous:
        if ndim is None or value.ndim == ndim:
            return value  # the common case, answered with as few attribute reads as possible
        array = value
    else:
        try:
            array = np.asarray(value)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"{where} expects a numeric array, got {_describe(value)}: {exc}") from None
        if array.dtype.kind not in _REAL_KINDS:
            raise TypeError(
                f"{where} expects a real numeric array (bool, int, uint or float), "
                f"got dtype {array.dtype}"
            )
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{where} expects a {ndim}-D array, got {array.ndim}-D with shape {array.shape}")
    if array.dtype is not _FLOAT64 or not array.flags.c_contiguous:
        array = np.ascontiguousarray(array, dtype=np.float64)
    return array


def expect_shape(array: npt.NDArray[np.float64], shape: tuple[int, ...], where: str, hint: str = "") -> None:
    if array.shape != shape:
        raise ValueError(f"{where} expects shape {shape}{hint}, got {array.shape}")


def parameter(layer: object, name: str, shape: tuple[int, ...]) -> npt.NDArray[np.float64]:
    """The layer's parameter array ``name``, made writable C-contiguous float64 in place.

    Users may assign any array to ``filters``/``weights``/``biases`` (the tutorial's
    ModelSaver does); one that is not float64 C-contiguous and writable is converted once
    and stored back, so later updates happen in place on the stored array.
    """
    # Typed as what this returns: until checked below it may be anything (a list, say).
    value: npt.NDArray[np.float64] = getattr(layer, name)
    flags = value.flags if type(value) is np.ndarray else None
    if flags is not None and value.dtype is _FLOAT64 and flags.c_contiguous and flags.writeable \
            and value.shape == shape:
        return value
    if not (flags is not None and value.dtype is _FLOAT64 and flags.c_contiguous and flags.writeable):
        where = f"{type(layer).__name__}.{name}"
        value = np.array(as_float64(value, where), dtype=np.float64, order="C", copy=True)
        setattr(layer, name, value)
    if value.shape != shape:
        raise ValueError(f"{type(layer).__name__}.{name} must have shape {shape}, got {value.shape}")
    return value


def learn_rate(layer: _Learner, given: object = None, method: str = "backprop") -> float:
    """The rate a layer learns with now, as a float, if it is a finite number > 0.

    ``given`` is the rate passed to the call (the English tutorial's
    ``backprop(d_L_d_out, learn_rate)``); ``None`` means the layer's own ``learn_rate``
    (the adaptation's constructor argument, or the class default). A zero, negative, NaN
    or infinite rate would silently turn every weight into NaN or stop learning; it is
    refused when a layer is about to learn with it.
    """
    rate = layer.learn_rate if given is None else given
    if type(rate) is float and 0.0 < rate <= _MAX_FLOAT:  # False for NaN
        return rate
    where = (f"{type(layer).__name__}.learn_rate" if given is None
             else f"{type(layer).__name__}.{method}(learn_rate)")
    if not isinstance(rate, numbers.Real) or isinstance(rate, (bool, np.bool_)):
        raise TypeError(f"{where} must be a positive number, got {rate!r}")
    value = float(rate)
    if not 0.0 < value <= _MAX_FLOAT:
        raise ValueError(f"{where} must be a finite number > 0, got {rate!r}")
    return value


def positive_int(value: object, where: str) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{where} must be a positive integer, got {value!r}")
    return int(value)
