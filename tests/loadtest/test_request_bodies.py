"""Requests are built once from the data file's rows, field for field, for both protocols; by default from
the model's holdout file as its config names it (Parquet or CSV)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tritonclient.grpc import service_pb2

from loadtest.errors import LoadTestError
from loadtest.request_bodies import BASE_TIMESTAMP, build_pool
from loadtest.runner import run_scenario
from loadtest.scenario import MixEntry, parse_scenario
from server.api.gen.riskserve.v1 import scoring_pb2
from tests.e2e.model_factory import write_model
from tests.loadtest.conftest import fraud_rows
from tests.loadtest.peer_server import PeerServer

OIP_COLUMNS = ("amount", "txn_count_1h", "channel")


def test_transactions_carry_the_rows_values(fraud_file: Path) -> None:
    rows = pd.read_parquet(fraud_file)
    pool = build_pool(MixEntry(call="fraud.score", data_file=fraud_file))
    assert pool.method_path == "/riskserve.v1.FraudScoring/Score"
    assert len(pool.bodies) == len(rows)
    third = scoring_pb2.Transaction.FromString(pool.bodies[3])
    row = rows.iloc[3]
    assert third.amount == pytest.approx(row["amount"])
    assert third.mcc == row["mcc"] and third.channel == row["channel"]
    assert third.timestamp == BASE_TIMESTAMP + int(row["hour_of_day"]) * 3600
    assert third.behaviour.txn_count_24h == pytest.approx(row["txn_count_24h"])
    assert third.behaviour.is_new_device == bool(row["is_new_device"])
    assert third.model == ""  # the server's default model


def test_batches_keep_consecutive_rows_and_wrap_a_short_file(fraud_file: Path) -> None:
    rows = pd.read_parquet(fraud_file)
    pool = build_pool(MixEntry(call="fraud.score_batch", batch_size=100, data_file=fraud_file))
    batch = scoring_pb2.TransactionBatch.FromString(pool.bodies[0])
    assert pool.rows_per_request == 100 and len(batch.transactions) == 100
    assert [t.amount for t in batch.transactions[:3]] == pytest.approx(rows["amount"][:3].tolist())
    assert batch.transactions[len(rows)].amount == pytest.approx(rows["amount"][0])


def test_oip_requests_hold_raw_fp32_and_bytes_tensors(fraud_file: Path) -> None:
    rows = pd.read_parquet(fraud_file)
    entry = MixEntry(call="oip.infer", model="fraud", batch_size=4, inputs=OIP_COLUMNS, data_file=fraud_file)
    request = service_pb2.ModelInferRequest.FromString(build_pool(entry).bodies[0])
    assert request.model_name == "fraud"
    assert [(i.name, i.datatype, list(i.shape)) for i in request.inputs] == [
        ("amount", "FP32", [4, 1]),
        ("txn_count_1h", "FP32", [4, 1]),
        ("channel", "BYTES", [4, 1]),
    ]
    amounts = np.frombuffer(request.raw_input_contents[0], dtype="<f4")
    assert amounts == pytest.approx(rows["amount"][:4].to_numpy(), rel=1e-6)
    first = rows["channel"][0].encode()
    assert request.raw_input_contents[2][: 4 + len(first)] == len(first).to_bytes(4, "little") + first


def test_missing_columns_and_files_are_named(tmp_path: Path, fraud_file: Path) -> None:
    with pytest.raises(LoadTestError, match="not found"):
        build_pool(MixEntry(call="fraud.score", data_file=tmp_path / "absent.parquet"))
    with pytest.raises(LoadTestError, match="purpose"):
        build_pool(MixEntry(call="credit.assess", data_file=fraud_file))


@pytest.fixture(scope="module")
def csv_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository whose configs name CSV data files (calibration.csv, holdout.csv)."""
    root = tmp_path_factory.mktemp("csv-models")
    write_model(root / "fraud", "fraud", data_format="csv")
    write_model(root / "credit", "credit", data_format="csv")
    return root


def test_default_bodies_read_the_models_csv_holdout(csv_models: Path) -> None:
    holdout = pd.read_csv(csv_models / "fraud" / "holdout.csv", dtype={"mcc": str})
    pool = build_pool(MixEntry(call="fraud.score"), csv_models)
    assert len(pool.bodies) == len(holdout)
    first = scoring_pb2.Transaction.FromString(pool.bodies[0])
    assert first.amount == pytest.approx(holdout["amount"][0])
    assert first.mcc == holdout["mcc"][0] and first.entry_mode == holdout["entry_mode"][0]
    applications = pd.read_csv(csv_models / "credit" / "holdout.csv")
    credit = build_pool(MixEntry(call="credit.assess"), csv_models)
    assessment = scoring_pb2.Application.FromString(credit.bodies[0])
    assert assessment.loan_amount == pytest.approx(applications["loan_amount"][0])
    assert assessment.purpose == applications["purpose"][0]


def test_oip_bodies_from_a_csv_holdout_keep_category_columns_as_strings(csv_models: Path) -> None:
    entry = MixEntry(call="oip.infer", model="fraud", batch_size=2)  # inputs from the model's config
    request = service_pb2.ModelInferRequest.FromString(build_pool(entry, csv_models).bodies[0])
    datatypes = {tensor.name: tensor.datatype for tensor in request.inputs}
    assert datatypes["mcc"] == "BYTES" and datatypes["amount"] == "FP32"  # "5411" is not a number


def test_an_explicit_csv_data_file_keeps_leading_zeros(tmp_path: Path) -> None:
    rows = fraud_rows(4)
    rows["mcc"] = "0742"  # veterinary services: the MCC, not 742
    path = tmp_path / "rows.csv"
    rows.to_csv(path, index=False)
    pool = build_pool(MixEntry(call="fraud.score", data_file=path))
    assert scoring_pb2.Transaction.FromString(pool.bodies[0]).mcc == "0742"


def test_a_model_missing_from_the_models_dir_is_named(tmp_path: Path) -> None:
    with pytest.raises(LoadTestError, match=r"no model 'fraud' in .* \(set `data_file` in the mix entry\)"):
        build_pool(MixEntry(call="fraud.score"), tmp_path)
    (tmp_path / "rows.txt").write_text("amount\n1\n")
    with pytest.raises(LoadTestError, match=r"unsupported extension '\.txt'"):
        build_pool(MixEntry(call="fraud.score", data_file=tmp_path / "rows.txt"))


def test_an_oip_scenario_loads_an_open_inference_protocol_server(fraud_file: Path) -> None:
    with PeerServer() as peer:
        scenario = parse_scenario(
            {
                "name": "oip",
                "target": peer.target,
                "protocol": "oip",
                "mix": [
                    {
                        "call": "oip.infer",
                        "model": "fraud",
                        "batch_size": 8,
                        "inputs": list(OIP_COLUMNS),
                        "data_file": str(fraud_file),
                    }
                ],
                "load": {"rate": 100, "duration_s": 1, "warmup_s": 0.2, "workers": 1},
            }
        )
        result = run_scenario(scenario)
        received = peer.state.received[0]
    assert result.recording.codes == {"OK": 100}
    assert result.recording.rows_ok == 800
    assert isinstance(received, service_pb2.ModelInferRequest) and received.model_name == "fraud"
