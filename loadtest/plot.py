"""The picture: latency percentiles over time, and the whole percentile distribution (HDR-style plot)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FixedLocator, FuncFormatter

from loadtest.runner import RunResult

PNG_NAME = "latency.png"
TICK_LABELS = {0.301: "50%", 1.0: "90%", 2.0: "99%", 3.0: "99.9%", 4.0: "99.99%", 5.0: "99.999%"}
OVER_TIME = ((50.0, "p50"), (99.0, "p99"), (99.9, "p99.9"))
# x positions of the distribution plot: -log10(1 - q), so 90 % -> 1, 99 % -> 2, 99.9 % -> 3
DISTRIBUTION_QUANTILES = np.concatenate([np.linspace(0, 0.9, 10), 1 - np.logspace(-1.05, -5, 60)])


def _distribution(histogram) -> tuple[np.ndarray, np.ndarray]:
    count = histogram.get_total_count()
    if count == 0:
        return np.array([]), np.array([])
    quantiles = DISTRIBUTION_QUANTILES[1 - 1 / (2 * count) >= DISTRIBUTION_QUANTILES]
    values = [histogram.get_value_at_percentile(q * 100) / 1000 for q in quantiles]
    return -np.log10(1 - quantiles), np.asarray(values)


def _plain_log_ticks(axes) -> None:
    """Log-scale latency axes labelled 2, 5, 10 ms rather than 2x10^0."""
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    axes.yaxis.set_major_formatter(plain)
    axes.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "235" else ""))


def _no_answers(axes, title: str) -> None:
    axes.text(0.5, 0.5, "no answered requests", ha="center", va="center", transform=axes.transAxes)
    axes.set(title=title)


def _latency_over_time(axes, result: RunResult) -> None:
    rec, sla = result.recording, result.scenario.sla
    slices = sorted(rec.per_slice)
    if not slices:
        _no_answers(axes, "Latency over time")
        return
    starts = [i * rec.slice_s for i in slices]
    label = "from intended send" if result.open_loop else "closed loop"
    for percentile, name in OVER_TIME:
        values = [rec.per_slice[s].get_value_at_percentile(percentile) / 1000 for s in slices]
        axes.plot(starts, values, marker=".", label=f"{name} ({label})")
    if result.open_loop:
        values = [rec.uncorrected_per_slice[s].get_value_at_percentile(99.0) / 1000 for s in slices]
        axes.plot(starts, values, linestyle="--", color="grey", label="p99 from actual send")
    if sla.p99_ms is not None:
        axes.axhline(sla.p99_ms, color="red", linewidth=1, label=f"SLA p99 {sla.p99_ms:g} ms")
    axes.set(
        title=f"Latency over time ({rec.slice_s:g} s slices, by intended send time)",
        ylabel="latency, ms",
        yscale="log",
    )
    _plain_log_ticks(axes)
    axes.legend(fontsize=8)
    axes.grid(True, which="both", alpha=0.3)


def _requests_over_time(axes, result: RunResult) -> None:
    rec = result.recording
    slices = sorted(set(rec.ok_per_slice) | set(rec.errors_per_slice))
    starts = [i * rec.slice_s for i in slices]
    axes.plot(
        starts, [rec.ok_per_slice[s] / rec.slice_s for s in slices], color="tab:green", label="answered OK"
    )
    axes.plot(
        starts, [rec.errors_per_slice[s] / rec.slice_s for s in slices], color="tab:red", label="errors"
    )
    axes.set(
        title="Requests per second (by intended send time)",
        xlabel="seconds into the measured run",
        ylabel="requests/s",
    )
    axes.legend(fontsize=8)
    axes.grid(True, alpha=0.3)


def _distribution_panel(axes, result: RunResult) -> None:
    rec, sla = result.recording, result.scenario.sla
    if rec.uncorrected.get_total_count() == 0:
        _no_answers(axes, "Latency by percentile")
        return
    label = "from intended send" if result.open_loop else "closed loop"
    curves = [(rec.corrected if result.open_loop else rec.uncorrected, f"client, {label}")]
    if result.open_loop:
        curves.append((rec.uncorrected, "client, from actual send"))
    for histogram, name in curves:
        x, y = _distribution(histogram)
        axes.plot(x, y, label=name)
    for field, x in (("p50_ms", 0.301), ("p90_ms", 1.0), ("p99_ms", 2.0), ("p999_ms", 3.0)):
        target = getattr(sla, field)
        if target is not None:
            axes.plot([x], [target], marker="x", color="red", markersize=9, linestyle="none")
    axes.xaxis.set_major_locator(FixedLocator([0.301, 1, 2, 3, 4, 5]))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda x, _: TICK_LABELS.get(round(x, 3), "")))
    axes.set(
        title="Latency by percentile (red x: SLA targets)",
        xlabel="percentile",
        ylabel="latency, ms",
        yscale="log",
    )
    _plain_log_ticks(axes)
    axes.legend(fontsize=8)
    axes.grid(True, which="both", alpha=0.3)


def write_png(path: Path, result: RunResult) -> Path:
    """Latency percentiles and request rates over time (left), latency by percentile (right)."""
    figure = plt.figure(figsize=(14, 7))
    grid = figure.add_gridspec(2, 2, height_ratios=(3, 2))
    over_time = figure.add_subplot(grid[0, 0])
    _latency_over_time(over_time, result)
    _requests_over_time(figure.add_subplot(grid[1, 0], sharex=over_time), result)
    _distribution_panel(figure.add_subplot(grid[:, 1]), result)
    figure.suptitle(f"{result.scenario.name}: {result.scenario.target}, started {result.started_at}")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
