"""``cnn-ext``: train, evaluate and use the tutorial's network from the command line."""
from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from . import __version__

if TYPE_CHECKING:
    from types import ModuleType

    import numpy.typing as npt
    from matplotlib.figure import Figure

    from .history import History
    from .network import Evaluation, Network
    from .viz import LiveTraining

    _Split = tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]

from ._models import (DEFAULT_MODEL, SEED_MAX, _load_network, _model_file, _network_from_file,  # noqa: F401
                      _positive_float, _seed, int_in)

MNIST_SIZES = {"train": 60000, "test": 10000}  # the built-in copy's


DEFAULT_EPOCHS = 3
DEFAULT_LR = 0.005


class UsageError(Exception):
    """A command-line argument that cannot work, found before any work: exit status 2."""


def _load_mnist(path: str | None) -> tuple[_Split, _Split]:
    from .datasets import mnist

    try:
        return mnist.load_data(path)
    except (OSError, ValueError) as exc:  # missing or malformed data files
        raise SystemExit(f"cnn-ext: cannot load MNIST: {exc}") from None


def _subset(images: npt.NDArray[np.uint8], labels: npt.NDArray[np.uint8], size: int | None, name: str) -> _Split:
    if size is None:
        return images, labels
    if size > len(images):
        raise UsageError(f"--{name}-size must be at most {len(images)}, got {size}")
    return images[:size], labels[:size]


def _check_plotting(option: str = "--plot", path: str | None = None) -> None:
    """matplotlib, or a UsageError telling how to get it, and a ``path`` the figure can be
    written to (asked before any work)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(f"{option} needs matplotlib: pip install 'cnn_ext[plot]'") from None
    if path is not None:
        from ._files import figure_formats, output_problem

        problem = output_problem(path, figure_formats())
        if problem:
            raise UsageError(f"{option}: {problem}")


def _save_figure(save: Any, filename: str, what: str, out: IO[str]) -> int:
    """``save(filename)``, or one line saying why it failed after all (the results are
    printed above or saved): 0 or 1."""
    try:
        save(filename)
    except (OSError, ValueError) as exc:
        print(f"cnn-ext: cannot write the {what} to {filename} ({exc}); the results above are kept",
              file=sys.stderr)
        return 1
    print(f"{what} saved to {filename}", file=out)
    return 0


def _pyplot() -> ModuleType:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_history(history: History, filename: str) -> None:
    """The tutorial's step log as two curves, average loss and accuracy against the step,
    with the test set's loss and accuracy at the end of each epoch (fit's validation data)."""
    plt = _pyplot()
    steps = [record.step for record in history.steps]
    per_epoch = int(history.params.get("steps", 0) or 0)  # type: ignore[call-overload]
    ends = [epoch * per_epoch for epoch in history.epoch]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(steps, [record.loss for record in history.steps], marker=".", label="training (step log)")
    ax_acc.plot(steps, [100 * record.accuracy for record in history.steps], marker=".",
                label="training (step log)")
    test_loss, test_acc = history.history.get("val_loss"), history.history.get("val_accuracy")
    if test_loss and test_acc:
        ax_loss.plot(ends[:len(test_loss)], test_loss, marker="s", color="#d62728", label="test (end of epoch)")
        ax_acc.plot(ends[:len(test_acc)], [100 * a for a in test_acc], marker="s", color="#d62728",
                    label="test (end of epoch)")
    ax_loss.set(xlabel="step", ylabel="average loss", title="loss")
    ax_acc.set(xlabel="step", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(filename, dpi=100)
    plt.close(fig)


def _describe_model(filename: str, x_test: npt.NDArray[np.uint8], y_test: npt.NDArray[np.uint8]) -> str:
    """What the model file holds, in a few words: its test accuracy when it can be read."""
    from .saver import ModelFileError

    try:
        network = _network_from_file(filename)
    except (ModelFileError, OSError, ValueError) as exc:
        return f"not a model cnn-ext can read: {exc}"
    return _describe_network(network, x_test, y_test)


def _describe_network(network: Network, x_test: npt.NDArray[np.uint8], y_test: npt.NDArray[np.uint8]) -> str:
    if not network._fits(x_test.shape[1:]):
        return "a model for other images"
    if _class_problem(network, y_test) is not None:
        return f"a {network.nodes}-class model, not comparable on MNIST's {int(y_test.max()) + 1} classes"
    try:
        result = network.evaluate(x_test, y_test)
    except (ValueError, TypeError) as exc:  # describing a model never stops the job
        return f"a model that cannot be tested on these images: {exc}"
    return f"test accuracy {100 * result.accuracy:.2f}% on {len(x_test)} images"


def _choose_log_every(args: argparse.Namespace, steps: int | None) -> None:
    """--log-every when not given: the tutorial's 10000, or for a --plot of a short run
    (under 10 points) one log every twentieth of the run, said in a line."""
    if args.log_every is not None or steps is None:
        return
    args.log_every = 10000
    if args.plot and steps // 10000 < 10:
        args.log_every = max(1, steps // 20)
        if not args.quiet:
            print(f"--plot: logging every {args.log_every} steps ({steps // args.log_every} points; "
                  "--log-every N to choose)")


def _class_problem(network: Network, labels: npt.NDArray[np.uint8]) -> str | None:
    """Why ``network`` cannot be tested or trained on ``labels``, or None."""
    if labels.size and int(labels.max()) >= network.nodes:
        return (f"it is a {network.nodes}-class model (labels 0..{network.nodes - 1}), but MNIST has "
                f"labels 0..{int(labels.max())}")
    return None


def _too_few_logs(log_every: int, steps: int | None = None) -> str | None:
    """Why --plot cannot draw curves from ``steps`` steps (None: not known yet) logged every
    ``log_every``, or None."""
    if log_every == 0:
        return "--plot draws the step log: it needs --log-every N with N > 0"
    if steps is not None and log_every > steps // 2:
        return (f"--plot needs at least two step logs, but --log-every {log_every} gives "
                f"{steps // log_every} in {steps} steps: use a smaller --log-every")
    return None


def _diverged(network: Network, history: History, rate: float, filename: str) -> bool:
    """Say so, in one line, when the weights are no longer finite (the rate was too high):
    there is nothing worth saving, and the old model file stays as it was."""
    import os

    params = (network.conv.filters, network.softmax.weights, network.softmax.biases)
    if all(np.isfinite(p).all() for p in params):
        return False
    when = f"at step {history.nan_step:,}" if history.nan_step else "during training"
    print(f"cnn-ext: training diverged {when}: the loss became NaN and the weights with it, so "
          f"the learning rate {rate:g} is too high (the tutorial's is 0.005); nothing was saved"
          + (f", {filename} is unchanged" if os.path.exists(filename) else ""), file=sys.stderr)
    return True


def _save_model(network: Network, filename: str, out: IO[str]) -> int:
    """Save, or, if that fails now (the disk filled, the folder went away), save to a
    fallback file in the temporary folder so the training is not lost. Returns 0 or 1."""
    import os
    import tempfile

    from .saver import ModelFileError, ModelSaver

    try:
        ModelSaver(filename).save(network.conv, network.pool, network.softmax)
        return 0
    except (OSError, ModelFileError) as exc:
        reason = exc
    base = os.path.basename(filename)
    stem, ext = os.path.splitext(base)
    fallback = os.path.join(tempfile.gettempdir(), f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}{ext}")
    try:
        ModelSaver(fallback).save(network.conv, network.pool, network.softmax)
    except (OSError, ModelFileError) as exc:
        print(f"cnn-ext: cannot save the model to {filename} ({reason}), nor to {fallback} ({exc})",
              file=sys.stderr)
        return 1
    print(f"cnn-ext: cannot save the model to {filename} ({reason}); saved it to {fallback} instead",
          file=sys.stderr)
    print(f"model saved to {fallback}", file=out)
    return 1


def _progress_bar(args: argparse.Namespace, total: int) -> Any:  # a tqdm bar (tqdm has no type stubs)
    """A tqdm bar on a terminal (or in Jupyter); none when stderr is a file or a pipe,
    where its carriage-return updates would fill the log."""
    from tqdm.auto import tqdm

    interactive = sys.stderr is not None and sys.stderr.isatty()
    return tqdm(total=total, unit="img", disable=args.quiet or not interactive, file=sys.stderr,
                mininterval=0.25, dynamic_ncols=True)


def _check_train_args(args: argparse.Namespace) -> str:
    """Everything about the arguments that can be known before loading or training."""
    from .saver import ModelFileError, check_writable

    if args.data is None:
        for name in ("train", "test"):
            size = getattr(args, f"{name}_size")
            if size is not None and size > MNIST_SIZES[name]:
                raise UsageError(f"--{name}-size must be at most {MNIST_SIZES[name]}, got {size}")
    if args.plot:
        _check_plotting(path=args.plot)
        # With --data the training-set size is known only once it is loaded (cmd_train), and
        # with --resume the epochs to train once the saved run's record is read.
        steps = (args.epochs or DEFAULT_EPOCHS) * (args.train_size or MNIST_SIZES["train"]) \
            if args.data is None and not args.resume else None
        _choose_log_every(args, steps)
        problem = _too_few_logs(args.log_every if args.log_every is not None else 10000, steps)
        if problem:
            raise UsageError(problem)
    if args.live:
        _check_plotting("--live")
    filename = _model_file(args.model)
    if args.resume and args.filters is not None:
        raise UsageError("--filters sizes a new model; --resume continues one whose filters are set")
    if args.resume:
        import os

        if not os.path.exists(filename):
            raise UsageError(f"--resume: there is no model {filename} to continue from")
    try:
        check_writable(filename)
    except (ModelFileError, OSError) as exc:
        raise UsageError(str(exc)) from None
    return filename


def _resume_plan(args: argparse.Namespace, filename: str, train_images: int) -> tuple[int, int, int, int, float, str]:
    """Where ``--resume`` continues: (seed, epochs done, steps done of the next epoch, the
    last epoch, learn rate, a note on the run). From the saved run's record when there is
    one for these training images (the same orders follow); else a new shuffle from
    --seed, as a model from elsewhere (the tutorial's, say) has no record."""
    from ._run_state import load_run

    record, why = load_run(filename)
    if record is not None and record["train_images"] != train_images:
        record, why = None, (f"it was trained on {record['train_images']} images, not {train_images}")
    if record is not None and args.seed is not None and args.seed != record["seed"]:
        record, why = None, f"--seed {args.seed} differs from its run's seed {record['seed']}"
    if record is None:
        seed = 0 if args.seed is None else args.seed
        rate = DEFAULT_LR if args.lr is None else args.lr
        return (seed, 0, 0, args.epochs or DEFAULT_EPOCHS, rate,
                f"{why}: a new shuffle from seed {seed}")
    done, step = record["epoch"], record["step"]
    if args.epochs is not None:
        last = done + args.epochs  # an epoch in progress is the first of them
    elif step or done < record["epochs"]:
        last = record["epochs"]  # the rest of the interrupted run
    else:
        last = done + DEFAULT_EPOCHS
    rate = record["learn_rate"] if args.lr is None else args.lr
    where = f"epoch {done + 1}, step {step}" if step else f"epoch {done + 1}"
    return record["seed"], done, step, last, rate, f"continuing its run (seed {record['seed']}) at {where}"


def cmd_train(args: argparse.Namespace) -> int:
    """``cnn-ext train``: check, load, fit with the tutorial's log, test, save; exit status."""
    import os

    from ._interrupt import TrainingInterrupted
    from .network import Network

    import warnings

    # fit's NaN warning would print a source line; _diverged says it in one line instead
    warnings.filterwarnings("ignore", "Network.fit: the loss became NaN", RuntimeWarning)
    out = sys.stdout
    filename = _check_train_args(args)
    (x_train, y_train), (x_test, y_test) = _load_mnist(args.data)
    x_train, y_train = _subset(x_train, y_train, args.train_size, "train")
    x_test, y_test = _subset(x_test, y_test, args.test_size, "test")
    if args.resume:
        network = _load_network(args.model)
        if not network._fits(x_train.shape[1:]):
            raise SystemExit(f"cnn-ext: {filename} does not fit images of shape {x_train.shape[1:]}")
        problem = _class_problem(network, y_train)
        if problem:
            raise UsageError(f"--resume: cannot train {filename} on MNIST: {problem}")
        seed, done, step, last, rate, note = _resume_plan(args, filename, len(x_train))
        network.learn_rate = rate
        replaced = None
    else:
        seed = 0 if args.seed is None else args.seed
        done, step, last = 0, 0, args.epochs or DEFAULT_EPOCHS
        rate = DEFAULT_LR if args.lr is None else args.lr
        network = Network(seed=seed, learn_rate=rate, num_filters=args.filters or 8)
        replaced = _describe_model(filename, x_test, y_test) if os.path.exists(filename) else None
    total = (last - done) * len(x_train) - step  # the steps this run trains
    _choose_log_every(args, total)
    problem = _too_few_logs(args.log_every, total) if args.plot else None
    if problem:
        raise UsageError(problem)
    if not args.quiet:
        start_from = f"{filename} ({_describe_network(network, x_test, y_test)}), {note}" if args.resume else \
            f"seed {seed}"
        print(f"cnn-ext {__version__}: training {_architecture(network)} on {len(x_train)} images, "
              f"{last - done} epoch(s), learning rate {rate}, from {start_from}", file=out)
    if replaced is not None:
        print(f"{filename} exists ({replaced}): it will be replaced when training ends "
              f"(--resume continues from it, --model NAME saves elsewhere)", file=out)
    bar = _progress_bar(args, total)
    live = _live_view(args, network, total)
    first_step = done * len(x_train) + step  # fit counts steps across the whole run

    def callback(kind: str, record: Any) -> None:  # a StepRecord, or an EpochRecord for "epoch"
        if kind == "progress":
            bar.update(record.step - first_step - bar.n)
            bar.set_postfix(loss=f"{record.loss:.3f}", acc=f"{100 * record.accuracy:.1f}%", refresh=False)
        elif kind == "log" and not args.quiet:
            bar.write(record.line(), file=out)
        elif kind == "epoch" and not args.quiet:
            bar.write(f"epoch {record.epoch}/{last} done: loss {record.loss:.4f}, "
                      f"accuracy {100 * record.accuracy:.2f}%", file=out)
        if live is not None:
            live(kind, record)

    def save_run(target: str, epoch: int, at: int) -> None:
        from ._run_state import save_run as save

        try:
            save(target, seed=seed, epoch=epoch, step=at, epochs=last, train_images=len(x_train),
                 learn_rate=rate)
        except (OSError, ValueError) as exc:
            print(f"cnn-ext: cannot record where training stood beside {target} ({exc}): "
                  f"--resume will start a new shuffle", file=sys.stderr)

    start = time.perf_counter()
    try:
        history = network.fit(x_train, y_train, last, seed=seed, log_every=args.log_every,
                              callback=callback, initial_epoch=done, initial_step=step,
                              validation_data=(x_test, y_test) if args.plot else None)
    except TrainingInterrupted as stop:
        bar.close()
        # Saved where the user finds it: the model name, unless that would replace a model
        # this run did not start from (a finished model is worth more than a part-trained
        # one): then beside it, NAME-interrupted.pkl.
        target = filename
        if replaced is not None:
            stem, ext = os.path.splitext(filename)
            target = f"{stem}-interrupted{ext}"
        trained = (stop.epoch - 1 - done) * len(x_train) + stop.step - step
        print(f"cnn-ext: interrupted at epoch {stop.epoch}/{last}, step {stop.step} of {len(x_train)}: "
              f"saving the {trained} steps trained so far", file=sys.stderr)
        if _save_model(network, target, out) == 0:
            save_run(target, stop.epoch - 1, stop.step)
            print(f"model saved to {target}; `cnn-ext train --resume --model {target}` continues the run",
                  file=out)
        return 130
    finally:
        bar.close()
        if live is not None:
            live.finish()  # the final state stays on screen; the window closes when the user says
    train_time = time.perf_counter() - start
    interrupted = False
    try:
        result = network.evaluate(x_test, y_test)
        wall = time.perf_counter() - start
        print(f"test loss {result.loss:.4f} | test accuracy {100 * result.accuracy:.2f}% "
              f"on {len(x_test)} images", file=out)
        print(f"wall time {wall:.1f} s (training {train_time:.1f} s, "
              f"{total / max(train_time, 1e-9):,.0f} images/s)", file=out)
    except KeyboardInterrupt:  # the training is done: keep it
        print("\ncnn-ext: interrupted while testing: saving the trained model", file=sys.stderr)
        interrupted = True
    if _diverged(network, history, rate, filename):
        return 1
    status = _save_model(network, filename, out)
    if status == 0:
        save_run(filename, last, 0)
        print(f"model saved to {filename}" + (f" (replacing the previous one: {replaced})" if replaced else ""),
              file=out)
    if interrupted:
        return 130
    if args.plot:
        status = max(status, _save_figure(lambda name: _plot_history(history, name), args.plot, "curves", out))
    if live is not None:
        print("the live window stays open: close it to finish", file=out, flush=True)
        live.wait()
    return status


def _live_view(args: argparse.Namespace, network: Network, total: int) -> LiveTraining | None:
    if not getattr(args, "live", False):
        return None
    from . import viz

    try:
        return viz.LiveTraining(network, total)
    except RuntimeError as exc:  # no display
        raise UsageError(f"--live: {exc}") from None  # exc says what display is missing


def _architecture(network: Network) -> str:
    weights = network.softmax.weights
    return f"Conv3x3({network.conv.num_filters}) -> MaxPool2 -> Softmax({weights.shape[0]}, {weights.shape[1]})"


def _format_confusion(confusion: npt.NDArray[np.int64]) -> str:
    classes = range(len(confusion))
    header = "true\\pred " + " ".join(f"{d:>5d}" for d in classes)
    rows = [f"{t:>9d} " + " ".join(f"{n:>5d}" for n in confusion[t]) for t in classes]
    return "\n".join([header] + rows)


def _plot_evaluation(result: Evaluation, images: npt.NDArray[np.uint8], labels: npt.NDArray[np.uint8],
                     predicted: npt.NDArray[np.int64], filename: str) -> None:
    """Save the figure of :func:`_evaluation_figure` as ``filename``."""
    plt = _pyplot()
    fig = _evaluation_figure(plt, result, images, labels, predicted)
    fig.savefig(filename, dpi=100)
    plt.close(fig)


def _evaluation_figure(plt: ModuleType, result: Evaluation, images: npt.NDArray[np.uint8],
                       labels: npt.NDArray[np.uint8], predicted: npt.NDArray[np.int64]) -> Figure:
    """The confusion matrix beside a grid of up to 36 misclassified digits."""
    wrong = np.flatnonzero(predicted != labels)[:36]
    classes = len(result.confusion)
    fig = plt.figure(figsize=(13, 6.5))
    outer = fig.add_gridspec(1, 2, width_ratios=[1, 1], wspace=0.15, left=0.05, right=0.98, top=0.9, bottom=0.08)
    ax = fig.add_subplot(outer[0])
    # Two scales: the diagonal (right answers, ~1000 a class) in blue, the errors (a few to a
    # few dozen) in red on their own scale, so that they do not fade to white beside it.
    confusion = result.confusion
    diagonal = np.eye(classes, dtype=bool)
    errors_max = max(int(confusion[~diagonal].max()) if classes > 1 else 0, 1)
    ax.imshow(np.ma.masked_array(confusion, ~diagonal), cmap="Blues", vmin=0, vmax=max(int(confusion.max()), 1))
    ax.imshow(np.ma.masked_array(confusion, diagonal | (confusion == 0)), cmap="Reds", vmin=0, vmax=errors_max)
    for t in range(classes):
        for p in range(classes):
            top = confusion.max() if t == p else errors_max
            ax.text(p, t, str(confusion[t, p]), ha="center", va="center", fontsize=7,
                    color="white" if confusion[t, p] > top / 2 else "black")
    ax.set(xticks=range(classes), yticks=range(classes), xlabel="predicted", ylabel="true",
           title=f"confusion matrix (accuracy {100 * result.accuracy:.2f}%)\n"
                 f"blue: right; red: errors, on their own scale (0..{errors_max})")
    # Room between the rows for each digit's "true -> predicted" title.
    grid = outer[1].subgridspec(6, 6, hspace=0.55, wspace=0.15)
    for k, index in enumerate(wrong):
        sub = fig.add_subplot(grid[k // 6, k % 6])
        sub.imshow(images[index], cmap="gray")
        sub.set_title(f"{labels[index]} \u2192 {predicted[index]}", fontsize=8, pad=2)
        sub.axis("off")
    fig.text(0.76, 0.95, f"misclassified test digits (true \u2192 predicted): first {len(wrong)} "
             f"of {int(np.sum(predicted != labels))}", ha="center", fontsize=11)
    return fig


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``cnn-ext evaluate``: loss, accuracy, per class and confusion matrix of a saved model."""
    if args.plot:
        _check_plotting(path=args.plot)
    if args.data is None and args.test_size is not None and args.test_size > MNIST_SIZES["test"]:
        raise UsageError(f"--test-size must be at most {MNIST_SIZES['test']}, got {args.test_size}")
    network = _load_network(args.model)
    _, (x_test, y_test) = _load_mnist(args.data)
    x_test, y_test = _subset(x_test, y_test, args.test_size, "test")
    problem = _class_problem(network, y_test)
    if problem:
        raise UsageError(f"cannot test {_model_file(args.model)} on MNIST: {problem}")
    start = time.perf_counter()
    result = network.evaluate(x_test, y_test)
    elapsed = time.perf_counter() - start
    print(f"test loss {result.loss:.4f} | test accuracy {100 * result.accuracy:.2f}% "
          f"on {len(x_test)} images ({elapsed:.2f} s)")
    print("per-class accuracy: " + "  ".join(
        f"{d}: {100 * a:.1f}%" for d, a in enumerate(result.per_class_accuracy)))
    print("confusion matrix (rows: true digit, columns: predicted):")
    print(_format_confusion(result.confusion))
    if args.plot:
        predicted = network.predict(x_test)
        return _save_figure(lambda name: _plot_evaluation(result, x_test, y_test, predicted, name),
                            args.plot, "plot", sys.stdout)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Prints ``FILE: DIGIT (P%)  0:p0 ... 9:p9`` per image, or ``FILE: no digit found (why)``.
    Exit status 1 if a file could not be read, or if no file held a digit."""
    from .imaging import digit_problem, load_image, to_mnist

    network = _load_network(args.model)
    status, found = 0, 0
    for name in args.images:
        try:
            image = to_mnist(load_image(name))
        except (OSError, ValueError, MemoryError) as exc:
            print(f"{name}: error: {exc}", file=sys.stderr)
            status = 1
            continue
        problem = digit_problem(image)
        if problem is not None:
            print(f"{name}: no digit found ({problem})")
            continue
        found += 1
        probs = network.predict_proba(image)[0]
        digit = int(np.argmax(probs))
        print(f"{name}: {digit} ({100 * probs[digit]:.1f}%)  "
              + " ".join(f"{d}:{p:.3f}" for d, p in enumerate(probs)))
    return 1 if status or not found else 0


def cmd_draw(args: argparse.Namespace) -> int:
    """The drawing board (``cnn_ext.drawing``)."""
    from .drawing import main as draw_main

    return draw_main(["--model", args.model])


def cmd_bench(args: argparse.Namespace) -> int:
    """The benchmark (``cnn_ext.bench``), with its own options."""
    from .bench import main as bench_main

    return bench_main(args.bench_args)


MODEL_HELP = ("the model file: NAME.pkl, or NAME itself when it ends in .pkl or .npz "
              "(default MNIST_CNN, i.e. MNIST_CNN.pkl)")


def build_parser() -> argparse.ArgumentParser:
    """The ``cnn-ext`` argument parser: train, evaluate, predict, draw, explain, bench."""
    parser = argparse.ArgumentParser(
        prog="cnn-ext",
        description="The tutorial's from-scratch MNIST CNN, compiled: train, evaluate, predict.")
    parser.add_argument("--version", action="version",
                        version=f"cnn-ext {__version__} (Python {platform.python_version()})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = sub.add_parser("train", help="train on MNIST with the tutorial's per-sample SGD, then test",
                           description="Per-sample SGD on the MNIST training set (the tutorial's "
                                       "recipe), then loss and accuracy on the test set. An existing "
                                       "model file of the same name is replaced at the end (its test "
                                       "accuracy is shown first); --resume continues from it instead.")
    train.add_argument("--epochs", type=int_in(1),
                       help="passes over the training set (default 3; with --resume: more epochs, the one "
                            "in progress counting, default the rest of an interrupted run, else 3)")
    train.add_argument("--lr", type=_positive_float,
                       help="learning rate (default 0.005; with --resume, the saved run's)")
    train.add_argument("--filters", type=int_in(1, 1024), metavar="N",
                       help="conv filters of a new model, 1..1024 (default 8, the tutorial's)")
    train.add_argument("--train-size", type=int_in(1), help="use the first N training images (default all 60000)")
    train.add_argument("--test-size", type=int_in(1), help="use the first N test images (default all 10000)")
    train.add_argument("--seed", type=_seed,
                       help="seeds the weights (np.random.seed) and the shuffling, 0..2**32-1 (default 0; "
                            "with --resume, the saved run's)")
    train.add_argument("--data", metavar="PATH",
                       help="folder of MNIST IDX files or a Keras mnist.npz (default: the built-in copy)")
    train.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME", help=MODEL_HELP)
    train.add_argument("--resume", action="store_true",
                       help="continue training the saved model --model instead of starting from new weights: "
                            "where its run stood (seed, epoch, step, recorded in NAME.pkl.run.json), so that "
                            "an interrupted run resumed ends as the run left alone")
    train.add_argument("--log-every", type=int_in(0), metavar="N",
                       help="print the tutorial's step log every N steps, 0 for never (default "
                            "10000; with --plot, fewer when that would give under 10 points)")
    train.add_argument("--plot", metavar="FILE.png",
                       help="draw the step log's loss and accuracy curves (needs matplotlib)")
    train.add_argument("--live", action="store_true",
                       help="show the filters and curves in a window while training (needs matplotlib and a display)")
    train.add_argument("--quiet", action="store_true", help="no progress bar and no step log")
    train.set_defaults(func=cmd_train, parser=train)

    evaluate = sub.add_parser("evaluate", help="test a saved model: accuracy, per class, confusion matrix",
                              description="Loss, accuracy, per-class accuracy and the confusion matrix "
                                          "of a saved model on the MNIST test set.")
    evaluate.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME", help=MODEL_HELP)
    evaluate.add_argument("--data", metavar="PATH",
                          help="folder of MNIST IDX files or a Keras mnist.npz (default: the built-in copy)")
    evaluate.add_argument("--test-size", type=int_in(1), metavar="N",
                          help="use the first N test images (default all 10000)")
    evaluate.add_argument("--plot", metavar="FILE.png",
                          help="draw the confusion matrix and misclassified digits (needs matplotlib)")
    evaluate.set_defaults(func=cmd_evaluate, parser=evaluate)

    predict = sub.add_parser("predict", help="recognise digits in PNG/JPEG images",
                             description="The digit in each image and the ten probabilities, after "
                                         "converting it as MNIST was made (cnn_ext.imaging.to_mnist). "
                                         "An image without a digit (blank, noise, a speck) says "
                                         "'no digit found'; the exit status is 1 if no image held one.")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="PNG/JPEG files (any Pillow-readable image)")
    predict.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME", help=MODEL_HELP)
    predict.set_defaults(func=cmd_predict, parser=predict)

    draw = sub.add_parser("draw", help="draw a digit with the mouse and see it recognised (needs Tk and a display)",
                          description="The tutorial's drawing board: write a digit with the mouse; the "
                                      "prediction appears after each stroke.")
    draw.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME", help=MODEL_HELP)
    draw.set_defaults(func=cmd_draw, parser=draw)

    from .explain import add_parser as add_explain
    add_explain(sub)
    from .check import add_parser as add_check
    add_check(sub)
    bench = sub.add_parser("bench", add_help=False,
                           help="time cnn_ext against the tutorial's NumPy loops, vectorised NumPy and "
                                "the frameworks (cnn-ext bench --help for options)")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(func=cmd_bench)
    return parser


def _robust_streams() -> None:
    """No encoding may crash the program: on a stream that cannot encode the tutorial's
    Chinese lines (a cp1252 or ASCII console, a redirected Windows stdout), unencodable
    characters are written as backslash escapes instead of raising UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure") and getattr(stream, "errors", None) == "strict":
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # a stream that cannot be reconfigured: leave it
                pass


def _interrupted() -> int:
    """Ctrl-C: one line, no traceback, the shell's status for SIGINT (128 + 2)."""
    print("\ncnn-ext: interrupted", file=sys.stderr)
    return 130


def main(argv: Sequence[object] | None = None) -> int:
    """Run ``cnn-ext ARGV``; returns the exit status."""
    _robust_streams()
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    if argv[:1] == ["bench"]:
        # bench has its own parser; argparse cannot hand a subcommand its leading options
        try:
            return cmd_bench(argparse.Namespace(bench_args=argv[1:]))
        except KeyboardInterrupt:
            return _interrupted()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:  # train saves its work itself (TrainingInterrupted) before this
        return _interrupted()
    except BrokenPipeError:
        # `cnn-ext evaluate | head`: the reader left; say nothing more (Python's own recipe:
        # stdout to devnull, so the flush at exit does not raise again).
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except UsageError as exc:
        # argparse's own words and exit status 2, without the long usage block: the
        # arguments parsed, one of them cannot work.
        args.parser.exit(2, f"{args.parser.prog}: error: {exc}\n")
