"""Variants of a model the gate does not serve, built only to explain where the speed and size goals stand.

- `int8_ungated`: every hidden layer INT8, output head FP32, no tuner fallback (the pipeline's first attempt).
- `head_input_relu`: as `int8_ungated`, but the Q/DQ pair on the head's input is removed and the folded Relu
  restored as a Relu node: ORT then runs the last layer as DequantizeLinear + FP32 Gemm (no QGemm). The
  tuner's head-input move restores it as Max instead (server/quantization/float_input.py), which fuses.
- `last_hidden_fp32`: the last hidden layer moved to FP32 (what the tuner served before the head-input move).
- `dynamic`: ORT dynamic quantization (per-batch activation ranges; not batch-invariant).
- `served_unfolded`: the served recipe (head FP32, head input float) on the exporter's graph without the
  pipeline's front-end folds (rewrites/front_end_fold.py): the "before" of the front-end measurement.

Each is scored on the holdout set and checked against the model's own budget, like the pipeline does.
"""

from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from server.config.model_config import ModelConfig
from server.config.quantization_config import QuantizationConfig, QuantizationMode
from server.quantization.calibration_data import FeatureBatchReader, FeatureTable
from server.quantization.evaluation import compare_scores, score_model
from server.quantization.gate import check_budget
from server.quantization.quantizer import QuantizationRecipe, quantize


def _with_quantization(config: ModelConfig, **changes: object) -> QuantizationConfig:
    return QuantizationConfig.model_validate({**config.quantization.model_dump(), **changes})


def ungated_int8(
    config: ModelConfig,
    preprocessed: Path,
    head: tuple[str, ...],
    reduce_range: bool,
    calibration: FeatureTable,
    scratch: Path,
) -> Path:
    out = scratch / "int8-ungated.onnx"
    recipe = QuantizationRecipe(head)
    reader = FeatureBatchReader(calibration)
    quantize(preprocessed, out, recipe, config.quantization, reduce_range, scratch / "ranges.json", reader)
    return out


def last_hidden_fp32(
    config: ModelConfig,
    preprocessed: Path,
    head: tuple[str, ...],
    layers: tuple[str, ...],
    reduce_range: bool,
    scratch: Path,
) -> Path:
    """Static INT8 with the layer before the head kept FP32 too (ranges reused from `ungated_int8`)."""
    out = scratch / "last-hidden-fp32.onnx"
    recipe = QuantizationRecipe((*head, layers[layers.index(head[0]) - 1]))
    quantize(preprocessed, out, recipe, config.quantization, reduce_range, scratch / "ranges.json", None)
    return out


def head_input_relu(int8_path: Path, head_layer: str, scratch: Path) -> Path:
    """Bypass QuantizeLinear -> DequantizeLinear in front of `head_layer`, restoring the folded Relu."""
    model = onnx.load(str(int8_path))
    nodes = list(model.graph.node)
    head = next(n for n in nodes if n.name == head_layer)
    dq = next(n for n in nodes if n.op_type == "DequantizeLinear" and head.input[0] in n.output)
    q = next(n for n in nodes if n.op_type == "QuantizeLinear" and dq.input[0] in n.output)
    relu = helper.make_node("Relu", [q.input[0]], [q.input[0] + "_relu"], name="head_input_relu")
    head.input[0] = relu.output[0]
    kept = [n for n in nodes if n is not q and n is not dq]
    kept.insert(kept.index(head), relu)
    del model.graph.node[:]
    model.graph.node.extend(kept)
    out = scratch / "head-input-relu.onnx"
    onnx.save(model, str(out))
    return out


def dynamic_int8(config: ModelConfig, preprocessed: Path, head: tuple[str, ...], scratch: Path) -> Path:
    out = scratch / "dynamic.onnx"
    q = _with_quantization(config, mode=QuantizationMode.DYNAMIC)
    quantize(preprocessed, out, QuantizationRecipe(head), q, False, scratch / "unused.json", None)
    return out


def gate_figures(config: ModelConfig, model: Path, holdout: FeatureTable, fp32: np.ndarray) -> dict:
    """The model's budget checks for `model` against the FP32 scores of the same holdout rows."""
    assert holdout.labels is not None
    scores = score_model(model, holdout, config)
    comparison = compare_scores(holdout.labels, fp32, scores, config.decision.thresholds())
    gate = check_budget(comparison, config.quantization.budget)
    return {
        "passed": gate.passed,
        "failures": gate.failures(),
        "roc_auc_ratio": comparison.roc_auc_ratio,
        "max_flip_rate": comparison.max_flip_rate,
        "distinct_score_ratio": comparison.distinct_score_ratio,
    }


def served_unfolded(
    config: ModelConfig,
    preprocessed: Path,
    head: tuple[str, ...],
    reduce_range: bool,
    calibration: FeatureTable,
    scratch: Path,
) -> Path:
    """All hidden layers INT8, head FP32 with a float input, on the graph without front-end folds."""
    out = scratch / "served-unfolded.onnx"
    recipe = QuantizationRecipe(head).with_float_input(head[0])
    reader = FeatureBatchReader(calibration)
    ranges = scratch / "unfolded-ranges.json"
    quantize(preprocessed, out, recipe, config.quantization, reduce_range, ranges, reader)
    return out
