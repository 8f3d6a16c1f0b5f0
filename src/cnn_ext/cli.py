"""``cnn-ext``: train, evaluate and use the tutorial's network from the command line."""
import argparse
import platform
import sys
import time

import numpy as np

from . import __version__

DEFAULT_MODEL = "MNIST_CNN"


def _load_mnist(path):
    from .datasets import mnist

    try:
        return mnist.load_data(path)
    except (OSError, ValueError) as exc:  # missing or malformed data files
        raise SystemExit(f"cnn-ext: cannot load MNIST: {exc}") from None


def _subset(images, labels, size, name):
    if size is None:
        return images, labels
    if size > len(images):
        raise SystemExit(f"cnn-ext: --{name}-size must be at most {len(images)}, got {size}")
    return images[:size], labels[:size]


def _model_file(name):
    from .saver import ModelSaver

    return ModelSaver(name).filename


def _plot_history(history, filename):
    plt = _pyplot()
    steps = [h[0] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(steps, [h[1] for h in history])
    ax_loss.set(xlabel="step", ylabel="average loss", title="training loss")
    ax_acc.plot(steps, [h[2] for h in history])
    ax_acc.set(xlabel="step", ylabel="accuracy (%)", title="training accuracy")
    fig.tight_layout()
    fig.savefig(filename, dpi=100)
    plt.close(fig)


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("cnn-ext: --plot needs matplotlib: pip install 'cnn_ext[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def cmd_train(args):
    from tqdm import tqdm

    from .network import Network
    from .saver import ModelSaver

    out = sys.stdout
    (x_train, y_train), (x_test, y_test) = _load_mnist(args.data)
    x_train, y_train = _subset(x_train, y_train, args.train_size, "train")
    x_test, y_test = _subset(x_test, y_test, args.test_size, "test")
    network = Network(seed=args.seed, learn_rate=args.lr)
    if not args.quiet:
        print(f"cnn-ext {__version__}: training Conv3x3(8) -> MaxPool2 -> Softmax(1352, 10) on "
              f"{len(x_train)} images, {args.epochs} epoch(s), learning rate {args.lr}, seed {args.seed}",
              file=out)
    total = args.epochs * len(x_train)
    bar = tqdm(total=total, unit="img", disable=args.quiet, file=sys.stderr, mininterval=0.25,
               dynamic_ncols=True)
    history = []

    def callback(kind, value):
        if kind == "progress":
            bar.update(value.step - bar.n)
            if value.count:
                bar.set_postfix(loss=f"{value.loss / value.count:.3f}",
                                acc=f"{100 * value.correct / value.count:.1f}%", refresh=False)
        elif kind == "log":
            history.append((bar.n, float(value.split("Average Loss ")[1].split()[0]),
                            float(value.rsplit(" ", 1)[1].rstrip("%"))))
            if not args.quiet:
                bar.write(value, file=out)
        elif kind == "epoch" and not args.quiet:
            bar.write(f"epoch {value}/{args.epochs} done", file=out)

    start = time.perf_counter()
    network.fit(x_train, y_train, args.epochs, seed=args.seed, log_every=args.log_every,
                callback=callback)
    bar.close()
    train_time = time.perf_counter() - start
    result = network.evaluate(x_test, y_test)
    wall = time.perf_counter() - start
    print(f"test loss {result.loss:.4f} | test accuracy {100 * result.accuracy:.2f}% "
          f"on {len(x_test)} images", file=out)
    print(f"wall time {wall:.1f} s (training {train_time:.1f} s, "
          f"{total / max(train_time, 1e-9):,.0f} images/s)", file=out)
    ModelSaver(args.model).save(network.conv, network.pool, network.softmax)
    print(f"model saved to {_model_file(args.model)}", file=out)
    if args.plot:
        if not history:
            raise SystemExit("cnn-ext: --plot needs step logs: use --log-every N with N > 0")
        _plot_history(history, args.plot)
        print(f"curves saved to {args.plot}", file=out)
    return 0


def _load_network(model):
    from .network import Network
    from .saver import ModelFileError, ModelSaver, load_params

    filename = ModelSaver(model).filename
    try:
        params = load_params(filename)
    except FileNotFoundError:
        raise SystemExit(f"cnn-ext: no model {filename}: train one first with "
                         f"`cnn-ext train --model {model}`") from None
    except ModelFileError as exc:
        raise SystemExit(f"cnn-ext: {exc}") from None
    network = Network(num_filters=params["conv_filters"].shape[0])
    if params["softmax_weights"].shape != network.softmax.weights.shape:
        raise SystemExit(f"cnn-ext: {filename} does not fit 28x28 MNIST images: softmax weights "
                         f"{params['softmax_weights'].shape}, expected {network.softmax.weights.shape}")
    network.conv.filters = params["conv_filters"]
    network.softmax.weights = params["softmax_weights"]
    network.softmax.biases = params["softmax_biases"]
    return network


def _format_confusion(confusion):
    header = "true\\pred " + " ".join(f"{d:>5d}" for d in range(10))
    rows = [f"{t:>9d} " + " ".join(f"{n:>5d}" for n in confusion[t]) for t in range(10)]
    return "\n".join([header] + rows)


def _plot_evaluation(result, images, labels, predicted, filename):
    plt = _pyplot()
    wrong = np.flatnonzero(predicted != labels)[:36]
    fig = plt.figure(figsize=(12, 5.5))
    ax = fig.add_subplot(1, 2, 1)
    ax.imshow(result.confusion, cmap="Blues")
    for t in range(10):
        for p in range(10):
            ax.text(p, t, str(result.confusion[t, p]), ha="center", va="center", fontsize=7,
                    color="white" if result.confusion[t, p] > result.confusion.max() / 2 else "black")
    ax.set(xticks=range(10), yticks=range(10), xlabel="predicted", ylabel="true",
           title=f"confusion matrix (accuracy {100 * result.accuracy:.2f}%)")
    for k, index in enumerate(wrong):
        sub = fig.add_subplot(6, 12, 12 * (k // 6) + 7 + k % 6)
        sub.imshow(images[index], cmap="gray")
        sub.set_title(f"{labels[index]}->{predicted[index]}", fontsize=7)
        sub.axis("off")
    fig.suptitle("misclassified test digits (true->predicted)", x=0.75)
    fig.savefig(filename, dpi=100)
    plt.close(fig)


def cmd_evaluate(args):
    network = _load_network(args.model)
    _, (x_test, y_test) = _load_mnist(args.data)
    x_test, y_test = _subset(x_test, y_test, args.test_size, "test")
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
        _plot_evaluation(result, x_test, y_test, predicted, args.plot)
        print(f"plot saved to {args.plot}")
    return 0


def cmd_predict(args):
    from .imaging import load_image, to_mnist

    network = _load_network(args.model)
    status = 0
    for name in args.images:
        try:
            image = to_mnist(load_image(name))
        except (OSError, ValueError) as exc:
            print(f"{name}: error: {exc}", file=sys.stderr)
            status = 1
            continue
        probs = network.predict_proba(image)[0]
        digit = int(np.argmax(probs))
        print(f"{name}: {digit} ({100 * probs[digit]:.1f}%)  "
              + " ".join(f"{d}:{p:.3f}" for d, p in enumerate(probs)))
    return status


def cmd_draw(args):
    from .drawing import main as draw_main

    return draw_main(["--model", args.model])


def cmd_bench(args):
    from .bench import main as bench_main

    return bench_main(args.bench_args)


def _int_at_least(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value
    return parse


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="cnn-ext",
        description="The tutorial's from-scratch MNIST CNN, compiled: train, evaluate, predict.")
    parser.add_argument("--version", action="version",
                        version=f"cnn-ext {__version__} (Python {platform.python_version()})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = sub.add_parser("train", help="train on MNIST with the tutorial's per-sample SGD, then test",
                           description="Per-sample SGD on the MNIST training set (the tutorial's "
                                       "recipe), then loss and accuracy on the test set.")
    train.add_argument("--epochs", type=_int_at_least(1), default=3, help="passes over the training set (default 3)")
    train.add_argument("--lr", type=_positive_float, default=0.005, help="learning rate (default 0.005)")
    train.add_argument("--train-size", type=_int_at_least(1), help="use the first N training images (default all 60000)")
    train.add_argument("--test-size", type=_int_at_least(1), help="use the first N test images (default all 10000)")
    train.add_argument("--seed", type=int, default=0,
                       help="seeds the weights (np.random.seed) and the shuffling (default 0)")
    train.add_argument("--data", metavar="PATH",
                       help="folder of MNIST IDX files or a Keras mnist.npz (default: the built-in copy)")
    train.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME",
                       help="save to NAME.pkl, or NAME if it ends in .npz (default MNIST_CNN)")
    train.add_argument("--log-every", type=_int_at_least(0), default=10000, metavar="N",
                       help="print the tutorial's step log every N steps, 0 for never (default 10000)")
    train.add_argument("--plot", metavar="FILE.png", help="draw loss and accuracy curves (needs matplotlib)")
    train.add_argument("--quiet", action="store_true", help="no progress bar and no step log")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="test a saved model: accuracy, per class, confusion matrix")
    evaluate.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME")
    evaluate.add_argument("--data", metavar="PATH")
    evaluate.add_argument("--test-size", type=_int_at_least(1))
    evaluate.add_argument("--plot", metavar="FILE.png",
                          help="confusion matrix and misclassified digits (needs matplotlib)")
    evaluate.set_defaults(func=cmd_evaluate)

    predict = sub.add_parser("predict", help="recognise digits in PNG/JPEG images")
    predict.add_argument("images", nargs="+", metavar="IMAGE")
    predict.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME")
    predict.set_defaults(func=cmd_predict)

    draw = sub.add_parser("draw", help="draw a digit with the mouse and see it recognised (needs Tk and a display)")
    draw.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME")
    draw.set_defaults(func=cmd_draw)

    from .explain import add_parser as add_explain
    add_explain(sub)
    bench = sub.add_parser("bench", add_help=False,
                           help="time cnn_ext against the tutorial's NumPy loops, vectorised NumPy and "
                                "the frameworks (cnn-ext bench --help for options)")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    if argv[:1] == ["bench"]:
        # bench has its own parser; argparse cannot hand a subcommand its leading options
        return cmd_bench(argparse.Namespace(bench_args=argv[1:]))
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.func(args)
