"""INT8 watched against FP32 on live traffic, through a real server: the exported live-check figures equal an
offline recomputation on the rows the test sent; sampling never changes an answer; a full queue drops and
counts; `on_live_drift: serve_fp32` switches the model to FP32 and says so everywhere."""

import argparse
import logging
import time
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pytest

from server.api.gen.riskserve.v1 import scoring_pb2_grpc
from server.cli.score_cmd import build_request
from server.config.model_config import ModelConfig, load_model_config
from server.config.paths import BUNDLED_MODELS_DIR
from server.metrics.snapshot import read_snapshots
from server.model_data import DataKind, input_frame
from tests.e2e.conftest import ServerThread, test_settings
from tests.e2e.model_factory import INT8_HIDDEN, INT8_SERVED, fraud_frame, write_model
from tests.e2e.requests import transaction
from tests.e2e.shadow_traffic import (
    flipping_rows,
    metric,
    metric_value,
    offline_scores,
    psi,
    send_rows,
    wait_for,
)
from tests.metrics.conftest import samples, scrape


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("live-models")
    write_model(root / "fraud", "fraud", quantization=INT8_SERVED, hidden=INT8_HIDDEN)
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("live-cache")


def _serve(repo: Path, cache: Path, **settings) -> ServerThread:
    return ServerThread(test_settings(repo, cache, **settings)).wait_ready()


@pytest.fixture()
def servers(repo, cache):
    started: list[ServerThread] = []

    def start(**settings) -> ServerThread:
        started.append(_serve(repo, cache, **settings))
        return started[-1]

    yield start
    for running in started:
        running.close()


def _expected_figures(
    config: ModelConfig, int8_path: Path, chunk_rows: int | None, frame: pd.DataFrame
) -> dict:
    """The live-check figures recomputed offline: both models on the sent rows, PSI in ten bins at the
    quantiles of the served model's scores on the holdout file (scored with the runtime's `chunk_rows`)."""
    int8, fp32 = offline_scores(int8_path, config, frame), offline_scores(config.onnx_path, config, frame)
    holdout = offline_scores(int8_path, config, input_frame(config, DataKind.HOLDOUT).dropna(), chunk_rows)
    quantiles = np.unique(np.quantile(holdout, np.linspace(0, 1, 11)))
    edges = np.concatenate([[-np.inf], quantiles[1:-1], [np.inf]])
    counts = {name: np.histogram(s, edges)[0] for name, s in (("int8", int8), ("fp32", fp32))}
    holdout_counts = np.histogram(holdout, edges)[0]
    return {
        "int8": int8,
        "fp32": fp32,
        "flips": {
            n: int(np.sum((int8 >= t) != (fp32 >= t))) for n, t in config.decision.thresholds().items()
        },
        "mean": float(np.mean(np.abs(int8 - fp32))),
        "max": float(np.max(np.abs(int8 - fp32))),
        "psi": psi(counts["fp32"], counts["int8"]),
        "drift_psi": psi(holdout_counts, counts["int8"]),
    }


def _check_live_figures(server: ServerThread, name: str, frame: pd.DataFrame) -> None:
    """The server's exported live-check figures for `name` equal the offline recomputation on `frame`."""
    runtime = server.server.repository.get(name)
    config, version = runtime.config, runtime.facts.version
    assert runtime.facts.precision.value == "int8"
    answers = send_rows(server, config, frame)
    wait_for(lambda: metric_value(server, "riskserve_live_check_rows_total", model=name) == len(frame))
    expected = _expected_figures(config, runtime.prepared.model_path, runtime.chunk_rows, frame)
    assert [a["p"] for a in answers] == pytest.approx(expected["int8"].tolist(), abs=0)  # served is INT8
    labels = {"model": name, "version": version}
    for threshold, flips in expected["flips"].items():
        assert (
            metric_value(server, "riskserve_live_check_flips_total", **labels, threshold=threshold) == flips
        )
    assert metric_value(server, "riskserve_live_check_window_rows", **labels) == len(frame)
    assert metric_value(server, "riskserve_live_check_dropped_rows_total", **labels) == 0
    # FP32 scores the sampled rows together; the bundled fraud model's FP32 GEMMs then differ from one row
    # per call in the last float32 bit (6e-8) on a few rows, which the invariance check's 64 rows miss.
    last_bits = 1e-7
    mean, largest = (
        metric_value(server, f"riskserve_live_check_{s}_abs_score_diff", **labels) for s in ("mean", "max")
    )
    assert mean == pytest.approx(expected["mean"], abs=last_bits)
    assert largest == pytest.approx(expected["max"], abs=last_bits)
    assert metric_value(server, "riskserve_live_check_psi", **labels) == pytest.approx(expected["psi"])
    assert metric_value(server, "riskserve_live_score_drift_psi", **labels) == pytest.approx(
        expected["drift_psi"]
    )
    budget = config.quantization.budget.max_decision_flip_rate
    assert metric_value(server, "riskserve_live_check_flip_budget", **labels) == budget
    assert metric_value(server, "riskserve_model_score_count", **labels) == len(frame)  # per version, live


def test_live_figures_equal_an_offline_recomputation_of_the_sent_rows(servers, repo):
    server = servers(live_check_sample_rate=1.0)
    config = load_model_config(repo / "fraud")
    int8_path = server.server.repository.get("fraud").prepared.model_path
    frame = pd.concat([flipping_rows(config, int8_path, 6), fraud_frame(120, seed=5)[config.feature_names]])
    _check_live_figures(server, "fraud", frame.sample(frac=1.0, random_state=0))


def test_sampling_never_changes_an_answer(servers, repo):
    config = load_model_config(repo / "fraud")
    frame = fraud_frame(90, seed=6)[config.feature_names]
    watched, unwatched = servers(live_check_sample_rate=1.0), servers(live_check_sample_rate=0.0)
    assert send_rows(watched, config, frame) == send_rows(unwatched, config, frame)
    assert not metric(unwatched, "riskserve_live_check_rows_total")  # rate 0: no live check at all
    wait_for(lambda: metric_value(watched, "riskserve_live_check_rows_total", model="fraud") == len(frame))


def test_a_full_queue_drops_and_counts_the_sampled_rows(servers, repo):
    server = servers(live_check_sample_rate=1.0, live_check_queue_rows=4)
    config = load_model_config(repo / "fraud")
    send_rows(
        server, config, fraud_frame(25, seed=8)[config.feature_names], sizes=(5,)
    )  # 5 rows never fit in 4
    wait_for(lambda: metric_value(server, "riskserve_live_check_dropped_rows_total", model="fraud") == 25)
    assert metric_value(server, "riskserve_live_check_rows_total", model="fraud") == 0


def test_serve_fp32_switches_the_model_when_live_flips_exceed_the_budget(servers, repo, caplog):
    server = servers(live_check_sample_rate=1.0, on_live_drift="serve_fp32", live_check_min_rows=8)
    config = load_model_config(repo / "fraud")
    int8_path = server.server.repository.get("fraud").prepared.model_path
    flipping = flipping_rows(config, int8_path, 12)
    with caplog.at_level(logging.WARNING, logger="server.app.serving"):
        before = send_rows(server, config, flipping, sizes=(1,))
        wait_for(lambda: metric_value(server, "riskserve_model_fp32_fallback", model="fraud") == 1.0)
    assert {(a["precision"], a["verdict"]) for a in before[:3]} == {("int8", "passed")}
    assert "event=live_drift_fallback model=fraud" in caplog.text and "action=serve_fp32" in caplog.text
    after = send_rows(server, config, flipping)
    assert {(a["precision"], a["verdict"]) for a in after} == {("fp32", "live_drift")}
    assert [a["p"] for a in after] == pytest.approx(
        offline_scores(config.onnx_path, config, flipping).tolist()
    )
    info = metric(server, "riskserve_model_info", model="fraud")
    assert [(labels["precision"], labels["gate_verdict"]) for labels, _ in info] == [("fp32", "live_drift")]
    with grpc.insecure_channel(server.target) as channel:
        answer = scoring_pb2_grpc.FraudScoringStub(channel).Score(transaction(), timeout=5)
    assert (answer.model.precision, answer.model.gate_verdict) == ("fp32", "live_drift")


def test_alert_policy_only_reports(servers, repo):
    server = servers(live_check_sample_rate=1.0, live_check_min_rows=8)  # on_live_drift: alert (default)
    config = load_model_config(repo / "fraud")
    flipping = flipping_rows(config, server.server.repository.get("fraud").prepared.model_path, 12)
    send_rows(server, config, flipping, sizes=(1,))
    wait_for(lambda: metric_value(server, "riskserve_live_check_rows_total", model="fraud") == len(flipping))
    assert metric_value(server, "riskserve_model_fp32_fallback", model="fraud") == 0.0
    assert {a["precision"] for a in send_rows(server, config, flipping)} == {"int8"}


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    if not all((BUNDLED_MODELS_DIR / m / "config.yaml").is_file() for m in ("fraud", "credit")):
        pytest.skip("bundled models not built")
    settings = test_settings(
        BUNDLED_MODELS_DIR, tmp_path_factory.mktemp("bundled-cache"), live_check_sample_rate=1.0
    )
    running = ServerThread(settings)
    try:
        yield running.wait_ready()
    finally:
        running.close()


@pytest.mark.parametrize("name", ["fraud", "credit"])
def test_bundled_models_live_figures_equal_an_offline_recomputation(bundled, name):
    config = load_model_config(BUNDLED_MODELS_DIR / name)
    frame = input_frame(config, DataKind.CALIBRATION).dropna().sample(150, random_state=3)
    _check_live_figures(bundled, name, frame)


def test_two_workers_export_the_merged_live_figures(spawn_server, repo, tmp_path):
    """Each serving process compares its own sample; the exported counters and window are their sum."""
    process = spawn_server(
        repo, workers=2, metrics_shared_dir=tmp_path / "metrics", live_check_sample_rate=1.0
    )
    wait_for(lambda: sum("event=live_check_started" in line for line in process.log) == 2, 90)
    config = load_model_config(repo / "fraud")
    frame = fraud_frame(160, seed=9)[config.feature_names]
    for part in np.array_split(np.arange(len(frame)), 16):  # a connection each: both workers get some
        send_rows(
            process,
            config,
            frame.iloc[part],
            sizes=(5,),
            channel_args=[("grpc.use_local_subchannel_pool", 1)],
        )

    def per_worker() -> list[int]:
        key = ("fraud", config.version)
        snaps = read_snapshots(tmp_path / "metrics")
        return [s.live_checks[key]["window"]["rows"] for s in snaps if key in s.live_checks]

    wait_for(lambda: sum(per_worker()) == len(frame))
    assert len(per_worker()) == 2 and min(per_worker()) > 0, per_worker()
    (int8_path,) = (tmp_path / "cache").rglob("model.int8.onnx")
    expected = _expected_figures(config, int8_path, None, frame)
    text = scrape(f"http://127.0.0.1:{process.metrics_port}/metrics")
    labels = {"model": "fraud", "version": config.version}
    value = lambda name, **more: samples(text, name, **labels, **more)[0][1]  # noqa: E731
    assert value("riskserve_live_check_rows_total") == len(frame)
    assert value("riskserve_live_check_window_rows") == len(frame)
    for threshold, flips in expected["flips"].items():
        assert value("riskserve_live_check_flips_total", threshold=threshold) == flips
    assert value("riskserve_live_check_mean_abs_score_diff") == pytest.approx(expected["mean"], abs=1e-7)
    assert value("riskserve_live_check_max_abs_score_diff") == pytest.approx(expected["max"], abs=1e-7)
    assert value("riskserve_live_check_psi") == pytest.approx(expected["psi"])
    assert value("riskserve_live_score_drift_psi") == pytest.approx(expected["drift_psi"])


def test_a_credit_assessment_offers_the_application_not_its_counterfactual_rows(bundled):
    """Assess scores the application with one counterfactual row per feature (reason codes) in one call;
    only the application is live traffic, so only it is compared."""
    labels = {"model": "credit", "version": bundled.server.repository.get("credit").facts.version}
    before = metric_value(bundled, "riskserve_live_check_rows_total", **labels) or 0
    with grpc.insecure_channel(bundled.target) as channel:
        credit = scoring_pb2_grpc.CreditScoringStub(channel)
        for seed in range(5):
            assert credit.Assess(
                build_request(_holdout_row_args("credit", seed), BUNDLED_MODELS_DIR), timeout=5
            ).reasons
    wait_for(lambda: metric_value(bundled, "riskserve_live_check_rows_total", **labels) == before + 5)
    time.sleep(0.3)  # nothing more arrives: 5 rows, not 5 x (features + 1)
    assert metric_value(bundled, "riskserve_live_check_rows_total", **labels) == before + 5


def _holdout_row_args(task: str, seed: int) -> argparse.Namespace:
    return argparse.Namespace(
        task=task, json_file=None, random_holdout_row=True, field=[], model="", seed=seed
    )
