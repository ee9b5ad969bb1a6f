"""The domain scoring core: validated features -> batched inference -> decisions.

`FraudScorer` and `CreditScorer` wrap one ModelRuntime each. The Open Inference Protocol door calls the
same ModelRuntime.infer with the same FeatureSchema validation, so both doors share one path.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from server.runtime.decisions import (
    decide,
    decide_one,
    fraud_risk_score_one,
    fraud_risk_scores,
    scorecard_points,
)
from server.runtime.features import FieldNamer
from server.runtime.model_runtime import ModelRuntime
from server.runtime.reasons import Reason, counterfactual_rows, top_reasons

POSITIVE_CLASS = 1


@dataclass(frozen=True)
class Timing:
    queue_s: float
    inference_s: float


@dataclass(frozen=True)
class FraudScores:
    """Per-row results, in request order, as plain Python numbers."""

    probabilities: list[float]
    risk_scores: list[int]  # 0-999
    decisions: list[int]  # values of Decision
    timing: Timing


@dataclass(frozen=True)
class CreditResult:
    probability_of_default: float
    score: int
    decision: int
    reasons: list[Reason]
    timing: Timing


class FraudScorer:
    def __init__(self, runtime: ModelRuntime) -> None:
        self.runtime = runtime

    async def score(
        self, columns: Mapping[str, Sequence], rows: int, namer: FieldNamer, deadline: float | None
    ) -> FraudScores:
        runtime = self.runtime
        feeds = runtime.schema.validate(columns, rows, namer)
        result = await runtime.infer(feeds, rows, deadline)
        timing = Timing(result.queue_s, result.inference_s)
        if rows == 1:  # the unary hot path: plain floats, no numpy round trips (same numbers)
            probability = float(result.outputs[0, POSITIVE_CLASS])
            return FraudScores(
                [probability],
                [fraud_risk_score_one(probability)],
                [decide_one(probability, runtime.config.decision)],
                timing,
            )
        probabilities = result.outputs[:, POSITIVE_CLASS].astype(np.float64)
        return FraudScores(
            probabilities.tolist(),
            fraud_risk_scores(probabilities).tolist(),
            decide(probabilities, runtime.config.decision).tolist(),
            timing,
        )


class CreditScorer:
    def __init__(self, runtime: ModelRuntime) -> None:
        self.runtime = runtime

    async def assess(
        self, columns: Mapping[str, Sequence], namer: FieldNamer, deadline: float | None
    ) -> CreditResult:
        runtime = self.runtime
        application = runtime.schema.validate(columns, 1, namer)
        feeds, changed = counterfactual_rows(application, runtime.reference)
        result = await runtime.infer(feeds, len(changed) + 1, deadline)
        pd_rows = result.outputs[:, POSITIVE_CLASS].astype(np.float64)
        pd_ = pd_rows[:1]
        return CreditResult(
            float(pd_[0]),
            int(scorecard_points(pd_, runtime.config.scorecard)[0]),
            int(decide(pd_, runtime.config.decision)[0]),
            top_reasons(pd_rows, changed, runtime.config),
            Timing(result.queue_s, result.inference_s),
        )
