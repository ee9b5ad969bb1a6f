"""Custom Prometheus collector: merges this process's live state with the other serving processes'
snapshots (multi-process mode) and yields every riskserve metric family.

Merge rules: counters and histogram buckets are summed over all snapshots, dead processes included (their
totals happened); gauges and readiness only over live processes; rolling-window HDR slices are added slice
by slice and the quantiles are computed from the sum (never averaged).
"""

import math
import os
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from server.evaluation.score_comparison import psi_from_counts
from server.metrics import catalogue as m
from server.metrics.latency_window import WINDOW_QUANTILES, merge_window, window_quantiles
from server.metrics.live_window import live_figures, merge_live_windows
from server.metrics.snapshot import LabelValues, ProcessSnapshot, read_snapshots

if TYPE_CHECKING:
    from server.metrics.serving_metrics import ServingMetrics

# Verdicts and the gate metrics (docs/metrics.md). No gate ran: `disabled` (FP32 by configuration) and
# `not_quantizable` (nothing to quantize): gate_passed absent, fp32_fallback 0. INT8 could not be shown to
# keep its accuracy: `failed` and `insufficient_evidence` (too few labelled rows): gate_passed 0,
# fp32_fallback 1, the alert's case (fix the model or add labelled rows). `no_gain` passed the accuracy
# gate but does not pay (FP32 by design): gate_passed 1, fp32_fallback 0.
NO_GATE_VERDICTS = frozenset({"disabled", "not_quantizable"})
# `live_drift`: INT8 passed at startup but its flip rate on live traffic went above the budget, and
# on_live_drift: serve_fp32 switched the model to FP32 (server/monitoring/live_check.py): the same case.
UNSHOWN_ACCURACY_VERDICTS = frozenset({"failed", "insufficient_evidence", "live_drift"})

# A process whose snapshot is older than this many flush intervals is treated as gone.
STALE_AFTER_FLUSH_INTERVALS = 5


def _sum_tables(tables: Iterable[dict[str, dict[LabelValues, Any]]]) -> dict[str, dict[LabelValues, Any]]:
    total: dict[str, dict[LabelValues, Any]] = {}
    for table in tables:
        for name, series in table.items():
            merged = total.setdefault(name, {})
            for labels, value in series.items():
                if isinstance(value, list):
                    previous = merged.get(labels)
                    merged[labels] = (
                        list(value)
                        if previous is None
                        else [a + b for a, b in zip(previous, value, strict=True)]
                    )
                else:
                    merged[labels] = merged.get(labels, 0) + value
    return total


class ServingMetricsCollector:
    """Registered by ServingMetrics into its registry; not used directly."""

    def __init__(self, metrics: "ServingMetrics") -> None:
        self._metrics = metrics

    def describe(self) -> Iterator[Metric]:
        yield from self._families({}, {}, {}, {}, {}, None, {}, {})

    def collect(self) -> Iterator[Metric]:
        local = self._metrics.snapshot()
        others: list[ProcessSnapshot] = []
        if self._metrics.shared_dir is not None:
            others = read_snapshots(self._metrics.shared_dir, exclude_pid=os.getpid())
        now = time.time()
        live = [local] + [
            s for s in others if now - s.written_at <= STALE_AFTER_FLUSH_INTERVALS * s.flush_interval_s
        ]
        everyone = [local, *others]

        histograms = _sum_tables(s.histograms for s in everyone)
        counters = _sum_tables(s.counters for s in everyone)
        gauges = _sum_tables(s.gauges for s in live)
        models = {}
        for snap in sorted(live, key=lambda s: s.written_at):  # the newest report of a model wins
            models.update(snap.models)
        readiness = [s.ready for s in live if s.ready is not None]
        # Not ready when every process that reported readiness has gone (e.g. all workers crashed).
        ever_reported = any(s.ready is not None for s in everyone)
        ready = min(readiness) if readiness else (False if ever_reported else None)

        window = self._metrics.window
        current = window.slice_index()
        quantiles = {}
        for key in {key for snap in everyone for key in snap.windows}:
            merged = merge_window(
                (s.windows[key] for s in everyone if key in s.windows), current, window.slices
            )
            quantiles[key] = window_quantiles(merged)
        live_checks = merge_live_windows([s.live_checks for s in live])
        challengers = merge_live_windows([s.challengers for s in live])
        yield from self._families(
            models, histograms, counters, gauges, quantiles, ready, live_checks, challengers
        )

    def _families(
        self,
        models: dict,
        histograms: dict,
        counters: dict,
        gauges: dict,
        quantiles: dict,
        ready: bool | None,
        live_checks: dict,
        challengers: dict,
    ) -> Iterator[Metric]:
        for spec in (m.REQUEST_DURATION, m.QUEUE_WAIT, m.INFERENCE_DURATION):
            yield _histogram(spec, histograms.get(spec.name, {}))
        yield _window_summary(histograms.get(m.REQUEST_DURATION.name, {}), quantiles)
        yield _histogram(m.BATCH_SIZE, histograms.get(m.BATCH_SIZE.name, {}))
        for spec in (m.QUEUE_DEPTH, m.INFLIGHT, m.MODEL_UNAVAILABLE, m.VERSION_KEPT_OUT):
            family = GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)
            for labels, value in sorted(gauges.get(spec.name, {}).items()):
                family.add_metric(labels, value)
            yield family
        for spec in (
            m.REJECTED,
            m.FAILED,
            m.BATCHER_FAILURES,
            m.MODEL_RELOADS,
            m.LIVE_ROWS,
            m.LIVE_DROPPED,
            m.LIVE_FLIPS,
            m.CHALLENGER_ROWS,
            m.CHALLENGER_DROPPED,
            m.CHALLENGER_DISAGREEMENTS,
        ):
            family = CounterMetricFamily(spec.name, spec.help, labels=spec.labels)
            for labels, value in sorted(counters.get(spec.name, {}).items()):
                family.add_metric(labels, value)
            yield family
        yield from _model_families(models)
        yield _histogram(m.MODEL_SCORE, histograms.get(m.MODEL_SCORE.name, {}))
        yield from _live_check_families(live_checks)
        yield from _challenger_families(challengers)
        family = GaugeMetricFamily(m.SERVER_READY.name, m.SERVER_READY.help)
        if ready is not None:
            family.add_metric([], 1.0 if ready else 0.0)
        yield family


def _histogram(spec: m.MetricSpec, rows: dict[LabelValues, list[Any]]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(spec.name, spec.help, labels=spec.labels)
    bounds = [floatToGoString(b) for b in spec.buckets] + ["+Inf"]
    for labels, row in sorted(rows.items()):
        cumulative, buckets = 0, []
        for bound, count in zip(bounds, row[:-1], strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        family.add_metric(labels, buckets, row[-1])
    return family


def _window_summary(request_rows: dict[LabelValues, list[Any]], quantiles: dict[LabelValues, dict]) -> Metric:
    spec = m.LATENCY_WINDOW
    family = SummaryMetricFamily(spec.name, spec.help, labels=spec.labels)
    totals: dict[LabelValues, list[float]] = {}
    for (model, method, _code), row in request_rows.items():
        count_sum = totals.setdefault((model, method), [0, 0.0])
        count_sum[0] += sum(row[:-1])
        count_sum[1] += row[-1]
    for key in sorted(totals.keys() | quantiles.keys()):
        labels = dict(zip(spec.labels, key, strict=True))
        for q, seconds in quantiles.get(key, dict.fromkeys(WINDOW_QUANTILES, math.nan)).items():
            family.samples.append(Sample(spec.name, {**labels, "quantile": floatToGoString(q)}, seconds))
        count, total = totals.get(key, (0, 0.0))
        family.add_metric(list(key), count, total)
    return family


def _model_families(models: dict[str, Any]) -> Iterator[Metric]:
    info = GaugeMetricFamily(m.MODEL_INFO.name, m.MODEL_INFO.help, labels=m.MODEL_INFO.labels)
    gate = GaugeMetricFamily(m.GATE_PASSED.name, m.GATE_PASSED.help, labels=m.GATE_PASSED.labels)
    fallback = GaugeMetricFamily(m.FP32_FALLBACK.name, m.FP32_FALLBACK.help, labels=m.FP32_FALLBACK.labels)
    deltas = GaugeMetricFamily(m.METRIC_DELTA.name, m.METRIC_DELTA.help, labels=m.METRIC_DELTA.labels)
    for model, facts in sorted(models.items()):
        info.add_metric([model, facts.version, facts.precision, facts.gate_verdict], 1.0)
        verdict = facts.gate_verdict.lower()
        if verdict not in NO_GATE_VERDICTS:
            gate.add_metric([model], 0.0 if verdict in UNSHOWN_ACCURACY_VERDICTS else 1.0)
        fallback.add_metric(
            [model],
            1.0 if verdict in UNSHOWN_ACCURACY_VERDICTS and facts.precision.lower() == "fp32" else 0.0,
        )
        for metric, delta in sorted(facts.metric_deltas.items()):
            deltas.add_metric([model, metric], delta)
    yield from (info, gate, fallback, deltas)


def _live_check_families(live_checks: dict) -> Iterator[Metric]:
    """The windowed INT8-vs-FP32 gauges of each (model, version), from the processes' summed windows."""
    specs = (
        m.LIVE_FLIP_BUDGET,
        m.LIVE_WINDOW_ROWS,
        m.LIVE_MEAN_DIFF,
        m.LIVE_MAX_DIFF,
        m.LIVE_PSI,
        m.LIVE_DRIFT_PSI,
    )
    families = {spec.name: GaugeMetricFamily(spec.name, spec.help, labels=spec.labels) for spec in specs}
    for key, (reference, tally) in sorted(live_checks.items()):
        figures = live_figures(tally, reference)
        values = (
            reference.flip_budget,
            figures.rows,
            figures.mean_abs_score_diff,
            figures.max_abs_score_diff,
            figures.psi,
            figures.drift_psi,
        )
        for spec, value in zip(specs, values, strict=True):
            families[spec.name].add_metric(list(key), value)
    yield from families.values()


def _challenger_families(challengers: dict) -> Iterator[Metric]:
    """The windowed champion-vs-challenger gauges of each (model, version, challenger, challenger_version),
    from the processes' summed windows. A tally's served scores are the champion's, its shadow scores the
    challenger's; flips are disagreements, the flip budget is 1 - min_agreement
    (server/monitoring/challenger.py)."""
    specs = (
        m.CHALLENGER_MIN_AGREEMENT,
        m.CHALLENGER_WINDOW_ROWS,
        m.CHALLENGER_CORRELATION,
        m.CHALLENGER_MEAN_DIFF,
        m.CHALLENGER_PSI,
    )
    families = {spec.name: GaugeMetricFamily(spec.name, spec.help, labels=spec.labels) for spec in specs}
    agreement = GaugeMetricFamily(
        m.CHALLENGER_AGREEMENT.name, m.CHALLENGER_AGREEMENT.help, labels=m.CHALLENGER_AGREEMENT.labels
    )
    for key, (reference, tally) in sorted(challengers.items()):
        figures = live_figures(tally, reference)
        values = (
            round(1.0 - reference.flip_budget, 12),  # the configured floor back, without 1 - (1 - x) noise
            figures.rows,
            tally.pearson(),
            figures.mean_abs_score_diff,
            psi_from_counts(np.array(tally.served_bins), np.array(tally.shadow_bins))
            if tally.rows
            else math.nan,
        )
        for spec, value in zip(specs, values, strict=True):
            families[spec.name].add_metric(list(key), value)
        for threshold in reference.thresholds:
            disagreements = tally.flips.get(threshold, 0)
            rate = 1.0 - disagreements / tally.rows if tally.rows else math.nan
            agreement.add_metric([*key, threshold], rate)
    yield from families.values()
    yield agreement
