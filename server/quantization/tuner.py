"""Layer-wise fallback when the quantized model misses its budget.

Sensitivity is measured, not estimated: each round re-quantizes once per still-quantized layer with that
layer moved to FP32 (or INT16), plus once with the FP32 output head's *input* left float (no Q/DQ before
the head, every layer still INT8; see float_input.py), evaluates the gate, and keeps the move that brings
the model closest to the budget: smallest total shortfall, then the fewest weights left in FP32 (the move
that keeps the most of the model in INT8: the head-input move and INT16 moves leave none), then the
smallest mean score difference. Intel Neural Compressor falls back
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
    model_bytes: int = 0
    fp32_weights: int = 0  # weights (and biases) of the quantizable layers this recipe keeps in FP32

    def figures(self) -> dict[str, float]:
        c = self.comparison
        return {
            "gate_shortfall": self.gate.shortfall,
            "model_bytes": self.model_bytes,
            "fp32_weights": self.fp32_weights,
            "roc_auc_ratio": c.roc_auc_ratio,
            "max_flip_rate": c.max_flip_rate,
            "distinct_score_ratio": c.distinct_score_ratio,
            "mean_abs_score_diff": c.mean_abs_score_diff,
            "psi": c.psi,
        }


@dataclass(frozen=True)
class FallbackStep:
    layer: str  # a layer name, or head_input_key(head) for the head-input move
    precision: str
    reason: str
    sensitivity: dict[str, dict[str, float]]  # every candidate of the round -> figures with it applied
    kind: str = "layer"  # "layer": the layer left INT8; "head_input": the head's input left float


@dataclass(frozen=True)
class TuningResult:
    final: Attempt
    steps: list[FallbackStep] = field(default_factory=list)
    stopped_because: str = ""

    @property
    def passed(self) -> bool:
        return self.final.gate.passed


def head_input_key(head: str) -> str:
    """The tuner's name for the move that leaves `head`'s activation input float."""
    return f"input of {head}"


def _rank(attempt: Attempt) -> tuple[float, int, float]:
    return (attempt.gate.shortfall, attempt.fp32_weights, attempt.comparison.mean_abs_score_diff)


def tune(
    initial: Attempt,
    layers: tuple[str, ...],
    try_recipe: Callable[[QuantizationRecipe], Attempt],
    max_layers: int,
    precision: FallbackPrecision,
    activation_of: dict[str, str],
    head: str | None = None,
) -> TuningResult:
    """Move the most harmful layers out of INT8 one at a time until the gate passes or the limit is hit.

    `layers` are the layers quantized in `initial`; at least one must stay quantized, otherwise the result
    would be the FP32 model under another name. `head`: the FP32 output head whose input may be left float
    (None: that move is not offered, e.g. dynamic mode or no protected head). Every move counts against
    `max_layers`.
    """
    current, steps = initial, []
    remaining = [name for name in layers if name not in initial.recipe.int16_layers]
    while not current.gate.passed:
        if len(steps) >= max_layers:
            return TuningResult(current, steps, f"max_fallback_layers ({max_layers}) reached")
        head_move = head is not None and current.recipe.float_input_layer is None
        layer_moves = bool(remaining) and not (precision is FallbackPrecision.FP32 and len(remaining) == 1)
        if not layer_moves and not head_move:
            if not remaining:
                return TuningResult(current, steps, "every layer already moved")
            return TuningResult(current, steps, "one INT8 layer left: moving it would leave no INT8 model")
        trials = {}
        for layer in remaining if layer_moves else []:
            recipe = (
                current.recipe.with_int16(layer, activation_of[layer])
                if precision is FallbackPrecision.INT16
                else current.recipe.with_fp32(layer)
            )
            trials[layer] = try_recipe(recipe)
        if head_move:
            assert head is not None
            trials[head_input_key(head)] = try_recipe(current.recipe.with_float_input(head))
        best = min(trials, key=lambda name: _rank(trials[name]))
        is_head = head is not None and best == head_input_key(head)
        step = _step(best, is_head, precision, current, trials)
        log.info(
            "event=layer_fallback layer=%s kind=%s precision=%s shortfall=%.4g",
            best,
            step.kind,
            step.precision,
            trials[best].gate.shortfall,
        )
        steps.append(step)
        if not is_head:
            remaining.remove(best)
        current = trials[best]
    return TuningResult(current, steps, "within budget" if steps else "within budget without fallback")


def _step(
    best: str, is_head: bool, precision: FallbackPrecision, current: Attempt, trials: dict[str, Attempt]
) -> FallbackStep:
    before, after = current.figures(), trials[best].figures()
    move = (
        "leaving the output head's input float (no Q/DQ before the head; every layer still INT8)"
        if is_head
        else f"moving it to {precision.value}"
    )
    reason = (
        f"most effective of {len(trials)}: {move} took gate shortfall "
        f"{before['gate_shortfall']:.3g} -> {after['gate_shortfall']:.3g}, AUC ratio "
        f"{before['roc_auc_ratio']:.5f} -> {after['roc_auc_ratio']:.5f}, max flip rate "
        f"{before['max_flip_rate']:.4f} -> {after['max_flip_rate']:.4f}, distinct-score ratio "
        f"{before['distinct_score_ratio']:.3f} -> {after['distinct_score_ratio']:.3f}"
    )
    tied = [n for n, t in trials.items() if n != best and t.gate.shortfall == trials[best].gate.shortfall]
    if tied:
        fewer = all(trials[n].fp32_weights > trials[best].fp32_weights for n in tied)
        others = ", ".join(f"{n} ({trials[n].fp32_weights:,} FP32 weights)" for n in tied)
        why = f"fewer FP32 weights ({trials[best].fp32_weights:,})" if fewer else "the smaller score change"
        reason += f"; same shortfall as {others}: chosen for {why}"
    precision_name = FallbackPrecision.FP32.value if is_head else precision.value
    sensitivity = {n: t.figures() for n, t in trials.items()}
    return FallbackStep(best, precision_name, reason, sensitivity, "head_input" if is_head else "layer")
