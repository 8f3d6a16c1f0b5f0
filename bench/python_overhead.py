"""The Python around ``Network.train_step``: the facade call against the compiled
``TrainState.step`` it runs, on the same network and images, in interleaved rounds.

    python bench/python_overhead.py [--rounds 15]

Each round times 2,000 ``net.train_step(image, label)`` calls, then 2,000 calls of the
network's own ``TrainState.step`` (the kernel with its Cython wrapper, no facade); the
per-round difference is what the facade's Python costs per step (argument checks, the
check that the parameter arrays were not replaced). Prints the medians and the median,
minimum and maximum of the per-round differences. Uses the installed cnn_ext.
"""
import argparse
import statistics
import time

import cnn_ext
from cnn_ext.datasets import mnist


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    (x, y), _ = mnist.load_data()
    images = [x[i] for i in range(2000)]
    labels = [int(v) for v in y[:2000]]
    net = cnn_ext.Network(seed=0)
    net.train_step(images[0], labels[0])  # builds the compiled state
    state = net._train_state

    def facade():
        start = time.perf_counter()
        for image, label in zip(images, labels):
            net.train_step(image, label)
        return (time.perf_counter() - start) / len(images)

    def kernel():
        start = time.perf_counter()
        for image, label in zip(images, labels):
            state.step(image, label)
        return (time.perf_counter() - start) / len(images)

    facade_times, kernel_times = [], []
    for _ in range(args.rounds):
        facade_times.append(facade())
        kernel_times.append(kernel())
    assert net._train_state is state, "the facade rebuilt its state: the comparison is void"
    diffs = [a - b for a, b in zip(facade_times, kernel_times)]
    us = 1e6
    print(f"{cnn_ext.build_info()['kernels']}, {args.rounds} rounds of {len(images)} steps")
    print(f"Network.train_step {statistics.median(facade_times) * us:.2f} us, "
          f"TrainState.step {statistics.median(kernel_times) * us:.2f} us (medians)")
    print(f"the facade's Python per step: median {statistics.median(diffs) * us:.2f} us "
          f"(rounds from {min(diffs) * us:.2f} to {max(diffs) * us:.2f} us)")


if __name__ == "__main__":
    main()
