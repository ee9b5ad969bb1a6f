"""INT8 watched against FP32 on live traffic: a sample of an INT8-served model's calls is scored again by its
FP32 original, on a thread of its own, and compared as the startup gate compares them.

Only a sampled call reaches this module (ModelRuntime.predict counts calls down to the next sample): `offer`
copies the call's feature tensors (no ids: the feeds only) and its INT8 probabilities into a bounded queue,
or drops and counts them when the queue is full. The thread scores them with the FP32 runtime and records a
LiveTally (server/metrics/live_window.py). Answers never change, and no caller waits for FP32. With
`on_live_drift: serve_fp32`, once the window's flip rate is above the gate's budget with 95 % confidence,
`on_drift` asks the server to serve the FP32 runtime instead (server/app/serving.py).
"""

import contextlib
import logging
import math
import os
import random
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from server.config.settings import LiveDriftPolicy, ServerSettings
from server.evaluation.score_comparison import binned_counts, quantile_edges
from server.metrics.live_window import LiveCheckRecorder, LiveReference, LiveTally, flips_above_budget
from server.model_data import DataKind, feeds_from_frame, input_frame
from server.model_io import SCORING_CHUNK_ROWS, probability_column
from server.runtime.batcher import Feeds
from server.runtime.model_runtime import ModelRuntime
from server.served_model import GateVerdict, Precision, PreparedModel

log = logging.getLogger(__name__)

PSI_BINS = 10
NOT_SAMPLING = -1  # ModelRuntime's countdown never reaches 0 from here: no further call is sampled
THREAD_NICENESS = 10  # the FP32 thread yields the cores to the serving threads

DriftHandler = Callable[[str, float, int], None]  # (threshold, window flip rate, window rows)


def holdout_reference(runtime: ModelRuntime) -> LiveReference:
    """The served model's scores on its holdout file, as PSI bins; its thresholds and flip budget."""
    config = runtime.config
    feeds = feeds_from_frame(config, input_frame(config, DataKind.HOLDOUT))
    rows = len(next(iter(feeds.values())))
    scores = np.concatenate(
        [
            probability_column(
                runtime.run_batch({k: v[i : i + SCORING_CHUNK_ROWS] for k, v in feeds.items()}),
                runtime.positive_column,
            )
            for i in range(0, rows, SCORING_CHUNK_ROWS)
        ]
    )
    edges = quantile_edges(scores, PSI_BINS)
    return LiveReference(
        thresholds=config.decision.thresholds(),
        flip_budget=config.quantization.budget.max_decision_flip_rate,
        inner_edges=tuple(float(e) for e in edges[1:-1]),
        holdout_bins=tuple(int(c) for c in binned_counts(scores, edges)),
    )


def fp32_runtime(runtime: ModelRuntime, settings: ServerSettings) -> ModelRuntime:
    """The model's FP32 original as a loaded, warmed runtime: the live check's scorer, and what is served
    if on_live_drift switches (its facts already say so)."""
    prepared = runtime.prepared
    facts = replace(prepared.facts, precision=Precision.FP32, gate_verdict=GateVerdict.LIVE_DRIFT)
    fp32 = PreparedModel(facts, runtime.config.onnx_path, prepared.report_path, prepared.report)
    loaded = ModelRuntime.load(runtime.config, fp32, settings)
    loaded.warm_up()
    return loaded


class LiveCheck:
    """One INT8-served model's FP32 shadow. `load` (blocking), then `start`; `runtime.watch(check)`."""

    def __init__(
        self, int8: ModelRuntime, fp32: ModelRuntime, reference: LiveReference, settings: ServerSettings
    ) -> None:
        self.int8, self.fp32, self.reference = int8, fp32, reference
        self.key = (int8.facts.name, int8.facts.version)
        self.sample_rate = settings.live_check_sample_rate
        self.window_s = settings.live_check_window_s
        self.policy = settings.on_live_drift
        self.min_rows = settings.live_check_min_rows
        self._max_rows = settings.live_check_queue_rows
        self._random = random.Random()
        self._queue: deque[tuple[Feeds, np.ndarray]] = deque()
        self._queued_rows = 0
        self._wake = threading.Condition()
        self._stopping = False
        self._drifted = False  # on_drift was called: stop sampling
        self._recorder: LiveCheckRecorder | None = None
        self._on_drift: DriftHandler | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def load(cls, runtime: ModelRuntime, settings: ServerSettings) -> "LiveCheck":
        """The FP32 runtime and the holdout's score bins for INT8-served `runtime` (blocking)."""
        return cls(runtime, fp32_runtime(runtime, settings), holdout_reference(runtime), settings)

    def start(self, recorder: LiveCheckRecorder, on_drift: DriftHandler | None = None) -> None:
        self._recorder, self._on_drift = recorder, on_drift
        recorder.register(self.key, self.reference, self.window_s)
        self._thread = threading.Thread(target=self._work, name=f"riskserve-live-{self.key[0]}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout_s)

    # ---- the serving side: sampled calls only ----------------------------------------------------------

    def next_gap(self) -> int:
        """Calls until the next sampled one: geometric, so every call is sampled with the rate's chance
        (no period for traffic to beat against)."""
        if self._drifted or self._stopping or self.sample_rate <= 0.0:
            return NOT_SAMPLING
        if self.sample_rate >= 1.0:
            return 1
        return 1 + int(math.log(1.0 - self._random.random()) / math.log(1.0 - self.sample_rate))

    def offer(self, feeds: Feeds, outputs: np.ndarray) -> int:
        """A sampled call's first len(outputs) feed rows and its INT8 outputs: queue a copy for FP32, or
        drop and count it when the queue has no room. Returns the calls until the next sample."""
        rows = len(outputs)
        queued = False
        with self._wake:
            if self._queued_rows + rows <= self._max_rows:
                copied = {name: column[:rows].copy() for name, column in feeds.items()}
                self._queue.append((copied, probability_column(outputs, self.int8.positive_column)))
                self._queued_rows += rows
                queued = True
                self._wake.notify()
        if not queued and self._recorder is not None:
            self._recorder.count_dropped(self.key, rows)
        return self.next_gap()

    # ---- the FP32 thread -------------------------------------------------------------------------------

    def _work(self) -> None:
        with contextlib.suppress(OSError):  # not permitted: the thread keeps the process's priority
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), THREAD_NICENESS)
        while True:
            with self._wake:
                while not self._queue and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                batch = list(self._queue)
                self._queue.clear()
                self._queued_rows = 0
            try:
                self._compare(batch)
            except Exception:  # keep watching; one bad batch must not end the thread
                log.exception("event=live_check_failed model=%s", self.key[0])

    def _compare(self, batch: list[tuple[Feeds, np.ndarray]]) -> None:
        feeds = {name: np.concatenate([f[name] for f, _ in batch]) for name in batch[0][0]}
        int8 = np.concatenate([scores for _, scores in batch])
        fp32 = probability_column(self.fp32.run_batch(feeds), self.fp32.positive_column)
        assert self._recorder is not None
        window = self._recorder.record(self.key, LiveTally.of(int8, fp32, self.reference))
        if self.policy is LiveDriftPolicy.SERVE_FP32 and not self._drifted:
            above = flips_above_budget(window, self.reference, self.min_rows)
            if above is not None and self._on_drift is not None:
                self._drifted = True
                self._on_drift(above[0], above[1], window.rows)
