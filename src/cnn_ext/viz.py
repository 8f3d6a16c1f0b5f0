"""Figures of the tutorial's network: filters, one traced step, gradients, softmax templates,
training curves, the max-pool tie rule, and a live view of training.

Each ``plot_*`` function returns a :class:`matplotlib.figure.Figure` (made without
``pyplot``, so nothing is shown or kept open: in Jupyter the returned figure displays itself;
elsewhere ``fig.savefig("name.png")``). Matplotlib is the ``[plot]`` extra and is imported
only when a function here is called: ``import cnn_ext`` never imports it.

Colours: arrays that take both signs (filters, conv maps, gradients, weights) use a
diverging map centred on 0 (red positive, blue negative, white 0), one symmetric scale per
group of panels so that panels of a group compare; images use grey.
"""
from __future__ import annotations

import math
import operator
import os
import sys
import time
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt
    from matplotlib.axes import Axes
    from matplotlib.colorbar import Colorbar
    from matplotlib.figure import Figure, SubFigure
    from matplotlib.image import AxesImage
    from matplotlib.lines import Line2D
    from matplotlib.text import Text

    from .history import EpochRecord, History, StepRecord
    from .network import Network
    from .trace import Trace

__all__ = ["plot_filters", "plot_trace", "plot_gradients", "plot_explain", "plot_softmax_templates",
           "plot_history", "plot_tie_rule", "LiveTraining", "NoDisplayError"]

DIVERGING = "RdBu_r"
# Marks of the tie mask: positions equal to their window's maximum, by how many of the
# window's four positions are (1 = a single maximum, 4 = all four tie).
TIE_MARKS: dict[int, dict[str, Any]] = {
    4: dict(marker="s", s=5, facecolors="none", edgecolors="#222222", linewidths=0.45),
    3: dict(marker="^", s=9, facecolors="#ff9f1c", edgecolors="#7a4a00", linewidths=0.3),
    2: dict(marker="D", s=6, facecolors="#2ec4b6", edgecolors="#0b4f49", linewidths=0.3),
    1: dict(marker="o", s=5, facecolors="#111111", edgecolors="none"),
}
TIE_NAMES = {4: "4-way tie", 3: "3-way tie", 2: "2-way tie", 1: "single maximum"}
_PRED = "#e4572e"
_BAR = "#9db4cc"


def _matplotlib() -> tuple[ModuleType, type[Figure]]:
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError('cnn_ext.viz needs matplotlib, which is not installed: '
                          'pip install "cnn_ext[plot]"') from exc
    return matplotlib, Figure


def _figure(figsize: tuple[float, float], **kwargs: Any) -> Figure:
    _, Figure = _matplotlib()
    return Figure(figsize=figsize, **kwargs)


def _signed_bars(ax: Axes, values: npt.NDArray[np.float64], title: str) -> None:
    """One bar per class, red above zero and blue below, on a zero line: a gradient over
    the softmax's nodes."""
    colours = ["#b2182b" if v > 0 else "#2166ac" for v in values]
    ax.bar(range(len(values)), values, color=colours, width=0.75)
    ax.axhline(0, color="#777777", linewidth=0.6)
    ax.set_xticks(range(len(values)))
    ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=9)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _symmetric(*arrays: npt.ArrayLike) -> float:
    """The largest finite absolute value over ``arrays`` (1 if there is none): the half-range
    of a diverging scale centred on 0."""
    m = 0.0
    for a in arrays:
        a = np.asarray(a, dtype=np.float64)
        finite = a[np.isfinite(a)]
        if finite.size:
            m = max(m, float(np.abs(finite).max()))
    return m if m > 0 else 1.0


def _bare(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _as_filters(value: npt.ArrayLike, where: str) -> npt.NDArray[np.float64]:
    a = np.asarray(value, dtype=np.float64)
    if a.ndim != 3 or a.shape[1:] != (3, 3) or a.shape[0] < 1:
        raise ValueError(f"{where} expects filters of shape (nf, 3, 3), got shape {a.shape}")
    return a


def _colorbar(fig: Figure | SubFigure, image: AxesImage, axes: Any, label: str | None = None,
              **kwargs: Any) -> Colorbar:
    bar = fig.colorbar(image, ax=axes, shrink=kwargs.pop("shrink", 0.9), pad=kwargs.pop("pad", 0.02),
                       **kwargs)
    if label:
        bar.set_label(label, fontsize=8)
    bar.ax.tick_params(labelsize=7)
    return bar


# --------------------------------------------------------------------------- filters


MAX_FILTERS = 16  # filters per row in plot_filters, plot_softmax_templates and LiveTraining, unless chosen


def _checked_maps(maps: Sequence[int], nf: int, count: int, who: str) -> list[int]:
    """``maps`` as a list of 1..count different filter indices in 0..nf-1; a TypeError
    (not a sequence of whole numbers: 5, "ab", [1.5]) or ValueError naming ``who`` if not."""
    try:
        chosen = [operator.index(m) for m in maps]
    except TypeError:
        raise TypeError(f"{who}: maps must be a sequence of filter indices (whole numbers), "
                        f"got {maps!r}") from None
    bad = [m for m in chosen if not 0 <= m < nf]
    if bad:
        raise ValueError(f"{who}: maps must be filter indices in 0..{nf - 1}, got {bad}")
    if not chosen or len(set(chosen)) != len(chosen) or len(chosen) > count:
        raise ValueError(f"{who}: give 1..{count} different filter indices, got {chosen}")
    return chosen


def _chosen_filters(nf: int, maps: Sequence[int] | None, who: str) -> tuple[list[int], str]:
    """The filters a figure draws: ``maps`` (indices in 0..nf-1, at most ``MAX_FILTERS``, no
    repeats), or all of them up to ``MAX_FILTERS``, else the first ``MAX_FILTERS``; and the
    words naming the choice ("" when all are drawn), so that a wide network's figure stays
    bounded in size and time."""
    if maps is not None:
        chosen = _checked_maps(maps, nf, MAX_FILTERS, who)
        return chosen, ("" if chosen == list(range(nf)) else f"filters {', '.join(map(str, chosen))} of {nf}")
    if nf <= MAX_FILTERS:
        return list(range(nf)), ""
    return list(range(MAX_FILTERS)), f"filters 0-{MAX_FILTERS - 1} of {nf} (maps=[...] chooses others)"


def plot_filters(filters_or_list: npt.NDArray[Any] | Sequence[npt.ArrayLike], titles: Sequence[str] | None = None,
                 *, values: bool = True, maps: Sequence[int] | None = None) -> Figure:
    """The conv filters, 3x3 each, upscaled, on a diverging colour map centred on 0.

    ``filters_or_list``: one array (nf, 3, 3) (e.g. ``network.conv.filters``), or a list of
    them (say, after each epoch), drawn as rows on one shared scale; ``titles`` names the
    rows (default ``"filters"`` / ``"1"``, ``"2"``...). ``values`` writes each weight in its
    cell. ``maps`` chooses the filters (at most ``MAX_FILTERS``; by default all of up to
    that many, else the first ``MAX_FILTERS``, said in the figure's title). Returns a Figure
    with ``rows * k`` panels for ``k`` filters drawn.
    """
    if isinstance(filters_or_list, np.ndarray) and filters_or_list.ndim == 3:
        given: list[npt.ArrayLike] = [filters_or_list]
    else:
        given = list(filters_or_list)
    if not given:
        raise ValueError("plot_filters expects filters (nf, 3, 3) or a non-empty list of them")
    sets = [_as_filters(s, "plot_filters") for s in given]
    nf = sets[0].shape[0]
    if any(s.shape[0] != nf for s in sets):
        raise ValueError(f"plot_filters: all sets need the same number of filters, got "
                         f"{[s.shape[0] for s in sets]}")
    if titles is None:
        titles = ["filters"] if len(sets) == 1 else [str(k + 1) for k in range(len(sets))]
    titles = [str(t) for t in titles]
    if len(titles) != len(sets):
        raise ValueError(f"plot_filters: {len(sets)} sets of filters but {len(titles)} titles")
    shown, named = _chosen_filters(nf, maps, "plot_filters")
    vmax = _symmetric(*(s[shown] for s in sets))
    rows = len(sets)
    fig = _figure((1.25 * len(shown) + 1.6, 1.35 * rows + 0.7 + (0.3 if named else 0)), layout="constrained")
    axes = fig.subplots(rows, len(shown), squeeze=False)
    if named:
        fig.suptitle(named, fontsize=9)
    image: AxesImage | None = None
    for r, (filters, title) in enumerate(zip(sets, titles)):
        for c, f in enumerate(shown):
            ax = axes[r, c]
            image = ax.imshow(filters[f], cmap=DIVERGING, vmin=-vmax, vmax=vmax, interpolation="nearest")
            _bare(ax)
            if r == 0:
                ax.set_title(f"filter {f}", fontsize=9)
            if c == 0:
                ax.set_ylabel(title, fontsize=9)
            if values:
                for (i, j), v in np.ndenumerate(filters[f]):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6,
                            color="white" if abs(v) > 0.6 * vmax else "black")
    _colorbar(fig, image, axes, "weight", shrink=0.95)  # type: ignore[arg-type]  # set: nf >= 1 panels
    return fig


# --------------------------------------------------------------------------- one traced step


def _check_trace(trace: object, where: str) -> None:
    from .trace import Trace

    if not isinstance(trace, Trace):
        raise TypeError(f"{where} expects a cnn_ext.trace.Trace (from Network.trace), got {type(trace).__name__}")


def _probability_bars(ax: Axes, probs: npt.ArrayLike, label: int | None = None, title: str = "probabilities") -> None:
    probs = np.asarray(probs, dtype=np.float64)
    nodes = len(probs)
    best = int(np.argmax(probs))
    colours = [_PRED if k == best else _BAR for k in range(nodes)]
    ax.bar(range(nodes), probs, color=colours, width=0.75,
           edgecolor=["black" if k == label else "none" for k in range(nodes)], linewidth=1.2)
    ax.set_xticks(range(nodes))
    ax.tick_params(labelsize=8)
    ax.set_ylim(0, 1.08)
    ax.set_yticks([0, 0.5, 1])
    for k, p in enumerate(probs):
        if k == best or p >= 0.05:
            ax.text(k, min(p, 1.0) + 0.02, f"{100 * p:.0f}%", ha="center", va="bottom", fontsize=7)
    ax.set_title(title, fontsize=9)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _tie_marks(ax: Axes, tie_map: npt.NDArray[np.int_], kinds: tuple[int, ...] = (4, 3, 2, 1)) -> None:
    for k in kinds:
        rows, cols = np.nonzero(tie_map == k)
        if len(rows):
            ax.scatter(cols, rows, **TIE_MARKS[k])


def _tie_legend(ax: Axes, counts: npt.NDArray[np.int64], windows: float) -> None:
    """The tie marks with how many windows of all filters have them."""
    from matplotlib.lines import Line2D

    handles = []
    for k in (4, 3, 2, 1):
        style = TIE_MARKS[k]
        handles.append(Line2D([], [], linestyle="none", marker=style["marker"],
                              markersize=6 if k != 1 else 4,
                              markerfacecolor=style["facecolors"] if style["facecolors"] != "none" else "none",
                              markeredgecolor=style.get("edgecolors", "none"),
                              label=f"{TIE_NAMES[k]}: {int(counts[k - 1])} windows "
                                    f"({100 * counts[k - 1] / windows:.0f}%)"))
    ax.legend(handles=handles, loc="center left", frameon=False, fontsize=8,
              title="max-pool windows, all filters\n(marks: where backprop sends the gradient)",
              title_fontsize=8, alignment="left")
    ax.axis("off")


def _ties_in_words(c: npt.NDArray[np.int64]) -> str:
    """Caption under a pooled map: its windows by how many values equal the maximum."""
    return f"one maximum: {c[0]}\nflat, 4 equal: {c[3]}\n3 equal: {c[2]}, 2 equal: {c[1]}"


def plot_trace(trace: Trace, maps: Sequence[int] | None = None) -> Figure:
    """One traced forward pass: the input, the conv maps with the tie mask on them, the
    pooled maps with each filter's tie counts, and the probabilities.

    ``maps``: the filters whose maps to draw (at most ``TRACE_MAX_MAPS``); by default all
    of a network with up to ``TRACE_MAX_MAPS`` filters, else :func:`explain_maps`'s choice
    of that many, named in the figure, so that the figure's size and time stay bounded.

    The marks on a conv map are the positions equal to their 2x2 window's maximum, where
    the tutorial's MaxPool2.backprop sends the gradient: hollow squares for 4-way ties (the
    flat background), triangles for 3-way, diamonds for 2-way ties, dots for single maxima.
    ``trace`` is a :class:`cnn_ext.trace.Trace`. Returns a Figure with ``2 * k + 3`` axes
    (input, probabilities, legend, conv maps, pooled maps) for ``k`` maps drawn.
    """
    _check_trace(trace, "plot_trace")
    shown, named = explain_maps(trace, maps, TRACE_MAX_MAPS, "plot_trace")
    fig = _figure(_trace_size(len(shown)), layout="constrained")
    _draw_trace(fig, trace, shown, named)
    return fig


TRACE_MAX_MAPS = 16  # maps per row in plot_trace and plot_gradients, unless chosen


def _trace_size(nf: int) -> tuple[float, float]:
    return (max(2.0 * nf, 12.0), 9.4)  # room for the pooled maps' three-line captions


def _gradients_size(nf: int) -> tuple[float, float]:
    return (max(2.0 * nf, 12.0), 10.5)


def _draw_trace(fig: Figure | SubFigure, trace: Trace, shown: list[int], named: str) -> None:
    nf = trace.num_filters
    ties = trace.window_ties()
    counts = trace.tie_counts()
    tie_map = trace.tie_map()
    windows = ties.size
    # (type: ignore: more than one subfigure comes as an array, never a single SubFigure)
    top, conv_row, pool_row = fig.subfigures(3, 1, height_ratios=[1.15, 1.1, 1.0])  # type: ignore[misc]
    ax_in, ax_p, ax_leg = top.subplots(1, 3, gridspec_kw={"width_ratios": [1, 2.3, 1.9]})
    ax_in.imshow(trace.input, cmap="gray", vmin=-0.5, vmax=0.5, interpolation="nearest")
    _bare(ax_in)
    h, w = trace.input.shape
    ax_in.set_title(f"input {h}x{w}\n(image / 255) - 0.5", fontsize=9)
    heading = f"prediction {trace.prediction} ({100 * trace.probs[trace.prediction]:.1f}%)"
    if trace.label is not None:
        heading += f" | label {trace.label}, loss {trace.loss:.3f}"
    _probability_bars(ax_p, trace.probs, trace.label, "softmax probabilities: " + heading)
    ax_p.set_xlabel("digit" + (" (outlined: the label)" if trace.label is not None else ""), fontsize=8)
    _tie_legend(ax_leg, counts.sum(axis=0), windows * 1.0)

    maps_words = "" if len(shown) == nf else f"; drawn: {named}"
    vmax = _symmetric(trace.conv[:, :, shown])
    axes = conv_row.subplots(1, len(shown), squeeze=False)[0]
    for f, ax in zip(shown, axes):
        image = ax.imshow(trace.conv[:, :, f], cmap=DIVERGING, vmin=-vmax, vmax=vmax,
                          interpolation="nearest")
        _tie_marks(ax, tie_map[:, :, f])
        _bare(ax)
        ax.set_title(f"conv {f}", fontsize=9)
    ch, cw = trace.conv.shape[:2]
    conv_row.suptitle(f"Conv3x3: {nf} maps of {ch}x{cw} (no bias, no ReLU), marks = tie mask"
                      + maps_words, fontsize=10)
    _colorbar(conv_row, image, axes, shrink=0.8)

    vmax = _symmetric(trace.pool[:, :, shown])
    axes = pool_row.subplots(1, len(shown), squeeze=False)[0]
    for f, ax in zip(shown, axes):
        image = ax.imshow(trace.pool[:, :, f], cmap=DIVERGING, vmin=-vmax, vmax=vmax,
                          interpolation="nearest")
        _bare(ax)
        ax.set_title(f"pool {f}", fontsize=9)
        ax.set_xlabel(_ties_in_words(counts[f]), fontsize=7)
    ph, pw = trace.pool.shape[:2]
    pool_row.suptitle(f"MaxPool2: the largest value of each 2x2 window, {nf} maps of {ph}x{pw}; "
                      f"under each, its {ph * pw} windows by how many values equal the maximum",
                      fontsize=10)
    _colorbar(pool_row, image, axes, shrink=0.8)


def plot_gradients(trace: Trace, maps: Sequence[int] | None = None) -> Figure:
    """One step's gradients, the ``d_L_d_*`` arrays of a labelled trace.

    Top: ``d_L_d_out`` (only the label's entry is non-zero, ``-1 / p``), ``d_L_d_biases``
    (= d_L_d_totals) and ``d_L_d_weights`` (input_len x nodes, drawn nodes x input_len);
    then the ``nf`` maps of ``d_L_d_pool``, of ``d_L_d_conv`` (zero wherever the tie mask is
    not set) and the ``nf`` filter gradients ``d_L_d_filters``. Each row has one symmetric
    scale. ``maps`` chooses the filters as in :func:`plot_trace` (by default at most
    ``TRACE_MAX_MAPS``, those with the largest filter gradient). Returns a Figure with
    ``3 * k + 3`` panels (plus colour bars) for ``k`` maps drawn.
    """
    _check_trace(trace, "plot_gradients")
    if trace.label is None:
        raise ValueError("plot_gradients needs a trace with a label: Network.trace(image, label)")
    shown, named = explain_maps(trace, maps, TRACE_MAX_MAPS, "plot_gradients")
    fig = _figure(_gradients_size(len(shown)), layout="constrained")
    _draw_gradients(fig, trace, shown, named)
    return fig


def _draw_gradients(fig: Figure | SubFigure, trace: Trace, shown: list[int], named: str) -> None:
    nf = trace.num_filters
    nodes = len(trace.probs)
    if TYPE_CHECKING:  # a labelled trace (plot_gradients and plot_explain check): every gradient is set
        assert trace.d_L_d_out is not None and trace.d_L_d_biases is not None and trace.d_L_d_weights is not None
        assert trace.d_L_d_pool is not None and trace.d_L_d_conv is not None and trace.d_L_d_filters is not None
    # (type: ignore: more than one subfigure comes as an array, never a single SubFigure)
    top, pool_row, conv_row, filt_row = fig.subfigures(4, 1, height_ratios=[1.0, 1.0, 1.1, 1.0])  # type: ignore[misc]
    ax_out, ax_b, ax_w = top.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 2.6]})
    for ax, values, title in ((ax_out, trace.d_L_d_out, "d_L_d_out = -1/p at the label"),
                              (ax_b, trace.d_L_d_biases, "d_L_d_biases (= d_L_d_totals)")):
        _signed_bars(ax, values, title)
        ax.set_xlabel("digit", fontsize=8)
    vmax = _symmetric(trace.d_L_d_weights)
    image = ax_w.imshow(trace.d_L_d_weights.T, cmap=DIVERGING, vmin=-vmax, vmax=vmax, aspect="auto",
                        interpolation="nearest")
    ax_w.set_yticks(range(nodes))
    ax_w.tick_params(labelsize=7)
    ax_w.set_xlabel("softmax input (flattened pool, (h, w, filter) order)", fontsize=8)
    ax_w.set_ylabel("digit", fontsize=8)
    ax_w.set_title("d_L_d_weights = outer(input, d_L_d_totals), transposed", fontsize=9)
    _colorbar(top, image, ax_w, pad=0.01)
    top.suptitle(f"label {trace.label}, p = {trace.probs[trace.label]:.4f}, loss {trace.loss:.4f}, "
                 f"learn rate {trace.learn_rate:g}", fontsize=10)

    rows = ((pool_row, trace.d_L_d_pool, "d_L_d_pool = Softmax.backprop(d_L_d_out)", "pool"),
            (conv_row, trace.d_L_d_conv, "d_L_d_conv = MaxPool2.backprop(d_L_d_pool): "
                                         "d_L_d_pool copied to every tied maximum", "conv"),
            (filt_row, np.moveaxis(trace.d_L_d_filters, 0, -1), "d_L_d_filters = "
             "Conv3x3's gradient (the step is filters -= learn_rate * d_L_d_filters)", "filter"))
    for subfig, values, title, name in rows:
        vmax = _symmetric(values[:, :, shown])
        axes = subfig.subplots(1, len(shown), squeeze=False)[0]
        for f, ax in zip(shown, axes):
            image = ax.imshow(values[:, :, f], cmap=DIVERGING, vmin=-vmax, vmax=vmax,
                              interpolation="nearest")
            _bare(ax)
            ax.set_title(f"{name} {f}", fontsize=9)
            if name == "filter":
                for (i, j), v in np.ndenumerate(values[:, :, f]):
                    ax.text(j, i, f"{v:.2g}", ha="center", va="center", fontsize=5.5,
                            color="white" if abs(v) > 0.6 * vmax else "black")
        subfig.suptitle(title + ("" if len(shown) == nf else f"; drawn: {named}"), fontsize=10)
        _colorbar(subfig, image, axes, shrink=0.8)


EXPLAIN_MAX_MAPS = 8  # maps per row in plot_explain: the figure's size and time stay bounded


def explain_maps(trace: Trace, maps: Sequence[int] | None = None,
                 count: int = EXPLAIN_MAX_MAPS, who: str = "plot_explain") -> tuple[list[int], str]:
    """The filters ``plot_explain`` draws (and, with ``count=TRACE_MAX_MAPS``,
    ``plot_trace`` and ``plot_gradients``), and the words naming the choice; ``who`` names
    the caller in errors.

    ``maps`` given: those filter indices (each in 0..nf-1, at most ``count``, no repeats).
    Otherwise every filter when there are at most ``count``; else the ``count`` filters with
    the largest filter gradient (a labelled trace: where this step learns most) or with the
    most varied pooled maps (no label), in filter order.
    """
    nf = trace.num_filters
    if maps is not None:
        chosen = _checked_maps(maps, nf, count, who)
        return chosen, f"filters {', '.join(map(str, chosen))} of {nf} (chosen)"
    if nf <= count:
        return list(range(nf)), f"all {nf} filters"
    if trace.d_L_d_filters is not None:
        score = np.abs(trace.d_L_d_filters).sum(axis=(1, 2))
        why = "largest filter gradient"
    else:
        score = trace.pool.std(axis=(0, 1))
        why = "most varied pooled maps"
    chosen = sorted(int(f) for f in np.argsort(-score, kind="stable")[:count])
    return chosen, f"{count} of {nf} filters, those with the {why}: {', '.join(map(str, chosen))}"


_READING_GUIDE = (
    "How to read this figure, top to bottom:\n"
    "1  the input: the image as the network sees it, (pixel / 255) - 0.5\n"
    "2  Conv3x3: each filter slides over every 3x3 patch; red = the patch matches the filter\n"
    "3  MaxPool2: the largest value of each 2x2 window; under each map, how many windows\n"
    "    had one largest value and how many had equal (tied) values\n"
    "4  Softmax: the ten probabilities; the tallest bar is the prediction")
_GRADIENT_GUIDE = (
    "\n5  one training step, backwards: how the loss pulls on every number above\n"
    "    (the model itself is not changed)")


def _one_output(ax: Axes, ax_in: Axes, trace: Trace, filters: npt.NDArray[np.float64] | None,
                output: tuple[int, int, int]) -> None:
    """CNN Explainer's click, on paper: one conv output as its 3x3 patch times the filter."""
    from matplotlib.patches import Rectangle

    i, j, f = output
    patch = trace.input[i:i + 3, j:j + 3]
    lines = [f"one output, conv[{i}, {j}, {f}] = {trace.conv[i, j, f]:.4g}:",
             f"the 3x3 patch input[{i}:{i + 3}, {j}:{j + 3}] (boxed on the input)"]
    lines += ["  " + "  ".join(f"{v:6.2f}" for v in row) for row in patch]
    if filters is not None:
        lines.append(f"times filters[{f}], element by element, summed:")
        lines += ["  " + "  ".join(f"{v:6.3f}" for v in row) for row in filters[f]]
        lines.append(f"= {float(np.sum(patch * filters[f])):.4g}")
    ax.axis("off")
    ax.text(0, 0.5, "\n".join(lines), family="monospace", fontsize=8, va="center", ha="left")
    ax_in.add_patch(Rectangle((j - 0.5, i - 0.5), 3, 3, fill=False, edgecolor=_PRED, linewidth=1.8))


def plot_explain(trace: Trace, title: str | None = None, maps: Sequence[int] | None = None,
                 filters: npt.ArrayLike | None = None, output: tuple[int, int, int] | None = None) -> Figure:
    """One image's trip through the network in reading order: the input, the conv maps, the
    pooled maps (each captioned in words with its tied windows), the probabilities and, for
    a labelled trace, one step's gradients (d_L_d_out, d_L_d_totals, d_L_d_weights, then
    d_L_d_pool, d_L_d_conv and d_L_d_filters of the same filters). This is what
    ``cnn-ext explain`` saves.

    At most ``EXPLAIN_MAX_MAPS`` filters are drawn (``maps``, or :func:`explain_maps`'s
    choice, named in the figure), so the time and size do not grow with the filter count.
    Beside the input, one conv output ``output`` (i, j, f) is spelled out as its 3x3 patch
    times ``filters[f]`` (the network's filters, (nf, 3, 3); without them only the patch);
    by default the largest output of the first map drawn.
    Returns a Figure with ``5 + 2 * k`` panels (``8 + 5 * k`` with a label) for ``k`` maps.
    """
    _check_trace(trace, "plot_explain")
    shown, named = explain_maps(trace, maps)
    k = len(shown)
    labelled = trace.label is not None
    width = max(2.0 * k, 12.0)
    heights = [2.4, 2.1, 2.4, 1.7] + ([2.0, 1.9, 2.0, 1.9] if labelled else [])
    fig = _figure((width, sum(heights) + 0.6), layout="constrained")
    # (more than one subfigure comes as an array of SubFigure, never a single one)
    rows: list[SubFigure] = list(fig.subfigures(len(heights), 1, height_ratios=heights).ravel())  # type: ignore[union-attr]
    counts = trace.tie_counts()

    ax_in, ax_text, ax_out = rows[0].subplots(1, 3, gridspec_kw={"width_ratios": [1, 3.0, 1.6]})
    ax_in.imshow(trace.input, cmap="gray", vmin=-0.5, vmax=0.5, interpolation="nearest")
    _bare(ax_in)
    h, w = trace.input.shape
    ax_in.set_title(f"1  input, {h}x{w} pixels", fontsize=10, loc="left")
    ax_text.axis("off")
    ax_text.text(0, 0.5, _READING_GUIDE + (_GRADIENT_GUIDE if labelled else "") + f"\nMaps shown: {named}.",
                 fontsize=9, va="center", ha="left", linespacing=1.5)
    if output is None:
        f = shown[0]
        i, j = np.unravel_index(int(np.argmax(trace.conv[:, :, f])), trace.conv.shape[:2])
        output = (int(i), int(j), f)
    elif not (len(output) == 3 and all(0 <= o < n for o, n in zip(output, trace.conv.shape))):
        raise ValueError(f"plot_explain: output must be (i, j, f) inside the conv maps {trace.conv.shape}, "
                         f"got {output}")
    flt = None if filters is None else np.asarray(filters, dtype=np.float64)
    if flt is not None and flt.shape != (trace.num_filters, 3, 3):
        raise ValueError(f"plot_explain: filters must be ({trace.num_filters}, 3, 3), got {flt.shape}")
    _one_output(ax_out, ax_in, trace, flt, output)

    ch, cw = trace.conv.shape[:2]
    conv_axes = _map_row(rows[1], trace.conv, shown, "conv",
                         f"2  Conv3x3: {trace.num_filters} filters give {trace.num_filters} maps of "
                         f"{ch}x{cw} (no bias, no ReLU)")
    if output[2] in shown:  # the spelled-out output, boxed on its map too
        from matplotlib.patches import Rectangle

        conv_axes[shown.index(output[2])].add_patch(
            Rectangle((output[1] - 0.5, output[0] - 0.5), 1, 1, fill=False, edgecolor=_PRED, linewidth=1.5))
    ph, pw = trace.pool.shape[:2]
    pool_axes = _map_row(rows[2], trace.pool, shown, "pooled",
                         f"3  MaxPool2: the largest value of each 2x2 window, {ph}x{pw} per filter "
                         f"({ph * pw} windows)")
    for ax, f in zip(pool_axes, shown):
        ax.set_xlabel(_ties_in_words(counts[f]), fontsize=7)

    ax_p, ax_words = rows[3].subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
    ranked = np.argsort(-trace.probs, kind="stable")[:3]
    ax_words.axis("off")
    ax_words.text(0, 0.5, "the three most likely digits:\n" + "\n".join(
        f"  {int(d)}: {100 * trace.probs[d]:.1f}%" for d in ranked), fontsize=9, va="center")
    heading = f"prediction {trace.prediction} ({100 * trace.probs[trace.prediction]:.1f}%)"
    if labelled:
        heading += f"; the label is {trace.label}, loss -log p = {trace.loss:.3f}"
    _probability_bars(ax_p, trace.probs, trace.label, "")
    ax_p.set_xlabel("digit" + (" (outlined: the label)" if labelled else ""), fontsize=8)
    rows[3].suptitle("4  Softmax: " + heading, fontsize=10, x=0.01, ha="left")
    if labelled:
        _explain_gradients(rows[4:], trace, shown)
        for row in rows[4:]:
            row.set_facecolor("#f7f7f7")
    if title:
        fig.suptitle(title, fontsize=12, fontweight="bold")
    return fig


def _map_row(fig: SubFigure, values: npt.NDArray[np.float64], shown: list[int], name: str,
             title: str, numbers: bool = False) -> list[Axes]:
    """One row of maps ``values[:, :, f]`` for the shown filters, on one symmetric scale
    (taken over *all* filters, so that a chosen subset reads like the whole)."""
    vmax = _symmetric(values)
    axes = list(fig.subplots(1, len(shown), squeeze=False)[0])
    for f, ax in zip(shown, axes):
        image = ax.imshow(values[:, :, f], cmap=DIVERGING, vmin=-vmax, vmax=vmax, interpolation="nearest")
        _bare(ax)
        ax.set_title(f"{name} {f}", fontsize=9)
        if numbers:
            for (i, j), v in np.ndenumerate(values[:, :, f]):
                ax.text(j, i, f"{v:.2g}", ha="center", va="center", fontsize=5.5,
                        color="white" if abs(v) > 0.6 * vmax else "black")
    fig.suptitle(title, fontsize=10, x=0.01, ha="left")
    _colorbar(fig, image, axes, shrink=0.8)
    return axes


def _explain_gradients(rows: Sequence[SubFigure], trace: Trace, shown: list[int]) -> None:
    if TYPE_CHECKING:  # a labelled trace: every gradient is set
        assert trace.d_L_d_out is not None and trace.d_L_d_biases is not None and trace.d_L_d_weights is not None
        assert trace.d_L_d_pool is not None and trace.d_L_d_conv is not None and trace.d_L_d_filters is not None
    nodes = len(trace.probs)
    top = rows[0]
    ax_out, ax_b, ax_w = top.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 2.6]})
    for ax, values, caption in ((ax_out, trace.d_L_d_out, "d_L_d_out: -1/p at the label, 0 elsewhere"),
                                (ax_b, trace.d_L_d_biases, "d_L_d_totals (= d_L_d_biases)")):
        _signed_bars(ax, values, caption)
    vmax = _symmetric(trace.d_L_d_weights)
    image = ax_w.imshow(trace.d_L_d_weights.T, cmap=DIVERGING, vmin=-vmax, vmax=vmax, aspect="auto",
                        interpolation="nearest")
    ax_w.set_yticks(range(nodes))
    ax_w.tick_params(labelsize=7)
    ax_w.set_xlabel(f"the {trace.d_L_d_weights.shape[0]} softmax inputs (all filters)", fontsize=8)
    ax_w.set_title("d_L_d_weights: input x d_L_d_totals, one row per digit", fontsize=9)
    _colorbar(top, image, ax_w, pad=0.01)
    top.suptitle(f"5  one training step towards the label {trace.label} (learn rate "
                 f"{trace.learn_rate:g}): the loss gradient of each layer's output", fontsize=10,
                 x=0.01, ha="left")
    _map_row(rows[1], trace.d_L_d_pool, shown, "d pooled",
             "d_L_d_pool: the loss gradient of each pooled value (Softmax.backprop)")
    _map_row(rows[2], trace.d_L_d_conv, shown, "d conv",
             "d_L_d_conv: MaxPool2.backprop copies it to every value equal to its window's "
             "maximum (all four in a flat window), 0 elsewhere")
    _map_row(rows[3], np.moveaxis(trace.d_L_d_filters, 0, -1), shown, "d filter",
             "d_L_d_filters: the step is filters -= learn_rate * d_L_d_filters", numbers=True)


# --------------------------------------------------------------------------- softmax templates


def plot_softmax_templates(weights: npt.ArrayLike, num_filters: int,
                           pool_shape: tuple[int, int] | None = None,
                           maps: Sequence[int] | None = None) -> Figure:
    """The softmax weights as templates: column ``k`` of ``weights`` (input_len, nodes),
    reshaped to (num_filters, ph, pw), is the evidence digit ``k`` adds up over the pooled
    maps (red: a high pooled value there favours the digit; blue: it counts against it).

    ``pool_shape`` (ph, pw) defaults to square maps (13x13 for MNIST). The flattened order
    is the tutorial's, (ph, pw, num_filters). ``maps`` chooses the filters as in
    :func:`plot_filters` (at most ``MAX_FILTERS``). Returns a Figure with ``nodes * k``
    panels on one symmetric scale for ``k`` filters drawn.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 2:
        raise ValueError(f"plot_softmax_templates expects weights (input_len, nodes), got shape {weights.shape}")
    if not isinstance(num_filters, (int, np.integer)) or num_filters < 1 or weights.shape[0] % num_filters:
        raise ValueError(f"plot_softmax_templates: num_filters must be a positive divisor of "
                         f"input_len {weights.shape[0]}, got {num_filters!r}")
    cells = weights.shape[0] // num_filters
    if pool_shape is None:
        side = math.isqrt(cells)
        if side * side != cells:
            raise ValueError(f"plot_softmax_templates: {cells} pooled positions per filter is not "
                             "a square: pass pool_shape=(ph, pw)")
        pool_shape = (side, side)
    ph, pw = pool_shape
    if ph * pw != cells:
        raise ValueError(f"plot_softmax_templates: pool_shape {pool_shape} has {ph * pw} positions, "
                         f"the weights have {cells} per filter")
    nodes = weights.shape[1]
    shown, named = _chosen_filters(int(num_filters), maps, "plot_softmax_templates")
    templates = weights.reshape(ph, pw, num_filters, nodes).transpose(3, 2, 0, 1)  # (nodes, nf, ph, pw)
    templates = templates[:, shown]
    vmax = _symmetric(templates)
    fig = _figure((1.15 * len(shown) + 1.5, 1.08 * nodes + 0.8), layout="constrained")
    axes = fig.subplots(nodes, len(shown), squeeze=False)
    for k in range(nodes):
        for c, f in enumerate(shown):
            ax = axes[k, c]
            if c == 0:
                ax.set_ylabel(f"digit {k}", fontsize=9)
            image = ax.imshow(templates[k, c], cmap=DIVERGING, vmin=-vmax, vmax=vmax,
                              interpolation="nearest")
            _bare(ax)
            if k == 0:
                ax.set_title(f"filter {f}", fontsize=9)
    fig.suptitle("softmax weights as templates: each digit's weights over the pooled maps"
                 + (f"; {named}" if named else ""), fontsize=10)
    _colorbar(fig, image, axes, "weight", shrink=0.6)
    return fig


# --------------------------------------------------------------------------- training curves


def _history_parts(history: History | dict[str, list[float]]) -> tuple[dict[str, list[float]], list[StepRecord]]:
    per_epoch = getattr(history, "history", None)
    if per_epoch is None and isinstance(history, dict):
        per_epoch = history
    if not isinstance(per_epoch, dict):
        raise TypeError("plot_history expects a History (from Network.fit), with a .history dict "
                        f"of per-epoch lists, got {type(history).__name__}")
    steps = list(getattr(history, "steps", None) or [])
    return per_epoch, steps


def plot_history(history: History | dict[str, list[float]]) -> Figure:
    """Training curves from ``Network.fit``'s History: the step log (running mean loss and
    accuracy over each log interval, against the global step) above, and per-epoch
    ``loss``/``accuracy`` (with ``val_loss``/``val_accuracy`` when fit had validation data)
    below. Without step records only the per-epoch row is drawn. Returns a Figure with 2 or
    4 panels.
    """
    per_epoch, steps = _history_parts(history)
    epochs = len(per_epoch.get("loss", []))
    if not steps and not epochs:
        raise ValueError("plot_history: the history is empty (no step records and no epochs)")
    rows = (1 if steps else 0) + (1 if epochs else 0)
    fig = _figure((10.5, 3.3 * rows), layout="constrained")
    axes = fig.subplots(rows, 2, squeeze=False)
    r = 0
    if steps:
        x = [rec.step for rec in steps]
        ax_l, ax_a = axes[r]
        ax_l.plot(x, [rec.loss for rec in steps], color="#1f77b4", marker="." if len(x) < 60 else None)
        ax_l.set(xlabel="step", ylabel="mean loss over the interval",
                 title="step log: loss (the tutorial's Average Loss)")
        ax_a.plot(x, [100 * rec.accuracy for rec in steps], color="#2ca02c",
                  marker="." if len(x) < 60 else None)
        ax_a.set(xlabel="step", ylabel="accuracy (%)", title="step log: accuracy over the interval")
        r += 1
    if epochs:
        ax_l, ax_a = axes[r]
        e = np.asarray(getattr(history, "epoch", None) or range(1, epochs + 1))[:epochs]
        ax_l.plot(e, per_epoch["loss"], marker="o", label="training")
        if per_epoch.get("val_loss"):
            ax_l.plot(e[:len(per_epoch["val_loss"])], per_epoch["val_loss"], marker="s", label="validation")
        ax_l.set(xlabel="epoch", ylabel="mean loss", title="loss per epoch")
        ax_a.plot(e, [100 * a for a in per_epoch.get("accuracy", [])], marker="o", label="training")
        if per_epoch.get("val_accuracy"):
            ax_a.plot(e[:len(per_epoch["val_accuracy"])], [100 * a for a in per_epoch["val_accuracy"]],
                      marker="s", label="validation")
        ax_a.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy per epoch")
        for ax in (ax_l, ax_a):
            ax.set_xticks(e)
            ax.legend(fontsize=8)
    for ax in axes.ravel():
        ax.grid(alpha=0.3)
        ax.title.set_fontsize(10)
    return fig


# --------------------------------------------------------------------------- the tie rule


def _example_windows(trace: Trace | None) -> list[tuple[npt.NDArray[np.float64], str]]:
    """(values (2, 2), label) of a 4-way tie and of a 2-way tie from a trace, or made up."""
    examples = []
    if trace is not None:
        _check_trace(trace, "plot_tie_rule")
        ties = trace.window_ties()
        for k in (4, 2):
            found = np.argwhere(ties == k)
            if len(found):
                i, j, f = found[len(found) // 2]
                examples.append((trace.conv[2 * i:2 * i + 2, 2 * j:2 * j + 2, f],
                                 f"filter {f}, window ({i}, {j})"))
    if len(examples) < 2:
        # A real convolution (the layer's kernel) of a small image: the flat background -0.5
        # and a horizontal stroke across it, whose 3x3 regions repeat along the row.
        from ._dispatch import kernels

        image = np.full((10, 10), -0.5)
        image[4:6] = 0.5
        filters = np.array([[[0.08, 0.19, -0.11], [0.21, -0.05, 0.16], [-0.13, 0.02, 0.09]]])
        conv = kernels.conv3x3_forward(image, filters)[:, :, 0]
        windows = conv.reshape(4, 2, 4, 2).transpose(0, 2, 1, 3)
        tied = (windows == windows.max(axis=(2, 3), keepdims=True)).sum(axis=(2, 3))
        examples = []
        for k, where in ((4, "the flat background"), (2, "a horizontal stroke")):
            i, j = np.argwhere(tied == k)[0]
            examples.append((windows[i, j], f"{where}, window ({i}, {j})"))
    return examples


def plot_tie_rule(trace: Trace | None = None, gradient: float = 1.0) -> Figure:
    """The max-pool tie rule, for the docs: a 2x2 window whose maximum is tied, and where
    the gradient ``g`` of its pooled output goes.

    Columns: the window's four conv outputs; the tutorial's MaxPool2.backprop (and
    cnn_ext's), which gives ``g`` to *every* position equal to the maximum, so a 4-way tie
    passes ``4 g`` back; PyTorch's and TensorFlow's, which give it to one maximum only
    (shown: the first in scan order), passing ``g`` back. Rows: a 4-way tie (the flat
    background of an MNIST digit, where all four sums are bit-identical) and a 2-way tie.
    With a ``trace``, its own windows are shown. Returns a Figure with 6 panels.
    """
    g = float(gradient)
    examples = _example_windows(trace)
    fig = _figure((10.5, 6.6), layout="constrained")
    axes = fig.subplots(2, 3)
    from matplotlib.colors import ListedColormap

    routed_cmap = ListedColormap(["#f2f2f2", "#fdb863"])
    for r, (window, where) in enumerate(examples):
        m = window.max()
        tied = window == m
        first = np.zeros_like(tied)
        first.flat[int(np.argmax(window))] = True  # np.argmax: the first maximum in scan order
        panels = ((window, "conv outputs of one 2x2 window\n" + where, None),
                  (tied * g, f"tutorial / cnn_ext: every tied maximum\ngets g: {int(tied.sum())} g passed back", tied),
                  (first * g, "PyTorch / TensorFlow: one maximum\ngets g: 1 g passed back", first))
        for c, (values, title, mask) in enumerate(panels):
            ax = axes[r, c]
            if mask is None:
                vmax = _symmetric(window) * 1.4
                ax.imshow(window, cmap=DIVERGING, vmin=-vmax, vmax=vmax)
                for (i, j), v in np.ndenumerate(window):
                    ax.text(j, i, f"{v:.6g}" + ("\n= max" if v == m else ""), ha="center",
                            va="center", fontsize=10, fontweight="bold" if v == m else "normal")
            else:
                ax.imshow(mask.astype(float), cmap=routed_cmap, vmin=0, vmax=1)
                for (i, j), v in np.ndenumerate(values):
                    ax.text(j, i, "g" if v else "0", ha="center", va="center", fontsize=16,
                            fontweight="bold" if v else "normal", color="black" if v else "#888888")
            ax.set_xticks([0.5], minor=True)
            ax.set_yticks([0.5], minor=True)
            ax.grid(which="minor", color="white", linewidth=3)
            ax.tick_params(which="both", length=0)
            _bare(ax)
            ax.set_title(title, fontsize=9)
    fig.suptitle("Max-pool backprop when the maximum ties: all ties (the tutorial) vs one "
                 "(PyTorch, TensorFlow)", fontsize=11)
    fig.supxlabel("g is the gradient of the window's pooled output. Tied values are equal in "
                  "float64, bit for bit (no conv bias, no ReLU: the flat background -0.5 gives every\n"
                  "window there the same four sums). So on an MNIST digit most windows send "
                  "4 g back to the filters in the tutorial, and g in PyTorch or TensorFlow.",
                  fontsize=8.5)
    return fig


# --------------------------------------------------------------------------- live training


class NoDisplayError(RuntimeError):
    """The live training view cannot open a window: no display, or no interactive backend."""


_NON_INTERACTIVE = {"agg", "pdf", "ps", "svg", "pgf", "cairo", "template"}


def _interactive_pyplot(backend: str | None) -> ModuleType:
    matplotlib, _ = _matplotlib()
    if os.name == "posix" and sys.platform != "darwin" and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise NoDisplayError("the live training view needs a display: no DISPLAY is set "
                             "(run it on a desktop, or under Xvfb)")
    import matplotlib.pyplot as plt

    current = matplotlib.get_backend().lower()
    wanted = backend or ("TkAgg" if current in _NON_INTERACTIVE or "inline" in current else None)
    if wanted is not None and wanted.lower() != current:
        try:
            plt.switch_backend(wanted)
        except Exception as exc:  # ImportError without Tk, TclError without a usable display
            raise NoDisplayError(f"the live training view cannot use matplotlib's {wanted} "
                                 f"backend: {exc}") from None
    return plt


class LiveTraining:
    """A window that redraws the filters and the training curves while ``Network.fit`` runs.

    Pass it as fit's callback: ``net.fit(x, y, callback=LiveTraining(net, total_steps))``.
    ``__call__(kind, record)`` takes fit's events: ``"progress"`` (the record's ``.step`` is
    the global step), ``"log"`` (``.step``, ``.loss`` the running mean over the log interval,
    ``.accuracy`` 0..1) and ``"epoch"``. The window is redrawn at most every ``interval``
    seconds (and at each log record and epoch end, if that long has passed), and at
    ``close()``; between redraws each call only processes the window's events, so it stays
    responsive. The curves start with the first ``"progress"`` record (a thin line: the
    running mean since the last log, every compiled chunk), before the first log record.
    ``finish()`` draws the final state and keeps the window; ``wait()`` then returns when
    the user closes it. ``backend`` picks the matplotlib backend (default: the current one if it is
    interactive, else ``TkAgg``). Without a display, raises :class:`NoDisplayError`.
    """

    figure: Figure

    def __init__(self, network: Network, total_steps: int, *, interval: float = 0.5, backend: str | None = None,
                 title: str = "cnn_ext training") -> None:
        if not isinstance(total_steps, (int, np.integer)) or total_steps < 1:
            raise ValueError(f"LiveTraining: total_steps must be a positive integer, got {total_steps!r}")
        if not interval >= 0:
            raise ValueError(f"LiveTraining: interval must be >= 0 seconds, got {interval!r}")
        self.network = network
        self.total_steps = int(total_steps)
        self.interval = float(interval)
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.accuracies: list[float] = []
        # "progress" records: the running mean since the last log, from the first chunk on
        self.progress: list[tuple[int, float, float]] = []
        self.step = 0
        self.epochs = 0
        self.redraws = 0
        self.redraw_seconds: list[float] = []
        self._last_draw = -math.inf
        self._plt = plt = _interactive_pyplot(backend)
        self._closed = False
        filters = np.asarray(network.conv.filters, dtype=np.float64)
        # the first MAX_FILTERS filters of a wider network: each redraw stays quick
        self._shown, self._filters_named = _chosen_filters(filters.shape[0], None, "LiveTraining")
        nf = len(self._shown)
        self.figure = fig = plt.figure(figsize=(max(1.1 * nf, 8.8), 6.2), num=title)
        outer = fig.add_gridspec(2, 1, height_ratios=[1, 2.1], hspace=0.25, left=0.08, right=0.97,
                                 top=0.9, bottom=0.09)
        top = outer[0].subgridspec(1, nf, wspace=0.12)
        bottom = outer[1].subgridspec(1, 2, wspace=0.28)
        self._filter_images: list[AxesImage] = []
        self._vmax = _symmetric(filters[self._shown])
        for c, f in enumerate(self._shown):
            ax = fig.add_subplot(top[0, c])
            self._filter_images.append(ax.imshow(filters[f], cmap=DIVERGING, vmin=-self._vmax,
                                                 vmax=self._vmax, interpolation="nearest"))
            _bare(ax)
            ax.set_title(f"filter {f}", fontsize=8)
        self._ax_loss = fig.add_subplot(bottom[0, 0])
        self._ax_acc = fig.add_subplot(bottom[0, 1])
        (self._loss_running,) = self._ax_loss.plot([], [], color="#1f77b4", linewidth=0.8, alpha=0.45,
                                                   label="running, since the last log")
        (self._acc_running,) = self._ax_acc.plot([], [], color="#2ca02c", linewidth=0.8, alpha=0.45,
                                                 label="running, since the last log")
        (self._loss_line,) = self._ax_loss.plot([], [], color="#1f77b4", marker=".", label="step log")
        (self._acc_line,) = self._ax_acc.plot([], [], color="#2ca02c", marker=".", label="step log")
        for ax in (self._ax_loss, self._ax_acc):
            ax.legend(fontsize=7, loc="upper right" if ax is self._ax_loss else "lower right")
        self._ax_loss.set(xlabel="step", ylabel="mean loss", title="loss (per log interval)")
        self._ax_acc.set(xlabel="step", ylabel="accuracy (%)", title="accuracy (per log interval)")
        from matplotlib.ticker import FuncFormatter

        thousands = FuncFormatter(lambda v, _: f"{v / 1000:g}k" if v else "0")
        for ax in (self._ax_loss, self._ax_acc):
            ax.set_xlim(0, self.total_steps)
            ax.grid(alpha=0.3)
            if self.total_steps >= 5000:
                ax.xaxis.set_major_formatter(thousands)
        self._ax_acc.set_ylim(0, 100)
        self._status = fig.suptitle(self._status_text(), fontsize=10)
        try:
            plt.show(block=False)
            self._redraw(force=True)
        except Exception as exc:
            plt.close(fig)
            raise NoDisplayError(f"the live training view cannot open a window: {exc}") from None

    def _status_text(self) -> str:
        text = f"step {self.step:,} of {self.total_steps:,} ({100 * self.step / self.total_steps:.0f}%)"
        if self.epochs:
            text += f", {self.epochs} epoch(s) done"
        if self.losses:
            text += f" | last log: loss {self.losses[-1]:.3f}, accuracy {self.accuracies[-1]:.1f}%"
        if self._filters_named:
            text += f"\n(drawn: {self._filters_named.split(' (')[0]})"
        return text

    def __call__(self, kind: str, record: StepRecord | EpochRecord) -> None:
        """fit's callback: record the event, redraw if ``interval`` has passed."""
        if self._closed:
            return
        if kind == "progress":
            step = getattr(record, "step", None)
            if step is not None:
                self.step = int(step)
                loss, accuracy = getattr(record, "loss", math.nan), getattr(record, "accuracy", math.nan)
                if loss is not None and accuracy is not None and math.isfinite(loss):  # nan: just logged
                    self.progress.append((self.step, float(loss), 100 * float(accuracy)))
        elif kind == "log":
            # (type: ignore: "log" records are StepRecords)
            step, loss, accuracy = int(record.step), float(record.loss), float(record.accuracy)  # type: ignore[union-attr]
            self.step = max(self.step, step)
            self.steps.append(step)
            self.losses.append(loss)
            self.accuracies.append(100 * accuracy)
        elif kind == "epoch":
            self.epochs += 1
        self._redraw()

    def _redraw(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._last_draw < self.interval:
            self.figure.canvas.flush_events()  # keep the window responsive between redraws
            return
        filters = np.asarray(self.network.conv.filters, dtype=np.float64)[self._shown]
        vmax = _symmetric(filters)
        for f, image in enumerate(self._filter_images):
            image.set_data(filters[f])
            image.set_clim(-vmax, vmax)
        self._loss_line.set_data(self.steps, self.losses)
        self._acc_line.set_data(self.steps, self.accuracies)
        if self.progress:
            steps, losses, accuracies = zip(*self.progress)
            self._loss_running.set_data(steps, losses)
            self._acc_running.set_data(steps, accuracies)
        finite = [v for v in self.losses + [p[1] for p in self.progress] if math.isfinite(v)]
        if finite:
            self._ax_loss.set_ylim(0, max(finite) * 1.08 or 1)
        self._status.set_text(self._status_text())
        canvas = self.figure.canvas
        canvas.draw_idle()
        canvas.flush_events()
        self._last_draw = time.perf_counter()
        self.redraws += 1
        self.redraw_seconds.append(self._last_draw - now)

    def finish(self) -> None:
        """Draw the final state and keep the window open (``wait()`` or ``close()`` next)."""
        if self._closed:
            return
        self._redraw(force=True)
        self._status.set_text(self._status_text() + "\ntraining done: close this window to finish")
        self.figure.canvas.draw_idle()
        self.figure.canvas.flush_events()

    def wait(self, poll: float = 0.05) -> None:
        """Return when the user closes the window. The window's events are processed in a
        Python loop (not Tk's), so Ctrl-C still reaches Python at once."""
        try:
            while not self._closed and self._plt.fignum_exists(self.figure.number):
                self.figure.canvas.flush_events()
                time.sleep(poll)
        finally:
            self._closed = True

    def close(self) -> None:
        """Draw the final state, then close the window."""
        if self._closed:
            return
        try:
            self._redraw(force=True)
        finally:
            self._closed = True
            self._plt.close(self.figure)
