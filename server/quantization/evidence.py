"""Is the gate's part of the holdout big enough to show the budget? Paired intervals against the budget.

Insufficient when the gate's rows hold fewer than `min_positives` positives, or when a gated figure's 95 %
interval is wider than the budget allows it to move: the ROC-AUC difference's (DeLong) wider than
(1 - min_auc_ratio) x FP32's ROC-AUC, a flip rate's (Wilson) wider than max_decision_flip_rate. The rows
needed are found per problem (positives in proportion; the AUC interval narrows as 1/sqrt(rows); the
Wilson interval is solved for at the observed flip rate) and given as labelled holdout rows at this split.
"""

import math
from dataclasses import dataclass

import numpy as np

from server.config.quantization_config import AccuracyBudget
from server.evaluation.paired_intervals import (
    Interval,
    flip_rate_interval,
    pr_auc_difference,
    roc_auc_difference,
)
from server.evaluation.score_comparison import decision_flips


@dataclass(frozen=True)
class Evidence:
    rows: int  # the gate's rows
    positives: int
    roc_auc_delta: Interval  # INT8 - FP32
    pr_auc_delta: Interval
    flip_rates: dict[str, Interval]  # threshold name -> flip rate
    problems: tuple[str, ...]  # why the evidence is insufficient; empty when sufficient
    gate_rows_needed: int  # rows the gate's part needs for every interval and the positives
    more_holdout_rows_needed: int  # labelled rows to add to the holdout file (at this split), 0 if none

    @property
    def sufficient(self) -> bool:
        return not self.problems


def weigh_evidence(
    labels: np.ndarray,
    fp32: np.ndarray,
    int8: np.ndarray,
    thresholds: dict[str, float],
    budget: AccuracyBudget,
    min_positives: int,
    holdout_rows: int,
    gate_fraction: float,
) -> Evidence:
    """The paired intervals on the gate's rows and whether they can show `budget`."""
    rows, positives = int(labels.size), int(labels.sum())
    auc = roc_auc_difference(labels, fp32, int8)
    flips = {
        name: flip_rate_interval(decision_flips(fp32, int8, t), rows)
        for name, t in thresholds.items()
    }
    problems, needed = [], [rows]
    if positives < min_positives:
        problems.append(f"{positives} positives in the gate's {rows} rows, at least {min_positives} needed")
        needed.append(math.ceil(rows * min_positives / max(positives, 1)))
    slack = (1.0 - budget.min_auc_ratio) * _auc(labels, fp32)
    if slack > 0 and auc.width > slack:
        problems.append(
            f"ROC-AUC difference 95 % interval [{auc.low:+.5f}, {auc.high:+.5f}] is {auc.width:.5f} wide, "
            f"wider than the budget's {slack:.5f}"
        )
        needed.append(math.ceil(rows * (auc.width / slack) ** 2))
    limit = budget.max_decision_flip_rate
    for name, interval in flips.items():
        if limit > 0 and interval.width > limit:
            problems.append(
                f"flip rate @ {name} 95 % interval [{interval.low:.3%}, {interval.high:.3%}] is wider than "
                f"the budget's {limit:.2%}"
            )
            needed.append(_rows_for_width(interval.estimate, limit))
    gate_rows_needed = max(needed)
    more = max(0, math.ceil(gate_rows_needed / gate_fraction) - holdout_rows) if problems else 0
    return Evidence(
        rows,
        positives,
        auc,
        pr_auc_difference(labels, fp32, int8),
        flips,
        tuple(problems),
        gate_rows_needed,
        more,
    )


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def _rows_for_width(rate: float, limit: float) -> int:
    """The fewest rows whose Wilson interval at `rate` is at most `limit` wide."""

    def width(rows: int) -> float:
        return flip_rate_interval(round(rate * rows), rows).width

    high = 1
    while width(high) > limit:
        high *= 2
    low = high // 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if width(middle) <= limit else (middle, high)
    return high
