"""A served model against a shadow model on live traffic, as metric state: what one batch of sampled rows
showed (`LiveTally`), what it is compared with (`LiveReference`), the rolling window of tallies and the
counters since start (`LiveRecorder`). Two comparisons use it: INT8 against its FP32 original (the live
check) and a champion against its challenger (server/monitoring/).

The figures are those of the startup gate (server/evaluation/risk_metrics.py): decision flips at each
threshold, absolute score differences, PSI; and the sums Pearson's correlation is taken from. PSI's bins are
the quantiles of the served model's scores on the holdout file, fixed at start, so tallies of any processes
and any time slices add up before PSI or the correlation is taken.
"""

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from server.evaluation.paired_intervals import flip_rate_interval
from server.evaluation.score_comparison import binned_counts, decision_flips, psi_from_counts
from server.metrics import catalogue as m

LabelValues = tuple[str, ...]
WINDOW_SLICES = 10


@dataclass(frozen=True)
class LiveReference:
    """What a model's live rows are judged against: its thresholds, the flip budget (the gate's for the
    live check; 1 - min_agreement for a challenger, whose flips are disagreements), the holdout's served
    score bins (edges without the outer +-infinity) and the holdout rows in each."""

    thresholds: dict[str, float]
    flip_budget: float
    inner_edges: tuple[float, ...]
    holdout_bins: tuple[int, ...]

    @property
    def edges(self) -> np.ndarray:
        return np.array([-np.inf, *self.inner_edges, np.inf])

    def as_dict(self) -> dict[str, Any]:
        return {
            "thresholds": self.thresholds,
            "flip_budget": self.flip_budget,
            "inner_edges": list(self.inner_edges),
            "holdout_bins": list(self.holdout_bins),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LiveReference":
        return cls(
            {str(k): float(v) for k, v in data["thresholds"].items()},
            float(data["flip_budget"]),
            tuple(float(e) for e in data["inner_edges"]),
            tuple(int(c) for c in data["holdout_bins"]),
        )


@dataclass
class LiveTally:
    """Sampled rows scored by both models: their count, decision flips per threshold, the sum and maximum
    of |served - shadow|, each model's scores per PSI bin, and `moments`: the sums of served, shadow,
    served^2, shadow^2 and served x shadow (Pearson's correlation, summable over slices and processes)."""

    rows: int = 0
    flips: dict[str, int] = field(default_factory=dict)
    abs_diff_sum: float = 0.0
    abs_diff_max: float = 0.0
    served_bins: list[int] = field(default_factory=list)
    shadow_bins: list[int] = field(default_factory=list)
    moments: list[float] = field(default_factory=lambda: [0.0] * 5)

    @classmethod
    def of(cls, served: np.ndarray, shadow: np.ndarray, reference: LiveReference) -> "LiveTally":
        x, y = served.astype(np.float64), shadow.astype(np.float64)
        difference = np.abs(x - y)
        edges = reference.edges
        return cls(
            rows=int(served.size),
            flips={name: decision_flips(shadow, served, t) for name, t in reference.thresholds.items()},
            abs_diff_sum=float(difference.sum()),
            abs_diff_max=float(difference.max(initial=0.0)),
            served_bins=binned_counts(served, edges).tolist(),
            shadow_bins=binned_counts(shadow, edges).tolist(),
            moments=[float(v) for v in (x.sum(), y.sum(), (x * x).sum(), (y * y).sum(), (x * y).sum())],
        )

    def add(self, other: "LiveTally") -> None:
        self.rows += other.rows
        for name, flips in other.flips.items():
            self.flips[name] = self.flips.get(name, 0) + flips
        self.abs_diff_sum += other.abs_diff_sum
        self.abs_diff_max = max(self.abs_diff_max, other.abs_diff_max)
        self.served_bins = _add_lists(self.served_bins, other.served_bins)
        self.shadow_bins = _add_lists(self.shadow_bins, other.shadow_bins)
        self.moments = [a + b for a, b in zip(self.moments, other.moments, strict=True)]

    def pearson(self) -> float:
        """Pearson's correlation of the served and shadow scores (NaN without rows or with a constant one)."""
        n = self.rows
        if n < 2:
            return math.nan
        sx, sy, sxx, syy, sxy = self.moments
        covariance, var_x, var_y = sxy - sx * sy / n, sxx - sx * sx / n, syy - sy * sy / n
        # a constant score leaves a rounding residue, not 0: variances this small relative to the sums are 0
        if var_x <= 1e-12 * sxx or var_y <= 1e-12 * syy:
            return math.nan
        return max(-1.0, min(1.0, covariance / math.sqrt(var_x * var_y)))

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LiveTally":
        return cls(**data)


def _add_lists(a: list[int], b: list[int]) -> list[int]:
    if not a:
        return list(b)
    return [x + y for x, y in zip(a, b, strict=True)] if b else a


@dataclass(frozen=True)
class LiveFigures:
    """A window's tally read as the exported gauges."""

    rows: int
    mean_abs_score_diff: float
    max_abs_score_diff: float
    psi: float  # served against shadow on the same rows (INT8 against FP32; challenger against champion)
    drift_psi: float  # live served scores against the holdout's


def live_figures(tally: LiveTally, reference: LiveReference) -> LiveFigures:
    if not tally.rows:
        return LiveFigures(0, math.nan, math.nan, math.nan, math.nan)
    return LiveFigures(
        tally.rows,
        tally.abs_diff_sum / tally.rows,
        tally.abs_diff_max,
        psi_from_counts(np.array(tally.shadow_bins), np.array(tally.served_bins)),
        psi_from_counts(np.array(reference.holdout_bins), np.array(tally.served_bins)),
    )


def flips_above_budget(tally: LiveTally, reference: LiveReference, min_rows: int) -> tuple[str, float] | None:
    """The first threshold whose flip rate is above the budget with 95 % confidence (the low end of its
    Wilson interval, as the gate's evidence computes it), and that rate; None when none is or the tally has
    fewer than `min_rows` rows (checked after every batch, a tiny window would sooner or later cross by
    chance)."""
    if tally.rows < max(min_rows, 1):
        return None
    for name, flips in tally.flips.items():
        if flip_rate_interval(flips, tally.rows).low > reference.flip_budget:
            return name, flips / tally.rows
    return None


class _Window:
    """Tallies of the last `window_s` seconds, in WINDOW_SLICES slices."""

    def __init__(self, window_s: float) -> None:
        self.slice_s = window_s / WINDOW_SLICES
        self.slices: deque[tuple[int, LiveTally]] = deque()

    def add(self, tally: LiveTally, now: float) -> None:
        index = int(now // self.slice_s)
        if not self.slices or self.slices[-1][0] != index:
            self.slices.append((index, LiveTally()))
        self.slices[-1][1].add(tally)

    def total(self, now: float) -> LiveTally:
        oldest = int(now // self.slice_s) - WINDOW_SLICES + 1
        while self.slices and self.slices[0][0] < oldest:
            self.slices.popleft()
        total = LiveTally()
        for _, tally in self.slices:
            total.add(tally)
        return total


class LiveRecorder:
    """One comparison's state in one process, per key (the live check: model, version): counters since
    start, exported as `rows`, `flips` and `dropped`, and the window. Written by each model's shadow
    thread, read by snapshots; its own lock, off the serving path."""

    def __init__(self, rows: m.MetricSpec, flips: m.MetricSpec, dropped: m.MetricSpec) -> None:
        self._metrics = (rows.name, flips.name, dropped.name)
        self._lock = threading.Lock()
        self._references: dict[LabelValues, LiveReference] = {}
        self._windows: dict[LabelValues, _Window] = {}
        self._totals: dict[LabelValues, LiveTally] = {}
        self._dropped: dict[LabelValues, int] = {}

    def register(self, key: LabelValues, reference: LiveReference, window_s: float) -> None:
        """Start recording `key`. A key already recorded (a reload of files under the same version, a
        check re-paired) keeps its counters and window: a counter of one label set never goes back."""
        with self._lock:
            self._references[key] = reference
            self._windows.setdefault(key, _Window(window_s))
            self._totals.setdefault(key, LiveTally(flips=dict.fromkeys(reference.thresholds, 0)))
            self._dropped.setdefault(key, 0)

    def record(self, key: LabelValues, tally: LiveTally, now: float | None = None) -> LiveTally:
        """Add one compared batch; returns the window's total after it."""
        now = time.time() if now is None else now
        with self._lock:
            self._totals[key].add(tally)
            window = self._windows[key]
            window.add(tally, now)
            return window.total(now)

    def count_dropped(self, key: LabelValues, rows: int) -> None:
        with self._lock:
            self._dropped[key] += rows

    def snapshot(self, now: float | None = None) -> tuple[dict[str, dict[LabelValues, float]], dict]:
        """(counters by metric name, {key: {"reference": ..., "window": ...}}) for a ProcessSnapshot."""
        now = time.time() if now is None else now
        with self._lock:
            rows = {key: float(total.rows) for key, total in self._totals.items()}
            flips = {
                (*key, name): float(count)
                for key, total in self._totals.items()
                for name, count in total.flips.items()
            }
            dropped = {key: float(count) for key, count in self._dropped.items()}
            windows = {
                key: {"reference": self._references[key].as_dict(), "window": w.total(now).as_dict()}
                for key, w in self._windows.items()
            }
        return dict(zip(self._metrics, (rows, flips, dropped), strict=True)), windows


def merge_live_windows(per_process: list[dict[LabelValues, dict]]) -> dict[LabelValues, tuple]:
    """{key: (LiveReference, LiveTally summed over the processes)} from several snapshots' windows."""
    merged: dict[LabelValues, tuple[LiveReference, LiveTally]] = {}
    for windows in per_process:
        for key, entry in windows.items():
            if key not in merged:
                merged[key] = (LiveReference.from_dict(entry["reference"]), LiveTally())
            merged[key][1].add(LiveTally.from_dict(entry["window"]))
    return merged
