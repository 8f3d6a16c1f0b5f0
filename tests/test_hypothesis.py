"""Property-based parity of cnn_ext's layers with the tutorial's NumPy classes.

Hypothesis draws shapes (conv images 3..12 x 3..12 with 1..6 or 8 filters; pool volumes
2..11 x 2..11 x 1..9, odd sizes included; softmax input_len 1..50 in any input shape,
nodes 1..12), values (small integer grids full of ties, quarter steps, floats, denormals
down to 5e-324, +-1e300, negative zero, and in part of the cases NaN and +-inf), input
dtypes (float32, float64, int16, uint8, bool) and layouts (C, Fortran, strided views,
negative strides, read-only). 8 filters and 10 nodes are in the ranges because the
kernels have special code paths for the tutorial's sizes.

Finite results agree with the reference to 1e-12 relative to the *magnitude of the
computation* (e.g. ``|image| (*) |filters|`` for a convolution), not to the result
itself: a sum that cancels to nearly zero is only determined to that scale, and the
AVX2 build may fuse multiply-adds, changing the last bits.

NaN/inf behaviour, per layer (what the tests check):

* ``Conv3x3``: forward and backprop are plain IEEE sums of products, so NaN/inf
  propagate as IEEE says (NaN in -> NaN; inf * 0 -> NaN; +inf + -inf -> NaN; otherwise
  +-inf), exactly as in the reference: the NaN/+inf/-inf pattern must match position by
  position (values are kept to <= 1e300 * 100, so no sum of finite products overflows and
  the pattern does not depend on summation order).
* ``MaxPool2``: a window containing NaN has maximum NaN (as ``np.amax``) and routes no
  gradient (NaN equals nothing); +-inf are ordinary values. Forward and backprop must
  equal the reference exactly (NaN where it has NaN). The one tolerated difference is
  the sign of a zero maximum of a window holding both 0.0 and -0.0 (equal values; which
  one ``np.amax`` returns is an implementation detail): compared with ``==``.
* ``Softmax``: cnn_ext shifts the totals by their maximum, so finite totals never
  overflow (the outputs are then finite, in [0, 1], summing to 1), unlike the
  reference, which overflows above ~709. Probabilities are therefore compared only where
  the reference is well-defined (all totals finite and <= 700, the largest >= -708; an
  element whose total is below -708 is a denormal in the reference and skipped). NaN in
  the totals gives all-NaN in both. A +inf total gives all-NaN in cnn_ext (inf - inf in
  the shift; the reference has NaN there and 0 elsewhere). All totals -inf gives all-NaN
  in both; a -inf total among finite ones gives exactly 0 in both. Backprop is compared
  where the reference's ``S ** 2`` and ``t_exp[i] * t_exp[k] / S ** 2`` are finite and
  normal (totals in [-300, 300], spread <= 350) with
  finite upstream gradients; a NaN upstream gradient makes everything NaN in both, and
  the tutorial's ``-1 / p`` with ``p == 0`` (an -inf gradient) too.

``Network.predict_proba`` must give bit-identical results on 1 and 2 OpenMP threads.
"""
import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import cnn_ext_reference as ref
from cnn_ext import Conv3x3, MaxPool2, Network, Softmax

RTOL = 1e-12
ATOL = 1e-300  # rounding in the denormal range (and the reference's denormal exps)

SETTINGS = settings(max_examples=80, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

DTYPES = [np.float64, np.float32, np.int16, np.uint8, np.bool_]
LAYOUTS = ["C", "F", "strided", "reversed", "readonly"]
FILTER_COUNTS = [1, 2, 3, 4, 5, 6, 8]

SPECIAL64 = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1e-300, 1e300, -1e300, 1.0, -1.0]
SPECIAL32 = [float(np.float32(v)) for v in (0.0, -0.0, 1e-45, -1e-45, 1.1754944e-38, 3e38, -3e38, 1.0, -1.0)]
NONFINITE = [np.nan, np.inf, -np.inf]


# --------------------------------------------------------------------------- strategies

def values(dtype, nonfinite=False, huge=True):
    """Elements of ``dtype``: ties-heavy grids, ordinary floats, edge values."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return st.booleans()
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        small = st.integers(max(info.min, -3), 3)
        if not huge:  # keeps totals within the reference's range
            return st.one_of(small, st.integers(max(info.min, -20), 20))
        return st.one_of(small, st.integers(int(info.min), int(info.max)),
                         st.sampled_from([int(info.min), int(info.max), 0]))
    width = 32 if dtype == np.float32 else 64
    special = [v for v in (SPECIAL32 if width == 32 else SPECIAL64) if huge or abs(v) < 1e30]
    options = [
        st.integers(-3, 3).map(float),  # many ties
        st.integers(-16, 16).map(lambda k: k / 4),
        st.floats(-10, 10, width=width),
        st.sampled_from(special),
    ]
    if nonfinite:
        options.append(st.sampled_from(NONFINITE))
    return st.one_of(*options)


def modest(nonfinite=False):
    """float64 parameters/gradients with |value| <= 100 (plus NaN/inf if asked)."""
    options = [st.integers(-3, 3).map(float), st.integers(-16, 16).map(lambda k: k / 4),
               st.floats(-100, 100), st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 1e-300])]
    if nonfinite:
        options.append(st.sampled_from(NONFINITE))
    return st.one_of(*options)


def array(data, dtype, shape, elements):
    return data.draw(hnp.arrays(dtype, shape, elements=elements))


def sprinkle(data, a, special=NONFINITE):
    """Set a few entries of float array ``a`` to NaN/inf (elements alone rarely do)."""
    if a.dtype.kind == "f" and a.size:
        for _ in range(data.draw(st.integers(1, 3))):
            a.flat[data.draw(st.integers(0, a.size - 1))] = data.draw(st.sampled_from(special))
    return a


def relayout(a, layout):
    """The same values in another memory layout (the reference always gets ``a``)."""
    if layout == "C":
        return np.ascontiguousarray(a)
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "strided":
        big = np.zeros(tuple(2 * n for n in a.shape), dtype=a.dtype)
        view = big[(slice(None, None, 2),) * a.ndim]
        view[...] = a
        return view
    if layout == "reversed":
        return a[::-1].copy()[::-1]
    if layout == "readonly":
        b = a.copy()
        b.flags.writeable = False
        return b
    raise AssertionError(layout)


# --------------------------------------------------------------------------- comparison

def assert_matches(got, want, scale, what):
    """Same NaN/+inf/-inf pattern; finite entries within RTOL * scale + ATOL."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), want.shape)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    for name, test in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        bad = test(got) != test(want)
        assert not bad.any(), (f"{what}: {name} pattern differs at {np.argwhere(bad)[:5].tolist()}",
                               got, want)
    finite = np.isfinite(want)
    with np.errstate(all="ignore"):
        err = np.abs(got[finite] - want[finite])
        bound = RTOL * np.where(np.isfinite(scale[finite]), scale[finite], np.abs(want[finite])) + ATOL
    bad = ~(err <= bound)
    assert not bad.any(), (f"{what}: {bad.sum()} finite value(s) differ beyond 1e-12 of the scale",
                           got[finite][bad][:5], want[finite][bad][:5], scale[finite][bad][:5])


def assert_exact(got, want, what):
    """Equal values, NaN where the reference has NaN (``==`` semantics: 0.0 == -0.0)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    assert np.array_equal(got, want, equal_nan=True), (what, got, want)


def paired(cls_fast, cls_ref, *args):
    np.random.seed(0)
    fast = cls_fast(*args)
    np.random.seed(0)
    slow = cls_ref(*args)
    return fast, slow


# --------------------------------------------------------------------------- Conv3x3

@SETTINGS
@given(data=st.data())
def test_conv3x3_matches_reference(data):
    h, w = data.draw(st.integers(3, 12)), data.draw(st.integers(3, 12))
    nf = data.draw(st.sampled_from(FILTER_COUNTS))
    dtype = data.draw(st.sampled_from(DTYPES))
    nonfinite = data.draw(st.booleans())
    image = array(data, dtype, (h, w), values(dtype, nonfinite))
    if nonfinite and data.draw(st.booleans()):
        sprinkle(data, image)
    filters = array(data, np.float64, (nf, 3, 3), modest(nonfinite and data.draw(st.booleans())))
    grad = array(data, np.float64, (h - 2, w - 2, nf), modest(nonfinite and data.draw(st.booleans())))
    rate = data.draw(st.sampled_from([0.005, 0.01, 0.5, 1.0]))

    fast, slow = paired(Conv3x3, ref.Conv3x3, nf)
    fast.filters, slow.filters = filters.copy(), filters.copy()
    fast.learn_rate = slow.learn_rate = rate
    with np.errstate(all="ignore"):
        out = fast.forward(relayout(image, data.draw(st.sampled_from(LAYOUTS))))
        # cnn_ext converts any input to float64 (exactly, for every drawn dtype); the
        # reference gets the same float64 image. Given float32, NumPy 1.x's value-based
        # casting would make the reference's backprop (float64 scalar * float32 region)
        # compute in float32, which is not what either computes on float64 input.
        expected = slow.forward(image.astype(np.float64))
        # Scale of each sum: the same convolution of the absolute values.
        absolute = ref.Conv3x3(nf)
        absolute.filters = np.abs(filters)
        scale = absolute.forward(np.abs(image.astype(np.float64)))
        assert out.dtype == np.float64 and out.flags.c_contiguous
        event("conv: non-finite outputs" if not np.isfinite(expected).all() else "conv: finite")
        assert_matches(out, expected, scale, "Conv3x3.forward")

        assert fast.backprop(relayout(grad, data.draw(st.sampled_from(LAYOUTS)))) is None
        slow.backprop(grad)
        absolute.filters = np.zeros((nf, 3, 3))
        absolute.learn_rate = -1.0  # filters = 0 + sum |d| * |region|
        absolute.backprop(np.abs(grad))
        update_scale = np.abs(filters) + rate * absolute.filters
        assert_matches(fast.filters, slow.filters, update_scale, "Conv3x3 updated filters")


# --------------------------------------------------------------------------- MaxPool2

@SETTINGS
@given(data=st.data())
def test_maxpool2_matches_reference(data):
    shape = (data.draw(st.integers(2, 11)), data.draw(st.integers(2, 11)), data.draw(st.integers(1, 9)))
    dtype = data.draw(st.sampled_from(DTYPES))
    nonfinite = data.draw(st.booleans())
    x = array(data, dtype, shape, values(dtype, nonfinite))
    if nonfinite and data.draw(st.booleans()):
        sprinkle(data, x)
    grad = array(data, np.float64, (shape[0] // 2, shape[1] // 2, shape[2]),
                 values(np.float64, nonfinite and data.draw(st.booleans())))

    fast, slow = MaxPool2(), ref.MaxPool2()
    with np.errstate(all="ignore"):
        out = fast.forward(relayout(x, data.draw(st.sampled_from(LAYOUTS))))
        expected = slow.forward(x)
        assert out.dtype == np.float64
        assert_exact(out, expected, "MaxPool2.forward")

        d_input = fast.backprop(relayout(grad, data.draw(st.sampled_from(LAYOUTS))))
        d_expected = slow.backprop(grad)
    assert d_input.shape == x.shape
    # Routing copies values: bit for bit the reference's, NaN and signed zeros included.
    assert_exact(d_input, d_expected, "MaxPool2.backprop")
    assert np.array_equal(np.signbit(d_input), np.signbit(d_expected))
    # Windows holding a NaN route nothing; odd trailing rows/columns get zeros.
    h2, w2 = 2 * (shape[0] // 2), 2 * (shape[1] // 2)
    assert not d_input[h2:].any() and not d_input[:, w2:].any()
    windows = np.asarray(x, dtype=np.float64)[:h2, :w2].reshape(h2 // 2, 2, w2 // 2, 2, shape[2])
    nan_windows = np.isnan(windows).any(axis=(1, 3))
    routed = d_input[:h2, :w2].reshape(h2 // 2, 2, w2 // 2, 2, shape[2])
    assert not routed.any(axis=(1, 3))[nan_windows].any()
    if nan_windows.any():
        event("maxpool: a window holds NaN")
    ties = ((windows == np.asarray(out)[:, None, :, None]).sum(axis=(1, 3)) > 1).any()
    event("maxpool: tied maxima" if ties else "maxpool: no ties")
    assert np.isnan(out[nan_windows]).all()


# --------------------------------------------------------------------------- Softmax

def _shape_for(data, length):
    return data.draw(st.sampled_from([(length,), (length, 1), (1, length), (1, length, 1)]))


def _check_probabilities(out, expected, totals):
    """The Softmax forward contract of the module docstring."""
    if np.isnan(totals).any() or np.isposinf(totals).any() or np.isneginf(totals).all():
        event("softmax forward: NaN, +inf or all -inf totals")
        assert np.isnan(out).all(), (totals, out)
        if np.isnan(totals).any() or np.isneginf(totals).all():
            assert np.isnan(expected).all()
        return
    # No NaN, no +inf, at least one finite total: cnn_ext never overflows.
    assert np.isfinite(out).all() and (out >= 0).all() and (out <= 1).all(), (totals, out)
    assert abs(out.sum() - 1) <= 1e-12 * len(out) + 1e-15, out.sum()
    assert (out[np.isneginf(totals)] == 0).all()
    finite = totals[np.isfinite(totals)]
    if finite.max() <= 700 and finite.max() >= -708:  # the reference is well-defined
        event("softmax forward: compared with the reference")
        compare = np.isfinite(totals) & (totals >= -708)
        assert_matches(out[compare], expected[compare], np.abs(expected[compare]),
                       "Softmax.forward probabilities")
        assert (expected[np.isneginf(totals)] == 0).all()
    else:
        event("softmax forward: beyond the reference's range")


@SETTINGS
@given(data=st.data())
def test_softmax_forward_matches_reference(data):
    length, nodes = data.draw(st.integers(1, 50)), data.draw(st.integers(1, 12))
    dtype = data.draw(st.sampled_from(DTYPES))
    nonfinite = data.draw(st.booleans())
    x = array(data, dtype, _shape_for(data, length), values(dtype, nonfinite))
    weights = array(data, np.float64, (length, nodes), modest(nonfinite and data.draw(st.booleans())))
    biases = array(data, np.float64, (nodes,), modest())

    fast, slow = paired(Softmax, ref.Softmax, length, nodes)
    fast.weights, slow.weights = weights.copy(), weights.copy()
    fast.biases, slow.biases = biases.copy(), biases.copy()
    with np.errstate(all="ignore"):
        out = fast.forward(relayout(x, data.draw(st.sampled_from(LAYOUTS))))
        expected = slow.forward(x)
        flat = np.abs(x.astype(np.float64).ravel())
        totals_scale = flat @ np.abs(weights) + np.abs(biases)
    assert out.shape == (nodes,) and out.dtype == np.float64
    assert fast.last_input_shape == x.shape
    assert_matches(fast.last_totals, slow.last_totals, totals_scale, "Softmax totals")
    _check_probabilities(out, expected, fast.last_totals)


@SETTINGS
@given(data=st.data())
def test_softmax_backprop_matches_reference(data):
    length, nodes = data.draw(st.integers(1, 50)), data.draw(st.integers(1, 12))
    dtype = data.draw(st.sampled_from(DTYPES))
    x = array(data, dtype, _shape_for(data, length), values(dtype, huge=False))
    if dtype in (np.float64, np.float32) and data.draw(st.integers(0, 7)) == 0:
        x.flat[data.draw(st.integers(0, length - 1))] = np.nan
    weights = array(data, np.float64, (length, nodes), modest())
    biases = array(data, np.float64, (nodes,), modest())
    rate = data.draw(st.sampled_from([0.005, 0.01, 0.5]))

    fast, slow = paired(Softmax, ref.Softmax, length, nodes)
    fast.weights, slow.weights = weights.copy(), weights.copy()
    fast.biases, slow.biases = biases.copy(), biases.copy()
    fast.learn_rate = slow.learn_rate = rate
    with np.errstate(all="ignore"):
        out = fast.forward(relayout(x, data.draw(st.sampled_from(LAYOUTS))))
        expected = slow.forward(x)
        mode = data.draw(st.sampled_from(["tutorial", "tutorial", "any", "any", "zeros", "nan"]))
        label = data.draw(st.integers(0, nodes - 1))
        if mode == "tutorial":  # the network's gradient: -1/p at the label, -inf when p == 0
            grad = np.zeros(nodes)
            grad[label] = -1 / expected[label] if expected[label] != 0 else -np.inf
        elif mode == "zeros":
            grad = np.zeros(nodes)
        else:
            grad = array(data, np.float64, (nodes,), st.one_of(st.just(0.0), modest()))
            if mode == "nan":
                grad[label] = np.nan
        d_input = fast.backprop(relayout(grad, data.draw(st.sampled_from(LAYOUTS))))
        d_expected = slow.backprop(grad)
    assert d_input.shape == x.shape
    results = ((d_input, d_expected, "input gradient"), (fast.weights, slow.weights, "weights"),
               (fast.biases, slow.biases, "biases"))

    totals = fast.last_totals
    if not grad.any():  # the tutorial's loop skips zero entries: nothing changes
        assert not d_input.any()
        assert np.array_equal(fast.weights, weights) and np.array_equal(fast.biases, biases)
        assert_exact(d_input, d_expected, "Softmax.backprop with zero gradient")
        return
    if np.isnan(grad).any() or np.isnan(totals).any() or (np.isneginf(grad).any() and out[label] == 0):
        # NaN upstream, NaN totals, or -1/p with p == 0 in both: everything NaN in both.
        event("softmax backprop: all NaN")
        for got, want, what in results:
            assert np.isnan(got).all() and np.isnan(want).all(), what
        return
    assert np.isfinite(totals).all()
    if np.abs(totals).max() > 300 or np.ptp(totals) > 350 or np.isinf(grad).any():
        # The reference's S ** 2 overflows, or its t_exp[i] * t_exp[k] / S ** 2 is a
        # denormal (inexact): only cnn_ext's own contract.
        event("softmax backprop: beyond the reference's range")
        if np.isfinite(grad).all():
            for got, _, what in results:
                assert np.isfinite(got).all(), what
        return
    event(f"softmax backprop: compared with the reference ({mode})")
    p = np.exp(totals - totals.max())
    p /= p.sum()
    scale_t = p * (np.abs(grad) + np.abs(grad) @ p)  # bounds every term of d_L_d_t
    flat = np.abs(x.astype(np.float64).ravel())
    assert_matches(d_input.ravel(), d_expected.ravel(), np.abs(weights) @ scale_t,
                   "Softmax input gradient")
    assert_matches(fast.weights, slow.weights, np.abs(weights) + rate * np.outer(flat, scale_t),
                   "Softmax updated weights")
    assert_matches(fast.biases, slow.biases, np.abs(biases) + rate * scale_t,
                   "Softmax updated biases")


# --------------------------------------------------------------------------- Network

@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_predict_proba_same_on_one_and_two_threads(data):
    h, w = data.draw(st.integers(4, 30)), data.draw(st.integers(4, 30))
    net = Network(num_filters=data.draw(st.sampled_from(FILTER_COUNTS)), image_shape=(h, w),
                  seed=data.draw(st.integers(0, 2 ** 32 - 1)))
    n = data.draw(st.integers(0, 12))
    images = array(data, np.uint8, (n, h, w), st.integers(0, 255))
    one = net.predict_proba(images, num_threads=1)
    two = net.predict_proba(images, num_threads=2)
    assert one.shape == (n, 10)
    assert one.tobytes() == two.tobytes()
    if n:
        default = net.predict_proba(images)
        assert default.tobytes() == one.tobytes()
