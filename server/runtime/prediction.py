"""A prediction: a model's output rows and what the business acts on (risk score, scorecard points,
decision, reason codes).

Fraud risk score (0-999), log-scaled so that the low-probability region where card fraud lives keeps
its resolution: score = round(999 * (log10(p) + 6) / 6), clipped to [0, 999]. So p <= 1e-6 -> 0,
1e-4 -> 333, 1e-3 -> 500, 1e-2 -> 666, 0.1 -> 832, 1 -> 999. Monotone non-decreasing in p.

Credit scorecard points (points-to-double-odds convention): with odds = (1 - PD) / PD (good:bad),
factor = PDO / ln 2 and offset = base_score - factor * ln(base_odds), points = offset + factor * ln(odds).
So `base_score` points at `base_odds`, and every `points_to_double_odds` points doubles the odds.

Decisions compare the probability with the config's thresholds: below `review` approve, from `review`
review, from `decline` decline (the same rule for fraud probability and probability of default).
"""

from bisect import bisect_right
from enum import IntEnum
from typing import NamedTuple

import numpy as np

from server.config.model_config import DecisionConfig, ModelConfig, ModelTask, ScorecardConfig
from server.model_io import probability_column
from server.runtime.reasons import Reason

RISK_SCORE_MAX = 999
_LOG10_FLOOR = -6.0  # probabilities at or below 1e-6 all get risk score 0
_PD_CLIP = 1e-9  # keeps the log-odds finite for PD of exactly 0 or 1


class Decision(IntEnum):
    """Same numbers as riskserve.v1.Decision."""

    APPROVE = 1
    REVIEW = 2
    DECLINE = 3


def decide(probabilities: np.ndarray, thresholds: DecisionConfig) -> np.ndarray:
    """Decision per row (values of Decision) from positive-class probabilities."""
    p = np.asarray(probabilities, dtype=np.float64)
    decisions = np.full(p.shape, Decision.APPROVE, dtype=np.int32)
    decisions[p >= thresholds.review] = Decision.REVIEW
    decisions[p >= thresholds.decline] = Decision.DECLINE
    return decisions


_APPROVE, _REVIEW, _DECLINE = int(Decision.APPROVE), int(Decision.REVIEW), int(Decision.DECLINE)


def decide_one(probability: float, thresholds: DecisionConfig) -> int:
    """`decide` for one plain float (the unary hot path; the same comparisons, so the same answer)."""
    if probability >= thresholds.decline:
        return _DECLINE
    if probability >= thresholds.review:
        return _REVIEW
    return _APPROVE


def fraud_risk_scores(probabilities: np.ndarray) -> np.ndarray:
    """0-999 risk score per row (see the module doc for the mapping)."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 10.0**_LOG10_FLOOR, 1.0)
    scaled = RISK_SCORE_MAX * (np.log10(p) - _LOG10_FLOOR) / -_LOG10_FLOOR
    return np.clip(np.round(scaled), 0, RISK_SCORE_MAX).astype(np.int32)


def fraud_risk_score_one(probability: float) -> int:
    """`fraud_risk_scores` of one plain float, without numpy: a lookup in the score's step boundaries,
    which come from `fraud_risk_scores` itself, so the answer is the same to the last bit."""
    if 0.0 <= probability <= 1.0:  # NaN and out-of-range values take the vectorized path
        return bisect_right(_RISK_SCORE_FLOORS, probability)
    return int(fraud_risk_scores(np.array([probability]))[0])


def _risk_score_floors() -> list[float]:
    """Entry s-1 is the smallest float64 p in [0, 1] with risk score >= s (s = 1..999).

    Found by bisecting every boundary at once over float64 bit patterns (ordered like the values for
    p >= 0), evaluating `fraud_risk_scores`, which is monotone non-decreasing: 63 vectorized steps."""
    targets = np.arange(1, RISK_SCORE_MAX + 1)
    low = np.zeros(RISK_SCORE_MAX, dtype=np.int64)  # bits of 0.0: score 0, below every target
    high = np.full(RISK_SCORE_MAX, np.float64(1.0).view(np.int64))  # bits of 1.0: score 999
    while (high - low > 1).any():
        middle = low + (high - low) // 2
        reached = fraud_risk_scores(middle.view(np.float64)) >= targets
        high = np.where(reached, middle, high)
        low = np.where(reached, low, middle)
    return high.view(np.float64).tolist()


def scorecard_points(probability_of_default: np.ndarray, scorecard: ScorecardConfig) -> np.ndarray:
    """Scorecard points per row; higher is safer (see the module doc for the scaling)."""
    pd_ = np.clip(np.asarray(probability_of_default, dtype=np.float64), _PD_CLIP, 1.0 - _PD_CLIP)
    factor = scorecard.points_to_double_odds / np.log(2.0)
    offset = scorecard.base_score - factor * np.log(scorecard.base_odds)
    return np.round(offset + factor * np.log((1.0 - pd_) / pd_)).astype(np.int32)


_RISK_SCORE_FLOORS = _risk_score_floors()  # ~3 ms at import


class Prediction(NamedTuple):
    """One request's rows, scored: the model output and the decision per row, in request order. (A named
    tuple: built in C, a few µs cheaper per call than a frozen dataclass.)

    `probabilities`, `scores` and `decisions` are plain Python lists (what protobuf fields take). `scores`
    is the 0-999 risk score for a fraud model, the scorecard points for a credit model, empty otherwise."""

    outputs: np.ndarray  # the model output's rows for this request, as ONNX Runtime returned them
    probabilities: list[float]
    scores: list[int]
    decisions: list[int]
    reasons: list[Reason] | None  # credit reason codes of row 0, when asked for
    queue_s: float  # from submit to the start of its batch's inference
    inference_s: float  # the ONNX Runtime call of the whole batch


def decide_rows(
    config: ModelConfig, outputs: np.ndarray, positive_column: int
) -> tuple[list[float], list[int], list[int]]:
    """(probabilities, scores, decisions) of `outputs` rows under `config`'s thresholds and scaling. Scores
    are the 0-999 risk score (fraud), scorecard points (credit), none for a generic binary model."""
    if len(outputs) == 1 and config.task is ModelTask.FRAUD and outputs.ndim == 2:  # unary: plain floats
        probability = float(outputs[0, positive_column])  # fraud_risk_score_one and decide_one, inline:
        if 0.0 <= probability <= 1.0:
            score = bisect_right(_RISK_SCORE_FLOORS, probability)
        else:
            score = fraud_risk_score_one(probability)
        thresholds = config.decision
        if probability >= thresholds.decline:
            decision = _DECLINE
        elif probability >= thresholds.review:
            decision = _REVIEW
        else:
            decision = _APPROVE
        return [probability], [score], [decision]
    probabilities = probability_column(outputs, positive_column)
    if config.task is ModelTask.CREDIT:
        assert config.scorecard is not None  # the config's own validation guarantees it
        scores = scorecard_points(probabilities, config.scorecard).tolist()
    elif config.task is ModelTask.FRAUD:
        scores = fraud_risk_scores(probabilities).tolist()
    else:
        scores = []
    return probabilities.tolist(), scores, decide(probabilities, config.decision).tolist()
