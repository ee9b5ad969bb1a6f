"""The gate serves INT8 only within budget; the tuner falls back layer by layer; hopeless models stay FP32."""

import logging
from pathlib import Path

import numpy as np
import onnx
import pytest

from server.ort_session import create_session
from server.quantization.pipeline import prepare_model
from server.quantization.summary import format_summary
from server.served_model import GateVerdict, Precision
from tests.quantization.model_factory import FIRST_LAYER, SECOND_LAYER, THIRD_LAYER


def test_plain_model_passes_the_gate_as_int8(model_folder, tmp_path: Path) -> None:
    prepared = prepare_model(model_folder("plain"), tmp_path / "cache")
    report = prepared.report
    assert prepared.facts.gate_verdict is GateVerdict.PASSED
    assert prepared.facts.precision is Precision.INT8
    assert prepared.model_path.name == "model.int8.onnx"
    assert report.gate.final.passed is True
    assert report.accuracy.roc_auc_ratio >= report.budget.min_auc_ratio
    assert report.accuracy.max_flip_rate <= report.budget.max_decision_flip_rate
    assert set(report.accuracy.flip_rates) == {"review", "decline"}
    assert prepared.facts.metric_deltas["roc_auc_delta"] == report.accuracy.roc_auc_delta
    ops = {node.op_type for node in onnx.load(str(prepared.model_path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    summary = format_summary(report)
    assert "verdict PASSED" in summary
    assert summary.count("PASS │") == len(report.gate.final.checks) and "FAIL" not in summary
    assert f"cache key: {report.cache_key}" in summary
    assert f"report: {prepared.report_path}" in summary


def test_sensitive_layer_falls_back_to_fp32_and_ends_within_budget(model_folder, tmp_path: Path) -> None:
    prepared = prepare_model(model_folder("sensitive"), tmp_path / "cache")
    report = prepared.report
    assert report.gate.initial.passed is False
    assert prepared.facts.gate_verdict is GateVerdict.PASSED_WITH_FALLBACK
    assert prepared.facts.precision is Precision.INT8
    steps = report.tuning.fallback_layers
    assert steps, "the tuner must have moved at least one layer"
    # The layer fed by the outlier-heavy input is the one the tuner picks first, with figures per candidate.
    assert steps[0].layer == FIRST_LAYER
    assert set(steps[0].sensitivity) == {FIRST_LAYER, SECOND_LAYER, f"input of {THIRD_LAYER}"}
    assert (
        steps[0].sensitivity[FIRST_LAYER].gate_shortfall < steps[0].sensitivity[SECOND_LAYER].gate_shortfall
    )
    assert FIRST_LAYER in report.layers.fp32 and report.layers.int8 == [SECOND_LAYER]
    assert report.gate.final.passed is True
    # The reviewer sees the layer, its precision and the reason, next to the before/after budget values.
    summary = format_summary(report)
    assert "first INT8" in summary
    layer_row = next(line for line in summary.splitlines() if FIRST_LAYER in line)
    assert "FP32" in layer_row and "tuner: INT8 failed" in layer_row


def test_model_that_cannot_pass_is_served_fp32_with_failed_verdict(
    model_folder, tmp_path: Path, caplog
) -> None:
    config = model_folder("hopeless")
    with caplog.at_level(logging.WARNING, logger="server.quantization"):
        prepared = prepare_model(config, tmp_path / "cache")
    assert prepared.facts.gate_verdict is GateVerdict.FAILED
    assert prepared.facts.precision is Precision.FP32
    assert prepared.model_path == config.onnx_path
    assert prepared.report.verdict is GateVerdict.FAILED and prepared.report.precision is Precision.FP32
    assert prepared.report.gate.final.passed is False
    assert "serving FP32" in prepared.report.warnings[0]
    assert any("event=quantization_gate_failed" in r.getMessage() for r in caplog.records)
    summary = format_summary(prepared.report)
    assert "verdict FAILED, serving fp32" in summary
    assert "FAIL │" in summary and "Layers of the best INT8 candidate (not served)" in summary
    assert "within budget" not in summary
    assert f"served model: {config.onnx_path}" in summary
    # The cached verdict is the same: a warm start must not serve the failed model as INT8.
    again = prepare_model(config, tmp_path / "cache")
    assert again.facts.from_cache and again.facts.gate_verdict is GateVerdict.FAILED
    assert again.model_path == config.onnx_path


def test_fallback_limit_zero_turns_a_sensitive_model_into_failed(model_folder, tmp_path: Path) -> None:
    prepared = prepare_model(model_folder("sensitive", max_fallback_layers=0), tmp_path / "cache")
    assert prepared.facts.gate_verdict is GateVerdict.FAILED
    assert "max_fallback_layers (0)" in prepared.report.tuning.stopped_because


def test_protecting_the_output_keeps_score_resolution(model_folder, tmp_path: Path) -> None:
    protected = prepare_model(model_folder("plain"), tmp_path / "a").report
    unprotected = prepare_model(
        model_folder("plain", protect_output=False, max_fallback_layers=0), tmp_path / "b"
    )
    assert protected.accuracy.distinct_score_ratio >= 0.9
    assert unprotected.report.accuracy.distinct_score_ratio < 0.9
    assert protected.layers.unprotected_distinct_score_ratio < 0.9
    # Without protection the gate catches the lost resolution: it is not served as INT8.
    assert unprotected.facts.gate_verdict is GateVerdict.FAILED


def test_static_int8_score_does_not_depend_on_batch_mates(model_folder, tmp_path: Path) -> None:
    config = model_folder("plain")
    prepared = prepare_model(config, tmp_path / "cache")
    session = create_session(prepared.model_path)
    import pandas as pd

    frame = pd.read_parquet(config.holdout_path).iloc[:256]
    feeds = {
        spec.name: frame[spec.name].to_numpy(np.float32 if spec.dtype == "float32" else object).reshape(-1, 1)
        for spec in config.inputs
    }
    batch_scores = session.run(["probabilities"], feeds)[0][:, 1]
    alone = np.array(
        [
            session.run(["probabilities"], {k: v[i : i + 1] for k, v in feeds.items()})[0][0, 1]
            for i in range(256)
        ]
    )
    assert np.array_equal(alone, batch_scores)
    assert prepared.report.batch_invariant is True


def test_dynamic_mode_is_reported_as_not_batch_invariant(model_folder, tmp_path: Path) -> None:
    prepared = prepare_model(model_folder("plain", mode="dynamic"), tmp_path / "cache")
    assert prepared.report.serving.int8_chunk_rows == 1  # ranges from the call: one row per call
    assert any("gated and served with serving.int8_chunk_rows" in w for w in prepared.report.warnings)
    if prepared.facts.precision is Precision.INT8:
        assert prepared.report.batch_invariant is False and prepared.chunk_rows == 1


def test_mode_none_serves_fp32_as_disabled(model_folder, tmp_path: Path) -> None:
    config = model_folder("plain", mode="none")
    prepared = prepare_model(config, tmp_path / "cache")
    assert prepared.facts.gate_verdict is GateVerdict.DISABLED
    assert prepared.facts.precision is Precision.FP32 and prepared.model_path == config.onnx_path
    assert not (tmp_path / "cache").exists()


def test_int16_layers_get_16_bit_activations(model_folder, tmp_path: Path) -> None:
    prepared = prepare_model(model_folder("plain", int16_layers=(FIRST_LAYER,)), tmp_path / "cache")
    model = onnx.load(str(prepared.model_path))
    zero_point_types = {
        init.name: init.data_type for init in model.graph.initializer if init.name.endswith("_zero_point")
    }
    assert zero_point_types["transformed_column_zero_point"] == onnx.TensorProto.UINT16
    assert prepared.report.layers.int16 == [FIRST_LAYER]
    assert prepared.facts.gate_verdict in (GateVerdict.PASSED, GateVerdict.PASSED_WITH_FALLBACK)


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_histogram_calibration_methods_run_and_are_reported(
    model_folder, tmp_path: Path, method: str
) -> None:
    prepared = prepare_model(model_folder(calibration_method=method), tmp_path / "cache")
    assert prepared.report.calibration.method == method
    assert prepared.report.calibration.runs == 2  # once per canonical form (base and scaler-folded)
    served = (GateVerdict.PASSED, GateVerdict.PASSED_WITH_FALLBACK)
    assert prepared.facts.precision is (
        Precision.INT8 if prepared.report.verdict in served else Precision.FP32
    )


def test_fallback_to_int16_keeps_the_sensitive_layer_quantized(model_folder, tmp_path: Path) -> None:
    prepared = prepare_model(model_folder("sensitive", fallback_precision="int16"), tmp_path / "cache")
    assert prepared.facts.gate_verdict is GateVerdict.PASSED_WITH_FALLBACK
    step = prepared.report.tuning.fallback_layers[0]
    assert (step.layer, step.precision) == (FIRST_LAYER, "int16")
    assert prepared.report.layers.int16 == [FIRST_LAYER]
    assert FIRST_LAYER not in prepared.report.layers.fp32


def test_per_channel_weights_quantize_a_model_with_row_vector_biases(model_folder, tmp_path: Path) -> None:
    # skl2onnx intercepts are [1, N]; ORT's per-channel bias check failed on them before pre-processing
    # flattened Gemm biases to [N].
    prepared = prepare_model(model_folder("plain", per_channel=True), tmp_path / "cache")
    assert prepared.report.config.per_channel is True
    assert prepared.facts.precision is Precision.INT8
    model = onnx.load(str(prepared.model_path))
    weight_scales = [
        init
        for init in model.graph.initializer
        if init.name.startswith("coefficient") and "scale" in init.name
    ]
    assert weight_scales and all(len(init.dims) == 1 and init.dims[0] > 1 for init in weight_scales)


def test_entropy_calibration_is_not_minmax_in_disguise(model_folder, tmp_path: Path) -> None:
    # quantize_static's own entropy calibrator has 128 bins for 128 levels: its only candidate range is the
    # full one, so it used to give exactly the minmax model.
    minmax = prepare_model(model_folder(), tmp_path / "a").report.accuracy
    entropy = prepare_model(model_folder(calibration_method="entropy"), tmp_path / "b").report.accuracy
    assert entropy.mean_abs_score_diff != minmax.mean_abs_score_diff
