"""The tuner's head-input move: the FP32 head reads a float activation while every hidden layer stays INT8."""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest

from server.ort_session import create_session, latency_session_options
from server.quantization.pipeline import prepare_model
from server.quantization.summary import format_summary
from server.served_model import GateVerdict, Precision
from tests.quantization.model_factory import FIRST_LAYER, SECOND_LAYER, THIRD_LAYER

HEAD_INPUT = f"input of {THIRD_LAYER}"


@pytest.mark.parametrize("op_types", [("MatMul", "Gemm", "Relu"), ("MatMul", "Gemm")])
def test_head_input_left_float_passes_with_every_hidden_layer_int8(
    model_folder, tmp_path: Path, op_types: tuple[str, ...], int8_pays
) -> None:
    # op_types with Relu: the quantizer folds the Relu into the Q pair, which must come back as Max;
    # without: the Relu stays as a node between DequantizeLinear and the head.
    config = model_folder("narrow", op_types=op_types)
    prepared = prepare_model(config, tmp_path / "cache")
    report = prepared.report
    initial = {c.name: c for c in report.gate.initial.checks}
    assert initial["distinct_score_ratio"].passed is False
    assert prepared.facts.gate_verdict is GateVerdict.PASSED_WITH_FALLBACK
    assert prepared.facts.precision is Precision.INT8
    step = report.tuning.fallback_layers[0]
    assert (step.layer, step.kind) == (HEAD_INPUT, "head_input")
    # Moving the last hidden layer to FP32 passes too; the head-input move wins as it keeps it INT8.
    assert set(step.sensitivity) == {FIRST_LAYER, SECOND_LAYER, HEAD_INPUT}
    assert step.sensitivity[SECOND_LAYER].gate_shortfall == 0 == step.sensitivity[HEAD_INPUT].gate_shortfall
    assert "fewer FP32 weights" in step.reason
    assert report.layers.int8 == [FIRST_LAYER, SECOND_LAYER] and report.layers.float_head_input
    assert report.accuracy.distinct_score_ratio >= 0.9

    # No QuantizeLinear/DequantizeLinear (nor Relu) between the last INT8 layer and the head.
    model = onnx.load(str(prepared.model_path))
    producer = {out: n for n in model.graph.node for out in n.output}
    head = next(n for n in model.graph.node if n.name == THIRD_LAYER)
    assert producer[head.input[0]].op_type == "Max"
    assert producer[producer[head.input[0]].input[0]].op_type == "Gemm"
    # ORT still runs both hidden layers as integer QGemm (the last one with float output).
    options = latency_session_options()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(prepared.model_path), options, providers=["CPUExecutionProvider"])
    optimized = [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    assert optimized.count("QGemm") == 2

    # Still static: a row's score alone equals its score inside a batch.
    session = create_session(prepared.model_path)
    frame = pd.read_parquet(config.holdout_path).iloc[:256]
    feeds = {
        spec.name: frame[spec.name].to_numpy(np.float32 if spec.dtype == "float32" else object).reshape(-1, 1)
        for spec in config.inputs
    }
    batch = session.run(["probabilities"], feeds)[0][:, 1]
    alone = [
        session.run(["probabilities"], {k: v[i : i + 1] for k, v in feeds.items()})[0][0, 1]
        for i in range(256)
    ]
    assert np.array_equal(np.array(alone), batch)

    row = next(line for line in format_summary(report, width=300).splitlines() if HEAD_INPUT in line)
    assert "float input" in row and "head input left float" in row


def test_head_input_move_is_not_offered_without_output_protection(model_folder, tmp_path: Path) -> None:
    prepared = prepare_model(model_folder("narrow", protect_output=False), tmp_path / "cache")
    for step in prepared.report.tuning.fallback_layers:
        assert step.kind == "layer" and HEAD_INPUT not in step.sensitivity
    assert prepared.report.layers.float_head_input is False
