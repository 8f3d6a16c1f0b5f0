"""The timing discipline: interleaved rounds, medians, per-round ratios, relative errors.

Every implementation of a case runs once per round, in an order rotated from round to
round, after one warm-up pass, so a change of machine load hits all of them alike. A row's
time is the median over the rounds of its time per image; its speed-ups are medians of the
per-round ratios against the baselines (the tutorial's loops, the vectorised NumPy) timed
in the same round.
"""
import statistics
import time

import numpy as np

#: The baselines of the speed-up columns (implementation names).
REF = "tutorial loops"
NUMPY = "NumPy vectorised"

perf_counter = time.perf_counter


def rel_error(values, references):
    """max |a - b| / max |b| over pairs of arrays, the maximum over the pairs."""
    worst = 0.0
    for a, b in zip(values, references):
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            return float("inf")
        scale = float(np.max(np.abs(b))) if b.size else 0.0
        diff = float(np.max(np.abs(a - b))) if b.size else 0.0
        if scale == 0.0:
            err = 0.0 if diff == 0.0 else float("inf")
        else:
            err = diff / scale
        if not np.isfinite(err):
            return float("inf")
        worst = max(worst, err)
    return worst


def median_ratio(base_times, times):
    """Median of the per-round ratios base / time (rounds paired in order)."""
    return statistics.median(b / t for b, t in zip(base_times, times))


class Case:
    """The rows of one benchmark case, timed in interleaved rounds.

    ``add(name, run, images)``: ``run()`` does the work for ``images`` images and returns
    the seconds it took (or None to time it here).
    """

    def __init__(self, section, case):
        self.section, self.case = section, case
        self.entries = []  # [name, run, images, times, extra]

    def add(self, name, run, images, **extra):
        """Add an implementation: ``run()`` times ``images`` images; ``extra`` goes into its row."""
        self.entries.append([name, run, images, [], extra])

    def measure(self, rounds, warmup=True):
        """One warm-up pass, then ``rounds`` rounds in rotated order; records seconds per image."""
        if warmup:
            for entry in self.entries:
                self._time(entry)
        for r in range(rounds):
            k = r % len(self.entries)
            for entry in self.entries[k:] + self.entries[:k]:
                entry[3].append(self._time(entry) / entry[2])

    @staticmethod
    def _time(entry):
        start = perf_counter()
        seconds = entry[1]()
        if seconds is None:
            seconds = perf_counter() - start
        return seconds

    def rows(self):
        """One result dict per implementation: median, min, max, per-round times, speed-ups."""
        by_name = {e[0]: e for e in self.entries}
        rows = []
        for name, _, images, times, extra in self.entries:
            row = {"section": self.section, "case": self.case, "implementation": name,
                   "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
                   "times_s": times, "images_per_round": images, "rounds": len(times)}
            for key, base in (("speedup_vs_loops", REF), ("speedup_vs_numpy", NUMPY)):
                if base in by_name and by_name[base][3]:
                    row[key] = median_ratio(by_name[base][3], times)
                else:
                    row[key] = None
            row.update(extra)
            rows.append(row)
        return rows


def measure_layer_cases(cases, rounds):
    """Time (forward, backward) case pairs that share each pass, in interleaved rounds.

    Each forward entry's run does both directions and returns the forward seconds; the
    backward entry at the same index returns the backward seconds of that same pass.
    """
    for fwd_case, bwd_case in cases:
        for entry in fwd_case.entries:  # warm-up
            entry[1]()
        for r in range(rounds):
            k = r % len(fwd_case.entries)
            order = list(range(len(fwd_case.entries)))
            for i in order[k:] + order[:k]:
                f_entry, b_entry = fwd_case.entries[i], bwd_case.entries[i]
                f_entry[3].append(f_entry[1]() / f_entry[2])
                b_entry[3].append(b_entry[1]() / b_entry[2])
