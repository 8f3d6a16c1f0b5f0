"""The tutorial's drawing board (``DrawingBoard``), and ``cnn-ext draw``: draw a digit, see
what the network makes of it.

``DrawingBoard(root)`` keeps the tutorial's class, so its script runs unchanged: a window
titled ``画板`` with a 280x280 white canvas, a black brush and a button ``输出`` that saves
the drawing as ``temp.png`` (28x28) and closes the window. Three things differ, on purpose:

* :meth:`DrawingBoard.process_image` returns what MNIST looks like -- a white digit on
  black, scaled to fit 20x20 and centred by its mass -- through
  :func:`cnn_ext.imaging.to_mnist`, the conversion ``cnn-ext predict`` uses. The
  tutorial's plain resize gave a black digit on white, which a network trained on MNIST
  has never seen.
* The brush is as wide as MNIST's strokes: a digit drawn at the board's natural size
  (its longer side about 70% of the canvas, as MNIST's 20 pixels are of 28) comes out
  with MNIST's stroke width after the conversion. The tutorial's radius of 5 gives strokes
  half as wide.
* Strokes are connected: each mouse event draws a round-capped line from the previous
  position, so moving the mouse fast leaves no gaps between dots.

:func:`run` (``cnn-ext draw``) is the board plus a live prediction: after every stroke
the predicted digit and the ten probabilities are shown beside the canvas. Tk is optional
for the package: ``import cnn_ext`` never imports tkinter, and importing this module
without Tk works; creating a board is what fails, with :class:`DisplayError`.
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image, ImageDraw

from .imaging import to_mnist
from .saver import ModelSaver

try:  # Tk is optional: a Python built without it can still import this module.
    import tkinter as tk
except ImportError as exc:  # pragma: no cover - depends on the Python build
    tk = None
    _TK_IMPORT_ERROR = exc
else:
    _TK_IMPORT_ERROR = None

__all__ = ["DrawingBoard", "PredictionBoard", "DisplayError", "open_window", "draw_stroke", "run",
           "main", "BRUSH_WIDTH", "CANVAS_SIZE", "DEFAULT_MODEL"]

CANVAS_SIZE = 280  # 10 x MNIST's 28
# Brush radius in canvas pixels (the tutorial's ``brush_width``; it used 5). Measured on
# MNIST's test digits traced along their skeletons with the brush, then converted: MNIST's
# stroke width (2 x area / perimeter of the ink >= 128) is 1.83 median, 1.35..2.62 from the
# 10th to the 90th percentile. Radius 10 gives 1.89 for a digit drawn at MNIST's
# proportions (its longer side 70% of the canvas, as 20 of 28 pixels), 2.64 at 50%, 2.29
# at 60%, 1.78 at 80% and 1.66 at 90%: MNIST's range for any size a user draws at. Radius
# 11 gives 2.07 at 70% (and 2.72 at 50%), 9 gives 1.79; the tutorial's 5 gives 1.08.
BRUSH_WIDTH = 10
DEFAULT_MODEL = "MNIST_CNN"
OUTPUT_FILE = "temp.png"

_BAR = "#9db4cc"  # the nine other bars
_BAR_TOP = "#e4572e"  # the predicted digit's bar
_ERROR = "#b00020"
_TEXT = "#333333"


class DisplayError(RuntimeError):
    """No window can be opened: this Python has no tkinter, or there is no display."""


def open_window(program="cnn-ext draw"):
    """A new ``tk.Tk()`` root, or :class:`DisplayError` with a one-line reason.

    On X11 systems (Linux, the BSDs) a missing ``DISPLAY`` is reported before Tk tries,
    since Tk's own message for it is cryptic.
    """
    if tk is None:
        raise DisplayError(
            f"{program} needs Tk, but this Python has no tkinter ({_TK_IMPORT_ERROR}): "
            "install your system's Tk package for Python (Debian/Ubuntu: python3-tk), "
            "or use a Python built with Tk")
    if os.name == "posix" and sys.platform != "darwin" and not os.environ.get("DISPLAY"):
        raise DisplayError(
            f"{program} needs a display: no DISPLAY is set (run it on a desktop, or under Xvfb)")
    try:
        return tk.Tk()
    except tk.TclError as exc:
        display = os.environ.get("DISPLAY")
        where = f" {display}" if display else ""
        raise DisplayError(f"{program} needs a display: cannot open the display{where} ({exc})") from None


def draw_stroke(draw, start, end, radius, fill="black"):
    """Draw one piece of a brush stroke on a PIL ``ImageDraw``: a line of width
    ``2 * radius`` from ``start`` to ``end`` with round caps, or a dot of that radius if
    ``start`` is ``None`` (the stroke begins at ``end``). Points are ``(x, y)``."""
    x1, y1 = end
    if start is not None and tuple(start) != (x1, y1):
        x0, y0 = start
        draw.line([(x0, y0), (x1, y1)], fill=fill, width=2 * radius)
        draw.ellipse([x0 - radius, y0 - radius, x0 + radius, y0 + radius], fill=fill, outline=fill)
    draw.ellipse([x1 - radius, y1 - radius, x1 + radius, y1 + radius], fill=fill, outline=fill)


def _require_tk():
    if tk is None:
        raise DisplayError(
            f"DrawingBoard needs Tk, but this Python has no tkinter ({_TK_IMPORT_ERROR}): "
            "install your system's Tk package for Python (Debian/Ubuntu: python3-tk)")


class DrawingBoard:
    """The tutorial's drawing board: ``DrawingBoard(tk.Tk())``, then ``root.mainloop()``.

    Draw with the left mouse button; ``输出`` stores the digit, MNIST-style, in
    ``image_array`` (28x28 uint8), saves it as ``temp.png`` in the current directory and
    closes the window. The drawing itself is kept in ``image`` (a 280x280 RGB PIL image,
    black on white), the same picture as on the canvas.
    """

    def __init__(self, root):
        _require_tk()
        self.root = root
        self.root.title("画板")
        # 280x280 white canvas, 10x MNIST's 28x28.
        self.canvas = tk.Canvas(root, width=CANVAS_SIZE, height=CANVAS_SIZE, bg='white')
        self.canvas.pack()
        # A stroke starts on the press, continues with each motion, ends on the release.
        self.canvas.bind("<ButtonPress-1>", self.start_stroke)
        self.canvas.bind("<B1-Motion>", self.paint)
        self.canvas.bind("<ButtonRelease-1>", self.end_stroke)
        # The same drawing as a PIL image, which process_image converts.
        self.image = Image.new("RGB", (CANVAS_SIZE, CANVAS_SIZE), "white")
        self.draw = ImageDraw.Draw(self.image)
        self.brush_color = "black"
        self.brush_width = BRUSH_WIDTH  # the brush's radius, as in the tutorial's paint
        self.output_button = tk.Button(root, text="输出", command=self.output_and_exit)
        self.output_button.pack()
        self.image_array = None
        self._last = None  # previous point of the stroke being drawn, None between strokes

    def start_stroke(self, event):
        """Mouse button pressed: a new stroke starts with a dot where it was pressed."""
        self._last = None
        self.paint(event)

    def paint(self, event):
        """Extend the current stroke to ``(event.x, event.y)`` on the canvas and the image."""
        x, y, r = event.x, event.y, self.brush_width
        color = self.brush_color
        if self._last is None or self._last == (x, y):
            self.canvas.create_oval(x - r, y - r, x + r, y + r, fill=color, outline=color, tags="ink")
        else:
            x0, y0 = self._last
            self.canvas.create_line(x0, y0, x, y, width=2 * r, fill=color, capstyle=tk.ROUND,
                                    tags="ink")
        draw_stroke(self.draw, self._last, (x, y), r, color)
        self._last = (x, y)

    def end_stroke(self, event):
        """Mouse button released: the next motion starts a new stroke."""
        self._last = None

    def clear(self):
        """Erase the drawing (canvas and image)."""
        self.canvas.delete("ink")
        self.draw.rectangle([0, 0, CANVAS_SIZE, CANVAS_SIZE], fill="white")
        self._last = None

    def process_image(self):
        """The drawing as an MNIST digit: a (28, 28) uint8 array, white (255) on black (0),
        scaled to fit 20x20 and centred by mass (:func:`cnn_ext.imaging.to_mnist`). An empty
        board gives all zeros."""
        return to_mnist(self.image)

    def output_and_exit(self):
        """Store the digit in ``image_array``, save it as ``temp.png``, close the window."""
        self.image_array = self.process_image()
        Image.fromarray(self.image_array).save(OUTPUT_FILE)
        print("图片已保存为 temp.png")
        self.root.destroy()


class PredictionBoard(DrawingBoard):
    """The board of ``cnn-ext draw``: the prediction is shown beside the canvas after every
    stroke and on ``输出``, which saves ``temp.png`` but keeps the window open.

    ``清除 / Clear`` or the key ``c`` erases the drawing, ``Escape`` closes the window.
    The network is loaded from ``model`` (a :class:`cnn_ext.ModelSaver` name: ``NAME.pkl``,
    or a file ending in ``.npz``); without it the board still works, and the window says
    how to train one. After a prediction ``probabilities`` holds the ten probabilities and
    ``prediction`` the digit (both ``None`` while the board is empty or there is no model).
    """

    def __init__(self, root, model=DEFAULT_MODEL):
        super().__init__(root)
        self.model = model
        self.probabilities = None
        self.prediction = None
        self._build_layout()
        self.network, message = _load_model(model)
        if self.network is None:
            print(f"{message} (looked for {os.path.abspath(ModelSaver(model).filename)})")
            self._status(message, error=True)
        self.root.bind("<Key-c>", lambda event: self.clear())
        self.root.bind("<Key-C>", lambda event: self.clear())
        self.root.bind("<Escape>", lambda event: self.close())
        self.root.protocol("WM_DELETE_WINDOW", self.close)
        self.show_prediction(None)

    def _build_layout(self):
        root = self.root
        root.resizable(False, False)
        # Put the tutorial's widgets into a grid: canvas and buttons left, prediction right.
        self.canvas.pack_forget()
        self.output_button.destroy()
        self.canvas.grid(row=0, column=0, sticky="n", padx=(8, 4), pady=(8, 4))
        buttons = tk.Frame(root)
        buttons.grid(row=1, column=0, sticky="n", pady=(0, 8))
        self.output_button = tk.Button(buttons, text="输出", width=8, command=self.output)
        self.output_button.pack(side="left", padx=4)
        self.clear_button = tk.Button(buttons, text="清除 / Clear", width=10, command=self.clear)
        self.clear_button.pack(side="left", padx=4)

        panel = tk.Frame(root)
        panel.grid(row=0, column=1, rowspan=2, sticky="n", padx=(4, 8), pady=(8, 8))
        tk.Label(panel, text="预测 / Prediction", fg=_TEXT).pack()
        self.digit_label = tk.Label(panel, text="", font=("Helvetica", 48, "bold"), width=2,
                                    fg=_BAR_TOP)
        self.digit_label.pack()
        self.confidence_label = tk.Label(panel, text="", fg=_TEXT)
        self.confidence_label.pack()
        self.bars = tk.Canvas(panel, width=250, height=110, bg="white", highlightthickness=0)
        self.bars.pack(pady=(4, 4))
        self.status_label = tk.Label(panel, text="", wraplength=250, justify="left", fg=_TEXT,
                                     anchor="w")
        self.status_label.pack(fill="x")
        tk.Label(panel, text="c: 清除 / clear    Esc: 关闭 / close", fg="#777777").pack(
            side="bottom", pady=(6, 0))

    def _status(self, text, error=False):
        self.status_label.configure(text=text, fg=_ERROR if error else _TEXT)

    def end_stroke(self, event):
        super().end_stroke(event)
        self.predict()

    def clear(self):
        super().clear()
        self.image_array = None
        self.show_prediction(None)

    def predict(self):
        """Classify the drawing and show the result; returns the digit, or ``None`` if the
        board is empty or no model is loaded."""
        digit = self.process_image()
        if self.network is None or not digit.any():
            self.show_prediction(None)
            return None
        probabilities = self.network.predict_proba(digit)[0]
        self.show_prediction(probabilities)
        return self.prediction

    def show_prediction(self, probabilities):
        """Draw the ten bars (the predicted one highlighted) and the big digit; ``None``
        clears them."""
        bars = self.bars
        bars.delete("all")
        width, height = int(bars.cget("width")), int(bars.cget("height"))
        slot, top, base = width / 10, 18, height - 18
        if probabilities is None:
            self.probabilities = self.prediction = None
            self.digit_label.configure(text="–", fg=_BAR)
            self.confidence_label.configure(text="")
            if self.network is not None:
                self._status("用鼠标写一个数字 / Draw a digit with the mouse")
        else:
            self.probabilities = np.asarray(probabilities, dtype=np.float64)
            self.prediction = int(np.argmax(self.probabilities))
            p = float(self.probabilities[self.prediction])
            self.digit_label.configure(text=str(self.prediction), fg=_BAR_TOP)
            self.confidence_label.configure(text=f"{100 * p:.1f}%")
        for d in range(10):
            x0, x1 = d * slot + 3, (d + 1) * slot - 3
            bars.create_text((x0 + x1) / 2, base + 9, text=str(d), fill=_TEXT)
            if self.probabilities is None:
                continue
            p = float(self.probabilities[d])
            y0 = base - max(p * (base - top), 1.0)
            top_bar = d == self.prediction
            bars.create_rectangle(x0, y0, x1, base, fill=_BAR_TOP if top_bar else _BAR, width=0)
            if top_bar or p >= 0.1:
                bars.create_text((x0 + x1) / 2, y0 - 7, text=f"{100 * p:.0f}", fill=_TEXT,
                                 font=("Helvetica", 8))
        bars.create_line(0, base, width, base, fill="#999999")

    def output(self):
        """``输出``: store the digit in ``image_array``, save ``temp.png``, show and print the
        prediction. The window stays open."""
        self.image_array = self.process_image()
        digit = self.predict()
        try:
            Image.fromarray(self.image_array).save(OUTPUT_FILE)
        except OSError as exc:
            message = f"{OUTPUT_FILE} not saved: {exc}"
            print(message, file=sys.stderr)
            self._status(message, error=True)
            return
        print("图片已保存为 temp.png")
        saved = f"图片已保存为 {OUTPUT_FILE} / saved {os.path.abspath(OUTPUT_FILE)}"
        if digit is not None:
            print(f"预测 / prediction: {digit} ({100 * self.probabilities[digit]:.1f}%)")
        if self.network is not None:
            self._status(saved)

    def close(self):
        """Close the window (Escape)."""
        self.root.destroy()


def _load_model(model):
    """``(network, None)``, or ``(None, message)`` saying why there is none and what to do."""
    from .network import Network
    from .saver import ModelFileError

    saver = ModelSaver(model)
    filename = saver.filename
    network = Network()
    try:
        if saver.load(network.conv, network.pool, network.softmax):
            return network, None
    except (ModelFileError, OSError) as exc:
        return None, (f"Cannot use the model {filename}: {exc}. Train a new one with "
                      f"`{_command('train', model)}`.")
    return None, (f"没有训练好的模型 / No trained model: {filename} not found. Train one "
                  f"with `{_command('train', model)}`, then start `{_command('draw', model)}` "
                  "again. You can draw meanwhile.")


def _command(name, model):
    return f"cnn-ext {name}" if model == DEFAULT_MODEL else f"cnn-ext {name} --model {model}"


def run(model=DEFAULT_MODEL, *, ready=None):
    """``cnn-ext draw``: open the board with live predictions from the model ``model``
    (``MNIST_CNN`` -> ``MNIST_CNN.pkl`` in the current directory) and wait until the window
    is closed. Returns 0 (130 after Ctrl-C in the terminal).

    Without Tk or a display, prints a one-line reason to stderr and exits with status 2
    (``SystemExit(2)``). ``ready``, if given, is called with the :class:`PredictionBoard`
    once the event loop runs (for scripts and tests that drive the window).
    """
    try:
        root = open_window()
    except DisplayError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None
    board = PredictionBoard(root, model)
    if ready is not None:
        root.after_idle(ready, board)
    try:
        root.mainloop()
    except KeyboardInterrupt:
        try:
            root.destroy()
        except tk.TclError:  # already gone
            pass
        return 130
    return 0


def main(argv=None):
    """``cnn-ext draw [--model NAME]``."""
    parser = argparse.ArgumentParser(
        prog="cnn-ext draw",
        description="Draw a digit with the mouse and see the network's prediction.")
    parser.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME",
                        help="model to load: NAME.pkl, or NAME if it ends in .npz (default MNIST_CNN)")
    args = parser.parse_args(argv)
    return run(args.model)


if __name__ == "__main__":
    sys.exit(main())
