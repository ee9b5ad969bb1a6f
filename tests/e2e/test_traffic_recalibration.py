"""Recalibration from traffic, through real servers on 127.0.0.1 and the real CLI: the traffic file holds the
sampled calls' features exactly as the model read them and no id, the newest rows only, sampled beside the
live check and on through an FP32 fallback;
`riskserve quantize --calibration-from-traffic` builds a candidate version that a reload swaps in, writes
none when its gate fails, and refuses a traffic file it cannot use (exit 2, one line)."""

import contextlib
import logging
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pyarrow
import pyarrow.parquet
import pytest

from server.api.gen.riskserve.v1 import scoring_pb2, scoring_pb2_grpc
from server.cli.main import main as cli_main
from server.config.model_config import load_model_config
from server.model_data import read_data_file
from server.monitoring.traffic_sample import MODEL_KEY, traffic_file
from server.quantization.traffic_candidate import TRAFFIC_CALIBRATION_STEM
from tests.e2e.conftest import ServerThread, test_settings
from tests.e2e.model_factory import FRAUD_FLOATS, FRAUD_STRINGS, INT8_HIDDEN, INT8_SERVED, fraud_frame
from tests.e2e.requests import TIMESTAMP_14H, transaction
from tests.e2e.shadow_traffic import flipping_rows, metric_value, send_rows, wait_for
from tests.e2e.test_model_versions import IMPOSSIBLE_GATE, reload, write_version
from tests.e2e.test_request_path import SCORE_PATH, traced_modules
from tests.metrics.conftest import samples, scrape

BEHAVIOUR = ("txn_count_1h", "txn_count_24h", "amount_sum_1h", "amount_sum_24h", "seconds_since_last_txn")
BEHAVIOUR += ("distance_from_home_km",)
IDS = {"transaction_id", "card_id", "merchant_id"}
SECRET = "secret-id"  # in every id the test sends: never in a traffic file's bytes


@pytest.fixture(scope="module")
def int8_version(tmp_path_factory) -> Path:
    """fraud 1.0.0, served INT8 (so a live check samples it too), built once."""
    return write_version(
        tmp_path_factory.mktemp("int8") / "fraud", "1.0.0", quantization=INT8_SERVED, hidden=INT8_HIDDEN
    )


@pytest.fixture(scope="module")
def failing_version(tmp_path_factory) -> Path:
    """fraud 1.0.0 whose gate no INT8 model passes: served FP32, the traffic file its one shadow consumer."""
    return write_version(tmp_path_factory.mktemp("fp32") / "fraud", "1.0.0", quantization=IMPOSSIBLE_GATE)


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("traffic-cache")


def repository(tmp_path: Path, version: Path) -> Path:
    root = tmp_path / "models"
    shutil.copytree(version, root / "fraud" / version.name)
    return root


@contextlib.contextmanager
def serving(repo: Path, cache: Path, traffic: Path, **settings) -> Iterator[ServerThread]:
    """A server sampling every call into `traffic`, stopped (its traffic files written) at the end."""
    values = dict(
        traffic_sample_dir=traffic,
        live_check_sample_rate=1.0,
        traffic_sample_rate=1.0,
        admin_enabled=True,
        admin_port=0,
    )
    server = ServerThread(test_settings(repo, cache, **(values | settings)))
    try:
        yield server.wait_ready()
    finally:
        server.close()


def sent_rows(rows: int, seed: int) -> pd.DataFrame:
    """Transactions' fields as the test sends them (timestamps spread over the day)."""
    frame = fraud_frame(rows, seed).drop(columns=["is_fraud"])
    frame["timestamp"] = TIMESTAMP_14H + np.arange(rows) * 3541
    return frame


def as_transaction(index: int, row: pd.Series) -> scoring_pb2.Transaction:
    behaviour = {name: row[name] for name in BEHAVIOUR}
    behaviour |= {"is_new_merchant": bool(row.is_new_merchant), "is_new_device": bool(row.is_new_device)}
    strings = {name: row[name] for name in FRAUD_STRINGS}
    return transaction(
        f"t-{index}-{SECRET}", behaviour, card_id=f"tok-{index}-{SECRET}", merchant_id=f"m-{index}-{SECRET}",
        amount=row.amount, timestamp=int(row.timestamp), **strings,
    )  # fmt: skip


def send(target: str, frame: pd.DataFrame, batch: int = 1) -> None:
    """`frame`'s rows as Score calls (batch 1) or ScoreBatch calls of `batch` rows, in order."""
    messages = [as_transaction(i, row) for i, row in frame.iterrows()]
    with grpc.insecure_channel(target) as channel:
        stub = scoring_pb2_grpc.FraudScoringStub(channel)
        for start in range(0, len(messages), batch):
            part = messages[start : start + batch]
            if batch == 1:
                stub.Score(part[0], timeout=10)
            else:
                stub.ScoreBatch(scoring_pb2.TransactionBatch(transactions=part), timeout=10)


def as_model_read(frame: pd.DataFrame) -> pd.DataFrame:
    """The features the model read from the sent fields: float32 numbers, the hour of the timestamp."""
    expected = pd.DataFrame({name: frame[name] for name in FRAUD_FLOATS if name != "hour_of_day"})
    expected["hour_of_day"] = (frame.timestamp // 3600) % 24
    expected = expected[list(FRAUD_FLOATS)].astype(np.float32)
    for name in FRAUD_STRINGS:
        expected[name] = frame[name]
    return expected.reset_index(drop=True)


def traffic_rows(traffic: Path, version: str) -> pd.DataFrame:
    """The file's rows, read from a copy: one open of a file the server may be replacing."""
    snapshot = traffic.parent / f"snapshot-{version}.parquet"
    shutil.copyfile(traffic_file(traffic, "fraud", version), snapshot)
    return read_data_file(snapshot)


@pytest.mark.parametrize("version_fixture", ["int8_version", "failing_version"], ids=["int8", "fp32"])
def test_the_traffic_file_holds_the_sampled_calls_features_exactly_and_no_id(
    request, tmp_path, module_cache, version_fixture, caplog
):
    caplog.set_level(logging.INFO)
    version = request.getfixturevalue(version_fixture)
    traffic = tmp_path / "traffic"
    sent = sent_rows(90, seed=7)
    with serving(repository(tmp_path, version), module_cache, traffic) as server:
        send(server.target, sent.iloc[:30])  # unary Score
        send(server.target, sent.iloc[30:], batch=20)  # ScoreBatch
        if version_fixture == "int8_version":  # the live check, sampling apart, got every call too
            wait_for(lambda: live_rows_compared(server) == 90)
    # stopped: the rows still waiting are written
    assert "event=traffic_sample_started model=fraud version=1.0.0" in caplog.text
    frame = traffic_rows(traffic, "1.0.0")
    assert not IDS & set(frame.columns) and list(frame.columns) == list(FRAUD_FLOATS) + list(FRAUD_STRINGS)
    pd.testing.assert_frame_equal(frame, as_model_read(sent), check_dtype=False)
    for name in FRAUD_FLOATS:
        assert frame[name].dtype == np.float32, name
    assert SECRET.encode() not in traffic_file(traffic, "fraud", "1.0.0").read_bytes()


def test_the_traffic_file_keeps_the_newest_rows(tmp_path, module_cache, failing_version):
    traffic = tmp_path / "traffic"
    sent = sent_rows(100, seed=8)
    bounded = dict(traffic_sample_rows=40, traffic_sample_flush_rows=7)
    with serving(repository(tmp_path, failing_version), module_cache, traffic, **bounded) as server:
        send(server.target, sent, batch=10)
    newest = as_model_read(sent.iloc[60:])
    pd.testing.assert_frame_equal(traffic_rows(traffic, "1.0.0"), newest, check_dtype=False)


@pytest.mark.parametrize(
    "rate, path",
    [
        (1e-12, SCORE_PATH),  # unsampled: nothing more than without a traffic file
        (1.0, [*SCORE_PATH, "server/monitoring/shadow.py", "server/monitoring/traffic_sample.py"]),
    ],
    ids=["unsampled", "sampled"],
)
def test_only_a_sampled_call_reaches_the_traffic_file(tmp_path, module_cache, failing_version, rate, path):
    repo, traffic = repository(tmp_path, failing_version), tmp_path / "traffic"
    with (
        serving(repo, module_cache, traffic, traffic_sample_rate=rate) as server,
        grpc.insecure_channel(server.target) as channel,
    ):
        stub = scoring_pb2_grpc.FraudScoringStub(channel)
        for _ in range(20):
            stub.Score(transaction(), timeout=10)
        modules = traced_modules(server, lambda: [stub.Score(transaction(), timeout=10) for _ in range(3)])
    assert modules == path


def test_an_fp32_fallback_keeps_writing_the_versions_traffic_file(tmp_path, module_cache, int8_version):
    traffic = tmp_path / "traffic"
    repo = repository(tmp_path, int8_version)
    config = load_model_config(repo / "fraud" / "1.0.0")
    fallback = dict(on_live_drift="serve_fp32", live_check_min_rows=8)
    with serving(repo, module_cache, traffic, **fallback) as server:
        flipping = flipping_rows(config, server.server.repository.get("fraud").prepared.model_path, 12)
        send_rows(server, config, flipping, sizes=(1,))
        wait_for(lambda: metric_value(server, "riskserve_model_fp32_fallback", model="fraud") == 1.0)
        after = send_rows(server, config, flipping, sizes=(1,))
        assert {a["precision"] for a in after} == {"fp32"}
    sent = pd.concat([flipping, flipping], ignore_index=True)
    for name in FRAUD_FLOATS:
        sent[name] = sent[name].astype(np.float32)
    pd.testing.assert_frame_equal(traffic_rows(traffic, "1.0.0"), sent, check_dtype=False)


def test_a_candidate_from_traffic_is_swapped_in_by_a_reload(tmp_path, module_cache, int8_version, capsys):
    traffic = tmp_path / "traffic"
    repo = repository(tmp_path, int8_version)
    args = ["quantize", "fraud", "--models-dir", str(repo), "--cache-dir", str(module_cache)]
    with serving(repo, module_cache, traffic, traffic_sample_flush_rows=50) as server:
        send(server.target, sent_rows(300, seed=9), batch=50)
        wait_for_rows(traffic, "1.0.0", 300)
        status = cli_main([*args, "--calibration-from-traffic", str(traffic)])
        out, err = capsys.readouterr()
        assert status == 0, err[-3000:]
        folders = [p for p in (repo / "fraud").iterdir() if p.name.startswith("1.0.0-traffic-")]
        assert len(folders) == 1 and f"written to {folders[0]}" in out, out
        candidate = folders[0]
        config = load_model_config(candidate)
        calibration_file = f"{TRAFFIC_CALIBRATION_STEM}.parquet"
        assert config.version == candidate.name and config.calibration_file == calibration_file
        calibration = (candidate / calibration_file).read_bytes()
        assert calibration == traffic_file(traffic, "fraud", "1.0.0").read_bytes()
        holdout = (candidate / "holdout.parquet").read_bytes()
        assert holdout == (int8_version / "holdout.parquet").read_bytes()
        assert "calibration 300 of 300 rows" in out  # the traffic rows calibrated it
        assert cli_main(args) == 0 and "from cache" in capsys.readouterr().out  # the version now served
        outcome = reload(f"127.0.0.1:{server.server.admin_port}").models[0]
        assert outcome.outcome == "swapped" and outcome.serving.version == candidate.name, outcome
        with grpc.insecure_channel(server.target) as channel:
            answer = scoring_pb2_grpc.FraudScoringStub(channel).Score(transaction(), timeout=10)
        assert answer.model.version == candidate.name and answer.model.precision == "int8"
    assert len(traffic_rows(traffic, candidate.name)) == 1  # the new version's traffic, in its own file


def test_a_candidate_failing_its_gate_is_not_written_and_the_served_version_stays(
    tmp_path, module_cache, failing_version, capsys
):
    traffic = tmp_path / "traffic"
    repo = repository(tmp_path, failing_version)
    args = ["quantize", "fraud", "--models-dir", str(repo), "--cache-dir", str(module_cache)]
    with serving(repo, module_cache, traffic, traffic_sample_flush_rows=50) as server:
        send(server.target, sent_rows(250, seed=10), batch=50)
        wait_for_rows(traffic, "1.0.0", 250)
        status = cli_main([*args, "--calibration-from-traffic", str(traffic)])
        out, err = capsys.readouterr()
        assert status == 3, err[-3000:]
        verdict = r"not written, verdict (failed|insufficient_evidence) \(it would serve FP32\)"
        assert re.search(verdict, out), out
        assert sorted(p.name for p in (repo / "fraud").iterdir()) == ["1.0.0"]  # nor left staged
        outcome = reload(f"127.0.0.1:{server.server.admin_port}").models[0]
        assert outcome.outcome == "unchanged" and outcome.serving.version == "1.0.0", outcome


def test_a_traffic_file_it_cannot_use_is_refused_in_one_line(
    tmp_path, int8_version, module_cache, capsys, monkeypatch
):
    repo = repository(tmp_path, int8_version)
    flag = "--calibration-from-traffic"
    args = ["quantize", "fraud", "--models-dir", str(repo), "--cache-dir", str(module_cache)]
    short = tmp_path / "short.parquet"
    as_model_read(sent_rows(150, seed=11)).to_parquet(short)
    other = tmp_path / "other.parquet"
    as_model_read(sent_rows(300, seed=11)).drop(columns=["mcc"]).assign(merchant_id="m-1").to_parquet(other)
    credit = tmp_path / "credit.parquet"  # fraud's columns, but written by a server for model credit
    table = pyarrow.Table.from_pandas(as_model_read(sent_rows(300, seed=11)), preserve_index=False)
    pyarrow.parquet.write_table(table.replace_schema_metadata({MODEL_KEY: b"credit"}), credit)
    flat = tmp_path / "flat"
    shutil.copytree(int8_version, flat / "fraud")
    monkeypatch.delenv("RISKSERVE_TRAFFIC_SAMPLE_DIR", raising=False)
    cases = [
        ([flag, str(short)], f"traffic file {short}: 150 rows, at least 200 are needed"),
        ([flag, str(tmp_path / "none")], "no traffic file for model fraud version 1.0.0"),
        ([flag, str(other)], "another feature set than model fraud's: missing mcc; not features of this "
                             "model merchant_id"),
        ([flag, str(credit)], "credit.parquet is model credit's, not fraud's"),
        ([flag, str(short), "--models-dir", str(flat)], "holds one version in place (flat layout)"),
        ([flag], "give FILE|DIR, or set RISKSERVE_TRAFFIC_SAMPLE_DIR"),
        (["credit", flag, str(short)], "is one traffic file, for one model"),  # two models, one file
    ]  # fmt: skip
    for extra, message in cases:
        models = ["fraud", extra.pop(0)] if extra[0] == "credit" else ["fraud"]
        assert cli_main(["quantize", *models, *args[2:], *extra]) == 2, message
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    monkeypatch.setenv("RISKSERVE_TRAFFIC_SAMPLE_DIR", str(tmp_path / "traffic"))  # the server's setting
    assert cli_main([*args, flag]) == 2
    assert f"{tmp_path / 'traffic' / 'fraud' / '1.0.0.parquet'}" in capsys.readouterr().err
    assert load_model_config(int8_version).quantization.required_calibration_rows == 200
    assert sorted(p.name for p in (repo / "fraud").iterdir()) == ["1.0.0"]  # nothing staged or left


def wait_for_rows(traffic: Path, version: str, rows: int) -> None:
    path = traffic_file(traffic, "fraud", version)
    wait_for(lambda: path.exists() and len(traffic_rows(traffic, version)) >= rows)


def live_rows_compared(server) -> float:
    found = samples(
        scrape(f"http://127.0.0.1:{server.server.metrics_port}/metrics"), "riskserve_live_check_rows_total"
    )
    return sum(value for _, value in found)
