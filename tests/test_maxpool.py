"""MaxPool2's kernels, both builds in one run, on the inputs their fast paths treat apart.

The AVX2 kernels take plain maxima and see a NaN with a few compares (kernels/maxpool.h):
a NaN at each position of a window, in each lane, for filter counts that are and are not
multiples of 4, must still win the maximum and stop that window's routing. Infinities,
0.0 against -0.0 and odd sizes too. The references are np.amax over the windows and the
tutorial's loops (cnn_ext_reference).
"""
import platform

import numpy as np
import pytest

import cnn_ext_reference as ref
from cnn_ext import _kernels

FILTERS = [1, 2, 3, 4, 5, 7, 8, 9, 12, 13]  # multiples of 4 (vector lanes) and remainders
POSITIONS = [(0, 0), (0, 1), (1, 0), (1, 1)]  # top-left, top-right, bottom-left, bottom-right
ODD_NAN = np.frombuffer(np.uint64(0x7FF8_0000_0000_0123).tobytes(), np.float64)[0]


def _builds():
    found = [("portable", _kernels)]
    if platform.machine().lower() in ("x86_64", "amd64") and _kernels.cpu_has_avx2_fma():
        try:
            from cnn_ext import _kernels_avx2
        except ImportError:
            print("the AVX2 kernels are not built: only the portable ones are tested")
        else:
            found.append(("avx2", _kernels_avx2))
    if platform.machine().lower() in ("x86_64", "amd64") and _kernels.cpu_has_avx512():
        try:
            from cnn_ext import _kernels_avx512
        except ImportError:
            print("the AVX-512 kernels are not built: tests/test_kernel_builds.py says whether they must be")
        else:
            found.append(("avx512", _kernels_avx512))
    return found


BUILDS = dict(_builds())


@pytest.fixture(params=list(BUILDS))
def k(request):
    return BUILDS[request.param]


def windows_amax(x):
    """np.amax over each 2x2 window of x (h, w, nf): (h//2, w//2, nf)."""
    h, w, nf = x.shape
    h2, w2 = h // 2 * 2, w // 2 * 2
    return np.amax(x[:h2, :w2].reshape(h2 // 2, 2, w2 // 2, 2, nf), axis=(1, 3))


def reference_backprop(x, grad):
    pool = ref.MaxPool2()
    pool.forward(x)
    return pool.backprop(grad)


def bits(a):
    return np.ascontiguousarray(a, dtype=np.float64).view(np.uint64)


def check(k, x, grad):
    """Forward equals np.amax (NaN where it is NaN), backprop equals the tutorial's loops bit
    for bit; the output arguments give the same bits as fresh arrays."""
    out = k.maxpool2_forward(x)
    assert np.array_equal(out, windows_amax(x), equal_nan=True)
    preset = np.full(out.shape, 7.0)
    assert k.maxpool2_forward(x, preset) is preset and np.array_equal(bits(preset), bits(out))
    d = k.maxpool2_backprop(x, grad)
    assert np.array_equal(bits(d), bits(reference_backprop(x, grad)))
    garbage = np.full(x.shape, np.nan)  # every position must be written, trailing ones too
    assert k.maxpool2_backprop(x, grad, garbage) is garbage
    assert np.array_equal(bits(garbage), bits(d))
    return out, d


@pytest.mark.parametrize("nf", FILTERS)
def test_a_nan_at_each_position_and_lane_wins_and_routes_nothing(k, nf):
    rng = np.random.default_rng(nf)
    base = rng.integers(-3, 4, size=(6, 7, nf)).astype(np.float64)  # ties, odd width
    grad = rng.standard_normal((3, 3, nf))
    for lane in range(nf):
        for di, dj in POSITIONS:
            x = base.copy()
            i, j = 2 + di, 2 + dj  # the window (1, 1)
            x[i, j, lane] = ODD_NAN
            out, d = check(k, x, grad)
            # the NaN wins with its own bits; the other lanes and windows are untouched
            assert bits(out)[1, 1, lane] == bits(ODD_NAN)
            clean = out.copy()
            clean[1, 1, lane] = windows_amax(base)[1, 1, lane]
            assert np.array_equal(bits(clean), bits(k.maxpool2_forward(base)))
            assert not d[2:4, 2:4, lane].any()
            routed = d.copy()
            routed[2:4, 2:4, lane] = k.maxpool2_backprop(base, grad)[2:4, 2:4, lane]
            assert np.array_equal(bits(routed), bits(k.maxpool2_backprop(base, grad)))


@pytest.mark.parametrize("nf", FILTERS)
def test_nan_everywhere_and_nan_only_in_trailing_rows(k, nf):
    grad = np.arange(1.0, 1 + 3 * 2 * nf).reshape(3, 2, nf)
    everywhere = np.full((6, 5, nf), np.nan)
    out, d = check(k, everywhere, grad)
    assert np.isnan(out).all() and not d.any()
    # NaN only where no window reaches: no effect on the maxima, zero gradient there
    x = np.random.default_rng(1).standard_normal((7, 5, nf))
    x[6], x[:, 4] = np.nan, np.nan
    out, d = check(k, x, grad)
    assert not np.isnan(out).any() and not d[6].any() and not d[:, 4].any()


@pytest.mark.parametrize("nf", FILTERS)
def test_infinities(k, nf):
    rng = np.random.default_rng(100 + nf)
    x = rng.choice([-np.inf, np.inf, -1.0, 0.0, 2.0], size=(8, 6, nf))
    x[:2, :2] = -np.inf  # a window of -inf only: its maximum is -inf and all four tie
    x[2:4, :2] = np.inf  # and one of +inf only
    grad = rng.standard_normal((4, 3, nf))
    out, d = check(k, x, grad)
    assert (out[0, 0] == -np.inf).all() and (out[1, 0] == np.inf).all()
    assert np.array_equal(d[:2, :2], np.broadcast_to(grad[0, 0], (2, 2, nf)))


@pytest.mark.parametrize("nf", FILTERS)
def test_signed_zero_ties(k, nf):
    """Every pattern of 0.0 and -0.0 in a window, one pattern per window: all four tie and
    get the gradient; the maximum is the first of them in the order top-left, top-right,
    bottom-left, bottom-right (the tutorial's scalar loop), sign included."""
    patterns = np.array([[(p >> b) & 1 for b in range(4)] for p in range(16)], bool)
    x = np.zeros((2, 32, nf))
    for p, signs in enumerate(patterns):
        for (di, dj), negative in zip(POSITIONS, signs):
            x[di, 2 * p + dj] = -0.0 if negative else 0.0
    grad = np.random.default_rng(2).standard_normal((1, 16, nf))
    out, d = check(k, x, grad)
    assert np.array_equal(np.signbit(out[0, :, 0]), patterns[:, 0])
    assert np.array_equal(bits(d.reshape(2, 16, 2, nf).transpose(1, 0, 2, 3)),
                          bits(np.broadcast_to(grad[0][:, None, None, :], (16, 2, 2, nf))))


@pytest.mark.parametrize("shape", [(2, 2), (3, 3), (2, 5), (5, 2), (7, 9), (26, 26), (27, 25)])
@pytest.mark.parametrize("nf", FILTERS)
def test_sizes_ties_and_random_values(k, shape, nf):
    rng = np.random.default_rng(shape[0] * 100 + shape[1] * 10 + nf)
    grad = rng.standard_normal((shape[0] // 2, shape[1] // 2, nf))
    ties = rng.integers(-1, 2, size=(*shape, nf)).astype(np.float64)
    spread = rng.standard_normal((*shape, nf))
    for x in (ties, spread, -np.abs(spread)):
        out, d = check(k, x, grad)
        if shape[0] % 2:
            assert not d[-1].any()
        if shape[1] % 2:
            assert not d[:, -1].any()


def test_both_builds_agree(k):
    """The maxima and the routing are copies of input values: the builds give the same bits."""
    rng = np.random.default_rng(3)
    for nf in FILTERS:
        x = rng.integers(-2, 3, size=(9, 11, nf)).astype(np.float64)
        x[rng.random(x.shape) < 0.02] = np.nan
        grad = rng.standard_normal((4, 5, nf))
        got = k.maxpool2_forward(x), k.maxpool2_backprop(x, grad)
        want = _kernels.maxpool2_forward(x), _kernels.maxpool2_backprop(x, grad)
        assert np.array_equal(bits(got[0]), bits(want[0])) and np.array_equal(bits(got[1]), bits(want[1]))
