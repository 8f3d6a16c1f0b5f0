"""cnn_ext.pad: the Jupyter drawing pad's Python side (the notebook 04_draw uses it), checked
without a browser: a PNG as the canvas sends it is converted, classified, or refused."""
import importlib.util
import os

import numpy as np
import pytest
from PIL import Image, ImageDraw

from cnn_ext import Network
from cnn_ext.imaging import to_mnist


@pytest.fixture(scope="module")
def pad_module():
    missing = [m for m in ("anywidget", "traitlets") if importlib.util.find_spec(m) is None]
    if missing:
        reason = f"cnn_ext.pad needs {', '.join(missing)}, from the docs extra: pip install \".[docs]\""
        if os.environ.get("CNN_EXT_CI"):
            pytest.fail(f"the project's CI must install the docs extra; {reason}")
        pytest.skip(reason)
    import cnn_ext.pad

    return cnn_ext.pad


def test_the_pad_classifies_what_the_canvas_sends(pad_module, mnist):
    (x_train, y_train), _ = mnist
    net = Network(seed=0)
    net.fit(x_train[:20000], y_train[:20000], epochs=1, seed=0, log_every=0)
    pad = pad_module.DigitPad(net)
    assert "function render" in pad._esm and pad.prediction is None
    stroke = Image.new("RGB", (280, 280), "white")
    draw = ImageDraw.Draw(stroke)
    draw.line((140, 40, 140, 240), fill="black", width=18)
    pad.png = pad_module.png_data_url(stroke)
    assert np.array_equal(pad.digit, to_mnist(stroke))
    assert pad.problem == "" and pad.prediction == int(np.argmax(net.predict_proba(pad.digit)[0])) == 1
    assert pad.seen.startswith("data:image/png;base64,")
    square = Image.new("RGB", (280, 280), "white")
    ImageDraw.Draw(square).rectangle((40, 40, 240, 240), fill="black")
    pad.png = pad_module.png_data_url(square)
    assert pad.problem and pad.prediction is None and pad.seen == ""
    pad.png = ""
    assert pad.digit is None and pad.probs == []


def test_import_cnn_ext_does_not_import_the_pad():
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", "import sys, cnn_ext, cnn_ext.cli; "
                          "print('anywidget' in sys.modules, 'cnn_ext.pad' in sys.modules)"],
                         capture_output=True, text=True)
    assert run.stdout.split() == ["False", "False"], run.stderr
