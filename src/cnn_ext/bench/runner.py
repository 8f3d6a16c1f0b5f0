"""The command: ``cnn-ext bench`` / ``python -m cnn_ext.bench`` options, the run, the output."""
import argparse
import datetime
import os
import platform
import sys
import time

import numpy as np

from . import cases, peak, report
from .cases import LEARN_RATE
from .report import COLUMNS, format_time
from .timing import REF, measure_layer_cases
from .._files import figure_formats, output_problem
from .._models import SEED_MAX, int_in

_seed = int_in(0, SEED_MAX, "an integer (np.random.seed's range, 2**32 - 1 at most)")

SCHEMA = "cnn_ext-bench/1"


def parse_args(argv):
    """The checked options (an argparse.Namespace with the derived settings added)."""
    parser = argparse.ArgumentParser(
        prog="cnn-ext bench",
        description="Time cnn_ext against the tutorial's loops, vectorised NumPy, PyTorch and "
                    "TensorFlow (side by side, same weights), and check they agree.")
    parser.add_argument("--quick", action="store_true",
                        help="few rounds on few images (tests, CI): well under a minute")
    parser.add_argument("--rounds", type=int, default=None,
                        help="timed rounds per case (default 7, --quick 3)")
    parser.add_argument("--no-frameworks", action="store_true",
                        help="leave out PyTorch and TensorFlow even if installed")
    parser.add_argument("--json", default="bench.json", metavar="PATH",
                        help="write the results here (default: bench.json in the current folder)")
    parser.add_argument("--plot", default=None, metavar="PATH",
                        help="write a PNG bar chart (log scale) here; needs matplotlib")
    parser.add_argument("--full-epoch", action="store_true",
                        help="time Network.fit over all 60,000 images, median of 5 epochs "
                             "(default: 3 rounds on a 10,000-image slice, extrapolated; --quick: "
                             "1 round)")
    parser.add_argument("--images", type=int, default=None,
                        help="images per round for the fast implementations (default 500, --quick 100)")
    parser.add_argument("--reference-images", type=int, default=None,
                        help="images per round for the tutorial's loops (default 4, --quick 2)")
    parser.add_argument("--framework-threads", type=int, default=1,
                        help="threads for PyTorch and TensorFlow (default 1: single-core comparison)")
    parser.add_argument("--seed", type=_seed, default=0,
                        help="np.random.seed for the initial weights, 0..2**32-1 (default 0)")
    parser.add_argument("--scaling", default=None, metavar="PATH",
                        help="also time inference against threads (1..the CPUs) and one epoch against "
                             "training-set size (one round more than the epoch row); write the "
                             "figure to PATH (PNG, needs matplotlib) and the numbers to PATH with "
                             ".json; bench.json gets them too")
    parser.add_argument("--peak-seconds", type=float, default=None,
                        help="seconds of the FMA peak probe, run before and after the cases "
                             "(default 0.5, --quick 0.2)")
    args = parser.parse_args(argv)
    quick = args.quick
    if args.rounds is None:
        args.rounds = 3 if quick else 7
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.images is None:
        args.images = 100 if quick else 500
    if args.reference_images is None:
        args.reference_images = 2 if quick else 4
    if args.images < 1 or args.reference_images < 1:
        parser.error("--images and --reference-images must be at least 1")
    if args.framework_threads < 1:
        parser.error("--framework-threads must be at least 1")
    if args.peak_seconds is None:
        args.peak_seconds = 0.2 if quick else 0.5
    if not 0.01 <= args.peak_seconds <= 60:
        parser.error(f"--peak-seconds must be between 0.01 and 60, got {args.peak_seconds:g}")
    if args.scaling is not None and not args.scaling.lower().endswith(".png"):
        parser.error(f"--scaling needs a .png path, got {args.scaling!r}")
    # Every output is checked before the benchmark runs, not lost after it.
    outputs = [("--json", args.json, None)]
    if args.plot or args.scaling:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plot and --scaling need matplotlib: pip install 'cnn_ext[plot]'")
        if args.plot:
            outputs.append(("--plot", args.plot, figure_formats()))
        if args.scaling:
            outputs += [("--scaling", args.scaling, (".png",)),
                        ("--scaling", os.path.splitext(args.scaling)[0] + ".json", None)]
    for option, path, formats in outputs:
        problem = output_problem(path, formats)
        if problem:
            parser.error(f"{option}: {problem}")
    args.check_images = 2 if quick else 3
    args.framework_images = 128 if quick else 512
    args.epoch_images = 10_000
    # the epoch is the training figure that counts: a median, never one run (--quick: tests)
    args.epoch_rounds = 1 if quick else 5 if args.full_epoch else 3
    args.inference_images = None  # the 10,000 test images
    args.inference_rounds = 2 if quick else max(3, args.rounds // 2)
    return args




def best_peak(measurements):
    """The measurement with the highest GFLOP/s (load only slows the probe), with all of them."""
    found = [m for m in measurements if m]
    if not found:
        return None
    best = dict(max(found, key=lambda m: m["gflops"]))
    best["measurements_gflops"] = [round(m["gflops"], 3) for m in found]
    # every build's probe: the best of the measurements of each
    isa_peaks = {}
    for m in found:
        for module, p in m.get("isa_peaks", {}).items():
            if module not in isa_peaks or p["gflops"] > isa_peaks[module]["gflops"]:
                isa_peaks[module] = dict(p)
    if isa_peaks:
        best["isa_peaks"] = isa_peaks
    return best


def run(cfg):
    """Run every section; returns the result dict that ``main`` writes as JSON."""
    import cnn_ext
    from ..datasets import mnist
    from . import frameworks as _frameworks

    started = datetime.datetime.now(datetime.timezone.utc)
    # Before the frameworks run: torch.set_num_threads also sets OpenMP's default, which
    # build_info() reports as max_threads.
    build = report.build_information()
    machine = report.machine_info()
    versions = _frameworks.framework_versions()
    frameworks, fw_messages = cases.load_frameworks(cfg, versions)
    load_start = time.perf_counter()
    (x_train, y_train), (x_test, y_test) = mnist.load_data()  # the copy embedded in the package
    mnist_load_s = time.perf_counter() - load_start
    data = {"train": (x_train, y_train), "test": (x_test, y_test)}
    say = (lambda msg: print(msg, file=sys.stderr, flush=True))
    say(f"cnn_ext.bench: {cfg.rounds} rounds, {cfg.images} images per round "
        f"({cfg.reference_images} for the tutorial's loops)" + (", quick" if cfg.quick else ""))
    for message in fw_messages:
        say(message)

    say("  peak probe ...")
    peaks = [peak.measure_peak(cfg.peak_seconds)]
    rows, notes = [], {}
    say("  layers ...")
    layer_pairs = cases.layer_cases(data, cfg)
    measure_layer_cases(layer_pairs, cfg.rounds)
    for fwd_case, bwd_case in layer_pairs:
        rows += fwd_case.rows() + bwd_case.rows()
    say("  train step ...")
    case, fw_notes = cases.train_case(data, cfg, frameworks)
    notes.update(fw_notes)
    case.measure(cfg.rounds)
    train_rows = case.rows()
    rows += train_rows
    say("  epoch ...")
    rows.append(cases.epoch_row(data, cfg, train_rows))
    say("  inference ...")
    case = cases.inference_case(data, cfg, frameworks)
    case.measure(cfg.inference_rounds)
    rows += case.rows()
    scaling = None
    if cfg.scaling:
        say("  scaling: inference against threads ...")
        case = cases.inference_scaling_case(data, cfg)
        case.measure(cfg.inference_rounds)
        inference_rows = case.rows()
        say("  scaling: epoch against training-set size ...")
        case = cases.epoch_scaling_case(data, cfg)
        case.measure(cfg.epoch_rounds + 1)
        scaling = {"inference": inference_rows, "epoch": case.rows()}
    say("  peak probe ...")
    peaks.append(peak.measure_peak(cfg.peak_seconds))
    measured_peak = best_peak(peaks)
    madds = peak.arithmetic(cnn_ext.Network(seed=cfg.seed), x_train.shape[1:])
    cpus = machine.get("usable_cpus") or machine.get("logical_cpus")
    peak.add_fractions(rows, measured_peak, madds, cfg.framework_threads, cpus)
    if scaling:
        for part in scaling.values():
            peak.add_fractions(part, measured_peak, madds, cfg.framework_threads, cpus)

    notes["method"] = ("median over rounds of the time per image; speed-ups are medians of per-round "
                       "ratios; implementations interleaved within each round")
    notes["reference"] = (f"the tutorial's loops are timed on {cfg.reference_images} images per round "
                          "(tens of ms per image)")
    notes["layer timing"] = ("each layer call is timed on its own with time.perf_counter "
                             "(its ~0.1 us overhead is included)")
    notes["rel_error"] = "max |x - x_ref| / max |x_ref| against the tutorial's loops, same inputs and weights"
    notes["peak"] = ("the one-core float64 peak is the best of the probe's repeats, run before and after "
                     "the cases; a row on N threads is held to N times it; fraction_of_peak = floor_s / "
                     "median_s, fraction_of_peak_best = floor_s / min_s")
    result = {
        "schema": SCHEMA,
        "date": started.isoformat(timespec="seconds"),
        "duration_s": None,
        "machine": machine,
        "build_info": build,
        "versions": {"cnn_ext": cnn_ext.__version__, "numpy": np.__version__,
                     "python": platform.python_version(), **versions},
        "numpy": report.numpy_info(),
        "settings": {"quick": cfg.quick, "rounds": cfg.rounds, "images": cfg.images,
                     "reference_images": cfg.reference_images, "check_images": cfg.check_images,
                     "framework_images": cfg.framework_images, "framework_threads": cfg.framework_threads,
                     "frameworks": [name for name, _ in frameworks], "full_epoch": cfg.full_epoch,
                     "inference_rounds": cfg.inference_rounds, "seed": cfg.seed,
                     "learn_rate": LEARN_RATE, "columns": list(COLUMNS),
                     "peak_seconds": cfg.peak_seconds, "scaling": cfg.scaling is not None},
        "peak": measured_peak,
        "peak_gflops": measured_peak["gflops"] if measured_peak else None,
        "multiply_adds_per_image": madds,
        "mnist_load_s": round(mnist_load_s, 4),
        "notes": notes,
        "framework_messages": fw_messages,
        "rows": rows,
    }
    if scaling is not None:
        result["scaling"] = scaling
    for row in rows + [r for part in (scaling or {}).values() for r in part]:
        row["images_per_s"] = 1.0 / row["median_s"] if row["median_s"] > 0 else None
    result["duration_s"] = round((datetime.datetime.now(datetime.timezone.utc) - started).total_seconds(), 1)
    return result


def scaling_title(result):
    """The scaling figure's title: date, kernels, peak, and the load the machine had."""
    title = f"cnn_ext scaling, {result['date'][:16].replace('T', ' ')} UTC"
    if result["peak"]:
        title += (f"; {result['peak']['kernels']} kernels, peak {result['peak_gflops']:.1f} GFLOP/s "
                  "per core (float64)")
    load = result["machine"].get("load_average_at_start")
    if load:
        title += f"; load average {load[0]:.1f} on {result['machine']['logical_cpus']} CPUs at start"
    return title


def main(argv=None):
    """``cnn-ext bench [options]``: run, print the table and the peak figures, write the files."""
    cfg = parse_args(argv)
    result = run(cfg)
    rows = result["rows"]
    print(report.header(result))
    print()
    print(report.table(rows))
    print()
    print(report.LEGEND)
    for key, note in result["notes"].items():
        if key in ("method", "layer timing", "rel_error", "peak"):
            continue
        print(f"note ({key}): {note}")
    epoch = next(r for r in rows if r["section"] == "epoch")
    print(f"epoch: {format_time(epoch['epoch_s'])} for 60,000 images ({epoch['note']})")
    inference = [r for r in rows if r["section"] == "inference" and r["implementation"] != REF]
    if inference:
        print("inference throughput: " + ", ".join(
            f"{r['implementation']} {r['images_per_s']:,.0f} images/s" for r in inference))
    for line in report.peak_summary(rows, result["peak"], result["multiply_adds_per_image"]):
        print(line)
    print(f"embedded MNIST (mnist.load_data(), 70,000 images): loaded in {format_time(result['mnist_load_s'])}")
    status = _write_json(result, cfg.json)
    if cfg.plot:
        if _still_writes(lambda: report.plot(rows, cfg.plot), cfg.plot):
            print(f"wrote {cfg.plot}")
        else:
            status = 1
    if cfg.scaling:
        scaling = dict(result["scaling"], peak_gflops=result["peak_gflops"], date=result["date"],
                       machine=result["machine"], schema=SCHEMA + "/scaling",
                       title=scaling_title(result))
        base = os.path.splitext(cfg.scaling)[0]
        status = max(status, _write_json(scaling, base + ".json"))
        for r in scaling["inference"]:
            print(f"scaling: inference on {r['threads']} thread{'s' if r['threads'] > 1 else ''}: "
                  f"{r['images_per_s']:,.0f} images/s, {report.format_fraction(r['fraction_of_peak'])} of peak")
        for r in scaling["epoch"]:
            print(f"scaling: one epoch of {r['train_images']:,} images: "
                  f"{format_time(r['median_s'] * r['train_images'])}")
        if _still_writes(lambda: report.plot_scaling(scaling, cfg.scaling), cfg.scaling):
            print(f"wrote {cfg.scaling}")
        else:
            status = 1
    return status


def _write_json(result, path):
    """Write the results to ``path``, or, if that fails now, beside in the temporary folder
    (they took minutes to measure), saying so in one line: 0 or 1."""
    try:
        report.write_json(result, path)
    except (OSError, ValueError) as exc:
        import tempfile

        stem = os.path.splitext(os.path.basename(path))[0] or "bench"
        fallback = os.path.join(tempfile.gettempdir(), f"{stem}-{datetime.datetime.now():%Y%m%d-%H%M%S}.json")
        try:
            report.write_json(result, fallback)
        except (OSError, ValueError) as again:
            print(f"cnn-ext bench: cannot write {path} ({exc}) nor {fallback} ({again}); "
                  f"the table above has the results", file=sys.stderr)
            return 1
        print(f"cnn-ext bench: cannot write {path} ({exc}); wrote the results to {fallback} instead",
              file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


def _still_writes(draw, path):
    """``draw()``'s answer, or False with one line if writing the figure fails after all."""
    try:
        return draw()
    except (OSError, ValueError) as exc:
        print(f"cnn-ext bench: cannot write {path} ({exc}); the results are in the table above",
              file=sys.stderr)
        return False
