"""The training step part by part: bench/parts.c compiled with each installed vector build's
flags, timed on real MNIST digits, each part against that build's measured FMA peak.

    python bench/parts.py                  # every vector build this CPU runs
    python bench/parts.py --kernels avx2   # one build
    python bench/parts.py --instructions   # also callgrind's instructions per part (AVX2)

Where the kernels' time goes, without Python around them: normalising a digit, Conv3x3 +
MaxPool2 with the masks, the dense forward, the forward the step runs (those two in one
loop in the x86 builds, one after the other in the NEON build: kernels/network.h), the
dense backward with its update, the filter gradient through the masks, and the whole step,
the package's own C function (``cnn_ext_train_step10``, which ``TrainState.step`` and
``Network.fit`` run). The dense parts and the whole step take the weights quad-blocked
(``kernels/softmax.h``), as the x86 builds' ``Network.fit`` chunks and ``predict_proba``
batches do (the NEON build's keep them row-major); the three "row-major" parts take them
as ``TrainState.step`` does. The parts run
interleaved, ``--rounds`` rounds over ``--images`` digits, and the median round is printed.
Needs a C compiler (``cc`` or ``$CC``); the headers are this checkout's
``src/cnn_ext/kernels``, the flags the installed build's (``CFLAGS`` of its module, without
OpenMP). ``--instructions`` needs valgrind, which does not run AVX-512 code, so counts the
AVX2 build only: each part run over 200 and over 100 images, the difference / 100.
"""
import argparse
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from cnn_ext._dispatch import BUILDS
from cnn_ext.datasets import mnist

HERE = Path(__file__).resolve().parent
HEADERS = HERE.parent / "src" / "cnn_ext" / "kernels"


def compile_parts(module, out_dir, extra=()):
    """bench/parts.c built with the flags of the kernel ``module`` (and ``extra``); the
    executable's path."""
    flags = module.CFLAGS.split()
    while "-fopenmp" in flags:  # and Apple clang's "-Xpreprocessor -fopenmp" with it
        k = flags.index("-fopenmp")
        del flags[k - 1 if k and flags[k - 1] == "-Xpreprocessor" else k:k + 1]
    exe = Path(out_dir) / f"parts_{module.__name__.rsplit('.', 1)[1]}"
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, *flags, *extra, f"-I{HEADERS}", str(HERE / "parts.c"), "-o", str(exe),
                    "-lm"], check=True)
    return exe


def digit_files(folder, n):
    """The first ``n`` MNIST training digits and their labels as the raw files parts.c
    reads (n * 784 bytes, n bytes); their paths."""
    (x, y), _ = mnist.load_data()
    digits, labels = Path(folder) / "digits.u8", Path(folder) / "labels.u8"
    digits.write_bytes(x[:n].tobytes())
    labels.write_bytes(y[:n].astype("uint8").tobytes())
    return digits, labels


def run(exe, digits, labels, n, rounds, part=None):
    args = [str(exe), str(digits), str(labels), str(n), str(rounds)]
    if part is not None:
        args.append(str(part))
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def instructions(exe, digits, labels, part):
    """callgrind's instructions of one part per image: (200 images - 100 images) / 100."""
    counts = []
    for n in (100, 200):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "callgrind.out"
            subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                            str(exe), str(digits), str(labels), str(n), "1", str(part)],
                           check=True, capture_output=True)
            totals = [line for line in out.read_text().splitlines() if line.startswith("totals:")]
            counts.append(int(totals[0].split()[1]))
    return (counts[1] - counts[0]) / 100


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernels", choices=sorted(BUILDS), action="append",
                        help="a vector build (repeatable; default: every one this CPU runs)")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions per part with callgrind (AVX2 build)")
    args = parser.parse_args()
    if args.images < 1 or args.rounds < 1:
        parser.error("--images and --rounds must be at least 1")
    if args.instructions and args.images < 200:
        parser.error("--instructions counts runs over 100 and 200 digits: "
                     "--images must be at least 200")
    chosen = args.kernels or [name for name, (_, cpu_has, _) in BUILDS.items() if cpu_has()]
    if args.instructions and shutil.which("valgrind") is None:
        parser.error("--instructions needs valgrind")
    with tempfile.TemporaryDirectory() as tmp:
        digits, labels = digit_files(tmp, args.images)
        for name in chosen:
            if not BUILDS[name][1]():
                print(f"{name}: this CPU cannot run it")
                continue
            try:
                module = importlib.import_module(f"cnn_ext.{BUILDS[name][0]}")
            except ImportError:
                print(f"{name}: not built in this installation")
                continue
            exe = compile_parts(module, tmp)
            peak = max(module.fma_peak(0.2)["gflops"] for _ in range(3))
            rows = run(exe, digits, labels, args.images, args.rounds)
            print(f"{name} ({module.CFLAGS}), peak {peak:.1f} GFLOP/s, median of {args.rounds} "
                  f"rounds over {args.images} digits:")
            for part, (label, seconds, madds) in enumerate(rows):
                seconds, madds = float(seconds), float(madds)
                line = f"  {label:28s} {seconds * 1e6:7.3f} us"
                if madds:
                    line += f"  {2 * madds / seconds / (peak * 1e9):6.1%} of peak"
                if args.instructions and name == "avx2":
                    line += f"  {instructions(exe, digits, labels, part):10,.0f} instructions"
                print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
