"""cnn_ext.viz and `cnn-ext explain`: every figure is rendered, and shows what it says.

Each figure is drawn with matplotlib's Agg backend and checked: the expected number of
panels, each panel non-blank in the rendered pixels, and the drawn data equal to the
arrays it claims to show (the tie marks are exactly the trace's mask, and so on).
Set ``CNN_EXT_VIZ_FIGURES=docs`` to also save the figures there (the README's images).
The live training window is tested under a virtual X server (Xvfb) with TkAgg.
"""
import json
import os
import select
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import cnn_ext
from cnn_ext import Network

try:
    import matplotlib
except ImportError:
    if os.environ.get("CNN_EXT_CI"):
        raise  # the project's CI installs the [test] extra, which has matplotlib
    pytest.skip("matplotlib is not installed: the figure tests need it "
                "(pip install 'cnn_ext[plot]')", allow_module_level=True)
matplotlib.use("Agg")
from cnn_ext import viz  # noqa: E402

FIGURES = os.environ.get("CNN_EXT_VIZ_FIGURES")
HAVE_TK = all(__import__("importlib").util.find_spec(m) is not None for m in ("tkinter", "_tkinter"))
ON_X11 = os.name == "posix" and sys.platform != "darwin"


def _env(**changes):
    """The environment of a subprocess importing the same cnn_ext as this process."""
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    package_parent = str(Path(cnn_ext.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _python(code, timeout=180, **env):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=_env(**env),
                          capture_output=True, text=True, timeout=timeout)


def rendered(fig):
    """The figure drawn by Agg: uint8 (height, width, 4)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())


def panels(fig):
    """The figure's axes without the colour bars (in creation order, subfigures included)."""
    return [ax for ax in fig.get_axes() if ax.get_label() != "<colorbar>"]


def colorbars(fig):
    return [ax for ax in fig.get_axes() if ax.get_label() == "<colorbar>"]


def assert_drawn(fig, expected_panels):
    """As many panels as expected, each with ink: its rendered pixels are not one colour,
    and inside its frame there is more than the frame (images vary, bars and lines exist)."""
    pixels = rendered(fig)
    axes = panels(fig)
    assert len(axes) == expected_panels, f"{len(axes)} panels, expected {expected_panels}"
    height = pixels.shape[0]
    for ax in axes:
        box = ax.get_window_extent()
        x0, x1 = int(box.x0) + 3, int(box.x1) - 3
        y0, y1 = height - int(box.y1) + 3, height - int(box.y0) - 3
        inside = pixels[max(y0, 0):y1, max(x0, 0):x1, :3]
        assert inside.size and inside.reshape(-1, 3).std(axis=0).max() > 1.0, \
            f"blank panel {ax.get_title()!r}"
        if ax.axison:
            assert ax.images or ax.collections or ax.patches or ax.lines or ax.texts, ax.get_title()
    return pixels


def save(fig, name):
    if FIGURES:
        Path(FIGURES).mkdir(parents=True, exist_ok=True)
        fig.savefig(Path(FIGURES) / name, dpi=110)
        print(f"saved {Path(FIGURES) / name}")


@pytest.fixture(scope="module")
def trained(mnist):
    """One epoch over the 60,000 training digits (the README's quick model), with the
    filters before and after."""
    (x_train, y_train), _ = mnist
    network = Network(seed=0)
    before = network.conv.filters.copy()
    network.fit(x_train, y_train, epochs=1, seed=0)
    return SimpleNamespace(network=network, filters=[before, network.conv.filters.copy()])


@pytest.fixture(scope="module")
def example(mnist, trained):
    """A labelled trace of a test digit the network is unsure about (p of the label 0.3..0.95)."""
    _, (x_test, y_test) = mnist
    probs = trained.network.predict_proba(x_test[:300])
    p = probs[np.arange(300), y_test[:300]]
    index = int(np.flatnonzero((p > 0.3) & (p < 0.95))[0])
    return index, trained.network.trace(x_test[index], int(y_test[index]))


# --------------------------------------------------------------------------- matplotlib is optional


def test_import_cnn_ext_does_not_import_matplotlib():
    run = _python("""
        import sys
        import cnn_ext, cnn_ext.viz, cnn_ext.trace, cnn_ext.explain, cnn_ext.cli
        print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))
    """)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_without_matplotlib_the_error_says_what_to_install():
    run = _python("""
        import sys
        sys.modules['matplotlib'] = None  # import matplotlib now raises ImportError
        import numpy as np
        from cnn_ext import viz
        try:
            viz.plot_filters(np.zeros((8, 3, 3)))
        except ImportError as exc:
            print(exc)
    """)
    assert run.returncode == 0, run.stderr
    assert 'pip install "cnn_ext[plot]"' in run.stdout and "matplotlib" in run.stdout


# --------------------------------------------------------------------------- the figures


def test_plot_filters(trained):
    fig = viz.plot_filters(trained.filters, ["start (seed 0)", "after 1 epoch"])
    assert_drawn(fig, 2 * 8)
    assert len(colorbars(fig)) == 1
    images = [ax.images[0].get_array() for ax in panels(fig)]
    for k, filters in enumerate(trained.filters):
        for f in range(8):
            assert np.array_equal(images[8 * k + f], filters[f])
    lo, hi = panels(fig)[0].images[0].get_clim()
    assert lo == -hi == -np.abs(np.stack(trained.filters)).max()  # diverging, centred on 0
    assert [ax.get_ylabel() for ax in panels(fig)[::8]] == ["start (seed 0)", "after 1 epoch"]
    save(fig, "filters.png")
    one = viz.plot_filters(trained.network.conv.filters)
    assert_drawn(one, 8)
    with pytest.raises(ValueError, match=r"\(nf, 3, 3\)"):
        viz.plot_filters(np.zeros((8, 5, 5)))
    with pytest.raises(ValueError, match="titles"):
        viz.plot_filters(trained.filters, ["one"])


def test_filters_and_templates_of_a_wide_network_stay_bounded():
    # 40 filters: the first 16 by default (said in the title), or those chosen with maps=
    np.random.seed(6)
    network = Network(num_filters=40)
    filters, weights = network.conv.filters, network.softmax.weights
    fig = viz.plot_filters([filters, 2 * filters], ["a", "b"])
    assert_drawn(fig, 2 * 16)
    axes = panels(fig)
    assert [ax.get_title() for ax in axes[:16]] == [f"filter {f}" for f in range(16)]
    assert np.array_equal(axes[16 + 15].images[0].get_array(), 2 * filters[15])
    assert "filters 0-15 of 40" in fig._suptitle.get_text()
    fig = viz.plot_filters(filters, maps=[39, 7], values=False)
    assert_drawn(fig, 2)
    assert [ax.get_title() for ax in panels(fig)] == ["filter 39", "filter 7"]
    assert np.array_equal(panels(fig)[0].images[0].get_array(), filters[39])
    fig = viz.plot_softmax_templates(weights, 40)
    assert_drawn(fig, 10 * 16)
    assert "filters 0-15 of 40" in fig._suptitle.get_text()
    fig = viz.plot_softmax_templates(weights, 40, maps=[30])
    assert_drawn(fig, 10)
    template = weights.reshape(13, 13, 40, 10)[:, :, 30, 4]
    assert np.array_equal(panels(fig)[4].images[0].get_array(), template)
    with pytest.raises(ValueError, match=r"plot_filters: maps must be filter indices in 0\.\.39"):
        viz.plot_filters(filters, maps=[40])
    with pytest.raises(ValueError, match=r"plot_softmax_templates: give 1\.\.16 different"):
        viz.plot_softmax_templates(weights, 40, maps=[1, 1])
    assert_drawn(viz.plot_filters(filters[:16], maps=range(16)), 16)


def test_plot_trace_marks_exactly_the_tie_mask(example):
    index, trace = example
    fig = viz.plot_trace(trace)
    assert_drawn(fig, 3 + 2 * 8)
    axes = panels(fig)
    ax_in, ax_probs, conv_axes, pool_axes = axes[0], axes[1], axes[3:11], axes[11:19]
    assert np.array_equal(ax_in.images[0].get_array(), trace.input)
    heights = [p.get_height() for p in ax_probs.patches]
    assert np.array_equal(heights, trace.probs)
    ties = trace.tie_map()
    for f, ax in enumerate(conv_axes):
        assert np.array_equal(ax.images[0].get_array(), trace.conv[:, :, f])
        marked = {}
        for collection, k in zip(ax.collections, [k for k in (4, 3, 2, 1) if (ties[:, :, f] == k).any()]):
            cols, rows = np.asarray(collection.get_offsets()).T
            marked[k] = set(zip(rows.astype(int).tolist(), cols.astype(int).tolist()))
        for k in (1, 2, 3, 4):
            expected = set(map(tuple, np.argwhere(ties[:, :, f] == k).tolist()))
            assert marked.get(k, set()) == expected, (f, k)
        assert sum(len(v) for v in marked.values()) == trace.pool_mask[:, :, f].sum()
    counts = trace.tie_counts()
    for f, ax in enumerate(pool_axes):
        assert np.array_equal(ax.images[0].get_array(), trace.pool[:, :, f])
        c = counts[f]
        assert ax.get_xlabel() == f"one maximum: {c[0]}\nflat, 4 equal: {c[3]}\n3 equal: {c[2]}, 2 equal: {c[1]}"
    legend = axes[2].get_legend()
    texts = [t.get_text() for t in legend.get_texts()]
    total = counts.sum(axis=0)
    assert texts[0].startswith(f"4-way tie: {total[3]} windows") and texts[3].startswith(f"single maximum: {total[0]}")
    save(fig, "trace.png")


def test_plot_trace_of_an_odd_sized_image_without_label():
    np.random.seed(5)
    network = Network(num_filters=4, image_shape=(21, 17))
    image = np.random.default_rng(0).integers(0, 256, (21, 17), dtype=np.uint8)
    image[:8] = 0
    trace = network.trace(image)
    assert_drawn(viz.plot_trace(trace), 3 + 2 * 4)
    assert_drawn(viz.plot_explain(trace, "no label"), 5 + 2 * 4)
    with pytest.raises(ValueError, match="needs a trace with a label"):
        viz.plot_gradients(trace)
    with pytest.raises(TypeError, match="Trace"):
        viz.plot_trace(image)


def test_plot_gradients(example):
    _, trace = example
    fig = viz.plot_gradients(trace)
    assert_drawn(fig, 3 + 3 * 8)
    axes = panels(fig)
    assert np.array_equal([p.get_height() for p in axes[0].patches], trace.d_L_d_out)
    assert np.array_equal([p.get_height() for p in axes[1].patches], trace.d_L_d_biases)
    assert np.array_equal(axes[2].images[0].get_array(), trace.d_L_d_weights.T)
    for f in range(8):
        assert np.array_equal(axes[3 + f].images[0].get_array(), trace.d_L_d_pool[:, :, f])
        assert np.array_equal(axes[11 + f].images[0].get_array(), trace.d_L_d_conv[:, :, f])
        assert np.array_equal(axes[19 + f].images[0].get_array(), trace.d_L_d_filters[f])
    save(fig, "gradients.png")


def test_plot_softmax_templates(trained):
    weights = trained.network.softmax.weights
    fig = viz.plot_softmax_templates(weights, 8)
    assert_drawn(fig, 10 * 8)
    axes = panels(fig)
    pooled = np.random.default_rng(1).standard_normal((13, 13, 8))
    for k in (0, 3, 9):
        # template k over the pooled maps is digit k's total (before the bias)
        total = sum((axes[8 * k + f].images[0].get_array() * pooled[:, :, f]).sum() for f in range(8))
        assert np.isclose(total, pooled.ravel() @ weights[:, k], rtol=1e-12)
    assert [ax.get_ylabel() for ax in axes[::8]] == [f"digit {k}" for k in range(10)]
    save(fig, "templates.png")
    with pytest.raises(ValueError, match="pool_shape"):
        viz.plot_softmax_templates(np.zeros((8 * 12, 10)), 8)
    assert_drawn(viz.plot_softmax_templates(np.random.default_rng(0).normal(size=(4 * 12, 3)), 4,
                                            pool_shape=(3, 4)), 3 * 4)


def real_history(mnist, epochs=3, n=12000, log_every=500):
    """Network.fit's History of ``epochs`` epochs over ``n`` training digits, validated on
    2,000 test digits."""
    (x_train, y_train), (x_test, y_test) = mnist
    network = Network(seed=0)
    return network.fit(x_train[:n], y_train[:n], epochs=epochs, seed=0, log_every=log_every,
                       validation_data=(x_test[:2000], y_test[:2000]))


def test_plot_history(mnist):
    history = real_history(mnist)
    steps = history.steps
    assert len(steps) == 3 * 24 and steps[-1].step == 36000
    assert len(history.history["val_accuracy"]) == 3
    fig = viz.plot_history(history)
    assert_drawn(fig, 4)
    ax_loss, ax_acc, ax_eloss, ax_eacc = panels(fig)
    x, y = ax_loss.lines[0].get_data()
    assert list(x) == [s.step for s in steps] and list(y) == [s.loss for s in steps]
    assert list(ax_acc.lines[0].get_data()[1]) == [100 * s.accuracy for s in steps]
    assert len(ax_eloss.lines) == 2 and len(ax_eacc.lines) == 2
    assert list(ax_eacc.lines[1].get_data()[1]) == [100 * a for a in history.history["val_accuracy"]]
    save(fig, "history.png")
    epochs_only = viz.plot_history(SimpleNamespace(history={"loss": [1.0, 0.5], "accuracy": [0.5, 0.8]}, steps=[]))
    assert_drawn(epochs_only, 2)
    with pytest.raises(ValueError, match="empty"):
        viz.plot_history(SimpleNamespace(history={}, steps=[]))
    with pytest.raises(TypeError, match="History"):
        viz.plot_history([1, 2, 3])


def test_plot_tie_rule(example):
    _, trace = example
    for fig in (viz.plot_tie_rule(trace), viz.plot_tie_rule()):
        assert_drawn(fig, 6)
        axes = panels(fig)
        for row in (0, 1):
            window = axes[3 * row].images[0].get_array()
            tied = window == window.max()
            assert tied.sum() == (4 if row == 0 else 2)
            routed = [t.get_text() for t in axes[3 * row + 1].texts]
            single = [t.get_text() for t in axes[3 * row + 2].texts]
            assert routed == ["g" if t else "0" for t in tied.ravel()]
            assert single.count("g") == 1 and single.index("g") == int(np.argmax(tied.ravel()))
    save(viz.plot_tie_rule(trace), "tie_rule.png")


# --------------------------------------------------------------------------- cnn-ext explain


def _cnn_ext():
    script = Path(sys.executable).parent / "cnn-ext"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cnn_ext"]


@pytest.fixture(scope="module")
def model_dir(trained, tmp_path_factory):
    folder = tmp_path_factory.mktemp("explain")
    cnn_ext.ModelSaver(str(folder / "model.npz")).save(trained.network.conv, trained.network.pool,
                                                      trained.network.softmax)
    return folder


def _explain(args, cwd):
    return subprocess.run(_cnn_ext() + ["explain", *map(str, args)], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=300)


def _png_panels(path):
    from PIL import Image

    with Image.open(path) as png:
        return np.asarray(png.convert("RGB"))


def test_cli_explain_an_mnist_digit(model_dir, example, mnist):
    index, trace = example
    run = _explain(["--index", index, "--model", "model.npz", "--out", "digit.png"], model_dir)
    assert run.returncode == 0, run.stderr
    _, (x_test, y_test) = mnist
    label = int(y_test[index])
    lines = run.stdout.splitlines()
    assert lines[0].startswith(f"MNIST test digit {index} (label {label}): prediction {trace.prediction} "
                               f"({100 * trace.probs[trace.prediction]:.1f}%)")
    c = trace.tie_counts().sum(axis=0)
    assert f"{c[3]} 4-way ties, {c[2]} 3-way, {c[1]} 2-way, {c[0]} single maxima" in lines[1]
    assert lines[2].startswith(f"label {label}: loss {trace.loss:.4f}")
    assert lines[-2] == "maps drawn: all 8 filters" and lines[-1] == "figure saved to digit.png"
    pixels = _png_panels(model_dir / "digit.png")
    assert pixels.shape[0] > 1800 and pixels.shape[1] > 1500  # forward and gradients, stacked
    # the same figure as plot_explain of the same trace: same size, same panels
    fig = viz.plot_explain(trace, f"cnn-ext explain: MNIST test digit {index} (label {label}), model model.npz")
    assert_drawn(fig, 8 + 5 * 8)
    axes = panels(fig)
    # reading order, top to bottom: input, conv, pooled, probabilities, gradients
    tops = {name: max(ax.get_window_extent().y0 for ax in axes
                      if (ax.get_title() or ax.get_title(loc="left")).startswith(name))
            for name in ("1  input", "conv ", "pooled ", "d pooled ", "d conv ", "d filter ")}
    assert sorted(tops, key=tops.get, reverse=True) == list(tops)
    counts = trace.tie_counts()
    pooled = [ax for ax in axes if ax.get_title().startswith("pooled ")]
    for f, ax in enumerate(pooled):
        c = counts[f]
        assert ax.get_xlabel() == f"one maximum: {c[0]}\nflat, 4 equal: {c[3]}\n3 equal: {c[2]}, 2 equal: {c[1]}"
        assert np.array_equal(ax.images[0].get_array(), trace.pool[:, :, f])
        assert not ax.collections  # no marks over the maps
    width, height = fig.get_size_inches() * 110  # explain saves at 110 dpi
    assert (round(height), round(width)) == pixels.shape[:2]
    if FIGURES:
        shutil.copy(model_dir / "digit.png", Path(FIGURES) / "explain.png")


def test_explain_spells_out_one_output_as_patch_times_filter(example, trained):
    _, trace = example
    filters = trained.network.conv.filters
    fig = viz.plot_explain(trace, maps=[2, 5], filters=filters, output=(10, 11, 5))
    axes = panels(fig)
    assert len(axes) == 8 + 5 * 2
    text = axes[2].texts[0].get_text()
    assert text.startswith(f"one output, conv[10, 11, 5] = {trace.conv[10, 11, 5]:.4g}")
    assert text.endswith(f"= {float(np.sum(trace.input[10:13, 11:14] * filters[5])):.4g}")
    assert [ax.get_title() for ax in axes if ax.get_title().startswith("conv ")] == ["conv 2", "conv 5"]
    with pytest.raises(ValueError, match="filter indices in 0..7"):
        viz.plot_explain(trace, maps=[8])
    with pytest.raises(ValueError, match="inside the conv maps"):
        viz.plot_explain(trace, output=(26, 0, 0))


def test_explain_chooses_and_names_at_most_eight_maps():
    np.random.seed(3)
    network = Network(num_filters=20)
    image = np.zeros((28, 28), np.uint8)
    image[6:22, 12:16] = 255
    labelled, plain = network.trace(image, 4), network.trace(image)
    shown, words = viz.explain_maps(labelled)
    gradient = np.abs(labelled.d_L_d_filters).sum(axis=(1, 2))
    assert shown == sorted(np.argsort(-gradient)[:8].tolist())
    assert words.startswith("8 of 20 filters, those with the largest filter gradient")
    shown, words = viz.explain_maps(plain)
    assert shown == sorted(np.argsort(-plain.pool.std(axis=(0, 1)))[:8].tolist())
    assert "most varied pooled maps" in words
    assert viz.explain_maps(plain, [19, 0]) == ([19, 0], "filters 19, 0 of 20 (chosen)")
    fig = viz.plot_explain(labelled, "twenty filters")
    assert_drawn(fig, 8 + 5 * 8)
    guide = panels(fig)[1].texts[0].get_text()
    assert "Maps shown: 8 of 20 filters" in guide


def test_plot_trace_and_gradients_draw_at_most_sixteen_maps_unless_chosen():
    # A wide network's figure stays bounded: 16 maps by default, chosen as explain_maps
    # chooses and named in the row titles; or the maps asked for.
    np.random.seed(4)
    network = Network(num_filters=40)
    image = np.zeros((28, 28), np.uint8)
    image[5:23, 10:18] = 255
    trace = network.trace(image, 3)
    shown, words = viz.explain_maps(trace, count=viz.TRACE_MAX_MAPS)
    gradient = np.abs(trace.d_L_d_filters).sum(axis=(1, 2))
    assert shown == sorted(np.argsort(-gradient)[:16].tolist()) and words.startswith("16 of 40 filters")
    fig = viz.plot_trace(trace)
    assert_drawn(fig, 3 + 2 * 16)
    axes = panels(fig)
    for f, ax in zip(shown, axes[3:19]):
        assert ax.get_title() == f"conv {f}" and np.array_equal(ax.images[0].get_array(), trace.conv[:, :, f])
    for f, ax in zip(shown, axes[19:35]):
        assert ax.get_title() == f"pool {f}" and np.array_equal(ax.images[0].get_array(), trace.pool[:, :, f])
    titles = [t.get_text() for sub in fig.subfigs for t in sub.texts]
    assert any(t.endswith("drawn: " + words) for t in titles), titles
    fig = viz.plot_gradients(trace, maps=[39, 2])
    assert_drawn(fig, 3 + 3 * 2)
    axes = panels(fig)
    assert [ax.get_title() for ax in axes[3:9]] == ["pool 39", "pool 2", "conv 39", "conv 2", "filter 39", "filter 2"]
    assert np.array_equal(axes[7].images[0].get_array(), trace.d_L_d_filters[39])
    assert_drawn(viz.plot_gradients(trace), 3 + 3 * 16)
    with pytest.raises(ValueError, match=r"plot_trace: maps must be filter indices in 0\.\.39, got \[40\]"):
        viz.plot_trace(trace, maps=[40])
    with pytest.raises(ValueError, match=r"plot_gradients: give 1\.\.16 different filter indices"):
        viz.plot_gradients(trace, maps=list(range(17)))
    for bad in (5, "ab", [1.5], [None]):
        with pytest.raises(TypeError, match=r"plot_trace: maps must be a sequence of filter indices"):
            viz.plot_trace(trace, maps=bad)
    assert_drawn(viz.plot_trace(trace, maps=np.array([3, 1])), 3 + 2 * 2)  # NumPy integers count


def test_cli_explain_a_1024_filter_model_in_bounded_time(tmp_path):
    # Constrained layout over every map grew like the cube of the filter count (139 s at 128
    # filters); eight chosen maps keep the figure the same size at any width.
    np.random.seed(0)
    network = Network(num_filters=1024)
    cnn_ext.ModelSaver(str(tmp_path / "wide.npz")).save(network.conv, network.pool, network.softmax)
    start = time.perf_counter()
    run = _explain(["--index", "0", "--model", "wide.npz", "--out", "wide.png"], tmp_path)
    elapsed = time.perf_counter() - start
    assert run.returncode == 0, run.stderr
    assert elapsed < 90, f"explain of a 1024-filter model took {elapsed:.0f} s"
    assert "maps drawn: 8 of 1024 filters, those with the largest filter gradient" in run.stdout
    pixels = _png_panels(tmp_path / "wide.png")
    assert pixels.shape[1] <= 1800 and pixels.shape[0] <= 2100
    chosen = _explain(["--index", "0", "--model", "wide.npz", "--out", "w2.png", "--maps", "0,1023"], tmp_path)
    assert chosen.returncode == 0 and "maps drawn: filters 0, 1023 of 1024 (chosen)" in chosen.stdout
    bad = _explain(["--index", "0", "--model", "wide.npz", "--maps", "1024"], tmp_path)
    assert bad.returncode == 2 and "the model has 1024 filters" in bad.stderr


def test_cli_explain_a_drawn_image_and_a_blank_one(model_dir, mnist):
    from PIL import Image

    _, (x_test, _) = mnist
    drawn = Image.fromarray(255 - x_test[0]).resize((140, 140))  # black on white, as drawn
    drawn.save(model_dir / "seven.png")
    run = _explain(["seven.png", "--model", "model.npz"], model_dir)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("seven.png: prediction 7 ")
    assert "label" not in run.stdout.splitlines()[2]
    assert (model_dir / "seven_explain.png").is_file()
    with_label = _explain(["seven.png", "--model", "model.npz", "--label", "1", "--out", "l.png"], model_dir)
    assert with_label.returncode == 0 and "label 1: loss" in with_label.stdout
    assert _png_panels(model_dir / "l.png").shape[0] > _png_panels(model_dir / "seven_explain.png").shape[0]

    Image.new("L", (100, 100), 255).save(model_dir / "blank.png")
    blank = _explain(["blank.png", "--model", "model.npz", "--out", "blank_out.png"], model_dir)
    assert blank.returncode == 1 and blank.stdout.startswith("blank.png: no digit found (")
    assert not (model_dir / "blank_out.png").exists()


@pytest.mark.parametrize("args, message", [
    ([], "give either IMAGE or --index N"),
    (["x.png", "--index", "3"], "give either IMAGE or --index N"),
    (["--index", "10000"], "expected an MNIST test index in 0..9999, got 10000"),
    (["--index", "two"], "expected an integer, got 'two'"),
    (["--index", "1", "--label", "10"], "expected a digit in 0..9, got 10"),
    (["--index", "1", "--out", "nowhere/x.png"], "--out: no folder"),
    (["--index", "1", "--out", "x.txt"], "--out must end in .png, .pdf, .svg"),
    (["missing.png"], "no image file 'missing.png'"),
    (["--index", "1", "--maps", "1,1"], "expected 1 to 8 different filter indices"),
    (["--index", "1", "--maps", "a"], "expected filter indices like 0,5,9"),
])
def test_cli_explain_refuses_bad_arguments_before_work(tmp_path, args, message):
    run = _explain(args, tmp_path)
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert "Traceback" not in run.stderr
    last = run.stderr.splitlines()[-1]
    assert last.startswith("cnn-ext explain: error: ") and message in last


def test_cli_explain_without_a_model(tmp_path):
    run = _explain(["--index", "0"], tmp_path)
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert "MNIST_CNN.pkl" in run.stderr and "cnn-ext train" in run.stderr


# --------------------------------------------------------------------------- the live view


def test_live_training_without_a_display():
    run = _python("""
        import numpy as np
        from cnn_ext import Network, viz
        try:
            viz.LiveTraining(Network(seed=0), 100)
        except viz.NoDisplayError as exc:
            print(isinstance(exc, RuntimeError), exc)
    """, DISPLAY=None, WAYLAND_DISPLAY=None, MPLBACKEND=None)
    assert run.returncode == 0, run.stderr
    if ON_X11:
        assert run.stdout.strip() == ("True the live training view needs a display: no DISPLAY is set "
                                      "(run it on a desktop, or under Xvfb)")


@pytest.fixture(scope="module")
def xvfb(request):
    """A virtual X server on a free display number: its DISPLAY (``:N``)."""
    missing = [tool for tool in ("Xvfb", "xdotool") if shutil.which(tool) is None]
    if not HAVE_TK:
        missing.append("tkinter (this Python has no _tkinter)")
    if not ON_X11:
        missing.append("an X11 system (Linux/BSD)")
    if missing:
        message = ("the live training window test needs " + ", ".join(missing)
                   + " (Debian: apt-get install xvfb xdotool python3-tk)")
        if os.environ.get("CNN_EXT_CI"):
            pytest.fail("the project's CI must run the GUI test: " + message)
        pytest.skip(message)
    return request.getfixturevalue("virtual_display")


LIVE_DRIVER = """
import json, subprocess, sys
import numpy as np
from cnn_ext import Network, viz
from cnn_ext.datasets import mnist

def windows(title):
    found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", title],
                           capture_output=True, text=True)
    return found.stdout.split()

(x, y), _ = mnist.load_data()
net = Network(seed=0)
n, epochs = 6000, 2
live = viz.LiveTraining(net, epochs * n, interval=0.0, backend="TkAgg", title="cnn_ext live test")
events = []
def callback(kind, record):
    events.append(kind)
    live(kind, record)
net.fit(x[:n], y[:n], epochs=epochs, log_every=500, callback=callback, chunk=250)
shown_while_training = windows("cnn_ext live test")
live.close()
images = [im.get_array().tolist() for im in live._filter_images]
print("RESULT " + json.dumps({
    "backend": __import__("matplotlib").get_backend(),
    "open": shown_while_training, "after_close": windows("cnn_ext live test"),
    "redraws": live.redraws, "median_redraw": float(np.median(live.redraw_seconds)),
    "steps": live.steps, "losses": live.losses, "step": live.step, "epochs": live.epochs,
    "filters_match": images == net.conv.filters.tolist(),
    "events": sorted(set(events)), "title": live._status.get_text(), "progress": live.progress[:2]}))
if len(sys.argv) > 1:
    live.figure.savefig(sys.argv[1], dpi=100)
"""


def test_cli_live_window_stays_until_the_user_closes_it(xvfb, tmp_path):
    env = _env(DISPLAY=xvfb, MPLBACKEND=None)
    train = subprocess.Popen(_cnn_ext() + ["train", "--live", "--train-size", "3000", "--test-size", "100",
                                           "--epochs", "1", "--model", "m", "--quiet"],
                             cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = train.stdout.readline()
            lines.append(line)
            if not line or "the live window stays open" in line:
                break
        assert "the live window stays open: close it to finish\n" in lines, lines
        assert (tmp_path / "m.pkl").is_file()  # saved before waiting: closing late loses nothing
        time.sleep(1.5)
        assert train.poll() is None, "cnn-ext train closed the live window by itself"
        found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "cnn_ext training"],
                               env=env, capture_output=True, text=True).stdout.split()
        assert len(found) == 1
        # matplotlib's "quit" key closes the figure, as a user would
        subprocess.run(["xdotool", "key", "--window", found[0], "q"], env=env, capture_output=True)
        assert train.wait(20) == 0
    finally:
        if train.poll() is None:
            train.kill()
            train.wait()
    assert "Traceback" not in train.stderr.read()


def test_live_training_window(xvfb, tmp_path):
    args = [str(Path(FIGURES).resolve() / "live.png")] if FIGURES else []
    run = subprocess.run([sys.executable, "-c", LIVE_DRIVER, *args], cwd=tmp_path,
                         env=_env(DISPLAY=xvfb, MPLBACKEND=None), capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.split("RESULT ", 1)[1].splitlines()[0])
    assert result["backend"].lower() == "tkagg"
    assert len(result["open"]) == 1 and result["after_close"] == []  # a window, closed by close()
    assert result["steps"] == list(range(500, 12001, 500)) and len(result["losses"]) == 24
    assert result["step"] == 12000 and result["epochs"] == 2
    assert result["filters_match"]  # the last redraw shows the trained filters
    # The curves start at the first compiled chunk (250 steps), not at the first log record.
    assert [p[0] for p in result["progress"]] == [250, 500] and result["progress"][0][1] > 0
    assert result["redraws"] >= 24  # interval 0: every event between chunks redraws
    assert result["title"].startswith("step 12,000 of 12,000 (100%), 2 epoch(s) done | last log: loss ")
    print(f"\nlive view: {result['redraws']} redraws, median {1000 * result['median_redraw']:.0f} ms")


def test_live_window_of_a_wide_network_draws_sixteen_filters(xvfb):
    # each redraw of a 40-filter network updates 16 filter panels, the ones named in the title
    code = """
import json
import numpy as np
from cnn_ext import Network, viz
from cnn_ext.datasets import mnist
(x, y), _ = mnist.load_data()
net = Network(seed=0, num_filters=40)
live = viz.LiveTraining(net, 300, interval=0.0, backend="TkAgg", title="cnn_ext wide live test")
net.fit(x[:300], y[:300], callback=live, chunk=100)
live.close()
print("RESULT " + json.dumps({
    "panels": len(live._filter_images),
    "match": all(np.array_equal(im.get_array(), net.conv.filters[f])
                 for f, im in enumerate(live._filter_images)),
    "title": live._status.get_text()}))
"""
    run = _python(code, DISPLAY=xvfb, MPLBACKEND=None)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.split("RESULT ", 1)[1].splitlines()[0])
    assert result["panels"] == 16 and result["match"]
    assert result["title"].endswith("(drawn: filters 0-15 of 40)"), result["title"]
