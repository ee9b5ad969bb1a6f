"""A model folder whose config names CSV data files (calibration.csv, holdout.csv), as a real server and
`riskserve score` meet it: the server quantizes from the CSV calibration file, starts and answers (the
bug guarded: "a CSV calibration file quantizes and then the server fails to start"), and `riskserve
score` scores a row of the CSV holdout."""

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pandas as pd
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.api.gen.riskserve.v1 import scoring_pb2_grpc
from server.cli.score_cmd import build_request
from tests.e2e.conftest import ServerThread, test_settings
from tests.e2e.model_factory import write_model
from tests.e2e.requests import transaction
from tests.e2e.test_cli import _riskserve

QUANTIZED = {"mode": "static", "speed_seconds": 0}  # quantize from the calibration file; no timing


@pytest.fixture(scope="module")
def csv_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("csv-models")
    write_model(root / "fraud", "fraud", data_format="csv", quantization=QUANTIZED)
    write_model(root / "credit", "credit", data_format="csv")
    return root


@pytest.fixture(scope="module")
def csv_server(csv_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    running = ServerThread(test_settings(csv_repo, tmp_path_factory.mktemp("csv-cache")))
    try:
        yield running.wait_ready()
    finally:
        running.close()


def test_a_server_quantizes_from_csv_calibration_starts_and_answers(csv_repo: Path, csv_server) -> None:
    assert not list(csv_repo.rglob("*.parquet"))  # nothing to fall back on
    with grpc.insecure_channel(csv_server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        answer = scoring_pb2_grpc.FraudScoringStub(channel).Score(transaction("csv-1"), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert answer.transaction_id == "csv-1"
    assert answer.model.gate_verdict != "disabled"  # quantized and gated (the toy model may fail its gate)


def test_score_command_scores_a_row_of_the_csv_holdout(csv_repo: Path, csv_server) -> None:
    for task, key in (("fraud", "risk_score"), ("credit", "probability_of_default")):
        done = _riskserve(
            "score", task, "--models-dir", str(csv_repo), "--target", csv_server.target, "--output", "json"
        )
        assert done.returncode == 0, done.stderr
        assert key in json.loads(done.stdout)


def test_the_score_request_is_a_row_of_the_csv_holdout(csv_repo: Path) -> None:
    holdout = pd.read_csv(csv_repo / "fraud" / "holdout.csv", dtype={"mcc": str})
    args = argparse.Namespace(
        task="fraud", json_file=None, random_holdout_row=False, field=[], model="", seed=7
    )
    request = build_request(args, csv_repo)
    row = holdout.sample(1, random_state=7).iloc[0]
    assert request.amount == pytest.approx(row["amount"])
    assert (request.mcc, request.channel) == (row["mcc"], row["channel"])
