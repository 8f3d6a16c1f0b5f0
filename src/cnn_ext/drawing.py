"""The tutorial's drawing board (``DrawingBoard``), and ``cnn-ext draw``: draw a digit, see
what the network makes of it.

``DrawingBoard(root)`` keeps the tutorial's class, so its script runs unchanged: a window
titled ``画板`` with a 280x280 white canvas, a black brush and a button ``输出`` (labelled
``输出 / Save``, so that machines without CJK fonts still show what it does) that saves
the drawing as ``temp.png`` (28x28) and closes the window. Three things differ, on purpose:

* :meth:`DrawingBoard.process_image` returns what MNIST looks like -- a white digit on
  black, scaled to fit 20x20 and centred by its mass -- through
  :func:`cnn_ext.imaging.to_mnist`, the conversion ``cnn-ext predict`` uses. The
  tutorial's plain resize gave a black digit on white, which a network trained on MNIST
  has never seen. Code written for the tutorial's board that inverts the array itself
  (``255 - board.image_array``) would now invert a correct digit: for such code,
  ``DrawingBoard(root, raw=True)`` (or ``process_image(raw=True)``) gives the tutorial's
  plain black-on-white resize.
* The brush is as wide as MNIST's strokes: a digit drawn at the board's natural size
  (its longer side about 70% of the canvas, as MNIST's 20 pixels are of 28) comes out
  with MNIST's stroke width after the conversion. The tutorial's radius of 5 gives strokes
  half as wide.
* Strokes are connected: each mouse event draws a round-capped line from the previous
  position, so moving the mouse fast leaves no gaps between dots.

:func:`run` (``cnn-ext draw``) is the board plus a live prediction: after every stroke
the predicted digit and the ten probabilities are shown beside the canvas, with what the
network sees: the 28x28 input, and the conv and pooled maps of :meth:`Network.trace`. A
drawing without a digit (an empty canvas, a speck) says "no digit found" instead. Tk is optional
for the package: ``import cnn_ext`` never imports tkinter, and importing this module
without Tk works; creating a board is what fails, with :class:`DisplayError`.
"""
import argparse
import os
import sys
import time

import numpy as np
from PIL import Image, ImageDraw

from . import imaging
from .imaging import to_mnist
from .saver import ModelSaver

# Pillow 9.1 moved the filters into Image.Resampling; older releases have them on Image.
_LANCZOS = getattr(Image, "Resampling", Image).LANCZOS

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
OUTPUT_LABEL = "输出 / Save"
CLEAR_LABEL = "清除 / Clear"
# The network's view beside the prediction: the input at 4x, the maps in 2 rows of 4.
INPUT_ZOOM = 4
CONV_ZOOM = 3
POOL_ZOOM = 6
_GAP = 4
# Diverging colours (negative, 0, positive), as cnn_ext.viz's maps.
_DIVERGING = np.array([[33, 102, 172], [247, 247, 247], [178, 24, 43]], dtype=np.float64)


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
    black on white), the same picture as on the canvas. ``raw=True`` makes ``输出`` store
    the tutorial's plain resize instead (black on white, not centred): for code that
    inverts the array itself.
    """

    #: Whether process_image() gives the tutorial's plain resize rather than MNIST's form.
    raw = False

    def __init__(self, root, raw=False):
        _require_tk()
        self.raw = bool(raw)
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
        self.output_button = tk.Button(root, text=OUTPUT_LABEL, command=self.output_and_exit)
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
            # "round" is tk.ROUND; the string works where tkinter is missing (headless tests).
            self.canvas.create_line(x0, y0, x, y, width=2 * r, fill=color, capstyle="round",
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

    def process_image(self, raw=None):
        """The drawing as an MNIST digit: a (28, 28) uint8 array, white (255) on black (0),
        scaled to fit 20x20 and centred by mass (:func:`cnn_ext.imaging.to_mnist`). An empty
        board gives all zeros.

        ``raw=True`` (default: the board's ``raw``) gives the tutorial's plain resize
        instead: the whole canvas shrunk to 28x28 with Lanczos filtering, greyscale, black
        (0) on white (255), as code that inverts the array itself expects.
        """
        if getattr(self, "raw", False) if raw is None else raw:
            small = self.image.resize((28, 28), _LANCZOS).convert("L")
            return np.asarray(small, dtype=np.uint8).copy()
        return to_mnist(self.image)

    def output_and_exit(self):
        """Store the digit in ``image_array``, save it as ``temp.png``, close the window."""
        self.image_array = self.process_image()
        Image.fromarray(self.image_array).save(OUTPUT_FILE)
        print("图片已保存为 temp.png")
        self.root.destroy()


class PredictionBoard(DrawingBoard):
    """The board of ``cnn-ext draw``: the prediction is shown beside the canvas after every
    stroke and on ``输出 / Save``, which saves ``temp.png`` but keeps the window open.

    Beside the prediction, what the network sees: the 28x28 image it is given, and the
    conv and pooled maps of the drawing (:meth:`cnn_ext.Network.trace`), redrawn after each
    stroke. ``清除 / Clear`` or the key ``c`` erases the drawing, ``Escape`` closes the window.
    The network is loaded from ``model`` (a :class:`cnn_ext.ModelSaver` name: ``NAME.pkl``,
    or a file ending in ``.npz``); without it the board still works, and the window says
    how to train one. After a prediction ``probabilities`` holds the ten probabilities,
    ``prediction`` the digit and ``trace`` the :class:`cnn_ext.trace.Trace` (all ``None``
    while there is no digit on the board or no model); ``no_digit`` says why there is none.
    ``redraw_seconds`` lists, per stroke, the time from the end of the stroke until the
    prediction and the maps are drawn.
    """

    def __init__(self, root, model=DEFAULT_MODEL):
        super().__init__(root)
        self.model = model
        self.probabilities = None
        self.prediction = None
        self.trace = None
        self.no_digit = None
        self.redraw_seconds = []
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
        self.show_view(np.zeros((28, 28), np.uint8), None)

    def _build_layout(self):
        root = self.root
        root.resizable(False, False)
        root.rowconfigure(1, weight=1)  # the taller right-hand columns stretch row 1, not the canvas row
        # Put the tutorial's widgets into a grid: canvas and buttons left, prediction right.
        self.canvas.pack_forget()
        self.output_button.destroy()
        self.canvas.grid(row=0, column=0, sticky="n", padx=(8, 4), pady=(8, 4))
        buttons = tk.Frame(root)
        buttons.grid(row=1, column=0, sticky="n", pady=(0, 8))
        self.output_button = tk.Button(buttons, text=OUTPUT_LABEL, width=10, command=self.output)
        self.output_button.pack(side="left", padx=4)
        self.clear_button = tk.Button(buttons, text=CLEAR_LABEL, width=10, command=self.clear)
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

        # What the network sees: its 28x28 input, the conv maps and the pooled maps, each
        # group one PhotoImage (one Tk image update per group and stroke).
        view = tk.Frame(root)
        view.grid(row=0, column=2, rowspan=2, sticky="n", padx=(4, 8), pady=(8, 8))
        self.view_images = {}
        self.view_labels = {}
        for key, text in (("input", "网络输入 / network input 28x28"),
                          ("conv", "卷积 / conv maps"),
                          ("pool", "池化 / pooled maps")):
            tk.Label(view, text=text, fg=_TEXT).pack(anchor="w")
            self.view_images[key] = tk.PhotoImage(master=root)
            self.view_labels[key] = tk.Label(view, image=self.view_images[key], bd=0)
            self.view_labels[key].pack(anchor="w", pady=(0, 6))
        # Fixed size, so that the window does not change size with the text.
        self.view_scale_label = tk.Label(view, text="", fg="#777777", justify="left", anchor="nw",
                                         width=40, height=3)
        self.view_scale_label.pack(anchor="w")

    def _status(self, text, error=False):
        self.status_label.configure(text=text, fg=_ERROR if error else _TEXT)

    def _end_stroke_and_predict(self, event):
        DrawingBoard.end_stroke(self, event)
        self.predict()

    def clear(self):
        super().clear()
        self.image_array = None
        self.trace = None
        self.no_digit = None
        self.show_prediction(None)
        self.show_view(np.zeros((28, 28), np.uint8), None)

    def end_stroke(self, event):
        start = time.perf_counter()
        self._end_stroke_and_predict(event)
        self.root.update_idletasks()  # Tk draws the new images and labels now
        self.redraw_seconds.append(time.perf_counter() - start)

    def predict(self):
        """Classify the drawing and show the result and the network's view; returns the
        digit, or ``None`` if there is no digit on the board or no model is loaded."""
        digit = self.process_image()
        self.no_digit = _digit_problem(digit)
        if self.network is None or self.no_digit is not None:
            self.trace = None
            self.show_prediction(None)
            self.show_view(digit, None)
            if self.network is not None:
                self._status(f"没有数字 / no digit found ({self.no_digit})", error=True)
            return None
        self.trace = self.network.trace(digit)
        self.show_prediction(self.trace.probs)
        self.show_view(digit, self.trace)
        return self.prediction

    def show_view(self, digit, trace):
        """Draw the 28x28 input and, from ``trace`` (or blank without one), the conv and
        pooled maps, on one symmetric colour scale per group (red positive, blue negative)."""
        nf = self.network.conv.num_filters if self.network is not None else 8
        self._put("input", _grey(digit, INPUT_ZOOM))
        if trace is None:
            h, w = digit.shape
            conv = np.zeros((h - 2, w - 2, nf))
            pool = np.zeros(((h - 2) // 2, (w - 2) // 2, nf))
            self.view_scale_label.configure(text="")
        else:
            conv, pool = trace.conv, trace.pool
            counts = trace.tie_counts().sum(axis=0)
            self.view_scale_label.configure(
                text=f"conv |max| {np.abs(conv).max():.2f}, pooled |max| {np.abs(pool).max():.2f}\n"
                     f"max-pool ties of {counts.sum()} windows:\n"
                     f"{counts[3]} 4-way, {counts[2]} 3-way, {counts[1]} 2-way")
        self._put("conv", _map_grid(conv, CONV_ZOOM))
        self._put("pool", _map_grid(pool, POOL_ZOOM))

    def _put(self, key, rgb):
        # PPM data is read by Tk itself: no PIL.ImageTk needed.
        h, w, _ = rgb.shape
        ppm = b"P6 %d %d 255\n" % (w, h) + rgb.tobytes()
        self.view_images[key].configure(data=ppm, format="PPM", width=w, height=h)

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
        """``输出 / Save``: store the digit in ``image_array``, save ``temp.png``, show and print the
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
        elif self.network is not None:
            print(f"no digit found ({self.no_digit})")
            saved += f"; no digit found ({self.no_digit})"
        if self.network is not None:
            self._status(saved, error=digit is None)

    def close(self):
        """Close the window (Escape)."""
        self.root.destroy()


def _digit_problem(image):
    """Why the 28x28 image holds no digit (a short reason), or None if it holds one: the
    criterion ``cnn-ext predict`` uses (:func:`cnn_ext.imaging.digit_problem`)."""
    return imaging.digit_problem(image)


def _grey(image, zoom):
    """uint8 (h, w) -> RGB uint8 (h*zoom, w*zoom, 3), nearest-neighbour."""
    big = np.repeat(np.repeat(np.asarray(image, np.uint8), zoom, axis=0), zoom, axis=1)
    return np.ascontiguousarray(np.repeat(big[:, :, None], 3, axis=2))


def _diverging(values, vmax):
    """float array -> RGB uint8 on blue-white-red, 0 white, +-vmax saturated."""
    t = np.clip(np.nan_to_num(values / vmax), -1.0, 1.0)[..., None]
    low, mid, high = _DIVERGING
    rgb = np.where(t < 0, mid + (mid - low) * t, mid + (high - mid) * t)
    return np.rint(rgb).astype(np.uint8)


def _map_grid(maps, zoom, columns=4):
    """(h, w, nf) maps -> one RGB image: nf tiles of (h*zoom, w*zoom) in rows of
    ``columns``, on one symmetric scale, with gaps of the window's grey."""
    h, w, nf = maps.shape
    vmax = float(np.abs(maps[np.isfinite(maps)]).max()) if np.isfinite(maps).any() else 0.0
    tiles = _diverging(np.moveaxis(maps, 2, 0), vmax if vmax > 0 else 1.0)  # (nf, h, w, 3)
    tiles = np.repeat(np.repeat(tiles, zoom, axis=1), zoom, axis=2)
    rows = -(-nf // columns)
    th, tw = h * zoom, w * zoom
    out = np.full((rows * th + (rows - 1) * _GAP, columns * tw + (columns - 1) * _GAP, 3), 217, np.uint8)
    for f in range(nf):
        r, c = divmod(f, columns)
        out[r * (th + _GAP):r * (th + _GAP) + th, c * (tw + _GAP):c * (tw + _GAP) + tw] = tiles[f]
    return out


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


HEARTBEAT_MS = 100


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

    def heartbeat():
        # Python runs its SIGINT handler only when Tk's loop hands it control, i.e. on an
        # event: an idle window saw Ctrl-C only at the next mouse move. A timer every
        # 100 ms is such an event, so Ctrl-C ends the board within a fraction of a second.
        root.after(HEARTBEAT_MS, heartbeat)

    root.after(HEARTBEAT_MS, heartbeat)
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
