"""Layer-wise fallback when the quantized model misses its budget (on the tuning rows of the holdout).

Sensitivity is measured, not estimated: each round re-quantizes once per still-quantized layer with that
layer moved to FP32 (or INT16), plus once with the FP32 output head's *input* left float (no Q/DQ before
the head; see float_input.py), evaluates the gate, and keeps the move that brings the model closest to the
budget: smallest total shortfall, then the fewest weights left in FP32, then the smallest mean score
difference. A move whose quantized graph runs the same kernels or gives bit-identical scores as the current
model is a no-op and rejected; a round whose best move does not reduce the shortfall ends the tuning. When
several moves of a round reach the budget, `choose` picks among them (the pipeline: by the objective).
SQNR from qdq_loss_debug was not used: it misreads layers after a folded Relu and says nothing about
decisions at the thresholds.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from server.config.quantization_config import FallbackPrecision
from server.quantization.evaluation import AccuracyComparison
from server.quantization.gate import GateResult
from server.quantization.layer_precision import LayerRun
from server.quantization.quantizer import QuantizationRecipe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attempt:
    recipe: QuantizationRecipe
    comparison: AccuracyComparison
    gate: GateResult
    model_bytes: int = 0
    fp32_weights: int = 0  # weights (and biases) of the quantizable layers this recipe keeps in FP32
    scores: np.ndarray | None = field(default=None, compare=False, repr=False)  # tuning rows, as served
    layers: dict[str, LayerRun] = field(default_factory=dict, compare=False)  # as ORT runs them
    chunk_rows: int | None = None  # rows per call it is served (and was scored) with
    path: Path | None = None

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

    def same_model_as(self, other: "Attempt") -> bool:
        """True when this attempt changes nothing that runs: the same kernels, or the same scores."""
        runs = {name: (r.kernel, r.precision, r.float_output) for name, r in self.layers.items()}
        other_runs = {name: (r.kernel, r.precision, r.float_output) for name, r in other.layers.items()}
        same_scores = self.scores is not None and other.scores is not None
        same_scores = same_scores and np.array_equal(self.scores, other.scores)
        return (bool(runs) and runs == other_runs) or same_scores


@dataclass(frozen=True)
class FallbackStep:
    layer: str  # a layer name, or head_input_key(head) for the head-input move
    precision: str
    reason: str
    sensitivity: dict[str, dict[str, float]]  # every candidate of the round -> figures with it applied
    kind: str = "layer"  # "layer": the layer left INT8; "head_input": the head's input left float
    rejected: dict[str, str] = field(default_factory=dict)  # candidate -> why it was not considered


@dataclass(frozen=True)
class TuningResult:
    final: Attempt
    steps: list[FallbackStep] = field(default_factory=list)
    stopped_because: str = ""
    within_budget: dict[str, Attempt] = field(default_factory=dict)  # the last round's passing moves

    @property
    def passed(self) -> bool:
        return self.final.gate.passed


Choose = Callable[[dict[str, Attempt]], tuple[str, str]]  # passing moves -> (chosen move, why)


def head_input_key(head: str) -> str:
    """The tuner's name for the move that leaves `head`'s activation input float."""
    return f"input of {head}"


def tuner_rank(attempt: Attempt) -> tuple[float, int, float]:
    return (attempt.gate.shortfall, attempt.fp32_weights, attempt.comparison.mean_abs_score_diff)


def tune(
    initial: Attempt,
    layers: tuple[str, ...],
    try_recipe: Callable[[QuantizationRecipe], Attempt],
    max_layers: int,
    precision: FallbackPrecision,
    activation_of: dict[str, str],
    head: str | None = None,
    choose: Choose | None = None,
) -> TuningResult:
    """Move the most harmful layers out of INT8 one at a time until the gate passes or the limit is hit.

    `layers` are the layers quantized in `initial`; at least one must stay quantized, otherwise the result
    would be the FP32 model under another name. `head`: the FP32 output head whose input may be left float
    (None: that move is not offered). Every move counts against `max_layers`.
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
        rejected = {
            name: "no-op: the quantized graph runs the same kernels (or gives the same scores) as before"
            for name, trial in trials.items()
            if trial.same_model_as(current)
        }
        effective = {name: trial for name, trial in trials.items() if name not in rejected}
        if not effective:
            return TuningResult(
                current, steps, f"no move changes the model ({len(trials)} tried, all no-ops)"
            )
        best = min(effective, key=lambda name: tuner_rank(effective[name]))
        if effective[best].gate.shortfall >= current.gate.shortfall:
            return TuningResult(
                current,
                steps,
                f"no move reduces the gate shortfall (best: {best}, {current.gate.shortfall:.3g} -> "
                f"{effective[best].gate.shortfall:.3g})",
            )
        passing = {name: trial for name, trial in effective.items() if trial.gate.passed}
        chosen_because = ""
        if len(passing) > 1 and choose is not None:
            best, chosen_because = choose(passing)
        is_head = head is not None and best == head_input_key(head)
        step = _step(best, is_head, precision, current, effective, rejected, chosen_because)
        log.info(
            "event=layer_fallback layer=%s kind=%s precision=%s shortfall=%.4g",
            best,
            step.kind,
            step.precision,
            effective[best].gate.shortfall,
        )
        steps.append(step)
        if not is_head:
            remaining.remove(best)
        current = effective[best]
        if passing:
            return TuningResult(current, steps, "within budget", passing)
    return TuningResult(current, steps, "within budget without fallback", {"": current})


def layers_text(layers: dict[str, LayerRun], skip: tuple[str, ...] = ()) -> str:
    """ "INT8: a, b; FP32: c" for the layers as they run (`skip`: e.g. the FP32 output head)."""
    groups: dict[str, list[str]] = {}
    for name, run in layers.items():
        if name not in skip:
            groups.setdefault(run.precision.value, []).append(name)
    return "; ".join(f"{precision}: {', '.join(names)}" for precision, names in groups.items()) or "none"


def _step(
    best: str,
    is_head: bool,
    precision: FallbackPrecision,
    current: Attempt,
    trials: dict[str, Attempt],
    rejected: dict[str, str],
    chosen_because: str,
) -> FallbackStep:
    before, after = current.figures(), trials[best].figures()
    move = (
        "leaving the output head's input float (no Q/DQ before the head)"
        if is_head
        else (f"moving it to {precision.value}")
    )
    reason = (
        f"most effective of {len(trials)}: {move} took gate shortfall "
        f"{before['gate_shortfall']:.3g} -> {after['gate_shortfall']:.3g}, AUC ratio "
        f"{before['roc_auc_ratio']:.5f} -> {after['roc_auc_ratio']:.5f}, max flip rate "
        f"{before['max_flip_rate']:.4f} -> {after['max_flip_rate']:.4f}, distinct-score ratio "
        f"{before['distinct_score_ratio']:.3f} -> {after['distinct_score_ratio']:.3f}; layers now run as "
        f"{layers_text(trials[best].layers)}"
    )
    if chosen_because:
        reason += f"; {chosen_because}"
    tied = [n for n, t in trials.items() if n != best and t.gate.shortfall == trials[best].gate.shortfall]
    if tied and (not chosen_because or "tuner's order" in chosen_because):  # the tuner's order decided
        fewer = all(trials[n].fp32_weights > trials[best].fp32_weights for n in tied)
        others = ", ".join(f"{n} ({trials[n].fp32_weights:,} FP32 weights)" for n in tied)
        why = f"fewer FP32 weights ({trials[best].fp32_weights:,})" if fewer else "the smaller score change"
        reason += f"; same shortfall as {others}: chosen for {why}"
    precision_name = FallbackPrecision.FP32.value if is_head else precision.value
    sensitivity = {n: t.figures() for n, t in trials.items()}
    kind = "head_input" if is_head else "layer"
    return FallbackStep(best, precision_name, reason, sensitivity, kind, rejected)
