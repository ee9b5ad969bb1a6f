"""FP32 holdout scores (ONNX Runtime, the server's session options) and decision thresholds at alert rates.

A threshold for alert rate r is the lowest one at which at most r of the holdout scores are at or above it
(the server's rule: `probability >= threshold`). It is placed between the lowest alerted score and the next
lower distinct score, as the shortest decimal there: the same rows alert, and a score that differs from this
run in its last bits (another batch, another machine) does not change its decision.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from server.model_init.errors import ModelInitError
from server.model_io import Feeds
from server.ort_session import create_session

CHUNK_ROWS = 8192


def fp32_scores(model_path: Path, feeds: Feeds, output: str) -> np.ndarray:
    """Every row's positive-class probability (the output's last column, the server's default);
    ModelInitError if ONNX Runtime refuses the feeds or the output is not a probability."""
    try:
        session = create_session(model_path)
        rows = len(next(iter(feeds.values())))
        parts = [
            session.run([output], {k: v[i : i + CHUNK_ROWS] for k, v in feeds.items()})[0]
            for i in range(0, rows, CHUNK_ROWS)
        ]
    except Exception as exc:  # onnxruntime's errors have no common base class worth naming
        detail = str(exc).splitlines()[0] if str(exc) else ""
        raise ModelInitError(
            f"ONNX Runtime cannot run {model_path} on the data: {type(exc).__name__}: {detail}"
        ) from exc
    outputs = np.concatenate(parts)
    scores = (outputs if outputs.ndim == 1 else outputs[:, -1]).astype(np.float64)
    if not np.isfinite(scores).all() or scores.min() < 0.0 or scores.max() > 1.0:
        raise ModelInitError(
            f"output '{output}' holds values from {np.nanmin(scores):g} to {np.nanmax(scores):g}, not "
            "probabilities in [0, 1]; export the model with its Sigmoid or Softmax (or name the "
            "probability output with --output)"
        )
    return scores


@dataclass(frozen=True)
class Threshold:
    value: float
    rate: float  # the requested alert rate
    alerted: int  # holdout rows at or above `value`
    rows: int

    @property
    def share(self) -> float:
        return self.alerted / self.rows


def thresholds_at(scores: np.ndarray, rates: Sequence[float]) -> list[Threshold]:
    """One threshold per alert rate (rates in decreasing order give increasing thresholds)."""
    values, counts = np.unique(scores, return_counts=True)  # ascending
    at_or_above = np.cumsum(counts[::-1])[::-1]  # rows with a score >= values[i]
    rows = len(scores)
    found = []
    for rate in rates:
        allowed = int(np.floor(rate * rows + 1e-9))
        if allowed < 1:
            raise ModelInitError(
                f"alert rate {rate:g} of {rows:,} holdout rows is less than one row: use a larger holdout or "
                "a higher rate"
            )
        fitting = np.flatnonzero(at_or_above <= allowed)
        if not len(fitting):
            raise ModelInitError(
                f"alert rate {rate:g}: the {int(counts[-1]):,} highest holdout scores are all "
                f"{values[-1]:g}, more than {rate:g} of the rows; the scores are too coarse for this rate"
            )
        index = int(fitting[0])
        below = float(values[index - 1]) if index > 0 else 0.0
        value = _shortest_between(below, float(values[index]))
        found.append(Threshold(value, rate, int(at_or_above[index]), rows))
    return found


def _shortest_between(low: float, high: float) -> float:
    """The shortest decimal t with low < t <= high and 0 < t < 1 (high itself if none is shorter)."""
    middle = (low + high) / 2.0
    for digits in range(1, 18):
        candidate = float(f"{middle:.{digits}g}")
        if low < candidate <= high and 0.0 < candidate < 1.0:
            return candidate
    return high
