"""The committed model repository: configs load, graphs match configs, data files hold, metrics reproduce."""

import hashlib
import json

import numpy as np
import onnx
import pandas as pd
import pytest

from modelbuild.onnx_export import onnx_session
from server.config import load_model_config
from server.config.paths import BUNDLED_MODELS_DIR
from server.evaluation.risk_metrics import risk_metrics

AUC_TARGETS = {"fraud": (0.90, 0.99), "credit": (0.70, 0.88)}
ONNX_DTYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.STRING: "string"}


@pytest.fixture(scope="module", params=["fraud", "credit"])
def bundled(request):
    directory = BUNDLED_MODELS_DIR / request.param
    config = load_model_config(directory)
    model = onnx.load(str(config.onnx_path))
    metrics = json.loads((directory / "metrics.json").read_text())
    return config, model, metrics


def _feeds(config, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    feeds = {}
    for spec in config.inputs:
        if spec.dtype == "string":
            feeds[spec.name] = frame[spec.name].astype(str).to_numpy(dtype=object).reshape(-1, 1)
        else:
            feeds[spec.name] = frame[spec.name].to_numpy(np.float32).reshape(-1, 1)
    return feeds


def test_onnx_inputs_match_the_config(bundled):
    config, model, _ = bundled
    graph = [(i.name, ONNX_DTYPES[i.type.tensor_type.elem_type]) for i in model.graph.input]
    assert graph == [(spec.name, spec.dtype) for spec in config.inputs]
    assert config.output_name in [o.name for o in model.graph.output]


def test_config_categories_are_the_encoders_categories(bundled):
    config, model, _ = bundled
    encoded = {
        node.input[0]: [s.decode() for a in node.attribute if a.name == "cats_strings" for s in a.strings]
        for node in model.graph.node
        if node.op_type == "OneHotEncoder"
    }
    strings = {spec.name: list(spec.categories) for spec in config.inputs if spec.dtype == "string"}
    assert encoded == strings


def test_data_files_are_large_enough_and_hold_every_input(bundled):
    config, _, _ = bundled
    calibration = pd.read_parquet(config.calibration_path)
    holdout = pd.read_parquet(config.holdout_path)
    assert len(calibration) >= 2_000
    assert set(config.feature_names) <= set(calibration.columns)
    assert set(config.feature_names) | {config.label_column} <= set(holdout.columns)
    if config.task.value == "fraud":
        assert holdout[config.label_column].sum() >= 200
        assert {"transaction_id", "timestamp"} <= set(calibration.columns)
        assert not set(calibration["transaction_id"]) & set(holdout["transaction_id"])


def test_committed_metrics_are_reproduced_by_the_committed_model(bundled):
    config, _, metrics = bundled
    holdout = pd.read_parquet(config.holdout_path)
    session = onnx_session(config.onnx_path)
    scores = session.run([config.output_name], _feeds(config, holdout))[0][:, 1]
    measured = risk_metrics(holdout[config.label_column].to_numpy(), scores)
    recorded = metrics["holdout_metrics"]
    assert measured.roc_auc == pytest.approx(recorded["roc_auc"], abs=1e-6)
    assert measured.pr_auc == pytest.approx(recorded["pr_auc"], abs=1e-6)
    assert measured.positives == recorded["positives"]
    low, high = AUC_TARGETS[config.name]
    assert low <= measured.roc_auc <= high
    assert measured.share_scores_exactly_0_or_1 < 0.01  # no saturated scores (docs/models.md)
    assert metrics["onnx_vs_sklearn"]["roc_auc_onnx"] == pytest.approx(
        metrics["onnx_vs_sklearn"]["roc_auc_sklearn"], abs=1e-4
    )


def test_thresholds_give_the_documented_alert_rates(bundled):
    config, _, metrics = bundled
    assert config.decision.review == metrics["decision"]["review"]
    if config.task.value == "fraud":
        shares = metrics["decision"]["holdout_shares"]
        assert shares["decline"] == pytest.approx(0.005, abs=0.001)
        assert shares["review"] + shares["decline"] == pytest.approx(0.02, abs=0.002)
    else:
        assert config.scorecard is not None


def test_fraud_model_is_large_enough_for_int8_to_pay(bundled):
    config, _, metrics = bundled
    if config.task.value == "fraud":
        assert metrics["model"]["parameters"] >= 100_000
        assert len(metrics["model"]["hidden_layers"]) >= 3
    else:
        assert len(metrics["model"]["hidden_layers"]) >= 2


def test_the_config_records_the_model_files_digest_and_the_cards_holdout_auc(bundled):
    config, _, metrics = bundled
    assert config.integrity.model_sha256 == hashlib.sha256(config.onnx_path.read_bytes()).hexdigest()
    assert config.integrity.holdout_roc_auc == metrics["holdout_metrics"]["roc_auc"]
