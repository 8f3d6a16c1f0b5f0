"""A drawing pad inside Jupyter, Colab or VS Code: draw a digit, see it classified.

``DigitPad(network)`` is an `anywidget <https://anywidget.dev>`_ widget: an HTML canvas
(280x280) whose drawing is sent to Python as a PNG after each stroke, converted by
:func:`cnn_ext.imaging.to_mnist` (as ``cnn-ext draw`` and ``cnn-ext predict`` convert) and
classified by ``network``; beside the canvas it shows the 28x28 image the network sees and
the ten probabilities, or why there is no digit. It needs a live kernel and anywidget
(``pip install "cnn_ext[docs]"``); ``import cnn_ext`` never imports this module.

Without a browser the Python side works the same: set ``pad.png`` to
``png_data_url(image)`` (what the canvas sends) and read ``pad.prediction``, ``pad.probs``,
``pad.digit`` and ``pad.problem``.
"""
from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

try:
    import anywidget
    import traitlets
except ImportError as exc:  # the widget is an extra; say which
    raise ImportError(f"cnn_ext.pad needs anywidget and traitlets (pip install \"cnn_ext[docs]\"): {exc}") from None

from PIL import Image

from .imaging import digit_problem, to_mnist

__all__ = ["DigitPad", "png_data_url"]


def png_data_url(image: Image.Image) -> str:
    """A PIL image as a ``data:image/png;base64,...`` URL, the form a canvas's
    ``toDataURL()`` gives."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# The browser side: the canvas, the clear button, and the view of what the network sees.
_ESM = """
function render({ model, el }) {
  const size = 280;
  const canvas = document.createElement("canvas");
  canvas.width = size; canvas.height = size;
  Object.assign(canvas.style, {border: "1px solid #888", touchAction: "none", cursor: "crosshair"});
  const ctx = canvas.getContext("2d");
  const clear = () => { ctx.fillStyle = "white"; ctx.fillRect(0, 0, size, size); };
  clear();
  ctx.lineWidth = 18; ctx.lineCap = "round"; ctx.lineJoin = "round"; ctx.strokeStyle = "black";
  let drawing = false;
  canvas.addEventListener("pointerdown", (e) => {
    drawing = true; canvas.setPointerCapture(e.pointerId);
    ctx.beginPath(); ctx.moveTo(e.offsetX, e.offsetY); ctx.lineTo(e.offsetX, e.offsetY); ctx.stroke();
  });
  canvas.addEventListener("pointermove", (e) => {
    if (drawing) { ctx.lineTo(e.offsetX, e.offsetY); ctx.stroke(); }
  });
  const send = () => {
    if (!drawing) return;
    drawing = false;
    model.set("png", canvas.toDataURL("image/png")); model.save_changes();
  };
  canvas.addEventListener("pointerup", send);
  canvas.addEventListener("pointercancel", send);
  const button = document.createElement("button");
  button.textContent = "clear";
  button.onclick = () => { clear(); model.set("png", ""); model.save_changes(); };
  const seen = document.createElement("img");
  Object.assign(seen.style, {width: "140px", height: "140px", imageRendering: "pixelated",
                             border: "1px solid #888", display: "block"});
  const bars = document.createElement("div");
  bars.style.fontFamily = "monospace";
  const update = () => {
    seen.src = model.get("seen") || "";
    seen.style.visibility = model.get("seen") ? "visible" : "hidden";
    const p = model.get("probs");
    bars.innerHTML = p.length ? p.map((v, d) => {
      const best = v === Math.max(...p);
      return `<div style="white-space:pre">${d} <span style="display:inline-block;height:0.8em;` +
             `width:${Math.round(150 * v)}px;background:${best ? "#d62728" : "#1f77b4"}"></span> ` +
             `${(100 * v).toFixed(1)}%</div>`;
    }).join("") : (model.get("problem") || "draw a digit");
  };
  model.on("change:seen", update); model.on("change:probs", update); model.on("change:problem", update);
  update();
  const side = document.createElement("div");
  side.append(seen, bars);
  const row = document.createElement("div");
  Object.assign(row.style, {display: "flex", gap: "16px", alignItems: "flex-start"});
  const left = document.createElement("div");
  left.append(canvas, document.createElement("br"), button);
  row.append(left, side);
  el.append(row);
}
export default { render };
"""


class DigitPad(anywidget.AnyWidget):  # type: ignore[misc]  # anywidget has no type hints
    """A 280x280 canvas; after each stroke ``png`` holds the drawing, and the Python side
    sets ``digit`` (the 28x28 uint8 image given to the network), ``seen`` (it, upscaled,
    as a data URL), ``probs`` (the ten probabilities) or ``problem`` (why there is no
    digit: blank, a speck, a scribble...)."""

    _esm = _ESM
    png = traitlets.Unicode("").tag(sync=True)
    seen = traitlets.Unicode("").tag(sync=True)
    probs = traitlets.List(traitlets.Float()).tag(sync=True)
    problem = traitlets.Unicode("").tag(sync=True)

    def __init__(self, network: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.network = network
        self.digit: np.ndarray | None = None

    @traitlets.observe("png")  # type: ignore[misc]
    def _classify(self, change: dict[str, Any]) -> None:
        url = change["new"]
        if not url:
            self.digit, self.seen, self.probs, self.problem = None, "", [], ""
            return
        drawing = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        self.digit = to_mnist(drawing)
        self.problem = digit_problem(self.digit) or ""
        if self.problem:
            self.seen, self.probs = "", []
            return
        self.seen = png_data_url(Image.fromarray(self.digit).resize((140, 140), Image.NEAREST))
        self.probs = [float(p) for p in self.network.predict_proba(self.digit)[0]]

    @property
    def prediction(self) -> int | None:
        """The predicted digit, or None when there is none (an empty or non-digit drawing)."""
        return int(np.argmax(self.probs)) if self.probs else None
