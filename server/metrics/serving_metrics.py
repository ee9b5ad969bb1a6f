"""ServingMetrics: the one object a serving process records into (hot path) and exports from.

Recording is plain Python under one lock: bucket index by `bisect`, a list increment, one HDR count with
the library's index arithmetic inlined, into the current slice found once per slice: a whole call, three
histograms, the scores and the rolling window, costs 2-4 µs, about half of what
prometheus_client's `Histogram.labels(...).observe()` takes for the three histograms alone
(benchmarks/metrics_overhead.py). A custom collector turns the state into Prometheus families on scrape,
which also lets it merge other processes' snapshots and HDR windows, something prometheus_client's
multiprocess mode cannot do.
"""

import logging
import math
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from server.metrics import catalogue as m
from server.metrics.collector import ServingMetricsCollector
from server.metrics.latency_window import (
    HDR_HIGHEST_NS,
    RollingLatencyWindow,
    new_hdr_histogram,
    reset_hdr_histogram,
)
from server.metrics.live_window import LiveRecorder
from server.metrics.snapshot import LabelValues, ProcessSnapshot, write_snapshot
from server.served_model import ModelFacts

log = logging.getLogger(__name__)

_LATENCY_BOUNDS = list(m.REQUEST_DURATION.buckets)
_BATCH_BOUNDS = list(m.BATCH_SIZE.buckets)
_SCORE_BOUNDS = np.asarray(m.MODEL_SCORE.buckets)
_SCORE_BOUND_LIST = [float(b) for b in m.MODEL_SCORE.buckets]
_PLAIN_SCORES_MAX = 8  # up to this many scores per call are recorded in plain Python


_HDR = new_hdr_histogram()  # the layout every window slice has (latency_window.new_hdr_histogram)
_HDR_MASK, _HDR_UNIT = _HDR.sub_bucket_mask, _HDR.unit_magnitude
_HDR_HALF_MAGNITUDE, _HDR_HALF = _HDR.sub_bucket_half_count_magnitude, _HDR.sub_bucket_half_count
_HDR_SHIFT = _HDR_UNIT + _HDR_HALF_MAGNITUDE + 1


def _hdr_record(histogram: Any, value: int) -> None:
    """`histogram.record_value(value)` for the window's layout, with the library's index arithmetic
    inlined (its four method calls per value are most of a call's metrics cost). 0 <= value <= highest."""
    bucket = (value | _HDR_MASK).bit_length() - _HDR_SHIFT
    index = ((bucket + 1) << _HDR_HALF_MAGNITUDE) + (value >> (bucket + _HDR_UNIT)) - _HDR_HALF
    histogram.counts[index] += 1
    histogram.total_count += 1
    if value < histogram.min_value:
        histogram.min_value = value
    if value > histogram.max_value:
        histogram.max_value = value


def _new_row(bounds_count: int) -> list[Any]:
    return [0] * (bounds_count + 1) + [0.0]  # per-bucket counts, +Inf count, sum


class _InflightGuard:
    __slots__ = ("_key", "_metrics")

    def __init__(self, metrics: "ServingMetrics", key: LabelValues) -> None:
        self._metrics, self._key = metrics, key

    def __enter__(self) -> None:
        self._metrics._add_inflight(self._key, 1)

    def __exit__(self, *exc_info: object) -> None:
        self._metrics._add_inflight(self._key, -1)


class ServingMetrics:
    """Per-process recorder for every riskserve metric; see docs/metrics.md for names and meaning.

    With `shared_dir`, a background thread writes this process's snapshot there every `flush_interval_s`
    and scrapes merge all processes' snapshots (multi-process mode). Call `close()` at shutdown.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        window_s: float = 60.0,
        sub_windows: int = 6,
        shared_dir: str | Path | None = None,
        flush_interval_s: float = 1.0,
    ) -> None:
        self.window = RollingLatencyWindow(window_s, sub_windows)
        self.shared_dir = Path(shared_dir) if shared_dir is not None else None
        self.flush_interval_s = flush_interval_s
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._request: dict[LabelValues, list[Any]] = {}
        self._queue: dict[LabelValues, list[Any]] = {}
        self._inference: dict[LabelValues, list[Any]] = {}
        self._batch: dict[LabelValues, list[Any]] = {}
        self._scores: dict[LabelValues, list[Any]] = {}
        self._rejected: dict[LabelValues, float] = {}
        self._failed: dict[LabelValues, float] = {}
        self._batcher_failures: dict[LabelValues, float] = {}
        self._queue_depth: dict[LabelValues, float] = {}
        self._inflight: dict[LabelValues, float] = {}
        self._unavailable: dict[LabelValues, float] = {}
        self._reloads: dict[LabelValues, float] = {}
        self._kept_out: dict[LabelValues, float] = {}
        self._models: dict[str, ModelFacts] = {}
        self._score_keys: dict[str, LabelValues] = {}  # model -> (model, version): the score's labels
        # shadow scoring of sampled calls (server/monitoring): INT8 against FP32, champion against challenger
        self.live_checks = LiveRecorder(m.LIVE_ROWS, m.LIVE_FLIPS, m.LIVE_DROPPED)
        self.challengers = LiveRecorder(m.CHALLENGER_ROWS, m.CHALLENGER_DISAGREEMENTS, m.CHALLENGER_DROPPED)
        self._ready: bool | None = None
        self._encoded_closed_slices: dict[tuple[LabelValues, int], str] = {}
        # (method key) -> (slice start, slice end, its HDR histogram): the current slice, found once per slice
        self._window_slices: dict[LabelValues, tuple[float, float, Any]] = {}
        if self.shared_dir is not None:
            self.shared_dir.mkdir(parents=True, exist_ok=True)
        self.registry = registry if registry is not None else CollectorRegistry()
        self.collector = ServingMetricsCollector(self)
        self.registry.register(self.collector)
        self._stop = threading.Event()
        self._maintainer = threading.Thread(target=self._maintain, name="riskserve-metrics", daemon=True)
        self._maintainer.start()

    # ---- hot path -------------------------------------------------------------------------------------

    def observe_call(
        self,
        model: str,
        method: str,
        code: Any,
        total_s: float,
        queue_s: float | None = None,
        inference_s: float | None = None,
    ) -> None:
        """Record one finished RPC. `code` is a grpc.StatusCode or its name; phases not reached are None."""
        key = (model, method, code if code.__class__ is str else code.name)
        with self._lock:
            self._record_call(key, total_s, queue_s, inference_s)

    def _record_call(
        self, key: LabelValues, total_s: float, queue_s: float | None, inference_s: float | None
    ) -> None:
        """The request histograms and the rolling window (the caller holds the lock)."""
        row = self._request.get(key) or self._request.setdefault(key, _new_row(len(_LATENCY_BOUNDS)))
        row[bisect_left(_LATENCY_BOUNDS, total_s)] += 1
        row[-1] += total_s
        if queue_s is not None:
            row = self._queue.get(key) or self._queue.setdefault(key, _new_row(len(_LATENCY_BOUNDS)))
            row[bisect_left(_LATENCY_BOUNDS, queue_s)] += 1
            row[-1] += queue_s
        if inference_s is not None:
            row = self._inference.get(key) or self._inference.setdefault(key, _new_row(len(_LATENCY_BOUNDS)))
            row[bisect_left(_LATENCY_BOUNDS, inference_s)] += 1
            row[-1] += inference_s
        window_key = key[:2]
        now = time.time()
        cached = self._window_slices.get(window_key)
        if cached is not None and cached[0] <= now < cached[1]:  # _hdr_record(seconds_to_ns(total_s)), inline
            histogram = cached[2]
            value = int(total_s * 1e9)
            value = 0 if value < 0 else HDR_HIGHEST_NS if value > HDR_HIGHEST_NS else value
            bucket = (value | _HDR_MASK).bit_length() - _HDR_SHIFT
            histogram.counts[
                ((bucket + 1) << _HDR_HALF_MAGNITUDE) + (value >> (bucket + _HDR_UNIT)) - _HDR_HALF
            ] += 1
            histogram.total_count += 1
            if value < histogram.min_value:
                histogram.min_value = value
            if value > histogram.max_value:
                histogram.max_value = value
            return
        self.window.record(window_key, total_s, now)  # a new slice (or key): the window finds it
        index = self.window.slice_index(now)
        histogram = self.window.live_slices(now).get(window_key, {}).get(index)
        if histogram is not None:
            slice_s = self.window.slice_s
            self._window_slices[window_key] = (index * slice_s, (index + 1) * slice_s, histogram)

    def observe_prediction(
        self,
        model: str,
        method: str,
        code: str,
        total_s: float,
        prediction: Any | None,
        left_flight: bool = False,
    ) -> None:
        """Record one finished RPC and, when it scored rows, its phases and its scores (a
        server.runtime.prediction.Prediction: queue_s, inference_s, probabilities). One lock hold.
        `left_flight`: the call also leaves the in-flight gauge (`inflight_add(model, method, -1)`)."""
        key = (model, method, code)
        if left_flight:
            inflight = self._inflight
            inflight[key[:2]] = inflight.get(key[:2], 0) - 1
        if prediction is None:
            with self._lock:
                self._record_call(key, total_s, None, None)
            return
        probabilities = prediction.probabilities
        if len(probabilities) > _PLAIN_SCORES_MAX:
            with self._lock:
                self._record_call(key, total_s, prediction.queue_s, prediction.inference_s)
            self.observe_scores(model, probabilities)
            return
        with self._lock:
            self._record_call(key, total_s, prediction.queue_s, prediction.inference_s)
            scores = self._scores
            score_key = self._score_keys.get(model) or (model, "unknown")
            row = scores.get(score_key) or scores.setdefault(score_key, _new_row(len(_SCORE_BOUNDS)))
            for value in probabilities:
                row[bisect_left(_SCORE_BOUND_LIST, value)] += 1
                row[-1] += value

    def batch_observer(self, model: str) -> Callable[[int, int], None]:
        """What a model's batcher calls before each batch: (batch rows, rows still queued)."""
        key = (model,)

        def on_batch(rows: int, queued: int) -> None:
            with self._lock:
                row = self._batch.get(key) or self._batch.setdefault(key, _new_row(len(_BATCH_BOUNDS)))
                row[bisect_left(_BATCH_BOUNDS, rows)] += 1
                row[-1] += rows
                self._queue_depth[key] = queued

        return on_batch

    def observe_batch(self, model: str, size: int) -> None:
        """Record the row count of one ONNX Runtime call."""
        key = (model,)
        with self._lock:
            row = self._batch.get(key) or self._batch.setdefault(key, _new_row(len(_BATCH_BOUNDS)))
            row[bisect_left(_BATCH_BOUNDS, size)] += 1
            row[-1] += size

    def inflight(self, model: str, method: str) -> _InflightGuard:
        """Context manager counting an RPC as in flight while its body runs."""
        return _InflightGuard(self, (model, method))

    def inflight_add(self, model: str, method: str, delta: int) -> None:
        """Count an RPC in (+1) or out (-1) of flight: what `inflight` does, without a guard object. Only
        the event loop's thread changes the gauge, and a snapshot copies the dict in one step under the GIL,
        so no lock is taken."""
        key = (model, method)
        inflight = self._inflight
        inflight[key] = inflight.get(key, 0) + delta

    def _add_inflight(self, key: LabelValues, delta: int) -> None:
        with self._lock:
            self._inflight[key] = self._inflight.get(key, 0) + delta

    def set_queue_depth(self, model: str, rows: int) -> None:
        with self._lock:
            self._queue_depth[(model,)] = rows

    def count_rejected(self, model: str, reason: str) -> None:
        """A request refused before scoring: overload, deadline, invalid_argument, draining, ..."""
        with self._lock:
            self._rejected[(model, reason)] = self._rejected.get((model, reason), 0) + 1

    def count_failed(self, model: str, reason: str) -> None:
        """An accepted request that failed while being scored."""
        with self._lock:
            self._failed[(model, reason)] = self._failed.get((model, reason), 0) + 1

    def count_batcher_failure(self, model: str, action: str) -> None:
        """A model's batcher worker ended on a fault; `action` restart or give_up."""
        with self._lock:
            key = (model, action)
            self._batcher_failures[key] = self._batcher_failures.get(key, 0) + 1

    def observe_scores(self, model: str, probabilities: Sequence[float] | np.ndarray) -> None:
        """Add positive-class probabilities to the model's score distribution."""
        key = self._score_keys.get(model) or (model, "unknown")
        if len(probabilities) <= _PLAIN_SCORES_MAX:  # a few plain floats: bisect, no numpy round trip
            with self._lock:
                row = self._scores.get(key) or self._scores.setdefault(key, _new_row(len(_SCORE_BOUNDS)))
                for value in probabilities:
                    row[bisect_left(_SCORE_BOUND_LIST, value)] += 1
                    row[-1] += value
            return
        values = np.asarray(probabilities, dtype=np.float64).ravel()
        if values.size == 0:
            return
        per_bucket = np.bincount(
            np.searchsorted(_SCORE_BOUNDS, values, side="left"), minlength=len(_SCORE_BOUNDS) + 1
        )
        total = float(values.sum())
        with self._lock:
            row = self._scores.get(key) or self._scores.setdefault(key, _new_row(len(_SCORE_BOUNDS)))
            for index in np.flatnonzero(per_bucket):
                row[index] += int(per_bucket[index])
            row[-1] += total

    # ---- model and server state -----------------------------------------------------------------------

    def set_model_facts(self, facts: ModelFacts) -> None:
        """What is being served for `facts.name`: version, precision, gate verdict, metric deltas (only the
        finite ones: a NaN delta, e.g. KS of a one-class holdout, is not a value Prometheus can alert on)."""
        finite = {str(k): float(v) for k, v in facts.metric_deltas.items() if math.isfinite(float(v))}
        with self._lock:
            self._models[facts.name] = replace(facts, metric_deltas=finite)
            self._score_keys[facts.name] = (facts.name, facts.version)

    def set_model_unavailable(self, model: str, reason: str) -> None:
        """`model` is configured but cannot be served in this process, because of `reason` (a short kind)."""
        with self._lock:
            self._unavailable[(model, reason)] = 1.0

    def count_reload(self, model: str, outcome: str, version: str, reason: str | None = None) -> None:
        """A reload tried `version` of `model`: outcome swapped (it serves; the model is available again)
        or kept_out, because of `reason` (a short kind)."""
        with self._lock:
            self._reloads[(model, outcome)] = self._reloads.get((model, outcome), 0) + 1
            for key in [k for k in self._kept_out if k[0] == model]:
                del self._kept_out[key]
            if outcome == "swapped":
                for key in [k for k in self._unavailable if k[0] == model]:
                    del self._unavailable[key]
            else:
                self._kept_out[(model, version, reason or "internal")] = 1.0

    def set_ready(self, ready: bool) -> None:
        """Mirror grpc.health.v1: True once SERVING, False while starting or draining."""
        with self._lock:
            self._ready = bool(ready)

    # ---- snapshots --------------------------------------------------------------------------------------

    def snapshot(self, for_disk: bool = False) -> ProcessSnapshot:
        """A consistent copy of this process's state. `for_disk` encodes window slices for the shared dir;
        otherwise each key's live slices are merged into one HDR histogram at the current slice index."""
        with self._lock:
            snap = ProcessSnapshot(
                pid=self.pid,
                written_at=time.time(),
                flush_interval_s=self.flush_interval_s,
                histograms={
                    m.REQUEST_DURATION.name: {k: list(v) for k, v in self._request.items()},
                    m.QUEUE_WAIT.name: {k: list(v) for k, v in self._queue.items()},
                    m.INFERENCE_DURATION.name: {k: list(v) for k, v in self._inference.items()},
                    m.BATCH_SIZE.name: {k: list(v) for k, v in self._batch.items()},
                    m.MODEL_SCORE.name: {k: list(v) for k, v in self._scores.items()},
                },
                counters={
                    m.REJECTED.name: dict(self._rejected),
                    m.FAILED.name: dict(self._failed),
                    m.BATCHER_FAILURES.name: dict(self._batcher_failures),
                    m.MODEL_RELOADS.name: dict(self._reloads),
                },
                gauges={
                    m.QUEUE_DEPTH.name: dict(self._queue_depth),
                    m.INFLIGHT.name: dict(self._inflight),
                    m.MODEL_UNAVAILABLE.name: dict(self._unavailable),
                    m.VERSION_KEPT_OUT.name: dict(self._kept_out),
                },
                models=dict(self._models),
                ready=self._ready,
            )
            now = snap.written_at
            keys = list(self.window.live_slices(now))
        live_counters, snap.live_checks = self.live_checks.snapshot(now)
        challenger_counters, snap.challengers = self.challengers.snapshot(now)
        snap.counters.update(live_counters | challenger_counters)
        snap.windows = self._encoded_windows(keys, now) if for_disk else self._merged_windows(keys, now)
        return snap

    def _merged_windows(self, keys: list[LabelValues], now: float) -> dict[LabelValues, dict[int, Any]]:
        current = self.window.slice_index(now)
        merged = {}
        for key in keys:  # one short lock hold per key, so a scrape never stalls the hot path for long
            total = new_hdr_histogram()
            with self._lock:
                for histogram in self.window.live_slices(now).get(key, {}).values():
                    total.add(histogram)
            merged[key] = {current: total}
        return merged

    def _encoded_windows(self, keys: list[LabelValues], now: float) -> dict[LabelValues, dict[int, Any]]:
        current = self.window.slice_index(now)
        encoded: dict[LabelValues, dict[int, Any]] = {}
        for key in keys:
            with self._lock:
                slices = dict(self.window.live_slices(now).get(key, {}))
            for index, histogram in slices.items():
                cache_key = (key, index)
                if index < current and cache_key in self._encoded_closed_slices:
                    text = self._encoded_closed_slices[cache_key]
                else:
                    with self._lock:
                        if self.window.slice_at(key, index) is not histogram:
                            continue  # expired (and recycled) since the copy above
                        text = histogram.encode().decode("ascii")  # base64 bytes -> JSON-friendly str
                    if index < current:  # a closed slice no longer changes: encode it once
                        self._encoded_closed_slices[cache_key] = text
                encoded.setdefault(key, {})[index] = text
        oldest = current - self.window.slices
        for stale in [k for k in self._encoded_closed_slices if k[1] <= oldest]:
            del self._encoded_closed_slices[stale]
        return encoded

    def flush(self) -> Path | None:
        """Write this process's snapshot to the shared dir now (multi-process mode only)."""
        if self.shared_dir is None:
            return None
        with self._flush_lock:  # snapshot and rename in one step, so an older snapshot never lands last
            return write_snapshot(self.shared_dir, self.snapshot(for_disk=True))

    # ---- background upkeep ------------------------------------------------------------------------------

    def _maintain(self) -> None:
        period = min(self.flush_interval_s, self.window.slice_s / 2)
        last_flush = -math.inf
        while True:
            try:
                self._prepare_next_slices()
                if (
                    self.shared_dir is not None
                    and time.monotonic() - last_flush >= self.flush_interval_s * 0.99
                ):
                    self.flush()
                    last_flush = time.monotonic()
            except Exception:  # keep exporting; one bad cycle must not kill the thread
                log.exception("event=metrics_maintenance_failed")
            if self._stop.wait(period):
                return

    def _prepare_next_slices(self, now: float | None = None) -> None:
        """Ahead of each slice boundary, off the hot path: every key's next slice, made of an expired
        slice (reset) where there is one, newly allocated otherwise; so a steady key set allocates none."""
        now = time.time() if now is None else now
        with self._lock:
            spare = self.window.drop_expired(now)
            missing = self.window.missing_next_slices(now)
        for histogram in spare:  # outside the lock: out of the window, no reader uses them any more
            reset_hdr_histogram(histogram)
        fresh = [(key, index, spare.pop() if spare else new_hdr_histogram()) for key, index in missing]
        with self._lock:
            for key, index, histogram in fresh:
                self.window.install(key, index, histogram)

    def close(self) -> None:
        """Stop the background thread and, in multi-process mode, write a final snapshot. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._maintainer.join(timeout=5)
        if self.shared_dir is not None:
            self.flush()
