"""A scikit-learn pipeline exported with skl2onnx (own feature names, a one-hot categorical column) goes
through `riskserve models init`, `riskserve quantize` and a server without any edit, and scores the same
through the Open Inference Protocol and FraudScoring's feature maps."""

import hashlib
from pathlib import Path

import grpc
import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
import tritonclient.grpc as triton
from sklearn.metrics import roc_auc_score

from server.api.gen.riskserve.v1 import scoring_pb2, scoring_pb2_grpc
from server.config.model_config import load_model_config
from tests.model_init.conftest import run_cli, run_init
from tests.model_init.model_factory import (
    DEVICES,
    ID,
    LABEL,
    NUMBERS,
    TIME,
    labelled_frame,
    sklearn_pipeline_onnx,
    write,
)

RATES = (0.05, 0.01)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("sklearn")
    model = write(root / "export" / "model.onnx", sklearn_pipeline_onnx(labelled_frame(4000, seed=0)))
    # The user's data (another sample) has no "web" rows: the categories must come from the graph.
    data = labelled_frame(5000, seed=1)
    data = data[data.device_type != "web"].reset_index(drop=True)
    data_file = write(root / "export" / "events.csv", data)
    folder = root / "models" / "chargeback"
    code, out, err = run_init(
        folder,
        *("--onnx", str(model), "--data", str(data_file), "--label", LABEL),
        *("--ignore", ID, "--time-column", TIME, "--alert-rates", ",".join(map(str, RATES))),
    )
    assert code == 0, err
    return {"folder": folder, "out": out, "model": model, "data": data, "cache": root / "cache"}


def _graph_categories(model: Path) -> list[str]:
    encoders = [n for n in onnx.load(str(model)).graph.node if n.op_type == "OneHotEncoder"]
    assert len(encoders) == 1
    (attribute,) = [a for a in encoders[0].attribute if a.name == "cats_strings"]
    return [v.decode() for v in attribute.strings]


def _fp32_scores(folder: Path, frame: pd.DataFrame) -> np.ndarray:
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = {name: frame[[name]].to_numpy(np.float32) for name in NUMBERS}
    feeds["device_type"] = frame[["device_type"]].to_numpy(object)
    return session.run(["probabilities"], feeds)[0][:, 1].astype(np.float64)


def test_config_has_the_onnx_inputs_and_the_graphs_categories(built) -> None:
    config = load_model_config(built["folder"])
    assert [(i.name, i.dtype) for i in config.inputs] == [(n, "float32") for n in NUMBERS] + [
        ("device_type", "string")
    ]
    assert config.output_name == "probabilities" and config.label_column == LABEL
    device = config.feature("device_type")
    assert list(device.categories) == _graph_categories(built["model"]) == list(DEVICES)
    assert "web" not in set(built["data"].device_type)  # so it came from the graph, not the data
    assert config.feature("velocity_6h").minimum == 0.0  # counts are never negative
    assert config.feature("merchant_risk").maximum >= built["data"].merchant_risk.max()
    assert config.feature("device_type").source == "categorical_features.device_type"
    assert config.feature("velocity_6h").source == "features.velocity_6h"
    assert set(config.quantization.ignored_columns) == {ID, TIME}
    assert config.quantization.mode.value == "static"  # an MLP: something to quantize


def test_thresholds_alert_the_requested_shares_of_the_fp32_holdout_scores(built) -> None:
    config = load_model_config(built["folder"])
    holdout = pd.read_parquet(config.holdout_path)
    scores = _fp32_scores(built["folder"], holdout)
    for threshold, rate in zip((config.decision.review, config.decision.decline), RATES, strict=True):
        share = float(np.mean(scores >= threshold))
        assert rate - 1.0 / len(scores) < share <= rate  # at most the rate, short of it by under one row


def test_the_config_records_the_written_files_digest_and_its_fp32_holdout_auc(built) -> None:
    config = load_model_config(built["folder"])
    written = config.onnx_path.read_bytes()
    assert written == built["model"].read_bytes()
    assert config.integrity.model_sha256 == hashlib.sha256(written).hexdigest()
    holdout = pd.read_parquet(config.holdout_path)
    auc = roc_auc_score(holdout[LABEL], _fp32_scores(built["folder"], holdout))
    assert config.integrity.holdout_roc_auc == pytest.approx(auc, abs=1e-9)
    assert any(line.startswith("integrity: model.onnx SHA-256 ") for line in built["out"].splitlines())


def test_split_is_time_ordered_and_calibration_has_no_label(built) -> None:
    config = load_model_config(built["folder"])
    calibration, holdout = pd.read_parquet(config.calibration_path), pd.read_parquet(config.holdout_path)
    assert LABEL not in calibration.columns and LABEL in holdout.columns
    assert calibration[TIME].max() < holdout[TIME].min()  # the latest rows are the holdout
    assert len(holdout) == round(0.3 * len(built["data"]))
    assert set(holdout[ID]).isdisjoint(calibration[ID])


def test_each_decision_is_printed_on_its_own_line(built) -> None:
    lines = built["out"].splitlines()
    heads = [line.split(":", 1)[0] for line in lines]
    for head in ("output", "inputs", "categories", "ranges", "split", "thresholds", "quantization"):
        assert head in heads, f"no '{head}:' line in {lines}"
    text = built["out"]
    assert "'probabilities'" in text and "'label'" in text  # the chosen output and the one left
    assert "OneHotEncoder" in text and "5.00%" in text and "1.00%" in text


def _infer_inputs(rows: pd.DataFrame) -> list[triton.InferInput]:
    inputs = []
    for name in NUMBERS:
        tensor = triton.InferInput(name, [len(rows), 1], "FP32")
        tensor.set_data_from_numpy(rows[[name]].to_numpy(np.float32))
        inputs.append(tensor)
    tensor = triton.InferInput("device_type", [len(rows), 1], "BYTES")
    tensor.set_data_from_numpy(rows[["device_type"]].to_numpy(object))
    return [*inputs, tensor]


def _transaction(row: pd.Series, index: int) -> scoring_pb2.Transaction:
    return scoring_pb2.Transaction(
        transaction_id=f"row-{index}",
        model="chargeback",
        features={name: float(row[name]) for name in NUMBERS},
        categorical_features={"device_type": row["device_type"]},
    )


def test_quantize_then_serve_through_both_apis_with_identical_probabilities(built, serve) -> None:
    models_dir = built["folder"].parent
    code, out, err = run_cli(
        "quantize", "chargeback", "--models-dir", str(models_dir), "--cache-dir", str(built["cache"])
    )
    assert code in (0, 3), err  # 3: the accuracy gate failed (served FP32); both are outcomes, not errors
    assert "chargeback 1.0.0: verdict" in out
    server = serve(models_dir, built["cache"])
    rows = pd.read_parquet(built["folder"] / "holdout.parquet").head(24)
    with triton.InferenceServerClient(server.target) as client:
        answer = client.infer(
            "chargeback", _infer_inputs(rows), outputs=[triton.InferRequestedOutput("probabilities")]
        )
    through_oip = answer.as_numpy("probabilities")
    assert through_oip.shape == (len(rows), 2)
    with grpc.insecure_channel(server.target) as channel:
        fraud = scoring_pb2_grpc.FraudScoringStub(channel)
        singles = [fraud.Score(_transaction(row, i), timeout=10) for i, row in rows.iterrows()]
        batch = fraud.ScoreBatch(
            scoring_pb2.TransactionBatch(transactions=[_transaction(row, i) for i, row in rows.iterrows()]),
            timeout=10,
        )
    assert [s.probability for s in singles] == through_oip[:, 1].astype(np.float64).tolist()
    assert [s.probability for s in batch.scores] == [s.probability for s in singles]
    assert {s.model.name for s in singles} == {"chargeback"}
    config = load_model_config(built["folder"])
    for score in singles:
        expected = (
            scoring_pb2.DECLINE
            if score.probability >= config.decision.decline
            else scoring_pb2.REVIEW
            if score.probability >= config.decision.review
            else scoring_pb2.APPROVE
        )
        assert score.decision == expected
