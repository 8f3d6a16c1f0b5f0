"""Reporting: the printed table, the JSON, the charts, and the machine, build and peak info."""
import json
import os
import platform
import statistics
import sys

import numpy as np

from .timing import NUMPY, REF

#: Columns of the printed table, in order.
COLUMNS = ("section", "case", "implementation", "median/img", "spread", "vs loops", "vs NumPy",
           "rel_error", "timed", "floor/img", "of peak")


def format_time(seconds):
    """Seconds as a short string with a unit (s, ms, us, ns), '-' when there is none."""
    if seconds is None or not np.isfinite(seconds):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if seconds >= scale or unit == "ns":
            value = seconds / scale
            digits = 3 if value < 10 else (1 if value < 100 else 0)
            digits = min(digits, 2) if unit != "s" else digits
            return f"{value:.{digits}f} {unit}"
    return f"{seconds:.3g} s"


def format_ratio(ratio):
    """A speed-up as '12.3x', '-' when there is none."""
    if ratio is None or not np.isfinite(ratio):
        return "-"
    if ratio >= 100:
        return f"{ratio:,.0f}x"
    if ratio >= 10:
        return f"{ratio:.1f}x"
    return f"{ratio:.2f}x"


def format_error(err):
    """A relative error as '1.2e-16', '0' or '-'."""
    if err is None:
        return "-"
    if err == 0:
        return "0"
    return f"{err:.1e}"


def format_fraction(fraction):
    """A fraction of peak as a percentage, '-' when there is none."""
    if fraction is None or not np.isfinite(fraction):
        return "-"
    if fraction >= 0.1:
        return f"{fraction * 100:.0f}%"
    if fraction >= 0.001:
        return f"{fraction * 100:.1f}%"
    return f"{fraction * 100:.2g}%"


def machine_info():
    """Platform, CPU model, logical and usable CPUs, Python, load average."""
    info = {"platform": platform.platform(), "machine": platform.machine(),
            "processor": platform.processor() or None, "cpu_model": None,
            "logical_cpus": os.cpu_count(), "python": platform.python_version(),
            "python_implementation": platform.python_implementation()}
    try:
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        info["usable_cpus"] = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if info["cpu_model"] is None and sys.platform == "darwin":
        try:
            import subprocess

            info["cpu_model"] = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"],
                                               capture_output=True, text=True).stdout.strip() or None
        except OSError:
            pass
    try:
        load = os.getloadavg()
        info["load_average_at_start"] = [round(v, 2) for v in load]
    except (AttributeError, OSError):
        pass
    return info


def numpy_info():
    """NumPy's version, its BLAS, and the BLAS/OpenMP environment variables set."""
    info = {"version": np.__version__, "blas": None}
    try:
        config = np.show_config(mode="dicts")
        blas = config.get("Build Dependencies", {}).get("blas", {})
        info["blas"] = {key: blas.get(key) for key in ("name", "version", "openblas configuration")
                        if blas.get(key)}
    except Exception:  # older NumPy: no mode="dicts"
        pass
    info["blas_environment"] = {key: value for key, value in os.environ.items()
                                if key.startswith(("OPENBLAS_", "OMP_", "MKL_"))}
    return info


def build_information():
    """cnn_ext.build_info(), or the error that prevented it."""
    import cnn_ext

    try:
        return cnn_ext.build_info()
    except Exception as exc:  # report, do not fail the benchmark
        return {"error": f"{type(exc).__name__}: {exc}", "version": getattr(cnn_ext, "__version__", None)}


def table(rows):
    """The fixed-width table of the rows, one line per row, a blank line between cases."""
    cells = [COLUMNS]
    for row in rows:
        spread = ((row["max_s"] - row["min_s"]) / row["median_s"] * 100) if row["median_s"] else None
        timed = f"{row['images_per_round']}x{row['rounds']}"
        cells.append((row["section"], row["case"], row["implementation"], format_time(row["median_s"]),
                      "-" if spread is None else f"{spread:.0f}%",
                      format_ratio(row.get("speedup_vs_loops")), format_ratio(row.get("speedup_vs_numpy")),
                      format_error(row.get("rel_error")), timed, format_time(row.get("floor_s")),
                      format_fraction(row.get("fraction_of_peak"))))
    widths = [max(len(str(c[i])) for c in cells) for i in range(len(COLUMNS))]
    right = {3, 4, 5, 6, 7, 8, 9, 10}
    lines = []
    previous = None
    for n, c in enumerate(cells):
        if n > 1 and (c[0], c[1]) != previous:
            lines.append("")
        previous = (c[0], c[1]) if n else None
        lines.append("  ".join(str(v).rjust(widths[i]) if i in right else str(v).ljust(widths[i])
                               for i, v in enumerate(c)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def plot(rows, path):
    """Bar chart (log scale) of the rows' median times to ``path``; False without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        print("cnn_ext.bench: --plot needs matplotlib (pip install 'cnn_ext[plot]'); no plot written",
              file=sys.stderr)
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sections = []
    for row in rows:
        if row["section"] not in sections:
            sections.append(row["section"])
    groups = [[r for r in rows if r["section"] == s] for s in sections]
    heights = [max(1.2, 0.32 * len(g) + 0.8) for g in groups]
    fig, axes = plt.subplots(len(groups), 1, figsize=(10, sum(heights) + 0.8), sharex=True,
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    colors = {REF: "#999999", NUMPY: "#4c72b0"}
    for ax, group, section in zip(axes[:, 0], groups, sections):
        cases = {r["case"] for r in group}
        if len(cases) == 1:
            section = f"{section}: {group[0]['case']}"
            labels = [r["implementation"] for r in group]
        else:
            labels = [f"{r['case']}: {r['implementation']}" for r in group]
        values = [r["median_s"] * 1e6 for r in group]
        bar_colors = [colors.get(r["implementation"],
                                 "#dd8452" if r["implementation"].startswith("cnn_ext") else "#55a868")
                      for r in group]
        y = np.arange(len(group))[::-1]
        ax.barh(y, values, color=bar_colors, height=0.7)
        ax.set_yticks(y, labels, fontsize=7)
        ax.set_xscale("log")
        ax.set_title(section, fontsize=9, loc="left")
        ax.grid(axis="x", which="both", alpha=0.3)
        for yy, v in zip(y, values):
            ax.text(v, yy, " " + format_time(v * 1e-6), va="center", fontsize=6)
        floors = [r["floor_s"] for r in group if r.get("floor_s") and r.get("peak_threads", 1) == 1]
        if floors:  # the arithmetic floor of one core at the measured peak
            ax.axvline(floors[0] * 1e6, color="#c44e52", linestyle="--", linewidth=1,
                       label=f"arithmetic floor, 1 core at peak: {format_time(floors[0])}")
            ax.legend(fontsize=6, loc="lower right")
    axes[-1, 0].set_xlabel("median time per image (microseconds, log scale)")
    fig.suptitle("cnn_ext benchmark (lower is better)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def header(result):
    """The lines above the table: version, date, machine, versions, build, peak."""
    m, b = result["machine"], result["build_info"]
    lines = [f"cnn_ext {result['versions']['cnn_ext']} benchmark, {result['date']}",
             f"machine: {m.get('cpu_model') or m.get('processor') or m['machine']}, "
             f"{m.get('usable_cpus') or m['logical_cpus']} usable of {m['logical_cpus']} logical CPUs, "
             f"Python {m['python']}",
             "versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items() if v and k != "python")]
    if "error" in b:
        lines.append(f"build: unavailable ({b['error']})")
    else:
        lines.append("build: " + ", ".join(f"{k}={b.get(k)}" for k in ("compiler", "cflags", "openmp",
                                                                     "max_threads", "simd") if k in b))
    lines.append(peak_line(result.get("peak")))
    return "\n".join(lines)


def peak_line(peak):
    """One line on the measured peak: GFLOP/s, multiply-adds/s, what ran, on which kernels."""
    if not peak:
        return "peak: not measured (the kernels have no fma_peak probe)"
    line = (f"peak: {peak['gflops']:.1f} GFLOP/s float64 on one core = "
            f"{peak['multiply_adds_per_s'] / 1e9:.1f} G multiply-adds/s (best of {peak['repeats']} "
            f"repeats, median {peak['median_gflops']:.1f}; {peak['isa']}, {peak['kernels']})")
    others = [f"{p['isa'].split(',')[0]} {p['gflops']:.1f}" for module, p in peak.get("isa_peaks", {}).items()
              if module != peak["kernels"]]
    if peak.get("kernels_in_use") and peak["kernels_in_use"] != peak["kernels"]:
        line += f"; the results ran on {peak['kernels_in_use']}"
    if others:
        line += "; other probes: " + ", ".join(others) + " GFLOP/s"
    return line


def peak_summary(rows, peak, madds):
    """Lines giving each compiled result's floor and fraction of peak (cnn_ext rows)."""
    if not peak:
        return []
    lines = [f"arithmetic floor: {madds['training']:,} multiply-adds per training step, "
             f"{madds['inference']:,} per inference ({madds['counted']}); floor = 2 flops per "
             f"multiply-add at {peak['gflops']:.1f} GFLOP/s per thread, the "
             f"{peak['isa'].split(',')[0]} peak"]
    for row in rows:
        if row["section"] in ("train step", "epoch", "inference") and row["implementation"].startswith(
                "cnn_ext") and row.get("fraction_of_peak") is not None:
            lines.append(f"  {row['section']}: {row['implementation']}: {format_time(row['median_s'])}"
                         f"/img, floor {format_time(row['floor_s'])} on {row['peak_threads']} "
                         f"core{'s' if row['peak_threads'] > 1 else ''}: "
                         f"{format_fraction(row['fraction_of_peak'])} of peak "
                         f"(best round {format_fraction(row['fraction_of_peak_best'])})")
    return lines


def plot_scaling(scaling, path):
    """Two panels to ``path``: inference images/s against threads, epoch time against size."""
    try:
        import matplotlib
    except ImportError:
        print("cnn_ext.bench: --scaling needs matplotlib for its figure (pip install 'cnn_ext[plot]'); "
              "no figure written", file=sys.stderr)
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    inference, epoch = scaling["inference"], scaling["epoch"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    threads = [r["threads"] for r in inference]
    speed = [1.0 / r["median_s"] for r in inference]
    low = [1.0 / r["max_s"] for r in inference]
    high = [1.0 / r["min_s"] for r in inference]
    left.errorbar(threads, speed, yerr=[np.subtract(speed, low), np.subtract(high, speed)], marker="o",
                  capsize=3, color="#dd8452", label="cnn_ext predict_proba (median, min-max)")
    left.plot(threads, [speed[0] * t for t in threads], ":", color="#999999",
              label="linear from 1 thread")
    if inference[0].get("floor_s"):
        left.plot(threads, [1.0 / r["floor_s"] for r in inference], "--", color="#4c72b0",
                  label="arithmetic limit (peak x threads)")
    for t, v, r in zip(threads, speed, inference):
        if r.get("fraction_of_peak") is not None:
            left.annotate(f"{format_fraction(r['fraction_of_peak'])} of peak", (t, v), fontsize=7,
                          textcoords="offset points", xytext=(4, -12))
    left.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v / 1000:,.0f}k"))
    left.set_xticks(threads)
    left.set_xlim(threads[0] - 0.3, threads[-1] + 0.5)
    left.set_xlabel("threads")
    left.set_ylabel("images per second")
    left.set_ylim(bottom=0)
    left.set_title(f"inference, {inference[0]['images_per_round']:,} test images", fontsize=9, loc="left")
    left.grid(alpha=0.3)
    left.legend(fontsize=7, loc="upper left")
    sizes = [r["train_images"] for r in epoch]
    seconds = [r["median_s"] * r["train_images"] for r in epoch]
    right.plot(sizes, seconds, "o-", color="#dd8452", label="Network.fit, one epoch (median)")
    per_image = statistics.median([r["median_s"] for r in epoch])
    right.plot(sizes, [per_image * n for n in sizes], ":", color="#999999",
               label=f"linear: {format_time(per_image)} per image")
    if epoch[0].get("floor_s"):
        right.plot(sizes, [epoch[0]["floor_s"] * n for n in sizes], "--", color="#4c72b0",
                   label="arithmetic limit (1 core at peak)")
        last = epoch[-1]
        right.annotate(f"{format_fraction(last['fraction_of_peak'])} of peak",
                       (sizes[-1], seconds[-1]), fontsize=7, textcoords="offset points",
                       xytext=(-60, -14))
    right.set_xlabel("training images")
    right.set_ylabel("seconds")
    right.set_ylim(bottom=0)
    right.set_title("training: one epoch, per-sample SGD, 1 thread", fontsize=9, loc="left")
    right.grid(alpha=0.3)
    right.legend(fontsize=7, loc="upper left")
    fig.suptitle(scaling.get("title", "cnn_ext scaling"), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def json_default(value):
    """JSON for NumPy scalars and arrays (``json.dump(default=...)``)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_json(result, path):
    """Write ``result`` to ``path`` as indented JSON."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, default=json_default)
        f.write("\n")


#: The legend printed under the table.
LEGEND = ("median/img: median over rounds of the time per image; spread: (max - min) / median; "
          "vs loops / vs NumPy: median per-round speed-up over the tutorial's loops / the vectorised "
          "NumPy; rel_error: max|x - x_ref| / max|x_ref| vs the loops; timed: images x rounds; "
          "floor/img: the tutorial's multiply-adds per image at the measured peak (x threads); "
          "of peak: floor / median.")
