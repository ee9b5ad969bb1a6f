"""The tuner rejects moves that change nothing, stops when no move helps, and names the layers as they run."""

import numpy as np

from server.config.quantization_config import FallbackPrecision
from server.quantization.evaluation import compare_scores
from server.quantization.gate import BudgetCheck, GateResult
from server.quantization.layer_precision import LayerPrecision, LayerRun
from server.quantization.quantizer import QuantizationRecipe
from server.quantization.tuner import Attempt, head_input_key, tune

LABELS = np.array([0, 1] * 50)
FP32 = np.linspace(0.01, 0.99, 100)
HEAD = "head"


def _attempt(
    recipe: QuantizationRecipe, shortfall: float, scores: np.ndarray, runs: dict[str, str]
) -> Attempt:
    check = BudgetCheck("roc_auc_ratio", 0.999 - shortfall * 1e-3, 0.999, "min", shortfall == 0)
    layers = {
        name: LayerRun(name, "QGemm" if p == "int8" else "Gemm", LayerPrecision(p), p != "int8")
        for name, p in runs.items()
    }
    comparison = compare_scores(LABELS, FP32, scores, {"review": 0.5})
    return Attempt(recipe, comparison, GateResult((check,)), 100, 0, scores, layers)


def test_a_move_that_changes_nothing_is_rejected_not_taken() -> None:
    base = QuantizationRecipe((HEAD,))
    scores = FP32 * 0.99
    initial = _attempt(base, 1.3, scores, {"a": "int8", "b": "int8", HEAD: "fp32"})

    def try_recipe(recipe: QuantizationRecipe) -> Attempt:
        # The head-input move changes nothing (the head's input was float already): same kernels, same
        # scores, same shortfall. Moving `a` helps; moving `b` helps less.
        if recipe.float_input_layer:
            return _attempt(recipe, 1.3, scores, {"a": "int8", "b": "int8", HEAD: "fp32"})
        moved = recipe.fp32_layers[-1]
        runs = {"a": "int8", "b": "int8", HEAD: "fp32", moved: "fp32"}
        return _attempt(recipe, 0.0 if moved == "a" else 0.7, FP32 * 0.999, runs)

    result = tune(initial, ("a", "b"), try_recipe, 4, FallbackPrecision.FP32, {"a": "x", "b": "y"}, HEAD)
    step = result.steps[0]
    assert step.layer == "a" and result.passed
    assert head_input_key(HEAD) in step.rejected and "no-op" in step.rejected[head_input_key(HEAD)]
    assert head_input_key(HEAD) not in step.sensitivity
    assert "layers now run as" in step.reason and "int8: b" in step.reason and "fp32: a, head" in step.reason


def test_no_move_reducing_the_shortfall_stops_the_tuner() -> None:
    base = QuantizationRecipe((HEAD,))
    initial = _attempt(base, 1.3, FP32 * 0.99, {"a": "int8", "b": "int8", HEAD: "fp32"})

    def try_recipe(recipe: QuantizationRecipe) -> Attempt:
        moved = recipe.fp32_layers[-1]
        return _attempt(recipe, 1.3, FP32 * 0.98, {"a": "int8", "b": "int8", HEAD: "fp32", moved: "fp32"})

    result = tune(initial, ("a", "b"), try_recipe, 4, FallbackPrecision.FP32, {"a": "x", "b": "y"})
    assert not result.steps and not result.passed
    assert result.stopped_because.startswith("no move reduces the gate shortfall")
    assert "1.3 -> 1.3" in result.stopped_because
