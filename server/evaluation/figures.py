"""The figures a holdout comparison produces, as typed records: one score vector's (RiskMetrics) and INT8's
against FP32's (AccuracyComparison, the quantization report's `accuracy`).

Types only (pydantic, no numpy, sklearn or ONNX Runtime), so that reading a cached report at a warm start
imports none of what computes them (server/evaluation/risk_metrics.py, server/quantization/evaluation.py).
"""

from pydantic import BaseModel, ConfigDict


class RiskMetrics(BaseModel):
    """One score vector's figures; typed in the quantization report as they are computed (JSON in and out:
    unknown keys are errors, non-finite floats stay NaN/Infinity)."""

    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")

    rows: int
    positives: int
    roc_auc: float
    pr_auc: float
    ks: float
    brier: float
    recall_at_1pct_fpr: float
    distinct_scores: int
    share_scores_exactly_0_or_1: float

    def as_dict(self) -> dict[str, float | int]:
        return self.model_dump()


class AccuracyComparison(BaseModel):
    """The INT8 scores against FP32's on the same holdout rows; the quantization report's `accuracy`."""

    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")

    fp32: RiskMetrics
    int8: RiskMetrics
    roc_auc_delta: float  # INT8 - FP32
    roc_auc_ratio: float  # INT8 / FP32
    pr_auc_delta: float
    ks_delta: float
    brier_delta: float
    mean_abs_score_diff: float
    max_abs_score_diff: float
    psi: float  # of the INT8 score distribution against FP32's
    distinct_score_ratio: float  # distinct INT8 scores / distinct FP32 scores
    flip_rates: dict[str, float]  # threshold name -> share of rows whose decision changes
    max_flip_rate: float  # the largest of flip_rates (0 without thresholds)

    def metric_deltas(self) -> dict[str, float]:
        """The flat figures exported as metrics and metadata: every scalar here, a flip rate per threshold."""
        figures = self.model_dump(exclude={"fp32", "int8", "flip_rates"})
        return {**figures, **{f"flip_rate_{name}": rate for name, rate in self.flip_rates.items()}}
