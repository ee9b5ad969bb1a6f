"""Each exporter family through `prepare_model`: the exporter's graph canonicalized with checked rewrites,
the layers reported as ORT runs them, and either INT8 inside the budget or FP32 with the reason."""

import time
from pathlib import Path

import numpy as np
import onnx
import pytest

from server.quantization.errors import ModelFileError
from server.quantization.pipeline import prepare_model
from server.quantization.rewrites import canonicalize as canonical
from server.quantization.summary import format_summary
from server.served_model import GateVerdict, Precision
from tests.quantization import exporter_models as em

SERVED_INT8 = (GateVerdict.PASSED, GateVerdict.PASSED_WITH_FALLBACK)


@pytest.fixture(scope="module")
def frame():
    return em.make_frame(5000, 0)


def _served_or_explained(prepared) -> None:
    """The 'done when': INT8 inside the budget with intervals and the objective met, or FP32 and why."""
    report = prepared.report
    if report.verdict in SERVED_INT8:
        assert prepared.facts.precision is Precision.INT8
        assert report.gate.final.passed and report.evidence.sufficient and report.benefit.pays
        assert report.evidence.roc_auc_delta.low <= report.evidence.roc_auc_delta.high
    else:
        assert prepared.facts.precision is Precision.FP32
        assert report.warnings and "serving FP32" in report.warnings[0]


def test_skl2onnx_feature_vectorizer_becomes_a_concat_and_its_layers_fuse(frame, tmp_path: Path) -> None:
    config = em.write_folder(tmp_path / "fv", em.skl2onnx_feature_vectorizer(frame))
    prepared = prepare_model(config, tmp_path / "cache")
    report = prepared.report
    rewrites = {r.rewrite: r for r in report.rewrites}
    assert rewrites["feature_vectorizer_to_concat"].kept
    assert rewrites["feature_vectorizer_to_concat"].max_abs_diff <= 1e-6
    # With a known shape ORT fuses MatMul + Add into Gemm: layer names are the fused ones...
    assert report.layers.quantizable == [f"MatMul{s}/MatMulAddFusion" for s in ("", "1", "2")]
    # ...and every layer left INT8 runs as an integer kernel, not on dequantized values.
    for name in report.layers.int8:
        assert report.layers.runs[name].kernel == "QGemm"
    assert all(run.precision != "int8_simulated" for run in report.layers.runs.values())
    _served_or_explained(prepared)


def test_without_the_rewrite_the_report_says_how_the_unfused_layers_really_run(
    frame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exact = tuple(r for r in canonical.EXACT_REWRITES if r.__name__ != "feature_vectorizer_to_concat")
    monkeypatch.setattr(canonical, "EXACT_REWRITES", exact)
    config = em.write_folder(
        tmp_path / "fv", em.skl2onnx_feature_vectorizer(frame), quantization={"int16_layers": ["MatMul"]}
    )
    report = prepare_model(config, tmp_path / "cache").report
    assert report.layers.quantizable == ["MatMul", "MatMul1", "MatMul2"]  # never fused to Gemm
    # The INT16 layer is not "INT16" in any kernel: it runs as a float MatMul on 16-bit values.
    assert report.layers.runs["MatMul"].precision == "int16_activations"
    assert report.layers.runs["MatMul"].kernel != "QGemm"


def test_skl2onnx_concat_with_a_wide_one_hot_folds_into_a_gather(frame, tmp_path: Path) -> None:
    model = em.skl2onnx_concat_onehot(frame)
    config = em.write_folder(tmp_path / "onehot", model, categorical=True, holdout_rows=16000)
    prepared = prepare_model(config, tmp_path / "cache")
    rewrites = {r.rewrite: r for r in prepared.report.rewrites}
    gather = rewrites["onehot_to_gather"]
    assert gather.kept and gather.max_abs_diff <= 1e-6 and "160 columns" in gather.detail
    assert all(r.kept or r.reason.startswith(("dropped", "not applied")) for r in prepared.report.rewrites)
    _served_or_explained(prepared)


def test_skl2onnx_normalizer_is_rewritten_to_standard_ops_and_quantizes(frame, tmp_path: Path) -> None:
    config = em.write_folder(tmp_path / "norm", em.skl2onnx_normalizer(frame))
    prepared = prepare_model(config, tmp_path / "cache")
    rewrites = {r.rewrite: r for r in prepared.report.rewrites}
    assert rewrites["normalizer_to_standard_ops"].kept
    # The ml op's output range was mis-calibrated (AUC ratio ~0.74 for every attempt); not any more.
    assert prepared.report.gate.tuned.passed
    _served_or_explained(prepared)


@pytest.mark.parametrize(
    ("activation", "dense"), [("Relu", "gemm"), ("Relu", "matmul"), ("Gelu", "gemm"), ("LeakyRelu", "matmul")]
)
def test_torch_export_shaped_graph(frame, tmp_path: Path, activation: str, dense: str) -> None:
    model = em.torch_style(frame, activation, "sigmoid", dense)
    config = em.write_folder(tmp_path / "torch", model, matrix_input="input")
    prepared = prepare_model(config, tmp_path / "cache")
    report = prepared.report
    assert len(report.layers.quantizable) == 3 and report.layers.output_head_kept_fp32
    assert report.layers.runs[report.layers.output_head_kept_fp32[0]].precision == "fp32"
    _served_or_explained(prepared)
    assert "Layers" in format_summary(report)


def test_torch_export_ending_in_logits_is_refused_with_the_fix(frame, tmp_path: Path) -> None:
    model = em.torch_style(frame, "Relu", "logits", "gemm")
    config = em.write_folder(tmp_path / "logits", model, matrix_input="input", output="logits")
    with pytest.raises(ModelFileError, match=r"not probabilities in \[0, 1\].*final Sigmoid"):
        prepare_model(config, tmp_path / "cache")


def test_lightgbm_tree_ensemble_is_not_quantizable_served_fp32_fast(frame, tmp_path: Path) -> None:
    config = em.write_folder(tmp_path / "trees", em.lightgbm_onnxmltools(frame), matrix_input="input")
    started = time.perf_counter()
    prepared = prepare_model(config, tmp_path / "cache")
    assert time.perf_counter() - started < 5.0
    assert prepared.facts.gate_verdict is GateVerdict.NOT_QUANTIZABLE
    assert prepared.facts.precision is Precision.FP32 and prepared.model_path == config.onnx_path
    assert "TreeEnsembleClassifier" in prepared.report.not_quantizable.op_types
    assert "verdict NOT_QUANTIZABLE, serving fp32" in format_summary(prepared.report)


@pytest.mark.skipif(not (em.DATA_DIR / "keras_mlp.onnx").is_file(), reason="no Keras export committed")
def test_keras_through_tf2onnx(tmp_path: Path) -> None:
    config = em.write_folder(tmp_path / "keras", em.keras_tf2onnx(), matrix_input="features")
    prepared = prepare_model(config, tmp_path / "cache")
    assert len(prepared.report.layers.quantizable) == 3
    _served_or_explained(prepared)


def test_front_end_folds_keep_fp32_scores_on_holdout_rows_too(frame, tmp_path: Path) -> None:
    """The folds are checked on the calibration rows; the folded graph also matches on unseen rows."""
    from server.quantization.calibration_data import load_feature_table
    from server.quantization.evaluation import score_model

    config = em.write_folder(tmp_path / "onehot", em.skl2onnx_concat_onehot(frame), categorical=True)
    calibration = load_feature_table(config.calibration_path, config, min_rows=1)
    forms = canonical.canonicalize(config.onnx_path, tmp_path, calibration.feeds, config.output_name)
    assert forms.folded is not None
    ops = {n.op_type for n in onnx.load(str(forms.folded)).graph.node}
    assert "Gather" in ops and "OneHotEncoder" not in ops
    holdout = load_feature_table(
        config.holdout_path, config, min_rows=1, label_column="label", require_label=True
    )
    before, after = score_model(config.onnx_path, holdout, config), score_model(forms.folded, holdout, config)
    assert np.max(np.abs(before - after)) <= 1e-6


def test_a_rewrite_that_moves_the_scores_is_dropped_and_reported(frame, tmp_path: Path, monkeypatch) -> None:
    def nudge_first_bias(model: onnx.ModelProto):
        from server.quantization.rewrites.records import Change

        init = next(i for i in model.graph.initializer if i.name == "intercepts")
        array = onnx.numpy_helper.to_array(init) + np.float32(1e-3)
        init.CopyFrom(onnx.numpy_helper.from_array(array, init.name))
        return [Change("nudge", ("Add",), "moves the first bias by 1e-3")]

    monkeypatch.setattr(canonical, "EXACT_REWRITES", (*canonical.EXACT_REWRITES, nudge_first_bias))
    config = em.write_folder(tmp_path / "fv", em.skl2onnx_feature_vectorizer(frame))
    report = prepare_model(config, tmp_path / "cache").report
    nudge = next(r for r in report.rewrites if r.rewrite == "nudge")
    assert not nudge.kept and nudge.max_abs_diff > 1e-6 and nudge.reason.startswith("dropped")
    assert any("rewrite nudge" in w for w in report.warnings)
