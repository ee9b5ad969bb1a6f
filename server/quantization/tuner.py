"""Layer-wise fallback when the quantized model misses its budget.

Sensitivity is measured, not estimated: each round re-quantizes once per still-quantized layer with that
layer moved to FP32 (or INT16), evaluates the gate, and keeps the move that brings the model closest to the
budget (smallest total shortfall, then smallest mean score difference). Intel Neural Compressor falls back
the same way; SQNR from qdq_loss_debug was not used because it misreads layers after a folded Relu
(DESIGN.md) and says nothing about decisions at the thresholds.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from server.config.quantization_config import FallbackPrecision
from server.quantization.evaluation import AccuracyComparison
from server.quantization.gate import GateResult
from server.quantization.quantizer import QuantizationRecipe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attempt:
    recipe: QuantizationRecipe
    comparison: AccuracyComparison
    gate: GateResult

    def figures(self) -> dict[str, float]:
        c = self.comparison
        return {
            "gate_shortfall": self.gate.shortfall,
            "roc_auc_ratio": c.roc_auc_ratio,
            "max_flip_rate": c.max_flip_rate,
            "distinct_score_ratio": c.distinct_score_ratio,
            "mean_abs_score_diff": c.mean_abs_score_diff,
            "psi": c.psi,
        }


@dataclass(frozen=True)
class FallbackStep:
    layer: str
    precision: str
    reason: str
    sensitivity: dict[str, dict[str, float]]  # every candidate layer of the round -> figures with it moved

    def as_dict(self) -> dict[str, object]:
        return {
            "layer": self.layer,
            "precision": self.precision,
            "reason": self.reason,
            "sensitivity": self.sensitivity,
        }


@dataclass(frozen=True)
class TuningResult:
    final: Attempt
    steps: list[FallbackStep] = field(default_factory=list)
    stopped_because: str = ""

    @property
    def passed(self) -> bool:
        return self.final.gate.passed


def tune(
    initial: Attempt,
    layers: tuple[str, ...],
    try_recipe: Callable[[QuantizationRecipe], Attempt],
    max_layers: int,
    precision: FallbackPrecision,
    activation_of: dict[str, str],
) -> TuningResult:
    """Move the most harmful layers out of INT8 one at a time until the gate passes or the limit is hit.

    `layers` are the layers quantized in `initial`; at least one must stay quantized, otherwise the result
    would be the FP32 model under another name.
    """
    current, steps = initial, []
    remaining = [name for name in layers if name not in initial.recipe.int16_layers]
    while not current.gate.passed:
        if len(steps) >= max_layers:
            return TuningResult(current, steps, f"max_fallback_layers ({max_layers}) reached")
        if not remaining:
            return TuningResult(current, steps, "every layer already moved")
        if precision is FallbackPrecision.FP32 and len(remaining) == 1:
            return TuningResult(current, steps, "one INT8 layer left: moving it would leave no INT8 model")
        trials = {}
        for layer in remaining:
            recipe = (
                current.recipe.with_int16(layer, activation_of[layer])
                if precision is FallbackPrecision.INT16
                else current.recipe.with_fp32(layer)
            )
            trials[layer] = try_recipe(recipe)
        best = min(
            trials,
            key=lambda name: (trials[name].gate.shortfall, trials[name].comparison.mean_abs_score_diff),
        )
        before, after = current.figures(), trials[best].figures()
        reason = (
            f"most sensitive of {len(trials)}: moving it to {precision.value} took gate shortfall "
            f"{before['gate_shortfall']:.3g} -> {after['gate_shortfall']:.3g}, AUC ratio "
            f"{before['roc_auc_ratio']:.5f} -> {after['roc_auc_ratio']:.5f}, max flip rate "
            f"{before['max_flip_rate']:.4f} -> {after['max_flip_rate']:.4f}"
        )
        log.info(
            "event=layer_fallback layer=%s precision=%s shortfall=%.4g",
            best,
            precision.value,
            after["gate_shortfall"],
        )
        steps.append(FallbackStep(best, precision.value, reason, {n: t.figures() for n, t in trials.items()}))
        remaining.remove(best)
        current = trials[best]
    return TuningResult(current, steps, "within budget" if steps else "within budget without fallback")
