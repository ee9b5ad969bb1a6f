"""INT8 watched against FP32 on live traffic: a sample of an INT8-served model's calls is scored again by its
FP32 original, on a thread of its own, and compared as the startup gate compares them.

The sampling, the bounded queue and the thread are the shadow-scoring core (server/monitoring/shadow.py);
this module gives it the FP32 runtime and records what each scored batch showed as a LiveTally
(server/metrics/live_window.py). Answers never change, and no caller waits for FP32. With
`on_live_drift: serve_fp32`, once the window's flip rate is above the gate's budget with 95 % confidence,
`on_drift` asks the server to serve the FP32 runtime instead (server/app/serving.py).
"""

from collections.abc import Callable
from dataclasses import replace
from weakref import WeakKeyDictionary

import numpy as np

from server.config.settings import LiveDriftPolicy, ServerSettings
from server.evaluation.score_comparison import binned_counts, quantile_edges
from server.metrics.live_window import LiveRecorder, LiveReference, LiveTally, flips_above_budget
from server.model_data import DataKind, feeds_from_frame, input_frame
from server.model_io import SCORING_CHUNK_ROWS, probability_column
from server.monitoring.shadow import ShadowScorer
from server.runtime.model_runtime import ModelRuntime
from server.served_model import GateVerdict, Precision, PreparedModel

PSI_BINS = 10

DriftHandler = Callable[[str, float, int], None]  # (threshold, window flip rate, window rows)


ScoreBins = tuple[tuple[float, ...], tuple[int, ...]]  # inner edges, holdout rows in each bin
_holdout_bins: "WeakKeyDictionary[ModelRuntime, ScoreBins]" = WeakKeyDictionary()


def holdout_reference(runtime: ModelRuntime, flip_budget: float | None = None) -> LiveReference:
    """The served model's scores on its holdout file, as PSI bins; its thresholds and `flip_budget` (by
    default the gate's). The holdout is scored once per runtime: its live check and a challenger check
    share the bins."""
    config = runtime.config
    bins = _holdout_bins.get(runtime)
    if bins is None:
        bins = _holdout_bins[runtime] = _score_bins(runtime)
    return LiveReference(
        thresholds=config.decision.thresholds(),
        flip_budget=config.quantization.budget.max_decision_flip_rate if flip_budget is None else flip_budget,
        inner_edges=bins[0],
        holdout_bins=bins[1],
    )


def _score_bins(runtime: ModelRuntime) -> ScoreBins:
    """PSI_BINS holdout score-quantile bins of `runtime`: inner edges and the holdout rows in each."""
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
    return tuple(float(e) for e in edges[1:-1]), tuple(int(c) for c in binned_counts(scores, edges))


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
    """One INT8-served model's FP32 shadow. `load` (blocking), then `start`; its `scorer` joins the
    runtime's Shadows."""

    def __init__(
        self, int8: ModelRuntime, fp32: ModelRuntime, reference: LiveReference, settings: ServerSettings
    ) -> None:
        self.int8, self.fp32, self.reference = int8, fp32, reference
        self.key = (int8.facts.name, int8.facts.version)
        self.window_s = settings.live_check_window_s
        self.policy = settings.on_live_drift
        self.min_rows = settings.live_check_min_rows
        self.scorer = ShadowScorer(
            int8, fp32, settings.live_check_sample_rate, settings.live_check_queue_rows, f"live-{self.key[0]}"
        )
        self._recorder: LiveRecorder | None = None
        self._on_drift: DriftHandler | None = None

    @property
    def sample_rate(self) -> float:
        return self.scorer.sample_rate

    @classmethod
    def load(cls, runtime: ModelRuntime, settings: ServerSettings) -> "LiveCheck":
        """The FP32 runtime and the holdout's score bins for INT8-served `runtime` (blocking)."""
        return cls(runtime, fp32_runtime(runtime, settings), holdout_reference(runtime), settings)

    def start(self, recorder: LiveRecorder, on_drift: DriftHandler | None = None) -> None:
        self._recorder, self._on_drift = recorder, on_drift
        recorder.register(self.key, self.reference, self.window_s)
        self.scorer.start(self._compare, lambda rows: recorder.count_dropped(self.key, rows))

    def stop(self, timeout_s: float = 5.0) -> None:
        self.scorer.stop(timeout_s)

    def _compare(self, int8: np.ndarray, fp32: np.ndarray) -> None:
        assert self._recorder is not None
        window = self._recorder.record(self.key, LiveTally.of(int8, fp32, self.reference))
        if self.policy is LiveDriftPolicy.SERVE_FP32 and not self.scorer.paused:
            above = flips_above_budget(window, self.reference, self.min_rows)
            if above is not None and self._on_drift is not None:
                self.scorer.paused = True  # on_drift was called: stop sampling
                self._on_drift(above[0], above[1], window.rows)
